"""`\\frac{x - \\operatorname{mean}(x)}{\\operatorname{std}(x)}` (one std_mean) and
`\\frac{x - \\operatorname{mean}(x)}{\\sqrt{\\operatorname{Var}(x) + \\epsilon}}` (F.layer_norm)."""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_prim_of, resolve, same


def _is_std_of(d, x, env) -> bool:
    d = resolve(d, env)
    return is_prim_of(d, "std", x, env) or (
        isinstance(d, ir.Fast) and d.op == "population_std" and same(d.args[0], x, env))


def _variance_plus(d, x, env):
    """eps when d is sqrt(var(x) + eps) in either order (eps a number), else None."""
    d = resolve(d, env)
    if not (isinstance(d, ir.Prim) and d.op == "sqrt" and isinstance(d.args[0], ir.Prim) and d.args[0].op == "add"):
        return None
    a, b = d.args[0].args
    for var, eps in ((a, b), (b, a)):
        if is_prim_of(var, "var", x, env) and isinstance(eps, ir.Lit) and not isinstance(eps.value, bool):
            return eps
    return None


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "div"),)


def rewrite(e, env):
    if not (isinstance(e, ir.Prim) and e.op == "div"):
        return None
    num, den = resolve(e.args[0], env), e.args[1]
    if not (isinstance(num, ir.Prim) and num.op == "sub"):
        return None
    x, m = num.args
    if not is_prim_of(m, "mean", x, env):
        return None
    if _is_std_of(den, x, env):
        return ir.Fast("standardize", (x,), e, span=e.span)
    eps = _variance_plus(den, x, env)
    if eps is not None:
        return ir.Fast("layer_norm", (x, eps), e, span=e.span)
    return None
