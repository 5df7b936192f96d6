"""Reads of generated code (re-exported by kokoyi.runtime.kernels as `kx.…`): indices checked
where the guards hold (LANGUAGE.md 5), gathers, window views, and the guard helpers the other
kernels share.

Guards are Python truth values or bool tensors lined up with the leading axes: an index is
checked only where all of them hold.
"""
from __future__ import annotations

import torch

from kokoyi.errors import KokoyiRuntimeError


def _error(where: str, message: str) -> KokoyiRuntimeError:
    return KokoyiRuntimeError(f"{where}: {message}")


def _live(guards):
    """True (everywhere), False (nowhere) or a bool tensor: where all the guards hold."""
    live = True
    for g in guards:
        if g is False:
            return False
        if g is True:
            continue
        live = g if live is True else live & g
    return live


def _applies(guards) -> bool:
    live = _live(guards)
    return live if isinstance(live, bool) else bool(live.any())


def _with_one_element(x, axis: int):
    """x with one zero appended along an empty axis (a clamped read then has an element)."""
    shape = list(x.shape)
    shape[axis] = 1
    return torch.cat([x, x.new_zeros(shape)], dim=axis)


def _out_of_range(where, name, index, size):
    return _error(where, f"index {index} is out of range for `{name}` (the axis has length {size})")


def read_static(x, lead: int, items: tuple, where: str, name: str, guards):
    """x[leading axes..., items...] with Python ints and slices."""
    index = [slice(None)] * lead
    axis = lead
    for item in items:
        if not isinstance(item, slice):
            size = x.shape[axis]
            if not -size <= item < size:
                if _applies(guards):
                    raise _out_of_range(where, name, item, size)
                if size == 0:
                    x = _with_one_element(x, axis)
                item = 0
        index.append(item)
        axis += 1
    return x[tuple(index)]


def check_static(x, lead: int, items: tuple, where: str, name: str, guards) -> None:
    """read_static's range check alone (a read taken only for its size)."""
    for axis, item in enumerate(items, start=lead):
        size = x.shape[axis]
        if not -size <= item < size and _applies(guards):
            raise _out_of_range(where, name, item, size)


def read_indices(x, items: tuple, where: str, name: str, guards):
    """x[items] with tensors of indices among the items (torch's advanced indexing), checked
    where the read applies (elsewhere out-of-range indices are clamped)."""
    index = []
    for axis, item in enumerate(items):
        if not isinstance(item, slice):
            size = x.shape[axis]
            item = _checked_indices(torch.as_tensor(item, device=x.device), size, where, name, guards)
            x = _with_one_element(x, axis) if size == 0 else x
        index.append(item)
    return x[tuple(index)]


def affine_range(const: int, terms: tuple):
    """(smallest, largest) of const + sum of coef * u over u = lo..lo+n-1 for each (coef, lo, n)
    (an empty range of u: nothing is read, any pair inside the axis will do)."""
    low = high = const
    for coef, lo, n in terms:
        if n <= 0:
            return (0, -1)
        a, z = coef * lo, coef * (lo + n - 1)
        low, high = low + min(a, z), high + max(a, z)
    return (low, high)


def gather(x, lead: int, items: tuple, where: str, name: str, guards, bounds=()):
    """x read at indices that vary with its `lead` leading axes (each index lined up with them).

    Where the read applies everywhere, torch checks the range as it indexes (no sync: no
    graph break under torch.compile) and a failure is reported at this read; under guards,
    indices are checked where the guards hold and clamped elsewhere."""
    live = _live(guards)
    if live is not True and not _within(x, lead, items, bounds):
        return _gather_guarded(x, lead, items, where, name, live)
    if len(items) == 1 and lead and isinstance(items[0], torch.Tensor) and items[0].shape == x.shape[:lead]:
        picked = _take_along(x, lead, items[0])
        if picked is not None:
            return picked
    try:
        return x[tuple(_lead_ranges(x, lead) + list(items))]
    except IndexError:
        for axis, item in enumerate(items, start=lead):
            if not isinstance(item, slice):
                t = torch.as_tensor(item)
                bad = (t < -x.shape[axis]) | (t >= x.shape[axis])
                if bool(bad.any()):
                    raise _out_of_range(where, name, int(t[bad][0] if t.dim() else t), x.shape[axis]) from None
        raise


def _within(x, lead: int, items, bounds) -> bool:
    """Whether every index is known (from its loops' bounds) to lie inside its axis."""
    if len(bounds) != len(items):
        return False
    for axis, (item, known) in enumerate(zip(items, bounds), start=lead):
        if isinstance(item, slice):
            continue
        size = x.shape[axis]
        if isinstance(item, int) and not isinstance(item, bool):
            if not -size <= item < size:
                return False
        elif known is None or not (known[0] > known[1] or (-size <= known[0] and known[1] < size)):
            return False
    return True


def _lead_ranges(x, lead: int) -> list:
    """Index tensors for the leading axes (size 1 where x does not vary: broadcast by the
    indices rather than expanding x, whose gradient would then be the broadcast size)."""
    ranges = []
    for k in range(lead):
        shape = [1] * lead
        shape[k] = x.shape[k]
        ranges.append(torch.arange(x.shape[k], device=x.device).view(shape))
    return ranges


