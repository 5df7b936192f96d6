"""`kyic`: the Kokoyi compiler on the command line.

    kyic compile FILE.kyi [-o OUT.py] [--dump-after PASS]
    kyic compile FILE.kyi --standalone [--batch-level NAME=L1,...] [--input-rank NAME.INPUT=R]
                 [--param NAME.PARAM=KIND] [-o OUT.py]
    kyic check FILE.kyi... [--format text|json]
    kyic render FILE.kyi [--format tex|md|html] [-o OUT]
    kyic template FILE.kyi [NAME]
    kyic lsp

Each file compiles in a fresh environment (no earlier units), so the output depends only on
the file and the compiler and is byte-identical from run to run. Exit status: 0 success,
1 a Kokoyi error (its located message on stderr, never a traceback) or an unreadable file,
2 a usage error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A problem to report in one line and exit 1 (missing file, unknown module)."""


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, expected a .kyi file") from None
    except UnicodeDecodeError as err:
        raise CliError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise CliError(f"{path}: {err.strerror or err}") from None


def _write(text: str, out: str | None) -> None:
    if out is None or out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as err:
        raise CliError(f"{out}: cannot write: {err.strerror or err}") from None


def _compile(path: str, dump_after: str | None = None):
    """The unit's pipeline state, compiled with an empty environment."""
    from kokoyi.compiler.pipeline import compile_unit

    return compile_unit(_read(path), path, env={}, global_names={}, dump_after=dump_after, out=sys.stdout,
                        stop_after=dump_after)


def _module_table(state):
    """A private symbol table holding the unit's definitions (kokoyi.symbol is not touched)."""
    from kokoyi.runtime.loader import install
    from kokoyi.runtime.symbols import SymbolTable

    table = SymbolTable()
    install(state, table)
    return table


def _module_keys(table) -> list[str]:
    return [key for key, value in table.items() if getattr(value, "__kokoyi_spec__", None) is not None]


def templates_comment(state) -> str:
    """The nn.Module templates of a compiled unit, as a comment block for the end of its .py file."""
    from kokoyi.runtime.loader import template

    table = _module_table(state)
    keys = _module_keys(table)
    if not keys:
        return ""
    lines = ["", "", "# ---- torch.nn.Module templates: copy one, uncomment it and fill in the TODOs ----",
             "# import kokoyi, torch"]
    for key in keys:
        python_name = table._python_names()[key]
        lines.append("#")
        text = template(key, table=table, forward=f"{python_name}  # the forward function above")
        lines.extend(("# " + line).rstrip() for line in text.splitlines())
    return "\n".join(lines) + "\n"


# ---- subcommands ---------------------------------------------------------------------------


def cmd_compile(args) -> int:
    from kokoyi.compiler.pipeline import CALL_PASS_NAMES

    call_pass = args.dump_after in CALL_PASS_NAMES
    if not (args.standalone or call_pass) and (args.batch_level or args.input_rank or args.param):
        raise CliError("--batch-level, --input-rank and --param go with --standalone or --dump-after "
                       f"{' or '.join(CALL_PASS_NAMES)}")
    if call_pass:
        from kokoyi.runtime.dumps import dump_call_pass

        _write(dump_call_pass(_compile(args.file), _signatures(args), args.dump_after), args.output)
        return EXIT_OK
    state = _compile(args.file, args.dump_after)
    if args.dump_after is not None:
        return EXIT_OK
    if args.standalone:
        from kokoyi.standalone import standalone_source

        _write(standalone_source(state, _signatures(args)), args.output)
        return EXIT_OK
    code = state.generated.code
    if not code.endswith("\n"):
        code += "\n"
    _write(code + templates_comment(state), args.output)
    return EXIT_OK


