"""`cimtest egis fit | evaluate | apply`: the dataset-agnostic EGIS test (paper 2).

Register in main.py with ``app.add_typer(egis_cmd.app, name="egis")``.

`fit` simulates the D labelled chips, measures their accuracy on the labelled data HERE,
turns it into pass/fail labels at the cutoff A_p, and hands only the labels to
`EntropyImageTest.fit`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cimtest._atomic import atomic_file
from cimtest._device import check_device
from cimtest.cli import options
from cimtest.cli.aging import age_text, aging_faults, programmed
from cimtest.cli.common import (
    announce_output,
    check_memory,
    check_output,
    emit_json,
    handle_errors,
    note,
    parse_array_size,
    parse_input_range,
    parse_ks,
    parse_normalise,
    progress_bar,
    stdout,
)
from cimtest.cli.inputs import (
    fingerprint_advice,
    remembered_model,
    resolve_data,
    resolve_input_range,
    resolve_model,
)
from cimtest.cli.levels import calibrated_fault, check_drop, drop_line, ideal_accuracy
from cimtest.exceptions import ArtifactError, ConfigError

if TYPE_CHECKING:
    from cimtest.engine import BaseStore
    from cimtest.loading import LoadedModel
    from cimtest.methods.egis import EntropyImageTest

__all__ = ["app"]

app = typer.Typer(
    help="EGIS (paper 2): synthetic test images and a pass/fail detector learnt from the "
    "model and the pass/fail labels of simulated chips.",
    no_args_is_help=True,
)

TESTDIR = typer.Argument(..., help="Test set (or one member's folder) written by `cimtest egis "
                         "fit`.")
TESTDIRS = typer.Argument(..., help="Test sets or member folders (same model); a test set "
                          "stands for all its members.")
FORCE = typer.Option(False, "--force", help="Use the test although the model's fingerprint "
                     "differs from the one it was fitted for.")


@app.command("fit")
@handle_errors
def fit(
    model: str = options.MODEL,
    output: str = typer.Option(..., "-o", "--output", help="Test set folder to write."),
    fault: str = typer.Option("egis-typical", "--fault", help="Fault spec of the chips, e.g. "
                              "egis-typical:sigma=0.15; without its level with --drop."),
    drop: float = typer.Option(None, "--drop", help="Calibrate the level of --fault first: "
                               "the one whose mean accuracy drop is this many points."),
    calibration_chips: int = typer.Option(64, "--calibration-chips", help="Chips per level "
                                          "estimate of the --drop calibration."),
    search: str = options.SEARCH,
    chips: int = typer.Option(1000, help="D, labelled training chips."),
    images: int = typer.Option(2048, help="N, images in the synthetic image dataset."),
    k: str = typer.Option("4", "--k", help="K, images kept by the compaction; a list such as "
                          "2,4,8,16 fits one test per K."),
    cutoff: str = typer.Option("A50", help="A70: the 70 % most accurate training chips pass "
                               "(paper 2's example); P70: chips above the 70th percentile; a "
                               "list such as A50,A60,A70 fits one test per cutoff."),
    steps: int = typer.Option(200, help="Generator Adam steps (paper: 5000)."),
    batch: int = typer.Option(64, help="Latents per generator step."),
    splits: int = typer.Option(3, help="I, train/validation splits per reward."),
    fixed_splits: bool = typer.Option(
        False, "--fixed-splits", help="Draw the I splits once and share them between "
        "iterations (rewards cached) instead of anew at every iteration (Algorithm 1)."),
    rho: float = typer.Option(0.98, help="Cooling rate of the annealing (T: 2.0 -> 0.03)."),
    store: str = typer.Option(None, "--store", help="Folder keeping the labelling and "
                              "signature campaigns (resumable; reused by a later fit)."),
    sid: str = typer.Option(None, "--sid", help="Reuse the synthetic images of an earlier "
                            "fit (its TESTDIR/sid.safetensors) instead of training a "
                            "generator; --images, --steps and the input range then come from "
                            "it."),
    input_range: str = options.INPUT_RANGE,
    seed: int = options.SEED,
    data: str = options.DATA,
    normalise: str = options.NORMALISE,
    test_images: int = options.TEST_IMAGES,
    augment: int = options.AUGMENT,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    array_size: str = options.ARRAY_SIZE,
    bits_per_cell: int = options.BITS_PER_CELL,
    memory: str = options.MEMORY,
    device: str = options.DEVICE,
    json: bool = options.JSON,
) -> None:
    """Label D simulated chips pass/fail, then fit EGIS tests on the labels alone."""
    target = check_device(device)  # before any work
    from cimtest.cutoffs import parse_cutoff, pass_fraction

    rules = {rule.name: rule for rule in (parse_cutoff(c) for c in cutoff.split(",") if c.strip())}
    ks = parse_ks(k)
    if chips < 4:
        raise ConfigError(f"--chips must be at least 4; got {chips}")
    check_output(output)
    low_high = parse_input_range(input_range)
    if low_high is not None and sid is not None:
        raise ConfigError("--input-range makes new synthetic images; --sid reuses images made "
                          "earlier in their own range: give one of them")
    geometry = parse_array_size(array_size)
    parse_normalise(normalise)  # a bad --normalise fails before the model loads
    check_drop(fault, drop, calibration_chips, search)  # fails here, before the heavy imports
    from cimtest.engine import Campaign, Population, StoredChips
    from cimtest.evaluation import accuracy_distribution
    from cimtest.methods import ChipOutcomes
    from cimtest.methods.egis_grid import fit_grid, load_proposal, member_name, save_grid

    loaded = resolve_model(model, weights, input_shape, "classification", data)
    proposal = None if sid is None else load_proposal(sid, loaded.fingerprint)
    if proposal is not None:
        images, steps = proposal.sid_size, proposal.steps
    if max(ks) >= images:
        raise ConfigError(f"--k must be below the number of images ({images}); got {max(ks)}")
    dataset = resolve_data(loaded, data, test_images, normalise, copies=augment,
                            memory=memory)
    if proposal is None:
        low_high = resolve_input_range(low_high, loaded, dataset, data)
    check_memory(Population(loaded.module, "none", n=1, memory=memory, device=target))
    calibration = None
    if drop is not None:
        fault, calibration = calibrated_fault(
            loaded, fault, drop, dataset, seed=seed, chips=calibration_chips,
            array_size=geometry, bits_per_cell=bits_per_cell, memory=memory, device=target,
            search=search)
        note(f"calibrated {fault} (mean drop {calibration.measured_drop:.2f} points)")
    ideal = ideal_accuracy(loaded, dataset, array_size=geometry, bits_per_cell=bits_per_cell,
                           device=target)
    population = Population(loaded.module, fault, seed, chips, array_size=geometry,
                            bits_per_cell=bits_per_cell, memory=memory, device=target)
    stores = _stores(store)
    start = time.perf_counter()
    with progress_bar("labelling chips") as update:
        campaign = Campaign(population, dataset.x, dataset.y, store=stores["labels"])
        accuracy = campaign.run(progress=update)["accuracy"].to_numpy()
    labelled, info = [], {}
    for name, rule in rules.items():
        a_cutoff = rule.accuracy(accuracy)
        if not (accuracy > a_cutoff).any() or (accuracy > a_cutoff).all():
            raise ConfigError(f"all {chips} chips fall on one side of {name} = {a_cutoff:.2f} "
                              "% (ties: use more test images, more chips or a wider "
                              "population)")
        labelled.append(ChipOutcomes(accuracy > a_cutoff, a_cutoff, cutoff=name))
        info[name] = {"cutoff_accuracy": a_cutoff, "data": dataset.name,
                      "data_images": len(dataset),
                      "pass_fraction": pass_fraction(accuracy, a_cutoff)}
    level = drop_line(fault, ideal, accuracy, calibration)
    mean_drop = ideal - float(accuracy.mean())
    training = accuracy_distribution(accuracy)
    del accuracy  # from here on only the labels exist
    timings: dict[str, float] = {"labels_s": time.perf_counter() - start}
    with progress_bar("egis fit", unit="steps") as update:
        stage_start = {"t": time.perf_counter(),
                       "stage": "generator" if proposal is None else "reused_sid"}

        def report(done: int, total: int, stage: str | None = None) -> None:
            name = (stage or "").split(":")[0]  # e.g. "compaction: T 0.500 best 88.00"
            if name != stage_start["stage"]:
                now = time.perf_counter()
                timings[f"{stage_start['stage']}_s"] = now - stage_start["t"]
                stage_start.update(t=now, stage=name)
            update(done, total, stage)

        tests = fit_grid(loaded, StoredChips(population, stores["signatures"]), labelled, ks,
                         proposal=proposal, progress=report, sid_size=images, steps=steps,
                         batch=batch, splits=splits, rho=rho, input_range=low_high,
                         resplit=not fixed_splits, seed=seed)
        timings[f"{stage_start['stage']}_s"] = time.perf_counter() - stage_start["t"]
    from cimtest.report.plots import write_egis_figures

    with announce_output(output, f"{len(tests)} EGIS tests"):
        save_grid(output, tests, info, figures=write_egis_figures)
    first = next(iter(tests.values()))
    curve = first.entropy_curve_
    members = [{"cutoff": c, "k": kk, "dir": member_name(c, kk),
                "cutoff_accuracy": info[c]["cutoff_accuracy"],
                "pass_fraction": info[c]["pass_fraction"],
                "passed": int(t.training_["passed"]), "chosen": t.chosen_.tolist(),
                "best_reward": t.best_reward_} for (c, kk), t in tests.items()]
    report_doc = {
        "model": loaded.name, "fingerprint": loaded.fingerprint, "output": str(output),
        "fault": fault, "ideal_accuracy": ideal, "mean_drop": mean_drop,
        "calibration": None if calibration is None else calibration.as_dict(),
        "images": images, "input_range": first.input_range, "chips": chips, "training": training,
        "members": members,
        "h_c": [curve[0, 0], curve[-1, 0]], "h_s": [curve[0, 1], curve[-1, 1]],
        "sid_entropy": list(first.sid_entropy_), **timings,
    }
    if json:
        emit_json(report_doc)
        return
    stdout.print(f"labelled {chips} chips under {level}")
    stdout.print(f"generator: H_c {curve[0, 0]:.3f} -> {curve[-1, 0]:.3f}, H_s {curve[0, 1]:.3f}"
                 f" -> {curve[-1, 1]:.3f} ({steps} steps)")
    if first.input_range is not None:
        stdout.print("synthetic images in [{:.4g}, {:.4g}]".format(*first.input_range))
    for m in members:
        stdout.print(f"{m['cutoff']} (A = {m['cutoff_accuracy']:.2f} %, {m['passed']} pass), "
                     f"K = {m['k']}: images {m['chosen']}, best validation accuracy "
                     f"{m['best_reward']:.2f} %")


def _stores(folder: str | None) -> dict[str, BaseStore | None]:
    """The labelling and signature campaigns' stores in `folder` (None: in memory)."""
    from cimtest.engine import SQLiteStore

    if folder is None:
        return {"labels": None, "signatures": None}
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return {name: SQLiteStore(path / f"{name}.db") for name in ("labels", "signatures")}


