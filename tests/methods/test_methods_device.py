"""The methods' device code path on the CPU: a fit on chips (or with ``device=``) on an explicit
device is the default bit for bit, every tensor a method keeps or returns is on that device,
every `torch.Generator` a fit creates is created there, and a device other than the chips'
is refused before any work."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from cimtest.engine import Population, StoredChips
from cimtest.evaluation import Level, evaluate_btv
from cimtest.exceptions import ConfigError
from cimtest.faults import read_fault
from cimtest.methods import (
    BayesianTestVector,
    ChipOutcomes,
    EntropyImageTest,
    LearnedTest,
    OptimizedTest,
    TestMethod,
)
from cimtest.methods.baselines import (
    DatasetAwareTest,
    FGSMTestImages,
    NoiseImagesTest,
    PointTestVectors,
    RandomSyntheticTest,
)
from cimtest.methods.detector import Detector
from cimtest.methods.hybrid import HybridTest

CPU = torch.device("cpu")
FAULT = "mult:eta=0.3"
CHIPS = 40
SMALL_EGIS = {"sid_size": 16, "steps": 3, "batch": 4, "rho": 0.5, "splits": 1,
              "reward_estimators": 5, "detector_estimators": 5}
GRADIENT = {"k": 2, "candidates": 16, "steps": 3, "batch": 4, "check_every": 2,
            "detector_estimators": 5}

METHODS: dict[str, Callable[[], TestMethod]] = {
    "btv": lambda: BayesianTestVector(steps=5, batch=2, false_alarm=0.1, far_draws=50),
    "point-vectors": lambda: PointTestVectors(k=3),
    "fgsm": lambda: FGSMTestImages(k=3),
    "dataset-aware": lambda: DatasetAwareTest(k=2, candidates=16, detector_estimators=5),
    "noise": lambda: NoiseImagesTest(k=3, detector_estimators=5),
    "random-synthetic": lambda: RandomSyntheticTest(source=EntropyImageTest(**SMALL_EGIS),
                                                    k=3, detector_estimators=5),
    "egis": lambda: EntropyImageTest(k=2, **SMALL_EGIS),
    "learned": lambda: LearnedTest(init="noise", **GRADIENT),
    "learned-synthetic": lambda: LearnedTest(source=EntropyImageTest(**SMALL_EGIS),
                                             **GRADIENT),
    "optimized": lambda: OptimizedTest(init="real", **GRADIENT),
}


@pytest.fixture(scope="module")
def setting(tiny_classifier):
    """Model, real images and the training chips' outcomes."""
    model, data = tiny_classifier
    train = Population(model, FAULT, seed=0, n=CHIPS)
    accuracy = train.accuracy(data.test.x, data.test.y).numpy()
    cutoff = float(np.median(accuracy))
    outcomes = ChipOutcomes(accuracy > cutoff, cutoff, accuracy, "A50")
    return model, data.train, outcomes


def _fit(make: Callable[[], TestMethod], setting, device: str | None) -> TestMethod:
    """A method fitted on chips on `device` (None: the default), or with ``device=`` when it
    learns from the model alone."""
    model, real, outcomes = setting
    method = make()
    kw = {} if device is None else {"device": device}
    if "chip labels" in method.needs or "chip accuracies" in method.needs:
        chips = Population(model, FAULT, seed=0, n=CHIPS, **kw)
        return method.fit(model, chips, outcomes, real)
    return method.fit(model, data=real, **kw)


def _learned(method: TestMethod) -> dict[str, object]:
    """Every learned attribute (ending in ``_``) of `method`."""
    return {k: v for k, v in vars(method).items() if k.endswith("_") and not k.startswith("_")}


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, Detector):
        return a.to_string() == b.to_string()
    return a == b


def _tensors(method: TestMethod) -> list[torch.Tensor]:
    """Every tensor a fitted method keeps, figures and responds with, its parents' too."""
    found = [v for v in _learned(method).values() if isinstance(v, torch.Tensor)]
    found += list(method.figures().values())
    for parent in method.fitted_parents().values():
        found += _tensors(parent)
    return found


@pytest.mark.parametrize("name", METHODS)
def test_explicit_cpu_fit_is_the_default_bit_for_bit(name, setting) -> None:
    default = _fit(METHODS[name], setting, None)
    explicit = _fit(METHODS[name], setting, "cpu")
    learned = _learned(default)
    assert learned.keys() == _learned(explicit).keys()
    for key, value in learned.items():
        assert _same(value, getattr(explicit, key)), key
    model = setting[0]
    evaluation = Population(model, FAULT, seed=1, n=12, device="cpu")
    outputs = evaluation.outputs(explicit.inputs_)
    features = explicit.respond(outputs)
    assert np.array_equal(features, default.respond(outputs))
    assert np.array_equal(explicit.score(features), default.score(features))
    assert all(t.device == CPU for t in [outputs, *_tensors(explicit)])


