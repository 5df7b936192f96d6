"""Tests of module symbols: `forward(self, *inputs, batch_level=None)`, parameters, annotations."""
from __future__ import annotations

import pytest
import torch

import kokoyi
from kokoyi.errors import KokoyiTypeError
from kokoyi.test_utils import Host

SOURCE = r"""
\Module{None0}{x} \Return x * 2 \\ \EndModule
\Module{One}{x; W} \Return W @ x \\ \EndModule
\Module{Two}{x; W, b} \Return W @ x + b \\ \EndModule
\Module{Scale}{x; \gamma} \Return \gamma * x + \gamma ** 2 \\ \EndModule
\Module{Call}{x; f, g} \Return g(f(x)) \\ \EndModule
"""


@pytest.fixture
def S():
    kokoyi.compile(SOURCE, "m.kyi")
    return kokoyi.symbol


class Bare(torch.nn.Module):
    """A module without get_parameters."""


def test_no_parameters_needs_no_get_parameters(S):
    assert S["None0"](Bare(), torch.tensor(2.0)).item() == 4.0
    assert S["None0"](Host(), torch.tensor(2.0)).item() == 4.0


def test_one_parameter_is_the_value_itself(S):
    W = torch.eye(2) * 3
    assert S["One"](Host(W), torch.tensor([1.0, 2.0])).tolist() == [3.0, 6.0]


@pytest.mark.parametrize("pack", [tuple, list, torch.nn.ParameterList])
def test_several_parameters_in_declaration_order(S, pack):
    W, b = torch.nn.Parameter(torch.eye(2)), torch.nn.Parameter(torch.tensor([10.0, 20.0]))
    assert S["Two"](Host(pack([W, b])), torch.tensor([1.0, 2.0])).tolist() == [11.0, 22.0]


@pytest.mark.parametrize("params, got", [(torch.eye(2), "a Tensor"), ((torch.eye(2),), "1 values"),
                                         ((torch.eye(2), torch.ones(2), torch.ones(2)), "3 values")])
def test_wrong_parameter_count_shows_the_declared_signature(S, params, got):
    with pytest.raises(KokoyiTypeError) as info:
        S["Two"](Host(params), torch.ones(2))
    text = str(info.value)
    assert r"\Module{Two}{x; W, b}" in text and got in text and text.startswith("m.kyi:4:")


def test_missing_get_parameters_shows_the_declared_signature(S):
    with pytest.raises(KokoyiTypeError) as info:
        S["One"](Bare(), torch.ones(2))
    assert "get_parameters" in str(info.value) and r"\Module{One}{x; W}" in str(info.value)


@pytest.mark.parametrize("args", [(), (torch.ones(2), torch.ones(2))])
def test_wrong_input_count_shows_the_declared_signature(S, args):
    with pytest.raises(KokoyiTypeError) as info:
        S["Two"](Host((torch.eye(2), torch.ones(2))), *args)
    assert f"takes 1 input, got {len(args)}" in str(info.value) and r"\Module{Two}{x; W, b}" in str(info.value)


@pytest.mark.parametrize("gamma", [0.5, 2, torch.tensor(0.5)])
def test_python_and_tensor_scalar_parameters(S, gamma):
    x = torch.tensor([1.0, 2.0])
    g = float(gamma)
    assert torch.allclose(S["Scale"](Host(gamma), x), g * x + g ** 2)
    assert torch.allclose(S["Scale"](Host(gamma), torch.stack([x, x * 3]), batch_level=[1]),
                          torch.stack([g * x + g ** 2, g * x * 3 + g ** 2]))


def test_parameter_gradients_flow(S):
    gamma = torch.nn.Parameter(torch.tensor(0.5))
    S["Scale"](Host(gamma), torch.tensor([1.0, 2.0]), batch_level=[0]).sum().backward()
    assert gamma.grad.item() == pytest.approx(3.0 + 2 * 2 * 0.5)


def test_parameters_may_be_torch_modules_and_kokoyi_modules(S):
    class Inner(torch.nn.Module):
        forward = S["Scale"]

        def get_parameters(self):
            return 2.0

    lin = torch.nn.Linear(2, 2)
    x = torch.tensor([1.0, -1.0])
    want = 2.0 * lin(x) + 4.0
    assert torch.allclose(S["Call"](Host((lin, Inner())), x), want, atol=1e-6)
    batch = torch.stack([x, 2 * x, 3 * x])
    got = S["Call"](Host((lin, Inner())), batch, batch_level=[1])
    assert torch.allclose(got, torch.stack([2.0 * lin(b) + 4.0 for b in batch]), atol=1e-6)


def test_forward_works_as_a_method(S):
    class Doubler(torch.nn.Module):
        forward = S["None0"]

    assert Doubler()(torch.tensor(3.0)).item() == 6.0
    assert Doubler()(torch.tensor([1.0, 2.0]), batch_level=[1]).tolist() == [2.0, 4.0]


# ---- annotations ------------------------------------------------------------------------------

