"""The kernel IR: what the `batch` pass produces and a backend prints (issue 12).

A kernel is a straight list of statements over tensors with concrete layouts: every loop
axis of the core IR has become a tensor axis (or, for a recurrence, a Python loop), every
cases row a select, every read a checked gather. A statement applies an abstract operation
(`op`, e.g. "add", "where", "sum", "check_index") to arguments — references to earlier
results (`Ref`), Python constants, or tuples of these — with static attributes. A backend
(`kokoyi/compiler/emit/`) maps each op to code; the kernel IR itself names no library.

    Assign(out, op, args, attrs)   out = op(args; attrs)
    If(cond, then, orelse)         a branch on a Python truth value known at run time
    For(var, start, stop, body)    a recurrence's loop over its sequence axis (at least one step:
                                   `pre`, its loop-invariant code, runs once before it)
    Return(values)
"""
from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field

# The node classes are dataclasses for their fields (dataclasses.replace, fields, match
# patterns), with __init__, __eq__ and __repr__ written out as @dataclass would generate them:
# generating them costs about half a millisecond a class, at every first call of a process
# (this module is imported with the batch pass). kernel_test.py checks they behave the same.
_records = dataclass(init=False, repr=False, eq=False)
_MISSING = object()  # (an argument not given: attrs and pre default to a new dict and list)


@_records
class Ref:
    """A value computed earlier in the kernel (or an argument of it)."""

    name: str

    def __init__(self, name: str) -> None:
        self.__dict__["name"] = name

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self.name == other.name
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.name,))

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")


@_records
class Assign:
    """out = op(args; attrs) (out None: a statement run for its effect or its check)."""

    out: str | None
    op: str
    args: tuple
    attrs: dict = field(default_factory=dict)
    line: int = 0  # source line, for the line map (0: none)

    def __init__(self, out, op, args, attrs=_MISSING, line=0) -> None:
        self.out, self.op, self.args = out, op, args
        self.attrs = {} if attrs is _MISSING else attrs
        self.line = line

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.out, self.op, self.args, self.attrs, self.line) == \
                (other.out, other.op, other.args, other.attrs, other.line)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(out={self.out!r}, op={self.op!r}, args={self.args!r}, "
                f"attrs={self.attrs!r}, line={self.line!r})")


@_records
class If:
    """A branch on a Python truth value known at run time."""

    cond: object
    then: list
    orelse: list
    line: int = 0

    def __init__(self, cond, then, orelse, line=0) -> None:
        self.cond, self.then, self.orelse, self.line = cond, then, orelse, line

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.cond, self.then, self.orelse, self.line) == (other.cond, other.then, other.orelse, other.line)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(cond={self.cond!r}, then={self.then!r}, orelse={self.orelse!r}, "
                f"line={self.line!r})")


@_records
class For:
    """A recurrence's loop over its sequence axis (`pre`: its loop-invariant code, run once before)."""

    var: str
    start: object
    stop: object
    body: list
    line: int = 0
    site: str = ""  # file:line:col of the recurrence (what torch.export's error names)
    pre: list = field(default_factory=list)  # loop-invariant statements, run once before the loop

    def __init__(self, var, start, stop, body, line=0, site="", pre=_MISSING) -> None:
        self.var, self.start, self.stop, self.body, self.line, self.site = var, start, stop, body, line, site
        self.pre = [] if pre is _MISSING else pre

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.var, self.start, self.stop, self.body, self.line, self.site, self.pre) == \
                (other.var, other.start, other.stop, other.body, other.line, other.site, other.pre)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(var={self.var!r}, start={self.start!r}, stop={self.stop!r}, "
                f"body={self.body!r}, line={self.line!r}, site={self.site!r}, pre={self.pre!r})")


@_records
class Return:
    """The kernel's results."""

    values: tuple
    line: int = 0

    def __init__(self, values, line=0) -> None:
        self.values, self.line = values, line

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.values, self.line) == (other.values, other.line)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(values={self.values!r}, line={self.line!r})"


def statements(block: list):
    """Every statement of block and of the blocks nested in it (an If's branches, a For's
    `pre` and body), each before its nested ones, in order."""
    # One generator with a stack of the blocks being read, not a generator per level: the
    # kernel passes walk every statement several times.
    stack = [iter(block)]
    while stack:
        for s in stack[-1]:
            yield s
            if s.__class__ is Assign:  # (most statements: nothing nested)
                continue
            if isinstance(s, If):
                stack.append(iter(s.then + s.orelse))
                break
            if isinstance(s, For):
                stack.append(iter(s.pre + s.body))
                break
        else:
            stack.pop()


def with_blocks(s, fn):
    """s with each block nested in it (an If's branches, a For's `pre` and body) replaced by
    fn(block); other statements as they are."""
    if isinstance(s, If):
        return copy_with(s, then=fn(s.then), orelse=fn(s.orelse))
    if isinstance(s, For):
        return copy_with(s, pre=fn(s.pre), body=fn(s.body))
    return s


