"""One rule per primitive, built by families (after JAX's batching.py: defvectorized,
defreducer). A rule takes the batcher, the Prim node and its evaluated arguments and
returns the result's value. Element-wise rules line their operands up by named axes
(`Batcher.align`); rules over the per-sample part act on the trailing dimensions, so the
leading (batch and loop) axes need no rule of their own.
"""
from __future__ import annotations

from kokoyi.compiler.batch.layout import Val, promote
from kokoyi.compiler.builtins import BATCHING

RULES: dict = {}

# Operations on Python constants done here (a recurrence's first step picks its base case).
FOLD = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "lt": lambda a, b: a < b, "gt": lambda a, b: a > b, "le": lambda a, b: a <= b, "ge": lambda a, b: a >= b,
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "and": lambda a, b: bool(a and b),
    "or": lambda a, b: bool(a or b), "not": lambda a: not a, "neg": lambda a: -a,
}


def _python_ok(args) -> bool:
    return all(a.python for a in args)


def _known_comparison(b, op: str, args):
    """The value of `t = 0`, `t > 0`, ... for a recurrence's loop variable t whose smallest
    value is known (the loop starts after the first step), else None."""
    if op not in ("eq", "ne", "lt", "le", "gt", "ge") or len(args) != 2:
        return None
    left, right = args
    low = b.lowest.get(getattr(left.code, "name", None)) if type(right.code) is int else None
    if low is None:
        return None
    c = right.code
    if low > c:
        return {"eq": False, "ne": True, "lt": False, "le": False, "gt": True, "ge": True}[op]
    if low == c and op in ("lt", "ge"):
        return op == "ge"
    return None


def _operands(b, args, kind: str | None):
    """The operands lined up on their union of axes and the widest per-sample rank."""
    for a in args:
        if not a.is_tensor:
            raise b.unsupported("arithmetic on a non-number")
    axes = b.union(*args)
    rank = max(a.rank for a in args)
    codes = []
    for a in args:
        if kind == "float":
            code = b.as_float(a)
            a = Val(code, a.axes, a.rank, "float", a.python)
        elif kind == "int" and a.kind == "bool" and not a.python:
            a = Val(b.tensor(a, "int"), a.axes, a.rank, "int")
        codes.append(b.align(a, axes, rank))
    return codes, axes, rank


def defelementwise(op: str, result: str = "promote", python: bool = True, float_inputs: bool = False,
                   tensor_args: bool = False):
    """An element-wise primitive. result: "promote" (float if any operand is), "float",
    "bool", "int" or "same" (the first operand's kind). python: on Python numbers it stays
    a Python number. float_inputs: integer operands are converted first. tensor_args: the
    op needs tensors (Python numbers become tensors of the module's dtype)."""

    def rule(b, e, args):
        kinds = [a.kind for a in args]
        kind = {"promote": promote(kinds), "same": kinds[0]}.get(result, result)
        if python and _python_ok(args):
            known = _known_comparison(b, op, args)
            if known is not None:
                return Val(known, kind="bool", python=True)
            if op in FOLD and all(type(a.code) in (int, float, bool) for a in args):
                try:
                    value = FOLD[op](*(a.code for a in args))
                except (ArithmeticError, ValueError):
                    pass
                else:
                    return Val(value, kind=kind, python=True)
            return Val(b.emit(op, *(a.code for a in args), hint="s", py=True), kind=kind, python=True)
        operand_kind = "float" if float_inputs or (result == "promote" and kind == "float") else None
        if tensor_args or (float_inputs and _python_ok(args)):  # (torch takes a Python number beside a tensor)
            args = [Val(b.tensor(a, "float" if float_inputs else None), a.axes, a.rank,
                        "float" if float_inputs else a.kind) if a.python else a for a in args]
        codes, axes, rank = _operands(b, args, operand_kind)
        return Val(b.emit(op, *codes, hint="v"), axes, rank, kind)

    RULES[op] = rule
    return rule


for _op in ("add", "sub", "mul"):
    defelementwise(_op)
for _op in ("lt", "gt", "le", "ge", "eq", "ne"):
    defelementwise(_op, result="bool")
for _op in ("and", "or"):
    defelementwise(_op, result="bool")
defelementwise("not", result="bool")
defelementwise("neg", result="same")
defelementwise("div", result="float", float_inputs=True)
defelementwise("root", result="float", python=False, float_inputs=True)


def _pow(b, e, args):
    base, exp = args
    if base.kind != "float" and exp.kind != "float" and (_natural(exp.code) or "natural" in e.attrs):
        # int ** int with an exponent known to be >= 0: an integer
        if _python_ok(args):
            return Val(b.emit("power", base.code, exp.code, hint="s"), kind="int", python=True)
        codes, axes, rank = _operands(b, args, "int")
        return Val(b.emit("pow", *codes, hint="v"), axes, rank, "int")
    # A float; for int ** int that is where the exponent may be negative (i^{-1} is 1/i), from
    # the source alone (kokoyi.compiler.signs), so that no dtype depends on the values.
    if _python_ok(args):
        if base.kind != "float" and exp.kind != "float":
            return Val(b.emit("float_power", base.code, exp.code, hint="s"), kind="float", python=True)
        return Val(b.emit("power", base.code, exp.code, hint="s"), kind="float", python=True)
    codes, axes, rank = _operands(b, args, "float")
    if base.python:
        codes[0] = b.tensor(base, "float")
    return Val(b.emit("pow", *codes, hint="v"), axes, rank, "float")