ANNOTATED = r"""
\Module{Ann}{X \in \mathbb{R}^{T \times d}, y \in \mathbb{R}^{T}, k \in \mathbb{Z}}
  \Return X[k] + y[k] + T * 100 + d * 1000 \\
\EndModule
\Module{Fixed}{v \in \mathbb{R}^{3}} \Return v \\ \EndModule
"""


def test_annotated_dimensions_are_read_from_the_inputs():
    kokoyi.compile(ANNOTATED, "a.kyi")
    X, y = torch.zeros(4, 3), torch.zeros(4)
    assert kokoyi.symbol["Ann"](Host(), X, y, 1).tolist() == [3400.0] * 3
    got = kokoyi.symbol["Ann"](Host(), X.expand(2, 4, 3), y, torch.tensor([0, 1]), batch_level=[1, 0, 1])
    assert got.shape == (2, 3)


def test_disagreeing_dimension_sizes_name_the_dimension_and_both_inputs():
    kokoyi.compile(ANNOTATED, "a.kyi")
    with pytest.raises(KokoyiTypeError) as info:
        kokoyi.symbol["Ann"](Host(), torch.zeros(4, 3), torch.zeros(5), torch.tensor(0))
    text = str(info.value)
    assert "`T`" in text and "`X`" in text and "`y`" in text and "4" in text and "5" in text
    assert text.startswith("a.kyi:2:")
    with pytest.raises(KokoyiTypeError, match="`T`"):  # per sample: batch axes are not dimensions
        kokoyi.symbol["Ann"](Host(), torch.zeros(2, 4, 3), torch.zeros(2, 5), torch.tensor([0, 0]),
                             batch_level=[1, 1, 1])


def test_annotated_rank_and_fixed_sizes_are_checked():
    kokoyi.compile(ANNOTATED, "a.kyi")
    with pytest.raises(KokoyiTypeError, match="2 per-sample axes"):
        kokoyi.symbol["Ann"](Host(), torch.zeros(4), torch.zeros(4), torch.tensor(0))
    with pytest.raises(KokoyiTypeError, match="size 3"):
        kokoyi.symbol["Fixed"](Host(), torch.zeros(4))
    assert kokoyi.symbol["Fixed"](Host(), torch.zeros(2, 3), batch_level=[1]).shape == (2, 3)


@pytest.mark.parametrize("k", [torch.tensor(1.0), 1.5])
def test_integer_inputs_reject_floats(k):
    kokoyi.compile(ANNOTATED, "a.kyi")
    with pytest.raises(KokoyiTypeError, match=r"\\mathbb\{Z\}"):
        kokoyi.symbol["Ann"](Host(), torch.zeros(4, 3), torch.zeros(4), k)


@pytest.mark.parametrize("k", [torch.tensor(2), 2, torch.tensor(2, dtype=torch.int32)])
def test_integer_inputs_accept_integers(k):
    kokoyi.compile(ANNOTATED, "a.kyi")
    X = torch.arange(12.0).reshape(4, 3)
    assert kokoyi.symbol["Ann"](Host(), X, torch.zeros(4), k).tolist() == [3406.0, 3407.0, 3408.0]


def test_integer_annotation_inside_the_body():
    kokoyi.compile(r"\Module{M}{n \in \mathbb{N}} \Return \sum_{i=0}^{n} i \\ \EndModule")
    assert kokoyi.symbol["M"](Host(), 4).item() == 10
    assert kokoyi.symbol["M"](Host(), torch.tensor(4)).item() == 10


def test_the_generated_call_check_passes_only_the_ordinary_call_and_the_full_checks_still_speak():
    from kokoyi.runtime.module import call_check

    kokoyi.compile(r"""\Module{A}{x \in \mathbb{R}^{N \times 3}, n \in \mathbb{Z}; W \in \mathbb{R}^{N}}
  \Return W @ x + n \\
\EndModule""", "a.kyi")
    forward = kokoyi.symbol["A"]
    check = call_check(forward.__kokoyi_spec__, (1, 0))
    x, W = torch.randn(2, 4, 3), torch.randn(4)
    assert check((x, 3), (W,)) and check((x, torch.tensor(3)), (W,))
    assert not check((x, 3.0), (W,))  # a float for \mathbb{Z}
    assert not check((x.long(), 3), (W,))  # an integer tensor for \mathbb{R}: converted by the full path
    assert not check((x, 3), (torch.randn(5),))  # N disagrees
    assert not check((torch.randn(2, 4, 2), 3), (W,))  # the fixed size 3
    assert not check((x[0], 3), (W,))  # a rank short
    host = Host(W, forward)
    want = torch.einsum("n,bnk->bk", W, x) + 3
    assert torch.allclose(host(x, 3, batch_level=[1, 0]), want)  # the plan is made and cached here
    with pytest.raises(KokoyiTypeError, match="must have size 3"):
        host(torch.randn(2, 4, 2), 3, batch_level=[1, 0])
    with pytest.raises(KokoyiTypeError, match="floating-point"):
        host(x, 3.0, batch_level=[1, 0])
    assert torch.allclose(host(torch.ones(2, 4, 3, dtype=torch.long), 3, batch_level=[1, 0]),
                          torch.einsum("n,bnk->bk", W, torch.ones(2, 4, 3)) + 3)  # converted to the module's dtype
