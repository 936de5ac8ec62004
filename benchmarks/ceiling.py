"""How precise the truth is: split-half agreement of pass/fail (`cimtest.evaluation.truth`)
on a zoo model's own test set (the 540 test digits by default) and on seeded augmented copies
of its images, or on generated test sets of several sizes (MNIST-1D), per cut-off.

    python benchmarks/ceiling.py [--model resnet20-8] [--fault egis-typical:sigma=0.05425]
        [--chips 400] [--copies 1,8,32] [--json]
    python benchmarks/ceiling.py --model cnn-mnist1d --fault egis-typical:sigma=0.1016 \
        --copies 1 --test-images 10000,20000,40000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from machine import cpu_model

from cimtest.cutoffs import parse_cutoff
from cimtest.data import augment, builtin_splits
from cimtest.engine import Population
from cimtest.evaluation.truth import ceiling, correct_answers
from cimtest.loading import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20-8")
    parser.add_argument("--fault", default="egis-typical:sigma=0.05425")
    parser.add_argument("--chips", type=int, default=400)
    parser.add_argument("--copies", default="1,8,32")
    parser.add_argument("--cutoffs", default="A50,A60,A70")
    parser.add_argument("--test-images", default=None,
                        help="Test-set sizes, e.g. 10000,40000 (default: the set's own)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = load_model(args.model)
    sizes = [None] if args.test_images is None else [int(n) for n in args.test_images.split(",")]
    chips = Population(model.module, args.fault, seed=0, n=args.chips)
    rows = []
    for size, copies in ((n, int(c)) for n in sizes for c in args.copies.split(",")):
        test = builtin_splits(model.dataset, model.input_shape, test_size=size).test
        data = augment(test, copies, seed=0) if copies > 1 else test
        start = time.perf_counter()
        correct = np.concatenate([correct_answers(out, data.y)
                                  for _, out in chips.iter_chunks(data.x)])
        accuracy = 100.0 * correct.mean(axis=1)
        for name in args.cutoffs.split(","):
            cut = parse_cutoff(name).accuracy(accuracy)
            rows.append({"copies": copies, "images": len(data), "cutoff": name,
                         "cutoff_accuracy": cut, "accuracy_mean": float(accuracy.mean()),
                         "accuracy_sd": float(accuracy.std()),
                         "ceiling": ceiling(correct, cut, sources=data.sources),
                         "seconds": time.perf_counter() - start})
        if not args.json:
            for row in rows[-len(args.cutoffs.split(",")):]:
                print(row, flush=True)
    if args.json:
        print(json.dumps({"cpu": cpu_model(), "threads": torch.get_num_threads(),
                          "model": args.model, "fault": args.fault, "chips": args.chips,
                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
