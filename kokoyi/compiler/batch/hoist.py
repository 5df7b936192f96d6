"""State-free work of a recurrence computed before its loop, for all steps at once.

A recurrence's step may compute things that do not depend on any earlier element: the
embedding of the input token `E(x[t])`, an input projection `W[0](E(x[t]))`, the column
block of `W @ Concat(h[t-1], x[t])` that multiplies `x[t]`. Computed per step, each is a
small matrix product per step (and its backward); computed once with the sequence axis as a
vector axis, it is one large product, and each step reads its row (`unbind` once, then a
Python list index per step: no aten call).

While a step is generated (`sequences._sequences`), `Batcher.ev` offers each node to
`try_hoist`. A node is hoisted when it does some work (a call, a read, a product, a loop),
reads no member of the recurrence, and every value it reads is either defined before the
recurrence, hoisted already, or defined in the step without depending on the step (a
layer picked from a list: copied before the loop). The node is then evaluated again with
the sequence axis open as a vector axis (`lo + arange(n)`), into the block that runs before
the first step; the same code hoisted twice (the first step's and the loop's copy of an
inlined cell) is computed once. Reads in hoisted code apply wherever the loop's steps do
(all of lo..hi): a node under a condition or a mask made in the step is not hoisted.

(The column block of `W @ Concat(h[t-1], x[t])` that multiplies `x[t]` is not hoisted: measured
on the LSTM, the all-steps product's copies — the terms concatenated, their gradients stacked
per step — cost more than the per-step concatenation; the four gates' products are one per
step anyway, batch/fuse.py.)
"""
from __future__ import annotations

from kokoyi.compiler import ir
from kokoyi.compiler import kernel as K
from kokoyi.compiler.batch.gradients import may_have_undefined_derivative
from kokoyi.compiler.batch.layout import Val

# Node kinds that do work worth doing once: everything else (arithmetic on the index, a
# comparison) stays in the step.
HEAVY = (ir.Apply, ir.Take, ir.Build, ir.Reduce, ir.Fast)
HEAVY_PRIMS = {"matmul", "cdot", "concat"}


_NONE: frozenset = frozenset()


class NotHoistable(Exception):
    """A value the node reads depends on the recurrence's state (found while evaluating it)."""


