"""Call-time specialisation: loop-free, batch-aware Python for one call signature.

When a module is called, its inputs fix every rank, so this generator can emit code that
works on the whole batch at once instead of one sample at a time:

* each value has a layout: `[batch axis] [loop axes ...] [per-sample axes ...]`, described
  by a `Value` (per-sample rank, batched or not, number of loop axes);
* an index variable of a set-builder or big operator becomes a broadcast `arange` on its own
  loop axis; bounds that depend on outer indices become masks; reductions reduce that axis;
  a set-builder's loop axis simply becomes its first per-sample axis;
* indexing by a loop variable becomes `narrow` when it walks the whole axis, otherwise a
  gather (`kk.take`), clamped where a `cases` row may not apply;
* discounted suffix sums (`\\sum_{i=0}^{T-1-t} \\gamma^i r[t+i]` and friends) become an O(T)
  scan (kk.discounted_window); a population standard deviation becomes one `std`, and
  standardising by it, `(x - mean(x)) / std(x)`, one `std_mean` (kk.standardize);
* recurrences stay one loop over the sequence axis, batched over everything else.

Anything it cannot express raises Unsupported; the runtime then maps the per-sample code
over the batch with torch.func.vmap and warns, naming the construct.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from kokoyi.compiler import ast as A
from kokoyi.compiler import builtins as B
from kokoyi.compiler import symbols as S
from kokoyi.compiler.codegen.namespace import Namespace
from kokoyi.compiler.codegen.python import Emitter, is_literal, is_static, safe_comment
from kokoyi.compiler.passes.ranks import is_cdot
from kokoyi.compiler.spelling import spell
from kokoyi.errors import Source


class Unsupported(Exception):
    """A construct the specialiser cannot vectorise; the runtime falls back to vmap."""

    def __init__(self, what: str, node: A.Node | None = None, source: Source | None = None):
        where = f" at {source.filename}:{node.span.line}:{node.span.column}" if node is not None and source else ""
        super().__init__(f"{what}{where}")


@dataclass(frozen=True)
class Value:
    """The layout of a value in specialised code."""

    rank: int = 0  # per-sample rank
    batched: bool = False  # has the leading batch axis
    depth: int = 0  # number of loop axes after the batch axis
    python: bool = False  # a Python number or bool, not a tensor
    integer: bool = False
    kind: str = "tensor"  # tensor, module, kokoyi, list, function, builtin
    info: object = None  # module descriptor, list of element descriptors, function symbol...

    @property
    def lead(self) -> int:
        return int(self.batched) + self.depth


NUMBER = Value(python=True)
INT = Value(python=True, integer=True)

# torch layers that accept any number of leading axes and act on the trailing ones,
# with the change of per-sample rank they make.
TRANSPARENT_LAYERS = {
    "Linear": 0, "Bilinear": 0, "LayerNorm": 0, "Embedding": 1, "ReLU": 0, "Tanh": 0, "Sigmoid": 0,
    "GELU": 0, "Softplus": 0, "LeakyReLU": 0, "ELU": 0, "Dropout": 0, "Identity": 0, "Softmax": 0,
    "LogSoftmax": 0, "SiLU": 0,
}
# Element-wise and last-axis built-ins called straight on float tensors (no conversions).
DIRECT_FLOAT = {
    "exp": "torch.exp({})", "log": "torch.log({})", "sin": "torch.sin({})", "cos": "torch.cos({})",
    "tan": "torch.tan({})", "sinh": "torch.sinh({})", "cosh": "torch.cosh({})", "tanh": "torch.tanh({})",
    "relu": "torch.relu({})", "sigmoid": "torch.sigmoid({})", "softplus": "torch.nn.functional.softplus({})",
    "gelu": "torch.nn.functional.gelu({})", "softmax": "torch.softmax({}, -1)",
    "log_softmax": "torch.log_softmax({}, -1)", "abs": "torch.abs({})", "sign": "torch.sign({})",
    "sqrt": "torch.sqrt({})", "stop_grad": "{}.detach()",
}
# Convolutions take an optional batch axis in front of (C, ...) only.
CONV_LAYERS = {"Conv1d": 2, "Conv2d": 3, "Conv3d": 4, "ConvTranspose1d": 2, "ConvTranspose2d": 3}
# Recurrent cells: cell(x, h) on per-sample vectors; batched, every leading axis is flattened.
CELL_LAYERS = {"RNNCell", "GRUCell"}


def value_of(desc: tuple, batched: bool = False, rank: int | None = None) -> Value:
    kind = desc[0]
    if kind == "tensor":
        return Value(rank=desc[1] if rank is None else rank, batched=batched, integer=desc[2])
    if kind == "number":
        return Value(python=True, integer=desc[1])
    if kind == "list":
        return Value(kind="list", info=desc[1:])
    if kind in ("kokoyi", "layer", "sequential"):
        return Value(kind="module", info=desc)
    raise Unsupported(f"a parameter of type {desc[1] if len(desc) > 1 else kind}")


class Specializer:
    """Generates one specialised function for a module and a call signature."""

    def __init__(self, module: A.Module, source: Source, inputs: tuple, params: tuple,
                 globals_info: dict, callee_outputs, dtype: str = "torch.float32") -> None:
        self.module = module
        # The module's one floating dtype (LANGUAGE.md 6a): constants made tensors here take it.
        self.dtype = dtype
        self.source = source
        self.input_descs = inputs  # per input: (desc, batched)
        self.param_descs = params
        self.globals_info = globals_info  # key -> (Python name, description, Symbol) of top-level definitions
        self.callee_outputs = callee_outputs  # (kokoyi desc, arg values) -> tuple[Value]
        self.out = Emitter()
        self.ns = Namespace({info[0] for info in globals_info.values()} | {"_dev", "_B"})
        self.names: dict[int, str] = {}
        self.values: dict[int, Value] = {}
        self.depth = 0
        self.loops: list[dict] = []  # per loop depth: {"n": name, "mask": name or None}
        self.rec: dict[int, tuple[str, str]] = {}
        # Where the code being generated applies: None (everywhere), or (name, Value) of a bool
        # tensor (inside a cases row with a tensor condition, or a loop whose bounds depend on
        # another index). Reads are checked only where it holds; elsewhere their values are
        # discarded, so an out-of-range index there is clamped, never an error.
        self.guard: tuple[str, Value] | None = None
        # Inside a cases row with a tensor condition whose value may have undefined derivatives:
        # (name, Value) of where the row applies, element by element (see e_Cases).
        self.row_mask: tuple[str, Value] | None = None
        # Ranges whose body is being generated: (index symbol, Python test that the range is not
        # empty). A read that does not depend on that index is made even when the range is
        # empty, so it may not fail there (LANGUAGE.md 5: an empty range reads nothing).
        self.live_ranges: list[tuple[object, str]] = []
        self.specialised_functions: dict[tuple, str] = {}
        self.pending: list[str] = []  # lines to emit before the current statement
        self.lazy: dict[int, str] = {}  # symbol id -> line that defines it, emitted on first use
        self.defs: dict[int, object] = {}  # symbol id -> the expression it was defined as
        self.functions: dict[int, A.Definition] = {}  # symbol id -> a function definition
        self._note_definitions(module)
        self.index_sites: list = []  # [source line, spelling, file:line:col, leading axes]
        self.indent = 1

    # ---- helpers ----
    def _note_definitions(self, node) -> None:
        """Record every definition under node, so that pattern matchers can look through names
        (a `\\where` binding, a local function) before their code is generated."""
        for n in A.walk(node):
            if isinstance(n, A.Definition):
                if n.params is None:
                    self.defs[id(n.target.symbol)] = n.value
                else:
                    self.functions[id(n.target.symbol)] = n

    def unsupported(self, what: str, node: A.Node | None = None) -> Unsupported:
        return Unsupported(what, node, self.source)

    def where(self, node: A.Node) -> str:
        return repr(f"{self.source.filename}:{node.span.line}:{node.span.column}")

    def bind(self, sym, value: Value, hint: str | None = None) -> str:
        name = self.ns.create(hint or sym.hint)
        self.names[id(sym)] = name
        self.values[id(sym)] = value
        return name

    def temp(self, hint: str, code: str) -> str:
        name = self.ns.create(hint)
        self.pending.append(f"{name} = {code}")
        return name

    def flush(self) -> None:
        for line in self.pending:
            self.out.emit(self.indent, line)
        self.pending = []

    def comment(self, node: A.Node) -> None:
        span = node.span
        text = " ".join(self.source.line_text(i).strip() for i in range(span.line, span.end_line + 1))
        self.out.source_line = span.line
        self.out.emit(self.indent, f"# {safe_comment(self.source.filename, 80)}:{span.line}: {safe_comment(text)}")

    # ---- layout ----
    def lift(self, code: str, v: Value, depth: int, rank: int | None = None) -> str:
        """code reshaped from layout v to `depth` loop axes and `rank` per-sample axes."""
        if v.python:
            return code
        rank = v.rank if rank is None else rank
        k = (depth - v.depth) + (rank - v.rank)
        if k <= 0:
            return code
        pos = v.lead
        if k == 1:  # unsqueeze is several times cheaper than indexing with None
            return f"{code}.unsqueeze({pos})"
        return f"{code}[{':, ' * pos}{', '.join(['None'] * k)}]"

    def restrict(self, code: str, v: Value):
        """The current guard and-ed with the bool tensor (or Python bool) code, as a new guard.

        A condition on per-sample elements (`x > 0` of a vector) guards the reads of its row for
        the sample as a whole (where any element applies): inside the row, a read has no element
        of its own to line up with."""
        if v.python:
            code, v = f"kk.as_tensor({code}, _dev, torch.bool)", Value(integer=False)
        elif v.rank:
            code, v = f"kk.any_trailing({code}, {v.rank})", replace(v, rank=0)
        if self.guard is None:
            return code, v
        (a, b), joined = self._broadcast([self.guard, (code, v)])
        return f"({a} & {b})", replace(joined, rank=0, integer=False)

    def guard_for(self, depth: int, rank: int) -> str:
        """The guard as a mask for a read whose index has `depth` loop axes and `rank` more
        (computed where a read needs it: a row without guarded reads costs nothing)."""
        if self.guard is None:
            return "None"
        code, v = self.guard
        return self.lift(self.temp("applies", code), v, max(depth, v.depth), rank)

    def masked_gradient(self, code: str, v: Value) -> str:
        """code, with its gradient kept to where the current cases row applies (row_mask), when
        the mask lines up with its elements."""
        if self.row_mask is None or v.python or v.kind != "tensor" or v.integer:
            return code
        mask, mv = self.row_mask
        if mv.rank != v.rank or mv.batched > v.batched or mv.depth > v.depth:
            return code
        lifted = mask if mv.lead == 0 else self.lift(mask, mv, v.depth)
        if mv.batched != v.batched and mv.lead:
            return code
        return f"kk.gradient_where({code}, {lifted})"

    def constant_tensor(self, code: str, v: Value, force_float: bool = False) -> str:
        """A Python number as a tensor on the inputs' device: a float (or, force_float, any
        number) in the module's floating dtype, an integer as an integer."""
        if v.integer and not force_float:
            return f"kk.as_tensor({code}, _dev)"
        return f"kk.as_tensor({code}, _dev, {self.dtype})"

    def at(self, v: Value, depth: int, rank: int | None = None) -> Value:
        if v.python:
            return v
        return replace(v, depth=depth, rank=v.rank if rank is None else rank)

    # ---- entry ----
    def generate(self, name: str) -> tuple[str, dict, tuple]:
        mod = self.module
        args = []
        for decl, (desc, batched) in zip(mod.inputs, self.input_descs):
            args.append(self.bind(decl.name.symbol, value_of(desc, batched)))
        for decl, desc in zip(mod.params, self.param_descs):
            args.append(self.bind(decl.name.symbol, value_of(desc)))
        self.out.emit(0, f"def {name}({', '.join(args)}):")
        tensors = [self.names[id(d.name.symbol)] for d, (desc, _) in zip(mod.inputs, self.input_descs)
                   if desc[0] == "tensor"]
        batched = [self.names[id(d.name.symbol)] for d, (desc, b) in zip(mod.inputs, self.input_descs) if b]
        self.out.emit(1, f"_dev = kk.device_of({', '.join(tensors)}{',' if len(tensors) == 1 else ''})")
        if batched:
            self.out.emit(1, f"_B = {batched[0]}.shape[0]")
        for decl in mod.inputs + mod.params:
            if decl.annotation is None or self.values[id(decl.name.symbol)].kind != "tensor" \
                    or self.values[id(decl.name.symbol)].python:
                continue
            v = self.values[id(decl.name.symbol)]
            for axis, dim in enumerate(decl.annotation.dims):
                if isinstance(dim, A.Ref) and id(dim.symbol) not in self.names:
                    dname = self.bind(dim.symbol, INT)
                    self.out.emit(1, f"{dname} = {self.names[id(decl.name.symbol)]}.shape[{v.lead + axis}]")
        outputs = self.body(mod.body, module_outputs=True)
        # Blank the device and batch-size lines when nothing uses them (blank, not removed,
        # so the line map stays right).
        for name in ("_dev", "_B"):
            defining = [i for i, line in enumerate(self.out.lines) if line.startswith(f"    {name} = ")]
            used = any(name in line for i, line in enumerate(self.out.lines) if i not in defining)
            if not used:
                for i in defining:
                    self.out.lines[i] = ""
        code = "\n".join(self.out.lines) + "\n"
        return code, self.out.line_map, outputs

    def body(self, stmts, module_outputs: bool = False) -> tuple[Value, ...]:
        """The statements; module_outputs: the returned values are a module's outputs, so a
        Python number among them becomes a tensor (of the module's floating dtype if a float)."""
        outputs = ()
        for stmt in stmts:
            self.comment(stmt)
            if isinstance(stmt, A.Return):
                self.where_bindings(stmt.where)
                parts = [self.expr(v) for v in stmt.values]
                self.flush()
                outputs = tuple(v for _, v in parts)
                if any(v.kind != "tensor" for v in outputs):
                    raise self.unsupported("returning something other than numbers and tensors", stmt)
                codes = [c for c, _ in parts]
                if module_outputs:
                    codes = [self.constant_tensor(c, v) if v.python else c for c, v in parts]
                    outputs = tuple(Value(integer=v.integer) if v.python else v for v in outputs)
                if len(codes) == 1:
                    self.out.emit(self.indent, f"return {codes[0]}")
                else:
                    self.out.emit(self.indent, f"return ({', '.join(codes)})")
            else:
                self.definition(stmt)
        return outputs

    def where_bindings(self, bindings) -> None:
        for b in bindings:
            self.definition(b)

    def definition(self, d: A.Definition) -> None:
        sym = d.target.symbol
        self.defs[id(sym)] = d.value
        if d.params is not None:
            # Local functions are specialised at each call signature (see call_user).
            self.values[id(sym)] = Value(kind="function", info=d)
            return
        self.where_bindings(d.where)
        if sym.extra.get("recurrence"):
            self.recurrence(sym, A.strip(d.value))
            return
        code, v = self.expr(d.value)
        self.flush()
        if v.kind in ("function", "builtin", "module", "list"):
            self.values[id(sym)] = v
            self.names[id(sym)] = code
            return
        name = self.bind(sym, v)
        self.out.emit(self.indent, f"{name} = {code}")

    def recurrence(self, sym, builder: A.SetBuilder) -> None:
        bound = builder.bounds[0]
        lo, lo_v = self.expr(bound.lower)
        hi, hi_v = self.expr(bound.upper)
        if not (lo_v.python and hi_v.python):
            raise self.unsupported("a recurrence whose bounds are tensors", builder)
        elements = self.ns.create(f"{sym.hint}_elements")
        first = self.ns.create(f"{sym.hint}_first")
        self.flush()
        self.out.emit(self.indent, f"{elements} = []")
        self.out.emit(self.indent, f"{first} = {lo}")
        var = self.bind(bound.var.symbol, INT)
        element = self._recurrence_element(builder, sym)
        # The base cases give a first guess; an element built from batched values is batched.
        for _ in range(3):
            self.rec[id(sym)] = (elements, first, element)
            trial = self._scratch(lambda: self.expr(builder.element)[1])
            settled = Value(rank=max(trial.rank, element.rank), batched=trial.batched or element.batched,
                            depth=self.depth, integer=trial.integer and element.integer)
            if settled == element:
                break
            element = settled
        self.values[id(sym)] = Value(rank=element.rank + 1, batched=element.batched, depth=self.depth,
                                     integer=element.integer)
        self.rec[id(sym)] = (elements, first, element)
        self.out.emit(self.indent, f"for {var} in kk.recurrence_steps({first}, {hi} + 1, {self.where(builder)}):")
        self.indent += 1
        code, v = self.expr(builder.element)
        if v.rank != element.rank or (v.batched and not element.batched):
            raise self.unsupported("a recurrence whose elements change layout", builder)
        if element.batched and not v.batched:
            code = f"kk.expand_batch({code}, _B)"
        self.flush()
        self.out.emit(self.indent, f"{elements}.append({code})")
        self.indent -= 1
        del self.rec[id(sym)]
        name = self.bind(sym, self.values[id(sym)])
        self.out.emit(self.indent, f"{name} = kk.stack_axis({elements}, {element.lead}, _dev)")

    def _scratch(self, fn):
        """Run fn while generating into a throw-away emitter (to learn a layout)."""
        # Everything fn may emit or remember about emitted code is put back afterwards: a
        # function specialised in the scratch emitter must be emitted again for real.
        saved = (self.out, self.pending, self.ns, dict(self.lazy), dict(self.specialised_functions),
                 len(self.index_sites))
        self.out, self.pending, self.ns = Emitter(), [], Namespace(self.ns._used)
        try:
            return fn()
        finally:
            self.out, self.pending, self.ns, self.lazy, self.specialised_functions, sites = saved
            del self.index_sites[sites:]

    def _recurrence_element(self, builder: A.SetBuilder, sym) -> Value:
        """The element layout given by the rows of its cases that do not read the sequence."""
        element = A.strip(builder.element)
        rows = element.rows if isinstance(element, A.Cases) else (A.CaseRow(element.span, element, None),)
        found = [self._scratch(lambda row=row: self.expr(row.value)[1]) for row in rows
                 if not any(isinstance(n, A.Ref) and n.symbol is sym for n in A.walk(row.value))]
        if not found:
            raise self.unsupported("a recurrence without a base case", builder)
        tensors = [v for v in found if not v.python]
        integer = all(v.integer for v in found)
        if not tensors:
            return Value(depth=self.depth, integer=integer)
        return Value(rank=max(v.rank for v in tensors), batched=any(v.batched for v in tensors), depth=self.depth,
                     integer=integer)

    # ---- expressions ----
    def expr(self, e) -> tuple[str, Value]:
        method = getattr(self, "e_" + type(e).__name__, None)
        if method is None:
            raise self.unsupported(f"`{type(e).__name__}`", e)
        return method(e)

    def e_Paren(self, e):
        code, v = self.expr(e.expr)
        return f"({code})", v

    e_Group = e_Paren

    def e_Num(self, e):
        return repr(e.value), Value(python=True, integer=isinstance(e.value, int))

    def e_Constant(self, e):
        return B.CONSTANTS[e.key], NUMBER

    def e_Ref(self, e):
        sym = e.symbol
        if id(sym) in self.lazy:
            self.pending.append(self.lazy.pop(id(sym)))
        if id(sym) in self.values:
            v = self.values[id(sym)]
            if v.kind == "function":
                return "", v
            return self.masked_gradient(self.names[id(sym)], v), v
        if sym.key in self.globals_info:
            name, desc, current = self.globals_info[sym.key]
            current = current or sym  # the definition in force now (late binding)
            if current.kind == S.FUNCTION:
                return name, Value(kind="function", info=current.extra.get("item"))
            if current.kind == S.MODULE:
                raise self.unsupported(f"module `{sym.key}` used as a value", e)
            return name, value_of(desc)
        raise self.unsupported(f"the name `{sym.key}`", e)

    def e_Builtin(self, e):
        return f"kk.{B.FUNCTIONS[e.name].runtime}", Value(kind="builtin", info=e.name)

    def e_Unary(self, e):
        code, v = self.expr(e.operand)
        if e.op == "not":
            return f"kk.logical_not({code})", v
        return f"({e.op}{code})", v

    def to_float(self, code: str, v: Value) -> str:
        """code as a float of the module's dtype, where it is an integer tensor (torch would
        make it its default dtype, which may not be the module's)."""
        return f"{code}.to({self.dtype})" if v.integer and not v.python and v.kind == "tensor" else code

    def _broadcast(self, parts, floating: bool = False):
        """Lift operands to a common layout: (codes, result Value). Where the result is a float
        (floating: whatever the operands) and no operand is a float tensor, the integer tensors
        become the module's dtype first."""
        result_float = floating or not all(v.integer for _, v in parts)
        if result_float and not any(not v.python and not v.integer and v.kind == "tensor" for _, v in parts):
            parts = [(self.to_float(c, v), replace(v, integer=False) if not v.python else v) for c, v in parts]
        vals = [v for _, v in parts]
        tensors = [v for v in vals if not v.python]
        for v in vals:
            if v.kind != "tensor":
                raise self.unsupported(f"a {v.kind} used as a number")
        if not tensors:
            return [c for c, _ in parts], Value(python=True, integer=all(v.integer for v in vals))
        depth = max(v.depth for v in tensors)
        rank = max(v.rank for v in tensors)
        batched = any(v.batched for v in tensors)
        codes = []
        for code, v in parts:
            if v.python or v.lead == 0:
                # Only per-sample axes: broadcasting from the right already lines them up.
                codes.append(code)
            else:
                codes.append(self.lift(code, v, depth, rank))
        return codes, Value(rank=rank, batched=batched, depth=depth, integer=all(v.integer for v in vals))

    def e_Binary(self, e):
        if e.op == "/":
            z = self._standardized(e.left, e.right)
            if z is not None:
                return z
        left, right = self.expr(e.left), self.expr(e.right)
        if e.op == "@":
            return self.matmul(e, left, right)
        if e.op in ("and", "or"):
            (a, b), v = self._broadcast([left, right])
            return f"kk.logical_{e.op}({a}, {b})", replace(v, integer=False)
        (a, b), v = self._broadcast([left, right], floating=e.op == "/")
        return f"({a} {e.op} {b})", replace(v, integer=False) if e.op == "/" else v

    def e_Juxtapose(self, e):
        (a, b), v = self._broadcast([self.expr(e.left), self.expr(e.right)])
        return f"({a} * {b})", v

    def e_Compare(self, e):
        (a, b), v = self._broadcast([self.expr(e.left), self.expr(e.right)])
        return f"({a} {e.op} {b})", replace(v, integer=False)

    def e_Power(self, e):
        base, exponent = self.expr(e.base), self.expr(e.exponent)
        (a, b), v = self._broadcast([base, exponent])
        # An integer to a negative power is a float (LANGUAGE.md 6a): i^{-1} is 1/i.
        literal = _int_literal(e.exponent)
        integer = v.integer and (literal is None or literal >= 0)
        if v.python:  # Python numbers: kk.power keeps integer towers from running forever
            return f"kk.power({a}, {b})", replace(v, integer=integer)
        if base[1].integer and exponent[1].integer:
            return f"kk.int_power({a}, {b}, {self.dtype})", replace(v, integer=integer)
        return f"({a} ** {b})", v

    def e_Frac(self, e):
        z = self._standardized(e.numerator, e.denominator)
        if z is not None:
            return z
        (a, b), v = self._broadcast([self.expr(e.numerator), self.expr(e.denominator)], floating=True)
        return f"({a} / {b})", replace(v, integer=False)

    def e_Sqrt(self, e):
        std = self._population_std(e)
        if std is not None:
            return std
        code, v = self.expr(e.radicand)
        if e.degree is None:
            if not v.python:
                return f"torch.sqrt({self.to_float(code, v)})", replace(v, integer=False)
            return f"kk.sqrt({code})", replace(v, integer=False)
        (a, b), v = self._broadcast([(code, v), self.expr(e.degree)], floating=True)
        return f"kk.root({a}, {b})", replace(v, integer=False)

    def e_Rounding(self, e):
        code, v = self.expr(e.operand)
        # Rounding gives integers (they can index): a Python int, or an integer tensor.
        return f"kk.{e.kind}({code})", replace(v, integer=True)

    def e_Transpose(self, e):
        code, v = self.expr(e.operand)
        return (f"{code}.transpose(-1, -2)" if v.rank >= 2 and not v.python else code), v

    def e_Bars(self, e):
        code, v = self.expr(e.operand)
        if v.kind == "list":
            return f"len({code})", INT
        if v.python or v.rank == 0:
            return (f"abs({code})" if v.python else f"torch.abs({code})"), v
        return f"{code}.shape[{v.lead}]", INT

    def e_Norm(self, e):
        code, v = self.expr(e.operand)
        order = {None: 2, "1": 1, "2": 2, "inf": "math.inf"}[e.order]
        if v.python:
            return f"abs({code})", replace(v, integer=False) if not v.integer else v
        dims = self._per_sample_dims(v)
        if not dims:
            return f"torch.abs({code})", v
        if v.integer:  # a norm is a float (of the module's dtype), also of integers
            code = f"{code}.to({self.dtype})"
        return f"torch.linalg.vector_norm({code}, ord={order}, dim={dims})", replace(v, rank=0, integer=False)

    def _per_sample_dims(self, v: Value) -> str:
        if v.rank == 0:
            return ""
        return "(" + ", ".join(str(-i) for i in range(v.rank, 0, -1)) + ("," if v.rank == 1 else "") + ")"

    def e_Indicator(self, e):
        code, v = self.expr(e.condition)
        return f"kk.indicator({code}, {self.dtype})", replace(v, integer=False)

    def e_Cases(self, e):
        rows = list(e.rows)
        # Conditions that are Python values here (on recurrence indices, dimensions, constants,
        # also top-level ones) let Python pick the row; tensor conditions select element-wise.
        static = all(r.condition is None or self._scratch(lambda r=r: self.expr(r.condition)[1]).python
                     for r in rows)
        if static:
            return self._static_cases(e, rows)
        saved, saved_mask = self.guard, self.row_mask
        try:
            parts, conds = [], []
            rest = None  # where no earlier row applies: (code, Value), None = everywhere
            rest_elements = None  # the same, element by element (not reduced to the sample)
            for r in rows:
                self.guard = saved if rest is None else rest
                cond = None if r.condition is None else self.expr(r.condition)
                if cond is not None and not cond[1].python:  # computed once: the select and guards read it
                    cond = (self.temp("condition", cond[0]), cond[1])
                conds.append(cond)
                if cond is not None:
                    self.guard = self.restrict(*self._and(rest, cond))
                applies = self._and(rest_elements, cond) if cond is not None else rest_elements
                if applies is not None and _may_have_undefined_derivative(r.value) and _elementwise(r.value):
                    # No gradient flows through the elements a row does not supply, also where
                    # its local derivative there is undefined (`\sqrt{x}` at x < 0).
                    code, mask_v = applies
                    self.row_mask = (self.temp("row_applies", code), mask_v)
                parts.append(self.expr(r.value))
                self.row_mask = saved_mask
                if cond is not None:
                    self.guard = saved
                    negated = (f"kk.logical_not({cond[0]})", cond[1])
                    rest = self.restrict(*self._and(rest, negated))
                    rest_elements = self._and(rest_elements, negated)
        finally:
            self.guard, self.row_mask = saved, saved_mask
        if rows[-1].condition is not None:
            parts.append(("math.nan", NUMBER))
            conds.append(None)
        all_parts = parts + [c for c in conds if c is not None]
        codes, v = self._broadcast(all_parts)
        values, cond_codes = codes[: len(parts)], codes[len(parts):]
        values = [self.constant_tensor(c, pv) if pv.python and not pv.integer else c
                  for c, (_, pv) in zip(values, parts)]
        text = values[-1]
        ci = len(cond_codes) - 1
        for i in range(len(parts) - 2, -1, -1):
            text = f"kk.where({cond_codes[ci]}, {values[i]}, {text})"
            ci -= 1
        value_v = self._broadcast(parts)[1]
        if rows[-1].condition is not None and all(is_static(r.condition) for r in rows):
            # Conditions on indices only: per sample they are decided exactly, and no row
            # applying is a run-time error there; keep it one here.
            covered = " | ".join(f"({c})" for c in cond_codes)
            text = f"kk.require_case({text}, {covered}, {self.where(e)})"
        return text, replace(v, rank=v.rank, integer=value_v.integer)

    def _and(self, a, b):
        """a & b of two (code, Value) conditions, a possibly None (true)."""
        if a is None:
            return b
        (x, y), v = self._broadcast([a, b])
        return f"kk.logical_and({x}, {y})", replace(v, integer=False)

    def _static_cases(self, e, rows):
        # Python picks the row (`a if c else b`): only the chosen row, and only the conditions
        # up to it, may run, so whatever lines a row or condition needs stay inside it (_lazy).
        parts = [self._lazy(lambda r=r: self.expr(r.value)) for r in rows]
        conds = [self._lazy(lambda r=r: self.expr(r.condition))[0] if r.condition is not None else None
                 for r in rows]
        vals = [v for _, v in parts]
        tensors = [v for v in vals if not v.python]
        mixed = any(v.rank != tensors[0].rank or v.batched != tensors[0].batched or v.depth != tensors[0].depth
                    for v in tensors) or len(tensors) < len(vals) if tensors else False
        if mixed:
            _, v = self._broadcast(parts)
            # Alternatives, not operands: every tensor row gets the join's loop axes (one without
            # any would not line up by right-aligned broadcasting later).
            codes = [self.lift(c, pv, v.depth) if not pv.python and pv.depth < v.depth else c for c, pv in parts]
            vals = [replace(pv, depth=v.depth) if not pv.python else pv for pv in vals]
            if len(tensors) < len(vals):
                # A Python number row beside tensor rows (`0.5` beside `x[r]`): a tensor of the
                # rows' layout, since nothing broadcasts the chosen row later.
                if v.rank:
                    raise self.unsupported("a cases whose rows are a number and a non-scalar tensor", e)
                ones = "(" + "1, " * v.depth + ")"  # (the batch axis, if any, is added below)
                floating = not v.integer  # one float row makes every row a float
                codes = [f"{self.constant_tensor(c, pv, force_float=floating)}.reshape({ones})" if pv.python
                         else self.to_float(c, pv) if floating else c for c, pv in zip(codes, vals)]
                vals = [replace(v, integer=pv.integer, batched=False) if pv.python else pv for pv in vals]
            if v.batched:
                # The rows are alternatives, not operands of one operation: nothing broadcasts
                # them later, so a row without the batch axis gets it here (a recurrence reads
                # its elements back as batched).
                codes = [c if pv.batched else f"kk.expand_batch({c}, _B)" for c, pv in zip(codes, vals)]
        else:
            codes, v = [c for c, _ in parts], next((x for x in vals if not x.python), vals[0])
        if tensors and not all(pv.integer for pv in vals):  # one float row makes every row a float
            codes, v = [self.to_float(c, pv) for c, pv in zip(codes, vals)], replace(v, integer=False)
        if conds[-1] is None:
            text = codes[-1]
        elif all(is_static(r.condition) for r in rows):  # no row applies: an error for index conditions,
            text = f"kk.no_case({self.where(e)})"     # NaN for the others (choices.md#cases-without-otherwise)
        elif v.python:
            text, v = "math.nan", replace(v, integer=False)
        else:
            ones = "(" + "1, " * (v.depth + v.rank) + ")"
            text = f"kk.as_tensor(math.nan, _dev, {self.dtype}).reshape({ones})"
            text = f"kk.expand_batch({text}, _B)" if v.batched else text
            v = replace(v, integer=False)
        last = len(rows) - 1 if conds[-1] is None else len(rows)
        for i in range(last - 1, -1, -1):
            text = f"({codes[i]} if {conds[i]} else {text})"
        return text, v

    def _lazy(self, generate):
        """generate()'s (code, Value), evaluated only when the code is: if it needs lines before
        it (temporaries, first uses of index ranges), they go into a local function that the
        code calls, instead of running ahead of the expression that contains it."""
        saved_pending, saved_lazy = self.pending, dict(self.lazy)
        self.pending = []
        try:
            code, v = generate()
        finally:
            lines, self.pending = self.pending, saved_pending
        if not lines:
            return code, v
        for key, line in saved_lazy.items():  # first uses made inside count only inside
            self.lazy.setdefault(key, line)
        name = self.ns.create("lazy")
        self.pending.append(f"def {name}():")
        self.pending.extend(f"    {line}" for line in lines)
        self.pending.append(f"    return {code}")
        return f"{name}()", v

    def expr_is_python(self, e) -> bool:
        """Whether e is a Python value here (indices of recurrence loops, dimensions, literals)."""
        e = A.strip(e)
        match e:
            case A.Num():
                return True
            case A.Ref():
                v = self.values.get(id(e.symbol))
                return v is not None and v.python
            case A.Unary():
                return self.expr_is_python(e.operand)
            case A.Binary(op="+" | "-" | "*" | "and" | "or") | A.Compare():
                return self.expr_is_python(e.left) and self.expr_is_python(e.right)
        return False

    # ---- products ----
    def matmul(self, e, left, right):
        (a, va), (b, vb) = left, right
        if is_cdot(e) and (va.python or vb.python or va.rank == 0 or vb.rank == 0):
            (a, b), v = self._broadcast([left, right])
            return f"({a} * {b})", v
        if va.python or vb.python or va.rank == 0 or vb.rank == 0:
            raise self.unsupported("`@` with a scalar", e)
        depth = max(va.depth, vb.depth)
        batched = va.batched or vb.batched
        if va.integer != vb.integer:  # promote like the element-wise operators do
            a, b = (self.to_float(a, va), b) if va.integer else (a, self.to_float(b, vb))
        a = self.lift(a, va, depth) if va.depth < depth else a
        b = self.lift(b, vb, depth) if vb.depth < depth else b
        if (va.depth or vb.depth or batched) and (va.lead != vb.lead) and (va.rank > 2 or vb.rank > 2):
            raise self.unsupported("`@` of batched values of rank above 2", e)
        if va.rank == 1 and vb.rank == 1:
            return f"({a} * {b}).sum(-1)", Value(rank=0, batched=batched, depth=depth)
        if va.rank == 2 and vb.rank == 1:
            if not batched and not depth:
                return f"({a} @ {b})", Value(rank=1)
            return f"({a} @ {b}[..., None])[..., 0]", Value(rank=1, batched=batched, depth=depth)
        if va.rank == 1 and vb.rank == 2:
            if not batched and not depth:
                return f"({a} @ {b})", Value(rank=1)
            return f"({a}[..., None, :] @ {b})[..., 0, :]", Value(rank=1, batched=batched, depth=depth)
        rank = max(va.rank, vb.rank)
        if (va.batched or va.depth) and not (vb.batched or vb.depth) or (vb.batched or vb.depth) and not (va.batched or va.depth):
            return f"({a} @ {b})", Value(rank=rank, batched=batched, depth=depth)
        if va.rank != vb.rank:
            raise self.unsupported("`@` of batched values of different ranks", e)
        return f"({a} @ {b})", Value(rank=rank, batched=batched, depth=depth)

    # ---- calls ----
    def e_BuiltinCall(self, e):
        parts = [self.expr(a) for a in e.args]
        return self.builtin(e, e.name, parts)

    def builtin(self, e, name: str, parts):
        fn = B.FUNCTIONS[name]
        if fn.rank in ("same",) and len(parts) == 1:
            code, v = parts[0]
            if v.kind != "tensor":
                raise self.unsupported(f"`\\{name}` of a {v.kind}", e)
            if name in ("Softmax", "LogSoftmax") and (v.python or v.rank == 0):
                raise self.unsupported(f"`\\{name}` of a scalar", e)
            integer = v.integer and name in ("abs", "sign", "ReLU", "StopGrad")
            if not integer and not v.python and v.integer:  # a float function of integers
                code, v = self.to_float(code, v), replace(v, integer=False)
            if not v.python and not v.integer and fn.runtime in DIRECT_FLOAT:
                return DIRECT_FLOAT[fn.runtime].format(code), replace(v, integer=False)
            if v.python:  # kokoyi.runtime.ops keeps Python numbers Python numbers
                return f"kk.{fn.runtime}({code})", Value(python=True, integer=integer)
            return f"kk.{fn.runtime}({code})", replace(v, integer=integer)
        if fn.rank == "scalar" and len(parts) == 1:
            code, v = parts[0]
            if v.python:
                return f"kk.{fn.runtime}({self.constant_tensor(code, v, force_float=True)})", Value(integer=False)
            code, v = self.to_float(code, v), replace(v, integer=False)  # these reductions are floats
            direct = _direct_reduction(fn.runtime, code, v)
            if direct is not None:
                return direct, replace(v, rank=0, integer=False)
            return f"kk.reduce_trailing({code}, {fn.runtime!r}, {v.rank})", replace(v, rank=0, integer=False)
        if name in ("maximum", "minimum", "clip"):
            codes, v = self._broadcast(parts)
            if v.python:  # Python numbers stay Python numbers (a tensor would take torch's default dtype)
                x, *rest = codes
                python = {"maximum": f"max({', '.join(codes)})", "minimum": f"min({', '.join(codes)})"}
                return python.get(name, f"min(max({x}, {rest[0]}), {rest[-1]})"), v
            return f"kk.{fn.runtime}({', '.join(codes)})", v
        if name == "OneHot":
            (i, vi), (n, vn) = parts
            return f"kk.one_hot({i}, {n}, _dev, {self.dtype})", Value(rank=(0 if vi.python else vi.rank) + 1, batched=vi.batched,
                                                 depth=vi.depth)
        if name == "CrossEntropy":
            (z, vz), (y, vy) = parts
            z = self.to_float(z, vz)  # logits of integers are floats of the module's dtype
            if vz.rank != 1:
                raise self.unsupported("\\CrossEntropy of logits whose per-sample rank is not 1", e)
            depth = max(vz.depth, vy.depth)
            z = self.lift(z, vz, depth) if vz.depth < depth else z
            y = self.lift(y, vy, depth) if not vy.python and vy.depth < depth else y
            return f"kk.cross_entropy({z}, {y})", Value(batched=vz.batched or vy.batched, depth=depth)
        if name in ("MSE", "SmoothL1"):
            codes, v = self._broadcast(parts, floating=True)
            return f"kk.{fn.runtime}_trailing({codes[0]}, {codes[1]}, {v.rank})", replace(v, rank=0, integer=False)
        if name == "Concat":
            # A scalar joins as a one-element vector, like the per-sample \Concat.
            vectors = []
            for c, pv in parts:
                if pv.python:
                    c, pv = f"kk.as_vector({c}, {self.dtype})", Value(rank=1, integer=pv.integer)
                elif pv.rank == 0:
                    c, pv = f"{c}.unsqueeze(-1)", replace(pv, rank=1)
                vectors.append((c, pv))
            parts = vectors
            _, v = self._broadcast(parts)
            # Joined along a per-sample axis, every operand needs all the leading (loop) axes,
            # even one that has none: right-aligned broadcasting does not line them up here.
            codes = [self.lift(c, pv, v.depth) if pv.depth < v.depth else c for c, pv in parts]
            if v.batched:  # unbatched operands get the batch axis, so the leading axes line up
                codes = [c if p[1].python or p[1].batched else f"{c}[None]" for c, p in zip(codes, parts)]
            return f"kk.concat_axis([{', '.join(codes)}], {v.lead}, {'_B' if v.batched else 'None'})", v
        raise self.unsupported(f"`\\{name}` here", e)

    def e_Reduce(self, e):
        leaky = self._leaky_max(e)
        if leaky is not None:
            return leaky
        parts = [self.expr(a) for a in e.args]
        if len(parts) > 1:
            codes, v = self._broadcast(parts)
            if v.python:  # Python numbers stay Python numbers
                return f"{e.op}({', '.join(codes)})", v
            return f"kk.{e.op}imum({', '.join(codes)})", v
        code, v = parts[0]
        if v.python:
            return code, v
        runtime = B.REDUCTIONS[e.op][0]
        direct = _direct_reduction(runtime, code, v)
        if direct is not None:
            return direct, replace(v, rank=0)
        return f"kk.reduce_trailing({code}, {runtime!r}, {v.rank})", replace(v, rank=0,
                                                                             integer=v.integer or "arg" in e.op)

    def _leaky_max(self, e):
        """`\\max(a, c a)` with c a number: a leaky ReLU (kk.leaky_max), one op instead of a
        product and an element-wise maximum."""
        if e.op != "max" or len(e.args) != 2:
            return None
        for a, scaled in ((e.args[0], e.args[1]), (e.args[1], e.args[0])):
            a, scaled = A.strip(a), A.strip(scaled)
            if not (isinstance(a, A.Ref) and isinstance(scaled, A.Binary | A.Juxtapose)) or \
                    (isinstance(scaled, A.Binary) and scaled.op != "*"):
                continue
            for c, other in ((scaled.left, scaled.right), (scaled.right, scaled.left)):
                if _same_ref(other, a) and self.expr_is_python(c):
                    code, v = self.expr(a)
                    if v.python or v.kind != "tensor" or v.integer:
                        return None
                    return f"kk.leaky_max({code}, {self.expr(c)[0]})", v
        return None

    def e_Call(self, e):
        func, fv = self.expr(e.func)
        parts = [self.expr(a) for a in e.args]
        if fv.kind == "builtin":
            return self.builtin(e, fv.info, parts)
        if fv.kind == "function":
            return self.call_user(e, fv.info, parts)
        if fv.kind == "module":
            return self.call_module(e, func, fv.info, parts)
        raise self.unsupported(f"calling a {fv.kind}", e)

    def call_module(self, e, func: str, desc: tuple, parts):
        kind = desc[0]
        if kind == "layer" and desc[1] in CELL_LAYERS:
            return self.call_cell(e, func, desc[1], parts)
        if kind == "layer" or kind == "sequential":
            if len(parts) != 1:
                raise self.unsupported("a layer called with several arguments", e)
            code, v = parts[0]
            if v.python:  # a layer wants a tensor: `E(0)`, the embedding of token 0
                code, v = self.constant_tensor(code, v), Value(integer=v.integer)
            out = replace(v, rank=v.rank + self._layer_rank(desc, v, e), integer=False)
            if desc == ("layer", "Linear"):
                return f"kk.linear_layer({func}, {code})", out
            return f"{func}({code})", out
        if kind == "kokoyi":
            vals = [v for _, v in parts]
            lead = max((v.lead for v in vals if not v.python), default=0)
            codes = []
            for code, v in parts:
                if v.python or v.lead == lead:
                    codes.append(code)
                elif v.lead == 0:
                    codes.append(code)
                else:
                    raise self.unsupported("a Kokoyi module called on inputs with different batch axes", e)
            levels = [0 if v.python or v.lead == 0 else lead for v in vals]
            outputs = self.callee_outputs(desc, tuple(vals))
            if outputs is None:
                raise self.unsupported("a Kokoyi module parameter", e)
            batched = any(v.batched for v in vals)
            depth = max((v.depth for v in vals if not v.python), default=0)
            outs = [Value(rank=o.rank, batched=batched, depth=depth, integer=o.integer) if lead else o
                    for o in outputs]
            call = f"{func}({', '.join(codes)}, batch_level={levels!r})" if lead else f"{func}({', '.join(codes)})"
            if len(outs) != 1:  # its outputs are read by a literal index: `q(x)[0]`
                return call, Value(kind="tuple", info=tuple(outs))
            return call, outs[0]
        raise self.unsupported(f"a parameter of type {desc[1]}", e)

    def call_cell(self, e, func: str, name: str, parts):
        """`Cell(x, h)` for a torch RNNCell or GRUCell: x and h are vectors per sample."""
        if len(parts) != 2 or any(v.python or v.rank != 1 for _, v in parts):
            raise self.unsupported(f"`{name}` called on other than two vectors", e)
        (x, h), v = self._broadcast(parts)
        return f"kk.cell_layer({func}, {x}, {h})", replace(v, integer=False)

    def _layer_rank(self, desc, v: Value, e) -> int:
        if desc[0] == "sequential":
            return sum(self._layer_rank(d, v, e) for d in desc[1])
        name = desc[1]
        if name in CONV_LAYERS:
            if v.depth or v.rank != CONV_LAYERS[name]:
                raise self.unsupported(f"`{name}` on a value of per-sample rank {v.rank}", e)
            return 0
        return TRANSPARENT_LAYERS[name]

    def call_user(self, e, item, parts):
        """A call of a Kokoyi function: its body, specialised for these argument layouts."""
        if item is None:
            raise self.unsupported("a function without source", e)
        vals = tuple(parts_v for _, parts_v in parts)
        key = (id(item), vals, self.depth)
        entry = self.specialised_functions.get(key)
        if entry is None:
            entry = self._specialise_function(item, vals)
            self.specialised_functions[key] = entry
        name, out = entry
        return f"{name}({', '.join(c for c, _ in parts)})", out

    def _specialise_function(self, item, vals):
        if isinstance(item, A.Definition):
            params, body, where = item.params, None, item.where
        else:
            params, body, where = tuple(d.name for d in item.args), item.body, ()
        if len(params) != len(vals):
            raise self.unsupported("a call with the wrong number of arguments", item)
        hint = item.target.symbol.hint if isinstance(item, A.Definition) else item.name.symbol.hint
        name = self.ns.create(hint)
        saved_guard, saved_mask, saved_live = self.guard, self.row_mask, self.live_ranges
        self.guard = self.row_mask = None  # a function's code serves every call of it
        self.live_ranges = []
        saved_out, saved_pending, saved_indent = self.out, self.pending, self.indent
        self.out, self.pending, self.indent = Emitter(), [], 1
        arg_names = [self.bind(p.symbol, v) for p, v in zip(params, vals)]
        self.out.emit(0, f"def {name}({', '.join(arg_names)}):")
        if body is None:
            self.where_bindings(where)
            code, out = self.expr(item.value)
            self.flush()
            self.out.emit(1, f"return {code}")
        else:
            outs = self.body(body)
            if len(outs) != 1:
                raise self.unsupported("a function returning a tuple", item)
            out = outs[0]
        lines, line_map = self.out.lines, self.out.line_map
        self.out, self.pending, self.indent = saved_out, saved_pending, saved_indent
        self.guard, self.row_mask, self.live_ranges = saved_guard, saved_mask, saved_live
        # Emit the specialised function before the statement that needs it (not its pending
        # lines: those may belong to a lazily evaluated part, and the function needs none).
        for i, line in enumerate(lines, 1):
            self.out.source_line = line_map.get(i, self.out.source_line)
            self.out.emit(self.indent, line)
        return name, out

    # ---- indexing ----
    def e_Index(self, e):
        target = A.strip(e.target)
        if isinstance(target, A.Ref) and id(target.symbol) in self.rec:
            return self.recurrence_read(e, target)
        code, v = self.expr(e.target)
        if v.kind == "tuple":
            k = _int_literal(e.items[0]) if len(e.items) == 1 else None
            if k is None or not -len(v.info) <= k < len(v.info):
                raise self.unsupported("the outputs of a module indexed other than by a literal in range", e)
            return f"{code}[{k}]", v.info[k]
        if v.kind == "list":
            if len(e.items) != 1 or not self.expr_is_python(e.items[0]):
                raise self.unsupported("indexing a list of modules by a tensor", e)
            idx = self.expr(e.items[0])[0]
            item = self._list_item(v, e.items[0], e)
            literal = A.strip(e.items[0])
            items, is_module_list = v.info
            if is_module_list and isinstance(literal, A.Num) and -len(items) <= literal.value < len(items):
                # ModuleList.__getitem__ costs a microsecond; its dict does not.
                return f"{code}._modules[{str(literal.value % len(items))!r}]", item
            return f"{code}[{idx}]", item
        if v.kind != "tensor" or v.python:
            raise self.unsupported(f"indexing a {v.kind}", e)
        self.index_sites.append([e.span.line, spell(e.target), self.where(e)[1:-1], v.lead])
        # A read that varies with none of the open loops is made once, also when a range it
        # sits in is empty: only where every such range is not empty may it fail. (A read that
        # varies with a loop keeps its views; its indices follow that loop's range.)
        used = {id(n.symbol) for n in A.walk(e) if isinstance(n, A.Ref)}
        invariant = not any(id(lp["symbol"]) in used for lp in self.loops)
        live = " and ".join(test for _, test in self.live_ranges) if invariant and self.live_ranges else None
        if live is not None:
            return self._index_general(e, code, v, live)
        narrowed = self._try_narrow(e, code, v)
        if narrowed is not None:
            return narrowed
        windowed = self._try_windows(e, code, v)
        if windowed is not None:
            return windowed
        return self._index_general(e, code, v, None)

    def _index_general(self, e, code, v, live):
        """Indexing by Python values, slices and index tensors (a gather); live: a Python test
        that must hold for the read to be made at all (see live_ranges), or None."""
        items, tensors = [], []
        for item in e.items:
            if isinstance(item, A.Slice):
                bounds = [self.expr(b) if b is not None else ("", None) for b in (item.start, item.stop)]
                if any(bv is not None and not bv.python for _, bv in bounds):
                    raise self.unsupported("a slice whose bounds depend on an index or a tensor", item)
                items.append((f"{bounds[0][0]}:{bounds[1][0]}", None))
                continue
            icode, iv = self.expr(item)
            if iv.python:
                items.append((icode, iv))
            else:
                items.append((icode, iv))
                tensors.append(iv)
        if len(e.items) > v.rank:
            raise self.unsupported("more indices than axes", e)
        if not tensors:
            out_v = replace(v, rank=v.rank - sum(1 for _, iv in items if iv is not None))
            if (self.guard is not None or live is not None) and any(iv is not None for _, iv in items):
                # Python indices in a guarded place: checked only where the place applies.
                depth = max(v.depth, self.guard[1].depth if self.guard is not None else 0)
                code = self.lift(code, v, depth) if v.depth < depth else code
                valid = self._with_live(self.guard_for(depth, 0), live)
                specs = ", ".join(c if iv is not None else f"slice({c.split(':')[0] or None}, {c.split(':')[1] or None})"
                                  for c, iv in items)
                return (f"kk.take_static({code}, {int(v.batched) + depth}, ({specs},), {valid}, {self.where(e)}, "
                        f"{spell(e.target)!r})",
                        replace(out_v, depth=depth))
            return f"{code}[{':, ' * v.lead}{', '.join(c for c, _ in items)}]", out_v
        # A gather: bring the value and the index tensors to one leading layout. Torch puts
        # the axes of index tensors separated by a slice first, which is the layout only when
        # they are one number per sample (`h[:, 2i]` in a set-builder).
        seen_slice = False
        for c, iv in items:
            if iv is None:
                seen_slice = True
            elif not iv.python and seen_slice and iv.rank > 0:
                raise self.unsupported("a tensor of indices after a slice", e)
        depth = max([v.depth] + [t.depth for t in tensors] + ([self.guard[1].depth] if self.guard else []))
        batched = v.batched or any(t.batched for t in tensors)
        lead = int(batched) + depth
        value = self.lift(code, v, depth) if v.depth < depth else code
        if batched and not v.batched:
            value = f"{value}[None]"
        item_rank = max(t.rank for t in tensors)
        item_codes = []
        for c, iv in items:
            if iv is None or iv.python:
                item_codes.append(c if iv is not None else f"slice({c.split(':')[0] or None}, {c.split(':')[1] or None})")
                continue
            lifted = self.lift(c, iv, depth, item_rank) if iv.batched or not batched else \
                self.lift(c, iv, depth, item_rank)
            if batched and not iv.batched:
                lifted = f"{lifted}[None]"
            item_codes.append(lifted)
        valid, bounds = self._with_live(self.guard_for(depth, item_rank), live), ""
        if valid != "None":
            # Index ranges known from the loops' bounds: in range everywhere needs no check (a
            # data-dependent check would also break torch.compile's graph).
            ranges = [self._index_range(item) if iv is not None and not iv.python else None
                      for item, (_, iv) in zip(e.items, items)]
            if any(r is not None for r in ranges):
                known = ", ".join("None" if r is None else f"({r[0]}, {r[1]})" for r in ranges)
                bounds = f", bounds=({known},)"
        result_rank = v.rank - len([1 for _, iv in items if iv is not None]) + item_rank
        return (f"kk.take({value}, {lead}, ({', '.join(item_codes)},), {valid}, {self.where(e)}, "
                f"{spell(e.target)!r}{bounds})",
                Value(rank=result_rank, batched=batched, depth=depth, integer=v.integer))

    @staticmethod
    def _with_live(valid: str, live: str | None) -> str:
        if live is None:
            return valid
        return f"({live})" if valid == "None" else f"(({valid}) & ({live}))"

    def _index_range(self, item):
        """(smallest, largest) Python expressions an index affine in loop variables takes over
        the loops' ranges, or None (not affine, or a term that is a tensor)."""
        loops = {lp["symbol"]: lp for lp in self.loops}
        lin = _linear(item, set(loops))
        if lin is None:
            return None
        coef, terms, const = lin
        low, high = [str(const)], [str(const)]
        for sign, term in terms:
            if not self._scratch(lambda term=term: self.expr(term)[1]).python:
                return None
            code = self.expr(term)[0]
            low.append(f"{'+' if sign > 0 else '-'} ({code})")
            high.append(f"{'+' if sign > 0 else '-'} ({code})")
        for var, c in coef.items():
            lp = loops[var]
            first, last = lp["lo"], f"({lp['lo']} + {lp['n']} - 1)"
            low.append(f"+ {c} * {first if c > 0 else last}")
            high.append(f"+ {c} * {last if c > 0 else first}")
        return " ".join(low), " ".join(high)

    def _list_item(self, v: Value, item, e) -> Value:
        idx = A.strip(item)
        items = v.info[0]
        if not isinstance(idx, A.Num):
            descs = set(items)
            if len(descs) != 1:
                raise self.unsupported("indexing a list of different modules by a computed index", e)
            return value_of(next(iter(descs)))
        try:
            return value_of(items[idx.value])
        except IndexError:
            raise self.unsupported("an index past the end of a list of modules", e) from None

    def _try_narrow(self, e, code: str, v: Value):
        """x[i] where i is the innermost loop variable and x lives one loop level out."""
        if len(e.items) != 1 or isinstance(e.items[0], A.Slice) or v.rank < 1:
            return None
        item = A.strip(e.items[0])
        if not isinstance(item, A.Ref):
            return None
        loop = next((lp for lp in self.loops if lp["symbol"] is item.symbol), None)
        if loop is None or v.depth != loop["depth"] - 1:
            return None
        pos = v.lead
        if self.guard is not None:
            if self.guard[1].depth > loop["depth"]:
                return None  # a gather checks the read against the whole guard
            valid = self.guard_for(loop["depth"], 0)
            return (f"kk.narrow_range({code}, {pos}, {loop['lo']}, {loop['n']}, {self.where(e)}, {valid}, "
                    f"{spell(e.target)!r})",
                    replace(v, rank=v.rank - 1, depth=loop["depth"]))
        return (f"kk.narrow_range({code}, {pos}, {loop['lo']}, {loop['n']}, {self.where(e)})",
                replace(v, rank=v.rank - 1, depth=loop["depth"]))

    def _try_windows(self, e, code: str, v: Value):
        """x[i, s*j + a, ...] with loop variables (each used once, full static ranges) and x
        outside the loops: views instead of a gather. A variable index is a narrow of its
        axis; `s*u + w` is windows of |w| elements every s (Tensor.unfold), as in pooling."""
        if self.guard is not None or not e.items or len(e.items) > v.rank:
            return None
        # Loops inside the value's own (x carries the axes of loops 1..v.depth already).
        loops = {lp["symbol"]: lp for lp in self.loops if lp["mask"] is None and lp["depth"] > v.depth}
        specs, labels, windows, used = [], [], [], set()
        for item in e.items:
            lin = None if isinstance(item, A.Slice) else _linear(item, set(loops))
            if lin is None or lin[1]:
                return None
            coef = {var: c for var, c in lin[0].items() if c != 0}
            if not coef:  # a constant: that entry, the axis goes away
                specs.append(f"('at', {lin[2]})")
                continue
            if len(coef) == 1 and lin[2] == 0 and next(iter(coef.values())) == 1:
                (u,) = coef
                specs.append(f"('var', {loops[u]['lo']}, {loops[u]['n']})")
            elif len(coef) == 2 and 1 in coef.values() and min(coef.values()) >= 1:
                u, w = sorted(coef, key=lambda var: (coef[var] == 1, loops[var]["depth"]))
                specs.append(f"('windows', {coef[u]}, {lin[2]}, {loops[u]['lo']}, {loops[u]['n']}, "
                             f"{loops[w]['lo']}, {loops[w]['n']})")
                windows.append(loops[w]["depth"])
            else:
                return None
            if used & set(coef):
                return None
            used |= set(coef)
            labels.append(loops[u]["depth"])
        if not windows and len(labels) < 2:
            return None  # at most one plain index: narrow or gather as usual
        lead, rest, batch = v.lead, v.rank - len(e.items), int(v.batched)
        # Axes after the views: batch, x's loop axes, one per item, the rest, one per window.
        # Wanted: batch, the loop axes by depth (size 1 for loops not used here), the rest.
        current = [("batch", 0)] * batch + [("loop", d) for d in range(1, v.depth + 1)] + \
            [("loop", d) for d in labels] + [("rest", k) for k in range(rest)] + [("loop", d) for d in windows]
        depth = max(labels + windows)
        wanted = [("batch", 0)] * batch + [("loop", d) for d in range(1, depth + 1) if ("loop", d) in current] + \
            [("rest", k) for k in range(rest)]
        perm = tuple(current.index(a) for a in wanted)
        missing = tuple(batch + d - 1 for d in range(1, depth + 1) if ("loop", d) not in current)
        return (f"kk.windows({code}, {lead}, ({', '.join(specs)},), {perm}, {missing}, {self.where(e)})",
                replace(v, rank=rest, depth=depth))

    def recurrence_read(self, e, target):
        elements, first, element = self.rec[id(target.symbol)]
        idx = self.expr(e.items[0])[0]
        return f"kk.earlier({elements}, {idx} - {first}, {self.where(target)})", element

    # ---- index ranges ----
    def _open_loop(self, bound: A.Bound, node) -> dict:
        lo, lo_v = self.expr(bound.lower)
        hi, hi_v = self.expr(bound.upper)
        depth = self.depth + 1
        if lo_v.python and hi_v.python:
            # Bounds that may not be integers round inwards (kk.irange, the per-sample meaning).
            lo_name = self.temp("lo", lo if lo_v.integer else f"kk.ceil_int({lo})")
            hi = hi if hi_v.integer else f"kk.floor_int({hi})"
            n = self.temp("n", f"max({hi} - {lo_name} + 1, 0)")
            mask = None
        else:
            lo_name = self.temp("lo", f"kk.int_min({lo})")
            n = self.temp("n", f"max(kk.int_max({hi}) - {lo_name} + 1, 0)")
            mask = "pending"
        var = self.bind(bound.var.symbol, Value(depth=depth, integer=True))
        # The arange is emitted on first use: x[i] over a whole axis never needs it.
        self.lazy[id(bound.var.symbol)] = f"{var} = kk.axis_range({lo_name}, {n}, {depth}, _dev)"
        loop = {"symbol": bound.var.symbol, "depth": depth, "lo": lo_name, "n": n, "mask": None}
        self.depth = depth
        self.loops.append(loop)
        if mask:
            vv = self.values[id(bound.var.symbol)]
            self.pending.append(self.lazy.pop(id(bound.var.symbol)))
            (m_lo, m_var, m_hi), mv = self._broadcast([(lo, lo_v), (var, vv), (hi, hi_v)])
            loop["mask"] = self.temp("mask", f"({m_var} >= {m_lo}) & ({m_var} <= {m_hi})")
            loop["mask_batched"] = mv.batched
        return loop

    def _close_loop(self) -> None:
        self.loops.pop()
        self.depth -= 1

    def e_BigOp(self, e):
        saved = self.guard
        loop = self._open_loop(e.bound, e)
        try:
            if loop["mask"] is not None:  # reads outside the bounds are discarded: not checked
                mask_v = Value(depth=loop["depth"], batched=loop.get("mask_batched", False))
                self.guard = self.restrict(loop["mask"], mask_v)
            self.live_ranges.append((e.bound.var.symbol, f"{loop['n']} > 0"))
            body, v = self.expr(e.body)
        finally:
            self.guard = saved
            self._close_loop()
            if self.live_ranges and self.live_ranges[-1][0] is e.bound.var.symbol:
                self.live_ranges.pop()
        if v.kind != "tensor":
            raise self.unsupported(f"`\\{e.op}` of a {v.kind}", e)
        depth = loop["depth"]
        if v.python:
            body = f"kk.full_axis({self.constant_tensor(body, v)}, {depth}, {loop['n']}, _dev)"
            v = Value(depth=depth, integer=v.integer)
        elif v.depth < depth:
            body = self.lift(body, v, depth)
            v = self.at(v, depth)
        mask = loop["mask"]
        mask_batched = mask is not None and loop.get("mask_batched", False)
        if mask_batched and not v.batched:  # bounds differ between samples: so does the result
            body, v = f"{body}[None]", replace(v, batched=True)
        pos = int(v.batched) + depth - 1
        mask_code = "None"
        if mask is not None:
            mask_v = Value(depth=depth, batched=mask_batched)
            mask_code = self.lift(mask, mask_v, depth, v.rank)
        out_v = replace(v, depth=depth - 1)
        if e.op in ("argmax", "argmin"):
            out_v = replace(out_v, integer=True)
        elif e.op == "mean":
            body, out_v = self.to_float(body, v), replace(out_v, integer=False)
        args = f"{body}, {pos}, {loop['n']}, {mask_code}"
        # An empty range is an error only where the reduction is evaluated: inside non-empty
        # enclosing ranges, where its cases row applies.
        sizes = "".join(f"{lp['n']}, " for lp in self.loops)
        live = f"kk.live(({sizes}), {self.guard_for(depth - 1, v.rank)})" if sizes or self.guard else "None"
        if e.op in ("argmax", "argmin"):
            return f"kk.axis_{e.op}({args}, {loop['lo']}, {self.where(e)}, {live})", out_v
        if e.op in ("max", "min", "mean"):
            return f"kk.axis_{e.op}({args}, {self.where(e)}, {live})", out_v
        return f"kk.axis_{e.op}({args})", out_v

    def e_SetBuilder(self, e):
        scan = self._discounted_set(e)
        if scan is not None:
            return scan
        loops = []
        for b in e.bounds:
            loop = self._open_loop(b, e)
            if loop["mask"] is not None:
                raise self.unsupported("a set-builder whose bounds depend on another index or differ "
                                       "between samples", e)
            loops.append(loop)
        live = [(b.var.symbol, f"{lp['n']} > 0") for b, lp in zip(e.bounds, loops)]
        self.live_ranges.extend(live)
        try:
            code, v = self.expr(e.element)
        finally:
            del self.live_ranges[len(self.live_ranges) - len(live):]
            for _ in loops:
                self._close_loop()
        if v.kind != "tensor":
            raise self.unsupported(f"a set-builder of {v.kind}s", e)
        depth = loops[-1]["depth"]
        if v.python:
            literal = is_literal(e.element)
            # A set-builder of literals takes the module's floating dtype (LANGUAGE.md 6a).
            code = self.constant_tensor(code, v, force_float=literal)
            v = Value(integer=v.integer and not literal)
        if v.depth < depth:
            code = self.lift(code, v, depth)
            v = self.at(v, depth)
        sizes = ", ".join(lp["n"] for lp in loops)
        first = int(v.batched) + loops[0]["depth"] - 1
        code = f"kk.fill_axes({code}, {first}, ({sizes},))"
        return code, replace(v, rank=v.rank + len(loops), depth=depth - len(loops))

    # ---- recognised forms ----
    def _population_std(self, e: A.Sqrt):
        """`\\sqrt{\\frac{\\sum_{i=0}^{|x|-1} (x[i] - m)^2}{|x|}}` with m the mean of x: one std."""
        x = self._population_std_of(e)
        if x is None:
            return None
        code, v = self.expr(x)
        if v.python or v.kind != "tensor" or v.rank != 1 or v.integer:
            return None
        return f"{code}.std(-1, correction=0)", replace(v, rank=0)

    def _standardized(self, num, den):
        """`(x - mean(x)) / std(x)` with std a population standard deviation (written out, or a
        function whose body is one): kk.standardize, one std_mean instead of a mean and a std."""
        num = A.strip(num)
        if not (isinstance(num, A.Binary) and num.op == "-"):
            return None
        x = A.strip(num.left)
        if not (isinstance(x, A.Ref) and self._is_mean_of(num.right, x)):
            return None
        eps = None
        if not (self._is_population_std(den, x) or self._is_builtin_of(den, x, "Std")):
            eps = self._variance_plus(den, x)
            if eps is None:
                return None
        code, v = self.expr(x)  # (a name: nothing is emitted for it)
        if v.python or v.kind != "tensor" or v.rank != 1 or v.integer:
            return None
        if eps is None:
            return f"kk.standardize({code})", v
        eps_code, eps_v = self.expr(eps)
        if not eps_v.python:
            return None
        return f"kk.layer_norm({code}, {eps_code})", v

    def _variance_plus(self, d, x):
        """eps when d is `\\sqrt{\\Var(x) + eps}` (either order), else None: layer normalisation."""
        d = A.strip(d)
        if not (isinstance(d, A.Sqrt) and d.degree is None):
            return None
        r = A.strip(d.radicand)
        if not (isinstance(r, A.Binary) and r.op == "+"):
            return None
        for var, eps in ((r.left, r.right), (r.right, r.left)):
            if self._is_builtin_of(var, x, "Var") and not any(isinstance(n, A.Ref) and n.symbol is x.symbol
                                                               for n in A.walk(eps)):
                return eps
        return None

    def _is_population_std(self, d, x) -> bool:
        d = A.strip(d)
        if isinstance(d, A.Sqrt):
            return _same_ref(self._population_std_of(d), x)
        if not (isinstance(d, A.Call) and len(d.args) == 1 and _same_ref(d.args[0], x)):
            return False
        f = self._function(A.strip(d.func))
        if f is None or len(f.params) != 1 or not isinstance(A.strip(f.value), A.Sqrt):
            return False
        std_of = self._population_std_of(A.strip(f.value))
        return std_of is not None and std_of.symbol is f.params[0].symbol

    def _function(self, f) -> A.Definition | None:
        """The one-line function definition a name refers to (local or top-level), if it is one."""
        if not isinstance(f, A.Ref):
            return None
        if id(f.symbol) in self.functions:
            return self.functions[id(f.symbol)]
        info = self.globals_info.get(f.symbol.key)
        current = (info[2] if info else None) or f.symbol
        item = current.extra.get("item") if current.kind == S.FUNCTION else None
        if not (isinstance(item, A.Definition) and item.params is not None):
            return None
        self._note_definitions(item)
        return item

    def _population_std_of(self, e: A.Sqrt):
        """The Ref x if e is the population standard deviation of x written out, else None."""
        if e.degree is not None:
            return None
        frac = A.strip(e.radicand)
        if isinstance(frac, A.Binary) and frac.op == "/":
            num, den = frac.left, frac.right
        elif isinstance(frac, A.Frac):
            num, den = frac.numerator, frac.denominator
        else:
            return None
        den, num = A.strip(den), A.strip(num)
        if not (isinstance(den, A.Bars) and isinstance(num, A.BigOp) and num.op == "sum"):
            return None
        x = A.strip(den.operand)
        if not isinstance(x, A.Ref) or not _is_num(num.bound.lower, 0):
            return None
        upper = A.strip(num.bound.upper)
        if not (isinstance(upper, A.Binary) and upper.op == "-" and _is_num(upper.right, 1)
                and _same_ref(A.strip(upper.left).operand if isinstance(A.strip(upper.left), A.Bars) else None, x)):
            return None
        square = A.strip(num.body)
        if not (isinstance(square, A.Power) and _is_num(square.exponent, 2)):
            return None
        diff = A.strip(square.base)
        if not (isinstance(diff, A.Binary) and diff.op == "-"):
            return None
        item = A.strip(diff.left)
        if not (isinstance(item, A.Index) and _same_ref(item.target, x) and len(item.items) == 1
                and _same_ref(item.items[0], num.bound.var)):
            return None
        if not self._is_mean_of(diff.right, x):
            return None
        return x

    def _is_mean_of(self, m, x) -> bool:
        return self._is_builtin_of(m, x, "Mean")

    def _is_builtin_of(self, m, x, name: str) -> bool:
        """Whether m is the built-in `name` applied to x, directly, through a name bound to
        the built-in (`\\mu \\gets \\Mean`) or through a name bound to the result."""
        m = A.strip(m)
        if isinstance(m, A.Ref) and id(m.symbol) in self.defs:
            return self._is_builtin_of(self.defs[id(m.symbol)], x, name)
        if isinstance(m, A.BuiltinCall) and m.name == name and len(m.args) == 1:
            return _same_ref(m.args[0], x)
        if isinstance(m, A.Call) and len(m.args) == 1 and _same_ref(m.args[0], x):
            f = A.strip(m.func)
            if isinstance(f, A.Builtin):
                return f.name == name
            if isinstance(f, A.Ref):
                bound = A.strip(self.defs[id(f.symbol)]) if id(f.symbol) in self.defs else None
                return f.symbol.builtin == name or (isinstance(bound, A.Builtin) and bound.name == name)
        return False

    # ---- scans ----
    def _discounted_set(self, e: A.SetBuilder):
        """`\\{ \\sum_{i} \\gamma^{...} r[...] \\}_{t}`: a discounted suffix sum of r."""
        if len(e.bounds) != 1:
            return None
        inner = A.strip(e.element)
        if not isinstance(inner, A.BigOp) or inner.op != "sum":
            return None
        match = _match_discounted(inner, e.bounds[0].var.symbol)
        if match is None:
            return None
        gamma, seq, last, offset = match
        g_code, g_v = self.expr(gamma)
        if not (g_v.python or (g_v.rank == 0 and not g_v.batched and g_v.depth == 0)):
            return None
        r_code, r_v = self.expr(seq)
        if r_v.python or r_v.rank < 1 or r_v.depth:
            return None
        lo, lo_v = self.expr(e.bounds[0].lower)
        hi, hi_v = self.expr(e.bounds[0].upper)
        last_code, last_v = self.expr(last)
        if not (lo_v.python and hi_v.python and last_v.python):
            return None
        code = (f"kk.discounted_window({r_code}, {g_code}, {r_v.lead}, {lo}, {hi}, {last_code}, {offset}, "
                f"{self.where(e)})")
        return code, replace(r_v, integer=False)


