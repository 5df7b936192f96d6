"""Hand-written PyTorch twins of the Kokoyi PPO modules, a cross-check and benchmarks.

``examples/ppo/ppo.kyi`` defines the actor-critic and the PPO losses in Kokoyi. This file
holds the same modules written directly in PyTorch, with the same constructor signatures,
the same parameters and the same call convention (``forward(*inputs, batch_level=None)``),
so that ``examples/ppo/train.py --backend torch`` swaps them in:

* ``Policy(d, a, hidden)``  -- ``\\pi``: action logits of a tanh MLP d -> hidden -> hidden -> a
* ``Value(d, hidden)``      -- ``V``: state value of a tanh MLP d -> hidden -> hidden -> 1
* ``GAE(gamma, lam)``       -- advantages by the reversed loop of CleanRL's ``ppo.py``, and
                               the returns ``advantages + values``
* ``Normalise()``           -- ``(x - mean) / (sample std + 1e-8)``
* ``PPOLoss(pi, V, eps, c1, c2)`` -- per-sample clipped surrogate + clipped value loss
                               - entropy; also returns the ratio, the value loss and the entropy

Both backends build their Linear layers with ``layer_init`` (orthogonal weights, zero
biases, as CleanRL) in the same order, so a fixed seed gives identical weights.

    python benchmarks/ppo_twins.py check       # Kokoyi vs twin: values and gradients
    python benchmarks/ppo_twins.py gae         # GAE forward+backward: Kokoyi vs the reversed loop
    python benchmarks/ppo_twins.py throughput  # train.py's loop, both backends alternating,
                                               # and the single-environment PG script
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """CleanRL's initialisation: orthogonal weights with gain ``std``, constant biases."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp_layers(d: int, hidden: int, out: int, out_std: float, linear=nn.Linear) -> nn.ModuleList:
    """The three Linear layers d -> hidden -> hidden -> out, initialised as CleanRL's agent."""
    return nn.ModuleList([layer_init(linear(d, hidden)), layer_init(linear(hidden, hidden)),
                          layer_init(linear(hidden, out), out_std)])


class Policy(nn.Module):
    """Twin of ``\\Module{\\pi}{s; Linears}``: action logits."""

    def __init__(self, d: int, a: int, hidden: int = 64):
        super().__init__()
        self.Linears = mlp_layers(d, hidden, a, 0.01)

    def get_parameters(self):
        return self.Linears

    def forward(self, s, batch_level=None):
        L = self.Linears
        return L[2](torch.tanh(L[1](torch.tanh(L[0](s)))))


class Value(nn.Module):
    """Twin of ``\\Module{V}{s; Linears}``: the state value (a scalar per state)."""

    def __init__(self, d: int, hidden: int = 64):
        super().__init__()
        self.Linears = mlp_layers(d, hidden, 1, 1.0)

    def get_parameters(self):
        return self.Linears

    def forward(self, s, batch_level=None):
        L = self.Linears
        return L[2](torch.tanh(L[1](torch.tanh(L[0](s)))))[..., 0]


def gae_loop(r, v, d, gamma: float, lam: float):
    """CleanRL's reversed loop, time on the last axis: r, d are (..., T), v is (..., T+1)."""
    T = r.shape[-1]
    adv = [None] * T
    last = torch.zeros_like(r[..., 0])
    for t in reversed(range(T)):
        nonterminal = 1.0 - d[..., t]
        delta = r[..., t] + gamma * v[..., t + 1] * nonterminal - v[..., t]
        adv[t] = last = delta + gamma * lam * nonterminal * last
    return torch.stack(adv, dim=-1)


class GAE(nn.Module):
    """Twin of ``\\Module{GAE}{r, v, d; \\gamma, \\lambda}`` (one environment per batch row)."""

    def __init__(self, gamma: float = 0.99, lam: float = 0.95):
        super().__init__()
        self.gamma, self.lam = gamma, lam

    def get_parameters(self):
        return self.gamma, self.lam

    def forward(self, r, v, d, batch_level=None):
        adv = gae_loop(r, v, d, self.gamma, self.lam)
        return adv, adv + v[..., :-1]


