"""`\\Softplus(\\eta) - x * \\eta` (the product in either order): the binary cross-entropy of
the Bernoulli logit η against the target x, -[x log σ(η) + (1 - x) log(1 - σ(η))], one
F.binary_cross_entropy_with_logits (the VAE's reconstruction term) instead of a softplus, a
product, a difference and their three backward nodes.

The same function (softplus(η) - xη = (1 - x)η + log(1 + e^{-η})), computed by torch in
another order: equal up to rounding for finite η and x, gradients too (σ(η) - x for η, -η for
x). With an infinite η the two may differ (∞ - ∞ in the spelled-out form). The batch rule
(kokoyi/compiler/batch/fast.py) applies it to float η and x with one value per element;
summed over an axis (`\\sum_i`), kokoyi/compiler/rewrite/reduced_loss.py sums inside it.
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import resolve, same

# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "sub"),)


def rewrite(e, env):
    if not (isinstance(e, ir.Prim) and e.op == "sub"):
        return None
    soft, product = (resolve(a, env) for a in e.args)
    if not (isinstance(soft, ir.Prim) and soft.op == "softplus" and len(soft.args) == 1):
        return None
    eta = soft.args[0]
    if not (isinstance(product, ir.Prim) and product.op == "mul"):
        return None
    for x, other in (product.args, product.args[::-1]):
        if same(other, eta, env):
            return ir.Fast("bce_logits", (eta, x), e, span=e.span)
    return None
