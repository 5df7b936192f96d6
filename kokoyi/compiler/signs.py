"""Which expressions are known from the source alone never to be negative.

An integer raised to an integer power is an integer only where its exponent is known to be
a natural number; where the exponent's sign is data (`2^{\\lfloor x \\rfloor}`, `2^{k}` for
an input `k`), the power is a float on every path, so a dtype never depends on the values
(LANGUAGE.md 6a: `i^{-1}` is `1/i`; docs/reference/choices.md#integer-powers). Resolve
records the fact on the symbols of indices (from their lower bound) and of definitions
(from their value); dimensions are sizes.
"""
from __future__ import annotations

from kokoyi.compiler import ast as A
from kokoyi.compiler import symbols as S

KEY = "nonnegative"  # Symbol.extra[KEY]: the symbol's values are known to be >= 0


def nonnegative(e) -> bool:
    """Whether e is known, whatever the inputs, to be >= 0 (False where it may not be)."""
    e = A.strip(e)
    value = constant(e)
    if value is not None:  # numbers alone (`1 - 0`): their value is in the source
        return value >= 0
    match e:
        case A.Num():
            return not isinstance(e.value, bool) and e.value >= 0
        case A.Ref():
            return e.symbol.kind == S.DIM or bool(e.symbol.extra.get(KEY))
        case A.Bars() | A.Norm():
            return True  # a length, an absolute value or a norm
        case A.Binary(op="+" | "*" | "/") | A.Juxtapose():
            return nonnegative(e.left) and nonnegative(e.right)
        case A.Frac():
            return nonnegative(e.numerator) and nonnegative(e.denominator)
        case A.Power():
            return nonnegative(e.base) and nonnegative(e.exponent)
        case A.Rounding():
            return nonnegative(e.operand)
    return False


def constant(e):
    """The value of an expression of numbers alone (`1 - 0`, `\\frac{3}{2}`, `-(2 - 3)`), else
    None: its sign is known from the source as a number's is. (Powers are left out: `10^{400}`.)"""
    e = A.strip(e)
    match e:
        case A.Num():
            return None if isinstance(e.value, bool) else e.value
        case A.Unary(op="-"):
            v = constant(e.operand)
            return None if v is None else -v
        case A.Binary(op="+" | "-" | "*" | "/") | A.Juxtapose() | A.Frac():
            a, b = (e.numerator, e.denominator) if isinstance(e, A.Frac) else (e.left, e.right)
            a, b = constant(a), constant(b)
            if a is None or b is None:
                return None
            op = "/" if isinstance(e, A.Frac) else "*" if isinstance(e, A.Juxtapose) else e.op
            if op == "/":
                return None if b == 0 else a / b
            return a + b if op == "+" else a - b if op == "-" else a * b
    return None
