"""Catalog files as users bring them: export artifacts, wrong CRSs, planetographic layers, units,
GIS column names and repeated rows.  Each is read right or refused with the fix named."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import pytest
import shapely

from marscraters import cli
from marscraters.catalog import (
    _to_mars_geographic,
    make_catalog,
    read_catalog,
    write_catalog,
)
from marscraters.errors import CatalogFormatError, CatalogValidationError, CRSError

# the IAU 2015 Mars ellipsoid, on which the planetographic CRSs (49901, 49911, 49916...) are defined
A_M, B_M = 3396190.0, 3376200.0
LAT_C = np.array([45.0, -30.0, 0.0, 80.0])  # planetocentric truth
LON_E = np.array([170.0, -175.0, 10.0, 350.0])  # east, either convention
LAT_G = np.degrees(np.arctan(np.tan(np.radians(LAT_C)) * (A_M / B_M) ** 2))  # the same places, planetographic
assert abs(LAT_G[0] - 45.338) < 1e-3  # 20 km north of 45° planetocentric


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``marscraters ARGV``."""
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _layer(path: Path, x, y, crs: str, columns: dict | None = None) -> Path:
    """A GeoPackage 'craters' layer of points written by GDAL, as a GIS writes it (5 km craters by default)."""
    columns = {"diameter_km": np.full(len(x), 5.0)} if columns is None else columns
    gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(x, y), crs=crs).to_file(path, layer="craters")
    return path


def _ocentric(lat_g):
    """Planetocentric latitudes of planetographic ones on the IAU 2015 Mars ellipsoid."""
    return np.degrees(np.arctan(np.tan(np.radians(lat_g)) * (B_M / A_M) ** 2))


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# rows longer than the header
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "lat,lon,diameter_km,score\n10,20,3,0.9,\n-5,40,2,0.8,\n",  # a delimiter at the end of every row
        "lat,lon,diameter_km,score\n10,20,3,0.9\n-5,40,2,0.8,\n",  # ... of some rows only
        "lat;lon;diameter_km;score\n10;20;3;0.9;;\n-5;40;2;0.8;\n",  # several empty fields
    ],
    ids=["every-row", "some-rows", "semicolons"],
)
def test_rows_ending_in_a_delimiter_are_read_in_their_columns(tmp_path, text):
    cat = _no_warnings(read_catalog, _write(tmp_path / "det.csv", text))
    assert cat[["lat", "lon", "diameter_km", "score"]].values.tolist() == [[10, 20, 3, 0.9], [-5, 40, 2, 0.8]]


def test_a_robbins_tile_with_trailing_commas_keeps_its_diameters(tmp_path):
    text = ("LATITUDE_CIRCLE_IMAGE,LONGITUDE_CIRCLE_IMAGE,DIAM_CIRCLE_IMAGE,LAT_Y_PX,LONG_X_PX,RAD_PX\n"
            "-10.654,2.766,124.16,2727,708,269,\n-9.106,38.058,185.32,2331,2063,401,\n")
    cat = read_catalog(_write(tmp_path / "tile.csv", text))
    assert cat["diameter_km"].tolist() == [124.16, 185.32] and cat["LAT_Y_PX"].tolist() == [2727, 2331]


@pytest.mark.parametrize(
    "text, fix",
    [
        ("lat,lon,diameter_km\n10,20,3\n-5,40,3,2\n", "write 3.2 and 1200"),  # a decimal comma
        ("lat,lon,diameter_km\n10,20,3,7\n-5,40,2,\n", "name their columns in the header"),
        ("lat;lon;diameter_km\n10;20;3\n-5;40;2;;7\n", "name their columns in the header"),
    ],
    ids=["decimal-comma", "extra-value-first-row", "semicolons"],
)
def test_a_row_with_more_values_than_the_header_is_refused(tmp_path, text, fix):
    with pytest.raises(CatalogFormatError, match=r"det\.csv, line \d: [45] values, but the header names 3 columns") as info:
        read_catalog(_write(tmp_path / "det.csv", text))
    assert fix in str(info.value)


# ---------------------------------------------------------------------------------------------
# degrees under a CRS in metres
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("crs", ["IAU_2015:49910", "IAU_2015:49915"])
def test_degrees_under_a_metre_crs_are_refused(tmp_path, crs):
    path = _layer(tmp_path / "c.gpkg", [170.0, -175.0], [10.0, -5.0], crs)
    with pytest.raises(CRSError, match=r"look like longitudes and latitudes in degrees") as info:
        read_catalog(path)
    msg = str(info.value)
    assert "assign (do not reproject) IAU_2015:49900" in msg and f"ogr2ogr -a_srs IAU_2015:49900 fixed.gpkg {path}" in msg


