"""Lark parse tree -> Kokoyi AST (kokoyi.compiler.ast), with source spans."""
from __future__ import annotations

import re

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError

from kokoyi.compiler import ast as A
from kokoyi.compiler import keywords
from kokoyi.compiler.spelling import identifier_hint, spell
from kokoyi.errors import KokoyiError, KokoyiSyntaxError, Source, Span

OPERATORS = {
    "PLUS": "+", "MINUS": "-", "STAR": "*", "SLASH": "/", "AT": "@", "CDOT": "@", "TIMES": "*",
    "CIRC": "*", "ODOT": "*", "LOR": "or", "LAND": "and", "LNOT": "not",
    "LT": "<", "GT": ">", "EQ": "==", "LE": "<=", "GE": ">=", "NE": "!=",
}
BIGOP_NAMES = {"sum", "prod", "max", "min", "argmax", "argmin"}
FONT_HINTS = {"mathbf": "bf", "boldsymbol": "bs", "mathcal": "cal"}
PUNCTUATION = {"LBRACE", "RBRACE", "LPAR", "RPAR", "LSQB", "RSQB", "COMMA", "SEMI", "END", "GETS", "EQ"}


def token_span(tok: Token) -> Span:
    end_col = tok.end_column if tok.end_column is not None else tok.column + len(tok.value)
    return Span(tok.line, tok.column, tok.end_line or tok.line, end_col)


def _nodes(children):
    """Children without punctuation tokens."""
    return [c for c in children if not (isinstance(c, Token) and c.type in PUNCTUATION)]


