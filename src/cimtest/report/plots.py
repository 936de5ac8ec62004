"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

from cimtest.report.figures import figure, png

__all__ = [
    "accuracy_histograms",
    "btv_output_spreads",
    "entropy_curves",
    "flag_rate_curves",
    "image_grid",
    "reward_curve",
    "roc_curves",
    "test_metrics_by_k",
    "write_egis_figures",
]


def roc_curves(roc: dict[str, dict], aucs: dict[str, float]) -> bytes:
    """Every method's ROC curve (positive = the chip truly fails) in one plot."""
    fig, ((ax,),) = figure(6.0, 5.0)
    for name, curve in roc.items():
        ax.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {aucs[name]:.3f})", lw=1.5)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set(xlabel="false-positive rate (passing chips flagged)",
           ylabel="true-positive rate (failing chips flagged)", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=7, loc="lower right")
    return png(fig)


def accuracy_histograms(train: list[float], evaluation: list[float], cutoff: float,
                        ideal: float) -> bytes:
    """Accuracy histograms of the training and evaluation chips, with A_cutoff and the ideal."""
    fig, ((ax,),) = figure()
    values = np.concatenate([train, evaluation])
    bins = np.linspace(values.min(), max(values.max(), ideal) + 1e-9, 40)
    ax.hist(train, bins=bins, alpha=0.55, label=f"training chips ({len(train)})")
    ax.hist(evaluation, bins=bins, alpha=0.55, label=f"evaluation chips ({len(evaluation)})")
    ax.axvline(cutoff, color="black", ls="--", lw=1, label=f"A_cutoff {cutoff:.2f} %")
    ax.axvline(ideal, color="green", ls=":", lw=1, label=f"ideal chip {ideal:.2f} %")
    ax.set(xlabel="accuracy (%)", ylabel="chips")
    ax.legend(fontsize=8)
    return png(fig)


def flag_rate_curves(rates: dict[str, list], edges: list) -> bytes:
    """Per method, the percent of chips flagged against the chip's accuracy drop."""
    fig, ((ax,),) = figure()
    labels = [_bin_label(lo, hi) for lo, hi in pairwise(edges)]
    x = np.arange(len(labels))
    for name, values in rates.items():
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(x, y, marker="o", label=name, lw=1.2)
    ax.set_xticks(x, labels)
    ax.set(xlabel="accuracy drop of the chip below the ideal chip (points)",
           ylabel="chips flagged (%)", ylim=(-2, 102))
    ax.legend(fontsize=7)
    return png(fig)


def entropy_curves(curve: list[list[float]]) -> bytes:
    """H_c and H_s of the EGIS generator's batches at each training step (paper 2 Fig. 3)."""
    data = np.asarray(curve)
    fig, ((ax,),) = figure(6.0, 3.5)
    ax.plot(data[:, 0], label="H_c (mean per-image entropy)")
    ax.plot(data[:, 1], label="H_s (entropy of the mean prediction)")
    ax.set(xlabel="generator step", ylabel="entropy (nats)")
    ax.legend(fontsize=8)
    return png(fig)


def reward_curve(curve: list[list[float]]) -> bytes:
    """The annealing's new and best reward per iteration, temperature on the right."""
    data = np.asarray(curve)
    fig, ((ax,),) = figure(6.0, 3.5)
    ax.plot(data[:, 1], lw=0.8, label="reward of the proposed set")
    ax.plot(data[:, 2], lw=1.5, label="best reward")
    ax.set(xlabel="iteration", ylabel="mean validation accuracy (%)")
    right = ax.twinx()
    right.plot(data[:, 0], color="grey", ls=":", lw=1)
    right.set_ylabel("temperature")
    ax.legend(fontsize=8, loc="lower right")
    return png(fig)


