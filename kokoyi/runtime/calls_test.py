"""Tests of nested Kokoyi module calls from generated code (kokoyi/runtime/calls.py)."""
from __future__ import annotations

import torch

import kokoyi
from kokoyi.runtime import calls

SOURCE = r"""\Module{Inner}{s \in \mathbb{R}^{D}; W} \Return W @ s \\ \EndModule
\Module{Outer}{s; f} \Return \max(\StopGrad(f(s))) + \max(f(s)) \\ \EndModule
"""


class Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(3, 4))

    def get_parameters(self):
        return self.W


class Outer(torch.nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def get_parameters(self):
        return self.f


def build():
    kokoyi.compile(SOURCE, "c.kyi")
    Inner.forward = kokoyi.symbol["Inner"]
    Outer.forward = kokoyi.symbol["Outer"]
    inner = Inner()
    return inner, Outer(inner)


def test_a_nested_call_runs_the_forward_directly_and_gives_the_values():
    inner, outer = build()
    assert calls._forward_of(inner) is not None  # no hook: nn.Module.__call__ skipped
    s = torch.randn(5, 4)
    want = 2 * (s @ inner.W.T).amax(-1)
    got = outer(s, batch_level=[1])
    assert torch.allclose(got, want)
    (grad,) = torch.autograd.grad(got.sum(), inner.W)
    (want_grad,) = torch.autograd.grad(want.sum(), inner.W)
    assert torch.allclose(grad, want_grad / 2)  # the \StopGrad half passes none


def test_hooks_on_the_nested_module_still_run():
    inner, outer = build()
    seen = []
    handle = inner.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    assert calls._forward_of(inner) is None
    outer(torch.randn(5, 4), batch_level=[1])
    handle.remove()
    assert seen and all(shape == (5, 3) for shape in seen)
    seen.clear()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, a, o: seen.append(type(m).__name__))
    try:
        assert calls._forward_of(inner) is None
        outer(torch.randn(5, 4), batch_level=[1])
    finally:
        handle.remove()
    assert "Inner" in seen
