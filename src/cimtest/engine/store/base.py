"""`BaseStore`: the abstract store, and what every store builds from its abstract methods."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Self

import pandas as pd
import torch

from cimtest.engine.store.records import (
    CampaignRecord,
    ChipTable,
    ChunkRecord,
    ChunkResult,
    RunRecord,
    StoreStatus,
)
from cimtest.exceptions import DuplicateCampaignError, StoreError

__all__ = ["BaseStore", "check_chunk"]

_logger = logging.getLogger(__name__)


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


def check_chunk(record: CampaignRecord, result: ChunkResult) -> None:
    """Refuse a chunk that does not fit the campaign (a bug upstream, never user input)."""
    size = result.stop - result.start
    if not 0 <= result.start < result.stop <= record.n or result.accuracy.shape != (size,):
        raise StoreError(f"chunk {result.start}..{result.stop} does not fit a campaign of "
                         f"{record.n} chips")
    if record.keep_outputs and (result.outputs is None or result.outputs.shape[0] != size):
        raise StoreError(f"chunk {result.start}..{result.stop} lacks the kept outputs")

