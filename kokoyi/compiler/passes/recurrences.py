"""Recurrence checks: a set-builder that reads itself may read only earlier elements.

`h \\gets \\{ ... h[t-1] ... \\}_{t=0}^{T-1}` is a recurrence; `h[t]` or `h[t+1]`, or any
use of `h` other than an element `h[t-k]` with a constant k >= 1, is an error at that use.
"""
from __future__ import annotations

from kokoyi.compiler import ast as A
from kokoyi.errors import KokoyiError, KokoyiTypeError, Source


def check_recurrences(prog: A.Program, source: Source) -> A.Program:
    recurrences = {}
    for node in A.walk(prog):
        if isinstance(node, A.Definition) and isinstance(node.target, A.Ref):
            sym = node.target.symbol
            if sym.extra.get("recurrence"):
                recurrences[id(sym)] = sym
                _check(A.strip(node.value), sym, source)
    return _split_partial_reads(prog, recurrences) if recurrences else prog


def _split_partial_reads(node, recurrences):
    """`h[t-1, i]` (and `h_{t-1, i}`) inside the definition of h is `h[t-1][i]`: the element read
    first, then indexed, so later passes see one-index reads of a recurrence."""
    node = A.map_children(node, lambda c: _split_partial_reads(c, recurrences))
    if isinstance(node, A.Index) and len(node.items) > 1:
        target = A.strip(node.target)
        if isinstance(target, A.Ref) and id(target.symbol) in recurrences \
                and target.symbol.extra.get("recurrence"):
            first = A.Index(node.items[0].span, node.target, node.items[:1])
            return A.Index(node.span, first, node.items[1:])
    return node


def _check(builder: A.SetBuilder, sym, source: Source) -> None:
    if len(builder.bounds) != 1:
        raise KokoyiTypeError.at(source, builder.span,
                                 f"`{sym.key}` reads itself, but only one-index set-builders may be recurrences")
    t = builder.bounds[0].var.symbol
    for b in builder.bounds:
        for part in (b.lower, b.upper):
            for n in A.walk(part):
                if isinstance(n, A.Ref) and n.symbol is sym:
                    raise KokoyiError.at(source, n.span, f"the bounds of `{sym.key}` cannot depend on `{sym.key}`")
    allowed = set()
    for n in A.walk(builder.element):
        if isinstance(n, A.Index) and isinstance(n.target, A.Ref) and n.target.symbol is sym:
            allowed.add(id(n.target))
            if isinstance(n.items[0], A.Slice):
                raise KokoyiError.at(source, n.target.span,
                                     f"a recurrence reads earlier elements one at a time: write `{sym.key}[{t.key}-1]`")
            shift = _offset(n.items[0], t)
            if shift is None:
                raise KokoyiError.at(source, n.target.span,
                                     f"cannot tell which element of `{sym.key}` this reads: inside its own "
                                     f"definition write `{sym.key}[{t.key}-k]` with a constant k >= 1")
            if shift >= 0:
                which = t.key if shift == 0 else f"{t.key}+{shift}"
                raise KokoyiError.at(source, n.target.span,
                                     f"`{sym.key}[{which}]` reads an element that is not computed yet: a "
                                     f"recurrence may read only earlier elements, `{sym.key}[{t.key}-k]` with k >= 1")
    for n in A.walk(builder.element):
        if isinstance(n, A.Ref) and n.symbol is sym and id(n) not in allowed:
            raise KokoyiError.at(source, n.span,
                                 f"inside its own definition `{sym.key}` may only be read as `{sym.key}[{t.key}-k]`")


def _offset(e, t) -> int | None:
    """c when e is t + c for an integer constant c, else None."""
    linear = _linear(e, t)
    if linear is None or linear[0] != 1:
        return None
    return linear[1]


def _linear(e, t):
    e = A.strip(e)
    match e:
        case A.Ref() if e.symbol is t:
            return 1, 0
        case A.Num(value=int(v)):
            return 0, v
        case A.Unary(op="-"):
            inner = _linear(e.operand, t)
            return None if inner is None else (-inner[0], -inner[1])
        case A.Binary(op="+" | "-"):
            a, b = _linear(e.left, t), _linear(e.right, t)
            if a is None or b is None:
                return None
            sign = 1 if e.op == "+" else -1
            return a[0] + sign * b[0], a[1] + sign * b[1]
    return None
