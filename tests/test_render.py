"""The renderer (kokoyi.compiler.render): MathJax LaTeX, .tex documents, Markdown and HTML."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CONFORMANCE

from kokoyi.compiler.render import (
    TEX_PACKAGES,
    key_tex,
    number_tex,
    render_html,
    render_latex,
    render_markdown,
    render_tex_algorithms,
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


def test_round_two_constructs_render_as_written():
    latex = render_latex(r"""
\Module{G}{A, v, p}
  R \gets \begin{bmatrix} \cos\theta & 1 \\ 0 & \frac{1}{2} \end{bmatrix} \\
  \Return \log \det(A) + \log_2 p + \log_{10}(p) + \operatorname{tr}(A) + \Tr A, A^{-1} @ v,
      \operatorname{diag}(v) + \mathbf{I}_{3}, \begin{pmatrix} v \\ v \end{pmatrix} \\
\EndModule
""")
    assert r"R \leftarrow \begin{bmatrix} \cos \theta & 1 \\ 0 & \frac{1}{2} \end{bmatrix}" in latex
    assert r"\log \det(A) + \log_{2} p + \log_{10}(p) + \operatorname{tr}(A) + \operatorname{tr} A" in latex
    assert r"A^{-1} \cdot v" in latex
    assert r"\operatorname{diag}(v) + \mathbf{I}_{3}" in latex
    assert r"\begin{pmatrix} v \\ v \end{pmatrix}" in latex


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
    assert "\\Function{$\\mathit{PGLoss}$}{$\\mathit{logP}, \\allowbreak r;\\ \\gamma$}" in doc
    assert "\\KyState \\Return \\KyPiece{-\\bar{G_{t}}}\\penalty50\\KyPiece{{} \\circ \\mathit{logP}}" in doc
    assert "\\Comment{Discounted reward}" in doc
    assert "\\EndFunction" in doc and doc.rstrip().endswith("\\end{document}")


def _unbroken(tex_line: str) -> str:
    """A statement's \\KyPiece{...} pieces glued back into one formula."""
    glued = re.sub(r"\\penalty\d+", "", tex_line).replace("\\KyPiece{", "\x00")
    out, depth = [], 0
    for ch in glued:  # drop each piece's closing brace: the one that closes depth 1
        if ch == "\x00":
            depth = 1
            continue
        depth += (ch == "{") - (ch == "}")
        if depth or ch != "}":
            out.append(ch)
    return re.sub(r"\{\} |\\, ", "", "".join(out))


def test_long_statements_are_cut_into_pieces_that_spell_the_statement():
    source = r"""
\Function{MultiHead}{X, Z, M, W_Q, W_K, W_V, W_O}
  \Return \sum_{i=0}^{|W_Q|-1} Attention(X @ W_Q[i]^\top, Z @ W_K[i]^\top, Z @ W_V[i]^\top, M) @ W_O[i] \\
\EndFunction
y \gets f(a + b, \frac{c}{d}) - (e + g) \where f(u, v) \gets u * v, g \gets 2 \\
"""
    tex = render_tex_algorithms(source, "long.kyi")
    ret = next(line for line in tex.splitlines() if "\\Return" in line)
    # The cheapest breaks are at the outermost operator (a product costs 50); inside a
    # call's parentheses a comma costs less than an operator.
    assert "\\KyPiece{\\sum_{i=0}^{\\lvert W_{Q} \\rvert - 1} \\mathit{Attention}(X}\\penalty250" in ret
    assert "\\penalty100\\KyPiece{\\, Z}\\penalty250\\KyPiece{{} \\cdot W_{K}[i]^{\\top},}" in ret
    assert ret.endswith("\\penalty50\\KyPiece{{} \\cdot W_{O}[i]}")
    glued = render_latex(source).split("\\textbf{return}\\ ")[1].split(" \\\\")[0].replace(" ", "")
    assert _unbroken(ret.split("\\Return ", 1)[1]).replace(" ", "") == glued
    loose = next(line for line in tex.splitlines() if "\\KyPiece{y" in line).split("\\KyState ", 1)[1]
    assert _unbroken(loose).replace(" ", "") == (r"y\leftarrowf\left(a+b,\frac{c}{d}\right)-(e+g)"
                                                 r"\quad\text{where}\f(u,v)\leftarrowu\circv,\g\leftarrow2")
    # Brackets that grow around a fraction are one piece with all they hold.
    assert loose.startswith("\\KyPiece{y \\leftarrow f\\left( a + b, \\frac{c}{d} \\right)}\\penalty0")
    # `\\where` starts a cheap break; inside a binding an operator costs as in parentheses.
    assert "\\penalty0\\KyPiece{\\quad \\text{where}\\ f(u, v) \\leftarrow u}\\penalty250\\KyPiece{{} \\circ v,}" in loose


