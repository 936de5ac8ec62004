"""EGIS best reward against evaluation TA, with the splits of Algorithm 1 drawn once
(``resplit=False``) or anew at every iteration (``resplit=True``, the default).

    python benchmarks/egis_resplit.py [--seeds 0,1,2,3,4] [--threads 2]

Model `resnet20-8`, fault `egis-typical:sigma=0.05425` (the demo's calibrated level), D = 300
training chips (seed 0) labelled at A50 on the 540 test digits, N = 512 synthetic images
(generator: 200 steps, seed 0), K = 4, I = 3 splits, the paper's schedule (208 iterations).
One generator and one signature campaign serve every fit; each seed of `--seeds` reruns the
compaction and the detector in both modes. The tests are scored on 300 independent chips
(seed 1) against the training A50. Prints JSON: per fit the best reward, the settled reward
(mean reward of the iteration's new set over the last half of the iterations), the
evaluation metrics and the seconds of the compaction; the CPU and torch threads.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from machine import cpu_model

from cimtest.cutoffs import parse_cutoff
from cimtest.data import digits
from cimtest.engine import Population
from cimtest.evaluation import evaluate_tests
from cimtest.loading import load_model
from cimtest.methods.base import ChipOutcomes
from cimtest.methods.egis import EntropyImageTest

FAULT = "egis-typical:sigma=0.05425"
D, EVALUATION, SID_SIZE, K = 300, 300, 512, 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("resnet20-8")
    data = digits(model.data_size).test
    chips = Population(model.module, FAULT, seed=0, n=D)
    accuracy = chips.accuracy(data.x, data.y).numpy()
    a50 = parse_cutoff("A50").accuracy(accuracy)
    outcomes = ChipOutcomes(accuracy > a50, a50, cutoff="A50")
    source = EntropyImageTest(k=K, sid_size=SID_SIZE, seed=0)
    sid = source.propose(model)
    signatures = chips.outputs(sid)
    fits, tests = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        for resplit in (False, True):
            test = EntropyImageTest(**{**source.get_params(), "seed": seed,
                                       "resplit": resplit}).adopt_proposal(source)
            start = time.perf_counter()
            test.learn(signatures, outcomes)
            new = test.reward_curve_[:, 1]
            fits.append({"seed": seed, "resplit": resplit, "best_reward": test.best_reward_,
                         "settled_reward": float(new[new.size // 2:].mean()),
                         "chosen": test.chosen_.tolist(),
                         "compaction_s": time.perf_counter() - start})
            tests.append(test)
    rows, _ = evaluate_tests(tests, Population(model.module, FAULT, seed=1, n=EVALUATION),
                             data, [a50] * len(tests))
    for fit, row in zip(fits, rows):
        fit.update({key: row[key] for key in ("ta", "te", "yl", "cte", "bte", "truly_pass")})
        fit["best_minus_ta"] = fit["best_reward"] - fit["ta"]
    summary = {}
    for resplit in (False, True):
        mine = [f for f in fits if f["resplit"] is resplit]
        summary[f"resplit={resplit}"] = {
            key: float(np.mean([f[key] for f in mine]))
            for key in ("best_reward", "settled_reward", "ta", "best_minus_ta")}
    print(json.dumps({"cpu": cpu_model(), "threads": torch.get_num_threads(), "fault": FAULT,
                      "d": D, "evaluation_chips": EVALUATION, "sid_size": SID_SIZE, "k": K,
                      "cutoff": "A50", "cutoff_accuracy": a50,
                      "accuracy_mean": float(accuracy.mean()),
                      "mean_over_seeds": summary, "fits": fits}, indent=1))


if __name__ == "__main__":
    main()
