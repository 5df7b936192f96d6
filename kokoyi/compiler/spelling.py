"""Canonical Kokoyi spelling of expressions: the text that identifies a decorated name.

`G_t` and `G_{t}` are one name; its key is `G_{t}`. Keys are built from this spelling so
that any way of writing a name, in source or in a `kokoyi.symbol[...]` lookup, meets the
same key.
"""
from __future__ import annotations

import re

from kokoyi.compiler import ast as A

BINARY_SPELLING = {"and": "\\land", "or": "\\lor"}
COMPARE_SPELLING = {"<": "<", ">": ">", "<=": "\\le", ">=": "\\ge", "==": "=", "!=": "\\ne"}


def spell(e) -> str:
    """The canonical source text of an expression."""
    match e:
        case A.Name():
            return e.key
        case A.Ref():  # resolved nodes spell as the name written
            return e.name.key
        case A.Constant():
            return e.key
        case A.Num():
            return e.text
        case A.Paren():
            return f"({spell(e.expr)})"
        case A.Group():
            return f"{{{spell(e.expr)}}}"
        case A.Unary(op="not"):
            return f"\\lnot {spell(e.operand)}"
        case A.Unary():
            return f"{e.op}{spell(e.operand)}"
        case A.Binary():
            op = e.spelling or BINARY_SPELLING.get(e.op, e.op)
            return f"{spell(e.left)} {op} {spell(e.right)}"
        case A.Compare():
            return f"{spell(e.left)} {COMPARE_SPELLING[e.op]} {spell(e.right)}"
        case A.Juxtapose():
            return f"{spell(e.left)} {spell(e.right)}"
        case A.Power():
            if e.spelling == "**":
                return f"{spell(e.base)} ** {spell(e.exponent)}"
            return f"{spell(e.base)}^{_arg(e.exponent)}"
        case A.Transpose():
            return f"{spell(e.operand)}^\\top"
        case A.Frac():
            return f"\\frac{_group(e.numerator)}{_group(e.denominator)}"
        case A.Sqrt():
            deg = f"[{spell(e.degree)}]" if e.degree is not None else ""
            return f"\\sqrt{deg}{_group(e.radicand)}"
        case A.Bars():
            return f"|{spell(e.operand)}|"
        case A.Norm():
            order = {None: "", "1": "_1", "2": "_2", "inf": "_\\infty"}[e.order]
            return f"\\|{spell(e.operand)}\\|{order}"
        case A.Rounding():
            return f"\\l{e.kind} {spell(e.operand)} \\r{e.kind}"
        case A.Call():
            return f"{spell(e.func)}({', '.join(spell(a) for a in e.args)})"
        case A.Slice():
            return f"{spell(e.start) if e.start else ''}:{spell(e.stop) if e.stop else ''}"
        case A.Index():
            return f"{spell(e.target)}[{', '.join(spell(i) for i in e.items)}]"
        case A.Builtin():
            return f"\\{e.name}"
        case A.BuiltinCall():
            return f"\\{e.name}({', '.join(spell(a) for a in e.args)})"
        case A.Reduce():
            return f"\\{e.op}({', '.join(spell(a) for a in e.args)})"
        case A.BigOp():
            b = e.bound
            head = "\\mathbb{E}" if e.op == "mean" else f"\\{e.op}"
            return f"{head}_{{{spell(b.var)}={spell(b.lower)}}}^{{{spell(b.upper)}}} {spell(e.body)}"
        case A.SetBuilder():
            lows = ", ".join(f"{spell(b.var)}={spell(b.lower)}" for b in e.bounds)
            ups = ", ".join(spell(b.upper) for b in e.bounds)
            return f"\\{{{spell(e.element)}\\}}_{{{lows}}}^{{{ups}}}"
        case A.Cases():
            rows = []
            for r in e.rows:
                cond = "\\text{otherwise}" if r.condition is None else f"\\text{{if }} {spell(r.condition)}"
                rows.append(f"{spell(r.value)} & {cond}")
            return "\\begin{cases} " + " \\\\ ".join(rows) + " \\end{cases}"
        case A.Indicator():
            return f"\\mathbb{{1}}[{spell(e.condition)}]"
        case A.Matrix():
            rows = " \\\\ ".join(" & ".join(spell(x) for x in row.entries) for row in e.rows)
            return f"\\begin{{{e.delimiter}}} {rows} \\end{{{e.delimiter}}}"
        case A.LogBase():
            return f"\\log_{{{spell(e.base)}}}({spell(e.operand)})"
        case A.Inverse():
            return f"{spell(e.operand)}^{{-1}}"
    raise TypeError(f"cannot spell {type(e).__name__}")


def _group(e) -> str:
    """A macro argument, always braced: `\\frac{a}{2}` (`\\fraca2` would be one command word)."""
    e = e.expr if isinstance(e, A.Group) else e
    return f"{{{spell(e)}}}"


def _arg(e) -> str:
    """A TeX argument: braces unless the spelling is one digit or letter."""
    e = e.expr if isinstance(e, A.Group) else e
    text = spell(e)
    return text if re.fullmatch(r"[A-Za-z0-9]", text) else f"{{{text}}}"


_COMMAND = re.compile(r"\\([A-Za-z]+)")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def identifier_hint(text: str) -> str:
    """A readable identifier fragment for a spelling: `t - 1` -> `t_1`, `\\alpha` -> `alpha`."""
    text = text.replace("'", "_prime").replace("\\infty", "inf")
    if "\\" in text:  # (else nothing to drop: a template's `\1` makes re import itself per call)
        text = _COMMAND.sub(r"\1", text)
    text = _NOT_ALNUM.sub("_", text).strip("_")
    return text or "x"
