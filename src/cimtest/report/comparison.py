"""Every test method fitted and evaluated on the same chips, each chip forwarded once.

`compare` builds two populations (D training chips, E evaluation chips, other seeds), lets
each method propose its inputs from the model (and real images where it needs them), runs
ONE campaign over the training chips on the distinct inputs of all methods plus the labelled
data, hands each method the outputs on its own inputs and what it may know of the chips
(labels, or accuracies for the dataset-aware baseline), then runs ONE campaign over the
evaluation chips on every fitted test's inputs plus the data, and scores every method on it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cimtest._device import DeviceLike
from cimtest.cutoffs import Cutoff, parse_cutoff, pass_fraction
from cimtest.data import Dataset, augment
from cimtest.data.dataset import hold_out
from cimtest.engine import InputBank, Population, chip_accuracies
from cimtest.evaluation.truth import ceiling, correct_answers
from cimtest.exceptions import ConfigError
from cimtest.hardware.periphery import Periphery
from cimtest.loading import LoadedModel
from cimtest.methods import (
    BayesianTestVector,
    ChipOutcomes,
    DatasetAwareTest,
    EntropyImageTest,
    FGSMTestImages,
    HybridTest,
    LearnedTest,
    NoiseImagesTest,
    OptimizedTest,
    PointTestVectors,
    RandomSyntheticTest,
    TestMethod,
)
from cimtest.metrics import paired_against_best, rate, roc_auc, roc_curve, test_metrics
from cimtest.progress import Progress, report, staged

__all__ = ["REAL_SEED", "REAL_SHARE", "Comparison", "compare", "compare_across",
           "default_methods"]

REAL_SHARE = 0.25
"""Without separate real images, this share of the labelled data is held out as the real-image
pool of the baselines; the rest defines each chip's accuracy."""
REAL_SEED = 0
"""Seed of that split (`cimtest.data.dataset.hold_out`), fixed so the accuracy images do not
change with the methods' seed."""


def default_methods(
    *,
    k: int = 4,
    seed: int = 0,
    input_range: tuple[float, float] | None = None,
    egis: dict | None = None,
    btv: dict | None = None,
    learned: dict | None = None,
) -> dict[str, TestMethod]:
    """The compared methods by name: both papers' tests, the hybrid, the baselines, and
    with `learned` (keyword arguments, ``{}`` for the defaults) the two tests whose inputs
    are optimised through the training chips (`OptimizedTest`, `LearnedTest`; minutes each
    at 1,000 ResNet-20 chips, so left out unless asked for).

    `input_range` is the normalised range of the synthetic images (EGIS) and of the noise
    images; None: the digits' range for zoo models, else (-1, 1). Every method runs on
    inputs of every rank, (F), (C, L) or (C, H, W)."""
    vector = BayesianTestVector(seed=seed, **(btv or {}))
    images = EntropyImageTest(k=k, seed=seed, input_range=input_range, **(egis or {}))
    methods = {
        "btv": vector,
        "egis": images,
        "hybrid": HybridTest(egis=images, btv=vector, seed=seed),
        "point-vectors": PointTestVectors(k=k, seed=seed),
        "fgsm": FGSMTestImages(k=k, seed=seed),
        "dataset-aware": DatasetAwareTest(k=k, seed=seed),
        "noise+detector": NoiseImagesTest(k=k, input_range=input_range, seed=seed),
        "random-synthetic+detector": RandomSyntheticTest(source=images, k=k, seed=seed),
    }
    if learned is not None:
        methods["optimized"] = OptimizedTest(k=k, seed=seed, **learned)
        methods["learned"] = LearnedTest(k=k, source=images, input_range=input_range,
                                         init="synthetic", seed=seed, **learned)
    return methods


