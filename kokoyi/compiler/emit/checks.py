"""Checked reads and checks with their common case inline (the torch_eager printer).

The runtime's checked helpers (`kx.window_views`, `kx.read_static`, `kx.check_static`,
`kx.require_nonempty`, `kx.nonempty_last`) each decide first whether anything is out of
range, and in the common case do nothing or one plain read. A training step calls them on
every minibatch, where that decision costs more than the read: a Python call, its argument
tuple, a loop over the specs. Here the printer writes the decision itself as one plain
comparison of sizes in the generated code, and calls the helper only when the comparison
fails, so the helper still makes every error, message and Python meaning of an index it
made before (the inline test only skips calls whose outcome it has just seen: nothing, or
the plain read it prints).

    w = kx.window_views(Z, 0, (('var', 0, n),), None, ...)   ->  w = Z if Z.shape[0] == n else kx.window_views(...)
    kx.require_nonempty(n, None, 0, 0, ..., ())             ->  if not n > 0: kx.require_nonempty(...)
    r = kx.read_static(h, 1, (0,), ...)                     ->  r = h[:, 0] if h.shape[1] > 0 else kx.read_static(...)
                                                                (an item 0 or -1: first h.squeeze(1) if h.shape[1] == 1)
    kx.check_static(h, 1, (0, 0), ...)                      ->  if h.shape[1] <= 0 or h.shape[2] <= 0: kx.check_static(...)
    kx.nonempty_last(z)                                     ->  if 0 in z.shape: kx.nonempty_last(z)
    s = kx.reduce_axis('sum', v, 1, None, 0, None)          ->  s = v.sum(1) if v.shape[1] else kx.reduce_axis(...)
    (a mean alike: v.mean(1), which is the sum divided by the count)

A conversion to a dtype (a nested module's result in the caller's dtype) is its own kind of
the same: `x.to(dtype)` parses its arguments and returns x itself when x has the dtype
already, ten times the cost of the comparison printed before it.

    y = x.to(torch.float32)                                 ->  y = x if x.dtype is torch.float32 else x.to(torch.float32)

Python numbers (a size halved, floored): a division by a literal other than 0 is `/` itself,
and a floor is `math.floor` of a finite number (kx.floor_number keeps NaN and the infinities).

    s = kx.true_divide(n, 2)                                ->  s = n / 2
    f = kx.floor_number(s)                                  ->  f = math.floor(s) if math.isfinite(s) else kx.floor_number(s)
"""
from __future__ import annotations

from kokoyi.compiler import kernel as K

REDUCE = {"sum": "sum", "max": "amax", "min": "amin", "mean": "mean"}  # kx.reduce_axis's op -> its method on a non-empty axis


def _int(a) -> bool:
    return type(a) is int


def _size(a) -> bool:
    """A size the kernel computed (a name) or a literal int."""
    return isinstance(a, K.Ref) or _int(a)


def _plain_shape(x: str) -> str:
    return f"{x}.shape"


def _in_range(x: str, lead: int, items: tuple, shape=_plain_shape) -> list[str] | None:
    """Comparisons saying literal indices `items` (from axis `lead` on) lie inside x's axes,
    or None when an item is not a literal int."""
    if not all(_int(i) for i in items):
        return None
    tests = []
    for axis, i in enumerate(items, start=lead):
        tests.append(f"{shape(x)}[{axis}] > {i}" if i >= 0 else f"{shape(x)}[{axis}] >= {-i}")
    return tests


def whole_windows(s: K.Assign, arg, shape=_plain_shape) -> str | None:
    """kx.window_views taking lo..lo+n-1 = the whole axis for every spec (lo = 0, n = its size),
    permuted nowhere: the value itself."""
    x, lead, specs, perm = s.args[:4]
    if not (isinstance(x, K.Ref) and _int(lead) and perm is None and specs):
        return None
    tests = []
    for axis, spec in enumerate(specs, start=lead):
        if not (isinstance(spec, tuple) and len(spec) == 3 and spec[0] == "var" and _int(spec[1]) and spec[1] == 0
                and _size(spec[2])):
            return None
        tests.append(f"{shape(x.name)}[{axis}] == {arg(spec[2])}")
    return f"{x.name} if {' and '.join(tests)} else "


