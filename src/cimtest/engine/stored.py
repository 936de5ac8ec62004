"""Chips whose outputs are measured as a campaign kept in a store: a killed fit resumes.

`StoredChips` has the `cimtest.methods.base.Chips` shape of a `Population` (``n``,
``outputs``, ``recipe``), so a test method fits on it without ever opening the store itself.
"""

from __future__ import annotations

import logging

import torch

from cimtest.engine.campaign import Campaign
from cimtest.engine.population import Population
from cimtest.engine.store import BaseStore
from cimtest.progress import Progress

__all__ = ["StoredChips"]

_logger = logging.getLogger(__name__)


class StoredChips:
    """`population`'s outputs on any inputs, run as a `Campaign` that keeps them in `store`.

    The campaign labels the inputs with the ideal chip's classes, so the store's
    ``accuracy`` column is each chip's agreement (percent) with the ideal chip. With an
    on-disk store a killed measurement resumes, and a second one on the same chips and
    inputs reads the outputs back.
    """

    def __init__(self, population: Population, store: BaseStore | None = None) -> None:
        self.population = population
        self.store = store
        self.n = population.n
        self.device = population.device

    def recipe(self) -> dict[str, object]:
        """The population's recipe (`Population.recipe`)."""
        return self.population.recipe()

    def outputs(self, x: torch.Tensor, *, progress: Progress | None = None) -> torch.Tensor:
        """Every chip's outputs on `x`, float32 (n, N, M) (outputs flattened per input)."""
        ideal = self.population.with_faults("none", n=1)
        labels = ideal.outputs(x)[0].reshape(x.shape[0], -1).argmax(1)
        campaign = Campaign(self.population, x, labels, store=self.store, keep_outputs=True)
        campaign.run(progress=progress)
        out = campaign.store.outputs()
        out = out.reshape(out.shape[0], out.shape[1], -1)
        _logger.info("chip outputs: %s float32 (%.1f MB)", tuple(out.shape), out.numel() * 4 / 1e6)
        return out
