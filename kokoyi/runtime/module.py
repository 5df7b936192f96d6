"""Module symbols: `forward(self, *inputs, batch_level=None)` around a module's kernels.

The wrapper checks the call (input and parameter counts, batch levels, annotated
dimensions) before any tensor work, reads the parameters from `self.get_parameters()`,
runs the kernel specialised for the call's signature (one sample or a batch:
kokoyi/runtime/specialize.py), and turns errors raised inside compiled code into
KokoyiRuntimeErrors that name the `.kyi` line.
"""
from __future__ import annotations

import functools
import linecache
import numbers
import re
from dataclasses import dataclass

import torch

from kokoyi.errors import KokoyiError, KokoyiRuntimeError, KokoyiTypeError, KokoyiUnsupportedError
from kokoyi.runtime import batching
from kokoyi.runtime.forward import ModuleForward
from kokoyi.runtime.guards import MAX_GUARDS, make_guard
from kokoyi.runtime.calls import OpaqueRank
from kokoyi.runtime.specialize import FALLBACK, Specializations, cast_floats, module_dtype


@dataclass(frozen=True)
class InputSpec:
    key: str
    field: str | None  # "R", "Z", "N" or None when unannotated
    dims: tuple | None  # dimension names (str) and sizes (int), or None


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    inputs: tuple[InputSpec, ...]
    params: tuple[str, ...]
    param_hints: tuple[str, ...]
    signature: str
    where: str  # file:line:col of the \Module
    param_specs: tuple[InputSpec, ...] = ()  # annotations of the parameters (empty: none annotated)

    def describe(self) -> str:
        inputs = ", ".join(i.key for i in self.inputs)
        params = ", ".join(self.params)
        return f"\\Module{{{self.name}}}{{{inputs}{'; ' + params if self.params else ''}}}"


