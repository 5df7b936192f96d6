"""Recurrences run at hand-written speed (issues 13 and 14): the work of one step, counted
in aten calls (forward and backward) with the torch profiler, not timed. The speed itself is
benchmarks/zoo.py's (`--cases lstm gru`); values and gradients against torch's own LSTM and
GRU are checked here on the fused path too."""
from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import zoo_twins  # noqa: E402

PRODUCTS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::matmul", "aten::linear")


def calls(case) -> collections.Counter:
    """Top-level aten calls of one forward + backward of the Kokoyi side."""
    def run():
        torch.autograd.grad(case.kokoyi(), case.params, allow_unused=True)

    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::")
                               and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))


def per_step(make, short: int, long: int) -> dict:
    a, b = calls(make(short)), calls(make(long))
    return {k: (b[k] - a[k]) / (long - short) for k in set(a) | set(b) if b[k] != a[k]}


def test_an_lstm_runs_as_torchs_lstm():
    # batch/lstm.py: the steps after the first are one call of torch's LSTM (oneDNN's fused kernel
    # on the CPU), so a longer sequence adds no operation but reading its rows
    steps = per_step(lambda T: zoo_twins.lstm(4, length=T, hidden=8, inputs=3), 6, 12)
    assert sum(steps.get(k, 0) for k in PRODUCTS) == 0 and sum(steps.values()) <= 2, steps
    assert calls(zoo_twins.lstm(4, length=6, hidden=8, inputs=3))["aten::lstm"] == 1


def test_the_gru_seq2seq_embeds_and_projects_its_inputs_once_per_sequence():
    steps = per_step(lambda T: zoo_twins.gru(4, length=T), 4, 8)
    # per step of the encoder and of the decoder: one product forward (the hidden state times
    # the three gates' stacked matrices, plus the inputs' projections) and two backward
    assert sum(steps.get(k, 0) for k in PRODUCTS) == 6, steps
    assert "aten::embedding" not in steps and "aten::embedding_backward" not in steps, steps
    assert steps.get("aten::lerp", 0) == 2, steps  # (1 - z) * n + z * h


@pytest.mark.parametrize("case", ["lstm", "gru"])
def test_values_and_gradients_equal_torchs_own_cells(case):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import zoo

    make = {"lstm": lambda: zoo_twins.lstm(3, length=5, hidden=6, inputs=2), "gru": lambda: zoo_twins.gru(3, length=4)}
    zoo.check(make[case]())


def test_a_gradient_of_the_inputs_only_then_of_the_weights():
    case = zoo_twins.lstm(3, length=5, hidden=6, inputs=2)
    loss = case.kokoyi()
    h0 = case.params[4]
    torch.autograd.grad(loss, [h0], retain_graph=True)
    first = torch.autograd.grad(loss, case.params[:4], retain_graph=True)
    again = torch.autograd.grad(case.kokoyi(), case.params[:4])
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b)
