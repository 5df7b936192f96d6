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
    unit         IR -> the unit's Python module       kokoyi/compiler/emit/unit.py

At call time, once per module or function and call signature (kokoyi/runtime/specialize.py
runs them, and once per constant when its unit is installed), CALL_PASSES over a CallState:

    at_call      top-level functions inlined          kokoyi/compiler/passes/inline.py (+ simplify, rewrite)
    batch        IR + signature -> kernel             kokoyi/compiler/batch/
    emit         kernel -> Python + line map          kokoyi/compiler/emit/torch_eager.py

Every kernel — one sample (batch level 0), a batch, a constant's value — comes out of these
three passes: the only other implementation of the language is the tests' reference
interpreter. `compile_unit(..., dump_after="resolve")` prints the IR after that pass
(`kyic compile --dump-after resolve`); `kyic compile --dump-after batch --batch-level ...`
the call-time ones (kokoyi/runtime/dumps.py).
"""
from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kokoyi.compiler import ast as A
from kokoyi.compiler import lazy  # (each pass's module is imported where it is first run)
from kokoyi.compiler.gcpause import gc_paused
from kokoyi.errors import Source


@dataclass
class UnitState:
    """What flows through the passes."""

    source: Source
    # key -> Symbol of top-level definitions from earlier units, and key -> their Python names:
    # read only (kokoyi.compile and kokoyi.load pass the symbol table's own dicts, not copies)
    env: dict
    global_names: dict
    tree: Any = None  # lark tree
    ast: A.Program | None = None
    defined: list = field(default_factory=list)  # Symbols this unit defines, in order
    ir: list = field(default_factory=list)  # kokoyi.compiler.ir.Function per item, in order
    generated: Any = None  # emit.unit.GeneratedUnit
    # True: lower ... rewrite only the items whose IR the unit's code needs now (constants,
    # which simplify may fold); a module's or function's IR is lowered on its first call
    # (lower_item, as after kokoyi.load's cache hit). Its entry in `ir` is None.
    defer_ir: bool = False
    # the set-builders resolve found reading themselves (None: not known, the recurrences pass looks)
    recurrences: list | None = None
    # the set of global_names' values, where the caller keeps one (kokoyi.symbol does), read only
    taken_names: Any = None
    keep_tree: bool = False  # parse makes the lark tree and build walks it (else parse builds the AST)


def _parse(state: UnitState) -> None:
    parser = lazy.module("kokoyi.compiler.parser")
    if state.keep_tree:
        state.tree = parser.parse(state.source)
    else:  # the AST built during the parse (the same AST, and the same errors)
        state.ast = parser.parse_ast(state.source)


def _build(state: UnitState) -> None:
    if state.ast is None:
        state.ast = lazy.module("kokoyi.compiler.builder").build(state.tree, state.source)


def _resolve(state: UnitState) -> None:
    resolver = lazy.module("kokoyi.compiler.passes.resolve").Resolver(state.source, state.env)
    state.ast, state.defined = resolver.program(state.ast)
    state.recurrences = resolver.recurrences
    for item, sym in zip(state.ast.items, state.defined):
        sym.extra["item"] = item  # later units specialise calls to this definition
        sym.extra["source"] = state.source  # (and locate errors inside it in this unit)


def _recurrences(state: UnitState) -> None:
    recurrences = lazy.module("kokoyi.compiler.passes.recurrences")
    state.ast = recurrences.check_recurrences(state.ast, state.source, state.recurrences)


def _ranks(state: UnitState) -> None:
    state.ast = lazy.module("kokoyi.compiler.passes.ranks").infer_ranks(state.ast, state.source)


def _needed_now(item) -> bool:
    """Whether the unit's code needs item's IR (a constant's value may be folded into it)."""
    return isinstance(item, A.Definition) and item.params is None


def _lower(state: UnitState) -> None:
    state.ir = lazy.module("kokoyi.compiler.passes.lower").lower(state.ast, _needed_now if state.defer_ir else None)


def _each(fns: list, fn_pass) -> list:
    return [None if f is None else fn_pass(f) for f in fns]


def _simplify(state: UnitState) -> None:
    state.ir = _each(state.ir, lazy.module("kokoyi.compiler.passes.simplify").simplify)


def _inline(state: UnitState) -> None:
    state.ir = _each(state.ir, lazy.module("kokoyi.compiler.passes.inline").inline)


def _rewrite(state: UnitState) -> None:
    simplify = lazy.module("kokoyi.compiler.passes.simplify").simplify
    rewrite = lazy.module("kokoyi.compiler.rewrite").rewrite
    state.ir = _each(state.ir, lambda f: rewrite(simplify(f)))
    for item, fn in zip(state.ast.items, state.ir):
        if fn is not None:
            _symbol_of(item).extra["ir"] = fn  # what a call of it starts from (lower_item)


def _symbol_of(item):
    return item.target.symbol if isinstance(item, A.Definition) else item.name.symbol


# Symbol -> its item's IR after the compile-time IR passes, made at its first call where the
# unit was compiled with defer_ir or came from kokoyi.load's cache (which skips them): every later call site of the same
# definition (a top-level function inlined at each call, a module in each caller) reuses it.
# Not in Symbol.extra: that is part of later units' cache keys (kokoyi/runtime/cache.py).
_LOWERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def lower_item(item):
    """One resolved item as core IR after the compile-time IR passes (what a module call
    starts from: kokoyi/runtime/specialize.py)."""
    sym = _symbol_of(item)
    done = sym.extra.get("ir") or _LOWERED.get(sym)
    if done is not None:
        return done
    from kokoyi.compiler.passes.inline import inline
    from kokoyi.compiler.passes.lower import Lowering
    from kokoyi.compiler.passes.simplify import simplify
    from kokoyi.compiler.rewrite import rewrite

    done = _LOWERED[sym] = rewrite(simplify(inline(simplify(Lowering().item(item)))))
    return done


def lower_global(globals_info: dict, key: str):
    """The IR of top-level definition `key` (globals_info: key -> (Python name, description,
    Symbol)), located in its own unit; None where it is not a compiled definition. What the
    call-time passes inline for a late-bound top-level function."""
    import dataclasses

    info = globals_info.get(key)
    sym = info[2] if info else None
    item = sym.extra.get("item") if sym is not None else None
    if item is None:
        return None
    return dataclasses.replace(lower_item(item), source=sym.extra.get("source"))


def at_call(f, lookup):
    """The call-time IR passes before `batch`: top-level functions inlined (they are late
    bound, so only a call knows them: lookup gives their IR), then simplify and rewrite again."""
    from kokoyi.compiler.passes.inline import inline
    from kokoyi.compiler.passes.simplify import simplify
    from kokoyi.compiler.rewrite import rewrite

    return rewrite(simplify(inline(f, lookup)))


@dataclass
class CallState:
    """What flows through the call-time passes: a definition's IR and one call signature."""

    fn: Any  # ir.Function: after `lower` ... `rewrite`, then after `at_call`
    inputs: tuple = ()  # per input: (description, batched)
    params: tuple = ()  # per parameter: its description
    name: str = "kernel"  # the kernel's Python name
    globals_info: dict = field(default_factory=dict)  # key -> (Python name, description, Symbol)
    options: dict = field(default_factory=dict)  # the rest of batch.Batcher's options
    kernel: Any = None  # kernel.Kernel
    code: str = ""
    line_map: dict = field(default_factory=dict)


def _at_call(cs: CallState) -> None:
    cs.fn = at_call(cs.fn, lambda key: lower_global(cs.globals_info, key))


def _batch(cs: CallState) -> None:
    from kokoyi.compiler.batch import batch_function

    cs.kernel = batch_function(cs.fn, cs.inputs, cs.params, cs.name, globals_info=cs.globals_info,
                               lower_global=lambda key: lower_global(cs.globals_info, key), **cs.options)


def _emit(cs: CallState) -> None:
    from kokoyi.compiler.emit import torch_eager

    cs.code, cs.line_map = torch_eager.emit(cs.kernel)


def run_call_passes(cs: CallState, start_after: str | None = None, stop_after: str | None = None) -> CallState:
    """CALL_PASSES in order over cs (from the one after start_after: a cached `at_call`
    result; to stop_after). Raises batch.Unsupported where a signature cannot be compiled."""
    started = start_after is None
    for p in CALL_PASSES:
        if started:
            p.run(cs)
        started = started or p.name == start_after
        if p.name == stop_after:
            break
    return cs


def _unit(state: UnitState) -> None:
    state.generated = lazy.module("kokoyi.compiler.emit.unit").generate(state.ast, state.ir, state.source, state.global_names, state.taken_names)


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Any], None]  # on a UnitState (PASSES) or a CallState (CALL_PASSES)
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

