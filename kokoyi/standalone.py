"""`kyic compile --standalone`: one Python file that runs a unit's modules with torch alone.

The file holds, in order: the runtime helpers the kernels call (their source, copied from
kokoyi.runtime.kernels, kokoyi.runtime.ops and what they use, gathered as `kx` and `kk`
namespaces), the module wrapper of kokoyi/standalone_runtime.py, the unit's constants, each
module's kernels — the one for one sample and one per batch levels asked for, printed by the
same `batch` and `emit` passes as every call, each statement under its LaTeX line — and one
torch.nn.Module class per Kokoyi module (its parameters are constructor arguments). The
modules are the ones the options name (every module of the unit when none is named); top-level
functions are inlined into the kernels that call them.

Kernels depend on the call's signature, which a file compiled ahead of time must be told
(see `Signature`): each input's per-sample rank (from its annotation, else `--input-rank`)
and the kind of each parameter (`--param`, e.g. `[Linear,Linear]`). Other batch levels run
the batch levels' kernel on the batch axes flattened into one, or else the one-sample
kernel in a loop over the samples.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import dataclass, field

import torch

from kokoyi.errors import KokoyiError

HELPER_MODULES = ("kokoyi.runtime.recur", "kokoyi.runtime.calls", "kokoyi.runtime.kernels", "kokoyi.runtime.factors",
                  "kokoyi.runtime.products", "kokoyi.runtime.linalg", "kokoyi.runtime.losses",
                  "kokoyi.runtime.statics", "kokoyi.runtime.scan", "kokoyi.runtime.ops", "kokoyi.runtime.device",
                  "kokoyi.runtime.export", "kokoyi.runtime.reads")
# Names the helpers import from kokoyi that the standalone file replaces by plain classes.
STAND_INS = {
    "KokoyiRuntimeError": "class KokoyiRuntimeError(RuntimeError):\n"
                          "    \"\"\"An error in a Kokoyi computation, located at file:line:col.\"\"\"\n",
}


class StandaloneError(KokoyiError):
    """A --standalone option that cannot be honoured (unknown module, missing input rank)."""


@dataclass
class Signature:
    """What batched code for one module is generated for.

    levels: 0 or 1 per input. input_ranks: input name -> per-sample rank (an int, "R:int"
    for integer tensors, "number"/"int" for Python numbers), for inputs without an
    annotation. params: parameter name -> kind, in the little language of `parse_kind`.
    """

    levels: tuple[int, ...]
    input_ranks: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


# ---- parameter kinds -----------------------------------------------------------------------


def parse_kind(text: str, table, signatures: dict[str, Signature]):
    """An example object of a parameter kind, for describe():

    `number`, `int`, `tensorR` (a float tensor of rank R), a torch.nn layer class name
    (`Linear`, `Conv2d`, `GRUCell`, ...), a Kokoyi module of the same file (its own
    parameters from its --param options), `[K1,K2,...]` (a ModuleList, or a list when
    not all modules) and `K*N` (N of K).
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        items = [parse_kind(part, table, signatures) for part in _split_top(text[1:-1])]
        return _list_of(items)
    if "*" in text and not text.endswith("]"):
        kind, _, count = text.rpartition("*")
        if count.strip().isdigit():
            return _list_of([parse_kind(kind, table, signatures) for _ in range(int(count))])
    if text == "number":
        return 1.0
    if text == "int":
        return 1
    match = re.fullmatch(r"tensor(\d+)", text)
    if match:
        return torch.zeros((1,) * int(match.group(1)))
    if text in table and getattr(table[text], "__kokoyi_spec__", None) is not None:
        return _example_module(table.canonical(text), table, signatures)
    layer = getattr(torch.nn, text, None)
    if isinstance(layer, type) and issubclass(layer, torch.nn.Module):
        obj = layer.__new__(layer)  # only its type matters to the specialiser
        torch.nn.Module.__init__(obj)
        return obj
    raise StandaloneError(f"unknown parameter kind {text!r}: expected number, int, tensorR, a torch.nn layer, "
                          f"a Kokoyi module of this file, [K1,K2,...] or K*N")


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _list_of(items):
    if items and all(isinstance(i, torch.nn.Module) for i in items):
        return torch.nn.ModuleList(items)
    return list(items)


