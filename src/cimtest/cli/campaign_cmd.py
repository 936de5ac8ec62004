"""`cimtest campaign` (a population's accuracy) and `cimtest calibrate` (levels per drop)."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from cimtest._atomic import atomic_file
from cimtest._device import check_device
from cimtest.cli import options
from cimtest.cli.aging import aged_campaign, aging_faults, print_aged
from cimtest.cli.common import (
    announce_output,
    check_memory,
    check_output,
    emit_json,
    handle_errors,
    note,
    parse_array_size,
    parse_floats,
    parse_normalise,
    progress_bar,
    stdout,
)
from cimtest.cli.inputs import resolve_data, resolve_model
from cimtest.cli.levels import check_search, refuse_level, warn_if_missed
from cimtest.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from cimtest.engine import DaskExecutor

def print_summary(summary: dict) -> None:
    """Human-readable campaign summary with a text histogram."""
    stdout.print(
        f"{summary['chips']:,} chips in {summary['seconds']:.1f} s "
        f"({summary['chips_per_s']:,.0f} chips/s); ideal chip {summary['ideal_accuracy']:.2f} %"
    )
    stdout.print(
        f"accuracy mean {summary['accuracy_mean']:.2f} %, sd {summary['accuracy_sd']:.2f}, "
        f"min {summary['accuracy_min']:.2f}, max {summary['accuracy_max']:.2f}"
    )
    stdout.print("percentiles: " + ", ".join(
        f"p{p} {v:.2f}" for p, v in summary["percentiles"].items()))
    counts, edges = summary["histogram"]["counts"], summary["histogram"]["edges"]
    peak = max(counts) or 1
    for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
        stdout.print(f"  {lo:6.2f}-{hi:6.2f} | {'#' * round(40 * c / peak):<40} {c}")


TABLE_SUFFIXES = (".parquet", ".csv")


def write_table(frame: pd.DataFrame, path: str) -> None:
    """Write per-chip rows to .parquet or .csv, atomically, and say so (`announce_output`)."""
    with announce_output(path, f"{len(frame):,} rows"), atomic_file(path) as tmp:
        if path.endswith(".csv"):
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)


@handle_errors
def campaign(
    model: str = options.MODEL,
    fault: str = typer.Option(
        ..., "--fault", help="Non-ideality spec (e.g. mult:eta=0.05) or a .toml file."
    ),
    chips: int = typer.Option(1000, help="Number of chips in the population."),
    seed: int = options.SEED,
    data: str = options.DATA,
    normalise: str = options.NORMALISE,
    output: str = typer.Option(None, "-o", "--output", help="Per-chip table: .parquet or .csv."),
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    task: str = options.TASK,
    array_size: str = options.ARRAY_SIZE,
    bits_per_cell: int = options.BITS_PER_CELL,
    hardware: str = options.HARDWARE,
    memory: str = options.MEMORY,
    device: str = options.DEVICE,
    test_images: int = options.TEST_IMAGES,
    json: bool = options.JSON,
    store: str = typer.Option(
        None, "--store", envvar="CIMTEST_STORE",
        help="SQLite campaign store (.db): the same campaign resumes, another is refused.",
    ),
    new: bool = typer.Option(False, "--new", help="Replace the campaign held in --store."),
    dask: str = typer.Option(
        None, "--dask", help="Run on Dask: local[:WORKERS] or a scheduler tcp://HOST:8786."
    ),
    at: str = typer.Option(
        None, "--at", help="Ages after programming, increasing, e.g. 1h,1d,1w,1mo,1y (units s, "
        "min, h, d, w, mo, y): the same chips aged, one summary per age; sets t of drift and "
        "retention.",
    ),
) -> None:
    """Evaluate a population of chips: each chip's accuracy on the test data, summarised.

    With --store, results are committed chunk by chunk: run the same command again to
    resume a stopped campaign. With --at, every chip is evaluated at each age (its draws
    made once); --json prints one summary per age with its t in seconds, and -o has a t
    column."""
    target = check_device(device)  # before any work
    if chips < 1:
        raise ConfigError(f"--chips must be at least 1; got {chips}")
    if new and not store:
        raise ConfigError("--new replaces the campaign of a --store; give --store")
    if output:
        check_output(output, TABLE_SUFFIXES)
    geometry = parse_array_size(array_size)
    parse_normalise(normalise)  # a bad --normalise fails before the model loads
    from cimtest.hardware.periphery import parse_periphery

    periphery = parse_periphery(hardware)
    faults, times = aging_faults(fault, at)  # bad specs and times fail before any work
    if times is not None and (store or dask):
        raise ConfigError("--at evaluates every age in this process: it takes no --store or "
                          "--dask yet")
    from cimtest.engine import Campaign, InProcessExecutor, Population, SQLiteStore

    executor = _dask_executor(dask) if dask else InProcessExecutor()
    writer = SQLiteStore(store) if store else None
    loaded = resolve_model(model, weights, input_shape, task, data)
    dataset = resolve_data(loaded, data, test_images, normalise, memory=memory)
    population = Population(loaded.module, faults, seed, chips, array_size=geometry,
                            bits_per_cell=bits_per_cell, memory=memory, periphery=periphery,
                            device=target)
    check_memory(population)
    if times is not None:
        rows, frame = aged_campaign(population, dataset.x, dataset.y, times, loaded.task)
        for row in rows:
            row.update(model=loaded.name, fingerprint=loaded.fingerprint, fault=fault,
                       seed=seed, data=dataset.name, test_images=len(dataset))
        if output:
            write_table(frame, output)
        if json:
            emit_json(rows)
        else:
            print_aged(rows)
        return
    run = Campaign(population, dataset.x, dataset.y, task=loaded.task, store=writer)
    ideal = run.record.ideal_accuracy
    computed = 0
    start = time.perf_counter()
    with executor, run.store.writer():
        run.store.start(run.record, new=new)  # resume, replace or refuse before any output
        todo = sum(stop - begin for begin, stop in run.store.missing_ranges())
        if todo < chips:
            note(f"resuming {store}: {chips - todo:,} of {chips:,} chips stored, {todo:,} to "
                 "evaluate")
        with progress_bar("campaign") as update:
            for chunk in run.stream(executor, progress=update):
                computed += len(chunk)
    seconds = time.perf_counter() - start
    frame = run.store.frame()
    run.store.close()
    from cimtest.evaluation.campaign import campaign_summary

    summary = campaign_summary(frame["accuracy"].to_numpy(), ideal, seconds)
    summary.update(model=loaded.name, fingerprint=loaded.fingerprint, fault=fault, seed=seed,
                   data=dataset.name, test_images=len(dataset), store=store,
                   chips_computed=computed, chips_per_s=computed / seconds if seconds else 0.0)
    if output:
        write_table(frame, output)
    if json:
        emit_json(summary)
    else:
        print_summary(summary)


def _dask_executor(cluster: str) -> DaskExecutor:
    """A Dask executor; distributed sets its loggers to INFO on import, so follow the CLI's."""
    from cimtest.engine import DaskExecutor

    executor = DaskExecutor(cluster)
    with contextlib.suppress(ImportError):  # DaskExecutor says how to install it
        import distributed  # noqa: F401

        logging.getLogger("distributed").setLevel(logging.getLogger().getEffectiveLevel())
    return executor


