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


@pytest.fixture
def forwards(monkeypatch):
    """Counts chips x images through `Population.accuracy` (calibrate's only forward)."""
    count = [0]
    original = Population.accuracy

    def counted(population, x, y, chips=None, **kw):
        count[0] += (population.n if chips is None else len(chips)) * len(x)
        return original(population, x, y, chips, **kw)

    monkeypatch.setattr(Population, "accuracy", counted)
    return count


@pytest.mark.parametrize("kind", ["mult", "rram"])
def test_secant_search_meets_bisection_in_three_campaigns(tiny, kind, forwards):
    """The secant search lands in bisection's 95 % band, near its level, in at most 3
    campaigns of chips x images per target (counted, not timed), the same way every time."""
    model, test = tiny
    population = Population(model, "none", seed=0, n=32)
    template = parse_spec(kind, allow_missing_level=True)
    drops = [2.0, 5.0]
    bisected = calibrate(population, template, test.x, test.y, drops)
    bisect_forwards = forwards[0]
    forwards[0] = 0
    found = calibrate(population, template, test.x, test.y, drops, search="secant")
    campaign = population.n * len(test.x)
    assert forwards[0] <= 3 * len(drops) * campaign, forwards[0] / campaign
    assert bisect_forwards > 4 * forwards[0]  # 14 steps a target, the first ones shared
    for b, s in zip(bisected, found, strict=True):
        assert s.drop == b.drop and s.meets_target and s.chips == b.chips
        assert b.ci_low <= s.measured_drop <= b.ci_high, (s, b)
        assert abs(math.log(s.level / b.level)) < 0.1, (s.level, b.level)
    again = calibrate(population, template, test.x, test.y, drops, search="secant")
    assert [r.as_dict() for r in again] == [r.as_dict() for r in found]


def test_secant_search_bisects_cell_faults(tiny, forwards):
    """Cell faults draw other cells at every rate: the secant search is bisection there,
    level for level and forward for forward."""
    model, test = tiny
    population = Population(model, "none", seed=0, n=8)
    template = parse_spec("bitflip", allow_missing_level=True)
    bisected = calibrate(population, template, test.x, test.y, [5.0], iterations=6)
    cost, forwards[0] = forwards[0], 0
    found = calibrate(population, template, test.x, test.y, [5.0], iterations=6,
                      search="secant")
    assert found == bisected and forwards[0] == cost


def test_calibrate_rejects_an_unknown_search(tiny):
    model, test = tiny
    with pytest.raises(ConfigError, match="search"):
        calibrate(Population(model, "none", n=2), parse_spec("mult", allow_missing_level=True),
                  test.x, test.y, [1.0], search="newton")
