"""Chips' static weights at any age, the draws before the first time model made once.

The static faults written before the first one with a time model (`FaultStack.split_aging`)
draw first in each chip's stream, and what they draw does not depend on the age. Their rows
are kept with the state of each chip's generator, which is restored before the aging faults
are drawn at each age (one normal per weight for ``drift``; ``retention`` draws only its
failed cells), so a chip at any age is ``population.at(age).weights([chip])`` bit for bit
at the cost of the aging faults alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from cimtest.engine.rows import fill_rows, row_buffer
from cimtest.engine.seeding import chip_generators

if TYPE_CHECKING:
    from cimtest.engine.population import Population

__all__ = ["AgedRows"]


class AgedRows:
    """The static weights of a population's chips at any age (`weights`), each chip's
    draws before the first time model made once, on its first request."""

    def __init__(self, population: Population) -> None:
        self.population = population
        static, _ = population.faults.split_time()
        self._prefix = static.split_aging()[0]
        self._batches: list[tuple[list[int], torch.Tensor, list[torch.Tensor]]] = []
        self._where: dict[int, tuple[int, int]] = {}

    def weights(self, chips: Sequence[int], age: float, *,
                scratch: torch.Tensor | None = None, base: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``population.at(age).weights(chips, scratch=scratch)``, bit for bit. The chips
        not drawn before draw their first part now; the first chips drawn draw into `base`
        (float32 (B, P), like `scratch`) when given."""
        chips = [int(c) for c in chips]
        aged = self.population.at(age)
        if not self._prefix.faults:
            return aged.weights(chips, scratch=scratch)
        missing = [c for c in chips if c not in self._where]
        if missing:
            self._draw(missing, base)
        where = [self._where[c] for c in chips]
        drawn, rows, _ = self._batches[where[0][0]]
        if drawn != chips:  # not one batch as drawn: gather the rows
            rows = torch.stack([self._batches[b][1][i] for b, i in where])
        generators = []
        for b, i in where:
            generator = torch.Generator(device=self.population.device)
            generators.append(generator.set_state(self._batches[b][2][i]))
        suffix = aged.faults.split_time()[0].split_aging()[1]
        numel, device = rows.shape[1], self.population.device
        return fill_rows(row_buffer(scratch, len(chips), numel, device), rows, suffix,
                         self.population.layout, generators)

    def _draw(self, chips: list[int], base: torch.Tensor | None) -> None:
        """Draw the first part of `chips` and keep it with their generators' states."""
        population = self.population
        generators = chip_generators(population.seed, chips, device=population.device)
        numel = population.mapped.reference.numel()
        rows = row_buffer(None if self._batches else base, len(chips), numel, population.device)
        fill_rows(rows, population.mapped.reference, self._prefix, population.layout, generators)
        self._batches.append((chips, rows, [g.get_state() for g in generators]))
        for i, c in enumerate(chips):
            self._where[c] = (len(self._batches) - 1, i)

