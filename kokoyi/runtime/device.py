"""The device of tensors that compiled code creates when no input decides it."""
from __future__ import annotations

import numbers

import torch

_device: torch.device | None = None


def set_rt_device(device) -> None:
    """Create tensors on `device` when no input of a compiled call decides the device.

    Inputs decide otherwise: compiled code follows the device of the tensors it is given.
    `None` restores the default (torch's default device, normally the CPU).
    """
    global _device
    _device = None if device is None else torch.device(device)


def rt_device() -> torch.device | None:
    """The device set by set_rt_device, or None for torch's default."""
    return _device


def as_tensor(x) -> torch.Tensor:
    """x as a tensor: Python numbers become tensors (bool, int64 or the default float type)
    on the run-time device."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, bool):
        return torch.tensor(x, device=_device)
    if isinstance(x, numbers.Integral):
        return torch.tensor(int(x), device=_device)
    return torch.tensor(float(x), dtype=torch.get_default_dtype(), device=_device)
