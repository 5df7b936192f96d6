"""Tests of per-sample rank inference and the rank errors it proves at compile time."""
from __future__ import annotations

import pytest

from kokoyi.compiler import ast as A
from kokoyi.compiler.pipeline import compile_unit
from kokoyi.errors import KokoyiTypeError
from kokoyi.test_utils import expect_error


def local_ranks(signature: str, body: str) -> dict[str, int | None]:
    """key -> inferred rank of each local of \\Module{M}{signature} body."""
    state = compile_unit(f"\\Module{{M}}{{{signature}}}\n{body}\n\\Return 0 \\\\\n\\EndModule", "r.kyi")
    out = {}
    for stmt in state.ast.items[0].body:
        if isinstance(stmt, A.Definition) and stmt.params is None:
            out[stmt.target.symbol.key] = stmt.target.symbol.rank
    return out


def test_ranks_from_annotations():
    ranks = local_ranks(r"X \in \mathbb{R}^{T \times d}, v \in \mathbb{R}^{d}, s \in \mathbb{R}, k \in \mathbb{Z}",
                        r"a \gets X \\ b \gets v \\ c \gets s \\ e \gets k \\ f \gets T \\ g \gets X[0] \\ "
                        r"h \gets X[:, 0] \\ i \gets X[0, 0] \\ j \gets X[1:3]\\")
    assert ranks == {"a": 2, "b": 1, "c": 0, "e": 0, "f": 0, "g": 1, "h": 1, "i": 0, "j": 2}


def test_ranks_of_products_builtins_and_builders():
    ranks = local_ranks(
        r"X \in \mathbb{R}^{T \times d}, v \in \mathbb{R}^{d}, k \in \mathbb{Z}",
        r"a \gets X @ v \\ b \gets v @ v \\ c \gets X^\top @ X \\ dd \gets \Softmax(v) \\ e \gets \Mean(X) \\ "
        r"f \gets \OneHot(k, 3) \\ g \gets \{ v \}_{t=0}^{2} \\ h \gets \{ 1 \}_{i=0, j=0}^{1, 1} \\ "
        r"i \gets \sum_{t=0}^{T-1} X[t] \\ j \gets \argmax_{t=0}^{2} v[t] \\ l \gets |X| \\ m \gets \|X\| \\ "
        r"n \gets v * 2 + 1 \\ o \gets \mathbb{1}[v > 0] \\ p \gets X[k] \\ q \gets \max(v, 0) \\ r \gets \max(v) \\")
    assert ranks == {"a": 1, "b": 0, "c": 2, "dd": 1, "e": 0, "f": 1, "g": 2, "h": 2, "i": 1, "j": 0, "l": 0,
                     "m": 0, "n": 1, "o": 1, "p": 1, "q": 1, "r": 0}


def test_unannotated_inputs_have_unknown_rank_and_stay_unchecked():
    ranks = local_ranks("x", r"a \gets x \\ b \gets x @ x \\ c \gets x[0, 1, 2] \\ d \gets |x| \\")
    assert ranks == {"a": None, "b": None, "c": None, "d": 0}


@pytest.mark.parametrize(
    "signature, expr, at",
    [
        (r"x \in \mathbb{R}^{d}", "2 @ x", "2"),
        (r"x \in \mathbb{R}^{d}", "x @ 2", "2"),
        (r"x \in \mathbb{R}", "x @ x", "x"),
        ("x", r"\sum(x) @ x", r"\sum"),
        ("x", r"|x| @ x", "|x|"),
        (r"x \in \mathbb{R}^{d}", r"\sum_{i=0}^{d-1} x[i] @ x", "x[i] @"),
    ],
)
def test_matrix_product_with_a_scalar_is_a_type_error(signature, expr, at):
    err = expect_error(f"\\Module{{M}}{{{signature}}}\n\\Return {expr} \\\\\n\\EndModule", KokoyiTypeError)
    assert (err.line, err.column) == (2, len("\\Return ") + 1 + expr.index(at))
    assert "`@`" in err.message and "`*`" in err.message


