"""aihwkit chips against cimtest's typical RRAM: ratios of timings measured side by side.

    python benchmarks/aihwkit_chips.py [--chips 16] [--repeats 5] [--json]

Times drawing and reading back the weights of CHIPS resnet20-8 chips,
``Population(model, SPEC, n=CHIPS).weights(range(CHIPS))``, for each aihwkit kind and for
``egis-typical:sigma=0.05403`` (the typical RRAM at the demo's calibrated level), with torch
on 2 threads. The specs take turns in every repeat, so load on a shared machine falls on all of
them, and each keeps its fastest repeat (load only ever adds time). Target: an aihwkit-pcm
chip in at most 2x the time of a typical-RRAM chip.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from machine import cpu_model

from cimtest import zoo
from cimtest.engine import Population

BASELINE = "egis-typical:sigma=0.05403"
SPECS = ("aihwkit-pcm:t=3600", "aihwkit-pcm:t=3600,compensation=global",
         "aihwkit-reram:t=86400", "aihwkit-reram-cmo:t=3600")
TARGET = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = zoo.get_entry("resnet20-8").build()
    populations = {spec: Population(model, spec, n=args.chips) for spec in (BASELINE, *SPECS)}
    chips = range(args.chips)
    for population in populations.values():  # warm-up: imports, first calls
        population.weights(range(2))
    best = dict.fromkeys(populations, float("inf"))
    for _ in range(args.repeats):
        for spec, population in populations.items():
            start = time.perf_counter()
            population.weights(chips)
            best[spec] = min(best[spec], time.perf_counter() - start)
    result = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "chips": args.chips,
              "seconds": best,
              "over_typical_rram": {spec: best[spec] / best[BASELINE] for spec in SPECS}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{cpu_model()}, {result['threads']} threads, {args.chips} resnet20-8 chips")
    print(f"{'spec':42s} {'s/chip':>8s} {'ratio':>6s}")
    print(f"{BASELINE:42s} {best[BASELINE] / args.chips:8.4f} {1:6.2f}")
    for spec in SPECS:
        ratio = result["over_typical_rram"][spec]
        print(f"{spec:42s} {best[spec] / args.chips:8.4f} {ratio:6.2f}"
              f"{f'  (target <= {TARGET:g})' if spec == SPECS[0] else ''}")


if __name__ == "__main__":
    main()
