"""Write a lot's verdicts as STDF V4, the test data format that test floors' tools read.

The file holds, in the order the STDF V4 spec sets: a FAR and a MIR; per chip a PIR, one
PTR (test 1, "<method> score": the score against the threshold as a high limit, a score
equal to it passing, as cimtest flags ``score > threshold``) and a PRR (the chip id, its
verdict, hard and soft bin 1 for pass and 2 when flagged); then HBR and SBR per bin and a
PCR, counted over every site (head 255), and the MRR. Numbers are little-endian (CPU_TYPE
2); text is ASCII, as the spec's ``C*n`` fields are.

The records are packed with `struct`, by hand, following the spec rather than through a
library. Semi-ATE-STDF 0.1.28 (the writer on PyPI, last changed in December 2024) was
tried: it installs and writes correct bytes for ASCII text, but it packs every field in
pure Python, about 0.2 ms a chip (20 s for 100,000 chips, against a fraction of a second
here), and it silently drops non-ASCII characters and truncates text beyond 255 bytes,
which could give two chips one PART_ID; it is also an alpha with a source-only release.
pystdf, an independent reader, checks this writer in the tests.
"""

from __future__ import annotations

import os
import struct
from datetime import datetime
from pathlib import Path

import numpy as np

import cimtest
from cimtest._atomic import atomic_file
from cimtest.exceptions import TesterError
from cimtest.tester.verdicts import PASS_WORD, Verdicts, check_writable

__all__ = ["write_stdf"]

PASS_BIN, FAIL_BIN = 1, 2
"""Hard and soft bins of passing and of flagged chips."""

TEST_NUM = 1
"""The one parametric test: the method's score."""

# record types (REC_TYP, REC_SUB) of the STDF V4 spec
_FAR, _MIR, _MRR, _PCR, _HBR, _SBR = (0, 10), (1, 10), (1, 20), (1, 30), (1, 40), (1, 50)
_PIR, _PRR, _PTR = (5, 10), (5, 20), (15, 10)

_HEADER = struct.Struct("<HBB")  # REC_LEN, REC_TYP, REC_SUB
_PTR_HEAD = struct.Struct("<IBBBBf")  # TEST_NUM, HEAD_NUM, SITE_NUM, TEST_FLG, PARM_FLG, RESULT
_PRR_HEAD = struct.Struct("<BBBHHHhhI")  # HEAD, SITE, PART_FLG, NUM_TEST, bins, X, Y, TEST_T

_HEAD, _SITE, _ALL_HEADS = 1, 1, 255  # one head and site; 255: summary over all of them
_TEST_FAILED = 0x80  # PTR TEST_FLG bit 7
_PART_FAILED = 0x08  # PRR PART_FLG bit 3
_HIGH_LIMIT_PASSES = 0x80  # PTR PARM_FLG bit 7: a result equal to the high limit passes
# PTR OPT_FLAG: bit 1 (reserved, must be 1), no low / high spec limit (bits 2, 3), no low
# limit (bit 6); bits 0, 5 and 7 clear: RES_SCAL, HLM_SCAL and HI_LIMIT are valid
_OPT_FLAG = 0b0100_1110
_MISSING_U4 = 0xFFFF_FFFF  # a U*4 count that is not known
_MISSING_COORD = -32768  # PRR X_COORD, Y_COORD: not a die on a wafer


def write_stdf(
    path: str | os.PathLike,
    verdicts: Verdicts,
    *,
    part_type: str,
    lot_id: str = "cimtest",
    node_name: str = "cimtest",
    job_name: str | None = None,
    start: datetime | None = None,
) -> Path:
    """Write a lot's verdicts as an STDF V4 file, all at once or not at all.

    Parameters
    ----------
    path : str or path-like
        The file to write; its folder must exist.
    verdicts : Verdicts
        The lot: one chip per part, in order.
    part_type : str
        MIR PART_TYP: what the chips are, the model's name.
    lot_id : str
        MIR LOT_ID.
    node_name : str
        MIR NODE_NAM: the tester's name.
    job_name : str, optional
        MIR JOB_NAM, the test program; the method's name by default.
    start : datetime, optional
        MIR SETUP_T and START_T (a naive datetime is local time); now by default.

    Returns
    -------
    Path
        `path`. MRR FINISH_T is the time of writing.

    Raises
    ------
    TesterError
        If `path` cannot be written, or a text (a chip id, the part type, ...) is not ASCII
        or longer than 255 bytes, or `start` is outside STDF's range (1970 to 2106); all
        checked before anything is written.
    """
    path = check_writable(path)
    start_t = _seconds(start if start is not None else datetime.now())
    mir = _mir(part_type=part_type, lot_id=lot_id, node_name=node_name,
               job_name=job_name if job_name is not None else verdicts.method, start_t=start_t)
    far = _record(_FAR, bytes((2, 4)))  # CPU_TYPE 2 (little-endian), STDF_VER 4
    body = far + mir + _parts(verdicts) + _summary(verdicts)
    # FINISH_T, DISP_COD, USR_DESC, EXC_DESC
    mrr = _record(_MRR, struct.pack("<Ic", _seconds(datetime.now()), b" ") + _cn("") * 2)
    with atomic_file(path) as tmp:
        tmp.write_bytes(body + mrr)
    return path


