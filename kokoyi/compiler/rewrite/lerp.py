"""`(1 - a) * x + a * y` (factors and terms in any order): a linear interpolation, one
`torch.lerp(x, y, a)` where three element-wise operations (and their backward) were.

The GRU's output `(1 - z) * n + z * h` is this form. Values and gradients are the same for
finite inputs. For infinite ones they may differ: torch.lerp computes `x + a * (y - x)`
(or `y - (1 - a) * (y - x)` for a >= 0.5), so where a is 0 or 1 and the other end is
infinite it gives NaN (`inf - inf`, `0 * inf`) where the spelled-out form gives ±inf or
the finite end; where both forms are NaN or both finite they agree (documented in
docs/reference/choices.md#recognised-forms).
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_lit, resolve, same


def _one_minus(e, env):
    """a when e is `1 - a` (directly or through a let), else None."""
    e = resolve(e, env)
    if isinstance(e, ir.Prim) and e.op == "sub" and is_lit(e.args[0], 1):
        return e.args[1]
    return None


def _weighted(e, env):
    """The (weight, value) readings of a product of two factors."""
    if not (isinstance(e, ir.Prim) and e.op == "mul" and len(e.args) == 2):
        return []
    a, b = e.args
    return [(a, b), (b, a)]


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "add"),)


def rewrite(e, env):
    if not (isinstance(e, ir.Prim) and e.op == "add" and len(e.args) == 2):
        return None
    for left, right in (e.args, e.args[::-1]):
        for w, x in _weighted(left, env):
            a = _one_minus(w, env)
            if a is None:
                continue
            for a2, y in _weighted(right, env):
                if same(a, a2, env):
                    return ir.Fast("lerp", (x, y, a), e, span=e.span)
    return None
