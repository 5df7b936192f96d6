"""A reference interpreter for Kokoyi, used only by tests: the oracle of the differential fuzzer.

It evaluates the *resolved AST* (the compiler front end up to the ranks pass) directly, one
sample at a time, with Python loops over every index: a set-builder is a loop that stacks, a
big operator a loop that accumulates, a `cases` with tensor conditions is decided element by
element, a recurrence computes its elements in order. Nothing is vectorised, clamped or
rewritten, and nothing of kokoyi.runtime or the code generators is used, so it can judge them.
Scalars are 0-d tensors, so gradients come from torch's autograd through the same arithmetic
a reader of the math would do.

    out = reference.run(text, "P", (x, k), params)   # one sample's output (a tensor or a tuple)

Run-time errors the contract defines (an index out of range, an empty max/min/argmax/argmin or
mean, no row of a cases applies, a recurrence reading an element that does not exist) raise
RefRuntimeError with the `file:line:col` the compiled code must name. Batching is stacking
per-sample results (contract section 8), so the batched reference is a loop over samples.

Dtypes follow contract section 6a: one floating dtype per module (the widest of its floating
inputs and parameters, else torch's default); literals, constants, set-builders of literals,
indicators and one-hot vectors take it; integer math stays int64. Floating inputs and
parameters narrower than that dtype are converted to it (a float64 module returns float64).

Readings where the contract is silent, and limits:
* conditions are lazy like the rows: a later row's condition is computed only where no earlier
  row applied (so it may guard its reads with the rows before it); `\\land`/`\\lor` are not;
* with tensor conditions a row that applies somewhere is computed whole and its elements
  picked; when the row is element-wise its float reads pass gradient only where it applies, so
  its own derivatives elsewhere are discarded with its value (`\\sqrt{x}` for x > 0 gives 0, not
  NaN, at x <= 0); a row that is not (an index, a call, a reduction in it) passes
  each element's gradient through the whole row, so an infinite or undefined derivative at
  elements it does not take makes NaN there (as torch.where's would); with scalar conditions
  it is never computed;
  a row that applies nowhere is not computed, but when compiled code computes it (its condition
  is data, not a Python value: see `computed_rows`) the float values it reads from outside get
  a zero gradient from it, so 0 times an undefined derivative in what computed them is NaN
  (docs/reference/choices.md#gradients-through-cases); a big operator or set-builder over an
  empty range reads nothing (`known_empty`);
* an empty sum or product is 0 or 1 shaped like its body (the body computed without gradient
  at some index value, when that can be done: such a probe goes on past reads out of range,
  reads of empty axes and empty maxima, taking zeros of their shapes), an empty set-builder
  has 0 elements of that shape;
* `\\max`/`\\min`/`\\argmax` over a range follow torch's amax/argmax (ties: the gradient is
  shared evenly, the first index wins); `\\OneHot(i, n)` of an i outside 0..n-1 is all zeros;
* elements of a set-builder broadcast to one shape (a scalar base case of a vector recurrence);
* a recurrence group (set-builders of one body that read each other, found here from the reads
  alone) is computed on demand: an element is computed when first read, each once; the
  `\\where` bindings of a one-index set-builder definition are computed per element, when first
  read (so a row that does not apply never computes them); multi-index set-builders whose
  `\\where` uses their indices are not supported;
* a Kokoyi module given as a parameter computes in its own dtype (contract 6a: its inputs' and
  parameters'); its floating results are converted to the caller's dtype;
* `A^{-1}` is the matrix inverse when A has rank >= 2 and the exponent is written -1; a matrix
  literal takes the module's floating dtype; `\\log_{b} x` is `log x / log b` (log2, log10 for 2, 10).
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from kokoyi.compiler import ast as A
from kokoyi.compiler import signs
from kokoyi.compiler import symbols as S
from kokoyi.compiler.builtins import BATCHING, FUNCTIONS
from kokoyi.compiler.passes import simplify

__all__ = ["RefRuntimeError", "forward_source", "module_keys", "run"]


class RefRuntimeError(Exception):
    """A run-time error the contract defines. positions: the `file:line:col` texts a correct
    implementation may name (the first is where this interpreter found it)."""

    def __init__(self, positions, message: str) -> None:
        self.positions = [positions] if isinstance(positions, str) else list(positions)
        self.message = message
        super().__init__(f"{self.positions[0]}: {message}")

    @property
    def position(self) -> str:
        return self.positions[0]


class _Partial:
    """A recurrence while its elements are being computed."""

    def __init__(self, symbol, lower: int) -> None:
        self.symbol, self.lower, self.elements = symbol, lower, []


class _Thunk:
    """A `\\where` binding of a set-builder definition, computed when first read."""

    def __init__(self, fn, per_element: bool = False) -> None:
        self.fn, self.done, self.value = fn, False, None
        self.per_element = per_element  # a set-builder definition's binding, computed per element

    def force(self):
        if not self.done:
            self.value, self.done = self.fn(), True
        return self.value


class _Lazy:
    """A one-index set-builder definition computed on demand (a recurrence group member, or one
    with `\\where` bindings): element t is computed when first read, in an environment that
    sees the whole body (so members may read later members), with its `\\where` bindings fresh."""

    def __init__(self, interp: Interpreter, definition: A.Definition, env) -> None:
        self.interp, self.definition, self.env = interp, definition, env
        self.symbol = definition.target.symbol
        self.builder = A.strip(definition.value)
        self.elements: dict[int, torch.Tensor] = {}
        self.probed: dict[int, torch.Tensor] = {}  # elements computed without gradient (see element)
        self.active: set[int] = set()
        # the members computed together (the recurrences pass's group), or this definition alone
        self.group = id(self.symbol.extra.get("group", self.symbol))
        self.range = None

    def local(self, t=None):
        env = dict(self.env)
        self.interp.python_symbols.add(self.builder.bounds[0].var.symbol)
        if t is not None:
            env[self.builder.bounds[0].var.symbol] = torch.tensor(t)
        self.interp.bind_where(self.definition.where, env, per_element=True)
        return env

    def bounds(self) -> tuple[int, int]:
        if self.range is None:
            self.range = self.interp.bounds(self.builder.bounds[0], self.local())
        return self.range

    def element(self, t: int) -> torch.Tensor:
        if t in self.elements:
            return self.elements[t]
        # An element first computed without gradient (a probe of an empty range's shape) is kept
        # apart: kept as the element, it would hand every later read a value with no gradient.
        memo = self.elements if torch.is_grad_enabled() else self.probed
        if t not in memo:
            if t in self.active:
                raise AssertionError(f"element {t} of {self.symbol.key} reads itself")
            self.active.add(t)
            self.interp.computing.append(self.group)
            try:
                memo[t] = self.interp.tensor(self.interp.eval(self.builder.element, self.local(t)))
            finally:
                self.active.discard(t)
                self.interp.computing.pop()
        return memo[t]

    def whole(self) -> torch.Tensor:
        return self.finished().value

    def finished(self) -> _Finished:
        lo, hi = self.bounds()
        items = [self.element(t) for t in range(lo, hi + 1)]
        return self.interp.finished(items, self.builder, self.local())


class _Finished:
    """A finished recurrence: its stacked value, and its elements as computed. Once finished,
    its elements are one vector, and reading it, whole or one element `c[k]`, reads that vector:
    an element no one reads gets a zero gradient, and zero times an undefined derivative in
    what computed it is NaN (compiled code computes the steps' values together, before the
    loop: docs/reference/choices.md#gradients-through-cases)."""

    def __init__(self, value: torch.Tensor, elements: list) -> None:
        self.value, self.elements = value, elements

    def whole(self) -> torch.Tensor:
        return self.value


class _PyNumber:
    """A parameter given as a Python number (compiled code keeps it one)."""

    def __init__(self, value) -> None:
        self.value = value


class _Function:
    """A user function (top-level, local or a \\where binding) closed over its environment."""

    def __init__(self, interp: Interpreter, params, where, value, env, dims_owner=None, body=None) -> None:
        self.interp, self.params, self.where, self.value, self.env = interp, params, where, value, env
        self.body, self.dims_owner = body, dims_owner

    def __call__(self, *args):
        env = dict(self.env)
        for p, a in zip(self.params, args):
            env[p] = a
        if self.body is not None:  # \Function{...} ... \EndFunction
            self.interp.bind_dims(self.dims_owner, env)
            return self.interp.body(self.body, env)
        for b in self.where:
            self.interp.definition(b, env)
        return self.interp.eval(self.value, env)


def module_keys(key: str) -> set[str]:
    return {key, key.lstrip("\\"), "\\" + key.lstrip("\\")}


def forward_source(obj):
    """(source text, filename, module name) when obj's forward is a Kokoyi module symbol, else None."""
    for fwd in (getattr(type(obj), "forward", None), getattr(obj, "_forward", None)):
        spec = getattr(fwd, "__kokoyi_spec__", None)
        source = getattr(fwd, "__kokoyi_source__", None)
        if spec is not None and source is not None:
            return source[0], source[1], spec.name
    return None


def run(text: str, module_key: str, args, params=(), filename: str = "ref.kyi", sources=None, failed_reads=None,
        conditions=None):
    """The per-sample output of module module_key of text on one sample's inputs args.

    params is what get_parameters() returns (one value for one parameter, a tuple or list for
    several). sources optionally maps module names to (text, filename) for Kokoyi modules given
    as parameters whose source cannot be found on the object. failed_reads, a list: reads out
    of range and cases with no row for an index do not stop the run but add their positions to
    it (and read a clamped index, or take NaN), so that every failure of this sample is known,
    not only the first. conditions, a
    list: n * cond(A) of every matrix A solved, inverted or whose determinant is taken is added
    to it (inf for a matrix with an infinite or NaN entry, and for a comparison of floats that
    differ by rounding alone): how ill-conditioned the math is.
    """
    from kokoyi.compiler.pipeline import compile_unit

    # Up to name resolution: what the later passes check is not the reference's business.
    state = compile_unit(text, filename, stop_after="resolve")
    for item in state.ast.items:
        if isinstance(item, A.Module) and item.name.symbol.key in module_keys(module_key):
            mod = item
            break
    else:
        raise KeyError(f"no module {module_key!r} in {filename}")
    n_params = len(mod.params)
    if n_params == 0:
        params = ()
    elif n_params == 1:
        params = (params,)
    else:
        params = tuple(params)
        assert len(params) == n_params, f"{n_params} parameters, got {len(params)}"
    dtype = module_dtype(args, params)
    interp = Interpreter(state.ast, filename, dtype, sources or {})
    interp.failed_reads = failed_reads
    interp.conditions = conditions
    return interp.call_module(mod, tuple(args), params)


def module_dtype(args, params) -> torch.dtype:
    """Contract 6a: the widest floating dtype of the inputs and parameters, else the default."""
    found = []

    def visit(v):
        if isinstance(v, torch.Tensor):
            if v.is_floating_point():
                found.append(v.dtype)
        elif isinstance(v, torch.nn.Module):
            found.extend(p.dtype for p in v.parameters() if p.is_floating_point())
        elif isinstance(v, (tuple, list)):
            for x in v:
                visit(x)

    for v in (*args, *params):
        visit(v)
    dtype = torch.get_default_dtype()
    if found:
        dtype = found[0]
        for d in found[1:]:
            dtype = torch.promote_types(dtype, d)
    return dtype


# ---- built-in functions ---------------------------------------------------------------------


def _smooth_l1(a, b):
    """The built-in is defined as torch's smooth_l1_loss, mean (docs/reference/builtins.md): its
    gradient is the sign of a - b where |a - b| >= 1, also at an infinite difference, and NaN at
    a NaN one (a where over the two pieces would give 0 * inf = NaN at inf, seed 25002577)."""
    return F.smooth_l1_loss(*torch.broadcast_tensors(a, b))


def _cross_entropy(logits, label):
    logp = torch.log_softmax(logits, dim=-1)
    label = label.long()
    lead = torch.broadcast_shapes(logp.shape[:-1], label.shape)
    logp = logp.expand(tuple(lead) + (logp.shape[-1],))
    return -torch.gather(logp, -1, label.expand(lead).unsqueeze(-1)).squeeze(-1)


def _concat(*xs):
    ts = [x.reshape(1) if x.dim() == 0 else x for x in xs]
    return torch.cat(ts, dim=0)


class Interpreter:
    def __init__(self, prog: A.Program, filename: str, dtype: torch.dtype, sources) -> None:
        self.prog, self.filename, self.dtype, self.sources = prog, filename, dtype, sources
        self.computing: list = []  # the groups whose elements are being computed, innermost last
        self.failed_reads = None  # a list: record reads out of range and go on (see run)
        self.conditions = None  # a list: record n * cond(A) of each matrix solved, inverted or det'ed
        # what compiled code knows as Python values (a cases over them is a branch, see cases):
        # recurrence steps, parameters given as numbers; and every definition's value
        self.python_symbols: set = set()
        self.definitions: dict = {}
        self.globals: dict = {}
        for item in prog.items:
            match item:
                case A.Function():
                    self.globals[item.name.symbol] = _Function(self, [d.name.symbol for d in item.args], (), None,
                                                               self.globals, dims_owner=item, body=item.body)
                case A.Definition():
                    self.definition(item, self.globals)
        d = dtype
        self.builtins = {
            "exp": torch.exp, "Exp": torch.exp, "log": torch.log, "ln": torch.log, "sin": torch.sin,
            "cos": torch.cos, "tan": torch.tan, "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh,
            "Sigmoid": torch.sigmoid, "Softplus": F.softplus, "GELU": F.gelu,
            "Softmax": lambda x: torch.softmax(x, dim=-1), "LogSoftmax": lambda x: torch.log_softmax(x, dim=-1),
            "Mean": torch.mean, "Var": lambda x: torch.var(x, correction=0),
            "Std": self._std, "LogSumExp": lambda x: torch.logsumexp(x.reshape(-1), 0),
            "MSE": lambda a, b: torch.mean((a - b) ** 2), "SmoothL1": _smooth_l1, "CrossEntropy": _cross_entropy,
        }
        self.float_args = set(self.builtins)  # these compute in the module's floating dtype
        self.builtins.update({
            "abs": torch.abs, "sign": torch.sign, "ReLU": torch.relu, "StopGrad": lambda x: x.detach(),
            "maximum": self._maximum, "minimum": self._minimum, "clip": self._clip, "Concat": _concat,
            "OneHot": lambda i, n: (torch.arange(int(n)) == i.long().unsqueeze(-1)).to(d),
            "\\mathbf{I}": lambda n: torch.eye(int(n), dtype=d),
            "diag": lambda x: torch.diag_embed(x) if x.dim() == 1 else torch.diagonal(x, dim1=-2, dim2=-1),
        })
        self.builtins.update({
            "det": self.det,
            "Tr": lambda a: torch.diagonal(a, dim1=-2, dim2=-1).sum(-1),
            "tr": lambda a: torch.diagonal(a, dim1=-2, dim2=-1).sum(-1),
        })

    # ---- values ----
    def pos(self, node: A.Node) -> str:
        return f"{self.filename}:{node.span.line}:{node.span.column}"

    def num(self, v) -> torch.Tensor:
        if isinstance(v, bool):
            return torch.tensor(v)
        if isinstance(v, int):
            return torch.tensor(v, dtype=torch.int64)
        return torch.tensor(float(v), dtype=self.dtype)

    def tensor(self, v):
        if isinstance(v, torch.Tensor):
            return v
        if isinstance(v, (bool, int, float)):
            return self.num(v)
        return v

    def flt(self, x: torch.Tensor) -> torch.Tensor:
        """x in the module's floating dtype (integers and booleans converted)."""
        x = self.tensor(x)
        return x if x.dtype == self.dtype else x.to(self.dtype)

    def _promote(self, *xs):
        xs = [self.tensor(x) for x in xs]
        dt = xs[0].dtype
        for x in xs[1:]:
            dt = torch.promote_types(dt, x.dtype)
        return [x.to(dt) for x in xs]

    def _maximum(self, a, b):
        a, b = self._promote(a, b)
        return torch.maximum(a, b)

    def _minimum(self, a, b):
        a, b = self._promote(a, b)
        return torch.minimum(a, b)

    def _std(self, x):
        """The population std from the deviations from x's first element (choices.md#standard-
        deviation-at-zero-variance). Deviations that are rounding alone (elements equal in the
        math, computed in different orders) make its gradient rounding noise over rounding
        noise, where equal elements give the subgradient 0: noted infinitely ill-conditioned."""
        if not x.numel():
            return torch.std(x, correction=0)
        d = x - x.reshape(-1)[0]
        if self.conditions is not None and x.is_floating_point():
            with torch.no_grad():
                spread, scale = float(d.abs().max()), float(x.abs().max())
                if 0 < spread <= 64 * torch.finfo(x.dtype).eps * scale:
                    self.conditions.append(math.inf)
        return torch.std(d, correction=0)

    def _clip(self, x, lo, hi):
        x, lo, hi = self._promote(x, lo, hi)
        return torch.clamp(x, min=lo, max=hi)

    # ---- modules, functions, statements ----
    def call_module(self, mod: A.Module, args, params):
        env = dict(self.globals)
        for decl, value in zip(mod.inputs, args):
            env[decl.name.symbol] = self.input_value(decl, value)
        for decl, value in zip(mod.params, params):
            value = self.param_value(value)
            if isinstance(value, _PyNumber):  # a number, not a tensor, in compiled code: its tests are Python's
                self.python_symbols.add(decl.name.symbol)
                value = value.value
            env[decl.name.symbol] = value
        self.bind_dims(mod, env)
        return self.body(mod.body, env)

    def input_value(self, decl: A.Decl, v):
        v = self.tensor(v)
        if not isinstance(v, torch.Tensor):
            return v
        real = decl.annotation is not None and decl.annotation.field == "R"
        if v.is_floating_point() or real:
            return self.flt(v)
        return v

    def param_value(self, v):
        if isinstance(v, (bool, int, float)):
            return _PyNumber(self.num(v))
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return self.flt(v)
        if isinstance(v, (bool, int, float)):
            return self.num(v)
        return v

    def bind_dims(self, owner, env) -> None:
        decls = (owner.inputs + owner.params) if isinstance(owner, A.Module) else owner.args
        for d in decls:
            if d.annotation is None:
                continue
            for axis, dim in enumerate(d.annotation.dims):
                if isinstance(dim, A.Ref) and dim.symbol not in env:
                    env[dim.symbol] = torch.tensor(self.tensor(env[d.name.symbol]).shape[axis])

    def body(self, stmts, env):
        members = _group_members(stmts)
        last = [i for i, stmt in enumerate(stmts) if isinstance(stmt, A.Definition) and stmt.target.symbol in members]
        for i, stmt in enumerate(stmts):
            if isinstance(stmt, A.Definition) and stmt.target.symbol in members:
                env[stmt.target.symbol] = _Lazy(self, stmt, env)  # sees later members: env is shared
                if i == last[-1]:  # every statement is evaluated, read or not: the members too, here,
                    # step by step (LANGUAGE.md 5: every member's element t before any at t + 1)
                    lazies = [env[stmts[j].target.symbol] for j in last]
                    ranges = [lazy.bounds() for lazy in lazies]
                    for t in range(min(lo for lo, _ in ranges), max(hi for _, hi in ranges) + 1):
                        for lazy, (lo, hi) in zip(lazies, ranges):
                            if lo <= t <= hi:
                                lazy.element(t)
                    for j, lazy in zip(last, lazies):  # read afterwards as a whole vector, like any other
                        env[stmts[j].target.symbol] = lazy.finished()
                continue
            if isinstance(stmt, A.Return):
                for b in stmt.where:
                    self.definition(b, env)
                values = tuple(self.tensor(self.eval(v, env)) for v in stmt.values)
                return values[0] if len(values) == 1 else values
            self.definition(stmt, env)
        raise AssertionError("a body without \\Return")

    def definition(self, d: A.Definition, env) -> None:
        sym = d.target.symbol
        if d.params is not None:
            env[sym] = _Function(self, [p.symbol for p in d.params], d.where, d.value, env)
            return
        value = A.strip(d.value)
        self.definitions[sym] = value
        if d.where and isinstance(value, A.SetBuilder) and len(value.bounds) == 1:
            lazy = _Lazy(self, d, dict(env))
            lazy.env[sym] = lazy  # it may read itself
            env[sym] = lazy.finished()
            return
        for b in d.where:
            self.definition(b, env)
        if sym.extra.get("recurrence"):
            env[sym] = self.recurrence(sym, value, env)
        else:
            env[sym] = self.eval(d.value, env)

    def bind_where(self, bindings, env, per_element: bool = False) -> None:
        """Bind `\\where` bindings in env, each computed when first read."""
        for b in bindings:
            if b.params is not None:
                self.definition(b, env)
            else:
                env[b.target.symbol] = _Thunk(lambda b=b: self._bound_value(b, env), per_element)

    def _bound_value(self, b: A.Definition, env):
        self.definition(b, env)
        value = env[b.target.symbol]
        return value.whole() if isinstance(value, _Lazy) else value

    def recurrence(self, sym, builder: A.SetBuilder, env):
        bound = builder.bounds[0]
        self.python_symbols.add(bound.var.symbol)
        lo, hi = self.bounds(bound, env)
        partial = _Partial(sym, lo)
        env[sym] = partial
        for t in range(lo, hi + 1):
            env[bound.var.symbol] = torch.tensor(t)
            partial.elements.append(self.tensor(self.eval(builder.element, env)))
        env.pop(bound.var.symbol, None)
        return self.finished(partial.elements, builder, env)

    def finished(self, items, builder: A.SetBuilder, env) -> _Finished:
        value = self.stack(items, builder, env)
        return _Finished(value, [x.expand(value.shape[1:]) for x in self._promote(*items)] if items else [])

    # ---- expressions ----
    def eval(self, e, env):
        match e:
            case A.Num():
                return self.num(e.value)
            case A.Constant():
                return self.num({"\\pi": math.pi, "e": math.e, "\\infty": math.inf}[e.key])
            case A.Paren() | A.Group():
                return self.eval(e.expr, env)
            case A.Ref():
                if e.symbol.kind == S.MODULE:
                    raise TypeError("a module cannot be called directly")
                value = env[e.symbol]
                if isinstance(value, _Thunk):
                    return value.force()
                return value.whole() if isinstance(value, (_Lazy, _Finished)) else value
            case A.Unary(op="not"):
                return torch.logical_not(self.eval(e.operand, env))
            case A.Unary(op="-"):
                return -self.eval(e.operand, env)
            case A.Unary():
                return self.eval(e.operand, env)
            case A.Binary(op="and" | "or"):
                fn = torch.logical_and if e.op == "and" else torch.logical_or
                return fn(self.tensor(self.eval(e.left, env)), self.tensor(self.eval(e.right, env)))
            case A.Binary(op="@"):
                left = A.strip(e.left)
                if isinstance(left, A.Power) and _written_minus_one(left.exponent):
                    base = self.tensor(self.eval(left.base, env))
                    if base.dim() >= 2:  # LANGUAGE.md 6: `A^{-1} @ b` does not form the inverse: it solves
                        return self.solve(base, self.tensor(self.eval(e.right, env)))
                a, b = self.eval(e.left, env), self.eval(e.right, env)
                if e.spelling == "\\cdot" and (a.dim() == 0 or b.dim() == 0):
                    return a * b
                if a.dim() == 0 or b.dim() == 0:
                    raise TypeError("`@` with a scalar operand")
                a, b = self._promote(a, b)
                return a @ b
            case A.Binary() | A.Juxtapose():
                a, b = self.eval(e.left, env), self.eval(e.right, env)
                op = "*" if isinstance(e, A.Juxtapose) else e.op
                if op == "+":
                    return a + b
                if op == "-":
                    return a - b
                if op == "*":
                    return a * b
                return self.flt(a) / self.flt(b)
            case A.Frac():
                return self.flt(self.eval(e.numerator, env)) / self.flt(self.eval(e.denominator, env))
            case A.Compare():
                a, b = self.eval(e.left, env), self.eval(e.right, env)
                self.note_tie(a, b)
                return {"<": torch.lt, ">": torch.gt, "<=": torch.le, ">=": torch.ge, "==": torch.eq,
                        "!=": torch.ne}[e.op](a, b)
            case A.Power():
                return self.power(e, env)
            case A.Transpose():
                x = self.eval(e.operand, env)
                return x if x.dim() < 2 else x.transpose(-1, -2)
            case A.Sqrt(degree=None):
                return torch.sqrt(self.flt(self.eval(e.radicand, env)))
            case A.Sqrt():
                return self.flt(self.eval(e.radicand, env)) ** (1.0 / self.flt(self.eval(e.degree, env)))
            case A.Bars():
                x = self.eval(e.operand, env)
                if isinstance(x, (list, tuple, torch.nn.ModuleList)):
                    return torch.tensor(len(x))
                return torch.tensor(x.shape[0]) if x.dim() >= 1 else torch.abs(x)
            case A.Norm():
                order = {None: 2, "1": 1, "2": 2, "inf": math.inf}[e.order]
                return torch.linalg.vector_norm(self.flt(self.eval(e.operand, env)), ord=order)
            case A.Rounding():
                x = self.eval(e.operand, env)
                if not x.is_floating_point():
                    return x
                self.note_tie(x, torch.round(x))  # x within rounding of an integer: either side of it
                return (torch.floor(x) if e.kind == "floor" else torch.ceil(x)).long()
            case A.Indicator():
                return self.flt(self.eval(e.condition, env))
            case A.Index():
                return self.index(e, env)
            case A.Call():
                return self.call(e, env)
            case A.Builtin():
                return self.builtin_function(e.name)
            case A.BuiltinCall():
                args = [self.eval(a, env) for a in e.args]
                if e.name == "sign" and args and isinstance(args[0], torch.Tensor):
                    self.note_tie(args[0], torch.zeros_like(args[0]))  # a comparison with 0
                if e.name in ("sin", "cos", "tan") and args and isinstance(args[0], torch.Tensor):
                    self.note_periodic(args[0])
                return self.builtin_function(e.name)(*args)
            case A.Reduce():
                return self.reduce(e, env)
            case A.BigOp():
                return self.bigop(e, env)
            case A.SetBuilder():
                return self.setbuilder(e, env)
            case A.Cases():
                return self.cases(e, env)
            case A.LogBase():
                x, b = self.flt(self.eval(e.operand, env)), self.eval(e.base, env)
                if isinstance(A.strip(e.base), A.Num) and A.strip(e.base).value in (2, 10):
                    return torch.log2(x) if A.strip(e.base).value == 2 else torch.log10(x)
                return torch.log(x) / torch.log(self.flt(b))
            case A.Matrix():
                return self.matrix(e, env)
        raise TypeError(f"the reference has no rule for {type(e).__name__}")

    def matrix(self, e: A.Matrix, env):
        """Entries broadcast to one shape and stacked, rows on the first axis; one row or one
        column gives a vector; the module's floating dtype."""
        rows = [[self.flt(self.eval(x, env)) for x in row.entries] for row in e.rows]
        shape = torch.broadcast_shapes(*(x.shape for row in rows for x in row))
        out = torch.stack([torch.stack([x.expand(shape) for x in row]) for row in rows])
        if len(rows) == 1:
            return out[0]
        return out[:, 0] if len(rows[0]) == 1 else out

    def builtin_function(self, name: str):
        fn = self.builtins[name]
        if name in self.float_args:
            return lambda *xs: fn(*(self.flt(x) for x in xs))
        return lambda *xs: fn(*(self.tensor(x) for x in xs))

    def solve(self, a, b):
        """A^{-1} @ b as torch.linalg.solve (b a vector or a matrix)."""
        self.note_matrix(a)
        a, b = self.flt(a), self.flt(b)
        if b.dim() == 1:
            x, info = torch.linalg.solve_ex(a, b.unsqueeze(-1))
            return self.singular_nan(x.squeeze(-1), info, 1)
        x, info = torch.linalg.solve_ex(a, b)
        return self.singular_nan(x, info, 2)

    def singular_nan(self, x, info, trailing: int):
        """x with NaN for each singular matrix (info > 0): it has no inverse, so neither
        A^{-1} nor A^{-1} @ b exists (docs/reference/choices.md#singular-matrices); noted as
        infinitely ill-conditioned (a nearly singular matrix's result is rounding)."""
        bad = info != 0
        if not bool(bad.any()):
            return x
        if self.conditions is not None:
            self.conditions.append(math.inf)
        return torch.where(bad.reshape(bad.shape + (1,) * trailing), math.nan, x)

    def det(self, a):
        """det(A), noting A's condition; a determinant out of the dtype's range (inf, or 0 from
        a nonsingular A) is noted as infinitely ill-conditioned: compiled code takes log det(A)
        as logdet(A), which never forms it, so where the reference's log det is ±inf the
        module's finite value is the math's (docs/reference/language.md, "Linear algebra")."""
        self.note_matrix(a)
        d = torch.linalg.det(self.flt(a))
        if self.conditions is not None:
            with torch.no_grad():
                out_of_range = ~torch.isfinite(d) | (d == 0)
                if bool(torch.isfinite(a).all()) and bool(out_of_range.any()):
                    self.conditions.append(math.inf)
        return d

    def note_matrix(self, a: torch.Tensor) -> None:
        """Record n * cond(a) (the relative error a solve, inverse or determinant of it may
        have, in units of the dtype's epsilon), where conditions are recorded (see run)."""
        if self.conditions is None:
            return
        with torch.no_grad():
            a = a.detach().double()
            if not bool(torch.isfinite(a).all()):
                self.conditions.append(math.inf)  # an infinite or NaN entry: infinitely ill-conditioned
                return
            cond = torch.linalg.cond(a)
            cond = float(cond.max()) if cond.numel() else 1.0
            self.conditions.append(a.shape[-1] * (cond if math.isfinite(cond) else math.inf))

    def note_periodic(self, x) -> None:
        """Where conditions are recorded (see run): the sine, cosine or tangent of x changes by
        about |x| times x's relative rounding error (sin(1.2e45) of a product taken in another
        order is any number in [-1, 1]), so record max |x| as a condition (it matters only
        where |x| eps exceeds the tolerance)."""
        if self.conditions is None or not x.is_floating_point():
            return
        with torch.no_grad():
            finite = x.detach()[torch.isfinite(x.detach())]
            big = float(finite.abs().max()) if finite.numel() else 0.0
        if big > 1.0:
            self.conditions.append(big)

    def note_tie(self, a, b) -> None:
        """Where conditions are recorded (see run): a comparison of floats that differ by
        rounding alone (not exactly equal: ties are compared) is decided by rounding, so what
        follows from it may be anything: infinitely ill-conditioned. (b <= c with c = b times
        a softmax's sum: one order of summing gives 1 + eps, another 1.)"""
        if self.conditions is None or not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return
        if not (a.is_floating_point() or b.is_floating_point()):
            return
        with torch.no_grad():
            eps = torch.finfo(a.dtype if a.is_floating_point() else b.dtype).eps
            a, b = a.detach().double(), b.detach().double()
            gap = (a - b).abs()
            near = (gap > 0) & (gap <= 64 * eps * torch.maximum(a.abs(), b.abs()).clamp(min=1.0))
            if bool(near.any()):
                self.conditions.append(math.inf)

    def power(self, e: A.Power, env):
        base, exp = self.eval(e.base, env), self.eval(e.exponent, env)
        if base.dim() >= 2 and _written_minus_one(e.exponent):
            self.note_matrix(base)
            x, info = torch.linalg.inv_ex(self.flt(base))  # A^{-1}: the matrix inverse
            return self.singular_nan(x, info, 2)
        if not base.is_floating_point() and not exp.is_floating_point() and not signs.nonnegative(e.exponent):
            return self.flt(base) ** self.flt(exp)  # the exponent may be negative: a float (i^{-1} is 1/i)
        return base ** exp

    def call(self, e: A.Call, env):
        func = self.eval(e.func, env)
        args = [self.tensor(self.eval(a, env)) for a in e.args]
        found = forward_source(func) if isinstance(func, torch.nn.Module) else None
        if found is None and isinstance(func, torch.nn.Module):
            spec = getattr(getattr(type(func), "forward", None), "__kokoyi_spec__", None) or \
                getattr(getattr(func, "_forward", None), "__kokoyi_spec__", None)
            if spec is not None and spec.name in self.sources:
                found = (*self.sources[spec.name], spec.name)
        if found is not None:  # a Kokoyi module given as a parameter: interpret its source too
            text, filename, name = found
            params = func.get_parameters() if hasattr(func, "get_parameters") else ()
            out = run(text, name, args, params, filename=filename, sources=self.sources)
            # it computes in its own dtype (LANGUAGE.md 6a); its floats reach the caller in the caller's
            if isinstance(out, tuple):
                return tuple(self.flt(o) if o.is_floating_point() else o for o in out)
            return self.flt(out) if out.is_floating_point() else out
        return func(*args)

    # ---- indexing ----
    def index(self, e: A.Index, env):
        target = A.strip(e.target)
        items = list(e.items)
        if isinstance(target, A.Ref) and isinstance(env.get(target.symbol), _Lazy):
            lazy = env[target.symbol]
            t = int(self.eval(items[0], env))
            lo, hi = lazy.bounds()
            if lazy.group not in self.computing:  # read by no member of its group: a vector, Python's indices
                n = hi - lo + 1
                if not -n <= t - lo < n:
                    raise RefRuntimeError([self.pos(e)], f"index {t - lo} is out of range for an axis of length {n}")
                t = lo + (t - lo) % n
            if not lo <= t <= hi:
                raise RefRuntimeError([self.pos(target), self.pos(e)],
                                      f"the recurrence reads element {t - lo}, which does not exist")
            x = lazy.element(t)
            items = items[1:]
        elif isinstance(target, A.Ref) and isinstance(env.get(target.symbol), _Partial):
            partial = env[target.symbol]
            t = int(self.eval(items[0], env))
            offset = t - partial.lower
            if not 0 <= offset < len(partial.elements):
                raise RefRuntimeError([self.pos(target), self.pos(e)],
                                      f"the recurrence reads element {offset}, which does not exist")
            x = partial.elements[offset]
            items = items[1:]
        else:
            x = self.eval(e.target, env)
        return self._index_rest(e, x, items, env)

    def _index_rest(self, e: A.Index, x, items, env):
        """x read with the index items left (slices, integers, tensors of indices)."""
        axis = 0
        for item in items:
            if isinstance(item, A.Slice):
                n = x.shape[axis] if isinstance(x, torch.Tensor) else len(x)
                start = None if item.start is None else int(self.eval(item.start, env))
                stop = None if item.stop is None else int(self.eval(item.stop, env))
                lo, hi, _ = slice(start, stop).indices(n)
                x = x.narrow(axis, lo, max(hi - lo, 0))
                axis += 1
                continue
            i = self.tensor(self.eval(item, env))
            if isinstance(x, (list, tuple, torch.nn.ModuleList)):
                k = int(i)
                if not -len(x) <= k < len(x):
                    raise RefRuntimeError([self.pos(e), self.pos(item)], f"index {k} is out of range")
                x = x[k]
                continue
            if i.is_floating_point() or i.dtype == torch.bool:
                raise TypeError("an index must be an integer")
            n = x.shape[axis]
            if bool(((i < -n) | (i >= n)).any()):
                bad = i[(i < -n) | (i >= n)].reshape(-1)[0]
                if self.failed_reads is None:
                    raise RefRuntimeError([self.pos(e), self.pos(item)],
                                          f"index {int(bad)} is out of range for an axis of length {n}")
                self.failed_reads += [self.pos(e), self.pos(item)]
                if n == 0:  # nothing to clamp to: zeros of the shape the read has, and go on
                    x = x.new_zeros(tuple(x.shape[:axis]) + tuple(i.shape) + tuple(x.shape[axis + 1:]))
                    axis += i.dim()
                    continue
                i = i.clamp(-n, n - 1)
            if i.dim() == 0:
                x = x.select(axis, int(i) % n)
            else:
                x = x.index_select(axis, (i % n).reshape(-1)).unflatten(axis, i.shape)
                axis += i.dim()
        return x

    # ---- index ranges ----
    def bounds(self, b: A.Bound, env) -> tuple[int, int]:
        """Inclusive integer bounds: a lower bound that is not an integer rounds up, an upper one down."""
        lo, hi = self.tensor(self.eval(b.lower, env)), self.tensor(self.eval(b.upper, env))
        lo = int(lo) if not lo.is_floating_point() else math.ceil(float(lo))
        hi = int(hi) if not hi.is_floating_point() else math.floor(float(hi))
        return lo, hi

    def loop(self, b: A.Bound, env):
        """The values of b's index, bound in env in turn."""
        lo, hi = self.bounds(b, env)
        for i in range(lo, hi + 1):
            env[b.var.symbol] = torch.tensor(i)
            yield i
        env.pop(b.var.symbol, None)

    def bigop(self, e: A.BigOp, env):
        items = [self.tensor(self.eval(e.body, env)) for _ in self.loop(e.bound, env)]
        lo = self.bounds(e.bound, env)[0] if items else 0
        if e.op in ("sum", "prod"):
            if not items:
                return self.empty_value(0 if e.op == "sum" else 1, e.body, env, e.bound)
            out = items[0]
            for x in items[1:]:
                out = out + x if e.op == "sum" else out * x
            return out
        if not items:
            name = {"mean": "\\mathbb{E}"}.get(e.op, "\\" + e.op)
            if self.failed_reads is None:
                raise RefRuntimeError(self.pos(e), f"{name} over an empty range")
            # going on past failures (see run; a probe of an empty range's shape): a value of
            # the body's shape, so that what reads it can go on too
            self.failed_reads.append(self.pos(e))
            probe = self.probe(e.body, env, [e.bound])
            dtype = torch.int64 if e.op in ("argmax", "argmin") else (
                self.dtype if e.op == "mean" or probe is None else probe.dtype)
            return torch.zeros(() if probe is None else probe.shape, dtype=dtype)
        items = self._promote(*items)
        shape = torch.broadcast_shapes(*(x.shape for x in items))
        stacked = torch.stack([x.expand(shape) for x in items])
        if e.op == "mean":
            out = items[0].expand(shape)
            for x in items[1:]:
                out = out + x
            return self.flt(out) / len(items)
        if e.op == "max":
            return stacked.amax(0)
        if e.op == "min":
            return stacked.amin(0)
        return (stacked.argmax(0) if e.op == "argmax" else stacked.argmin(0)) + lo

    def empty_value(self, v: int, body, env, bound) -> torch.Tensor:
        """0 or 1 for an empty sum or product: integer when the body is, shaped like the body
        where that can be known (the body at some index value, computed without gradient)."""
        probe = self.probe(body, env, [bound])
        if probe is not None:
            return torch.full(probe.shape, v, dtype=probe.dtype if probe.dtype != torch.bool else torch.int64)
        env[bound.var.symbol] = torch.tensor(0)
        try:
            floating = self.is_float(body, env)
        finally:
            env.pop(bound.var.symbol, None)
        return self.num(float(v) if floating else v)

    def probe(self, e, env, bounds):
        """e with the indices of bounds at their lower bound, upper bound or 0 (the first that
        can be computed), to learn the shape of elements an empty range does not compute."""
        with torch.no_grad():
            for pick in range(6):  # (the last three read past bad indices: only the shape matters)
                saved, failed = dict(env), self.failed_reads
                if pick >= 3:
                    self.failed_reads = []
                try:
                    for b in bounds:
                        lo, hi = self.bounds(b, env)
                        env[b.var.symbol] = torch.tensor((lo, hi, 0)[pick % 3])
                    return self.tensor(self.eval(e, env))
                except Exception:  # noqa: BLE001, S112 - that index value is outside: try another
                    continue
                finally:
                    env.clear()
                    env.update(saved)
                    self.failed_reads = failed
        return None

    def setbuilder(self, e: A.SetBuilder, env):
        out = self._table(e, e.bounds, env)
        if _written_number(e.element):
            out = self.flt(out)  # a set-builder of literals takes the module's floating dtype
        return out

    def _table(self, e: A.SetBuilder, bounds, env):
        items = []
        for _ in self.loop(bounds[0], env):
            items.append(self._table(e, bounds[1:], env) if len(bounds) > 1 else self.tensor(self.eval(e.element, env)))
        return self.stack(items, e, env)

    def stack(self, items, builder: A.SetBuilder, env):
        if not items:
            probe = self.probe(builder.element, env, builder.bounds)
            if probe is not None:
                return torch.zeros((0,) + tuple(probe.shape), dtype=probe.dtype)
            for b in builder.bounds:
                env[b.var.symbol] = torch.tensor(0)
            try:
                floating = self.is_float(builder.element, env)
            finally:
                for b in builder.bounds:
                    env.pop(b.var.symbol, None)
            return torch.zeros(0, dtype=self.dtype if floating else torch.int64)
        items = self._promote(*items)
        shape = torch.broadcast_shapes(*(x.shape for x in items))
        return torch.stack([x.expand(shape) for x in items])

    def reduce(self, e: A.Reduce, env):
        args = [self.tensor(self.eval(a, env)) for a in e.args]
        if len(args) > 1:
            out = args[0]
            for x in args[1:]:
                out = self._maximum(out, x) if e.op == "max" else self._minimum(out, x)
            return out
        x = args[0]
        if e.op == "prod" and x.is_floating_point():  # a loop of `*`: each factor's gradient the others' product
            out = torch.ones((), dtype=x.dtype)
            for factor in x.flatten():
                out = out * factor
            return out
        return {"sum": torch.sum, "prod": torch.prod, "max": torch.amax, "min": torch.amin,
                "argmax": torch.argmax, "argmin": torch.argmin}[e.op](x)

    # ---- cases ----
    def cases(self, e: A.Cases, env):
        """The first row whose condition holds; with tensor conditions, element by element.

        A condition is evaluated only when some element is still undecided, and a row's value
        only when the row applies to some element, so a row that never applies is never read.
        """
        remaining = None  # None: every element is undecided (shape still unknown)
        taken = []  # (row, mask) for each row that applies somewhere
        for row in e.rows:
            if remaining is not None and not bool(remaining.any()):
                break
            cond = torch.tensor(True) if row.condition is None else self.tensor(self.eval(row.condition, env))
            cond = cond.to(torch.bool)
            take = cond if remaining is None else remaining & cond
            remaining = ~cond if remaining is None else remaining & ~cond
            if bool(take.any()):
                taken.append((row, take))
        values = [(self.row_value(e, row, take, env), take) for row, take in taken]
        untaken = self.computed_rows(e, env, {id(row) for row, _ in taken})
        floating = any(self.is_float(row.value, env) for row in e.rows)
        if e.rows[-1].condition is not None and not all(_on_indices(r.condition) for r in e.rows):
            floating = True  # NaN may fill where no row applies: a float whether or not it does here
        shapes = [remaining.shape] + [t.shape for _, t in values] + [v.shape for v, _ in values]
        shape = torch.broadcast_shapes(*shapes)
        remaining = remaining.expand(shape)
        if bool(remaining.any()):
            # docs/reference/choices.md#cases-without-otherwise: conditions on indices and
            # dimensions only make it an error; data-dependent ones leave NaN there.
            if all(_on_indices(row.condition) for row in e.rows if row.condition is not None):
                if self.failed_reads is None:
                    raise RefRuntimeError(self.pos(e), "no row of the cases applies")
                # going on past failures (see run): a later step may fail too, and compiled
                # code, computing the steps' reads together, may meet that one first
                self.failed_reads.append(self.pos(e))
            floating = True
            nan_row = (torch.tensor(math.nan, dtype=self.dtype), remaining)
            values = values + [nan_row]
        if not values:  # (only when the shape is empty: nothing to compute)
            return torch.zeros(shape, dtype=self.dtype if floating else torch.int64)
        out = self._select(values, shape, floating)
        if out.is_floating_point():
            for row in untaken:
                out = out + self.zero_link(row.value, env)
        return out

    def row_value(self, e: A.Cases, row: A.CaseRow, take: torch.Tensor, env) -> torch.Tensor:
        """The row's value; when it is element-wise and applies to some elements only, its
        float reads pass gradient only where it applies: its computation is discarded
        elsewhere, derivatives and all (docs/reference/choices.md#gradients-through-cases)."""
        if take.dim() == 0 or bool(take.all()) or not self.elementwise(row.value, e, env):
            return self.tensor(self.eval(row.value, env))
        local = dict(env)
        for n in _differentiable_walk(row.value):
            v = env.get(n.symbol) if isinstance(n, A.Ref) else None
            v = v.force() if isinstance(v, _Thunk) else v.whole() if isinstance(v, _Finished) else v
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.requires_grad:
                local[n.symbol] = _gradient_where(v, take)
        return self.tensor(self.eval(row.value, local))

    def elementwise(self, value, e: A.Cases, env) -> bool:
        """Whether each element of a row's value is computed from the same elements of what it
        reads (compiled code's test, kokoyi/compiler/batch/gradients.py, on the lowered row: a
        call, an index or a per-element `\\where` binding that the row alone reads make it not)."""
        for n in A.walk(value):
            match n:
                case A.Name() | A.Paren() | A.Group() | A.Num() | A.Constant() | A.Unary() | A.Compare() | A.Juxtapose() \
                        | A.Frac() | A.Sqrt() | A.Rounding() | A.Indicator():
                    continue
                case A.Binary() if n.op != "@":
                    continue
                case A.Power() if not _written_minus_one(n.exponent):
                    continue
                case A.BuiltinCall() if n.name in _ELEMENTWISE_BUILTINS:
                    continue
                case A.Reduce() if len(n.args) > 1:
                    continue
                case A.Ref():
                    v = env.get(n.symbol)
                    if isinstance(v, _Thunk) and v.per_element and not any(
                            isinstance(c, A.Ref) and c.symbol is n.symbol
                            for r in e.rows if r.condition is not None for c in A.walk(r.condition)):
                        return False  # compiled code computes it inside the row
                    continue
            return False
        return True

    def computed_rows(self, e: A.Cases, env, taken: set) -> list:
        """The rows of e that a compiled cases computes and that apply nowhere here: a row
        whose condition is data (a tensor) is computed everywhere and selected, one whose
        condition is a Python value (a test on the recurrence step, lengths, literals) is a
        branch taken or not (docs/reference/choices.md#gradients-through-cases)."""
        out = []
        for row in e.rows:
            if row.condition is not None and self.python_value(row.condition, env):
                if bool(self.tensor(self.eval(row.condition, env))):
                    if id(row) not in taken:
                        out.append(row)
                    break
                continue
            if id(row) not in taken:
                out.append(row)
        return out

    def python_value(self, e, env) -> bool:
        """Whether compiled code knows e as a Python value (not a tensor)."""
        e = A.strip(e)
        match e:
            case A.Num() | A.Constant():
                return True
            case A.Ref():
                if e.symbol.kind == S.DIM or e.symbol in self.python_symbols:
                    return True
                d = self.definitions.get(e.symbol)
                return d is not None and e.symbol.kind != S.INDEX and self.python_value(d, env)
            case A.Bars():  # a length is a Python number; |s| of a scalar is its absolute value
                x = self.probe(e.operand, env, [])
                return x is None or not isinstance(x, torch.Tensor) or x.dim() >= 1 or \
                    self.python_value(e.operand, env)
            case A.Unary() | A.Rounding():
                return self.python_value(e.operand, env)
            case A.Binary() | A.Compare() | A.Juxtapose():
                return self.python_value(e.left, env) and self.python_value(e.right, env)
            case A.Frac():
                return self.python_value(e.numerator, env) and self.python_value(e.denominator, env)
            case A.Power():
                return self.python_value(e.base, env) and self.python_value(e.exponent, env)
            case A.Sqrt(degree=None):  # (an n-th root is a tensor: torch computes it)
                return self.python_value(e.radicand, env)
            case A.BuiltinCall() if e.name in _PYTHON_BUILTINS:
                return all(self.python_value(a, env) for a in e.args)
            case A.Cases():  # a branch on Python conditions: Python where every row it may take is
                for row in e.rows:
                    known = None
                    if row.condition is not None:
                        if not self.python_value(row.condition, env):
                            return False
                        known = self.known(row.condition)  # simplify drops the rows it decides
                        if known is False:
                            continue
                    if not self.python_value(row.value, env):
                        return False
                    if row.condition is None or known:
                        break
                return True
        return False

    def known(self, e):
        """The number compiled code folds e to before it runs (simplify's rules: numbers,
        constants and the statements made of them alone, not lengths, parameters or steps),
        else None."""
        e = A.strip(e)
        match e:
            case A.Num():
                return e.value
            case A.Constant():
                return {"\\pi": math.pi, "e": math.e}.get(e.key)
            case A.Ref():
                d = self.definitions.get(e.symbol)
                if d is None or e.symbol.kind in (S.INDEX, S.DIM) or e.symbol in self.python_symbols:
                    return None
                return self.known(d)
            case A.Unary(op="+"):
                return self.known(e.operand)
            case A.Unary(op="-"):
                return self._fold("neg", e.operand)
            case A.Binary(op="+" | "-" | "*" | "/") | A.Compare():
                return self._fold(_FOLDED[e.op], e.left, e.right)
            case A.Juxtapose():
                return self._fold("mul", e.left, e.right)
            case A.Frac():
                return self._fold("div", e.numerator, e.denominator)
            case A.Power():
                return self._fold("pow", e.base, e.exponent)
            case A.Sqrt(degree=None):
                return self._fold("sqrt", e.radicand)
        return None

    def _fold(self, op: str, *operands):
        values = [self.known(x) for x in operands]
        if any(v is None or isinstance(v, bool) for v in values):
            return None
        return simplify.fold(op, values)

    def zero_link(self, e, env) -> torch.Tensor:
        """0, linked to every float value e reads from outside it: a row that compiled code
        computes and discards passes them a zero gradient (and 0 times an undefined
        derivative in what computed them is NaN, as in torch)."""
        out = torch.zeros((), dtype=self.dtype)
        seen = set()
        for n in _differentiable_walk(e, lambda b: self.known_empty(b, env), lambda c: self.branch_rows(c, env)):
            if not isinstance(n, A.Ref) or n.symbol in seen:
                continue
            seen.add(n.symbol)
            v = env.get(n.symbol)
            v = v.whole() if isinstance(v, _Finished) else v
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.requires_grad:
                out = out + torch.where(torch.zeros((), dtype=torch.bool), v, 0).sum().to(self.dtype)
        return out

    def branch_rows(self, e: A.Cases, env) -> list:
        """The rows of a cases inside a discarded row that compiled code computes: a Python
        condition is a branch, so rows after one that holds are never computed (all rows
        where a condition cannot be computed here, as under an inner index)."""
        try:
            return self.computed_rows(e, env, set())
        except Exception:  # noqa: BLE001 - not computable here: assume every row is computed
            return list(e.rows)

    def known_empty(self, b: A.Bound, env) -> bool:
        """Whether b's range is empty here: a big operator or set-builder over it reads nothing,
        so its body passes no gradient at all (docs/reference/choices.md#gradients-through-cases)."""
        try:
            lo, hi = self.bounds(b, env)
        except Exception:  # noqa: BLE001 - not computable here: assume the body is computed
            return False
        return hi < lo

    def _select(self, values, shape, floating):
        dtype = self._promote(*(v for v, _ in values))[0].dtype
        if floating:
            dtype = torch.promote_types(dtype, self.dtype)
        if len(values) == 1:  # one row applies everywhere
            return values[0][0].expand(shape).to(dtype)
        values = [(v.expand(shape), t.expand(shape)) for v, t in values]
        out = []
        for p in itertools.product(*(range(n) for n in shape)):
            for v, t in values:
                if bool(t[p]):
                    out.append(v[p].to(dtype))
                    break
        if not out:
            return torch.zeros(shape, dtype=dtype)
        return torch.stack(out).reshape(shape)

    # ---- static floating-or-integer kind (for values never computed: empty ranges, rows not taken) ----
    def is_float(self, e, env) -> bool:
        match e:
            case A.Num():
                return isinstance(e.value, float)
            case A.Constant() | A.Frac() | A.Sqrt() | A.Norm() | A.Indicator():
                return True
            case A.Call():  # a function of integers may be an integer (sq(u) = u * u at 2): compute it
                x = self.probe(e, env, [])
                return self.call_is_float(e, env) if x is None else x.is_floating_point()
            case A.Paren() | A.Group():
                return self.is_float(e.expr, env)
            case A.Ref():
                v = env.get(e.symbol)
                if isinstance(v, _Partial):
                    return bool(v.elements) and v.elements[0].is_floating_point()
                if isinstance(v, _Finished):
                    return v.value.is_floating_point()
                if isinstance(v, _Lazy):
                    return not v.elements or next(iter(v.elements.values())).is_floating_point()
                if isinstance(v, _Thunk):
                    try:
                        v = v.force()
                    except Exception:  # noqa: BLE001 - a binding that cannot be computed here: assume float
                        return True
                return isinstance(v, torch.Tensor) and v.is_floating_point()
            case A.Unary(op="not") | A.Compare() | A.Rounding() | A.Binary(op="and" | "or"):
                return False
            case A.Unary() | A.Transpose():
                return self.is_float(e.operand, env)
            case A.Binary(op="/"):
                return True
            case A.Binary() | A.Juxtapose():
                return self.is_float(e.left, env) or self.is_float(e.right, env)
            case A.Power():
                return not signs.nonnegative(e.exponent) or self.is_float(e.base, env) or self.is_float(e.exponent, env)
            case A.Bars():  # a length (an integer), or the absolute value of a scalar (its kind)
                x = self.probe(e, env, [])
                return x is not None and x.is_floating_point()
            case A.LogBase() | A.Matrix():
                return True
            case A.Index():
                return self.is_float(e.target, env)
            case A.BuiltinCall():
                # these keep their operands' kind: the trace of integers is a sum of integers
                if e.name in ("abs", "sign", "ReLU", "maximum", "minimum", "clip", "StopGrad", "Concat",
                              "tr", "Tr", "diag"):
                    return any(self.is_float(a, env) for a in e.args)
                return True
            case A.Reduce():
                return e.op not in ("argmax", "argmin") and any(self.is_float(a, env) for a in e.args)
            case A.BigOp():
                return e.op == "mean" or (e.op not in ("argmax", "argmin") and self.is_float(e.body, env))
            case A.SetBuilder():
                return _written_number(e.element) or self.is_float(e.element, env)
            case A.Cases():
                return any(self.is_float(r.value, env) for r in e.rows)
        return True


    def call_is_float(self, e: A.Call, env) -> bool:
        """The kind of a call that cannot be computed here (it reads an element that does not
        exist in a row not taken): a one-line function's body with each parameter bound to a
        number of its argument's kind; anything else is assumed floating."""
        try:
            func = self.eval(e.func, env)
        except Exception:  # noqa: BLE001 - not computable here either
            return True
        if not isinstance(func, _Function) or func.body is not None or func.where:
            return True
        inner = dict(func.env)
        for p, a in zip(func.params, e.args):
            inner[p] = torch.tensor(1.5) if self.is_float(a, env) else torch.tensor(2)
        return self.is_float(func.value, inner)


def _written_minus_one(e) -> bool:
    """Whether an exponent is written as the integer -1 (`A^{-1}`: the matrix inverse)."""
    while isinstance(e, (A.Paren, A.Group)):
        e = e.expr
    if not (isinstance(e, A.Unary) and e.op == "-"):
        return False
    one = e.operand
    while isinstance(one, (A.Paren, A.Group)):
        one = one.expr
    return isinstance(one, A.Num) and type(one.value) is int and one.value == 1


# Element-wise built-ins that keep a Python number a Python number in compiled code (their
# batching family, kokoyi/compiler/builtins.py; max, min and clip make tensors).
_PYTHON_BUILTINS = {name for name, f in FUNCTIONS.items() if BATCHING.get(f.runtime) in ("float", "same", "int")}
def _written_number(e) -> bool:
    """Whether e is a number as written (`2`, `-1`, `(0.5)`): a set-builder of one takes the
    module's floating dtype (LANGUAGE.md 6a)."""
    e = A.strip(e)
    if isinstance(e, A.Unary) and e.op == "-":
        e = A.strip(e.operand)
    return isinstance(e, A.Num)


_FOLDED = {"+": "add", "-": "sub", "*": "mul", "/": "div", "<": "lt", ">": "gt", "<=": "le", ">=": "ge",
           "==": "eq", "!=": "ne"}
_ELEMENTWISE_BUILTINS = {"exp", "Exp", "log", "ln", "sin", "cos", "tan", "sinh", "cosh", "tanh", "abs", "sign",
                          "ReLU", "Sigmoid", "Softplus", "GELU", "maximum", "minimum", "clip", "StopGrad"}


def _gradient_where(v: torch.Tensor, take: torch.Tensor) -> torch.Tensor:
    """v, passing gradient only where take holds at some element v is broadcast to."""
    shape = torch.broadcast_shapes(v.shape, take.shape)
    mask = take.expand(shape)
    extra = len(shape) - v.dim()
    if extra:
        mask = mask.flatten(0, extra - 1).any(0) if extra > 1 else mask.any(0)
    for axis, n in enumerate(v.shape):
        if n == 1 and mask.shape[axis] != 1:
            mask = mask.any(axis, keepdim=True)
    return torch.where(mask, v, v.detach())


def _differentiable_walk(e, empty=lambda bound: False, rows=lambda cases: cases.rows):
    """e and its descendants through which a gradient can flow: not into conditions,
    comparisons, indices, bounds, lengths, roundings, argmax/argmin or \\StopGrad, nor into
    the body of a big operator or set-builder over a range empty(bound) says is empty, nor
    into the rows of a cases that rows(cases) leaves out."""
    yield e
    match e:
        case A.Compare() | A.Indicator() | A.Rounding() | A.Bars() | A.Bound():
            return
        case A.Unary(op="not") | A.Binary(op="and" | "or"):
            return
        case A.BuiltinCall() if e.name in ("StopGrad", "OneHot"):
            return
        case A.BigOp() if e.op in ("argmax", "argmin"):
            return
        case A.Reduce() if e.op in ("argmax", "argmin"):
            return
        case A.CaseRow():
            yield from _differentiable_walk(e.value, empty, rows)
            return
        case A.Index():
            yield from _differentiable_walk(e.target, empty, rows)
            return
        case A.BigOp():
            if not empty(e.bound):
                yield from _differentiable_walk(e.body, empty, rows)
            return
        case A.SetBuilder():
            if not any(empty(b) for b in e.bounds):
                yield from _differentiable_walk(e.element, empty, rows)
            return
        case A.Cases():
            for row in rows(e):
                yield from _differentiable_walk(row, empty, rows)
            return
    for c in A.children(e):
        yield from _differentiable_walk(c, empty, rows)


def _group_members(stmts) -> set:
    """Symbols of the one-index set-builder definitions of a body that read a later one, and of
    those they read: recurrence groups (LANGUAGE.md section 5), computed on demand."""
    builders = {}
    for pos, stmt in enumerate(stmts):
        if isinstance(stmt, A.Definition) and stmt.params is None and isinstance(A.strip(stmt.value), A.SetBuilder) \
                and len(A.strip(stmt.value).bounds) == 1:
            builders[stmt.target.symbol] = pos
    members = set()
    for stmt in stmts:
        if isinstance(stmt, A.Definition) and stmt.target.symbol in builders:
            pos = builders[stmt.target.symbol]
            for n in A.walk(stmt):
                if isinstance(n, A.Ref) and builders.get(n.symbol, -1) > pos:
                    members |= {stmt.target.symbol, n.symbol}
    return members


def _on_indices(e) -> bool:
    """Whether e is built from integer literals, indices and dimensions alone (arithmetic and
    comparisons of those): a cases whose conditions all are so decides every element exactly."""
    while isinstance(e, (A.Paren, A.Group)):
        e = e.expr
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
