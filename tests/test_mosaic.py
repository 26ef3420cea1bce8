"""Tests of marscraters.mosaic: tile names, readers, combining, filling, Zarr ingest and reopening.

All inputs are tiny images generated here and written through the real libraries (PIL for PNG,
rasterio/GDAL for GeoTIFF, zarr for the cubes); dask runs for real.  Laziness is checked with
the ``no_compute`` fixture of conftest.py (any dask compute inside it fails).
"""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pyproj
import pytest
import rasterio
import xarray as xr
from affine import Affine
from PIL import Image

from marscraters.crs import MARS_EQUIRECTANGULAR, MARS_GEOGRAPHIC, Grid
from marscraters.errors import (
    CorruptImageError,
    ImageReadError,
    InvalidArgumentError,
    MissingCRSError,
    MosaicError,
    NotMarsCRSError,
    OutputExistsError,
    TileNameError,
)
from marscraters.mosaic import (
    combine_tiles,
    fill_missing,
    ingest,
    mosaic_from_array,
    open_mosaic,
    parse_tile_name,
    read_geotiff,
    read_image,
    read_themis_tile,
    tile_name,
    validate_mosaic,
)

N = 240  # test tiles: 240 x 240 px over 30 x 30 degrees = 8 px/deg


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def tile_pixels(seed: int, n: int = N) -> np.ndarray:
    """A uint8 tile with no zeros, plus a band of zeros (no data) at rows 5..7."""
    rng = np.random.default_rng(seed)
    img = rng.integers(1, 256, size=(n, n), dtype=np.uint8)
    img[5:8, :] = 0
    return img


def write_tile(directory: Path, south: int, west: int, pixels: np.ndarray, mode: str = "L") -> Path:
    path = directory / tile_name(south, west)
    if mode == "L":
        Image.fromarray(pixels).save(path)
    elif mode == "RGB":
        Image.fromarray(np.stack([pixels, pixels // 2, pixels // 3], axis=-1)).save(path)
    elif mode == "LA":
        Image.fromarray(np.stack([pixels, np.full_like(pixels, 255)], axis=-1), mode="LA").save(path)
    else:
        raise ValueError(mode)
    return path


def expected_ir(pixels: np.ndarray) -> np.ndarray:
    out = pixels.astype(np.float32)
    out[pixels == 0] = np.nan
    return out


def write_geotiff(path: Path, data: np.ndarray, transform: Affine, crs, nodata=None) -> Path:  # noqa: ANN001
    with rasterio.open(
        path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1], count=1,
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata,
    ) as dst:
        dst.write(data, 1)
    return path


def value_at(ds: xr.Dataset, lon: float, lat: float) -> float:
    """Value of the pixel containing (lon, lat), found through Grid.lonlat_to_pixel."""
    col, row = Grid.from_dataset(ds).lonlat_to_pixel(lon, lat)
    return float(ds["ir"].values[int(round(float(row))), int(round(float(col)))])


@pytest.fixture
def tile(tmp_path: Path) -> tuple[Path, np.ndarray]:
    pixels = tile_pixels(0)
    return write_tile(tmp_path, -30, 30, pixels), pixels


# ------------------------------------------------------------------------------------------
# tile names
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("thm_dir_N-30_030.png", (-30, 30)),
        ("thm_dir_N00_000.png", (0, 0)),
        ("thm_dir_N30_330.png", (30, 330)),
        ("thm_dir_N-90_180.png", (-90, 180)),
        ("thm_dir_N60_090", (60, 90)),
        ("/some/dir/thm_dir_N-60_300.png", (-60, 300)),
        (Path("data") / "thm_dir_N00_150.PNG", (0, 150)),
    ],
)
def test_parse_tile_name(name, expected):  # noqa: ANN001
    assert parse_tile_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "thm_dir_N15_000.png",  # 15 is not a tile edge
        "thm_dir_N00_045.png",  # 45 is not a tile edge
        "thm_dir_N00_360.png",
        "thm_dir_N90_000.png",  # the north pole is no tile's south edge
        "thm_dir_N0_000.png",  # lat must have two digits
        "thm_dir_N00_30.png",  # lon must have three digits
        "thm_dir_S30_000.png",
        "thm_dir_N00_000.tif",
        "crater12.png",
        "",
    ],
)
def test_parse_tile_name_rejects_bad_names(name):  # noqa: ANN001
    with pytest.raises(TileNameError, match=r"thm_dir_N\{lat\}_\{lon:03d\}\.png"):
        parse_tile_name(name)


