"""Calibration benchmark: bisection against the secant search, side by side in this run.

    python benchmarks/calibrate.py [--json] [--quick]

Each row calibrates one fault kind of the shipped resnet20-8 (trained weights, the same on
every machine) to one target drop on the 540 test digits, 64 chips of seed 0, once by
bisection and once by the secant search (`cimtest calibrate --search secant`), and prints
the chips x images each forwarded (in campaigns: all the chips on all the images), the
seconds each took, the levels found and their measured drops with bisection's 95 % band.
Forwards are counted, not timed: they do not depend on the machine's load; the seconds
(and their ratio) are measured one after the other in this run on a shared machine.
Torch threads are fixed (2). `--quick` uses 16 chips.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from cimtest.cli.inputs import resolve_data
from cimtest.engine import Population
from cimtest.engine.calibrate import calibrate
from cimtest.faults import parse_spec
from cimtest.loading import load_model

ROWS = [
    # (fault kind, target drop, bracket (None: the default), bisection steps)
    ("egis-typical", 2.0, None, 14),           # `cimtest calibrate` with its defaults
    ("egis-typical", 2.0, (0.01, 1.0), 7),     # the demo's calibration
    ("mult", 5.0, None, 14),
]


@contextmanager
def forwards_counted() -> Iterator[list[int]]:
    """Counts chips x images through `Population.accuracy`, the only way calibrate forwards
    chips: yields a one-item list holding the count."""
    count = [0]
    original = Population.accuracy

    def counted(population, x, y, chips=None, **kw):
        count[0] += (population.n if chips is None else len(chips)) * len(x)
        return original(population, x, y, chips, **kw)

    Population.accuracy = counted
    try:
        yield count
    finally:
        Population.accuracy = original


def row(loaded, dataset, chips: int, fault: str, drop: float, bracket, steps: int) -> dict:
    population = Population(loaded.module, "none", seed=0, n=chips)
    campaign = chips * len(dataset.x)
    out: dict = {"fault": fault, "drop": drop, "chips": chips, "images": len(dataset.x),
                 "bracket": bracket, "iterations": steps}
    for search in ("bisect", "secant"):
        with forwards_counted() as forwards:
            start = time.perf_counter()
            result = calibrate(population, parse_spec(fault, allow_missing_level=True),
                               dataset.x, dataset.y, [drop], bracket=bracket,
                               iterations=steps, search=search)[0]
            seconds = time.perf_counter() - start
        out[search] = {"forwards": forwards[0], "campaigns": forwards[0] / campaign,
                       "seconds": seconds, **result.as_dict()}
    bisect, secant = out["bisect"], out["secant"]
    out["secant_in_bisect_band"] = bisect["ci_low"] <= secant["measured_drop"] <= bisect["ci_high"]
    out["level_ratio"] = secant["level"] / bisect["level"]
    out["forwards_ratio"] = bisect["forwards"] / secant["forwards"]
    out["seconds_ratio"] = bisect["seconds"] / secant["seconds"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    loaded = load_model("resnet20-8")
    dataset = resolve_data(loaded, None)
    chips = 16 if args.quick else 64
    if args.json:
        print(json.dumps([row(loaded, dataset, chips, *spec) for spec in ROWS], indent=1))
        return
    print(f"resnet20-8, {len(dataset.x)} test digits, {chips} chips; a campaign = "
          f"{chips * len(dataset.x):,} chips x images")
    print(f"{'fault':13} {'drop':>4} {'steps':>5} | {'bisect: campaigns':>17} {'s':>6} "
          f"{'level':>9} {'drop [band]':>19} | {'secant: campaigns':>17} {'s':>6} "
          f"{'level':>9} {'drop':>5} | {'forwards x':>10} {'s x':>5} {'in band':>7}",
          flush=True)
    for spec in ROWS:
        r = row(loaded, dataset, chips, *spec)
        b, s = r["bisect"], r["secant"]
        print(f"{r['fault']:13} {r['drop']:4g} {r['iterations']:5d} | {b['campaigns']:17.2f} "
              f"{b['seconds']:6.1f} {b['level']:9.4g} {b['measured_drop']:5.2f} "
              f"[{b['ci_low']:5.2f},{b['ci_high']:5.2f}] | {s['campaigns']:17.2f} "
              f"{s['seconds']:6.1f} {s['level']:9.4g} {s['measured_drop']:5.2f} | "
              f"{r['forwards_ratio']:10.2f} {r['seconds_ratio']:5.2f} "
              f"{r['secant_in_bisect_band']!s:>7}", flush=True)


if __name__ == "__main__":
    main()
