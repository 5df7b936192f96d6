"""`A^{-1} @ b` where A's rank is known only at the call (`inverse_if_matrix`): a linear solve
when A is a matrix per sample (torch.linalg.solve: faster and more accurate than forming the
inverse). With A annotated as a matrix, simplify has made it a `solve` already."""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import resolve

# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "matmul"),)


def rewrite(e, env):
    if not (isinstance(e, ir.Prim) and e.op == "matmul"):
        return None
    inverse = resolve(e.args[0], env)
    if not (isinstance(inverse, ir.Prim) and inverse.op == "inverse_if_matrix"):
        return None
    return ir.Fast("solve", (inverse.args[0], e.args[1]), e, span=e.span)
