"""`\\sqrt{\\frac{\\sum_{i=0}^{|x|-1} (x[i] - \\operatorname{mean}(x))^2}{|x|}}`: the population
standard deviation of a vector x, one torch reduction."""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_lit, is_prim_of, resolve, same


def std_of(e, env):
    """x when e is the population std of x written out, else None."""
    e = resolve(e, env)
    if not (isinstance(e, ir.Prim) and e.op == "sqrt"):
        return None
    quotient = e.args[0]
    if isinstance(quotient, ir.Fast) and quotient.op == "mean_of_sum":  # (marked first, bottom-up)
        quotient = quotient.original
    if not (isinstance(quotient, ir.Prim) and quotient.op == "div"):
        return None
    total, count = (resolve(a, env) for a in quotient.args)
    if not (isinstance(total, ir.Reduce) and total.op == "sum" and isinstance(count, ir.Prim) and count.op == "bars"):
        return None
    (x,) = count.args
    axis = total.axis
    if not (is_lit(axis.lower, 0) and axis.upper == ir.Prim("sub", (count, ir.Lit(1)))):
        return None
    square = resolve(total.body, env)
    if not (isinstance(square, ir.Prim) and square.op == "pow" and is_lit(square.args[1], 2)):
        return None
    diff = resolve(square.args[0], env)
    if not (isinstance(diff, ir.Prim) and diff.op == "sub" and is_prim_of(diff.args[1], "mean", x, env)):
        return None
    item = resolve(diff.args[0], env)
    if not (isinstance(item, ir.Take) and same(item.value, x, env) and item.items == (ir.Iota(axis),)):
        return None
    return x


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "sqrt"), (ir.Var, None), (ir.At, None))  # (a name or an At: through it, std_of resolves)


def rewrite(e, env):
    x = std_of(e, env)
    return None if x is None else ir.Fast("population_std", (x,), e, span=e.span)
