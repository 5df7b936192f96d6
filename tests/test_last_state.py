"""The last element of a finished recurrence read as it is (kokoyi/runtime/recur.py
`read_states`, kokoyi/compiler/batch/sequences.py `_chained`).

Reading one element of a recurrence means, as reading its stacked elements would, a zero
gradient for every other element (the elements are one value). Where the compiler proves
that each step's value depends differentiably on the element before it, in a statement every
step runs, every element is an ancestor of the last in the autograd graph and gets a gradient
from it already, so the last element is read as it is (no `_OneOfAll`). Where it cannot (a
`\\StopGrad` of the predecessor, a read under a Python branch), the zeros are still handed
out, and they matter: the first element's square root at 0 turns a zero gradient into NaN,
as the stack's backward does."""
from __future__ import annotations

import linecache

import torch

import kokoyi

SOURCE = r"""
\Module{Chained}{x; W}
  h \gets \{ \begin{cases} \sqrt{W @ x[0]} & t = 0 \\ \tanh(W @ x[t]) + h[t-1] & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h[|x|-1] \\
\EndModule
\Module{Stopped}{x; W}
  h \gets \{ \begin{cases} \sqrt{W @ x[0]} & t = 0 \\ \tanh(W @ x[t]) + \StopGrad(h[t-1]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h[|x|-1] \\
\EndModule
\Module{Branched}{x; W}
  h \gets \{ \begin{cases} \sqrt{W @ x[0]} & t = 0 \\ \tanh(W @ x[t]) + h[t-1] & t < 2 \\ \tanh(W @ x[t]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h[|x|-1] \\
\EndModule
"""


def _module(name: str):
    kokoyi.compile(SOURCE, filename="last_state.kyi")

    class M(torch.nn.Module):
        forward = kokoyi.symbol[name]

        def __init__(self):
            super().__init__()
            w = torch.randn(3, 4, generator=torch.Generator().manual_seed(3)).abs()
            w[0] = 0.0  # the first element's first entry is sqrt(0): its gradient there is infinite
            self.W = torch.nn.Parameter(w)

        def get_parameters(self):
            return self.W

    return M()


def _reference(name: str, x, w):
    """The stacked elements read at the last position, by hand."""
    states = [torch.sqrt(w @ x[0])]
    for t in range(1, x.shape[0]):
        prev = states[-1]
        if name == "Chained":
            states.append(torch.tanh(w @ x[t]) + prev)
        elif name == "Stopped":
            states.append(torch.tanh(w @ x[t]) + prev.detach())
        else:
            states.append(torch.tanh(w @ x[t]) + prev if t < 2 else torch.tanh(w @ x[t]))
    return torch.stack(states)[-1]


def _flags(name: str) -> list[str]:
    """The `chained` argument of each read_states call in the kernels generated for `name`."""
    code = "".join("".join(entry[2]) for key, entry in list(linecache.cache.items())
                   if key.startswith("<kokoyi:") and f":{name}__" in key)
    return [line.rsplit(", ", 1)[1].rstrip(")\n") for line in code.splitlines() if "kx.read_states(" in line]


def _check(name: str) -> torch.Tensor:
    m = _module(name)
    x = torch.rand(5, 4, generator=torch.Generator().manual_seed(4)) + 0.1
    out = m(x)
    expected = _reference(name, x, m.W)
    assert torch.allclose(out, expected, atol=1e-6)
    (g,) = torch.autograd.grad(out.sum(), m.W)
    (e,) = torch.autograd.grad(expected.sum(), m.W)
    assert torch.allclose(g, e, atol=1e-5, equal_nan=True), (g, e)
    return g


def test_a_chained_recurrence_reads_its_last_element_as_it_is():
    g = _check("Chained")
    assert _flags("Chained") == ["True"]
    assert torch.isinf(g[0]).all() and torch.isfinite(g[1:]).all()  # sqrt(0)'s gradient, reached


def test_a_stopped_gradient_keeps_the_zeros_for_the_other_elements():
    g = _check("Stopped")
    assert _flags("Stopped") == ["False"]
    assert torch.isnan(g[0]).all()  # the zero gradient through sqrt(0), as the stack gives


def test_a_read_under_a_python_branch_keeps_the_zeros():
    g = _check("Branched")
    assert _flags("Branched") == ["False"]
    assert torch.isnan(g[0]).all()
