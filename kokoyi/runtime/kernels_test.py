"""The batched code's run-time kernels: masked reductions, recurrence reads, errors located
at the read (the reads themselves: reads_test.py)."""
from __future__ import annotations

import pytest
import torch

from kokoyi.errors import KokoyiRuntimeError
from kokoyi.runtime import kernels as kx


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


def test_a_recurrence_reads_only_elements_before_it():
    states = [torch.tensor(1.0)]
    assert kx.earlier_element(states, 0, "f:1:1", ()) == 1.0
    with pytest.raises(KokoyiRuntimeError, match="reads element -1"):
        kx.earlier_element(states, -1, "f:1:1", ())
    kx.no_earlier(-1, "f:1:1", (False,))
    with pytest.raises(KokoyiRuntimeError, match="reads element -1"):
        kx.no_earlier(-1, "f:1:1", (torch.tensor([False, True]),))


def test_cross_entropy_rows_takes_labels_as_python_indices_of_any_integer_dtype():
    z = torch.randn(4, 5)
    wrapped = torch.tensor([0, 1, 4, 3])
    want = torch.nn.functional.cross_entropy(z, wrapped, reduction="none")
    for y in (torch.tensor([0, 1, -1, 3]), torch.tensor([0, 1, -1, -2], dtype=torch.int32), wrapped):
        assert torch.allclose(kx.cross_entropy_rows(z, y, 4, "f:1:1", "z"), want)
    # more leading axes, and one sample
    assert torch.allclose(kx.cross_entropy_rows(z.reshape(2, 2, 5), wrapped.reshape(2, 2), 4, "f:1:1", "z"),
                          want.reshape(2, 2))
    assert torch.allclose(kx.cross_entropy_rows(z[2], torch.tensor(-1), 4, "f:1:1", "z"), want[2])
    for bad in (5, -6):  # the first label out of range, as written
        with pytest.raises(KokoyiRuntimeError, match=rf"f:1:1: index {bad} is out of range for `z`"):
            kx.cross_entropy_rows(z, torch.tensor([0, bad, 1, 7]), 4, "f:1:1", "z")


def test_an_unused_maximum_checks_only_that_its_axis_is_not_empty():
    kx.nonempty_last(torch.zeros(3, 1))
    kx.nonempty_last(torch.tensor(1.0))
    with pytest.raises(IndexError, match="non-zero size"):
        kx.nonempty_last(torch.zeros(3, 0))


def test_causal_attention_is_is_causal_only_where_the_mask_has_the_scores_size():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    i = torch.arange(3)
    mask = torch.where(i[None, :] <= i[:, None], 0.0, -torch.inf)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(kx.causal_attention(q, k, v, mask), want, atol=1e-6)
    row = mask[2:]  # one row: broadcast over the queries, as the written sum would
    assert torch.allclose(kx.causal_attention(q, k, v, row),
                          torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=row), atol=1e-6)