def module(python_name, *, name, inputs, params, param_hints, signature, where, source=None, namespace=None,
           param_specs=()):
    """The forward function of a compiled module (what kokoyi.symbol holds)."""
    spec = ModuleSpec(name, tuple(InputSpec(*i) for i in inputs), tuple(params), tuple(param_hints),
                      signature, where, tuple(InputSpec(*i) for i in param_specs))
    specializations = Specializations(python_name)
    if source is not None:
        # Until kokoyi.symbol attaches the resolved module, the embedded source can supply it.
        specializations.attach_lazily(source[0], source[1], name, namespace if namespace is not None else {})

    annotated = any(i.dims is not None for i in spec.inputs + spec.param_specs)
    real_inputs = tuple(k for k, i in enumerate(spec.inputs) if i.field == "R")
    n_inputs, n_params = len(spec.inputs), len(spec.params)
    zeros = (0,) * n_inputs
    plans: dict = {}  # batch levels -> call_check(spec, levels)

    guards = specializations.guards  # call guards (kokoyi/runtime/guards.py), newest first
    replaced = [0]

    def forward(self, *args, batch_level=None):
        if len(args) != n_inputs:
            raise KokoyiTypeError(f"{spec.where}: module `{spec.name}` takes {n_inputs} input"
                                  f"{'s' if n_inputs != 1 else ''}, got {len(args)}; "
                                  f"declared as {spec.describe()}")
        if n_params == 1 and (getter := getattr(self, "get_parameters", None)) is not None:
            params = (getter(),)  # (one look-up of the method: hasattr and a call made two)
        elif n_params:
            params = read_parameters(self, spec)
        else:
            params = ()
        for guard in guards:  # a call seen before: straight to its kernel
            seen = guard(args, params, batch_level)
            if seen is not None:
                try:
                    out = seen[0](*args, *params)
                except Exception as err:  # noqa: BLE001 - the full path's handling, below
                    return failed(err, self, args, batch_level)
                return out if seen[1] or isinstance(out, torch.Tensor) else batching.as_output(out)
        if batch_level is None:
            levels = zeros
        else:
            levels = batching.quick_levels(args, batch_level, n_inputs)
            if levels is None:  # not the plain well-formed case: full checks and messages
                check_batch_level_type(spec, batch_level)
                levels = batching.check_batch_level(spec, args, batch_level)
            elif not any(levels):
                levels = zeros
        ordinary = True
        if annotated or real_inputs:
            check = plans.get(levels)
            if check is None:
                check = plans[levels] = call_check(spec, levels)
            if not check(args, params):  # not the ordinary call: the full checks, messages and conversions
                ordinary = False
                if annotated:
                    check_annotations(spec, args, levels, params)
                if real_inputs:
                    args = as_real(args, real_inputs, params)
        try:
            built = specializations._counter
            entry, cast = specializations.lookup(args, levels, params)
            # A call that built its kernel makes no guard (the next call of that signature,
            # which finds the kernel built, makes it): the first call of a process already
            # pays the code generation, and a guard's `compile` is ~1 ms more there.
            ordinary = ordinary and specializations._counter == built
            if cast is not None:
                args, params = cast_floats(args, cast), cast_floats(params, cast)
            if entry is not FALLBACK:
                if levels is zeros:
                    out = entry[0](*args, *params)
                    remember(ordinary and cast is None, levels, batch_level, args, params, (entry[0], False))
                    return out if isinstance(out, torch.Tensor) else batching.as_output(out)
                out = batching.single_axis(entry, args, params, levels)
                if out is not None:
                    remember(ordinary and cast is None, levels, batch_level, args, params, (entry[0], True))
                    return out
            if entry is FALLBACK:
                raise KokoyiUnsupportedError(f"{spec.where}: module `{spec.name}` cannot be compiled for this "
                                             f"call: {'; '.join(specializations.unsupported[-1:])}")
            return batching.run_specialized(entry[0], entry[1], args, params, levels)
        except Exception as err:  # noqa: BLE001 - located, or re-raised as it is
            return failed(err, self, args, batch_level)

    def remember(ordinary, levels, batch_level, args, params, result):
        """A guard for this call, once it ran its kernel as it is (no conversion, no check failed)
        and found that kernel built by an earlier call.
        With MAX_GUARDS kept, every 16th such call replaces the oldest (calls whose parameters
        are new objects each time never match; the signature used from then on gets its guard)."""
        if not ordinary or torch.compiler.is_compiling():  # (no code generated inside a trace)
            return
        if len(guards) >= MAX_GUARDS:
            replaced[0] += 1
            if replaced[0] % 16:
                return
            guards.pop()
        guard = make_guard(spec, levels, batch_level, args, params, specializations._table, result)
        if guard is not None:
            guards.insert(0, guard)

    def failed(err, self, args, batch_level):
        """An error raised inside the call: learnt from (an opaque callable's rank), or re-raised
        naming the module and the .kyi line."""
        if isinstance(err, OpaqueRank):  # learnt: built again with that rank
            specializations.learn(err)
            return forward(self, *args, batch_level=batch_level)
        if isinstance(err, KokoyiError):
            named = in_module(err, spec)
            if named is err:
                raise err
            raise named from None
        explained = explain(err)
        if explained is None:
            raise err
        raise in_module(KokoyiRuntimeError(explained), spec) from err

    forward.__name__ = forward.__qualname__ = python_name
    forward.__doc__ = f"Kokoyi module {spec.describe()} (compiled from {spec.where})."
    forward.__kokoyi_spec__ = spec
    forward.__kokoyi_specializations__ = specializations
    forward.__kokoyi_read_params__ = functools.partial(read_parameters, spec=spec)  # (owner): no frame of its own
    return ModuleForward(forward, name, source)


def as_real(args, real_inputs, params) -> tuple:
    """Integer or boolean tensors given for inputs annotated \\mathbb{R}, converted to the
    module's floating dtype (LANGUAGE.md 6a)."""
    convert = [k for k in real_inputs if isinstance(args[k], torch.Tensor) and not args[k].is_floating_point()]
    if not convert:
        return args
    dtype = module_dtype(args, params)
    return tuple(a.to(dtype) if k in convert else a for k, a in enumerate(args))


def check_batch_level_type(spec: ModuleSpec, batch_level) -> None:
    """batch_level is None, an int, or a sequence with one int per input (checked later)."""
    if isinstance(batch_level, numbers.Integral) and not isinstance(batch_level, bool):
        return
    if isinstance(batch_level, (str, bytes, bool, dict, set, frozenset)) or not hasattr(batch_level, "__iter__"):
        inputs = ", ".join(i.key for i in spec.inputs)
        raise KokoyiTypeError(f"{spec.where}: batch_level of module `{spec.name}` must be None, an int or a list "
                              f"with one int per input ({inputs}), got {type(batch_level).__name__} "
                              f"{batch_level!r}"[:400])