def _natural(code) -> bool:
    return type(code) is int and code >= 0


RULES["pow"] = _pow


def _indicator(b, e, args):
    (c,) = args
    if c.python:
        return Val(b.emit("indicator_py", c.code, hint="s"), kind="float", python=True)
    return Val(b.emit("to", c.code, dtype=b.dtype, hint="v"), c.axes, c.rank, "float")


RULES["indicator"] = _indicator


# ---- shapes ---------------------------------------------------------------------------------
def _dim(b, e, args):
    (x,) = args
    return Val(b.emit("size", x.code, x.lead + e.attrs[0], hint="n"), kind="int", python=True)


def _bars(b, e, args):
    (x,) = args
    if x.what == "list":
        return Val(len(x.info[0]), kind="int", python=True)
    if x.is_tensor and not x.python and x.rank >= 1:
        return Val(b.emit("size", x.code, x.lead, hint="n"), kind="int", python=True)
    return RULES["abs"](b, e, args)


def _transpose(b, e, args):
    (x,) = args
    if x.rank < 2:
        return x
    return Val(b.emit("transpose", x.code, hint="v"), x.axes, x.rank, x.kind)


RULES["dim"] = _dim
RULES["bars"] = _bars
RULES["transpose"] = _transpose


# ---- products -------------------------------------------------------------------------------
def _matmul(b, e, args):
    left, right = args
    if left.rank == 0 or right.rank == 0:
        raise b.unsupported("@ of a scalar", e)
    kind = promote([left.kind, right.kind])
    if kind == "float" and left.axes != right.axes and left.rank <= 2 and right.rank <= 2:
        return einsum_matmul(b, left, right, kind)
    axes = b.union(left, right)
    lc = b.align(Val(b.tensor(left, kind), left.axes, left.rank, kind), axes, left.rank)
    rc = b.align(Val(b.tensor(right, kind), right.axes, right.rank, kind), axes, right.rank)
    rank = left.rank + right.rank - 2
    return Val(b.emit("matmul", lc, rc, left.rank, right.rank, hint="v"), axes, rank, kind)


def einsum_matmul(b, left: Val, right: Val, kind: str, summed: str | None = None) -> Val:
    """left @ right for operands that vary with different axes, as one einsum: a parameter is
    never broadcast over the batch (torch folds the axes into the rows of one product), and
    `summed` (a loop axis of both) is contracted as well (a big operator's sum of products)."""
    if summed is None and not left.axes and left.rank == 2 and right.rank == 1:  # W @ x on a batch of x
        code = b.emit("linear", b.tensor(right, kind), b.tensor(left, kind), hint="v")
        return Val(code, right.axes, 1, kind)
    axes = b.union(left, right)
    if kind == "float" and left.rank == 2 and right.rank == 2:
        # Matrices: one matrix product whose rows are every row of every left matrix (what
        # einsum does too, less its permutes and copies, forward and backward).
        if summed is None and left.axes and right.axes and not set(left.axes) & set(right.axes):
            current = list(left.axes) + ["m"] + list(right.axes) + ["k"]
            perm = tuple(current.index(a) for a in list(axes) + ["m", "k"])
            code = b.emit("matmul_rows", b.tensor(left, kind), b.tensor(right, kind), len(right.axes),
                          None if perm == tuple(range(len(perm))) else perm, hint="v")
            return Val(code, axes, 2, kind)
        if summed is not None and right.axes == (summed,):
            code = b.emit("matmul_summed", b.tensor(left, kind), b.tensor(right, kind), left.axes.index(summed),
                          hint="v")
            return Val(code, tuple(a for a in left.axes if a != summed), 2, kind)
    letters = dict(zip(axes, "abcdefghijopqrstuvwxyz"))
    own = {1: ("n",), 2: ("m", "n")}
    lsub = "".join(letters[a] for a in left.axes) + "".join(own[left.rank])
    rsub = "".join(letters[a] for a in right.axes) + ("n" if right.rank == 1 else "nk")
    out_axes = tuple(a for a in axes if a != summed)
    osub = "".join(letters[a] for a in out_axes) + ("m" if left.rank == 2 else "") + ("k" if right.rank == 2 else "")
    code = b.emit("einsum", f"{lsub},{rsub}->{osub}", b.tensor(left, kind), b.tensor(right, kind), hint="v")
    return Val(code, out_axes, left.rank + right.rank - 2, kind)


def _cdot(b, e, args):
    if args[0].rank == 0 or args[1].rank == 0:
        return RULES["mul"](b, e, args)
    return _matmul(b, e, args)


RULES["matmul"] = _matmul
RULES["cdot"] = _cdot


