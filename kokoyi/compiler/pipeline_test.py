"""compile_unit(defer_ir=True), what kokoyi.compile and kokoyi.load run: the same code, and
on first use the same IR as lowering every item at compile time."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from kokoyi.compiler import ir
from kokoyi.compiler.pipeline import _LOWERED, _needed_now, _symbol_of, compile_unit, lower_item

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/*.kyi"))
UNIT = """c \\gets 2 * 3 \\\\
d \\gets \\sum_{i=0}^{3} i * c \\\\
f(y) \\gets y * c + 1 \\\\
\\Function{g}{z}
  \\Return f(z) ** 2 \\\\
\\EndFunction
\\Module{M}{x \\in \\mathbb{R}^{D}; W}
  \\Return \\ReLU(W[0](x)) + g(x) \\\\
\\EndModule
"""


@pytest.mark.parametrize("text", [p.read_text() for p in EXAMPLES] + [UNIT])
def test_deferred_ir_is_the_same_ir(text):
    eager = compile_unit(text, "u.kyi")
    lazy = compile_unit(text, "u.kyi", defer_ir=True)
    assert lazy.generated.code == eager.generated.code
    assert any(f is None for f in lazy.ir)
    for item, done, deferred in zip(lazy.ast.items, eager.ir, lazy.ir):
        assert (deferred is not None) == _needed_now(item)  # only constants are lowered now
        assert ir.dump(lower_item(item)) == ir.dump(done)
        assert lower_item(item) is lower_item(item)  # lowered once
        assert "ir" in _symbol_of(item).extra or _symbol_of(item) in _LOWERED


def test_dumping_the_ir_lowers_everything():
    out = io.StringIO()
    state = compile_unit(UNIT, "u.kyi", defer_ir=True, dump_after="lower", out=out)
    assert all(f is not None for f in state.ir) and "module" in out.getvalue()
