"""Recurrence checks: a set-builder that reads itself may read only earlier elements, and
set-builders that read each other form a recurrence group (LANGUAGE.md section 5).

`h \\gets \\{ ... h[t-1] ... \\}_{t=0}^{T-1}` is a recurrence; `h[t]` or `h[t+1]`, or any
use of `h` other than an element `h[t-k]` with a constant k >= 1, is an error at that use.

Set-builders of one body that read a later one (name resolution lets them, see resolve.py)
are one group with it: each member may read any member's earlier elements, and another
member's current element `m[t]`, when the members can be ordered so that no member reads
its own current element through the others. Each member symbol gets `extra["group"]`, a
`Group` with the members in the order one step computes them; a cycle through current
elements is an error naming its members.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kokoyi.compiler import ast as A
from kokoyi.errors import KokoyiError, KokoyiTypeError, Source


@dataclass(eq=False)
class Group:
    """A recurrence group: its members in computation order, the member defined first (whose
    index range is the group's), and the one defined last (the group is computed at its
    statement, all members per step)."""

    members: list = field(default_factory=list)  # Symbols, in the order a step computes them
    first: object = None  # Symbol
    last: object = None  # Symbol


def check_recurrences(prog: A.Program, source: Source, flagged=None) -> A.Program:
    """flagged: the symbols name resolution marked as reading themselves (extra["recurrence"]),
    when known; with none, no definition needs the walk that finds and checks them."""
    recurrences = {}
    for item in prog.items:
        if isinstance(item, (A.Module, A.Function)):
            for sym in _groups(item.body, source):
                recurrences[id(sym)] = sym
    for node in A.walk(prog) if flagged is None or flagged else ():
        if isinstance(node, A.Definition) and isinstance(node.target, A.Ref):
            sym = node.target.symbol
            if sym.extra.get("recurrence") and "group" not in sym.extra:
                recurrences[id(sym)] = sym
                _check(node, (sym,), source)
    return _split_partial_reads(prog, recurrences) if recurrences else prog


def _split_partial_reads(node, recurrences):
    """`h[t-1, i]` (and `h_{t-1, i}`) inside the definition of h is `h[t-1][i]`: the element read
    first, then indexed, so later passes see one-index reads of a recurrence."""
    node = A.map_children(node, lambda c: _split_partial_reads(c, recurrences))
    if isinstance(node, A.Index) and len(node.items) > 1:
        target = A.strip(node.target)
        if isinstance(target, A.Ref) and id(target.symbol) in recurrences \
                and (target.symbol.extra.get("recurrence") or "group" in target.symbol.extra):
            # (the element read spans `h[t-1`: its errors point at the read, as the whole one's do)
            first = A.Index(node.span.to(node.items[0].span), node.target, node.items[:1])
            return A.Index(node.span, first, node.items[1:])
    return node


# ---- groups ---------------------------------------------------------------------------------------
def _groups(body, source: Source):
    """Find the recurrence groups of a body, check them, and mark their members; yields the members."""
    builders = {}  # id(symbol) -> (statement position, definition)
    for pos, stmt in enumerate(body):
        if isinstance(stmt, A.Definition) and stmt.params is None and isinstance(stmt.target, A.Ref) \
                and isinstance(A.strip(stmt.value), A.SetBuilder):
            builders[id(stmt.target.symbol)] = (pos, stmt)
    parent = {k: k for k in builders}

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for key, (pos, stmt) in builders.items():
        for ref in _refs(stmt):
            other = builders.get(id(ref.symbol))
            if other is not None and other[0] > pos:  # a read of a later set-builder joins its group
                parent[find(key)] = find(id(ref.symbol))
    components: dict[int, list] = {}
    for key in builders:
        components.setdefault(find(key), []).append(key)
    for keys in components.values():
        if len(keys) < 2:
            continue
        stmts = sorted((builders[k] for k in keys), key=lambda p: p[0])
        group = _check_group([s for _, s in stmts], source)
        first, last = stmts[0][0], stmts[-1][0]
        members = {id(m) for m in group.members}
        for stmt in body[first + 1:last]:
            if isinstance(stmt, A.Definition) and id(stmt.target.symbol) in members:
                continue
            for ref in _refs(stmt):
                if id(ref.symbol) in members:
                    raise KokoyiError.at(source, ref.span,
                                         f"`{ref.symbol.key}` belongs to the recurrence group "
                                         f"{_names(group.members)}, which is complete only after "
                                         f"`{group.last.key}` is defined: move this statement after it")
        yield from group.members


def _refs(stmt):
    return [n for n in A.walk(stmt) if isinstance(n, A.Ref) and n is not stmt.target]


def _names(members) -> str:
    return ", ".join(f"`{m.key}`" for m in members)


def _check_group(stmts, source: Source) -> Group:
    members = [s.target.symbol for s in stmts]
    ids = {id(m): m for m in members}
    first = A.strip(stmts[0].value)
    for stmt in stmts:
        builder = A.strip(stmt.value)
        if len(builder.bounds) != 1:
            raise KokoyiTypeError.at(source, builder.span,
                                     f"`{stmt.target.symbol.key}` is in a recurrence group with "
                                     f"{_names(m for m in members if m is not stmt.target.symbol)}, but only "
                                     "one-index set-builders may be recurrences")
        b, b0 = builder.bounds[0], first.bounds[0]
        if not (same(b.lower, b0.lower) and same(b.upper, b0.upper)):
            raise KokoyiTypeError.at(source, b.span,
                                     f"`{stmt.target.symbol.key}` and `{stmts[0].target.symbol.key}` read each "
                                     "other, so they are one recurrence group and must range over the same "
                                     "indices")
    needs: dict[int, list] = {id(m): [] for m in members}  # member -> (member whose current element it reads, ref)
    for stmt in stmts:
        sym = stmt.target.symbol
        _check(stmt, members, source)
        t = A.strip(stmt.value).bounds[0].var.symbol
        for n in _element_reads(stmt):
            target = A.strip(n.target)
            if id(target.symbol) in ids and target.symbol is not sym and _offset(n.items[0], t) == 0:
                needs[id(sym)].append((target.symbol, target))
    order = _order(members, needs, source)
    for m in members:
        m.extra.pop("recurrence", None)
    group = Group(order, stmts[0].target.symbol, stmts[-1].target.symbol)
    for m in members:
        m.extra["group"] = group
    return group


def _order(members, needs, source: Source) -> list:
    """The members ordered so that each comes after those whose current element it reads."""
    done, visiting, order = set(), [], []

    def visit(m):
        if id(m) in done:
            return
        if m in visiting:
            cycle = visiting[visiting.index(m):]
            _, ref = next(r for r in needs[id(cycle[-1])] if r[0] is m)
            raise KokoyiError.at(source, ref.span,
                                 f"the recurrence group members {_names(cycle)} read each other's current "
                                 "element in a cycle, so no order computes them: read an earlier element "
                                 f"(`{m.key}[t-1]`) on one side")
        visiting.append(m)
        for other, _ in needs[id(m)]:
            visit(other)
        visiting.pop()
        done.add(id(m))
        order.append(m)

    for m in members:
        visit(m)
    return order


def _element_reads(stmt):
    """The reads `m[i, ...]` in a definition's `\\where` bindings and element."""
    builder = A.strip(stmt.value)
    for part in (*stmt.where, builder.element):
        for n in A.walk(part):
            if isinstance(n, A.Index) and isinstance(A.strip(n.target), A.Ref):
                yield n


