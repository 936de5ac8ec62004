"""Campaign stores: a campaign's record and per-chip results, kept so a killed run resumes.

A store holds one campaign. `BaseStore` has a few abstract create/read methods returning
frozen records and builds the rest (resume or refuse, missing chip ranges, tables, status)
from them. `InMemoryStore` is the default and the reference for tests; `SQLiteStore` is a
file in WAL mode, one row per chip, committed per chunk, plus a folder of safetensors side
files when chip outputs are kept. See ``docs/store.md``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from cimtest import __version__
from cimtest.exceptions import DuplicateCampaignError, StoreError

__all__ = [
    "SCHEMA_VERSION",
    "BaseStore",
    "CampaignRecord",
    "ChipTable",
    "ChunkRecord",
    "ChunkResult",
    "InMemoryStore",
    "RunRecord",
    "SQLiteStore",
    "StoreStatus",
]

_logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the SQLite schema, kept in ``PRAGMA user_version``; newer stores are refused."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class CampaignRecord:
    """What a campaign is: everything its per-chip results depend on, and a few facts.

    Two runs are the same campaign (so the second resumes the first) when every field in
    `IDENTITY` is equal; the memory budget and chunk size are not among them, since results
    do not depend on them.
    """

    model_fingerprint: str
    """sha256 of the ideal chip's state dict (the quantised model the chips perturb)."""
    data_fingerprint: str
    """sha256 of the test inputs and labels (`cimtest.fingerprint.state_fingerprint`)."""
    spec: str
    """Canonical fault spec text, e.g. ``"mult:eta=0.05"``."""
    seed: int
    n: int
    """Number of chips."""
    task: str
    """``"classification"`` (accuracy in %) or ``"segmentation"`` (mean IoU in %)."""
    array_size: tuple[int, int] | None
    """Rows x cols of one crossbar array; None = one array per layer."""
    bits_per_cell: int
    keep_outputs: bool
    """Whether each chip's outputs are stored (in side files) besides its accuracy."""
    n_inputs: int
    """Number of test inputs each chip is evaluated on."""
    ideal_accuracy: float
    """Accuracy of the ideal (quantised, fault-free) chip; ``drop = ideal - accuracy``."""
    cimtest_version: str = __version__
    created: float = field(default_factory=time.time)
    """Creation time, seconds since the epoch."""

    IDENTITY: ClassVar[tuple[str, ...]] = (
        "model_fingerprint",
        "data_fingerprint",
        "spec",
        "seed",
        "n",
        "task",
        "array_size",
        "bits_per_cell",
        "keep_outputs",
    )

    def differences(self, other: CampaignRecord) -> list[str]:
        """Human-readable ``"field: stored → other"`` for each `IDENTITY` field that differs."""
        return [
            f"{name}: {_short(getattr(self, name))} → {_short(getattr(other, name))}"
            for name in self.IDENTITY
            if getattr(self, name) != getattr(other, name)
        ]


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """One evaluated chunk of chips ``start .. stop - 1``, as executors return it.

    Attributes
    ----------
    start, stop : int
        The chunk's chip range (``stop`` excluded).
    accuracy : numpy.ndarray
        float64 of shape (stop - start,): each chip's accuracy in percent.
    started, finished : float
        Wall-clock times (seconds since the epoch) the chunk's evaluation began and ended.
    outputs : torch.Tensor or None
        float32 of shape (stop - start, n_inputs, *output_shape) when outputs are kept.
    scores : mapping of str to numpy.ndarray, or None
        Further per-chip scores, each float64 of shape (stop - start,).
    """

    start: int
    stop: int
    accuracy: np.ndarray
    started: float
    finished: float
    outputs: torch.Tensor | None = None
    scores: Mapping[str, np.ndarray] | None = None

    @property
    def chips(self) -> np.ndarray:
        """The chunk's chip indices, int64 of shape (stop - start,)."""
        return np.arange(self.start, self.stop, dtype=np.int64)


