"""Tests for marscraters.targets.render_targets: geometry, kinds, chunking, laziness, errors."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine

from marscraters.crs import KM_PER_DEGREE, MARS_EQUIRECTANGULAR, MARS_GEOGRAPHIC, Grid
from marscraters.errors import (
    CatalogError,
    CatalogValidationError,
    InvalidArgumentError,
    MarsCratersError,
    MissingCRSError,
    MosaicError,
)
from marscraters.targets import DEFAULT_HYBRID_THRESHOLD_KM, TARGET_KINDS, render_targets

# --------------------------------------------------------------------------------------------
# fixtures built in code


def make_mosaic(west, north, ny, nx, res, *, chunks=None, crs=MARS_GEOGRAPHIC):
    """A Mosaic: float32 ``ir`` on (y, x), pixel-centre coords, CRS and transform."""
    x = west + (np.arange(nx) + 0.5) * res
    y = north - (np.arange(ny) + 0.5) * res
    ds = xr.Dataset({"ir": (("y", "x"), np.zeros((ny, nx), np.float32))}, coords={"x": x, "y": y})
    ds = ds.rio.write_crs(crs).rio.write_transform(Affine(res, 0.0, west, 0.0, -res, north))
    if isinstance(chunks, tuple):
        chunks = dict(zip(("y", "x"), chunks, strict=True))
    return ds.chunk(chunks) if chunks is not None else ds


def make_catalog(lat, lon, diameter_km, geo=False):
    df = pd.DataFrame({"lat": np.asarray(lat, float), "lon": np.asarray(lon, float),
                       "diameter_km": np.asarray(diameter_km, float)})
    if geo:
        return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.lon, df.lat), crs=MARS_GEOGRAPHIC)
    return df


def km(px, res):
    """Diameter in km of ``px`` pixels along latitude on a ``res`` degree grid."""
    return px * res * KM_PER_DEGREE


class _RaiseOnCompute:
    """A dask scheduler that fails the test if anything is computed."""

    def __call__(self, dsk, keys, **kwargs):
        raise AssertionError("render_targets computed something eagerly")


@pytest.fixture
def no_compute():
    with dask.config.set(scheduler=_RaiseOnCompute()):
        yield


@pytest.fixture
def random_catalog():
    """Overlapping craters of all sizes, some crossing the edges of the 4..14 x 0..10 mosaic."""
    rng = np.random.default_rng(42)
    n = 70
    lat = rng.uniform(-0.5, 10.5, n)
    lon = rng.uniform(3.5, 14.5, n)
    diam = np.exp(rng.uniform(np.log(0.5), np.log(150.0), n))
    # two exact ties in diameter that overlap, to exercise the tie-break order
    lat[:2], lon[:2], diam[:2] = [5.0, 5.2], [9.0, 9.1], [40.0, 40.0]
    # a crater nested in a bigger one's hole
    lat[2:4], lon[2:4], diam[2:4] = [3.0, 3.0], [6.0, 6.0], [8.0, 90.0]
    return make_catalog(lat, lon, diam)


def reference_render(mosaic, catalog, kind, inner_ratio=0.7, ring_width_px=2.0, threshold=8.0):
    """Brute force over the whole grid, straight from the documented rules (regional grids)."""
    grid = Grid.from_dataset(mosaic)
    ny, nx = grid.shape
    out = np.zeros((ny, nx), np.uint8)
    cat = catalog.iloc[np.argsort(-catalog["diameter_km"].to_numpy(), kind="stable")]
    cx, cy = grid.lonlat_to_pixel(cat["lon"].to_numpy(), cat["lat"].to_numpy())
    # a centre just west of the grid wraps to the far east: take the copy one period west
    period = 360.0 * grid.px_per_deg()[0]
    cx = np.where(cx > (nx + period) / 2, cx + (-1) * period, cx)
    a, b = grid.km_to_pixels(cat["diameter_km"].to_numpy() / 2, cat["lat"].to_numpy())
    rows = np.arange(ny, dtype=float)[:, None]
    cols = np.arange(nx, dtype=float)[None, :]
    half = ring_width_px / 2
    for x0, y0, aa, bb, d in zip(cx, cy, a, b, cat["diameter_km"], strict=True):
        if kind == "ring":
            ao, bo, ai, bi = aa + half, bb + half, aa - half, bb - half
        else:
            ao, bo, ai, bi = aa, bb, aa * inner_ratio, bb * inner_ratio
            if kind == "filled" or (kind == "hybrid" and d < threshold):
                ai = bi = 0.0
        out[((rows - y0) / bo) ** 2 + ((cols - x0) / ao) ** 2 <= 1] = 1
        rc, cc = int(np.floor(y0 + 0.5)), int(np.floor(x0 + 0.5))
        if 0 <= rc < ny and 0 <= cc < nx:
            out[rc, cc] = 1
        if min(ai, bi) >= 1.0:
            out[((rows - y0) / bi) ** 2 + ((cols - x0) / ai) ** 2 <= 1] = 0
    return out


def task_tables(target):
    """The crater table each task of a target's graph carries (None for an all-zero chunk)."""
    tables = {}
    for key, task in dict(target.data.__dask_graph__()).items():
        args = task[1:] if isinstance(task, tuple) else getattr(task, "args", ())
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        tables[key[1:]] = arrays[0] if arrays else None
    return tables


