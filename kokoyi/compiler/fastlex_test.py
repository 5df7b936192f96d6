"""fastlex gives the parser the tokens lark's own lexer gives: same types, values and
positions on every example, and the same errors on bad input."""
from __future__ import annotations

import contextlib
import pathlib

import pytest
from lark import Token
from lark.lexer import ContextualLexer

from kokoyi.compiler import fastlex, parser
from kokoyi.errors import KokoyiSyntaxError, Source

EXAMPLES = sorted(pathlib.Path(__file__).resolve().parents[2].joinpath("examples").glob("*/*.kyi"))
BAD = [r"\Module{P}{x} \Return x + \\ \EndModule", "\\Module{P}{x}\n  \\Return x $ 2 \\\\\n\\EndModule\n",
       r"\Module{P}{x} \Return \frac{x}{ \\ \EndModule", "\\Module{P}{x}\n  \\Return x \\\\\n",
       "\\Module{P}{x}\n  \\Return x ] \\\\\n\\EndModule\n", "y \\gets 1 \\\\\n% a comment\nz \\gets y # 2 \\\\\n"]


def _contextual_lexer():
    return parser._lark("start").parser.lexer.lexer


@contextlib.contextmanager
def _lark_lexer():
    """The parser with lark's own ContextualLexer for the duration."""
    lexer = _contextual_lexer()
    lexer.__class__ = ContextualLexer
    try:
        yield
    finally:
        lexer.__class__ = fastlex.FastContextualLexer


def _tokens(text: str):
    tree = parser.parse(Source(text, "t.kyi"))
    return [(t.type, str(t), t.start_pos, t.end_pos, t.line, t.column, t.end_line, t.end_column)
            for t in tree.scan_values(lambda v: isinstance(v, Token))]


def _error(text: str) -> str:
    with pytest.raises(KokoyiSyntaxError) as err:
        parser.parse(Source(text, "t.kyi"))
    return str(err.value)


def test_the_parser_uses_it():
    assert type(_contextual_lexer()) is fastlex.FastContextualLexer


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_same_tokens_as_lark(path):
    text = path.read_text()
    fast = _tokens(text)
    with _lark_lexer():
        assert _tokens(text) == fast
    assert len(fast) > 50


@pytest.mark.parametrize("text", BAD)
def test_same_errors_as_lark(text):
    fast = _error(text)
    with _lark_lexer():
        assert _error(text) == fast


def test_retyped_is_lark_new_borrow_pos():
    from lark.lexer import Token

    from kokoyi.compiler.fastlex import retyped

    tok = Token("CMD", "\\frac", 10, 2, 3, 2, 8, 15)
    mine, lark_own = retyped("FRAC", tok), Token.new_borrow_pos("FRAC", tok.value, tok)
    assert type(mine) is Token and mine == lark_own
    fields = ("type", "value", "start_pos", "line", "column", "end_line", "end_column", "end_pos")
    assert [getattr(mine, f) for f in fields] == [getattr(lark_own, f) for f in fields]


def _raw_stream(text: str, building: bool):
    """The tokens the lexer hands the post-lexer: parse_ast's parse (parse_building's lexing)
    or lark's own lexer under parser.parse."""
    seen = []
    process = parser.TexArguments.process

    def recording(self, stream):
        def tap():
            for t in stream:
                seen.append((t.type, str(t), t.start_pos, t.end_pos, t.line, t.column, t.end_line, t.end_column))
                yield t
        return process(self, tap())

    building = []
    lex = fastlex.FastContextualLexer.lex

    def counted(self, lexer_state, parser_state):
        building.append(parser_state.building)
        return lex(self, lexer_state, parser_state)

    parser.TexArguments.process = recording
    fastlex.FastContextualLexer.lex = counted
    try:
        if building:
            parser.parse_ast(Source(text, "t.kyi"))
            assert building == [True]  # (parse_building's lexing, once: no second parse the other way)
        else:
            with _lark_lexer():
                parser.parse(Source(text, "t.kyi"))
    finally:
        parser.TexArguments.process = process
        fastlex.FastContextualLexer.lex = lex
    return seen


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_building_loop_gives_lark_tokens(path):
    text = path.read_text()
    fast = _raw_stream(text, building=True)
    assert fast == _raw_stream(text, building=False)
    assert len(fast) > 50
