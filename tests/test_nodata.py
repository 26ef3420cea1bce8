"""No data in the images users bring: GDAL's mask and alpha bands, a TIFF's nodata tag without a CRS,
a declared ``nodata=`` value, the warning about an undeclared collar, EXIF orientation, and an image
given where a cube is expected.

Every file is written for real (rasterio, PIL) in ``tmp_path``; the network is the tiny hand-set
threshold model of ``test_detect`` (bright pixels are craters), so the results are exact.
"""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from PIL import Image, ImageOps
from rasterio.enums import ColorInterp

from marscraters import cli
from marscraters.detect import detect, read_grey_image
from marscraters.errors import ImageReadError, InvalidArgumentError
from marscraters.mosaic import ingest, open_mosaic, read_geotiff, read_image

from .test_detect import TRUTH, _check, _disks, _threshold_model

# an equirectangular grid on the equator: 100 m pixels, square on the ground (no squeeze)
_EQC = "IAU_2015:49910"
_TRANSFORM = Affine(100.0, 0.0, 0.0, 0.0, -100.0, 1.28e4)
SHAPE = (256, 400)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _threshold_model(tmp_path_factory.mktemp("m") / "threshold.keras")


def _collar(shape=SHAPE, width=40):
    """True on a collar along the left and bottom edges (no crater of TRUTH lies in it)."""
    valid = np.ones(shape, bool)
    valid[:, :width] = False
    valid[-width // 2:, :] = False
    return ~valid


def _ground(shape=SHAPE, seed=0):
    """THEMIS-like textured ground (levels 40..200) with bright disks: a photograph, not a drawing."""
    rng = np.random.default_rng(seed)
    ground = rng.normal(110, 20, shape).clip(40, 200)
    disks = _disks(shape, TRUTH) > 100
    return np.where(disks, 230.0, ground).astype(np.uint8)


def _write(path, bands, crs=_EQC, transform=_TRANSFORM, nodata=None, mask=None, alpha=False, internal=True):
    """A GeoTIFF (or, with ``crs=None``, a plain TIFF) of ``bands`` (one 2-D array or a list), with
    a GDAL mask band (``mask``: True = valid; internal or an external .msk) or an alpha band."""
    bands = [bands] if np.ndim(bands) == 2 else list(bands)
    if alpha:
        bands.append(np.where(mask, 255, 0).astype(bands[0].dtype))
    profile = {"driver": "GTiff", "height": bands[0].shape[0], "width": bands[0].shape[1], "count": len(bands),
               "dtype": bands[0].dtype, "nodata": nodata, "photometric": "MINISBLACK" if len(bands) < 3 else "RGB"}
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    if alpha:
        profile["alpha"] = "YES" if len(bands) == 2 else "UNSPECIFIED"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=internal), rasterio.open(path, "w", **profile) as dst:
            for i, band in enumerate(bands, 1):
                dst.write(band, i)
            if alpha:
                dst.colorinterp = [*dst.colorinterp[:-1], ColorInterp.alpha]
            elif mask is not None:
                dst.write_mask(np.where(mask, 255, 0).astype(np.uint8))
    return path


def _nan_where(image, missing):
    return np.where(missing, np.nan, image).astype(np.float32)


# --------------------------------------------------------------------------------------------
# 1. GDAL's mask and alpha bands
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["internal mask", "external .msk", "alpha band"])
def test_read_geotiff_makes_masked_pixels_nan_window_by_window(tmp_path, how):
    image = _ground()
    collar = _collar()
    image[collar] = 0  # what gdalwarp writes under its mask: looks like black ground
    path = _write(tmp_path / "masked.tif", image, mask=~collar, alpha=how == "alpha band",
                  internal=how != "external .msk")
    assert (tmp_path / "masked.tif.msk").exists() == (how == "external .msk")
    expected = _nan_where(image, collar)
    for chunks in (None, 64, (100, 48)):
        ds = read_geotiff(path, chunks=chunks)
        assert isinstance(ds["ir"].data, da.Array)  # still lazy, read in windows
        np.testing.assert_array_equal(ds["ir"].values, expected)
    # ingest stores the masked pixels as no data, in an integer type that keeps every level
    cube = open_mosaic(ingest(path, tmp_path / "cube.zarr", chunk=64, progress=False))
    np.testing.assert_array_equal(cube["ir"].values, expected)
    assert cube["ir"].encoding["dtype"] == np.uint16


def test_detect_on_a_masked_geotiff_finds_what_the_valid_pixels_hold(model_path, tmp_path):
    image = _disks(SHAPE, TRUTH).astype(np.uint8)
    collar = _collar()
    image[collar] = 255  # bright fill under the mask: a giant crater to the threshold model, if read
    expected = detect(_nan_where(image, collar), pixel_size_m=100.0, model=model_path)
    _check(expected, TRUTH)
    for how in ("mask", "alpha"):
        path = _write(tmp_path / f"{how}.tif", image, mask=~collar, alpha=how == "alpha")
        found = detect(path, model=model_path)
        pd.testing.assert_frame_equal(found, expected)