def test_tile_name_is_inverse_of_parse():
    for south in (-90, -60, -30, 0, 30, 60):
        for west in range(0, 360, 30):
            assert parse_tile_name(tile_name(south, west)) == (south, west)
    assert tile_name(-30, 30) == "thm_dir_N-30_030.png"
    assert tile_name(0, -30) == "thm_dir_N00_330.png"  # -180..180 input accepted


@pytest.mark.parametrize(("south", "west"), [(15, 0), (90, 0), (0, 45), (0, 10.5)])
def test_tile_name_rejects_non_edges(south, west):  # noqa: ANN001
    with pytest.raises(TileNameError):
        tile_name(south, west)


# ------------------------------------------------------------------------------------------
# THEMIS PNG tiles
# ------------------------------------------------------------------------------------------


def test_read_themis_tile_georeferencing_and_values(tile):  # noqa: ANN001
    path, pixels = tile
    ds = read_themis_tile(path)
    assert isinstance(ds["ir"].data, da.Array)
    assert ds["ir"].dims == ("y", "x") and ds["ir"].dtype == np.float32
    assert ds.rio.bounds() == pytest.approx((30.0, -30.0, 60.0, 0.0))
    assert tuple(ds.rio.transform())[:6] == pytest.approx((1 / 8, 0, 30, 0, -1 / 8, 0))
    assert pyproj.CRS(ds.rio.crs.to_wkt()).equals(MARS_GEOGRAPHIC)
    assert ds.attrs["px_per_deg"] == 8.0
    assert ds.attrs["source"] == str(path.resolve())
    # x in the tile's 0..360 convention, pixel centres
    assert float(ds.x[0]) == pytest.approx(30 + 0.5 / 8)
    assert float(ds.y[0]) == pytest.approx(0 - 0.5 / 8)
    np.testing.assert_array_equal(ds["ir"].values, expected_ir(pixels))
    assert np.isnan(ds["ir"].values[5:8]).all() and not np.isnan(ds["ir"].values[8:]).any()
    # the pixel at row 100, col 20 has its centre at lon 30 + 20.5/8, lat -100.5/8
    col, row = Grid.from_dataset(ds).lonlat_to_pixel(30 + 20.5 / 8, -100.5 / 8)
    assert (float(col), float(row)) == pytest.approx((20.0, 100.0))
    assert value_at(ds, 30 + 20.5 / 8, -100.5 / 8) == pixels[100, 20]


@pytest.mark.parametrize("chunks", [None, 64, (100, -1), {"y": 50, "x": 240}, (-1, 60)])
def test_read_themis_tile_same_answer_for_any_chunking(tile, chunks):  # noqa: ANN001
    path, pixels = tile
    ds = read_themis_tile(path, chunks=chunks)
    np.testing.assert_array_equal(ds["ir"].values, expected_ir(pixels))


def test_read_themis_tile_default_chunks_are_full_width_strips(tmp_path):  # noqa: ANN001
    pixels = tile_pixels(1, n=1200)
    ds = read_themis_tile(write_tile(tmp_path, 0, 0, pixels))
    assert ds["ir"].chunks == ((512, 512, 176), (1200,))
    assert ds.attrs["px_per_deg"] == 40.0


@pytest.mark.parametrize("mode", ["RGB", "LA"])
def test_read_themis_tile_takes_first_band(tmp_path, mode):  # noqa: ANN001
    pixels = tile_pixels(2)
    ds = read_themis_tile(write_tile(tmp_path, 0, 90, pixels, mode=mode))
    np.testing.assert_array_equal(ds["ir"].values, expected_ir(pixels))


def test_read_themis_tile_palette_png_maps_through_palette(tmp_path):  # noqa: ANN001
    index = np.zeros((N, N), dtype=np.uint8)
    index[:, 100:] = 1
    index[:10] = 2
    img = Image.fromarray(index, mode="P")
    img.putpalette([0, 0, 0, 200, 200, 200, 50, 50, 50] + [0] * (256 - 3) * 3)
    path = tmp_path / tile_name(0, 0)
    img.save(path)
    ir = read_themis_tile(path)["ir"].values
    assert np.isnan(ir[50, 0])  # palette entry 0 is black: no data
    assert ir[50, 150] == 200 and ir[0, 0] == 50


def test_read_themis_tile_is_lazy(tile, no_compute):  # noqa: ANN001
    with no_compute():
        ds = read_themis_tile(tile[0])
        validate_mosaic(ds)
        Grid.from_dataset(ds)


def test_read_themis_tile_missing_file(tmp_path):  # noqa: ANN001
    with pytest.raises(ImageReadError, match="does not exist"):
        read_themis_tile(tmp_path / "thm_dir_N00_000.png")


