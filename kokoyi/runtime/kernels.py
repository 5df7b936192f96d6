"""Run-time kernels of batched code printed by kokoyi.compiler.emit.torch_eager (`kx.*`).

Layout convention (kokoyi.compiler.batch.layout): a tensor's leading dimensions are its
named axes (batch and loop axes, size 1 where it does not vary), then its per-sample
dimensions. Guards are Python truth values or bool tensors lined up with the leading axes:
an index is checked only where all of them hold (LANGUAGE.md 5).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kokoyi.errors import KokoyiRuntimeError
from kokoyi.runtime.factors import multiply_along
from kokoyi.runtime.linalg import inverse, solve, solve_vector  # noqa: F401  (kx.…)
from kokoyi.runtime.products import causal_attention, matmul_rows, matmul_rows_t, matmul_summed  # noqa: F401  (kx.…)
from kokoyi.runtime.reads import (  # noqa: F401  (kx.…)
    _applies, _error, _live, _out_of_range, affine_range, check_static, gather, read_indices, read_static, window_views)


# ---- layouts --------------------------------------------------------------------------------
def expand_lead(x, sizes, rank: int):
    """x broadcast to the full sizes of its leading axes (a view)."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    want = len(sizes) + rank
    if x.dim() < want:
        x = x.reshape((1,) * (want - x.dim()) + tuple(x.shape))
    return x.expand(tuple(sizes) + tuple(x.shape[len(sizes):]))


def max_size(lo, hi) -> int:
    """The size of a loop axis whose bounds vary: the longest range (0 when all are empty)."""
    n = hi - lo + 1
    if isinstance(n, torch.Tensor):
        return max(int(n.max()), 0) if n.numel() else 0
    return max(n, 0)


def iota_from(lo, n: int, lead: int, device):
    """lo + 0, 1, ..., n-1 on a new last axis (lo lined up with the `lead` outer axes)."""
    r = torch.arange(n, device=device)
    if isinstance(lo, torch.Tensor):
        return lo.unsqueeze(-1) + r
    return (r + lo).reshape((1,) * lead + (n,))


def true_divide(a, b) -> float:
    """a / b of Python numbers, as a float tensor would give it (x / 0 is inf or nan, not
    ZeroDivisionError)."""
    try:
        return a / b
    except ZeroDivisionError:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)


def number_tensor(x, dtype, device):
    """A Python number as a tensor: an int an integer, a float (2^k with k < 0) in the module's dtype."""
    return torch.tensor(x, dtype=torch.int64 if isinstance(x, int) and not isinstance(x, bool) else
                        torch.bool if isinstance(x, bool) else dtype, device=device)


def floor_number(x) -> int:
    """\\lfloor x \\rfloor of a Python number, an integer; of NaN or an infinity what a tensor's
    floor gives as an integer (not Python's ValueError)."""
    return math.floor(x) if math.isfinite(x) else int(torch.tensor(float(x)).floor().long())


def ceil_number(x) -> int:
    return math.ceil(x) if math.isfinite(x) else int(torch.tensor(float(x)).ceil().long())


def floor_to_int(x):
    return torch.floor(x).long() if x.is_floating_point() else x


def ceil_to_int(x):
    return torch.ceil(x).long() if x.is_floating_point() else x


def clamp(x, lo, hi):
    return torch.clamp(x, lo, hi)


# ---- loops ----------------------------------------------------------------------------------
def _fill_value(value, dtype):
    if value in ("inf", "-inf"):
        if dtype.is_floating_point:
            return math.inf if value == "inf" else -math.inf
        info = torch.iinfo(dtype) if dtype != torch.bool else None
        return (value == "inf") if info is None else (info.max if value == "inf" else info.min)
    return value