# Passes that run when a module or function is called, once per call signature (input ranks,
# dtypes, batch levels, parameter kinds), over a CallState: kokoyi/runtime/specialize.py runs
# them, `kyic compile --dump-after batch --batch-level NAME=L1,...` shows them.
CALL_PASSES: tuple[Pass, ...] = (
    Pass("at_call", _at_call, "top-level functions (late bound) inlined, then simplify and rewrite again",
         "kokoyi/compiler/passes/inline.py"),
    Pass("batch", _batch, "core IR + call signature -> kernel: loop and batch axes as tensor axes (Python "
                          "loops where a construct has no vectorised form), checked reads", "kokoyi/compiler/batch/"),
    Pass("emit", _emit, "kernel -> Python source calling torch (the torch_eager backend), with a line map",
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
                 dump_after: str | None = None, out=None, stop_after: str | None = None,
                 defer_ir: bool = False, taken_names=None) -> UnitState:
    """Run the passes over one unit. Raises KokoyiError on bad input; changes no global state.

    stop_after ends the run after that pass (the renderer needs only parse and build; the
    code cache runs up to ranks and takes the generated code from the cache). defer_ir
    leaves the IR of modules and functions to their first call (UnitState.defer_ir): the
    passes after ranks report no errors in the source, so the unit's errors are the same.
    taken_names, when given, is the set of global_names' values (only read; else made from them).
    """
    for name in (dump_after, stop_after):
        if name is not None and name not in PASS_NAMES:
            raise ValueError(f"unknown pass {name!r}; passes are: {', '.join(PASS_NAMES)}")
    # env and global_names as given (only read: no copy per unit of what earlier units defined)
    state = UnitState(Source(text, filename), {} if env is None else env, {} if global_names is None else global_names,
                      defer_ir=defer_ir and dump_after not in ("lower", "simplify", "inline", "rewrite"),
                      keep_tree="parse" in (dump_after, stop_after), taken_names=taken_names)
    for p in PASSES:
        p.run(state)
        if p.name == dump_after:
            (out or sys.stdout).write(dump(state, p.name))
        if p.name == stop_after:
            break
    return state
