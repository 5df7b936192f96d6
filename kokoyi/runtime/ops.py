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
from torch.nn.modules import module as _nn_module

from kokoyi.errors import KokoyiRuntimeError, KokoyiUnsupportedError
from kokoyi.runtime.device import as_tensor as device_as_tensor
from kokoyi.runtime.device import rt_device
from kokoyi.runtime.export import recurrence_steps  # noqa: F401  (specialised recurrences)
from kokoyi.runtime.module import module  # noqa: F401  (generated code calls kk.module)

_t = device_as_tensor  # x as a tensor; Python numbers on the run-time device


def _float(x) -> torch.Tensor:
    x = _t(x)
    return x if x.is_floating_point() or x.is_complex() else x.to(torch.get_default_dtype())


def _where_error(where: str, message: str) -> KokoyiRuntimeError:
    return KokoyiRuntimeError(f"{where}: {message}")


# ---- element-wise ----------------------------------------------------------------------
def _math_log(x):
    if x > 0:
        return math.log(x)
    return -math.inf if x == 0 else math.nan


def _math_sqrt(x):
    return math.sqrt(x) if x >= 0 else math.nan


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# On Python numbers the result is a Python number: no tensor is made on any device.
_SCALAR = {
    "exp": math.exp, "log": _math_log, "sin": math.sin, "cos": math.cos, "tan": math.tan, "sinh": math.sinh,
    "cosh": math.cosh, "tanh": math.tanh, "sqrt": _math_sqrt, "abs": builtins.abs,
    "sign": lambda x: (x > 0) - (x < 0), "relu": lambda x: x if x > 0 else 0 * x, "sigmoid": _sigmoid,
    "softplus": lambda x: x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x)),
    "gelu": lambda x: 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))),
}


def _overflow(name, x):
    """What exp, cosh or sinh of a Python float gives where math overflows: inf (-inf for sinh
    of a negative), as torch gives it."""
    return -math.inf if name == "sinh" and x < 0 else math.inf


def _elementwise(name, tensor_fn, needs_float=True):
    scalar_fn = _SCALAR[name]

    def fn(x):
        if isinstance(x, numbers.Real) and not isinstance(x, torch.Tensor):
            try:
                return scalar_fn(x)
            except OverflowError:  # as torch does: the float overflows to inf
                return _overflow(name, x)
            except ValueError:  # outside the function's domain (sin of inf): NaN, as torch gives
                return math.nan
        return tensor_fn(_float(x) if needs_float else _t(x))

    fn.__name__ = name
    fn.__doc__ = f"{name}, element-wise (a Python number gives a Python number)."
    return fn


exp = _elementwise("exp", torch.exp)
log = _elementwise("log", torch.log)
sin = _elementwise("sin", torch.sin)
cos = _elementwise("cos", torch.cos)
tan = _elementwise("tan", torch.tan)
sinh = _elementwise("sinh", torch.sinh)
cosh = _elementwise("cosh", torch.cosh)
tanh = _elementwise("tanh", torch.tanh)
sqrt = _elementwise("sqrt", torch.sqrt)
abs = _elementwise("abs", torch.abs, needs_float=False)
sign = _elementwise("sign", torch.sign, needs_float=False)
relu = _elementwise("relu", torch.relu, needs_float=False)
sigmoid = _elementwise("sigmoid", torch.sigmoid)
softplus = _elementwise("softplus", F.softplus)
gelu = _elementwise("gelu", F.gelu)


def root(x, n):
    if isinstance(x, numbers.Real) and isinstance(n, numbers.Real) and x >= 0:
        return x ** (1.0 / n)
    return _float(x) ** (1.0 / n)


def power(a, b):
    """a ** b; integer powers of Python ints too large to compute exactly become floats (inf);
    an integer tensor to a negative power is a float, as in Python; 0 to a negative power is
    inf (a float division by zero, not Python's ZeroDivisionError)."""
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) and a == 0 and b < 0:
        return math.inf
    if isinstance(a, torch.Tensor) and not a.is_floating_point() and isinstance(b, int) and b < 0:
        return _float(a) ** b
    if type(a) is int and type(b) is int and b > 0 and a not in (0, 1, -1) and a.bit_length() * b > 4096:
        try:
            return math.pow(a, b)
        except OverflowError:
            return math.inf if a > 0 or b % 2 == 0 else -math.inf
    return a ** b


