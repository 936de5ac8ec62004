"""Device benchmark: the engine against its rooflines, a learned fit and EGIS compaction.

    python benchmarks/gpu.py [--device cpu|cuda|cuda:N|auto] [--json] [--quick]

Everything runs on `--device` (the CPU by default, so it runs everywhere; `cuda` where there
is a GPU), and every figure carries the device's name (the GPU's, else the CPU's model).
Models are untrained (timing does not depend on the weights). The engine's rows, each timed
beside its roofline on the same device with the helpers of `engine.py`:

- screening: resnet20 (3x32x32) on 1,024 chips and resnet20-8 (1x8x8) on 4,096 chips, one
  input per chip, under ``mult:eta=0.05``;
- accuracy campaign: resnet20 on 64 chips x 512 inputs, and ResNet-18 at 3x224x224
  (`resnet18.py`) on 8 chips x 8 inputs, under ``mult:eta=0.05``;
- correlated field: 8 fields on a 1,024 x 1,024 array (lambda = 0.001).

The roofline of a screening or campaign row is the plain batched float forward of the same
chips x inputs (the ideal model, one batch, no fault draw) plus drawing one normal per weight
of each chip (the least work that draws the chips); the correlated field's is drawing as
many i.i.d. normals. Target on a GPU: each row at most 1.25x its roofline. The long parts:

- learned fit: `LearnedTest` (K 4, 100 steps, a pool of 256 EGIS images from 200 generator
  steps) on 1,000 vgg16-8 training chips under typical RRAM at its 2-point level
  (`learned.FAULTS`); target on a GPU 5 minutes (34-40 minutes on 2 CPU cores);
- EGIS compaction for VGG-16 (3x32x32) at the paper's sizes: N 2,048 synthetic images, D
  1,000 chips, K 4, typical RRAM at VGG-16's 2-point level; the generator (200 steps) and the
  signature campaign are timed, then the compaction (Algorithm 1 and the detector, on the
  host as in the library); target on a GPU 60 s (the paper: 688 s on an A100).

Their chips are labelled by logit margin (`egis.margin_outcomes`: no data set). `--quick`
is the smoke run: 2 chips per row, 8 inputs per campaign (one at 224x224), a 256 x 256 field,
and both long parts skipped, reported as not yet measured. On the CPU the long parts take hours (the signature campaign is two million
VGG-16 forwards). Torch threads: 2 on the CPU.
"""

from __future__ import annotations

import argparse
import json

import torch
from egis import margin_outcomes, timed
from engine import accuracy_row, field_row, resnet18_row, screening
from learned import FAULTS
from machine import cpu_model

from cimtest import zoo
from cimtest._device import resolve_device
from cimtest.engine import Population
from cimtest.exceptions import ConfigError
from cimtest.methods import ChipOutcomes, EntropyImageTest, LearnedTest

EGIS_FAULT = "egis-typical:sigma=0.04035"
"""VGG-16's 2-point level (`reproduce egis-vgg16`, docs/results-egis.md)."""
INPUT_RANGE = (-1.0, 1.0)
"""Range of the synthetic images (the untrained models have no data set to take it from)."""
ROW_TARGET, LEARNED_TARGET_S, EGIS_TARGET_S = 1.25, 300.0, 60.0


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the CPU's model."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def untrained(name: str) -> torch.nn.Module:
    """Zoo model `name` untrained, with its ``input_shape`` (what a method reads)."""
    entry = zoo.get_entry(name)
    module = entry.build()
    module.input_shape = entry.input_shape
    return module


def labelled_chips(module: torch.nn.Module, fault: str, chips: int, device: torch.device
                   ) -> tuple[Population, ChipOutcomes]:
    """`chips` chips of `module` on `device` and their margin labels on 16 noise inputs."""
    population = Population(module, fault, seed=0, n=chips, device=device)
    low, high = INPUT_RANGE
    x = low + (high - low) * torch.rand(16, *module.input_shape,
                                        generator=torch.Generator().manual_seed(0))
    return population, margin_outcomes(population.outputs(x))


