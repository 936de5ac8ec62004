"""The documented experiments `cimtest reproduce` reruns: their commands and their tables.

Each `Experiment` lists the `cimtest` commands its document shows (later commands take
calibrated levels from earlier ones) and renders their JSON into the markdown blocks of the
document with a renderer of `cimtest.report.experiment_tables`. Budgets on the 2-core
reference machine, one torch thread per experiment: ``btv`` ~45 min, ``btv-zoo`` ~80 min,
``egis`` ~45 min, ``egis-vgg16`` ~75 min, ``egis-mobilenet-v1`` ~25 min, ``comparison``
~45 min (two threads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cimtest.report.experiment_tables import (
    Results,
    calibrated_level,
    render_btv,
    render_comparison,
    render_egis,
    render_egis_zoo,
    render_zoo,
)

__all__ = ["EXPERIMENTS", "Experiment", "Results"]

Step = tuple[str, Callable[[Results, Path], list]]


@dataclass(frozen=True)
class Experiment:
    """A documented experiment: its document, its commands and how its tables are made."""

    doc: str
    steps: tuple[Step, ...]
    render: Callable[[Results], dict[str, str]]
    """Results → markdown by block name."""
    blocks: tuple[str, ...] = ()
    """The names of the blocks `render` writes (each must be marked in `doc`)."""
    figures: tuple[tuple[str, str], ...] = ()
    """Files the steps write, copied to the docs folder: (path in the work folder, path in
    the docs folder)."""


# --- btv: paper 1 on resnet20-8 at full size (docs/results-btv.md) ----------------------------

_BTV_KINDS = (("mult", "mult", "eta", ""), ("add", "add", "eta", ""),
              ("bitflip", "bitflip", "p", ""), ("levelflip", "levelflip:bits=2", "p", ",bits=2"))
"""(name, --fault of calibrate, level parameter, extra parameters) per fault kind."""
_BTV_DROPS = (0.5, 1, 2, 5, 10)
_BTV_SWEEP = (
    ("default", []), ("alpha=0", ["--alpha", 0]), ("alpha=1", ["--alpha", 1]),
    ("alpha=100", ["--alpha", 100]), ("alpha=1,prior=0.3", ["--alpha", 1, "--prior", 0.3]),
    ("alpha=1,prior=3", ["--alpha", 1, "--prior", 3]), ("kl=sum", ["--kl", "sum"]),
    ("steps=30", ["--steps", 30]), ("steps=1000", ["--steps", 1000]),
    ("samples=4", ["--samples", 4]),
)
"""Fit settings compared on the same chips (`btv fit` options besides the defaults)."""


def _fault_args(results: Results, prefix: str, kinds, drops=None) -> list:
    """``--fault SPEC`` for each kind and calibrated drop, in kind order then drop order."""
    args = []
    for name, _, param, extra in kinds:
        for row in results[f"{prefix}{name}"]:
            if drops is None or row["drop"] in drops:
                args += ["--fault", f"{name}:{param}={row['level']:.6g}{extra}"]
    return args


def _btv_steps() -> tuple[Step, ...]:
    model, test = "resnet20-8", "r20-8.safetensors"
    common = ["--chips", 1000, "--test-images", 540]
    steps: list[Step] = [
        (f"cal-{name}", lambda r, w, kind=kind: [
            "calibrate", model, "--fault", kind, "--drop", ",".join(map(str, _BTV_DROPS)),
            "--chips", 64, "--iterations", 10])
        for name, kind, _, _ in _BTV_KINDS]
    steps += [
        ("fit", lambda r, w: ["btv", "fit", model, "-o", w / test, "--false-alarm", 0.01]),
        ("evaluate", lambda r, w: ["btv", "evaluate", w / test, "--model", model,
                                   *_fault_args(r, "cal-", _BTV_KINDS), *common,
                                   "--offsets", "0,0.05,0.1,0.2,0.3"]),
        ("layers", lambda r, w: ["btv", "evaluate", w / test, "--model", model,
                                 *_fault_args(r, "cal-", _BTV_KINDS, (2,)), *common,
                                 "--layers", "0.1,0.2,0.3,0.4,0.5", "--fresh-per-chip", 0]),
    ]
    for name, options in _BTV_SWEEP:
        path = f"sweep-{name}.safetensors"
        steps += [
            (f"sweep-fit-{name}", lambda r, w, p=path, o=options: [
                "btv", "fit", model, "-o", w / p, *o]),
            (f"sweep-{name}", lambda r, w, p=path: [
                "btv", "evaluate", w / p, "--model", model,
                *_fault_args(r, "cal-", _BTV_KINDS[::2], (1,)), "--chips", 300,
                "--test-images", 540, "--fresh-per-chip", 0]),
        ]
    return tuple(steps)


# --- btv-zoo: paper 1 on the 32x32 zoo, scaled (docs/results-btv.md) --------------------------

_ZOO_CALIBRATED = (
    ("resnet20", _BTV_KINDS, 16, 100), ("fcn", _BTV_KINDS, 16, 100),
    ("unet", _BTV_KINDS, 16, 100), ("repvgg-a0", _BTV_KINDS[::2], 16, 100),
    ("resnet56", _BTV_KINDS[::2], 8, 50), ("mobilenet-v2", _BTV_KINDS[::2], 8, 50),
)
"""(model, fault kinds, chips per calibration estimate, chips per cell): the costlier models
(one forward on one core: RepVGG-A0 4 ms, ResNet-56 9 ms, MobileNet-v2 22 ms through the
engine at 100 inputs per chip) under multiplicative variation and bit-flips only, ResNet-56
and MobileNet-v2 with fewer chips."""
_ZOO_UNLABELLED = ("dcgan-g", "dcgan-d")
"""No accuracy: evaluated at resnet20's levels."""


