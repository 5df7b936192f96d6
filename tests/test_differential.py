"""The differential fuzzer in the default run: a bounded random run with fixed seeds, and the
defects of issue 11 as regression programs, each compared with the reference interpreter on
every path (one sample, batch levels 1 and 2, mixed levels): values, dtypes, errors, gradients.

The long campaign is `python scripts/fuzz_campaign.py --differential --minutes 20`.
"""
from __future__ import annotations

import math
import os

import differential
import reference
import program_gen
import pytest
import torch

import kokoyi
from kokoyi.test_utils import Host

# Fixed seeds, so the run is the same everywhere: about a minute on one core. KOKOYI_DIFF_PROGRAMS
# changes how many (a longer local run); the open-ended campaign is scripts/fuzz_campaign.py.
BOUNDED_PROGRAMS = int(os.environ.get("KOKOYI_DIFF_PROGRAMS", "600"))
# The bounded run also checks this many programs written with the constructs of issue 13
# (recurrence groups, matrix literals, linear algebra, log bases): KOKOYI_DIFF_ROUND2 changes it.
ROUND2_PROGRAMS = int(os.environ.get("KOKOYI_DIFF_ROUND2", "300"))


def assert_agrees(source: str, inputs: dict, params=()):
    findings, stats = differential.check(differential.program(source, inputs, params))
    assert not findings, "\n\n".join(differential.reproduction(f) for f in findings)
    assert stats.compiled and not stats.invalid and stats.paths >= 3, stats


def module(body: str, decl: str) -> str:
    return f"\\Module{{P}}{{{decl}}}\n  {body}\n\\EndModule\n"


# ---- issue 11, defect by defect -------------------------------------------------------------