@dataclass(frozen=True)
class ChunkRecord:
    """A stored chunk: its chip range, when it ran, and its side file if outputs are kept."""

    id: int
    run: int
    start: int
    stop: int
    started: float
    finished: float
    side_file: str | None = None
    """File name (in the store's side folder) of the chunk's outputs."""
    sha256: str | None = None
    """Checksum of the side file's bytes."""

    @property
    def n_chips(self) -> int:
        """Chips in the chunk."""
        return self.stop - self.start


@dataclass(frozen=True)
class RunRecord:
    """One session of a campaign (the first run or a resume) and the executor it used."""

    id: int
    started: float
    executor: str


@dataclass(frozen=True, eq=False)
class ChipTable:
    """Stored per-chip results in chip order: int64 ``chip``, float64 ``accuracy`` (n_done,),
    and ``scores`` (name → float64 (n_done,), NaN where a chip has no such score)."""

    chip: np.ndarray
    accuracy: np.ndarray
    scores: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class StoreStatus:
    """Progress of a store's campaign, for ``cimtest status``."""

    chips_total: int
    chips_done: int
    chunks: int
    runs: int
    chips_per_s: float | None
    """Throughput of the latest run: its chips over the span of its chunks' timestamps."""
    eta_s: float | None
    """Seconds left at that throughput; None when complete or unknown."""
    campaign: CampaignRecord

    def as_dict(self) -> dict:
        """A JSON-ready dict: the counts, ``spec``, ``seed`` and the rest of the record."""
        record = asdict(self.campaign)
        return {
            "chips_total": self.chips_total,
            "chips_done": self.chips_done,
            "complete": self.chips_done == self.chips_total,
            "chunks": self.chunks,
            "runs": self.runs,
            "chips_per_s": self.chips_per_s,
            "eta_s": self.eta_s,
            **{k: v for k, v in record.items() if k != "n"},
        }


def _short(value: object) -> str:
    text = str(value)
    return text[:12] + "…" if len(text) == 64 else text


# --------------------------------------------------------------------------- base store


