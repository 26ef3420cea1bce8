"""Mosaics on an image pyramid: coarser levels of a cube, the catalog across levels, and the
model chosen by the mosaic's pixel size."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from marscraters import cli
from marscraters.assemble import catalog_from_mosaic, catalog_from_probability
from marscraters.crs import Grid
from marscraters.errors import InvalidArgumentError
from marscraters.mosaic import coarsen_mosaic, mosaic_from_array
from marscraters.segment import model_for_mosaic, segment

PPD = 592.747  # THEMIS' 100 m/px
M_PER_DEG = 2 * np.pi * 3396190 / 360


def _mosaic(image: np.ndarray, metres: float = 100.0, chunks: int | None = None):
    deg = image.shape[0] * metres / M_PER_DEG, image.shape[1] * metres / M_PER_DEG
    data = da.from_array(image, chunks=chunks) if chunks else image
    return mosaic_from_array(data, (30.0, -deg[0], 30.0 + deg[1], 0.0))


@pytest.fixture(scope="module")
def big_crater():
    """A 768-px THEMIS-like mosaic with a 32 km (320 px) crater among four of 2.5-6 km: the big
    one is beyond one scale's reach (256 px), the others are not."""
    from marscraters.synthetic import render_surface

    craters = pd.DataFrame({"x": [380.0, 150, 600, 200, 620], "y": [400.0, 130, 150, 620, 600],
                            "diameter_km": [32.0, 3.0, 2.5, 4.0, 6.0], "sigma_km": 0.0, "freshness": 1.0})
    image = render_surface((768, 768), (0.1, 0.1), craters, np.random.default_rng(0), streaks=0, seams=False)
    return image.astype(np.float32), craters


def test_coarsen_mosaic_averages_whole_cells_on_the_same_corner():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (103, 90)).astype(np.float32)
    image[:3, :3] = np.nan  # 9 of a 4x4 cell's 16 pixels: mostly no data
    image[10, 10] = np.nan  # one of 16: the cell keeps the mean of the rest
    ds = _mosaic(image)
    coarse = coarsen_mosaic(ds, 4)
    assert coarse.ir.shape == (25, 22)  # the last 3 rows and 2 columns make no whole cell
    assert np.isnan(coarse.ir.values[0, 0])
    assert coarse.ir.values[2, 2] == pytest.approx(np.nanmean(image[8:12, 8:12]), rel=1e-6)
    assert coarse.ir.values[5, 7] == pytest.approx(image[20:24, 28:32].mean(), rel=1e-6)
    fine, grid = Grid.from_dataset(ds), Grid.from_dataset(coarse)
    # same north-west corner, pixels 4x as big: a coarse centre is the centre of its cell
    assert (grid.transform.c, grid.transform.f) == pytest.approx((fine.transform.c, fine.transform.f))
    assert grid.transform.a == pytest.approx(4 * fine.transform.a)
    assert coarse.attrs["px_per_deg"] == pytest.approx(ds.attrs["px_per_deg"] / 4)
    lon, lat = grid.pixel_to_lonlat(np.array([3.0]), np.array([5.0]))
    lon_f, lat_f = fine.pixel_to_lonlat(np.array([4 * 3 + 1.5]), np.array([4 * 5 + 1.5]))
    assert (lon[0], lat[0]) == pytest.approx((lon_f[0], lat_f[0]))
    # lazy and independent of the chunks, a level of a level is the product
    for chunks in (17, (50, 33), 103):
        lazy = coarsen_mosaic(_mosaic(image, chunks=chunks), 4)
        assert isinstance(lazy.ir.data, da.Array)
        np.testing.assert_array_equal(lazy.ir.values, coarse.ir.values)
    assert coarsen_mosaic(coarsen_mosaic(ds, 2), 2).attrs["coarsened_by"] == 4
    assert coarsen_mosaic(ds, 1) is ds


def test_antialiased_halvings_are_skimage_rescale_and_chunk_invariant():
    from skimage.transform import rescale

    image = np.random.default_rng(1).uniform(0, 255, (201, 150)).astype(np.float32)
    half = coarsen_mosaic(_mosaic(image), 2, antialias=True).ir.values
    # what detect makes of an image's half, edges included (the odd last row has no whole cell)
    expected = rescale(image[:200], 0.5, order=1, anti_aliasing=True, preserve_range=True)
    np.testing.assert_allclose(half, expected, atol=1e-3)
    quarter = coarsen_mosaic(_mosaic(image), 4, antialias=True).ir.values
    for chunks in (23, (64, 37)):
        lazy = coarsen_mosaic(_mosaic(image, chunks=chunks), 4, antialias=True)
        assert isinstance(lazy.ir.data, da.Array)
        np.testing.assert_array_equal(lazy.ir.values, quarter)
    gappy = image.copy()
    gappy[:6, :6] = np.nan  # 3x3 coarse pixels mostly no data
    assert np.isnan(coarsen_mosaic(_mosaic(gappy), 2, antialias=True).ir.values[:3, :3]).all()
    with pytest.raises(InvalidArgumentError, match="power of 2"):
        coarsen_mosaic(_mosaic(image), 3, antialias=True)


