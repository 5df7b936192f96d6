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
initial elements have the elements' layout.)
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
            return None
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
