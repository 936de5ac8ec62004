"""`MonitorStore`: a monitor's rows in one SQLite file, committed chunk by chunk, so that a
stopped monitor resumes where it stopped and a different one is refused."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd

from cimtest.exceptions import StoreError

__all__ = ["COLUMNS", "MonitorStore"]

COLUMNS = ("t", "chip", "generation", "accuracy", "score", "flagged", "failing", "remedied",
           "accuracy_after", "reverified", "replaced")
"""A monitor's row: one chip in service at one time; ``accuracy_after`` is NaN (NULL) unless
the chip was remedied."""

_TYPES = {"t": "REAL", "chip": "INTEGER", "generation": "INTEGER", "accuracy": "REAL",
          "score": "REAL", "flagged": "INTEGER", "failing": "INTEGER", "remedied": "INTEGER",
          "accuracy_after": "REAL", "reverified": "INTEGER", "replaced": "INTEGER"}
_TABLES = {"settings", "done", "rows"}
_BOOLS = ("flagged", "failing", "remedied", "reverified", "replaced")


class MonitorStore:
    """A monitor run kept at `path` (one writer at a time): its settings, the chips done and
    their rows."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"store '{self.path}' is not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path)
            tables = {row[0] for row in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - _TABLES:
                self.conn.close()
                raise StoreError(f"store '{self.path}' is not a monitor store (it holds "
                                 f"{', '.join(sorted(tables - _TABLES))}); give another --store")
            self.conn.execute("PRAGMA journal_mode=WAL")
            with self.conn:
                self.conn.execute("CREATE TABLE IF NOT EXISTS settings (json TEXT NOT NULL)")
                self.conn.execute("CREATE TABLE IF NOT EXISTS done (chip INTEGER PRIMARY KEY)")
                columns = ", ".join(f"{name} {_TYPES[name]}" for name in COLUMNS)
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS rows ({columns}, "
                                  "PRIMARY KEY (chip, t))")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store '{self.path}' is not a monitor store: {exc}") from None

    def start(self, settings: dict) -> None:
        """Record `settings`, or check they are the stored run's (`StoreError` naming the
        first keys that differ)."""
        stored = self.conn.execute("SELECT json FROM settings").fetchone()
        if stored is None:
            with self.conn:
                self.conn.execute("INSERT INTO settings VALUES (?)", (json.dumps(settings),))
            return
        old = json.loads(stored[0])
        now = json.loads(json.dumps(settings))
        if old != now:
            keys = sorted(k for k in set(old) | set(now) if old.get(k) != now.get(k))
            raise StoreError(f"store '{self.path}' holds another monitor run (differs in "
                             f"{', '.join(keys)}); give another --store")

    def done(self) -> set[int]:
        """Chips whose rows are stored."""
        return {row[0] for row in self.conn.execute("SELECT chip FROM done")}

    def add(self, chips: list[int], frame: pd.DataFrame) -> None:
        """Store the rows of `chips` in one transaction."""
        values = frame[list(COLUMNS)].astype(object).where(frame.notna(), None)
        with self.conn:
            self.conn.executemany(f"INSERT INTO rows VALUES ({', '.join('?' * len(COLUMNS))})",
                                  values.itertuples(index=False, name=None))
            self.conn.executemany("INSERT INTO done VALUES (?)", [(c,) for c in chips])

    def frame(self) -> pd.DataFrame:
        """Every stored row, by time then chip."""
        frame = pd.read_sql_query("SELECT * FROM rows ORDER BY t, chip", self.conn)
        for name in _BOOLS:
            frame[name] = frame[name].astype(bool)
        frame["accuracy_after"] = frame["accuracy_after"].astype(float)
        return frame

    def close(self) -> None:
        """Close the database."""
        self.conn.close()
