"""Namespace: turns any source name into a unique, legal, readable Python identifier.

Modelled on torch.fx's Namespace: `\\alpha` -> `alpha`, `x_{first}` -> `x_first`,
`\\bar{x}` -> `x_bar`, `s'` -> `s_prime`; Python keywords, builtins and the names the
generated code itself uses get a trailing underscore; collisions get `_1`, `_2`, ...
"""
from __future__ import annotations

import builtins
import functools
import keyword
import re

# Names generated code uses for itself; user names never take them.
RESERVED = frozenset({"kk", "kx", "torch", "math", "kokoyi", "KOKOYI_SOURCE", "KOKOYI_FILENAME", "KOKOYI_UNIT"})
TAKEN_BY_PYTHON = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))


_ILLEGAL = re.compile(r"[^A-Za-z0-9_]")
_RUNS = re.compile(r"_+")


@functools.lru_cache(maxsize=4096)  # (a pure function of the hint; kernels ask for the same few many times)
def legal(hint: str) -> str:
    """hint made into an identifier, before uniqueness."""
    text = _RUNS.sub("_", _ILLEGAL.sub("_", hint)).strip("_") or "v"
    if text[0].isdigit():
        text = "v_" + text
    if text in TAKEN_BY_PYTHON or text in RESERVED or text.startswith("__"):
        text += "_"
    return text


class Namespace:
    def __init__(self, taken=(), suffixes=None, outer=frozenset()) -> None:
        self._used: set[str] = set(taken)
        # Names taken elsewhere (the earlier units' top-level names), read but never copied or
        # changed: a unit's namespace is made per unit, and a copy grew with every unit before.
        self._outer = outer
        # base -> the last suffix create() gave it: names are never released, so no suffix
        # below it is free, and the search starts there (not at 1: a kernel's hundred `v`s)
        self._suffix: dict[str, int] = dict(suffixes or {})

    def create(self, hint: str) -> str:
        base = legal(hint)
        name = base
        used, outer = self._used, self._outer
        if name in used or name in outer:
            n = self._suffix.get(base, 0)
            while name in used or name in outer:
                n += 1
                name = f"{base}_{n}"
            self._suffix[base] = n
        used.add(name)
        return name

    def reserve(self, name: str) -> None:
        self._used.add(name)

    def child(self) -> Namespace:
        """A namespace that avoids every name taken here so far."""
        return Namespace(self._used, self._suffix, self._outer)
