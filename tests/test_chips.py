"""Labelled chips: images plus YOLO boxes -> float32 grey stacks and PixelCraters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marscraters.chips import Chips, chip_craters, read_chips, read_yolo_labels
from marscraters.errors import (
    CatalogFormatError,
    CatalogNotFoundError,
    CorruptImageError,
    ImageReadError,
    InvalidArgumentError,
)


def _chip_folder(
    root: Path, labels: dict[int, str | None], size: tuple[int, int] = (32, 32), fmt: str = "JPEG"
) -> Path:
    """Chips ``craterN`` with a grey ramp (value N on the first row) as equal-band RGB images."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    h, w = size
    for n, text in labels.items():
        grey = np.full((h, w), 10 * n % 256, dtype=np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        ext = "jpg" if fmt == "JPEG" else "png"
        Image.fromarray(rgb).save(root / "images" / f"crater{n}.{ext}", format=fmt, quality=100)
        if text is not None:
            (root / "labels" / f"crater{n}.txt").write_text(text)
    return root


@pytest.fixture
def folder(tmp_path):
    return _chip_folder(
        tmp_path / "chips",
        {
            0: "0 0.5 0.5 0.25 0.125\n0 0.0 1.0 0.5 0.5",  # no trailing newline, as in the real data
            2: "",  # empty file: no craters
            10: "0 0.25 0.75 0.1 0.2\n\n",
            3: None,  # no label file: no craters
        },
    )


def test_read_chips(folder):
    chips = read_chips(folder)
    assert isinstance(chips, Chips) and len(chips) == 4
    assert chips.names == ["crater0", "crater2", "crater3", "crater10"]  # numeric order, not 0, 10, 2, 3
    assert chips.images.shape == (4, 32, 32) and chips.images.dtype == np.float32
    # grey on the 0..255 scale (JPEG at quality 100 keeps a flat grey within 1)
    np.testing.assert_allclose(chips.images[:, 0, 0], [0, 20, 30, 100], atol=1)
    c = chips.craters
    assert list(c.columns[:4]) == ["chip", "x", "y", "diameter_px"]
    assert c["chip"].tolist() == [0, 0, 3]
    # YOLO centre 0.5 of 32 px is the edge between pixels 15 and 16: index coordinate 15.5
    assert c[["x", "y"]].iloc[0].tolist() == [15.5, 15.5]
    assert c["diameter_px"].iloc[0] == pytest.approx((0.25 * 32 + 0.125 * 32) / 2)
    assert c[["x", "y"]].iloc[1].tolist() == [-0.5, 31.5]
    assert c[["x", "y", "diameter_px"]].iloc[2].tolist() == pytest.approx([7.5, 23.5, 4.8])


def test_chip_craters(folder):
    chips = read_chips(folder)
    first = chip_craters(chips, 0)
    assert len(first) == 2 and "chip" not in first.columns and list(first.index) == [0, 1]
    assert chip_craters(chips, 1).empty and chip_craters(chips, 2).empty
    assert chip_craters(chips, -1)["x"].tolist() == [7.5]
    with pytest.raises(InvalidArgumentError):
        chip_craters(chips, 4)


def test_limit_and_indices(folder):
    assert read_chips(folder, limit=2).names == ["crater0", "crater2"]
    chips = read_chips(folder, indices=[10, 0])
    assert chips.names == ["crater10", "crater0"]
    # chip indices in craters follow the order read
    assert chips.craters["chip"].tolist() == [0, 1, 1]
    assert read_chips(folder, indices=[10, 0], limit=1).names == ["crater10"]
    empty = read_chips(folder, limit=0)
    assert (
        len(empty) == 0 and empty.craters.empty and list(empty.craters.columns[:4]) == ["chip", "x", "y", "diameter_px"]
    )


def test_boxes_cut_by_the_image_edge_get_their_circle_back(tmp_path):
    # true circles on a 32x32 chip (edge coordinates): the labels clip each box to the image, as the
    # THEMIS crops' labels do
    lines = {
        "left": (4, 16, 12),  # box x -2..10 clipped to 0..10: w 10, cx 5
        "right": (30, 10, 8),  # box x 26..34 clipped to 26..32: w 6, cx 29
        "bottom": (16, 29, 10),  # box y 24..34 clipped to 24..32
        "inside": (16, 16, 6),  # untouched
        "corner": (2, 2, 10),  # both sides cut: only a lower bound on the diameter
    }

    def clipped_box(x, y, d):
        x0, x1 = max(x - d / 2, 0), min(x + d / 2, 32)
        y0, y1 = max(y - d / 2, 0), min(y + d / 2, 32)
        return f"0 {(x0 + x1) / 64} {(y0 + y1) / 64} {(x1 - x0) / 32} {(y1 - y0) / 32}"

    folder = _chip_folder(tmp_path / "c", {0: "\n".join(clipped_box(*v) for v in lines.values())})
    got = read_chips(folder).craters.set_index(pd.Index(list(lines)))
    as_boxes = read_chips(folder, edge_boxes="box").craters.set_index(pd.Index(list(lines)))
    assert got["edge_cut"].tolist() == [True, True, True, False, True]
    for name in ("left", "right", "bottom", "inside"):
        x, y, d = lines[name]
        assert got.loc[name, ["x", "y", "diameter_px"]].tolist() == pytest.approx([x - 0.5, y - 0.5, d]), name
    # the box as labelled is kept beside the circle, and "box" reads it as before
    assert got.loc["left", ["width_px", "height_px"]].tolist() == pytest.approx([10, 12])
    assert as_boxes.loc["left", ["x", "diameter_px"]].tolist() == pytest.approx([4.5, 11])
    assert as_boxes.loc["inside", ["x", "y", "diameter_px"]].tolist() == pytest.approx([15.5, 15.5, 6])
    # a corner crater (box 0..7 x 0..7) keeps the box's size: 7 is all the chip shows of its 10 px
    assert got.loc["corner", ["x", "y", "diameter_px"]].tolist() == pytest.approx([3.0, 3.0, 7])
    labels = read_yolo_labels(folder / "labels" / "crater0.txt", 32, 32)
    assert labels["diameter_px"].tolist() == pytest.approx(got["diameter_px"].tolist())
    with pytest.raises(InvalidArgumentError, match="'circle' restores"):
        read_chips(folder, edge_boxes="clip")
    with pytest.raises(InvalidArgumentError, match="edge_boxes"):
        read_yolo_labels(folder / "labels" / "crater0.txt", 32, 32, edge_boxes="nope")


def test_yolo_labels_read_the_size_from_their_image(tmp_path):
    """Without a size, the labels take it from the image of the same name (../images/ or beside)."""
    root = _chip_folder(tmp_path / "c", {7: "0 0.5 0.25 0.2 0.1\n"}, size=(20, 40), fmt="PNG")
    label = root / "labels" / "crater7.txt"
    given = read_yolo_labels(label, 40, 20)
    found = read_yolo_labels(label)  # images/crater7.png is 40 wide, 20 high
    pd.testing.assert_frame_equal(found, given)
    assert found[["x", "y"]].iloc[0].tolist() == pytest.approx([19.5, 4.5])
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(root / "images" / "crater7.mask.png")  # sorts first
    pd.testing.assert_frame_equal(read_yolo_labels(label), given)  # only crater7.<suffix> is its image
    beside = tmp_path / "flat"
    beside.mkdir()
    (beside / "crater7.txt").write_text(label.read_text())
    (root / "images" / "crater7.png").rename(beside / "crater7.PNG")  # any case of the suffix
    pd.testing.assert_frame_equal(read_yolo_labels(beside / "crater7.txt"), given)
    with pytest.raises(InvalidArgumentError, match=r"no image named crater7.*--image-size"):
        read_yolo_labels(label)  # its image moved away
    with pytest.raises(InvalidArgumentError, match="both width and height"):
        read_yolo_labels(label, 40)
    (beside / "crater7.PNG").write_bytes(b"not a png")
    with pytest.raises(CorruptImageError, match="crater7.PNG"):
        read_yolo_labels(beside / "crater7.txt")


def test_png_and_flat_folder(tmp_path):
    root = _chip_folder(tmp_path / "c", {1: "0 0.5 0.5 0.5 0.5\n"}, size=(20, 40), fmt="PNG")
    flat = tmp_path / "flat"
    flat.mkdir()
    (root / "images" / "crater1.png").rename(flat / "crater1.png")
    (root / "labels" / "crater1.txt").rename(flat / "crater1.txt")
    chips = read_chips(flat)
    assert chips.images.shape == (1, 20, 40)
    assert chips.images[0, 0, 0] == 10.0  # PNG is lossless
    # non-square: x scales with the width, y with the height
    assert chips.craters[["x", "y", "diameter_px"]].iloc[0].tolist() == [19.5, 9.5, 15.0]


LABEL_ERRORS = [
    # (err_type, label text, line named in the message)
    (CatalogFormatError, "0 0.5 0.5 0.1\n", "line 1"),
    (CatalogFormatError, "0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1 7\n", "line 2"),
    (CatalogFormatError, "0 0.5 0.5 0.1 0.1\n\n0 a 0.5 0.1 0.1\n", "line 3"),
    (CatalogFormatError, "0 0.5 0.5 0 0.1\n", "line 1"),
    (CatalogFormatError, "0 0.5 0.5 0.1 -0.1\n", "line 1"),
    (CatalogFormatError, "0 nan 0.5 0.1 0.1\n", "line 1"),
    (CatalogFormatError, "0.5 0.5 0.5 0.1 0.1\n", "line 1"),
]


@pytest.mark.parametrize("err_type, text, line", LABEL_ERRORS)
def test_malformed_labels_name_file_and_line(tmp_path, err_type, text, line):
    root = _chip_folder(tmp_path / "c", {4: text})
    with pytest.raises(err_type) as info:
        read_chips(root)
    assert "crater4.txt" in str(info.value) and line in str(info.value)
    with pytest.raises(err_type):
        read_yolo_labels(root / "labels" / "crater4.txt", 32, 32)


def test_folder_errors(tmp_path):
    with pytest.raises(CatalogNotFoundError, match="does not exist"):
        read_chips(tmp_path / "nope")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(CatalogNotFoundError, match="no chip images"):
        read_chips(tmp_path / "empty")
    root = _chip_folder(tmp_path / "c", {1: "", 2: ""})
    with pytest.raises(CatalogNotFoundError, match=r"\[7\]"):
        read_chips(root, indices=[1, 7])
    with pytest.raises(InvalidArgumentError):
        read_chips(root, limit=-1)


def test_image_errors(tmp_path):
    root = _chip_folder(tmp_path / "c", {1: "", 2: ""})
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "images" / "crater3.jpg")
    with pytest.raises(ImageReadError, match="crater3.jpg is 16x16"):
        read_chips(root)
    (root / "images" / "crater3.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(CorruptImageError, match="crater3.jpg"):
        read_chips(root)


def test_colour_images_are_averaged(tmp_path):
    root = tmp_path / "rgb"
    (root / "images").mkdir(parents=True)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 30, 60, 91
    Image.fromarray(rgb).save(root / "images" / "a1.png")
    chips = read_chips(root)
    assert chips.images[0, 0, 0] == pytest.approx((30 + 60 + 91) / 3)


@pytest.mark.realdata
def test_real_themis_crops(shared_data):
    folder = shared_data / "themis-dayir-crops"
    if not (folder / "images").is_dir():
        pytest.skip(f"{folder} absent")
    chips = read_chips(folder)
    assert len(chips) == 600 and chips.images.shape == (600, 416, 416)
    assert chips.names[:3] == ["crater0", "crater1", "crater2"] and chips.names[-1] == "crater599"
    assert 0 <= chips.images.min() and chips.images.max() <= 255
    # every non-blank label line became one crater
    n_lines = sum(
        sum(1 for line in (folder / "labels" / f"{n}.txt").read_text().splitlines() if line.strip())
        for n in chips.names
        if (folder / "labels" / f"{n}.txt").exists()
    )
    assert len(chips.craters) == n_lines > 1000
    assert (chips.craters["diameter_px"] > 0).all()
    # the first box of crater0, by hand
    cls, cx, cy, w, h = map(float, (folder / "labels" / "crater0.txt").read_text().split()[:5])
    first = chip_craters(chips, 0).iloc[0]
    assert first["x"] == pytest.approx(cx * 416 - 0.5)
    assert first["y"] == pytest.approx(cy * 416 - 0.5)
    assert first["diameter_px"] == pytest.approx((w + h) / 2 * 416)
    # the grey image is one band of the RGB file
    rgb = np.asarray(Image.open(folder / "images" / "crater7.jpg"))
    np.testing.assert_array_equal(chips.images[7], rgb[..., 0].astype(np.float32))
    assert isinstance(chips.craters, pd.DataFrame)
    # about one box in seven touches the chip edge; their circles are at least as big as the boxes
    # and still cover them
    c = chips.craters
    cut = c[c["edge_cut"]]
    assert 0.1 < len(cut) / len(c) < 0.2
    assert (cut["diameter_px"] >= (cut["width_px"] + cut["height_px"]) / 2 - 1e-9).all()
    assert (cut["diameter_px"] > (cut["width_px"] + cut["height_px"]) / 2 + 1).mean() > 0.5
    boxed = read_chips(folder, indices=range(0, 600, 60), edge_boxes="box").craters
    assert (boxed["diameter_px"] == (boxed["width_px"] + boxed["height_px"]) / 2).all()
