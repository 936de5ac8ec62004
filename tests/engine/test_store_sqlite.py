"""SQLiteStore: schema version, locking, read-only folders, full disks, side-file checksums."""

import errno
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cimtest.data import digits
from cimtest.engine import (
    Campaign,
    CampaignRecord,
    ChunkResult,
    InMemoryStore,
    Population,
    SQLiteStore,
)
from cimtest.engine import store as store_module
from cimtest.exceptions import StoreError


@pytest.fixture(scope="module")
def population():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10)).eval()
    return Population(model, "mult:eta=0.2", seed=5, n=48, memory=1)  # chunks of 8 chips


@pytest.fixture(scope="module")
def data():
    test = digits(size=8).test
    return test.x[:20], test.y[:20]


@pytest.fixture(scope="module")
def reference(population, data):
    campaign = Campaign(population, *data, keep_outputs=True)
    return campaign.run(), campaign.store.outputs()


def campaign(population, data, path, **kw):
    return Campaign(population, *data, store=SQLiteStore(path), keep_outputs=True, **kw)


def assert_matches(store, reference):
    frame, outputs = reference
    assert store.frame().equals(frame)
    assert torch.equal(store.outputs(), outputs)
    referenced = {c.side_file for c in store.get_chunks()}
    assert {p.name for p in store.side_dir.iterdir()} == referenced


def test_newer_schema_is_refused_with_a_clear_message(population, data, tmp_path):
    path = tmp_path / "x.db"
    campaign(population, data, path).run()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {store_module.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="schema version 2 .*upgrade cimtest"):
        SQLiteStore(path)
    with pytest.raises(StoreError, match="upgrade cimtest"):
        SQLiteStore(path, read_only=True)


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b""])
def test_a_file_that_is_not_a_store_is_refused(tmp_path, content):
    path = tmp_path / "x.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a cimtest campaign store"):
        SQLiteStore(path)


def test_missing_store_for_reading(tmp_path):
    with pytest.raises(StoreError, match="no campaign store"):
        SQLiteStore(tmp_path / "missing.db", read_only=True)


def test_a_store_locked_by_a_running_campaign(population, data, tmp_path, reference):
    path = tmp_path / "x.db"
    first = campaign(population, data, path)
    stream = first.stream()
    next(stream)  # the first campaign holds the lock while it runs
    with pytest.raises(StoreError, match="in use by a running campaign .*pid"):
        campaign(population, data, path).run()
    reader = SQLiteStore(path, read_only=True)  # readers take no lock
    assert reader.status().chips_done == 8
    with pytest.raises(StoreError, match="read-only"), reader.writer():
        pass
    for _ in stream:
        pass
    assert_matches(SQLiteStore(path), reference)


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    yield folder
    folder.chmod(0o755)


def make_read_only(folder, monkeypatch):
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permissions: make os.access answer as for a user
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
            False if str(p).startswith(str(folder)) and mode & os.W_OK else real(p, mode, **kw)))


def test_read_only_folder_fails_before_any_work(population, data, read_only_dir, monkeypatch):
    make_read_only(read_only_dir, monkeypatch)
    with pytest.raises(StoreError, match="is not writable"):
        SQLiteStore(read_only_dir / "x.db")


def test_existing_store_in_a_read_only_folder(population, data, read_only_dir, monkeypatch,
                                              reference):
    path = read_only_dir / "x.db"
    campaign(population, data, path).run()
    make_read_only(read_only_dir, monkeypatch)
    with pytest.raises(StoreError, match="is not writable"):
        campaign(population, data, path).run()
    assert_matches(SQLiteStore(path, read_only=True), reference)


def test_full_disk_on_a_side_file_leaves_the_store_unchanged(population, data, tmp_path,
                                                             monkeypatch, reference):
    path = tmp_path / "x.db"
    written = []
    write_bytes = Path.write_bytes

    def full_after_two(target, payload):
        if target.suffix == ".safetensors":
            if len(written) == 2:
                write_bytes(target, payload[:100])  # a partial write, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
            written.append(target)
        return write_bytes(target, payload)

    monkeypatch.setattr(Path, "write_bytes", full_after_two)
    with pytest.raises(StoreError, match="disk full"):
        campaign(population, data, path).run()
    store = SQLiteStore(path, read_only=True)
    assert store.status().chips_done == 16
    assert sorted(p.name for p in store.side_dir.iterdir()) == [
        "chunk-0-8.safetensors", "chunk-8-16.safetensors"]
    monkeypatch.undo()
    campaign(population, data, path).run()
    assert_matches(SQLiteStore(path), reference)


