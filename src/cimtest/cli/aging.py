"""``--at``: a population seen at several ages after programming, one summary per age."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table

from cimtest.cli.common import progress_bar, stdout
from cimtest.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from cimtest.engine import Population
    from cimtest.faults import FaultStack
    from cimtest.tasks import ScoredTask

__all__ = [
    "age_slug",
    "age_text",
    "aged_campaign",
    "aging_faults",
    "aging_stacks",
    "print_aged",
    "programmed",
]


def aging_faults(fault: str, at: str | None) -> tuple[FaultStack, tuple[float, ...] | None]:
    """The stack of ``--fault`` and the ages of ``--at`` in seconds (None without it), checked
    before any work: malformed, negative or non-increasing times, or ``--at`` with no fault
    that ages, are refused in one line. With ``--at`` a spec may leave out the age ``t`` of
    its faults with a time model; ``--at`` sets it (replacing any ``t`` written)."""
    from cimtest.faults import parse_spec, parse_times, read_fault

    if at is None:
        return read_fault(fault), None
    times = parse_times(at)
    if fault.endswith(".toml"):
        faults = read_fault(fault)
    else:
        faults = parse_spec(fault, allow_missing_time=True)
    if not faults.ages:
        raise ConfigError(f"--at needs a fault with a time model (drift, retention); "
                          f"{fault!r} has none")
    return faults, times


def aged_campaign(
    population: Population,
    x: torch.Tensor,
    y: torch.Tensor,
    times: Sequence[float],
    task: ScoredTask,
) -> tuple[list[dict], pd.DataFrame]:
    """Every chip's accuracy at every age (each chip drawn once, `Population.accuracy_at`).

    Returns one summary per age (``t`` in seconds, then `campaign_summary`'s keys, whose
    ``seconds`` and ``chips_per_s`` are the whole run's) and one row per chip and age
    (``t``, ``chip``, ``accuracy``, ``drop``).
    """
    import numpy as np
    import pandas as pd

    from cimtest.evaluation.campaign import campaign_summary
    from cimtest.faults import FaultStack

    ideal = float(population.with_faults(FaultStack(()), n=1).accuracy(x, y, task=task)[0])
    start = time.perf_counter()
    with progress_bar(f"campaign at {len(times)} ages") as update:
        accuracy = population.accuracy_at(x, y, times, task=task, progress=update).cpu().numpy()
    seconds = time.perf_counter() - start
    rows = [{"t": t, **campaign_summary(acc, ideal, seconds)}
            for t, acc in zip(times, accuracy, strict=True)]
    frame = pd.DataFrame({
        "t": np.repeat(np.asarray(times, dtype=np.float64), population.n),
        "chip": np.tile(np.arange(population.n), len(times)),
        "accuracy": accuracy.reshape(-1),
        "drop": ideal - accuracy.reshape(-1),
    })
    return rows, frame


def print_aged(rows: list[dict]) -> None:
    """One line of the run, then a table of the accuracy distribution at each age."""
    first = rows[0]
    stdout.print(f"{first['chips']:,} chips at {len(rows)} ages in {first['seconds']:.1f} s; "
                 f"ideal chip {first['ideal_accuracy']:.2f} %")
    table = Table("t (s)", "mean", "sd", "min", "p5", "p50", "max", title="accuracy (%)")
    for row in rows:
        p = row["percentiles"]
        table.add_row(f"{row['t']:.6g}", f"{row['accuracy_mean']:.2f}",
                      f"{row['accuracy_sd']:.2f}", f"{row['accuracy_min']:.2f}",
                      f"{p['5']:.2f}", f"{p['50']:.2f}", f"{row['accuracy_max']:.2f}")
    stdout.print(table)


def programmed(fault: str) -> FaultStack:
    """The stack of a spec (or .toml) at t = 0, the programmed chip, when a fault ages (its
    ``t`` may be left out, any ``t`` written is replaced); the stack as read otherwise."""
    from cimtest.faults import parse_spec, read_fault

    faults = read_fault(fault) if fault.endswith(".toml") else parse_spec(
        fault, allow_missing_time=True)
    return faults.at(0.0) if faults.ages else faults


def aging_stacks(faults: Sequence[str], at: str) -> tuple[list[FaultStack], tuple[float, ...]]:
    """`aging_faults` of each spec of `faults` (each must age), and the ages in seconds."""
    from cimtest.faults import parse_times

    times = parse_times(at)  # bad times are named first, whatever the specs
    return [aging_faults(fault, at)[0] for fault in faults], times


def age_text(t: float) -> str:
    """An age for a heading: ``t = 86400 s``."""
    return f"t = {t:.6g} s"


def age_slug(t: float) -> str:
    """An age for a file name: ``t86400s`` (whole seconds as an integer)."""
    return f"t{int(t)}s" if float(t).is_integer() else f"t{float(t)!r}s"
