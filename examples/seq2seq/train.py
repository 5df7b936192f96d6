"""Sequence-to-sequence models written in Kokoyi, trained to reverse (or sort) digit sequences.

    python examples/seq2seq/train.py --model gru --seed 0
    python examples/seq2seq/train.py --model lstm --seed 0
    python examples/seq2seq/train.py --model transformer --seed 0
    python examples/seq2seq/train.py --model transformer --task sort --length 10

The models, the loss and greedy decoding come from ``seq2seq.kyi``: a GRU
encoder-decoder (``GRUSeq2Seq``), an LSTM encoder-decoder written as recurrence groups
(``LSTMSeq2Seq``) and a Transformer (``Transformer``), all functions
``f(x, u) -> logits``, the teacher-forced cross-entropy ``Seq2SeqLoss`` and
``GreedyDecode``, written once for any such ``f`` (the GRU also decodes step by step,
``GRUGreedy``).  Python generates the data (random
digit sequences; nothing is downloaded), runs Adam on minibatches (``batch_level=[1, 1]``)
and measures greedy decoding on a held-out set.

Writes ``summary.json`` and ``curves.png`` to ``--out`` (default
``runs/seq2seq/<model>-<task>-L<length>-seed<seed>``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # kokoyi from a source checkout
    sys.path.append(str(REPO))

import kokoyi

KYI = Path(__file__).with_name("seq2seq.kyi")
kokoyi.load(KYI)

BOS = 0  # `bos` in seq2seq.kyi; the digits are the tokens 1 ... vocab


# ---- the models: parameters in Python, math in seq2seq.kyi -------------------------------
class GRUCell(torch.nn.Module):
    """One GRU step: W[k] acts on the input, U[k] on the state (k = update, reset, candidate)."""

    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.W = torch.nn.ModuleList([kokoyi.nn.Linear(d_in, hidden) for _ in range(3)])
        self.U = torch.nn.ModuleList([kokoyi.nn.Linear(hidden, hidden) for _ in range(3)])

    def get_parameters(self):
        return self.W, self.U

    forward = kokoyi.symbol["GRUCell"]


CELLS = {"kokoyi": GRUCell, "torch": kokoyi.nn.GRUCell}  # the GRU step of seq2seq.kyi, or torch's


class GRUSeq2Seq(torch.nn.Module):
    """GRU encoder-decoder: the encoder's last state starts the decoder.

    ``forward`` gives the teacher-forced logits, ``decode`` greedy decoding step by step.
    """

    def __init__(self, vocab: int, d_emb: int = 32, hidden: int = 128, cell: str = "kokoyi"):
        super().__init__()
        self.E = kokoyi.nn.Embedding(vocab + 1, d_emb)
        self.Enc = CELLS[cell](d_emb, hidden)
        self.h_0 = torch.nn.Parameter(torch.zeros(hidden))
        self.Dec = CELLS[cell](d_emb, hidden)
        self.Out = kokoyi.nn.Linear(hidden, vocab + 1)

    def get_parameters(self):
        return self.E, self.Enc, self.h_0, self.Dec, self.Out

    forward = kokoyi.symbol["GRUSeq2Seq"]
    decode = kokoyi.symbol["GRUGreedy"]


class LSTMSeq2Seq(torch.nn.Module):
    """LSTM encoder-decoder written as recurrence groups (seq2seq.kyi): F[k] and G[k] are the
    encoder's and the decoder's gates (forget, input, candidate, output) on [embedding, state]."""

    def __init__(self, vocab: int, d_emb: int = 32, hidden: int = 128):
        super().__init__()
        self.E = kokoyi.nn.Embedding(vocab + 1, d_emb)
        self.F = torch.nn.ModuleList([kokoyi.nn.Linear(d_emb + hidden, hidden) for _ in range(4)])
        self.G = torch.nn.ModuleList([kokoyi.nn.Linear(d_emb + hidden, hidden) for _ in range(4)])
        for gates in (self.F, self.G):  # a forget gate that starts open, as is usual for LSTMs
            torch.nn.init.constant_(gates[0].bias, 1.0)
        self.h_0 = torch.nn.Parameter(torch.zeros(hidden))
        self.c_0 = torch.nn.Parameter(torch.zeros(hidden))
        self.Out = kokoyi.nn.Linear(hidden, vocab + 1)

    def get_parameters(self):
        return self.E, self.F, self.G, self.h_0, self.c_0, self.Out

    forward = kokoyi.symbol["LSTMSeq2Seq"]


def attention_weights(heads: int, d: int, count: int) -> torch.nn.ParameterList:
    """`count` projection tensors of shape (heads, d / heads, d), Xavier-initialised per head."""
    dk = d // heads
    out = []
    for _ in range(count):
        w = torch.empty(heads, dk, d)
        for h in range(heads):
            torch.nn.init.xavier_uniform_(w[h])
        out.append(torch.nn.Parameter(w))
    return torch.nn.ParameterList(out)


class EncoderLayer(torch.nn.Module):
    def __init__(self, d: int, heads: int, d_ff: int):
        super().__init__()
        self.W = attention_weights(heads, d, 4)  # W_Q, W_K, W_V, W_O
        self.LN = torch.nn.ModuleList([kokoyi.nn.LayerNorm(d) for _ in range(2)])
        self.FF = torch.nn.ModuleList([kokoyi.nn.Linear(d, d_ff), kokoyi.nn.Linear(d_ff, d)])

    def get_parameters(self):
        return (*self.W, self.LN, self.FF)

    forward = kokoyi.symbol["EncoderLayer"]


class DecoderLayer(torch.nn.Module):
    def __init__(self, d: int, heads: int, d_ff: int):
        super().__init__()
        self.W = attention_weights(heads, d, 8)  # W_Q, W_K, W_V, W_O, then C_Q, C_K, C_V, C_O
        self.LN = torch.nn.ModuleList([kokoyi.nn.LayerNorm(d) for _ in range(3)])
        self.FF = torch.nn.ModuleList([kokoyi.nn.Linear(d, d_ff), kokoyi.nn.Linear(d_ff, d)])

    def get_parameters(self):
        return (*self.W, self.LN, self.FF)

    forward = kokoyi.symbol["DecoderLayer"]


class Transformer(torch.nn.Module):
    """Pre-LN encoder and decoder stacks of ``layers`` layers each, with final LayerNorms."""

    def __init__(self, vocab: int, d: int = 64, heads: int = 4, d_ff: int = 128, layers: int = 1,
                 scaled_embedding_init: bool = True):
        super().__init__()
        if d % heads:
            raise ValueError(f"the model width {d} is not a multiple of the number of heads {heads}")
        self.E = kokoyi.nn.Embedding(vocab + 1, d)
        if scaled_embedding_init:  # sqrt(d) E(x) then has entries of size 1, like PE (torch's N(0, 1): sqrt(d))
            torch.nn.init.normal_(self.E.weight, std=d ** -0.5)
        self.Enc = torch.nn.ModuleList([EncoderLayer(d, heads, d_ff) for _ in range(layers)])
        self.Dec = torch.nn.ModuleList([DecoderLayer(d, heads, d_ff) for _ in range(layers)])
        self.LN = torch.nn.ModuleList([kokoyi.nn.LayerNorm(d) for _ in range(2)])
        self.Out = kokoyi.nn.Linear(d, vocab + 1)

    def get_parameters(self):
        return self.E, self.Enc, self.Dec, self.LN, self.Out

    forward = kokoyi.symbol["Transformer"]


class Seq2Seq(torch.nn.Module):
    """A model f(x, u) -> logits with the Kokoyi loss (``forward``) and greedy decoding
    (``decode``, which calls f on whole sequences: any causal f)."""

    def __init__(self, f: torch.nn.Module):
        super().__init__()
        self.f = f

    def get_parameters(self):
        return self.f

    forward = kokoyi.symbol["Seq2SeqLoss"]
    decode = kokoyi.symbol["GreedyDecode"]


def build_model(args) -> Seq2Seq:
    if args.model == "gru":
        return Seq2Seq(GRUSeq2Seq(args.vocab, args.d_emb, args.hidden, args.cell))
    if args.model == "lstm":
        return Seq2Seq(LSTMSeq2Seq(args.vocab, args.d_emb, args.hidden))
    return Seq2Seq(Transformer(args.vocab, args.d_model, args.heads, args.d_ff, args.layers,
                               scaled_embedding_init=not args.torch_embedding_init))


# ---- data --------------------------------------------------------------------------------
def make_batch(gen: torch.Generator, size: int, length: int, vocab: int, task: str):
    """Random digit sequences x (tokens 1 ... vocab) and their targets y."""
    x = torch.randint(1, vocab + 1, (size, length), generator=gen)
    y = x.flip(-1) if task == "reverse" else x.sort(-1).values
    return x, y


def greedy(model: Seq2Seq, x: torch.Tensor) -> torch.Tensor:
    """Greedy decoding of a batch: the GRU step by step (GRUGreedy), the Transformer with
    GreedyDecode (which runs the decoder over the whole prefix at every step)."""
    if isinstance(model.f, GRUSeq2Seq):
        return model.f.decode(x, batch_level=[1])
    return model.decode(x, batch_level=[1])


@torch.no_grad()
def evaluate(model: Seq2Seq, x: torch.Tensor, y: torch.Tensor, chunk: int = 500) -> dict:
    """Greedy decoding on (x, y): token accuracy, exact-sequence accuracy and teacher-forced loss."""
    preds = torch.cat([greedy(model, x[i:i + chunk]) for i in range(0, len(x), chunk)])
    loss = torch.cat([model(x[i:i + chunk], y[i:i + chunk], batch_level=[1, 1]) for i in range(0, len(x), chunk)])
    correct = preds == y
    return {"token_accuracy": correct.float().mean().item(),
            "sequence_accuracy": correct.all(-1).float().mean().item(),
            "loss": loss.mean().item(), "predictions": preds}


def learning_rate(step: int, args) -> float:
    """Linear warm-up over ``--warmup`` steps, then cosine decay to ``lr / 10``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


