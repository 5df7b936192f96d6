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

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Ref:
    """A value computed earlier in the kernel (or an argument of it)."""

    name: str

    def __repr__(self) -> str:
        return self.name


@dataclass
class Assign:
    out: str | None
    op: str
    args: tuple
    attrs: dict = field(default_factory=dict)
    line: int = 0  # source line, for the line map (0: none)


@dataclass
class If:
    cond: object
    then: list
    orelse: list
    line: int = 0


@dataclass
class For:
    var: str
    start: object
    stop: object
    body: list
    line: int = 0
    site: str = ""  # file:line:col of the recurrence (what torch.export's error names)
    pre: list = field(default_factory=list)  # loop-invariant statements, run once before the loop


@dataclass
class Return:
    values: tuple
    line: int = 0


def statements(block: list):
    """Every statement of block and of the blocks nested in it (an If's branches, a For's
    `pre` and body), each before its nested ones, in order."""
    # One generator with a stack of the blocks being read, not a generator per level: the
    # kernel passes walk every statement several times.
    stack = [iter(block)]
    while stack:
        for s in stack[-1]:
            yield s
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
        return replace(s, then=fn(s.then), orelse=fn(s.orelse))
    if isinstance(s, For):
        return replace(s, pre=fn(s.pre), body=fn(s.body))
    return s


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


@dataclass
class Kernel:
    """One specialised function: its parameters (inputs then module parameters) and body."""

    name: str
    params: tuple[str, ...]
    body: list
    outputs: tuple = ()  # the layouts of the returned values (batch.layout.Val)
    batch_loop: str = ""  # why the batch is a Python loop over samples ("": it is vectorised)


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