def test_read_themis_tile_bad_name(tmp_path):  # noqa: ANN001
    path = tmp_path / "crater1.png"
    Image.fromarray(tile_pixels(0)).save(path)
    with pytest.raises(TileNameError, match="crater1.png"):
        read_themis_tile(path)


def test_read_themis_tile_non_square(tmp_path):  # noqa: ANN001
    path = tmp_path / tile_name(0, 0)
    Image.fromarray(np.ones((100, 120), np.uint8)).save(path)
    with pytest.raises(ImageReadError, match="120 x 100 px.*square"):
        read_themis_tile(path)


def test_read_themis_tile_not_an_image(tmp_path):  # noqa: ANN001
    path = tmp_path / tile_name(0, 0)
    path.write_bytes(b"<html>404 Not Found</html>" * 4 + b"IEND")
    with pytest.raises(CorruptImageError, match=str(path.name)):
        read_themis_tile(path)


def test_read_themis_tile_truncated_file_fails_at_open(tile):  # noqa: ANN001
    path, _ = tile
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match=f"{path.name}.*truncated"):
        read_themis_tile(path)


def test_read_themis_tile_corrupt_pixels_fail_at_compute(tile):  # noqa: ANN001
    path, _ = tile
    data = bytearray(path.read_bytes())
    k = len(data) * 3 // 4
    data[k : k + 64] = bytes(64)  # damage the compressed pixels; the header and end marker stay
    path.write_bytes(bytes(data))
    ds = read_themis_tile(path, chunks=(40, -1))  # opening succeeds: the header is fine
    with pytest.raises(CorruptImageError, match=f"{path.name}.*(corrupt|truncated)"):
        ds["ir"].values


# ------------------------------------------------------------------------------------------
# GeoTIFF
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crs", ["+proj=longlat +R=3396190 +no_defs", "IAU_2015:49900"])
def test_read_geotiff_geographic_mars(tmp_path, crs):  # noqa: ANN001
    data = tile_pixels(3, n=64)
    transform = Affine(0.25, 0, -100.0, 0, -0.25, 20.0)
    path = write_geotiff(tmp_path / "crop.tif", data, transform, crs, nodata=0)
    ds = read_geotiff(path, chunks=32)
    assert ds["ir"].dtype == np.float32 and ds["ir"].chunks == ((32, 32), (32, 32))
    assert ds.rio.bounds() == pytest.approx((-100.0, 4.0, -84.0, 20.0))
    assert ds.attrs["px_per_deg"] == 4.0
    np.testing.assert_array_equal(ds["ir"].values, expected_ir(data))
    assert value_at(ds, -100 + 10.5 / 4, 20 - 30.5 / 4) == data[30, 10]


def test_read_geotiff_equirectangular_metres(tmp_path):  # noqa: ANN001
    data = tile_pixels(4, n=64)
    res = 1000.0
    transform = Affine(res, 0, 100_000.0, 0, -res, 200_000.0)
    path = write_geotiff(tmp_path / "eqc.tif", data, transform, "IAU_2015:49910", nodata=0)
    ds = read_geotiff(path)
    assert pyproj.CRS(ds.rio.crs.to_wkt()).equals(MARS_EQUIRECTANGULAR)
    assert ds.rio.bounds() == pytest.approx((100_000.0, 136_000.0, 164_000.0, 200_000.0))
    assert ds.attrs["px_per_deg"] == pytest.approx(59.27, rel=1e-3)  # 1 km/px
    # the centre of pixel (row 17, col 40), through the projection and back via Grid
    x, y = 100_000 + 40.5 * res, 200_000 - 17.5 * res
    to_lonlat = pyproj.Transformer.from_crs(MARS_EQUIRECTANGULAR, MARS_GEOGRAPHIC, always_xy=True)
    lon, lat = to_lonlat.transform(x, y)
    assert value_at(ds, lon, lat) == data[17, 40]


def test_read_geotiff_south_up_is_flipped(tmp_path):  # noqa: ANN001
    data = tile_pixels(5, n=16)
    transform = Affine(1.0, 0, 10.0, 0, 1.0, -8.0)  # row 0 at the south edge
    path = write_geotiff(tmp_path / "southup.tif", data, transform, "IAU_2015:49900")
    ds = read_geotiff(path)
    assert ds.rio.bounds() == pytest.approx((10.0, -8.0, 26.0, 8.0))
    assert ds.rio.transform().e < 0
    np.testing.assert_array_equal(ds["ir"].values, data[::-1].astype(np.float32))


def test_read_geotiff_without_crs(tmp_path):  # noqa: ANN001
    path = write_geotiff(tmp_path / "nocrs.tif", tile_pixels(0, 8), Affine(1, 0, 0, 0, -1, 8), None)
    with pytest.raises(MissingCRSError, match="nocrs.tif.*no coordinate reference system"):
        read_geotiff(path)


