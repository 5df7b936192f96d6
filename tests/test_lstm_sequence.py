"""A loop whose step is an LSTM cell runs as torch's LSTM (kokoyi/compiler/batch/lstm.py,
kokoyi/runtime/recur.py `lstm_sequence`): values and gradients against a hand-written LSTM, the
fast form used, the loop where it does not apply (one sample, c read after the loop), and the
loop's own step (what runs then) counted in aten calls."""
from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import kokoyi
from kokoyi.runtime import kernels as kx
from kokoyi.test_utils import Host

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from zoo_twins import LSTM_SOURCE  # noqa: E402

PRODUCTS = ("aten::mm", "aten::addmm", "aten::linear", "aten::matmul")
# the gates as affine layers on Concat(x[t], h[t-1]) (the input first), and c's last state read
# after the loop: torch's LSTM gives only that one, but the loop must run to keep it
LAYERS = r"""\Module{M}{x; F, h_0, c_0}
  c \gets \{ \Sigmoid(F[0](z_t)) * \begin{cases} c_0 & t = 0 \\ c[t-1] & \text{otherwise} \end{cases} + \Sigmoid(F[1](z_t)) * \tanh(F[2](z_t)) \}_{t=0}^{|x|-1}
      \where z_t \gets \Concat(x[t], \begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}) \\
  h \gets \{ \Sigmoid(F[3](\Concat(x[t], \begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}))) * \tanh(c[t]) \}_{t=0}^{|x|-1} \\
  \Return READ \\
\EndModule"""


def hand_lstm(x, h0, c0, gate):
    """gate(k, z): the gate k (forget, input, cell, output) of z = [x_t, h] or [h, x_t]."""
    h, c, hs, cs = h0.expand(x.shape[0], -1), c0.expand(x.shape[0], -1), [], []
    for t in range(x.shape[1]):
        f, i, g, o = (gate(k, h, x[:, t]) for k in range(4))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs, 1), torch.stack(cs, 1)


def spy(monkeypatch) -> list:
    """The answers of kx.lstm_sequence (False: torch's LSTM ran the steps)."""
    answers, real = [], kx.lstm_sequence

    def wrapped(*args):
        answers.append(real(*args))
        return answers[-1]

    monkeypatch.setattr(kx, "lstm_sequence", wrapped)
    return answers


def params(hidden, cols, seed):
    g = torch.Generator().manual_seed(seed)
    mats = [torch.randn(hidden, cols, generator=g).div(cols ** 0.5).requires_grad_() for _ in range(4)]
    h0, c0 = (torch.randn(hidden, generator=g).requires_grad_() for _ in range(2))
    return mats, h0, c0, g


