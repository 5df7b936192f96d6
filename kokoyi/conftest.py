"""Fixtures for the unit tests that sit next to each module (`*_test.py` under kokoyi/)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def fresh_symbols():
    """Each test starts from an empty kokoyi.symbol and leaves none behind."""
    import kokoyi

    kokoyi.symbol.clear()
    kokoyi.set_rt_device(None)
    yield
    kokoyi.symbol.clear()
    kokoyi.set_rt_device(None)
