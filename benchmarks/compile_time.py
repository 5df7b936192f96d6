"""Compile time: many small modules, and how the time grows with the source.

Compiling is kokoyi's front end and passes up to the generated Python
(`kokoyi.compiler.pipeline.compile_unit`: parse, build, resolve, recurrences, ranks, lower,
simplify, inline, rewrite, unit), in a warm process (the parser is built before timing). Targets
(issue 14): 1,000 small modules in under 1 s, and 10x the source in at most 12x the time.

* `one unit`: the 1,000 modules in one source text (a .kyi file of 1,000 modules);
* `separate units`: 1,000 texts of one module each, compiled one after another;
* `kokoyi.compile`: the same 1,000 separate units through the public API (compile and
  register each, so every unit sees the names of the earlier ones);
* `scaling`: one unit of N and of 10 N modules, the ratio of their times.

Times are the process's CPU time by default (`--clock wall` for elapsed time), medians of
`--repeats` runs.

    python benchmarks/compile_time.py               # the table
    python benchmarks/compile_time.py --profile     # cProfile of compiling one unit of 1,000 modules
    python benchmarks/compile_time.py --profile-api # cProfile of the 1,000 units through kokoyi.compile

Instructions of N units through kokoyi.compile (the last row's loop; callgrind's
instrumentation switched on around it only), deterministic on a shared machine:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/ct.%p \\
        python benchmarks/compile_time.py --instructions 200
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kokoyi.compiler.pipeline import compile_unit  # noqa: E402


def small_module(i: int) -> str:
    """One small module: an affine layer, a nonlinearity, a sum and a comment, like the examples'."""
    return (f"% Module number {i}.\n"
            f"\\Module{{Layer{i}}}{{x \\in \\mathbb{{R}}^{{D}}; L, b}}\n"
            f"  h \\gets \\ReLU(L[0](x)) + b \\Comment{{hidden}} \\\\\n"
            f"  \\Return \\sum_{{k=0}}^{{|h|-1}} h[k] * h[k] \\Comment{{squared norm}} \\\\\n"
            f"\\EndModule\n")


def unit_of(n: int, start: int = 0) -> str:
    return "%kokoyi\n" + "\n".join(small_module(i) for i in range(start, start + n))


CLOCKS = {"process": time.process_time, "wall": time.perf_counter}
clock = time.process_time


def best_of(fn, repeats: int) -> float:
    """The median of `repeats` timings of fn() (seconds)."""
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def measure(n: int, repeats: int) -> list[dict]:
    compile_unit(unit_of(3))  # builds the parser and imports every pass: not what is timed
    big, small = unit_of(n), unit_of(n // 10)
    singles = [unit_of(1, i) for i in range(n)]
    rows = []
    t_one = best_of(lambda: compile_unit(big, "many.kyi"), repeats)
    rows.append({"case": f"{n} modules, one unit", "s": t_one})

    def separate():
        for i, s in enumerate(singles):
            compile_unit(s, f"m{i}.kyi")  # the result is dropped, as a loader drops it after installing

    t_sep = best_of(separate, repeats)
    rows.append({"case": f"{n} modules, separate units", "s": t_sep})
    t_small = best_of(lambda: compile_unit(small, "few.kyi"), repeats)
    rows.append({"case": f"{n // 10} modules, one unit", "s": t_small})
    rows.append({"case": f"scaling: {n} / {n // 10} modules (10x the source)", "ratio": t_one / t_small})
    t_front = best_of(lambda: compile_unit(big, "many.kyi", stop_after="simplify"), repeats)
    rows.append({"case": f"{n} modules, one unit, up to simplify (no inline, rewrite, unit)", "s": t_front})
    import kokoyi

    kokoyi.compile(unit_of(1).replace("Layer", "Warm"), "warm.kyi")  # imports the runtime (and torch) first
    start = clock()
    for i, s in enumerate(singles):
        kokoyi.compile(s.replace("Layer", "Api"), f"api{i}.kyi")
    rows.append({"case": f"{n} modules, separate units, kokoyi.compile (registers each)", "s": clock() - start})
    return rows


def profile(n: int, top: int, api: bool = False) -> None:
    compile_unit(unit_of(3))
    prof = cProfile.Profile()
    if api:  # what the kokoyi.compile row times (with the collector's work between units)
        import kokoyi

        kokoyi.compile(unit_of(1).replace("Layer", "Warm"), "warm.kyi")
        singles = [unit_of(1, i).replace("Layer", "Api") for i in range(n)]
        prof.runcall(lambda: [kokoyi.compile(s, f"api{i}.kyi") for i, s in enumerate(singles)])
    else:
        prof.runcall(compile_unit, unit_of(n), "many.kyi")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def instructions(n: int) -> None:
    """Run n units through kokoyi.compile with callgrind counting (run under valgrind, as above)."""
    import os
    import subprocess

    import kokoyi

    def control(*args):
        subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, stdout=subprocess.DEVNULL)

    kokoyi.compile(unit_of(1).replace("Layer", "Warm"), "warm.kyi")
    singles = [unit_of(1, i).replace("Layer", "Api") for i in range(n)]
    control("-i", "on")
    control("-z")
    for i, s in enumerate(singles):
        kokoyi.compile(s, f"api{i}.kyi")
    control("-d")
    control("-i", "off")


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--profile-api", action="store_true")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--instructions", type=int, metavar="N",
                   help="N units through kokoyi.compile with callgrind counting (under valgrind: see above)")
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="process",
                   help="process: CPU time of this process (default; compiling is one thread, and on a shared "
                        "machine it is what an idle one would take); wall: elapsed time")
    args = p.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    if args.instructions:
        instructions(args.instructions)
        return []
    if args.profile or args.profile_api:
        profile(args.modules, args.top, api=args.profile_api)
        return []
    rows = measure(args.modules, args.repeats)
    for r in rows:
        figure = f"{r['s'] * 1e3:9.0f} ms" if "s" in r else f"{r['ratio']:9.2f} x"
        print(f"{r['case']:<66}{figure}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
