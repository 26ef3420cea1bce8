"""Fixes from the hunt on detect at any pixel size, GeoTIFF input, the multi-scale catalog and
``ds.craters``: a GeoTIFF with a CRS but no geotransform, a DataArray on ``(x, y)``, the ``level``
column when diameter limits skip levels, the mosaic route's pixel-size and ``min_score`` checks,
shadow called a collar, the model at exactly 50 m, a loaded model's settings, and the
accessor's ``segment_options``.

Files are written for real (rasterio) in ``tmp_path``; the network is the hand-set threshold
model of ``test_detect`` (bright pixels are craters), so the results are exact and fast.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

from marscraters.detect import detect
from marscraters.errors import InvalidArgumentError, MissingCRSError, cli_message
from marscraters.mosaic import mosaic_from_array, read_geotiff, read_image

from .test_detect import TRUTH, _disks, _threshold_model

SHAPE = (256, 400)
M_PER_DEG = 2 * np.pi * 3396190 / 360


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _threshold_model(tmp_path_factory.mktemp("m") / "threshold.keras")


def _messages(record):
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


def _ground(shape=SHAPE, seed=0):
    """Textured ground (levels 40..200) with the bright disks of TRUTH: a photograph, not a drawing."""
    rng = np.random.default_rng(seed)
    ground = rng.normal(110, 20, shape).clip(40, 200)
    return np.where(_disks(shape, TRUTH) > 100, 230.0, ground).astype(np.uint8)


def _write_unplaced(path, image, crs="IAU_2015:49910"):
    """A TIFF with a CRS (or none) and GDAL's default geotransform: what `gdal_translate -a_srs CRS
    in.png out.tif` (no -a_ullr), or `gdal_edit.py -a_srs` on a plain TIFF, writes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", height=image.shape[0], width=image.shape[1], count=1,
                           dtype=image.dtype, crs=None if crs is None else CRS.from_string(crs)) as dst:
            dst.write(image, 1)
    return path


# --------------------------------------------------------------------------------------------
# 1. a CRS but no geotransform: not georeferenced (was 1 m per pixel, and flipped)
# --------------------------------------------------------------------------------------------
def test_a_geotiff_with_a_crs_but_no_geotransform_is_a_plain_image(model_path, tmp_path):
    image = _disks(SHAPE, TRUTH).astype(np.uint8)
    path = _write_unplaced(tmp_path / "crs_only.tif", image)
    with pytest.warns(NotGeoreferencedWarning), rasterio.open(path) as src:
        assert src.crs is not None and src.transform.is_identity
    with pytest.raises(InvalidArgumentError, match="has a CRS but no geotransform") as err:
        detect(path, model=model_path)
    text = str(err.value)
    assert "-a_ullr WEST NORTH EAST SOUTH" in text and "pixel_size_m=<metres>" in text
    assert "--pixel-size METRES" in cli_message(text, names={"pixel_size_m": "--pixel-size"})
    # with the pixel size it is the plain image: its rows as stored (not flipped), 100 m not 1 m
    found = detect(path, pixel_size_m=100.0, model=model_path)
    expected = detect(image, pixel_size_m=100.0, model=model_path)
    np.testing.assert_allclose(found[["x", "y", "diameter_m"]].values, expected[["x", "y", "diameter_m"]].values)
    # the mosaic readers: not georeferenced, and the fix named (ingest: --bounds)
    with pytest.raises(MissingCRSError, match="no geotransform") as err:
        read_geotiff(path)
    assert "gdal_edit.py -a_ullr" in str(err.value)
    assert "--bounds WEST SOUTH EAST NORTH" in cli_message(str(err.value), {"--bounds"})
    deg = (SHAPE[0] * 100 / M_PER_DEG, SHAPE[1] * 100 / M_PER_DEG)
    placed = read_image(path, bounds=(30.0, -deg[0], 30.0 + deg[1], 0.0))
    np.testing.assert_array_equal(placed["ir"].values, image.astype(np.float32))  # row 0 is north


def test_a_tiff_without_crs_or_geotransform_is_told_to_give_bounds_too(tmp_path):
    path = _write_unplaced(tmp_path / "plain.tif", _ground(), crs=None)
    with pytest.raises(MissingCRSError, match="no coordinate reference system") as err:
        read_geotiff(path)
    assert "-a_srs" in str(err.value) and "-a_ullr WEST NORTH EAST SOUTH" in str(err.value)
    # one with a geotransform needs its CRS only
    placed = tmp_path / "placed.tif"
    with rasterio.open(placed, "w", driver="GTiff", height=SHAPE[0], width=SHAPE[1], count=1, dtype="uint8",
                       transform=Affine(100.0, 0.0, 0.0, 0.0, -100.0, 0.0)) as dst:
        dst.write(_ground(), 1)
    with pytest.raises(MissingCRSError) as err:
        read_geotiff(placed)
    assert "-a_srs" in str(err.value) and "-a_ullr" not in str(err.value)


# --------------------------------------------------------------------------------------------
# 2. a georeferenced DataArray on (x, y): read as (y, x) without a squeeze too
# --------------------------------------------------------------------------------------------
def test_a_georeferenced_dataarray_on_x_y_is_read_as_y_x(model_path):
    deg = (SHAPE[0] * 100 / M_PER_DEG, SHAPE[1] * 100 / M_PER_DEG)
    ir = mosaic_from_array(_disks(SHAPE, TRUTH), (30.0, -deg[0] / 2, 30.0 + deg[1], deg[0] / 2))["ir"]
    expected = detect(ir, model=model_path)  # the equator: no squeeze
    assert len(expected) == len(TRUTH)
    found = detect(ir.transpose("x", "y"), model=model_path)
    np.testing.assert_allclose(found[["x", "y", "diameter_px"]].values, expected[["x", "y", "diameter_px"]].values)


# --------------------------------------------------------------------------------------------
# 3. the level column: numbered in the full pyramid, also when diameter limits skip levels
# --------------------------------------------------------------------------------------------
def _big_disk():
    # a 200 px disk at 100 m: levels 1 and 1/2; level 0 keeps up to 160 px, so it is found at 1/2
    return _disks((512, 512), [(256.0, 256.0, 200.0), (100.0, 100.0, 30.0)])


def test_detect_levels_keep_their_index_when_the_finest_is_skipped(model_path):
    image = _big_disk()
    every = detect(image, pixel_size_m=100.0, model=model_path)
    big = every[every["diameter_px"] > 150]
    assert list(big["level"]) == [1]
    coarse = detect(image, pixel_size_m=100.0, model=model_path, extract_options={"min_diameter_px": 170})
    assert list(coarse["level"]) == [1]  # still a halving, not level 0
    np.testing.assert_allclose(coarse[["x", "y", "diameter_px"]].values, big[["x", "y", "diameter_px"]].values)


def test_mosaic_catalog_levels_keep_their_index_when_the_finest_is_skipped(model_path, monkeypatch):
    import marscraters.segment as sg
    from marscraters.assemble import catalog_from_mosaic

    # each level's map is its bright pixels, as the threshold model's (segment needs a kernel size it lacks)
    monkeypatch.setattr(sg, "segment", lambda level, model, **kw: (level["ir"] > 140).astype(np.float32)
                        .rename("crater_probability"))
    image = _big_disk()
    deg = image.shape[0] * 100 / M_PER_DEG
    ds = mosaic_from_array(image, (30.0, -deg / 2, 30.0 + deg, deg / 2))
    kw = {"model": model_path, "verify": False, "progress": False}
    every = catalog_from_mosaic(ds, **kw)
    assert list(every.loc[every["diameter_px"] > 150, "level"]) == [1]
    coarse = catalog_from_mosaic(ds, extract_options={"min_diameter_px": 170}, **kw)
    assert coarse.attrs["levels"] == [0.5] and list(coarse["level"]) == [1]


def test_merge_levels_numbers_tables_by_the_indices_given():
    import pandas as pd

    from marscraters.pyramid import Level, merge_levels

    table = pd.DataFrame({"x": [10.0], "y": [10.0], "diameter_px": [60.0], "score": [0.9]})
    out = merge_levels([table], [Level(0.25, 51.2, None)], indices=[2])
    assert list(out["level"]) == [2] and out["diameter_px"].iloc[0] == 240.0
    with pytest.raises(InvalidArgumentError, match="indices"):
        merge_levels([table], [Level(0.25, 51.2, None)], indices=[1, 2])


# --------------------------------------------------------------------------------------------
# 4. the mosaic route checks the pixel size as detect does (a transform in km under metres)
# --------------------------------------------------------------------------------------------
def _km_as_metres():
    """A 6 m CTX-like mosaic whose bounds were written in km under a metre CRS: 0.006 m pixels."""
    image = _ground()
    return mosaic_from_array(image, (0.0, -SHAPE[0] * 0.006, SHAPE[1] * 0.006, 0.0), crs="IAU_2015:49910")


def test_the_mosaic_route_refuses_pixel_sizes_detect_refuses(tmp_path, monkeypatch):
    import marscraters.segment as sg
    from marscraters.assemble import catalog_from_mosaic
    from marscraters.mosaic import ingest

    ds = _km_as_metres()
    monkeypatch.setattr(sg, "segment", lambda *a, **k: pytest.fail("segmented before the check"))
    for call in (lambda: catalog_from_mosaic(ds, progress=False), lambda: ds.craters.catalog(progress=False),
                 lambda: sg.model_for_mosaic(ds)):
        with pytest.raises(InvalidArgumentError, match=r"gives 0\.006 m per pixel, outside the 1-1000 m") as err:
            call()
        assert "gdal_edit.py -a_ullr" in str(err.value)
    # ingest writes it (a cube also feeds target layers and training), and warns
    with pytest.warns(UserWarning, match=r"0\.006 m per pixel, outside the 1-1000 m.*will refuse it"):
        ingest(ds, tmp_path / "km.zarr", progress=False)


# --------------------------------------------------------------------------------------------
# 5. ragged black shadow is not a no-data collar: the shadow warning is given
# --------------------------------------------------------------------------------------------
def test_clipped_shadow_is_not_called_a_collar(model_path):
    rng = np.random.default_rng(3)
    smooth = np.cumsum(rng.normal(0, 1, SHAPE), axis=1)  # streaky terrain, clipped hard to black
    noisy = smooth + rng.normal(0, 4, SHAPE)
    cut = np.quantile(noisy, 0.5)
    image = np.clip((noisy - cut) * 255 / (noisy.max() - cut), 0, 255).astype(np.float32)
    assert (image == 0).mean() == pytest.approx(0.5, abs=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detect(image, pixel_size_m=100.0, model=model_path)
    said = _messages(caught)
    assert not [m for m in said if "collar" in m and "most likely" in m], said
    assert [m for m in said if "nearly all shadow or saturated" in m], said
    # a solid black collar of the same image is still found
    collar = image.copy()
    collar[:, :120] = 0.0
    collar[:, 120:][image[:, 120:] == 0] = 1.0  # the rest keeps its shadow, one level up
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detect(collar, pixel_size_m=100.0, model=model_path)
    assert [m for m in _messages(caught) if "most likely a no-data collar" in m]


# --------------------------------------------------------------------------------------------
# 6. min_score is checked before any network runs on the mosaic route
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("score", [2, 1.5, -0.5, "high"])
def test_the_mosaic_route_checks_min_score_up_front(monkeypatch, score):
    import marscraters.segment as sg
    from marscraters.assemble import catalog_from_mosaic, catalog_from_probability

    image = _ground()
    deg = SHAPE[0] * 100 / M_PER_DEG, SHAPE[1] * 100 / M_PER_DEG
    ds = mosaic_from_array(image, (30.0, -deg[0], 30.0 + deg[1], 0.0))
    monkeypatch.setattr(sg, "segment", lambda *a, **k: pytest.fail("segmented before the check"))
    prob = xr.zeros_like(ds["ir"]).rename("crater_probability")
    for call in (lambda: catalog_from_mosaic(ds, extract_options={"min_score": score}, verify=False),
                 lambda: ds.craters.catalog(extract_options={"min_score": score}),
                 lambda: catalog_from_probability(prob, extract_options={"min_score": score}, verify=False)):
        with pytest.raises(InvalidArgumentError, match="min_score must be a number from 0 up to") as err:
            call()
        assert "--min-score 0.5" in cli_message(str(err.value))


# --------------------------------------------------------------------------------------------
# 7. the model at exactly 50 m: the same on any grid
# --------------------------------------------------------------------------------------------
def test_fifty_metres_chooses_one_model_whatever_the_grid():
    from marscraters.model import DEFAULT_WEIGHTS, FINE_WEIGHTS, default_model_for
    from marscraters.segment import model_for_mosaic

    assert default_model_for(50.0) == default_model_for(49.99999791083354) == DEFAULT_WEIGHTS
    if FINE_WEIGHTS.is_file():
        assert default_model_for(49.99) == FINE_WEIGHTS
    image = np.zeros((64, 64), np.float32)
    degrees = mosaic_from_array(image, (0.0, -64 / 1185.494, 64 / 1185.494, 0.0))  # 2 x THEMIS' px/deg
    metres = mosaic_from_array(image, (0.0, -3200.0, 3200.0, 0.0), crs="IAU_2015:49910")
    assert model_for_mosaic(degrees) is None and model_for_mosaic(metres) is None  # both: THEMIS


# --------------------------------------------------------------------------------------------
# 8. a loaded model: its file's settings, or a warning that the THEMIS model's are assumed
# --------------------------------------------------------------------------------------------
def test_a_loaded_model_uses_its_files_settings(tmp_path):
    import keras

    from marscraters.detect import _setup, model_info
    from marscraters.model import load_model, save_model

    inp = keras.Input((None, None, 1))
    net = keras.Model(inp, keras.layers.Conv2D(1, 1, activation="sigmoid")(inp))
    path = save_model(net, tmp_path / "fine.keras", metadata={
        "training": {"kind": "ring"}, "native_pixel_size_m": 12.5, "pyramid_top_px": 48, "name": "my-fine",
        "extract": {"threshold": 0.3}, "tta": 2})
    loaded = load_model(path)
    assert model_info(loaded) == model_info(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = _setup(loaded, True, kind=None, native=None, verify=False, extract_options=None)
    assert not [m for m in _messages(caught) if "metadata" in m]
    assert (run.kind, run.native, run.top_px, run.tta, run.name) == ("ring", 12.5, 48, 2, "my-fine")
    # built in memory: the THEMIS model's settings, said
    with pytest.warns(UserWarning, match=r"carries no marscraters metadata.*pyramid band \(128 px\).*100 m"):
        run = _setup(net, True, kind=None, native=None, verify=False, extract_options=None)
    assert run.top_px is None and run.native == 100.0


def test_detect_warns_that_an_in_memory_model_gets_the_themis_settings():
    import keras

    inp = keras.Input((None, None, 1))
    net = keras.Model(inp, keras.layers.Conv2D(1, 1, activation="sigmoid")(inp))
    with pytest.warns(UserWarning, match="pass the model's file path|Pass the model's file path"):
        detect(_disks((64, 64), [(32.0, 32.0, 20.0)]), pixel_size_m=100.0, model=net, verify=False)


# --------------------------------------------------------------------------------------------
# 9. ds.craters.catalog(segment_options=...) is merged with the loose options
# --------------------------------------------------------------------------------------------
def test_the_accessor_merges_segment_options(monkeypatch):
    import marscraters.assemble as asm

    seen = {}
    monkeypatch.setattr(asm, "catalog_from_mosaic", lambda ds, prob, **kw: seen.update(kw))
    deg = 64 / 592.747
    ds = mosaic_from_array(np.zeros((64, 64), np.float32), (0.0, -deg, deg, 0.0))
    ds.craters.catalog(segment_options={"chunks": 256, "tta": 2}, tta=4, progress=False)
    assert seen["segment_options"] == {"chunks": 256, "tta": 4} and seen["progress"] is False


def test_a_thin_fill_band_along_the_edge_is_still_a_collar():
    """The solidity test must not veto a fill whose parts are thin only because they lie along the
    image's edge (a 2-px border; a 12-row band joined to a 2-px one), as the opening alone did."""
    from scipy import ndimage

    from marscraters.detect import _collar

    rng = np.random.default_rng(3)
    g = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 2)
    img = np.round(np.interp(g, [g.min(), g.max()], [1, 255])).astype(np.float32)
    img[:2] = img[-2:] = 0
    img[:, :2] = img[:, -2:] = 0
    with pytest.warns(UserWarning, match="no-data collar"):
        assert _collar(img, 0.0, 255.0) is not None
    g = ndimage.gaussian_filter(rng.normal(size=(200, 200)), 2)
    img = np.round(np.interp(g, [g.min(), g.max()], [1, 255])).astype(np.float32)
    img[:, :2] = 0
    img[:12, :] = 0
    with pytest.warns(UserWarning, match="no-data collar"):
        assert _collar(img, 0.0, 255.0) is not None