REDUCTION_METHODS = {"mean": "mean({})", "reduce_sum": "sum({})", "reduce_max": "amax({})",
                     "reduce_min": "amin({})", "var": "var({}, correction=0)", "std": "std({}, correction=0)"}
FLOAT_REDUCTIONS = {"mean", "var", "std"}  # torch wants a float tensor for these


# Built-ins whose derivative is undefined or infinite somewhere (or that overflow to inf).
UNDEFINED_DERIVATIVE = {"log", "ln", "tan", "exp", "Exp", "sinh", "cosh", "Std", "LogSumExp"}


ELEMENTWISE_BUILTINS = {"exp", "Exp", "log", "ln", "sin", "cos", "tan", "sinh", "cosh", "tanh", "abs", "sign",
                        "ReLU", "Sigmoid", "Softplus", "GELU", "maximum", "minimum", "clip", "StopGrad"}


def _elementwise(e) -> bool:
    """Whether e computes each element from the same elements of the values it reads (operators
    and element-wise built-ins of names and numbers): only then does a row's mask say which
    elements of those values the row uses."""
    for n in A.walk(e):
        match n:
            case A.Ref() | A.Name() | A.Num() | A.Constant() | A.Paren() | A.Group() | A.Unary() | A.Compare() \
                    | A.Frac() | A.Sqrt() | A.Power() | A.Juxtapose():
                continue
            case A.Binary() if n.op != "@":
                continue
            case A.BuiltinCall() if n.name in ELEMENTWISE_BUILTINS:
                continue
        return False
    return True


