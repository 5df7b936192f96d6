"""Shared fixtures: a clean kokoyi.symbol for every test, and the shared conformance runner."""
from __future__ import annotations

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CONFORMANCE = SHARED / "conformance"


def conformance_runner():
    """The shared runner module (../shared/conformance/runner.py)."""
    if str(CONFORMANCE) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE))
    import runner

    return runner


@pytest.fixture(autouse=True)
def fresh_symbols():
    """Each test starts from an empty kokoyi.symbol and leaves none behind."""
    import kokoyi

    kokoyi.symbol.clear()
    kokoyi.set_rt_device(None)
    yield
    kokoyi.symbol.clear()
    kokoyi.set_rt_device(None)