def _take_along(x, lead: int, index):
    """x[b..., index[b...], ...] as one torch.gather (the common `Q(s)[a]` on a batch): several
    times cheaper than advanced indexing, backward included; None when an index is out of
    range on the CPU (the general path then gives Python's meaning or the located error)."""
    size = x.shape[lead]
    if not x.is_cpu:  # a device kernel cannot report a bad index: wrap negatives first
        index = torch.where(index < 0, index + size, index)
    index = index.unsqueeze(lead)
    if x.dim() > lead + 1:
        rest = x.shape[lead + 1:]
        for _ in rest:
            index = index.unsqueeze(-1)
        index = index.expand(index.shape[:lead + 1] + rest)
    try:
        return x.gather(lead, index).squeeze(lead)
    except RuntimeError:
        return None


def _gather_guarded(x, lead: int, items: tuple, where: str, name: str, live):
    index = []
    axis = lead
    for item in items:
        if isinstance(item, slice):
            index.append(item)
            axis += 1
            continue
        size = x.shape[axis]
        t = torch.as_tensor(item, device=x.device)
        bad = (t < -size) | (t >= size)
        if live is not False and bool(bad.any()):
            hit = bad & live
            if bool(hit.any()):
                raise _out_of_range(where, name, int(t.expand_as(hit)[hit][0]), size)
        if size == 0:
            x = _with_one_element(x, axis)
            size = 1
        index.append(torch.where(t < 0, t + size, t).clamp(0, size - 1))
        axis += 1
    return x[tuple(_lead_ranges(x, lead) + index)]


def _checked_indices(idx, size: int, where: str, name: str, guards):
    """idx (Python-style: negative from the end) made in range, after the located error if
    some index is out of range and the read applies."""
    bad = (idx < -size) | (idx >= size)
    if bool(bad.any()) and _applies(guards):
        raise _out_of_range(where, name, int(idx[bad][0]), size)
    return _in_range(idx, size)


def _in_range(idx, size: int):
    """Python-style indices of an axis of `size` as indices from 0, clamped into it (an empty
    axis gets one element appended: _with_one_element)."""
    m = max(size, 1)
    idx = idx.clamp(-m, m - 1)
    return torch.where(idx < 0, idx + m, idx)


def _checked_along(idx, size: int, where: str, name: str, guards, axis: int):
    """_checked_indices for the indices of one axis of a view, under guards that may be tensors
    lined up with the view's leading axes: index k is checked where the guards hold for some
    row of position k on `axis`."""
    live = _live(guards)
    if isinstance(live, bool):
        return _checked_indices(idx, size, where, name, (live,))
    bad = (idx < -size) | (idx >= size)
    if live.dim() > axis and live.shape[axis] == idx.shape[0]:
        live = live.movedim(axis, 0).reshape(idx.shape[0], -1).any(1)
    else:
        live = live.any().expand(idx.shape)
    hit = bad & live
    if bool(hit.any()):
        raise _out_of_range(where, name, int(idx[hit][0]), size)
    return _in_range(idx, size)


def window_views(x, lead: int, specs: tuple, perm: tuple, where: str, name: str, guards):
    """x indexed by loop variables, as views (kokoyi/compiler/batch/views.py).

    Per indexed axis from `lead` on: ("at", k) takes entry k (the axis goes away); ("var", lo,
    n) takes lo..lo+n-1 (a narrow); ("windows", s, c, lo_u, n_u, lo_w, n_w) takes s*u + w + c
    for each u and w (an unfold: the u axis stays, the w axis goes last). Then the axes are
    permuted (perm None: they are in place). Indices follow Python (negative from the end: a cat
    of two narrows); outside the axis they are the located error where the read applies, and
    clamped elsewhere. Guards may be tensors lined up with the leading axes of the view before
    its permutation (batch/views.py)."""
    axis = lead
    for spec in specs:
        size = x.shape[axis]
        if spec[0] == "at":
            x = read_static(x, axis, (spec[1],), where, name, guards)
            continue
        if spec[0] == "var":
            _, lo, n = spec
            if 0 <= lo and lo + n <= size:
                x = x.narrow(axis, lo, n) if n != size else x
            elif n > 0 and -size <= lo and lo + n <= size:  # from the end first, as in Python: no check
                tail = x.narrow(axis, lo + size, min(-lo, n))
                x = tail if lo + n <= 0 else torch.cat([tail, x.narrow(axis, 0, lo + n)], axis)
            else:
                idx = _checked_along(torch.arange(lo, lo + n, device=x.device), size, where, name, guards, axis)
                x = x.index_select(axis, idx) if size else _with_one_element(x, axis).index_select(axis, idx)
        else:
            _, step, offset, lo_u, n_u, lo_w, n_w = spec
            start = step * lo_u + lo_w + offset
            length = step * (n_u - 1) + n_w
            if n_u > 0 and n_w > 0 and 0 <= start and start + length <= size:
                x = x.narrow(axis, start, length).unfold(axis, n_w, step)
            else:
                idx = (step * torch.arange(lo_u, lo_u + n_u, device=x.device)[:, None]
                       + torch.arange(lo_w, lo_w + n_w, device=x.device) + offset)
                idx = _checked_indices(idx, size, where, name, guards)
                if size == 0:
                    x = _with_one_element(x, axis)
                x = x.index_select(axis, idx.reshape(-1)).unflatten(axis, (n_u, n_w)).movedim(axis + 1, -1)
        axis += 1
    return x if perm is None else x.permute(perm)
