"""Checks on training inputs and label files: runs without validation, epochs, chip spans,
missing labels, and impossible YOLO and Pascal VOC boxes."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from marscraters.chips import read_chips, read_voc_labels, read_yolo_labels
from marscraters.errors import (
    CatalogFormatError,
    CatalogNotFoundError,
    InvalidArgumentError,
)
from marscraters.training import TrainConfig, _read_history, chips_training_set

_SMALL = ["--crop", "128", "--batch-size", "2", "--epochs", "1", "--kind", "filled", "--filter-multiple", "0.25",
          "--scale", "1", "1"]


def _chips(root: Path, n: int = 8, *, labels: bool = True, size: int = 128) -> Path:
    """``n`` tiny chips, each a bright disk on dark noise, with a YOLO box per disk."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    if labels:
        (root / "labels").mkdir()
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        img = rng.normal(50, 5, (size, size))
        x, y, d = rng.uniform(30, size - 30, 2).tolist() + [rng.uniform(12, 30)]
        img[(xx - x) ** 2 + (yy - y) ** 2 <= (d / 2) ** 2] = 200
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"crater{i}.png")
        if labels:
            (root / "labels" / f"crater{i}.txt").write_text(
                f"0 {(x + 0.5) / size:.5f} {(y + 0.5) / size:.5f} {d / size:.5f} {d / size:.5f}\n")
    return root


# --------------------------------------------------------------------------------------------
# 1. training without a validation set
# --------------------------------------------------------------------------------------------
def test_history_reads_keras_na_as_nan(tmp_path):
    """Keras' CSVLogger writes NA for validation metrics it has no value of."""
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,1.5,NA\n")
    (row,) = _read_history(path)
    assert row["loss"] == 1.5 and math.isnan(row["val_loss"])


