"""A campaign: every chip of a population evaluated on labelled inputs, chunk by chunk, into a
store, so that a killed campaign resumes where it stopped."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator

import pandas as pd
import torch

from cimtest.engine.batched import MICRO_BATCH
from cimtest.engine.executors import ChunkTask, Executor, InProcessExecutor
from cimtest.engine.population import Population
from cimtest.engine.store import BaseStore, CampaignRecord, ChunkResult, InMemoryStore
from cimtest.exceptions import ConfigError
from cimtest.fingerprint import state_fingerprint
from cimtest.tasks import SCORED_TASKS, ScoredTask

__all__ = ["Campaign"]

_logger = logging.getLogger(__name__)

CHUNKS_PER_SLOT = 4
"""With several executor slots, work is cut into at least this many chunks per slot."""

Progress = Callable[[int, int], None]


class Campaign:
    """Evaluate every chip of a population on labelled inputs and keep the results in a store.

    The store holds one campaign. Running a campaign whose record (model, data, spec, seed,
    n, geometry, task) matches the stored one resumes it: only the chips not stored yet are
    evaluated. A different campaign raises `DuplicateCampaignError` unless `new` is set.

    Parameters
    ----------
    population : Population
        The chips.
    x : torch.Tensor
        float32 test inputs of shape (n_inputs, *input_shape).
    y : torch.Tensor
        int64 labels: (n_inputs,) for classification, (n_inputs, H, W) for segmentation.
    task : str
        ``"classification"`` (accuracy in %) or ``"segmentation"`` (mean IoU in %).
    store : BaseStore, optional
        Where results go; a fresh `InMemoryStore` by default.
    keep_outputs : bool
        Also store each chip's outputs, float32 (n_inputs, *output_shape) per chip.
    new : bool
        Replace the campaign the store holds (the first time this campaign runs).

    Examples
    --------
    >>> population = Population(model, "mult:eta=0.1", seed=0, n=1000)  # doctest: +SKIP
    >>> campaign = Campaign(population, x, y, store=SQLiteStore("runs/x.db"))  # doctest: +SKIP
    >>> frame = campaign.run()  # doctest: +SKIP
    """

    def __init__(
        self,
        population: Population,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        task: ScoredTask = "classification",
        store: BaseStore | None = None,
        keep_outputs: bool = False,
        new: bool = False,
    ) -> None:
        self.population = population
        self.x = x
        self.y = y
        self.task = task
        self.store = InMemoryStore() if store is None else store
        self.keep_outputs = keep_outputs
        self.new = new
        self._replace = new

    @functools.cached_property
    def record(self) -> CampaignRecord:
        """This campaign's record: fingerprints, spec, seed, n, geometry, ideal accuracy."""
        self._check_inputs()
        pop = self.population
        ideal = pop.with_faults("none", n=1).accuracy(self.x, self.y, task=self.task)
        return CampaignRecord(
            model_fingerprint=state_fingerprint(pop.mapped.ideal),
            data_fingerprint=state_fingerprint({"x": self.x, "y": self.y}),
            spec=pop.spec.faults.spec() + ("" if pop.spec.periphery.ideal
                                           else f"; hardware {pop.spec.periphery.spec()}"),
            seed=pop.seed,
            n=pop.n,
            task=self.task,
            array_size=tuple(pop.spec.array_size) if pop.spec.array_size else None,
            bits_per_cell=pop.spec.bits_per_cell,
            keep_outputs=bool(self.keep_outputs),
            n_inputs=int(self.x.shape[0]),
            ideal_accuracy=float(ideal.item()),
        )

    def stream(
        self, executor: Executor | None = None, *, progress: Progress | None = None
    ) -> Iterator[pd.DataFrame]:
        """Evaluate the chips the store lacks; yield each chunk's table once it is stored.

        Chunks come in completion order (chip order in this process). The store's write
        session (its lock) is held until the generator ends or is closed.

        Parameters
        ----------
        executor : Executor, optional
            Where chunks run; `InProcessExecutor` by default.
        progress : callable, optional
            Called as ``progress(done, total)`` with the chips evaluated so far in this run
            and the chips this run has to evaluate.

        Yields
        ------
        pandas.DataFrame
            Columns ``chip``, ``accuracy`` and ``drop`` (ideal accuracy minus accuracy).
        """
        executor = InProcessExecutor() if executor is None else executor
        record = self.record
        with self.store.writer():
            stored = self.store.start(record, new=self._replace)
            self._replace = False
            missing = self.store.missing_ranges()
            ranges = _cut(missing, self._chunk_chips(executor, missing))
            total = sum(stop - start for start, stop in ranges)
            _logger.info("%s: %d of %d chips stored, %d to evaluate", self.store.name,
                         record.n - total, record.n, total)
            if progress is not None:
                progress(0, total)
            if not ranges:
                return
            run = self.store.add_run(executor.name)
            task = ChunkTask(self.population, self.x, self.y, self.task, self.keep_outputs)
            done = 0
            for result in executor.map(task, ranges):
                self.store.add_chunk(run, result)
                done += result.stop - result.start
                if progress is not None:
                    progress(done, total)
                yield _chunk_frame(result, stored.ideal_accuracy)

    def run(
        self, executor: Executor | None = None, *, progress: Progress | None = None
    ) -> pd.DataFrame:
        """Evaluate the chips the store lacks; return every stored chip's row in chip order.

        Same parameters as `stream`. Columns ``chip`` (int64), ``accuracy`` and ``drop``
        (float64, percent points).
        """
        for _ in self.stream(executor, progress=progress):
            pass
        return self.store.frame()

    def _check_inputs(self) -> None:
        if self.task not in SCORED_TASKS:
            raise ConfigError(f"a campaign's task must be one of {', '.join(SCORED_TASKS)}; "
                              f"got {self.task!r}")
        if not isinstance(self.x, torch.Tensor) or self.x.dim() < 2 or self.x.shape[0] < 1:
            raise ConfigError("campaign inputs x must be a tensor (n_inputs, *input_shape) "
                              "with at least one input")
        if not isinstance(self.y, torch.Tensor) or self.y.shape[:1] != self.x.shape[:1]:
            raise ConfigError(f"campaign labels y must be a tensor with one label per input "
                              f"({self.x.shape[0]})")

    def _chunk_chips(self, executor: Executor, missing: list[tuple[int, int]]) -> int:
        """Chips per chunk: the population's memory budget, cut finer for parallel slots."""
        step = self.population.chips_per_chunk(tuple(self.x.shape[1:]), self.x.shape[0])
        slots = executor.slots
        if slots > 1:
            share = -(-sum(b - a for a, b in missing) // (CHUNKS_PER_SLOT * slots))
            step = min(step, max(MICRO_BATCH, -(-share // MICRO_BATCH) * MICRO_BATCH))
        return step


def _cut(ranges: list[tuple[int, int]], step: int) -> list[tuple[int, int]]:
    """Cut chip ranges into chunks of at most `step` chips."""
    return [(s, min(s + step, stop)) for start, stop in ranges for s in range(start, stop, step)]


def _chunk_frame(result: ChunkResult, ideal_accuracy: float) -> pd.DataFrame:
    return pd.DataFrame({
        "chip": result.chips,
        "accuracy": result.accuracy,
        "drop": ideal_accuracy - result.accuracy,
    })
