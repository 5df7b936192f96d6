"""The renderer (kokoyi.compiler.render): MathJax LaTeX, .tex documents, Markdown and HTML."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess

import pytest
from conftest import CONFORMANCE, ROUND_2_CASES

from kokoyi.compiler.render import (
    key_tex,
    number_tex,
    render_html,
    render_latex,
    render_markdown,
    render_tex_document,
)
from kokoyi.errors import KokoyiError


def case_source(name: str) -> str:
    spec = importlib.util.spec_from_file_location(name, CONFORMANCE / "cases" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SOURCE


SEED_POLICY = case_source("seed_policy")
SEED_PGLOSS = case_source("seed_pgloss")

# Every construct of the language, for the renderers and for pdflatex.
EVERYTHING = r"""
%kokoyi
\phi \gets 1e-3 \\
\eta \gets 2.5E4 \\
f(x) \gets x ** 2 + 1 \\
\Function{softclip}{x, c}
  y \gets \tanh(x / c) \Comment{50% of x_1 & #2 ~ ^} \\
  \Return c * y \\
\EndFunction
\Module{Everything}{x \in \mathbb{R}^{T \times d}, a \in \mathbb{Z}, M; W^{(1)}, \gamma}
  v \gets W^{(1)} @ x[0] \cdot x[1] \\
  n \gets \|v\|_2 + \|v\| + \|v\|_\infty + |v| + \lceil \gamma \rceil + \lfloor \gamma \rfloor \\
  s \gets \sqrt[3]{\frac{1}{2}} + \sqrt2 + 2n + \frac{1}{2} \gamma^2 \\
  z \gets x[1:T, :] \\
  t \gets M^\top + (M ** 2)^\top \\
  c \gets \begin{cases} 1 & \text{if } n > 0 \land n \le 3 \\ 0 & \text{otherwise} \end{cases} \\
  i \gets \mathbb{1}[n \ge 1 \lor \lnot (n = 2)] + \mathbb{1}(n \ne 1) + \mathbb{1}_{n < 1} \\
  g \gets \{ \{ x[i, j] \}_{j=0}^{d-1} \}_{i=0}^{T-1} + \{ x[i, j] * 2 \}_{i=0, j=0}^{T-1, d-1} \\
  m \gets \argmax_{i=0}^{T-1} x[i, 0] + \mathbb{E}_{i=0}^{T-1} x[i, 0] + \prod_{i=0}^{2}{i + 1} \\
  k \gets \sum(x) + \max(x) + \max(n, s) + \Mean(x) + \Softmax(x[0]) \odot x[1] \\
  b \gets \log x + \exp{s} + \sin \cos \gamma + \StopGrad(s) + \OneHot(a, d) \times 1 \\
  q \gets \frac{-n}{s'} \where s' \gets s + 1, u \gets 2 \\
  \Return softclip(v, 1) + f(n) - q, c / i \\
\EndModule
"""


def test_mathjax_conventions_on_the_seed_policy():
    latex = render_latex(SEED_POLICY, "policy.kyi")
    assert latex.startswith("\\begin{aligned}") and latex.endswith("\\end{aligned}")
    assert r"&\textbf{Module}\ \pi(s;\ \mathit{Linears})" in latex
    assert r"\textbf{return}\ \operatorname{softmax}(\mathit{Linears}[1](\operatorname{ReLU}(" in latex


def test_mathjax_conventions_on_the_seed_loss():
    latex = render_latex(SEED_PGLOSS, "pgloss.kyi")
    assert r"\textbf{Module}\ \mathit{PGLoss}(\mathit{logP}, r;\ \gamma)" in latex
    assert r"\mu \leftarrow \operatorname{mean}" in latex
    assert r"\gamma^{i} \circ r[t + i]" in latex  # `**` as a superscript, `*` as \circ
    assert r"\quad \text{where}\ \bar{x} \leftarrow \mu(x)" in latex
    assert r"&&\triangleright\ \text{Discounted reward}" in latex
    assert r"\textbf{return}\ -\bar{G_{t}} \circ \mathit{logP}" in latex
    assert "\\gets" not in latex and "**" not in latex and "%" not in latex


def test_operators_and_calls():
    latex = render_latex(r"""
\Module{Q}{s; W, b}
  h \gets W @ s + b \\
  k \gets W \cdot s * 2 \times s \\
  \Return \frac{1}{2} \sum_{i=0}^{|h|-1} {(h[i] - k[i]) ** 2} \\
\EndModule
""")
    assert r"h \leftarrow W \cdot s + b" in latex
    assert r"k \leftarrow W \cdot s \circ 2 \times s" in latex
    assert r"\frac{1}{2} \, \sum_{i=0}^{\lvert h \rvert - 1}" in latex
    assert r"(h[i] - k[i])^{2}" in latex


def test_names_and_numbers():
    assert key_tex("x") == "x"
    assert key_tex("logP") == r"\mathit{logP}"
    assert key_tex(r"x_{first}") == r"x_{\mathit{first}}"
    assert key_tex(r"\bar{G_{t}}") == r"\bar{G_{t}}"
    assert key_tex(r"\mathbf{Wx}") == r"\mathbf{Wx}"
    assert key_tex(r"\alpha'") == r"\alpha'"
    assert number_tex("1e-3") == "10^{-3}"
    assert number_tex("2.5E4") == r"2.5 \times 10^{4}"
    assert number_tex("0.5") == "0.5"


def _macros(latex: str) -> set[str]:
    return set(re.findall(r"\\[A-Za-z]+", latex))


# Every macro the notebook renderer may emit: all are in MathJax's default TeX input.
MATHJAX_MACROS = {
    r"\begin", r"\end", r"\textbf", r"\text", r"\textstyle", r"\mathit", r"\mathbf", r"\mathbb", r"\mathcal",
    r"\boldsymbol", r"\operatorname", r"\mathrm", r"\leftarrow", r"\quad", r"\triangleright", r"\circ",
    r"\cdot", r"\times", r"\odot", r"\frac", r"\sqrt", r"\sum", r"\prod", r"\max", r"\min", r"\left",
    r"\right", r"\lvert", r"\rvert", r"\lVert", r"\rVert", r"\lceil", r"\rceil", r"\lfloor", r"\rfloor",
    r"\top", r"\infty", r"\land", r"\lor", r"\lnot", r"\le", r"\ge", r"\ne", r"\log", r"\exp", r"\sin",
    r"\cos", r"\tanh", r"\sigma", r"\gamma", r"\phi", r"\eta", r"\mu", r"\bar", r"\pi", r"\in",
}


def test_notebook_latex_uses_no_custom_macros_and_balances():
    latex = render_latex(EVERYTHING, "everything.kyi")
    assert _macros(latex) <= MATHJAX_MACROS, _macros(latex) - MATHJAX_MACROS
    assert latex.count("{") - latex.count("\\{") == latex.count("}") - latex.count("\\}")
    assert len(re.findall(r"\\left(?![a-z])", latex)) == len(re.findall(r"\\right(?![a-z])", latex))
    for expected in (r"W^{(1)} \cdot x[0] \cdot x[1]", r"M^{\top} + (M^{2})^{\top}", r"\lVert v \rVert_{2}", r"\sqrt[3]",
                     r"x[1{:}T, {:}]", r"\begin{cases} 1 & \text{if } n > 0 \land n \le 3", r"\mathbb{1}[",
                     r"\operatorname*{argmax}_{i=0}^{T - 1}", r"\mathbb{E}_{i=0}^{T - 1}", r"\mathrm{sg}[s]",
                     r"\log x", r"\exp{s}", r"\sin \cos \gamma", r"\operatorname{onehot}(a, d)",
                     r"\textbf{Function}\ \mathit{softclip}(x, c)", r"\phi \leftarrow 10^{-3}",
                     r"x \in \mathbb{R}^{T \times d}", r"a \in \mathbb{Z}", r"\left\{ x[i, j] \circ 2 \right\}"):
        assert expected in latex, expected


def test_render_errors_are_located():
    with pytest.raises(KokoyiError) as info:
        render_latex("x \\gets 1 \\\\\ny \\gets (2 \\\\\n", "bad.kyi")
    assert info.value.filename == "bad.kyi" and info.value.line == 2


def test_empty_unit_renders_empty():
    assert render_latex("%kokoyi\n% nothing here\n") == ""


def test_markdown_has_one_display_per_item():
    md = render_markdown(SEED_PGLOSS + SEED_POLICY, "seed.kyi")
    assert md.startswith("# seed.kyi\n")
    assert md.count("$$\n\\begin{aligned}") == 2
    assert md.count("$$") == 4


def test_html_page_loads_mathjax_and_escapes():
    page = render_html(r"""
\Module{H}{x; W}
  \Return \mathbb{1}[x < 1] \land W \\
\EndModule
""", "h<1>.kyi")
    assert page.startswith("<!DOCTYPE html>") and "mathjax" in page.lower()
    assert "<title>h&lt;1&gt;.kyi</title>" in page
    assert "x &lt; 1" in page and "&amp;\\textbf{Module}" in page
    assert "\\[\n\\begin{aligned}" in page


def test_tex_document_uses_algorithmic():
    doc = render_tex_document(SEED_PGLOSS, "pgloss.kyi")
    assert "\\usepackage{algpseudocode}" in doc and "\\usepackage{algorithm}" in doc
    assert "\\begin{algorithmic}[1]" in doc
    assert "\\Function{$\\mathit{PGLoss}$}{$\\mathit{logP}, r;\\ \\gamma$}" in doc
    assert "\\State \\Return $\\displaystyle -\\bar{G_{t}} \\circ \\mathit{logP}$" in doc
    assert "\\Comment{Discounted reward}" in doc
    assert "\\EndFunction" in doc and doc.rstrip().endswith("\\end{document}")


def test_tex_escapes_comment_text():
    doc = render_tex_document(EVERYTHING, "everything.kyi")
    assert r"\Comment{50\% of x\_1 \& \#2 \textasciitilde{} \^{}}" in doc
    assert r"\mathbf{1}[" in doc and r"\mathbb{1}" not in doc


def _conformance_sources():
    sources = {"seed_policy": SEED_POLICY, "seed_pgloss": SEED_PGLOSS, "everything": EVERYTHING}
    for path in sorted((CONFORMANCE / "cases").glob("*.py")):
        if path.stem.startswith("error_") or path.stem in sources or path.stem in ROUND_2_CASES:
            continue
        sources[path.stem] = case_source(path.stem)
    return sources


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_pdflatex_compiles_the_rendered_documents(tmp_path):
    for name, source in _conformance_sources().items():
        (tmp_path / f"{name}.tex").write_text(render_tex_document(source, f"{name}.kyi"), encoding="utf-8")
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", f"{name}.tex"],
            cwd=tmp_path, check=False, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{name}: pdflatex failed\n{done.stdout[-3000:]}"
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1000


def test_every_conformance_source_renders_in_every_format():
    for name, source in _conformance_sources().items():
        assert render_latex(source, name).startswith("\\begin{aligned}"), name
        assert "$$" in render_markdown(source, name)
        assert "\\[" in render_html(source, name)
