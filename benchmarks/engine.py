"""Engine benchmark: every row a ratio of two timings measured side by side in this run.

    python benchmarks/engine.py [--json] [--quick]

Torch threads are fixed (2). Models are built untrained (timing does not depend on the
weights). `--quick` shrinks every size by 4x for a smoke run. The ResNet-18 rows
(`resnet18.py`: 3x32x32 with the CIFAR stem, 3x224x224 with the ImageNet stem) are campaigns
of a few chips on a few inputs against their floor: the ideal model forwarding the same
chips x inputs in one batch plus drawing the chips' normals. The helpers take a `device`
(`gpu.py` times them on a GPU); this script runs them on the CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time

import torch
from resnet18 import cifar, imagenet

from cimtest import zoo
from cimtest.data.mnist1d import TEST_SIZE as MNIST1D_TEST_SIZE
from cimtest.engine import Population
from cimtest.faults import sample_field

RANDN_CHUNK = 2**20
CPU = torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a CUDA call returns before its work is done)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fn, repeats: int = 3, device: torch.device = CPU) -> float:
    """Fastest of `repeats` timed calls (noise on a shared machine only ever adds time), each
    until `device` has finished its work."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def randn_time(count: int, device: torch.device = CPU) -> float:
    """Time for torch.randn to draw `count` normals in chunks of 2^20 on `device`."""
    buffer = torch.empty(RANDN_CHUNK, device=device)
    gen = torch.Generator(device=device).manual_seed(0)

    def draw():
        left = count
        while left > 0:
            torch.randn(min(left, RANDN_CHUNK), generator=gen, out=buffer[: min(left, RANDN_CHUNK)])
            left -= RANDN_CHUNK

    return best_of(draw, device=device)


@torch.no_grad()
def screening(name: str, chips: int, device: torch.device = CPU) -> dict:
    """1 input per chip under multiplicative variation vs the floor (roofline + randn)."""
    model = zoo.get_entry(name).build()
    pop = Population(model, "mult:eta=0.05", seed=0, n=chips, device=device)
    x1 = torch.randn(1, *zoo.get_entry(name).input_shape).to(device)
    xn = x1.expand(chips, *x1.shape[1:]).contiguous()
    ideal = pop.mapped.ideal
    roofline = best_of(lambda: ideal(xn), device=device)
    draw = randn_time(chips * pop.mapped.reference.numel(), device)
    engine = best_of(lambda: pop.outputs(x1), device=device)
    return {"engine_s": engine, "roofline_s": roofline, "randn_s": draw,
            "over_floor": engine / (roofline + draw), "chips": chips}


@torch.no_grad()
def loop_baseline(name: str, chips: int) -> float:
    """Per-chip load_state_dict + forward: the loop a user would script."""
    model = zoo.get_entry(name).build()
    pop = Population(model, "none", n=1)
    ideal = copy.deepcopy(pop.mapped.ideal)
    keys = [f"{layer.name}.weight" for layer in pop.mapped.layers]
    state = ideal.state_dict()
    x1 = torch.randn(1, *zoo.get_entry(name).input_shape)
    gen = torch.Generator().manual_seed(0)

    def run():
        for _ in range(chips):
            chip = dict(state)
            for key in keys:
                w = state[key]
                chip[key] = w * (1 + 0.05 * torch.randn(w.shape, generator=gen))
            ideal.load_state_dict(chip)
            ideal(x1)

    return best_of(run, repeats=2)


@torch.no_grad()
def campaign_row(model: torch.nn.Module, input_shape: tuple[int, ...], chips: int, inputs: int,
                 device: torch.device = CPU) -> dict:
    """An accuracy campaign under multiplicative variation against the roofline (the ideal
    model on the same chips x inputs in one batch) and the floor (roofline + randn)."""
    pop = Population(model, "mult:eta=0.05", seed=0, n=chips, memory="4GB", device=device)
    x = torch.randn(inputs, *input_shape).to(device)
    y = torch.randint(0, 10, (inputs,)).to(device)
    xr = x.repeat(chips, *[1] * len(input_shape))
    ideal = pop.mapped.ideal
    roofline = best_of(lambda: ideal(xr), repeats=2, device=device)
    draw = randn_time(chips * pop.mapped.reference.numel(), device)
    engine = best_of(lambda: pop.accuracy(x, y), repeats=2, device=device)
    return {"engine_s": engine, "roofline_s": roofline, "randn_s": draw,
            "over_roofline": engine / roofline, "over_floor": engine / (roofline + draw),
            "chips": chips, "inputs": inputs}


