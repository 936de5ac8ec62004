"""The learned tests (`optimized`, `learned`) on a user-style digits MLP: the optimisation
improves what it optimises, the recipe of the training chips is checked, bad input fails
with one clear `ConfigError`, and a fitted test survives save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cimtest.engine import Population
from cimtest.exceptions import ConfigError
from cimtest.hardware.periphery import parse_periphery
from cimtest.methods import ChipOutcomes, LearnedTest, OptimizedTest, TestMethod
from cimtest.methods.learned import greedy_selection

FAULT = "mult:eta=0.5"
FAST = {"candidates": 64, "batch": 16}


@pytest.fixture(scope="module")
def chips(tiny_classifier):
    """Model, real images, 300 training chips with outcomes, 300 evaluation chips, truth."""
    model, data = tiny_classifier
    x, y = data.test.x, data.test.y
    train = Population(model, FAULT, seed=0, n=300)
    evaluation = Population(model, FAULT, seed=1, n=300)
    accuracy = train.accuracy(x, y).numpy()
    cutoff = float(np.median(accuracy))
    outcomes = ChipOutcomes(accuracy > cutoff, cutoff, accuracy, "A50")
    truth = evaluation.accuracy(x, y).numpy()
    return model, data.train, train, outcomes, evaluation, truth


def test_steps_lower_the_loss_and_the_held_out_check_keeps_the_best(chips):
    model, real, train, outcomes, _, _ = chips
    test = LearnedTest(init="noise", steps=40, check_every=10, seed=0, **FAST)
    test.fit(model, train, outcomes, real)
    curve = test.loss_curve_
    assert curve[-10:].mean() < 0.9 * curve[:10].mean()  # the stepped chips are fitted
    steps, errors = test.check_curve_.T
    assert steps.tolist() == [0, 10, 20, 30, 40]
    assert errors[steps == test.best_step_][0] == errors.min()
    low, high = test.candidates_.min(), test.candidates_.max()
    assert test.inputs_.min() >= low and test.inputs_.max() <= high  # kept in the pool's range


def test_the_kept_inputs_are_those_of_the_best_checked_step(chips, monkeypatch):
    """Whichever checked step scores best on the held-out chips, its inputs are kept: with
    the held-out errors set by hand so that step 20 of 40 wins, the kept inputs are those a
    20-step run ends with (the steps are seeded, so a run's first 20 are those of any
    longer run), and not the 40th step's; with step 0 winning, the initial inputs."""
    model, real, train, outcomes, _, _ = chips

    def fit(steps: int, errors: list[float]) -> LearnedTest:
        given = iter(errors)  # one error per checked step, in order: 0, 10, 20, ...
        monkeypatch.setattr(LearnedTest, "_held_out_error", lambda *_: next(given))
        test = LearnedTest(init="noise", steps=steps, check_every=10, seed=0, **FAST)
        return test.fit(model, train, outcomes, real)

    middle = fit(40, [0.5, 0.4, 0.1, 0.3, 0.2])
    assert middle.best_step_ == 20
    at_20 = fit(20, [0.5, 0.4, 0.1])  # the last of its checks wins: its final inputs
    at_40 = fit(40, [0.5, 0.4, 0.3, 0.2, 0.1])
    assert at_20.best_step_ == 20 and at_40.best_step_ == 40
    assert torch.equal(middle.inputs_, at_20.inputs_)
    assert not torch.equal(middle.inputs_, at_40.inputs_)  # the steps after 20 moved them
    start = fit(40, [0.1, 0.4, 0.3, 0.2, 0.5])
    assert start.best_step_ == 0 and torch.equal(start.inputs_, start.initial_inputs_)


def test_optimized_predicts_accuracy(chips):
    model, real, train, outcomes, evaluation, truth = chips
    test = OptimizedTest(steps=20, seed=0, **FAST).fit(model, train, outcomes, real)
    assert test.needs == ("real images", "chip accuracies") and test.k == len(test.inputs_)
    predicted = test.predicted_accuracy(test.respond(evaluation.outputs(test.inputs_)))
    assert np.sqrt(np.mean((predicted - truth) ** 2)) < truth.std()
    flagged = test.decide(test.respond(evaluation.outputs(test.inputs_)))
    assert np.array_equal(flagged, predicted <= outcomes.cutoff_accuracy)
    assert OptimizedTest(readout="classifier", steps=0, **FAST).fit(
        model, train, outcomes, real).predicted_accuracy(np.zeros((1, 40))) is None