def test_tex_escapes_comment_text():
    doc = render_tex_document(EVERYTHING, "everything.kyi")
    assert r"\Comment{50\% of x\_1 \& \#2 \textasciitilde{} \^{}}" in doc
    assert r"\mathbf{1}[" in doc and r"\mathbb{1}" not in doc


def _conformance_sources():
    sources = {"seed_policy": SEED_POLICY, "seed_pgloss": SEED_PGLOSS, "everything": EVERYTHING}
    for path in sorted((CONFORMANCE / "cases").glob("*.py")):
        if path.stem.startswith("error_") or path.stem in sources:
            continue
        sources[path.stem] = case_source(path.stem)
    return sources


EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*/*.kyi"))


def _pdflatex(tmp_path, name: str, document: str) -> str:
    """Compile document with pdflatex in tmp_path; the log."""
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is not installed: .ci/run installs it (texlive-latex-base, texlive-science)")
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-base texlive-science)")
    (tmp_path / f"{name}.tex").write_text(document, encoding="utf-8")
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", f"{name}.tex"],
        cwd=tmp_path, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{name}: pdflatex failed\n{done.stdout[-3000:]}"
    assert (tmp_path / f"{name}.pdf").stat().st_size > 1000
    return (tmp_path / f"{name}.log").read_text(encoding="latin-1")


def _overfull(log: str) -> list[str]:
    """The log's `Overfull \\hbox` reports, each with the material that did not fit."""
    return re.findall(r"^Overfull \\hbox.*\n(?:.+\n)*", log, flags=re.MULTILINE)


def test_tex_packages_are_what_the_docs_name():
    cli_page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    for package in TEX_PACKAGES:
        assert f"`{package}`" in cli_page, package
    for debian in ("texlive-latex-base", "texlive-science"):
        assert debian in cli_page


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_renders_to_a_pdf_without_overfull_lines(tmp_path, path):
    """kyic render --format tex of each example: pdflatex compiles it and no line runs off the page."""
    source = path.read_text(encoding="utf-8")
    log = _pdflatex(tmp_path, path.stem, render_tex_document(source, f"examples/{path.parent.name}/{path.name}"))
    assert not _overfull(log), f"{path.name}: lines wider than the page:\n" + "\n".join(_overfull(log))


def test_overfull_lines_are_detected(tmp_path):
    """The check above can fail: a formula too wide for the page and nothing to break it."""
    log = _pdflatex(tmp_path, "wide", "\\documentclass{article}\\begin{document}\n$"
                    + " ".join(f"x_{{{i}}}" for i in range(200)) + "$\n\\end{document}\n")
    assert len(_overfull(log)) == 1


def test_pdflatex_compiles_the_rendered_documents(tmp_path):
    """Every construct of the language, and every conformance case, through pdflatex."""
    for name, source in _conformance_sources().items():
        try:
            document = render_tex_document(source, f"{name}.kyi")
        except KokoyiError:
            continue  # a case the compiler cannot parse yet fails the test below, with its message
        log = _pdflatex(tmp_path, name, document)
        assert not _overfull(log), f"{name}: lines wider than the page:\n" + "\n".join(_overfull(log))


def test_every_conformance_source_renders_in_every_format():
    for name, source in _conformance_sources().items():
        assert render_latex(source, name).startswith("\\begin{aligned}"), name
        assert "$$" in render_markdown(source, name)
        assert "\\[" in render_html(source, name)
