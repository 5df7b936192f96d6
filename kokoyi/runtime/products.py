"""Run-time kernels of products whose operands vary with different loop axes (per-head
projections and their sum: kokoyi/compiler/batch/rules.py einsum_matmul) and of attention
with a mask proved causal (kokoyi/compiler/rewrite/attention.py). Batched code calls them as
`kx.…` (re-exported by kokoyi.runtime.kernels)."""
from __future__ import annotations

import math

import torch.nn.functional as F


def causal_attention(q, k, v, mask):
    """Scaled dot-product attention with a mask known to be 0 on and below the diagonal and
    -inf above it (kokoyi/compiler/rewrite/attention.py): is_causal when the mask has the
    scores' size (rows of q, rows of k), else the mask as it is (broadcast, or torch's error)."""
    if mask.shape == (q.shape[-2], k.shape[-2]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def matmul_rows(x, w, nr: int, perm):
    """x @ w for every pair of x's matrices (leading axes L) and w's (leading axes R, none of
    L): one F.linear of all rows of x against w's matrices side by side, (L, m, R, k), then
    permuted (perm: None when already in place)."""
    return matmul_rows_t(x, w.transpose(-1, -2), nr, perm)


def matmul_rows_t(x, w, nr: int, perm):
    """matmul_rows(x, w^T): x @ w^T for every pair of x's matrices and w's (kokoyi/compiler/
    batch/transposed.py): w's matrices are F.linear's (out, in) as they are. (Per-head
    projections make a dozen of these a step: the common shapes take views with plain ints
    and a transpose, which cost a third of unflatten and permute with tuples.)"""
    if nr == 1 and w.dim() == 3:
        h, k, n = w.shape
        y = F.linear(x, w.reshape(h * k, n))
        if y.dim() == 3:
            b, m, _ = y.shape
            y = y.view(b, m, h, k)
        else:
            y = y.view(*y.shape[:-1], h, k)
    else:
        k, n = w.shape[-2], w.shape[-1]
        lead = tuple(w.shape[:nr])
        y = F.linear(x, w.reshape(math.prod(lead) * k, n)).unflatten(-1, lead + (k,))
    if perm is None:
        return y
    swap = _SWAPS.get(perm)
    if swap is None:
        swap = _SWAPS[perm] = _one_swap(perm)
    return y.permute(perm) if swap is False else y.transpose(*swap)


_SWAPS: dict = {}  # a permutation -> the two axes it swaps (False: it moves more)


def _one_swap(perm) -> tuple | bool:
    moved = [i for i, p in enumerate(perm) if p != i]
    if len(moved) == 2 and perm[moved[0]] == moved[1]:
        return tuple(moved)
    return False


def matmul_summed(x, w, pos: int):
    """sum_s x[..s..] @ w[s] (axis `pos` of x is s, w has s leading): one product of x's rows,
    their s matrices side by side, with w's stacked. (s just before the rows' last axis, as
    attention's heads are: the move is one swap, a transpose, cheaper than movedim's permute
    forward and backward.)"""
    moved = x.transpose(pos, -2) if pos == x.dim() - 3 else x.movedim(pos, -2)
    return moved.flatten(-2) @ w.flatten(0, 1)
