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


def front_end_expr(sig: str, e: str) -> str:
    state = compile_unit(f"\\Module{{M}}{{{sig}}} \\Return {e} \\\\ \\EndModule", "s.kyi", stop_after="simplify")
    return ir.dump(state.ir[0].body).rsplit("return ", 1)[-1]


@pytest.mark.parametrize("e, want", [
    (r"\log \det(A)", "logdet(A)"),
    (r"\ln{\det A}", "logdet(A)"),
    (r"\log_2 \det(A)", "log_base(det(A), 2)"),  # another base: not the natural log-determinant
    (r"A^{-1} @ b", "solve(A, b)"),
    (r"(A^{-1}) @ (b * 1)", "solve(A, b)"),
    (r"b @ A^{-1}", "matmul(b, inverse(A))"),
    (r"A^{-1}", "inverse(A)"),
])
def test_linear_algebra_rewrites(e, want):
    assert front_end_expr(r"A \in \mathbb{R}^{n \times n}, b \in \mathbb{R}^{n}", e) == f"(let n = dim[0](A) in {want})"


SPELLINGS = ["x * 1", "(x * 1) + 0", "--x", "2 + 3 * 4", r"\log \det(x)", r"x^{-1} @ a", "(x > a) * 1",
             r"\sum_{i=0}^{|x|-1} x[i] * 1", r"\{ x[i] + 0 \}_{i=0}^{|x|-1}"]


@pytest.mark.parametrize("e", SPELLINGS)
def test_simplify_gives_what_it_made_back_as_it_is(e):
    # The mark that lets a later simplify skip a node (simplify_expr) is sound only where
    # simplifying again changes nothing: the same object back, without looking inside.
    from kokoyi.compiler.passes import simplify as S

    body = compile_unit(f"\\Module{{M}}{{x, a}} \\Return {e} \\\\ \\EndModule", "s.kyi", stop_after="lower").ir[0].body
    once = S.simplify_expr(body)
    unmarked = ir.map_children(once, lambda c: ir.with_fields(c, {}) if type(c) not in ir.LEAVES else c)
    again = S.simplify_expr(unmarked)  # (its children unmarked copies: simplified again, by the rules)
    assert again == once and ir.dump(again) == ir.dump(once)
    assert S.simplify_expr(once) is once


def test_a_copy_of_a_simplified_node_is_simplified_again():
    from kokoyi.compiler.passes import simplify as S

    x, y = ir.Var("x"), ir.Var("y")
    done = S.simplify_expr(ir.Prim("add", (x, y)))
    assert ir.SIMPLIFIED in done.__dict__ and done == ir.Prim("add", (x, y))  # (a mark, not a field)
    changed = ir.with_fields(done, {"args": (ir.Prim("mul", (x, ir.Lit(1))), y)})
    assert ir.SIMPLIFIED not in changed.__dict__
    assert S.simplify_expr(changed) == ir.Prim("add", (x, y))
    assert repr(done) == repr(ir.Prim("add", (x, y)))