def test_read_geotiff_earth_crs(tmp_path):  # noqa: ANN001
    path = write_geotiff(tmp_path / "earth.tif", tile_pixels(0, 8), Affine(1, 0, 0, 0, -1, 8), "EPSG:4326")
    with pytest.raises(NotMarsCRSError, match="earth.tif.*IAU_2015:49900"):
        read_geotiff(path)


def test_read_geotiff_missing_and_corrupt(tmp_path):  # noqa: ANN001
    with pytest.raises(ImageReadError, match="does not exist"):
        read_geotiff(tmp_path / "nope.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(CorruptImageError, match="bad.tif"):
        read_geotiff(bad)


def test_read_geotiff_is_lazy(tmp_path, no_compute):  # noqa: ANN001
    path = write_geotiff(tmp_path / "a.tif", tile_pixels(0, 16), Affine(1, 0, 0, 0, -1, 16), "IAU_2015:49900")
    with no_compute():
        ds = read_geotiff(path)
        validate_mosaic(ds)


# ------------------------------------------------------------------------------------------
# read_image dispatch
# ------------------------------------------------------------------------------------------


def test_read_image_dispatches_on_suffix(tmp_path, tile):  # noqa: ANN001
    path, pixels = tile
    np.testing.assert_array_equal(read_image(path)["ir"].values, expected_ir(pixels))
    transform = Affine(0.125, 0, 30, 0, -0.125, 0)
    tif = write_geotiff(tmp_path / "x.TIF", pixels, transform, "IAU_2015:49900", nodata=0)
    np.testing.assert_array_equal(read_image(tif)["ir"].values, expected_ir(pixels))
    cube = ingest(path, tmp_path / "c.zarr", progress=False)
    np.testing.assert_array_equal(read_image(cube)["ir"].values, expected_ir(pixels))


def test_read_image_rejects_unknown(tmp_path):  # noqa: ANN001
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "crater0.jpg")
    for name in ("crater0.jpg", "crater0.png"):
        Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / name)
    with pytest.raises(ImageReadError, match=r"'\.jpg'.*bounds="):
        read_image(tmp_path / "crater0.jpg")
    with pytest.raises(TileNameError, match="bounds="):
        read_image(tmp_path / "crater0.png")


# ------------------------------------------------------------------------------------------
# mosaic_from_array and validate_mosaic
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lazy", [False, True])
def test_mosaic_from_array(lazy):  # noqa: ANN001
    arr = np.arange(12, dtype=np.int16).reshape(3, 4)
    src = da.from_array(arr, chunks=2) if lazy else arr
    ds = mosaic_from_array(src, bounds=(350, -3, 354, 0), name="synthetic", nodata=0)
    assert isinstance(ds["ir"].data, da.Array) is lazy
    assert ds["ir"].dtype == np.float32
    assert ds.rio.bounds() == pytest.approx((350, -3, 354, 0))
    assert ds.attrs == {"source": "synthetic", "px_per_deg": 1.0}
    assert np.isnan(ds["ir"].values[0, 0]) and ds["ir"].values[2, 3] == 11
    assert value_at(ds, -7.5, -2.5) == 10  # -7.5 E == 352.5 E: column 2, row 2
    validate_mosaic(ds)


@pytest.mark.parametrize(
    ("args", "err"),
    [
        ((np.ones((2, 2, 2)), (0, 0, 1, 1)), InvalidArgumentError),
        ((np.ones((2, 2)), (1, 0, 0, 1)), InvalidArgumentError),
        ((np.ones((2, 2)), (0, 0, 1)), InvalidArgumentError),
        ((np.ones((2, 2)), (0, 0, 1, 1), "EPSG:4326"), NotMarsCRSError),
        ((np.ones((2, 2)), (0, 0, 1, 1), None), MissingCRSError),
    ],
)
def test_mosaic_from_array_rejects(args, err):  # noqa: ANN001
    with pytest.raises(err):
        mosaic_from_array(*args)


def _good() -> xr.Dataset:
    return mosaic_from_array(np.ones((4, 4)), (0, 0, 4, 4))


@pytest.mark.parametrize(
    ("make", "err", "match"),
    [
        (lambda: _good()["ir"], MosaicError, "to_dataset"),
        (lambda: _good().rename({"ir": "band_data"}), MosaicError, "no 'ir'"),
        (lambda: _good().transpose("x", "y"), MosaicError, r"dims \('y', 'x'\)"),
        (lambda: _good().assign(ir=_good()["ir"].expand_dims("band")), MosaicError, "squeeze"),
        (lambda: _good().assign(ir=_good()["ir"].astype("uint8")), MosaicError, "floating"),
        (lambda: _good().drop_vars("spatial_ref"), MissingCRSError, "write_crs"),
        (lambda: _good().rio.write_crs("EPSG:4326"), NotMarsCRSError, "non-Mars"),
        (lambda: "not a dataset", MosaicError, "str"),
    ],
)
def test_validate_mosaic_errors(make, err, match):  # noqa: ANN001
    with pytest.raises(err, match=match):
        validate_mosaic(make())


