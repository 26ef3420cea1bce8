"""Command-line fixes: craters scored image by image, `demo` that keeps the user's files, finite
`convert` numbers, errors that name flags instead of Python parameters, `demo --window` without
a tile, and `download themis` that keeps only PNGs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marscraters import cli
from marscraters.catalog import make_catalog, write_csv
from marscraters.errors import (
    DownloadError,
    InvalidArgumentError,
    OutputExistsError,
    cli_message,
)
from marscraters.evaluate import evaluate, match_craters, side_by_side

ROOT = Path(__file__).resolve().parents[1]
# a Python spelling in a message: keyword=value, marscraters.function( (as tests/test_cli_messages.py)
PYTHON_WORDS = re.compile(r"\b[a-z_]+=(?!=)|marscraters\.[a-z_.]+\(")


def _error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    return capsys.readouterr().err


def _parse_error(capsys, argv) -> str:
    """argparse's own refusal (exit 2 before the command runs)."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# 1. pixel tables of several images are matched image by image
# ---------------------------------------------------------------------------------------------
def _images(n_images=12, seed=0):
    """What `detect` writes for several images (x, y in each image's own pixels, an `image`
    column), and a reference of the same images: six craters on a grid, 50 px to the right on
    every other image, so that no crater of one image is where its neighbour has one."""
    rng = np.random.default_rng(seed)
    names = [f"imgs/chip{i}.jpg" for i in range(n_images)]
    gx, gy = (v.ravel() for v in np.meshgrid([60.0, 160.0, 260.0], [60.0, 160.0]))
    truth = pd.concat([pd.DataFrame({"image": name, "x": gx + 50.0 * (i % 2), "y": gy,
                                     "diameter_px": rng.uniform(16, 40, gx.size)}) for i, name in enumerate(names)],
                      ignore_index=True)
    found = truth.assign(x=truth["x"] + 0.5, score=0.9)
    # the same detections named after the next image: none is on its reference's image
    swapped = found.assign(image=found["image"].map(dict(zip(names, names[1:] + names[:1]))))
    return found, swapped, truth


def test_evaluate_matches_only_within_each_image():
    found, swapped, truth = _images()
    assert evaluate(found, truth).f1 == 1.0
    wrong = evaluate(swapped, truth, rule="all")
    for result in wrong.values():
        assert (result.n_pred_matched, result.n_truth_matched) == (0, 0)
    assert match_craters(swapped, truth).empty and len(match_craters(found, truth)) == len(truth)
    # the same counts as the tables laid side by side, image after image
    images = sorted(truth["image"].unique())
    apart = [side_by_side([t[t["image"] == i] for i in images], images=images) for t in (swapped, truth)]
    shifted = evaluate(*apart)
    assert (shifted.n_pred_matched, shifted.n_truth_matched) == (0, 0)
    # an unbounded search radius (pycda with a threshold >= 1) stays within the image too
    loose = {"rule": "pycda", "threshold": 2.0}
    assert len(match_craters(swapped, truth, **loose)) == len(match_craters(*apart, **loose))
    # image=None: the old matching on x, y alone (tables already in one frame)
    assert evaluate(swapped, truth, image=None).n_pred_matched > 0
    # geographic catalogs ignore the column: lat/lon are one frame for every image
    cat = make_catalog([0.0, 1.0], [10.0, 11.0], [2.0, 3.0]).assign(image=["a", "b"])
    assert evaluate(cat.assign(image=["b", "a"]), cat).f1 == 1.0


@pytest.mark.parametrize(("pred_images", "truth_images", "match"), [
    (None, ["A", "B"], "predicted craters have no 'image' column"),
    (["A", "B"], None, "reference craters have no 'image' column"),
    (["C", "D"], ["A", "B"], "name different images"),
    ([np.nan, "B"], ["A", "B"], "1 predicted craters have no 'image'"),
])
def test_evaluate_refuses_images_it_cannot_tell_apart(pred_images, truth_images, match):
    table = pd.DataFrame({"x": [20.0, 60.0], "y": [20.0, 60.0], "diameter_px": [10.0, 20.0]})
    pred = table if pred_images is None else table.assign(image=pred_images)
    truth = table if truth_images is None else table.assign(image=truth_images)
    with pytest.raises(InvalidArgumentError, match=match):
        evaluate(pred, truth)


