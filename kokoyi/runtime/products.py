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
    n, k = w.shape[-2], w.shape[-1]
    lead = tuple(w.shape[:nr])
    y = F.linear(x, w.transpose(-1, -2).reshape(math.prod(lead) * k, n))
    y = y.unflatten(-1, lead + (k,))
    return y if perm is None else y.permute(perm)


def matmul_rows_t(x, w, nr: int, perm):
    """matmul_rows(x, w^T): x @ w^T for every pair of x's matrices and w's (kokoyi/compiler/
    batch/transposed.py): w's matrices are F.linear's (out, in) as they are."""
    k, n = w.shape[-2], w.shape[-1]
    lead = tuple(w.shape[:nr])
    y = F.linear(x, w.reshape(math.prod(lead) * k, n))
    y = y.unflatten(-1, lead + (k,))
    return y if perm is None else y.permute(perm)


def matmul_summed(x, w, pos: int):
    """sum_s x[..s..] @ w[s] (axis `pos` of x is s, w has s leading): one product of x's rows,
    their s matrices side by side, with w's stacked."""
    return x.movedim(pos, -2).flatten(-2) @ w.flatten(0, 1)
