"""batch: core IR + a call signature -> kernel. These check the kernel's structure (one scan,
one loop, one mean, guards on reads); values on every path are checked against the reference
interpreter by tests/test_differential.py and tests/test_correctness.py."""
from __future__ import annotations

import pytest

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch import Unsupported, batch_function
from kokoyi.compiler.emit import torch_eager
from kokoyi.compiler.pipeline import at_call, compile_unit

VECTOR, BATCHED_VECTOR, NUMBER = (("tensor", 1, False), False), (("tensor", 1, False), True), (("number", False), False)


def kernel(text: str, inputs, params=(), name="M") -> K.Kernel:
    state = compile_unit(text, "b.kyi", stop_after="rewrite")
    functions = {f.name: f for f in state.ir}
    fn = at_call(functions[name], functions.get)
    return batch_function(fn, inputs, params, "k", dtype="torch.float32", source=state.source, globals_info={})


def ops(k: K.Kernel) -> list[str]:
    out = []

    def walk(block):
        for s in block:
            if isinstance(s, K.Assign):
                out.append(s.op)
                if s.op == "statics":  # values of sizes alone, kept across calls (batch/statics.py)
                    walk(s.attrs["body"])
            elif isinstance(s, K.If):
                walk(s.then)
                walk(s.orelse)
            elif isinstance(s, K.For):
                out.append("for")
                walk(s.body)
    walk(k.body)
    return out


RETURNS = r"\Module{M}{r; \gamma} \Return \{ \sum_{i=0}^{|r|-1-t} BODY \}_{t=0}^{|r|-1} \\ \EndModule"


def test_the_times_one_variant_runs_the_same_scan_as_the_plain_form():
    plain = kernel(RETURNS.replace("BODY", r"\gamma^i * r[t+i]"), (BATCHED_VECTOR,), (("number", False),))
    ones = kernel(RETURNS.replace("BODY", r"\gamma^i * (r[t+i] * 1)"), (BATCHED_VECTOR,), (("number", False),))
    assert K.dump(plain) == K.dump(ones)
    assert "discounted_window" in ops(plain) and "reduce_axis" not in ops(plain)


def test_a_batched_discount_factor_keeps_the_written_sum():
    # gamma batched per sample: the one-scan form needs one gamma, so the sum is computed as written
    k = kernel(r"\Module{M}{r, \gamma} \Return \{ \sum_{i=0}^{|r|-1-t} \gamma^i * r[t+i] \}_{t=0}^{|r|-1} \\ \EndModule",
               (BATCHED_VECTOR, (("tensor", 0, False), True)))
    assert "discounted_window" not in ops(k) and "reduce_axis" in ops(k)


def test_a_recurrence_is_one_loop():
    k = kernel(r"""\Module{M}{x; W}
  h \gets \{ \begin{cases} 0 & t = 0 \\ \tanh(W * h[t-1] + x[t]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule""", (BATCHED_VECTOR,), (("number", False),))
    assert ops(k).count("for") == 1 and "stack_states" in ops(k)


def test_a_value_the_source_computes_twice_is_computed_once():
    k = kernel(r"\Module{M}{x} \Return \Mean(x) * \Mean(x) + \Mean(x) \\ \EndModule", (BATCHED_VECTOR,))
    assert ops(k).count("mean_last") == 1


def test_a_read_in_a_cases_row_is_guarded_by_the_row():
    k = kernel(r"\Module{M}{x, k} \Return \begin{cases} x[k] & x[0] > 0 \\ 0 & \text{otherwise} \end{cases} \\ \EndModule",
               (BATCHED_VECTOR, (("tensor", 0, True), True)))
    (read,) = [s for s in k.body if isinstance(s, K.Assign) and s.op == "gather"]
    (condition,) = [s for s in k.body if isinstance(s, K.Assign) and s.op == "gt"]
    assert read.args[5] == (K.Ref(condition.out),)  # checked only where the row applies


def test_loop_reads_are_views():
    k = kernel(r"\Module{M}{x} \Return \{ x[i+1] - x[i] \}_{i=0}^{|x|-2} \\ \EndModule", (BATCHED_VECTOR,))
    assert ops(k).count("windows") == 2 and "gather" not in ops(k)


def test_indexing_a_number_is_unsupported():
    with pytest.raises(Unsupported, match="indexing a number"):
        kernel(r"\Module{M}{u} \Return u[0] \\ \EndModule", (NUMBER,))


def test_the_emitted_code_compiles_and_maps_lines_back():
    k = kernel(r"""\Module{M}{x}
  a \gets x + 1 \\
  \Return a * 2 \\
\EndModule""", (BATCHED_VECTOR,))
    code, line_map = torch_eager.emit(k)
    compile(code, "<k>", "exec")
    lines = code.splitlines()
    (a_line,) = [i + 1 for i, text in enumerate(lines) if text.strip().startswith("a = ")]
    assert line_map[a_line] == 2


