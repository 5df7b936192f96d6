"""Loop-invariant code of a recurrence's loop moved before it (`kernel.For.pre`).

The batch pass evaluates a step's IR as written, so a step that calls an inlined cell picks
its layers from their lists (`U[0]`) every step, and the weights `fuse.py` concatenates are
made before the loop too. A statement of the loop's body (not under a branch) moves when it
reads nothing the body assigns and has no effect (a layer may be dropout: called per step).
A For runs at least one step (batch/sequences.py guards it), so a statement that may fail
fails exactly when it would have in the first step, only earlier.
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.cleanup import EFFECTS

# Effects, or a value that changes while the loop runs (a recurrence's elements so far).
STAYS = (EFFECTS - {"item"}) | {"earlier", "no_earlier", "read_states", "step_item"}


def assigned(block: list, acc: set) -> set:
    for s in block:
        match s:
            case K.Assign() if s.out is not None:
                acc.add(s.out)
            case K.If():
                assigned(s.then, acc)
                assigned(s.orelse, acc)
            case K.For():
                acc.add(s.var)
                assigned(s.pre, acc)
                assigned(s.body, acc)
    return acc


def hoist_invariants(block: list) -> list:
    """block with each For's invariant statements moved to its `pre` (inner loops first)."""
    out = []
    for s in block:
        match s:
            case K.If():
                s = dataclasses.replace(s, then=hoist_invariants(s.then), orelse=hoist_invariants(s.orelse))
            case K.For():
                body = hoist_invariants(s.body)
                varying = assigned(body, {s.var})
                pre, kept = list(s.pre), []
                for t in body:
                    if isinstance(t, K.Assign) and t.out is not None and t.op not in STAYS \
                            and not K.read_names(t) & varying:
                        pre.append(t)
                        varying.discard(t.out)
                    else:
                        kept.append(t)
                s = dataclasses.replace(s, pre=pre, body=kept)
        out.append(s)
    return out
