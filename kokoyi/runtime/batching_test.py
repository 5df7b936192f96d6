"""Tests of `batch_level` (LANGUAGE.md section 8), through compiled module symbols."""
from __future__ import annotations

import itertools

import pytest
import torch

import kokoyi
from kokoyi.errors import KokoyiTypeError
from kokoyi.test_utils import Host

SOURCE = r"""
\Module{Aff}{x, y; W} \Return W @ x + y \\ \EndModule
\Module{Pair}{x, s} \Return x * s, \sum(x) + s \\ \EndModule
\Module{Norm}{x} \Return \frac{x - \Mean(x)}{\Std(x) + 1} \\ \EndModule
\Module{Len}{x} \Return |x| \\ \EndModule
\Module{Const}{x} \Return 3 \\ \EndModule
"""


@pytest.fixture
def units():
    kokoyi.compile(SOURCE, "b.kyi")
    g = torch.Generator().manual_seed(0)
    W = torch.randn(2, 3, generator=g, requires_grad=True)
    return kokoyi.symbol, W, g


def per_sample_stack(fn, host, args, levels):
    """What batch_level must equal: the per-sample results stacked, batch axes first."""
    shape = next(tuple(a.shape[:k]) for a, k in zip(args, levels) if k)
    outs = []
    for idx in itertools.product(*map(range, shape)):
        outs.append(fn(host, *[a[idx] if k else a for a, k in zip(args, levels)]))
    if isinstance(outs[0], tuple):
        return tuple(torch.stack([o[i] for o in outs]).reshape(shape + outs[0][i].shape) for i in range(len(outs[0])))
    return torch.stack(outs).reshape(shape + outs[0].shape)


def assert_same(got, want):
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6), (a, b)


def test_none_and_all_zeros_are_one_sample(units):
    S, W, g = units
    x, y = torch.randn(3, generator=g), torch.randn(2, generator=g)
    want = W @ x + y
    for bl in (None, [0, 0]):
        assert_same(S["Aff"](Host(W), x, y, batch_level=bl), want)
    assert_same(S["Aff"](Host(W), x, y), want)


@pytest.mark.parametrize(
    "levels, shapes",
    [
        ([1, 1], [(5, 3), (5, 2)]),
        ([1, 0], [(5, 3), (2,)]),
        ([0, 1], [(3,), (5, 2)]),
        ([2, 2], [(2, 4, 3), (2, 4, 2)]),
        ([2, 0], [(2, 4, 3), (2,)]),
        ([1, 1], [(1, 3), (1, 2)]),
    ],
)
def test_batch_levels_equal_stacked_per_sample_results(units, levels, shapes):
    S, W, g = units
    args = [torch.randn(s, generator=g) for s in shapes]
    got = S["Aff"](Host(W), *args, batch_level=levels)
    assert_same(got, per_sample_stack(S["Aff"], Host(W), args, levels))


def test_gradients_flow_as_through_per_sample_calls(units):
    S, W, g = units
    x = torch.randn(4, 3, generator=g, requires_grad=True)
    y = torch.randn(2, generator=g, requires_grad=True)
    weights = torch.randn(4, 2, generator=g)
    (S["Aff"](Host(W), x, y, batch_level=[1, 0]) * weights).sum().backward()
    got = (x.grad.clone(), y.grad.clone(), W.grad.clone())
    x.grad = y.grad = W.grad = None
    sum((S["Aff"](Host(W), x[i], y) * weights[i]).sum() for i in range(4)).backward()
    for a, b in zip(got, (x.grad, y.grad, W.grad)):
        assert torch.allclose(a, b, atol=1e-6)


def test_parameters_are_never_batched(units):
    S, W, g = units
    x = torch.randn(2, 3, generator=g)
    y = torch.randn(2, 2, generator=g)
    # W has a leading axis of 2 like the batch, but is used whole in every sample.
    assert_same(S["Aff"](Host(W), x, y, batch_level=[1, 1]), torch.stack([W @ x[i] + y[i] for i in range(2)]))


def test_tuples_get_the_batch_axes_in_front_of_every_value(units):
    S, _, g = units
    x, s = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, generator=g)
    got = S["Pair"](Host(), x, s, batch_level=[2, 2])
    assert isinstance(got, tuple) and got[0].shape == (2, 4, 3) and got[1].shape == (2, 4)
    assert_same(got, per_sample_stack(S["Pair"], Host(), [x, s], [2, 2]))
    got = S["Pair"](Host(), x[0], torch.tensor(2.0), batch_level=[1, 0])
    assert_same(got, (x[0] * 2, x[0].sum(-1) + 2))


def test_per_sample_reductions_stay_per_sample(units):
    S, _, g = units
    x = torch.randn(3, 5, generator=g)
    assert_same(S["Norm"](Host(), x, batch_level=[1]), per_sample_stack(S["Norm"], Host(), [x], [1]))
    assert S["Len"](Host(), torch.zeros(3, 5), batch_level=[1]).tolist() == [5, 5, 5]


