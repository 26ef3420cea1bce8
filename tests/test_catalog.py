"""Catalogs: the constructor, every reader, validation, filtering and the writers."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine

from marscraters.catalog import (
    CATALOG_COLUMNS,
    FORMATS,
    PAPER_DIAMETER_RANGE_KM,
    crater_rims,
    empty_catalog,
    filter_catalog,
    make_catalog,
    read_catalog,
    validate_catalog,
    write_catalog,
    write_craterstats,
    write_csv,
)
from marscraters.crs import MARS_EQUIRECTANGULAR, MARS_GEOGRAPHIC, MARS_RADIUS_M, Grid
from marscraters.errors import (
    CatalogError,
    CatalogFormatError,
    CatalogNotFoundError,
    CatalogValidationError,
    InvalidArgumentError,
    MarsCratersError,
    NotMarsCRSError,
    OutputExistsError,
)

BOM = "\ufeff"

# --------------------------------------------------------------------------------------------
# tiny files of every format
# --------------------------------------------------------------------------------------------

ROBBINS2012_TSV = (
    "CRATER_ID\tLATITUDE_CIRCLE_IMAGE\tLONGITUDE_CIRCLE_IMAGE\tDIAM_CIRCLE_IMAGE\tDEPTH_RIMFLOOR_TOPOG\tMORPHOLOGY_EJECTA_1\n"
    "01-000000\t84.367\t108.746\t82.10\t0.22\tRd/SLEPS\n"
    "01-000001\t72.76\t164.464\t82.02\t1.97\t\n"
    "19-000002\t-5.4\t-179.9\t2.5\t0.1\tSLERS\n"
)
ROBBINS2012_TILE = (
    "LATITUDE_CIRCLE_IMAGE,LONGITUDE_CIRCLE_IMAGE,DIAM_CIRCLE_IMAGE,LAT_Y_PX,LONG_X_PX,RAD_PX\n"
    "-9.106,38.058,185.32,2331,2063,401\n"
    "-23.65,30.35,171.07,6054,90,370\n"
)
ROBBINS2020_CSV = (
    BOM + "CRATER_ID,LAT_CIRC_IMG,LON_CIRC_IMG,LAT_ELLI_IMG,LON_ELLI_IMG,DIAM_CIRC_IMG,CONF,DEG_RIM\n"
    "07-0-002189,-25.79349897,332.9794298,-25.79331691,332.9795135,10.87529389,,2\n"
    "04-1-008694,-61.14203907,264.4337634,-61.14036691,264.4159247,25.92227452,,2\n"
    "15-1-023094,-21.768114,124.35583,-21.76816,124.35603,28.122896,,1\n"
)
DIAM_FILE = """# Empty sample .diam file for Craterstats
#
# area, km^2
area = 100.
#
crater = {diameter, fraction, lon, lat
1.1 1. 10.5 -3.25
2.3 1. 11.0 -3.5
3.0 0.7 350.0 2.0
}
"""
DIAM_NO_POSITIONS = """# area, km^2
area = 100.
crater = {diameter
1.1
2.3
3.0
1.7
}
"""
SCC_FILE = """# Spatial crater count
#
# Date of measurement = 09.02.2010
#
# Ellipsoid axes:
a_axis_radius = 3396.19 <km>
b_axis_radius = 3396.19 <km>
c_axis_radius = 3396.19 <km>
coordinate_system_name = unknown
#
# area_shapes:
unit_boundary = {vertex,sub_area,tag,lon,lat
#
# Area_name1 = no name
# Area_size1 = 3036.61128229 <km^2>
#
1\t1\text\t-133.099909152103\t-32.6698010128139
2\t1\text\t-133.065602388742\t-32.7209946004796
3\t1\text\t-133.005110548797\t-32.7096426685306
4\t1\text\t-133.099909152103\t-32.6698010128139
}
#
Total_area = 3036.61128229 <km^2>
#
# crater_diameters:
crater = {diam,lon,lat
0.510912944794\t-133.428255793\t-32.7981278707
0.16631095314\t-133.440176812\t-32.841793147 ; a trailing comment
0.100063980103\t-133.41511913\t-32.8345378834
}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# (file name, content, format, n rows, first lat, first lon (-180..180), first diameter, first id)
FORMAT_CASES = [
    ("RobbinsCraters_20121016.tsv", ROBBINS2012_TSV, "robbins2012", 3, 84.367, 108.746, 82.10, "01-000000"),
    (
        "CSV_Tile_01_-30_0_30_60_px.csv",
        ROBBINS2012_TILE,
        "robbins2012",
        2,
        -9.106,
        38.058,
        185.32,
        "CSV_Tile_01_-30_0_30_60_px:1",
    ),
    ("mcd2020.csv", ROBBINS2020_CSV, "robbins2020", 3, -25.79349897, 332.9794298 - 360, 10.87529389, "07-0-002189"),
    (
        "plain.csv",
        "latitude,longitude,diameter,notes\n1.5,200.0,3.0,a\n-2,10,4,b\n",
        "csv",
        2,
        1.5,
        -160.0,
        3.0,
        "plain:1",
    ),
    ("plain2.csv", "ID,Lat,Long,D_km\nx7,1.5,-20.0,3.0\n", "csv", 1, 1.5, -20.0, 3.0, "x7"),
    ("plain3.txt", "lat;lon;diam\n0.5;0.25;7\n", "csv", 1, 0.5, 0.25, 7.0, "plain3:1"),
    ("count.diam", DIAM_FILE, "diam", 3, -3.25, 10.5, 1.1, "count:1"),
    ("Pickering.scc", SCC_FILE, "scc", 3, -32.7981278707, -133.428255793, 0.510912944794, "Pickering:1"),
]


