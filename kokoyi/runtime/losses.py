"""The losses recognised forms compute (kokoyi/compiler/rewrite/cross_entropy.py, huber.py,
reduced_loss.py): per row, or reduced over the last leading axis (the minibatch) inside the
torch loss (reduction='mean' / 'sum')."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kokoyi.runtime.reads import _out_of_range, gather


def cross_entropy_rows(z, y, upper: int, where: str, name: str):
    """log sum_{k <= upper} exp(z[k]) - z[y] per row (z and y lined up on their leading axes):
    F.cross_entropy when the sum runs over all of z."""
    size = z.shape[-1]
    if upper >= size:
        raise _out_of_range(where, name, upper, size)
    if upper == size - 1:
        flat = z.dim() == 2  # one leading axis: F.cross_entropy's own layout, no reshapes
        rows, labels = (z, y) if flat else (z.reshape(-1, size), y.reshape(-1))
        if z.is_cpu:
            # torch checks every label on the CPU: a negative one (Python's meaning: from the
            # end) or one out of range fails, and only then are labels wrapped and checked here.
            # No label can be mistaken for the ignored one (ignore_index is below any int64).
            try:
                out = F.cross_entropy(rows, labels, reduction="none", ignore_index=_NO_LABEL)
            except (IndexError, RuntimeError):
                out = _cross_entropy_wrapped(rows, labels, size, where, name)
        else:
            out = _cross_entropy_wrapped(rows, labels, size, where, name)
        return out if flat else out.reshape(z.shape[:-1])
    y = torch.where(y < 0, y + size, y)  # Python's meaning of a negative index
    picked = gather(z, z.dim() - 1, (y,), where, name, ())
    return z[..., :upper + 1].logsumexp(-1) - picked


_NO_LABEL = -(2 ** 63)


def _cross_entropy_wrapped(rows, labels, size: int, where: str, name: str):
    """The cross-entropy with Python's meaning of negative labels, any integer dtype, and the
    located error naming the first label out of range."""
    bad = (labels < -size) | (labels >= size)
    if bool(bad.any()):
        raise _out_of_range(where, name, int(labels[bad][0]), size)
    labels = torch.where(labels < 0, labels + size, labels).long()
    return F.cross_entropy(rows, labels, reduction="none", ignore_index=_NO_LABEL)


def cross_entropy_reduced(z, y, upper: int, op: str, where: str, name: str):
    """The mean or sum over the last leading axis of cross_entropy_rows(z, y, ...): one
    F.cross_entropy with that reduction for one (rows, classes) matrix on the CPU whose sum
    runs over all of z; else the rows, reduced. A label torch rejects takes the checked path
    (Python's meaning of a negative label, or the located error)."""
    shape = z.shape  # (read once: each .shape makes a torch.Size)
    if len(shape) == 2 and upper == shape[1] - 1 and shape[0] and z.is_cpu:
        try:
            return F.cross_entropy(z, y, reduction=op, ignore_index=_NO_LABEL)
        except (IndexError, RuntimeError):
            pass
    rows = cross_entropy_rows(z, y, upper, where, name)
    return rows.mean(-1) if op == "mean" else rows.sum(-1)


def huber_rows(p, q, d: float):
    """The Huber loss of p - q per element (q None: of p), q as F.huber_loss's target: no
    difference nor zeros made when p and q are tensors of one dtype and shape."""
    if not (isinstance(q, torch.Tensor) and isinstance(p, torch.Tensor) and p.dtype == q.dtype
            and p.shape == q.shape):
        delta = p if q is None else p - q
        return F.huber_loss(delta, torch.zeros_like(delta), reduction="none", delta=d)
    return F.huber_loss(p, q, reduction="none", delta=d)


def huber_reduced(p, q, d: float, op: str):
    """huber_rows(p, q, d) reduced (mean or sum) over its last axis: inside F.huber_loss for
    one axis of values."""
    if isinstance(q, torch.Tensor) and isinstance(p, torch.Tensor):
        shape = p.shape
        if len(shape) == 1 and shape[0] and p.dtype == q.dtype and shape == q.shape:
            return F.huber_loss(p, q, reduction=op, delta=d)
    rows = huber_rows(p, q, d)
    return rows.mean(-1) if op == "mean" else rows.sum(-1)


def bce_logits(eta, x, op):
    """softplus(eta) - x * eta per element (op None), or its mean or sum over the last axis:
    F.binary_cross_entropy_with_logits, reduced inside it for one axis of values. (eta and x
    come lined up; they broadcast, and their dtypes are promoted, as the product's would.)"""
    if eta.dtype != x.dtype:
        dtype = torch.promote_types(eta.dtype, x.dtype)
        eta, x = eta.to(dtype), x.to(dtype)
    shape = eta.shape
    if shape != x.shape:  # (operands broadcast against each other)
        eta, x = torch.broadcast_tensors(eta, x)
        shape = eta.shape
    if op is not None and len(shape) == 1 and shape[0]:
        return F.binary_cross_entropy_with_logits(eta, x, reduction=op)
    out = F.binary_cross_entropy_with_logits(eta, x, reduction="none")
    return out if op is None else out.mean(-1) if op == "mean" else out.sum(-1)