# ------------------------------------------------------------------------------------------
# combine_tiles
# ------------------------------------------------------------------------------------------


def _tiles(tmp_path: Path, corners: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[Path, np.ndarray]]:
    return {
        (s, w): (write_tile(tmp_path, s, w, pix := tile_pixels(10 + k)), pix)
        for k, (s, w) in enumerate(corners)
    }


def _centre(south: int, west: int, row: int, col: int) -> tuple[float, float]:
    """lon/lat of the centre of pixel (row, col) of tile (south, west) at 8 px/deg."""
    return west + (col + 0.5) / 8, south + 30 - (row + 0.5) / 8


def test_combine_adjacent_tiles(tmp_path):  # noqa: ANN001
    tiles = _tiles(tmp_path, [(0, 0), (0, 30)])
    ds = combine_tiles([read_themis_tile(p) for p, _ in tiles.values()])
    assert ds.sizes == {"y": N, "x": 2 * N}
    assert ds.rio.bounds() == pytest.approx((0, 0, 60, 30))
    expected = np.hstack([expected_ir(tiles[(0, 0)][1]), expected_ir(tiles[(0, 30)][1])])
    np.testing.assert_array_equal(ds["ir"].values, expected)
    for (s, w), (_, pix) in tiles.items():
        assert value_at(ds, *_centre(s, w, 100, 200)) == pix[100, 200]


def test_combine_across_0_360(tmp_path):  # noqa: ANN001
    tiles = _tiles(tmp_path, [(0, 330), (0, 0)])
    ds = combine_tiles([p for p, _ in tiles.values()])  # paths work too
    # the set crosses 0 E: x runs contiguously from -30 to 30 (the -180..180 convention)
    assert ds.rio.bounds() == pytest.approx((-30, 0, 30, 30))
    assert np.all(np.diff(ds.x.values) > 0)
    np.testing.assert_array_equal(ds["ir"].values[:, :N], expected_ir(tiles[(0, 330)][1]))
    lon, lat = _centre(0, 330, 50, 7)  # lon 330.9: given as 330.9 or -29.1, same pixel
    assert value_at(ds, lon, lat) == value_at(ds, lon - 360, lat) == tiles[(0, 330)][1][50, 7]
    assert value_at(ds, *_centre(0, 0, 60, 230)) == tiles[(0, 0)][1][60, 230]
    assert Grid.from_dataset(ds).lonlat_to_pixel(0.0625, 15)[0] == pytest.approx(N + 0.0)


def test_combine_across_180(tmp_path):  # noqa: ANN001
    tiles = _tiles(tmp_path, [(-30, 180), (-30, 150)])
    ds = combine_tiles([read_themis_tile(p) for p, _ in tiles.values()])
    # the set crosses 180 E: x stays in the 0..360 convention, from 150 to 210
    assert ds.rio.bounds() == pytest.approx((150, -30, 210, 0))
    lon, lat = _centre(-30, 180, 3 + 8, 80)  # lon 190.06 == -169.94
    assert value_at(ds, lon - 360, lat) == tiles[(-30, 180)][1][11, 80]
    assert value_at(ds, *_centre(-30, 150, 200, 10)) == tiles[(-30, 150)][1][200, 10]


def test_combine_with_gaps_gives_nan(tmp_path):  # noqa: ANN001
    tiles = _tiles(tmp_path, [(0, 0), (-30, 30)])  # diagonal neighbours
    ds = combine_tiles([read_themis_tile(p) for p, _ in tiles.values()])
    assert ds.rio.bounds() == pytest.approx((0, -30, 60, 30))
    ir = ds["ir"].values
    assert np.isnan(ir[:N, N:]).all() and np.isnan(ir[N:, :N]).all()
    np.testing.assert_array_equal(ir[N:, N:], expected_ir(tiles[(-30, 30)][1]))
    assert value_at(ds, *_centre(-30, 30, 239, 0)) == tiles[(-30, 30)][1][239, 0]


