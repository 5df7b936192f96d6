"""Resolved AST -> core IR (kokoyi/compiler/ir.py), once per unit.

Every item becomes an `ir.Function` (top-level constants: a function of nothing). The sugar
goes: parentheses and braces, `\\frac`, juxtaposition, `\\sqrt[n]`, `\\where`, `\\mathbb{1}`,
a `\\cdot` (kept apart from `@`: it is the ordinary product when a side is a scalar, which
only the ranks of a call decide). Names become unique strings; index variables become
`ir.Axis` objects read with `ir.Iota`; recurrences become `ir.Recur` over a "sequence" axis;
top-level definitions are `ir.Global`s (late bound, as `kokoyi.symbol` is).

Set-builders that read each other (a recurrence group) become one `ir.RecurGroup` where the
last of them is defined. A `\\where` binding of a set-builder definition that uses its index
is evaluated per element: it is a let inside the element, sunk into the `cases` rows that
read it (so `z_t` of an LSTM, which reads `h[t-1]`, is never computed at t = 0).

Primitives of the language's second round (LANGUAGE.md sections 5, 6): `log_base(x, b)` (the
logarithm to base b, an op of its own so that a rule for the element-wise `log` never meets
two operands), `matrix[r][c](entries...)` (a matrix literal, entries row by row; a vector
when r or c is 1), `inverse(A)` (A^{-1} of a per-sample matrix), `inverse_if_matrix(A)`
(A^{-1} where A's rank is known only at the call: the inverse when it is >= 2, else 1/A),
`det`, `trace`, `diag`, `eye(n)`; the simplify pass adds `logdet(A)` and `solve(A, b)`.
"""
from __future__ import annotations

import dataclasses
import math

from kokoyi.compiler import ast as A
from kokoyi.compiler import builtins as B
from kokoyi.compiler import ir
from kokoyi.compiler import signs
from kokoyi.compiler import symbols as S
from kokoyi.compiler.emit.namespace import Namespace
from kokoyi.compiler.passes.ranks import RankInference, is_cdot, is_minus_one
from kokoyi.errors import Source

# AST operators -> IR primitives (rule tables as data).
BINARY = {"+": "add", "-": "sub", "*": "mul", "/": "div", "and": "and", "or": "or"}
COMPARE = {"<": "lt", ">": "gt", "<=": "le", ">=": "ge", "==": "eq", "!=": "ne"}
CONSTANTS = {"\\pi": math.pi, "e": math.e, "\\infty": math.inf}


_NO_SOURCE = Source("", "<lower>")  # (a Source is immutable: one for every Lowering, not one each)


