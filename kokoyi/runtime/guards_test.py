"""Tests of call guards: a repeated call skips the full path, anything else takes it."""
from __future__ import annotations

import pytest
import torch

import kokoyi
from kokoyi.errors import KokoyiTypeError
from kokoyi.test_utils import Host

SOURCE = r"""\Module{A}{x \in \mathbb{R}^{N \times 3}, n \in \mathbb{Z}; W \in \mathbb{R}^{N}}
  \Return W @ x + n \\
\EndModule
\Module{P}{x; W} \Return W @ x \\ \EndModule
"""


def host(name):
    kokoyi.compile(SOURCE, "g.kyi")
    forward = kokoyi.symbol[name]
    return forward, forward.__kokoyi_specializations__


def counting_lookups(specs):
    """Counts the calls that go through the specialisation cache (the full path)."""
    calls = [0]
    lookup = specs.lookup

    def counted(*a):
        calls[0] += 1
        return lookup(*a)

    specs.lookup = counted
    return calls


def test_a_repeated_call_uses_its_guard_and_gives_the_same_values():
    forward, specs = host("A")
    W = torch.randn(4)
    h = Host(W, forward)
    calls = counting_lookups(specs)
    x, n = torch.randn(2, 4, 3), torch.tensor([1, 2])
    first = h(x, n, batch_level=[1, 1])
    assert calls[0] == 1 and not specs.guards  # (the call that generated the kernel makes none)
    h(x, n, batch_level=[1, 1])
    assert calls[0] == 2 and len(specs.guards) == 1
    for _ in range(3):
        again = h(torch.randn(5, 4, 3), torch.tensor([1, 2, 3, 4, 5]), batch_level=[1, 1])  # another batch size
    assert calls[0] == 2, "the guard did not take the repeated call"
    assert again.shape == (5, 3)
    assert torch.equal(h(x, n, batch_level=[1, 1]), first)
    assert torch.allclose(first, torch.einsum("n,bnk->bk", W, x) + n[:, None])


@pytest.mark.parametrize("call, message", [
    (lambda h, x, n: h(torch.randn(2, 4, 2), n, batch_level=[1, 1]), "must have size 3"),
    (lambda h, x, n: h(torch.randn(2, 5, 3), n, batch_level=[1, 1]), "dimension `N`"),
    (lambda h, x, n: h(x, n.float(), batch_level=[1, 1]), "floating-point"),
    (lambda h, x, n: h(x, n[:1], batch_level=[1, 1]), "batch shapes disagree"),
    (lambda h, x, n: h(x, n, batch_level=[True, True]), "non-negative integer"),
    (lambda h, x, n: h(x, n, batch_level=[1.0, 1]), "non-negative integer"),
    (lambda h, x, n: h(x, n, batch_level=[1]), "batch_level has 1 entries"),
    (lambda h, x, n: h(x, batch_level=[1, 1]), "takes 2 inputs"),
])
def test_after_a_guard_is_made_every_other_call_still_gets_the_full_checks(call, message):
    forward, specs = host("A")
    h = Host(torch.randn(4), forward)
    x, n = torch.randn(2, 4, 3), torch.tensor([1, 2])
    h(x, n, batch_level=[1, 1])
    h(x, n, batch_level=[1, 1])
    assert len(specs.guards) == 1
    with pytest.raises(KokoyiTypeError, match=message):
        call(h, x, n)


def test_a_guard_does_not_take_another_signature_or_parameter():
    forward, specs = host("P")
    W = torch.randn(3, 3)
    h = Host(W, forward)
    calls = counting_lookups(specs)
    x = torch.randn(2, 3)
    h(x, batch_level=[1])
    h(x, batch_level=[1])  # (the full path again: the first call generated the kernel; this one makes the guard)
    h(x, batch_level=[1])
    assert calls[0] == 2
    assert torch.allclose(h(x[0]), W @ x[0])  # one sample: another signature
    assert torch.allclose(h(x.double(), batch_level=[1]), (W.double() @ x.double().T).T)  # another dtype
    W2 = torch.randn(3, 3)
    h2 = Host(W2, forward)
    assert torch.allclose(h2(x, batch_level=[1]), x @ W2.T)  # another parameter object
    assert calls[0] == 5
    h(x, batch_level=(1,))  # a tuple is another guard than a list
    assert calls[0] == 6


def test_guards_are_dropped_when_a_later_unit_redefines_a_function():
    kokoyi.compile(r"\Function{f}{x} \Return x + 1 \\ \EndFunction" "\n"
                   r"\Module{M}{x} \Return f(x) \\ \EndModule", "g1.kyi")
    forward = kokoyi.symbol["M"]
    h = Host(None, forward)
    x = torch.zeros(2)
    assert h(x, batch_level=[1]).tolist() == [1.0, 1.0]
    assert h(x, batch_level=[1]).tolist() == [1.0, 1.0]
    kokoyi.compile(r"\Function{f}{x} \Return x + 5 \\ \EndFunction", "g2.kyi")
    assert h(x, batch_level=[1]).tolist() == [5.0, 5.0]


def test_a_runtime_error_through_a_guard_is_located_as_through_the_full_path():
    kokoyi.compile(r"\Module{I}{x, k} \Return x[k] \\ \EndModule", "g3.kyi")
    h = Host(None, kokoyi.symbol["I"])
    x = torch.arange(6.0).reshape(2, 3)
    assert h(x, torch.tensor([0, 2]), batch_level=[1, 1]).tolist() == [0.0, 5.0]
    assert not kokoyi.symbol["I"].__kokoyi_specializations__.guards
    assert h(x, torch.tensor([0, 2]), batch_level=[1, 1]).tolist() == [0.0, 5.0]
    assert len(kokoyi.symbol["I"].__kokoyi_specializations__.guards) == 1
    with pytest.raises(kokoyi.errors.KokoyiError, match="g3.kyi:1"):
        h(x, torch.tensor([0, 7]), batch_level=[1, 1])
