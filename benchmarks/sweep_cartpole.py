"""Run a CartPole example over several seeds, one after the other, and tabulate solved-at episodes.

    python benchmarks/sweep_cartpole.py pg  --backend torch --seeds 0-9 -- --lr 0.01
    python benchmarks/sweep_cartpole.py dqn --backend torch --seeds 0-9 -- --lr 1e-3

Everything after ``--`` goes to the training script.  Runs are sequential (one
training process at a time, one torch thread).  Prints a Markdown row per seed and
a summary line; the per-run folders go under ``--out`` (default ``runs/sweeps``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"pg": REPO / "examples" / "policy_gradient" / "train.py", "dqn": REPO / "examples" / "dqn" / "train.py"}


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds += list(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


def load_script(algo: str):
    spec = importlib.util.spec_from_file_location(f"train_{algo}", SCRIPTS[algo])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("algo", choices=sorted(SCRIPTS))
    p.add_argument("--backend", default="torch", choices=["torch", "kokoyi"])
    p.add_argument("--seeds", default="0-9")
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--out", default=str(REPO / "runs" / "sweeps"))
    p.add_argument("--tag", default="", help="name of this configuration (folder name)")
    args = p.parse_args(argv)

    script = load_script(args.algo)
    tag = args.tag or ("default" if not extra else "_".join(a.lstrip("-") for a in extra))
    rows = []
    t0 = time.perf_counter()
    for seed in parse_seeds(args.seeds):
        out = Path(args.out) / args.algo / args.backend / tag / f"seed{seed}"
        cmd = ["--backend", args.backend, "--seed", str(seed), "--out", str(out), "--quiet"] + extra
        if args.episodes is not None:
            cmd += ["--episodes", str(args.episodes)]
        s = script.main(cmd)
        rows.append(s)
    wall = time.perf_counter() - t0

    print()
    print(f"config: {args.algo} backend={args.backend} {' '.join(extra)}")
    print("| seed | solved at | episodes run | final 100-mean | wall s | env steps/s | greedy test |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for s in rows:
        print(f"| {s['seed']} | {s['solved_at'] if s['solved_at'] else '-'} | {s['episodes']} | "
              f"{s['final_mean100']:.1f} | {s['wall_time_s']:.1f} | {s['env_steps_per_s']:.0f} | "
              f"{s['greedy_test_durations']} |")
    solved = [s["solved_at"] for s in rows if s["solved_at"]]
    med = statistics.median(solved) if solved else None
    print(f"solved {len(solved)}/{len(rows)} seeds; median solved-at {med}; total wall {wall:.0f}s")
    with open(Path(args.out) / args.algo / args.backend / tag / "sweep.json", "w") as f:
        json.dump({"extra_args": extra, "backend": args.backend,
                   "results": {s["seed"]: s["solved_at"] for s in rows}, "wall_s": wall}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