def _record(kind: tuple[int, int], body: bytes) -> bytes:
    """One record: its header (length, type, sub-type) and `body`."""
    return _HEADER.pack(len(body), *kind) + body


def _cn(text: str, what: str = "text") -> bytes:
    """A ``C*n`` field: a length byte and ASCII text; refuse what it cannot hold."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        raise TesterError(f"STDF text must be ASCII: {what} {text!r}") from None
    if len(data) > 255:
        raise TesterError(f"STDF text holds at most 255 characters: {what} {text[:40]!r}... "
                          f"has {len(data)}")
    return bytes((len(data),)) + data


def _seconds(moment: datetime) -> int:
    """A time as STDF's U*4 seconds since 1970."""
    seconds = int(moment.timestamp())
    if not 0 <= seconds < _MISSING_U4:
        raise TesterError(f"STDF times run from 1970 to 2106, got {moment.isoformat()}")
    return seconds


def _mir(*, part_type: str, lot_id: str, node_name: str, job_name: str,
         start_t: int) -> bytes:
    """The Master Information Record: who tested what, when."""
    # SETUP_T, START_T, STAT_NUM, MODE_COD, RTST_COD, PROT_COD, BURN_TIM, CMOD_COD
    fixed = struct.pack("<IIBcccHc", start_t, start_t, 1, b" ", b" ", b" ", 0xFFFF, b" ")
    named = [
        _cn(lot_id, "lot id"), _cn(part_type, "part type"), _cn(node_name, "node name"),
        _cn("cimtest"),  # TSTR_TYP
        _cn(job_name, "job name"), _cn(""), _cn(""), _cn(""),  # JOB_REV, SBLOT_ID, OPER_NAM
        _cn("cimtest"), _cn(cimtest.__version__),  # EXEC_TYP, EXEC_VER
    ]
    # TEST_COD ... SUPR_NAM: 20 more text fields, left empty
    return _record(_MIR, fixed + b"".join(named) + _cn("") * 20)


def _parts(verdicts: Verdicts) -> bytes:
    """PIR, PTR and PRR of every chip, in order."""
    pir = _record(_PIR, bytes((_HEAD, _SITE)))
    # TEST_TXT, ALARM_ID, OPT_FLAG, RES_SCAL, LLM_SCAL, HLM_SCAL, LO_LIMIT, HI_LIMIT, UNITS,
    # C_RESFMT, C_LLMFMT, C_HLMFMT, LO_SPEC, HI_SPEC
    with np.errstate(over="ignore"):  # beyond float32's range: inf, as STDF's R*4 can hold
        threshold = float(np.float32(verdicts.threshold))
        results = verdicts.score.astype(np.float32).tolist()
    ptr_tail = (_cn(f"{verdicts.method} score", "method") + _cn("")
                + struct.pack("<BbbbffBBBBff", _OPT_FLAG, 0, 0, 0, 0.0, threshold, 0, 0, 0, 0,
                              0.0, 0.0))
    ptr_len = _PTR_HEAD.size + len(ptr_tail)
    ptr_header = _HEADER.pack(ptr_len, *_PTR)
    # PART_TXT and PART_FIX (an empty B*n) end every PRR
    prr_tail = {False: _cn(PASS_WORD) + b"\x00", True: _cn(verdicts.flag_word, "flag word")
                + b"\x00"}
    prr_fixed = {
        flag: _PRR_HEAD.pack(_HEAD, _SITE, _PART_FAILED if flag else 0, 1, bin_, bin_,
                             _MISSING_COORD, _MISSING_COORD, 0)
        for flag, bin_ in ((False, PASS_BIN), (True, FAIL_BIN))
    }
    out = []
    for chip, flag, result in zip(verdicts.chips, verdicts.flagged.tolist(), results,
                                  strict=True):
        prr = prr_fixed[flag] + _cn(chip, "chip id") + prr_tail[flag]
        out += (
            pir,
            ptr_header,
            _PTR_HEAD.pack(TEST_NUM, _HEAD, _SITE, _TEST_FAILED if flag else 0,
                           _HIGH_LIMIT_PASSES, result),
            ptr_tail,
            _HEADER.pack(len(prr), *_PRR),
            prr,
        )
    return b"".join(out)


def _summary(verdicts: Verdicts) -> bytes:
    """HBR and SBR of both bins, and the PCR: the lot's counts over all sites."""
    n_flagged = int(np.count_nonzero(verdicts.flagged))
    n_pass = len(verdicts.chips) - n_flagged
    bins = [(PASS_BIN, n_pass, b"P", PASS_WORD), (FAIL_BIN, n_flagged, b"F", verdicts.flag_word)]
    out = [
        _record(kind, struct.pack("<BBHIc", _ALL_HEADS, _SITE, number, count, pf) + _cn(name))
        for kind in (_HBR, _SBR)
        for number, count, pf, name in bins
    ]
    # PART_CNT, RTST_CNT, ABRT_CNT, GOOD_CNT, FUNC_CNT
    pcr = struct.pack("<BBIIIII", _ALL_HEADS, _SITE, len(verdicts.chips), 0, 0, n_pass,
                      _MISSING_U4)
    return b"".join(out) + _record(_PCR, pcr)