class Hoist:
    """One recurrence being generated: what its steps defined and what was hoisted."""

    def __init__(self, b, axis: ir.Axis, lo: int, n, members) -> None:
        self.axis = axis
        self.lo = lo
        self.n = n
        self.members = set(members)
        self.block: list = []  # runs before the first step
        self.defs: dict[str, K.Assign] = {}  # what the steps defined: name -> statement
        self.state: set[str] = set()  # ... of which these depend on an earlier element
        self.varying: set[str] = set()  # ... and these on the step's index
        self.all_steps: dict[str, Val] = {}  # per-step value's name -> its value for all steps
        self.copies: dict = {}  # definition key -> name of its copy before the loop
        self.done: dict = {}  # canonical hoisted code -> (all-steps value, list of its steps)
        self.t: str | None = None  # the loop variable's name (None in the first step)
        self.base_guards: list = []
        self.base_order: list = []
        self.base_masks: list = []
        self.base_block: list = []
        self.vector = False  # evaluating a node for all steps
        self.pending: list = []  # copies made while evaluating one node
        self.unbound: dict = {}  # all-steps value's name -> the list of its steps
        self._info: dict = {}
        self.before = set(b.ns._used)  # names bound before the recurrence: all others are the step's
        with b.into(self.block):
            self.iota = Val(b.emit("arange", lo, n, hint=axis.name + "_all"), (axis.name,), 0, "int")

    # ---- what the steps define ----------------------------------------------------------------
    def note(self, s: K.Assign) -> None:
        if self.vector or s.out is None:
            return
        refs = K.read_names(s)
        self.defs[s.out] = s
        if s.op == "earlier" or refs & self.state:
            self.state.add(s.out)
        # a name the step bound without emitting it (an If's join, a list a loop fills) varies with it
        unknown = any(r not in self.defs and r not in self.before for r in refs)
        if (self.t is not None and self.t in refs) or refs & self.varying or unknown:
            self.varying.add(s.out)

    def restated(self, old: K.Assign, new: K.Assign) -> None:
        """The step's statement old was replaced by new (Batcher.restate)."""
        if self.defs.get(old.out) is old:
            self.defs[old.out] = new

    def note_join(self, name: str) -> None:
        """`name` is assigned on both sides of a branch made in the step (a cases' Python
        condition): not an Assign the step emitted, so never hoisted, nor what reads it."""
        if self.vector:
            return
        self.defs[name] = K.Assign(name, "copy", ())
        self.varying.add(name)

    def rename(self, old: str, new: str) -> None:
        if old in self.defs:
            self.defs[new] = self.defs.pop(old)
            for group in (self.state, self.varying):
                if old in group:
                    group.discard(old)
                    group.add(new)

    def begin_step(self, b, t: str | None) -> None:
        self.t = t
        if t is not None:
            self.varying.add(t)
        self.base_guards, self.base_order, self.base_masks = b.guards, list(b.order), list(b.row_masks)
        self.base_block = b.block

    # ---- which nodes --------------------------------------------------------------------------
    def info(self, e) -> tuple[bool, bool, frozenset]:
        """(does work, reads a member, free variables) of a node, cached."""
        key = id(e)
        hit = self._info.get(key)
        if hit is not None and hit[0] is e:
            return hit[1]
        heavy = isinstance(e, HEAVY) or (isinstance(e, ir.Prim) and e.op in HEAVY_PRIMS)
        member = isinstance(e, ir.Take) and isinstance(e.value, ir.Var) and e.value.name in self.members
        bound = ()
        if isinstance(e, ir.Var):
            out = (heavy, member, frozenset((e.name,)))  # (a Var has no children)
            self._info[key] = (e, out)
            return out
        if isinstance(e, ir.Let):
            bound = (e.name,)
        elif isinstance(e, ir.Lambda):
            bound = e.params
        elif isinstance(e, (ir.Recur, ir.RecurGroup)):
            member = True  # (a recurrence inside a step: left to the step)
        elif isinstance(e, ir.Select):
            # (a cases inside a step: left to the step, where a row known not to apply is a branch
            # not taken and reads nothing; for all steps at once it would be a select whose masked
            # reads hand what they read a zero gradient, 0 * NaN where its derivative is undefined)
            member = True
        # The free variables: a child's set itself when it is the only one that is not empty and
        # nothing is bound here (a chain of unary nodes shares one set, not a copy per level).
        sets = []
        for c in ir.children(e):
            if isinstance(c, ir.Axis):
                c_info = (self.info(c.lower), self.info(c.upper))
            elif isinstance(c, ir.Slice):
                c_info = [self.info(x) for x in (c.lower, c.upper) if x is not None]
            else:
                c_info = (self.info(c),)
            for h, m, f in c_info:
                heavy, member = heavy or h, member or m
                if f:
                    sets.append(f)
        if not sets:
            free = _NONE
        elif len(sets) == 1 and not bound:
            free = sets[0]
        else:
            free = frozenset().union(*sets).difference(bound)
        out = (heavy, member, free)
        self._info[key] = (e, out)
        return out

    def usable(self, v: Val) -> bool:
        if v.what == "lambda":
            return False
        if v.what == "tuple":
            return all(self.usable(x) for x in v.info)
        code = v.code
        if isinstance(code, K.Ref) and code.name not in self.defs and code.name not in self.before:
            return False  # bound in the step without an emitted statement
        if isinstance(code, K.Ref) and code.name in self.defs:
            if code.name in self.all_steps:
                return True
            # (in the first step the index is a Python number, whose uses are not tracked: only
            # what was hoisted is known not to depend on it)
            return not (code.name in self.state or code.name in self.varying or self.t is None)
        return True

    def in_step(self, b) -> bool:
        """Not under a branch, a loop, a condition or a mask made in the step (what applies
        only there)."""
        return b.block is self.base_block and b.order == self.base_order and b.row_masks == self.base_masks \
            and len(b.guards) == len(self.base_guards) and all(g is h for g, h in zip(b.guards, self.base_guards))

    def free(self, b, e) -> bool:
        """e reads no member of the recurrence and nothing that depends on its state."""
        _, member, names = self.info(e)
        if member:
            return False
        for name in names:
            v = b.env.get(name)
            if v is None or not self.usable(v):
                return False
        return True

    def candidate(self, b, e) -> bool:
        if isinstance(e, (ir.Lit, ir.Var, ir.Iota, ir.Lambda, ir.Tuple)):
            return False
        # Not a primitive whose derivative may be undefined (sqrt, log, a division): a step no one
        # reads would hand its all-steps value a zero gradient, and 0 * NaN is NaN where the
        # step alone passes nothing back (its reads and calls are still hoisted on their own).
        return (self.info(e)[0] and self.in_step(b) and self.free(b, e)
                and not may_have_undefined_derivative(e, calls=False))

    def translate_now(self, b, v: Val) -> Val | None:
        """translate outside an all-steps evaluation (copies go straight before the loop)."""
        self.pending = []
        try:
            out = self.translate(b, v)
        except NotHoistable:
            return None
        self.block.extend(self.pending)
        return out

    # ---- values of the step, before the loop ------------------------------------------------
    def translate(self, b, v: Val) -> Val:
        """A value the step computed, as hoisted code reads it (raises NotHoistable)."""
        if v.what == "lambda":
            raise NotHoistable
        if v.what == "tuple":
            return Val(None, what="tuple", info=tuple(self.translate(b, x) for x in v.info))
        code = v.code
        if not (isinstance(code, K.Ref) and code.name in self.defs):
            return v
        if code.name in self.all_steps:
            return self.all_steps[code.name]
        if code.name in self.state or code.name in self.varying or self.t is None:
            raise NotHoistable
        return Val(K.Ref(self.copy(b, code.name)), v.axes, v.rank, v.kind, v.python, v.what, v.info)

    def _key(self, a):
        if isinstance(a, K.Ref):
            s = self.defs.get(a.name)
            if s is None:
                return a.name
            return (s.op, self._key(s.args), repr(sorted(s.attrs.items())))
        if isinstance(a, tuple):
            return tuple(self._key(x) for x in a)
        return a

    def copy(self, b, name: str) -> str:
        """A copy, before the loop, of what the step defined without depending on the step."""
        key = self._key(K.Ref(name))
        done = self.copies.get(key)
        if done is not None:
            return done
        s = self.defs[name]
        args = self._copy_args(b, s.args)
        new = b.ns.create(name)
        self.pending.append(K.Assign(new, s.op, args, dict(s.attrs), s.line))
        self.copies[key] = new
        return new

    def _copy_args(self, b, a):
        if isinstance(a, K.Ref) and a.name in self.defs:
            if a.name in self.state or a.name in self.varying:
                raise NotHoistable
            return K.Ref(self.copy(b, a.name))
        if isinstance(a, tuple):
            return tuple(self._copy_args(b, x) for x in a)
        return a