def test_greedy_selection_finds_the_informative_candidate():
    gen = torch.Generator().manual_seed(0)
    outputs = torch.randn(200, 6, 3, generator=gen)
    target = outputs[:, 4, 1].double().numpy() * 2 + 1
    assert greedy_selection(outputs, target, 1, seed=0).tolist() == [4]
    assert len(set(greedy_selection(outputs, target, 3, seed=0).tolist())) == 3


@pytest.mark.parametrize("method, match", [
    (LearnedTest(k=0), "'k'"),
    (OptimizedTest(readout="ranker"), "'readout'"),
    (LearnedTest(readout="regressor"), "'readout'"),
    (LearnedTest(init="real"), "'init'"),
    (OptimizedTest(k=8, candidates=4), "'candidates'"),
])
def test_bad_parameters_are_config_errors(method, match, chips):
    model, real, train, outcomes, _, _ = chips
    with pytest.raises(ConfigError, match=match):
        method.fit(model, train, outcomes, real)


def test_a_model_without_input_gradient_is_refused(chips):
    class Rounded(nn.Module):
        input_shape = (1, 8, 8)

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1).detach())

    _, real, _, _, _, _ = chips
    with pytest.raises(ConfigError, match="not differentiable in its inputs"):
        OptimizedTest(**FAST).propose(Rounded(), real)


def test_learn_needs_the_chips_that_made_the_outputs(chips):
    model, real, train, outcomes, _, _ = chips
    test = OptimizedTest(steps=0, **FAST)
    outputs = train.outputs(test.propose(model, real))
    with pytest.raises(ConfigError, match="attach_chips"):
        test.learn(outputs, outcomes)
    test.attach_chips(Population(model, FAULT, seed=5, n=train.n))
    with pytest.raises(ConfigError, match="not those of the attached chips"):
        test.learn(outputs, outcomes)
    with pytest.raises(ConfigError, match="accuracies"):
        OptimizedTest(steps=0, **FAST).fit(model, train, outcomes.labels_only(), real)


def test_save_load_keeps_the_learned_inputs(chips, tmp_path):
    model, real, train, outcomes, evaluation, _ = chips
    test = LearnedTest(init="noise", steps=5, seed=1, **FAST).fit(model, train, outcomes, real)
    again = TestMethod.load(test.save(tmp_path / "learned.safetensors"), test.fingerprint_)
    assert isinstance(again, LearnedTest) and again.init == "noise"
    assert torch.equal(again.inputs_, test.inputs_)
    assert torch.equal(again.initial_inputs_, test.initial_inputs_)
    assert np.array_equal(again.loss_curve_, test.loss_curve_)
    outputs = evaluation.outputs(test.inputs_)
    assert np.array_equal(again.score(again.respond(outputs)), test.score(test.respond(outputs)))


def test_chips_with_a_periphery_are_rebuilt_with_it(chips):
    """Training chips behind a DAC, an ADC and output noise: `learn` rebuilds them with
    their periphery (from the recipe's `hardware`), so their outputs pass its check, and the
    kept inputs' outputs it returns are those of the chips, periphery included."""
    model, real, _, outcomes, _, _ = chips
    hardware = "dac_bits=6,adc_bits=8,adc_bound=10,out_noise=0.04"
    train = Population(model, FAULT, seed=0, n=300, periphery=parse_periphery(hardware))
    test = LearnedTest(init="noise", steps=4, check_every=2, seed=0, **FAST)
    test.fit(model, train, outcomes, real)
    rebuilt = test._population(train.outputs(test.candidates_))
    assert rebuilt.spec.periphery == train.spec.periphery
    assert rebuilt.recipe() == train.recipe()
