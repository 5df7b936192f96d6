"""Tests of kokoyi.compiler.signs: the static sign rule of integer powers."""
from __future__ import annotations

import pytest

from kokoyi.compiler import ast as A
from kokoyi.compiler import signs
from kokoyi.compiler.pipeline import compile_unit


def _exponents(body: str, decl: str = "x, k \\in \\mathbb{Z}") -> list[bool]:
    """signs.nonnegative of every power's exponent in a module, in source order."""
    src = f"\\Module{{P}}{{{decl}}}\n{body}\n\\EndModule\n"
    prog = compile_unit(src, "t.kyi").ast
    found = []

    def visit(n):
        if isinstance(n, A.Power):
            found.append((n.span.column, signs.nonnegative(n.exponent)))
        if isinstance(n, A.Node):
            for c in A.children(n):
                visit(c)
        elif isinstance(n, tuple):
            for c in n:
                visit(c)

    visit(prog)
    return [v for _, v in sorted(found)]


@pytest.mark.parametrize("exponent, known", [
    ("3", True), ("0", True), ("-1", False), ("k", False), ("|x|", True), ("|x| - 1", False),
    ("\\lfloor x[0] \\rfloor", False), ("\\lfloor |x| / 2 \\rfloor", True), ("2 |x| + 1", True),
    ("\\frac{|x|}{2}", True), ("|x|^{2}", True), ("(k)", False),
    # numbers alone: their value is in the source (seed 32000812: `2^{(1) - 0}`)
    ("(1) - 0", True), ("3 - 5", False), ("-(2 - 3)", True), ("\\frac{1}{2} - 1", False), ("2 \\cdot 3 - 7", False),
])
def test_exponent_signs(exponent, known):
    assert _exponents(f"\\Return 2^{{{exponent}}} \\\\")[0] == known  # the outermost power


def test_indices_take_the_sign_of_their_lower_bound_and_definitions_of_their_value():
    body = ("n \\gets |x| - 1 \\\\ m \\gets |x| \\\\\n"
            "\\Return \\sum_{i=0}^{n} 2^{i} + \\sum_{j=k}^{n} 2^{j} + 2^{n} + 2^{m} \\\\")
    assert _exponents(body) == [True, False, False, True]


def test_dimensions_are_natural():
    assert _exponents("\\Return 2^{D} \\\\", "x \\in \\mathbb{R}^{D}") == [True]
