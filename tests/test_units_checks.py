"""Units and spellings a user can get wrong: diameters in metres, areas in m², diameter floors in
the wrong unit, plot formats, and error messages that name the command line's own flags."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from marscraters import catalog as catalog_module
from marscraters import chronology, cli
from marscraters.catalog import (
    make_catalog,
    read_catalog,
    validate_catalog,
    write_catalog,
)
from marscraters.chronology import model_age, sample_diameters
from marscraters.errors import (
    CatalogValidationError,
    ChronologyError,
    InvalidArgumentError,
    cli_message,
)
from marscraters.evaluate import evaluate

# a Python spelling in a message: keyword=value, marscraters.function(, .set_crs( ...
PYTHON_WORDS = re.compile(r"\b[a-z_][a-z_0-9]*=(?!=)|marscraters\.[a-z_.]+\(|\.set_crs\(|\.rio\.write_crs\(")


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``marscraters ARGV``."""
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def km_catalog(tmp_path):
    """A GeoPackage of 3 craters of 2.4-8.6 km with a count area."""
    path = tmp_path / "m.gpkg"
    write_catalog(make_catalog([10.0, -5.0, 1.0], [20.0, 30.0, 2.0], [2.4, 8.6, 3.0], attrs={"area_km2": 1e5}), path)
    return path


@pytest.fixture
def dated_catalog(tmp_path):
    """A GeoPackage of craters sampled for a 3.5 Ga surface of 2e4 km², which `age` dates."""
    d = sample_diameters(3.5, 2e4, (1.0, 16.0), rng=1)
    rng = np.random.default_rng(0)
    cat = make_catalog(rng.uniform(-1, 1, d.size), rng.uniform(-1, 1, d.size), d, attrs={"area_km2": 2e4})
    path = tmp_path / "cat.gpkg"
    write_catalog(cat, path)
    return path


# ---------------------------------------------------------------------------------------------
# 1. diameters in metres
# ---------------------------------------------------------------------------------------------
def test_diameters_in_metres_are_refused_or_dropped(tmp_path):
    path = tmp_path / "metres.csv"
    path.write_text("lat,lon,diameter\n10,20,2400\n-5,30,8600\n1,2,3\n")
    with pytest.raises(CatalogValidationError, match=r"(?s)row 2: diameter_km=8600 .*metres.*divide .* by 1000"):
        read_catalog(path)
    with pytest.warns(UserWarning, match="metres"):
        cat = read_catalog(path, errors="drop")
    assert cat["diameter_km"].tolist() == [2400.0, 3.0]  # 2400 km is a possible basin: kept
    # the largest basins on Mars (Utopia, ~3,300 km) pass
    validate_catalog(pd.DataFrame({"lat": [47.0], "lon": [110.0], "diameter_km": [3300.0]}))
    assert 3300 < catalog_module.MAX_CRATER_DIAMETER_KM < 8600


def test_convert_refuses_metres_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "metres.csv"
    path.write_text("lat,lon,diameter\n10,20,2400\n-5,30,8600\n")
    out = tmp_path / "metres.gpkg"
    code, _, err = _run(capsys, ["convert", str(path), "--out", str(out)])
    # dropping the rows is no fix for a column in metres: the message offers the division only
    assert code == 2 and "metres" in err and "divide it by 1000" in err and "--errors drop" not in err
    assert "errors=" not in err and not out.exists()


# ---------------------------------------------------------------------------------------------
# 2. an area in m² given as km²
# ---------------------------------------------------------------------------------------------
def test_area_larger_than_mars_is_refused():
    d = sample_diameters(3.5, 2e5, (1.0, 16.0), rng=1)
    assert 1.4e8 < chronology.MARS_SURFACE_KM2 < 1.5e8
    with pytest.raises(ChronologyError, match=r"larger than Mars.*m²"):
        model_age(d, area_km2=1.659e9, diameter_range=(1.0, 16.0))
    model_age(d, area_km2=2e5, diameter_range=(1.0, 16.0))  # a real area still dates


