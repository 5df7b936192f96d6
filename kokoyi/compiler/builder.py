"""Lark parse tree -> Kokoyi AST (kokoyi.compiler.ast), with source spans."""
from __future__ import annotations

import re

from lark import Token, Transformer, Tree
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
# (compiled once: `re.match(pattern, ...)` looks its pattern up in re's cache per call)
_COMMENT_TEXT = re.compile(r"\\Comment\s*\{(.*)\}\Z", re.S).match
_TEXT = re.compile(r"\\text\s*\{(.*)\}\Z", re.S).match
_DIGITS = re.compile(r"\d+").fullmatch
PUNCTUATION = {"LBRACE", "RBRACE", "LPAR", "RPAR", "LSQB", "RSQB", "COMMA", "SEMI", "END", "GETS", "EQ"}


def token_span(tok: Token) -> Span:
    end_col = tok.end_column if tok.end_column is not None else tok.column + len(tok.value)
    return Span(tok.line, tok.column, tok.end_line or tok.line, end_col)


def _start(children) -> tuple[int, int] | None:
    """(line, column) where the first child with a position starts (tokens, nodes, spans, inside tuples)."""
    for c in children:
        if isinstance(c, Token):
            if c.line is not None:
                return c.line, c.column
        elif isinstance(c, A.Node):
            span = c.span
            return span.line, span.column
        elif isinstance(c, Span):
            return c.line, c.column
        elif isinstance(c, (tuple, list)):
            found = _start(c)
            if found is not None:
                return found
    return None


def _end(children) -> tuple[int, int] | None:
    """(end line, end column) of the last child with a position."""
    for c in reversed(children):
        if isinstance(c, Token):
            if c.line is not None:
                return c.end_line or c.line, c.end_column if c.end_column is not None else c.column + len(c.value)
        elif isinstance(c, A.Node):
            span = c.span
            return span.end_line, span.end_column
        elif isinstance(c, Span):
            return c.end_line, c.end_column
        elif isinstance(c, (tuple, list)):
            found = _end(c)
            if found is not None:
                return found
    return None


def _nodes(children):
    """Children without punctuation tokens."""
    return [c for c in children if not (isinstance(c, Token) and c.type in PUNCTUATION)]


