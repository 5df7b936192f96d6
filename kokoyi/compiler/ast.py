"""The Kokoyi AST: frozen dataclasses, each with the source span it came from.

Nodes compare by identity (eq=False), so passes can key side tables on them. Parentheses
and braces are kept (Paren, Group) so the renderer can give back what was written; the
other passes look through them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Union

from kokoyi.errors import Span

_SET = object.__setattr__


def _quick_init(cls: type) -> type:
    """Give a frozen node class an __init__ that sets its fields through a prebound
    `object.__setattr__` and leaves a field holding its default object unset (the class
    attribute dataclass keeps for it reads the same): the same signature and values as
    dataclass's own, which looks `object.__setattr__` up for every field. The parser makes
    about 50 nodes a small unit, most of them Names with three default fields."""
    lines, env = [], {"_set": _SET}
    params, unset = [], set()  # unset: the fields left unset when they hold their default
    for f in dataclasses.fields(cls):
        if not f.init or f.default_factory is not dataclasses.MISSING or f.kw_only:
            return cls  # (none in this module: dataclass's own __init__ handles these)
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            env[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
            if getattr(cls, f.name, env) is f.default:  # (the class attribute an unset field reads)
                unset.add(f.name)
        if f.name in unset:
            lines.append(f"    if {f.name} is not _d_{f.name}:\n        _set(self, {f.name!r}, {f.name})")
        else:
            lines.append(f"    _set(self, {f.name!r}, {f.name})")
    code = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines or ["    pass"]) + "\n"
    # replace(n, **changes) for this class: each field from changes or from n (a default left unset)
    lines = ["    _copy = _new(_cls)"]
    for f in dataclasses.fields(cls):
        value = f"(_node.{f.name} if {f.name} is _KEEP else {f.name})"
        if f.name not in unset:
            lines.append(f"    _set(_copy, {f.name!r}, {value})")
        else:
            lines.append(f"    _value = {value}\n    if _value is not _d_{f.name}:\n        _set(_copy, {f.name!r}, _value)")
    names = [f.name for f in dataclasses.fields(cls)]
    code += (f"def _replace(_node, {', '.join(name + '=_KEEP' for name in names)}):\n" + "\n".join(lines)
             + "\n    return _copy\n")
    env.update(_new=object.__new__, _cls=cls, _KEEP=_KEEP)
    exec(code, env)  # noqa: S102 - made from the class's own field names, as dataclass does
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init
    _QUICK_REPLACE[cls] = (frozenset(names), env["_replace"])
    return cls


_KEEP = object()  # (a field replace leaves as it is)
# node class -> (its field names, a replace(n, **changes) made for it: no loop over the fields)
_QUICK_REPLACE: dict = {}


def node(cls: type) -> type:
    """A frozen dataclass compared by identity (see the module docstring), with a quick __init__."""
    return _quick_init(dataclass(frozen=True, eq=False)(cls))


@node
class Node:
    span: Span


# ---- names -----------------------------------------------------------------------


@node
class Name(Node):
    """A possibly decorated name: `x`, `\\alpha`, `G_t`, `\\bar{G_t}`, `s'`, `W^{(1)}`.

    key is the canonical spelling, the name's identity (`G_{t}`, `\\bar{G_{t}}`).
    hint is a readable Python identifier for it (`G_t`, `G_t_bar`).
    When the name's outermost decoration is a subscript, `inner` is the name without it
    and `indices` the subscript's expressions: if `key` is not defined the subscript
    indexes `inner`. A parenthesised superscript likewise keeps `inner` and `exponent`.
    """

    key: str
    hint: str
    inner: Name | None = None
    indices: tuple[Expr, ...] = ()
    exponent: Expr | None = None


# ---- expressions ---------------------------------------------------------------------


@node
class Num(Node):
    value: int | float
    text: str


@node
class Paren(Node):
    expr: Expr


@node
class Group(Node):
    """A braced group `{e}`: grouping only."""

    expr: Expr


@node
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Expr


@node
class Binary(Node):
    op: str  # "+", "-", "*", "/", "@", "and", "or"
    left: Expr
    right: Expr
    spelling: str = ""  # the source operator (`\cdot`, `\odot`, ...) for rendering


@node
class Compare(Node):
    op: str  # "<", ">", "<=", ">=", "==", "!="
    left: Expr
    right: Expr


@node
class Juxtapose(Node):
    """Implicit product: `2x`, `\\frac{1}{2} \\delta^2`."""

    left: Expr
    right: Expr


@node
class Power(Node):
    base: Expr
    exponent: Expr
    spelling: str = "^"  # "^" or "**"


@node
class Transpose(Node):
    operand: Expr


@node
class Frac(Node):
    numerator: Expr
    denominator: Expr


@node
class Sqrt(Node):
    radicand: Expr
    degree: Expr | None = None


@node
class Bars(Node):
    """`|x|`: length of the first axis, or absolute value of a scalar."""

    operand: Expr


@node
class Norm(Node):
    operand: Expr
    order: str | None = None  # None, "1", "2", "inf"


@node
class Rounding(Node):
    kind: str  # "ceil" or "floor"
    operand: Expr


@node
class Call(Node):
    func: Expr
    args: tuple[Expr, ...]


@node
class Slice(Node):
    start: Expr | None
    stop: Expr | None


@node
class Index(Node):
    target: Expr
    items: tuple[Expr, ...]  # Expr or Slice


@node
class Builtin(Node):
    """A built-in function used as a value or callee: `\\Mean`, `\\exp`."""

    name: str


@node
class BuiltinCall(Node):
    name: str
    args: tuple[Expr, ...]
    style: str = "paren"  # "paren" or "bare"


@node
class Reduce(Node):
    """`\\sum(x)`, `\\max(x)`, `\\max(a, b)`: reductions and n-ary max/min."""

    op: str
    args: tuple[Expr, ...]


@node
class Bound(Node):
    var: Name
    lower: Expr
    upper: Expr


@node
class BigOp(Node):
    """`\\sum_{i=a}^{b} body` and friends; bounds inclusive."""

    op: str  # sum prod max min argmax argmin mean
    bound: Bound
    body: Expr


@node
class SetBuilder(Node):
    """`\\{ e \\}_{t=a}^{b}` (one or more bounds, outermost first)."""

    element: Expr
    bounds: tuple[Bound, ...]


@node
class CaseRow(Node):
    value: Expr
    condition: Expr | None  # None: otherwise
    text: str = ""  # "if", "otherwise", "else" or ""


@node
class Cases(Node):
    rows: tuple[CaseRow, ...]


@node
class Indicator(Node):
    condition: Expr
    style: str = "["  # "[", "(", "_"


@node
class LogBase(Node):
    """`\\log_2 x`, `\\log_{10}(x)`, `\\log_{b}(x)`: the logarithm to a base."""

    base: Expr
    operand: Expr
    style: str = "paren"  # "paren" or "bare", as for BuiltinCall


@node
class MatrixRow(Node):
    entries: tuple[Expr, ...]


@node
class Matrix(Node):
    """`\\begin{bmatrix} a & b \\\\ c & d \\end{bmatrix}` (or pmatrix): entries stacked, rows first."""

    rows: tuple[MatrixRow, ...]
    delimiter: str = "bmatrix"  # "bmatrix" or "pmatrix"


Expr = Union[
    Name, Num, Paren, Group, Unary, Binary, Compare, Juxtapose, Power, Transpose, Frac, Sqrt, Bars,
    Norm, Rounding, Call, Slice, Index, Builtin, BuiltinCall, Reduce, BigOp, SetBuilder, Cases,
    Indicator, LogBase, Matrix,
]


# ---- statements and items ------------------------------------------------------------


@node
class TypeAnnotation(Node):
    field: str  # "R", "Z" or "N"
    dims: tuple[Expr, ...]  # Name or Num


@node
class Decl(Node):
    name: Name
    annotation: TypeAnnotation | None = None


@node
class Definition(Node):
    """`target \\gets value`, or `target(args) \\gets value` for a function."""

    target: Name
    params: tuple[Name, ...] | None
    value: Expr
    where: tuple[Definition, ...] = ()
    comment: str | None = None


@node
class Return(Node):
    values: tuple[Expr, ...]
    where: tuple[Definition, ...] = ()
    comment: str | None = None


Statement = Union[Definition, Return]


@node
class Module(Node):
    name: Name
    inputs: tuple[Decl, ...]
    params: tuple[Decl, ...]
    body: tuple[Statement, ...]
    has_params_section: bool = False


@node
class Function(Node):
    name: Name
    args: tuple[Decl, ...]
    body: tuple[Statement, ...]


Item = Union[Module, Function, Definition]


@node
class Program(Node):
    items: tuple[Item, ...] = field(default=())


# ---- helpers ---------------------------------------------------------------------------


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """The fields of a node class other than its span, in order (looked up once per class:
    `dataclasses.fields` builds a new tuple on every call, and the passes ask per node)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.name != "span")
    return names


