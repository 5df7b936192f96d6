"""Discounted suffix sums: G_t = sum_{s >= t} gamma^(s-t) r_s in O(T) work, exactly
(`kk.discounted_window`, what the discounted-scan rewrite computes)."""
from __future__ import annotations

import math

import torch

# (ops imports this module after defining these two, so the cycle resolves)
from kokoyi.runtime.ops import _float, _where_error

# G_t = sum_{s >= t} gamma^(s-t) r_s, computed by whichever exact method is fastest for the
# size (figures in docs/performance.md, measured on one CPU thread):
# * short sequences: one product with a cached upper-triangular matrix of powers;
# * 0 < gamma <= 1: the closed form sum_{s>=t} gamma^s r_s / gamma^t, accumulated from the end,
#   in r's own precision while gamma^-T stays far inside its range (float32: e^70), then in
#   float64 (e^600); measured against a float64 loop its relative error is about 1e-7 in
#   float32 at every length tried (ops_test checks each regime);
# * beyond that, or for other gammas, a chunked scan whose powers never overflow.
MATRIX_MAX_T = 256  # the matrix product wins up to about here ...
MATRIX_MAX_VALUES = 4096  # ... when the whole input is small (it is O(T^2) work per sequence)
CLOSED_FORM_RANGE = {torch.float32: 70.0, torch.float64: 600.0}  # largest (T-1) * -ln(gamma)


def discounted_suffix_sum(r, gamma, axis: int):
    """G_t = sum_{s >= t} gamma^(s-t) r_s along `axis`, in O(T) work (short sequences: one
    small matrix product), without overflow at any length."""
    if not (isinstance(r, torch.Tensor) and r.is_floating_point()):
        r = _float(r)
    if not isinstance(gamma, torch.Tensor):
        gamma = float(gamma)
    if axis in (-1, r.dim() - 1):
        return _suffix_last(r, gamma)
    return _suffix_last(r.movedim(axis, -1), gamma).movedim(-1, axis)


def _suffix_last(r, gamma):
    T = r.shape[-1]
    if T == 0:
        return r
    if T <= MATRIX_MAX_T and r.numel() <= MATRIX_MAX_VALUES and _matrix_is_exact(gamma, T):
        if r.dim() == 1:
            return torch.mv(_discount_matrix(T, gamma, r, transposed=True), r)
        return r @ _discount_matrix(T, gamma, r)
    if not isinstance(gamma, torch.Tensor) and 0 < gamma <= 1:
        exponent = (T - 1) * -math.log(gamma)
        for dtype in (r.dtype, torch.float64):
            if exponent < CLOSED_FORM_RANGE.get(dtype, -1.0):
                up, down = _powers(T, gamma, dtype, r.device)
                suffix = torch.flip(torch.cumsum(torch.flip(r * up, (-1,)), -1), (-1,))
                return (suffix * down).to(r.dtype)
    return _chunked_scan(r, gamma)


