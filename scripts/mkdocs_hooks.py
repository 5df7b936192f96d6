"""MkDocs hooks for the kokoyi site: math typeset by MathJax served from the site itself.

- on_page_markdown: under every Kokoyi example (a ```latex fence that is not `.error`), the
  equations the notebook display shows for it (kokoyi.compiler.render.render_latex), typeset.
- on_files: MathJax 3, pinned in scripts/docs-vendor/package-lock.json and installed from the
  npm registry with `npm ci` under build/docs-vendor/ on the first build, is added to the site
  as js/mathjax/, so no page loads anything from another host and the site works offline.

Prose math is pymdownx.arithmatex (`$...$`, `$$...$$`); docs/js/mathjax-config.js tells
MathJax to typeset only what arithmatex and this hook marked (class `arithmatex`).
"""
from __future__ import annotations

import hashlib
import html
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
VENDOR_SPEC = ROOT / "scripts" / "docs-vendor"
VENDOR_BUILD = ROOT / "build" / "docs-vendor"
MATHJAX_SITE_DIR = "js/mathjax"
# The parts of mathjax/es5 a page loads: the combined TeX->CommonHTML component, what it
# loads on demand (TeX extensions, the menu and its accessibility parts) and the fonts.
MATHJAX_PARTS = ("tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y")
KOKOYI_LANGS = ("latex", "kokoyi", "kyi")

log = logging.getLogger("mkdocs.hooks.kokoyi")

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.MULTILINE | re.DOTALL)


# ---- MathJax, vendored from the npm registry --------------------------------------------------


def mathjax_dir() -> Path:
    """The installed mathjax/es5 folder for the pinned lock file (may not exist yet)."""
    digest = hashlib.sha256((VENDOR_SPEC / "package-lock.json").read_bytes()).hexdigest()[:12]
    return VENDOR_BUILD / digest / "node_modules" / "mathjax" / "es5"


def mathjax_installable() -> bool:
    """Whether a build can have MathJax: already installed, or npm is there to install it."""
    return (mathjax_dir() / "tex-chtml.js").is_file() or shutil.which("npm") is not None


def ensure_mathjax() -> Path:
    """Install the pinned MathJax under build/docs-vendor (once per lock file) and return es5/."""
    es5 = mathjax_dir()
    if (es5 / "tex-chtml.js").is_file():
        return es5
    npm = shutil.which("npm")
    if npm is None:
        raise PluginError("the docs need MathJax from the npm registry, and npm is not installed "
                          "(apt-get install npm, or put node's npm on PATH)")
    target = es5.parents[2]  # build/docs-vendor/<digest>
    target.parent.mkdir(parents=True, exist_ok=True)
    # Install into a fresh folder and rename it into place: two builds at once (pytest -n 2)
    # must never see a half-installed MathJax.
    staging = Path(tempfile.mkdtemp(prefix="install-", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(VENDOR_SPEC / name, staging / name)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=staging,
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise PluginError(f"`npm ci` in {VENDOR_SPEC} failed:\n{done.stdout}\n{done.stderr}")
        try:
            os.rename(staging, target)
        except OSError:  # another build installed it first
            if not (es5 / "tex-chtml.js").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("installed MathJax into %s", target)
    return es5


def on_files(files, config):
    """Add the MathJax parts to the site under js/mathjax/."""
    es5 = ensure_mathjax()
    for part in MATHJAX_PARTS:
        source = es5 / part
        paths = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for path in paths:
            uri = f"{MATHJAX_SITE_DIR}/{path.relative_to(es5).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


# ---- the rendered math under each Kokoyi example ----------------------------------------------


def _fence_lang_and_classes(info: str) -> tuple[str, set[str]]:
    """`latex` or `{.latex .error raises=X}` -> ("latex", {"error"})."""
    info = info.strip()
    if not info.startswith("{"):
        return (info.split()[0] if info else ""), set()
    words = [w[1:] for w in info.strip("{}").split() if w.startswith(".")]
    return (words[0] if words else ""), set(words[1:])


def typeset_block(tex: str) -> str:
    """A display-math block for the page; `arithmatex` is the class MathJax is told to typeset."""
    return ('<div class="kokoyi-math arithmatex" title="what the notebook shows for the block above">\\[\n'
            f"{html.escape(tex, quote=False)}\n\\]</div>")


def add_rendered_math(markdown: str, where: str) -> str:
    """The page's Markdown with the typeset equations after each Kokoyi example."""
    from kokoyi.compiler.render import render_latex
    from kokoyi.errors import KokoyiError

    out, last = [], 0
    for m in FENCE.finditer(markdown):
        lang, classes = _fence_lang_and_classes(m["info"])
        first_line = m["body"].split("\n", 1)[0]
        if lang not in KOKOYI_LANGS or "error" in classes or "--no-render" in first_line:
            continue
        line = markdown.count("\n", 0, m.start()) + 1
        try:
            tex = render_latex(m["body"], f"{where}:{line}")
        except KokoyiError:
            continue  # a block that does not compile fails tests/test_docs.py, which says why
        except Exception as err:  # noqa: BLE001 - a renderer bug: --strict fails on the warning
            log.warning("%s:%d: cannot render this Kokoyi block (%s: %s)", where, line, type(err).__name__, err)
            continue
        if tex:
            out.append(markdown[last:m.end()])
            out.append("\n\n" + typeset_block(tex) + "\n")
            last = m.end()
    out.append(markdown[last:])
    return "".join(out)


def on_page_markdown(markdown, page, config, files):
    return add_rendered_math(markdown, f"docs/{page.file.src_uri}")