def _record_generators(monkeypatch) -> list[object]:
    """The device argument of every `torch.Generator` created from now on (None: none)."""
    real = torch.Generator
    devices: list[object] = []

    def recording(*args, **kwargs):
        devices.append(kwargs.get("device", args[0] if args else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "Generator", recording)
    return devices


@pytest.mark.parametrize("name", METHODS)
def test_every_generator_of_a_fit_is_created_on_its_device(name, setting, monkeypatch) -> None:
    devices = _record_generators(monkeypatch)
    _fit(METHODS[name], setting, "cpu")
    assert devices, "no generator was created"
    assert all(d is not None and torch.device(d) == CPU for d in devices), devices


def test_hybrid_on_its_chips_device(setting) -> None:
    model, _, outcomes = setting
    chips = Population(model, FAULT, seed=0, n=CHIPS, device="cpu")
    egis = EntropyImageTest(k=2, **SMALL_EGIS).fit(model, chips, outcomes)
    btv = BayesianTestVector(steps=5, batch=2).fit(model, device="cpu")
    explicit = HybridTest(egis=egis, btv=btv, folds=2, detector_estimators=5)
    explicit.fit(model, chips, outcomes)
    default = HybridTest(egis=egis, btv=btv, folds=2, detector_estimators=5)
    default.fit(model, Population(model, FAULT, seed=0, n=CHIPS), outcomes)
    assert torch.equal(explicit.inputs_, default.inputs_)
    assert np.array_equal(explicit.oof_score_, default.oof_score_)
    assert explicit.threshold_ == default.threshold_
    assert all(t.device == CPU for t in _tensors(explicit))


def test_stored_chips_carry_their_population_device(setting) -> None:
    model, _, outcomes = setting
    stored = StoredChips(Population(model, FAULT, seed=0, n=CHIPS, device="cpu"))
    assert stored.device == CPU
    test = EntropyImageTest(k=2, **SMALL_EGIS).fit(model, stored, outcomes)
    default = EntropyImageTest(k=2, **SMALL_EGIS).fit(
        model, Population(model, FAULT, seed=0, n=CHIPS), outcomes)
    assert torch.equal(test.inputs_, default.inputs_)


def test_a_device_other_than_the_chips_is_refused_before_any_work(setting, monkeypatch
                                                                  ) -> None:
    model, real, outcomes = setting
    chips = Population(model, FAULT, seed=0, n=CHIPS, device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def no_work(*args, **kwargs):
        raise AssertionError("proposed before the device was checked")

    method = NoiseImagesTest(k=3)
    monkeypatch.setattr(method, "propose", no_work)
    with pytest.raises(ConfigError, match="'cuda:0' but the chips are on 'cpu'"):
        method.fit(model, chips, outcomes, real, device="cuda")


def test_auto_without_cuda_fits_on_the_cpu(setting, monkeypatch) -> None:
    model, _, _ = setting
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    auto = BayesianTestVector(steps=5, batch=2).fit(model, device="auto")
    default = BayesianTestVector(steps=5, batch=2).fit(model)
    assert auto.mean_.device == CPU
    assert torch.equal(auto.inputs_, default.inputs_)


def test_btv_fresh_draws_on_the_chips_device(tiny_classifier, monkeypatch) -> None:
    model, data = tiny_classifier
    test = BayesianTestVector(steps=5, batch=2, false_alarm=0.1, far_draws=50).fit(model)
    chips = Population(model, "none", seed=2, n=6, device="cpu")
    default = Population(model, "none", seed=2, n=6)
    levels = [Level(read_fault(FAULT), FAULT, 1, None)]
    kw = {"fresh": 20, "fresh_per_chip": 2, "offsets": (0.0,)}
    expected = evaluate_btv(test, default, levels, data.test, **kw)
    generator = torch.Generator(device="cpu")
    devices = _record_generators(monkeypatch)
    rows = evaluate_btv(test, chips, levels, data.test, **kw)
    assert rows == expected
    assert np.array_equal(test.fresh_responses(chips, 10, seed=4),
                          test.fresh_responses(default, 10, seed=4))
    assert devices and all(d is not None and torch.device(d) == CPU for d in devices), devices
    assert test.draw(2, generator).device == CPU