def _may_have_undefined_derivative(e) -> bool:
    """Whether computing e may meet a point where a local derivative is undefined (0 * nan is
    nan in the backward pass): roots, division, logs, fractional or negative powers, norms,
    exponentials, calls of functions."""
    for n in A.walk(e):
        if not any(isinstance(m, A.Ref) for m in A.walk(n)):
            continue  # a constant (`\frac{1}{2}`) has no derivative to speak of
        match n:
            case A.Sqrt() | A.Norm() | A.Call():
                return True
            case A.Frac(denominator=d) | A.Binary(op="/", right=d):
                if any(isinstance(m, A.Ref) for m in A.walk(d)):
                    return True
            case A.Power():
                k = _int_literal(n.exponent)
                if k is None or k < 0:
                    return True
            case A.BuiltinCall() | A.Builtin() if n.name in UNDEFINED_DERIVATIVE:
                return True
    return False


def _direct_reduction(runtime: str, code: str, v: Value) -> str | None:
    """A whole-value reduction over the per-sample axes as one torch call, where that is exact."""
    method = REDUCTION_METHODS.get(runtime)
    if method is None or v.rank == 0 or (v.integer and runtime in FLOAT_REDUCTIONS):
        return None
    dims = ", ".join(str(-k) for k in range(v.rank, 0, -1))
    return f"{code}.{method.format(dims if v.rank == 1 else '(' + dims + ')')}"


