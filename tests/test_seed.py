"""The seed's two modules, used exactly as LANGUAGE.md section 7 shows, against hand-written torch.

Values and gradients must match for single samples and for batches (batch_level).
"""
from __future__ import annotations

import pytest
import torch

import kokoyi

SEED = r"""%kokoyi
\Module{\pi}{s; Linears}
\Return \Softmax(Linears[1](\ReLU(Linears[0](s)))) \\
\EndModule

\Module{PGLoss}{logP, r; \gamma}
\mu \gets \Mean \\
\sigma(x) \gets \sqrt{\frac{\sum_{i=0}^{|x|-1}{(x[i] -\bar{x})**2}}{|x|}} \where \bar{x} \gets \mu(x) \Comment{Compute standard deviation} \\
T \gets |r| \\
G_t \gets \{\sum_{i=0}^{T - 1 - t}{\gamma ** i * r[t+i]}\}_{t=0}^{T-1} \Comment{Discounted reward}\\
\bar{G_t} \gets \frac{G_t - \mu(G_t)}{\sigma(G_t)} \Comment{Normalize discounted reward}\\
\Return -\bar{G_t} * logP \\
\EndModule
"""

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture
def seed():
    kokoyi.compile(SEED, filename="policy.kyi")

    class Pi(torch.nn.Module):
        def __init__(self, d, a):
            super().__init__()
            self.Linears = torch.nn.ModuleList([kokoyi.nn.Linear(d, 128), kokoyi.nn.Linear(128, a)])

        def get_parameters(self):  # the module's parameters, in declaration order
            return self.Linears

        forward = kokoyi.symbol[r"\pi"]

    class PGLoss(torch.nn.Module):
        def __init__(self, gamma):
            super().__init__()
            self.gamma = gamma

        def get_parameters(self):
            return self.gamma

        forward = kokoyi.symbol["PGLoss"]

    return Pi, PGLoss


def policy_reference(model, s):
    return torch.softmax(model.Linears[1](torch.relu(model.Linears[0](s))), dim=-1)


def pgloss_reference(logP, r, gamma):
    T = r.shape[-1]
    G = torch.stack([sum(gamma ** i * r[..., t + i] for i in range(T - t)) for t in range(T)], dim=-1)
    mean = G.mean(-1, keepdim=True)
    std = ((G - mean) ** 2).mean(-1, keepdim=True).sqrt()
    return -(G - mean) / std * logP


def assert_close(got, want):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert torch.allclose(got, want, rtol=RTOL, atol=ATOL), (got, want)


def assert_same_gradients(got, want, leaves, seed=0):
    w = torch.randn(want.shape, generator=torch.Generator().manual_seed(seed))
    g_got = torch.autograd.grad((got * w).sum(), leaves, retain_graph=True, allow_unused=True)
    g_want = torch.autograd.grad((want * w).sum(), leaves, allow_unused=True)
    for a, b, leaf in zip(g_got, g_want, leaves):
        a = torch.zeros_like(leaf) if a is None else a
        b = torch.zeros_like(leaf) if b is None else b
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), (a, b)


def test_both_symbols_are_registered_under_every_spelling(seed):
    assert kokoyi.symbol[r"\pi"] is kokoyi.symbol["pi"]
    assert kokoyi.symbol["PGLoss"] is not None


@pytest.mark.parametrize("batch", [None, (1,), (7,), (2, 3)])
def test_policy(seed, batch):
    Pi, _ = seed
    torch.manual_seed(0)
    model = Pi(4, 2)
    shape = (4,) if batch is None else (*batch, 4)
    s = torch.randn(shape, requires_grad=True)
    got = model(s) if batch is None else model(s, batch_level=[len(batch)])
    want = policy_reference(model, s)
    assert_close(got, want)
    assert torch.allclose(got.sum(-1), torch.ones(()))
    assert_same_gradients(got, want, [s, *model.parameters()])


def test_policy_sampling_like_the_seed(seed):
    Pi, _ = seed
    torch.manual_seed(1)
    model = Pi(4, 2)
    probs = model(torch.randn(4))
    action = torch.distributions.Categorical(probs).sample()
    assert 0 <= action.item() < 2
    assert probs.requires_grad


@pytest.mark.parametrize("T", [2, 3, 9, 40])
def test_pgloss_single_sample(seed, T):
    _, PGLoss = seed
    g = torch.Generator().manual_seed(T)
    logP = torch.randn(T, generator=g).requires_grad_(True)
    r = torch.rand(T, generator=g).requires_grad_(True)
    loss = PGLoss(0.99)
    got = loss(logP, r)
    want = pgloss_reference(logP, r, 0.99)
    assert_close(got, want)
    assert_same_gradients(got, want, [logP, r])


@pytest.mark.parametrize("levels, batch", [([1, 1], (5,)), ([2, 2], (2, 3)), ([0, 1], (4,)), ([1, 0], (4,))])
def test_pgloss_batched(seed, levels, batch):
    _, PGLoss = seed
    T = 6
    g = torch.Generator().manual_seed(3)
    logP = torch.randn((*batch, T) if levels[0] else (T,), generator=g).requires_grad_(True)
    r = torch.rand((*batch, T) if levels[1] else (T,), generator=g).requires_grad_(True)
    got = PGLoss(0.9)(logP, r, batch_level=levels)
    want = pgloss_reference(logP, r, 0.9)
    want = want.expand(*batch, T)
    assert_close(got, want)
    assert_same_gradients(got, want, [logP, r])


def test_pgloss_gradient_reaches_a_tensor_gamma(seed):
    _, PGLoss = seed
    g = torch.Generator().manual_seed(4)
    logP, r = torch.randn(3, 7, generator=g), torch.rand(3, 7, generator=g)
    gamma = torch.nn.Parameter(torch.tensor(0.95))
    got = PGLoss(gamma)(logP, r, batch_level=[1, 1])
    want = pgloss_reference(logP, r, gamma)
    assert_close(got, want)
    assert_same_gradients(got, want, [gamma])


def test_policy_gradient_step_matches_torch(seed):
    """One REINFORCE step of the seed: Pi picks actions, PGLoss weights their log-probabilities."""
    Pi, PGLoss = seed
    torch.manual_seed(5)
    model = Pi(4, 2)
    states = torch.randn(8, 4)
    actions = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    rewards = torch.ones(8)
    probs = model(states, batch_level=[1])
    logP = torch.log(probs[torch.arange(8), actions])
    loss = PGLoss(0.99)(logP, rewards).sum()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref_logP = torch.log(policy_reference(model, states)[torch.arange(8), actions])
    ref = pgloss_reference(ref_logP, rewards, 0.99).sum()
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    assert torch.allclose(loss, ref, rtol=RTOL, atol=ATOL)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
