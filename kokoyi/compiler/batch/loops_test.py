"""A recurrence's loop: what is computed before it (batch/hoist.py, licm.py), what one step
computes (fuse.py), and what is kept after it. These check the kernel's structure (counts
of work, not time); the values on every path are checked against the reference interpreter
by tests/test_differential.py, the speed by benchmarks/zoo.py."""
from __future__ import annotations

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.batch_test import BATCHED_VECTOR, kernel

BATCHED_SEQUENCE = (("tensor", 2, False), True)  # x[t] a vector per step, per sample
MATRIX = ("tensor", 2, False)

LSTM = r"""\Module{M}{x; W_f, W_i, W_c, W_o, h_0, c_0}
  c \gets \{ f_t \odot \begin{cases} c_0 & t = 0 \\ c[t-1] & \text{otherwise} \end{cases} + i_t \odot \tanh(W_c @ z_t) \}_{t=0}^{|x|-1}
      \where z_t \gets \Concat(\begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}, x[t]),
              f_t \gets \Sigmoid(W_f @ z_t), i_t \gets \Sigmoid(W_i @ z_t) \\
  h \gets \{ \Sigmoid(W_o @ \Concat(\begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}, x[t])) \odot \tanh(c[t]) \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule"""


def loop(k: K.Kernel) -> tuple[list, K.For]:
    """(the statements of the block that holds the loop, before it; the loop)."""
    def find(block):
        for i, s in enumerate(block):
            if isinstance(s, K.For):
                return block[:i], s
            for inner in (s.then, s.orelse) if isinstance(s, K.If) else ():
                found = find(inner)
                if found:
                    return found
        return None
    return find(k.body)


def ops(block: list) -> list[str]:
    out = []
    for s in block:
        if isinstance(s, K.Assign):
            out.append(s.op)
            if s.op == "statics":  # values of sizes alone, kept across calls (batch/statics.py)
                out += ops(s.attrs["body"])
        elif isinstance(s, K.If):
            out += ops(s.then) + ops(s.orelse)
        elif isinstance(s, K.For):
            out += ["for"] + ops(s.pre) + ops(s.body)
    return out


def test_an_lstm_step_makes_one_product_and_reads_its_input_from_before_the_loop():
    k = kernel(LSTM, (BATCHED_SEQUENCE,), (MATRIX,) * 4 + (("tensor", 1, False),) * 2)
    before, for_ = loop(k)
    step = ops(for_.body)
    # the loop runs where torch's LSTM cannot (batch/lstm.py): its step is still fast
    assert ops(k.body).count("lstm_sequence") == 1
    # the four gates' products of Concat(h[t-1], x[t]): one product with the stacked matrices,
    # the x[t] block's for all steps before the loop (batch/project.py): no concatenation
    assert step.count("projected_product") == 1 and "linear" not in step and "cat" not in step, step
    # x[t] for all steps, then a row per step: unbound only where the loop runs (torch's LSTM reads x whole)
    assert ops(for_.pre) == ["unbind", "project_steps"] and "fuse_rows" in ops(k.body)
    assert "windows" in ops(k.body) and ops(k.body).count("unbind") == 1
    # the three sigmoid gates are next to each other in the product: one sigmoid for them (in it)
    assert "sigmoid" not in step and step.count("tanh") == 2 and step.count("mul") == 3


def test_only_the_read_states_are_kept():
    k = kernel(LSTM, (BATCHED_SEQUENCE,), (MATRIX,) * 4 + (("tensor", 1, False),) * 2)
    stacks = [s for s in k.body if isinstance(s, K.Assign) and s.op == "stack_states"]
    assert [s.out for s in stacks] == ["h"]  # c is never read whole: its stack is dropped
    last = kernel(r"""\Module{M}{x; W}
  h \gets \{ \begin{cases} x[0] & t = 0 \\ \tanh(W @ h[t-1] + x[t]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h[|x|-1] \\
\EndModule""", (BATCHED_SEQUENCE,), (MATRIX,))
    assert "stack_states" not in ops(last.body) and ops(last.body).count("read_states") == 1


def test_a_read_under_a_branch_of_the_step_stays_in_the_step():
    # x[2t] applies only where 2t < |x|: computed for all steps it would read past the end
    k = kernel(r"""\Module{M}{x}
  \eta \gets \{ \begin{cases} x[0] & t < 1 \\ \begin{cases} \eta_{t-1} & \lnot (2t < |x|) \\ x[2t] & \text{otherwise} \end{cases} & \text{otherwise} \end{cases} \}_{t=0}^{|x| - 1} \\
  \Return \eta \\
\EndModule""", (BATCHED_VECTOR,))
    before, for_ = loop(k)
    assert "unbind" not in ops(before) and "unbind" not in ops(for_.pre)


def test_work_that_does_not_depend_on_the_state_is_done_once_for_all_steps():
    k = kernel(r"""\Module{M}{x; W, U}
  h \gets \{ \begin{cases} \tanh(W @ x[0]) & t = 0 \\ \tanh(W @ x[t] + U @ h[t-1]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule""", (BATCHED_SEQUENCE,), (MATRIX, MATRIX))
    before, for_ = loop(k)
    assert ops(before).count("linear") == 1 and ops(before).count("unbind") == 1
    step = ops(for_.body)
    assert step.count("linear") == 1 and "step_item" in step  # U @ h[t-1] per step; W @ x[t] read


def test_loop_invariant_code_runs_once_before_the_loop():
    k = kernel(r"""\Module{M}{x; W}
  h \gets \{ \begin{cases} x[0] & t = 0 \\ h[t-1] * \Sigmoid(\sum(W)) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule""", (BATCHED_SEQUENCE,), (MATRIX,))
    _, for_ = loop(k)
    assert "sigmoid" not in ops(for_.body) and "sigmoid" in ops(for_.pre)


def test_hoist_info_free_variables_as_a_naive_walk_finds_them():
    """Hoist.info's free variables (a child's set shared up a chain of nodes, bound names taken
    out at their binder) are the names read and not bound on the way down."""
    from kokoyi.compiler import ir
    from kokoyi.compiler.batch.hoist import Hoist

    def naive(e, bound=frozenset()):
        if isinstance(e, ir.Var):
            return set() if e.name in bound else {e.name}
        inner = bound | ({e.name} if isinstance(e, ir.Let) else set(e.params) if isinstance(e, ir.Lambda) else set())
        out = set()
        for c in ir.children(e):
            parts = [c.lower, c.upper] if isinstance(c, (ir.Axis, ir.Slice)) else [c]
            for x in parts:
                if x is not None:
                    # (a let's value is outside its binding, as Hoist.info has it: a let binds in both)
                    out |= naive(x, inner)
        return out

    x, y, z, f = (ir.Var(n) for n in "xyzf")
    axis = ir.Axis("i", ir.Lit(0), ir.Prim("sub", (z, ir.Lit(1))))
    exprs = [
        ir.Prim("neg", (ir.Prim("exp", (ir.Prim("neg", (y,)),)),)),  # a chain: one set all the way up
        ir.Let("x", y, ir.Apply(f, (x, z))),
        ir.Apply(ir.Lambda(("x",), ir.Prim("add", (x, y))), (z,)),
        ir.Build((axis,), ir.Take(y, (ir.Iota(axis), ir.Slice(None, x)))),
        ir.Lit(1),
    ]
    h = object.__new__(Hoist)
    h._info, h.members = {}, set()
    for e in exprs:
        assert set(h.info(e)[2]) == naive(e), ir.dump(e)
    assert h.info(exprs[0])[2] is h.info(exprs[0].args[0].args[0])[2]  # (shared, not copied)
