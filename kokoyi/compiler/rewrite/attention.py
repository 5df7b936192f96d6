"""`\\operatorname{softmax}(\\frac{Q @ K^\\top}{\\sqrt{|K[0]|}} + M) @ V`: scaled dot-product
attention, one F.scaled_dot_product_attention (a zero mask is no mask)."""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_lit, resolve, same


def _scores(e, env):
    """(Q, K) when e is (Q @ K^T) / sqrt(|K[0]|), else None."""
    e = resolve(e, env)
    if not (isinstance(e, ir.Prim) and e.op == "div"):
        return None
    product, scale = (resolve(a, env) for a in e.args)
    if not (isinstance(product, ir.Prim) and product.op == "matmul"):
        return None
    q, kt = product.args
    kt = resolve(kt, env)
    if not (isinstance(kt, ir.Prim) and kt.op == "transpose"):
        return None
    k = kt.args[0]
    if not (isinstance(scale, ir.Prim) and scale.op == "sqrt"):
        return None
    width = resolve(scale.args[0], env)
    if not (isinstance(width, ir.Prim) and width.op == "bars"):
        return None
    row = resolve(width.args[0], env)
    if not (isinstance(row, ir.Take) and same(row.value, k, env) and len(row.items) == 1 and is_lit(row.items[0], 0)):
        return None
    return q, k


def rewrite(e, env):
    if not (isinstance(e, ir.Prim) and e.op == "matmul"):
        return None
    weights, v = e.args
    weights = resolve(weights, env)
    if not (isinstance(weights, ir.Prim) and weights.op == "softmax"):
        return None
    inside = resolve(weights.args[0], env)
    mask = ir.Lit(0)
    found = _scores(inside, env)
    if found is None and isinstance(inside, ir.Prim) and inside.op == "add":
        for scores, m in (inside.args, inside.args[::-1]):
            found = _scores(scores, env)
            if found is not None:
                mask = m
                break
    if found is None:
        return None
    q, k = found
    return ir.Fast("attention", (q, k, v, mask), e, span=e.span)
