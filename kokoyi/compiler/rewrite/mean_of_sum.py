"""`\\frac{1}{N} \\sum_{t=0}^{N-1} b` (or `\\frac{\\sum_{t=0}^{N-1} b}{N}`): a sum divided by its
own number of terms, the mean over the axis: one torch mean instead of a sum, a reciprocal and
a product, forward and backward (the seq2seq loss's `\\frac{1}{|y|} \\sum_t \\CrossEntropy(L[t], y[t])`).

The count is proved, not assumed: the range starts at 0 and its upper bound is N - 1 for the
very N divided by. The batch rule (kokoyi/compiler/batch/fast.py) reduces the sum as a mean
where it is a reduction over the whole axis (no mask); anywhere else the sum is divided as
written. Not `\\mathbb{E}` itself: an empty range stays NaN (0/0 as 1/0 * 0), not the error an
empty `\\mathbb{E}` raises. Exact: torch's mean is the sum divided by the count, which is what
the product by the reciprocal gives up to its rounding (bitwise equal where N is a power of two).
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.rewrite.match import is_lit, resolve, same


def _summed(total, count, env):
    """total where it is a sum over 0..count-1, else None (not through a name: a sum bound by a
    let may be read elsewhere as well; not a row loss's sum, which reduced_loss marked)."""
    if not (isinstance(total, ir.Reduce) and total.op == "sum" and is_lit(total.axis.lower, 0)):
        return None
    upper = resolve(total.axis.upper, env)
    if not (isinstance(upper, ir.Prim) and upper.op == "sub" and is_lit(upper.args[1], 1)
            and same(upper.args[0], count, env)):
        return None
    return total


# The nodes rewrite() can match at the root ((class, Prim op or None)): rewrite_expr tries it on no other.
ROOTS = ((ir.Prim, "mul"), (ir.Prim, "div"))


def rewrite(e, env):
    if not (isinstance(e, ir.Prim) and len(e.args) == 2):
        return None
    total = None
    if e.op == "div":
        total = _summed(e.args[0], e.args[1], env)
    elif e.op == "mul":
        for scale, other in (e.args, e.args[::-1]):
            scale = resolve(scale, env)
            if isinstance(scale, ir.Prim) and scale.op == "div" and is_lit(scale.args[0], 1):
                total = _summed(other, scale.args[1], env)
                if total is not None:
                    break
    if total is None:
        return None
    return ir.Fast("mean_of_sum", (total,), e, span=e.span)
