"""A recurrence whose base case is its general case applied to an initial element starts its
loop at the first step (batch/initial.py, sequences.py): the form matched, the first step no
longer computed apart, values and gradients against hand-written loops, and the forms left
to the first step apart."""
from __future__ import annotations

import pytest
import torch

import kokoyi
from kokoyi.compiler import ir
from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.batch_test import BATCHED_VECTOR, kernel
from kokoyi.compiler.batch.initial import initial_elements
from kokoyi.compiler.batch.loops_test import BATCHED_SEQUENCE, MATRIX, loop, ops
from kokoyi.compiler.pipeline import compile_unit
from kokoyi.test_utils import Host

VECTOR = ("tensor", 1, False)

# a GRU-like cell: the first step is the cell of h_0
CELL = r"""\Module{M}{x, h_0; W, U}
  h \gets \{ \begin{cases} \tanh(W @ x[t] + U @ h_0) & t = 0 \\ \tanh(W @ x[t] + U @ h[t-1]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule"""

# a group: a reads b's earlier element (b_0 before the first), b reads a's current and earlier ones
GROUP = r"""\Module{G}{x, a_0, b_0}
  a \gets \{ \begin{cases} \tanh(x[t] + b_0) & t = 0 \\ \tanh(x[t] + b[t-1]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  b \gets \{ \begin{cases} a[t] * a_0 + 1 & t = 0 \\ a[t] * a[t-1] + 1 & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return a + b \\
\EndModule"""


def _recur(text: str, name: str = "M") -> ir.Recur:
    state = compile_unit(text, "b.kyi", stop_after="rewrite")
    fn = next(f for f in state.ir if f.name == name)
    return next(n for n in ir.walk(fn.body) if isinstance(n, (ir.Recur, ir.RecurGroup)))


def _matched(text: str, name: str = "M"):
    e = _recur(text, name)
    names, elements = ((e.name,), (e.element,)) if isinstance(e, ir.Recur) else (e.names, e.elements)
    return initial_elements(names, e.axis, elements, 0)


def test_the_form_is_matched_with_one_initial_element_per_member():
    generals, inits = _matched(CELL)
    assert list(inits) == ["h"] and inits["h"] == ir.Var("h_0") and len(generals) == 1
    _, inits = _matched(GROUP, "G")
    assert inits == {"b": ir.Var("b_0"), "a": ir.Var("a_0")}


@pytest.mark.parametrize("element", [
    r"\begin{cases} x[0] & t = 0 \\ \tanh(x[t] + h[t-1]) & \text{otherwise} \end{cases}",  # another base
    r"\begin{cases} \tanh(x[t] + h_0) & t = 0 \\ \tanh(x[t] + h[t-1] + h[t-1]) & \text{otherwise} \end{cases}",
    r"\begin{cases} \tanh(x[t] + h_0) & t = 0 \\ \tanh(x[t] + h[t-1]) * h[t-1] & \text{otherwise} \end{cases}",
    r"\begin{cases} \tanh(x[t] + h_0 + h_0) & t = 0 \\ \tanh(x[t] + h[t-1] + h[t-2]) & \text{otherwise} \end{cases}",
    r"\begin{cases} \tanh(x[t] + x[t]) & t = 0 \\ \tanh(x[t] + h[t-1]) & \text{otherwise} \end{cases}",  # reads t
    r"\begin{cases} \tanh(x[t] + h_0) & t = 1 \\ \tanh(x[t] + h[t-1]) & \text{otherwise} \end{cases}",
    # nodes that can raise at the first step: base's error names base's position, general's would not
    r"\begin{cases} \begin{cases} h_0 & t > 0 \end{cases} & t = 0 \\ \begin{cases} h[t-1] & t > 0 \end{cases} & \text{otherwise} \end{cases}",
    r"\begin{cases} x[t+1] + h_0 & t = 0 \\ x[t+1] + h[t-1] & \text{otherwise} \end{cases}",
    r"\begin{cases} \max_{j=0}^{t-1} x[j] + h_0 & t = 0 \\ \max_{j=0}^{t-1} x[j] + h[t-1] & \text{otherwise} \end{cases}",
])
def test_other_forms_keep_the_first_step_apart(element):
    text = (r"\Module{M}{x; h_0}" "\n  h \\gets \\{ " + element + r" \}_{t=0}^{|x|-1} \\" "\n"
            r"  \Return h \\" "\n" r"\EndModule")
    assert _matched(text) is None


def test_reads_of_every_step_of_their_range_do_not_keep_the_first_step_apart():
    """x[t] over t = 0..|x|-1 cannot fail, so its two positions do not matter (the GRU's E(u[t]))."""
    text = CELL.replace(r"\tanh(W @ x[t] + U @ h_0)", r"\tanh(W @ x[t] + U @ h_0) + x[t]").replace(
        r"\tanh(W @ x[t] + U @ h[t-1])", r"\tanh(W @ x[t] + U @ h[t-1]) + x[t]")
    assert _matched(text) is not None


