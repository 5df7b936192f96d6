"""Tests of the recurrence check: a set-builder that reads itself reads only earlier elements."""
from __future__ import annotations

import pytest
import torch

import kokoyi
from kokoyi.compiler import ast as A
from kokoyi.compiler.pipeline import compile_unit
from kokoyi.errors import KokoyiError, KokoyiNameError, KokoyiRuntimeError, KokoyiTypeError
from kokoyi.test_utils import Host, expect_error

PREFIX = "\\Module{M}{x}\n  h \\gets \\{ "
TEMPLATE = PREFIX + "BODY \\}_{t=0}^{|x|-1} \\\\\n  \\Return h \\\\\n\\EndModule\n"
BODY_COLUMN = len("  h \\gets \\{ ") + 1


def source(body: str) -> str:
    return TEMPLATE.replace("BODY", body)


@pytest.mark.parametrize(
    "body",
    [
        r"\begin{cases} x[0] & t = 0 \\ h[t-1] + x[t] & \text{otherwise} \end{cases}",
        r"\begin{cases} x[t] & t < 2 \\ h[t-2] + x[t] & \text{otherwise} \end{cases}",
        r"\begin{cases} x[0] & t = 0 \\ h_{t-1} + x[t] & \text{otherwise} \end{cases}",
        r"\begin{cases} x[0] & t = 0 \\ h[(t-1)] + x[t] & \text{otherwise} \end{cases}",
        r"\begin{cases} x[0] & t = 0 \\ h[-1 + t] + x[t] & \text{otherwise} \end{cases}",
        r"\begin{cases} x[t] & t < 2 \\ h[t-1-1] + x[t] & \text{otherwise} \end{cases}",
    ],
)
def test_reading_earlier_elements_is_accepted(body):
    state = compile_unit(source(body), "r.kyi")
    definition = state.ast.items[0].body[0]
    assert definition.target.symbol.extra.get("recurrence") is True


def test_recurrence_values():
    kokoyi.compile(source(r"\begin{cases} x[t] & t < 2 \\ h[t-2] + x[t] & \text{otherwise} \end{cases}"))
    got = kokoyi.symbol["M"](Host(), torch.arange(6.0))
    assert got.tolist() == [0.0, 1.0, 2.0, 4.0, 6.0, 9.0]
    kokoyi.symbol.clear()
    kokoyi.compile(source(r"\begin{cases} x[0] & t = 0 \\ h_{t-1} * x[t] & \text{otherwise} \end{cases}"))
    assert kokoyi.symbol["M"](Host(), torch.tensor([1.0, 2.0, 3.0])).tolist() == [1.0, 2.0, 6.0]


@pytest.mark.parametrize(
    "body, at, words",
    [
        ("x[t] + h[t]", "h[t]", "not computed yet"),
        ("x[t] + h[t+1]", "h[t+1]", "not computed yet"),
        ("x[t] + h[t - 0]", "h[t - 0]", "not computed yet"),
        ("x[t] + h_t", "h_t", "not computed yet"),
        ("x[t] + h_{t+1}", "h_{t+1}", "not computed yet"),
        ("x[t] + h", "h", "may only be read"),
        ("x[t] + |h|", "h|", "may only be read"),
        (r"\sum_{i=0}^{t-1} h[i]", "h[i]", "cannot tell which element"),
        ("x[t] + h[2*t - 1]", "h[2", "cannot tell which element"),
        ("x[t] + h[t-1:t]", "h[t-1:", "one at a time"),
        ("x[t] + h[t, 0]", "h[t,", "not computed yet"),
    ],
)
def test_reading_the_current_or_a_later_element_is_rejected_at_that_position(body, at, words):
    err = expect_error(source(body), KokoyiError)
    assert (err.line, err.column) == (2, BODY_COLUMN + body.index(at))
    assert words in err.message


def test_only_one_index_set_builders_may_recur():
    err = expect_error("\\Module{M}{x}\n  h \\gets \\{ h[i-1] \\}_{i=0, j=0}^{2, 2} \\\\\n  \\Return h \\\\\n\\EndModule",
                       KokoyiTypeError)
    assert (err.line, err.column) == (2, 11)


def test_bounds_cannot_depend_on_the_sequence():
    err = expect_error("\\Module{M}{x}\n  h \\gets \\{ x[t] \\}_{t=0}^{|h|} \\\\\n  \\Return h \\\\\n\\EndModule")
    assert (err.line, err.column) == (2, 30)


def test_a_function_cannot_recur_through_a_set_builder():
    err = expect_error(r"\Module{M}{x} h(y) \gets \{ h[t-1] \}_{t=0}^{2} \\ \Return h(x) \\ \EndModule", KokoyiNameError)
    assert err.column == 29


def test_a_set_builder_nested_in_an_expression_is_not_a_recurrence():
    err = expect_error(r"\Module{M}{x} h \gets 1 + \{ h[t-1] \}_{t=0}^{2} \\ \Return h \\ \EndModule", KokoyiNameError)
    assert err.column == 30


def test_reading_before_the_first_element_is_a_runtime_error_at_the_read():
    kokoyi.compile(source("h[t-1] + x[t]"), "r.kyi")
    with pytest.raises(KokoyiRuntimeError) as info:
        kokoyi.symbol["M"](Host(), torch.arange(3.0))
    assert "r.kyi:2" in str(info.value)


def test_non_recurrent_set_builders_are_not_marked():
    state = compile_unit(r"\Module{M}{x} g \gets \{ x[t] \}_{t=0}^{2} \\ \Return g \\ \EndModule", "r.kyi")
    definition = state.ast.items[0].body[0]
    assert not definition.target.symbol.extra.get("recurrence")
    assert isinstance(A.strip(definition.value), A.SetBuilder)


@pytest.mark.parametrize("read", ["h[t-1, 0]", "h[t-1][0]", "h_{t-1, 0}"])
def test_a_recurrence_may_read_part_of_an_earlier_element(read):
    kokoyi.compile(rf"""
\Module{{M}}{{x}}
h \gets \{{ \begin{{cases}} x[0] & t = 0 \\ x[t] + {read} & \text{{otherwise}} \end{{cases}} \}}_{{t=0}}^{{|x|-1}} \\
\Return h \\
\EndModule""", filename="r.kyi")
    x = torch.arange(1.0, 7.0).reshape(3, 2)
    want = torch.tensor([[1.0, 2.0], [4.0, 5.0], [9.0, 10.0]])  # h[t] = x[t] + h[t-1][0]
    assert kokoyi.symbol["M"](Host(), x).equal(want)
    assert kokoyi.symbol["M"](Host(), torch.stack([x, 2 * x]), batch_level=[1]).equal(torch.stack([want, 2 * want]))
