"""Big operators and set-builders: an index variable becomes a named tensor axis.

`open_axis` evaluates the bounds and makes the index variable's value: `lo + arange(n)` on
a new innermost axis. When a bound varies with other axes (a dependent or data-dependent
bound), the axis takes the largest size and a mask says which positions are in the range.
A big operator then reduces over that axis (masked); a set-builder keeps it as a leading
per-sample axis.
"""
from __future__ import annotations

import contextlib

from kokoyi.compiler import ir
from kokoyi.compiler.batch.layout import Val

# The big operators' reductions: value for masked-out positions, whether an empty range is an
# error where evaluated.
FILL = {"sum": 0, "prod": 1, "max": "-inf", "min": "inf", "argmax": "-inf", "argmin": "inf", "mean": 0}
NONEMPTY = {"max": "\\max", "min": "\\min", "argmax": "\\argmax", "argmin": "\\argmin", "mean": "\\mathbb{E}"}


def _bound(b, v: Val, up: bool) -> Val:
    """A bound as an integer: a float bound rounds inwards (LANGUAGE.md 4)."""
    if v.kind != "float":
        return v
    op = "floor_int" if up else "ceil_int"
    if v.python:
        return Val(b.emit(op, v.code, hint="n"), kind="int", python=True)
    return Val(b.emit("floor" if up else "ceil", v.code, hint="n"), v.axes, 0, "int")


@contextlib.contextmanager
def open_axis(b, axis: ir.Axis, ragged_ok: bool = True):
    """Inside: the index variable is bound, its axis is open, and the guards say where the
    range holds. Yields (size, mask Val or None, lower bound Val)."""
    lo = _bound(b, b.ev(axis.lower), False)
    hi = _bound(b, b.ev(axis.upper), True)
    name = axis.name
    if lo.python and hi.python:
        n = b.emit("range_size", lo.code, hi.code, hint="n_" + name)
        b.order.append(name)
        b.sizes[name] = n
        iota = Val(b.emit("arange", lo.code, n, hint=name), (name,), 0, "int")
        mask = None
        guard = Val(b.emit("gt", n, 0, hint="some_" + name, py=True), kind="bool", python=True)
        b.static_axes[name] = (lo.code, n)
    else:
        if not ragged_ok:
            raise b.unsupported("a set-builder whose length varies", axis.upper)
        axes = b.union(lo, hi)
        lo_t, hi_t = b.align(lo, axes, 0), b.align(hi, axes, 0)
        n = b.emit("max_size", lo_t, hi_t, hint="n_" + name)
        b.order.append(name)
        b.sizes[name] = n
        full = axes + (name,)
        # (the index varies with what its lower bound varies with, at full size there; the mask
        # with what either bound varies with)
        lo_axes = () if lo.python else lo.axes
        iota = Val(b.emit("iota_from", lo.code, n, len(lo_axes), hint=name), lo_axes + (name,), 0, "int")
        upper = hi_t if hi.python else b.emit("view", hi_t, items=(..., None), hint="v")
        mask = Val(b.emit("le", b.align(iota, full, 0), upper, hint="in_" + name), full, 0, "bool")
        guard = mask
    b.iotas[name] = iota
    if mask is not None:
        b.loop_masks.append(mask)
    try:
        with b.guarded(guard):
            yield n, mask, lo
    finally:
        if mask is not None:
            b.loop_masks.remove(mask)
        b.order.remove(name)
        del b.iotas[name]
        b.static_axes.pop(name, None)


def reduce(b, e: ir.Reduce) -> Val:
    """A big operator: the body on the open axis, reduced over it; where that cannot be
    vectorised, a Python loop over the axis (each_element)."""
    return _vectorised_or_loop(b, e, _reduce, _reduce_loop)


def build(b, e: ir.Build) -> Val:
    """A set-builder: the body on the open axes, kept as leading per-sample axes; where that
    cannot be vectorised, a Python loop over its first axis (each_element)."""
    return _vectorised_or_loop(b, e, _build, _build_loop)


