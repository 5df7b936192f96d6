"""The `kyic` command, run as a subprocess (`python -m kokoyi.cli`)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

import kokoyi
from kokoyi.compiler.pipeline import PASS_NAMES

SEED = r"""%kokoyi
\Module{PGLoss}{logP, r; \gamma}
\mu \gets \Mean \\
\sigma(x) \gets \sqrt{\frac{\sum_{i=0}^{|x|-1}{(x[i] -\bar{x})**2}}{|x|}} \where \bar{x} \gets \mu(x) \Comment{Compute standard deviation} \\
T \gets |r| \\
G_t \gets \{\sum_{i=0}^{T - 1 - t}{\gamma ** i * r[t+i]}\}_{t=0}^{T-1} \Comment{Discounted reward}\\
\bar{G_t} \gets \frac{G_t - \mu(G_t)}{\sigma(G_t)} \Comment{Normalize discounted reward}\\
\Return -\bar{G_t} * logP \\
\EndModule

\Module{\pi}{s; Linears}
\Return \Softmax(Linears[1](\ReLU(Linears[0](s)))) \\
\EndModule

\phi \gets 2 \\
f(x) \gets x ** 2 + \phi \\
"""

BAD = "a \\gets 1 \\\\\n\\Module{M}{x}\n  \\Return x + \\psi \\\\\n\\EndModule\n"


def kyic(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kokoyi.cli", *map(str, args)],
                          cwd=cwd, check=False, capture_output=True, text=True, timeout=120)


@pytest.fixture
def work(tmp_path):
    (tmp_path / "seed.kyi").write_text(SEED, encoding="utf-8")
    (tmp_path / "bad.kyi").write_text(BAD, encoding="utf-8")
    return tmp_path


def import_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def holder(forward, params):
    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = params

        def get_parameters(self):
            return self.p

    Holder.forward = forward
    return Holder()


def test_version_and_help(work):
    done = kyic("--version", cwd=work)
    assert done.returncode == 0 and kokoyi.__version__ in done.stdout
    done = kyic("--help", cwd=work)
    assert done.returncode == 0
    for command in ("compile", "check", "render", "template"):
        assert command in done.stdout
    done = kyic("compile", "--help", cwd=work)
    assert done.returncode == 0 and all(name in done.stdout for name in PASS_NAMES)


@pytest.mark.parametrize("args", [(), ("compile", "seed.kyi", "--dump-after", "lex"),
                                  ("render", "seed.kyi", "--format", "pdf"), ("check",)])
def test_usage_errors_exit_2(work, args):
    done = kyic(*args, cwd=work)
    assert done.returncode == 2, done.stderr
    assert "usage:" in done.stderr and "Traceback" not in done.stderr


def test_check(work):
    done = kyic("check", "seed.kyi", cwd=work)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = kyic("check", "seed.kyi", "bad.kyi", "missing.kyi", cwd=work)
    assert done.returncode == 1
    assert "bad.kyi:3:15: undefined name `\\psi`" in done.stderr
    assert "   3 |   \\Return x + \\psi \\\\" in done.stderr
    assert "     |               ^^^^" in done.stderr
    assert "kyic: missing.kyi: no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_json(work):
    import json

    (work / "syntax.kyi").write_text("\\Module{M}{x}\n  \\Return x\n\\EndModule\n", encoding="utf-8")
    (work / "arity.kyi").write_text("f(x) \\gets \\Softmax(x, x) \\\\\n", encoding="utf-8")
    done = kyic("check", "--format", "json", "seed.kyi", cwd=work)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = kyic("check", "--format", "json", "-v", "seed.kyi", "bad.kyi", "syntax.kyi", "arity.kyi",
                "missing.kyi", cwd=work)
    assert done.returncode == 1 and done.stderr == ""
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in records] == ["bad.kyi", "syntax.kyi", "arity.kyi", "missing.kyi"]
    assert all(set(r) == {"file", "line", "column", "end_line", "end_column", "severity", "message", "code"}
               and r["severity"] == "error" for r in records)
    bad, syntax, arity, missing = records
    # `\psi` on line 3 at column 15: four characters, end exclusive
    assert (bad["line"], bad["column"], bad["end_line"], bad["end_column"], bad["code"]) == (3, 15, 3, 19, "name")
    assert bad["message"].startswith("undefined name `\\psi`")
    assert syntax["code"] == "syntax" and syntax["line"] == 3 and "`\\\\`" in syntax["message"]
    assert arity["code"] == "type" and [arity[k] for k in ("line", "column", "end_line", "end_column")] == [1, 12, 1, 26]
    assert "takes 1 argument, got 2" in arity["message"]
    assert missing == {"file": "missing.kyi", "line": None, "column": None, "end_line": None,
                       "end_column": None, "severity": "error", "message": "no such file", "code": "io"}


def test_check_json_notes_and_spans_over_lines(work):
    import json

    (work / "twice.kyi").write_text("a \\gets 1 \\\\\na \\gets 2 \\\\\n", encoding="utf-8")
    done = kyic("check", "--format", "json", "twice.kyi", cwd=work)
    record = json.loads(done.stdout)
    assert done.returncode == 1 and record["code"] == "name"
    assert record["message"] == "`a` is already defined in this unit\n  first defined at twice.kyi:1:1"
    assert (record["line"], record["column"], record["end_line"], record["end_column"]) == (2, 1, 2, 2)


def test_compile_errors_are_located_not_tracebacks(work):
    done = kyic("compile", "bad.kyi", "-o", "bad.py", cwd=work)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("bad.kyi:3:15: ") and "Traceback" not in done.stderr
    assert not (work / "bad.py").exists()
    done = kyic("compile", "missing.kyi", cwd=work)
    assert done.returncode == 1 and "no such file" in done.stderr and "Traceback" not in done.stderr


def test_compiled_module_imports_and_matches_kokoyi_compile(work):
    done = kyic("compile", "seed.kyi", "-o", "seed_gen.py", cwd=work)
    assert done.returncode == 0, done.stderr
    text = (work / "seed_gen.py").read_text()
    assert "# ---- torch.nn.Module templates" in text
    assert "# class PGLoss(torch.nn.Module):" in text and "#     forward = pi  # the forward function above" in text

    generated = import_file(work / "seed_gen.py", "seed_gen")
    unit = kokoyi.compile(SEED, filename="seed.kyi")
    assert generated.phi == unit["phi"] == 2
    assert generated.f(3) == unit["f"](3) == 11

    g = torch.Generator().manual_seed(0)
    logP, r = torch.randn(2, 9, generator=g), torch.rand(2, 9, generator=g)
    ours = holder(generated.PGLoss, 0.99)(logP, r, batch_level=[1, 1])
    theirs = holder(unit["PGLoss"], 0.99)(logP, r, batch_level=[1, 1])
    torch.testing.assert_close(ours, theirs)

    torch.manual_seed(0)
    layers = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)])
    s = torch.randn(4, generator=g)
    torch.testing.assert_close(holder(generated.pi, layers)(s), holder(unit[r"\pi"], layers)(s))

    # the templates at the end work once uncommented, in place
    block = text.split("# ---- torch.nn.Module templates", 1)[1].splitlines()[1:]
    source = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in block)
    namespace = dict(vars(generated))
    filled_in = source.replace("= None  # TODO", "= 0.99  # TODO")
    exec(compile(filled_in, "templates", "exec"), namespace)  # noqa: S102 - the generated templates
    assert namespace["PGLoss"]().forward is not None


def test_compile_is_byte_identical_and_stdout_matches_file(work):
    assert kyic("compile", "seed.kyi", "-o", "one.py", cwd=work).returncode == 0
    again = kyic("compile", "seed.kyi", cwd=work)
    assert again.returncode == 0
    assert (work / "one.py").read_bytes() == again.stdout.encode()
    assert kyic("compile", "seed.kyi", "-o", "two.py", cwd=work).returncode == 0
    assert (work / "one.py").read_bytes() == (work / "two.py").read_bytes()


@pytest.mark.parametrize("pass_name", PASS_NAMES)
def test_dump_after_each_pass(work, pass_name):
    done = kyic("compile", "--dump-after", pass_name, "seed.kyi", cwd=work)
    assert done.returncode == 0, done.stderr
    expected = {"parse": "start", "build": "Module(", "resolve": "Ref(", "recurrences": "Ref(",
                "ranks": "Ref(", "lower": "module PGLoss(logP, r; gamma):",
                "simplify": "build[t in 0..sub(T, 1)]", "inline": "build[t in 0..sub(T, 1)]",
                "rewrite": "discounted_window!(gamma, r, 0, sub(T, 1)", "unit": "PGLoss = KOKOYI_UNIT.module("}[pass_name]
    assert expected in done.stdout


def test_render_formats(work):
    done = kyic("render", "seed.kyi", cwd=work)  # tex on standard output by default
    assert done.returncode == 0 and done.stdout.startswith("\\documentclass")
    assert "\\begin{algorithmic}" in done.stdout
    for fmt, marker in (("md", "$$\n\\begin{aligned}"), ("html", "<!DOCTYPE html>")):
        done = kyic("render", "seed.kyi", "--format", fmt, "-o", f"seed.{fmt}", cwd=work)
        assert done.returncode == 0, done.stderr
        assert marker in (work / f"seed.{fmt}").read_text()


def test_render_errors_are_located(work):
    (work / "broken.kyi").write_text("x \\gets (1 \\\\\n")
    done = kyic("render", "broken.kyi", cwd=work)
    assert done.returncode == 1 and done.stderr.startswith("broken.kyi:1:") and "Traceback" not in done.stderr


def test_template(work):
    done = kyic("template", "seed.kyi", "pi", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("class Pi(torch.nn.Module):")
    assert "forward = kokoyi.symbol['\\\\pi']" in done.stdout
    everything = kyic("template", "seed.kyi", cwd=work)
    assert "class PGLoss(torch.nn.Module):" in everything.stdout and "class Pi(" in everything.stdout
    kokoyi.compile(SEED, filename="seed.kyi")
    assert everything.stdout == kokoyi.template("PGLoss") + "\n" + kokoyi.template(r"\pi")
    missing = kyic("template", "seed.kyi", "Nope", cwd=work)
    assert missing.returncode == 1 and "no module 'Nope'" in missing.stderr
    not_a_module = kyic("template", "seed.kyi", "phi", cwd=work)
    assert not_a_module.returncode == 1


def test_installed_console_script(work):
    script = __import__("pathlib").Path(sys.executable).with_name("kyic")
    if not script.exists():
        pytest.skip("kyic console script not installed in this environment")
    done = subprocess.run([str(script), "check", "seed.kyi"], cwd=work, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
