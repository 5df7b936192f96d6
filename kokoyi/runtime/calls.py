"""Kernels of calls (re-exported by kokoyi.runtime.kernels as `kx.…`): layers and Kokoyi
modules on arguments with leading axes, and opaque callables called on each element."""
from __future__ import annotations

import math

import torch
from torch.nn.modules import module as _nn_module

from kokoyi.runtime.ops import conv2d_layer


class OpaqueRank(Exception):
    """An opaque callable's result has another per-sample rank than its kernel assumed (the
    runtime builds the kernel again with the rank learnt)."""

    def __init__(self, where: str, rank: int) -> None:
        super().__init__(f"{where}: the callable returned a value of per-sample rank {rank}")
        self.where, self.rank = where, rank


def call_each(f, args, flags, lead: int, rank: int, where: str):
    """f on each element of the `lead` leading axes of the arguments that vary (flags), stacked."""
    if not any(flags):
        out = torch.as_tensor(f(*args))
        if out.dim() != rank:
            raise OpaqueRank(where, out.dim())
        return out
    shape = next(tuple(a.shape[:lead]) for a, varies in zip(args, flags) if varies)
    flat = [a.reshape((-1,) + tuple(a.shape[lead:])) if varies else a for a, varies in zip(args, flags)]
    outs = [torch.as_tensor(f(*[a[i] if varies else a for a, varies in zip(flat, flags)]))
            for i in range(math.prod(shape))]
    if not outs:
        return torch.zeros(shape + (0,) * rank)
    if outs[0].dim() != rank:
        raise OpaqueRank(where, outs[0].dim())
    out = torch.stack(outs)
    return out.reshape(shape + tuple(out.shape[1:]))


def call_flat(layer, x, lead: int):
    """layer(x) for a layer that takes one batch axis: x's leading axes flattened into one."""
    conv = type(layer) is torch.nn.Conv2d  # (its forward's F.conv2d called directly: kk.conv2d_layer)
    if lead <= 1:
        return conv2d_layer(layer, x) if conv else layer(x)
    shape = x.shape[:lead]
    flat = x.reshape((-1,) + tuple(x.shape[lead:]))
    out = conv2d_layer(layer, flat) if conv else layer(flat)
    return out.reshape(tuple(shape) + tuple(out.shape[1:]))


def module_params(m, n: int) -> tuple:
    """The n parameters of a Kokoyi module whose body the caller inlined (its forward's reader,
    with its checks and messages; in a standalone file, get_parameters() itself)."""
    cls = type(m)
    forward = cls.__dict__.get("forward")  # (the class's own: no descriptor call)
    read = getattr(cls.forward if forward is None else forward, "__kokoyi_read_params__", None)
    if read is not None:
        return read(m)
    if n == 0:
        return ()
    value = m.get_parameters()
    return (value,) if n == 1 else tuple(value)


def call_module(m, args, flags, sizes, n_out: int, no_grad: bool = False):
    """A Kokoyi module on arguments whose leading axes (flags) are flattened into one batch axis
    (no_grad: only \\StopGrad reads the result, so no graph is recorded)."""
    if no_grad and torch.is_grad_enabled():
        if torch.compiler.is_compiling():  # (what a trace knows as no_grad)
            with torch.no_grad():
                return call_module(m, args, flags, sizes, n_out)
        # torch.no_grad() itself, without its four Python calls (__init__, __enter__, __exit__,
        # set_grad_enabled's): grad mode off, and back on however the call ends.
        _set_grad_enabled(False)
        try:
            return call_module(m, args, flags, sizes, n_out)
        finally:
            _set_grad_enabled(True)
    function = _forward_of(m)  # (called as function(m, ...): no bound method nor partial made)
    if not any(flags):
        return m(*args) if function is None else function(m, *args)
    levels = _LEVELS.get(flags)
    if levels is None:
        levels = _LEVELS[flags] = tuple(int(f) for f in flags)
    lead = len(sizes)
    if lead == 1:
        return m(*args, batch_level=levels) if function is None else function(m, *args, batch_level=levels)
    size = math.prod(sizes)
    flat = [a.reshape((size,) + tuple(a.shape[lead:])) if f else a for a, f in zip(args, flags)]
    out = m(*flat, batch_level=levels) if function is None else function(m, *flat, batch_level=levels)

    def back(o):
        return o.reshape(tuple(sizes) + tuple(o.shape[1:]))

    return back(out) if n_out == 1 else tuple(back(o) for o in out)


_LEVELS: dict = {}  # flags -> batch levels (a tuple: the callee's call guard takes it as it is)
_set_grad_enabled = torch._C._set_grad_enabled


def _forward_of(m):
    """m's Kokoyi forward function (taking m first) when calling m would only run it
    (nn.Module's own __call__, not compiled with m.compile(), no hook on m or on every module,
    no TorchScript trace): nn.Module.__call__'s checks skipped; else None."""
    cls = type(m)
    forward = cls.__dict__.get("forward")  # (the class's own: no descriptor call)
    if forward is None:
        forward = getattr(cls, "forward", None)
    function = getattr(forward, "_function", None)
    if (function is None or cls.__call__ is not _module_call or m._compiled_call_impl is not None
            or m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
            or m._backward_pre_hooks or _nn_module._global_forward_hooks or _nn_module._global_forward_pre_hooks
            or _nn_module._global_backward_hooks or _nn_module._global_backward_pre_hooks
            or torch._C._get_tracing_state()):
        return None
    return function


_module_call = torch.nn.Module.__call__
