"""Products whose matrices are spelled transposed read the matrices as they are.

Multi-head attention writes its per-head projections `X @ W_Q[i]^\\top`: the batch rule
(rules.einsum_matmul) makes one product of X's rows with every head's matrix, `matmul_rows`,
which lays its right operand out as torch's F.linear wants it: (out, in), the transpose of
what it multiplies by. Of `W^\\top` it would transpose back what the source transposed — two
views forward, two transposes in the backward graph per projection. Here a `matmul_rows` of
a `transpose` becomes `matmul_rows_t` of the untransposed matrices (kokoyi/runtime/products.py),
and the transpose, then unread, is dropped by clean-up.
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.fuse import _definitions


def untranspose(k: K.Kernel) -> K.Kernel:
    defs: dict = {}
    _definitions(k.body, defs)
    counts: dict = {}
    _count(k.body, counts)
    return dataclasses.replace(k, body=_block(k.body, defs, counts))


def _count(block: list, acc: dict) -> None:
    """How many times each name is assigned (a join assigned in two branches is not one value)."""
    for s in K.statements(block):
        if isinstance(s, K.Assign) and s.out is not None:
            acc[s.out] = acc.get(s.out, 0) + 1


def _block(block: list, defs: dict, counts: dict) -> list:
    out = []
    for s in block:
        match s:
            case K.Assign(op="matmul_rows") if isinstance(s.args[1], K.Ref) and counts.get(s.args[1].name) == 1 \
                    and defs[s.args[1].name].op == "transpose":
                w = defs[s.args[1].name].args[0]
                s = dataclasses.replace(s, op="matmul_rows_t", args=(s.args[0], w, *s.args[2:]))
            case K.If() | K.For():
                s = K.with_blocks(s, lambda b: _block(b, defs, counts))
        out.append(s)
    return out
