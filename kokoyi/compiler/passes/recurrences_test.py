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


# ---- recurrence groups (LANGUAGE.md section 5) ----------------------------------------------------
def group_source(c_body: str, h_body: str, between: str = "") -> str:
    return ("\\Module{M}{x}\n"
            f"  c \\gets \\{{ {c_body} \\}}_{{t=0}}^{{|x|-1}} \\\\\n"
            f"{between}"
            f"  h \\gets \\{{ {h_body} \\}}_{{t=0}}^{{|x|-1}} \\\\\n"
            "  \\Return h, c \\\\\n\\EndModule\n")


FIRST = r"\begin{cases} x[0] & t = 0 \\ "
LAST = r" & \text{otherwise} \end{cases}"


def group_of(text: str):
    state = compile_unit(text, "g.kyi", stop_after="ranks")
    return state.ast.items[0].body[0].target.symbol.extra["group"]


def test_members_that_read_each_other_form_a_group_ordered_by_current_reads():
    group = group_of(group_source(FIRST + "h[t-1] + c[t-1]" + LAST, "c[t] * 2"))
    assert [m.key for m in group.members] == ["c", "h"]
    assert group.first.key == "c" and group.last.key == "h"
    # h's current element first when c reads it
    group = group_of(group_source(FIRST + "h[t] + c[t-1]" + LAST, FIRST + "h[t-1] * 2" + LAST))
    assert [m.key for m in group.members] == ["h", "c"]


def test_a_group_member_that_does_not_read_itself_is_not_a_plain_recurrence():
    group = group_of(group_source("x[t] + h[t]", "x[t] * 2"))
    assert all(not m.extra.get("recurrence") for m in group.members)


def test_a_cycle_through_current_elements_names_its_members():
    text = group_source(FIRST + "h[t] + x[t]" + LAST, "c[t] * 2")
    err = expect_error(text, KokoyiError)
    assert "`c`" in err.message and "`h`" in err.message and "cycle" in err.message
    assert (err.line, err.column) == (3, 14)  # the read of c[t] in h


@pytest.mark.parametrize("h_body, at, words", [
    ("c[t+1] * 2", "c[t+1]", "not computed yet"),
    ("c * 2", "c *", "may only be read"),
    ("c[2*t] * 2", "c[2", "cannot tell which element"),
])
def test_reads_inside_a_group_are_checked_at_the_read(h_body, at, words):
    err = expect_error(group_source(FIRST + "h[t-1]" + LAST, h_body), KokoyiError)
    assert (err.line, err.column) == (3, len("  h \\gets \\{ ") + 1 + h_body.index(at))
    assert words in err.message


def test_members_must_range_over_the_same_indices():
    text = ("\\Module{M}{x}\n  c \\gets \\{ h[t] \\}_{t=0}^{|x|-1} \\\\\n"
            "  h \\gets \\{ x[t] \\}_{t=1}^{|x|-1} \\\\\n  \\Return c \\\\\n\\EndModule")
    err = expect_error(text, KokoyiTypeError)
    assert (err.line, err.column) == (3, 23) and "same indices" in err.message


def test_a_statement_between_members_may_not_read_the_group():
    err = expect_error(group_source(FIRST + "h[t-1]" + LAST, "c[t]", between="  y \\gets c[0] \\\\\n"), KokoyiError)
    assert (err.line, err.column) == (3, 11) and "complete only after `h`" in err.message


def test_a_group_member_with_an_index_based_where_lowers_to_one_group(tmp_path):
    from kokoyi.compiler import ir

    text = ("\\Module{M}{x}\n  c \\gets \\{ " + FIRST + "c[t-1] + z_t" + LAST
            + " \\}_{t=0}^{|x|-1} \\where z_t \\gets h[t-1] * x[t] \\\\\n"
            "  h \\gets \\{ c[t] + 1 \\}_{t=0}^{|x|-1} \\\\\n  \\Return h \\\\\n\\EndModule")
    f = compile_unit(text, "g.kyi", stop_after="simplify").ir[0]
    ir.verify(f)
    groups = [n for n in _ir_nodes(f.body) if isinstance(n, ir.RecurGroup)]
    assert len(groups) == 1 and groups[0].names == ("c", "h")
    # z_t is computed only in the row that reads it
    select = groups[0].elements[0]
    assert isinstance(select, ir.Select) and isinstance(select.otherwise, ir.Let)
    assert select.otherwise.name == "z_t"


def test_a_group_runs_per_sample_and_batched():
    """A recurrence group is one kernel at every batch level: one sample and a batch agree."""
    import torch

    import kokoyi
    from kokoyi.test_utils import Host

    kokoyi.compile(group_source(FIRST + "h[t-1]" + LAST, "c[t]"), filename="g.kyi")
    forward = kokoyi.symbol["M"]
    h, c = Host(None, forward)(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(h, torch.tensor([1.0, 1.0, 1.0])) and torch.equal(c, h)
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    hb, cb = Host(None, forward)(x, batch_level=[1])
    for k in range(2):
        hk, ck = Host(None, forward)(x[k])
        assert torch.equal(hb[k], hk) and torch.equal(cb[k], ck)


def _ir_nodes(e):
    from kokoyi.compiler import ir

    yield e
    for c in ir.children(e):
        yield from _ir_nodes(c)
