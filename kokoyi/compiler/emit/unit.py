"""The unit's importable Python module (what `kyic compile` writes and kokoyi.symbol runs).

Printed from the unit's core IR, after `rewrite`. The module holds no per-sample code: every
definition is a declaration that the runtime (kokoyi/runtime/unit.py) turns into a callable
which specialises per call signature, running the kernels of the `batch` and `emit` passes.
A module's forward runs the kernel of its signature at batch level 0 for one sample; a
top-level function runs the level-0 kernel of its arguments' signature; a constant is a
Python number when `simplify` folded it, else the value of its level-0 kernel (computed when
the unit is installed). Each declaration is preceded by a `# file:line: <source>` comment,
and a line map sends its lines to that source line.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import ClassVar

from kokoyi import __version__
from kokoyi.compiler import ast as A
from kokoyi.compiler import ir
from kokoyi.compiler.emit.namespace import Namespace
from kokoyi.errors import Source


@dataclass
class GeneratedUnit:
    code: str  # (printed when first read where the printer made the unit: GeneratedUnit.pending)
    line_map: dict[int, int]  # generated line (1-based) -> source line
    globals: dict[str, str]  # source key -> Python name of each top-level definition
    modules: list[str] = field(default_factory=list)  # Python names of module forwards
    index_sites: list = field(default_factory=list)  # [source line, spelling, file:line:col, 0]
    # What running `code` does, as data, where it only declares (no constant is computed when the
    # unit is installed): (python name, KOKOYI_UNIT method or None for a folded value, args,
    # keyword args) per definition, which kokoyi.runtime.unit.declare runs without compiling the
    # code. Not a field: the code cache stores the code, and a unit from it runs the code.
    declarations: ClassVar[list | None] = None

    @classmethod
    def pending(cls, lines: list, line_map: dict[int, int], globals: dict[str, str],
                modules: list[str]) -> GeneratedUnit:
        """A unit whose code is printed from `lines` when `code` is first read (UnitPrinter.put):
        installing a unit through its declarations never reads it, so a unit compiled and
        registered by kokoyi.compile prints its Python only when someone looks at it
        (Unit.python_source, the code cache, `kyic compile`)."""
        unit = cls.__new__(cls)
        unit._lines = lines
        unit.line_map, unit.globals, unit.modules, unit.index_sites = line_map, globals, modules, []
        return unit


def _get_code(self) -> str:
    code = self.__dict__.get("_code")
    if code is None:
        lines = self.__dict__.pop("_lines")
        code = self._code = "\n".join(line if type(line) is str else line[0](*line[1:]) for line in lines) + "\n"
    return code


def _set_code(self, code: str) -> None:
    self.__dict__.pop("_lines", None)
    self._code = code


GeneratedUnit.code = property(_get_code, _set_code)  # (after @dataclass: `code` stays a field)


def safe_comment(text: str, limit: int = 200) -> str:
    """Source text made safe for one Python comment line: no line breaks of any kind."""
    if not (text.isascii() and text.isprintable()):  # (else no character needs replacing)
        out = []
        for ch in text:
            cat = unicodedata.category(ch)
            if ch in "\r\n" or cat in ("Zl", "Zp", "Cc", "Cf") or ch in "\x0b\x0c\x1c\x1d\x1e\x85":
                out.append(" " if ch in "\r\n\t" else f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        text = "".join(out)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UnitPrinter:
    def __init__(self, source: Source, global_names: dict[str, str], taken=None) -> None:
        self.source = source
        self.lines: list = []  # a line, or (function, *args) printing one or more lines when the code is read
        self.n_lines = 0
        self.line_map: dict[int, int] = {}
        self.source_line = 0
        # Top-level names already in use (earlier units) keep their Python names, so
        # redefining a name replaces it for every later use.
        # (read only: this unit's names go to new_globals; taken, when given, is the set of
        # global_names' values, which the caller keeps instead of a set made here per unit)
        self.global_names = global_names
        self.ns = Namespace(outer=set(global_names.values()) if taken is None else taken)
        self.new_globals: dict[str, str] = {}
        self.modules: list[str] = []
        self.declarations: list | None = []  # None once a declaration computes something at install

    def put(self, indent: int, text, n_lines: int = 1) -> None:
        """One line (text: a str), or n_lines printed later (text: a tuple (function, *args)
        whose function returns them joined by line breaks, indented as they are to be)."""
        self.lines.append("    " * indent + text if indent else text)
        for _ in range(n_lines):
            self.n_lines += 1
            if self.source_line:
                self.line_map[self.n_lines] = self.source_line

    def global_name(self, key: str, hint: str) -> str:
        name = self.new_globals.get(key)
        if name is None:
            name = self.global_names.get(key)
        if name is None:
            name = self.ns.create(hint)
        self.new_globals[key] = name
        return name

    def comment(self, node: A.Node, first_line_only: bool) -> None:
        span = node.span
        self.source_line = span.line
        self.put(0, (_comment, self.source, span.line, span.line if first_line_only else span.end_line))

    def where(self, node: A.Node) -> str:
        return f"{self.source.filename}:{node.span.line}:{node.span.column}"

    def program(self, prog: A.Program, functions: list[ir.Function]) -> GeneratedUnit:
        self.put(0, (_header, self.source), HEADER_LINES)  # (the module's first lines, printed when read)
        for item, fn in zip(prog.items, functions):
            self.source_line = 0
            self.put(0, "")
            self.put(0, "")
            if isinstance(item, A.Module):
                self.module(item)
            elif isinstance(item, A.Function) or item.params is not None:
                sym = _symbol(item)
                self.comment(item, first_line_only=isinstance(item, A.Function))
                name = self.global_name(sym.key, sym.hint)
                self.declare(name, "function", (sym.key, name, self.where(item)))
            else:
                sym = item.target.symbol
                self.comment(item, first_line_only=False)
                name = self.global_name(sym.key, sym.hint)
                value = _folded(fn.body)
                if value is None:
                    self.declare(name, "constant", (sym.key, name))
                    self.declarations = None  # (its kernel runs when the code runs)
                else:
                    self.put(0, f"{name} = {_literal(value)}")
                    self.declare(name, None, value, printed=True)
        generated = GeneratedUnit.pending(self.lines, self.line_map, self.new_globals, self.modules)
        generated.declarations = self.declarations
        return generated

    def declare(self, name: str, method: str | None, args, kwargs: dict | None = None, printed: bool = False) -> None:
        """`name = KOKOYI_UNIT.method(*args, **kwargs)` (or `name = args` for a folded value):
        printed, and kept as data (GeneratedUnit.declarations)."""
        if not printed:
            self.put(0, (_declaration, name, method, args, kwargs), 1 if kwargs is None else 2 + len(args) + len(kwargs))
        if self.declarations is not None:
            self.declarations.append((name, method, args, kwargs or {}))

    def module(self, mod: A.Module) -> None:
        sym = mod.name.symbol
        self.comment(mod, first_line_only=True)
        public = self.global_name(sym.key, sym.hint)
        local = Namespace(self.ns._used, outer=self.ns._outer)  # (no suffixes carried: not child())
        spec = {"name": sym.key, "inputs": tuple(_spec(d) for d in mod.inputs),
                "params": tuple(d.name.symbol.key for d in mod.params),
                "param_hints": tuple(local.create(d.name.symbol.hint) for d in mod.params)}
        if any(d.annotation is not None for d in mod.params):
            spec["param_specs"] = tuple(_spec(d) for d in mod.params)
        spec["signature"] = safe_comment(self.source.line_text(mod.span.line).strip(), 300)
        spec["where"] = self.where(mod)
        self.declare(public, "module", (public,), spec)
        self.modules.append(public)


def _header(source: Source) -> str:
    """The module's first HEADER_LINES lines: imports, and the unit's source and file name."""
    # Lines 1 and 2 are fixed text: Python reads them for an encoding declaration.
    # The source travels with the code: the runtime specialises every definition for each
    # call signature from it (also in a copy of this file imported elsewhere).
    return "\n".join([
        "# -*- coding: utf-8 -*-",
        f"# Generated by kokoyi {__version__}. Edit the Kokoyi source, not this file.",
        f"# Source: {safe_comment(source.filename, 120)}",
        "import math",
        "",
        "import torch",
        "",
        "from kokoyi.runtime import kernels as kx",
        "from kokoyi.runtime import ops as kk",
        "from kokoyi.runtime import unit as ku",
        "",
        f"KOKOYI_SOURCE = {source.text!r}",
        f"KOKOYI_FILENAME = {source.filename!r}",
        "KOKOYI_UNIT = ku.Unit(KOKOYI_SOURCE, KOKOYI_FILENAME)",
    ])


HEADER_LINES = 14


def _comment(source: Source, first: int, last: int) -> str:
    text = " ".join(source.line_text(i).strip() for i in range(first, last + 1))
    return f"# {safe_comment(source.filename, 80)}:{first}: {safe_comment(text)}"


def _declaration(name: str, method: str, args: tuple, kwargs: dict | None) -> str:
    """`name = KOKOYI_UNIT.method(*args, **kwargs)`: one line, or one per argument with kwargs."""
    if kwargs is None:
        return f"{name} = KOKOYI_UNIT.{method}({', '.join(map(repr, args))})"
    return "\n".join([f"{name} = KOKOYI_UNIT.{method}(", *(f"    {a!r}," for a in args),
                      *(f"    {k}={v!r}," for k, v in kwargs.items()), ")"])


def _symbol(item):
    return item.target.symbol if isinstance(item, A.Definition) else item.name.symbol


def _spec(d: A.Decl) -> tuple:
    ann = d.annotation
    if ann is None:
        return (d.name.symbol.key, None, None)
    dims = tuple(x.symbol.key if isinstance(x, A.Ref) else x.value for x in ann.dims)
    return (d.name.symbol.key, ann.field, dims)


def _folded(body: ir.Expr):
    """The number a constant `simplify` folded to (None: computed at install)."""
    while isinstance(body, ir.At):
        body = body.body
    if isinstance(body, ir.Lit) and type(body.value) in (int, float, bool):
        return body.value
    return None


def _literal(value) -> str:
    """A folded number as Python source."""
    text = repr(value)
    return text if text not in ("nan", "inf", "-inf") else f"float({text!r})"


def generate(prog: A.Program, functions: list[ir.Function], source: Source,
             global_names: dict[str, str], taken=None) -> GeneratedUnit:
    """taken: the set of global_names' values, where the caller keeps one (else made here)."""
    return UnitPrinter(source, global_names, taken).program(prog, functions)


__all__ = ["GeneratedUnit", "generate", "safe_comment"]