def test_a_constant_result_is_repeated_over_the_batch(units):
    S, _, _ = units
    assert S["Const"](Host(), torch.zeros(4, 2), batch_level=[1]).tolist() == [3, 3, 3, 3]
    assert S["Const"](Host(), torch.zeros(2, 3, 2), batch_level=[2]).shape == (2, 3)


@pytest.mark.parametrize(
    "levels, shapes, words",
    [
        ([1, 1], [(4, 3), (5, 2)], "batch shapes disagree"),
        ([2, 1], [(2, 4, 3), (2, 2)], "batch shapes disagree"),
        ([1], [(4, 3), (4, 2)], "batch_level has 1 entries but module `Aff` has 2 inputs"),
        ([1, 1, 1], [(4, 3), (4, 2)], "has 3 entries"),
        ([-1, 0], [(3,), (2,)], "non-negative integer"),
        ([1.0, 0], [(4, 3), (2,)], "non-negative integer"),
        ([2, 0], [(3,), (2,)], "only 1 axes"),
    ],
)
def test_batch_level_errors(units, levels, shapes, words):
    S, W, g = units
    args = [torch.randn(s, generator=g) for s in shapes]
    with pytest.raises(KokoyiTypeError) as info:
        S["Aff"](Host(W), *args, batch_level=levels)
    assert words in str(info.value) and str(info.value).startswith("b.kyi:2:")


def test_a_batched_input_must_be_a_tensor(units):
    S, W, _ = units
    with pytest.raises(KokoyiTypeError, match="not a tensor"):
        S["Aff"](Host(W), [1.0, 2.0, 3.0], torch.zeros(2), batch_level=[1, 0])


def test_mixed_levels_with_integer_inputs():
    kokoyi.compile(r"\Module{Pick}{x, k \in \mathbb{Z}} \Return x[k] * 2 \\ \EndModule")
    x, k = torch.arange(12.0).reshape(4, 3), torch.tensor([0, 2, 1, 2])
    assert kokoyi.symbol["Pick"](Host(), x, k, batch_level=[1, 1]).tolist() == [0.0, 10.0, 14.0, 22.0]
    assert kokoyi.symbol["Pick"](Host(), x[0], k, batch_level=[0, 1]).tolist() == [0.0, 4.0, 2.0, 4.0]


# ---- batched code: mixed levels, bounds, recurrences ------------------------------------------


@pytest.mark.parametrize("levels, label", [([1, 0], torch.tensor(1)), ([0, 1], torch.tensor([1, 2, 0, 1]))])
def test_cross_entropy_with_mixed_batch_levels(levels, label):
    kokoyi.compile(r"\Module{CE}{z, k} \Return \CrossEntropy(z, k) \\ \EndModule")
    z = torch.randn(4, 3) if levels[0] else torch.randn(3)
    got = kokoyi.symbol["CE"](Host(), z, label, batch_level=levels)
    assert_same(got, per_sample_stack(kokoyi.symbol["CE"], Host(), [z, label], levels))


def test_cross_entropy_with_a_literal_label_on_a_batch():
    kokoyi.compile(r"\Module{CE}{z} \Return \CrossEntropy(z, 1) \\ \EndModule")
    z = torch.randn(4, 3)
    got = kokoyi.symbol["CE"](Host(), z, batch_level=[1])
    assert_same(got, -torch.log_softmax(z, -1)[:, 1])


def test_bounds_from_a_batched_integer_input():
    kokoyi.compile(r"\Module{Prefix}{x, k \in \mathbb{Z}} \Return \sum_{i=0}^{k} x[i] \\ \EndModule")
    x, k = torch.tensor([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]]), torch.tensor([0, 2])
    assert kokoyi.symbol["Prefix"](Host(), x, k, batch_level=[1, 1]).tolist() == [1.0, 7.0]


def test_concat_with_mixed_batch_levels():
    kokoyi.compile(r"\Module{Cat}{x, y} \Return \Concat(x, y) \\ \EndModule")
    x, y = torch.ones(2, 3), torch.zeros(2)
    got = kokoyi.symbol["Cat"](Host(), x, y, batch_level=[1, 0])
    assert got.tolist() == [[1.0, 1.0, 1.0, 0.0, 0.0]] * 2


def test_recurrence_over_an_unbatched_input():
    kokoyi.compile(r"""\Module{Run}{x, k}
  h \gets \{ \begin{cases} x[0] & t = 0 \\ h[t-1] + x[t] & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h * k \\
\EndModule""")
    got = kokoyi.symbol["Run"](Host(), torch.ones(3), torch.tensor([1.0, 2.0]), batch_level=[0, 1])
    assert got.tolist() == [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]
