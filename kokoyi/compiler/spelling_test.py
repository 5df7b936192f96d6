"""Tests of canonical spelling: the text that identifies a decorated name."""
from __future__ import annotations

import pytest

from kokoyi.compiler.spelling import identifier_hint, spell
from kokoyi.test_utils import parse_expr, sexpr


@pytest.mark.parametrize(
    "a, b",
    [
        ("G_t", "G_{t}"),
        ("G_t", "G_{ t }"),
        (r"\bar{x}", r"\bar x"),
        (r"\bar{G_t}", r"\bar{G_{t}}"),
        (r"\mathrm{x}", "x"),
        ("x_{t-1}", "x_{t - 1}"),
        ("A_{i,j}", "A_{i, j}"),
        ("x_0", "x_{0}"),
        ("s'_t", "s'_{t}"),
    ],
)
def test_spellings_of_one_name_meet_at_one_key(a, b):
    assert spell(parse_expr(a)) == spell(parse_expr(b))


@pytest.mark.parametrize("a, b", [("x_t", "x_T"), (r"\bar{x}", "x_{bar}"), (r"\mathbf{x}", "x"), ("s'", "s"),
                                  ("x_{1}", "x_{11}"), ("x_{t-1}", "x_{t+1}")])
def test_different_names_have_different_keys(a, b):
    assert spell(parse_expr(a)) != spell(parse_expr(b))


SPELLED = [
    r"\frac{a}{2}",
    r"\frac{1}{2} x",
    r"\frac{x + 1}{y}",
    r"\sqrt{a}",
    r"\sqrt[3]{a + 1}",
    r"\lceil x \rceil + \lfloor y \rfloor",
    r"x^2 + y^{a + 1} - z ** 3",
    r"x^\top",
    r"\|x\|_\infty + \|y\|_1 + |z|",
    r"f(a, b)[1:2, :]",
    r"\sum_{i=0}^{n - 1} x[i] * y[i]",
    r"\mathbb{E}_{i=0}^{3} x[i]",
    r"\{ x[i] \}_{i=0, j=1}^{2, 3}",
    r"\begin{cases} a & c > 0 \\ b & \text{otherwise} \end{cases}",
    r"\mathbb{1}[a \le b \land \lnot c]",
    r"\exp(x) + \Mean(y) + \max(a, b)",
    r"a \lor b",
    r"-a \ne b",
]


@pytest.mark.parametrize("text", SPELLED)
def test_spelling_reads_back_as_the_same_expression(text):
    first = parse_expr(text)
    again = parse_expr(spell(first))
    assert sexpr(again) == sexpr(first)
    assert spell(again) == spell(first)


def test_macro_arguments_are_braced_so_they_do_not_merge_with_the_command():
    assert spell(parse_expr(r"\frac a2")) == r"\frac{a}{2}"
    assert spell(parse_expr(r"\sqrt x")) == r"\sqrt{x}"
    assert spell(parse_expr(r"\lceil x \rceil")) == r"\lceil x \rceil"


@pytest.mark.parametrize(
    "text, hint",
    [
        ("t - 1", "t_1"),
        (r"\alpha", "alpha"),
        ("s'", "s_prime"),
        (r"\infty", "inf"),
        ("first", "first"),
        ("i,j", "i_j"),
        (r"\bar{x}", "bar_x"),
        ("", "x"),
        ("+-*", "x"),
    ],
)
def test_identifier_hint(text, hint):
    assert identifier_hint(text) == hint
    assert identifier_hint(text).replace("_", "a").isalnum()
