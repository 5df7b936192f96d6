"""`kyic compile --standalone`: a plain-PyTorch file that runs with kokoyi and lark blocked
and gives the kokoyi modules' values and gradients on the same weights."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import kokoyi
from kokoyi.cli import main as kyic

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Run in the child: kokoyi and lark cannot be imported, the standalone file can.
CHILD = textwrap.dedent("""
    import importlib.util, sys
    sys.modules["kokoyi"] = None  # `import kokoyi` (and kokoyi.anything) raises ImportError
    sys.modules["lark"] = None
    import torch
    spec = importlib.util.spec_from_file_location("standalone_model", sys.argv[1])
    sa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sa)
    data = torch.load(sys.argv[2], weights_only=False)
    out = {"modules": sorted(k for k in sys.modules if k.startswith(("kokoyi", "lark")) and sys.modules[k])}
    exec(data["run"], {"sa": sa, "data": data, "out": out, "torch": torch})
    torch.save(out, sys.argv[3])
""")


def standalone(tmp_path, kyi: Path, *options: str) -> Path:
    out = tmp_path / (kyi.stem + "_standalone.py")
    assert kyic(["compile", str(kyi), "--standalone", *options, "-o", str(out)]) == 0
    text = out.read_text()
    assert not re.search(r"^\s*(import|from)\s+(kokoyi|lark)\b", text, re.MULTILINE)
    return out


def run_child(tmp_path, path: Path, data: dict) -> dict:
    torch.save(data, tmp_path / "in.pt")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt", weights_only=False)
    assert out.pop("modules") == []
    return out


def test_policy_and_pgloss(tmp_path):
    kyi = EXAMPLES / "policy_gradient" / "policy.kyi"
    path = standalone(tmp_path, kyi, r"--batch-level=\pi=1", r"--input-rank=\pi.s=1", r"--param=\pi.Linears=Linear*2",
                      "--batch-level=PGLoss=1,1", "--input-rank=PGLoss.logP=1", "--input-rank=PGLoss.r=1",
                      r"--param=PGLoss.\gamma=number")
    text = path.read_text()
    assert r"# " + str(kyi) + r":3: \Return \Softmax(Linears[1](\ReLU(Linears[0](s)))) \\" in text
    assert "pi.batched[(1,)]" in text and "PGLoss.batched[(1, 1)]" in text

    kokoyi.load(kyi)

    class Pi(torch.nn.Module):
        def __init__(self, linears):
            super().__init__()
            self.Linears = linears

        def get_parameters(self):
            return self.Linears

        forward = kokoyi.symbol[r"\pi"]

    class PGLoss(torch.nn.Module):
        def get_parameters(self):
            return 0.9

        forward = kokoyi.symbol["PGLoss"]

    torch.manual_seed(0)
    linears = torch.nn.ModuleList([torch.nn.Linear(4, 16), torch.nn.Linear(16, 2)])
    pi, loss = Pi(linears), PGLoss()
    s, states = torch.randn(4), torch.randn(5, 4)
    log_p, r = torch.randn(3, 6), torch.rand(3, 6)
    want = {"one": pi(s), "batch": pi(states, batch_level=[1]), "two_levels": pi(states.reshape(5, 1, 4), batch_level=2),
            "loss": loss(log_p[0], r[0]), "losses": loss(log_p, r, batch_level=[1, 1])}
    run = """