def reduce_axis(op: str, x, pos: int, mask, fill, lo):
    """A big operator over loop axis `pos` of x (mask: where the range holds, or None)."""
    if x.shape[pos] == 0 and op in ("sum", "prod"):  # an empty range computes nothing: no gradient flows
        shape = x.shape[:pos] + x.shape[pos + 1:]
        return (torch.zeros if op == "sum" else torch.ones)(shape, dtype=x.dtype, device=x.device)
    if mask is not None:
        x = torch.where(mask, x, torch.tensor(_fill_value(fill, x.dtype), dtype=x.dtype, device=x.device))
    if op == "sum":
        return x.sum(pos)
    if op == "prod":
        return multiply_along(x, pos)
    if op == "mean":
        count = mask.sum(pos) if mask is not None else x.shape[pos]
        return x.sum(pos) / count
    if x.shape[pos] == 0:  # evaluated nowhere (require_nonempty checked): any value will do
        shape = x.shape[:pos] + x.shape[pos + 1:]
        return torch.zeros(shape, dtype=torch.int64 if op.startswith("arg") else x.dtype, device=x.device)
    if op == "max":
        return x.amax(pos)
    if op == "min":
        return x.amin(pos)
    index = x.argmax(pos) if op == "argmax" else x.argmin(pos)
    return index + lo


def nonempty_last(x) -> None:
    """What an unused `x.amax(-1)` checks (kokoyi/compiler/batch/cleanup.py): its axis is not empty."""
    if x.dim() and x.shape[-1] == 0:
        raise IndexError("amax(): Expected reduction dim -1 to have non-zero size.")


def require_nonempty(n: int, mask, pos: int, rank: int, where: str, what: str, guards) -> None:
    """The located error where a \\max, \\argmax or \\mathbb{E} is evaluated over an empty range."""
    live = _live(guards)
    if live is False:
        return
    if mask is None:
        if n > 0:
            return
        if live is True or bool(live.any()):
            raise _error(where, f"{what} over an empty range")
        return
    empty = ~mask.any(pos, keepdim=True)
    bad = empty if live is True else empty & live
    if bool(bad.any()):
        raise _error(where, f"{what} over an empty range")


def any_over(g, dims):
    for d in sorted(dims, reverse=True):
        g = g.any(d)
    return g


def list_item(items, i: int, n: int, where: str, name: str):
    if not -n <= i < n:
        raise _out_of_range(where, name, i, n)
    return items[i]


# ---- cases and recurrences ----------------------------------------------------------------
def no_row(guards, where: str) -> None:
    if _applies(guards):
        raise _error(where, "no row of the cases applies")


def _no_element(where: str, k: int) -> KokoyiRuntimeError:
    return _error(where, f"the recurrence reads element {k}, which does not exist "
                         "(add a base case with cases on the index)")


def earlier_element(states: list, k: int, where: str, guards):
    """Element k of a recurrence computed so far (never a wrapped negative index)."""
    if 0 <= k < len(states):
        return states[k]
    if _applies(guards) or not states:
        raise _no_element(where, k)
    return torch.zeros_like(states[0])


def no_earlier(k: int, where: str, guards) -> None:
    """A read in a recurrence's first step, which has no earlier element: an error where it applies."""
    if _applies(guards):
        raise _no_element(where, k)


def stack_states(states: list, dim: int, sizes, rank: int, floating: bool, dtype):
    if states:
        run = getattr(states[-1], "_kokoyi_steps", None)  # the steps of one tensor (recur.lstm_sequence)
        if run is not None:
            whole = restacked(states, dim, run)
            if whole is not None:
                return whole
        return torch.stack(states, dim)
    return torch.zeros(tuple(sizes) + (0,) * (rank + 1), dtype=dtype if floating else torch.int64)


# ---- per-sample products and reductions ---------------------------------------------------
def matmul_by_rank(a, b, ra: int, rb: int):
    if ra == 1 and rb == 1:
        return (a * b).sum(-1)
    if ra == 1:
        return (a.unsqueeze(-2) @ b).squeeze(-2)
    if rb == 1:
        return (a @ b.unsqueeze(-1)).squeeze(-1)
    return a @ b


