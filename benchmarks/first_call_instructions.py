"""Instructions of a cold first call (kernel generated) of benchmarks/zoo.py's cases, counted by valgrind.

A first call with the kernel cache off (`KOKOYI_KERNEL_CACHE=0`, set here) runs the call-time
compiler passes (lower, inline, simplify, rewrite, batch and its clean-ups, emit, `compile`)
and then the kernel. Its CPU time moves by tens of per cent on a shared machine; the
instructions it executes do not. Each case is built once (its example loaded and compiled)
and its first call made once to warm torch and the imports; then, N times, the case's
`first_call()` loads the example afresh (new module symbols, empty specialisation caches:
as `benchmarks/zoo.py --first-calls` does) with instrumentation off, and the call alone is
counted (`callgrind_control` switches instrumentation on around it). Before each load a
`gc.collect()` (not counted) leaves the collector as a new process has it after loading the
example: what the load keeps is young (a collection in the call scans it, as in a new
process), and no full collection is due (without it the earlier loads would leave old
objects pending, and a full collection, ~24 M instructions with torch's objects, would fall
inside some calls). One dump per case covers its N calls; the summary divides by N:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/fci.%p \\
        python benchmarks/first_call_instructions.py transformer gru
    python benchmarks/first_call_instructions.py --summary /tmp/fci.PID transformer gru

`--calls N` (default 3) sets N. Without valgrind (`--no-valgrind`), the calls are only timed
(CPU time of the process, per call), which is handy for a quick look with cProfile.
"""
from __future__ import annotations

import gc
import glob
import os
import re
import subprocess
import sys
import time

os.environ["KOKOYI_KERNEL_CACHE"] = "0"


def _control(*args) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, stdout=subprocess.DEVNULL)


def run(cases: list[str], calls: int, valgrind: bool = True) -> None:
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import zoo_twins

    torch.set_num_threads(1)
    for name in cases:
        make, batch, _ = zoo_twins.CASES[name]
        case = make(batch)
        case.first_call()()  # warm-up: torch's first use of each op, the call-time imports
        if valgrind:
            _control("-z")
        spent = 0.0
        for _ in range(calls):
            gc.collect()  # no collection of old objects due, as in a new process
            call = case.first_call()  # a fresh load, not counted (what it keeps is young, as there)
            if valgrind:
                _control("-i", "on")
            start = time.process_time()
            call()
            spent += time.process_time() - start
            if valgrind:
                _control("-i", "off")
        if valgrind:
            _control("-d")
        else:
            print(f"{name:12} {spent / calls * 1e3:8.2f} CPU ms per first call")


def summary(prefix: str, cases: list[str], calls: int) -> None:
    files = sorted(glob.glob(prefix + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    counts = []
    for path in files:
        with open(path) as f:  # ("summary:" reads 0 where instrumentation was switched on and off)
            text = f.read()
        counts.append(max(int(n) for n in re.findall(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)) / calls)
    for name, count in zip(cases, counts):
        print(f"{name:12} {count / 1e6:8.2f} M instructions per first call")


if __name__ == "__main__":
    args = sys.argv[1:]
    calls = 3
    if "--calls" in args:
        k = args.index("--calls")
        calls = int(args[k + 1])
        del args[k:k + 2]
    if args[0] == "--summary":
        summary(args[1], args[2:], calls)
    elif args[0] == "--no-valgrind":
        run(args[1:], calls, valgrind=False)
    else:
        run(args, calls)
