"""Reads of batched code (kokoyi/runtime/reads.py, `kx.…`): checked only where they apply,
Python's negative indices, window views, errors located at the read."""
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


def test_window_views_from_the_end_are_a_cat_and_outside_checked_only_where_guards_hold():
    x = torch.arange(6.0).view(1, 6)
    rows = torch.tensor([[False, True, True]])  # guards lined up with (lead axis, indexed axis)
    # u - 1 for u = 0..2: [last, 0, 1] without an index tensor, whatever the guards
    assert torch.equal(kx.window_views(x, 1, (("var", -1, 3),), None, "f:1:1", "x", (rows,)),
                       torch.tensor([[5.0, 0.0, 1.0]]))
    assert torch.equal(kx.window_views(x, 1, (("var", -2, 2),), None, "f:1:1", "x", (rows,)),
                       torch.tensor([[4.0, 5.0]]))
    # u - 7 for u = 0..2: index -7 is outside, in a row the guards discard: clamped, no error
    assert kx.window_views(x, 1, (("var", -7, 3),), None, "f:1:1", "x", (rows,)).shape == (1, 3)
    with pytest.raises(KokoyiRuntimeError, match="index -7 is out of range"):
        kx.window_views(x, 1, (("var", -7, 3),), None, "f:1:1", "x", (~rows,))


def test_affine_range():
    assert kx.affine_range(1, ((2, 0, 3), (-1, 5, 2))) == (1 + 0 - 6, 1 + 4 - 5)
    assert kx.affine_range(0, ((1, 0, 0),)) == (0, -1)  # an empty loop reads nothing


# ---- gather: per-sample indexing with index tensors ------------------------------------------------
def take_reference(x, index):
    return torch.stack([x[b][int(index[b])] for b in range(x.shape[0])])


@pytest.mark.parametrize("shape", [(6, 3), (6, 3, 4), (6, 3, 2, 2)])
def test_gather_one_index_per_sample_is_a_gather_with_python_meaning(shape):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 2, -1, -3, 1, 2])
    got = kx.gather(x, 1, (index,), "w", "x", ())
    want = take_reference(x, index)
    assert torch.equal(got, want)
    g1, = torch.autograd.grad((got * got).sum(), x)
    g2, = torch.autograd.grad((want * want).sum(), x)
    assert torch.equal(g1, g2)
    # integer indices of another dtype
    assert torch.equal(kx.gather(x, 1, (index.long(),), "w", "x", ()), want)


def test_gather_in_a_guarded_place_checks_only_where_the_read_applies():
    x = torch.randn(6, 3, dtype=torch.float64)
    wild = torch.tensor([0, 9, -9, 1, 1, 1])
    applies = torch.tensor([True, False, False, True, True, True])
    got = kx.gather(x, 1, (wild,), "f.kyi:1:2", "x", (applies,))
    assert torch.equal(got[applies], take_reference(x, wild.clamp(-3, 2))[applies])
    with pytest.raises(KokoyiRuntimeError, match=r"f.kyi:1:2: index 9 is out of range"):
        kx.gather(x, 1, (wild,), "f.kyi:1:2", "x", (applies | torch.tensor([False, True, False, False, False, False]),))
    # a Python index: an error only if the read applies somewhere
    assert kx.read_static(x, 1, (7,), "w", "x", (torch.zeros(6, dtype=torch.bool),)).shape == (6,)
    with pytest.raises(KokoyiRuntimeError, match="index 7 is out of range"):
        kx.read_static(x, 1, (7,), "w", "x", (applies,))
    # an empty axis read where nothing applies
    assert kx.read_static(torch.zeros(2, 0), 1, (0,), "w", "x", (torch.zeros(2, dtype=torch.bool),)).shape == (2,)


def test_gather_out_of_range_is_a_located_error_naming_the_value():
    x = torch.randn(4, 3)
    with pytest.raises(KokoyiRuntimeError, match=r"f.kyi:2:3: index 5 is out of range for `x`"):
        kx.gather(x, 1, (torch.tensor([0, 5, 1, 1]),), "f.kyi:2:3", "x", ())
    with pytest.raises(KokoyiRuntimeError, match="index -4 is out of range"):
        kx.gather(x, 1, (torch.tensor([0, -4, 1, 1]),), "w", "x", ())


def test_gather_does_not_expand_a_value_shared_across_lead_axes():
    # x has a size-1 lead (loop) axis; the index tensors vary along it. Expanding x there
    # would make its gradient a zero-filled tensor of loop size x value size.
    x = torch.randn(1, 6, 5, requires_grad=True)
    rows = torch.tensor([0, 2, 4, 5])[:, None]  # (4, 1): lead axis of size 4
    cols = torch.tensor([1, 3])[None, :].expand(4, 2)
    got = kx.gather(x, 1, (rows, cols), "w", "x", ())
    want = x[0][rows, cols]
    assert torch.equal(got, want)
    names, stack = set(), [got.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None:
            names.add(type(fn).__name__)
            stack.extend(f for f, _ in fn.next_functions)
    assert "ExpandBackward0" not in names, names
    g1, = torch.autograd.grad(got.sum(), x)
    g2, = torch.autograd.grad(want.sum(), x)
    assert torch.equal(g1, g2)
