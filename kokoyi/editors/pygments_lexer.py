"""A Pygments lexer for Kokoyi (`.kyi` files and `%kokoyi` cells).

Registered through the `pygments.lexers` entry point, so once kokoyi is installed
`pygments.lexers.get_lexer_by_name("kokoyi")` finds it, and so do everything built on
Pygments: mkdocs (`pymdownx.highlight`), nbconvert, `IPython.display.Code(..., language="kokoyi")`
and `pygmentize -l kokoyi`. The word lists come from kokoyi.editors.words.
"""
from __future__ import annotations

from typing import ClassVar

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

from kokoyi.editors import words as W

# `\word` not followed by another letter: `\in` must not match the start of `\infty`.
_END = r"(?![a-zA-Z])"


def _commands(names) -> tuple:
    """A `words` pattern for `\\name` for every name."""
    return words(sorted(names, key=lambda w: (-len(w), w)), prefix=r"\\", suffix=_END)


class KokoyiLexer(RegexLexer):
    """Kokoyi: LaTeX math that compiles to PyTorch."""

    name = "Kokoyi"
    aliases = ("kokoyi", "kyi")
    filenames = ("*.kyi",)
    mimetypes = ("text/x-kokoyi",)

    # No catch-all rule: a character the compiler's lexer rejects (`$`, `#`, `?`) is an
    # Error token here too, so the tests that find no Error token in the examples mean something.
    tokens: ClassVar[dict] = {
        "root": [
            (r"[ \t\r\n]+", Whitespace),
            (r"%.*?$", Comment.Single),
            # `\Comment{...}` and `\text{...}`: prose inside a statement (one level of braces).
            (r"(\\Comment)(\s*)(\{(?:[^{}\n]|\{[^{}\n]*\})*\})", bygroups(Comment.Special, Whitespace, Comment)),
            (r"(\\text)(\s*)(\{[^{}\n]*\})", bygroups(Keyword.Pseudo, Whitespace, String)),
            (r"\\(?:begin|end)\s*\{\s*[a-zA-Z]+\*?\s*\}", Keyword),  # `\begin{cases}`
            (r"\\operatorname\s*\*", Operator.Word),
            (r"\\\\", Punctuation),  # the end of a statement
            (r"\\[{}|]", Punctuation),  # set-builder braces and norm bars
            (r"\\[,:;! ]|~", Whitespace),  # typeset spacing
            # `\Module{Name}` and `\Function{Name}`: the name being defined.
            (r"(\\(?:Module|Function))(\s*)(\{)([^{}\\]+)(\})",
             bygroups(Keyword, Whitespace, Punctuation, Name.Class, Punctuation)),
            (_commands(W.STRUCTURE), Keyword),
            (_commands(W.TYPES), Keyword.Type),
            (_commands(W.OPERATORS | W.BIG_OPERATORS), Operator.Word),
            (r"\\SmoothL1(?![0-9])", Name.Builtin),
            (_commands(W.FUNCTIONS), Name.Builtin),
            (_commands(W.CONSTANTS), Name.Constant),
            (_commands(W.GREEK), Name),
            (_commands(W.DECORATIONS), Name.Decorator),
            (_commands(W.LAYOUT), Keyword.Pseudo),
            (r"\\[a-zA-Z]+", Name),  # an unknown command: the compiler reports it, a lexer does not
            (r"(\d+\.\d+|\.\d+|\d+)([eE][-+]?\d+)?", Number),
            (r"[a-zA-Z][a-zA-Z0-9]*", Name),
            (r"\*\*|[-+*/@^_<>=']", Operator),
            (r"[{}()\[\],;:&|]", Punctuation),
        ],
    }