@dataclass
class Comparison:
    """What `compare` measured.

    Attributes
    ----------
    rows : list of dict
        One per method: ``method, ta, te, yl, cte, bte, coverage, false_alarm, auc`` (percent
        except AUC), ``ta_low, ta_high`` (TA's 95 % Wilson interval, percent), ``best``
        (True for one row: the highest TA, the first of equals), ``p_vs_best`` (two-sided
        p-value of McNemar's exact test of the method's right and wrong verdicts against the
        best's on the same evaluation chips; 1.0 for the best itself), ``tied_with_best``
        (``p_vs_best >= 0.05``: no evidence that it is less accurate than the best; True
        for the best), ``ceiling`` (the truth's split-half agreement, percent, the same for
        every row), ``pass_fraction`` (share of the training chips that pass, 0..1),
        ``eval_pass_fraction`` and ``eval_accuracy_mean`` (the evaluation chips' share that
        pass A_cutoff, and their mean accuracy: what a test faces on other physics),
        ``test_bytes, detector_bytes, forward_passes, needs, fit_s``, ``accuracy_rmse``
        (points, of the tests that predict each chip's accuracy; None for the others),
        ``kept_step`` (the step whose inputs a learned test kept; None for the others) and
        ``note`` (what the method's `describe` says limits it, e.g. an FGSM count that
        separates no training chips; None for most).
    roc : dict
        Method name → (fpr, tpr) arrays on the evaluation chips (positive = truly fail).
    train_accuracy, eval_accuracy : numpy.ndarray
        Accuracies (percent) of the D training and E evaluation chips.
    cutoff_accuracy : float
        A_cutoff (percent) at the chosen percentile of the training chips.
    forwards : dict
        Inputs each chip forwarded: ``{"train": ..., "eval": ...}``, and the campaigns'
        seconds ``train_s`` and ``eval_s``.
    methods : dict
        The fitted methods by name.
    scores, flags : dict
        Method name → float64 scores and bool verdicts (True = flagged) of the E chips.
    setup : dict
        The parameters of the run (JSON-safe).
    """

    rows: list[dict]
    roc: dict[str, tuple[np.ndarray, np.ndarray]]
    train_accuracy: np.ndarray
    eval_accuracy: np.ndarray
    cutoff_accuracy: float
    forwards: dict[str, float]
    methods: dict[str, TestMethod]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    setup: dict = field(default_factory=dict)


