"""Integer imagery is stored as integers in the cube (a quarter of float32's bytes for 8-bit), and
opened as the float32 Mosaic with NaN for no data as before."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr
from PIL import Image

from marscraters.mosaic import combine_tiles, fill_missing, ingest, mosaic_from_array, open_mosaic, read_image


def _levels(shape=(300, 400), seed=0):
    """8-bit levels 1..255 with a block of 0 = no data."""
    img = np.random.default_rng(seed).integers(1, 256, shape, dtype=np.uint8)
    img[50:90, 100:180] = 0
    return img


def _stored(cube):
    array = zarr.open_array(str(cube / "ir"), mode="r")
    return array.dtype, array.attrs.get("_FillValue")


def _bytes(folder):
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_an_8_bit_geotiff_with_nodata_is_stored_as_uint8_and_opens_as_float32_nan(tmp_path):
    img = _levels()
    tif = tmp_path / "crop.tif"
    mosaic_from_array(img.astype("float32"), (30.0, -1.0, 31.0, -0.25))["ir"].astype("uint8").rio.write_nodata(0) \
        .rio.to_raster(tif)
    cube = ingest(tif, tmp_path / "cube.zarr", progress=False)
    assert _stored(cube) == (np.dtype("uint8"), 0)
    ds = open_mosaic(cube)
    assert ds["ir"].dtype == np.float32
    expected = np.where(img == 0, np.nan, img).astype(np.float32)
    np.testing.assert_array_equal(ds["ir"].values, expected)
    # the float32 cube of the same image (how every cube was stored before): 4x the bytes
    ds32 = read_image(tif)
    ds32["ir"].encoding = {}
    cube32 = ingest(ds32, tmp_path / "cube32.zarr", progress=False)
    assert _stored(cube32)[0] == np.float32
    np.testing.assert_array_equal(open_mosaic(cube32)["ir"].values, expected)
    assert _bytes(cube) < _bytes(cube32)
    # a cube ingested again keeps its storage
    assert _stored(ingest(ds, tmp_path / "again.zarr", progress=False)) == (np.dtype("uint8"), 0)


def test_themis_tiles_and_their_gaps(tmp_path):
    a, b = tmp_path / "thm_dir_N-30_030.png", tmp_path / "thm_dir_N-30_090.png"  # not adjacent: a gap
    Image.fromarray(_levels((240, 240), 1)).save(a)
    Image.fromarray(_levels((240, 240), 2)).save(b)
    cube = ingest([a, b], tmp_path / "cube.zarr", progress=False)
    assert _stored(cube) == (np.dtype("uint8"), 0)
    ir = open_mosaic(cube)["ir"].values
    assert ir.shape == (240, 720) and np.isnan(ir[:, 240:480]).all()  # the gap is no data
    np.testing.assert_array_equal(ir[:, :240], np.where(_levels((240, 240), 1) == 0, np.nan, _levels((240, 240), 1)))


def test_every_level_valid_goes_one_type_wider(tmp_path):
    # an 8-bit array without a nodata value may use all 256 levels: uint16, with 65535 for NaN
    img = np.arange(256, dtype=np.uint8)[None, :].repeat(4, axis=0)
    cube = ingest(mosaic_from_array(img, (0.0, 0.0, 1.0, 4 / 256)), tmp_path / "cube.zarr", progress=False)
    assert _stored(cube) == (np.dtype("uint16"), 65535)
    np.testing.assert_array_equal(open_mosaic(cube)["ir"].values, img.astype(np.float32))
    # 16-bit levels with a nodata value stay 16-bit
    img16 = (img.astype(np.uint16) + 1) * 200
    cube16 = ingest(mosaic_from_array(img16, (0.0, 0.0, 1.0, 4 / 256), nodata=200), tmp_path / "c16.zarr",
                    progress=False)
    assert _stored(cube16) == (np.dtype("uint16"), 200)
    assert np.isnan(open_mosaic(cube16)["ir"].values[:, 0]).all()


def test_float_levels_are_never_rounded_into_integers(tmp_path):
    # changed pixels that kept the reader's encoding (copy(data=...)): stored as float32, exactly
    ds = mosaic_from_array(_levels(), (0.0, 0.0, 1.0, 0.75), nodata=0)
    ds["ir"] = ds["ir"].copy(data=ds["ir"].data * 1.5)
    assert ds["ir"].encoding["dtype"] == np.uint8
    cube = ingest(ds, tmp_path / "cube.zarr", progress=False)
    assert _stored(cube)[0] == np.float32
    np.testing.assert_array_equal(open_mosaic(cube)["ir"].values, ds["ir"].values)
    # filled gaps are float levels too
    filled = fill_missing(open_mosaic(ingest(mosaic_from_array(_levels(), (0.0, 0.0, 1.0, 0.75), nodata=0),
                                             tmp_path / "u8.zarr", progress=False)))
    out = ingest(filled, tmp_path / "filled.zarr", progress=False)
    assert _stored(out)[0] == np.float32
    np.testing.assert_array_equal(open_mosaic(out)["ir"].values, filled["ir"].values)


def test_float32_cubes_of_earlier_versions_still_open(tmp_path):
    ds = mosaic_from_array(np.where(_levels() == 0, np.nan, _levels()).astype("float32"), (0.0, 0.0, 1.0, 0.75))
    for var in ds.variables.values():
        var.encoding = {}
    ds.attrs["dask_chunks"] = [512, 512]
    ds.to_zarr(tmp_path / "old.zarr", zarr_format=3, consolidated=False)
    back = open_mosaic(tmp_path / "old.zarr")
    assert back["ir"].dtype == np.float32
    np.testing.assert_array_equal(back["ir"].values, ds["ir"].values)
    assert xr.open_zarr(tmp_path / "old.zarr", consolidated=False)["ir"].encoding["dtype"] == np.float32
