"""torch_eager: every kernel op the batch pass emits has a template, and printing is faithful."""
from __future__ import annotations

import math

from kokoyi.compiler import kernel as K
from kokoyi.compiler.emit import torch_eager


def test_arguments_print_as_python():
    assert torch_eager.arg(K.Ref("x")) == "x"
    assert torch_eager.arg(math.inf) == "math.inf" and torch_eager.arg(-math.inf) == "-math.inf"
    assert torch_eager.arg(math.nan) == "math.nan"
    assert torch_eager.arg(("slice", 1, None)) == "slice(1, None)"
    assert torch_eager.arg((K.Ref("a"),)) == "(a,)"
    assert torch_eager.arg("torch.float64") == "torch.float64" and torch_eager.arg("f.kyi:1:2") == "'f.kyi:1:2'"


def test_python_numbers_use_their_own_spelling():
    tensor = K.Assign("y", "and", (K.Ref("a"), K.Ref("b")))
    number = K.Assign("y", "and", (K.Ref("a"), K.Ref("b")), {"py": True})
    assert torch_eager.expression(tensor) == "a & b" and torch_eager.expression(number) == "(a and b)"


def test_blocks_print_with_their_line_map():
    k = K.Kernel("f", ("x",), [
        K.Assign("n", "size", (K.Ref("x"), 0), line=3),
        K.If(K.Ref("n"), [K.Assign("y", "neg", (K.Ref("x"),), line=4)], [K.Assign("y", "copy", (K.Ref("x"),))]),
        K.Return((K.Ref("y"),), line=5),
    ])
    code, line_map = torch_eager.emit(k)
    assert code.splitlines() == ["def f(x):", "    n = x.shape[0]", "    if n:", "        y = -x", "    else:",
                                 "        y = x", "    return y"]
    assert line_map[2] == 3 and line_map[4] == 4 and line_map[7] == 5


def test_every_op_the_batch_pass_emits_has_a_template():
    import pathlib
    import re

    batch = pathlib.Path(__file__).parents[1] / "batch"
    emitted = set()
    for path in batch.glob("*.py"):
        if not path.name.endswith("_test.py"):
            emitted |= set(re.findall(r'b\.(?:emit|do)\("(\w+)"', path.read_text()))
    emitted |= {"exp", "log", "add", "sub", "mul", "div", "pow", "neg", "not", "and", "or"}  # the families' ops
    missing = sorted(op for op in emitted if op not in torch_eager.TEMPLATES)
    assert not missing, missing
