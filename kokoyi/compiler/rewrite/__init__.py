"""Recognised forms, one rewrite per file, each matching canonical IR (after `simplify` and
`inline`), never source spelling: `\\gamma^i * (r[t+i] * 1)` and `\\gamma^i r[t+i]` are one IR.

A rewrite returns an `ir.Fast(op, args, original)`: the batch pass computes `op` in one step
where the call signature allows (its rule in kokoyi/compiler/batch/fast.py), else the
original. REWRITES lists them in the order they are tried, bottom-up over the IR.
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
    pooling,
    population_std,
    reduced_loss,
    solve,
    standardize,
)

REWRITES = (discounted_scan.rewrite, population_std.rewrite, standardize.rewrite, leaky_relu.rewrite,
            pooling.rewrite, cross_entropy.rewrite, contraction.rewrite, attention.rewrite,
            solve.rewrite, lerp.rewrite, huber.rewrite, bce_logits.rewrite,
            reduced_loss.rewrite)


def rewrite(f: ir.Function) -> ir.Function:
    return dataclasses.replace(f, body=rewrite_expr(f.body, {}))


def rewrite_expr(e, env: dict):
    """e with recognised forms marked, bottom-up; env: let-bound names -> their values (rules
    see through lets, so the source's names stay in the generated code)."""
    if isinstance(e, ir.Fast):
        # A function's attention met again where it is inlined (at a call): its mask may be
        # known there (a causal one, is_causal).
        if e.op == "attention" and not e.args[4].value:
            return attention.rewrite(e.original, env) or e
        return e
    if isinstance(e, ir.Let):
        value = rewrite_expr(e.value, env)
        return ir.with_fields(e, {"value": value, "body": rewrite_expr(e.body, {**env, e.name: value})})
    e = ir.map_children(e, lambda c: rewrite_expr(c, env))
    if isinstance(e, ir.Expr):
        for rule in REWRITES:
            out = rule(e, env)
            if out is not None:
                return out
    return e
