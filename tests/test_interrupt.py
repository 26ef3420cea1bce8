"""Ctrl-C during `segment`: the message says what was kept and the command that resumes it, and a
local cluster ends without distributed's tracebacks."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from marscraters import cli
from marscraters import model as mm
from marscraters import segment as sg
from marscraters.mosaic import ingest, mosaic_from_array

from .conftest import REPO

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    keras.utils.set_random_seed(7)
    return str(mm.save_model(mm.symmetric_unet(filter_multiple=0.25, name="tiny"),
                             tmp_path_factory.mktemp("model") / "tiny.keras"))


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """6 x 6 blocks of 512 px: the first is done long before the last."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("cube") / "cube.zarr"
    ingest(mosaic_from_array((rng.random((3072, 3072)) * 255).astype("float32"), (0, 0, 12, 12)), path, chunk=256,
           progress=False)
    return path


def _interrupt_after_first_block(cmd, out, log, env=None):
    """Run ``cmd``, send SIGINT to its process group (what a terminal's Ctrl-C does) once a block
    is done; return the exit status and stderr."""
    done_dir = sg.partial_store_path(out) / sg._DONE_DIR
    env = {**os.environ, "DASK_NUM_WORKERS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    # a terminal starts commands with Ctrl-C live; a test run started in the background (`pytest &`)
    # has SIGINT ignored, which the child would inherit, so reset it as a shell would
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if done_dir.is_dir() and any(done_dir.iterdir()):
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, log.read_text()


def test_the_message_names_what_was_kept_and_the_command_that_resumes(cube, tiny_model, tmp_path):
    out = tmp_path / "pred.zarr"
    assert sg.interrupted_message(out) == "interrupted; no partial output was kept"

    def interrupted(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 1):  # read for the network (value_range is given)
            raise KeyboardInterrupt
        return block

    base = mosaic_from_array(da.from_array(np.full((1200, 1400), 100.0, np.float32), chunks=(600, 700)), (0, 0, 7, 6))
    ds = base.copy()
    ds["ir"] = base["ir"].copy(data=base["ir"].data.map_blocks(interrupted, dtype=np.float32))
    with pytest.raises(KeyboardInterrupt) as caught:
        sg.segment_to_zarr(ds, out, model=tiny_model, chunks=(600, 700), progress=False,
                           value_range=(0, 255))
    partial = sg.partial_store_path(out)
    assert partial.is_dir() and not out.exists()
    # a Python caller: the note of the KeyboardInterrupt, in Python's terms
    note = " ".join(caught.value.__notes__)
    assert f"kept in {partial}" in note and "call segment_to_zarr again" in note and "--" not in note
    # the command line: the command that resumes, without the flags that start over
    text = sg.interrupted_message(out, ["marscraters", "segment", "c.zarr", "--out", str(out), "--overwrite", "-q"])
    assert text.startswith("interrupted; ") and "of 4 blocks are done and kept in" in text
    assert f"\n  marscraters segment c.zarr --out {shlex.quote(str(out))} -q\n" in text
    # onto an existing output, the run cannot be resumed: say how to start over instead
    out.mkdir()
    text = sg.interrupted_message(out, ["marscraters", "segment", "c.zarr", "--out", str(out), "--overwrite"])
    assert f"{out} is unchanged" in text and "cannot be resumed" in text and "--overwrite to start over" in text


def test_ctrl_c_keeps_the_blocks_and_the_printed_command_resumes(cube, tiny_model, tmp_path):
    out = tmp_path / "pred.zarr"
    cmd = [sys.executable, "-m", "marscraters", "segment", str(cube), "--out", str(out), "--model", tiny_model,
           "--chunk", "512", "-q"]
    rc, err = _interrupt_after_first_block(cmd, out, tmp_path / "run.log")
    assert rc == 130, err
    assert "no partial output was kept" not in err and "Traceback" not in err
    assert f"are done and kept in {sg.partial_store_path(out)}" in err
    again = shlex.split(err.split("\n  ", 1)[1].split("\n")[0])
    assert again[:2] == ["marscraters", "segment"] and again[2:] == cmd[4:]
    assert cli.main(again[1:]) == 0  # the printed command, as the command line parses it
    assert xr.open_zarr(out, consolidated=False).attrs["segment_summary"]["blocks_resumed"] >= 1


@pytest.mark.slow
def test_ctrl_c_with_a_local_cluster_ends_cleanly(cube, tiny_model, tmp_path):
    out = tmp_path / "pred.zarr"
    cmd = [sys.executable, "-m", "marscraters", "segment", str(cube), "--out", str(out), "--model", tiny_model,
           "--chunk", "512", "--gpus", "0", "-q"]
    rc, err = _interrupt_after_first_block(cmd, out, tmp_path / "run.log")
    assert rc == 130, err
    # the worker processes ignore the terminal's Ctrl-C and the cluster closes quietly: no
    # tracebacks, no distributed warnings, just our message
    assert "Traceback" not in err and "distributed" not in err and "CancelledError" not in err, err
    assert "are done and kept in" in err and len(err.strip().splitlines()) <= 5, err
