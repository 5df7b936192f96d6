"""Inline functions and trivial lets, so that rewrites see one expression.

`\\sigma(x) \\gets \\sqrt{...}` called as `\\sigma(G_t)`, `\\mu \\gets \\Mean` called as
`\\mu(G_t)`, a `\\where` binding used once: after this pass the call sites hold the bodies
(with their parameters bound by lets to the arguments), so `rewrite/` can match forms that
span a call. What is inlined:

* a let-bound local function or built-in, at each call (the let goes when nothing else reads it);
* a top-level function, at each call, when `lookup` gives its IR (call time: they are late bound);
* a let whose value is a name or a number (the lets that bind an inlined function's
  parameters to names). Other lets stay: they keep the source's names in generated code and
  tracebacks; rewrites see through them (kokoyi/compiler/rewrite/match.py `resolve`).

Binders of an inlined body are renamed apart (`x` -> `x__1`) so no name is captured.
"""
from __future__ import annotations

import dataclasses
import itertools

from kokoyi.compiler import ir

_fresh = itertools.count(1)
_UNBOUND = object()  # (a name `names` does not bind)
_LEAVES = ir.LEAVES


def inline(f: ir.Function, lookup=None) -> ir.Function:
    """f with calls inlined (lookup: key -> ir.Function of a top-level function, or None)."""
    return dataclasses.replace(f, body=_inline(f.body, {}, lookup or (lambda key: None), ()))


def _inline(e, functions: dict, lookup, active: tuple):
    """functions: let-bound names -> their Lambda or built-in Prim("function")."""
    kind = type(e)
    if kind in _LEAVES:  # (a name or a number: nothing under it to inline)
        return e
    if kind is ir.Let:
        if not _binds_function(e):
            return _lets(e, functions, lookup, active)
        value = _inline(e.value, functions, lookup, active)
        body = _inline(e.body, {**functions, e.name: value}, lookup, active)
        return body if not _reads(body, e.name) else _with(e, "value", value, "body", body)
    if kind is ir.Apply:
        args = tuple(_inline(a, functions, lookup, active) for a in e.args)
        if all(a is b for a, b in zip(args, e.args)):
            args = e.args
        fn = e.fn
        if isinstance(fn, ir.Var) and fn.name in functions:
            fn = functions[fn.name]
        if isinstance(fn, ir.Global) and fn.key not in active:
            target = lookup(fn.key)
            if target is not None and target.kind == "function" and len(target.inputs) == len(args):
                if target.source is not None:  # errors inside it are located in its own unit,
                    args = tuple(ir.At(None, a, span=a.span) for a in args)  # the arguments' in the caller's
                body = _inline(_beta(target.inputs, target.body, args, e.span), {}, lookup, active + (fn.key,))
                return body if target.source is None else ir.At(target.source, body, span=e.span)
        if isinstance(fn, ir.Lambda) and len(fn.params) == len(args):
            return _inline(_beta(fn.params, fn.body, args, e.span), functions, lookup, active)
        if isinstance(fn, ir.Prim) and fn.op == "function":
            return ir.Prim(fn.attrs[0], args, span=e.span)
        return _with(e, "fn", _inline(e.fn, functions, lookup, active), "args", args)
    return ir.MAPPERS[kind](e, lambda c: _inline(c, functions, lookup, active) if isinstance(c, ir.Expr) else
                           _inline_axis(c, functions, lookup, active))


def _lets(e: ir.Let, functions: dict, lookup, active: tuple, value=None):
    """A let that binds no function, inlined; value: its value, inlined already (None: not yet).

    A let whose value is a name or a number is substituted into its body. The lets right
    under it that are substituted too (an inlined function's parameters bound to names, one
    let each) make one substitution over the body, not one each: the same IR, as long as no
    value of them reads a name bound before it in the run (then a run starts there)."""
    run: dict = {}  # name -> value, of the run's lets
    while True:
        if value is None:
            value = _inline(e.value, functions, lookup, active)
        if e.name in functions:  # (shadowed in the body)
            functions = {k: v for k, v in functions.items() if k != e.name}
        if not _trivial(value):
            out = _with(e, "value", value, "body", _inline(e.body, functions, lookup, active))
            break
        if e.name in run or _reads_any(value, run):
            out = _lets(e, functions, lookup, active, value)
            break
        run[e.name] = value
        value = None
        if isinstance(e.body, ir.Let) and not _binds_function(e.body):
            e = e.body
            continue
        out = _inline(e.body, functions, lookup, active)
        break
    return substitute(out, run)


