"""The input's block of a fused product over `\\Concat(state, input)`, computed once for all steps.

An LSTM written with `W @ \\Concat(h[t-1], x[t])` multiplies, each step, the concatenation of
the state and the step's input by the gates' stacked matrices (fuse.py). The input's part of
that product does not depend on the state: `W @ [h; x] = W_h @ h + W_x @ x`, and `W_x @ x[t]`
for every step is one large product before the loop (what torch's own LSTM does). A step then
makes one `addmm` of the state with `W_h`, adding its row of the inputs' projections, and no
concatenation (forward) nor split of its gradient (backward).

Matches, in a loop's body, `z = cat((a, b), axis)` (vectors) read only by a `fused_product`
without added terms, where one of a, b is the step's item of an `unbind` made before the loop
(batch/hoist.py's x[t]) and the other is not. The loop's `pre` gets `project_steps` (the input
block's product for all steps, None where the shapes or dtypes do not allow it: then the step
concatenates as before, kokoyi/runtime/recur.py `projected_product`). Runs after fuse.py.
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.fuse import _definitions, _Names, _uses
from kokoyi.compiler.batch.licm import assigned


def project_inputs(k: K.Kernel) -> K.Kernel:
    names = _Names(assigned(k.body, set(k.params)))
    defs: dict = {}
    _definitions(k.body, defs)
    return dataclasses.replace(k, body=_block(k.body, names, defs))


def _block(block: list, names, defs) -> list:
    out = []
    for s in block:
        match s:
            case K.If():
                s = dataclasses.replace(s, then=_block(s.then, names, defs), orelse=_block(s.orelse, names, defs))
            case K.For():
                body = _block(s.body, names, defs)
                pre, body = _project(list(s.pre), body, assigned(body, {s.var}), names, defs)
                s = dataclasses.replace(s, pre=pre, body=body)
        out.append(s)
    return out


def _step_input(arg, body_ids: set, varying: set, defs: dict):
    """(the all-steps value, the axis it is unbound along, the step index) when arg is the
    step's item of an unbind made before the loop; else None."""
    item = defs.get(arg.name) if isinstance(arg, K.Ref) else None
    if item is None or item.op != "step_item" or id(item) not in body_ids or not isinstance(item.args[0], K.Ref):
        return None
    unbind = defs.get(item.args[0].name)
    if unbind is None or unbind.op != "unbind" or unbind.out in varying:
        return None
    return unbind.args[0], unbind.args[1], item.args[1]


def _project(pre: list, body: list, varying: set, names, defs) -> tuple[list, list]:
    readers = _uses(body, {})
    body_ids = {id(s) for s in body}
    replace: dict = {}  # id(fused_product) -> its new statement
    drop: set = set()  # id(cat) of the concatenations no longer made
    for s in body:
        if not (isinstance(s, K.Assign) and s.op == "fused_product" and s.args[3] is None
                and isinstance(s.args[0], K.Ref) and isinstance(s.args[1], K.Ref)):
            continue
        cat = defs.get(s.args[0].name)
        if cat is None or id(cat) not in body_ids or cat.op != "cat" or not cat.attrs.get("vectors") \
                or len(cat.args[0]) != 2 or [id(r) for r in readers.get(cat.out, [])] != [id(s)]:
            continue
        found = [_step_input(a, body_ids, varying, defs) for a in cat.args[0]]
        at = [j for j, f in enumerate(found) if f is not None]
        if len(at) != 1:
            continue  # both parts vary with the state (or neither does): nothing to take out
        xs, dim, step = found[at[0]]
        proj = names.new("projected")
        pre.append(K.Assign(proj, "project_steps", (s.args[1], xs, dim, at[0], cat.args[1]), {}, s.line))
        x, fused, ms, _, _, _, plan = s.args
        replace[id(s)] = K.Assign(s.out, "projected_product",
                                  (K.Ref(proj), step, cat.args[0], cat.args[1], fused, ms, plan), {}, s.line)
        drop.add(id(cat))
    if not replace:
        return pre, body
    return pre, [replace.get(id(s), s) for s in body if id(s) not in drop]
