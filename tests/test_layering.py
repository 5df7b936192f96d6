"""Layering: the compiler (kokoyi/compiler) imports nothing from the runtime (kokoyi/runtime)
and does not need torch, so compiling runs without either (issue 12)."""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMPILER = ROOT / "kokoyi" / "compiler"
FORBIDDEN = ("kokoyi.runtime", "torch", "kokoyi.nn", "kokoyi.notebook")


def imported_modules(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_the_compiler_imports_neither_the_runtime_nor_torch():
    offenders = []
    for path in sorted(COMPILER.rglob("*.py")):
        if path.name.endswith("_test.py"):
            continue
        for name in imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_compiling_a_unit_loads_neither_torch_nor_the_runtime():
    code = ("import sys\n"
            "from kokoyi.compiler.pipeline import compile_unit\n"
            "compile_unit(open(sys.argv[1]).read(), 'policy.kyi')\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('kokoyi.runtime'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "policy_gradient" / "policy.kyi")],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
