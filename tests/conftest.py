"""Shared test fixtures: the real-data location and a guard against early dask computes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import dask
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where ../shared/data lives (override with MARSCRATERS_SHARED_DATA)."""
    env = os.environ.get("MARSCRATERS_SHARED_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the real Mars data; skips the test when it is absent (a user's fresh clone)."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real Mars data not found at {path} (set MARSCRATERS_SHARED_DATA)")
    return path


class EarlyComputeError(AssertionError):
    """Raised when something computes a dask graph that should have stayed lazy."""


@contextlib.contextmanager
def raise_if_dask_computes():
    """Fail if anything computes a dask graph inside the block (after cf-xarray's helper)."""

    def scheduler(dsk, keys, **kwargs):
        raise EarlyComputeError("a dask graph was computed where the result must stay lazy")

    with dask.config.set(scheduler=scheduler):
        yield


@pytest.fixture
def no_compute():
    """Fixture form of :func:`raise_if_dask_computes`."""
    return raise_if_dask_computes
