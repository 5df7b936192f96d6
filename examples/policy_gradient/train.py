"""REINFORCE (policy gradient) on CartPole-v0 with the policy and loss written in Kokoyi.

    python examples/policy_gradient/train.py --seed 0                   # Kokoyi backend
    python examples/policy_gradient/train.py --seed 0 --backend torch   # hand-written twin

The policy ``\\pi`` and the per-step loss ``PGLoss`` come from ``policy.kyi``
(``--backend kokoyi``) or from their PyTorch twins in
``benchmarks/cartpole_twins.py`` (``--backend torch``).  Everything else -- the
environment loop, sampling, the optimiser -- is plain Python.

Writes ``summary.json`` and ``durations.png`` to ``--out`` (default
``runs/policy_gradient/<backend>-seed<seed>``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.distributions import Categorical

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cartpole_common as common

KYI = Path(__file__).with_name("policy.kyi")


def load_modules(backend: str):
    """The (Pi, PGLoss) classes of the chosen backend."""
    if backend == "kokoyi":
        import kokoyi

        kokoyi.load(KYI)

        class Pi(torch.nn.Module):
            def __init__(self, d, a, hidden=128):
                super().__init__()
                self.Linears = torch.nn.ModuleList([kokoyi.nn.Linear(d, hidden), kokoyi.nn.Linear(hidden, a)])

            def get_parameters(self):
                return self.Linears

            forward = kokoyi.symbol[r"\pi"]

        class PGLoss(torch.nn.Module):
            def __init__(self, gamma):
                super().__init__()
                self.gamma = gamma

            def get_parameters(self):
                return self.gamma

            forward = kokoyi.symbol["PGLoss"]

        return Pi, PGLoss
    import cartpole_twins

    return cartpole_twins.Pi, cartpole_twins.PGLoss


def run_episode(env, pi, seed=None):
    """One episode with actions sampled from Categorical(pi(s)): (log-probs, rewards)."""
    s, _ = env.reset(seed=seed)
    log_probs, rewards = [], []
    while True:
        dist = Categorical(probs=pi(torch.as_tensor(s, dtype=torch.float32)))
        a = dist.sample()
        log_probs.append(dist.log_prob(a))
        s, r, terminated, truncated, _ = env.step(a.item())
        rewards.append(r)
        if terminated or truncated:
            return torch.stack(log_probs), torch.tensor(rewards, dtype=torch.float32)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["kokoyi", "torch"], default="kokoyi")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=1000, help="maximum number of training episodes")
    p.add_argument("--out", default=None, help="output folder for summary.json and durations.png")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.005, help="(the seed recipe used 0.01)")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--batch-episodes", type=int, default=1,
                   help="episodes per update (losses of each episode summed, then averaged over episodes)")
    p.add_argument("--clip", type=float, default=0.0, help="gradient-norm clip (0 = off)")
    p.add_argument("--reduce", choices=["sum", "mean"], default="sum",
                   help="how the per-step losses of an episode are reduced")
    p.add_argument("--keep-going", action="store_true", help="do not stop once solved")
    p.add_argument("--test-episodes", type=int, default=5, help="greedy test episodes after training")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    common.seed_everything(args.seed)
    out = common.out_dir(args.out, "policy_gradient", args.backend, args.seed)

    Pi, PGLoss = load_modules(args.backend)
    env = common.make_env(args.seed)
    pi = Pi(env.observation_space.shape[0], env.action_space.n, args.hidden)
    pg_loss = PGLoss(args.gamma)
    opt = torch.optim.Adam(pi.parameters(), lr=args.lr)
    hyper = {k: getattr(args, k) for k in ("hidden", "lr", "gamma", "batch_episodes", "clip", "reduce")}
    hyper["optimizer"] = "Adam"

    tracker = common.Tracker()
    env_steps, pending = 0, []
    t0 = time.perf_counter()
    bar = common.progress(args.episodes, f"PG[{args.backend}] seed {args.seed}", args.quiet)
    for episode in range(args.episodes):
        log_probs, rewards = run_episode(env, pi, seed=args.seed if episode == 0 else None)
        env_steps += len(rewards)
        losses = pg_loss(log_probs, rewards)
        episode_loss = losses.sum() if args.reduce == "sum" else losses.mean()
        pending.append(episode_loss)
        if len(pending) == args.batch_episodes:
            loss = torch.stack(pending).mean()
            opt.zero_grad()
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(pi.parameters(), args.clip)
            opt.step()
            pending = []
        tracker.add(len(rewards), episode_loss.item())
        bar.update(1)
        bar.set_postfix(mean100=f"{tracker.mean():.1f}", refresh=False)
        if tracker.solved_at is not None and not args.keep_going:
            break
    bar.close()
    wall = time.perf_counter() - t0
    env.close()

    test = common.greedy_test(pi, args.seed + 10_000, args.test_episodes)
    summary = common.write_summary(out, "policy_gradient", args, tracker, hyper, wall, env_steps, test)
    common.save_plot(tracker, out / "durations.png",
                     f"REINFORCE on {common.ENV_ID} ({args.backend} backend, seed {args.seed})")
    common.report(summary, out)
    return summary


if __name__ == "__main__":
    main()
