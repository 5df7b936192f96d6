"""Kernels of recurrences (recur.py): the per-step terms of a fused product (steps_cat)."""
from __future__ import annotations

import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import kokoyi.runtime.kernels as kx  # noqa: F401  (imports recur.py after kernels.py, as generated code does)
from kokoyi.runtime.recur import Fused, steps_cat


class _Calls(TorchDispatchMode):
    """The aten calls made, with the shapes of the tensors they return."""

    def __init__(self) -> None:
        super().__init__()
        self.made: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        self.made[(func.overloadpacket.__name__, shape)] += 1
        return out


def _gru_like(dtype=torch.float32):
    torch.manual_seed(0)
    w = torch.randn(9, 4, dtype=dtype, requires_grad=True)
    b = torch.randn(9, dtype=dtype, requires_grad=True)
    z = torch.randn(2, 5, 3, dtype=dtype, requires_grad=True)
    r = torch.randn(2, 5, 3, dtype=dtype, requires_grad=True)
    return w, b, z, r


def _reference(z, r, b, dim):
    """What steps_cat stands for: the terms, zeros where a part has none, plus the biases."""
    return (torch.cat([z, r, torch.zeros_like(z)], -1) + b).unbind(dim)


def test_terms_of_a_gru_values_and_gradients():
    w, b, z, r = _gru_like()
    fused = Fused(w, b, [3, 3, 3])
    got = steps_cat((z, r, None), 1, fused)
    want = _reference(z, r, b, 1)
    assert len(got) == len(want) == 5
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e)
    weights = torch.randn(2, 5, 9)
    ga = torch.autograd.grad(sum((g * weights[:, i]).sum() for i, g in enumerate(got)), (z, r, b))
    ge = torch.autograd.grad(sum((g * weights[:, i]).sum() for i, g in enumerate(want)), (z, r, b))
    for a, e in zip(ga, ge):
        torch.testing.assert_close(a, e)


def test_the_part_without_terms_writes_no_block_and_the_biases_are_added_in_place():
    w, b, z, r = _gru_like()
    fused = Fused(w, b, [3, 3, 3])
    with _Calls() as calls:
        steps_cat((z, r, None), 1, fused)
    assert ("zeros", (2, 5, 3)) not in calls.made and ("new_zeros", (2, 5, 3)) not in calls.made, calls.made
    assert calls.made[("add_", (2, 5, 9))] == 1 and calls.made[("add", (2, 5, 9))] == 0, calls.made
    # one block of all the steps is written: the concatenation
    assert sum(n for (op, shape), n in calls.made.items() if shape == (2, 5, 9) and op != "add_") == 1, calls.made


def test_biases_of_a_wider_dtype_promote_as_an_addition_does():
    w, b, z, r = _gru_like()
    fused = Fused(w.double(), b.detach().double(), [3, 3, 3])
    got = steps_cat((z, r, None), 0, fused)
    want = (torch.cat([z, r, torch.zeros_like(z)], -1) + b.detach().double()).unbind(0)
    for a, e in zip(got, want):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, e)


def test_without_biases_and_without_gradients():
    w, _, z, r = _gru_like()
    fused = Fused(w, None, [3, 3, 3])
    with torch.no_grad():
        got = steps_cat((None, r, z), 1, fused)
    want = torch.cat([torch.zeros_like(r), r, z], -1).unbind(1)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e)


def _steps_of(out, dim: int) -> tuple:
    """out unbound along dim, marked as lstm_sequence marks its steps."""
    steps = out.unbind(dim)
    steps[-1]._kokoyi_steps = (out, dim, steps[:-1])
    return steps


