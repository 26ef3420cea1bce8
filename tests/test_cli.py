"""The ``marscraters`` command line, run for real on small files (in-process, plus one subprocess)."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from marscraters import cli
from marscraters.catalog import make_catalog, read_catalog, write_csv
from marscraters.targets import catalog_pixels
from marscraters.mosaic import open_mosaic


@pytest.fixture
def tile(tmp_path):
    """A reduced-resolution THEMIS tile (240 px = 8 px/deg) with a no-data streak."""
    rng = np.random.default_rng(0)
    img = rng.integers(1, 255, size=(240, 240), dtype=np.uint8)
    img[:, 100:104] = 0
    path = tmp_path / "thm_dir_N-30_030.png"
    Image.fromarray(img).save(path)
    return path


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "marscraters", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("marscraters ")


def test_ingest_then_info_then_targets(tile, tmp_path, capsys):
    cube = tmp_path / "cube.zarr"
    assert cli.main(["-q", "ingest", str(tile), "--out", str(cube)]) == 0
    ds = open_mosaic(cube)
    assert ds.rio.crs is not None and ds.sizes == {"y": 240, "x": 240}
    assert int(ds["ir"].isnull().sum()) == 240 * 4
    # existing output without --overwrite: a clear error and exit code 2, the cube untouched
    assert cli.main(["-q", "ingest", str(tile), "--out", str(cube)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["info", str(cube)]) == 0

    cat = make_catalog([-15.0, -10.0], [45.0, 40.0], [60.0, 30.0])
    csv = write_csv(cat, tmp_path / "cat.csv")
    capsys.readouterr()
    assert cli.main(["info", str(csv)]) == 0 and "2 craters; attrs" in capsys.readouterr().out
    # the pixel craters `detect` writes are described too
    pd.DataFrame({"x": [10.0, 40.0], "y": [20.0, 50.0], "diameter_px": [30.0, 16.0], "score": [0.9, 0.7]}).to_csv(
        tmp_path / "det.csv", index=False)
    assert cli.main(["info", str(tmp_path / "det.csv")]) == 0
    assert "2 craters (pixel coordinates)" in capsys.readouterr().out
    out = tmp_path / "t.zarr"
    capsys.readouterr()
    assert cli.main(["-q", "targets", str(cube), "--catalog", str(csv), "--kind", "outline", "--out", str(out)]) == 0
    assert "targets of 2 craters (of the catalog's 2)" in capsys.readouterr().out
    # a crater far off the mosaic is not among those drawn
    wider = write_csv(make_catalog([-15.0, -10.0, 20.0], [45.0, 40.0, 100.0], [60.0, 30.0, 10.0]), tmp_path / "w.csv")
    assert len(catalog_pixels(ds, read_catalog(wider), inside="overlap")) == 2
    assert cli.main(["-q", "targets", str(cube), "--catalog", str(wider), "--out", str(tmp_path / "t2.zarr")]) == 0
    assert "targets of 2 craters (of the catalog's 3)" in capsys.readouterr().out
    store = xr.open_zarr(out, consolidated=False)
    assert store["target"].encoding["chunks"] == (240, 240)  # min(512, size): never wider than 512
    target = store["target"].values
    assert target.shape == (240, 240) and target.max() == 1
    # the centre of a crater is inside the outline's hole, the rim is drawn
    row, col = 15 * 8 - 0.5, 15 * 8 - 0.5
    assert target[int(row), int(col)] == 0
    assert target[int(row), int(col + 30 / 59.27 * 8 / np.cos(np.radians(15)) * 0.85)] == 1


def test_convert_filters_and_writes_formats(tmp_path, capsys):
    cat = make_catalog([0.0, 1.0, 2.0, 50.0], [10.0, 11.0, 190.0, 12.0], [1.0, 5.0, 10.0, 40.0])
    src = write_csv(cat, tmp_path / "in.csv")
    gpkg = tmp_path / "out.gpkg"
    assert cli.main(["convert", str(src), "--diameter-range", "2", "32", "--out", str(gpkg)]) == 0
    back = read_catalog(gpkg)
    assert sorted(back["diameter_km"]) == [5.0, 10.0]
    diam = tmp_path / "out.diam"
    assert cli.main(["convert", str(src), "--out", str(diam)]) == 2  # no area
    assert "--area-km2" in capsys.readouterr().err
    assert cli.main(["convert", str(src), "--area-km2", "1000", "--out", str(diam)]) == 0
    assert read_catalog(diam).attrs["area_km2"] == pytest.approx(1000)
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "x.xyz")]) == 2
    assert cli.main(["download", "themis", "--dest", str(tmp_path)]) == 2  # no --tile


def test_bad_catalog_row_names_the_row(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("lat,lon,diameter_km\n0,10,1\n95,10,1\n0,10,-2\n")
    assert cli.main(["convert", str(bad), "--out", str(tmp_path / "o.gpkg")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "2" in err and "3" in err
    assert cli.main(["convert", str(bad), "--errors", "drop", "--out", str(tmp_path / "o.gpkg")]) == 0
    assert len(read_catalog(tmp_path / "o.gpkg")) == 1


def test_evaluate_d_min_zero_says_how_to_have_no_floor(tmp_path, capsys):
    """--d-min 0 is refused by the parser (no file is read), naming the way to score without a floor."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", str(tmp_path / "p.csv"), str(tmp_path / "t.csv"), "--d-min", "0"])
    assert exc.value.code == 2
    assert "--d-min must be a diameter > 0 (leave it out for no floor), got 0" in capsys.readouterr().err


