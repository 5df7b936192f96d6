"""DQN on CartPole-v0 with the Q network and the TD loss written in Kokoyi.

    python examples/dqn/train.py --seed 0                   # Kokoyi backend
    python examples/dqn/train.py --seed 0 --backend torch   # hand-written twin

The Q network ``Q`` and the per-sample loss ``DQNLoss`` (Huber loss of the TD
error against a target network, terminal states masked) come from ``dqn.kyi``
(``--backend kokoyi``) or from their PyTorch twins in
``benchmarks/cartpole_twins.py`` (``--backend torch``).  The replay buffer,
epsilon-greedy exploration, target-network updates and the optimiser are plain
Python.  The loss is called once per update on a replay batch with
``batch_level=[1, 1, 1, 1, 1]`` and returns per-sample losses, averaged here.

Writes ``summary.json`` and ``durations.png`` to ``--out`` (default
``runs/dqn/<backend>-seed<seed>``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import cartpole_common as common

KYI = Path(__file__).with_name("dqn.kyi")


def load_modules(backend: str):
    """The (Q, DQNLoss) classes of the chosen backend."""
    if backend == "kokoyi":
        import kokoyi

        kokoyi.load(KYI)

        class Q(torch.nn.Module):
            def __init__(self, d, a, hidden=128):
                super().__init__()
                self.Linears = torch.nn.ModuleList([kokoyi.nn.Linear(d, hidden), kokoyi.nn.Linear(hidden, a)])

            def get_parameters(self):
                return self.Linears

            forward = kokoyi.symbol["Q"]

        class DQNLoss(torch.nn.Module):
            def __init__(self, Q, Q_hat, gamma):
                super().__init__()
                self.Q, self.Q_hat, self.gamma = Q, Q_hat, gamma

            def get_parameters(self):
                return self.Q, self.Q_hat, self.gamma

            forward = kokoyi.symbol["DQNLoss"]

        return Q, DQNLoss
    import cartpole_twins

    return cartpole_twins.Q, cartpole_twins.DQNLoss


def load_mean_loss():
    """The Kokoyi module ``MeanDQNLoss``: the mean loss of a replay minibatch, called on it as
    one sample (``DQNLoss`` with ``batch_level`` and ``.mean()`` computes the same)."""
    import kokoyi

    _, DQNLoss = load_modules("kokoyi")

    class MeanDQNLoss(DQNLoss):
        forward = kokoyi.symbol["MeanDQNLoss"]

    return MeanDQNLoss


class ReplayBuffer:
    """A fixed-size ring buffer of transitions (s, a, r, s', done), sampled uniformly."""

    def __init__(self, capacity: int, obs_dim: int, rng: np.random.Generator):
        self.s = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.a = np.zeros(capacity, dtype=np.int64)
        self.r = np.zeros(capacity, dtype=np.float32)
        self.s_next = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.done = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.size, self.pos, self.rng = capacity, 0, 0, rng

    def add(self, s, a, r, s_next, done):
        i = self.pos
        self.s[i], self.a[i], self.r[i], self.s_next[i], self.done[i] = s, a, r, s_next, done
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int):
        idx = self.rng.integers(0, self.size, size=batch_size)
        return tuple(torch.from_numpy(x[idx]) for x in (self.s, self.a, self.r, self.s_next, self.done))


def epsilon_at(step: int, start: float, end: float, decay_steps: int) -> float:
    """Linear decay from ``start`` to ``end`` over ``decay_steps`` environment steps."""
    return end + (start - end) * max(0.0, 1.0 - step / decay_steps)