class Normalise(nn.Module):
    """Twin of ``\\Module{Normalise}{x}`` (one unbatched vector)."""

    def forward(self, x, batch_level=None):
        return (x - x.mean()) / (x.std() + 1e-8)


class PPOLoss(nn.Module):
    """Twin of ``\\Module{PPOLoss}{s, a, \\ell_{old}, \\hat{A}, R, v_{old}; \\pi, V, \\epsilon, c_1, c_2}``.

    Per sample (or with leading batch axes): (loss, ratio, value loss, entropy).
    """

    def __init__(self, pi: nn.Module, V: nn.Module, eps: float = 0.2, c1: float = 0.5, c2: float = 0.01):
        super().__init__()
        self.pi, self.V = pi, V
        self.eps, self.c1, self.c2 = eps, c1, c2

    def get_parameters(self):
        return self.pi, self.V, self.eps, self.c1, self.c2

    def forward(self, s, a, logp_old, adv, R, v_old, batch_level=None):
        logp = torch.log_softmax(self.pi(s), dim=-1)
        ratio = torch.exp(logp.gather(-1, a.long().unsqueeze(-1)).squeeze(-1) - logp_old)
        surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - self.eps, 1 + self.eps) * adv)
        v = self.V(s)
        v_clipped = v_old + torch.clamp(v - v_old, -self.eps, self.eps)
        value_loss = 0.5 * torch.max((v - R) ** 2, (v_clipped - R) ** 2)
        entropy = -(logp.exp() * logp).sum(-1)
        return -surrogate + self.c1 * value_loss - self.c2 * entropy, ratio, value_loss, entropy


def gae_literal(r, v, d, gamma: float, lam: float):
    """The GAE sum as the paper writes it, with the episode masks: slow, for the self-check.

    A_t = sum_l (gamma lam)^l (prod_{k<l} (1 - d_{t+k})) delta_{t+l}, one 1-D rollout.
    """
    T = r.shape[0]
    delta = [r[t] + gamma * v[t + 1] * (1 - d[t]) - v[t] for t in range(T)]
    out = []
    for t in range(T):
        total, alive = 0.0, 1.0
        for l in range(T - t):
            total = total + (gamma * lam) ** l * alive * delta[t + l]
            alive = alive * (1 - d[t + l])
        out.append(total)
    return torch.stack(out)


# ----------------------------------------------------------------------------
# Kokoyi modules (the training script's own classes)
# ----------------------------------------------------------------------------
def _train_script():
    import importlib.util

    name = "_ppo_train"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / "ppo" / "train.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def kokoyi_modules():
    """The Kokoyi backend's module classes, as ``train.load_modules('kokoyi')`` gives them."""
    return _train_script().load_modules("kokoyi")


def twin_modules():
    return {"Policy": Policy, "Value": Value, "GAE": GAE, "Normalise": Normalise, "PPOLoss": PPOLoss}


# ----------------------------------------------------------------------------
# check: Kokoyi against the twins
# ----------------------------------------------------------------------------
def _close(name, x, y, atol=1e-5, quiet=False):
    ok = x.shape == y.shape and torch.allclose(x, y, atol=atol, rtol=1e-4)
    err = (x - y).abs().max().item() if x.shape == y.shape else float("nan")
    if not quiet:
        print(f"  {name:<44} {'ok' if ok else 'MISMATCH'}  max|diff|={err:.2e}  shape={tuple(x.shape)}")
    return ok


