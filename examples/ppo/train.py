"""PPO (clipped surrogate objective, GAE) on vectorised gymnasium environments, in Kokoyi.

    python examples/ppo/train.py --seed 0                          # Kokoyi, CartPole-v1, 500k steps
    python examples/ppo/train.py --seed 0 --backend torch          # the hand-written twin
    python examples/ppo/train.py --env Acrobot-v1 --stop-at-target # stop once the target is reached

The actor ``\\pi`` (action logits), the critic ``V``, the generalised advantage estimate
``GAE``, the advantage normalisation and the per-sample ``PPOLoss`` come from ``ppo.kyi``
(``--backend kokoyi``) or from their PyTorch twins in ``benchmarks/ppo_twins.py``
(``--backend torch``). The policy runs on all environments in one call
(``batch_level=[1]``), GAE on whole rollouts (one batch row per environment) and the loss on
minibatches of transitions. The hyperparameters are those of CleanRL's ``ppo.py``.

The run records every finished episode (its return and the env step at which it ended) and
the first env step at which the mean return of the last 100 episodes reaches the target
(475 on CartPole-v1, -100 on Acrobot-v1). ``--stop-at-target`` ends training there, to save
time in sweeps (the learning-rate schedule is still that of ``--total-steps``).

Writes ``summary.json`` and ``returns.png`` to ``--out`` (default
``runs/ppo/<env>/<backend>-seed<seed>``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
for _p in (REPO, REPO / "benchmarks"):  # kokoyi from a source checkout, and the twins
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

KYI = Path(__file__).with_name("ppo.kyi")
TARGETS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}  # 100-episode mean return that counts as solved
WINDOW = 100


def load_modules(backend: str) -> dict:
    """The classes Policy, Value, GAE, Normalise and PPOLoss of the chosen backend."""
    import ppo_twins as twins

    if backend == "torch":
        return twins.twin_modules()
    import kokoyi

    kokoyi.load(KYI)

    class Policy(torch.nn.Module):
        def __init__(self, d, a, hidden=64):
            super().__init__()
            self.Linears = twins.mlp_layers(d, hidden, a, 0.01, kokoyi.nn.Linear)

        def get_parameters(self):
            return self.Linears

        forward = kokoyi.symbol[r"\pi"]

    class Value(torch.nn.Module):
        def __init__(self, d, hidden=64):
            super().__init__()
            self.Linears = twins.mlp_layers(d, hidden, 1, 1.0, kokoyi.nn.Linear)

        def get_parameters(self):
            return self.Linears

        forward = kokoyi.symbol["V"]

    class GAE(torch.nn.Module):
        def __init__(self, gamma=0.99, lam=0.95):
            super().__init__()
            self.gamma, self.lam = gamma, lam

        def get_parameters(self):
            return self.gamma, self.lam

        forward = kokoyi.symbol["GAE"]

    class Normalise(torch.nn.Module):
        forward = kokoyi.symbol["Normalise"]

    class PPOLoss(torch.nn.Module):
        def __init__(self, pi, V, eps=0.2, c1=0.5, c2=0.01):
            super().__init__()
            self.pi, self.V = pi, V
            self.eps, self.c1, self.c2 = eps, c1, c2

        def get_parameters(self):
            return self.pi, self.V, self.eps, self.c1, self.c2

        forward = kokoyi.symbol["PPOLoss"]

    return {"Policy": Policy, "Value": Value, "GAE": GAE, "Normalise": Normalise, "PPOLoss": PPOLoss}


def make_envs(env_id: str, n: int, vector: str = "sync"):
    """``n`` copies of ``env_id``; a finished episode is reset in the same step (as in CleanRL),
    so the observation returned with ``terminated or truncated`` is the next episode's first."""
    import gymnasium as gym

    cls = gym.vector.SyncVectorEnv if vector == "sync" else gym.vector.AsyncVectorEnv
    return cls([lambda: gym.make(env_id)] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


class EpisodeLog:
    """Running returns of every environment, the finished episodes (return, length, env step at
    the end) and the env step at which the 100-episode mean return first reached ``target``."""

    def __init__(self, num_envs: int, target: float):
        self.target = target
        self.step = 0  # env steps so far, all environments together
        self.running = np.zeros(num_envs)
        self.running_length = np.zeros(num_envs, dtype=int)
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.end_steps: list[int] = []
        self.window: deque[float] = deque(maxlen=WINDOW)
        self.reached_at: int | None = None

    def record(self, rewards, dones) -> None:
        """One step of every environment."""
        self.step += len(rewards)
        self.running += rewards
        self.running_length += 1
        for i in np.flatnonzero(dones) if dones.any() else ():
            self.returns.append(float(self.running[i]))
            self.lengths.append(int(self.running_length[i]))
            self.end_steps.append(self.step)
            self.window.append(float(self.running[i]))
            self.running[i], self.running_length[i] = 0.0, 0
            if self.reached_at is None and len(self.window) == WINDOW and self.mean() >= self.target:
                self.reached_at = self.step

    def mean(self) -> float:
        return sum(self.window) / len(self.window) if self.window else float("nan")

    def running_means(self) -> list[float]:
        x = np.asarray(self.returns, dtype=float)
        c = np.concatenate([[0.0], np.cumsum(x)])
        i = np.arange(1, len(x) + 1)
        lo = np.maximum(i - WINDOW, 0)
        return list((c[i] - c[lo]) / (i - lo))


def collect_rollout(envs, pi, V, obs, T: int, log: EpisodeLog):
    """``T`` steps of every environment, actions sampled from ``pi``: the rollout (time first)
    and the next observations. The policy and the critic run on all environments in one call."""
    steps = {"obs": [], "actions": [], "logp": [], "values": [], "rewards": [], "dones": []}
    with torch.no_grad():
        for _ in range(T):
            logp_all = torch.log_softmax(pi(obs, batch_level=[1]), dim=-1)
            action = torch.multinomial(logp_all.exp(), 1)
            steps["obs"].append(obs)
            steps["actions"].append(action)
            steps["logp"].append(logp_all.gather(-1, action))
            steps["values"].append(V(obs, batch_level=[1]))
            obs_np, reward, terminated, truncated, _ = envs.step(action.view(-1).numpy())
            done = np.logical_or(terminated, truncated)  # as CleanRL: a time limit also ends the bootstrap
            steps["rewards"].append(reward)
            steps["dones"].append(done)
            obs = torch.as_tensor(obs_np, dtype=torch.float32)
            log.record(reward, done)
        steps["values"].append(V(obs, batch_level=[1]))  # values[T]: the bootstrap value of the next observations
    ro = {k: torch.stack(steps[k]) for k in ("obs", "values")}
    ro["actions"], ro["logp"] = torch.stack(steps["actions"])[..., 0], torch.stack(steps["logp"])[..., 0]
    for k in ("rewards", "dones"):
        ro[k] = torch.as_tensor(np.stack(steps[k]), dtype=torch.float32)
    return ro, obs


def ppo_update(ro, gae, normalise, ppo_loss, opt, params, epochs: int, minibatches: int, max_grad_norm: float,
               clip: float, generator) -> list[float]:
    """Advantages of the rollout, then ``epochs`` passes of ``minibatches`` gradient steps on the
    mean per-sample PPO loss. The mean loss, value loss, entropy, approx. KL and clip fraction."""
    with torch.no_grad():  # one batch row per environment: (N, T) rewards and dones, (N, T+1) values
        adv, ret = gae(ro["rewards"].T, ro["values"].T, ro["dones"].T, batch_level=[1, 1, 1])
    batch = adv.numel()
    b_obs = ro["obs"].reshape(batch, -1)
    b_act, b_logp, b_val = ro["actions"].reshape(batch), ro["logp"].reshape(batch), ro["values"][:-1].reshape(batch)
    b_adv, b_ret = adv.T.reshape(batch), ret.T.reshape(batch)
    size = batch // minibatches
    stats = []
    for _ in range(epochs):
        perm = torch.randperm(batch, generator=generator)
        for start in range(0, batch, size):
            idx = perm[start:start + size]
            loss, ratio, v_loss, entropy = ppo_loss(b_obs[idx], b_act[idx], b_logp[idx], normalise(b_adv[idx]),
                                                    b_ret[idx], b_val[idx], batch_level=[1] * 6)
            loss = loss.mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=True)
            opt.step()
            with torch.no_grad():
                stats.append(torch.stack([loss, v_loss.mean(), entropy.mean(), ((ratio - 1) - ratio.log()).mean(),
                                          ((ratio - 1).abs() > clip).float().mean()]))
    return torch.stack(stats).mean(0).tolist()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["kokoyi", "torch"], default="kokoyi")
    p.add_argument("--env", choices=sorted(TARGETS), default="CartPole-v1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=500_000, help="env steps (all environments together)")
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--num-steps", type=int, default=128, help="steps per environment and rollout")
    p.add_argument("--vector", choices=["sync", "async"], default="sync",
                   help="gymnasium SyncVectorEnv (one process) or AsyncVectorEnv (a process per env)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=2.5e-4)
    p.add_argument("--no-anneal-lr", dest="anneal_lr", action="store_false",
                   help="keep the learning rate constant (default: linear decay to 0 over --total-steps)")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--minibatches", type=int, default=4)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--clip", type=float, default=0.2, help="epsilon of the clipped ratio and the clipped value")
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    p.add_argument("--target", type=float, default=None,
                   help="100-episode mean return that counts as solved (default: 475 / -100)")
    p.add_argument("--stop-at-target", action="store_true",
                   help="stop training once the 100-episode mean reaches --target (sweeps)")
    p.add_argument("--test-episodes", type=int, default=5, help="greedy test episodes after training")
    p.add_argument("--out", default=None, help="output folder for summary.json and returns.png")
    p.add_argument("--no-plot", dest="plot", action="store_false")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.target is None:
        args.target = TARGETS[args.env]
    return args


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def greedy_test(pi, env_id: str, seed: int, episodes: int) -> list[float]:
    """Returns of ``episodes`` episodes with the most likely action at every step."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    with torch.no_grad():
        for k in range(episodes):
            s, _ = env.reset(seed=seed if k == 0 else None)
            total, done = 0.0, False
            while not done:
                a = int(torch.argmax(pi(torch.as_tensor(s, dtype=torch.float32))))
                s, r, terminated, truncated, _ = env.step(a)
                total, done = total + float(r), terminated or truncated
            returns.append(total)
    env.close()
    return returns


def save_plot(log: EpisodeLog, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(log.end_steps, log.returns, lw=0.6, alpha=0.4, label="episodic return")
    ax.plot(log.end_steps, log.running_means(), lw=2, label=f"{WINDOW}-episode mean")
    ax.axhline(log.target, color="k", ls="--", lw=1, label=f"target ({log.target:g})")
    if log.reached_at is not None:
        ax.axvline(log.reached_at, color="g", ls=":", lw=1, label=f"reached at {log.reached_at} steps")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episodic return")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    seed_everything(args.seed)
    out = Path(args.out) if args.out else Path("runs") / "ppo" / args.env / f"{args.backend}-seed{args.seed}"
    os.makedirs(out, exist_ok=True)

    M = load_modules(args.backend)
    envs = make_envs(args.env, args.num_envs, args.vector)
    obs_dim, n_actions = envs.single_observation_space.shape[0], envs.single_action_space.n
    pi = M["Policy"](obs_dim, n_actions, args.hidden)
    V = M["Value"](obs_dim, args.hidden)
    gae = M["GAE"](args.gamma, args.gae_lambda)
    normalise = M["Normalise"]()
    ppo_loss = M["PPOLoss"](pi, V, args.clip, args.vf_coef, args.ent_coef)
    params = list(pi.parameters()) + list(V.parameters())
    opt = torch.optim.Adam(params, lr=args.lr, eps=1e-5, foreach=True)  # one call for all tensors: faster on CPU

    batch = args.num_envs * args.num_steps
    updates = max(1, args.total_steps // batch)
    shuffle = torch.Generator().manual_seed(args.seed)
    log = EpisodeLog(args.num_envs, args.target)
    history = []  # one row per update: env step, loss, value loss, entropy, approx. KL, clip fraction
    obs = torch.as_tensor(envs.reset(seed=args.seed)[0], dtype=torch.float32)
    hyper = {k: getattr(args, k) for k in ("num_envs", "num_steps", "hidden", "lr", "anneal_lr", "gamma",
                                           "gae_lambda", "minibatches", "epochs", "clip", "ent_coef", "vf_coef",
                                           "max_grad_norm", "vector")}
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=updates * batch, desc=f"PPO[{args.backend}] {args.env} seed {args.seed}", unit="step",
                   dynamic_ncols=True, mininterval=0.5)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for update in range(updates):
        if args.anneal_lr:
            opt.param_groups[0]["lr"] = args.lr * (1.0 - update / updates)
        ro, obs = collect_rollout(envs, pi, V, obs, args.num_steps, log)
        stats = ppo_update(ro, gae, normalise, ppo_loss, opt, params, args.epochs, args.minibatches,
                           args.max_grad_norm, args.clip, shuffle)
        history.append([log.step, *stats])
        if bar is not None:
            bar.update(batch)
            bar.set_postfix(mean100=f"{log.mean():.1f}", refresh=False)
        if args.stop_at_target and log.reached_at is not None:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if bar is not None:
        bar.close()
    envs.close()

    test = greedy_test(pi, args.env, args.seed + 10_000, args.test_episodes)
    summary = {
        "algo": "ppo", "env": args.env, "backend": args.backend, "seed": args.seed,
        "target": args.target, "reached_at": log.reached_at, "stopped_at_target": bool(
            args.stop_at_target and log.reached_at is not None),
        "total_steps": args.total_steps, "env_steps": log.step, "updates": len(history),
        "episodes": len(log.returns), "final_mean100": log.mean(),
        "wall_time_s": wall, "cpu_time_s": cpu, "env_steps_per_s": log.step / wall if wall > 0 else None,
        "hyperparameters": hyper,
        "losses_finite": all(math.isfinite(x) for row in history for x in row),
        "greedy_test_returns": test,
        "episode_returns": log.returns, "episode_lengths": log.lengths, "episode_end_steps": log.end_steps,
        "history_columns": ["env_step", "loss", "value_loss", "entropy", "approx_kl", "clip_fraction"],
        "history": history,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    if args.plot:
        save_plot(log, out / "returns.png", f"PPO on {args.env} ({args.backend} backend, seed {args.seed})")
    reached = f"target {args.target:g} reached at step {log.reached_at}" if log.reached_at else \
        f"target {args.target:g} NOT reached"
    print(f"[ppo/{args.backend} {args.env} seed={args.seed}] {reached}; {log.step} env steps, {len(log.returns)} "
          f"episodes, final 100-mean {log.mean():.1f}, {wall:.1f}s, {summary['env_steps_per_s']:.0f} env steps/s")
    print(f"greedy test returns: {test}")
    print(f"wrote {out / 'summary.json'}" + (f" and {out / 'returns.png'}" if args.plot else ""))
    return summary


if __name__ == "__main__":
    main()
