"""`InMemoryStore`: a campaign store in this process's memory."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch

from cimtest.engine.store.base import BaseStore, check_chunk
from cimtest.engine.store.records import (
    CampaignRecord,
    ChipTable,
    ChunkRecord,
    ChunkResult,
    RunRecord,
)
from cimtest.exceptions import DuplicateCampaignError, StoreError

__all__ = ["InMemoryStore"]


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
        check_chunk(self._campaign(), result)
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

