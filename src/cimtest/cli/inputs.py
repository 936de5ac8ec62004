"""Resolve the CLI's MODEL and --data arguments into a loaded model and its labelled data."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from cimtest.cli.common import parse_input_shape, parse_normalise
from cimtest.exceptions import CimtestError, ConfigError, DataError

if TYPE_CHECKING:
    from cimtest.data import Dataset
    from cimtest.loading import LoadedModel

__all__ = ["near_chance", "real_images", "remembered_model", "resolve_data",
           "resolve_input_range", "resolve_model"]

NEAR_CHANCE = 0.25
"""A float model scores near chance on labelled data when its accuracy is below chance plus
this share of the way from chance to 100 % (10 classes: below 32.5 %)."""

_logger = logging.getLogger(__name__)


def resolve_model(
    model: str,
    weights: str | None,
    input_shape: str | None,
    task: str | None,
    data: str | None = None,
    *,
    known_shape: tuple[int, ...] | None = None,
) -> LoadedModel:
    """Load MODEL as every command takes it (zoo name, module:factory + weights, .pt2); the
    input shape is --input-shape, else the model's own, else `known_shape` (a test's), else
    read from --data's inputs, else a first Linear layer's in_features."""
    from cimtest.loading import load_model

    shape = parse_input_shape(input_shape) or known_shape
    return load_model(model, weights=weights, input_shape=shape, task=task, data=data)


def remembered_model(
    stored: dict | None,
    test: str,
    weights: str | None,
    input_shape: str | None,
    task: str | None,
    known_shape: tuple[int, ...] | None = None,
) -> LoadedModel:
    """The model test `test` remembers (its artefact's ``model``), loaded again (with
    `weights` instead of the remembered ones if given); a `ConfigError` naming --model when
    the test names none or it cannot be found again."""
    from cimtest.cli.common import note
    from cimtest.loading import reload_model

    if stored is None:
        raise ConfigError(f"test '{test}' does not name the model it was fitted for; give "
                          "--model")
    try:
        loaded = reload_model(stored, weights=weights, task=task,
                              input_shape=parse_input_shape(input_shape) or known_shape)
    except CimtestError as exc:
        raise ConfigError(f"cannot load the model test '{test}' names ({stored.get('spec')}) "
                          f"again: {exc}; give --model") from None
    note(f"model {loaded.spec}" + (f" with {loaded.weights}" if loaded.weights else "")
         + f" (named by {test})")
    return loaded


def resolve_data(
    loaded: LoadedModel,
    data: str | None,
    test_images: int | None = None,
    normalise: str | None = None,
    *,
    check: bool = True,
    copies: int = 1,
) -> Dataset:
    """The labelled test data: `data` if given, else the digits split matching the model; used
    as stored unless `normalise` (--normalise MEAN,STD) or stats stored in the .npz say
    otherwise, with `copies` versions of each image (--augment). Unless `check` is False, one
    warning line when the float model scores near chance on data other than a zoo model's
    own digits."""
    from cimtest.data import augment, digits, load_data

    stats = parse_normalise(normalise)
    if copies < 1:
        raise DataError(f"--augment needs at least 1 copy; got {copies}")
    if test_images is not None and test_images < 1:
        raise DataError(f"--test-images must be positive; got {test_images}")
    if loaded.task not in ("classification", "segmentation"):
        raise DataError(f"accuracy needs a classifier or a segmenter; '{loaded.name}' is a "
                        f"{loaded.task} model")
    own_digits = data is None and loaded.data_size is not None and stats is None
    if own_digits:
        dataset = digits(size=loaded.data_size, task=loaded.task).test
    else:
        mean, std = stats if stats is not None else (None, None)
        dataset = load_data(data, loaded.input_shape, task=loaded.task, mean=mean, std=std,
                            num_classes=loaded.num_classes)
    if tuple(dataset.input_shape) != tuple(loaded.input_shape):
        raise DataError(f"data '{dataset.name}' has inputs {dataset.input_shape}, the model "
                        f"expects {loaded.input_shape}")
    if test_images is not None:
        dataset = dataset.subset(min(test_images, len(dataset)))
    if check and not own_digits:
        from cimtest.evaluation.model import float_accuracy

        near_chance(loaded, dataset, float_accuracy(loaded, dataset))
    return augment(dataset, copies) if copies > 1 else dataset


def near_chance(loaded: LoadedModel, dataset: Dataset, accuracy: float) -> bool:
    """Warn in one line, and return True, when a classifier's float `accuracy` on `dataset`
    is near chance (the larger of 1 / classes and the commonest label's share)."""
    import torch

    if loaded.task != "classification" or len(dataset) == 0:
        return False
    counts = torch.bincount(dataset.y, minlength=dataset.num_classes)
    chance = 100.0 * max(1.0 / dataset.num_classes, counts.max().item() / len(dataset))
    if accuracy >= chance + NEAR_CHANCE * (100.0 - chance):
        return False
    _logger.warning("the float model scores %.1f %% on '%s', near chance (%.1f %%): is the data "
                    "scaled as the model expects? (see --normalise)", accuracy, dataset.name,
                    chance)
    return True


def resolve_input_range(
    given: tuple[float, float] | None, loaded: LoadedModel, dataset: Dataset, data: str | None
) -> tuple[float, float]:
    """The normalised range synthetic images are drawn in: `given` (--input-range), else the
    min and max of the user's `data`, else the zoo model's range; (-1, 1) with a warning for
    another model."""
    from cimtest.methods.generator import FALLBACK_RANGE, default_range

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


def real_images(loaded: LoadedModel, dataset: Dataset, real: str | None,
                normalise: str | None = None, data: str | None = None) -> Dataset | None:
    """Images the real-image baselines draw from: --real, else the digits training split for
    a zoo model on its digits, else None (`compare` holds out a seeded share of `dataset`)."""
    from pathlib import Path

    from cimtest.data import digits

    if real is not None:
        if data is not None and Path(real).resolve() == Path(data).resolve():
            raise ConfigError("--real is the --data file: the real images must not be those "
                              "that define accuracy (omit --real for a seeded split)")
        return resolve_data(loaded, real, normalise=normalise)
    if data is None and loaded.data_size is not None:
        train = digits(size=loaded.data_size, task=loaded.task).train
        return dataclasses.replace(train, name=f"{train.name} training split")
    return None