def _vectorised_or_loop(b, e, vectorised, loop) -> Val:
    from kokoyi.compiler.batch.driver import Unsupported

    mark = len(b.block)
    try:
        return vectorised(b, e)
    except Unsupported:
        if b.probing:
            raise
        del b.block[mark:]
        return loop(b, e)


def _reduce(b, e: ir.Reduce) -> Val:
    with open_axis(b, e.axis) as (n, mask, lo):
        fused = _sum_of_products(b, e, mask)
        if fused is not None:
            return fused
        loss = b.loss_reduction
        if loss is not None and loss["reduce"] is not e:
            loss = None
        if loss is not None:  # a row loss at the end of the body may reduce over the axis itself (batch/fast.py)
            loss["armed"] = mask is None
        try:
            body = b.ev(e.body)
        finally:
            if loss is not None:
                loss["armed"] = False
        if not body.is_tensor:
            raise b.unsupported(f"a \\{e.op} of a non-number", e)
        reduced = loss is not None and loss["done"]
        if not reduced:
            axes = b.union(body, *([mask] if mask else []))
            if e.axis.name not in axes:
                axes = tuple(a for a in b.order if a in axes or a == e.axis.name)
            kind = body.kind
            # a sum over the whole axis divided by its count (batch/fast.py `mean_of_sum`): its mean
            op = "mean" if e.op == "sum" and mask is None and b.sum_as_mean is e else e.op
            if op in ("sum", "prod") and kind == "bool":
                kind = "int"
            if op == "mean":
                kind = "float"
            x = b.expand(Val(b.tensor(body, kind), body.axes, body.rank, kind), axes)
            pos = axes.index(e.axis.name)
            m = b.align(mask, axes, body.rank) if mask else None
            m0 = b.align(mask, axes, 0) if mask else None
            out_axes = tuple(a for a in axes if a != e.axis.name)
            lo_code = None
            if e.op in ("argmax", "argmin"):
                lo_code = b.align(lo, out_axes, body.rank) if not lo.python else lo.code
    if reduced:  # (its own axis closed again, as below)
        return _reduced_loss(b, e, n, body)
    from kokoyi.compiler.batch.indexing import _guards

    guards = _guards(b, axes)  # (where the reduction is evaluated: its own axis is closed again)
    if e.op in NONEMPTY:
        b.do("require_nonempty", n, m0, pos, body.rank, b.site(e), NONEMPTY[e.op], guards)
    code = b.emit("reduce_axis", x, pos, m, FILL[op], lo_code, op=op, hint=op)
    out_kind = "int" if e.op in ("argmax", "argmin") else kind
    return Val(code, out_axes, body.rank, out_kind)


def _reduced_loss(b, e: ir.Reduce, n, loss: Val) -> Val:
    """A row loss that reduced over e's axis itself (batch/fast.py): only the empty range's check."""
    from kokoyi.compiler.batch.indexing import _guards

    if e.op in NONEMPTY:
        b.do("require_nonempty", n, None, len(loss.axes), 0, b.site(e), NONEMPTY[e.op], _guards(b, loss.axes))
    return loss


def _sum_of_products(b, e: ir.Reduce, mask):
    r"""\sum_i a_i @ b_i over a static range, as one einsum contracting i too (the per-i
    products are never stacked)."""
    from kokoyi.compiler.batch.layout import promote
    from kokoyi.compiler.batch.rules import einsum_matmul

    if e.op != "sum" or mask is not None or not (isinstance(e.body, ir.Prim) and e.body.op in ("matmul", "cdot")):
        return None
    left, right = (b.ev(a) for a in e.body.args)
    name = e.axis.name
    if not (left.is_tensor and right.is_tensor and not left.python and not right.python and 1 <= left.rank <= 2
            and 1 <= right.rank <= 2 and name in left.axes and name in right.axes):
        return None
    return einsum_matmul(b, left, right, promote([left.kind, right.kind]), summed=name)


