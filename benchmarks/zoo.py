"""Every example model + loss against its hand-written PyTorch twin, in one process.

For each case (benchmarks/zoo_twins.py) at the example's batch size and at 4x it:

* checks that the twin gives the Kokoyi model's loss and parameter gradients (allclose)
  before timing anything;
* times one training step, forward + backward (`torch.autograd.grad` of the loss with
  respect to the parameters), alternating the two sides for several rounds (so load on the
  machine hits both alike) and taking the median time per step of each;
* measures the autograd memory of one forward: the bytes of the distinct storages the
  graph still holds for backward when the forward returns (seen with
  `torch.autograd.graph.saved_tensors_hooks`, whose pack hook hands autograd a small box
  that lives as long as the graph keeps it; parameters excluded, since both sides hold
  them anyway). It is what stays alive between the forward and the backward, so it is
  the part of peak memory the model's code decides, and it is exact and deterministic on
  CPU (no allocator noise);
* the first call of each Kokoyi model: a fresh import of the example (new module symbols,
  empty specialisation caches), then the time of its first forward; in this process
  (torch warm) and, with --fresh, in a new interpreter (torch's first-use costs and
  kokoyi's lazy imports included), with the twin's first forward in a new interpreter
  beside it.

Ratios are Kokoyi / twin (lower is better). One thread, one process.

    python benchmarks/zoo.py                     # everything, prints the table
    python benchmarks/zoo.py --fresh             # also first calls in new interpreters
    python benchmarks/zoo.py --first-calls       # only those (kokoyi.load's and the kernel cache filled
                                                 # by a first run; KOKOYI_KERNEL_CACHE=0: kernels generated)
    python benchmarks/zoo.py --cases gru cnn+ce  # some cases
    python benchmarks/zoo.py --quick             # correctness of the twins only, no timing (CI)
    python benchmarks/zoo.py --clock process     # CPU time of the process (a machine shared with other jobs;
                                                 # first calls too: --first-calls --clock process)
    python benchmarks/zoo.py --profile gru       # where the Kokoyi side's time goes (torch profiler)
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_twins import CASES, SINGLE_BATCH, Case  # noqa: E402


def _grads(loss: torch.Tensor, params: list) -> list:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def check(case: Case, atol: float = 1e-5, rtol: float = 1e-4) -> float:
    """Asserts the twin's loss and gradients equal the Kokoyi model's; returns the largest difference."""
    k, t = case.kokoyi(), case.twin()
    assert k.shape == t.shape and torch.allclose(k, t, atol=atol, rtol=rtol), (k, t)
    worst = (k - t).abs().max().item()
    if not case.backward or not case.params:
        return worst
    kg = _grads(k, case.params)
    tg = _grads(t, case.twin_params or case.params)
    if case.twin_grads_to_kokoyi is not None:
        tg = case.twin_grads_to_kokoyi(tg)
    assert len(kg) == len(tg)
    for i, (a, b) in enumerate(zip(kg, tg)):
        assert a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=rtol), \
            f"gradient {i} {tuple(a.shape)}: max |diff| {(a - b).abs().max().item():.3g}"
        worst = max(worst, (a - b).abs().max().item())
    return worst


def step_fn(case: Case, side: str):
    loss_fn = case.kokoyi if side == "kokoyi" else case.twin
    params = case.params if side == "kokoyi" else (case.twin_params or case.params)
    if not case.backward or not params:
        return lambda: loss_fn()
    return lambda: torch.autograd.grad(loss_fn(), params)


class _Saved:
    """What the pack hook hands autograd: alive exactly as long as the graph keeps the tensor."""

    __slots__ = ("__weakref__", "tensor")

    def __init__(self, tensor):
        self.tensor = tensor


def saved_bytes(case: Case, side: str) -> int:
    """Bytes of the distinct storages the graph of one forward still holds for backward once
    the forward is done (parameters excluded; a part of the graph already let go, such as
    a detached target network's, does not count)."""
    fn = case.kokoyi if side == "kokoyi" else case.twin
    held = {p.untyped_storage().data_ptr() for m in case.models for p in (*m.parameters(), *m.buffers())}
    held |= {p.untyped_storage().data_ptr() for p in (case.params + (case.twin_params or []))}
    saved: list[tuple[weakref.ref, int, int]] = []

    def pack(t):
        # Detached: a box holding an output with its grad_fn would make a cycle through the
        # graph that nothing frees (and every graph would look alive).
        box = _Saved(t.detach())
        st = t.untyped_storage()
        if st.data_ptr() not in held:
            saved.append((weakref.ref(box), st.data_ptr(), st.nbytes()))
        return box

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda box: box.tensor):
        loss = fn()
        gc.collect()  # a graph let go inside a reference cycle is freed too
        alive = {ptr: nbytes for ref, ptr, nbytes in saved if ref() is not None}
    del loss
    return sum(alive.values())


