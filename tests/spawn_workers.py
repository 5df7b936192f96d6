"""Functions and classes that tests run in other processes (spawn start method: they must
be importable by name, and must not rely on what the parent compiled)."""
from __future__ import annotations

import torch


class Holder(torch.nn.Module):
    """An nn.Module that keeps a Kokoyi module symbol as an attribute (pickled with it)."""

    def __init__(self, kokoyi_forward, params):
        super().__init__()
        self.kokoyi_forward = kokoyi_forward
        self.params = params

    def get_parameters(self):
        return self.params

    def forward(self, *inputs, **kwargs):
        return self.kokoyi_forward(self, *inputs, **kwargs)


def call_symbol(symbol, params, inputs, batch_level):
    """symbol called on a Holder of params (computed without autograd: results cross back)."""
    with torch.no_grad():
        return Holder(symbol, params)(*inputs, batch_level=batch_level)


def call_module(module, inputs, batch_level):
    with torch.no_grad():
        return module(*inputs, batch_level=batch_level)


class ScoredDataset(torch.utils.data.Dataset):
    """Items scored by a Kokoyi module in the DataLoader worker."""

    def __init__(self, scorer, xs):
        self.scorer, self.xs = scorer, xs

    def __len__(self):
        return len(self.xs)

    def __getitem__(self, i):
        with torch.no_grad():
            return self.scorer(self.xs[i])