# ---- over the per-sample part ---------------------------------------------------------------
# Reductions of a vector that are one torch method over the last axis.
LAST_AXIS = {"mean", "var", "std", "logsumexp", "reduce_sum", "reduce_max", "reduce_min"}


def deftrailing(op: str, result: str, float_inputs: bool = True, min_rank: int = 0, keeps_rank: bool = False):
    """A primitive over a value's whole per-sample part (a whole-value reduction such as
    \\sum(x) or \\operatorname{mean}) or along its last axis (softmax): it acts on the trailing
    dimensions, so the leading axes pass through."""

    def rule(b, e, args):
        (x,) = args
        if not x.is_tensor:
            raise b.unsupported(f"{op} of a non-number", e)
        kind = "float" if float_inputs else x.kind if result == "same" else result
        if x.rank < min_rank:
            raise b.unsupported(f"{op} of a scalar", e)
        code = b.tensor(x, "float" if float_inputs else None)
        if (x.rank == 1 and op in LAST_AXIS and (float_inputs or x.kind == "float")) or op in ("softmax", "log_softmax"):
            out = b.emit(op + "_last", code, hint=op)  # one torch call
        else:
            out = b.emit("trailing", code, x.rank, *((e.attrs[0],) if e.attrs else ()), op=op, hint=op)
        return Val(out, x.axes, x.rank if keeps_rank else 0, kind)

    RULES[op] = rule
    return rule


# The built-ins, by their family in the one table (kokoyi/compiler/builtins.py BATCHING).
_FAMILIES = {
    "float": lambda op: defelementwise(op, result="float", float_inputs=True),
    "same": lambda op: defelementwise(op, result="same"),
    "int": lambda op: defelementwise(op, result="int"),
    "broadcast": lambda op: defelementwise(op, python=False, tensor_args=True),
    "whole": lambda op: deftrailing(op, "int" if op in ("reduce_argmax", "reduce_argmin") else
                                    "float" if op in ("mean", "var", "std", "logsumexp") else "same",
                                    float_inputs=op in ("mean", "var", "std", "logsumexp")),
    "last": lambda op: deftrailing(op, "float", min_rank=1, keeps_rank=True),
}
for _op, _family in BATCHING.items():
    _FAMILIES[_family](_op)
deftrailing("norm", "float")
_clip_tensors = RULES["clip"]


def _clip(b, e, args):
    """clip(x, lo, hi) of a float tensor between two Python numbers: torch.clamp takes them as
    they are (no tensor made per call; the same values and gradient, x's dtype)."""
    x, lo, hi = args
    if x.is_tensor and not x.python and x.kind == "float" and lo.python and hi.python \
            and lo.kind != "bool" and hi.kind != "bool":
        return Val(b.emit("clip", x.code, lo.code, hi.code, hint="v"), x.axes, x.rank, "float")
    return _clip_tensors(b, e, args)


RULES["clip"] = _clip


def _pairwise_loss(op: str):
    def rule(b, e, args):
        codes, axes, rank = _operands(b, [Val(b.tensor(a, "float"), a.axes, a.rank, "float") for a in args], "float")
        return Val(b.emit("trailing2", codes[0], codes[1], rank, op=op, hint=op), axes, 0, "float")

    RULES[op] = rule


_pairwise_loss("mse")
_pairwise_loss("smooth_l1")


def _cross_entropy(b, e, args):
    logits, label = args
    axes = b.union(logits, label)
    lc = b.align(Val(b.tensor(logits, "float"), logits.axes, logits.rank, "float"), axes, logits.rank)
    yc = b.align(Val(b.tensor(label, "int"), label.axes, label.rank, "int"), axes, label.rank)
    return Val(b.emit("cross_entropy", lc, yc, hint="ce"), axes, logits.rank - 1, "float")


def _one_hot(b, e, args):
    i, n = args
    if not n.python:
        raise b.unsupported("\\operatorname{onehot} with a tensor length", e)
    code = b.tensor(i, "int")
    return Val(b.emit("one_hot", code, n.code, b.dtype, hint="onehot"), i.axes, i.rank + 1, "float")


def _concat(b, e, args):
    kind = promote([a.kind for a in args])
    axes = b.union(*args)
    parts = []
    for a in args:
        v = Val(b.tensor(a, kind), a.axes, a.rank, kind)
        if v.rank == 0:
            v = Val(b.emit("view", v.code, items=(..., None), hint="v"), v.axes, 1, kind)
        parts.append(b.expand(v, axes))
    vectors = all(a.rank <= 1 for a in args)  # (then nothing can fail: an unused one may be dropped)
    return Val(b.emit("cat", tuple(parts), len(axes), hint="cat", **({"vectors": True} if vectors else {})),
               axes, 1 if vectors else max(a.rank for a in args), kind)


def _function_value(b, e, args):
    return Val(None, what="builtin", info=e.attrs[0])


RULES["cross_entropy"] = _cross_entropy
RULES["one_hot"] = _one_hot
RULES["concat"] = _concat
RULES["function"] = _function_value


from kokoyi.compiler.batch import linalg  # noqa: F401  (registers its rules here)
