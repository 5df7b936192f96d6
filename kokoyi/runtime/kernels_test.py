"""The batched code's run-time kernels: reads checked only where they apply, Python's
negative indices, masked reductions, errors located at the read."""
from __future__ import annotations

import pytest
import torch

from kokoyi.errors import KokoyiRuntimeError
from kokoyi.runtime import kernels as kx


def test_gather_lets_torch_check_where_the_read_applies_everywhere():
    x = torch.arange(6.0).reshape(2, 3)  # a batch of two vectors
    assert torch.equal(kx.gather(x, 1, (torch.tensor([2, -1]),), "f:1:1", "x", ()), torch.tensor([2.0, 5.0]))
    with pytest.raises(KokoyiRuntimeError, match=r"f:1:1: index 3 is out of range for `x` \(the axis has length 3\)"):
        kx.gather(x, 1, (torch.tensor([0, 3]),), "f:1:1", "x", ())


def test_gather_under_a_guard_checks_only_where_the_guard_holds():
    x = torch.arange(6.0).reshape(2, 3)
    index = torch.tensor([0, 7])
    out = kx.gather(x, 1, (index,), "f:1:1", "x", (torch.tensor([True, False]),))
    assert out[0] == 0.0  # the second is clamped: its value is discarded by the caller
    with pytest.raises(KokoyiRuntimeError, match="index 7"):
        kx.gather(x, 1, (index,), "f:1:1", "x", (torch.tensor([False, True]),))
    # known from the loops' bounds to lie inside the axis: no check, no sync
    assert torch.equal(kx.gather(x, 1, (torch.tensor([1, 2]),), "f:1:1", "x", (torch.tensor([True, False]),),
                                 ((1, 2),)), torch.tensor([1.0, 5.0]))


def test_read_static_in_a_range_that_is_empty_reads_nothing():
    x = torch.zeros(0)
    assert kx.read_static(x, 0, (0,), "f:1:1", "x", (False,)).shape == ()
    with pytest.raises(KokoyiRuntimeError, match="index 0 is out of range"):
        kx.read_static(x, 0, (0,), "f:1:1", "x", (True,))


def test_window_views_are_narrow_and_unfold_in_range_and_python_indices_outside():
    x = torch.arange(6.0)
    assert kx.window_views(x, 0, (("var", 1, 3),), (0,), "f:1:1", "x", ())._base is not None  # a view
    # i - 1 for i = 0..2: index -1 is the last element, as in Python
    assert torch.equal(kx.window_views(x, 0, (("var", -1, 3),), (0,), "f:1:1", "x", ()), torch.tensor([5.0, 0.0, 1.0]))
    pooled = kx.window_views(x, 0, (("windows", 2, 0, 0, 3, 0, 2),), (0, 1), "f:1:1", "x", ())
    assert torch.equal(pooled, torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    with pytest.raises(KokoyiRuntimeError, match="index 6 is out of range"):
        kx.window_views(x, 0, (("var", 4, 3),), (0,), "f:1:1", "x", (True,))


def test_masked_reductions_and_empty_ranges():
    x = torch.tensor([[1.0, 5.0, 3.0], [2.0, 9.0, 9.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert torch.equal(kx.reduce_axis("sum", x, 1, mask, 0, None), torch.tensor([6.0, 2.0]))
    assert torch.equal(kx.reduce_axis("max", x, 1, mask, "-inf", None), torch.tensor([5.0, 2.0]))
    assert torch.equal(kx.reduce_axis("argmax", x, 1, mask, "-inf", 10), torch.tensor([11, 10]))
    assert torch.equal(kx.reduce_axis("mean", x, 1, mask, 0, None), torch.tensor([3.0, 2.0]))
    empty = torch.tensor([[True, False], [False, False]])
    kx.require_nonempty(2, empty, 1, 0, "f:1:1", "\\max", (torch.tensor([[True], [False]]),))  # only row 0 is evaluated
    with pytest.raises(KokoyiRuntimeError, match=r"f:1:1: \\max over an empty range"):
        kx.require_nonempty(2, empty, 1, 0, "f:1:1", "\\max", ())


def test_affine_range():
    assert kx.affine_range(1, ((2, 0, 3), (-1, 5, 2))) == (1 + 0 - 6, 1 + 4 - 5)
    assert kx.affine_range(0, ((1, 0, 0),)) == (0, -1)  # an empty loop reads nothing


def test_a_recurrence_reads_only_elements_before_it():
    states = [torch.tensor(1.0)]
    assert kx.earlier_element(states, 0, "f:1:1", ()) == 1.0
    with pytest.raises(KokoyiRuntimeError, match="reads element -1"):
        kx.earlier_element(states, -1, "f:1:1", ())
    kx.no_earlier(-1, "f:1:1", (False,))
    with pytest.raises(KokoyiRuntimeError, match="reads element -1"):
        kx.no_earlier(-1, "f:1:1", (torch.tensor([False, True]),))
