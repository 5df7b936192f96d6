"""kx.static_values: results kept per code object (by identity) and per key, dropped with it."""
from __future__ import annotations

import gc

import torch

from kokoyi.runtime import statics


def _local_function():
    """A kernel's local function as generated code makes it: a new function object per call, one
    code object."""
    calls = []

    def make():
        def _statics(n):
            calls.append(n)
            return (torch.arange(n),)
        return _statics
    return make, calls


def test_results_are_kept_per_code_object_and_key():
    make, calls = _local_function()
    a = statics.static_values(make(), (3,))
    b = statics.static_values(make(), (3,))  # another function object, the same code
    c = statics.static_values(make(), (4,))
    assert a[0] is b[0] and calls == [3, 4] and c[0].tolist() == [0, 1, 2, 3]


def test_the_store_goes_with_its_code_object():
    namespace: dict = {}
    exec("def _statics(n):\n    return (n * 2,)\n", namespace)  # noqa: S102 - a code object that can die
    code_id = id(namespace["_statics"].__code__)
    assert statics.static_values(namespace["_statics"], (5,)) == (10,)
    assert code_id in statics._KEPT
    namespace.clear()
    gc.collect()
    assert code_id not in statics._KEPT