def compare_across(
    model: LoadedModel,
    fault: str,
    data: Dataset,
    *,
    real: Dataset | None = None,
    methods: dict[str, TestMethod] | None = None,
    train_chips: int = 1000,
    eval_chips: int = 1000,
    seed: int = 0,
    eval_seed: int = 1,
    cutoff: Cutoff | str = "A50",
    array_size: tuple[int, int] | None = None,
    bits_per_cell: int = 1,
    memory: str = "2GB",
    progress: Progress | None = None,
    real_share: float = REAL_SHARE,
    copies: int = 1,
    eval_faults: Sequence[str | None] = (None,),
    periphery: Periphery | str | None = None,
    device: DeviceLike = None,
) -> list[Comparison]:
    """Fit every method once on the training chips and score it on evaluation chips of each
    spec in `eval_faults` (None: the training chips' `fault`), one `Comparison` each: the
    same tests and the same A_cutoff on every physics.

    Parameters
    ----------
    model : LoadedModel
        A classifier.
    fault : str
        Fault spec of both populations.
    data : Dataset
        Labelled images that define each chip's accuracy (pass iff accuracy > A_cutoff).
    real : Dataset, optional
        Real images the real-image baselines may draw their test images from; never the
        images that define accuracy. Default: `real_share` of `data` held out by a seeded
        split (`REAL_SEED`), the rest of `data` defining accuracy; ``setup["real_split"]``
        records it.
    methods : dict of str to TestMethod, optional
        Default: `default_methods()`. A method's parents must come before it.
    train_chips, eval_chips : int
        D and E.
    seed, eval_seed : int
        Population seeds; they must differ.
    cutoff : Cutoff or str
        How A_cutoff is set from the training chips' accuracies: ``"A70"`` (70 % of them
        pass, paper 2's worked example) or ``"P70"`` (above their 70th percentile).
    real_share : float
        Share of `data` held out as the real-image pool when `real` is None.
    copies : int
        Versions of each image of `data` that define accuracy: the image and seeded affine
        copies (`cimtest.data.augment`), made after the real-image pool is held out, so no
        copy of a real image defines accuracy.
    eval_faults : sequence of str or None
        Fault specs of the evaluation chips (None: `fault`); each population has seed
        `eval_seed` and `eval_chips` chips.
    periphery : Periphery or str, optional
        DAC, ADC and output noise of both populations' crossbars (`cimtest.hardware.periphery`;
        a preset or keys); None: the ideal periphery.
    device : str or torch.device, optional
        Where both populations' chips are drawn and evaluated (`Population`); the CPU by
        default.
    """
    if model.task != "classification":
        raise ConfigError(f"compare needs a classifier; '{model.name}' is a {model.task} model")
    if seed == eval_seed:
        raise ConfigError("the training and evaluation populations need different seeds")
    if train_chips < 10 or eval_chips < 1:
        raise ConfigError(f"compare needs at least 10 training chips and 1 evaluation chip; "
                          f"got {train_chips} and {eval_chips}")
    methods = default_methods(seed=seed) if methods is None else methods
    split = None
    if real is None:
        total = len(data)
        data, real = hold_out(data, real_share, REAL_SEED)
        split = {"share": real_share, "seed": REAL_SEED, "real_images": len(real),
                 "data_images": len(data), "of": total}
        real = Dataset(real.x, real.y, real.num_classes, real.task,
                       f"{real.name}: {len(real)} of its {total} images held out (seeded split, "
                       f"share {real_share:g}, seed {REAL_SEED}); the other {len(data)} define "
                       "accuracy")
    if copies > 1:
        data = augment(data, copies)
    kw = {"array_size": array_size, "bits_per_cell": bits_per_cell, "memory": memory,
          "periphery": periphery, "device": device}
    train = Population(model.module, fault, seed, train_chips, **kw)
    evaluations = [Population(model.module, spec or fault, eval_seed, eval_chips, **kw)
                   for spec in eval_faults]  # every spec checked before any work

    fit_s = dict.fromkeys(methods, 0.0)
    bank = InputBank()
    bank.add(data.x)
    candidates: dict[str, torch.Tensor] = {}
    for i, (name, method) in enumerate(methods.items()):
        report(progress, i, len(methods), "propose")
        if method.parents:
            continue  # its inputs are its parents', known once they have learnt
        start = time.perf_counter()
        candidates[name] = bank.add(method.propose(model, real, device=train.device))
        fit_s[name] += time.perf_counter() - start
    report(progress, len(methods), len(methods), "propose")

    start = time.perf_counter()
    train_out = train.outputs(bank.inputs, progress=staged(progress, "train chips"))
    train_s = time.perf_counter() - start
    n_data = len(data)
    accuracy = chip_accuracies(train_out[:, :n_data], data.y, "classification").cpu().numpy()
    rule = parse_cutoff(cutoff) if isinstance(cutoff, str) else cutoff
    a_cutoff = rule.accuracy(accuracy)
    outcomes = ChipOutcomes(accuracy > a_cutoff, a_cutoff, accuracy, rule.name)

    for i, (name, method) in enumerate(methods.items()):
        report(progress, i, len(methods), "learn")
        start = time.perf_counter()
        index = candidates.get(name)
        if index is None:
            index = bank.index(method.propose(model, real, device=train.device))
        method.attach_chips(train)
        method.learn(train_out[:, index], outcomes.known_to(method))
        method.training_ = {**train.recipe(), "cutoff": outcomes.cutoff,
                            "passed": int(outcomes.passed.sum())}
        fit_s[name] += time.perf_counter() - start
    report(progress, len(methods), len(methods), "learn")
    del train_out

    test_bank = InputBank()
    test_bank.add(data.x)
    inputs = {name: test_bank.add(method.inputs_) for name, method in methods.items()}
    share = pass_fraction(accuracy, a_cutoff)
    results = []
    for spec, evaluation in zip(eval_faults, evaluations, strict=True):
        start = time.perf_counter()
        eval_out = evaluation.outputs(test_bank.inputs,
                                      progress=staged(progress, "evaluation chips"))
        eval_s = time.perf_counter() - start
        correct = correct_answers(eval_out[:, :n_data], data.y)
        eval_acc = 100.0 * correct.mean(axis=1)  # exact: counts over N, as chip_accuracies
        failed = ~(eval_acc > a_cutoff)
        truth_ceiling = ceiling(correct, a_cutoff, sources=data.sources)

        rows, roc, scores, flags, right = [], {}, {}, {}, {}
        for name, method in methods.items():
            features = method.respond(eval_out[:, inputs[name]])
            score = method.score(features)
            flagged = np.asarray(method.decide(features), dtype=bool)
            right[name] = flagged == failed  # the verdict matches the truth (TA's numerator)
            ta = rate(right[name])
            rows.append({
                "method": name,
                **test_metrics(~flagged, eval_acc, a_cutoff),
                "ta_low": 100.0 * ta.low,
                "ta_high": 100.0 * ta.high,
                "best": None,  # set below, once every method is scored
                "p_vs_best": None,
                "tied_with_best": None,
                "coverage": 100.0 * rate(flagged[failed]).value,
                "false_alarm": 100.0 * rate(flagged[~failed]).value,
                "auc": roc_auc(score, failed),
                "ceiling": truth_ceiling,
                "pass_fraction": share,
                "eval_pass_fraction": float(np.mean(~failed)),
                "eval_accuracy_mean": float(np.mean(eval_acc)),
                "test_bytes": method.test_bytes(),
                "detector_bytes": method.model_bytes(),
                "forward_passes": len(inputs[name]),
                "needs": ["model", *method.needs],
                "fit_s": fit_s[name],
                "accuracy_rmse": _accuracy_rmse(method.predicted_accuracy(features), eval_acc),
                "kept_step": getattr(method, "best_step_", None),
                "note": method.describe().get("note"),
            })
            roc[name] = roc_curve(score, failed)
            scores[name], flags[name] = score, flagged
        del eval_out  # before the next population's outputs are made
        best, paired = paired_against_best(right)  # McNemar's exact test against the highest TA
        for row in rows:
            row["best"] = row["method"] == best
            row["p_vs_best"], row["tied_with_best"] = paired[row["method"]]
        setup = {
            "model": model.name, "fingerprint": model.fingerprint, "fault": fault,
            "eval_fault": spec or fault, "hardware": train.spec.periphery.spec(),
            "train_chips": train_chips, "eval_chips": eval_chips, "seed": seed,
            "eval_seed": eval_seed, "cutoff": rule.name, "cutoff_accuracy": a_cutoff,
            "pass_fraction": share, "ceiling": truth_ceiling,
            "data": data.name, "data_images": n_data, "real": real.name,
            "real_images": len(real), "real_split": split,
            "array_size": None if array_size is None else list(array_size),
            "bits_per_cell": bits_per_cell,
            "params": {name: _json_params(m) for name, m in methods.items()},
        }
        forwards = {"train": len(bank), "eval": len(test_bank), "train_s": train_s,
                    "eval_s": eval_s}
        results.append(Comparison(rows, roc, accuracy, eval_acc, a_cutoff, forwards, methods,
                                  scores, flags, setup))
    return results


