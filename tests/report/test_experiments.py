"""The experiments of `cimtest reproduce`: each renders exactly the blocks it declares."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cimtest.report import markdown as markdown_module
from cimtest.report.experiments import EXPERIMENTS
from cimtest.report.experiments import btv as btv_experiments
from cimtest.report.markdown import (
    TIE_MARK,
    best_method,
    cell,
    markdown,
    p_vs_best,
    pct,
    ta_band,
    tie_note,
)

DOCS = Path(__file__).parents[2] / "docs"


def _row(fault: str, index: int, layers: float | None, rule: str) -> dict:
    spec = f"{fault}:p={index / 10}"
    return {"fault": fault, "level_index": index, "base_level": spec, "layers": layers,
            "level": spec if layers is None else f"{spec}@layers={layers}", "rule": rule,
            "drop": 2, "measured_drop": 2.1, "coverage": 0.9, "verifiable_coverage": 0.5,
            "auc": 0.8, "auc_point": 0.6, "accuracy_mean": 97.5, "dropped": 0.5,
            "coverage_dropped": 0.9, "false_alarm_nodrop": 0.1, "false_alarm_ideal": 0.05,
            "k": 4, "cutoff": "A50", "cutoff_accuracy": 97.0, "ta": 90.0, "te": 1.0,
            "yl": 2.0, "cte": 3.0, "bte": 4.0, "truly_pass": 50.0, "method": "btv",
            "false_alarm": 5.0, "test_bytes": 1000, "forward_passes": 3,
            "needs": ["model"], "fit_s": 1.5, "chips": 10, "ceiling": 80.0,
            "pass_fraction": 0.5, "ideal_accuracy": 99.0, "eval_fault": spec,
            "best": index == 1, "tied_with_best": index == 1, "eval_pass_fraction": 0.4,
            "eval_accuracy_mean": 96.0}


class _Results(dict):
    """Plausible JSON for any step name: a fit's dict, calibrated levels or evaluation rows."""

    def __missing__(self, name: str) -> object:
        if name == "fit" or name.startswith(("fit-", "sweep-fit-")):
            value = {"final_loss": 0.1, "sigma_ideal": 0.01, "threshold_false_alarm": None,
                     "seconds": 10, "storage_bytes": 1000, "n_samples": 1,
                     "members": [{"cutoff": "A50", "k": k, "passed": 5, "best_reward": 90.0,
                                  "pass_fraction": 0.5, "ideal_accuracy": 99.0} for k in (2, 4)],
                     "chips": 10, "mean_drop": 2.0, "training": {"accuracy_mean": 97.0},
                     "h_c": [1.0, 2.0], "h_s": [3.0, 4.0], "labels_s": 1.0,
                     "generator_s": 30.0, "signatures_s": 2.0, "compaction_s": 3.0}
        elif name.endswith(("-none", "-gdc", "-recalibrate", "-reprogram")):
            value = _monitored(name.split("-")[1])
        elif name.startswith("cal-"):
            value = [dict(_row("mult", 1, None, "offset=0"), drop=d, level=d / 100)
                     for d in (0.5, 1, 2, 5, 10)]
        else:
            rules = ("offset=0", "offset=0.1", "false_alarm")
            value = [_row(f, i, layers, rule) for f in ("mult", "bitflip") for i in (1, 2)
                     for layers in (None, 0.5) for rule in rules]
        self[name] = value
        return value


def _monitored(test: str) -> dict:
    """A `cimtest monitor --json` document: two retests, the second with no chip in service."""
    share = {"share": 0.25, "interval": [0.1, 0.4]}
    rows = [{"t": 3600.0, "chips": 10, "accuracy_mean": 97.5, "accuracy_p5": 93.0,
             "failing": share, "flagged": share, "false_alarms": share, "missed": share,
             "remedied": share, "accuracy_after_mean": 98.5, "reverified": share,
             "replaced": share},
            {"t": 86400.0, "chips": 0, "accuracy_mean": None, "accuracy_p5": None,
             "failing": None, "flagged": None, "false_alarms": None, "missed": None,
             "remedied": None, "accuracy_after_mean": None, "reverified": None,
             "replaced": None}]
    return {"test": test, "rows": rows,
            "latency": {"failed": 4, "detected": 3, "missed": 1, "latency_median_s": 0.0},
            "false_alarms": {"count": 2, "chip_years": 1.5, "per_chip_year": 1.3,
                             "interval": [0.2, 4.8]}}


class _Shifted(_Results):
    """The same results with every float moved (x 0.9 + 0.013): a block rendered from the
    results reads differently; one of fixed text, or one that reads nothing, does not."""

    def __missing__(self, name: str) -> object:
        self[name] = _shift(super().__missing__(name))
        return self[name]