def test_age_cli_refuses_an_area_in_m2(dated_catalog, capsys):
    code, _, err = _run(capsys, ["age", str(dated_catalog), "--area-km2", "1.659e9", "--range", "1", "16"])
    assert code == 2 and "m²" in err and "--area-km2" in err and not PYTHON_WORDS.search(err), err


# ---------------------------------------------------------------------------------------------
# 3. filters that keep nothing say what the catalog holds
# ---------------------------------------------------------------------------------------------
def test_filter_to_nothing_warns_with_the_catalogs_range(km_catalog, tmp_path, capsys):
    code, out, err = _run(capsys, ["convert", str(km_catalog), "--diameter-range", "2000", "16000",
                                   "--out", str(tmp_path / "z.gpkg")])
    assert code == 0 and "wrote 0 craters" in out
    assert "warning:" in err and "2.4-8.6 km" in err and "metres" in err
    code, out, err = _run(capsys, ["convert", str(km_catalog), "--bbox", "100", "10", "110", "20",
                                   "--out", str(tmp_path / "z2.gpkg")])
    assert code == 0 and "warning:" in err and "lon 2..30" in err and "lat -5..10" in err
    # a filter that keeps craters says nothing
    code, out, err = _run(capsys, ["convert", str(km_catalog), "--diameter-range", "2", "16",
                                   "--out", str(tmp_path / "z3.gpkg")])
    assert code == 0 and "wrote 3 craters" in out and "warning" not in err


# ---------------------------------------------------------------------------------------------
# 4. the plot's format is its extension's
# ---------------------------------------------------------------------------------------------
def test_age_plot_honours_the_extension(dated_catalog, tmp_path, capsys):
    base = ["age", str(dated_catalog), "--range", "1", "16"]
    pdf, svg = tmp_path / "csfd.pdf", tmp_path / "csfd.svg"
    assert _run(capsys, [*base, "--plot", str(pdf)])[0] == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert _run(capsys, [*base, "--plot", str(svg)])[0] == 0
    assert b"<svg" in svg.read_bytes()[:1000]
    for bad in ("csfd.txt", "csfd.gpkg"):
        code, out, err = _run(capsys, [*base, "--plot", str(tmp_path / bad)])
        assert code == 2 and "png" in err and "pdf" in err and "svg" in err and not (tmp_path / bad).exists()
        assert "Model age" not in out  # refused before the work


def test_plot_csfd_refuses_an_unknown_format(tmp_path):
    d = sample_diameters(3.5, 2e5, (1.0, 16.0), rng=1)
    fit = model_age(d, area_km2=2e5, diameter_range=(1.0, 16.0))
    with pytest.raises(InvalidArgumentError, match=r"\.txt.*png, .*pdf"):
        fit.plot(out=tmp_path / "csfd.txt")
    fit.plot(out=tmp_path / "csfd.pdf")
    assert (tmp_path / "csfd.pdf").read_bytes().startswith(b"%PDF")


# ---------------------------------------------------------------------------------------------
# 5. messages in the command line's words
# ---------------------------------------------------------------------------------------------
def test_range_errors_name_each_commands_flag(km_catalog, dated_catalog, tmp_path, capsys):
    code, _, err = _run(capsys, ["age", str(dated_catalog), "--range", "16", "2"])
    assert code == 2 and "--range" in err and "diameter_range" not in err and "--diameter-range" not in err
    code, _, err = _run(capsys, ["convert", str(km_catalog), "--diameter-range", "16", "2",
                                 "--out", str(tmp_path / "y.gpkg")])
    assert code == 2 and "--diameter-range" in err and "diameter_range" not in err
    # a command with neither flag: words, not a Python argument
    assert cli_message("diameter_range must have min < max, got (16, 2)", {"--out"}).startswith(
        "the diameter range must")
    assert cli_message("diameter_range=(16, 2) must satisfy 0 <= min_km <= max_km.", {"--diameter-range"}) == (
        "--diameter-range (16, 2) must satisfy 0 <= min_km <= max_km.")