# --------------------------------------------------------------------------------------------
# chunking invariance and laziness


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_identical_for_any_chunking_and_matches_brute_force(kind, random_catalog):
    numpy_mosaic = make_mosaic(4.0, 10.0, 97, 101, 0.1)
    one_shot = render_targets(numpy_mosaic, random_catalog, kind).values
    assert one_shot.any() and not one_shot.all()
    np.testing.assert_array_equal(one_shot, reference_render(numpy_mosaic, random_catalog, kind))
    for chunks in [(7, 13), (32, 50), (97, 1), {"y": 10, "x": 33}]:
        chunked = render_targets(make_mosaic(4.0, 10.0, 97, 101, 0.1, chunks={"y": 20, "x": 20}),
                                 random_catalog, kind, chunks=chunks)
        np.testing.assert_array_equal(chunked.values, one_shot, err_msg=f"chunks={chunks}")


def test_result_follows_mosaic_chunks_grid_and_crs(random_catalog):
    mosaic = make_mosaic(4.0, 10.0, 97, 101, 0.1, chunks={"y": 25, "x": 40})
    target = render_targets(mosaic, random_catalog)
    assert isinstance(target.data, da.Array)
    assert target.name == "target" and target.dims == ("y", "x")
    assert target.chunks == mosaic["ir"].chunks
    np.testing.assert_array_equal(target["x"], mosaic["x"])
    np.testing.assert_array_equal(target["y"], mosaic["y"])
    assert target.rio.crs == mosaic.rio.crs
    assert target.rio.transform() == mosaic.rio.transform()
    assert target.attrs["kind"] == "filled" and target.attrs["n_craters"] > 0
    assert target.dtype == np.uint8 and set(np.unique(target.values)) == {0, 1}


def test_numpy_backed_mosaic_gives_one_lazy_chunk(random_catalog, no_compute):
    mosaic = make_mosaic(4.0, 10.0, 97, 101, 0.1)
    target = render_targets(mosaic, random_catalog, "outline")
    assert isinstance(target.data, da.Array)
    assert target.data.numblocks == (1, 1)
    assert target.rio.crs == mosaic.rio.crs


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_nothing_computes_at_call_time(kind, random_catalog, no_compute):
    mosaic = make_mosaic(4.0, 10.0, 97, 101, 0.1, chunks=16)
    target = render_targets(mosaic, random_catalog, kind, chunks=(20, 30))
    assert isinstance(target.data, da.Array)
    with pytest.raises(AssertionError, match="eagerly"):
        target.compute()  # the guard is live: computing *does* go through the scheduler


