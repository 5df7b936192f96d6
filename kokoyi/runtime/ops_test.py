"""Tests of the per-sample functions compiled code calls (kokoyi.runtime.ops, imported as kk)."""
from __future__ import annotations

import math

import pytest
import torch

from kokoyi.errors import KokoyiRuntimeError
from kokoyi.runtime import ops as kk


def close(a, b, tol=1e-6) -> bool:
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol)


# ---- element-wise ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, ref", [("exp", torch.exp), ("log", torch.log), ("sin", torch.sin), ("cos", torch.cos),
                                       ("tan", torch.tan), ("sinh", torch.sinh), ("cosh", torch.cosh),
                                       ("tanh", torch.tanh), ("sigmoid", torch.sigmoid)])
def test_float_functions_accept_numbers_and_integer_tensors(name, ref):
    fn = getattr(kk, name)
    out = fn(2)  # a Python float or a floating-point tensor
    assert isinstance(out, float) or (isinstance(out, torch.Tensor) and out.is_floating_point())
    assert close(out, ref(torch.tensor(2.0)))
    ints = torch.tensor([1, 2])
    assert close(fn(ints), ref(ints.float()))


@pytest.mark.parametrize("name, x", [("exp", 1e4), ("cosh", 1e4), ("cosh", -1e4), ("sinh", 1e4), ("sinh", -1e4)])
def test_python_numbers_that_overflow_are_infinite_as_a_tensors_are(name, x):
    # (the power's overflow helper once shadowed this one's: exp of a large number raised TypeError)
    assert getattr(kk, name)(x) == getattr(torch, name)(torch.tensor(x, dtype=torch.float64)).item()


def test_powers_of_python_numbers_that_overflow_are_infinite():
    assert kk.power(10.0, 400) == math.inf and kk.power(-10.0, 401) == -math.inf and kk.power(-10.0, 400) == math.inf
    assert kk.power(10, 5000) == math.inf and kk.power(0, -1) == math.inf


def test_sqrt_of_numbers_and_tensors():
    assert kk.sqrt(4) == 2.0 and isinstance(kk.sqrt(4), float)
    assert close(kk.sqrt(torch.tensor([4.0, 9.0])), [2.0, 3.0])
    assert torch.isnan(torch.as_tensor(kk.sqrt(-1.0)))


def test_sign_relu_softplus_gelu():
    x = torch.tensor([-2.0, 0.0, 3.0])
    assert kk.sign(x).tolist() == [-1.0, 0.0, 1.0]
    assert kk.relu(x).tolist() == [0.0, 0.0, 3.0]
    assert close(kk.softplus(0), math.log(2)) and close(kk.gelu(x), torch.nn.functional.gelu(x))


# ---- along the last axis, reductions -----------------------------------------------------------


# ---- others ----------------------------------------------------------------------------------------


def test_one_hot():
    assert kk.one_hot(2, 4).tolist() == [0.0, 0.0, 1.0, 0.0]
    assert kk.one_hot(torch.tensor(0), 2).dtype == torch.get_default_dtype()


def test_losses():
    logits, label = torch.tensor([1.0, 2.0, 0.5]), torch.tensor(1)
    assert close(kk.cross_entropy(logits, label), torch.nn.functional.cross_entropy(logits[None], label[None]))
    assert close(kk.cross_entropy(logits, 1), -torch.log_softmax(logits, -1)[1])


