"""`\\{ \\sum_{i} \\gamma^{e} r[g] \\}_{t}` with g = s and e = s - t over s = t..S: a discounted
suffix sum of r, computed in O(T) (kk.discounted_window) instead of O(T^2)."""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import factors, linear, terms_expr, uses_axes

# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Build, None),)


def rewrite(e, env):
    if not (isinstance(e, ir.Build) and len(e.axes) == 1 and isinstance(e.body, ir.Reduce) and e.body.op == "sum"):
        return None
    t, red = e.axes[0], e.body
    i = red.axis
    fs = factors(red.body)
    if len(fs) != 2:
        return None
    power = next((f for f in fs if isinstance(f, ir.Prim) and f.op == "pow"), None)
    index = next((f for f in fs if isinstance(f, ir.Take)), None)
    if power is None or index is None or len(index.items) != 1 or isinstance(index.items[0], ir.Slice):
        return None
    names = {i.name, t.name}
    gamma, seq = power.args[0], index.value
    if uses_axes(gamma, names) or uses_axes(seq, names):
        return None
    g, x = linear(index.items[0], names), linear(power.args[1], names)
    lo, hi = linear(i.lower, {t.name}), linear(i.upper, {t.name})
    if None in (g, x, lo, hi) or g[1] or x[1] or lo[1]:
        return None
    gi, gt, g0 = g[0].get(i.name, 0), g[0].get(t.name, 0), g[2]
    xi, xt, x0 = x[0].get(i.name, 0), x[0].get(t.name, 0), x[2]
    # With s = i + gt*t + g0 the exponent must be s - t, the first s t, the last S free of t.
    if gi != 1 or xi != 1 or xt - gt != -1 or x0 - g0 != 0:
        return None
    if lo[0].get(t.name, 0) + gt != 1 or lo[2] + g0 != 0 or hi[0].get(t.name, 0) + gt != 0:
        return None
    last = terms_expr(hi[1])
    return ir.Fast("discounted_window", (gamma, seq, t.lower, t.upper, last, ir.Lit(hi[2] + g0)), e, span=e.span)
