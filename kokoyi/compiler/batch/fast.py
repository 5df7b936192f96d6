"""Batch rules of recognised forms (ir.Fast, made by kokoyi/compiler/rewrite/): each says when
its one-step form applies to this call signature and returns None otherwise (the original is
then computed as written)."""
from __future__ import annotations

from kokoyi.compiler.batch.layout import BATCH, Val

FAST_RULES: dict = {}


def rule(op: str):
    def register(fn):
        FAST_RULES[op] = fn
        return fn

    return register


def _float_vector(v: Val) -> bool:
    return v.is_tensor and not v.python and v.rank == 1 and v.kind == "float"


@rule("discounted_window")
def _discounted(b, e):
    gamma, seq, lo, hi, last, offset = (b.ev(a) for a in e.args)
    if not (gamma.python or (gamma.is_tensor and gamma.rank == 0 and not gamma.axes)):
        return None
    if not (seq.is_tensor and not seq.python and seq.rank >= 1 and set(seq.axes) <= {BATCH}):
        return None
    if not (lo.python and hi.python and last.python and offset.python):
        return None
    code = b.emit("discounted_window", seq.code, gamma.code, seq.lead, lo.code, hi.code, last.code, offset.code,
                  b.site(e), hint="G")
    return Val(code, seq.axes, seq.rank, "float")


@rule("population_std")
def _population_std(b, e):
    x = b.ev(e.args[0])
    if not _float_vector(x):
        return None
    return Val(b.emit("std_last", x.code, hint="std"), x.axes, 0, "float")


@rule("standardize")
def _standardize(b, e):
    x = b.ev(e.args[0])
    if not _float_vector(x):
        return None
    return Val(b.emit("standardize", x.code, hint="z"), x.axes, 1, "float")


@rule("layer_norm")
def _layer_norm(b, e):
    x, eps = (b.ev(a) for a in e.args)
    if not (_float_vector(x) and eps.python):
        return None
    return Val(b.emit("layer_norm", x.code, eps.code, hint="z"), x.axes, 1, "float")


@rule("leaky_max")
def _leaky_max(b, e):
    x, c = (b.ev(a) for a in e.args)
    if not (x.is_tensor and not x.python and x.kind == "float" and c.python):
        return None
    return Val(b.emit("leaky_max", x.code, c.code, hint="h"), x.axes, x.rank, "float")