# --------------------------------------------------------------------------------------------
# 2. a TIFF without a CRS keeps its nodata value (and mask)
# --------------------------------------------------------------------------------------------
def test_a_tiff_without_a_crs_keeps_its_nodata_value_and_mask(model_path, tmp_path):
    image = _disks(SHAPE, TRUTH)
    collar = _collar()
    expected = detect(_nan_where(image, collar), pixel_size_m=100.0, model=model_path)
    fill = np.float32(-3.4028234663852886e38)  # GDAL's usual float nodata
    tagged = _write(tmp_path / "tagged.tif", np.where(collar, fill, image).astype(np.float32), crs=None,
                    nodata=float(fill))
    masked = _write(tmp_path / "masked.tif", np.where(collar, 255, image).astype(np.uint8), crs=None, mask=~collar)
    for path in (tagged, masked):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # nothing to say: no odd grey levels, no collar
            found = detect(path, pixel_size_m=100.0, model=model_path)
        pd.testing.assert_frame_equal(found, expected)
    # a plain TIFF that marks nothing is still read as any image is
    plain = _write(tmp_path / "plain.tif", image.astype(np.uint8), crs=None)
    pd.testing.assert_frame_equal(detect(plain, pixel_size_m=100.0, model=model_path),
                                  detect(image.astype(np.uint8), pixel_size_m=100.0, model=model_path))


