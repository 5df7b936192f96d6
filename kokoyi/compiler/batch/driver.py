"""The `batch` pass: a core-IR function and a call signature -> a kernel (kernel.py).

The pass evaluates the IR abstractly over layouts (layout.Val): each node's value is code
in the kernel plus the named axes it varies with. Opening a loop (a big operator, a
set-builder) adds a named axis; the batch axis is one more named axis. The rules for the
primitives live in `rules.py` (one registry, families of rules), for reads in
`indexing.py`, for cases and recurrences in `control.py`, for calls in `calls.py`.

Where the code applies is tracked as `guards`: truth values (Python or tensor) whose
conjunction says which elements are evaluated for real — inside a cases row, its condition;
inside a loop with a dependent bound, its mask; inside any loop, that it is not empty. A
read is checked only where the guards hold (LANGUAGE.md 5: a row that does not apply, or an
empty range, reads nothing); elsewhere its index is clamped and its value discarded.
"""
from __future__ import annotations

import contextlib
import dataclasses

from kokoyi.compiler import ir
from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.layout import BATCH, Val, union_axes
from kokoyi.compiler.emit.namespace import Namespace


class Unsupported(Exception):
    """A construct this back end cannot batch yet (the runtime then uses another path)."""


class Batcher:
    """Builds one kernel for one function and one call signature."""

    def __init__(self, fn: ir.Function, inputs: tuple, params: tuple, *, dtype: str, source,
                 globals_info: dict, callee_outputs=None, lower_global=None, callee_ir=None,
                 python_outputs: bool = False, opaque_ranks=None) -> None:
        self.fn = fn
        self.python_outputs = python_outputs  # numbers stay Python numbers (functions, constants)
        self.batch_loop = ""  # why the batch became a loop over samples
        self.opaque_ranks = opaque_ranks or {}  # file:line:col of a call of an opaque callable -> result rank
        self.input_descs = inputs  # per input: (desc, batched)
        self.param_descs = params
        self.dtype = dtype  # the module's floating dtype, as code ("torch.float32")
        self.source = self.own_source = source
        self.filename = source.filename
        self._split: dict = {}  # id(source) -> (source, its lines): split once, not at every At
        self._lines = self.lines_of(source)
        self.globals_info = globals_info  # key -> (Python name, description, symbol)
        self.callee_outputs = callee_outputs
        self.lower_global = lower_global  # key -> ir.Function of a top-level function
        self.callee_ir = callee_ir  # Kokoyi module description -> (IR, parameter descriptions, source) or None
        self.ns = Namespace({info[0] for info in globals_info.values()} | {"_dev", "_B", "_dt"})
        self.block: list = []
        self.order: list[str] = []  # open axes, outermost first
        self.sizes: dict[str, object] = {}  # axis -> its size (a Python int at run time)
        self.iotas: dict[str, Val] = {}
        self.lowest: dict[str, int] = {}  # a recurrence loop's variable -> its smallest value
        self.static_axes: dict[str, tuple] = {}  # open axes with Python bounds -> (lower, size)  # axis name -> the index variable's value
        self.guards: list[Val] = []
        self.env: dict[str, Val] = {}
        self.line = 0
        self.recurrences: dict[str, Val] = {}  # name of a recurrence being computed -> its states
        self.row_masks: list[Val] = []  # inside element-wise cases rows: where each applies
        self.loop_masks: list[Val] = []  # inside loops with a dependent range: where it holds
        self.loss_reduction: dict | None = None  # a reduced_loss being batched (batch/fast.py)
        self.sum_as_mean = None  # the ir.Reduce of a mean_of_sum being batched (batch/fast.py)
        self.inlining: list[str] = []
        self.probing = 0  # > 0: evaluating only to learn a kind (control._kind_of)
        self.no_grad = 0  # > 0: a module call whose result only \StopGrad reads (run under no_grad)  # global functions being inlined (recursion guard)
        self.hoists: list = []  # recurrences being generated, innermost last (batch/hoist.py)
        self.stacked: dict = {}  # a recurrence's stacked elements -> (list, sizes, rank, floating, chained)
        self.predecessor_reads: set = set()  # ids of `earlier` statements reading m[t-1] (sequences._chained)

    # ---- emitting -------------------------------------------------------------------------
    def emit(self, kernel_op: str, /, *args, hint: str = "t", **attrs) -> K.Ref:
        name = self.ns.create(hint)
        s = K.Assign(name, kernel_op, args, attrs, self.line)
        self.block.append(s)
        for h in self.hoists:
            h.note(s)
        return K.Ref(name)

    def restate(self, s: K.Assign, **changes) -> K.Assign:
        """A copy of s, a statement of the current block, with changes, in its place there (and
        in the recurrences being generated, which noted s): a rule that takes a second look at
        what it emitted builds a new statement rather than changing the one emitted."""
        new = dataclasses.replace(s, **changes)
        block = self.block
        for i in range(len(block) - 1, -1, -1):
            if block[i] is s:
                block[i] = new
                break
        else:
            raise ValueError("restate: the statement is not in the current block")
        for h in self.hoists:
            h.restated(s, new)
        return new

    def joined(self, name: str) -> None:
        """`name` was assigned in the branches of an If just emitted (what a recurrence being
        generated must not take for a value defined before it)."""
        for h in self.hoists:
            h.note_join(name)

    def do(self, kernel_op: str, /, *args, **attrs) -> None:
        self.block.append(K.Assign(None, kernel_op, args, attrs, self.line))

    @contextlib.contextmanager
    def into(self, block: list):
        saved, self.block = self.block, block
        try:
            yield block
        finally:
            self.block = saved

    @contextlib.contextmanager
    def guarded(self, *more: Val):
        saved = self.guards
        self.guards = saved + [g for g in more if g is not None]
        try:
            yield
        finally:
            self.guards = saved

    def lines_of(self, source) -> list[str]:
        hit = self._split.get(id(source))
        if hit is None or hit[0] is not source:
            hit = self._split[id(source)] = (source, source.text.split("\n"))
        return hit[1]

    def site(self, e: ir.Expr) -> str:
        return f"{self.filename}:{e.span.line}:{e.span.column}"

    def spell(self, e: ir.Expr) -> str:
        """The source text of e (what error messages call the value)."""
        lines = self._lines
        if isinstance(e, ir.At):  # an argument of an inlined call: the caller's text
            lines = self.lines_of(e.source or self.own_source)
        sp = e.span
        if not sp.line or sp.line != sp.end_line or sp.line > len(lines):
            return "the value"
        return lines[sp.line - 1][sp.column - 1:sp.end_column - 1]

    def unsupported(self, what: str, e: ir.Expr | None = None) -> Unsupported:
        where = f" at {self.site(e)}" if e is not None and e.span.line else ""
        return Unsupported(f"{what}{where}")

    # ---- layouts --------------------------------------------------------------------------
    def union(self, *vals: Val) -> tuple[str, ...]:
        return union_axes(self.order, [v for v in vals if v.is_tensor])

    def align(self, v: Val, axes: tuple[str, ...], rank: int, exact: bool = False) -> object:
        """v's code with one dimension per axis of `axes` (size 1 where v does not vary) and
        `rank - v.rank` size-1 dimensions before its own per-sample ones (unless not exact
        and torch's broadcasting would add them anyway)."""
        if v.python or not v.is_tensor:
            return v.code
        extra = rank - v.rank
        if v.axes == axes and extra == 0:
            return v.code
        if not exact and not v.axes and extra >= 0:
            return v.code  # torch broadcasting lines up the trailing (per-sample) dimensions itself
        items = tuple(":" if a in v.axes else None for a in axes) + (None,) * extra
        return self.emit("view", v.code, items=items, hint="v")

    def expand(self, v: Val, axes: tuple[str, ...]) -> K.Ref:
        """v as a tensor varying with every axis of `axes` (broadcast, no copy)."""
        code = self.tensor(v)
        if not v.python and v.axes == axes:
            return code  # (a value varies with each of its axes at full size already)
        code = self.align(Val(code, v.axes, v.rank, v.kind), axes, v.rank)
        sizes = tuple(self.sizes[a] for a in axes)
        return self.emit("expand_lead", code, sizes, v.rank, hint="v")

    def tensor(self, v: Val, kind: str | None = None) -> object:
        """v as a tensor (a Python number becomes one on the device; floats in the module's
        dtype), converted to `kind` when given ("float": the module's dtype)."""
        if v.python:
            if kind is None and v.kind == "int" and isinstance(v.code, K.Ref):
                # a Python number known only at run time (2^k with k < 0 is a float): its type decides
                return self.emit("number_tensor", v.code, self.dtype, hint="c")
            dtype = {"float": self.dtype, "int": "torch.int64", "bool": "torch.bool"}[kind or v.kind]
            return self.emit("constant", v.code, dtype=dtype, hint="c")
        kind = kind or v.kind
        if kind != v.kind and kind != "bool":
            return self.emit("to", v.code, dtype=self.dtype if kind == "float" else "torch.int64", hint="v")
        return v.code

    def as_float(self, v: Val) -> object:
        """v's code where a float is needed: Python numbers stay numbers, int tensors convert."""
        if v.python or v.kind == "float":
            return v.code
        return self.tensor(v, "float")

    # ---- the function -----------------------------------------------------------------------
    def kernel(self, name: str) -> K.Kernel:
        from kokoyi.compiler.batch import calls

        fn = self.fn
        params = []
        tensors, batched = [], []
        for pname, (desc, is_batched) in zip(fn.inputs, self.input_descs):
            code = K.Ref(self.ns.create(pname))
            params.append(code.name)
            self.env[pname] = calls.value_of_desc(desc, code, is_batched)
            if desc[0] == "tensor":
                tensors.append(code)
                if is_batched:
                    batched.append(code)
        for pname, desc in zip(fn.params, self.param_descs):
            code = K.Ref(self.ns.create(pname))
            params.append(code.name)
            self.env[pname] = calls.value_of_desc(desc, code, False)
        self.block.append(K.Assign("_dev", "device_of", tuple(tensors)))
        if batched:
            self.block.append(K.Assign("_B", "size", (batched[0], 0)))
            self.order.append(BATCH)
            self.sizes[BATCH] = K.Ref("_B")
        mark = len(self.block)
        try:
            values = self._outputs(self.ev(fn.body))
        except Unsupported as err:
            if not batched:
                raise
            del self.block[mark:]
            values = self._each_sample()
            self.batch_loop = str(err)
        codes, layouts = [], []
        for v in values:
            if v.python and not self.python_outputs:
                v = Val(self.tensor(v), (), 0, v.kind)
            codes.append(v.code)
            layouts.append(v)
        self.block.append(K.Return(tuple(codes), self.line))
        from kokoyi.compiler.batch.cleanup import cleanup
        from kokoyi.compiler.batch.fuse import fuse
        from kokoyi.compiler.batch.licm import hoist_invariants
        from kokoyi.compiler.batch.lstm import lstm_sequences
        from kokoyi.compiler.batch.project import project_inputs
        from kokoyi.compiler.batch.statics import keep_statics
        from kokoyi.compiler.batch.transposed import untranspose

        k = cleanup(K.Kernel(name, tuple(params), self.block, tuple(layouts), self.batch_loop))
        return keep_statics(cleanup(untranspose(lstm_sequences(project_inputs(fuse(
            dataclasses.replace(k, body=hoist_invariants(k.body))))))))

    def _outputs(self, out: Val) -> tuple:
        values = out.info if out.what == "tuple" else (out,)
        for v in values:
            if not v.is_tensor:
                raise self.unsupported("returning something other than numbers and tensors", self.fn.body)
        return values

    def _each_sample(self) -> tuple:
        """The body for one sample at a time, in a Python loop over the batch axis: what a
        batch runs where the pass cannot vectorise the function over it (every construct
        still has its kernel for one sample)."""
        self.order.remove(BATCH)
        b = K.Ref(self.ns.create("sample"))
        outer = dict(self.env)
        loop: list = []
        with self.into(loop):
            for name, v in outer.items():
                if v.is_tensor and not v.python and BATCH in v.axes:
                    self.env[name] = Val(self.emit("item", v.code, b, hint=name), (), v.rank, v.kind)
            values = self._outputs(self.ev(self.fn.body))
            lists = [K.Ref(self.ns.create("outputs")) for _ in values]
            for items, v in zip(lists, values):
                self.do("append", items, self.tensor(v))
        for items in lists:
            self.block.append(K.Assign(items.name, "new_list", ()))
        self.block.append(K.For(b.name, 0, K.Ref("_B"), loop, self.line, self.site(self.fn.body)))
        self.env = outer
        out = []
        for items, v in zip(lists, values):
            rank = 0 if v.python else v.rank
            code = self.emit("stack_states", items, 0, (K.Ref("_B"),), rank, v.kind == "float", self.dtype,
                             hint="v")
            out.append(Val(code, (BATCH,), rank, v.kind))
        return tuple(out)

    # ---- expressions --------------------------------------------------------------------------
    def ev(self, e: ir.Expr) -> Val:
        line = e.span.line
        if line:
            saved, self.line = self.line, line
        try:
            if self.hoists:
                from kokoyi.compiler.batch.hoist import try_hoist

                out = try_hoist(self, e)
                if out is not None:
                    return out
            method = getattr(self, "e_" + type(e).__name__, None)
            if method is None:
                raise self.unsupported(f"the IR node {type(e).__name__}", e)
            return method(e)
        finally:
            if line:
                self.line = saved

    def e_Lit(self, e: ir.Lit) -> Val:
        kind = "bool" if isinstance(e.value, bool) else "int" if isinstance(e.value, int) else "float"
        return Val(e.value, kind=kind, python=True)

    def e_Var(self, e: ir.Var) -> Val:
        v = self.env[e.name]
        if self.hoists and self.hoists[-1].vector:
            v = self.hoists[-1].translate(self, v)
        if self.row_masks or self.loop_masks:
            from kokoyi.compiler.batch import gradients

            return gradients.read(self, v)
        return v

    def e_Global(self, e: ir.Global) -> Val:
        from kokoyi.compiler.batch import calls

        return calls.global_value(self, e)

    def e_Iota(self, e: ir.Iota) -> Val:
        return self.iotas[e.axis.name]

    def e_Let(self, e: ir.Let) -> Val:
        saved = self.env.get(e.name)
        start = len(self.block)
        value = self.ev(e.value)
        self.env[e.name] = self._named(value, e.name, start)
        try:
            return self.ev(e.body)
        finally:
            if saved is not None:
                self.env[e.name] = saved

    def _named(self, v: Val, name: str, start: int) -> Val:
        """v, its temporary renamed after the let that binds it when the let's value made it
        (generated code and tracebacks then show `b = a @ y`, not `v_1 = ...`)."""
        if not (isinstance(v.code, K.Ref) and len(self.block) > start):
            return v
        last = self.block[-1]
        if not (isinstance(last, K.Assign) and last.out == v.code.name):
            return v
        old, last.out = last.out, self.ns.create(name)
        for h in self.hoists:
            h.rename(old, last.out)
        if old in self.stacked:
            self.stacked[last.out] = self.stacked.pop(old)
        return Val(K.Ref(last.out), v.axes, v.rank, v.kind, v.python, v.what, v.info)

    def e_Tuple(self, e: ir.Tuple) -> Val:
        return Val(None, what="tuple", info=tuple(self.ev(i) for i in e.items))

    def e_Lambda(self, e: ir.Lambda) -> Val:
        return Val(None, what="lambda", info=(e, dict(self.env)))

    def e_Prim(self, e: ir.Prim) -> Val:
        from kokoyi.compiler.batch.rules import RULES


        rule = RULES.get(e.op)
        if rule is None:
            raise self.unsupported(f"the primitive {e.op}", e)
        if e.op == "stop_grad" and isinstance(e.args[0], ir.Apply):
            self.no_grad += 1  # no gradient flows into the call at all: it need not record one
            try:
                return rule(self, e, [self.ev(e.args[0])])
            finally:
                self.no_grad -= 1
        return rule(self, e, [self.ev(a) for a in e.args])

    def e_At(self, e: ir.At) -> Val:
        saved = self.source, self.filename, self._lines
        source = e.source if e.source is not None else self.own_source
        self.source, self.filename, self._lines = source, source.filename, self.lines_of(source)
        try:
            return self.ev(e.body)
        finally:
            self.source, self.filename, self._lines = saved

    def e_Fast(self, e: ir.Fast) -> Val:
        from kokoyi.compiler.batch.fast import FAST_RULES

        rule = FAST_RULES.get(e.op)
        out = None if rule is None else rule(self, e)
        return self.ev(e.original) if out is None else out

    def e_Take(self, e: ir.Take) -> Val:
        from kokoyi.compiler.batch import indexing

        return indexing.take(self, e)

    def e_Select(self, e: ir.Select) -> Val:
        from kokoyi.compiler.batch import control

        return control.select(self, e)

    def e_Recur(self, e: ir.Recur) -> Val:
        from kokoyi.compiler.batch import sequences

        return sequences.recurrence(self, e)

    def e_RecurGroup(self, e: ir.RecurGroup) -> Val:
        from kokoyi.compiler.batch import sequences

        return sequences.group(self, e)

    def e_Apply(self, e: ir.Apply) -> Val:
        from kokoyi.compiler.batch import calls

        return calls.apply(self, e)

    def e_Reduce(self, e: ir.Reduce) -> Val:
        from kokoyi.compiler.batch import loops

        return loops.reduce(self, e)

    def e_Build(self, e: ir.Build) -> Val:
        from kokoyi.compiler.batch import loops

        return loops.build(self, e)


def batch_function(fn: ir.Function, inputs: tuple, params: tuple, name: str, **options) -> K.Kernel:
    """The kernel of `fn` for one call signature (see Batcher)."""
    return Batcher(fn, inputs, params, **options).kernel(name)
