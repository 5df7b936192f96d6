"""The core IR: a small tensor IR with explicit index axes (issue 12, first step).

Every construct of the resolved AST lowers to one of a dozen node kinds (see
`kokoyi/compiler/passes/lower.py`), with the sugar gone: `\\frac`, juxtaposition, `\\cdot`,
`\\sqrt[n]`, indicators, `\\where` and parentheses are ordinary primitives and lets. Index
variables of set-builders and big operators are `Axis` objects, read with `Iota`: an axis
is a loop axis that a later pass may turn into a tensor axis or a batch axis alike
(`../shared/design/core-ir.md`). Recurrences are `Recur` nodes over a sequence axis,
recurrence groups (set-builders that read each other) one `RecurGroup`.

Nodes are frozen dataclasses compared by structure (the source span is not compared), so
passes can fold and match them. `dump()` prints a readable, stable text form; `verify()`
checks well-formedness (names bound before use, axes in scope, arities).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kokoyi.errors import Span

node = dataclass(frozen=True)
NO_SPAN = Span(0, 0, 0, 0)


@node
class Expr:
    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@node
class Lit(Expr):
    """A number or truth value: an int stays an int, a float takes the module's dtype."""

    value: int | float | bool


@node
class Var(Expr):
    """A value bound in the function: an input, a parameter, a let, a function argument."""

    name: str


@node
class Global(Expr):
    """A top-level definition (this unit's or an earlier one's), looked up late."""

    key: str


@node
class Axis:
    """An index variable ranging over lower..upper inclusive (bounds may use outer axes).

    kind: "vector" (a set-builder or big operator: its elements are independent) or
    "sequence" (a recurrence: element t may read elements before it)."""

    name: str
    lower: Expr
    upper: Expr
    kind: str = "vector"


@node
class Iota(Expr):
    """The value of an index variable."""

    axis: Axis


@node
class Prim(Expr):
    """A primitive operation: an element-wise operator or built-in, a matrix product, a
    whole-value reduction, a shape query. `op` names it; `attrs` holds static extras
    (a norm's order, a built-in's name)."""

    op: str
    args: tuple[Expr, ...]
    attrs: tuple = ()


@node
class Reduce(Expr):
    """A big operator: `op` (sum prod max min argmax argmin mean) of body over axis."""

    op: str
    axis: Axis
    body: Expr


@node
class Build(Expr):
    """A set-builder: body over the axes, outermost first, stacked as new leading axes."""

    axes: tuple[Axis, ...]
    body: Expr


@node
class Slice:
    lower: Expr | None
    upper: Expr | None


@node
class Take(Expr):
    """Indexing: value[items...] with 0-based, Python-style (negative from the end) indices."""

    value: Expr
    items: tuple[Expr | Slice, ...]


@node
class Select(Expr):
    """Cases: the value of the first row whose condition holds. A row that does not apply is
    never read (its out-of-range reads are no error); otherwise is None when the source has
    no `otherwise` row."""

    rows: tuple[tuple[Expr, Expr], ...]  # (condition, value)
    otherwise: Expr | None
    # Without otherwise: whether "no row applies" is an error (every condition is on indices
    # and dimensions: docs/reference/choices.md#cases-without-otherwise) rather than NaN.
    strict: bool = False


@node
class Apply(Expr):
    """A call of a callable value: a parameter (layer, Kokoyi module, list item), a function
    argument, a global function (late bound), or a lambda."""

    fn: Expr
    args: tuple[Expr, ...]


@node
class Lambda(Expr):
    """A function value: a local or one-line function (closures over the enclosing names)."""

    params: tuple[str, ...]
    body: Expr


@node
class Let(Expr):
    """name = value in body."""

    name: str
    value: Expr
    body: Expr


@node
class Recur(Expr):
    """A recurrence: the sequence `name` whose element at axis (a "sequence" axis) is
    element; element reads earlier elements as Take(Var(name), (t - k, ...))."""

    name: str
    axis: Axis
    element: Expr


@node
class RecurGroup(Expr):
    """A recurrence group (LANGUAGE.md section 5): sequences `names` over one "sequence" axis,
    computed step by step, element i of every member at step t in the order of `names` before
    any at t+1. elements[i] is names[i]'s element; it reads earlier elements of any member
    (`Take(Var(m), (t - k, ...))`) and the current element `Take(Var(m), (t,))` of members
    before it. The names are then bound, as whole sequences, in body."""

    names: tuple[str, ...]
    axis: Axis
    elements: tuple[Expr, ...]
    body: Expr


