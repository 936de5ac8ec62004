"""`SQLiteStore`: a campaign store in one SQLite file (WAL mode), outputs in side files."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from cimtest import __version__
from cimtest._atomic import atomic_file, partial_files
from cimtest.engine.store.base import BaseStore, check_chunk
from cimtest.engine.store.records import (
    CampaignRecord,
    ChipTable,
    ChunkRecord,
    ChunkResult,
    RunRecord,
)
from cimtest.engine.store.schema import (
    CAMPAIGN_COLUMNS,
    SCHEMA_VERSION,
    campaign_from_row,
    chip_rows,
    chip_table,
    create_tables,
)
from cimtest.exceptions import DuplicateCampaignError, StoreError

__all__ = ["SQLiteStore"]

_logger = logging.getLogger(__name__)

_SIDE_NAME = re.compile(r"^\.?chunk-\d+-\d+\.safetensors(\.\w+\.safetensors)?$")
"""Side files, and the temporary files `atomic_file` writes them under, that the store may
delete as orphans."""


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
        rows = self._read(f"SELECT {CAMPAIGN_COLUMNS} FROM campaign")
        return campaign_from_row(rows[0]) if rows else None

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
        with atomic_file(self.path) as tmp:
            try:
                self._build(tmp, record)
            finally:
                _unlink_journals(tmp)
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
        check_chunk(record, result)
        side_file = digest = None
        if record.keep_outputs:
            side_file, digest = self._write_side_file(result)
        rows = chip_rows(result)
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
        return chip_table(self._read("SELECT chip, accuracy, scores FROM chips ORDER BY chip"))

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
        """Write the outputs atomically (`atomic_file`); return (file name, sha256)."""
        name = f"chunk-{result.start}-{result.stop}.safetensors"
        path = self.side_dir / name
        data = save_tensors({"outputs": result.outputs.contiguous()},
                            metadata={"start": str(result.start), "stop": str(result.stop)})
        try:
            self.side_dir.mkdir(exist_ok=True)
            with atomic_file(path) as tmp:
                tmp.write_bytes(data)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StoreError(f"disk full while writing side file '{path}'; nothing of the "
                                 "last chunk was saved: free some space and run again to "
                                 "resume") from exc
            raise StoreError(f"cannot write side file '{path}': {exc.strerror}") from exc
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

    def _remove_partial_databases(self) -> None:
        """Delete databases a killed ``create_campaign`` left half-built (under the lock)."""
        for path in partial_files(self.path):
            path.unlink(missing_ok=True)
            _unlink_journals(path)

    def _checkpoint_and_close(self) -> None:
        """Empty the WAL into the database and close, before the file is replaced."""
        try:
            self._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc, "write")) from exc
        self.close()

    def _build(self, path: Path, record: CampaignRecord) -> None:
        """Create a complete store holding `record` in the empty file at `path`."""
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            create_tables(conn, record)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc, "create")) from exc
        finally:
            conn.close()



def _unlink_journals(path: Path) -> None:
    """Delete the files SQLite keeps beside the database at `path` (its WAL, index, journal)."""
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
