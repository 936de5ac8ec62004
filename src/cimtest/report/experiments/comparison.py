"""The comparison's experiments (docs/comparison.md): every method on the same chips.
Budgets on the 2-core reference machine, one torch thread: ``comparison`` (ResNet-20, with
the learned tests) ~30 min of one core (64 min wall at a third to two thirds of a core,
load average 5-6); ``comparison-vgg`` (VGG-16) ~3.5 h, of which its typical-RRAM setting
took 115 min on two torch threads; ``comparison-mnist1d`` (the precise truth, 150,000 test
samples per chip) ~2 h on two threads, an hour per comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from cimtest.report.experiments.base import Experiment, Results, Step, calibrated_level
from cimtest.report.markdown import best_method, p_vs_best, ta_band, tie_note

__all__ = ["EXPERIMENTS"]


# --- comparison: every method on the same chips (docs/comparison.md) -------------------------

_COMPARISONS = (
    ("r20-typical", "resnet20-8", "egis-typical:sigma", "cal-r20-typical", 1000, 2048, True),
    ("r20-bitflip", "resnet20-8", "bitflip:p", "cal-r20-bitflip", 1000, 2048, True),
)
"""(name, model, fault, calibration step, D = E chips, EGIS images N, with the learned tests)."""
_VGG_COMPARISONS = (
    ("vgg-typical", "vgg16-8", "egis-typical:sigma", "cal-vgg-typical", 1000, 512, True),
    ("vgg-bitflip", "vgg16-8", "bitflip:p", "cal-vgg-bitflip", 1000, 512, True),
)
"""VGG-16 at the learned tests' full scale (a typical-RRAM VGG-16 chip takes ~0.9 s to draw
on one core, mostly its correlated field, so that setting is the longest: 20 min to
calibrate and 94 min to compare on two torch threads)."""


_MNIST1D = (
    ("m1d-typical", "egis-typical:sigma", "cal-m1d-typical", 10_000, "{:.4g}"),
    ("m1d-bitflip", "bitflip:p", "cal-m1d-bitflip", 20_000, "{!r}"),
)
"""The precise truth (issue 28): cnn-mnist1d on 150,000 test samples per chip, 1,000 + 1,000
chips, K = 4, with the learned tests: (name, fault, calibration step, samples the calibration
runs on, how the level is written into the spec)."""


def _mnist1d_steps() -> tuple[Step, ...]:
    """Each fault's calibration on a smaller truth, then its comparison on the full one."""
    def calibrate(kind: str, samples: int) -> Callable[[Results, Path], list]:
        return lambda results, workdir: ["calibrate", "cnn-mnist1d", "--fault", kind,
                                         "--drop", 2, "--test-images", samples]

    def compare(spec: str, cal: str, written: str) -> Callable[[Results, Path], list]:
        return lambda results, workdir: [
            "compare", "cnn-mnist1d", "--fault",
            f"{spec}={written.format(calibrated_level(results, cal))}", "--chips", 1000,
            "--eval-chips", 1000, "--k", 4, "--learned"]

    return (tuple((cal, calibrate(spec.split(":")[0], n)) for _, spec, cal, n, _ in _MNIST1D)
            + tuple((name, compare(spec, cal, written))
                    for name, spec, cal, _, written in _MNIST1D))


def _calibrate(model: str, kind: str, chips: int) -> Callable[[Results, Path], list]:
    return lambda results, workdir: ["calibrate", model, "--fault", kind, "--drop", 2,
                                     "--chips", chips, "--iterations", 10]


def _compare(model: str, spec: str, cal: str, chips: int, images: int, learned: bool):
    return lambda results, workdir: ["compare", model, "--fault",
                                     f"{spec}={calibrated_level(results, cal):.4g}",
                                     "--chips", chips, "--images", images,
                                     *(["--learned"] if learned else [])]


def _steps(comparisons: Sequence[tuple]) -> tuple[Step, ...]:
    """Each setting's calibration, then each setting's comparison at its level."""
    return (tuple((cal, _calibrate(model, spec.split(":")[0], 64 if chips > 300 else 32))
                  for _, model, spec, cal, chips, *_ in comparisons) +
            tuple((name, _compare(model, spec, cal, chips, images, learned))
                  for name, model, spec, cal, chips, images, learned in comparisons))


def _optional(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render_comparison(results: Results, names: Sequence[str], levels: str) -> dict[str, str]:
    """One table per comparison in `names` (every method on the same chips, TA with its 95 %
    interval and McNemar's p-value against the best, the truth's ceiling and the training
    chips' pass share) with the footnote of its tie mark, and their levels in block
    `levels`."""
    blocks = {}
    for name in names:
        rows = results[name]
        best = best_method(rows)
        lines = [("| method | TA (95 % CI) | p vs best | ceiling | TE | YL | CTE | BTE | "
                  "coverage | false alarm | AUC | accuracy RMSE | pass % | test bytes | "
                  "forwards | needs | fit s |"),
                 "|" + "---|" * 17]
        for r in rows:
            lines.append(
                f"| {r['method']} | {ta_band(r)} | {p_vs_best(r, best)} | "
                f"{r['ceiling']:.1f} | " + " | ".join(
                    f"{r[k]:.1f}" for k in ("te", "yl", "cte", "bte", "coverage",
                                            "false_alarm")) +
                f" | {r['auc']:.3f} | {_optional(r.get('accuracy_rmse'), 2)} | "
                f"{100 * r['pass_fraction']:.1f} | {r['test_bytes']:,} | "
                f"{r['forward_passes']} | {', '.join(r['needs'][1:]) or 'model only'} | "
                f"{r['fit_s']:.1f} |")
        if note := tie_note(rows):
            lines += ["", note + "."]
        blocks[name] = "\n".join(lines)
    found = [f"`{name}`: {calibrated_level(results, 'cal-' + name):.4g}" for name in names]
    blocks[levels] = "Calibrated levels (2-point mean drop): " + ", ".join(found) + "."
    return blocks


def _experiment(comparisons: Sequence[tuple], levels: str) -> Experiment:
    names = [name for name, *_ in comparisons]
    return Experiment("comparison.md", _steps(comparisons),
                      partial(render_comparison, names=names, levels=levels),
                      blocks=(*names, levels))


EXPERIMENTS: dict[str, Experiment] = {
    "comparison": _experiment(_COMPARISONS, "levels"),
    "comparison-vgg": _experiment(_VGG_COMPARISONS, "vgg-levels"),
    "comparison-mnist1d": Experiment(
        "comparison.md", _mnist1d_steps(),
        partial(render_comparison, names=[n for n, *_ in _MNIST1D], levels="m1d-levels"),
        blocks=(*(n for n, *_ in _MNIST1D), "m1d-levels")),
}
