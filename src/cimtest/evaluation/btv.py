"""Scoring a Bayesian test vector on populations of chips: paper 1's metrics per fault level.

`chip_results` forwards the test's stored sample (and optionally fresh samples, real images
and labelled data) through every chip together, so σ_y and accuracy come from the very same
weights; `summarise` turns them into coverage, verifiable coverage, false alarms and AUC with
95 % Wilson bands; `evaluate_btv` runs both over a list of fault levels, as ``cimtest btv
evaluate`` does; `output_spreads` gathers paper 1 Figs. 3-4's data from the same chips.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cimtest.data import Dataset
from cimtest.engine import Population, chip_accuracies
from cimtest.exceptions import ConfigError
from cimtest.faults import FaultStack
from cimtest.methods.base import check_is_fitted
from cimtest.methods.baselines import PointTestVectors
from cimtest.methods.btv import BayesianTestVector, spread
from cimtest.metrics import coverage, false_alarm_rate, rate, roc_auc, verifiable_coverage
from cimtest.progress import Progress

__all__ = ["ChipResults", "Level", "chip_results", "evaluate_btv", "output_spreads", "summarise"]


@dataclass(frozen=True)
class Level:
    """One fault level to score: its spec, its number among the levels of its kind, and the
    share of layers it is injected into (None: all)."""

    stack: FaultStack
    base_spec: str
    index: int
    layers: float | None = None


@dataclass(frozen=True)
class ChipResults:
    """What a campaign measures per chip: σ_y for the stored test and, with data, accuracy.

    Attributes
    ----------
    sigma_y : numpy.ndarray
        float64 (n_chips,): σ_y for the stored sample.
    accuracy : numpy.ndarray or None
        float64 (n_chips,) accuracy in percent (mean IoU in percent for segmentation), or
        None when no labelled data was given (generators, discriminators).
    sigma_fresh : numpy.ndarray or None
        float64 (n_chips, K): σ_y for K fresh tests (the same K for every chip), or None.
    sigma_point : numpy.ndarray or None
        float64 (n_chips,): σ_y pooled over real images (the point-estimate baseline), or
        None.
    sigma_images : numpy.ndarray or None
        float64 (n_chips, P): σ_y of each real image on its own (paper 1 Fig. 4), or None.
    """

    sigma_y: np.ndarray
    accuracy: np.ndarray | None
    sigma_fresh: np.ndarray | None = None
    sigma_point: np.ndarray | None = None
    sigma_images: np.ndarray | None = None


def chip_results(
    test: BayesianTestVector,
    population: Population,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    task: str = "classification",
    fresh: torch.Tensor | None = None,
    point: torch.Tensor | None = None,
    progress: Progress | None = None,
) -> ChipResults:
    """σ_y of every chip of `population` for the stored test, and its accuracy on (x, y).

    One pass per chunk of chips: the test's samples and the data go through each chip
    together, so σ_y and accuracy come from the very same weights (per-read noise aside).

    Parameters
    ----------
    test : BayesianTestVector
        A fitted test.
    population : Population
        The chips.
    x, y : torch.Tensor, optional
        Labelled data: float32 (T, *input_shape) and int64 labels; None skips accuracy.
    task : str
        ``"classification"`` or ``"segmentation"`` (how accuracy is scored).
    fresh : torch.Tensor, optional
        float32 (K, n_samples, *input_shape): K fresh tests (`BayesianTestVector.draw`)
        every chip also answers, for the false-alarm rule.
    point : torch.Tensor, optional
        float32 (P, *input_shape): real images whose pooled σ_y is the point-estimate
        baseline (`cimtest.methods.baselines.PointTestVectors`), measured on the same chips.
    progress : Progress, optional
        ``progress(done, total)`` after each chunk.
    """
    check_is_fitted(test, ("sample_",))
    n = test.sample_.shape[0]
    k = 0 if fresh is None else fresh.shape[0]
    p = 0 if point is None else point.shape[0]
    parts = [test.sample_] + ([] if fresh is None else [fresh.reshape(-1, *fresh.shape[2:])])
    parts += ([] if point is None else [point]) + ([] if x is None else [x])
    sigmas, scores, fresh_sigmas, point_sigmas, image_sigmas = [], [], [], [], []
    for _, out in population.iter_chunks(torch.cat(parts), progress=progress):
        sigmas.append(test.respond(out[:, :n]))
        if k:
            tests = out[:, n : n + k * n].reshape(out.shape[0] * k, n, *out.shape[2:])
            fresh_sigmas.append(test.respond(tests).reshape(out.shape[0], k))
        if p:
            images = out[:, n + k * n : n + k * n + p].double()
            point_sigmas.append(spread(images).cpu().numpy())
            image_sigmas.append(spread(images.flatten(0, 1)).reshape(-1, p).cpu().numpy())
        if x is not None:
            scores.append(chip_accuracies(out[:, n + k * n + p :], y, task).cpu().numpy())
    return ChipResults(
        np.concatenate(sigmas),
        np.concatenate(scores) if scores else None,
        np.concatenate(fresh_sigmas) if fresh_sigmas else None,
        np.concatenate(point_sigmas) if point_sigmas else None,
        np.concatenate(image_sigmas) if image_sigmas else None,
    )


def summarise(
    results: ChipResults,
    thresholds: dict[str, float],
    *,
    ideal_accuracy: float | None = None,
    fresh_sigma: np.ndarray | None = None,
    far_threshold: float | None = None,
    point_threshold: float | None = None,
    drop: float = 1.0,
) -> list[dict[str, object]]:
    """One row of test metrics per threshold, rates as fractions with 95 % Wilson bands.

    Flags use the verdict rule of `BayesianTestVector.decide` (σ_y > t). The rows of
    `thresholds` score σ_y of the stored sample; the row ``"false_alarm"`` (when
    `far_threshold` is given) scores every (chip, fresh test) pair of
    ``results.sigma_fresh`` instead, since that threshold is meant for fresh samples.

    Parameters
    ----------
    results : ChipResults
        σ_y (and accuracy) of the faulty chips.
    thresholds : dict of str to float
        Thresholds of the stored sample to score, by label (e.g. ``{"offset=0": 0.41}``).
    ideal_accuracy : float, optional
        A_baseline: the ideal chip's accuracy (needed with accuracy).
    fresh_sigma : numpy.ndarray, optional
        float64 (draws,) σ_y of the ideal chip for fresh samples of the vector.
    far_threshold : float, optional
        `threshold_far_` of the test; needs ``results.sigma_fresh``.
    point_threshold : float, optional
        σ_y of the ideal chip on the real images of ``results.sigma_point``; adds the
        point-estimate baseline's ``coverage_point``, ``false_alarm_nodrop_point`` and
        ``auc_point`` to every row (the same chips, the same verdict rule).
    drop : float
        A chip counts as damaged when its accuracy dropped by at least this many points.

    Returns
    -------
    list of dict
        Keys: ``rule, threshold, chips, coverage[_low, _high], coverage_dropped[...],
        verifiable_coverage[...], false_alarm_ideal[...], false_alarm_nodrop[...], auc,
        dropped, accuracy_mean, sigma_mean`` (None where not measurable).
    """
    accuracy = results.accuracy
    if accuracy is not None and ideal_accuracy is None:
        raise ConfigError("summarise needs ideal_accuracy when chips have an accuracy")
    cases = [(rule, t, results.sigma_y, accuracy) for rule, t in thresholds.items()]
    if far_threshold is not None:
        if results.sigma_fresh is None:
            raise ConfigError("the false_alarm row needs chip results with fresh tests")
        k = results.sigma_fresh.shape[1]
        cases.append(("false_alarm", far_threshold, results.sigma_fresh.reshape(-1),
                      None if accuracy is None else np.repeat(accuracy, k)))
    rows = []
    for rule, t, sigma, acc in cases:
        damaged = None if acc is None else ideal_accuracy - acc >= drop
        row: dict[str, object] = {"rule": rule, "threshold": t, "chips": int(sigma.size)}
        _put(row, "coverage", coverage(sigma, t, strict=True))
        _put(row, "coverage_dropped",
             None if damaged is None else coverage(sigma[damaged], t, strict=True))
        _put(row, "verifiable_coverage", None if damaged is None else verifiable_coverage(
            sigma, t, acc, ideal_accuracy, strict=True))
        _put(row, "false_alarm_ideal",
             None if fresh_sigma is None else false_alarm_rate(fresh_sigma > t))
        _put(row, "false_alarm_nodrop",
             None if damaged is None else false_alarm_rate(sigma[~damaged] > t))
        row["auc"] = None if damaged is None else _finite(roc_auc(sigma, damaged))
        row["dropped"] = None if damaged is None else rate(damaged).value
        row["accuracy_mean"] = None if acc is None else float(acc.mean())
        row["sigma_mean"] = float(sigma.mean())
        if point_threshold is not None and rule != "false_alarm":
            _point_columns(row, results.sigma_point, point_threshold, damaged)
        rows.append(row)
    return rows


def _point_columns(
    row: dict[str, object], sigma: np.ndarray | None, t: float, damaged: np.ndarray | None
) -> None:
    """The point-estimate baseline's coverage, harmless-chip false alarms and AUC."""
    if sigma is None:
        raise ConfigError("the point-estimate columns need chip results with real images")
    _put(row, "coverage_point", coverage(sigma, t, strict=True))
    _put(row, "false_alarm_nodrop_point",
         None if damaged is None else false_alarm_rate(sigma[~damaged] > t))
    row["auc_point"] = None if damaged is None else _finite(roc_auc(sigma, damaged))


