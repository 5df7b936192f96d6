"""Plumbing shared by the CartPole example scripts (not part of the math).

Seeding, the environment, the "solved" criterion, the progress bar, the plot,
the JSON summary and the greedy test run.  The models and losses live in the
``.kyi`` files (``--backend kokoyi``) or in ``benchmarks/cartpole_twins.py``
(``--backend torch``).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from collections import deque
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "benchmarks"):  # the twins, and kokoyi from a source checkout
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

ENV_ID = "CartPole-v0"  # 200-step cap, solved at a 100-episode mean of 195
SOLVED_MEAN = 195.0
WINDOW = 100


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_env(seed: int):
    """CartPole-v0 with its action space seeded; reset it first with ``reset(seed=seed)``."""
    import warnings

    import gymnasium as gym

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CartPole-v0 is out of date": v0 is the task we mean
        env = gym.make(ENV_ID)
    env.action_space.seed(seed)
    return env


class Tracker:
    """Episode durations, the running 100-episode mean and the solved criterion.

    ``solved_at`` is the 1-based episode number at which, for the first time, the
    mean duration of the last 100 episodes is >= 195 (so it is never below 100).
    """

    def __init__(self):
        self.durations: list[int] = []
        self.losses: list[float | None] = []
        self.window: deque[int] = deque(maxlen=WINDOW)
        self.solved_at: int | None = None

    def add(self, duration: int, loss: float | None) -> None:
        self.durations.append(int(duration))
        self.losses.append(None if loss is None else float(loss))
        self.window.append(int(duration))
        if self.solved_at is None and len(self.window) == WINDOW and self.mean() >= SOLVED_MEAN:
            self.solved_at = len(self.durations)

    def mean(self) -> float:
        return sum(self.window) / len(self.window) if self.window else 0.0

    def running_means(self) -> list[float]:
        out, acc = [], 0.0
        for i, d in enumerate(self.durations):
            acc += d
            if i >= WINDOW:
                acc -= self.durations[i - WINDOW]
            out.append(acc / min(i + 1, WINDOW))
        return out


def progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ep", disable=quiet, dynamic_ncols=True, mininterval=0.5)


def save_plot(tracker: Tracker, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    eps = np.arange(1, len(tracker.durations) + 1)
    ax.plot(eps, tracker.durations, lw=0.8, alpha=0.5, label="episode duration")
    ax.plot(eps, tracker.running_means(), lw=2, label=f"{WINDOW}-episode mean")
    ax.axhline(SOLVED_MEAN, color="k", ls="--", lw=1, label=f"solved ({SOLVED_MEAN:g})")
    if tracker.solved_at is not None:
        ax.axvline(tracker.solved_at, color="g", ls=":", lw=1, label=f"solved at {tracker.solved_at}")
    ax.set_xlabel("episode")
    ax.set_ylabel("duration (steps)")
    ax.set_ylim(0, 210)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def greedy_test(policy_fn, seed: int, episodes: int) -> list[int]:
    """Run ``episodes`` episodes taking ``argmax`` actions; ``policy_fn(s) -> scores``."""
    env = make_env(seed)
    durations = []
    with torch.no_grad():
        for k in range(episodes):
            s, _ = env.reset(seed=seed if k == 0 else None)
            t = 0
            while True:
                a = int(torch.argmax(policy_fn(torch.as_tensor(s, dtype=torch.float32))))
                s, _, terminated, truncated, _ = env.step(a)
                t += 1
                if terminated or truncated:
                    break
            durations.append(t)
    env.close()
    return durations


def write_summary(out: Path, algo: str, args, tracker: Tracker, hyper: dict, wall: float, env_steps: int,
                  test: list[int]) -> dict:
    finite = [x for x in tracker.losses if x is not None]
    summary = {
        "algo": algo,
        "env": ENV_ID,
        "backend": args.backend,
        "seed": args.seed,
        "solved_at": tracker.solved_at,
        "episodes": len(tracker.durations),
        "max_episodes": args.episodes,
        "final_mean100": tracker.mean(),
        "wall_time_s": wall,
        "env_steps": env_steps,
        "env_steps_per_s": env_steps / wall if wall > 0 else None,
        "hyperparameters": hyper,
        "losses_finite": all(math.isfinite(x) for x in finite),
        "greedy_test_durations": test,
        "durations": tracker.durations,
        "losses": tracker.losses,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def out_dir(arg: str | None, algo: str, backend: str, seed: int) -> Path:
    out = Path(arg) if arg else Path("runs") / algo / f"{backend}-seed{seed}"
    os.makedirs(out, exist_ok=True)
    return out


def report(summary: dict, out: Path) -> None:
    s = summary
    solved = f"solved at episode {s['solved_at']}" if s["solved_at"] else "NOT solved"
    print(f"[{s['algo']}/{s['backend']} seed={s['seed']}] {solved}; {s['episodes']} episodes, "
          f"final 100-mean {s['final_mean100']:.1f}, {s['wall_time_s']:.1f}s, "
          f"{s['env_steps_per_s']:.0f} env steps/s")
    print(f"greedy test durations: {s['greedy_test_durations']}")
    print(f"wrote {out / 'summary.json'} and {out / 'durations.png'}")
