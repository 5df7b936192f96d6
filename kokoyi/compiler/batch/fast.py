"""Batch rules of recognised forms (ir.Fast, made by kokoyi/compiler/rewrite/): each says when
its one-step form applies to this call signature and returns None otherwise (the original is
then computed as written)."""
from __future__ import annotations

from kokoyi.compiler.batch.layout import BATCH, Val

FAST_RULES: dict = {}


def rule(op: str):
    def register(fn):
        FAST_RULES[op] = fn
        return fn

    return register


def _float_vector(v: Val) -> bool:
    return v.is_tensor and not v.python and v.rank == 1 and v.kind == "float"


@rule("discounted_window")
def _discounted(b, e):
    gamma, seq, lo, hi, last, offset = (b.ev(a) for a in e.args)
    if not (gamma.python or (gamma.is_tensor and gamma.rank == 0 and not gamma.axes)):
        return None
    if not (seq.is_tensor and not seq.python and seq.rank >= 1 and set(seq.axes) <= {BATCH}):
        return None
    if not (lo.python and hi.python and last.python and offset.python):
        return None
    code = b.emit("discounted_window", seq.code, gamma.code, seq.lead, lo.code, hi.code, last.code, offset.code,
                  b.site(e), hint="G")
    return Val(code, seq.axes, seq.rank, "float")


def _vector_form(op: str, rank: int):
    """A form of one float vector (per sample) computed by one kernel op of that name."""

    def batch_rule(b, e):
        x = b.ev(e.args[0])
        if not _float_vector(x):
            return None
        return Val(b.emit(op, x.code, hint=op), x.axes, rank, "float")

    return batch_rule


FAST_RULES["population_std"] = _vector_form("std_last", 0)
FAST_RULES["standardize"] = _vector_form("standardize", 1)


@rule("layer_norm")
def _layer_norm(b, e):
    x, eps = (b.ev(a) for a in e.args)
    if not (_float_vector(x) and eps.python):
        return None
    return Val(b.emit("layer_norm", x.code, eps.code, hint="z"), x.axes, 1, "float")


@rule("leaky_max")
def _leaky_max(b, e):
    x, c = (b.ev(a) for a in e.args)
    if not (x.is_tensor and not x.python and x.kind == "float" and c.python):
        return None
    return Val(b.emit("leaky_max", x.code, c.code, hint="h"), x.axes, x.rank, "float")


def _batch_only(v: Val) -> bool:
    return v.is_tensor and not v.python and set(v.axes) <= {BATCH}


@rule("max_pool2d")
@rule("sum_pool2d")
@rule("mean_pool2d")
def _pool2d(b, e):
    h = b.ev(e.args[0])
    uppers = [b.ev(a) for a in e.args[1:4]]
    if not (_batch_only(h) and h.rank == 3 and h.kind == "float" and all(u.python for u in uppers)):
        return None
    kind = e.op.split("_")[0]
    code = b.emit("pool2d", h.code, h.lead, kind, e.args[4].value, e.args[5].value, tuple(u.code for u in uppers),
                  b.site(e), b.spell(e.args[0]) if e.args[0].span.line else "h", hint="pooled")
    return Val(code, h.axes, 3, "float")


@rule("cross_entropy")
def _cross_entropy(b, e):
    z, y, upper = (b.ev(a) for a in e.args)
    if not (z.is_tensor and not z.python and z.rank == 1 and z.kind == "float" and y.is_tensor and y.rank == 0
            and y.kind == "int" and upper.python):
        return None
    axes = b.union(z, y)
    zc = b.expand(z, axes) if axes else z.code
    yc = b.expand(Val(b.tensor(y, "int"), y.axes, 0, "int"), axes) if axes else b.tensor(y, "int")
    op = _reduction(b, e, axes)
    if op is not None:
        code = b.emit("cross_entropy_reduced", zc, yc, upper.code, op, b.site(e), "z", hint="loss")
        return Val(code, axes[:-1], 0, "float")
    code = b.emit("cross_entropy_rows", zc, yc, upper.code, b.site(e), "z", hint="ce")
    return Val(code, axes, 0, "float")


@rule("huber")
def _huber(b, e):
    delta, d = (b.ev(a) for a in e.args)
    if not (delta.is_tensor and not delta.python and delta.rank == 0 and delta.kind == "float" and d.python):
        return None
    p, q = _difference(b, delta.code)
    op = _reduction(b, e, delta.axes)
    if op is not None:
        return Val(b.emit("huber_reduced", p, q, d.code, op, hint="loss"), delta.axes[:-1], 0, "float")
    if q is None:
        return Val(b.emit("huber", p, d.code, hint="huber"), delta.axes, 0, "float")
    return Val(b.emit("huber_rows", p, q, d.code, hint="huber"), delta.axes, 0, "float")


def _difference(b, code):
    """(p, q) where this block computed code, a float with one value per element of its axes,
    as the tensor p - q: torch's loss then takes q as its target (no difference nor zero
    target made). The difference, of two aligned per-sample scalars, cannot fail: its
    statement is replaced by a `difference` (b.restate), which clean-up drops when nothing
    else reads it. Else (code, None)."""
    from kokoyi.compiler import kernel as K

    if isinstance(code, K.Ref):
        for s in reversed(b.block):
            if isinstance(s, K.Assign) and s.out == code.name:
                if s.op in ("sub", "difference") and not s.attrs.get("py") and all(isinstance(a, K.Ref) for a in s.args):
                    if s.op != "difference":
                        b.restate(s, op="difference")
                    return s.args
                break
    return code, None


