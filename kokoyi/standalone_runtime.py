"""The module wrapper of standalone files (`kyic compile --standalone`): plain torch.

`kyic compile --standalone` copies this file's code into its output, where it plays the
part of kokoyi.runtime.module.module: it turns a module's kernels into
`forward(self, *inputs, batch_level=None)`. A call on one sample runs the one-sample kernel;
a batched call runs the kernel of its batch levels (several batch axes flattened into one),
and where the file holds none, the one-sample kernel in a loop over the samples. It must
import nothing but torch and the standard library.
"""
from __future__ import annotations

import math

import torch


def module(python_name, *, name, inputs, params, param_hints=(), signature="", where="", sample,
           param_specs=()):
    """forward(self, *inputs, batch_level=None) around the kernels (see the module docstring).

    `forward.batched` maps a tuple of batch levels (0 or 1 per input) to
    (batched kernel, which outputs are batched).
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
            return _as_output(sample(*args, *values))
        batch_shape = next(tuple(a.shape[:k]) for a, k in zip(args, levels) if k)
        size = math.prod(batch_shape)
        flat = [a.reshape((size,) + tuple(a.shape[k:])) if k else a for a, k in zip(args, levels)]
        entry = batched.get(tuple(1 if k else 0 for k in levels))
        if entry is not None:
            out = _run_batched(entry, flat, values, size)
        else:
            out = _run_each(sample, flat, values, levels, size)
        return _unflatten(out, batch_shape)

    forward.__name__ = forward.__qualname__ = python_name
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


def _run_batched(entry, args, values, size):
    """The batched kernel: one call; outputs that do not depend on the batch are repeated."""
    function, out_batched = entry
    out = function(*args, *values)
    outs = out if len(out_batched) > 1 else (out,)
    result = []
    for o, is_batched in zip(outs, out_batched):
        o = _as_output(o)
        result.append(o if is_batched else o.expand((size,) + tuple(o.shape)))
    return tuple(result) if len(out_batched) > 1 else result[0]


def _run_each(sample, args, values, levels, size):
    """The one-sample kernel on each sample of the flattened batch, stacked."""
    outs = [_as_output(sample(*[a[i] if k else a for a, k in zip(args, levels)], *values)) for i in range(size)]
    if isinstance(outs[0], tuple):
        return tuple(torch.stack([o[j] for o in outs]) for j in range(len(outs[0])))
    return torch.stack(outs)


def _unflatten(x, batch_shape):
    if isinstance(x, tuple):
        return tuple(_unflatten(v, batch_shape) for v in x)
    return x.reshape(tuple(batch_shape) + tuple(x.shape[1:]))