@pytest.mark.parametrize("factor, message", [(0, ">= 1"), (1.5, "whole number"), (True, "whole number"),
                                             (200, "leaves no pixel")])
def test_coarsen_mosaic_refuses_bad_factors(factor, message):
    with pytest.raises(InvalidArgumentError, match=message):
        coarsen_mosaic(_mosaic(np.zeros((103, 90), np.float32)), factor)


def test_the_pyramid_finds_a_crater_too_big_for_one_scale(big_crater):
    image, _ = big_crater
    ds = _mosaic(image)
    one = ds.craters.catalog(levels=1, progress=False)
    pyramid = ds.craters.catalog(progress=False)
    assert pyramid.attrs["levels"] == [1.0, 0.5, 0.25]
    big = pyramid[pyramid["diameter_km"] > 20]
    assert len(big) == 1 and big["level"].iloc[0] >= 1
    assert big["diameter_km"].iloc[0] == pytest.approx(32.0, rel=0.1)
    assert (big[["x", "y"]].to_numpy()[0] == pytest.approx([380, 400], abs=10))
    assert not (one["diameter_km"] > 20).any()
    # the recorded limits are what all the levels searched, not the finest level's (it said 160 px)
    params = pyramid.attrs["parameters"]
    assert params["min_diameter_px"] <= pyramid["diameter_px"].min()
    assert params["max_diameter_px"] >= big["diameter_px"].iloc[0] > one.attrs["parameters"]["max_diameter_px"]
    # the small craters are the single scale's, found at the mosaic's own pixels
    small = pyramid[pyramid["diameter_km"] < 20].sort_values("crater_id")
    assert len(small) == len(one) >= 3 and (small["level"] == 0).all()
    np.testing.assert_allclose(np.sort(small["lat"]), np.sort(one["lat"]))


def test_the_pyramid_catalog_does_not_depend_on_the_chunks(big_crater):
    image, _ = big_crater
    whole = catalog_from_mosaic(_mosaic(image), progress=False)
    chunked = catalog_from_mosaic(_mosaic(image, chunks=(200, 300)), progress=False,
                                  segment_options={"chunks": 256}, block_px=256)
    assert list(whole["crater_id"]) == list(chunked["crater_id"])
    np.testing.assert_allclose(whole[["lat", "lon", "diameter_km", "score"]], chunked[["lat", "lon", "diameter_km", "score"]],
                               atol=1e-5)
    np.testing.assert_array_equal(whole["level"], chunked["level"])


def test_one_level_is_catalog_from_probability_and_a_given_map_is_level_0(big_crater):
    image, _ = big_crater
    ds = _mosaic(image[:400, :400])
    prob = segment(ds)
    plain = catalog_from_probability(prob, mosaic=ds, progress=False)
    one = catalog_from_mosaic(ds, prob, levels=1, progress=False)
    pd.testing.assert_frame_equal(plain[["crater_id", "lat", "lon", "diameter_km", "score"]],
                                  one[["crater_id", "lat", "lon", "diameter_km", "score"]])
    assert catalog_from_mosaic(ds, prob, progress=False)["lat"].tolist() == \
        catalog_from_mosaic(ds, progress=False)["lat"].tolist()
    with pytest.raises(InvalidArgumentError, match="levels"):
        catalog_from_mosaic(ds, prob, levels=0)
    with pytest.raises(InvalidArgumentError, match="unknown option"):
        catalog_from_mosaic(ds, prob, max_diameter_px=100)


def test_the_coarser_levels_take_the_given_maps_precision(big_crater):
    """A map segmented in bfloat16 has its coarser levels segmented in bfloat16 too: the shipped
    network is then held in the process in that arithmetic."""
    from marscraters import segment as sg

    image, _ = big_crater
    ds = _mosaic(image[:400, :400])
    prob = segment(ds, precision="bfloat16")
    assert prob.attrs["precision"] == "bfloat16"
    sg._MODELS.clear()
    cat = catalog_from_mosaic(ds, prob, progress=False)
    assert cat.attrs["levels"][1:] and [k[3] for k in sg._MODELS] == ["bfloat16"]