def rollout_inputs(T: int = 32, N: int = 5, seed: int = 0, done_p: float = 0.1):
    """Rewards, values (T+1 per env, requiring grad) and dones, env-major: (N, T), (N, T+1), (N, T)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(N, T, generator=g)
    v = torch.randn(N, T + 1, generator=g).requires_grad_()
    d = (torch.rand(N, T, generator=g) < done_p).float()
    return r, v, d


def loss_inputs(B: int = 16, obs: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, obs, generator=g)
    a = torch.randint(0, 2, (B,), generator=g)
    logp_old = torch.log(torch.rand(B, generator=g) * 0.8 + 0.1)  # ratios on both sides of the clip
    adv = torch.randn(B, generator=g)
    R = torch.randn(B, generator=g)
    v_old = R + 0.5 * torch.randn(B, generator=g)
    return s, a, logp_old, adv, R, v_old


def check_twin_self(quiet=False) -> bool:
    """The twin GAE against the literal masked sum (no Kokoyi needed)."""
    r, v, d = rollout_inputs(T=20, N=3)
    ok = True
    for i in range(3):
        ok &= _close(f"GAE(twin) vs literal sum, env {i}", GAE(0.99, 0.95)(r[i], v[i], d[i])[0],
                     gae_literal(r[i], v[i], d[i], 0.99, 0.95), quiet=quiet)
    return ok


def _grads(out, params):
    return torch.autograd.grad(out, params, allow_unused=True)


def check_against_kokoyi(quiet=False) -> bool:
    """Every Kokoyi module against its twin: values and gradients, batched = stacked per sample."""
    K = kokoyi_modules()
    ok = True
    torch.manual_seed(0)
    kp, tp = K["Policy"](4, 2, 64), Policy(4, 2, 64)
    tp.load_state_dict(kp.state_dict())
    kv, tv = K["Value"](4, 64), Value(4, 64)
    tv.load_state_dict(kv.state_dict())
    S = torch.randn(7, 4)
    for name, km, tm in (("pi", kp, tp), ("V", kv, tv)):
        ok &= _close(f"{name}(S) batch_level=[1]", km(S, batch_level=[1]), tm(S), quiet=quiet)
        ok &= _close(f"{name}(s) per sample, stacked", torch.stack([km(x) for x in S]), tm(S), quiet=quiet)
        S3 = torch.randn(3, 5, 4)
        ok &= _close(f"{name}(S) batch_level=[2] (steps x envs)", km(S3, batch_level=[2]), tm(S3), quiet=quiet)

    # --- GAE: env-batched vs the loop, vs per-env calls, and gradients wrt the values ---
    r, v, d = rollout_inputs()
    kg, tg = K["GAE"](0.99, 0.95), GAE(0.99, 0.95)
    ka, kR = kg(r, v, d, batch_level=[1, 1, 1])
    ta, tR = tg(r, v, d)
    ok &= _close("GAE advantages batch_level=[1,1,1]", ka, ta, quiet=quiet)
    ok &= _close("GAE returns batch_level=[1,1,1]", kR, tR, quiet=quiet)
    per_env = torch.stack([kg(r[i], v[i], d[i])[0] for i in range(r.shape[0])])
    ok &= _close("GAE per env, stacked", per_env, ta, quiet=quiet)
    w = torch.randn_like(ta)
    (gk,) = _grads((ka * w).sum() + kR.sum(), [v])
    (gt,) = _grads((ta * w).sum() + tR.sum(), [v])
    ok &= _close("GAE d/dv", gk, gt, quiet=quiet)

    # --- Normalise ---
    x = torch.randn(33).requires_grad_()
    kn, tn = K["Normalise"](), Normalise()
    ok &= _close("Normalise", kn(x), tn(x), quiet=quiet)
    wx = torch.randn(33)
    ok &= _close("Normalise d/dx", _grads((kn(x) * wx).sum(), [x])[0], _grads((tn(x) * wx).sum(), [x])[0],
                 quiet=quiet)

    # --- PPOLoss: every output, batched and per sample, and the parameter gradients ---
    kl, tl = K["PPOLoss"](kp, kv, 0.2, 0.5, 0.01), PPOLoss(tp, tv, 0.2, 0.5, 0.01)
    inputs = loss_inputs()
    k_out = kl(*inputs, batch_level=[1] * 6)
    t_out = tl(*inputs)
    for name, a, b in zip(("loss", "ratio", "value loss", "entropy"), k_out, t_out):
        ok &= _close(f"PPOLoss {name} batch_level=[1]*6", a, b, quiet=quiet)
    per_sample = torch.stack([kl(*(x[i] for x in inputs))[0] for i in range(inputs[0].shape[0])])
    ok &= _close("PPOLoss per sample, stacked", per_sample, t_out[0], quiet=quiet)
    k_params = list(kp.parameters()) + list(kv.parameters())
    t_params = list(tp.parameters()) + list(tv.parameters())
    for name, gk, gt in zip([f"pi.{n}" for n, _ in kp.named_parameters()] + [f"V.{n}" for n, _ in kv.named_parameters()],
                                 _grads(k_out[0].mean(), k_params), _grads(t_out[0].mean(), t_params)):
        ok &= _close(f"PPOLoss d/d {name}", gk, gt, atol=1e-6, quiet=quiet)
    return ok


# ----------------------------------------------------------------------------
# gae: the GAE module forward+backward against the hand-written reversed loop
# ----------------------------------------------------------------------------
def _median_ms(fn, n: int, rounds: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n * 1e3)
    return statistics.median(times)


def bench_gae(T: int = 128, N: int = 64, n: int = 20, rounds: int = 5) -> dict:
    """Milliseconds per forward+backward of GAE on a (T steps x N envs) rollout, both ways."""
    K = kokoyi_modules()
    r, v, d = rollout_inputs(T=T, N=N, done_p=0.02)
    kg, tg = K["GAE"](0.99, 0.95), GAE(0.99, 0.95)

    def kokoyi_call():
        adv, ret = kg(r, v, d, batch_level=[1, 1, 1])
        (adv.sum() + ret.sum()).backward()

    def loop_call():
        adv, ret = tg(r, v, d)
        (adv.sum() + ret.sum()).backward()

    kokoyi_ms, loop_ms = [], []
    pairs = [(kokoyi_call, kokoyi_ms), (loop_call, loop_ms)]
    for i in range(rounds):  # alternate the order, so that a load spike hits both
        for fn, acc in (pairs if i % 2 == 0 else pairs[::-1]):
            acc.append(_median_ms(fn, n, 1))
    res = {"T": T, "N": N, "kokoyi_ms": statistics.median(kokoyi_ms), "loop_ms": statistics.median(loop_ms)}
    res["ratio"] = res["kokoyi_ms"] / res["loop_ms"]
    return res


# ----------------------------------------------------------------------------
# throughput: the training loops, both backends alternating in one process
# ----------------------------------------------------------------------------
def ppo_steps(backend: str, steps: int, seed: int = 0, extra=()) -> dict:
    """``train.main`` for ``steps`` env steps (no plot, no test): its timing."""
    script = _train_script()
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        summary = script.main(["--backend", backend, "--seed", str(seed), "--total-steps", str(steps),
                               "--out", out, "--quiet", "--test-episodes", "0", "--no-plot", *extra])
    assert summary["losses_finite"], f"ppo/{backend}: non-finite loss"
    return {"env_steps": summary["env_steps"], "loop_s": summary["wall_time_s"],
            "loop_cpu_s": summary["cpu_time_s"], "steps_per_s": summary["env_steps_per_s"],
            "steps_per_cpu_s": summary["env_steps"] / summary["cpu_time_s"]}


def pg_steps(steps: int, seed: int = 0) -> dict:
    """The single-environment REINFORCE script (Kokoyi backend) for ~``steps`` env steps."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import cartpole_twins

    run = cartpole_twins.train_steps("pg", "kokoyi", steps, seed)
    return {"env_steps": run["env_steps"], "loop_s": run["loop_s"], "loop_cpu_s": run["loop_cpu_s"],
            "steps_per_s": run["steps_per_s"], "steps_per_cpu_s": run["steps_per_cpu_s"]}


