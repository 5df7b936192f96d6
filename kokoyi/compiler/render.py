"""Kokoyi source -> LaTeX for reading: notebooks (MathJax), papers (algorithmicx), Markdown, HTML.

The renderer works on the AST that the `parse` and `build` passes produce, before name
resolution, so it needs no environment and shows what was written: the builder keeps
parentheses and braces (Paren, Group), operator spellings and `\\Comment`s.

    render_latex(text, filename)         an `aligned` block MathJax shows without custom macros
    render_tex_document(text, filename)  a standalone `.tex` file (algorithm + algpseudocode)
    render_markdown(text, filename)      Markdown with one `$$ ... $$` block per item
    render_html(text, filename)          an HTML page that typesets the math with MathJax

Conventions: `*` renders as `\\circ` and `@` as `\\cdot` (`\\times`, `\\odot`, ... stay as
written), `**` as a superscript, `\\gets` as `\\leftarrow`, built-ins through the `render`
field of kokoyi.compiler.builtins, names of several letters upright-italic (`\\mathit{logP}`).
"""
from __future__ import annotations

import html
import re

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
    return any(isinstance(n, (A.Frac, A.BigOp, A.SetBuilder, A.Cases, A.Sqrt)) for n in A.walk(e))


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
            case A.Call():
                return f"{self.expr(e.func)}{self.args(e.args)}"
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
                b = e.bound
                body = A.strip(e.body)
                loose = isinstance(body, (A.Compare, A.Cases)) or (
                    isinstance(body, A.Binary) and body.op in ("+", "-", "and", "or"))
                body_tex = self.parens(self.expr(body), _tall(body)) if loose else self.expr(e.body)
                return (f"{B.BIG_OPERATORS[e.op][2]}_{{{self.name(b.var)}={self.expr(b.lower)}}}"
                        f"^{{{self.expr(b.upper)}}} {body_tex}")
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
        if isinstance(item, A.Module):
            inputs = ", ".join(self.decl(d) for d in item.inputs)
            if item.has_params_section or item.params:
                return f"{inputs};\\ {', '.join(self.decl(d) for d in item.params)}"
            return inputs
        return ", ".join(self.decl(d) for d in item.args)

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

TEX_PREAMBLE = r"""\documentclass{article}
\usepackage{amsmath}
\usepackage{amssymb}
\usepackage{algorithm}
\usepackage{algpseudocode}
"""


def _tex_statement(r: LatexRenderer, s, level: int) -> str:
    pad = "  " * level
    note = r.comment(s)
    tail = f" \\Comment{{{note}}}" if note is not None else ""
    if isinstance(s, A.Return):
        values = ", ".join(r.expr(v) for v in s.values)
        return f"{pad}\\State \\Return $\\displaystyle {values}{r.where(s.where)}$" + tail
    return f"{pad}\\State $\\displaystyle {r.statement(s)}$" + tail


def render_tex_algorithms(text: str, filename: str = "<kokoyi>") -> str:
    """The unit as `algorithm` floats (one per module or function) to paste into a paper.

    Needs `\\usepackage{amsmath,amssymb,algorithm,algpseudocode}`. Top-level definitions
    between them go into a plain `algorithmic` block.
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
        heading = f"\\section*{{{text_tex(title, latex=True)}}}\n\n"
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
