"""`cimtest demo`: the README's main job on the embedded default model."""

from __future__ import annotations

import time

import typer

from cimtest import zoo
from cimtest.cli.campaign_cmd import print_summary, summarise
from cimtest.cli.common import emit_json, handle_errors, progress_bar, stderr, stdout
from cimtest.cli.info_cmd import model_report
from cimtest.cli.inputs import resolve_data
from cimtest.engine import Population
from cimtest.loading import load_model

DEFAULT_MODEL = "resnet20-8"
DEMO_FAULT = "egis-typical:sigma=0.15"


@handle_errors
def demo(
    model: str = typer.Option(DEFAULT_MODEL, help="Zoo model to run the demo on."),
    chips: int = typer.Option(1000, help="Chips in the demo campaign."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Train (first run) or load the default model, show its chip mapping and ideal-chip
    accuracy, and run a Monte Carlo campaign of chips under typical RRAM variation."""
    if not zoo.is_trained(model):
        stderr.print(f"training {model} on the embedded digits (first run only)...")
        with progress_bar(f"training {model}", unit="epochs") as update:
            zoo.load_trained(model, progress=lambda e, n, _: update(e, n))
    loaded = load_model(model)
    dataset = resolve_data(loaded, None)
    report = model_report(loaded, dataset, None, 1)
    population = Population(loaded.module, DEMO_FAULT, seed=0, n=chips)
    start = time.perf_counter()
    with progress_bar(f"campaign {DEMO_FAULT}") as update:
        accuracy = population.accuracy(dataset.x, dataset.y, task=loaded.task, progress=update)
    summary = summarise(accuracy.numpy(), report["ideal_accuracy"], time.perf_counter() - start)
    summary["fault"] = DEMO_FAULT
    if json:
        emit_json({"model": report, "campaign": summary})
        return
    stdout.print(
        f"[bold]{report['name']}[/bold]: float accuracy {report['float_accuracy']:.2f} %, "
        f"ideal chip (int8) {report['ideal_accuracy']:.2f} % on {report['data']} "
        f"({dataset.x.shape[0]} test images)"
    )
    stdout.print(
        f"mapping: {report['mapped_weights']:,} weights in {len(report['layers'])} layers, "
        f"{report['cells']:,} cells (1 bit/cell), {report['arrays']} arrays"
    )
    stdout.print(f"\n[bold]campaign[/bold] under {DEMO_FAULT}:")
    print_summary(summary)