def _zoo_steps() -> tuple[Step, ...]:
    steps: list[Step] = []
    evaluate = ["--offsets", "0,0.05,0.1,0.2,0.3", "--fresh-per-chip", 4]
    for model, kinds, cal_chips, chips in _ZOO_CALIBRATED:
        steps += [(f"cal-{model}-{name}", lambda r, w, m=model, k=kind, c=cal_chips: [
            "calibrate", m, "--fault", k, "--drop", "1,2,5", "--chips", c, "--iterations", 8,
            "--test-images", 100]) for name, kind, _, _ in kinds]
        steps += [_zoo_fit(model), (f"eval-{model}", lambda r, w, m=model, k=kinds, n=chips: [
            "btv", "evaluate", w / f"{m}.safetensors", "--model", m,
            *_fault_args(r, f"cal-{m}-", k), "--chips", n, *evaluate, "--test-images", 100])]
        if model == "resnet20":  # the unlabelled models take resnet20's levels
            for other in _ZOO_UNLABELLED:
                steps += [_zoo_fit(other), (f"eval-{other}", lambda r, w, m=other: [
                    "btv", "evaluate", w / f"{m}.safetensors", "--model", m,
                    *_fault_args(r, "cal-resnet20-", _BTV_KINDS), "--chips", 100, *evaluate])]
    return tuple(steps)


def _zoo_fit(model: str) -> Step:
    return (f"fit-{model}", lambda r, w: [
        "btv", "fit", model, "-o", w / f"{model}.safetensors", "--false-alarm", 0.01])


# --- egis: paper 2 on resnet20-8 at full size (docs/results-egis.md) --------------------------

_EGIS_SETTINGS = (
    ("typical-2", "egis-typical", 2, "2,4,8,16"),
    ("extreme-2", "egis-extreme", 2, "2,4,8,16"),
    ("typical-1", "egis-typical", 1, "4"),
    ("typical-5", "egis-typical", 5, "4"),
)
"""(name, preset, calibrated drop giving sigma_tot, K values). Extreme variability keeps the
typical sigma_tot and moves variance into the systematic term, as the paper does."""


def _egis_steps(model: str, prefix: str, settings, fit: list, evaluate: list,
                calibrate: list, cutoffs: str = "A50,A60,A70") -> tuple[Step, ...]:
    drops = ",".join(str(d) for d in sorted({s[2] for s in settings if s[1] == "egis-typical"}))
    steps: list[Step] = [(f"cal-{prefix}", lambda r, w: [
        "calibrate", model, "--fault", "egis-typical", "--drop", drops, *calibrate])]
    first = f"{prefix}-{settings[0][0]}"
    for name, preset, drop, ks in settings:
        folder = f"{prefix}-{name}"
        sid = [] if folder == first else ["--sid", f"{first}/sid.safetensors"]
        steps += [
            (f"fit-{folder}", lambda r, w, p=preset, d=drop, k=ks, f=folder, s=sid: [
                "egis", "fit", model, "--fault",
                f"{p}:sigma={calibrated_level(r, f'cal-{prefix}', d):.4g}", "--k", k, "--cutoff", cutoffs, *fit, "--store", w / f"store-{f}",
                "-o", w / f, *s]),
            (f"eval-{folder}", lambda r, w, f=folder: [
                "egis", "evaluate", w / f, "--model", model, "--seed", 1, *evaluate,
                "-o", w / f"eval-{f}.csv", "--plot", w / f"fig5-{f}.png"]),
        ]
    return tuple(steps)


_EGIS_ZOO = {"vgg16": (150, "A50"), "mobilenet-v1": (300, "A50,A60,A70")}
"""The paper's models at 32x32: evaluation chips (VGG-16: 5 ms per forward on one core, so
fewer) and cutoffs, typical variability only (extreme: see resnet20-8). VGG-16 is so robust
on the 200 test images that many chips keep the ideal 99.5 %: A50 = A60 = 99.0 and no chip
is above A70 = 99.5 (measured on the first runs), so A50 is its only cutoff."""
_EGIS_ZOO_SETTINGS = (("typical-2", "egis-typical", 2, "2,4,8,16"),)


