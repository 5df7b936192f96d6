"""The `%kokoyi` notebook magic: a real notebook run through a Jupyter kernel, and its parts."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

import kokoyi
from kokoyi.notebook import first_line_to_cell_magic, parse_options, run_cell

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

CONSTANTS_CELL = r"""%kokoyi
\alpha \gets 0.5 \\
sq(x) \gets x ** 2 \\
"""

NET_CELL = r"""%%kokoyi --show-python
\Module{Net}{x; W, b}
  h \gets W @ x + b \Comment{affine map} \\
  \Return \alpha * sq(h) + h \\
\EndModule
"""

ERROR_CELL = r"""%kokoyi
\Module{Broken}{x}
  \Return x + \psi \\
\EndModule
"""

QUIET_CELL = r"""%kokoyi --no-render --no-template
\Module{Quiet}{x; W}
  \Return W @ x \\
\EndModule
"""

TRAIN_CELL = r"""
import json, torch
namespace = {"torch": torch, "kokoyi": kokoyi}
exec(kokoyi.template("Net"), namespace)   # the printed template, filled in below

class Net(namespace["Net"]):
    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(0.1 * torch.randn(1, 3))
        self.b = torch.nn.Parameter(torch.zeros(1))

torch.manual_seed(0)
X = torch.randn(64, 3)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5]])
model = Net()
opt = torch.optim.Adam(model.parameters(), lr=0.05)
losses = []
for _ in range(8):
    loss = ((model(X, batch_level=[1]) - Y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
print("LOSSES", json.dumps(losses))
"""


def _outputs(cell, output_type, name=None):
    return [o for o in cell.outputs if o.output_type == output_type and (name is None or o.get("name") == name)]


def _text(cell, name):
    return "".join(o.text for o in _outputs(cell, "stream", name))


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory):
    """The example notebook, executed once by a real IPython kernel (nbclient + ipykernel)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no python3 Jupyter kernel spec")
    folder = tmp_path_factory.mktemp("notebook")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import kokoyi\n"
                                  "assert get_ipython().find_cell_magic('kokoyi') is not None\n"
                                  "%load_ext kokoyi\n"
                                  "from kokoyi.notebook import first_line_to_cell_magic as t\n"
                                  "assert get_ipython().input_transformers_cleanup.count(t) == 1"),
        nbformat.v4.new_code_cell(CONSTANTS_CELL),
        nbformat.v4.new_code_cell(NET_CELL),
        nbformat.v4.new_code_cell(ERROR_CELL),
        nbformat.v4.new_code_cell(QUIET_CELL),
        nbformat.v4.new_code_cell(TRAIN_CELL),
    ]
    env_patch = pytest.MonkeyPatch()
    env_patch.setenv("KOKOYI_CACHE_DIR", str(folder / "cache"))
    try:
        # allow_errors: the error cell fails (as it should) and the later cells still run
        client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                         resources={"metadata": {"path": str(folder)}})
        client.execute()
    finally:
        env_patch.undo()
    return nb


def test_import_kokoyi_registers_the_magic(executed_notebook):
    first = executed_notebook.cells[0]
    assert not _outputs(first, "error"), first.outputs


def test_first_line_cell_renders_and_registers(executed_notebook):
    cell = executed_notebook.cells[1]
    (shown,) = _outputs(cell, "display_data")
    latex = shown.data["text/latex"]
    assert latex.startswith("$$") and latex.endswith("$$")
    assert r"\alpha \leftarrow 0.5" in latex and r"\mathit{sq}(x) \leftarrow x^{2}" in latex
    assert "text/plain" in shown.data
    assert "class " not in _text(cell, "stdout")  # no module, no template
    assert not _outputs(cell, "error") and not _text(cell, "stderr")


def test_cell_magic_renders_shows_python_and_prints_the_template(executed_notebook):
    cell = executed_notebook.cells[2]
    (shown,) = _outputs(cell, "display_data")
    latex = shown.data["text/latex"]
    assert r"\textbf{Module}\ \mathit{Net}(x;\ W, b)" in latex
    assert r"&&\triangleright\ \text{affine map}" in latex
    assert r"\textbf{return}\ \alpha \circ \mathit{sq}(h) + h" in latex
    out = _text(cell, "stdout")
    assert "Net = KOKOYI_UNIT.module(" in out  # --show-python
    assert "class Net(torch.nn.Module):" in out
    assert "    def get_parameters(self):\n        return (self.W, self.b)" in out
    assert "    forward = kokoyi.symbol['Net']" in out
    assert not _outputs(cell, "error") and not _text(cell, "stderr")


