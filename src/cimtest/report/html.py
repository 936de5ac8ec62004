"""One self-contained HTML file from a comparison RUN: tables and plots (PNG, base64-embedded)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import torch

from cimtest._atomic import atomic_file
from cimtest.exceptions import ArtifactError
from cimtest.report import plots
from cimtest.report.markdown import (
    best_method,
    method_cell,
    p_vs_best,
    row_notes,
    ta_band,
    tie_note,
)

__all__ = ["SECTIONS", "render_report", "write_report"]

SECTIONS = ("setup", "table", "roc", "coverage", "populations", "egis-entropy",
            "compaction", "egis-images", "learned-inputs", "btv-vector")
"""The ids of the report's sections, in order (a section without data says so)."""

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
section { margin-bottom: 2em; } img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
"""

_COLUMNS = (("method", "method"), ("ta", "TA % (95 % CI)"), ("p_vs_best", "p vs best"),
            ("te", "TE %"), ("yl", "YL %"),
            ("cte", "CTE %"), ("bte", "BTE %"), ("coverage", "coverage %"),
            ("false_alarm", "false alarm %"), ("auc", "ROC AUC"), ("test_bytes", "test bytes"),
            ("detector_bytes", "detector bytes"), ("forward_passes", "forwards / chip"),
            ("needs", "needs"), ("fit_s", "fit s"), ("accuracy_rmse", "accuracy RMSE"))


def render_report(doc: dict, tensors: dict[str, torch.Tensor]) -> str:
    """The report as an HTML string."""
    setup = doc["setup"]
    title = f"cimtest comparison: {setup['model']} under {setup['fault']}"
    head = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{_e(title)}</h1>\n")
    parts = [head]
    parts.append(_section("setup", "Setup", _setup_table(doc)))
    parts.append(_section("table", "Methods side by side", _rows_table(doc["rows"]) +
                          "<p class=\"note\">Percent of the evaluation chips. A chip truly "
                          "passes iff its accuracy is above A_cutoff. TE: failing chips called "
                          "pass (CTE more than 1 point below A_cutoff, BTE within 1 point); YL: "
                          "passing chips called fail; coverage: failing chips flagged; false "
                          "alarm: passing chips flagged.</p>" + _tie_note(doc["rows"])))
    aucs = {r["method"]: r["auc"] for r in doc["rows"]}
    parts.append(_section("roc", "ROC curves", _img(plots.roc_curves(doc["roc"], aucs))))
    parts.append(_section("coverage", "Chips flagged against their accuracy drop", _img(
        plots.flag_rate_curves(doc["flag_rate_by_drop"], doc["drop_bins"])) +
        "<p class=\"note\">A test that reacts to any perturbation flags chips that lost "
        "nothing as readily as chips that lost much; a useful one rises with the drop.</p>"))
    parts.append(_section("populations", "Accuracy of the chips", _img(
        plots.accuracy_histograms(doc["train_accuracy"], doc["eval_accuracy"],
                                  doc["cutoff_accuracy"], doc["ideal_accuracy"]))))
    described = doc["methods"]
    generators = {n: d for n, d in described.items() if "entropy_curve" in d}
    parts.append(_section("egis-entropy", "EGIS generator entropies", "".join(
        _img(plots.entropy_curves(d["entropy_curve"])) for d in generators.values())
        or _absent("EGIS")))
    parts.append(_section("compaction", "EGIS compaction (simulated annealing)", "".join(
        _img(plots.reward_curve(d["reward_curve"])) for d in generators.values())
        or _absent("EGIS")))
    parts.append(_section("egis-images", "The K chosen EGIS images", "".join(
        _img(plots.image_grid(tensors[f"{n}.images"], [f"SID #{i}" for i in d["chosen"]]))
        for n, d in generators.items() if f"{n}.images" in tensors) or _absent("EGIS")))
    parts.append(_section("learned-inputs", "The learned tests' inputs, before and after their "
                          "gradient steps", _learned_inputs(described, tensors)))
    vectors = [_img(plots.image_grid(torch.stack([tensors[f"{n}.mean"],
                                                  tensors[f"{n}.variance"]]),
                                     ["mean", "variance"], cmap="viridis"))
               for n in described if f"{n}.mean" in tensors and f"{n}.variance" in tensors]
    parts.append(_section("btv-vector", "The Bayesian test vector",
                          "".join(vectors) or _absent("the Bayesian test vector")))
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def write_report(doc: dict, tensors: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Render and write the report to `path` atomically (temp file, then rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ArtifactError(f"folder '{path.parent}' does not exist")
    text = render_report(doc, tensors)
    try:
        with atomic_file(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(f"cannot write report '{path}': {exc}") from exc
    return path


def _setup_table(doc: dict) -> str:
    setup, forwards = doc["setup"], doc["forwards"]
    items = [("model", setup["model"]), ("fingerprint", setup["fingerprint"][:16] + "…"),
             ("fault", setup["fault"]),
             ("training chips (seed)", f"{setup['train_chips']} ({setup['seed']})"),
             ("evaluation chips (seed)", f"{setup['eval_chips']} ({setup['eval_seed']})"),
             ("cutoff", f"{setup['cutoff']} = {doc['cutoff_accuracy']:.2f} %"),
             ("ideal chip accuracy", f"{doc['ideal_accuracy']:.2f} %"),
             ("truth's ceiling (split-half agreement)", _percent(setup.get("ceiling"))),
             ("labelled data", f"{setup['data']} ({setup['data_images']} images)"),
             ("real images of the baselines", setup["real"]
              + (f" ({setup['real_images']} images)" if "real_images" in setup else "")),
             ("inputs per training chip", forwards["train"]),
             ("inputs per evaluation chip", forwards["eval"]),
             ("campaign seconds (training, evaluation)",
              f"{forwards['train_s']:.1f}, {forwards['eval_s']:.1f}")]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


def _learned_inputs(described: dict, tensors: dict[str, torch.Tensor]) -> str:
    """Per learned test, its K start inputs then its K learned inputs, and which step it kept."""
    parts = []
    for name, info in described.items():
        start, final = tensors.get(f"{name}.start"), tensors.get(f"{name}.inputs")
        if start is None or final is None or "best_step" not in info:
            continue
        k = len(final)
        titles = ([f"start {i + 1}" for i in range(k)] + [f"learned {i + 1}" for i in range(k)])
        parts.append(f"<h3>{_e(name)}</h3>\n" + _img(plots.image_grid(
            torch.cat([start, final]), titles)) + f"<p class=\"note\">{_e(info['init'])} "
            f"candidates #{_e(', '.join(map(str, info['chosen'])))} chosen greedily, then "
            f"{_e(info['steps'])} steps through the training chips with a {_e(info['readout'])} "
            f"read-out; kept: step {_e(info['best_step'])} (the best on held-out training "
            "chips; 0 = the greedy choice).</p>")
    return "".join(parts) or _absent("learned tests (`cimtest compare --learned` adds them)")


def _rows_table(rows: list[dict]) -> str:
    head = "".join(f"<th>{_e(label)}</th>" for _, label in _COLUMNS)
    best = best_method(rows)
    body = []
    for row in rows:
        cells = []
        for key, _ in _COLUMNS:
            value = row.get(key)
            if key == "method":
                value = method_cell(row)
            elif key == "ta":
                value = ta_band(row)
            elif key == "p_vs_best":
                value = p_vs_best(row, best)
            elif value is None:
                value = ""
            elif key == "needs":
                value = ", ".join(value[1:]) or "model only"
            elif key == "auc":
                value = f"{value:.3f}"
            elif isinstance(value, float):
                value = f"{value:.1f}"
            elif isinstance(value, int):
                value = f"{value:,}"
            cells.append(f"<td>{_e(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _tie_note(rows: list[dict]) -> str:
    note = tie_note(rows)
    notes = "".join(f"<p class=\"note\">{_e(line)}.</p>" for line in row_notes(rows))
    return (f"<p class=\"note\">{_e(note)}.</p>" if note else "") + notes


def _percent(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:.1f} %"


def _section(anchor: str, heading: str, content: str) -> str:
    return f"<section id=\"{anchor}\">\n<h2>{_e(heading)}</h2>\n{content}\n</section>\n"


def _img(png: bytes) -> str:
    return f"<img alt=\"\" src=\"data:image/png;base64,{base64.b64encode(png).decode()}\">"


def _absent(what: str) -> str:
    return f"<p class=\"note\">This run has no {_e(what)}.</p>"


def _e(value: object) -> str:
    return html.escape(str(value))
