"""The in-memory dataset types and the per-channel normalisation they carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from cimtest.exceptions import DataError
from cimtest.tasks import SCORED_TASKS, ScoredTask

__all__ = ["TASKS", "DataSplits", "Dataset", "channel_stats", "check_task", "hold_out",
           "normalise"]

TASKS: tuple[ScoredTask, ...] = SCORED_TASKS
"""The tasks a dataset can hold labels for."""


def check_task(task: str) -> ScoredTask:
    """Return `task` if it is one of `TASKS`, else raise `DataError` naming the allowed ones."""
    if task not in TASKS:
        raise DataError(f"Unknown task {task!r}; the allowed tasks are {', '.join(TASKS)}.")
    return cast(ScoredTask, task)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Model inputs and their labels, ready to feed a model.

    The tensors are shared (digits splits are cached): treat them as read-only and copy
    (``x.clone()``) before any in-place change.

    Attributes
    ----------
    x : torch.Tensor
        float32 (N, *input_shape), where one input is (F), (C, L) or (C, H, W), as the
        model takes them: normalised with the statistics of its
        `DataSplits` (digits), or as the loader was told (a user's data is used as stored
        unless a normalisation is asked for).
    y : torch.Tensor
        int64 (N,) class ids for ``"classification"``, int64 (N, H, W) per-pixel class ids
        for ``"segmentation"`` ((N, L) per position for (C, L) inputs); every label is in
        ``[0, num_classes)``.
    num_classes : int
        Number of classes the labels are drawn from.
    task : str
        ``"classification"`` or ``"segmentation"``.
    name : str
        Short name: ``"digits-8"``, ``"digits-32-seg"``, or the file or folder name.
    sources : torch.Tensor or None
        int64 (N,): the original image each input was made from (`cimtest.data.augment`:
        copies of one image share it), so that halves of the data never split copies;
        None: every input is its own.
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    task: ScoredTask
    name: str
    sources: torch.Tensor | None = None

    def __post_init__(self) -> None:
        check_task(self.task)
        if self.x.dtype != torch.float32 or not 2 <= self.x.dim() <= 4:
            raise DataError(
                f"Dataset {self.name!r}: x must be float32 (N, F), (N, C, L) or (N, C, H, W); "
                f"got {self.x.dtype} {tuple(self.x.shape)}."
            )
        if self.task == "segmentation" and self.x.dim() < 3:
            raise DataError(f"Dataset {self.name!r}: segmentation needs inputs (C, L) or "
                            f"(C, H, W); got {tuple(self.x.shape[1:])}.")
        n = self.x.shape[0]
        expected = (n,) if self.task == "classification" else (n, *self.x.shape[2:])
        if self.y.dtype != torch.int64 or tuple(self.y.shape) != expected:
            raise DataError(
                f"Dataset {self.name!r}: y must be int64 {expected} for {self.task}; "
                f"got {self.y.dtype} {tuple(self.y.shape)}."
            )
        if self.num_classes < 1:
            raise DataError(f"Dataset {self.name!r}: num_classes must be >= 1.")
        if self.sources is not None and tuple(self.sources.shape) != (n,):
            raise DataError(f"Dataset {self.name!r}: sources must have one entry per input.")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input: (F), (C, L) or (C, H, W)."""
        return tuple(self.x.shape[1:])

    def subset(self, n_or_index: int | Sequence[int] | torch.Tensor) -> Dataset:
        """Return the first `n` samples (an integer) or those at the given indices or mask.

        Indices keep their order (and may repeat or be negative). Raises `DataError` if `n`
        is negative or larger than the dataset, or an index is out of range or not integer.
        """
        index = torch.as_tensor(n_or_index)
        if index.dtype == torch.bool:
            if index.shape != (len(self),):
                raise DataError(
                    f"A boolean mask for {self.name!r} must have shape ({len(self)},); "
                    f"got {tuple(index.shape)}."
                )
        elif index.is_floating_point() and index.numel():
            raise DataError(f"Indices into {self.name!r} must be integers; got {index.dtype}.")
        elif index.dim() == 0:
            if not 0 <= int(index) <= len(self):
                raise DataError(
                    f"Cannot take the first {int(index)} samples of {self.name!r}, "
                    f"which holds {len(self)}."
                )
            index = torch.arange(int(index))
        else:
            index = index.to(torch.int64).reshape(-1)
            if not bool(((index >= -len(self)) & (index < len(self))).all()):
                raise DataError(
                    f"An index is out of range for {self.name!r}, which holds {len(self)}."
                )
        sources = None if self.sources is None else self.sources[index]
        return Dataset(self.x[index], self.y[index], self.num_classes, self.task, self.name,
                       sources)


