"""Calibration on a tiny trained model: the found level meets each target drop."""

import math

import pytest
import torch
from torch import nn

from cimtest.data import digits
from cimtest.engine import Population
from cimtest.engine.calibrate import calibrate
from cimtest.exceptions import ConfigError
from cimtest.faults import parse_spec


@pytest.fixture(scope="module")
def tiny():
    data = digits(size=8)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.train.x), data.train.y).backward()
        opt.step()
    return model.eval(), data.test


@pytest.mark.parametrize("kind", ["mult", "bitflip"])
def test_calibrated_level_meets_target_drop(tiny, kind):
    model, test = tiny
    population = Population(model, "none", seed=0, n=32)
    results = calibrate(population, parse_spec(kind, allow_missing_level=True), test.x, test.y,
                        [2.0, 5.0], iterations=16)
    assert [r.drop for r in results] == [2.0, 5.0]
    assert results[0].level < results[1].level
    for r in results:
        assert abs(r.measured_drop - r.drop) < 0.3
        assert r.ci_low < r.measured_drop < r.ci_high
        # An independent population at the same level: the two mean drops differ by a
        # normal error of sd sqrt(se_cal² + se_check²) (independent chips, normal
        # approximation of each mean); 4 sd fails a correct calibration 1 time in 16,000.
        ideal = population.with_faults("none", n=1).accuracy(test.x, test.y)[0]
        check = ideal - Population(
            model, parse_spec(kind, allow_missing_level=True).with_level(r.level), seed=99, n=64
        ).accuracy(test.x, test.y)
        se_cal = (r.ci_high - r.ci_low) / (2 * 1.96)
        se_check = check.std().item() / math.sqrt(len(check))
        gap = abs(check.mean().item() - r.measured_drop)
        assert gap < 4 * math.hypot(se_cal, se_check), (gap, se_cal, se_check)


def test_calibrate_rejects_stacks_and_bad_targets(tiny):
    model, test = tiny
    population = Population(model, "none", n=4)
    with pytest.raises(ConfigError, match="one fault kind"):
        calibrate(population, parse_spec("mult:eta=0.1+add:eta=0.1"), test.x, test.y, [1.0])
    with pytest.raises(ConfigError, match="positive"):
        calibrate(population, parse_spec("mult", allow_missing_level=True), test.x, test.y, [-1])