@v_args(meta=True)
class AstBuilder(Transformer):
    """Turns the lark tree into AST nodes; raises KokoyiSyntaxError for ill-formed parts."""

    def __init__(self, source: Source) -> None:
        super().__init__(visit_tokens=False)
        self.source = source

    # ---- helpers ----
    def _span(self, meta, children=()) -> Span:
        if not getattr(meta, "empty", True):
            return Span(meta.line, meta.column, meta.end_line, meta.end_column)
        for c in children:
            if isinstance(c, Token):
                return token_span(c)
            if isinstance(c, A.Node):
                return c.span
        return Span(1, 1, 1, 2)

    def _error(self, span: Span, message: str) -> KokoyiSyntaxError:
        return KokoyiSyntaxError.at(self.source, span, message)

    # ---- program structure ----
    def start(self, meta, children):
        return A.Program(self._span(meta, children), tuple(children))

    def module(self, meta, children):
        name, signature, *body = _nodes(children[1:-1])
        inputs, params, has_params = signature
        return A.Module(self._span(meta, children), name, inputs, params, tuple(body), has_params)

    def function(self, meta, children):
        parts = _nodes(children[1:-1])
        name, rest = parts[0], parts[1:]
        args = ()
        if rest and isinstance(rest[0], tuple):
            args, rest = rest[0], rest[1:]
        return A.Function(self._span(meta, children), name, args, tuple(rest))

    def signature(self, meta, children):
        has_semi = any(isinstance(c, Token) and c.type == "SEMI" for c in children)
        if has_semi:
            i = next(i for i, c in enumerate(children) if isinstance(c, Token) and c.type == "SEMI")
            before, after = children[:i], children[i + 1:]
        else:
            before, after = children, []
        inputs = next((c for c in before if isinstance(c, tuple)), ())
        params = next((c for c in after if isinstance(c, tuple)), ())
        return inputs, params, has_semi

    def decl_list(self, meta, children):
        return tuple(_nodes(children))

    def decl(self, meta, children):
        parts = [c for c in _nodes(children) if not (isinstance(c, Token) and c.type == "IN")]
        name = parts[0]
        annotation = parts[1] if len(parts) > 1 else None
        return A.Decl(self._span(meta, children), name, annotation)

    def type_expr(self, meta, children):
        field_tok = children[2]
        if field_tok.value not in ("R", "Z", "N"):
            raise self._error(token_span(field_tok),
                              f"unknown type `\\mathbb{{{field_tok.value}}}`; use \\mathbb{{R}}, \\mathbb{{Z}} or \\mathbb{{N}}")
        dims = children[-1] if isinstance(children[-1], tuple) else ()
        return A.TypeAnnotation(self._span(meta, children), field_tok.value, dims)

    def dims(self, meta, children):
        return tuple(c for c in children if isinstance(c, A.Node))

    def dim(self, meta, children):
        tok = children[0]
        if tok.type == "NUMBER":
            return self._number(tok)
        key = tok.value if tok.type == "NAME" else tok.value
        return A.Name(token_span(tok), key, identifier_hint(key))

    # ---- statements ----
    def definition(self, meta, children):
        (target, params), value, *rest = _nodes(children)
        where, comment = self._where_comment(rest)
        return A.Definition(self._span(meta, children), target, params, value, where, comment)

    def return_stmt(self, meta, children):
        values, *rest = _nodes(children[1:])
        where, comment = self._where_comment(rest)
        return A.Return(self._span(meta, children), values, where, comment)

    def _where_comment(self, rest):
        where, comment = (), None
        for part in rest:
            if isinstance(part, Token) and part.type == "COMMENT_TEXT":
                comment = re.match(r"\\Comment\s*\{(.*)\}\Z", part.value, re.S).group(1)
            elif isinstance(part, tuple):
                where = part
        return where, comment

    def where_clause(self, meta, children):
        return tuple(c for c in children if isinstance(c, A.Definition))

    def binding(self, meta, children):
        (target, params), value = _nodes(children)
        return A.Definition(self._span(meta, children), target, params, value)

    def target(self, meta, children):
        parts = _nodes(children)
        name = parts[0]
        has_parens = any(isinstance(c, Token) and c.type == "LPAR" for c in children)
        params = (parts[1] if len(parts) > 1 else ()) if has_parens else None
        return name, params

    def target_name(self, meta, children):
        parts = _nodes(children)
        name = parts[0]
        self._check_definable(name)
        if len(parts) == 1:
            return name
        sup = parts[-1]
        text = spell(sup)
        return A.Name(self._span(meta, children), f"{name.key}^{{({text})}}",
                      f"{name.hint}_{identifier_hint(text)}", inner=name, exponent=sup)

    def _check_definable(self, name: A.Name) -> None:
        """A defined name's subscript must be a label (letters, digits), not arithmetic."""
        for idx in name.indices:
            if not isinstance(idx, (A.Name, A.Num)):
                raise self._error(idx.span, f"`{name.key}` cannot be defined: a subscript in a defined name "
                                            "must be a name or a number")
        if name.inner is not None:
            self._check_definable(name.inner)

    def name_list(self, meta, children):
        return tuple(c for c in children if isinstance(c, A.Name))

    def expr_list(self, meta, children):
        return tuple(_nodes(children))

    def args(self, meta, children):
        return tuple(_nodes(children))

    def index_list(self, meta, children):
        return tuple(_nodes(children))

    # ---- expressions ----
    def binop(self, meta, children):
        left, op, right = children
        return A.Binary(self._span(meta, children), OPERATORS[op.type], left, right, op.value)

    def unop(self, meta, children):
        op, operand = children
        return A.Unary(self._span(meta, children), OPERATORS[op.type], operand)

    def compare(self, meta, children):
        left, op, right = children
        return A.Compare(self._span(meta, children), OPERATORS[op.type], left, right)

    def juxtapose(self, meta, children):
        left, right = children
        return A.Juxtapose(self._span(meta, children), left, right)

    def power(self, meta, children):
        base, op, exponent = children
        return A.Power(self._span(meta, children), base, exponent, "**" if op.type == "POW" else "^")

    def transpose(self, meta, children):
        return A.Transpose(self._span(meta, children), children[0])

    def func_bare(self, meta, children):
        tok, operand = children
        return A.BuiltinCall(self._span(meta, children), tok.value[1:], (operand,), "bare")

    def func_value(self, meta, children):
        tok = children[0]
        return A.Builtin(token_span(tok), tok.value[1:])

    def func_call(self, meta, children):
        tok = children[0]
        args = next((c for c in children if isinstance(c, tuple)), ())
        return A.BuiltinCall(self._span(meta, children), tok.value[1:], args, "paren")

    def reduce_call(self, meta, children):
        (op_name, _), args = children[0], children[2]
        if op_name == "mean":
            return A.BuiltinCall(self._span(meta, children), "Mean", args, "paren")
        return A.Reduce(self._span(meta, children), op_name, args)

    def index(self, meta, children):
        target, _, items, _ = children
        return A.Index(self._span(meta, children), target, items)

    def call(self, meta, children):
        func = children[0]
        args = next((c for c in children if isinstance(c, tuple)), ())
        return A.Call(self._span(meta, children), func, args)

    def paren(self, meta, children):
        return A.Paren(self._span(meta, children), children[1])

    def group(self, meta, children):
        return A.Group(self._span(meta, children), children[1])

    def slice(self, meta, children):
        colon = next(i for i, c in enumerate(children) if isinstance(c, Token) and c.type == "COLON")
        start = next((c for c in children[:colon] if isinstance(c, A.Node)), None)
        stop = next((c for c in children[colon + 1:] if isinstance(c, A.Node)), None)
        return A.Slice(self._span(meta, children), start, stop)

    def number(self, meta, children):
        return self._number(children[0])

    def _number(self, tok: Token) -> A.Num:
        text = tok.value
        value = int(text) if re.fullmatch(r"\d+", text) else float(text)
        return A.Num(token_span(tok), value, text)

    def frac(self, meta, children):
        _, num, den = children
        return A.Frac(self._span(meta, children), num, den)

    def sqrt(self, meta, children):
        parts = [c for c in children if isinstance(c, A.Node)]
        degree = parts[0] if len(parts) == 2 else None
        return A.Sqrt(self._span(meta, children), parts[-1], degree)

    def bars(self, meta, children):
        return A.Bars(self._span(meta, children), children[1])

    def norm(self, meta, children):
        operand = children[1]
        order = None
        if len(children) > 3:
            sub = A.strip(children[4]) if isinstance(children[4], A.Node) else children[4]
            text = spell(sub)
            order = {"1": "1", "2": "2", "\\infty": "inf"}.get(text)
            if order is None:
                raise self._error(sub.span, f"unknown norm `\\|.\\|_{{{text}}}`; use _1, _2 or _\\infty")
        return A.Norm(self._span(meta, children), operand, order)

    def ceil(self, meta, children):
        return A.Rounding(self._span(meta, children), "ceil", children[1])

    def floor(self, meta, children):
        return A.Rounding(self._span(meta, children), "floor", children[1])

    def indicator(self, meta, children):
        one = children[2]
        if one.value != "1":
            raise self._error(token_span(one), f"`\\mathbb{{{one.value}}}` is not an indicator; write \\mathbb{{1}}[c]")
        opener = children[4]
        cond = next(c for c in children[5:] if isinstance(c, A.Node))
        style = {"LSQB": "[", "LPAR": "(", "UNDERSCORE": "_"}[opener.type]
        return A.Indicator(self._span(meta, children), A.strip(cond) if style == "_" else cond, style)

    def bigop_head(self, meta, children):
        span = self._span(meta, children)
        if children[0].type == "BIGOP":
            return children[0].value[1:], span
        if children[0].type == "ARG":
            op = children[1].value[1:]
            if op not in ("max", "min"):
                raise self._error(span, f"`\\arg\\{op}` is not an operator; use \\arg\\max or \\arg\\min")
            return "arg" + op, span
        word = children[2].value
        if children[0].type == "MATHBB":
            if word != "E":
                raise self._error(span, f"`\\mathbb{{{word}}}` is not an operator here; did you mean \\mathbb{{E}}?")
            return "mean", span
        if word not in BIGOP_NAMES:
            raise self._error(span, f"`\\operatorname*{{{word}}}` is not a big operator; use one of "
                                    + ", ".join(sorted(BIGOP_NAMES)))
        return word, span

    def limits(self, meta, children):
        bindings = next(c for c in children if isinstance(c, list))
        uppers = next(c for c in children if isinstance(c, tuple))
        return bindings, uppers, self._span(meta, children)

    def bindings(self, meta, children):
        return [c for c in children if isinstance(c, tuple)]

    def bound(self, meta, children):
        name, _, lower = children
        return name, lower

    def tex_args(self, meta, children):
        return tuple(c for c in children if isinstance(c, A.Node))

    def _bounds(self, limits) -> tuple[A.Bound, ...]:
        bindings, uppers, span = limits
        if len(bindings) != len(uppers):
            raise self._error(span, f"{len(bindings)} index variable(s) but {len(uppers)} upper bound(s)")
        return tuple(A.Bound(var.span.to(up.span), var, lo, up) for (var, lo), up in zip(bindings, uppers))

    def bigop(self, meta, children):
        (op, op_span), limits, body = children
        bounds = self._bounds(limits)
        if len(bounds) != 1:
            raise self._error(limits[2], f"`\\{op}` takes one index variable")
        return A.BigOp(self._span(meta, children), op, bounds[0], body)

    def setbuilder(self, meta, children):
        _, element, _, limits = children
        return A.SetBuilder(self._span(meta, children), element, self._bounds(limits))

    def cases(self, meta, children):
        rows = tuple(c for c in children if isinstance(c, A.CaseRow))
        for row in rows[:-1]:
            if row.condition is None:
                raise self._error(row.span, "only the last row of a cases may say `otherwise`")
        return A.Cases(self._span(meta, children), rows)

    def case_row(self, meta, children):
        value, _, (condition, text) = children
        return A.CaseRow(self._span(meta, children), value, condition, text)

    def case_cond(self, meta, children):
        if isinstance(children[0], Token):
            tok = children[0]
            word = re.match(r"\\text\s*\{(.*)\}\Z", tok.value, re.S).group(1).strip()
            rest = children[1] if len(children) > 1 else None
            if word == "if" and rest is not None:
                return rest, "if"
            if word in ("otherwise", "else") and rest is None:
                return None, word
            what = "a condition after `\\text{if}`" if word == "if" else "`\\text{if }`, `\\text{otherwise}` or `\\text{else}`"
            raise self._error(token_span(tok), f"expected {what} in a cases row")
        return children[0], ""

    # ---- names ----
    def name(self, meta, children):
        return children[0]

    def plain_name(self, meta, children):
        tok = children[0]
        return A.Name(token_span(tok), tok.value, tok.value)

    def greek_name(self, meta, children):
        tok = children[0]
        return A.Name(token_span(tok), tok.value, identifier_hint(tok.value))

    def font(self, meta, children):
        font_tok, _, word, _ = children
        font = font_tok.value[1:]
        span = self._span(meta, children)
        if font in keywords.SAME_NAME_FONTS:
            return A.Name(span, word.value, word.value)
        return A.Name(span, f"\\{font}{{{word.value}}}", f"{word.value}_{FONT_HINTS[font]}")

    def accent(self, meta, children):
        tok, inner = children
        accent = tok.value[1:]
        return A.Name(self._span(meta, children), f"\\{accent}{{{inner.key}}}", f"{inner.hint}_{accent}")

    def accent_arg(self, meta, children):
        return next(c for c in children if isinstance(c, A.Name))

    def subscript(self, meta, children):
        inner, _, indices = children
        text = ",".join(spell(i) for i in indices)
        return A.Name(self._span(meta, children), f"{inner.key}_{{{text}}}",
                      f"{inner.hint}_{identifier_hint(text)}", inner=inner, indices=indices)

    def sub_arg(self, meta, children):
        if isinstance(children[0], Token) and children[0].type == "NUMBER":
            return (self._number(children[0]),)
        return tuple(c for c in children if isinstance(c, A.Node))

    def prime(self, meta, children):
        inner = children[0]
        return A.Name(self._span(meta, children), inner.key + "'", inner.hint + "_prime")

    def __default__(self, data, children, meta):
        raise AssertionError(f"no AST rule for {data}")


def build(tree: Tree, source: Source) -> A.Program:
    """The AST of a parsed unit."""
    try:
        return AstBuilder(source).transform(tree)
    except VisitError as err:
        # lark wraps what a rule raises; a KokoyiError is the user's, anything else a bug.
        if isinstance(err.orig_exc, KokoyiError):
            raise err.orig_exc.with_traceback(None) from None
        raise
