"""One self-contained HTML file from a comparison RUN: tables and plots (PNG, base64-embedded).

The page is `templates/report.html.j2`, rendered by Jinja2 with autoescape: this module
gathers what each section shows (tables, notes, images) and the template writes the markup,
escaping every value.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path

import jinja2
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

__all__ = ["SECTIONS", "image_part", "note_part", "render_page", "render_report", "write_page",
           "write_report"]

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
    described = doc["methods"]
    generators = {n: d for n, d in described.items() if "entropy_curve" in d}
    aucs = {r["method"]: r["auc"] for r in doc["rows"]}
    vectors = [image_part(plots.image_grid(torch.stack([tensors[f"{n}.mean"],
                                                  tensors[f"{n}.variance"]]),
                                     ["mean", "variance"], cmap="viridis"))
               for n in described if f"{n}.mean" in tensors and f"{n}.variance" in tensors]
    sections = [
        ("setup", "Setup", [{"kind": "pairs", "pairs": _setup_items(doc)}]),
        ("table", "Methods side by side", [
            _rows_table(doc["rows"]),
            note_part("Percent of the evaluation chips. A chip truly passes iff its accuracy is "
                  "above A_cutoff. TE: failing chips called pass (CTE more than 1 point "
                  "below A_cutoff, BTE within 1 point); YL: passing chips called fail; "
                  "coverage: failing chips flagged; false alarm: passing chips flagged."),
            *_row_notes(doc["rows"])]),
        ("roc", "ROC curves", [image_part(plots.roc_curves(doc["roc"], aucs))]),
        ("coverage", "Chips flagged against their accuracy drop", [
            image_part(plots.flag_rate_curves(doc["flag_rate_by_drop"], doc["drop_bins"])),
            note_part("A test that reacts to any perturbation flags chips that lost nothing as "
                  "readily as chips that lost much; a useful one rises with the drop.")]),
        ("populations", "Accuracy of the chips", [image_part(plots.accuracy_histograms(
            doc["train_accuracy"], doc["eval_accuracy"], doc["cutoff_accuracy"],
            doc["ideal_accuracy"]))]),
        ("egis-entropy", "EGIS generator entropies",
         [image_part(plots.entropy_curves(d["entropy_curve"])) for d in generators.values()]
         or [_absent("EGIS")]),
        ("compaction", "EGIS compaction (simulated annealing)",
         [image_part(plots.reward_curve(d["reward_curve"])) for d in generators.values()]
         or [_absent("EGIS")]),
        ("egis-images", "The K chosen EGIS images",
         [image_part(plots.image_grid(tensors[f"{n}.images"], [f"SID #{i}" for i in d["chosen"]]))
          for n, d in generators.items() if f"{n}.images" in tensors] or [_absent("EGIS")]),
        ("learned-inputs", "The learned tests' inputs, before and after their gradient steps",
         _learned_inputs(described, tensors)),
        ("btv-vector", "The Bayesian test vector",
         vectors or [_absent("the Bayesian test vector")]),
    ]
    return render_page(f"cimtest comparison: {setup['model']} under {setup['fault']}",
                       sections)


def render_page(title: str, sections: list[tuple[str, str, list[dict]]]) -> str:
    """A self-contained page of `sections` (anchor, heading, parts), every value escaped."""
    return _template().render(
        title=title, style=_STYLE,
        sections=[{"id": anchor, "heading": heading, "parts": parts}
                  for anchor, heading, parts in sections])


def write_report(doc: dict, tensors: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Render and write the report to `path` atomically (temp file, then rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ArtifactError(f"folder '{path.parent}' does not exist")
    return write_page(render_report(doc, tensors), path)


def write_page(text: str, path: str | Path) -> Path:
    """Write a rendered page to `path` atomically (temp file, then rename)."""
    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(f"cannot write report '{path}': {exc}") from exc
    return path


@functools.cache
def _template() -> jinja2.Template:
    """The page template, read once; autoescape on, so no value is written unescaped."""
    environment = jinja2.Environment(loader=jinja2.PackageLoader("cimtest.report"),
                                     autoescape=True, keep_trailing_newline=True)
    return environment.get_template("report.html.j2")


def _setup_items(doc: dict) -> list[tuple[str, object]]:
    setup, forwards = doc["setup"], doc["forwards"]
    return [("model", setup["model"]), ("fingerprint", setup["fingerprint"][:16] + "…"),
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


def _learned_inputs(described: dict, tensors: dict[str, torch.Tensor]) -> list[dict]:
    """Per learned test, its K start inputs then its K learned inputs, and which step it kept."""
    parts = []
    for name, info in described.items():
        start, final = tensors.get(f"{name}.start"), tensors.get(f"{name}.inputs")
        if start is None or final is None or "best_step" not in info:
            continue
        k = len(final)
        titles = ([f"start {i + 1}" for i in range(k)] + [f"learned {i + 1}" for i in range(k)])
        parts += [{"kind": "h3", "text": name},
                  image_part(plots.image_grid(torch.cat([start, final]), titles)),
                  note_part(f"{info['init']} candidates #{', '.join(map(str, info['chosen']))} "
                        f"chosen greedily, then {info['steps']} steps through the training "
                        f"chips with a {info['readout']} read-out; kept: step "
                        f"{info['best_step']} (the best on held-out training chips; 0 = the "
                        "greedy choice).")]
    return parts or [_absent("learned tests (`cimtest compare --learned` adds them)")]


def _rows_table(rows: list[dict]) -> dict:
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
            cells.append(value)
        body.append(cells)
    return {"kind": "grid", "head": [label for _, label in _COLUMNS], "rows": body}


def _row_notes(rows: list[dict]) -> list[dict]:
    """The tie footnote and each row's note, as notes."""
    note = tie_note(rows)
    return [note_part(f"{line}.") for line in ([note] if note else []) + row_notes(rows)]


def _percent(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:.1f} %"


def image_part(png: bytes) -> dict:
    """A PNG figure in a section of a page."""
    return {"kind": "img", "png": base64.b64encode(png).decode()}


def note_part(text: str) -> dict:
    """A paragraph of explanation in a section of a page."""
    return {"kind": "note", "text": text}


def _absent(what: str) -> dict:
    return note_part(f"This run has no {what}.")