def copy_with(s, **changes):
    """dataclasses.replace(s, **changes) for a statement (Assign, If, For, Return), without its
    per-call field walk and keyword __init__: the fields copied as they are (the __init__s only
    fill defaults, which a made statement has), the names it reads (read_names) not kept."""
    copy = object.__new__(s.__class__)
    fields = copy.__dict__
    fields.update(s.__dict__)
    fields.pop("_read_names", None)
    fields.update(changes)
    return copy


def nested(s) -> list:
    """The statements of the blocks nested in s, in order (none for an Assign or a Return)."""
    if isinstance(s, If):
        return s.then + s.orelse
    if isinstance(s, For):
        return s.pre + s.body
    return []


def reads(s) -> tuple:
    """What statement s reads: an Assign's arguments, an If's condition, a For's bounds, a
    Return's values (Refs and constants, nested in tuples)."""
    if isinstance(s, Assign):
        return s.args
    if isinstance(s, If):
        return (s.cond,)
    if isinstance(s, For):
        return (s.start, s.stop)
    if isinstance(s, Return):
        return s.values
    return ()


def refs(a):
    """The names of the Refs in a (nested tuples and lists), each time it occurs."""
    if isinstance(a, Ref):
        yield a.name
    elif isinstance(a, (tuple, list)):
        for x in a:
            yield from refs(x)


def names(a, acc: set) -> set:
    """acc with the names of the Refs in a (what refs yields, without a generator per level:
    the kernel passes call it for every statement they look at)."""
    if isinstance(a, Ref):
        acc.add(a.name)
    elif isinstance(a, (tuple, list)):
        for x in a:
            if isinstance(x, Ref):
                acc.add(x.name)
            elif isinstance(x, (tuple, list)):
                names(x, acc)
    return acc


def read_names(s) -> frozenset:
    """The names statement s reads (names(reads(s))), kept on the statement: the kernel passes
    (clean-up's dead-code rounds, the static-sizes peephole, fuse, licm, statics) ask again
    for the same statements, and a statement's reads never change once it is made (the
    passes make a new statement instead; If's and For's blocks are not among its reads)."""
    fields = s.__dict__
    got = fields.get("_read_names")
    if got is None:
        got = fields["_read_names"] = frozenset(names(reads(s), set()))
    return got


@_records
class Kernel:
    """One specialised function: its parameters (inputs then module parameters) and body."""

    name: str
    params: tuple[str, ...]
    body: list
    outputs: tuple = ()  # the layouts of the returned values (batch.layout.Val)
    batch_loop: str = ""  # why the batch is a Python loop over samples ("": it is vectorised)

    def __init__(self, name, params, body, outputs=(), batch_loop="") -> None:
        self.name, self.params, self.body, self.outputs, self.batch_loop = name, params, body, outputs, batch_loop

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.name, self.params, self.body, self.outputs, self.batch_loop) == \
                (other.name, other.params, other.body, other.outputs, other.batch_loop)
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(name={self.name!r}, params={self.params!r}, body={self.body!r}, "
                f"outputs={self.outputs!r}, batch_loop={self.batch_loop!r})")


def dump(k: Kernel) -> str:
    """A readable text form (`kyic compile --dump-after batch`)."""
    lines = [f"kernel {k.name}({', '.join(k.params)}):"]
    _dump_block(k.body, 1, lines)
    return "\n".join(lines) + "\n"


def _dump_block(block: list, depth: int, lines: list) -> None:
    pad = "  " * depth
    for s in block:
        match s:
            case Assign() if s.op == "statics":
                lines.append(f"{pad}{', '.join(s.attrs['outs'])} = statics({', '.join(map(_arg, s.args))}):")
                _dump_block(s.attrs["body"], depth + 1, lines)
            case Assign():
                attrs = "".join(f" {k}={v!r}" for k, v in s.attrs.items())
                lhs = f"{s.out} = " if s.out else ""
                lines.append(f"{pad}{lhs}{s.op}({', '.join(map(_arg, s.args))}){attrs}")
            case If():
                lines.append(f"{pad}if {_arg(s.cond)}:")
                _dump_block(s.then, depth + 1, lines)
                lines.append(f"{pad}else:")
                _dump_block(s.orelse, depth + 1, lines)
            case For():
                if s.pre:
                    lines.append(f"{pad}before {s.var}:")
                    _dump_block(s.pre, depth + 1, lines)
                lines.append(f"{pad}for {s.var} in {_arg(s.start)}..<{_arg(s.stop)}:")
                _dump_block(s.body, depth + 1, lines)
            case Return():
                lines.append(f"{pad}return {', '.join(map(_arg, s.values))}")


def _arg(a) -> str:
    if isinstance(a, tuple):
        return "(" + ", ".join(map(_arg, a)) + ("," if len(a) == 1 else "") + ")"
    return repr(a)
