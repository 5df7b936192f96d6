"""A GAN on 8x8 digits whose generator, discriminator and both losses are written in Kokoyi.

    python examples/gan/train.py --seed 0

``gan.kyi`` holds ``Generator``, ``Discriminator``, ``DiscriminatorLoss`` and the
non-saturating ``GeneratorLoss``, all per sample; every call is on a minibatch with
``batch_level``.  Each step takes one Adam step on the discriminator, then one on the
generator.  The data are all 1797 of scikit-learn's 8x8 digits (``load_digits``, shipped
inside scikit-learn, so nothing is downloaded), pixels scaled to [-1, 1] (the generator
ends in tanh); images are mapped back to [0, 1] for the plots and the score.

How good are the samples?  A logistic-regression digit classifier fitted on the real
images (scikit-learn, a second or two) labels 1000 generated images; the summary reports
its mean confidence, the share of each class, and the "digit score" exp(E_x KL(p(y|x) ||
p(y))) (the Inception score with this classifier: 10 for confident, evenly spread
samples, 1 for a collapsed or unrecognisable generator), next to the same numbers for
real images.

Writes ``summary.json``, ``loss.png`` (both losses per epoch) and ``samples.png`` (a grid
of generated digits, and real ones for comparison) to ``--out`` (default
``runs/gan/seed<seed>``).
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
from digits_common import tile  # noqa: E402

KYI = Path(__file__).with_name("gan.kyi")
kokoyi.load(KYI)


class Generator(torch.nn.Module):
    """noise (latent) -> hidden -> hidden -> 64 pixels in (-1, 1); the math is ``\\Module{Generator}``."""

    def __init__(self, latent: int = 16, hidden: int = 128, d: int = 64):
        super().__init__()
        self.latent = latent
        self.G = torch.nn.ModuleList([kokoyi.nn.Linear(latent, hidden), kokoyi.nn.Linear(hidden, hidden),
                                      kokoyi.nn.Linear(hidden, d)])

    def get_parameters(self):
        return self.G

    forward = kokoyi.symbol["Generator"]


class Discriminator(torch.nn.Module):
    """64 pixels -> hidden -> hidden -> one logit; the math is ``\\Module{Discriminator}``."""

    def __init__(self, d: int = 64, hidden: int = 128):
        super().__init__()
        self.W = torch.nn.ModuleList([kokoyi.nn.Linear(d, hidden), kokoyi.nn.Linear(hidden, hidden),
                                      kokoyi.nn.Linear(hidden, 1)])

    def get_parameters(self):
        return self.W

    forward = kokoyi.symbol["Discriminator"]


class DiscriminatorLoss(torch.nn.Module):
    """``\\Module{DiscriminatorLoss}`` of a real image and a noise vector, for the given D and G."""

    def __init__(self, D: Discriminator, G: Generator):
        super().__init__()
        self.D, self.G = D, G

    def get_parameters(self):
        return self.D, self.G

    forward = kokoyi.symbol["DiscriminatorLoss"]


class GeneratorLoss(DiscriminatorLoss):
    """``\\Module{GeneratorLoss}`` of a noise vector, for the given D and G."""

    forward = kokoyi.symbol["GeneratorLoss"]


def load_digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits: images in [-1, 1] flattened to (N, 64), and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.from_numpy((digits.data / 8.0 - 1.0).astype(np.float32)), torch.from_numpy(digits.target).long()


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] pixels back to [0, 1]."""
    return (images + 1) / 2


def digit_scores(images: np.ndarray, classifier) -> dict:
    """How recognisable and how varied images (in [0, 1]) are, judged by a digit classifier."""
    probs = classifier.predict_proba(images)
    marginal = probs.mean(0)
    kl = (probs * (np.log(probs + 1e-12) - np.log(marginal + 1e-12))).sum(1)
    return {
        "digit_score": float(np.exp(kl.mean())),
        "mean_confidence": float(probs.max(1).mean()),
        "class_shares": [round(float(x), 4) for x in np.bincount(probs.argmax(1), minlength=10) / len(probs)],
    }


def fit_digit_classifier(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000).fit(x, y)


