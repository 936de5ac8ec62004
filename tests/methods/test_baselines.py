"""Baselines and the hybrid on a tiny classifier, against hand-checked decisions."""

import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from cimtest.engine import InputBank, Population, StoredChips
from cimtest.exceptions import ConfigError, NotFittedError
from cimtest.methods.base import ChipOutcomes, TestMethod
from cimtest.methods.baselines import (
    DatasetAwareTest,
    FGSMTestImages,
    NoiseImagesTest,
    PointTestVectors,
    RandomSyntheticTest,
    _correlation,
    best_threshold,
)
from cimtest.methods.btv import BayesianTestVector
from cimtest.methods.detector import Detector
from cimtest.methods.egis import EntropyImageTest
from cimtest.methods.hybrid import HybridTest, chip_folds, threshold_for_escapes

FAULT = "mult:eta=0.3"


@pytest.fixture(scope="module")
def tiny(tiny_classifier):
    """A tiny digits classifier with an input_shape attribute, and the digits splits."""
    return tiny_classifier


def ideal(model):
    return Population(model, "none", 0, n=1)


def test_best_threshold_by_hand():
    scores = np.array([0.0, 0.0, 1.0, 2.0, 3.0])
    failed = np.array([False, False, False, True, True])
    assert best_threshold(scores, failed) == 1.5  # flags 2 and 3 only: all five right
    # ties in accuracy go to the larger threshold (fewer flags)
    assert best_threshold(np.array([1.0, 2.0]), np.array([False, False])) == 2.0
    assert best_threshold(np.array([1.0, 2.0]), np.array([True, True])) == 0.0


def test_threshold_for_escapes_by_hand():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    failed = np.array([False, True, False, True, False, False, True, False, True, True])
    t0 = threshold_for_escapes(scores, failed, 0.0)  # no escape: every fail flagged
    assert t0 < 0.2 and (scores > t0)[failed].all()
    t10 = threshold_for_escapes(scores, failed, 10.0)  # one of ten chips may escape
    assert 0.2 <= t10 < 0.4 and ((scores <= t10) & failed).sum() == 1
    t20 = threshold_for_escapes(scores, failed, 20.0)
    assert 0.4 <= t20 < 0.7 and ((scores <= t20) & failed).sum() == 2


def test_point_vectors_threshold_is_the_ideal_chips_sigma(tiny):
    model, data = tiny
    test = PointTestVectors(k=3, seed=4)
    x = test.propose(model, data.train)
    assert x.shape == (3, 1, 8, 8)
    rows = [int(((data.train.x - r).abs().sum(dim=(1, 2, 3)) == 0).nonzero()[0]) for r in x]
    assert len(set(rows)) == 3  # three distinct real images
    with torch.no_grad():
        out = ideal(model).mapped.ideal(x)
    assert test.sigma_ideal_ == pytest.approx(float(out.double().std(unbiased=False)), rel=1e-5)
    sigma = test.respond(ideal(model).outputs(x))
    assert not test.decide(sigma).any()  # the ideal chip passes (strict comparison)
    scaled = test.respond(2 * ideal(model).outputs(x))
    assert test.decide(scaled).all() and test.score(scaled)[0] == pytest.approx(2 * sigma[0])
    with pytest.raises(ConfigError, match="real images"):
        PointTestVectors().propose(model, None)


def test_fgsm_images_keep_the_ideal_label_near_the_boundary(tiny):
    model, data = tiny
    test = FGSMTestImages(k=4, seed=1)
    x = test.propose(model, data.train)
    chip = ideal(model)
    labels = chip.outputs(x)[0].argmax(dim=1)
    assert torch.equal(labels, test.labels_)
    assert (test.eps_ > 0).all()
    # the ideal chip has no mismatch; a hand-made chip that swaps two labels has two
    assert test.respond(chip.outputs(x)).tolist() == [0.0]
    swapped = chip.outputs(x).clone()
    for j in (0, 2):
        swapped[0, j] = torch.roll(swapped[0, j], 1)
    assert test.respond(swapped).tolist() == [2.0]