def test_combine_whole_ring_of_tiles():
    # twelve 30 x 30 degree tiles at 1 px/deg all around the equator
    wests = range(330, -30, -30)
    parts = [mosaic_from_array(np.full((30, 30), k + 1.0), (w, 0, w + 30, 30)) for k, w in enumerate(wests)]
    ds = combine_tiles(parts)
    assert ds.rio.bounds() == pytest.approx((0, 0, 360, 30))
    assert value_at(ds, 45, 10) == 11  # tile with west edge 30 was the 11th
    assert value_at(ds, -15, 10) == 1  # 345 E, the first


def test_combine_keeps_inputs_180_convention():
    a = mosaic_from_array(np.ones((10, 10)), (-100, 0, -90, 10))
    b = mosaic_from_array(np.full((10, 10), 2.0), (-90, 0, -80, 10))
    ds = combine_tiles([a, b])
    assert ds.rio.bounds() == pytest.approx((-100, 0, -80, 10))
    assert value_at(ds, 275.5, 5) == 2  # 275.5 E == -84.5 E


def test_combine_float_resolution_has_no_seam():
    # 592.747 px/deg (the USGS 100 m mosaics): edges computed from n * res are not exact floats
    res = 1 / 592.747
    a = mosaic_from_array(np.ones((50, 70)), (10, 0, 10 + 70 * res, 50 * res))
    east = a.rio.bounds()[2]
    b = mosaic_from_array(np.full((50, 30), 2.0), (east, 0, east + 30 * res, 50 * res))
    ds = combine_tiles([b, a])
    assert ds.sizes == {"y": 50, "x": 100}
    assert not np.isnan(ds["ir"].values).any()
    assert (ds["ir"].values[:, :70] == 1).all() and (ds["ir"].values[:, 70:] == 2).all()


def test_combine_is_lazy(tmp_path, no_compute):  # noqa: ANN001
    tiles = _tiles(tmp_path, [(0, 330), (0, 0)])
    with no_compute():
        ds = combine_tiles([read_themis_tile(p) for p, _ in tiles.values()])
        validate_mosaic(ds)


@pytest.mark.parametrize(
    ("other", "match"),
    [
        (mosaic_from_array(np.ones((20, 20)), (10, 0, 20, 10)), "resolution"),
        (mosaic_from_array(np.ones((10, 10)), (10.5, 0, 20.5, 10)), "same pixel grid"),
        (mosaic_from_array(np.ones((10, 10)), (0, 0, 10, 10), crs="IAU_2015:49910"), "different CRSs"),
    ],
)
def test_combine_rejects_incompatible(other, match):  # noqa: ANN001
    base = mosaic_from_array(np.ones((10, 10)), (0, 0, 10, 10))
    with pytest.raises(MosaicError, match=match):
        combine_tiles([base, other])


def test_combine_rejects_empty():
    with pytest.raises(InvalidArgumentError):
        combine_tiles([])


# ------------------------------------------------------------------------------------------
# fill_missing
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lazy", [False, True])
def test_fill_missing_mean_and_mask(lazy):  # noqa: ANN001
    arr = np.array([[1.0, np.nan, 3.0], [np.nan, 5.0, 9.0]], dtype=np.float32)
    ds = mosaic_from_array(da.from_array(arr, chunks=1) if lazy else arr, (0, 0, 3, 2))
    filled = fill_missing(ds)
    assert isinstance(filled["ir"].data, da.Array) is lazy
    np.testing.assert_array_equal(filled["missing"].values, np.isnan(arr))
    np.testing.assert_allclose(filled["ir"].values, np.where(np.isnan(arr), 4.5, arr))
    assert filled.attrs["filled_with"] == "mean"
    assert filled["ir"].dtype == np.float32 and filled["missing"].dtype == bool
    assert np.isnan(ds["ir"].values[0, 1])  # the input is untouched
    assert Grid.from_dataset(filled) == Grid.from_dataset(ds)
    # filling twice keeps the first mask
    again = fill_missing(filled, value=0)
    np.testing.assert_array_equal(again["missing"].values, np.isnan(arr))


def test_fill_missing_with_a_number():
    ds = mosaic_from_array(np.array([[np.nan, 2.0]]), (0, 0, 2, 1))
    assert fill_missing(ds, value=-1)["ir"].values.tolist() == [[-1.0, 2.0]]
    with pytest.raises(InvalidArgumentError):
        fill_missing(ds, value="median")
    with pytest.raises(InvalidArgumentError):
        fill_missing(ds, value=float("nan"))


def test_fill_missing_all_nan():
    arr = np.full((4, 4), np.nan, dtype=np.float32)
    with pytest.raises(MosaicError, match="all NaN"):
        fill_missing(mosaic_from_array(arr, (0, 0, 4, 4)))
    lazy = fill_missing(mosaic_from_array(da.from_array(arr, chunks=2), (0, 0, 4, 4), name="t.png"))
    with pytest.raises(MosaicError, match="t.png.*all NaN"):
        lazy["ir"].values


