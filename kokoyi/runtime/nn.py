"""Layers whose per-sample call matches the math.

Kokoyi models are written per sample, so a layer is called on one sample: `Linear` on a
vector, `Conv2d` on a (C, H, W) image, `Embedding` on an integer index. These are the
torch layers, which accept unbatched inputs; under `batch_level` the runtime maps them over
the batch. Any torch.nn.Module works as a parameter; these names are here so models read
the same in Python as in the paper.
"""
from __future__ import annotations

import torch

Linear = torch.nn.Linear
Bilinear = torch.nn.Bilinear
Conv1d = torch.nn.Conv1d
Conv2d = torch.nn.Conv2d
ConvTranspose2d = torch.nn.ConvTranspose2d
Embedding = torch.nn.Embedding
LayerNorm = torch.nn.LayerNorm
GRUCell = torch.nn.GRUCell
LSTMCell = torch.nn.LSTMCell
ModuleList = torch.nn.ModuleList
Sequential = torch.nn.Sequential
Identity = torch.nn.Identity


def MLP(sizes, activation=torch.nn.ReLU) -> torch.nn.Sequential:  # noqa: N802 - a layer factory
    """Linear layers of the given sizes with `activation` between them."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return torch.nn.Sequential(*layers)


__all__ = ["Linear", "Bilinear", "Conv1d", "Conv2d", "ConvTranspose2d", "Embedding", "LayerNorm", "GRUCell",
           "LSTMCell", "ModuleList", "Sequential", "Identity", "MLP"]
