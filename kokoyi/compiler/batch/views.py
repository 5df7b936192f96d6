"""Reads whose indices are affine in loop variables, as views instead of gathers.

`x[i]`, `x[i + 1]`, `h[c, 2i + a, 2j + b]`: when each index is a constant, `u + c` or
`s*u + w + c` over loops with static ranges (each loop used once) and x varies only with
axes opened before those loops, the read is a narrow (`u + c`) or windows of |w| elements
every s (`Tensor.unfold`, as in pooling) of x, then a permutation: no index tensor, no copy.
Out of range, the kernel checks exactly as a gather would. Under guards that vary with axes
(`y[t-1]` in the `otherwise` row of cases on t), the read is still a view where each index
lies in Python's range (`t - 1` for t = 0: the last element, as the gather reads it, and a
row the guards discard): the guards come lined up with the view's leading axes, and only an
index outside the axis is checked against the rows where they hold. Windows (`s*u + w`)
keep to Python guards, and so does a view whose axes would need a permutation.
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.batch.layout import Val
from kokoyi.compiler.rewrite.match import linear


def affine(e, axes: set) -> tuple[dict, int] | None:
    """(coefficient by axis name, constant) when e is an integer affine form of these axes."""
    form = linear(e, axes)
    return None if form is None or form[1] else (form[0], form[2])


def try_views(b, e: ir.Take, x: Val, index_items) -> Val | None:
    if not index_items or len(index_items) > x.rank:
        return None
    varying = any(not g.python for g in b.guards)
    static = {a: b.static_axes[a] for a in b.order if a in b.static_axes and a not in x.axes}
    if not static:
        return None
    specs, labels, windows, used = [], [], [], set()
    for item in index_items:
        if isinstance(item, ir.Slice):
            return None
        form = affine(item, set(static))
        if form is None:
            return None
        coef = {a: c for a, c in form[0].items() if c != 0}
        if used & set(coef):
            return None
        used |= set(coef)
        if not coef:
            specs.append(("at", form[1]))
            continue
        if len(coef) == 1 and next(iter(coef.values())) == 1:
            (u,) = coef
            lo, n = static[u]
            specs.append(("var", b.emit("add", lo, form[1], hint="lo", py=True) if form[1] else lo, n))
            labels.append(u)
        elif len(coef) == 2 and 1 in coef.values() and min(coef.values()) >= 1:
            u, w = sorted(coef, key=lambda a: (coef[a] == 1, b.order.index(a)))
            (lo_u, n_u), (lo_w, n_w) = static[u], static[w]
            specs.append(("windows", coef[u], form[1], lo_u, n_u, lo_w, n_w))
            labels.append(u)
            windows.append(w)
        else:
            return None
    if not labels:
        return None  # constants only: a static read
    if varying and (windows or labels != [a for a in b.order if a in labels]):
        return None  # guards line up only with the view's own axes in loop order
    positions = [b.order.index(a) for a in x.axes]
    if positions and max(positions) > min(b.order.index(a) for a in labels + windows):
        return None  # x varies with a loop inside the indexing ones: a gather lines them up
    rest = x.rank - len(index_items)
    current = list(x.axes) + labels + [("rest", k) for k in range(rest)] + windows
    item_axes = [a for a in b.order if a in labels or a in windows]
    wanted = list(x.axes) + item_axes + [("rest", k) for k in range(rest)]
    perm = tuple(current.index(a) for a in wanted)
    if perm == tuple(range(len(perm))):
        perm = None  # already in place: no permute (a view, but also a node in the graph)
    if varying:
        from kokoyi.compiler.batch.indexing import lined_up

        guards = lined_up(b, b.guards, tuple(x.axes) + tuple(labels))
    else:
        guards = tuple(g.code for g in b.guards)
    code = b.emit("windows", x.code, x.lead, tuple(specs), perm, b.site(e), b.spell(e.value), guards, hint="w")
    read = Val(code, tuple(x.axes) + tuple(item_axes), rest, x.kind)
    if varying and b.loop_masks and x.kind == "float":
        from kokoyi.compiler.batch import gradients

        return gradients.range_masked(b, read)  # as a gather's read
    return read