def save_loss_plot(history: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["d_loss"]) + 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(epochs, history["d_loss"], label="discriminator loss")
    ax.plot(epochs, history["g_loss"], label="generator loss")
    ax.axhline(2 * math.log(2), color="k", ls=":", lw=1, label="D loss at equilibrium (2 log 2)")
    ax.axhline(math.log(2), color="gray", ls=":", lw=1, label="G loss at equilibrium (log 2)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss per sample")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_samples(fake: np.ndarray, real: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_fake, ax_real) = plt.subplots(1, 2, figsize=(11, 5.5), gridspec_kw={"width_ratios": [2, 1]})
    ax_fake.imshow(tile(fake, 8, 10), cmap="gray_r", vmin=0, vmax=1)
    ax_fake.set_title("generated G(z), z ~ N(0, I)")
    ax_real.imshow(tile(real, 8, 5), cmap="gray_r", vmin=0, vmax=1)
    ax_real.set_title("real digits")
    for ax in (ax_fake, ax_real):
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=300, help="passes over the 1797 images")
    p.add_argument("--seed", type=int, default=0, help="weights, minibatch order and noise")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=4e-4, help="Adam learning rate (both networks, betas 0.5, 0.999)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--latent", type=int, default=16, help="dimension L of z")
    p.add_argument("--max-batches", type=int, default=None, help="stop each epoch after this many batches (smoke tests)")
    p.add_argument("--no-score", action="store_true", help="skip the digit-classifier score")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default=None, help="output folder for summary.json, loss.png and samples.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out) if args.out else Path("runs") / "gan" / f"seed{args.seed}"
    os.makedirs(out, exist_ok=True)

    x_all, y_all = load_digits_images()
    G = Generator(args.latent, args.hidden, x_all.shape[1])
    D = Discriminator(x_all.shape[1], args.hidden)
    d_loss_fn, g_loss_fn = DiscriminatorLoss(D, G), GeneratorLoss(D, G)
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(args.seed)  # minibatch order and noise

    from tqdm import tqdm

    batches = math.ceil(len(x_all) / args.batch_size)
    if args.max_batches is not None:
        batches = min(batches, args.max_batches)
    history = {"d_loss": [], "g_loss": []}
    batch_losses = []
    t0 = time.perf_counter()
    bar = tqdm(total=args.epochs * batches, desc=f"GAN seed {args.seed}", unit="batch", disable=args.quiet,
               dynamic_ncols=True, mininterval=0.5)
    for _ in range(args.epochs):
        perm = torch.randperm(len(x_all), generator=gen)
        d_sum = g_sum = 0.0
        for k in range(batches):
            x = x_all[perm[k * args.batch_size:(k + 1) * args.batch_size]]
            z = torch.randn(len(x), args.latent, generator=gen)
            d_loss = d_loss_fn(x, z, batch_level=[1, 1]).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            z = torch.randn(len(x), args.latent, generator=gen)
            g_loss = g_loss_fn(z, batch_level=[1]).mean()
            opt_g.zero_grad()
            g_loss.backward()  # also fills D's gradients, which the next D step clears first
            opt_g.step()
            batch_losses.append((d_loss.item(), g_loss.item()))
            d_sum += d_loss.item()
            g_sum += g_loss.item()
            bar.update(1)
        history["d_loss"].append(d_sum / batches)
        history["g_loss"].append(g_sum / batches)
        bar.set_postfix(d=f"{d_sum / batches:.3f}", g=f"{g_sum / batches:.3f}", refresh=False)
    bar.close()
    wall = time.perf_counter() - t0

    with torch.no_grad():
        z = torch.randn(1000, args.latent, generator=torch.Generator().manual_seed(args.seed + 1))
        fake = to_unit(G(z, batch_level=[1])).numpy()
    real_unit = to_unit(x_all).numpy()
    scores = None
    if not args.no_score:
        classifier = fit_digit_classifier(real_unit, y_all.numpy())
        scores = {"generated": digit_scores(fake, classifier), "real": digit_scores(real_unit, classifier)}
    summary = {
        "example": "gan",
        "seed": args.seed,
        "epochs": args.epochs,
        "batches_per_epoch": batches,
        "n_images": len(x_all),
        "parameters": {"generator": sum(p.numel() for p in G.parameters()),
                       "discriminator": sum(p.numel() for p in D.parameters())},
        "final_d_loss": history["d_loss"][-1],
        "final_g_loss": history["g_loss"][-1],
        "scores": scores,
        "losses_finite": all(math.isfinite(a) and math.isfinite(b) for a, b in batch_losses),
        "wall_time_s": wall,
        "hyperparameters": {"batch_size": args.batch_size, "lr": args.lr, "betas": [0.5, 0.999],
                            "hidden": args.hidden, "latent": args.latent, "optimizer": "Adam",
                            "max_batches": args.max_batches},
        "history": history,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    title = f"GAN on 8x8 digits (Kokoyi, seed {args.seed})"
    save_loss_plot(history, out / "loss.png", title)
    real = real_unit[torch.randperm(len(x_all), generator=torch.Generator().manual_seed(args.seed + 2))[:40].numpy()]
    save_samples(fake, real, out / "samples.png", title)
    line = (f"[gan seed={args.seed}] {args.epochs} epochs in {wall:.1f}s: final D loss {summary['final_d_loss']:.3f}, "
            f"G loss {summary['final_g_loss']:.3f}")
    if scores is not None:
        line += (f"; digit score {scores['generated']['digit_score']:.2f} (real {scores['real']['digit_score']:.2f}), "
                 f"classifier confidence {scores['generated']['mean_confidence']:.3f} "
                 f"(real {scores['real']['mean_confidence']:.3f})")
    print(line)
    print(f"wrote {out / 'summary.json'}, {out / 'loss.png'} and {out / 'samples.png'}")
    return summary


if __name__ == "__main__":
    main()
