"""The data side of training: chips cut from a mosaic, chips read back, crops stitched, whole
mosaics as training images, a catalog's coverage, and the spans and scales `train` takes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marscraters.catalog import make_catalog, write_csv
from marscraters.chips import read_chips, stitch_crops, write_chips
from marscraters.errors import CatalogFormatError, InvalidArgumentError
from marscraters.mosaic import mosaic_from_array
from marscraters.targets import catalog_pixels, render_targets
from marscraters.training import chips_training_set, mosaics_training_set

from .test_chips_labels import (  # a THEMIS-like mosaic, craters placed by pixel
    PPD,
    _catalog_at,
    _mosaic,
)


def _grey(shape=(64, 64), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(20, 230, shape).astype(np.float32)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    from marscraters.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# 1. a crater cut by a chip's corner cannot be restored from its box: no label, counted
# --------------------------------------------------------------------------------------------
def _corner_scene():
    ds = _mosaic(_grey((128, 128)))
    # 2 km (20 px) on the point the four chips share; 1 km cut by the vertical edge only
    return ds, _catalog_at(ds, [63.5, 63.5], [63.5, 20.0], [2.0, 1.0])


def test_write_chips_leaves_out_a_crater_a_chip_corner_cuts(tmp_path):
    ds, cat = _corner_scene()
    out = write_chips(ds, cat, tmp_path / "chips", size=64)
    index = pd.read_csv(out / "index.csv")
    assert index["n_craters_corner"].tolist() == [1, 1, 1, 1]
    assert index["n_craters"].tolist() == [1, 1, 0, 0]
    assert index["n_craters_nodata"].tolist() == [0, 0, 0, 0]
    chips = read_chips(out)
    # what is labelled comes back as the catalog's crater: the one cut on one side only
    truth = catalog_pixels(ds, cat).iloc[1]
    c = chips.craters.merge(index[["col", "row"]], left_on="chip", right_index=True)
    np.testing.assert_allclose(c["x"] + 64 * c["col"], [truth["x"]] * 2, atol=0.02)
    np.testing.assert_allclose(c["diameter_px"], [truth["diameter_px"]] * 2, atol=0.02)


def test_cli_chips_says_how_many_craters_it_left_unlabelled(tmp_path, capsys):
    ds, cat = _corner_scene()
    ds.to_zarr(tmp_path / "cube.zarr", zarr_format=3, consolidated=False)
    write_csv(cat, tmp_path / "cat.csv")
    code, out, err = _run(["-q", "chips", str(tmp_path / "cube.zarr"), "--catalog", str(tmp_path / "cat.csv"),
                           "--size", "64", "--out", str(tmp_path / "chips")], capsys)
    assert code == 0, err
    assert "4 cut by a chip's corner" in out


# --------------------------------------------------------------------------------------------
# 2. a 0..1 float mosaic is an 8-bit image divided by 255, not black and white
# --------------------------------------------------------------------------------------------
def test_write_chips_writes_a_0_to_1_mosaic_on_the_8_bit_scale(tmp_path):
    levels = _grey()
    out = write_chips(_mosaic(levels / 255.0), make_catalog([], [], []), tmp_path / "chips", size=64)
    written = np.asarray(Image.open(out / "images" / "scene_0.png"))
    np.testing.assert_array_equal(written, levels)


def test_write_chips_still_refuses_levels_beyond_8_bit(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"reach 20..4000.*rescale its ir to 0..255"):
        levels = _grey()
        levels[0, 0] = 4000
        write_chips(_mosaic(levels), make_catalog([], [], []), tmp_path / "chips", size=64)


# --------------------------------------------------------------------------------------------
# 3. palette and grey+alpha chips are the picture detect reads
# --------------------------------------------------------------------------------------------
def test_read_chips_reads_palette_grey_alpha_and_rgba_as_detect_does(tmp_path):
    from marscraters.detect import read_grey_image

    grey = Image.fromarray(_grey((32, 32)).astype(np.uint8))
    (tmp_path / "images").mkdir()
    grey.save(tmp_path / "images" / "c0.png")
    grey.convert("RGB").quantize(256).save(tmp_path / "images" / "c1.png")  # palette: indices, not levels
    grey.convert("LA").save(tmp_path / "images" / "c2.png")  # grey with an opaque alpha band
    rgba = np.asarray(grey.convert("RGBA")).copy()
    rgba[0, :5, 3] = 0  # a transparent corner: no data, as detect and ingest read it
    Image.fromarray(rgba).save(tmp_path / "images" / "c3.png")
    chips = read_chips(tmp_path)
    for i in range(4):
        np.testing.assert_array_equal(chips.images[i], read_grey_image(tmp_path / "images" / f"c{i}.png"))
    assert np.isnan(chips.images[3][0, :5]).all() and not np.isnan(chips.images[:3]).any()


# --------------------------------------------------------------------------------------------
# 4. the chips' grey scale: 8-bit as before, 0..1 floats on 0..1, 16-bit given by --value-range
# --------------------------------------------------------------------------------------------
def _scaled_chips(root: Path, scale: str, n: int = 4) -> Path:
    """``n`` chips of one bright disk on noise, each with its YOLO box, saved on ``scale``."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(n):
        img = _grey(seed=i) * 0.5
        img[(xx - 32) ** 2 + (yy - 32) ** 2 <= 100] = 220
        path = root / "images" / f"crater{i}"
        if scale == "u8":
            Image.fromarray(img.astype(np.uint8)).save(f"{path}.png")
        elif scale == "u16":
            Image.fromarray(img.astype(np.uint16) * 257).save(f"{path}.png")
        else:  # float levels of an 8-bit image divided by 255
            Image.fromarray((img.astype(np.uint8) / 255.0).astype(np.float32)).save(f"{path}.tif")
        (root / "labels" / f"crater{i}.txt").write_text("0 0.5 0.5 0.3125 0.3125\n")
    return root