def same(a, b) -> bool:
    """Whether two resolved expressions are the same, ignoring spans and brackets."""
    a, b = A.strip(a), A.strip(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, A.Ref):
        return a.symbol is b.symbol
    for name in a.__dataclass_fields__:
        if name == "span":
            continue
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, tuple) and isinstance(y, tuple):
            if len(x) != len(y) or not all(same(p, q) if isinstance(p, A.Node) else p == q for p, q in zip(x, y)):
                return False
        elif isinstance(x, A.Node) and isinstance(y, A.Node):
            if not same(x, y):
                return False
        elif x != y:
            return False
    return True


# ---- one member -------------------------------------------------------------------------------------
def _check(definition: A.Definition, members, source: Source) -> None:
    """The reads of members (the definition's own symbol, or its group's) in a set-builder
    definition: element reads `m[t-k]`, k >= 1 for itself and k >= 0 for the others."""
    sym = definition.target.symbol
    builder = A.strip(definition.value)
    if len(builder.bounds) != 1:
        raise KokoyiTypeError.at(source, builder.span,
                                 f"`{sym.key}` reads itself, but only one-index set-builders may be recurrences")
    t = builder.bounds[0].var.symbol
    ids = {id(m) for m in members}
    for b in builder.bounds:
        for part in (b.lower, b.upper):
            for n in A.walk(part):
                if isinstance(n, A.Ref) and id(n.symbol) in ids:
                    raise KokoyiError.at(source, n.span,
                                         f"the bounds of `{sym.key}` cannot depend on `{n.symbol.key}`")
    parts = (*definition.where, builder.element)
    allowed = set()
    for part in parts:
        for n in A.walk(part):
            if not (isinstance(n, A.Index) and isinstance(n.target, A.Ref) and id(n.target.symbol) in ids):
                continue
            m = n.target.symbol
            allowed.add(id(n.target))
            if isinstance(n.items[0], A.Slice):
                raise KokoyiError.at(source, n.target.span,
                                     f"a recurrence reads earlier elements one at a time: write `{m.key}[{t.key}-1]`")
            shift = _offset(n.items[0], t)
            if shift is None:
                raise KokoyiError.at(source, n.target.span,
                                     f"cannot tell which element of `{m.key}` this reads: inside "
                                     f"{'its own definition' if m is sym else 'its recurrence group'} write "
                                     f"`{m.key}[{t.key}-k]` with a constant k >= {1 if m is sym else 0}")
            if shift > 0 or (shift == 0 and m is sym):
                which = t.key if shift == 0 else f"{t.key}+{shift}"
                raise KokoyiError.at(source, n.target.span,
                                     f"`{m.key}[{which}]` reads an element that is not computed yet: a "
                                     f"recurrence may read only earlier elements, `{m.key}[{t.key}-k]` with k >= 1"
                                     + ("" if m is sym else f", or the current element `{m.key}[{t.key}]` of "
                                                            "another member of its group"))
    for part in parts:
        for n in A.walk(part):
            if isinstance(n, A.Ref) and id(n.symbol) in ids and id(n) not in allowed:
                where = "inside its own definition" if n.symbol is sym else f"inside the definition of `{sym.key}`"
                raise KokoyiError.at(source, n.span,
                                     f"{where} `{n.symbol.key}` may only be read as `{n.symbol.key}[{t.key}-k]`")


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
