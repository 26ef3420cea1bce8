"""Tests of marscraters.segment: lazy, seamless map_overlap inference and resumable Zarr writes.

A tiny random Symmetric UNet (filter_multiple=0.25, the real 3x3 architecture with its 509-px
receptive margin) keeps the network fast; images are 1200 x 1400 px so that blocks of 512 px and
more, each with a 512-px halo, really do overlap.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from marscraters import model as mm
from marscraters import segment as sg
from marscraters.errors import InvalidArgumentError, MissingCRSError, ModelError, MosaicError, OutputExistsError
from marscraters.mosaic import ingest, mosaic_from_array, open_mosaic

from .conftest import REPO, raise_if_dask_computes

keras = pytest.importorskip("keras")

SHAPE = (1200, 1400)  # not multiples of 128: the whole-image reference pads unevenly
BOUNDS = (30.0, -10.0, 30.0 + SHAPE[1] / 256, -10.0 + SHAPE[0] / 256)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    keras.utils.set_random_seed(7)
    model = mm.symmetric_unet(filter_multiple=0.25, name="tiny")
    path = mm.save_model(model, tmp_path_factory.mktemp("model") / "tiny.keras")
    return model, str(path)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = rng.random(SHAPE) * 255
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    for cy, cx, r in ((300, 300, 40), (700, 1000, 90), (1100, 200, 25)):  # a few crater-like bowls
        img -= 120 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    return np.clip(img, 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def reference(tiny_model, image):
    """One whole-image prediction: the result every chunking must reproduce."""
    return mm.predict_image(tiny_model[0], image, tile=None)


@pytest.fixture
def ds(image):
    return mosaic_from_array(da.from_array(image, chunks=(256, 350)), BOUNDS, name="test mosaic")


@pytest.fixture(scope="module")
def cube(image, tmp_path_factory):
    path = tmp_path_factory.mktemp("cube") / "cube.zarr"
    ingest(mosaic_from_array(image, BOUNDS, name="test cube"), path, chunk=256, progress=False)
    return path


# ------------------------------------------------------------------------------- laziness
def test_segment_is_lazy_and_builds_without_running_the_network(ds, tiny_model):
    before = sg._cache_info()
    with raise_if_dask_computes():
        prob = sg.segment(ds, tiny_model[1], chunks=512)
        lazy_mean = sg.segment(ds, tiny_model[1], nodata_fill="mean")  # the mosaic mean stays lazy too
        _ = (prob.chunks, prob.attrs, prob.rio.crs, prob.rio.transform(), prob[:10, :10])
    after = sg._cache_info()
    assert isinstance(prob.data, da.Array) and isinstance(lazy_mean.data, da.Array)
    # meta= is passed: the block function never ran on an empty array while the graph was built
    assert after["blocks"] == before["blocks"]
    assert after["predict_calls"] == before["predict_calls"]


def test_result_is_on_the_mosaic_grid_and_crs(ds, tiny_model):
    prob = sg.segment(ds, tiny_model[1])
    assert prob.name == "crater_probability"
    assert prob.dims == ("y", "x") and prob.shape == SHAPE and prob.dtype == np.float32
    np.testing.assert_array_equal(prob.x.values, ds.x.values)
    np.testing.assert_array_equal(prob.y.values, ds.y.values)
    assert prob.rio.crs == ds.rio.crs
    assert prob.rio.transform() == ds.rio.transform()
    assert prob.attrs["depth"] == 512  # receptive margin 509 rounded up to 128
    assert prob.attrs["model_name"] == "tiny"


# ------------------------------------------------------------------------------- no seams
@pytest.mark.parametrize(
    "chunks",
    [None, 512, (600, 700), {"y": 1200, "x": 520}],
    ids=["auto-one-block", "512-merged-edges", "600x700", "full-rows-520"],
)
def test_any_chunking_equals_one_whole_image_prediction(ds, tiny_model, reference, chunks):
    prob = sg.segment(ds, tiny_model[1], chunks=chunks)
    values = prob.compute(scheduler="threads").values
    # everywhere, outer edges included: blocks are padded onto the whole image's pooling grid
    assert np.abs(values - reference).max() <= 1e-3
    assert values.min() >= 0 and values.max() <= 1


@pytest.mark.parametrize("n", [300, 3072, 4096, 4200, 6000, 6144, 7168, 7200, 10000, 20000, 92160])
@pytest.mark.parametrize("step,depth", [(512, 512), (128, 512), (1024, 512), (128, 1536), (2048, 512), (3000, 512), (5000, 512), (3072, 64)])
def test_automatic_blocks_are_the_fewest_whose_windows_fit(n, step, depth):
    sizes = sg._auto_axis(n, step, depth)
    assert sum(sizes) == n and min(sizes) > 0
    assert all(b % step == 0 for b in np.cumsum(sizes)[:-1])  # borders on the storage grid
    core = max(sg._AUTO_BLOCK, step)
    if len(sizes) == 1:
        assert n <= core + 2 * depth  # one block: a window no wider than an interior block's
    else:
        # every window (core plus the halo towards its neighbours) fits an interior block's window
        assert max(sizes[0], sizes[-1]) + depth <= core + 2 * depth
        assert all(s + 2 * depth <= core + 2 * depth for s in sizes[1:-1])
        # and one block fewer could not fit (each border costs 2 * depth of halo work), when the
        # storage grid can place borders where the fewest blocks need them (it divides the block)
        if sg._AUTO_BLOCK % step == 0:
            fewer = len(sizes) - 1 - (step > 512)
            assert n > (core + 2 * depth if fewer == 1 else 2 * (core + depth) + (fewer - 2) * core)


def test_automatic_blocks_give_every_worker_a_block():
    ir = xr.DataArray(da.zeros((4096, 4096), chunks=512), dims=("y", "x"))
    ir.encoding["chunks"] = (512, 512)
    assert sg._block_chunks(ir, None, 512) == ((4096,), (4096,))  # no halo at all
    ys, xs = sg._block_chunks(ir, None, 512, workers=4)
    assert len(ys) * len(xs) >= 4 and ys == xs == (2048, 2048)
    ys, xs = sg._block_chunks(ir, None, 512, workers=3)
    assert len(ys) * len(xs) >= 3
    # a thin strip is split along its long axis only
    strip = xr.DataArray(da.zeros((512, 6144), chunks=512), dims=("y", "x"))
    strip.encoding["chunks"] = (512, 512)
    ys, xs = sg._block_chunks(strip, None, 512, workers=4)
    assert ys == (512,) and len(xs) >= 4


def test_test_time_augmentation_is_seamless_too(ds, tiny_model, image):
    reference = mm.predict_image(tiny_model[0], image, tile=None, tta=2)
    for chunks in ((600, 700), 512):
        prob = sg.segment(ds, tiny_model[1], chunks=chunks, tta=2)
        assert prob.attrs["tta"] == 2
        assert np.abs(prob.compute(scheduler="threads").values - reference).max() <= 1e-3
    with pytest.raises(InvalidArgumentError, match="tta"):
        sg.segment(ds, tiny_model[1], tta=3)


@pytest.mark.parametrize("chunks", [None, 512, (600, 700)], ids=["auto-one-block", "512-merged-edges", "600x700"])
def test_a_16_bit_mosaic_gets_one_stretch_whatever_the_chunking(image, tiny_model, chunks):
    # read on 0..255 a 16-bit mosaic is all white; the grey-level rule stretches it, once for the
    # whole mosaic (from a sample that depends on its shape only), never per block
    img16 = image * 200 + 3000
    ds16 = mosaic_from_array(da.from_array(img16, chunks=(256, 350)), BOUNDS)
    with pytest.warns(UserWarning, match="beyond the 8-bit 0..255 scale"):
        values = sg.segment(ds16, tiny_model[1], chunks=chunks).compute(scheduler="threads").values
    scale = mm.stretch_range(mm.grey_sample(img16))
    assert 3000 <= scale[0] < scale[1] <= 54000
    reference = mm.predict_image(tiny_model[0], img16, tile=None, value_range=scale)
    assert np.abs(values - reference).max() <= 1e-3


def test_the_grey_sample_depends_on_the_shape_only():
    rng = np.random.default_rng(1)
    for shape in ((1200, 1400), (4200, 4100)):  # a strided lattice; windows beyond 16 Mpx
        img = rng.integers(0, 65535, shape, dtype=np.uint16)
        whole = mm.grey_sample(img)
        assert 0.4e6 < whole.size <= 1.1e6
        for chunks in (256, (700, 1000)):
            np.testing.assert_array_equal(mm.grey_sample(da.from_array(img, chunks=chunks)).compute(), whole)


def test_the_seam_test_can_fail_without_overlap(ds, tiny_model, reference):
    """Negative control: with no overlap the block borders do show (so the test above means something)."""
    values = sg.segment(ds, tiny_model[1], chunks=(600, 700), depth=0).compute(scheduler="threads").values
    assert np.abs(values - reference).max() > 1e-2


def test_windows_are_batched_into_predict_calls(image):
    """Blocks cut into many windows: several per predict call, and still the whole-image result.

    A 1x1-kernel UNet (receptive margin 127 px, so a 128-px halo is exact) keeps 128-px tiles cheap.
    """
    keras.utils.set_random_seed(3)
    model = mm.symmetric_unet(kernel_size=1, filter_multiple=0.25, name="k1")
    reference = mm.predict_image(model, image, tile=None)
    ds = mosaic_from_array(image, BOUNDS)
    before = sg._cache_info()
    prob = sg.segment(ds, model, chunks=(300, 350), tile=128, batch_size=5)
    assert prob.attrs["depth"] == 128
    values = prob.compute(scheduler="threads").values
    after = sg._cache_info()
    windows = after["windows"] - before["windows"]
    calls = after["predict_calls"] - before["predict_calls"]
    assert windows > 2 * calls and calls >= 16  # several windows per predict call, 16 blocks
    err = np.abs(values - reference).max()
    # the control: without overlap the 16 blocks show their borders (weakly: 1x1 kernels see little)
    seams = sg.segment(ds, model, chunks=(300, 350), depth=0).compute(scheduler="threads").values
    assert err <= 1e-5 < 1e-4 < np.abs(seams - reference).max()


def test_nodata_gets_zero_and_mean_fill_matches_whole_image(image, tiny_model):
    img = image.copy()
    img[100:400, 200:900] = np.nan
    ref = mm.predict_image(tiny_model[0], img, tile=None)  # fills NaN with the image mean
    ds = mosaic_from_array(da.from_array(img, chunks=600), BOUNDS)
    prob = sg.segment(ds, tiny_model[1], chunks=(600, 700), nodata_fill="mean").compute(scheduler="threads").values
    valid = np.isfinite(img)
    assert np.abs(prob - ref)[valid].max() <= 1e-3
    assert (prob[~valid] == 0).all()


def test_all_nan_chunks_give_zero_without_running_the_network(image, tiny_model):
    img = image.copy()
    img[:600, :700] = np.nan  # exactly one inference block
    ds = mosaic_from_array(img, BOUNDS)
    before = sg._cache_info()
    prob = sg.segment(ds, tiny_model[1], chunks=(600, 700)).compute(scheduler="threads").values
    after = sg._cache_info()
    assert (prob[:600, :700] == 0).all()
    assert prob[600:, 700:].std() > 0
    assert after["blocks"] - before["blocks"] == 4
    assert after["predicted_blocks"] - before["predicted_blocks"] == 3

    empty = mosaic_from_array(np.full((300, 400), np.nan), (0, 0, 4, 3))
    assert (sg.segment(empty, tiny_model[1], nodata_fill="mean").compute().values == 0).all()


def test_constant_blocks_do_not_raise(tiny_model):
    img = np.full((700, 650), 80.0, dtype=np.float32)
    img[:, 400:] = 200.0
    prob = sg.segment(mosaic_from_array(img, (0, 0, 6.5, 7)), tiny_model[1], chunks=(700, 325)).compute().values
    assert np.isfinite(prob).all() and prob.shape == img.shape


# ------------------------------------------------------------------------------- the model
def test_in_memory_model_travels_as_a_path(ds, tiny_model, reference):
    model = tiny_model[0]
    prob = sg.segment(ds, model, chunks=(600, 700))
    assert prob.attrs["model_file"].endswith(".keras") and Path(prob.attrs["model_file"]).exists()

    found = []

    class Spy(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, keras.Model):
                found.append(obj)
            return None

    import io

    import cloudpickle

    graph = dict(prob.data.__dask_graph__())
    buf = io.BytesIO()
    Spy(buf, protocol=5).dump(cloudpickle.loads(cloudpickle.dumps(graph)))
    assert found == []
    assert np.abs(prob.compute(scheduler="threads").values - reference).max() <= 1e-3


def test_model_is_loaded_once_per_process(tiny_model, ds):
    sg.segment(ds, tiny_model[1], chunks=(600, 700)).compute(scheduler="threads")
    sg.segment(ds, tiny_model[1], chunks=512).compute(scheduler="threads")
    assert sg._cache_info()["loads"][str(Path(tiny_model[1]).resolve())] == 1


# ------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(ds, tiny_model, tmp_path):
    path = tiny_model[1]
    no_crs = xr.Dataset({"ir": (("y", "x"), np.ones((4, 4), np.float32))}, coords={"y": np.arange(4.0), "x": np.arange(4.0)})
    with pytest.raises(MissingCRSError, match="no CRS"):
        sg.segment(no_crs, path)
    with pytest.raises(MosaicError, match="no 'ir' variable"):
        sg.segment(ds.rename({"ir": "band"}), path)
    three = mm.symmetric_unet(filter_multiple=0.25, input_shape=(None, None, 3))
    three_path = mm.save_model(three, tmp_path / "rgb.keras")
    with pytest.raises(ModelError, match="3 input channel"):
        sg.segment(ds, three_path)
    with pytest.raises(ModelError, match="one band"):
        sg.segment(ds, three)
    with pytest.raises(ModelError, match="does not exist"):
        sg.segment(ds, tmp_path / "missing.keras")
    with pytest.raises(InvalidArgumentError, match="'auto' .*one stretch for the whole mosaic"):
        sg.segment(ds, path, value_range="median")
    with pytest.raises(InvalidArgumentError, match="high > low"):
        sg.segment(ds, path, value_range=(255, 0))
    with pytest.raises(InvalidArgumentError, match="depth"):
        sg.segment(ds, path, depth=-1)
    for chunks in (0, -5, (0, 256), {"y": 256, "x": 0}):  # once a ZeroDivisionError, or dask's own error
        with pytest.raises(InvalidArgumentError, match=r"is no block size: a block side must be a positive number"):
            sg.segment(ds, path, chunks=chunks)
    with pytest.raises(InvalidArgumentError, match="nodata_fill"):
        sg.segment(ds, path, nodata_fill="median")


# ------------------------------------------------------------------------------- Zarr output
def test_segment_to_zarr_writes_the_lazy_result_with_crs(cube, tiny_model, tmp_path):
    ds = open_mosaic(cube)
    out = sg.segment_to_zarr(ds, tmp_path / "pred.zarr", model=tiny_model[1], chunks=512, progress=False)
    expected = sg.segment(ds, tiny_model[1], chunks=512).compute(scheduler="threads")
    got = xr.open_zarr(out, decode_coords="all", consolidated=False)
    np.testing.assert_array_equal(got["crater_probability"].values, expected.values)
    assert got.rio.crs == ds.rio.crs
    np.testing.assert_array_equal(got.x.values, ds.x.values)
    summary = got.attrs["segment_summary"]
    assert summary["blocks"] == summary["blocks_computed"] == 4 and summary["pixels"] == SHAPE[0] * SHAPE[1]
    # region writes stay on whole Zarr chunks, at most 1024 px
    assert all(c <= 1024 for c in got["crater_probability"].encoding["chunks"])
    assert not sg.partial_store_path(out).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(["zarr.json", "crater_probability", "x", "y", "spatial_ref"])

    with pytest.raises(OutputExistsError, match="already exists"):
        sg.segment_to_zarr(ds, out, model=tiny_model[1], chunks=512, progress=False)
    sg.segment_to_zarr(ds, out, model=tiny_model[1], chunks=(600, 700), overwrite=True, progress=False)
    assert xr.open_zarr(out, consolidated=False).attrs["segment_summary"]["blocks"] == 4


def test_a_catalog_refuses_the_model_file_saved_again_after_it_made_the_map(cube, tiny_model, tmp_path):
    import time

    from marscraters.assemble import catalog_from_probability

    model = mm.save_model(tiny_model[0], tmp_path / "run" / "best.keras")
    out = sg.segment_to_zarr(open_mosaic(cube), tmp_path / "pred.zarr", model=str(model), chunks=512, progress=False)
    prob = xr.open_zarr(out, decode_coords="all", consolidated=False, chunks=None)["crater_probability"]
    opts = {"max_diameter_px": 40}
    catalog_from_probability(prob, extract_options=opts, progress=False)  # the model that made it: used
    time.sleep(1.1)  # (saved_at has whole seconds)
    mm.save_model(tiny_model[0], model, overwrite=True)
    # a training run that went on in the same folder: its settings are not the map's
    with pytest.raises(InvalidArgumentError, match=r"saved again .* after it made this probability map.*--model FILE"):
        catalog_from_probability(prob, extract_options=opts, progress=False)
    catalog_from_probability(prob, model=str(model), extract_options=opts, progress=False)  # named: the caller's choice


def test_a_failed_run_with_mean_fill_resumes_to_the_same_result(image, tiny_model, tmp_path):
    """A block that raises stops the run; the rerun reuses the recorded mosaic mean and completes."""
    img = image.copy()
    img[50:300, 100:500] = np.nan
    reads = []

    def flaky(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 1):
            reads.append(1)
            # the first read is for the grey-level sample, the second for the mosaic mean, the third for the network
            if len(reads) == 3:
                raise RuntimeError("simulated crash")
        return block

    base = mosaic_from_array(da.from_array(img, chunks=(600, 700)), BOUNDS)
    ds = base.copy()
    ds["ir"] = base["ir"].copy(data=base["ir"].data.map_blocks(flaky, dtype=np.float32))
    out = tmp_path / "pred.zarr"
    kw = dict(model=tiny_model[1], chunks=(600, 700), nodata_fill="mean", progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sg.segment_to_zarr(ds, out, **kw)
    assert sg.partial_store_path(out).exists() and not out.exists()
    sg.segment_to_zarr(ds, out, **kw)
    got = xr.open_zarr(out, consolidated=False)
    assert got.attrs["segment_summary"]["blocks_computed"] >= 1
    expected = sg.segment(base, tiny_model[1], chunks=(600, 700), nodata_fill="mean").compute(scheduler="threads").values
    np.testing.assert_array_equal(got["crater_probability"].values, expected)


def test_a_run_is_not_resumed_over_a_mosaic_whose_pixels_changed(image, tiny_model, tmp_path, monkeypatch):
    """The same grid, name and settings, other pixels (a cube ingested again from another image):
    the blocks already done were computed from the old pixels, so the run is refused, not mixed."""
    write, writes = sg._write_block, []

    def fail_at_the_last_block(block, store, region, marker, digest=""):
        writes.append(region)
        if len(writes) == 4:  # the last of the 4 blocks: the run stops there
            raise RuntimeError("simulated crash")
        return write(block, store, region, marker, digest)

    out = tmp_path / "pred.zarr"
    kw = dict(model=tiny_model[1], chunks=(600, 700), value_range=(0, 255), progress=False)
    old = mosaic_from_array(image, BOUNDS, name="test cube")
    new = mosaic_from_array(np.ascontiguousarray(image[::-1, ::-1]), BOUNDS, name="test cube")
    monkeypatch.setattr(sg, "_write_block", fail_at_the_last_block)
    with pytest.raises(RuntimeError, match="simulated crash"), dask.config.set(scheduler="sync"):
        sg.segment_to_zarr(old, out, **kw)
    monkeypatch.undo()
    partial = sg.partial_store_path(out)
    done = sg._done_blocks(partial)
    assert len(done) == 3
    # the unfinished store reads like a map with zeros where blocks are missing: catalog refuses it
    assert "unfinished segment run into" in sg.unfinished_run(partial) and "3 of 4 blocks" in sg.unfinished_run(partial)
    from marscraters import cli

    assert cli.main(["-q", "catalog", str(partial), "--out", str(tmp_path / "c.gpkg"), "--no-verify"]) == 2
    assert not (tmp_path / "c.gpkg").exists()
    with pytest.raises(InvalidArgumentError, match=r"pixels under \d of the \d blocks .*\(--no-resume\)"):
        sg.segment_to_zarr(new, out, **kw)
    # the same pixels resume; other pixels start over when asked to
    sg.segment_to_zarr(new, out, resume=False, **kw)
    expected = sg.segment(new, tiny_model[1], chunks=(600, 700), value_range=(0, 255)).compute(scheduler="threads")
    np.testing.assert_array_equal(xr.open_zarr(out, consolidated=False)["crater_probability"].values, expected.values)
    assert sg.unfinished_run(out) is None


def test_cli_refuses_an_existing_output(cube, tiny_model, tmp_path, capsys):
    out = tmp_path / "pred.zarr"
    out.mkdir()
    assert sg._main([str(cube), "--out", str(out), "--model", tiny_model[1], "-q"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_segment_subcommand_plugs_into_the_main_parser(cube, tiny_model, tmp_path):
    import argparse

    parser = argparse.ArgumentParser(prog="marscraters")
    parser.add_argument("-q", "--quiet", action="store_true")
    sg.add_segment_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["-q", "segment", str(cube), "--out", "p.zarr", "--gpus", "2", "--batch-size", "8"])
    assert (args.func, args.quiet, args.gpus, args.batch_size, args.resume) == (sg.run_segment_cli, True, "2", 8, True)
    args = parser.parse_args(["segment", str(cube), "--out", "p.zarr", "--gpus", "1", "--scheduler", "tcp://h:8786"])
    with pytest.raises(InvalidArgumentError, match="not both"):
        args.func(args)
    args = parser.parse_args(["segment", str(cube), "--out", str(tmp_path / "p.zarr"), "--gpus", "lots"])
    with pytest.raises(InvalidArgumentError, match="--gpus"):
        args.func(args)


@pytest.mark.slow
def test_a_killed_run_resumes_and_matches_an_uninterrupted_run(image, tiny_model, tmp_path):
    """SIGKILL a real `python -m marscraters.segment` run part-way, resume it, compare bit for bit."""
    big = np.tile(image, (2, 2))[:1536, :1536]  # 3 x 3 blocks of 512
    cube = tmp_path / "cube.zarr"
    ingest(mosaic_from_array(big, (0, 0, 6, 6)), cube, chunk=256, progress=False)
    out = tmp_path / "pred.zarr"
    partial = sg.partial_store_path(out)
    done_dir = partial / sg._DONE_DIR
    env = {**os.environ, "DASK_NUM_WORKERS": "1", "PYTHONPATH": str(REPO)}  # one block at a time
    cmd = [sys.executable, "-m", "marscraters.segment", str(cube), "--out", str(out), "--model", tiny_model[1], "--chunk", "512", "-q"]
    log = tmp_path / "run.log"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if done_dir.is_dir() and any(done_dir.iterdir()):
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended by itself before it could be killed:\n{log.read_text()[-2000:]}"
    done = len(list(done_dir.iterdir()))
    assert 1 <= done < 9
    assert not out.exists()  # nothing at the final path until the store is complete

    ds = open_mosaic(cube)
    with pytest.raises(InvalidArgumentError, match="other inputs or settings"):
        sg.segment_to_zarr(ds, out, model=tiny_model[1], chunks=512, depth=256, progress=False)
    before = sg._cache_info()["blocks"]
    sg.segment_to_zarr(ds, out, model=tiny_model[1], chunks=512, progress=False)
    resumed = xr.open_zarr(out, consolidated=False)
    summary = resumed.attrs["segment_summary"]
    assert summary["blocks_resumed"] == done and summary["blocks_computed"] == 9 - done
    assert sg._cache_info()["blocks"] - before == 9 - done  # only the missing blocks ran

    whole = sg.segment_to_zarr(ds, tmp_path / "whole.zarr", model=tiny_model[1], chunks=512, progress=False)
    a = resumed["crater_probability"].values
    b = xr.open_zarr(whole, consolidated=False)["crater_probability"].values
    assert a.tobytes() == b.tobytes()


# ------------------------------------------------------------------------------- storage chunks
@pytest.mark.parametrize("n,chunk", [(4160, 1024), (2100, 1024), (5000, 700), (3000, 300), (1400, 512)])
def test_explicit_blocks_keep_their_borders_so_store_chunks_stay_large(n, chunk):
    """``--chunk 1024`` on a 4160-px cube wrote 64-px storage chunks: dask's ensure_minimum_chunksize
    turned the thin last block (64 px) into (..., 576, 512), whose borders only a 64-px grid divides.
    Thin blocks are now merged into their neighbour, so every border stays on the asked-for grid."""
    ir = xr.DataArray(da.zeros((n, n), chunks=512), dims=("y", "x"))
    ys, xs = sg._block_chunks(ir, chunk, 512)
    assert ys == xs and sum(ys) == n and min(ys) >= 512
    assert all(b % chunk == 0 for b in np.cumsum(ys)[:-1])  # borders on the requested grid
    store = sg._store_chunk(ys)
    assert store >= sg._MIN_STORE_CHUNK and all(b % store == 0 for b in np.cumsum(ys)[:-1])
    if n == 4160:
        assert ys == (1024, 1024, 1024, 1088) and store == 1024


@pytest.mark.parametrize("n", [8000, 20000])
@pytest.mark.parametrize("storage", [None, 64, 100, 512])
def test_automatic_blocks_give_store_chunks_of_256_px_or_more(n, storage):
    # a numpy-backed mosaic (no storage chunks) or one stored in small chunks
    ir = xr.DataArray(da.zeros((n, n), chunks=512), dims=("y", "x"))
    if storage:
        ir.encoding["chunks"] = (storage, storage)
    ys, _ = sg._block_chunks(ir, None, 512)
    assert sg._store_chunk(ys) >= sg._MIN_STORE_CHUNK
    if storage:  # blocks still start on the mosaic's own storage chunks
        assert all(b % storage == 0 for b in np.cumsum(ys)[:-1])


def test_segment_to_zarr_with_a_thin_last_block_writes_large_chunks(image, tiny_model, tmp_path):
    img = np.concatenate([image[:600], image[600:1200, :700]], axis=1)  # 600 x 2100: x blocks 1024, 1024, 52
    ds = mosaic_from_array(img, (0.0, 0.0, 2100 / 256, 600 / 256))
    out = sg.segment_to_zarr(ds, tmp_path / "pred.zarr", model=tiny_model[1], chunks=(600, 1024), progress=False)
    got = xr.open_zarr(out, consolidated=False)["crater_probability"]
    assert got.encoding["chunks"] == (600, 1024)
    expected = sg.segment(ds, tiny_model[1], chunks=(600, 1024)).compute(scheduler="threads")
    np.testing.assert_array_equal(got.values, expected.values)


def test_small_store_chunks_only_when_asked_and_then_with_a_warning(image, tiny_model, tmp_path):
    ds = mosaic_from_array(image[:400, :600], (0.0, 0.0, 600 / 256, 400 / 256))
    with pytest.warns(UserWarning, match=r"200-px.*chunks=\(200, 200\) \(--chunk 200\).*multiple of 256"):
        out = sg.segment_to_zarr(ds, tmp_path / "small.zarr", model=tiny_model[1], chunks=200, depth=0,
                                 progress=False)
    assert xr.open_zarr(out, consolidated=False)["crater_probability"].encoding["chunks"] == (200, 200)
    # an image smaller than 256 px is one chunk: nothing to warn about
    tiny = mosaic_from_array(image[:200, :240], (0.0, 0.0, 240 / 256, 200 / 256))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        out = sg.segment_to_zarr(tiny, tmp_path / "tiny.zarr", model=tiny_model[1], progress=False)
    assert xr.open_zarr(out, consolidated=False)["crater_probability"].encoding["chunks"] == (200, 240)


def test_blocks_merged_below_the_overlap_are_said(caplog):
    # `segment --chunk 256` on a small mosaic ran as one block without a word
    ir = xr.DataArray(np.zeros((900, 900), np.float32), dims=("y", "x"))
    with caplog.at_level("INFO", logger="marscraters.segment"):
        assert sg._block_chunks(ir, 256, 176) == ((256, 256, 388), (256, 256, 388))
    assert "runs as 3 x 3 blocks, not the 4 x 4 of 256 x 256 px asked for" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="marscraters.segment"):
        sg._block_chunks(ir, 300, 176)  # 300, 300, 300: nothing merged, nothing said
    assert "asked for" not in caplog.text


def test_bfloat16_segmentation_is_seamless_and_recorded(cube, tiny_model, tmp_path, capsys):
    """In bfloat16 the map is still chunk-invariant (every block computes the same windows), it stays
    within bfloat16's rounding of float32's, and the store records the precision."""
    ds = open_mosaic(cube)
    f32 = sg.segment(ds, tiny_model[1], chunks=512).compute(scheduler="threads")
    b16 = sg.segment(ds, tiny_model[1], chunks=512, precision="bfloat16")
    assert b16.attrs["precision"] == "bfloat16" and f32.attrs["precision"] == "float32"
    b16 = b16.compute(scheduler="threads")
    other = sg.segment(ds, tiny_model[1], chunks=(600, 700), precision="bfloat16").compute(scheduler="threads")
    np.testing.assert_array_equal(b16.values, other.values)
    diff = np.abs(b16.values - f32.values)
    assert 0 < diff.max() < 0.05
    with pytest.raises(InvalidArgumentError, match="--precision"):
        sg.segment(ds, tiny_model[1], precision="half")
    # the command line takes the flag and the store records it
    from marscraters import cli

    out = tmp_path / "p.zarr"
    assert cli.main(["-q", "segment", str(cube), "--out", str(out), "--model", tiny_model[1], "--chunk", "512",
                     "--precision", "bfloat16"]) == 0
    got = xr.open_zarr(out, decode_coords="all", consolidated=False)
    assert got["crater_probability"].attrs["precision"] == "bfloat16"
    np.testing.assert_array_equal(got["crater_probability"].values, b16.values)
