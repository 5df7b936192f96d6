"""The functions compiled Kokoyi code calls (imported there as `kk`).

Every function works on one sample: under `batch_level` the runtime maps it over the batch
(kokoyi.runtime.batching). Python numbers pass through where torch would need tensors, so
`\\sqrt{2}` and index arithmetic stay plain Python.
"""
from __future__ import annotations

import builtins
import math
import numbers

import torch
import torch.nn.functional as F

from kokoyi.errors import KokoyiRuntimeError
from kokoyi.runtime.device import rt_device
from kokoyi.runtime.module import module  # noqa: F401  (generated code calls kk.module)


def _t(x) -> torch.Tensor:
    """x as a tensor (Python numbers become tensors of the default float type or int64)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, bool):
        return torch.tensor(x, device=rt_device())
    if isinstance(x, numbers.Integral):
        return torch.tensor(int(x), device=rt_device())
    return torch.tensor(float(x), dtype=torch.get_default_dtype(), device=rt_device())


def _float(x) -> torch.Tensor:
    x = _t(x)
    return x if x.is_floating_point() or x.is_complex() else x.to(torch.get_default_dtype())


def _where_error(where: str, message: str) -> KokoyiRuntimeError:
    return KokoyiRuntimeError(f"{where}: {message}")


# ---- element-wise -----------------------------------------------------------------------
def exp(x):
    return torch.exp(_float(x))


def log(x):
    return torch.log(_float(x))


def sin(x):
    return torch.sin(_float(x))


def cos(x):
    return torch.cos(_float(x))


def tan(x):
    return torch.tan(_float(x))


def sinh(x):
    return torch.sinh(_float(x))


def cosh(x):
    return torch.cosh(_float(x))


def tanh(x):
    return torch.tanh(_float(x))


def sqrt(x):
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and x >= 0:
        return math.sqrt(x)
    return torch.sqrt(_float(x))


def root(x, n):
    if isinstance(x, numbers.Real) and isinstance(n, numbers.Real) and x >= 0:
        return x ** (1.0 / n)
    return _float(x) ** (1.0 / n)


def abs(x):  # noqa: A001 - the Kokoyi name
    return torch.abs(_t(x))


def sign(x):
    return torch.sign(_t(x))


def relu(x):
    return torch.relu(_t(x))


def sigmoid(x):
    return torch.sigmoid(_float(x))


def softplus(x):
    return F.softplus(_float(x))


def gelu(x):
    return F.gelu(_float(x))


def maximum(*xs):
    out = _t(xs[0])
    for x in xs[1:]:
        out = torch.maximum(out, _t(x).to(out.device))
    return out


def minimum(*xs):
    out = _t(xs[0])
    for x in xs[1:]:
        out = torch.minimum(out, _t(x).to(out.device))
    return out


def clip(x, lo, hi):
    return torch.clamp(_t(x), lo, hi)


def floor(x):
    return math.floor(x) if isinstance(x, numbers.Real) else torch.floor(x)


def ceil(x):
    return math.ceil(x) if isinstance(x, numbers.Real) else torch.ceil(x)


def stop_grad(x):
    return x.detach() if isinstance(x, torch.Tensor) else x


# ---- along the last axis ----------------------------------------------------------------
def softmax(x):
    return torch.softmax(_float(x), dim=-1)


def log_softmax(x):
    return torch.log_softmax(_float(x), dim=-1)


# ---- whole-value reductions ---------------------------------------------------------------
def mean(x):
    return torch.mean(_float(x))


def var(x):
    return torch.var(_float(x), correction=0)


def std(x):
    return torch.std(_float(x), correction=0)


def logsumexp(x):
    return torch.logsumexp(_float(x).reshape(-1), dim=0)


def reduce_sum(x):
    return torch.sum(_t(x))


def reduce_prod(x):
    return torch.prod(_t(x))


def reduce_max(x):
    return torch.amax(_t(x))


def reduce_min(x):
    return torch.amin(_t(x))


def reduce_argmax(x):
    return torch.argmax(_t(x))


def reduce_argmin(x):
    return torch.argmin(_t(x))


# ---- others -------------------------------------------------------------------------------
def one_hot(i, n):
    i = _t(i)
    return (torch.arange(int(n), device=i.device) == i.unsqueeze(-1)).to(torch.get_default_dtype())


def concat(*xs):
    return torch.cat([_t(x).reshape(1) if _t(x).dim() == 0 else _t(x) for x in xs], dim=0)


def cross_entropy(logits, label):
    logp = torch.log_softmax(_float(logits), dim=-1)
    label = _t(label).to(logp.device)
    return -torch.gather(logp, -1, label.unsqueeze(-1).long()).squeeze(-1)


def mse(a, b):
    return torch.mean((_float(a) - _float(b)) ** 2)


def smooth_l1(a, b):
    return F.smooth_l1_loss(_float(a), _float(b))


def indicator(c):
    if isinstance(c, (bool, numbers.Integral)):
        return 1.0 if c else 0.0
    return c.to(torch.get_default_dtype())


def logical_and(a, b):
    if isinstance(a, bool) and isinstance(b, bool):
        return a and b
    return torch.logical_and(_t(a), _t(b))


def logical_or(a, b):
    if isinstance(a, bool) and isinstance(b, bool):
        return a or b
    return torch.logical_or(_t(a), _t(b))


def logical_not(a):
    if isinstance(a, bool):
        return not a
    return torch.logical_not(_t(a))


def where(cond, a, b):
    """`cases` with a tensor condition: element-wise select, both branches evaluated."""
    if isinstance(cond, bool):
        return a if cond else b
    a, b = _t(a), _t(b)
    return torch.where(cond, a, b)


def no_case(where_: str):
    raise _where_error(where_, "no row of the cases applies")


# ---- shapes, lengths, norms ---------------------------------------------------------------
def bars(x):
    """`|x|`: the length of the first axis of a tensor of rank >= 1, else |x|."""
    if isinstance(x, torch.Tensor):
        return x.shape[0] if x.dim() >= 1 else torch.abs(x)
    if isinstance(x, (list, tuple, torch.nn.ModuleList)):
        return len(x)
    return builtins.abs(x)


def dim(x, axis: int) -> int:
    return _t(x).shape[axis]


def transpose(x):
    x = _t(x)
    return x if x.dim() < 2 else x.transpose(-1, -2)


def norm(x, order=None):
    x = _float(x)
    ord_ = {None: 2, "1": 1, "2": 2, "inf": math.inf}[order]
    return torch.linalg.vector_norm(x, ord=ord_)


# ---- index ranges: set-builders and big operators -----------------------------------------
def irange(lower, upper):
    """The inclusive integer range lower..upper."""
    return range(_int(lower), _int(upper) + 1)


def _int(x) -> int:
    if isinstance(x, torch.Tensor):
        return int(x.item())
    return int(x)


def stack(items):
    if not items:
        return torch.zeros(0, dtype=torch.get_default_dtype(), device=rt_device())
    ts = [_t(x) for x in items]
    device = next((t.device for t in ts if t.device != torch.device("cpu")), ts[0].device)
    return torch.stack([t.to(device) for t in ts])


def earlier(elements, offset, where_: str):
    """Element `offset` of a recurrence computed so far (never a wrapped negative index)."""
    if not 0 <= offset < len(elements):
        raise _where_error(where_, f"the recurrence reads element {offset}, which does not exist "
                                   "(add a base case with cases on the index)")
    return elements[offset]


def range_sum(items):
    if not items:
        return 0
    out = items[0]
    for x in items[1:]:
        out = out + x
    return out


def range_prod(items):
    if not items:
        return 1
    out = items[0]
    for x in items[1:]:
        out = out * x
    return out


def _nonempty(items, where_, what):
    if not items:
        raise _where_error(where_, f"{what} over an empty range")


def range_max(items, where_):
    _nonempty(items, where_, "\\max")
    return maximum(*items) if len(items) > 1 else items[0]


def range_min(items, where_):
    _nonempty(items, where_, "\\min")
    return minimum(*items) if len(items) > 1 else items[0]


def range_mean(items, where_):
    _nonempty(items, where_, "\\mathbb{E}")
    return range_sum(items) / len(items)


def range_argmax(items, lower, where_):
    _nonempty(items, where_, "\\argmax")
    return torch.argmax(stack(items), dim=0) + lower


def range_argmin(items, lower, where_):
    _nonempty(items, where_, "\\argmin")
    return torch.argmin(stack(items), dim=0) + lower
