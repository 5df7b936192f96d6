"""Every case of the shared conformance suite (../shared/conformance), through its runner."""
from __future__ import annotations

import pytest

from conftest import CONFORMANCE, ROUND_2_CASES, conformance_runner

runner = conformance_runner() if CONFORMANCE.exists() else None
CASES = runner.discover() if runner else []


def test_conformance_suite_is_present():
    assert runner is not None, f"shared conformance suite not found at {CONFORMANCE}"
    assert len(CASES) >= 17


ROUND_2 = pytest.mark.xfail(strict=True, reason="issue 13 (Language round 2) is not implemented yet")


@pytest.mark.parametrize("path", [pytest.param(p, marks=ROUND_2) if p.stem in ROUND_2_CASES else p for p in CASES],
                         ids=lambda p: p.stem)
def test_conformance_case(path):
    runner.check(path)