def _put(row: dict[str, object], name: str, value) -> None:
    """Store a `Rate` as ``name``, ``name_low``, ``name_high`` (None when not measurable)."""
    row[name] = None if value is None else _finite(value.value)
    row[f"{name}_low"] = None if value is None else _finite(value.low)
    row[f"{name}_high"] = None if value is None else _finite(value.high)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def evaluate_btv(
    test: BayesianTestVector,
    chips: Population,
    levels: Sequence[Level],
    data: Dataset | None = None,
    *,
    offsets: Sequence[float] = (0.0,),
    point: PointTestVectors | None = None,
    fresh: int = 1000,
    fresh_per_chip: int = 8,
    drop: float = 1.0,
    seed: int = 0,
    progress: Progress | None = None,
    on_level: Callable[[Level, ChipResults], None] | None = None,
) -> list[dict[str, object]]:
    """Every level's rows (`summarise`) on `chips.n` chips of `chips`' model and seed.

    Parameters
    ----------
    test : BayesianTestVector
        A fitted test.
    chips : Population
        The model's chips (their fault spec is replaced by each level's).
    levels : sequence of Level
        The fault levels to score.
    data : Dataset, optional
        Labelled data defining each chip's accuracy (None: models without labels).
    offsets : sequence of float
        Threshold offsets: one row per offset at ``sigma_ideal_ + offset``.
    point : PointTestVectors, optional
        A proposed point-estimate baseline scored on the same chips.
    fresh : int
        Fresh samples of the vector on the ideal chip (its false-alarm rate); 0 skips.
    fresh_per_chip : int
        Fresh tests per faulty chip for the false-alarm rule's row (tests fitted with
        ``false_alarm``); 0 skips that row.
    drop : float
        A chip is damaged when its accuracy dropped by at least this many points.
    seed : int
        Seed of the fresh draws.
    progress : Progress, optional
        ``progress(done, total, level spec)`` after each chunk of chips.
    on_level : callable, optional
        ``on_level(level, chip results)`` after each level, e.g. to keep the per-chip σ_y
        for `output_spreads` without a second pass over the chips.

    Returns
    -------
    list of dict
        One row per level and threshold: `summarise`'s keys plus ``fault, level,
        level_index, base_level, layers, ideal_accuracy, sigma_ideal``.
    """
    check_is_fitted(test, ("threshold_",))
    ideal_accuracy = None
    task = "classification" if data is None else data.task
    if data is not None:
        ideal_accuracy = chips.with_faults("none", n=1).accuracy(data.x, data.y,
                                                                 task=task)[0].item()
    ideal = chips.mapped.ideal if test.read_noise is None else chips.with_faults(
        test.read_noise, n=1)
    fresh_sigma = test.fresh_responses(ideal, fresh, seed=seed) if fresh > 0 else None
    thresholds = {f"offset={o:g}": test.sigma_ideal_ + o for o in offsets}
    fresh_tests = None
    if test.threshold_far_ is not None and fresh_per_chip > 0:
        fresh_tests = test.draw(fresh_per_chip,
                                torch.Generator(device=chips.device).manual_seed(seed + 1))
    far = None if fresh_tests is None else test.threshold_far_
    rows = []
    for level in levels:
        population = chips.with_faults(level.stack, n=chips.n)
        name = level.stack.spec()
        results = chip_results(
            test, population, *((data.x, data.y) if data is not None else ()), task=task,
            fresh=fresh_tests, point=None if point is None else point.inputs_,
            progress=None if progress is None else (
                lambda done, total, stage=None, name=name: progress(done, total, name)))
        if on_level is not None:
            on_level(level, results)
        for row in summarise(results, thresholds, ideal_accuracy=ideal_accuracy,
                             fresh_sigma=fresh_sigma, far_threshold=far, drop=drop,
                             point_threshold=None if point is None else point.sigma_ideal_):
            rows.append({"fault": level.stack.kind, "level": name, "level_index": level.index,
                         "base_level": level.base_spec, "layers": level.layers, **row,
                         "ideal_accuracy": ideal_accuracy, "sigma_ideal": test.sigma_ideal_})
    return rows