def accuracy_row(chips: int, inputs: int, device: torch.device = CPU) -> dict:
    """resnet20, many inputs per chip: time over the ideal model on chips x inputs."""
    return campaign_row(zoo.get_entry("resnet20").build(), (3, 32, 32), chips, inputs, device)


def resnet18_row(image_size: int, chips: int, inputs: int, device: torch.device = CPU) -> dict:
    """ResNet-18 at 3 x `image_size` x `image_size` (32 or 224): a campaign against its floor."""
    model = cifar() if image_size == 32 else imagenet()
    return campaign_row(model, model.input_shape, chips, inputs, device)


@torch.no_grad()
def mnist1d_row(chips: int, inputs: int) -> dict:
    """cnn-mnist1d under typical RRAM on the MNIST-1D truth: the campaign against its
    roofline, the ideal model forwarding the same inputs once per chip."""
    entry = zoo.get_entry("cnn-mnist1d")
    model = entry.build()
    pop = Population(model, "egis-typical:sigma=0.1", seed=0, n=chips, memory="2GB")
    x = torch.randn(inputs, *entry.input_shape)
    y = torch.randint(0, 10, (inputs,))
    ideal = pop.mapped.ideal
    roofline = best_of(lambda: [ideal(x) for _ in range(chips)], repeats=2)
    engine = best_of(lambda: pop.accuracy(x, y), repeats=2)
    return {"engine_s": engine, "roofline_s": roofline, "over_roofline": engine / roofline,
            "chips": chips, "inputs": inputs}


class GroupedBranches(torch.nn.Module):
    """A user-style 3x32x32 CNN: grouped 3x3 convolutions, concatenated branches, no BN."""

    def __init__(self) -> None:
        super().__init__()
        conv = torch.nn.Conv2d
        self.stem = conv(3, 32, 3, padding=1)
        self.left, self.right = conv(32, 32, 3, padding=1, groups=4), conv(32, 32, 3, padding=1, groups=8)
        self.down = conv(64, 64, 3, stride=2, padding=1, groups=2)
        self.mix = conv(64, 64, 3, padding=1, groups=4)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], 1)
        return self.head(torch.relu(self.mix(torch.relu(self.down(x)))).mean((2, 3)))


@torch.no_grad()
def user_model_row(chips: int, inputs: int) -> dict:
    """A multi-input campaign on `GroupedBranches` against a plain float forward of the same
    images, once per chip, on the same threads."""
    torch.manual_seed(0)
    model = GroupedBranches().eval()
    pop = Population(model, "mult:eta=0.05", seed=0, n=chips, memory="2GB")
    x = torch.randn(inputs, 3, 32, 32)
    y = torch.randint(0, 10, (inputs,))
    plain = best_of(lambda: [model(x) for _ in range(chips)], repeats=2)
    engine = best_of(lambda: pop.accuracy(x, y), repeats=2)
    return {"engine_s": engine, "plain_s": plain, "over_plain": engine / plain}


@torch.no_grad()
def bitflip_share(chips: int) -> float:
    """Share of a p = 1e-5 bit-flip campaign's time spent sampling faults (resnet20-8):
    drawing the chips' sparse edits (the sparse path the campaign takes) over the whole."""
    model = zoo.get_entry("resnet20-8").build()
    pop = Population(model, "bitflip:p=1e-5", seed=0, n=chips)
    assert pop.sparse
    x1 = torch.randn(1, 1, 8, 8)
    total = best_of(lambda: pop.outputs(x1))
    sampling = best_of(lambda: pop.edits(range(chips)))
    return sampling / total


