"""Resolve the CLI's MODEL and --data arguments into a loaded model and its labelled data."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cimtest.cli.common import parse_shape
from cimtest.exceptions import DataError

if TYPE_CHECKING:
    from cimtest.data import Dataset
    from cimtest.loading import LoadedModel

__all__ = ["resolve_data", "resolve_input_range", "resolve_model"]

_logger = logging.getLogger(__name__)


def resolve_model(
    model: str, weights: str | None, input_shape: str | None, task: str | None
) -> LoadedModel:
    """Load MODEL as every command takes it (zoo name, module:factory + weights, .pt2)."""
    from cimtest.loading import load_model

    return load_model(model, weights=weights, input_shape=parse_shape(input_shape), task=task)


def resolve_data(loaded: LoadedModel, data: str | None, test_images: int | None = None) -> Dataset:
    """The labelled test data: `data` if given, else the digits split matching the model."""
    from cimtest.data import digits, load_data

    if test_images is not None and test_images < 1:
        raise DataError(f"--test-images must be positive; got {test_images}")
    if loaded.task not in ("classification", "segmentation"):
        raise DataError(f"accuracy needs a classifier or a segmenter; '{loaded.name}' is a "
                        f"{loaded.task} model")
    if data is None and loaded.data_size is not None:
        dataset = digits(size=loaded.data_size, task=loaded.task).test
    else:
        dataset = load_data(data, loaded.input_shape, task=loaded.task,
                            num_classes=loaded.num_classes)
    if tuple(dataset.input_shape) != tuple(loaded.input_shape):
        raise DataError(f"data '{dataset.name}' has inputs {dataset.input_shape}, the model "
                        f"expects {loaded.input_shape}")
    if test_images is not None:
        dataset = dataset.subset(min(test_images, len(dataset)))
    return dataset


def resolve_input_range(
    given: tuple[float, float] | None, loaded: LoadedModel, dataset: Dataset, data: str | None
) -> tuple[float, float]:
    """The normalised range synthetic images are drawn in: `given` (--input-range), else the
    min and max of the user's `data`, else the zoo model's range; (-1, 1) with a warning for
    another model."""
    from cimtest.methods.egis import FALLBACK_RANGE, default_range

    if given is not None:
        return given
    if data is not None:
        low, high = float(dataset.x.min()), float(dataset.x.max())
        if low >= high:
            raise DataError(f"data '{dataset.name}' holds one value ({low:g}); give "
                            "--input-range LO,HI")
        return low, high
    if loaded.data_size is not None:
        return default_range(loaded.data_size)
    _logger.warning("no input range known for '%s'; synthetic images use %s (give "
                    "--input-range LO,HI or --data)", loaded.name, FALLBACK_RANGE)
    return FALLBACK_RANGE
