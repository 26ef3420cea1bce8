"""The count area travels with a catalog: `catalog` records its mosaic's footprint and km² in the
GeoPackage, and `age` dates on that area unless told another."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import box

from marscraters import cli
from marscraters.catalog import filter_catalog, make_catalog, read_catalog, write_catalog
from marscraters.chronology import count_area_km2, model_age
from marscraters.crs import Grid
from marscraters.errors import CatalogError
from marscraters.mosaic import ingest, mosaic_from_array, mosaic_footprint
from marscraters.targets import render_targets

BOUNDS = (20.0, -1.0, 22.0, 1.0)  # 2 x 2 degrees at the equator, about 14,000 km²
RANGE = ("2", "16")


@pytest.fixture(scope="module")
def surface(tmp_path_factory):
    """A mosaic cube, its probability store (16 outline craters of 2.3-14 km) and the GeoPackage
    `marscraters catalog` writes from it."""
    tmp = tmp_path_factory.mktemp("count_area")
    ds = mosaic_from_array(np.full((512, 512), 100.0, dtype="float32"), bounds=BOUNDS, name="surface")
    cube = ingest(ds, tmp / "cube.zarr", progress=False)
    grid = Grid.from_dataset(ds)
    cols, rows = np.meshgrid(np.arange(64.0, 512, 128), np.arange(64.0, 512, 128))
    dpx = np.geomspace(10, 60, cols.size)
    lon, lat = grid.pixel_to_lonlat(cols.ravel(), rows.ravel())
    truth = make_catalog(lat, lon, dpx * 3396.19 * np.pi / 180 / 256)
    prob = (render_targets(ds, truth, kind="outline", dtype="float32") * 0.9).compute().chunk(256)
    store = tmp / "pred.zarr"
    prob.to_dataset(name="crater_probability").to_zarr(store, zarr_format=3, consolidated=False)
    gpkg = tmp / "craters.gpkg"
    assert cli.main(["catalog", str(store), "--out", str(gpkg), "--max-diameter-px", "100", "--no-verify",
                     "--quiet"]) == 0
    return {"ds": ds, "cube": cube, "gpkg": gpkg, "area": count_area_km2(mosaic_footprint(ds)), "n": cols.size}


def test_catalog_records_its_mosaics_area_in_the_geopackage(surface):
    gpkg, area = surface["gpkg"], surface["area"]
    assert 13_000 < area < 15_000
    # what GDAL sees: a footprint polygon layer and area_km2 in the metadata table
    layers = dict(pyogrio.list_layers(gpkg))
    assert layers["footprint"] == "MultiPolygon"
    footprint = pyogrio.read_dataframe(gpkg, layer="footprint")
    assert footprint.total_bounds == pytest.approx(BOUNDS)
    meta = pyogrio.read_dataframe(gpkg, layer="metadata").set_index("key")
    assert float(meta.loc["area_km2", "value"]) == pytest.approx(area, rel=1e-6)
    # and read back
    cat = read_catalog(gpkg)
    assert len(cat) == surface["n"]
    assert cat.attrs["area_km2"] == pytest.approx(area, rel=1e-6)
    assert cat.attrs["footprint"].bounds == pytest.approx(BOUNDS)
    assert count_area_km2(cat.attrs["footprint"]) == pytest.approx(area, rel=1e-6)
    assert "pred.zarr" in cat.attrs["area_source"]


def test_geopackage_round_trip_keeps_area_and_footprint(tmp_path):
    cat = make_catalog([0.5, -0.5], [30.5, 31.5], [3.0, 5.0], attrs={"footprint": box(30, -1, 32, 1)})
    path = write_catalog(cat, tmp_path / "c.gpkg")
    back = read_catalog(path)
    assert back.attrs["footprint"].equals(box(30, -1, 32, 1))
    assert back.attrs["area_km2"] == pytest.approx(count_area_km2(box(30, -1, 32, 1)))
    # written again from what was read: the same area
    again = read_catalog(write_catalog(back, tmp_path / "d.gpkg"))
    assert again.attrs["area_km2"] == pytest.approx(back.attrs["area_km2"])


def test_age_uses_the_recorded_area_and_says_so(surface, capsys):
    cat = read_catalog(surface["gpkg"])
    expected = model_age(cat, area_km2=surface["area"], diameter_range=(2, 16))
    guessed = model_age(cat, area_km2=180_000, diameter_range=(2, 16))  # the old README's typed area
    assert expected.age_text() != guessed.age_text()
    capsys.readouterr()
    assert cli.main(["age", str(surface["gpkg"]), "--range", *RANGE]) == 0
    out = capsys.readouterr().out
    assert expected.age_text() in out
    assert f"count area {surface['area']:,.0f} km², recorded in {surface['gpkg']}" in out
    # an explicit area still wins, and says where it came from
    assert cli.main(["age", str(surface["gpkg"]), "--area-km2", "180000", "--range", *RANGE]) == 0
    out = capsys.readouterr().out
    assert guessed.age_text() in out and "--area-km2" in out


def test_age_area_from_a_mosaic_cube(surface, tmp_path, capsys):
    cat = read_catalog(surface["gpkg"])
    plain = make_catalog(cat.lat, cat.lon, cat.diameter_km)  # no count area recorded
    gpkg = write_catalog(plain, tmp_path / "plain.gpkg")
    assert "area_km2" not in read_catalog(gpkg).attrs
    capsys.readouterr()
    assert cli.main(["age", str(gpkg), "--area", str(surface["cube"]), "--range", *RANGE]) == 0
    out = capsys.readouterr().out
    assert model_age(cat, area_km2=surface["area"], diameter_range=(2, 16)).age_text() in out
    assert f"measured on --area {surface['cube']}" in out
    # a catalog GeoPackage as --area: its footprint layer, not its crater points
    assert cli.main(["age", str(gpkg), "--area", str(surface["gpkg"]), "--range", *RANGE]) == 0
    assert f"count area {surface['area']:,.0f} km²" in capsys.readouterr().out


def test_age_without_any_area_names_the_flags(tmp_path, capsys):
    gpkg = write_catalog(make_catalog([0.0, 0.1], [20.0, 20.1], [3.0, 4.0]), tmp_path / "plain.gpkg")
    capsys.readouterr()
    assert cli.main(["age", str(gpkg), "--range", *RANGE]) == 2
    err = capsys.readouterr().err
    assert "records no count area" in err and "--area-km2" in err and "--area with" in err and "cube.zarr" in err
    assert cli.main(["age", str(gpkg), "--area", str(tmp_path / "nosuch.zarr"), "--range", *RANGE]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info_prints_the_count_area(surface, tmp_path, capsys):
    capsys.readouterr()
    assert cli.main(["info", str(surface["gpkg"])]) == 0
    out = capsys.readouterr().out
    assert f"count area: {surface['area']:,.1f} km²" in out and "lon 20..22, lat -1..1" in out
    gpkg = write_catalog(make_catalog([0.0], [20.0], [3.0]), tmp_path / "plain.gpkg")
    assert cli.main(["info", str(gpkg)]) == 0
    assert "count area: none recorded" in capsys.readouterr().out


def test_filtering_cuts_the_recorded_area(surface):
    cat = read_catalog(surface["gpkg"])
    west = filter_catalog(cat, bbox=(0, -90, 21, 90))
    assert west.attrs["area_km2"] == pytest.approx(surface["area"] / 2, rel=1e-3)
    assert west.attrs["footprint"].bounds == pytest.approx((20, -1, 21, 1))
    # the recorded source says the area was cut (info and age print it beside the area)
    assert west.attrs["area_source"].startswith(cat.attrs["area_source"])
    assert west.attrs["area_source"].endswith("cut to lon 0..21, lat -90..90")
    # the other longitude convention cuts the same
    assert filter_catalog(cat, bbox=(-340, -90, -339, 90)).attrs["area_km2"] == pytest.approx(
        west.attrs["area_km2"])
    # a grid: the part of the footprint inside it
    half = mosaic_from_array(np.zeros((10, 10)), bounds=(21, 0, 23, 2))
    assert filter_catalog(cat, footprint=half).attrs["area_km2"] == pytest.approx(surface["area"] / 4, rel=1e-3)
    # a diameter cut keeps the area
    assert filter_catalog(cat, diameter_range=(3, 10)).attrs["area_km2"] == cat.attrs["area_km2"]
    # an area without its footprint cannot be cut: it is dropped rather than kept stale
    count = make_catalog([0.0, 0.5], [20.5, 21.5], [3.0, 4.0], attrs={"area_km2": 14_000.0})
    assert "area_km2" not in filter_catalog(count, bbox=(20, -1, 21, 1)).attrs
    # outside the footprint: no area
    assert "area_km2" not in filter_catalog(cat, bbox=(40, -1, 41, 1)).attrs


def test_appending_merges_footprints_or_drops_the_area(tmp_path):
    a = make_catalog([0.0], [30.5], [3.0], attrs={"footprint": box(30, -1, 31, 1)})
    b = make_catalog([0.0], [31.5], [3.0], attrs={"footprint": box(31, -1, 32, 1)})
    path = write_catalog(a, tmp_path / "c.gpkg")
    write_catalog(b, path, append=True)
    both = read_catalog(path)
    assert both.attrs["area_km2"] == pytest.approx(count_area_km2(box(30, -1, 32, 1)))
    assert shapely.equals(shapely.normalize(both.attrs["footprint"]), shapely.normalize(box(30, -1, 32, 1)))
    # craters counted on an unknown area: the union is unknown too
    write_catalog(make_catalog([0.0], [40.0], [3.0]), path, append=True)
    back = read_catalog(path)
    assert len(back) == 3 and "area_km2" not in back.attrs and "footprint" not in back.attrs
    assert len(pyogrio.read_dataframe(path, layer="footprint")) == 0


def test_appends_that_would_count_craters_twice_are_refused(tmp_path):
    a = make_catalog([0.0, 0.5], [30.5, 30.7], [3.0, 4.0], attrs={"footprint": box(30, -1, 31, 1)})
    path = write_catalog(a, tmp_path / "c.gpkg")
    before = path.read_bytes()
    # the same catalog again (a rerun script): its craters, and its footprint, are already there
    with pytest.raises(CatalogError, match="overlaps the one already there by 7027 km²"):
        write_catalog(a, path, append=True)
    # an overlapping mosaic's catalog: the overlap's craters would be in the file twice
    b = make_catalog([0.0], [31.2], [3.0], attrs={"footprint": box(30.5, -1, 31.5, 1)})
    with pytest.raises(CatalogError, match="counted twice.*convert --bbox"):
        write_catalog(b, path, append=True)
    # without footprints, the craters themselves say it
    plain = write_catalog(make_catalog([0.0, 0.5], [30.5, 30.7], [3.0, 4.0]), tmp_path / "p.gpkg")
    with pytest.raises(CatalogError, match="2 of the 2 craters are already in it"):
        write_catalog(make_catalog([0.5, 0.0], [30.7, 30.5], [4.0, 3.0]), plain, append=True)
    assert path.read_bytes() == before and len(read_catalog(plain)) == 2
    # an overlap that also shares an edge (their intersection a polygon and a line), and the same
    # ground in the other longitude convention, are overlaps too
    edge = make_catalog([0.0], [30.2], [3.0], attrs={"footprint": box(30, -1, 30.5, 0.5)})
    with pytest.raises(CatalogError, match="counted twice"):
        write_catalog(edge, path, append=True)
    across = write_catalog(make_catalog([0.0], [175.0], [3.0], attrs={"footprint": box(170, -1, 190, 1)}),
                           tmp_path / "across.gpkg")
    other = make_catalog([0.0], [-177.0], [3.0], attrs={"footprint": box(-180, -1, -175, 1)})
    with pytest.raises(CatalogError, match="counted twice"):
        write_catalog(other, across, append=True)
    # a neighbour sharing an edge only is appended
    write_catalog(make_catalog([0.0], [31.5], [3.0], attrs={"footprint": box(31, -1, 32, 1)}), path, append=True)
    assert len(read_catalog(path)) == 3
