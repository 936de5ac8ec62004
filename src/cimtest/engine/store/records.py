"""The frozen records a campaign store keeps and returns: campaign, runs, chunks, chips."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch

from cimtest import __version__
from cimtest.tasks import ScoredTask

__all__ = ["CampaignRecord", "ChipTable", "ChunkRecord", "ChunkResult", "RunRecord",
           "StoreStatus"]

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
    """Canonical fault spec text, e.g. ``"mult:eta=0.05"``, followed by ``"; hardware KEYS"``
    when the chips have a periphery (`cimtest.hardware.periphery`)."""
    seed: int
    n: int
    """Number of chips."""
    task: ScoredTask
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
