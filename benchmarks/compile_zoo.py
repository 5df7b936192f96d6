"""Eager against torch.compile for every example model (forward + backward per call).

For each model at the given batch size: the eager time per call, the compiled time per
call (inductor, fullgraph, after a warm-up call and the compile), the compile time, and the
speed-up. Rounds alternate the two sides so load on the machine hits both alike; the
figures are medians. One thread unless --threads says otherwise.

    python benchmarks/compile_zoo.py                      # every model, batch 1 and 64
    python benchmarks/compile_zoo.py --models pi gru --batch 256
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import zoo_models  # the models at small sizes, shared with the tests


def step(model, args, kwargs):
    out = model(*args, **kwargs)
    out = out[0] if isinstance(out, tuple) else out
    if out.requires_grad:  # a loss without parameters (cross-entropy on logits) is timed forward only
        out.sum().backward()


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def measure(name: str, batch: int, rounds: int, calls: int) -> dict:
    model, args, kwargs = zoo_models.build(name, batch=batch)
    step(model, args, kwargs)  # kokoyi generates the code for this signature
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    start = time.perf_counter()
    step(compiled, args, kwargs)
    compile_s = time.perf_counter() - start
    eager, fast = [], []
    for _ in range(rounds):
        eager.append(per_call(lambda: step(model, args, kwargs), calls))
        fast.append(per_call(lambda: step(compiled, args, kwargs), calls))
    e, c = statistics.median(eager), statistics.median(fast)
    return {"model": name, "batch": batch, "eager_ms": e * 1e3, "compiled_ms": c * 1e3, "speedup": e / c,
            "compile_s": compile_s}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(zoo_models.NAMES), choices=zoo_models.NAMES)
    p.add_argument("--batch", nargs="+", type=int, default=[1, 64])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'model':<14}{'batch':>6}{'eager ms':>10}{'compiled ms':>13}{'speed-up':>10}{'compile s':>11}")
    for name in args.models:
        for batch in args.batch:
            r = measure(name, batch, args.rounds, args.calls)
            rows.append(r)
            print(f"{r['model']:<14}{r['batch']:>6}{r['eager_ms']:>10.3f}{r['compiled_ms']:>13.3f}"
                  f"{r['speedup']:>10.2f}{r['compile_s']:>11.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
