"""Per-signature specialised code for module calls, cached on the module.

A signature is what fixes the generated code: each input's per-sample rank, integer-ness and
whether it is batched, and a description of each parameter (tensor rank, number, layer
type, Kokoyi module). The first call with a signature generates and compiles the code
(the core-IR back end: kokoyi.compiler.pipeline.at_call, then the batch and emit passes);
later calls reuse it. What the batch pass cannot vectorise runs as a Python loop inside the
kernel (over a set-builder's or big operator's axis, or over the batch); a signature it cannot
compile at all (an opaque parameter, say) is remembered, and the call is a located error.
"""
from __future__ import annotations

import hashlib
import numbers

import torch

from kokoyi.compiler.gcpause import gc_paused
from kokoyi.runtime.guards import layer_dtypes, same_dtypes, tensors_of as _tensors

FALLBACK = object()


class KokoyiBatchLoop(UserWarning):
    """A batched module call is a Python loop over its samples: the compiler cannot vectorise it."""


class Specializations:
    """The specialisation cache of one module symbol."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module_ast = None
        self.source = None
        self.namespace: dict = {}  # globals the specialised code runs in
        self.globals_info = dict  # () -> key -> (Python name, object) of top-level definitions
        self._lazy = None
        self._table = None  # the SymbolTable it was attached to (None: a standalone generated file)
        self._generation = None
        self.cache: dict = {}
        self.fast: dict = {}  # (input dims and dtypes, levels, parameter identities) -> entry
        self.guards: list = []  # call guards of the module's forward (kokoyi/runtime/guards.py)
        self._params_key = None
        self._params_desc = None
        self._counter = 0
        self._ir = None  # the module's core IR (kokoyi.compiler.ir.Function), lowered on first use
        self._prepared = None  # _ir after the call-time IR passes
        self.unsupported: list[str] = []  # why signatures could not be compiled
        self.python_outputs = False  # a function's or constant's numbers stay Python numbers
        self.opaque_ranks: dict = {}  # call site of an opaque callable -> its result's per-sample rank

    def attach(self, module_ast, source, table) -> None:
        self.module_ast, self.source = module_ast, source
        self.namespace = table.namespace
        self.globals_info = table.globals_info
        self._table = table
        self._generation = table.generation
        self._lazy = None
        self._ir = self._prepared = None
        self.cache.clear()
        self.fast.clear()
        self.guards.clear()

    def attach_lazily(self, text: str, filename: str, key: str, namespace: dict) -> None:
        """Find the module in `text` on first use (generated files that run on their own)."""
        self._lazy = (text, filename, key, namespace)

    def _load_lazy(self) -> None:
        from kokoyi.compiler.pipeline import compile_unit

        text, filename, key, namespace = self._lazy
        self._lazy = None
        state = compile_unit(text, filename)
        names = state.generated.globals
        self.module_ast = next(i for i in state.ast.items if _symbol_of(i).key == key)
        self.source = state.source
        self.namespace = namespace
        symbols = {sym.key: sym for sym in state.defined}
        self.globals_info = lambda: {k: (n, namespace.get(n), symbols.get(k)) for k, n in names.items()}

    def param_descs(self, params) -> tuple:
        # Identity plus, for tensors, rank and dtype (what describe() reads): `W.data = ...`
        # keeps the object but may change both.
        key = tuple((id(p), (p.dim(), p.dtype) if isinstance(p, torch.Tensor) else None) for p in params)
        if key != self._params_key:
            self._params_desc = tuple(describe(p) for p in params)
            self._params_key = key
        return self._params_desc

    def lookup(self, args, levels, params):
        """(the entry for this call (see _build) or FALLBACK, the dtype its floating tensor inputs
        and parameters are to be converted to first, or None when they all have it already)."""
        if self._table is not None and self._table.generation != self._generation:
            # A later unit may have redefined a function this module calls (late binding).
            self._generation = self._table.generation
            self._prepared = None
            self.cache.clear()
            self.fast.clear()
            self.guards.clear()
        # The common case, all inputs tensors: one cheap key (plain loops: in Python 3.11 a
        # comprehension costs a function call).
        key = [levels, torch.get_default_dtype()]
        try:
            for a in args:
                key.append(a.dim())
                key.append(a.dtype)
        except AttributeError:
            fast = None
        else:
            for p in params:
                key.append(id(p))
                if isinstance(p, torch.Tensor):
                    key.append(p.dim())
                    key.append(p.dtype)
                else:
                    key.append(type(p))
            fast = tuple(key)
            hit = self.fast.get(fast)
            if hit is not None:
                entry, layer_tensors = hit
                if same_dtypes(layer_tensors):  # (`.double()` converts a layer's tensors in place)
                    return entry
        # The module dtype walks the layers' tensors: once per call that misses the fast key.
        dtype = module_dtype(args, params)
        if torch.compiler.is_compiling():
            entry = (self._lookup_traced(args, levels, params, dtype), _cast_to(args, params, dtype))
        else:
            entry = (self._lookup(args, levels, params, dtype), _cast_to(args, params, dtype))
        if fast is not None:
            if len(self.fast) > 256:
                self.fast.clear()
            # the key holds the layers' identities only: a hit checks their tensors' dtypes
            self.fast[fast] = (entry, layer_dtypes(params))
        return entry

    def _lookup(self, args, levels, params, dtype):
        if self._lazy is not None:
            self._load_lazy()
        if self.module_ast is None:
            return FALLBACK
        inputs = []
        for a, k in zip(args, levels):
            if isinstance(a, torch.Tensor):
                inputs.append((("tensor", a.dim() - k, not a.dtype.is_floating_point), k > 0))
            elif isinstance(a, numbers.Number):
                inputs.append((("number", isinstance(a, numbers.Integral)), False))
            else:
                return FALLBACK
        key = (tuple(inputs), self.param_descs(params), dtype)
        entry = self.cache.get(key)
        if entry is None:
            entry = self._build(tuple(inputs), key[1], params, dtype)
            self.cache[key] = entry
        return entry

    def _lookup_traced(self, args, levels, params, dtype):
        """_lookup as torch.compile meets it: never traced (see _outside_trace)."""
        return _outside_trace(self, args, levels, params, dtype)

    def output_layouts(self, inputs, param_descs, params):
        entry = self._build(inputs, param_descs, params, module_dtype((), params))
        return None if entry is FALLBACK else entry[1]

    # As kokoyi.compile: a collection mid-way would scan the process's (torch's) objects; and
    # what the passes keep goes to the oldest generation, not scanned young right after
    @gc_paused(promote=True)
    def _build(self, inputs, param_descs, params, dtype):
        """(function, output layouts, code, whether every output is a batched tensor: the
        one-batch-axis fast path in kokoyi.runtime.batching.single_axis, line map), or FALLBACK.

        From the kernel cache (kokoyi/runtime/kernelcache.py) when a process generated it
        before; else generated by the call-time passes (and stored)."""
        from kokoyi.runtime import kernelcache, kernels
        from kokoyi.runtime.module import register_code

        self._counter += 1
        name = f"{self.name}__batched_{self._counter}"
        key = kernelcache.key(self, inputs, params, dtype)
        stored = kernelcache.read(key)
        compiled = None
        if stored is not None:
            code, line_map, outputs, batch_loop = stored.code, stored.line_map, stored.outputs, stored.batch_loop
            compiled = stored.compiled
            if stored.name != name:  # (another order of signatures in that process: renamed, compiled)
                code, compiled = f"def {name}({code[len(f'def {stored.name}('):]}", None
        else:
            from kokoyi.compiler import batch
            from kokoyi.compiler.pipeline import run_call_passes

            try:
                cs = run_call_passes(self.call_state(name, inputs, param_descs, dtype, params), start_after="at_call")
            except batch.Unsupported as err:
                self.unsupported.append(str(err))
                return FALLBACK
            code, line_map, outputs, batch_loop = cs.code, cs.line_map, cs.kernel.outputs, cs.kernel.batch_loop
        if batch_loop:
            import warnings

            warnings.warn(f"kokoyi: module `{_symbol_of(self.module_ast).key}` runs its batch as a Python loop "
                          f"over samples because the compiler cannot vectorise {batch_loop}", KokoyiBatchLoop,
                          stacklevel=4)
        digest = hashlib.sha256(code.encode()).hexdigest()[:12]
        filename = f"<kokoyi:{self.source.filename}:{name}:{digest}>"
        register_code(filename, code, self.source.filename, line_map, ())
        self.namespace.setdefault("kx", kernels)
        if compiled is None:
            compiled = compile(code, filename, "exec")
        if stored is None:
            kernelcache.write(key, name, code, line_map, outputs, batch_loop, compiled)
        scratch: dict = {}
        exec(compiled, self.namespace, scratch)  # noqa: S102 - generated code
        return scratch[name], outputs, code, all(v.batched and not v.python for v in outputs), line_map

    def call_state(self, name, inputs, param_descs, dtype, params):
        """The call-time passes' state for one call signature, after `at_call` (cached)."""
        from kokoyi.compiler.pipeline import CallState

        options = {"dtype": str(dtype), "source": self.source, "python_outputs": self.python_outputs,
                   "opaque_ranks": self.opaque_ranks,
                   "callee_outputs": lambda desc, values: _callee_outputs(desc, values, params),
                   "callee_ir": lambda desc: _callee_ir(desc, params)}
        return CallState(self.prepared_ir(), inputs, param_descs, name, self._globals_desc(), options)

    def kernel(self, name, inputs, param_descs, dtype, params):
        """The kernel for one call signature (kokoyi.compiler.kernel); raises
        kokoyi.compiler.batch.Unsupported where the module cannot be compiled for it."""
        from kokoyi.compiler.pipeline import run_call_passes

        cs = self.call_state(name, inputs, param_descs, dtype, params)
        return run_call_passes(cs, start_after="at_call", stop_after="batch").kernel

    def learn(self, err) -> None:
        """An opaque callable returned another rank than its kernel assumed: the kernels are
        built again with that rank (raises when it was already known: a rank that varies)."""
        if self.opaque_ranks.get(err.where) == err.rank:
            raise err
        self.opaque_ranks[err.where] = err.rank
        self.cache.clear()
        self.fast.clear()
        self.guards.clear()

    def _globals_desc(self) -> dict:
        return {k: (n, describe(obj), sym) for k, (n, obj, sym) in self.globals_info().items()}

    def prepared_ir(self):
        """The module's IR after the call-time IR passes (what `batch` starts from), once per
        generation of the symbol table (a redefined top-level function clears it)."""
        from kokoyi.compiler.pipeline import CallState, lower_item, run_call_passes

        if self._lazy is not None:
            self._load_lazy()
        if self._prepared is None:
            if self._ir is None:
                self._ir = lower_item(self.module_ast)
            cs = CallState(self._ir, globals_info=self._globals_desc())
            self._prepared = run_call_passes(cs, stop_after="at_call").fn
        return self._prepared


