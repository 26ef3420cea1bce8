"""What a command-line user reads: errors that name the CLI's own flags, one-line warnings, help
texts, `info` on every store the package writes, and plain images placed with --bounds."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from marscraters import cli
from marscraters.catalog import make_catalog, write_csv
from marscraters.errors import InvalidArgumentError, TileNameError
from marscraters.mosaic import mosaic_from_array, open_mosaic, read_image

# a Python spelling in a message: keyword=value, marscraters.function(, Class.method
PYTHON_WORDS = re.compile(r"\b[a-z_]+=(?!=)|marscraters\.[a-z_.]+\(|Grid\.lonlat_to_pixel")


def _grey(shape=(120, 160), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, size=shape, dtype=np.uint8)


def _error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# errors name the command line's flags
# ---------------------------------------------------------------------------------------------
def test_errors_name_flags_not_python_keywords(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("lat,lon,diameter_km\n0,10,1\n95,10,1\n")
    err = _error(capsys, ["convert", str(bad), "--out", str(tmp_path / "o.gpkg")])
    assert "--errors drop" in err and "errors='drop'" not in err
    # a command without --errors names the command that has it
    cube = tmp_path / "cube.zarr"
    mosaic_from_array(_grey(), (30, -1, 31, 0)).to_zarr(cube, zarr_format=3, consolidated=False)
    err = _error(capsys, ["browse", str(cube), "--truth", str(bad), "--html", str(tmp_path / "m.html")])
    assert "marscraters convert CATALOG --errors drop" in err and "errors=" not in err

    err = _error(capsys, ["info", str(tmp_path / "nosuch.zarr")])
    assert "marscraters ingest IMAGES --out" in err and "marscraters.ingest(" not in err
    err = _error(capsys, ["convert", str(tmp_path / "nosuch.csv"), "--out", str(tmp_path / "o.gpkg")])
    assert "`marscraters download robbins`" in err and "download_robbins" not in err

    pix = tmp_path / "pix.csv"
    pix.write_text("x,y,diameter_px\n10,10,20\n")
    cat = write_csv(make_catalog([0.0], [10.0], [2.0]), tmp_path / "cat.csv")
    err = _error(capsys, ["evaluate", str(pix), str(cat)])
    assert "marscraters segment" in err and "lonlat_to_pixel" not in err

    err = _error(capsys, ["ingest", str(tmp_path / "x.tif"), "--out", str(cube)])  # the output exists
    assert "--overwrite" in err and "overwrite=True" not in err
    for text in capsys.readouterr().err, err:
        assert not PYTHON_WORDS.search(text), text


def test_download_error_names_base_url_flag_and_leaves_no_lock(tmp_path, capsys):
    from tests.httpserver import closed_port_url

    cache = tmp_path / "cache"
    err = _error(capsys, ["-q", "download", "themis", "--tile", "N-30_030", "--dest", str(cache),
                          "--base-url", closed_port_url()])
    assert "--base-url" in err and "base_url=" not in err
    assert [p.name for p in cache.iterdir()] == []  # no .lock, no .part


def test_python_users_keep_python_words():
    """The rewriting is the CLI's: Python gets the keywords, and each spelling has a CLI form."""
    from marscraters.errors import _CLI_SPELLINGS, cli_message

    msg = "x exists; pass overwrite=True (--overwrite on the command line) to replace it"
    assert cli_message(msg) == "x exists; pass --overwrite to replace it"
    for pattern, text, flag, fallback in _CLI_SPELLINGS:
        assert not PYTHON_WORDS.search(text) and not PYTHON_WORDS.search(fallback), pattern


# ---------------------------------------------------------------------------------------------
# ingest: a missing file, and plain images with --bounds / --crs
# ---------------------------------------------------------------------------------------------
def test_missing_file_is_missing_not_a_bad_tile_name(tmp_path, capsys):
    err = _error(capsys, ["ingest", str(tmp_path / "nosuch.png"), "--out", str(tmp_path / "c.zarr")])
    assert "does not exist" in err and "THEMIS tile name" not in err


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_plain_image_is_ingested_with_bounds(tmp_path, capsys, suffix):
    img = _grey()
    path = tmp_path / f"crop{suffix}"
    Image.fromarray(img).save(path, **({"quality": 100} if suffix == ".jpg" else {}))
    cube = tmp_path / "cube.zarr"
    # without bounds: the error says how to give them
    err = _error(capsys, ["ingest", str(path), "--out", str(cube)])
    assert "--bounds WEST SOUTH EAST NORTH" in err and not PYTHON_WORDS.search(err)
    assert cli.main(["-q", "ingest", str(path), "--bounds", "30", "-0.75", "31", "0", "--out", str(cube)]) == 0
    ds = open_mosaic(cube)
    assert ds.rio.bounds() == pytest.approx((30, -0.75, 31, 0))
    assert 'AUTHORITY["IAU","49900"]' in ds.rio.crs.to_wkt() and ds.attrs["px_per_deg"] == pytest.approx(160)
    pixels = ds["ir"].values
    if suffix == ".png":
        np.testing.assert_array_equal(pixels, img)  # row 0 is the north edge
    else:
        assert np.abs(pixels - img).mean() < 3  # JPEG is lossy
    # the same in Python
    same = read_image(path, bounds=(30, -0.75, 31, 0))
    np.testing.assert_array_equal(same["ir"].values, pixels)
    # a command without --bounds names the one that has it
    err = _error(capsys, ["-q", "demo", "--tile", str(path), "--out", str(tmp_path / "demo")])
    assert "`marscraters ingest FILE --bounds WEST SOUTH EAST NORTH --out cube.zarr`" in err


