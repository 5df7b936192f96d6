"""`kyic lsp`: a language server for Kokoyi over standard input and output, built on pygls.

    diagnostics   the compiler's located errors, as the text changes (passes parse .. ranks,
                  so nothing is generated or run)
    hover         a name's declaration and the rendered math of the statement defining it;
                  a built-in's arity and meaning
    definition    where a name is defined
    completion    built-ins, keywords and the names the document defines

The analysis (`analyse`, `hover_markdown`, ...) is plain Python over the compiler's passes;
the pygls server at the end only converts positions and messages. Kokoyi positions are
1-based code points; LSP positions are 0-based in the client's units (UTF-16 by default).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from kokoyi.compiler import ast as A
from kokoyi.compiler import builtins as B
from kokoyi.compiler import symbols as S
from kokoyi.editors import words as W
from kokoyi.errors import KokoyiError, Source, Span

KIND_TEXT = {S.INPUT: "input", S.PARAM: "parameter", S.ARG: "argument", S.LOCAL: "local value",
             S.INDEX: "index", S.DIM: "dimension", S.FUNCTION: "function", S.MODULE: "module",
             S.CONSTANT: "constant"}

_COMMAND = re.compile(r"\\(?:SmoothL1(?![0-9])|[A-Za-z]+)")


@dataclass
class Analysis:
    """What the passes found in one version of a document."""

    text: str
    error: KokoyiError | None = None
    built: A.Program | None = None  # after `build`: what the renderer reads
    uses: list[tuple[Span, S.Symbol]] = field(default_factory=list)  # every resolved name

    @property
    def resolved(self) -> bool:
        """Whether name resolution ran to the end (a later pass may still have failed)."""
        return bool(self.uses) or self.error is None


def analyse(text: str, filename: str = "<kokoyi>") -> Analysis:
    """Run the passes up to `ranks` over text, keeping what was reached before an error."""
    from kokoyi.compiler.pipeline import PASSES, UnitState

    state = UnitState(Source(text, filename), env={}, global_names={})
    result = Analysis(state.source.text)
    try:
        for p in PASSES:
            p.run(state)
            if p.name == "build":
                result.built = state.ast
            if p.name == "resolve":
                result.uses = [(n.span, n.symbol) for n in A.walk(state.ast) if isinstance(n, A.Ref)]
            if p.name == "ranks":
                break
    except KokoyiError as err:
        result.error = err
    return result


def _contains(outer: Span, inner: Span) -> bool:
    return ((outer.line, outer.column) <= (inner.line, inner.column)
            and (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column))


def symbol_at(analysis: Analysis, line: int, column: int) -> tuple[Span, S.Symbol] | None:
    """The innermost resolved name covering 1-based (line, column)."""
    here = Span(line, column, line, column + 1)
    hits = [(span, sym) for span, sym in analysis.uses if _contains(span, here)]
    return min(hits, key=lambda hit: (hit[0].end_line - hit[0].line, hit[0].end_column - hit[0].column),
               default=None)


def defining_statement(analysis: Analysis, symbol: S.Symbol):
    """The innermost definition, `\\Return` or module/function whose span holds the symbol's."""
    if analysis.built is None or symbol.span is None:
        return None
    found = None
    for node in A.walk(analysis.built):  # depth first: a later hit lies inside an earlier one
        if isinstance(node, (A.Definition, A.Return, A.Module, A.Function)) and _contains(node.span, symbol.span):
            found = node
    return found


def statement_latex(node) -> str:
    """The rendered math of a statement; of a module or function, its header."""
    from kokoyi.compiler.render import LatexRenderer

    r = LatexRenderer()
    if isinstance(node, (A.Module, A.Function)):
        word = "Module" if isinstance(node, A.Module) else "Function"
        return f"\\textbf{{{word}}}\\ {r.name(node.name)}({r.signature(node)})"
    return r.statement(node)