def test_a_list_ending_with_one_tensors_steps_stacks_as_that_tensor():
    torch.manual_seed(0)
    out = torch.randn(3, 5, 4, requires_grad=True)
    first = torch.randn(3, 4, requires_grad=True)
    whole = kx.stack_states(list(_steps_of(out, 1)), 1, (3,), 1, True, torch.float32)
    assert whole is out  # the steps are the tensor itself: no stack
    states = [first, *_steps_of(out, 1)]
    with _Calls() as calls:
        got = kx.stack_states(states, 1, (3,), 1, True, torch.float32)
    assert "stack" in {k[0] for k in calls.made} and "cat" in {k[0] for k in calls.made}
    expected = torch.stack(states, 1)
    assert torch.equal(got, expected)
    g = torch.randn_like(expected)
    assert all(torch.equal(a, b) for a, b in zip(torch.autograd.grad(got, (first, out), g),
                                                 torch.autograd.grad(expected, (first, out), g)))


def test_a_list_whose_tail_is_not_those_steps_is_stacked():
    out = torch.randn(3, 5, 4)
    steps = list(_steps_of(out, 1))
    steps[2] = steps[2] + 1  # another tensor in the run's place
    got = kx.stack_states(steps, 1, (3,), 1, True, torch.float32)
    assert got is not out and torch.equal(got, torch.stack(steps, 1))
    other = list(_steps_of(out, 1))
    assert torch.equal(kx.stack_states(other, 0, (5,), 1, True, torch.float32), torch.stack(other, 0))  # another axis


def test_an_lstm_in_another_gate_order_restacks_its_matrices():
    """lstm_sequence with the gates stacked as (i, f, o, g) (the sigmoids next to each other):
    the matrices are stacked again in torch's order (i, f, g, o), no gather of the stacked rows;
    values and gradients as torch's LSTM on that order."""
    from kokoyi.runtime.recur import fuse_rows, lstm_sequence
    torch.manual_seed(2)
    hidden, n, batch, steps = 3, 2, 4, 5
    wi, wf, wo, wc = (torch.randn(hidden, hidden + n, requires_grad=True) for _ in range(4))
    xs = torch.randn(batch, steps, n)
    h0, c0 = torch.zeros(batch, hidden), torch.zeros(batch, hidden)
    with _Calls() as calls:
        h_list, c_list = [h0], [c0]
        assert not lstm_sequence(fuse_rows((wi, wf, wo, wc)), xs, 1, 1, 1, ("i", "f", "o", "g"), h_list, c_list, 0,
                                 steps, 1)
        got = kx.stack_states(h_list[1:], 1, (batch,), 1, True, torch.float32)
        grads = torch.autograd.grad(got.square().sum(), (wi, wf, wo, wc))
    assert not {"index", "index_put", "index_put_"} & {k[0] for k in calls.made}
    w = torch.cat((wi, wf, wc, wo))
    want = torch._VF.lstm(xs, (h0[None], c0[None]), (w[:, hidden:], w[:, :hidden]), False, 1, 0.0, False, False,
                          True)[0]
    assert torch.equal(got, want)
    for a, b in zip(grads, torch.autograd.grad(want.square().sum(), (wi, wf, wo, wc))):
        assert torch.equal(a, b)


def test_an_lstm_of_one_stacked_matrix_in_another_gate_order_gathers_its_rows():
    """fuse_rows of one matrix holding the four gates (i, f, o, g): there are no four matrices to
    stack again, so its rows are gathered in torch's order; values as torch's LSTM on that order."""
    from kokoyi.runtime.recur import fuse_rows, lstm_sequence
    torch.manual_seed(3)
    hidden, n, batch, steps = 3, 2, 4, 5
    w = torch.randn(4 * hidden, hidden + n, requires_grad=True)
    xs = torch.randn(batch, steps, n)
    h0, c0 = torch.zeros(batch, hidden), torch.zeros(batch, hidden)
    h_list, c_list = [h0], [c0]
    assert not lstm_sequence(fuse_rows((w,)), xs, 1, 1, 1, ("i", "f", "o", "g"), h_list, c_list, 0, steps, 1)
    got = kx.stack_states(h_list[1:], 1, (batch,), 1, True, torch.float32)
    wi, wf, wo, wc = w.split(hidden)
    torch_order = torch.cat((wi, wf, wc, wo))
    want = torch._VF.lstm(xs, (h0[None], c0[None]), (torch_order[:, hidden:], torch_order[:, :hidden]), False, 1,
                          0.0, False, False, True)[0]
    assert torch.equal(got, want)
