"""Paper 1's table layouts from hand-made evaluation rows."""

import pytest

from cimtest.report.btv_tables import paper_tables


def _row(fault, index, spec, layers, rule, coverage, auc=0.6):
    level = spec if layers is None else f"{spec}@layers={layers}"
    return {"fault": fault, "level_index": index, "level": level, "base_level": spec,
            "layers": layers, "rule": rule, "coverage": coverage,
            "verifiable_coverage": coverage / 2, "auc": auc, "accuracy_mean": 98.0,
            "dropped": 0.5, "coverage_dropped": coverage, "false_alarm_nodrop": 0.9}


ROWS = [
    _row("mult", 1, "mult:eta=0.1", None, "offset=0", 0.9),
    _row("mult", 1, "mult:eta=0.1", None, "offset=0.1", 0.5),
    _row("mult", 2, "mult:eta=0.2", None, "offset=0", 1.0),
    _row("mult", 2, "mult:eta=0.2", None, "offset=0.1", 0.8),
    _row("bitflip", 1, "bitflip:p=0.01", None, "offset=0", 0.7),
    _row("bitflip", 1, "bitflip:p=0.01", None, "offset=0.1", 0.2),
    _row("mult", 1, "mult:eta=0.1", 0.3, "offset=0", 0.4),
    _row("mult", 1, "mult:eta=0.1", 0.3, "offset=0.1", 0.1),
]


def test_coverage_tables_are_kind_by_level_in_written_order():
    tables = paper_tables(ROWS, "offset=0")
    coverage = tables["coverage"]
    assert list(coverage.index) == ["mult", "bitflip"] and list(coverage.columns) == ["1", "2"]
    assert coverage.loc["mult", "2"] == pytest.approx(100.0)
    assert coverage.loc["bitflip", "1"] == pytest.approx(70.0)
    assert coverage.isna().loc["bitflip", "2"]  # bit-flip has one level only
    assert tables["verifiable"].loc["mult", "1"] == pytest.approx(45.0)


def test_layer_and_offset_tables():
    tables = paper_tables(ROWS, "offset=0")
    layers = tables["layers"]
    assert list(layers.columns) == ["all", "30%"]
    assert layers.loc[("mult", 1), "30%"] == pytest.approx(40.0)
    assert layers.loc[("mult", 1), "all"] == pytest.approx(90.0)
    offsets = tables["offsets"]  # layer-restricted rows stay out of the offset table
    assert list(offsets.columns) == ["0", "0.1"]
    assert offsets.loc[("mult", 2), "0.1"] == pytest.approx(80.0)
    assert len(offsets) == 3
    harm = tables["harm"]
    assert harm.loc[("bitflip", 1), "FA no-drop"] == pytest.approx(90.0)
    assert harm.loc[("bitflip", 1), "AUC"] == pytest.approx(0.6)


def test_missing_metrics_leave_tables_out():
    rows = [dict(r, verifiable_coverage=None, auc=None) for r in ROWS if r["layers"] is None
            and r["rule"] == "offset=0"]
    assert set(paper_tables(rows, "offset=0")) == {"coverage"}
    assert paper_tables([], "offset=0") == {}