def test_fill_missing_is_lazy(tile, no_compute):  # noqa: ANN001
    with no_compute():
        filled = fill_missing(read_themis_tile(tile[0]))
    mean = np.nanmean(expected_ir(tile[1]))
    assert filled["ir"].values[6, 0] == pytest.approx(mean, rel=1e-6)
    assert filled["missing"].values[5:8].all() and not filled["missing"].values[8:].any()


# ------------------------------------------------------------------------------------------
# ingest and open_mosaic
# ------------------------------------------------------------------------------------------


def _zarr_meta(store: Path, var: str) -> dict:
    return json.loads((store / var / "zarr.json").read_text())


def test_ingest_round_trip(tmp_path):  # noqa: ANN001
    pixels = tile_pixels(7, n=1200)  # 40 px/deg, larger than one 512 storage chunk
    src = write_tile(tmp_path, -30, 330, pixels)
    out = ingest(src, tmp_path / "cube.zarr", progress=False)
    assert out == tmp_path / "cube.zarr"
    meta = _zarr_meta(out, "ir")
    assert meta["zarr_format"] == 3
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [512, 512]
    ds = open_mosaic(out)
    assert "spatial_ref" in ds.coords and "spatial_ref" not in ds.data_vars
    assert pyproj.CRS(ds.rio.crs.to_wkt()).equals(MARS_GEOGRAPHIC)
    assert ds.rio.bounds() == pytest.approx((330, -30, 360, 0))
    for sizes in ds["ir"].chunks:
        assert all(c % 512 == 0 for c in sizes[:-1])
    assert ds["ir"].chunks[0][0] == 512
    np.testing.assert_array_equal(ds["ir"].values, expected_ir(pixels))
    src_ds = read_themis_tile(src)
    np.testing.assert_array_equal(ds.x.values, src_ds.x.values)
    np.testing.assert_array_equal(ds.y.values, src_ds.y.values)
    assert value_at(ds, -30 + 100.5 / 40, -0.5 / 40 - 700 / 40) == pixels[700, 100]


def test_ingest_custom_chunks_and_combination(tmp_path):  # noqa: ANN001
    tiles = _tiles(tmp_path, [(0, 330), (0, 0)])
    paths = [p for p, _ in tiles.values()]
    out = ingest(paths, tmp_path / "two.zarr", chunk=64, dask_chunk=(128, -1), progress=False)
    assert _zarr_meta(out, "ir")["chunk_grid"]["configuration"]["chunk_shape"] == [64, 64]
    ds = open_mosaic(out)
    assert ds["ir"].chunks == ((128, 112), (480,))
    assert open_mosaic(out, chunks=64)["ir"].chunks[1] == (64,) * 7 + (32,)
    expected = combine_tiles([read_themis_tile(p) for p, _ in tiles.values()])
    xr.testing.assert_identical(ds["ir"].drop_vars("spatial_ref"), expected["ir"].drop_vars("spatial_ref"))
    assert ds.rio.transform() == expected.rio.transform()


def test_ingest_refuses_to_overwrite(tmp_path, tile):  # noqa: ANN001
    out = ingest(tile[0], tmp_path / "cube.zarr", progress=False)
    with pytest.raises(OutputExistsError, match="overwrite"):
        ingest(tile[0], out, progress=False)
    other = write_tile(tmp_path, 0, 0, np.full((N, N), 7, np.uint8))
    ingest(other, out, overwrite=True, progress=False)
    assert np.all(open_mosaic(out)["ir"].values == 7)


def test_ingest_failure_leaves_nothing(tile):  # noqa: ANN001
    path, _ = tile
    data = bytearray(path.read_bytes())
    k = len(data) * 3 // 4
    data[k : k + 64] = bytes(64)
    path.write_bytes(bytes(data))
    before = set(path.parent.iterdir())
    with pytest.raises(CorruptImageError, match=path.name):
        ingest(path, path.parent / "cube.zarr", chunk=32, progress=False)
    assert set(path.parent.iterdir()) == before  # no cube, no temporary store


def test_ingest_rejects_bad_dask_chunk(tile, tmp_path):  # noqa: ANN001
    with pytest.raises(InvalidArgumentError, match="multiple"):
        ingest(tile[0], tmp_path / "c.zarr", chunk=64, dask_chunk=100, progress=False)
    assert not (tmp_path / "c.zarr").exists()


def test_ingest_fill_round_trip_keeps_mask(tmp_path, tile):  # noqa: ANN001
    cube = ingest(tile[0], tmp_path / "cube.zarr", progress=False)
    filled = fill_missing(open_mosaic(cube))
    filled.to_zarr(tmp_path / "filled.zarr", zarr_format=3, consolidated=False)
    again = open_mosaic(tmp_path / "filled.zarr")
    np.testing.assert_array_equal(again["missing"].values, np.isnan(expected_ir(tile[1])))
    assert not np.isnan(again["ir"].values).any()


