"""Instructions per training step of each side of benchmarks/zoo.py's cases, counted by valgrind.

On a machine shared with other jobs, times move by more than a few per cent of Python per
step; the instructions a step executes do not. Run under callgrind with instrumentation off
at the start; the script switches it on (`callgrind_control`) around N steps of each side,
after warm-up steps, and dumps one profile per side; then summarise the dumps:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/zi.%p \\
        python benchmarks/zoo_instructions.py mlp+ce dqn vae
    python benchmarks/zoo_instructions.py --summary /tmp/zi.PID mlp+ce dqn vae

`--mult K` (before the cases) runs every case at K times the example's batch size (`--mult 4`
for the 4x column of benchmarks/zoo.py); the summary takes the same cases.
"""
from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

# (ZOO_STEPS / ZOO_WARM change them, for a case as long as the LSTM's: give the summary the same)
STEPS, WARM = int(os.environ.get("ZOO_STEPS", 10)), int(os.environ.get("ZOO_WARM", 30))


def _control(*args) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, stdout=subprocess.DEVNULL)


def run(cases: list[str], mult: int = 1) -> None:
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import zoo_twins

    torch.set_num_threads(1)
    for name in cases:
        make, batch, _ = zoo_twins.CASES[name]
        case = make(batch * mult)
        pk, pt = case.params, case.twin_params or case.params
        if case.backward and pk:
            sides = [lambda c=case, p=pk: torch.autograd.grad(c.kokoyi(), p),
                     lambda c=case, p=pt: torch.autograd.grad(c.twin(), p)]
        else:
            sides = [case.kokoyi, case.twin]
        for step in sides:  # Kokoyi, then the twin: one dump each
            for _ in range(WARM):
                step()
            _control("-i", "on")
            _control("-z")
            for _ in range(STEPS):
                step()
            _control("-d")
            _control("-i", "off")


def summary(prefix: str, cases: list[str]) -> None:
    files = sorted(glob.glob(prefix + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    counts = []
    for path in files:
        with open(path) as f:
            counts.append(int(re.search(r"^summary: (\d+)", f.read(5000), re.MULTILINE).group(1)) / STEPS)
    for k, name in enumerate(cases):
        if 2 * k + 1 < len(counts):
            kokoyi, twin = counts[2 * k], counts[2 * k + 1]
            print(f"{name:12} kokoyi {kokoyi / 1e6:8.3f} M  twin {twin / 1e6:8.3f} M  ratio {kokoyi / twin:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "--summary":
        summary(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "--mult":
        run(sys.argv[3:], int(sys.argv[2]))
    else:
        run(sys.argv[1:])
