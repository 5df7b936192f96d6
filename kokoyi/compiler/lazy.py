"""Modules imported on first use, then looked up in a cache.

The passes import their modules inside the functions that use them (so importing kokoyi does
not import the whole compiler). A function-level `from module import name` runs the import
machinery on every call: about 1.5 µs for a plain module, most of it CPython looking for the
module's `__path__` (it makes an AttributeError and drops it), and a package's fromlist goes
through importlib in Python. `kokoyi.compile` made 15 of them a unit. `module(name)` imports
once; the names are read from the module at each use, so a name set on the module later
(a test's monkeypatch) is the one used, as with the import statement.
"""
from __future__ import annotations

import functools
import importlib


@functools.cache
def module(name: str):
    """The module `name`, imported on the first call."""
    return importlib.import_module(name)
