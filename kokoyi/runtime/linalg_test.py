"""Singular matrices in A^{-1} and A^{-1} @ b: NaN for that matrix, the others as torch."""
from __future__ import annotations

import math

import torch

from kokoyi.runtime import linalg

SINGULAR = torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float64)
REGULAR = torch.tensor([[2.0, 1.0], [0.5, 3.0]], dtype=torch.float64)


def test_a_regular_batch_is_torch_s_solve_and_inverse_with_gradients():
    a = torch.stack([REGULAR, REGULAR.T]).requires_grad_()
    b = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=torch.float64, requires_grad=True)
    got = linalg.solve_vector(a, b)
    want = torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(got, want)
    g_got = torch.autograd.grad(got.sum(), (a, b))
    g_want = torch.autograd.grad(want.sum(), (a, b))
    assert all(torch.allclose(x, y) for x, y in zip(g_got, g_want))
    assert torch.allclose(linalg.inverse(a), torch.linalg.inv(a))
    m = torch.eye(2, dtype=torch.float64).expand(2, 2, 2)
    assert torch.allclose(linalg.solve(a, m), torch.linalg.inv(a))


def test_a_singular_matrix_gives_nan_for_itself_only():
    a = torch.stack([REGULAR, SINGULAR]).requires_grad_()
    b = torch.ones(2, 2, dtype=torch.float64)
    x = linalg.solve_vector(a, b)
    assert torch.allclose(x[0], torch.linalg.solve(REGULAR, torch.ones(2, dtype=torch.float64)))
    assert bool(x[1].isnan().all())
    inv = linalg.inverse(a)
    assert torch.allclose(inv[0], torch.linalg.inv(REGULAR)) and bool(inv[1].isnan().all())
    assert bool(linalg.solve(a, b.unsqueeze(-1))[1].isnan().all())
    # the regular matrix's gradient is torch's (the singular one's is undefined)
    (g,) = torch.autograd.grad(x[0].sum(), a)
    (want,) = torch.autograd.grad(torch.linalg.solve(REGULAR.requires_grad_(), torch.ones(2, dtype=torch.float64)).sum(),
                                  REGULAR)
    assert torch.allclose(g[0], want)
    REGULAR.requires_grad_(False)


def test_one_singular_matrix_is_nan_in_float32_too():
    x = linalg.inverse(SINGULAR.float())
    assert x.dtype == torch.float32 and all(math.isnan(v) for v in x.flatten().tolist())
