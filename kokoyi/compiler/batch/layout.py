"""The layout of a value in batched code: its named leading axes and its per-sample part.

A tensor value's dimensions are its `axes` (named: the batch axis `BATCH` and the index
variables of the loops it varies with, always in the order they were opened) followed by
`rank` per-sample dimensions. Loop axes and the batch axis are the same kind of thing
(`../shared/design/core-ir.md`): one set of rules serves vectorising a loop and batching.
A value that varies with fewer axes has fewer dimensions; `align` adds size-1 ones.
"""
from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass

BATCH = "_b"  # the name of the batch axis (the runtime flattens all batch axes into one)


# (__init__, __eq__, __hash__ and __repr__ written out as @dataclass(frozen=True) generates
# them: generating them costs about half a millisecond at a process's first call)
@dataclass(init=False, repr=False, eq=False)
class Val:
    """A value in batched code.

    code:   a kernel.Ref or a Python constant
    axes:   the named leading axes it varies with
    rank:   per-sample rank
    kind:   "float", "int" or "bool"
    python: a Python number or truth value (no tensor)
    what:   "tensor", or a non-tensor value: "layer", "kokoyi", "list", "lambda", "function",
            "builtin", "tuple", "states" (a recurrence's elements so far)
    info:   what the non-tensor kinds need (a description, a closure, ...)
    """

    code: object
    axes: tuple[str, ...] = ()
    rank: int = 0
    kind: str = "float"
    python: bool = False
    what: str = "tensor"
    info: object = None

    def __init__(self, code, axes=(), rank=0, kind="float", python=False, what="tensor", info=None) -> None:
        fields = self.__dict__
        fields["code"], fields["axes"], fields["rank"], fields["kind"] = code, axes, rank, kind
        fields["python"], fields["what"], fields["info"] = python, what, info

    def _fields(self) -> tuple:
        return self.code, self.axes, self.rank, self.kind, self.python, self.what, self.info

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._fields() == other._fields()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(code={self.code!r}, axes={self.axes!r}, rank={self.rank!r}, "
                f"kind={self.kind!r}, python={self.python!r}, what={self.what!r}, info={self.info!r})")

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    # What the runtime reads of an output layout (kokoyi.runtime.batching).
    @property
    def batched(self) -> bool:
        return BATCH in self.axes

    @property
    def integer(self) -> bool:
        return self.kind != "float"

    @property
    def lead(self) -> int:
        return len(self.axes)

    @property
    def is_tensor(self) -> bool:
        return self.what == "tensor"


def union_axes(order, vals) -> tuple[str, ...]:
    """The axes any of vals varies with, in the order they were opened."""
    present = set()
    for v in vals:
        present.update(v.axes)
    return tuple(a for a in order if a in present)


def promote(kinds) -> str:
    """The kind of an arithmetic result: float if any operand is, else int."""
    return "float" if "float" in kinds else "int"
