"""Calls: local and top-level functions (inlined), built-ins used as values, torch layers and
Kokoyi modules held as parameters.

A function is inlined: its body is evaluated with its parameters bound to the arguments'
values, so the arguments keep their axes (no per-call batching is needed). A layer acts on
the trailing dimensions of a tensor with any leading axes; a layer that takes exactly one
batch axis, and a Kokoyi module, get the leading axes flattened into one and restored after.
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler.batch.layout import BATCH, Val
from kokoyi.compiler.layers import CELL_LAYERS, CONV_LAYERS, TRANSPARENT_LAYERS


def value_of_desc(desc: tuple, code, batched: bool) -> Val:
    """The value of an input or parameter from its description (runtime.specialize.describe)."""
    kind = desc[0]
    if kind == "tensor":
        return Val(code, (BATCH,) if batched else (), desc[1] - 0, "int" if desc[2] else "float")
    if kind == "number":
        return Val(code, kind="int" if desc[1] else "float", python=True)
    if kind == "list":
        return Val(code, what="list", info=desc[1:])
    if kind == "kokoyi":
        return Val(code, what="kokoyi", info=desc)
    if kind in ("layer", "sequential"):
        return Val(code, what="layer", info=desc)
    if kind == "opaque":  # a Python callable or module the compiler knows nothing of
        return Val(code, what="opaque", info=desc)
    from kokoyi.compiler.batch.driver import Unsupported

    raise Unsupported(f"a parameter of type {desc[1] if len(desc) > 1 else kind}")


def global_value(b, e: ir.Global) -> Val:
    info = b.globals_info.get(e.key)
    if info is None:
        raise b.unsupported(f"the top-level name {e.key}", e)
    pyname, desc, sym = info
    if sym is not None and getattr(sym, "is_function", False):
        return Val(None, what="function", info=e.key)
    from kokoyi.compiler import kernel as K

    return value_of_desc(desc, K.Ref(pyname), False)


def apply(b, e: ir.Apply) -> Val:
    f = b.ev(e.fn)
    args = [b.ev(a) for a in e.args]
    if f.what == "lambda":
        node, env = f.info
        return _inline(b, node.params, node.body, env, args, e)
    if f.what == "function":
        key = f.info
        if key in b.inlining:
            raise b.unsupported("a recursive function", e)
        fn = b.lower_global(key) if b.lower_global else None
        if fn is None:
            raise b.unsupported(f"the function {key}", e)
        b.inlining.append(key)
        try:
            return _inline(b, fn.inputs, fn.body, {}, args, e)
        finally:
            b.inlining.pop()
    if f.what == "builtin":
        from kokoyi.compiler.batch.rules import RULES

        rule = RULES.get(f.info)
        if rule is None:
            raise b.unsupported(f"the built-in {f.info} as a value", e)
        return rule(b, ir.Prim(f.info, e.args, span=e.span), args)
    if f.what == "layer":
        return _layer(b, e, f, args)
    if f.what == "kokoyi":
        return _module(b, e, f, args)
    if f.what == "opaque":
        return _opaque(b, e, f, args)
    raise b.unsupported("calling this value", e)


def _inline(b, params, body, env: dict, args, e) -> Val:
    if len(params) != len(args):
        raise b.unsupported("a call with the wrong number of arguments", e)
    saved = b.env
    b.env = dict(env)
    b.env.update(zip(params, args))
    try:
        return b.ev(body)
    finally:
        b.env = saved


def _layer_rank(b, e, desc, x: Val) -> int:
    """The change of per-sample rank a layer (or a Sequential of layers) makes."""
    if desc[0] == "sequential":
        return sum(_layer_rank(b, e, d, x) for d in desc[1])
    name = desc[1] if desc[0] == "layer" else None
    if name in TRANSPARENT_LAYERS:
        return TRANSPARENT_LAYERS[name]
    if name in CONV_LAYERS and x.rank == CONV_LAYERS[name]:
        return 0
    raise b.unsupported(f"the layer {name or desc[0]} on a value of per-sample rank {x.rank}", e)


def _layer(b, e, f: Val, args) -> Val:
    desc = f.info
    if desc[0] == "layer" and desc[1] in CELL_LAYERS:
        return _cell(b, e, f, args)
    if len(args) != 1:
        raise b.unsupported("a layer called with several arguments", e)
    (x,) = args
    if not x.is_tensor:
        raise b.unsupported("a layer called on a non-number", e)
    x = _discarded_as_zero(b, x)
    rank = x.rank + _layer_rank(b, e, desc, x)
    code = b.tensor(x, "int" if desc == ("layer", "Embedding") else None)
    if desc[0] == "layer" and desc[1] in CONV_LAYERS:  # one batch axis in front of (C, ...) only
        out = b.emit("call_flat", f.code, b.tensor(x, "float"), x.lead, hint="h")
    else:
        out = b.emit("linear_layer" if desc == ("layer", "Linear") else "call_layer", f.code, code, hint="h")
    return Val(out, x.axes, rank, "float")


def _cell(b, e, f: Val, args) -> Val:
    """`Cell(x, h)` for a torch RNNCell or GRUCell on per-sample vectors: the leading axes
    of both lined up and flattened into the cell's one batch axis."""
    if len(args) != 2 or any(not a.is_tensor or a.python or a.rank != 1 for a in args):
        raise b.unsupported(f"`{f.info[1]}` called on other than two vectors", e)
    args = [_discarded_as_zero(b, a) for a in args]
    axes = b.union(*args)
    x, h = (b.align(Val(b.tensor(a, "float"), a.axes, 1, "float"), axes, 1, exact=True) for a in args)
    return Val(b.emit("call_cell", f.code, x, h, hint="h"), axes, 1, "float")