def _signatures(args) -> dict:
    """--batch-level, --input-rank and --param options as kokoyi.standalone.Signature per module."""
    from kokoyi.standalone import Signature

    def split(option: str, text: str, dotted: bool):
        name, eq, value = text.partition("=")
        owner, dot, item = name.partition(".")
        if not eq or not value or not owner or (dotted and not (dot and item)):
            form = "NAME.ITEM=VALUE" if dotted else "NAME=L1,L2,..."
            raise CliError(f"{option} {text!r}: expected {form}")
        return owner, item, value

    signatures: dict = {}
    for text in args.batch_level:
        owner, _, value = split("--batch-level", text, False)
        try:
            levels = tuple(int(v) for v in value.split(","))
        except ValueError:
            raise CliError(f"--batch-level {text!r}: the levels are integers (0 or 1), comma-separated") from None
        signatures[owner] = Signature(levels)
    for option, given, attr in (("--input-rank", args.input_rank, "input_ranks"), ("--param", args.param, "params")):
        for text in given:
            owner, item, value = split(option, text, True)
            sig = signatures.get(owner)
            if sig is None:  # kinds of a module that is not batched itself (a nested module's)
                sig = signatures[owner] = Signature(())
            getattr(sig, attr)[item] = value
    return signatures


def cmd_check(args) -> int:
    from kokoyi.errors import KokoyiError

    status = EXIT_OK
    for path in args.files:
        try:
            _compile(path)
        except KokoyiError as err:
            _report(args, path, err)
            status = EXIT_ERROR
        except CliError as err:
            _report(args, path, err)
            status = EXIT_ERROR
        else:
            if args.verbose and args.format == "text":
                print(f"{path}: ok")
    return status


def _report(args, path: str, err: Exception) -> None:
    """A `check` diagnostic: the located message on stderr, or one JSON line on stdout."""
    from kokoyi.errors import KokoyiError

    if args.format == "text":
        print(str(err) if isinstance(err, KokoyiError) else f"kyic: {err}", file=sys.stderr)
        return
    import json

    from kokoyi.compiler.diagnostics import diagnostic

    if isinstance(err, KokoyiError):
        record = diagnostic(err, path)
    else:  # the file could not be read: no position
        message = str(err).removeprefix(f"{path}: ")
        record = {"file": path, "line": None, "column": None, "end_line": None, "end_column": None,
                  "severity": "error", "message": message, "code": "io"}
    print(json.dumps(record, ensure_ascii=False), flush=True)


def cmd_render(args) -> int:
    from kokoyi.compiler.render import FORMATS

    _write(FORMATS[args.format](_read(args.file), args.file), args.output)
    return EXIT_OK


def cmd_template(args) -> int:
    from kokoyi.runtime.loader import template

    table = _module_table(_compile(args.file))
    keys = _module_keys(table)
    if args.name is not None:
        key = table.canonical(args.name)
        if key not in keys:
            raise CliError(f"{args.file}: no module {args.name!r}; modules: {', '.join(keys) or 'none'}")
        keys = [key]
    _write("\n".join(template(key, table=table) for key in keys), None)
    return EXIT_OK


def cmd_lsp(args) -> int:
    try:
        from kokoyi.editors.lsp import main as serve
    except ImportError as err:  # pygls is in the `editors` extra
        raise CliError(f"the language server needs pygls ({err}): pip install 'kokoyi[editors]'") from None
    return serve()