def test_each_task_carries_only_its_own_craters():
    # one small crater in the middle of each of 3 of the 16 chunks
    mosaic = make_mosaic(0.0, 4.0, 40, 40, 0.1, chunks=10)
    cat = make_catalog([3.5, 2.5, 0.5], [0.5, 2.5, 3.5], [km(3, 0.1)] * 3)
    tables = task_tables(render_targets(mosaic, cat))
    assert len(tables) == 16
    carrying = {k: len(t) for k, t in tables.items() if t is not None}
    assert carrying == {(0, 0): 1, (1, 2): 1, (3, 3): 1}
    # a crater across a chunk corner is sent to the 4 chunks it touches, and nowhere else
    corner = make_catalog([3.0], [1.0], [km(6, 0.1)])
    carrying = {k for k, t in task_tables(render_targets(mosaic, corner)).items() if t is not None}
    assert carrying == {(0, 0), (0, 1), (1, 0), (1, 1)}


# --------------------------------------------------------------------------------------------
# geometry


def test_ellipse_at_lat_60_is_twice_as_wide_as_tall():
    mosaic = make_mosaic(0.0, 62.0, 40, 80, 0.1)
    target = render_targets(mosaic, make_catalog([60.0], [4.0], [km(30, 0.1)])).values
    rows, cols = np.nonzero(target)
    height = rows.max() - rows.min() + 1
    width = cols.max() - cols.min() + 1
    assert height == pytest.approx(30, abs=1)
    assert width / height == pytest.approx(2.0, abs=0.08)


def test_equator_crater_is_round_and_centred():
    mosaic = make_mosaic(0.0, 2.0, 40, 40, 0.05)
    target = render_targets(mosaic, make_catalog([1.0], [1.0], [km(20, 0.05)])).values
    rows, cols = np.nonzero(target)
    assert rows.mean() == pytest.approx(19.5, abs=0.01) and cols.mean() == pytest.approx(19.5, abs=0.01)
    assert target.sum() == pytest.approx(np.pi * 10**2, rel=0.05)


def test_tiny_crater_marks_the_pixel_holding_its_centre():
    mosaic = make_mosaic(0.0, 1.0, 10, 10, 0.1)
    # centre at column 3.3, row 6.8 (pixel index coordinates): the pixel holding it is (7, 3)
    lon, lat = 0.05 + 3.3 * 0.1, 0.95 - 6.8 * 0.1
    for kind in TARGET_KINDS:
        target = render_targets(mosaic, make_catalog([lat], [lon], [0.01]), kind).values
        if kind == "ring":  # a ring always has width >= 1 px, so it is more than a dot
            assert target[7, 3] == 1 and 1 < target.sum() <= 9, target.sum()
        else:
            assert np.argwhere(target).tolist() == [[7, 3]], kind


@pytest.mark.parametrize("ratio", [0.5, 0.7])
def test_outline_inner_radius_is_inner_ratio_of_outer(ratio):
    mosaic = make_mosaic(0.0, 2.0, 81, 81, 0.025)
    r = 30.0
    target = render_targets(mosaic, make_catalog([1.0], [1.0], [km(2 * r, 0.025)]), "outline",
                            inner_ratio=ratio).values
    centre_row = target[40]
    on = np.flatnonzero(centre_row)
    hole = np.flatnonzero(centre_row[on.min(): on.max() + 1] == 0)
    outer_r = (on.max() - on.min() + 1) / 2
    inner_r = hole.size / 2
    assert outer_r == pytest.approx(r, abs=1)
    assert inner_r / outer_r == pytest.approx(ratio, abs=0.04)
    assert target[40, 40] == 0


