"""Tests of the contraction-plus-vector peephole (kokoyi/compiler/batch/contract_bias.py)."""
from __future__ import annotations

import linecache

import pytest
import torch

import kokoyi
from kokoyi.errors import KokoyiError
from kokoyi.test_utils import Host

SOURCE = r"""\Module{Dense}{h \in \mathbb{R}^{C \times H}; V, b}
  \Return \{ \sum(V_k * h) \}_{k=0}^{|b|-1} + b \\
\EndModule
\Module{Shift}{h \in \mathbb{R}^{C \times H}; V, c}
  \Return \{ \sum(V_k * h) \}_{k=0}^{|V|-1} + c \\
\EndModule
"""


def generated(name: str) -> str:
    return "".join("".join(v[2]) for k, v in linecache.cache.items() if f":{name}__" in k)


def reference(V, h, b):
    return torch.einsum("kch,bch->bk", V, h) + b


def test_dense_layer_is_one_linear_with_its_bias_values_and_gradients():
    kokoyi.compile(SOURCE, "cb.kyi")
    V = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    h = torch.randn(7, 3, 4, dtype=torch.float64, requires_grad=True)
    got = Host((V, b), kokoyi.symbol["Dense"])(h, batch_level=[1])
    assert "kx.contract_add(" in generated("Dense") and "kx.contract(" not in generated("Dense")
    want = reference(V, h, b)
    torch.testing.assert_close(got, want)
    g = torch.randn_like(got)
    torch.testing.assert_close(torch.autograd.grad(got, (V, b, h), g), torch.autograd.grad(want, (V, b, h), g))


def test_one_sample_and_a_number_added_still_give_the_sum():
    kokoyi.compile(SOURCE, "cb.kyi")
    V, b, h = torch.randn(5, 3, 4), torch.randn(5), torch.randn(3, 4)
    torch.testing.assert_close(Host((V, b), kokoyi.symbol["Dense"])(h), reference(V, h[None], b)[0])
    got = Host((V, 2.5), kokoyi.symbol["Shift"])(h)  # a number: the contraction, then the addition
    assert "kx.contract_add(" in generated("Shift")
    torch.testing.assert_close(got, reference(V, h[None], 2.5)[0])


def test_a_short_vector_is_still_the_located_error():
    kokoyi.compile(SOURCE, "cb.kyi")
    V, h = torch.randn(5, 3, 4), torch.randn(2, 3, 4)
    with pytest.raises(KokoyiError, match="cb.kyi:2"):
        Host((V, torch.randn(6)), kokoyi.symbol["Dense"])(h, batch_level=[1])  # |b| - 1 past V's end
    with pytest.raises(KokoyiError, match="cb.kyi:5"):
        Host((V, torch.randn(4)), kokoyi.symbol["Shift"])(h, batch_level=[1])  # 5 + 4: no broadcast