def test_metres_under_a_metre_crs_still_read(tmp_path):
    x = np.radians([170.0, -175.0]) * A_M
    cat = read_catalog(_layer(tmp_path / "m.gpkg", x, np.radians([10.0, -5.0]) * A_M, "IAU_2015:49910"))
    np.testing.assert_allclose(cat[["lat", "lon"]].values, [[10.0, 170.0], [-5.0, -175.0]])


# ---------------------------------------------------------------------------------------------
# planetographic CRSs
# ---------------------------------------------------------------------------------------------
def _eqc(lon, lat, lon0):
    """IAU equirectangular (x = a lon, y = a lat, in radians on the ellipsoid's a) around ``lon0``."""
    return A_M * np.radians((lon - lon0 + 180.0) % 360.0 - 180.0), A_M * np.radians(lat)


@pytest.mark.parametrize(
    "crs, xy",
    [
        ("IAU_2015:49901", (LON_E, LAT_G)),  # planetographic lon/lat
        ("IAU_2015:49911", _eqc(LON_E, LAT_G, 0.0)),  # planetographic equirectangular, clon 0
        ("IAU_2015:49916", _eqc(LON_E, LAT_G, 180.0)),  # ... clon 180
        ("IAU_2015:49902", (LON_E, LAT_C)),  # planetocentric on the ellipsoid: already right
        ("IAU_2015:49912", _eqc(LON_E, LAT_C, 0.0)),
    ],
    ids=["49901", "49911", "49916", "49902-ocentric", "49912-ocentric"],
)
def test_a_planetographic_layer_is_read_as_planetocentric(tmp_path, crs, xy):
    cat = read_catalog(_layer(tmp_path / "og.gpkg", *xy, crs))
    np.testing.assert_allclose(cat["lat"], LAT_C, atol=1e-9)  # 45.338 (20 km north) before the fix
    np.testing.assert_allclose(cat["lon"], [170.0, -175.0, 10.0, -10.0], atol=1e-9)


def test_a_planetographic_footprint_is_read_as_planetocentric(tmp_path):
    box = shapely.box(10.0, -10.0, 20.0, 45.0)
    path = tmp_path / "fp.gpkg"
    write_catalog(make_catalog([0.0], [15.0], [3.0], attrs={"footprint": box, "area_km2": 1.0}), path)
    lat_g45 = float(LAT_G[0])
    og = gpd.GeoDataFrame({"area_km2": [1.0]}, geometry=[shapely.box(10.0, -10.0, 20.0, lat_g45)], crs="IAU_2015:49901")
    pyogrio.write_dataframe(og, path, layer="footprint")  # replaces the layer
    fp = read_catalog(path).attrs["footprint"]
    np.testing.assert_allclose(fp.bounds, [10.0, _ocentric(-10.0), 20.0, 45.0], atol=1e-9)


def test_a_west_positive_longitude_axis_is_flipped():
    # pyproj's own IAU_2015:49901 counts longitude westward (GDAL stores every CRS east-positive)
    geom = np.asarray(gpd.points_from_xy([10.0, 350.0], LAT_G[:2]))
    out = _to_mars_geographic(geom, pyproj.CRS("IAU_2015:49901"), what="layer", path=Path("x.gpkg"))
    np.testing.assert_allclose(shapely.get_coordinates(out), [[350.0, 45.0], [10.0, -30.0]], atol=1e-9)
    # a projected CRS counted westward: PROJ mixes its axes up, so it is refused rather than guessed
    with pytest.raises(CRSError, match=r"planetographic CRS IAU_2015:49911.*cannot be converted reliably"):
        _to_mars_geographic(np.asarray(gpd.points_from_xy([1e5], [1e5])), pyproj.CRS("IAU_2015:49911"),
                            what="layer", path=Path("x.gpkg"))


# ---------------------------------------------------------------------------------------------
# craterstats count areas
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, km2",
    [("1234.5", 1234.5), ("100.", 100.0), ("1234.5 <km^2>", 1234.5), ("2.5e3 <km2>", 2500.0),
     ("25000000 <m^2>", 25.0)],
)
def test_a_count_area_is_read_in_its_unit(tmp_path, value, km2):
    path = _write(tmp_path / "c.diam", f"area = {value}\ncrater = {{diameter\n1.5\n2.0\n}}\n")
    assert read_catalog(path).attrs["area_km2"] == pytest.approx(km2)


