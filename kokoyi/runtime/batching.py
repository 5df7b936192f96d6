"""`batch_level`: validated batch levels, and running a specialised function over them.

The batch axes of all batched inputs are flattened into one, the function specialised for
one batch axis runs on them, and the outputs get the batch shape back in front. Parameters
are never batched.
"""
from __future__ import annotations

import math
import numbers

import torch

from kokoyi.errors import KokoyiTypeError
from kokoyi.runtime.device import as_tensor

_ZEROS = tuple((0,) * n for n in range(16))


def quick_levels(args, batch_level, n: int):
    """batch_level as a tuple when it is a list or tuple of 0s and 1s whose batched inputs are
    tensors sharing their first axis; None for anything else (check_batch_level decides)."""
    if type(batch_level) not in (list, tuple) or len(batch_level) != n:
        return None
    size = -1
    for k, a in zip(batch_level, args):
        if type(k) is not int:
            return None
        if k == 1:
            if type(a) is not torch.Tensor or a.dim() < 1:
                return None
            if size < 0:
                size = a.shape[0]
            elif a.shape[0] != size:
                return None
        elif k != 0:
            return None
    return tuple(batch_level)


def single_axis(entry, args, params, levels):
    """The specialised function on one batch axis, when every output is batched and a tensor
    (None otherwise, before running anything: run_specialized then handles the call)."""
    if not entry[3] or max(levels) != 1:
        return None
    return entry[0](*args, *params)


def check_batch_level(spec, args, batch_level) -> tuple[int, ...]:
    """Validated batch levels, one per input (all zeros when batch_level is None)."""
    n = len(spec.inputs)
    if batch_level is None:
        return _ZEROS[n] if n < len(_ZEROS) else (0,) * n
    if isinstance(batch_level, int):
        batch_level = [batch_level] * n
    levels = tuple(batch_level)
    if len(levels) != n:
        raise KokoyiTypeError(f"{spec.where}: batch_level has {len(levels)} entries but module "
                              f"`{spec.name}` has {n} input{'s' if n != 1 else ''} "
                              f"({', '.join(i.key for i in spec.inputs)})")
    batch_shape, first = None, None
    for level, arg, inp in zip(levels, args, spec.inputs):
        if not isinstance(level, numbers.Integral) or isinstance(level, bool) or level < 0:
            raise KokoyiTypeError(f"{spec.where}: batch_level for input `{inp.key}` of module `{spec.name}` "
                                  f"must be a non-negative integer, got {level!r}")
        if level == 0:
            continue
        if not isinstance(arg, torch.Tensor):
            raise KokoyiTypeError(f"{spec.where}: input `{inp.key}` of module `{spec.name}` has batch_level "
                                  f"{level} but is not a tensor ({type(arg).__name__})")
        if arg.dim() < level:
            raise KokoyiTypeError(f"{spec.where}: input `{inp.key}` of module `{spec.name}` has batch_level "
                                  f"{level} but only {arg.dim()} axes (shape {tuple(arg.shape)})")
        shape = tuple(arg.shape[:level])
        if batch_shape is None:
            batch_shape, first = shape, inp.key
        elif shape != batch_shape:
            raise KokoyiTypeError(f"{spec.where}: batch shapes disagree in module `{spec.name}`: input "
                                  f"`{first}` has batch shape {batch_shape} but input `{inp.key}` has {shape}")
    return levels


def as_output(x):
    """Outputs are tensors, also when the math gives a Python number."""
    if isinstance(x, tuple):
        return tuple(as_output(v) for v in x)
    return as_tensor(x)


def run_specialized(fn, outputs, args, params, levels):
    """The specialised (already batch-aware) function on the batch axes flattened into one."""
    if not any(levels):
        out = fn(*args, *params)
        return out if isinstance(out, torch.Tensor) else as_output(out)
    batch_shape = next(tuple(a.shape[:k]) for a, k in zip(args, levels) if k)
    size = math.prod(batch_shape)
    if len(batch_shape) == 1:  # already one batch axis
        flat = args
    else:
        flat = [a.reshape((size,) + tuple(a.shape[k:])) if k else a for a, k in zip(args, levels)]
    out = fn(*flat, *params)
    if len(outputs) == 1:
        out = _batch_output(out, outputs[0], size)
    else:
        out = tuple(_batch_output(o, v, size) for o, v in zip(out, outputs))
    if len(batch_shape) == 1:
        return out
    return _unflatten(out, batch_shape)


def _batch_output(x, layout, size):
    """Outputs that do not depend on a batched input are repeated over the batch."""
    x = as_output(x)
    if layout.batched:
        return x
    return x.expand((size,) + tuple(x.shape))


def _unflatten(x, batch_shape):
    if isinstance(x, tuple):
        return tuple(_unflatten(v, batch_shape) for v in x)
    return x.reshape(tuple(batch_shape) + tuple(x.shape[1:]))
