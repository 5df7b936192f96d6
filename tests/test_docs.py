"""The documentation runs: every Kokoyi and Python snippet in docs/ is checked.

For each page under docs/, in order, with a fresh kokoyi.symbol and one Python namespace:

- a ```latex block is compiled with kokoyi.compile. A block written
  ```{.latex .error raises=KokoyiNameError match="already defined" at=3:3} must fail to
  compile with that error class (default KokoyiError), text (case-insensitive substring)
  and 1-based line:column. A block with `file=NAME` is also written to NAME in the
  page's working directory (a fresh temporary folder), so later Python can load it.
- a ```python block with `>>>` prompts is run as a doctest (ELLIPSIS and
  NORMALIZE_WHITESPACE on); any other ```python block is executed, unless it is marked
  ```{.python .norun}. `requires=gymnasium` skips the page's remaining Python when that
  module is not installed. `xfail="why"` marks a block that shows documented behaviour the
  compiler does not have yet (a known bug): the page's test is then an expected failure,
  and it fails outright once the block passes, so the marker is removed with the fix.
- a ```console block is a `kyic` session: each `$ kyic ...` line runs in-process
  (kokoyi.cli.main) in the page's folder and its standard output and error must
  match the lines under it (`...` matches anything); `$ echo $?` shows the last exit
  status. Install commands go in ```bash blocks, which are not run.
- text, bash, yaml and toml blocks are not run; the generated parts of pages are compared
  with their generators in scripts/gen_docs_tables.py.

Plus: `mkdocs build --strict` succeeds (skipped when mkdocs is not installed).
"""
from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    classes: set[str] = field(default_factory=set)
    attrs: dict[str, str] = field(default_factory=dict)
    body: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_info(info: str) -> tuple[str, set[str], dict[str, str]]:
    """`latex` or `{.latex .error raises=X match="..."}` -> (lang, classes, attrs)."""
    info = info.strip()
    if not info.startswith("{"):
        return (info.split()[0] if info else ""), set(), {}
    assert info.endswith("}"), f"unclosed attribute list: {info}"
    lang, classes, attrs = "", set(), {}
    for token in shlex.split(info[1:-1]):
        if token.startswith("."):
            if not lang:
                lang = token[1:]
            else:
                classes.add(token[1:])
        elif "=" in token:
            key, value = token.split("=", 1)
            attrs[key] = value
        else:
            raise AssertionError(f"bad token {token!r} in fence attributes {info!r}")
    return lang, classes, attrs


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        lang, classes, attrs = parse_info(m["info"])
        indent = len(m["indent"])
        body = "".join(line[indent:] if line[:indent].strip() == "" else line
                       for line in m["body"].splitlines(keepends=True))
        out.append(Block(page, text.count("\n", 0, m.start()) + 1, lang, classes, attrs, body))
    return out


# ---- running a page ------------------------------------------------------------------------------

def compile_block(kokoyi, block: Block, cwd: Path) -> None:
    filename = block.attrs.get("file", block.where)
    if "file" in block.attrs:
        (cwd / block.attrs["file"]).write_text(block.body, encoding="utf-8")
    if "error" not in block.classes:
        try:
            kokoyi.compile(block.body, filename=filename)
        except Exception as err:  # noqa: BLE001 - report the snippet's place in the docs
            pytest.fail(f"{block.where}: this Kokoyi snippet does not compile:\n{err}\n---\n{block.body}")
        return
    want = block.attrs.get("raises", "KokoyiError")
    try:
        kokoyi.compile(block.body, filename=filename)
    except kokoyi.KokoyiError as err:
        kinds = [c.__name__ for c in type(err).__mro__]
        text = str(err)
        assert want in kinds, f"{block.where}: expected {want}, got {type(err).__name__}:\n{text}"
        match = block.attrs.get("match")
        assert match is None or match.lower() in text.lower(), \
            f"{block.where}: the error text lacks {match!r}:\n{text}"
        at = block.attrs.get("at")
        if at is not None:
            line, column = (int(v) for v in at.split(":"))
            assert (err.line, err.column) == (line, column), \
                f"{block.where}: expected the error at {at}, got {err.line}:{err.column}:\n{text}"
        return
    except Exception as err:  # noqa: BLE001
        pytest.fail(f"{block.where}: expected {want}, got a non-Kokoyi {type(err).__name__}: {err}")
    pytest.fail(f"{block.where}: this snippet is documented as an error ({want}) but it compiled:\n{block.body}")


