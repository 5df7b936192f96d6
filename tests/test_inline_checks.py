"""Checked reads with their common case inline (kokoyi/compiler/emit/checks.py): the generated
code compares sizes itself and calls the runtime's checked helper only when the comparison
fails. Values, dtypes, errors and gradients on every path equal the reference interpreter's
(whole axes, parts of an axis, axes too short, empty ranges), and the code uses the inline forms."""
from __future__ import annotations

import math

import differential
import pytest
import torch

import kokoyi
from kokoyi.compiler import kernel as K
from kokoyi.compiler.emit import torch_eager
from kokoyi.runtime import kernels
from kokoyi.test_utils import Host

MEAN = r"\Module{P}{S, A} \Return \mathbb{E}_{b=0}^{|A|-1} (S[b] * A[b]) \\ \EndModule"
CASES = {
    # a big operator's rows of S and A: the whole axis of A; S as long (whole), longer (a
    # narrow) or shorter (the located error), and an empty range (\mathbb{E}'s error)
    "rows, S longer": (MEAN, {"S": torch.randn(4, 2), "A": torch.randn(3)}, [], "S if S.shape["),
    "rows, S shorter": (MEAN, {"S": torch.randn(2, 2), "A": torch.randn(3)}, [], "S if S.shape["),
    "rows, empty range": (MEAN, {"S": torch.randn(0, 2), "A": torch.randn(0)}, [], "if not n_b > 0: kx.require_nonempty("),
    # a read at a literal index: the plain index where the axis has it, else the located error
    "read at 1, too short": (r"\Module{P}{h} \Return h[1] * 2 \\ \EndModule", {"h": torch.randn(1, 2)}, [], "[:, 1] if "),
    # the element of an axis of size 1 (a layer with one output, `W[2](h)[0]`): a squeeze
    "read at 0, one element": (r"\Module{P}{h} \Return h[0] * 2 \\ \EndModule", {"h": torch.randn(1)}, [],
                               ".squeeze(1) if "),
    "read at -1, one element": (r"\Module{P}{h} \Return h[-1] * 2 \\ \EndModule", {"h": torch.randn(1)}, [],
                                ".squeeze(1) if "),
    "read at 0, three elements": (r"\Module{P}{h} \Return h[0] * 2 \\ \EndModule", {"h": torch.randn(3)}, [],
                                  ".squeeze(1) if "),
    # an unused maximum is its check that the axis is not empty
    "unused max": (r"\Module{P}{z} m \gets \max(z) \\ \Return z * 2 \\ \EndModule", {"z": torch.randn(3)}, [],
                          "if 0 in "),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_inline_checks_agree_with_the_math_on_every_path(name):
    source, inputs, params, fast = CASES[name]
    codes = differential.batched_code(source, inputs, params, "inline.kyi", seed=7, errors=True)
    assert codes and all(fast in code for code in codes), codes


def test_the_located_errors_stay():
    kokoyi.compile(MEAN, filename="inline.kyi")
    host = Host(None, kokoyi.symbol["P"])
    S, A = torch.randn(5, 4, 2), torch.randn(5, 4)
    assert torch.allclose(host(S, A, batch_level=[1, 1]), (S * A.unsqueeze(2)).mean(1))
    assert torch.allclose(host(S, A[:, :3], batch_level=[1, 1]), (S[:, :3] * A[:, :3].unsqueeze(2)).mean(1))
    with pytest.raises(kokoyi.KokoyiRuntimeError, match=r"inline.kyi:1:\d+: index 2 is out of range for `S`"):
        host(S[:, :2], A, batch_level=[1, 1])
    with pytest.raises(kokoyi.KokoyiRuntimeError, match="over an empty range"):
        host(S[:, :0], A[:, :0], batch_level=[1, 1])


def _printed(s: K.Assign) -> str:
    """The statement as printed (after the local holding x's shape, when it reads it twice)."""
    lines = torch_eager.emit(K.Kernel("f", ("x", "n"), [s, K.Return((K.Ref("x"),))]))[0].splitlines()
    if lines[1].strip() == "_shape_x = x.shape":
        return lines[2].strip()
    return lines[1].strip()


def test_only_the_forms_whose_common_case_is_plain_are_inlined():
    x, n = K.Ref("x"), K.Ref("n")
    whole = K.Assign("w", "windows", (x, 1, (("var", 0, n), ("var", 0, 4)), None, "f:1:1", "x", ()))
    assert _printed(whole).startswith("w = x if _shape_x[1] == n and _shape_x[2] == 4 else kx.window_views(x, 1,")
    for specs, perm in [((("var", 1, n),), None), ((("var", 0, n),), (1, 0)), ((("at", 0),), None),
                        ((("windows", 2, 0, 0, n, 0, 2),), None)]:  # a part, permuted, an entry, windows
        assert _printed(K.Assign("w", "windows", (x, 0, specs, perm, "f:1:1", "x", ()))).startswith("w = kx.window_views(")
    assert _printed(K.Assign("r", "read_static", (x, 2, (0, -1), "f:1:1", "x", ()))) == (
        "r = x[:, :, 0, -1] if _shape_x[2] > 0 and _shape_x[3] >= 1 else kx.read_static(x, 2, (0, -1), 'f:1:1', 'x', ())")
    assert _printed(K.Assign("r", "read_static", (x, 0, (n,), "f:1:1", "x", ()))).startswith("r = kx.read_static(")
    assert _printed(K.Assign(None, "check_static", (x, 1, (0, 2), "f:1:1", "x", ()))) == (
        "if not _shape_x[1] > 0 or not _shape_x[2] > 2: kx.check_static(x, 1, (0, 2), 'f:1:1', 'x', ())")
    assert _printed(K.Assign(None, "require_nonempty", (n, None, 0, 0, "f:1:1", "max", ()))).startswith(
        "if not n > 0: kx.require_nonempty(n, None,")
    g = K.Ref("g")  # under guards (or with a mask) the helper decides where the range is evaluated
    assert _printed(K.Assign(None, "require_nonempty", (n, None, 0, 0, "f:1:1", "max", (g,)))).startswith("kx.require_nonempty(")
    assert _printed(K.Assign(None, "require_nonempty", (n, g, 0, 0, "f:1:1", "max", ()))).startswith("kx.require_nonempty(")
    assert _printed(K.Assign(None, "nonempty_last", (x,))) == "if 0 in x.shape: kx.nonempty_last(x)"
    assert _printed(K.Assign("s", "reduce_axis", (x, 1, None, 0, None), {"op": "max"})) == (
        "s = x.amax(1) if x.shape[1] else kx.reduce_axis('max', x, 1, None, 0, None)")
    assert _printed(K.Assign("s", "reduce_axis", (x, 1, g, 0, None), {"op": "sum"})).startswith("s = kx.reduce_axis(")
    assert _printed(K.Assign("s", "reduce_axis", (x, 1, None, 0, None), {"op": "argmax"})).startswith("s = kx.reduce_axis(")
    assert _printed(K.Assign("y", "to", (x,), {"dtype": "torch.float64"})) == (
        "y = x if x.dtype is torch.float64 else x.to(torch.float64)")


def test_an_unused_maximum_over_an_empty_axis_is_still_an_error():
    kokoyi.compile(CASES["unused max"][0], filename="inline.kyi")
    host = Host(None, kokoyi.symbol["P"])
    assert torch.equal(host(torch.ones(2, 3), batch_level=[1]), torch.full((2, 3), 2.0))
    with pytest.raises(kokoyi.KokoyiRuntimeError, match="inline.kyi:1"):
        host(torch.ones(2, 0), batch_level=[1])


def test_a_shape_read_twice_is_read_once_into_a_local_unless_its_name_is_bound_again():
    x, n = K.Ref("x"), K.Ref("n")
    size = K.Assign("m", "size", (x, 0))
    whole = K.Assign("w", "windows", (x, 0, (("var", 0, K.Ref("m")),), None, "f:1:1", "x", ()))
    code = torch_eager.emit(K.Kernel("f", ("x", "n"), [size, whole, K.Return((K.Ref("w"),))]))[0]
    assert code.splitlines()[1:4] == ["    _shape_x = x.shape", "    m = _shape_x[0]",
                                      "    w = x if _shape_x[0] == m else kx.window_views(x, 0, (('var', 0, m),), None, 'f:1:1', 'x', ())"]
    # x bound again (a loop's value): every read is its own `.shape`
    again = K.Assign("x", "add", (x, n))
    code = torch_eager.emit(K.Kernel("f", ("x", "n"), [size, again, whole, K.Return((K.Ref("w"),))]))[0]
    assert "_shape_" not in code and code.count("x.shape[0]") == 2
    # a local bound inside a branch is not read after it
    branch = K.If(n, [size], [])
    code = torch_eager.emit(K.Kernel("f", ("x", "n"), [branch, whole, K.Return((K.Ref("w"),))]))[0]
    assert code.count("_shape_x = x.shape") == 2, code


def test_a_number_divided_by_a_literal_and_floored_is_plain_python():
    n, s = K.Ref("n"), K.Ref("s")
    assert _printed(K.Assign("s", "div", (n, 2), {"py": True})) == "s = n / 2"
    assert _printed(K.Assign("s", "div", (n, 0), {"py": True})) == "s = kx.true_divide(n, 0)"
    assert _printed(K.Assign("f", "floor", (s,), {"py": True})) == (
        "f = math.floor(s) if math.isfinite(s) else kx.floor_number(s)")
    namespace = {"math": math, "kx": kernels}
    for value in (7, 7.5, -7.5, math.inf, -math.inf, math.nan):
        exec(torch_eager.emit(K.Kernel("f", ("s",), [K.Assign("f", "floor", (s,), {"py": True}),
                                                     K.Return((K.Ref("f"),))]))[0], namespace)
        assert namespace["f"](value) == kernels.floor_number(value)