def in_module(err: KokoyiError, spec: ModuleSpec) -> KokoyiError:
    """err, raised inside module spec's compiled code, with a note naming the module.

    A nested module (a Kokoyi module passed as a parameter) adds its own note first, so
    the notes read like a traceback: innermost module first.
    """
    note = f"  in module `{spec.name}` ({spec.where})"
    if note in err.notes or f"module `{spec.name}`" in err.message:
        return err
    new = type(err)(err.message, filename=err.filename, line=err.line, column=err.column,
                    source_line=err.source_line, width=err.width, notes=(*err.notes, note))
    return new.with_traceback(err.__traceback__)


def read_parameters(owner, spec: ModuleSpec) -> tuple:
    n = len(spec.params)
    if n == 0:
        return ()
    getter = getattr(owner, "get_parameters", None)
    if getter is None:
        raise KokoyiTypeError(f"{spec.where}: module `{spec.name}` needs parameters "
                              f"({', '.join(spec.params)}): define get_parameters(self) on "
                              f"{type(owner).__name__}; declared as {spec.describe()}")
    value = getter()
    if n == 1:
        return (value,)
    if not isinstance(value, (tuple, list, torch.nn.ModuleList, torch.nn.ParameterList)) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, (tuple, list)) else f"a {type(value).__name__}"
        raise KokoyiTypeError(f"{spec.where}: module `{spec.name}` has {n} parameters "
                              f"({', '.join(spec.params)}) but get_parameters() returned {got}; "
                              f"declared as {spec.describe()}")
    return tuple(value)


def call_check(spec: ModuleSpec, levels: tuple):
    """A function (args, params) -> whether this call, at these batch levels, is the ordinary
    one: every annotated input and parameter a tensor of its annotated rank, sizes and
    integer-ness, and every input annotated \\mathbb{R} already floating-point. Generated once
    per levels (plain comparisons, no loops); False sends the call through check_annotations
    and as_real, which raise the messages or convert."""
    lines, known = [], {}
    checked = [(f"args[{k}]", level, inp) for k, (level, inp) in enumerate(zip(levels, spec.inputs))]
    checked += [(f"params[{k}]", 0, inp) for k, inp in enumerate(spec.param_specs)]
    for value, level, inp in checked:
        if inp.dims is None and inp.field != "R":
            continue
        name = f"a{len(lines)}"
        lines.append(f"{name} = {value}")
        number = "isinstance({name}, Integral)" if inp.field in ("Z", "N") else "isinstance({name}, Number)"
        if inp.dims == () or inp.dims is None:  # a Python number passes as it is
            lines.append(f"if not isinstance({name}, Tensor):")
            lines.append(f"    if not {number.format(name=name)}: return False")
            lines.append("else:")
            indent = "    "
        else:
            lines.append(f"if not isinstance({name}, Tensor): return False")
            indent = ""
        if inp.field == "R" and value.startswith("args"):
            lines.append(f"{indent}if not {name}.is_floating_point(): return False")
        elif inp.field in ("Z", "N"):
            lines.append(f"{indent}if {name}.is_floating_point() or {name}.is_complex(): return False")
        if inp.dims is None:
            lines.append(f"{indent}pass")
            continue
        lines.append(f"{indent}if {name}.dim() != {level + len(inp.dims)}: return False")
        if inp.dims:
            lines.append(f"{indent}s = {name}.shape")
        for axis, dim in enumerate(inp.dims, start=level):
            if isinstance(dim, int):
                lines.append(f"{indent}if s[{axis}] != {dim}: return False")
            elif dim in known:
                lines.append(f"{indent}if s[{axis}] != {known[dim]}: return False")
            else:
                known[dim] = f"d{len(known)}"
                lines.append(f"{indent}{known[dim]} = s[{axis}]")
    body = "".join(f"    {line}\n" for line in lines) + "    return True\n"
    scope = {"Tensor": torch.Tensor, "Number": numbers.Number, "Integral": numbers.Integral}
    exec(compile(f"def check(args, params):\n{body}", f"<kokoyi call check {spec.name}>", "exec"), scope)  # noqa: S102
    return scope["check"]


