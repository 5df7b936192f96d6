"""`\\{ \\max_{a=0}^{k-1} \\max_{b=0}^{l-1} h[c, s i + a, t j + b] \\}_{c, i, j}`: 2-D max pooling
of a (C, H, W) map with a k x l window and strides (s, t) — one F.max_pool2d; with \\sum
over the window (or \\mathbb{E}) it is average pooling times the window size (or not)."""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_lit, linear


def _window(e, op: str):
    """(axis a, axis b, body) when e is op over a of op over b of body, from 0 to literals."""
    if not (isinstance(e, ir.Reduce) and e.op == op and isinstance(e.body, ir.Reduce) and e.body.op == op):
        return None
    a, b = e.axis, e.body.axis
    if not all(is_lit(x.lower, 0) and isinstance(x.upper, ir.Lit) and isinstance(x.upper.value, int)
               and not isinstance(x.upper.value, bool) for x in (a, b)):
        return None
    return a, b, e.body.body


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Build, None),)


def rewrite(e, env):
    if not (isinstance(e, ir.Build) and len(e.axes) == 3):
        return None
    c, i, j = e.axes
    for op, kind in (("max", "max"), ("sum", "sum"), ("mean", "mean")):
        found = _window(e.body, op)
        if found is not None:
            break
    else:
        return None
    a, b, read = found
    if not (isinstance(read, ir.Take) and len(read.items) == 3 and read.items[0] == ir.Iota(c)):
        return None
    if not all(is_lit(x.lower, 0) for x in (c, i, j)):
        return None
    names = {i.name, j.name, a.name, b.name}
    rows, cols = linear(read.items[1], names), linear(read.items[2], names)
    if rows is None or cols is None or rows[1] or cols[1] or rows[2] or cols[2]:
        return None
    if set(rows[0]) - {i.name, a.name} or set(cols[0]) - {j.name, b.name}:
        return None
    if rows[0].get(a.name) != 1 or cols[0].get(b.name) != 1:
        return None
    s, t = rows[0].get(i.name, 0), cols[0].get(j.name, 0)
    if s < 1 or t < 1:
        return None
    window = (a.upper.value + 1, b.upper.value + 1)
    return ir.Fast(f"{kind}_pool2d", (read.value, c.upper, i.upper, j.upper, ir.Lit(window), ir.Lit((s, t))), e,
                   span=e.span)