@pytest.mark.parametrize("kind", ["outline", "ring"])
def test_crater_inside_a_bigger_craters_hole_stays_visible(kind):
    mosaic = make_mosaic(0.0, 2.0, 81, 81, 0.025)
    big, small = km(60, 0.025), km(10, 0.025)
    # the small crater is listed first; drawing is by diameter, so it still comes out on top
    both = render_targets(mosaic, make_catalog([1.0, 1.0], [1.0, 1.0], [small, big]), kind).values
    alone = render_targets(mosaic, make_catalog([1.0], [1.0], [small]), kind).values
    big_only = render_targets(mosaic, make_catalog([1.0], [1.0], [big]), kind).values
    assert alone.sum() > 0
    np.testing.assert_array_equal(both, alone | big_only)
    assert not (alone & big_only).any()  # the small one sits in the big one's hole


def test_outline_overlaps_paint_the_smaller_crater_last():
    mosaic = make_mosaic(0.0, 2.0, 81, 81, 0.025)
    big, small = km(50, 0.025), km(30, 0.025)
    target = render_targets(mosaic, make_catalog([1.0, 1.0], [0.7, 1.3], [small, big]), "outline").values
    alone = render_targets(mosaic, make_catalog([1.0], [0.7], [small]), "outline").values
    # wherever the small crater's disk lies, it wins (its rim shows, its hole wipes the big rim)
    small_disk = render_targets(mosaic, make_catalog([1.0], [0.7], [small]), "filled").values.astype(bool)
    np.testing.assert_array_equal(target[small_disk], alone[small_disk])


@pytest.mark.parametrize("width", [2.0, 4.0])
def test_ring_has_the_requested_width_centred_on_the_rim(width):
    mosaic = make_mosaic(0.0, 2.0, 81, 81, 0.025)
    r = 25.0
    target = render_targets(mosaic, make_catalog([1.0], [1.0], [km(2 * r, 0.025)]), "ring",
                            ring_width_px=width).values
    # area of an annulus of width w around radius r is 2 pi r w
    assert target.sum() / (2 * np.pi * r) == pytest.approx(width, rel=0.06)
    rows, cols = np.nonzero(target)
    dist = np.hypot(rows - 39.5, cols - 39.5)  # lon/lat 1.0 is pixel (39.5, 39.5)
    assert dist.min() >= r - width / 2 and dist.max() <= r + width / 2


def test_hybrid_switches_from_disks_to_outlines_at_the_threshold():
    mosaic = make_mosaic(0.0, 2.0, 80, 160, 0.025)
    cat = make_catalog([1.0, 1.0], [1.0, 3.0], [5.0, 12.0])  # about 3.4 and 8.1 px radius
    rows, (c_small, c_big) = 39, (39, 119)
    target = render_targets(mosaic, cat, "hybrid")
    assert target.attrs["hybrid_threshold_km"] == DEFAULT_HYBRID_THRESHOLD_KM
    values = target.values
    assert values[rows, c_small] == 1 and values[rows, c_big] == 0  # disk, then outline
    filled = render_targets(mosaic, cat, "filled").values
    outline = render_targets(mosaic, cat, "outline").values
    np.testing.assert_array_equal(values[:, :80], filled[:, :80])
    np.testing.assert_array_equal(values[:, 80:], outline[:, 80:])
    both_filled = render_targets(mosaic, cat, "hybrid", hybrid_threshold_km=20).values
    np.testing.assert_array_equal(both_filled, filled)


def test_diameter_range_selects_craters():
    mosaic = make_mosaic(0.0, 2.0, 80, 160, 0.025)
    cat = make_catalog([1.0, 1.0], [1.0, 3.0], [5.0, 12.0])
    only_big = render_targets(mosaic, cat, diameter_range=(8, None))
    assert only_big.attrs["n_craters"] == 1
    np.testing.assert_array_equal(only_big.values,
                                  render_targets(mosaic, cat.iloc[[1]]).values)
    assert not render_targets(mosaic, cat, diameter_range=(20, 30)).values.any()


