"""Loading `.kyi` files (the on-disk code cache is added by the loading issue)."""
from __future__ import annotations

from pathlib import Path


def load_cached(path: str):
    from kokoyi.runtime.loader import compile

    text = Path(path).read_text(encoding="utf-8")
    return compile(text, filename=path)
