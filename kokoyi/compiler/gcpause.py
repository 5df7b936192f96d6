"""Python's cyclic garbage collector paused while a unit compiles.

Compiling allocates many small objects that stay alive until the end of the unit (tokens,
the parse tree, AST and IR nodes). Each collection the allocations trigger scans the live
objects, so with the collector on, the time grew faster than the source: a unit of 1,000
small modules took 20x the time of 100 modules, not 10x (a process that has imported torch
holds hundreds of thousands of objects more to scan). Compiling makes few reference cycles;
whatever garbage it leaves is collected at the next collection after the unit.

`gc_paused(promote=True)` (a call signature's code generation: kokoyi/runtime/specialize.py)
also moves what survives the pause into the oldest generation as the collector resumes.
What the call-time passes keep (each definition's IR, the kernel's code and line map) is
young then: the allocations made while paused still count towards a generation-0
collection, and the first allocation after the pause started one that scanned those
survivors (tens of thousands of objects, ~0.8 ms of a Transformer's cold first call) only to
move them up a generation. `gc.freeze()` then `gc.unfreeze()` moves every tracked object
to the oldest generation at once (two list splices) and zeroes the generation-0 count; the
next full collection scans them as it would have. Skipped where the process has frozen
objects of its own (`gc.get_freeze_count()`): unfreezing would release them.
"""
from __future__ import annotations

import contextlib
import functools
import gc


class gc_paused(contextlib.ContextDecorator):  # noqa: N801 - used as a decorator, named like one
    """Context manager and decorator: the collector off inside, restored (if it was on) after.

    Nested uses keep it off until the outermost one ends. promote: the outermost one moves
    the survivors into the oldest generation as it turns the collector back on (above).
    """

    def __init__(self, promote: bool = False):
        self.promote = promote

    def _recreate_cm(self):  # each decorated call gets its own saved state (recursion, threads)
        return type(self)(self.promote)

    def __call__(self, func):
        """func with the collector paused while it runs (as ContextDecorator does, without
        making a context manager and entering it through contextlib per call)."""

        promote = self.promote

        @functools.wraps(func)
        def paused(*args, **kwargs):
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                return func(*args, **kwargs)
            finally:
                if was_enabled:
                    if promote:
                        promote_survivors()
                    gc.enable()

        return paused

    def __enter__(self):
        self._was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc) -> bool:
        if self._was_enabled:
            if self.promote:
                promote_survivors()
            gc.enable()
        return False


def promote_survivors() -> None:
    """Every object the collector tracks moved into the oldest generation, the generation-0
    count zeroed (see the module's docstring); nothing where the process froze objects itself."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
