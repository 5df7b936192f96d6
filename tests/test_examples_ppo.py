"""The PPO example (examples/ppo): Kokoyi modules against their twins, the script, the notebook,
the benchmark commands. Everything here runs in seconds (tiny step counts)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PPO = REPO / "examples" / "ppo"
TWINS = REPO / "benchmarks" / "ppo_twins.py"

pytest.importorskip("gymnasium")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

# 2 updates of 4 envs x 32 steps: a few CartPole episodes end, and the loss is computed 32 times
TINY = ["--total-steps", "256", "--num-steps", "32"]


@pytest.fixture(scope="module")
def twins():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import ppo_twins
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return ppo_twins


def test_twin_gae_matches_the_masked_sum(twins):
    """The reversed loop equals sum_l (gamma lambda)^l (prod_{k<l} (1 - d_{t+k})) delta_{t+l}."""
    assert twins.check_twin_self(quiet=True)


def test_twin_gae_stops_at_episode_ends(twins):
    import torch

    r, v, d = torch.ones(1, 4), torch.zeros(1, 5), torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    adv, ret = twins.GAE(0.5, 1.0)(r, v, d)
    # the episode ends after step 1: steps 0-1 and 2-3 are discounted sums of their own rewards
    assert torch.allclose(adv, torch.tensor([[1.5, 1.0, 1.5, 1.0]]))
    assert torch.equal(ret, adv)


def test_kokoyi_modules_match_twins(twins):
    """pi, V, GAE, Normalise, PPOLoss: values and gradients, batched = stacked per sample."""
    assert twins.check_against_kokoyi(quiet=True)


def _run(tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / name
    cmd = [sys.executable, str(PPO / "train.py"), "--seed", "0", "--out", str(out), "--quiet",
           "--test-episodes", "1", *args]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "greedy test returns" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    png = out / "returns.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["losses_finite"] and all(math.isfinite(x) for row in summary["history"] for x in row)
    assert len(summary["greedy_test_returns"]) == 1
    assert summary["episodes"] == len(summary["episode_returns"]) == len(summary["episode_end_steps"])
    assert summary["episode_end_steps"] == sorted(summary["episode_end_steps"])
    assert all(0 < s <= summary["env_steps"] for s in summary["episode_end_steps"])
    return summary


def test_script_both_backends_agree(tmp_path):
    k = _run(tmp_path, "kokoyi", "--backend", "kokoyi", *TINY)
    t = _run(tmp_path, "torch", "--backend", "torch", *TINY)
    for s in (k, t):
        assert s["env_steps"] == 256 and s["updates"] == 2 and s["reached_at"] is None
        assert s["episodes"] > 0 and all(1 <= x <= 500 for x in s["episode_returns"])
        assert s["episode_returns"] == s["episode_lengths"]  # CartPole: +1 per step
    # same seed, same initial weights: the same rollouts, and losses equal up to rounding
    assert k["episode_returns"] == t["episode_returns"] and k["episode_end_steps"] == t["episode_end_steps"]
    for rk, rt in zip(k["history"], t["history"]):
        assert rk == pytest.approx(rt, rel=1e-4, abs=1e-6)


def test_script_async_envs_acrobot(tmp_path):
    sync = _run(tmp_path, "sync", "--backend", "torch", "--env", "Acrobot-v1", *TINY)
    asyn = _run(tmp_path, "async", "--backend", "torch", "--env", "Acrobot-v1", "--vector", "async", *TINY)
    assert sync["hyperparameters"]["vector"] == "sync" and asyn["hyperparameters"]["vector"] == "async"
    assert sync["history"] == asyn["history"]  # the same environments, stepped in other processes
    assert sync["target"] == -100.0


def test_stop_at_target(tmp_path):
    # a random CartPole policy lasts ~22 steps: a 100-episode mean of 15 comes after ~100 episodes
    s = _run(tmp_path, "stop", "--backend", "torch", "--target", "15", "--stop-at-target",
             "--total-steps", "20480", "--num-steps", "32")
    assert s["stopped_at_target"] and s["reached_at"] is not None
    assert s["episodes"] >= 100 and s["reached_at"] <= s["env_steps"] < s["reached_at"] + 4 * 32
    assert s["env_steps"] < 20480


# ---- the notebook, executed by a Jupyter kernel (as tests/test_examples_smoke.py) ----------------
REPORT_CELL = """
import json, sys
print("SMOKE " + json.dumps({"steps": log.step, "episodes": len(log.returns), "loss": float(loss),
                             "executable": sys.executable}))
"""


def test_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(PPO / "ppo.ipynb", as_version=4)
    (settings,) = [c for c in nb.cells if c.cell_type == "code" and "TOTAL_STEPS = " in c.source]
    for name, value in {"TOTAL_STEPS": 256, "NUM_STEPS": 32}.items():
        settings.source, n = re.subn(rf"^{name} = \d+", f"{name} = {value}", settings.source, flags=re.MULTILINE)
        assert n == 1, f"no '{name} = <int>' line in the settings cell"
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL.strip()))

    spec = tmp_path / "jupyter" / "kernels" / "kokoyi-smoke"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "kokoyi smoke test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="kokoyi-smoke",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert all(c.execution_count for c in code), "a cell did not run"

    def stdout(cell):
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")

    (line,) = [x for x in stdout(code[-1]).splitlines() if x.startswith("SMOKE ")]
    report = json.loads(line[len("SMOKE "):])
    assert Path(report["executable"]).resolve() == Path(sys.executable).resolve()
    assert report["steps"] == 256 and report["episodes"] > 0 and math.isfinite(report["loss"])
    (plot,) = [c for c in code if "plt.show()" in c.source]
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in plot.outputs)
    (greedy,) = [c for c in code if "def greedy_test(" in c.source]
    m = re.search(r"greedy test returns: \[([-\d., ]+)\]", stdout(greedy))
    assert m and len(m.group(1).split(",")) == 5


# ---- the benchmark commands, on tiny sizes (the figures are in examples/ppo/README.md) ----------
def test_benchmark_gae_command(tmp_path):
    out = tmp_path / "gae.json"
    proc = subprocess.run([sys.executable, str(TWINS), "gae", "-T", "16", "-N", "4", "-n", "2", "--rounds", "2",
                           "--json", str(out)], cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())["results"]
    assert res["T"] == 16 and res["N"] == 4
    assert all(math.isfinite(res[k]) and res[k] > 0 for k in ("kokoyi_ms", "loop_ms", "ratio"))


def test_benchmark_throughput_command(tmp_path):
    out = tmp_path / "throughput.json"
    cmd = [sys.executable, str(TWINS), "throughput", "--steps", "256", "--rounds", "2", "--pg-steps", "60",
           "--json", str(out), "--", "--num-steps", "32"]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| PPO, twin |" in proc.stdout and "| REINFORCE, one env, Kokoyi |" in proc.stdout
    res = json.loads(out.read_text())["results"]
    for backend in ("kokoyi", "torch"):
        assert [r["env_steps"] for r in res["runs"][backend]] == [256, 256]
    assert all(r["env_steps"] >= 60 for r in res["runs"]["pg"])
    w = res["steps_per_s"]
    assert len(w["ratios"]) == 2 and all(math.isfinite(x) and x > 0 for x in (*w["ratios"], w["kokoyi_over_pg"]))
