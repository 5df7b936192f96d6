"""Values that depend only on sizes and constants, computed once per call signature's sizes.

A kernel recomputes on every call tensors that no input's data reaches: a positional table
`PE(|x|, d)`, a causal mask over `|Y|`, the indices of a shifted read. Such a value is a
function of Python numbers the kernel already has (sizes, loop counters, numbers computed
from them), the device and the dtype printed in the code. This pass takes the statements
that compute them out of the kernel's blocks and puts, before the first statement that
reads one, a `statics` statement: the backend prints the taken statements as a local
function of those numbers and calls it through `kx.static_values`, which keeps its results
per (numbers, device) (kokoyi/runtime/statics.py), so the statements run on the first call
with those sizes only.

A value is kept only where nothing can change it or hand it out: every statement that reads
it (and is not itself such a value) must be one that makes a new tensor (FRESH: arithmetic,
selects, products, attention, reads by index, the guards a view only tests); a value
returned, appended to a recurrence, passed to a layer or viewed (`read_static`, `windows`)
is computed on every call as before, and so is a value named in several places (a branch's
join) or read outside the block that defines it.
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.cleanup import USES_DEVICE

# Ops that make a tensor from Python numbers (and the device) alone.
CREATES = {"arange", "constant", "number_tensor", "iota_from", "eye"}
# Pure, deterministic tensor ops: static when every tensor they read is.
PURE = CREATES | {
    "to", "view", "transpose", "add", "sub", "mul", "div", "pow", "neg", "lt", "gt", "le", "ge", "eq", "ne",
    "and", "or", "not", "root", "exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "sqrt", "sigmoid",
    "abs", "sign", "relu", "floor", "ceil", "maximum", "minimum", "clip", "where", "log2", "log10"}
# Ops whose result is a Python value (a size, a count, bounds): what the kept values are a function of.
SCALARS = {"size", "range_size", "int_of", "max_size", "floor_int", "ceil_int", "indicator_py", "affine_range"}
# Ops that read a kept value and make a new tensor of it (never hand the value itself out, never change it).
FRESH = (PURE - CREATES - {"to", "view", "transpose"}) | {
    "gather", "attention", "causal_attention", "matmul", "matmul_rows", "matmul_rows_t",
    "matmul_summed", "linear", "einsum",
    "softmax_last", "log_softmax_last", "cross_entropy", "guards"}

# Views and checks whose guards (the argument at this index) are only combined and tested,
# never handed out: a kept value may be read there as by a FRESH op.
GUARDS_AT = {"windows": 6, "read_static": 5, "check_static": 5}


def _reads(a) -> set:
    acc: set = set()
    K.names(a, acc)
    return acc


def _walk(block: list, depth: tuple, defs: dict, counts: dict, uses: list, scalars: set) -> None:
    """Collects each Assign by name (with its block's path), how often each name is assigned,
    every (reading op, names read, block path) and the names of Python values."""
    for i, s in enumerate(block):
        match s:
            case K.Assign():
                if s.op in GUARDS_AT and len(s.args) > GUARDS_AT[s.op]:
                    k = GUARDS_AT[s.op]
                    uses.append((s.op, _reads(s.args[:k] + s.args[k + 1:]), depth, s.out))
                    uses.append(("guards", _reads(s.args[k]), depth, s.out))
                else:
                    uses.append((s.op, K.read_names(s), depth, s.out))
                if s.out is not None:
                    counts[s.out] = counts.get(s.out, 0) + 1
                    defs[s.out] = (s, depth)
                    if s.attrs.get("py") or s.op in SCALARS or s.op == "device_of":
                        scalars.add(s.out)
            case K.If():
                uses.append(("if", K.read_names(s), depth, None))
                _walk(s.then, depth + ((i, 0),), defs, counts, uses, scalars)
                _walk(s.orelse, depth + ((i, 1),), defs, counts, uses, scalars)
            case K.For():
                uses.append(("for", K.read_names(s), depth, None))
                scalars.add(s.var)
                counts[s.var] = counts.get(s.var, 0) + 1
                _walk(s.pre, depth, defs, counts, uses, scalars)  # pre runs in the enclosing block
                _walk(s.body, depth + ((i, 2),), defs, counts, uses, scalars)
            case K.Return():
                uses.append(("return", K.read_names(s), depth, None))


def static_names(k: K.Kernel) -> tuple[dict, set]:
    """(name -> its Assign, for the values this pass keeps across calls; those of them that
    statements left in the kernel read)."""
    defs: dict = {}
    counts: dict = {}
    uses: list = []
    scalars: set = set()
    _walk(k.body, (), defs, counts, uses, scalars)
    scalars = {n for n in scalars if counts.get(n) == 1}
    static: set = set()
    for name, (s, _) in defs.items():  # in order: what a statement reads is defined before it
        if counts[name] != 1 or s.op not in PURE or s.attrs.get("py"):
            continue
        reads = K.read_names(s)
        if not all(r in static or r in scalars for r in reads):
            continue
        if s.op in CREATES or reads & static:
            static.add(name)
    while True:  # drop values read where they could change or escape, then what only they kept
        dropped = set()
        for op, reads, depth, out in uses:
            if out in static:
                continue  # read inside the computation kept
            for r in reads & static:
                if op not in FRESH or depth[:len(defs[r][1])] != defs[r][1]:  # or outside the defining block
                    dropped.add(r)
        if not dropped:
            break
        static -= dropped
        # a statement that read a dropped value is no longer static itself
        while True:
            more = {n for n in static if K.read_names(defs[n][0]) - static - scalars}
            if not more:
                break
            static -= more
    # only what a statement left in the kernel reads is taken out (an unread one that may
    # fail stays where it is)
    taken: set = set()
    read = {r for op, reads, depth, out in uses if out not in static for r in reads & static}
    todo = list(read)
    while todo:
        n = todo.pop()
        if n not in taken:
            taken.add(n)
            todo.extend(K.read_names(defs[n][0]) & static)
    return {n: defs[n][0] for n in defs if n in taken}, read


class _Placer:
    def __init__(self, static: dict, read: set) -> None:
        self.static = static
        self.read = read  # the kept values statements left in the kernel read
        self.count = 0

    def closure(self, names: set) -> list:
        """The static statements computing `names`, in kernel order."""
        need, todo = set(), list(names)
        while todo:
            n = todo.pop()
            if n in need:
                continue
            need.add(n)
            todo.extend(r for r in K.read_names(self.static[n]) if r in self.static)
        return [s for n, s in self.static.items() if n in need]

    def statics(self, names: set, line: int) -> K.Assign:
        self.count += 1
        body = self.closure(names)
        inner = {s.out for s in body}
        keys = sorted({r for s in body for r in K.read_names(s)} - inner)
        if any(s.op in USES_DEVICE for s in body) and "_dev" not in keys:
            keys = ["_dev", *keys]
        outs = tuple(n for n in self.static if n in names)
        return K.Assign(None, "statics", tuple(K.Ref(n) for n in keys),
                        {"fn": f"_statics_{self.count}", "body": body, "outs": outs}, line)

    def block(self, block: list, avail: set) -> list:
        """The block without its kept statements, each read value made before its first reader
        (with the other kept values defined so far in this block: one call for them all)."""
        out: list = []
        passed: set = set()  # kept values defined so far in this block
        for s in block:
            if isinstance(s, K.Assign) and s.out in self.static:
                if s.out in self.read:
                    passed.add(s.out)
                continue
            match s:
                case K.Assign():
                    self._before(out, K.read_names(s), avail, passed, s.line)
                    out.append(s)
                case K.If():
                    self._before(out, K.read_names(s) | _free(s.then + s.orelse, set(), self.static), avail, passed, s.line,
                                 here=K.read_names(s))
                    out.append(dataclasses.replace(s, then=self.block(s.then, set(avail)),
                                                   orelse=self.block(s.orelse, set(avail))))
                case K.For():
                    self._before(out, K.read_names(s), avail, passed, s.line)
                    pre = self.block(s.pre, avail)
                    body_reads = _free(s.body, set(), self.static) - _defined(s.body)
                    self._before(pre, body_reads, avail, passed, s.line)
                    out.append(dataclasses.replace(s, pre=pre, body=self.block(s.body, set(avail))))
                case K.Return():
                    self._before(out, K.read_names(s), avail, passed, s.line)
                    out.append(s)
        return out

    def _before(self, out: list, reads: set, avail: set, passed: set, line: int, here=None) -> None:
        """A `statics` statement for the kept values `here` reads (default: `reads`), when one
        is missing, with those of `reads` and this block's defined so far."""
        missing = ((reads if here is None else here) & self.static.keys()) - avail
        if not missing:
            return
        need = missing | (((reads & self.static.keys()) | passed) - avail)
        out.append(self.statics(need, line))
        avail |= need


def _free(block: list, acc: set, static=()) -> set:
    """acc with the names the block's statements read (but those of `static`)."""
    for s in K.statements(block):
        if not (isinstance(s, K.Assign) and s.out in static):
            acc |= K.read_names(s)
    return acc


def _defined(block: list) -> set:
    from kokoyi.compiler.batch.licm import assigned

    return assigned(block, set())


def keep_statics(k: K.Kernel) -> K.Kernel:
    """k with its size-only values computed through `statics` statements (see the module doc)."""
    static, read = static_names(k)
    if not static:
        return k
    return dataclasses.replace(k, body=_Placer(static, read).block(k.body, set()))