def test_target_round_trips_through_zarr_with_its_crs(tmp_path):
    mosaic = make_mosaic(0.0, 2.0, 80, 160, 0.025, chunks=32)
    cat = make_catalog([1.0, 1.0], [1.0, 3.0], [5.0, 12.0])
    target = render_targets(mosaic, cat, "hybrid", diameter_range=(1, None))
    assert target.attrs["diameter_min_km"] == 1 and "diameter_max_km" not in target.attrs
    target.to_dataset().to_zarr(tmp_path / "target.zarr", consolidated=False)
    back = xr.open_zarr(tmp_path / "target.zarr", decode_coords="all", consolidated=False)["target"]
    np.testing.assert_array_equal(back.values, target.values)
    assert back.rio.crs == target.rio.crs and back.attrs["kind"] == "hybrid"


@pytest.mark.parametrize("geo", [False, True])
def test_empty_catalog_gives_zeros(geo):
    mosaic = make_mosaic(0.0, 2.0, 30, 50, 0.1, chunks=16)
    for kind in TARGET_KINDS:
        target = render_targets(mosaic, make_catalog([], [], [], geo=geo), kind)
        assert target.shape == (30, 50) and target.attrs["n_craters"] == 0
        assert not target.values.any()


def test_craters_off_the_mosaic_are_not_drawn():
    mosaic = make_mosaic(0.0, 2.0, 20, 20, 0.1)
    target = render_targets(mosaic, make_catalog([30.0, 1.0], [1.0, 100.0], [5.0, 5.0]))
    assert target.attrs["n_craters"] == 0 and not target.values.any()


@pytest.mark.parametrize("dtype", ["bool", "float32", "uint16"])
def test_dtype(dtype):
    mosaic = make_mosaic(0.0, 2.0, 20, 20, 0.1)
    cat = make_catalog([1.0], [1.0], [km(8, 0.1)])
    target = render_targets(mosaic, cat, dtype=dtype)
    assert target.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(target.values.astype(np.uint8), render_targets(mosaic, cat).values)


# --------------------------------------------------------------------------------------------
# longitudes: conventions, meridian-crossing and global mosaics


def test_meridian_crossing_mosaic_draws_a_crater_at_lon_minus_179():
    mosaic = make_mosaic(170.0, 1.0, 20, 200, 0.1, chunks=(20, 64))  # x runs 170..190
    cat = make_catalog([0.5], [-179.0], [km(6, 0.1)])
    target = render_targets(mosaic, cat, "filled").values
    rows, cols = np.nonzero(target)
    assert cols.mean() == pytest.approx((181.0 - 170.0) / 0.1 - 0.5, abs=0.01)
    assert rows.mean() == pytest.approx(4.5, abs=0.01)
    for lon in (181.0, 541.0 - 360.0):
        same = render_targets(mosaic, make_catalog([0.5], [lon], [km(6, 0.1)]), "filled").values
        np.testing.assert_array_equal(same, target)


def test_lon_0_360_catalog_renders_the_same_as_minus_180_180(random_catalog):
    mosaic = make_mosaic(-6.0, 10.0, 97, 101, 0.1, chunks=32)  # x runs -6..4.1: crosses lon 0
    cat = random_catalog.copy()
    cat["lon"] = cat["lon"] - 10.0  # -6.5 .. 4.5
    cat360 = cat.assign(lon=cat["lon"] % 360.0)
    assert (cat360["lon"] > 180).any()
    for kind in ("filled", "outline"):
        np.testing.assert_array_equal(render_targets(mosaic, cat, kind).values,
                                      render_targets(mosaic, cat360, kind).values)


def test_crater_centred_west_of_the_mosaic_still_draws_its_overlap():
    # mosaic 30..40 degrees east; a crater centred at 29.8 (or 389.8) reaches into it
    mosaic = make_mosaic(30.0, 1.0, 20, 100, 0.1)
    for lon in (29.8, 389.8, -330.2):
        target = render_targets(mosaic, make_catalog([0.5], [lon], [km(10, 0.1)])).values
        assert target[:, 0].any() and not target[:, 4:].any(), lon


