"""kokoyi: write the model the way the paper writes it, in LaTeX, and train it with PyTorch.

    import kokoyi
    unit = kokoyi.compile(source, filename="policy.kyi")   # or kokoyi.load("policy.kyi")
    forward = kokoyi.symbol[r"\\pi"]
"""
from __future__ import annotations

__version__ = "0.1.0"

from kokoyi import nn  # noqa: E402
from kokoyi.errors import (  # noqa: E402
    KokoyiError,
    KokoyiNameError,
    KokoyiRuntimeError,
    KokoyiSyntaxError,
    KokoyiTypeError,
)
from kokoyi.runtime.device import set_rt_device  # noqa: E402
from kokoyi.runtime.loader import compile, load, template  # noqa: E402
from kokoyi.runtime.symbols import symbol  # noqa: E402

__all__ = [
    "__version__", "compile", "load", "symbol", "template", "set_rt_device", "nn",
    "KokoyiError", "KokoyiSyntaxError", "KokoyiNameError", "KokoyiTypeError", "KokoyiRuntimeError",
]
