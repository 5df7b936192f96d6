"""Helpers for kokoyi's unit tests (the `*_test.py` files beside each module).

Not a test module itself: it holds no tests, only the small tools they share.
"""
from __future__ import annotations

import torch

from kokoyi.compiler import ast as A
from kokoyi.errors import KokoyiError, Source

__all__ = ["Host", "expect_error", "parse_expr", "parse_program", "sexpr", "value"]


def parse_program(text: str, filename: str = "t.kyi") -> A.Program:
    """The AST of text after the parse and build passes only."""
    from kokoyi.compiler.builder import build
    from kokoyi.compiler.parser import parse

    source = Source(text, filename)
    return build(parse(source), source)


def parse_expr(expr: str) -> A.Node:
    """The AST of one expression, read as the value of `q \\gets EXPR \\\\`."""
    return parse_program(f"q \\gets {expr} \\\\").items[0].value


def sexpr(e) -> str:
    """A compact structural form of an expression AST: `(+ a (* b c))`.

    Parentheses and braces are looked through, so two spellings of one tree compare equal.
    """
    match e:
        case A.Name():
            return e.key
        case A.Num():
            return repr(e.value)
        case A.Paren() | A.Group():
            return sexpr(e.expr)
        case A.Unary():
            return f"({e.op} {sexpr(e.operand)})"
        case A.Binary() | A.Compare():
            return f"({e.op} {sexpr(e.left)} {sexpr(e.right)})"
        case A.Juxtapose():
            return f"(jux {sexpr(e.left)} {sexpr(e.right)})"
        case A.Power():
            return f"(^ {sexpr(e.base)} {sexpr(e.exponent)})"
        case A.Transpose():
            return f"(T {sexpr(e.operand)})"
        case A.Frac():
            return f"(frac {sexpr(e.numerator)} {sexpr(e.denominator)})"
        case A.Sqrt():
            degree = "" if e.degree is None else f" {sexpr(e.degree)}"
            return f"(sqrt {sexpr(e.radicand)}{degree})"
        case A.Bars():
            return f"(bars {sexpr(e.operand)})"
        case A.Norm():
            return f"(norm{e.order or ''} {sexpr(e.operand)})"
        case A.Rounding():
            return f"({e.kind} {sexpr(e.operand)})"
        case A.Call():
            return f"(call {' '.join(sexpr(x) for x in (e.func, *e.args))})"
        case A.Index():
            return f"(idx {' '.join(sexpr(x) for x in (e.target, *e.items))})"
        case A.Slice():
            return f"(: {sexpr(e.start) if e.start else '_'} {sexpr(e.stop) if e.stop else '_'})"
        case A.Builtin():
            return f"\\{e.name}"
        case A.BuiltinCall():
            return f"(\\{e.name} {' '.join(sexpr(a) for a in e.args)})"
        case A.Reduce():
            return f"(\\{e.op}() {' '.join(sexpr(a) for a in e.args)})"
        case A.BigOp():
            b = e.bound
            return f"({e.op} {sexpr(b.var)} {sexpr(b.lower)} {sexpr(b.upper)} {sexpr(e.body)})"
        case A.SetBuilder():
            bounds = " ".join(f"{sexpr(b.var)} {sexpr(b.lower)} {sexpr(b.upper)}" for b in e.bounds)
            return f"(set {sexpr(e.element)} {bounds})"
        case A.Cases():
            rows = " ".join(f"[{sexpr(r.value)} {'else' if r.condition is None else sexpr(r.condition)}]"
                            for r in e.rows)
            return f"(cases {rows})"
        case A.Indicator():
            return f"(1 {sexpr(e.condition)})"
        case A.LogBase():
            return f"(log_{sexpr(e.base)} {sexpr(e.operand)})"
        case A.Matrix():
            rows = " ".join(f"[{' '.join(sexpr(x) for x in r.entries)}]" for r in e.rows)
            return f"(matrix {rows})"
    raise TypeError(f"no s-expression for {type(e).__name__}")


def expect_error(source: str, cls=KokoyiError, filename: str = "t.kyi") -> KokoyiError:
    """The error kokoyi.compile(source) raises; fails the test if it raises nothing or
    something that is not a cls."""
    import kokoyi

    try:
        kokoyi.compile(source, filename=filename)
    except KokoyiError as err:
        assert isinstance(err, cls), f"expected {cls.__name__}, got {type(err).__name__}: {err}"
        return err
    raise AssertionError(f"expected {cls.__name__}, but the source compiled:\n{source}")


def value(expr: str, prelude: str = ""):
    """The value of a top-level constant `q \\gets EXPR \\\\` after prelude."""
    import kokoyi

    kokoyi.compile(f"{prelude}\nq \\gets {expr} \\\\\n", filename="value.kyi")
    return kokoyi.symbol["q"]


class Host(torch.nn.Module):
    """A torch module whose get_parameters() returns what it was given (None: no method)."""

    def __init__(self, params=None, forward=None):
        super().__init__()
        self._params = params
        self._forward = forward
        for i, p in enumerate(params if isinstance(params, (tuple, list)) else [params]):
            if isinstance(p, torch.nn.Module):
                self.add_module(f"p{i}", p)

    def get_parameters(self):
        return self._params

    def forward(self, *args, **kw):
        return self._forward(self, *args, **kw)
