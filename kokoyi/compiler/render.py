"""Kokoyi source -> LaTeX for reading: notebooks (MathJax), papers (algorithmicx), Markdown, HTML.

The renderer works on the AST that the `parse` and `build` passes produce, before name
resolution, so it needs no environment and shows what was written: the builder keeps
parentheses and braces (Paren, Group), operator spellings and `\\Comment`s.

    render_latex(text, filename)         an `aligned` block MathJax shows without custom macros
    render_tex_document(text, filename)  a standalone `.tex` file (algorithm + algpseudocode),
                                         long statements broken into lines that fit the page
    render_markdown(text, filename)      Markdown with one `$$ ... $$` block per item
    render_html(text, filename)          an HTML page that typesets the math with MathJax

Conventions: `*` renders as `\\circ` and `@` as `\\cdot` (`\\times`, `\\odot`, ... stay as
written), `**` as a superscript, `\\gets` as `\\leftarrow`, built-ins through the `render`
field of kokoyi.compiler.builtins, names of several letters upright-italic (`\\mathit{logP}`).
"""
from __future__ import annotations

import html
import re
from typing import NamedTuple

from kokoyi.compiler import ast as A
from kokoyi.compiler import builtins as B

MATHJAX_URL = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"

# Source operator spelling -> rendered operator.
BINARY_TEX = {"*": "\\circ", "@": "\\cdot", "and": "\\land", "or": "\\lor",
              "\\vee": "\\lor", "\\wedge": "\\land"}
COMPARE_TEX = {"<": "<", ">": ">", "<=": "\\le", ">=": "\\ge", "==": "=", "!=": "\\ne"}
FONT_MACROS = ("\\mathbf", "\\boldsymbol", "\\mathcal")  # their argument is kept as written
INDENT = "\\quad "


def parse_program(text: str, filename: str = "<kokoyi>") -> A.Program:
    """The AST of a unit after the `build` pass (raises KokoyiError on bad input)."""
    from kokoyi.compiler.pipeline import compile_unit

    return compile_unit(text, filename, stop_after="build").ast


# ---- names and text ------------------------------------------------------------------------


_TOKEN = re.compile(r"\\[A-Za-z]+|[A-Za-z][A-Za-z0-9]*|.", re.DOTALL)


def key_tex(key: str) -> str:
    """A name's canonical spelling with multi-letter words as `\\mathit{...}`."""
    out, i = [], 0
    while i < len(key):
        m = _TOKEN.match(key, i)
        tok = m.group(0)
        i = m.end()
        if tok in FONT_MACROS and key.startswith("{", i):
            close = key.index("}", i)
            out.append(tok + key[i:close + 1])
            i = close + 1
        elif tok[0].isalpha() and len(tok) > 1:
            out.append(f"\\mathit{{{tok}}}")
        else:
            out.append(tok)
    return "".join(out)


def text_tex(text: str, latex: bool) -> str:
    """Free text for `\\text{...}`: MathJax shows it literally; LaTeX needs its specials escaped."""
    specials = "&%#" if "$" in text else "&%#_^~"
    if not latex:
        return text
    return re.sub(r"(?<!\\)([" + re.escape(specials) + "])",
                  lambda m: {"^": "\\^{}", "~": "\\textasciitilde{}"}.get(m.group(1), "\\" + m.group(1)), text)


def number_tex(text: str) -> str:
    """`1e-3` -> `10^{-3}`, `2.5E4` -> `2.5 \\times 10^{4}`; other numbers as written."""
    m = re.fullmatch(r"([0-9.]+)[eE]([+-]?)0*([0-9]+)", text)
    if not m:
        return text
    mantissa, sign, power = m.groups()
    exponent = f"10^{{{'-' if sign == '-' else ''}{power}}}"
    return exponent if mantissa in ("1", "1.0") else f"{mantissa} \\times {exponent}"


# ---- expressions -----------------------------------------------------------------------------


def _ungroup(e):
    """e without surrounding braces (parentheses stay: they were written to be seen)."""
    while isinstance(e, A.Group):
        e = e.expr
    return e


def _tall(e: A.Node) -> bool:
    """Whether e contains something taller than a line, so brackets around it should grow."""
    return any(isinstance(n, (A.Frac, A.BigOp, A.SetBuilder, A.Cases, A.Sqrt, A.Matrix)) for n in A.walk(e))


