"""The kernel IR's walks: every statement in order, what each reads, nested blocks mapped."""
from __future__ import annotations

from kokoyi.compiler import kernel as K


def _block():
    inner = K.Assign("c", "mul", (K.Ref("b"), (K.Ref("a"), 2)))
    loop = K.For("t", 0, K.Ref("n"), [inner], pre=[K.Assign("p", "neg", (K.Ref("a"),))])
    branch = K.If(K.Ref("g"), [K.Assign("d", "add", (K.Ref("a"), K.Ref("a")))], [loop])
    return [K.Assign("b", "exp", (K.Ref("a"),)), branch, K.Return((K.Ref("b"), [K.Ref("c")]))]


def test_statements_each_before_its_nested_ones():
    outs = [getattr(s, "out", None) or type(s).__name__ for s in K.statements(_block())]
    assert outs == ["b", "If", "d", "For", "p", "c", "Return"]


def test_reads_and_the_names_in_them():
    block = _block()
    counts: dict = {}
    for s in K.statements(block):
        for name in K.refs(K.reads(s)):
            counts[name] = counts.get(name, 0) + 1
    assert counts == {"a": 5, "g": 1, "n": 1, "b": 2, "c": 1}
    assert K.names(K.reads(block[2]), set()) == {"b", "c"}  # a list inside a tuple too
    assert K.reads(block[1]) == (K.Ref("g"),) and K.reads(block[1].orelse[0]) == (0, K.Ref("n"))


def test_with_blocks_maps_each_nested_block_and_leaves_the_rest():
    block = _block()
    mapped = K.with_blocks(block[1], lambda b: [s for s in b if not isinstance(s, K.Assign)])
    assert mapped.then == [] and mapped.orelse == block[1].orelse and mapped.cond == block[1].cond
    loop = K.with_blocks(block[1].orelse[0], lambda b: b[::-1] + b)
    assert len(loop.pre) == 2 and len(loop.body) == 2 and loop.var == "t"
    assert K.with_blocks(block[0], lambda b: []) is block[0]
    assert K.nested(block[1]) == block[1].then + block[1].orelse and K.nested(block[0]) == []
