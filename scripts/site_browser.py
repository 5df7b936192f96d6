"""Build the docs site, serve it on 127.0.0.1 and look at it in headless Chromium.

tests/test_docs_browser.py uses these; run as a script, it remakes the screenshot the
docs show of the language page with its math typeset:

    python scripts/site_browser.py screenshot docs/img/language-math.png

Chromium is Debian's `chromium` (apt-get install chromium). Every host but 127.0.0.1 is
mapped to nothing, so a page that tried to load a file from elsewhere (a CDN) would show
it: the site must work offline.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Time the page gets to load MathJax and typeset, in the browser's virtual time (no real waiting
# once the page is idle).
VIRTUAL_TIME_MS = 20000


def chromium() -> str | None:
    """The Chromium executable, or None when none is installed."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def build_site(site_dir: Path) -> None:
    """`mkdocs build --strict` into site_dir (raises CalledProcessError with mkdocs' output)."""
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                    "-d", str(site_dir)], cwd=ROOT, check=True, capture_output=True, text=True, timeout=300)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static file handler that records each request's path and status instead of logging."""

    requests: list[tuple[str, int]]

    def log_request(self, code="-", size="-") -> None:
        self.requests.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format, *args) -> None:
        pass


@contextlib.contextmanager
def serve(site_dir: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """Serve site_dir on 127.0.0.1 (a free port); yields the base URL and the request log."""
    log: list[tuple[str, int]] = []
    handler = type("Handler", (_QuietHandler,), {"requests": log})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(handler, directory=str(site_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", log
    finally:
        server.shutdown()
        server.server_close()


def _chromium_args(extra: list[str]) -> list[str]:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-extensions", "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}", *extra]


def dump_dom(url: str) -> str:
    """The page's DOM after its scripts ran (MathJax included), as HTML."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(_chromium_args([f"--user-data-dir={profile}", "--dump-dom", url]),
                              capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def screenshot(url: str, path: Path, width: int = 1100, height: int = 1500) -> None:
    """A PNG of the page's first width x height pixels, after its scripts ran."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(_chromium_args([f"--user-data-dir={profile}", f"--window-size={width},{height}",
                                       f"--screenshot={path}", url]),
                       capture_output=True, text=True, timeout=120, check=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "screenshot":
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        build_site(Path(tmp) / "site")
        with serve(Path(tmp) / "site") as (base, _):
            # The top of the page: prose math and the first examples, each with its typeset box.
            screenshot(base + "reference/language/", out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
