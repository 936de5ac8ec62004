"""A fitted test monitoring chips as they age: paper 1's online flow (its Fig. 8b).

At each retest time every chip in service is measured (its accuracy on the data, which the
chip in the field does not have, and the test's verdict, which it does). A flagged chip
gets the remedy: re-calibrated from the test's inputs or re-programmed, then re-tested;
still flagged, it is replaced (taken out of service). Chip ``i`` is the same chip at every
time: its draws come from ``(seed, i)`` whatever the time, and a re-programmed chip draws
fresh programming from `Population.reprogrammed`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cimtest.engine.aged import AgedRows
from cimtest.engine.population import Population, chip_accuracies
from cimtest.exceptions import ConfigError
from cimtest.faults import FaultStack
from cimtest.field.reads import LayerReads
from cimtest.field.store import COLUMNS, MonitorStore
from cimtest.methods.base import TestMethod
from cimtest.progress import Progress
from cimtest.tasks import ScoredTask

__all__ = ["COMPENSATIONS", "REMEDIES", "Monitor"]

REMEDIES = ("none", "recalibrate", "reprogram")
"""What a flagged chip gets: nothing (the test only reports), a re-calibration of each
layer's gain to the ideal chip's reads of the test's inputs (`LayerReads.gains`), kept until
the next, or a rewrite with fresh programming (drift counted again from the rewrite)."""

COMPENSATIONS = ("none", "gdc")
"""Whether every read of every chip is drift-compensated: ``gdc`` scales each layer by its
read right after programming over its read now (`LayerReads.compensate`)."""

@dataclass
class _Chip:
    """What a chip carries from one retest to the next."""

    generation: int = 0
    programmed: float = 0.0
    reference: torch.Tensor | None = None
    gains: torch.Tensor | None = None
    in_service: bool = True


class Monitor:
    """`test` retesting `population`'s chips at `times` (seconds since programming).

    Parameters
    ----------
    population : Population
        The chips; its faults must include one with a time model (drift, retention).
    test : TestMethod
        A fitted test; its inputs are also what the remedies read each layer with.
    x, y : torch.Tensor
        Labelled data that define each chip's accuracy (never shown to the test).
    times : sequence of float
        Increasing retest times.
    max_drop : float
        A chip fails when its accuracy is more than this many points below the ideal chip's.
    remedy, compensation : str
        One of `REMEDIES` and of `COMPENSATIONS`.
    """

    def __init__(self, population: Population, test: TestMethod, x: torch.Tensor,
                 y: torch.Tensor, times: Sequence[float], *, max_drop: float = 2.0,
                 remedy: str = "none", compensation: str = "none",
                 task: ScoredTask = "classification") -> None:
        if remedy not in REMEDIES:
            raise ConfigError(f"remedy must be one of {', '.join(REMEDIES)}; got {remedy!r}")
        if compensation not in COMPENSATIONS:
            raise ConfigError(f"compensation must be one of {', '.join(COMPENSATIONS)}; got "
                              f"{compensation!r}")
        if not population.faults.ages:
            raise ConfigError("monitoring needs a fault with a time model (drift, retention)")
        if not max_drop >= 0:
            raise ConfigError(f"max_drop must be at least 0; got {max_drop}")
        self.population, self.test, self.x, self.y, self.task = population, test, x, y, task
        self.times = tuple(float(t) for t in times)
        self.max_drop, self.remedy, self.compensation = float(max_drop), remedy, compensation
        self.inputs = test.inputs_.detach().float().to(population.device)
        needs_reads = remedy == "recalibrate" or compensation == "gdc"
        self.reads = LayerReads(population.mapped, self.inputs) if needs_reads else None
        ideal = population.with_faults(FaultStack(()), n=1)
        self.ideal_accuracy = float(ideal.accuracy(x, y, task=task)[0])

    def settings(self) -> dict[str, object]:
        """The run as JSON: what a store checks before it resumes."""
        inputs = self.inputs.cpu().contiguous().numpy().tobytes()
        test = {"method": self.test.name, "threshold": float(self.test.threshold_),
                "inputs_sha256": hashlib.sha256(inputs).hexdigest()}
        return {"test": test, "population": self.population.recipe(), "times": list(self.times),
                "max_drop": self.max_drop, "remedy": self.remedy,
                "compensation": self.compensation, "ideal_accuracy": self.ideal_accuracy}

    def run(self, chips: Sequence[int] | None = None, *, store: MonitorStore | None = None,
            progress: Progress | None = None) -> pd.DataFrame:
        """Rows (`COLUMNS`) of `chips` (default: all) at every time, by time then chip. With
        `store`, each chunk is committed as it ends and the chips it holds are not rerun."""
        chips = list(range(self.population.n)) if chips is None else [int(c) for c in chips]
        if store is None:
            frames = [frame for _, frame in self.chunks(chips, progress=progress)]
            frame = pd.concat(frames, ignore_index=True) if frames else _empty()
            return frame.sort_values(["t", "chip"], kind="stable", ignore_index=True)
        store.start(self.settings())
        done = store.done()
        for block, frame in self.chunks([c for c in chips if c not in done],
                                        progress=progress):
            store.add(block, frame)
        frame = store.frame()
        return frame[frame["chip"].isin(chips)].reset_index(drop=True)

    def chunks(self, chips: Sequence[int] | None = None, *, progress: Progress | None = None
               ) -> Iterator[tuple[list[int], pd.DataFrame]]:
        """Yield ``(chips, rows)`` chunk by chunk (a store commits each)."""
        chips = list(range(self.population.n)) if chips is None else [int(c) for c in chips]
        kept = 2 if self.remedy == "reprogram" else 1  # the rows `AgedRows` keeps per chip
        step = self.population.chips_per_chunk(tuple(self.x.shape[1:]), self.x.shape[0],
                                               extra_weight_sets=kept)
        for start in range(0, len(chips), step):
            block = chips[start : start + step]
            yield block, self.run_block(block)
            if progress is not None:
                progress(min(start + step, len(chips)), len(chips))

    def run_block(self, chips: Sequence[int]) -> pd.DataFrame:
        """Rows of `chips` at every time; each chip's rows depend on it alone."""
        state = {c: _Chip() for c in chips}
        aged: dict[int, AgedRows] = {}  # per generation: its draws made once
        rows: list[dict] = []
        for t in self.times:
            groups: dict[tuple[int, float], list[int]] = {}
            for c in chips:
                if state[c].in_service:
                    groups.setdefault((state[c].generation, state[c].programmed), []).append(c)
            for (generation, programmed), group in groups.items():
                rows += self._retest(group, state, t, generation, programmed, aged)
            serving = {state[c].generation for c in chips if state[c].in_service}
            for generation in set(aged) - serving:  # no chip of it left: free its rows
                del aged[generation]
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        return frame.sort_values(["t", "chip"], kind="stable", ignore_index=True)

    def _retest(self, chips: list[int], state: dict[int, _Chip], t: float, generation: int,
                programmed: float, aged: dict[int, AgedRows]) -> list[dict]:
        """Retest `chips` (one generation, programmed at one time) at `t`; remedy the
        flagged ones."""
        chipset = self.population.reprogrammed(generation)
        base = self._weights(aged, generation, chips, t - programmed, state)
        gained = [j for j, c in enumerate(chips) if state[c].gains is not None]
        rows = base.clone() if gained else base  # `base` stays as read for a re-calibration
        if gained:
            rows[gained] = self.reads.scale(
                rows[gained], torch.stack([state[chips[j]].gains for j in gained]))
        accuracy, score, flagged = self._measure(chipset, chips, rows)
        failing = accuracy < self.ideal_accuracy - self.max_drop
        out = [{"t": t, "chip": c, "generation": generation, "accuracy": accuracy[j],
                "score": score[j], "flagged": bool(flagged[j]), "failing": bool(failing[j]),
                "remedied": False, "accuracy_after": np.nan, "reverified": False,
                "replaced": False} for j, c in enumerate(chips)]
        hit = [j for j in range(len(chips)) if flagged[j]]
        if self.remedy == "none" or not hit:
            return out
        fixed = [chips[j] for j in hit]
        if self.remedy == "recalibrate":
            after = base[hit].clone()
            gains = self.reads.gains(after)
            for c, gain in zip(fixed, gains, strict=True):
                state[c].gains = gain
            self.reads.scale(after, gains)
        else:
            for c in fixed:
                state[c] = _Chip(generation=generation + 1, programmed=t)
            chipset = self.population.reprogrammed(generation + 1)
            after = self._weights(aged, generation + 1, fixed, 0.0, state)
        accuracy_after, _, still = self._measure(chipset, fixed, after)
        for j, c, acc, bad in zip(hit, fixed, accuracy_after, still, strict=True):
            out[j].update(remedied=True, accuracy_after=acc, reverified=not bad,
                          replaced=bool(bad))
            state[c].in_service = not bad
        return out

    def _weights(self, aged: dict[int, AgedRows], generation: int, chips: list[int],
                 age: float, state: dict[int, _Chip]) -> torch.Tensor:
        """The chips' static weights `age` seconds after their programming (generation
        `generation`, its draws before the aging faults made once in `aged`),
        drift-compensated when the chips compensate (their reference read taken at age 0 on
        first use)."""
        if generation not in aged:
            aged[generation] = AgedRows(self.population.reprogrammed(generation))
        rows = aged[generation].weights(chips, age)
        if self.compensation != "gdc":
            return rows
        missing = [c for c in chips if state[c].reference is None]
        if missing:
            fresh = rows[[chips.index(c) for c in missing]] if age == 0 \
                else aged[generation].weights(missing, 0.0)
            for c, reference in zip(missing, self.reads.sizes(fresh), strict=True):
                state[c].reference = reference
        reference = torch.stack([state[c].reference for c in chips])
        return self.reads.compensate(rows, reference)

    def _measure(self, chipset: Population, chips: list[int], rows: torch.Tensor
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Accuracy (percent), the test's score and its verdict of chips with static weights
        `rows`."""
        accuracy = chip_accuracies(chipset.forward_rows(chips, rows, self.x), self.y, self.task)
        features = self.test.respond(chipset.forward_rows(chips, rows, self.inputs))
        score = np.asarray(self.test.score(features), dtype=np.float64)
        return (accuracy.cpu().numpy(), score,
                np.asarray(self.test.decide(features), dtype=bool))


def _empty() -> pd.DataFrame:
    return pd.DataFrame({name: [] for name in COLUMNS})
