"""Highlighting: the Pygments lexer over every example and conformance source."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFORMANCE, conformance_runner

pygments = pytest.importorskip("pygments")
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(ROOT.glob("examples/*/*.kyi"))


def conformance_sources() -> list[tuple[str, str]]:
    if not CONFORMANCE.exists():
        return []
    runner = conformance_runner()
    return [(p.stem, runner.load_case(p).SOURCE) for p in runner.discover()]


SOURCES = [(p.name, p.read_text(encoding="utf-8")) for p in EXAMPLES] + conformance_sources()


def tokens(text: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in get_lexer_by_name("kokoyi").get_tokens(text) if v.strip()]


def test_lexer_is_registered_by_name_alias_and_filename():
    assert get_lexer_by_name("kokoyi").name == "Kokoyi"
    assert get_lexer_by_name("kyi").name == "Kokoyi"
    assert get_lexer_for_filename("policy.kyi").name == "Kokoyi"


def test_sources_are_found():
    assert len(EXAMPLES) >= 6 and len(SOURCES) >= len(EXAMPLES) + 17


@pytest.mark.parametrize("name, text", SOURCES, ids=[name for name, _ in SOURCES])
def test_every_source_lexes_without_error_tokens(name, text):
    toks = list(get_lexer_by_name("kokoyi").get_tokens(text))
    bad = [v for t, v in toks if t in Error]
    assert not bad, f"{name}: Error tokens {bad[:5]}"
    assert "".join(v for _, v in toks).strip() == text.strip()  # nothing dropped


def test_every_kokoyi_block_of_the_docs_lexes_without_error_tokens():
    from test_docs import PAGES, blocks

    kokoyi_blocks = [b for page in PAGES for b in blocks(page)
                     if b.lang in ("latex", "kokoyi", "kyi") and "error" not in b.classes]
    assert len(kokoyi_blocks) > 50
    lexer = get_lexer_by_name("kokoyi")
    for block in kokoyi_blocks:
        bad = [v for t, v in lexer.get_tokens(block.body) if t in Error]
        assert not bad, f"{block.where}: Error tokens {bad[:5]}"


def test_a_character_the_compiler_rejects_is_an_error_token():
    assert (Error, "$") in tokens("a \\gets $ \\\\")


def test_token_types():
    toks = tokens("% a comment\n\\Module{Net}{x; W}\n"
                  "  y \\gets \\sum_{i=0}^{2} \\Softmax(W x)[i] \\cdot \\alpha \\infty \\Comment{note} \\\\\n"
                  "  \\Return \\hat{y} \\in \\mathbb{R} \\\\\n\\EndModule\n")
    assert toks[0] == (Comment.Single, "% a comment")
    assert (Keyword, "\\Module") in toks and (Name.Class, "Net") in toks
    for word in ("\\gets", "\\Return", "\\in", "\\EndModule"):
        assert (Keyword, word) in toks, word
    assert (Operator.Word, "\\sum") in toks and (Operator.Word, "\\cdot") in toks
    assert (Name.Builtin, "\\Softmax") in toks
    assert (Name.Constant, "\\infty") in toks and (Name, "\\alpha") in toks
    assert (Name.Decorator, "\\hat") in toks and (Keyword.Type, "\\mathbb") in toks
    assert (Comment.Special, "\\Comment") in toks and (Comment, "{note}") in toks
    assert (Punctuation, "\\\\") in toks and (Number, "0") in toks


def test_a_word_is_not_split_at_a_shorter_keyword():
    # `\in` is a keyword, `\infty` a constant; `\ln` a built-in, `\lnot` an operator.
    toks = tokens("\\infty \\lnot \\ln x \\SmoothL1(a, b)")
    assert toks[:3] == [(Name.Constant, "\\infty"), (Operator.Word, "\\lnot"), (Name.Builtin, "\\ln")]
    assert (Name.Builtin, "\\SmoothL1") in toks


def test_every_builtin_and_keyword_is_highlighted():
    from kokoyi.compiler import builtins, keywords

    for word in (name for name, fn in builtins.FUNCTIONS.items() if not fn.spelling):  # commands
        assert tokens(f"\\{word}") == [(Name.Builtin, f"\\{word}")], word
    for word in keywords.FIXED:
        (ttype, _), = tokens(f"\\{word}")
        assert ttype in Keyword or ttype in Operator, word
