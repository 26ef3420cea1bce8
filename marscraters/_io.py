"""Safe output: every write goes to a temporary path next to the target and is then renamed."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputExistsError

__all__ = ["atomic_path", "check_output"]


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Raise :class:`OutputExistsError` when ``path`` exists and ``overwrite`` is False."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} already exists. Choose another output path, or pass overwrite=True "
            "(--overwrite on the command line) to replace it."
        )
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success rename it onto ``path``.

    Works for files and for directories (Zarr stores).  If the body raises, the temporary path is
    removed and ``path`` is untouched, so no half-written output is ever left behind.

    Examples
    --------
    >>> with atomic_path(tmpdir / "cube.zarr") as tmp:  # doctest: +SKIP
    ...     ds.to_zarr(tmp)
    """
    path = check_output(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    # same directory, so the final rename never crosses a file system
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        if path.exists():
            backup = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, backup)
            os.replace(tmp, path)
            _remove(backup)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