def field_row(size: int, fields: int, device: torch.device = CPU) -> dict:
    """Correlated field on a size x size array vs drawing as many i.i.d. normals."""
    gens = [torch.Generator(device=device).manual_seed(i) for i in range(fields)]
    sample_field((size, size), 0.001, gens[:1])  # warm the eigenvalue cache
    field = best_of(lambda: sample_field((size, size), 0.001, gens), device=device)
    iid = best_of(lambda: [torch.randn(size * size, generator=g, device=device) for g in gens],
                  device=device)
    return {"field_s": field, "iid_s": iid, "over_iid": field / iid, "size": size,
            "fields": fields}


@torch.no_grad()
def vgg16_draw_row(chips: int) -> dict:
    """Drawing typical-RRAM VGG-16 (3x32x32) chips on the threads, per chip, beside what its
    draws cost on one thread: its cells' normals (the floor the issue names), the normals of
    its correlated fields' tori (4x the cells: an exact field needs them), and their FFTs."""
    from cimtest.faults.field import _sqrt_spectrum

    pop = Population(zoo.get_entry("vgg16").build(), "egis-typical", seed=0, n=chips)
    pop.weights(range(1))  # warm the fields' spectra
    draw = best_of(lambda: pop.weights(range(chips)), repeats=2) / chips
    cells = pop.mapped.reference.numel()
    roots = [_sqrt_spectrum(*slot.array_shape[-2:], 0.001)[0] for slot in pop.layout.layers]
    torus = sum(root.numel() for root in roots)
    noise = [torch.randn(root.shape) for root in roots]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each chip's draws run
    try:
        fft = best_of(lambda: [torch.fft.rfft2(n) for n in noise], repeats=2)
    finally:
        torch.set_num_threads(threads)
    return {"draw_s_per_chip": draw, "cells_randn_s": randn_time(cells),
            "torus_randn_s": randn_time(torus), "torus_fft_s": fft, "cells": cells,
            "torus_cells": torus, "chips": chips, "threads": threads}


