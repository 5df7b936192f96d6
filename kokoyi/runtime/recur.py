"""Kernels of recurrences (kokoyi/compiler/batch/sequences.py, hoist.py, fuse.py).

A recurrence keeps its elements in a Python list while its loop runs. An element read after
the loop (`h[|x|-1]`) is read from that list, so the elements are stacked only where the
whole sequence is read. Products of one value with several matrices in a loop's step are
one product with the matrices concatenated (once per call, before the loop: gradients flow
back to each matrix through the concatenation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kokoyi.runtime.ops import _LINEAR, _plain, linear_layer
from kokoyi.runtime.reads import _applies, _out_of_range


def read_states(states: list, k: int, where: str, name: str, guards, sizes, rank: int, floating: bool, dtype,
                chained: bool = False):
    """Element k of a finished recurrence (what reading its stacked elements at k gives,
    gradients included: the other elements get a zero gradient, without the stack's copy).
    `chained`: the compiler proved that each element is an ancestor of the next in the autograd
    graph (compiler/batch/sequences.py `_chained`), so the last element, read as it is, hands
    every other one a gradient already: the zeros would add nothing."""
    n = len(states)
    if -n <= k < n:
        if chained and k % n == n - 1:
            return states[k]
        if n > 1 and torch.is_grad_enabled() and any(s.requires_grad for s in states):
            return _OneOfAll.apply(k % n, *states)
        return states[k]
    if _applies(guards):
        raise _out_of_range(where, name, k, n)
    if n:
        return states[0]
    return torch.zeros(tuple(sizes) + (0,) * rank, dtype=dtype if floating else torch.int64)


class _OneOfAll(torch.autograd.Function):
    """states[k], handing every other state a zero gradient, as reading the stack would: a
    finished recurrence's elements are one value (its steps' values are computed together,
    before the loop, so an element no one reads is part of the computation all the same:
    docs/reference/choices.md#gradients-through-cases)."""

    @staticmethod
    def forward(ctx, k, *states):
        ctx.k, ctx.shapes = k, [s.shape for s in states]
        return states[k].clone()

    @staticmethod
    def backward(ctx, grad):
        zero = grad.new_zeros(())
        return (None,) + tuple(grad if i == ctx.k else zero.expand(shape) for i, shape in enumerate(ctx.shapes))


class Fused:
    """Matrices with the same columns stacked into one (once per call, before a loop whose
    steps multiply one value by each), with their biases (or None) and their numbers of rows.
    Gradients reach each matrix through the concatenation."""

    __slots__ = ("w", "b", "sizes", "wt", "rows", "runs", "parts")

    def __init__(self, w, b, sizes, parts=None) -> None:
        if w is not None:  # (None: the matrices in `parts` stacked on first use, __getattr__)
            self.w = w
        self.b, self.sizes = b, sizes
        self.parts = parts  # (the matrices and biases stacked, or None: lstm_sequence restacks them in its order)
        self.wt = None  # w transposed, made on first use (a view and an autograd node: not for one product)
        self.rows = sum(sizes)  # (w's rows: the matrices stacked)
        self.runs: dict = {}  # plan -> _runs(sizes, plan): looked up once per step, so kept here

    def __getattr__(self, name):
        """w where it was not given: the matrices stacked now, once (called only while the slot
        is unset; lstm_sequence, which stacks them in its own order, never reads it)."""
        if name != "w" or self.parts is None:
            raise AttributeError(name)
        w = self.w = torch.cat(self.parts[0], 0)
        return w

    def product(self, x, q):
        """x @ w^T + b (+ q: a value per row, added inside the product), split into the parts."""
        return self.whole(x, q).split_with_sizes(self.sizes, -1)

    def whole(self, x, q, biased: bool = False):
        """x @ w^T + b (+ q: a value per row, added inside the product: one addmm; `biased`:
        q already holds b, steps_cat added it once for all steps)."""
        b = None if biased else self.b
        if q is not None and x.dim() == 2 and q.dim() == 2 and q.shape[1] == self.rows and q.shape[0] == x.shape[0]:
            wt = self.wt
            if wt is None:
                wt = self.wt = self.w.t()
            out = torch.addmm(q, x, wt)
            return out if b is None else out + b
        out = F.linear(x, self.w, b)
        return out if q is None else out + q


def fuse_rows(ws) -> Fused:
    """Matrices with the same columns stacked (once per call, before a loop), on first use of
    the stacked matrix (Fused.w): an LSTM run by lstm_sequence reads the matrices themselves."""
    return Fused(None, None, [w.shape[0] for w in ws], (tuple(ws), None))


def fuse_layers(layers) -> Fused | None:
    """The weights and biases of torch.nn.Linear layers stacked (None unless every one is a
    plain layer with a bias: kk.linear_layer's rule, hooks run per call)."""
    ws, bs = [], []
    for layer in layers:
        if not _plain(layer, _LINEAR):  # (linear_layer's rule)
            return None
        w, b = layer._parameters.get("weight"), layer._parameters.get("bias")
        if not (isinstance(w, torch.Tensor) and isinstance(b, torch.Tensor)):
            return None
        ws.append(w)
        bs.append(b)
    return Fused(torch.cat(ws, 0), torch.cat(bs, 0), [w.shape[0] for w in ws], (ws, bs))


def steps_cat(values, dim: int, fused: Fused | None):
    """The values (None: zeros) concatenated along their last axis, plus the fused layers'
    biases (once for all steps, not once per step), and unbound along `dim`: the per-step terms
    a fused product adds, bias included (None where they do not line up). A part with no
    terms (a GRU's candidate gate, whose input term is added after the reset gate's product)
    is an expanded zero, not a block of zeros."""
    if fused is None:
        return None
    # compared in a list, not a set: under torch.export the sizes are SymInts, not hashable
    leads = [v.shape[:-1] for v in values if v is not None]
    if not leads or any(s != leads[0] for s in leads[1:]):
        return None
    lead = leads[0]
    like = next(v for v in values if v is not None)
    zero = like.new_zeros(())  # a part without terms reads zeros: one element, expanded (no block written)
    parts = [zero.expand(lead + (n,)) if v is None else v for v, n in zip(values, fused.sizes)]
    if any(p.shape[-1] != n for p, n in zip(parts, fused.sizes)):
        return None
    whole = torch.cat(parts, -1)
    if fused.b is not None:
        # the biases added in place: the concatenation is a new tensor no one else reads, and
        # its backward keeps nothing (one block of all the steps written once, not twice); of
        # another dtype, out of place (it may promote). (Not torch.result_type: a graph break
        # under torch.compile.)
        whole = whole.add_(fused.b) if fused.b.dtype == whole.dtype else whole + fused.b
    return whole.unbind(dim)


def fused_product(x, fused: Fused | None, ms, steps=None, k=0, qs=None, plan=()) -> tuple:
    """x times each matrix of ms (F.linear) or through each layer, as one product split into
    views; with `steps`, plus steps[k] (the concatenation of the terms qs added to each part:
    None for a part that has none); then each part through its activation in `plan`
    (torch.sigmoid, torch.tanh or None), consecutive parts with the same one at once."""
    if fused is not None and (qs is None or steps is not None):
        whole = fused.whole(x, None) if steps is None else fused.whole(x, steps[k], biased=True)
        return _activated(whole, fused, plan)
    if fused is not None:
        outs = fused.product(x, None)
    else:
        outs = tuple(F.linear(x, m) if isinstance(m, torch.Tensor) else linear_layer(m, x) for m in ms)
    if qs is not None:
        outs = tuple(o if q is None else o + q for o, q in zip(outs, qs))
    return tuple(o if a is None else getattr(torch, a)(o) for o, a in zip(outs, plan or (None,) * len(outs)))


_RUNS: dict = {}  # (sizes, plan) -> [(activation or None, the run's size, its parts' sizes or None)]


def _runs(sizes, plan) -> list:
    """The runs of consecutive parts with the same activation (computed once per layout: a
    step's Python work is part of its cost)."""
    key = (tuple(sizes), plan)
    runs = _RUNS.get(key)
    if runs is None:
        groups: list = []  # [activation, [sizes]]
        for n, a in zip(sizes, plan):
            if groups and a is not None and groups[-1][0] == a:
                groups[-1][1].append(n)
            else:
                groups.append([a, [n]])
        runs = _RUNS[key] = [(None if a is None else getattr(torch, a), sum(ns), ns if len(ns) > 1 else None)
                             for a, ns in groups]
    return runs


def _activated(whole, fused: Fused, plan) -> tuple:
    """whole's parts (fused's sizes), each through its activation in `plan` (or none)."""
    runs = fused.runs.get(plan)
    if runs is None:
        runs = fused.runs[plan] = _runs(fused.sizes, plan) if any(plan) else ()
    return _activate(whole, runs) if runs else whole.split_with_sizes(fused.sizes, -1)


def _activate(whole, runs) -> tuple:
    """whole's parts (along the last axis), each run of consecutive parts with the same
    activation (`_runs`) passed through it in one call."""
    chunks = whole.split_with_sizes([n for _, n, _ in runs], -1) if len(runs) > 1 else (whole,)
    out: list = []
    for chunk, (act, _, ns) in zip(chunks, runs):
        if act is not None:
            chunk = act(chunk)
        if ns is None:
            out.append(chunk)
        else:
            out.extend(chunk.split_with_sizes(ns, -1))
    return tuple(out)


class Projected:
    """The input's block of a fused product over the concatenation of a state and a step's
    input (kokoyi/compiler/batch/project.py): the inputs of every step times their columns of
    the stacked matrices (plus the biases), one row per step, and the state's columns."""

    __slots__ = ("steps", "wh", "wht", "at")

    def __init__(self, steps, wh, at: int) -> None:
        self.steps, self.wh, self.wht, self.at = steps, wh, wh.t(), at


def project_steps(fused: Fused | None, xs, dim: int, at: int, axis: int) -> Projected | None:
    """xs (the inputs of all steps, unbound along dim: part `at` of each step's concatenation
    along `axis`) times their block of fused's columns, once; None where the step must
    concatenate (then projected_product does as fused_product did)."""
    if fused is None or not isinstance(xs, torch.Tensor) or xs.dim() < 2 or fused.w.dim() != 2:
        return None
    d = xs.dim()
    if dim % d == d - 1 or axis not in (d - 2, -1) or xs.dtype != fused.w.dtype or not xs.is_floating_point():
        return None  # the concatenation is not along the inputs' last axis, or it would promote
    n, cols = xs.shape[-1], fused.w.shape[1]
    if n >= cols:
        return None
    wx, wh = (fused.w[:, :n], fused.w[:, n:]) if at == 0 else (fused.w[:, cols - n:], fused.w[:, :cols - n])
    return Projected(F.linear(xs, wx, fused.b).unbind(dim), wh, at)


def projected_product(proj: Projected | None, k, parts: tuple, axis: int, fused, ms, plan) -> tuple:
    """fused_product of torch.cat(parts, axis), the input's block read from proj (its row k):
    one addmm of the state with its columns."""
    if proj is not None:
        h, q = parts[1 - proj.at], proj.steps[k]
        if h.shape[:-1] == q.shape[:-1] and h.shape[-1] == proj.wh.shape[1] and h.dtype == q.dtype:
            whole = torch.addmm(q, h, proj.wht) if h.dim() == 2 else F.linear(h, proj.wh) + q
            return _activated(whole, fused, plan)
    return fused_product(torch.cat(parts, axis), fused, ms, plan=plan)



_TORCH_ORDER = "ifgo"  # torch.nn.LSTM's gates: input, forget, cell, output


def lstm_sequence(fused: Fused | None, xs, dim: int, at: int, axis: int, roles: tuple, h_list: list,
                  c_list: list, start: int, stop: int, held: int | None = None) -> bool:
    """The steps start..stop-1 of a loop whose step is an LSTM cell (kokoyi/compiler/batch/lstm.py),
    run as torch's LSTM over xs (the inputs of those steps, along dim: part `at` of each step's
    concatenation with h) from the last elements of h_list and c_list: appends each step's h to
    h_list and returns False; or returns True, nothing done, where the loop must run (no single
    batch axis, other shapes or dtypes, tracing). c_list is read by nothing after the loop. The
    lists hold `held` elements when the loop starts (start; start + 1 where they are headed by
    the initial elements, kokoyi/compiler/batch/initial.py)."""
    held = start if held is None else held
    if fused is None or not isinstance(xs, torch.Tensor) or xs.dim() != 3 or dim not in (0, 1) \
            or axis not in (1, -1) or len(h_list) != held or len(c_list) != held \
            or xs.shape[dim] != stop - start or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return True
    # the matrices themselves where the Fused has them (its stacked matrix is then not made)
    ms = fused.parts[0] if fused.parts is not None else (fused.w,)
    h, c, m = h_list[-1], c_list[-1], ms[0]
    if any(not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[1] != m.shape[1] or w.dtype != m.dtype
           for w in ms):
        return True
    batch, n, rows, cols = xs.shape[1 - dim], xs.shape[-1], sum(w.shape[0] for w in ms), m.shape[1]
    hidden = rows // 4
    if not (isinstance(h, torch.Tensor) and isinstance(c, torch.Tensor)) or h.shape != (batch, hidden) \
            or c.shape != (batch, hidden) or 4 * hidden != rows or hidden + n != cols \
            or not (xs.dtype == m.dtype == h.dtype == c.dtype) or xs.dtype not in (torch.float32, torch.float64) \
            or sorted(roles) != sorted(_TORCH_ORDER):
        return True
    order = [roles.index(r) for r in _TORCH_ORDER]
    restack = fused.parts is not None and len(ms) == 4 and order != [0, 1, 2, 3]  # (four matrices, one a gate)
    w, b = None if restack else fused.w, fused.b
    if restack:
        # the matrices stacked again in torch's order: a copy whose backward hands each matrix its
        # rows of the gradient, not a gather of the stacked rows and its scatter into zeros
        w = torch.cat([ms[k] for k in order], 0)
        b = b if b is None else torch.cat([fused.parts[1][k] for k in order], 0)
    elif order != [0, 1, 2, 3]:  # one stacked matrix: its gates' rows gathered
        w = w.view(4, hidden, cols)[order].reshape(rows, cols)
        b = b if b is None else b.view(4, hidden)[order].reshape(rows)
    wx, wh = (w[:, :n], w[:, n:]) if at == 0 else (w[:, hidden:], w[:, :hidden])
    params = (wx, wh) if b is None else (wx, wh, b, torch.zeros_like(b))
    out = torch._VF.lstm(xs, (h.unsqueeze(0), c.unsqueeze(0)), params, b is not None, 1, 0.0, False,
                         False, dim == 1)[0]
    steps = out.unbind(dim)
    if steps:
        # the steps are `out` itself: kx.stack_states takes it rather than stacking them again
        # (the others are kept on the last one, which they do not reference: no cycle)
        steps[-1]._kokoyi_steps = (out, dim, steps[:-1])
    h_list.extend(steps)
    return False


def restacked(states: list, dim: int, run):
    """torch.stack(states, dim) where states ends with the steps of one tensor unbound along
    dim (`run`, kept on the last of them by lstm_sequence: the tensor, dim, the steps before
    the last); None where the list's tail is not those very steps, in order."""
    whole, along, before = run
    n = len(before) + 1
    if along != dim or len(states) < n or any(a is not b for a, b in zip(states[len(states) - n:], before)):
        return None
    if len(states) == n:
        return whole
    return torch.cat((torch.stack(states[:len(states) - n], dim), whole), dim)