def test_chips_training_set_reads_0_to_1_chips_on_their_scale_and_8_bit_ones_as_before(tmp_path):
    from marscraters.model import normalise_image

    u8 = read_chips(_scaled_chips(tmp_path / "u8", "u8"))
    f01 = read_chips(_scaled_chips(tmp_path / "f01", "f01"))
    tr8 = chips_training_set(u8, range(3))
    np.testing.assert_array_equal(tr8.images[0], normalise_image(u8.images[0]))  # the fixed 0..255 scale
    tr = chips_training_set(f01, range(3))
    np.testing.assert_allclose(tr.images, tr8.images, atol=1e-6)
    # judged over all the chips, so that a validation span gets the training span's scale
    va = chips_training_set(f01, range(3, 4), role="validation")
    np.testing.assert_allclose(va.images, chips_training_set(u8, range(3, 4), role="validation").images, atol=1e-6)


def test_16_bit_chips_are_refused_naming_their_scale_which_train_takes(tmp_path, monkeypatch, capsys):
    import marscraters.training

    folder = _scaled_chips(tmp_path / "u16", "u16")
    with pytest.raises(InvalidArgumentError, match=r"span 2570..56540, beyond the 8-bit.*value_range=\(low, high\)"):
        chips_training_set(folder, range(3))
    tr = chips_training_set(folder, range(3), value_range=(0, 65535))
    assert 0.0 <= tr.images.min() and 0.8 < tr.images.max() <= 1.0

    taken = {}

    def fake_train(tr, va, out, config, **kwargs):  # the data `train` would get, without the training
        taken.update(tr=tr, va=va)
        return {"history": []}

    monkeypatch.setattr(marscraters.training, "train", fake_train)
    argv = ["-q", "train", "--chips", str(folder), "--train", "0:3", "--val", "3:4", "--out", str(tmp_path / "run")]
    code, _, err = _run(argv, capsys)
    assert code == 2 and "--value-range LOW HIGH" in err and "value_range" not in err
    code, _, err = _run([*argv, "--value-range", "0", "65535"], capsys)
    assert code == 0, err
    np.testing.assert_allclose(taken["tr"].images, tr.images)
    assert 0.8 < taken["va"].images.max() <= 1.0


