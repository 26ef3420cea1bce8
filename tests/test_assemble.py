"""Seamless catalog assembly: chunk-independent extraction, georeferencing, the catalog CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import CRS

from marscraters.assemble import (
    add_catalog_parser,
    catalog_from_probability,
    run_catalog_cli,
    work_blocks,
)
from marscraters.catalog import make_catalog, read_catalog
from marscraters.crs import Grid
from marscraters.errors import InvalidArgumentError, MosaicError, OutputExistsError
from marscraters.extract import to_catalog
from marscraters.mosaic import ingest, mosaic_from_array
from marscraters.targets import render_targets

OPTS = {"max_diameter_px": 100}


@pytest.fixture(scope="module")
def prob_map():
    """An outline probability map (256 px/deg) with craters straddling 128/200/150-px chunk borders."""
    ds = mosaic_from_array(np.zeros((400, 450)), bounds=(10, -1, 10 + 450 / 256, -1 + 400 / 256), name="synthetic")
    grid = Grid.from_dataset(ds)
    xs = np.array([60.0, 199.5, 256.0, 300.0, 400.0, 128.0, 150.0])
    ys = np.array([60.0, 128.0, 200.0, 150.0, 330.0, 300.0, 199.0])
    dpx = np.array([16.0, 30.0, 60.0, 12.0, 40.0, 80.0, 20.0])
    lon, lat = grid.pixel_to_lonlat(xs, ys)
    km_per_px = 3396.19 * np.pi / 180 / 256
    truth = make_catalog(lat, lon, dpx * km_per_px)
    prob = (render_targets(ds, truth, kind="outline", dtype="float32") * 0.9).compute()
    prob.attrs["source"] = "synthetic"
    return prob, xs, ys, dpx


def _pairs(cat):
    return cat.sort_values(["y", "x"])[["x", "y", "diameter_px"]].to_numpy()


def _windows(key, dsk, state, found):
    if isinstance(key, str) and key.startswith("_extract_window"):
        found.append(key)


def _count_windows(prob, **kwargs):
    """``catalog_from_probability(prob, **kwargs)``, and how many finder windows it ran (dask
    tasks of ``_extract_window``)."""
    from dask.callbacks import Callback

    found: list = []
    with Callback(pretask=lambda key, dsk, state: _windows(key, dsk, state, found)):
        result = catalog_from_probability(prob, **kwargs)
    return result, len(found)


@pytest.mark.parametrize("block_px", [128, 200, 96])
def test_same_catalog_whatever_the_blocks(prob_map, block_px):
    """The halo makes the finder's blocks invisible in the result (blocks of 96-200 px on a 400 x
    450 map, craters straddling their borders)."""
    prob, xs, ys, dpx = prob_map
    ref = catalog_from_probability(prob, extract_options=OPTS, progress=False)
    assert len(ref) == len(xs)
    # every synthetic crater found, at the right place and size
    for x, y, d in zip(xs, ys, dpx):
        dist = np.hypot(ref.x - x, ref.y - y)
        i = int(dist.argmin())
        assert dist[i] < 1.0 and abs(ref.diameter_px[i] - d) < 0.1 * d + 1
    for chunks in ({"y": 128, "x": 128}, {"y": 200, "x": 150}, {"y": 100, "x": 225}):
        cat, n = _count_windows(prob.chunk(chunks), extract_options=OPTS, progress=False, block_px=block_px)
        rows, cols = work_blocks(prob.shape, block_px=block_px)
        assert n == len(rows) * len(cols) > 1
        assert len(cat) == len(ref), chunks
        np.testing.assert_allclose(_pairs(cat), _pairs(ref), atol=0.5)
        assert list(cat.crater_id) == list(ref.crater_id)
        np.testing.assert_allclose(cat.lat, ref.lat, atol=0.5 / 256)
        assert cat.attrs["parameters"]["block_px"] == block_px


def test_work_units_are_not_the_storage_chunks(prob_map, tmp_path):
    """A store written in tiny chunks is searched in the same few windows as one in large chunks,
    and gives the same catalog: its chunks (each would get a 100-px halo) are not the work units."""
    prob = prob_map[0]
    columns = ["crater_id", "x", "y", "diameter_px", "score", "lat", "lon", "diameter_km"]
    cats = {}
    for chunk in (400, 16):
        store = tmp_path / f"pred{chunk}.zarr"
        prob.chunk(chunk).to_dataset(name="crater_probability").to_zarr(store, zarr_format=3, consolidated=False)
        ds = xr.open_zarr(store, decode_coords="all", consolidated=False)
        assert ds["crater_probability"].data.chunks[0][0] == chunk
        cats[chunk], n = _count_windows(ds, extract_options=OPTS, progress=False)
        assert n == 1  # a 400 x 450 map is one block, not 25 x 29 of them
    assert len(cats[16]) == 7
    pd.testing.assert_frame_equal(pd.DataFrame(cats[16][columns]), pd.DataFrame(cats[400][columns]))
    # `marscraters catalog` reads the store without dask, one read per block: the same craters
    parser = argparse.ArgumentParser()
    add_catalog_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "craters.gpkg"
    args = parser.parse_args(["catalog", str(tmp_path / "pred16.zarr"), "--out", str(out), "--max-diameter-px", "100",
                              "--quiet", "--no-verify"])
    assert args.func(args) == 0
    back = read_catalog(out)
    np.testing.assert_allclose(back.diameter_km, cats[400].diameter_km, rtol=1e-9)
    np.testing.assert_allclose(back.lat, cats[400].lat, rtol=0, atol=1e-9)


def test_work_blocks_are_near_equal_and_lower_where_the_aspect_changes():
    assert work_blocks((4160, 4160)) == ((1392, 1376, 1392), (1392, 1376, 1392))
    assert work_blocks((1000, 5000), block_px=1024) == ((1000,), (992, 1008, 1008, 992, 1000))
    # a geographic grid at 64 px/deg over 56..64 N: 1/cos(lat) grows by 28 %, so rows are cut
    # until it varies by 4 % at most within one
    grid = Grid.from_dataset(mosaic_from_array(np.zeros((512, 512)), bounds=(10.0, 56.0, 18.0, 64.0)))
    rows, cols = work_blocks((512, 512), grid)
    assert cols == (512,) and sum(rows) == 512 and len(rows) >= 6
    start = 0
    for h in rows:
        lat = grid.pixel_to_lonlat(np.array([0.0, 0.0]), np.array([start, start + h - 1.0]))[1]
        assert np.log(np.cos(np.deg2rad(lat[1])) / np.cos(np.deg2rad(lat[0]))) <= 0.04 + 1e-9
        start += h
    assert work_blocks((512, 512), grid, correct_aspect=False) == ((512,), (512,))
    # near the equator nothing changes
    equator = Grid.from_dataset(mosaic_from_array(np.zeros((512, 512)), bounds=(10.0, -4.0, 18.0, 4.0)))
    assert work_blocks((512, 512), equator) == ((512,), (512,))
    with pytest.raises(InvalidArgumentError, match="block_px"):
        work_blocks((512, 512), block_px=0)


def test_columns_and_provenance(prob_map):
    prob = prob_map[0]
    cat = catalog_from_probability(prob.to_dataset(name="crater_probability"), extract_options=OPTS, progress=False)
    for col in ("crater_id", "lat", "lon", "diameter_km", "score", "source_mosaic", "model_name", "model_version"):
        assert col in cat.columns
    assert cat.crs.to_string() == "IAU_2015:49900"
    # ids run north to south
    assert list(cat.crater_id) == [str(i) for i in range(1, len(cat) + 1)]
    assert (np.diff(cat.lat.to_numpy()) <= 1e-9).all()
    assert set(cat.source_mosaic) == {"synthetic"}
    assert cat.model_name.iloc[0] != "" and cat.attrs["parameters"]["max_diameter_px"] == 100


def test_min_score_honoured(prob_map):
    prob = prob_map[0]
    all_ = catalog_from_probability(prob, extract_options={**OPTS, "min_score": 0.0}, progress=False)
    cut = float(np.median(all_.score))
    some = catalog_from_probability(prob, extract_options={**OPTS, "min_score": cut}, progress=False)
    assert 0 < len(some) < len(all_) and (some.score >= cut).all()


def test_across_the_antimeridian():
    ds = mosaic_from_array(np.zeros((256, 640)), bounds=(170, -2, 190, 6))
    truth = make_catalog([0.0, 2.0, 4.0], [180.0, 185.0, 175.0], [30.0, 40.0, 25.0])
    prob = (render_targets(ds, truth, kind="outline", dtype="float32") * 0.9).compute()
    cat = catalog_from_probability(prob.chunk({"y": 128, "x": 160}), extract_options=OPTS, progress=False,
                                   block_px=160)
    assert len(cat) == 3
    got = cat.sort_values("lat")
    np.testing.assert_allclose(got.lat, [0.0, 2.0, 4.0], atol=0.05)
    assert abs(abs(got.lon.iloc[0]) - 180.0) < 0.05
    np.testing.assert_allclose(got.lon.iloc[1:], [-175.0, 175.0], atol=0.05)
    assert ((got.lon >= -180) & (got.lon <= 180)).all()
    np.testing.assert_allclose(got.diameter_km, [30.0, 40.0, 25.0], rtol=0.05)


def test_high_latitude_diameters():
    # an equirectangular grid true to scale at 57.5 N: craters are circles in pixels there
    crs = CRS.from_proj4("+proj=eqc +lat_ts=57.5 +lat_0=0 +lon_0=0 +R=3396190 +units=m +no_defs")
    r, px = 3396190.0, 2000.0
    x0, y0 = np.deg2rad(20) * r * np.cos(np.deg2rad(57.5)), np.deg2rad(55) * r
    ds = mosaic_from_array(np.zeros((160, 200)), bounds=(x0, y0, x0 + 200 * px, y0 + 160 * px), crs=crs)
    truth = make_catalog([56.0, 57.0, 57.5], [22.0, 23.0, 25.0], [40.0, 60.0, 100.0])
    prob = (render_targets(ds, truth, kind="outline", dtype="float32") * 0.9).compute()
    cat = catalog_from_probability(prob.chunk({"y": 80, "x": 100}), extract_options=OPTS, progress=False,
                                   block_px=100)
    got = cat.sort_values("lat")
    assert len(got) == 3
    np.testing.assert_allclose(got.lat, [56.0, 57.0, 57.5], atol=0.02)
    np.testing.assert_allclose(got.lon, [22.0, 23.0, 25.0], atol=0.05)
    np.testing.assert_allclose(got.diameter_km, [40.0, 60.0, 100.0], rtol=0.05)


def test_empty_and_bad_input(prob_map):
    prob = prob_map[0]
    empty = catalog_from_probability(xr.zeros_like(prob).chunk({"y": 200, "x": 200}), progress=False)
    assert len(empty) == 0 and "crater_id" in empty.columns
    with pytest.raises(InvalidArgumentError):
        catalog_from_probability(np.zeros((10, 10)), progress=False)
    with pytest.raises(InvalidArgumentError):
        catalog_from_probability(prob, halo=-1, progress=False)


def test_a_polar_stereographic_map_is_refused_before_the_finder_runs(prob_map, tmp_path):
    # km per pixel of a longitude/latitude lattice turned a 6 km crater near the pole into 82 km
    stere = "+proj=stere +lat_0=90 +lon_0=0 +k=1 +R=3396190 +units=m +no_defs"
    polar = mosaic_from_array(prob_map[0].values, bounds=(-22500, -20000, 22500, 20000), crs=stere)
    with pytest.raises(MosaicError, match=r"not equirectangular.*gdalwarp -t_srs IAU_2015:49910"):
        catalog_from_probability(polar["ir"].rename("p"), verify=False, extract_options=OPTS, progress=False)
    with pytest.raises(MosaicError, match="not equirectangular"):
        to_catalog(pd.DataFrame({"x": [5.0], "y": [5.0], "diameter_px": [10.0], "score": [0.9]}), polar)
    # ingest keeps such an image (segment and detect run on it), and says that catalogs will not
    with pytest.warns(UserWarning, match="`marscraters catalog` will refuse it"):
        ingest(polar, tmp_path / "polar.zarr", progress=False)


def test_a_mosaic_of_the_same_size_elsewhere_is_refused(prob_map):
    # the verifier would read another place's image and every crater would move there
    prob = prob_map[0]
    own = mosaic_from_array(np.zeros(prob.shape, np.float32), bounds=(10, -1, 10 + 450 / 256, -1 + 400 / 256))
    catalog_from_probability(prob, mosaic=own, verify=False, extract_options=OPTS, progress=False)
    for bounds, where in (((50, -1, 50 + 450 / 256, -1 + 400 / 256), "its x runs"),     # another longitude
                          ((10, 20, 10 + 450 / 256, 20 + 400 / 256), "its y runs"),     # another latitude
                          ((10 + 0.5 / 256, -1, 10 + 450.5 / 256, -1 + 400 / 256), "its x runs")):  # half a pixel
        elsewhere = mosaic_from_array(np.zeros(prob.shape, np.float32), bounds=bounds)
        with pytest.raises(MosaicError, match=f"lies elsewhere than the mosaic: {where}.*pass the mosaic the "
                                              "probability was computed on"):
            catalog_from_probability(prob, mosaic=elsewhere, verify=False, extract_options=OPTS, progress=False)
    projected = mosaic_from_array(np.zeros(prob.shape, np.float32), bounds=(0, 0, 450 * 231.5, 400 * 231.5),
                                  crs="IAU_2015:49910")
    with pytest.raises(MosaicError, match="another CRS"):
        catalog_from_probability(prob, mosaic=projected, verify=False, extract_options=OPTS, progress=False)


def test_a_mosaic_given_as_the_probability_map_says_to_segment_it_first(prob_map, tmp_path):
    ds = mosaic_from_array(np.full(prob_map[0].shape, 120.0, np.float32), bounds=(10, -1, 11, 0))
    for wrong in (ds, ds["ir"]):
        with pytest.raises(InvalidArgumentError, match="not a crater probability map: segment it first"):
            catalog_from_probability(wrong, progress=False)
    cube = tmp_path / "cube.zarr"
    ds.to_zarr(cube, consolidated=False)
    parser = argparse.ArgumentParser()
    add_catalog_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["catalog", str(cube), "--out", str(tmp_path / "c.gpkg"), "--quiet"])
    with pytest.raises(InvalidArgumentError, match="marscraters segment cube.zarr --out pred.zarr"):
        run_catalog_cli(args)
    assert not (tmp_path / "c.gpkg").exists()


def test_a_kind_other_than_the_models_is_said(prob_map):
    # the synthetic map carries no model: the shipped one (outline) is assumed
    with pytest.warns(UserWarning, match="read as ring targets, but the model that made it .* draws outline"):
        catalog_from_probability(prob_map[0], kind="ring", extract_options=OPTS, progress=False)


def test_catalog_cli(prob_map, tmp_path):
    prob = prob_map[0].chunk({"y": 200, "x": 225})
    store = tmp_path / "pred.zarr"
    prob.to_dataset(name="crater_probability").to_zarr(store, zarr_format=3, consolidated=False)
    parser = argparse.ArgumentParser()
    add_catalog_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "craters.gpkg"
    args = parser.parse_args(["catalog", str(store), "--out", str(out), "--max-diameter-px", "100", "--quiet"])
    assert args.func(args) == 0
    back = read_catalog(out)
    direct = catalog_from_probability(prob, extract_options=OPTS, progress=False)
    assert len(back) == len(direct) == 7
    np.testing.assert_allclose(np.sort(back.diameter_km), np.sort(direct.diameter_km), rtol=1e-6)
    import pyogrio

    meta = pyogrio.read_dataframe(out, layer="metadata")
    keys = set(meta["key"])
    assert {"model", "parameters", "date", "software_version", "input"} <= keys
    assert meta.set_index("key").loc["input", "value"] == str(store)
    with pytest.raises(OutputExistsError):
        run_catalog_cli(args)
    # arguments that could only fail after the finder ran fail first
    for extra, match in ((["--out", str(tmp_path / "c.csv")], r"writes a GeoPackage: pass --out .*c\.gpkg, then "
                                                              r"`marscraters convert"),
                         (["--out", str(tmp_path / "d.gpkg"), "--min-score", "5"], r"--min-score 5 must lie in \[0, 1\)")):
        bad = parser.parse_args(["catalog", str(store), "--quiet", *extra])
        with pytest.raises(InvalidArgumentError, match=match):
            run_catalog_cli(bad)
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "d.gpkg").exists()
    args = parser.parse_args(["catalog", str(store), "--out", str(out), "--max-diameter-px", "100", "--quiet",
                              "--overwrite"])
    assert run_catalog_cli(args) == 0
    # the finder's search in Keras ops (an accelerator's engine, here on the CPU): the same craters
    args = parser.parse_args(["catalog", str(store), "--out", str(out), "--max-diameter-px", "100", "--quiet",
                              "--overwrite", "--finder-engine", "keras"])
    assert run_catalog_cli(args) == 0
    on_device = read_catalog(out)
    assert len(on_device) == len(direct)
    np.testing.assert_allclose(np.sort(on_device.diameter_km), np.sort(direct.diameter_km), rtol=1e-3)


@pytest.mark.parametrize("lat0", [45.0, 60.0])
def test_high_latitude_on_a_geographic_grid(lat0):
    # On a geographic grid craters at 60 N are ellipses twice as wide as tall in pixels; the
    # per-chunk x resampling makes them round for the circle finder, and maps them back.
    ppd = 64.0
    ds = mosaic_from_array(np.zeros((256, 512)), bounds=(10.0, lat0 - 2.0, 18.0, lat0 + 2.0))
    lats = [lat0 - 1.0, lat0, lat0 + 1.0]
    lons = [11.5, 14.0, 16.5]
    diam = [25.0, 40.0, 30.0]
    truth = make_catalog(lats, lons, diam)
    prob = (render_targets(ds, truth, kind="outline", dtype="float32") * 0.9).compute()
    assert ds.sizes["x"] / 8 == ppd
    found = {}
    for correct in (True, False):
        cat = catalog_from_probability(prob.chunk({"y": 128, "x": 256}), extract_options=OPTS,
                                       correct_aspect=correct, progress=False)
        found[correct] = cat.sort_values("lat")
    got = found[True]
    assert len(got) == 3
    np.testing.assert_allclose(got.lat, lats, atol=0.03)
    np.testing.assert_allclose(got.lon, lons, atol=0.05)
    np.testing.assert_allclose(got.diameter_km, diam, rtol=0.06)
    if lat0 >= 60:
        # without the correction the finder splits 2:1 ellipses into pairs of smaller circles
        plain = found[False]
        assert len(plain) != 3 or not np.allclose(plain.diameter_km.to_numpy(), diam, rtol=0.06)


def test_catalog_in_a_fresh_interpreter(prob_map, tmp_path):
    """Nothing imports rioxarray before ``catalog`` or ``catalog_from_probability`` needs ``.rio``:
    both must work in a new process (the test process has imported it long ago)."""
    import subprocess
    import sys

    store = tmp_path / "pred.zarr"
    prob_map[0].to_dataset(name="crater_probability").to_zarr(store, zarr_format=3, consolidated=False)
    out = tmp_path / "x.gpkg"
    cli = subprocess.run([sys.executable, "-m", "marscraters", "catalog", str(store), "--out", str(out),
                          "--max-diameter-px", "100", "--no-verify", "-q"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert "wrote 7 craters" in cli.stdout
    code = ("import sys, xarray as xr, marscraters as mc\n"
            "cat = mc.catalog_from_probability(xr.open_zarr(sys.argv[1]), verify=False, progress=False,\n"
            "                                  extract_options={'max_diameter_px': 100})\n"
            "print(len(cat))\n")
    py = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True)
    assert py.returncode == 0, py.stderr
    assert py.stdout.split()[-1] == "7"