@app.command("evaluate")
@handle_errors
def evaluate(
    tests: list[str] = TESTDIRS,
    model: str = options.TEST_MODEL,
    fault: str = typer.Option(None, "--fault", help="Fault spec of the population (default: "
                              "the training spec)."),
    chips: int = typer.Option(1000, help="Chips of the independent population."),
    seed: int = typer.Option(1, help="Population seed; use one different from the fit's."),
    k: str = typer.Option(None, "--k", help="Only the members of a test set with these K, "
                          "e.g. 2,4,8,16."),
    cutoff: str = typer.Option(None, "--cutoff", help="Only the members with these cutoffs, "
                               "e.g. A50,A70."),
    output: str = typer.Option(None, "-o", "--output", help="Also write the rows as .csv."),
    plot: str = typer.Option(None, "--plot", help="Also draw TA, TE, YL, CTE and BTE per K "
                             "and cutoff (paper Fig. 5) as .png."),
    data: str = options.DATA,
    normalise: str = options.NORMALISE,
    test_images: int = options.TEST_IMAGES,
    augment: int = options.AUGMENT,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    memory: str = options.MEMORY,
    device: str = options.DEVICE,
    force: bool = FORCE,
    json: bool = options.JSON,
    at: str = options.AT,
) -> None:
    """TA, TE, YL, CTE, BTE (percent) of each test on an independent population of chips.

    With --at, the population (whose spec must age) is scored at each age with the tests'
    A_cutoff of their training chips at t = 0, one block per age; rows carry t."""
    target = check_device(device)  # before any work
    if chips < 1:
        raise ConfigError(f"--chips must be at least 1; got {chips}")
    for path, suffix in ((output, ".csv"), (plot, ".png")):
        if path:
            check_output(path, (suffix,))
    ks = None if k is None else parse_ks(k)
    parse_normalise(normalise)  # a bad --normalise fails before the model loads
    cutoffs = None if cutoff is None else [c.strip() for c in cutoff.split(",") if c.strip()]
    if at is not None and plot:
        raise ConfigError("--plot draws the tests at one age; leave out --at or --plot")
    from cimtest.faults import parse_spec, parse_times

    if fault is not None:  # a bad spec or time fails here, before the heavy imports and work
        aging_faults(fault, at)
    elif at is not None:
        parse_times(at)
    import pandas as pd

    from cimtest.artifacts import check_fingerprint
    from cimtest.engine import Population
    from cimtest.evaluation import accuracy_distribution, evaluate_tests
    from cimtest.methods.egis import EntropyImageTest
    from cimtest.methods.egis_grid import ARTIFACT_FILE, member_dirs
    from cimtest.report import plots

    tests = [str(d) for t in tests for d in member_dirs(t, ks, cutoffs)]
    loaded, first = _test_model(tests[0], model, weights, input_shape)
    spec = fault or first.training_["fault"]
    faults, times = aging_faults(spec, at)  # the training spec, too, must age with --at
    dataset = resolve_data(loaded, data, test_images, normalise, copies=augment,
                            memory=memory)
    loaded_tests = [first, *(EntropyImageTest.load(Path(t) / ARTIFACT_FILE) for t in tests[1:])]
    for path, test in zip(tests, loaded_tests, strict=True):
        check_fingerprint(path, test.fingerprint_, loaded.fingerprint, force=force,
                          advice=fingerprint_advice(test.model_, loaded))
    training = loaded_tests[0].training_
    for path, test in zip(tests, loaded_tests):
        trained = test.training_["fault"]
        same_chips = fault is None or (parse_spec(fault).spec() == trained if at is None else
                                       programmed(fault).spec() == programmed(trained).spec())
        if test.training_["seed"] == seed and same_chips:
            raise ConfigError(f"test '{path}' was fitted on chips of seed {seed}; evaluate on "
                              "an independent population (another --seed)")
    population = Population(loaded.module, faults, seed, chips,
                            array_size=_geometry(training), bits_per_cell=training["bits_per_cell"],
                            memory=memory, device=target)
    check_memory(population)
    rows, blocks = [], []
    for t in [None] if times is None else times:
        aged = population if t is None else population.at(t)
        label = "evaluating" if t is None else f"evaluating at {age_text(t)}"
        with progress_bar(label) as update:
            scored, acc = evaluate_tests(
                loaded_tests, aged, dataset,
                [float(m.saved_info_["cutoff_accuracy"]) for m in loaded_tests],
                progress=update)
        under = spec if t is None else aged.faults.spec()
        found = [{**({} if t is None else {"t": t}), "test": str(path),
                  "cutoff": test.saved_info_["cutoff"], "k": test.k, **row,
                  "pass_fraction": test.saved_info_.get("pass_fraction"),
                  "chips": chips, "seed": seed, "fault": under, **accuracy_distribution(acc)}
                 for path, test, row in zip(tests, loaded_tests, scored)]
        rows += found
        blocks.append((under, t, acc, found))
    if output:
        with announce_output(output, f"{len(rows)} rows"), atomic_file(output) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    if plot:
        with announce_output(plot, "the metrics' figure"), atomic_file(plot) as tmp:
            Path(tmp).write_bytes(plots.test_metrics_by_k(rows))
    if json:
        emit_json(rows)
        return
    for under, t, acc, found in blocks:
        age = "" if t is None else f" at {age_text(t)}"
        stdout.print(f"{chips} chips under {under} (seed {seed}){age}, mean accuracy "
                     f"{acc.mean():.2f} %")
        for row in found:
            stdout.print(f"{row['cutoff']} K={row['k']}: TA {row['ta']:.1f} TE {row['te']:.1f} "
                         f"YL {row['yl']:.1f} CTE {row['cte']:.1f} BTE {row['bte']:.1f} "
                         f"(ceiling {row['ceiling']:.1f})  "
                         f"({row['test']})")