@node
class Fast(Expr):
    """A recognised form (kokoyi/compiler/rewrite/): `op(args)` computes the same as `original`
    in one step when the call signature allows it (the batch rule decides: ranks, dtypes,
    which values are batched); otherwise `original` is computed as written."""

    op: str
    args: tuple[Expr, ...]
    original: Expr


@node
class At(Expr):
    """body, written in another unit (a top-level function inlined at a call): its spans are
    positions in `source` (a kokoyi.errors.Source; None: the unit of the function being
    compiled, as for the arguments of such a call)."""

    source: object = field(compare=False)
    body: Expr = None


@node
class Tuple(Expr):
    items: tuple[Expr, ...]


@node
class Function:
    """A module or function: its inputs, its parameters, and the body computing its outputs."""

    name: str
    kind: str  # "module" or "function"
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    body: Expr
    source: object = field(default=None, compare=False, repr=False)  # its unit's kokoyi.errors.Source


def _fast_init(cls) -> None:
    """cls.__init__ as @dataclass(frozen=True) makes it (the same parameters, defaults and
    fields), storing each field in the instance's dict rather than through object.__setattr__
    per field: the call-time passes make thousands of nodes per first call."""
    scope: dict = {}

    def param(f):
        if f.default is dataclasses.MISSING:
            return f.name
        scope[f"_default_{f.name}"] = f.default
        return f"{f.name}=_default_{f.name}"

    fields = dataclasses.fields(cls)
    kw_only = [param(f) for f in fields if f.kw_only]
    params = ["self"] + [param(f) for f in fields if not f.kw_only] + (["*"] + kw_only if kw_only else [])
    lines = [f"def __init__({', '.join(params)}):", "    fields = self.__dict__"]
    lines += [f"    fields[{f.name!r}] = {f.name}" for f in fields]
    exec("\n".join(lines), scope)  # noqa: S102 - code made from the class's field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init


for _cls in (Expr, Lit, Var, Global, Axis, Iota, Prim, Reduce, Build, Slice, Take, Select, Apply, Lambda, Let,
             Recur, RecurGroup, Fast, At, Tuple, Function):
    _fast_init(_cls)
del _cls


# ---- traversal -------------------------------------------------------------------------------
def children(e) -> tuple:
    """The IR nodes directly under e (expressions, axes and slices), in field order."""
    names = _FIELDS.get(type(e))
    if names is None:
        names = _field_names(type(e))
    out = []
    fields = e.__dict__  # (hoist.info asks for every node's children inside a recurrence)
    for name in names:
        v = fields[name]
        if isinstance(v, _NODES):
            out.append(v)
        elif isinstance(v, tuple) and v:
            _collect(v, out)
    return tuple(out)


def walk(e):
    """e and every IR node under it, pre-order (one stack, not a generator per level)."""
    stack = [e]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))


def _collect(v, out) -> None:
    if isinstance(v, (Expr, Axis, Slice)):
        out.append(v)
    elif isinstance(v, tuple):
        for x in v:
            _collect(x, out)


_FIELDS: dict = {}  # node class -> the names of its fields that may hold IR nodes
# Field annotations that never hold a node (names, operators, flags, literal values): the
# traversals skip them.
_NO_NODES = {"str", "bool", "int | float | bool", "tuple[str, ...]"}


def _field_names(cls) -> tuple:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls)
                                     if f.name != "span" and f.type not in _NO_NODES)
    return names


def map_children(e, fn):
    """A copy of e with fn applied to each IR node under it (e itself when nothing changes)."""
    # The hottest helper of the call-time passes (thousands of nodes per first call): the
    # node fields are read from the instance's dict and tuples mapped here, not through
    # getattr and a call of _map per field.
    names = _FIELDS.get(type(e))
    if names is None:
        names = _field_names(type(e))
    if not names:  # (a name, a number: no node under it)
        return e
    changes = None
    fields = e.__dict__
    for name in names:
        old = fields[name]
        if isinstance(old, _NODES):
            new = fn(old)
        elif isinstance(old, tuple):
            if not old:  # (a Prim's attrs, mostly)
                continue
            new = _map_tuple(old, fn)
        else:
            continue
        if new is not old:
            if changes is None:
                changes = {}
            changes[name] = new
    return with_fields(e, changes) if changes else e