def output_spreads(
    test: BayesianTestVector,
    chips: Population,
    levels: Sequence[tuple[Level, ChipResults]],
    images: torch.Tensor | None = None,
) -> dict[str, object]:
    """Paper 1 Figs. 3-4's data: the ideal chip's outputs for the stored test and each real
    image, and σ_y of each across the chips of every whole-chip level.

    Parameters
    ----------
    test : BayesianTestVector
        A fitted test.
    chips : Population
        The model's chips (only its ideal chip is forwarded here).
    levels : sequence of (Level, ChipResults)
        Each level with its chip results (`evaluate_btv`'s ``on_level``); levels on a
        fraction of the layers are left out.
    images : torch.Tensor, optional
        float32 (P, *input_shape): the real images of ``ChipResults.sigma_images``.

    Returns
    -------
    dict
        JSON-ready: ``inputs`` (``"vector"``, then ``"image 1"`` ...), ``ideal_outputs``
        (per input, the ideal chip's output elements, every sample of the vector pooled),
        ``ideal_sigma`` (per input, σ_y on the ideal chip) and ``levels``: per whole-chip
        level, ``fault``, ``level`` (its spec), ``index`` and ``sigma`` (per input, σ_y of
        every chip).
    """
    check_is_fitted(test, ("sample_",))
    p = 0 if images is None else images.shape[0]
    n = test.sample_.shape[0]
    ideal = chips.with_faults(test.read_noise or "none", n=1)
    parts = [test.sample_] + ([] if images is None else [images])
    out = ideal.outputs(torch.cat(parts))[0].double()
    per_input = [out[:n]] + [out[n + i : n + i + 1] for i in range(p)]
    kept = []
    for level, results in levels:
        if level.layers is not None:
            continue
        sigma = [results.sigma_y] + [results.sigma_images[:, i] for i in range(p)]
        kept.append({"fault": level.stack.kind, "level": level.stack.spec(),
                     "index": level.index, "sigma": [s.tolist() for s in sigma]})
    return {
        "inputs": ["vector"] + [f"image {i + 1}" for i in range(p)],
        "ideal_outputs": [o.reshape(-1).tolist() for o in per_input],
        "ideal_sigma": [float(spread(o.reshape(1, -1))[0]) for o in per_input],
        "levels": kept,
    }