def _linear(e, variables):
    """(coefficients by variable, constant AST terms) when e is affine in variables."""
    e = A.strip(e)
    match e:
        case A.Ref() if e.symbol in variables:
            return {e.symbol: 1}, [], 0
        case A.Num(value=int(v)):
            return {}, [], v
        case A.Unary(op="-"):
            inner = _linear(e.operand, variables)
            if inner is None:
                return None
            coef, terms, const = inner
            return {k: -c for k, c in coef.items()}, [(-s, t) for s, t in terms], -const
        case A.Binary(op="*") | A.Juxtapose() if any(isinstance(n, A.Ref) and n.symbol in variables
                                                      for n in A.walk(e)):
            # k * (affine), k an integer literal: `2i`, `2 * i`, `i * 2`
            for k, other in ((e.left, e.right), (e.right, e.left)):
                scale = _int_literal(k)
                inner = _linear(other, variables) if scale is not None else None
                if inner is not None and not inner[1]:
                    return {v: scale * c for v, c in inner[0].items()}, [], scale * inner[2]
            return None
        case A.Binary(op="+" | "-"):
            a, b = _linear(e.left, variables), _linear(e.right, variables)
            if a is None or b is None:
                return None
            sign = 1 if e.op == "+" else -1
            coef = dict(a[0])
            for k, c in b[0].items():
                coef[k] = coef.get(k, 0) + sign * c
            return coef, a[1] + [(sign * s, t) for s, t in b[1]], a[2] + sign * b[2]
    if any(isinstance(n, A.Ref) and n.symbol in variables for n in A.walk(e)):
        return None
    return {}, [(1, e)], 0


