"""EGIS: entropy terms, the labels-only API, the detector's text format, a tiny end-to-end fit."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from cimtest.artifacts import load_artifact
from cimtest.engine import Population
from cimtest.exceptions import ArtifactError, ConfigError, NotFittedError
from cimtest.methods import BayesianTestVector, TestMethod
from cimtest.methods.base import ChipOutcomes
from cimtest.methods.detector import Detector
from cimtest.methods.egis import EntropyImageTest
from cimtest.methods.egis_grid import (
    ARTIFACT_FILE,
    SID_FILE,
    fit_grid,
    load_proposal,
    member_dirs,
    save_grid,
)
from cimtest.methods.generator import EGISGenerator, egis_loss, entropies

FAULT = "egis-typical:sigma=0.3"


def test_entropy_of_uniform_predictions_is_log_m():
    h_c, h_s = entropies(torch.zeros(5, 10))  # equal logits: uniform softmax
    assert h_c.item() == pytest.approx(math.log(10))
    assert h_s.item() == pytest.approx(math.log(10))


def test_entropy_of_one_hot_predictions():
    one_hot = torch.full((10, 10), -1e4).fill_diagonal_(1e4)  # a balanced batch of one-hots
    h_c, h_s = entropies(one_hot)
    assert h_c.item() == pytest.approx(0.0, abs=1e-6)
    assert h_s.item() == pytest.approx(math.log(10))
    assert egis_loss(one_hot).item() == pytest.approx(-10.0)  # -exp(log M - 0) = -M
    same = torch.full((4, 3), -1e4)
    same[:, 1] = 1e4  # every image the same class: H_s = 0
    assert entropies(same)[1].item() == pytest.approx(0.0, abs=1e-6)


def test_entropy_hand_computed_mixture():
    p = torch.tensor([[0.5, 0.5], [1.0, 1e-12]])
    h_c, h_s = entropies(p.log())
    assert h_c.item() == pytest.approx(math.log(2) / 2, rel=1e-5)
    assert h_s.item() == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)),
                                       rel=1e-5)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (3, 28, 20)])
def test_generator_shapes_and_range(shape):
    g = EGISGenerator(shape, (-0.5, 2.0))
    with torch.no_grad():
        x = g(torch.randn(4, 100))
    assert tuple(x.shape) == (4, *shape)
    assert x.min() >= -0.5 and x.max() <= 2.0


def test_generator_is_table_one_for_32x32():
    g = EGISGenerator((3, 32, 32))
    convs = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (100, 256, 2), (256, 128, 4), (128, 64, 4), (64, 32, 4), (32, 3, 4)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.net) == 4
    assert isinstance(g.net[-1], nn.Tanh)


def test_chip_outcomes_take_labels_only():
    ok = ChipOutcomes(torch.tensor([True, False, True]), cutoff="A50")
    assert len(ok.passed) == 3 and int(ok.passed.sum()) == 2 and ok.cutoff == "A50"
    assert ChipOutcomes(np.array([True, False])).passed.dtype == np.bool_
    for bad in (torch.tensor([93.1, 80.2]), np.array([0.9, 0.1]), torch.tensor([1, 0]),
                np.array([[True, False]])):
        with pytest.raises(ConfigError, match="labels"):
            ChipOutcomes(bad)
    with pytest.raises(ConfigError, match="both pass and fail"):
        ChipOutcomes(np.array([True, True]))
    # EGIS learns from labels: without chips and outcomes it refuses to fit
    linear = nn.Linear(2, 2)
    linear.input_shape = (2,)
    with pytest.raises(ConfigError, match="learns from chips"):
        EntropyImageTest().fit(linear, torch.tensor([90.0, 80.0]))
    # and it never sees accuracies, even when the outcomes carry them
    known = ChipOutcomes(np.array([True, False]), 85.0, np.array([90.0, 80.0]))
    assert "chip accuracies" not in EntropyImageTest.needs
    assert known.known_to(EntropyImageTest()).accuracy is None
    assert known.known_to(EntropyImageTest()).passed.tolist() == [True, False]


def test_detector_text_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6))
    y = x[:, 0] + 0.3 * rng.normal(size=80) > 0
    detector = Detector(n_estimators=20).fit(x, y)
    text = detector.to_string()
    assert text.startswith("tree")  # LightGBM's text format, no pickle
    assert detector.size_bytes() == len(text.encode())
    loaded = Detector.from_string(text)
    np.testing.assert_array_equal(loaded.probability(x), detector.probability(x))
    with pytest.raises(ConfigError):
        Detector().fit(x, y.astype(float))
    with pytest.raises(ArtifactError):
        Detector.from_string("garbage")


@pytest.fixture(scope="module")
def tiny(tiny_classifier):
    """A tiny digits classifier (input_shape attribute) and its 64 labelled chips."""
    model, data = tiny_classifier
    population = Population(model, FAULT, 0, 64)
    acc = population.accuracy(data.test.x, data.test.y)
    return model, data, population, ChipOutcomes(acc > acc.median(), cutoff="A50")


@pytest.fixture(scope="module")
def fitted(tiny):
    model, data, chips, outcomes = tiny
    test = EntropyImageTest(k=2, sid_size=64, steps=40, batch=32, rho=0.8, splits=2,
                            reward_estimators=10, detector_estimators=20,
                            input_range=data.input_range)
    return test.fit(model, chips, outcomes)


def test_fit_end_to_end(tiny, fitted):
    model, data, _, outcomes = tiny
    test = fitted
    assert test.entropy_curve_.shape == (40, 2)
    assert test.entropy_curve_[-1, 0] < test.entropy_curve_[0, 0]  # H_c falls
    assert tuple(test.images_.shape) == (2, 1, 8, 8) and test.sid_.shape[0] == 64
    low, high = data.input_range
    assert test.images_.min() >= low - 1e-5 and test.images_.max() <= high + 1e-5
    assert len(set(test.chosen_.tolist())) == 2
    assert test.reward_curve_[-1, 2] == test.best_reward_
    outputs = Population(model, FAULT, 1, 16).outputs(test.images_)
    signatures = test.respond(outputs)
    assert signatures.shape == (16, 20)
    assert test.decide(signatures).dtype == bool
    assert test.training_["n"] == 64 and test.training_["cutoff"] == "A50"
    assert test.training_["fault"] == Population(model, FAULT).spec.faults.spec()
    assert test.training_["seed"] == 0
    assert test.training_["passed"] == int(outcomes.passed.sum())
    assert test.images_ is test.inputs_ and test.threshold_ == 0.5
    assert test.model_bytes() == test.detector_.size_bytes() > 0
    assert test.test_bytes() == 2 * 64 * 4


def test_fit_is_reproducible(tiny, fitted):
    model, _, chips, outcomes = tiny
    again = EntropyImageTest(**fitted.get_params()).fit(model, chips, outcomes)
    torch.testing.assert_close(again.images_, fitted.images_)
    np.testing.assert_array_equal(again.reward_curve_, fitted.reward_curve_)


def test_splits_drawn_once_keep_the_former_fit(tiny, fitted):
    """resplit=False gives the test of the code before the splits were redrawn at every
    iteration: these chosen images and best reward (10 of 13 validation chips right) were
    measured on it; the default (new splits per iteration) anneals differently."""
    _, _, chips, outcomes = tiny
    former = EntropyImageTest(**{**fitted.get_params(), "resplit": False})
    former.adopt_proposal(fitted).learn(chips.outputs(fitted.sid_), outcomes)
    assert former.chosen_.tolist() == [0, 55]
    assert former.best_reward_ == 76.92307692307692
    assert fitted.resplit
    assert not np.array_equal(former.reward_curve_, fitted.reward_curve_)


def test_save_load_round_trip(tmp_path, tiny, fitted):
    model, _, _, _ = tiny
    path = fitted.save(tmp_path / "t.safetensors", info={"cutoff": "A50"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors"]  # one file
    fitted.save(path, info={"cutoff": "A50"})  # overwrites atomically
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors"]
    loaded = EntropyImageTest.load(path, fitted.fingerprint_)
    signatures = fitted.respond(Population(model, FAULT, 2, 8).outputs(loaded.images_))
    np.testing.assert_array_equal(loaded.decide(signatures), fitted.decide(signatures))
    np.testing.assert_array_equal(loaded.score(signatures), fitted.score(signatures))
    assert loaded.k == 2 and loaded.get_params() == fitted.get_params()
    assert loaded.saved_info_ == {"cutoff": "A50"} and loaded.training_ == fitted.training_
    np.testing.assert_array_equal(loaded.chosen_, fitted.chosen_)
    assert loaded.chosen_.dtype == fitted.chosen_.dtype  # dtypes kept in the artefact
    assert loaded.best_reward_ == fitted.best_reward_
    assert loaded.sid_entropy_ == fitted.sid_entropy_
    assert isinstance(TestMethod.load(path), EntropyImageTest)
    with pytest.raises(ArtifactError, match="egis"):
        BayesianTestVector.load(path)  # another method's artefact
    with pytest.raises(ArtifactError, match="force"):
        EntropyImageTest.load(path, "0" * 64)
    # the detector lives inside the artefact: one byte of its text edited is refused by the
    # artefact's digest (the old detector.txt beside it could be edited unnoticed)
    data = bytearray(path.read_bytes())
    at = bytes(data).index(fitted.detector_.to_string().encode())
    data[at + 100] = ord("9") if data[at + 100] != ord("9") else ord("8")
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="digest"):
        EntropyImageTest.load(path)
    with pytest.raises(ArtifactError, match="digest"):
        EntropyImageTest.load(path, force=True)


def test_use_before_fit_raises():
    with pytest.raises(NotFittedError):
        EntropyImageTest().decide(np.zeros((1, 4)))


def test_grid_member_equals_a_single_fit(tmp_path, tiny, fitted):
    """fit_grid shares the generator and the campaign; each member is the test that a fit
    alone with the same parameters gives (the slow reference), and a saved set reloads."""
    model, _data, chips, outcomes = tiny
    params = {key: value for key, value in fitted.get_params().items() if key != "k"}
    strict = ChipOutcomes(outcomes.passed & (np.arange(64) % 3 > 0), cutoff="A70")
    grid = fit_grid(model, chips, [outcomes, strict], [2, 3], **params)
    assert list(grid) == [("A50", 2), ("A50", 3), ("A70", 2), ("A70", 3)]
    member = grid[("A50", 2)]
    np.testing.assert_array_equal(member.chosen_, fitted.chosen_)
    assert member.best_reward_ == fitted.best_reward_
    assert member.training_ == fitted.training_
    assert all(t.sid_ is member.sid_ for t in grid.values())
    assert grid[("A70", 3)].training_["passed"] == int(strict.passed.sum())
    assert grid[("A70", 3)].training_["cutoff"] == "A70"
    save_grid(tmp_path / "set", grid, {"A50": {"cutoff_accuracy": 97.0}})
    assert (tmp_path / "set" / "A50-k2" / ARTIFACT_FILE).is_file()
    dirs = member_dirs(tmp_path / "set", ks=[3])
    assert [d.name for d in dirs] == ["A50-k3", "A70-k3"]
    loaded = EntropyImageTest.load(dirs[0] / ARTIFACT_FILE)
    np.testing.assert_array_equal(loaded.chosen_, grid[("A50", 3)].chosen_)
    info = loaded.saved_info_
    assert info["cutoff"] == "A50" and info["cutoff_accuracy"] == 97.0
    assert EntropyImageTest.load(dirs[1] / ARTIFACT_FILE).saved_info_ == {"cutoff": "A70"}
    # one labelling per chip, each under its own cutoff name
    with pytest.raises(ConfigError, match="distinct cutoff"):
        fit_grid(model, chips, [outcomes, ChipOutcomes(strict.passed, cutoff="A50")], [2],
                 **params)
    with pytest.raises(ConfigError, match="one label per chip"):
        fit_grid(model, chips, [outcomes, ChipOutcomes(strict.passed[:60], cutoff="A60")],
                 [2], **params)
    with pytest.raises(ArtifactError, match="neither"):
        member_dirs(tmp_path)
    # a member swapped for another test is refused by the set's index
    swapped = tmp_path / "set" / "A50-k3" / ARTIFACT_FILE
    swapped.write_bytes((tmp_path / "set" / "A70-k3" / ARTIFACT_FILE).read_bytes())
    with pytest.raises(ArtifactError, match="digest"):
        member_dirs(tmp_path / "set", ks=[3])


def test_saved_sid_is_reused_by_a_grid(tmp_path, tiny, fitted):
    """A set's sid.safetensors read back (load_proposal) gives the same members without
    training the generator again."""
    model, _data, chips, outcomes = tiny
    params = {key: value for key, value in fitted.get_params().items() if key != "k"}
    save_grid(tmp_path / "set", {("A50", 2): fitted})
    sid = load_artifact(tmp_path / "set" / SID_FILE)
    assert torch.equal(sid.tensors["sid"], fitted.sid_)
    proposal = load_proposal(tmp_path / "set" / SID_FILE, fitted.fingerprint_)
    assert proposal.input_range == fitted.input_range and proposal.sid_size == 64
    grid = fit_grid(model, chips, [outcomes], [2], proposal=proposal, **params)
    np.testing.assert_array_equal(grid[("A50", 2)].chosen_, fitted.chosen_)
    with pytest.raises(ArtifactError, match="another model"):
        fit_grid(model, chips, [outcomes], [2], proposal=_other_model_proposal(proposal),
                 **params)


def _other_model_proposal(proposal: EntropyImageTest) -> EntropyImageTest:
    other = EntropyImageTest(**proposal.get_params()).adopt_proposal(proposal)
    other.fingerprint_ = "0" * 64
    return other


def test_fitted_test_beats_chance_on_independent_chips(tiny, fitted):
    """TA on 300 chips the test never saw (seed 7), truth at the training cutoff. A test
    that guesses scores 50 % ± 2.9 (one binomial SE at 300 chips), so it stays below 58 %
    (2.8 SE) with probability 0.997; this tiny fit (64 chips, K = 2) reaches 62 %."""
    model, data, _, _ = tiny
    train_acc = Population(model, FAULT, 0, 64).accuracy(data.test.x, data.test.y)
    cutoff = train_acc.median().item()
    evaluation = Population(model, FAULT, 7, 300)
    truly_pass = (evaluation.accuracy(data.test.x, data.test.y) > cutoff).numpy()
    flagged = fitted.decide(fitted.respond(evaluation.outputs(fitted.images_)))
    assert 0.2 < truly_pass.mean() < 0.8  # both classes present: TA can tell them apart
    assert (flagged != truly_pass).mean() >= 0.58
