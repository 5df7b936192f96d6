"""Values a kernel computes from sizes and constants alone, kept across calls
(kokoyi/compiler/batch/statics.py prints them as a local function and calls static_values)."""
from __future__ import annotations

import weakref

import torch

# id of the local function's code object -> (a weak reference to it, {(numbers, device, dtype
# and mode): its results}). By identity: a WeakKeyDictionary hashes and compares the code
# objects themselves (their bytecode, constants and names) on every look-up, several times the
# rest of a call's cost; the entry goes with its code object.
_KEPT: dict = {}
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
    entry = _KEPT.get(id(code))
    if entry is not None and entry[0]() is code:
        kept = entry[1]
    else:
        kept = _kept_for(code)
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


def _kept_for(code) -> dict:
    """A new store of results for code, dropped when code is (an id is reused only after that)."""
    key = id(code)

    def dropped(ref, key=key):
        if _KEPT.get(key, (None,))[0] is ref:
            del _KEPT[key]

    kept: dict = {}
    _KEPT[key] = (weakref.ref(code, dropped), kept)
    return kept