pi = sa.Pi(data["linears"])
loss = sa.PGLossModule(0.9)
assert (1,) in sa.pi.batched and (1, 1) in sa.PGLoss.batched
out["one"] = pi(data["s"])
out["batch"] = pi(data["states"], batch_level=[1])
out["two_levels"] = pi(data["states"].reshape(5, 1, 4), batch_level=2)
out["loss"] = loss(data["log_p"][0], data["r"][0])
out["losses"] = loss(data["log_p"], data["r"], batch_level=[1, 1])
"""
    got = run_child(tmp_path, path, {"run": run, "linears": linears, "s": s, "states": states, "log_p": log_p,
                                     "r": r})
    assert got.keys() == want.keys()
    for k, value in want.items():
        torch.testing.assert_close(got[k], value.detach(), msg=k)


def test_dqn(tmp_path):
    kyi = EXAMPLES / "dqn" / "dqn.kyi"
    path = standalone(tmp_path, kyi, "--batch-level=Q=1", "--input-rank=Q.s=1", "--param=Q.Linears=Linear*2",
                      "--batch-level=DQNLoss=1,1,1,1,1", "--input-rank=DQNLoss.s=1", "--input-rank=DQNLoss.a=0:int",
                      "--input-rank=DQNLoss.r=0", "--input-rank=DQNLoss.s'=1", "--input-rank=DQNLoss.done=0",
                      "--param=DQNLoss.Q=Q", r"--param=DQNLoss.\hat{Q}=Q", r"--param=DQNLoss.\gamma=number")
    assert "DQNLoss.batched[(1, 1, 1, 1, 1)]" in path.read_text()
    import zoo_models

    model, args, kwargs = zoo_models.build("dqnloss", batch=6)
    want = model(*args, **kwargs)
    want.sum().backward()
    run = """
q, q_hat = sa.QModule(data["q"]), sa.QModule(data["q_hat"])
loss = sa.DQNLossModule(q, q_hat, 0.99)
value = loss(*data["args"], batch_level=[1] * 5)
value.sum().backward()
out["loss"] = value.detach()
out["grads"] = [p.grad for p in q.parameters()]
out["one"] = loss(*(a[0] for a in data["args"])).detach()
"""
    got = run_child(tmp_path, path, {"run": run, "q": model.Q.Linears, "q_hat": model.Q_hat.Linears,
                                     "args": [a.detach() for a in args]})
    torch.testing.assert_close(got["loss"], want.detach())
    torch.testing.assert_close(got["one"], want[0].detach())
    for g, p in zip(got["grads"], model.Q.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_a_batched_loss_over_per_sample_only_modules(tmp_path):
    """DQNLoss batched, Q with its one-sample kernel only: the loss's batched kernel holds
    Q's body inlined."""
    path = standalone(tmp_path, EXAMPLES / "dqn" / "dqn.kyi", "--param=Q.Linears=Linear*2", "--input-rank=Q.s=1",
                      "--batch-level=DQNLoss=1,1,1,1,1", "--input-rank=DQNLoss.s=1", "--input-rank=DQNLoss.a=0:int",
                      "--input-rank=DQNLoss.r=0", "--input-rank=DQNLoss.s'=1", "--input-rank=DQNLoss.done=0",
                      "--param=DQNLoss.Q=Q", r"--param=DQNLoss.\hat{Q}=Q", r"--param=DQNLoss.\gamma=number")
    text = path.read_text()
    assert "DQNLoss.batched[" in text and "Q.batched[" not in text
    import zoo_models

    model, args, kwargs = zoo_models.build("dqnloss", batch=6)
    run = """
loss = sa.DQNLossModule(sa.QModule(data["q"]), sa.QModule(data["q_hat"]), 0.99)
out["loss"] = loss(*data["args"], batch_level=[1] * 5).detach()
"""
    got = run_child(tmp_path, path, {"run": run, "q": model.Q.Linears, "q_hat": model.Q_hat.Linears,
                                     "args": [a.detach() for a in args]})
    torch.testing.assert_close(got["loss"], model(*args, **kwargs).detach())


def test_cnn_classifier(tmp_path):
    pytest.importorskip("sklearn")
    kyi = EXAMPLES / "classifiers" / "classifiers.kyi"
    path = standalone(tmp_path, kyi, "--batch-level=CNN=1", "--param=CNN.Convs=Conv2d*2", "--param=CNN.V=tensor4",
                      "--param=CNN.b=tensor1", "--batch-level=CrossEntropyLoss=1,1")
    import zoo_models

    model, args, kwargs = zoo_models.build("cnn", batch=5)
    logits = model(*args, **kwargs)
    y = torch.tensor([0, 3, 9, 1, 1])
    run = """
cnn = sa.CNNModule(data["convs"], data["V"], data["b"])
logits = cnn(data["x"], batch_level=[1])
out["logits"] = logits.detach()
out["loss"] = sa.CrossEntropyLossModule()(logits, data["y"], batch_level=[1, 1]).detach()
out["two_levels"] = cnn(data["x"][:, None], batch_level=2).detach()
"""
    got = run_child(tmp_path, path, {"run": run, "convs": model.Convs, "V": model.V.detach(), "b": model.b.detach(),
                                     "x": args[0], "y": y})
    torch.testing.assert_close(got["logits"], logits.detach())
    torch.testing.assert_close(got["loss"], torch.nn.functional.cross_entropy(logits, y, reduction="none").detach())
    torch.testing.assert_close(got["two_levels"], logits.detach()[:, None])