@pytest.mark.parametrize("name, content, fmt, n, lat0, lon0, d0, id0", FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
def test_read_every_text_format(tmp_path, name, content, fmt, n, lat0, lon0, d0, id0):
    path = _write(tmp_path / name, content)
    cat = read_catalog(path)
    assert isinstance(cat, gpd.GeoDataFrame)
    assert list(cat.columns[:4]) == list(CATALOG_COLUMNS)
    assert cat.crs.equals(MARS_GEOGRAPHIC)
    assert len(cat) == n
    assert cat.attrs["format"] == fmt and cat.attrs["source"] == str(path)
    assert cat["lat"].iloc[0] == pytest.approx(lat0)
    assert cat["lon"].iloc[0] == pytest.approx(lon0)
    assert cat["diameter_km"].iloc[0] == pytest.approx(d0)
    assert cat["crater_id"].iloc[0] == id0
    assert cat["lon"].between(-180, 180).all()
    # geometry is Point(lon, lat)
    np.testing.assert_allclose(cat.geometry.x, cat["lon"])
    np.testing.assert_allclose(cat.geometry.y, cat["lat"])
    # explicit format gives the same answer as detection
    pd.testing.assert_frame_equal(pd.DataFrame(read_catalog(path, format=fmt)), pd.DataFrame(cat))


def test_source_columns_are_kept(tmp_path):
    r12 = read_catalog(_write(tmp_path / "r.tsv", ROBBINS2012_TSV))
    assert {"DEPTH_RIMFLOOR_TOPOG", "MORPHOLOGY_EJECTA_1"} <= set(r12.columns)
    assert "LATITUDE_CIRCLE_IMAGE" not in r12.columns  # renamed to lat, not duplicated
    assert r12["MORPHOLOGY_EJECTA_1"].iloc[0] == "Rd/SLEPS"
    r20 = read_catalog(_write(tmp_path / "r20.csv", ROBBINS2020_CSV))
    # other longitude columns keep the source's 0..360 convention (documented)
    assert r20["LON_ELLI_IMG"].iloc[0] == pytest.approx(332.9795135)
    assert r20["DEG_RIM"].tolist() == [2, 2, 1]
    tile = read_catalog(_write(tmp_path / "CSV_Tile_01_-30_0_30_60_px.csv", ROBBINS2012_TILE))
    assert tile["LONG_X_PX"].tolist() == [2063, 90]


def test_craterstats_area_and_extras(tmp_path):
    d = read_catalog(_write(tmp_path / "c.diam", DIAM_FILE))
    assert d.attrs["area_km2"] == 100.0
    assert d["fraction"].tolist() == [1.0, 1.0, 0.7]
    assert d["lon"].iloc[2] == -10.0
    s = read_catalog(_write(tmp_path / "c.scc", SCC_FILE))
    assert s.attrs["area_km2"] == pytest.approx(3036.61128229)


def test_diam_without_positions(tmp_path):
    cat = read_catalog(_write(tmp_path / "sample.diam", DIAM_NO_POSITIONS))
    assert cat["diameter_km"].tolist() == [1.1, 2.3, 3.0, 1.7]
    assert cat["lat"].isna().all() and cat["lon"].isna().all()
    assert cat.geometry.isna().all()
    assert cat.attrs["area_km2"] == 100.0


@pytest.mark.parametrize(
    "content",
    ["lat,lon,diameter_km\n", "CRATER_ID\tLATITUDE_CIRCLE_IMAGE\tLONGITUDE_CIRCLE_IMAGE\tDIAM_CIRCLE_IMAGE\n"],
)
def test_empty_catalog_has_the_schema(tmp_path, content):
    cat = read_catalog(_write(tmp_path / "empty.csv", content))
    assert len(cat) == 0
    assert list(cat.columns[:4]) == list(CATALOG_COLUMNS)
    assert cat.crs.equals(MARS_GEOGRAPHIC)
    assert cat["lat"].dtype == float
    empty = empty_catalog({"source": "nothing"})
    assert len(empty) == 0 and empty.attrs == {"source": "nothing"} and empty.crs.equals(MARS_GEOGRAPHIC)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------

READ_ERRORS = [
    # (error type, file name, content, text the message must contain)
    (CatalogFormatError, "unknown.csv", "a,b,c\n1,2,3\n", "Supported formats"),
    # detect's table of craters in an image's pixels: no renaming makes it a catalog; say what dates it
    (CatalogFormatError, "detect.csv", "x,y,diameter_px,diameter_m,score\n1,2,20,2000,0.9\n",
     "what `marscraters detect` writes"),
    (CatalogFormatError, "empty.csv", "", "empty"),
    (CatalogFormatError, "blob.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "Supported formats"),
    (CatalogFormatError, "ragged.csv", "lat,lon,diameter_km\n1,2,3\n1,2,3,4,5\n", "ragged.csv"),
    (CatalogFormatError, "notable.diam", "area = 10\n", "no crater table"),
    (CatalogFormatError, "fields.diam", "area = 10\ncrater = {diameter, fraction\n1.0 1\n2.0\n}\n", "line 4"),
    (CatalogFormatError, "open.diam", "area = 10\ncrater = {diameter\n1.0\n", "not closed"),
    (CatalogFormatError, "noarea.scc", "crater = {diam,lon,lat\n1 2 3\n}\n", "no count area"),
    (CatalogFormatError, "junk.scc", "Total_area = 5\nthis is not craterstats\n", "line 2"),
    (CatalogFormatError, "gpkg.gpkg", "not a database", "GeoPackage"),
    (CatalogValidationError, "neg.csv", "lat,lon,diameter_km\n1,2,3\n1,2,-3\n1,2,0\n", "row 2: diameter_km=-3"),
    (CatalogValidationError, "lat.csv", "lat,lon,diameter_km\n95,2,3\n", "row 1: lat=95"),
    (CatalogValidationError, "lon.csv", "lat,lon,diameter_km\n1,2,3\n1,361,3\n", "row 2: lon=361"),
    (CatalogValidationError, "nan.csv", "lat,lon,diameter_km\n1,2,3\n1,,3\n", "row 2: lon=nan (missing"),
    (
        CatalogValidationError,
        "text.csv",
        "lat,lon,diameter_km\n1,2,big\n",
        "row 1: diameter_km=nan (missing or not a number)",
    ),
    (
        CatalogValidationError,
        "r12.tsv",
        "LATITUDE_CIRCLE_IMAGE\tLONGITUDE_CIRCLE_IMAGE\tDIAM_CIRCLE_IMAGE\n1\t200\t3\n",
        "row 1: lon=200 (must lie in -180..180)",
    ),
    (
        CatalogValidationError,
        "r20.csv",
        "CRATER_ID,LAT_CIRC_IMG,LON_CIRC_IMG,DIAM_CIRC_IMG\na,1,-10,3\n",
        "row 1: lon=-10 (must lie in 0..360)",
    ),
    (
        CatalogValidationError,
        "id.csv",
        "CRATER_ID,LAT_CIRC_IMG,LON_CIRC_IMG,DIAM_CIRC_IMG\n,1,10,3\n",
        "row 1: crater_id missing",
    ),
    (CatalogValidationError, "bad.diam", "area = 10\ncrater = {diameter, lon, lat\n1.0 5 5\n-2 5 5\n}\n", "row 2"),
]


@pytest.mark.parametrize("err_type, name, content, fragment", READ_ERRORS, ids=[c[1] for c in READ_ERRORS])
def test_read_errors_name_the_file_and_the_fix(tmp_path, err_type, name, content, fragment):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        _write(path, content)
    with pytest.raises(err_type) as info:
        read_catalog(path)
    msg = str(info.value)
    assert name in msg
    assert fragment in msg
    assert isinstance(info.value, MarsCratersError)


def test_validation_lists_at_most_ten_rows(tmp_path):
    rows = "".join(f"1,2,{-i}\n" for i in range(1, 26))
    with pytest.raises(CatalogValidationError) as info:
        read_catalog(_write(tmp_path / "many.csv", "lat,lon,diameter_km\n1,2,3\n" + rows))
    msg = str(info.value)
    assert "25 of 26 rows are invalid" in msg
    assert "row 11:" in msg and "row 12:" not in msg  # data rows 2..11 shown
    assert "and 15 more" in msg
    assert "errors='drop'" in msg


def test_drop_warns_with_the_count(tmp_path):
    path = _write(
        tmp_path / "mixed.csv", "crater_id,lat,lon,diameter_km\na,1,2,3\nb,95,2,3\nc,1,2,-1\nd,1,2,4\ne,1,,4\n"
    )
    with pytest.warns(UserWarning, match=r"mixed\.csv: dropped 3 of 5 invalid rows"):
        cat = read_catalog(path, errors="drop")
    assert cat["crater_id"].tolist() == ["a", "d"]
    assert list(cat.index) == [0, 1]
    # a valid file does not warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_catalog(_write(tmp_path / "ok.csv", "lat,lon,diameter_km\n1,2,3\n"), errors="drop")


def test_ids_of_files_without_ids_survive_dropping(tmp_path):
    path = _write(tmp_path / "t.csv", "lat,lon,diameter_km\n1,2,3\n1,2,-3\n1,2,4\n")
    with pytest.warns(UserWarning):
        cat = read_catalog(path, errors="drop")
    assert cat["crater_id"].tolist() == ["t:1", "t:3"]


@pytest.mark.parametrize(
    "err_type, kwargs",
    [
        (CatalogNotFoundError, {"path": "does/not/exist.csv"}),
        (FileNotFoundError, {"path": "does/not/exist.csv"}),
        (CatalogFormatError, {"path": "HERE/x.csv", "format": "shapefile"}),
        (CatalogFormatError, {"path": "HERE/r12.tsv", "format": "csv"}),
        (CatalogFormatError, {"path": "HERE/r12.tsv", "format": "robbins2020"}),
        (InvalidArgumentError, {"path": "HERE/x.csv", "errors": "ignore"}),
        (CatalogFormatError, {"path": "HERE"}),
    ],
)
def test_read_argument_errors(tmp_path, err_type, kwargs):
    _write(tmp_path / "x.csv", "lat,lon,diameter_km\n1,2,3\n")
    _write(tmp_path / "r12.tsv", ROBBINS2012_TSV)
    kwargs = dict(kwargs)
    path = kwargs.pop("path").replace("HERE", str(tmp_path))
    with pytest.raises(err_type):
        read_catalog(path, **kwargs)


def test_format_error_lists_formats_and_columns(tmp_path):
    with pytest.raises(CatalogFormatError) as info:
        read_catalog(_write(tmp_path / "odd.csv", "x_km,y_km,size\n1,2,3\n"))
    msg = str(info.value)
    assert "x_km, y_km, size" in msg
    for name in FORMATS:
        assert repr(name) in msg


def test_validate_catalog_directly():
    df = pd.DataFrame({"lat": [0.0, 91.0, 1.0], "lon": [0.0, 1.0, -181.0], "diameter_km": [1.0, 2.0, 3.0]})
    df.attrs["source"] = "mine"
    with pytest.raises(CatalogValidationError, match=r"^mine: 2 of 3 rows"):
        validate_catalog(df)
    with pytest.warns(UserWarning, match="dropped 2 of 3"):
        out = validate_catalog(df, errors="drop")
    assert out["lat"].tolist() == [0.0] and out.attrs["source"] == "mine"
    assert validate_catalog(df.iloc[:1]) is not None
    with pytest.raises(CatalogError, match="lacks the column"):
        validate_catalog(df.drop(columns="lat"))


# --------------------------------------------------------------------------------------------
# make_catalog
# --------------------------------------------------------------------------------------------


def test_make_catalog_schema_and_conventions():
    cat = make_catalog(
        np.array([-4.5, 18.4]),
        [137.4, 350.0],
        [154.0, 3.2],
        extra=pd.DataFrame({"score": [0.9, 0.7]}, index=[10, 11]),
        attrs={"source": "test"},
    )
    assert list(cat.columns) == ["crater_id", "lat", "lon", "diameter_km", "score", "geometry"]
    assert cat["crater_id"].tolist() == ["1", "2"]
    assert cat["lon"].tolist() == [137.4, -10.0]
    assert cat["score"].tolist() == [0.9, 0.7]  # extras align by position, not index
    assert cat.crs.equals(MARS_GEOGRAPHIC)
    assert cat.geometry.iloc[1].coords[0] == (-10.0, 18.4)
    assert cat.attrs == {"source": "test"}
    ids = make_catalog([0], [0], [1], crater_id=[42])["crater_id"]
    assert ids.tolist() == ["42"]


@pytest.mark.parametrize(
    "err_type, kwargs",
    [
        (InvalidArgumentError, {"lat": [1, 2], "lon": [1], "diameter_km": [1, 2]}),
        (InvalidArgumentError, {"lat": [1], "lon": [1], "diameter_km": [1], "crater_id": ["a", "b"]}),
        (InvalidArgumentError, {"lat": [1], "lon": [1], "diameter_km": [1], "extra": {"lat": [3]}}),
        (InvalidArgumentError, {"lat": [1], "lon": [1], "diameter_km": [1], "extra": {"s": [3, 4]}}),
        (InvalidArgumentError, {"lat": [[1]], "lon": [[1]], "diameter_km": [[1]]}),
        (CatalogValidationError, {"lat": [1], "lon": [1], "diameter_km": [0]}),
        (CatalogValidationError, {"lat": [1], "lon": [1], "diameter_km": [np.inf]}),
    ],
)
def test_make_catalog_errors(err_type, kwargs):
    with pytest.raises(err_type):
        make_catalog(**kwargs)


# --------------------------------------------------------------------------------------------
# filter_catalog
# --------------------------------------------------------------------------------------------


@pytest.fixture
def ring_catalog():
    lon = [-179.5, -90.0, 0.0, 90.0, 179.5, 175.0, -175.0, 10.0]
    lat = [0.0, 5.0, -5.0, 60.0, 1.0, 2.0, -2.0, 89.0]
    d = [1.0, 2.0, 3.0, 31.999, 32.0, 40.0, 2.0, 10.0]
    return make_catalog(lat, lon, d, attrs={"source": "ring"})


def test_filter_diameter_range_is_inclusive_exclusive(ring_catalog):
    out = filter_catalog(ring_catalog, diameter_range=PAPER_DIAMETER_RANGE_KM)
    assert sorted(out["diameter_km"]) == [2.0, 2.0, 3.0, 10.0, 31.999]
    assert out.attrs["source"] == "ring" and list(out.index) == list(range(len(out)))
    assert filter_catalog(ring_catalog, diameter_range=(None, 2))["diameter_km"].tolist() == [1.0]
    assert len(filter_catalog(ring_catalog, diameter_range=(32, None))) == 2
    assert len(filter_catalog(ring_catalog)) == len(ring_catalog)


@pytest.mark.parametrize(
    "bbox, expected_lons",
    [
        ((170, -10, -170, 10), [-179.5, 179.5, 175.0, -175.0]),  # -180..180 box across the antimeridian
        ((170, -10, 190, 10), [-179.5, 179.5, 175.0, -175.0]),  # the same box in 0..360
        ((-10, -10, 10, 10), [0.0]),
        ((350, -10, 10, 10), [0.0]),  # 0..360 box across the prime meridian
        ((180, -10, 270, 10), [-179.5, -90.0, -175.0]),  # 0..360 box on -180..180 longitudes
        ((-180, -90, 180, 90), [-179.5, -90.0, 0.0, 90.0, 179.5, 175.0, -175.0, 10.0]),  # whole planet
        ((0, -90, 360, 90), [-179.5, -90.0, 0.0, 90.0, 179.5, 175.0, -175.0, 10.0]),
        ((90, 60, 90, 60), [90.0]),  # edges are inclusive
    ],
)
def test_filter_bbox_both_conventions(ring_catalog, bbox, expected_lons):
    out = filter_catalog(ring_catalog, bbox=bbox)
    assert out["lon"].tolist() == expected_lons


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bbox": (0, 10, 20, -10)},
        {"bbox": (0, 1, 2)},
        {"bbox": (0, -95, 1, 0)},
        {"bbox": (float("nan"), 6, -179, 7)},  # a NaN edge skipped the longitude test
        {"bbox": (0, 6, float("inf"), 7)},
        {"diameter_range": (5, 2)},
        {"diameter_range": 5},
    ],
)
def test_filter_argument_errors(ring_catalog, kwargs):
    with pytest.raises(InvalidArgumentError):
        filter_catalog(ring_catalog, **kwargs)


