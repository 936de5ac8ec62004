"""`cimtest compare`: every test method on the same training and evaluation chips."""

from __future__ import annotations

import dataclasses
import time

import typer

from cimtest._device import check_device
from cimtest.cli import options
from cimtest.cli.aging import age_text, aging_stacks, programmed
from cimtest.cli.common import (
    announce_output,
    check_memory,
    check_output,
    emit_json,
    handle_errors,
    note,
    parse_array_size,
    parse_input_range,
    parse_normalise,
    stdout,
)
from cimtest.cli.comparing import print_comparison, run_comparison
from cimtest.cli.inputs import real_images, resolve_data, resolve_input_range, resolve_model
from cimtest.cli.levels import calibrated_fault, check_drop, drop_line
from cimtest.exceptions import ConfigError

__all__ = ["compare_cmd"]


EVAL_FAULTS = typer.Option(None, "--eval-fault", help="Fault spec of the evaluation chips, to "
                           "score tests fitted on --fault on other physics (A_cutoff stays the "
                           "training chips'; default: --fault); repeat it to score the same "
                           "fitted tests on several (one table each).")


@handle_errors
def compare_cmd(
    model: str = options.MODEL,
    fault: str = typer.Option(..., "--fault", help="Fault spec of both populations, e.g. "
                              "egis-typical:sigma=0.05797 or bitflip:p=1e-3; without its "
                              "level with --drop."),
    drop: float = typer.Option(None, "--drop", help="Calibrate the level of --fault first: "
                               "the one whose mean accuracy drop is this many points."),
    eval_fault: list[str] = EVAL_FAULTS,
    calibration_chips: int = typer.Option(64, "--calibration-chips", help="Chips per level "
                                          "estimate of the --drop calibration."),
    search: str = options.SEARCH,
    chips: int = typer.Option(1000, help="D, training chips (labelled)."),
    eval_chips: int = typer.Option(None, "--eval-chips", help="E, evaluation chips "
                                   "(default: as many as --chips)."),
    cutoff: str = typer.Option("A50", help="A70: the 70 % most accurate training chips pass "
                               "(paper 2's example); P70: chips above the 70th percentile; D2: "
                               "chips at most 2 points below the ideal chip (a field spec, the "
                               "line `cimtest monitor --max-drop 2` judges by)."),
    k: int = typer.Option(4, "--k", help="K, images of each image-based test."),
    images: int = typer.Option(2048, help="N, EGIS synthetic images."),
    steps: int = typer.Option(200, help="EGIS generator steps."),
    btv_steps: int = typer.Option(300, "--btv-steps", help="Bayesian test vector Adam steps."),
    learned: bool = typer.Option(False, "--learned", help="Add the two tests whose K inputs "
                                 "are optimised through the training chips: 'optimized' (real "
                                 "images, chip accuracies) and 'learned' (synthetic images, "
                                 "chip labels only); minutes each at 1,000 chips."),
    learned_steps: int = typer.Option(None, "--learned-steps", help="Gradient steps of the "
                                      "--learned tests (default 100; 0: the greedy choice)."),
    learned_batch: int = typer.Option(None, "--learned-batch", help="Fresh training chips "
                                      "drawn per step of the --learned tests (default 32); "
                                      "steps x batch chip draws are most of their fit."),
    seed: int = typer.Option(0, help="Seed of the training chips and of every method."),
    eval_seed: int = typer.Option(1, "--eval-seed", help="Seed of the evaluation chips."),
    output: str = typer.Option(None, "-o", "--output", help="Write the RUN directory here "
                               "(for `cimtest report`)."),
    real: str = typer.Option(None, "--real", help="Real images for the baselines that need "
                             "them, never those of --data (default: the digits training split "
                             "for a zoo model on its digits, else a seeded --real-share of "
                             "--data held out, the rest defining accuracy)."),
    real_share: float = typer.Option(0.25, "--real-share", help="Share of --data held out "
                                     "as the real-image pool when no --real is given "
                                     "(seeded split, seed 0)."),
    data: str = options.DATA,
    normalise: str = options.NORMALISE,
    test_images: int = options.TEST_IMAGES,
    augment: int = options.AUGMENT,
    input_range: str = options.INPUT_RANGE,
    weights: str = options.WEIGHTS,
    input_shape: str = options.INPUT_SHAPE,
    array_size: str = options.ARRAY_SIZE,
    bits_per_cell: int = options.BITS_PER_CELL,
    hardware: str = options.HARDWARE,
    memory: str = options.MEMORY,
    device: str = options.DEVICE,
    json: bool = options.JSON,
    at: str = options.AT,
) -> None:
    """Fit every method on one training population and score it on one evaluation
    population: each chip is forwarded once, its outputs reused by every method.

    With --at, the training chips are the programmed chips (t = 0, any t of --fault
    replaced) and A_cutoff is theirs; the evaluation chips (each --eval-fault, else --fault,
    which must age) are seen at every age, one table each; --json rows carry t."""
    target = check_device(device)  # before any work
    from cimtest.cutoffs import parse_cutoff

    rule = parse_cutoff(cutoff, drop=True)
    eval_chips = chips if eval_chips is None else eval_chips
    if chips < 10 or eval_chips < 1:
        raise ConfigError(f"--chips must be at least 10 and --eval-chips at least 1; got "
                          f"{chips} and {eval_chips}")
    if augment < 1:
        raise ConfigError(f"--augment needs at least 1 copy; got {augment}")
    if not 0 < real_share < 1:
        raise ConfigError(f"--real-share must be in (0, 1); got {real_share}")
    if not 1 <= k < images:
        raise ConfigError(f"--k must be at least 1 and below --images; got {k} and {images}")
    tuning = {"steps": learned_steps, "batch": learned_batch}
    if not learned and any(v is not None for v in tuning.values()):
        raise ConfigError("--learned-steps and --learned-batch tune the --learned tests; "
                          "add --learned")
    if (learned_steps is not None and learned_steps < 0) or (
            learned_batch is not None and learned_batch < 2):
        raise ConfigError(f"--learned-steps must be at least 0 and --learned-batch at least 2; "
                          f"got {learned_steps} and {learned_batch}")
    eval_faults: list[str | None] = list(eval_fault or [None])
    ages: list[float | None] = [None] * len(eval_faults)
    if at is not None:  # bad times and specs that do not age fail here, before any work
        if drop is not None:
            raise ConfigError("--drop calibrates the level of --fault at one age; with --at, "
                              "give the level in --fault")
        stacks, times = aging_stacks([spec or fault for spec in eval_faults], at)
        fault = programmed(fault).spec()  # the training chips as programmed, t = 0
        eval_faults = [stack.at(t).spec() for stack in stacks for t in times]
        ages = [t for _ in stacks for t in times]
    if output is not None and len(eval_faults) > 1:
        raise ConfigError("-o writes one run: give one --eval-fault"
                          f"{'' if at is None else ' and one --at age'} with it")
    if output is not None:
        check_output(output)
    low_high = parse_input_range(input_range)
    geometry = parse_array_size(array_size)
    parse_normalise(normalise)  # a bad --normalise fails before the model loads
    check_drop(fault, drop, calibration_chips, search)  # fails here, before the heavy imports
    from cimtest.faults import parse_spec

    for spec in eval_faults:
        if spec is not None:
            parse_spec(spec)
    from cimtest.hardware.periphery import parse_periphery

    periphery = parse_periphery(hardware)
    from cimtest.data import augment as augment_data
    from cimtest.data.dataset import hold_out
    from cimtest.engine import Population
    from cimtest.report.comparison import REAL_SEED
    from cimtest.report.run import save_run

    loaded = resolve_model(model, weights, input_shape, "classification", data)
    dataset = resolve_data(loaded, data, test_images, normalise, memory=memory)
    low_high = resolve_input_range(low_high, loaded, dataset, data)
    if learned:  # before any work: their steps need the gradient in the inputs
        from cimtest.methods.selection import check_differentiable

        check_differentiable(loaded.module, dataset.x[:1])
    ideal_chip = Population(loaded.module, "none", n=1, memory=memory, periphery=periphery,
                            device=target)
    check_memory(ideal_chip)  # before the populations are built and run
    start = time.perf_counter()
    pool = real_images(loaded, dataset, real, normalise, data)
    scored = dataset if pool is not None else hold_out(dataset, real_share, REAL_SEED)[0]
    calibration = None
    if drop is not None:  # on the images that define accuracy
        fault, calibration = calibrated_fault(
            loaded, fault, drop, scored, seed=seed, chips=calibration_chips,
            array_size=geometry, bits_per_cell=bits_per_cell, memory=memory,
            periphery=periphery, device=target, search=search)
        note(f"calibrated {fault} (mean drop {calibration.measured_drop:.2f} points)")
    truth = augment_data(scored, augment) if augment > 1 else scored
    ideal = float(ideal_chip.accuracy(truth.x, truth.y)[0])
    if rule.reading == "D":
        rule = dataclasses.replace(rule, ideal=ideal)
    results = run_comparison(loaded, dataset, pool, fault,
                            chips=chips, eval_chips=eval_chips, cutoff=rule, k=k,
                            images=images, steps=steps, btv_steps=btv_steps, seed=seed,
                            eval_seed=eval_seed, array_size=geometry,
                            bits_per_cell=bits_per_cell, memory=memory, input_range=low_high,
                            real_share=real_share, copies=augment,
                            learned={k: v for k, v in tuning.items() if v is not None}
                            if learned else None, eval_faults=eval_faults,
                            periphery=periphery, device=target)
    total_s = time.perf_counter() - start
    result = results[0]
    level = drop_line(fault, ideal, result.train_accuracy, calibration)
    for each, t in zip(results, ages, strict=True):
        each.setup.update(mean_drop=ideal - float(each.train_accuracy.mean()),
                          calibration=None if calibration is None else calibration.as_dict())
        if t is not None:
            each.setup["t"] = t
    if output is not None:
        with announce_output(output, "the RUN folder"):
            save_run(result, output, ideal)
    if json:
        note(level)
        emit_json([{**row, "eval_fault": each.setup["eval_fault"],
                    **({} if t is None else {"t": t})}
                   for each, t in zip(results, ages, strict=True) for row in each.rows])
        return
    stdout.print(level)
    for each, t in zip(results, ages, strict=True):
        spec = each.setup["eval_fault"]
        under = fault if spec == fault else f"{fault}, evaluated under {spec}"
        under += "" if t is None else f" at {age_text(t)}"
        title = (f"{loaded.name} under {under}: {chips} training + {eval_chips} evaluation "
                 f"chips, cutoff {rule.name} = {each.cutoff_accuracy:.2f} % "
                 f"({100 * each.setup['pass_fraction']:.1f} % of the training chips pass)")
        print_comparison(each, title)
    stdout.print(f"each chip forwarded once: {result.forwards['train']} inputs per training "
                 f"chip, {result.forwards['eval']} per evaluation chip (incl. "
                 f"{result.setup['data_images']} labelled images); total {total_s:.0f} s")
    stdout.print(f"real images of the baselines: {result.setup['real']}")
    if output is not None:
        stdout.print(f"render the RUN with `cimtest report {output} -o report.html`")
