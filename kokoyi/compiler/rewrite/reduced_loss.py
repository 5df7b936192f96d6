"""A mean or sum over an axis of a per-row loss, `\\mathbb{E}_{b=0}^{B-1} \\ell(z_b, y_b)` or
`\\sum_b \\ell(...)` with ℓ a recognised cross-entropy, Huber loss or binary cross-entropy of a logit (the minibatch loss as papers
write it, 1/|B| Σ ℓ_i): the torch loss with reduction='mean' / 'sum' over that axis, one
`nll_loss`, `huber_loss` or `binary_cross_entropy_with_logits` with its reduction inside instead of the per-row losses, a `mean`
and its backward.

The rewrite only marks the reduction (`reduced_loss`, whose original is the reduction as
written); the batch pass (kokoyi/compiler/batch/fast.py, `loss_reduction`) lets the row
loss at the end of the body (through its lets) reduce over the axis itself where the range
is rectangular and the axis is the loss's last one; anywhere else the rows are computed and
reduced as written. Exact up to the order of the floating-point sum.
"""
from __future__ import annotations

from kokoyi.compiler import ir

ROW_LOSSES = ("cross_entropy", "huber", "bce_logits")


def tail(e):
    """The value a chain of lets ends in (through the markers of inlined functions)."""
    while isinstance(e, (ir.Let, ir.At)):
        e = e.body
    return e


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Reduce, None),)


def rewrite(e, env):
    if not (isinstance(e, ir.Reduce) and e.op in ("mean", "sum")):
        return None
    loss = tail(e.body)
    if not (isinstance(loss, ir.Fast) and loss.op in ROW_LOSSES):
        return None
    return ir.Fast("reduced_loss", (ir.Lit(e.op),), e, span=e.span)
