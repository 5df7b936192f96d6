"""Tests for examples/seq2seq: the GRU encoder-decoder and the Transformer written in Kokoyi.

* each model's ``train.py`` runs a few steps in a subprocess and writes a sane
  ``summary.json`` and a PNG, and is deterministic for a fixed seed;
* each Kokoyi model (``seq2seq.kyi``) gives the values and gradients of hand-written
  PyTorch (``torch.gru_cell``, ``F.scaled_dot_product_attention``, ``F.cross_entropy``)
  on a small batch, and greedy decoding matches a Python loop;
* batched calls (``batch_level``) equal the per-sample calls stacked, without falling
  back to ``torch.func.vmap``.
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
EXAMPLE = REPO / "examples" / "seq2seq"

pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

if str(REPO) not in sys.path:
    sys.path.append(str(REPO))
import kokoyi
from kokoyi.runtime.specialize import KokoyiBatchLoop


def _load_train():
    spec = importlib.util.spec_from_file_location("seq2seq_train", EXAMPLE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = _load_train()

VOCAB = 6
TINY = {
    "gru": ["--d-emb", "8", "--hidden", "16"],
    "lstm": ["--d-emb", "8", "--hidden", "16"],
    "transformer": ["--d-model", "16", "--heads", "2", "--d-ff", "16", "--layers", "2"],
}


@pytest.fixture(autouse=True)
def _own_definitions():
    """kokoyi.symbol is one namespace per process: make sure names such as `Attention` are ours."""
    kokoyi.load(EXAMPLE / "seq2seq.kyi")
    with warnings.catch_warnings():
        warnings.simplefilter("error", KokoyiBatchLoop)
        yield


def _gru(seed: int = 0, cell: str = "kokoyi") -> train.Seq2Seq:
    torch.manual_seed(seed)
    return train.Seq2Seq(train.GRUSeq2Seq(VOCAB, d_emb=8, hidden=12, cell=cell))


def _transformer(seed: int = 0, layers: int = 2) -> train.Seq2Seq:
    torch.manual_seed(seed)
    return train.Seq2Seq(train.Transformer(VOCAB, d=16, heads=2, d_ff=24, layers=layers))


def _lstm(seed: int = 0) -> train.Seq2Seq:
    torch.manual_seed(seed)
    return train.Seq2Seq(train.LSTMSeq2Seq(VOCAB, d_emb=8, hidden=12))


MODELS = {"gru": _gru, "gru-torch-cell": lambda seed=0: _gru(seed, cell="torch"), "lstm": _lstm,
          "transformer": _transformer}


def _data(batch: int = 3, length: int = 5, seed: int = 1):
    x, y = train.make_batch(torch.Generator().manual_seed(seed), batch, length, VOCAB, "reverse")
    return x, y


def _shift(y: torch.Tensor) -> torch.Tensor:
    """The decoder's input: bos, then the target without its last token."""
    return torch.cat([torch.full_like(y[:, :1], train.BOS), y[:, :-1]], dim=1)


# ---- hand-written PyTorch ------------------------------------------------------------------
def _gates(cell):
    """torch.gru_cell's weights from either cell (torch orders the gates reset, update, new)."""
    if isinstance(cell, torch.nn.GRUCell):
        return cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    order = (1, 0, 2)  # W[0] update, W[1] reset, W[2] candidate in seq2seq.kyi
    w_ih = torch.cat([cell.W[k].weight for k in order])
    w_hh = torch.cat([cell.U[k].weight for k in order])
    b_ih = torch.cat([cell.W[k].bias for k in order])
    b_hh = torch.cat([cell.U[k].bias for k in order])
    return w_ih, w_hh, b_ih, b_hh


