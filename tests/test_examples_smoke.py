"""Smoke tests for the CartPole examples (examples/policy_gradient, examples/dqn).

Each script runs for a few episodes in a subprocess, with the hand-written torch
twin (always) and with the Kokoyi backend (once ``kokoyi.compile`` exists), and
must write a sane ``summary.json`` and a PNG plot.  Each notebook runs a few episodes
in a Jupyter kernel (nbclient + ipykernel) and must train, plot and play greedily.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

pytest.importorskip("gymnasium")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")


def _kokoyi_ready() -> bool:
    """True once the compiler has landed: ``kokoyi`` importable with compile/load/symbol/nn."""
    if str(REPO) not in sys.path:  # the scripts import kokoyi from the checkout too
        sys.path.append(str(REPO))
    try:
        kokoyi = importlib.import_module("kokoyi")
    except ImportError:
        return False
    return all(hasattr(kokoyi, name) for name in ("compile", "load", "symbol", "nn"))


needs_kokoyi = pytest.mark.skipif(not _kokoyi_ready(), reason="kokoyi.compile not available yet")

SCRIPTS = {
    "pg": (EXAMPLES / "policy_gradient" / "train.py", []),
    # small warm-up and batch so that a few short episodes already do gradient updates
    "dqn": (EXAMPLES / "dqn" / "train.py", ["--learning-starts", "16", "--batch-size", "16"]),
}


def _run(algo: str, backend: str, out: Path, episodes: int = 3) -> dict:
    script, extra = SCRIPTS[algo]
    cmd = [sys.executable, str(script), "--backend", backend, "--seed", "0", "--episodes", str(episodes),
           "--out", str(out), "--quiet", "--test-episodes", "1", *extra]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "greedy test durations" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    png = out / "durations.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["backend"] == backend and summary["seed"] == 0
    assert summary["episodes"] == episodes == len(summary["durations"]) == len(summary["losses"])
    assert all(1 <= d <= 200 for d in summary["durations"])
    assert summary["solved_at"] is None  # 3 episodes cannot reach a 100-episode mean
    assert summary["env_steps"] == sum(summary["durations"])
    assert summary["env_steps_per_s"] > 0 and summary["wall_time_s"] > 0
    losses = [x for x in summary["losses"] if x is not None]
    assert losses, "no gradient update happened"
    assert summary["losses_finite"] and all(math.isfinite(x) for x in losses)
    assert len(summary["greedy_test_durations"]) == 1
    assert set(summary["hyperparameters"]) >= {"lr", "gamma", "hidden"}
    return summary


@pytest.mark.parametrize("algo", sorted(SCRIPTS))
def test_script_torch_twin(algo, tmp_path):
    a = _run(algo, "torch", tmp_path / "a")
    b = _run(algo, "torch", tmp_path / "b")
    assert a["durations"] == b["durations"] and a["losses"] == b["losses"], "not deterministic for a fixed seed"


@needs_kokoyi
@pytest.mark.parametrize("algo", sorted(SCRIPTS))
def test_script_kokoyi(algo, tmp_path):
    k = _run(algo, "kokoyi", tmp_path / "kokoyi")
    t = _run(algo, "torch", tmp_path / "torch")
    # Same seed, same initial weights (kokoyi.nn.Linear is a torch.nn.Linear): the first
    # episode is played before any update, so it must be identical on both backends.
    assert k["durations"][0] == t["durations"][0]


def test_twin_matches_literal_math():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import cartpole_twins
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert cartpole_twins.check_twin_self()


@needs_kokoyi
def test_kokoyi_matches_twin():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cartpole_twins.py"), "check"],
                          cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr



@needs_kokoyi
def test_mean_dqn_loss_is_the_minibatch_mean_of_dqn_loss():
    import torch

    sys.path.insert(0, str(EXAMPLES / "dqn"))
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location("dqn_train_mean", EXAMPLES / "dqn" / "train.py")
        train = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(train)
    finally:
        sys.path.remove(str(EXAMPLES / "dqn"))
        sys.path.remove(str(EXAMPLES))
    Q, DQNLoss = train.load_modules("kokoyi")
    torch.manual_seed(0)
    q, q_hat = Q(4, 2, 16), Q(4, 2, 16)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(9, 4, generator=g) * 3, torch.randint(0, 2, (9,), generator=g), torch.rand(9, generator=g),
             torch.randn(9, 4, generator=g), (torch.rand(9, generator=g) < 0.3).float())
    want = DQNLoss(q, q_hat, 0.9)(*batch, batch_level=[1] * 5).mean()
    got = train.load_mean_loss()(q, q_hat, 0.9)(*batch)
    torch.testing.assert_close(got, want)
    assert type(got.grad_fn).__name__ == "HuberLossBackward0"  # the mean inside torch's loss
    params = list(q.parameters())
    for a, b in zip(torch.autograd.grad(got, params), torch.autograd.grad(want, params)):
        torch.testing.assert_close(a, b)


@needs_kokoyi
def test_throughput_command(tmp_path):
    """``cartpole_twins.py throughput`` drives both scripts' loops to a step budget, in one process."""
    out = tmp_path / "throughput.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "cartpole_twins.py"), "throughput", "--steps", "60",
           "--rounds", "2", "--warmup", "10", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| PG |" in proc.stdout and "| DQN |" in proc.stdout
    results = json.loads(out.read_text())["results"]
    for algo in ("pg", "dqn"):
        runs = results[algo]["runs"]
        assert len(runs["kokoyi"]) == len(runs["torch"]) == 2
        for run in runs["kokoyi"] + runs["torch"]:
            # the budget ends the run at the end of the episode that reaches it
            assert 60 <= run["env_steps"] < 60 + 200 and run["steps_per_s"] > 0 and run["loop_cpu_s"] > 0
        assert results[algo]["steps_per_s"]["median_ratio"] > 0

