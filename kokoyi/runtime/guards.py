"""Call guards: a module's repeated call in one generated test, straight to its kernel.

A training loop calls a module with the same signature again and again. After a call has
gone through the full path (kokoyi/runtime/module.py: batch levels, annotations, the
specialisation cache) and ran a kernel as it is, a guard is generated for that call: one
function of plain comparisons that says whether a later call is the same case (the same
batch_level, input types, ranks and dtypes, shared batch size, annotated sizes, the same
parameter objects with the same ranks and dtypes, torch's default dtype, the symbol
table's generation) and then hands back the kernel. Anything else (None) takes the full
path, which makes every check and message; so a guard only skips work whose outcome it
has already seen, and errors stay those of the full path.
"""
from __future__ import annotations

import weakref

import torch

MAX_GUARDS = 4  # signatures kept per module (a model called on a batch and on one sample, say)
MAX_UNROLLED = 64  # layer tensors whose dtypes a guard compares inline (more: one same_dtypes call)


def make_guard(spec, levels: tuple, batch_level, args, params, table, result):
    """A function (args, params, batch_level) -> result when the call is the one seen (args,
    params, batch_level at these validated levels), else None; None when that call is not
    one a guard can describe (an input not a plain tensor, an unusual batch_level)."""
    if batch_level is None:
        bl_lines = ["if batch_level is not None: return None"]
    elif type(batch_level) in (list, tuple) and all(type(k) is int for k in batch_level):
        kind = "list" if type(batch_level) is list else "tuple"
        bl_lines = [f"if type(batch_level) is not {kind} or len(batch_level) != {len(levels)}: return None"]
        for k, level in enumerate(levels):
            bl_lines.append(f"k = batch_level[{k}]")
            bl_lines.append(f"if type(k) is not int or k != {level}: return None")
    else:
        return None
    if any(type(a) is not torch.Tensor for a in args):
        return None
    lines = list(bl_lines)
    known: dict = {}
    batch = None
    several = sum(1 for level in levels if level) > 1  # (one batched input: no size to compare)
    for k, (a, level) in enumerate(zip(args, levels)):
        name = f"a{k}"
        lines.append(f"{name} = args[{k}]")
        lines.append(f"if type({name}) is not Tensor or {name}.dim() != {a.dim()} "
                     f"or {name}.dtype is not D{k}: return None")
        inp = spec.inputs[k]
        sized = [(axis, dim) for axis, dim in enumerate(inp.dims or (), start=level)]
        if (level and several) or sized:
            lines.append(f"s = {name}.shape")  # (read once: each .shape makes a torch.Size)
        if level and several:
            if batch is None:
                batch = "b"
                lines.append("b = s[0]")
            else:
                lines.append("if s[0] != b: return None")
        _size_checks(sized, known, lines)
    scope = {"Tensor": torch.Tensor, "get_default_dtype": torch.get_default_dtype,
             "DEFAULT": torch.get_default_dtype(), "TABLE": table, "RESULT": result}
    for k, a in enumerate(args):
        scope[f"D{k}"] = a.dtype
    for k, (p, inp) in enumerate(zip(params, spec.param_specs or (None,) * len(params))):
        name = f"p{k}"
        lines.append(f"{name} = params[{k}]")
        lines.append(f"if id({name}) != {id(p)}: return None")
        if isinstance(p, torch.Tensor):
            scope[f"P{k}"] = p.dtype
            lines.append(f"if {name}.dim() != {p.dim()} or {name}.dtype is not P{k}: return None")
            if inp is not None and inp.dims:
                lines.append(f"s = {name}.shape")
                _size_checks(enumerate(inp.dims), known, lines)
        else:
            scope[f"T{k}"] = type(p)
            lines.append(f"if type({name}) is not T{k}: return None")
        if inp is not None and inp.dims is not None and not isinstance(p, torch.Tensor):
            return None  # an annotated parameter given as a number: the full path decides
    layers = layer_dtypes(params)
    if len(layers) > MAX_UNROLLED:
        scope["LAYERS"], scope["same_dtypes"] = layers, same_dtypes
        lines.append("if not same_dtypes(LAYERS): return None")
    elif layers:
        # same_dtypes(LAYERS) unrolled: one comparison per tensor, no call nor loop. A tensor
        # dropped since (its weak reference gives None) fails on `.dtype`: not this call.
        tests = []
        for k, (ref, dtype) in enumerate(layers):
            scope[f"R{k}"], scope[f"L{k}"] = ref, dtype
            tests.append(f"R{k}().dtype is not L{k}")
        lines.append("try:")
        lines.append(f"    if {' or '.join(tests)}: return None")
        lines.append("except AttributeError: return None")
    lines.append("if get_default_dtype() is not DEFAULT: return None")
    if table is not None:
        lines.append(f"if TABLE.generation != {table.generation}: return None")
    lines.append("return RESULT")
    body = "".join(f"    {line}\n" for line in lines)
    exec(compile(f"def guard(args, params, batch_level):\n{body}", f"<kokoyi call guard {spec.name}>", "exec"),  # noqa: S102
         scope)
    return scope["guard"]


def _size_checks(sized, known: dict, lines: list) -> None:
    """Lines checking the shape `s` against (axis, annotated size) pairs: a number equal, a
    named size equal to where it was first seen (known: name -> local), else recorded."""
    for axis, dim in sized:
        if isinstance(dim, int):
            lines.append(f"if s[{axis}] != {dim}: return None")
        elif dim in known:
            lines.append(f"if s[{axis}] != {known[dim]}: return None")
        else:
            known[dim] = f"d{len(known)}"
            lines.append(f"{known[dim]} = s[{axis}]")


def tensors_of(params):
    """The tensors of parameters: tensors themselves, and the parameters and buffers of layers."""
    for p in params:
        if isinstance(p, torch.nn.Module):
            yield from p.parameters()
            yield from p.buffers()
        elif isinstance(p, (list, tuple)):
            yield from tensors_of(p)
        else:
            yield p


def layer_dtypes(params) -> tuple:
    """(weak reference, dtype) of each floating tensor of the layers among params. They decide
    the module's dtype (LANGUAGE.md 6a) under the same layer objects: `.double()` converts
    them in place. Weak: a cached call must not keep a dropped model's weights alive."""
    return tuple((weakref.ref(t), t.dtype) for p in params if not isinstance(p, torch.Tensor)
                 for t in tensors_of((p,)) if isinstance(t, torch.Tensor) and t.is_floating_point())


def same_dtypes(layer_tensors) -> bool:
    """Whether the tensors layer_dtypes recorded are alive with the dtypes recorded."""
    for ref, dtype in layer_tensors:
        t = ref()
        if t is None or t.dtype is not dtype:
            return False
    return True