class AstBuilder(Transformer):
    """Turns the lark tree into AST nodes; raises KokoyiSyntaxError for ill-formed parts."""

    def __init__(self, source: Source) -> None:
        super().__init__(visit_tokens=False)
        self.source = source

    # ---- helpers ----
    def _span(self, children) -> Span:
        """From the start of the first child to the end of the last (lark's positions are off:
        computing them for every reduction cost more than the rest of the parse)."""
        start = _start(children)
        if start is None:
            return Span(1, 1, 1, 2)
        end_line, end_column = _end(children)
        return Span(start[0], start[1], end_line, end_column)  # (one span: no token's own span made on the way)

    def _error(self, span: Span, message: str) -> KokoyiSyntaxError:
        return KokoyiSyntaxError.at(self.source, span, message)

    # ---- program structure ----
    def start(self, children):
        return A.Program(self._span(children), tuple(children))

    def module(self, children):
        name, signature, *body = _nodes(children[1:-1])
        inputs, params, has_params = signature
        return A.Module(self._span(children), name, inputs, params, tuple(body), has_params)

    def function(self, children):
        parts = _nodes(children[1:-1])
        name, rest = parts[0], parts[1:]
        args = ()
        if rest and isinstance(rest[0], tuple):
            args, rest = rest[0], rest[1:]
        return A.Function(self._span(children), name, args, tuple(rest))

    def signature(self, children):
        has_semi = any(isinstance(c, Token) and c.type == "SEMI" for c in children)
        if has_semi:
            i = next(i for i, c in enumerate(children) if isinstance(c, Token) and c.type == "SEMI")
            before, after = children[:i], children[i + 1:]
        else:
            before, after = children, []
        inputs = next((c for c in before if isinstance(c, tuple)), ())
        params = next((c for c in after if isinstance(c, tuple)), ())
        return inputs, params, has_semi

    def decl_list(self, children):
        return tuple(_nodes(children))

    def decl(self, children):
        parts = [c for c in _nodes(children) if not (isinstance(c, Token) and c.type == "IN")]
        name = parts[0]
        annotation = parts[1] if len(parts) > 1 else None
        return A.Decl(self._span(children), name, annotation)

    def type_expr(self, children):
        field_tok = children[2]
        if field_tok.value not in ("R", "Z", "N"):
            raise self._error(token_span(field_tok),
                              f"unknown type `\\mathbb{{{field_tok.value}}}`; use \\mathbb{{R}}, \\mathbb{{Z}} or \\mathbb{{N}}")
        dims = children[-1] if isinstance(children[-1], tuple) else ()
        return A.TypeAnnotation(self._span(children), field_tok.value, dims)

    def dims(self, children):
        return tuple(c for c in children if isinstance(c, A.Node))

    def dim(self, children):
        tok = children[0]
        if tok.type == "NUMBER":
            return self._number(tok)
        key = tok.value if tok.type == "NAME" else tok.value
        return A.Name(token_span(tok), key, identifier_hint(key))

    # ---- statements ----
    def definition(self, children):
        (target, params), value, *rest = _nodes(children)
        where, comment = self._where_comment(rest)
        return A.Definition(self._span(children), target, params, value, where, comment)

    def return_stmt(self, children):
        values, *rest = _nodes(children[1:])
        where, comment = self._where_comment(rest)
        return A.Return(self._span(children), values, where, comment)

    def _where_comment(self, rest):
        where, comment = (), None
        for part in rest:
            if isinstance(part, Token) and part.type == "COMMENT_TEXT":
                comment = _COMMENT_TEXT(part.value).group(1)
            elif isinstance(part, tuple):
                where = part
        return where, comment

    def where_clause(self, children):
        return tuple(c for c in children if isinstance(c, A.Definition))

    def binding(self, children):
        (target, params), value = _nodes(children)
        return A.Definition(self._span(children), target, params, value)

    def target(self, children):
        parts = _nodes(children)
        name = parts[0]
        has_parens = any(isinstance(c, Token) and c.type == "LPAR" for c in children)
        params = (parts[1] if len(parts) > 1 else ()) if has_parens else None
        return name, params

    def target_name(self, children):
        parts = _nodes(children)
        name = parts[0]
        self._check_definable(name)
        if len(parts) == 1:
            return name
        sup = parts[-1]
        text = spell(sup)
        return A.Name(self._span(children), f"{name.key}^{{({text})}}",
                      f"{name.hint}_{identifier_hint(text)}", inner=name, exponent=sup)

    def _check_definable(self, name: A.Name) -> None:
        """A defined name's subscript must be a label (letters, digits), not arithmetic."""
        for idx in name.indices:
            if not isinstance(idx, (A.Name, A.Num)):
                raise self._error(idx.span, f"`{name.key}` cannot be defined: a subscript in a defined name "
                                            "must be a name or a number")
        if name.inner is not None:
            self._check_definable(name.inner)

    def name_list(self, children):
        return tuple(c for c in children if isinstance(c, A.Name))

    def expr_list(self, children):
        return tuple(_nodes(children))

    def args(self, children):
        return tuple(_nodes(children))

    def index_list(self, children):
        return tuple(_nodes(children))

    # ---- expressions ----
    def binop(self, children):
        left, op, right = children
        return A.Binary(self._span(children), OPERATORS[op.type], left, right, op.value)

    def unop(self, children):
        op, operand = children
        return A.Unary(self._span(children), OPERATORS[op.type], operand)

    def compare(self, children):
        left, op, right = children
        return A.Compare(self._span(children), OPERATORS[op.type], left, right)

    def juxtapose(self, children):
        left, right = children
        return A.Juxtapose(self._span(children), left, right)

    def power(self, children):
        base, op, exponent = children
        return A.Power(self._span(children), base, exponent, "**" if op.type == "POW" else "^")

    def transpose(self, children):
        return A.Transpose(self._span(children), children[0])

    def func_bare(self, children):
        head, operand = children
        if isinstance(head, _FuncBase):
            return A.LogBase(self._span([head.token, operand]), head.base, operand, "bare")
        return A.BuiltinCall(self._span(children), head.value[1:], (operand,), "bare")

    def func_value(self, children):
        head = children[0]
        if isinstance(head, _FuncBase):
            raise self._error(head.span, f"`{head.token.value}_{{...}}` needs its argument: write "
                                         f"`{head.token.value}_{{b}}(x)`")
        return A.Builtin(token_span(head), head.value[1:])

    def func_call(self, children):
        head = children[0]
        args = next((c for c in children if isinstance(c, tuple)), ())
        if isinstance(head, _FuncBase):
            span = self._span([head.token, *children[1:]])
            if len(args) != 1:
                raise self._error(span, f"`{head.token.value}_{{b}}` takes 1 argument, got {len(args)}")
            return A.LogBase(span, head.base, args[0], "paren")
        return A.BuiltinCall(self._span(children), head.value[1:], args, "paren")

    def func_base(self, children):
        tok, _, base = children
        span = token_span(tok).to(base.span)
        if tok.value != "\\log":
            raise self._error(span, f"`{tok.value}` takes no subscript; only `\\log` has a base "
                                    "(`\\log_2 x`, `\\log_{b}(x)`)")
        return _FuncBase(tok, base, span)

    def reduce_call(self, children):
        (op_name, _), args = children[0], children[2]
        if op_name == "mean":
            return A.BuiltinCall(self._span(children), "Mean", args, "paren")
        return A.Reduce(self._span(children), op_name, args)

    def index(self, children):
        target, _, items, _ = children
        return A.Index(self._span(children), target, items)

    def call(self, children):
        func = children[0]
        args = next((c for c in children if isinstance(c, tuple)), ())
        return A.Call(self._span(children), func, args)

    def paren(self, children):
        return A.Paren(self._span(children), children[1])

    def group(self, children):
        return A.Group(self._span(children), children[1])

    def slice(self, children):
        colon = next(i for i, c in enumerate(children) if isinstance(c, Token) and c.type == "COLON")
        start = next((c for c in children[:colon] if isinstance(c, A.Node)), None)
        stop = next((c for c in children[colon + 1:] if isinstance(c, A.Node)), None)
        return A.Slice(self._span(children), start, stop)

    def number(self, children):
        return self._number(children[0])

    def _number(self, tok: Token) -> A.Num:
        text = tok.value
        try:
            value = int(text) if _DIGITS(text) else float(text)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise self._error(token_span(tok), f"this integer has {len(text)} digits, more than Python reads "
                                               "in one literal; write it as a power, e.g. `10^{5000}`") from None
        return A.Num(token_span(tok), value, text)

    def frac(self, children):
        _, num, den = children
        return A.Frac(self._span(children), num, den)

    def sqrt(self, children):
        parts = [c for c in children if isinstance(c, A.Node)]
        degree = parts[0] if len(parts) == 2 else None
        return A.Sqrt(self._span(children), parts[-1], degree)

    def bars(self, children):
        return A.Bars(self._span(children), children[1])

    def norm(self, children):
        operand = children[1]
        order = None
        if len(children) > 3:
            sub = A.strip(children[4]) if isinstance(children[4], A.Node) else children[4]
            text = spell(sub)
            order = {"1": "1", "2": "2", "\\infty": "inf"}.get(text)
            if order is None:
                raise self._error(sub.span, f"unknown norm `\\|.\\|_{{{text}}}`; use _1, _2 or _\\infty")
        return A.Norm(self._span(children), operand, order)

    def ceil(self, children):
        return A.Rounding(self._span(children), "ceil", children[1])

    def floor(self, children):
        return A.Rounding(self._span(children), "floor", children[1])

    def indicator(self, children):
        one = children[2]
        if one.value != "1":
            raise self._error(token_span(one), f"`\\mathbb{{{one.value}}}` is not an indicator; write \\mathbb{{1}}[c]")
        opener = children[4]
        cond = next(c for c in children[5:] if isinstance(c, A.Node))
        style = {"LSQB": "[", "LPAR": "(", "UNDERSCORE": "_"}[opener.type]
        return A.Indicator(self._span(children), A.strip(cond) if style == "_" else cond, style)

    def bigop_head(self, children):
        span = self._span(children)
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

    def limits(self, children):
        bindings = next(c for c in children if isinstance(c, list))
        uppers = next(c for c in children if isinstance(c, tuple))
        return bindings, uppers, self._span(children)

    def bindings(self, children):
        return [c for c in children if isinstance(c, tuple)]

    def bound(self, children):
        name, _, lower = children
        return name, lower

    def tex_args(self, children):
        return tuple(c for c in children if isinstance(c, A.Node))

    def _bounds(self, limits) -> tuple[A.Bound, ...]:
        bindings, uppers, span = limits
        if len(bindings) != len(uppers):
            raise self._error(span, f"{len(bindings)} index variable(s) but {len(uppers)} upper bound(s)")
        return tuple(A.Bound(var.span.to(up.span), var, lo, up) for (var, lo), up in zip(bindings, uppers))

    def bigop(self, children):
        (op, op_span), limits, body = children
        bounds = self._bounds(limits)
        if len(bounds) != 1:
            raise self._error(limits[2], f"`\\{op}` takes one index variable")
        return A.BigOp(self._span(children), op, bounds[0], body)

    def setbuilder(self, children):
        _, element, _, limits = children
        return A.SetBuilder(self._span(children), element, self._bounds(limits))

    def matrix(self, children):
        begin, end = children[0], children[-1]
        kind = re.search(r"[bp]matrix", begin.value).group()
        closing = re.search(r"[bp]matrix", end.value).group()
        if closing != kind:
            raise self._error(token_span(end), f"`{begin.value}` is closed by `{end.value}`: "
                                               f"write `\\end{{{kind}}}`")
        rows = tuple(c for c in children if isinstance(c, A.MatrixRow))
        return A.Matrix(self._span(children), rows, kind)

    def matrix_row(self, children):
        return A.MatrixRow(self._span(children), tuple(c for c in children if isinstance(c, A.Node)))

    def cases(self, children):
        rows = tuple(c for c in children if isinstance(c, A.CaseRow))
        for row in rows[:-1]:
            if row.condition is None:
                raise self._error(row.span, "only the last row of a cases may say `otherwise`")
        return A.Cases(self._span(children), rows)

    def case_row(self, children):
        value, _, (condition, text) = children
        return A.CaseRow(self._span(children), value, condition, text)

    def case_cond(self, children):
        if isinstance(children[0], Token):
            tok = children[0]
            word = _TEXT(tok.value).group(1).strip()
            rest = children[1] if len(children) > 1 else None
            if word == "if" and rest is not None:
                return rest, "if"
            if word in ("otherwise", "else") and rest is None:
                return None, word
            what = "a condition after `\\text{if}`" if word == "if" else "`\\text{if }`, `\\text{otherwise}` or `\\text{else}`"
            raise self._error(token_span(tok), f"expected {what} in a cases row")
        return children[0], ""

    # ---- names ----
    def name(self, children):
        return children[0]

    name.passes_child = True  # (parse_ast's parser hands the child on without calling it: lalr.PASS)

    def plain_name(self, children):
        tok = children[0]
        value, line = tok.value, tok.line  # (token_span(tok), written out: a name per few tokens)
        end_col = tok.end_column if tok.end_column is not None else tok.column + len(value)
        return A.Name(Span(line, tok.column, tok.end_line or line, end_col), value, value)

    def greek_name(self, children):
        tok = children[0]
        return A.Name(token_span(tok), tok.value, identifier_hint(tok.value))

    def font(self, children):
        font_tok, _, word, _ = children
        font = font_tok.value[1:]
        span = self._span(children)
        hint = identifier_hint(word.value)
        if font in keywords.SAME_NAME_FONTS:
            return A.Name(span, word.value, hint)
        return A.Name(span, f"\\{font}{{{word.value}}}", f"{hint}_{FONT_HINTS[font]}")

    def accent(self, children):
        tok, inner = children
        accent = tok.value[1:]
        return A.Name(self._span(children), f"\\{accent}{{{inner.key}}}", f"{inner.hint}_{accent}")

    def accent_arg(self, children):
        return next(c for c in children if isinstance(c, A.Name))

    def subscript(self, children):
        inner, _, indices = children
        text = ",".join(spell(i) for i in indices)
        return A.Name(self._span(children), f"{inner.key}_{{{text}}}",
                      f"{inner.hint}_{identifier_hint(text)}", inner=inner, indices=indices)

    def sub_arg(self, children):
        if isinstance(children[0], Token) and children[0].type == "NUMBER":
            return (self._number(children[0]),)
        return tuple(c for c in children if isinstance(c, A.Node))

    def prime(self, children):
        inner = children[0]
        return A.Name(self._span(children), inner.key + "'", inner.hint + "_prime")

    def __default__(self, data, children, meta):  # noqa: ARG002 - lark's signature
        raise AssertionError(f"no AST rule for {data}")

    def transform(self, tree: Tree):
        """lark's Transformer.transform (children first, then the rule's method), without its
        per-node generator, lookups and exception wrapping: they took half of this pass."""
        methods: dict = {}

        def visit(node: Tree):
            children = [visit(c) if isinstance(c, Tree) else c for c in node.children]
            method = methods.get(node.data)
            if method is None:
                method = methods[node.data] = getattr(self, node.data, None) or self._missing(node.data)
            return method(children)

        return visit(tree)

    def _missing(self, data):
        return lambda children: self.__default__(data, children, None)


class _FuncBase:
    """`\\log_{b}` before its argument: the word's token and the base."""

    __slots__ = ("base", "span", "token")

    def __init__(self, token: Token, base: A.Node, span: Span) -> None:
        self.token, self.base, self.span = token, base, span


def build(tree: Tree, source: Source) -> A.Program:
    """The AST of a parsed unit."""
    try:
        return AstBuilder(source).transform(tree)
    except KokoyiError as err:  # the user's; anything else is a bug and keeps its traceback
        raise err.with_traceback(None) from None
    except VisitError as err:
        if isinstance(err.orig_exc, KokoyiError):
            raise err.orig_exc.with_traceback(None) from None
        raise
