"""`\\{ \\sum(V_k * x) \\}_{k}`: every slice of V contracted with x (a dense layer whose weights
are written per output): one matrix product of x flattened by V's slices flattened, instead
of the elementwise product of all of them."""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_lit, resolve, uses_axes

# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Build, None),)


def rewrite(e, env):
    if not (isinstance(e, ir.Build) and len(e.axes) == 1 and is_lit(e.axes[0].lower, 0)):
        return None
    (k,) = e.axes
    total = resolve(e.body, env)
    if not (isinstance(total, ir.Prim) and total.op == "reduce_sum"):
        return None
    product = resolve(total.args[0], env)
    if not (isinstance(product, ir.Prim) and product.op == "mul"):
        return None
    for sliced, x in (product.args, product.args[::-1]):
        if isinstance(sliced, ir.Take) and sliced.items == (ir.Iota(k),) and not uses_axes(x, {k.name}) \
                and not uses_axes(sliced.value, {k.name}):
            return ir.Fast("contract", (sliced.value, x, k.upper), e, span=e.span)
    return None
