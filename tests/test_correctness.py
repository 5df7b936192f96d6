"""Regression tests for issue 11 ("Correctness on every path"): each defect the issue lists,
checked on one sample, on batches (levels 1 and 2) and on mixed levels, with the value, dtype,
error and gradient the contract gives (LANGUAGE.md sections 5, 6a and 7).
"""
from __future__ import annotations

import pytest
import torch

import kokoyi
from kokoyi.test_utils import Host


def call(source, name, args, params=None, levels=None):
    kokoyi.compile(source, filename="c.kyi")
    return Host(params, kokoyi.symbol[name])(*args, batch_level=levels)


def every_path(source, name, args, want, params=None, dtype=None):
    """The module on one sample, stacked over batches of 3 and 2x3, and with mixed levels,
    equals want (per sample); returns nothing, asserts."""
    one = call(source, name, args, params)
    assert torch.allclose(one.double(), torch.as_tensor(want).double(), equal_nan=True), (one, want)
    if dtype is not None:
        assert one.dtype == dtype
    for shape in ((3,), (2, 3)):
        batched = [a.expand(shape + a.shape) for a in args]
        got = call(source, name, batched, params, [len(shape)] * len(args))
        assert got.shape == shape + one.shape
        assert torch.equal(got, one.expand(shape + one.shape)) or torch.allclose(got, one.expand_as(got), equal_nan=True)
        assert dtype is None or got.dtype == dtype
    for k in range(len(args)):  # one input batched, the others shared
        mixed = [a.expand((3,) + a.shape) if j == k else a for j, a in enumerate(args)]
        got = call(source, name, mixed, params, [int(j == k) for j in range(len(args))])
        assert torch.allclose(got, one.expand((3,) + one.shape), equal_nan=True)


def every_path_raises(source, name, args, match, params=None):
    for levels, batch in ((None, ()), ([1] * len(args), (3,)), ([2] * len(args), (2, 3))):
        batched = [a.expand(batch + a.shape) for a in args]
        with pytest.raises(kokoyi.KokoyiRuntimeError, match=match):
            call(source, name, batched, params, levels)


# 1. Indices inside `cases`: checked where the row applies, never clamped.
PICK = r"""\Module{P}{x, k}
\Return \begin{cases} x[k] & x[0] > 0 \\ 0 & \text{otherwise} \end{cases} \\
\EndModule"""


def test_an_applied_cases_row_reading_out_of_range_is_an_error_not_a_clamped_value():
    every_path_raises(PICK, "P", [torch.tensor([1.0, 2.0, -10.0]), torch.tensor(5)], r"c.kyi:2:23: index 5 .*`x`")


def test_a_cases_row_that_does_not_apply_may_read_out_of_range():
    every_path(PICK, "P", [torch.tensor([-1.0, 2.0, -10.0]), torch.tensor(5)], 0.0)


def test_a_set_builder_in_an_applied_row_reads_out_of_range_is_an_error():
    src = r"""\Module{P}{x}
\Return \begin{cases} \{ x[i+1] \}_{i=0}^{|x|-1} & x[0] > 0 \\ x & \text{otherwise} \end{cases} \\
\EndModule"""
    every_path_raises(src, "P", [torch.tensor([1.0, 2.0, -10.0])], "index 3 is out of range")
    every_path(src, "P", [torch.tensor([-1.0, 2.0, -10.0])], [-1.0, 2.0, -10.0])


def test_a_read_in_a_condition_is_checked_where_the_condition_is_evaluated():
    src = r"""\Module{P}{x, k}
\Return \begin{cases} 1 & x[k] > 0 \\ 0 & \text{otherwise} \end{cases} \\
\EndModule"""
    every_path_raises(src, "P", [torch.tensor([1.0, 2.0, -10.0]), torch.tensor(5)], "index 5 is out of range")
    second = r"""\Module{P}{x, k}
\Return \begin{cases} 1 & x[0] > 0 \\ 2 & x[k] > 0 \\ 0 & \text{otherwise} \end{cases} \\
\EndModule"""
    # the second condition is evaluated only where the first does not hold
    every_path(second, "P", [torch.tensor([1.0, 2.0, -10.0]), torch.tensor(5)], 1)
    every_path_raises(second, "P", [torch.tensor([-1.0, 2.0, -10.0]), torch.tensor(5)], "index 5")


# 2. Nested big operators with a dependent inner bound read only inside their range.
def test_a_dependent_inner_bound_reads_only_inside_the_range():
    src = r"\Module{Q}{d} \Return \sum_{t=0}^{|d|-1} \sum_{l=0}^{|d|-1-t} d[t+l] \\ \EndModule"
    every_path(src, "Q", [torch.arange(1.0, 6.0)], 55.0)
    x = torch.arange(1.0, 6.0, requires_grad=True)
    (g,) = torch.autograd.grad(call(src, "Q", [x]), x)
    assert g.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # d[j] appears in j+1 of the sums