def test_fgsm_learns_the_mismatch_count_that_separates(tiny):
    model, data = tiny
    test = FGSMTestImages(k=3, seed=2)
    x = test.propose(model, data.train)
    base = ideal(model).outputs(x)[0]
    outs = base.repeat(6, 1, 1)
    for chip, wrong in enumerate([0, 0, 1, 2, 3, 3]):
        for j in range(wrong):
            outs[chip, j] = torch.roll(base[j], 1)
    passed = np.array([True, True, True, False, False, False])
    test.learn(outs, ChipOutcomes(passed, 90.0))
    assert test.threshold_ == 1.5
    assert test.decide(test.respond(outs)).tolist() == [False, False, False, True, True, True]
    assert test.separates_ and "note" not in test.describe()


def test_fgsm_says_when_no_count_separates(tiny):
    """Every chip, pass or fail, has the same mismatch count: the best count flags every chip
    (fails are the majority), which separates nothing; the description says so in a note."""
    model, data = tiny
    test = FGSMTestImages(k=3, seed=2)
    x = test.propose(model, data.train)
    base = ideal(model).outputs(x)[0]
    outs = base.repeat(5, 1, 1)
    outs[:, 0] = torch.roll(base[0], 1)  # one label off on every chip
    test.learn(outs, ChipOutcomes(np.array([True, True, False, False, False]), 90.0))
    assert test.decide(test.respond(outs)).all()  # flags every chip: 3 of 5 right, as "fail"
    assert not test.separates_
    assert test.describe()["separates"] is False
    assert "flags every chip or none" in test.describe()["note"]


