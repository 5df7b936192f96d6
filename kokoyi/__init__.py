"""kokoyi: write the model the way the paper writes it, in LaTeX, and train it with PyTorch.

    import kokoyi
    unit = kokoyi.compile(source, filename="policy.kyi")   # or kokoyi.load("policy.kyi")
    forward = kokoyi.symbol[r"\\pi"]

The public API (documented in docs/api.md):

    compile(source, filename)   compile a unit, register its definitions, return them
    load(path)                  the same for a .kyi file, with an on-disk code cache
    symbol                      every definition compiled in this process, by source name
    template(name)              the torch.nn.Module class skeleton of a compiled module
    set_rt_device(device)       where compiled code creates tensors no input places
    nn                          layers whose per-sample call matches the math
    KokoyiError, KokoyiSyntaxError, KokoyiNameError, KokoyiTypeError, KokoyiRuntimeError

A module symbol is `forward(self, *inputs, batch_level=None)`: assign it as the `forward` of
a torch.nn.Module whose `get_parameters()` returns the module's parameters in declaration
order. Inside IPython, importing kokoyi registers the `%kokoyi` notebook magic.
"""
from __future__ import annotations

__version__ = "0.1.0"

from kokoyi.errors import (  # noqa: E402
    KokoyiError,
    KokoyiNameError,
    KokoyiRuntimeError,
    KokoyiSyntaxError,
    KokoyiTypeError,
)

# The rest of the API is imported on first use (PEP 562), so tools that never run a model
# (`kyic check`, `kyic render`, `--help`) start without importing torch.
_LAZY = {
    "compile": ("kokoyi.runtime.loader", "compile"),
    "load": ("kokoyi.runtime.loader", "load"),
    "template": ("kokoyi.runtime.loader", "template"),
    "symbol": ("kokoyi.runtime.symbols", "symbol"),
    "set_rt_device": ("kokoyi.runtime.device", "set_rt_device"),
    "nn": ("kokoyi.nn", None),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'kokoyi' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython) -> None:
    """`%load_ext kokoyi`: register the `%kokoyi` notebook magic (kokoyi.notebook)."""
    from kokoyi.notebook import register

    register(ipython)


def _register_in_running_ipython() -> None:
    """Inside IPython, `import kokoyi` registers the magic; outside, IPython is not imported."""
    import sys

    ipython_module = sys.modules.get("IPython")
    if ipython_module is None:
        return
    shell = ipython_module.get_ipython()
    if shell is not None:
        load_ipython_extension(shell)


_register_in_running_ipython()

__all__ = [
    "__version__", "compile", "load", "symbol", "template", "set_rt_device", "nn",
    "KokoyiError", "KokoyiSyntaxError", "KokoyiNameError", "KokoyiTypeError", "KokoyiRuntimeError",
]
