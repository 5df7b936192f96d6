"""kokoyi.compile, kokoyi.load and kokoyi.template."""
from __future__ import annotations

import os

from kokoyi.compiler.gcpause import gc_paused
from kokoyi.compiler.pipeline import compile_unit
from kokoyi.errors import KokoyiError, KokoyiRuntimeError
from kokoyi.runtime.module import explain
from kokoyi.runtime.symbols import SymbolTable, Unit, symbol


@gc_paused()  # compile and install: the unit's objects are not scanned while it is built
def compile(source: str, filename: str = "<kokoyi>") -> Unit:  # noqa: A001 - the public name
    """Compile a unit of Kokoyi source and register its definitions in kokoyi.symbol.

    A unit is what a .kyi file or a notebook cell holds; it may use every top-level name
    compiled before it in this process. `filename` is the name error messages and the
    generated code use. Returns a Unit: a mapping from the unit's names (source spelling,
    e.g. `\\gamma`) to the registered objects (constants as values, functions as Python
    functions, modules as `forward(self, *inputs, batch_level=None)`); its
    `python_source` attribute is the generated Python. On any error (a KokoyiError
    located at file:line:col) nothing is registered and kokoyi.symbol is left exactly as
    it was.

        >>> unit = kokoyi.compile(r"\\gamma \\gets 0.99 \\\\", filename="consts.kyi")
        >>> unit[r"\\gamma"], kokoyi.symbol["gamma"]
        (0.99, 0.99)
    """
    if not isinstance(source, str):
        raise TypeError(f"kokoyi.compile expects source text (str), got {type(source).__name__}")
    env, names = symbol.environment(copy=False)  # (read only while this unit compiles and installs)
    state = compile_unit(source, filename, env, names, defer_ir=True,  # IR on first call
                         taken_names=symbol.taken_names())
    return install(state)


def install(state, table: SymbolTable | None = None) -> Unit:
    """Run a compiled unit's code and register it in table (kokoyi.symbol by default).

    An exception other than a KokoyiError becomes a KokoyiRuntimeError naming the `.kyi` line.
    """
    table = symbol if table is None else table
    try:
        return table.install(state)
    except KokoyiError:
        raise
    except Exception as err:
        explained = explain(err) or f"{state.source.filename}: {type(err).__name__}: {err}"
        raise KokoyiRuntimeError(explained) from err


def load(path: str | os.PathLike) -> Unit:
    """Compile and register a `.kyi` file, like kokoyi.compile with the path as file name.

    The generated Python is cached on disk (in $KOKOYI_CACHE_DIR, else
    $XDG_CACHE_HOME/kokoyi, else ~/.cache/kokoyi), keyed by the file's content, its name,
    the compiler and the names earlier units defined, so loading an unchanged file again
    skips code generation (see kokoyi.runtime.cache). The kernels its modules' and
    functions' calls generate are cached there too (kokoyi.runtime.kernelcache; off with
    KOKOYI_KERNEL_CACHE=0). Returns the Unit.
    """
    from kokoyi.runtime.cache import load_cached

    return load_cached(os.fspath(path))


def template(name: str, table: SymbolTable | None = None, forward: str | None = None) -> str:
    """The torch.nn.Module class skeleton for a compiled module, to copy and fill in.

    The class has one attribute per parameter (a TODO to fill in), `get_parameters`
    returning them in declaration order, and `forward = kokoyi.symbol[KEY]`: the text the
    `%kokoyi` magic prints and `kyic template` writes. Raises KeyError when `name` is not
    a compiled module.

    table is where to look the module up (kokoyi.symbol by default); forward is the Python
    expression the class's `forward` is bound to (default `kokoyi.symbol[KEY]`).
    """
    table = symbol if table is None else table
    forward_fn = table[name]
    spec = getattr(forward_fn, "__kokoyi_spec__", None)
    if spec is None:
        raise KeyError(f"{name!r} is not a Kokoyi module")
    key = table.canonical(name)
    class_name = _class_name(table._python_names()[key])
    attrs = spec.param_hints
    lines = [f"class {class_name}(torch.nn.Module):"]
    lines.append(f'    r"""{spec.describe()}"""')
    lines.append("")
    lines.append("    def __init__(self):")
    lines.append("        super().__init__()")
    for attr, param in zip(attrs, spec.params):
        lines.append(f"        self.{attr} = None  # TODO: parameter {param}: a tensor, number or torch.nn.Module")
    if attrs:
        lines.append("")
        lines.append("    def get_parameters(self):")
        if len(attrs) == 1:
            lines.append(f"        return self.{attrs[0]}")
        else:
            lines.append(f"        return ({', '.join('self.' + a for a in attrs)})")
    lines.append("")
    lines.append(f"    forward = {forward or f'kokoyi.symbol[{key!r}]'}")
    return "\n".join(lines) + "\n"


def _class_name(python_name: str) -> str:
    parts = [p for p in python_name.split("_") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
