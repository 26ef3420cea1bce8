"""Safe output (`marscraters._io`): temporary path then rename, and nothing of the user's lost."""

from __future__ import annotations

import pytest

from marscraters._io import atomic_path, check_output
from marscraters.errors import OutputExistsError


def test_a_written_file_replaces_a_file_only_with_overwrite(tmp_path):
    out = tmp_path / "a.csv"
    with atomic_path(out) as tmp:
        tmp.write_text("one")
    with pytest.raises(OutputExistsError, match="overwrite"):
        with atomic_path(out) as tmp:
            tmp.write_text("two")
    assert out.read_text() == "one"
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_text("two")
    assert out.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_a_failed_write_leaves_the_old_output_and_no_temporary(tmp_path):
    out = tmp_path / "a.csv"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(out, overwrite=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_overwrite_never_turns_a_folder_into_a_file_or_back(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "precious.txt").write_text("data")
    # refused up front when the caller says what it writes...
    with pytest.raises(OutputExistsError, match="existing folder"):
        check_output(folder, True, folder=False)
    # ...and in any case before the rename
    with pytest.raises(OutputExistsError, match="existing folder"):
        with atomic_path(folder, overwrite=True) as tmp:
            tmp.write_text("a file")
    assert (folder / "precious.txt").read_text() == "data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    afile = tmp_path / "cube.zarr"
    afile.write_text("not a store")
    with pytest.raises(OutputExistsError, match="existing file"):
        with atomic_path(afile, overwrite=True) as tmp:
            tmp.mkdir()
    assert afile.read_text() == "not a store"
    # a folder replaces a folder only when that is an earlier output (here a Zarr store rewritten)
    (folder / "zarr.json").write_text("{}")
    with atomic_path(folder, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in folder.iterdir()) == ["new.txt"]
    assert check_output(tmp_path / "absent.csv", False, folder=False) == tmp_path / "absent.csv"


def test_an_unwritable_place_names_the_output_not_the_temporary(tmp_path):
    from marscraters.errors import OutputWriteError

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    # a file where the output's folder should be: the folder cannot be made
    with pytest.raises(OutputWriteError, match=r"cannot write .*afile/sub/out\.csv"):
        with atomic_path(blocker / "sub" / "out.csv") as tmp:
            tmp.write_text("never")
    # the temporary file cannot be created (its folder vanished): the message names out.csv
    out = tmp_path / "gone" / "out.csv"
    with pytest.raises(OutputWriteError, match="out.csv") as info:
        with atomic_path(out) as tmp:
            tmp.parent.rmdir()
            tmp.write_text("never")
    assert ".tmp-" not in str(info.value)
    # other errors from the body pass through unchanged
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "b.csv") as tmp:
            open(tmp_path / "no-such-input.txt").read()