def throughput(steps: int, rounds: int, seed: int, pg_steps_budget: int, extra=()) -> dict:
    for backend in ("kokoyi", "torch"):  # compilation and first calls out of the timed rounds
        ppo_steps(backend, 512, seed, extra)
    runs = {"kokoyi": [], "torch": [], "pg": []}
    for i in range(rounds):
        order = ("kokoyi", "torch") if i % 2 == 0 else ("torch", "kokoyi")
        for backend in order:
            runs[backend].append(ppo_steps(backend, steps, seed, extra))
        if pg_steps_budget:
            runs["pg"].append(pg_steps(pg_steps_budget, seed))
        for name in (*order, "pg") if pg_steps_budget else order:
            x = runs[name][-1]
            print(f"  round {i + 1}/{rounds} {name:<7} {x['env_steps']:>7} steps {x['loop_s']:>7.2f} s "
                  f"{x['steps_per_s']:>8.0f} steps/s {x['steps_per_cpu_s']:>8.0f} steps/cpu-s", file=sys.stderr)
    res = {"runs": runs}
    for key in ("steps_per_s", "steps_per_cpu_s"):
        med = {b: statistics.median(x[key] for x in v) for b, v in runs.items() if v}
        ratios = [k[key] / t[key] for k, t in zip(runs["kokoyi"], runs["torch"])]
        res[key] = {**med, "ratios": ratios, "kokoyi_over_twin": statistics.median(ratios)}
        if "pg" in med:
            res[key]["kokoyi_over_pg"] = med["kokoyi"] / med["pg"]
    return res