def hover_markdown(analysis: Analysis | None, text: str, line: int, column: int) -> str | None:
    """Markdown for the hover at 1-based (line, column) of text: a name's definition (from
    analysis, the last version whose names resolved), or a built-in's description."""
    hit = symbol_at(analysis, line, column) if analysis is not None else None
    if hit is not None:
        return _symbol_markdown(analysis, hit[1])
    return _builtin_markdown(_command_at(text, line, column))


def _symbol_markdown(analysis: Analysis, sym: S.Symbol) -> str:
    facts = [KIND_TEXT.get(sym.kind, sym.kind)]
    if sym.rank is not None and not sym.is_function:
        facts.append(f"rank {sym.rank}" + (", integer" if sym.integer else ""))
    if sym.arity is not None:
        facts.append(f"{sym.arity} argument" + ("s" if sym.arity != 1 else ""))
    node = defining_statement(analysis, sym)
    owner = _owner(analysis, sym)
    if owner is not None:
        facts[0] += f" of {'module' if isinstance(owner, A.Module) else 'function'} `{owner.name.key}`"
    parts = [f"**`{sym.key}`**: {', '.join(facts)}"]
    if node is not None:
        lines = analysis.text.split("\n")
        last = node.span.line if isinstance(node, (A.Module, A.Function)) else node.span.end_line
        source = "\n".join(lines[node.span.line - 1:last]).strip()
        parts.append(f"defined at line {sym.span.line}:\n\n```kokoyi\n{source}\n```")
        parts.append(f"$$\n{statement_latex(node)}\n$$")
    return "\n\n".join(parts)


def _owner(analysis: Analysis, sym: S.Symbol):
    """The module or function a symbol is defined in, None at top level."""
    for item in analysis.built.items if analysis.built is not None and sym.span is not None else ():
        if (isinstance(item, (A.Module, A.Function)) and _contains(item.span, sym.span)
                and item.name.span != sym.span):
            return item
    return None