def test_global_mosaic_wraps_craters_across_the_x_edge():
    # 1 px = 0.5 degrees, all values exact in binary, so a wrapped copy is exactly a shifted one
    mosaic = make_mosaic(-180.0, 10.0, 40, 720, 0.5, chunks=(40, 100))
    diam = km(12, 0.5)
    edge = render_targets(mosaic, make_catalog([0.0], [179.75], [diam]), "outline").values
    middle = render_targets(mosaic, make_catalog([0.0], [-0.25], [diam]), "outline").values
    assert edge[:, 0].any() and edge[:, -1].any()
    np.testing.assert_array_equal(edge, np.roll(middle, 360, axis=1))
    # and the wrapped result does not depend on the chunking
    one = render_targets(mosaic, make_catalog([0.0], [179.75], [diam]), "outline", chunks=-1).values
    np.testing.assert_array_equal(one, edge)


def test_polar_crater_wider_than_the_world_covers_whole_rows():
    mosaic = make_mosaic(0.0, 90.0, 20, 360, 1.0, chunks=(7, 100))  # global, 1 degree pixels
    cat = make_catalog([89.5], [45.0], [600.0])  # 5 px tall, about 1160 px wide
    values = render_targets(mosaic, cat).values
    assert values[0].all()  # the row at the pole is covered all round
    assert 0 < values[5].sum() < 360 and values[5, 44]  # lower rows: an arc centred on lon 45
    assert not values[7:].any()
    np.testing.assert_array_equal(values, render_targets(mosaic, cat, chunks=-1).values)


def test_equirectangular_projected_mosaic():
    res_m = 0.1 * KM_PER_DEGREE * 1000.0  # 0.1 degree pixels in metres
    mosaic = make_mosaic(0.0, 2.0 * KM_PER_DEGREE * 1000.0, 40, 40, res_m, crs=MARS_EQUIRECTANGULAR)
    target = render_targets(mosaic, make_catalog([1.0], [1.0], [km(10, 0.1)])).values
    rows, cols = np.nonzero(target)
    assert rows.mean() == pytest.approx(9.5, abs=0.05) and cols.mean() == pytest.approx(9.5, abs=0.05)
    assert rows.max() - rows.min() + 1 == 10


def test_accepts_a_dataarray_and_a_geodataframe(random_catalog):
    mosaic = make_mosaic(4.0, 10.0, 97, 101, 0.1)
    geo = make_catalog(random_catalog.lat, random_catalog.lon, random_catalog.diameter_km, geo=True)
    np.testing.assert_array_equal(render_targets(mosaic["ir"], geo, "ring").values,
                                  render_targets(mosaic, random_catalog, "ring").values)


def test_with_the_package_mosaic_and_catalog_constructors(random_catalog):
    mosaic_mod = pytest.importorskip("marscraters.mosaic")
    catalog_mod = pytest.importorskip("marscraters.catalog")
    mosaic = mosaic_mod.mosaic_from_array(da.zeros((97, 101), chunks=30), bounds=(4.0, 0.3, 14.1, 10.0))
    cat = catalog_mod.make_catalog(random_catalog.lat, random_catalog.lon, random_catalog.diameter_km)
    target = render_targets(mosaic, cat, "outline")
    assert target.chunks == mosaic["ir"].chunks
    expected = render_targets(make_mosaic(4.0, 10.0, 97, 101, 0.1), random_catalog, "outline")
    np.testing.assert_array_equal(target.values, expected.values)


# --------------------------------------------------------------------------------------------
# errors


GOOD = make_catalog([1.0], [1.0], [5.0])


