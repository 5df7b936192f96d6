"""Small instances of every example model, with inputs, for tests that treat them alike
(torch.compile, export, pickling, standalone code).

`zoo()` returns name -> (model, args, kwargs); each call builds fresh models (seeded) and
loads the examples' .kyi files into kokoyi.symbol.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
_loaded = 0


def load_example(folder: str):
    """A fresh import of examples/<folder>/train.py (which loads its .kyi)."""
    global _loaded
    _loaded += 1
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"zoo_models_{folder}_{_loaded}", EXAMPLES / folder / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cartpole():
    """(Pi, PGLoss, Q, DQNLoss) classes of the policy-gradient and DQN examples."""
    pg, dqn = load_example("policy_gradient"), load_example("dqn")
    return (*pg.load_modules("kokoyi"), *dqn.load_modules("kokoyi"))


def build(name: str, batch: int = 4):
    """(model, args, kwargs) of one example model at a small size."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if name in ("pi", "pgloss", "q", "dqnloss"):
        Pi, PGLoss, Q, DQNLoss = cartpole()
        if name == "pi":
            return Pi(4, 2, hidden=16), (torch.randn(batch, 4, generator=g),), {"batch_level": [1]}
        if name == "pgloss":
            return PGLoss(0.99), (torch.randn(7, generator=g).requires_grad_(), torch.rand(7, generator=g)), {}
        q = Q(4, 2, hidden=16)
        if name == "q":
            return q, (torch.randn(batch, 4, generator=g),), {"batch_level": [1]}
        q_hat = Q(4, 2, hidden=16)
        data = (torch.randn(batch, 4, generator=g), torch.randint(0, 2, (batch,), generator=g),
                torch.rand(batch, generator=g), torch.randn(batch, 4, generator=g),
                (torch.rand(batch, generator=g) < 0.2).float())
        return DQNLoss(q, q_hat, 0.99), data, {"batch_level": [1] * 5}
    if name in ("mlp", "cnn", "crossentropy"):
        ex = load_example("classifiers")
        if name == "mlp":
            return ex.MLP(64, 16), (torch.rand(batch, 64, generator=g),), {"batch_level": [1]}
        if name == "cnn":
            return ex.CNN(8, (4, 6)), (torch.rand(batch, 1, 8, 8, generator=g),), {"batch_level": [1]}
        return (ex.CrossEntropyLoss(), (torch.randn(batch, 10, generator=g), torch.randint(0, 10, (batch,), generator=g)),
                {"batch_level": [1, 1]})
    if name == "vae":
        ex = load_example("vae")
        return ex.VAE(64, 16, 3), (torch.rand(batch, 64, generator=g), torch.randn(batch, 3, generator=g)), \
            {"batch_level": [1, 1]}
    if name in ("generator", "gan-dloss"):
        ex = load_example("gan")
        G, D = ex.Generator(4, 16, 64), ex.Discriminator(64, 16)
        if name == "generator":
            return G, (torch.randn(batch, 4, generator=g),), {"batch_level": [1]}
        return ex.DiscriminatorLoss(D, G), (torch.rand(batch, 64, generator=g) * 2 - 1, torch.randn(batch, 4, generator=g)), \
            {"batch_level": [1, 1]}
    if name in ("gru", "transformer"):
        ex = load_example("seq2seq")
        f = ex.GRUSeq2Seq(6, d_emb=8, hidden=12) if name == "gru" else ex.Transformer(6, d=16, heads=2, d_ff=24, layers=1)
        x, y = ex.make_batch(g, batch, 5, 6, "reverse")
        return ex.Seq2Seq(f), (x, y), {"batch_level": [1, 1]}
    raise KeyError(name)


NAMES = ("pi", "pgloss", "q", "dqnloss", "mlp", "cnn", "crossentropy", "vae", "generator", "gan-dloss", "gru",
         "transformer")