def test_bounds_with_another_crs_and_refusals(tmp_path, capsys):
    path = tmp_path / "crop.png"
    Image.fromarray(_grey()).save(path)
    cube = tmp_path / "m.zarr"
    assert cli.main(["-q", "ingest", str(path), "--bounds", "0", "-45000", "60000", "0", "--crs", "IAU_2015:49910",
                     "--out", str(cube)]) == 0
    ds = open_mosaic(cube)
    assert 'AUTHORITY["IAU","49910"]' in ds.rio.crs.to_wkt() and ds.rio.bounds() == pytest.approx((0, -45000, 60000, 0))
    err = _error(capsys, ["ingest", str(path), "--crs", "IAU_2015:49910", "--out", str(tmp_path / "x.zarr")])
    assert "--bounds" in err
    err = _error(capsys, ["ingest", str(path), "--bounds", "0", "0", "1", "1", "--crs", "EPSG:4326",
                          "--out", str(tmp_path / "x.zarr")])
    assert "Mars" in err
    # a georeferenced file has its own bounds
    tif = tmp_path / "geo.tif"
    mosaic_from_array(_grey().astype("f4"), (30, -1, 31, 0))["ir"].rio.to_raster(tif)
    with pytest.raises(InvalidArgumentError, match="georeferenced"):
        read_image(tif, bounds=(0, 0, 1, 1))
    with pytest.raises(TileNameError, match="bounds="):
        read_image(path)


# ---------------------------------------------------------------------------------------------
# info on the package's own stores; help texts; -q; warnings
# ---------------------------------------------------------------------------------------------
def test_info_describes_probability_and_target_stores(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    from marscraters import model as mm

    keras.utils.set_random_seed(0)
    model = mm.save_model(mm.symmetric_unet(filter_multiple=0.25, name="tiny"), tmp_path / "tiny.keras")
    cube = tmp_path / "cube.zarr"
    mosaic_from_array(_grey((128, 128)), (30, -0.5, 30.5, 0)).to_zarr(cube, zarr_format=3, consolidated=False)
    pred = tmp_path / "pred.zarr"
    assert cli.main(["-q", "segment", str(cube), "--out", str(pred), "--model", str(model)]) == 0
    cat = write_csv(make_catalog([-0.25], [30.25], [10.0]), tmp_path / "cat.csv")
    targets = tmp_path / "targets.zarr"
    assert cli.main(["-q", "targets", str(cube), "--catalog", str(cat), "--out", str(targets)]) == 0
    capsys.readouterr()
    for store, kind, var in ((pred, "crater probability store", "crater_probability"),
                             (targets, "target layer", "target")):
        assert cli.main(["info", str(store)]) == 0
        out = capsys.readouterr().out
        assert kind in out and var in out and "grid: Grid(" in out


def test_help_texts_and_short_quiet():
    for command, words in (("ingest", "Zarr v3 mosaic cube"), ("info", "Describe a file")):
        text = subprocess.run([sys.executable, "-m", "marscraters", command, "--help"], capture_output=True,
                              text=True, check=True).stdout
        assert words in " ".join(text.split()), command
    parser = cli.build_parser()
    args = parser.parse_args(["catalog", "pred.zarr", "--out", "c.gpkg", "-q"])
    assert args.quiet is True
    help_text = parser._subparsers._group_actions[0].choices["catalog"].format_help()
    assert "-q, --quiet" in help_text
    assert parser.parse_args(["-q", "catalog", "pred.zarr", "--out", "c.gpkg"]).quiet is True


def test_warnings_print_one_line_without_python_source(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("lat,lon,diameter_km\n0,10,1\n95,10,1\n")
    run = subprocess.run([sys.executable, "-m", "marscraters", "convert", str(bad), "--errors", "drop", "--out",
                          str(tmp_path / "o.gpkg")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("warning: ") for line in lines), run.stderr
    assert "dropped 1 of 2 invalid rows" in lines[0] and ".py" not in run.stderr