def test_error_cell_fails_and_shows_the_located_message_not_a_traceback(executed_notebook):
    cell = executed_notebook.cells[3]
    (error,) = _outputs(cell, "error")  # the cell failed: "Run all" stops here
    assert error.ename == "KokoyiNameError"
    shown = "\n".join(error.traceback)
    assert re.search(r"<cell-\d+>:3:15: undefined name `\\psi`", shown), shown
    assert "   3 |   \\Return x + \\psi \\\\" in shown
    assert "     |               ^^^^" in shown
    assert "Traceback" not in shown and "File " not in shown and "kokoyi/" not in shown
    assert "class Broken" not in _text(cell, "stdout")


def test_run_all_stops_at_a_failing_cell(tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no python3 Jupyter kernel spec")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import kokoyi"), nbformat.v4.new_code_cell(ERROR_CELL),
                nbformat.v4.new_code_cell("print('ran on')")]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="undefined name"):
        client.execute()
    assert "ran on" not in _text(nb.cells[2], "stdout")


def test_options_on_the_first_line(executed_notebook):
    cell = executed_notebook.cells[4]
    assert not _outputs(cell, "display_data")
    assert "class Quiet" not in _text(cell, "stdout")
    assert not _outputs(cell, "error") and not _text(cell, "stderr")


def test_training_with_a_kokoyi_forward(executed_notebook):
    cell = executed_notebook.cells[5]
    assert not _outputs(cell, "error"), [o.get("traceback") for o in cell.outputs]
    line = next(line for line in _text(cell, "stdout").splitlines() if line.startswith("LOSSES "))
    losses = json.loads(line[len("LOSSES "):])
    assert len(losses) == 8
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]


# ---- the parts, without a kernel ------------------------------------------------------------


def test_import_kokoyi_does_not_import_ipython():
    done = subprocess.run([sys.executable, "-c", "import sys, kokoyi; print('IPython' in sys.modules)"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_first_line_transformer():
    assert first_line_to_cell_magic(["%kokoyi\n", "x \\gets 1 \\\\\n"]) == ["%%kokoyi\n", "x \\gets 1 \\\\\n"]
    assert first_line_to_cell_magic(["\n", "%kokoyi --no-render  \n", "a\n"]) == ["%%kokoyi --no-render\n", "a\n"]
    for untouched in (["%%kokoyi\n", "a\n"], ["%kokoyiX\n"], ["x = 1\n", "%kokoyi\n"], ["% kokoyi\n"], []):
        assert first_line_to_cell_magic(list(untouched)) == untouched


def test_options(capsys):
    options = parse_options("--no-render --no-template --show-python --filename 'my cell.kyi'")
    assert (options.render, options.template, options.show_python, options.filename) == (
        False, False, True, "my cell.kyi")
    default = parse_options("")
    assert (default.render, default.template, default.show_python) == (True, True, False)
    assert parse_options("--bogus") is None
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_run_cell_without_a_kernel(capsys):
    run_cell("--no-render --filename policy.kyi", "\\Module{\\pi}{s; L}\n  \\Return L(s) \\\\\n\\EndModule\n")
    out = capsys.readouterr()
    assert "class Pi(torch.nn.Module):" in out.out and out.err == ""
    assert r"\pi" in kokoyi.symbol
    with pytest.raises(kokoyi.KokoyiSyntaxError) as failed:
        run_cell("--no-render", "y \\gets (1 \\\\\n")
    shown = failed.value._render_traceback_()  # what IPython shows instead of a traceback
    assert shown == str(failed.value).splitlines()
    assert shown[0].startswith("<cell>:2:") and "^" in shown[-1]


def test_a_round_two_cell_renders_and_runs(monkeypatch):
    """The notebook shows a matrix literal and a log base as math, and the module runs."""
    pytest.importorskip("IPython")
    import IPython.display
    import torch

    from kokoyi.notebook import run_cell

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    cell = "\\Module{Rot}{\\theta}\n  \\Return \\begin{bmatrix} \\cos\\theta & 1 \\\\ 0 & \\log_2 \\theta \\end{bmatrix} \\\\\n\\EndModule\n"
    run_cell("--filename rot.kyi", cell)
    latex = "".join(obj["text/latex"] if isinstance(obj, dict) else str(getattr(obj, "data", obj)) for obj in shown)
    assert r"\begin{bmatrix} \cos \theta & 1 \\ 0 & \log_{2} \theta \end{bmatrix}" in latex
    from kokoyi.test_utils import Host

    got = Host(None, kokoyi.symbol["Rot"])(torch.tensor(4.0))
    assert torch.allclose(got, torch.tensor([[torch.cos(torch.tensor(4.0)).item(), 1.0], [0.0, 2.0]]))