def check_annotations(spec: ModuleSpec, args, levels, params=()) -> None:
    """Annotated ranks, integer types and shared dimension sizes, per sample, of the inputs
    and then of the parameters (which are never batched)."""
    sizes: dict[str, tuple[int, str]] = {}
    checked = [(arg, level, inp, "input") for arg, level, inp in zip(args, levels, spec.inputs)]
    checked += [(p, 0, inp, "parameter") for p, inp in zip(params, spec.param_specs)]
    for arg, level, inp, role in checked:
        if inp.dims is None:
            continue
        if isinstance(arg, torch.Tensor):
            shape = tuple(arg.shape[level:])
            integer = not (arg.is_floating_point() or arg.is_complex())
        elif isinstance(arg, numbers.Number):
            shape, integer = (), isinstance(arg, numbers.Integral)
        else:
            continue
        if len(shape) != len(inp.dims):
            raise KokoyiTypeError(f"{spec.where}: {role} `{inp.key}` of module `{spec.name}` is annotated with "
                                  f"{len(inp.dims)} per-sample axes but has shape {shape} per sample")
        if inp.field in ("Z", "N") and not integer:
            raise KokoyiTypeError(f"{spec.where}: {role} `{inp.key}` of module `{spec.name}` is "
                                  f"\\mathbb{{{inp.field}}} but got a floating-point value")
        for axis, (dim, size) in enumerate(zip(inp.dims, shape)):
            if isinstance(dim, int):
                if dim != size:
                    raise KokoyiTypeError(f"{spec.where}: axis {axis} of {role} `{inp.key}` of module "
                                          f"`{spec.name}` must have size {dim}, got {size}")
                continue
            if dim in sizes and sizes[dim][0] != size:
                first_size, first_input = sizes[dim]
                raise KokoyiTypeError(f"{spec.where}: dimension `{dim}` of module `{spec.name}` disagrees: "
                                      f"{first_input} has {dim} = {first_size} but {role} `{inp.key}` "
                                      f"has {dim} = {size}")
            sizes.setdefault(dim, (size, f"{role} `{inp.key}`"))


# ---- generated code -> source positions ----------------------------------------------------
LINE_MAPS: dict[str, tuple[str, dict[int, int]]] = {}  # generated filename -> (source filename, map)


INDEX_SITES: dict[str, dict[int, list]] = {}  # generated filename -> source line -> index sites


def register_code(filename: str, code: str, source_filename: str, line_map: dict[int, int],
                  index_sites=()) -> None:
    """Make generated code visible to tracebacks and map its lines back to the source.

    index_sites lists [source line, indexed value's spelling, file:line:col, leading axes]
    for each indexing, so an IndexError can name the value and its per-sample axis.
    """
    lines = code.splitlines(keepends=True)
    linecache.cache[filename] = (len(code), None, lines, filename)
    LINE_MAPS[filename] = (source_filename, line_map)
    sites: dict[int, list] = {}
    for line, name, where, lead in index_sites:
        sites.setdefault(line, []).append((name, where, lead))
    INDEX_SITES[filename] = sites


_TORCH_INDEX = re.compile(r"index (-?\d+) is out of bounds for dimension (\d+) with size (\d+)")


def explain(err: BaseException) -> str | None:
    """`file.kyi:line: what went wrong` for an error raised inside generated code, or None."""
    tb, found = err.__traceback__, None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        entry = LINE_MAPS.get(filename)
        if entry is not None and entry[1].get(tb.tb_lineno) is not None:
            found = (filename, entry[0], entry[1][tb.tb_lineno])
        tb = tb.tb_next
    if found is None:
        return None
    filename, src, line = found
    match = _TORCH_INDEX.search(str(err)) if isinstance(err, IndexError) else None
    sites = INDEX_SITES.get(filename, {}).get(line, [])
    if match is not None and sites:
        index, dim, size = (int(g) for g in match.groups())
        candidates = [site for site in sites if dim >= site[2]]
        if candidates:
            name, where, lead = candidates[-1] if len(candidates) > 1 and dim < candidates[0][2] else candidates[0]
            return f"{where}: index {index} is out of range for `{name}` (axis {dim - lead} has length {size})"
    return f"{src}:{line}: {type(err).__name__}: {err}"


def locate(err: BaseException) -> str | None:
    """`file.kyi:line` of the innermost generated frame in err's traceback."""
    tb = err.__traceback__
    found = None
    while tb is not None:
        entry = LINE_MAPS.get(tb.tb_frame.f_code.co_filename)
        if entry is not None:
            src, line_map = entry
            line = line_map.get(tb.tb_lineno)
            if line is not None:
                found = f"{src}:{line}"
        tb = tb.tb_next
    return found