def compare(
    model: LoadedModel,
    fault: str,
    data: Dataset,
    *,
    eval_fault: str | None = None,
    **kw,
) -> Comparison:
    """Fit every method on the training chips and score it on the evaluation chips.

    Parameters
    ----------
    model : LoadedModel
        A classifier.
    fault : str
        Fault spec of the training chips (and of the evaluation chips by default).
    data : Dataset
        Labelled images that define each chip's accuracy (and, by default, the real-image
        pool held out of them).
    eval_fault : str, optional
        Fault spec of the evaluation chips, when it differs from `fault` (a test fitted on
        one physics, scored on another); A_cutoff stays the training chips'.
    **kw
        The other arguments of `compare_across` (methods, chips, seeds, cutoff, geometry,
        periphery, ...).
    """
    return compare_across(model, fault, data, eval_faults=(eval_fault,), **kw)[0]


def _accuracy_rmse(predicted: np.ndarray | None, accuracy: np.ndarray) -> float | None:
    """RMSE (points) of the accuracy a test predicts, None for tests that predict pass/fail
    only."""
    if predicted is None:
        return None
    return float(np.sqrt(np.mean((predicted - accuracy) ** 2)))


def _json_params(method: TestMethod) -> dict:
    """Constructor arguments that are plain values (parents are named by their class)."""
    out = {}
    for key, value in method.get_params().items():
        if isinstance(value, TestMethod):
            value = type(value).__name__
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out
