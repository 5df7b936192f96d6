"""Kernels of recurrences (kokoyi/compiler/batch/sequences.py, hoist.py, fuse.py).

A recurrence keeps its elements in a Python list while its loop runs. An element read after
the loop (`h[|x|-1]`) is read from that list, so the elements are stacked only where the
whole sequence is read. Products of one value with several matrices in a loop's step are
one product with the matrices concatenated (once per call, before the loop: gradients flow
back to each matrix through the concatenation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kokoyi.runtime.kernels import _applies, _out_of_range
from kokoyi.runtime.ops import linear_layer, plain_linear


def read_states(states: list, k: int, where: str, name: str, guards, sizes, rank: int, floating: bool, dtype):
    """Element k of a finished recurrence (what reading its stacked elements at k gives)."""
    n = len(states)
    if -n <= k < n:
        return states[k]
    if _applies(guards):
        raise _out_of_range(where, name, k, n)
    if n:
        return states[0]
    return torch.zeros(tuple(sizes) + (0,) * rank, dtype=dtype if floating else torch.int64)


def column_blocks(w, sizes) -> tuple:
    """w's columns cut into consecutive blocks of these sizes (views); one size may be None:
    what the others leave."""
    known = sum(s for s in sizes if s is not None)
    sizes = [w.shape[-1] - known if s is None else s for s in sizes]
    return w.split(sizes, -1)


def fuse_rows(ws) -> tuple:
    """Matrices with the same columns stacked into one (once per call, before a loop), with
    their numbers of rows."""
    return torch.cat(ws, 0), [w.shape[0] for w in ws]


def fused_linear(x, fused, ws) -> tuple:
    """F.linear(x, w) for each w of ws, as one product split into views."""
    w, sizes = fused
    return F.linear(x, w).split(sizes, -1)


def fuse_layers(layers):
    """The weights and biases of torch.nn.Linear layers stacked (None unless every one is a
    plain layer with a bias: kk.linear_layer's rule, hooks run per call)."""
    if not all(plain_linear(layer) and isinstance(layer._parameters.get("weight"), torch.Tensor)
               and isinstance(layer._parameters.get("bias"), torch.Tensor) for layer in layers):
        return None
    return (torch.cat([layer._parameters["weight"] for layer in layers], 0),
            torch.cat([layer._parameters["bias"] for layer in layers], 0),
            [layer._parameters["weight"].shape[0] for layer in layers])


def fused_layers(x, fused, layers) -> tuple:
    """layer(x) for each layer, as one product split into views where they could be fused."""
    if fused is None:
        return tuple(linear_layer(layer, x) for layer in layers)
    w, b, sizes = fused
    return F.linear(x, w, b).split(sizes, -1)