_ORDERS = {None: 2, "1": 1, "2": 2, "inf": math.inf}


def population_std(x):
    """The population standard deviation along the last axis, from the deviations from the
    first element: equal elements give exactly 0 (the mean of equal floats need not be them),
    as on every path and in the reference, so the gradient at zero variance is
    torch's 0 everywhere rather than rounding noise divided by rounding noise."""
    return (x - x[..., :1]).std(-1, correction=0)


def trailing(op: str, x, rank: int, *extra):
    """A reduction over the last `rank` dimensions of x (softmax: along the last one)."""
    if op == "softmax":
        return torch.softmax(x, -1)
    if op == "log_softmax":
        return torch.log_softmax(x, -1)
    if op == "norm":
        if rank == 0:
            return torch.abs(x)
        return torch.linalg.vector_norm(x, ord=_ORDERS[extra[0] if extra else None], dim=tuple(range(-rank, 0)))
    if rank == 0:
        if op in ("reduce_argmax", "reduce_argmin"):
            return torch.zeros_like(x, dtype=torch.int64)
        if op in ("var", "std"):
            return torch.zeros_like(x)
        return x
    flat = x.flatten(x.dim() - rank)
    if op == "reduce_sum":
        return flat.sum(-1)
    if op == "reduce_prod":
        return multiply_along(flat, -1)
    if op == "reduce_max":
        return flat.amax(-1)
    if op == "reduce_min":
        return flat.amin(-1)
    if op == "reduce_argmax":
        return flat.argmax(-1)
    if op == "reduce_argmin":
        return flat.argmin(-1)
    if op == "mean":
        return flat.mean(-1)
    if op == "var":
        return flat.var(-1, correction=0)
    if op == "std":
        return population_std(flat)
    if op == "logsumexp":
        return flat.logsumexp(-1)
    raise ValueError(op)


def trailing2(op: str, a, b, rank: int):
    a, b = torch.broadcast_tensors(a, b)
    if op == "mse":
        d = (a - b) ** 2
    else:
        d = F.smooth_l1_loss(a, b, reduction="none")
    return d.flatten(d.dim() - rank).mean(-1) if rank else d


def matrix(entries, rows: int, cols: int, lead: int, dtype, device):
    """A matrix literal: the entries (lined up on the `lead` leading axes, a number broadcast)
    stacked row by row after the leading axes; one row or one column gives a vector."""
    ts = [e.to(dtype) if isinstance(e, torch.Tensor) else torch.tensor(e, dtype=dtype, device=device)
          for e in entries]
    out = torch.stack(torch.broadcast_tensors(*ts), dim=lead)
    return out.unflatten(lead, (rows, cols)) if rows > 1 and cols > 1 else out


# ---- recognised forms (kokoyi/compiler/rewrite/) ----------------------------------------------
def _flat_lead(x, lead: int, rest: int):
    """x with its `lead` leading axes flattened into one (a new one when there are none)."""
    if lead == 1:
        return x
    if lead == 0:
        return x.unsqueeze(0)
    return x.reshape((-1,) + tuple(x.shape[lead:]))


