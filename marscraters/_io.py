"""Safe output: every write goes to a temporary path next to the target and is then renamed."""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError, OutputExistsError, OutputWriteError

__all__ = ["atomic_path", "check_not_input", "check_output", "input_paths", "json_ready", "output_kind"]


def json_ready(value: Any) -> Any:
    """``value`` made JSON-friendly: NaN becomes None (JSON has no NaN), NumPy numbers become
    Python ones, tables lists of records; dicts, lists and tuples are converted all the way down."""
    import numpy as np
    import pandas as pd  # both imported on first use: this module is imported at start-up

    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return json_ready(value.to_dict(orient="records"))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def input_paths(*inputs: Any) -> list[Path]:
    """The local paths among ``inputs``: paths themselves, xarray objects opened from a file or
    store (their ``encoding["source"]``), and lists of either; None, URLs and in-memory objects
    are skipped."""
    found: list[Path] = []
    for item in inputs:
        if item is None:
            continue
        if isinstance(item, (list, tuple)):
            found.extend(input_paths(*item))
            continue
        if not isinstance(item, (str, os.PathLike)):
            item = (getattr(item, "encoding", None) or {}).get("source")
            if not isinstance(item, (str, os.PathLike)):
                continue
        if "://" in os.fspath(item):  # a remote store: nothing on this disk to destroy
            continue
        found.append(Path(item))
    return found


def check_not_input(path: str | os.PathLike, *inputs: Any) -> Path:
    """Refuse an output that would destroy one of its command's inputs, before anything is touched.

    ``path`` may not be one of ``inputs`` (paths, or xarray objects opened from files; see
    :func:`input_paths`), hold one (a folder above it, which ``overwrite`` would replace), or lie
    inside one (a Zarr store or a folder of tiles).  Symbolic links are followed.

    Raises
    ------
    InvalidArgumentError
        Naming the input and the fix (another output path), even with ``overwrite``.
    """
    path = Path(path)
    out = path.resolve()
    for given in input_paths(*inputs):
        inp = given.resolve()
        same = out == inp or (out.exists() and inp.exists() and os.path.samefile(out, inp))
        if same:
            problem, fix = "is the input", "Choose another output path"
        elif out in inp.parents:
            problem, fix = "holds the input", f"Choose an output path outside the folders above {given}"
        elif inp in out.parents:
            problem, fix = "is inside the input", f"Choose an output path outside {given}"
        else:
            continue
        raise InvalidArgumentError(f"the output {path} {problem} {given}: writing it would destroy the input "
                                   f"(even with overwrite). {fix}.")
    return path


#: The folders ``overwrite`` may replace, by what they always hold: the outputs that are written
#: whole through :func:`atomic_path` (a Zarr store: ``ingest``, ``segment``, ``targets``; a chips
#: folder: ``write_chips``).  Any other folder may hold the user's own files.
_FOLDER_KINDS: dict[str, str] = {
    "zarr": "a Zarr store (zarr.json, or .zgroup/.zarray/.zattrs)",
    "chips": "a chips folder (images/, labels/ and index.csv)",
}


def output_kind(path: str | os.PathLike) -> str | None:
    """What earlier output the folder ``path`` is: ``"zarr"``, ``"chips"``, or None (anything else).

    Examples
    --------
    >>> output_kind("cube.zarr")  # doctest: +SKIP
    'zarr'
    """
    path = Path(path)
    try:
        names = set(os.listdir(path))
    except OSError:  # a file, or nothing there
        return None
    if names & {"zarr.json", ".zgroup", ".zarray", ".zattrs"}:
        return "zarr"
    if (path / "images").is_dir() and (path / "labels").is_dir() and (path / "index.csv").is_file():
        return "chips"
    return None


def _working_folder_clash(path: Path) -> str | None:
    """Why ``path`` may not be an output: it is the current folder or a folder above it (None if not)."""
    try:
        here, out = Path.cwd().resolve(), path.resolve()
    except OSError:  # the current folder was removed: nothing to protect
        return None
    if out == here:
        return "is the current folder"
    if out in here.parents:
        return "holds the current folder"
    return None


def _check_replaceable(path: Path, kind: str | None) -> None:
    """Refuse to replace the existing folder ``path`` unless it is an earlier output (of ``kind``)."""
    found = output_kind(path)
    try:
        held = sorted(os.listdir(path))
    except OSError:
        held = []
    if not held:  # an empty folder: nothing to lose
        return
    if found is not None and (kind is None or found == kind):
        return
    if found is not None:
        raise OutputExistsError(
            f"{path} is {_FOLDER_KINDS[found]}, but this writes {_FOLDER_KINDS.get(kind, kind)}: overwrite replaces "
            f"only an earlier output of the same kind. Choose a new output path, or remove {path} yourself first.")
    sample = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
    raise OutputExistsError(
        f"{path} is an existing folder but no earlier output (it holds {sample}: no Zarr store's zarr.json, no "
        f"chips' images/, labels/ and index.csv), so overwrite does not replace it: that would delete what it holds. "
        f"Choose a new output path (a new name inside {path} works too), or remove the folder yourself first.")


