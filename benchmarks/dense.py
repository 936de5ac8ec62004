"""Dense or vmap: the forward of a chunk of chips on each path, side by side in one run.

    python benchmarks/dense.py [--json] [--quick]

For each model and input count, 8 chips under multiplicative variation forward their inputs
as one vmap call (grouped convolutions, patch matmuls) and as dense forwards (one chip per
thread); the ratio dense / vmap under 1 means dense is faster. It sets `DENSE_WORK` (the
multiply-accumulates per chip from which the engine runs dense, docs/engine.md). Torch
threads: 2. `--quick` runs two models at two input counts.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from engine import best_of
from resnet18 import cifar

from cimtest import zoo
from cimtest.engine import Population, batched

MODELS = ("resnet20-8", "mobilenet-v1-8", "resnet20-16", "vgg16-8", "resnet20", "mobilenet-v1",
          "vgg16", "resnet18")
INPUTS = (1, 4, 16, 64)
CHIPS = 8


def build(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """A zoo model (untrained) or ResNet-18 at 3x32x32, with its input shape."""
    if name == "resnet18":
        model = cifar()
        return model, model.input_shape
    entry = zoo.get_entry(name)
    return entry.build(), entry.input_shape


@torch.no_grad()
def row(name: str, inputs: tuple[int, ...]) -> dict:
    """Dense over vmap time of `CHIPS` chips of `name` at each count of `inputs`."""
    model, shape = build(name)
    pop = Population(model, "mult:eta=0.05", seed=0, n=CHIPS)
    forward = pop._forward
    flat = pop.weights(range(CHIPS))
    macs = batched.input_macs(model, shape)
    cells = {}
    for n in inputs:
        x = torch.randn(n, *shape)
        times = {}
        for path, work in (("vmap", float("inf")), ("dense", 0)):
            batched.DENSE_WORK = work
            forward(flat, x)  # warm: each thread's module copy, oneDNN's kernels
            times[path] = best_of(lambda: forward(flat, x), repeats=3)  # noqa: B023
        cells[n] = {"mmac_per_chip": n * macs / 1e6, "dense_over_vmap": times["dense"] / times["vmap"],
                    "dense_s": times["dense"], "vmap_s": times["vmap"]}
    return {"model": name, "mmac_per_input": macs / 1e6, "inputs": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    torch.set_num_threads(2)
    threshold = batched.DENSE_WORK
    models, inputs = (MODELS[:2], INPUTS[:2]) if args.quick else (MODELS, INPUTS)
    try:
        rows = [row(name, inputs) for name in models]
    finally:
        batched.DENSE_WORK = threshold
    if args.json:
        json.dump({"dense_work": threshold, "rows": rows}, sys.stdout, indent=2)
        print()
        return
    print(f"dense / vmap time, {CHIPS} chips, 2 threads (engine's DENSE_WORK: {threshold:,})")
    print("model (M MAC per input) | " + " | ".join(f"{n} in" for n in inputs))
    for r in rows:
        cells = " | ".join(f"{c['dense_over_vmap']:.2f}" for c in r["inputs"].values())
        print(f"{r['model']} ({r['mmac_per_input']:.1f}) | {cells}")


if __name__ == "__main__":
    main()