def run_python(block: Block, globs: dict) -> None:
    if ">>>" in block.body:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(block.body, globs, block.where, str(block.page), block.line)
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        runner = doctest.DocTestRunner(optionflags=flags)
        out = io.StringIO()
        runner.run(test, out=out.write, clear_globs=False)
        globs.update(test.globs)  # DocTest copies its globals; later blocks see these names
        assert runner.failures == 0, f"{block.where}: doctest failed\n{out.getvalue()}"
        return
    try:
        exec(compile(block.body, block.where, "exec"), globs)  # noqa: S102 - our own docs
    except Exception as err:  # noqa: BLE001
        pytest.fail(f"{block.where}: this Python snippet raised {type(err).__name__}: {err}\n---\n{block.body}")


def run_console(block: Block) -> None:
    """Run a kyic session and compare its output with the block's."""
    from kokoyi import cli
    steps: list[tuple[str, list[str]]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"{block.where}: a console block must start with a `$ ` command line"
            steps[-1][1].append(line)
    checker = doctest.OutputChecker()
    status = None
    for command, expected in steps:
        argv = shlex.split(command)
        if argv == ["echo", "$?"]:
            got = f"{status}\n"
        else:
            assert argv[0] == "kyic", f"{block.where}: console blocks hold kyic sessions, not `{command}`"
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                try:
                    status = cli.main(argv[1:])
                except SystemExit as exit_:
                    status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            got = out.getvalue()
        want = "\n".join(line.rstrip() for line in expected).strip("\n") + "\n"
        got = "\n".join(line.rstrip() for line in got.splitlines()).strip("\n") + "\n"
        if want == "\n" and got == "\n":
            continue
        assert checker.check_output(want, got, doctest.ELLIPSIS), \
            f"{block.where}: `$ {command}` printed\n{got}\nbut the page shows\n{want}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_snippets_run(page, tmp_path, monkeypatch):
    import kokoyi

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KOKOYI_CACHE_DIR", str(tmp_path / "cache"))  # kokoyi.load's code cache
    kokoyi.symbol.clear()
    globs: dict = {"__name__": "__docs__"}
    skip_python = None
    known_bugs = []
    with contextlib.ExitStack() as stack:
        stack.callback(kokoyi.symbol.clear)
        for block in blocks(page):
            if block.lang == "latex":
                compile_block(kokoyi, block, tmp_path)
            elif block.lang == "console":
                run_console(block)
            elif block.lang == "python":
                needs = block.attrs.get("requires")
                if needs and importlib.util.find_spec(needs) is None:
                    skip_python = f"{block.where} needs {needs}"
                if skip_python or "norun" in block.classes:
                    continue
                if "xfail" not in block.attrs:
                    run_python(block, globs)
                    continue
                try:
                    run_python(block, globs)
                except (AssertionError, pytest.fail.Exception) as err:
                    known_bugs.append(f"{block.where}: {block.attrs['xfail']}\n{err}")
                else:
                    pytest.fail(f"{block.where} is marked xfail ({block.attrs['xfail']}) but passes now: "
                                "remove the marker")
    if known_bugs:
        pytest.xfail("known compiler bugs shown by the docs:\n" + "\n".join(known_bugs))
    if skip_python:
        pytest.skip(skip_python)


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [str(p.relative_to(DOCS)) for p in PAGES if str(p.relative_to(DOCS)) not in nav]
    assert not missing, f"pages missing from mkdocs.yml nav: {missing}"


def test_fences_are_known():
    """A typo in a fence (```latx, .eror) would silently skip a snippet."""
    known_langs = {"latex", "python", "text", "bash", "console", "yaml", "toml"}
    known_classes = {"error", "norun", "output"}
    known_attrs = {"raises", "match", "at", "file", "requires", "xfail"}
    for page in PAGES:
        for block in blocks(page):
            assert block.lang in known_langs, f"{block.where}: unknown fence language {block.lang!r}"
            assert block.classes <= known_classes, f"{block.where}: unknown classes {block.classes}"
            assert set(block.attrs) <= known_attrs, f"{block.where}: unknown attributes {block.attrs}"
            if block.classes & {"error"}:
                assert block.lang == "latex", f"{block.where}: only Kokoyi blocks can be errors"


# ---- the notebook page, in IPython -------------------------------------------------------------

NOTEBOOK_DRIVER = r"""
import contextlib, io, json, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
displays = []
shell.display_pub.publish = lambda data, *a, **k: displays.append(sorted(data))
results = []
for cell in json.load(sys.stdin):
    out = io.StringIO()
    del displays[:]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        r = shell.run_cell(cell, store_history=True)
    results.append({"output": out.getvalue(), "displays": list(displays),
                    "error": repr(r.error_in_exec or r.error_before_exec or "") if not r.success else ""})
print(json.dumps(results))
"""


def test_notebook_page_runs_in_ipython():
    """The notebook page's cells, run in order in an IPython shell; `.output` blocks are what they print."""
    if importlib.util.find_spec("IPython") is None:
        pytest.skip("IPython is not installed (pip install -e .[notebook])")
    import json

    cells, expected = [], {}
    for block in blocks(DOCS / "notebook.md"):
        if block.lang in ("latex", "python"):
            cells.append(block)
        elif "output" in block.classes:
            assert cells, f"{block.where}: an output block must follow a cell"
            expected[len(cells) - 1] = block
    assert any(c.body.startswith("%kokoyi") for c in cells) and any(c.body.startswith("%%kokoyi") for c in cells)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", NOTEBOOK_DRIVER], input=json.dumps([c.body for c in cells]),
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    checker = doctest.OutputChecker()
    for i, (cell, result) in enumerate(zip(cells, results)):
        if "error" in cell.classes:  # the cell fails, with the error the page names
            raises = cell.attrs.get("raises", "KokoyiError")
            assert result["error"].startswith(raises + "("), f"{cell.where}: expected {raises}, got {result['error']!r}"
            assert "Traceback" not in result["output"], f"{cell.where}: a traceback was shown\n{result['output']}"
        else:
            assert not result["error"], f"{cell.where}: the cell raised {result['error']}\n{result['output']}"
        if cell.lang == "latex":
            first = cell.body.splitlines()[0]
            renders = "--no-render" not in first
            assert (["text/latex", "text/plain"] in result["displays"]) == renders, \
                f"{cell.where}: typeset math shown: {result['displays']}, expected {renders}"
        if i in expected:
            want = expected[i].body.strip("\n") + "\n"
            got = result["output"].strip("\n") + "\n"
            assert checker.check_output(want, got, doctest.ELLIPSIS), \
                f"{expected[i].where}: the cell printed\n{got}\nbut the page shows\n{want}"
        elif cell.lang == "latex":
            assert "--no-template" in cell.body.splitlines()[0] or not result["output"].strip() or \
                "torch.nn.Module for" in result["output"], f"{cell.where}: unexpected output {result['output']}"


# ---- generated parts of pages --------------------------------------------------------------------

def _generator():
    spec = importlib.util.spec_from_file_location("gen_docs_tables", ROOT / "scripts" / "gen_docs_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_sections_are_up_to_date():
    gen = _generator()
    stale = gen.stale_sections()
    assert not stale, ("generated docs are out of date; run `.venv/bin/python scripts/gen_docs_tables.py`:\n"
                       + "\n".join(stale))


def test_every_builtin_is_documented():
    from kokoyi.compiler import builtins

    page = (DOCS / "reference" / "builtins.md").read_text(encoding="utf-8")
    for fn in builtins.FUNCTIONS.values():
        assert f"`{fn.source}`" in page, fn.name
    for name in builtins.REDUCTIONS:
        assert f"`\\{name}(x)`" in page or f"`\\{name}`" in page, name
    for name in builtins.CONSTANTS:
        assert f"`{name}`" in page, name


# ---- docstrings of the public API ---------------------------------------------------------------

def test_public_api_docstrings():
    """Every public name has a docstring, and the examples in them run."""
    import torch

    import kokoyi

    public = [kokoyi.compile, kokoyi.load, kokoyi.template, kokoyi.set_rt_device, kokoyi.nn.MLP,
              kokoyi.KokoyiError, kokoyi.KokoyiSyntaxError, kokoyi.KokoyiNameError, kokoyi.KokoyiTypeError,
              kokoyi.KokoyiRuntimeError, type(kokoyi.symbol), kokoyi]
    for obj in public:
        assert (obj.__doc__ or "").strip(), f"{obj!r} has no docstring"
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    for obj in public:
        for test in finder.find(obj, globs={"kokoyi": kokoyi, "torch": torch}):
            runner.run(test, out=out.write)
    assert runner.tries > 0 and runner.failures == 0, out.getvalue()


# ---- the site builds -----------------------------------------------------------------------------

def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e .[docs])")
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    if not hooks.mathjax_installable():
        pytest.skip("the site serves MathJax, installed with npm on the first build, and npm is not installed")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "js" / "mathjax" / "tex-chtml.js").is_file()  # served by the site, not a CDN
    language = (tmp_path / "site" / "reference" / "language" / "index.html").read_text(encoding="utf-8")
    # The typeset equations under an example: what the notebook display shows for it.
    assert "\\textbf{Module}\\ \\mathit{AddOne}(x)" in language
    assert language.count('class="kokoyi-math') > 30
    # No page has TeX in its prose that arithmatex left for nobody to typeset (a `$` it did
    # not take as math, say): outside code and the marked math, no TeX macro remains.
    raw_tex = re.compile(r"\\(frac|sum|sqrt|gamma|sigma|mathit|leftarrow|left|begin)\b")
    for path in sorted((tmp_path / "site").rglob("*.html")):
        text = re.sub(r"<(pre|code|script|title)\b.*?</\1>", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        text = re.sub(r'<(span|div) class="[^"]*\barithmatex\b[^"]*"[^>]*>.*?</\1>', "", text, flags=re.DOTALL)
        found = raw_tex.search(text)
        assert found is None, f"{path.relative_to(tmp_path)}: raw TeX in prose: {text[found.start() - 100:found.end() + 60]!r}"


def test_hook_typesets_each_kokoyi_example():
    """scripts/mkdocs_hooks.py puts the notebook's equations after each example, not after errors."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e .[docs])")
    from kokoyi.compiler.render import render_latex

    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    good = "\\Module{Lt}{x}\n  \\Return \\mathbb{1}[x < 1] \\\\\n\\EndModule\n"
    page = ("Text.\n\n```latex\n" + good + "```\n\n"
            "```{.latex .error raises=KokoyiSyntaxError}\ny \\gets (2 \\\\\n```\n\n"
            "```latex\n%kokoyi --no-render\nz \\gets 1 \\\\\n```\n\n```python\nx = 1\n```\n")
    out = hooks.add_rendered_math(page, "docs/t.md")
    assert out.count('class="kokoyi-math') == 1
    block = out.split("```latex\n" + good + "```\n\n", 1)[1]
    expected = render_latex(good).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert block.startswith('<div class="kokoyi-math arithmatex"') and expected in block
    assert "x &lt; 1" in block  # escaped, so the HTML stays HTML
    fence = "```latex\n" + good + "```"
    assert out == page.replace(fence, fence + "\n\n" + hooks.typeset_block(render_latex(good)) + "\n")
