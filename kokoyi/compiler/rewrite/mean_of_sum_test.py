"""mean_of_sum: a sum over 0..N-1 divided by that N is reduced as one mean (forward and
backward), in any spelling of the division, and nothing else is; values and gradients equal
the sum divided as written; an empty range stays NaN (not the error of an empty E)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import kokoyi
from kokoyi.compiler.rewrite.rewrite_test import rewritten
from kokoyi.test_utils import Host

LOSS = r"""\Module{P}{L, y}
  \Return SCALED \\
\EndModule"""
CE = r"\sum_{t=0}^{|y|-1} \CrossEntropy(L[t], y[t])"


@pytest.mark.parametrize("scaled", [rf"\frac{{1}}{{|y|}} {CE}", rf"\frac{{{CE}}}{{|y|}}", rf"({CE}) * \frac{{1}}{{|y|}}",
                                    rf"\frac{{1}}{{T}} {CE} \where T \gets |y|"])
def test_a_sum_over_its_own_count_is_a_mean(scaled):
    assert "mean_of_sum!(sum[t in 0..sub(bars(y), 1)]" in rewritten(LOSS.replace("SCALED", scaled))


@pytest.mark.parametrize("scaled", [
    rf"\frac{{1}}{{|y| + 1}} {CE}",  # another count
    rf"\frac{{2}}{{|y|}} {CE}",  # another numerator
    r"\frac{1}{|y|} \sum_{t=1}^{|y|-1} \CrossEntropy(L[t], y[t])",  # the range does not start at 0
    r"\frac{1}{|y|} \sum_{t=0}^{|y|-2} \CrossEntropy(L[t], y[t])",  # nor end at N - 1
    rf"\frac{{1}}{{|L|}} {CE}",  # |L| is not the range's count as written
])
def test_other_quotients_are_not(scaled):
    assert "mean_of_sum" not in rewritten(LOSS.replace("SCALED", scaled))


def _compiled(name: str):
    kokoyi.compile(LOSS.replace("SCALED", rf"\frac{{1}}{{|y|}} {CE}"), filename=name)
    return kokoyi.symbol["P"]


@pytest.mark.parametrize("level", [0, 1])
def test_values_gradients_and_the_mean_used(level):
    forward = _compiled(f"mean_of_sum_{level}.kyi")
    g = torch.Generator().manual_seed(5)
    L = torch.randn(4, 7, 5, generator=g, dtype=torch.float64).requires_grad_()
    y = torch.randint(0, 5, (4, 7), generator=g)
    if level:
        got = Host(None, forward)(L, y, batch_level=[1, 1])
    else:
        got = torch.stack([Host(None, forward)(L[b], y[b]) for b in range(4)])
    want = torch.stack([F.cross_entropy(L[b], y[b], reduction="sum") * (1 / 7) for b in range(4)])
    torch.testing.assert_close(got, want, rtol=1e-15, atol=0)
    w = torch.randn(4, generator=g, dtype=torch.float64)
    (a,), (b,) = torch.autograd.grad((got * w).sum(), [L]), torch.autograd.grad((want * w).sum(), [L])
    torch.testing.assert_close(a, b, rtol=1e-15, atol=0)
    codes = [entry[2] for entry in forward.__kokoyi_specializations__.cache.values()]
    assert codes and all(f".mean({level})" in c and "true_divide" not in c and ".sum(" not in c for c in codes), codes


def test_an_empty_range_is_nan_not_an_error():
    forward = _compiled("mean_of_sum_empty.kyi")
    got = Host(None, forward)(torch.randn(3, 0, 5), torch.zeros(3, 0, dtype=torch.long), batch_level=[1, 1])
    assert got.shape == (3,) and bool(got.isnan().all())


def test_a_sum_computed_otherwise_is_divided_as_written():
    """A sum of products over the range is one einsum contracting the range's axis too
    (batch/loops.py), not a reduction of an axis: it is divided by its count as written, values
    and gradients unchanged."""
    kokoyi.compile(r"""\Module{P}{A, B}
  \Return \frac{1}{|A|} \sum_{i=0}^{|A|-1} A[i] @ B[i] \\
\EndModule""", filename="mean_of_sum_einsum.kyi")
    forward = kokoyi.symbol["P"]
    g = torch.Generator().manual_seed(2)
    A = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64).requires_grad_()
    B = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    got = Host(None, forward)(A, B, batch_level=[1, 1])
    want = torch.einsum("bikj,bijm->bkm", A, B) * (1 / 3)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got.sum(), A)[0], torch.autograd.grad(want.sum(), A)[0])
    codes = [entry[2] for entry in forward.__kokoyi_specializations__.cache.values()]
    assert codes and all("einsum" in c and ".mean(" not in c for c in codes), codes