def test_cli_train_without_validation_keeps_the_last_model(tmp_path, capsys):
    from marscraters.cli import main
    from marscraters.model import load_model

    chips, out = _chips(tmp_path / "chips"), tmp_path / "run"
    assert main(["-q", "train", "--chips", str(chips), "--train", "0:6", "--val", "", *_SMALL,
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "no score to choose the best epoch" in captured.err and "last epoch" in captured.err
    assert load_model(out / "best.keras") is not None and (out / "last.keras").exists()
    assert '"val_loss": null' in captured.out  # NaN printed as JSON null


# --------------------------------------------------------------------------------------------
# 2. epochs
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("epochs", [0, -1, 1.5])
def test_train_config_refuses_epochs_below_one(epochs):
    with pytest.raises(InvalidArgumentError, match=r"epochs must be a whole number >= 1.*epochs=1"):
        TrainConfig(epochs=epochs)


def test_cli_train_refuses_zero_epochs_naming_the_flag(tmp_path, capsys):
    from marscraters.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dots", "2", "--epochs", "0", "--out", str(out)]) != 0
    assert "--epochs 1" in capsys.readouterr().err
    assert not (out / "config.json").exists()


# --------------------------------------------------------------------------------------------
# 3. empty and overlapping chip spans
# --------------------------------------------------------------------------------------------
def test_empty_validation_span_names_the_validation_set(tmp_path):
    chips = read_chips(_chips(tmp_path / "chips"))
    with pytest.raises(InvalidArgumentError, match="no chips selected for the validation set.*--val"):
        chips_training_set(chips, range(6, 6), role="validation")


def test_cli_warns_when_validation_chips_overlap_training_chips(tmp_path, capsys):
    from marscraters.cli import main

    chips = _chips(tmp_path / "chips")
    assert main(["-q", "train", "--chips", str(chips), "--train", "0:6", "--val", "4:8", *_SMALL,
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "validation chips overlap the training chips (2 chips, positions 4..5)" in err and "in-sample" in err


# --------------------------------------------------------------------------------------------
# 4. no labels
# --------------------------------------------------------------------------------------------
def test_training_chips_without_any_crater_are_refused_naming_labels(tmp_path):
    folder = _chips(tmp_path / "nolab", labels=False)
    with pytest.raises(InvalidArgumentError, match=r"hold no crater at all.*nolab.labels"):
        chips_training_set(folder, range(6))
    # nor may a validation set be: the first epoch's crater scores would fail after the epoch trained
    with pytest.raises(InvalidArgumentError, match="validation chips .*--val START:STOP"):
        chips_training_set(folder, range(6, 8), role="validation")


# --------------------------------------------------------------------------------------------
# 5. impossible YOLO boxes and image sizes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width, height", [(0, 0), (-100, 100), (100, 0)])
def test_yolo_refuses_non_positive_image_sizes(tmp_path, width, height):
    label = tmp_path / "a.txt"
    label.write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InvalidArgumentError, match="width and height > 0"):
        read_yolo_labels(label, width, height)


def test_yolo_drops_boxes_outside_the_image_with_a_warning(tmp_path):
    label = tmp_path / "a.txt"
    label.write_text("0 0.5 0.5 0.1 0.1\n0 1.5 0.5 0.1 0.1\n0 0.5 -0.2 0.1 0.1\n0 0.5 0.5 1.2 0.1\n")
    with pytest.warns(UserWarning, match=r"a\.txt: dropped 3 box\(es\) outside the image \(line\(s\) 2, 3, 4\)"):
        out = read_yolo_labels(label, 100, 100)
    assert len(out) == 1 and out["x"].tolist() == [49.5]


def test_read_chips_warns_about_boxes_outside_the_image(tmp_path):
    folder = _chips(tmp_path / "chips", n=2)
    with open(folder / "labels" / "crater1.txt", "a") as fh:
        fh.write("0 0.5 1.3 0.1 0.1\n")
    with pytest.warns(UserWarning, match=r"crater1\.txt: dropped 1 box.*line\(s\) 2"):
        chips = read_chips(folder)
    assert len(chips.craters) == 2


# --------------------------------------------------------------------------------------------
# 6. Pascal VOC labels
# --------------------------------------------------------------------------------------------
def _voc(objects: str) -> str:
    return (f'<?xml version="1.0" ?><annotation><size><width>200</width><height>100</height></size>'
            f"{objects}</annotation>")


def _obj(x0: int, y0: int, x1: int, y1: int, name: str | None = "crater", extra: str = "") -> str:
    tag = f"<name>{name}</name>" if name is not None else ""
    return (f"<object>{tag}<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>"
            f"{extra}</object>")


def test_voc_drops_boxes_centred_outside_the_stated_size(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(_voc(_obj(10, 10, 20, 20) + _obj(300, 10, 320, 20) + _obj(190, 90, 205, 105)))
    with pytest.warns(UserWarning, match=r"dropped 1 box\(es\) centred outside the 200 x 100 px image.*object\(s\) 2"):
        out = read_voc_labels(path)
    assert len(out) == 2  # a box the edge cuts is kept


def test_voc_missing_file_is_a_catalog_not_found_error(tmp_path):
    with pytest.raises(CatalogNotFoundError, match="does not exist"):
        read_voc_labels(tmp_path / "absent.xml")


def test_voc_non_numeric_confidence_names_confidence(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(_voc(_obj(10, 10, 20, 20, extra="<confidence>high</confidence>")))
    with pytest.raises(CatalogFormatError, match=r"object 1 has the confidence 'high', not a number"):
        read_voc_labels(path)


def test_voc_reads_only_craters_and_names_the_others(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(_voc(_obj(10, 10, 20, 20, "Crater") + _obj(30, 30, 40, 40, None)
                         + _obj(50, 50, 60, 60, "rock") + _obj(70, 70, 80, 80, "rock")))
    with pytest.warns(UserWarning, match=r"skipped 2 object\(s\) that are not craters, named 'rock' \(2\)"):
        out = read_voc_labels(path)
    assert out["x"].tolist() == [15.0, 35.0]


def test_voc_clean_file_reads_without_warnings(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(_voc(_obj(10, 10, 20, 20)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_voc_labels(path)) == 1
