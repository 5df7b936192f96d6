"""Tests for the digits examples: examples/classifiers, examples/vae and examples/gan.

Each script runs in a subprocess on a tiny budget and must write a sane ``summary.json``
and its PNGs; a tiny run repeated in-process must give the same numbers (determinism).
Each Kokoyi model and loss must give the values and gradients of a few lines of
hand-written torch on a small batch, and its batched call (``batch_level``) must equal
the stacked per-sample calls, with no ``KokoyiBatchLoop``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

PNG = b"\x89PNG\r\n\x1a\n"
_loaded = 0


def load_example(folder: str):
    """A fresh import of examples/<folder>/train.py (it loads its .kyi into kokoyi.symbol,
    which the autouse fixture clears between tests)."""
    global _loaded
    _loaded += 1
    spec = importlib.util.spec_from_file_location(f"zoo_{folder}_{_loaded}", EXAMPLES / folder / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def no_batch_loop():
    """A batched call that loops over its samples fails the test."""
    from kokoyi.runtime.specialize import KokoyiBatchLoop

    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        yield


def run_script(folder: str, out: Path, *options: str) -> dict:
    cmd = [sys.executable, "-W", "error::UserWarning", str(EXAMPLES / folder / "train.py"), "--seed", "0",
           "--out", str(out), "--quiet", *options]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "wrote" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr  # --quiet: no progress bar, and no warnings
    return json.loads((out / "summary.json").read_text())


def assert_png(path: Path) -> None:
    assert path.exists() and path.read_bytes()[:8] == PNG, path


def finite(*values) -> bool:
    return all(math.isfinite(v) for v in values)


def same_values_and_grads(kokoyi_fn, torch_fn, params, atol=1e-5):
    """kokoyi_fn() and torch_fn() return tensors (or tuples) of equal values, and the sum of
    their first outputs gives the same gradients for params."""
    def run(fn):
        for p in params:
            p.grad = None
        out = fn()
        out = out if isinstance(out, tuple) else (out,)
        out[0].sum().backward()
        return [o.detach() for o in out], [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]

    got, got_grads = run(kokoyi_fn)
    want, want_grads = run(torch_fn)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, atol=atol, rtol=1e-5)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, atol=atol, rtol=1e-5)
    return got_grads


def stacked(fn, inputs, n):
    """Per-sample calls fn(*sample) for each of n samples, stacked (per output)."""
    outs = [fn(*(x[i] for x in inputs)) for i in range(n)]
    if isinstance(outs[0], tuple):
        return tuple(torch.stack(o) for o in zip(*outs))
    return torch.stack(outs)


def assert_close_all(a, b, atol=1e-5):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-5)


# ---- the scripts ---------------------------------------------------------------------

@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_classifier_script(model, tmp_path):
    s = run_script("classifiers", tmp_path, "--model", model, "--epochs", "2")
    assert s["model"] == model and s["epochs"] == 2 and s["n_train"] + s["n_test"] == 1797
    assert s["losses_finite"] and finite(s["final_train_loss"], s["final_test_loss"])
    assert len(s["history"]["test_accuracy"]) == 2
    assert s["test_accuracy"] > 0.3  # chance is 0.1; two epochs already reach ~0.8-0.9
    assert s["history"]["train_loss"][-1] < math.log(10)  # below the loss of a uniform guess
    assert_png(tmp_path / "curves.png")


def test_vae_script(tmp_path):
    s = run_script("vae", tmp_path, "--epochs", "2", "--max-batches", "6")
    assert s["epochs"] == 2 and s["batches_per_epoch"] == 6 and s["losses_finite"]
    assert finite(s["final_train_loss"], s["final_test_loss"], s["final_test_rec"], s["final_test_kl"])
    assert s["final_test_kl"] >= 0 and s["final_test_rec"] > 0
    assert s["final_test_loss"] == pytest.approx(s["final_test_rec"] + s["final_test_kl"], rel=1e-4)
    assert s["history"]["train_loss"][-1] < s["history"]["train_loss"][0]
    for png in ("loss.png", "grid.png"):
        assert_png(tmp_path / png)


def test_gan_script(tmp_path):
    s = run_script("gan", tmp_path, "--epochs", "2", "--max-batches", "6")
    assert s["epochs"] == 2 and s["batches_per_epoch"] == 6 and s["losses_finite"]
    assert finite(s["final_d_loss"], s["final_g_loss"]) and s["final_d_loss"] > 0 and s["final_g_loss"] > 0
    scores = s["scores"]
    assert 1.0 <= scores["generated"]["digit_score"] <= 10.0
    assert scores["real"]["digit_score"] > 5 and scores["real"]["mean_confidence"] > 0.8
    assert sum(scores["generated"]["class_shares"]) == pytest.approx(1.0, abs=1e-3)
    for png in ("loss.png", "samples.png"):
        assert_png(tmp_path / png)


@pytest.mark.parametrize("folder, options", [
    ("classifiers", ["--model", "cnn", "--epochs", "1", "--max-batches", "3"]),
    ("vae", ["--epochs", "1", "--max-batches", "3"]),
    ("gan", ["--epochs", "1", "--max-batches", "3", "--no-score"]),
])
def test_scripts_are_deterministic(folder, options, tmp_path, capsys):
    example = load_example(folder)
    threads = torch.get_num_threads()
    try:
        a = example.main([*options, "--seed", "3", "--quiet", "--out", str(tmp_path / "a")])
        assert torch.get_num_threads() == 1 and a["threads"] == 1
        b = example.main([*options, "--seed", "3", "--quiet", "--out", str(tmp_path / "b")])
        c = example.main([*options, "--seed", "4", "--quiet", "--out", str(tmp_path / "c")])
    finally:
        torch.set_num_threads(threads)
    assert a["history"] == b["history"]
    assert c["history"] != a["history"]


# ---- the math against hand-written torch ---------------------------------------------

def test_mlp_matches_torch():
    ex = load_example("classifiers")
    torch.manual_seed(0)
    model = ex.MLP(64, 16)
    x = torch.rand(5, 64)
    lin = model.Linears

    def by_hand(x):
        return lin[2](F.relu(lin[1](F.relu(lin[0](x)))))

    same_values_and_grads(lambda: model(x, batch_level=[1]), lambda: by_hand(x), list(model.parameters()))
    assert_close_all(model(x, batch_level=[1]), stacked(model, (x,), 5))


def test_cnn_matches_torch():
    ex = load_example("classifiers")
    torch.manual_seed(0)
    model = ex.CNN(8, (4, 6))
    x = torch.rand(5, 1, 8, 8)

    def by_hand(x):
        h = F.max_pool2d(F.relu(model.Convs[0](x)), 2)
        h = F.max_pool2d(F.relu(model.Convs[1](h)), 2)
        return h.flatten(1) @ model.V.flatten(1).T + model.b

    grads = same_values_and_grads(lambda: model(x, batch_level=[1]), lambda: by_hand(x), list(model.parameters()))
    assert all(g.abs().sum() > 0 for g in grads)
    assert model(x, batch_level=[1]).shape == (5, 10)
    assert_close_all(model(x, batch_level=[1]), stacked(model, (x,), 5))
    # an image size other than 8 (the pooling reads it from the feature map)
    model12 = ex.CNN(12, (2, 3))
    x12 = torch.rand(3, 1, 12, 12)
    h = F.max_pool2d(F.relu(model12.Convs[1](F.max_pool2d(F.relu(model12.Convs[0](x12)), 2))), 2)
    torch.testing.assert_close(model12(x12, batch_level=[1]), h.flatten(1) @ model12.V.flatten(1).T + model12.b)


def test_max_pool_matches_torch():
    ex = load_example("classifiers")
    import kokoyi

    unit = kokoyi.compile(r"""
