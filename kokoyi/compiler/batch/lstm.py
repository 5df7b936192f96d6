"""A recurrence loop whose step is an LSTM cell runs as torch's own LSTM over all its steps.

After fuse.py and project.py an LSTM's step (however the source wrote it: one recurrence group
of c and h, gates as matrices or affine layers, the state before or after the input) is

    P = projected_product(proj, k, (h[t-1], x[t]), ...)   # 4 parts: 3 sigmoid, 1 plain
    c = sig_f * c[t-1] + sig_i * tanh(g)
    h = sig_o * tanh(c)
    append(c_steps, c); append(h_steps, h)

(products and sums in any order). That is the cell torch.nn.LSTM computes, and torch's kernel
runs every step at once (on the CPU, oneDNN's fused LSTM: the gates' products of all steps'
inputs as one product, the weights' gradient as one product, the element-wise work fused).
The loop is kept: `kx.lstm_sequence` runs torch's LSTM where it applies (one batch axis, the
shapes and dtypes of an LSTM, no tracing) and appends every step's h; else the loop runs as
before. The c states must be read only by the step itself (torch returns only the last one).
"""
from __future__ import annotations

import dataclasses

from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.fuse import _definitions, _Names, _uses
from kokoyi.compiler.batch.licm import assigned


def lstm_sequences(k: K.Kernel) -> K.Kernel:
    names = _Names(assigned(k.body, set(k.params)))
    everywhere = _uses(k.body, {})
    return dataclasses.replace(k, body=_block(k.body, names, everywhere))


def _block(block: list, names, everywhere: dict) -> list:
    out = []
    for s in block:
        match s:
            case K.If():
                s = dataclasses.replace(s, then=_block(s.then, names, everywhere),
                                        orelse=_block(s.orelse, names, everywhere))
            case K.For():
                found = _match(s, everywhere, out)
                if found is not None:
                    later = {id(w) for w in found["waiting"]}
                    out[:] = [w for w in out if id(w) not in later]
                    out.extend(_replace(s, found, names))
                    continue
        out.append(s)
    return out


def _one(defs: dict, name) -> K.Assign | None:
    return defs.get(name.name) if isinstance(name, K.Ref) else None


def _product(s, op: str, defs: dict) -> tuple | None:
    """(the two statements s multiplies or adds) when s is `op` of two names defined in the step."""
    if not (isinstance(s, K.Assign) and s.op == op and len(s.args) == 2) or s.attrs.get("py"):
        return None
    a, b = (_one(defs, x) for x in s.args)
    return None if a is None or b is None else (a, b)