# 3. An inner bound that depends on an empty outer range.
def test_an_inner_bound_over_an_empty_outer_range_is_an_empty_sum():
    src = r"\Module{Q}{x} \Return \sum_{r=1}^{|x|-1} \sum_{q=0}^{r} x[q] \\ \EndModule"
    every_path(src, "Q", [torch.ones(1)], 0.0)
    every_path(src, "Q", [torch.arange(1.0, 4.0)], 1 + 2 + 1 + 2 + 3.0)


# 4. A cases whose condition is a constant.
def test_a_cases_with_a_constant_condition():
    src = r"""\Module{Q}{x}
\Return \{ \begin{cases} x[r] & 2 > 2 \\ 0.5 & \text{otherwise} \end{cases} \}_{r=0}^{|x|-1} \\
\EndModule"""
    every_path(src, "Q", [torch.ones(3)], [0.5, 0.5, 0.5], dtype=torch.float32)
    every_path(src, "Q", [torch.ones(3, dtype=torch.float64)], [0.5, 0.5, 0.5], dtype=torch.float64)


# 5. An integer to a negative power is a float.
def test_an_integer_to_a_negative_power_is_a_float():
    src = r"\Module{Q}{x; n} \Return x * \sum_{i=1}^{n} i^{-1} \\ \EndModule"
    every_path(src, "Q", [torch.ones(2, dtype=torch.float64)], [11 / 6, 11 / 6], params=3, dtype=torch.float64)
    src = r"\Module{Q}{x \in \mathbb{Z}} \Return \{ i^{2} \}_{i=0}^{x}, \{ (i+1)^{-1} \}_{i=0}^{x} \\ \EndModule"
    kokoyi.compile(src, filename="c.kyi")
    squares, inverses = Host(None, kokoyi.symbol["Q"])(torch.tensor(2))
    assert squares.dtype == torch.int64 and squares.tolist() == [0, 1, 4]
    assert inverses.is_floating_point() and torch.allclose(inverses, torch.tensor([1, 1 / 2, 1 / 3]))


# 6. One floating dtype per module.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_constants_take_the_module_dtype(dtype):
    src = r"""\Module{Q}{A}
\Return \{ 2 \}_{t=0}^{|A|-1} @ A + \mathbb{1}[A > 0] + \OneHot(0, |A|) + \frac{1}{3} \\
\EndModule"""
    A = torch.tensor([1.0, -2.0, 3.0], dtype=dtype)
    every_path(src, "Q", [A], 2 * (1 - 2 + 3) + torch.tensor([2, 0, 1.0], dtype=dtype) + 1 / 3, dtype=dtype)


def test_a_constant_output_has_the_module_dtype_and_integers_stay_integers():
    src = r"\Module{Q}{x} \Return 0.5, \frac{1}{2}, \sum_{i=0}^{3} i, |x| \\ \EndModule"
    kokoyi.compile(src, filename="c.kyi")
    outs = Host(None, kokoyi.symbol["Q"])(torch.ones(4, dtype=torch.float64))
    assert [o.dtype for o in outs] == [torch.float64, torch.float64, torch.int64, torch.int64]
    assert [o.item() for o in outs] == [0.5, 0.5, 6, 4]


def test_the_default_dtype_does_not_promote_a_float32_model():
    src = r"\Module{Q}{x} \Return \{ 0.5 \}_{t=0}^{|x|-1} * x + \pi \\ \EndModule"
    kokoyi.compile(src, filename="c.kyi")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = Host(None, kokoyi.symbol["Q"])(torch.ones(3, dtype=torch.float32))
    finally:
        torch.set_default_dtype(previous)
    assert out.dtype == torch.float32


# 7. \cdot with scalars is the ordinary product (the front-end forms are tested beside the parser).
def test_cdot_of_scalars():
    every_path(r"\Module{Q}{a, b} \Return a \cdot b \\ \EndModule", "Q", [torch.tensor(2.0), torch.tensor(3.0)], 6.0)


# 8. The written-out population standard deviation at zero variance: every path agrees.
def test_zero_variance_std_gradient_agrees_on_every_path():
    src = r"""\Module{S}{x}
\sigma(v) \gets \sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] - \Mean(v))**2}}{|v|}} \\
\Return \sigma(x) \\ \EndModule"""
    grads = []
    for levels, shape in ((None, (3,)), ([1], (2, 3)), ([2], (2, 2, 3))):
        x = torch.ones(shape, requires_grad=True)
        call(src, "S", [x], levels=levels).sum().backward()
        grads.append(x.grad.reshape(-1, 3)[0])
    for g in grads[1:]:
        assert torch.equal(g.isnan(), grads[0].isnan())
        assert torch.allclose(g, grads[0], equal_nan=True)


def test_integer_and_boolean_tensors_for_real_inputs_take_the_module_dtype():
    src = r"\Module{Q}{x \in \mathbb{R}^{n}, y} \Return x * 2 + y \\ \EndModule"
    got = call(src, "Q", [torch.tensor([1, 2]), torch.ones(2, dtype=torch.float64)])
    assert got.dtype == torch.float64 and got.tolist() == [3.0, 5.0]
    got = call(src, "Q", [torch.tensor([[True, False]]), torch.ones(2)], levels=[1, 0])
    assert got.dtype == torch.float32 and got.tolist() == [[3.0, 1.0]]
    with pytest.raises(kokoyi.KokoyiTypeError, match="floating-point"):
        call(r"\Module{Q}{k \in \mathbb{Z}} \Return k \\ \EndModule", "Q", [torch.tensor(1.0)])


