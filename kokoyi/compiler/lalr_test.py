"""The LALR driver (lalr.py) parses exactly as lark's own loop does, errors included."""
from __future__ import annotations

from pathlib import Path

import pytest
from lark.parsers.lalr_parser import _Parser

from kokoyi.compiler import lalr, parser
from kokoyi.errors import KokoyiSyntaxError, Source

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/*.kyi"))


def _with_larks_own_loop(fn):
    """fn() with the cached parser's driver put back to lark's _Parser for the duration."""
    lalr_parser = parser._lark("start").parser.parser
    fast = lalr_parser.parser
    lalr_parser.parser = _Parser(fast.parse_table, fast.callbacks, fast.debug)
    try:
        return fn()
    finally:
        lalr_parser.parser = fast


def test_the_cached_parser_uses_the_fast_driver():
    assert isinstance(parser._lark("start").parser.parser.parser, lalr.FastParser)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_same_tree_as_larks_loop(path):
    source = Source(path.read_text(), str(path))
    assert parser.parse(source) == _with_larks_own_loop(lambda: parser.parse(source))


@pytest.mark.parametrize("text", [
    "x \\gets 1 + \\\\",                                # an unexpected token
    "\\Module{M}{x}\n\\Return x \\\\\n",                # end of input inside a block
    "y \\gets (a + b \\\\",                             # an unclosed bracket
    "z \\gets a b \\\\",                                # two operands side by side
])
def test_same_errors_as_larks_loop(text):
    def error():
        with pytest.raises(KokoyiSyntaxError) as info:
            parser.parse(Source(text, "bad.kyi"))
        return str(info.value)

    assert error() == _with_larks_own_loop(error)


def test_install_leaves_other_parsers_alone():
    assert lalr.install(object()) is False
