"""Transfer across physics (docs/physics.md): tests fitted on one simulator's chips, scored on
chips of another. Every method is fitted once per training physics and scored on evaluation
populations of each other physics (`cimtest compare --eval-fault`, repeated). Budget on the
2-core reference machine: ``physics`` ~1 h on two threads (`cnn-mnist1d` on 20,000 test
samples per chip, 300 + 300 chips; `resnet20-8` on the 540 test digits, 100 + 100 chips)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cimtest.report.experiments.base import Experiment, Results, Step, calibrated_level

__all__ = ["EXPERIMENTS"]

HOUR, DAY, YEAR = 3600, 86_400, 31_536_000

AIHWKIT = (
    ("PCM 1 h", f"aihwkit-pcm:t={HOUR}"),
    ("PCM 1 d", f"aihwkit-pcm:t={DAY}"),
    ("PCM 1 y", f"aihwkit-pcm:t={YEAR}"),
    ("PCM 1 h, GDC", f"aihwkit-pcm:t={HOUR},compensation=global"),
    ("PCM 1 d, GDC", f"aihwkit-pcm:t={DAY},compensation=global"),
    ("PCM 1 y, GDC", f"aihwkit-pcm:t={YEAR},compensation=global"),
    ("ReRAM 1 d", f"aihwkit-reram:t={DAY}"),
)
"""aihwkit's physics the cimtest-fitted tests are scored on (label, spec); GDC: global drift
compensation."""

_MODELS = (
    ("m1d", "cnn-mnist1d", ("--test-images", 20_000), 300,
     (("typical", "egis-typical", "{:.4g}", ("--test-images", 10_000)),
      ("bitflip", "bitflip", "{!r}", ("--test-images", 20_000)))),
    ("r20", "resnet20-8", (), 100,
     (("typical", "egis-typical", "{:.4g}", ("--chips", 64, "--iterations", 10)),
      ("bitflip", "bitflip", "{:.4g}", ("--chips", 64, "--iterations", 10)))),
)
"""(prefix, model, truth options, D = E chips, cimtest physics: (name, kind, level format,
calibration options)); the levels are those of `comparison-mnist1d` and `comparison`."""

_LEVEL = {"egis-typical": "sigma", "bitflip": "p"}


def _spec(results: Results, prefix: str, name: str, kind: str, written: str) -> str:
    level = calibrated_level(results, f"cal-{prefix}-{name}")
    return f"{kind}:{_LEVEL[kind]}={written.format(level)}"


def _steps() -> tuple[Step, ...]:
    """Per model: calibrate each cimtest physics to a 2-point drop; fit on each and score on
    aihwkit's; fit on aihwkit's PCM (1 day, global drift compensation: uncompensated, every
    chip of a BatchNorm model is at chance and pass/fail cannot be learnt) and ReRAM and
    score on cimtest's."""
    steps: list[Step] = []
    for prefix, model, truth, chips, physics in _MODELS:
        common = (*truth, "--chips", chips, "--eval-chips", chips)
        for name, kind, _, options in physics:
            steps.append((f"cal-{prefix}-{name}", _calibrate(model, kind, options)))
        for name, kind, written, _ in physics:
            steps.append((f"{prefix}-from-{name}",
                          _from_cimtest(model, common, (prefix, name, kind, written))))
        for label, spec in (("pcm", f"aihwkit-pcm:t={DAY},compensation=global"),
                            ("reram", f"aihwkit-reram:t={DAY}")):
            steps.append((f"{prefix}-from-{label}",
                          _from_aihwkit(model, common, spec, prefix, physics)))
    return tuple(steps)


def _calibrate(model: str, kind: str, options: tuple) -> Callable[[Results, Path], list]:
    return lambda results, workdir: ["calibrate", model, "--fault", kind, "--drop", 2, *options]


def _from_cimtest(model: str, common: tuple, source: tuple) -> Callable[[Results, Path], list]:
    """Fit on a calibrated cimtest physics; score on it and on every aihwkit physics."""
    def command(results: Results, workdir: Path) -> list:
        spec = _spec(results, *source)
        return ["compare", model, "--fault", spec, *common, "--eval-fault", spec,
                *[a for _, other in AIHWKIT for a in ("--eval-fault", other)]]
    return command


def _from_aihwkit(model: str, common: tuple, spec: str, prefix: str,
                  physics: tuple) -> Callable[[Results, Path], list]:
    """Fit on an aihwkit physics; score on it and on every calibrated cimtest physics."""
    def command(results: Results, workdir: Path) -> list:
        others = [_spec(results, prefix, n, k, f) for n, k, f, _ in physics]
        return ["compare", model, "--fault", spec, *common, "--eval-fault", spec,
                *[a for other in others for a in ("--eval-fault", other)]]
    return command


def render_physics(results: Results) -> dict[str, str]:
    """One block per (model, training physics): TA of every method (rows) on each evaluation
    physics (columns), under the populations' pass share and mean accuracy."""
    blocks = {}
    for prefix, _, _, _, physics in _MODELS:
        sources = [name for name, *_ in physics] + ["pcm", "reram"]
        for source in sources:
            step = f"{prefix}-from-{source}"
            blocks[step] = _matrix(results[step])
    return blocks


def _matrix(rows: Sequence[dict]) -> str:
    """TA table: methods × evaluation physics (the first column is the training physics)."""
    faults = list(dict.fromkeys(r["eval_fault"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["eval_fault"]): r for r in rows}
    labels = {spec: label for label, spec in AIHWKIT}
    head = [labels.get(f, f"`{f}`") for f in faults]
    first = {f: next(r for r in rows if r["eval_fault"] == f) for f in faults}
    lines = ["| | " + " | ".join(head) + " |", "|---|" + "---|" * len(faults),
             "| chips passing A_cutoff | " + " | ".join(
                 f"{100 * first[f]['eval_pass_fraction']:.1f} %" for f in faults) + " |",
             "| mean accuracy | " + " | ".join(
                 f"{first[f]['eval_accuracy_mean']:.2f} %" for f in faults) + " |",
             "| truth's ceiling | " + " | ".join(
                 f"{first[f]['ceiling']:.1f} %" for f in faults) + " |"]
    for method in methods:
        values = []
        for f in faults:
            r = cell[(method, f)]
            mark = "**" if r["best"] else ""
            tie = "†" if r["tied_with_best"] and not r["best"] else ""
            values.append(f"{mark}{r['ta']:.1f}{mark}{tie}")
        lines.append(f"| {method} | " + " | ".join(values) + " |")
    return "\n".join(lines)


_BLOCKS = tuple(f"{prefix}-from-{source}" for prefix, _, _, _, physics in _MODELS
                for source in [*(n for n, *_ in physics), "pcm", "reram"])

EXPERIMENTS: dict[str, Experiment] = {
    "physics": Experiment("physics.md", _steps(), render_physics, blocks=_BLOCKS),
}