# Code generation stays outside a torch.compile trace: a signature met for the first time
# under torch.compile is a graph break (an error with fullgraph=True) at this call. Disabled
# lazily (torch's own _disable_dynamo): torch.compiler.disable itself imports torch._dynamo,
# seconds of import that a process which never compiles should not pay.
_outside_trace = torch._disable_dynamo(Specializations._lookup)
_outside_trace._torchdynamo_disable = True  # what the tracer reads: a graph break, with this reason
_outside_trace._torchdynamo_disable_msg = (
    "kokoyi generates code for a call signature it has not seen: call the model once with "
    "these input ranks and batch levels before compiling it with fullgraph=True")


def _symbol_of(item):
    from kokoyi.compiler.pipeline import _symbol_of as of

    return of(item)


def describe(obj, identity=None) -> tuple:
    """A hashable description of a parameter (or input) for the specialisation cache.

    A Kokoyi module is named by identity(forward, module), by default id(forward) (the kernel
    cache passes one that outlives the process: kokoyi/runtime/kernelcache.py)."""
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.dim(), not (obj.is_floating_point() or obj.is_complex()))
    if isinstance(obj, bool):
        return ("number", True)
    if isinstance(obj, numbers.Number):
        return ("number", isinstance(obj, numbers.Integral))
    if isinstance(obj, (torch.nn.ModuleList, list, tuple)):
        return ("list", tuple(describe(x, identity) for x in obj), type(obj) is torch.nn.ModuleList)
    if isinstance(obj, torch.nn.Module):
        forward = getattr(type(obj), "forward", None)
        spec = getattr(forward, "__kokoyi_spec__", None)
        if spec is not None:
            params = obj.get_parameters() if spec.params and hasattr(obj, "get_parameters") else ()
            inner = describe(params, identity) if len(spec.params) == 1 else \
                tuple(describe(p, identity) for p in params)
            return ("kokoyi", id(forward) if identity is None else identity(forward, obj), inner)
        name = _torch_layer_name(type(obj))
        if isinstance(obj, torch.nn.Sequential):
            return ("sequential", tuple(describe(m, identity) for m in obj))
        from kokoyi.compiler import layers  # (not the batch pass: a kernel from the cache needs none of it)

        if name is not None and (name in layers.TRANSPARENT_LAYERS or name in layers.CONV_LAYERS
                                 or name in layers.CELL_LAYERS):
            return ("layer", name)
        return ("opaque", type(obj).__name__)
    if callable(obj):
        return ("opaque", type(obj).__name__)
    return ("other", type(obj).__name__)


