"""The language server: `kyic lsp` driven through the protocol, and its analysis in-process."""
from __future__ import annotations

import asyncio
import sys

import pytest

pytest.importorskip("pygls")
from lsprotocol import types as T
from pygls.lsp.client import LanguageClient

from kokoyi.editors.lsp import analyse, completions, hover_markdown, symbol_at, word_before

URI = "file:///tmp/affine.kyi"
GOOD = (
    "\\Module{Affine}{x \\in \\mathbb{R}^{n}; W, b}\n"  # line 0 (LSP)
    "  y \\gets W @ x + b \\Comment{an affine map} \\\\\n"  # line 1
    "  \\Return \\ReLU(y) \\\\\n"  # line 2
    "\\EndModule\n"
)
BAD = GOOD.replace("\\ReLU(y)", "\\ReLU(z)")  # undefined name on line 2
TIMEOUT = 20


async def session() -> dict:
    """One server process: open a bad document, fix it, then hover, go to definition, complete."""
    client = LanguageClient("kokoyi-test", "1")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: T.PublishDiagnosticsParams) -> None:
        published.put_nowait(params)

    async def diagnostics() -> T.PublishDiagnosticsParams:
        return await asyncio.wait_for(published.get(), TIMEOUT)

    await client.start_io(sys.executable, "-m", "kokoyi.cli", "lsp")
    out: dict = {}
    try:
        out["init"] = await asyncio.wait_for(client.initialize_async(T.InitializeParams(
            capabilities=T.ClientCapabilities(), process_id=None)), TIMEOUT)
        client.initialized(T.InitializedParams())
        doc = T.TextDocumentIdentifier(uri=URI)
        client.text_document_did_open(T.DidOpenTextDocumentParams(
            text_document=T.TextDocumentItem(uri=URI, language_id="kokoyi", version=1, text=BAD)))
        out["bad"] = await diagnostics()
        client.text_document_did_change(T.DidChangeTextDocumentParams(
            text_document=T.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[T.TextDocumentContentChangeWholeDocument(text=GOOD)]))
        out["good"] = await diagnostics()
        at = {"y": T.Position(line=2, character=16), "W": T.Position(line=1, character=10),
              "ReLU": T.Position(line=2, character=12)}
        out["hover_y"] = await client.text_document_hover_async(T.HoverParams(text_document=doc, position=at["y"]))
        out["hover_W"] = await client.text_document_hover_async(T.HoverParams(text_document=doc, position=at["W"]))
        out["hover_relu"] = await client.text_document_hover_async(
            T.HoverParams(text_document=doc, position=at["ReLU"]))
        out["definition"] = await client.text_document_definition_async(
            T.DefinitionParams(text_document=doc, position=at["y"]))
        out["completion"] = await client.text_document_completion_async(
            T.CompletionParams(text_document=doc, position=T.Position(line=2, character=14)))
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
    return out


@pytest.fixture(scope="module")
def exchanged():
    return asyncio.run(asyncio.wait_for(session(), 60))


def test_initialize_advertises_the_features(exchanged):
    caps = exchanged["init"].capabilities
    assert caps.hover_provider and caps.definition_provider
    assert list(caps.completion_provider.trigger_characters) == ["\\"]
    assert exchanged["init"].server_info.name == "kyic-lsp"


def test_diagnostics_as_you_type(exchanged):
    bad = exchanged["bad"]
    assert bad.uri == URI and len(bad.diagnostics) == 1
    (d,) = bad.diagnostics
    assert d.message == "undefined name `z`" and d.code == "name" and d.source == "kokoyi"
    assert d.severity == T.DiagnosticSeverity.Error
    # kokoyi's 3:17 (1-based; end exclusive) -> LSP line 2, characters 16..17
    assert (d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character) == (2, 16, 2, 17)
    assert list(exchanged["good"].diagnostics) == []  # the fix clears it