# ---- argument parsing ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from kokoyi import __version__
    from kokoyi.compiler.pipeline import CALL_PASS_NAMES, CALL_PASSES, PASS_NAMES, PASSES

    parser = argparse.ArgumentParser(
        prog="kyic",
        description="The Kokoyi compiler: LaTeX math (.kyi) to PyTorch.",
        epilog="Exit status: 0 success, 1 Kokoyi errors (located, on stderr), 2 usage errors.")
    parser.add_argument("--version", action="version", version=f"kyic (kokoyi) {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    passes = "\n".join(f"  {p.name:<12} {p.doc}" for p in PASSES + CALL_PASSES)
    p = sub.add_parser(
        "compile", help="compile a .kyi file to an importable Python module",
        description="Compile FILE to Python: one forward function per Kokoyi module (plus the "
                    "functions and constants; functions specialise per signature, as modules do), with "
                    "nn.Module templates in comments at the end.",
        epilog=f"passes, in order:\n{passes}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE.kyi")
    p.add_argument("-o", "--output", metavar="OUT.py", help="write here instead of standard output")
    p.add_argument("--dump-after", metavar="PASS", choices=PASS_NAMES + CALL_PASS_NAMES,
                   help=f"print the IR after this pass instead of compiling ({', '.join(PASS_NAMES)}; "
                        f"the call-time passes {', '.join(CALL_PASS_NAMES)}, for the signature that "
                        f"--batch-level, --input-rank and --param give)")
    p.add_argument("--standalone", action="store_true",
                   help="write plain PyTorch that needs neither kokoyi nor lark: runtime helpers, each module's "
                        "kernels (one sample, and the batch levels asked for), and an nn.Module class per module")
    p.add_argument("--batch-level", action="append", default=[], metavar="NAME=L1,...",
                   help="with --standalone: also emit the kernel of module NAME called with these batch "
                        "levels (0 or 1 per input); other levels loop over the samples")
    p.add_argument("--input-rank", action="append", default=[], metavar="NAME.INPUT=R",
                   help="per-sample rank of an unannotated input (R, R:int for integers, or number)")
    p.add_argument("--param", action="append", default=[], metavar="NAME.PARAM=KIND",
                   help="kind of a parameter: number, int, tensorR, a torch.nn layer (Linear), a module of "
                        "the file, [K1,K2,...] or K*N")
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("check", help="check .kyi files for errors",
                       description="Compile each FILE and report its errors; nothing is written. "
                                   "Exit 0 when all are clean, 1 otherwise.")
    p.add_argument("files", metavar="FILE", nargs="+")
    p.add_argument("-v", "--verbose", action="store_true", help="say `FILE: ok` for each clean file")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: located messages on stderr (default); json: one JSON object per "
                        "diagnostic and line on stdout, for editors and CI annotations")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("render", help="render a .kyi file as LaTeX, Markdown or HTML",
                       description="Render FILE for reading: a standalone LaTeX document using the "
                                   "algorithm and algpseudocode packages (tex), Markdown with $$ blocks "
                                   "(md), or an HTML page typeset by MathJax (html).")
    p.add_argument("file", metavar="FILE.kyi")
    p.add_argument("--format", choices=("tex", "md", "html"), default="tex", help="output format (default: tex)")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    p.set_defaults(run=cmd_render)

    p = sub.add_parser("template", help="print the torch.nn.Module skeleton of a module",
                       description="Print the torch.nn.Module class skeleton of module NAME of FILE "
                                   "(of every module when NAME is left out), as kokoyi.template "
                                   "gives it after kokoyi.load(FILE).")
    p.add_argument("file", metavar="FILE.kyi")
    p.add_argument("name", metavar="NAME", nargs="?", help=r"the module, e.g. PGLoss or '\pi'")
    p.set_defaults(run=cmd_template)

    p = sub.add_parser("lsp", help="run the language server (for editors) on stdin and stdout",
                       description="Serve the Language Server Protocol on standard input and output: "
                                   "diagnostics as you type, hover with the rendered math of a name's "
                                   "definition, go to definition, completion of built-ins. Needs the "
                                   "editors extra (pygls).")
    p.set_defaults(run=cmd_lsp)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kyic` console script; returns the exit status."""
    from kokoyi.errors import KokoyiError

    args = build_parser().parse_args(argv)  # exits 2 on usage errors, 0 on --help/--version
    try:
        return args.run(args)
    except KokoyiError as err:
        print(str(err), file=sys.stderr)
        return EXIT_ERROR
    except CliError as err:
        print(f"kyic: {err}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `kyic compile x.kyi | head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
