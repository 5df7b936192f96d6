"""Run-time checks: a bad call raises a KokoyiError that names the module, the input or
parameter at fault and the `.kyi` line, before any tensor work where that is possible.

Call checks (input count, batch_level, batch shapes, annotated dimensions, parameter count)
live in kokoyi/runtime/module.py and batching.py; index out of range and empty big operators
are raised by the compiled code (kokoyi/runtime/ops.py and the code generator).
"""
from __future__ import annotations

import re

import pytest
import torch

import kokoyi

SOURCE = r"""\Module{Net}{x \in \mathbb{R}^{T \times d}, y \in \mathbb{R}^{T}, k \in \mathbb{Z}; f, b}
  \Return f(x[k]) + b + \sum(y) \\
\EndModule
\Module{Fixed}{v \in \mathbb{R}^{3}}
  \Return \sum(v) \\
\EndModule
\Module{Pick}{x}
  \Return x[5] * 2 \\
\EndModule
\Module{PickAt}{x, k}
  \Return x[k] \\
\EndModule
\Module{Top}{x}
  n \gets |x| \\
  \Return \max_{i=0}^{n-1} x[i] \\
\EndModule
\Module{Outer}{x; g}
  \Return g(x) + 1 \\
\EndModule
"""
FILE = "checks.kyi"
NET_LINE = f"{FILE}:1"


