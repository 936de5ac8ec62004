"""A store's per-chip table to Parquet or CSV (`cimtest export STORE`), and `cimtest status`.

Both open the store read-only: they take no lock, so they work while a campaign writes it.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cimtest._atomic import atomic_file
from cimtest.cli import options
from cimtest.cli.common import (
    announce_output,
    check_output,
    emit_json,
    handle_errors,
    stderr,
    stdout,
)
from cimtest.exceptions import ConfigError

if TYPE_CHECKING:
    from cimtest.engine import StoreStatus

FORMATS = {"parquet": ".parquet", "csv": ".csv"}

STORE = typer.Argument(..., help="Campaign store (.db) written by cimtest campaign --store.")


def export_store(store: str, output: str, fmt: str | None) -> None:
    """Write the store's per-chip table (chip, accuracy, drop, scores) to Parquet or CSV."""
    suffix = Path(output).suffix
    if fmt is None:
        fmt = next((name for name, ext in FORMATS.items() if ext == suffix), "")
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be parquet or csv; got {fmt!r}" if fmt else
                          f"-o must end in .parquet or .csv (or give --format); got '{output}'")
    check_output(output, (FORMATS[fmt],))
    from cimtest.engine import SQLiteStore

    with SQLiteStore(store, read_only=True) as reader:
        status = reader.status()
        frame = reader.frame()
    with announce_output(output, f"{len(frame):,} rows"), atomic_file(output) as tmp:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    if status.chips_done < status.chips_total:
        stderr.print(f"exported {status.chips_done:,} of {status.chips_total:,} chips "
                     "(the campaign is not complete)", soft_wrap=True)


@handle_errors
def status(store: str = STORE, json: bool = options.JSON) -> None:
    """Show a store's campaign: chips done of total, throughput, ETA, spec and seed."""
    from cimtest.engine import SQLiteStore

    with SQLiteStore(store, read_only=True) as reader:
        current = reader.status()
    if json:
        emit_json(current.as_dict())
    else:
        _print_status(store, current)


def _print_status(store: str, current: StoreStatus) -> None:
    record = current.campaign
    share = 100 * current.chips_done / current.chips_total
    array = "x".join(map(str, record.array_size)) if record.array_size else "one per layer"
    created = datetime.datetime.fromtimestamp(record.created).isoformat(" ", "seconds")
    rate = f"{current.chips_per_s:,.0f} chips/s (latest run)" if current.chips_per_s else "-"
    if current.chips_done == current.chips_total:
        eta = "complete"
    else:
        eta = str(datetime.timedelta(seconds=round(current.eta_s))) if current.eta_s else "-"
    rows = [
        ("store", f"{store} (cimtest {record.cimtest_version}, created {created})"),
        ("spec", record.spec),
        ("seed", str(record.seed)),
        ("chips", (f"{current.chips_done:,} / {current.chips_total:,} ({share:.1f} %) in "
                  f"{current.chunks:,} chunks, {current.runs} run(s)")),
        ("throughput", rate),
        ("ETA", eta),
        ("task", (f"{record.task} on {record.n_inputs:,} inputs; ideal chip "
                 f"{record.ideal_accuracy:.2f} %")),
        ("crossbar", f"{record.bits_per_cell} bit(s)/cell, arrays {array}"),
        ("model", record.model_fingerprint),
        ("data", record.data_fingerprint),
    ]
    for key, value in rows:
        stdout.print(f"{key:<11}{value}", markup=False)