def _module(b, e, f: Val, args) -> Val:
    """A Kokoyi module parameter: its body inlined (its parameters read from the module at run
    time), or, where that cannot be, a call with the arguments' axes flattened into one batch axis."""
    if b.callee_outputs is None or b.probing:
        raise b.unsupported("calling a Kokoyi module here", e)
    inlined = _inline_module(b, e, f, args)
    if inlined is not None:
        return inlined
    for a in args:
        if not a.is_tensor:
            raise b.unsupported("a Kokoyi module called on a non-number", e)
    args = [_discarded_as_zero(b, a) for a in args]
    axes = b.union(*args)
    codes, layouts = [], []
    for a in args:
        if a.python or not a.axes:
            codes.append(a.code)
            layouts.append(Val(None, (BATCH,) if False else (), a.rank, a.kind, a.python))
        else:
            codes.append(a.code if a.axes == axes else b.expand(a, axes))
            layouts.append(Val(None, (BATCH,), a.rank, a.kind))
    outs = b.callee_outputs(f.info, layouts)
    if outs is None:
        raise b.unsupported("a Kokoyi module whose outputs are not known", e)
    sizes = tuple(b.sizes[a] for a in axes)
    flags = tuple(bool(lay.axes) for lay in layouts)
    code = b.emit("call_module", f.code, tuple(codes), flags, sizes, len(outs), b.no_grad > 0, hint="m")
    vals = []
    for k, o in enumerate(outs):
        c = code if len(outs) == 1 else b.emit("item", code, k, hint="m")
        if not o.integer:  # LANGUAGE.md 6a: the callee's floats reach the caller in the caller's dtype
            c = b.emit("to", c, dtype=b.dtype, hint="m")
        vals.append(Val(c, axes, o.rank, "int" if o.integer else "float"))
    return vals[0] if len(vals) == 1 else Val(None, what="tuple", info=tuple(vals))


