"""Specialised (vectorised, batch-aware) code against the one-sample code.

The module called on one sample at a time (its kernel at batch level 0) and stacked is the
reference (the oracle the contract defines batching by). The batched kernels must agree with
it, on every conformance case and on generated programs, without a loop over the batch.
"""
from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from conftest import CONFORMANCE, conformance_runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kokoyi
from kokoyi.runtime.specialize import KokoyiBatchLoop
from kokoyi.test_utils import Host as TestHost

runner = conformance_runner() if CONFORMANCE.exists() else None
NUMERIC = [p for p in (runner.discover() if runner else []) if not any(hasattr(runner.load_case(p), k) for k in ("ERROR", "VALUES", "RUNTIME_ERROR"))]


class Host(TestHost):
    """kokoyi.test_utils.Host, called as Host(forward, params)."""

    def __init__(self, forward, params):
        super().__init__(params, forward)


def _flat(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def per_sample_reference(forward, params, args, levels):
    """Stack one-sample calls (the module's kernel at batch level 0)."""
    per_sample = Host(forward, params)
    bshape = next((tuple(a.shape[:k]) for a, k in zip(args, levels) if k), ())
    outs = []
    for idx in itertools.product(*map(range, bshape)):
        sample = [a[idx] if k else a for a, k in zip(args, levels)]
        outs.append(_flat(per_sample(*sample)))
    if not bshape:
        return [torch.as_tensor(o) for o in outs[0]]
    return [torch.stack([torch.as_tensor(o[i]) for o in outs]).reshape(bshape + torch.as_tensor(outs[0][i]).shape)
            for i in range(len(outs[0]))]


def assert_close(a, b):
    for x, y in zip(_flat(a), _flat(b)):
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        assert x.shape == y.shape, (x.shape, y.shape)
        assert torch.allclose(x.double(), y.double(), rtol=1e-5, atol=1e-6, equal_nan=True), (x, y)


@pytest.mark.parametrize("path", NUMERIC, ids=lambda p: p.stem)
def test_specialised_agrees_with_one_sample_calls(path):
    case = runner.load_case(path)
    kokoyi.compile(case.SOURCE, filename=path.name)
    forward = kokoyi.symbol[case.MODULE]
    params = case.params(None) if hasattr(case, "params") else ()
    host = Host(forward, params)
    n = len(case.inputs(torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(7)
    for levels in ([0] * n, [1] * n, [2] * n):
        bshape = {0: (), 1: (3,), 2: (2, 2)}[levels[0]]
        samples = [case.inputs(g) for _ in range(max(1, len(list(itertools.product(*map(range, bshape))))))]
        args = [torch.stack([s[j] for s in samples]).reshape(bshape + tuple(samples[0][j].shape)) if levels[j]
                else samples[0][j] for j in range(n)]
        with warnings.catch_warnings():
            warnings.simplefilter("error", KokoyiBatchLoop)
            got = host(*args, batch_level=levels)
        want = per_sample_reference(forward, params, args, levels)
        assert_close(got, want)


def test_seed_specialised_code_has_no_python_loop():
    case = runner.load_case(CONFORMANCE / "cases" / "seed_pgloss.py")
    kokoyi.compile(case.SOURCE + runner.load_case(CONFORMANCE / "cases" / "seed_policy.py").SOURCE, "policy.kyi")
    loss = Host(kokoyi.symbol["PGLoss"], 0.99)
    loss(torch.randn(7), torch.rand(7))
    loss(torch.randn(2, 7), torch.rand(2, 7), batch_level=[1, 1])
    pi = Host(kokoyi.symbol[r"\pi"], torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)]))
    pi(torch.randn(4))
    pi(torch.randn(5, 4), batch_level=[1])
    codes = [entry[2] for fwd in (kokoyi.symbol["PGLoss"], kokoyi.symbol["pi"])
             for entry in fwd.__kokoyi_specializations__.cache.values()]
    assert len(codes) == 4
    for code in codes:
        assert " for " not in code and "while " not in code, code
    assert any("discounted_window" in c for c in codes)