def _command_at(text: str, line: int, column: int) -> str | None:
    """The `\\word` covering 1-based (line, column), without its backslash."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    for m in _COMMAND.finditer(lines[line - 1]):
        if m.start() < column <= m.end():
            return m.group(0)[1:]
    return None


def _builtin_markdown(word: str | None) -> str | None:
    fn = B.FUNCTIONS.get(word or "")
    if fn is None:
        return None
    return f"**`{fn.source}`**: built-in function, {fn.arity_text()}\n\n{fn.meaning}\n\n$$\n{fn.render}\n$$"


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # "function", "keyword", "operator", "constant", "variable", "module", "type"
    detail: str
    documentation: str = ""


def completions(analysis: Analysis | None) -> list[Completion]:
    """Built-ins, keywords, and the names the document defines (from its last resolved version)."""
    items = [Completion(fn.source, "function", fn.arity_text(), fn.meaning) for fn in B.FUNCTIONS.values()]
    for word_class, kind, detail in (("structure", "keyword", "keyword"), ("operator", "operator", "operator"),
                                     ("type", "type", "number set"), ("constant", "constant", "constant"),
                                     ("greek", "variable", "Greek letter"),
                                     ("decoration", "keyword", "accent or font")):
        items.extend(Completion(f"\\{w}", kind, detail) for w in sorted(W.CLASSES[word_class]))
    items += [Completion("\\Comment", "keyword", "a comment in a statement"),
              Completion("\\text", "keyword", "text in a case row"),
              Completion("\\begin{cases}", "keyword", "cases"), Completion("\\end{cases}", "keyword", "cases")]
    if analysis is not None:
        seen = set()
        for _, sym in analysis.uses:
            if sym.key not in seen and sym.span is not None:
                seen.add(sym.key)
                kind = "module" if sym.kind == S.MODULE else "function" if sym.is_function else "variable"
                items.append(Completion(sym.key, kind, KIND_TEXT.get(sym.kind, sym.kind)))
    return items


def word_before(line_text: str, column: int) -> int:
    """0-based column where the word ending at 0-based column starts (`\\Sof|` -> the `\\`)."""
    m = re.search(r"\\?[A-Za-z][A-Za-z0-9]*$|\\$", line_text[:column])
    return m.start() if m else column


# ---- the pygls server --------------------------------------------------------------------------


def build_server():
    """The language server, with its features registered (start it with `.start_io()`)."""
    from lsprotocol import types as T
    from pygls.lsp.server import LanguageServer
    from pygls.uris import to_fs_path
    from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

    from kokoyi import __version__
    from kokoyi.compiler.diagnostics import error_code

    server = LanguageServer("kyic-lsp", __version__)
    last_resolved: dict[str, Analysis] = {}  # uri -> last version whose names resolved
    kinds = {"function": T.CompletionItemKind.Function, "keyword": T.CompletionItemKind.Keyword,
             "operator": T.CompletionItemKind.Operator, "constant": T.CompletionItemKind.Constant,
             "variable": T.CompletionItemKind.Variable, "module": T.CompletionItemKind.Module,
             "type": T.CompletionItemKind.TypeParameter}

    def to_range(doc, span: Span) -> T.Range:
        return doc.range_to_client_units(ServerTextRange(ServerTextPosition(span.line - 1, span.column - 1),
                                                         ServerTextPosition(span.end_line - 1, span.end_column - 1)))

    def check(uri: str) -> None:
        doc = server.workspace.get_text_document(uri)
        analysis = analyse(doc.source, to_fs_path(uri) or uri)
        if analysis.resolved:
            last_resolved[uri] = analysis
        diagnostics = []
        if analysis.error is not None:
            err = analysis.error
            span = err.span or Span(1, 1, 1, 1)
            diagnostics.append(T.Diagnostic(range=to_range(doc, span), message="\n".join((err.message, *err.notes)),
                                            severity=T.DiagnosticSeverity.Error, code=error_code(err),
                                            source="kokoyi"))
        server.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=uri, version=doc.version, diagnostics=diagnostics))

    def position(uri: str, pos: T.Position) -> tuple[object, Analysis | None, int, int]:
        """(document, last resolved analysis, 1-based line, 1-based column)."""
        doc = server.workspace.get_text_document(uri)
        here = doc.position_from_client_units(pos)
        return doc, last_resolved.get(uri), here.line + 1, here.character + 1

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls, params: T.DidOpenTextDocumentParams) -> None:
        check(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls, params: T.DidChangeTextDocumentParams) -> None:
        check(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls, params: T.DidCloseTextDocumentParams) -> None:
        last_resolved.pop(params.text_document.uri, None)
        server.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                            diagnostics=[]))

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: T.HoverParams) -> T.Hover | None:
        doc, analysis, line, column = position(params.text_document.uri, params.position)
        text = hover_markdown(analysis, doc.source, line, column)
        if text is None:
            return None
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    def definition(ls, params: T.DefinitionParams) -> T.Location | None:
        doc, analysis, line, column = position(params.text_document.uri, params.position)
        hit = symbol_at(analysis, line, column) if analysis is not None else None
        if hit is None or hit[1].span is None:
            return None
        return T.Location(uri=params.text_document.uri, range=to_range(doc, hit[1].span))

    @server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["\\"]))
    def complete(ls, params: T.CompletionParams) -> T.CompletionList:
        doc = server.workspace.get_text_document(params.text_document.uri)
        here = doc.position_from_client_units(params.position)
        line_text = doc.lines[here.line] if here.line < len(doc.lines) else ""
        start = ServerTextPosition(here.line, word_before(line_text, here.character))
        replace = doc.range_to_client_units(ServerTextRange(start, here))
        items = [T.CompletionItem(label=c.label, kind=kinds[c.kind], detail=c.detail,
                                  documentation=c.documentation or None, filter_text=c.label,
                                  text_edit=T.TextEdit(range=replace, new_text=c.label))
                 for c in completions(last_resolved.get(params.text_document.uri))]
        return T.CompletionList(is_incomplete=False, items=items)

    return server


def main() -> int:
    """Serve over stdio until the client says exit."""
    build_server().start_io()
    return 0