@rule("bce_logits")
def _bce_logits(b, e):
    from kokoyi.compiler.batch.rules import _operands

    eta, x = (b.ev(a) for a in e.args)
    if not all(v.is_tensor and not v.python and v.kind == "float" for v in (eta, x)):
        return None
    if eta.rank == 0 and x.rank == 0:
        axes = b.union(eta, x)
        eta_c, x_c = (b.expand(v, axes) if axes else v.code for v in (eta, x))
        op = _reduction(b, e, axes)
        if op is not None:
            return Val(b.emit("bce_logits", eta_c, x_c, op, hint="loss"), axes[:-1], 0, "float")
        return Val(b.emit("bce_logits", eta_c, x_c, None, hint="bce"), axes, 0, "float")
    (eta_c, x_c), axes, rank = _operands(b, [eta, x], "float")
    return Val(b.emit("bce_logits", eta_c, x_c, None, hint="bce"), axes, rank, "float")


def _reduction(b, e, axes):
    """'mean' or 'sum' where this row loss is the end of a reduction's body that lets it reduce
    over the reduction's axis itself (reduced_loss below): the axis is its last one."""
    armed = b.loss_reduction
    if not (armed and armed["armed"] and armed["loss"] is e and axes and axes[-1] == armed["axis"]):
        return None
    armed["armed"], armed["done"] = False, True
    return armed["op"]


@rule("reduced_loss")
def _reduced_loss(b, e):
    """A mean or sum of a row loss over an axis (kokoyi/compiler/rewrite/reduced_loss.py): the
    reduction as written, whose rectangular range lets the loss at the end of its body reduce
    over the axis (loops._reduce arms it; the row loss's rule above takes it)."""
    from kokoyi.compiler.batch.loops import reduce
    from kokoyi.compiler.rewrite.reduced_loss import tail

    if b.hoists:
        return None
    saved = b.loss_reduction
    b.loss_reduction = {"reduce": e.original, "loss": tail(e.original.body), "axis": e.original.axis.name,
                        "op": e.original.op, "armed": False, "done": False}
    try:
        return reduce(b, e.original)
    finally:
        b.loss_reduction = saved


@rule("contract")
def _contract(b, e):
    v, x, upper = (b.ev(a) for a in e.args)
    if not (v.is_tensor and not v.python and not v.axes and v.kind == "float" and x.is_tensor and not x.python
            and x.kind == "float" and v.rank == x.rank + 1 and x.rank >= 1 and upper.python):
        return None
    code = b.emit("contract", v.code, x.code, x.rank, upper.code, b.site(e), b.spell(e.args[0]), hint="y")
    return Val(code, x.axes, 1, "float")


@rule("attention")
def _attention(b, e):
    q, k, v, mask = (b.ev(a) for a in e.args[:4])
    if not all(x.is_tensor and not x.python and x.rank == 2 and x.kind == "float" for x in (q, k, v)):
        return None
    if mask.python:
        if mask.code != 0:
            return None
        mask_code = None
    elif mask.is_tensor and mask.kind == "float" and mask.rank <= 2:
        mask_code = mask
    else:
        return None
    axes = b.union(q, k, v, *([mask_code] if mask_code is not None else []))
    q_c, k_c, v_c = (b.expand(x, axes) if axes else x.code for x in (q, k, v))
    if mask_code is not None and e.args[4].value and mask.rank == 2 and not mask.axes:
        # the rewrite proved the mask causal: is_causal where it has the scores' size
        return Val(b.emit("causal_attention", q_c, k_c, v_c, mask.code, hint="attended"), axes, 2, "float")
    m_c = None if mask_code is None else b.align(mask_code, axes, 2)
    return Val(b.emit("attention", q_c, k_c, v_c, m_c, hint="attended"), axes, 2, "float")


@rule("solve")
def _solve(b, e):
    from kokoyi.compiler.batch.linalg import _solve as solve_rule

    a, rhs = (b.ev(x) for x in e.args)
    if not (a.is_tensor and not a.python and a.rank >= 2 and rhs.is_tensor and not rhs.python and rhs.rank >= 1):
        return None
    return solve_rule(b, e, [a, rhs])


@rule("lerp")
def _lerp(b, e):
    from kokoyi.compiler.batch.rules import _operands

    x, y, a = (b.ev(v) for v in e.args)
    if not all(v.is_tensor and v.kind == "float" for v in (x, y, a)) or x.python or y.python:
        return None
    codes, axes, rank = _operands(b, [x, y, a], "float")
    return Val(b.emit("lerp", *codes, hint="v"), axes, rank, "float")


@rule("mean_of_sum")
def _mean_of_sum(b, e):
    """A sum over 0..N-1 divided by N (kokoyi/compiler/rewrite/mean_of_sum.py): the sum reduced
    as a mean where loops._reduce reduces the whole axis at once (b.sum_as_mean); where it
    computed the sum otherwise (a mask, a product of sums, a Python loop), that sum divided as
    written."""
    from kokoyi.compiler import ir
    from kokoyi.compiler import kernel as K

    (total,) = e.args
    saved = b.sum_as_mean
    b.sum_as_mean = total
    try:
        v = b.ev(total)
    finally:
        b.sum_as_mean = saved
    if isinstance(v.code, K.Ref):
        for s in reversed(b.block):
            if isinstance(s, K.Assign) and s.out == v.code.name:
                if s.op == "reduce_axis" and s.attrs.get("op") == "mean":
                    return v
                break
    name = b.ns.create("summed")
    outer = b.env.get(name)
    b.env[name] = v
    try:
        args = tuple(ir.Var(name, span=a.span) if a is total else a for a in e.original.args)
        return b.ev(ir.with_fields(e.original, {"args": args}))
    finally:
        if outer is None:
            b.env.pop(name, None)
        else:
            b.env[name] = outer
