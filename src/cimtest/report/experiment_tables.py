"""Markdown blocks of the documented experiments, rendered from their commands' JSON.

Each ``render_*`` turns the parsed JSON of an experiment's steps (`Results`) into markdown
by block name; `cimtest.report.experiments` says which steps and blocks each experiment has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from cimtest.report.markdown import markdown, pct, rows_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Results", "calibrated_level", "render_btv", "render_comparison", "render_egis",
           "render_egis_zoo", "render_zoo"]

Results = dict[str, object]
"""Parsed JSON of the steps run so far, by step name."""


def calibrated_level(results: Results, step: str, drop: float | None = None) -> float:
    """The calibrated level of `step` for `drop` (the first one if None)."""
    rows = results[step]
    row = rows[0] if drop is None else next(r for r in rows if r["drop"] == drop)
    return float(row["level"])


def render_btv(results: Results, kinds: Sequence[str], sweep: Sequence[str]) -> dict[str, str]:
    """Paper 1's tables on resnet20-8 for fault `kinds` and the fit settings `sweep`."""
    from cimtest.report.btv_tables import paper_tables

    tables = paper_tables(results["evaluate"], "offset=0")
    blocks = {
        "btv-levels": _levels_table(results, kinds, "cal-"),
        "btv-coverage": markdown(tables["coverage"]),
        "btv-verifiable": markdown(tables["verifiable"]),
        "btv-offsets": markdown(tables["offsets"]),
        "btv-harm": markdown(tables["harm"].drop(columns="spec")),
        "btv-layers": markdown(_named_levels(
            paper_tables(results["layers"], "offset=0")["layers"], results["layers"]))
        + "\n\nMean accuracy (%) and AUC of σ_y for a 1-point drop on the same chips:\n\n"
        + _layer_harm(results["layers"]),
        "btv-fa": _false_alarm_rule(results["evaluate"]),
        "btv-sweep": _sweep_table(results, sweep),
        "btv-fit": _fit_line(results["fit"]),
    }
    return blocks