# What the step timings read: elapsed time, or with --clock process the CPU time of this
# process (one thread: on a machine shared with other jobs, what an idle one would take).
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
_clock = [time.perf_counter]


def _calls_per_block(fn, target_s: float) -> int:
    clock = _clock[0]
    start = clock()
    fn()
    one = max(clock() - start, 1e-6)
    return max(1, min(1000, int(target_s / one)))


def time_pair(case: Case, rounds: int, target_s: float) -> tuple[float, float]:
    """Median seconds per step of (Kokoyi, twin), alternating sides (and which goes first)."""
    fns = {side: step_fn(case, side) for side in ("kokoyi", "twin")}
    for fn in fns.values():  # warm-up: specialisation, caches, allocator
        for _ in range(3):
            fn()
    n = min(_calls_per_block(fns["kokoyi"], target_s), _calls_per_block(fns["twin"], target_s))
    times: dict[str, list[float]] = {"kokoyi": [], "twin": []}
    for r in range(rounds):
        for side in (("kokoyi", "twin") if r % 2 == 0 else ("twin", "kokoyi")):
            fn = fns[side]
            clock = _clock[0]
            start = clock()
            for _ in range(n):
                fn()
            times[side].append((clock() - start) / n)
    return statistics.median(times["kokoyi"]), statistics.median(times["twin"])


def first_call_ms(case: Case) -> float | None:
    if case.first_call is None:
        return None
    call = case.first_call()  # a fresh import: new module symbols with empty caches
    clock = _clock[0]
    start = clock()
    call()
    return (clock() - start) * 1e3


_pycache: list[str] = []  # the bytecode folder of this run's new interpreters, made on first use


def _pycache_folder() -> str:
    if not _pycache:
        _pycache.append(tempfile.mkdtemp(prefix="kokoyi-zoo-pycache-"))
        atexit.register(shutil.rmtree, _pycache[0], True)
    return _pycache[0]