@pytest.mark.parametrize(
    "signature, expr, message",
    [
        (r"x \in \mathbb{R}^{d}", "x[1, 2]", "indexed with 2 indices but the value has rank 1"),
        (r"x \in \mathbb{R}^{d}", "x[1][2]", "indexed with 1 index but the value has rank 0"),
        (r"x \in \mathbb{R}", "x[0]", "indexed with 1 index but the value has rank 0"),
        (r"x \in \mathbb{R}^{a \times b}", "x[:, 1, 2]", "indexed with 3 indices but the value has rank 2"),
        (r"x \in \mathbb{R}^{a \times b}, k", "x[k, :, 0]", "indexed with 3 indices but the value has rank 2"),
        (r"x \in \mathbb{R}^{a \times b}", "x[:, :, :]", "indexed with 3 indices but the value has rank 2"),
        ("x", r"\Mean(x)[0]", "rank 0"),
        (r"x \in \mathbb{R}^{d}", r"\{x[i]\}_{i=0}^{d-1}[0, 0]", "rank 1"),
    ],
)
def test_too_many_indices_is_a_type_error(signature, expr, message):
    err = expect_error(f"\\Module{{M}}{{{signature}}}\n\\Return {expr} \\\\\n\\EndModule", KokoyiTypeError)
    assert (err.line, err.column) == (2, len("\\Return ") + 1)
    assert message in err.message


def test_enough_indices_are_fine():
    compile_unit(r"\Module{M}{x \in \mathbb{R}^{a \times b}} \Return x[1, 2] + x[0][1] + x[:, 1][0] \\ \EndModule",
                 "r.kyi")


@pytest.mark.parametrize(
    "signature, expr",
    [
        (r"x \in \mathbb{R}", r"\Softmax(x)"),
        ("x", r"\Softmax(3)"),
        ("x", r"\LogSoftmax(\Mean(x))"),
        (r"x \in \mathbb{R}^{d}", r"\Softmax(x[0])"),
        (r"x \in \mathbb{R}^{d}", r"\Softmax(\sum(x))"),
    ],
)
def test_softmax_of_a_scalar_is_a_type_error(signature, expr):
    err = expect_error(f"\\Module{{M}}{{{signature}}}\n\\Return {expr} \\\\\n\\EndModule", KokoyiTypeError)
    assert (err.line, err.column) == (2, len("\\Return ") + 1) and "scalar" in err.message


def test_softmax_of_a_local_scalar_is_found_through_the_local():
    err = expect_error("\\Module{M}{x \\in \\mathbb{R}^{d}}\n  a \\gets \\Mean(x) \\\\\n  \\Return \\Softmax(a) \\\\\n"
                       "\\EndModule", KokoyiTypeError)
    assert (err.line, err.column) == (3, 11)


def test_softmax_of_vectors_and_unknown_ranks_is_fine():
    compile_unit(r"\Module{M}{x, v \in \mathbb{R}^{d}} \Return \Softmax(x) + \Softmax(v) \\ \EndModule", "r.kyi")


@pytest.mark.parametrize("signature, expr, rank", [
    (r"x \in \mathbb{R}^{d}", r"x[0] \cdot x", 1),
    (r"x \in \mathbb{R}^{d}", r"x \cdot 2", 1),
    (r"x \in \mathbb{R}^{d}", r"x \cdot x", 0),
    (r"x \in \mathbb{R}^{d \times d}", r"x \cdot x[0]", 1),
])
def test_cdot_with_a_scalar_is_the_ordinary_product(signature, expr, rank):
    import torch

    import kokoyi
    from kokoyi.test_utils import Host

    kokoyi.compile(f"\\Module{{M}}{{{signature}}}\n\\Return {expr} \\\\\n\\EndModule", filename="c.kyi")
    x = torch.arange(1.0, 4.0) if "times" not in signature else torch.eye(3) + 1
    out = kokoyi.symbol["M"](Host(), x)
    assert out.dim() == rank
    want = {r"x[0] \cdot x": lambda: x[0] * x, r"x \cdot 2": lambda: 2 * x, r"x \cdot x": lambda: x @ x,
            r"x \cdot x[0]": lambda: x @ x[0]}[expr]()
    assert torch.equal(out, want)
    assert torch.equal(kokoyi.symbol["M"](Host(), torch.stack([x, x]), batch_level=[1]), torch.stack([want, want]))


