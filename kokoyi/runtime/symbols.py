"""`kokoyi.symbol`: the one namespace that units, files and notebook cells share.

Keys are the source spelling of a name, with or without its leading backslash
(`r"\\pi"`, `"pi"`, `"x_{first}"`, `"x_first"`, `r"\\bar{x}"`). A unit is installed all
at once: if its generated code fails to run, the namespace is restored as it was.
"""
from __future__ import annotations

import hashlib
import itertools
import sys
import types
from collections.abc import Iterator, Mapping

from kokoyi.compiler import ast as A
from kokoyi.compiler import lazy
from kokoyi.compiler import symbols as S
from kokoyi.runtime.forward import FunctionSymbol
from kokoyi.runtime.module import register_code


class _Lookup(Mapping):
    """Mapping whose keys accept every spelling of a name."""

    def _keys(self) -> dict:
        raise NotImplementedError

    def _python_names(self) -> dict:
        raise NotImplementedError

    def canonical(self, key: str) -> str | None:
        keys = self._keys()
        if not isinstance(key, str):
            return None
        if key in keys:
            return key
        if "\\" + key in keys:
            return "\\" + key
        by_python = {v: k for k, v in self._python_names().items()}
        if key in by_python:
            return by_python[key]
        spelled = canonical_spelling(key)
        return spelled if spelled in keys else None

    def __getitem__(self, key: str):
        k = self.canonical(key)
        if k is None:
            raise KeyError(f"no Kokoyi symbol {key!r}; defined: {', '.join(sorted(self._keys())) or 'none'}")
        return self._keys()[k]

    def __contains__(self, key) -> bool:
        return self.canonical(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


def canonical_spelling(key: str) -> str | None:
    """The canonical key of a name written any way (`G_t` -> `G_{t}`), or None."""
    from kokoyi.compiler import ast as A
    from kokoyi.compiler.builder import build
    from kokoyi.compiler.parser import parse
    from kokoyi.errors import KokoyiError, Source

    if "\n" in key or "\\\\" in key or len(key) > 200:
        return None
    try:
        prog = build(parse(Source(f"{key} \\gets 0 \\\\")), Source(key))
    except KokoyiError:
        return None
    if len(prog.items) != 1 or not isinstance(prog.items[0], A.Definition):
        return None
    return prog.items[0].target.key


_NAMESPACES = itertools.count()


def _namespace_module() -> types.ModuleType:
    """A fresh module, registered in sys.modules, whose dict the generated code runs in.

    Tools that look functions up by their `__module__` (torch.compile's Dynamo, pickle,
    inspect) need that name to be importable.
    """
    name = f"kokoyi.runtime.generated_{next(_NAMESPACES)}"
    module = types.ModuleType(name, "Code generated from Kokoyi units (see kokoyi.runtime.symbols).")
    sys.modules[name] = module
    return module


class Unit(_Lookup):
    """What one compile defined: names -> objects, plus the generated Python source."""

    def __init__(self, filename: str, python_source, objects: dict, python_names: dict, line_map: dict):
        """python_source: the generated Python, or the GeneratedUnit to read it from when it is
        first asked for (a unit installed through its declarations prints it only then)."""
        self.filename = filename
        self._python_source = python_source
        self.line_map = line_map
        self._objects = objects
        self._names = python_names

    @property
    def python_source(self) -> str:
        """The unit's generated Python module."""
        source = self._python_source
        return source if isinstance(source, str) else source.code

    def _keys(self) -> dict:
        return self._objects

    def _python_names(self) -> dict:
        return self._names

    def __repr__(self) -> str:
        return f"<kokoyi unit {self.filename}: {', '.join(self._objects) or 'nothing'}>"


class SymbolTable(_Lookup):
    """Every top-level definition compiled in this process, by source spelling."""

    def __init__(self) -> None:
        self._objects: dict[str, object] = {}
        self._symbols: dict[str, object] = {}  # key -> compiler Symbol, for later units
        self._names: dict[str, str] = {}  # key -> Python name in the shared namespace
        self._taken: set[str] = set()  # the values of _names (compile_unit's taken_names)
        self.namespace: dict[str, object] = _namespace_module().__dict__
        self._counter = 0
        self.generation = 0  # bumped by every install: specialised code inlines top-level functions

    def _keys(self) -> dict:
        return self._objects

    def _python_names(self) -> dict:
        return self._names

    def environment(self, copy: bool = True) -> tuple[dict, dict]:
        """(key -> Symbol, key -> Python name) for compiling the next unit.

        copy=False: the table's own dicts, not copies (a copy per unit grew with every unit
        registered); read only, and they change at the next install (kokoyi.compile reads
        them only while it compiles and installs the unit)."""
        if not copy:
            return self._symbols, self._names
        return dict(self._symbols), dict(self._names)

    def taken_names(self) -> set[str]:
        """The Python names of environment()'s second dict, as a set kept up to date here (not
        one made per unit): compile_unit's taken_names. Read only; install changes it."""
        return self._taken

    def install(self, state) -> Unit:
        """Run a compiled unit's code in the shared namespace and register what it defines (a unit
        whose code only declares runs its declarations instead: GeneratedUnit.declarations)."""
        generated = state.generated
        self._counter += 1
        declarations = getattr(generated, "declarations", None)
        if declarations is None:  # (a unit that computes constants runs its code, so errors map to its lines)
            digest = hashlib.sha256(generated.code.encode()).hexdigest()[:12]
            code_name = f"<kokoyi:{state.source.filename}:{self._counter}:{digest}>"
            code = compile(generated.code, code_name, "exec")
            register_code(code_name, generated.code, state.source.filename, generated.line_map,
                          generated.index_sites)
        unit_rt = lazy.module("kokoyi.runtime.unit")  # (imported once, not per unit)

        namespace = self.namespace
        if declarations is None:  # the code may bind any name: the whole namespace is kept
            saved, written = dict(namespace), None
        else:  # only the names declare binds (not a copy of every earlier unit's names per unit)
            written = unit_rt.declared_names(declarations)
            saved = {name: namespace[name] for name in written if name in namespace}

        unit_rt.INSTALLING.append(state)
        try:
            if declarations is None:
                exec(code, self.namespace)  # noqa: S102 - code generated from checked Kokoyi only
            else:  # what the code does, without compiling it
                unit_rt.declare(state.source.text, state.source.filename, declarations, self.namespace)
        except BaseException:
            if written is None:
                namespace.clear()
                namespace.update(saved)
            else:
                for name in written:
                    if name in saved:
                        namespace[name] = saved[name]
                    else:
                        namespace.pop(name, None)
            raise
        finally:
            unit_rt.INSTALLING.pop()
        unit = self.namespace.get("KOKOYI_UNIT")
        if unit is not None and unit._state is state:
            unit._state = None  # (its constants are computed: the compiled unit need not stay alive)
        objects, names = {}, {}
        for sym in state.defined:
            name = generated.globals[sym.key]
            objects[sym.key] = self.namespace[name]
            if sym.kind == S.FUNCTION and callable(objects[sym.key]) and not isinstance(objects[sym.key], FunctionSymbol):
                objects[sym.key] = FunctionSymbol(objects[sym.key], sym.key, (state.source.text, state.source.filename))
            names[sym.key] = name
        self._objects.update(objects)
        self._names.update(names)
        self._taken.update(names.values())
        self.generation += 1
        self._symbols.update({sym.key: sym for sym in state.defined})
        for item in state.ast.items:
            obj = objects.get((item.target if isinstance(item, A.Definition) else item.name).symbol.key)
            if obj is not None and hasattr(obj, "__kokoyi_specializations__"):
                obj.__kokoyi_specializations__.attach(item, state.source, self)
        return Unit(state.source.filename, generated, objects, names, generated.line_map)

    def globals_info(self) -> dict:
        """key -> (Python name, object, compiler Symbol) of every top-level definition."""
        return {k: (self._names[k], self.namespace.get(self._names[k]), self._symbols.get(k)) for k in self._objects}

    def clear(self) -> None:
        """Forget every definition (tests and fresh notebooks)."""
        # The old namespace leaves sys.modules too, or every clear would keep one alive.
        sys.modules.pop(self.namespace.get("__name__", ""), None)
        self.__init__()

    def __repr__(self) -> str:
        return f"<kokoyi.symbol: {', '.join(self._objects) or 'empty'}>"


symbol = SymbolTable()
