"""Verdicts: words, rows, summary and CSV of a small known lot; inconsistent lots refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from cimtest import exceptions
from cimtest._atomic import partial_files
from cimtest.tester.verdicts import Verdicts, check_writable, write_csv

SCORES = [0.1, 1 / 3, 2.5, 0.1 + 0.2, 1e-300]


def _lot(flag_word: str = "fail") -> Verdicts:
    """Five chips against threshold 0.3: the third and fourth (0.30000000000000004) flagged."""
    score = np.array(SCORES)
    return Verdicts("egis", ("a", "b,1", 'c"2', "d", "e"), score > 0.3, score, 0.3,
                    flag_word=flag_word)


def test_words_rows_and_summary():
    lot = _lot()
    assert lot.verdict_words().tolist() == ["pass", "fail", "fail", "fail", "pass"]
    rows = lot.rows()
    assert rows[1] == {"chip": "b,1", "verdict": "fail", "score": 1 / 3, "threshold": 0.3}
    assert [r["score"] for r in rows] == SCORES
    assert all(type(r["score"]) is float and type(r["verdict"]) is str for r in rows)
    json.dumps(rows)  # JSON-ready: python types only
    assert lot.summary() == {"method": "egis", "chips": 5, "flagged": 3, "pass": 2,
                             "threshold": 0.3, "flag_word": "fail"}
    json.dumps(lot.summary())


def test_uncertain_is_the_flag_word_of_btv():
    lot = _lot("uncertain")
    assert lot.verdict_words().tolist() == ["pass", "uncertain", "uncertain", "uncertain", "pass"]
    assert lot.summary()["flag_word"] == "uncertain"


def test_fields_are_normalised():
    lot = Verdicts("btv", [7, "y"], np.array([True, False]), [1, 2], np.float32(1.5))
    assert lot.chips == ("7", "y")
    assert lot.score.dtype == np.float64
    assert type(lot.threshold) is float


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"flagged": np.array([1, 0])}, "flagged must be bool"),
        ({"flagged": np.array([True])}, "2 chips but flagged of shape (1,)"),
        ({"score": np.zeros(3)}, "score of shape (3,)"),
        ({"threshold": float("nan")}, "threshold must be finite"),
        ({"threshold": float("inf")}, "threshold must be finite"),
        ({"flag_word": "pass"}, "flag word must differ"),
    ],
)
def test_inconsistent_verdicts_refused(kwargs, expected):
    fields = {"method": "egis", "chips": ("a", "b"), "flagged": np.array([True, False]),
              "score": np.array([1.0, 0.0]), "threshold": 0.5, **kwargs}
    with pytest.raises(exceptions.TesterError, match=re.escape(expected)):
        Verdicts(**fields)


def test_csv_reads_back_with_full_precision(tmp_path):
    lot = _lot()
    assert write_csv(lot, tmp_path / "v.csv") == tmp_path / "v.csv"
    table = pd.read_csv(tmp_path / "v.csv", dtype={"chip": str, "verdict": str})
    assert list(table.columns) == ["chip", "verdict", "score", "threshold"]
    assert table["chip"].tolist() == list(lot.chips)
    assert table["verdict"].tolist() == lot.verdict_words().tolist()
    assert table["score"].tolist() == SCORES  # bit for bit, 1e-300 and 0.30000000000000004 too
    assert (table["threshold"] == 0.3).all()
    assert partial_files(tmp_path / "v.csv") == []


def test_check_writable(tmp_path):
    assert check_writable(str(tmp_path / "v.csv")) == tmp_path / "v.csv"
    with pytest.raises(exceptions.TesterError, match="cannot write .*: folder .* does not exist"):
        check_writable(tmp_path / "absent" / "v.csv")
    with pytest.raises(exceptions.TesterError, match="cannot write .*: it is a folder"):
        check_writable(tmp_path)


def test_csv_to_an_unwritable_path_writes_nothing(tmp_path):
    with pytest.raises(exceptions.TesterError, match="cannot write"):
        write_csv(_lot(), tmp_path / "absent" / "v.csv")
    assert not (tmp_path / "absent").exists()
    (tmp_path / "v.csv").mkdir()
    with pytest.raises(exceptions.TesterError, match="it is a folder"):
        write_csv(_lot(), tmp_path / "v.csv")
    assert list(tmp_path.iterdir()) == [tmp_path / "v.csv"]
    assert list((tmp_path / "v.csv").iterdir()) == []
