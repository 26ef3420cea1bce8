"""Scoring fixes: registration offsets of stacked tables, repeated pixel rows, YOLO detections with a
confidence, the precision floor at 0.8 d_min, and the `evaluate` command's messages and JSON."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marscraters import cli
from marscraters.chips import is_yolo_labels, read_chips, read_yolo_labels
from marscraters.errors import CatalogFormatError
from marscraters.evaluate import (
    bootstrap_scores,
    evaluate,
    group_counts,
    registration_offset,
    side_by_side,
    to_json,
    validate_pixel_craters,
)

# a Python spelling in a message: keyword=value, marscraters.function( (as tests/test_cli_messages.py)
PYTHON_WORDS = re.compile(r"\b[a-z_]+=(?!=)|marscraters\.[a-z_.]+\(")

# five YOLO labels on a 400 x 200 image, none repeated
LABELS = ("0 0.25 0.25 0.1 0.2\n0 0.75 0.75 0.05 0.1\n0 0.5 0.5 0.08 0.16\n"
          "0 0.2 0.7 0.06 0.12\n0 0.8 0.3 0.07 0.14\n")


def _run(capsys, argv) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# -- 1: registration_offset on tables whose index repeats ----------------------------------------
def test_registration_offset_takes_rows_by_position(tmp_path):
    chips = [pd.DataFrame({"x": [50.0, 150.0], "y": [60.0, 170.0], "diameter_px": [30.0, 30.0]}),
             pd.DataFrame({"x": [300.0, 380.0], "y": [300.0, 390.0], "diameter_px": [40.0, 40.0]}),
             pd.DataFrame({"x": [200.0, 210.0], "y": [20.0, 320.0], "diameter_px": [8.0, 20.0]})]
    names = ["A", "B", "C"]
    # every detection 1 px east and 2 px south of its crater; chips stacked with plain pd.concat
    # (index 0, 1, 0, 1, 0, 1), the detections in another chip order
    truth = pd.concat([t.assign(image=n) for t, n in zip(chips, names)])
    pred = pd.concat([chips[k].assign(x=chips[k].x + 1, y=chips[k].y + 2, image=names[k]) for k in (2, 0, 1)])
    assert not truth.index.is_unique
    fresh = registration_offset(pred.reset_index(drop=True), truth.reset_index(drop=True))
    assert fresh == pytest.approx({"dx": 1.0, "dy": 2.0, "distance": np.hypot(1, 2), "n": 6})
    assert registration_offset(pred, truth) == fresh
    # the floor drops the 8 px crater, whatever the labels (it raised before: a mask of the wrong length)
    floored = registration_offset(pred, truth, d_min=10)
    assert floored == registration_offset(pred.reset_index(drop=True), truth.reset_index(drop=True), d_min=10)
    assert floored["n"] == 5 and floored["dx"] == pytest.approx(1.0)


# -- 2: repeated rows of pixel tables --------------------------------------------------------------
def test_evaluate_warns_about_and_drops_repeated_pixel_rows(tmp_path, capsys):
    pred = _csv(tmp_path / "pred.csv", "x,y,diameter_px\n10,10,20\n40,40,20\n80,80,30\n")
    truth = _csv(tmp_path / "truth.csv", "x,y,diameter_px\n10,10,20\n40,40,20\n80,80,30\n80,80,30\n")
    code, out, err = _run(capsys, ["evaluate", pred, truth, "--rule", "deepmoon"])
    assert code == 0 and "R=0.750" in out  # warned, not changed
    assert ("truth.csv: 1 of 4 rows repeat an earlier row's x, y and diameter_px (row 4 repeats row 3)" in err
            and "--errors drop" in err and "errors='drop'" not in err)
    code, out, err = _run(capsys, ["evaluate", pred, truth, "--rule", "deepmoon", "--errors", "drop"])
    assert code == 0 and "R=1.000" in out and "3/3 catalog craters" in out
    assert "truth.csv: dropped 1 of 4 rows that repeat an earlier row's x, y and diameter_px" in err
    # a repeated detection lowered the precision the same way
    code, out, err = _run(capsys, ["evaluate", truth, pred, "--rule", "deepmoon", "--errors", "drop"])
    assert code == 0 and "P=1.000" in out and "3/3 predictions" in out


def test_repeated_yolo_label_line_is_dropped(tmp_path, capsys):
    (tmp_path / "labels").mkdir()
    labels = _csv(tmp_path / "labels" / "chip.txt", LABELS)
    twice = _csv(tmp_path / "labels" / "twice.txt", LABELS + "\n" + LABELS.splitlines()[-1] + "\n")
    size = ["--image-size", "400", "200", "--rule", "deepmoon"]
    code, out, err = _run(capsys, ["evaluate", labels, twice, *size])
    assert code == 0 and "R=0.833" in out and "1 of 6 rows repeat an earlier row's" in err
    code, out, err = _run(capsys, ["evaluate", labels, twice, *size, "--errors", "drop"])
    assert code == 0 and "R=1.000" in out and "dropped 1 of 6 rows that repeat" in err


def test_pixel_rows_of_different_images_are_not_repeats(tmp_path, capsys):
    # detect's CSV of several images: the same x, y, diameter_px on two images are two craters
    text = "x,y,diameter_px,score,image\n10,10,20,0.9,a.png\n10,10,20,0.8,b.png\n40,40,20,0.9,a.png\n"
    found = _csv(tmp_path / "found.csv", text)
    code, out, err = _run(capsys, ["evaluate", found, found, "--rule", "deepmoon"])
    assert code == 0 and "R=1.000" in out and "repeat" not in err
    # without an `image` column, the --by column names the image (as for matching)
    chips = _csv(tmp_path / "chips.csv", text.replace(",image", ",chip"))
    code, out, err = _run(capsys, ["evaluate", chips, chips, "--rule", "deepmoon", "--by", "chip",
                                   "--bootstrap", "10"])
    assert code == 0 and "R=1.000" in out and "repeat" not in err
    # ... and without either, the two rows are one crater listed twice in one frame
    code, out, err = _run(capsys, ["evaluate", chips, chips, "--rule", "deepmoon"])
    assert "row 2 repeats row 1" in err


def test_side_by_side_chips_with_equal_labels_are_not_repeats(tmp_path):
    # the benchmarks' tables: chips laid side by side; two chips labelled alike are not repeats
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for n in (0, 1):
        Image.fromarray(np.zeros((200, 400), np.uint8)).save(tmp_path / "images" / f"crater{n}.png")
        (tmp_path / "labels" / f"crater{n}.txt").write_text(LABELS)
    chips = read_chips(tmp_path)
    frames = [chips.craters[chips.craters["chip"] == k].drop(columns="chip").reset_index(drop=True) for k in (0, 1)]
    stacked = pd.concat(frames).assign(image=np.repeat(["a", "b"], 5))
    for table in (side_by_side(frames, images=chips.names), stacked):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert validate_pixel_craters(table) is table


def test_validate_pixel_craters_numbers_rows_of_the_table_read(tmp_path):
    t = pd.DataFrame({"x": [1.0, np.nan, 2.0, 1.0], "y": [1.0, 1.0, 2.0, 1.0], "diameter_px": [5.0] * 4},
                     index=[7, 7, 8, 9])
    with pytest.warns(UserWarning) as record:
        out = validate_pixel_craters(t, source="t.csv", errors="drop")
    messages = [str(w.message) for w in record]
    assert any("dropped 1 of 4 invalid rows" in m for m in messages)
    assert any("dropped 1 of 4 rows that repeat an earlier row's x, y and diameter_px (row 4 repeats row 1)" in m
               for m in messages)
    assert out[["x", "y"]].values.tolist() == [[1.0, 1.0], [2.0, 2.0]] and list(out.index) == [0, 1]


# -- 3: YOLO detections with a confidence ----------------------------------------------------------
def test_yolo_detections_with_a_confidence_column(tmp_path, capsys):
    (tmp_path / "labels").mkdir()
    labels = tmp_path / "labels" / "chip.txt"
    labels.write_text(LABELS)
    scored = tmp_path / "labels" / "pred.txt"
    scored.write_text("".join(f"{line} 0.{k + 5}\n" for k, line in enumerate(LABELS.splitlines())))
    assert is_yolo_labels(scored)
    plain = read_yolo_labels(labels, 400, 200)
    got = read_yolo_labels(scored, 400, 200)
    assert "score" not in plain.columns  # five values: unchanged
    pd.testing.assert_frame_equal(got.drop(columns="score"), plain)
    assert got["score"].tolist() == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    code, out, err = _run(capsys, ["evaluate", str(scored), str(labels), "--image-size", "400", "200",
                                   "--rule", "deepmoon"])
    assert code == 0 and "P=1.000 R=1.000" in out, err
    # one layout per file: a confidence on some lines only is refused, naming the line
    (tmp_path / "labels" / "mixed.txt").write_text(scored.read_text() + LABELS.splitlines()[0] + "\n")
    with pytest.raises(CatalogFormatError, match=r"mixed.txt, line 6: expected 6 values 'class cx cy w h confidence'"):
        read_yolo_labels(tmp_path / "labels" / "mixed.txt", 400, 200)


def test_training_labels_with_a_confidence_say_so(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.zeros((200, 400), np.uint8)).save(tmp_path / "images" / "crater0.png")
    (tmp_path / "labels" / "crater0.txt").write_text("0 0.25 0.25 0.1 0.2 0.9\n")
    with pytest.raises(CatalogFormatError, match=r"expected 5 values 'class cx cy w h', got 6.*drop the 6th column"):
        read_chips(tmp_path)


# -- 4a: the precision floor -------------------------------------------------------------------------
def test_detection_at_exactly_the_precision_floor_is_counted():
    truth = pd.DataFrame({"lat": [0.0, 1.0], "lon": [0.0, 1.0], "diameter_km": [3.0, 3.0]})
    pred = pd.DataFrame({"lat": [0.0, 1.0, 5.0], "lon": [0.0, 1.0, 5.0], "diameter_km": [3.0, 3.0, 2.4]})
    r = evaluate(pred, truth, d_min=3.0)  # 0.8 * 3.0 is 2.4000000000000004
    assert (r.n_pred, r.precision) == (3, pytest.approx(2 / 3))
    pix = pd.DataFrame({"x": [20.0, 80.0, 300.0], "y": [20.0, 80.0, 300.0], "diameter_px": [12.0, 12.0, 9.6]})
    assert evaluate(pix, pix.iloc[:2], d_min=12).n_pred == 3
    # still a floor: just below it is not counted
    assert evaluate(pix.assign(diameter_px=[12.0, 12.0, 9.59]), pix.iloc[:2], d_min=12).n_pred == 2
    # the map browser draws and counts what the scores count
    from marscraters.browse import _classify

    layers, scores = _classify(pred.assign(crater_id=["a", "b", "c"]), truth, "deepmoon", 3.0)
    assert len(layers["false"]) == 1 and scores.n_pred == 3


# -- 4b-4e: the evaluate command ---------------------------------------------------------------------
def test_footprint_with_pixel_tables_says_it_needs_a_catalog(tmp_path, capsys):
    from marscraters.mosaic import mosaic_from_array

    mosaic_from_array(np.full((16, 16), 100.0), bounds=(0, 0, 0.25, 0.25)).to_zarr(tmp_path / "cube.zarr", consolidated=False)
    table = _csv(tmp_path / "t.csv", "x,y,diameter_px\n10,10,20\n40,40,20\n")
    code, _, err = _run(capsys, ["evaluate", table, table, "--footprint", str(tmp_path / "cube.zarr")])
    assert code == 2
    assert "--footprint" in err and "georeferenced reference catalog" in err and "t.csv holds craters in pixels" in err
    assert "make_catalog" not in err and not PYTHON_WORDS.search(err)


def test_by_names_the_column_as_the_file_spells_it(tmp_path, capsys):
    table = _csv(tmp_path / "pu.csv", "X,Y,Diameter_px,Image\n10,10,20,a.png\n40,40,20,b.png\n")
    code, out, err = _run(capsys, ["evaluate", table, table, "--by", "Image", "--bootstrap", "10",
                                   "--rule", "deepmoon"])
    assert code == 0, err
    assert "R=1.000" in out and "resamples of 2 Image groups" in out


def test_empty_yolo_reference_names_the_file(tmp_path, capsys):
    (tmp_path / "labels").mkdir()
    labels = _csv(tmp_path / "labels" / "chip.txt", LABELS)
    blank = _csv(tmp_path / "labels" / "blank.txt", "")
    code, _, err = _run(capsys, ["evaluate", labels, blank, "--image-size", "400", "200"])
    assert code == 2
    assert "blank.txt is an empty YOLO label file" in err and "nothing to score against" in err
    assert "filter_catalog" not in err and not PYTHON_WORDS.search(err)


def test_json_holds_the_bootstrap_intervals(tmp_path, capsys):
    table = _csv(tmp_path / "t.csv", "x,y,diameter_px,image\n10,10,20,a\n40,40,20,b\n70,70,20,c\n")
    plain, boot = tmp_path / "plain.json", tmp_path / "boot.json"
    assert cli.main(["evaluate", table, table, "--rule", "deepmoon", "--json", str(plain)]) == 0
    assert cli.main(["evaluate", table, table, "--rule", "deepmoon", "--json", str(boot), "--by", "image",
                     "--bootstrap", "20"]) == 0
    before, after = json.loads(plain.read_text()), json.loads(boot.read_text())
    assert {k: v for k, v in after.items() if k != "bootstrap"} == before  # the existing keys unchanged
    b = after["bootstrap"]
    assert (b["by"], b["n_groups"], b["n_boot"], b["level"]) == ("image", 3, 20, 0.95)
    assert set(b) >= {"precision", "recall", "f1"}
    assert b["f1"] == {"estimate": 1.0, "low": 1.0, "high": 1.0, "undefined": 0}
    # every rule: the intervals under each rule's key
    assert cli.main(["evaluate", table, table, "--json", str(boot), "--overwrite", "--by", "image",
                     "--bootstrap", "20"]) == 0
    every = json.loads(boot.read_text())
    assert set(every) == {"deepmoon", "iou", "pycda"} and all("bootstrap" in v for v in every.values())
    capsys.readouterr()


def test_to_json_bootstrap_in_python(tmp_path):
    t = pd.DataFrame({"x": [10.0, 40.0, 70.0], "y": [10.0, 40.0, 70.0], "diameter_px": [20.0] * 3,
                      "image": ["a", "b", "c"]})
    r = evaluate(t, t)
    with pytest.warns(UserWarning, match="only 3 groups"):
        ci = bootstrap_scores(group_counts(r, t, t, "image"), n_boot=10)
    data = json.loads(to_json(r, bootstrap=ci))
    assert data["bootstrap"]["recall"]["low"] == 1.0 and data["f1"] == 1.0
    assert "bootstrap" not in json.loads(to_json(r))
