"""Run-time kernels of `A^{-1}` and `A^{-1} @ b` (LANGUAGE.md 6). Batched code calls them as
`kx.…` (re-exported by kokoyi.runtime.kernels).

A singular matrix has no inverse: its `A^{-1}` and `A^{-1} @ b` are NaN, as `\\log` of a
negative number is, with no error (docs/reference/choices.md#singular-matrices). torch's
`solve` and `inv` raise for a whole batch when one of its matrices is singular, even one in
a `cases` row that does not apply; their `_ex` forms report each matrix instead.
"""
from __future__ import annotations

import torch


def _nan_where_singular(x, info, trailing: int):
    """x, NaN in the results of the matrices info reports singular (info > 0). (No test of
    info in Python: that would wait for the device and break torch.compile's graph.)"""
    bad = (info != 0).reshape(info.shape + (1,) * trailing)
    return torch.where(bad, torch.full((), float("nan"), dtype=x.dtype, device=x.device), x)


def inverse(a):
    """A^{-1} of the last two axes."""
    x, info = torch.linalg.inv_ex(a)
    return _nan_where_singular(x, info, 2)


def solve(a, b):
    """A^{-1} @ b, b a matrix (the last two axes of each)."""
    x, info = torch.linalg.solve_ex(a, b)
    return _nan_where_singular(x, info, 2)


def solve_vector(a, b):
    """A^{-1} @ b, b a vector (the last axis)."""
    x, info = torch.linalg.solve_ex(a, b.unsqueeze(-1))
    return _nan_where_singular(x.squeeze(-1), info, 1)
