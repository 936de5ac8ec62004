"""`cimtest demo`: the README's main job on the embedded default model.

Loads the default model (its weights ship with the package, so every machine runs the same
model), calibrates typical RRAM variation to a 2-point mean accuracy drop, fits the Bayesian
test vector, EGIS, the hybrid and the baselines on 500 training chips, scores them on 500
evaluation chips, prints the table and where the time went, and writes the comparison RUN
and its HTML report.
"""

from __future__ import annotations

import time

import typer

from cimtest.cli.common import (
    announce_output,
    check_output,
    emit_json,
    handle_errors,
    note,
    progress_bar,
    stdout,
)
from cimtest.exceptions import ConfigError

DEFAULT_MODEL = "resnet20-8"
DEMO_FAULT = "egis-typical"
DEMO_DROP = 2.0
CALIBRATION_CHIPS = 64
CALIBRATION_BRACKET = (0.01, 1.0)
"""σ_tot searched in log space; 7 halvings resolve it to 3.7 %, which moves the mean drop
by about 0.15 points (drop grows as σ²), within its Monte Carlo band."""
CALIBRATION_STEPS = 7


@handle_errors
def demo(
    model: str = typer.Option(DEFAULT_MODEL, help="Zoo model to run the demo on."),
    chips: int = typer.Option(500, help="Training chips, and as many evaluation chips."),
    images: int = typer.Option(512, help="N, EGIS synthetic images."),
    steps: int = typer.Option(200, help="EGIS generator steps."),
    output: str = typer.Option("cimtest-demo", "-o", "--output",
                               help="Folder for the RUN (run/) and report.html."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Calibrate typical RRAM variation to a 2-point drop, then compare every test method on
    the same chips and write the HTML report."""
    if chips < 10 or images < 8:
        raise ConfigError(f"--chips must be at least 10 and --images at least 8; got {chips} "
                          f"and {images}")
    folder = check_output(output)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output '{folder}' exists and is not a folder")
    from cimtest import zoo
    from cimtest.cli.comparing import print_comparison, run_comparison
    from cimtest.cli.inputs import real_images, resolve_data
    from cimtest.cutoffs import parse_cutoff
    from cimtest.engine import Population
    from cimtest.engine.calibrate import calibrate
    from cimtest.evaluation.model import model_report
    from cimtest.faults import parse_spec
    from cimtest.loading import load_model
    from cimtest.report.html import write_report
    from cimtest.report.run import load_run, save_run

    start = time.perf_counter()
    if not zoo.is_trained(model):
        note(f"training {model} on the embedded digits (first run only)...")
        with progress_bar(f"training {model}", unit="epochs") as update:
            zoo.load_trained(model, progress=update)
    loaded = load_model(model)
    dataset = resolve_data(loaded, None)
    info = model_report(loaded, dataset, None, 1)
    seconds = {"load": time.perf_counter() - start}

    mark = time.perf_counter()
    calibration_chips = Population(loaded.module, "none", seed=0, n=CALIBRATION_CHIPS)
    with progress_bar(f"calibrating {DEMO_FAULT} to a {DEMO_DROP:g}-point drop",
                      unit="chips") as update:
        level = calibrate(calibration_chips, parse_spec(DEMO_FAULT, allow_missing_level=True),
                          dataset.x, dataset.y, [DEMO_DROP], bracket=CALIBRATION_BRACKET,
                          iterations=CALIBRATION_STEPS, progress=update)[0]
    seconds["calibration"] = time.perf_counter() - mark
    fault = f"{DEMO_FAULT}:sigma={level.level:.4g}"

    mark = time.perf_counter()
    result = run_comparison(loaded, dataset, real_images(loaded, dataset, None), fault,
                            chips=chips, eval_chips=chips, cutoff=parse_cutoff("A50"), k=4, images=images,
                            steps=steps, btv_steps=300, seed=0, eval_seed=1, array_size=None,
                            bits_per_cell=1, memory="2GB")[0]
    compare_s = time.perf_counter() - mark
    seconds["training chips"] = result.forwards["train_s"]
    seconds["evaluation chips"] = result.forwards["eval_s"]
    seconds["fits"] = sum(row["fit_s"] for row in result.rows)
    seconds["scoring"] = compare_s - seconds["training chips"] - seconds["evaluation chips"] \
        - seconds["fits"]

    mark = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    with announce_output(folder / "run", "the RUN folder"):
        run = save_run(result, folder / "run", info["ideal_accuracy"])
    with announce_output(folder / "report.html", "the HTML report"):
        report = write_report(*load_run(run), folder / "report.html")
    seconds["report"] = time.perf_counter() - mark
    total = time.perf_counter() - start
    if json:
        emit_json({"model": info, "weights": loaded.source, "fault": fault,
                   "calibration": level.as_dict(), "rows": result.rows, "run": str(run),
                   "report": str(report), "seconds": {**seconds, "total": total}})
        return
    weights = {"shipped": "shipped weights, the same on every machine",
               "trained here": "trained on this machine: its numbers vary with the CPU"}
    stdout.print(
        f"[bold]{info['name']}[/bold] ({weights.get(loaded.source, 'user weights')}): float "
        f"accuracy {info['float_accuracy']:.2f} %, ideal chip (int8) "
        f"{info['ideal_accuracy']:.2f} % on {info['data']} ({len(dataset)} test images); "
        f"{info['mapped_weights']:,} weights in {len(info['layers'])} layers, "
        f"{info['cells']:,} cells, {info['arrays']} arrays")
    stdout.print(f"calibrated {fault}: mean drop {level.measured_drop:.2f} points "
                 f"(95 % band {level.ci_low:.2f}-{level.ci_high:.2f}, {level.chips} chips)")
    print_comparison(result, f"{chips} training + {chips} evaluation chips, cutoff A50 = "
                     f"{result.cutoff_accuracy:.2f} %")
    inputs = result.forwards
    stdout.print(
        f"time: {total:.0f} s = " + ", ".join(f"{name} {s:.1f}" for name, s in seconds.items())
        + f" s ({inputs['train']} inputs per training chip, {inputs['eval']} per evaluation "
        f"chip)")
    stdout.print(f"report: {report} (run: {run})")
