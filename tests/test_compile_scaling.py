"""Compile time grows linearly with the source (issue 14), checked by counting work, not timing it.

Speed itself is measured by benchmarks/compile_time.py; these tests check the two things
that made compiling superlinear: work per module that grows with the unit (counted as
Python function calls, which are deterministic for a given source) and garbage collections
during the compile (each scans every live object, so their cost grew with the unit).
"""
from __future__ import annotations

import cProfile
import gc
import pstats
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from compile_time import unit_of  # noqa: E402  - the benchmark's small modules

from kokoyi.compiler.pipeline import compile_unit  # noqa: E402


def _calls(text: str) -> int:
    prof = cProfile.Profile()
    prof.runcall(compile_unit, text, "scaling.kyi")
    return pstats.Stats(prof).total_calls


def test_work_is_linear_in_the_number_of_modules():
    compile_unit(unit_of(2))  # the parser is built once, outside what is counted
    small, large = _calls(unit_of(20)), _calls(unit_of(200))
    assert small > 20 * 100  # the counter sees the passes' work
    # 10x the source: 10x the calls, up to the per-unit constant (no work per module that
    # grows with the number of modules before it).
    assert large <= 10 * small, (small, large, large / small)
    assert large >= 9 * small  # and the counter is not blind to the size


KOKOYI = Path(__file__).resolve().parents[1] / "kokoyi"


def _compile_and_install(text: str) -> None:
    import kokoyi

    kokoyi.compile(text.replace("Layer", "Scaling"), "scaling.kyi")


@pytest.mark.parametrize("compile_text", [lambda text: compile_unit(text, "scaling.kyi"), _compile_and_install],
                         ids=["compile_unit", "kokoyi.compile"])
def test_no_garbage_collection_while_compiling(compile_text):
    starts = []

    def record(phase, info):
        if phase == "start":  # note whether kokoyi's code (other than the pause itself) is on the stack
            frame, inside = sys._getframe(1), False
            while frame is not None:
                name = Path(frame.f_code.co_filename)
                inside |= KOKOYI in name.parents and name.name != "gcpause.py"
                frame = frame.f_back
            starts.append(inside)

    text = unit_of(100)
    compile_text(unit_of(1))  # imports done before counting
    old = gc.get_threshold()
    gc.callbacks.append(record)
    try:
        gc.set_threshold(50)  # so that the allocations of compiling would surely trigger collections
        assert gc.isenabled()
        gc.collect()  # allocation counts back to zero: none left over to trigger one at the call
        starts.clear()
        compile_text(text)
        during = list(starts)
        assert gc.isenabled()  # turned back on after the unit
        starts.clear()
        for _ in range(10):  # allocations outside kokoyi do collect
            [[] for _ in range(200)]
        assert starts and not any(starts)
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*old)
    assert during and not any(during), "a garbage collection ran inside kokoyi's compiler or loader"


def test_collector_stays_off_when_it_was_off():
    gc.disable()
    try:
        compile_unit(unit_of(1), "scaling.kyi")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_pause_decorator_restores_the_collector_as_it_found_it():
    from kokoyi.compiler.gcpause import gc_paused

    @gc_paused()
    def inner(fail=False):
        """Inner's doc."""
        assert not gc.isenabled()
        if fail:
            raise ValueError("boom")
        return 7

    @gc_paused()
    def outer():
        inner()
        assert not gc.isenabled()  # (a nested pause keeps it off until the outermost one ends)
        return inner()

    assert inner.__name__ == "inner" and inner.__doc__ == "Inner's doc."
    assert outer() == 7 and gc.isenabled()
    with pytest.raises(ValueError, match="boom"):
        inner(fail=True)
    assert gc.isenabled()
    gc.disable()
    try:
        assert inner() == 7 and not gc.isenabled()
    finally:
        gc.enable()
    with gc_paused():  # (still a context manager)
        assert not gc.isenabled()
    assert gc.isenabled()


def test_no_import_statement_runs_per_unit():
    # A function-level `from module import name` costs about 1.5 us a call (kokoyi.compiler.lazy);
    # the passes, the parser and the install look their modules up once instead.
    import builtins

    import kokoyi

    kokoyi.compile(unit_of(1, 7000).replace("Layer", "Imports"), "imports.kyi")  # first use imports
    imports = []
    real = builtins.__import__

    def counting(name, *args, **kwargs):
        imports.append(name)
        return real(name, *args, **kwargs)

    builtins.__import__ = counting
    try:
        for i in range(3):
            kokoyi.compile(unit_of(1, 7001 + i).replace("Layer", "Imports"), f"imports{i}.kyi")
    finally:
        builtins.__import__ = real
    assert imports == []