def test_age_area_errors_name_flags(dated_catalog, tmp_path, capsys):
    table = tmp_path / "area.csv"
    table.write_text("lat,lon,diameter\n1,2,3\n")
    code, _, err = _run(capsys, ["age", str(dated_catalog), "--area", str(table), "--range", "1", "16"])
    assert code == 2 and "--area-km2" in err and "area.csv" in err and not PYTHON_WORDS.search(err), err


def test_missing_crs_fixes_are_commands(dated_catalog, km_catalog, tmp_path, capsys):
    import geopandas as gpd
    import shapely

    area = tmp_path / "nocrs.gpkg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyogrio warns that there is no CRS: that is the point
        gpd.GeoDataFrame(geometry=[shapely.box(-1, -1, 1, 1)]).to_file(area)
    code, _, err = _run(capsys, ["age", str(dated_catalog), "--area", str(area), "--range", "1", "16"])
    assert code == 2 and "ogr2ogr -a_srs" in err and "nocrs.gpkg" in err and not PYTHON_WORDS.search(err), err
    # Python users still get a Python fix for an in-memory polygon
    with pytest.raises(Exception, match=r"set_crs\("):
        model_age([1.5, 2.0], area=gpd.GeoDataFrame(geometry=[shapely.box(-1, -1, 1, 1)]),
                  diameter_range=(1.0, 16.0))

    # a cube without a CRS (not written by `ingest`)
    from marscraters.mosaic import mosaic_from_array

    cube = tmp_path / "nocrs.zarr"
    ds = mosaic_from_array(np.ones((8, 8), np.float32), (0, 0, 1, 1))
    ds.drop_vars("spatial_ref").assign(ir=ds["ir"].drop_attrs()).to_zarr(cube, zarr_format=3, consolidated=False)
    code, _, err = _run(capsys, ["convert", str(km_catalog), "--footprint", str(cube), "--out",
                                 str(tmp_path / "f.gpkg")])
    assert code == 2 and "gdal_edit.py -a_srs" in err and "marscraters ingest" in err, err
    assert not PYTHON_WORDS.search(err), err


@pytest.mark.parametrize("message, flags, expected", [
    ("write_catalog writes GeoPackages: give a path ending in .gpkg, got out/q.csv", {"--out", "--max-diameter-px"},
     ("`marscraters catalog` writes a GeoPackage: pass --out out/q.gpkg, then "
      "`marscraters convert out/q.gpkg --out out/q.csv` makes the .csv file")),
    ("write_catalog writes GeoPackages: give a path ending in .gpkg, got q.shp", {"--out"},
     "this command writes GeoPackages: give --out a path ending in .gpkg, got q.shp"),
    ("threshold must be in [0, 1), got 5.0", {"--min-score"}, "--min-score must be in [0, 1), got 5.0"),
    ("the mosaic has no CRS. Attach a Mars CRS, for example ds.rio.write_crs('IAU_2015:49900') for a grid.", set(),
     ("the mosaic has no CRS. Attach a Mars CRS, for example `gdal_edit.py -a_srs IAU_2015:49900 FILE.tif` on "
      "the GeoTIFF (then `marscraters ingest` it again) for a grid.")),
    ("the count area 1.659e+09 km² is larger than Mars: area_km2=1659 (--area-km2 1659).", {"--area-km2"},
     "the count area 1.659e+09 km² is larger than Mars: --area-km2 1659."),
    ("the area in km² (area_km2= / --area-km2).", {"--area-km2"}, "the area in km² (--area-km2 KM2)."),
    ("or pass its size in km² as area_km2=", {"--area-km2"}, "or pass its size in km² as --area-km2 KM2"),
])
def test_cli_spellings(message, flags, expected):
    assert cli_message(message, flags) == expected
    assert not PYTHON_WORDS.search(cli_message(message, flags))