# ---- command line ------------------------------------------------------------------------
DEFAULTS = {  # per model: steps, peak learning rate, steps between held-out evaluations
    "gru": {"steps": 3000, "lr": 3e-3, "eval_every": 250},
    "lstm": {"steps": 3000, "lr": 3e-3, "eval_every": 250},
    "transformer": {"steps": 1000, "lr": 1e-3, "eval_every": 100},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["gru", "lstm", "transformer"], default="gru")
    p.add_argument("--task", choices=["reverse", "sort"], default="reverse")
    p.add_argument("--length", type=int, default=8, help="sequence length")
    p.add_argument("--vocab", type=int, default=10, help="number of distinct digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: 3000 gru, 1000 transformer)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 3e-3 gru, 1e-3 transformer)")
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0 = off)")
    p.add_argument("--d-emb", type=int, default=32, help="GRU and LSTM: embedding size")
    p.add_argument("--hidden", type=int, default=128, help="GRU and LSTM: state size")
    p.add_argument("--cell", choices=sorted(CELLS), default="kokoyi",
                   help="GRU: the cell written in seq2seq.kyi, or kokoyi.nn.GRUCell (torch's)")
    p.add_argument("--d-model", type=int, default=64, help="Transformer: model width")
    p.add_argument("--heads", type=int, default=4, help="Transformer: attention heads")
    p.add_argument("--d-ff", type=int, default=128, help="Transformer: feed-forward width")
    p.add_argument("--layers", type=int, default=1, help="Transformer: encoder layers and decoder layers")
    p.add_argument("--torch-embedding-init", action="store_true",
                   help="Transformer: keep torch's N(0, 1) embedding rows instead of N(0, 1/d)")
    p.add_argument("--test-size", type=int, default=1000, help="held-out sequences")
    p.add_argument("--eval-every", type=int, default=None,
                   help="steps between held-out evaluations (default: 250 gru, 100 transformer)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default=None, help="output folder for summary.json and curves.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    for key, value in DEFAULTS[args.model].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def save_plot(losses: list[float], history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = range(1, len(losses) + 1)
    ax_loss.plot(steps, losses, lw=0.6, alpha=0.4, label="minibatch loss")
    window = max(1, min(50, len(losses) // 10))
    smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
              for i in range(len(losses))]
    ax_loss.plot(steps, smooth, lw=1.8, label=f"{window}-step mean")
    ax_loss.plot([h["step"] for h in history], [h["loss"] for h in history], "o-", ms=3, label="held-out loss")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("cross-entropy per token")
    ax_loss.legend()
    ax_acc.plot([h["step"] for h in history], [h["token_accuracy"] for h in history], "o-", ms=3,
                label="token accuracy (greedy)")
    ax_acc.plot([h["step"] for h in history], [h["sequence_accuracy"] for h in history], "s-", ms=3,
                label="exact-sequence accuracy (greedy)")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("held-out accuracy")
    ax_acc.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out) if args.out else REPO / "runs" / "seq2seq" / (
        f"{args.model}-{args.task}-L{args.length}-seed{args.seed}")
    out.mkdir(parents=True, exist_ok=True)

    model = build_model(args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_gen = torch.Generator().manual_seed(args.seed)
    test_x, test_y = make_batch(torch.Generator().manual_seed(10_000 + args.seed), args.test_size, args.length,
                                args.vocab, args.task)
    n_params = sum(p.numel() for p in model.parameters())

    from tqdm import tqdm

    losses: list[float] = []
    history: list[dict] = []

    eval_time = 0.0

    def record(step: int) -> dict:
        nonlocal eval_time
        start = time.perf_counter()
        result = evaluate(model, test_x, test_y)
        eval_time += time.perf_counter() - start
        history.append({"step": step, **{k: v for k, v in result.items() if k != "predictions"}})
        return result

    t0 = time.perf_counter()
    record(0)
    bar = tqdm(total=args.steps, desc=f"{args.model} {args.task} L={args.length} seed {args.seed}", unit="step",
               disable=args.quiet, dynamic_ncols=True, mininterval=0.5)
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args)
        x, y = make_batch(train_gen, args.batch_size, args.length, args.vocab, args.task)
        loss = model(x, y, batch_level=[1, 1]).mean()
        opt.zero_grad()
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            r = record(step + 1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", tok=f"{r['token_accuracy']:.3f}",
                            seq=f"{r['sequence_accuracy']:.3f}", refresh=False)
        elif step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        bar.update(1)
    bar.close()
    final = record(args.steps)
    wall = time.perf_counter() - t0
    train_time = wall - eval_time

    tail = losses[-50:]
    examples = [{"x": test_x[i].tolist(), "target": test_y[i].tolist(), "greedy": final["predictions"][i].tolist()}
                for i in range(5)]
    summary = {
        "model": args.model, "task": args.task, "length": args.length, "vocab": args.vocab, "seed": args.seed,
        "steps": args.steps, "batch_size": args.batch_size, "parameters": n_params,
        "hyperparameters": {k: getattr(args, k) for k in (
            "lr", "warmup", "clip", "d_emb", "hidden", "cell", "d_model", "heads", "d_ff", "layers", "torch_embedding_init", "threads")},
        "optimizer": "Adam, linear warm-up then cosine decay to lr/10",
        "test_size": args.test_size,
        "test_token_accuracy": final["token_accuracy"],
        "test_sequence_accuracy": final["sequence_accuracy"],
        "test_loss": final["loss"],
        "final_train_loss": sum(tail) / len(tail) if tail else None,
        "losses_finite": all(math.isfinite(v) for v in losses),
        "train_time_s": train_time, "eval_time_s": eval_time, "wall_time_s": wall,
        "steps_per_s": args.steps / train_time if train_time > 0 else None,
        "history": history, "examples": examples, "losses": losses,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    save_plot(losses, history, out / "curves.png",
              f"{args.model} on {args.task}, length {args.length}, seed {args.seed} (Kokoyi)")
    print(f"{args.model} {args.task} L={args.length}: held-out token accuracy {final['token_accuracy']:.4f}, "
          f"sequence accuracy {final['sequence_accuracy']:.4f}, final train loss "
          f"{summary['final_train_loss']:.4f}; {train_time:.1f} s training ({summary['steps_per_s']:.1f} steps/s), "
          f"{eval_time:.1f} s evaluating")
    print(f"wrote {out / 'summary.json'} and {out / 'curves.png'}")
    return summary


if __name__ == "__main__":
    main()
