"""Python's cyclic garbage collector paused while a unit compiles.

Compiling allocates many small objects that stay alive until the end of the unit (tokens,
the parse tree, AST and IR nodes). Each collection the allocations trigger scans the live
objects, so with the collector on, the time grew faster than the source: a unit of 1,000
small modules took 20x the time of 100 modules, not 10x (a process that has imported torch
holds hundreds of thousands of objects more to scan). Compiling makes few reference cycles;
whatever garbage it leaves is collected at the next collection after the unit.
"""
from __future__ import annotations

import contextlib
import functools
import gc


class gc_paused(contextlib.ContextDecorator):  # noqa: N801 - used as a decorator, named like one
    """Context manager and decorator: the collector off inside, restored (if it was on) after.

    Nested uses keep it off until the outermost one ends.
    """

    def _recreate_cm(self):  # each decorated call gets its own saved state (recursion, threads)
        return type(self)()

    def __call__(self, func):
        """func with the collector paused while it runs (as ContextDecorator does, without
        making a context manager and entering it through contextlib per call)."""

        @functools.wraps(func)
        def paused(*args, **kwargs):
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                return func(*args, **kwargs)
            finally:
                if was_enabled:
                    gc.enable()

        return paused

    def __enter__(self):
        self._was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc) -> bool:
        if self._was_enabled:
            gc.enable()
        return False
