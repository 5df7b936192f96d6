from __future__ import annotations

import pytest
import torch

from kokoyi.runtime.factors import multiply_along


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 13])
@pytest.mark.parametrize("pos", [0, 1, -1])
def test_values_and_gradients_are_torchs_where_every_factor_is_finite_and_nonzero(n, pos):
    x = (torch.rand(3, n, dtype=torch.float64) + 0.5).requires_grad_() if pos else \
        (torch.rand(n, 3, dtype=torch.float64) + 0.5).requires_grad_()
    ours, theirs = multiply_along(x, pos), x.prod(pos)
    assert torch.allclose(ours, theirs)
    w = torch.randn_like(theirs)
    assert torch.allclose(torch.autograd.grad((ours * w).sum(), x)[0], torch.autograd.grad((theirs * w).sum(), x)[0])


def test_a_nan_factor_gets_the_product_of_the_others_and_the_others_get_nan():
    x = torch.tensor([2.0, float("nan"), 3.0], requires_grad=True)
    (g,) = torch.autograd.grad(multiply_along(x, 0), x)
    assert g[1] == 6.0 and g[0].isnan() and g[2].isnan()
    assert torch.autograd.grad(x.prod(0), x)[0][1].isnan()  # what torch's own prod gives


def test_zeros_and_integers_as_torchs_prod():
    x = torch.tensor([[2.0, 0.0, 3.0, 0.5]], requires_grad=True)
    (g,) = torch.autograd.grad(multiply_along(x, 1).sum(), x)
    assert g.tolist() == [[0.0, 3.0, 0.0, 0.0]]
    ints = torch.tensor([[2, 3], [4, 5]], dtype=torch.int32)
    assert multiply_along(ints, 1).dtype == ints.prod(1).dtype == torch.int64