def _example_module(key: str, table, signatures: dict[str, Signature]):
    """An nn.Module whose forward is Kokoyi module `key`, with example parameters."""
    forward = table[key]
    spec = forward.__kokoyi_spec__
    values = _example_params(key, spec, table, signatures)
    cls = type(f"Example_{spec.name}", (torch.nn.Module,), {
        "forward": forward,
        "get_parameters": lambda self: self.kokoyi_params[0] if len(values) == 1 else tuple(self.kokoyi_params),
    })
    obj = cls()
    obj.kokoyi_params = list(values)
    return obj


def _example_params(key: str, spec, table, signatures: dict[str, Signature]) -> tuple:
    given = signatures[key].params if key in signatures else {}
    kinds = [_given(given, p, hint) for p, hint in zip(spec.params, spec.param_hints)]
    missing = [p for p, kind in zip(spec.params, kinds) if kind is None]
    if missing:
        raise StandaloneError(f"module `{key}` needs the kind of parameter"
                              f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}: pass "
                              + " ".join(f"--param '{key}.{p}=KIND'" for p in missing))
    return tuple(parse_kind(kind, table, signatures) for kind in kinds)


def _given(options: dict, key: str, python_name: str | None = None):
    """The option value for a name written as in the source (`\\gamma`), without its
    backslash (`gamma`) or as its Python name (`Q_hat` for `\\hat{Q}`)."""
    for name in (key, key.lstrip("\\"), python_name):
        if name is not None and name in options:
            return options[name]
    return None


def _input_descs(key: str, spec, sig: Signature) -> tuple:
    descs = []
    for inp, level in zip(spec.inputs, sig.levels):
        given = _given(sig.input_ranks, inp.key)
        if given is None and inp.dims is not None:
            given = f"{len(inp.dims)}{':int' if inp.field in ('Z', 'N') else ''}"
        if given is None:
            raise StandaloneError(f"module `{key}` needs the per-sample rank of input "
                                  f"`{inp.key}` (no annotation): pass --input-rank '{key}.{inp.key}=R'")
        if given in ("number", "int"):
            if level:
                raise StandaloneError(f"input `{inp.key}` of module `{key}` is a number: it cannot be batched")
            descs.append((("number", given == "int"), False))
            continue
        rank, _, dtype = given.partition(":")
        if not rank.strip().isdigit() or dtype not in ("", "int", "float"):
            raise StandaloneError(f"--input-rank {key}.{inp.key}={given}: expected R, R:int or number")
        descs.append((("tensor", int(rank), dtype == "int"), bool(level)))
    return tuple(descs)


# ---- the runtime helpers -------------------------------------------------------------------


