"""rewrite: each recognised form matches canonical IR (any spelling, through lets and
functions) and nothing else; the batch rules and runtime values are checked in
tests/test_specialize.py and tests/test_seed.py."""
from __future__ import annotations

import pytest

from kokoyi.compiler import ir
from kokoyi.compiler.pipeline import at_call, compile_unit


def rewritten(text: str) -> str:
    state = compile_unit(text, "r.kyi", stop_after="rewrite")
    functions = {f.name: f for f in state.ir}
    out = [at_call(f, functions.get) for f in state.ir]
    for f in out:
        ir.verify(f)
    return ir.dump(out[-1])


SEED_RETURNS = r"\Module{G}{r; \gamma} \Return \{ \sum_{i=0}^{|r|-1-t} BODY \}_{t=0}^{|r|-1} \\ \EndModule"


@pytest.mark.parametrize("body", [r"\gamma^i * r[t+i]", r"\gamma^i * (r[t+i] * 1)", r"r[t+i] * \gamma^{i}",
                                  r"1 * \gamma^{i} * r[t + i + 0]"])
def test_discounted_returns_in_any_spelling_are_one_scan(body):
    assert "discounted_window!(gamma, r, 0, sub(bars(r), 1), bars(r), -1)" in rewritten(SEED_RETURNS.replace("BODY", body))


@pytest.mark.parametrize("body", [r"\gamma^{i+1} * r[t+i]", r"\gamma^i * r[i]", r"\gamma^t * r[t+i]"])
def test_other_sums_are_not_scans(body):
    assert "discounted_window" not in rewritten(SEED_RETURNS.replace("BODY", body))


STD = r"\sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] - \Mean(v))^2}}{|v|}}"


@pytest.mark.parametrize("source, form", [
    (rf"\Module{{M}}{{v}} \Return {STD} \\ \EndModule", "population_std!(v)"),
    # through a let and a local function with a \where, as the seed writes it
    (r"""\Module{M}{x} \mu \gets \Mean \\
\sigma(v) \gets \sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] -\bar{v})**2}}{|v|}} \where \bar{v} \gets \mu(v) \\
\Return \frac{x - \mu(x)}{\sigma(x)} \\ \EndModule""", "standardize!(x)"),
    # a top-level function, inlined at the call
    (r"""s(v) \gets \sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] - m)^2}}{|v|}} \where m \gets \Mean(v) \\
\Module{Z}{x} \Return (x - \Mean(x)) / s(x) \\ \EndModule""", "standardize!(x)"),
    (r"\Module{M}{h} \Return \frac{h - \Mean(h)}{\sqrt{\Var(h) + 10^{-5}}} \\ \EndModule", "layer_norm!(h, 1e-05)"),
    (r"\Module{M}{h} \Return \frac{h - \Mean(h)}{\Std(h)} \\ \EndModule", "standardize!(h)"),
    (r"\Module{M}{h} \Return \max(0.01 * h, h) \\ \EndModule", "leaky_max!(h, 0.01)"),
])
def test_recognised_forms(source, form):
    assert form in rewritten(source)


@pytest.mark.parametrize("source", [
    # the sample std divides by |v| - 1
    r"\Module{M}{v} \Return \sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] - \Mean(v))^2}}{|v| - 1}} \\ \EndModule",
    # centred on another vector's mean
    r"\Module{M}{x, y} \Return \frac{x - \Mean(y)}{\Std(x)} \\ \EndModule",
    # a leaky max needs the same value on both sides
    r"\Module{M}{h, g} \Return \max(0.01 * g, h) \\ \EndModule",
])
def test_near_misses_are_left_alone(source):
    assert "!(" not in rewritten(source)


def test_each_node_tried_against_the_rules_of_its_root_is_each_node_tried_against_all(monkeypatch):
    """rewrite_expr tries a node against the rules whose ROOTS admit it (rewrite.candidates):
    every example, before and after its functions are inlined, rewrites as with every rule tried."""
    from pathlib import Path

    from kokoyi.compiler import rewrite as R
    from kokoyi.compiler.passes.simplify import simplify

    examples = sorted((Path(__file__).resolve().parents[3] / "examples").rglob("*.kyi"))
    assert len(examples) >= 7
    inputs = []
    for path in examples:
        state = compile_unit(path.read_text(), str(path), stop_after="rewrite")
        functions = {f.name: f for f in state.ir if f is not None}
        inputs += [simplify(at_call(f, functions.get)) for f in functions.values()]
        inputs += [simplify(f) for f in compile_unit(path.read_text(), str(path), stop_after="inline").ir if f is not None]
    by_root = [ir.dump(R.rewrite(f)) for f in inputs]
    monkeypatch.setattr(R, "_CANDIDATES", {})
    monkeypatch.setattr(R, "candidates", lambda kind: R.REWRITES)
    every_rule = [ir.dump(R.rewrite(f)) for f in inputs]
    assert by_root == every_rule
    assert sum(d.count("!(") for d in every_rule) >= 10  # (recognised forms are among them)


def test_a_let_binds_its_name_for_its_body_alone():
    """rewrite_expr binds a let's name in env for the body (in place, restored after): the
    caller's env is as it was, a shadowed name gets its outer value back, and an unchanged let
    is the same object."""
    from kokoyi.compiler import rewrite as R

    x, y = ir.Var("x"), ir.Var("y")
    inner = ir.Let("x", ir.Prim("neg", (y,)), ir.Prim("add", (x, y)))
    e = ir.Let("y", ir.Lit(2), inner)
    env = {"x": ir.Lit(1)}
    seen = []
    real = R.rewrite_expr

    def spy(node, env_):
        seen.append((ir.dump(node), dict(env_)))
        return real(node, env_)

    import unittest.mock

    with unittest.mock.patch.object(R, "rewrite_expr", spy):
        out = R.rewrite_expr(e, env)
    assert env == {"x": ir.Lit(1)}
    assert out is e
    envs = {dump: got for dump, got in seen}
    assert envs[ir.dump(inner.body)] == {"x": inner.value, "y": ir.Lit(2)}  # the inner x shadows the outer one
    assert envs[ir.dump(inner.value)] == {"x": ir.Lit(1), "y": ir.Lit(2)}
