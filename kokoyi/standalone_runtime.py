"""The module wrapper of standalone files (`kyic compile --standalone`): plain torch.

`kyic compile --standalone` copies this file's code into its output, where it plays the
part of kokoyi.runtime.module.module: it turns a per-sample function into
`forward(self, *inputs, batch_level=None)`. A call with batch levels for which the file
holds batched code runs that code; other batch levels map the per-sample function with
torch.func.vmap. It must import nothing but torch and the standard library.
"""
from __future__ import annotations

import math
import re

import torch


def module(per_sample, *, name, inputs, params, param_hints=(), signature="", where="", source=None,
           param_specs=()):
    """forward(self, *inputs, batch_level=None) around per_sample (see the module docstring).

    `forward.batched` maps a tuple of batch levels (0 or 1 per input) to
    (batched function, which outputs are batched, which outputs are Python numbers).
    """
    n_inputs, n_params = len(inputs), len(params)
    batched: dict = {}

    def forward(self, *args, batch_level=None):
        if len(args) != n_inputs:
            raise TypeError(f"{where}: module `{name}` takes {n_inputs} inputs, got {len(args)}")
        if n_params == 0:
            values = ()
        elif n_params == 1:
            values = (self.get_parameters(),)
        else:
            values = tuple(self.get_parameters())
        levels = _levels(batch_level, n_inputs)
        if not any(levels):
            return _as_output(per_sample(*args, *values))
        entry = batched.get(levels)
        if entry is not None:
            return _run_batched(entry, args, values, levels)
        return _run_vmap(per_sample, args, values, levels)

    forward.__name__ = forward.__qualname__ = re.sub(r"_+per_sample$", "", per_sample.__name__)
    forward.__doc__ = f"Kokoyi module {signature} (compiled from {where})."
    forward.batched = batched
    return forward


def _levels(batch_level, n: int) -> tuple:
    if batch_level is None:
        return (0,) * n
    if isinstance(batch_level, int):
        return (batch_level,) * n
    levels = tuple(batch_level)
    if len(levels) != n:
        raise TypeError(f"batch_level has {len(levels)} entries for {n} inputs")
    return levels


def _as_output(x):
    """Outputs are tensors, also when the math gives a Python number."""
    if isinstance(x, tuple):
        return tuple(_as_output(v) for v in x)
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=None if isinstance(x, (bool, int))
                                                                   else torch.get_default_dtype())


def _run_batched(entry, args, values, levels):
    """The batched code: one call; outputs that do not depend on the batch are repeated."""
    function, out_batched, _ = entry
    size = next(a.shape[0] for a, k in zip(args, levels) if k)
    out = function(*args, *values)
    outs = out if len(out_batched) > 1 else (out,)
    result = []
    for o, is_batched in zip(outs, out_batched):
        o = _as_output(o)
        result.append(o if is_batched else o.expand((size,) + tuple(o.shape)))
    return tuple(result) if len(out_batched) > 1 else result[0]


def _run_vmap(per_sample, args, values, levels):
    """per_sample mapped over the batch axes with torch.func.vmap (any batch levels)."""
    batch_shape = next(tuple(a.shape[:k]) for a, k in zip(args, levels) if k)
    size = math.prod(batch_shape)
    flat = [a.reshape((size,) + tuple(a.shape[k:])) if k else a for a, k in zip(args, levels)]
    in_dims = tuple(0 if k else None for k in levels)

    def sample(*xs):
        return _as_output(per_sample(*xs, *values))

    out = torch.func.vmap(sample, in_dims=in_dims)(*flat)

    def unflatten(x):
        if isinstance(x, tuple):
            return tuple(unflatten(v) for v in x)
        return x.reshape(tuple(batch_shape) + tuple(x.shape[1:]))

    return unflatten(out)