def update_target(q, q_hat, tau: float) -> None:
    """Polyak update ``q_hat <- (1 - tau) q_hat + tau q`` (tau = 1: hard copy)."""
    with torch.no_grad():
        for p, p_hat in zip(q.parameters(), q_hat.parameters()):
            p_hat.lerp_(p, tau)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["kokoyi", "torch"], default="kokoyi")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=600, help="maximum number of training episodes")
    p.add_argument("--out", default=None, help="output folder for summary.json and durations.png")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--buffer", type=int, default=50_000, help="replay capacity (transitions)")
    p.add_argument("--learning-starts", type=int, default=1000, help="env steps before the first update")
    p.add_argument("--train-every", type=int, default=1, help="env steps per gradient update")
    p.add_argument("--eps-start", type=float, default=1.0)
    p.add_argument("--eps-end", type=float, default=0.01)
    p.add_argument("--eps-decay-steps", type=int, default=5_000)
    p.add_argument("--tau", type=float, default=0.005,
                   help="target update rate: 1 = hard copy every --target-every steps, <1 = Polyak")
    p.add_argument("--target-every", type=int, default=500, help="env steps between target updates")
    p.add_argument("--clip", type=float, default=10.0, help="gradient-norm clip (0 = off)")
    p.add_argument("--lr-decay-steps", type=int, default=50_000,
                   help="decay the learning rate linearly to --lr-end over this many updates (0 = constant)")
    p.add_argument("--lr-end", type=float, default=1e-4)
    p.add_argument("--keep-going", action="store_true", help="do not stop once solved")
    p.add_argument("--test-episodes", type=int, default=5, help="greedy test episodes after training")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    common.seed_everything(args.seed)
    out = common.out_dir(args.out, "dqn", args.backend, args.seed)

    Q, DQNLoss = load_modules(args.backend)
    env = common.make_env(args.seed)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    q = Q(obs_dim, n_actions, args.hidden)
    q_hat = copy.deepcopy(q).requires_grad_(False)
    dqn_loss = DQNLoss(q, q_hat, args.gamma)
    opt = torch.optim.Adam(q.parameters(), lr=args.lr)
    sched = None
    if args.lr_decay_steps > 0:
        frac_end = args.lr_end / args.lr
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: frac_end + (1 - frac_end) * max(0.0, 1 - k / args.lr_decay_steps))
    rng = np.random.default_rng(args.seed)
    buffer = ReplayBuffer(args.buffer, obs_dim, rng)
    hyper = {k: getattr(args, k) for k in (
        "hidden", "lr", "gamma", "batch_size", "buffer", "learning_starts", "train_every", "eps_start",
        "eps_end", "eps_decay_steps", "tau", "target_every", "clip", "lr_decay_steps", "lr_end")}
    hyper["optimizer"] = "Adam"

    tracker = common.Tracker()
    step = 0
    t0 = time.perf_counter()
    bar = common.progress(args.episodes, f"DQN[{args.backend}] seed {args.seed}", args.quiet)
    for episode in range(args.episodes):
        s, _ = env.reset(seed=args.seed if episode == 0 else None)
        duration, losses = 0, []
        while True:
            if rng.random() < epsilon_at(step, args.eps_start, args.eps_end, args.eps_decay_steps):
                a = int(env.action_space.sample())
            else:
                with torch.no_grad():
                    a = int(torch.argmax(q(torch.as_tensor(s, dtype=torch.float32))))
            s_next, r, terminated, truncated, _ = env.step(a)
            # Only a real termination ends the return; the 200-step time limit does not.
            buffer.add(s, a, r, s_next, float(terminated))
            s = s_next
            step += 1
            duration += 1

            if step >= args.learning_starts and step % args.train_every == 0:
                batch = buffer.sample(args.batch_size)
                loss = dqn_loss(*batch, batch_level=[1, 1, 1, 1, 1]).mean()
                opt.zero_grad()
                loss.backward()
                if args.clip > 0:
                    torch.nn.utils.clip_grad_norm_(q.parameters(), args.clip)
                opt.step()
                if sched is not None:
                    sched.step()
                losses.append(loss.item())
            if args.tau < 1.0:
                update_target(q, q_hat, args.tau)
            elif step % args.target_every == 0:
                update_target(q, q_hat, 1.0)
            if terminated or truncated:
                break
        tracker.add(duration, float(np.mean(losses)) if losses else None)
        bar.update(1)
        bar.set_postfix(mean100=f"{tracker.mean():.1f}", refresh=False)
        if tracker.solved_at is not None and not args.keep_going:
            break
    bar.close()
    wall = time.perf_counter() - t0
    env.close()

    test = common.greedy_test(q, args.seed + 10_000, args.test_episodes)
    summary = common.write_summary(out, "dqn", args, tracker, hyper, wall, step, test)
    common.save_plot(tracker, out / "durations.png", f"DQN on {common.ENV_ID} ({args.backend} backend, seed {args.seed})")
    common.report(summary, out)
    return summary


if __name__ == "__main__":
    main()
