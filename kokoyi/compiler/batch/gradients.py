"""No gradient through the elements a cases row does not supply (LANGUAGE.md 5), nor through
the positions of a loop outside its range.

A row with a tensor condition is computed everywhere and selected; where it does not apply
its value is discarded, but its local derivatives there may be undefined (`\\sqrt{x}` at
x < 0: 0 * nan is nan in the backward pass). In such rows, when the row is element-wise,
every tensor it reads passes its gradient only where the row applies.

A loop whose range varies (`\\prod_{j=i}^{0}`) runs on the largest range, masked: its body is
computed at positions outside the range too, and reduced or kept only where the range holds.
What the body reads there would get a zero gradient, times the body's local derivative
there (NaN at `\\sqrt{x}`, x < 0): inside such loops every float tensor read passes its
gradient only where the loop's range holds (at some position of the loops it does not vary
with), as the per-sample math reads nothing outside it.

A callee with weights of its own (a torch layer, a Kokoyi module called through its
forward, an opaque callable) is out of reach of those read masks: in such rows and loops it
takes zeros where its result is discarded, so that no NaN there reaches its weights.
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.batch.layout import Val

# Primitives whose local derivative may be undefined or infinite somewhere.
UNDEFINED = {"sqrt", "root", "norm", "log", "tan", "exp", "sinh", "cosh", "std", "logsumexp", "div"}
# Primitives that compute each element from the same elements of their operands.
ELEMENTWISE = {"add", "sub", "mul", "div", "pow", "neg", "lt", "gt", "le", "ge", "eq", "ne", "and", "or", "not",
               "root", "exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "sqrt", "sigmoid", "softplus",
               "gelu", "abs", "sign", "relu", "stop_grad", "maximum", "minimum", "clip", "indicator", "floor",
               "ceil"}


def _constant(e) -> bool:
    return not any(isinstance(n, (ir.Var, ir.Iota, ir.Global)) for n in ir.walk(e))


def may_have_undefined_derivative(e: ir.Expr, calls: bool = True) -> bool:
    """Whether some primitive of e (or, with calls, a call) may have an undefined or infinite
    local derivative at the values it gets."""
    for n in ir.walk(e):
        if not isinstance(n, (ir.Prim, ir.Apply)) or _constant(n):
            continue
        if isinstance(n, ir.Apply):
            if calls:
                return True
            continue
        if n.op == "div" and not _constant(n.args[1]):
            return True
        if n.op == "pow":
            k = n.args[1]
            if not (isinstance(k, ir.Lit) and isinstance(k.value, int) and k.value >= 0):
                return True
        elif n.op in UNDEFINED and n.op != "div":
            return True
    return False


def elementwise(e: ir.Expr) -> bool:
    for n in ir.walk(e):
        if isinstance(n, (ir.Var, ir.Lit, ir.Iota, ir.Global)):
            continue
        if isinstance(n, ir.Prim) and n.op in ELEMENTWISE:
            continue
        return False
    return True


def _rows_mask(b, v: Val) -> tuple[tuple, object]:
    """Where the enclosing rows all apply, lined up with v over the union of their axes
    (a mask finer than v, a vector condition over a scalar read: any over the rest)."""
    masks = []
    for m in b.row_masks:
        if m.rank > v.rank:
            m = Val(b.emit("any_trailing", m.code, m.rank - v.rank, hint="applies"), m.axes, v.rank, "bool")
        masks.append(m)
    mask = masks[0]
    for m in masks[1:]:
        axes = b.union(mask, m)
        rank = max(mask.rank, m.rank)
        mask = Val(b.emit("and", b.align(mask, axes, rank), b.align(m, axes, rank), hint="applies"), axes, rank, "bool")
    axes = b.union(v, mask)
    return axes, b.align(mask, axes, v.rank)


def _range_mask(b, v: Val):
    """Where, for some position of the loops v does not vary with, every enclosing dependent
    range holds, lined up with v; None when v varies with none of those loops (some position of
    every range holds, or nothing is computed at all)."""
    from kokoyi.compiler.batch.indexing import lined_up

    if not any(set(m.axes) & set(v.axes) for m in b.loop_masks):
        return None
    codes = [c for c in lined_up(b, b.loop_masks, v.axes) if not isinstance(c, bool)]
    if not codes:
        return None
    mask = codes[0]
    for c in codes[1:]:
        mask = b.emit("and", mask, c, hint="in_range")
    return b.align(Val(mask, v.axes, 0, "bool"), v.axes, v.rank)


def _hint(v: Val) -> str:
    return v.code.name if hasattr(v.code, "name") else "v"


def read(b, v: Val) -> Val:
    """v, a value read (a name, an earlier element of a recurrence), passing gradient only
    where the enclosing rows apply and inside the enclosing loops' ranges, if it is a float
    tensor read inside such rows or loops."""
    if not ((b.row_masks or b.loop_masks) and v.is_tensor and not v.python and v.kind == "float"):
        return v
    v = masked(b, v) if b.row_masks else v
    return range_masked(b, v) if b.loop_masks else v


def masked(b, v: Val) -> Val:
    """v (a float tensor read inside rows with row masks) passing gradient only where the
    rows apply."""
    axes, mask = _rows_mask(b, v)
    x = v.code if axes == v.axes else b.expand(v, axes)
    return Val(b.emit("gradient_where", x, mask, hint=_hint(v)), axes, v.rank, v.kind)


def range_masked(b, v: Val) -> Val:
    """v (a float tensor read inside loops with a dependent range) passing gradient only
    where, for some position of the loops v does not vary with, every range holds."""
    mask = _range_mask(b, v)
    if mask is None:
        return v
    return Val(b.emit("gradient_where", v.code, mask, hint=_hint(v)), v.axes, v.rank, v.kind)


def zero_where_discarded(b, v: Val) -> Val:
    """v, a float argument of a call whose own parameters no read mask reaches (a torch layer,
    a Kokoyi module called through its forward, an opaque callable), as zeros where the
    enclosing rows do not apply and outside the enclosing loops' ranges.

    What the call computes there is discarded, so its value does not matter; but a NaN or an
    infinity there would reach the gradients of the callee's weights as 0 * NaN (a linear
    layer's dW sums the rows' outer products, discarded rows included), where the math, which
    never computes those rows, gives those rows nothing."""
    if not (b.row_masks or b.loop_masks) or not v.is_tensor or v.python or v.kind != "float":
        return v
    if b.row_masks:
        axes, mask = _rows_mask(b, v)
        x = v.code if axes == v.axes else b.expand(v, axes)
        v = Val(b.emit("where", mask, x, 0.0, hint=_hint(v)), axes, v.rank, v.kind)
    if b.loop_masks:
        mask = _range_mask(b, v)
        if mask is not None:
            v = Val(b.emit("where", mask, v.code, 0.0, hint=_hint(v)), v.axes, v.rank, v.kind)
    return v
