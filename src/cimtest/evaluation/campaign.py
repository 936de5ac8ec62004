"""What a campaign measured, summarised: the distribution of its chips' accuracy."""

from __future__ import annotations

import numpy as np

__all__ = ["PERCENTILES", "accuracy_distribution", "campaign_summary"]

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
"""Percentiles of chip accuracy a summary reports."""


def accuracy_distribution(accuracy: np.ndarray) -> dict[str, float]:
    """A population's chip accuracy (percent) in flat, JSON-safe keys for a table row: mean,
    sd and the 5th, 50th and 95th percentiles, so a reader sees how spread the chips are."""
    accuracy = np.asarray(accuracy, dtype=np.float64)
    p5, p50, p95 = np.percentile(accuracy, (5, 50, 95))
    return {"accuracy_mean": float(accuracy.mean()),
            "accuracy_sd": float(accuracy.std(ddof=1)) if accuracy.size > 1 else 0.0,
            "accuracy_p5": float(p5), "accuracy_p50": float(p50), "accuracy_p95": float(p95)}


def campaign_summary(accuracy: np.ndarray, ideal: float, seconds: float) -> dict:
    """A campaign's chips in one JSON-safe dict: mean, sd, extremes, percentiles and a
    10-bin histogram of their accuracy (percent), with the campaign's speed."""
    counts, edges = np.histogram(accuracy, bins=10)
    return {
        "chips": int(accuracy.size),
        "ideal_accuracy": ideal,
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_sd": accuracy_distribution(accuracy)["accuracy_sd"],
        "accuracy_min": float(accuracy.min()),
        "accuracy_max": float(accuracy.max()),
        "percentiles": {str(p): float(np.percentile(accuracy, p)) for p in PERCENTILES},
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        "seconds": seconds,
        "chips_per_s": accuracy.size / seconds if seconds > 0 else None,
    }