def _torch_layer_name(cls) -> str | None:
    """The torch.nn layer class a module computes as: its own class, or the torch.nn class
    whose forward it keeps (FSDP2's `fully_shard` swaps Linear for a subclass FSDPLinear)."""
    for base in cls.__mro__:
        if base.__module__.startswith("torch.nn."):
            return base.__name__ if base.forward is cls.forward else None
    return None


def _cast_to(args, params, dtype):
    """The module's floating dtype when some floating tensor input or parameter has another
    (LANGUAGE.md 6a: a module computes in one dtype, the widest), else None."""
    for x in (*args, *params):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != dtype:
            return dtype
    return None


def cast_floats(values, dtype) -> tuple:
    """values with every floating tensor converted to dtype (differentiably)."""
    return tuple(x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in values)


def module_dtype(args, params) -> torch.dtype:
    """The one floating dtype a module computes in (LANGUAGE.md 6a): the widest of its floating
    tensor inputs and parameters (a layer's own tensors count), else torch's default."""
    found = None
    for x in (*args, *_tensors(params)):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            dtype = x.dtype
            if found is None:
                found = dtype
            elif dtype is not found:  # (promoting a dtype with itself gives it back)
                found = torch.promote_types(found, dtype)
    return found or torch.get_default_dtype()