def _match_discounted(op: A.BigOp, t):
    """Match `\\sum_{i=lo}^{hi} \\gamma^{e} r[g]` with g = s and e = s - t over s = t..S.

    Returns (gamma, r, S as an AST-free description, offset) or None. The sum is then
    G_t = sum_{s=t}^{S} gamma^(s-t) r[s]; S must not depend on t.
    """
    i = op.bound.var.symbol
    body = A.strip(op.body)
    factors = _factors(body)
    if factors is None or len(factors) != 2:
        return None
    power = next((f for f in factors if isinstance(A.strip(f), A.Power)), None)
    index = next((f for f in factors if isinstance(A.strip(f), A.Index)), None)
    if power is None or index is None:
        return None
    power, index = A.strip(power), A.strip(index)
    if len(index.items) != 1 or isinstance(index.items[0], A.Slice):
        return None
    gamma = power.base
    if any(isinstance(n, A.Ref) and n.symbol in (i, t) for n in A.walk(gamma)):
        return None
    if any(isinstance(n, A.Ref) and n.symbol in (i, t) for n in A.walk(index.target)):
        return None
    g = _linear(index.items[0], {i, t})
    x = _linear(power.exponent, {i, t})
    lo = _linear(op.bound.lower, {t})
    hi = _linear(op.bound.upper, {t})
    if None in (g, x, lo, hi) or g[1] or x[1] or lo[1]:
        return None
    gi, gt, g0 = g[0].get(i, 0), g[0].get(t, 0), g[2]
    xi, xt, x0 = x[0].get(i, 0), x[0].get(t, 0), x[2]
    if gi != 1:
        return None
    # With s = g = i + gt*t + g0: i = s - gt*t - g0; exponent = s + (xt - gt)*t + (x0 - g0).
    if xi != 1 or xt - gt != -1 or x0 - g0 != 0:
        return None
    # First s: lo + gt*t + g0 must equal t.
    if lo[0].get(t, 0) + gt != 1 or lo[2] + g0 != 0:
        return None
    # Last s: hi + gt*t + g0 must not depend on t.
    if hi[0].get(t, 0) + gt != 0:
        return None
    offset = hi[2] + g0
    last = _terms_expr(hi[1], op.bound.upper.span)
    return gamma, index.target, last, offset