def static_read(s: K.Assign, arg, shape=_plain_shape) -> str | None:
    """kx.read_static at literal indices inside the axes: the plain index."""
    x, lead, items = s.args[:3]
    if not (isinstance(x, K.Ref) and _int(lead) and isinstance(items, tuple) and items):
        return None
    tests = _in_range(x.name, lead, items, shape)
    if tests is None:
        return None
    index = ", ".join([":"] * lead + [str(i) for i in items])
    if len(items) == 1 and items[0] in (0, -1):
        # the one element of an axis of size 1 (`W[2](h)[0]`: a layer with one output) as a
        # squeeze: the same view, whose backward is a view of the gradient, where a select's
        # writes it into a block of zeros
        return f"{x.name}.squeeze({lead}) if {shape(x.name)}[{lead}] == 1 else {x.name}[{index}] if {tests[0]} else "
    return f"{x.name}[{index}] if {' and '.join(tests)} else "


def _negated(tests: list[str]) -> str:
    return " or ".join(f"not {t}" for t in tests)


def check_first(s: K.Assign, shape=_plain_shape) -> str | None:
    """The condition under which a check-only helper (no result) can raise, or None."""
    if s.op == "check_static":
        x, lead, items = s.args[:3]
        if isinstance(x, K.Ref) and _int(lead) and isinstance(items, tuple):
            tests = _in_range(x.name, lead, items, shape)
            return _negated(tests) if tests else None
    if s.op == "require_nonempty":
        n, mask, guards = s.args[0], s.args[1], s.args[6]
        if mask is None and guards == () and _size(n):  # (guards: the range is evaluated everywhere)
            return f"not {n.name if isinstance(n, K.Ref) else n} > 0"
    if s.op == "nonempty_last" and isinstance(s.args[0], K.Ref):
        return f"0 in {shape(s.args[0].name)}"
    return None


def inline(s: K.Assign, text: str, arg, shape=_plain_shape) -> str | None:
    """The printed statement with its common case inline, or None (print `text` as it is).
    shape(name): how to spell name's shape (`name.shape`, or a local holding it)."""
    if s.out is None:
        cond = check_first(s, shape)
        return None if cond is None else f"if {cond}: {text}"
    if s.attrs.get("py") and s.op == "div" and type(s.args[1]) in (int, float) and s.args[1] != 0:
        return f"{s.out} = {arg(s.args[0])} / {arg(s.args[1])}"  # (kx.true_divide's own a / b: b is not 0)
    if s.attrs.get("py") and s.op == "floor" and isinstance(s.args[0], K.Ref):
        x = s.args[0].name
        return f"{s.out} = math.floor({x}) if math.isfinite({x}) else {text}"
    if s.op == "to" and isinstance(s.args[0], K.Ref) and str(s.attrs.get("dtype", "")).startswith("torch."):
        return f"{s.out} = {s.args[0].name} if {s.args[0].name}.dtype is {s.attrs['dtype']} else {text}"
    if s.op == "reduce_axis" and s.attrs.get("op") in REDUCE and isinstance(s.args[0], K.Ref) and _int(s.args[1]) \
            and s.args[2] is None:  # (no mask: the range is the whole axis)
        x, pos = s.args[0].name, s.args[1]
        return f"{s.out} = {x}.{REDUCE[s.attrs['op']]}({pos}) if {shape(x)}[{pos}] else {text}"
    head = whole_windows(s, arg, shape) if s.op == "windows" else \
        static_read(s, arg, shape) if s.op == "read_static" else None
    return None if head is None else f"{s.out} = {head}{text}"