def test_full_disk_in_the_database_leaves_the_store_consistent(tmp_path):
    path = tmp_path / "x.db"
    record = CampaignRecord("a" * 64, "b" * 64, "none", 0, 100_000, "classification", None, 1,
                            False, 1, 100.0)
    size = 1000
    store = SQLiteStore(path)
    with store.writer():
        store.start(record)
        run = store.add_run("in-process")
        store.add_chunk(run, ChunkResult(0, size, np.zeros(size), 0.0, 1.0))
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 10}")  # the disk fills up
        with pytest.raises(StoreError, match="disk full"):
            for start in range(size, record.n, size):
                store.add_chunk(run, ChunkResult(start, start + size, np.ones(size), 0.0, 1.0))
    store.close()
    store = SQLiteStore(path)  # a new connection: the disk has space again
    done = store.get_chips().chip
    assert len(done) == sum(c.n_chips for c in store.get_chunks()) > size
    np.testing.assert_array_equal(done, np.arange(len(done)))
    with store.writer():
        start = int(done[-1]) + 1
        store.add_chunk(store.add_run("in-process"),
                        ChunkResult(start, start + size, np.ones(size), 0.0, 1.0))
    assert store.status().chips_done == len(done) + size


def test_corrupt_or_missing_side_files_are_recomputed(population, data, tmp_path, reference,
                                                      caplog):
    path = tmp_path / "x.db"
    campaign(population, data, path).run()
    side = SQLiteStore(path).side_dir
    truncated, flipped, deleted = (side / f"chunk-{a}-{a + 8}.safetensors" for a in (0, 16, 40))
    truncated.write_bytes(truncated.read_bytes()[:-7])
    raw = bytearray(flipped.read_bytes())
    raw[-3] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    deleted.unlink()
    with pytest.raises(StoreError, match="checksum"):
        SQLiteStore(path, read_only=True).outputs()
    computed = []
    campaign(population, data, path).run(progress=lambda done, total: computed.append(total))
    assert computed[-1] == 24
    assert "missing or corrupt" in caplog.text
    assert_matches(SQLiteStore(path), reference)


def test_orphans_partial_files_and_half_built_databases_are_deleted(population, data,
                                                                    tmp_path, reference):
    path = tmp_path / "x.db"
    campaign(population, data, path).run()
    side = SQLiteStore(path).side_dir
    (side / "chunk-48-56.safetensors").write_bytes(b"orphan")
    (side / ".chunk-0-8.safetensors.k3j_x9a2.safetensors").write_bytes(b"partial")
    (side / "notes.txt").write_text("not ours")
    (tmp_path / ".x.db.k3j_x9a2.db").write_bytes(b"half built")
    (tmp_path / ".x.db.k3j_x9a2.db-wal").write_bytes(b"its log")
    (tmp_path / ".x.db.csv.k3j_x9a2.csv").write_bytes(b"an export being written")
    campaign(population, data, path).run()
    assert sorted(p.name for p in tmp_path.glob(".x.db.*")) == [".x.db.csv.k3j_x9a2.csv"]
    (side / "notes.txt").unlink()
    assert_matches(SQLiteStore(path), reference)


def test_new_replaces_atomically(population, data, tmp_path, reference, monkeypatch):
    path = tmp_path / "x.db"
    other = population.with_faults("mult:eta=0.3", n=16)
    campaign(other, data, path).run()

    def failing_build(self, target, record):
        target.write_bytes(b"half")
        raise StoreError("simulated failure while building")

    monkeypatch.setattr(SQLiteStore, "_build", failing_build)
    with pytest.raises(StoreError, match="simulated"):
        campaign(population, data, path, new=True).run()
    assert SQLiteStore(path).get_campaign().spec == "mult:eta=0.3"  # the old one, intact
    assert not list(tmp_path.glob(".x.db.*"))
    monkeypatch.undo()
    campaign(population, data, path, new=True).run()
    assert_matches(SQLiteStore(path), reference)


def test_a_writer_opened_early_sees_a_store_replaced_since(population, data, tmp_path,
                                                          reference):
    path = tmp_path / "x.db"
    campaign(population.with_faults("mult:eta=0.3", n=16), data, path).run()
    early = SQLiteStore(path)  # e.g. opened by the CLI before a long model load
    campaign(population, data, path, new=True).run()
    computed = []
    Campaign(population, *data, store=early, keep_outputs=True).run(
        progress=lambda done, total: computed.append(total))
    assert computed == [0]
    assert_matches(early, reference)


def test_writes_need_a_write_session(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(StoreError, match="write session"):
        store.add_run("in-process")


def test_in_memory_and_sqlite_give_the_same_table(population, data, tmp_path):
    memory = Campaign(population, *data, store=InMemoryStore()).run()
    sqlite = Campaign(population, *data, store=SQLiteStore(tmp_path / "x.db")).run()
    assert memory.equals(sqlite)
    assert sqlite["chip"].dtype == np.int64 and sqlite["accuracy"].dtype == np.float64


def test_chunk_result_chips():
    result = ChunkResult(3, 6, np.zeros(3), 0.0, 1.0)
    np.testing.assert_array_equal(result.chips, [3, 4, 5])
