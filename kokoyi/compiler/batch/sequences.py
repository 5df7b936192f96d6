"""Recurrences and recurrence groups: one Python loop over the sequence axis, batched over
everything else.

Step t computes the element of each member in order (a group's members may read the current
element of members before them, and earlier elements of any member). The first step is
generated apart — its base cases decide the elements' layouts — and the loop body is
generated again with wider layouts until they are stable; every element is then widened to
its member's layout and appended, and each member is stacked on a new per-sample axis.
Where the base case is the general case applied to an initial element (batch/initial.py),
the loop starts at the first step instead: the initial elements decide the first layouts and
head the members' lists while the loop runs (dropped after it), where they already have the
elements' layout (an initial element shared by the samples of a batched recurrence keeps the
first step apart: computed once rather than once per sample).
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.control import _widen
from kokoyi.compiler.batch.hoist import Hoist
from kokoyi.compiler.batch.initial import initial_elements
from kokoyi.compiler.batch.layout import Val, promote


def recurrence(b, e: ir.Recur) -> Val:
    (out,) = _sequences(b, e, (e.name,), e.axis, (e.element,))
    return out


def group(b, e: ir.RecurGroup) -> Val:
    members = _sequences(b, e, e.names, e.axis, e.elements)
    saved = {n: b.env.get(n) for n in e.names}
    b.env.update(zip(e.names, members))
    try:
        return b.ev(e.body)
    finally:
        for n, v in saved.items():
            if v is None:
                b.env.pop(n, None)
            else:
                b.env[n] = v


def _sequences(b, e, names, axis: ir.Axis, elements) -> list[Val]:
    lo, hi = b.ev(axis.lower), b.ev(axis.upper)
    if not (lo.python and hi.python and isinstance(lo.code, int)) or lo.kind != "int" or hi.kind != "int":
        raise b.unsupported("a recurrence whose range starts at a value known only at run time", e)
    n = b.emit("range_size", lo.code, hi.code, hint="n_" + axis.name)
    states = [K.Ref(b.ns.create(name + "_steps")) for name in names]
    for s in states:
        b.block.append(K.Assign(s.name, "new_list", ()))
    initial = initial_elements(names, axis, elements, lo.code)
    made = None if initial is None else _steps(b, e, names, axis, lo.code, n, states, initial)
    if made is None:
        made = _steps(b, e, names, axis, lo.code, n, states, (elements, {}))
        if initial is not None and _expands_initial(b, made[0], initial[1]):
            made = _steps(b, e, names, axis, lo.code, n, states, initial, shared=True) or made
    first, layouts, chained = made
    b.block.append(K.If(b.emit("gt", n, 0, hint="some", py=True), first, [], b.line))
    out = []
    for name, s, (axes, rank, kind), chain in zip(names, states, layouts, chained):
        code = b.emit("stack_states", s, len(axes), tuple(b.sizes[a] for a in axes), rank, kind == "float",
                      b.dtype, hint=name)
        out.append(Val(code, axes, rank + 1, kind))
        b.stacked[code.name] = (s, tuple(b.sizes[a] for a in axes), rank, kind == "float", chain)
    return out


def _steps(b, e, names, axis: ir.Axis, lo: int, n, states, initial,
           shared: bool = False) -> tuple[list, list, list] | None:
    """(the block that runs the steps where there are some, the elements' layouts, whether each
    member's steps are chained: `_chained`). With initial
    elements (`inits`: batch/initial.py), the loop runs from the first step, each member's list
    headed by its initial element while it runs; None where an initial element has fewer axes
    or dimensions than the elements (a parameter h_0 of a batched recurrence: its first step,
    computed apart, multiplies h_0 once, not once per sample), unless `shared`: then an initial
    element with fewer axes is widened to the elements' (`_expands_initial`). Otherwise the
    first step is computed apart and the loop runs over the others."""
    elements, inits = initial
    first: list = []
    if inits:
        start, rest = lo, n
        with b.into(first):
            firsts = [None if m not in inits else _tensor(b, b.ev(inits[m]), inits[m]) for m in names]
    else:
        start, rest = lo + 1, b.emit("sub", n, 1, hint="rest", py=True)
    # where a step's earlier read m[t - 1] finds its element in m's list
    offsets = [lo - 1 if m in inits else lo for m in names]
    h = Hoist(b, axis, start, rest, names)
    b.hoists.append(h)
    try:
        if not inits:
            with b.into(first):
                h.begin_step(b, None)
                firsts = _step(b, names, axis, elements, Val(lo, kind="int", python=True), states, None, offsets)
        layouts = [None if v is None else _layout(v) for v in firsts]
        for _ in range(8):  # widen the elements' layouts until the loop body keeps them
            body = []
            t = K.Ref(b.ns.create(axis.name))
            b.lowest[t.name] = start
            with b.into(body):
                h.begin_step(b, t.name)
                values = _step(b, names, axis, elements, Val(t, kind="int", python=True), states, layouts, offsets)
                wider = [_layout(v) if a is None else _merge(a, _layout(v)) for a, v in zip(layouts, values)]
                if wider == layouts:
                    # (an initial element of another kind would set the elements' kind: `\lceil
                    # \mathbb{1}[h[t-1] \geq x[t]] \rceil` from 0.5 is an integer all the same)
                    if inits and any(v is not None and (v.rank != lay[1] if shared else _layout(v)[:2] != lay[:2]
                                                        or v.kind != w.kind)
                                     for v, lay, w in zip(firsts, layouts, values)):
                        return None
                    for s, v, lay in zip(states, values, layouts):
                        b.do("append", s, _widen(b, v, *lay))
                    chained = [_chained(body, s, b.predecessor_reads) for s in states]
                    break
            layouts = wider
        else:
            raise b.unsupported("a recurrence whose elements keep changing layout", e)
    finally:
        b.hoists.pop()
    with b.into(first):
        for s, v, lay in zip(states, firsts, layouts):
            if v is not None:
                b.do("append", s, _widen(b, v, *lay))
        loop = K.For(t.name, start, b.emit("add", lo, n, hint="stop", py=True), body, b.line, b.site(e))
        # what the loop's steps need, computed for all of them at once before it
        if not inits:
            first.append(K.If(b.emit("gt", rest, 0, hint="more", py=True), h.block + [loop], [], b.line))
        else:
            first.extend(h.block + [loop])
            for s, v in zip(states, firsts):
                if v is not None:
                    b.do("drop_first", s)  # the element before the first
    return first, layouts, chained


# Kernel ops through which a float value's gradient reaches the arguments listed (by position):
# each result is a differentiable function of them, so autograd, going back from the result,
# always reaches them (with a zero gradient, say, where a `where` does not pick them).
_FLOWS = dict.fromkeys(("add", "sub", "mul", "div", "maximum", "minimum"), (0, 1)) | dict.fromkeys(
    ("neg", "exp", "sin", "cos", "tanh", "sqrt", "sigmoid", "softplus", "gelu", "relu", "view",
     "expand_lead", "copy", "transpose", "gradient_where"), (0,)) | {"where": (1, 2), "lerp": (0, 1, 2)}


def _chained(body: list, s: K.Ref, predecessor_reads: set) -> bool:
    """Whether every step of the loop `body` appends to `s` a value that autograd, going back
    from it, always reaches the member's element before it through: the step reads `m[t-1]`
    (an `earlier` read that `earlier` noted as one of the predecessor) in a statement of the
    body itself (not under an `If`: a Python branch may skip it), and a path of `_FLOWS` ops
    in the body leads from that read to the value appended. Then, by induction back from the
    last element, every element of the member's list is an ancestor of the last one in the
    autograd graph, and the zero gradients `kx.read_states` hands the others when it reads
    the last element (as reading the stack would) add nothing: the last element is read as
    it is (runtime/recur.py). Sound, not complete: a path through any other op (a module
    call, a product) is not looked for."""
    live: set = set()
    for st in body:
        if not isinstance(st, K.Assign):
            continue
        if st.op == "earlier":
            if st.args[0] == s and id(st) in predecessor_reads:
                live.add(st.out)
        elif st.op == "append":
            if st.args[0] == s:
                return isinstance(st.args[1], K.Ref) and st.args[1].name in live
        elif st.out is not None and any(
                i < len(st.args) and isinstance(st.args[i], K.Ref) and st.args[i].name in live
                for i in _FLOWS.get(st.op, ())):
            live.add(st.out)
    return False


def _expands_initial(b, first: list, inits: dict) -> bool:
    """Whether the first step, computed apart, widens an initial element that is a name (a
    parameter h_0 the same for every sample) to the samples as it is (`expand_lead`: the LSTM's
    Concat(h_0, x[0]) per sample). Computing it apart then multiplies nothing once rather than
    once per sample, so the loop starts at the first step from the widened initial elements
    instead (one step's operations fewer, and a loop torch runs as a whole, batch/lstm.py,
    starts from h_0). Where the first step uses the initial element without widening it (the
    GRU's U @ h_0: one row, not one per sample), it stays apart."""
    names = {x.name for x in inits.values() if isinstance(x, ir.Var)}
    codes = {v.code.name for nm in names if (v := b.env.get(nm)) is not None and isinstance(v.code, K.Ref)}

    def widened(block) -> bool:  # (the first step's statements: not the loop's)
        for s in block:
            if isinstance(s, K.Assign) and s.op == "expand_lead" and isinstance(s.args[0], K.Ref) \
                    and s.args[0].name in codes:
                return True
            if isinstance(s, K.If) and (widened(s.then) or widened(s.orelse)):
                return True
        return False

    return bool(codes) and widened(first)


def _tensor(b, v: Val, where) -> Val:
    if not v.is_tensor:
        raise b.unsupported("a recurrence whose elements are not numbers", where)
    return v


def _layout(v: Val) -> tuple:
    return (v.axes, v.rank, v.kind)


def _merge(a: tuple, c: tuple) -> tuple:
    axes = tuple(x for x in ("_b",) if x in a[0] or x in c[0]) + tuple(
        x for x in dict.fromkeys(a[0] + c[0]) if x != "_b")
    kind = "bool" if a[2] == c[2] == "bool" else promote([a[2], c[2]])
    return (axes, max(a[1], c[1]), kind)


def _step(b, names, axis, elements, t: Val, states, layouts, offsets) -> list[Val]:
    """The elements of every member at step t, in order (each may read the ones before);
    an earlier read m[j] finds its element at j - offsets[i] in m's list."""
    b.iotas[axis.name] = t
    current: dict = {}
    for i, name in enumerate(names):
        b.recurrences[name] = Val(states[i], what="states",
                                  info=(None if layouts is None else layouts[i], offsets[i], axis, current))
    try:
        out = []
        for name, element in zip(names, elements):
            v = _tensor(b, b.ev(element), element)
            current[name] = v
            out.append(v)
        return out
    finally:
        del b.iotas[axis.name]
        for name in names:
            del b.recurrences[name]


def _predecessor(index: ir.Expr, axis: ir.Axis) -> bool:
    """Whether an index is the step's own minus 1 (`t - 1`, `t + -1`)."""
    return isinstance(index, ir.Prim) and len(index.args) == 2 and index.args[0] == ir.Iota(axis) and (
        (index.op == "sub" and index.args[1] == ir.Lit(1)) or (index.op == "add" and index.args[1] == ir.Lit(-1)))


def earlier(b, e: ir.Take) -> Val:
    """A read of a sequence being computed: an earlier element (or, in a group, the current
    element of a member computed before), then any further indices into it."""
    from kokoyi.compiler.batch import indexing

    states = b.recurrences[e.value.name]
    layout, lo, axis, current = states.info
    if e.items[0] == ir.Iota(axis):
        element = current.get(e.value.name)
        if element is None:  # (the recurrences pass orders members: a compiler bug otherwise)
            raise b.unsupported("a group member read before it is computed", e)
    else:
        idx = b.ev(e.items[0])
        if not idx.python or idx.kind != "int":
            raise b.unsupported("a recurrence read at an index that varies", e)
        guards = indexing._guards(b, ())
        k = b.emit("sub", idx.code, lo, hint="k", py=True)
        if layout is None:  # the first step has nothing before it: an error wherever the read applies;
            # elsewhere its value is discarded (an integer 0 stands in: it makes no float of an
            # integer recurrence)
            b.do("no_earlier", k, b.site(e), guards)
            return Val(0, kind="int", python=True)
        axes, rank, kind = layout
        element = Val(b.emit("earlier", states.code, k, b.site(e), guards, hint="prev"), axes, rank, kind)
        if _predecessor(e.items[0], axis):
            b.predecessor_reads.add(id(b.block[-1]))  # (for _chained)
    if b.row_masks or b.loop_masks:  # a read like any other: no gradient where a row does not apply
        from kokoyi.compiler.batch import gradients

        element = gradients.read(b, element)
    if len(e.items) == 1:
        return element
    return indexing.take_items(b, e, element, e.items[1:])
