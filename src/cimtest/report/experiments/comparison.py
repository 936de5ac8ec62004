"""The comparison's experiment (docs/comparison.md): every method on the same chips.
Budget on the 2-core reference machine: ~45 min on two threads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from cimtest.report.experiments.base import Experiment, Results, calibrated_level

__all__ = ["EXPERIMENTS"]


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


def render_comparison(results: Results, names: Sequence[str]) -> dict[str, str]:
    """One table per comparison in `names` (every method on the same chips), and levels."""
    blocks = {}
    for name in names:
        lines = [("| method | TA | TE | YL | CTE | BTE | coverage | false alarm | AUC | "
                 "test bytes | forwards | needs | fit s |"), "|" + "---|" * 13]
        for r in results[name]:
            lines.append(f"| {r['method']} | " + " | ".join(f"{r[k]:.1f}" for k in (
                "ta", "te", "yl", "cte", "bte", "coverage", "false_alarm")) +
                f" | {r['auc']:.3f} | {r['test_bytes']:,} | {r['forward_passes']} | "
                f"{', '.join(r['needs'][1:]) or 'model only'} | {r['fit_s']:.1f} |")
        blocks[name] = "\n".join(lines)
    levels = [f"`{name}`: {calibrated_level(results, 'cal-' + name):.4g}" for name in names]
    blocks["levels"] = "Calibrated levels (2-point mean drop): " + ", ".join(levels) + "."
    return blocks


EXPERIMENTS: dict[str, Experiment] = {
    "comparison": Experiment(
        "comparison.md",
        tuple((cal, _calibrate(model, spec.split(":")[0], 64 if chips > 300 else 32))
              for _, model, spec, cal, chips, _ in _COMPARISONS) +
        tuple((name, _compare(model, spec, cal, chips, images))
              for name, model, spec, cal, chips, images in _COMPARISONS),
        partial(render_comparison, names=[name for name, *_ in _COMPARISONS]),
        blocks=tuple(name for name, *_ in _COMPARISONS) + ("levels",)),
}
