"""MNIST-1D (Greydanus & Kobak, ICML 2024): any number of independent 1-D digits, offline.

The package `mnist1d` turns ten 1-D templates into samples of length 40 under padding,
scaling, translation, correlated and i.i.d. noise and shear (`mnist1d.transform.transform`).
Its `make_dataset` draws them from NumPy's global generator, standardises each set with its
own statistics and shuffles it; here the same draws (class-major, then a permutation, under a
saved and restored global state) are kept raw and standardised with the statistics of the
training set, so that a test set of any size is on the training set's scale. Training,
real-image pool and test sets come from disjoint seeds, so they are independent by
construction; a set is generated once and cached on disk (safetensors with a digest).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Iterator

import numpy as np
import torch

from cimtest.data.cache import cached_arrays
from cimtest.data.dataset import Dataset, DataSplits, normalise
from cimtest.exceptions import DataError

__all__ = ["LENGTH", "POOL_SIZE", "SEEDS", "TEST_SIZE", "TRAIN_SIZE", "generate", "input_range",
           "mnist1d"]

LENGTH = 40
"""Samples per sequence (the package's ``final_seq_length``)."""
TRAIN_SIZE = 20_000
"""Training samples of the zoo's MNIST-1D models (the package's default is 4,000)."""
POOL_SIZE = 2_000
"""Samples of the real-image pool the baselines draw from (never those that define accuracy)."""
TEST_SIZE = 150_000
"""Default test samples: enough for a split-half ceiling of 95 % at a 2-point drop
(docs/data.md gives the measurement)."""
SEEDS = {"train": 0, "pool": 1, "test": 2}
"""The generator seed of each set; disjoint, so the sets are independent."""

_NUM_CLASSES = 10
_logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's and Python's global generators (as `mnist1d.utils.set_seed`), restoring
    both afterwards so the caller's draws are untouched."""
    import random

    state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
        random.setstate(py_state)


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (unstandardised) float64 (n, 40) samples and int64 (n,) labels, drawn as
    `mnist1d.data.make_dataset` draws them with that seed (equal up to its standardisation
    when `n` is a multiple of 10; otherwise the first `n` of the next multiple)."""
    from mnist1d.data import get_dataset_args, get_templates
    from mnist1d.transform import transform

    if isinstance(n, bool) or n < 1:
        raise DataError(f"MNIST-1D needs at least 1 sample; got {n!r}")
    args = get_dataset_args()
    templates = get_templates()
    per_class = math.ceil(n / _NUM_CLASSES)
    xs, ys = [], []
    with _numpy_seed(seed):
        for label in range(_NUM_CLASSES):
            for _ in range(per_class):
                x, _t = transform(templates["x"][label], templates["t"], args)
                xs.append(x)
                ys.append(label)
        order = np.random.permutation(len(ys))
    return np.stack(xs)[order][:n], np.asarray(ys, dtype=np.int64)[order][:n]


def _set(part: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw float32 (n, 40) samples and labels of one set, from the disk cache."""
    seed = SEEDS[part]

    def make() -> dict[str, np.ndarray]:
        _logger.info("generating %d MNIST-1D %s samples (seed %d), cached after", n, part, seed)
        x, y = generate(n, seed)
        return {"x": x.astype(np.float32), "y": y}

    arrays = cached_arrays(f"mnist1d-{part}-seed{seed}-n{n}", make)
    return torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])


@functools.cache
def _stats() -> tuple[float, float]:
    """Mean and population std of the training samples (one channel)."""
    x, _ = _set("train", TRAIN_SIZE)
    flat = x.to(torch.float64)
    return float(flat.mean()), float(flat.std(correction=0))


def _dataset(part: str, n: int, shape: tuple[int, ...]) -> Dataset:
    x, y = _set(part, n)
    mean, std = _stats()
    x = normalise(x.unsqueeze(1), (mean,), (std,)).reshape(n, *shape)
    return Dataset(x, y, _NUM_CLASSES, "classification", f"mnist1d-{part}")


@functools.lru_cache(maxsize=4)
def mnist1d(test_size: int = TEST_SIZE, *, flat: bool = False) -> DataSplits:
    """MNIST-1D: training (`TRAIN_SIZE`), pool (`POOL_SIZE`) and `test_size` test samples.

    Parameters
    ----------
    test_size : int
        Test samples to generate (the truth a chip's accuracy is measured on).
    flat : bool
        Inputs (40,) (for an MLP) instead of (1, 40) (for a Conv1d model).

    Returns
    -------
    DataSplits
        Standardised with the training samples' mean and std; ``pool`` holds the pool set.
        Cached: do not modify its tensors.
    """
    if isinstance(test_size, bool) or not isinstance(test_size, int) or test_size < 1:
        raise DataError(f"MNIST-1D needs a positive number of test samples; got {test_size!r}")
    shape = (LENGTH,) if flat else (1, LENGTH)
    mean, std = _stats()
    train, pool, test = (_dataset(part, n, shape) for part, n in
                         (("train", TRAIN_SIZE), ("pool", POOL_SIZE), ("test", test_size)))
    return DataSplits(train, test, (mean,), (std,), pool=pool, raw_range=_raw_range())


@functools.cache
def _raw_range() -> tuple[float, float]:
    """(min, max) of the raw training samples: the range a synthetic input is drawn in."""
    x, _ = _set("train", TRAIN_SIZE)
    return float(x.min()), float(x.max())


def input_range() -> tuple[float, float]:
    """(min, max) of the standardised training samples (`DataSplits.input_range`), without
    generating a test set."""
    (mean, std), (low, high) = _stats(), _raw_range()
    return (low - mean) / std, (high - mean) / std