def _with(e, f1: str, v1, f2: str, v2):
    """e with fields f1 and f2 set to v1 and v2: e itself when both are what it holds (so what
    inlining leaves alone stays the same object, and its parents are not copied either)."""
    if getattr(e, f1) is v1 and getattr(e, f2) is v2:
        return e
    return ir.with_fields(e, {f1: v1, f2: v2})


def _trivial(value) -> bool:
    """A let's value that is substituted into its body: a name or a number (in an At or not)."""
    return isinstance(value, (ir.Var, ir.Lit)) or isinstance(value, ir.At) and isinstance(value.body, (ir.Var, ir.Lit))


def _reads_any(value, names: dict) -> bool:
    """A trivial value reads one of names."""
    if isinstance(value, ir.At):
        value = value.body
    return isinstance(value, ir.Var) and value.name in names


def _binds_function(e: ir.Let) -> bool:
    return isinstance(e.value, ir.Lambda) or isinstance(e.value, ir.Prim) and e.value.op == "function"


def _inline_axis(c, functions, lookup, active):
    return ir.map_children(c, lambda x: _inline(x, functions, lookup, active) if isinstance(x, ir.Expr) else x)


def _beta(params, body, args, span):
    """body with params bound to args by lets (binders renamed apart first)."""
    suffix = f"__{next(_fresh)}"
    renamed = _rename(body, {p: p + suffix for p in params}, suffix)
    out = renamed
    for p, a in reversed(list(zip(params, args))):
        out = ir.Let(p + suffix, a, out, span=span)
    return out


def _rename(e, names: dict, suffix: str):
    """e with its binders (lets, lambdas, axes, recurrences) renamed by suffix, reads renamed."""
    # (copies by ir.with_fields, not the nodes' keyword constructors: the batch pass renames a
    # module's whole body at each call of it)
    kind = type(e)
    if kind is ir.Var:
        name = names.get(e.name)  # (a free name: the same node)
        return e if name is None else ir.with_fields(e, {"name": name})
    if kind in _LEAVES:
        return e
    if kind is ir.Let:
        value = _rename(e.value, names, suffix)
        # (the body sees the binding in names itself, restored after: a copy of names per let
        # was quadratic in a body's chain of lets)
        name = e.name
        outer = names.get(name, _UNBOUND)
        names[name] = name + suffix
        try:
            body = _rename(e.body, names, suffix)
        finally:
            if outer is _UNBOUND:
                del names[name]
            else:
                names[name] = outer
        return ir.with_fields(e, {"name": name + suffix, "value": value, "body": body})
    if kind is ir.Lambda:
        inner = {**names, **{p: p + suffix for p in e.params}}
        return ir.with_fields(e, {"params": tuple(p + suffix for p in e.params), "body": _rename(e.body, inner, suffix)})
    if kind is ir.Iota:
        return ir.with_fields(e, {"axis": _rename_axis(e.axis, names, suffix)})
    if kind is ir.Recur:
        inner = {**names, e.name: e.name + suffix}
        axis = _rename_axis(e.axis, names, suffix)
        return ir.with_fields(e, {"name": e.name + suffix, "axis": axis, "element": _rename(e.element, inner, suffix)})
    return ir.MAPPERS[kind](e, lambda c: _rename_axis(c, names, suffix) if isinstance(c, ir.Axis)
                           else _rename(c, names, suffix))


def _rename_axis(a, names, suffix):
    if isinstance(a, ir.Axis):
        return ir.Axis(a.name + suffix, _rename(a.lower, names, suffix), _rename(a.upper, names, suffix), a.kind)
    if isinstance(a, ir.Slice):
        return ir.map_children(a, lambda x: _rename(x, names, suffix))
    if isinstance(a, ir.Iota):
        return a
    return _rename(a, names, suffix)


def substitute(e, mapping: dict):
    """e with reads of the names in mapping replaced (a binder of the same name shadows)."""
    if not mapping:
        return e
    kind = type(e)
    if kind is ir.Var:
        return mapping[e.name] if e.name in mapping else e
    if kind in _LEAVES:
        return e
    if kind is ir.Let:
        value = substitute(e.value, mapping)
        inner = {k: v for k, v in mapping.items() if k != e.name} if e.name in mapping else mapping
        return ir.with_fields(e, {"value": value, "body": substitute(e.body, inner)})
    if kind is ir.Lambda:
        inner = {k: v for k, v in mapping.items() if k not in e.params}
        return ir.with_fields(e, {"body": substitute(e.body, inner)})
    return ir.MAPPERS[kind](e, lambda c: substitute(c, mapping))


def _reads(e, name: str) -> bool:
    return any(isinstance(n, ir.Var) and n.name == name for n in ir.walk(e))