# ---- language round 2 ---------------------------------------------------------------------------
def front_end_ranks(signature: str, body: str) -> dict[str, int | None]:
    """local_ranks, through the front end only (the old back end lacks these constructs)."""
    state = compile_unit(f"\\Module{{M}}{{{signature}}}\n{body}\n\\Return 0 \\\\\n\\EndModule", "r.kyi",
                         stop_after="ranks")
    return {s.target.symbol.key: s.target.symbol.rank for s in state.ast.items[0].body
            if isinstance(s, A.Definition) and s.params is None}


def test_ranks_of_matrix_literals_and_linear_algebra():
    ranks = front_end_ranks(r"a, u \in \mathbb{R}^{d}, A \in \mathbb{R}^{d \times d}", r"""
        R \gets \begin{bmatrix} a & a \\ a & a \end{bmatrix} \\
        M \gets \begin{pmatrix} u \\ u \end{pmatrix} \\
        r \gets \begin{bmatrix} 1 & 2 & 3 \end{bmatrix} \\
        k \gets \begin{bmatrix} 1 \\ 2 \end{bmatrix} \\
        D \gets \det(A) + \operatorname{tr}(A) \\
        v \gets \operatorname{diag}(A) \\
        V \gets \operatorname{diag}(u) \\
        I \gets \mathbf{I}_{d} \\
        B \gets A^{-1} \\
        w \gets u^{-1} \\
        l \gets \log_2 u \\""")
    assert ranks == {"R": None, "M": 2, "r": 1, "k": 1, "D": 0, "v": 1, "V": 2, "I": 2, "B": 2, "w": 1, "l": 1}


def test_a_ragged_matrix_is_an_error_at_the_short_row():
    err = expect_error("\\Module{M}{a}\n  \\Return \\begin{bmatrix} a & a \\\\ a \\\\ a & a \\end{bmatrix} \\\\\n\\EndModule",
                       KokoyiTypeError)
    assert (err.line, err.column) == (2, 36)
    assert "row 2 of this matrix has 1 entry, but row 1 has 2" in err.message


@pytest.mark.parametrize("expr, at", [(r"\det(u)", 45), (r"\operatorname{tr}(u)", 45), (r"\operatorname{diag}(2)", 45),
                                      (r"\mathbf{I}_{u}", 57)])
def test_linear_algebra_rank_errors_are_located(expr, at):
    err = expect_error(rf"\Module{{M}}{{a, u \in \mathbb{{R}}^{{3}}}} \Return {expr} \\ \EndModule", KokoyiTypeError)
    assert err.column == at


def test_the_inverse_of_a_matrix_replaces_the_power_and_other_powers_stay():
    state = compile_unit(r"\Module{M}{A \in \mathbb{R}^{2 \times 2}, u \in \mathbb{R}^{2}} "
                         r"\Return A^{-1}, u^{-1}, A^{2}, A^{-2} \\ \EndModule", "r.kyi", stop_after="ranks")
    values = state.ast.items[0].body[-1].values
    assert [type(v).__name__ for v in values] == ["Inverse", "Power", "Power", "Power"]


def test_a_matrix_inverted_in_a_recurrence_step_from_earlier_elements_is_the_inverse():
    """Seed 37002697: the step reads h_{t-1}, whose rank is unknown while the element's rank is
    inferred, so `(I + h_{t-1} J)^{-1}` stayed a power there (1/x element by element), where
    lower, seeing h's rank, printed `pow`. The element is inferred again once h's rank is known."""
    state = compile_unit(r"\Module{M}{x \in \mathbb{R}^{2}} h \gets \{ \begin{cases} 1.5 & t = 0 \\ "
                         r"\sum((\mathbf{I}_{2} + h_{t-1} * \{ 1 \}_{i=0, j=0}^{1, 1})^{-1} @ x) & \text{otherwise} "
                         r"\end{cases} \}_{t=0}^{2} \\ \Return h \\ \EndModule", "r.kyi", stop_after="ranks")
    builder = A.strip(state.ast.items[0].body[0].value)
    assert [type(n).__name__ for n in A.walk(builder.element) if isinstance(n, (A.Power, A.Inverse))] == ["Inverse"]