class BaseStore(ABC):
    """Where one campaign's record, runs, chunks and per-chip results are kept.

    Subclasses implement the abstract methods; writes happen inside `writer`, an exclusive
    session. A chunk (its chips' rows and its outputs) is saved by `add_chunk` all at once
    or not at all, so a campaign killed at any point resumes with no chip missing or twice.
    """

    name: str = "store"
    """How messages name the store, e.g. ``"store 'runs/x.db'"``."""

    @abstractmethod
    def writer(self) -> AbstractContextManager[None]:
        """An exclusive write session; raise `StoreError` if another one holds the store."""

    @abstractmethod
    def get_campaign(self) -> CampaignRecord | None:
        """The stored campaign, or None for an empty store."""

    @abstractmethod
    def create_campaign(self, record: CampaignRecord, *, replace: bool = False) -> None:
        """Store `record` as the campaign; with `replace`, drop the one held before (if any).

        Raises `DuplicateCampaignError` if the store holds a campaign and `replace` is False.
        """

    @abstractmethod
    def add_run(self, executor: str) -> int:
        """Record the start of a run (first run or resume) on `executor`; return its id."""

    @abstractmethod
    def add_chunk(self, run: int, result: ChunkResult) -> ChunkRecord:
        """Save a chunk's chips (and outputs) atomically; return the chunk's record."""

    @abstractmethod
    def get_runs(self) -> list[RunRecord]:
        """Every run, in order."""

    @abstractmethod
    def get_chunks(self) -> list[ChunkRecord]:
        """Every stored chunk, in chip order."""

    @abstractmethod
    def get_chips(self) -> ChipTable:
        """Every stored chip's results, in chip order."""

    @abstractmethod
    def get_outputs(self, chunk: ChunkRecord) -> torch.Tensor:
        """The kept outputs of `chunk`, float32 (n_chips, n_inputs, *output_shape)."""

    def close(self) -> None:
        """Release files and connections (a no-op for stores that hold none)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # convenience built from the abstract methods

    def start(self, record: CampaignRecord, *, new: bool = False) -> CampaignRecord:
        """Make `record` the store's campaign: create it, resume it, or (`new`) replace it.

        Returns the stored record (the earlier one when resuming). Raises
        `DuplicateCampaignError`, naming ``--new``, if the store holds another campaign.
        """
        current = self.get_campaign()
        if current is None or new:
            self.create_campaign(record, replace=current is not None)
            return record
        differences = current.differences(record)
        if differences:
            raise DuplicateCampaignError(
                f"{self.name} holds another campaign ({'; '.join(differences)}); run the "
                "same campaign to resume it, or pass --new (new=True) to replace it"
            )
        if current.cimtest_version != record.cimtest_version:
            _logger.warning("resuming a campaign started with cimtest %s under cimtest %s",
                            current.cimtest_version, record.cimtest_version)
        return current

    def missing_ranges(self) -> list[tuple[int, int]]:
        """The chip ranges ``(start, stop)`` not stored yet, in order."""
        record = self._campaign()
        gaps, position = [], 0
        for chunk in self.get_chunks():
            if chunk.start > position:
                gaps.append((position, chunk.start))
            position = max(position, chunk.stop)
        if position < record.n:
            gaps.append((position, record.n))
        return gaps

    def frame(self) -> pd.DataFrame:
        """Stored chips as a table in chip order: ``chip``, ``accuracy``, ``drop``, scores."""
        record = self._campaign()
        table = self.get_chips()
        frame = pd.DataFrame({
            "chip": table.chip,
            "accuracy": table.accuracy,
            "drop": record.ideal_accuracy - table.accuracy,
        })
        for key, values in table.scores.items():
            frame[key] = values
        return frame

    def outputs(self) -> torch.Tensor:
        """Kept outputs of every stored chip in chip order, float32 (n_done, n_inputs, *out)."""
        if not self._campaign().keep_outputs:
            raise StoreError(f"{self.name} keeps no chip outputs (the campaign ran without "
                             "keep_outputs)")
        chunks = self.get_chunks()
        if not chunks:
            raise StoreError(f"{self.name} holds no chip yet")
        return torch.cat([self.get_outputs(chunk) for chunk in chunks])

    def status(self) -> StoreStatus:
        """Chips done and total, and the throughput and ETA of the latest run."""
        record = self._campaign()
        chunks, runs = self.get_chunks(), self.get_runs()
        done = sum(c.n_chips for c in chunks)
        rate = None
        if runs:
            latest = [c for c in chunks if c.run == runs[-1].id]
            span = max((c.finished for c in latest), default=0.0) - min(
                (c.started for c in latest), default=0.0)
            if latest and span > 0:
                rate = sum(c.n_chips for c in latest) / span
        eta = (record.n - done) / rate if rate and done < record.n else None
        return StoreStatus(record.n, done, len(chunks), len(runs), rate, eta, record)

    def _campaign(self) -> CampaignRecord:
        record = self.get_campaign()
        if record is None:
            raise StoreError(f"{self.name} holds no campaign")
        return record


# --------------------------------------------------------------------------- in memory


class InMemoryStore(BaseStore):
    """A store in this process's memory: the default, and the reference in tests."""

    name = "the in-memory store"

    def __init__(self) -> None:
        self._campaign_record: CampaignRecord | None = None
        self._runs: list[RunRecord] = []
        self._chunks: dict[int, ChunkRecord] = {}
        self._results: dict[int, ChunkResult] = {}

    def writer(self) -> AbstractContextManager[None]:
        """No other process can reach this store: a no-op session."""
        return nullcontext()

    def get_campaign(self) -> CampaignRecord | None:
        """The stored campaign, or None."""
        return self._campaign_record

    def create_campaign(self, record: CampaignRecord, *, replace: bool = False) -> None:
        """Store `record`, dropping everything held before when `replace`."""
        if self._campaign_record is not None and not replace:
            raise DuplicateCampaignError(f"{self.name} already holds a campaign")
        self._runs, self._chunks, self._results = [], {}, {}
        self._campaign_record = record

    def add_run(self, executor: str) -> int:
        """Record a run; return its id."""
        self._runs.append(RunRecord(len(self._runs) + 1, time.time(), executor))
        return self._runs[-1].id

    def add_chunk(self, run: int, result: ChunkResult) -> ChunkRecord:
        """Keep the chunk; refuse chips that are already stored."""
        _check_chunk(self._campaign(), result)
        if any(c.start < result.stop and result.start < c.stop for c in self._chunks.values()):
            raise StoreError(f"chips {result.start}..{result.stop - 1} overlap stored chips")
        chunk = ChunkRecord(len(self._chunks) + 1, run, result.start, result.stop,
                            result.started, result.finished)
        self._chunks[result.start] = chunk
        self._results[result.start] = result
        return chunk

    def get_runs(self) -> list[RunRecord]:
        """Every run, in order."""
        return list(self._runs)

    def get_chunks(self) -> list[ChunkRecord]:
        """Every chunk, in chip order."""
        return [self._chunks[start] for start in sorted(self._chunks)]

    def get_chips(self) -> ChipTable:
        """Every stored chip, in chip order."""
        results = [self._results[start] for start in sorted(self._results)]
        keys = sorted({k for r in results for k in (r.scores or {})})
        return ChipTable(
            chip=np.concatenate([r.chips for r in results] or [np.zeros(0, np.int64)]),
            accuracy=np.concatenate([r.accuracy for r in results] or [np.zeros(0)]),
            scores={k: np.concatenate([_score(r, k) for r in results]) for k in keys},
        )

    def get_outputs(self, chunk: ChunkRecord) -> torch.Tensor:
        """The chunk's kept outputs."""
        outputs = self._results[chunk.start].outputs
        if outputs is None:
            raise StoreError(f"{self.name} kept no outputs for chips {chunk.start}.."
                             f"{chunk.stop - 1}")
        return outputs


