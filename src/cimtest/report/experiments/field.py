"""Which test lasts (docs/field.md): tests fitted on programmed chips (t = 0) for the field's
specification (a chip fails more than 2 points below the ideal chip), then retested by
`cimtest monitor` on other chips as they age a year under PCM-like drift and retention, with
and without global drift compensation, and paper 1's online flow (the Bayesian vector and
EGIS, with re-calibration or re-programming). Budget on the 2-core reference machine: ``field``
~1 h on two threads (`resnet20-8` on the 540 test digits, `cnn-mnist1d` on 10,000 test
samples per chip; 300 training and 200 monitored chips each)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cimtest.faults.durations import format_duration
from cimtest.report.experiments.base import Experiment, Results, Step, calibrated_level
from cimtest.report.markdown import rows_table

__all__ = ["EXPERIMENTS"]

TIMES = "1h,1d,1w,1mo,1y"
"""Retest times after programming."""

AGING = "drift+retention"
"""What ages: drift with aihwkit's PCM exponent (ν 0.06 ± 0.02) and retention at 25 °C, at
their documented defaults (docs/faults.md)."""

TESTS = ("btv", "egis", "optimized", "learned", "dataset-aware")
"""The tests monitored: paper 1's vector, paper 2's images, the two learned tests and the
dataset-aware baseline (the one that uses real images)."""

FLOW = ("recalibrate", "reprogram")
"""Paper 1's online flow on compensated chips, each remedy."""

FLOW_TESTS = ("btv", "egis")
"""The tests run in the online flow: paper 1's vector and paper 2's images."""

MAX_DROP = 2
"""The field's specification: a chip fails when it is more than this many points below the
ideal chip. The tests are fitted for it (``--cutoff D2``) and the monitor judges by it."""

_MODELS = (
    ("r20", "resnet20-8", (), ("--chips", 64, "--iterations", 10)),
    ("m1d", "cnn-mnist1d", ("--test-images", 10_000), ("--test-images", 10_000)),
)
"""(prefix, model, truth options, calibration options)."""

TRAIN, MONITORED = 300, 200


def _steps() -> tuple[Step, ...]:
    """Per model: the typical-RRAM level of a 2-point drop; every test fitted on programmed
    chips (`compare -o RUN --learned`); each test monitored, uncompensated and compensated;
    the online flow with each remedy."""
    steps: list[Step] = []
    for prefix, model, truth, calibration in _MODELS:
        steps.append((f"cal-{prefix}", _fixed(["calibrate", model, "--fault", "egis-typical",
                                               "--drop", 2, *calibration])))
        steps.append((f"fit-{prefix}", _fit(prefix, model, truth)))
        for test in TESTS:
            for compensation in ("none", "gdc"):
                steps.append((f"{prefix}-{test}-{compensation}",
                              _monitor(prefix, test, truth, compensation, "none")))
        for test in FLOW_TESTS:
            for remedy in FLOW:
                steps.append((f"{prefix}-{test}-{remedy}",
                              _monitor(prefix, test, truth, "gdc", remedy)))
    return tuple(steps)


def _fixed(args: list) -> Callable[[Results, Path], list]:
    return lambda results, workdir: args


def _level(results: Results, prefix: str) -> str:
    return f"egis-typical:sigma={calibrated_level(results, f'cal-{prefix}'):.4g}"


def _fit(prefix: str, model: str, truth: tuple) -> Callable[[Results, Path], list]:
    def command(results: Results, workdir: Path) -> list:
        return ["compare", model, "--fault", _level(results, prefix), *truth, "--chips",
                TRAIN, "--eval-chips", MONITORED, "--k", 4, "--cutoff", f"D{MAX_DROP}",
                "--learned", "-o", workdir / f"{prefix}-run"]
    return command


def _monitor(prefix: str, test: str, truth: tuple, compensation: str, remedy: str
             ) -> Callable[[Results, Path], list]:
    def command(results: Results, workdir: Path) -> list:
        return ["monitor", workdir / f"{prefix}-run" / "tests" / f"{test}.safetensors",
                "--fault", f"{_level(results, prefix)}+{AGING}", "--at", TIMES, *truth,
                "--chips", MONITORED, "--max-drop", MAX_DROP, "--compensate", compensation,
                "--remedy", remedy]
    return command


def render_field(results: Results) -> dict[str, str]:
    """Per model and compensation, the tests' flags at each time under the population's
    state; per model, the online flow of each flow test and remedy."""
    blocks = {}
    for prefix, *_ in _MODELS:
        for compensation in ("none", "gdc"):
            blocks[f"{prefix}-{compensation}"] = _tests_table(
                [results[f"{prefix}-{test}-{compensation}"] for test in TESTS])
        blocks[f"{prefix}-flow"] = _flow_table(
            {f"{test}, {remedy}": results[f"{prefix}-{test}-{remedy}"]
             for test in FLOW_TESTS for remedy in FLOW})
    return blocks


def _pct(share: dict | None) -> str:
    return "-" if share is None else f"{100 * share['share']:.1f} %"


def _accuracy(value: float | None) -> str:
    """A mean accuracy; ``-`` where no chip was left in service."""
    return "-" if value is None else f"{value:.2f} %"


def _rate(alarms: dict) -> str:
    """False alarms per chip-year with their 95 % interval."""
    if alarms["per_chip_year"] is None:
        return "-"
    low, high = alarms["interval"]
    return f"{alarms['per_chip_year']:.2f} ({low:.2f}-{high:.2f})"


def _tests_table(documents: Sequence[dict]) -> str:
    """Times as columns: the population (mean accuracy, share failing), then each test's
    share flagged with, in brackets, its false alarms (passing chips flagged); then the
    failing chips it never flagged and its false alarms per chip-year."""
    population = documents[0]["rows"]
    rows = {"mean accuracy": {format_duration(r["t"]): _accuracy(r["accuracy_mean"])
                              for r in population},
            "chips failing": {format_duration(r["t"]): _pct(r["failing"]) for r in population}}
    for doc in documents:
        lat = doc["latency"]
        rows[doc["test"]] = {
            **{format_duration(r["t"]): f"{_pct(r['flagged'])} ({_pct(r['false_alarms'])})"
               for r in doc["rows"]},
            "missed": f"{lat['missed']} of {lat['failed']}",
            "false alarms per chip-year": _rate(doc["false_alarms"])}
    return rows_table(rows, "")


def _flow_table(documents: dict[str, dict]) -> str:
    """Per test and remedy, and time: chips in service, failing, flagged, remedied, their
    accuracy after it, re-verified and replaced."""
    rows = {}
    for remedy, doc in documents.items():
        for r in doc["rows"]:
            rows[f"{remedy}, {format_duration(r['t'])}"] = {
                "chips": str(r["chips"]), "mean accuracy": _accuracy(r["accuracy_mean"]),
                "failing": _pct(r["failing"]), "flagged": _pct(r["flagged"]),
                "remedied": _pct(r["remedied"]),
                "accuracy after": _accuracy(r["accuracy_after_mean"]),
                "re-verified": _pct(r["reverified"]), "replaced": _pct(r["replaced"])}
    return rows_table(rows, "test, remedy, t")


_BLOCKS = tuple(f"{prefix}-{kind}" for prefix, *_ in _MODELS for kind in ("none", "gdc", "flow"))

EXPERIMENTS: dict[str, Experiment] = {
    "field": Experiment("field.md", _steps(), render_field, blocks=_BLOCKS),
}
