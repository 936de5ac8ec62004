"""`cimtest info MODEL`: layers, crossbar mapping, and float / ideal-chip accuracy."""

from __future__ import annotations

from rich.table import Table

from cimtest.cli import options
from cimtest.cli.common import (
    emit_json,
    handle_errors,
    parse_array_size,
    parse_normalise,
    stdout,
)
from cimtest.cli.inputs import near_chance, own_splits, resolve_data, resolve_model
from cimtest.exceptions import DataError


def print_report(report: dict) -> None:
    """Human-readable form of `model_report`: the accuracy first, then the mapping."""
    if report["float_accuracy"] is not None:
        stdout.print(
            f"accuracy on {report['data']}: float {report['float_accuracy']:.2f} %, "
            f"ideal chip (int8) {report['ideal_accuracy']:.2f} %"
        )
    table = Table("layer", "kind", "weight shape", "rows", "cols", "arrays", "cells")
    for r in report["layers"]:
        table.add_row(r["name"], r["kind"], "x".join(map(str, r["weight_shape"])),
                      str(r["rows"]), str(r["cols"]), str(r["arrays"]), f"{r['cells']:,}")
    stdout.print(table)
    stdout.print(
        f"{report['name']} ({report['task']}, input {'x'.join(map(str, report['input_shape']))}): "
        f"{report['params']:,} parameters, {report['mapped_weights']:,} mapped weights in "
        f"{len(report['layers'])} layers, {report['cells']:,} cells "
        f"({report['bits_per_cell']} bit/cell), {report['arrays']} arrays"
    )
    stdout.print(f"fingerprint {report['fingerprint']}")


@handle_errors
def info(
    model: str = options.MODEL,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    task: str = options.TASK,
    data: str = options.DATA,
    normalise: str = options.NORMALISE,
    array_size: str = options.ARRAY_SIZE,
    bits_per_cell: int = options.BITS_PER_CELL,
    json: bool = options.JSON,
) -> None:
    """Show a model's mapped layers, crossbar arrays and cells, and its float and ideal-chip
    accuracy."""
    geometry = parse_array_size(array_size)
    parse_normalise(normalise)  # a bad --normalise fails before the model loads
    loaded = resolve_model(model, weights, input_shape, task, data)
    try:
        dataset = resolve_data(loaded, data, normalise=normalise, check=False)
    except DataError:
        if data is not None or normalise is not None:
            raise
        dataset = None
    from cimtest.evaluation.model import model_report

    report = model_report(loaded, dataset, geometry, bits_per_cell)
    if dataset is not None and own_splits(loaded, data, normalise=normalise) is None:
        near_chance(loaded, dataset, report["float_accuracy"])
    if json:
        emit_json(report)
    else:
        print_report(report)