def test_the_image_choice_correlation_is_pearsons_and_nan_when_flat():
    """numpy's corrcoef (was a hand formula; both chose the same K images, and so gave the
    same scores, in 9 fits on three faults, 2026-12-07); a flat column is NaN, silently (the
    choice reads it as 0)."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 3))
    values[:, 2] = 1.0
    target = 2 * values[:, 0] + rng.normal(size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corr = _correlation(values, target)
    for j in (0, 1):
        assert corr[j] == pytest.approx(stats.pearsonr(values[:, j], target).statistic,
                                        abs=1e-12)  # float64 rounding of two sums of 50
    assert np.isnan(corr[2])


def test_dataset_aware_picks_the_image_that_tracks_accuracy(tiny):
    model, data = tiny
    test = DatasetAwareTest(k=1, candidates=5, detector_estimators=20, seed=0)
    cands = test.propose(model, data.train)
    assert cands.shape == (5, 1, 8, 8)
    d = 40
    rng = np.random.default_rng(0)
    accuracy = np.linspace(80, 100, d)
    outs = torch.zeros(d, 5, 10)
    outs[:] = torch.from_numpy(rng.normal(size=(d, 5, 10))).float() * 0.01
    labels = test.ideal_labels_
    # image 3's ideal-class logit grows with accuracy: its probability tracks the accuracy
    outs[torch.arange(d), 3, labels[3]] = torch.from_numpy((accuracy - 80) / 4).float()
    chips = ChipOutcomes(accuracy > 90, 90.0, accuracy)
    test.learn(outs, chips)
    assert test.chosen_.tolist() == [3]
    flagged = test.decide(test.respond(outs[:, [3]]))
    assert (flagged == (accuracy <= 90)).mean() >= 0.9
    with pytest.raises(ConfigError, match="accuracies"):
        DatasetAwareTest(k=1, candidates=5).learn(outs, chips.labels_only())


def test_noise_and_random_synthetic_inputs(tiny):
    model, data = tiny
    noise = NoiseImagesTest(k=3, input_range=(-1.0, 2.0), seed=5)
    x = noise.propose(model)
    assert x.shape == (3, 1, 8, 8) and x.min() >= -1 and x.max() <= 2
    assert torch.equal(x, NoiseImagesTest(k=3, input_range=(-1.0, 2.0), seed=5).propose(model))
    source = EntropyImageTest(sid_size=16, steps=2, batch=8, input_range=data.input_range)
    sid = source.propose(model)
    synthetic = RandomSyntheticTest(source=source, k=4, seed=0)
    y = synthetic.propose(model)
    assert torch.equal(y, sid[torch.as_tensor(synthetic.chosen_)])
    with pytest.raises(NotFittedError):
        noise.decide(np.zeros((2, 30)))


def test_detector_ablation_learns_a_separable_population(tiny):
    model, _ = tiny
    test = NoiseImagesTest(k=2, input_range=(0.0, 1.0), detector_estimators=20, seed=0)
    test.propose(model)
    passed = np.arange(60) % 2 == 0

    def chips(seed: int) -> torch.Tensor:
        outs = torch.randn(60, 2, 10, generator=torch.Generator().manual_seed(seed))
        outs[~torch.from_numpy(passed), 0, 0] += 8.0  # fail chips stand out on one output
        return outs

    test.learn(chips(0), ChipOutcomes(passed, 90.0))
    # other chips of the same population, 8 sd apart on that output: a split on it alone
    # classifies all of them; boosting on 60 chips also splits on noise outputs, which
    # costs a chip or two (measured 59 of 60), so at least 57 of 60 (95 %)
    assert (test.decide(test.respond(chips(1))) == ~passed).mean() >= 0.95


def test_hybrid_features_are_signatures_and_sigma(tiny):
    model, data = tiny
    egis = EntropyImageTest(k=2, sid_size=16, steps=2, batch=8, input_range=data.input_range)
    egis.propose(model)
    egis.inputs_ = egis.sid_[:2]  # the compact set, without a compaction
    assert torch.equal(egis.images_, egis.sid_[:2])
    vector = BayesianTestVector(steps=5).fit(model)
    hybrid = HybridTest(egis=egis, btv=vector, target_te=0.0, folds=2, detector_estimators=10)
    x = hybrid.propose()
    assert torch.equal(x, torch.cat([egis.sid_[:2], vector.sample_]))
    population = Population(model, FAULT, 0, 40)
    outs = population.outputs(x)
    features = hybrid.respond(outs)
    assert features.shape == (40, 2 * 10 + 1)
    np.testing.assert_allclose(features[:, -1], vector.respond(outs[:, 2:]))
    acc = population.accuracy(data.test.x, data.test.y).numpy()
    hybrid.learn(outs, ChipOutcomes(acc > np.median(acc), float(np.median(acc))))
    failed = ~(acc > np.median(acc))
    assert not ((hybrid.oof_score_ <= hybrid.threshold_) & failed).any()  # TE target 0 %
    # each chip's out-of-fold score comes from the one detector that did not train on it
    for train, held in chip_folds(~failed, 2, hybrid.seed):
        fold = Detector(n_estimators=10, seed=hybrid.seed).fit(features[train], ~failed[train])
        np.testing.assert_array_equal(hybrid.oof_score_[held],
                                      1.0 - fold.probability(features[held]))
    assert hybrid.test_bytes() == 2 * 64 * 4 + 2 * 64 * 4


def test_hybrid_folds_hold_out_every_chip_once():
    passed = np.arange(103) % 3 > 0  # 68 pass, 35 fail
    folds = chip_folds(passed, 5, seed=4)
    assert len(folds) == 5
    held = np.concatenate([h for _, h in folds])
    np.testing.assert_array_equal(np.sort(held), np.arange(103))  # a partition
    for train, out in folds:
        np.testing.assert_array_equal(np.sort(np.concatenate([train, out])), np.arange(103))
        assert abs(out.size - 103 / 5) < 1
        assert abs((~passed[out]).sum() - 35 / 5) < 1  # stratified: 7 fail chips in each
    again = chip_folds(passed, 5, seed=4)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(folds, again))
    assert not np.array_equal(chip_folds(passed, 5, seed=5)[0][1], folds[0][1])


def test_every_method_fits_on_one_contract_and_round_trips(tiny, tmp_path):
    """Each method fitted by the same call, saved to one artefact and loaded (by its class
    and through the base): the same scores and verdicts; learned models (LightGBM) travel
    inside the artefact, and the hybrid's parents with it."""
    model, data = tiny
    population = Population(model, FAULT, 0, 40)
    acc = population.accuracy(data.test.x, data.test.y).numpy()
    cutoff = float(np.median(acc))
    outcomes = ChipOutcomes(acc > cutoff, cutoff, acc, cutoff="A50")
    egis = EntropyImageTest(k=2, sid_size=16, steps=2, batch=8, t_final=1.0, rho=0.5,
                            splits=2, reward_estimators=5, detector_estimators=5,
                            input_range=data.input_range)
    vector = BayesianTestVector(steps=5)
    methods = [vector, egis, PointTestVectors(k=2), FGSMTestImages(k=2),
               DatasetAwareTest(k=2, candidates=8, detector_estimators=5),
               NoiseImagesTest(k=2, detector_estimators=5),
               RandomSyntheticTest(source=egis, k=2, detector_estimators=5),
               HybridTest(egis=egis, btv=vector, folds=2, detector_estimators=5)]
    with_model = {"egis", "dataset-aware", "noise+detector", "random-synthetic+detector",
                  "hybrid"}  # the methods that store a LightGBM model beside their inputs
    check = Population(model, FAULT, 3, 8)
    for method in methods:
        learns = "chip labels" in method.needs or "chip accuracies" in method.needs
        if learns:
            with pytest.raises(ConfigError, match="learns from chips"):
                type(method)(**method.get_params()).fit(model, data=data.train)
        assert method.fit(model, population, outcomes, data.train) is method
        assert (method.model_bytes() > 0) == (method.name in with_model)
        path = method.save(tmp_path / f"{method.name}.safetensors", info={"cutoff": "A50"})
        back = type(method).load(path, method.fingerprint_)
        assert type(TestMethod.load(path)) is type(method)
        assert back.saved_info_ == {"cutoff": "A50"}
        plain = {k: v for k, v in method.get_params().items()
                 if not isinstance(v, TestMethod)}
        assert {k: v for k, v in back.get_params().items() if k in plain} == plain
        assert back.threshold_ == method.threshold_
        assert torch.equal(back.inputs_, method.inputs_)
        assert back.test_bytes() == method.test_bytes()
        assert back.model_bytes() == method.model_bytes()
        features = method.respond(check.outputs(method.inputs_))
        np.testing.assert_array_equal(back.respond(check.outputs(back.inputs_)), features)
        np.testing.assert_array_equal(back.score(features), method.score(features))
        np.testing.assert_array_equal(back.decide(features), method.decide(features))
        predicted = back.predicted_accuracy(features)  # only the regressor predicts accuracy
        assert (predicted is None) == (method.name != "dataset-aware")
        if predicted is not None:
            np.testing.assert_allclose(cutoff - predicted, method.score(features))
        if learns:
            assert method.training_["n"] == 40 and method.training_["cutoff"] == "A50"
    hybrid = TestMethod.load(tmp_path / "hybrid.safetensors")
    assert isinstance(hybrid.egis, EntropyImageTest) and isinstance(hybrid.btv,
                                                                     BayesianTestVector)
    np.testing.assert_array_equal(hybrid.egis.chosen_, egis.chosen_)
    assert hybrid.btv.threshold_ == vector.threshold_
    assert DatasetAwareTest.needs == ("real images", "chip accuracies")
    assert methods[4].cutoff_accuracy_ == cutoff  # the accuracies reached the one that needs them
    # the chips measured as a campaign in a store (StoredChips) fit the same test
    noise = methods[5]
    stored = NoiseImagesTest(k=2, detector_estimators=5).fit(model, StoredChips(population),
                                                             outcomes)
    torch.testing.assert_close(StoredChips(population).outputs(noise.inputs_),
                               population.outputs(noise.inputs_))
    assert stored.training_ == noise.training_
    features = noise.respond(check.outputs(noise.inputs_))
    np.testing.assert_array_equal(stored.decide(features), noise.decide(features))


def test_input_bank_stores_each_row_once():
    bank = InputBank()
    a = torch.arange(12.0).reshape(3, 4)
    assert bank.add(a).tolist() == [0, 1, 2]
    assert bank.add(torch.stack([a[1], a[1] + 100, a[0]])).tolist() == [1, 3, 0]
    assert len(bank) == 4 and torch.equal(bank.inputs[3], a[1] + 100)
    assert bank.index(a[[2, 0]]).tolist() == [2, 0]
    with pytest.raises(KeyError, match="row 0"):
        bank.index(a[:1] - 1)