def test_transparent_pixels_of_a_png_are_no_data(tmp_path):
    image = _ground()
    collar = _collar()
    rgba = np.dstack([image, image, image, np.where(collar, 0, 255).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    got = read_grey_image(tmp_path / "rgba.png")
    assert np.isnan(got).sum() == collar.sum() and np.isnan(got[collar]).all()
    # ingest of the same PNG placed by its bounds: GDAL's alpha mask, as for a GeoTIFF
    ds = read_image(tmp_path / "rgba.png", bounds=(0.0, -0.5, 0.78125, 0.0))
    np.testing.assert_array_equal(np.isnan(ds["ir"].values), collar)


# --------------------------------------------------------------------------------------------
# 3. a declared nodata value, and the warning about an undeclared collar
# --------------------------------------------------------------------------------------------
def test_detect_nodata_makes_a_declared_level_no_data(model_path, tmp_path, capsys):
    image = _disks(SHAPE, TRUTH)
    collar = _collar()
    expected = detect(_nan_where(image, collar), pixel_size_m=100.0, model=model_path)
    zero = np.where(collar, 0, image).astype(np.uint8)
    rgb = np.dstack([zero] * 3)
    Image.fromarray(zero).save(tmp_path / "zero.png")
    geo = _write(tmp_path / "zero.tif", zero)
    for item in (zero, rgb, tmp_path / "zero.png", geo, read_geotiff(geo)):
        pd.testing.assert_frame_equal(detect(item, pixel_size_m=100.0, model=model_path, nodata=0), expected)
    # the command line, into the same CSV
    out = tmp_path / "zero.csv"
    assert cli.main(["detect", str(tmp_path / "zero.png"), "--pixel-size", "100", "--model", str(model_path),
                     "--nodata", "0", "--out", str(out), "-q"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), expected.round(3), check_dtype=False, atol=1e-3)
    with pytest.raises(InvalidArgumentError, match=r"nodata must be a grey level, e.g. nodata=0"):
        detect(zero, pixel_size_m=100.0, model=model_path, nodata="black")


def test_ingest_nodata_makes_a_declared_level_no_data(tmp_path, capsys):
    image = _ground()
    collar = _collar()
    image[collar] = 0
    path = _write(tmp_path / "zero.tif", image)  # a black collar, no nodata tag
    expected = _nan_where(image, image == 0)
    np.testing.assert_array_equal(read_geotiff(path, nodata=0)["ir"].values, expected)
    cube = open_mosaic(ingest(path, tmp_path / "py.zarr", chunk=64, progress=False, nodata=0))
    np.testing.assert_array_equal(cube["ir"].values, expected)
    assert cube["ir"].encoding["dtype"] == np.uint8  # 0 is free now: stored as it came, 0 for no data
    assert cli.main(["ingest", str(path), "--nodata", "0", "--out", str(tmp_path / "cli.zarr"), "-q"]) == 0
    np.testing.assert_array_equal(open_mosaic(tmp_path / "cli.zarr")["ir"].values, expected)
    # a plain image placed by its bounds
    Image.fromarray(image).save(tmp_path / "zero.png")
    assert cli.main(["ingest", str(tmp_path / "zero.png"), "--bounds", "0", "-0.5", "0.78125", "0", "--nodata", "0",
                     "--out", str(tmp_path / "png.zarr"), "-q"]) == 0
    np.testing.assert_array_equal(open_mosaic(tmp_path / "png.zarr")["ir"].values, expected)


def _messages(record):
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("width", [60, 150])  # 28 % and 68 % of the pixels
def test_detect_warns_of_a_likely_no_data_collar_naming_nodata(model_path, width):
    image = _ground().astype(np.float32)
    collar = _collar(width=width)
    image[collar] = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detect(image, pixel_size_m=100.0, model=model_path)
    said = _messages(caught)
    assert said and said[0].startswith(f"{collar.mean():.0%} of the image's pixels are exactly 0, its darkest grey "
                                       "level, in a region that reaches its edge: most likely a no-data collar")
    assert "nodata=0 (CLI: --nodata 0)" in said[0]
    # the collar is not called shadow: the exposure of the rest is fine
    assert not [m for m in said if "shadow" in m]
    # declared, it is no data, and nothing is said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detect(image, pixel_size_m=100.0, model=model_path, nodata=0)
    assert not [m for m in _messages(caught) if "collar" in m or "shadow" in m]


def test_no_collar_warning_for_a_small_edge_region_an_inner_one_or_a_drawing(model_path, recwarn):
    image = _ground().astype(np.float32)
    small = image.copy()
    small[:, :10] = 0.0  # 2.5 % of the pixels
    inner = image.copy()
    inner[80:180, 120:280] = 0.0  # 16 %, but inside: a shadow, not a collar
    drawing = _disks(SHAPE, TRUTH)  # two levels: flat ground and disks
    bright = image.copy()
    bright[_collar(width=60)] = 255.0  # saturated bright ground at the edge (a real THEMIS crop has it)
    for quiet in (small, inner, drawing, bright):
        detect(quiet, pixel_size_m=100.0, model=model_path)
    assert not [m for m in _messages(recwarn) if "collar" in m]


def test_detect_command_names_the_nodata_flag(model_path, tmp_path, capsys):
    image = _ground()
    image[_collar()] = 0
    Image.fromarray(image).save(tmp_path / "strip.png")
    assert cli.main(["detect", str(tmp_path / "strip.png"), "--pixel-size", "100", "--model", str(model_path),
                     "--out", str(tmp_path / "c.csv"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "most likely a no-data collar" in err and "Declare it as no data: --nodata 0" in err
    assert "nodata=0" not in err and "shadow" not in err


# --------------------------------------------------------------------------------------------
# 4. EXIF orientation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation, stored", [(6, Image.Transpose.ROTATE_90), (3, Image.Transpose.ROTATE_180),
                                                 (8, Image.Transpose.ROTATE_270)])
def test_a_jpeg_is_read_as_its_exif_orientation_shows_it(model_path, tmp_path, orientation, stored):
    shown = Image.fromarray(_disks(SHAPE, TRUTH).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.jpg"
    shown.transpose(stored).save(path, exif=exif, quality=95)
    with Image.open(path) as im:
        viewed = np.asarray(ImageOps.exif_transpose(im).convert("L"), dtype=np.float32)
    assert viewed.shape == SHAPE
    got = read_grey_image(path)
    np.testing.assert_array_equal(got, viewed)
    found = detect(path, pixel_size_m=100.0, model=model_path)
    pd.testing.assert_frame_equal(found, detect(viewed, pixel_size_m=100.0, model=model_path))
    _check(found, TRUTH)
    # a chip read for training is the same picture; ingest, whose reader takes the pixels as
    # stored, refuses it rather than place them by bounds meant for the picture
    from marscraters.chips import _read_grey

    np.testing.assert_array_equal(_read_grey(path), viewed)
    with pytest.raises(ImageReadError, match=f"EXIF orientation {orientation}.*exif_transpose"):
        read_image(path, bounds=(0.0, 0.0, 1.0, 1.0))


# --------------------------------------------------------------------------------------------
# 5. an image given where a cube is expected
# --------------------------------------------------------------------------------------------
def test_segment_given_an_image_says_to_ingest_it_first(tmp_path, capsys):
    tif = _write(tmp_path / "q_geo.tif", _ground())
    with pytest.raises(ImageReadError, match=r"q_geo.tif is an image, not a mosaic cube.*`marscraters ingest "):
        open_mosaic(tif)
    assert cli.main(["segment", str(tif), "--out", str(tmp_path / "p.zarr"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"is an image, not a mosaic cube (a Zarr store): ingest it into a cube first, `marscraters ingest {tif} " \
           "--out cube.zarr`" in err
    assert "corrupt" not in err
    assert not (tmp_path / "p.zarr").exists()
    # a plain PNG needs its bounds
    Image.fromarray(_ground()).save(tmp_path / "crop.png")
    with pytest.raises(ImageReadError, match=r"--bounds WEST SOUTH EAST NORTH --out cube.zarr"):
        open_mosaic(tmp_path / "crop.png")
