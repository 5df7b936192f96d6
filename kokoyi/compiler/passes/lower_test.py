"""Lowering to the core IR: every construct, every example and conformance source verifies."""
from __future__ import annotations

import pathlib

import pytest

from kokoyi.compiler import ir
from kokoyi.compiler.passes.lower import lower
from kokoyi.compiler.pipeline import compile_unit

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = sorted(ROOT.glob("examples/*/*.kyi"))


def lowered(text: str) -> list[ir.Function]:
    return lower(compile_unit(text, "l.kyi", stop_after="ranks").ast)


def body(text: str) -> str:
    """The dump of the last item's body, without its header line."""
    return ir.dump(lowered(text)[-1]).split("\n", 1)[1]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_lowers_to_well_formed_ir(path):
    for f in lowered(path.read_text()):
        ir.verify(f)


@pytest.mark.parametrize("expr, want", [
    (r"\frac{x}{2} + 2x", "add(div(x, 2), mul(2, x))"),
    (r"(x)", "x"),
    (r"a \cdot x", "cdot(a, x)"),
    (r"\sqrt[3]{x} + \sqrt{x}", "add(root(x, 3), sqrt(x))"),
    (r"|x| + \|x\|_1 + \|x\|", "add(add(bars(x), norm[1](x)), norm[2](x))"),
    (r"\mathbb{1}[x > 0]", "indicator(gt(x, 0))"),
    (r"\lfloor x \rfloor", "floor(x)"),
    (r"\max(x, a) + \max(x)", "add(maximum(x, a), reduce_max(x))"),
    (r"\exp x + \Softmax(x)", "add(exp(x), softmax(x))"),
    (r"x[1:, 0] + x[:a]", "add(x[1:, 0], x[:a])"),
    (r"x_a", "x[a]"),
    (r"\pi", "3.141592653589793"),
    (r"\lnot (x > 0) \land -x < a", "and(not(gt(x, 0)), lt(neg(x), a))"),
    (r"\sum_{i=0}^{|x|-1} x[i]", "sum[i in 0..sub(bars(x), 1)](x[i])"),
    (r"\{ x[j] \}_{i=0, j=i}^{2, 3}", "build[i in 0..2, j in i..3](x[j])"),
    (r"\begin{cases} 1 & x > 0 \\ 2 & x < 0 \end{cases}", "select(gt(x, 0) -> 1; lt(x, 0) -> 2)"),
    (r"\begin{cases} 1 & x > 0 \\ 2 & \text{otherwise} \end{cases}", "select(gt(x, 0) -> 1; else -> 2)"),
])
def test_expressions_lose_their_sugar(expr, want):
    assert body(f"\\Module{{M}}{{x, a}} \\Return {expr} \\\\ \\EndModule") == f"  return {want}"


def test_statements_where_functions_and_dimensions_are_lets():
    text = r"""
\Module{M}{x \in \mathbb{R}^{T \times d}; W}
  f(v) \gets v + m \where m \gets 1 \\
  h \gets W(x) \\
  \Return f(h), T \where s \gets d \\
\EndModule"""
    assert body(text) == ("  T = dim[0](x)\n  d = dim[1](x)\n  f = (\\v -> (let m = 1 in add(v, m)))\n"
                          "  h = W(x)\n  s = d\n  return (f(h), T)")


def test_a_recurrence_is_a_loop_over_a_sequence_axis_and_globals_are_late_bound():
    text = r"""
g(v) \gets 2 v \\
\Module{M}{x}
  h \gets \{ \begin{cases} x[0] & t = 0 \\ g(h[t-1]) + x[t] & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule"""
    (f,) = lowered(text)[1:]
    ir.verify(f)
    let = f.body
    assert isinstance(let.value, ir.Recur) and let.value.axis.kind == "sequence"
    assert ir.dump(let.value) == ("recur h[t in 0..sub(bars(x), 1)](select(eq(t, 0) -> x[0]; "
                                  "else -> add(@g(h[sub(t, 1)]), x[t])))")


def test_the_verifier_rejects_unbound_names_and_escaped_indices():
    axis = ir.Axis("i", ir.Lit(0), ir.Lit(3))
    with pytest.raises(ir.IRError, match="unbound name 'y'"):
        ir.verify(ir.Function("M", "module", ("x",), (), ir.Var("y")))
    with pytest.raises(ir.IRError, match="outside its range"):
        ir.verify(ir.Function("M", "module", ("x",), (), ir.Prim("add", (ir.Iota(axis), ir.Var("x")))))
    with pytest.raises(ir.IRError, match="introduced twice"):
        ir.verify(ir.Function("M", "module", (), (), ir.Build((axis,), ir.Reduce("sum", axis, ir.Iota(axis)))))
    ir.verify(ir.Function("M", "module", (), (), ir.Build((axis,), ir.Iota(axis))))


def test_ir_nodes_compare_by_structure_not_by_span():
    a = lowered(r"\Module{M}{x} \Return x + 1 \\ \EndModule")[0].body
    b = lowered("\\Module{M}{x}\n  \\Return   x+1 \\\\\n\\EndModule")[0].body
    assert a == b and a.span != b.span


