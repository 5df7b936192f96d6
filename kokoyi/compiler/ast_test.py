"""ast.walk visits every node in source order, depth first; ast.replace copies a node as
dataclasses.replace does."""
from __future__ import annotations

import dataclasses
import inspect
import pickle
from pathlib import Path

import pytest

from kokoyi.compiler import ast as A
from kokoyi.compiler import parser
from kokoyi.errors import Source, Span

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/*.kyi"))


def _recursive_walk(n):
    yield n
    for c in A.children(n):
        yield from _recursive_walk(c)


@pytest.mark.parametrize("path", EXAMPLES[:6], ids=lambda p: p.name)
def test_walk_is_the_depth_first_source_order(path):
    tree = parser.parse_ast(Source(path.read_text(), str(path)))
    assert [id(n) for n in A.walk(tree)] == [id(n) for n in _recursive_walk(tree)]
    assert len(list(A.walk(tree))) > 100


def test_replace_is_dataclasses_replace():
    tree = parser.parse_ast(Source("y \\gets a + 2 \\\\\n", "t.kyi"))
    binary = tree.items[0].value
    new = A.Num(binary.right.span, 3, "3")
    fast, slow = A.replace(binary, right=new), dataclasses.replace(binary, right=new)  # (nodes compare by identity)
    assert type(fast) is type(slow) and vars(fast) == vars(slow)
    assert A.replace(binary, right=new).left is binary.left and binary.right is not new
    with pytest.raises(TypeError):
        A.replace(binary, rihgt=new)


def test_node_init_has_the_dataclass_signature():
    # (node classes get a quicker __init__ than dataclass's: the same parameters and defaults)
    assert len(A._QUICK_REPLACE) > 30
    for cls in A._QUICK_REPLACE:
        params = list(inspect.signature(cls).parameters.values())
        fields = dataclasses.fields(cls)
        assert [p.name for p in params] == [f.name for f in fields]
        assert [p.default for p in params] == [
            inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]


def test_a_default_field_left_unset_reads_its_default():
    span = Span(1, 1, 1, 2)
    name = A.Name(span, "x", "x")
    assert "inner" not in vars(name) and (name.inner, name.indices, name.exponent) == (None, (), None)
    indexed = A.Name(span, "x_{1}", "x_1", inner=name, indices=(A.Num(span, 1, "1"),))
    assert indexed.inner is name and indexed.indices[0].value == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        name.key = "y"
    copy = pickle.loads(pickle.dumps(indexed))
    assert (copy.key, copy.inner.key, copy.exponent, repr(copy)) == ("x_{1}", "x", None, repr(indexed))
    assert dataclasses.astuple(A.replace(indexed, inner=None)) == dataclasses.astuple(
        dataclasses.replace(indexed, inner=None))