def _egis_zoo_steps(model: str) -> tuple[Step, ...]:
    return _egis_steps(
        model, model, _EGIS_ZOO_SETTINGS,
        fit=["--chips", 300, "--images", 256, "--steps", 300, "--test-images", 200],
        evaluate=["--chips", _EGIS_ZOO[model][0], "--test-images", 200],
        calibrate=["--chips", 16, "--iterations", 8, "--test-images", 200],
        cutoffs=_EGIS_ZOO[model][1])


# --- comparison: every method on the same chips (docs/comparison.md) -------------------------

_COMPARISONS = (
    ("r20-typical", "resnet20-8", "egis-typical:sigma", "cal-r20-typical", 1000, 2048),
    ("r20-bitflip", "resnet20-8", "bitflip:p", "cal-r20-bitflip", 1000, 2048),
    ("vgg-typical", "vgg16-8", "egis-typical:sigma", "cal-vgg-typical", 300, 512),
    ("vgg-bitflip", "vgg16-8", "bitflip:p", "cal-vgg-bitflip", 300, 512),
)


def _calibrate(model: str, kind: str, chips: int) -> Callable[[Results, Path], list]:
    return lambda results, workdir: ["calibrate", model, "--fault", kind, "--drop", 2,
                                     "--chips", chips, "--iterations", 10]


def _compare(model: str, spec: str, cal: str, chips: int, images: int):
    return lambda results, workdir: ["compare", model, "--fault",
                                     f"{spec}={calibrated_level(results, cal):.4g}",
                                     "--chips", chips, "--images", images]


def _egis_zoo_figures(model: str) -> tuple[tuple[str, str], ...]:
    first = f"{model}-typical-2"
    return ((f"fig5-{first}.png", f"img/egis-fig5-{model}-typical.png"),
            (f"{first}/entropy.png", f"img/egis-fig3-{model}.png"),
            (f"{first}/A50-k4/images.png", f"img/egis-fig4b-{model}.png"))


def _egis_figures(prefix: str, stem: str) -> tuple[tuple[str, str], ...]:
    first = f"{prefix}-typical-2"
    return ((f"fig5-{first}.png", f"img/egis-fig5-{stem}-typical.png"),
            (f"fig5-{prefix}-extreme-2.png", f"img/egis-fig5-{stem}-extreme.png"),
            (f"{first}/entropy.png", f"img/egis-fig3-{stem}.png"),
            (f"{first}/A50-k4/reward.png", f"img/egis-fig4a-{stem}.png"),
            (f"{first}/A50-k4/images.png", f"img/egis-fig4b-{stem}.png"))


EXPERIMENTS: dict[str, Experiment] = {
    "btv": Experiment(
        "results-btv.md", _btv_steps(),
        partial(render_btv, kinds=[n for n, *_ in _BTV_KINDS], sweep=[n for n, _ in _BTV_SWEEP]),
        blocks=("btv-levels", "btv-coverage", "btv-verifiable", "btv-offsets", "btv-harm",
                "btv-layers", "btv-fa", "btv-sweep", "btv-fit")),
    "btv-zoo": Experiment(
        "results-btv.md", _zoo_steps(),
        partial(render_zoo, calibrated={m: [n for n, *_ in kinds] for m, kinds, *_ in
                                        _ZOO_CALIBRATED}, unlabelled=_ZOO_UNLABELLED),
        blocks=("zoo-levels", "zoo-coverage", "zoo-verifiable", "zoo-fa", "zoo-harm",
                "zoo-fit")),
    "egis": Experiment(
        "results-egis.md",
        _egis_steps("resnet20-8", "r20", _EGIS_SETTINGS,
                    fit=["--chips", 1000, "--images", 2048, "--steps", 5000],
                    evaluate=["--chips", 1000],
                    calibrate=["--chips", 64, "--iterations", 10]),
        partial(render_egis, settings=[(n, d) for n, _, d, _ in _EGIS_SETTINGS]),
        blocks=("egis-typical", "egis-extreme", "egis-drops", "egis-fits"),
        figures=_egis_figures("r20", "r20")),
    **{f"egis-{model}": Experiment(
        "results-egis.md", _egis_zoo_steps(model), render_egis_zoo(model),
        blocks=(f"{model}-typical-2", f"{model}-fits"),
        figures=_egis_zoo_figures(model)) for model in _EGIS_ZOO},
    "comparison": Experiment(
        "comparison.md",
        tuple((cal, _calibrate(model, spec.split(":")[0], 64 if chips > 300 else 32))
              for _, model, spec, cal, chips, _ in _COMPARISONS) +
        tuple((name, _compare(model, spec, cal, chips, images))
              for name, model, spec, cal, chips, images in _COMPARISONS),
        partial(render_comparison, names=[name for name, *_ in _COMPARISONS]),
        blocks=tuple(name for name, *_ in _COMPARISONS) + ("levels",)),
}
"""Every reproducible experiment by name."""
