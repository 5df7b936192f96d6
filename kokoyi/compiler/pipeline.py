"""The compiler, as one list of passes in order (after Halide's Lower.cpp).

    parse        text -> lark tree                    kokoyi/compiler/parser.py
    build        lark tree -> AST                     kokoyi/compiler/builder.py
    resolve      names -> symbols, subscript rule     kokoyi/compiler/passes/resolve.py
    recurrences  set-builders that read themselves    kokoyi/compiler/passes/recurrences.py
    ranks        per-sample ranks, call checks        kokoyi/compiler/passes/ranks.py
    lower        AST -> core IR (explicit axes)       kokoyi/compiler/passes/lower.py
    simplify     canonical IR: constants folded       kokoyi/compiler/passes/simplify.py
    inline       functions and trivial lets inlined   kokoyi/compiler/passes/inline.py
    rewrite      recognised forms as ir.Fast          kokoyi/compiler/rewrite/ (one file each)
    codegen      AST -> Python source + line map      kokoyi/compiler/codegen/python.py

At call time, per call signature (kokoyi/runtime/specialize.py): `at_call` (top-level
functions inlined, simplify, rewrite), then CALL_PASSES: `batch` (kokoyi/compiler/batch/:
core IR -> kernel) and `emit` (kokoyi/compiler/emit/torch_eager.py: kernel -> Python). The
per-sample `codegen` from the AST remains for the unit's importable module (issue 12 moves it
onto the IR too).

`compile_unit(..., dump_after="resolve")` prints the IR after that pass
(`kyic compile --dump-after resolve`).
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kokoyi.compiler import ast as A
from kokoyi.compiler.gcpause import gc_paused
from kokoyi.errors import Source


@dataclass
class UnitState:
    """What flows through the passes."""

    source: Source
    env: dict  # key -> Symbol of top-level definitions from earlier units
    global_names: dict  # key -> Python name of those definitions
    tree: Any = None  # lark tree
    ast: A.Program | None = None
    defined: list = field(default_factory=list)  # Symbols this unit defines, in order
    ir: list = field(default_factory=list)  # kokoyi.compiler.ir.Function per item, in order
    generated: Any = None  # emit.unit.GeneratedUnit


def _parse(state: UnitState) -> None:
    from kokoyi.compiler.parser import parse

    state.tree = parse(state.source)


def _build(state: UnitState) -> None:
    from kokoyi.compiler.builder import build

    state.ast = build(state.tree, state.source)


def _resolve(state: UnitState) -> None:
    from kokoyi.compiler.passes.resolve import resolve

    state.ast, state.defined = resolve(state.ast, state.source, state.env)
    for item, sym in zip(state.ast.items, state.defined):
        sym.extra["item"] = item  # later units specialise calls to this definition
        sym.extra["source"] = state.source  # (and locate errors inside it in this unit)


def _recurrences(state: UnitState) -> None:
    from kokoyi.compiler.passes.recurrences import check_recurrences

    state.ast = check_recurrences(state.ast, state.source)


def _ranks(state: UnitState) -> None:
    from kokoyi.compiler.passes.ranks import infer_ranks

    state.ast = infer_ranks(state.ast, state.source)


def _lower(state: UnitState) -> None:
    from kokoyi.compiler.passes.lower import lower

    state.ir = lower(state.ast)


def _simplify(state: UnitState) -> None:
    from kokoyi.compiler.passes.simplify import simplify

    state.ir = [simplify(f) for f in state.ir]


def _inline(state: UnitState) -> None:
    from kokoyi.compiler.passes.inline import inline

    state.ir = [inline(f) for f in state.ir]


def _rewrite(state: UnitState) -> None:
    from kokoyi.compiler.passes.simplify import simplify
    from kokoyi.compiler.rewrite import rewrite

    state.ir = [rewrite(simplify(f)) for f in state.ir]
    for item, fn in zip(state.ast.items, state.ir):
        _symbol_of(item).extra["ir"] = fn  # what a call of it starts from (lower_item)


def _symbol_of(item):
    return item.target.symbol if isinstance(item, A.Definition) else item.name.symbol


def lower_item(item):
    """One resolved item as core IR after the compile-time IR passes (what a module call
    starts from: kokoyi/runtime/specialize.py)."""
    from kokoyi.compiler.passes.inline import inline
    from kokoyi.compiler.passes.lower import Lowering
    from kokoyi.compiler.passes.simplify import simplify
    from kokoyi.compiler.rewrite import rewrite

    done = _symbol_of(item).extra.get("ir")
    if done is not None:
        return done
    return rewrite(simplify(inline(simplify(Lowering().item(item)))))


def at_call(f, lookup):
    """The call-time IR passes before `batch`: top-level functions inlined (they are late
    bound, so only a call knows them: lookup gives their IR), then simplify and rewrite again."""
    from kokoyi.compiler.passes.inline import inline
    from kokoyi.compiler.passes.simplify import simplify
    from kokoyi.compiler.rewrite import rewrite

    return rewrite(simplify(inline(f, lookup)))


def _unit(state: UnitState) -> None:
    from kokoyi.compiler.emit.unit import generate

    state.generated = generate(state.ast, state.ir, state.source, state.global_names)


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[UnitState], None] | None
    doc: str
    where: str = ""  # the module (or package) that does the work, for the docs


PASSES: tuple[Pass, ...] = (
    Pass("parse", _parse, "text -> lark parse tree (LALR, contextual lexer, TeX argument rule)"),
    Pass("build", _build, "parse tree -> AST with source spans"),
    Pass("resolve", _resolve, "names -> symbols: scopes, subscript rule, single assignment, recursion"),
    Pass("recurrences", _recurrences, "a set-builder reading itself reads only earlier elements"),
    Pass("ranks", _ranks, "per-sample ranks from annotations, literals and built-ins; rank errors"),
    Pass("lower", _lower, "AST -> core IR: sugar gone, index variables as axes, recurrences as loops"),
    Pass("simplify", _simplify, "canonical IR: constants folded, x * 1, x + 0 and double negation gone"),
    Pass("inline", _inline, "local functions and trivial lets inlined, so rewrites see one expression"),
    Pass("rewrite", _rewrite, "recognised forms (one rewrite per file) marked as ir.Fast", "kokoyi/compiler/rewrite/"),
    Pass("unit", _unit, "IR -> the unit's Python module: a declaration per definition, specialised per "
                        "call signature by the call-time passes", "kokoyi/compiler/emit/unit.py"),
)
PASS_NAMES = tuple(p.name for p in PASSES)

# Passes that run when a module is called, once per call signature (input ranks, dtypes, batch
# levels, parameter kinds): kokoyi/runtime/specialize.py runs them, `kyic compile
# --dump-after batch --batch-level NAME=L1,...` shows them.
CALL_PASSES: tuple[Pass, ...] = (
    Pass("batch", None, "core IR + call signature -> kernel: loop and batch axes as tensor axes, checked reads",
         "kokoyi/compiler/batch/"),
    Pass("emit", None, "kernel -> Python source calling torch (the torch_eager backend), with a line map",
         "kokoyi/compiler/emit/torch_eager.py"),
)
CALL_PASS_NAMES = tuple(p.name for p in CALL_PASSES)


def dump(state: UnitState, pass_name: str) -> str:
    """The IR after pass_name, as text."""
    if pass_name == "parse":
        return state.tree.pretty()
    if pass_name == "unit":
        return state.generated.code
    if pass_name in ("lower", "simplify", "inline", "rewrite"):
        from kokoyi.compiler import ir

        return "\n".join(ir.dump(f) for f in state.ir) + "\n"
    return A.dump(state.ast) + "\n"


@gc_paused()  # the time stays linear in the source (kokoyi/compiler/gcpause.py)
def compile_unit(text: str, filename: str = "<kokoyi>", env=None, global_names=None,
                 dump_after: str | None = None, out=None, stop_after: str | None = None) -> UnitState:
    """Run the passes over one unit. Raises KokoyiError on bad input; changes no global state.

    stop_after ends the run after that pass (the renderer needs only parse and build; the
    code cache runs up to ranks and takes the generated code from the cache).
    """
    for name in (dump_after, stop_after):
        if name is not None and name not in PASS_NAMES:
            raise ValueError(f"unknown pass {name!r}; passes are: {', '.join(PASS_NAMES)}")
    state = UnitState(Source(text, filename), dict(env or {}), dict(global_names or {}))
    for p in PASSES:
        p.run(state)
        if p.name == dump_after:
            (out or sys.stdout).write(dump(state, p.name))
        if p.name == stop_after:
            break
    return state
