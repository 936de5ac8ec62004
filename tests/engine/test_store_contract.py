"""The store contract, run over every store: records, chunks, resume or refuse, status."""

import time

import numpy as np
import pytest
import torch

from cimtest.engine import CampaignRecord, ChunkResult, InMemoryStore, SQLiteStore
from cimtest.exceptions import DuplicateCampaignError, StoreError


def make_record(**changes) -> CampaignRecord:
    fields = {
        "model_fingerprint": "a" * 64, "data_fingerprint": "b" * 64, "spec": "mult:eta=0.1",
        "seed": 3, "n": 40, "task": "classification", "array_size": (64, 32),
        "bits_per_cell": 2, "keep_outputs": True, "n_inputs": 5, "ideal_accuracy": 97.5,
    }
    return CampaignRecord(**{**fields, **changes})


def make_result(start: int, stop: int, *, scores: bool = False) -> ChunkResult:
    gen = torch.Generator().manual_seed(start)
    size = stop - start
    accuracy = torch.rand(size, generator=gen, dtype=torch.float64).numpy() * 100
    outputs = torch.randn(size, 5, 10, generator=gen)
    extra = {"score": np.linspace(0.1, 0.9, size)} if scores else None
    now = time.time()
    return ChunkResult(start, stop, accuracy, now - 0.5, now, outputs, extra)


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        yield InMemoryStore()
    else:
        with SQLiteStore(tmp_path / "runs" / "x.db") as sqlite:
            yield sqlite


def test_empty_store_then_create_and_read_back(store):
    assert store.get_campaign() is None
    assert store.get_chunks() == [] and store.get_runs() == []
    record = make_record()
    with store.writer():
        assert store.start(record) == record
    assert store.get_campaign() == record
    assert store.missing_ranges() == [(0, 40)]


def test_same_campaign_resumes_and_another_is_refused_naming_new(store):
    with store.writer():
        store.start(make_record())
        run = store.add_run("in-process")
        store.add_chunk(run, make_result(0, 8))
        resumed = store.start(make_record(created=0.0, ideal_accuracy=1.0))
        assert resumed.created != 0.0  # the stored record is kept
        with pytest.raises(DuplicateCampaignError, match="--new") as info:
            store.start(make_record(seed=4, spec="bitflip:p=0.001"))
        assert "seed: 3 → 4" in str(info.value) and "spec" in str(info.value)
        with pytest.raises(DuplicateCampaignError):
            store.create_campaign(make_record(seed=4))
    assert store.get_campaign().seed == 3 and len(store.get_chunks()) == 1


def test_new_replaces_the_campaign_and_its_chips(store):
    with store.writer():
        store.start(make_record())
        store.add_chunk(store.add_run("in-process"), make_result(0, 8))
        store.start(make_record(seed=9, n=16), new=True)
    assert store.get_campaign().seed == 9
    assert store.get_chunks() == [] and len(store.get_chips().chip) == 0
    assert store.missing_ranges() == [(0, 16)]


def test_chunks_round_trip_bit_exact_with_scores_and_outputs(store):
    results = [make_result(16, 24), make_result(0, 8, scores=True), make_result(32, 40)]
    with store.writer():
        store.start(make_record())
        run = store.add_run("in-process")
        chunks = [store.add_chunk(run, r) for r in results]
    assert [c.start for c in store.get_chunks()] == [0, 16, 32]
    assert all(c.n_chips == 8 and c.run == run for c in chunks)
    table = store.get_chips()
    ordered = sorted(results, key=lambda r: r.start)
    np.testing.assert_array_equal(table.chip, np.concatenate([r.chips for r in ordered]))
    assert table.accuracy.tobytes() == np.concatenate([r.accuracy for r in ordered]).tobytes()
    assert table.scores["score"][:8].tobytes() == results[1].scores["score"].tobytes()
    assert np.isnan(table.scores["score"][8:]).all()
    frame = store.frame()
    assert list(frame.columns) == ["chip", "accuracy", "drop", "score"]
    assert (frame["drop"] == 97.5 - frame["accuracy"]).all()
    assert torch.equal(store.outputs(), torch.cat([r.outputs for r in ordered]))
    assert store.missing_ranges() == [(8, 16), (24, 32)]


def test_overlapping_or_misfit_chunks_are_refused(store):
    with store.writer():
        store.start(make_record())
        run = store.add_run("in-process")
        store.add_chunk(run, make_result(0, 8))
        with pytest.raises(StoreError):
            store.add_chunk(run, make_result(4, 12))
        with pytest.raises(StoreError, match="does not fit"):
            store.add_chunk(run, make_result(36, 44))
        no_outputs = make_result(8, 16)
        with pytest.raises(StoreError, match="outputs"):
            store.add_chunk(run, ChunkResult(8, 16, no_outputs.accuracy, 0.0, 1.0))
    assert [c.start for c in store.get_chunks()] == [0]
    assert len(store.get_chips().chip) == 8


def test_status_counts_throughput_and_eta(store):
    with store.writer():
        store.start(make_record())
        first = store.add_run("in-process")
        store.add_chunk(first, ChunkResult(0, 8, np.zeros(8), 0.0, 100.0, torch.zeros(8, 5, 10)))
        second = store.add_run("dask local:2")
        store.add_chunk(second, ChunkResult(8, 16, np.zeros(8), 10.0, 12.0, torch.zeros(8, 5, 10)))
        store.add_chunk(second, ChunkResult(16, 24, np.ones(8), 11.0, 14.0, torch.zeros(8, 5, 10)))
    status = store.status()
    assert (status.chips_total, status.chips_done, status.chunks, status.runs) == (40, 24, 3, 2)
    assert status.chips_per_s == pytest.approx(16 / 4)
    assert status.eta_s == pytest.approx(16 / 4.0)
    doc = status.as_dict()
    assert {"chips_total", "chips_done", "spec", "seed"} <= set(doc)
    assert doc["complete"] is False and doc["array_size"] == (64, 32)


def test_reading_an_empty_store_says_so(store):
    with pytest.raises(StoreError, match="holds no campaign"):
        store.frame()