def image_grid(images: torch.Tensor, titles: list[str], cmap: str = "gray") -> bytes:
    """Images (N, C, H, W) in rows of at most 8, each scaled to its own range; inputs (N, C, L)
    or (N, F) are drawn as one curve per channel."""
    n = len(images)
    columns, rows = min(n, 8), -(-n // 8)
    fig, axes = figure(1.8 * columns, 2.1 * rows, columns=columns, rows=rows)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles, strict=False):
        data = image.float().numpy()
        if data.ndim < 3:
            for channel in data.reshape(-1, data.shape[-1]):
                ax.plot(channel, lw=0.8)
            ax.set_title(title, fontsize=8)
            ax.set_yticks([])
            continue
        data = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)
        low, high = float(data.min()), float(data.max())
        data = (data - low) / (high - low) if high > low else np.zeros_like(data)
        ax.imshow(data, cmap=cmap if data.ndim == 2 else None, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return png(fig)


TEST_METRICS = ("ta", "te", "yl", "cte", "bte")
"""Paper 2's test metrics, in its Fig. 5 order."""


def test_metrics_by_k(rows: list[dict]) -> bytes:
    """Paper 2 Fig. 5: TA, TE, YL, CTE and BTE (percent) against K, one panel per cutoff."""
    cutoffs = list(dict.fromkeys(str(r["cutoff"]) for r in rows))
    fig, axes = figure(4.2 * len(cutoffs), 3.6, columns=len(cutoffs))
    for ax, cutoff in zip(axes[0], cutoffs, strict=True):
        mine = sorted((r for r in rows if str(r["cutoff"]) == cutoff), key=lambda r: r["k"])
        ks = [r["k"] for r in mine]
        width = 0.8 / len(TEST_METRICS)
        for i, metric in enumerate(TEST_METRICS):
            bars = ax.bar(np.arange(len(ks)) + (i - 2) * width, [r[metric] for r in mine],
                          width, label=metric.upper())
            if metric == "ta":
                ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(np.arange(len(ks)), [f"K={k}" for k in ks])
        ax.set_ylabel("percent of chips")
        ax.set_ylim(0, 118)
        ax.set_title(cutoff)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=5, loc="upper center")
    return png(fig)


def _bin_label(low: float | None, high: float | None) -> str:
    if low is None:
        return f"< {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"{low:g}-{high:g}"


def write_egis_figures(folder: Path, members: dict) -> None:
    """Paper 2's Fig. 3 (entropy curve, from the shared generator) into `folder`, and per
    member (by folder name) Fig. 4a (the annealing's reward curve) and 4b (the chosen
    images)."""
    first = next(iter(members.values()))
    (folder / "entropy.png").write_bytes(entropy_curves(first.entropy_curve_.tolist()))
    for name, test in members.items():
        (folder / name / "reward.png").write_bytes(reward_curve(test.reward_curve_.tolist()))
        titles = [f"SID {i}" for i in test.chosen_.tolist()]
        (folder / name / "images.png").write_bytes(image_grid(test.images_, titles))


def btv_output_spreads(data: dict) -> bytes:
    """Paper 1 Figs. 3-4: per input (the vector, then real images) the ideal chip's output
    values, and σ_y across the chips of each level beside the ideal chip's, per fault kind.

    `data` is `cimtest.evaluation.output_spreads`; one row of panels per input, each with
    its own scale, since a real image's σ_y on the ideal chip is many times the vector's
    (logarithmic where a panel spans more than a factor of 10).
    """
    kinds = list(dict.fromkeys(level["fault"] for level in data["levels"]))
    inputs = data["inputs"]
    fig, axes = figure(2.8 * (1 + len(kinds)), 2.2 * len(inputs), columns=1 + len(kinds),
                        rows=len(inputs))
    for row, name in enumerate(inputs):
        ideal = data["ideal_sigma"][row]
        ax = axes[row][0]
        ax.hist(data["ideal_outputs"][row], bins=30, color="tab:grey")
        ax.set_title(f"{name}: ideal chip's outputs (σ_y {ideal:.3g})", fontsize=8)
        ax.tick_params(labelsize=7)
        for column, kind in enumerate(kinds, start=1):
            ax = axes[row][column]
            mine = sorted((lv for lv in data["levels"] if lv["fault"] == kind),
                          key=lambda lv: lv["index"])
            boxes = [lv["sigma"][row] for lv in mine]
            ax.boxplot(boxes, positions=range(1, len(mine) + 1), widths=0.6, showfliers=False)
            values = np.concatenate([*boxes, [ideal]])
            if values.max() > 10 * values.min() > 0:  # e.g. additive noise that swamps a layer
                from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.plot([0], [ideal], marker="o", color="tab:green")
            ax.axhline(ideal, color="tab:green", ls="--", lw=0.8)
            labels = [lv["level"].split("=", 1)[1].split(",")[0] for lv in mine]
            ax.set_xticks(range(len(mine) + 1), ["ideal", *labels], fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_title(f"{name}: σ_y under {kind}", fontsize=8)
            if row == len(inputs) - 1:
                ax.set_xlabel("level (η or p)", fontsize=7)
    return png(fig)
