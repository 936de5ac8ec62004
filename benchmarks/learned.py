"""Learned tests (issue 18): fit seconds, and the targets and ablation on independent chips.

    python benchmarks/learned.py [--model resnet20-8] [--fault SPEC] [--chips D]
                                 [--eval-chips E] [--k K] [--steps S] [--ablation]
                                 [--figure PNG] [--fit-only] [--threads T] [--json]

One `cimtest.report.compare` run (one campaign over the training chips, one over the
evaluation chips, seeds 0 and 1, A50, accuracy on the digits test images) of the
dataset-aware test, noise images + detector, `optimized` (real images, accuracy regressor)
and `learned` (EGIS's synthetic images, pass/fail labels only; the EGIS generator trained
200 steps, N = 256, used as the pool only). `--ablation` adds every initial pool (real /
synthetic / noise) x read-out (regressor / classifier / both), the greedy choice alone
(0 steps) per pool, and the defaults at K = 2 and 8, each as its own row. Per row: TA, AUC,
the accuracy-prediction RMSE (points) of the tests that predict accuracy, and fit seconds
(the learned tests' fit includes their optimisation, held-out checks and final forward of
the D chips). `--fit-only` times the two learned tests' `fit` alone on D chips (the
fit-time target: at most 10 minutes at 1,000 chips on 2 cores) in wall and CPU seconds, with
the load average: CPU seconds on one thread (`--threads 1`) bound a quiet machine's wall time
from above whatever runs beside it. Torch threads: `--threads` (default 2); the learned tests
log their held-out checks to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_model

from cimtest.data import digits
from cimtest.engine import Population
from cimtest.loading import load_model
from cimtest.methods import (
    ChipOutcomes,
    DatasetAwareTest,
    EntropyImageTest,
    LearnedTest,
    NoiseImagesTest,
    OptimizedTest,
    TestMethod,
)
from cimtest.report import compare
from cimtest.report.plots import image_grid

FAULTS = {"resnet20-8": "egis-typical:sigma=0.05403", "vgg16-8": "egis-typical:sigma=0.03201"}
"""The 2-point levels of docs/comparison.md (bit-flips: p=0.004831 and p=0.004354)."""


def methods(k: int, steps: int, ablation: bool) -> dict[str, TestMethod]:
    """The compared tests by row name; the EGIS source only gives `learned` its pool."""
    source = EntropyImageTest(k=k, sid_size=256, steps=200, seed=0)
    tests: dict[str, TestMethod] = {
        "dataset-aware": DatasetAwareTest(k=k, seed=0),
        "noise+detector": NoiseImagesTest(k=k, seed=0),
        "optimized": OptimizedTest(k=k, steps=steps, seed=0),
        "learned": LearnedTest(k=k, source=source, steps=steps, seed=0),
    }
    if not ablation:
        return tests
    for init in ("real", "synthetic", "noise"):
        for readout in ("regressor", "classifier", "both"):
            if (init, readout) != ("real", "regressor") and (readout != "both" or init == "real"):
                tests[f"optimized {init} {readout}"] = OptimizedTest(
                    k=k, init=init, readout=readout, source=source, steps=steps, seed=0)
        tests[f"{init}: greedy choice only"] = OptimizedTest(
            k=k, init=init, readout="regressor" if init == "real" else "classifier",
            source=source, steps=0, seed=0)
    for other in (2, 8):
        tests[f"optimized k={other}"] = OptimizedTest(k=other, steps=steps, seed=0)
        tests[f"learned k={other}"] = LearnedTest(k=other, source=source, steps=steps, seed=0)
        tests[f"dataset-aware k={other}"] = DatasetAwareTest(k=other, seed=0)
        tests[f"noise+detector k={other}"] = NoiseImagesTest(k=other, seed=0)
    return tests


def rmse(method: TestMethod, score: np.ndarray, accuracy: np.ndarray) -> float | None:
    """RMSE (points) of the predicted accuracy, for tests whose score is A_cutoff minus it."""
    predicts = hasattr(method, "regressor_") or getattr(method, "readout", "classifier") != "classifier"
    if not predicts or not hasattr(method, "cutoff_accuracy_"):
        return None
    return float(np.sqrt(np.mean((method.cutoff_accuracy_ - score - accuracy) ** 2)))


def checks(method: TestMethod) -> dict:
    """The held-out checks of a learned test: the step kept and the errors (step, error)."""
    if not hasattr(method, "best_step_"):
        return {}
    return {"best_step": method.best_step_, "checks": method.check_curve_.tolist()}


def figure(tests: dict[str, TestMethod]) -> bytes:
    """The initial and the learned inputs of `optimized` and `learned`, one row each."""
    images, titles = [], []
    for name in ("optimized", "learned"):
        test = tests[name]
        images += [*test.initial_inputs_, *test.inputs_]
        titles += [f"{name}: start {i + 1}" for i in range(test.k)]
        titles += [f"{name}: learned {i + 1}" for i in range(test.k)]
    return image_grid(torch.stack(images), titles)


def fit_seconds(model, fault: str, data, chips: int, k: int, steps: int) -> list[dict]:
    """Each learned test's `fit` alone on D training chips: the campaign on its candidates,
    the selection, the steps, the held-out checks and the final forward and LightGBM fit;
    `learned` also trains the EGIS generator of its pool (200 steps)."""
    train = Population(model.module, fault, 0, chips)
    accuracy = train.accuracy(data.test.x, data.test.y).numpy()
    cutoff = float(np.median(accuracy))
    outcomes = ChipOutcomes(accuracy > cutoff, cutoff, accuracy, "A50")
    source = EntropyImageTest(k=k, sid_size=256, steps=200, seed=0)
    rows = []
    for test in (OptimizedTest(k=k, steps=steps), LearnedTest(k=k, source=source, steps=steps)):
        start, cpu = time.perf_counter(), time.process_time()
        test.fit(model, train, outcomes, data.train)
        rows.append({"method": test.name, "fit_s": time.perf_counter() - start,
                     "cpu_s": time.process_time() - cpu})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-8")
    parser.add_argument("--fault")
    parser.add_argument("--chips", type=int, default=1000)
    parser.add_argument("--eval-chips", type=int, default=1000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--fit-only", action="store_true",
                        help="time the two learned tests' fit on D chips, nothing else")
    parser.add_argument("--figure", help="write the inputs before and after as a PNG here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("cimtest.methods.learned").setLevel(logging.INFO)
    model = load_model(args.model)
    fault = args.fault or FAULTS[args.model]
    data = digits(size=model.data_size)
    if args.fit_only:
        rows = fit_seconds(model, fault, data, args.chips, args.k, args.steps)
        out = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "model": args.model,
               "load_average": os.getloadavg(),
               "fault": fault, "train_chips": args.chips, "k": args.k, "steps": args.steps,
               "rows": rows}
        print(json.dumps(out, indent=1) if args.json else "\n".join(
            f"{r['method']}: fit {r['fit_s']:.1f} s ({r['cpu_s']:.1f} CPU s) on {args.chips} "
            f"{args.model} chips, "
            f"{out['cpu']} ({out['threads']} threads)" for r in rows))
        return
    start = time.perf_counter()
    result = compare(model, fault, data.test, real=data.train,
                     methods=methods(args.k, args.steps, args.ablation),
                     train_chips=args.chips, eval_chips=args.eval_chips)
    rows = [{"method": r["method"], "ta": r["ta"], "auc": r["auc"], "fit_s": r["fit_s"],
             "rmse": rmse(result.methods[r["method"]], result.scores[r["method"]],
                          result.eval_accuracy), **checks(result.methods[r["method"]])}
            for r in result.rows]
    if args.figure:
        Path(args.figure).write_bytes(figure(result.methods))
    out = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "model": args.model,
           "fault": fault, "train_chips": args.chips, "eval_chips": args.eval_chips,
           "k": args.k, "steps": args.steps, "total_s": time.perf_counter() - start,
           "cutoff_accuracy": result.cutoff_accuracy, "rows": rows}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{args.model} {fault}, {args.chips} + {args.eval_chips} chips, K = {args.k}, "
          f"{args.steps} steps, on {out['cpu']} ({out['threads']} threads)")
    for r in rows:
        error = "" if r["rmse"] is None else f"  RMSE {r['rmse']:.2f}"
        print(f"{r['method']:40s} TA {r['ta']:5.1f}  AUC {r['auc']:.3f}  fit "
              f"{r['fit_s']:6.1f} s{error}")


if __name__ == "__main__":
    main()