def test_values_of_sizes_alone_are_kept_by_the_files_own_helpers(tmp_path):
    """A causal mask (kokoyi/compiler/batch/statics.py): the file calls its own copy of
    kx.static_values (no kokoyi import) and gives the masked product on two lengths."""
    kyi = tmp_path / "masked.kyi"
    kyi.write_text(r"""\Module{M}{X}
  T \gets |X| \\
  M \gets \{ \begin{cases} 0 & j \le i \\ -\infty & \text{otherwise} \end{cases} \}_{i=0, j=0}^{T-1, T-1} \\
  \Return \Softmax(X @ X^\top + M) @ X \\
\EndModule
""")
    path = standalone(tmp_path, kyi, "--batch-level=M=1", "--input-rank=M.X=2")
    assert "kx.static_values(" in path.read_text()
    xs = [torch.randn(2, 5, 3), torch.randn(2, 7, 3), torch.randn(2, 5, 3)]
    run = 'out["ys"] = [sa.MModule()(x, batch_level=[1]) for x in data["xs"]]'
    got = run_child(tmp_path, path, {"run": run, "xs": xs})
    for x, y in zip(xs, got["ys"]):
        T = x.shape[1]
        mask = torch.full((T, T), -torch.inf).triu(1)
        torch.testing.assert_close(y, torch.softmax(x @ x.transpose(-1, -2) + mask, -1) @ x)


def test_one_sample_file_loops_over_a_batch(tmp_path):
    """Without batch levels a file holds each module's one-sample kernel; a batched call runs
    it on each sample."""
    path = standalone(tmp_path, EXAMPLES / "policy_gradient" / "policy.kyi", r"--input-rank=\pi.s=1",
                      r"--param=\pi.Linears=Linear*2", "--input-rank=PGLoss.logP=1", "--input-rank=PGLoss.r=1",
                      r"--param=PGLoss.\gamma=number")
    assert ".batched[" not in path.read_text()
    torch.manual_seed(0)
    linears = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)])
    states = torch.randn(3, 4)
    run = 'out["batch"] = sa.Pi(data["linears"])(data["states"], batch_level=[1]).detach()'
    got = run_child(tmp_path, path, {"run": run, "linears": linears, "states": states})
    torch.testing.assert_close(got["batch"], torch.softmax(linears[1](torch.relu(linears[0](states))), -1).detach())


@pytest.mark.parametrize("options, message", [
    (["--batch-level=Nope=1"], "no module `Nope`"),
    ([r"--batch-level=\pi=1", r"--param=\pi.Linears=Linear*2"], "needs the per-sample rank of input `s`"),
    ([r"--batch-level=\pi=1", r"--input-rank=\pi.s=1"], "needs the kind of parameter Linears"),
    ([r"--batch-level=\pi=1,1"], "give 0 or 1 for each of its 1 inputs"),
    ([r"--batch-level=\pi=1", r"--input-rank=\pi.s=1", r"--param=\pi.Linears=Lnear"], "unknown parameter kind"),
    ([r"--batch-level=\pi=1"], None),
])
def test_bad_options_are_reported(tmp_path, capsys, options, message):
    kyi = EXAMPLES / "policy_gradient" / "policy.kyi"
    status = kyic(["compile", str(kyi), "--standalone", *options, "-o", str(tmp_path / "out.py")])
    err = capsys.readouterr().err
    assert status == 1
    assert message is None or message in err, err


def test_standalone_options_need_standalone(capsys):
    assert kyic(["compile", str(EXAMPLES / "dqn" / "dqn.kyi"), "--batch-level=Q=1"]) == 1
    assert "go with --standalone" in capsys.readouterr().err
