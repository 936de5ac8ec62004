"""The monitor's report: accuracy and flags against log time, and a sample of chips' lives,
in the comparison report's page (`cimtest.report.html`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cimtest.faults.durations import format_duration
from cimtest.report.figures import figure, png
from cimtest.report.html import image_part, note_part, render_page, write_page

__all__ = ["field_curves", "render_field_report", "trajectories", "write_field_report"]

SAMPLE = 24
"""Chips drawn in the trajectories' plot (the first ones: chip indices are exchangeable)."""


def field_curves(rows: list[dict], max_drop: float, ideal: float) -> bytes:
    """Left: mean and 5th-percentile accuracy, and the failing line. Right: the shares
    failing, flagged, and flagged while passing, with their 95 % intervals."""
    fig, axes = figure(width=11.0, height=4.0, columns=2)
    t = np.array([r["t"] for r in rows])
    left, right = axes[0]
    left.plot(t, [_value(r["accuracy_mean"]) for r in rows], "o-", label="mean")
    left.plot(t, [_value(r["accuracy_p5"]) for r in rows], "s--", label="5th percentile")
    left.axhline(ideal - max_drop, color="grey", linestyle=":", label="failing below")
    left.set(ylabel="accuracy (%)")
    _time_axis(left, t)
    left.legend()
    for key, label in (("failing", "failing"), ("flagged", "flagged"),
                       ("false_alarms", "flagged while passing")):
        share = [r[key] for r in rows]
        mid = np.array([np.nan if s is None else 100 * s["share"] for s in share])
        low = np.array([np.nan if s is None else 100 * s["interval"][0] for s in share])
        high = np.array([np.nan if s is None else 100 * s["interval"][1] for s in share])
        right.plot(t, mid, "o-", label=label)
        right.fill_between(t, low, high, alpha=0.2)
    right.set(ylabel="chips (%)", ylim=(-2, 102))
    _time_axis(right, t)
    right.legend()
    return png(fig)


def trajectories(frame: pd.DataFrame, max_drop: float, ideal: float) -> bytes:
    """Accuracy of `SAMPLE` chips at each retest; a cross where the test flagged it."""
    fig, axes = figure(width=7.0, height=4.5)
    ax = axes[0][0]
    for _, rows in frame[frame["chip"] < SAMPLE].groupby("chip"):
        line = ax.plot(rows["t"], rows["accuracy"], "-", alpha=0.6, linewidth=1)[0]
        hit = rows[rows["flagged"]]
        ax.plot(hit["t"], hit["accuracy"], "x", color=line.get_color())
    ax.axhline(ideal - max_drop, color="grey", linestyle=":")
    ax.set(ylabel="accuracy (%)", title=f"{SAMPLE} chips (x: flagged)")
    _time_axis(ax, np.unique(frame["t"].to_numpy()))
    return png(fig)


def _time_axis(ax, times: np.ndarray) -> None:
    """A log time axis ticked at the retest times, in the units ``--at`` writes."""
    ax.set(xscale="log", xlabel="time since programming")
    ax.set_xticks(times, [format_duration(t) for t in times])
    ax.minorticks_off()


def render_field_report(document: dict, frame: pd.DataFrame) -> str:
    """The report as an HTML string."""
    ideal, drop = document["ideal_accuracy"], document["max_drop"]
    setup = [(key, document[key]) for key in ("test", "model", "fault", "chips", "seed",
                                               "data", "test_images", "max_drop", "remedy",
                                               "compensation", "ideal_accuracy")]
    head = ["t (s)", "chips", "accuracy", "failing", "flagged", "false alarms", "remedied",
            "replaced"]
    table = [[f"{r['t']:.6g}", r["chips"], _fmt(r["accuracy_mean"]), _share(r["failing"]),
              _share(r["flagged"]), _share(r["false_alarms"]), _share(r["remedied"]),
              _share(r["replaced"])] for r in document["rows"]]
    lat, alarms = document["latency"], document["false_alarms"]
    sections = [
        ("setup", "Setup", [{"kind": "pairs", "pairs": setup}]),
        ("times", "At each retest", [
            {"kind": "grid", "head": head, "rows": table},
            image_part(field_curves(document["rows"], drop, ideal)),
            note_part("Failing: more than max_drop points below the ideal chip. False alarms: "
                  "passing chips flagged, as a share of the passing chips.")]),
        ("chips", "Chips over their life", [image_part(trajectories(frame, drop, ideal))]),
        ("detection", "Detection and false alarms", [{"kind": "pairs", "pairs": [
            ("chips that failed", lat["failed"]), ("flagged at or after failing",
                                                   lat["detected"]),
            ("never flagged", lat["missed"]),
            ("median latency (s)", _fmt(lat["latency_median_s"])),
            ("false alarms per chip-year", _fmt(alarms["per_chip_year"])),
            ("95 % interval", " - ".join(_fmt(v) for v in alarms["interval"]))]}]),
    ]
    return render_page(f"cimtest monitor: {document['test']} on {document['model']}",
                       sections)


def write_field_report(document: dict, frame: pd.DataFrame, path: str | Path) -> Path:
    """Render and write the report to `path` atomically."""
    return write_page(render_field_report(document, frame), path)


def _value(value: float | None) -> float:
    return np.nan if value is None else value


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _share(share: dict | None) -> str:
    return "-" if share is None else f"{100 * share['share']:.1f} %"
