"""Tests of the Python code generator, through kokoyi.compile and the units it returns."""
from __future__ import annotations

import ast
import builtins
import hashlib
import keyword
import linecache
import os
import re
import subprocess
import sys
import traceback

import pytest
import torch

import kokoyi
from kokoyi.compiler.codegen.python import safe_comment
from kokoyi.compiler.pipeline import compile_unit
from kokoyi.test_utils import Host

SOURCE = r"""%kokoyi
\phi \gets 1 \\
sq(x) \gets x * x \\
\Function{softclip}{x, c}
  y \gets \tanh(x / c) \\
  \Return c * y \\
\EndFunction
\Module{PGLoss}{logP, r; \gamma}
\mu \gets \Mean \\
\sigma(x) \gets \sqrt{\frac{\sum_{i=0}^{|x|-1}{(x[i] -\bar{x})**2}}{|x|}} \where \bar{x} \gets \mu(x) \\
T \gets |r| \\
G_t \gets \{\sum_{i=0}^{T - 1 - t}{\gamma ** i * r[t+i]}\}_{t=0}^{T-1} \\
\bar{G_t} \gets \frac{G_t - \mu(G_t)}{\sigma(G_t)} \\
\Return -\bar{G_t} * logP + softclip(sq(\phi), 2) \\
\EndModule
\Module{RNN}{x; W, h_0}
  h \gets \{ \begin{cases} h_0 & t = 0 \\ \tanh(W @ h[t-1] + x[t]) & \text{otherwise} \end{cases} \}_{t=0}^{|x|-1} \\
  \Return h \\
\EndModule
"""


def statements(source: str) -> list[int]:
    """Source lines that start a statement or an item header, as the compiler sees them."""
    state = compile_unit(source, "t.kyi")
    lines = []
    for item in state.ast.items:
        lines.append(item.span.line)
        for stmt in getattr(item, "body", ()):
            lines.append(stmt.span.line)
    return lines


# ---- determinism ----------------------------------------------------------------------------


def test_output_is_deterministic_in_one_process():
    first = kokoyi.compile(SOURCE, "t.kyi").python_source
    kokoyi.symbol.clear()
    second = kokoyi.compile(SOURCE, "t.kyi").python_source
    assert first.encode() == second.encode()


def test_output_is_deterministic_across_processes():
    here = kokoyi.compile(SOURCE, "t.kyi").python_source
    script = (
        "import hashlib, sys, kokoyi\n"
        "src = sys.stdin.read()\n"
        "print(hashlib.sha256(kokoyi.compile(src, 't.kyi').python_source.encode()).hexdigest())\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", script], input=SOURCE, capture_output=True, text=True, env=env,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(kokoyi.__file__))))
    assert out.stdout.strip() == hashlib.sha256(here.encode()).hexdigest()


# ---- comments and the line map ----------------------------------------------------------------

COMMENT = re.compile(r"^\s*# t\.kyi:(\d+): (.*)$")


def test_one_source_comment_per_statement():
    code = kokoyi.compile(SOURCE, "t.kyi").python_source
    commented = [int(m.group(1)) for m in map(COMMENT.match, code.splitlines()) if m]
    assert sorted(commented) == sorted(statements(SOURCE))
    src_lines = SOURCE.splitlines()
    for line in code.splitlines():
        m = COMMENT.match(line)
        if m:
            assert m.group(2) == src_lines[int(m.group(1)) - 1].strip()


def test_comment_of_a_statement_spanning_lines_is_one_line():
    source = "q \\gets 1\n  + 2 \\\\\n"
    code = kokoyi.compile(source, "t.kyi").python_source
    assert "# t.kyi:1: q \\gets 1 + 2 \\\\" in code.splitlines()


def test_line_map_maps_generated_lines_to_their_statement():
    unit = kokoyi.compile(SOURCE, "t.kyi")
    lines = unit.python_source.splitlines()
    current = None
    checked = 0
    for number, text in enumerate(lines, start=1):
        m = COMMENT.match(text)
        if m:
            current = int(m.group(1))
        elif text.strip() and not text.startswith((" ", "def ")):
            current = None  # top-level code that is not a statement's own
        elif text.startswith("    ") and text.strip() and current is not None:
            # every line of code inside a function comes from the last commented statement
            assert unit.line_map.get(number) == current, (number, text)
            checked += 1
    assert checked > 10
    assert set(unit.line_map.values()) <= set(range(1, len(SOURCE.splitlines()) + 1))


