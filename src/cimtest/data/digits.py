"""The embedded default data: scikit-learn's bundled 8x8 handwritten digits, at four sizes.

Nothing is downloaded: `sklearn.datasets.load_digits` ships 1,797 real images of 10 classes.
Size 8 is native (1x8x8); 16, 32 and 64 are bilinear upscalings replicated to three channels,
the CIFAR-like shapes. One fixed stratified split (1,257 train, 540 test) serves every size
and task, so models and tests built at different sizes see the same images.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from cimtest.data.dataset import Dataset, DataSplits, channel_stats, check_task, normalise
from cimtest.exceptions import DataError
from cimtest.tasks import ScoredTask

__all__ = ["SEGMENTATION_THRESHOLD", "SIZES", "TEST_SIZE", "digits", "digits_pixels"]

SIZES: tuple[int, ...] = (8, 16, 32, 64)
"""Image sizes `digits` offers: 8 is native (1 channel), the others are upscaled to 3 channels."""

TEST_SIZE = 540
"""Images in the fixed stratified test split (the other 1,257 are for training)."""

SEGMENTATION_THRESHOLD = 0.25
"""A pixel with intensity in [0, 1] above this belongs to the digit in the segmentation task."""

_NUM_CLASSES = 10
_RAW_MAX = 16.0  # load_digits pixels are integers 0..16


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return pixels float32 (1797, 1, 8, 8) in [0, 1], labels int64, train and test indices."""
    bunch = load_digits()
    pixels = torch.from_numpy(bunch.images.astype(np.float32) / _RAW_MAX).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train, test = train_test_split(
        np.arange(len(labels)), test_size=TEST_SIZE, stratify=bunch.target, random_state=0
    )
    return pixels, labels, torch.from_numpy(train), torch.from_numpy(test)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or size not in SIZES:
        allowed = ", ".join(str(s) for s in SIZES)
        raise DataError(f"The digits come in sizes {allowed}; got size {size!r}.")
    return int(size)


def _pixels(size: int, task: ScoredTask) -> tuple[Dataset, Dataset]:
    """Return the unnormalised (pixels in [0, 1]) train and test splits (cheap, not cached)."""
    gray, labels, train, test = _raw()
    if size != 8:
        gray = F.interpolate(gray, size=(size, size), mode="bilinear", align_corners=False)
    images = gray if size == 8 else gray.repeat(1, 3, 1, 1)
    if task == "segmentation":
        digit = (labels + 1).reshape(-1, 1, 1)
        targets = torch.where(gray[:, 0] > SEGMENTATION_THRESHOLD, digit, 0)
        num_classes, name = _NUM_CLASSES + 1, f"digits-{size}-seg"
    else:
        targets, num_classes, name = labels, _NUM_CLASSES, f"digits-{size}"
    return tuple(
        Dataset(images[idx], targets[idx], num_classes, task, name) for idx in (train, test)
    )


def digits_pixels(size: int = 8, task: ScoredTask = "classification") -> tuple[Dataset, Dataset]:
    """Return the digits train and test splits with pixels in [0, 1], not normalised.

    For loaders that normalise the digits with statistics of their own; most callers want
    `digits`. Shapes, labels and names are as in `digits`; the result is built anew at each
    call (not cached).
    """
    return _pixels(_check_size(size), check_task(task))


@functools.cache
def _splits(size: int, task: ScoredTask) -> DataSplits:
    raw_train, raw_test = _pixels(size, task)
    mean, std = channel_stats(raw_train.x)
    train, test = (
        Dataset(normalise(d.x, mean, std), d.y, d.num_classes, d.task, d.name)
        for d in (raw_train, raw_test)
    )
    return DataSplits(train, test, mean, std)


def digits(size: int = 8, task: ScoredTask = "classification") -> DataSplits:
    """Return the embedded digits as normalised train (1,257) and test (540) splits.

    Parameters
    ----------
    size : int
        Image side, one of `SIZES`: 8 gives x of shape (N, 1, 8, 8); 16, 32 and 64 give
        (N, 3, size, size), bilinear upscaling replicated to three channels.
    task : str
        ``"classification"``: y int64 (N,) in 0..9, 10 classes, name ``digits-{size}``.
        ``"segmentation"``: y int64 (N, size, size), 0 for background and d + 1 for the
        pixels of digit d (intensity in [0, 1] above 0.25), 11 classes,
        name ``digits-{size}-seg``.

    Returns
    -------
    DataSplits
        x float32, normalised per channel with the mean and std of the train pixels in
        [0, 1] at that size. The split is stratified (``random_state=0``) and the same at
        every size and task. The result is cached and shared: do not modify its tensors.

    Raises
    ------
    DataError
        If `size` is not in `SIZES` or `task` is unknown.
    """
    return _splits(_check_size(size), check_task(task))