def _callee_outputs(desc, values, outer_params):
    """Output layouts of a Kokoyi module parameter called on values (for the caller's code)."""
    forward_id = desc[1]
    target = _find_module(outer_params, forward_id)
    if target is None:
        return None
    forward = type(target).forward
    specs: Specializations = forward.__kokoyi_specializations__
    inputs = []
    for v in values:
        if v.python:
            inputs.append((("number", v.integer), False))
        else:
            inputs.append((("tensor", v.rank, v.integer), v.lead > 0))
    params = forward.__kokoyi_read_params__(target)
    return specs.output_layouts(tuple(inputs), specs.param_descs(params), params)


def _callee_ir(desc, outer_params):
    """(IR, parameter descriptions, source, dtype, the inputs' annotations) of a Kokoyi module
    parameter, for the caller to inline its body; None where a call must go through the
    module's forward (its parameters are annotated: the forward checks them at run time). The
    annotations, (field, dims) per input, are for the caller to check against what it passes:
    it inlines only where the forward's checks would pass as they are (kokoyi/compiler/batch/
    calls.py `_annotations_hold`), else calls it, which checks and converts."""
    target = _find_module(outer_params, desc[1])
    if target is None:
        return None
    forward = type(target).forward
    spec = forward.__kokoyi_spec__
    if any(p.dims is not None or p.field is not None for p in spec.param_specs):
        return None
    specs: Specializations = forward.__kokoyi_specializations__
    if specs.module_ast is None and specs._lazy is None:
        return None
    params = forward.__kokoyi_read_params__(target)
    annotations = tuple((i.field, i.dims) for i in spec.inputs)
    # (its floating dtype when no input is a float: its parameters' widest, else torch's default)
    return specs.prepared_ir(), specs.param_descs(params), specs.source, str(module_dtype((), params)), annotations


def _find_module(obj, forward_id):
    """A module among the parameters (or inside them: a module inlined into its caller calls
    its own Kokoyi module parameters from the caller's code) whose forward is forward_id."""
    if isinstance(obj, torch.nn.Module):
        for m in obj.modules():
            if id(getattr(type(m), "forward", None)) == forward_id:
                return m
        return None
    if isinstance(obj, (list, tuple)):
        for x in obj:
            found = _find_module(x, forward_id)
            if found is not None:
                return found
    return None
