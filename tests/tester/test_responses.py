"""read_responses: each format reads back the array it was made from; bad files fail in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cimtest import exceptions
from cimtest.tester.responses import Responses, read_responses

SHAPE = (4, 3)  # four inputs, three outputs each


def _array(n_chips: int = 3, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    """Known responses: float32 of shape (n_chips, *shape)."""
    return np.random.default_rng(seed).standard_normal((n_chips, *shape)).astype(np.float32)


def _table(array: np.ndarray, chips: list[str]) -> pd.DataFrame:
    """The long table of `array`: one row per (chip, input), outputs flattened in C order."""
    n_chips, n_inputs = array.shape[:2]
    flat = array.reshape(n_chips * n_inputs, -1)
    table = pd.DataFrame(flat, columns=[f"out_{k}" for k in range(flat.shape[1])])
    table.insert(0, "input", np.tile(np.arange(n_inputs), n_chips))
    table.insert(0, "chip", np.repeat(chips, n_inputs))
    return table


def _write(table: pd.DataFrame, path) -> None:
    """Write `table` as CSV or Parquet by `path`'s suffix."""
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)


def _error(path, shape=SHAPE, **kwargs) -> str:
    """The one-line message that reading `path` raises."""
    with pytest.raises(exceptions.TesterError) as info:
        read_responses(path, shape, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- arrays ---------------------------------------------------------------------------------


def test_npy_reads_back_bit_identical_with_default_ids(tmp_path):
    array = _array()
    np.save(tmp_path / "r.npy", array)
    got = read_responses(tmp_path / "r.npy", SHAPE)
    assert isinstance(got, Responses)
    assert got.chips == ("0", "1", "2")
    assert got.outputs.dtype == np.float32
    np.testing.assert_array_equal(got.outputs, array)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_npy_numbers_of_any_real_dtype_become_float32(tmp_path, dtype):
    array = np.arange(2 * 4 * 3).reshape(2, *SHAPE).astype(dtype)
    np.save(tmp_path / "r.npy", array)
    got = read_responses(tmp_path / "r.npy", SHAPE)
    assert got.outputs.dtype == np.float32
    np.testing.assert_array_equal(got.outputs, array.astype(np.float32))


def test_one_chip_array_without_the_chip_axis_is_one_chip(tmp_path):
    array = _array(1)[0]
    np.save(tmp_path / "r.npy", array)
    got = read_responses(tmp_path / "r.npy", SHAPE)
    assert got.chips == ("0",)
    np.testing.assert_array_equal(got.outputs, array[np.newaxis])


def test_output_shape_of_several_dimensions(tmp_path):
    array = _array(2, (4, 3, 2))
    np.save(tmp_path / "r.npy", array)
    np.testing.assert_array_equal(read_responses(tmp_path / "r.npy", (4, 3, 2)).outputs, array)


def test_npz_with_chips(tmp_path):
    array = _array()
    np.savez(tmp_path / "r.npz", responses=array, chips=np.array(["a7", "b2", "c9"]))
    got = read_responses(tmp_path / "r.npz", SHAPE)
    assert got.chips == ("a7", "b2", "c9")
    np.testing.assert_array_equal(got.outputs, array)


def test_npz_single_array_of_any_name_and_byte_string_chips(tmp_path):
    array = _array(2)
    np.savez(tmp_path / "r.npz", logits=array, chips=np.array([b"x", b"y"]))
    got = read_responses(tmp_path / "r.npz", SHAPE)
    assert got.chips == ("x", "y")
    np.testing.assert_array_equal(got.outputs, array)


def test_npz_with_no_responses_array_to_choose(tmp_path):
    np.savez(tmp_path / "r.npz", a=_array(), b=_array())
    assert "expected an array named 'responses'" in _error(tmp_path / "r.npz")


def test_chip_ids_given_as_a_list_or_a_file(tmp_path):
    np.save(tmp_path / "r.npy", _array())
    got = read_responses(tmp_path / "r.npy", SHAPE, chip_ids=["p", "q", "r"])
    assert got.chips == ("p", "q", "r")
    (tmp_path / "ids.txt").write_text("p1\n\n  q1  \nr1\n\n")
    assert read_responses(tmp_path / "r.npy", SHAPE, chip_ids=tmp_path / "ids.txt").chips == (
        "p1", "q1", "r1")
    assert read_responses(tmp_path / "r.npy", SHAPE,
                          chip_ids=str(tmp_path / "ids.txt")).chips == ("p1", "q1", "r1")


def test_chip_ids_of_the_wrong_count(tmp_path):
    np.save(tmp_path / "r.npy", _array())
    (tmp_path / "ids.txt").write_text("a\nb\n")
    message = _error(tmp_path / "r.npy", chip_ids=tmp_path / "ids.txt")
    assert "2 chip ids" in message and "3 chips" in message and "ids.txt" in message
    assert "4 chip ids" in _error(tmp_path / "r.npy", chip_ids=["a", "b", "c", "d"])


def test_chip_ids_that_contradict_the_npz(tmp_path):
    np.savez(tmp_path / "r.npz", responses=_array(2), chips=np.array(["a", "b"]))
    assert read_responses(tmp_path / "r.npz", SHAPE, chip_ids=["a", "b"]).chips == ("a", "b")
    assert "differ from the 'chips'" in _error(tmp_path / "r.npz", chip_ids=["b", "a"])


def test_repeated_or_empty_chip_ids(tmp_path):
    np.save(tmp_path / "r.npy", _array())
    assert "'b' appears more than once" in _error(tmp_path / "r.npy", chip_ids=["b", "a", "b"])
    assert "empty id" in _error(tmp_path / "r.npy", chip_ids=["a", "", "c"])


def test_wrong_shape_says_expected_and_found(tmp_path):
    np.save(tmp_path / "r.npy", np.zeros((5, 4, 10), np.float32))
    message = _error(tmp_path / "r.npy", (4, 3))
    assert "(chips, 4, 3)" in message and "(5, 4, 10)" in message


@pytest.mark.parametrize("array", [np.zeros((2, *SHAPE), bool), np.zeros((2, *SHAPE), complex)])
def test_bool_and_complex_refused(tmp_path, array):
    np.save(tmp_path / "r.npy", array)
    assert "expected float or integer" in _error(tmp_path / "r.npy")


def test_pickled_object_array_is_never_unpickled(tmp_path):
    np.save(tmp_path / "r.npy", np.empty((2, *SHAPE), dtype=object), allow_pickle=True)
    assert "cannot read" in _error(tmp_path / "r.npy")


def test_nan_and_inf_counted_and_first_chip_named(tmp_path):
    array = _array()
    array[1, 2, 0] = np.nan
    array[2, 0, 1] = np.inf
    array[2, 3, 2] = -np.inf
    np.savez(tmp_path / "r.npz", responses=array, chips=np.array(["a", "b", "c"]))
    message = _error(tmp_path / "r.npz")
    assert "3 NaN or infinite values" in message and "'b'" in message


def test_values_beyond_float32_are_refused_not_silently_inf(tmp_path):
    array = _array().astype(np.float64)
    array[0, 0, 0] = 1e300
    np.save(tmp_path / "r.npy", array)
    assert "1 NaN or infinite values" in _error(tmp_path / "r.npy")


def test_zero_chips(tmp_path):
    np.save(tmp_path / "r.npy", np.zeros((0, *SHAPE), np.float32))
    assert "no chips" in _error(tmp_path / "r.npy")


def test_missing_unknown_and_corrupt_files(tmp_path):
    assert "no such responses file" in _error(tmp_path / "absent.npy")
    (tmp_path / "r.json").write_text("{}")
    assert "unknown responses format '.json'" in _error(tmp_path / "r.json")
    (tmp_path / "r.npy").write_bytes(b"\x93NUMPY garbage")
    assert "cannot read" in _error(tmp_path / "r.npy")
    (tmp_path / "r.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert "cannot read" in _error(tmp_path / "r.npz")


def test_npy_and_npz_swapped(tmp_path):
    with open(tmp_path / "array.npz", "wb") as f:
        np.save(f, _array())
    assert "found a single .npy array" in _error(tmp_path / "array.npz")
    with open(tmp_path / "archive.npy", "wb") as f:
        np.savez(f, responses=_array())
    assert "found an .npz archive" in _error(tmp_path / "archive.npy")


# --- tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_reads_back_bit_identical(tmp_path, suffix):
    array = _array(3, (4, 3, 2))
    _write(_table(array, ["c1", "c2", "c3"]), tmp_path / f"r{suffix}")
    got = read_responses(tmp_path / f"r{suffix}", (4, 3, 2))
    assert got.chips == ("c1", "c2", "c3")
    assert got.outputs.dtype == np.float32
    np.testing.assert_array_equal(got.outputs, array)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_shuffled_rows_give_the_same_responses(tmp_path, suffix):
    array = _array(5)
    chips = ["e", "a", "d", "b", "c"]
    table = _table(array, chips)
    _write(table, tmp_path / f"sorted{suffix}")
    _write(table.sample(frac=1.0, random_state=1), tmp_path / f"shuffled{suffix}")
    ordered = read_responses(tmp_path / f"sorted{suffix}", SHAPE)
    shuffled = read_responses(tmp_path / f"shuffled{suffix}", SHAPE)
    np.testing.assert_array_equal(ordered.outputs, array)
    assert ordered.chips == tuple(chips)
    # chips in order of first appearance; each chip's outputs in input order
    order = [chips.index(c) for c in shuffled.chips]
    np.testing.assert_array_equal(shuffled.outputs, array[order])


def test_csv_chip_ids_stay_text(tmp_path):
    _write(_table(_array(3), ["NA", "007", "1e3"]), tmp_path / "r.csv")
    assert read_responses(tmp_path / "r.csv", SHAPE).chips == ("NA", "007", "1e3")


def test_parquet_integer_chip_ids_become_text(tmp_path):
    table = _table(_array(2), ["0", "1"])
    table["chip"] = table["chip"].astype(int) + 10
    _write(table, tmp_path / "r.parquet")
    assert read_responses(tmp_path / "r.parquet", SHAPE).chips == ("10", "11")


def test_table_chip_missing_an_input(tmp_path):
    table = _table(_array(2), ["a", "b"])
    _write(table.drop(index=6), tmp_path / "r.csv")  # chip b, input 2
    message = _error(tmp_path / "r.csv")
    assert "chip 'b' has no row for input 2" in message


def test_table_chip_with_an_input_twice(tmp_path):
    table = _table(_array(2), ["a", "b"])
    table.loc[1, "input"] = 3  # chip a: inputs 0, 3, 2, 3
    _write(table, tmp_path / "r.csv")
    assert "chip 'a' has more than one row for input 3" in _error(tmp_path / "r.csv")


def test_table_input_index_out_of_range(tmp_path):
    table = _table(_array(2), ["a", "b"])
    table.loc[5, "input"] = 4
    _write(table, tmp_path / "r.csv")
    message = _error(tmp_path / "r.csv")
    assert "input index 4 of chip 'b' is outside 0..3" in message


def test_table_missing_and_unknown_columns(tmp_path):
    table = _table(_array(2), ["a", "b"])
    _write(table.drop(columns="out_2"), tmp_path / "missing.csv")
    assert "missing column(s) out_2" in _error(tmp_path / "missing.csv")
    _write(table.assign(temperature=25.0), tmp_path / "extra.csv")
    assert "unknown column(s) temperature" in _error(tmp_path / "extra.csv")
    _write(table.rename(columns={"chip": "die"}), tmp_path / "nochip.parquet")
    assert "missing column(s) chip" in _error(tmp_path / "nochip.parquet")


def test_table_with_non_numbers(tmp_path):
    table = _table(_array(2), ["a", "b"]).astype({"out_1": object})
    table.loc[3, "out_1"] = "oops"
    _write(table, tmp_path / "r.csv")
    assert "column 'out_1' must hold numbers" in _error(tmp_path / "r.csv")
    table = _table(_array(2), ["a", "b"]).astype({"input": float})
    table.loc[0, "input"] = 0.5
    _write(table, tmp_path / "r.csv")
    assert "column 'input' must hold integer" in _error(tmp_path / "r.csv")


def test_table_nan_and_empty_cells_are_counted(tmp_path):
    (tmp_path / "r.csv").write_text(
        "chip,input,out_0\n" "a,0,1\n" "a,1,nan\n" "b,0,\n" "b,1,2\n"
    )
    message = _error(tmp_path / "r.csv", (2, 1))
    assert "2 NaN or infinite values" in message and "'a'" in message


def test_table_refuses_chip_ids_and_empty_tables(tmp_path):
    _write(_table(_array(2), ["a", "b"]), tmp_path / "r.csv")
    assert "chip ids cannot be given" in _error(tmp_path / "r.csv", chip_ids=["x", "y"])
    (tmp_path / "empty.csv").write_text("chip,input,out_0,out_1,out_2\n")
    assert "no chips" in _error(tmp_path / "empty.csv")


def test_table_row_without_chip_id(tmp_path):
    (tmp_path / "r.csv").write_text("chip,input,out_0\na,0,1\n,0,2\n")
    assert "empty id" in _error(tmp_path / "r.csv", (1, 1))