class _Mappers(dict):
    """node class -> map_children for its nodes, unrolled over the class's node fields (made at
    the first node of a class): what the hottest walkers (simplify, rewrite, inline) call as
    `ir.MAPPERS[type(e)](e, fn)`, without map_children's loop over the field names."""

    def __missing__(self, cls):
        names = _field_names(cls)
        lines = ["def mapper(e, fn):", "    fields = e.__dict__", "    changes = None"]
        for name in names:
            lines += [f"    old = fields[{name!r}]",
                      "    if isinstance(old, _NODES):",
                      "        new = fn(old)",
                      "    elif isinstance(old, tuple) and old:",  # (_map_tuple's loop, inline)
                      "        items = None",
                      "        for i, x in enumerate(old):",
                      "            if isinstance(x, _NODES):",
                      "                y = fn(x)",
                      "            elif isinstance(x, tuple):",
                      "                y = _map_tuple(x, fn)",
                      "            else:",
                      "                continue",
                      "            if y is not x:",
                      "                if items is None:",
                      "                    items = list(old)",
                      "                items[i] = y",
                      "        new = old if items is None else tuple(items)",
                      "    else:",
                      "        new = old",
                      "    if new is not old:",
                      "        if changes is None:",
                      "            changes = {}",
                      f"        changes[{name!r}] = new"]
        lines.append("    return e if changes is None else with_fields(e, changes)")
        scope = {"_NODES": _NODES, "_map_tuple": _map_tuple, "with_fields": with_fields}
        exec("\n".join(lines), scope)  # noqa: S102 - code made from the class's field names
        mapper = self[cls] = scope["mapper"]
        return mapper


MAPPERS = _Mappers()


def with_fields(e, changes: dict):
    """dataclasses.replace(e, **changes) without its per-call field walk and keyword __init__
    (nodes have no __post_init__; a frozen node's copy is filled before anyone sees it)."""
    copy = object.__new__(type(e))
    fields = copy.__dict__
    fields.update(e.__dict__)
    fields.update(changes)
    if SIMPLIFIED in fields:  # (a mark of the original's structure, not the copy's)
        del fields[SIMPLIFIED]
    return copy


# The mark simplify leaves in a node's __dict__ (not a field: not compared, printed or
# copied) saying that simplify gives the node back as it is (kokoyi/compiler/passes/simplify.py).
SIMPLIFIED = "_simplified"


_NODES = (Expr, Axis, Slice)
# The node classes with no node under them (a number, a name, a top-level definition): the
# passes return one of them at once instead of mapping its (no) children.
LEAVES = frozenset(cls for cls in (Lit, Var, Global) if not _field_names(cls))


def _map_tuple(v: tuple, fn):
    """v with fn applied to each IR node in it, nested tuples included (v itself when none changes)."""
    items = None
    for i, x in enumerate(v):
        if isinstance(x, _NODES):
            y = fn(x)
        elif isinstance(x, tuple):
            y = _map_tuple(x, fn)
        else:
            continue
        if y is not x:
            if items is None:
                items = list(v)
            items[i] = y
    return v if items is None else tuple(items)


# ---- the text form -----------------------------------------------------------------------------
def dump(f: Function | Expr) -> str:
    """A readable, stable text form (what `kyic compile --dump-after lower` prints)."""
    if isinstance(f, Function):
        sig = ", ".join(f.inputs) + (f"; {', '.join(f.params)}" if f.params else "")
        return f"{f.kind} {f.name}({sig}):\n{_block(f.body, 1)}"
    return _expr(f)


def _block(e: Expr, depth: int) -> str:
    pad = "  " * depth
    lines = []
    while isinstance(e, (Let, RecurGroup)):
        if isinstance(e, RecurGroup):
            lines.append(f"{pad}{', '.join(e.names)} = {_group(e)}")
        else:
            lines.append(f"{pad}{e.name} = {_expr(e.value)}")
        e = e.body
    lines.append(f"{pad}return {_expr(e)}")
    return "\n".join(lines)


def _group(e: RecurGroup) -> str:
    members = "; ".join(f"{n}: {_expr(x)}" for n, x in zip(e.names, e.elements))
    return f"recur group[{_axis(e.axis)}]({members})"


def _axis(a: Axis) -> str:
    return f"{a.name} in {_expr(a.lower)}..{_expr(a.upper)}"


