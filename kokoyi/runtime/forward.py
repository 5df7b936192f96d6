"""ModuleForward: the object kokoyi.symbol holds for a module, and how it pickles.

A module symbol behaves as the plain function `forward(self, *inputs, batch_level=None)`:
assigned as a class attribute it binds like a method (to a functools.partial, which
torch.compile traces as well as a bound method). Unlike a function it pickles: by its
source key and the source text of the unit that defined it, so another process (a
`spawn` worker, a DataLoader worker, a DDP rank) gets the symbol it already has under that
key with the same source, or compiles the unit itself.
"""
from __future__ import annotations

import functools
import hashlib

_RESTORED: dict[tuple[str, str], object] = {}  # (key, source digest) -> symbol compiled on unpickling


class ModuleForward:
    """A compiled module's forward function, with `__reduce__` by name and unit source."""

    def __init__(self, function, key: str, source: tuple[str, str] | None) -> None:
        self._function = function
        self.__kokoyi_key__ = key
        self.__kokoyi_source__ = source  # (unit source text, filename), or None
        functools.update_wrapper(self, function)  # __name__, __doc__ and the __kokoyi_*__ attributes

    def __call__(self, *args, **kwargs):
        return self._function(*args, **kwargs)

    def __get__(self, owner, owner_type=None):
        if owner is None:
            return self
        return functools.partial(self._function, owner)

    def __repr__(self) -> str:
        return f"<kokoyi module {self.__kokoyi_key__} {self.__kokoyi_spec__.describe()}>"

    def __reduce__(self):
        if self.__kokoyi_source__ is None:
            raise TypeError(f"kokoyi module {self.__kokoyi_key__!r} has no unit source to pickle")
        text, filename = self.__kokoyi_source__
        return restore, (self.__kokoyi_key__, text, filename)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class FunctionSymbol:
    """A compiled top-level function as kokoyi.symbol holds it: called as the function, and
    pickled like a module symbol, by key and unit source (the function itself lives in this
    process's generated module, which another process does not have)."""

    def __init__(self, function, key: str, source: tuple[str, str]) -> None:
        self._function = function
        self.__kokoyi_key__ = key
        self.__kokoyi_source__ = source
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<kokoyi function {self.__kokoyi_key__}>"

    def __reduce__(self):
        text, filename = self.__kokoyi_source__
        return restore, (self.__kokoyi_key__, text, filename)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def restore(key: str, text: str, filename: str):
    """The module symbol `key` defined by unit source `text`, in this process.

    kokoyi.symbol's entry when it came from the same source; else the unit is compiled
    here (once per process) and registered in kokoyi.symbol. A unit that uses names of
    earlier units compiles only when those are loaded in this process too.
    """
    from kokoyi.runtime.loader import compile as compile_unit
    from kokoyi.runtime.symbols import symbol

    current = symbol.get(key)
    source = getattr(current, "__kokoyi_source__", None)
    if source is not None and source[0] == text:
        return current
    cache_key = (key, _digest(text))
    found = _RESTORED.get(cache_key)
    if found is None:
        found = compile_unit(text, filename)[key]
        _RESTORED[cache_key] = found
    return found
