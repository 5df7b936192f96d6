"""Plumbing shared by the digits examples (classifiers, vae, gan); not part of the math.

scikit-learn's 8x8 digits ship inside the package, so nothing is downloaded.
"""
from __future__ import annotations

import numpy as np
import torch


def load_digits_split(split_seed: int = 0, test_fraction: float = 0.2, images: bool = False):
    """(x_train, y_train, x_test, y_test): pixels in [0, 1], stratified split by `split_seed`.

    x has shape (N, 64), or (N, 1, 8, 8) with `images`; labels are int64.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images[:, None] if images else digits.data) / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x.astype(np.float32), digits.target, test_size=test_fraction,
                                              random_state=split_seed, stratify=digits.target)
    return (torch.from_numpy(x_tr), torch.from_numpy(y_tr).long(), torch.from_numpy(x_te),
            torch.from_numpy(y_te).long())


def tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The first rows x cols 8x8 images as one picture, each with a one-pixel white border."""
    padded = np.ones((rows, cols, 10, 10))
    padded[:, :, 1:9, 1:9] = images[: rows * cols].reshape(rows, cols, 8, 8)
    return padded.transpose(0, 2, 1, 3).reshape(rows * 10, cols * 10)