_DEFAULTS: dict[type, dict] = {}
_NO_DEFAULT = object()


def _defaults(cls: type) -> dict:
    """Field name -> default object, for the fields of a node class that have one and keep
    it as a class attribute (an unset field reads it there)."""
    found = _DEFAULTS[cls] = {f.name: f.default for f in dataclasses.fields(cls)
                              if f.default is not dataclasses.MISSING
                              and getattr(cls, f.name, _NO_DEFAULT) is f.default}
    return found


def children(n: Node):
    """The child nodes of n, in source order."""
    for name in _field_names(type(n)):
        v = getattr(n, name)
        if isinstance(v, Node):
            yield v
        elif isinstance(v, tuple):
            for x in v:
                if isinstance(x, Node):
                    yield x


def walk(n: Node):
    """n and all its descendants, depth first, in source order (one generator, not one per node)."""
    stack = [n]
    while stack:
        n = stack.pop()
        yield n
        kids = []
        for name in _FIELD_NAMES.get(type(n)) or _field_names(type(n)):
            v = getattr(n, name)
            if isinstance(v, Node):
                kids.append(v)
            elif isinstance(v, tuple):
                kids.extend([x for x in v if isinstance(x, Node)])
        if kids:
            kids.reverse()  # (they come off the stack in source order)
            stack.extend(kids)