def _build(b, e: ir.Build) -> Val:
    with contextlib.ExitStack() as stack:
        for axis in e.axes:
            stack.enter_context(open_axis(b, axis, ragged_ok=False))
        body = b.ev(e.body)
        if not body.is_tensor:
            raise b.unsupported("a set-builder of non-numbers", e)
        names = tuple(a.name for a in e.axes)
        axes = tuple(a for a in b.order if a in body.axes or a in names)
        x = b.expand(body, axes)
    outer = tuple(a for a in axes if a not in names)
    return Val(x, outer, body.rank + len(names), body.kind)


# ---- a Python loop over the axis (what the vectorised forms above cannot do) ----------------
def each_element(b, e, axis: ir.Axis, body) -> tuple:
    """body() for each value of axis's index, a Python int, in a loop of the kernel: (the list
    of the elements as tensors, their layout (axes, rank, kind), the number of elements, the
    lower bound). The bounds must be one number per call (else Unsupported)."""
    from kokoyi.compiler import kernel as K

    lo = _python_int(b, _bound(b, b.ev(axis.lower), False), axis.lower)
    hi = _python_int(b, _bound(b, b.ev(axis.upper), True), axis.upper)
    n = b.emit("range_size", lo, hi, hint="n_" + axis.name)
    items = K.Ref(b.ns.create(axis.name + "_items"))
    b.block.append(K.Assign(items.name, "new_list", ()))
    t = K.Ref(b.ns.create(axis.name))
    loop: list = []
    with b.into(loop):
        b.iotas[axis.name] = Val(t, kind="int", python=True)
        try:
            v = body()
        finally:
            del b.iotas[axis.name]
        if not v.is_tensor:
            raise b.unsupported("a loop whose elements are not numbers", e)
        b.do("append", items, b.tensor(v))
    b.block.append(K.For(t.name, lo, b.emit("add", lo, n, hint="stop", py=True), loop, b.line, b.site(e)))
    axes = () if v.python else v.axes
    return items, (axes, 0 if v.python else v.rank, v.kind), n, lo


def _python_int(b, v: Val, at: ir.Expr):
    if v.python:
        return v.code
    if v.axes or v.rank or v.kind == "float":
        raise b.unsupported("a loop whose bounds vary", at)
    return b.emit("int_of", v.code, hint="n")  # a bound read from the data: one number per call


def _stacked(b, items, layout) -> Val:
    axes, rank, kind = layout
    code = b.emit("stack_states", items, len(axes), tuple(b.sizes[a] for a in axes), rank, kind == "float",
                  b.dtype, hint="v")
    return Val(code, axes, rank + 1, kind)


def _build_loop(b, e: ir.Build) -> Val:
    first, rest = e.axes[0], e.axes[1:]
    inner = ir.Build(rest, e.body, span=e.span) if rest else e.body
    items, layout, _, _ = each_element(b, e, first, lambda: b.ev(inner))
    return _stacked(b, items, layout)


def _reduce_loop(b, e: ir.Reduce) -> Val:
    kinds = {"sum": None, "prod": None, "mean": "float"}

    def element():
        v = b.ev(e.body)
        if not v.is_tensor:
            raise b.unsupported(f"a \\{e.op} of a non-number", e)
        kind = kinds.get(e.op, v.kind)
        if e.op in ("sum", "prod") and v.kind == "bool":
            kind = "int"
        return Val(b.tensor(v, kind or v.kind), () if v.python else v.axes, 0 if v.python else v.rank,
                   kind or v.kind)

    items, layout, n, lo = each_element(b, e, e.axis, element)
    x = _stacked(b, items, layout)
    axes, rank, kind = layout
    pos = len(axes)
    if e.op in NONEMPTY:
        from kokoyi.compiler.batch.indexing import _guards

        b.do("require_nonempty", n, None, pos, rank, b.site(e), NONEMPTY[e.op], _guards(b, axes))
    code = b.emit("reduce_axis", x.code, pos, None, FILL[e.op], lo, op=e.op, hint=e.op)
    return Val(code, axes, rank, "int" if e.op in ("argmax", "argmin") else kind)
