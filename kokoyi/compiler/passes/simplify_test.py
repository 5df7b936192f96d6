"""simplify: one canonical IR for every spelling of the same math."""
from __future__ import annotations

import pytest

from kokoyi.compiler import ir
from kokoyi.compiler.pipeline import compile_unit


def simplified(text: str) -> list[ir.Function]:
    return compile_unit(text, "s.kyi", stop_after="simplify").ir


def expr(e: str) -> str:
    return ir.dump(simplified(f"\\Module{{M}}{{x, a}} \\Return {e} \\\\ \\EndModule")[0].body)


@pytest.mark.parametrize("e, want", [
    ("x * 1", "x"), ("1 * x", "x"), ("x + 0", "x"), ("0 + x", "x"), ("x - 0", "x"), ("x^1", "x"),
    ("--x", "x"), ("(x * 1) + 0", "x"),
    ("2 + 3 * 4", "14"), (r"\frac{1}{2}", "0.5"), ("2^{-1}", "0.5"), ("2^{10}", "1024"),
    (r"\sqrt{4}", "2.0"), ("3 > 2", "True"), ("1 - 1", "0"),
    # not folded: a float 1 or 0 changes an integer's type, division by zero and huge powers
    # are run-time matters, and a truth value times 1 is an integer
    ("x * 1.0", "mul(x, 1.0)"), ("x / 1", "div(x, 1)"), ("1 / 0", "div(1, 0)"), ("10^{400}", "pow(10, 400)"),
    ("(x > a) * 1", "mul(gt(x, a), 1)"),
])
def test_simplify(e, want):
    assert expr(e) == want


def test_the_seed_returns_written_with_a_times_one_simplify_to_the_plain_form():
    def returns(body):
        text = rf"\Module{{G}}{{r; \gamma}} \Return \{{ \sum_{{i=0}}^{{|r|-1-t}} {body} \}}_{{t=0}}^{{|r|-1}} \\ \EndModule"
        return simplified(text)[0]
    plain = returns(r"\gamma^i * r[t+i]")
    assert returns(r"\gamma^i * (r[t+i] * 1)") == plain
    assert returns(r"1 * \gamma^{i} * r[t + i + 0]") == plain
