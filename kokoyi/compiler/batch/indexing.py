"""Reads: `x[i, j]`, slices, list items and a recurrence's earlier elements.

An index that is a Python number is a static read; one that varies with axes (a loop's
index variable, a batched integer) is a gather over the union of the value's and the
indices' axes. Either way the index is checked only where the guards hold (a located
error there), and clamped elsewhere: a read in a row that does not apply reads nothing.
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.layout import Val


def take(b, e: ir.Take) -> Val:
    if isinstance(e.value, ir.Var) and e.value.name in b.recurrences:
        from kokoyi.compiler.batch import sequences

        return sequences.earlier(b, e)
    x = b.ev(e.value)
    if x.what == "tuple":
        return _tuple_item(b, e, x)
    if x.what == "list":
        return _list_item(b, e, x)
    return take_items(b, e, x, e.items)


def take_items(b, e: ir.Take, x: Val, index_items) -> Val:
    """x[index_items] (x a tensor value)."""
    if not x.is_tensor or x.python:
        raise b.unsupported("indexing a number", e)
    if len(index_items) > x.rank:
        raise b.unsupported("more indices than axes", e)
    from kokoyi.compiler.batch import views

    viewed = views.try_views(b, e, x, index_items)
    if viewed is not None:
        return viewed
    items, idx_vals = [], []
    for item in index_items:
        if isinstance(item, ir.Slice):
            lo = None if item.lower is None else _slice_bound(b, e, b.ev(item.lower))
            hi = None if item.upper is None else _slice_bound(b, e, b.ev(item.upper))
            items.append(("slice", lo, hi))
        else:
            v = b.ev(item)
            if v.kind == "float" or not v.is_tensor:
                raise b.unsupported("an index that is not an integer", e)
            items.append(v)
            idx_vals.append(v)
    name = b.spell(e.value)
    if any(v.rank for v in idx_vals):  # tensors of indices: torch's advanced indexing, per sample
        if x.axes or any(v.axes for v in idx_vals):
            raise b.unsupported("a tensor of indices read in a loop or a batch", e)
        codes = tuple(("slice", i[1], i[2]) if isinstance(i, tuple) else i.code for i in items)
        code = b.emit("read_indices", x.code, codes, b.site(e), name, _guards(b, ()), hint="r")
        rank = x.rank - len(items) + sum(isinstance(i, tuple) for i in items) + max(v.rank for v in idx_vals)
        return Val(code, (), rank, x.kind)
    rank = x.rank - len(idx_vals)
    if all(v.python for v in idx_vals):
        axes = x.axes
        guards = _guards(b, axes)
        codes = tuple(("slice", i[1], i[2]) if isinstance(i, tuple) else i.code for i in items)
        stacked = b.stacked.get(x.code.name) if isinstance(x.code, K.Ref) else None
        if stacked is not None and not isinstance(items[0], tuple):
            # an element of a finished recurrence: from its list (the stack may then go unused)
            states, sizes, own_rank, floating, chained = stacked
            code = b.emit("read_states", states, codes[0], b.site(e), name, guards, sizes, own_rank, floating,
                          b.dtype, chained, hint="r")
            if len(codes) == 1:
                return Val(code, axes, rank, x.kind)
            x, codes = Val(code, axes, x.rank - 1, x.kind), codes[1:]
        code = b.emit("read_static", x.code, x.lead, codes, b.site(e), name, guards, hint="r")
        return Val(code, axes, rank, x.kind)
    axes = b.union(x, *idx_vals)
    xc = b.align(x, axes, x.rank, exact=True)
    codes = tuple(("slice", i[1], i[2]) if isinstance(i, tuple) else b.align(i, axes, 0) for i in items)
    guards = _guards(b, axes)
    bounds = tuple(_known_range(b, item) for item in index_items)
    code = b.emit("gather", xc, len(axes), codes, b.site(e), name, guards, bounds, hint="r")
    read = Val(code, axes, rank, x.kind)
    if b.loop_masks and x.kind == "float":
        from kokoyi.compiler.batch import gradients

        return gradients.range_masked(b, read)
    return read


def _slice_bound(b, e, v: Val):
    """A slice bound as a Python int: one read from the data must be one number per call."""
    if v.python:
        return v.code
    if v.axes or v.rank or v.kind == "float":
        raise b.unsupported("a slice whose bounds depend on an index", e)
    return b.emit("int_of", v.code, hint="n")


def _known_range(b, item):
    """(smallest, largest) value of an index affine in loops with Python bounds, as a Python
    pair computed at run time without reading any tensor (the gather then needs no check when
    it lies inside the axis), or None."""
    from kokoyi.compiler.batch.views import affine

    if isinstance(item, ir.Slice):
        return None
    form = affine(item, set(b.static_axes))
    if form is None or not form[0]:
        return None
    terms = tuple((c, b.static_axes[a][0], b.static_axes[a][1]) for a, c in form[0].items())
    return b.emit("affine_range", form[1], terms, hint="known")


def _guards(b, axes) -> tuple:
    return lined_up(b, b.guards, axes)


def lined_up(b, guards, axes) -> tuple:
    """The guards as code lined up with `axes`. Guards that vary with other axes too are
    combined first and then reduced over those (a read made once for all values of an axis
    applies if, for some value, every guard holds)."""
    out, wide = [], []
    for g in guards:
        if g.python:
            out.append(g.code)
        elif set(g.axes) <= set(axes):
            out.append(b.align(g, axes, 0))
        else:
            wide.append(g)
    if wide:
        full = tuple(a for a in b.order if a in axes or any(a in g.axes for g in wide))
        full += tuple(a for a in axes if a not in full)  # (axes closed since, e.g. a reduction's own)
        code = b.align(wide[0], full, 0)
        for g in wide[1:]:
            code = b.emit("and", code, b.align(g, full, 0), hint="g")
        extra = tuple(k for k, a in enumerate(full) if a not in axes)
        code = b.emit("any_over", code, extra, hint="g")
        kept = tuple(a for a in full if a in axes)
        out.append(b.align(Val(code, kept, 0, "bool"), axes, 0))
    return tuple(out)


def _tuple_item(b, e, x: Val) -> Val:
    if len(e.items) != 1 or not isinstance(e.items[0], ir.Lit) or not isinstance(e.items[0].value, int):
        raise b.unsupported("the outputs of a module indexed other than by a literal", e)
    k = e.items[0].value
    if not -len(x.info) <= k < len(x.info):
        raise b.unsupported("an output index out of range", e)
    return x.info[k]


def _list_item(b, e, x: Val) -> Val:
    from kokoyi.compiler.batch import calls

    if len(e.items) != 1:
        raise b.unsupported("a list indexed by more than one index", e)
    i = b.ev(e.items[0])
    if not i.python:
        raise b.unsupported("indexing a list of modules by a tensor", e)
    descs, is_module_list = x.info
    if isinstance(i.code, int):
        if not -len(descs) <= i.code < len(descs):
            raise b.unsupported("a list index out of range", e)
        desc = descs[i.code]
        # ModuleList.__getitem__ costs a microsecond; its dict does not
        key = str(i.code % len(descs))
        code = b.emit("module_at", x.code, key=key, hint="item") if is_module_list else \
            b.emit("item", x.code, i.code, hint="item")
        return calls.value_of_desc(desc, code, False)
    elif len(set(descs)) == 1:
        desc = descs[0]
    else:
        raise b.unsupported("a list of different items indexed by a variable", e)
    code = b.emit("list_item", x.code, i.code, len(descs), b.site(e), b.spell(e.value), hint="item")
    return calls.value_of_desc(desc, code, False)
