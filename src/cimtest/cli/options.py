"""Typer options shared by several commands, declared once."""

from __future__ import annotations

import typer

MODEL = typer.Argument(
    ..., help="Zoo name (e.g. resnet20-8), package.module:factory with --weights, or a .pt2 archive."
)
WEIGHTS = typer.Option(
    None, help="Weights for MODEL, instead of its own: .safetensors or .pt (weights only).")
INPUT_SHAPE = typer.Option(
    None, "--input-shape", metavar="F|C,L|C,H,W",
    help="Shape of one input, 1 to 3 integers, when it can't be inferred (from the model, "
    "--data, or a first Linear layer).")
TASK = typer.Option(
    None, help="classification, segmentation, generation or discrimination (default: inferred)."
)
DATA = typer.Option(
    None, help="Labelled test data: a built-in set (digits, mnist1d, mnist) at the model's input "
    "shape, or an image folder, .npz (x, y) or CIFAR .bin (default: a zoo model's own set, "
    "else the digits).")
NORMALISE = typer.Option(
    None, "--normalise", metavar="MEAN,STD",
    help="Normalise --data (and --real) per channel: x = (x - MEAN) / STD, on pixels in [0, 1] "
    "for images and uint8 arrays; one MEAN,STD for all channels or M1,..,Mc,S1,..,Sc (default: "
    "the data as stored, or the mean and std arrays stored in its .npz).")
ARRAY_SIZE = typer.Option(None, "--array-size", help="Crossbar array ROWSxCOLS (default: one per layer).")
HARDWARE = typer.Option(
    None, "--hardware", help="The periphery of every crossbar: a preset (ideal, aihwkit) or "
    "keys dac_bits=7,adc_bits=9,adc_bound=12,out_noise=0.06, or a preset then keys "
    "(default: ideal, weights only).")
BITS_PER_CELL = typer.Option(1, "--bits-per-cell", help="Bits stored per memristive cell: 1, 2, 4 or 8.")
SEED = typer.Option(0, help="Population seed: chip i is fully determined by (seed, i).")
MEMORY = typer.Option("2GB", help="Working-set budget of one chunk of chips, e.g. 2GB.")
TEST_IMAGES = typer.Option(
    None, "--test-images", metavar="N",
    help="Size of the truth: N test samples generated (mnist1d; cached after the first run), "
    "else the first N test images.")
AUGMENT = typer.Option(
    1, "--augment", metavar="COPIES",
    help="Measure each chip's accuracy on COPIES versions of every test image: the image and "
    "seeded affine copies (rotation <= 12 deg, scale +-10 %, shift <= 0.5 px; docs/data.md), "
    "a finer truth near A_cutoff for COPIES times the forwards (rows report its 'ceiling').")
INPUT_RANGE = typer.Option(
    None, "--input-range", metavar="LO,HI",
    help="Normalised input range of the synthetic images, e.g. -1,1 (default: the min and max "
    "of --data, else the zoo model's range, else -1,1).")
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
CHIP_MODEL = typer.Option(
    ..., "--model",
    help="The chip's model: zoo name, module:factory or .pt2, with the chip's weights in --weights.",
)
TEST_MODEL = typer.Option(
    None, "--model",
    help="The model the test was fitted for: zoo name, module:factory or .pt2 (default: the "
    "one the test names, with the weights it was fitted with).")
CHIP_OR_TEST_MODEL = typer.Option(
    None, "--model",
    help="The chip's model: zoo name, module:factory or .pt2, with the chip's weights in "
    "--weights (default: the model the test names).")
CHIP_WEIGHTS = typer.Option(None, help="The chip's weights (.safetensors or .pt).")
REFERENCE = typer.Option(
    None, "--reference",
    help="The model the test was fitted for; its fingerprint is checked (default: the chip's own).",
)
REFERENCE_WEIGHTS = typer.Option(None, "--reference-weights", help="Weights of --reference.")
QUIET = typer.Option(
    False, "-q", "--quiet", help="No progress bars or notes on stderr: results, warnings and "
    "errors only.")
VERBOSE = typer.Option(
    0, "-v", "--verbose", count=True, metavar="", show_default=False,
    help="Log INFO on stderr; repeat (-vv) for DEBUG.")
AT = typer.Option(
    None, "--at", metavar="T1,T2,...",
    help="Ages after programming, increasing, e.g. 1h,1d,1w,1mo,1y (units s, min, h, d, w, mo, "
    "y): the test, fitted at t = 0, scored on the same chips at each age (rows carry t in s); "
    "sets t of drift and retention, which the specs may leave out.")
SEARCH = typer.Option(
    "bisect", "--search", metavar="bisect|secant",
    help="How a level is searched: bisect (a fixed count of campaigns per target) or secant "
    "(at most 3 campaigns' chips x images per target for eta, sigma and t; cell faults are "
    "bisected; docs/calibrate.md).")
DEVICE = typer.Option(
    "cpu", "--device", metavar="DEVICE",
    help="Where chips are drawn and evaluated: cpu, cuda, cuda:N, or auto (cuda if available, "
    "else cpu). Chip i is seeded by (seed, i) on that device: CPU and CUDA chips are not "
    "bit-identical (docs/engine.md).")