def _score(result: ChunkResult, key: str) -> np.ndarray:
    scores = result.scores or {}
    return scores[key] if key in scores else np.full(result.stop - result.start, np.nan)


def _check_chunk(record: CampaignRecord, result: ChunkResult) -> None:
    """Refuse a chunk that does not fit the campaign (a bug upstream, never user input)."""
    size = result.stop - result.start
    if not 0 <= result.start < result.stop <= record.n or result.accuracy.shape != (size,):
        raise StoreError(f"chunk {result.start}..{result.stop} does not fit a campaign of "
                         f"{record.n} chips")
    if record.keep_outputs and (result.outputs is None or result.outputs.shape[0] != size):
        raise StoreError(f"chunk {result.start}..{result.stop} lacks the kept outputs")


# --------------------------------------------------------------------------- SQLite

_SCHEMA = """
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

_CAMPAIGN_COLUMNS = (
    "model_fingerprint, data_fingerprint, spec, seed, n, task, array_size, bits_per_cell, "
    "keep_outputs, n_inputs, ideal_accuracy, cimtest_version, created"
)
_SIDE_NAME = re.compile(r"^\.?chunk-\d+-\d+\.safetensors(\.tmp)?$")
"""Side files (and their temporary forms) the store may delete as orphans."""


class SQLiteStore(BaseStore):
    """A campaign store in one SQLite file (WAL mode), with outputs in side files.

    Parameters
    ----------
    path : str or Path
        The database file, e.g. ``runs/x.db``; missing parent folders are created. Beside
        it live ``x.db.lock`` (held by the writing campaign) and, when outputs are kept,
        ``x.db.outputs/`` (one safetensors file per chunk).
    read_only : bool
        Open an existing store for reading only (``cimtest status`` and ``export``): no
        lock is taken, a running campaign keeps writing, and nothing is changed.

    Raises
    ------
    StoreError
        The file is not a cimtest store, has a newer schema, is missing (`read_only`), or
        its folder is not writable.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.name = f"store '{self.path}'"
        self.side_dir = self.path.with_name(self.path.name + ".outputs")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        if read_only and not self.path.is_file():
            raise StoreError(f"no campaign store at '{self.path}'")
        if not read_only:
            self._check_writable()
        if self.path.exists():
            self._connect()

    # sessions and connections

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the store's lock file for the session, then delete orphan side files and
        drop the chunks whose side file is missing or fails its checksum (recomputed).

        A session opened inside another one of the same store joins it.
        """
        if self.read_only:
            raise StoreError(f"{self.name} was opened read-only")
        if self._lock_fd is not None:
            yield
            return
        self._check_writable()
        self._lock_fd = self._acquire_lock()
        try:
            self.close()  # reopen under the lock: another writer may have replaced the file
            if self.path.exists():
                self._connect()
            self._remove_partial_databases()
            self._repair_side_files()
            yield
        except BaseException:
            self.close()  # a failed session leaves no open database (nor its -wal/-shm files)
            raise
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Close the database connection (the lock is released when a session ends)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _check_writable(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder '{self.path.parent}': "
                             f"{exc.strerror}") from exc
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise StoreError(f"store folder '{self.path.parent}' is not writable")
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise StoreError(f"{self.name} is read-only")

    def _acquire_lock(self) -> int:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file '{self.lock_path}': "
                             f"{exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"{self.name} is in use by a running campaign ({holder}); wait for it to "
                "end or stop it (a stopped campaign resumes where it was)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        return fd

    def _require_writer(self) -> None:
        if self._lock_fd is None:
            raise StoreError(f"writing to {self.name} needs a write session (store.writer())")

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self.read_only:
            uri = f"file:{self.path.resolve()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            self._check_schema(conn)
            if not self.read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(self._explain(exc, "open")) from exc
        except StoreError:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'cimtest_version'")
                writer = f"cimtest {row.fetchone()[0]}"
            except (sqlite3.Error, TypeError):
                writer = "a newer cimtest"
            raise StoreError(
                f"{self.name} has schema version {version} (written by {writer}); this "
                f"cimtest {__version__} reads version {SCHEMA_VERSION} at most: upgrade cimtest"
            )
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if version < 1 or not {"campaign", "chunks", "chips"} <= tables:
            raise StoreError(f"'{self.path}' is not a cimtest campaign store")

    @contextmanager
    def _transaction(
        self, conflict: type[StoreError] = StoreError
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction: commit, or roll back and raise a `StoreError`.

        ``sqlite3.IntegrityError`` becomes `conflict` (`DuplicateCampaignError` when
        creating a campaign), any other ``sqlite3.Error`` a `StoreError` that says what
        went wrong (a full disk, a read-only file, a busy database).
        """
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError):
                raise conflict(f"{self.name} refused the write: {exc}") from exc
            if isinstance(exc, sqlite3.Error):
                raise StoreError(self._explain(exc, "write")) from exc
            raise

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self._conn is None and not self.path.exists():
            return []
        try:
            return self._connect().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc, "read")) from exc

    def _explain(self, exc: sqlite3.Error, action: str) -> str:
        code = getattr(exc, "sqlite_errorname", "")
        if code == "SQLITE_FULL":
            return (f"disk full while writing {self.name}; nothing of the last chunk was "
                    "saved: free some space and run again to resume")
        if code.startswith("SQLITE_READONLY"):
            return f"{self.name} is read-only"
        if code.startswith("SQLITE_BUSY"):
            return f"{self.name} is busy (another process is writing it)"
        if code == "SQLITE_NOTADB":
            return f"'{self.path}' is not a cimtest campaign store (not an SQLite database)"
        return f"cannot {action} {self.name}: {exc}"

    # abstract methods

    def get_campaign(self) -> CampaignRecord | None:
        """The stored campaign, or None if the file does not exist yet."""
        rows = self._read(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaign")
        if not rows:
            return None
        (model, data, spec, seed, n, task, array, bits, keep, n_inputs, ideal, version,
         created) = rows[0]
        return CampaignRecord(
            model, data, spec, seed, n, task,
            tuple(int(v) for v in array.split("x")) if array else None,  # type: ignore[arg-type]
            bits, bool(keep), n_inputs, ideal, version, created,
        )

    def create_campaign(self, record: CampaignRecord, *, replace: bool = False) -> None:
        """Build a new database beside the store and rename it into place (atomic).

        Until the rename, the store holds its earlier campaign intact; after it, the
        earlier campaign's side files are orphans and are deleted.
        """
        self._require_writer()
        if self.get_campaign() is not None:
            if not replace:
                raise DuplicateCampaignError(f"{self.name} already holds a campaign")
            self._checkpoint_and_close()
        tmp = self._partial_database_name()
        try:
            self._build(tmp, record)
            os.replace(tmp, self.path)
        finally:
            _unlink_database(tmp)
        self._connect()
        self._repair_side_files()

    def add_run(self, executor: str) -> int:
        """Record a run; return its id."""
        self._require_writer()
        with self._transaction() as conn:
            cursor = conn.execute("INSERT INTO runs (started, executor) VALUES (?, ?)",
                                  (time.time(), executor))
        return int(cursor.lastrowid)

    def add_chunk(self, run: int, result: ChunkResult) -> ChunkRecord:
        """Write the chunk's side file (if outputs are kept), then its rows in one transaction.

        A failure leaves the store as it was: the side file is removed, the transaction
        rolled back, and a `StoreError` raised (a full disk says so).
        """
        self._require_writer()
        record = self._campaign()
        _check_chunk(record, result)
        side_file = digest = None
        if record.keep_outputs:
            side_file, digest = self._write_side_file(result)
        rows = _chip_rows(result)
        try:
            with self._transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO chunks (run, start, stop, started, finished, side_file, sha256)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run, result.start, result.stop, result.started, result.finished,
                     side_file, digest),
                )
                conn.executemany("INSERT INTO chips (chip, accuracy, scores) VALUES (?, ?, ?)",
                                 rows)
        except BaseException:
            if side_file is not None:
                (self.side_dir / side_file).unlink(missing_ok=True)
            raise
        return ChunkRecord(int(cursor.lastrowid), run, result.start, result.stop,
                           result.started, result.finished, side_file, digest)

    def get_runs(self) -> list[RunRecord]:
        """Every run, in order."""
        rows = self._read("SELECT id, started, executor FROM runs ORDER BY id")
        return [RunRecord(*row) for row in rows]

    def get_chunks(self) -> list[ChunkRecord]:
        """Every chunk, in chip order."""
        rows = self._read("SELECT id, run, start, stop, started, finished, side_file, sha256 "
                          "FROM chunks ORDER BY start")
        return [ChunkRecord(*row) for row in rows]

    def get_chips(self) -> ChipTable:
        """Every stored chip, in chip order."""
        rows = self._read("SELECT chip, accuracy, scores FROM chips ORDER BY chip")
        chip = np.array([r[0] for r in rows], dtype=np.int64)
        accuracy = np.array([r[1] for r in rows], dtype=np.float64)
        parsed = [json.loads(r[2]) if r[2] else {} for r in rows]
        keys = sorted({k for p in parsed for k in p})
        scores = {k: np.array([p.get(k, np.nan) for p in parsed], dtype=np.float64)
                  for k in keys}
        return ChipTable(chip, accuracy, scores)

    def get_outputs(self, chunk: ChunkRecord) -> torch.Tensor:
        """Read the chunk's side file, refusing one whose checksum does not match."""
        if chunk.side_file is None:
            raise StoreError(f"{self.name} kept no outputs for chips {chunk.start}.."
                             f"{chunk.stop - 1}")
        path = self.side_dir / chunk.side_file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read side file '{path}': {exc.strerror}") from exc
        if hashlib.sha256(data).hexdigest() != chunk.sha256:
            raise StoreError(f"side file '{path}' is corrupt (checksum mismatch); run the "
                             "campaign again to recompute its chunk")
        return load_tensors(data)["outputs"]

    # side files and repair

    def _write_side_file(self, result: ChunkResult) -> tuple[str, str]:
        """Write the outputs under a temporary name and rename; return (name, sha256)."""
        name = f"chunk-{result.start}-{result.stop}.safetensors"
        tmp = self.side_dir / f".{name}.tmp"
        data = save_tensors({"outputs": result.outputs.contiguous()},
                            metadata={"start": str(result.start), "stop": str(result.stop)})
        try:
            self.side_dir.mkdir(exist_ok=True)
            _write_bytes(tmp, data)
            os.replace(tmp, self.side_dir / name)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise StoreError(f"disk full while writing side file '{tmp}'; nothing of the "
                                 "last chunk was saved: free some space and run again to "
                                 "resume") from exc
            raise StoreError(f"cannot write side file '{tmp}': {exc.strerror}") from exc
        return name, hashlib.sha256(data).hexdigest()

    def _repair_side_files(self) -> None:
        """Delete unreferenced (orphan or partial) side files; drop chunks with a bad one."""
        chunks = {c.side_file: c for c in self.get_chunks() if c.side_file}
        if self.side_dir.is_dir():
            for path in self.side_dir.iterdir():
                if path.name not in chunks and _SIDE_NAME.match(path.name):
                    _logger.info("deleting orphan side file %s", path)
                    path.unlink()
        bad = [c for c in chunks.values() if not self._side_file_ok(c)]
        if not bad:
            return
        with self._transaction() as conn:
            for chunk in bad:
                conn.execute("DELETE FROM chips WHERE chip >= ? AND chip < ?",
                             (chunk.start, chunk.stop))
                conn.execute("DELETE FROM chunks WHERE id = ?", (chunk.id,))
        for chunk in bad:
            _logger.warning("side file %s is missing or corrupt: chips %d..%d will be "
                            "recomputed", chunk.side_file, chunk.start, chunk.stop - 1)
            (self.side_dir / chunk.side_file).unlink(missing_ok=True)

    def _side_file_ok(self, chunk: ChunkRecord) -> bool:
        try:
            with open(self.side_dir / chunk.side_file, "rb") as handle:
                return hashlib.file_digest(handle, "sha256").hexdigest() == chunk.sha256
        except FileNotFoundError:
            return False

    # database files

    def _partial_database_name(self) -> Path:
        return self.path.with_name(f".{self.path.name}.new-{os.getpid()}")

    def _remove_partial_databases(self) -> None:
        """Delete databases a killed ``create_campaign`` left half-built (under the lock)."""
        for path in self.path.parent.glob(f".{self.path.name}.new-*"):
            path.unlink(missing_ok=True)

    def _checkpoint_and_close(self) -> None:
        """Empty the WAL into the database and close, before the file is replaced."""
        try:
            self._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc, "write")) from exc
        self.close()

    def _build(self, path: Path, record: CampaignRecord) -> None:
        """Create a complete store holding `record` at `path`."""
        array = "x".join(str(v) for v in record.array_size) if record.array_size else None
        values = (record.model_fingerprint, record.data_fingerprint, record.spec, record.seed,
                  record.n, record.task, array, record.bits_per_cell, int(record.keep_outputs),
                  record.n_inputs, record.ideal_accuracy, record.cimtest_version,
                  record.created)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [("cimtest_version", __version__),
                              ("schema_version", str(SCHEMA_VERSION))])
            conn.execute(f"INSERT INTO campaign (id, {_CAMPAIGN_COLUMNS}) VALUES "
                         f"(1, {', '.join('?' * len(values))})", values)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc, "create")) from exc
        finally:
            conn.close()


def _chip_rows(result: ChunkResult) -> list[tuple[int, float, str | None]]:
    chips = result.chips.tolist()
    accuracy = result.accuracy.astype(np.float64).tolist()
    if not result.scores:
        return [(c, a, None) for c, a in zip(chips, accuracy)]
    names = list(result.scores)
    columns = [np.asarray(result.scores[k], dtype=np.float64).tolist() for k in names]
    return [(c, a, json.dumps(dict(zip(names, values))))
            for c, a, *values in zip(chips, accuracy, *columns)]


def _write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a new file at `path` (the one place side-file bytes hit the disk)."""
    with open(path, "wb") as handle:
        handle.write(data)


def _unlink_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