def _canonical(block: list):
    """The hoisted code with its own names numbered (the same code made twice compares equal)."""
    own: dict[str, int] = {}
    out = []

    def arg(a):
        if isinstance(a, K.Ref):
            return ("#", own[a.name]) if a.name in own else a.name
        if isinstance(a, tuple):
            return tuple(arg(x) for x in a)
        return a

    for s in block:
        if not isinstance(s, K.Assign):
            return None
        out.append((s.op, arg(s.args), repr(sorted(s.attrs.items()))))
        if s.out is not None:
            own[s.out] = len(own)
    return tuple(out)


def evaluate_all_steps(b, e) -> Val | None:
    """e evaluated with the sequence axis open as a vector axis, its code added before the
    loop; None (nothing changed) where e reads the recurrence's state after all."""
    return all_steps(b, lambda: b.ev(e))


def all_steps(b, make) -> Val | None:
    """make() run with the sequence axis open as a vector axis, the code it emits added before
    the loop (once: the same code made again gives the first one's value); None where it
    raises (nothing is added then)."""
    h = b.hoists[-1]
    name = h.axis.name
    saved = (b.block, dict(b.sizes), dict(b.static_axes), b.iotas.get(name), dict(h.copies))
    scratch: list = []
    h.pending = []
    h.vector = True
    b.block = scratch
    b.order.append(name)
    b.sizes[name] = h.n
    b.static_axes[name] = (h.lo, h.n)
    b.iotas[name] = h.iota
    try:
        v = make()
        ok = v.what != "lambda" and v.what != "tuple"
    except Exception:  # noqa: BLE001 - anything the step's own evaluation would meet again
        ok = False
    finally:
        h.vector = False
        b.block = saved[0]
        b.order.remove(name)
        b.sizes.clear()
        b.sizes.update(saved[1])
        b.static_axes.clear()
        b.static_axes.update(saved[2])
        if saved[3] is None:
            b.iotas.pop(name, None)
        else:
            b.iotas[name] = saved[3]
    if not ok:
        h.copies = saved[4]
        return None
    key = _canonical(h.pending + scratch)
    found = h.done.get(key) if key is not None else None
    if found is not None:
        h.copies = saved[4]
        return found
    h.block.extend(h.pending)
    h.block.extend(scratch)
    if key is not None:
        h.done[key] = v
    return v


def per_step(b, v: Val) -> Val:
    """The current step's element of an all-steps value (the value itself when it does not
    vary with the step)."""
    h = b.hoists[-1]
    name = h.axis.name
    if not v.is_tensor or v.python or name not in v.axes:
        return v
    steps = h.unbound.get(v.code.name) if isinstance(v.code, K.Ref) else None
    if steps is None:
        with b.into(h.block):
            steps = b.emit("unbind", v.code, v.axes.index(name), hint=name + "_steps")
        h.unbound[v.code.name] = steps
    k = b.emit("sub", K.Ref(h.t), h.lo, hint="k", py=True)
    out = b.emit("step_item", steps, k, hint="x_t")
    h.all_steps[out.name] = v
    return Val(out, tuple(a for a in v.axes if a != name), v.rank, v.kind)


def try_hoist(b, e) -> Val | None:
    h = b.hoists[-1]
    if h.vector or b.probing or h.t is None or not h.candidate(b, e):
        return None
    v = evaluate_all_steps(b, e)
    return None if v is None else per_step(b, v)


