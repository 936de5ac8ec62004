"""`cimtest demo`: the README's main job on the embedded default model.

Trains (first run) or loads the model, calibrates typical RRAM variation to a 2-point mean
accuracy drop, fits the Bayesian test vector, EGIS, the hybrid and the baselines on 1,000
training chips, scores them on 1,000 evaluation chips, prints the table and writes the
comparison RUN and its HTML report.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from cimtest import zoo
from cimtest.cli.common import emit_json, handle_errors, progress_bar, stderr, stdout
from cimtest.cli.compare_cmd import print_comparison, real_images, run_comparison
from cimtest.cli.info_cmd import model_report
from cimtest.cli.inputs import resolve_data
from cimtest.engine import Population
from cimtest.engine.calibrate import calibrate
from cimtest.faults import parse_spec
from cimtest.loading import load_model
from cimtest.report.html import write_report
from cimtest.report.run import load_run, save_run

DEFAULT_MODEL = "resnet20-8"
DEMO_FAULT = "egis-typical"
DEMO_DROP = 2.0


@handle_errors
def demo(
    model: str = typer.Option(DEFAULT_MODEL, help="Zoo model to run the demo on."),
    chips: int = typer.Option(1000, help="Training chips, and as many evaluation chips."),
    images: int = typer.Option(1024, help="N, EGIS synthetic images."),
    steps: int = typer.Option(200, help="EGIS generator steps."),
    output: str = typer.Option("cimtest-demo", "-o", "--output",
                               help="Folder for the RUN (run/) and report.html."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Calibrate typical RRAM variation to a 2-point drop, then compare every test method on
    the same chips and write the HTML report."""
    start = time.perf_counter()
    if not zoo.is_trained(model):
        stderr.print(f"training {model} on the embedded digits (first run only)...")
        with progress_bar(f"training {model}", unit="epochs") as update:
            zoo.load_trained(model, progress=lambda e, n, _: update(e, n))
    loaded = load_model(model)
    dataset = resolve_data(loaded, None)
    info = model_report(loaded, dataset, None, 1)
    calibration_chips = Population(loaded.module, "none", seed=0, n=64)
    with progress_bar(f"calibrating {DEMO_FAULT} to a {DEMO_DROP:g}-point drop",
                      unit="steps") as update:
        level = calibrate(calibration_chips, parse_spec(DEMO_FAULT, allow_missing_level=True),
                          dataset.x, dataset.y, [DEMO_DROP], iterations=10,
                          progress=update)[0]
    fault = f"{DEMO_FAULT}:sigma={level.level:.4g}"
    result = run_comparison(loaded, dataset, real_images(loaded, dataset, None), fault,
                            chips=chips, eval_chips=chips, cutoff=50.0, k=4, images=images,
                            steps=steps, btv_steps=300, seed=0, eval_seed=1, array_size=None,
                            bits_per_cell=1, memory="2GB")
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    run = save_run(result, folder / "run", info["ideal_accuracy"])
    report = write_report(*load_run(run), folder / "report.html")
    seconds = time.perf_counter() - start
    if json:
        emit_json({"model": info, "fault": fault, "calibration": level.as_dict(),
                   "rows": result.rows, "run": str(run), "report": str(report),
                   "seconds": seconds})
        return
    stdout.print(
        f"[bold]{info['name']}[/bold]: float accuracy {info['float_accuracy']:.2f} %, "
        f"ideal chip (int8) {info['ideal_accuracy']:.2f} % on {info['data']} "
        f"({len(dataset)} test images); {info['mapped_weights']:,} weights in "
        f"{len(info['layers'])} layers, {info['cells']:,} cells, {info['arrays']} arrays")
    stdout.print(f"calibrated {fault}: mean drop {level.measured_drop:.2f} points "
                 f"(95 % band {level.ci_low:.2f}-{level.ci_high:.2f}, {level.chips} chips)")
    print_comparison(result, f"{chips} training + {chips} evaluation chips, cutoff A50 = "
                     f"{result.cutoff_accuracy:.2f} %")
    stdout.print(f"report: {report} (run: {run}); {seconds:.0f} s in all")