def test_one_image_without_an_image_column_is_scored_as_before():
    table = pd.DataFrame({"x": [20.0, 60.0], "y": [20.0, 60.0], "diameter_px": [10.0, 20.0]})
    assert evaluate(table.assign(image="A"), table).f1 == 1.0
    assert evaluate(table, table.assign(image="A")).f1 == 1.0
    assert evaluate(pd.DataFrame(), table.assign(image=["A", "B"])).n_pred == 0  # no detections at all


def test_cli_evaluate_scores_detect_csvs_image_by_image(tmp_path, capsys):
    found, swapped, truth = _images()
    for name, table in (("found", found), ("swapped", swapped), ("truth", truth)):
        table.to_csv(tmp_path / f"{name}.csv", index=False)
    args = [str(tmp_path / "truth.csv"), "--rule", "deepmoon", "--by", "image", "--bootstrap", "50"]
    assert cli.main(["evaluate", str(tmp_path / "found.csv"), *args]) == 0
    assert "P=1.000 R=1.000" in capsys.readouterr().out
    assert cli.main(["evaluate", str(tmp_path / "swapped.csv"), *args]) == 0
    out = capsys.readouterr().out
    assert "P=0.000 R=0.000 F1=0.000 (0/72 predictions, 0/72 catalog craters)" in out
    assert "95 % intervals from 50 resamples of 12 image groups" in out
    # a reference without the column beside detections of several images: refused in CLI words
    truth.drop(columns="image").to_csv(tmp_path / "plain.csv", index=False)
    err = _error(capsys, ["evaluate", str(tmp_path / "found.csv"), str(tmp_path / "plain.csv")])
    assert "no 'image' column" in err and "one image at a time" in err
    assert not PYTHON_WORDS.search(err), err