class LatexRenderer:
    """AST -> LaTeX. `latex=True` targets pdflatex (papers), False targets MathJax (notebooks)."""

    def __init__(self, latex: bool = False) -> None:
        self.latex = latex

    # ---- expressions ----
    def parens(self, inner: str, tall: bool, left: str = "(", right: str = ")") -> str:
        return f"\\left{left} {inner} \\right{right}" if tall else f"{left}{inner}{right}"

    def args(self, args, tall_ok: bool = True) -> str:
        text = ", ".join(self.expr(a) for a in args)
        return self.parens(text, tall_ok and any(_tall(a) for a in args))

    def name(self, n: A.Name) -> str:
        if n.inner is not None and n.indices:
            return f"{self.base(n.inner)}_{{{', '.join(self.expr(i) for i in n.indices)}}}"
        if n.inner is not None and n.exponent is not None:
            return f"{self.base(n.inner)}^{{({self.expr(n.exponent)})}}"
        return key_tex(n.key)

    def base(self, e) -> str:
        """e as the base of a superscript or subscript: braced when it already has one."""
        text = self.expr(e) if not isinstance(e, A.Name) else self.name(e)
        core = A.strip(e) if isinstance(e, A.Group) else e
        has_script = isinstance(core, (A.Power, A.Transpose)) or (
            isinstance(core, A.Name) and (core.inner is not None or core.key.endswith("'")))
        return f"{{{text}}}" if has_script else text

    def expr(self, e) -> str:
        match e:
            case A.Name():
                return self.name(e)
            case A.Num():
                return number_tex(e.text)
            case A.Paren():
                return self.parens(self.expr(e.expr), _tall(e.expr))
            case A.Group():
                return f"{{{self.expr(e.expr)}}}"
            case A.Unary(op="not"):
                return f"\\lnot {self.expr(e.operand)}"
            case A.Unary():
                return f"{e.op}{self.expr(e.operand)}"
            case A.Binary():
                op = BINARY_TEX.get(e.spelling or e.op, e.spelling or e.op)
                return f"{self.expr(e.left)} {op} {self.expr(e.right)}"
            case A.Compare():
                return f"{self.expr(e.left)} {COMPARE_TEX[e.op]} {self.expr(e.right)}"
            case A.Juxtapose():
                return f"{self.expr(e.left)} \\, {self.expr(e.right)}"
            case A.Power():
                return f"{self.base(e.base)}^{{{self.expr(_ungroup(e.exponent))}}}"
            case A.Transpose():
                return f"{self.base(e.operand)}^{{\\top}}"
            case A.Frac():
                return f"\\frac{{{self.expr(_ungroup(e.numerator))}}}{{{self.expr(_ungroup(e.denominator))}}}"
            case A.Sqrt():
                degree = f"[{self.expr(e.degree)}]" if e.degree is not None else ""
                return f"\\sqrt{degree}{{{self.expr(_ungroup(e.radicand))}}}"
            case A.Bars():
                return f"\\lvert {self.expr(e.operand)} \\rvert"
            case A.Norm():
                order = {None: "", "1": "_{1}", "2": "_{2}", "inf": "_{\\infty}"}[e.order]
                return f"\\lVert {self.expr(e.operand)} \\rVert{order}"
            case A.Rounding():
                return f"\\l{e.kind} {self.expr(e.operand)} \\r{e.kind}"
            case A.Call() if isinstance(e.func, A.Name) and e.func.key in B.FUNCTIONS:
                # `\operatorname{tr}(A)`, `\operatorname{diag}(v)`: upright, as the table renders them
                return f"{B.FUNCTIONS[e.func.key].render}{self.args(e.args)}"
            case A.Call():
                return f"{self.expr(e.func)}{self.args(e.args)}"
            case A.LogBase():
                head = f"\\log_{{{self.expr(_ungroup(e.base))}}}"
                if e.style == "bare":
                    return f"{head} {self.expr(e.operand)}"
                return f"{head}{self.args((e.operand,))}"
            case A.Matrix():
                rows = " \\\\ ".join(" & ".join(self.expr(x) for x in row.entries) for row in e.rows)
                return f"\\begin{{{e.delimiter}}} {rows} \\end{{{e.delimiter}}}"
            case A.Slice():
                start = self.expr(e.start) if e.start is not None else ""
                stop = self.expr(e.stop) if e.stop is not None else ""
                return f"{start}{{:}}{stop}"
            case A.Index():
                return f"{self.expr(e.target)}[{', '.join(self.expr(i) for i in e.items)}]"
            case A.Builtin():
                return self.builtin(e.name)
            case A.BuiltinCall():
                head = self.builtin(e.name)
                if e.name == "StopGrad":
                    return f"{head}{self.parens(self.expr(e.args[0]), _tall(e.args[0]), '[', ']')}"
                if e.style == "bare":
                    space = "" if isinstance(e.args[0], A.Group) else " "
                    return f"{head}{space}{self.expr(e.args[0])}"
                return f"{head}{self.args(e.args)}"
            case A.Reduce():
                head = B.REDUCTIONS[e.op][1]
                if e.op in ("sum", "prod"):  # a function of a value, not a big operator
                    head = f"{{\\textstyle {head}}}"
                return f"{head}{self.args(e.args)}"
            case A.BigOp():
                body = A.strip(e.body)
                body_tex = self.parens(self.expr(body), _tall(body)) if _loose_body(body) else self.expr(e.body)
                return self.big_operator(e) + body_tex
            case A.SetBuilder():
                lows = ", ".join(f"{self.name(b.var)}={self.expr(b.lower)}" for b in e.bounds)
                ups = ", ".join(self.expr(b.upper) for b in e.bounds)
                return f"\\left\\{{ {self.expr(e.element)} \\right\\}}_{{{lows}}}^{{{ups}}}"
            case A.Cases():
                rows = []
                for r in e.rows:
                    if r.condition is None:
                        cond = f"\\text{{{r.text or 'otherwise'}}}"
                    else:
                        cond = ("\\text{if } " if r.text == "if" else "") + self.expr(r.condition)
                    rows.append(f"{self.expr(r.value)} & {cond}")
                return "\\begin{cases} " + " \\\\ ".join(rows) + " \\end{cases}"
            case A.Indicator():
                one = "\\mathbf{1}" if self.latex else "\\mathbb{1}"
                cond = self.expr(e.condition)
                if e.style == "_":
                    return f"{one}_{{{cond}}}"
                tall = _tall(e.condition)
                return one + (self.parens(cond, tall, "[", "]") if e.style == "[" else self.parens(cond, tall))
        raise TypeError(f"cannot render {type(e).__name__}")

    def big_operator(self, e: A.BigOp) -> str:
        """`\\sum_{i=0}^{n}` and a space: a big operator without its body."""
        b = e.bound
        return f"{B.BIG_OPERATORS[e.op][1]}_{{{self.name(b.var)}={self.expr(b.lower)}}}^{{{self.expr(b.upper)}}} "

    def builtin(self, name: str) -> str:
        fn = B.FUNCTIONS.get(name)
        return fn.render if fn is not None else f"\\operatorname{{{name}}}"

    # ---- declarations and statements ----
    def decl(self, d: A.Decl) -> str:
        text = self.name(d.name)
        if d.annotation is not None:
            field = f"\\mathbb{{{d.annotation.field}}}"
            if d.annotation.dims:
                field += "^{" + " \\times ".join(self.expr(x) for x in d.annotation.dims) + "}"
            text += f" \\in {field}"
        return text

    def signature(self, item) -> str:
        # pdflatex may break a long signature after any comma (MathJax never breaks lines).
        comma = ", \\allowbreak " if self.latex else ", "
        if isinstance(item, A.Module):
            inputs = comma.join(self.decl(d) for d in item.inputs)
            if item.has_params_section or item.params:
                return f"{inputs};\\ {comma.join(self.decl(d) for d in item.params)}"
            return inputs
        return comma.join(self.decl(d) for d in item.args)

    def definition(self, d: A.Definition) -> str:
        target = self.name(d.target)
        if d.params is not None:
            target += f"({', '.join(self.name(p) for p in d.params)})"
        return f"{target} \\leftarrow {self.expr(d.value)}"

    def where(self, bindings) -> str:
        if not bindings:
            return ""
        return " \\quad \\text{where}\\ " + ",\\ ".join(self.definition(b) for b in bindings)

    def statement(self, s) -> str:
        """The math of a statement, without its comment."""
        if isinstance(s, A.Return):
            head = "\\textbf{return}\\ " + ", ".join(self.expr(v) for v in s.values)
        else:
            head = self.definition(s)
        return head + self.where(s.where)

    def comment(self, s) -> str | None:
        text = getattr(s, "comment", None)
        return None if text is None else text_tex(text.strip(), self.latex)

    # ---- where a long line may break (papers) ----
    def pieces(self, e, depth: int = 0) -> list[Piece]:
        """e's rendering cut where pdflatex may break the line; in order, the texts spell expr(e).

        Cuts fall before a binary operator or comparison (the piece starts `{} op`, so the
        operator keeps its spacing), after the commas of a call and inside the unbracketed body
        of a big operator. A cut inside a call's parentheses costs more the deeper it is, so
        pdflatex breaks at the outermost level that makes the line fit. `\\left ... \\right`
        pairs, scripts and fractions are never cut.
        """
        cost = OPERATOR_BREAK_COST * depth
        match e:
            case A.Binary():
                op = BINARY_TEX.get(e.spelling or e.op, e.spelling or e.op)
                cost += 0 if e.op in LOOSE_OPERATORS else PRODUCT_BREAK_COST
                return [*self.pieces(e.left, depth), *_prefix(f"{{}} {op} ", self.pieces(e.right, depth), cost)]
            case A.Compare():
                op = COMPARE_TEX[e.op]
                return [*self.pieces(e.left, depth), *_prefix(f"{{}} {op} ", self.pieces(e.right, depth), cost)]
            case A.Juxtapose():
                cost += 2 * PRODUCT_BREAK_COST
                return [*self.pieces(e.left, depth), *_prefix("\\, ", self.pieces(e.right, depth), cost)]
            case A.Group():
                return self.pieces(e.expr, depth)
            case A.Unary(op="not"):
                return _prefix("\\lnot ", self.pieces(e.operand, depth))
            case A.Unary():
                return _prefix(e.op, self.pieces(e.operand, depth))
            case A.Paren() if not _tall(e.expr):
                return _suffix(_prefix("(", self.pieces(e.expr, depth + 1)), ")")
            case A.Call() if not any(_tall(a) for a in e.args):
                return self.call_pieces(self.expr(e.func), e.args, depth)
            case A.BuiltinCall() if e.name != "StopGrad" and e.style != "bare" and not any(_tall(a) for a in e.args):
                return self.call_pieces(self.builtin(e.name), e.args, depth)
            case A.BigOp() if not _loose_body(e.body):
                return _prefix(self.big_operator(e), self.pieces(e.body, depth))
        return [Piece(0, self.expr(e))]

    def call_pieces(self, head: str, args, depth: int) -> list[Piece]:
        """`head(a, b)` cut after each comma (the next piece starts with the comma's thin space)."""
        return _suffix(_prefix(f"{head}(", self.list_pieces(args, depth + 1, "\\, ")), ")")

    def list_pieces(self, values, depth: int, space: str) -> list[Piece]:
        """Comma-separated values, cut after each comma (cheaper than inside a value)."""
        comma_cost = min(max(OPERATOR_BREAK_COST * depth - OPERATOR_BREAK_COST // 2, 0), MAX_BREAK_COST)
        out: list[Piece] = []
        for i, value in enumerate(values):
            part = self.pieces(value, depth) if isinstance(value, A.Node) else value
            out.extend(_prefix(space, part, comma_cost) if i else part)
            if i < len(values) - 1:
                out[-1] = Piece(out[-1].cost, out[-1].text + ",")
        return out or [Piece(0, "")]

    def definition_pieces(self, d: A.Definition, depth: int = 0) -> list[Piece]:
        target = self.name(d.target)
        if d.params is not None:
            target += f"({', '.join(self.name(p) for p in d.params)})"
        return _prefix(f"{target} \\leftarrow ", self.pieces(d.value, depth))

    def statement_pieces(self, s) -> list[Piece]:
        """A statement's math (without `return`, which TeX writes as `\\Return`) as pieces."""
        if isinstance(s, A.Return):
            pieces = self.list_pieces(s.values, 0, "\\, ")
        else:
            pieces = self.definition_pieces(s)
        if s.where:
            # Break between the bindings before breaking inside one.
            bindings = self.list_pieces([self.definition_pieces(b, 1) for b in s.where], 0, "\\ ")
            pieces.extend(_prefix("\\quad \\text{where}\\ ", bindings))
        return pieces


class Piece(NamedTuple):
    """Part of a statement that stays on one line; cost: TeX's penalty for breaking before it."""

    cost: int
    text: str


OPERATOR_BREAK_COST = 200  # per level of parentheses around the operator
PRODUCT_BREAK_COST = 50  # more to break inside a product than at a sum (juxtaposition: twice)
LOOSE_OPERATORS = ("+", "-", "and", "or")  # Binary.op of the operators that bind loosest
MAX_BREAK_COST = 9999  # 10000 would forbid the break


def _prefix(text: str, pieces: list[Piece], cost: int | None = None) -> list[Piece]:
    """pieces with text before the first one (and that piece's break cost set, when given)."""
    first = pieces[0]
    cost = first.cost if cost is None else min(cost, MAX_BREAK_COST)
    return [Piece(cost, text + first.text), *pieces[1:]]


def _suffix(pieces: list[Piece], text: str) -> list[Piece]:
    return [*pieces[:-1], Piece(pieces[-1].cost, pieces[-1].text + text)]


def _loose_body(body) -> bool:
    """Whether a big operator's body is shown in parentheses (see LatexRenderer.expr)."""
    body = A.strip(body)
    return isinstance(body, (A.Compare, A.Cases)) or (
        isinstance(body, A.Binary) and body.op in LOOSE_OPERATORS)


# ---- MathJax / notebook ----------------------------------------------------------------------


def _item_rows(r: LatexRenderer, item) -> list[str]:
    """Rows of an `aligned` block: `&math` or `&math &&\\triangleright \\text{comment}`."""

    def row(indent: str, s) -> str:
        note = r.comment(s)
        text = f"&{indent}{r.statement(s)}"
        return text + (f" &&\\triangleright\\ \\text{{{note}}}" if note is not None else "")

    if isinstance(item, A.Definition):
        return [row("", item)]
    word = "Module" if isinstance(item, A.Module) else "Function"
    rows = [f"&\\textbf{{{word}}}\\ {r.name(item.name)}({r.signature(item)})"]
    rows.extend(row(INDENT, s) for s in item.body)
    return rows


def _aligned(rows: list[str]) -> str:
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}" if rows else ""


def latex_items(program: A.Program) -> list[str]:
    """One `aligned` block per module or function, and one per run of top-level definitions."""
    r = LatexRenderer(latex=False)
    blocks: list[list[str]] = []
    for i, item in enumerate(program.items):
        joins = isinstance(item, A.Definition) and i and isinstance(program.items[i - 1], A.Definition)
        if joins:
            blocks[-1].extend(_item_rows(r, item))
        else:
            blocks.append(_item_rows(r, item))
    return [_aligned(rows) for rows in blocks]


def render_program_latex(program: A.Program) -> str:
    """The whole unit as one `aligned` block; items separated by an empty row."""
    r = LatexRenderer(latex=False)
    rows: list[str] = []
    for i, item in enumerate(program.items):
        if i and not (isinstance(item, A.Definition) and isinstance(program.items[i - 1], A.Definition)):
            rows.append("&")
        rows.extend(_item_rows(r, item))
    return _aligned(rows)


def render_latex(text: str, filename: str = "<kokoyi>") -> str:
    """The unit as notebook-safe LaTeX (an `aligned` environment, no custom macros).

    Put it between `$$ ... $$` (Jupyter's text/latex, Markdown) or `\\[ ... \\]`. An empty
    unit gives "". Raises KokoyiError (located) when the text does not parse.
    """
    return render_program_latex(parse_program(text, filename))


# ---- papers: algorithm + algpseudocode -----------------------------------------------------

TEX_PACKAGES = ("amsmath", "amssymb", "graphicx", "algorithm", "algpseudocode")

# What the statements use besides the packages. \KyState is algpseudocode's \State whose
# continuation lines hang one indent under the statement (a \parshape: lists ignore
# \hangindent); \KyPiece{math} is one unbreakable
# piece of a statement in display style, scaled down if it alone is wider than a line (a
# nested set-builder may be), so no statement runs off the page. Pieces are separated by
# \penalty N: pdflatex may break the line there, preferring the cheap (outer) places. Lines
# in algorithmic are ragged right, so a broken line is not stretched.
TEX_MACROS = r"""\makeatletter
\algrenewcommand\ALG@beginalgorithmic{\rightskip=0pt plus 1fil\relax}
\newcommand{\KyState}{\State\parshape 2 \@totalleftmargin \linewidth
  \dimexpr\@totalleftmargin+\ALG@tlm+\algorithmicindent\relax \dimexpr\linewidth-\ALG@tlm-\algorithmicindent\relax}
\newsavebox{\Ky@box}
\newcommand{\KyPiece}[1]{\sbox{\Ky@box}{$\displaystyle #1$}%
  \ifdim\wd\Ky@box>\dimexpr\linewidth-\ALG@tlm-4em\relax
    \resizebox{\dimexpr\linewidth-\ALG@tlm-4em\relax}{!}{\usebox{\Ky@box}}%
  \else\usebox{\Ky@box}\fi}
\makeatother
"""

TEX_PREAMBLE = ("\\documentclass{article}\n"
                + "".join(f"\\usepackage{{{name}}}\n" for name in TEX_PACKAGES) + TEX_MACROS)


def _tex_line(pieces: list[Piece]) -> str:
    out = [f"\\KyPiece{{{pieces[0].text}}}"]
    out.extend(f"\\penalty{p.cost}\\KyPiece{{{p.text}}}" for p in pieces[1:])
    return "".join(out)


def _tex_statement(r: LatexRenderer, s, level: int) -> str:
    pad = "  " * level
    note = r.comment(s)
    tail = f" \\Comment{{{note}}}" if note is not None else ""
    head = "\\KyState \\Return " if isinstance(s, A.Return) else "\\KyState "
    return f"{pad}{head}{_tex_line(r.statement_pieces(s))}" + tail


def render_tex_algorithms(text: str, filename: str = "<kokoyi>") -> str:
    """The unit as `algorithm` floats (one per module or function) to paste into a paper.

    Needs the packages of TEX_PACKAGES and the macros of TEX_MACROS in the preamble (as
    render_tex_document writes them). Top-level definitions between them go into a plain
    `algorithmic` block.
    """
    program = parse_program(text, filename)
    r = LatexRenderer(latex=True)
    parts: list[str] = []
    loose: list[str] = []

    def flush() -> None:
        if loose:
            parts.append("\\begin{algorithmic}\n" + "\n".join(loose) + "\n\\end{algorithmic}")
            loose.clear()

    for item in program.items:
        if isinstance(item, A.Definition):
            loose.append(_tex_statement(r, item, 1))
            continue
        flush()
        word = "Module" if isinstance(item, A.Module) else "Function"
        name = r.name(item.name)
        lines = [
            "\\begin{algorithm}[ht]",
            f"\\caption{{{word} ${name}$}}",
            "\\begin{algorithmic}[1]",
            f"\\Function{{${name}$}}{{${r.signature(item)}$}}",
            *(_tex_statement(r, s, 1) for s in item.body),
            "\\EndFunction",
            "\\end{algorithmic}",
            "\\end{algorithm}",
        ]
        parts.append("\n".join(lines))
    flush()
    return "\n\n".join(parts) + "\n"


def render_tex_document(text: str, filename: str = "<kokoyi>", title: str | None = None) -> str:
    """A standalone `.tex` document (article + algorithm/algpseudocode) that pdflatex compiles."""
    body = render_tex_algorithms(text, filename)
    heading = ""
    if title is None:
        title = filename
    if title:
        # A path may break after any `/`, so a long one does not run off the page.
        breakable = text_tex(title, latex=True).replace("/", "/\\allowbreak{}")
        heading = f"\\section*{{\\raggedright {breakable}}}\n\n"
    return f"{TEX_PREAMBLE}\n\\begin{{document}}\n\n{heading}{body}\n\\end{{document}}\n"


# ---- Markdown and HTML -----------------------------------------------------------------------


def render_markdown(text: str, filename: str = "<kokoyi>", title: str | None = None) -> str:
    """Markdown with one `$$ ... $$` display per top-level item (GitHub, Jupyter, MkDocs)."""
    blocks = latex_items(parse_program(text, filename))
    title = filename if title is None else title
    out = [f"# {title}\n"] if title else []
    out.extend(f"$$\n{block}\n$$\n" for block in blocks)
    return "\n".join(out)


def render_html(text: str, filename: str = "<kokoyi>", title: str | None = None,
                mathjax_url: str = MATHJAX_URL) -> str:
    """A standalone HTML page whose math MathJax typesets (loaded from mathjax_url)."""
    blocks = latex_items(parse_program(text, filename))
    title = filename if title is None else title
    body = "\n".join(f'<div class="kokoyi-item">\\[\n{html.escape(block, quote=False)}\n\\]</div>'
                     for block in blocks)
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        f'<script id="MathJax-script" async src="{html.escape(mathjax_url)}"></script>\n'
        "</head>\n<body>\n"
        + (f"<h1>{html.escape(title)}</h1>\n" if title else "")
        + body + "\n</body>\n</html>\n"
    )


FORMATS = {"tex": render_tex_document, "md": render_markdown, "html": render_html}