def test_values_gradients_and_the_fast_form(monkeypatch):
    kokoyi.compile(LSTM_SOURCE, filename="lstm_sequence_test.kyi")
    hidden, n = 6, 3
    (wf, wi, wc, wo), h0, c0, g = params(hidden, hidden + n, 1)
    model = Host((wf, wi, wc, wo, h0, c0), kokoyi.symbol["LSTM"])
    x = torch.randn(4, 7, n, generator=g)
    answers = spy(monkeypatch)
    got = model(x, batch_level=[1])
    assert answers == [False]  # torch's LSTM ran the steps after the first
    want, _ = hand_lstm(x, h0, c0, lambda k, h, xt: F.linear(torch.cat((h, xt), 1), (wf, wi, wc, wo)[k]))
    torch.testing.assert_close(got, want)
    ps = [wf, wi, wc, wo, h0, c0]
    target = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad(F.mse_loss(got, target), ps),
                    torch.autograd.grad(F.mse_loss(want, target), ps, retain_graph=True)):
        torch.testing.assert_close(a, b)
    # where torch's LSTM does not apply (here: traced), the loop runs, with the same values
    answers.clear()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    looped = model(x, batch_level=[1])
    assert answers == [True]
    torch.testing.assert_close(looped, want)
    for a, b in zip(torch.autograd.grad(F.mse_loss(looped, target), ps),
                    torch.autograd.grad(F.mse_loss(want, target), ps)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("read, fast", [("h", True), ("c[|x|-1]", False)])
def test_affine_layers_input_first_and_c_read_after_the_loop(monkeypatch, read, fast):
    kokoyi.compile(LAYERS.replace("READ", read), filename=f"lstm_layers_{fast}.kyi")
    hidden, n = 5, 4
    torch.manual_seed(2)
    layers = torch.nn.ModuleList(torch.nn.Linear(n + hidden, hidden) for _ in range(4))
    _, h0, c0, g = params(hidden, 1, 3)
    model = Host((layers, h0, c0), kokoyi.symbol["M"])
    x = torch.randn(3, 6, n, generator=g)
    answers = spy(monkeypatch)
    got = model(x, batch_level=[1])
    assert answers == ([False] if fast else [])  # c read after the loop: no torch LSTM
    hs, cs = hand_lstm(x, h0, c0, lambda k, h, xt: layers[k](torch.cat((xt, h), 1)))
    want = hs if fast else cs[:, -1]
    torch.testing.assert_close(got, want)
    ps = [h0, c0, *layers.parameters()]
    for a, b in zip(torch.autograd.grad(got.square().sum(), ps), torch.autograd.grad(want.square().sum(), ps)):
        torch.testing.assert_close(a, b)


def test_the_loops_step_where_torchs_lstm_does_not_apply(monkeypatch):
    # traced, the loop runs; its step is one product forward (the state times the stacked
    # matrices, the inputs' block computed before the loop), one sigmoid for three gates
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    kokoyi.compile(LSTM_SOURCE, filename="lstm_loop_test.kyi")
    hidden, n = 8, 3
    mats, h0, c0, g = params(hidden, hidden + n, 4)
    model = Host((*mats, h0, c0), kokoyi.symbol["LSTM"])

    def count(T):
        x = torch.randn(4, T, n, generator=g)
        run = lambda: torch.autograd.grad(model(x, batch_level=[1]).sum(), mats)  # noqa: E731
        run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        return collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::")
                                   and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))

    a, b = count(6), count(12)
    steps = {k: (b[k] - a[k]) / 6 for k in set(a) | set(b) if b[k] != a[k]}
    assert "aten::lstm" not in steps and steps.get("aten::cat", 0) <= 2, steps
    # forward one product; backward the gradients of the state and of the stacked matrices
    assert sum(steps.get(k, 0) for k in PRODUCTS) == 3, steps
    assert steps["aten::sigmoid"] == 1, steps


def test_the_fast_form_makes_nothing_only_the_loop_reads(monkeypatch):
    """Where torch's LSTM runs the steps, neither the matrices stacked in the source's gate order
    (Fused.w, made on first use: lstm_sequence stacks them in torch's) nor the inputs unbound
    into steps (for the loop's steps) are made; where the loop runs, both are, values equal."""
    from kokoyi.runtime.recur import Fused

    kokoyi.compile(LSTM_SOURCE, filename="lstm_sequence_test.kyi")
    hidden, n = 5, 3
    (wf, wi, wc, wo), h0, c0, g = params(hidden, hidden + n, 3)
    model = Host((wf, wi, wc, wo, h0, c0), kokoyi.symbol["LSTM"])
    x = torch.randn(2, 6, n, generator=g)
    seen, real = [], kx.lstm_sequence

    def wrapped(fused, *args):
        seen.append(fused)
        return real(fused, *args)

    monkeypatch.setattr(kx, "lstm_sequence", wrapped)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        got = model(x, batch_level=[1])
    calls = collections.Counter(e.name for e in prof.events())
    assert calls["aten::unbind"] == 1  # torch's output into steps; not the inputs
    with pytest.raises(AttributeError):
        Fused.w.__get__(seen[-1])  # (the slot itself, not Fused.__getattr__: never made)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    looped = model(x, batch_level=[1])
    torch.testing.assert_close(looped, got)
    assert Fused.w.__get__(seen[-1]).shape == (4 * hidden, hidden + n)  # made where the loop ran
