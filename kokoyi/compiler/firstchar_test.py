"""firstchar narrows a scanner's alternation by the character at the position without
changing any match: same value, same terminal, on every lexer state of the grammar."""
from __future__ import annotations

import pathlib
import re
import string

import pytest

from kokoyi.compiler import parser
from kokoyi.compiler.firstchar import ByFirstChar, by_first_char, first_chars

EXAMPLES = sorted(pathlib.Path(__file__).resolve().parents[2].joinpath("examples").glob("*/*.kyi"))


@pytest.mark.parametrize(("pattern", "expected"), [
    ("abc", {"a"}),
    ("[a-c]x|y", {"a", "b", "c", "y"}),
    ("(?:\\\\[,:;! ]|\\~)", {"\\", "~"}),
    ("(?:[ \t\n])+", {" ", "\t", "\n"}),
    ("a?b", {"a", "b"}),
    ("(?:a|)b", {"a", "b"}),
    ("a*", None),  # may match the empty string
    ("[^a]", None),  # negated class
    ("\\d+", None),  # a category (Unicode digits)
    ("(?=a)a", None),  # an assertion
    (".", None),
    ("(?i)a", None),  # flags
    ("(?i:a)b", None),
    ("(", None),  # not a pattern
])
def test_first_chars(pattern, expected):
    assert first_chars(pattern) == (None if expected is None else frozenset(expected))


def test_ignorecase_flag_is_not_narrowed():
    assert first_chars("a", re.IGNORECASE) is None


class _Terminal:
    def __init__(self, name, regexp):
        self.name, self.pattern = name, type("P", (), {"to_regexp": lambda self, r=regexp: r})()


def test_the_first_alternative_that_matches_wins_as_before():
    terminals = [_Terminal("KW", "if"), _Terminal("NAME", "[a-z]+"), _Terminal("ANY", ".")]
    full = re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in terminals))
    narrowed = ByFirstChar(terminals, 0)
    for text in ("if", "ifx", "x", "?", "f"):
        expected = full.match(text)
        got = narrowed[text[0]](text, 0, len(text))
        assert (got.group(0), got.lastgroup) == (expected.group(0), expected.lastgroup)


def test_no_terminal_starts_with_it():
    narrowed = ByFirstChar([_Terminal("A", "a")], 0)
    assert narrowed["b"]("b", 0, 1) is None


def test_every_state_of_the_grammar_matches_as_lark_does():
    lexer = parser._lark("start").parser.lexer.lexer
    texts = [p.read_text() for p in EXAMPLES[:6]] + [string.printable + "\\|\\\\ \\{ \u03b1 \u00e9"]
    scanners = {id(sub.scanner): sub.scanner for sub in lexer.lexers.values()}
    checked = 0
    for scanner in scanners.values():
        narrowed = by_first_char(scanner)
        assert narrowed is not None
        (full,) = scanner._mres
        for text in texts:
            for pos in range(len(text)):
                expected = full.match(text, pos, len(text))
                got = narrowed[text[pos]](text, pos, len(text))
                if expected is None:
                    assert got is None
                else:
                    assert (got.group(0), got.lastgroup) == (expected.group(0), expected.lastgroup)
                checked += 1
    assert checked > 100_000


def test_the_lexer_uses_the_narrowed_alternations():
    # (a ByFirstChar is an empty dict until its first match: `by_first_char(s) or s._mres`
    # once chose lark's full alternation for every state)
    lexer = parser._lark("start").parser.lexer.lexer
    tables = lexer._tables or lexer._build_tables()
    assert tables and all(type(entry[0]) is ByFirstChar for entry in tables.values())