def _conformance_sources():
    import importlib.util

    for path in sorted((ROOT.parent / "shared" / "conformance" / "cases").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"lower_case_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        if not hasattr(mod, "ERROR"):
            yield pytest.param(mod.SOURCE, id=path.stem)


@pytest.mark.parametrize("source", list(_conformance_sources()))
def test_every_conformance_source_that_compiles_lowers_to_well_formed_ir(source):
    from kokoyi.errors import KokoyiError

    try:
        state = compile_unit(source, "c.kyi", stop_after="simplify")
    except KokoyiError as err:
        pytest.fail(f"the front end rejects a conformance source: {err}")
    assert state.ir
    for f in state.ir:
        ir.verify(f)


# ---- language round 2 ---------------------------------------------------------------------------
def front_end_body(text: str) -> str:
    """The dump of the last item's body after lower (the front end only: the old back end
    does not compile these constructs yet)."""
    f = lower(compile_unit(text, "l.kyi", stop_after="ranks").ast)[-1]
    ir.verify(f)
    return ir.dump(f).split("\n", 1)[1]


@pytest.mark.parametrize("sig, expr, want", [
    ("x", r"\log_2 x + \log_{10}(x) + \log_{a}(x)", "add(add(log_base(x, 2), log_base(x, 10)), log_base(x, a))"),
    ("x", r"\begin{bmatrix} x & 1 \\ 2 & x \end{bmatrix}", "matrix[2][2](x, 1, 2, x)"),
    ("x", r"\begin{pmatrix} x \\ a \end{pmatrix}", "matrix[2][1](x, a)"),
    (r"x \in \mathbb{R}^{d \times d}", r"x^{-1} + \det(x) + \Tr x", "add(add(inverse(x), det(x)), trace(x))"),
    (r"x \in \mathbb{R}^{d}", r"x^{-1} + \operatorname{diag}(\operatorname{diag}(x))", "add(pow(x, neg(1)), diag(diag(x)))"),
    ("x", r"x^{-1}", "inverse_if_matrix(x)"),
    (r"x \in \mathbb{R}^{d}", r"\mathbf{I}_{d}", "eye(d)"),
])
def test_round_two_constructs_lower_to_primitives(sig, expr, want):
    got = front_end_body(f"\\Module{{M}}{{{sig}, a}} \\Return {expr} \\\\ \\EndModule")
    assert got.endswith(f"  return {want}")


def test_a_where_binding_that_uses_the_index_is_sunk_into_the_rows_that_read_it():
    text = r"""\Module{M}{x}
  h \gets \{ \begin{cases} x[0] & t = 0 \\ h[t-1] + z_t & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1}
      \where s \gets 2, z_t \gets x[t-1] * s \\
  \Return h \\
\EndModule"""
    # (every binding the bounds do not need goes with the rows that read it: s too)
    assert front_end_body(text) == (
        "  h = recur h[t in 0..sub(bars(x), 1)](select(eq(t, 0) -> x[0]; "
        "else -> (let s = 2 in (let z_t = mul(x[sub(t, 1)], s) in add(h[sub(t, 1)], z_t)))))\n  return h")


def test_a_plain_set_builder_with_an_index_based_where_builds_with_the_let_inside():
    text = r"\Module{M}{x} g \gets \{ y_i * 2 \}_{i=0}^{|x|-1} \where y_i \gets x[i] \\ \Return g \\ \EndModule"
    assert front_end_body(text) == "  g = build[i in 0..sub(bars(x), 1)]((let y_i = x[i] in mul(y_i, 2)))\n  return g"


def test_the_lstm_is_one_recurrence_group_over_the_sequence_axis():
    import importlib.util

    path = ROOT.parent / "shared" / "conformance" / "cases" / "recurrence_group_lstm.py"
    spec = importlib.util.spec_from_file_location("lower_lstm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    f = lower(compile_unit(mod.SOURCE, "lstm.kyi", stop_after="ranks").ast)[0]
    ir.verify(f)
    group = f.body.body.body
    assert isinstance(group, ir.RecurGroup) and group.names == ("c", "h") and group.axis.kind == "sequence"
    assert ir.dump(group.body) == "(h, c)"
    # z_t, f_t and i_t read h[t-1]: computed in the `otherwise` row only
    c_row = group.elements[0]
    assert ir.dump(c_row.rows[0][1]) == "c_0" and isinstance(c_row.otherwise, ir.Let)


def test_the_verifier_checks_recurrence_groups():
    axis = ir.Axis("t", ir.Lit(0), ir.Lit(3), "sequence")
    read = ir.Take(ir.Var("b"), (ir.Iota(axis),))
    ok = ir.RecurGroup(("a", "b"), axis, (read, ir.Lit(1.0)), ir.Var("a"))
    ir.verify(ir.Function("M", "module", (), (), ok))
    with pytest.raises(ir.IRError, match="one element per distinct name"):
        ir.verify(ir.Function("M", "module", (), (), ir.RecurGroup(("a", "a"), axis, (read, read), ir.Var("a"))))
    with pytest.raises(ir.IRError, match="outside its range"):
        ir.verify(ir.Function("M", "module", (), (), ir.RecurGroup(("a",), axis, (ir.Lit(1),), ir.Iota(axis))))
    assert ir.dump(ok) == "(let a, b = recur group[t in 0..3](a: b[t]; b: 1.0) in a)"
