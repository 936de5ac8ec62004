"""`cimtest btv fit | evaluate | apply`: the Bayesian test vector from the command line.

Register in main.py with ``app.add_typer(btv_cmd.app, name="btv")``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.table import Table

from cimtest._atomic import atomic_file
from cimtest._device import check_device
from cimtest.cli import options
from cimtest.cli.aging import age_slug, age_text, aging_stacks
from cimtest.cli.common import (
    announce_output,
    check_memory,
    check_output,
    emit_json,
    handle_errors,
    parse_array_size,
    parse_floats,
    parse_normalise,
    progress_bar,
    stdout,
)
from cimtest.cli.inputs import (
    fingerprint_advice,
    own_splits,
    remembered_model,
    resolve_data,
    resolve_model,
)
from cimtest.exceptions import ArtifactError, ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from cimtest.data import Dataset
    from cimtest.faults import FaultStack
    from cimtest.loading import LoadedModel

__all__ = ["app"]

app = typer.Typer(
    help="Bayesian test vector (paper 1): fit it from the model alone, evaluate it on "
    "populations of chips, apply it to one chip.",
    no_args_is_help=True,
)

TEST = typer.Argument(..., help="Test artefact (.safetensors) written by `cimtest btv fit`.")
FORCE = typer.Option(False, "--force", help="Use the test although the model's fingerprint "
                     "differs from the one it was fitted for.")
FAULTS = typer.Option(..., "--fault", help="Non-ideality spec or .toml; repeat for several.")


@app.command("fit")
@handle_errors
def fit(
    model: str = options.MODEL,
    output: str = typer.Option(..., "-o", "--output", help="Test artefact to write (.safetensors)."),
    alpha: float = typer.Option(0.01, help="Weight of KL(q || prior), averaged per input element."),
    steps: int = typer.Option(300, help="Adam steps."),
    lr: float = typer.Option(0.05, help="Adam learning rate."),
    samples: int = typer.Option(
        None, "--samples", help="N samples per test (default: 1 if the model has >= 10 "
        "outputs, else 16)."),
    prior: float = typer.Option(1.0, help="Std of the N(0, prior^2) prior, normalised inputs."),
    kl: str = typer.Option("mean", help="KL reduction over input elements: mean or sum."),
    offset: float = typer.Option(0.0, help="Threshold = sigma_y of the ideal chip + offset."),
    false_alarm: float = typer.Option(
        None, "--false-alarm", help="Also store a threshold with this false-alarm rate on "
        "fresh samples on the ideal chip (e.g. 0.01)."),
    read_noise: str = typer.Option(
        None, "--read-noise", help="Per-read noise spec (e.g. mult:eta=0.02@per-read) the "
        "false-alarm threshold's fresh draws on the ideal chip include."),
    seed: int = typer.Option(0, help="Seed of the fit, the stored sample and the fresh draws."),
    data: str = typer.Option(
        None, "--data", help="Data (.npz, image folder, CIFAR) whose inputs give the input "
        "shape when the model does not; the fit itself uses no data."),
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    task: str = options.TASK,
    device: str = options.DEVICE,
    json: bool = options.JSON,
) -> None:
    """Learn a Bayesian test vector on the ideal chip of MODEL and save it with its thresholds."""
    target = check_device(device)  # before any work
    check_output(output, (".safetensors",))
    if read_noise is not None:
        from cimtest.faults import parse_spec

        parse_spec(read_noise)  # a bad spec fails here, before the heavy imports and any work
    from cimtest.methods.btv import BayesianTestVector, default_samples

    loaded = resolve_model(model, weights, input_shape, task, data)
    n_samples = samples if samples is not None else default_samples(loaded.output_shape)
    test = BayesianTestVector(alpha=alpha, steps=steps, lr=lr, n_samples=n_samples, prior=prior,
                              kl=kl, offset=offset, false_alarm=false_alarm,
                              read_noise=read_noise, seed=seed)
    start = time.perf_counter()
    with progress_bar("btv fit", unit="steps") as update:
        test.fit(loaded, progress=update, device=target)
    seconds = time.perf_counter() - start
    with announce_output(output, "the Bayesian test vector"):
        test.save(output)
    curve = test.loss_curve_
    marks = sorted({0, *range(0, len(curve), max(1, len(curve) // 10)), len(curve) - 1})
    report = {
        "model": loaded.name,
        "fingerprint": loaded.fingerprint,
        "output": str(output),
        "n_samples": n_samples,
        "seconds": seconds,
        "final_loss": float(curve[-1]),
        "sigma_ideal": test.sigma_ideal_,
        "threshold": test.threshold_,
        "threshold_false_alarm": test.threshold_far_,
        "storage_bytes": test.test_bytes(),
        "loss_curve": {int(k): float(curve[k]) for k in marks},
    }
    if json:
        emit_json(report)
        return
    stdout.print(f"fitted {loaded.name} in {seconds:.1f} s ({steps} steps, N = {n_samples}); "
                 f"final loss {report['final_loss']:.4g}")
    stdout.print("loss curve: " + ", ".join(f"{k}: {v:.4g}" for k, v in
                                            report["loss_curve"].items()))
    stdout.print(f"sigma_y of the ideal chip {test.sigma_ideal_:.6g}; threshold "
                 f"{test.threshold_:.6g} (offset {offset:g})")
    if test.threshold_far_ is not None:
        stdout.print(f"false-alarm threshold ({false_alarm:g} on fresh samples): "
                     f"{test.threshold_far_:.6g}")
    stdout.print(f"stored test: mean + log-variance, {report['storage_bytes']:,} bytes")


@app.command("apply")
@handle_errors
def apply(
    test: str = TEST,
    model: str = options.CHIP_OR_TEST_MODEL,
    weights: str = options.CHIP_WEIGHTS,
    reference: str = options.REFERENCE,
    reference_weights: str = options.REFERENCE_WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    task: str = options.TASK,
    device: str = options.DEVICE,
    force: bool = FORCE,
    json: bool = options.JSON,
) -> None:
    """Verdict for one chip whose weights are a model: exit 0 pass, 1 uncertain, 2 error
    (`cimtest apply` for chips on a bench or in a simulated population).

    The chip's weights are quantised as a chip (its ideal chip) and fed the stored sample.
    A chip's weights differ from the model the test was made for, so the fingerprint check
    runs on --reference when given, else on the model the test names when --model is not
    given (the chip is then that model with --weights), else on the chip's own weights
    (then only a chip equal to the reference passes the check: give --reference).
    """
    target = check_device(device)  # before any work
    from cimtest.artifacts import check_fingerprint
    from cimtest.cli.tester_cmd import apply_model_chip
    from cimtest.methods.btv import BayesianTestVector

    btv = BayesianTestVector.load(test)
    if model is None:
        chip = remembered_model(btv.model_, test, weights, input_shape, task, btv.input_shape_)
        expected = chip if weights is None else remembered_model(
            btv.model_, test, None, input_shape, task, btv.input_shape_)
    else:
        chip = expected = resolve_model(model, weights, input_shape, task,
                                        known_shape=btv.input_shape_)
    if reference is not None:
        expected = resolve_model(reference, reference_weights, input_shape, task,
                                 known_shape=btv.input_shape_)
    own = model is not None and reference is None  # the chip's own weights
    check_fingerprint(test, btv.fingerprint_, expected.fingerprint, force=force,
                      advice=fingerprint_advice(btv.model_, expected, chip=own))
    if tuple(btv.input_shape_) != tuple(chip.input_shape):
        raise ArtifactError(f"test '{test}' is for inputs {btv.input_shape_}; the chip's "
                            f"model takes {chip.input_shape}")
    apply_model_chip(btv, chip, json=json, device=target)


@app.command("evaluate")
@handle_errors
def evaluate(
    test: str = TEST,
    model: str = options.TEST_MODEL,
    fault: list[str] = FAULTS,
    chips: int = typer.Option(200, help="Chips per fault spec."),
    seed: int = options.SEED,
    offsets: str = typer.Option("0", help="Threshold offsets to score: sigma_y(ideal) + offset."),
    layers: str = typer.Option(
        None, "--layers", help="Also inject each fault into a random fraction of the layers "
        "of each chip, e.g. 0.1,0.3,0.5 (paper Table V)."),
    point: int = typer.Option(
        1, "--point", help="Real images (digits train split, or the labelled data after "
        "--test-images) scored by the same sigma_y rule: the point-estimate baseline; 0 "
        "skips it."),
    drop: float = typer.Option(1.0, help="A chip is damaged if its accuracy dropped by >= this."),
    fresh: int = typer.Option(1000, help="Fresh samples of the vector on the ideal chip."),
    fresh_per_chip: int = typer.Option(
        8, "--fresh-per-chip", help="Fresh tests per faulty chip for the false-alarm rule's "
        "row (tests fitted with --false-alarm); 0 skips that row."),
    data: str = options.DATA,
    normalise: str = options.NORMALISE,
    test_images: int = typer.Option(
        200, "--test-images", help="Test images per chip's accuracy (default 200 of the 540 "
        "digits, to keep campaigns cheap)."),
    output: str = typer.Option(None, "-o", "--output", help="Also write the rows as .csv."),
    plot: str = typer.Option(
        None, "--plot", help="Also draw the ideal chip's outputs and sigma_y across the chips "
        "of each level, for the vector and each --point image (paper Figs. 3-4), as .png."),
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    task: str = options.TASK,
    array_size: str = options.ARRAY_SIZE,
    bits_per_cell: int = options.BITS_PER_CELL,
    memory: str = options.MEMORY,
    device: str = options.DEVICE,
    force: bool = FORCE,
    json: bool = options.JSON,
    at: str = options.AT,
) -> None:
    """Coverage, verifiable coverage, false alarms and AUC of a test, per fault spec.

    With --at, every fault spec (which must age) is scored at each age on the same chips,
    the threshold unchanged: one set of tables per age, rows with t; -o writes each table
    once per age (OUTPUT's stem + ``-NAME-tTs.csv``, T in seconds)."""
    target = check_device(device)  # before any work
    if chips < 1:
        raise ConfigError(f"--chips must be at least 1; got {chips}")
    for path, suffix in ((output, ".csv"), (plot, ".png")):
        if path:
            check_output(path, (suffix,))
    fractions = [] if layers is None else parse_floats(layers, "--layers")
    offset_values = parse_floats(offsets, "--offsets")
    if not offset_values:
        raise ConfigError("--offsets needs at least one offset")
    geometry = parse_array_size(array_size)
    parse_normalise(normalise)  # a bad --normalise fails before the model loads
    if at is not None and plot:
        raise ConfigError("--plot draws the chips at one age; leave out --at or --plot")
    ages: list[float | None] = [None]
    if at is None:
        levels = _levels(fault)  # a bad spec fails here, before the heavy imports and any work
    else:
        stacks, times = aging_stacks(fault, at)
        levels, ages = _levels([s.spec() for s in stacks]), list(times)
    from cimtest.artifacts import check_fingerprint
    from cimtest.engine import Population
    from cimtest.evaluation import Level, evaluate_btv, output_spreads
    from cimtest.methods.baselines import PointTestVectors
    from cimtest.methods.btv import BayesianTestVector
    from cimtest.report.btv_tables import TITLES, paper_tables

    btv = BayesianTestVector.load(test)
    if model is None:
        loaded = remembered_model(btv.model_, test, weights, input_shape, task,
                                  btv.input_shape_)
    else:
        loaded = resolve_model(model, weights, input_shape, task, data,
                               known_shape=btv.input_shape_)
    check_fingerprint(test, btv.fingerprint_, loaded.fingerprint, force=force,
                      advice=fingerprint_advice(btv.model_, loaded))
    dataset = None
    if loaded.task in ("classification", "segmentation"):
        dataset = resolve_data(loaded, data, test_images, normalise, memory=memory)
    base = Population(loaded.module, "none", seed, chips, array_size=geometry,
                      bits_per_cell=bits_per_cell, memory=memory, device=target)
    check_memory(base)
    images = None if dataset is None or point < 1 else _point_images(loaded, data, test_images,
                                                                            normalise)
    baseline = None if images is None else PointTestVectors(k=point, seed=seed)
    if baseline is not None:
        baseline.propose(loaded, images, device=target)
    kept: list = []  # (level, chip results) for the figure
    keep = (lambda level, results: kept.append((level, results))) if plot else None
    rows, tables = [], {}
    for t in ages:
        aged = levels if t is None else [(spec, stack.at(t)) for spec, stack in levels]
        cells = [Level(stack, stack.spec(), index, None) for (_, index), stack in aged]
        cells += [Level(stack.on_layer_fraction(f), stack.spec(), index, f)
                  for f in fractions for (_, index), stack in aged]
        label = "btv evaluate" if t is None else f"btv evaluate at {age_text(t)}"
        with progress_bar(label) as update:
            found = evaluate_btv(btv, base, cells, dataset, offsets=offset_values,
                                 point=baseline, fresh=fresh, fresh_per_chip=fresh_per_chip,
                                 drop=drop, seed=seed, progress=update, on_level=keep)
        rows += found if t is None else [{"t": t, **row} for row in found]
        tables[t] = paper_tables(found, f"offset={offset_values[0]:g}")
    ideal_accuracy = rows[0]["ideal_accuracy"]
    if output:
        with announce_output(output, f"{len(rows)} rows (and each paper table beside them)"):
            _write_csv(output, rows, tables)
    if plot:
        from cimtest.report import plots

        spreads = output_spreads(btv, base, kept, None if baseline is None else
                                 baseline.inputs_)
        with announce_output(plot, "the output spreads' figure"), atomic_file(plot) as tmp:
            Path(tmp).write_bytes(plots.btv_output_spreads(spreads))
    if json:
        emit_json(rows)
        return
    for t, at_age in tables.items():
        if t is not None:
            stdout.print(f"at {age_text(t)}:")
        for name, table in at_age.items():
            stdout.print(_rich_table(TITLES[name], table.drop(columns="spec", errors="ignore")))
    legend = dict.fromkeys((r["fault"], r["level_index"], r["base_level"]) for r in rows)
    stdout.print("levels: " + "; ".join(f"{kind} {i} = {spec}" for kind, i, spec in legend))
    accuracy = "" if ideal_accuracy is None else f", ideal accuracy {ideal_accuracy:.2f} %"
    stdout.print(f"{chips} chips per cell, sigma_y of the ideal chip {btv.sigma_ideal_:.4g}"
                 f"{accuracy}; dropped = accuracy drop >= {drop:g} points; coverage tables at "
                 f"offset {offset_values[0]:g}")


def _levels(specs: list[str]) -> list[tuple[tuple[str, int], FaultStack]]:
    """Each spec parsed, with its level number (1, 2, ...) among the specs of its kind."""
    from cimtest.faults import read_fault

    seen: dict[str, int] = {}
    levels = []
    for spec in specs:
        stack = read_fault(spec)
        seen[stack.kind] = seen.get(stack.kind, 0) + 1
        levels.append(((stack.spec(), seen[stack.kind]), stack))
    return levels


def _point_images(loaded: LoadedModel, data: str | None, test_images: int | None,
                  normalise: str | None) -> Dataset | None:
    """Real images that are not among the accuracy images: a built-in set's real-image pool,
    else the labelled data after the first `test_images` (None if there are none)."""
    import torch

    splits = own_splits(loaded, data, test_images, normalise)
    if splits is not None:
        return splits.real_pool
    full = resolve_data(loaded, data, normalise=normalise, check=False)
    if test_images is None or test_images >= len(full):
        return None
    return full.subset(torch.arange(test_images, len(full)))


def _write_csv(output: str, rows: list[dict],
               tables: dict[float | None, dict[str, pd.DataFrame]]) -> None:
    """The rows to OUTPUT and each paper table to OUTPUT's stem + ``-NAME.csv``, or per age
    ``-NAME-tTs.csv`` (T in seconds)."""
    import pandas as pd

    path = Path(output)
    with atomic_file(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    for t, at_age in tables.items():
        for name, table in at_age.items():
            age = "" if t is None else f"-{age_slug(t)}"
            with atomic_file(path.with_name(f"{path.stem}-{name}{age}.csv")) as tmp:
                table.to_csv(tmp)


def _rich_table(title: str, table: pd.DataFrame) -> Table:
    names = [str(n) for n in table.index.names]
    out = Table(*names, *map(str, table.columns), box=box.SIMPLE_HEAD, title=title,
                title_justify="left")
    for key, values in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        out.add_row(*map(str, key), *(_cell(v) for v in values))
    return out


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
