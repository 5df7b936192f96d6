"""The input's block of a fused product over Concat(state, x[t]) computed once for all steps
(kokoyi/compiler/batch/project.py, kokoyi/runtime/recur.py `project_steps`): values and
gradients against a hand-written loop, the fast form used (no concatenation per step), and the
fallback where the block cannot be taken out."""
from __future__ import annotations

import collections

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import kokoyi
from kokoyi.compiler.batch.batch_test import kernel
from kokoyi.compiler.batch.loops_test import BATCHED_SEQUENCE, MATRIX, loop, ops
from kokoyi.runtime import kernels as kx
from kokoyi.test_utils import Host

# Two gates of one product each over the concatenation, in either order
GATES = r"""\Module{M}{x; A, B, h_0}
  h \gets \{ \Sigmoid(A @ z_t) * \tanh(B @ z_t) \}_{t=0}^{|x|-1}
      \where z_t \gets \Concat(STATE) \\
  \Return h \\
\EndModule"""
STATE_FIRST = r"\begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}, x[t]"
INPUT_FIRST = r"x[t], \begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}"

# Affine layers (with biases) picked from a list, the input first: the seq2seq LSTM's form
LAYERS = r"""\Module{M}{x; L, h_0}
  h \gets \{ \Sigmoid(L[0](z_t)) * \tanh(L[1](z_t)) \}_{t=0}^{|x|-1}
      \where z_t \gets \Concat(x[t], \begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}) \\
  \Return h \\
\EndModule"""


def reference(x, h0, gate_a, gate_b, state_first: bool):
    h, out = h0.expand(x.shape[0], -1), []
    for t in range(x.shape[1]):
        z = torch.cat((h, x[:, t]) if state_first else (x[:, t], h), 1)
        h = torch.sigmoid(gate_a(z)) * torch.tanh(gate_b(z))
        out.append(h)
    return torch.stack(out, 1)


def aten_calls(fn) -> collections.Counter:
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::")
                               and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))


@pytest.mark.parametrize("state_first", [True, False])
def test_values_gradients_and_no_concatenation_per_step(state_first, monkeypatch):
    src = GATES.replace("STATE", STATE_FIRST if state_first else INPUT_FIRST)
    k = kernel(src, (BATCHED_SEQUENCE,), (MATRIX, MATRIX, ("tensor", 1, False)))
    _, for_ = loop(k)
    assert "project_steps" in ops(for_.pre) and "cat" not in ops(for_.body), ops(for_.body)

    kokoyi.compile(src, filename=f"project_{state_first}.kyi")
    g = torch.Generator().manual_seed(1)
    hidden, n = 5, 3
    A, B = (torch.randn(hidden, hidden + n, generator=g).requires_grad_() for _ in range(2))
    h0 = torch.randn(hidden, generator=g, requires_grad=True)
    model = Host((A, B, h0), kokoyi.symbol["M"])

    def run(x):
        return model(x, batch_level=[1])

    x = torch.randn(4, 7, n, generator=g)
    got = run(x)
    want = reference(x, h0, lambda z: F.linear(z, A), lambda z: F.linear(z, B), state_first)
    torch.testing.assert_close(got, want)
    target = torch.randn_like(want)
    grads = torch.autograd.grad(F.mse_loss(got, target), (A, B, h0))
    expected = torch.autograd.grad(F.mse_loss(want, target), (A, B, h0))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)
    # the fast form at run time: every step reads its input's projection, the first included (the
    # first step would widen h_0 to the samples for the Concat: the loop starts from h_0 widened,
    # batch/sequences.py `_expands_initial`)
    used = []

    def spy(proj, *args):
        used.append(proj is not None)
        return fast(proj, *args)

    fast = kx.projected_product
    monkeypatch.setattr(kx, "projected_product", spy)
    run(x)
    assert used == [True] * x.shape[1]
    # and one addmm per step forward, no concatenation: a longer sequence adds exactly that
    monkeypatch.undo()
    short, long = (aten_calls(lambda T=T: run(torch.randn(4, T, n))) for T in (6, 12))
    assert long["aten::addmm"] - short["aten::addmm"] == 6 and long["aten::cat"] == short["aten::cat"], (short, long)

def test_affine_layers_with_biases_input_first():
    kokoyi.compile(LAYERS, filename="project_layers.kyi")
    g = torch.Generator().manual_seed(2)
    hidden, n = 6, 4
    layers = torch.nn.ModuleList(torch.nn.Linear(n + hidden, hidden) for _ in range(2))
    h0 = torch.randn(hidden, generator=g, requires_grad=True)
    model = Host((layers, h0), kokoyi.symbol["M"])
    x = torch.randn(3, 5, n, generator=g)
    got = model(x, batch_level=[1])
    want = reference(x, h0, layers[0], layers[1], state_first=False)
    torch.testing.assert_close(got, want)
    params = [h0, *layers.parameters()]
    target = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad(F.mse_loss(got, target), params),
                    torch.autograd.grad(F.mse_loss(want, target), params)):
        torch.testing.assert_close(a, b)


def test_the_step_concatenates_where_the_block_cannot_be_taken_out():
    g = torch.Generator().manual_seed(3)
    ws = [torch.randn(5, 8, generator=g) for _ in range(2)]
    fused = kx.fuse_rows(ws)
    xs = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    assert kx.project_steps(fused, xs, 1, 1, 1) is None  # float64 inputs: the concatenation promotes
    assert kx.project_steps(fused, xs.float(), 2, 1, 1) is None  # unbound along the features
    proj = kx.project_steps(fused, xs.float(), 1, 1, 1)
    h = torch.randn(2, 5, generator=g)
    for k in range(4):
        whole = torch.cat(kx.projected_product(proj, k, (h, xs.float()[:, k]), 1, fused, ws, (None, None)), -1)
        torch.testing.assert_close(whole, torch.cat((h, xs.float()[:, k]), 1) @ torch.cat(ws).t())
    # a state of another width than the matrices' columns leave it: torch's own error, as before
    with pytest.raises(RuntimeError):
        kx.projected_product(proj, 0, (torch.randn(2, 4), xs.float()[:, 0]), 1, fused, ws, (None, None))
