"""`cimtest export | decide | apply`: a fitted test on a bench.

`export` writes a test as a tester loads it (or a campaign store's table, told apart by the
file's header); `decide` turns responses recorded on chips into verdicts; `apply` runs a test
on chips through a driver (the simulator, a recording, or a user's board) and decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cimtest._device import check_device
from cimtest.cli import options
from cimtest.cli.common import (
    announce_output,
    check_output,
    emit_json,
    handle_errors,
    parse_normalise,
    progress_bar,
    stdout,
)
from cimtest.exceptions import ArtifactError, ConfigError

if TYPE_CHECKING:
    import torch

    from cimtest.hardware.periphery import Periphery
    from cimtest.loading import LoadedModel
    from cimtest.methods import TestMethod
    from cimtest.tester.exported import ExportedTest
    from cimtest.tester.verdicts import Verdicts

__all__ = ["apply", "apply_model_chip", "decide", "export", "load_exported"]

SQLITE_HEADER = b"SQLite format 3\x00"
SHOWN_ROWS = 20
"""Verdicts printed one per line; beyond, the first ones and a count (all are in -o/--json)."""

TEST = typer.Argument(..., help="The test: a folder written by `cimtest export`, a test "
                      "artefact (.safetensors, e.g. from `cimtest btv fit` or RUN/tests/ of "
                      "`cimtest compare -o RUN`) or an EGIS test folder.")
K = typer.Option(None, "--k", help="An EGIS test set's member with this K.")
CUTOFF = typer.Option(None, "--cutoff", help="An EGIS test set's member with this cutoff.")
MODEL = typer.Option(None, "--model", help="The model the test was fitted for (default: the "
                     "one it names), for a test not yet exported.")
FORCE = typer.Option(False, "--force", help="Use the test although the model's fingerprint "
                     "differs, and decide on responses that do not look like the test's.")
VERDICTS_CSV = typer.Option(None, "-o", "--output", help="Also write the verdicts as .csv.")
STDF = typer.Option(None, "--stdf", help="Also write the verdicts as STDF V4 (.stdf).")


@handle_errors
def export(
    source: str = typer.Argument(..., help="A fitted test (as for `cimtest decide`) or a "
                                 "campaign store (.db), told apart by the file's header."),
    output: str = typer.Option(..., "-o", "--output", help="A test: the folder to write. A "
                               "store: the table to write, .parquet or .csv."),
    fmt: str = typer.Option(None, "--format", help="A store's table: parquet or csv "
                            "(default: from -o)."),
    k: int = K,
    cutoff: str = CUTOFF,
    model: str = MODEL,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    normalise: str = typer.Option(None, "--normalise", metavar="MEAN,STD", help="How a raw "
                                  "input becomes a model input, x = (raw - MEAN) / STD, "
                                  "recorded in the manifest (default: a zoo model's own)."),
    hardware: str = options.HARDWARE,
    pictures: bool = typer.Option(True, "--pictures/--no-pictures", help="Draw the inputs "
                                  "as PNGs under DIR/inputs/."),
    device: str = typer.Option("cpu", "--device", metavar="cpu|cuda|cuda:N|auto",
                               help="Where the ideal chip's responses are computed: cpu, "
                               "cuda, cuda:N or auto (docs/engine.md)."),
    force: bool = typer.Option(False, "--force", help="Export although the model's "
                               "fingerprint differs from the test's."),
    json: bool = options.JSON,
) -> None:
    """Write a test for a tester (DIR/inputs.npy in the order the chip runs them,
    DIR/manifest.json, DIR/test.safetensors, DIR/inputs/*.png), or a campaign store's per-chip
    table (chip, accuracy, drop, scores) to Parquet or CSV."""
    target = check_device(device)  # before any work
    if _is_store(source):
        from cimtest.cli.store_cmd import export_store

        export_store(source, output, fmt)
        return
    if fmt is not None:
        raise ConfigError("--format is for a campaign store's table; a test is exported as a "
                          "folder")
    check_output(output)
    stats = parse_normalise(normalise)
    from cimtest.hardware.periphery import parse_periphery

    periphery = parse_periphery(hardware)
    exported = load_exported(source, k, cutoff, model, weights, input_shape, force,
                             normalisation=None if stats is None else
                             {"mean": stats[0], "std": stats[1], "raw_range": None},
                             periphery=periphery, device=target)
    from cimtest.tester.exported import write_export

    with announce_output(output, f"the {exported.manifest['method']} test for a tester"):
        path = write_export(exported, output, pictures=pictures)
    manifest = exported.manifest
    summary = {"output": str(path), "method": manifest["method"], "inputs": manifest["inputs"],
               "response_shape": manifest["response_shape"],
               "threshold": manifest["decision"]["threshold"],
               "model": manifest["model"]["name"]}
    if json:
        emit_json(summary)
        return
    stdout.print(f"exported the {summary['method']} test of {summary['model']} to {path}: "
                 f"{summary['inputs']} inputs of shape {tuple(manifest['input_shape'])}; "
                 f"responses (chips, {', '.join(map(str, summary['response_shape'][1:]))})")


@handle_errors
def decide(
    test: str = TEST,
    responses: str = typer.Option(..., "--responses", help="Recorded outputs: .npy/.npz of "
                                  "shape (chips, inputs, *output_shape) in the exported order, "
                                  "or a .csv/.parquet table (chip, input, out_0, out_1, ...)."),
    chip_ids: str = typer.Option(None, "--chip-ids", help="A text file with one chip id per "
                                 "line, for .npy/.npz responses (default: 0, 1, ...)."),
    output: str = VERDICTS_CSV,
    stdf: str = STDF,
    k: int = K,
    cutoff: str = CUTOFF,
    model: str = MODEL,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    force: bool = FORCE,
    json: bool = options.JSON,
) -> None:
    """One verdict per chip from responses recorded on chips: exit 0 if every chip passes,
    1 if any is flagged, 2 on an error."""
    from cimtest.tester.bench import check_plausible, decide_responses
    from cimtest.tester.responses import read_responses

    _check_outputs(output, stdf)
    exported = load_exported(test, k, cutoff, model, weights, input_shape, force)
    recorded = read_responses(responses, exported.response_shape, chip_ids=chip_ids)
    if not force:
        check_plausible(exported, recorded.outputs)
    verdicts = decide_responses(exported.test, recorded.chips, recorded.outputs)
    _report(verdicts, exported.manifest["model"]["name"], output, stdf, json)


@handle_errors
def apply(
    test: str = TEST,
    chip: str = typer.Option("simulate", "--chip", help="The chips: 'simulate' (the "
                             "simulator: --chips chips of the test's model under --fault), a "
                             "file of recorded responses (as `decide --responses` reads), or "
                             "a driver module:factory whose objects have run(inputs) -> "
                             "outputs."),
    fault: str = typer.Option("none", "--fault", help="simulate: the chips' non-idealities."),
    chips: int = typer.Option(1, "--chips", help="simulate: how many chips."),
    seed: int = typer.Option(0, "--seed", help="simulate: the population seed."),
    chip_weights: str = typer.Option(None, "--chip-weights", help="simulate: the chips' "
                                     "weights instead of the model's (.safetensors or .pt)."),
    device: str = options.DEVICE,
    output: str = VERDICTS_CSV,
    stdf: str = STDF,
    k: int = K,
    cutoff: str = CUTOFF,
    model: str = MODEL,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    force: bool = FORCE,
    json: bool = options.JSON,
) -> None:
    """Run a test on chips, one after another, and decide each: exit 0 if every chip passes,
    1 if any is flagged, 2 on an error (a failing driver's chip is named; the verdicts given
    before it are still written)."""
    target = check_device(device)  # before any work
    from cimtest.tester.bench import ApplyError, apply_chips

    _check_outputs(output, stdf)
    exported = load_exported(test, k, cutoff, model, weights, input_shape, force,
                             device=target)
    part_type = exported.manifest["model"]["name"]
    drivers = list(_drivers(chip, exported, fault, chips, seed, model, chip_weights or weights,
                            input_shape, target))
    with progress_bar("apply", unit="chips") as update:
        try:
            verdicts = apply_chips(exported.test, exported.inputs, exported.response_shape,
                                   drivers, progress=lambda done: update(done, len(drivers)))
        except ApplyError as exc:
            if len(exc.verdicts.chips):
                _report(exc.verdicts, part_type, output, stdf, json, exit_code=False)
            raise
    _report(verdicts, part_type, output, stdf, json)


def apply_model_chip(test: TestMethod, chip: LoadedModel, *, json: bool,
                     device: torch.device | None = None) -> None:
    """The verdict of one chip given as a model with its weights (quantised as its ideal
    chip, run on `device`), through `apply`'s path: what `btv apply` and `egis apply` do."""
    from cimtest.engine import Population
    from cimtest.tester.bench import apply_chips
    from cimtest.tester.drivers import simulated_chips

    inputs = test.inputs_.detach().float().cpu().contiguous().numpy()
    shape = (len(inputs), *chip.output_shape)
    chips = simulated_chips(Population(chip.module, "none", n=1, device=device))
    _report(apply_chips(test, inputs, shape, chips), chip.name, None, None, json)


def load_exported(
    test: str, k: int | None, cutoff: str | None, model: str | None, weights: str | None,
    input_shape: str | None, force: bool, *, normalisation: dict | None = None,
    periphery: Periphery | None = None, device: torch.device | None = None,
) -> ExportedTest:
    """TEST as an `ExportedTest`: read back if it is an exported folder, else loaded (with
    the model it names, or --model) and prepared in memory for chips with `periphery`, the
    ideal chip's responses computed on `device`."""
    from cimtest.artifacts import check_fingerprint
    from cimtest.cli.inputs import fingerprint_advice, remembered_model, resolve_model
    from cimtest.methods import TestMethod
    from cimtest.methods.egis_grid import ARTIFACT_FILE, member_dirs
    from cimtest.tester.exported import MANIFEST_FILE, prepare_export, read_export

    path = Path(test)
    if (path / MANIFEST_FILE).is_file():
        return read_export(path)
    if path.is_dir():
        members = member_dirs(path, None if k is None else [k],
                              None if cutoff is None else [cutoff])
        if len(members) > 1:
            raise ConfigError(f"test set '{test}' has {len(members)} members; choose one with "
                              "--k and --cutoff: " + ", ".join(m.name for m in members))
        path = members[0] / ARTIFACT_FILE
    elif not path.is_file():
        raise ArtifactError(f"test '{test}' does not exist")
    stored = TestMethod.load(path)
    if model is None:
        loaded = remembered_model(stored.model_, test, weights, input_shape, None,
                                  stored.input_shape_)
    else:
        loaded = resolve_model(model, weights, input_shape, None,
                               known_shape=stored.input_shape_)
    check_fingerprint(test, stored.fingerprint_, loaded.fingerprint, force=force,
                      advice=fingerprint_advice(stored.model_, loaded))
    if force:
        stored.fingerprint_ = loaded.fingerprint  # forced: the test now belongs to this model
    return prepare_export(stored, loaded,
                          normalisation=normalisation or _own_normalisation(loaded),
                          periphery=periphery, device=device)


def _own_normalisation(loaded) -> dict | None:
    """A zoo model's raw-to-input map: its data set's training statistics and raw range."""
    if loaded.dataset is None:
        return None
    from cimtest.data.builtin import builtin_splits

    splits = builtin_splits(loaded.dataset, loaded.input_shape, test_size=1)
    return {"mean": list(splits.mean), "std": list(splits.std),
            "raw_range": list(splits.raw_range)}


def _is_store(source: str) -> bool:
    """True if `source` is a file that starts as an SQLite database (a campaign store), or a
    missing ``.db`` (for the store's own error)."""
    path = Path(source)
    if not path.exists():
        return path.suffix == ".db"
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _check_outputs(output: str | None, stdf: str | None) -> None:
    if output is not None:
        check_output(output, (".csv",))
    if stdf is not None:
        check_output(stdf, (".stdf", ".std"))


def _drivers(chip: str, exported: ExportedTest, fault: str, chips: int, seed: int,
             model: str | None, weights: str | None, input_shape: str | None,
             device: torch.device):
    """The (chip id, driver) pairs --chip names (checked before any chip runs); simulated
    chips are of `model` (default: the one the test names) with `weights`, on `device`."""
    from cimtest.tester import drivers

    if chip == "simulate":
        from cimtest.cli.inputs import remembered_model, resolve_model
        from cimtest.engine import Population

        if chips < 1:
            raise ConfigError(f"--chips must be at least 1; got {chips}")
        shape = exported.test.input_shape_
        if model is None:
            loaded = remembered_model(exported.manifest["model"]["reference"],
                                      str(exported.path or "the test"), weights, input_shape,
                                      None, shape)
        else:
            loaded = resolve_model(model, weights, input_shape, None, known_shape=shape)
        hardware = exported.manifest.get("hardware", "ideal")
        return drivers.simulated_chips(Population(loaded.module, fault, seed, chips,
                                                  periphery=hardware, device=device))
    if Path(chip).suffix in (".npy", ".npz", ".csv", ".parquet"):
        from cimtest.tester.responses import read_responses

        return drivers.recorded_chips(read_responses(chip, exported.response_shape))
    if ":" in chip:
        return drivers.open_factory(chip)
    raise ConfigError(f"--chip must be 'simulate', a responses file (.npy, .npz, .csv, "
                      f".parquet) or a driver module:factory; got {chip!r}")


def _report(verdicts: Verdicts, part_type: str, output: str | None, stdf: str | None,
            json: bool, *, exit_code: bool = True) -> None:
    """Write and print `verdicts` (of chips of model `part_type`); exit 1 if any chip is
    flagged (when `exit_code`)."""
    from cimtest.tester.stdf import write_stdf
    from cimtest.tester.verdicts import write_csv

    if output is not None:
        with announce_output(output, f"{len(verdicts.chips):,} verdicts"):
            write_csv(verdicts, output)
    if stdf is not None:
        with announce_output(stdf, f"{len(verdicts.chips):,} verdicts as STDF V4"):
            write_stdf(stdf, verdicts, part_type=part_type)
    summary = verdicts.summary()
    if json:
        emit_json({**summary, "rows": verdicts.rows()})
    else:
        words = verdicts.verdict_words()
        for i in range(min(len(words), SHOWN_ROWS)):
            stdout.print(f"chip {verdicts.chips[i]}: {words[i]} (score {verdicts.score[i]:.6g}, "
                         f"threshold {verdicts.threshold:.6g})")
        if len(words) > SHOWN_ROWS:
            stdout.print(f"... {len(words) - SHOWN_ROWS:,} more chips")
        stdout.print(f"{summary['flagged']:,} of {summary['chips']:,} chips "
                     f"{verdicts.flag_word} ({verdicts.method}, score > "
                     f"{verdicts.threshold:.6g})")
    if exit_code and summary["flagged"]:
        raise typer.Exit(1)

