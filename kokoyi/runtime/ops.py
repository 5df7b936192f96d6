"""Functions the printed kernels call as `kk.…` (kokoyi/compiler/emit/torch_eager.py) where a
template alone does not do: built-ins on Python numbers (a Python number gives a Python
number, so `\\sqrt{2}` and index arithmetic stay plain Python), powers, the recognised forms'
one-step functions and layer calls. The kernels of loops, reads and recurrences are in
kokoyi.runtime.kernels (`kx.…`).
"""
from __future__ import annotations

import builtins
import math
import numbers

import torch
import torch.nn.functional as F
from torch.nn.modules import module as _nn_module

from kokoyi.errors import KokoyiRuntimeError
from kokoyi.runtime.device import as_tensor as device_as_tensor
from kokoyi.runtime.device import rt_device
from kokoyi.runtime.export import recurrence_steps  # noqa: F401  (specialised recurrences)

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


def _sign(x):
    """sign of a Python number in its kind, as torch.sign keeps a tensor's (of a float a float; NaN 0)."""
    s = (x > 0) - (x < 0)
    return float(s) if isinstance(x, float) else s


# On Python numbers the result is a Python number: no tensor is made on any device.
_SCALAR = {
    "exp": math.exp, "log": _math_log, "sin": math.sin, "cos": math.cos, "tan": math.tan, "sinh": math.sinh,
    "cosh": math.cosh, "tanh": math.tanh, "sqrt": _math_sqrt, "abs": builtins.abs,
    "sign": _sign, "relu": lambda x: x if x > 0 else 0 * x, "sigmoid": _sigmoid,
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
sign = _elementwise("sign", torch.sign, needs_float=False)
relu = _elementwise("relu", torch.relu, needs_float=False)
sigmoid = _elementwise("sigmoid", torch.sigmoid)
softplus = _elementwise("softplus", F.softplus)


def _gelu_tensor(x):
    """F.gelu, whose gradient reaches its backward contiguous: torch's CPU kernel (oneDNN)
    rejects some strided gradients, a diagonal's among them ("could not construct a memory
    descriptor using strides"; pytorch#112006), which `\\operatorname{diag}` of a GELU hands it."""
    y = F.gelu(x)
    if y.requires_grad and not torch.compiler.is_compiling():
        y.register_hook(torch.Tensor.contiguous)
    return y


gelu = _elementwise("gelu", _gelu_tensor)


def power(a, b):
    """a ** b; powers of Python numbers too large for a float are infinite (as a tensor's are,
    where Python raises OverflowError or computes a huge integer); an integer tensor to a
    negative power is a float, as in Python; 0 to a negative power is inf (a float division by
    zero, not Python's ZeroDivisionError)."""
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) and a == 0 and b < 0:
        return math.inf
    if isinstance(a, torch.Tensor) and not a.is_floating_point() and isinstance(b, int) and b < 0:
        return _float(a) ** b
    if type(a) is int and type(b) is int and b > 0 and a not in (0, 1, -1) and a.bit_length() * b > 4096:
        return _power_overflow(a, b)
    try:
        return a ** b
    except OverflowError:  # a float's power
        return _power_overflow(a, b)


def _power_overflow(a, b):
    try:
        return math.pow(a, b)
    except OverflowError:
        return math.inf if a > 0 or b % 2 == 0 else -math.inf


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


# ---- others -------------------------------------------------------------------------------
def one_hot(i, n, device=None, dtype=None):
    i = i if isinstance(i, torch.Tensor) else torch.as_tensor(i, device=device or rt_device())
    return (torch.arange(int(n), device=i.device) == i.unsqueeze(-1)).to(dtype or torch.get_default_dtype())


_NO_LABEL = -(2 ** 63)  # F.cross_entropy's ignore_index: below any int64 label, so none is ignored


def cross_entropy(logits, label):
    if isinstance(logits, torch.Tensor) and isinstance(label, torch.Tensor) and logits.is_floating_point() \
            and label.dtype == torch.int64 and logits.dim() == label.dim() + 1 >= 2 and logits.numel():
        # one label per row of logits: torch's fused loss (a bad label: the gather's own error below)
        n = logits.shape[-1]
        if label.shape == logits.shape[:-1]:
            try:
                if logits.dim() == 2:
                    return F.cross_entropy(logits, label, reduction="none", ignore_index=_NO_LABEL)
                out = F.cross_entropy(logits.reshape(-1, n), label.reshape(-1), reduction="none",
                                      ignore_index=_NO_LABEL)
                return out.view(label.shape)
            except IndexError:
                pass
    logits = _float(logits)
    label = torch.as_tensor(label, device=logits.device).long()
    logp = torch.log_softmax(logits, dim=-1)
    lead = torch.broadcast_shapes(logp.shape[:-1], label.shape)
    logp = logp.expand(tuple(lead) + (logp.shape[-1],))
    return -torch.gather(logp, -1, label.expand(lead).unsqueeze(-1)).squeeze(-1)


# ---- layouts ------------------------------------------------------------------------------

def device_of(*xs):
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    return rt_device()


def any_trailing(mask, rank: int):
    """Whether any of the last `rank` axes of a bool tensor holds, per leading position."""
    return mask.flatten(mask.dim() - rank).any(-1) if rank else mask


# ---- layers --------------------------------------------------------------------------------------
def _plain(layer, cls) -> bool:
    """layer is a cls itself with no hook on it or on every module (its parameters may be
    used without calling it)."""
    return not (type(layer) is not cls or layer._forward_hooks or layer._forward_pre_hooks
                or layer._backward_hooks or layer._backward_pre_hooks or _nn_module._global_forward_hooks
                or _nn_module._global_forward_pre_hooks or _nn_module._global_backward_hooks
                or _nn_module._global_backward_pre_hooks)


_LINEAR = torch.nn.Linear


def linear_layer(layer, x):
    """layer(x) for a torch.nn.Linear, as F.linear on its parameters: the same computation
    without nn.Module.__call__ and __getattr__ (a third of the time of a small layer on one
    sample). A subclass, a layer with hooks, or any global module hook goes through
    layer(x) as usual, so hooks, pruning and spectral norm still apply."""
    if not _plain(layer, _LINEAR):  # a torch.nn.Linear itself with no hook on it or on every module
        return layer(x)
    p = layer._parameters
    try:
        return F.linear(x, p["weight"], p["bias"])
    except KeyError:  # a parameter replaced by something else: let the layer resolve it
        return layer(x)


def conv2d_layer(layer, x):
    """layer(x) for a torch.nn.Conv2d with zero padding, as F.conv2d on its parameters and
    settings: what its forward computes, without nn.Module.__call__, its two Python methods and
    __getattr__ (linear_layer's rule: a subclass, a hook, another padding mode or a parameter
    replaced by something else goes through layer(x))."""
    if not _plain(layer, torch.nn.Conv2d) or layer.padding_mode != "zeros":
        return layer(x)
    p = layer._parameters
    try:
        return F.conv2d(x, p["weight"], p["bias"], layer.stride, layer.padding, layer.dilation, layer.groups)
    except KeyError:
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