def _inline_module(b, e, f: Val, args) -> Val | None:
    """The callee's body evaluated here with the arguments as they are (their axes kept: no
    flattening, no call through its forward); None when it must be called instead (under
    \\StopGrad, which runs the call without recording a graph; a callee whose forward checks
    annotations; a module reached again through itself)."""
    from kokoyi.compiler.passes.inline import _rename

    if b.no_grad or b.callee_ir is None or f.info[1] in b.inlining:
        return None
    found = b.callee_ir(f.info)
    if found is None:
        return None
    fn, param_descs, source, own_dtype, annotations = found
    if len(fn.inputs) != len(args) or any(not a.is_tensor for a in args) or not _annotations_hold(annotations, args):
        return None
    suffix = f"__m{len(b.ns._used)}"
    body = _rename(fn.body, {n: n + suffix for n in fn.inputs + fn.params}, suffix)
    env = {n + suffix: a for n, a in zip(fn.inputs, args)}
    if fn.params:
        params = b.emit("module_params", f.code, len(fn.params), hint="params")
        for i, (name, desc) in enumerate(zip(fn.params, param_descs)):
            env[name + suffix] = value_of_desc(desc, b.emit("item", params, i, hint=name), False)
    saved, saved_dtype = b.env, b.dtype
    b.env = env
    # LANGUAGE.md 6a: the callee computes in its own dtype: the caller's when a float reaches
    # it (the caller's is the widest of everything, the callee's parameters included)
    own = not any(a.kind == "float" and not a.python for a in args) and own_dtype != saved_dtype
    if own:
        b.dtype = own_dtype
    b.inlining.append(f.info[1])
    try:
        out = b.ev(ir.At(source, body, span=e.span))
    finally:
        b.env, b.dtype = saved, saved_dtype
        b.inlining.pop()
    # its floating results reach the caller in the caller's dtype (as a call's do)
    return _in_dtype(b, out) if own else out


def _annotations_hold(annotations, args) -> bool:
    """Whether the callee's forward, given these arguments, would pass its annotation checks
    with nothing to convert, knowing only their layouts: each annotated input a tensor of its
    per-sample rank, floating for \\mathbb{R} (an integer one is converted) and integer for
    \\mathbb{Z} and \\mathbb{N}, and no size to compare (a literal size, or a name given to
    more than one axis). Otherwise the call goes through the forward: its checks, conversions
    and messages."""
    names: set = set()
    for (field, dims), a in zip(annotations, args):
        if field is None and dims is None:
            continue
        if a.python:
            return False
        if field == "R" and a.kind != "float" or field in ("Z", "N") and a.kind == "float":
            return False
        if dims is None:
            continue
        if a.rank != len(dims):
            return False
        for d in dims:
            if not isinstance(d, str) or d in names:
                return False
            names.add(d)
    return True


def _opaque(b, e, f: Val, args) -> Val:
    """An opaque callable (a user's Python function or module), called on each element of the
    arguments' leading axes. Its result's per-sample rank is learnt from a call (the runtime
    builds the kernel again when the first guess, the arguments' largest rank, is wrong)."""
    if not args or any(not a.is_tensor for a in args):
        raise b.unsupported("an opaque callable called on other than numbers and tensors", e)
    args = [_discarded_as_zero(b, a) for a in args]
    axes = b.union(*args)
    codes, flags = [], []
    for a in args:
        varies = not a.python and bool(a.axes)
        codes.append(b.expand(a, axes) if varies else a.code)
        flags.append(varies)
    site = b.site(e)
    rank = b.opaque_ranks.get(site, max(0 if a.python else a.rank for a in args))
    code = b.emit("call_each", f.code, tuple(codes), tuple(flags), len(axes), rank, site, hint="h")
    return Val(code, axes, rank, "float")


def _discarded_as_zero(b, v: Val) -> Val:
    """v as a callee with weights of its own takes it: zeros where a row or a range discards
    the call (under \\StopGrad nothing reaches a gradient, so v as it is)."""
    from kokoyi.compiler.batch.gradients import zero_where_discarded

    return v if b.no_grad else zero_where_discarded(b, v)


def _in_dtype(b, v: Val) -> Val:
    """v with every floating tensor in it converted to the module's dtype b.dtype."""
    if v.what == "tuple":
        return Val(None, what="tuple", info=tuple(_in_dtype(b, x) for x in v.info))
    if not v.is_tensor or v.python or v.kind != "float":
        return v
    return Val(b.emit("to", v.code, dtype=b.dtype, hint="m"), v.axes, v.rank, v.kind)