@pytest.mark.parametrize(
    ("error", "kwargs", "match"),
    [
        (InvalidArgumentError, {"kind": "blob"}, "kind='blob'"),
        (InvalidArgumentError, {"kind": "outline", "inner_ratio": 0.0}, "inner_ratio"),
        (InvalidArgumentError, {"kind": "outline", "inner_ratio": 1.0}, "inner_ratio"),
        (InvalidArgumentError, {"inner_ratio": "wide"}, "must be numbers"),
        (InvalidArgumentError, {"kind": "ring", "ring_width_px": 0}, "ring_width_px"),
        (InvalidArgumentError, {"kind": "hybrid", "hybrid_threshold_km": -1}, "hybrid_threshold_km"),
        (InvalidArgumentError, {"diameter_range": (5, 1)}, "diameter_range"),
        (InvalidArgumentError, {"diameter_range": 5}, "diameter_range"),
        (InvalidArgumentError, {"dtype": "U4"}, "dtype"),
        (InvalidArgumentError, {"chunks": {"z": 3}}, "unknown dimension"),
        (InvalidArgumentError, {"chunks": (3, 4, 5)}, "chunks"),
        (CatalogError, {"catalog": GOOD.drop(columns="diameter_km")}, "diameter_km"),
        (CatalogError, {"catalog": GOOD.rename(columns={"lat": "LAT"})}, r"\['lat'\]"),
        (CatalogError, {"catalog": {"lat": [1], "lon": [1], "diameter_km": [1]}}, "DataFrame"),
        (CatalogValidationError, {"catalog": GOOD.assign(lat=np.nan)}, "missing"),
        (CatalogValidationError, {"catalog": GOOD.assign(diameter_km=0.0)}, "diameter_km <= 0"),
        (CatalogValidationError, {"catalog": GOOD.assign(lat=95.0)}, r"\|lat\| > 90"),
        (CatalogValidationError, {"catalog": GOOD.assign(lon="east")}, "not numeric"),
    ],
)
def test_bad_arguments_raise_clear_errors(error, kwargs, match):
    mosaic = make_mosaic(0.0, 2.0, 20, 20, 0.1)
    catalog = kwargs.pop("catalog", GOOD)
    with pytest.raises(error, match=match) as info:
        render_targets(mosaic, catalog, **kwargs)
    assert isinstance(info.value, MarsCratersError)


def test_bad_mosaics_raise_clear_errors():
    mosaic = make_mosaic(0.0, 2.0, 20, 20, 0.1)
    with pytest.raises(MissingCRSError):
        render_targets(mosaic.drop_vars("spatial_ref").assign_coords(), GOOD)
    with pytest.raises(MosaicError, match="xarray"):
        render_targets(np.zeros((4, 4)), GOOD)
    with pytest.raises(MosaicError, match="not equirectangular"):
        render_targets(make_mosaic(0.0, 0.0, 20, 20, 100.0, crs="+proj=stere +lat_0=90 +R=3396190"), GOOD)


# --------------------------------------------------------------------------------------------
# real data: the Robbins tile's own pixel columns agree with our geometry


def _shared_data() -> Path:
    env = os.environ.get("MARSCRATERS_SHARED_DATA")
    return Path(env) if env else Path(__file__).parents[1] / ".." / "shared" / "data"


@pytest.mark.realdata
def test_robbins_tile_pixel_centres_fall_inside_their_rendered_disks():
    path = _shared_data() / "robbins2012-equatorial-tiles" / "CSV_Tile_01_-30_0_30_60_px.csv"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    raw = pd.read_csv(path)
    cat = make_catalog(raw.LATITUDE_CIRCLE_IMAGE, raw.LONGITUDE_CIRCLE_IMAGE, raw.DIAM_CIRCLE_IMAGE)
    # a 512 x 512 window of the 7680 x 7680 tile (lat -30..0, lon 30..60, 256 px/deg)
    row0, col0, n = 2048, 3072, 512
    res = 1.0 / 256
    mosaic = make_mosaic(30.0 + col0 * res, 0.0 - row0 * res, n, n, res, chunks=200)
    target = render_targets(mosaic, cat).values
    inside = raw[(raw.LAT_Y_PX >= row0) & (raw.LAT_Y_PX < row0 + n)
                 & (raw.LONG_X_PX >= col0) & (raw.LONG_X_PX < col0 + n)]
    assert len(inside) > 20
    assert target[inside.LAT_Y_PX - row0, inside.LONG_X_PX - col0].all()