@app.command("apply")
@handle_errors
def apply(
    test: str = TESTDIR,
    model: str = options.CHIP_OR_TEST_MODEL,
    weights: str = options.CHIP_WEIGHTS,
    reference: str = options.REFERENCE,
    reference_weights: str = options.REFERENCE_WEIGHTS,
    k: int = typer.Option(None, "--k", help="The member of a test set with this K."),
    cutoff: str = typer.Option(None, "--cutoff", help="The member with this cutoff."),
    input_shape: str = options.INPUT_SHAPE,
    device: str = options.DEVICE,
    force: bool = FORCE,
    json: bool = options.JSON,
) -> None:
    """Verdict for one chip whose weights are a model: exit 0 pass, 1 fail, 2 error
    (`cimtest apply` for chips on a bench or in a simulated population)."""
    target = check_device(device)  # before any work
    from cimtest.artifacts import check_fingerprint
    from cimtest.cli.tester_cmd import apply_model_chip
    from cimtest.methods.egis_grid import member_dirs

    members = member_dirs(test, None if k is None else [k], None if cutoff is None else [cutoff])
    if len(members) > 1:
        raise ConfigError(f"test set '{test}' has {len(members)} members; choose one with --k "
                          "and --cutoff: " + ", ".join(m.name for m in members))
    test = str(members[0])
    chip, egis = _test_model(test, model, weights, input_shape)
    expected = chip
    if reference is not None:
        expected = resolve_model(reference, reference_weights, input_shape, "classification",
                                 known_shape=egis.input_shape_)
    elif model is None and weights is not None:  # the chip is the named model with --weights
        expected = remembered_model(egis.model_, test, None, input_shape, "classification",
                                    egis.input_shape_)
    own = model is not None and reference is None  # the chip's own weights
    check_fingerprint(test, egis.fingerprint_, expected.fingerprint, force=force,
                      advice=fingerprint_advice(egis.model_, expected, chip=own))
    if tuple(egis.input_shape_) != tuple(chip.input_shape):
        raise ArtifactError(f"test '{test}' is for inputs {egis.input_shape_}; the chip's "
                            f"model takes {chip.input_shape}")
    apply_model_chip(egis, chip, json=json, device=target)


def _test_model(member: str, model: str | None, weights: str | None,
                input_shape: str | None) -> tuple[LoadedModel, EntropyImageTest]:
    """The test in folder `member` (its digest checked, not yet its fingerprint) and
    `model` (with `weights`) or the model the test names; either takes the test's input
    shape unless --input-shape says otherwise."""
    from cimtest.methods.egis import EntropyImageTest
    from cimtest.methods.egis_grid import ARTIFACT_FILE

    stored = EntropyImageTest.load(Path(member) / ARTIFACT_FILE)
    if model is None:
        return remembered_model(stored.model_, member, weights, input_shape, "classification",
                                stored.input_shape_), stored
    return resolve_model(model, weights, input_shape, "classification",
                         known_shape=stored.input_shape_), stored


def _geometry(training: dict) -> tuple[int, int] | None:
    size = training.get("array_size")
    return None if size is None else (int(size[0]), int(size[1]))


