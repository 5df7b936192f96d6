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
