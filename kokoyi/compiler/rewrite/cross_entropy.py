"""`m + \\log \\sum_{k} \\exp(z_k - m) - z_y` with m the largest logit (or without m):
the cross-entropy of logits z against label y, one F.cross_entropy (log_softmax + gather)."""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_lit, is_prim_of, resolve, same


def _logsumexp_of(e, env):
    """z when e is log(sum_k exp(z[k] - m)) + m with m = max(z) (or log sum_k exp(z[k])), and
    the whole range of z, else None."""
    e = resolve(e, env)
    shift = None
    if isinstance(e, ir.Prim) and e.op == "add":
        for m, rest in (e.args, e.args[::-1]):
            rest = resolve(rest, env)
            if isinstance(rest, ir.Prim) and rest.op == "log":
                shift, e = m, rest
                break
    if not (isinstance(e, ir.Prim) and e.op == "log"):
        return None
    total = resolve(e.args[0], env)
    if not (isinstance(total, ir.Reduce) and total.op == "sum" and is_lit(total.axis.lower, 0)):
        return None
    body = resolve(total.body, env)
    if not (isinstance(body, ir.Prim) and body.op == "exp"):
        return None
    inner = resolve(body.args[0], env)
    if shift is not None:
        if not (isinstance(inner, ir.Prim) and inner.op == "sub" and same(inner.args[1], shift, env)):
            return None
        inner = resolve(inner.args[0], env)
    if not (isinstance(inner, ir.Take) and inner.items == (ir.Iota(total.axis),)):
        return None
    z = inner.value
    if shift is not None and not is_prim_of(shift, "reduce_max", z, env):
        return None
    return z, total.axis.upper


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "sub"),)


def rewrite(e, env):
    if not (isinstance(e, ir.Prim) and e.op == "sub"):
        return None
    found = _logsumexp_of(e.args[0], env)
    if found is None:
        return None
    z, upper = found
    picked = resolve(e.args[1], env)
    if not (isinstance(picked, ir.Take) and same(picked.value, z, env) and len(picked.items) == 1
            and not isinstance(picked.items[0], ir.Slice)):
        return None
    return ir.Fast("cross_entropy", (z, picked.items[0], upper), e, span=e.span)
