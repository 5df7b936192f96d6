"""Recognised forms, one rewrite per file, each matching canonical IR (after `simplify` and
`inline`), never source spelling: `\\gamma^i * (r[t+i] * 1)` and `\\gamma^i r[t+i]` are one IR.

A rewrite returns an `ir.Fast(op, args, original)`: the batch pass computes `op` in one step
where the call signature allows (its rule in kokoyi/compiler/batch/fast.py), else the
original. REWRITES lists them in the order they are tried, bottom-up over the IR; each rule
file's ROOTS says which nodes it can match at the root, and a node is tried against those
rules alone (candidates).
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite import (
    attention,
    bce_logits,
    contraction,
    cross_entropy,
    discounted_scan,
    huber,
    leaky_relu,
    lerp,
    mean_of_sum,
    pooling,
    population_std,
    reduced_loss,
    solve,
    standardize,
)

RULES = (discounted_scan, population_std, standardize, leaky_relu, pooling, cross_entropy, contraction, attention,
         solve, lerp, huber, bce_logits, reduced_loss, mean_of_sum)
REWRITES = tuple(rule.rewrite for rule in RULES)

# (node class, Prim op or None) -> the rewrites that can match such a node at the root (each
# rule's ROOTS), in REWRITES order: a node is tried against those alone, not all of them
# (a first call rewrites a thousand nodes or more, and most match no rule's root).
_CANDIDATES: dict = {}
_UNBOUND = object()  # (a name env does not bind)
_LEAVES = ir.LEAVES


def candidates(kind: tuple) -> tuple:
    """The rewrites that can match a node of kind (its class, its op if a Prim, else None) at
    the root, in the order of REWRITES."""
    found = _CANDIDATES.get(kind)
    if found is None:
        cls, op = kind
        found = _CANDIDATES[kind] = tuple(
            rule.rewrite for rule in RULES
            if any(issubclass(cls, root) and (root_op is None or root_op == op) for root, root_op in rule.ROOTS))
    return found


def rewrite(f: ir.Function) -> ir.Function:
    return dataclasses.replace(f, body=rewrite_expr(f.body, {}))


def rewrite_expr(e, env: dict):
    """e with recognised forms marked, bottom-up; env: let-bound names -> their values (rules
    see through lets, so the source's names stay in the generated code)."""
    cls = type(e)  # (node classes are not subclassed: compared by identity)
    if cls is ir.Fast:
        # A function's attention met again where it is inlined (at a call): its mask may be
        # known there (a causal one, is_causal).
        if e.op == "attention" and not e.args[4].value:
            return attention.rewrite(e.original, env) or e
        return e
    if cls is ir.Let:
        value = rewrite_expr(e.value, env)
        # (the body sees the binding in env itself, restored after: a copy of env per let was
        # quadratic in a body's chain of lets; no rule keeps env)
        name = e.name
        outer = env.get(name, _UNBOUND)
        env[name] = value
        try:
            body = rewrite_expr(e.body, env)
        finally:
            if outer is _UNBOUND:
                del env[name]
            else:
                env[name] = outer
        if value is e.value and body is e.body:
            return e
        return ir.with_fields(e, {"value": value, "body": body})
    if cls not in _LEAVES:  # (a name or a number has no children to rewrite)
        e = ir.MAPPERS[cls](e, lambda c: rewrite_expr(c, env))
    # (an axis or a slice, mapped as a child, is no rule's root: candidates gives none)
    kind = (cls, e.op) if cls is ir.Prim else (cls, None)
    rules = _CANDIDATES.get(kind)
    for rule in candidates(kind) if rules is None else rules:
        out = rule(e, env)
        if out is not None:
            return out
    return e