def main(argv=None) -> int:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["check", "gae", "throughput"])
    p.add_argument("--steps", type=int, default=20_480, help="env steps per PPO run (throughput)")
    p.add_argument("--pg-steps", type=int, default=5000,
                   help="env steps per run of the single-environment PG script (throughput; 0: skip it)")
    p.add_argument("--rounds", type=int, default=3, help="runs per backend (throughput, gae)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-T", type=int, default=128, help="rollout steps (gae)")
    p.add_argument("-N", type=int, default=64, help="environments (gae)")
    p.add_argument("-n", type=int, default=20, help="calls per timing (gae)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    args, extra = p.parse_known_args(argv)
    if extra and (args.cmd != "throughput" or extra[0] != "--"):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    extra = extra[1:]  # throughput: options after -- go to train.py
    if args.cmd == "check":
        ok = check_twin_self() & check_against_kokoyi()
        print("ALL OK" if ok else "FAILURES")
        return 0 if ok else 1
    if args.cmd == "gae":
        res = bench_gae(args.T, args.N, args.n, args.rounds)
        print(f"GAE forward+backward, {args.T} steps x {args.N} envs: Kokoyi {res['kokoyi_ms']:.2f} ms, "
              f"reversed loop {res['loop_ms']:.2f} ms, ratio {res['ratio']:.2f} (target <= 1.0)")
    else:
        res = throughput(args.steps, args.rounds, args.seed, args.pg_steps, extra)
        w = res["steps_per_s"]
        print(f"{args.rounds} rounds x {args.steps} env steps, one process, one torch thread")
        print("| | env steps/s (median) | Kokoyi / it |\n|---|---:|---:|")
        print(f"| PPO, Kokoyi | {w['kokoyi']:.0f} | 1.00 |")
        print(f"| PPO, twin | {w['torch']:.0f} | **{w['kokoyi_over_twin']:.2f}** (target >= 0.95; per round "
              f"{', '.join(f'{x:.2f}' for x in w['ratios'])}) |")
        if "pg" in w:
            print(f"| REINFORCE, one env, Kokoyi | {w['pg']:.0f} | **{w['kokoyi_over_pg']:.2f}** (target >= 3) |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cmd": args.cmd, "torch": torch.__version__, **vars(args),
                                               "extra": extra, "results": res}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
