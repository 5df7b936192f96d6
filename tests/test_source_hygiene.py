"""Source hygiene the linters in use miss: a module or class that defines one name twice.

ruff's F811 flags a redefinition only when the first definition was never used; a helper
used by an earlier function and then redefined under the same name (kokoyi/runtime/ops.py's
`_overflow`, seed 29002132) silently changes what the earlier function calls.
"""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _redefinitions(body, where: str):
    seen = {}
    for node in body:
        if not isinstance(node, DEFS):
            continue
        # (@x.setter and @overload are redefinitions on purpose)
        on_purpose = any(isinstance(d, ast.Attribute) or (isinstance(d, ast.Name) and d.id == "overload")
                         for d in getattr(node, "decorator_list", ()))
        if node.name in seen and not on_purpose:
            yield f"{where}: `{node.name}` defined at lines {seen[node.name]} and {node.lineno}"
        seen[node.name] = node.lineno
        if isinstance(node, ast.ClassDef):
            yield from _redefinitions(node.body, f"{where} class {node.name}")


def test_no_module_or_class_defines_a_name_twice():
    found = []
    for path in sorted((ROOT / "kokoyi").rglob("*.py")):
        found += _redefinitions(ast.parse(path.read_text(encoding="utf-8")).body, str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


def test_the_check_sees_a_redefinition():
    src = "def f():\n    return g()\n\ndef g():\n    return 1\n\ndef g(a, b):\n    return 2\n"
    assert list(_redefinitions(ast.parse(src).body, "m.py")) == ["m.py: `g` defined at lines 4 and 7"]