def _named_levels(table: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """`table` indexed by (fault, level number) with each level number replaced by its spec."""
    import pandas as pd

    specs = {(r["fault"], r["level_index"]): r["base_level"] for r in rows}
    table = table.copy()
    table.index = pd.MultiIndex.from_tuples([(f, specs[(f, i)]) for f, i in table.index],
                                            names=table.index.names)
    return table


def _layer_harm(rows: list[dict]) -> str:
    """Mean accuracy and AUC per fault kind and layer fraction (offset-0 rows)."""
    cells: dict[str, dict[str, str]] = {}
    for row in (r for r in rows if r["rule"] == "offset=0"):
        fraction = "all" if row["layers"] is None else f"{100 * row['layers']:g}%"
        auc = "-" if row["auc"] is None else f"{row['auc']:.2f}"
        cells.setdefault(row["fault"], {})[fraction] = f"{row['accuracy_mean']:.2f} ({auc})"
    return rows_table(cells, "fault")


def _levels_table(results: Results, names: Sequence[str], prefix: str) -> str:
    """Calibrated level (measured mean drop) per fault kind and target drop."""
    rows = {}
    for name in names:
        rows[name] = {f"{r['drop']:g} pt": f"{r['level']:.4g} ({r['measured_drop']:.2f})"
                      for r in results[f"{prefix}{name}"]}
    return rows_table(rows, "fault")


def _false_alarm_rule(rows: list[dict]) -> str:
    lines = ["| level | coverage (fresh samples) | FA ideal | FA no-drop | AUC |",
             "|---|---|---|---|---|"]
    for row in (r for r in rows if r["rule"] == "false_alarm" and r["layers"] is None):
        auc = "-" if row["auc"] is None else f"{row['auc']:.3f}"
        lines.append(f"| {row['level']} | {pct(row, 'coverage')} | "
                     f"{pct(row, 'false_alarm_ideal')} | {pct(row, 'false_alarm_nodrop')} | "
                     f"{auc} |")
    return "\n".join(lines)


def _sweep_table(results: Results, names: Sequence[str]) -> str:
    lines = [("| fit | final loss | σ_y ideal | level | coverage | FA no-drop | AUC | "
             "real image AUC |"), "|---|---|---|---|---|---|---|---|"]
    for name in names:
        fit = results[f"sweep-fit-{name}"]
        for row in (r for r in results[f"sweep-{name}"] if r["rule"] == "offset=0"):
            lines.append(f"| {name} | {fit['final_loss']:.3g} | {fit['sigma_ideal']:.3g} | "
                         f"{row['level']} | {pct(row, 'coverage')} | "
                         f"{pct(row, 'false_alarm_ideal')} | "
                         f"{pct(row, 'false_alarm_nodrop')} | {row['auc']:.3f} | "
                         f"{row['auc_point']:.3f} |")
    return "\n".join(lines)


def _fit_line(fit: dict) -> str:
    far = fit["threshold_false_alarm"]
    return (f"Fit: {fit['seconds']:.0f} s, final loss {fit['final_loss']:.4g}, σ_y of the ideal "
            f"chip {fit['sigma_ideal']:.4g} (offset-0 threshold), false-alarm threshold "
            + ("-" if far is None else f"{far:.4g}") + f", {fit['storage_bytes']:,} bytes of "
            f"mean + log-variance, N = {fit['n_samples']}.")


def render_zoo(results: Results, calibrated: Mapping[str, Sequence[str]],
               unlabelled: Sequence[str]) -> dict[str, str]:
    """Paper 1's tables on the 32x32 zoo: `calibrated` models (their fault kinds) and
    `unlabelled` ones."""
    import pandas as pd

    from cimtest.report.btv_tables import paper_tables

    coverage, verifiable, harm, far = {}, {}, [], {}
    models = [*calibrated, *unlabelled]
    for model in models:
        rows = results[f"eval-{model}"]
        tables = paper_tables(rows, "offset=0")
        coverage[model] = _flatten(tables["coverage"])
        far[model] = {f"FA ideal, {rule}": _fa_ideal(rows, rule)
                      for rule in ("offset=0", "false_alarm")}
        far[model].update(_flatten(paper_tables(rows, "false_alarm")["coverage"]))
        if "verifiable" in tables:
            verifiable[model] = _flatten(tables["verifiable"])
        if "harm" in tables:
            two = tables["harm"].xs(2, level="level")
            harm.append(two.drop(columns="spec").assign(model=model).set_index(
                "model", append=True).reorder_levels(["model", "fault"]))
    fits = {m: results[f"fit-{m}"] for m in models}
    fit_rows = pd.DataFrame({m: {"N": f["n_samples"], "σ_y ideal": f["sigma_ideal"],
                                 "fit s": f["seconds"], "test bytes": f["storage_bytes"]}
                             for m, f in fits.items()}).T.rename_axis("model")
    return {
        "zoo-levels": _zoo_levels(results, calibrated),
        "zoo-coverage": markdown(pd.DataFrame(coverage).T.rename_axis("model")),
        "zoo-verifiable": markdown(pd.DataFrame(verifiable).T.rename_axis("model")),
        "zoo-fa": markdown(pd.DataFrame(far).T.rename_axis("model")),
        "zoo-harm": markdown(pd.concat(harm)),
        "zoo-fit": markdown(fit_rows, digits=0),
    }


def _fa_ideal(rows: list[dict], rule: str) -> str:
    """False alarms (percent) of `rule` on fresh samples of the vector on the ideal chip."""
    return f"{100 * next(r['false_alarm_ideal'] for r in rows if r['rule'] == rule):.1f}"


def _flatten(table: pd.DataFrame) -> dict[str, float]:
    """{"mult 1": 98.0, ...} from a kind x level table."""
    return {f"{kind} {level}": value for kind, row in table.iterrows()
            for level, value in row.items()}


def _zoo_levels(results: Results, calibrated: Mapping[str, Sequence[str]]) -> str:
    rows = {}
    for model, kinds in calibrated.items():
        rows[model] = {name: ", ".join(f"{r['level']:.3g}" for r in results[f"cal-{model}-{name}"])
                       for name in kinds}
    return rows_table(rows, "model")


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