def _expr(e) -> str:
    match e:
        case Lit():
            return repr(e.value)
        case Var():
            return e.name
        case Global():
            return f"@{e.key}"
        case Iota():
            return e.axis.name
        case Prim():
            attrs = "".join(f"[{a}]" for a in e.attrs)
            return f"{e.op}{attrs}({', '.join(_expr(a) for a in e.args)})"
        case Reduce():
            return f"{e.op}[{_axis(e.axis)}]({_expr(e.body)})"
        case Build():
            return f"build[{', '.join(_axis(a) for a in e.axes)}]({_expr(e.body)})"
        case Take():
            return f"{_expr(e.value)}[{', '.join(_item(i) for i in e.items)}]"
        case Select():
            rows = "; ".join(f"{_expr(c)} -> {_expr(v)}" for c, v in e.rows)
            tail = f"; else -> {_expr(e.otherwise)}" if e.otherwise is not None else ""
            return f"select({rows}{tail})"
        case Apply():
            return f"{_expr(e.fn)}({', '.join(_expr(a) for a in e.args)})"
        case Lambda():
            return f"(\\{', '.join(e.params)} -> {_expr(e.body)})"
        case Let():
            return f"(let {e.name} = {_expr(e.value)} in {_expr(e.body)})"
        case Recur():
            return f"recur {e.name}[{_axis(e.axis)}]({_expr(e.element)})"
        case RecurGroup():
            return f"(let {', '.join(e.names)} = {_group(e)} in {_expr(e.body)})"
        case Tuple():
            return f"({', '.join(_expr(i) for i in e.items)})"
        case Fast():
            return f"{e.op}!({', '.join(_expr(a) for a in e.args)})"
        case At():
            return _expr(e.body)
    raise TypeError(f"not an IR expression: {e!r}")


def _item(i) -> str:
    if isinstance(i, Slice):
        return f"{'' if i.lower is None else _expr(i.lower)}:{'' if i.upper is None else _expr(i.upper)}"
    return _expr(i)


# ---- well-formedness -----------------------------------------------------------------------------
class IRError(Exception):
    """An ill-formed IR: a compiler bug, never a user error."""


def verify(f: Function) -> None:
    """Raise IRError unless every name is bound before use, every index variable is read
    inside the node that introduces it, and axis names are not reused on one path."""
    _verify(f.body, set(f.inputs) | set(f.params), {})


def _verify(e, names: set, axes: dict) -> None:
    def bad(msg):
        raise IRError(f"{msg} in {_expr(e) if isinstance(e, Expr) else e!r}")

    match e:
        case Var():
            if e.name not in names:
                bad(f"unbound name {e.name!r}")
        case Iota():
            if axes.get(e.axis.name) != e.axis:
                bad(f"index {e.axis.name!r} read outside its range")
        case Let():
            _verify(e.value, names, axes)
            _verify(e.body, names | {e.name}, axes)
        case Lambda():
            _verify(e.body, names | set(e.params), axes)
        case Reduce() | Build() | Recur():
            inner = dict(axes)
            for a in (e.axes if isinstance(e, Build) else (e.axis,)):
                if a.name in inner:
                    bad(f"index {a.name!r} introduced twice")
                _verify(a.lower, names, inner)
                _verify(a.upper, names, inner)
                inner[a.name] = a
            body = e.element if isinstance(e, Recur) else e.body
            _verify(body, names | ({e.name} if isinstance(e, Recur) else set()), inner)
        case RecurGroup():
            if e.axis.name in axes:
                bad(f"index {e.axis.name!r} introduced twice")
            if len(e.names) != len(e.elements) or len(set(e.names)) != len(e.names):
                bad("a recurrence group needs one element per distinct name")
            _verify(e.axis.lower, names, axes)
            _verify(e.axis.upper, names, axes)
            for x in e.elements:
                _verify(x, names | set(e.names), {**axes, e.axis.name: e.axis})
            _verify(e.body, names | set(e.names), axes)
        case Select():
            if not e.rows:
                bad("a select without rows")
            for c in children(e):
                _verify(c, names, axes)
        case Axis():
            bad("an axis outside the node that introduces it")
        case Slice():
            for c in children(e):
                _verify(c, names, axes)
        case Expr():
            for c in children(e):
                _verify(c, names, axes)
        case _:
            bad("not an IR node")
