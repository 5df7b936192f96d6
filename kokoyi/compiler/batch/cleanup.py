"""Kernel clean-up after `batch`: common subexpressions computed once, unused values dropped.

The batch pass evaluates the IR as written, so a value the source spells twice (`\\mu(G_t)` in
a numerator and inside `\\sigma`) is computed twice, and a condition's negation is computed
even when no later row reads under it. Both are cheap to see on the kernel: statements are
pure except the ones listed in EFFECTS.
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.contract_bias import count_uses, fuse_contract_bias
from kokoyi.compiler.batch.static_sizes import sizes_without_reads

# Ops with effects, or whose result may differ between two calls with the same arguments
# (a layer may be dropout; a list grows): never merged, never dropped.
EFFECTS = {"new_list", "append", "drop_first", "stack_states", "call_layer", "call_flat", "call_module", "item"}
# Ops that cannot fail: an unused one is dropped. (Any other may raise, and the source's
# statements are evaluated even when nothing reads them: LANGUAGE.md 7, an error is an error.)
DROPPABLE = {"not", "view", "to", "transpose", "constant", "size", "range_size", "arange", "any_trailing", "any_over", "copy",
             "expand_lead", "unbind", "step_item", "stack_states", "device_of", "reduce_sum_last", "mean_last",
             "logsumexp_last", "softmax_last", "log_softmax_last", "std_last", "var_last",
             "difference"}  # (a Huber loss's p - q, batch/fast.py)
# Reductions whose only failure is an empty axis: unused, they become that check alone (the
# source's `m \gets \max(z)` still fails on an empty z, without computing the maximum).
CHECK_ONLY = {"reduce_max_last": "nonempty_last", "reduce_min_last": "nonempty_last"}
# Ops whose printed code reads the kernel's device `_dev` without a Ref to it.
USES_DEVICE = {"constant", "number_tensor", "arange", "iota_from", "one_hot", "matrix", "eye"}
# The prologue's names (the device, the batch size): dropped like any value when unused.
PROLOGUE = {"_dev", "_B"}
PYTHON_DROPPABLE = {"add", "sub", "mul", "neg", "gt", "lt", "le", "ge", "eq", "ne", "and", "or", "not"}


def cleanup(k: K.Kernel) -> K.Kernel:
    body = _cse(k.body, {}, {}, _module_params(k.body, set()))
    dead = _dead(body)
    if dead:
        body = _dce(body, dead)
    # (the use counts are only read for a contraction's value: none, none counted)
    uses = count_uses(body, {}) if _contracts(body) else {}
    body = fuse_contract_bias(sizes_without_reads(body), uses)
    return dataclasses.replace(k, body=body)


def _contracts(block: list) -> bool:
    """Whether block (or a block nested in it) has a contraction (what fuse_contract_bias fuses)."""
    for s in K.statements(block):
        if isinstance(s, K.Assign) and s.op == "contract":
            return True
    return False


def _sub(a, rename: dict):
    """a with the renamed Refs in it replaced (a itself, not a copy, when none is)."""
    if not rename:  # (until the first common subexpression: nothing to look for)
        return a
    if isinstance(a, K.Ref):
        new = rename.get(a.name)
        return a if new is None else K.Ref(new)
    if isinstance(a, tuple):
        items = None
        for i, x in enumerate(a):
            if isinstance(x, (K.Ref, tuple)):
                y = _sub(x, rename)
                if y is not x:
                    if items is None:
                        items = list(a)
                    items[i] = y
        return a if items is None else tuple(items)
    return a


# Reads whose location and spelling (arguments 3 and 4) do not change what they compute: the
# same read written twice is made once (if it fails, the first one written fails first).
READS = {"read_static", "gather", "window_views", "windows"}


def _key(s: K.Assign):
    # (a recurrence's earlier element: its list grows only at the end of a step)
    args = s.args[:3] + s.args[5:] if s.op in READS else s.args[:2] + s.args[3:] if s.op == "earlier" else s.args
    try:
        return (s.op, args, tuple(sorted(s.attrs.items())) if s.attrs else ())
    except TypeError:
        return None


def _module_params(block: list, acc: set) -> set:
    """The names of modules' parameter tuples (kx.module_params): reading one of their items
    gives the same value each time, so two reads of one item are one (unlike a growing list's)."""
    acc.update(s.out for s in K.statements(block)
               if isinstance(s, K.Assign) and s.op == "module_params" and s.out is not None)
    return acc


def _pure(s: K.Assign, tuples: set) -> bool:
    if s.op == "item":
        return isinstance(s.args[0], K.Ref) and s.args[0].name in tuples and isinstance(s.args[1], int)
    return s.op not in EFFECTS and s.op != "copy"  # a copy joins branches


def _cse(block: list, seen: dict, rename: dict, tuples: set) -> list:
    out = []
    for s in block:
        match s:
            case K.Assign():
                args = _sub(s.args, rename)
                if args is not s.args:
                    s = K.copy_with(s, args=args)
                if s.out is not None and _pure(s, tuples):
                    key = _key(s)
                    if key is not None:
                        size = len(seen)
                        try:  # (one hash of the key, which walks all its arguments, for the look-up and the entry)
                            first = seen.setdefault(key, s.out)
                        except TypeError:
                            size = None
                        if size is not None and len(seen) == size:  # (the key was there: its first statement)
                            rename[s.out] = first
                            continue
                out.append(s)
            case K.If():
                out.append(K.copy_with(s, cond=_sub(s.cond, rename), then=_cse(s.then, dict(seen), rename, tuples),
                                               orelse=_cse(s.orelse, dict(seen), rename, tuples)))
            case K.For():
                inner = dict(seen)
                pre = _cse(s.pre, inner, rename, tuples)
                out.append(K.copy_with(s, start=_sub(s.start, rename), stop=_sub(s.stop, rename),
                                               pre=pre, body=_cse(s.body, inner, rename, tuples)))
            case K.Return():
                out.append(K.copy_with(s, values=_sub(s.values, rename)))
    return out


def _droppable(s) -> bool:
    """An Assign dropped when nothing reads its value."""
    return s.out is not None and (s.op in DROPPABLE or s.attrs.get("py") and s.op in PYTHON_DROPPABLE
                                  or s.attrs.get("vectors")) and (not s.out.startswith("_") or s.out in PROLOGUE)


def _dead(body: list) -> set:
    """The ids of the statements dropping unread values leaves out or makes a check: the
    droppable statements no kept statement reads, and CHECK_ONLY reductions whose value none
    reads (they become their check).

    In rounds, as dropping them again and again until a round drops nothing would, but in one
    walk: each name's readers are counted (the device `_dev` is also read by every USES_DEVICE
    statement, whose printed code reads it without a Ref), and a round drops the definitions
    of the names no statement left reads, taking their reads off the counts for the next
    round. A reduction is made its check in the first round that finds its value unread,
    where that round drops something (a round that drops nothing ends the clean-up with the
    kernel as it was before it)."""
    readers: dict = {}  # name -> how many statements read it
    defs: dict = {}  # name -> the statements assigning it
    for s in K.statements(body):
        for name in _reads(s):
            readers[name] = readers.get(name, 0) + 1
        if isinstance(s, K.Assign) and s.out is not None:
            defs.setdefault(s.out, []).append(s)
    dead: set = set()
    unread = [name for name in defs if not readers.get(name)]
    while unread:
        dropped, checks, more = False, [], []
        for name in unread:
            for s in defs.pop(name, ()):
                if not _droppable(s):
                    if s.op in CHECK_ONLY and not s.attrs:
                        checks.append(id(s))
                    continue
                dropped = True
                dead.add(id(s))
                for r in _reads(s):
                    left = readers[r] = readers[r] - 1
                    if not left and r in defs:
                        more.append(r)
        if not dropped:
            break
        dead.update(checks)
        unread = more
    return dead


def _reads(s):
    """The names s reads, with the device `_dev` for a USES_DEVICE statement (its printed code
    reads it without a Ref)."""
    names = K.read_names(s)
    return (*names, "_dev") if isinstance(s, K.Assign) and s.op in USES_DEVICE else names


def _dce(block: list, dead: set) -> list:
    out = []
    for s in block:
        if id(s) in dead:
            if _droppable(s):
                continue
            s = K.Assign(None, CHECK_ONLY[s.op], s.args, {}, s.line)
        elif isinstance(s, (K.If, K.For)):
            s = K.with_blocks(s, lambda b: _dce(b, dead))
        out.append(s)
    return out


def _reads_device(block: list) -> bool:
    for s in block:
        if isinstance(s, K.Assign) and s.op in USES_DEVICE:
            return True
        if isinstance(s, K.If) and (_reads_device(s.then) or _reads_device(s.orelse)):
            return True
        if isinstance(s, K.For) and (_reads_device(s.pre) or _reads_device(s.body)):
            return True
    return False


def _count(block: list) -> int:
    n = 0
    for s in block:
        n += 1
        if isinstance(s, K.If):
            n += _count(s.then) + _count(s.orelse)
        elif isinstance(s, K.For):
            n += _count(s.pre) + _count(s.body)
    return n