@handle_errors
def calibrate(
    model: str = options.MODEL,
    fault: str = typer.Option(..., "--fault", help="Fault kind, e.g. mult, bitflip, levelflip:bits=2."),
    drop: str = typer.Option("1,2,5,10", help="Target mean accuracy drops in points."),
    chips: int = typer.Option(64, help="Monte Carlo chips per level estimate."),
    seed: int = options.SEED,
    data: str = options.DATA,
    normalise: str = options.NORMALISE,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    task: str = options.TASK,
    array_size: str = options.ARRAY_SIZE,
    bits_per_cell: int = options.BITS_PER_CELL,
    hardware: str = options.HARDWARE,
    memory: str = options.MEMORY,
    device: str = options.DEVICE,
    test_images: int = options.TEST_IMAGES,
    iterations: int = typer.Option(14, help="Bisection steps per target."),
    search: str = options.SEARCH,
    json: bool = options.JSON,
) -> None:
    """Find the level of a fault kind whose mean accuracy drop meets each target (bisection,
    or --search secant).

    A level found whose measured drop misses its target (the target outside the drop's 95 %
    band, e.g. with too few --iterations) is flagged: a warning line, and ``meets_target``
    false in --json."""
    target = check_device(device)  # before any work
    check_search(search)
    drops = parse_floats(drop, "--drop")
    geometry = parse_array_size(array_size)
    parse_normalise(normalise)  # a bad --normalise fails before the model loads
    if chips < 2:
        raise ConfigError(f"--chips must be at least 2 (the drop's band needs two); got {chips}")
    from cimtest.faults import parse_spec

    template = parse_spec(fault, allow_missing_level=True)  # fails before the heavy imports
    refuse_level(fault, "calibrate finds the level")
    from cimtest.hardware.periphery import parse_periphery

    periphery = parse_periphery(hardware)
    from cimtest.engine import Population
    from cimtest.engine.calibrate import calibrate as run_calibration

    loaded = resolve_model(model, weights, input_shape, task, data)
    dataset = resolve_data(loaded, data, test_images, normalise, memory=memory)
    population = Population(loaded.module, "none", seed, chips, array_size=geometry,
                            bits_per_cell=bits_per_cell, memory=memory, periphery=periphery,
                            device=target)
    check_memory(population)
    with progress_bar("calibrating", unit="chips") as update:
        results = run_calibration(population, template, dataset.x, dataset.y, drops,
                                  task=loaded.task, iterations=iterations, search=search,
                                  progress=update)
    for result in results:
        warn_if_missed(result)
    rows = [r.as_dict() for r in results]
    if json:
        emit_json(rows)
        return
    name = type(template.faults[0]).level_name
    table = Table("target drop", name, "measured drop", "95 % band", "chips")
    for r in results:
        table.add_row(f"{r.drop:g}", f"{r.level:.4g}", f"{r.measured_drop:.2f}",
                      f"[{r.ci_low:.2f}, {r.ci_high:.2f}]", str(r.chips))
    stdout.print(table)
