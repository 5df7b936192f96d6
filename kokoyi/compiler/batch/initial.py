"""A recurrence whose base case is its general case applied to an initial element.

`h[t] = cases(Enc(E(x[t]), h_0) if t = 0; Enc(E(x[t]), h[t-1]) otherwise)` is the general
case at every step, the first included, with `h[-1]` read as `h_0`. Such a recurrence needs no
first step computed apart (batch/sequences.py): its loop starts at the first step from the
initial element (two products, an embedding and the element-wise work of one step fewer per
call, and the first step's input projections join the other steps', computed for all at once).

`initial_elements` matches the form: every element is `cases(t = lo -> base; otherwise ->
general)`, and base is general with each read `m[t - 1]` of an earlier element of a member m
replaced by one expression per member (the same at every read) that depends neither on t, nor
on a member, nor on anything bound inside the element, and whose nodes that can raise a located
error at run time are the same nodes in both (an inlined callee's): base's error at the first
step names base's position, which general's would not. general reads no other earlier element
(`m[t - 2]`, `m[0]`: their first reads would differ), and the current element `m[t]` of a
member before it only where base reads it alike. (sequences.py applies it only where the
initial elements have the elements' layout, or where the first step computed apart would widen
a shared initial element to the samples anyway: `_expands_initial`.)

The cases may also sit inside the element, around each read (`_lifted`): an LSTM's
`c[t] = f_t \\odot cases(c_0 if t = 0; c[t-1] otherwise) + ...`, and the `Concat` of
`cases(h_0; h[t-1])` with `x[t]`, are the same form with `c_0`, `h_0` the initial elements.
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import ir

_NODES = (ir.Expr, ir.Axis, ir.Slice)


def initial_elements(names, axis: ir.Axis, elements, lo: int):
    """(the general cases, {member: its initial element's expression}) or None."""
    first = ir.Prim("eq", (ir.Iota(axis), ir.Lit(lo)))
    previous = ir.Prim("sub", (ir.Iota(axis), ir.Lit(1)))
    inits: dict = {}
    generals = []
    for element in elements:
        if not (isinstance(element, ir.Select) and len(element.rows) == 1 and element.otherwise is not None
                and element.rows[0][0] == first):
            general = _lifted(element, set(names), first, previous, inits)
            if general is None:
                return None
            generals.append(general)
            continue
        match = _Match(set(names), axis, previous, inits)
        if not match.same(element.rows[0][1], element.otherwise):
            return None
        generals.append(element.otherwise)
    bound = {axis.name}
    for g in generals:
        _bound(g, bound)
    if not inits or any(not _closed(x, set(names), bound) for x in inits.values()):
        return None
    return tuple(generals), inits


class _Match:
    def __init__(self, names: set, axis: ir.Axis, previous, inits: dict) -> None:
        self.names, self.axis, self.previous, self.inits = names, axis, previous, inits

    def same(self, base, general) -> bool:
        """base is general with the reads m[t - 1] replaced by m's initial element."""
        if isinstance(general, ir.Take) and isinstance(general.value, ir.Var) and general.value.name in self.names:
            name = general.value.name
            if general.items == (self.previous,):
                if name in self.inits:
                    return self.inits[name] == base
                self.inits[name] = base
                return True
            return general.items == (ir.Iota(self.axis),) and base == general  # the current element
        if type(base) is not type(general) or (isinstance(general, ir.Var) and general.name in self.names):
            return False
        if isinstance(general, ir.Expr) and base.span != general.span and _may_fail(general, self.axis):
            return False  # its error at the first step would name general's position, not base's
        return all(self._field(getattr(base, f.name), getattr(general, f.name))
                   for f in dataclasses.fields(general) if f.name != "span")

    def _field(self, a, g) -> bool:
        if isinstance(g, _NODES):
            return isinstance(a, _NODES) and self.same(a, g)
        if isinstance(g, tuple):
            return isinstance(a, tuple) and len(a) == len(g) and all(self._field(x, y) for x, y in zip(a, g))
        return a == g


def _lifted(element, names: set, first, previous, inits: dict):
    r"""The element with each `cases(m_0 if t = lo; m[t-1] otherwise)` inside it (an LSTM's
    `f_t \odot cases(c_0, c[t-1]) + ...`) read as m[t-1], m_0 noted as m's initial element
    (the same at every such read), or None. At t = lo each of those reads is m_0 and at any
    other step m[t-1], as the element's; so where nothing else in it tests t = lo and every
    read of an earlier element is one of those, the element is the result at every step, the
    first included, with m[t-1] read as m_0 there. Its nodes are the element's own (the same
    positions for their errors)."""
    count = [0]

    def lift(e):
        if isinstance(e, ir.Select) and len(e.rows) == 1 and e.rows[0][0] == first \
                and isinstance(e.otherwise, ir.Take) and isinstance(e.otherwise.value, ir.Var) \
                and e.otherwise.value.name in names and e.otherwise.items == (previous,):
            name = e.otherwise.value.name
            if inits.setdefault(name, e.rows[0][1]) != e.rows[0][1]:
                raise _NotLifted
            if _may_fail(e.rows[0][1], previous.args[0].axis):
                # (computed before the loop, it would raise where the math never reads it: under
                # a row that does not apply at the first step, in a range empty there; seed 34000247)
                raise _NotLifted
            count[0] += 1
            return e.otherwise
        if not isinstance(e, ir.Expr):
            return e
        changes = {}
        for f in dataclasses.fields(e):
            if f.name == "span":
                continue
            v = getattr(e, f.name)
            new = _lift_field(v, lift)
            if new is not v:
                changes[f.name] = new
        return dataclasses.replace(e, **changes) if changes else e

    try:
        general = lift(element)
    except _NotLifted:
        return None
    if not count[0]:
        return None
    reads = 0
    for n in ir.walk(general):
        if n == first:
            return None  # another test of the first step
        if isinstance(n, ir.Take) and isinstance(n.value, ir.Var) and n.value.name in names:
            if n.items[:1] == (previous,):
                reads += 1
            elif n.items[:1] != (ir.Iota(previous.args[0].axis),):
                return None  # another earlier element (m[t-2], m[0])
    return general if reads == count[0] else None  # (a read m[t-1] of its own fails at t = lo)


class _NotLifted(Exception):
    pass


def _lift_field(v, lift):
    if isinstance(v, ir.Expr):
        return lift(v)
    if isinstance(v, tuple):
        items = tuple(_lift_field(x, lift) for x in v)
        return v if all(a is b for a, b in zip(items, v)) else items
    return v


def _may_fail(e, axis: ir.Axis) -> bool:
    """Whether e itself can raise a located runtime error (a read out of range, no row of cases
    applying, an extremum of nothing, a nested recurrence's reads, a recognised form's checks)
    other than a read v[t] of every step of a range 0..|v|-1, which cannot."""
    if isinstance(e, ir.Take):
        return not (e.items == (ir.Iota(axis),) and axis.lower == ir.Lit(0)
                    and axis.upper == ir.Prim("sub", (ir.Prim("bars", (e.value,)), ir.Lit(1))))
    if isinstance(e, ir.Select):
        return e.otherwise is None
    if isinstance(e, ir.Reduce):
        return e.op in ("max", "min", "argmax", "argmin", "mean")
    return isinstance(e, (ir.Fast, ir.Recur, ir.RecurGroup))


def _bound(e, out: set) -> None:
    """The names and axes bound anywhere under e (lets, lambdas' parameters, axes, recurrences)."""
    for n in ir.walk(e):
        if isinstance(n, ir.Let):
            out.add(n.name)
        elif isinstance(n, ir.Lambda):
            out.update(n.params)
        elif isinstance(n, ir.Build):
            out.update(a.name for a in n.axes)
        elif isinstance(n, (ir.Reduce, ir.Recur, ir.RecurGroup)):
            out.add(n.axis.name)
            out.update((n.name,) if isinstance(n, ir.Recur) else getattr(n, "names", ()))


def _closed(e, members: set, bound: set) -> bool:
    """e reads no member and nothing bound inside the element (nor the recurrence's index)."""
    for n in ir.walk(e):
        if isinstance(n, ir.Var) and (n.name in members or n.name in bound):
            return False
        if isinstance(n, ir.Iota) and n.axis.name in bound:
            return False
    return True