def test_cross_entropy_of_rows_is_torchs_fused_loss_with_the_same_values_gradients_and_errors():
    z = torch.randn(3, 4, 5, requires_grad=True)
    y = torch.randint(0, 5, (3, 4))
    written = -torch.gather(torch.log_softmax(z, -1), -1, y.unsqueeze(-1)).squeeze(-1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        got = kk.cross_entropy(z, y)
    assert "aten::nll_loss_forward" in {e.key for e in prof.key_averages()}
    assert got.shape == (3, 4) and close(got, written)
    assert close(torch.autograd.grad(got.sum(), z)[0], torch.autograd.grad(written.sum(), z)[0])
    assert close(kk.cross_entropy(z[0], y[0]), written[0])  # (rows, classes) as it is
    for bad in (-1, 5, -100):  # -100 is not torch's ignored label here: every label is checked
        y_bad = y.clone()
        y_bad[1, 2] = bad
        with pytest.raises(RuntimeError, match="out of bounds"):
            kk.cross_entropy(z, y_bad)


# ---- lengths, norms, transpose ----------------------------------------------------------------


# ---- ranges -------------------------------------------------------------------------------------


# ---- discounted suffix sums ------------------------------------------------------------------
def suffix_reference(r: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + gamma G_{t+1} along the last axis, in float64, one step at a time."""
    r64 = r.double()
    out = torch.zeros_like(r64)
    running = torch.zeros(r64.shape[:-1], dtype=torch.float64)
    for t in range(r64.shape[-1] - 1, -1, -1):
        running = r64[..., t] + gamma * running
        out[..., t] = running
    return out


@pytest.mark.parametrize("shape, gamma", [
    ((1,), 0.99), ((5,), 0.5), ((200,), 0.99),  # one small matrix product (torch.mv)
    ((16, 200), 0.99),  # small batch: matrix product
    ((64, 200), 0.99), ((2000,), 0.99),  # closed form in float32
    ((9000,), 0.99),  # past float32's range (8 800 steps overflow gamma^-t): closed form in float64
    ((2, 70000), 0.99),  # past e^600: chunked scan
    ((300,), 1.0), ((3, 300), 0.0), ((300,), -0.5), ((40,), 1.01),  # other gammas
])
def test_discounted_suffix_sum_matches_the_recurrence_in_every_regime(shape, gamma):
    r = torch.randn(shape, generator=torch.Generator().manual_seed(len(shape) * 1000 + shape[-1]))
    got = kk.discounted_suffix_sum(r, gamma, -1)
    want = suffix_reference(r, gamma)
    assert got.dtype == torch.float32 and got.shape == r.shape and torch.isfinite(got).all()
    scale = want.abs().max().clamp(min=1.0)
    assert ((got.double() - want).abs().max() / scale) < 2e-6


def test_discounted_suffix_sum_keeps_float64_exact():
    r = torch.rand(3000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = kk.discounted_suffix_sum(r, 0.999, 0)
    assert got.dtype == torch.float64
    assert ((got - suffix_reference(r, 0.999)).abs() / suffix_reference(r, 0.999)).max() < 1e-12


def test_discounted_suffix_sum_along_an_inner_axis_and_of_integers():
    r = torch.randint(0, 5, (7, 3))
    got = kk.discounted_suffix_sum(r, 0.9, 0)
    assert got.is_floating_point()
    assert close(got, suffix_reference(r.t().float(), 0.9).t(), 1e-5)


def test_discounted_suffix_sum_passes_gradients_to_rewards_and_gamma():
    r = torch.rand(2, 50, dtype=torch.float64, requires_grad=True)
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    got = kk.discounted_suffix_sum(r, gamma, 1)
    running, want = torch.zeros(2, dtype=torch.float64), []
    for t in range(49, -1, -1):
        running = r[:, t] + gamma * running
        want.append(running)
    want = torch.stack(want[::-1], 1)
    assert close(got, want, 1e-10)
    g1 = torch.autograd.grad((got * got).sum(), [r, gamma])
    g2 = torch.autograd.grad((want * want).sum(), [r, gamma])
    assert all(close(a, b, 1e-8) for a, b in zip(g1, g2))


def test_discounted_window_parts_of_the_sequence():
    r = torch.rand(10, generator=torch.Generator().manual_seed(3))
    full = suffix_reference(r, 0.9)
    # t = 2..5 of sums that stop at s = 7
    assert close(kk.discounted_window(r, 0.9, 0, 2, 5, 7, 0, "w"), suffix_reference(r[:8], 0.9)[2:6])
    # t runs past the last element: those sums are empty, zero
    assert close(kk.discounted_window(r, 0.9, 0, 8, 11, 9, 0, "w"), torch.cat([full[8:], torch.zeros(2)]))
    # the last index is before the first: all empty
    assert close(kk.discounted_window(r, 0.9, 0, 0, 2, 0, -1, "w"), torch.zeros(3))
    with pytest.raises(KokoyiRuntimeError, match="w: index 10 out of range"):
        kk.discounted_window(r, 0.9, 0, 0, 9, 10, 0, "w")
    with pytest.raises(KokoyiRuntimeError, match="starts before the first element"):
        kk.discounted_window(r, 0.9, 0, -1, 9, 9, 0, "w")


def test_standardize_is_mean_and_population_std():
    x = torch.randn(4, 30, generator=torch.Generator().manual_seed(5))
    want = (x - x.mean(-1, keepdim=True)) / x.std(-1, correction=0, keepdim=True)
    assert close(kk.standardize(x), want, 1e-6)


# ---- layers ------------------------------------------------------------------------------------
def test_linear_layer_is_the_layer_and_keeps_gradients():
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3, requires_grad=True)
    got = kk.linear_layer(layer, x)
    assert torch.equal(got, layer(x))
    got.sum().backward()
    assert layer.weight.grad is not None and x.grad is not None
    no_bias = torch.nn.Linear(3, 2, bias=False)
    assert torch.equal(kk.linear_layer(no_bias, x), no_bias(x))


def test_linear_layer_respects_hooks_subclasses_and_parametrizations():
    x = torch.randn(3)
    layer = torch.nn.Linear(3, 2)
    seen = []
    handle = layer.register_forward_hook(lambda m, inp, out: seen.append(out.shape) or out * 0)
    assert torch.equal(kk.linear_layer(layer, x), torch.zeros(2)) and seen == [torch.Size([2])]
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda m, inp: (inp[0] * 0,))
    try:
        assert torch.equal(kk.linear_layer(layer, x), layer.bias)
    finally:
        handle.remove()

    class Doubled(torch.nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    doubled = Doubled(3, 2)
    assert torch.equal(kk.linear_layer(doubled, x), 2 * torch.nn.functional.linear(x, doubled.weight, doubled.bias))
    normed = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(3, 2))
    assert torch.allclose(kk.linear_layer(normed, x), normed(x))
    from torch.nn.utils import prune

    pruned = prune.l1_unstructured(torch.nn.Linear(3, 2), "weight", amount=0.5)
    assert torch.equal(kk.linear_layer(pruned, x), pruned(x))
    assert torch.equal(kk.linear_layer(pruned, x), torch.nn.functional.linear(x, pruned.weight, pruned.bias))


def test_conv2d_layer_is_the_layers_own_call_and_leaves_hooks_and_other_paddings_to_it():
    torch.manual_seed(0)
    x = torch.randn(3, 2, 6, 6)
    for layer in (torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.Conv2d(2, 4, 3, stride=2, bias=False),
                  torch.nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")):
        got, want = kk.conv2d_layer(layer, x), layer(x)
        assert torch.equal(got, want)
        assert all(torch.equal(a, b) for a, b in zip(torch.autograd.grad(got.sum(), list(layer.parameters())),
                                                     torch.autograd.grad(want.sum(), list(layer.parameters()))))
    seen = []
    handle = layer.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    kk.conv2d_layer(layer, x)
    handle.remove()
    assert seen == [(3, 4, 6, 6)]


def test_gelu_takes_a_strided_gradient():
    """torch's CPU GELU backward rejects a diagonal's strided gradient (pytorch#112006); kk.gelu
    hands it a contiguous one, with the gradient F.gelu gives."""
    x = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.2, 1.5]], requires_grad=True)
    (g,) = torch.autograd.grad(torch.diag_embed(kk.gelu(x)).diagonal(0, -2, -1)[:, 0].sum(), x)
    y = x.detach().clone().requires_grad_(True)
    (want,) = torch.autograd.grad(torch.nn.functional.gelu(y)[:, 0].sum(), y)
    assert torch.equal(g, want)