@pytest.mark.parametrize("value", ["1,234.5", "12 km", "12 <ha>", "about 12"])
def test_a_count_area_with_other_text_is_refused(tmp_path, value):
    path = _write(tmp_path / "c.scc", f"Total_area = {value}\ncrater = {{diam\n1.5\n}}\n")
    with pytest.raises(CatalogFormatError, match=r"cannot read the count area from 'Total_area = .*plain number"):
        read_catalog(path)


# ---------------------------------------------------------------------------------------------
# a diameter column in metres
# ---------------------------------------------------------------------------------------------
def test_a_diameter_column_in_metres_is_not_offered_a_drop(tmp_path, capsys):
    path = _write(tmp_path / "m.csv", "lat,lon,diameter\n10,20,2400\n-5,30,8600\n")
    with pytest.raises(CatalogValidationError, match="divide it by 1000") as info:
        read_catalog(path)
    assert "errors='drop'" not in str(info.value) and "Dropping these rows is no fix" in str(info.value)
    code, _, err = _run(capsys, ["convert", str(path), "--out", str(tmp_path / "m.gpkg")])
    assert code == 2 and "divide it by 1000" in err and "--errors drop" not in err
    # other impossible rows beside it: drop is still offered for them
    path = _write(tmp_path / "m2.csv", "lat,lon,diameter\n10,20,2400\n-5,30,8600\n95,1,2\n")
    with pytest.raises(CatalogValidationError, match=r"other invalid rows, or pass errors='drop'"):
        read_catalog(path)
    with pytest.warns(UserWarning, match="metres"):  # a drop asked for still drops, and says why
        assert len(read_catalog(path, errors="drop")) == 1


# ---------------------------------------------------------------------------------------------
# GeoPackages with the Robbins releases' column names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "columns, lat_key, lon_key",
    [
        ({"LATITUDE_CIRCLE_IMAGE": [-10.654, 5.0], "LONGITUDE_CIRCLE_IMAGE": [2.766, -170.0],
          "DIAM_CIRCLE_IMAGE": [124.16, 3.5], "LAT_Y_PX": [2727, 1]}, "LATITUDE_CIRCLE_IMAGE", "LONGITUDE_CIRCLE_IMAGE"),
        ({"CRATER_ID": ["01-000001", "19-000002"], "LAT_CIRC_IMG": [-10.654, 5.0], "LON_CIRC_IMG": [2.766, 190.0],
          "DIAM_CIRC_IMG": [124.16, 3.5]}, "LAT_CIRC_IMG", "LON_CIRC_IMG"),
    ],
    ids=["robbins2012", "robbins2020"],
)
def test_a_geopackage_with_robbins_names_reads_like_its_csv(tmp_path, columns, lat_key, lon_key):
    path = _layer(tmp_path / "r.gpkg", columns[lon_key], columns[lat_key], "IAU_2015:49900", columns)
    csv = tmp_path / "r.csv"
    gpd.GeoDataFrame(columns).to_csv(csv, index=False)
    from_gpkg, from_csv = read_catalog(path), read_catalog(csv)
    np.testing.assert_allclose(from_gpkg[["lat", "lon", "diameter_km"]].values,
                               from_csv[["lat", "lon", "diameter_km"]].values)
    if "CRATER_ID" in columns:
        assert from_gpkg["crater_id"].tolist() == columns["CRATER_ID"]


def test_a_geopackage_without_a_diameter_names_the_column_and_the_accepted_names(tmp_path):
    path = _layer(tmp_path / "r.gpkg", [2.766], [-10.654], "IAU_2015:49900",
                  {"LATITUDE_CIRCLE_IMAGE": [-10.654], "RAD_PX": [269]})
    with pytest.raises(CatalogFormatError, match=r"no diameter \(km\) column") as info:
        read_catalog(path)
    msg = str(info.value)
    assert "no latitude" not in msg and "DIAM_CIRCLE_IMAGE" in msg and "diameter_km" in msg and "RAD_PX" in msg


# ---------------------------------------------------------------------------------------------
# rows listed twice
# ---------------------------------------------------------------------------------------------
TWICE = "lat,lon,diameter_km\n10,-10,3\n-5,40,2\n10,350,3\n-5,40,2\n1,2,5\n"  # rows 3, 4 repeat 1, 2