STANDARDIZE_SOURCES = {
    # the seed's spelling: a local alias of \Mean and a one-line std function with \where
    "seed": r"""
\Module{Z}{x}
\mu \gets \Mean \\
\sigma(v) \gets \sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] -\bar{v})**2}}{|v|}} \where \bar{v} \gets \mu(v) \\
\Return \frac{x - \mu(x)}{\sigma(x)} \\
\EndModule
""",
    # a top-level std function, \Mean called directly, a slash instead of \frac
    "top-level": r"""
s(v) \gets \sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] - m)^2}}{|v|}} \where m \gets \Mean(v) \\
\Module{Z}{x}
\Return (x - \Mean(x)) / s(x) \\
\EndModule
""",
    # the std written out in place
    "inline": r"""
\Module{Z}{x}
m \gets \Mean(x) \\
\Return \frac{x - m}{\sqrt{\frac{\sum_{i=0}^{|x|-1}{(x[i] - m)^2}}{|x|}}} \\
\EndModule
""",
}
NOT_STANDARDIZE_SOURCES = {
    # the sample standard deviation (|x| - 1): not the population one
    "sample std": r"""
\Module{Z}{x}
m \gets \Mean(x) \\
\Return \frac{x - m}{\sqrt{\frac{\sum_{i=0}^{|x|-1}{(x[i] - m)^2}}{|x| - 1}}} \\
\EndModule
""",
    # centred on another vector's mean
    "other mean": r"""
\Module{Z}{x, y}
m \gets \Mean(y) \\
\Return \frac{x - m}{\sqrt{\frac{\sum_{i=0}^{|x|-1}{(x[i] - \Mean(x))^2}}{|x|}}} \\
\EndModule
""",
}


@pytest.mark.parametrize("name", sorted(STANDARDIZE_SOURCES) + sorted(NOT_STANDARDIZE_SOURCES))
def test_standardising_by_the_population_std_is_one_std_mean(name):
    source = {**STANDARDIZE_SOURCES, **NOT_STANDARDIZE_SOURCES}[name]
    kokoyi.compile(source, "z.kyi")
    forward = kokoyi.symbol["Z"]
    host = Host(forward, None)
    g = torch.Generator().manual_seed(7)
    n_inputs = len(forward.__kokoyi_spec__.inputs)
    for levels in ([0] * n_inputs, [1] * n_inputs):
        args = [torch.randn(*([3] if levels[0] else []), 9, generator=g) for _ in range(n_inputs)]
        assert_close(host(*args, batch_level=levels), per_sample_reference(forward, None, args, levels))
    codes = [entry[2] for entry in forward.__kokoyi_specializations__.cache.values()]
    assert len(codes) == 2
    for code in codes:
        assert ("kk.standardize(x)" in code) == (name in STANDARDIZE_SOURCES), code


def test_linear_layers_are_called_without_module_overhead_but_hooks_still_run():
    kokoyi.compile(r"""
\Module{\pi}{s; Linears}
\Return \Softmax(Linears[1](\ReLU(Linears[0](s)))) \\
\EndModule
""", "pi.kyi")
    layers = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)])
    pi = Host(kokoyi.symbol[r"\pi"], layers)
    s = torch.randn(4)
    want = torch.softmax(layers[1](torch.relu(layers[0](s))), -1)
    assert torch.allclose(pi(s), want)
    (code,) = [e[2] for e in kokoyi.symbol[r"\pi"].__kokoyi_specializations__.cache.values()]
    assert code.count("kk.linear_layer(") == 2, code
    calls = []
    handle = layers[0].register_forward_hook(lambda m, inp, out: calls.append(1))
    try:
        pi(s)
        pi(torch.randn(3, 4), batch_level=[1])
    finally:
        handle.remove()
    assert calls == [1, 1]


def test_recurrence_is_one_loop_batched_over_the_rest():
    case = runner.load_case(CONFORMANCE / "cases" / "recurrence_rnn.py")
    kokoyi.compile(case.SOURCE, "rnn.kyi")
    rnn = Host(kokoyi.symbol["RNN"], case.params(None))
    rnn(torch.randn(4, 6, 3), batch_level=[1])
    (code,) = [e[2] for e in kokoyi.symbol["RNN"].__kokoyi_specializations__.cache.values()]
    assert code.count(" for ") == 1


