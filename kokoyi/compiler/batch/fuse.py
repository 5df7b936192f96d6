"""Products of one value with several matrices, in a recurrence's loop, as one product.

An LSTM's step multiplies the previous state by four matrices (`W_f @ z_t`, `W_i @ z_t`, ...),
a GRU cell's by three layers (`U[0](h)`, `U[1](h)`, `U[2](h)`): each is a small matrix
product per step, and one more node of the backward graph. With the matrices concatenated
once, before the loop (gradients reach each one through the concatenation), a step makes one
product and splits its result (views). Where the step then adds to each part a term computed
before the loop for all steps (the input projections of batch/hoist.py), the terms are
concatenated once and the addition is made inside the product (`addmm`); parts that then go
through the same activation (an LSTM's sigmoid gates) are put next to each other and
activated in one call. The runtime side is kokoyi/runtime/recur.py (`Fused`).

Outside loops (a recurrence's first step, the inputs' projections for all steps that
batch/hoist.py puts before the loop), products of one value with several layers or matrices
of the same block are one product too (`_fuse_straight`): a GRU's three `W[k](E(x))`.

Runs on the kernel after clean-up and loop-invariant code motion (licm.py): the matrices
must be computed before the loop.
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.licm import assigned

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
    for s in K.statements(block):
        if isinstance(s, K.Assign) and s.out is not None:
            acc[s.out] = s


def _block(block: list, names, defs, straight: bool = True) -> list:
    out = []
    for s in block:
        match s:
            case K.If():
                s = dataclasses.replace(s, then=_block(s.then, names, defs), orelse=_block(s.orelse, names, defs))
            case K.For():
                body = _block(s.body, names, defs, straight=False)
                pre, body = _fuse_products(list(s.pre), body, assigned(body, {s.var}), names, defs)
                s = dataclasses.replace(s, pre=pre, body=body)
        out.append(s)
    return _fuse_straight(out, names) if straight else out


def _fuse_straight(block: list, names) -> list:
    """The block's products of one value with several layers or matrices (each product's
    value used as it is) as one product, split into views: in a block that runs once (not a
    loop's step), the stacking costs no more than the products it replaces. The layers'
    statements that come after the first product (reads of a list of layers) move up to it."""
    for _ in range(len(block)):
        found = _straight_group(block)
        if found is None:
            return block
        op, x, group, moved = found
        at_x, at_w, fuse_op = PRODUCTS[op]
        first = group[0]
        ms = tuple(s.args[at_w] for s in group)
        fused, parts = names.new("fused"), names.new("parts")
        members, shift = {id(s) for s in group}, {id(s) for s in moved}
        out = []
        for s in block:
            if s is first:
                out.extend(moved)
                out.append(K.Assign(fused, fuse_op, (ms,), {}, s.line))
                out.append(K.Assign(parts, "fused_product", (K.Ref(x), K.Ref(fused), ms, None, 0, None, ()), {},
                                    s.line))
            if id(s) in members:
                out.append(K.Assign(s.out, "item", (K.Ref(parts), group.index(s)), {}, s.line))
            elif id(s) not in shift:
                out.append(s)
        block = out
    return block


def _straight_group(block: list):
    """(op, input, its products, the layers' statements to move up) for the first group of at
    least two products of one input with distinct layers all known at the first product."""
    groups: dict = {}
    for s in block:
        if isinstance(s, K.Assign) and s.op in PRODUCTS and s.out is not None and not s.attrs:
            at_x, at_w, _ = PRODUCTS[s.op]
            x, w = s.args[at_x], s.args[at_w]
            if isinstance(x, K.Ref) and isinstance(w, K.Ref) and len(s.args) == 2:
                groups.setdefault((s.op, x.name), []).append(s)
    for (op, x), group in groups.items():
        layers = [s.args[PRODUCTS[op][1]].name for s in group]
        if len(group) < 2 or len(set(layers)) < len(layers):
            continue
        start = next(i for i, s in enumerate(block) if s is group[0])
        later = {s.out: s for s in block[start:] if isinstance(s, K.Assign) and s.out is not None}
        after = assigned(block[start:], set())
        moved = []
        for name in layers:
            s = later.get(name)
            if s is None and name not in after:
                continue
            # a read of a layer from a list made before the first product moves up to it
            if s is None or s.op not in ("item", "module_at") or any(n in after for n in K.refs(s.args)):
                moved = None
                break
            moved.append(s)
        if moved is not None and x not in after:
            return op, x, group, moved
    return None


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
    for s in K.statements(block):
        for name in K.read_names(s):
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


ACTIVATIONS = {"sigmoid": 0, "tanh": 1}  # applied to consecutive parts at once (their order in the product)


def _activation(name: str, readers: dict, top: set):
    """The sigmoid or tanh statement that is the only reader of `name`, or None."""
    found = readers.get(name, [])
    if len(found) == 1 and isinstance(found[0], K.Assign) and found[0].op in ACTIVATIONS and id(found[0]) in top \
            and found[0].args == (K.Ref(name),) and not found[0].attrs.get("py"):
        return found[0]
    return None


def _fuse_products(pre: list, body: list, varying: set, names, defs) -> tuple[list, list]:
    for (op, x), group in _groups(body, varying).items():
        at_x, at_w, fuse_op = PRODUCTS[op]
        first = group[0]
        added = _added(group, body, varying, defs)
        adds = list(added[3]) if added is not None else [None] * len(group)
        # parts that go through the same activation next to each other: one call for them all
        readers, top = _uses(body, {}), {id(s) for s in body}
        acts = [_activation(a.out if a is not None else t.out, readers, top) for t, a in zip(group, adds)]
        order = sorted(range(len(group)), key=lambda j: (ACTIVATIONS[acts[j].op] if acts[j] else 2, j))
        group, adds, acts = [group[j] for j in order], [adds[j] for j in order], [acts[j] for j in order]
        plan = tuple(a.op if a is not None and sum(1 for b in acts if b is not None and b.op == a.op) >= 2 else None
                     for a in acts)
        if not any(plan):
            acts = [None] * len(group)
        acts = [a if p else None for a, p in zip(acts, plan)]
        ms = tuple(s.args[at_w] for s in group)
        fused = names.new("fused")
        pre.append(K.Assign(fused, fuse_op, (ms,), {}, first.line))
        parts = names.new("parts")
        args = (K.Ref(x), K.Ref(fused), ms)
        moved: dict = {}
        if added is not None:
            k, values, dim = added[0], tuple(added[1][j] for j in order), added[2]
            steps = names.new("terms")
            pre.append(K.Assign(steps, "steps_cat", (values, dim, K.Ref(fused)), {}, first.line))
            qs = tuple(None if a is None else (a.args[1] if a.args[0] == K.Ref(t.out) else a.args[0])
                       for t, a in zip(group, adds))
            args += (K.Ref(steps), k, qs)
            # the terms' step items move up to the product (they read only the step's index)
            moved = {id(defs[q.name]): defs[q.name] for q in qs if q is not None}
        else:
            args += (None, 0, None)
        args += (plan,)
        members = {id(s) for s in group}
        # the statement whose value each part becomes: its activation, its addition, or itself
        final = {}
        for j, (t, a, act) in enumerate(zip(group, adds, acts)):
            if act is not None:
                final[id(act)] = j
                if a is not None:
                    members.add(id(a))
            elif a is not None:
                final[id(a)] = j
        new_body = []
        for s in body:
            if s is first:
                new_body.extend(moved.values())
                new_body.append(K.Assign(parts, "fused_product", args, {}, s.line))
                new_body.extend(K.Assign(t.out, "item", (K.Ref(parts), j), {}, t.line)
                                for j, t in enumerate(group) if adds[j] is None and acts[j] is None)
            elif id(s) in final:
                new_body.append(K.Assign(s.out, "item", (K.Ref(parts), final[id(s)]), {}, s.line))
            elif id(s) not in members and id(s) not in moved:
                new_body.append(s)
        body = new_body
    return pre, body