def first_call_fresh_process(name: str, side: str = "kokoyi") -> float | None:
    """The first forward of a case in a new interpreter, torch's own first-use costs included:
    the Kokoyi model's (first_call_ms), or the twin's.

    As an installed package runs: with Python's bytecode cache, even where the environment
    turns it off (PYTHONDONTWRITEBYTECODE), kept in a folder of this run; the child runs
    once to fill it, and the second run is the one timed.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = _pycache_folder()
    clock = next(k for k, v in CLOCKS.items() if v is _clock[0])  # the child reads the same clock
    for _ in range(2):
        proc = subprocess.run([sys.executable, __file__, "--first-call-of", name, side, "--clock", clock],
                              capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _first_call_child(name: str, side: str) -> float | None:
    case = CASES[name][0](CASES[name][1])  # loads the example (compiles it), calls nothing
    if side == "kokoyi":
        return first_call_ms(case)
    clock = _clock[0]
    start = clock()
    with torch.no_grad():
        case.twin()
    return (clock() - start) * 1e3


def first_calls(names, repeats: int = 3) -> list[dict]:
    """Only the first calls (medians of `repeats` new interpreters), each case at its batch size."""
    rows = []
    print(f"{'case':<12}{'new proc ms':>12}{'twin new ms':>12}")
    for name in names:
        k = [first_call_fresh_process(name) for _ in range(repeats)]
        if k[0] is None:
            continue
        t = [first_call_fresh_process(name, "twin") for _ in range(repeats)]
        rows.append({"case": name, "batch": CASES[name][1], "first_call_fresh_ms": statistics.median(k),
                     "twin_first_call_fresh_ms": statistics.median(t)})
        print(f"{name:<12}{rows[-1]['first_call_fresh_ms']:>12.1f}{rows[-1]['twin_first_call_fresh_ms']:>12.1f}",
              flush=True)
    return rows


def batches(name: str) -> list[int]:
    _, base, extra = CASES[name]
    return [base] if name in SINGLE_BATCH else sorted({base, 4 * base, *extra})


def run(names, rounds: int, target_s: float, quick: bool, fresh: bool = False) -> list[dict]:
    rows = []
    for name in names:
        build = CASES[name][0]
        for i, batch in enumerate(batches(name)):
            case = build(batch)
            row = {"case": name, "batch": batch, "max_abs_diff": check(case)}
            if not quick:
                if i == 0:
                    row["first_call_ms"] = first_call_ms(case)
                    if fresh:
                        row["first_call_fresh_ms"] = first_call_fresh_process(name)
                        row["twin_first_call_fresh_ms"] = first_call_fresh_process(name, "twin")
                k, t = time_pair(case, rounds, target_s)
                row.update(kokoyi_ms=k * 1e3, twin_ms=t * 1e3, time_ratio=k / t)
                if case.backward and case.params:
                    km, tm = saved_bytes(case, "kokoyi"), saved_bytes(case, "twin")
                    row.update(kokoyi_saved_kb=km / 1024, twin_saved_kb=tm / 1024, memory_ratio=km / tm)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


HEADER = (f"{'case':<12}{'batch':>6}{'kokoyi ms':>11}{'twin ms':>9}{'time x':>8}"
          f"{'kokoyi KiB':>12}{'twin KiB':>10}{'mem x':>7}{'1st call ms':>13}{'new proc':>10}{'twin new':>10}{'max diff':>10}")


def format_row(r: dict) -> str:
    def f(key, width, fmt):
        v = r.get(key)
        return f"{'-':>{width}}" if v is None else f"{v:>{width}{fmt}}"

    return (f"{r['case']:<12}{r['batch']:>6}" + f("kokoyi_ms", 11, ".3f") + f("twin_ms", 9, ".3f")
            + f("time_ratio", 8, ".2f") + f("kokoyi_saved_kb", 12, ".0f") + f("twin_saved_kb", 10, ".0f")
            + f("memory_ratio", 7, ".2f") + f("first_call_ms", 13, ".0f") + f("first_call_fresh_ms", 10, ".0f")
            + f("twin_first_call_fresh_ms", 10, ".0f")
            + f("max_abs_diff", 10, ".1e"))


def profile(name: str, batch: int | None, steps: int = 20) -> None:
    """The Kokoyi side's self CPU time per op over `steps` training steps (torch profiler)."""
    case = CASES[name][0](batch or CASES[name][1])
    fn = step_fn(case, "kokoyi")
    for _ in range(3):
        fn()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--block", type=float, default=0.02, help="seconds per timed block of calls (about)")
    p.add_argument("--quick", action="store_true", help="check the twins only, time nothing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=list(CLOCKS), default="wall",
                   help="step and first-call timings: elapsed time, or the CPU time of the process (for a shared machine)")
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    p.add_argument("--profile", metavar="CASE", choices=list(CASES), help="profile the Kokoyi side of one case")
    p.add_argument("--batch", type=int, default=None, help="with --profile: the batch size")
    p.add_argument("--fresh", action="store_true", help="also time each first call in a new interpreter")
    p.add_argument("--first-calls", action="store_true", help="only the first calls in new interpreters")
    p.add_argument("--first-call-of", nargs=2, metavar=("CASE", "SIDE"), help=argparse.SUPPRESS)  # --fresh's child
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    _clock[0] = CLOCKS[args.clock]
    if args.first_call_of:
        print(json.dumps(_first_call_child(*args.first_call_of)))
        return []
    if args.profile:
        profile(args.profile, args.batch)
        return []
    if args.first_calls:
        rows = first_calls(args.cases)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return rows
    print(f"# torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{args.threads} thread(s), {args.rounds} rounds")
    print(HEADER)
    rows = run(args.cases, args.rounds, args.block, args.quick, args.fresh)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