# --------------------------------------------------------------------------------------------
# 5. a crop of another resolution is refused, not squeezed into its slot
# --------------------------------------------------------------------------------------------
def test_stitch_crops_refuses_a_crop_of_another_resolution(tmp_path):
    (tmp_path / "images").mkdir()
    rows = []
    for k, size in enumerate([32, 32, 16]):  # three crops of 1 degree side by side, the last at half resolution
        Image.fromarray(_grey((size, size), seed=k).astype(np.uint8)).save(tmp_path / "images" / f"q_{k}.png")
        rows.append({"file": f"q_{k}.png", "quadrangle": "q", "lon_min": 10.0 + k, "lon_max": 11.0 + k,
                     "lat_min": 0.0, "lat_max": 1.0})
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv", index=False)
    with pytest.raises(CatalogFormatError, match=r"q_2.png has 16.0000 px/deg.*group have 32.0000.*resample it"):
        stitch_crops(tmp_path)
    assert len(stitch_crops(tmp_path, files=["q_0.png", "q_1.png"])) == 1  # the others still stitch


# --------------------------------------------------------------------------------------------
# 6. whole mosaics as training images: no label over no data
# --------------------------------------------------------------------------------------------
def test_mosaics_training_set_leaves_out_craters_over_no_data(tmp_path):
    img = _grey()
    img[:, 40:] = np.nan
    ds = _mosaic(img)
    cat = _catalog_at(ds, [15.0, 55.0, 36.0], [30.0, 30.0, 50.0], [1.0, 1.0, 1.5])
    with pytest.warns(UserWarning, match=r"left 1 catalog crater\(s\) unlabelled .* scene.tif \(1\)"):
        data = mosaics_training_set([ds], cat)
    np.testing.assert_allclose(data.craters[["x", "y"]].to_numpy(), [[15.0, 30.0], [36.0, 50.0]], atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a mosaic without no data: every crater, no warning
        assert len(mosaics_training_set([_mosaic(_grey())], cat).craters) == 3


# --------------------------------------------------------------------------------------------
# 7. a catalog that covers only part of the mosaic
# --------------------------------------------------------------------------------------------
def _tile(west: float, east: float, south: float = 0.0, north: float = 10.0, n: int = 20000, seed: int = 0):
    """A dense tiled catalog: ``n`` craters spread over its box (longitudes as given)."""
    rng = np.random.default_rng(seed)
    return make_catalog(rng.uniform(south, north, n), rng.uniform(west, east, n), rng.uniform(1.0, 5.0, n))


def _coverage_warnings(ds, cat) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        catalog_pixels(ds, cat)
        render_targets(ds, cat)
    return [str(w.message) for w in caught if "reaches beyond" in str(w.message)]


def _box(west: float, south: float, size_px: int = 128):
    return mosaic_from_array(_grey((size_px, size_px)), (west, south, west + size_px / PPD, south + size_px / PPD))


def test_a_mosaic_reaching_past_its_tiled_catalog_is_warned_about(tmp_path):
    tile = _tile(10.0, 20.0)
    ds = _box(9.9, 5.0)  # its west 59 px lie in the neighbouring tile
    found = _coverage_warnings(ds, tile)
    assert len(found) == 2  # catalog_pixels and render_targets
    assert "lon -170" not in found[0] and "lon 9.900..10.0" in found[0] and "its west" in found[0]
    assert "neighbouring tile" in found[0]
    # write_chips, through catalog_pixels
    with pytest.warns(UserWarning, match="reaches beyond"):
        write_chips(ds, tile, tmp_path / "chips", size=64)
    # inside the tile, with no crater in its corners: nothing to say
    assert _coverage_warnings(_box(15.0, 5.0), tile) == []
    assert _coverage_warnings(_box(15.0, 5.0, size_px=16), tile) == []


def test_the_coverage_check_wraps_in_longitude():
    west_of_180 = _box(179.9, 5.0)  # lon 179.9..180.12
    # a tile east of the 180 meridian, in the -180..180 convention: the mosaic's west part is outside
    found = _coverage_warnings(west_of_180, _tile(-180.0, -170.0))
    assert found and "lon 179.900..180.000" in found[0]
    # both sides of 180 (in either convention): covered
    both = pd.concat([_tile(170.0, 180.0), _tile(-180.0, -170.0, seed=1)], ignore_index=True)
    assert _coverage_warnings(west_of_180, both) == []
    assert _coverage_warnings(_box(-0.1, 5.0), pd.concat([_tile(350.0, 360.0), _tile(0.0, 10.0, seed=1)])) == []


def test_the_coverage_check_keeps_quiet_for_sparse_catalogs_and_catalogs_of_the_mosaic():
    ds = _box(9.95, 5.0)
    # a sparse catalog (20 craters over 10 degrees) whose westmost crater lies 0.15 deg inside the mosaic
    sparse = make_catalog(np.linspace(5.05, 9.0, 20), np.linspace(10.1, 20.0, 20), np.full(20, 2.0))
    assert _coverage_warnings(ds, sparse) == []
    # a catalog counted on this mosaic, its craters all in the middle
    centre = _catalog_at(ds, [50.0, 64.0, 70.0], [60.0, 64.0, 70.0], [1.0, 1.0, 1.0])
    assert _coverage_warnings(ds, centre) == []


def test_the_coverage_check_keeps_quiet_at_the_pole_under_a_global_catalog():
    """Craters spread over the sphere thin out in degrees of latitude towards a pole: a tile reaching
    90 N under a global catalog is covered (gaps are judged in sin(latitude))."""
    rng = np.random.default_rng(1)
    n = 200_000
    cat = make_catalog(np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n), np.full(n, 2.0))
    ds = mosaic_from_array(rng.uniform(0, 255, (200, 200)).astype(np.float32), (0, 80, 10, 90))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*matmul.*")
        assert len(catalog_pixels(ds, cat)) > 0