def _int_literal(e) -> int | None:
    """The value of an integer literal, signed or not (`2`, `-1`)."""
    e = A.strip(e)
    if isinstance(e, A.Unary) and e.op == "-":
        inner = _int_literal(e.operand)
        return None if inner is None else -inner
    return e.value if isinstance(e, A.Num) and isinstance(e.value, int) else None


def _is_num(e, value) -> bool:
    e = A.strip(e)
    return isinstance(e, A.Num) and e.value == value


def _same_ref(e, ref) -> bool:
    e, ref = A.strip(e) if e is not None else None, A.strip(ref)
    return isinstance(e, A.Ref) and isinstance(ref, A.Ref) and e.symbol is ref.symbol


def _factors(e):
    e = A.strip(e)
    if isinstance(e, A.Binary) and e.op == "*":
        a, b = _factors(e.left), _factors(e.right)
        return None if a is None or b is None else a + b
    if isinstance(e, A.Juxtapose):
        a, b = _factors(e.left), _factors(e.right)
        return None if a is None or b is None else a + b
    return [e]


def _terms_expr(terms, span):
    """An AST summing signed terms (0 when empty)."""
    out = A.Num(span, 0, "0")
    for sign, term in terms:
        out = A.Binary(span, "+" if sign > 0 else "-", out, term)
    return out
