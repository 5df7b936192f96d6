"""`\\max(x, c x)` (any order, c a number): a leaky ReLU with slope c (F.leaky_relu for
0 <= c <= 1, whose gradient at 0 is c where torch.maximum would split it)."""
from __future__ import annotations

from kokoyi.compiler import ir

# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "maximum"),)


def rewrite(e, env):
    if not (isinstance(e, ir.Prim) and e.op == "maximum" and len(e.args) == 2):
        return None
    for x, scaled in (e.args, e.args[::-1]):
        if isinstance(scaled, ir.Prim) and scaled.op == "mul":
            for c, y in (scaled.args, scaled.args[::-1]):
                if y == x and isinstance(c, ir.Lit) and isinstance(c.value, float):
                    return ir.Fast("leaky_max", (x, c), e, span=e.span)
    return None
