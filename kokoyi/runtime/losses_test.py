"""The losses' kernels (kokoyi/runtime/losses.py): reduced inside torch's loss where they can,
the rows reduced otherwise, with the same values, gradients and errors."""
import pytest
import torch
import torch.nn.functional as F

from kokoyi.errors import KokoyiRuntimeError
from kokoyi.runtime import kernels as kx


@pytest.mark.parametrize("op", ["mean", "sum"])
def test_cross_entropy_reduced_is_the_rows_reduced(op):
    z = torch.randn(6, 5, requires_grad=True)
    y = torch.tensor([0, 4, -1, 2, 3, -5])  # negative labels: Python's meaning
    got = kx.cross_entropy_reduced(z, y, 4, op, "f:1:1", "z")
    rows = kx.cross_entropy_rows(z, y, 4, "f:1:1", "z")
    want = rows.mean() if op == "mean" else rows.sum()
    assert torch.allclose(got, want)
    assert torch.allclose(*(torch.autograd.grad(v, z)[0] for v in (got, want)))
    # labels torch accepts: one nll_loss with the reduction inside, no per-row losses
    g = kx.cross_entropy_reduced(z, y.abs() % 5, 4, op, "f:1:1", "z").grad_fn
    assert type(g).__name__.startswith("NllLoss"), g
    # more leading axes, and a sum over part of the classes: the rows reduced
    z3 = z.detach().reshape(2, 3, 5)
    assert torch.allclose(kx.cross_entropy_reduced(z3, y.reshape(2, 3), 4, op, "f:1:1", "z"),
                          getattr(kx.cross_entropy_rows(z3, y.reshape(2, 3), 4, "f:1:1", "z"), op)(-1))
    part = kx.cross_entropy_reduced(z, y.abs() % 3, 2, op, "f:1:1", "z")
    assert torch.allclose(part, getattr(kx.cross_entropy_rows(z, y.abs() % 3, 2, "f:1:1", "z"), op)())
    with pytest.raises(KokoyiRuntimeError, match=r"f:1:1: index 7 is out of range for `z`"):
        kx.cross_entropy_reduced(z, torch.tensor([0, 7, 1, 1, 1, 1]), 4, op, "f:1:1", "z")


def test_huber_takes_the_difference_s_right_side_as_its_target():
    p, q = torch.randn(7, requires_grad=True), torch.randn(7, requires_grad=True) * 2
    want = F.huber_loss(p - q, torch.zeros(7), reduction="none", delta=1.5)
    got = kx.huber_rows(p, q, 1.5)
    assert torch.allclose(got, want)
    assert type(got.grad_fn).__name__ == "HuberLossBackward0"  # no SubBackward: q is the target
    for a, b in zip(torch.autograd.grad(got.sum(), (p, q)), torch.autograd.grad(want.sum(), (p, q))):
        assert torch.allclose(a, b)
    assert torch.allclose(kx.huber_reduced(p, q, 1.5, "mean"), want.mean())
    assert torch.allclose(kx.huber_reduced(p, None, 1.5, "sum"),
                          F.huber_loss(p, torch.zeros(7), reduction="sum", delta=1.5))
    # another dtype, or a Python number: the difference, as written
    assert torch.allclose(kx.huber_rows(p, q.double(), 1.5), want.double())
    assert torch.allclose(kx.huber_rows(p, 0.5, 1.5), F.huber_loss(p - 0.5, torch.zeros(7), reduction="none", delta=1.5))


def test_bce_logits_is_softplus_minus_the_product():
    eta, x = torch.randn(3, 4, requires_grad=True) * 4, torch.rand(3, 4, requires_grad=True)
    for op, reduce in ((None, lambda v: v), ("sum", lambda v: v.sum(-1)), ("mean", lambda v: v.mean(-1))):
        want = F.softplus(eta) - x * eta
        got = kx.bce_logits(eta, x, op)
        assert torch.allclose(got, reduce(want), atol=1e-6)
        for a, b in zip(torch.autograd.grad(got.sum(), (eta, x)), torch.autograd.grad(reduce(want).sum(), (eta, x))):
            assert torch.allclose(a, b, atol=1e-6)
    # operands that broadcast, or of two dtypes
    assert torch.allclose(kx.bce_logits(eta[0], x[:, :1], None), F.softplus(eta[0]) - x[:, :1] * eta[0], atol=1e-6)
    assert kx.bce_logits(eta[0], x[0].double(), "sum").dtype == torch.float64
