#!/usr/bin/env python
"""A long fuzzing campaign against the Kokoyi compiler.

Feeds kokoyi.compiler.pipeline.compile_unit and kokoyi.compile hostile input from the
strategies in tests/fuzzing.py (token soups of the language's own vocabulary, truncated and
mutated conformance sources, grammar-shaped programs, deep nesting and long chains, hostile
comments and file names, random unicode and bytes) and checks the oracle there on each: the input compiles, or it
raises a kokoyi.KokoyiError located inside the input; nothing else is raised; no input takes
more than a second; generated code is a well-formed UTF-8 Python module.

    .venv/bin/python scripts/fuzz_campaign.py --examples 100000          # stop after N inputs
    .venv/bin/python scripts/fuzz_campaign.py --minutes 20               # or after a time budget
    .venv/bin/python scripts/fuzz_campaign.py --minutes 5 --strategy soup --strategy text
    .venv/bin/python scripts/fuzz_campaign.py --minutes 20 --out runs/fuzz   # save failures as JSON

With --differential it runs the differential fuzzer instead (tests/differential.py): random
well-formed programs from tests/program_gen.py, each compiled and compared with the reference
interpreter (tests/reference.py) on every path (one sample, batch levels 1 and 2, mixed
levels) for values, dtypes, errors and gradients. A progress line every --progress seconds
gives the programs and paths compared and the findings so far; each new kind of finding is
shrunk to a smaller program and printed with its inputs, and --out saves them all as JSON:

    .venv/bin/python scripts/fuzz_campaign.py --differential --minutes 20 --out runs/diff
    .venv/bin/python scripts/fuzz_campaign.py --differential --examples 500 --seed 1000

It runs in one process (one core). Every distinct failure (keyed by its first line) is
printed once with the input that showed it; a progress line per round gives the inputs tried
so far, per strategy and in total, and the failures found. The exit status is 1 when any
failure was found, else 0. The default-run tests (tests/test_fuzz.py) use the same
strategies with a bounded number of examples.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def strategies():
    import fuzzing
    from hypothesis import strategies as st

    plain = st.just("fuzz.kyi")
    return {
        # name: (strategy of (text, filename), via, weight)
        "soup": (st.tuples(fuzzing.token_soup(), plain), "compile_unit", 3),
        "mutated": (st.tuples(fuzzing.mutated_source(), plain), "compile_unit", 3),
        "truncated": (st.tuples(fuzzing.truncated_source(), plain), "compile_unit", 1),
        "program": (st.tuples(fuzzing.program(), plain), "compile_unit", 2),
        "comments": (st.tuples(fuzzing.commented_source(), fuzzing.filenames()), "compile_unit", 2),
        "deep": (st.tuples(fuzzing.deep_nesting(), plain), "compile_unit", 1),
        "text": (st.tuples(fuzzing.random_text(), plain), "compile_unit", 2),
        "bytes": (st.tuples(fuzzing.random_bytes_text(), plain), "compile_unit", 1),
        "compile": (st.tuples(st.one_of(fuzzing.token_soup(), fuzzing.mutated_source(), fuzzing.random_text(),
                                        fuzzing.commented_source()), fuzzing.filenames()), "compile", 2),
        "compile-program": (st.tuples(fuzzing.program(), plain), "compile", 1),
        "compile-deep": (st.tuples(fuzzing.deep_nesting(small_math=True), plain), "compile", 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=None, help="stop after this many inputs in all")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this many minutes")
    parser.add_argument("--strategy", action="append", default=None,
                        help="only these strategies (repeatable; default: all)")
    parser.add_argument("--chunk", type=int, default=200, help="inputs per strategy per round (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="first Hypothesis seed (rounds count up from it)")
    parser.add_argument("--time-limit", type=float, default=1.0, help="seconds an input may take (default 1)")
    parser.add_argument("--out", default=None, help="folder to write failures.json and summary.json into")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every input tried")
    parser.add_argument("--differential", action="store_true",
                        help="compare compiled modules with the reference interpreter on random programs")
    parser.add_argument("--depth", type=int, default=3, help="--differential: nesting depth of expressions")
    parser.add_argument("--round1-only", dest="round2", action="store_false",
                        help="--differential: leave out the second round's constructs (by default every other "
                             "program writes them: recurrence groups, matrix literals, linear algebra, log bases)")
    parser.add_argument("--progress", type=float, default=30.0, help="--differential: seconds between progress lines")
    parser.add_argument("--no-shrink", action="store_true", help="--differential: print findings as found")
    args = parser.parse_args(argv)
    if args.differential:
        return differential_campaign(args)
    if args.examples is None and args.minutes is None:
        args.examples = 10_000

    warnings.filterwarnings("ignore")
    import fuzzing
    from hypothesis import HealthCheck, Phase, given, seed, settings

    import kokoyi  # noqa: F401 - import (and torch) before timing anything
    from kokoyi.compiler.pipeline import compile_unit

    compile_unit(fuzzing.conformance_sources()[0], "warm.kyi")  # parser tables, imports
    table = strategies()
    chosen = args.strategy or list(table)
    unknown = [s for s in chosen if s not in table]
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {', '.join(table)}")

    tried = collections.Counter()
    failures: dict[str, dict] = {}
    start = time.monotonic()
    deadline = start + 60 * args.minutes if args.minutes is not None else None
    out = pathlib.Path(args.out) if args.out else None

    def done() -> bool:
        if args.examples is not None and sum(tried.values()) >= args.examples:
            return True
        return deadline is not None and time.monotonic() >= deadline

    def run_round(name: str, round_no: int) -> None:
        strategy, via, weight = table[name]
        budget = args.chunk * weight
        if args.examples is not None:
            budget = min(budget, args.examples - sum(tried.values()))
        if budget <= 0:
            return

        @seed(args.seed + round_no)
        @settings(max_examples=budget, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def one(case):
            if done():
                return
            text, filename = case
            tried[name] += 1
            if args.verbose:
                print(f"[{name}] {filename!r} {text!r}", flush=True)
            problem = fuzzing.check(text, via=via, filename=filename, time_limit=args.time_limit)
            if problem is None:
                return
            key = f"{via}: {problem.splitlines()[0][:120]}"
            if key not in failures:
                failures[key] = {"strategy": name, "via": via, "filename": filename, "input": text,
                                 "problem": problem, "count": 0}
                print(f"\nFAILURE [{name}, {via}] file name {filename!r}\n  input: {text!r}\n  {problem}\n",
                      flush=True)
            failures[key]["count"] += 1

        one()

    round_no = 0
    try:
        while not done():
            for name in chosen:
                if done():
                    break
                run_round(name, round_no)
            round_no += 1
            elapsed = time.monotonic() - start
            per = ", ".join(f"{k} {v}" for k, v in sorted(tried.items()))
            print(f"[{elapsed / 60:6.1f} min] round {round_no}: {sum(tried.values())} inputs tried ({per}); "
                  f"{len(failures)} distinct failures", flush=True)
    except KeyboardInterrupt:  # Ctrl-C: stop and report what was tried
        print("\ninterrupted", flush=True)

    elapsed = time.monotonic() - start
    summary = {
        "inputs_tried": sum(tried.values()),
        "per_strategy": dict(sorted(tried.items())),
        "minutes": round(elapsed / 60, 2),
        "inputs_per_second": round(sum(tried.values()) / max(elapsed, 1e-9), 1),
        "distinct_failures": len(failures),
        "failing_inputs": sum(f["count"] for f in failures.values()),
    }
    print("\nsummary: " + json.dumps(summary, indent=1))
    for key, f in failures.items():
        print(f"- {key} ({f['count']} inputs), e.g. {f['input']!r}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        (out / "failures.json").write_text(json.dumps(list(failures.values()), indent=1, ensure_ascii=True) + "\n",
                                           encoding="utf-8")
    return 1 if failures else 0


def differential_campaign(args) -> int:
    """The --differential mode: programs from tests/program_gen.py against tests/reference.py."""
    warnings.filterwarnings("ignore")
    import differential
    import program_gen
    import torch

    torch.set_num_threads(1)
    if args.examples is None and args.minutes is None:
        args.examples = 1000
    start = time.monotonic()
    deadline = start + 60 * args.minutes if args.minutes is not None else None
    total = differential.Stats()
    kinds: dict[tuple, dict] = {}
    last = start
    seed = args.seed
    harness_errors: list[int] = []
    invalid: list[int] = []  # seeds whose program the reference rejects (a generator slip)

    def progress(final=False) -> None:
        elapsed = time.monotonic() - start
        print(f"[{elapsed / 60:6.1f} min] {total.programs} programs ({total.compiled} compiled, {total.invalid} "
              f"invalid), {total.paths} paths compared ({total.error_paths} on an expected error, "
              f"{total.ill_conditioned} ill-conditioned), "
              f"{total.findings} findings of {len(kinds)} kinds, {total.programs / max(elapsed, 1e-9):.1f} "
              f"programs/s" + (" (done)" if final else ""), flush=True)

    try:
        while True:
            if args.examples is not None and total.programs >= args.examples:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            # every other program also writes the language's second round (issue 13)
            prog = program_gen.generate(seed, args.depth, round2=args.round2 and seed % 2 == 1)
            if args.verbose:
                print(f"seed {seed}:\n{prog.source}", flush=True)
            try:
                findings, stats = differential.check(prog, seed)
            except Exception as err:  # noqa: BLE001 - a fault of the checker itself: report it, go on
                print(f"\nCHECKER ERROR on seed {seed}: {type(err).__name__}: {err}\n{prog.source}", flush=True)
                harness_errors.append(seed)
                seed += 1
                continue
            total.add(stats)
            if stats.invalid:
                invalid.append(seed)
            for f in findings:
                key = differential.signature(f)
                if key in kinds:
                    kinds[key]["count"] += 1
                    continue
                small = f if args.no_shrink else differential.shrink(f, prog, seed)
                kinds[key] = {**small.as_json(), "count": 1, "original_source": f.source}
                print("\nFINDING " + differential.reproduction(small) + "\n", flush=True)
            seed += 1
            if time.monotonic() - last >= args.progress:
                last = time.monotonic()
                progress()
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
    progress(final=True)
    summary = {"programs": total.programs, "compiled": total.compiled, "invalid": total.invalid,
               "paths": total.paths, "error_paths": total.error_paths, "ill_conditioned": total.ill_conditioned,
               "findings": total.findings,
               "kinds": len(kinds), "seeds": [args.seed, seed - 1], "checker_errors": harness_errors,
               "invalid_seeds": invalid[:50],
               "minutes": round((time.monotonic() - start) / 60, 2)}
    print("summary: " + json.dumps(summary))
    for f in sorted(kinds.values(), key=lambda f: -f["count"]):
        print(f"- {f['count']:5d} x {f['kind']} on {f['path']}: {f['message'].splitlines()[0][:150]}")
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "differential_summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        (out / "differential_findings.json").write_text(json.dumps(list(kinds.values()), indent=1) + "\n",
                                                         encoding="utf-8")
    return 1 if kinds or harness_errors else 0


if __name__ == "__main__":
    sys.exit(main())