class _Helpers:
    """Top-level statements of the helper modules that the code needs, in source order."""

    def __init__(self) -> None:
        self.modules = {}
        for name in HELPER_MODULES:
            module = importlib.import_module(name)
            tree = ast.parse(inspect.getsource(module))
            self.modules[name] = (module, inspect.getsource(module), tree, self._definitions(tree))
        self.chosen: dict[tuple[str, int], str] = {}  # (module, statement line) -> source
        self.imports: set[str] = set()
        self.stand_ins: set[str] = set()

    @staticmethod
    def _definitions(tree) -> dict:
        """name -> top-level statement defining it (def, class, assignment or import)."""
        found = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        found[t.id] = node
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    found[(alias.asname or alias.name).split(".")[0]] = node
        return found

    def need(self, name: str, module_name: str = "kokoyi.runtime.ops", alias: str | None = None) -> None:
        _, text, _, defs = self.modules[module_name]
        node = defs.get(name)
        if node is None:
            raise StandaloneError(f"no runtime helper {name!r} in {module_name}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self._imported(node, name)
            return
        key = (module_name, node.lineno)
        if key in self.chosen:
            return
        source = ast.get_source_segment(text, node, padded=False)
        if alias is not None and alias != name:
            source = re.sub(rf"^def {re.escape(name)}\(", f"def {alias}(", source)
        self.chosen[key] = source
        for used in _names_used(node):
            if used in defs and used != name:
                self.need(used, module_name)

    def _imported(self, node, name: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.asname or alias.name).split(".")[0] == name:
                    self.imports.add(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
            return
        for alias in node.names:
            if (alias.asname or alias.name) != name:
                continue
            if node.module == "kokoyi.errors":
                self.stand_ins.add(alias.name)
            elif node.module in HELPER_MODULES:
                self.need(alias.name, node.module, alias=alias.asname)
            elif node.module == "kokoyi.runtime.module":
                pass  # `module`: the standalone wrapper takes its place
            else:
                self.imports.add(f"from {node.module} import {alias.name}"
                                 + (f" as {alias.asname}" if alias.asname else ""))

    def text(self) -> str:
        imports = sorted(self.imports - {"import math", "import re", "import types", "import torch"})
        parts = ["\n".join(imports)] if imports else []
        parts += [STAND_INS[n].rstrip("\n") for n in sorted(self.stand_ins)]
        order = {name: i for i, name in enumerate(HELPER_MODULES[::-1])}  # device first: ops uses it
        for (_, _), source in sorted(self.chosen.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
            parts.append(source)
        return "\n\n\n".join(parts) + "\n"


def _names_used(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


# ---- the file ------------------------------------------------------------------------------


def standalone_source(state, signatures: dict[str, Signature]) -> str:
    """The standalone Python file of a compiled unit (see the module docstring)."""
    from kokoyi import __version__
    from kokoyi.runtime.loader import _class_name, install
    from kokoyi.runtime.symbols import SymbolTable

    table = SymbolTable()
    install(state, table)
    modules = [k for k, v in table.items() if getattr(v, "__kokoyi_spec__", None) is not None]
    python_names = table._python_names()
    for key in list(signatures):
        canonical = table.canonical(key)
        if canonical not in modules:
            raise StandaloneError(f"--batch-level {key}: no module `{key}`; modules: {', '.join(modules) or 'none'}")
        signatures[canonical] = signatures.pop(key)

    # the modules named by the options (every module when none is), each with its kernels
    chosen = [k for k in modules if k in signatures] or modules
    parts = _constants(state, table)
    for key in chosen:
        parts.append(_module_source(key, table, signatures, state.source, python_names[key]))
    classes = [_class_source(table[k].__kokoyi_spec__, python_names[k], _class_name(python_names[k]))
               for k in chosen]
    body = "\n\n\n".join([*parts, *classes])
    helpers = _Helpers()
    kk_names = sorted(set(re.findall(r"\bkk\.(\w+)", body)))
    kx_names = sorted(set(re.findall(r"\bkx\.(\w+)", body)))
    for used in kk_names:
        helpers.need(used)
    for used in kx_names:  # the kernels of the IR back end
        helpers.need(used, "kokoyi.runtime.kernels")
    runtime = inspect.getsource(importlib.import_module("kokoyi.standalone_runtime"))
    runtime = runtime.split("import torch\n", 1)[1].strip("\n")
    clash = sorted(set(state.generated.globals.values()) & (set(_defined(helpers.text())) | set(_defined(runtime))))
    if clash:
        raise StandaloneError(f"names of the unit clash with the runtime helpers: {', '.join(clash)}")
    header = (f"# Generated by kokoyi {__version__} (kyic compile --standalone) from "
              f"{state.source.filename}.\n# Plain PyTorch: needs torch only. Edit the Kokoyi source, not this file.\n"
              f"from __future__ import annotations\n\nimport math\nimport re\nimport types\n\nimport torch\n")
    kk = "kk = types.SimpleNamespace(\n" + "".join(f"    {n}={n},\n" for n in kk_names) + ")"
    kk += "\nkx = types.SimpleNamespace(\n" + "".join(f"    {n}={n},\n" for n in kx_names) + ")"
    return (f"{header}\n# ---- runtime helpers (from kokoyi.runtime) ----\n{helpers.text()}\n\n"
            f"# ---- the module wrapper (from kokoyi/standalone_runtime.py) ----\n{runtime}\n\n\n{kk}\n\n\n"
            f"# ---- the unit ----\n{body}\n")


def _constants(state, table) -> list[str]:
    """The unit's constants: folded ones as numbers, others with the kernel that computed them."""
    from kokoyi.compiler import ast as A

    unit = table.namespace.get("KOKOYI_UNIT")
    parts = []
    for item in state.ast.items:
        if not isinstance(item, A.Definition) or item.params is not None:
            continue
        key = item.target.symbol.key
        name = state.generated.globals[key]
        found = unit.kernels.get(key) if unit is not None else None
        if found is None:
            parts.append(f"{name} = {table.namespace[name]!r}")
        else:
            code, line_map, kernel = found
            parts.append(f"{_commented(code, line_map, state.source)}\n\n\n{name} = {kernel}()")
    return parts


def _module_source(key: str, table, signatures: dict[str, Signature], source, python_name: str) -> str:
    """A module's kernels (one sample, and each batch level asked for) and its forward."""
    from kokoyi.runtime.specialize import FALLBACK, module_dtype

    forward = table[key]
    spec = forward.__kokoyi_spec__
    sig = signatures.get(key) or Signature(())
    specs = forward.__kokoyi_specializations__
    wanted = [(0,) * len(spec.inputs)]
    if sig.levels:
        if len(sig.levels) != len(spec.inputs) or any(k not in (0, 1) for k in sig.levels) or not any(sig.levels):
            raise StandaloneError(f"--batch-level {key}=...: give 0 or 1 for each of its {len(spec.inputs)} "
                                  f"inputs ({', '.join(i.key for i in spec.inputs)}), at least one 1")
        wanted.append(tuple(sig.levels))
    params = _example_params(key, spec, table, signatures)
    parts, entries = [], []
    for levels in wanted:
        entry = specs._build(_input_descs(key, spec, Signature(levels, sig.input_ranks, sig.params)),
                             specs.param_descs(params), params, module_dtype((), params))
        if entry is FALLBACK:
            raise StandaloneError(f"module `{key}` cannot be compiled for batch levels {levels}: "
                                  f"{'; '.join(specs.unsupported[-1:])}")
        _, outputs, code, _, line_map = entry
        name = re.match(r"def (\w+)\(", code.lstrip()).group(1)
        parts.append(_commented(code, line_map, source))
        entries.append((levels, name, tuple(v.batched for v in outputs)))
    inputs = tuple((i.key, i.field, i.dims) for i in spec.inputs)
    specs_text = f"    param_specs={tuple((i.key, i.field, i.dims) for i in spec.param_specs)!r},\n" \
        if spec.param_specs else ""
    parts.append(f"{python_name} = module(\n    {python_name!r},\n    name={spec.name!r},\n    inputs={inputs!r},\n"
                 f"    params={spec.params!r},\n    param_hints={spec.param_hints!r},\n{specs_text}"
                 f"    signature={spec.signature!r},\n    where={spec.where!r},\n    sample={entries[0][1]},\n)")
    for levels, name, batched in entries[1:]:
        parts.append(f"{python_name}.batched[{levels!r}] = ({name}, {batched!r})")
    return "\n\n\n".join(parts)


def _commented(code: str, line_map: dict, source) -> str:
    """A kernel's code with each statement under a comment holding its LaTeX line."""
    out, last = [], None
    for number, line in enumerate(code.rstrip("\n").split("\n"), start=1):
        at = line_map.get(number)
        if at is not None and at != last:
            indent = line[:len(line) - len(line.lstrip())]
            text = " ".join(source.line_text(at).split())
            out.append(f"{indent}# {source.filename}:{at}: {text}")
        last = at if at is not None else last
        out.append(line)
    return _tidy("\n".join(out))


def _tidy(code: str) -> str:
    """No blank line right after a `def` line, at most two blank lines anywhere."""
    code = re.sub(r"(\ndef [^\n]*:\n)(?:[ \t]*\n)+", r"\1", "\n" + code)
    return re.sub(r"\n{3,}", "\n\n\n", code).strip("\n")


def _defined(text: str) -> list[str]:
    return list(_Helpers._definitions(ast.parse(text)))


def _class_source(spec, python_name: str, class_name: str) -> str:
    if class_name == python_name:
        class_name += "Module"
    hints = spec.param_hints
    lines = [f"class {class_name}(torch.nn.Module):", f'    r"""{spec.describe()}"""', "",
             f"    def __init__(self{''.join(', ' + h for h in hints)}):", "        super().__init__()"]
    lines += [f"        self.{h} = {h}" for h in hints]
    if hints:
        lines += ["", "    def get_parameters(self):",
                  f"        return {'self.' + hints[0] if len(hints) == 1 else '(' + ', '.join('self.' + h for h in hints) + ')'}"]
    lines += ["", f"    forward = {python_name}"]
    return "\n".join(lines)
