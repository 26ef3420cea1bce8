"""`detect` fixes: masked arrays, a score independent of min_score, early option checks, lon/lat
pixels square on the ground, the pyramid of fine imagery, and the single-band hint."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from marscraters.detect import detect, model_info
from marscraters.errors import InvalidArgumentError
from marscraters.model import _as_image
from marscraters.pyramid import pyramid_levels
from marscraters.verify import Verifier, verify_craters

from .test_detect import TRUTH, _check, _disks, _threshold_model
from .test_detect_geotiff import PPD_100M

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "detect.md"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _threshold_model(tmp_path_factory.mktemp("m") / "threshold.keras")


# --------------------------------------------------------------------------------------------
# 1. numpy masked arrays: masked pixels are no data, as NaN is
# --------------------------------------------------------------------------------------------
def _masked_disks():
    img = _disks((256, 400), TRUTH)
    masked = np.ma.masked_array(img.copy(), mask=np.zeros(img.shape, bool))
    masked.mask[:, 260:] = True  # over the crater at x = 300, which still shows under the mask
    masked.data[:, 380:] = np.float32(-3.4028235e38)  # a float nodata value, as rasterio's masked reads hold
    return img, masked


def test_a_masked_array_is_read_with_its_masked_pixels_as_no_data(model_path):
    _, masked = _masked_disks()
    expected = detect(masked.filled(np.nan), pixel_size_m=100.0, model=model_path)
    found = detect(masked, pixel_size_m=100.0, model=model_path)
    pd.testing.assert_frame_equal(found, expected)
    assert len(found) == 2 and (found["x"] < 260).all()  # none inside the mask
    _check(found, TRUTH[:2])


def test_masked_arrays_in_stacks_lists_and_mappings(model_path):
    img, masked = _masked_disks()
    one = detect(masked, pixel_size_m=100.0, model=model_path)
    stack = np.ma.stack([masked, masked])
    for many in (stack, [masked, img], {"a": masked}):
        found = detect(many, pixel_size_m=100.0, model=model_path)
        first = found[found["image"] == found["image"].iloc[0]].drop(columns="image").reset_index(drop=True)
        pd.testing.assert_frame_equal(first, one, check_like=True)


def test_as_image_reads_masked_pixels_as_nan_and_keeps_unmasked_arrays():
    arr = np.ma.masked_array(np.arange(6, dtype=np.uint8).reshape(2, 3), mask=[[1, 0, 0], [0, 0, 1]])
    out = _as_image(arr)
    assert out.dtype == np.float32 and not np.ma.isMaskedArray(out)
    np.testing.assert_array_equal(np.isnan(out), arr.mask)
    np.testing.assert_array_equal(out[~arr.mask], arr.data[~arr.mask])
    nothing = _as_image(np.ma.masked_array(arr.data))  # nothing masked: the data as they are
    assert nothing.dtype == np.uint8


# --------------------------------------------------------------------------------------------
# 2. the verifier's cascade: a kept crater's score does not depend on the threshold
# --------------------------------------------------------------------------------------------
class _Oriented:
    """A stand-in classifier whose probability depends on the orientation of a patch: the image
    channel's top-left pixel, so the 4 quarter turns see the patch's 4 corners."""

    inputs = (types.SimpleNamespace(shape=(None, 32, 32, 2)), types.SimpleNamespace(shape=(None, 7)))

    def predict_on_batch(self, batch):
        return 1.0 / (1.0 + np.exp(-4.0 * (batch["patch"][:, 0, 0, 0] - 0.5)))[:, None]


def _corner_patches(n=200, seed=0):
    rng = np.random.default_rng(seed)
    patches = rng.uniform(0.0, 1.0, (n, 32, 32, 2)).astype(np.float32)
    # corners far apart: one orientation alone often lies far from the average of four
    for r, c in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        patches[:, r, c, 0] = rng.uniform(-0.5, 1.5, n)
    return patches, np.zeros((n, 7), np.float32)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.55, 0.9])
def test_the_cascade_averages_every_candidate_that_can_reach_the_threshold(threshold):
    v = Verifier(_Oriented(), 0.55)
    patches, feats = _corner_patches()
    one, four = v.predict(patches, feats, tta=1), v.predict(patches, feats, tta=4)
    got = v.predict(patches, feats, tta=4, margin=0.3, threshold=threshold)
    reach = one >= threshold - 0.3
    np.testing.assert_allclose(got[reach], four[reach], rtol=1e-6)  # far above the threshold too
    np.testing.assert_allclose(got[~reach], one[~reach], rtol=1e-6)
    if threshold + 0.3 < 0.95:
        assert (one >= threshold + 0.3).any()  # far above: the old cascade left them at one orientation


def test_a_kept_craters_score_does_not_depend_on_the_threshold():
    rng = np.random.default_rng(1)
    image = rng.normal(0.5, 0.2, (160, 160)).astype(np.float32)
    prob = rng.uniform(0.0, 1.0, (160, 160)).astype(np.float32)
    n = 60
    craters = pd.DataFrame({"x": rng.uniform(20, 140, n), "y": rng.uniform(20, 140, n),
                            "diameter_px": rng.uniform(8, 30, n), "score": rng.uniform(0.3, 1.0, n)})
    v = Verifier(_Oriented(), 0.55)
    zero = verify_craters(craters, image, prob, v, threshold=0.0)  # every candidate, averaged
    assert len(zero) == n
    one = v.predict(v.patches(image, prob, craters), np.zeros((n, 7), np.float32), tta=1)
    for t in (0.3, 0.45, 0.55, 0.7):
        kept = verify_craters(craters, image, prob, v, threshold=t)
        key = ["x", "y", "diameter_px"]
        both = kept.merge(zero, on=key, suffixes=("", "_zero"))
        assert len(both) == len(kept)
        np.testing.assert_allclose(both["score"], both["score_zero"], rtol=1e-6)  # the same score
        # what min_score=t keeps is min_score=0's rows scored >= t, but for candidates seen once far below t
        missed = zero[zero["score"] >= t].merge(kept[key], on=key, how="left", indicator=True)
        missed = missed[missed["_merge"] == "left_only"]
        far = craters.assign(one=one).merge(missed[key], on=key)["one"]
        assert (far < t - 0.3).all()


# --------------------------------------------------------------------------------------------
# 3 and 5. the caller's finder options are checked before any work
# --------------------------------------------------------------------------------------------
def test_min_diameter_above_max_diameter_is_refused_before_any_work(tmp_path):
    opts = {"min_diameter_px": 30, "max_diameter_px": 20}
    # a missing image and model: the options fail first
    with pytest.raises(InvalidArgumentError, match=r"max_diameter_px=20 is smaller than min_diameter_px=30\."):
        detect(tmp_path / "missing.png", pixel_size_m=100.0, model=tmp_path / "missing.keras", extract_options=opts)


def test_min_diameter_above_max_diameter_used_to_give_an_empty_table(model_path):
    img = _disks((256, 400), TRUTH)
    with pytest.raises(InvalidArgumentError, match="is smaller than min_diameter_px"):
        detect(img, pixel_size_m=100.0, model=model_path, extract_options={"min_diameter_px": 30,
                                                                           "max_diameter_px": 20})
    # in order, the limits still work (diameters 20-30: the crater of 30 px and that of 20 px)
    found = detect(img, pixel_size_m=100.0, model=model_path, extract_options={"min_diameter_px": 18,
                                                                               "max_diameter_px": 34})
    assert len(found) == 2


@pytest.mark.parametrize("verify", [None, False])
@pytest.mark.parametrize("score", [1.5, 1, 1.0, -0.1, True, "high", float("nan")])
def test_min_score_outside_0_to_1_is_refused_before_any_work(tmp_path, verify, score):
    pattern = re.escape(f'extract_options={{"min_score": {score!r}}}: min_score must be a number from 0 up to '
                        "(not including) 1")
    with pytest.raises(InvalidArgumentError, match=pattern):
        detect(tmp_path / "missing.png", pixel_size_m=100.0, model=tmp_path / "missing.keras", verify=verify,
               extract_options={"min_score": score})


def test_min_score_above_1_without_the_verifier_used_to_give_an_empty_table(model_path):
    img = _disks((256, 400), TRUTH)
    with pytest.raises(InvalidArgumentError, match="min_score must be a number from 0"):
        detect(img, pixel_size_m=100.0, model=model_path, verify=False, extract_options={"min_score": 1.5})
    # in range it filters; None is the default (the model file's own), not an error after the network
    everything = detect(img, pixel_size_m=100.0, model=model_path, verify=False, extract_options={"min_score": 0})
    pd.testing.assert_frame_equal(
        detect(img, pixel_size_m=100.0, model=model_path, verify=False, extract_options={"min_score": None}),
        detect(img, pixel_size_m=100.0, model=model_path, verify=False))
    assert len(everything) >= len(TRUTH)


# --------------------------------------------------------------------------------------------
# 6. the guide's pyramid of fine imagery is the one detect runs
# --------------------------------------------------------------------------------------------
def test_the_guide_lists_the_pyramid_detect_runs_for_a_ctx_image():
    from marscraters.model import default_model_for

    info = model_info(default_model_for(6))
    levels = pyramid_levels((2000, 2000), 6, info["native_pixel_size_m"], top_px=info["pyramid_top_px"])
    factors = [lv.factor for lv in levels]
    assert factors == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]
    text = " ".join(GUIDE.read_text().split())
    assert str(factors) in text and "down to 1/32" in text
    assert 'top_px=info["pyramid_top_px"]' in text
    assert "a 2000 px CTX image at 1, 1/2, 1/4 and 1/8" not in text  # the THEMIS band's pyramid
    assert "keep 19–60 px" in text  # the fine model's band: 48 px x 1.25 and / 2 / 1.25


# --------------------------------------------------------------------------------------------
# 7. lon/lat grids: pixels square on the ground are round craters
# --------------------------------------------------------------------------------------------
def _geotiff(path, data, crs, side_x, side_y, x0, y0):
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1], count=1,
                       dtype=data.dtype, crs=crs, transform=Affine(side_x, 0, x0, 0, -side_y, y0)) as dst:
        dst.write(data, 1)
    return path


@pytest.mark.parametrize("crs, side_y", [("IAU_2015:49900", 1 / PPD_100M), ("IAU_2015:49910", 100.0)])
def test_a_lon_lat_geotiff_square_on_the_ground_is_used_as_it_is(model_path, tmp_path, crs, side_y):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    # centre at 60 N: columns twice as wide (degrees, or equirectangular metres) as rows are square on the ground
    y0 = (60.0 + 128 / PPD_100M) if crs.endswith("49900") else (60.0 + 128 / PPD_100M) * PPD_100M * 100.0
    path = _geotiff(tmp_path / "square_ground.tif", img, crs, 2 * side_y, side_y, 10.0, y0)
    found = detect(path, model=model_path)
    pd.testing.assert_frame_equal(found, detect(img, pixel_size_m=100.0, model=model_path), atol=1e-3)
    assert found.attrs["pixel_size_m"] == pytest.approx(100.0, rel=1e-6)


def test_a_lon_lat_geotiff_square_neither_in_degrees_nor_on_the_ground_is_refused(model_path, tmp_path):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    d = 1 / PPD_100M
    path = _geotiff(tmp_path / "neither.tif", img, "IAU_2015:49900", 1.5 * d, d, 10.0, 60.0 + 128 * d)
    with pytest.raises(InvalidArgumentError, match=r"non-square pixels \(.* degrees; 75 x 100 m on the ground at "
                                                   r"its centre, latitude 60\).*gdalwarp -tr RES RES"):
        detect(path, model=model_path)


# --------------------------------------------------------------------------------------------
# 8. the single-band hint names the axis where the band lies
# --------------------------------------------------------------------------------------------
def test_the_single_band_hint_matches_the_bands_position(model_path):
    xr = pytest.importorskip("xarray")
    band_first = xr.DataArray(np.zeros((1, 40, 40), np.float32), dims=("band", "y", "x"))
    with pytest.raises(InvalidArgumentError, match=r"shape \(1, 40, 40\) \(take the single band with arr\[0\], "
                                                   r"or arr\.squeeze\(\)\)"):
        detect(band_first, pixel_size_m=100.0, model=model_path)
    with pytest.raises(InvalidArgumentError, match=r"with arr\[\.\.\., 0\], or arr\.squeeze"):
        _as_image(np.zeros((40, 40, 1)))
    with pytest.raises(InvalidArgumentError, match=r"with arr\[:, 0\], or arr\.squeeze"):
        _as_image(np.zeros((40, 1, 40)))