def _mosaic(west: float, north: float, res: float, nx: int, ny: int, crs=MARS_GEOGRAPHIC) -> xr.Dataset:
    x = west + res * (np.arange(nx) + 0.5)
    y = north - res * (np.arange(ny) + 0.5)
    ds = xr.Dataset({"ir": (("y", "x"), np.zeros((ny, nx), np.float32))}, coords={"x": x, "y": y})
    return ds.rio.write_crs(crs)


def test_filter_footprint_across_the_antimeridian(ring_catalog):
    ds = _mosaic(170.0, 10.0, 0.5, 40, 40)  # 170..190 E, -10..10 N
    out = filter_catalog(ring_catalog, footprint=ds)
    assert sorted(out["lon"]) == [-179.5, -175.0, 175.0, 179.5]
    # the same through a Grid, and the result agrees with the equivalent bbox
    grid = Grid.from_dataset(ds)
    assert filter_catalog(ring_catalog, footprint=grid)["crater_id"].tolist() == out["crater_id"].tolist()


def test_filter_footprint_edges_and_projected_grid():
    cat = make_catalog([0, 0, 0, 0], [30.0, 60.0, 29.999, 45.0], [1, 1, 1, 1])
    ds = _mosaic(30.0, 5.0, 0.25, 120, 40)  # 30..60 E: west edge inside, east edge outside
    assert filter_catalog(cat, footprint=ds)["lon"].tolist() == [30.0, 45.0]
    # an equirectangular (metres) mosaic of the same area (away from the edges: metres round)
    r = MARS_RADIUS_M * math.pi / 180
    proj = _mosaic(30.0 * r, 5.0 * r, 0.25 * r, 120, 40, crs=MARS_EQUIRECTANGULAR)
    cat = make_catalog([0, 0, 0, 0, 6], [30.01, 60.01, 29.99, 45.0, 45.0], [1, 1, 1, 1, 1])
    assert filter_catalog(cat, footprint=proj)["lon"].tolist() == [30.01, 45.0]