\Module{PoolOnly}{h}
  \Return MaxPool(h) \\
\EndModule
""", filename="pool_only.kyi")
    assert unit is not None and ex is not None
    pool = kokoyi.symbol["PoolOnly"]
    h = torch.randn(4, 3, 6, 6, requires_grad=True)
    same_values_and_grads(lambda: pool(None, h, batch_level=[1]), lambda: F.max_pool2d(h, 2), [h])
    torch.testing.assert_close(pool(None, h[0]), F.max_pool2d(h[0], 2))


def _logits_and_labels():
    """Six samples of ten classes: logits (leaves) and labels."""
    torch.manual_seed(0)
    return (torch.randn(6, 10) * 3).requires_grad_(), torch.tensor([0, 3, 9, 1, 1, 7])


def test_cross_entropy_matches_torch():
    loss = load_example("classifiers").CrossEntropyLoss()
    z, y = _logits_and_labels()
    same_values_and_grads(lambda: loss(z, y, batch_level=[1, 1]), lambda: F.cross_entropy(z, y, reduction="none"),
                          [z])
    assert_close_all(loss(z, y, batch_level=[1, 1]), stacked(loss, (z, y), 6))
    # large logits: the max is taken out, nothing overflows
    big = torch.tensor([[1000.0, -1000.0, 0.0], [50.0, 60.0, 70.0]])
    torch.testing.assert_close(loss(big, torch.tensor([1, 2]), batch_level=[1, 1]),
                               F.cross_entropy(big, torch.tensor([1, 2]), reduction="none"))


def test_mean_cross_entropy_is_the_minibatch_mean_in_one_torch_loss():
    import kokoyi

    mean = load_example("classifiers").MeanCrossEntropyLoss()
    z, y = _logits_and_labels()
    same_values_and_grads(lambda: mean(z, y), lambda: F.cross_entropy(z, y), [z])
    assert type(mean(z, y).grad_fn).__name__.startswith("NllLoss")  # the mean inside torch's loss
    codes = [c[2] for c in kokoyi.symbol["MeanCrossEntropyLoss"].__kokoyi_specializations__.cache.values()]
    assert codes and all("kx.cross_entropy_reduced(" in c for c in codes), codes
    with pytest.raises(kokoyi.KokoyiRuntimeError, match="over an empty range"):
        mean(z[:0], y[:0])


def test_vae_matches_torch():
    ex = load_example("vae")
    torch.manual_seed(0)
    model = ex.VAE(64, 16, 3)
    x, eps = torch.rand(5, 64), torch.randn(5, 3)
    E, Fd = model.q.E, model.p.F

    def by_hand(x, eps):
        h = F.relu(E[0](x))
        mu, log_var = E[1](h), E[2](h)
        z = mu + torch.exp(0.5 * log_var) * eps
        logits = Fd[1](F.relu(Fd[0](z)))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        kl = -0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum(-1)
        return rec + kl, rec, kl, torch.sigmoid(logits)

    params = list(model.parameters())
    grads = same_values_and_grads(lambda: model(x, eps, batch_level=[1, 1]), lambda: by_hand(x, eps), params)
    assert all(g.abs().sum() > 0 for g in grads)
    assert_close_all(model(x, eps, batch_level=[1, 1]), stacked(model, (x, eps), 5))
    # eps shared by the whole batch (batch_level 0) is eps broadcast
    assert_close_all(model(x, eps[0], batch_level=[1, 0]), model(x, eps[0].expand(5, 3), batch_level=[1, 1]))
    # the encoder alone: (mu, log sigma^2)
    h = F.relu(E[0](x))
    assert_close_all(model.q(x, batch_level=[1]), (E[1](h), E[2](h)))
    assert_close_all(model.q(x, batch_level=[1]), stacked(model.q, (x,), 5))
    # the decoder alone
    z = torch.randn(4, 3)
    torch.testing.assert_close(model.p(z, batch_level=[1]), Fd[1](F.relu(Fd[0](z))))
    assert_close_all(model.p(z, batch_level=[1]), stacked(model.p, (z,), 4))


def test_gan_matches_torch():
    ex = load_example("gan")
    torch.manual_seed(0)
    G, D = ex.Generator(4, 16, 64), ex.Discriminator(64, 16)
    d_loss, g_loss = ex.DiscriminatorLoss(D, G), ex.GeneratorLoss(D, G)
    x, z = torch.rand(5, 64) * 2 - 1, torch.randn(5, 4)

    def gen(z):
        h = F.relu(F.layer_norm(G.G[0](z), (16,)))
        h = F.relu(F.layer_norm(G.G[1](h), (16,)))
        return torch.tanh(G.G[2](h))

    def dis(x):
        h = F.leaky_relu(D.W[0](x), 0.2)
        h = F.leaky_relu(D.W[1](h), 0.2)
        return D.W[2](h)[:, 0]

    g_params, d_params = list(G.parameters()), list(D.parameters())
    same_values_and_grads(lambda: G(z, batch_level=[1]), lambda: gen(z), g_params)
    same_values_and_grads(lambda: D(x, batch_level=[1]), lambda: dis(x), d_params)
    ones, zeros = torch.ones(5), torch.zeros(5)
    grads = same_values_and_grads(
        lambda: d_loss(x, z, batch_level=[1, 1]),
        lambda: (F.binary_cross_entropy_with_logits(dis(x), ones, reduction="none")
                 + F.binary_cross_entropy_with_logits(dis(gen(z).detach()), zeros, reduction="none")),
        d_params + g_params)
    assert all(g.abs().sum() > 0 for g in grads[:len(d_params)])
    assert all(g.abs().sum() == 0 for g in grads[len(d_params):])  # sg: nothing flows into G
    same_values_and_grads(lambda: g_loss(z, batch_level=[1]),
                          lambda: F.binary_cross_entropy_with_logits(dis(gen(z)), ones, reduction="none"),
                          d_params + g_params)
    for module, inputs in ((G, (z,)), (D, (x,)), (d_loss, (x, z)), (g_loss, (z,))):
        assert_close_all(module(*inputs, batch_level=[1] * len(inputs)), stacked(module, inputs, 5))