def matmul(a, b):
    """`@`: integer and float operands are promoted like the other operators."""
    a, b = _t(a), _t(b)
    if a.dtype != b.dtype:
        dtype = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(dtype), b.to(dtype)
    return a @ b


def cdot(a, b):
    """`a \\cdot b`: the ordinary product when either side is a scalar, else `@`."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.dim() == 0 or b.dim() == 0:
        return a * b
    return matmul(a, b)


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
    """\\lfloor x \\rfloor: an integer (LANGUAGE.md 6a), so it can index."""
    if isinstance(x, numbers.Real):
        return math.floor(x)
    return torch.floor(x).long() if x.is_floating_point() else x


def ceil(x):
    """\\lceil x \\rceil: an integer (LANGUAGE.md 6a), so it can index."""
    if isinstance(x, numbers.Real):
        return math.ceil(x)
    return torch.ceil(x).long() if x.is_floating_point() else x


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
    """The population standard deviation of all elements, from the deviations from the first
    (as kernels.population_std: equal elements give exactly 0)."""
    x = _float(x).reshape(-1)
    return (x - x[:1]).std(correction=0)


def layer_norm(x, eps):
    """(x - mean) / sqrt(population var + eps) along the last axis: F.layer_norm, no affine."""
    return F.layer_norm(x, x.shape[-1:], eps=float(eps))


def leaky_max(a, c):
    """max(a, c a) element-wise; for 0 <= c <= 1 that is a leaky ReLU with slope c (whose
    gradient at a = 0 is c, a subgradient, where torch.maximum would split it)."""
    if 0 <= c <= 1:
        return F.leaky_relu(a, c)
    return torch.maximum(a, c * a)


def standardize(x):
    """(x - mean) / population std along the last axis, from one std_mean (batch-aware code)."""
    s, m = torch.std_mean(x, -1, correction=0, keepdim=True)
    return (x - m) / s


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
def one_hot(i, n, device=None, dtype=None):
    i = i if isinstance(i, torch.Tensor) else torch.as_tensor(i, device=device or rt_device())
    return (torch.arange(int(n), device=i.device) == i.unsqueeze(-1)).to(dtype or torch.get_default_dtype())


def concat(*xs):
    return torch.cat([_t(x).reshape(1) if _t(x).dim() == 0 else _t(x) for x in xs], dim=0)


def cross_entropy(logits, label):
    logp = torch.log_softmax(_float(logits), dim=-1)
    label = torch.as_tensor(label, device=logp.device).long()
    lead = torch.broadcast_shapes(logp.shape[:-1], label.shape)
    logp = logp.expand(tuple(lead) + (logp.shape[-1],))
    return -torch.gather(logp, -1, label.expand(lead).unsqueeze(-1)).squeeze(-1)


def mse(a, b):
    return torch.mean((_float(a) - _float(b)) ** 2)


def smooth_l1(a, b):
    return F.smooth_l1_loss(_float(a), _float(b))


def indicator(c, dtype=None):
    if isinstance(c, (bool, numbers.Integral)):
        return 1.0 if c else 0.0
    return c.to(dtype or torch.get_default_dtype())


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
    """`cases` with a tensor condition: element-wise select, both branches evaluated. A Python
    truth value among tensor conditions still broadcasts the rows, as a tensor one would."""
    if isinstance(cond, bool):
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return a if cond else b
        cond = torch.tensor(cond, device=(a if isinstance(a, torch.Tensor) else b).device)
    a, b = _t(a), _t(b)
    return torch.where(cond, a, b)


class _GradientWhere(torch.autograd.Function):
    """x itself; its gradient only where mask holds (elsewhere 0, also where it would be nan)."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad, torch.zeros((), dtype=grad.dtype, device=grad.device)), None


def gradient_where(x, mask):
    """x, through which gradient flows only where mask holds: the values a `cases` row reads,
    so that the elements it does not supply pass back no gradient (LANGUAGE.md 5)."""
    if not (isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled()):
        return x
    mask = torch.as_tensor(mask, device=x.device)
    if mask.shape != x.shape:
        try:  # only a mask that lines up with x's elements says which of them the row supplies
            if torch.broadcast_shapes(mask.shape, x.shape) != x.shape:
                return x
        except RuntimeError:
            return x
        mask = mask.expand(x.shape)
    return _GradientWhere.apply(x, mask)