def test_long_discounted_sum_is_exact_and_finite():
    case = runner.load_case(CONFORMANCE / "cases" / "seed_pgloss.py")
    kokoyi.compile(case.SOURCE, "policy.kyi")
    T = 20000
    r = torch.rand(T, generator=torch.Generator().manual_seed(0))
    logp = torch.ones(T)
    got = Host(kokoyi.symbol["PGLoss"], 0.99)(logp, r)
    G = torch.zeros(T, dtype=torch.float64)
    running = 0.0
    r64 = r.double()
    for t in range(T - 1, -1, -1):
        running = float(r64[t]) + 0.99 * running
        G[t] = running
    want = -(G - G.mean()) / G.std(unbiased=False)
    assert torch.isfinite(got).all()
    assert (got.double() - want).abs().max() < 1e-3


def test_an_opaque_callable_is_called_per_element():
    kokoyi.compile(r"""
\Module{M}{x; f}
  \Return f(x) * 2 \\
\EndModule
""", "m.kyi")

    class Opaque(torch.nn.Module):
        def forward(self, x):
            return x.sum() + x

    host = Host(kokoyi.symbol["M"], Opaque())
    x = torch.randn(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        got = host(x, batch_level=[1])
    assert torch.allclose(got, torch.stack([(xi.sum() + xi) * 2 for xi in x]))
    assert torch.allclose(host(x[0]), got[0])
    # a callable that changes the rank (learnt from its first call), as a plain Python function
    norms = Host(kokoyi.symbol["M"], lambda v: v.norm())
    assert torch.allclose(norms(x, batch_level=[1]), 2 * x.norm(dim=1))
    assert torch.allclose(norms(x[1]), 2 * x[1].norm())


# ---- generated programs ---------------------------------------------------------------------
# Per-sample: x, y are vectors of one length n, s is a scalar. Expressions are built by kind.
SCALAR_LEAVES = ["s", "x[0]", "y[|y| - 1]", r"\Mean(x)", r"\max(y)", r"\frac{1}{2}", "|s|", "|x|"]
VECTOR_LEAVES = ["x", "y", r"\tanh(x)", "(x * s)"]


def _scalar(inner_vec, inner_sc):
    return st.one_of(
        st.builds(lambda a, b: f"({a} + {b})", inner_sc, inner_sc),
        st.builds(lambda a, b: f"({a} * {b})", inner_sc, inner_sc),
        st.builds(lambda v: rf"\sum_{{i=0}}^{{|x|-1}} {{({v})[i] * y[i]}}", inner_vec),
        st.builds(lambda v: rf"\max_{{i=0}}^{{|x|-1}} {{({v})[|x| - 1 - i]}}", inner_vec),
        st.builds(lambda v: rf"\mathbb{{E}}_{{i=1}}^{{|x|-1}} {{({v})[i] - ({v})[i - 1]}}", inner_vec),
        st.builds(lambda v: rf"\|{v}\|", inner_vec),
        st.builds(lambda a, b: f"({a} @ {b})", inner_vec, inner_vec),
        st.builds(lambda v: rf"\LogSumExp({v})", inner_vec),
        st.builds(lambda v: rf"x[\argmax_{{i=0}}^{{|x|-1}} ({v})[i]]", inner_vec),
        st.builds(lambda v: rf"\prod_{{i=0}}^{{1}} {{\tanh(({v})[i])}}", inner_vec),
        st.builds(lambda a: rf"\begin{{cases}} {a} & {a} > 0 \\ -{a} & \text{{otherwise}} \end{{cases}}", inner_sc),
    )


def _vector(inner_vec, inner_sc):
    return st.one_of(
        st.builds(lambda a, b: f"({a} + {b})", inner_vec, inner_vec),
        st.builds(lambda a, b: f"({a} * {b})", inner_vec, inner_sc),
        st.builds(lambda v: rf"\Softmax({v})", inner_vec),
        st.builds(lambda v: rf"\{{ \sum_{{j=0}}^{{t}} ({v})[j] \}}_{{t=0}}^{{|x|-1}}", inner_vec),
        st.builds(lambda v, c: rf"\{{ ({v})[t] * {c} \}}_{{t=0}}^{{|x|-1}}", inner_vec, inner_sc),
        st.builds(lambda v: rf"\{{ \begin{{cases}} ({v})[t] & t = 0 \\ ({v})[t] - ({v})[t - 1] & \text{{otherwise}} "
                            rf"\end{{cases}} \}}_{{t=0}}^{{|x|-1}}", inner_vec),
        st.builds(lambda v: rf"\{{ \max_{{j=t}}^{{|x|-1}} ({v})[j] \}}_{{t=0}}^{{|x|-1}}", inner_vec),
        st.builds(lambda v: rf"\{{ ({v})[t] * \mathbb{{1}}[({v})[t] > 0] \}}_{{t=0}}^{{|x|-1}}", inner_vec),
        st.builds(lambda v: rf"\{{ \sum_{{j=0}}^{{|x|-1}} ({v})[j] * \mathbb{{1}}[j \le t] \}}_{{t=0}}^{{|x|-1}}",
                  inner_vec),
        st.builds(lambda v: rf"\{{ \{{ ({v})[i] * ({v})[j] \}}_{{j=0}}^{{|x|-1}} \}}_{{i=0}}^{{|x|-1}} @ x", inner_vec),
    )


def _programs():
    leaves = st.tuples(st.sampled_from(VECTOR_LEAVES), st.sampled_from(SCALAR_LEAVES))

    def extend(children):
        vec = children.map(lambda c: c[0])
        sc = children.map(lambda c: c[1])
        return st.tuples(st.one_of(vec, _vector(vec, sc)), st.one_of(sc, _scalar(vec, sc)))

    return st.recursive(leaves, extend, max_leaves=4)


@settings(max_examples=int(__import__("os").environ.get("KOKOYI_PROGRAMS", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs(), st.sampled_from([[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]]), st.integers(2, 5))
def test_generated_programs_batch_like_stacked_samples(program, levels, n):
    vec, sc = program
    kokoyi.symbol.clear()
    kokoyi.compile(rf"""
\Module{{G}}{{x, y, s}}
  \Return {vec}, {sc} \\
\EndModule
""", "gen.kyi")
    forward = kokoyi.symbol["G"]
    host = Host(forward, ())
    g = torch.Generator().manual_seed(n)
    B = 3
    shapes = [(n,), (n,), ()]
    args = [torch.randn(((B,) if k else ()) + shp, generator=g) for k, shp in zip(levels, shapes)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        got = host(*args, batch_level=levels)
    want = per_sample_reference(forward, (), args, levels)
    assert_close(got, want)


# ---- regressions found by writing the example models ---------------------------------------------
REGRESSIONS = {
    # a function called inside a recurrence (its definition was emitted only while the
    # recurrence's layout was being worked out)
    "function in a recurrence": (r"""
f(v) \gets 2 * v \\
\Module{M}{x}
  h \gets \{ \begin{cases} x[0] & t = 0 \\ f(h[t-1]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule
""", lambda g: [torch.randn(3, 5, generator=g)]),
    # a recurrence whose base case does not depend on the batched input
    "unbatched base case": (r"""
\Module{M}{x}
  U \gets \{ \begin{cases} \{ 0 \}_{s=0}^{|x|-1} & t = 0 \\ \{ U[t-1][s] + x[s] \}_{s=0}^{|x|-1} & \text{otherwise} \end{cases} \}_{t=0}^{2} \\
  \Return U \\
\EndModule
""", lambda g: [torch.randn(3, 4, generator=g)]),
    "number base case": (r"""
\Module{M}{x}
  U \gets \{ \begin{cases} U[t-1] * 2 + x[t] & t > 0 \\ 0 & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return U \\
\EndModule
""", lambda g: [torch.randn(3, 4, generator=g)]),
    # index tensors after a slice: `h[:, 2i, 2j]` (2x2 max pooling by channel vectors)
    "indices after a slice": (r"""
\Module{M}{h}
  \Return \{ \max(h[:, 2i, 2j], h[:, 2i+1, 2j+1]) + h[2i, :, j][0] \}_{i=0, j=0}^{\lfloor |h[0]|/2 \rfloor-1, 1} \\
\EndModule
""", lambda g: [torch.randn(3, 4, 4, 4, generator=g)]),
    # bounds that are not integers: the index runs over the integers between them
    "float bounds": (r"""
\Module{M}{h}
  \Return \{ h[c, 2i] \}_{c=0, i=0}^{|h|-1, |h[0]|/2-1} + \sum_{j=1/2}^{|h|/2} h[0, j] \\
\EndModule
""", lambda g: [torch.randn(3, 4, 7, generator=g)]),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regressions_batch_like_stacked_samples(name):
    source, make_inputs = REGRESSIONS[name]
    kokoyi.compile(source, "regression.kyi")
    forward = kokoyi.symbol["M"]
    host = Host(forward, None)
    inputs = make_inputs(torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        got = host(*inputs, batch_level=[1] * len(inputs))
        one = host(*[x[0] for x in inputs])
    assert_close(got, per_sample_reference(forward, None, inputs, [1] * len(inputs)))
    assert_close(one, per_sample_reference(forward, None, [x[0] for x in inputs], [0] * len(inputs)))


def test_a_layer_called_on_a_number_gets_a_tensor():
    kokoyi.compile(r"""
bos \gets 0 \\
\Module{M}{x; E}
  \Return E(0) + E(x) + E(bos) \\
\EndModule
""", "emb.kyi")
    E = torch.nn.Embedding(5, 2)
    forward = kokoyi.symbol["M"]
    x = torch.tensor([3, 1, 4])
    want = 2 * E.weight[0] + E.weight[x]
    assert torch.allclose(Host(forward, E)(x, batch_level=[1]), want)
    assert torch.allclose(Host(forward, E)(x[0]), want[0])


def test_a_slice_with_index_bounds_is_a_loop_over_its_axis_with_the_right_values():
    """x[2i:2i+2] has no vectorised form: the set-builder is a Python loop over i inside the
    kernel, batched over the batch (no loop over samples)."""
    kokoyi.compile(r"""
\Module{M}{x}
  \Return \{ \max(x[2i:2i+2]) \}_{i=0}^{\lfloor |x|/2 \rfloor - 1} \\
\EndModule
""", "winmax.kyi")
    x = torch.tensor([[1.0, 3.0, 2.0, 0.0, 5.0, 4.0], [0.0, -1.0, 7.0, 8.0, 2.0, 2.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        got = Host(kokoyi.symbol["M"], None)(x, batch_level=[1])
    assert torch.equal(got, torch.tensor([[3.0, 2.0, 5.0], [0.0, 8.0, 2.5]]))
    assert torch.equal(Host(kokoyi.symbol["M"], None)(x[1]), got[1])
    (code,) = [entry[2] for entry in kokoyi.symbol["M"].__kokoyi_specializations__.cache.values()][:1]
    assert "for i" in code and "_B" in code


@pytest.mark.parametrize("cell_type", [torch.nn.GRUCell, torch.nn.RNNCell])
def test_recurrent_cells_run_batched_without_vmap(cell_type):
    kokoyi.compile(r"""
\Module{M}{x; E, Cell, h_0}
  h \gets \{ \begin{cases} Cell(E(x[0]), h_0) & t = 0 \\ Cell(E(x[t]), h[t-1]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule
""", "cell.kyi")
    torch.manual_seed(0)
    params = (torch.nn.Embedding(5, 3), cell_type(3, 4), torch.randn(4))
    forward = kokoyi.symbol["M"]
    x = torch.randint(0, 5, (3, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        got = Host(forward, params)(x, batch_level=[1])
    want = []
    for b in range(3):  # the recurrence by hand, with torch's own cell
        h, hs = params[2], []
        for t in range(6):
            h = params[1](params[0](x[b, t]), h)
            hs.append(h)
        want.append(torch.stack(hs))
    assert_close(got, torch.stack(want))
    assert_close(got, per_sample_reference(forward, params, [x], [1]))


def test_outputs_of_a_module_parameter_read_by_index_stay_specialised():
    kokoyi.compile(r"""
\Module{Enc}{x; E}
  h \gets \ReLU(E[0](x)) \\
  \Return E[1](h), E[2](h) \\
\EndModule
\Module{Use}{x; q}
  \mu \gets q(x)[0] \\
  e \gets q(x) \\
  \Return \mu + e[1] * e[-2] \\
\EndModule
""", "tup.kyi")
    class Enc(torch.nn.Module):  # a module whose forward is the Kokoyi symbol, as users write it
        forward = kokoyi.symbol["Enc"]

        def __init__(self):
            super().__init__()
            self.E = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 2), torch.nn.Linear(8, 2)])

        def get_parameters(self):
            return self.E

    torch.manual_seed(0)
    enc = Enc()
    use = Host(kokoyi.symbol["Use"], enc)
    x = torch.randn(3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        got = use(x, batch_level=[1])
    mu, s = enc(x, batch_level=[1])
    assert_close(got, mu + s * mu)
    assert_close(got, torch.stack([use(x[b]) for b in range(3)]))


RECOGNISED_FORMS = {
    # layer normalisation without weights: one F.layer_norm
    "kk.layer_norm(h, ": r"\Return \frac{h - \Mean(h)}{\sqrt{\Var(h) + 10^{-5}}} \\",
    "kk.layer_norm(h, 0.001)": r"\Return \frac{h - \Mean(h)}{\sqrt{0.001 + \Var(h)}} \\",
    "kk.standardize(h)": r"\Return \frac{h - \Mean(h)}{\Std(h)} \\",
    # a leaky ReLU written as a maximum
    "kk.leaky_max(h, 0.2)": r"\Return \max(h, 0.2 h) \\",
    "kk.leaky_max(h, 0.01)": r"\Return \max(0.01 * h, h) \\",
    # whole-value variance and std: one torch reduction each
    "h.var(-1, correction=0)": r"\Return \Var(h) + \Std(h) \\",
}


@pytest.mark.parametrize("expected", sorted(RECOGNISED_FORMS))
def test_recognised_forms_are_one_torch_call_and_mean_the_same(expected):
    kokoyi.compile("\\Module{M}{h}\n  " + RECOGNISED_FORMS[expected] + "\n\\EndModule\n", "forms.kyi")
    forward = kokoyi.symbol["M"]
    h = torch.randn(5, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        got = Host(forward, None)(h, batch_level=[1])
    (code,) = [entry[2] for entry in forward.__kokoyi_specializations__.cache.values()]
    assert expected in code, code
    want = per_sample_reference(forward, None, [h], [1])[0]
    assert_close(got, want)
    g1, = torch.autograd.grad(got.sum(), h)
    g2, = torch.autograd.grad(want.sum(), h)
    assert_close(g1, g2)


WINDOWS = {
    # 2x2 max pooling of a (C, H, W) map, three indices in one set-builder
    "pool": (r"\Return \{ \max_{a=0}^{1} \max_{b=0}^{1} h[c, 2i+a, 2j+b] \}_{c=0, i=0, j=0}^{|h|-1, 1, 1} \\",
             (4, 3, 4, 5)),
    # the same with the channel outside: x carries a loop axis already
    "nested pool": (r"\Return \{ \{ \max_{a=0}^{1} \max_{b=0}^{1} h_c[2i+a, 2j+b] \}_{i=0, j=0}^{1, 1} \}_{c=0}^{|h|-1} \\",
                    (4, 3, 4, 5)),
    # overlapping windows (step 1), an offset, and a window that starts before the axis
    # (Python's meaning: index -1 is the last element)
    "moving sum": (r"\Return \{ \sum_{a=0}^{2} (h[0, 1, i+a] + h[1, 0, 2i+a+1]) \}_{i=0}^{1} + \{ \max_{a=0}^{1} h[0, -1, 2i+a-1] \}_{i=0}^{1} \\",
                   (4, 2, 3, 6)),
    # indices in another order than the loops, and a loop the index does not use
    "transposed": (r"\Return \{ h[c, j, i] \}_{c=0, i=0, q=0, j=0}^{1, 2, 1, 3} \\", (4, 2, 4, 3)),
}


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_loop_indices_and_windows_are_views_not_gathers(name):
    body, shape = WINDOWS[name]
    kokoyi.compile("\\Module{M}{h}\n  " + body + "\n\\EndModule\n", "windows.kyi")
    forward = kokoyi.symbol["M"]
    h = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        got = Host(forward, None)(h, batch_level=[1])
        one = Host(forward, None)(h[0])
    # views (or, for a pooling window, one pooling op: kokoyi/compiler/rewrite/pooling.py)
    assert all("kx.window_views(" in entry[2] or "kx.pool2d(" in entry[2] for entry in forward.__kokoyi_specializations__.cache.values())
    want = per_sample_reference(forward, None, [h], [1])[0]
    assert_close(got, want)
    assert_close(one, want[0])
    g1, = torch.autograd.grad(got.sum(), h)
    g2, = torch.autograd.grad(want.sum(), h)
    assert_close(g1, g2)


def test_windows_out_of_range_is_the_located_error():
    kokoyi.compile(r"""
\Module{M}{x}
  \Return \{ \max_{a=0}^{2} x[2i+a] \}_{i=0}^{2} \\
\EndModule
""", "win.kyi")
    with pytest.raises(kokoyi.KokoyiRuntimeError, match=r"win\.kyi:3:.*index (out of range: 0\.\.6 on an axis of length 6|6 is out of range for `x` \(the axis has length 6\))"):
        Host(kokoyi.symbol["M"], None)(torch.randn(2, 6), batch_level=[1])


def test_a_parameter_that_changes_rank_in_place_gets_new_code():
    # `W.data = ...` keeps the Python object (same id) but changes its rank: the cached
    # specialisation for the old rank must not be reused.
    kokoyi.compile(r"""
\Module{M}{x; W}
  \Return \sum(W) * x \\
\EndModule
""", "rank.kyi")
    W = torch.nn.Parameter(torch.ones(3))
    host = Host(kokoyi.symbol["M"], W)
    x = torch.ones(2)
    assert torch.equal(host(x), torch.full((2,), 3.0))
    W.data = torch.ones(2, 3)
    assert torch.equal(host(x), torch.full((2,), 6.0))
    assert torch.equal(host(torch.ones(4, 2), batch_level=[1]), torch.full((4, 2), 6.0))


def test_a_module_that_cannot_be_vectorised_over_the_batch_loops_over_its_samples():
    """A vector of indices per sample (h[:, k]) has no batched form: the kernel loops over the
    samples (KokoyiBatchLoop says so), each sample the one-sample kernel's reads; data-dependent
    slice bounds are read per call."""
    kokoyi.compile(r"""
\Module{M}{h, k, a}
  \Return h[:, k] + \sum(h[a:a+2, 0]) \\
\EndModule
""", "cols.kyi")
    forward = kokoyi.symbol["M"]
    h = torch.arange(24.0).reshape(2, 3, 4)
    k = torch.tensor([[3, 0], [1, 1]])
    a = torch.tensor([0, 1])
    with pytest.warns(KokoyiBatchLoop, match="a tensor of indices"):
        got = Host(forward, None)(h, k, a, batch_level=[1, 1, 1])
    for i in range(2):
        want = h[i][:, k[i]] + h[i][int(a[i]):int(a[i]) + 2, 0].sum()
        assert torch.equal(got[i], want)
        assert torch.equal(Host(forward, None)(h[i], k[i], a[i]), want)
    with pytest.raises(kokoyi.KokoyiRuntimeError, match=r"cols\.kyi:3:11: index 7"):
        Host(forward, None)(h[0], torch.tensor([7, 0]), a[0])


def test_a_layer_converted_after_a_call_changes_the_module_s_dtype():
    """`model.double()` after a first call converts the layers' tensors in place, under the same
    layer objects: the call guard and the specialisation key (which name layers by identity)
    must see it. The module then computes in float64 (LANGUAGE.md 6a: the widest of its inputs
    and parameters), also through a nested Kokoyi module; before, the float32 kernel ran again
    and torch raised a dtype mismatch."""
    import gc
    import weakref

    kokoyi.compile(r"""\Module{Inner}{x \in \mathbb{R}^{2}; L}
  \Return L(x) + \{ 2 \}_{i=0}^{0} \\
\EndModule
\Module{Outer}{x \in \mathbb{R}^{2}; q}
  \Return q(x) * 1.5 \\
\EndModule
""", filename="convert.kyi")

    class Inner(torch.nn.Module):
        forward = kokoyi.symbol["Inner"]

        def __init__(self):
            super().__init__()
            self.L = kokoyi.nn.Linear(2, 1)

        def get_parameters(self):
            return self.L

    class Outer(torch.nn.Module):
        forward = kokoyi.symbol["Outer"]

        def __init__(self):
            super().__init__()
            self.q = Inner()

        def get_parameters(self):
            return self.q

    x = torch.tensor([1.0, -2.0])
    for model, name in ((Inner(), "Inner"), (Outer(), "Outer")):
        assert model(x).dtype == torch.float32 and model(x).dtype == torch.float32  # (the second: the guard)
        want = model(x).double()
        model.double()
        for _ in range(2):
            out = model(x)
            assert out.dtype == torch.float64, name
            torch.testing.assert_close(out, want)
        batched = model(x.expand(3, 2), batch_level=[1])
        assert batched.dtype == torch.float64 and batched.shape == (3, 1)
    # the guards and keys hold the layers' tensors weakly
    weights = weakref.ref(model.q.L.weight)
    del model, out, batched, want  # (the outputs' graphs hold the weights too)
    gc.collect()
    assert weights() is None