def test_defect_1_an_applying_row_reads_out_of_range():
    src = module(r"\Return \begin{cases} x[k] & x[0] > 0 \\ 0 & \text{otherwise} \end{cases} \\",
                 r"x, k \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.tensor([1.0, 2.0, -10.0]), "k": torch.tensor(5)})


def test_defect_1_a_setbuilder_in_an_applying_row_is_not_clamped():
    src = module(r"\Return \begin{cases} \{ x[i+1] \}_{i=0}^{|x|-1} & x[0] > 0 \\ x & \text{otherwise} \end{cases} \\",
                 "x")
    assert_agrees(src, {"x": torch.tensor([1.0, 2.0, 3.0])})


def test_defect_1_a_condition_reads_out_of_range():
    src = module(r"\Return \begin{cases} 1.5 & x[k] > 0 \\ 0 & \text{otherwise} \end{cases} \\",
                 r"x, k \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.tensor([1.0, 2.0, -10.0]), "k": torch.tensor(5)})


def test_defect_1_rows_that_do_not_apply_are_not_read():
    src = module(r"\Return \{ \begin{cases} x[i+5] & i > 9 \\ x[i] & \text{otherwise} \end{cases} \}_{i=0}^{|x|-1}, "
                 r"\begin{cases} x[k] & x[0] < 0 \\ 0.5 & \text{otherwise} \end{cases} \\", r"x, k \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.tensor([1.0, 2.0, -10.0]), "k": torch.tensor(5)})


def test_defect_2_dependent_inner_bound():
    src = module(r"\Return \sum_{t=0}^{|d|-1} \sum_{l=0}^{|d|-1-t} d[t+l] \\", "d")
    assert_agrees(src, {"d": torch.arange(1.0, 6.0)})


def test_defect_3_inner_bound_of_an_empty_outer_loop():
    src = module(r"\Return \sum_{r=1}^{|x|-1} \sum_{q=0}^{r} x[q] \\", "x")
    assert_agrees(src, {"x": torch.tensor([0.5])})


def test_defect_4_constant_condition():
    src = module(r"\Return \{ \begin{cases} x[r] & 2 > 2 \\ 0.5 & \text{otherwise} \end{cases} \}_{r=0}^{|x|-1} \\",
                 "x")
    assert_agrees(src, {"x": torch.tensor([1.0, -2.0, 3.0])})


def test_defect_5_integer_to_a_negative_power():
    src = module(r"\Return x * \sum_{i=1}^{n} i^{-1} \\", r"x, n \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.tensor([1.0, -2.0]), "n": torch.tensor(3)})


def test_defect_6_setbuilder_of_literals_follows_float64():
    src = module(r"\Return \{ 2 \}_{t=0}^{|A|-1} @ A + \mathbb{1}[A > 0] \\", "A")
    assert_agrees(src, {"A": torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)})


def test_defect_6_float32_model_stays_float32():
    src = module(r"\Return x * \prod_{i=1}^{3} 0.5 + \pi + \OneHot(k, |x|), \sum_{i=1}^{3} 2 \\",
                 r"x, k \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.tensor([1.0, -2.0, 0.25]), "k": torch.tensor(1)})


def test_defect_6_integer_tensor_for_a_real_input_is_converted():
    src = module(r"\Return x * 2, x \\", r"x \in \mathbb{R}^{N}")
    assert_agrees(src, {"x": torch.tensor([1, -2, 3])})


def test_defect_6_the_widest_floating_input_decides():
    src = module(r"\Return s, x * s \\", "x, s")
    assert_agrees(src, {"x": torch.tensor([1.0, -2.0], dtype=torch.float64), "s": torch.tensor(0.5)})


def test_defect_7_cdot_of_scalars_juxtaposed_norms_and_partial_recurrence_reads():
    src = r"""\Module{P}{x \in \mathbb{R}^{T \times d}, w, b}
  h \gets \{ \begin{cases} x[0] & t = 0 \\ \{ \max(h[t-1, i], x[t, i]) \}_{i=0}^{d-1} & \text{otherwise} \end{cases} \}_{t=0}^{T-1} \\
  s \gets \{ \begin{cases} x[0, 0] & t = 0 \\ s_{t-1} + h_{t-1, 0} * x[t][1] & \text{otherwise} \end{cases} \}_{t=0}^{T-1} \\
  \Return h, s, (b) \cdot (w[0]) + \frac{1}{2} \|w\|^2 + 2 |b| \\
\EndModule
"""
    assert_agrees(src, {"x": torch.randn(4, 3, generator=torch.Generator().manual_seed(0)),
                        "w": torch.tensor([0.5, -1.0]), "b": torch.tensor(-0.75)})


def test_defect_7_unclosed_module_is_reported_at_the_module():
    import kokoyi

    with pytest.raises(kokoyi.KokoyiSyntaxError) as info:
        kokoyi.compile("x \\gets 1 \\\\\n\\Module{P}{x}\n  \\Return x \\\\\n", filename="open.kyi")
    assert (info.value.line, info.value.column) == (2, 1)


def test_defect_8_zero_variance_std_gradient_agrees_on_every_path():
    """The written-out population standard deviation is recognised (one torch std), whose
    gradient at zero variance is 0: a subgradient where the formula's derivative is undefined
    (docs/reference/choices.md#standard-deviation-at-zero-variance). Every path gives the same;
    away from zero variance they all equal the reference."""
    import kokoyi
    from kokoyi.test_utils import Host

    src = module(r"\sigma(v) \gets \sqrt{\frac{\sum_{i=0}^{|v|-1}{(v[i] - \bar{v})**2}}{|v|}} \where \bar{v} \gets \Mean(v) \\"
                 "\n  \\Return \\sigma(x) \\\\", "x")
    assert_agrees(src, {"x": torch.tensor([2.0, 1.0, 4.0])})
    kokoyi.compile(src, filename="std.kyi")
    grads = []
    for levels, shape in ((None, (3,)), ([1], (2, 3)), ([2], (2, 2, 3))):
        x = torch.full(shape, 2.0, requires_grad=True)
        Host(None, kokoyi.symbol["P"])(x, batch_level=levels).sum().backward()
        grads.append(x.grad.reshape(-1, 3))
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads), grads


# ---- kinds the long campaign found ------------------------------------------------------------


def assert_agrees_with_module_q(source: str, inputs: dict):
    """As assert_agrees, with the Kokoyi module Q of the source given as P's one parameter."""
    prog = differential.program(source, inputs)
    prog.params = [("kokoyi", "Q")]
    findings, stats = differential.check(prog)
    assert not findings, "\n\n".join(differential.reproduction(f) for f in findings)
    assert stats.compiled and not stats.invalid and stats.paths >= 3, stats


Q_MODULE = "\\Module{Q}{u}\n  \\Return \\tanh(u) * 2 + \\{ u[i] * i \\}_{i=0}^{|u|-1} \\\\\n\\EndModule\n"


def test_a_module_called_on_integers_returns_floats_in_the_callers_dtype():
    """Seed 506170: Q on integers computes in its own dtype (float32); P is float64, so Q's
    result reaches P as float64 (LANGUAGE.md 6a) on every path, also beside a 0-d float64."""
    src = Q_MODULE + (r"\Module{P}{x, y; q}" "\n"
                      r"  \Return q(\{ \sum_{j=0}^{|x| - 1 - i} 1 \}_{i=0}^{1}), y[0] * q(\{ i \}_{i=0}^{2}) \\" "\n"
                      r"\EndModule" "\n")
    assert_agrees_with_module_q(src, {"x": torch.tensor([0.5, -1.0], dtype=torch.float64),
                                      "y": torch.tensor([2.0, 1.0], dtype=torch.float64)})


def test_an_empty_sum_of_an_empty_minimum_has_the_bodys_shape():
    r"""Seed 602588: the body of an empty sum is an empty \min (an error wherever it is
    computed); the sum is still zeros of x's shape, so c[1] reads in range."""
    src = module(r"c \gets \sum_{i=2}^{1} \min_{j=2}^{1} (x) \\" "\n" r"  \Return c, c[1] \\", "x")
    assert_agrees(src, {"x": torch.tensor([0.5, -1.0, 2.0])})


def test_every_failing_read_of_an_empty_axis_is_a_right_answer():
    """Seed 1000745: x is empty, so each sample reads out of range in one of two rows; the
    batched code may name either read (docs/reference/choices.md#which-error), and the
    reference finds both (it goes on past a read of an empty axis)."""
    src = module(r"\Return \{ \begin{cases} x[k] & X[i, 0] < 0 \\ x_{0} & \text{otherwise} \end{cases} \}_{i=0}^{2} \\",
                 r"x, X, k \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.zeros(0), "X": torch.tensor([[1.0], [-1.0], [1.0]]), "k": torch.tensor(-1)})


def test_std_of_equal_elements_is_exactly_zero_on_every_path():
    """Seed 1101162: a matrix whose elements are all one float64 value: the mean of equal
    floats need not be them, so a std from deviations from the mean is rounding noise and its
    gradient noise over noise (one sample gave 4e-16 and a gradient of 0.67, a batch 0 and 0).
    Deviations from the first element give 0 and the gradient 0
    (docs/reference/choices.md#standard-deviation-at-zero-variance) on every path."""
    import kokoyi
    import reference
    from kokoyi.test_utils import Host

    src = module(r"\Return \Std(\abs(\{ \{ \LogSumExp(X) \}_{j=0}^{1} \}_{i=0}^{|X| - 1})) \\", "X")
    X = torch.tensor([[-0.2700865002051136, -1.5506280150103178], [-1.0959179498864702, 1.656335087618835],
                      [-0.20509916871372433, -0.7754303728607828]], dtype=torch.float64)
    assert_agrees(src, {"X": X})
    kokoyi.compile(src, filename="std.kyi")
    for levels, value in ((None, X), ([1], X.expand(3, 3, 2)), ([2], X.expand(2, 2, 3, 2)), ("ref", X)):
        value = value.clone().requires_grad_(True)
        if levels == "ref":
            out = reference.run(src, "P", [value], filename="std.kyi")
        else:
            out = Host(None, kokoyi.symbol["P"])(value, batch_level=levels)
        out.sum().backward()
        assert not out.detach().any() and not value.grad.any(), (levels, out, value.grad)


def test_a_cases_with_no_row_for_a_step_inside_a_row_that_does_not_apply():
    """Seed 1200241: the inner cases has no row at t = 1 (a test on the step alone: an error
    where it applies); it sits in a row that applies where h[t-1, i] < s, so where that row
    does not apply its value is discarded and the call goes on (it raised UnboundLocalError:
    the value was made only in the branch where a row applies)."""
    src = module(r"h \gets \{ \begin{cases} \{ 0.5 \}_{i=0}^{1} & t = 0 \\ \{ \begin{cases} \begin{cases} h[t-1][i] "
                 r"& t \ne 1 \end{cases} & h_{t-1, i} < s \\ x[i] & \text{else} \end{cases} \}_{i=0}^{1} & \text{otherwise} "
                 r"\end{cases} \}_{t=0}^{|x| - 1} \\" "\n" r"  \Return h \\", "x, s")
    assert_agrees(src, {"x": torch.tensor([1.0, -2.0, 0.5]), "s": torch.tensor(0.25)})  # no row applies at t = 1
    assert_agrees(src, {"x": torch.tensor([1.0, -2.0, 0.5]), "s": torch.tensor(0.75)})  # it does: an error


def test_a_value_joined_from_a_steps_branches_is_not_hoisted_before_the_loop():
    """Seeds 4001693 and 4001203 (the 20-minute campaign on the merged code): z_t is a cases
    on the step alone (a Python branch in the step, its value assigned on both sides), and
    z_t * (...) does work; batch/hoist.py took the joined name, which no emitted statement
    defined, for a value from before the recurrence and hoisted the product before the loop,
    where the name is not yet bound (UnboundLocalError)."""
    src = module(r"c \gets \{ \begin{cases} -1 & t = 0 \\ c[t-1] * 0.5 + z_{t} * (\begin{cases} x[k] & 0.25 \leq x[-2] "
                 r"\\ y_{t} & \text{otherwise} \end{cases}) & \text{otherwise} \end{cases} \}_{t=0}^{1} \where z_{t} \gets "
                 r"\begin{cases} h[t-1] & t \le N \\ 1 & \text{else} \end{cases} \\" "\n"
                 r"  h \gets \{ 1 \}_{t=0}^{1} \\" "\n" r"  \Return c \\",
                 r"x, y \in \mathbb{R}^{N}, k \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.tensor([-1.5, 0.2, 0.6, -2.2]), "y": torch.tensor([-1.0, 0.5, 2.0, 1.0]),
                        "k": torch.tensor(1)})


def test_a_recurrence_element_no_one_reads_passes_zero_times_its_derivative():
    """Seed 5001449, settled again after seed 6002455: c[1], c[2] are NaN (z_t is the log of a
    negative number) and only c[0] is read. A finished recurrence's elements are one vector
    (compiled code computes its steps' values together, before the loop), so the others get a
    zero gradient, and 0 * NaN is NaN: the gradient of s is NaN on every path and in the
    reference (docs/reference/choices.md#gradients-through-cases)."""
    import kokoyi
    from kokoyi.test_utils import Host

    src = module(r"c \gets \{ \begin{cases} s & t = 0 \\ c[t-1] * 0.5 + z_{t} * s & \text{otherwise} \end{cases} "
                 r"\}_{t=0}^{N - 1} \where z_{t} \gets \log(x[0]) \\" "\n" r"  \Return c[-3] \\",
                 r"x \in \mathbb{R}^{N}, s")
    assert_agrees(src, {"x": torch.tensor([-1.0, 2.0, 3.0]), "s": torch.tensor(1.5)})
    kokoyi.compile(src, filename="unread.kyi")
    s = torch.tensor(1.5, requires_grad=True)
    Host(None, kokoyi.symbol["P"])(torch.tensor([-1.0, 2.0, 3.0]), s).backward()
    assert torch.isnan(s.grad), s.grad


def test_the_steps_values_of_an_element_no_one_reads_count():
    """Seed 6002455: c[3] is read by no one, and its step's value sqrt(x[3]) has an undefined
    derivative at x[3] < 0. Compiled code computes sqrt(x[t]) for all steps at once before the
    loop, so the unread step hands it a zero gradient: 0 * NaN is NaN at x[3]. The reference,
    reading c[k] from the one vector of c's elements, gives the same (it gave 0, reading each
    element alone), on every path (docs/reference/choices.md#gradients-through-cases)."""
    src = module(r"c \gets \{ \begin{cases} 1 & t = 0 \\ c[t-1] * 0.5 + \sqrt{x[t]} & \text{otherwise} \end{cases} "
                 r"\}_{t=0}^{|x| - 1} \\" "\n" r"  \Return \sum_{i=1}^{|x| - 1} c[|x| - 1 - i] \\", "x")
    assert_agrees(src, {"x": torch.tensor([1.0, 2.0, 3.0, -1.0])})


def test_a_statement_read_by_a_row_that_applies_nowhere_passes_zero_times_its_derivative():
    """Seeds 500043 and 1200174: b is computed for real, with an undefined derivative in X
    (log of a negative number); a row with a data condition reads it and applies nowhere
    (here, in this sample). The row is computed and discarded, handing b a zero gradient,
    and 0 * NaN is NaN: on every path, and in the reference
    (docs/reference/choices.md#gradients-through-cases). Where the value is computed in the
    row itself, nothing flows."""
    src = module(r"b \gets (X[-1][-1]) \cdot (\log(x[0])) \\" "\n"
                 r"  c \gets \{ 1 \}_{t=0}^{|x| - 1} \\" "\n"
                 r"  \Return \begin{cases} b & c > \pi \\ x & \text{otherwise} \end{cases}, "
                 r"\begin{cases} X[0, 0] * \log(x[1]) & x[1] > 0 \\ X[0, 0] & \text{otherwise} \end{cases} \\", "x, X")
    for x0 in (-0.7, 0.7):
        assert_agrees(src, {"x": torch.tensor([x0, -0.9], dtype=torch.float64),
                            "X": torch.tensor([[2.1]], dtype=torch.float64)})


def test_an_empty_product_of_vectors_is_the_ones_vector():
    """The empty product of a vector body (whose elements are empty maxima, errors wherever
    computed) is the ones vector of the body's shape on every path and in the reference
    (docs/reference/choices.md#empty-sum-of-vectors); the reference gave a scalar."""
    src = module(r"\Return \prod_{i=2}^{1} (\{ \max_{l=2}^{1} (1) \}_{j=0}^{|x|-1}) \\", "x")
    assert_agrees(src, {"x": torch.tensor([0.5, -1.0, 2.0, 3.0])})


def test_a_shared_inputs_gradient_summed_over_infinities_is_undefined_either_way():
    """Seed 800105: the cube root's derivative at -0.0 is infinite; x is shared by the samples
    of a batch, so its gradient is a sum over them: the reference adds each sample's ±inf
    (NaN), the module adds the samples' weights first (±inf). Both are undefined: the harness
    takes any non-finite value for any other there, and still compares the finite rest."""
    src = module(r"\Return \sqrt[3]{x_{-1}} + x[k] \\", r"x, k \in \mathbb{Z}")
    prog = differential.program(src, {"x": torch.tensor([-1.0, 1.0, -0.0], dtype=torch.float64),
                                      "k": torch.tensor(1)})
    paths = [differential.Path("mixed levels", [0, 1], (3,)), differential.Path("batch level 1", [1, 1], (3,))]
    for seed in range(4):
        findings, stats = differential.check(prog, seed, paths=paths)
        assert not findings and stats.paths == 2, "\n\n".join(differential.reproduction(f) for f in findings)


def test_a_solve_with_infinite_inputs_agrees_with_the_reference():
    """Seeds 900272, 900987: `A^{-1} @ y` is a solve (LANGUAGE.md 6), in the reference too
    (an inverse times y gave NaN gradients where the solve gives ±inf); the harness allows
    n * cond(A) * eps where a matrix is ill-conditioned, and anything where it has an
    infinite or NaN entry."""
    src = module(r"\Return (A^{-1}) @ y, \det(A) \\", r"A \in \mathbb{R}^{n \times n}, y")
    for A, y in ((torch.tensor([[2.0, 1.0], [1.0, 3.0]]), torch.tensor([float("inf"), 1.0])),
                 (torch.tensor([[float("inf"), 0.0], [0.0, 1.0]]), torch.tensor([1.0, 2.0])),
                 (torch.tensor([[1.0, 1.0], [1.0, 1.0001]]), torch.tensor([1.0, 2.0]))):
        assert_agrees(src, {"A": A, "y": y})


def test_a_statement_read_only_in_a_condition_of_a_discarded_row_gets_no_gradient():
    """Seed 2000780: the discarded row reads b only in a condition (a truth value, no
    gradient), so b's undefined derivative (sqrt at 0) reaches nothing: gradient 0."""
    src = module(r"b \gets \sqrt{\|x\|_1} \\" "\n"
                 r"  \Return \begin{cases} \begin{cases} 1.5 & b > s \\ s & \text{otherwise} \end{cases} & s > 0 \\ "
                 r"s & \text{otherwise} \end{cases} \\", "x, s")
    assert_agrees(src, {"x": torch.zeros(3), "s": torch.tensor(-0.25)})


# ---- the generator itself ---------------------------------------------------------------------


def test_generator_is_deterministic_and_mostly_well_formed():
    from kokoyi.compiler.pipeline import compile_unit

    sources = [program_gen.generate(seed).source for seed in range(60)]
    assert sources == [program_gen.generate(seed).source for seed in range(60)]
    parsed = 0
    for src in sources:
        try:
            compile_unit(src, "gen.kyi", stop_after="resolve")
            parsed += 1
        except Exception:  # noqa: BLE001, S110 - counted below
            pass
    assert parsed >= 57, f"only {parsed} of 60 generated programs pass the front end"


def test_generated_reads_never_spell_a_later_definition_s_name():
    """Seed 10302121: a read of h at 2 spelled `h_{2}` named the recurrence `h_{2}` the
    generator was defining (its fresh names are `h_{2}`, `c_{1}`, ...), a self-reference the
    front end rightly rejects. Literal indices are spelled with brackets; the compile finding
    is counted among the findings."""
    from kokoyi.compiler.pipeline import compile_unit

    prog = program_gen.generate(10302121, 3, round2=True)
    compile_unit(prog.source, "gen.kyi", stop_after="resolve")
    bad = differential.program(module(r"a \gets a \\" "\n" r"  \Return a \\", "x"), {"x": torch.tensor([1.0])})
    findings, stats = differential.check(bad)
    assert [f.kind for f in findings] == ["compile"] and stats.findings == 1


def test_checker_reports_a_wrong_value():
    """The oracle can fail: a module that differs from its source is caught on every path."""
    prog = differential.program(module(r"\Return x * 2 \\", "x"), {"x": torch.tensor([1.0, 2.0])})
    import kokoyi

    findings, _ = differential.check(prog)
    assert not findings
    original = differential.reference.run
    try:
        differential.reference.run = lambda *a, **k: original(*a, **k) * 1.001
        findings, _ = differential.check(prog)
    finally:
        differential.reference.run = original
    assert {f.kind for f in findings} == {"value"} and len(findings) == 3
    assert kokoyi.symbol["P"] is not None


def test_shrink_drops_what_the_finding_does_not_need():
    src = (r"\Module{P}{x}" "\n" r"  a \gets \sum_{i=0}^{|x|-1} x[i] \\" "\n" r"  b \gets \tanh(x) \\" "\n"
           r"  \Return x * 2, (\exp(x[0])) + (\Mean(x)) \\" "\n" r"\EndModule" "\n")
    prog = differential.program(src, {"x": torch.tensor([1.0, 2.0])})
    original = differential.reference.run

    def off_by_a_little(*a, **k):  # the first output of the "reference" is off: a finding to keep
        out = original(*a, **k)
        return (out[0] * 1.001, *out[1:]) if isinstance(out, tuple) else out * 1.001

    differential.reference.run = off_by_a_little
    try:
        findings, _ = differential.check(prog)
        small = differential.shrink(findings[0], prog)
    finally:
        differential.reference.run = original
    assert differential.signature(small) == differential.signature(findings[0])
    assert "gets" not in small.source and "Mean" not in small.source and r"\Return x * 2" in small.source


# ---- the bounded random run --------------------------------------------------------------------


@pytest.mark.parametrize("round2, programs", [(False, BOUNDED_PROGRAMS), (True, ROUND2_PROGRAMS)],
                         ids=["round 1", "round 2"])
def test_bounded_differential_run(round2, programs):
    torch.set_num_threads(1)
    total = differential.Stats()
    found = {}
    for seed in range(programs):
        findings, stats = differential.check(program_gen.generate(seed, round2=round2), seed)
        total.add(stats)
        for f in findings:
            found.setdefault(f.key(), f)
    assert total.invalid <= total.programs // 20, vars(total)
    assert not found, f"{len(found)} kinds of difference in {vars(total)}:\n\n" + "\n\n".join(
        differential.reproduction(f) for f in found.values())


# ---- the generator's round-2 option (issue 13) -----------------------------------------------------

ROUND2_MARKS = {"recurrence group": "z_{", "matrix literal": "matrix}", "log base": "\\log_", "det": "\\det",
                "trace": "tr", "diag": "\\operatorname{diag}", "identity": "\\mathbf{I}_", "solve": ")^{-1} @",
                "log det": "\\log \\det"}


def test_round_two_generation_is_an_option_and_covers_every_construct():
    from kokoyi.compiler import ir
    from kokoyi.compiler.pipeline import compile_unit

    plain = [program_gen.generate(seed).source for seed in range(80)]
    assert not any(mark in src for src in plain for mark in ("matrix}", "\\log_", "\\det", "\\mathbf{I}_", "z_{"))
    sources = [program_gen.generate(seed, round2=True).source for seed in range(80)]
    assert sources == [program_gen.generate(seed, round2=True).source for seed in range(80)]
    missing = [what for what, mark in ROUND2_MARKS.items() if not any(mark in src for src in sources)]
    assert not missing, f"80 round-2 programs write no {missing}"
    for src in sources:  # the front end reads them all, and they lower to well-formed IR
        for f in compile_unit(src, "gen.kyi", stop_after="simplify").ir:
            ir.verify(f)


def test_the_reference_runs_round_two_programs():
    import reference

    torch.set_num_threads(1)
    ran = 0
    for seed in range(60):
        prog = program_gen.generate(seed, round2=True)
        if any(kind == "kokoyi" for kind, *_ in prog.params) or not any(m in prog.source for m in ROUND2_MARKS.values()):
            continue
        g = torch.Generator().manual_seed(seed)
        args = [differential.sample_input(spec, g) for spec in prog.inputs]
        params = differential.parameters(prog, seed)
        try:
            reference.run(prog.source, "P", args, () if params is None else params, filename="diff.kyi")
        except reference.RefRuntimeError:  # a run-time error the contract defines: well-formed too
            pass
        ran += 1
    assert ran >= 20


def test_a_row_applies_only_where_no_earlier_row_did():
    """Seed 6000638: the second row's condition holds only at elements the first row took, so
    it applies nowhere and its computation (a square root of a negative y[1], read whole: not
    element-wise) passes no gradient. Batched code judged each sample by "some element is
    undecided" and "some element meets the condition" separately (any(~c1) & any(c2), not
    any(~c1 & c2)), let the row's NaN derivative through, and guarded its reads the same way."""
    src = module(r"\Return \begin{cases} x & x > 0 \\ \sqrt{y[1]} x & x > 0.5 \\ 2 x & \text{otherwise} \end{cases} \\",
                 "x, y")
    assert_agrees(src, {"x": torch.tensor([1.0, -1.0]), "y": torch.tensor([2.0, -1.0])})


def test_a_factors_gradient_is_the_product_of_the_others_when_the_product_is_nan():
    """Seed 9005851: the product's one factor 1 - log(s) is NaN at a negative s, and its
    gradient is the product of the other factors (1: there are none), so s gets log's -w/s as
    from a loop of `*`. torch's prod divides the product by each factor in its backward
    (NaN / NaN): batched code gave NaN. Products are pairwise multiplications now
    (kokoyi/runtime/factors.py)."""
    src = module(r"\Return \prod_{i=1}^{|x| - 1} ((1) - (\{ \log(s) \}_{j=0}^{1})) \\", "x, s")
    assert_agrees(src, {"x": torch.tensor([0.0, -1.0]), "s": torch.tensor(-0.4949)})
    assert_agrees(src, {"x": torch.tensor([0.0, -1.0, 2.0, 1.0]), "s": torch.tensor(-0.4949)})


def test_a_recurrence_element_first_computed_for_a_shape_keeps_its_gradient():
    """Seed 9006105, a reference defect: the empty sum `\\sum_{i=2}^{1} (c_1[0])` computes its
    body without gradient to learn its shape, and the reference kept that c_1[0] as the
    element, so the norm of c_1 read later handed X no gradient (zeros where the module gave
    X[0][0] its gradient). Elements computed without gradient are kept apart now."""
    src = (r"\Module{P}{x, X, k \in \mathbb{Z}; W}" "\n"
           r'c_{1} \gets \{ \begin{cases} \prod_{i=0}^{|x| - 1 - t} (\begin{cases} X[2t][0] & 2t < 2 \\ 3 & \text{otherwise} \end{cases}) & t = 0 \\ c_{1}[t-1] * 0.5 + z_{t} & \text{otherwise} \end{cases} \}_{t=0}^{|x| - 1} \where z_{t} \gets h_{2}[t-1] \\' "\n"
           r'h_{2} \gets \{ (1) \}_{t=0}^{|x| - 1} \\' "\n"
           r'c_{3} \gets \{ \begin{cases} \sum_{i=2}^{1} (c_{1}[0]) & t = 0 \\ c_{3}[t-1] * 0.5 + z_{t} * (1) & \text{otherwise} \end{cases} \}_{t=0}^{|x| - 1} \where z_{t} \gets \sign(1) \\' "\n"
           r'h_{4} \gets \{ (1) \}_{t=0}^{|x| - 1} \\' "\n"
           r'c_{5} \gets \{ (1) \}_{t=0}^{2} \where z_{t} \gets h_{6}[t-1] \\' "\n"
           r'h_{6} \gets \{ (1) \}_{t=0}^{2} \\' "\n"
           r'\Return (\{ \sqrt{2} \|c_{1}\|_1 \}_{i=0}^{|x| - 1}) + u \where u \gets h_{4}[-3] \\' "\n"
           r"\EndModule" "\n")
    inputs = {"x": torch.tensor([1.0226, 0.6107, 1.3554]),
              "X": torch.tensor([[1.1548, 1.1039], [-0.1084, -0.3413]]), "k": torch.tensor(2)}
    findings, stats = differential.check(differential.program(src, inputs, [torch.zeros(1, 3)]))
    assert not findings, "\n\n".join(differential.reproduction(f) for f in findings)
    assert stats.paths >= 3, stats


def test_a_later_steps_failing_read_is_a_right_error_beside_an_earlier_step_with_no_row():
    """Seed 6002665: step 1 has no row of the inner cases (a test on the step alone: an
    error), and step 3 reads x[4], out of range. One step at a time stops at step 1; compiled
    code reads x[t+1] for every step before the loop, so it meets step 3's read first. Both
    fail for this sample, so either is a right answer (docs/reference/choices.md#which-error):
    the reference, recording every failure, goes on past a cases with no row too."""
    src = module(r"c \gets \{ \begin{cases} x[0] & t = 0 \\ c[t-1] * \begin{cases} x[t+1] & t \ne 1 \end{cases} "
                 r"& \text{otherwise} \end{cases} \}_{t=0}^{|x| - 1} \\" "\n" r"  \Return c \\", "x")
    assert_agrees(src, {"x": torch.tensor([1.0, -2.0, 0.5, 3.0])})


def test_a_comparison_decided_by_rounding_is_ill_conditioned():
    """Seed 6002746: c is b times the sum of a softmax, 1 up to rounding, so b <= c is decided
    by rounding: the module (a matmul) took b, the reference (another order of summing) x @ x,
    and the reference in float64 (the module's dtype already: L is float64) agrees with itself.
    The reference records a comparison of floats that differ by rounding alone as infinitely
    ill-conditioned, and the harness counts the difference as such, not as a finding."""
    src = (r"\Module{P}{x; L}" "\n" r"  b \gets x[-2] \\" "\n" r"  c \gets (\Softmax(x)) @ (\{ b \}_{i=0}^{|x| - 1}) \\" "\n"
           r"  \eta \gets \{ \begin{cases} 1 & t < 1 \\ c & \text{otherwise} \end{cases} \}_{t=0}^{|x| - 1} \\" "\n"
           r"  \Return \begin{cases} b & b \leq \eta[-2] \\ x @ x & \text{otherwise} \end{cases} \\" "\n" r"\EndModule" "\n")
    x = torch.tensor([-0.6375600695610046, 0.4836437404155731, -0.7529193758964539])
    findings, stats = differential.check(differential.program(src, {"x": x}, [torch.zeros(1, dtype=torch.float64)]))
    assert not findings, "\n\n".join(differential.reproduction(f) for f in findings)
    assert stats.paths >= 3 and stats.ill_conditioned >= 1, stats


def test_a_sum_of_infinite_derivatives_in_one_sample_is_undefined_either_way():
    """Seed 7000697: b is four copies of the cube root of x[1] = 0, whose derivative is
    infinite, and the output reads each. The reference adds the copies' gradients one at a
    time (w1 inf + w2 (-inf): NaN); compiled code computes the root once and broadcasts it, so
    it adds the weights first (±inf). Both are undefined: the harness takes any non-finite
    gradient for any other there, also for an input of one sample (as it did for one shared
    by a batch's samples), and still compares the finite rest."""
    src = module(r"b \gets \{ \sqrt[3]{x[1]} \}_{i=0}^{3} \\" "\n" r"  \Return \{ b_{3 - i} + x[0] \}_{i=0}^{3} \\", "x")
    assert_agrees(src, {"x": torch.tensor([1.0, 0.0], dtype=torch.float64)})


def test_a_log_det_whose_det_overflows_is_the_log_determinant():
    """Seed 9203277: log det(I + C C^T) with cosh entries near 1e200; compiled code takes
    \\log \\det as logdet (LANGUAGE.md 6, docs/reference/language.md "Linear algebra"), finite,
    where the reference's det overflows to inf first. The reference notes a determinant out of
    the dtype's range as infinitely ill-conditioned, so the harness does not count the
    difference; the module's value is the math's."""
    import kokoyi
    from kokoyi.test_utils import Host

    src = module(r"\Return \log \det(A) \\", r"A \in \mathbb{R}^{n \times n}")
    A = torch.diag(torch.tensor([1e200, 1e200, 1e-3], dtype=torch.float64))
    findings, stats = differential.check(differential.program(src, {"A": A}))
    assert not findings, "\n\n".join(differential.reproduction(f) for f in findings)
    assert stats.paths >= 3 and stats.ill_conditioned >= 1, stats
    got = Host(None, kokoyi.symbol["P"])(A)
    assert torch.isclose(got, 2 * torch.log(torch.tensor(1e200, dtype=torch.float64)) + torch.log(torch.tensor(1e-3)))


def test_an_empty_sum_in_a_discarded_row_reads_nothing():
    """Seed 9206831: the discarded row `\\sum_{i=2}^{1} h[i+1]` is an empty sum: it reads
    nothing, so it hands h no gradient, and h[0] = sqrt(s) at a negative s (an undefined
    derivative) does not make s's gradient NaN. The reference linked every value a discarded
    row names (docs/reference/choices.md#gradients-through-cases), empty ranges too; compiled
    code computes nothing over an empty range, with literal bounds or with data bounds (k)."""
    for upper, k in (("1", 3), ("k", 1), ("k", 0)):
        src = (r"\Module{P}{y, s, k \in \mathbb{Z}}" "\n"
               r"  h \gets \{ \begin{cases} \sqrt{s} & t = 0 \\ 2 & \text{otherwise} \end{cases} \}_{t=0}^{|y| - 1} \\" "\n"
               r"  \Return \begin{cases} 1 & s < \tanh(y[2]) \\ \sum_{i=2}^{" + upper + r"} h[i-2] & \text{else} \end{cases} \\"
               "\n" r"\EndModule" "\n")
        assert_agrees(src, {"y": torch.tensor([-0.45, -0.34, 0.39, -0.85, 1.2]), "s": torch.tensor(-1.04),
                            "k": torch.tensor(k)})


def test_a_loop_reads_nothing_outside_its_range():
    """Seed 9300557: `\\prod_{j=i}^{0}` runs on the longest range (j = 0..0 for every i),
    masked; for i = 1 the range is empty, but the body's square root was computed there at
    X[-1, 2] = 0, whose infinite derivative times the mask's zero gradient made X's gradient NaN
    there, where the math reads nothing (batch/gradients.py range_masked: inside a loop with a
    varying range, reads pass gradient only inside it)."""
    src = module(r"b \gets \{ \prod_{j=i}^{1 - 1} (\sqrt{X[1 - 1 - j, 2j]}) \}_{i=0}^{|y| - 1} \\" "\n"
                 r"  \Return \LogSoftmax(b) \\", "y, X")
    assert_agrees(src, {"y": torch.tensor([0.74, 0.15]), "X": torch.tensor([[-1.0, 0.0, 0.0]])})
    assert_agrees(src, {"y": torch.tensor([0.74, 0.15]), "X": torch.tensor([[2.0, 0.5, -1.0]])})


def test_a_row_that_never_applies_calling_a_function_of_integers_is_an_integer():
    """Seed 9801701: the row `sq(2)` never applies; the reference took any call for a float
    (its kind of a value it does not compute) and so expected float64, where sq(u) = u * u of
    an integer is an integer (contract 6a) and the module returned int64. The reference now
    computes the call to learn its kind; with a float argument the output is a float."""
    for arg in ("2", "0.5"):
        src = (r"sq(u) \gets u * u \\" "\n" r"\Module{P}{x \in \mathbb{R}^{N}}" "\n"
               r"  \Return \{ \begin{cases} sq(1) & i \le i \\ sq(" + arg + r") & \text{else} \end{cases} \}_{i=0}^{|x| - 1} \\"
               "\n" r"\EndModule" "\n")
        assert_agrees(src, {"x": torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)})


def test_the_trace_of_integers_is_an_integer():
    """Seed 9904335: a recurrence of integers whose third row is the clipped trace of a 1×1
    table of earlier elements. The module kept int64 (a trace is a sum of integer terms,
    contract 6a); the reference's static kind took any trace for a float and expected
    float64. With a float element the output is a float."""
    for first in (r"\lfloor 1 \rfloor", "0.5"):
        src = module(r"  h \gets \{ \begin{cases} " + first + r" & t = 0 \\ 3 & t = 1 \\ "
                     r"\clip(\operatorname{tr}(\{ \{ h_{t-1} \}_{j=0}^{0} \}_{i=0}^{0}), -1, 1) & \text{otherwise} "
                     r"\end{cases} \}_{t=0}^{|y| - 1} \\" "\n" r"  \Return h \\", r"y \in \mathbb{R}^{M}")
        assert_agrees(src, {"y": torch.tensor([0.5, -1.0, 2.0, 1.0], dtype=torch.float64)})


def test_an_elementwise_row_discards_its_derivatives_where_it_does_not_apply():
    """Seed 9901871: `\\sin(c_3 + w)` applied at some elements of a vector, with c_3 NaN.
    Compiled code (every path) discards the row's computation where it does not apply,
    derivatives and all (choices.md#gradients-through-cases: `\\sqrt{x}` for x > 0 has gradient
    0 at x <= 0); the reference computed the row whole and picked elements, so 0 * cos(NaN)
    made w's gradient NaN there. A row that is not element-wise (an index in it) keeps
    torch.where's NaN on every path."""
    nan = float("nan")
    for row in (r"\sqrt{x}", r"\sin(x + w)", r"\sin(x + w) \cdot w[0]"):
        src = module(r"\Return \begin{cases} " + row + r" & x > 0 \\ 0 & \text{otherwise} \end{cases} \\", "x, w")
        assert_agrees(src, {"x": torch.tensor([1.0, -2.0, 3.0]), "w": torch.tensor([nan, nan, 0.5])})


def test_a_singular_matrix_has_no_inverse_on_every_path():
    """Seed 10100317 (a program the reference could not run: torch's solve raised on a singular
    matrix). A singular matrix's A^{-1} and A^{-1} @ b are NaN on every path, no error, so a
    batch holding one gives NaN for that sample alone and a row that does not apply may hold
    one (choices.md#singular-matrices); the module used torch.linalg.solve, which raises for
    the whole batch."""
    singular = [[1.0, 2.0], [2.0, 4.0]]
    src = module(r"\Return A^{-1} @ b, \begin{cases} \sum(A^{-1}) & s > 0 \\ s & \text{otherwise} \end{cases} \\",
                 "A, b, s")
    assert_agrees(src, {"A": torch.tensor(singular), "b": torch.tensor([1.0, 1.0]), "s": torch.tensor(-1.0)})
    assert_agrees(src, {"A": torch.tensor(singular), "b": torch.tensor([1.0, 1.0]), "s": torch.tensor(2.0)})
    import kokoyi
    from kokoyi.test_utils import Host

    kokoyi.compile(src, filename="singular.kyi")
    A = torch.tensor([[[2.0, 0.0], [0.0, 4.0]], singular])
    x, y = Host(None, kokoyi.symbol["P"])(A, torch.ones(2, 2), torch.tensor([1.0, -3.0]), batch_level=[1, 1, 1])
    assert torch.allclose(x[0], torch.tensor([0.5, 0.25])) and bool(x[1].isnan().all())
    assert torch.allclose(y, torch.tensor([0.75, -3.0]))


def test_generator_writes_recurrences_started_from_an_initial_element():
    """The generator writes `h[t] = cases(f(init) if t = 0; f(h[t-1]) otherwise)`, the form
    batch/initial.py runs as one loop from the first step, so campaigns compare that path too."""
    import linecache

    from kokoyi.runtime import module as runtime_module

    prog = program_gen.generate(11500004, 3, round2=False)
    before = set(runtime_module.LINE_MAPS)
    findings, stats = differential.check(prog, 11500004)
    assert not findings and stats.paths >= 3, stats
    new = [k for k in runtime_module.LINE_MAPS if k not in before and k in linecache.cache]
    assert any("del " in "".join(linecache.cache[k][2]) for k in new)  # the initial element dropped after the loop


def test_a_std_of_elements_equal_but_for_rounding_is_ill_conditioned():
    """Seed 11000659: the std of (I + S S^T)^{-1} @ c·1, whose elements are equal in the math
    (zero variance: the documented subgradient 0, choices.md#standard-deviation-at-zero-variance),
    times cbrt(log(s)) = NaN. The solve's rounding left the reference's elements an ULP apart,
    so its std had a rounding-over-rounding gradient and NaN times it was NaN; the module's
    were equal and gave 0. The reference now notes deviations of rounding size as infinitely
    ill-conditioned, as it does for comparisons decided by rounding."""
    import reference

    src = module(r"\Return \Std((\mathbf{I}_{|x|} + (\{ s \}_{i=0, j=0}^{|x| - 1, |x| - 1}) @ (\{ s \}_{i=0, j=0}^{|x| - 1, |x| - 1})^\top)^{-1}"
                 r" @ (\{ \prod(\{ \sqrt{2} \|y\|_1 \}_{j=0}^{|y| - 1}) \}_{i=0}^{|x| - 1})) \cdot \sqrt[3]{\log(s)} \\", "x, y, s")
    f64 = torch.float64
    x = torch.tensor([0.7935338020324707, 0.03709502890706062], dtype=f64)
    y = torch.tensor([-1.2209027649647224, 0.21405014027717753, -0.8825364714270231, 1.1706226785129825,
                      -1.1566545923906884], dtype=f64)
    s = torch.tensor(-0.3942965567111969, dtype=f64)
    conditions: list = []
    reference.run(src, "P", (x, y, s), (), filename="t.kyi", conditions=conditions)
    assert math.inf in conditions
    # the same elements exactly equal (no solve): a well-conditioned zero variance, compared as usual
    conditions.clear()
    plain = module(r"\Return \Std(\{ \prod(\{ \sqrt{2} \|y\|_1 \}_{j=0}^{|y| - 1}) \}_{i=0}^{|x| - 1}) \cdot \sqrt[3]{\log(s)} \\", "x, y, s")
    reference.run(plain, "P", (x, y, s), (), filename="t.kyi", conditions=conditions)
    assert math.inf not in conditions
    assert_agrees(plain, {"x": x, "y": y, "s": s})


def test_the_float64_second_opinion_runs_float32_layers_as_float64_copies():
    """Seed 12000976: a float32 program with float32 layers whose gradient for x is two equal
    terms cancelling (-625 w + 625 w): the module gave exactly 0, the float32 reference ±1e-5
    of rounding. The float64 second opinion, which shows such a difference to be rounding,
    could not run (a float32 layer cannot take float64): it now runs float64 copies of the
    layers (their gradients not compared) and leaves the originals as they were."""
    seed = 12000976
    prog = program_gen.generate(seed, 3, round2=False)
    findings, stats = differential.check(prog, seed)
    assert not findings and stats.ill_conditioned >= 1, stats
    layer = torch.nn.Linear(2, 1)
    src = module(r"\Return L(x) \\", "x; L")
    path = differential.Path("one sample", [0], ())
    out = differential._reference_in_float64(differential.program(src, {"x": torch.ones(2)}), layer, path,
                                             [torch.ones(2)], None)
    assert out.dtype == torch.float64 and layer.weight.dtype == torch.float32


def test_a_recurrence_from_an_initial_element_of_another_kind_keeps_its_own():
    """Seed 14000756: `h[t] = \\lceil \\mathbb{1}[h[t-1] \\geq x[t]] \\cdot 3 \\rceil` from the initial
    element 0.5 is a recurrence of integers, but the loop started at the first step from the
    float 0.5 (batch/initial.py), which set the elements' kind: float32 on every path. An
    initial element of another kind than the steps' now keeps the first step apart."""
    src = module(r"h \gets \{ \begin{cases} \lceil \mathbb{1}[(0.5) \geq x[t]] * (3) \rceil & t = 0 \\ "
                 r"\lceil \mathbb{1}[h[t-1] \geq x[t]] * (3) \rceil & \text{otherwise} \end{cases} \}_{t=0}^{3} \\"
                 "\n" r"  \Return h[1], h \\", r"x \in \mathbb{R}^{N}")
    assert_agrees(src, {"x": torch.tensor([-0.17, 1.3, -1.1, 0.17])})


@pytest.mark.parametrize("body, x", [
    # a row that does not apply to the sample (seed 14001156's shape)
    (r"\Return \begin{cases} L(\{ \log(x[i]) \}_{i=0}^{0}) & x[0] > 0 \\ \{ 0 \}_{i=0}^{0} & \text{otherwise} \end{cases} \\",
     [-2.0, 3.0, 1.0]),
    # a row that applies at some positions of a set-builder, not at others
    (r"\Return \{ \begin{cases} L(\{ \log(x[i]) \}_{k=0}^{0})[0] & x[i] > 0 \\ 0 & \text{otherwise} \end{cases} \}_{i=0}^{|x|-1} \\",
     [-2.0, 3.0, 1.0]),
    # positions outside a dependent range (j > i): computed on the longest range, masked
    (r"\Return \sum_{i=0}^{|x|-1} \sum_{j=0}^{i} L(\{ \log(x[j] - x[i] + 0.5) \}_{k=0}^{0})[0] \\",
     [3.0, 2.0, 1.0]),
])
def test_a_layer_s_weights_get_nothing_from_what_a_row_or_range_discards(body, x):
    """Seed 14001156: a layer called inside a row that does not apply, on a NaN. The math never
    computes the row, so the weights get nothing from it; compiled code computed it and
    selected, and its read masks reach reads, not the layer's own weights: dW = 0 * NaN = NaN
    on every path. The layer now takes zeros where a row or a range discards it."""
    import kokoyi
    from kokoyi.test_utils import Host

    layer = torch.nn.Linear(1, 1)
    with torch.no_grad():
        layer.weight.fill_(0.7)
        layer.bias.fill_(-0.2)
    src = module(body, "x; L")
    assert_agrees(src, {"x": torch.tensor(x)}, [layer])
    kokoyi.compile(src, filename="layer_discarded.kyi")
    out = Host(layer, kokoyi.symbol["P"])(torch.tensor(x))
    (grad,) = torch.autograd.grad(out.sum(), [layer.weight])
    assert torch.isfinite(grad).all()


def test_a_gradient_as_near_the_float64_reference_as_the_float32_one_is_rounding():
    """Seed 31301100: a sine of a large argument (a product of cubes and sums), whose float32
    gradient the module rounds differently from the float32 reference (-192.958 against
    -192.937, a relative 1.1e-4) while both are near the float64 reference; the reference's own
    rounding used less than the tolerance, so the float64 second opinion did not call it rounding.
    The checker now also allows four times the float32 reference's error from float64."""
    seed = 31301100
    prog = program_gen.generate(seed, 3, round2=False)
    findings, stats = differential.check(prog, seed)
    assert not findings and stats.ill_conditioned >= 1, stats
    want, truth = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert differential._rounding_explains(want + 1e-5, want, truth)
    assert not differential._rounding_explains(want + 1e-3, want, truth)
    assert differential._rounding_explains(want + 1e-3, want + 4e-4, truth)


def test_a_recurrence_s_first_step_error_names_the_base_case():
    """Seed 16002957: the first step's cases (`1` where t > 0, no other row) apply to no row, so
    the reference raises at the base case's cases; the module ran its loop from the first step
    with the general case (the same up to h[-1] read as the initial element) and named the
    general case's position. The initial-element form now keeps the first step apart where a
    node that can raise is not one node in both cases (batch/initial.py _may_fail)."""
    src = module(r"h \gets \{ \begin{cases} \begin{cases} 1 & t > 0 \end{cases} & t = 0 \\ "
                 r"\begin{cases} h[t-1] & t > 0 \end{cases} & \text{otherwise} \end{cases} \}_{t=0}^{2} \\"
                 "\n  \\Return h \\\\", "x")
    assert_agrees(src, {"x": torch.tensor([1.0, -2.0, 3.0])})
    assert_agrees(src.replace(r"\begin{cases} 1 & t > 0 \end{cases}", r"x[t+2]").replace(
        r"\begin{cases} h[t-1] & t > 0 \end{cases}", r"x[t+2] + h[t-1]"), {"x": torch.tensor([1.0, -2.0])})


def test_an_integer_to_a_negative_power_is_a_float_operand_of_a_product():
    """Seed 16005713: `(j + 1)^{-1}` is a float (contract section 5), but the batch pass called it
    an integer, so `@` with a matrix of integers took no conversion and torch refused long @ double.
    A negative number as the exponent now makes the kind float, and so does an exponent whose
    sign is data, as `k` here (kokoyi.compiler.signs: no dtype depends on the values)."""
    src = module(r"\Return \ReLU(\{ \{ c \}_{i=0}^{0} \}_{i=0}^{2}) @ \{ (j + 1)^{-1} \}_{i=0, j=0}^{0, 2} "
                 r"\where c \gets \lceil \sum_{i=1}^{2} 1 \rceil \\", r"x \in \mathbb{R}^{N}")
    assert_agrees(src, {"x": torch.zeros(2, dtype=torch.float64)})
    src = module(r"\Return \{ \{ i \}_{j=0}^{1} \}_{i=0}^{1} @ \{ \{ (j + 1)^{k} \}_{j=0}^{1} \}_{i=0}^{1} \\",
                 r"k \in \mathbb{Z}")
    assert_agrees(src, {"k": torch.tensor(-1)})
    assert_agrees(src, {"k": torch.tensor(2)})


def test_an_unread_step_of_a_group_member_passes_no_gradient_through_a_square_root():
    """Seed 16008063: in a group, c reads h[t-1], so h's last element is read by no one. The
    steps' `\\sqrt{x[t-1]}` was computed for all steps before the loop, so that element's step
    handed the square roots a zero gradient: 0 * NaN at x = -1, where the math (and the
    reference, step by step) passes nothing back. Hoisting now leaves a primitive whose
    derivative may be undefined in its step (its read is still hoisted)."""
    src = module(r"c \gets \{ \begin{cases} 4 & t = 0 \\ c[t-1] * 0.5 + z_{t} & \text{otherwise} \end{cases} "
                 r"\}_{t=0}^{|x| - 1} \where z_{t} \gets h[t-1] \\" "\n"
                 r"  h \gets \{ \begin{cases} x[0] & t = 0 \\ \tanh(c[t]) + \sqrt{x_{t - 1}} & \text{otherwise} "
                 r"\end{cases} \}_{t=0}^{|x| - 1} \\" "\n  \\Return c[0] + c[2] \\\\", "x")
    assert_agrees(src, {"x": torch.tensor([0.5, -1.0, -1.0], dtype=torch.float64)})


def test_the_sign_of_a_float_number_known_at_run_time_is_a_float():
    """Seed 20006844: `2^{2 - N}` is a Python float (1/8 for N = 5, an integer to a negative power)
    and the sign of a Python float was the integer 1 (`(x > 0) - (x < 0)`), so the module returned
    int64 where the math (and torch.sign of a tensor) gives a float."""
    src = module(r"b \gets \sign(2^{(2) - N}) \\" "\n  \\Return b \\\\", r"x \in \mathbb{R}^{N}")
    assert_agrees(src, {"x": torch.ones(5, dtype=torch.float64)})
    assert_agrees(src, {"x": torch.ones(1, dtype=torch.float64)})


def test_a_row_of_a_recurrence_s_step_known_not_to_apply_reads_nothing():
    """Seed 21000417: d's step reads `c[t+1]` in a row whose condition (`t + 1 < N`) is known per
    step and never holds here, so in the math x (through c's cube roots, NaN for x < 0) reaches
    nothing. Hoisted for all steps, the cases became a select whose masked read handed c a zero
    gradient, 0 * NaN; a cases is now left to the step, where the row is a branch not taken."""
    src = module(r"c \gets \{ \begin{cases} s & t = 0 \\ c[t-1] * 0.5 + \sqrt[3]{x[t-1]} & \text{otherwise} "
                 r"\end{cases} \}_{t=0}^{1} \\" "\n"
                 r"  d \gets \{ \begin{cases} s & t = 0 \\ d[t-1] * 0.5 + \cosh(\begin{cases} -1 & \lnot (t+1 < N) \\ "
                 r"c[t+1] & \text{otherwise} \end{cases}) & \text{otherwise} \end{cases} \}_{t=0}^{1} \\"
                 "\n  \\Return d[1] \\\\", r"x \in \mathbb{R}^{N}, s")
    assert_agrees(src, {"x": torch.tensor([-0.9, 2.0]), "s": torch.tensor(0.3)})


def test_an_integer_power_whose_exponent_may_be_negative_is_a_float_on_every_path():
    """Seed 21000734: the empty sum `\\sum_{i=2}^{1} 2^{\\lfloor X[2-i][1] \\rfloor}` was int64 in the
    module and float64 in the reference, which probed the body's values; and a batch whose
    exponents were all positive was int64 where one negative exponent made it float. Whether an
    integer power is an integer is now decided from the source (kokoyi.compiler.signs): an
    exponent whose sign is data makes a float, on every path and in the reference alike."""
    src = module(r"\Return \sum_{i=2}^{1} (2^{\lfloor X[3 - 1 - i][1] \rfloor}) \\", "X")
    assert_agrees(src, {"X": torch.randn(3, 2, dtype=torch.float64)})
    src = module(r"\Return 2^{k} + \sum_{i=0}^{2} 3^{i}, \sum_{i=0}^{|x|} 2^{i} \\", r"x, k \in \mathbb{Z}")
    for k in (-2, 0, 3):
        assert_agrees(src, {"x": torch.zeros(2), "k": torch.tensor(k)})
    kokoyi.compile(src, "powers.kyi")
    powers, ks = kokoyi.symbol["P"], torch.tensor([1, 2])
    for out, k in ((powers(Host(None), torch.zeros(2), torch.tensor(1)), 1),
                   (powers(Host(None), torch.zeros(2, 2), ks, batch_level=[1, 1]), ks)):
        assert out[0].dtype == torch.float32 and out[1].dtype == torch.int64
        assert torch.equal(out[0], torch.as_tensor(2.0 ** k + 13, dtype=torch.float32)) and torch.equal(out[1], torch.full_like(out[1], 7))


def test_an_earlier_element_read_in_a_row_that_does_not_apply_passes_no_gradient():
    """Seed 22001220: eta[2] is a cases on the data whose second row, `\\cosh(eta[t-2])`, does
    not apply; eta[0] = log(x[0]) is NaN for x[0] < 0. The row's own derivative there,
    sinh(NaN), is discarded with the row, so eta[0] gets nothing from it (its own derivative
    1/x[0] is defined). A read of an earlier element of the recurrence took no row mask, as a
    read of any other name does, so the module handed x[0] 0 * NaN."""
    src = module(r"\eta \gets \{ \begin{cases} \log(x[0]) & t = 0 \\ x[1] & t = 1 \\ "
                 r"\begin{cases} 1.0 & x_{t} < 1 \\ \cosh(\eta[t-2]) & \text{else} \end{cases} & \text{otherwise} "
                 r"\end{cases} \}_{t=0}^{2} \\" "\n" r"  \Return \eta[-1] \\", "x")
    assert_agrees(src, {"x": torch.tensor([-0.4, 1.4, 0.02], dtype=torch.float64)})
    assert_agrees(src, {"x": torch.tensor([0.4, 1.4, 2.0], dtype=torch.float64)})


def test_smooth_l1_of_an_infinite_difference_has_the_linear_pieces_gradient():
    """Seed 25002577, a reference defect: the reference wrote \\SmoothL1 as a where over both
    pieces, so at an infinite difference the quadratic piece, not taken, handed it 0 * inf = NaN;
    the module's F.smooth_l1_loss (the built-in's definition) gives the linear piece's sign.
    (`(\\lfloor \\eta[0] \\rfloor + 1)^{-1}` is 1/0 = inf for -1 <= eta[0] < 0.)"""
    src = module(r"\eta \gets \{ \begin{cases} x[t+1] & t < 1 \\ (\lfloor \eta[t-1] \rfloor + 1)^{-1} & "
                 r"\text{otherwise} \end{cases} \}_{t=0}^{1} \\" "\n"
                 r"  \Return \minimum(\SmoothL1(\eta, x), x[1]), \SmoothL1(\eta, x) \\", "x")
    assert_agrees(src, {"x": torch.tensor([0.7428361773490906, -0.7337818741798401])})
    assert_agrees(src, {"x": torch.tensor([0.5, 0.25])})


def test_the_sign_of_a_value_zero_up_to_rounding_is_ill_conditioned():
    """Seed 25006486, a reference defect: `\\sign(\\Var(h + b))` with every element of h + b
    equal is the sign of 0 in the math, but of a rounding error (1e-34 or exactly 0, with the
    order of summing), so a batch gave 0 where the reference gave 1. The reference now notes
    the sign of a float as a comparison with 0, as it does `x > 0`: a value within rounding of
    0 (not 0 itself) makes the program ill-conditioned there, as floor and ceil do within
    rounding of an integer."""
    def conditions(body: str, value: float) -> list:
        found: list = []
        reference.run(module(body, "s"), "P", [torch.tensor(value, dtype=torch.float64)], conditions=found)
        return found

    assert conditions(r"\Return \sign(s - 0.1 - 0.2 + 0.3) \\", 0.0) == [math.inf]  # -5.6e-17
    assert conditions(r"\Return \lceil s - 0.1 - 0.2 \rceil \\", 0.3) == [math.inf]  # -2.8e-17
    assert conditions(r"\Return \sign(s) + \lfloor s \rfloor \\", 0.0) == []  # exactly 0
    assert conditions(r"\Return \sign(s) + \lfloor s \rfloor \\", 1e-3) == []


def test_smooth_l1_of_a_nan_difference_has_a_nan_gradient():
    """Seed 26005484: after the fix for seed 25002577 the reference's \\SmoothL1 passed 0 to a
    NaN difference (the cube root of a negative number), where the built-in's definition,
    torch's smooth_l1_loss, gives NaN; the reference now calls that definition."""
    src = module(r"\Return \SmoothL1(\{ \sqrt[3]{\begin{cases} x[i - 1] & i - 1 \geq 0 \\ 2 & \text{otherwise} "
                 r"\end{cases}} \}_{i=0}^{|x| - 1}, x) \\", "x")
    assert_agrees(src, {"x": torch.tensor([-1.0301567316055298, 0.34020450711250305])})


def test_a_call_in_a_row_not_taken_keeps_the_kind_of_its_function():
    """Seed 28006171, a reference defect: `sq(\\eta[t-1])` in the row a recurrence's first step
    does not take could not be computed there (element -1 does not exist), and the reference
    then took the call to be floating, so the whole recurrence became float where every row is
    an integer (the compiled paths: int64). The reference now types such a call by its
    one-line function's body with parameters of the arguments' kinds."""
    src = ("sq(u) \\gets u * u \\\\\n" + module(
        r"\eta \gets \{ \begin{cases} \sum_{i=t}^{|x| - 1} (sq((3))) & t = 0 \\ \sum_{i=t}^{|x| - 1} (sq(\eta[t-1])) "
        r"& \text{otherwise} \end{cases} \}_{t=0}^{|x| - 1} \\" "\n  " r"\Return \eta, \LogSumExp(\eta) \\", "x"))
    assert_agrees(src, {"x": torch.tensor([0.5, -2.3, -0.1, -0.9])})
    assert_agrees(src, {"x": torch.tensor([0.5, -2.3, -0.1, -0.9, 0.2])})  # eta[4] wraps around in int64


def test_functions_of_python_numbers_that_overflow_are_infinite():
    """Seed 29002132, a runtime defect: `\\sinh(\\exp(2^{|y|}))` is math on Python numbers
    (sizes are Python ints); exp(16) then sinh of it overflows, and kk.sinh's overflow helper
    (inf, as torch gives) had been shadowed by one of the same name for powers, so the call
    raised TypeError on every path."""
    src = module(r"\Return \sinh(\exp(2^{|y|})), \cosh(-\exp(2^{|y|})) \\", "x, y")
    assert_agrees(src, {"x": torch.tensor([1.0, -1.0, -0.0]), "y": torch.tensor([0.1, 0.3, -0.7, -1.7])})


def test_a_discarded_row_links_only_the_rows_of_its_inner_cases_that_are_computed():
    """Seed 29002110, a reference defect: a discarded data row links what it reads to a zero
    gradient (NaN where their own derivative is undefined: choices.md#gradients-through-cases),
    but the reference linked every row of a cases inside it, also those after a Python condition
    that holds (`2 > 1.5`), which compiled code never computes; so `h`, the cube root of a
    negative number read only there, gave y a NaN gradient in the reference alone."""
    src = module(r"h \gets \{ \begin{cases} \sqrt[3]{y[t]} & t < 1 \\ (1) - (1) & \text{otherwise} \end{cases} "
                 r"\}_{t=0}^{|y| - 1} \\" "\n  "
                 r"\Return \begin{cases} x[2] & \frac{1}{2} \|x\|^2 < \pi \\ \begin{cases} y[-1] & 2 > 1.5 \\ "
                 r"x[-2] & h[-1] > y[-2] \\ \|h\|_\infty & \text{otherwise} \end{cases} & \text{else} \end{cases} \\",
                 r"x \in \mathbb{R}^{N}, y")
    assert_agrees(src, {"x": torch.tensor([0.027, -0.17, -0.81]), "y": torch.tensor([-0.85, 1.99])})
    # the same row with a data condition first: every inner row is computed, h's NaN counts
    src2 = src.replace(r"2 > 1.5", r"y[0] > 5")
    assert_agrees(src2, {"x": torch.tensor([0.027, -0.17, -0.81]), "y": torch.tensor([-0.85, 1.99])})


def test_a_gradient_of_cancelling_terms_is_zero_up_to_the_rounding_of_the_largest_gradient():
    """Seed 30003195, a checker defect: d/ds of `s + (x - s)` under sinh(cosh(...)) is terms of
    about 1e10 cancelling; the float64 reference left -2.3e-6, compiled code 0, and the checker
    scaled its tolerance by that gradient alone. It now allows CANCELLING_ULPS ulps of the
    largest gradient of the same weighted sum, and still sees a real difference beside it."""
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    s = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    state = torch.Generator().manual_seed(3).get_state()
    got = [1e10 * x + 0.0 * s]
    assert differential._check_gradients(got, [1e10 * x + 2.3e-6 * s], [x, s], (), state) is None
    found = differential._check_gradients(got, [1e10 * x + 1e-2 * s], [x, s], (), state)
    assert found is not None and found[0] == "gradient" and "input 1" in found[1]


def test_an_exponent_of_numbers_alone_is_known_by_its_value():
    """Seed 32000812: `2^{(1) - 0}` was int64 in compiled code (the exponent folds to the number
    1) and float32 in the reference (the sign rule did not know `-`); an exponent of numbers
    alone now has the sign of its value on both sides (signs.constant)."""
    src = module(r"\Return 2^{(1) - 0}, 2^{3 - 5}, 3^{-(2 - 4)} \\", "x")
    assert_agrees(src, {"x": torch.tensor([0.5, -1.0])})


def test_a_sine_of_a_huge_argument_is_ill_conditioned():
    """Seed 32006362, a checker defect: H[3] = 1.5^(4^4) as a product of products is 1.2e45, one
    ulp apart in compiled code (torch.prod's order) and the reference (left to right), and
    sin of it is then any number in [-1, 1]. The inputs do not reach H, so the moved-inputs
    second opinion saw nothing; the reference now records max |x| of a sine, cosine or tangent
    as a condition (it loosens nothing where |x| eps is within the tolerance)."""
    src = module(r"H \gets \{ \begin{cases} \prod(\{ 1.5 \}_{i=0}^{N - 1}) & t = 0 \\ "
                 r"\prod(\{ H[t-1] \}_{i=0}^{N - 1}) & \text{otherwise} \end{cases} \}_{t=0}^{N - 1} \\" "\n  "
                 r"\Return \GELU(\sin(H[3]) + 1), \sin(x[0] * 10) \\", r"x \in \mathbb{R}^{N}")
    assert_agrees(src, {"x": torch.tensor([1.7, 0.22, -0.17, -1.4], dtype=torch.float64)})
    conditions = []
    reference.run(module(r"\Return \sin(x[0]) + \cos(x) \\", "x"), "P", [torch.tensor([40.0, -3.0])],
                  conditions=conditions)
    assert conditions == [40.0, 40.0]  # each call's largest argument


def test_an_initial_element_that_may_fail_is_not_lifted_out_of_a_row_that_never_applies():
    """Seed 34000247 (after call4's initial elements inside the element, batch/initial.py
    _lifted): `cases(x[k] if t = 0; H[t-1])` sits in a row the first step never takes (`t < 1`
    takes it), so x[k] is never read; lifted as H's initial element, it was computed before the
    loop and raised "index -4 is out of range" on batched paths. An initial element that may
    fail is no longer lifted."""
    src = module(r"H \gets \{ \begin{cases} \|x\| & t < 1 \\ \begin{cases} x[k] & t = 0 \\ H[t-1] & \text{otherwise} "
                 r"\end{cases} & \text{otherwise} \end{cases} \}_{t=0}^{3 - 1} \\" "\n  " r"\Return H \\",
                 r"x \in \mathbb{R}^{N}, k \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.tensor([0.5, -1.0, 2.0]), "k": torch.tensor(-4)})


@pytest.mark.parametrize("condition", [r"-6 \geq 0", r"\pi \leq 1", r"a > 3", r"2 \pi > 7", r"2^3 > 9", r"\sqrt{4} > 3",
                                       r"\sqrt{N} > 100", r"\exp(N) > 1e9", r"\max(N, 2) > 100",
                                       r"\lfloor 2.5 \rfloor > 3", r"\sqrt[3]{8} > 3"])
@pytest.mark.parametrize("row", ["x[0]", "2.5"])
def test_a_cases_of_numbers_on_python_conditions_is_a_python_number(condition, row):
    """Seed 36004950, a reference defect: `b <- cases(h[-6] if -6 >= 0; 1.5 otherwise)` is the
    number 1.5 in compiled code (simplify drops the row whose condition folds to false), so
    `\\gamma >= b` with \\gamma a Python number is a Python test and the row it does not take
    (`\\sqrt{s}`, s < 0) is never computed: gradient 0. The reference took every cases for a
    tensor, so the test was data, the row computed and discarded, and the gradient NaN. Its
    model of Python values now knows cases (Python where every row that may be taken is),
    powers, square roots and the element-wise built-ins, and folds conditions by simplify's
    own rule (simplify.fold)."""
    src = module(r"a \gets 2 \\" "\n  " r"h \gets \{ \sqrt{s} \}_{t=0}^{N-1} \\" "\n  "
                 rf"b \gets \begin{{cases}} {row} & {condition} \\ 1.5 & \text{{otherwise}} \end{{cases}} \\" "\n  "
                 r"\Return \begin{cases} \sqrt{s} + h[0] & \gamma \geq b \\ 1 & \text{else} \end{cases} \\",
                 r"x \in \mathbb{R}^{N}, s; \gamma")
    assert_agrees(src, {"x": torch.tensor([0.5, -1.0, 2.0]), "s": torch.tensor(-2.0)}, params=(1.288,))


_INVERTED_STEPS = [
    r"h \gets \{ \begin{cases} 1.5 & t = 0 \\ \sum((\mathbf{I}_{2} + h_{t-1} * \{ 1 \}_{i=0, j=0}^{1, 1})^{-1} @ x) "
    r"& \text{otherwise} \end{cases} \}_{t=0}^{2} \\" "\n  " r"\Return h \\",
    # a group: a's step inverts a matrix of b's earlier element, b's rank is inferred after a's
    r"a \gets \{ \begin{cases} 1.5 & t = 0 \\ \sum((\mathbf{I}_{2} + b_{t-1} * \{ 1 \}_{i=0, j=0}^{1, 1})^{-1} @ x) "
    r"& \text{otherwise} \end{cases} \}_{t=0}^{2} \\" "\n  "
    r"b \gets \{ \begin{cases} 0.5 & t = 0 \\ a_{t-1} + 1 & \text{otherwise} \end{cases} \}_{t=0}^{2} \\" "\n  "
    r"\Return a, b \\",
]


@pytest.mark.parametrize("body", _INVERTED_STEPS)
def test_a_matrix_inverted_in_a_recurrence_step_is_inverted_on_every_path(body):
    """Seed 37002697, a compiler defect (ranks.py): `(I + h_{t-1} J)^{-1} @ x` in a step that
    reads earlier elements was 1/x element by element (`torch.pow(A, -1)`), the first step's
    (which reads none) a solve: rank inference met h_{t-1} before h's rank was known. The
    recurrences' elements are now inferred again after the module's statements."""
    assert_agrees(module(body, r"x \in \mathbb{R}^{2}"), {"x": torch.tensor([0.5, -1.0])})


@pytest.mark.parametrize("literal", ["-1", "1", "(-2)"])
def test_a_row_not_taken_that_builds_a_negative_literal_is_a_float(literal):
    """Seed 39000666, a reference defect: `\\{ -1 \\}_{i=0}^{N-1}` is a float vector (a set-builder
    of a number as written, LANGUAGE.md 6a) on every path; the reference computed it so, but
    its static kind of a row that applies nowhere (is_float) took only `1`, not `-1`, for a
    number, so cases(\\{-1\\} if data; \\{ argmax ... \\}) was int64 there. One rule now
    (_written_number) for both."""
    src = module(rf"\Return \begin{{cases}} \{{ {literal} \}}_{{i=0}}^{{N - 1}} & k > 0 \\ "
                 r"\{ \argmax_{j=i}^{1} (2) \}_{i=0}^{N - 1} & \text{otherwise} \end{cases} \\",
                 r"x \in \mathbb{R}^{N}, k \in \mathbb{Z}")
    assert_agrees(src, {"x": torch.tensor([0.5, -1.0]), "k": torch.tensor(-2)})


def test_the_ceiling_of_the_determinant_of_a_singular_matrix_is_ill_conditioned():
    """Seed 39004051, a checker defect: det of a rank-one matrix is 0 up to rounding, whose sign
    depends on the LU's order (batched or not), so its ceiling is 1 or 0. The reference records
    an infinite condition for it; the checker excused floats alone."""
    src = module(r"\Return \lceil \det(\{ \{ \sqrt{2} (y_{i}) \}_{j=0}^{|y| - 1} \}_{i=0}^{|y| - 1}) \rceil \\", "y")
    prog = differential.program(src, {"y": torch.tensor([-1.9949544668197632, 0.0707709863781929])})
    findings, stats = differential.check(prog)
    assert not findings and stats.paths >= 3
    assert differential._within_conditioning(torch.tensor([1, 0]), torch.tensor([0, 0]), math.inf)
    assert not differential._within_conditioning(torch.tensor([1, 0]), torch.tensor([0, 0]), 1e6)


def test_the_gradient_of_a_diagonal_of_a_gelu_is_computed_on_every_path():
    """Seed 41000333 (a checker error, then a runtime defect): the gradient that a diagonal
    hands back is strided, and torch's CPU GELU backward (oneDNN) raised "could not construct a
    memory descriptor using strides" on the batched paths (pytorch#112006). kk.gelu hands its
    backward a contiguous gradient; a module's backward that raises is now a finding ("crash"),
    not a fault of the checker."""
    src = module(r"\Return \operatorname{diag}(\operatorname{diag}(\GELU(\{ x[|x| - 1 - i] \}_{i=0}^{1})))[0] \\", "x")
    assert_agrees(src, {"x": torch.tensor([0.3, -1.0, 2.0, 0.5])})
