"""Every case of the shared conformance suite (../shared/conformance), through its runner."""
from __future__ import annotations

import pytest
from conftest import CONFORMANCE, conformance_runner

runner = conformance_runner() if CONFORMANCE.exists() else None
CASES = runner.discover() if runner else []


def test_conformance_suite_is_present():
    assert runner is not None, f"shared conformance suite not found at {CONFORMANCE}"
    assert len(CASES) >= 17


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_conformance_case(path):
    runner.check(path)
