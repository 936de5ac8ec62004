"""Paper 2's experiments (docs/results-egis.md): their commands and their tables. Budgets on the
2-core reference machine, one torch thread: ``egis`` ~45 min, ``egis-vgg16`` ~75 min,
``egis-mobilenet-v1`` ~25 min."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from cimtest.report.experiments.base import Experiment, Results, Step, calibrated_level

__all__ = ["EXPERIMENTS"]


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


def _egis_table(rows: list[dict]) -> str:
    lines = ["| cutoff | A_cutoff | K | TA | TE | YL | CTE | BTE | truly pass |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['cutoff']} | {row['cutoff_accuracy']:.2f} | {row['k']} | "
                     + " | ".join(f"{row[key]:.1f}" for key in
                                  ("ta", "te", "yl", "cte", "bte", "truly_pass")) + " |")
    return "\n".join(lines)


def _egis_fits(results: Results, fits: Sequence[tuple[str, str, float]]) -> str:
    """One row per (calibration prefix, folder, drop) fit: σ_tot, pass counts, timings."""
    lines = [("| fit | σ_tot | passed (A50/A60/A70) | H_c first → last | H_s first → last | "
             "labels s | generator s | signatures s | compaction s (all members) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for prefix, folder, drop in fits:
        fit = results[f"fit-{folder}"]
        passed = "/".join(str(m["passed"]) for m in fit["members"] if m["k"] ==
                          fit["members"][0]["k"])
        lines.append(
            f"| {folder} | {calibrated_level(results, f'cal-{prefix}', drop):.4g} | {passed} | "
            f"{fit['h_c'][0]:.2f} → {fit['h_c'][1]:.2f} | "
            f"{fit['h_s'][0]:.2f} → {fit['h_s'][1]:.2f} | {fit['labels_s']:.0f} | "
            + ("reused | " if "generator_s" not in fit or fit["generator_s"] < 5 else
               f"{fit['generator_s']:.0f} | ") + f"{fit['signatures_s']:.0f} | "
            f"{fit['compaction_s']:.0f} |")
    return "\n".join(lines)


def render_egis(results: Results, settings: Sequence[tuple[str, float]]) -> dict[str, str]:
    """Paper 2's tables on resnet20-8; `settings`: (name, calibrated drop) of each fit."""
    lines = ["| mean drop | σ_tot | mean acc. | cutoff | K | TA | TE | YL | CTE | BTE |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for drop in (1, 2, 5):
        for row in (r for r in results[f"eval-r20-typical-{drop}"] if r["k"] == 4):
            lines.append(f"| {drop} pt | {calibrated_level(results, 'cal-r20', drop):.4g} | "
                         f"{row['accuracy_mean']:.2f} | {row['cutoff']} | {row['k']} | "
                         + " | ".join(f"{row[k]:.1f}" for k in ("ta", "te", "yl", "cte", "bte"))
                         + " |")
    return {
        "egis-typical": _egis_table(results["eval-r20-typical-2"]),
        "egis-extreme": _egis_table(results["eval-r20-extreme-2"]),
        "egis-drops": "\n".join(lines),
        "egis-fits": _egis_fits(results, [("r20", f"r20-{n}", d) for n, d in settings]),
    }


def render_egis_zoo(model: str) -> Callable[[Results], dict[str, str]]:
    """The renderer of paper 2's tables on `model` (typical variability, drop 2)."""

    def render(results: Results) -> dict[str, str]:
        return {f"{model}-typical-2": _egis_table(results[f"eval-{model}-typical-2"]),
                f"{model}-fits": _egis_fits(results, [(model, f"{model}-typical-2", 2)])}

    return render


EXPERIMENTS: dict[str, Experiment] = {
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
}
