"""Chips in the loop: one protocol, ``run(inputs) -> outputs``, and its three drivers.

- `SimulatedChip`: chip ``index`` of a `cimtest.engine.Population` (the simulator);
- `RecordedChip`: plays back the responses one chip gave on a bench (`Responses`);
- a user's ``module:factory`` (`open_factory`) for a physical board: the factory returns
  one driver, a list of drivers, or a ``{chip id: driver}`` mapping.

A driver takes the exported inputs, float32 ``(inputs, *input_shape)`` in their order, and
returns the chip's outputs, ``(inputs, *output_shape)``; `run_chip` checks what it returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from cimtest.exceptions import TesterError, first_line

__all__ = ["Chip", "RecordedChip", "SimulatedChip", "open_factory", "recorded_chips",
           "run_chip", "simulated_chips"]


@runtime_checkable
class Chip(Protocol):
    """A chip cimtest can run a test on: the simulator, a recording, or a board."""

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs ``(inputs, *output_shape)`` of the chip on `inputs` (in their order)."""
        ...


class SimulatedChip:
    """Chip `index` of `population`, run through the engine as every campaign runs it."""

    def __init__(self, population, index: int) -> None:
        self.population = population
        self.index = int(index)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """The chip's outputs on `inputs`."""
        x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
        return self.population.forward([self.index], x)[0].cpu().numpy()


class RecordedChip:
    """Responses recorded on a bench, played back: `run` returns them for the inputs they
    were recorded on (the same count; a bench cannot be asked other questions afterwards)."""

    def __init__(self, outputs: np.ndarray) -> None:
        self.outputs = outputs

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """The recorded outputs, if `inputs` are as many as were recorded."""
        if len(inputs) != len(self.outputs):
            raise TesterError(f"the recording holds responses to {len(self.outputs)} inputs, "
                              f"not {len(inputs)}")
        return self.outputs


def simulated_chips(population) -> Iterator[tuple[str, Chip]]:
    """``(chip id, driver)`` for every chip of `population` (ids ``"0"``, ``"1"``, ...)."""
    for index in range(population.n):
        yield str(index), SimulatedChip(population, index)


def recorded_chips(responses) -> Iterator[tuple[str, Chip]]:
    """``(chip id, driver)`` for every chip of a `Responses` recording."""
    for chip, outputs in zip(responses.chips, responses.outputs, strict=True):
        yield chip, RecordedChip(outputs)


def open_factory(spec: str) -> list[tuple[str, Chip]]:
    """The chips a user's ``module:factory`` opens (the module is imported as ``python -m``
    would, from the current folder too); `TesterError` if it cannot be imported, raises, or
    returns something without ``run``."""
    from cimtest.loading import import_from_cwd

    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(import_from_cwd(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise TesterError(f"cannot import chip driver '{spec}': {first_line(exc)}") from None
    try:
        opened = factory()
    except Exception as exc:  # a user's driver may raise anything  # noqa: BLE001
        raise TesterError(f"chip driver '{spec}' failed to open: {first_line(exc)}") from None
    if isinstance(opened, Mapping):
        chips = [(str(k), v) for k, v in opened.items()]
    elif isinstance(opened, Sequence) and not isinstance(opened, str | bytes):
        chips = [(str(getattr(c, "chip_id", i)), c) for i, c in enumerate(opened)]
    else:
        chips = [(str(getattr(opened, "chip_id", 0)), opened)]
    for chip, driver in chips:
        if not callable(getattr(driver, "run", None)):
            raise TesterError(f"chip driver '{spec}' gave chip {chip} as a "
                              f"{type(driver).__name__}, which has no run(inputs) method")
    ids = [chip for chip, _ in chips]
    if len(set(ids)) != len(ids):
        raise TesterError(f"chip driver '{spec}' gave two chips the same id")
    if not chips:
        raise TesterError(f"chip driver '{spec}' opened no chips")
    return chips


def run_chip(chip: str, driver: Chip, inputs: np.ndarray,
             response_shape: tuple[int, ...]) -> np.ndarray:
    """`driver`'s outputs on `inputs` as float32 `response_shape`; `TesterError` naming
    `chip` if the driver raises or returns another shape, or non-finite values."""
    try:
        outputs = driver.run(inputs)
        if isinstance(outputs, torch.Tensor):
            outputs = outputs.detach().cpu().numpy()
        outputs = np.asarray(outputs, dtype=np.float32)
    except TesterError as exc:
        raise TesterError(f"chip {chip}: {exc}") from None
    except Exception as exc:  # a user's driver may raise anything  # noqa: BLE001
        raise TesterError(f"chip {chip}: the driver's run failed: {first_line(exc)}") from None
    if outputs.shape != tuple(response_shape):
        raise TesterError(f"chip {chip}: the driver returned outputs of shape "
                          f"{outputs.shape}; the test expects {tuple(response_shape)}")
    bad = int((~np.isfinite(outputs)).sum())
    if bad:
        raise TesterError(f"chip {chip}: the driver returned {bad} NaN or infinite values")
    return outputs
