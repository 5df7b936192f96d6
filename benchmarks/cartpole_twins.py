"""Hand-written PyTorch twins of the Kokoyi CartPole agents.

``examples/policy_gradient/policy.kyi`` and ``examples/dqn/dqn.kyi`` define the
models and losses in Kokoyi.  This file holds the same networks and losses
written directly in PyTorch, with the same constructor signatures and the same
call convention (``forward(*inputs, batch_level=None)``), so that the training
scripts can swap one for the other with ``--backend torch|kokoyi``:

* ``Pi(d, a, hidden)``      -- softmax policy  ``Softmax(L1(ReLU(L0(s))))``
* ``PGLoss(gamma)``         -- ``-normalise(G) * logP`` with discounted returns
                               ``G_t = sum_i gamma^i r[t+i]`` normalised by the
                               mean and the *population* standard deviation
* ``Q(d, a, hidden)``       -- Q network ``L1(ReLU(L0(s)))``
* ``DQNLoss(Q, Qhat, gamma)`` -- Huber loss of the TD error against the target
                               ``r + gamma (1 - done) max_a' Qhat(s')[a']``
                               (no gradient through the target network)

Both Linear layers are ``torch.nn.Linear`` (``kokoyi.nn.Linear`` is one too), so
for a fixed seed the twin and the Kokoyi modules start from identical weights and
the two backends should produce the same training run up to float rounding.

Run as a script for a cross-check and a speed comparison of the two backends::

    python benchmarks/cartpole_twins.py check   # kokoyi vs twin outputs and gradients
    python benchmarks/cartpole_twins.py bench   # per-call latency of both backends
    python benchmarks/cartpole_twins.py throughput --steps 5000 --rounds 3
        # the scripts' own training loops, both backends alternating in one process:
        # env steps per second and the ratio Kokoyi / twin
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


# ----------------------------------------------------------------------------
# Policy gradient
# ----------------------------------------------------------------------------
class Pi(nn.Module):
    """Twin of ``\\Module{\\pi}{s; Linears}``."""

    def __init__(self, d: int, a: int, hidden: int = 128):
        super().__init__()
        self.Linears = nn.ModuleList([nn.Linear(d, hidden), nn.Linear(hidden, a)])

    def get_parameters(self):
        return self.Linears

    def forward(self, s, batch_level=None):
        # Per sample the softmax runs over the action vector; with leading batch
        # axes that is still the last axis, so batch_level needs no special case.
        return torch.softmax(self.Linears[1](torch.relu(self.Linears[0](s))), dim=-1)


def discounted_returns(r: torch.Tensor, gamma: float) -> torch.Tensor:
    """``G_t = sum_{i=0}^{T-1-t} gamma^i r[t+i]`` for a (T,) reward vector."""
    G = [0.0] * r.shape[0]
    running = 0.0
    for t, rt in zip(range(r.shape[0] - 1, -1, -1), reversed(r.tolist())):
        running = rt + gamma * running
        G[t] = running
    return torch.tensor(G, dtype=r.dtype)


class PGLoss(nn.Module):
    """Twin of ``\\Module{PGLoss}{logP, r; \\gamma}`` (one episode, unbatched)."""

    def __init__(self, gamma: float = 0.99):
        super().__init__()
        self.gamma = gamma

    def get_parameters(self):
        return self.gamma

    def forward(self, logP, r, batch_level=None):
        if batch_level not in (None, [0, 0], (0, 0)):
            raise NotImplementedError("the twin PGLoss takes one episode at a time")
        G = discounted_returns(r.to(logP.dtype), self.gamma)
        mu = G.mean()
        sigma = torch.sqrt(((G - mu) ** 2).sum() / G.shape[0])  # population std, no epsilon
        G_bar = (G - mu) / sigma
        return -G_bar * logP


def pg_loss_literal(logP, r, gamma):
    """A slow, literal transcription of the PGLoss math (double sums as written)."""
    T = r.shape[0]
    G = torch.stack([sum(gamma**i * r[t + i] for i in range(T - t)) for t in range(T)])
    mu = G.mean()
    sigma = torch.sqrt(sum((G[i] - mu) ** 2 for i in range(T)) / T)
    return -((G - mu) / sigma) * logP


# ----------------------------------------------------------------------------
# DQN
# ----------------------------------------------------------------------------
class Q(nn.Module):
    """Twin of ``\\Module{Q}{s; Linears}``."""

    def __init__(self, d: int, a: int, hidden: int = 128):
        super().__init__()
        self.Linears = nn.ModuleList([nn.Linear(d, hidden), nn.Linear(hidden, a)])

    def get_parameters(self):
        return self.Linears

    def forward(self, s, batch_level=None):
        return self.Linears[1](torch.relu(self.Linears[0](s)))


def huber(delta: torch.Tensor) -> torch.Tensor:
    """0.5 d^2 if |d| < 1 else |d| - 0.5 (elementwise)."""
    ad = delta.abs()
    return torch.where(ad < 1, 0.5 * delta**2, ad - 0.5)


class DQNLoss(nn.Module):
    """Twin of ``\\Module{DQNLoss}{s, a, r, s', done; Q, \\hat{Q}, \\gamma}``.

    Works per sample (``batch_level=None``) and on replay batches
    (``batch_level=[1, 1, 1, 1, 1]``); returns per-sample losses.
    """

    def __init__(self, Q: nn.Module, Q_hat: nn.Module, gamma: float = 0.99):
        super().__init__()
        self.Q = Q
        self.Q_hat = Q_hat
        self.gamma = gamma

    def get_parameters(self):
        return self.Q, self.Q_hat, self.gamma

    def forward(self, s, a, r, s_next, done, batch_level=None):
        y = r + self.gamma * (1 - done) * self.Q_hat(s_next).detach().max(dim=-1).values
        q_sa = self.Q(s).gather(-1, a.long().unsqueeze(-1)).squeeze(-1)
        return huber(q_sa - y)


# ----------------------------------------------------------------------------
# Backend selection shared by the example scripts
# ----------------------------------------------------------------------------
def kokoyi_available() -> bool:
    try:
        import kokoyi
    except ImportError:
        return False
    return all(hasattr(kokoyi, name) for name in ("compile", "load", "symbol", "nn"))


def _example_script(algo: str):
    """The example training script ``examples/<algo>/train.py`` as a module."""
    import importlib.util

    name = f"_cartpole_train_{algo}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / algo / "train.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def kokoyi_pg_modules():
    """(Pi, PGLoss) classes whose forward is the Kokoyi symbol from policy.kyi (the script's own)."""
    return _example_script("policy_gradient").load_modules("kokoyi")


def kokoyi_dqn_modules():
    """(Q, DQNLoss) classes whose forward is the Kokoyi symbol from dqn.kyi (the script's own)."""
    return _example_script("dqn").load_modules("kokoyi")


# ----------------------------------------------------------------------------
# CLI: cross-check and micro-benchmark
# ----------------------------------------------------------------------------
def _close(name, x, y, atol=1e-5):
    ok = torch.allclose(x, y, atol=atol, rtol=1e-4)
    err = (x - y).abs().max().item() if x.shape == y.shape else float("nan")
    print(f"  {name:<38} {'ok' if ok else 'MISMATCH'}  max|diff|={err:.2e}  shape={tuple(x.shape)}")
    return ok


def _pg_inputs(T=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    logP = torch.log(torch.rand(T, generator=g) * 0.9 + 0.05).requires_grad_()
    r = torch.ones(T)
    r2 = torch.randn(T, generator=g)
    return logP, r, r2


def check_twin_self() -> bool:
    """Twin PGLoss against the literal transcription (no Kokoyi needed)."""
    ok = True
    logP, r, r2 = _pg_inputs()
    for name, rr in (("PGLoss(twin) vs literal, r=1", r), ("PGLoss(twin) vs literal, r~N(0,1)", r2)):
        ok &= _close(name, PGLoss(0.99)(logP, rr), pg_loss_literal(logP, rr, 0.99))
    return ok


def check_against_kokoyi() -> bool:
    torch.manual_seed(0)
    ok = True
    KPi, KPGLoss = kokoyi_pg_modules()
    KQ, KDQNLoss = kokoyi_dqn_modules()

    # --- pi ---
    twin, kk = Pi(4, 2), KPi(4, 2)
    kk.load_state_dict(twin.state_dict())
    s = torch.randn(4)
    S = torch.randn(32, 4)
    ok &= _close("pi(s) unbatched", kk(s), twin(s))
    ok &= _close("pi(S) batch_level=[1]", kk(S, batch_level=[1]), twin(S))

    # --- PGLoss (value and gradient wrt logP) ---
    logP, r, r2 = _pg_inputs()
    for name, rr in (("PGLoss r=1", r), ("PGLoss r~N(0,1)", r2)):
        lk = KPGLoss(0.99)(logP, rr)
        lt = PGLoss(0.99)(logP, rr)
        ok &= _close(name, lk, lt)
        gk, = torch.autograd.grad(lk.sum(), logP)
        gt, = torch.autograd.grad(lt.sum(), logP)
        ok &= _close(name + " d/dlogP", gk, gt)

    # --- Q and DQNLoss ---
    q_t, q_k = Q(4, 2), KQ(4, 2)
    q_k.load_state_dict(q_t.state_dict())
    qh_t, qh_k = Q(4, 2), KQ(4, 2)
    qh_k.load_state_dict(qh_t.state_dict())
    ok &= _close("Q(s) unbatched", q_k(s), q_t(s))
    ok &= _close("Q(S) batch_level=[1]", q_k(S, batch_level=[1]), q_t(S))
    B = 64
    g = torch.Generator().manual_seed(1)
    Sb = torch.randn(B, 4, generator=g)
    Ab = torch.randint(0, 2, (B,), generator=g)
    Rb = torch.ones(B) * 3.0 * torch.rand(B, generator=g)  # spread the TD errors over both Huber branches
    S2b = torch.randn(B, 4, generator=g)
    Db = (torch.rand(B, generator=g) < 0.3).float()
    lt = DQNLoss(q_t, qh_t, 0.99)(Sb, Ab, Rb, S2b, Db, batch_level=[1] * 5)
    lk = KDQNLoss(q_k, qh_k, 0.99)(Sb, Ab, Rb, S2b, Db, batch_level=[1] * 5)
    ok &= _close("DQNLoss batch_level=[1]*5", lk, lt)
    l0k = KDQNLoss(q_k, qh_k, 0.99)(Sb[0], Ab[0], Rb[0], S2b[0], Db[0])
    ok &= _close("DQNLoss unbatched (sample 0)", l0k.reshape(()), lt[0])
    lt.mean().backward()
    lk.mean().backward()
    for (n, pt), pk in zip(q_t.named_parameters(), q_k.parameters()):
        ok &= _close(f"d loss / d Q.{n}", pk.grad, pt.grad)
    no_target_grad = all(p.grad is None or p.grad.abs().max() == 0 for p in qh_k.parameters())
    print(f"  {'no gradient reaches Q_hat (StopGrad)':<38} {'ok' if no_target_grad else 'MISMATCH'}")
    ok &= no_target_grad
    return ok


def _time(fn, n):
    for _ in range(max(3, n // 20)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def bench(n: int) -> None:
    torch.manual_seed(0)
    backends = {"torch": (Pi, PGLoss, Q, DQNLoss)}
    if kokoyi_available():
        backends["kokoyi"] = (*kokoyi_pg_modules(), *kokoyi_dqn_modules())
    else:
        print("(kokoyi not importable with compile/load/symbol/nn: timing the twin only)")
    s = torch.randn(4)
    logP = torch.log(torch.rand(200)).requires_grad_()
    r = torch.ones(200)
    B = 64
    Sb, S2b = torch.randn(B, 4), torch.randn(B, 4)
    Ab, Rb, Db = torch.randint(0, 2, (B,)), torch.ones(B), torch.zeros(B)
    rows = []
    for name, (P, L, QQ, DL) in backends.items():
        pi, q, qh = P(4, 2), QQ(4, 2), QQ(4, 2)
        pl, dl = L(0.99), DL(q, qh, 0.99)
        with torch.no_grad():
            t_pi = _time(lambda pi=pi: pi(s), n)
            t_q = _time(lambda q=q: q(s), n)
        t_pg = _time(lambda pl=pl: pl(logP, r).sum().backward(), max(1, n // 10))
        t_dqn = _time(lambda dl=dl: dl(Sb, Ab, Rb, S2b, Db, batch_level=[1] * 5).mean().backward(),
                      max(1, n // 10))
        rows.append((name, t_pi, t_q, t_pg, t_dqn))
    print(f"{'backend':<8} {'pi(s) us':>10} {'Q(s) us':>10} {'PGLoss T=200 fwd+bwd us':>25} {'DQNLoss B=64 fwd+bwd us':>25}")
    for row in rows:
        print(f"{row[0]:<8} {row[1]:>10.1f} {row[2]:>10.1f} {row[3]:>25.1f} {row[4]:>25.1f}")


# ----------------------------------------------------------------------------
# Throughput: the scripts' training loops, both backends in one process
# ----------------------------------------------------------------------------
ALGOS = {"pg": "policy_gradient", "dqn": "dqn"}


@contextlib.contextmanager
def _step_budget(script, steps: int, loop_cpu: list):
    """Make ``script.main`` stop its training loop after ``steps`` environment steps.

    The scripts stop once ``tracker.solved_at`` is set (without ``--keep-going``), so
    the loop is left untouched and only the scripts' ``Tracker`` is swapped for one
    that sets ``solved_at`` at the end of the first episode that reaches the step
    budget, and never for a real solve.  The progress bar (created just before the
    loop, closed just after it) also records the loop's CPU time in ``loop_cpu``.
    The plot is skipped (it is drawn after the timed loop anyway).  Everything else
    is the script's own ``main``.
    """
    common = script.common

    class BudgetTracker(common.Tracker):
        def add(self, duration, loss):
            super().add(duration, loss)
            self.solved_at = len(self.durations) if sum(self.durations) >= steps else None

    progress = common.progress

    class CpuTimedBar:
        def __init__(self, *args):
            self.bar, self.cpu0 = progress(*args), time.process_time()

        def __getattr__(self, name):
            return getattr(self.bar, name)

        def close(self):
            loop_cpu.append(time.process_time() - self.cpu0)
            self.bar.close()

    saved = common.Tracker, common.save_plot, common.progress
    common.Tracker, common.save_plot, common.progress = BudgetTracker, (lambda *a, **k: None), CpuTimedBar
    try:
        yield
    finally:
        common.Tracker, common.save_plot, common.progress = saved


def train_steps(algo: str, backend: str, steps: int, seed: int = 0, extra=()) -> dict:
    """Run ``examples/<algo>/train.py``'s ``main`` for ~``steps`` env steps; its timing.

    ``steps_per_s`` is the script's own figure (env steps / wall time of the training
    loop); ``steps_per_cpu_s`` divides by the loop's CPU time instead, which a loaded
    machine distorts less; ``cpu_share`` is their ratio (the share of a core the loop got).
    """
    script = _example_script(ALGOS[algo])
    loop_cpu = []
    with tempfile.TemporaryDirectory() as out, _step_budget(script, steps, loop_cpu), \
            contextlib.redirect_stdout(io.StringIO()):
        argv = ["--backend", backend, "--seed", str(seed), "--episodes", "1000000", "--out", out,
                "--quiet", "--test-episodes", "0", *extra]
        summary = script.main(argv)
    assert summary["losses_finite"], f"{algo}/{backend}: non-finite loss"
    (cpu,) = loop_cpu
    return {"env_steps": summary["env_steps"], "episodes": summary["episodes"],
            "loop_s": summary["wall_time_s"], "loop_cpu_s": cpu, "steps_per_s": summary["env_steps_per_s"],
            "steps_per_cpu_s": summary["env_steps"] / cpu, "cpu_share": cpu / summary["wall_time_s"]}


def throughput(algos, steps: int, rounds: int, seed: int, warmup: int, extra=()) -> dict:
    """Both backends, alternating (order flipped every round), ``rounds`` times per algorithm."""
    if not kokoyi_available():
        raise SystemExit("kokoyi not importable with compile/load/symbol/nn: nothing to compare")
    results = {}
    for algo in algos:
        for backend in ("kokoyi", "torch"):  # compile / first-call costs out of the timed rounds
            train_steps(algo, backend, warmup, seed, extra)
        runs = {"kokoyi": [], "torch": []}
        for r in range(rounds):
            for backend in (("kokoyi", "torch") if r % 2 == 0 else ("torch", "kokoyi")):
                run = train_steps(algo, backend, steps, seed, extra)
                runs[backend].append(run)
                print(f"  {algo:<4} round {r + 1}/{rounds} {backend:<7} {run['env_steps']:>7} steps "
                      f"{run['loop_s']:>7.2f} s {run['steps_per_s']:>8.0f} steps/s "
                      f"{run['steps_per_cpu_s']:>8.0f} steps/cpu-s (cpu {100 * run['cpu_share']:.0f}%)",
                      file=sys.stderr)
        res = {"runs": runs}
        for key in ("steps_per_s", "steps_per_cpu_s"):
            ratios = [k[key] / t[key] for k, t in zip(runs["kokoyi"], runs["torch"])]
            res[key] = {"ratios": ratios, "median_ratio": statistics.median(ratios),
                        **{b: statistics.median(x[key] for x in v) for b, v in runs.items()}}
        results[algo] = res
    return results


def throughput_table(results: dict) -> str:
    lines = [("| algorithm | env steps per run | steps/s: twin | steps/s: Kokoyi | Kokoyi / twin "
              "| per-round ratios | steps/CPU-s: twin | steps/CPU-s: Kokoyi | Kokoyi / twin (CPU) |"),
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for algo, r in results.items():
        steps = "/".join(str(round(statistics.median(x["env_steps"] for x in r["runs"][b]))) for b in ("kokoyi", "torch"))
        if steps.split("/")[0] == steps.split("/")[1]:
            steps = steps.split("/")[0]
        w, c = r["steps_per_s"], r["steps_per_cpu_s"]
        lines.append(f"| {algo.upper()} | {steps} | {w['torch']:.0f} | {w['kokoyi']:.0f} | **{w['median_ratio']:.2f}** "
                     f"| {', '.join(f'{x:.2f}' for x in w['ratios'])} "
                     f"| {c['torch']:.0f} | {c['kokoyi']:.0f} | {c['median_ratio']:.2f} |")
    return "\n".join(lines)

def main(argv=None) -> int:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["check", "bench", "throughput"])
    p.add_argument("-n", type=int, default=2000, help="calls per timing (bench)")
    p.add_argument("--steps", type=int, default=5000,
                   help="env steps per training run (throughput; a run ends with the episode that reaches it)")
    p.add_argument("--rounds", type=int, default=3, help="runs per backend and algorithm (throughput)")
    p.add_argument("--algos", default="pg,dqn", help="comma-separated subset of pg,dqn (throughput)")
    p.add_argument("--seed", type=int, default=0, help="seed of every training run (throughput)")
    p.add_argument("--warmup", type=int, default=300, help="untimed env steps per backend first (throughput)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the throughput results as JSON ('-': stdout)")
    p.epilog = ("throughput: options after -- are passed to the training scripts, e.g. "
                "throughput --algos dqn -- --batch-size 128")
    args, extra = p.parse_known_args(argv)
    if extra and (args.cmd != "throughput" or extra[0] != "--"):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    extra = extra[1:]  # throughput: options after -- go to the training scripts (pick one with --algos)
    if args.cmd == "throughput":
        algos = [a for a in args.algos.split(",") if a]
        if not set(algos) <= set(ALGOS):
            p.error(f"--algos: choose from {','.join(ALGOS)}")
        results = throughput(algos, args.steps, args.rounds, args.seed, args.warmup, extra)
        print(f"{args.rounds} rounds x {args.steps} env steps per backend and algorithm, seed {args.seed}, "
              f"one torch thread, one process")
        print(throughput_table(results))
        if args.json:
            payload = {"steps": args.steps, "rounds": args.rounds, "seed": args.seed, "extra": extra,
                       "torch": torch.__version__, "results": results}
            text = json.dumps(payload, indent=1)
            if args.json == "-":
                print(text)
            else:
                Path(args.json).write_text(text + "\n")
        return 0
    if args.cmd == "check":
        ok = check_twin_self()
        if kokoyi_available():
            ok &= check_against_kokoyi()
        else:
            print("kokoyi not importable with compile/load/symbol/nn: only the twin self-check ran")
        print("ALL OK" if ok else "FAILURES")
        return 0 if ok else 1
    bench(args.n)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