def peak_memory_gb(chips: int) -> float:
    """Peak RSS of a 1-input campaign of `chips` chips on resnet20-8, in a fresh process.

    Read from /proc's VmHWM of the child's own address space: ``ru_maxrss`` would keep the
    high-water mark of the forked parent (this benchmark, which holds gigabytes) across exec.
    """
    code = (
        "import torch;from cimtest import zoo;from cimtest.engine import Population;"
        "m=zoo.get_entry('resnet20-8').build();"
        f"p=Population(m,'mult:eta=0.05',n={chips},memory='1GB');"
        "x=torch.randn(1,1,8,8);y=torch.zeros(1,dtype=torch.long);p.accuracy(x,y);"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 2**20


def _pytorchfi_chip(fi, conv_layers, per_layer: list[int], gen: torch.Generator, inject) -> None:
    """One chip through pytorchfi: declare injections at `per_layer` random weights, forward."""
    layer_num, k, c, h, w = [], [], [], [], []
    for index, (layer, count) in enumerate(zip(conv_layers, per_layer)):
        shape = layer.weight.shape
        flat = torch.randint(layer.weight.numel(), (count,), generator=gen)
        for dim, target in zip(torch.unravel_index(flat, shape), (k, c, h, w)):
            target.extend(dim.tolist())
        layer_num.extend([index] * count)
    model = fi.declare_weight_fi(function=inject, layer_num=layer_num, k=k, dim1=c, dim2=h, dim3=w)
    model(torch.randn(1, 1, 8, 8, generator=gen))


@torch.no_grad()
def pytorchfi_rows(engine_dense_s_per_chip: float) -> tuple[float | None, float | None]:
    """Speed-ups over pytorchfi on resnet20-8 (conv layers), or None when not installed.

    Dense: every conv weight perturbed (multiplicative variation). Sparse: bit-flips at
    p = 1e-4, pytorchfi's best case (few injections per chip).
    """
    try:
        from pytorchfi.core import fault_injection
    except ImportError:
        return None, None
    model = Population(zoo.get_entry("resnet20-8").build(), "none").mapped.ideal
    fi = fault_injection(model, 1, input_shape=[1, 8, 8], layer_types=[torch.nn.Conv2d])
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    gen = torch.Generator().manual_seed(0)

    def mult(weight, idx):
        return weight[idx] * (1 + 0.05 * torch.randn(1, generator=gen).item())

    dense = best_of(lambda: _pytorchfi_chip(fi, convs, [c.weight.numel() for c in convs], gen,
                                            mult), repeats=1)

    def flip(weight, idx):
        return -weight[idx]  # a sign-bit flip's cost; the value does not change the timing

    chips = 32
    sparse_counts = [max(1, round(c.weight.numel() * 8 * 1e-4)) for c in convs]
    sparse = best_of(lambda: [_pytorchfi_chip(fi, convs, sparse_counts, gen, flip)
                              for _ in range(chips)], repeats=1) / chips
    pop = Population(zoo.get_entry("resnet20-8").build(), "bitflip:p=1e-4", n=4096)
    x1 = torch.randn(1, 1, 8, 8)
    engine_sparse = best_of(lambda: pop.outputs(x1)) / 4096
    return dense / engine_dense_s_per_chip, sparse / engine_sparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    s = 4 if args.quick else 1
    s32 = screening("resnet20", 1024 // s)
    s8 = screening("resnet20-8", 4096 // s)
    loop_chips = 256 // s
    loop = loop_baseline("resnet20-8", loop_chips) / loop_chips
    per_chip_engine = s8["engine_s"] / (4096 // s)
    acc = accuracy_row(64 // s, 512)
    user = user_model_row(16 // s, 540)
    mnist1d = mnist1d_row(32 // s, MNIST1D_TEST_SIZE // s)
    r18 = resnet18_row(32, max(2, 4 // s), 16 // s)
    r18_224 = resnet18_row(224, max(2, 4 // s), max(1, 4 // s))
    fi_dense, fi_sparse = pytorchfi_rows(per_chip_engine)
    vgg = vgg16_draw_row(8 // s)
    result = {
        "screening32_over_floor": s32["over_floor"],
        "screening8_over_floor": s8["over_floor"],
        "screening_speedup_over_loop": loop / per_chip_engine,
        "screening_speedup_over_pytorchfi": fi_dense,
        "bitflip_speedup_over_pytorchfi_sparse": fi_sparse,
        "accuracy_over_roofline": acc["over_roofline"],
        "user32_over_plain": user["over_plain"],
        "mnist1d_accuracy_over_roofline": mnist1d["over_roofline"],
        "resnet18_over_floor": r18["over_floor"],
        "resnet18_224_over_floor": r18_224["over_floor"],
        "bitflip_sampling_share": bitflip_share(4096 // s),
        "field_over_iid": field_row(1024, 8 // min(s, 8) or 1)["over_iid"],
        "vgg16_typical_draw_s": vgg["draw_s_per_chip"],
        "peak_memory_gb_100k": peak_memory_gb(100_000 // s),
        "details": {"screening32": s32, "screening8": s8, "accuracy": acc, "user32": user,
                    "mnist1d": mnist1d, "resnet18": r18, "resnet18_224": r18_224, "vgg16_draw": vgg,
                    "loop_s_per_chip": loop, "engine_s_per_chip_8": per_chip_engine,
                    "quick": args.quick, "threads": torch.get_num_threads()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    targets = {
        "screening32_over_floor": "<= 1.25",
        "screening8_over_floor": "<= 1.25",
        "screening_speedup_over_loop": ">= 3",
        "screening_speedup_over_pytorchfi": ">= 200",
        "bitflip_speedup_over_pytorchfi_sparse": ">= 50",
        "accuracy_over_roofline": "<= 1.15",
        "user32_over_plain": "<= 1.5",
        "mnist1d_accuracy_over_roofline": "<= 1.15",
        "resnet18_over_floor": "<= 1.25",
        "resnet18_224_over_floor": "<= 1.25",
        "bitflip_sampling_share": "<= 0.10",
        "field_over_iid": "<= 10",
        "vgg16_typical_draw_s": "<= 0.2",
        "peak_memory_gb_100k": "< 2",
    }
    print(f"{'measure':40s} {'value':>10s}  target")
    for key, target in targets.items():
        value = result[key]
        shown = "n/a" if value is None else f"{value:.3f}"
        print(f"{key:40s} {shown:>10s}  {target}")


if __name__ == "__main__":
    main()