class Counting(torch.nn.Module):
    """A parameter that counts its calls: a check that fires before tensor work leaves it at 0."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x.sum(-1)


class Host(torch.nn.Module):
    def __init__(self, name, params):
        super().__init__()
        self.params = params
        self._forward = kokoyi.symbol[name]

    def get_parameters(self):
        return self.params

    def forward(self, *args, **kwargs):
        return self._forward(self, *args, **kwargs)


@pytest.fixture
def unit():
    return kokoyi.compile(SOURCE, filename=FILE)


@pytest.fixture
def net(unit):
    f = Counting()
    return Host("Net", (f, torch.tensor(1.0))), f


def good_inputs():
    return torch.randn(4, 3), torch.randn(4), torch.tensor(2)


def raises_before_work(net, *args, match, error=kokoyi.KokoyiTypeError, **kwargs):
    host, counter = net
    with pytest.raises(error) as info:
        host(*args, **kwargs)
    assert counter.calls == 0, "the check came after tensor work"
    text = str(info.value)
    for piece in match:
        assert piece in text, f"{piece!r} not in {text!r}"
    return text


def test_a_good_call_works(net):
    host, counter = net
    x, y, k = good_inputs()
    torch.testing.assert_close(host(x, y, k), x[2].sum() + 1 + y.sum())
    out = host(torch.randn(2, 4, 3), torch.randn(2, 4), torch.tensor([0, 3]), batch_level=[1, 1, 1])
    assert out.shape == (2,) and counter.calls >= 1


# ---- inputs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 2, 4])
def test_wrong_number_of_inputs(net, count):
    args = (good_inputs() + (torch.tensor(0),))[:count]
    raises_before_work(net, *args, match=[NET_LINE, "module `Net`", f"takes 3 inputs, got {count}",
                                          r"\Module{Net}{x, y, k; f, b}"])


def test_inputs_by_keyword_are_not_accepted(net):
    host, counter = net
    with pytest.raises(TypeError):
        host(x=torch.randn(4, 3))
    assert counter.calls == 0


# ---- batch_level ------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [[1], [1, 1], [1, 1, 1, 1], []])
def test_batch_level_of_the_wrong_length(net, levels):
    raises_before_work(net, *good_inputs(), batch_level=levels,
                       match=[NET_LINE, "module `Net`", f"batch_level has {len(levels)} entries", "3 inputs (x, y, k)"])


@pytest.mark.parametrize("bad, who", [([-1, 0, 0], "x"), ([0, 1.0, 0], "y"), ([0, 0, True], "k"),
                                      ([0, "1", 0], "y"), ([0, None, 0], "y")])
def test_batch_level_values_must_be_non_negative_ints(net, bad, who):
    raises_before_work(net, *good_inputs(), batch_level=bad,
                       match=[NET_LINE, "module `Net`", f"input `{who}`", "non-negative integer"])


@pytest.mark.parametrize("bad", ["1", "110", 1.5, {"x": 1}, True, object()])
def test_batch_level_of_the_wrong_type(net, bad):
    text = raises_before_work(net, *good_inputs(), batch_level=bad, match=[NET_LINE, "module `Net`"])
    assert "batch_level" in text


def test_batch_level_deeper_than_the_input(net):
    x, y, k = good_inputs()
    raises_before_work(net, x, y, k, batch_level=[0, 2, 0],
                       match=[NET_LINE, "module `Net`", "input `y`", "batch_level 2", "(4,)"])


def test_batch_level_on_a_python_number(net):
    x, y, _ = good_inputs()
    raises_before_work(net, x, y, 2, batch_level=[0, 0, 1], match=[NET_LINE, "module `Net`", "input `k`", "not a tensor"])


def test_batch_shapes_that_disagree(net):
    raises_before_work(net, torch.randn(2, 4, 3), torch.randn(5, 4), torch.tensor([1, 1]), batch_level=[1, 1, 1],
                       match=[NET_LINE, "module `Net`", "batch shapes disagree", "input `x`", "(2,)",
                              "input `y`", "(5,)"])
    raises_before_work(net, torch.randn(2, 3, 4, 3), torch.randn(2, 4), torch.tensor([1, 1]), batch_level=[2, 1, 1],
                       match=[NET_LINE, "input `x`", "(2, 3)", "input `y`", "(2,)"])


# ---- annotations -------------------------------------------------------------------------------
def test_annotated_dimensions_that_disagree(net):
    x, _, k = good_inputs()
    raises_before_work(net, x, torch.randn(5), k,
                       match=[NET_LINE, "module `Net`", "dimension `T`", "input `x`", "T = 4", "input `y`", "T = 5"])
    # per sample: the batch axes do not count
    raises_before_work(net, torch.randn(2, 4, 3), torch.randn(2, 6), torch.tensor([1, 1]), batch_level=[1, 1, 1],
                       match=[NET_LINE, "dimension `T`", "T = 4", "T = 6"])


def test_annotated_rank_and_type(net):
    x, y, k = good_inputs()
    raises_before_work(net, x, y.reshape(4, 1), k, match=[NET_LINE, "module `Net`", "input `y`", "1 per-sample axes",
                                                          "(4, 1)"])
    raises_before_work(net, x.reshape(12), y, k, match=[NET_LINE, "input `x`", "2 per-sample axes"])
    raises_before_work(net, x, y, torch.tensor(2.0), match=[NET_LINE, "input `k`", r"\mathbb{Z}", "floating-point"])


def test_fixed_size_annotation(unit):
    host = Host("Fixed", ())
    assert float(host(torch.ones(3))) == 3.0
    with pytest.raises(kokoyi.KokoyiTypeError) as info:
        host(torch.ones(4))
    for piece in (f"{FILE}:4", "module `Fixed`", "input `v`", "size 3", "got 4"):
        assert piece in str(info.value)


# ---- parameters -------------------------------------------------------------------------------
@pytest.mark.parametrize("params, got", [(lambda f: (f,), "1 values"), (lambda f: (f, 1.0, 2.0), "3 values"),
                                         (lambda f: f, "a Counting"), (lambda f: [], "0 values")])
def test_get_parameters_returning_the_wrong_count(unit, params, got):
    counter = Counting()
    host = Host("Net", params(counter))
    with pytest.raises(kokoyi.KokoyiTypeError) as info:
        host(*good_inputs())
    assert counter.calls == 0
    for piece in (NET_LINE, "module `Net`", "2 parameters (f, b)", got, r"\Module{Net}{x, y, k; f, b}"):
        assert piece in str(info.value)


def test_missing_get_parameters(unit):
    class Bare(torch.nn.Module):
        forward = kokoyi.symbol["Net"]

    with pytest.raises(kokoyi.KokoyiTypeError) as info:
        Bare()(*good_inputs())
    for piece in (NET_LINE, "module `Net`", "(f, b)", "get_parameters", "Bare"):
        assert piece in str(info.value)


def test_a_module_without_parameters_needs_no_get_parameters(unit):
    class Bare(torch.nn.Module):
        forward = kokoyi.symbol["Fixed"]

    assert float(Bare()(torch.ones(3))) == 3.0


# ---- index out of range ------------------------------------------------------------------------
def index_error(host, *args, **kwargs) -> str:
    with pytest.raises(kokoyi.KokoyiError) as info:
        host(*args, **kwargs)
    return str(info.value)


def test_index_out_of_range_is_a_located_kokoyi_error(unit):
    """What works now: a KokoyiError naming the module and the .kyi line."""
    for kwargs, x in (({}, torch.randn(3)), ({"batch_level": [1]}, torch.randn(2, 3))):
        text = index_error(Host("Pick", ()), x, **kwargs)
        assert f"{FILE}:8" in text and "`Pick`" in text and "5" in text
    text = index_error(Host("PickAt", ()), torch.randn(3), torch.tensor(7))
    assert f"{FILE}:11" in text and "`PickAt`" in text and "7" in text


@pytest.mark.parametrize("batched", [False, True])
def test_index_out_of_range_names_the_value_and_the_axis(unit, batched):
    """`checks.kyi:8:11: index 5 is out of range for `x` (axis 0 has length 3)` with the note
    `in module `Pick` (checks.kyi:7:1)`: per-sample axis numbering also under batch_level."""
    x = torch.randn(2, 3) if batched else torch.randn(3)
    text = index_error(Host("Pick", ()), x, **({"batch_level": [1]} if batched else {}))
    assert f"{FILE}:8:11:" in text
    assert "module `Pick`" in text
    assert "`x`" in text
    assert re.search(r"\b5\b", text) and "length 3" in text
    assert "dimension 1" not in text  # not the batched axis numbering


@pytest.mark.parametrize("batched", [False, True])
def test_index_by_a_tensor_out_of_range_names_the_value(unit, batched):
    if batched:
        text = index_error(Host("PickAt", ()), torch.randn(2, 3), torch.tensor([0, 7]), batch_level=[1, 1])
    else:
        text = index_error(Host("PickAt", ()), torch.randn(3), torch.tensor(7))
    assert f"{FILE}:11:11:" in text and "module `PickAt`" in text and "`x`" in text
    assert re.search(r"\b7\b", text) and "length 3" in text


def test_negative_index_out_of_range(unit):
    text = index_error(Host("PickAt", ()), torch.randn(3), torch.tensor(-4))
    assert f"{FILE}:11" in text and "`PickAt`" in text


def test_index_out_of_range_in_a_constant_names_the_value():
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        kokoyi.compile("v \\gets \\{ t \\}_{t=0}^{2} \\\\\nc \\gets v[7] \\\\\n", filename="const.kyi")
    text = str(info.value)
    assert "const.kyi:2:9:" in text and "`v`" in text and "length 3" in text


def test_index_out_of_range_in_a_constant_is_located():
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        kokoyi.compile("v \\gets \\{ t \\}_{t=0}^{2} \\\\\nc \\gets v[7] \\\\\n", filename="const.kyi")
    assert "const.kyi:2" in str(info.value) and "7" in str(info.value)


# ---- empty \max -------------------------------------------------------------------------------
@pytest.mark.parametrize("batched", [False, True])
def test_empty_max_names_the_operator_the_line_and_the_module(unit, batched):
    x = torch.randn(2, 0) if batched else torch.randn(0)
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        Host("Top", ())(x, **({"batch_level": [1]} if batched else {}))
    text = str(info.value)
    assert f"{FILE}:15:11:" in text
    assert "\\max" in text and "empty" in text
    assert "module `Top`" in text


def test_a_nonempty_max_still_works(unit):
    assert float(Host("Top", ())(torch.tensor([1.0, 5.0, 2.0]))) == 5.0


@pytest.mark.parametrize("op", [r"\max", r"\min", r"\argmax", r"\argmin", r"\mathbb{E}"])
def test_empty_big_operators_in_constants(op):
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        kokoyi.compile(f"c \\gets {op}_{{i=0}}^{{-1}} i \\\\", filename="e.kyi")
    assert "e.kyi:1:9:" in str(info.value) and "empty" in str(info.value)


@pytest.mark.parametrize("op, value", [(r"\sum", 0), (r"\prod", 1)])
def test_empty_sum_and_product_are_their_units(op, value):
    assert kokoyi.compile(f"c \\gets {op}_{{i=0}}^{{-1}} i \\\\")["c"] == value


# ---- errors inside nested modules -------------------------------------------------------------
def test_errors_in_a_nested_module_name_both_modules(unit):
    inner = Host("Top", ())
    outer = Host("Outer", inner)
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        outer(torch.randn(0))
    text = str(info.value)
    assert f"{FILE}:15:11:" in text
    assert text.index("module `Top`") < text.index("module `Outer`")


def test_wrong_call_of_a_nested_module_names_it(unit):
    outer = Host("Outer", Host("Net", (Counting(), 1.0)))
    with pytest.raises(kokoyi.KokoyiTypeError) as info:
        outer(torch.randn(3))
    text = str(info.value)
    assert "module `Net` takes 3 inputs, got 1" in text and "module `Outer`" in text


def test_errors_from_torch_inside_compiled_code_name_the_line_and_module(unit):
    class Bad(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    host = Host("Net", (Bad(), 1.0))
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        host(*good_inputs())
    text = str(info.value)
    assert f"{FILE}:2" in text and "module `Net`" in text and "mat1 and mat2" in text


def test_annotated_parameters_are_checked_against_the_inputs():
    kokoyi.compile(r"""\Module{Affine}{x \in \mathbb{R}^{d}; W \in \mathbb{R}^{h \times d}, b \in \mathbb{R}^{h}, n \in \mathbb{Z}}
  \Return W @ x + b * n \\
\EndModule
""", filename="affine.kyi")
    W, b = torch.randn(2, 3), torch.randn(2)
    host = Host("Affine", (W, b, 2))
    x = torch.randn(3)
    assert torch.allclose(host(x), W @ x + 2 * b)
    X = torch.randn(5, 3)
    assert torch.allclose(host(X, batch_level=[1]), X @ W.T + 2 * b)
    cases = [
        ((torch.randn(2, 4), b, 2), ["affine.kyi:1", "module `Affine`", "dimension `d`", "input `x` has d = 3",
                                     "parameter `W` has d = 4"]),
        ((W, torch.randn(3), 2), ["dimension `h`", "parameter `W` has h = 2", "parameter `b` has h = 3"]),
        ((W.reshape(6), b, 2), ["parameter `W`", "2 per-sample axes", "(6,)"]),
        ((W, b, 2.5), ["parameter `n`", r"\mathbb{Z}", "floating-point"]),
    ]
    for params, pieces in cases:
        with pytest.raises(kokoyi.KokoyiTypeError) as info:
            Host("Affine", params)(x)
        for piece in pieces:
            assert piece in str(info.value), (piece, str(info.value))
