"""Seeds x environments x backends of ``train.py``, then the table and the figure of the results.

    python examples/ppo/sweep.py run --seeds 10 --jobs 2      # resumable: finished runs are kept
    python examples/ppo/sweep.py report                       # table + figure from the summaries

Every run is ``train.py --env ENV --backend B --seed K --quiet`` under ``nice`` with one torch
thread, writing ``runs/ppo_sweep/<env>/<backend>-seed<k>/summary.json``. ``report`` reads those
summaries and writes ``results.json`` (what the table says, per run), ``returns_<env>.png``
(the 100-episode mean return against env steps, median and range over seeds, each backend)
and prints the Markdown table of ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENVS = ("CartPole-v1", "Acrobot-v1")
BACKENDS = ("kokoyi", "torch")


def run_dir(root: Path, env: str, backend: str, seed: int) -> Path:
    return root / env / f"{backend}-seed{seed}"


def one_run(root: Path, env: str, backend: str, seed: int, extra: list[str]) -> str:
    out = run_dir(root, env, backend, seed)
    if (out / "summary.json").exists():
        return f"{env} {backend} seed {seed}: kept"
    cmd = ["nice", "-n", "15", sys.executable, str(HERE / "train.py"), "--env", env, "--backend", backend,
           "--seed", str(seed), "--quiet", "--out", str(out), *extra]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return f"{env} {backend} seed {seed}: FAILED\n{proc.stderr[-2000:]}"
    return f"{env} {backend} seed {seed}: {proc.stdout.splitlines()[0]} ({time.time() - t0:.0f} s)"


def run(args, extra) -> None:
    # Kokoyi first (all seeds), then the twin: if time runs short, the twin has fewer seeds.
    jobs = [(env, backend, seed) for backend in args.backends for seed in range(args.seeds) for env in args.envs
            if not (backend == "torch" and seed >= args.twin_seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda j: one_run(args.root, *j, extra), jobs):
            print(line, flush=True)


def _curve(summary: dict, grid: np.ndarray) -> np.ndarray:
    """The 100-episode mean return, as a step function of env steps, on ``grid`` (nan before the first episode)."""
    steps = np.asarray(summary["episode_end_steps"])
    returns = np.asarray(summary["episode_returns"], dtype=float)
    c = np.concatenate([[0.0], np.cumsum(returns)])
    i = np.arange(1, len(returns) + 1)
    lo = np.maximum(i - 100, 0)
    means = (c[i] - c[lo]) / (i - lo)
    k = np.searchsorted(steps, grid, side="right") - 1
    out = np.where(k >= 0, means[np.maximum(k, 0)], np.nan)
    last = steps[-1] if len(steps) else 0
    return np.where(grid <= max(last, summary["env_steps"]), out, np.nan)


def report(args) -> None:
    results = {}
    for env in ENVS:
        for backend in BACKENDS:
            runs = sorted((json.loads(p.read_text()) for p in (args.root / env).glob(f"{backend}-seed*/summary.json")),
                          key=lambda s: s["seed"])
            if runs:
                results.setdefault(env, {})[backend] = runs
    if not results:
        raise SystemExit(f"no summaries under {args.root}")
    header = ("| environment | backend | seeds | reached the target | env steps to the target (median, range) "
              "| last 100-episode mean (median) | greedy test return (median) | env steps/s (median) |")
    table = [header, "|---|---|---:|---:|---|---:|---:|---:|"]
    compact = {}
    for env, by_backend in results.items():
        for backend, runs in by_backend.items():
            reached = [s["reached_at"] for s in runs if s["reached_at"] is not None]
            span = (f"{statistics.median(reached) / 1000:.0f}k ({min(reached) / 1000:.0f}k-{max(reached) / 1000:.0f}k)"
                    if reached else "-")
            name = "Kokoyi" if backend == "kokoyi" else "twin (PyTorch)"
            target = runs[0]["target"]
            stopped = sum(bool(s["stopped_at_target"]) for s in runs)
            last = f"{statistics.median(s['final_mean100'] for s in runs):.1f}" + (
                f" ({stopped} stopped at the target)" if stopped else "")
            greedy = statistics.median(statistics.mean(s["greedy_test_returns"]) for s in runs)
            table.append(f"| {env} (target {target:g}) | {name} | {len(runs)} | **{len(reached)}/{len(runs)}** "
                         f"| {span} | {last} | {greedy:.1f} "
                         f"| {statistics.median(s['env_steps_per_s'] for s in runs):.0f} |")
            compact.setdefault(env, {})[backend] = [
                {k: s[k] for k in ("seed", "reached_at", "stopped_at_target", "env_steps", "episodes", "final_mean100",
                                   "wall_time_s", "env_steps_per_s", "greedy_test_returns")} for s in runs]
        _plot(env, by_backend, args.figures / f"returns_{env}.png")
    (args.figures / "results.json").write_text(json.dumps(compact, indent=1) + "\n")
    print("\n".join(table))


def _plot(env: str, by_backend: dict, path: Path) -> None:
    """Every seed's 100-episode mean return (thin), and per backend the median over seeds where
    every seed of that backend is still running (runs stopped at the target end early)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    total = max(s["total_steps"] for runs in by_backend.values() for s in runs)
    grid = np.linspace(0, total, 250)
    styles = {"kokoyi": ("C0", "-", "Kokoyi"), "torch": ("C1", "--", "twin (PyTorch)")}
    for backend, runs in by_backend.items():
        color, ls, name = styles[backend]
        curves = np.array([_curve(s, grid) for s in runs])
        for c in curves:
            ax.plot(grid, c, color=color, ls=ls, lw=0.6, alpha=0.35)
        all_running = ~np.isnan(curves).any(0)
        med = np.where(all_running, np.median(np.nan_to_num(curves), 0), np.nan)
        stopped = sum(bool(s.get("stopped_at_target")) for s in runs)
        note = f", {stopped} stopped at the target" if stopped else ""
        ax.plot(grid, med, color=color, ls=ls, lw=2.2, label=f"{name}: median of {len(runs)} seeds{note}")
    target = next(iter(by_backend.values()))[0]["target"]
    ax.axhline(target, color="k", ls=":", lw=1, label=f"target ({target:g})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("100-episode mean return")
    ax.set_title(f"PPO on {env} (thin lines: single seeds)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["run", "report"])
    p.add_argument("--root", type=Path, default=REPO / "runs" / "ppo_sweep", help="where the runs write")
    p.add_argument("--figures", type=Path, default=HERE / "figures", help="where report writes (results.json, PNGs)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--twin-seeds", type=int, default=10, help="seeds of the twin (the first ones)")
    p.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p.epilog = "run: options after -- go to train.py, e.g. run -- --stop-at-target"
    args, extra = p.parse_known_args(argv)
    if extra and (args.cmd != "run" or extra[0] != "--"):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    args.figures.mkdir(parents=True, exist_ok=True)
    if args.cmd == "run":
        run(args, extra[1:])
    else:
        report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
