"""The kernel cache (kokoyi/runtime/kernelcache.py), across processes: a new interpreter's
first call with a signature an earlier process met generates nothing (counted: no definition
lowered, no call-time pass run), computes the same values and gradients, and never reuses a
kernel whose source, callee or signature changed, nor a corrupt entry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# The child: loads the .kyi files given, calls a model once, prints what the call generated
# (definitions lowered, call-time pass runs) and the values and parameter gradients.
CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
import kokoyi
from kokoyi.compiler import pipeline
from kokoyi.compiler.passes.lower import Lowering

case, files = sys.argv[2], sys.argv[3:]
work = {"lowered": 0, "passes": 0}
lower_item, run_passes = Lowering.item, pipeline.run_call_passes

def lowering(self, item):
    work["lowered"] += 1
    return lower_item(self, item)

def passes(*args, **kwargs):
    work["passes"] += 1
    return run_passes(*args, **kwargs)

Lowering.item, pipeline.run_call_passes = lowering, passes
torch.manual_seed(0)
if case == "seq2seq":
    sys.path.insert(0, files[0])
    import zoo_models
    ex = zoo_models.load_example("seq2seq")
    model = ex.Seq2Seq(ex.Transformer(10, 16, 2, 32, 1))
    x, y = ex.make_batch(torch.Generator().manual_seed(1), 3, 5, 10, "reverse")
    out = model(x, y, batch_level=[1, 1])
else:
    for f in files:
        kokoyi.load(f)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W = torch.nn.Parameter(torch.linspace(-1, 1, 3))

        def get_parameters(self):
            return self.W

        forward = kokoyi.symbol["M"]

    model = M()
    x = torch.linspace(0, 1, 6).reshape(2, 3)
    if case == "error":  # the message names the .kyi line; the traceback shows the kernel's code
        import traceback
        try:
            model(x[0])
        except kokoyi.KokoyiRuntimeError as err:
            shown = "".join(traceback.format_exception(err.__cause__ or err.__context__))
            print(json.dumps({**work, "error": str(err), "traceback": shown}))
        sys.exit(0)
    out = model(x, batch_level=[1]) if case == "batched" else model(x[0])
grads = torch.autograd.grad(out.sum(), [p for p in model.parameters()], allow_unused=True)
print(json.dumps({**work, "out": out.tolist(),
                  "grads": [None if g is None else g.flatten().tolist() for g in grads]}))
"""


def run(cache: Path, case: str, *files, kernel_cache: bool = True) -> dict:
    env = dict(os.environ, KOKOYI_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    env["KOKOYI_KERNEL_CACHE"] = "1" if kernel_cache else "0"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(REPO), case, *map(str, files)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same(a: dict, b: dict) -> bool:
    close = lambda u, v: torch.allclose(torch.tensor(u), torch.tensor(v), atol=1e-6, rtol=1e-5)  # noqa: E731
    return close(a["out"], b["out"]) and len(a["grads"]) == len(b["grads"]) and all(
        (u is None and v is None) or close(u, v) for u, v in zip(a["grads"], b["grads"]))


@pytest.fixture
def files(tmp_path):
    lib, model = tmp_path / "lib.kyi", tmp_path / "model.kyi"
    lib.write_text("g(x) \\gets 2 * x \\\\\n")
    model.write_text("\\Module{M}{x; W}\n\\Return \\tanh(g(x) * W) \\\\\n\\EndModule\n")
    return lib, model


def test_a_second_process_generates_nothing_and_computes_the_same(tmp_path):
    pytest.importorskip("matplotlib")  # (the seq2seq example's train.py)
    pytest.importorskip("tqdm")
    cache = tmp_path / "cache"
    first = run(cache, "seq2seq", REPO / "tests")
    assert first["passes"] > 0 and first["lowered"] > 0
    assert list((cache / "kernels").glob("*.json"))
    second = run(cache, "seq2seq", REPO / "tests")
    assert second["passes"] == 0 and second["lowered"] == 0, second
    assert same(first, second)
    off = run(cache, "seq2seq", REPO / "tests", kernel_cache=False)  # KOKOYI_KERNEL_CACHE=0: generated
    assert off["passes"] > 0 and same(first, off)


def test_a_changed_callee_source_or_signature_is_generated_again(tmp_path, files):
    lib, model = files
    cache = tmp_path / "cache"
    first = run(cache, "sample", lib, model)
    assert first["passes"] > 0
    assert run(cache, "sample", lib, model)["passes"] == 0
    lib.write_text("g(x) \\gets 3 * x \\\\\n")  # the module's file is unchanged; its callee is not
    changed = run(cache, "sample", lib, model)
    assert changed["passes"] > 0 and not same(first, changed)
    x = torch.linspace(0, 1, 6).reshape(2, 3)[0]
    assert torch.allclose(torch.tensor(changed["out"]), torch.tanh(3 * x * torch.linspace(-1, 1, 3)))
    assert run(cache, "batched", lib, model)["passes"] > 0  # another signature (batch level 1)
    model.write_text("\\Module{M}{x; W}\n\\Return \\tanh(g(x) + W) \\\\\n\\EndModule\n")
    edited = run(cache, "sample", lib, model)
    assert edited["passes"] > 0
    assert torch.allclose(torch.tensor(edited["out"]), torch.tanh(3 * x + torch.linspace(-1, 1, 3)))


def test_a_corrupt_entry_is_generated_again_and_replaced(tmp_path, files):
    lib, model = files
    cache = tmp_path / "cache"
    first = run(cache, "sample", lib, model)
    entries = list((cache / "kernels").glob("*.json"))
    assert entries
    for damage in ("garbage", "truncated", "code"):
        for path in entries:
            text = path.read_text()
            if damage == "garbage":
                path.write_bytes(b"\x00\xff not json")
            elif damage == "truncated":
                path.write_text(text[: len(text) // 2])
            else:  # valid JSON, code changed without its digest: never executed
                entry = json.loads(text)
                entry["code"] = entry["code"].replace("tanh", "sigmoid")
                entry["bytecode"]["data"] = ""
                path.write_text(json.dumps(entry))
        again = run(cache, "sample", lib, model)
        assert again["passes"] > 0 and same(first, again), damage  # generated again, and stored
    assert run(cache, "sample", lib, model)["passes"] == 0  # replaced by a good entry


def test_errors_in_a_cached_kernel_name_the_source_line_and_show_its_code(tmp_path):
    model = tmp_path / "model.kyi"
    model.write_text("\\Module{M}{x; W}\n\\Return x[3] * W \\\\\n\\EndModule\n")
    cache = tmp_path / "cache"
    first, second = run(cache, "error", model), run(cache, "error", model)
    assert first["passes"] > 0 and second["passes"] == 0
    assert f"{model}:2:" in second["error"] and "index 3 is out of range for `x`" in second["error"]
    assert second["error"] == first["error"]
    lines = second["traceback"].splitlines()
    at = next(i for i, line in enumerate(lines) if 'File "<kokoyi:' in line)
    assert lines[at + 1].strip(), "the kernel's line is shown (linecache)"
    assert second["traceback"] == first["traceback"]
