"""What compiled code needs to say about torch.export.

A recurrence (a set-builder that reads its own earlier elements) runs as a Python loop over
its sequence axis. torch.export traces Python, so the loop unrolls into one copy of the
step per element: the length must be fixed when the model is exported. A length marked
dynamic would be silently specialised (torch reports "marked seq as dynamic but your code
specialized it to be a constant"); recurrence_steps says which line of the math did it.
"""
from __future__ import annotations

import torch

from kokoyi.errors import KokoyiRuntimeError


def recurrence_steps(first, stop, where_: str):
    """range(first, stop) for a recurrence's loop; a clear error when torch.export is
    tracing it with a dynamic length."""
    if (isinstance(stop, torch.SymInt) or isinstance(first, torch.SymInt)) and torch.compiler.is_exporting():
        raise KokoyiRuntimeError(
            f"{where_}: this recurrence is a loop over its sequence axis, which torch.export unrolls: "
            f"export with that length static (leave it out of dynamic_shapes; one export per length), "
            f"or export the model of one step and loop over the sequence outside it")
    return range(first, stop)