class Lowering:
    def __init__(self) -> None:
        self.ns = Namespace()
        self.names: dict[int, str] = {}  # id(symbol) -> IR name
        self.axes: dict[int, ir.Axis] = {}  # id(index symbol) -> its axis
        # Ranks as the ranks pass inferred them (it has already reported every rank error).
        self.ranks = RankInference(_NO_SOURCE)

    # ---- names ----
    def bind(self, sym: S.Symbol) -> str:
        name = self.ns.create(sym.hint)
        self.names[id(sym)] = name
        return name

    # ---- items ----
    def item(self, item) -> ir.Function:
        self.ns, self.names = Namespace(), {}
        match item:
            case A.Module():
                inputs = tuple(self.bind(d.name.symbol) for d in item.inputs)
                params = tuple(self.bind(d.name.symbol) for d in item.params)
                body = self.dims(item.inputs + item.params, lambda: self.body(item.body))
                return ir.Function(item.name.symbol.key, "module", inputs, params, body)
            case A.Function():
                inputs = tuple(self.bind(d.name.symbol) for d in item.args)
                body = self.dims(item.args, lambda: self.body(item.body))
                return ir.Function(item.name.symbol.key, "function", inputs, (), body)
            case A.Definition() if item.params is not None:
                inputs = tuple(self.bind(p.symbol) for p in item.params)
                body = self.wheres(item.where, lambda: self.expr(item.value))
                return ir.Function(item.target.symbol.key, "function", inputs, (), body)
            case A.Definition():
                body = self.wheres(item.where, lambda: self.expr(item.value))
                return ir.Function(item.target.symbol.key, "constant", (), (), body)
        raise TypeError(item)

    def dims(self, decls, body) -> ir.Expr:
        """body() after the dimension names of annotations, read off the first value that
        declares them."""
        lets, seen = [], set()
        for d in decls:
            if d.annotation is None:
                continue
            for axis, dim in enumerate(d.annotation.dims):
                if isinstance(dim, A.Ref) and id(dim.symbol) not in seen:
                    seen.add(id(dim.symbol))
                    value = ir.Prim("dim", (ir.Var(self.names[id(d.name.symbol)]),), (axis,), span=dim.span)
                    lets.append((self.bind(dim.symbol), value))
        out = body()
        for name, value in reversed(lets):
            out = ir.Let(name, value, out)
        return out

    def body(self, stmts) -> ir.Expr:
        """Statements as nested lets ending in the returned value(s)."""
        *defs, ret = stmts
        by_symbol = {id(d.target.symbol): d for d in defs}
        binders = [self.definition_binder(d, by_symbol) for d in defs]  # in order: later ones see earlier ones
        out = self.wheres(ret.where, lambda: self.returned(ret))
        for bind in reversed(binders):
            out = bind(out)
        return out

    def definition_binder(self, d: A.Definition, by_symbol: dict):
        """A function wrapping the rest of the body in d's binding (a let, or a recurrence group
        at its last member; the identity for the group's other members)."""
        group = d.target.symbol.extra.get("group") if d.params is None else None
        if group is None:
            name, value = self.definition_value(d)
            return lambda body: ir.Let(name, value, body, span=d.span)
        if d.target.symbol is not group.last:
            if not any(id(m) in self.names for m in group.members):
                for m in group.members:  # members read each other before all are lowered
                    self.bind(m)
            return lambda body: body
        return self.group(group, by_symbol)

    def group(self, group, by_symbol: dict):
        """The recurrence group as one RecurGroup over the first member's index range."""
        axis = self.axis(A.strip(by_symbol[id(group.first)].value).bounds[0], "sequence")
        outer, elements = [], []
        names = tuple(self.names[id(m)] for m in group.members)
        for m in group.members:
            d = by_symbol[id(m)]
            builder = A.strip(d.value)
            self.axes[id(builder.bounds[0].var.symbol)] = axis
            lets, element = self.per_element(d.where, lambda b=builder: self.expr(b.element), (axis,), set(names))
            outer += lets
            elements.append(element)
        span = by_symbol[id(group.last)].span

        def bind(body):
            out = ir.RecurGroup(names, axis, tuple(elements), body, span=span)
            for name, value in reversed(outer):
                out = ir.Let(name, value, out)
            return out
        return bind

    def returned(self, ret: A.Return) -> ir.Expr:
        values = tuple(self.expr(v) for v in ret.values)
        return values[0] if len(values) == 1 else ir.Tuple(values, span=ret.span)

    def wheres(self, bindings, body) -> ir.Expr:
        """body() under the `\\where` bindings: the bindings are lowered first, in order (later
        ones see earlier ones, the body sees all), then wrapped around it as lets."""
        lowered = [self.definition_value(b) for b in bindings]
        out = body()
        for name, value in reversed(lowered):
            out = ir.Let(name, value, out)
        return out

    def definition_value(self, d: A.Definition) -> tuple[str, ir.Expr]:
        sym = d.target.symbol
        if d.params is not None:
            params = tuple(self.bind(p.symbol) for p in d.params)
            value = ir.Lambda(params, self.wheres(d.where, lambda: self.expr(d.value)), span=d.span)
            return self.bind(sym), value
        builder = A.strip(d.value)
        if sym.extra.get("recurrence"):
            name = self.bind(sym)
            axis = self.axis(builder.bounds[0], "sequence")
            lets, element = self.per_element(d.where, lambda: self.expr(builder.element), (axis,), {name})
            return name, _lets(lets, ir.Recur(name, axis, element, span=d.span))
        if isinstance(builder, A.SetBuilder) and d.where:
            axes = tuple(self.axis(b) for b in builder.bounds)
            lets, element = self.per_element(d.where, lambda: self.expr(builder.element), axes, set())
            return self.bind(sym), _lets(lets, ir.Build(axes, element, span=builder.span))
        value = self.wheres(d.where, lambda: self.expr(d.value))
        return self.bind(sym), value

    def per_element(self, bindings, element, axes, members: set[str]):
        """(lets outside, element) for a set-builder's `\\where` bindings: those that use one of
        axes, a member of the recurrence, or such a binding are sunk into the element."""
        lowered = [self.definition_value(b) for b in bindings]
        body = element()
        # Outside: only what the range's bounds read (and what those read). Every other binding,
        # used by the element or not, is computed as part of the rows that read it: one that
        # no applying row reads is never computed (as one sample computes it: on demand).
        needed = set()
        for a in axes:
            needed |= {n.name for n in ir.walk(a.lower) if isinstance(n, ir.Var)}
            needed |= {n.name for n in ir.walk(a.upper) if isinstance(n, ir.Var)}
        outer, inner = [], []
        for name, value in reversed(lowered):
            if name in needed and not _reads(value, set(members), axes):
                needed |= {n.name for n in ir.walk(value) if isinstance(n, ir.Var)}
                outer.append((name, value))
            else:
                inner.append((name, value))
        outer.reverse()
        inner.reverse()
        for name, value in reversed(inner):
            body = sink(name, value, body)
        return outer, body

    def axis(self, bound: A.Bound, kind: str = "vector") -> ir.Axis:
        lower, upper = self.expr(bound.lower), self.expr(bound.upper)
        sym = bound.var.symbol
        axis = ir.Axis(self.bind(sym), lower, upper, kind)
        self.axes[id(sym)] = axis
        return axis

    # ---- expressions ----
    def expr(self, e) -> ir.Expr:
        out = self._expr(e)
        return out if out.span is not ir.NO_SPAN else _with_span(out, e.span)

    def _expr(self, e) -> ir.Expr:
        match e:
            case A.Paren() | A.Group():
                return self.expr(e.expr)
            case A.Num():
                return ir.Lit(e.value)
            case A.Constant():
                return ir.Lit(CONSTANTS[e.key])
            case A.Ref():
                return self.ref(e)
            case A.Unary(op="+"):
                return self.expr(e.operand)
            case A.Unary():
                return self.prim("neg" if e.op == "-" else "not", e.operand)
            case A.Binary(op="@"):
                return self.prim("cdot" if is_cdot(e) else "matmul", e.left, e.right)
            case A.Binary():
                return self.prim(BINARY[e.op], e.left, e.right)
            case A.Compare():
                return self.prim(COMPARE[e.op], e.left, e.right)
            case A.Juxtapose():
                return self.prim("mul", e.left, e.right)
            case A.Power() if is_minus_one(e.exponent) and self.ranks.rank(e.base) is None:
                return self.prim("inverse_if_matrix", e.base)  # the call's ranks decide
            case A.Power():  # "natural": an exponent other than a number known to be >= 0 (batch/rules._pow)
                attrs = ("natural",) if _literal(e.exponent) is None and signs.nonnegative(e.exponent) else ()
                return ir.Prim("pow", (self.expr(e.base), self.expr(e.exponent)), attrs)
            case A.Inverse():
                return self.prim("inverse", e.operand)
            case A.LogBase():
                return self.prim("log_base", e.operand, e.base)
            case A.Matrix():
                entries = tuple(self.expr(x) for row in e.rows for x in row.entries)
                return ir.Prim("matrix", entries, (len(e.rows), len(e.rows[0].entries)))
            case A.Transpose():
                return self.prim("transpose", e.operand)
            case A.Frac():
                return self.prim("div", e.numerator, e.denominator)
            case A.Sqrt(degree=None):
                return self.prim("sqrt", e.radicand)
            case A.Sqrt():
                return self.prim("root", e.radicand, e.degree)
            case A.Bars():
                return self.prim("bars", e.operand)  # a length or |x|: the operand's rank decides
            case A.Norm():
                return ir.Prim("norm", (self.expr(e.operand),), (e.order or "2",))
            case A.Rounding():
                return self.prim(e.kind, e.operand)
            case A.Indicator():
                return self.prim("indicator", e.condition)
            case A.Builtin():
                return ir.Prim("function", (), (B.FUNCTIONS[e.name].primitive,))
            case A.BuiltinCall():
                return ir.Prim(B.FUNCTIONS[e.name].primitive, tuple(self.expr(a) for a in e.args))
            case A.Reduce() if len(e.args) > 1:
                return ir.Prim(f"{e.op}imum", tuple(self.expr(a) for a in e.args))
            case A.Reduce():
                return ir.Prim(B.REDUCTIONS[e.op][0], (self.expr(e.args[0]),))
            case A.Call():
                return ir.Apply(self.expr(e.func), tuple(self.expr(a) for a in e.args))
            case A.Index():
                return ir.Take(self.expr(e.target), tuple(self.item_(i) for i in e.items))
            case A.BigOp():
                axis = self.axis(e.bound)
                return ir.Reduce(e.op, axis, self.expr(e.body))
            case A.SetBuilder():
                axes = tuple(self.axis(b) for b in e.bounds)
                number = _literal(e.element)
                if type(number) is int:  # LANGUAGE.md 6a: a set-builder of literals takes the module's dtype
                    element = ir.Lit(float(number), span=e.element.span)
                else:
                    element = self.expr(e.element)
                return ir.Build(axes, element)
            case A.Cases():
                rows = tuple((self.expr(r.condition), self.expr(r.value)) for r in e.rows if r.condition is not None)
                last = e.rows[-1]
                otherwise = self.expr(last.value) if last.condition is None else None
                if not rows:  # only an `otherwise` row
                    return otherwise
                strict = otherwise is None and all(_on_indices(r.condition) for r in e.rows)
                return ir.Select(rows, otherwise, strict)
        raise TypeError(f"no lowering for {type(e).__name__}")

    def item_(self, i):
        if isinstance(i, A.Slice):
            return ir.Slice(None if i.start is None else self.expr(i.start),
                            None if i.stop is None else self.expr(i.stop))
        return self.expr(i)

    def prim(self, op: str, *args) -> ir.Prim:
        return ir.Prim(op, tuple(self.expr(a) for a in args))

    def ref(self, e: A.Ref) -> ir.Expr:
        sym = e.symbol
        if sym.kind == S.INDEX:
            return ir.Iota(self.axes[id(sym)])
        name = self.names.get(id(sym))
        if name is not None:
            return ir.Var(name)
        return ir.Global(sym.key)  # a top-level definition: late bound


