"""The kernel cache: specialised kernels of kokoyi.load's units kept on disk, so a new process's
first call with a signature seen before generates nothing (issue 14: first calls).

Decision: it extends kokoyi.load's cache (kokoyi/runtime/cache.py) to what a call generates,
and only for units that came through kokoyi.load: their identity is that cache's header (the
compiler, the file name, the source text and the earlier units' symbols), computed anyway.
A unit compiled from text (kokoyi.compile, notebook cells) has no identity, and neither has a
kernel that reaches it; its kernels are generated in each process, as before.

A kernel's code is fixed by what `Specializations._build` hands the call-time passes, so the
key covers all of it:

    fingerprint   the compiler's (kokoyi.load's) and this module's and specialize.py's files
    owner         the defining unit's identity, the definition's key and Python name, and
                  whether its outputs stay Python numbers
    signature     the in-memory cache's key: each input's (kind, per-sample rank, integer,
                  batched), each parameter's description, the module's dtype; a Kokoyi module
                  among the parameters is named by its unit identity, key and dtype (its
                  body is inlined) instead of the process's id of its forward
    globals       every top-level definition the code may reach (inlined functions, Python
                  names): key, Python name, description, defining unit's identity
    opaque ranks  the result ranks learnt from opaque callables

An entry is one JSON file in `kernels/` of kokoyi.load's folder: the key, the code and its
sha256, the line map, the kernel's Python name, its output layouts, why its batch is a loop
(the warning is given again), and the compiled code (marshal, for this Python's bytecode
version only, with its sha256). It is used only when every check passes and this user
alone can have written it and its folder (kokoyi.cachedir.trusted); otherwise it is
ignored, never executed, and replaced. Writes are atomic (temporary file, then rename) and
best-effort. `KOKOYI_KERNEL_CACHE=0` turns the kernel cache off (kokoyi.load's own cache
stays); deleting the folder is always safe.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import marshal
import os
import types
import weakref
from pathlib import Path
from typing import NamedTuple

from kokoyi.cachedir import cache_dir
from kokoyi.runtime import cachesize
from kokoyi.runtime.cache import _sha256, compiler_fingerprint, read_trusted, write_atomic

FORMAT = 1
_UNITS: dict = {}  # id(Source) -> (weak reference to it, its unit's identity)


class Output(NamedTuple):
    """An output layout as the runtime and callers read it (batch.layout.Val's properties)."""

    batched: bool
    integer: bool
    rank: int
    python: bool
    is_tensor: bool


class Stored(NamedTuple):
    """A kernel read from the cache: what `_build` would have generated."""

    name: str  # the kernel's Python name when it was generated
    code: str
    line_map: dict
    outputs: tuple
    batch_loop: str
    compiled: object  # its code object, or None (another Python: compile `code`)


class _Uncacheable(Exception):
    """Something the kernel depends on has no identity that survives the process."""


def enabled() -> bool:
    return os.environ.get("KOKOYI_KERNEL_CACHE", "1").strip().lower() not in ("0", "off", "no", "false")


def remember_unit(source, header: dict) -> None:
    """Record the identity of the unit whose Source is source (kokoyi.load's cache header)."""
    ident = _sha256("\0".join(str(header[k]) for k in sorted(header)))
    key = id(source)
    _UNITS[key] = (weakref.ref(source, lambda _, key=key: _UNITS.pop(key, None)), ident)


def unit_identity(source) -> str | None:
    found = _UNITS.get(id(source))
    return found[1] if found is not None and found[0]() is source else None


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    digest = hashlib.sha256(compiler_fingerprint().encode())
    here = Path(__file__).resolve().parent
    for name in ("specialize.py", "kernelcache.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def key(specs, inputs, params, dtype) -> str | None:
    """The cache key of specs' kernel for a call signature, or None when it cannot be cached."""
    if not enabled() or specs.source is None or specs.module_ast is None:
        return None
    owner = unit_identity(specs.source)
    if owner is None:
        return None
    from kokoyi.runtime.specialize import _symbol_of, describe

    try:
        stable = tuple(describe(p, _forward_identity) for p in params)
        reached = []
        for k, (n, obj, sym) in sorted(specs.globals_info().items()):
            where = None
            if sym is not None:
                where = unit_identity(sym.extra.get("source"))
                if where is None:
                    raise _Uncacheable(k)
            reached.append((k, n, describe(obj, _forward_identity), where))
    except Exception:  # noqa: BLE001 - _Uncacheable, or anything unexpected: generated, not cached
        return None
    payload = (FORMAT, fingerprint(), owner, _symbol_of(specs.module_ast).key, specs.name, specs.python_outputs,
               tuple(sorted(specs.opaque_ranks.items())), inputs, stable, str(dtype), tuple(reached))
    return _sha256(repr(payload))


def _forward_identity(forward, obj):
    """What names a Kokoyi module parameter in a key: its unit, key, dtype and learnt ranks
    (its body is inlined into the caller's kernel, or its outputs' layouts read), where
    describe() has the process's id of its forward."""
    from kokoyi.runtime.specialize import _symbol_of, module_dtype

    specs = forward.__kokoyi_specializations__
    owner = unit_identity(specs.source) if specs.module_ast is not None else None
    if owner is None:
        raise _Uncacheable(specs.name)
    try:
        dtype = module_dtype((), forward.__kokoyi_read_params__(obj))
    except Exception as err:  # noqa: BLE001 - its parameters cannot be read: not cached
        raise _Uncacheable(specs.name) from err
    return owner, _symbol_of(specs.module_ast).key, specs.name, str(dtype), tuple(sorted(specs.opaque_ranks.items()))


def _path(k: str) -> Path:
    return cache_dir() / "kernels" / f"{k[:40]}.json"


def read(k: str | None) -> Stored | None:
    """The kernel stored under key k if every check passes, else None."""
    if k is None:
        return None
    path = _path(k)
    text = read_trusted(path)
    if text is None:
        return None
    try:
        entry = json.loads(text)
        if entry.get("format") != FORMAT or entry.get("key") != k:
            return None
        code, name = entry["code"], entry["name"]
        if not (isinstance(code, str) and isinstance(name, str) and code.startswith(f"def {name}(")
                and entry.get("code_sha256") == _sha256(code)):
            return None
        line_map = {int(a): int(b) for a, b in entry["line_map"]}
        outputs = tuple(Output(bool(b), bool(i), int(r), bool(p), bool(t)) for b, i, r, p, t in entry["outputs"])
        batch_loop = str(entry["batch_loop"])
        compiled = None
        blob = entry.get("bytecode")
        if isinstance(blob, dict) and blob.get("magic") == _magic():
            data = base64.b64decode(blob["data"])
            if hashlib.sha256(data).hexdigest() == blob.get("sha256"):
                compiled = marshal.loads(data)
                compiled = compiled if isinstance(compiled, types.CodeType) else None
        stored = Stored(name, code, line_map, outputs, batch_loop, compiled)
    except Exception:  # noqa: BLE001 - a corrupt entry of any shape is ignored (and replaced)
        return None
    cachesize.used(path)
    return stored


def write(k: str | None, name: str, code: str, line_map: dict, outputs, batch_loop: str, compiled) -> bool:
    """Store a generated kernel atomically; False (and no exception) when that is not possible."""
    if k is None or not all(o.is_tensor for o in outputs):  # (a layer or list returned: not stored)
        return False
    try:
        data = marshal.dumps(compiled)
        entry = {"format": FORMAT, "key": k, "name": name, "code": code, "code_sha256": _sha256(code),
                 "line_map": sorted([int(a), int(b)] for a, b in line_map.items()),
                 "outputs": [[o.batched, o.integer, o.rank, o.python, o.is_tensor] for o in outputs],
                 "batch_loop": batch_loop,
                 "bytecode": {"magic": _magic(), "sha256": hashlib.sha256(data).hexdigest(),
                              "data": base64.b64encode(data).decode("ascii")}}
        text = json.dumps(entry)
    except (TypeError, ValueError):
        return False
    if not write_atomic(_path(k), text):
        return False
    cachesize.written(cache_dir())
    return True


def _magic() -> str:
    import importlib.util

    return importlib.util.MAGIC_NUMBER.hex()
