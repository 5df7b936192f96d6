"""inline: calls replaced by bodies, names kept apart, lets of names substituted."""
from __future__ import annotations

import re

from kokoyi.compiler import ir
from kokoyi.compiler.pipeline import compile_unit


def inlined(text: str) -> list[ir.Function]:
    state = compile_unit(text, "i.kyi", stop_after="inline")
    for f in state.ir:
        ir.verify(f)
    return state.ir


def test_a_local_function_is_inlined_at_its_call_and_its_let_goes():
    (f,) = inlined(r"\Module{M}{x} sq(u) \gets u * u \\ \Return sq(x) + 1 \\ \EndModule")
    assert ir.dump(f.body) == "add(mul(x, x), 1)"


def test_a_builtin_alias_becomes_the_primitive():
    (f,) = inlined(r"\Module{M}{x} \mu \gets \Mean \\ \Return \mu(x) \\ \EndModule")
    assert ir.dump(f.body) == "mean(x)"


def test_the_inlined_body_s_own_names_are_renamed_apart():
    # f's \where binding v would capture the caller's v if it were not renamed
    (f,) = inlined(r"""\Module{M}{x}
  v \gets x + 1 \\
  f(u) \gets v * u \where v \gets u + 2 \\
  \Return f(v) \\
\EndModule""")
    # f(v) = (v + 2) * v with the caller's v; f's own v is renamed apart (v_1__N)
    assert re.fullmatch(r"module M\(x\):\n  v = add\(x, 1\)\n  (v_1__\d+) = add\(v, 2\)\n  return mul\(\1, v\)",
                        ir.dump(f)), ir.dump(f)


def test_other_lets_stay_so_generated_code_keeps_the_source_names():
    (f,) = inlined(r"\Module{M}{x} a \gets x + 1 \\ b \gets a * 2 \\ \Return b \\ \EndModule")
    assert ir.dump(f) == "module M(x):\n  a = add(x, 1)\n  b = mul(a, 2)\n  return b"


def test_top_level_functions_are_inlined_by_the_call_time_lookup():
    from kokoyi.compiler.passes.inline import inline

    state = compile_unit(r"""sq(u) \gets u * u \\
\Module{M}{x} \Return sq(x) \\ \EndModule""", "t.kyi", stop_after="inline")
    sq, m = state.ir
    assert isinstance(m.body, ir.Apply)  # compile time: sq is late bound
    called = inline(m, {sq.name: sq}.get)
    ir.verify(called)
    assert ir.dump(called.body) == "mul(x, x)"


def test_recursion_through_top_level_functions_stops():
    from kokoyi.compiler.passes.inline import inline

    f = ir.Function("f", "function", ("u",), (), ir.Apply(ir.Global("f"), (ir.Var("u"),)))
    out = inline(f, {"f": f}.get)  # one level inlined (its parameter let substituted), then the call stays
    assert ir.dump(out.body) == "@f(u)"


def _one_let_at_a_time(e):
    """What inline does to lets of names and numbers, one substitution per let (the reference
    for the runs of them that inline substitutes at once)."""
    from kokoyi.compiler.passes.inline import substitute

    if isinstance(e, ir.Let):
        value, body = _one_let_at_a_time(e.value), _one_let_at_a_time(e.body)
        if isinstance(value, (ir.Var, ir.Lit)):
            return substitute(body, {e.name: value})
        return ir.Let(e.name, value, body)
    return ir.map_children(e, _one_let_at_a_time)


def test_a_run_of_lets_of_names_is_substituted_as_one_let_at_a_time():
    from kokoyi.compiler.passes.inline import inline

    x, y, a, b, c = (ir.Var(n) for n in "xyabc")
    cases = [
        ir.Let("a", x, ir.Let("b", y, ir.Prim("add", (a, b)))),
        ir.Let("a", x, ir.Let("b", a, ir.Prim("add", (a, b)))),  # a value reads a name of the run
        ir.Let("a", x, ir.Let("a", y, a)),  # the same name bound again in the run
        ir.Let("a", x, ir.Let("c", ir.Prim("neg", (a,)), ir.Let("b", c, ir.Prim("mul", (a, b))))),
        ir.Let("a", ir.Lit(2), ir.Let("b", x, ir.Lambda(("a",), ir.Prim("add", (a, b))))),  # a shadowed
        ir.Let("a", y, ir.Let("b", x, ir.Let("a", ir.Prim("neg", (b,)), ir.Prim("add", (a, b))))),
    ]
    for body in cases:
        f = ir.Function("M", "module", ("x", "y"), (), body)
        assert ir.dump(inline(f).body) == ir.dump(_one_let_at_a_time(body)), ir.dump(body)
