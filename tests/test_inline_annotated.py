"""A Kokoyi module parameter whose inputs are annotated is inlined into its caller where the
annotations hold by the arguments' layouts alone (kokoyi/compiler/batch/calls.py
`_annotations_hold`): floating tensors of the annotated ranks, no size to compare. Values and
gradients are the call's; an argument the callee's forward would convert or reject (an integer
tensor for \\mathbb{R}, another rank, two inputs sharing a size name) still goes through the
call, with its conversion and its message."""
from __future__ import annotations

import linecache

import pytest
import torch

import kokoyi

SOURCE = r"""
\Module{Inner}{x \in \mathbb{R}^{D}; W}
  \Return \tanh(W @ x) \\
\EndModule
\Module{Outer}{x; f}
  \Return f(x) * 2 \\
\EndModule
\Module{Pair}{x \in \mathbb{R}^{D}, y \in \mathbb{R}^{D}; W}
  \Return W @ (x + y) \\
\EndModule
\Module{OuterPair}{x, y; g}
  \Return g(x, y) \\
\EndModule
"""


def _classes():
    kokoyi.compile(SOURCE, filename="inline_annotated.kyi")

    class Inner(torch.nn.Module):
        forward = kokoyi.symbol["Inner"]

        def __init__(self):
            super().__init__()
            self.W = torch.nn.Parameter(torch.randn(3, 4, generator=torch.Generator().manual_seed(1)))

        def get_parameters(self):
            return self.W

    class Outer(torch.nn.Module):
        forward = kokoyi.symbol["Outer"]

        def __init__(self, inner):
            super().__init__()
            self.f = inner

        def get_parameters(self):
            return self.f

    class OuterPair(Outer):
        forward = kokoyi.symbol["OuterPair"]

    class Pair(Inner):
        forward = kokoyi.symbol["Pair"]

    return Inner, Outer, Pair, OuterPair


def _kernels(name: str) -> list[str]:
    return ["".join(entry[2]) for key, entry in list(linecache.cache.items())
            if key.startswith("<kokoyi:") and f":{name}__" in key]


def test_an_annotated_callee_is_inlined_with_the_calls_values_and_gradients():
    Inner, Outer, _, _ = _classes()
    inner = Inner()
    outer = Outer(inner)
    x = torch.randn(5, 4, requires_grad=True)
    out = outer(x, batch_level=[1])
    expected = 2 * torch.tanh(x @ inner.W.T)
    assert torch.allclose(out, expected, atol=1e-6)
    gw, gx = torch.autograd.grad(out.square().sum(), (inner.W, x))
    ew, ex = torch.autograd.grad(expected.square().sum(), (inner.W, x))
    assert torch.allclose(gw, ew, atol=1e-5) and torch.allclose(gx, ex, atol=1e-5)
    code = _kernels("Outer")
    assert code and any("kx.module_params(f, 1)" in c and "call_module" not in c for c in code), code


def test_an_integer_argument_is_converted_by_the_call():
    Inner, Outer, _, _ = _classes()
    inner = Inner()
    x = torch.randint(0, 3, (5, 4))
    out = Outer(inner)(x, batch_level=[1])
    assert out.dtype == torch.float32
    assert torch.allclose(out, 2 * torch.tanh(x.float() @ inner.W.detach().T), atol=1e-6)
    assert any("kx.call_module(f, " in c for c in _kernels("Outer"))


def test_another_rank_is_the_callees_message():
    Inner, Outer, _, _ = _classes()
    with pytest.raises(kokoyi.KokoyiTypeError, match=r"input `x` of module `Inner` is annotated with 1 per-sample axes"):
        Outer(Inner())(torch.randn(5, 2, 4), batch_level=[1])


def test_a_shared_size_name_is_compared_by_the_call():
    _, _, Pair, OuterPair = _classes()
    model = OuterPair(Pair())
    x, y = torch.randn(5, 4), torch.randn(5, 4)
    assert torch.allclose(model(x, y, batch_level=[1, 1]), (x + y) @ model.f.W.detach().T, atol=1e-6)
    with pytest.raises(kokoyi.KokoyiTypeError, match=r"dimension `D` of module `Pair` disagrees"):
        model(x, torch.randn(5, 3), batch_level=[1, 1])
