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

# op -> (position of the input, position of the matrix or layer, the fused runtime ops)
PRODUCTS = {"linear": (0, 1, "fuse_rows", "fused_linear"), "linear_layer": (1, 0, "fuse_layers", "fused_layers")}


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
    return dataclasses.replace(k, body=_block(k.body, names))


def _block(block: list, names) -> list:
    out = []
    for i, s in enumerate(block):
        match s:
            case K.If():
                s = dataclasses.replace(s, then=_block(s.then, names), orelse=_block(s.orelse, names))
            case K.For():
                body = _block(s.body, names)
                pre, body = _fuse_products(list(s.pre), body, assigned(body, {s.var}), names)
                s = dataclasses.replace(s, pre=pre, body=body)
        out.append(s)
    return out


def _groups(body: list, varying: set) -> dict:
    """(op, input) -> the body's statements multiplying that input by a matrix made before the loop."""
    groups: dict = {}
    for s in body:
        if isinstance(s, K.Assign) and s.op in PRODUCTS and s.out is not None:
            at_x, at_w, _, _ = PRODUCTS[s.op]
            x, w = s.args[at_x], s.args[at_w]
            if isinstance(x, K.Ref) and isinstance(w, K.Ref) and w.name not in varying:
                groups.setdefault((s.op, x.name), []).append(s)
    return {key: group for key, group in groups.items() if len(group) >= 2}


def _fuse_products(pre: list, body: list, varying: set, names) -> tuple[list, list]:
    for (op, x), group in _groups(body, varying).items():
        at_x, at_w, fuse_op, call_op = PRODUCTS[op]
        fused = names.new("fused")
        pre.append(K.Assign(fused, fuse_op, (tuple(s.args[at_w] for s in group),), {}, group[0].line))
        parts = names.new("parts")
        first = body.index(group[0])
        members = {id(s) for s in group}
        new_body = []
        for s in body:
            if s is group[0]:
                new_body.append(K.Assign(parts, call_op, (K.Ref(x), K.Ref(fused), tuple(t.args[at_w] for t in group)),
                                         {}, s.line))
                for j, t in enumerate(group):
                    new_body.append(K.Assign(t.out, "item", (K.Ref(parts), j), {}, t.line))
            elif id(s) not in members:
                new_body.append(s)
        assert first >= 0
        body = new_body
    return pre, body
