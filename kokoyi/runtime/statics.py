"""Values a kernel computes from sizes and constants alone, kept across calls
(kokoyi/compiler/batch/statics.py prints them as a local function and calls static_values)."""
from __future__ import annotations

import weakref

import torch

# The local function's code object -> {(numbers, device, dtype and mode): its results}.
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MAX_ENTRIES = 16  # sizes kept per function (a loop counter among the numbers cycles through more)
MAX_BYTES = 1 << 24  # a larger result is computed on every call rather than held
# torch's tracing modes (fake tensors, make_fx's proxies, functionalization): no kept values there
_TRACING = tuple(getattr(torch._C._TorchDispatchModeKey, k) for k in ("FAKE", "PROXY", "FUNCTIONAL")
                 if hasattr(torch._C._TorchDispatchModeKey, k))


def _tracing() -> bool:
    if torch.compiler.is_compiling():
        return True
    if torch._C._len_torch_dispatch_stack():
        return any(torch._C._get_dispatch_mode(k) is not None for k in _TRACING)
    return False


def static_values(fn, key: tuple) -> tuple:
    """fn(*key), computed once per key (and default dtype, inference mode): its tensors are made
    from the key alone and never change (the compiler keeps only values nothing writes or
    hands out). Computed afresh while torch traces (compile, export, fake tensors: sizes may
    be symbolic, tensors fake)."""
    if _tracing():
        return fn(*key)
    full = key + (torch.get_default_dtype(), torch.is_inference_mode_enabled())
    code = fn.__code__
    kept = _KEPT.get(code)
    if kept is None:
        kept = _KEPT[code] = {}
    try:
        return kept[full]
    except KeyError:
        pass
    except TypeError:  # a symbolic size
        return fn(*key)
    values = fn(*key)
    if sum(v.nbytes for v in values if isinstance(v, torch.Tensor)) <= MAX_BYTES and \
            not any(isinstance(v, torch.Tensor) and v.requires_grad for v in values):
        if len(kept) >= MAX_ENTRIES:
            kept.clear()
        kept[full] = values
    return values
