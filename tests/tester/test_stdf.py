"""write_stdf: the file read back by pystdf, an independent STDF V4 reader, holds the verdicts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from pystdf.IO import Parser

import cimtest
from cimtest import exceptions
from cimtest._atomic import partial_files
from cimtest.tester.stdf import write_stdf
from cimtest.tester.verdicts import Verdicts

START = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
SCORE = np.array([0.25, 1.75, 0.1 + 0.2, 3.0e-8, 1.0])
CHIPS = ("w1-x3", "w1-x4", "chip 7", "0042", "last")


def _lot(flag_word: str = "fail") -> Verdicts:
    """Five chips against threshold 1.0: the second flagged; the last exactly at the limit."""
    return Verdicts("egis", CHIPS, SCORE > 1.0, SCORE, 1.0, flag_word=flag_word)


class _Records:
    """A pystdf sink keeping every record as (name, {field: value})."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict]] = []

    def after_send(self, source: object, data: tuple) -> None:
        kind, values = data
        fields = dict(zip(kind.fieldNames, values, strict=True))
        self.records.append((type(kind).__name__.upper(), fields))


def _read(path) -> list[tuple[str, dict]]:
    """Every record of an STDF file, as pystdf parses it."""
    sink = _Records()
    with open(path, "rb") as f:
        parser = Parser(inp=f)
        parser.addSink(sink)
        parser.parse()
    return sink.records


def _of(records, name: str) -> list[dict]:
    """The fields of every record of one type, in order."""
    return [fields for kind, fields in records if kind == name]


@pytest.fixture
def records(tmp_path):
    path = write_stdf(tmp_path / "lot.stdf", _lot(), part_type="cnn-mnist1d", lot_id="L42",
                      start=START)
    assert path == tmp_path / "lot.stdf"
    return _read(path)


def test_record_order(records):
    kinds = [kind for kind, _ in records]
    assert kinds == (["FAR", "MIR"] + ["PIR", "PTR", "PRR"] * len(CHIPS)
                     + ["HBR", "HBR", "SBR", "SBR", "PCR", "MRR"])


def test_far_and_mir(records):
    assert _of(records, "FAR") == [{"CPU_TYPE": 2, "STDF_VER": 4}]
    (mir,) = _of(records, "MIR")
    assert mir["PART_TYP"] == "cnn-mnist1d"
    assert mir["LOT_ID"] == "L42"
    assert mir["NODE_NAM"] == "cimtest"
    assert mir["TSTR_TYP"] == "cimtest" and mir["EXEC_TYP"] == "cimtest"
    assert mir["EXEC_VER"] == cimtest.__version__
    assert mir["JOB_NAM"] == "egis"  # the method, by default
    assert mir["SETUP_T"] == mir["START_T"] == int(START.timestamp())
    assert mir["STAT_NUM"] == 1
    (mrr,) = _of(records, "MRR")
    assert mrr["FINISH_T"] >= mir["START_T"]


def test_parts(records):
    flagged = SCORE > 1.0
    prrs, ptrs, pirs = _of(records, "PRR"), _of(records, "PTR"), _of(records, "PIR")
    assert len(prrs) == len(ptrs) == len(pirs) == len(CHIPS)
    assert all(pir == {"HEAD_NUM": 1, "SITE_NUM": 1} for pir in pirs)
    assert [prr["PART_ID"] for prr in prrs] == list(CHIPS)
    assert [prr["PART_TXT"] for prr in prrs] == ["pass", "fail", "pass", "pass", "pass"]
    assert [prr["HARD_BIN"] for prr in prrs] == [2 if f else 1 for f in flagged]
    assert [prr["SOFT_BIN"] for prr in prrs] == [2 if f else 1 for f in flagged]
    assert [bool(prr["PART_FLG"] & 0x08) for prr in prrs] == flagged.tolist()  # part failed
    assert all(prr["NUM_TEST"] == 1 and prr["HEAD_NUM"] == prr["SITE_NUM"] == 1 for prr in prrs)


