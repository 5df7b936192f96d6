"""The IR's traversal helpers: the fast paths give what the plain dataclass machinery gives."""
from __future__ import annotations

import dataclasses

import pytest

from kokoyi.compiler import ir

x, y = ir.Var("x"), ir.Var("y")
AXIS = ir.Axis("i", ir.Lit(0), ir.Prim("sub", (y, ir.Lit(1))))
NODES = [
    ir.Prim("add", (x, ir.Lit(1)), span=ir.Span(1, 2, 1, 5)),
    ir.Prim("pool", (x,), ("max", (x,))),  # (a node inside attrs and in a nested tuple)
    ir.Take(x, (ir.Iota(AXIS), ir.Slice(None, y))),
    ir.Select(((ir.Prim("gt", (x, y)), x),), None, strict=True),
    ir.Reduce("sum", AXIS, ir.Prim("mul", (x, ir.Iota(AXIS)))),
    ir.Build((AXIS,), x),
    ir.Let("z", x, ir.Apply(ir.Global("f"), (ir.Var("z"),))),
    ir.Lambda(("a",), ir.Prim("neg", (ir.Var("a"),))),
    ir.Recur("h", ir.Axis("t", ir.Lit(0), y, "sequence"), x),
    ir.At(None, x), ir.Fast("softmax", (x,), x), ir.Tuple((x, y)), AXIS, ir.Slice(x, None), x, ir.Lit(2),
]


def _swap(c):
    return y if c == x else c


@pytest.mark.parametrize("e", NODES, ids=lambda e: type(e).__name__)
def test_the_unrolled_mapper_of_a_class_maps_as_map_children(e):
    mapper = ir.MAPPERS[type(e)]
    assert mapper(e, lambda c: c) is e  # (nothing changed: the node itself)
    got, want = mapper(e, _swap), ir.map_children(e, _swap)
    assert got == want and type(got) is type(e) and got.__dict__ == want.__dict__
    assert got.__dict__.get("span") is e.__dict__.get("span")


@pytest.mark.parametrize("e", NODES, ids=lambda e: type(e).__name__)
def test_a_node_made_by_its_fast_init_is_the_dataclass_one(e):
    kwargs = {f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.init}
    made = type(e)(**kwargs)
    assert made == e and made.__dict__ == e.__dict__ and list(made.__dict__) == [f.name for f in dataclasses.fields(e)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.span = None


def test_defaults_and_keywords_are_the_dataclass_ones():
    p = ir.Prim("exp", (x,))
    assert p.attrs == () and p.span is ir.NO_SPAN and ir.Axis("i", x, y).kind == "vector"
    assert ir.Select((), None).strict is False and ir.At(None).body is None
    with pytest.raises(TypeError):
        ir.Prim("exp", (x,), (), ir.NO_SPAN)  # (span is keyword-only)