def test_the_widest_floating_input_decides_every_output_dtype():
    src = r"\Module{Q}{x, s} \Return s, x * s, s * s \\ \EndModule"
    for levels, x, s in ((None, torch.ones(2, dtype=torch.float64), torch.tensor(0.5)),
                         ([1, 0], torch.ones(3, 2, dtype=torch.float64), torch.tensor(0.5))):
        outs = call(src, "Q", [x, s], levels=levels)
        assert [o.dtype for o in outs] == [torch.float64] * 3
    s = torch.tensor(0.5, requires_grad=True)
    (g,) = torch.autograd.grad(call(src, "Q", [torch.ones(2, dtype=torch.float64), s])[0], s)
    assert g.dtype == torch.float32 and g.item() == 1.0  # the gradient reaches the float32 input


def test_no_gradient_flows_through_the_elements_a_row_does_not_supply():
    """`\\sqrt{x}` where x < 0 is discarded: its undefined derivative there passes back 0, not NaN."""
    src = r"""\Module{P}{x}
\Return \begin{cases} \sqrt{x} & x > 0 \\ \log(-x) & x < 0 \\ 0 & \text{otherwise} \end{cases} \\
\EndModule"""
    for levels, x in ((None, torch.tensor([-1.0, 4.0, 0.0])), ([1], torch.tensor([[-1.0, 4.0, 0.0], [4.0, 0.0, -2.0]]))):
        x = x.clone().requires_grad_(True)
        call(src, "P", [x], levels=levels).sum().backward()
        want = torch.where(x > 0, 0.5 / x.detach().clamp(min=1e-9).sqrt(), torch.where(x < 0, 1 / x.detach(), 0.0))
        assert torch.allclose(x.grad, want), x.grad
    # a row without such operations gets no extra autograd node (the DQN's Huber loss)
    huber = r"""\Module{H}{d}
\Return \begin{cases} \frac{1}{2} d^2 & |d| < 1 \\ |d| - \frac{1}{2} & \text{otherwise} \end{cases} \\
\EndModule"""
    call(huber, "H", [torch.tensor(0.5)])
    code = list(kokoyi.symbol["H"].__kokoyi_specializations__.cache.values())[0][2]
    assert "gradient_where" not in code and "applies" not in code, code


def test_a_row_that_reads_other_elements_keeps_their_gradient():
    """Found by the differential fuzzer: the gradient mask of a row is by element, so it applies
    only where the row computes each element from the same elements it reads. Here element 1
    of the second row reads x[0], where the first row applies; its gradient must still flow."""
    src = r"""\Module{P}{x}
\Return \begin{cases} 3 x & x > 0.25 \\ \{ \frac{0.25}{1 + x[i - 1]^2} \}_{i=0}^{|x| - 1} & \text{otherwise} \end{cases} \\
\EndModule"""
    x = torch.tensor([0.434, -1.137], requires_grad=True)
    out = call(src, "P", [x])
    (g,) = torch.autograd.grad(out[1], x)
    x0 = x.detach()[0]
    assert torch.allclose(g, torch.stack([-0.25 * 2 * x0 / (1 + x0 ** 2) ** 2, torch.tensor(0.0)]))


def test_an_empty_range_reads_nothing():
    """Found by the differential fuzzer: a read in the body of an empty range that does not
    depend on its index was still made (and raised); an empty range reads nothing."""
    src = r"\Module{P}{x, k} \Return \sum_{i=1}^{|x|-1} x[k], \{ x[k] \}_{i=0}^{|x|-2} \\ \EndModule"
    total, seq = call(src, "P", [torch.ones(1), torch.tensor(5)])
    assert total.item() == 0 and seq.shape == (0,)
    with pytest.raises(kokoyi.KokoyiRuntimeError, match=r"c.kyi:1:45: index 5 is out of range for `x`"):
        call(src, "P", [torch.ones(2), torch.tensor(5)])


def test_a_range_whose_lower_bound_varies_with_one_axis_and_upper_with_another():
    """The index varies with what its lower bound varies with; the mask with both bounds (a
    set-builder over t of a sum from t to a batched k)."""
    import differential

    src = r"""\Module{P}{x, k \in \mathbb{Z}}
  \Return \{ \sum_{i=t}^{k} i * x[t] \}_{t=0}^{|x|-1}, \{ \max_{i=t}^{k + 3} i \}_{t=0}^{1} \\
\EndModule"""
    prog = differential.program(src, {"x": torch.randn(4), "k": torch.tensor(2)})
    findings, stats = differential.check(prog, seed=5)
    assert not findings, "\n\n".join(differential.reproduction(f) for f in findings)
    assert stats.paths >= 3