# --------------------------------------------------------------------------------------------
# GeoPackage
# --------------------------------------------------------------------------------------------


@pytest.fixture
def detections():
    lat = [-4.5, 18.4, 60.0, -70.0, 0.0]
    lon = [137.4, -10.0, 179.99, -100.0, 0.0]
    d = [154.0, 3.2, 20.0, 12.0, 10.0]
    extra = {
        "score": [0.9, 0.7, 0.5, 0.99, 0.6],
        "visible": [True, False, True, True, True],
        "n_px": np.array([5, 6, 7, 8, 9], dtype=np.int64),
        "note": ["gale", "", "x", "y", "z"],
    }
    return make_catalog(
        lat, lon, d, extra=extra, attrs={"source": "detector run", "format": "detections", "area_km2": 12.5}
    )


def test_gpkg_round_trip_through_gdal(tmp_path, detections):
    path = write_catalog(
        detections,
        tmp_path / "det.gpkg",
        metadata={
            "model": "unet.keras",
            "parameters": {"threshold": 0.5, "scales": [1, 2]},
            "input_mosaic": "cube.zarr",
        },
    )
    assert path == tmp_path / "det.gpkg"
    layers = dict((str(n), g) for n, g in pyogrio.list_layers(path))
    assert layers == {"craters": "Point", "crater_rims": "Polygon", "metadata": None}

    raw = pyogrio.read_dataframe(path, layer="craters")
    assert len(raw) == len(detections)
    assert raw.crs.equals(MARS_GEOGRAPHIC, ignore_axis_order=True)  # GDAL's "IAU" authority, lat-first axes
    np.testing.assert_allclose(raw.geometry.x, detections["lon"])
    rims_raw = pyogrio.read_dataframe(path, layer="crater_rims")
    assert rims_raw.crs.equals(MARS_EQUIRECTANGULAR, ignore_axis_order=True)
    meta = pyogrio.read_dataframe(path, layer="metadata", read_geometry=False)
    table = dict(zip(meta["key"], meta["value"]))
    assert table["crs"] == "IAU_2015:49900" and table["model"] == "unet.keras"
    assert table["software"].startswith("marscraters ")

    back = read_catalog(path)
    assert back.crs.equals(MARS_GEOGRAPHIC)  # restored exactly, not only up to axis order
    assert back.crs.to_string() == "IAU_2015:49900"
    for col in ["crater_id", "lat", "lon", "diameter_km", "score", "visible", "n_px", "note"]:
        assert back[col].tolist() == detections[col].tolist(), col
    assert back.attrs["parameters"] == {"threshold": 0.5, "scales": [1, 2]}
    assert back.attrs["input_mosaic"] == "cube.zarr"
    assert back.attrs["area_km2"] == 12.5
    assert back.attrs["catalog_source"] == "detector run"
    assert back.attrs["n_craters"] == 5
    assert back.attrs["source"] == str(path) and back.attrs["format"] == "gpkg"


