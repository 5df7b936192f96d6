"""Products along an axis whose gradients are those of the multiplications a loop makes."""
from __future__ import annotations

import torch


def multiply_along(x: torch.Tensor, pos: int) -> torch.Tensor:
    """The product of x's elements along axis pos, as pairwise multiplications (log2 n steps).

    Each factor's gradient is the product of the other factors, as `\\prod` written out as a
    loop of `*` gives (the reference interpreter, one sample, every batch level alike).
    torch's `prod` divides the product by each factor in its backward, so one NaN or infinite
    factor makes every factor's gradient NaN, the factor's own included: `\\prod` of a single
    `1 - \\log(s)` at a negative s had gradient NaN in a batch and `-1/s` on its own.
    """
    if not x.is_floating_point():  # no gradient; torch's prod keeps its dtypes (int64 of any integer)
        return x.prod(pos)
    pos = pos % x.dim()
    while x.shape[pos] > 1:
        n = x.shape[pos]
        pairs = x.narrow(pos, 0, n - n % 2).unflatten(pos, (n // 2, 2))
        y = pairs.select(pos + 1, 0) * pairs.select(pos + 1, 1)
        x = torch.cat((y, x.narrow(pos, n - 1, 1)), pos) if n % 2 else y
    return x.squeeze(pos)
