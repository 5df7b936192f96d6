"""The `%kokoyi` notebook magic (IPython / Jupyter).

`import kokoyi` inside a running IPython registers it (so does `%load_ext kokoyi`). A cell
whose first line is `%kokoyi` (a LaTeX comment, so the cell stays valid Kokoyi) or
`%%kokoyi` is Kokoyi source. Running it

1. shows the cell as rendered math (a 'text/latex' display, with the LaTeX as 'text/plain'),
2. compiles it with kokoyi.compile under the file name `<cell-N>` and registers its symbols,
3. prints, for each module the cell defines, the torch.nn.Module skeleton of kokoyi.template.

Options go on the magic line: `--no-render`, `--no-template`, `--show-python` (and their
opposites `--render`, `--template`, `--no-show-python`), `--filename NAME`. A Kokoyi error
fails the cell (so "Run all" stops there, as at any failing cell) and shows as the located
message alone (file:line:col, the source line, a caret), with no Python traceback; the
cell's line numbers are the ones the error gives.

A cell's first line is the magic line in both forms, so the compiled text is `%kokoyi`
followed by the cell body: line numbers in messages are the cell's own.
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys

MAGIC = "kokoyi"
_FIRST_LINE = re.compile(r"%kokoyi(?=\s|$)(.*)$")


def _option_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="%%kokoyi", add_help=True,
        description="Render, compile and register the Kokoyi source in this cell.")
    parser.add_argument("--render", action=argparse.BooleanOptionalAction, default=True,
                        help="show the cell as rendered math (default: on)")
    parser.add_argument("--template", action=argparse.BooleanOptionalAction, default=True,
                        help="print a torch.nn.Module skeleton for each new module (default: on)")
    parser.add_argument("--show-python", action=argparse.BooleanOptionalAction, default=False,
                        help="print the generated Python (default: off)")
    parser.add_argument("--filename", default=None,
                        help="the file name errors and generated code use (default: <cell-N>)")
    return parser


def parse_options(line: str) -> argparse.Namespace | None:
    """The magic line's options, or None after printing a usage error (or the help)."""
    parser = _option_parser()
    try:
        return parser.parse_args(shlex.split(line))
    except ValueError as err:  # unbalanced quotes
        print(f"%%kokoyi: {err}", file=sys.stderr)
    except SystemExit:  # argparse already printed the help or the usage error
        pass
    return None


def first_line_to_cell_magic(lines: list[str]) -> list[str]:
    """IPython input transformer: a cell starting with the line `%kokoyi` runs `%%kokoyi`."""
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start == len(lines):
        return lines
    m = _FIRST_LINE.match(lines[start].strip())
    if m is None:
        return lines
    options = m.group(1).strip()
    return [f"%%{MAGIC} {options}".rstrip() + "\n", *lines[start + 1:]]


def run_cell(line: str, cell: str, shell=None) -> None:
    """What running a `%kokoyi` cell does (see the module docstring)."""
    import kokoyi
    from kokoyi.errors import KokoyiError

    options = parse_options(line)
    if options is None:
        return
    number = getattr(shell, "execution_count", None)
    filename = options.filename or (f"<cell-{number}>" if number is not None else "<cell>")
    source = f"%{MAGIC}\n{cell}"
    if options.render:
        show_math(source, filename)
    try:
        unit = kokoyi.compile(source, filename=filename)
    except KokoyiError as err:
        # IPython shows what _render_traceback_ returns instead of a traceback, and still
        # marks the cell as failed.
        err._render_traceback_ = lambda lines=str(err).splitlines(): lines
        raise err from None
    if options.show_python:
        print(unit.python_source)
    if options.template:
        for key, value in unit.items():
            if getattr(value, "__kokoyi_spec__", None) is not None:
                print(f"# torch.nn.Module for {key}: copy it, then fill in the TODOs")
                print(kokoyi.template(key))


def show_math(source: str, filename: str) -> None:
    """Display the unit as LaTeX math; a cell that does not parse is left to the compiler's error."""
    from IPython.display import display

    from kokoyi.compiler.render import render_latex
    from kokoyi.errors import KokoyiError

    try:
        latex = render_latex(source, filename)
    except KokoyiError:
        return
    except Exception as err:  # noqa: BLE001 - a renderer bug must not stop the compile
        print(f"kokoyi: could not render this cell ({type(err).__name__}: {err})", file=sys.stderr)
        return
    if latex:
        display({"text/latex": f"$$\n{latex}\n$$", "text/plain": latex}, raw=True)


def register(shell) -> None:
    """Register the `%kokoyi` / `%%kokoyi` magic and the first-line transformer (idempotent)."""

    def kokoyi_magic(line: str, cell: str | None = None):
        if cell is None:
            print("%kokoyi must be the first line of a cell, with the Kokoyi source below it "
                  "(or start the cell with %%kokoyi)", file=sys.stderr)
            return None
        return run_cell(line, cell, shell)

    kokoyi_magic.__doc__ = _option_parser().format_help()
    shell.register_magic_function(kokoyi_magic, magic_kind="line_cell", magic_name=MAGIC)
    transformers = shell.input_transformers_cleanup
    if not any(getattr(t, "__name__", "") == first_line_to_cell_magic.__name__ for t in transformers):
        transformers.insert(0, first_line_to_cell_magic)


load_ipython_extension = register
