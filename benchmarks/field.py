"""Field benchmark: a 10-time monitor against one campaign of the same chips, side by side.

    python benchmarks/field.py [--model resnet20-8] [--chips 128] [--json]

Times, on the model's test data and one fitted test (a Bayesian test vector, fitted briefly
here: its cost does not depend on its quality):

- ``campaign``: one campaign, every chip's accuracy (`Population.accuracy`);
- ``forward floor``: the forwards a 10-time monitor cannot avoid, each chip's data at each
  time from weight rows drawn beforehand (10 x the forward of a campaign, no draw);
- ``monitor``: `Monitor` at 10 times, without remedy, and with ``--compensate gdc``.

The issue's target is a 10-time monitor within 3x one campaign. Every time needs every chip's
accuracy, which is a forward of all the data, so a monitor costs at least the forward floor;
the ratios to both are printed.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from machine import cpu_model

TIMES = (3600.0, 21600.0, 86400.0, 259200.0, 604800.0, 1814400.0, 2629800.0, 7889400.0,
         15778800.0, 31557600.0)
"""Ten retest times, 1 h to 1 y."""
TARGET = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-8")
    parser.add_argument("--chips", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from cimtest.cli.inputs import resolve_data, resolve_model
    from cimtest.engine import Population
    from cimtest.field import Monitor
    from cimtest.methods import BayesianTestVector

    loaded = resolve_model(args.model, None, None, None)
    data = resolve_data(loaded, None)
    fault = "egis-typical:sigma=0.05+drift:t=0"
    population = Population(loaded.module, fault, seed=1, n=args.chips)
    test = BayesianTestVector(steps=5, seed=0).fit(loaded, None, None, None)
    chips = list(range(args.chips))

    start = time.perf_counter()
    population.accuracy(data.x, data.y)
    campaign = time.perf_counter() - start

    step = population.chips_per_chunk(tuple(data.x.shape[1:]), data.x.shape[0])
    rows = [population.at(t).weights(chips[i : i + step])
            for t in TIMES[:1] for i in range(0, args.chips, step)]
    start = time.perf_counter()
    for _ in TIMES:
        for i, block in zip(range(0, args.chips, step), rows, strict=True):
            population.forward_rows(chips[i : i + step], block, data.x)
    floor = time.perf_counter() - start

    timings = {}
    for compensation in ("none", "gdc"):
        run = Monitor(population, test, data.x, data.y, TIMES, compensation=compensation)
        start = time.perf_counter()
        run.run()
        timings[compensation] = time.perf_counter() - start

    result = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "model": args.model,
              "chips": args.chips, "test_images": int(data.x.shape[0]), "times": len(TIMES),
              "campaign_s": campaign, "forward_floor_s": floor,
              "monitor_s": timings["none"], "monitor_gdc_s": timings["gdc"],
              "monitor_over_campaign": timings["none"] / campaign,
              "monitor_gdc_over_campaign": timings["gdc"] / campaign,
              "floor_over_campaign": floor / campaign,
              "monitor_over_floor": timings["none"] / floor,
              "monitor_gdc_over_floor": timings["gdc"] / floor, "target": TARGET}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.model}, {args.chips} chips, {result['test_images']} test images, "
          f"{len(TIMES)} times; {result['cpu']}, {result['threads']} threads")
    print(f"campaign                 {campaign:8.2f} s   1.00x")
    print(f"forward floor (10 times) {floor:8.2f} s  {floor / campaign:5.2f}x")
    print(f"monitor                  {timings['none']:8.2f} s  "
          f"{timings['none'] / campaign:5.2f}x  ({timings['none'] / floor:.2f}x the floor)")
    print(f"monitor, gdc             {timings['gdc']:8.2f} s  "
          f"{timings['gdc'] / campaign:5.2f}x  ({timings['gdc'] / floor:.2f}x the floor)")
    print(f"target: monitor within {TARGET:g}x one campaign")


if __name__ == "__main__":
    main()