def learned_fit(name: str, chips: int, device: torch.device) -> dict:
    """`LearnedTest.fit` on `chips` training chips of untrained `name`, timed alone."""
    module = untrained(name)
    population, outcomes = labelled_chips(module, FAULTS[name], chips, device)
    source = EntropyImageTest(k=4, sid_size=256, steps=200, input_range=INPUT_RANGE, seed=0)
    test = LearnedTest(k=4, source=source, steps=100, seed=0)
    _, fit_s = timed(lambda: test.fit(module, population, outcomes), device)
    return {"fit_s": fit_s, "model": name, "chips": chips, "fault": FAULTS[name]}


def egis_compaction(name: str, n: int, d: int, k: int, device: torch.device) -> dict:
    """EGIS on untrained `name`: generator, signature campaign, then the compaction timed."""
    module = untrained(name)
    test = EntropyImageTest(k=k, sid_size=n, steps=200, input_range=INPUT_RANGE, seed=0)
    sid, generator_s = timed(lambda: test.propose(module, device=device), device)
    population = Population(module, EGIS_FAULT, seed=0, n=d, device=device)
    signatures, signatures_s = timed(lambda: population.outputs(sid), device)
    _, compaction_s = timed(lambda: test.learn(signatures, margin_outcomes(signatures)), device)
    return {"compaction_s": compaction_s, "generator_s": generator_s,
            "signatures_s": signatures_s, "iterations": len(test.reward_curve_),
            "model": name, "n": n, "d": d, "k": k, "fault": EGIS_FAULT}


def figure(value: float | None, target: str, device: str, details: dict) -> dict:
    """One reported figure: its value (None: not yet measured), target, device and details."""
    return {"value": value, "status": "measured" if value is not None else "not yet measured",
            "target": target, "device": device, "details": details}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="the smoke run: 2 chips per row, no learned fit, no EGIS")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except ConfigError as exc:
        parser.error(str(exc))
    if device.type == "cpu":
        torch.set_num_threads(2)
    name, quick = device_name(device), args.quick
    rows = {
        "screening32_over_roofline": screening("resnet20", 2 if quick else 1024, device),
        "screening8_over_roofline": screening("resnet20-8", 2 if quick else 4096, device),
        "campaign_over_roofline": accuracy_row(2 if quick else 64, 8 if quick else 512, device),
        "resnet18_224_over_roofline": resnet18_row(224, 2 if quick else 8, 1 if quick else 8,
                                                   device),
    }
    target = f"<= {ROW_TARGET:g} on a GPU"
    result = {key: figure(row["over_floor"], target, name, row) for key, row in rows.items()}
    field = field_row(256 if quick else 1024, 8, device)
    result["field_over_roofline"] = figure(field["over_iid"], target, name, field)
    long_parts = {
        "learned_fit_vgg16_8_s": (lambda: learned_fit("vgg16-8", 1000, device), "fit_s",
                                  LEARNED_TARGET_S),
        "egis_compaction_vgg16_s": (lambda: egis_compaction("vgg16", 2048, 1000, 4, device),
                                    "compaction_s", EGIS_TARGET_S),
    }
    for key, (run, seconds, limit) in long_parts.items():
        details = {"skipped": "--quick"} if quick else run()
        result[key] = figure(details.get(seconds), f"<= {limit:g} s on a GPU", name, details)
    header = {"device": name, "device_type": device.type, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "quick": quick}
    if args.json:
        print(json.dumps({**header, "figures": result}, indent=2))
        return
    print(f"on {name} ({device}), torch {torch.__version__}, {header['threads']} CPU threads")
    print(f"{'measure':30s} {'value':>16s}  target")
    for key, row in result.items():
        shown = "not yet measured" if row["value"] is None else f"{row['value']:.3f}"
        print(f"{key:30s} {shown:>16s}  {row['target']}")


if __name__ == "__main__":
    main()
