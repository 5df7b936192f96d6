"""Digit classifiers (an MLP and a CNN) whose models and loss are written in Kokoyi.

    python examples/classifiers/train.py --model mlp --seed 0
    python examples/classifiers/train.py --model cnn --seed 0

The networks ``MLP`` and ``CNN``, the per-sample ``CrossEntropyLoss`` and the minibatch's
``MeanCrossEntropyLoss`` (the loss the step minimises, one ``F.cross_entropy`` with its mean
inside) come from ``classifiers.kyi``; the models are called on minibatches with ``batch_level``.  The data are
scikit-learn's 8x8 digits (``load_digits``, 1797 images shipped inside scikit-learn, so
nothing is downloaded), pixels scaled to [0, 1], split 80/20 into train and test sets with
a fixed seed (``--split-seed``, the same split for every ``--seed``).

Writes ``summary.json`` and ``curves.png`` (loss and accuracy per epoch) to ``--out``
(default ``runs/classifiers/<model>-seed<seed>``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # kokoyi from a source checkout
    sys.path.append(str(REPO))
import kokoyi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from digits_common import load_digits_split  # noqa: E402

KYI = Path(__file__).with_name("classifiers.kyi")
kokoyi.load(KYI)


class MLP(torch.nn.Module):
    """64 -> hidden -> hidden -> 10 perceptron; the math is ``\\Module{MLP}``."""

    def __init__(self, d: int = 64, hidden: int = 128, classes: int = 10):
        super().__init__()
        self.Linears = torch.nn.ModuleList([kokoyi.nn.Linear(d, hidden), kokoyi.nn.Linear(hidden, hidden),
                                            kokoyi.nn.Linear(hidden, classes)])

    def get_parameters(self):
        return self.Linears

    forward = kokoyi.symbol["MLP"]


class CNN(torch.nn.Module):
    """conv3x3(1->c1), ReLU, pool, conv3x3(c1->c2), ReLU, pool, dense; the math is ``\\Module{CNN}``."""

    def __init__(self, size: int = 8, channels: tuple[int, int] = (16, 32), classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.Convs = torch.nn.ModuleList([kokoyi.nn.Conv2d(1, c1, 3, padding=1), kokoyi.nn.Conv2d(c1, c2, 3, padding=1)])
        # The dense layer's weights, one (c2, size/4, size/4) map per class, initialised as a Linear layer is.
        dense = torch.nn.Linear(c2 * (size // 4) ** 2, classes)
        self.V = torch.nn.Parameter(dense.weight.detach().reshape(classes, c2, size // 4, size // 4).clone())
        self.b = torch.nn.Parameter(dense.bias.detach().clone())

    def get_parameters(self):
        return self.Convs, self.V, self.b

    forward = kokoyi.symbol["CNN"]


class CrossEntropyLoss(torch.nn.Module):
    """-log softmax(z)[y] of one sample; the math is ``\\Module{CrossEntropyLoss}``."""

    forward = kokoyi.symbol["CrossEntropyLoss"]


class MeanCrossEntropyLoss(torch.nn.Module):
    """The mean cross-entropy of a minibatch (logits (B, K), labels (B,)); the math is
    ``\\Module{MeanCrossEntropyLoss}``: one ``F.cross_entropy`` with its mean inside."""

    forward = kokoyi.symbol["MeanCrossEntropyLoss"]




def build_model(name: str, hidden: int = 128) -> torch.nn.Module:
    return MLP(64, hidden) if name == "mlp" else CNN(8)


def model_input(name: str, images: torch.Tensor) -> torch.Tensor:
    """The per-sample input of each model: a 64-vector for the MLP, a (1, 8, 8) image for the CNN."""
    return images.flatten(1) if name == "mlp" else images


@torch.no_grad()
def evaluate(model, loss_fn, x, y, batch_size: int = 512) -> tuple[float, float]:
    """(mean loss, accuracy) over a data set."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size], batch_level=[1])
        total_loss += loss_fn(logits, y[i:i + batch_size], batch_level=[1, 1]).sum().item()
        correct += (logits.argmax(-1) == y[i:i + batch_size]).sum().item()
    return total_loss / len(x), correct / len(x)


