"""EGIS benchmark: generator training, the signature campaign against its roofline, and the
compaction on cached signatures, timed side by side in one run.

    python benchmarks/egis.py [--json] [--quick] [--steps S]

Model `resnet20-8` (trained zoo weights, cached), fault `egis-typical` at sigma 0.0566 (the
2-point level before the Hartley field, kept so that timings compare across sessions; it is
0.05797 now), N = 2,048 images, D = 1,000 chips, K = 4 (`--quick`: N = 256, D = 200). Torch
threads are fixed (2). The roofline is the ideal model forwarding the same D x N inputs in
batches of N; the compaction is Algorithm 1 with the paper's schedule (T 2.0 -> 0.03, rho
0.98) and I = 3 splits on the cached signatures. Generator time is for `--steps` Adam steps
(default 200; the paper trains 5,000). `decide_ms` is the detector's verdict for one chip
from its K outputs (the fastest block of `torch.utils.benchmark.Timer.blocked_autorange`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from engine import CPU, synchronize
from torch.utils.benchmark import Timer

from cimtest.engine import Population, StoredChips
from cimtest.loading import load_model
from cimtest.methods.base import ChipOutcomes
from cimtest.methods.egis import EntropyImageTest

FAULT = "egis-typical:sigma=0.0566"


def timed(fn, device: torch.device = CPU):
    """`fn()` and the seconds it took, until `device` has finished its work."""
    synchronize(device)
    start = time.perf_counter()
    value = fn()
    synchronize(device)
    return value, time.perf_counter() - start


def margin_outcomes(outputs: torch.Tensor) -> ChipOutcomes:
    """Labels without real data: a chip (outputs (D, N, classes)) passes iff its mean logit
    margin is above the median (a method's cost does not depend on what the labels mean)."""
    top2 = outputs.topk(2, dim=2).values
    margin = (top2[..., 0] - top2[..., 1]).mean(1).cpu().numpy()
    return ChipOutcomes(margin > np.median(margin))


def timer(stmt: str, **names: object) -> Timer:
    """A `Timer` of `stmt` on this process's torch threads (Timer's default is one)."""
    return Timer(stmt, globals=names, num_threads=torch.get_num_threads())


@torch.no_grad()
def roofline(module: torch.nn.Module, sid: torch.Tensor, chips: int) -> float:
    """The ideal model on chips x N inputs, in batches of N (the same work as the campaign)."""
    return timer("module(sid)", module=module, sid=sid).timeit(chips).raw_times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(2)
    n, d, k = (256, 200, 4) if args.quick else (2048, 1000, 4)
    model = load_model("resnet20-8")
    test = EntropyImageTest(k=k, sid_size=n, steps=args.steps, seed=0)
    sid, generator_s = timed(lambda: test.propose(model))
    population = Population(model.module, FAULT, seed=0, n=d)
    signatures, signatures_s = timed(lambda: StoredChips(population).outputs(sid))
    roofline_s = roofline(population.mapped.ideal, sid, d)
    outcomes = margin_outcomes(signatures)  # no accuracy campaign needed
    _, compaction_s = timed(lambda: test.learn(signatures, outcomes))
    one = test.respond(population.outputs(test.images_, chips=[0]))
    decide_ms = min(timer("test.decide(one)", test=test, one=one).blocked_autorange().times) * 1e3
    result = {
        "compaction_s": compaction_s,
        "signatures_s": signatures_s,
        "signatures_over_roofline": signatures_s / roofline_s,
        "roofline_s": roofline_s,
        "generator_s": generator_s,
        "generator_steps": args.steps,
        "n": n, "d": d, "k": k,
        "iterations": len(test.reward_curve_),
        "best_reward": test.best_reward_,
        "decide_ms": decide_ms,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(f"EGIS on resnet20-8, N = {n}, D = {d}, K = {k}, torch threads 2")
    print(f"generator ({args.steps} steps)      {generator_s:8.1f} s")
    print(f"signature campaign (D x N)      {signatures_s:8.1f} s   "
          f"{signatures_s / roofline_s:5.2f}x its roofline ({roofline_s:.1f} s)")
    print(f"compaction ({result['iterations']} iterations)  {compaction_s:8.1f} s   "
          "(target < 60 s, detector included)")
    print(f"decide, one chip after its K forwards {decide_ms:8.2f} ms  (target < 1 ms)")


if __name__ == "__main__":
    main()