def strip(e: Expr) -> Expr:
    """e without surrounding parentheses or braces."""
    while isinstance(e, (Paren, Group)):
        e = e.expr
    return e


def dump(n, indent: int = 0) -> str:
    """A readable indented dump of a tree (what `kyic compile --dump-after` prints)."""
    pad = "  " * indent
    if isinstance(n, tuple):
        return "\n".join(dump(x, indent) for x in n) if n else pad + "()"
    if not isinstance(n, Node):
        return pad + repr(n)
    scalars, nested = [], []
    for f in dataclasses.fields(n):
        if f.name == "span":
            continue
        v = getattr(n, f.name)
        if isinstance(v, Node) or (isinstance(v, tuple) and any(isinstance(x, Node) for x in v)):
            nested.append((f.name, v))
        elif v not in (None, (), "") and not (isinstance(n, Name) and f.name == "hint"):
            scalars.append(f"{f.name}={v!r}")
    head = f"{pad}{type(n).__name__}({', '.join(scalars)}) @{n.span.line}:{n.span.column}"
    lines = [head]
    for name, v in nested:
        lines.append(f"{pad}  .{name}:")
        lines.append(dump(v, indent + 2))
    return "\n".join(lines)


# ---- nodes that name resolution introduces ---------------------------------------------


@node
class Ref(Node):
    """A resolved use of a name: what it refers to is `symbol` (kokoyi.compiler.symbols)."""

    symbol: object
    name: Name


@node
class Constant(Node):
    """A built-in constant (`\\pi`, `e`, `\\infty`) where the name is not user-defined."""

    key: str


@node
class Inverse(Node):
    """`A^{-1}` where A has per-sample rank >= 2 (the ranks pass decides): the matrix inverse."""

    operand: Expr


def map_children(n: Node, fn) -> Node:
    """A copy of n with fn applied to each child node (and to nodes inside tuples)."""
    changes = {}
    cls = type(n)
    for name in _FIELD_NAMES.get(cls) or _field_names(cls):
        v = getattr(n, name)
        if isinstance(v, Node):
            new = fn(v)
        elif isinstance(v, tuple):
            for x in v:  # (a tuple with a node in it is always made anew, as it always was)
                if isinstance(x, Node):
                    break
            else:
                continue
            new = tuple([fn(x) if isinstance(x, Node) else x for x in v])
        else:
            continue
        if new is not v:
            changes[name] = new
    return replace(n, **changes) if changes else n


def replace(n: Node, **changes) -> Node:
    """dataclasses.replace(n, **changes) without its per-call field walk and keyword
    __init__ (nodes have no __post_init__); an unknown field is a TypeError, as there."""
    cls = type(n)
    quick = _QUICK_REPLACE.get(cls)
    if quick is not None and quick[0].issuperset(changes):
        return quick[1](n, **changes)
    names = _FIELD_NAMES.get(cls) or _field_names(cls)
    for name in changes:
        if name not in names and name != "span":
            raise TypeError(f"{cls.__name__} has no field {name!r}")
    # Field by field, not through __dict__: reading or writing an instance's __dict__ makes
    # CPython give it a separate dict object, which a registered unit's AST (kept for the
    # first call) would hold per node for the cyclic collector to scan.
    copy = object.__new__(cls)
    set_field = _SET
    set_field(copy, "span", changes["span"] if "span" in changes else n.span)
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = _defaults(cls)
    for name in names:
        value = changes[name] if name in changes else getattr(n, name)
        if defaults.get(name, _NO_DEFAULT) is not value:  # (a default is left unset, as __init__ leaves it)
            set_field(copy, name, value)
    return copy
