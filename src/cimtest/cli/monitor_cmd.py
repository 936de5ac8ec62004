"""`cimtest monitor`: a fitted test retesting chips as they age, with the chip's remedies."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from cimtest._device import check_device
from cimtest.cli import options
from cimtest.cli.aging import aging_faults
from cimtest.cli.common import (
    announce_output,
    check_output,
    emit_json,
    handle_errors,
    parse_normalise,
    progress_bar,
    stdout,
)
from cimtest.cli.tester_cmd import CUTOFF, FORCE, MODEL, TEST, K, load_exported
from cimtest.exceptions import ConfigError
from cimtest.faults.durations import format_duration

if TYPE_CHECKING:
    from cimtest.loading import LoadedModel
    from cimtest.tester.exported import ExportedTest

__all__ = ["monitor"]

TABLE_SUFFIXES = (".parquet", ".csv")


@handle_errors
def monitor(
    test: str = TEST,
    fault: str = typer.Option(..., "--fault", help="The chips' non-idealities, with one that "
                              "ages (drift, retention), e.g. egis-typical:sigma=0.05+drift."),
    at: str = typer.Option(..., "--at", help="Retest times after programming, increasing, "
                           "e.g. 1h,1d,1w,1mo,1y (units s, min, h, d, w, mo, y)."),
    chips: int = typer.Option(100, "--chips", help="Chips monitored."),
    seed: int = typer.Option(1, "--seed", help="Population seed (default 1: other chips "
                             "than a test fitted on seed 0's)."),
    max_drop: float = typer.Option(2.0, "--max-drop", help="A chip fails when its accuracy "
                                   "is more than this many points below the ideal chip's."),
    remedy: str = typer.Option("none", "--remedy", help="What a flagged chip gets: none, "
                               "recalibrate (each layer's gain fitted to the ideal chip's "
                               "reads of the test's inputs) or reprogram (rewritten, drift "
                               "restarts); still flagged after it, the chip is replaced."),
    compensate: str = typer.Option("none", "--compensate", help="none, or gdc: every read "
                                   "drift-compensated, each layer scaled by its read of the "
                                   "test's inputs right after programming over its read now."),
    data: str = options.DATA,
    normalise: str = options.NORMALISE,
    test_images: int = options.TEST_IMAGES,
    memory: str = options.MEMORY,
    device: str = options.DEVICE,
    store: str = typer.Option(None, "--store", help="SQLite file (.db) the rows are committed "
                              "to chunk by chunk: the same run resumes, another is refused."),
    output: str = typer.Option(None, "-o", "--output", help="Per chip and time rows: "
                               ".parquet or .csv."),
    html: str = typer.Option(None, "--html", help="Write the plots and tables as one HTML "
                             "file."),
    k: int = K,
    cutoff: str = CUTOFF,
    model: str = MODEL,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    force: bool = FORCE,
    json: bool = options.JSON,
) -> None:
    """Retest chips at increasing times after programming, as paper 1's online flow does: at
    each time the accuracy distribution, the shares failing and flagged, and with --remedy
    the shares remedied, re-verified and replaced; per chip the detection latency; false
    alarms per chip-year."""
    target = check_device(device)  # before any work
    from cimtest.field import COMPENSATIONS, REMEDIES, Monitor, MonitorStore

    if chips < 1:
        raise ConfigError(f"--chips must be at least 1; got {chips}")
    if not max_drop >= 0:
        raise ConfigError(f"--max-drop must be at least 0; got {max_drop}")
    if remedy not in REMEDIES:
        raise ConfigError(f"--remedy must be one of {', '.join(REMEDIES)}; got {remedy!r}")
    if compensate not in COMPENSATIONS:
        raise ConfigError(f"--compensate must be one of {', '.join(COMPENSATIONS)}; got "
                          f"{compensate!r}")
    for path, suffixes in ((output, TABLE_SUFFIXES), (html, (".html",)), (store, (".db",))):
        if path is not None:
            check_output(path, suffixes)
    parse_normalise(normalise)
    faults, times = aging_faults(fault, at)
    exported = load_exported(test, k, cutoff, model, weights, input_shape, force,
                             device=target)
    loaded = _chip_model(exported, model, weights, input_shape)
    from cimtest.cli.inputs import resolve_data
    from cimtest.engine import Population

    dataset = resolve_data(loaded, data, test_images, normalise, memory=memory)
    population = Population(loaded.module, faults, seed, chips, memory=memory,
                            periphery=exported.manifest.get("hardware", "ideal"), device=target)
    run = Monitor(population, exported.test, dataset.x, dataset.y, times, max_drop=max_drop,
                  remedy=remedy, compensation=compensate, task=loaded.task)
    writer = MonitorStore(store) if store else None
    start = time.perf_counter()
    try:
        with progress_bar(f"monitor at {len(times)} times") as update:
            frame = run.run(store=writer, progress=update)
    finally:
        if writer is not None:
            writer.close()
    document = _document(run, frame, exported, dataset.name, fault, seed,
                         time.perf_counter() - start)
    if output:
        from cimtest.cli.campaign_cmd import write_table

        write_table(frame, output)
    if html:
        from cimtest.report.field import write_field_report

        with announce_output(html, "the monitor's report"):
            write_field_report(document, frame, html)
    if json:
        emit_json(document)
    else:
        _print(document)


def _chip_model(exported: ExportedTest, model: str | None, weights: str | None,
                input_shape: str | None) -> LoadedModel:
    """The model the chips run: --model, else the one the test names."""
    from cimtest.cli.inputs import remembered_model, resolve_model

    shape = exported.test.input_shape_
    if model is not None:
        return resolve_model(model, weights, input_shape, None, known_shape=shape)
    return remembered_model(exported.manifest["model"]["reference"],
                            str(exported.path or "the test"), weights, input_shape, None, shape)


def _document(run, frame, exported: ExportedTest, data: str, fault: str, seed: int,
              seconds: float) -> dict:
    """The run as one JSON document: settings, one row per time, latency, false alarms."""
    from cimtest.field import false_alarms, latency, time_rows

    return {"test": exported.test.name, "model": exported.manifest["model"]["name"],
            "fault": fault, "seed": seed, "chips": run.population.n, "data": data,
            "test_images": int(run.x.shape[0]), "max_drop": run.max_drop,
            "remedy": run.remedy, "compensation": run.compensation,
            "ideal_accuracy": run.ideal_accuracy, "seconds": seconds,
            "rows": time_rows(frame, run.times), "latency": latency(frame),
            "false_alarms": false_alarms(frame)}


def _print(document: dict) -> None:
    """The table of times, then latency and false alarms, in words."""
    remedied = document["remedy"] != "none"
    stdout.print(f"{document['test']} monitoring {document['chips']:,} chips of "
                 f"{document['model']} ({document['fault']}); ideal chip "
                 f"{document['ideal_accuracy']:.2f} %, failing = more than "
                 f"{document['max_drop']:g} points below it")
    columns = ["t", "chips", "accuracy", "p5", "failing", "flagged", "false alarms"]
    if remedied:
        columns += ["remedied", "acc. after", "re-verified", "replaced"]
    table = Table(*columns, title=f"retests (remedy {document['remedy']}, compensation "
                  f"{document['compensation']})")
    for row in document["rows"]:
        cells = [format_duration(row["t"]), f"{row['chips']:,}", _num(row["accuracy_mean"]),
                 _num(row["accuracy_p5"]), _pct(row["failing"]), _pct(row["flagged"]),
                 _pct(row["false_alarms"])]
        if remedied:
            cells += [_pct(row["remedied"]), _num(row["accuracy_after_mean"]),
                      _pct(row["reverified"]), _pct(row["replaced"])]
        table.add_row(*cells)
    stdout.print(table)
    lat, alarms = document["latency"], document["false_alarms"]
    stdout.print(f"{lat['failed']:,} chips failed; {lat['detected']:,} flagged at or after "
                 f"failing (median latency {format_duration(lat['latency_median_s'])}), "
                 f"{lat['missed']:,} never")
    if alarms["per_chip_year"] is not None:
        low, high = alarms["interval"]
        stdout.print(f"false alarms: {alarms['count']:,} in {alarms['chip_years']:.3g} "
                     f"chip-years = {alarms['per_chip_year']:.3g} per chip-year (95 %: "
                     f"{low:.3g}-{high:.3g})")


def _pct(share: dict | None) -> str:
    return "-" if share is None else f"{100 * share['share']:.1f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