def test_evaluate_scores_against_a_chips_yolo_labels(tmp_path, capsys):
    """A chip's YOLO .txt labels are a truth table: the size comes from its image or --image-size."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.zeros((200, 400), np.uint8)).save(tmp_path / "images" / "crater1.png")
    # two craters: 40 px at (100, 50) and 20 px at (300, 150), in fractions of 400 x 200
    (tmp_path / "labels" / "crater1.txt").write_text("0 0.25125 0.2525 0.1 0.2\n0 0.75125 0.7525 0.05 0.1\n")
    pred = tmp_path / "pred.csv"
    pred.write_text("x,y,diameter_px,score\n100,50,40,0.9\n10,10,30,0.8\n")
    out = tmp_path / "s.json"
    assert cli.main(["evaluate", str(pred), str(tmp_path / "labels" / "crater1.txt"), "--rule", "deepmoon",
                     "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert (scores["n_truth"], scores["n_truth_matched"], scores["n_pred"], scores["n_pred_matched"]) == (2, 1, 2, 1)
    assert scores["median_position_error"] == pytest.approx(0, abs=1e-6)  # the fractions were read at 400 x 200
    # a wrong size puts the truths elsewhere: nothing matches
    assert cli.main(["evaluate", str(pred), str(tmp_path / "labels" / "crater1.txt"), "--rule", "deepmoon",
                     "--image-size", "800", "400", "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["n_truth_matched"] == 0
    capsys.readouterr()
    (tmp_path / "images" / "crater1.png").unlink()
    assert cli.main(["evaluate", str(pred), str(tmp_path / "labels" / "crater1.txt")]) == 2
    assert "--image-size WIDTH HEIGHT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["evaluate", str(pred), str(tmp_path / "labels" / "crater1.txt"), "--image-size", "400", "2.5"])
    assert "--image-size must be a whole number of pixels > 0, got 2.5" in capsys.readouterr().err
    # labels as the detections too (any case of the suffix), scored against themselves
    upper = tmp_path / "labels" / "CRATER1.TXT"
    upper.write_text((tmp_path / "labels" / "crater1.txt").read_text())
    assert cli.main(["evaluate", str(upper), str(tmp_path / "labels" / "crater1.txt"), "--image-size", "400", "200",
                     "--rule", "iou", "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["f1"] == 1.0
    # a text catalog with a .txt suffix is still a catalog, and --image-size is refused for it
    cat = tmp_path / "robbins.txt"
    cat.write_text("lat,lon,diameter_km\n0,10,2\n1,11,3\n")
    assert cli.main(["evaluate", str(cat), str(cat), "--json", str(out), "--overwrite", "--rule", "deepmoon"]) == 0
    assert json.loads(out.read_text())["n_truth_matched"] == 2
    assert cli.main(["evaluate", str(cat), str(cat), "--image-size", "400", "200"]) == 2
    assert "neither" in capsys.readouterr().err


def test_unknown_catalog_columns_name_the_columns_to_use(tmp_path, capsys):
    odd = tmp_path / "odd.csv"
    odd.write_text("y,x,size\n0,10,1\n")
    assert cli.main(["convert", str(odd), "--out", str(tmp_path / "o.gpkg")]) == 2
    err = capsys.readouterr().err
    assert "[y, x, size]" in err and "Rename the columns to lat, lon, diameter_km" in err and "format=" not in err


def test_demo_runs_end_to_end(tmp_path):
    assert cli.main(["-q", "demo", "--out", str(tmp_path / "demo")]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    truth = read_catalog(tmp_path / "demo" / "truth.gpkg")
    assert len(truth) == summary["craters_in_truth"] > 200
    # the shipped model ran on a local Dask cluster and its catalog was written and scored
    detected = read_catalog(tmp_path / "demo" / "craters.gpkg")
    assert len(detected) == summary["craters_detected"] > 0
    assert {"crater_id", "lat", "lon", "diameter_km", "score", "model_name"} <= set(detected.columns)
    # the catalog records the area it was dated on, so `marscraters age craters.gpkg` needs none
    assert detected.attrs["area_km2"] == pytest.approx(summary["area_km2"], abs=0.1)
    assert 0.0 <= summary["f1_deepmoon"] <= 1.0 and summary["recall_deepmoon"] > 0
    # the surface was dated from both catalogs, against its true age
    assert summary["true_age_ga"] == 3.7
    assert abs(summary["model_age_truth_error_pct"]) < 10
    assert 0 < summary["model_age_detected_ga"] < 4.5 and summary["model_age_detected_n"] > 0
    # and the same detections through the shipped model's detector response
    assert summary["detector_response"] == summary["model"]
    assert summary["model_age_corrected_n"] == summary["model_age_detected_n"]
    assert 0 < summary["model_age_corrected_ga"] < 4.5
    for fig in summary["figures"]:
        assert Path(fig).stat().st_size > 10_000
    page = Path(summary["map"]).read_text()
    assert "bokeh" in page.lower() and "cdn.holoviz.org" not in page


def test_demo_on_a_real_style_geotiff_with_a_reference_catalog(tmp_path):
    # a 231 m/px Mars GeoTIFF (the global mosaic's scale): the demo resamples it to the model's
    # ~100 m/px, runs the same pipeline, and scores against the given catalog
    from marscraters.catalog import write_catalog
    from marscraters.synthetic import synthetic_surface

    surface = synthetic_surface((40.0, -1.2, 41.2, 0.0), 256.0, age_ga=3.8, seed=3)
    tif = tmp_path / "mosaic.tif"
    surface.mosaic["ir"].fillna(0).astype("uint8").rio.write_nodata(0).rio.to_raster(tif)
    ref = write_catalog(surface.catalog, tmp_path / "ref.gpkg")
    out = tmp_path / "real"
    assert cli.main(["-q", "demo", "--tile", str(tif), "--truth", str(ref), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"] == str(tif) and "true_age_ga" not in summary
    ny, nx = summary["cube_shape"]
    # all of the tile's 1.2 deg (307 px at 256 px/deg, none dropped), at 592.7 px/deg
    from marscraters.crs import pixel_scale_m

    assert surface.mosaic.sizes["x"] == surface.mosaic.sizes["y"] == 307
    assert nx == ny == int(round(307 * pixel_scale_m(256.0) / 100.0))
    assert summary["craters_in_truth"] == len(read_catalog(out / "truth.gpkg")) > 0
    assert "f1_deepmoon" in summary and (out / "craters.gpkg").exists()
    assert cli.main(["-q", "demo", "--truth", str(ref), "--out", str(out)]) == 2  # truth needs --tile


def test_download_then_ingest_through_a_local_server(tmp_path, tile):
    """`download themis` fetches a tile from a real HTTP server on 127.0.0.1; `ingest` reads it."""
    from tests.httpserver import FileServer

    with FileServer(files={"thm_dir_N-30_030.png": tile.read_bytes()}) as server:
        args = ["-q", "download", "themis", "--tile", "N-30_030", "--dest", str(tmp_path / "cache"), "--base-url", server.url]
        assert cli.main(args) == 0
        assert cli.main(args) == 0  # cached: no second request
        assert len(server.gets("thm_dir_N-30_030.png")) == 1
    got = next((tmp_path / "cache").rglob("thm_dir_N-30_030.png"))
    assert got.read_bytes() == tile.read_bytes()
    assert cli.main(["-q", "ingest", str(got), "--out", str(tmp_path / "c.zarr")]) == 0
    assert open_mosaic(tmp_path / "c.zarr").rio.bounds() == pytest.approx((30, -30, 60, 0))


def test_age_from_a_gpkg_count_and_a_diam_file(tmp_path, capsys):
    from marscraters.catalog import write_catalog, write_craterstats
    from marscraters.chronology import sample_diameters

    rng = np.random.default_rng(4)
    area = 2.0e5
    d = sample_diameters(3.0, area, (1.0, 64.0), rng=rng)
    cat = make_catalog(rng.uniform(-5, 5, d.size), rng.uniform(0, 10, d.size), d)
    gpkg = write_catalog(cat, tmp_path / "count.gpkg")
    png = tmp_path / "csfd.png"
    assert cli.main(["age", str(gpkg), "--area-km2", str(area), "--range", "1", "16", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Ga" in out and png.stat().st_size > 10_000
    diam = write_craterstats(cat, tmp_path / "count.diam", area)
    assert cli.main(["age", str(diam), "--range", "1", "16", "--method", "cumulative"]) == 0
    assert "Ga" in capsys.readouterr().out
    assert cli.main(["age", str(gpkg), "--range", "1", "16"]) == 2  # no area given or stored
    assert "area" in capsys.readouterr().err.lower()


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path, monkeypatch, capsys):
    # `marscraters info cat.csv | head -1`: the pipe's reader closes it; writing then fails with EPIPE
    cat = write_csv(make_catalog([-15.0, -10.0], [45.0, 40.0], [60.0, 30.0]), tmp_path / "cat.csv")
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w", buffering=1) as gone:  # line-buffered, as a terminal or `| head` sees it
        monkeypatch.setattr(sys, "stdout", gone)
        assert cli.main(["info", str(cat)]) == 1
        monkeypatch.undo()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_convert_records_a_given_count_area_and_says_a_csv_drops_it(tmp_path, capsys):
    src = tmp_path / "g.csv"
    src.write_text("lat,lon,diameter\n1.0,30.0,2.0\n1.1,30.1,3.0\n")
    gpkg = tmp_path / "g.gpkg"
    assert cli.main(["-q", "convert", str(src), "--out", str(gpkg), "--area-km2", "144"]) == 0
    back = read_catalog(gpkg)
    assert back.attrs["area_km2"] == pytest.approx(144.0)  # once silently dropped for .gpkg and .csv
    capsys.readouterr()
    assert cli.main(["convert", str(gpkg), "--out", str(tmp_path / "g.csv2.csv")]) == 0
    assert "a CSV keeps no count area" in capsys.readouterr().err


def test_info_describes_images_and_model_files(tile, tmp_path, capsys):
    # a plain image: its size, and what detect and ingest need for it
    assert cli.main(["info", str(tile)]) == 0
    out = capsys.readouterr().out
    assert "plain image, 240 x 240 px, no georeferencing" in out and "--pixel-size" in out
    # a GeoTIFF: its grid and pixel size
    import rasterio
    from affine import Affine

    tif = tmp_path / "geo.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=20, width=30, count=1, dtype="uint8", crs="IAU_2015:49910",
                       transform=Affine(100.0, 0, 0.0, 0, -100.0, 2000.0)) as dst:
        dst.write(np.zeros((1, 20, 30), np.uint8))
    assert cli.main(["info", str(tif)]) == 0
    out = capsys.readouterr().out
    assert "georeferenced image, 30 x 20 px" in out and "100 m per pixel" in out
    # the shipped model
    from marscraters.detect import model_info
    from marscraters.model import default_weights_path

    assert cli.main(["info", str(default_weights_path())]) == 0
    assert f"model {model_info(None)['name']!r}: outline targets" in capsys.readouterr().out


def test_evaluate_footprint_keeps_the_reference_craters_on_imaged_ground(tmp_path, capsys):
    from marscraters.mosaic import ingest, mosaic_from_array

    img = np.full((200, 200), 120.0, np.float32)
    img[:, 100:] = np.nan  # the east half without data (a stitched block's gap)
    cube = ingest(mosaic_from_array(img, bounds=(10.0, 0.0, 10.0 + 200 / 592.747, 200 / 592.747)),
                  tmp_path / "cube.zarr", progress=False)
    lon_w, lon_e, lat = 10.0 + 50 / 592.747, 10.0 + 150 / 592.747, 100 / 592.747
    truth, pred = tmp_path / "truth.csv", tmp_path / "pred.csv"
    write_csv(make_catalog([lat, lat], [lon_w, lon_e], [2.0, 2.0]), truth)
    write_csv(make_catalog([lat], [lon_w], [2.0]), pred)
    assert cli.main(["evaluate", str(pred), str(truth), "--footprint", str(cube), "--d-min", "1"]) == 0
    out = capsys.readouterr().out
    # the crater over no data could not be found: it is not counted as missed
    assert "left out 1 reference craters centred on" in out and "R=1.000" in out and "1/1 catalog craters" in out
