"""Cases.

A cases row whose condition is a constant is picked here; one whose condition is a Python
truth value at run time (a test on lengths or on a recurrence's step) becomes a branch, so a
row that does not apply never runs; one whose condition is a tensor evaluates its value
under that guard and selects element-wise. (Recurrences: sequences.py.)
"""
from __future__ import annotations

import contextlib

from kokoyi.compiler import ir
from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch import gradients
from kokoyi.compiler.batch.layout import Val, promote


def select(b, e: ir.Select) -> Val:
    # docs/reference/choices.md#cases-without-otherwise: conditions on indices and dimensions
    # only make "no row applies" an error; data-dependent ones leave NaN there.
    index_only = e.strict
    out = _rows(b, e, list(e.rows), index_only)
    if out is None:  # every condition is a constant False
        if not index_only:
            return Val(float("nan"), kind="float", python=True)
        from kokoyi.compiler.batch.indexing import _guards

        b.do("no_row", _guards(b, ()), b.site(e))
        return Val(0, kind="int", python=True)
    return out


def _kind_of(b, e_ir) -> str | None:
    """The kind of a row that is not taken (a row's kind counts even then: one float row
    makes the cases a float), from a throwaway evaluation."""
    b.probing += 1  # (no callee is specialised for a row that is never taken)
    try:
        with b.into([]):
            v = b.ev(e_ir)
    except Exception:  # noqa: BLE001 - a row never taken may be anything
        return None
    finally:
        b.probing -= 1
    return v.kind if v.is_tensor else None


def _with_kind(b, v: Val, kinds) -> Val:
    if v.kind != "float" and "float" in kinds:
        return Val(b.as_float(v), v.axes, v.rank, "float", v.python) if not v.python else \
            Val(float(v.code) if isinstance(v.code, (int, float)) else b.tensor(v, "float"), v.axes, v.rank, "float",
                isinstance(v.code, (int, float)))
    return v


def _rows(b, e: ir.Select, rows: list, index_only: bool, undecided: Val | None = None) -> Val | None:
    """The value of rows (and e's otherwise) where no earlier row applied; `undecided`: the
    elements no earlier row with a tensor condition took (None: every element)."""
    if not rows:
        return None if e.otherwise is None else b.ev(e.otherwise)
    (c_ir, v_ir), rest = rows[0], rows[1:]
    c = b.ev(c_ir)
    if not c.is_tensor:
        raise b.unsupported("a condition that is not a truth value", c_ir)
    if c.python and isinstance(c.code, bool):
        skipped = [v_ir] if not c.code else [v for _, v in rest] + ([e.otherwise] if e.otherwise is not None else [])
        out = b.ev(v_ir) if c.code else _rows(b, e, rest, index_only, undecided)
        if out is not None and out.is_tensor:
            out = _with_kind(b, out, [_kind_of(b, x) for x in skipped])
        return out
    if c.python:
        then, orelse = [], []
        with b.into(then):
            v = b.ev(v_ir)
        with b.into(orelse):
            w = _rows(b, e, rest, index_only, undecided)
        return _branch(b, e, c, then, v, orelse, w, index_only, v_ir)
    # The row applies where its condition holds among the elements still undecided: a sample
    # applies when some element of it does both (not when one element is undecided and
    # another meets the condition), for its guard and its gradient mask alike.
    applies = _both(b, undecided, c)
    guard = _some(b, applies)
    with b.guarded(guard), _row_mask(b, applies, guard, [v_ir]):
        v = b.ev(v_ir)
    not_c = Val(b.emit("not", c.code, hint="g"), c.axes, c.rank, "bool")
    left = _both(b, undecided, not_c)
    not_guard = _some(b, left)
    later = [x for row in rest for x in row] + ([e.otherwise] if e.otherwise is not None else [])
    with b.guarded(not_guard), _row_mask(b, left, not_guard, later):
        w = _rows(b, e, rest, index_only, left)
    return _where(b, e, c, not_guard, v, w, index_only)


def _both(b, undecided: Val | None, c: Val) -> Val:
    """The elements where c holds among the undecided ones."""
    if undecided is None:
        return c
    axes, rank = b.union(undecided, c), max(undecided.rank, c.rank)
    code = b.emit("and", b.align(undecided, axes, rank), b.align(c, axes, rank), hint="applies")
    return Val(code, axes, rank, "bool")