def select(cond, value, otherwise):
    """One row of a `cases` in per-sample code: cond, value and otherwise are thunks. A single
    truth value picks one side and evaluates only it; a tensor of them (or one under vmap,
    which cannot be branched on) selects element-wise from both."""
    c = cond()
    if isinstance(c, (bool, numbers.Integral)):
        return value() if c else otherwise()
    if c.dim() == 0 and not torch._C._functorch.is_batchedtensor(c):
        return value() if bool(c) else otherwise()
    return where(c, value(), otherwise())


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
    """The integers i with lower <= i <= upper (bounds that are not integers round inwards)."""
    return range(ceil_int(lower), floor_int(upper) + 1)


def ceil_int(x) -> int:
    """The smallest integer >= x (x itself when it is an int)."""
    if isinstance(x, torch.Tensor):
        x = x.item()
    return x if isinstance(x, int) else math.ceil(x)


def floor_int(x) -> int:
    """The largest integer <= x (x itself when it is an int)."""
    if isinstance(x, torch.Tensor):
        x = x.item()
    return x if isinstance(x, int) else math.floor(x)


def stack(items, floating=False):
    """The items stacked on a new first axis (floating: as floats of the default dtype, for a
    set-builder of literals)."""
    if not items:
        return torch.zeros(0, dtype=torch.get_default_dtype(), device=rt_device())
    ts = [_float(x) if floating else _t(x) for x in items]
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


# ---- specialised (batch-aware, loop-free) code ----------------------------------------------
# Layout of a value: [batch axis] [loop axes] [per-sample axes]; see
# kokoyi/compiler/codegen/specialize.py.

def device_of(*xs):
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    return rt_device()


def as_tensor(x, device, dtype=None):
    """x as a tensor (a Python number on `device`, or the run-time device when None; in
    `dtype` when given: the module's floating dtype for its floating constants)."""
    if isinstance(x, torch.Tensor):
        return x
    return torch.as_tensor(x, dtype=dtype, device=device if device is not None else rt_device())


def int_power(a, b, dtype):
    """a ** b of integers: an integer, except where the exponent is negative, which gives a float
    in `dtype` (i^{-1} is 1/i), as Python's int ** int does."""
    negative = (b < 0).any() if isinstance(b, torch.Tensor) else b < 0
    if negative:
        a = a.to(dtype) if isinstance(a, torch.Tensor) else torch.tensor(float(a), dtype=dtype, device=b.device)
    return a ** b


def any_trailing(mask, rank: int):
    """Whether any of the last `rank` axes of a bool tensor holds, per leading position."""
    return mask.flatten(mask.dim() - rank).any(-1) if rank else mask


# ---- layers --------------------------------------------------------------------------------------
def linear_layer(layer, x):
    """layer(x) for a torch.nn.Linear, as F.linear on its parameters: the same computation
    without nn.Module.__call__ and __getattr__ (a third of the time of a small layer on one
    sample). A subclass, a layer with hooks, or any global module hook goes through
    layer(x) as usual, so hooks, pruning and spectral norm still apply."""
    if (type(layer) is not torch.nn.Linear or layer._forward_hooks or layer._forward_pre_hooks
            or layer._backward_hooks or layer._backward_pre_hooks or _nn_module._global_forward_hooks
            or _nn_module._global_forward_pre_hooks or _nn_module._global_backward_hooks
            or _nn_module._global_backward_pre_hooks):
        return layer(x)
    p = layer._parameters
    try:
        return F.linear(x, p["weight"], p["bias"])
    except KeyError:  # a parameter replaced by something else: let the layer resolve it
        return layer(x)


def cell_layer(cell, x, h):
    """cell(x, h) for a torch RNNCell or GRUCell, with any leading axes (broadcast between x
    and h) flattened into the one batch axis torch's cells take."""
    lead = torch.broadcast_shapes(x.shape[:-1], h.shape[:-1])
    if not lead:
        return cell(x, h)
    x = x.expand(lead + x.shape[-1:]).reshape(-1, x.shape[-1])
    h = h.expand(lead + h.shape[-1:]).reshape(-1, h.shape[-1])
    return cell(x, h).reshape(lead + (-1,))


# ---- discounted suffix sums: kokoyi/runtime/scan.py ---------------------------------------------
from kokoyi.runtime.scan import discounted_suffix_sum, discounted_window  # noqa: F401  (kk.discounted_window)


def not_per_sample(message: str) -> KokoyiUnsupportedError:
    """The error of a per-sample function whose body the per-sample generator does not
    compile (the batched code, from the core IR, does)."""
    return KokoyiUnsupportedError(message)