def test_gpkg_keeps_the_origin_across_rewrites(tmp_path):
    src = _write(tmp_path / "r20.csv", ROBBINS2020_CSV)
    once = read_catalog(write_catalog(read_catalog(src), tmp_path / "a.gpkg", metadata={"seed": 3}))
    twice = read_catalog(write_catalog(once, tmp_path / "b.gpkg"))
    assert twice.attrs["source"] == str(tmp_path / "b.gpkg") and twice.attrs["format"] == "gpkg"
    assert twice.attrs["catalog_source"] == str(src) and twice.attrs["catalog_format"] == "robbins2020"
    assert twice.attrs["seed"] == 3
    # a 'source' given as metadata is the origin too
    c = read_catalog(write_catalog(make_catalog([1], [2], [3]), tmp_path / "c.gpkg", metadata={"source": "demo"}))
    assert c.attrs["catalog_source"] == "demo"


def _geodesic_area_km2(poly) -> float:
    # IAU_2015:49910 is x = R lon, y = R lat (radians); unwrapped lon is fine for Geod
    x, y = np.asarray(poly.exterior.coords).T
    area, _ = MARS_GEOGRAPHIC.get_geod().polygon_area_perimeter(
        np.degrees(x / MARS_RADIUS_M), np.degrees(y / MARS_RADIUS_M)
    )
    return abs(area) / 1e6


