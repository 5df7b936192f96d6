"""`\\operatorname{softmax}(\\frac{Q @ K^\\top}{\\sqrt{|K[0]|}} + M) @ V`: scaled dot-product
attention, one F.scaled_dot_product_attention (a zero mask is no mask; a causal mask,
`\\{0 \\text{ if } j \\le i, -\\infty \\text{ otherwise}\\}_{i=0, j=0}`, is is_causal where its size is
the scores', which the kernel checks)."""
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


def _number(e):
    if isinstance(e, ir.Lit) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
        return float(e.value)
    if isinstance(e, ir.Prim) and e.op == "neg" and len(e.args) == 1:
        inner = _number(e.args[0])
        return None if inner is None else -inner
    return None


def _is_causal(mask, env) -> bool:
    """mask is {0 where j <= i, -inf otherwise} over i = 0.., j = 0.. (the rows, the columns)."""
    mask = resolve(mask, env)
    if not (isinstance(mask, ir.Build) and len(mask.axes) == 2 and all(is_lit(a.lower, 0) for a in mask.axes)):
        return False
    i, j = (ir.Iota(a) for a in mask.axes)
    body = resolve(mask.body, env)
    if not (isinstance(body, ir.Select) and len(body.rows) == 1 and body.otherwise is not None):
        return False
    (cond, value), = body.rows
    cond = resolve(cond, env)
    lower_triangle = isinstance(cond, ir.Prim) and (
        (cond.op == "le" and cond.args == (j, i)) or (cond.op == "ge" and cond.args == (i, j)))
    return lower_triangle and _number(value) == 0.0 and _number(body.otherwise) == float("-inf")


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "matmul"),)


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
    return ir.Fast("attention", (q, k, v, mask, ir.Lit(_is_causal(mask, env))), e, span=e.span)