def test_cli_evaluate_matches_pixel_tables_by_the_by_column_without_an_image_column(tmp_path, capsys):
    _, swapped, truth = _images()
    for name, table in (("swapped", swapped), ("truth", truth)):
        table.rename(columns={"image": "chip"}).to_csv(tmp_path / f"{name}.csv", index=False)
    assert cli.main(["evaluate", str(tmp_path / "swapped.csv"), str(tmp_path / "truth.csv"), "--rule", "iou",
                     "--by", "chip", "--bootstrap", "20"]) == 0
    assert "P=0.000 R=0.000" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# 2. demo --out refuses to replace what the folder holds
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path):
    """A folder of the user's own work, with files of the names the demo writes."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "summary.json").write_text("my own count, 3 days of work\n")
    write_csv(make_catalog([0.0], [10.0], [2.0]), folder / "craters.csv")
    (folder / "craters.gpkg").write_bytes(b"not really a geopackage")
    return folder


def _held(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_demo_refuses_a_folder_holding_its_outputs(project, capsys):
    from marscraters.demo import run_demo

    before = _held(project)
    with pytest.raises(OutputExistsError, match=r"craters\.gpkg, summary\.json.*overwrite=True"):
        run_demo(project, progress=False)  # safe by default for Python callers too
    err = _error(capsys, ["-q", "demo", "--out", str(project)])
    assert "craters.gpkg, summary.json" in err and "pass --overwrite" in err
    assert not PYTHON_WORDS.search(err), err
    assert _held(project) == before  # nothing replaced, nothing added


def test_demo_passes_overwrite_and_other_files_do_not_block_it(project, tmp_path, monkeypatch, capsys):
    from marscraters import demo

    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda out, **kw: calls.append((out, kw)) or {})
    assert cli.main(["-q", "demo", "--out", str(project), "--overwrite"]) == 0
    assert cli.main(["-q", "demo", "--out", str(tmp_path / "new")]) == 0
    assert [kw["overwrite"] for _, kw in calls] == [True, False]
    monkeypatch.undo()
    # files of other names (the user's notes, a CSV) do not stop a demo
    demo._check_outputs(tmp_path, synthetic=True, truth=True)
    with pytest.raises(OutputExistsError, match="truth.gpkg"):
        (tmp_path / "truth.gpkg").write_text("x")
        demo._check_outputs(tmp_path, synthetic=True, truth=True)
    demo._check_outputs(tmp_path, synthetic=False, truth=False)  # a tile without --truth writes none


def test_dev_demo_replaces_its_own_demo_out_but_not_a_named_folder(monkeypatch):
    spec = importlib.util.spec_from_file_location("dev_for_fixes", ROOT / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    commands = []
    monkeypatch.setattr(dev, "setup", lambda extras: Path("python"))
    monkeypatch.setattr(dev.subprocess, "call", lambda cmd, **kw: commands.append(cmd) or 0)
    assert dev.main(["demo"]) == 0 and dev.main(["demo", "--out", "/tmp/mine"]) == 0
    assert dev.main(["demo", "--out=/tmp/mine"]) == 0
    assert commands[0][-2:] == ["demo", "--overwrite"]  # a second `python3 dev.py demo` works
    assert all("--overwrite" not in c for c in commands[1:])


# ---------------------------------------------------------------------------------------------
# 6. convert: --area-km2 and --bbox must be finite (and the area > 0)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("flags", "flag"), [
    (["--area-km2", "-5"], "--area-km2"), (["--area-km2", "0"], "--area-km2"),
    (["--area-km2", "nan"], "--area-km2"), (["--area-km2", "inf"], "--area-km2"),
    (["--bbox", "nan", "6", "-179", "7"], "--bbox"), (["--bbox", "-180", "6", "inf", "7"], "--bbox"),
])
def test_convert_refuses_bad_area_and_bbox_at_parse_time(tmp_path, capsys, flags, flag):
    src = write_csv(make_catalog([6.5, 6.6], [-179.5, 10.0], [2.0, 3.0]), tmp_path / "t.csv")
    out = tmp_path / "a.gpkg"
    err = _parse_error(capsys, ["convert", str(src), "--out", str(out), *flags])
    assert f"argument {flag}: {flag} must be" in err
    assert not out.exists()
    assert cli.main(["-q", "convert", str(src), "--out", str(out), "--area-km2", "12.5",
                     "--bbox", "-180", "6", "-179", "7"]) == 0  # good values still pass


# ---------------------------------------------------------------------------------------------
# 8. errors and warnings name the running command's flags
# ---------------------------------------------------------------------------------------------
#: (command, the Python message, what the command line shows, the Python name it must not show)
REPORTED = [
    ("ingest", "chunk must be a positive int, got 0", "--chunk must", "chunk"),
    ("segment", "batch_size must be a positive integer, got 0", "--batch-size must", "batch_size"),
    ("segment", "tile must be a positive integer, got -3", "--tile must", "tile"),
    ("segment", "depth must be a non-negative integer, got -5", "--depth must", "depth"),
    ("segment", "nodata_fill must be finite, got nan", "--nodata-fill must", "nodata_fill"),
    ("segment", "gpus must be 'auto' or a non-negative integer, got -1", "--gpus must", "gpus"),
    ("chips", "size must be a whole number of pixels >= 32, got 0", "--size must", "size"),
    ("convert", "area_km2 must be > 0, got -5.0", "--area-km2 must", "area_km2"),
    ("convert", "bbox must have -90 <= south <= north <= 90, got south=7.0, north=6.0", "--bbox must", "bbox"),
    ("age", ("no detector response at missing.json: calibrate one with benchmarks/calibrate_response.py "
             "(marscraters.chronology.fit_response) or pass response=None to date the catalog as a complete count"),
     "or leave out --response to date the catalog", "response"),
    ("demo", "truth= is for a real tile (tile=...); the synthetic demo brings its own truth",
     "--truth is for a real tile (--tile TILE); the synthetic", "truth"),
    ("browse", "resolution must be at least 16 pixels, got 5", "--resolution must", "resolution"),
    ("train", "crop=100 must be a multiple of 128", "--crop 100 must", "crop"),
    ("train", "workers=0 must be at least 1 (threads preparing batches)", "--workers 0 must", "workers"),
    ("train", "filter_multiple must be a positive number, got 0.0", "--filter-multiple must", "filter_multiple"),
    ("train", "kernel_size must be a positive odd integer (the paper uses 3, 7 and 11), got 0", "--kernel-size must",
     "kernel_size"),
    ("train", "weight_small_craters_px must be >= 0 pixels (0 = off), got -3.0", "--weight-small-craters must",
     "weight_small_craters_px"),
    ("train", "need n >= 0 and size >= 8, got n=-3, size=128", "got --dots -3, --crop 128", "size"),
    ("train", "n, the number of synthetic dot images, must be a whole number >= 1, got -3; e.g. n=128",
     "--dots, the number of synthetic dot images, must be a whole number >= 1, got -3; e.g. --dots 128", "n"),
    ("experiments", "n_train and n_val must be >= 1, got 0 and 32", "--n-train and --n-val must", "n_val"),
    ("experiments", "size=100 must be a positive multiple of 128 (the UNet pools 7 times)", "--size 100 must", "size"),
    ("segment", "pass resume=False to start again", "pass --no-resume to start", "resume"),
    ("evaluate", "n_boot must be a whole number >= 10, got 3", "--bootstrap must", "n_boot"),
    ("detect", "pixel_size_m=5 is outside 1-1000 m per pixel", "--pixel-size 5 is outside", "pixel_size_m"),
]


@pytest.mark.parametrize(("command", "message", "shown", "name"), REPORTED, ids=[r[1][:30] for r in REPORTED])
def test_every_reported_message_names_the_flag(command, message, shown, name):
    parser = cli.build_parser()
    text = cli_message(message, cli._command_flags(parser, command), names=cli._command_names(parser, command))
    assert shown in text, text
    assert not re.search(rf"(?<![-\w]){name}(?:=| must\b|, the)", text), text


@pytest.mark.parametrize(("message", "names"), [
    ("the tile must be one of the 72 tiles; tiles must be PNGs; a size must be given", {"tile", "size"}),
    ("see https://example.org/?tile=3 and /data/size=3/x.tif, or --nodata=-3", {"tile", "size", "nodata"}),
    ("keep one catalog's craters (filter_catalog(catalog, bbox=...) or `marscraters convert --bbox`)", {"bbox"}),
    ("tile_size must be even; outsize must be 3; tile==3", {"tile", "size"}),
])
def test_words_that_only_look_like_parameters_are_left_alone(message, names):
    assert cli_message(message, names={n: "--" + n for n in names}) == message


def test_the_fixed_spellings_still_come_first():
    names = cli._command_names(cli.build_parser(), "ingest")
    msg = "x.zarr already exists. Choose another output path, or pass overwrite=True (--overwrite on the command line)"
    assert cli_message(msg, names=names).endswith("or pass --overwrite")
    assert cli_message("bad rows; pass errors='drop' to drop them", {"--errors"}, names={"errors": "--errors"}) == (
        "bad rows; pass --errors drop to drop them")
    # a Python spelling beside the CLI's is dropped, not rewritten into a flag
    assert cli_message("date it on the imaged ground (--area unit.gpkg; Python area=polygon)",
                       names={"area": "--area"}) == "date it on the imaged ground (--area unit.gpkg)"


def test_real_commands_print_flags(tmp_path, capsys):
    img = tmp_path / "crop.png"
    Image.fromarray(np.random.default_rng(0).integers(1, 255, (64, 64), dtype=np.uint8)).save(img)
    err = _error(capsys, ["-q", "ingest", str(img), "--bounds", "30", "-0.5", "30.5", "0", "--out",
                          str(tmp_path / "c.zarr"), "--chunk", "0"])
    assert "--chunk must be" in err and not PYTHON_WORDS.search(err), err
    cat = write_csv(make_catalog([0.1, 0.2], [10.1, 10.2], [3.0, 4.0]), tmp_path / "cat.csv")
    err = _error(capsys, ["-q", "age", str(cat), "--area-km2", "100", "--range", "2", "16", "--response",
                          str(tmp_path / "missing.json")])
    assert "leave out --response" in err and "response=" not in err, err
    err = _error(capsys, ["-q", "demo", "--out", str(tmp_path / "d"), "--truth", str(cat)])
    assert "--truth is for a real tile (--tile TILE)" in err and not PYTHON_WORDS.search(err), err


# ---------------------------------------------------------------------------------------------
# 9. demo --window needs --tile; download themis keeps PNGs only
# ---------------------------------------------------------------------------------------------
def test_demo_window_without_a_tile_is_refused(tmp_path, capsys):
    from marscraters.demo import run_demo

    with pytest.raises(InvalidArgumentError, match=r"window= cuts a part of a real tile \(tile=\.\.\.\)"):
        run_demo(tmp_path / "d", window=(30, -1, 31, 0), progress=False)
    err = _error(capsys, ["-q", "demo", "--out", str(tmp_path / "d"), "--window", "30", "-1", "31", "0"])
    assert "--window cuts a part of a real tile (--tile TILE)" in err and not PYTHON_WORDS.search(err), err
    assert not (tmp_path / "d").exists()


TILE = "thm_dir_N-30_030.png"


@pytest.fixture
def server():
    from tests.httpserver import FileServer

    with FileServer() as srv:
        srv.files[TILE] = b"<html>we moved</html>\n"  # answered 200, as a misconfigured mirror does
        yield srv


def _png() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_download_themis_refuses_a_body_that_is_no_png(server, tmp_path, capsys, monkeypatch):
    from marscraters import download as dl

    for var in (dl.ENV_CACHE, dl.ENV_THEMIS_URL):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DownloadError, match=r"thm_dir_N-30_030\.png downloaded from .* is not a PNG.*deleted"):
        dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing kept, so the next call downloads again
    err = _error(capsys, ["-q", "download", "themis", "--tile", "N-30_030", "--dest", str(tmp_path),
                          "--base-url", server.url])
    assert "is not a PNG" in err and "--base-url" in err and "base_url=" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_cached_file_that_is_no_png_is_downloaded_again(server, tmp_path, monkeypatch):
    from marscraters import download as dl

    monkeypatch.delenv(dl.ENV_THEMIS_URL, raising=False)
    (tmp_path / TILE).write_bytes(b"<html>we moved</html>\n")  # kept by an earlier version
    server.files[TILE] = png = _png()
    path = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert path.read_bytes() == png and len(server.gets(TILE)) == 1
    dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert len(server.gets(TILE)) == 1  # a good PNG is the cache: no request


# --------------------------------------------------------------------------------------------
# catalog inputs on the command line: --value-range before the images, --layer, pixel tables
# --------------------------------------------------------------------------------------------


def test_value_range_before_the_image_leaves_the_image_to_detect():
    from marscraters.cli import _join_value_range

    assert _join_value_range(["detect", "--value-range", "0", "255", "a.png", "b.png"]) == [
        "detect", "--value-range=0 255", "a.png", "b.png"]
    assert _join_value_range(["detect", "--value-range", "auto", "a.png"]) == ["detect", "--value-range=auto", "a.png"]
    # a negative LOW is no option; a missing HIGH leaves the image alone, for _value_range to name
    assert _join_value_range(["--value-range", "-1", "1", "a.png"]) == ["--value-range=-1 1", "a.png"]
    assert _join_value_range(["--value-range", "255", "a.png"]) == ["--value-range=255", "a.png"]


def test_detect_reads_the_images_after_value_range(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from marscraters.cli import main

    img = tmp_path / "flat.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 100 + 80).astype(np.uint8)).save(img)
    out = tmp_path / "c.csv"
    # it used to stop at 'the following arguments are required: image'
    assert main(["detect", "--value-range", "0", "255", str(img), "--pixel-size", "100", "--out", str(out)]) == 0
    assert out.exists()
    assert main(["detect", "--value-range", "255", str(img), "--pixel-size", "100", "--out", str(tmp_path / "d.csv")]) == 2
    assert "--value-range 255: give two numbers LOW HIGH" in capsys.readouterr().err


def _two_layers(path, crs="IAU_2015:49900"):
    import geopandas as gpd
    from shapely.geometry import Point

    for layer, lon in (("a", 10.0), ("b", 20.0)):
        gpd.GeoDataFrame({"diameter_km": [2.0]}, geometry=[Point(lon, 5.0)], crs=crs).to_file(path, layer=layer)
    return path


def test_convert_reads_the_layer_given_and_other_commands_name_it(tmp_path, capsys):
    from marscraters.catalog import read_catalog
    from marscraters.cli import main

    src = _two_layers(tmp_path / "two.gpkg")
    assert main(["age", str(src), "--area-km2", "100", "--range", "1", "4"]) == 2
    assert "`marscraters convert FILE --layer NAME --out craters.gpkg`" in capsys.readouterr().err
    assert main(["convert", str(src), "--out", str(tmp_path / "x.gpkg")]) == 2
    assert "Pass --layer NAME to choose one" in capsys.readouterr().err
    assert main(["convert", str(src), "--layer", "b", "--out", str(tmp_path / "b.gpkg")]) == 0
    assert read_catalog(tmp_path / "b.gpkg")["lon"].tolist() == [20.0]


def test_a_catalog_in_wgs84_is_told_to_assign_the_mars_crs_not_to_fix_a_geotiff(tmp_path, capsys):
    from marscraters.cli import main

    src = _two_layers(tmp_path / "w.gpkg", crs="EPSG:4326")
    assert main(["convert", str(src), "--layer", "a", "--out", str(tmp_path / "x.gpkg")]) == 2
    err = capsys.readouterr().err
    assert "ogr2ogr -a_srs IAU_2015:49900" in err and "gdal_edit" not in err and "rio.write_crs" not in err


def test_evaluate_reads_pixel_tables_of_any_delimiter_and_case(tmp_path, capsys):
    from marscraters.cli import main

    pred = tmp_path / "pred.tsv"
    pred.write_text("X\tY\tDiameter_px\n10\t10\t20\n")
    truth = tmp_path / "truth.csv"
    truth.write_text("x;y;diameter_px\n11;10;20\n")
    assert main(["evaluate", str(pred), str(truth)]) == 0
    assert "P=1.000 R=1.000" in capsys.readouterr().out