def pool2d(h, lead: int, kind: str, window, stride, uppers, where: str, name: str):
    """{ op_{a<k, b<l} h[c, s i + a, t j + b] }_{c, i, j} for c, i, j = 0..uppers: F.max_pool2d
    (or the window's sum or mean) of h (C, H, W) per sample, with the reads' range checked."""
    n = (uppers[0] + 1, uppers[1] + 1, uppers[2] + 1)  # (no generators: this runs on every call)
    if n[0] <= 0 or n[1] <= 0 or n[2] <= 0:
        return h.new_zeros(tuple(h.shape[:lead]) + tuple(max(k, 0) for k in n))
    full = h.shape  # (read once: each .shape makes a torch.Size)
    shape = full[lead:]
    reach = (n[0] - 1, stride[0] * (n[1] - 1) + window[0] - 1, stride[1] * (n[2] - 1) + window[1] - 1)
    if len(shape) < 3 or reach[0] >= shape[0] or reach[1] >= shape[1] or reach[2] >= shape[2]:
        for want, have in zip(reach, shape):
            if want >= have:
                raise _out_of_range(where, name, want, have)
    x = h if lead == 1 else _flat_lead(h, lead, 3)
    if n[0] < shape[0]:  # (a slice of the whole axis is another autograd node, for nothing)
        x = x[:, :n[0]]
    if kind == "max":
        out = torch.max_pool2d(x, window, stride)  # (F.max_pool2d's own call, without its two Python frames)
    else:
        out = F.avg_pool2d(x, window, stride)
        if kind == "sum":
            out = out * (window[0] * window[1])
    pooled = out.shape
    if n[1] < pooled[2] or n[2] < pooled[3]:
        out = out[:, :, :n[1], :n[2]]
        pooled = out.shape
    return out.reshape(tuple(full[:lead]) + tuple(pooled[1:])) if lead != 1 else out


def contract(v, x, rank: int, upper: int, where: str, name: str):
    """{ sum(v[k] * x) }_{k=0..upper}: x's per-sample part contracted with each slice of v
    (one matrix product when v[k] and x have one shape; else broadcast as written)."""
    if upper >= v.shape[0]:
        raise _out_of_range(where, name, upper, v.shape[0])
    vk = v[:upper + 1] if upper + 1 < v.shape[0] else v  # (the whole of v: no slice node)
    if tuple(vk.shape[1:]) == tuple(x.shape[x.dim() - rank:]):
        return F.linear(x.flatten(x.dim() - rank), vk.flatten(1))
    product = vk * x.unsqueeze(x.dim() - rank)
    return product.flatten(product.dim() - rank).sum(-1)


def contract_add(v, x, rank: int, upper: int, where: str, name: str, b):
    """contract(...) + b (kokoyi/compiler/batch/contract_bias.py): one F.linear with b as its
    bias when b is a vector of the result's length (dtype and device of the operands)."""
    v_shape = v.shape  # (each read once: each .shape makes a torch.Size)
    if upper >= v_shape[0]:
        raise _out_of_range(where, name, upper, v_shape[0])
    if upper + 1 < v_shape[0]:
        vk = v[:upper + 1]
        v_shape = vk.shape
    else:
        vk = v
    if isinstance(b, torch.Tensor):
        x_shape, b_shape = x.shape, b.shape
        first = len(x_shape) - rank
        if (len(b_shape) == 1 and b_shape[0] == v_shape[0] and b.dtype == x.dtype and vk.dtype == x.dtype
                and b.device == x.device and v_shape[1:] == x_shape[first:]):
            return F.linear(x.flatten(first), vk.flatten(1), b)
    return contract(v, x, rank, upper, where, name) + b


# ---- calls: kokoyi/runtime/calls.py ------------------------------------------------------------
from kokoyi.runtime.calls import OpaqueRank, call_each, call_flat, call_module, module_params  # noqa: E402,F401  (kx.…)

# ---- recurrences: kokoyi/runtime/recur.py ---------------------------------------------------
from kokoyi.runtime.recur import (  # noqa: E402,F401  (kx.…)
    fuse_layers, fuse_rows, fused_product, lstm_sequence, project_steps, projected_product, read_states, restacked,
    steps_cat)

# ---- losses: kokoyi/runtime/losses.py ----------------------------------------------------------------
from kokoyi.runtime.losses import (  # noqa: E402,F401  (kx.…)
    bce_logits, cross_entropy_reduced, cross_entropy_rows, huber_reduced, huber_rows)

# ---- values of sizes alone: kokoyi/runtime/statics.py ---------------------------------------------
from kokoyi.runtime.statics import static_values  # noqa: E402,F401  (kx.…)
