"""The layout of a value in batched code: its named leading axes and its per-sample part.

A tensor value's dimensions are its `axes` (named: the batch axis `BATCH` and the index
variables of the loops it varies with, always in the order they were opened) followed by
`rank` per-sample dimensions. Loop axes and the batch axis are the same kind of thing
(`../shared/design/core-ir.md`): one set of rules serves vectorising a loop and batching.
A value that varies with fewer axes has fewer dimensions; `align` adds size-1 ones.
"""
from __future__ import annotations

from dataclasses import dataclass

BATCH = "_b"  # the name of the batch axis (the runtime flattens all batch axes into one)


@dataclass(frozen=True)
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
