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


def test_zoo_benchmark_checks_every_twin(tmp_path):
    """benchmarks/zoo.py --quick: every example model's twin gives its loss and gradients."""
    out = tmp_path / "zoo.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "zoo.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo_twins import CASES

    assert {r["case"] for r in rows} == set(CASES)
    assert {(r["case"], r["batch"]) for r in rows} >= {("gru", 1), ("gru", 256), ("transformer", 256), ("cnn+ce", 64)}
    assert all(r["max_abs_diff"] < 1e-4 for r in rows)


def test_zoo_check_rejects_a_wrong_twin():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import zoo
    from zoo_twins import CASES

    case = CASES["gru"][0](2)
    zoo.check(case)
    twin = case.twin
    case.twin = lambda: twin() * 1.001  # a loss off by 0.1%
    with pytest.raises(AssertionError):
        zoo.check(case)
    case = CASES["cnn+ce"][0](3)
    twin, w = case.twin, case.params[0]
    # The same value on both sides, but a gradient that differs in the first conv's weights.
    case.twin = lambda: twin() + 1e-2 * ((w * w).sum() - (w * w).sum().detach())
    with pytest.raises(AssertionError, match="gradient 0"):
        zoo.check(case)


def test_compile_time_benchmark_runs(tmp_path):
    out = tmp_path / "compile.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compile_time.py"), "--modules", "50",
                           "--repeats", "1", "--json", str(out)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert len(rows) == 6 and all(math.isfinite(r.get("s", r.get("ratio"))) for r in rows)