def _match(loop: K.For, everywhere: dict, before: list) -> dict | None:
    """What _replace needs where loop's step is an LSTM cell (`before`: the statements of its
    block before it), else None."""
    body = loop.body
    defs: dict = {}
    _definitions(body, defs)
    appends = [s for s in body if isinstance(s, K.Assign) and s.op == "append"]
    products = [s for s in body if isinstance(s, K.Assign) and s.op == "projected_product"]
    if len(appends) != 2 or len(products) != 1 or any(not isinstance(s, K.Assign) for s in body):
        return None
    p = products[0]
    proj, step, parts, axis, fused, ms, plan = p.args
    if sorted(map(str, plan)) != ["None", "sigmoid", "sigmoid", "sigmoid"] or len(parts) != 2:
        return None
    role_of = {}  # id(item statement) -> part index
    for s in body:
        if s.op == "item" and s.args[0] == K.Ref(p.out) and isinstance(s.args[1], int):
            role_of[id(s)] = s.args[1]
    # h = o * tanh(c); c = f * c_prev + i * tanh(g)
    (lists_c, c_new), (lists_h, h_new) = sorted(((a.args[0], _one(defs, a.args[1])) for a in appends),
                                                key=lambda pair: pair[1] is not None and pair[1].op == "mul")
    if c_new is None or h_new is None:
        return None
    mh = _product(h_new, "mul", defs)
    ac = _product(c_new, "add", defs)
    if mh is None or ac is None:
        return None
    o, tc = mh if mh[1].op == "tanh" else mh[::-1]
    if tc.op != "tanh" or tc.args != (K.Ref(c_new.out),) or id(o) not in role_of:
        return None
    forget = cell = None
    for m in ac:
        pair = _product(m, "mul", defs)
        if pair is None:
            return None
        for gate, other in (pair, pair[::-1]):
            if id(gate) not in role_of:
                continue
            if other.op == "earlier" and other.args[0] == lists_c:
                forget = (gate, other)
            elif other.op == "tanh" and id(_one(defs, other.args[0])) in role_of:
                cell = (gate, _one(defs, other.args[0]))
    if forget is None or cell is None:
        return None
    # the state in the product is h[t-1], read at the same index as c[t-1]; the inputs' row is t - start
    states = [_one(defs, x) for x in parts]
    at_state = [j for j, x in enumerate(states) if x is not None and x.op == "earlier" and x.args[0] == lists_h]
    if len(at_state) != 1 or states[at_state[0]].args[1] != forget[1].args[1]:
        return None
    # (the list index of h[t-1]: t - 1, or t where the lists are headed by the initial elements,
    # batch/initial.py: then they hold start + 1 elements when the loop starts)
    offset = _offset(forget[1].args[1], loop.var, defs)
    if not isinstance(loop.start, int) or offset not in (-1, 0) or _offset(step, loop.var, defs) != -loop.start:
        return None
    # nothing else in the step, and nothing it computes read after it
    counts: dict = {}
    for s in body:
        if not s.attrs.get("py"):
            counts[s.op] = counts.get(s.op, 0) + 1
    counts.pop("step_item", None)
    if counts != {"earlier": 2, "projected_product": 1, "item": 4, "mul": 3, "tanh": 2, "add": 1, "append": 2}:
        return None
    inside = {id(s) for s in body}
    if any(id(r) not in inside for s in body if s.out is not None for r in everywhere.get(s.out, [])):
        return None
    roles = {role_of[id(forget[0])]: "f", role_of[id(cell[0])]: "i", role_of[id(o)]: "o", role_of[id(cell[1])]: "g"}
    if sorted(roles) != [0, 1, 2, 3] or plan[role_of[id(cell[1])]] is not None:
        return None
    # the c states are read nowhere but by this step (torch gives back only the last one)
    c_name = lists_c.name if isinstance(lists_c, K.Ref) else None
    readers = everywhere.get(c_name, [])
    if c_name is None or any(r.op not in ("append", "earlier", "drop_first") for r in readers) \
            or sum(1 for r in readers if r.op == "earlier") != 1:
        return None
    project = [s for s in loop.pre if s.op == "project_steps" and K.Ref(s.out) == proj]
    if len(project) != 1:
        return None
    # the inputs unbound into steps for the loop's steps alone (an unbind cannot fail): made only
    # where the loop runs, not before torch's LSTM, which reads the inputs whole
    waiting = [s for s in [*before, *loop.pre] if isinstance(s, K.Assign) and s.op == "unbind" and s.out is not None
               and all(id(r) in inside for r in everywhere.get(s.out, []))]
    return {"project": project[0], "roles": tuple(roles[j] for j in range(4)), "h": lists_h, "c": lists_c,
            "held": loop.start + offset + 1, "waiting": waiting}


def _offset(index, var: str, defs: dict):
    """c where index is var + c through the step's integer subtractions and additions, else None."""
    if index == K.Ref(var):
        return 0
    s = _one(defs, index)
    if s is None or s.op not in ("sub", "add") or not s.attrs.get("py") or not isinstance(s.args[1], int) \
            or not isinstance(s.args[0], K.Ref):
        return None
    inner = _offset(s.args[0], var, defs)
    return None if inner is None else inner + (s.args[1] if s.op == "add" else -s.args[1])


def _replace(loop: K.For, found: dict, names) -> list:
    project = found["project"]
    fused, xs, dim, at, axis = project.args
    waiting = found["waiting"]
    later = {id(s) for s in waiting}
    before = [s for s in loop.pre if s is not project and id(s) not in later]
    todo = names.new("loop_needed")
    held = () if found["held"] == loop.start else (found["held"],)
    call = K.Assign(todo, "lstm_sequence", (fused, xs, dim, at, axis, found["roles"], found["h"], found["c"],
                                            loop.start, loop.stop, *held), {}, loop.line)
    fallback = dataclasses.replace(loop, pre=[*waiting, project])
    return [*before, call, K.If(K.Ref(todo), [fallback], [], loop.line)]
