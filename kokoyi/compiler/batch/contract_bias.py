"""A contraction and the vector added to it, `\\{ \\sum(V_k * h) \\}_{k=0}^{K-1} + b` (a dense
layer written per class), as one kernel call: `kx.contract_add`, which is F.linear with b as
its bias (one addmm, as hand-written PyTorch has it) when b is a vector of the contraction's
length, and the contraction then the addition otherwise.

A kernel peephole after clean-up: the contraction's value is read by that addition alone,
the statement right after it (so no other statement's error can come between them).
"""
from __future__ import annotations

from kokoyi.compiler import kernel as K


def fuse_contract_bias(block: list, uses: dict) -> list:
    """block with each such pair of statements made one (uses: how often each name is read)."""
    out: list = []
    for s in block:
        if isinstance(s, (K.If, K.For)):
            s = K.with_blocks(s, lambda b: fuse_contract_bias(b, uses))
        elif isinstance(s, K.Assign) and s.op == "add" and not s.attrs.get("py") and out:
            prev = out[-1]
            if (isinstance(prev, K.Assign) and prev.op == "contract" and prev.out is not None
                    and uses.get(prev.out) == 1 and not prev.attrs):
                left, right = s.args
                bias = right if left == K.Ref(prev.out) else left if right == K.Ref(prev.out) else None
                if bias is not None and bias != K.Ref(prev.out):
                    out[-1] = K.Assign(s.out, "contract_add", prev.args + (bias,), {}, s.line or prev.line)
                    continue
        out.append(s)
    return out


def count_uses(block: list, counts: dict) -> dict:
    """How often each name is read in block (arguments, conditions, bounds, returns)."""
    for s in K.statements(block):
        _count_refs(K.reads(s), counts)
    return counts


def _count_refs(a, counts: dict) -> None:
    # (K.refs without a generator per level: every argument of every statement is walked)
    if isinstance(a, K.Ref):
        counts[a.name] = counts.get(a.name, 0) + 1
    elif isinstance(a, (tuple, list)):
        for x in a:
            _count_refs(x, counts)