def test_rims_are_circles_on_the_sphere(tmp_path, detections):
    path = write_catalog(detections, tmp_path / "det.gpkg")
    rims = pyogrio.read_dataframe(path, layer="crater_rims")
    assert (rims.geom_type == "Polygon").all() and rims.is_valid.all()
    for poly, d in zip(rims.geometry, detections["diameter_km"]):
        assert _geodesic_area_km2(poly) == pytest.approx(math.pi * (d / 2) ** 2, rel=0.01)
    # the hand-written projection matches PROJ's IAU_2015:49910
    t = pyproj.Transformer.from_crs(MARS_GEOGRAPHIC, MARS_EQUIRECTANGULAR, always_xy=True)
    cx, cy = t.transform(detections["lon"].iloc[0], detections["lat"].iloc[0])
    assert rims.geometry.iloc[0].centroid.x == pytest.approx(cx, abs=50)
    # at 60 N a circle is twice as wide as tall in an equirectangular projection
    minx, miny, maxx, maxy = rims.geometry.iloc[2].bounds
    assert (maxx - minx) / (maxy - miny) == pytest.approx(2.0, rel=0.01)
    # ... and the rim at 179.99 E runs past the edge instead of wrapping around the planet
    assert maxx - minx < 1e5 and maxx > math.pi * MARS_RADIUS_M


@pytest.mark.parametrize(
    "lat, lon, d",
    [(0.0, 0.0, 10.0), (45.0, 30.0, 20.0), (-70.0, 179.99, 50.0), (89.9, 10.0, 40.0), (60.0, -179.99, 300.0)],
)
def test_rim_vertices_are_geodesic_circle_points(lat, lon, d):
    rim = crater_rims(make_catalog([lat], [lon], [d]), n_vertices=16).geometry.iloc[0]
    x, y = np.asarray(rim.exterior.coords)[:17].T
    geod_lon, geod_lat, _ = MARS_GEOGRAPHIC.get_geod().fwd(
        np.full(17, lon), np.full(17, lat), np.linspace(0, 360, 17), np.full(17, d * 500.0)
    )
    dlon = (np.degrees(x / MARS_RADIUS_M) - geod_lon + 180) % 360 - 180
    np.testing.assert_allclose(dlon, 0, atol=1e-8)
    np.testing.assert_allclose(np.degrees(y / MARS_RADIUS_M), geod_lat, atol=1e-8)


