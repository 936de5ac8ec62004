"""Atomic writes: the target is either the old one or the complete new one, never half."""

import pytest

from cimtest._atomic import atomic_directory, atomic_file, partial_files


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == 0o644


def test_partial_files_are_the_temporaries_of_atomic_file_only(tmp_path):
    target = tmp_path / "x.db"
    (tmp_path / ".x.db.csv.abcd_123.csv").write_text("another target's temporary")
    (tmp_path / ".x.db.new.db").write_text("not a temporary of atomic_file")
    with atomic_file(target) as tmp:
        assert partial_files(target) == [tmp]
    assert partial_files(target) == []


def test_atomic_directory_replaces_only_on_success(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a").write_text("half")
        raise RuntimeError("crash while writing")
    assert (target / "a").read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_directory(target) as tmp:
        (tmp / "b").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert list(tmp_path.iterdir()) == [target]
