"""A variational autoencoder on 8x8 digits whose model and ELBO loss are written in Kokoyi.

    python examples/vae/train.py --seed 0

``vae.kyi`` holds the ``Encoder`` q(z | x), the ``Decoder`` p(x | z) and ``NegELBO``: the
reparameterisation z = mu + sigma * eps, the Bernoulli reconstruction term and the KL
term of one image.  The noise eps ~ N(0, I) is drawn in Python (seeded) and passed in;
every call is on a minibatch with ``batch_level``.  The data are scikit-learn's 8x8
digits (``load_digits``, shipped inside scikit-learn, so nothing is downloaded), pixels
scaled to [0, 1], split 80/20 into train and test sets with a fixed seed.

Writes ``summary.json``, ``loss.png`` (negative ELBO per epoch, and its two terms) and
``grid.png`` (test images, their reconstructions, and samples from the prior) to ``--out``
(default ``runs/vae/seed<seed>``).
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
from digits_common import load_digits_split, tile  # noqa: E402

KYI = Path(__file__).with_name("vae.kyi")
kokoyi.load(KYI)


class Decoder(torch.nn.Module):
    """p(x | z): latent -> hidden -> one logit per pixel; the math is ``\\Module{Decoder}``."""

    def __init__(self, latent: int = 8, hidden: int = 256, d: int = 64):
        super().__init__()
        self.F = torch.nn.ModuleList([kokoyi.nn.Linear(latent, hidden), kokoyi.nn.Linear(hidden, d)])

    def get_parameters(self):
        return self.F

    forward = kokoyi.symbol["Decoder"]


class Encoder(torch.nn.Module):
    """q(z | x): 64 pixels -> hidden -> (mu, log sigma^2); the math is ``\\Module{Encoder}``."""

    def __init__(self, d: int = 64, hidden: int = 256, latent: int = 8):
        super().__init__()
        self.E = torch.nn.ModuleList([kokoyi.nn.Linear(d, hidden), kokoyi.nn.Linear(hidden, latent),
                                      kokoyi.nn.Linear(hidden, latent)])

    def get_parameters(self):
        return self.E

    forward = kokoyi.symbol["Encoder"]


class VAE(torch.nn.Module):
    """The encoder q and the decoder p; calling it gives ``\\Module{NegELBO}``:
    (negative ELBO, reconstruction term, KL term, reconstructed pixel means)."""

    def __init__(self, d: int = 64, hidden: int = 256, latent: int = 8):
        super().__init__()
        self.latent = latent
        self.q = Encoder(d, hidden, latent)
        self.p = Decoder(latent, hidden, d)

    def get_parameters(self):
        return self.q, self.p

    forward = kokoyi.symbol["NegELBO"]




@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, seed: int) -> tuple[float, float, float]:
    """Mean (negative ELBO, reconstruction term, KL term) per image, one eps draw per image (seeded)."""
    eps = torch.randn(len(x), model.latent, generator=torch.Generator().manual_seed(seed))
    loss, rec, kl, _ = model(x, eps, batch_level=[1, 1])
    return loss.mean().item(), rec.mean().item(), kl.mean().item()


def save_loss_plot(history: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_terms) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["train_loss"], label="train")
    ax_loss.plot(epochs, history["test_loss"], label="test")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("negative ELBO (nats per image)")
    ax_loss.legend()
    ax_terms.plot(epochs, history["test_rec"], label="reconstruction  -log p(x|z)")
    ax_terms.plot(epochs, history["test_kl"], label="KL(q(z|x) || p(z))")
    ax_terms.set_xlabel("epoch")
    ax_terms.set_ylabel("nats per image (test)")
    ax_terms.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_grid(originals, reconstructions, samples, path: Path, title: str) -> None:
    """Test images over their reconstructions (left), samples from the prior (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = originals.shape[0] // 4
    pairs = np.stack([originals.reshape(4, cols, 64), reconstructions.reshape(4, cols, 64)], 1)  # row pairs
    fig, (ax_rec, ax_sample) = plt.subplots(1, 2, figsize=(11, 5))
    ax_rec.imshow(tile(pairs.reshape(-1, 64), 8, cols), cmap="gray_r", vmin=0, vmax=1)
    ax_rec.set_title("test images (odd rows) and reconstructions (even rows)")
    ax_sample.imshow(tile(samples, samples.shape[0] // cols, cols), cmap="gray_r", vmin=0, vmax=1)
    ax_sample.set_title("decoded samples z ~ N(0, I)")
    for ax in (ax_rec, ax_sample):
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=200, help="passes over the training set")
    p.add_argument("--seed", type=int, default=0, help="weights, minibatch order and noise")
    p.add_argument("--split-seed", type=int, default=0, help="the train/test split (fixed across --seed)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--latent", type=int, default=8, help="dimension L of z")
    p.add_argument("--max-batches", type=int, default=None, help="stop each epoch after this many batches (smoke tests)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default=None, help="output folder for summary.json, loss.png and grid.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out) if args.out else Path("runs") / "vae" / f"seed{args.seed}"
    os.makedirs(out, exist_ok=True)

    x_tr, _, x_te, _ = load_digits_split(args.split_seed)
    model = VAE(x_tr.shape[1], args.hidden, args.latent)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)  # minibatch order and eps

    from tqdm import tqdm

    batches = math.ceil(len(x_tr) / args.batch_size)
    if args.max_batches is not None:
        batches = min(batches, args.max_batches)
    history = {"train_loss": [], "test_loss": [], "test_rec": [], "test_kl": []}
    batch_losses = []
    t0 = time.perf_counter()
    bar = tqdm(total=args.epochs * batches, desc=f"VAE seed {args.seed}", unit="batch", disable=args.quiet,
               dynamic_ncols=True, mininterval=0.5)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x_tr), generator=gen)
        epoch_loss, seen = 0.0, 0
        for k in range(batches):
            x = x_tr[perm[k * args.batch_size:(k + 1) * args.batch_size]]
            eps = torch.randn(len(x), args.latent, generator=gen)
            loss = model(x, eps, batch_level=[1, 1])[0].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            batch_losses.append(loss.item())
            epoch_loss += loss.item() * len(x)
            seen += len(x)
            bar.update(1)
        test_loss, test_rec, test_kl = evaluate(model, x_te, seed=10_000 + epoch)
        history["train_loss"].append(epoch_loss / seen)
        history["test_loss"].append(test_loss)
        history["test_rec"].append(test_rec)
        history["test_kl"].append(test_kl)
        bar.set_postfix(train=f"{epoch_loss / seen:.2f}", test=f"{test_loss:.2f}", refresh=False)
    bar.close()
    wall = time.perf_counter() - t0

    with torch.no_grad():
        shown = x_te[:40]
        _, _, _, recon = model(shown, torch.zeros(len(shown), args.latent), batch_level=[1, 1])  # z = mu
        z = torch.randn(40, args.latent, generator=torch.Generator().manual_seed(args.seed + 1))
        samples = torch.sigmoid(model.p(z, batch_level=[1]))
    summary = {
        "example": "vae",
        "seed": args.seed,
        "split_seed": args.split_seed,
        "epochs": args.epochs,
        "batches_per_epoch": batches,
        "n_train": len(x_tr),
        "n_test": len(x_te),
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_train_loss": history["train_loss"][-1],
        "final_test_loss": history["test_loss"][-1],
        "final_test_rec": history["test_rec"][-1],
        "final_test_kl": history["test_kl"][-1],
        "test_reconstruction_mse": float(((recon - shown) ** 2).mean()),
        "losses_finite": all(math.isfinite(x) for x in batch_losses),
        "wall_time_s": wall,
        "hyperparameters": {"batch_size": args.batch_size, "lr": args.lr, "hidden": args.hidden,
                            "latent": args.latent, "optimizer": "Adam", "max_batches": args.max_batches},
        "history": history,
        "batch_losses": batch_losses,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    title = f"VAE on 8x8 digits (Kokoyi, L = {args.latent}, seed {args.seed})"
    save_loss_plot(history, out / "loss.png", title)
    save_grid(shown.numpy(), recon.numpy(), samples.numpy(), out / "grid.png", title)
    print(f"[vae seed={args.seed}] {args.epochs} epochs in {wall:.1f}s: negative ELBO train "
          f"{summary['final_train_loss']:.2f}, test {summary['final_test_loss']:.2f} nats/image "
          f"(reconstruction {summary['final_test_rec']:.2f} + KL {summary['final_test_kl']:.2f}); "
          f"reconstruction MSE {summary['test_reconstruction_mse']:.4f}")
    print(f"wrote {out / 'summary.json'}, {out / 'loss.png'} and {out / 'grid.png'}")
    return summary


if __name__ == "__main__":
    main()