def check_output(path: str | os.PathLike, overwrite: bool, *, folder: bool | None = None,
                 inputs: Any = (), kind: str | None = None) -> Path:
    """Raise :class:`OutputExistsError` when ``path`` exists and ``overwrite`` is False.

    With ``folder`` (True: the output is a folder such as a Zarr store; False: a file), an
    existing path of the other kind is refused even with ``overwrite``: a file never replaces a
    folder and what it holds, nor a folder a file.  An output that is one of ``inputs``, holds
    one or lies inside one is refused first (:func:`check_not_input`), with or without
    ``overwrite``.

    ``overwrite`` replaces an existing folder only when it is an earlier output, which it
    recognises by the files such an output always holds (:func:`output_kind`): a Zarr store or
    a chips folder, of ``kind`` (``"zarr"`` or ``"chips"``) when given; or an empty folder.  A
    folder of other files, the current folder or a folder above it is refused, with or without
    ``overwrite``.

    Raises
    ------
    OutputExistsError
        As above, naming ``path`` and the fix (another output path, or removing it yourself).
    InvalidArgumentError
        For an output that would destroy one of ``inputs``.
    """
    if kind is not None and kind not in _FOLDER_KINDS:
        raise InvalidArgumentError(f"kind must be one of {sorted(_FOLDER_KINDS)} or None, got {kind!r}")
    path = check_not_input(path, inputs)
    if path.name in ("", ".", ".."):
        path = path.resolve()  # "." has no name to put a temporary one beside
    clash = _working_folder_clash(path) if path.exists() else None
    if clash:
        raise OutputExistsError(
            f"the output {path} {clash}: replacing it would delete the folder you are working in and what it holds "
            f"(even with overwrite). Give a new path, e.g. a new name inside it, or remove it yourself first.")
    if folder is not None and path.exists() and path.is_dir() != folder:
        raise OutputExistsError(_kind_clash(path))
    if path.is_dir() and folder is not False:
        # before the exists-message below suggests overwrite, which would not replace this folder
        _check_replaceable(path, kind)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} already exists. Choose another output path, or pass overwrite=True "
            "(--overwrite on the command line) to replace it."
        )
    return path


def _kind_clash(path: Path) -> str:
    if path.is_dir():
        return (f"{path} is an existing folder, and the output is a file: the folder is left alone. Give a file "
                "path (inside that folder or elsewhere), or remove the folder yourself.")
    return f"{path} is an existing file, and the output is a folder (e.g. a Zarr store): give another path."


def _write_error(path: Path, exc: OSError) -> OutputWriteError:
    return OutputWriteError(f"cannot write {path}: {exc.strerror or exc}. Check that its folder can be created and "
                            "written to, and that the disk has space, or choose another output path.")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False, *, inputs: Any = (),
                kind: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to; on success rename it onto ``path``.

    Works for files and for directories (Zarr stores).  If the body raises, the temporary path is
    removed and ``path`` is untouched, so no half-written output is ever left behind.  ``path``
    is checked by :func:`check_output` (``inputs`` and ``kind`` as there); an existing folder is
    replaced only by an output of its own kind (a Zarr store by a Zarr store, a chips folder by
    chips), checked again before the rename, when what was written is known: ``kind``, else the
    kind :func:`output_kind` sees in the written folder (a folder of no known kind may then replace
    an earlier output; every writer of folders passes ``kind``).

    Examples
    --------
    >>> with atomic_path(tmpdir / "cube.zarr") as tmp:  # doctest: +SKIP
    ...     ds.to_zarr(tmp)
    """
    path = check_output(path, overwrite, inputs=inputs, kind=kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    # same directory, so the final rename never crosses a file system
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        if path.exists() and path.is_dir() != tmp.is_dir():
            # never let overwrite=True turn a folder (and what it holds) into a file, or back
            raise OutputExistsError(_kind_clash(path))
        if path.is_dir():
            # now that the output is written, its kind is known: a chips folder never replaces a
            # Zarr store, nor a store chips (check_output could only tell an output from other files)
            _check_replaceable(path, kind or output_kind(tmp))
        if path.exists():
            backup = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, backup)
            os.replace(tmp, path)
            _remove(backup)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        # the file system refused the temporary file or the rename: say so for the output the
        # user named, not for a temporary name they never saw
        names = {tmp.name, path.name}
        if any(Path(str(f)).name in names for f in (exc.filename, getattr(exc, "filename2", None)) if f):
            raise _write_error(path, exc) from exc
        raise
    except BaseException:
        _remove(tmp)
        raise