def test_catalog_command_output_suffix_names_convert(tmp_path, capsys):
    from marscraters.mosaic import mosaic_from_array

    yy, xx = np.mgrid[:64, :64]
    prob = np.exp(-((np.hypot(yy - 32, xx - 32) - 10) ** 2) / 4).astype("float32")
    store = tmp_path / "pred.zarr"
    mosaic_from_array(prob, (0, 0, 0.25, 0.25)).rename({"ir": "crater_probability"}).to_zarr(
        store, zarr_format=3, consolidated=False)
    code, _, err = _run(capsys, ["catalog", str(store), "--out", str(tmp_path / "q.csv"), "-q"])
    assert code == 2 and "marscraters convert" in err and "q.gpkg" in err and "write_catalog" not in err, err


# ---------------------------------------------------------------------------------------------
# 6. evaluate: a floor in the wrong unit, a grouping column that is not there
# ---------------------------------------------------------------------------------------------
def test_d_min_above_every_reference_crater_warns(km_catalog, capsys):
    cat = read_catalog(km_catalog)
    with pytest.warns(UserWarning, match=r"no reference crater is at least d_min=16 .*km.*2\.4-8\.6 km"):
        r = evaluate(cat, cat, d_min=16)
    assert np.isnan(r.recall)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        evaluate(cat, cat, rule="all", d_min=16)
    assert sum("no reference crater" in str(w.message) for w in seen) == 1  # once, not once per rule
    code, _, err = _run(capsys, ["evaluate", str(km_catalog), str(km_catalog), "--d-min", "16"])
    assert code == 0 and err.count("warning: no reference crater is at least --d-min 16") == 1, err
    assert not PYTHON_WORDS.search(err), err


def test_evaluate_by_a_missing_column_fails_before_scoring(km_catalog, capsys):
    code, out, err = _run(capsys, ["evaluate", str(km_catalog), str(km_catalog), "--by", "image",
                                   "--bootstrap", "100"])
    assert code == 2 and "image" in err and "P=" not in out, out


# ---------------------------------------------------------------------------------------------
# 7. evaluate refuses invalid rows as the other commands do
# ---------------------------------------------------------------------------------------------
def test_evaluate_refuses_invalid_rows_unless_dropped(km_catalog, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("lat,lon,diameter_km\n10,20,2.4\n95,10,1\n")
    code, out, err = _run(capsys, ["evaluate", str(km_catalog), str(bad), "--rule", "deepmoon"])
    assert code == 2 and "--errors drop" in err and "P=" not in out
    code, out, err = _run(capsys, ["evaluate", str(km_catalog), str(bad), "--rule", "deepmoon", "--errors", "drop"])
    assert code == 0 and "dropped 1 of 2 invalid rows" in err and "P=" in out
    # pixel tables too
    pix = tmp_path / "pix.csv"
    pix.write_text("x,y,diameter_px\n10,10,20\n30,30,-4\n")
    code, out, err = _run(capsys, ["evaluate", str(pix), str(pix), "--rule", "deepmoon"])
    assert code == 2 and "row 2" in err and "--errors drop" in err
    code, out, err = _run(capsys, ["evaluate", str(pix), str(pix), "--rule", "deepmoon", "--errors", "drop"])
    assert code == 0 and "dropped 1 of 2" in err and "P=1.000" in out


# ---------------------------------------------------------------------------------------------
# 8. the help lists what the messages name
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["age", "evaluate"])
def test_help_lists_errors(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert "--errors {raise,drop}" in capsys.readouterr().out


def test_evaluate_says_when_the_two_tables_are_of_different_places():
    import warnings

    from marscraters.catalog import make_catalog
    from marscraters.evaluate import evaluate

    here = make_catalog([1.0, 2.0], [30.0, 31.0], [5.0, 6.0])
    with pytest.warns(UserWarning, match=r"no prediction lies near any reference crater.*same place"):
        assert evaluate(here, make_catalog([40.0], [150.0], [5.0])).recall == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # near, but no match: a detector's miss, nothing to say
        assert evaluate(make_catalog([1.01], [30.0], [30.0]), here).recall == 0.0