def test_hover_shows_the_declaration_and_the_rendered_math(exchanged):
    y = exchanged["hover_y"].contents.value
    assert "**`y`**: local value of module `Affine`" in y
    assert "y \\gets W @ x + b \\Comment{an affine map} \\\\" in y  # the source of its statement
    assert "$$\ny \\leftarrow W \\cdot x + b\n$$" in y  # the renderer's math
    w = exchanged["hover_W"].contents.value
    assert "**`W`**: parameter of module `Affine`" in w
    assert "\\textbf{Module}\\ \\mathit{Affine}(x \\in \\mathbb{R}^{n};\\ W, b)" in w
    relu = exchanged["hover_relu"].contents.value
    assert "built-in function, 1 argument" in relu and "torch.relu" in relu


def test_go_to_definition(exchanged):
    loc = exchanged["definition"]
    assert loc.uri == URI
    assert (loc.range.start.line, loc.range.start.character, loc.range.end.character) == (1, 2, 3)


def test_completion_of_builtins_keywords_and_defined_names(exchanged):
    items = {item.label: item for item in exchanged["completion"].items}
    softmax = items["\\Softmax"]
    assert softmax.kind == T.CompletionItemKind.Function and "softmax" in softmax.documentation
    assert items["\\Return"].kind == T.CompletionItemKind.Keyword
    assert items["\\sum"].kind == T.CompletionItemKind.Operator
    assert items["Affine"].kind == T.CompletionItemKind.Module and "W" in items
    # the cursor sits after `\ReL` (characters 10..14 of line 2): the edit replaces that word
    edit = softmax.text_edit
    assert (edit.range.start.character, edit.range.end.character, edit.new_text) == (10, 14, "\\Softmax")


# ---- the analysis, in-process ----------------------------------------------------------------


def test_symbol_at_finds_the_innermost_name():
    analysis = analyse(GOOD)
    span, sym = symbol_at(analysis, 2, 11)  # `W` in `W @ x`
    assert (span.line, span.column, span.end_column) == (2, 11, 12)
    assert sym.key == "W" and sym.kind == "param" and (sym.span.line, sym.span.column) == (1, 39)
    assert symbol_at(analysis, 2, 5) is None  # `\gets`


def test_an_error_after_name_resolution_keeps_the_names():
    analysis = analyse("\\Module{M}{x \\in \\mathbb{R}^{n}}\n  \\Return \\Softmax(x)[0][1] \\\\\n\\EndModule\n")
    assert analysis.error is not None and analysis.resolved
    assert symbol_at(analysis, 2, 20)[1].key == "x"


def test_a_syntax_error_has_no_names():
    analysis = analyse("a \\gets (1 \\\\\n")
    assert analysis.error.span.line == 1 and not analysis.resolved
    assert hover_markdown(None, "a \\gets \\exp(1)", 1, 11).startswith("**`\\exp`**: built-in function")


def test_hover_on_an_index_and_a_where_binding():
    text = ("f(x) \\gets \\sum_{i=0}^{2} x[i] * c \\where c \\gets 2 \\\\\n")
    analysis = analyse(text)
    index = hover_markdown(analysis, text, 1, text.index("x[i]") + 3)
    assert "**`i`**: index" in index and "\\sum_{i=0}^{2}" in index
    where = hover_markdown(analysis, text, 1, text.index("* c") + 3)
    assert "**`c`**: local value" in where and "$$\nc \\leftarrow 2\n$$" in where


def test_completion_lists_every_builtin():
    from kokoyi.compiler import builtins

    labels = {c.label for c in completions(None)}
    assert {fn.source for fn in builtins.FUNCTIONS.values()} <= labels
    assert {"\\Module", "\\gets", "\\frac", "\\alpha", "\\mathbb"} <= labels


@pytest.mark.parametrize("line, column, start", [("  \\Sof", 6, 2), ("a + b", 5, 4), ("x \\", 3, 2), ("x ", 2, 2)])
def test_word_before(line, column, start):
    assert word_before(line, column) == start
