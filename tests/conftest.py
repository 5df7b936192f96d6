"""Shared fixtures: a clean kokoyi.symbol for every test, and the shared conformance runner."""
from __future__ import annotations

import pathlib
import sys


ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CONFORMANCE = SHARED / "conformance"

# Conformance cases of constructs that issue 13 (Language round 2: recurrence groups, matrix
# literals, linear algebra, log bases) brings; they are expected to fail until it lands.
ROUND_2_CASES = frozenset({"recurrence_group_lstm", "matrix_literals", "linear_algebra", "log_bases"})


def conformance_runner():
    """The shared runner module (../shared/conformance/runner.py)."""
    if str(CONFORMANCE) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE))
    import runner

    return runner


from kokoyi.conftest import fresh_symbols  # noqa: E402,F401 - the same autouse fixture here
