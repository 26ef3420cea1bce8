"""Chips cut by write_chips: which craters get labels, how chips are numbered, and how cut boxes come back."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marscraters.catalog import make_catalog
from marscraters.chips import read_chips, read_yolo_labels, write_chips
from marscraters.crs import Grid
from marscraters.errors import InvalidArgumentError
from marscraters.mosaic import mosaic_from_array
from marscraters.targets import catalog_pixels
from marscraters.training import chips_training_set

PPD = 592.747  # THEMIS Day IR controlled mosaics, 100 m/px: 1 km is about 10 px tall


def _mosaic(img: np.ndarray, west: float = 200.0, south: float = 0.0, name: str = "scene.tif"):
    ny, nx = img.shape
    return mosaic_from_array(img.astype(np.float32), bounds=(west, south, west + nx / PPD, south + ny / PPD), name=name)


def _catalog_at(ds, cols, rows, diameters_km):
    lon, lat = Grid.from_dataset(ds).pixel_to_lonlat(np.asarray(cols, float), np.asarray(rows, float))
    return make_catalog(lat, lon, diameters_km)


# --- no data: a crater the chip does not show gets no label -----------------------------------

def test_craters_over_no_data_get_no_label(tmp_path):
    img = np.random.default_rng(0).integers(20, 230, (64, 64)).astype(np.float32)
    img[:, 40:] = np.nan  # 37.5 % no data: the window is kept, its right part filled with flat grey
    ds = _mosaic(img)
    # about 10 and 15 px wide: inside the data, wholly in the gap, mostly in it, mostly outside it
    cat = _catalog_at(ds, [15.0, 55.0, 44.0, 36.0], [30.0, 30.0, 15.0, 50.0], [1.0, 1.0, 1.5, 1.5])
    out = write_chips(ds, cat, tmp_path / "chips", size=64)
    chips = read_chips(out)
    np.testing.assert_allclose(chips.craters[["x", "y"]].to_numpy(), [[15.0, 30.0], [36.0, 50.0]], atol=1e-3)
    index = pd.read_csv(out / "index.csv")
    assert index[["n_craters", "n_craters_nodata"]].values.tolist() == [[2, 2]]
    # the filled part really is flat: nothing there a crater label could describe
    assert np.ptp(chips.images[0][:, 40:]) == 0


def test_the_no_data_rule_judges_the_part_of_a_crater_on_the_chip(tmp_path):
    img = np.random.default_rng(1).integers(20, 230, (64, 128)).astype(np.float32)
    img[:, 56:64] = np.nan  # a strip of no data along the west side of the chips' shared edge
    img[:, 100:] = np.nan  # and the east part of the second chip
    ds = _mosaic(img)
    # one crater cut by the edge between the chips (its west part over no data, its east part
    # over data), one wholly in the data, and one whose disk the data barely reaches
    cat = _catalog_at(ds, [64.0, 20.0, 106.0], [32.0, 32.0, 32.0], [1.5, 1.0, 1.5])
    out = write_chips(ds, cat, tmp_path / "chips", size=64)
    chips = read_chips(out)
    index = pd.read_csv(out / "index.csv")
    assert index[["n_craters", "n_craters_nodata"]].values.tolist() == [[1, 1], [1, 1]]
    west, east = (chips.craters[chips.craters["chip"] == i] for i in range(2))
    np.testing.assert_allclose(west[["x", "y"]].to_numpy(), [[20.0, 32.0]], atol=1e-3)
    # labelled on the east chip, where the crater's pixels hold data, restored to its circle
    np.testing.assert_allclose(east[["x", "y"]].to_numpy(), [[0.0, 32.0]], atol=0.02)
    assert bool(east["edge_cut"].iloc[0])


def test_a_chip_without_no_data_keeps_every_crater(tmp_path):
    img = np.random.default_rng(0).integers(20, 230, (64, 64)).astype(np.float32)
    ds = _mosaic(img)
    cat = _catalog_at(ds, [15.0, 55.0, 44.0, 36.0], [30.0, 30.0, 15.0, 50.0], [1.0, 1.0, 1.5, 1.5])
    out = write_chips(ds, cat, tmp_path / "chips", size=64)
    assert len(read_chips(out).craters) == 4
    assert pd.read_csv(out / "index.csv")[["n_craters", "n_craters_nodata"]].values.tolist() == [[4, 0]]


def test_craters_larger_than_the_chip_get_no_label(tmp_path):
    # a 58 km crater came back from every chip it covered as a chip-sized circle, centred 90-130 px off
    img = np.random.default_rng(0).integers(20, 230, (64, 128)).astype(np.float32)
    ds = _mosaic(img)
    # 12 km (120 px) wide, centred on the first chip; and a 1 km crater cut by the edge only on one side
    cat = _catalog_at(ds, [32.0, 62.0], [32.0, 40.0], [12.0, 1.0])
    out = write_chips(ds, cat, tmp_path / "chips", size=64)
    chips = read_chips(out)
    index = pd.read_csv(out / "index.csv")
    # the 1 km crater on both chips (restored from its uncut side), the 12 km one on neither
    assert index[["n_craters", "n_craters_larger"]].values.tolist() == [[1, 1], [1, 1]]
    assert chips.craters["diameter_px"].to_numpy() == pytest.approx([10.0, 10.0], abs=0.1)


# --- numbering: one number per chip, and the order read_chips and --train/--val count ---------

def _window_ids(ny: int, nx: int, size: int) -> np.ndarray:
    """A mosaic whose every window starts with the grey level 10 + its row-major window number."""
    rows, cols = np.mgrid[0:ny, 0:nx]
    img = 10.0 + (rows // size) * (nx // size) + cols // size
    img += np.random.default_rng(3).integers(0, 3, img.shape)  # not flat: training sets refuse flat images
    img[::size, ::size] = 10.0 + (rows // size * (nx // size) + cols // size)[::size, ::size]
    return img.astype(np.float32)


def test_write_chips_numbers_chips_in_rows_and_read_chips_selects_each(tmp_path):
    img = _window_ids(64, 352, 32)  # 2 rows of 11 chips: two-digit columns sorted as text went wrong
    img[:32, 96:128] = np.nan  # window (row 0, col 3) has no data: skipped, and takes no number
    ds = _mosaic(img)
    centres = np.mgrid[16:64:32, 16:352:32].reshape(2, -1)  # a crater in every window
    out = write_chips(ds, _catalog_at(ds, centres[1], centres[0], np.full(22, 0.5)), tmp_path / "chips", size=32)
    index = pd.read_csv(out / "index.csv")
    kept = [(r, c) for r in range(2) for c in range(11) if (r, c) != (0, 3)]
    assert index[["row", "col"]].values.tolist() == [list(rc) for rc in kept]
    names = [f"scene_{k:02d}" for k in range(21)]
    assert index["file"].tolist() == [f"{n}.png" for n in names]

    chips = read_chips(out)
    assert chips.names == names  # position k is chip number k, in rows from the north-west corner
    greys = [10 + r * 11 + c for r, c in kept]
    np.testing.assert_array_equal(chips.images[:, 0, 0], greys)
    # every chip can be picked by its number, and gets the right image
    picked = read_chips(out, indices=[12, 0, 20, 2])
    assert picked.names == ["scene_12", "scene_00", "scene_20", "scene_02"]
    np.testing.assert_array_equal(picked.images[:, 0, 0], [greys[12], greys[0], greys[20], greys[2]])
    # `marscraters train --chips out --train 0:10 --val 10:21` counts these positions: the northern
    # row trains, the southern one validates
    tr, va = chips_training_set(chips, range(10)), chips_training_set(chips, range(10, 21), role="validation")
    assert tr.names == names[:10] and va.names == names[10:]


def _old_style_folder(root: Path, ncols: int = 11, nrows: int = 2, size: int = 16) -> Path:
    """A chip folder named as write_chips used to: ``q_<col>_<row>``, one grey level per chip."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for r in range(nrows):
        for c in range(ncols):
            grey = np.full((size, size), 10 + r * ncols + c, dtype=np.uint8)
            Image.fromarray(grey).save(root / "images" / f"q_{c}_{r}.png")
            (root / "labels" / f"q_{c}_{r}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    return root


def test_read_chips_refuses_a_number_that_several_chips_share(tmp_path):
    folder = _old_style_folder(tmp_path / "old")
    with pytest.raises(InvalidArgumentError, match=r"11 chips of .* have the number 1 \(q_0_1.png, q_1_1.png, .*"
                                                   r"select chips by position .*--train START:STOP"):
        read_chips(folder, indices=[1])


def test_read_chips_orders_names_with_several_numbers_by_their_numbers(tmp_path):
    chips = read_chips(_old_style_folder(tmp_path / "old"))
    # by the last number (the row), then the column as a number: q_2_0 before q_10_0
    assert chips.names == [f"q_{c}_{r}" for r in range(2) for c in range(11)]
    np.testing.assert_array_equal(chips.images[:, 0, 0], 10 + np.arange(22))


# --- cut boxes on lon/lat chips: a crater is 1/cos(lat) wider than tall --------------------------

@pytest.fixture
def north_chips(tmp_path):
    """Four 64 px chips at 40 N, with craters cut by the edges between them, and the catalog's own pixels."""
    img = np.random.default_rng(2).integers(20, 230, (128, 128)).astype(np.float32)
    ds = _mosaic(img, south=40.0)
    # one crater across the edge between the northern chips (a vertical edge), one across the
    # edge between the western chips (a horizontal edge): about 20 px tall and 26 px wide
    cat = _catalog_at(ds, [60.0, 20.0], [20.0, 60.0], [2.0, 2.0])
    out = write_chips(ds, cat, tmp_path / "chips", size=64)
    return out, catalog_pixels(ds, cat), cat


def test_write_chips_boxes_are_the_catalog_ellipses(north_chips):
    out, truth, cat = north_chips
    # the premise: at 40 N the boxes are stretched across by 1/cos(lat), uncut as written
    np.testing.assert_allclose(truth["width_px"] / truth["height_px"], 1 / np.cos(np.radians(cat["lat"])), rtol=1e-9)
    assert truth["width_px"][1] > 1.3 * truth["height_px"][1]
    boxes = read_chips(out, edge_boxes="box").craters
    # the crater across the horizontal edge keeps its whole (stretched) width on both chips
    np.testing.assert_allclose(boxes.loc[boxes["width_px"] > 20, "width_px"], [truth["width_px"][1]] * 2, atol=1e-3)


@pytest.mark.parametrize("edge_boxes", ["circle"])
def test_cut_boxes_come_back_as_the_catalog_craters(north_chips, edge_boxes):
    out, truth, _ = north_chips
    chips = read_chips(out, edge_boxes=edge_boxes)
    index = pd.read_csv(out / "index.csv")
    c = chips.craters.merge(index[["col", "row"]], left_on="chip", right_index=True)
    assert c["edge_cut"].all() and len(c) == 4  # each crater on two chips, cut on both
    x = c["x"] + 64 * c["col"]
    y = c["y"] + 64 * c["row"]
    which = (y > 40).astype(int)  # the crater across the horizontal edge is the second one
    expected = truth.iloc[which.to_numpy()]
    # centres and diameters as the catalog's (the mean of the ellipse's sides, as an uncut box's)
    np.testing.assert_allclose(x, expected["x"], atol=0.02)
    np.testing.assert_allclose(y, expected["y"], atol=0.02)
    np.testing.assert_allclose(c["diameter_px"], expected["diameter_px"], atol=0.02)


def test_one_label_file_is_restored_by_its_folders_index(north_chips):
    out, truth, _ = north_chips
    # the southern part of the crater across the horizontal edge: only its top 6 px are on the chip
    index = pd.read_csv(out / "index.csv")
    stem = Path(index.loc[(index["col"] == 0) & (index["row"] == 1), "file"].item()).stem
    labels = read_yolo_labels(out / "labels" / f"{stem}.txt")
    assert len(labels) == 1 and bool(labels["edge_cut"].iloc[0])
    np.testing.assert_allclose(labels[["x", "y", "diameter_px"]].to_numpy()[0],
                               [truth["x"][1], truth["y"][1] - 64, truth["diameter_px"][1]], atol=0.02)


def test_chips_the_index_does_not_list_are_restored_as_on_square_pixels_with_a_warning(north_chips):
    out, truth, _ = north_chips
    index = pd.read_csv(out / "index.csv")
    index[index["file"] != "scene_2.png"].to_csv(out / "index.csv", index=False)
    with pytest.warns(UserWarning, match=r"has no row for 1 chip\(s\) \(scene_2\).*add their rows"):
        chips = read_chips(out)
    listed = chips.craters[chips.craters["chip"] == 0]  # still restored at their latitude
    np.testing.assert_allclose(np.sort(listed["diameter_px"]), np.sort(truth["diameter_px"]), atol=0.02)
    square = chips.craters[chips.craters["chip"] == 2]  # the old rule: the longer side
    np.testing.assert_allclose(square["diameter_px"], square["width_px"])


def test_an_index_without_bounds_leaves_plain_chips_plain(tmp_path):
    folder = _old_style_folder(tmp_path / "plain", ncols=1, nrows=1, size=32)
    # cut on the left, 6.4 x 12.8 px: a circle of 12.8 px whose right edge stays at 6.4
    (folder / "labels" / "q_0_0.txt").write_text("0 0.1 0.5 0.2 0.4\n")
    pd.DataFrame({"file": ["q_0_0.png"], "notes": ["not a crop index"]}).to_csv(folder / "index.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = read_chips(folder).craters
    np.testing.assert_allclose(c[["x", "y", "diameter_px"]].to_numpy(), [[-0.5, 15.5, 12.8]], atol=1e-9)
