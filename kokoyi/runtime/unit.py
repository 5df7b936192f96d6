"""What a unit's generated module (kokoyi/compiler/emit/unit.py) runs: `KOKOYI_UNIT`.

The module declares each definition through its unit object: `KOKOYI_UNIT.module(...)`
for a module's forward, `KOKOYI_UNIT.function(...)` for a top-level function and
`KOKOYI_UNIT.constant(...)` for a constant the compiler did not fold. Every one of them
runs kernels of the core-IR back end (kokoyi/runtime/specialize.py): functions specialise
per signature (their arguments' ranks and dtypes, or Python number types), like modules; a
constant is its level-0 kernel's value, computed once when the unit is installed.

While kokoyi.symbol installs a unit (SymbolTable.install), the compiled unit is at hand;
a copy of the module imported on its own compiles its embedded source on first use.
"""
from __future__ import annotations

import sys

from kokoyi.compiler import lazy
from kokoyi.errors import KokoyiError, KokoyiRuntimeError, KokoyiTypeError, KokoyiUnsupportedError
from kokoyi.runtime.forward import FunctionSymbol
from kokoyi.runtime.calls import OpaqueRank
from kokoyi.runtime.specialize import FALLBACK, Specializations, cast_floats

INSTALLING: list = []  # compiled units (pipeline.UnitState) whose code SymbolTable.install is running


class Unit:
    """The unit a generated module came from: its source, and the namespace it runs in."""

    def __init__(self, text: str, filename: str, namespace: dict | None = None) -> None:
        # (the generated module's namespace: its caller's globals)
        self.text, self.filename = text, filename
        self.namespace = sys._getframe(1).f_globals if namespace is None else namespace
        self._state = None
        self.kernels: dict = {}  # constant key -> (code, line map, kernel name) of its kernel
        if INSTALLING and INSTALLING[-1].source.text == text and INSTALLING[-1].source.filename == filename:
            self._state = INSTALLING[-1]

    def state(self):
        """The compiled unit (compiled here from the source when the module was imported on its own)."""
        if self._state is None:
            from kokoyi.compiler.pipeline import compile_unit

            self._state = compile_unit(self.text, self.filename)
        return self._state

    def globals_info(self) -> dict:
        """key -> (Python name, object, compiler Symbol) of the top-level definitions defined so far."""
        state, ns = self.state(), self.namespace
        names = {**state.global_names, **state.generated.globals}
        symbols = {**state.env, **{s.key: s for s in state.defined}}
        return {k: (n, ns[n], symbols.get(k)) for k, n in names.items() if n in ns}

    def module(self, python_name: str, **spec):
        """A module's forward (kokoyi.runtime.module.module)."""
        module = lazy.module("kokoyi.runtime.module").module  # (imported once, not per module)
        return module(python_name, namespace=self.namespace, source=(self.text, self.filename), **spec)

    def function(self, key: str, python_name: str, where: str) -> FunctionSymbol:
        """A top-level function: the level-0 kernel of its arguments' signature, per signature."""
        specs = Specializations(python_name)
        specs.python_outputs = True
        specs.attach_lazily(self.text, self.filename, key, self.namespace)
        zeros: dict = {}

        def function(*args):
            levels = zeros.get(len(args))
            if levels is None:
                levels = zeros[len(args)] = (0,) * len(args)
            entry, cast = specs.lookup(args, levels, ())
            if entry is FALLBACK:
                kinds = ", ".join(type(a).__name__ for a in args)
                raise KokoyiTypeError(f"{where}: function `{key}` takes tensors and numbers, got ({kinds})")
            if cast is not None:
                args = cast_floats(args, cast)
            try:
                return entry[0](*args)
            except OpaqueRank as err:  # learnt: built again with that rank
                specs.learn(err)
                return function(*args)
            except KokoyiError:
                raise
            except Exception as err:  # noqa: BLE001 - re-raised with the .kyi line
                from kokoyi.runtime.module import explain

                explained = explain(err)
                if explained is None:
                    raise
                raise KokoyiRuntimeError(explained) from err

        function.__name__ = function.__qualname__ = python_name
        function.__doc__ = f"Kokoyi function {key} (compiled from {where})."
        function.__kokoyi_specializations__ = specs
        return FunctionSymbol(function, key, (self.text, self.filename))

    def constant(self, key: str, python_name: str):
        """A constant's value: its level-0 kernel (no inputs), run now."""
        state = self.state()
        specs = Specializations(python_name)
        specs.python_outputs = True
        specs.module_ast = next(i for i in state.ast.items if _key(i) == key)
        specs.source, specs.namespace, specs.globals_info = state.source, self.namespace, self.globals_info
        entry, _ = specs.lookup((), (), ())
        if entry is FALLBACK:
            raise KokoyiUnsupportedError(f"{self.filename}: constant `{key}` cannot be computed: "
                                         + "; ".join(specs.unsupported))
        self.kernels[key] = (entry[2], entry[4], entry[0].__name__)
        return entry[0]()


# The names declare() binds besides the declarations' own (an install that fails restores them).
DECLARE_BINDS = ("__builtins__", "math", "torch", "kx", "kk", "ku", "KOKOYI_SOURCE", "KOKOYI_FILENAME", "KOKOYI_UNIT")


def declared_names(declarations: list) -> tuple[str, ...]:
    """Every name declare(..., declarations, namespace) may bind in namespace."""
    return DECLARE_BINDS + tuple(d[0] for d in declarations)


_IMPORTS: tuple | None = None  # (builtins' dict, the modules declare binds), made at its first call


def declare(text: str, filename: str, declarations: list, namespace: dict) -> None:
    """Run a unit's declarations (GeneratedUnit.declarations) in namespace: what running the
    unit's generated module there does (its imports, KOKOYI_SOURCE, KOKOYI_FILENAME,
    KOKOYI_UNIT, then each definition), without compiling its code."""
    global _IMPORTS
    if _IMPORTS is None:  # (the modules once: a package's `from ... import` costs a call per unit)
        import builtins
        import math

        import torch

        from kokoyi.runtime import kernels, ops

        _IMPORTS = builtins.__dict__, {"math": math, "torch": torch, "kx": kernels, "kk": ops,
                                       "ku": sys.modules[__name__]}
    namespace.setdefault("__builtins__", _IMPORTS[0])  # (as exec would)
    namespace.update(_IMPORTS[1], KOKOYI_SOURCE=text, KOKOYI_FILENAME=filename)
    unit = namespace["KOKOYI_UNIT"] = Unit(text, filename, namespace)
    for name, method, args, kwargs in declarations:
        namespace[name] = args if method is None else getattr(unit, method)(*args, **kwargs)


def _key(item) -> str:
    from kokoyi.compiler.pipeline import _symbol_of

    return _symbol_of(item).key
