#!/usr/bin/env python
"""Regenerate the parts of docs/ that are copied from the code, so they cannot drift.

    .venv/bin/python scripts/gen_docs_tables.py           # rewrite the generated sections
    .venv/bin/python scripts/gen_docs_tables.py --check   # exit 1 if any section is stale

A generated section of a page sits between two markers:

    <!-- BEGIN GENERATED: NAME (scripts/gen_docs_tables.py) -->
    ...
    <!-- END GENERATED: NAME -->

Sections and their sources:

    builtins-*       docs/reference/builtins.md   kokoyi/compiler/builtins.py (the built-in table)
    passes           docs/architecture.md         kokoyi/compiler/pipeline.py (PASSES)
    cli-*            docs/cli.md                  `kyic --help` and each subcommand's --help
    notebook-options docs/notebook.md             the %kokoyi magic's option parser

Help texts depend on the Python version's argparse, so they are generated with a fixed
width and the version is recorded; tests/test_docs.py compares them exactly only under
that same Python version. A section whose source does not exist yet (the CLI or the magic
before they land) is left as written by hand.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HELP_COLUMNS = 90
PY = f"{sys.version_info.major}.{sys.version_info.minor}"

BEGIN = re.compile(r"<!-- BEGIN GENERATED: (?P<name>[\w-]+) \(scripts/gen_docs_tables\.py\)(?: python=(?P<py>[\d.]+))? -->\n")


def END(name: str) -> str:
    return f"<!-- END GENERATED: {name} -->"


# ---- built-ins ---------------------------------------------------------------------------------

# How each built-in is shown in the table and in the generated example module. Inputs of
# that module: x and y are float vectors (y positive), k is an integer label.
EXAMPLES = {
    "exp": r"\exp(x)", "Exp": r"\Exp{x}", "log": r"\log(y)", "ln": r"\ln y", "sin": r"\sin x",
    "cos": r"\cos(x)", "tan": r"\tan(x)", "sinh": r"\sinh(x)", "cosh": r"\cosh(x)", "tanh": r"\tanh(x)",
    "abs": r"\abs(x)", "sign": r"\sign(x)", "ReLU": r"\ReLU(x)", "Sigmoid": r"\Sigmoid(x)",
    "Softplus": r"\Softplus(x)", "GELU": r"\GELU(x)", "maximum": r"\maximum(x, y)",
    "minimum": r"\minimum(x, 0)", "clip": r"\clip(x, -1, 1)", "Softmax": r"\Softmax(x)",
    "LogSoftmax": r"\LogSoftmax(x)", "Mean": r"\Mean(x)", "Var": r"\Var(x)", "Std": r"\Std(x)",
    "LogSumExp": r"\LogSumExp(x)", "OneHot": r"\OneHot(k, |x|)", "Concat": r"\Concat(x, y)",
    "StopGrad": r"\StopGrad(x)", "CrossEntropy": r"\CrossEntropy(x, k)", "MSE": r"\MSE(x, y)",
    "SmoothL1": r"\SmoothL1(x, y)", "det": r"\det(A)", "Tr": r"\Tr A", "tr": r"\operatorname{tr}(A)",
    "diag": r"\operatorname{diag}(x)", "\\mathbf{I}": r"\mathbf{I}_{3}",
}
REDUCTION_EXAMPLES = {"sum": r"\sum(x)", "prod": r"\prod(y)", "max": r"\max(x)", "min": r"\min(x)",
                      "argmax": r"\argmax(x)", "argmin": r"\argmin(x)"}
BIG_SPELLING = {"mean": r"\mathbb{E}"}


def _example(f) -> str:
    if f.name in EXAMPLES:
        return EXAMPLES[f.name]
    args = ["x", "y", "x", "y"][: max(f.min_args, 1)]
    return f"\\{f.name}({', '.join(args)})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    """Inline code for a table cell (Markdown tables do not split cells inside code)."""
    return f"`{text}`"


def builtins_functions() -> str:
    from kokoyi.compiler import builtins as B

    rows = ["| Kokoyi | arguments | renders as | PyTorch meaning | per-sample result | example |",
            "| --- | --- | --- | --- | --- | --- |"]
    first_by_primitive: dict[str, str] = {}
    for f in B.FUNCTIONS.values():
        meaning = f.meaning
        alias = first_by_primitive.setdefault(f.primitive, f.source)
        if alias != f.source:
            meaning = f"same as `{alias}`: {meaning}"
        rows.append(f"| `{f.source}` | {f.arity_text()} | {_code(f.render)} | {_cell(meaning)} | "
                    f"{B.RANK_RULES.get(f.rank, f.rank)} | {_code(_example(f))} |")
    return "\n".join(rows) + "\n"


def builtins_reductions() -> str:
    from kokoyi.compiler import builtins as B

    rows = ["| Kokoyi | renders as | core-IR primitive | per-sample result | example |",
            "| --- | --- | --- | --- | --- |"]
    for name, (runtime, render) in B.REDUCTIONS.items():
        result = "an integer index into the flattened value" if name.startswith("arg") else "a scalar"
        example = REDUCTION_EXAMPLES.get(name, "\\" + name + "(x)")
        rows.append(f"| `\\{name}(x)` | `{render}` | `{runtime}` | {result} | {_code(example)} |")
    return "\n".join(rows) + "\n"


def builtins_big_operators() -> str:
    from kokoyi.compiler import builtins as B

    rows = ["| Kokoyi | renders as | core IR | empty range |",
            "| --- | --- | --- | --- |"]
    for name, (empty, render) in B.BIG_OPERATORS.items():
        runtime = f"Reduce({name})"
        spelling = BIG_SPELLING.get(name, f"\\{name}")
        empty_text = f"`{empty}`" if empty is not None else "run-time error naming the source position"
        rows.append(f"| `{spelling}_{{i=a}}^{{b}} body` | `{render}` | `{runtime}` | {empty_text} |")
    return "\n".join(rows) + "\n"


def builtins_constants() -> str:
    from kokoyi.compiler import builtins as B

    rows = ["| Kokoyi | value (Python) |", "| --- | --- |"]
    for name, value in B.CONSTANTS.items():
        rows.append(f"| `{name}` | `{value}` |")
    return "\n".join(rows) + "\n"


def builtins_example() -> str:
    from kokoyi.compiler import builtins as B

    # Built-ins the back end in use does not compile yet (runtime None, issue 13) join when it does.
    exprs = [_example(f) for f in B.FUNCTIONS.values() if f.runtime is not None]
    exprs += [REDUCTION_EXAMPLES.get(n, "\\" + n + "(x)") for n in B.REDUCTIONS]
    exprs += [r"\max(x, y, 0)", r"\min(x, y)"]
    for name in B.BIG_OPERATORS:
        exprs.append(BIG_SPELLING.get(name, "\\" + name) + "_{i=0}^{|x|-1} x[i]")
    exprs += [name for name in B.CONSTANTS]
    lines = ["```latex", r"\Module{EveryBuiltin}{x, y, k \in \mathbb{Z}}"]
    for i, e in enumerate(exprs, 1):
        lines.append(f"  r_{{{i}}} \\gets {e} \\\\")
    lines.append("  \\Return " + ", ".join(f"r_{{{i}}}" for i in range(1, len(exprs) + 1)) + " \\\\")
    lines += [r"\EndModule", "```"]
    return "\n".join(lines) + "\n"


# ---- the pass list -----------------------------------------------------------------------------

def passes() -> str:
    from kokoyi.compiler.pipeline import CALL_PASSES, PASSES

    rows = ["| # | pass | what it does | where it lives |", "| --- | --- | --- | --- |"]
    for i, p in enumerate(PASSES + CALL_PASSES, 1):
        try:
            src = inspect.getsource(p.run) if p.run is not None else ""
        except (OSError, TypeError):
            src = ""
        # (the module a pass imports, or looks up: kokoyi.compiler.lazy.module)
        m = re.search(r"from (kokoyi\.[\w.]+) import|lazy\.module\(\"(kokoyi\.[\w.]+)\"\)", src)
        where = f"`{p.where}`" if p.where else f"`{(m.group(1) or m.group(2)).replace('.', '/')}.py`" if m else \
            "`kokoyi/compiler/pipeline.py`"
        when = " (at call time)" if p in CALL_PASSES else ""
        rows.append(f"| {i} | `{p.name}`{when} | {_cell(p.doc)} | {where} |")
    return "\n".join(rows) + "\n"


# ---- help texts --------------------------------------------------------------------------------

@contextlib.contextmanager
def _columns(n: int):
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _cli_parser() -> argparse.ArgumentParser | None:
    try:
        from kokoyi import cli
    except ImportError:
        return None
    return cli.build_parser() if hasattr(cli, "build_parser") else None


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subcommands here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_block(command: str, text: str) -> str:
    return f"```text\n$ {command}\n{text.rstrip()}\n```\n"


def cli_section(sub: str | None) -> Callable[[], str | None]:
    def make() -> str | None:
        parser = _cli_parser()
        if parser is None:
            return None
        with _columns(HELP_COLUMNS):
            if sub is None:
                return _help_block("kyic --help", parser.format_help())
            subs = _subparsers(parser)
            if sub not in subs:
                return f"*(kyic has no `{sub}` subcommand)*\n"
            return _help_block(f"kyic {sub} --help", subs[sub].format_help())
    make.__name__ = f"cli_{sub or 'main'}"
    return make


def cli_version() -> str | None:
    parser = _cli_parser()
    if parser is None:
        return None
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parser.parse_args(["--version"])
    return _help_block("kyic --version", out.getvalue())


def notebook_options() -> str | None:
    try:
        from kokoyi import notebook
    except ImportError:
        return None
    make = getattr(notebook, "_option_parser", None)
    if make is None:
        return None
    with _columns(HELP_COLUMNS):
        return _help_block("%kokoyi --help", make().format_help())


# ---- sections ----------------------------------------------------------------------------------

# name -> (page, generator, depends on the Python version)
SECTIONS: dict[str, tuple[str, Callable[[], str | None], bool]] = {
    "builtins-functions": ("reference/builtins.md", builtins_functions, False),
    "builtins-reductions": ("reference/builtins.md", builtins_reductions, False),
    "builtins-big-operators": ("reference/builtins.md", builtins_big_operators, False),
    "builtins-constants": ("reference/builtins.md", builtins_constants, False),
    "builtins-example": ("reference/builtins.md", builtins_example, False),
    "passes": ("architecture.md", passes, False),
    "cli-main": ("cli.md", cli_section(None), True),
    "cli-version": ("cli.md", cli_version, False),
    "cli-compile": ("cli.md", cli_section("compile"), True),
    "cli-check": ("cli.md", cli_section("check"), True),
    "cli-render": ("cli.md", cli_section("render"), True),
    "cli-template": ("cli.md", cli_section("template"), True),
    "cli-lsp": ("cli.md", cli_section("lsp"), True),
    "notebook-options": ("notebook.md", notebook_options, True),
}


def _find(text: str, name: str) -> tuple[re.Match, int] | None:
    for m in BEGIN.finditer(text):
        if m["name"] == name:
            end = text.find(END(name), m.end())
            if end < 0:
                raise SystemExit(f"section {name}: no `{END(name)}` marker")
            return m, end
    return None


def _begin(name: str, versioned: bool) -> str:
    py = f" python={PY}" if versioned else ""
    return f"<!-- BEGIN GENERATED: {name} (scripts/gen_docs_tables.py){py} -->\n"


def render(text: str, name: str) -> tuple[str, bool]:
    """(text with section `name` regenerated, whether it was generated at all)."""
    page, make, versioned = SECTIONS[name]
    found = _find(text, name)
    if found is None:
        raise SystemExit(f"docs/{page}: missing section marker for {name}")
    body = make()
    if body is None:
        return text, False
    m, end = found
    return text[: m.start()] + _begin(name, versioned) + body + text[end:], True


def stale_sections() -> list[str]:
    """Names of generated sections whose text differs from what the generators give now.

    A help text recorded under another Python version is not compared (argparse's layout
    changes between versions); the test reports it only under the recorded version.
    """
    stale = []
    for name, (page, _make, versioned) in SECTIONS.items():
        text = (DOCS / page).read_text(encoding="utf-8")
        found = _find(text, name)
        if found is None:
            stale.append(f"{page}: no section {name}")
            continue
        if versioned and found[0]["py"] not in (None, PY):
            continue
        new, generated = render(text, name)
        if generated and new != text:
            stale.append(f"{page}: section {name}")
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report stale sections (exit 1 if any)")
    args = ap.parse_args(argv)
    if args.check:
        stale = stale_sections()
        print("\n".join(stale) if stale else "generated docs are up to date")
        return 1 if stale else 0
    pages: dict[str, str] = {}
    for name, (page, _make, _v) in SECTIONS.items():
        text = pages.get(page) or (DOCS / page).read_text(encoding="utf-8")
        pages[page], generated = render(text, name)
        if not generated:
            print(f"{page}: {name} left as written (its source is not available)")
    for page, text in pages.items():
        path = DOCS / page
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