def test_safe_comment_keeps_comments_on_one_line():
    text = "a\nb\rc\u2028d\u2029e\x0bf\x0cg\x85h"
    out = safe_comment(text)
    assert len(("# " + out).splitlines()) == 1
    assert safe_comment("x" * 500, limit=50).endswith("...") and len(safe_comment("x" * 500, limit=50)) == 50


def test_source_with_odd_line_breaks_compiles_to_valid_python():
    source = "q \\gets 1 \\Comment{odd\u2028break \u0085 here} \\\\\n"
    unit = kokoyi.compile(source, "odd\u2028name.kyi")
    ast.parse(unit.python_source)
    assert kokoyi.symbol["q"] == 1


# ---- identifiers -----------------------------------------------------------------------------

TRICKY = r"""
\lambda \gets 1 \\
sum \gets 2 \\
print \gets 4 \\
kk \gets 8 \\
torch \gets 16 \\
\bar{x} \gets 32 \\
x_{bar} \gets 64 \\
s' \gets 128 \\
x_{first} \gets 256 \\
\alpha \gets 512 \\
math \gets 1024 \\
\Module{M}{x; \lambda_2}
  sum \gets x + 1 \\
  len \gets 2 * sum \\
  x_{bar} \gets 10000 \\
  \Return len + \lambda + \lambda_2 + kk + torch + math + \bar{x} + x_{bar} + s' + x_{first} + \alpha \\
\EndModule
"""


