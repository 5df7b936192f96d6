"""The docs site typesets its math, offline: built, served on 127.0.0.1, opened in headless Chromium.

Skipped when Chromium is not installed, except in CI (CI=true), where .ci/run installs
Debian's `chromium` and a missing browser fails; also skipped without mkdocs, or when
MathJax can't be had (no npm). The helpers are scripts/site_browser.py.
"""
from __future__ import annotations

import importlib.util
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


browser = _load("site_browser")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed")

# Pages with math in prose ($...$ through pymdownx.arithmatex) and Kokoyi examples.
PAGES = ("reference/language/", "tutorial/")
# What raw TeX left in the page's text would look like, had MathJax not typeset it.
RAW_TEX = re.compile(r"\\(frac|sum|begin|gamma|left|mathit|leftarrow|textbf)\b|\\\(|\\\[")


class PageText(HTMLParser):
    """Counts of MathJax's elements, and the text outside code, scripts and MathJax's output."""

    SKIP = frozenset({"code", "pre", "script", "style", "mjx-container", "textarea"})
    VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "wbr"})  # no end tag

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # how deep inside a SKIP element
        self.prose: list[str] = []
        self.counts: dict[str, int] = {}
        self.arithmatex_without_math = 0
        self._arithmatex: list[list] = []  # open .arithmatex elements: [tag, saw mjx-container]

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        classes = (dict(attrs).get("class") or "").split()
        if tag == "mjx-container":
            for entry in self._arithmatex:
                entry[1] = True
        if "arithmatex" in classes:
            self._arithmatex.append([tag, False])
        if tag in self.SKIP or self.depth:
            self.depth += tag not in self.VOID

    def handle_endtag(self, tag):
        if self._arithmatex and self._arithmatex[-1][0] == tag:
            self.arithmatex_without_math += not self._arithmatex.pop()[1]
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.prose.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if browser.chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it, and CI must run this test")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    if not _load("mkdocs_hooks").mathjax_installable():
        pytest.skip("MathJax is not installed under build/docs-vendor and npm is not there to install it")
    site_dir = tmp_path_factory.mktemp("browser") / "site"
    browser.build_site(site_dir)
    with browser.serve(site_dir) as (base, requests):
        yield site_dir, base, requests


@pytest.mark.parametrize("page", PAGES)
def test_math_is_typeset_in_the_browser(site, page):
    site_dir, base, requests = site
    built = (site_dir / page / "index.html").read_text(encoding="utf-8")
    to_typeset = len(re.findall(r'class="[^"]*\barithmatex\b', built))
    examples = built.count('class="kokoyi-math')
    assert to_typeset > examples > 0, f"{page}: expected prose math and typeset Kokoyi examples"

    del requests[:]
    dom = browser.dump_dom(base + page)
    text = PageText()
    text.feed(dom)
    prose = " ".join(text.prose)
    # Every marked element now holds MathJax's output, and nothing raw is left.
    assert text.counts.get("mjx-container", 0) >= to_typeset, (page, text.counts.get("mjx-container"), to_typeset)
    assert text.arithmatex_without_math == 0, f"{page}: {text.arithmatex_without_math} math elements not typeset"
    leftover = RAW_TEX.search(prose)
    assert leftover is None, f"{page}: raw TeX left in the text: ...{prose[leftover.start() - 80:leftover.end() + 80]}..."
    # MathJax shows a TeX error as <mjx-merror>: every formula must be valid for it.
    assert "mjx-merror" not in text.counts, f"{page}: MathJax reported a TeX error"
    # Everything came from the site itself (other hosts resolve to nothing), and nothing was missing.
    assert any(path.endswith("tex-chtml.js") for path, _ in requests), requests
    assert any(path.endswith(".woff") for path, _ in requests), "MathJax's fonts were not loaded"
    missing = [(path, status) for path, status in requests if status >= 400]
    assert not missing, f"{page}: requests that failed: {missing}"


def test_built_pages_name_no_other_host(site):
    """No script, style sheet or font of the site comes from a CDN."""
    site_dir, _, _ = site
    for path in site_dir.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        for url in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html):
            assert not re.match(r"(https?:)?//", url), f"{path.relative_to(site_dir)} loads {url}"