def _chunked_scan(r, gamma):
    """The sequence cut into chunks: inside a chunk G is a product with an upper-triangular
    matrix of powers (all exponents >= 0, so nothing overflows), and the chunks are joined by
    the same recurrence one level up with discount gamma^C."""
    T = r.shape[-1]
    C = _chunk(gamma)
    if T <= C:
        return r @ _discount_matrix(T, gamma, r)
    n = -(-T // C)
    pad = n * C - T
    rp = torch.nn.functional.pad(r, (0, pad)) if pad else r
    chunks = rp.reshape(r.shape[:-1] + (n, C))
    local = chunks @ _discount_matrix(C, gamma, r)  # suffix sums inside each chunk
    # Value at the first element of each chunk, including everything after it.
    firsts = _suffix_last(local[..., 0], gamma ** C)
    # Carry into chunk k: firsts of chunk k+1, discounted to each position.
    carry = torch.nn.functional.pad(firsts[..., 1:], (0, 1))
    out = local + carry[..., None] * _carry_powers(C, gamma, r)
    return out.reshape(r.shape[:-1] + (n * C,))[..., :T]


def _gamma_value(gamma) -> float:
    """gamma as a Python float, to pick a method (a tensor gamma keeps its gradient elsewhere)."""
    return float(gamma.detach()) if isinstance(gamma, torch.Tensor) else float(gamma)


def _chunk(gamma) -> int:
    g = _gamma_value(gamma)
    if g <= 0 or g >= 1:
        return 64
    # Keep gamma^C above ~1e-30 so powers stay normal floats.
    return int(max(2, min(64, math.floor(69.0 / -math.log(g)))))


def _powers(T, gamma, dtype, device):
    """(gamma^t, gamma^-t) for t < T, computed in float64, cached in `dtype`."""
    key = ("powers", T, gamma, dtype, device)
    got = _DISCOUNT_CACHE.get(key)
    if got is None:
        t = torch.arange(T, dtype=torch.float64, device=device)
        got = _cache_put(key, ((gamma ** t).to(dtype), (gamma ** -t).to(dtype)))
    return got


def _carry_powers(C, gamma, like):
    """gamma^C, gamma^(C-1), ..., gamma^1: the discount from each position to the next chunk."""
    if isinstance(gamma, torch.Tensor):
        return gamma ** torch.arange(C, 0, -1, dtype=like.dtype, device=like.device)
    key = ("carry", C, gamma, like.dtype, like.device)
    got = _DISCOUNT_CACHE.get(key)
    if got is None:
        got = _cache_put(key, gamma ** torch.arange(C, 0, -1, dtype=like.dtype, device=like.device))
    return got


def _matrix_is_exact(gamma, T) -> bool:
    """A T x T matrix of powers gamma^k (k < T) is fine while the powers stay normal floats."""
    g = _gamma_value(gamma)
    if g == 1:
        return True
    return 0 < g < 1 and (T - 1) * -math.log(g) < 80


_DISCOUNT_CACHE: dict = {}


def _cache_put(key, value):
    if len(_DISCOUNT_CACHE) > 64:
        _DISCOUNT_CACHE.clear()
    _DISCOUNT_CACHE[key] = value
    return value


def _discount_matrix(C, gamma, like, transposed: bool = False):
    """M[s, t] = gamma^(s-t) for s >= t, else 0, so that (r @ M)[t] = sum_{s>=t} gamma^(s-t) r[s]
    (transposed: M.T, contiguous, for torch.mv)."""
    if isinstance(gamma, torch.Tensor):
        m = _build_discount(C, gamma, like)
        return m.t() if transposed else m
    key = (C, float(gamma), like.dtype, like.device, transposed)
    m = _DISCOUNT_CACHE.get(key)
    if m is None:
        m = _build_discount(C, gamma, like)
        m = _cache_put(key, m.t().contiguous() if transposed else m)
    return m


def _build_discount(C, gamma, like):
    i = torch.arange(C, device=like.device)
    e = (i[:, None] - i[None, :]).to(like.dtype)
    base = gamma if isinstance(gamma, torch.Tensor) else torch.tensor(gamma, dtype=like.dtype, device=like.device)
    return torch.where(e >= 0, base ** e.clamp(min=0), torch.zeros((), dtype=like.dtype, device=like.device))


def discounted_window(r, gamma, axis, lo, hi, last, offset, where_):
    """G_t = sum_{s=t}^{S} gamma^(s-t) r[s] for t = lo..hi, with S = last + offset."""
    S = int(last) + int(offset)
    size = r.shape[axis]
    if lo == 0 and hi == S == size - 1:  # the whole sequence: the common case
        return discounted_suffix_sum(r, gamma, axis)
    if S >= size:
        raise _where_error(where_, f"index {S} out of range for an axis of length {size}")
    if lo < 0 and hi >= lo:
        raise _where_error(where_, f"index {lo} out of range: the sum starts before the first element")
    n = max(hi - lo + 1, 0)
    if S < 0:
        shape = list(r.shape)
        shape[axis] = n
        return torch.zeros(shape, dtype=_float(r).dtype, device=r.device)
    G = discounted_suffix_sum(r.narrow(axis, 0, S + 1), gamma, axis)
    if lo == 0 and hi == S:
        return G
    top = min(hi, S)
    part = G.narrow(axis, lo, max(top - lo + 1, 0)) if top >= lo else G.narrow(axis, 0, 0)
    missing = n - part.shape[axis]
    if missing > 0:
        shape = list(part.shape)
        shape[axis] = missing
        part = torch.cat([part, torch.zeros(shape, dtype=part.dtype, device=part.device)], dim=axis)
    return part