def test_an_error_inside_a_function_of_another_unit_names_that_unit():
    import torch

    import kokoyi
    from kokoyi.test_utils import Host

    kokoyi.compile("f(x) \\gets x[10] \\\\\n", filename="lib.kyi")
    kokoyi.compile("\n\n\\Module{F}{x}\n  \\Return f(x) \\\\\n\\EndModule\n", filename="main.kyi")
    with pytest.raises(kokoyi.KokoyiRuntimeError, match=r"^lib\.kyi:1:12: index 10 is out of range for `x`"):
        Host(None, kokoyi.symbol["F"])(torch.randn(3, 4), batch_level=[1])


# ---- the language's second round (issue 13) ----------------------------------------------------
MATRIX = (("tensor", 2, False), True)


def test_a_recurrence_group_is_one_loop_computing_every_member_per_step():
    k = kernel(r"""\Module{M}{x; W}
  c \gets \{ \begin{cases} 0 & t = 0 \\ c[t-1] + \tanh(W * h[t-1]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  h \gets \{ c[t] * x[t] \}_{t=0}^{|x|-1} \\
  \Return h, c \\
\EndModule""", (BATCHED_VECTOR,), (("number", False),))
    assert ops(k).count("for") == 1 and ops(k).count("stack_states") == 2


def test_linear_algebra_is_batched_over_the_leading_axes():
    k = kernel(r"""\Module{M}{A, b}
  \Return \log \det(A) + \operatorname{tr}(A) + b @ (A^{-1} @ b), \operatorname{diag}(\operatorname{diag}(A)) + \mathbf{I}_{|b|} \\
\EndModule""", (MATRIX, BATCHED_VECTOR))
    used = ops(k)
    for op in ("logdet", "trace", "solve_vector", "diagonal", "diag_embed", "eye"):
        assert op in used, (op, used)
    assert "inverse" not in used  # A^{-1} @ b is a solve


def test_a_matrix_literal_stacks_its_entries_and_a_log_base_is_exact():
    k = kernel(r"""\Module{M}{\theta, x}
  \Return \begin{bmatrix} \cos\theta & -\sin\theta \\ \sin\theta & \cos\theta \end{bmatrix} @ x, \log_2 x \\
\EndModule""", ((("tensor", 0, False), True), BATCHED_VECTOR))
    (matrix,) = [s for s in k.body if isinstance(s, K.Assign) and s.op == "matrix"]
    assert matrix.args[1:3] == (2, 2)
    assert "log2" in ops(k)


def test_the_prologue_and_unused_values_that_cannot_fail_are_dropped():
    k = kernel(r"\Module{M}{z} s \gets \Softmax(z) \\ \Return \sum(z) \\ \EndModule", (BATCHED_VECTOR,))
    assert ops(k) == ["reduce_sum_last"]  # no device, no batch size, no softmax
    # a constant tensor is made on the device: the device stays
    k = kernel(r"\Module{M}{z} \Return \begin{cases} 1 & \text{if } \sum(z) > 0 \\ z_0 & \text{otherwise} \end{cases} \\ \EndModule",
               (BATCHED_VECTOR,))
    assert "constant" in ops(k) and ops(k)[0] == "device_of"


def test_an_unused_maximum_is_only_its_check_that_the_axis_is_not_empty():
    k = kernel(r"\Module{M}{z} m \gets \max(z) \\ \Return \sum(z) \\ \EndModule", (BATCHED_VECTOR,))
    assert ops(k) == ["nonempty_last", "reduce_sum_last"]
    assert "kx.nonempty_last(z)" in torch_eager.emit(k)[0]


def test_a_rule_never_changes_a_statement_it_emitted(monkeypatch):
    """The huber rule turns the difference it reads into a `difference` statement that clean-up
    drops (batch/fast.py `_difference`): a new statement in the old one's place; the one emitted
    keeps its op."""
    from kokoyi.compiler.batch import driver

    emitted = []
    emit = driver.Batcher.emit

    def recording(self, *args, **kwargs):
        ref = emit(self, *args, **kwargs)
        emitted.append((self.block[-1], self.block[-1].op))
        return ref

    monkeypatch.setattr(driver.Batcher, "emit", recording)
    text = (r"\Module{P}{q, y} \delta \gets q - y \\ \Return \begin{cases} \frac{1}{2} \delta^2 & \text{if } "
            r"|\delta| < 1 \\ |\delta| - \frac{1}{2} & \text{otherwise} \end{cases} \\ \EndModule")
    scalar = (("tensor", 0, False), False)
    k = kernel(text, [scalar, scalar], name="P")
    assert "huber_rows" in ops(k)
    assert any(op == "sub" for _, op in emitted)
    assert all(s.op == op for s, op in emitted)


def test_a_shifted_read_in_the_otherwise_row_is_a_view_not_a_gather():
    # y[t-1] under cases on t: guards that vary with t, an index in Python's range everywhere
    k = kernel(r"""\Module{M}{y \in \mathbb{Z}^{n}}
      \Return \{ \begin{cases} 7 & t = 0 \\ y[t-1] & \text{otherwise} \end{cases} \}_{t=0}^{|y|-1} \\
    \EndModule""", ((("tensor", 1, True), True),))
    assert "windows" in ops(k) and "gather" not in ops(k)
