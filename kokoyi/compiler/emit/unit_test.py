"""Tests of the unit's module (emit/unit.py) and of what runs it (kokoyi/runtime/unit.py),
through kokoyi.compile and the units it returns."""
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
from kokoyi.compiler.emit.unit import HEADER_LINES, safe_comment
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
ITEM_LINES = [2, 3, 4, 8, 16]  # the source lines of its items


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
                         check=True, cwd=os.path.dirname(os.path.dirname(kokoyi.__file__)))
    assert out.stdout.strip() == hashlib.sha256(here.encode()).hexdigest()


# ---- the declarations, comments and the line map ------------------------------------------------

COMMENT = re.compile(r"^# t\.kyi:(\d+): (.*)$")


def test_one_declaration_under_one_source_comment_per_item():
    code = kokoyi.compile(SOURCE, "t.kyi").python_source
    commented = [int(m.group(1)) for m in map(COMMENT.match, code.splitlines()) if m]
    assert commented == ITEM_LINES
    src_lines = SOURCE.splitlines()
    for line in code.splitlines():
        m = COMMENT.match(line)
        if m and int(m.group(1)) != 3:
            assert m.group(2) == src_lines[int(m.group(1)) - 1].strip()
    assert "phi = 1" in code.splitlines()  # a folded constant is its number
    assert "sq = KOKOYI_UNIT.function('sq', 'sq', 't.kyi:3:1')" in code.splitlines()
    assert "PGLoss = KOKOYI_UNIT.module(" in code.splitlines()
    assert "def " not in code  # no per-sample code: every kernel is made per call signature


def test_comment_of_a_statement_spanning_lines_is_one_line():
    source = "q \\gets 1\n  + 2 \\\\\n"
    code = kokoyi.compile(source, "t.kyi").python_source
    assert "# t.kyi:1: q \\gets 1 + 2 \\\\" in code.splitlines()


def test_line_map_maps_declaration_lines_to_their_item():
    unit = kokoyi.compile(SOURCE, "t.kyi")
    current, checked = None, 0
    for number, text in enumerate(unit.python_source.splitlines(), start=1):
        m = COMMENT.match(text)
        if m:
            current = int(m.group(1))
        elif text.strip() and current is not None:
            assert unit.line_map.get(number) == current, (number, text)
            checked += 1
        else:
            current = None if not text.strip() else current
    assert checked >= len(ITEM_LINES) + 10


def test_code_printed_when_first_read_is_the_code_of_that_compile():
    """A unit's Python is printed when first asked for (GeneratedUnit.pending): read after later
    units redefine its names, it is what it would have been when the unit was compiled."""
    kokoyi.symbol.clear()
    now = kokoyi.compile(SOURCE, "t.kyi").python_source
    kokoyi.symbol.clear()
    unit = kokoyi.compile(SOURCE, "t.kyi")
    kokoyi.compile(r"\phi \gets 2 \\ sq(x) \gets x + x \\", "later.kyi")
    kokoyi.compile(SOURCE.replace("PGLoss", "Other"), "t2.kyi")
    assert unit.python_source == now
    lines = now.splitlines()
    assert lines[HEADER_LINES - 1] == "KOKOYI_UNIT = ku.Unit(KOKOYI_SOURCE, KOKOYI_FILENAME)"
    assert min(unit.line_map) > HEADER_LINES and max(unit.line_map) <= len(lines)


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
KOKOYI_{UNIT} \gets 2048 \\
\Module{M}{x; \lambda_2}
  sum \gets x + 1 \\
  len \gets 2 * sum \\
  x_{bar} \gets 10000 \\
  \Return len + \lambda + \lambda_2 + kk + torch + math + \bar{x} + x_{bar} + s' + x_{first} + \alpha + KOKOYI_{UNIT} \\
\EndModule
"""


def test_identifiers_are_legal_unique_and_readable():
    unit = kokoyi.compile(TRICKY, "t.kyi")
    tree = ast.parse(unit.python_source)
    module_level = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
    assert len(module_level) == len(set(module_level))
    for name in set(module_level) - {"KOKOYI_SOURCE", "KOKOYI_FILENAME", "KOKOYI_UNIT"}:
        assert name.isidentifier() and not keyword.iskeyword(name)
        assert name not in dir(builtins) and name not in {"kk", "kx", "ku", "torch", "math", "kokoyi"}
    for line in ("alpha = 512", "x_first = 256", "x_bar = 32", "s_prime = 128", "lambda_ = 1"):
        assert line in unit.python_source.splitlines()


def test_mangled_names_never_collide_at_run_time():
    kokoyi.compile(TRICKY, "t.kyi")
    got = kokoyi.symbol["M"](Host(3), torch.tensor(0.0))
    # len = 2 (0 + 1) = 2; every other name keeps its own power of two.
    assert got.item() == 2 + 1 + 3 + 8 + 16 + 1024 + 32 + 10000 + 128 + 256 + 512 + 2048
    assert kokoyi.symbol[r"\bar{x}"] == 32 and kokoyi.symbol["x_{bar}"] == 64 and kokoyi.symbol["sum"] == 2


def test_kernels_use_the_source_names():
    kokoyi.compile(r"""