def test_rim_around_a_pole():
    cat = make_catalog([89.9, -89.5], [10.0, -100.0], [40.0, 100.0])
    rims = crater_rims(cat)
    assert rims.is_valid.all() and (rims.geom_type == "Polygon").all()
    for poly, d in zip(rims.geometry, cat["diameter_km"]):
        assert _geodesic_area_km2(poly) == pytest.approx(math.pi * (d / 2) ** 2, rel=0.01)


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path, detections):
    path = write_catalog(detections, tmp_path / "c.gpkg")
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_catalog(detections.iloc[:1], path)
    assert path.read_bytes() == before
    write_catalog(detections.iloc[:2], path, overwrite=True)
    assert len(read_catalog(path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.gpkg"]  # no temporary files left


def test_append(tmp_path, detections):
    path = write_catalog(detections.iloc[:2], tmp_path / "c.gpkg", metadata={"model": "a"})
    write_catalog(detections.iloc[2:], path, append=True, metadata={"run": 2})
    back = read_catalog(path)
    assert back["crater_id"].tolist() == detections["crater_id"].tolist()
    assert back.attrs["n_craters"] == 5 and back.attrs["model"] == "a" and back.attrs["run"] == 2
    assert len(pyogrio.read_dataframe(path, layer="crater_rims")) == 5
    # appending different columns fails and leaves the file as it was
    before = path.read_bytes()
    with pytest.raises(CatalogError, match="differ"):
        write_catalog(detections[["crater_id", "lat", "lon", "diameter_km", "geometry"]], path, append=True)
    assert path.read_bytes() == before
    # append to a missing file creates it
    write_catalog(detections, tmp_path / "new.gpkg", append=True)
    assert len(read_catalog(tmp_path / "new.gpkg")) == 5


@pytest.mark.parametrize(
    "err_type, kwargs",
    [
        (InvalidArgumentError, {"path": "c.geojson"}),
        (InvalidArgumentError, {"path": "c.gpkg", "append": True, "overwrite": True}),
    ],
)
def test_write_catalog_argument_errors(tmp_path, detections, err_type, kwargs):
    kwargs = dict(kwargs)
    path = tmp_path / kwargs.pop("path")
    with pytest.raises(err_type):
        write_catalog(detections, path, **kwargs)
    assert not path.exists()


def test_write_refuses_invalid_catalogs(tmp_path, detections):
    bad = detections.copy()
    bad.loc[0, "diameter_km"] = -1.0
    with pytest.raises(CatalogValidationError):
        write_catalog(bad, tmp_path / "bad.gpkg")
    assert not (tmp_path / "bad.gpkg").exists()
    with pytest.raises(CatalogError, match="lacks the column"):
        write_catalog(bad.drop(columns="diameter_km"), tmp_path / "bad.gpkg")


def test_empty_catalog_round_trips(tmp_path):
    path = write_catalog(empty_catalog(), tmp_path / "empty.gpkg")
    back = read_catalog(path)
    assert len(back) == 0 and back.crs.equals(MARS_GEOGRAPHIC)
    assert list(back.columns[:4]) == list(CATALOG_COLUMNS)


def test_foreign_geopackage(tmp_path):
    # a GIS-made layer: projected Mars CRS, other column names, no metadata table
    t = pyproj.Transformer.from_crs(MARS_GEOGRAPHIC, MARS_EQUIRECTANGULAR, always_xy=True)
    x, y = t.transform([10.0, -20.0], [5.0, -5.0])
    gdf = gpd.GeoDataFrame({"Diameter": [3.0, 4.0]}, geometry=gpd.points_from_xy(x, y), crs=MARS_EQUIRECTANGULAR)
    gdf.to_file(tmp_path / "gis.gpkg", layer="my_craters")
    cat = read_catalog(tmp_path / "gis.gpkg")
    assert cat.crs.equals(MARS_GEOGRAPHIC)
    np.testing.assert_allclose(cat["lon"], [10.0, -20.0])
    np.testing.assert_allclose(cat["lat"], [5.0, -5.0])
    assert cat.attrs["layer"] == "my_craters"
    earth = gdf.set_crs("EPSG:4326", allow_override=True)
    earth.to_file(tmp_path / "earth.gpkg", layer="craters")
    with pytest.raises(NotMarsCRSError):
        read_catalog(tmp_path / "earth.gpkg")
    with pytest.raises(CatalogFormatError, match="no layer 'nope'"):
        read_catalog(tmp_path / "gis.gpkg", layer="nope")


# --------------------------------------------------------------------------------------------
# CSV and craterstats
# --------------------------------------------------------------------------------------------


def test_csv_round_trip(tmp_path, detections):
    path = write_csv(detections, tmp_path / "det.csv")
    back = read_catalog(path)
    assert back.attrs["format"] == "csv"
    for col in ["crater_id", "lat", "lon", "diameter_km", "score", "visible", "n_px"]:
        assert back[col].tolist() == detections[col].tolist(), col
    with pytest.raises(OutputExistsError):
        write_csv(detections, path)
    assert "geometry" not in path.read_text().splitlines()[0]


@pytest.mark.parametrize("fmt", ["diam", "scc"])
def test_craterstats_round_trip(tmp_path, detections, fmt):
    path = write_craterstats(detections, tmp_path / f"count.{fmt}", area_km2=3036.61128229)
    back = read_catalog(path)
    assert back.attrs["format"] == fmt
    assert back.attrs["area_km2"] == 3036.61128229  # written in full, without an exponent
    np.testing.assert_allclose(back["diameter_km"], detections["diameter_km"], rtol=1e-9)
    np.testing.assert_allclose(back["lon"], detections["lon"], atol=1e-7)
    np.testing.assert_allclose(back["lat"], detections["lat"], atol=1e-7)
    assert (back["fraction"] == 1.0).all()
    text = path.read_text()
    # the layout craterstats parses: an area it reads with [\d.]* and one table closed by '}'
    key = "Total_area" if fmt == "scc" else "area"
    assert re.search(rf"^{key} = 3036\.61128229\b", text, re.M)
    assert text.rstrip().endswith("}")
    with pytest.raises(OutputExistsError):
        write_craterstats(detections, path, area_km2=1)


def test_craterstats_without_positions_round_trip(tmp_path):
    cat = read_catalog(_write(tmp_path / "in.diam", DIAM_NO_POSITIONS))
    out = write_craterstats(cat, tmp_path / "out.diam", area_km2=cat.attrs["area_km2"])
    assert "crater = {diameter, fraction\n" in out.read_text()
    back = read_catalog(out)
    assert back["diameter_km"].tolist() == cat["diameter_km"].tolist()


@pytest.mark.parametrize("area", [0, -5, float("nan"), "big"])
def test_craterstats_needs_an_area(tmp_path, detections, area):
    with pytest.raises(InvalidArgumentError):
        write_craterstats(detections, tmp_path / "c.diam", area_km2=area)


@pytest.mark.parametrize("fmt", ["diam", "scc"])
def test_craterstats_own_parser_accepts_our_files(tmp_path, detections, fmt):
    """Read our file with craterstats itself (optional: not a dependency of marscraters)."""
    import scipy.integrate

    if not hasattr(scipy.integrate, "simps"):
        scipy.integrate.simps = scipy.integrate.simpson  # craterstats 3.2.1 needs the old name
    np.math = math  # type: ignore[attr-defined]
    cst = pytest.importorskip("craterstats")
    path = write_craterstats(detections, tmp_path / f"count.{fmt}", area_km2=250.5)
    count = cst.Cratercount(str(path))
    assert count.area == 250.5
    assert sorted(count.diam) == sorted(detections["diameter_km"].tolist())


# --------------------------------------------------------------------------------------------
# real data (skipped without ../shared/data)
# --------------------------------------------------------------------------------------------

TILE_RE = re.compile(r"CSV_Tile_(\d+)_(-?\d+)_(-?\d+)_(-?\d+)_(-?\d+)_px\.csv$")


@pytest.fixture(scope="module")
def robbins_tiles(shared_data):
    folder = shared_data / "robbins2012-equatorial-tiles"
    files = sorted(folder.glob("CSV_Tile_*_px.csv"))
    if len(files) != 24:
        pytest.skip(f"expected the 24 Robbins tiles in {folder}")
    return files


@pytest.mark.realdata
def test_all_robbins_tiles(robbins_tiles):
    cats = [read_catalog(f) for f in robbins_tiles]
    assert sum(len(c) for c in cats) == 225_367
    for f, c in zip(robbins_tiles, cats):
        _, minlat, maxlat, minlon, maxlon = map(int, TILE_RE.search(f.name).groups())
        assert c.attrs["format"] == "robbins2012"
        assert c["lat"].between(minlat, maxlat).all()
        assert c["lon"].between(minlon, maxlon).all()
        # every value exactly as in the file, and the points where the columns say
        raw = pd.read_csv(f)
        np.testing.assert_array_equal(c["lat"].to_numpy(), raw["LATITUDE_CIRCLE_IMAGE"].to_numpy())
        np.testing.assert_array_equal(c["lon"].to_numpy(), raw["LONGITUDE_CIRCLE_IMAGE"].to_numpy())
        np.testing.assert_array_equal(c["diameter_km"].to_numpy(), raw["DIAM_CIRCLE_IMAGE"].to_numpy())
        np.testing.assert_array_equal(c.geometry.x.to_numpy(), c["lon"].to_numpy())
        np.testing.assert_array_equal(c.geometry.y.to_numpy(), c["lat"].to_numpy())
    ids = pd.concat([c["crater_id"] for c in cats])
    assert ids.is_unique


@pytest.mark.realdata
@pytest.mark.parametrize("tile", ["00", "06", "11", "17", "23"])
def test_robbins_tile_pixels_match_grid(robbins_tiles, tile):
    """LONG_X_PX / LAT_Y_PX are rounded pixel-*corner* coordinates: index coordinate + 0.5."""
    path = next(f for f in robbins_tiles if f.name.startswith(f"CSV_Tile_{tile}_"))
    _, minlat, maxlat, minlon, maxlon = map(int, TILE_RE.search(path.name).groups())
    grid = Grid(Affine(1 / 256, 0, minlon, 0, -1 / 256, maxlat), MARS_GEOGRAPHIC, (7680, 7680))
    cat = read_catalog(path)
    col, row = grid.lonlat_to_pixel(cat["lon"].to_numpy(), cat["lat"].to_numpy())
    dx = cat["LONG_X_PX"].to_numpy() - (col + 0.5)
    dy = cat["LAT_Y_PX"].to_numpy() - (row + 0.5)
    for d in (dx, dy):
        assert np.abs(d).max() <= 1.0  # the few beyond 0.5 are clipped to the last pixel, 7679
        assert np.mean(np.abs(d) <= 0.5 + 1e-6) > 0.999
        assert abs(d.mean()) < 0.02  # centred: rounding, not a half-pixel shift
    # were they centre-based (= index coordinates), the offset would be half a pixel
    assert np.mean(cat["LONG_X_PX"].to_numpy() - col) == pytest.approx(0.5, abs=0.02)
    # RAD_PX: the radius in pixels of latitude (no cos(lat) factor), rounded
    _, rad_y = grid.km_to_pixels(cat["diameter_km"].to_numpy() / 2, cat["lat"].to_numpy())
    assert np.abs(cat["RAD_PX"].to_numpy() - rad_y).max() <= 1.0


@pytest.mark.realdata
def test_robbins2020_sample(shared_data):
    path = shared_data / "mcd2020-sample" / "sample.csv"
    if not path.exists():
        pytest.skip(f"{path} absent")
    cat = read_catalog(path)
    raw = pd.read_csv(path, encoding="utf-8-sig")
    assert len(cat) == len(raw) == 1000
    assert cat.attrs["format"] == "robbins2020"
    assert cat["lon"].between(-180, 180).all()
    np.testing.assert_allclose(cat["lon"] % 360, raw["LON_CIRC_IMG"] % 360, atol=1e-9)
    assert cat["crater_id"].tolist() == raw["CRATER_ID"].tolist()
    np.testing.assert_array_equal(cat["diameter_km"], raw["DIAM_CIRC_IMG"])
    pd.testing.assert_series_equal(cat["DEG_RIM"], raw["DEG_RIM"])
    single = read_catalog(shared_data / "mcd2020-sample" / "sample_single.csv")
    assert len(single) == 1 and single["crater_id"].iloc[0] == "15-1-023094"


def test_latin1_robbins_tsv_reads(tmp_path):
    """The 2012 Robbins TSV has Latin-1 bytes (e.g. a degree sign) in its text columns."""
    text = ("CRATER_ID\tLATITUDE_CIRCLE_IMAGE\tLONGITUDE_CIRCLE_IMAGE\tDIAM_CIRCLE_IMAGE\tMORPHOLOGY_NOTES\n"
            "01-000000\t84.367\t108.746\t82.1\tslope 5\xb0\n"
            "01-000001\t-12.5\t-170.25\t3.4\t\n")
    path = tmp_path / "RobbinsCraters_20121016.tsv"
    path.write_bytes(text.encode("latin-1"))
    cat = read_catalog(path)
    assert list(cat["crater_id"]) == ["01-000000", "01-000001"]
    assert cat["MORPHOLOGY_NOTES"].iloc[0] == "slope 5\N{DEGREE SIGN}"
    np.testing.assert_allclose(cat["lon"], [108.746, -170.25])
    np.testing.assert_allclose(cat["diameter_km"], [82.1, 3.4])