def reference_gru_logits(f: train.GRUSeq2Seq, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    batch = x.shape[0]
    h = f.h_0.expand(batch, -1)
    for t in range(x.shape[1]):
        h = torch.gru_cell(f.E(x[:, t]), h, *_gates(f.Enc))
    states = []
    for t in range(u.shape[1]):
        h = torch.gru_cell(f.E(u[:, t]), h, *_gates(f.Dec))
        states.append(h)
    return f.Out(torch.stack(states, dim=1))


def _lstm_weights(gates, d_emb: int):
    """torch.lstm_cell's weights from seq2seq.kyi's gates F[k] on [embedding, state] (torch
    orders them input, forget, candidate, output; seq2seq.kyi forget, input, candidate, output)."""
    order = (1, 0, 2, 3)
    w_ih = torch.cat([gates[k].weight[:, :d_emb] for k in order])
    w_hh = torch.cat([gates[k].weight[:, d_emb:] for k in order])
    b_ih = torch.cat([gates[k].bias for k in order])
    return w_ih, w_hh, b_ih, torch.zeros_like(b_ih)


def reference_lstm_logits(f: train.LSTMSeq2Seq, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    batch, d_emb = x.shape[0], f.E.embedding_dim
    state = (f.h_0.expand(batch, -1), f.c_0.expand(batch, -1))
    for t in range(x.shape[1]):
        state = torch.lstm_cell(f.E(x[:, t]), state, *_lstm_weights(f.F, d_emb))
    hs = []
    for t in range(u.shape[1]):
        state = torch.lstm_cell(f.E(u[:, t]), state, *_lstm_weights(f.G, d_emb))
        hs.append(state[0])
    return f.Out(torch.stack(hs, dim=1))


def _positional_encoding(length: int, d: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(length, d)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)
    return pe


def _multi_head(X, Z, W_Q, W_K, W_V, W_O, causal: bool):
    heads, dk, d = W_Q.shape
    batch, tq, tk = X.shape[0], X.shape[1], Z.shape[1]

    def split(A, W, length):  # (B, T, d) -> (B, heads, T, dk)
        return (A @ W.reshape(heads * dk, d).T).view(batch, length, heads, dk).transpose(1, 2)

    a = F.scaled_dot_product_attention(split(X, W_Q, tq), split(Z, W_K, tk), split(Z, W_V, tk), is_causal=causal)
    return a.transpose(1, 2).reshape(batch, tq, heads * dk) @ W_O.reshape(heads * dk, d)


def _feed_forward(layer, A):
    return A + layer.FF[1](torch.relu(layer.FF[0](layer.LN[-1](A))))


def reference_transformer_logits(f: train.Transformer, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    d = f.E.embedding_dim
    Z = math.sqrt(d) * f.E(x) + _positional_encoding(x.shape[1], d)
    for layer in f.Enc:
        W_Q, W_K, W_V, W_O = layer.W
        Zn = layer.LN[0](Z)
        Z = _feed_forward(layer, Z + _multi_head(Zn, Zn, W_Q, W_K, W_V, W_O, causal=False))
    Z = f.LN[0](Z)
    H = math.sqrt(d) * f.E(u) + _positional_encoding(u.shape[1], d)
    for layer in f.Dec:
        W_Q, W_K, W_V, W_O, C_Q, C_K, C_V, C_O = layer.W
        Hn = layer.LN[0](H)
        A = H + _multi_head(Hn, Hn, W_Q, W_K, W_V, W_O, causal=True)
        B = A + _multi_head(layer.LN[1](A), Z, C_Q, C_K, C_V, C_O, causal=False)
        H = _feed_forward(layer, B)
    return f.Out(f.LN[1](H))


REFERENCES = {"gru": reference_gru_logits, "gru-torch-cell": reference_gru_logits, "lstm": reference_lstm_logits,
              "transformer": reference_transformer_logits}


def reference_loss(kind: str, f, x, y) -> torch.Tensor:
    """Per-sample mean cross-entropy of the next token under teacher forcing."""
    logits = REFERENCES[kind](f, x, _shift(y))
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(dim=1)


@torch.no_grad()
def reference_greedy(f, x: torch.Tensor) -> torch.Tensor:
    """Greedy decoding by a Python loop over the positions, calling the Kokoyi model."""
    u = torch.full_like(x, train.BOS)
    for t in range(1, x.shape[1]):
        u[:, t] = f(x, u, batch_level=[1, 1])[:, t - 1].argmax(-1)
    return f(x, u, batch_level=[1, 1]).argmax(-1)


# ---- the models against hand-written PyTorch -----------------------------------------------
def test_gru_cell_matches_torch_gru_cell():
    torch.manual_seed(0)
    cell = train.GRUCell(5, 7)
    ref = torch.nn.GRUCell(5, 7)
    w_ih, w_hh, b_ih, b_hh = _gates(cell)
    with torch.no_grad():
        ref.weight_ih.copy_(w_ih)
        ref.weight_hh.copy_(w_hh)
        ref.bias_ih.copy_(b_ih)
        ref.bias_hh.copy_(b_hh)
    x = torch.randn(4, 5, requires_grad=True)
    h = torch.randn(4, 7, requires_grad=True)
    ours = cell(x, h, batch_level=[1, 1])
    theirs = ref(x, h)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.stack([cell(x[b], h[b]) for b in range(4)]), theirs, rtol=1e-5, atol=1e-6)
    g_ours = torch.autograd.grad(ours.square().sum(), (x, h))
    g_theirs = torch.autograd.grad(theirs.square().sum(), (x, h))
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_logits_match_hand_written_torch(kind):
    model = MODELS[kind]()
    x, y = _data()
    u = _shift(y)
    with torch.no_grad():
        torch.testing.assert_close(model.f(x, u, batch_level=[1, 1]), REFERENCES[kind](model.f, x, u),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_loss_and_gradients_match_hand_written_torch(kind):
    model = MODELS[kind]()
    x, y = _data()
    params = [p for p in model.parameters()]
    ours = model(x, y, batch_level=[1, 1])
    theirs = reference_loss(kind, model.f, x, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    g_ours = torch.autograd.grad(ours.mean(), params)
    g_theirs = torch.autograd.grad(theirs.mean(), params)
    names = [n for n, _ in model.named_parameters()]
    for name, a, b in zip(names, g_ours, g_theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
    assert any(g.abs().sum() > 0 for g in g_ours)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_batched_calls_equal_stacked_per_sample_calls(kind):
    model = MODELS[kind]()
    x, y = _data(batch=4, length=6)
    with torch.no_grad():
        torch.testing.assert_close(model(x, y, batch_level=[1, 1]),
                                   torch.stack([model(x[b], y[b]) for b in range(4)]), rtol=1e-5, atol=1e-6)
        u = _shift(y)
        torch.testing.assert_close(model.f(x, u, batch_level=[1, 1]),
                                   torch.stack([model.f(x[b], u[b]) for b in range(4)]), rtol=1e-5, atol=1e-5)
        decoded = model.decode(x, batch_level=[1])
        assert decoded.equal(torch.stack([model.decode(x[b]) for b in range(4)]))
    # the source shared by the whole batch (level 0), the targets batched
    with torch.no_grad():
        shared = model(x[0], y, batch_level=[0, 1])
        torch.testing.assert_close(shared, torch.stack([model(x[0], y[b]) for b in range(4)]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_greedy_decoding_matches_a_python_loop(kind):
    model = MODELS[kind](seed=3)
    x, y = _data(batch=5, length=6, seed=2)
    # a few Adam steps, so that the argmax is not the same token everywhere
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        loss = model(x, y, batch_level=[1, 1]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    decoded = model.decode(x, batch_level=[1])
    assert decoded.shape == x.shape and decoded.dtype == torch.long
    assert decoded.equal(reference_greedy(model.f, x))
    assert len(set(decoded.flatten().tolist())) > 1
    assert train.greedy(model, x).equal(decoded)  # the GRU's step-by-step GRUGreedy agrees
    if kind.startswith("gru"):
        assert torch.stack([model.f.decode(x[b]) for b in range(len(x))]).equal(decoded)


def test_the_gru_cells_give_the_same_model():
    """The GRU step written in seq2seq.kyi and kokoyi.nn.GRUCell (torch's), with the same weights."""
    ours, theirs = _gru(cell="kokoyi"), _gru(cell="torch")
    theirs.load_state_dict(ours.state_dict(), strict=False)
    with torch.no_grad():
        for name in ("Enc", "Dec"):
            cell = getattr(theirs.f, name)
            for param, value in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                    _gates(getattr(ours.f, name))):
                param.copy_(value)
    x, y = _data()
    torch.testing.assert_close(theirs(x, y, batch_level=[1, 1]), ours(x, y, batch_level=[1, 1]), rtol=1e-5, atol=1e-6)
    assert theirs.f.decode(x, batch_level=[1]).equal(ours.f.decode(x, batch_level=[1]))


def test_causal_models_ignore_future_decoder_inputs():
    """Greedy decoding relies on it: logits at position t do not depend on u[t+1:]."""
    model = _transformer()
    x, y = _data(batch=2, length=6)
    u = _shift(y)
    v = u.clone()
    v[:, 3:] = (v[:, 3:] % VOCAB) + 1
    with torch.no_grad():
        a, b = model.f(x, u, batch_level=[1, 1]), model.f(x, v, batch_level=[1, 1])
    torch.testing.assert_close(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_tasks():
    x, y = train.make_batch(torch.Generator().manual_seed(0), 4, 7, 9, "reverse")
    assert x.min() >= 1 and x.max() <= 9 and y.equal(x.flip(-1))
    x, y = train.make_batch(torch.Generator().manual_seed(0), 4, 7, 9, "sort")
    assert y.equal(x.sort(-1).values)


# ---- the scripts ---------------------------------------------------------------------------
def _run_script(kind: str, out: Path) -> dict:
    cmd = [sys.executable, str(EXAMPLE / "train.py"), "--model", kind, "--seed", "0", "--steps", "3",
           "--eval-every", "2", "--batch-size", "8", "--length", "4", "--test-size", "16", "--out", str(out),
           "--quiet", *TINY[kind]]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "KokoyiBatchLoop" not in proc.stderr
    assert "held-out token accuracy" in proc.stdout
    png = out / "curves.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("kind", sorted(TINY))
def test_script_runs(kind, tmp_path):
    summary = _run_script(kind, tmp_path / kind)
    assert summary["model"] == kind and summary["task"] == "reverse" and summary["seed"] == 0
    assert summary["steps"] == 3 == len(summary["losses"])
    assert summary["losses_finite"] and all(math.isfinite(v) for v in summary["losses"])
    assert math.isfinite(summary["final_train_loss"]) and math.isfinite(summary["test_loss"])
    assert 0 <= summary["test_token_accuracy"] <= 1 and 0 <= summary["test_sequence_accuracy"] <= 1
    assert [h["step"] for h in summary["history"]] == [0, 2, 3]
    assert summary["parameters"] > 0 and summary["wall_time_s"] > 0
    assert len(summary["examples"]) == 5 and len(summary["examples"][0]["greedy"]) == 4


@pytest.mark.parametrize("kind", sorted(TINY))
def test_script_is_deterministic(kind, tmp_path):
    threads = torch.get_num_threads()
    argv = ["--model", kind, "--steps", "3", "--eval-every", "10", "--batch-size", "8", "--length", "4",
            "--test-size", "16", "--quiet", *TINY[kind]]
    if kind == "gru":
        argv += ["--cell", "torch"]  # the subprocess runs cover the Kokoyi cell
    try:
        a = train.main([*argv, "--out", str(tmp_path / "a")])
        b = train.main([*argv, "--out", str(tmp_path / "b")])
    finally:
        torch.set_num_threads(threads)
    assert a["losses"] == b["losses"] and a["examples"] == b["examples"]
    assert a["test_token_accuracy"] == b["test_token_accuracy"]