\Module{M}{\alpha, x_{first}, \bar{x}, s'; W^{(1)}, \mathbf{b}}
  \Return \alpha + x_{first} + \bar{x} + s' + W^{(1)} + \mathbf{b} \\
\EndModule
""", "t.kyi")
    one = torch.tensor(1.0)
    assert kokoyi.symbol["M"](Host((one, one)), one, one, one, one).item() == 6
    (entry,) = kokoyi.symbol["M"].__kokoyi_specializations__.cache.values()
    assert re.search(r"def M__batched_\d+\(alpha, x_first, x_bar, s_prime, W_1, b_bf\):", entry[2])


# ---- functions and constants run kernels ------------------------------------------------------


def test_functions_specialise_per_signature():
    kokoyi.compile(r"""
sq(x) \gets x * x \\
\Function{total}{x}
  \Return \sum_{i=0}^{|x|-1} x[i] \\
\EndFunction
""", "f.kyi")
    sq, total = kokoyi.symbol["sq"], kokoyi.symbol["total"]
    assert sq(3) == 9 and type(sq(3)) is int  # Python numbers stay Python numbers
    assert sq(1.5) == 2.25 and type(sq(1.5)) is float
    assert torch.equal(sq(torch.tensor([1, 2])), torch.tensor([1, 4]))
    assert torch.equal(sq(torch.tensor([[2.0]])), torch.tensor([[4.0]]))
    assert total(torch.tensor([1.0, 2.0, 4.0])).item() == 7.0
    specs = sq.__kokoyi_specializations__
    assert len(specs.cache) == 4  # one kernel per signature: int, float, int vector, float matrix
    with pytest.raises(kokoyi.KokoyiTypeError, match="takes tensors and numbers"):
        sq("x")


def test_a_constant_is_its_kernels_value_computed_once():
    unit = kokoyi.compile(r"""
n \gets 3 \\
v \gets \{ i^2 \}_{i=0}^{n} \\
s \gets \sum_{i=0}^{n} v[i] \\
""", "c.kyi")
    assert unit["n"] == 3
    assert torch.equal(unit["v"], torch.tensor([0, 1, 4, 9]))
    assert unit["s"] == 14
    assert "v = KOKOYI_UNIT.constant('v', 'v')" in unit.python_source.splitlines()


def test_an_imported_copy_compiles_its_embedded_source(tmp_path):
    unit = kokoyi.compile(r"""
c \gets \{ 2 i \}_{i=0}^{2} \\
f(x) \gets x + c \\
\Module{M}{x} \Return f(x) \\ \EndModule
""", "copy.kyi")
    path = tmp_path / "copy_module.py"
    path.write_text(unit.python_source)
    import importlib.util

    spec = importlib.util.spec_from_file_location("copy_module", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert torch.equal(mod.c, torch.tensor([0, 2, 4]))
    assert torch.equal(mod.f(torch.ones(3)), torch.tensor([1.0, 3.0, 5.0]))
    assert torch.equal(mod.M(Host(), torch.ones(2, 3), batch_level=1), torch.tensor([[1.0, 3.0, 5.0]] * 2))


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
    assert str(info.value).startswith("err.kyi:6:12: index 10")  # the read's own located check
    with pytest.raises(kokoyi.KokoyiRuntimeError, match=r"^err\.kyi:6:12: index 10"):
        kokoyi.symbol["f"](torch.randn(3))


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


# ---- regressions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body, want", [(r"\sum_{i=0}^{1} \sum_{j=0}^{2} x[j]", 12.0),
                                        (r"\sum_{i=0}^{1} \sum_{j=0}^{2} j", 6.0)])
def test_nested_big_operator_whose_body_ignores_the_outer_index(body, want):
    kokoyi.compile(f"f(x) \\gets {body} \\\\\n\\Module{{M}}{{x}} \\Return {body} \\\\ \\EndModule")
    x = torch.tensor([1.0, 2.0, 3.0])
    assert float(kokoyi.symbol["f"](x)) == want
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


# ---- declarations as data ---------------------------------------------------------------------


def _declared(namespace: dict) -> dict:
    """What a unit's module bound, comparably: modules and values as they are, forwards by spec."""
    out = {}
    for name, value in namespace.items():
        if name == "KOKOYI_UNIT":
            value = (type(value), value.text, value.filename, value.namespace is namespace)
        elif hasattr(value, "__kokoyi_spec__"):
            value = (type(value), value.__kokoyi_key__, value.__kokoyi_spec__, value.__kokoyi_source__)
        elif hasattr(value, "__kokoyi_key__"):
            value = (type(value), value.__kokoyi_key__, value.__name__, value.__kokoyi_source__)
        out[name] = value
    return out


@pytest.mark.parametrize("text", [SOURCE.replace("\\phi \\gets 1", "\\phi \\gets 1.5"),
                                  "\\Module{A}{x \\in \\mathbb{R}^{3 \\times D}; W \\in \\mathbb{R}^{D \\times 2}}\n"
                                  "\\Return x @ W \\\\\n\\EndModule\n"])
def test_installing_by_the_declarations_does_what_the_code_does(text):
    from kokoyi.compiler.pipeline import compile_unit
    from kokoyi.runtime.unit import declare

    generated = compile_unit(text, "d.kyi").generated
    assert generated.declarations is not None
    by_code, by_data = {}, {}
    exec(compile(generated.code, "<d>", "exec"), by_code)  # noqa: S102
    declare(text, "d.kyi", generated.declarations, by_data)
    assert list(by_code) == list(by_data)
    assert _declared(by_code) == _declared(by_data)
    assert kokoyi.compile(text, "d.kyi").python_source == generated.code


def test_a_unit_that_computes_a_constant_runs_its_code():
    from kokoyi.compiler.pipeline import compile_unit

    generated = compile_unit("v \\gets \\{ i \\}_{i=0}^{2} \\\\\n", "c.kyi").generated
    assert generated.declarations is None and "KOKOYI_UNIT.constant(" in generated.code