def test_repeated_rows_are_warned_about_and_kept_or_dropped(tmp_path):
    path = _write(tmp_path / "twice.csv", TWICE)
    with pytest.warns(UserWarning, match=r"2 of 5 rows repeat an earlier row's lat, lon and diameter_km \(row 3 "
                      r"repeats row 1; row 4 repeats row 2\): .*counted twice in scores and ages.*errors='drop'"):
        assert len(read_catalog(path)) == 5  # warned, not silently dropped
    with pytest.warns(UserWarning, match=r"dropped 2 of 5 rows that repeat"):
        cat = read_catalog(path, errors="drop")
    assert cat["crater_id"].tolist() == ["twice:1", "twice:2", "twice:5"]


def test_a_repeated_crater_id_is_warned_about(tmp_path):
    path = _write(tmp_path / "ids.csv", "crater_id,lat,lon,diameter_km\na,1,2,3\nb,2,3,4\na,5,6,7\n")
    with pytest.warns(UserWarning, match=r"row 3 repeats the crater_id 'a' of row 1.*counted twice"):
        assert len(read_catalog(path, errors="drop")) == 3  # which of the two is right is unknown: kept


def test_appended_catalogs_numbered_by_row_are_no_repeats(tmp_path):
    path = tmp_path / "a.gpkg"
    write_catalog(make_catalog([1.0, 2.0], [3.0, 4.0], [5.0, 6.0]), path)  # crater_id "1", "2"
    write_catalog(make_catalog([7.0], [8.0], [9.0]), path, append=True)  # "1" again: another crater
    assert _no_warnings(read_catalog, path)["crater_id"].tolist() == ["1", "2", "1"]


def test_equal_diameters_without_positions_are_no_repeats(tmp_path):
    path = _write(tmp_path / "c.diam", "area = 10\ncrater = {diameter\n1.5\n1.5\n2.0\n}\n")
    assert len(_no_warnings(read_catalog, path)) == 3
    _no_warnings(make_catalog, [1.0, 2.0], [3.0, 3.0], [1.0, 1.0])  # same lon and diameter, other lat


def test_convert_names_its_flag_for_repeated_rows(tmp_path, capsys):
    path = _write(tmp_path / "twice.csv", TWICE)
    code, _, err = _run(capsys, ["convert", str(path), "--out", str(tmp_path / "o.gpkg")])
    assert code == 0 and "counted twice" in err and "--errors drop" in err and "errors=" not in err
    assert err.count("repeat an earlier row") == 1  # read, then written: said once
    code, out, err = _run(capsys, ["convert", str(path), "--errors", "drop", "--out", str(tmp_path / "d.gpkg")])
    assert code == 0 and "dropped 2 of 5 rows that repeat" in err and "wrote 3 craters" in out


# ---------------------------------------------------------------------------------------------
# cells that are no numbers, a half position, flags as latitudes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, text, cell",
    [("u.csv", "lat,lon,diameter_km\n1,2,3\n1,2,3 km\n", "'3 km'"),
     ("dc.csv", "lat;lon;diameter_km\n1;2;3,2\n", "'3,2'"),
     ("q.csv", 'lat,lon,diameter_km\n1,2,"1,200"\n', "'1,200'")],
    ids=["unit", "decimal-comma", "thousands"],
)
def test_a_cell_that_is_no_number_is_quoted(tmp_path, name, text, cell):
    with pytest.raises(CatalogValidationError, match=r"diameter_km=nan \(missing or not a number\) from the cell "
                       + cell + r".*a plain number"):
        read_catalog(_write(tmp_path / name, text))


def test_a_count_with_lon_but_no_lat_is_refused(tmp_path):
    path = _write(tmp_path / "c.diam", "area = 10\ncrater = {diameter, lon\n1.5 10\n}\n")
    with pytest.raises(CatalogFormatError, match=r"a 'lon' column but no 'lat'.*Give both lon and lat"):
        read_catalog(path)


def test_true_and_false_are_no_latitudes(tmp_path):
    with pytest.raises(CatalogValidationError, match=r"row 1: lat=nan \(missing or not a number\) from the cell True"):
        read_catalog(_write(tmp_path / "b.csv", "lat,lon,diameter_km\nTrue,2,3\nFalse,3,4\n"))
    with pytest.raises(CatalogValidationError, match="from the cell True"):
        make_catalog(np.array([True]), [2.0], [3.0])