@dataclass(frozen=True, eq=False)
class DataSplits:
    """A train and a test `Dataset` normalised with the same per-channel statistics.

    Attributes
    ----------
    train, test : Dataset
        The two splits.
    mean, std : tuple of float
        Per-channel statistics (one per channel) of the raw train inputs (pixels in [0, 1]
        for images); both splits hold ``(raw - mean) / std``.
    pool : Dataset or None
        Real inputs, independent of both splits, that the real-image baselines may draw
        from; None: they draw from `train`.
    raw_range : (float, float)
        The (min, max) a raw input takes: (0, 1) for pixels.
    """

    train: Dataset
    test: Dataset
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pool: Dataset | None = None
    raw_range: tuple[float, float] = (0.0, 1.0)

    @property
    def input_range(self) -> tuple[float, float]:
        """The (min, max) a normalised input can take: the raw range over all channels."""
        low = min((self.raw_range[0] - m) / s for m, s in zip(self.mean, self.std))
        high = max((self.raw_range[1] - m) / s for m, s in zip(self.mean, self.std))
        return (low, high)

    @property
    def real_pool(self) -> Dataset:
        """The real inputs the baselines draw from: `pool`, else the training split."""
        return self.train if self.pool is None else self.pool


def hold_out(data: Dataset, share: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split `data` in two by a seeded draw: (the rest, `share` of it held out).

    ``round(share * N)`` samples (at least 1, leaving at least 1) are drawn without
    replacement by ``torch.randperm(N, generator=torch.Generator().manual_seed(seed))``; both
    parts keep the original order. Used to keep a real-image pool apart from the images
    that define a chip's accuracy.
    """
    if not 0 < share < 1 or len(data) < 2:
        raise DataError(f"Cannot hold out a share {share!r} of {data.name!r} ({len(data)} "
                        "samples): the share must be in (0, 1) and the data hold 2 or more.")
    count = min(max(round(share * len(data)), 1), len(data) - 1)
    # torch's draw, not scikit-learn's: its splitters take an int or a RandomState, and
    # RandomState.permutation swaps backward with masked draws where torch.randperm swaps
    # forward by the same MT19937 words mod (N - i). ShuffleSplit(test_size=count,
    # random_state=seed) and train_test_split hold out the same images in 8 of 3,030
    # (N, seed) pairs (N = 2..300 and 1,500-10,000, seeds 0-9), all with N <= 6. Other
    # images would change every compare of a user's --data without --real against runs
    # already made (no figure in docs/ comes from one: the documented comparisons take
    # the built-in sets' own pools). tests/data/test_hold_out.py pins this draw.
    drawn = torch.randperm(len(data), generator=torch.Generator().manual_seed(int(seed)))
    held = torch.zeros(len(data), dtype=torch.bool)
    held[drawn[:count]] = True
    return data.subset(~held), data.subset(held)


def channel_stats(pixels: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the per-channel mean and population std of (N, C, ...) pixels.

    Computed in float64 so the normalised data has mean 0 and std 1 to float32 precision.
    Raises `DataError` if a channel is constant (its std is 0), as it cannot be normalised.
    """
    flat = pixels.transpose(0, 1).reshape(pixels.shape[1], -1).to(torch.float64)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, correction=0)
    if bool((std == 0).any()):
        raise DataError(
            "A channel of the data is constant, so it cannot be normalised with its own "
            "statistics; pass mean and std explicitly."
        )
    return tuple(mean.tolist()), tuple(std.tolist())


def normalise(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Return float32 ``(pixels - mean) / std`` per channel of (N, C, ...) `pixels`.

    `mean` and `std` hold one value per channel (the first axis of one input: C, or each of
    the F features of an (N, F) input), or a single value for all channels.
    """
    view = (1, -1, *([1] * (pixels.dim() - 2)))
    m = torch.tensor(mean, dtype=torch.float32).reshape(view)
    s = torch.tensor(std, dtype=torch.float32).reshape(view)
    return (pixels.to(torch.float32) - m) / s