def save_plot(history: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["train_loss"], label="train")
    ax_loss.plot(epochs, history["test_loss"], label="test")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_acc.plot(epochs, history["train_accuracy"], label="train")
    ax_acc.plot(epochs, history["test_accuracy"], label="test")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (from 0.8 up)")
    ax_acc.set_ylim(0.8, 1.0)
    ax_acc.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


DEFAULT_EPOCHS = {"mlp": 60, "cnn": 30}
DEFAULT_LR = {"mlp": 1e-3, "cnn": 3e-3}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--epochs", type=int, default=None, help=f"passes over the training set (default {DEFAULT_EPOCHS})")
    p.add_argument("--seed", type=int, default=0, help="weights and minibatch order")
    p.add_argument("--split-seed", type=int, default=0, help="the train/test split (fixed across --seed)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {DEFAULT_LR})")
    p.add_argument("--hidden", type=int, default=128, help="hidden units of the MLP")
    p.add_argument("--max-batches", type=int, default=None, help="stop each epoch after this many batches (smoke tests)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default=None, help="output folder for summary.json and curves.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.model]
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.model]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out) if args.out else Path("runs") / "classifiers" / f"{args.model}-seed{args.seed}"
    os.makedirs(out, exist_ok=True)

    x_tr, y_tr, x_te, y_te = load_digits_split(args.split_seed, images=True)
    x_tr, x_te = model_input(args.model, x_tr), model_input(args.model, x_te)
    model = build_model(args.model, args.hidden)
    loss_fn, mean_loss = CrossEntropyLoss(), MeanCrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(args.seed)

    from tqdm import tqdm

    batches = math.ceil(len(x_tr) / args.batch_size)
    if args.max_batches is not None:
        batches = min(batches, args.max_batches)
    history = {"train_loss": [], "train_accuracy": [], "test_loss": [], "test_accuracy": [], "batch_loss": []}
    t0 = time.perf_counter()
    bar = tqdm(total=epochs * batches, desc=f"{args.model} seed {args.seed}", unit="batch", disable=args.quiet,
               dynamic_ncols=True, mininterval=0.5)
    for _ in range(epochs):
        perm = torch.randperm(len(x_tr), generator=order)
        for k in range(batches):
            idx = perm[k * args.batch_size:(k + 1) * args.batch_size]
            logits = model(x_tr[idx], batch_level=[1])
            loss = mean_loss(logits, y_tr[idx])  # the minibatch's mean cross-entropy
            opt.zero_grad()
            loss.backward()
            opt.step()
            history["batch_loss"].append(loss.item())
            bar.update(1)
        train_loss, train_acc = evaluate(model, loss_fn, x_tr, y_tr)
        test_loss, test_acc = evaluate(model, loss_fn, x_te, y_te)
        for key, value in (("train_loss", train_loss), ("train_accuracy", train_acc), ("test_loss", test_loss),
                           ("test_accuracy", test_acc)):
            history[key].append(value)
        bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.3f}", refresh=False)
    bar.close()
    wall = time.perf_counter() - t0

    summary = {
        "example": "classifiers",
        "model": args.model,
        "seed": args.seed,
        "split_seed": args.split_seed,
        "epochs": epochs,
        "batches_per_epoch": batches,
        "n_train": len(x_tr),
        "n_test": len(x_te),
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_train_loss": history["train_loss"][-1],
        "final_test_loss": history["test_loss"][-1],
        "final_train_accuracy": history["train_accuracy"][-1],
        "test_accuracy": history["test_accuracy"][-1],
        "best_test_accuracy": max(history["test_accuracy"]),
        "losses_finite": all(math.isfinite(x) for x in history["batch_loss"]),
        "wall_time_s": wall,
        "hyperparameters": {"batch_size": args.batch_size, "lr": lr, "hidden": args.hidden,
                            "optimizer": "Adam", "max_batches": args.max_batches},
        "history": history,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    save_plot(history, out / "curves.png", f"{args.model.upper()} on 8x8 digits (Kokoyi, seed {args.seed})")
    print(f"[{args.model} seed={args.seed}] {epochs} epochs in {wall:.1f}s: test accuracy "
          f"{summary['test_accuracy']:.4f} ({len(x_te)} images), final train loss {summary['final_train_loss']:.4f}, "
          f"test loss {summary['final_test_loss']:.4f}")
    print(f"wrote {out / 'summary.json'} and {out / 'curves.png'}")
    return summary


if __name__ == "__main__":
    main()
