"""Matrix products whose operands vary with different loop axes (per-head projections, a sum
of per-head products) are one matrix product of all the rows (kokoyi/compiler/batch/rules.py
einsum_matmul): values, dtypes, errors and gradients on every path equal the reference
interpreter's, and the generated code uses the one-product forms. Also: a clip between two
Python numbers is one torch.clamp with those numbers (no tensors made per call)."""
from __future__ import annotations

import differential
import pytest
import torch

import kokoyi
from kokoyi.test_utils import Host

CASES = {
    # each head's X @ W[i]^T: rows of every sample against every head's matrix, the matrices
    # read as they are (F.linear's layout: batch/transposed.py)
    "per-head projections": (r"\Module{P}{X; W} \Return \{ X @ W[i]^\top \}_{i=0}^{|W|-1} \\ \EndModule",
                             {"X": torch.randn(3, 4)}, [torch.randn(2, 5, 4)], "kx.matmul_rows_t("),
    # with the head index first in the loop nest and a second loop axis on the left
    "two loops": (r"\Module{P}{X; W} \Return \{ \{ X[j] @ W[i] \}_{i=0}^{|W|-1} \}_{j=0}^{|X|-1} \\ \EndModule",
                  {"X": torch.randn(2, 3, 4)}, [torch.randn(2, 4, 5)], "kx.matmul_rows("),
    # the sum over heads of each head's output times its own matrix
    "sum over heads": (r"\Module{P}{A; W} \Return \sum_{i=0}^{|W|-1} A[i] @ W[i] \\ \EndModule",
                       {"A": torch.randn(2, 3, 4)}, [torch.randn(2, 4, 5)], "kx.matmul_summed("),
    # PPO's clipped ratio: the bounds are numbers (one a parameter known only at the call)
    "clip between numbers": (r"\Module{P}{r; \epsilon} \Return \operatorname{clip}(r, 1 - \epsilon, 1 + \epsilon) * 2 \\ \EndModule",
                             {"r": torch.tensor([0.5, 1.0, 1.5, 1.1])}, [0.2], "torch.clamp(r, s, s_1)"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_products_over_different_axes_agree_with_the_math_on_every_path(name):
    source, inputs, params, fast = CASES[name]
    codes = differential.batched_code(source, inputs, params, "products.kyi", seed=5)
    assert codes and all(fast in code for code in codes), codes


def test_a_per_head_projection_keeps_the_batch_and_head_axes_in_place():
    kokoyi.compile(CASES["per-head projections"][0], filename="products.kyi")
    X, W = torch.randn(6, 3, 4, requires_grad=True), torch.randn(2, 5, 4, requires_grad=True)
    out = Host(W, kokoyi.symbol["P"])(X, batch_level=[1])
    want = torch.stack([X @ W[i].T for i in range(2)], 1)
    assert out.shape == (6, 2, 3, 5) and torch.allclose(out, want, atol=1e-6)
    g = torch.randn_like(out)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in
               zip(torch.autograd.grad(out, (X, W), g), torch.autograd.grad(want, (X, W), g)))
    # W^T is never made: W's gradient comes from the product through a view alone, no transpose
    # (the source's ^T and matmul_rows's transpose back would be two, forward and backward)
    out = Host(W, kokoyi.symbol["P"])(X, batch_level=[1])
    readers, seen, stack = [], set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for nxt, _ in node.next_functions:
            if nxt is not None and getattr(nxt, "variable", None) is W:
                readers.append(type(node).__name__)
            stack.append(nxt)
    assert readers and all(r in ("ViewBackward0", "ReshapeAliasBackward0") for r in readers), readers
