"""parse_ast (the AST built during the LALR reductions) gives what parsing, checking the
depth and then building gave: the same AST, the same errors, the parse tree's depth."""
from __future__ import annotations

from pathlib import Path

import pytest

from kokoyi.compiler import lalr, parser
from kokoyi.compiler.builder import build
from kokoyi.errors import Source

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/*.kyi"))
MODULE = "\\Module{{M}}{{x \\in \\mathbb{{R}}^{{D}}; W}}\n  h \\gets {} \\\\\n  \\Return h \\\\\n\\EndModule\n"
TEXTS = [
    MODULE.format("\\ReLU(W[0](x)) + \\sum_{k=0}^{|x|-1} x[k] * x[k]"),
    MODULE.format("\\frac1234 + x^2 + \\|x\\|^2 + ||x| - 1|"),
    MODULE.format("\\begin{cases} x & x > 0 \\\\ 0 & \\text{otherwise} \\end{cases}"),
    "c \\gets \\{ i^2 + 1 \\}_{i=0}^{3} \\\\\n",
    "x \\gets 1 + \\\\",                               # a syntax error
    "z \\gets a b \\\\",                               # two operands side by side
    "\\Module{M}{x}\n\\Return x \\\\\n",               # a block never closed
    "y \\gets \\foo{x} \\\\",                          # an unknown command (post-lexer)
    "y \\gets 1 \\\\\n\\Module{M}{x}\n \\Return x_{} \\\\\n\\EndModule\n",
    "c \\gets " + "(" * 70 + "x" + ")" * 70 + " \\\\\n",  # too deep
    "c \\gets " + " + ".join(["x"] * 80) + " \\\\\n",  # a long chain: too deep too
    "c \\gets " + "(" * 20 + "x" + ")" * 20 + " \\\\\n",
]


def _old_way(source: Source) -> str:
    try:
        return repr(build(parser.parse(source), source))
    except Exception as err:  # noqa: BLE001 - the error is what is compared
        return f"{type(err).__name__}: {err}"


def _new_way(source: Source) -> str:
    try:
        return repr(parser.parse_ast(source))
    except Exception as err:  # noqa: BLE001
        return f"{type(err).__name__}: {err}"


@pytest.mark.parametrize("text", [p.read_text() for p in EXAMPLES] + TEXTS)
def test_same_ast_and_errors(text):
    source = Source(text, "f.kyi")
    assert _new_way(source) == _old_way(source)


def _tree_depth(tree) -> int:
    best, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        best = max(best, depth)
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, parser.Tree))
    return best


def _builds_within(source: Source, limit: int) -> bool:
    building, lark_parser = parser._building("start"), parser._lark("start")
    slot = lark_parser.options.postlex
    slot.current, building.builder.source = parser.TexArguments(source), source
    frontend = lark_parser.parser
    try:
        frontend.parser.parser.parse_building(frontend._make_lexer_thread(source.text), "start", building.callbacks,
                                              building.kinds, building.reductions, building.made, limit)
    except lalr.TooDeep:
        return False
    finally:
        slot.current = building.builder.source = None
    return True


@pytest.mark.parametrize("text", [p.read_text() for p in EXAMPLES[:3]] + TEXTS[:4] + TEXTS[-1:])
def test_the_building_parse_knows_the_tree_depth(text):
    source = Source(text, "f.kyi")
    depth = _tree_depth(parser.parse(source))
    assert _builds_within(source, depth)
    assert not _builds_within(source, depth - 1)


def test_a_unit_rule_hands_its_child_on():
    """About a third of the reductions are `?rule`s of one symbol: no callback runs for them."""
    source = Source(TEXTS[0], "f.kyi")
    parser.parse_ast(source)
    kinds = [entry[3] for entry in parser._building("start").reductions.values()]
    assert kinds.count(lalr.UNIT) >= 10
