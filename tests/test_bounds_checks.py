"""Impossible or mixed-up placements are refused early, with the fix in the user's terms.

Bounds given to ``mosaic_from_array``, ``read_image(path, bounds=...)`` and ``marscraters ingest
--bounds``; a mosaic west of -180 degrees through to its catalog's count area; two GeoTIFFs in
different CRSs; and a THEMIS tile name on an image that is not a full tile.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

from marscraters import cli
from marscraters.chronology import count_area_km2
from marscraters.errors import InvalidArgumentError, MosaicError
from marscraters.mosaic import (
    combine_tiles,
    mosaic_footprint,
    mosaic_from_array,
    read_image,
    read_themis_tile,
)

# a Python spelling in a message: keyword=value, marscraters.function( (as tests/test_cli_messages.py)
PYTHON_WORDS = re.compile(r"\b[a-z_]+=(?!=)|marscraters\.[a-z_.]+\(")
Capsys = pytest.CaptureFixture[str]
# a 64 px crop over 0.1 degrees: about 93 m per pixel
CROP_DEG = 0.1


def _png(tmp_path: Path, name: str = "crop.png", size: int = 64) -> Path:
    path = tmp_path / name
    Image.fromarray(np.random.default_rng(0).integers(1, 255, (size, size), dtype=np.uint8)).save(path)
    return path


def _cli_error(capsys: Capsys, argv: list[str], python_words: bool = False) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    # (a PROJ string's "+proj=eqc" is command-line text, not a Python keyword)
    assert python_words or not PYTHON_WORDS.search(err), err
    return err


# ---------------------------------------------------------------------------------------------
# 1. impossible bounds, in degrees
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bounds", "words"),
    [
        ((0, -91, 1, -90.5), ["-91..-90.5", "outside -90..90"]),
        ((0, 0, 400, 1), ["400 degrees of longitude", "360"]),
        ((500, 0, 501, 1), ["-360..360", "bounds=(140, 0, 141, 1)"]),
        ((-400, 0, -399, 1), ["-360..360", "bounds=(-40, 0, -39, 1)"]),
        # lat/lon order: the latitude check catches it and names the order
        ((-16.84, 345.88, -16.14, 346.58), ["345.88..346.58", "west, south, east, north",
                                            "bounds=(345.88, -16.84, 346.58, -16.14)"]),
        # metres with the default degrees CRS
        ((0, -41600, 41600, 0), ["-41600..0", "not degrees", "crs='IAU_2015:49910'"]),
        ((0, 0, float("nan"), 1), ["finite"]),
        ((0, 1, 1, 0), ["north (0) must be greater than south (1)", "bounds=(0, 0, 1, 1)"]),
        # west and east swapped, far apart: not a box across a meridian
        ((10, 0, 5, 1), ["east (5) must be greater than west (10)", "bounds=(5, 0, 10, 1)"]),
    ],
)
def test_impossible_degree_bounds_are_refused_with_the_fix(bounds: tuple[float, ...], words: list[str]) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        mosaic_from_array(np.zeros((4, 4)), bounds)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "bounds",
    [(-180.3509085, -16.84, -179.6490915, -16.14), (359.7, 0, 360.4, 0.7), (-0.3, 0, 0.4, 0.7),
     (-360, 0, -359, 1), (330, 0, 690, 1), (0, -90, 360, 90)],
)
def test_possible_degree_bounds_are_kept(bounds: tuple[float, ...]) -> None:
    ds = mosaic_from_array(np.zeros((4, 4)), bounds)
    assert ds.rio.bounds() == pytest.approx(bounds)


def test_read_image_and_cli_refuse_bounds_in_the_wrong_order_or_unit(tmp_path: Path, capsys: Capsys) -> None:
    png = _png(tmp_path)
    with pytest.raises(InvalidArgumentError, match="latitude/longitude order"):
        read_image(png, bounds=(-16.84, 345.88, -16.84 + CROP_DEG, 345.88 + CROP_DEG))
    out = ["--out", str(tmp_path / "x.zarr")]
    err = _cli_error(capsys, ["ingest", str(png), "--bounds", "-16.84", "345.88", "-16.74", "345.98", *out])
    assert "--bounds 345.88 -16.84 345.98 -16.74" in err and "--bounds WEST SOUTH EAST NORTH" in err
    err = _cli_error(capsys, ["ingest", str(png), "--bounds", "0", "-6400", "6400", "0", *out])
    assert "--crs IAU_2015:49910" in err
    assert not (tmp_path / "x.zarr").exists()


def test_pixel_size_names_degrees_given_with_a_metre_crs(tmp_path: Path, capsys: Capsys) -> None:
    png = _png(tmp_path)
    degrees = (345.88, -16.84, 345.88 + CROP_DEG, -16.84 + CROP_DEG)
    with pytest.raises(InvalidArgumentError, match=r"mm on the ground, outside the 1-1000 m") as info:
        read_image(png, bounds=degrees, crs="IAU_2015:49910")
    assert "look like degrees" in str(info.value) and "leave out crs=" in str(info.value)
    err = _cli_error(capsys, ["ingest", str(png), "--bounds", *map(str, degrees), "--crs", "IAU_2015:49910",
                              "--out", str(tmp_path / "x.zarr")])
    assert "leave out --crs" in err and "IAU_2015:49910" in err
    # a whole hemisphere on 64 px: 166 km pixels, in degrees
    with pytest.raises(InvalidArgumentError, match=r"km on the ground"):
        read_image(png, bounds=(0, -90, 180, 90))
    # the same pixels placed right, in metres and in degrees
    assert read_image(png, bounds=(0, -6400, 6400, 0), crs="IAU_2015:49910").rio.bounds() == (0, -6400, 6400, 0)
    assert read_image(png, bounds=degrees).sizes == {"y": 64, "x": 64}


# ---------------------------------------------------------------------------------------------
# 2. a box across 0 (or 180) degrees with its edges in two conventions
# ---------------------------------------------------------------------------------------------
def test_crossing_zero_suggests_one_convention(tmp_path: Path, capsys: Capsys) -> None:
    with pytest.raises(InvalidArgumentError, match="crosses the 0 degree meridian") as info:
        mosaic_from_array(np.zeros((4, 4)), (359.7, 0, 0.4, 0.7))
    assert "east = 360.4" in str(info.value) and "west = -0.3" in str(info.value)
    with pytest.raises(InvalidArgumentError, match="crosses the 180 degree meridian") as info:
        mosaic_from_array(np.zeros((4, 4)), (179.7, 0, -179.6, 0.7))
    assert "east = 180.4" in str(info.value) and "west = -180.3" in str(info.value)
    err = _cli_error(capsys, ["ingest", str(_png(tmp_path)), "--bounds", "359.95", "0", "0.05", "0.1",
                              "--out", str(tmp_path / "x.zarr")])
    assert "--bounds 359.95 0 360.05 0.1" in err and "--bounds -0.05 0 0.05 0.1" in err


# ---------------------------------------------------------------------------------------------
# 3. a mosaic west of -180: its footprint, and the count area measured from it, are in degrees
# ---------------------------------------------------------------------------------------------
def test_footprint_west_of_minus_180_is_a_lonlat_count_area() -> None:
    west = mosaic_from_array(np.zeros((64, 64)), (-180.35, -16.84, -179.65, -16.14))
    east = mosaic_from_array(np.zeros((64, 64)), (179.65, -16.84, 180.35, -16.14))
    fp = mosaic_footprint(west)
    assert fp.total_bounds == pytest.approx(mosaic_footprint(east).total_bounds)
    # the catalog stores the footprint as a bare lon/lat polygon and measures it without a CRS
    assert count_area_km2(fp.geometry.iloc[0]) == pytest.approx(count_area_km2(mosaic_footprint(east)))
    # past 360 too
    past = mosaic_from_array(np.zeros((64, 64)), (359.7, 0, 360.4, 0.7))
    assert mosaic_footprint(past).total_bounds == pytest.approx((-0.3, 0, 0.4, 0.7))


def test_catalog_west_of_minus_180_has_the_same_craters() -> None:
    """The real catalog path (no network: a given probability map, no verifier)."""
    from marscraters.assemble import catalog_from_probability

    yy, xx = np.mgrid[:128, :128]
    disc = ((yy - 60) ** 2 + (xx - 50) ** 2 < 12**2).astype("float32")
    cats = []
    for west in (-180.4, 179.6):
        prob = mosaic_from_array(disc, (west, -16.0, west + 0.8, -15.2))["ir"].rename("crater_probability")
        cats.append(catalog_from_probability(prob, kind="filled", verify=False, progress=False))
    a, b = cats
    assert len(a) == len(b) == 1
    for col in ("lon", "lat", "diameter_km"):
        np.testing.assert_allclose(a[col], b[col])
    assert -180 <= a["lon"].iloc[0] <= 180
    assert a.attrs["area_km2"] == pytest.approx(b.attrs["area_km2"])


# ---------------------------------------------------------------------------------------------
# 4. two GeoTIFFs in different CRSs: the message tells them apart and gives a command-line fix
# ---------------------------------------------------------------------------------------------
def _geotiff(path: Path, crs: str, transform: Affine) -> Path:
    data = np.full((1, 16, 16), 100, np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1, dtype="uint8", crs=crs,
                       transform=transform) as dst:
        dst.write(data)
    return path


def test_different_crs_message_names_both_and_a_gdalwarp_fix(tmp_path: Path, capsys: Capsys) -> None:
    a = _geotiff(tmp_path / "a.tif", "+proj=longlat +R=3396190 +no_defs", Affine(0.01, 0, 30, 0, -0.01, 0))
    b = _geotiff(tmp_path / "b.tif", "+proj=eqc +R=3396190 +units=m +no_defs", Affine(500, 0, 1.8e6, 0, -500, 0))
    with pytest.raises(MosaicError) as info:
        combine_tiles([a, b])
    msg = str(info.value)
    assert "unknown" not in msg
    assert "'+proj=longlat +R=3396190'" in msg and "'+proj=eqc +R=3396190 +units=m'" in msg
    assert f"gdalwarp -t_srs '+proj=longlat +R=3396190' -tr 0.01 0.01 -tap {b}" in msg
    err = _cli_error(capsys, ["ingest", str(a), str(b), "--out", str(tmp_path / "ab.zarr")], python_words=True)
    assert "gdalwarp -t_srs" in err and "unknown" not in err


# ---------------------------------------------------------------------------------------------
# 5. a THEMIS tile name on an image that is not a full 7680 px tile
# ---------------------------------------------------------------------------------------------
def test_small_themis_tile_warns_what_it_assumes(tmp_path: Path) -> None:
    path = _png(tmp_path, "thm_dir_N-30_030.png", size=416)
    with pytest.warns(UserWarning, match=r"416 x 416 px, not the 7680 x 7680") as record:
        ds = read_themis_tile(path)
    text = str(record[0].message)
    assert "lon 30..60, lat -30..0" in text and "bounds=" in text
    assert ds.rio.bounds() == pytest.approx((30, -30, 60, 0))


def test_full_size_themis_tile_does_not_warn(tmp_path: Path) -> None:
    path = tmp_path / "thm_dir_N-30_030.png"
    Image.new("L", (7680, 7680), 7).save(path)  # constant: compresses to a few kB
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = read_themis_tile(path)
    assert ds.attrs["px_per_deg"] == 256


def test_a_count_area_west_of_minus_180_is_degrees_too():
    # the same 10-degree box on either side of the antimeridian's conventions
    import shapely

    from marscraters.chronology import count_area_km2

    assert count_area_km2(shapely.box(-185, 0, -175, 1)) == pytest.approx(count_area_km2(shapely.box(175, 0, 185, 1)))
    assert count_area_km2(shapely.box(355, 0, 365, 1)) == pytest.approx(count_area_km2(shapely.box(-5, 0, 5, 1)))