def _assigned(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            out.append(node.name)
            out.extend(a.arg for a in node.args.args)
        elif isinstance(node, ast.Assign):
            out.extend(t.id for t in node.targets if isinstance(t, ast.Name))
    return out


def test_identifiers_are_legal_unique_and_readable():
    unit = kokoyi.compile(TRICKY, "t.kyi")
    tree = ast.parse(unit.python_source)
    module_level = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
    assert len(module_level) == len(set(module_level))
    for name in _assigned(tree):
        assert name.isidentifier() and not keyword.iskeyword(name)
        assert name not in dir(builtins) and name not in {"kk", "torch", "math", "kokoyi"}
    for line in ("alpha = 512", "x_first = 256", "x_bar = 32", "s_prime = 128", "lambda_ = 1"):
        assert line in unit.python_source.splitlines()


def test_mangled_names_never_collide_at_run_time():
    kokoyi.compile(TRICKY, "t.kyi")
    got = kokoyi.symbol["M"](Host(3), torch.tensor(0.0))
    # len = 2 (0 + 1) = 2; every other name keeps its own power of two.
    assert got.item() == 2 + 1 + 3 + 8 + 16 + 1024 + 32 + 10000 + 128 + 256 + 512
    assert kokoyi.symbol[r"\bar{x}"] == 32 and kokoyi.symbol["x_{bar}"] == 64 and kokoyi.symbol["sum"] == 2


def test_names_are_mangled_readably():
    unit = kokoyi.compile(r"""
\Module{M}{\alpha, x_{first}, \bar{x}, s'; W^{(1)}, \mathbf{b}}
  \Return \alpha + x_{first} + \bar{x} + s' + W^{(1)} + \mathbf{b} \\
\EndModule
""", "t.kyi")
    header = next(line for line in unit.python_source.splitlines() if line.startswith("def "))
    assert header == "def M_per_sample(alpha, x_first, x_bar, s_prime, W_1, b_bf):" or \
        re.search(r"\(alpha, x_first, x_bar, s_prime, W_1, b_bf\)", header)


# ---- run-time errors ----------------------------------------------------------------------------

FAILING = """\\Module{M}{x, y}
  a \\gets x + 1 \\\\
  b \\gets a @ y \\\\
  \\Return b \\\\
\\EndModule
f(x) \\gets x[10] \\\\
\\Module{F}{x}
  \\Return f(x) \\\\
\\EndModule
"""


def test_runtime_error_names_the_kyi_line():
    kokoyi.compile(FAILING, "err.kyi")
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        kokoyi.symbol["M"](Host(), torch.randn(3), torch.randn(4))
    assert str(info.value).startswith("err.kyi:3")
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        kokoyi.symbol["F"](Host(), torch.randn(3))
    # the line inside f, or the line of the module that calls it
    assert str(info.value).startswith(("err.kyi:6:", "err.kyi:8:"))
    # torch's IndexError explained, or (the IR back end) the read's own located check
    assert isinstance(info.value.__cause__, IndexError) or str(info.value).startswith("err.kyi:6:12: index 10")


def test_tracebacks_show_the_generated_code():
    kokoyi.compile(FAILING, "err.kyi")
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        kokoyi.symbol["M"](Host(), torch.randn(3), torch.randn(4))
    cause = info.value.__cause__
    frames = [f for f in traceback.extract_tb(cause.__traceback__) if f.filename.startswith("<kokoyi:")]
    assert frames, "no frame of generated code in the traceback"
    shown = linecache.getline(frames[-1].filename, frames[-1].lineno).strip()
    assert re.search(r"\ba\b", shown) and re.search(r"\by\b", shown)  # the code of `b \gets a @ y`
    assert shown and shown in "".join(traceback.format_exception(cause))


def test_compile_time_constant_error_names_the_kyi_line():
    with pytest.raises(kokoyi.KokoyiRuntimeError) as info:
        kokoyi.compile("a \\gets 1 \\\\\nv \\gets \\{ i \\}_{i=0}^{2} \\\\\nw \\gets v[10] \\\\\n", "c.kyi")
    assert str(info.value).startswith("c.kyi:3")


# ---- constants ------------------------------------------------------------------------------


def test_pi_is_the_constant_only_where_not_defined():
    kokoyi.compile(r"""
\Module{C}{x} \Return \pi * x \\ \EndModule
\Module{N}{x; \pi} \Return \pi * x \\ \EndModule
""")
    one = torch.tensor(1.0)
    assert kokoyi.symbol["C"](Host(), one).item() == pytest.approx(torch.pi)
    assert kokoyi.symbol["N"](Host(2.0), one).item() == 2.0
    kokoyi.compile(r"\pi \gets 3 \\ tau \gets 2 \pi \\ e \gets 5 \\ f \gets 2 e + \infty \\ g \gets 2 e \\")
    assert kokoyi.symbol["tau"] == 6 and kokoyi.symbol["f"] == float("inf") and kokoyi.symbol["g"] == 10


# ---- regressions: vectorised module code ---------------------------------------------------------


@pytest.mark.parametrize("body, want", [(r"\sum_{i=0}^{1} \sum_{j=0}^{2} x[j]", 12.0),
                                        (r"\sum_{i=0}^{1} \sum_{j=0}^{2} j", 6.0)])
def test_nested_big_operator_whose_body_ignores_the_outer_index(body, want):
    kokoyi.compile(f"f(x) \\gets {body} \\\\\n\\Module{{M}}{{x}} \\Return {body} \\\\ \\EndModule")
    x = torch.tensor([1.0, 2.0, 3.0])
    assert float(kokoyi.symbol["f"](x)) == want  # the per-sample code
    assert kokoyi.symbol["M"](Host(), x).item() == want


@pytest.mark.parametrize("source", [
    r"\Module{M}{x} \Return \{ \{ i * j \}_{j=0}^{2} \}_{i=0}^{1} @ x \\ \EndModule",
    r"\Module{M}{x, A \in \mathbb{Z}^{a \times b}} \Return A @ x \\ \EndModule",
])
def test_matrix_product_of_integer_and_float_values(source):
    kokoyi.compile(source)
    A = torch.tensor([[0, 0, 0], [0, 1, 2]])
    args = (torch.ones(3),) if "A" not in source else (torch.ones(3), A)
    assert kokoyi.symbol["M"](Host(), *args).tolist() == [0.0, 3.0]