# ------------------------------------------------------------------------------------------
# draw_targets: the pixel-space twin used for image chips


def _brute_force_pixels(shape, craters, kind, inner_ratio=0.7):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    out = np.zeros(shape, np.uint8)
    for _, c in craters.sort_values("diameter_px", ascending=False, kind="stable").iterrows():
        r = c.diameter_px / 2
        q = ((xx - c.x) / r) ** 2 + ((yy - c.y) / r) ** 2
        out[q <= 1] = 1
        rc, cc = int(np.floor(c.y + 0.5)), int(np.floor(c.x + 0.5))
        if 0 <= rc < shape[0] and 0 <= cc < shape[1]:
            out[rc, cc] = 1
        if kind == "outline" and r * inner_ratio >= 1:
            out[q <= inner_ratio**2] = 0
    return out


@pytest.mark.parametrize("kind", ["filled", "outline"])
def test_draw_targets_matches_the_rule(kind):
    from marscraters.targets import draw_targets

    craters = pd.DataFrame({"x": [10.0, 40.3, 41.0, 70.0, -3.0], "y": [12.0, 40.7, 38.0, 5.0, 50.0],
                            "diameter_px": [9.0, 50.0, 8.0, 30.0, 12.0]})
    got = draw_targets((80, 90), craters, kind)
    np.testing.assert_array_equal(got, _brute_force_pixels((80, 90), craters, kind))
    # the small crater inside the big one's hole survives in outline targets
    assert got[38, 44] == 1 and got[30, 41] == (1 if kind == "filled" else 0)


def test_draw_targets_bad_input():
    from marscraters.targets import draw_targets

    with pytest.raises(CatalogError):
        draw_targets((8, 8), pd.DataFrame({"x": [1.0]}))
    with pytest.raises(CatalogValidationError):
        draw_targets((8, 8), pd.DataFrame({"x": [1.0], "y": [1.0], "diameter_px": [0.0]}))
    assert draw_targets((8, 8), pd.DataFrame({"x": [], "y": [], "diameter_px": []})).sum() == 0


def test_crater_weights_mark_small_craters_only():
    from marscraters.targets import crater_weights

    craters = pd.DataFrame({"x": [20.0, 60.0, 100.0, 60.0], "y": [20.0, 60.0, 100.0, 64.0],
                            "diameter_px": [16.0, 80.0, 8.0, 32.0]})
    w = crater_weights((128, 128), craters, reference_diameter_px=64)
    assert w.dtype == np.float32 and w.min() == 1.0
    assert w[20, 20] == pytest.approx(4.0)       # 64 / 16
    assert w[20, 20 + 9] == pytest.approx(4.0)   # inside 1.25 radii (10 px)
    assert w[20, 20 + 11] == 1.0                 # outside
    assert w[100, 100] == 1.0                    # 8 px: below the labels' completeness, not weighted
    assert w[64, 60] == pytest.approx(2.0)       # the 32-px crater inside the 80-px one (which keeps 1)
    assert w[60, 60 + 30] == 1.0                 # the big crater's rim: at or above the reference
    # a crater cut by the edge is weighted where it is on the image
    edge = crater_weights((32, 32), pd.DataFrame({"x": [-3.0], "y": [5.0], "diameter_px": [20.0]}),
                          reference_diameter_px=40)
    assert edge[5, 0] == pytest.approx(2.0)
    with pytest.raises(InvalidArgumentError):
        crater_weights((8, 8), craters, reference_diameter_px=0)
    with pytest.raises(CatalogError, match="diameter_px"):
        crater_weights((8, 8), pd.DataFrame({"x": [1.0], "y": [1.0]}), reference_diameter_px=10)
