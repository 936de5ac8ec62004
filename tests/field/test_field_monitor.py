"""`Monitor`: a fitted test retesting aging chips. Without remedies its rows are the
population seen `at` each time; a chip's rows do not depend on the chips run beside it; a
store resumes to the same rows; remedies change the chips as documented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cimtest.engine import Population
from cimtest.exceptions import ConfigError, StoreError
from cimtest.field import Monitor, MonitorStore
from cimtest.methods import BayesianTestVector, ChipOutcomes

FAULT = "mult:eta=0.1+drift:t=0,nu=0.1,nu_sd=0.05"
TIMES = (3600.0, 86400.0, 2629800.0, 31557600.0)
CHIPS = 20


@pytest.fixture(scope="module")
def setting(tiny_classifier):
    """The digits MLP, its test images, and a Bayesian test vector fitted at t = 0 on
    other chips (seed 0) than the monitored ones (seed 1)."""
    model, data = tiny_classifier
    x, y = data.test.x, data.test.y
    train = Population(model, FAULT, seed=0, n=64)
    accuracy = train.accuracy(x, y).numpy()
    cutoff = float(np.median(accuracy))
    test = BayesianTestVector(steps=40, seed=3).fit(
        model, train, ChipOutcomes(accuracy > cutoff, cutoff, accuracy, "A50"), data.train)
    return model, x, y, test


def _monitor(setting, **kw) -> Monitor:
    model, x, y, test = setting
    return Monitor(Population(model, FAULT, seed=1, n=CHIPS), test, x, y, TIMES, **kw)


def test_without_remedy_rows_are_the_population_at_each_time(setting):
    model, x, y, test = setting
    run = _monitor(setting)
    frame = run.run()
    population = Population(model, FAULT, seed=1, n=CHIPS)
    for t in TIMES:
        at = frame[frame["t"] == t]
        aged = population.at(t)
        np.testing.assert_array_equal(at["accuracy"], aged.accuracy(x, y).numpy())
        features = test.respond(aged.outputs(test.inputs_))
        np.testing.assert_array_equal(at["flagged"], test.decide(features))
        np.testing.assert_array_equal(at["score"], test.score(features))
        np.testing.assert_array_equal(at["failing"],
                                      at["accuracy"] < run.ideal_accuracy - run.max_drop)
    assert not frame["remedied"].any() and (frame["generation"] == 0).all()
    # drift only shrinks |W| here, and the mean chip loses accuracy over a year
    means = frame.groupby("t")["accuracy"].mean()
    assert means.iloc[-1] < means.iloc[0]


@pytest.mark.parametrize(("remedy", "compensation"),
                         [("reprogram", "gdc"), ("recalibrate", "gdc"), ("recalibrate", "none")])
def test_a_chip_is_the_same_whatever_runs_beside_it(setting, remedy, compensation):
    run = _monitor(setting, remedy=remedy, compensation=compensation)
    whole = run.run()
    alone = pd.concat([run.run(chips=[c]) for c in (2, 7, 11)], ignore_index=True)
    part = whole[whole["chip"].isin([2, 7, 11])].sort_values(["chip", "t"], ignore_index=True)
    pd.testing.assert_frame_equal(alone.sort_values(["chip", "t"], ignore_index=True), part)


def test_reprogrammed_chips_are_fresh_draws_aged_from_the_rewrite(setting):
    model, x, y, _ = setting
    frame = _monitor(setting, remedy="reprogram", compensation="gdc").run()
    remedied = frame[frame["remedied"]]
    assert len(remedied), "some chip must be flagged for this test to check anything"
    population = Population(model, FAULT, seed=1, n=CHIPS)
    for row in remedied.itertuples():
        fresh = population.reprogrammed(row.generation + 1).at(0)
        assert row.accuracy_after == float(fresh.accuracy(x, y, chips=[row.chip])[0])
        later = frame[(frame["chip"] == row.chip) & (frame["t"] > row.t)]
        assert (later["generation"] > row.generation).all()
        assert row.replaced == (not row.reverified)
        assert later.empty or not row.replaced


def test_replaced_chips_leave_service(setting):
    frame = _monitor(setting, remedy="recalibrate", compensation="gdc").run()
    for row in frame[frame["replaced"]].itertuples():
        assert frame[(frame["chip"] == row.chip) & (frame["t"] > row.t)].empty
    counts = frame.groupby("t").size()
    assert counts.is_monotonic_decreasing and counts.iloc[0] == CHIPS


def test_the_store_resumes_to_the_same_rows_and_refuses_another_run(setting, tmp_path):
    run = _monitor(setting, remedy="reprogram", compensation="gdc")
    whole = run.run()
    store = MonitorStore(tmp_path / "m.db")
    run.run(chips=range(8), store=store)  # stopped after the first chips
    store.close()
    store = MonitorStore(tmp_path / "m.db")
    resumed = run.run(store=store)
    pd.testing.assert_frame_equal(resumed, whole, check_dtype=False)
    other = _monitor(setting, remedy="none", compensation="gdc")
    with pytest.raises(StoreError, match="differs in remedy"):
        other.run(store=store)
    model, x, y, _ = setting
    refitted = BayesianTestVector(steps=41, seed=3).fit(
        model, Population(model, FAULT, seed=0, n=64), None, None)
    another = Monitor(Population(model, FAULT, seed=1, n=CHIPS), refitted, x, y, TIMES,
                      remedy="reprogram", compensation="gdc")
    with pytest.raises(StoreError, match="differs in test"):
        another.run(store=store)
    store.close()


def test_refusals(setting):
    model, x, y, test = setting
    static = Population(model, "mult:eta=0.1", seed=1, n=4)
    with pytest.raises(ConfigError, match="time model"):
        Monitor(static, test, x, y, TIMES)
    with pytest.raises(ConfigError, match="remedy"):
        _monitor(setting, remedy="pray")
    with pytest.raises(ConfigError, match="compensation"):
        _monitor(setting, compensation="gcd")


def test_reprogrammed_populations_draw_independently(setting):
    model, *_ = setting
    population = Population(model, FAULT, seed=1, n=4)
    first = population.weights(range(4))
    assert torch.equal(population.reprogrammed(0).weights(range(4)), first)
    again = population.reprogrammed(1).weights(range(4))
    assert not torch.equal(again, first)
    assert torch.equal(population.reprogrammed(1).weights(range(4)), again)
    assert not torch.equal(population.reprogrammed(2).weights(range(4)), again)


def test_a_population_made_at_an_age_is_the_population_aged(setting):
    model, *_ = setting
    aged = Population(model, "mult:eta=0.1+drift:nu=0.1,nu_sd=0.05", seed=1, n=4, at=86400.0)
    assert torch.equal(aged.weights(range(4)),
                       Population(model, FAULT, seed=1, n=4).at(86400.0).weights(range(4)))
    with pytest.raises(ConfigError, match="time model"):
        Population(model, "mult:eta=0.1", n=1, at=60.0)


def test_a_store_of_another_kind_is_refused_untouched(tmp_path):
    import sqlite3

    path = tmp_path / "campaign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE campaign (x INTEGER)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a monitor store"):
        MonitorStore(path)
    assert path.read_bytes() == before
