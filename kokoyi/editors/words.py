"""The language's `\\command` words sorted into the classes editors colour differently.

Built from the compiler's keyword and built-in tables; the Pygments lexer, the TextMate
grammar and the language server's completion all use these sets.
"""
from __future__ import annotations

from kokoyi.compiler import builtins as B
from kokoyi.compiler import keywords as K

# Terminals of keywords.FIXED that give a program its structure: `\Module`, `\gets`, ...
_STRUCTURE_TERMINALS = {"MODULE", "END_MODULE", "FUNCTION", "END_FUNCTION", "RETURN", "GETS", "WHERE", "IN"}

STRUCTURE = frozenset(w for w, t in K.FIXED.items() if t in _STRUCTURE_TERMINALS)
# `\frac`, `\cdot`, `\le`, `\lnot`, `\lceil`, ... and the big operators `\sum`, `\argmax`.
OPERATORS = frozenset(w for w, t in K.FIXED.items() if t not in _STRUCTURE_TERMINALS and t != "MATHBB")
BIG_OPERATORS = frozenset(K.BIG_OPERATORS)
TYPES = frozenset(w for w, t in K.FIXED.items() if t == "MATHBB")  # `\mathbb{R}^{n}`
# Built-ins written as a command (`\\det`); `\\operatorname{tr}` and `\\mathbf{I}_{n}` are names.
FUNCTIONS = frozenset(n for n, f in B.FUNCTIONS.items() if not f.spelling) | K.FUNCTIONS
CONSTANTS = frozenset(key[1:] for key in B.CONSTANTS if key.startswith("\\"))  # `\pi`, `\infty`
GREEK = K.GREEK - CONSTANTS
DECORATIONS = K.ACCENTS | K.SAME_NAME_FONTS | K.DISTINCT_FONTS  # `\hat{x}`, `\mathbf{W}`
LAYOUT = K.LAYOUT | (K.PLACED - {"text", "Comment", "begin", "end", "operatorname*"})  # `\left`, `\top`

CLASSES = {
    "structure": STRUCTURE,
    "operator": OPERATORS | BIG_OPERATORS,
    "type": TYPES,
    "function": FUNCTIONS,
    "constant": CONSTANTS,
    "greek": GREEK,
    "decoration": DECORATIONS,
    "layout": LAYOUT,
}


def word_class(word: str) -> str | None:
    """The class of `\\word` (without the backslash), None for a word the language lacks."""
    for name, words in CLASSES.items():
        if word in words:
            return name
    return None


def regex_alternation(words) -> str:
    """`(?:longest|long|...)` matching any of words, longest first so prefixes do not win."""
    import re

    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w))) + ")"