def _lets(lets, body: ir.Expr) -> ir.Expr:
    for name, value in reversed(lets):
        body = ir.Let(name, value, body)
    return body


def _reads(e, names: set[str], axes) -> bool:
    """Whether e reads one of names or an index of axes."""
    stack = [e]
    while stack:
        n = stack.pop()
        if isinstance(n, ir.Var) and n.name in names or isinstance(n, ir.Iota) and n.axis in axes:
            return True
        stack.extend(ir.children(n))
    return False


def sink(name: str, value: ir.Expr, body: ir.Expr) -> ir.Expr:
    """`let name = value in body`, with the let moved into the rows of a select that read it
    (and past lets that do not), so a row that does not apply never computes it."""
    if not _reads(body, {name}, ()):
        return body
    if isinstance(body, ir.Select) and not any(_reads(c, {name}, ()) for c, _ in body.rows):
        rows = tuple((c, sink(name, value, v)) for c, v in body.rows)
        otherwise = None if body.otherwise is None else sink(name, value, body.otherwise)
        return dataclasses.replace(body, rows=rows, otherwise=otherwise)
    if isinstance(body, ir.Let) and not _reads(body.value, {name}, ()):
        return dataclasses.replace(body, body=sink(name, value, body.body))
    return ir.Let(name, value, body)