def _some(b, elements: Val) -> Val:
    """Per sample: whether some element of `elements` holds."""
    if elements.rank == 0:
        return elements
    return Val(b.emit("any_trailing", elements.code, elements.rank, hint="g"), elements.axes, 0, "bool")


@contextlib.contextmanager
def _row_mask(b, elements: Val, samples: Val, values: list):
    """Inside: reads pass gradient only where the row applies, if the values need it: element
    by element (`elements`, the condition) when the row is element-wise, else sample by sample
    (`samples`: where it applies to some element) — a sample the row supplies nothing to
    discards the row's whole computation, whatever it does."""
    # (always: a value a row reads may carry NaN or inf from before, and 0 * NaN is NaN in
    # the backward pass of whatever the row computes with it, not only where a derivative is
    # undefined)
    use = bool(values)
    if use:
        b.row_masks.append(elements if all(gradients.elementwise(v) for v in values) else samples)
    try:
        yield
    finally:
        if use:
            b.row_masks.pop()


def _check_value(b, e, v: Val) -> None:
    if not v.is_tensor:
        raise b.unsupported("a cases row whose value is not a number", e)


def _where(b, e, c: Val, not_guard: Val, v: Val, w: Val | None, index_only: bool) -> Val:
    _check_value(b, e, v)
    if w is None:
        if index_only:  # no row applies: an error there
            from kokoyi.compiler.batch.indexing import _guards

            axes = b.union(not_guard, *[g for g in b.guards if not g.python])
            with b.guarded(not_guard):
                b.do("no_row", _guards(b, axes), b.site(e))
            return v
        w = Val(float("nan"), kind="float", python=True)
    _check_value(b, e, w)
    kind = "bool" if v.kind == w.kind == "bool" else promote([v.kind, w.kind])
    axes = b.union(c, v, w)
    rank = max(c.rank, v.rank, w.rank)
    codes = [b.align(Val(b.tensor(x, kind) if (x.python and kind == "float") or x.kind != kind else x.code,
                         x.axes, x.rank, kind, x.python and kind != "float" and x.kind == kind), axes, rank)
             for x in (v, w)]
    code = b.emit("where", b.align(c, axes, rank), *codes, hint="sel")
    return Val(code, axes, rank, kind)


def _branch(b, e, c: Val, then: list, v: Val, orelse: list, w: Val | None, index_only: bool, v_ir) -> Val:
    _check_value(b, e, v)
    if w is None:
        if not index_only:
            w = Val(float("nan"), kind="float", python=True)
        else:
            from kokoyi.compiler.batch.indexing import _guards

            with b.into(orelse):
                b.do("no_row", _guards(b, ()), b.site(e))
                # where the guards do not hold (a row around it does not apply, an empty
                # range) the call goes on and the value is discarded: the row's value stands
                # in, of its layout, computed as a row that applies nowhere (reads unchecked)
                with b.guarded(Val(False, kind="bool", python=True)):
                    w = b.ev(v_ir)
    _check_value(b, e, w)
    out = b.ns.create("sel")
    if v.python and w.python:
        kind = promote([v.kind, w.kind]) if v.kind != w.kind else v.kind
        then.append(K.Assign(out, "copy", (v.code,)))
        orelse.append(K.Assign(out, "copy", (w.code,)))
        b.block.append(K.If(c.code, then, orelse, b.line))
        b.joined(out)
        return Val(K.Ref(out), kind=kind, python=True)
    kind = "bool" if v.kind == w.kind == "bool" else promote([v.kind, w.kind])
    axes = b.union(v, w)
    rank = max(v.rank, w.rank)
    for block, x in ((then, v), (orelse, w)):
        with b.into(block):
            code = _widen(b, x, axes, rank, kind)
            block.append(K.Assign(out, "copy", (code,)))
    b.block.append(K.If(c.code, then, orelse, b.line))
    b.joined(out)
    return Val(K.Ref(out), axes, rank, kind)


def _widen(b, x: Val, axes, rank: int, kind: str):
    """x as a tensor of this layout: every axis at its full size, `rank` per-sample dims."""
    t = Val(b.tensor(x, kind), x.axes, x.rank, kind)
    if t.rank < rank:
        t = Val(b.align(t, t.axes, rank), t.axes, rank, kind)
    return b.expand(t, axes) if axes else t.code
