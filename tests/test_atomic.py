"""atomic_path: the one temp-file-then-rename writer (atomic_write and capture's save_new use it)."""
import pytest

from curate.common.atomic import atomic_path, atomic_write


def test_never_overwrite_refuses_an_existing_name_and_one_that_appears_meanwhile(tmp_path):
    target = tmp_path / "a.dng"
    target.write_bytes(b"first")
    with pytest.raises(FileExistsError):
        with atomic_path(target, overwrite=False):
            pass
    other = tmp_path / "b.dng"
    with pytest.raises(FileExistsError):
        with atomic_path(other, overwrite=False) as tmp:
            tmp.write_bytes(b"mine")
            other.write_bytes(b"theirs")        # another writer got there first
    assert other.read_bytes() == b"theirs" and target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dng", "b.dng"]   # no temp files left


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "m.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("half")
            raise RuntimeError("disk gone")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["m.csv"]
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new"
