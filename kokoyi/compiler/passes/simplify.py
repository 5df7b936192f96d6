"""Canonical IR: constants folded, neutral elements gone (`x * 1`, `x + 0`, `--x`), and the
linear-algebra forms that must not be computed as written (LANGUAGE.md section 6):
`\\log \\det(A)` is `logdet(A)`, and `A^{-1} @ b` is `solve(A, b)`, which never forms the inverse.

Rewrites then match one canonical form instead of every spelling: `\\gamma^i * (r[t+i] * 1)`
and `\\gamma^i * r[t+i]` simplify to the same IR. Folding follows the language's number
rules (LANGUAGE.md 6a): integer arithmetic stays integer, `/` gives a float, an integer to a
negative power is a float; nothing that could fail or round differently at run time is
folded (division by zero, overflowing powers, anything of a tensor).
"""
from __future__ import annotations

import math
import operator

from kokoyi.compiler import ir

# Primitives folded when every argument is a literal number: op -> (function, arity).
FOLD = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "neg": operator.neg,
    "lt": operator.lt, "gt": operator.gt, "le": operator.le, "ge": operator.ge, "eq": operator.eq,
    "ne": operator.ne,
}
# Results of these keep a bool or an integer apart from its operand (`(x > 0) * 1` is an
# integer): multiplying one by 1 is not a no-op.
TRUTH_VALUED = {"lt", "gt", "le", "ge", "eq", "ne", "and", "or", "not"}
MAX_FOLDED_INT = 2 ** 63 - 1
_LEAVES = ir.LEAVES
_MARK = ir.SIMPLIFIED


def simplify(f: ir.Function) -> ir.Function:
    return ir.Function(f.name, f.kind, f.inputs, f.params, simplify_expr(f.body))


def simplify_expr(e):
    if type(e) in _LEAVES:  # (most calls: a name or a number, nothing to simplify)
        return e
    if _MARK in e.__dict__:  # (simplify made it: nothing to simplify)
        return e
    e = ir.MAPPERS[type(e)](e, simplify_expr)
    if isinstance(e, ir.Prim):
        e = _prim(e)
        if type(e) in _LEAVES:
            return e
    # Marked as simplified: simplify gives a node it made back as it is (its children are
    # simplified, and a rule's result is one no rule applies to: a child, a folded number,
    # `logdet`, `solve`), and the same node object is the same IR. The passes after simplify
    # (inline, rewrite, at a call inline, simplify and rewrite again) keep the nodes they do
    # not change, so the next simplify skips those; ir.with_fields drops the mark on a copy.
    e.__dict__[_MARK] = True
    return e


def _number(e):
    """The value of a literal number (not a truth value), else None."""
    if isinstance(e, ir.Lit) and not isinstance(e.value, bool):
        return e.value
    return None


def _is(e, value) -> bool:
    v = _number(e)
    return v is not None and type(v) is int and v == value


def _prim(e: ir.Prim):
    values = [_number(a) for a in e.args]
    if e.args and None not in values:
        folded = fold(e.op, values)
        if folded is not None:
            return ir.Lit(folded, span=e.span)
    args = e.args
    # Neutral elements with integer literals only: `x * 1.0` would make an integer x a float.
    if e.op == "mul":
        for keep, one in ((args[0], args[1]), (args[1], args[0])):
            if _is(one, 1) and not _truth_valued(keep):
                return keep
    if e.op == "add":
        for keep, zero in ((args[0], args[1]), (args[1], args[0])):
            if _is(zero, 0) and not _truth_valued(keep):
                return keep
    if e.op == "sub" and _is(args[1], 0) and not _truth_valued(args[0]):
        return args[0]
    if e.op == "pow" and _is(args[1], 1) and not _truth_valued(args[0]):
        return args[0]
    if e.op == "neg" and isinstance(args[0], ir.Prim) and args[0].op == "neg":
        return args[0].args[0]
    if e.op == "log" and len(args) == 1 and _is_prim(args[0], "det"):
        return ir.Prim("logdet", args[0].args, span=e.span)
    if e.op == "matmul" and _is_prim(args[0], "inverse"):
        return ir.Prim("solve", (args[0].args[0], args[1]), span=e.span)
    return e


def _is_prim(e, op: str) -> bool:
    return isinstance(e, ir.Prim) and e.op == op


def _truth_valued(e) -> bool:
    return isinstance(e, ir.Prim) and e.op in TRUTH_VALUED or isinstance(e, ir.Lit) and isinstance(e.value, bool)


def fold(op: str, values):
    """The value of op on literal numbers as simplify folds it, else None (left to run time)."""
    if op in FOLD:
        out = FOLD[op](*values)
    elif op == "div" and values[1] != 0:
        out = values[0] / values[1]
    elif op == "pow" and _small_power(*values):
        out = values[0] ** values[1]
        out = float(out) if isinstance(out, int) and values[1] < 0 else out
    elif op == "sqrt" and values[0] >= 0:
        out = math.sqrt(values[0])
    else:
        return None
    if isinstance(out, int) and not isinstance(out, bool) and abs(out) > MAX_FOLDED_INT:
        return None  # an integer tensor could not hold it: leave it to run time
    if isinstance(out, float) and not math.isfinite(out):
        return None
    return out


def _small_power(base, exponent) -> bool:
    if base == 0 and exponent < 0:
        return False
    if isinstance(base, int) and isinstance(exponent, int):
        return abs(exponent) <= 64 and (abs(base) <= 1 or base.bit_length() * abs(exponent) <= 63)
    try:
        return math.isfinite(math.pow(base, exponent))
    except (OverflowError, ValueError):
        return False
