"""The SQLite store's schema, and the conversions between its rows and the store's records."""

from __future__ import annotations

import json
import sqlite3

import numpy as np

from cimtest import __version__
from cimtest.engine.store.records import CampaignRecord, ChipTable, ChunkResult

__all__ = ["CAMPAIGN_COLUMNS", "SCHEMA", "SCHEMA_VERSION", "campaign_from_row", "chip_rows",
           "chip_table", "create_tables"]

SCHEMA_VERSION = 1
"""Version of the SQLite schema, kept in ``PRAGMA user_version``; newer stores are refused."""

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE campaign (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    model_fingerprint TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    spec TEXT NOT NULL,
    seed INTEGER NOT NULL,
    n INTEGER NOT NULL CHECK (n > 0),
    task TEXT NOT NULL,
    array_size TEXT,
    bits_per_cell INTEGER NOT NULL,
    keep_outputs INTEGER NOT NULL,
    n_inputs INTEGER NOT NULL,
    ideal_accuracy REAL NOT NULL,
    cimtest_version TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE runs (id INTEGER PRIMARY KEY, started REAL NOT NULL, executor TEXT NOT NULL);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs (id),
    start INTEGER NOT NULL UNIQUE,
    stop INTEGER NOT NULL CHECK (stop > start),
    started REAL NOT NULL,
    finished REAL NOT NULL,
    side_file TEXT UNIQUE,
    sha256 TEXT
);
CREATE TABLE chips (chip INTEGER PRIMARY KEY, accuracy REAL NOT NULL, scores TEXT);
"""

CAMPAIGN_COLUMNS = (
    "model_fingerprint, data_fingerprint, spec, seed, n, task, array_size, bits_per_cell, "
    "keep_outputs, n_inputs, ideal_accuracy, cimtest_version, created"
)


def create_tables(conn: sqlite3.Connection, record: CampaignRecord) -> None:
    """Create the schema in an empty database and store `record` as its campaign."""
    array = "x".join(str(v) for v in record.array_size) if record.array_size else None
    values = (record.model_fingerprint, record.data_fingerprint, record.spec, record.seed,
              record.n, record.task, array, record.bits_per_cell, int(record.keep_outputs),
              record.n_inputs, record.ideal_accuracy, record.cimtest_version, record.created)
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                     [("cimtest_version", __version__),
                      ("schema_version", str(SCHEMA_VERSION))])
    conn.execute(f"INSERT INTO campaign (id, {CAMPAIGN_COLUMNS}) VALUES "
                 f"(1, {', '.join('?' * len(values))})", values)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def campaign_from_row(row: tuple) -> CampaignRecord:
    """The record of a ``SELECT {CAMPAIGN_COLUMNS} FROM campaign`` row."""
    (model, data, spec, seed, n, task, array, bits, keep, n_inputs, ideal, version,
     created) = row
    return CampaignRecord(
        model, data, spec, seed, n, task,
        tuple(int(v) for v in array.split("x")) if array else None,  # type: ignore[arg-type]
        bits, bool(keep), n_inputs, ideal, version, created,
    )


def chip_rows(result: ChunkResult) -> list[tuple[int, float, str | None]]:
    """The `chips` rows of a chunk: (chip, accuracy, scores as JSON or None)."""
    chips = result.chips.tolist()
    accuracy = result.accuracy.astype(np.float64).tolist()
    if not result.scores:
        return [(c, a, None) for c, a in zip(chips, accuracy)]
    names = list(result.scores)
    columns = [np.asarray(result.scores[k], dtype=np.float64).tolist() for k in names]
    return [(c, a, json.dumps(dict(zip(names, values))))
            for c, a, *values in zip(chips, accuracy, *columns)]



def chip_table(rows: list[tuple]) -> ChipTable:
    """The table of ``SELECT chip, accuracy, scores FROM chips`` rows."""
    chip = np.array([r[0] for r in rows], dtype=np.int64)
    accuracy = np.array([r[1] for r in rows], dtype=np.float64)
    parsed = [json.loads(r[2]) if r[2] else {} for r in rows]
    keys = sorted({k for p in parsed for k in p})
    scores = {k: np.array([p.get(k, np.nan) for p in parsed], dtype=np.float64) for k in keys}
    return ChipTable(chip, accuracy, scores)