def _literal(e):
    """The value of a number as written (`2`, `-1`), else None."""
    e = A.strip(e)
    sign = 1
    if isinstance(e, A.Unary) and e.op == "-":
        e, sign = A.strip(e.operand), -1
    return sign * e.value if isinstance(e, A.Num) and not isinstance(e.value, bool) else None


def _on_indices(e) -> bool:
    """Whether e is built from integer literals, index variables and dimensions alone
    (arithmetic and comparisons of those): such conditions decide every element exactly."""
    e = A.strip(e)
    match e:
        case A.Num(value=int()):
            return True
        case A.Ref():
            return e.symbol.kind in (S.INDEX, S.DIM)
        case A.Unary():
            return _on_indices(e.operand)
        case A.Binary(op="+" | "-" | "*" | "and" | "or") | A.Compare():
            return _on_indices(e.left) and _on_indices(e.right)
    return False


def _with_span(e: ir.Expr, span) -> ir.Expr:
    return ir.with_fields(e, {"span": span})


def lower(prog: A.Program, only=None) -> list[ir.Function | None]:
    """The unit's items as IR functions, in order (None for the items `only` rejects)."""
    wanted = [only is None or only(item) for item in prog.items]
    if not any(wanted):  # (a unit whose IR is all left to first calls makes no Lowering)
        return [None] * len(wanted)
    lowering = Lowering()
    return [lowering.item(item) if want else None for item, want in zip(prog.items, wanted)]