def _shift(value: object) -> object:
    if isinstance(value, dict):
        return {key: _shift(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shift(item) for item in value]
    return value * 0.9 + 0.013 if isinstance(value, float) else value


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_each_experiment_renders_its_blocks_from_the_results(name):
    """Exactly the blocks it declares, each marked in its document, and each made from the
    results: other results give another text in every block."""
    experiment = EXPERIMENTS[name]
    blocks, shifted = experiment.render(_Results()), experiment.render(_Shifted())
    assert set(blocks) == set(shifted) == set(experiment.blocks)
    doc = (DOCS / experiment.doc).read_text()
    for block in experiment.blocks:
        assert f"<!-- reproduce:{block} -->" in doc and f"<!-- /reproduce:{block} -->" in doc
        assert blocks[block] != shifted[block], block


def test_cells_and_rates():
    assert pct({"c": 0.938, "c_low": 0.912, "c_high": 0.957}, "c") == "93.8 [91.2, 95.7]"
    assert pct({}, "c") == "-"
    assert [cell(v, 1) for v in ("x", None, float("nan"), 0.12345, 12.34, 3)] == [
        "x", "-", "-", "0.123", "12.3", "3"]


def test_comparison_cells_show_the_interval_and_ties_with_the_best():
    best = {"method": "a", "ta": 91.2, "ta_low": 89.31, "ta_high": 92.84, "best": True,
            "p_vs_best": 1.0, "tied_with_best": True}
    tied = {"method": "b", "ta": 90.0, "ta_low": 88.0, "ta_high": 91.8, "best": False,
            "p_vs_best": 0.21, "tied_with_best": True}
    worse = {"method": "c", "ta": 80.0, "ta_low": 77.4, "ta_high": 82.4, "best": False,
             "p_vs_best": 1e-9, "tied_with_best": False}
    rows = [worse, best, tied]
    assert best_method(rows) == "a"
    assert [ta_band(r) for r in rows] == ["80.0 (77.4-82.4)", f"91.2 (89.3-92.8){TIE_MARK}",
                                          f"90.0 (88.0-91.8){TIE_MARK}"]
    assert [p_vs_best(r, "a") for r in rows] == ["<0.001", "best", "0.210"]
    assert "tied with the best TA (a)" in tie_note(rows) and "McNemar" in tie_note(rows)
    # rows saved before the interval and the test were recorded: TA alone, no footnote
    old = [{"method": "a", "ta": 91.2}, {"method": "b", "ta": 90.0}]
    assert best_method(old) is None and tie_note(old) == ""
    assert [ta_band(r) for r in old] == ["91.2", "90.0"] and p_vs_best(old[0], None) == "-"
    # the comparison's markdown table carries both, with the footnote under it
    results = _Results()
    base = _row("mult", 1, None, "offset=0")
    results["r20-typical"] = [dict(base, **r) for r in rows]
    block = EXPERIMENTS["comparison"].render(results)["r20-typical"]
    assert "| TA (95 % CI) | p vs best |" in block
    assert f"| a | 91.2 (89.3-92.8){TIE_MARK} | best |" in block
    assert "| c | 80.0 (77.4-82.4) | <0.001 |" in block
    assert block.endswith(tie_note(rows) + ".")


def test_zoo_tables_v_and_vi_cover_the_papers_models():
    """Table V (layer-wise injection) has MobileNet-v2 as the paper's does; Table VI (offsets)
    and its spread figure do not, also as in the paper."""
    experiment = EXPERIMENTS["btv-zoo-layers"]
    names = {name for name, _ in experiment.steps}
    assert {"layers-mobilenet-v2", "fit-mobilenet-v2"} <= names
    assert "offsets-mobilenet-v2" not in names
    assert {f"offsets-{m}" for m in ("resnet20", "repvgg-a0", "resnet56")} <= names
    blocks = experiment.render(_Results())
    assert "**mobilenet-v2**" in blocks["zoo-layers"]
    assert "mobilenet-v2" not in blocks["zoo-offsets"]
    assert not any("mobilenet" in path for path, _ in experiment.figures)


def _markdown_by_hand(table: pd.DataFrame, digits: int = 1) -> str:
    """The table as written before pandas' to_markdown: the reference of the docs' tables."""
    frame = table.reset_index()
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def _same_but_dashes(ours: str, by_hand: str) -> None:
    """Every header and data line alike, byte for byte; a delimiter row may differ only in
    its dashes per column (Markdown ignores how many)."""
    delimiter = re.compile(r"\|(-{3,}\|)+")
    assert len(ours.splitlines()) == len(by_hand.splitlines())
    for line, hand in zip(ours.splitlines(), by_hand.splitlines(), strict=True):
        if delimiter.fullmatch(hand):
            assert delimiter.fullmatch(line) and line.count("|") == hand.count("|"), line
        else:
            assert line == hand


MIXED = pd.DataFrame({
    "rate": [0.12345, np.nan, 0.5, -0.25],
    "points": [12.34, 100.0, 0.0, 1e6],
    "count": [3, 40, 0, -2],
    "text": ["x", "σ_y †", None, "a, b"],
    0.1: [0.999, 1.0, 2.5, np.nan],
}, index=pd.MultiIndex.from_tuples([("mult", 1), ("mult", 2), ("bitflip", 1), ("sa", 3)],
                                   names=["fault", "level"]))


@pytest.mark.parametrize("digits", [0, 1, 2])
@pytest.mark.parametrize("table", [MIXED, MIXED.iloc[:0], MIXED.reset_index(drop=True),
                                   MIXED[["count"]], MIXED.T], ids=["mixed", "empty", "range",
                                                                    "ints", "transposed"])
def test_markdown_tables_keep_every_cell_of_the_hand_written_layout(table, digits):
    """NaN, None, rates below 1, integral floats, ints, text, numeric column names, a
    MultiIndex, no rows, object columns: the same text in every cell as by hand."""
    _same_but_dashes(markdown(table, digits), _markdown_by_hand(table, digits))


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_docs_tables_keep_every_cell_of_the_hand_written_layout(name, monkeypatch):
    """Every block `reproduce` writes, rendered through `markdown` and by hand from the same
    results: the same numbers in the same cells (the btv experiments' tables go through it)."""
    ours = EXPERIMENTS[name].render(_Results())
    monkeypatch.setattr(btv_experiments, "markdown", _markdown_by_hand)
    monkeypatch.setattr(markdown_module, "markdown", _markdown_by_hand)
    by_hand = EXPERIMENTS[name].render(_Results())
    assert set(ours) == set(by_hand)
    for block, text in ours.items():
        _same_but_dashes(text, by_hand[block])