def test_notebooks_in_sync():
    pytest.importorskip("nbformat")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "make_notebooks.py"), "--check"],
                          cwd=REPO, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- the notebooks, executed by a Jupyter kernel ------------------------------------------------
# Each notebook runs a handful of episodes (its ``EPISODES`` and, for DQN, the replay warm-up
# patched in the copy that is executed; the files stay as generated), then one extra cell
# reports what the training left behind, for the checks below.
NOTEBOOKS = {
    "pg": (EXAMPLES / "policy_gradient" / "policy_gradient.ipynb", {"EPISODES": 4}),
    # small warm-up and batch so that a few short episodes already do gradient updates
    "dqn": (EXAMPLES / "dqn" / "dqn.ipynb", {"EPISODES": 4, "LEARNING_STARTS": 16, "BATCH_SIZE": 16}),
}

REPORT_CELL = """
import json, math, sys
print("SMOKE " + json.dumps({"episodes": len(durations), "loss": float(loss), "executable": sys.executable}))
"""


def _cell(nb, needle: str):
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    return cell


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@needs_kokoyi
@pytest.mark.parametrize("algo", sorted(NOTEBOOKS))
def test_notebook_runs(algo, tmp_path, monkeypatch):
    import re

    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path, overrides = NOTEBOOKS[algo]
    nb = nbformat.read(path, as_version=4)

    settings = _cell(nb, "EPISODES = ")
    for name, value in overrides.items():
        settings.source, n = re.subn(rf"^{name} = \d+", f"{name} = {value}", settings.source, flags=re.MULTILINE)
        assert n == 1, f"no '{name} = <int>' line in the settings cell of {path.name}"
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_CELL.strip()))

    # A kernel spec of our own, so that the kernel is this interpreter (and sees this kokoyi).
    spec = tmp_path / "jupyter" / "kernels" / "kokoyi-smoke"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "kokoyi smoke test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the plot

    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="kokoyi-smoke",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "a cell did not run"

    (line,) = [x for x in _stdout(nb.cells[-1]).splitlines() if x.startswith("SMOKE ")]
    report = json.loads(line[len("SMOKE "):])
    assert Path(report["executable"]).resolve() == Path(sys.executable).resolve()
    assert report["episodes"] == overrides["EPISODES"]  # 4 episodes cannot solve: no early stop
    assert math.isfinite(report["loss"]), report  # the last update's loss

    plot = _cell(nb, "plt.show()")
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in plot.outputs), \
        plot.outputs
    greedy = re.search(r"greedy test durations: \[([\d, ]+)\]", _stdout(_cell(nb, "def greedy_test(")))
    assert greedy, _cell(nb, "def greedy_test(").outputs
    durations = [int(x) for x in greedy.group(1).split(",")]
    assert len(durations) == 5 and all(1 <= d <= 200 for d in durations)
