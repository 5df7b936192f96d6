"""The torch.nn layers the batch pass knows how to call (kokoyi/compiler/batch/calls.py).

On their own so that describing a call's parameters (kokoyi/runtime/specialize.describe) does
not import the batch pass: a call whose kernel comes from the kernel cache never needs it.
"""
from __future__ import annotations

# torch layers that accept any number of leading axes and act on the trailing ones, with the
# change of per-sample rank they make.
TRANSPARENT_LAYERS = {
    "Linear": 0, "Bilinear": 0, "LayerNorm": 0, "Embedding": 1, "ReLU": 0, "Tanh": 0, "Sigmoid": 0,
    "GELU": 0, "Softplus": 0, "LeakyReLU": 0, "ELU": 0, "Dropout": 0, "Identity": 0, "Softmax": 0,
    "LogSoftmax": 0, "SiLU": 0,
}
# Convolutions: the per-sample rank they take (C, ...), with one batch axis in front.
CONV_LAYERS = {"Conv1d": 2, "Conv2d": 3, "Conv3d": 4, "ConvTranspose1d": 2, "ConvTranspose2d": 3}
# Recurrent cells: cell(x, h) on per-sample vectors; batched, the leading axes are flattened.
CELL_LAYERS = {"RNNCell", "GRUCell"}