def test_the_coverage_check_uses_a_declared_footprint():
    from shapely.geometry import box

    cat = _catalog_at(_box(15.0, 5.0), [10.0], [10.0], [1.0])  # one crater, in a corner of its area
    cat.attrs["footprint"] = box(10.0, 0.0, 20.0, 10.0)
    assert _coverage_warnings(_box(15.0, 5.0), cat) == []
    ds = _box(9.9, 5.0)
    cat = _catalog_at(ds, [100.0], [10.0], [1.0])
    cat.attrs["footprint"] = box(10.0, 0.0, 20.0, 10.0)
    found = _coverage_warnings(ds, cat)
    assert found and "footprint" in found[0] and "lon 9.90" in found[0]


# --------------------------------------------------------------------------------------------
# 8. a validation span without labels is refused before training
# --------------------------------------------------------------------------------------------
def test_validation_chips_without_labels_are_refused_before_training(tmp_path, capsys):
    folder = _scaled_chips(tmp_path / "chips", "u8")
    (folder / "labels" / "crater3.txt").unlink()
    with pytest.raises(InvalidArgumentError, match=r"validation chips .* no crater at all.*chips.labels.*--val START:STOP"):
        chips_training_set(folder, range(3, 4), role="validation")
    out = tmp_path / "run"
    code, _, err = _run(["-q", "train", "--chips", str(folder), "--train", "0:3", "--val", "3:4", "--epochs", "1",
                         "--out", str(out)], capsys)
    assert code == 2 and "--val START:STOP" in err and "filter_catalog" not in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# 9. targets: an empty diameter range is refused before the store is written
# --------------------------------------------------------------------------------------------
def test_targets_refuses_an_empty_diameter_range_before_writing(tmp_path, capsys):
    ds, cat = _corner_scene()
    with pytest.raises(InvalidArgumentError, match="min_km < max_km"):
        render_targets(ds, cat, diameter_range=(3, 3))
    ds.to_zarr(tmp_path / "cube.zarr", zarr_format=3, consolidated=False)
    write_csv(cat, tmp_path / "cat.csv")
    out = tmp_path / "t.zarr"
    code, _, err = _run(["-q", "targets", str(tmp_path / "cube.zarr"), "--catalog", str(tmp_path / "cat.csv"),
                         "--diameter-range", "3", "3", "--out", str(out)], capsys)
    assert code == 2 and "--diameter-range" in err and "min_km < max_km" in err
    assert not out.exists()
