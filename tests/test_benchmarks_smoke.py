"""A short run of benchmarks/run.py: every case runs and reports a number (CI smoke)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_script_runs_every_case(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--rounds", "1",
                           "--no-import", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    cases = " | ".join(r["case"] for r in rows)
    for expected in ("PGLoss fwd+bwd, T=200", "T=20000", "pi, one state", "pi, 256 states", "64 x 200", "compile"):
        assert expected in cases
    long = next(r for r in rows if "T=20000" in r["case"])
    assert long["finite"] and long["max_abs_err"] < 1e-3
    for r in rows:
        for key in ("ratio", "speedup", "ms"):
            if key in r:
                assert math.isfinite(r[key]) and r[key] > 0
    assert "target" in proc.stdout


@pytest.mark.slow
def test_compile_benchmark_runs(tmp_path):
    out = tmp_path / "compile.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compile_zoo.py"), "--models", "pi", "--batch", "2",
                           "--rounds", "1", "--calls", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    assert row["model"] == "pi" and all(math.isfinite(row[k]) and row[k] > 0 for k in ("eager_ms", "compiled_ms"))
