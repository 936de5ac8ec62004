"""Campaign: the table it returns, streaming, resume, refusal of another campaign, determinism."""

import numpy as np
import pytest
import torch
from torch import nn

from cimtest.data import digits
from cimtest.engine import Campaign, InMemoryStore, Population, SQLiteStore
from cimtest.exceptions import ConfigError, DuplicateCampaignError


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10)).eval()


@pytest.fixture(scope="module")
def data():
    test = digits(size=8).test
    return test.x[:24], test.y[:24]


def population(model, memory="2GB", n=40, fault="mult:eta=0.3"):
    return Population(model, fault, seed=11, n=n, memory=memory)


def test_run_returns_every_chip_in_order(model, data):
    pop = population(model, memory=1)
    campaign = Campaign(pop, *data)
    frame = campaign.run()
    assert list(frame.columns) == ["chip", "accuracy", "drop"]
    assert frame["chip"].tolist() == list(range(40))
    expected = pop.accuracy(*data).numpy()
    assert frame["accuracy"].to_numpy().tobytes() == expected.tobytes()
    ideal = pop.with_faults("none", n=1).accuracy(*data).item()
    assert campaign.record.ideal_accuracy == ideal
    np.testing.assert_array_equal(frame["drop"], ideal - expected)


def test_stream_yields_chunk_tables_and_reports_progress(model, data):
    calls = []
    chunks = list(Campaign(population(model, memory=1), *data).stream(
        progress=lambda done, total: calls.append((done, total))))
    assert [len(c) for c in chunks] == [8] * 5
    assert chunks[1]["chip"].tolist() == list(range(8, 16))
    assert calls == [(0, 40), (8, 40), (16, 40), (24, 40), (32, 40), (40, 40)]


def test_a_stopped_campaign_resumes_only_missing_chips(model, data, tmp_path):
    path = tmp_path / "x.db"
    stream = Campaign(population(model, memory=1), *data, store=SQLiteStore(path)).stream()
    for _ in range(2):
        next(stream)
    stream.close()
    totals = []
    resumed = Campaign(population(model), *data, store=SQLiteStore(path)).run(
        progress=lambda done, total: totals.append(total))
    assert totals[0] == 24
    assert resumed.equals(Campaign(population(model), *data).run())
    store = SQLiteStore(path, read_only=True)
    assert [r.id for r in store.get_runs()] == [1, 2]
    assert [(c.start, c.stop) for c in store.get_chunks()] == [(0, 8), (8, 16), (16, 40)]
    again = []
    Campaign(population(model), *data, store=SQLiteStore(path)).run(
        progress=lambda done, total: again.append(total))
    assert again == [0] and len(store.get_runs()) == 2  # complete: nothing to do, no run


@pytest.mark.parametrize("change", [
    {"fault": "mult:eta=0.2"},
    {"n": 48},
    {"seed": 12},
    {"data": slice(0, 23)},
    {"model": True},
])
def test_another_campaign_is_refused_naming_new(model, data, tmp_path, change):
    path = tmp_path / "x.db"
    Campaign(population(model), *data, store=SQLiteStore(path)).run()
    pop = population(model, n=change.get("n", 40), fault=change.get("fault", "mult:eta=0.3"))
    if "seed" in change:
        pop = Population(model, "mult:eta=0.3", seed=change["seed"], n=40)
    if "model" in change:
        other = nn.Sequential(*model).eval()
        with torch.no_grad():
            other[3].weight.mul_(2)
        pop = population(other)
    x, y = data
    if "data" in change:
        x, y = x[change["data"]], y[change["data"]]
    with pytest.raises(DuplicateCampaignError, match="--new"):
        Campaign(pop, x, y, store=SQLiteStore(path)).run()
    replaced = Campaign(pop, x, y, store=SQLiteStore(path), new=True).run()
    assert replaced.equals(Campaign(pop, x, y).run())


def test_new_replaces_only_once_then_resumes(model, data):
    store = InMemoryStore()
    Campaign(population(model, fault="mult:eta=0.2"), *data, store=store).run()
    campaign = Campaign(population(model, memory=1), *data, store=store, new=True)
    stream = campaign.stream()
    next(stream)
    stream.close()
    totals = []
    campaign.run(progress=lambda done, total: totals.append(total))
    assert totals[0] == 32 and len(store.get_chunks()) == 5


@pytest.mark.parametrize("memory", [1, 200_000, "1GB"])
def test_results_do_not_depend_on_the_chunk_size(model, data, memory):
    small = Campaign(population(model, memory=1), *data, keep_outputs=True)
    other = Campaign(population(model, memory=memory), *data, keep_outputs=True)
    assert small.run().equals(other.run())
    assert torch.equal(small.store.outputs(), other.store.outputs())


def test_bad_inputs_raise_config_errors(model, data):
    x, y = data
    with pytest.raises(ConfigError, match="task"):
        Campaign(population(model), x, y, task="generation").run()
    with pytest.raises(ConfigError, match="one label per input"):
        Campaign(population(model), x, y[:3]).run()
    with pytest.raises(ConfigError, match="at least one input"):
        Campaign(population(model), x[:0], y[:0]).run()
