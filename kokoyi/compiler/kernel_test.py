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


def test_read_names_are_the_names_read_kept_per_statement():
    """kernel.read_names(s) is names(reads(s)), kept on s; a statement made from it with other
    arguments (dataclasses.replace: what the passes do) has its own."""
    import dataclasses

    for s in K.statements(_block()):
        assert K.read_names(s) == K.names(K.reads(s), set())
        assert K.read_names(s) is K.read_names(s)
    s = K.Assign("c", "mul", (K.Ref("b"), (K.Ref("a"), 2)))
    assert K.read_names(s) == {"a", "b"}
    t = dataclasses.replace(s, args=(K.Ref("x"),))
    assert K.read_names(t) == {"x"} and K.read_names(s) == {"a", "b"}
    assert t == K.Assign("c", "mul", (K.Ref("x"),)) and "_read_names" not in repr(t)


def test_with_blocks_maps_each_nested_block_and_leaves_the_rest():
    block = _block()
    mapped = K.with_blocks(block[1], lambda b: [s for s in b if not isinstance(s, K.Assign)])
    assert mapped.then == [] and mapped.orelse == block[1].orelse and mapped.cond == block[1].cond
    loop = K.with_blocks(block[1].orelse[0], lambda b: b[::-1] + b)
    assert len(loop.pre) == 2 and len(loop.body) == 2 and loop.var == "t"
    assert K.with_blocks(block[0], lambda b: []) is block[0]
    assert K.nested(block[1]) == block[1].then + block[1].orelse and K.nested(block[0]) == []


def _generated(cls, frozen: bool = False):
    """cls's fields as a class @dataclass generates (what the written-out methods must match)."""
    import dataclasses

    fields = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
              for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=frozen)


def _behaves_as_generated(cls, frozen: bool, samples: list) -> None:
    import dataclasses

    import pytest

    ref = _generated(cls, frozen)
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in dataclasses.fields(ref)]
    assert cls.__match_args__ == ref.__match_args__
    for args, kwargs in samples:
        a, b, r = cls(*args, **kwargs), cls(*args, **kwargs), ref(*args, **kwargs)
        assert a.__dict__ == r.__dict__ and list(a.__dict__) == list(r.__dict__)  # fields, defaults, order
        assert repr(a).replace(cls.__qualname__, "X") == repr(r).replace(ref.__qualname__, "X") or cls is K.Ref
        assert a == b and (a != b) is False and a != r and (a == 1) is False
        assert dataclasses.replace(a, **{dataclasses.fields(cls)[0].name: "z"}).__dict__ == \
            dataclasses.replace(r, **{dataclasses.fields(cls)[0].name: "z"}).__dict__
        if frozen:
            assert hash(a) == hash(r) == hash(b)
            with pytest.raises(dataclasses.FrozenInstanceError):
                a.name = "x"
            with pytest.raises(dataclasses.FrozenInstanceError):
                del a.name
        else:
            assert type(a).__hash__ is None
    for field in dataclasses.fields(cls):  # a default_factory gives each instance its own
        if field.default_factory is not dataclasses.MISSING:
            x, y = cls(*samples[0][0]), cls(*samples[0][0])
            assert getattr(x, field.name) == field.default_factory() and getattr(x, field.name) is not getattr(y, field.name)


def test_the_node_classes_behave_as_their_generated_dataclasses():
    from kokoyi.compiler.batch.layout import Val

    r = K.Ref("a")
    _behaves_as_generated(K.Ref, True, [(("a",), {})])
    _behaves_as_generated(K.Assign, False, [(("b", "exp", (r,)), {}), (("b", "add", (r, 1), {"py": True}, 3), {}),
                                            ((None, "check", ()), {"line": 4, "attrs": {}})])
    _behaves_as_generated(K.If, False, [((r, [], []), {}), ((r, [K.Assign("c", "neg", (r,))], []), {"line": 2})])
    _behaves_as_generated(K.For, False, [(("t", 0, r, []), {}), (("t", 0, r, [], 1, "f:1:2", [K.Return((r,))]), {})])
    _behaves_as_generated(K.Return, False, [(((r,),), {}), (((r, 1),), {"line": 5})])
    _behaves_as_generated(K.Kernel, False, [(("k", ("x",), []), {}), (("k", ("x",), [], (), "why"), {})])
    _behaves_as_generated(Val, True, [((r,), {}), ((r, ("_b",), 1, "int"), {}), ((None,), {"what": "tuple", "info": (1,)})])