def test_a_mosaic_nearly_all_saturated_warns():
    image = np.full((160, 160), 255.0, np.float32)
    image[:40] = np.random.default_rng(0).uniform(60, 200, (40, 160))  # a quarter of real ground
    with pytest.warns(UserWarning, match="mosaic's pixels .* nearly all shadow or saturated"):
        _mosaic(image).craters.catalog(progress=False)


def test_a_fine_mosaic_gets_the_model_for_fine_imagery():
    from marscraters.model import DEFAULT_WEIGHTS, FINE_WEIGHTS

    if not FINE_WEIGHTS.is_file():
        pytest.skip("the model for fine imagery is not installed")
    ctx = _mosaic(np.zeros((64, 64), np.float32), metres=6.0)
    assert model_for_mosaic(ctx) == FINE_WEIGHTS
    assert model_for_mosaic(_mosaic(np.zeros((64, 64), np.float32))) is None  # the THEMIS default
    assert model_for_mosaic(ctx, "mine.keras") == "mine.keras"  # a named model wins
    assert segment(ctx).attrs["model_file"] == str(FINE_WEIGHTS.resolve())
    assert segment(_mosaic(np.zeros((64, 64), np.float32))).attrs["model_file"] == str(DEFAULT_WEIGHTS.resolve())


def test_catalog_command_runs_the_pyramid_with_the_mosaic(big_crater, tmp_path, capsys):
    from marscraters.catalog import read_catalog
    from marscraters.mosaic import ingest

    image, _ = big_crater
    ds = _mosaic(image)
    cube = ingest(ds, tmp_path / "cube.zarr")
    pred = tmp_path / "pred.zarr"
    assert cli.main(["-q", "segment", str(cube), "--out", str(pred)]) == 0
    with pytest.raises(SystemExit):
        cli.main(["-q", "catalog", str(pred), "--out", str(tmp_path / "x.gpkg"), "--levels", "none"])
    assert cli.main(["-q", "catalog", str(pred), "--out", str(tmp_path / "x.gpkg"), "--levels", "2"]) == 2
    assert "--mosaic cube.zarr" in capsys.readouterr().err
    assert cli.main(["-q", "catalog", str(pred), "--mosaic", str(cube), "--out", str(tmp_path / "auto.gpkg")]) == 0
    assert cli.main(["-q", "catalog", str(pred), "--mosaic", str(cube), "--levels", "1",
                     "--out", str(tmp_path / "one.gpkg")]) == 0
    auto, one = read_catalog(tmp_path / "auto.gpkg"), read_catalog(tmp_path / "one.gpkg")
    assert (auto["diameter_km"] > 20).sum() == 1 and not (one["diameter_km"] > 20).any()
    assert len(auto) == len(one) + 1


@pytest.mark.realdata
def test_a_ctx_mosaic_finds_what_detect_finds(shared_data):
    """A CTX image as a 6 m georeferenced mosaic gets what detect() gets for the image (validation
    image G): the same model, levels and craters.  Both make their levels by anti-aliased
    resampling; the mosaic's are chunk-invariant halvings of halvings."""
    from marscraters.chips import read_voc_labels
    from marscraters.detect import detect, read_grey_image
    from marscraters.evaluate import evaluate
    from marscraters.model import FINE_WEIGHTS

    if not FINE_WEIGHTS.is_file():
        pytest.skip("the model for fine imagery is not installed")
    folder = shared_data / "ctx-mc11e"
    image = read_grey_image(folder / "images" / "MC11E-G.png")
    found = _mosaic(image, metres=6.0).craters.catalog(progress=False)
    direct = detect(image, pixel_size_m=6.0, progress=False)
    assert found["model_name"].iloc[0] == direct.attrs["model"] == "marscraters-fine-outline-v4"
    # the fine model's own band (48 px): halved down to 1/32, where a 2000 px image's largest crater is in reach
    assert found.attrs["levels"] == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]
    cols = ["x", "y", "diameter_px"]
    same = evaluate(found[cols + ["score"]], direct[cols], rule="deepmoon")
    # the same craters (measured: all 18); the levels below 1/2 are halved twice here, resampled once there
    assert same.n_pred >= 10 and same.precision >= 0.9 and same.recall >= 0.9, same.summary()
    # every crater found at the mosaic's own pixels is detect's, to the pixel
    level0 = found[found["level"] == 0]
    at0 = evaluate(level0[cols + ["score"]], direct[direct["level"] == 0][cols], rule="deepmoon")
    assert len(level0) >= 5 and at0.precision == 1.0 and at0.recall == 1.0
    truth = read_voc_labels(folder / "annotations" / "clustered" / "MC11E-G.xml", min_confidence=3)[cols]
    f1 = [evaluate(c[cols + ["score"]], truth, rule="deepmoon", d_min=16).f1 for c in (found, direct)]
    assert abs(f1[0] - f1[1]) <= 0.02, f1
