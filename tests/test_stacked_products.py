"""Products of one value with several layers outside a loop as one product (kokoyi/compiler/batch/fuse.py
`_fuse_straight`): a GRU's first step (three `W[k](x[0])`, three `U[k](h_0)`) and its inputs'
projections for all the later steps (three `W[k](x)`, batch/hoist.py) are one product each,
the layers stacked. Values and gradients against a hand-written loop, the fast form used, and
the fallback where the layers cannot be stacked."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import kokoyi
from kokoyi.runtime import kernels as kx
from kokoyi.runtime import ops as kk
from kokoyi.test_utils import Host

ROOT = Path(__file__).resolve().parents[1]

GRU = r"""\Function{Cell}{x, h, W, U}
  z \gets \Sigmoid(W[0](x) + U[0](h)) \\
  r \gets \Sigmoid(W[1](x) + U[1](h)) \\
  n \gets \tanh(W[2](x) + r * U[2](h)) \\
  \Return (1 - z) * n + z * h \\
\EndFunction

\Module{M}{x; W, U, h_0}
  h \gets \{ \begin{cases} Cell(x[t], h_0, W, U) & t = 0 \\ Cell(x[t], h[t-1], W, U) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule"""


def reference(x, h0, W, U):
    h, out = h0.expand(x.shape[0], -1), []
    for t in range(x.shape[1]):
        z = torch.sigmoid(W[0](x[:, t]) + U[0](h))
        r = torch.sigmoid(W[1](x[:, t]) + U[1](h))
        n = torch.tanh(W[2](x[:, t]) + r * U[2](h))
        h = (1 - z) * n + z * h
        out.append(h)
    return torch.stack(out, 1)


def make(bias: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    hidden, n = 6, 4
    torch.manual_seed(seed)
    W = torch.nn.ModuleList(torch.nn.Linear(n, hidden, bias=bias) for _ in range(3))
    U = torch.nn.ModuleList(torch.nn.Linear(hidden, hidden, bias=bias) for _ in range(3))
    h0 = torch.randn(hidden, generator=g, requires_grad=True)
    x = torch.randn(3, 5, n, generator=g)
    return W, U, h0, x


@pytest.mark.parametrize("bias", [True, False])
def test_values_gradients_and_one_product_per_input(bias, monkeypatch):
    kokoyi.compile(GRU, filename=f"stacked_{bias}.kyi")
    W, U, h0, x = make(bias, 4)
    model = Host((W, U, h0), kokoyi.symbol["M"])
    calls = []

    def spy(value, fused, ms, steps=None, k=0, qs=None, plan=()):
        calls.append((steps is None, fused is not None, len(ms)))
        return fast(value, fused, ms, steps, k, qs, plan)

    fast = kx.fused_product
    monkeypatch.setattr(kx, "fused_product", spy)
    linear_layers = []
    one_layer = kk.linear_layer
    monkeypatch.setattr(kk, "linear_layer", lambda layer, v: linear_layers.append(layer) or one_layer(layer, v))
    got = model(x, batch_level=[1])
    want = reference(x, h0, W, U)
    torch.testing.assert_close(got, want)
    params = [h0, *W.parameters(), *U.parameters()]
    target = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad(F.mse_loss(got, target), params),
                    torch.autograd.grad(F.mse_loss(want, target), params)):
        torch.testing.assert_close(a, b)
    # every product of a value with W's or U's layers is one product with the three stacked
    # (layers with biases; kx.fuse_layers gives None without): x[0] and h_0 in the first step,
    # outside the loop, then the step's input and state in each later step
    assert calls == [(True, bias, 3)] * (2 * x.shape[1]), calls
    assert linear_layers == [], linear_layers


def test_the_gru_seq2seq_makes_one_product_per_input_outside_its_loops(monkeypatch):
    # the example's GRU (a cell passed as a module): the first steps' x[0], h_0 and c, and the
    # later steps' inputs for all steps at once (batch/hoist.py), each times three layers
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import zoo_twins

    case = zoo_twins.gru(2, length=4)
    case.kokoyi()
    layers = []
    fast = kk.linear_layer
    monkeypatch.setattr(kk, "linear_layer", lambda layer, x: layers.append(layer) or fast(layer, x))
    case.kokoyi()
    assert layers == [case.models[0].f.Out], layers  # was 19: 6 per first step, 3 per input projection


def test_a_layer_with_a_hook_is_not_stacked_and_still_runs():
    kokoyi.compile(GRU, filename="stacked_hook.kyi")
    W, U, h0, x = make(True, 5)
    seen = []
    W[1].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    got = Host((W, U, h0), kokoyi.symbol["M"])(x, batch_level=[1])
    torch.testing.assert_close(got, reference(x, h0, W, U))
    assert seen  # the hook ran: W's layers went one by one (kx.fuse_layers gave None)
