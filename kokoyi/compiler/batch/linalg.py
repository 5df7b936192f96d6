"""Rules for the language's second round (LANGUAGE.md 6): matrix literals, log bases, and
linear algebra on the last two per-sample axes (the leading axes are torch's batch axes)."""
from __future__ import annotations

from kokoyi.compiler.batch.layout import Val
from kokoyi.compiler.batch.rules import RULES


def rule(op: str):
    def register(fn):
        RULES[op] = fn
        return fn

    return register


def _float_tensor(b, v: Val) -> Val:
    return Val(b.tensor(v, "float"), v.axes, v.rank, "float")


def _matrix_of(b, e, v: Val, what: str, least: int = 2) -> Val:
    if not v.is_tensor or v.python or v.rank < least:
        raise b.unsupported(f"{what} of a value of per-sample rank {0 if v.python else v.rank}", e)
    return _float_tensor(b, v)


@rule("log_base")
def _log_base(b, e, args):
    x, base = args
    if base.python and base.code in (2, 10) and not x.python:  # exact where torch has its own
        return Val(b.emit("log2" if base.code == 2 else "log10", b.as_float(x), hint="v"), x.axes, x.rank, "float")
    return RULES["div"](b, e, [RULES["log"](b, e, [x]), RULES["log"](b, e, [base])])


@rule("matrix")
def _matrix(b, e, args):
    rows, cols = e.attrs
    if any(not a.is_tensor for a in args):
        raise b.unsupported("a matrix literal with an entry that is not a number", e)
    axes = b.union(*args)
    rank = max(a.rank for a in args)
    entries = tuple(a.code if a.python else b.align(_float_tensor(b, a), axes, rank, exact=True) for a in args)
    code = b.emit("matrix", entries, rows, cols, len(axes), b.dtype, hint="M")
    return Val(code, axes, rank + (2 if rows > 1 and cols > 1 else 1), "float")


@rule("inverse")
def _inverse(b, e, args):
    a = _matrix_of(b, e, args[0], "A^{-1}")
    return Val(b.emit("inverse", a.code, hint="inv"), a.axes, a.rank, "float")


@rule("inverse_if_matrix")
def _inverse_if_matrix(b, e, args):
    (a,) = args
    if a.is_tensor and not a.python and a.rank >= 2:
        return _inverse(b, e, args)
    return RULES["pow"](b, e, [a, Val(-1, kind="int", python=True)])


@rule("det")
def _det(b, e, args):
    a = _matrix_of(b, e, args[0], "\\det")
    return Val(b.emit("det", a.code, hint="det"), a.axes, a.rank - 2, "float")


@rule("logdet")
def _logdet(b, e, args):
    a = _matrix_of(b, e, args[0], "\\log\\det")
    return Val(b.emit("logdet", a.code, hint="logdet"), a.axes, a.rank - 2, "float")


@rule("trace")
def _trace(b, e, args):
    (a,) = args
    if not a.is_tensor or a.python or a.rank < 2:
        raise b.unsupported("a trace of a value of per-sample rank below 2", e)
    return Val(b.emit("trace", a.code, hint="tr"), a.axes, a.rank - 2, a.kind)


@rule("diag")
def _diag(b, e, args):
    (a,) = args
    if not a.is_tensor or a.python or a.rank < 1:
        raise b.unsupported("diag of a number", e)
    if a.rank == 1:
        return Val(b.emit("diag_embed", a.code, hint="D"), a.axes, 2, a.kind)
    return Val(b.emit("diagonal", a.code, hint="d"), a.axes, a.rank - 1, a.kind)


@rule("eye")
def _eye(b, e, args):
    (n,) = args
    if not (n.python and n.kind == "int"):
        raise b.unsupported("an identity whose size is not known without the data", e)
    return Val(b.emit("eye", n.code, b.dtype, hint="I"), (), 2, "float")


@rule("solve")
def _solve(b, e, args):
    a, rhs = args
    a = _matrix_of(b, e, a, "solve")
    if not rhs.is_tensor or rhs.python or rhs.rank < 1:
        raise b.unsupported("A^{-1} @ b with b a number", e)
    rhs = _float_tensor(b, rhs)
    axes = b.union(a, rhs)
    code = b.emit("solve_vector" if rhs.rank == 1 else "solve", b.align(a, axes, a.rank, exact=True),
                  b.align(rhs, axes, rhs.rank, exact=True), hint="x")
    return Val(code, axes, rhs.rank, "float")
