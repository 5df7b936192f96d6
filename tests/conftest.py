"""Shared fixtures: a clean kokoyi.symbol for every test, and the shared conformance runner."""
from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CONFORMANCE = SHARED / "conformance"

def conformance_runner():
    """The shared runner module (../shared/conformance/runner.py)."""
    if str(CONFORMANCE) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE))
    import runner

    return runner


from kokoyi.conftest import fresh_symbols  # noqa: F401 - the same autouse fixture here