def test_the_loop_starts_at_the_first_step():
    k = kernel(CELL, (BATCHED_SEQUENCE, BATCHED_VECTOR), (MATRIX, MATRIX))
    before, for_ = loop(k)
    assert for_.start == 0
    # W @ x[t] of every step, the first included, is one product before the loop; U @ h_0 is
    # computed in the loop's first step, not apart
    assert ops(before).count("linear") == 1 and ops(before).count("tanh") == 0
    assert ops(k.body).count("linear") == 2 and ops(k.body).count("tanh") == 1
    assert ops(k.body).count("drop_first") == 1
    kept = kernel(CELL.replace(r"W @ x[t] + U @ h_0", r"W @ x[t]"), (BATCHED_SEQUENCE, BATCHED_VECTOR), (MATRIX, MATRIX))
    assert "drop_first" not in ops(kept.body) and loop(kept)[1].start == 1
    # an initial element the same for every sample: its first step apart multiplies it once, not
    # once per sample (what the loop's first step would do)
    shared = kernel(CELL, (BATCHED_SEQUENCE, (VECTOR, False)), (MATRIX, MATRIX))
    assert "drop_first" not in ops(shared.body) and loop(shared)[1].start == 1
    one = kernel(CELL, ((MATRIX, False), (VECTOR, False)), (MATRIX, MATRIX))  # one sample: the same layout
    assert "drop_first" in ops(one.body) and loop(one)[1].start == 0


def _cell_by_hand(x, w, u, h0):
    h, out = h0.expand(x.shape[0], -1), []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ w.T + h @ u.T)
        out.append(h)
    return torch.stack(out, 1)


def _check(got, want, params):
    torch.testing.assert_close(got, want)
    target = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad(((got - target) ** 2).sum(), params),
                    torch.autograd.grad(((want - target) ** 2).sum(), params)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("length", [1, 2, 5])
def test_values_and_gradients_of_a_cell(length):
    kokoyi.compile(CELL.replace("{M}", "{InitialCell}"), filename="initial_cell_test.kyi")
    g = torch.Generator().manual_seed(length)
    w, u = (torch.randn(4, n, generator=g).requires_grad_() for n in (3, 4))
    h0 = torch.randn(2, 4, generator=g).requires_grad_()
    x = torch.randn(2, length, 3, generator=g)
    model = Host((w, u), kokoyi.symbol["InitialCell"])
    _check(model(x, h0, batch_level=[1, 1]), _cell_by_hand(x, w, u, h0), [w, u, h0])
    _check(model(x, h0[0], batch_level=[1, 0]), _cell_by_hand(x, w, u, h0[0]), [w, u, h0])  # h_0 shared
    _check(model(x[0], h0[0]), _cell_by_hand(x[:1], w, u, h0[0])[0], [w, u, h0])  # one sample
    empty = model(x[:, :0], h0, batch_level=[1, 1])
    assert empty.shape[:2] == (2, 0)


def test_values_and_gradients_of_a_group():
    kokoyi.compile(GROUP.replace("{G}", "{InitialGroup}"), filename="initial_group_test.kyi")
    g = torch.Generator().manual_seed(3)
    a0, b0 = (torch.randn(2, 3, generator=g).requires_grad_() for _ in range(2))
    x = torch.randn(2, 4, 3, generator=g)
    a, b, pa, pb = [], [], a0, b0
    for t in range(x.shape[1]):
        pa, pb = torch.tanh(x[:, t] + pb), None
        pb = pa * (a[-1] if a else a0) + 1
        a.append(pa)
        b.append(pb)
    want = torch.stack(a, 1) + torch.stack(b, 1)
    model = Host((), kokoyi.symbol["InitialGroup"])
    _check(model(x, a0, b0, batch_level=[1, 1, 1]), want, [a0, b0])
    k = kernel(GROUP, (BATCHED_SEQUENCE, BATCHED_VECTOR, BATCHED_VECTOR), (), name="G")
    assert ops(k.body).count("drop_first") == 2 and loop(k)[1].start == 0
    assert isinstance(loop(k)[1], K.For)


# the initial element inside the element (an LSTM's `f \odot cases(c_0, c[t-1])`), and a
# Concat of it with the step's input: the first step apart widens h_0 to the samples anyway
NESTED = r"""\Module{M}{x; W, h_0}
  h \gets \{ \tanh(W @ \Concat(\begin{cases} h_0 & t = 0 \\ h[t-1] & \text{otherwise} \end{cases}, x[t])) \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule"""


def test_an_initial_element_inside_the_element_is_matched():
    r = _recur(NESTED)
    generals, inits = initial_elements((r.name,), r.axis, (r.element,), 0)
    assert list(inits) == ["h"] and isinstance(inits["h"], ir.Var) and inits["h"].name == "h_0"
    assert not any(isinstance(n, ir.Select) for n in ir.walk(generals[0]))
    # a read m[t-1] outside the cases (an error at the first step) or another test of t = 0: apart
    for other in (NESTED.replace(r"x[t])) \}", r"x[t])) + h[t-1] \}"),
                  NESTED.replace(r"x[t])) \}", r"x[t])) + \begin{cases} 1 & t = 0 \\ 0 & \text{otherwise} \end{cases} \}")):
        r = _recur(other)
        assert initial_elements((r.name,), r.axis, (r.element,), 0) is None


def test_a_shared_initial_element_the_first_step_widens_starts_the_loop():
    shared = kernel(NESTED, (BATCHED_SEQUENCE,), (MATRIX, VECTOR))
    assert "drop_first" in ops(shared.body) and loop(shared)[1].start == 0
    kokoyi.compile(NESTED.replace("{M}", "{InitialNested}"), filename="initial_nested_test.kyi")
    g = torch.Generator().manual_seed(5)
    w = torch.randn(4, 7, generator=g).requires_grad_()
    h0 = torch.randn(4, generator=g).requires_grad_()
    x = torch.randn(2, 5, 3, generator=g)
    h, out = h0.expand(2, -1), []
    for t in range(x.shape[1]):
        h = torch.tanh(torch.cat((h, x[:, t]), -1) @ w.T)
        out.append(h)
    _check(Host((w, h0), kokoyi.symbol["InitialNested"])(x, batch_level=[1]), torch.stack(out, 1), [w, h0])