def test_parametric_test_records(records):
    ptrs = _of(records, "PTR")
    assert [ptr["RESULT"] for ptr in ptrs] == SCORE.astype(np.float32).tolist()
    assert [bool(ptr["TEST_FLG"] & 0x80) for ptr in ptrs] == (SCORE > 1.0).tolist()
    for ptr in ptrs:
        assert ptr["TEST_NUM"] == 1 and ptr["HEAD_NUM"] == ptr["SITE_NUM"] == 1
        assert ptr["TEST_TXT"] == "egis score"
        assert ptr["UNITS"] == ""
        assert ptr["HI_LIMIT"] == 1.0
        # OPT_FLAG: no low limit (bit 6); high limit valid (bits 5, 7 clear); bit 1 set
        assert ptr["OPT_FLAG"] & 0x40 and ptr["OPT_FLAG"] & 0x02
        assert not ptr["OPT_FLAG"] & 0xA0
        # PARM_FLG bit 7: a result equal to the high limit passes, as `score > threshold` flags
        assert ptr["PARM_FLG"] == 0x80


def test_bin_and_part_counts(records):
    hbr = {r["HBIN_NUM"]: (r["HBIN_CNT"], r["HBIN_PF"], r["HBIN_NAM"])
           for r in _of(records, "HBR")}
    assert hbr == {1: (4, "P", "pass"), 2: (1, "F", "fail")}
    sbr = {r["SBIN_NUM"]: (r["SBIN_CNT"], r["SBIN_PF"]) for r in _of(records, "SBR")}
    assert sbr == {1: (4, "P"), 2: (1, "F")}
    (pcr,) = _of(records, "PCR")
    assert pcr["PART_CNT"] == 5 and pcr["GOOD_CNT"] == 4 and pcr["HEAD_NUM"] == 255


def test_uncertain_verdicts_and_job_name(tmp_path):
    records = _read(write_stdf(tmp_path / "lot.stdf", _lot("uncertain"), part_type="m",
                               job_name="bench-7"))
    assert [prr["PART_TXT"] for prr in _of(records, "PRR")][:2] == ["pass", "uncertain"]
    assert _of(records, "MIR")[0]["JOB_NAM"] == "bench-7"


def test_scores_beyond_float32_are_written_as_inf(tmp_path):
    lot = Verdicts("btv", ("a", "b"), np.array([True, False]), np.array([1e300, -1.0]), 0.0)
    ptrs = _of(_read(write_stdf(tmp_path / "lot.stdf", lot, part_type="m")), "PTR")
    assert [ptr["RESULT"] for ptr in ptrs] == [float("inf"), -1.0]


def test_unwritable_path_fails_before_writing(tmp_path):
    with pytest.raises(exceptions.TesterError, match="cannot write .*does not exist"):
        write_stdf(tmp_path / "absent" / "lot.stdf", _lot(), part_type="m")
    assert not (tmp_path / "absent").exists()
    (tmp_path / "lot.stdf").mkdir()
    with pytest.raises(exceptions.TesterError, match="cannot write .*it is a folder"):
        write_stdf(tmp_path / "lot.stdf", _lot(), part_type="m")
    assert list(tmp_path.iterdir()) == [tmp_path / "lot.stdf"]


@pytest.mark.parametrize(
    ("chips", "kwargs", "expected"),
    [
        (("a", "chip-µ"), {}, "must be ASCII: chip id 'chip-µ'"),
        (("a", "x" * 256), {}, "at most 255 characters: chip id"),
        (("a", "b"), {"part_type": "résumé-net"}, "must be ASCII: part type"),
        (("a", "b"), {"start": datetime(1969, 1, 1, tzinfo=UTC)}, "1970 to 2106"),
    ],
)
def test_what_stdf_cannot_hold_is_refused_and_the_old_file_kept(tmp_path, chips, kwargs,
                                                                expected):
    path = write_stdf(tmp_path / "lot.stdf", _lot(), part_type="m")
    before = path.read_bytes()
    lot = Verdicts("egis", chips, np.array([False, True]), np.array([0.0, 2.0]), 1.0)
    with pytest.raises(exceptions.TesterError, match=expected):
        write_stdf(path, lot, **{"part_type": "m", **kwargs})
    assert path.read_bytes() == before
    assert partial_files(path) == []
