"""Products of one value with several matrices, in a recurrence's loop, as one product.

An LSTM's step multiplies the previous state by four matrices (`W_f @ z_t`, `W_i @ z_t`, ...),
a GRU cell's by three layers (`U[0](h)`, `U[1](h)`, `U[2](h)`): each is a small matrix
product per step, and one more node of the backward graph. With the matrices concatenated
once, before the loop (gradients reach each one through the concatenation), a step makes one
product and splits its result (views). Where the step then adds to each part the part of a
product computed before the loop for all steps (the input projections of batch/hoist.py,
fused the same way there), the addition is made once on the whole, inside the product
(`addmm`).

Runs on the kernel after clean-up and loop-invariant code motion (licm.py): the matrices
must be computed before the loop.
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.licm import _refs, assigned

# op -> (position of the input, position of the matrix or layer, the runtime op that fuses them)
PRODUCTS = {"linear": (0, 1, "fuse_rows"), "linear_layer": (1, 0, "fuse_layers")}


class _Names:
    def __init__(self, taken: set) -> None:
        self.taken = taken

    def new(self, hint: str) -> str:
        k = 1
        while f"{hint}_{k}" in self.taken:
            k += 1
        name = f"{hint}_{k}"
        self.taken.add(name)
        return name


def fuse(k: K.Kernel) -> K.Kernel:
    names = _Names(assigned(k.body, set(k.params)))
    defs: dict = {}
    _definitions(k.body, defs)
    return dataclasses.replace(k, body=_block(k.body, names, defs))


def _definitions(block: list, acc: dict) -> None:
    for s in block:
        match s:
            case K.Assign() if s.out is not None:
                acc[s.out] = s
            case K.If():
                _definitions(s.then, acc)
                _definitions(s.orelse, acc)
            case K.For():
                _definitions(s.pre, acc)
                _definitions(s.body, acc)


def _block(block: list, names, defs) -> list:
    out = []
    for s in block:
        match s:
            case K.If():
                s = dataclasses.replace(s, then=_block(s.then, names, defs), orelse=_block(s.orelse, names, defs))
            case K.For():
                body = _block(s.body, names, defs)
                pre, body = _fuse_products(list(s.pre), body, assigned(body, {s.var}), names, defs)
                s = dataclasses.replace(s, pre=pre, body=body)
        out.append(s)
    return out


def _groups(body: list, varying: set) -> dict:
    """(op, input) -> the body's statements multiplying that input by a matrix made before the loop."""
    groups: dict = {}
    for s in body:
        if isinstance(s, K.Assign) and s.op in PRODUCTS and s.out is not None:
            at_x, at_w, _ = PRODUCTS[s.op]
            x, w = s.args[at_x], s.args[at_w]
            if isinstance(x, K.Ref) and isinstance(w, K.Ref) and w.name not in varying:
                groups.setdefault((s.op, x.name), []).append(s)
    return {key: group for key, group in groups.items() if len(group) >= 2}


def _uses(block: list, acc: dict) -> dict:
    """name -> the statements reading it (each once per reading statement)."""
    for s in block:
        match s:
            case K.Assign():
                for name in _refs(s.args, set()):
                    acc.setdefault(name, []).append(s)
            case K.If():
                for name in _refs(s.cond, set()):
                    acc.setdefault(name, []).append(s)
                _uses(s.then, acc)
                _uses(s.orelse, acc)
            case K.For():
                for name in _refs((s.start, s.stop), set()):
                    acc.setdefault(name, []).append(s)
                _uses(s.pre, acc)
                _uses(s.body, acc)
            case K.Return():
                for name in _refs(s.values, set()):
                    acc.setdefault(name, []).append(s)
    return acc


def _added(group: list, body: list, varying: set, defs: dict) -> tuple | None:
    """For a fused group: (step index, per member the all-steps value added to its product or
    None, the axis the steps are unbound along, per member its add statement or None) where
    at least two members' products are only read by `product + term[t]`, term computed before
    the loop (batch/hoist.py); None otherwise."""
    uses = _uses(body, {})
    top = {id(s) for s in body}
    k = dim = None
    values, adds = [], []
    for s in group:
        found = None
        readers = uses.get(s.out, [])
        if len(readers) == 1 and isinstance(readers[0], K.Assign) and readers[0].op == "add" \
                and id(readers[0]) in top and not readers[0].attrs.get("py"):
            a = readers[0]
            other = a.args[1] if a.args[0] == K.Ref(s.out) else a.args[0]
            item = defs.get(other.name) if isinstance(other, K.Ref) and a.args.count(K.Ref(s.out)) == 1 else None
            if item is not None and item.op == "step_item" and id(item) in top:
                unbind = defs.get(item.args[0].name) if isinstance(item.args[0], K.Ref) else None
                if unbind is not None and unbind.op == "unbind" and unbind.out not in varying \
                        and (k is None or (item.args[1], unbind.args[1]) == (k, dim)):
                    k, dim = item.args[1], unbind.args[1]
                    found = (unbind.args[0], a)
        values.append(None if found is None else found[0])
        adds.append(None if found is None else found[1])
    if sum(a is not None for a in adds) < 2:
        return None
    before = assigned_before(body, group[0])
    if isinstance(k, K.Ref) and k.name in {s.out for s in body if isinstance(s, K.Assign)} and k.name not in before:
        return None
    return k, tuple(values), dim, adds


def assigned_before(body: list, stop) -> set:
    out = set()
    for s in body:
        if s is stop:
            break
        if isinstance(s, K.Assign) and s.out is not None:
            out.add(s.out)
    return out


def _fuse_products(pre: list, body: list, varying: set, names, defs) -> tuple[list, list]:
    for (op, x), group in _groups(body, varying).items():
        at_x, at_w, fuse_op = PRODUCTS[op]
        ms = tuple(s.args[at_w] for s in group)
        fused = names.new("fused")
        pre.append(K.Assign(fused, fuse_op, (ms,), {}, group[0].line))
        parts = names.new("parts")
        added = _added(group, body, varying, defs)
        args = (K.Ref(x), K.Ref(fused), ms)
        if added is not None:
            k, values, dim, adds = added
            steps = names.new("terms")
            pre.append(K.Assign(steps, "steps_cat", (values, dim, K.Ref(fused)), {}, group[0].line))
            qs = tuple(None if a is None else (a.args[1] if a.args[0] == K.Ref(t.out) else a.args[0])
                       for t, a in zip(group, adds))
            args += (K.Ref(steps), k, qs)
        else:
            adds = [None] * len(group)
        members = {id(s) for s in group}
        replaced = {id(a): j for j, a in enumerate(adds) if a is not None}
        # the terms' step items move up to the product (they read only the step's index)
        moved = {id(defs[q.name]): defs[q.name] for q in args[5] if q is not None} if added is not None else {}
        new_body = []
        for s in body:
            if s is group[0]:
                new_body.extend(moved.values())
                new_body.append(K.Assign(parts, "fused_product", args, {}, s.line))
                new_body.extend(K.Assign(t.out, "item", (K.Ref(parts), j), {}, t.line)
                                for j, t in enumerate(group) if adds[j] is None)
            elif id(s) in replaced:  # product + term[t]: that part of the fused product itself
                new_body.append(K.Assign(s.out, "item", (K.Ref(parts), replaced[id(s)]), {}, s.line))
            elif id(s) not in members and id(s) not in moved:
                new_body.append(s)
        body = new_body
    return pre, body
