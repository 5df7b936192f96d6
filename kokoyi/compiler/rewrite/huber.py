"""The Huber loss written as cases, `\\frac{1}{2}\\delta^2` where `|\\delta| < d` and
`d (|\\delta| - \\frac{d}{2})` otherwise (d a positive number; for d = 1 also `|\\delta| - \\frac{1}{2}`):
one F.huber_loss instead of both rows, two selects and the row-gradient masks.

Exact: both rows agree where |δ| = d (value ½d², gradient ±d), so `<` and `\\le` are the same
loss, and a NaN δ is NaN either way. The batch rule (kokoyi/compiler/batch/fast.py) applies
it to a float δ with one value per sample (`|δ|` of a vector is its length, not a loss).
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_lit, resolve, same


def _number(e):
    if isinstance(e, ir.Lit) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
        return float(e.value)
    return None


def _threshold(cond, env):
    """(δ, d) when cond is |δ| < d or |δ| <= d (or d > |δ|, d >= |δ|) with d a positive number."""
    cond = resolve(cond, env)
    if not (isinstance(cond, ir.Prim) and len(cond.args) == 2):
        return None
    if cond.op in ("lt", "le"):
        bars, bound = cond.args
    elif cond.op in ("gt", "ge"):
        bound, bars = cond.args
    else:
        return None
    bars, d = resolve(bars, env), _number(bound)
    if not (isinstance(bars, ir.Prim) and bars.op == "bars" and len(bars.args) == 1) or d is None or d <= 0:
        return None
    return bars.args[0], d


def _is_bars_of(e, delta, env) -> bool:
    e = resolve(e, env)
    return isinstance(e, ir.Prim) and e.op == "bars" and len(e.args) == 1 and same(e.args[0], delta, env)


def _is_half_square(e, delta, env) -> bool:
    """½δ²: 0.5 * δ^2 (either order) or δ^2 / 2."""
    e = resolve(e, env)
    if not (isinstance(e, ir.Prim) and len(e.args) == 2):
        return False

    def square(x):
        x = resolve(x, env)
        return isinstance(x, ir.Prim) and x.op == "pow" and is_lit(x.args[1], 2) and same(x.args[0], delta, env)

    if e.op == "mul":
        return any(_number(c) == 0.5 and square(s) for c, s in (e.args, e.args[::-1]))
    return e.op == "div" and square(e.args[0]) and _number(e.args[1]) == 2.0


def _is_linear_part(e, delta, d: float, env) -> bool:
    """d(|δ| - d/2): as written (either order), as d|δ| - d²/2, or |δ| - ½ when d = 1."""
    e = resolve(e, env)
    if not (isinstance(e, ir.Prim) and len(e.args) == 2):
        return False
    if e.op == "sub":
        left, c = e.args
        if d == 1.0 and _is_bars_of(left, delta, env) and _number(c) == 0.5:
            return True
        left = resolve(left, env)
        return (isinstance(left, ir.Prim) and left.op == "mul" and _number(c) == d * d / 2
                and any(_number(k) == d and _is_bars_of(x, delta, env) for k, x in (left.args, left.args[::-1])))
    if e.op == "mul":
        for k, inner in (e.args, e.args[::-1]):
            inner = resolve(inner, env)
            if (_number(k) == d and isinstance(inner, ir.Prim) and inner.op == "sub"
                    and _is_bars_of(inner.args[0], delta, env) and _number(inner.args[1]) == d / 2):
                return True
    return False


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Select, None),)


def rewrite(e, env):
    if not (isinstance(e, ir.Select) and len(e.rows) == 1 and e.otherwise is not None):
        return None
    (cond, quadratic), = e.rows
    found = _threshold(cond, env)
    if found is None:
        return None
    delta, d = found
    if not (_is_half_square(quadratic, delta, env) and _is_linear_part(e.otherwise, delta, d, env)):
        return None
    return ir.Fast("huber", (delta, ir.Lit(d)), e, span=e.span)
