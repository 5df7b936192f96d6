"""Helpers for rewrites: affine forms over index variables, products, what a value reads."""
from __future__ import annotations

from kokoyi.compiler import ir


def walk(e):
    yield e
    for c in ir.children(e):
        yield from walk(c)


def uses_axes(e, names: set) -> bool:
    return any(isinstance(n, ir.Iota) and n.axis.name in names for n in walk(e))


def factors(e) -> list:
    """The factors of a product (a single factor when e is not a product)."""
    if isinstance(e, ir.Prim) and e.op == "mul":
        return factors(e.args[0]) + factors(e.args[1])
    return [e]


def linear(e, names: set):
    """(coefficient by axis name, symbolic terms [(sign, expr)], integer constant) when e is
    affine in the index variables `names` with integer coefficients, else None."""
    match e:
        case ir.Iota() if e.axis.name in names:
            return {e.axis.name: 1}, [], 0
        case ir.Lit(value=int(v)) if not isinstance(v, bool):
            return {}, [], v
        case ir.Prim(op="neg", args=(a,)):
            inner = linear(a, names)
            if inner is None:
                return None
            coef, terms, const = inner
            return {k: -c for k, c in coef.items()}, [(-s, t) for s, t in terms], -const
        case ir.Prim(op="add" | "sub", args=(a, b)):
            left, right = linear(a, names), linear(b, names)
            if left is None or right is None:
                return None
            sign = 1 if e.op == "add" else -1
            coef = dict(left[0])
            for k, c in right[0].items():
                coef[k] = coef.get(k, 0) + sign * c
            return coef, left[1] + [(sign * s, t) for s, t in right[1]], left[2] + sign * right[2]
        case ir.Prim(op="mul", args=(a, b)) if uses_axes(e, names):
            for k, other in ((a, b), (b, a)):
                if isinstance(k, ir.Lit) and isinstance(k.value, int) and not isinstance(k.value, bool):
                    inner = linear(other, names)
                    if inner is not None and not inner[1]:
                        return {v: k.value * c for v, c in inner[0].items()}, [], k.value * inner[2]
            return None
    if uses_axes(e, names):
        return None
    return {}, [(1, e)], 0


def terms_expr(terms) -> ir.Expr:
    """The sum of signed terms (0 when there are none)."""
    if not terms:
        return ir.Lit(0)
    first_sign, out = terms[0]
    if first_sign < 0:
        out = ir.Prim("neg", (out,))
    for sign, term in terms[1:]:
        out = ir.Prim("add" if sign > 0 else "sub", (out, term))
    return out


def is_lit(e, value) -> bool:
    return isinstance(e, ir.Lit) and not isinstance(e.value, bool) and e.value == value


def resolve(e, env: dict):
    """e, or the value of the let that binds it when e is a name (through chains of names),
    or the body of a let expression."""
    seen = 0
    while seen < 100:
        seen += 1
        if isinstance(e, ir.Var) and e.name in env:
            e = env[e.name]
        elif isinstance(e, ir.Let):  # (names are unique in a function: its body is the value)
            e = e.body
        else:
            return e
    return e


def same(a, b, env: dict) -> bool:
    """a and b are the same value (equal IR, or names bound to it)."""
    return a == b or resolve(a, env) == resolve(b, env)


def is_prim_of(e, op: str, x, env: dict) -> bool:
    """e is op(x) (a whole-value built-in of x), directly or through a let."""
    e = resolve(e, env)
    return isinstance(e, ir.Prim) and e.op == op and len(e.args) == 1 and same(e.args[0], x, env)