def test_open_mosaic_is_lazy(tmp_path, tile, no_compute):  # noqa: ANN001
    cube = ingest(tile[0], tmp_path / "cube.zarr", progress=False)
    with no_compute():
        ds = open_mosaic(cube)
        Grid.from_dataset(ds)
    assert isinstance(ds["ir"].data, da.Array)


def test_open_mosaic_errors(tmp_path):  # noqa: ANN001
    with pytest.raises(ImageReadError, match="does not exist.*ingest"):
        open_mosaic(tmp_path / "missing.zarr")
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    with pytest.raises(ImageReadError, match="empty.zarr"):
        open_mosaic(empty)
    other = tmp_path / "other.zarr"
    xr.Dataset({"v": ("t", np.arange(3))}).to_zarr(other, zarr_format=3, consolidated=False)
    with pytest.raises(MosaicError, match="not a marscraters mosaic cube"):
        open_mosaic(other)
    broken = tmp_path / "broken.zarr"
    _good().to_zarr(broken, zarr_format=3, consolidated=False)
    (broken / "zarr.json").write_text("{ this is not json")
    with pytest.raises(ImageReadError, match="broken.zarr"):
        open_mosaic(broken)


def test_open_mosaic_without_crs(tmp_path):  # noqa: ANN001
    store = tmp_path / "nocrs.zarr"
    plain = xr.Dataset(
        {"ir": (("y", "x"), np.ones((2, 2), np.float32))}, coords={"x": [0.5, 1.5], "y": [1.5, 0.5]}
    )
    plain.to_zarr(store, zarr_format=3, consolidated=False)
    with pytest.raises(MissingCRSError):
        open_mosaic(store)


def test_ingest_accepts_mosaic_datasets_and_geotiffs(tmp_path):  # noqa: ANN001
    arr = np.arange(64 * 96, dtype=np.float32).reshape(64, 96)
    arr[3, 4] = np.nan
    ds = mosaic_from_array(da.from_array(arr, chunks=32), (-10, -4, 14, 12), name="synthetic")
    cube = open_mosaic(ingest(ds, tmp_path / "syn.zarr", chunk=16, progress=False))
    np.testing.assert_array_equal(cube["ir"].values, arr)
    assert cube.rio.transform() == ds.rio.transform() and cube.attrs["source"] == "synthetic"
    transform = Affine(0.5, 0, 10, 0, -0.5, 5)
    tif = write_geotiff(tmp_path / "g.tif", tile_pixels(8, 100), transform, "IAU_2015:49900", nodata=0)
    cube = open_mosaic(ingest(tif, tmp_path / "g.zarr", chunk=32, progress=False))
    assert cube["ir"].chunks == ((32, 32, 32, 4), (100,))
    np.testing.assert_array_equal(cube["ir"].values, expected_ir(tile_pixels(8, 100)))
    assert cube.rio.bounds() == pytest.approx((10, -45, 60, 5))


def test_read_themis_tile_refuses_a_file_replaced_after_opening(tile):  # noqa: ANN001
    path, _ = tile
    ds = read_themis_tile(path)
    Image.fromarray(tile_pixels(99)).save(path)  # new pixels, and a new mtime/size
    with pytest.raises(ImageReadError, match="changed on disk"):
        ds["ir"].values
    np.testing.assert_array_equal(read_themis_tile(path)["ir"].values, expected_ir(tile_pixels(99)))


def test_truncated_geotiff_fails_clearly_and_ingest_leaves_nothing(tmp_path):
    """A GeoTIFF cut short opens (its header is intact) but its pixels cannot be decoded: the
    error is a CorruptImageError naming the file, and ingest writes nothing."""
    from marscraters import cli

    rng = np.random.default_rng(3)
    data = rng.uniform(1, 255, (300, 320)).astype(np.float32)
    full = write_geotiff(tmp_path / "full.tif", data, Affine(0.01, 0, 30, 0, -0.01, 0), "+proj=longlat +R=3396190 +no_defs")
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    ds = read_geotiff(cut)
    with pytest.raises(CorruptImageError, match="cut.tif"):
        ds["ir"].compute()
    assert cli.main(["-q", "ingest", str(cut), "--out", str(tmp_path / "c.zarr")]) == 2
    assert not (tmp_path / "c.zarr").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # the intact file reads back exactly, with nodata as NaN
    np.testing.assert_array_equal(read_geotiff(full)["ir"].values, data)
