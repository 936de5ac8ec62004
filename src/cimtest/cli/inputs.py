"""Resolve the CLI's MODEL and --data arguments into a loaded model and its labelled data."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from cimtest.cli.common import afterword, note, parse_input_shape, parse_normalise
from cimtest.exceptions import CimtestError, ConfigError, DataError

if TYPE_CHECKING:
    from cimtest.data import Dataset, DataSplits
    from cimtest.loading import LoadedModel

__all__ = ["fingerprint_advice", "near_chance", "own_splits", "real_images", "remembered_model",
           "resolve_data", "resolve_input_range", "resolve_model"]

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


def fingerprint_advice(stored: dict | None, loaded: LoadedModel, *, chip: bool = False) -> str:
    """What fixes a test whose model fingerprint differs from `loaded`'s, for the error's end.

    `stored` is the model the test names (its artefact's ``model``); `chip` says that
    `loaded` is a chip's own weights checked for want of ``--reference`` (``apply``). The
    advice names the option that fixes the case, since ``--force`` would go on with the wrong
    model: a ``module:factory`` given without ``--weights`` holds its untrained initial
    weights, and a chip's weights differ from the model's by design.
    """
    named = "" if stored is None else f" ({stored.get('spec')}" + (
        f" with {stored['weights']})" if stored.get("weights") else ")")
    if chip:
        return (f"a chip's weights differ from the model the test was made for{named}: give "
                "that model as --reference MODEL (and --reference-weights FILE) to check the "
                "test against it, or --force to skip the check")
    if loaded.weights is None and ":" in loaded.spec and not loaded.spec.endswith(".pt2"):
        weights = stored.get("weights") if stored else None
        return (f"'{loaded.spec}' was loaded without --weights, so it holds its untrained "
                f"initial weights: give --weights {weights or 'FILE'}, the weights the test "
                "was fitted with")
    return (f"give --model (and --weights) of the model the test was fitted for{named}, or "
            "--force to use the test on this model anyway")


def own_splits(loaded: LoadedModel, data: str | None, test_images: int | None = None,
               normalise: str | None = None) -> DataSplits | None:
    """The built-in data set the run reads: --data NAME (`cimtest.data.BUILTIN`), else a zoo
    model's own set when no --data or --normalise is given; None for a user's data. The
    model's input shape selects the set's shape; `test_images` the truth's size."""
    from pathlib import Path

    from cimtest.data import BUILTIN, builtin_splits

    if data is not None and data not in BUILTIN and not Path(data).expanduser().exists() \
            and not Path(data).suffix:
        raise DataError(f"no data set or path '{data}': the built-in sets are "
                        f"{', '.join(BUILTIN)}; else give a folder, .npz or CIFAR .bin")
    if data in BUILTIN:
        if normalise is not None:
            raise DataError(f"--normalise applies to a user's data; the built-in '{data}' is "
                            "normalised with its own training statistics")
        return builtin_splits(data, loaded.input_shape, loaded.task, test_images)
    if data is None and normalise is None and loaded.dataset is not None:
        return builtin_splits(loaded.dataset, loaded.input_shape, loaded.task, test_images)
    return None


def resolve_data(
    loaded: LoadedModel,
    data: str | None,
    test_images: int | None = None,
    normalise: str | None = None,
    *,
    check: bool = True,
    copies: int = 1,
    memory: str | None = None,
) -> Dataset:
    """The labelled test data: `data` (a path, or a built-in set by name) if given, else the
    zoo model's own set (the digits for another model); used as stored unless `normalise`
    (--normalise MEAN,STD) or stats stored in the .npz say otherwise, with `copies`
    versions of each image (--augment). `test_images` (--test-images) generates that many
    samples of a generated set and keeps the first ones of any other; it is refused, before
    anything is generated, when one chip's inputs and outputs on them exceed `memory`.
    Unless `check` is False, one warning line when the float model scores near chance on
    data other than a built-in set."""
    from cimtest.data import augment, load_data

    stats = parse_normalise(normalise)
    if copies < 1:
        raise DataError(f"--augment needs at least 1 copy; got {copies}")
    if test_images is not None and test_images < 1:
        raise DataError(f"--test-images must be positive; got {test_images}")
    if loaded.task not in ("classification", "segmentation"):
        raise DataError(f"accuracy needs a classifier or a segmenter; '{loaded.name}' is a "
                        f"{loaded.task} model")
    if test_images is not None and memory is not None:
        _check_truth_memory(loaded, test_images * copies, memory)
    splits = own_splits(loaded, data, test_images, normalise)
    if splits is not None:
        dataset = splits.test
    else:
        mean, std = stats if stats is not None else (None, None)
        dataset = load_data(data, loaded.input_shape, task=loaded.task, mean=mean, std=std,
                            num_classes=loaded.num_classes)
        if data is None:
            afterword(f"no --data: '{loaded.name}' was scored on the built-in digits "
                      f"({dataset.name}, normalised with their training statistics), not on "
                      "its own data; give --data to score it on that")
    if tuple(dataset.input_shape) != tuple(loaded.input_shape):
        raise DataError(f"data '{dataset.name}' has inputs {dataset.input_shape}, the model "
                        f"expects {loaded.input_shape}")
    if test_images is not None:
        dataset = dataset.subset(min(test_images, len(dataset)))
    if check and splits is None:
        from cimtest.evaluation.model import float_accuracy

        near_chance(loaded, dataset, float_accuracy(loaded, dataset))
    return augment(dataset, copies) if copies > 1 else dataset


def _check_truth_memory(loaded: LoadedModel, n: int, memory: str) -> None:
    """Refuse a truth of `n` inputs whose float32 inputs and one chip's outputs on them do
    not fit in the --memory budget."""
    import math

    from cimtest._validation import parse_memory

    budget = parse_memory(memory)
    need = 4 * n * (math.prod(loaded.input_shape) + math.prod(loaded.output_shape))
    if need > budget:
        raise DataError(f"--test-images {n:,} needs {need / 1e9:.2g} GB for its inputs and one "
                        f"chip's outputs, more than --memory {memory}; give fewer images or a "
                        "larger --memory")


def near_chance(loaded: LoadedModel, dataset: Dataset, accuracy: float) -> bool:
    """Warn in one line, and return True, when a classifier's float `accuracy` on `dataset`
    is near what needs no model: chance (1 / classes) or, when larger, always answering the
    commonest label, which the warning then names beside chance."""
    import torch

    if loaded.task != "classification" or len(dataset) == 0:
        return False
    counts = torch.bincount(dataset.y, minlength=dataset.num_classes)
    chance = 100.0 / dataset.num_classes
    commonest = 100.0 * counts.max().item() / len(dataset)
    floor = max(chance, commonest)
    if accuracy >= floor + NEAR_CHANCE * (100.0 - floor):
        return False
    also = f"; always the commonest label: {commonest:.1f} %" if commonest > chance else ""
    _logger.warning("the float model scores %.1f %% on '%s', near chance (1/%d = %.1f %%%s): "
                    "is the data scaled as the model expects? (see --normalise)", accuracy,
                    dataset.name, dataset.num_classes, chance, also)
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
    if loaded.dataset is not None:
        return default_range(loaded.dataset, loaded.input_shape)
    _logger.warning("no input range known for '%s'; synthetic images use %s (give "
                    "--input-range LO,HI or --data)", loaded.name, FALLBACK_RANGE)
    return FALLBACK_RANGE


def real_images(loaded: LoadedModel, dataset: Dataset, real: str | None,
                normalise: str | None = None, data: str | None = None) -> Dataset | None:
    """Images the real-image baselines draw from: --real, else the real-image pool of a
    built-in set (its training split, or MNIST-1D's independent pool), else None (`compare`
    holds out a seeded share of `dataset`)."""
    from pathlib import Path

    if real is not None:
        if data is not None and Path(real).resolve() == Path(data).resolve():
            raise ConfigError("--real is the --data file: the real images must not be those "
                              "that define accuracy (omit --real for a seeded split)")
        return resolve_data(loaded, real, normalise=normalise)
    size = len(dataset) if dataset.sources is None else None  # its truth, already made
    splits = own_splits(loaded, data, size, normalise)
    if splits is None:
        return None
    pool = splits.real_pool
    return dataclasses.replace(pool, name=f"{pool.name} split" if splits.pool is not None
                               else f"{pool.name} training split")
