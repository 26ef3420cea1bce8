"""The circle finder: probability maps with known craters in, PixelCraters out."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

from marscraters import extract as ex
from marscraters.errors import InvalidArgumentError
from marscraters.extract import (
    METHODS,
    PIXEL_CRATER_COLUMNS,
    extract_craters,
    find_circles_components,
    nms_circles,
    scale_plan,
)

# --------------------------------------------------------------------------------------------
# drawing helpers: targets drawn in pixel index coordinates, like marscraters.targets


def paint(shape, craters, kind="filled", inner_ratio=0.7, ring_width=2.0, value=1.0):
    """Paint ``(x, y, d)`` craters largest first (holes cut after each), as the targets do."""
    img = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for x, y, d in sorted(craters, key=lambda c: -c[2]):
        r = d / 2
        dist = np.hypot(xx - x, yy - y)
        if kind == "ring":
            img[np.abs(dist - r) <= ring_width / 2] = value
        else:
            img[dist <= r] = value
            if kind == "outline" and inner_ratio * r >= 1:
                img[dist <= inner_ratio * r] = 0
    return img


def blur(img, sigma=0.8):
    from scipy import ndimage

    return np.clip(ndimage.gaussian_filter(img, sigma), 0, 1)


def nearest(found: pd.DataFrame, x: float, y: float) -> pd.Series:
    i = int(np.argmin(np.hypot(found["x"] - x, found["y"] - y)))
    return found.iloc[i]


def assert_found(found, x, y, d, pos_tol=1.0, d_tol=0.10):
    assert len(found), f"nothing found, expected a crater at ({x}, {y}) d={d}"
    c = nearest(found, x, y)
    assert math.hypot(c.x - x, c.y - y) <= pos_tol, f"centre {c.x:.2f},{c.y:.2f} vs {x},{y}"
    assert abs(c.diameter_px - d) <= d_tol * d, f"diameter {c.diameter_px:.2f} vs {d}"


SEPARATED = [(30.0, 40.0, 12.0), (100.0, 35.0, 24.0), (50.0, 120.0, 40.0), (150.0, 140.0, 64.0)]


# --------------------------------------------------------------------------------------------
# recovering known craters


# Hough votes on a downsampled map for craters over 22 px: its centres are good to ~1.5 px there
POS_TOL = {"components": 1.0, "template": 1.0, "hough": 1.5}


@pytest.mark.parametrize("method", METHODS)
def test_separated_disks_recovered(method):
    prob = blur(paint((200, 220), SEPARATED)) * 0.9
    found = extract_craters(prob, target="filled", method=method)
    assert list(found.columns) == list(PIXEL_CRATER_COLUMNS)
    assert len(found) == len(SEPARATED)
    for x, y, d in SEPARATED:
        assert_found(found, x, y, d, pos_tol=POS_TOL[method])


@pytest.mark.parametrize("kind", ["outline", "ring"])
def test_separated_rims_recovered_by_default_method(kind):
    prob = blur(paint((200, 220), SEPARATED, kind=kind)) * 0.9
    found = extract_craters(prob, target=kind)
    assert len(found) == len(SEPARATED)
    for x, y, d in SEPARATED:
        assert_found(found, x, y, d, pos_tol=POS_TOL[ex.DEFAULT_METHODS[kind]], d_tol=0.15)


def test_pixel_index_convention_x_is_column():
    # a disk centred on row 20, column 70: (0, 0) is the centre of the top-left pixel
    prob = paint((64, 100), [(70.0, 20.0, 15.0)])
    c = extract_craters(prob).iloc[0]
    assert c.x == pytest.approx(70.0, abs=0.01)
    assert c.y == pytest.approx(20.0, abs=0.01)


@pytest.mark.parametrize("method", METHODS)
def test_crater_inside_a_larger_craters_outline(method):
    big, small = (100.0, 100.0, 140.0), (92.0, 108.0, 24.0)  # small one inside the big one's hole
    prob = blur(paint((200, 200), [big, small], kind="outline")) * 0.9
    found = extract_craters(prob, target="outline", method=method)
    assert_found(found, *big, pos_tol=3.0, d_tol=0.15)
    assert_found(found, *small, pos_tol=2.0, d_tol=0.2)


def test_two_overlapping_disks_are_split():
    a, b = (60.0, 60.0, 50.0), (95.0, 70.0, 50.0)  # centres 36 px apart, radii 25
    prob = blur(paint((130, 160), [a, b])) * 0.9
    found = extract_craters(prob, target="filled", method="components")
    assert len(found) == 2
    assert_found(found, *a, pos_tol=2.0)
    assert_found(found, *b, pos_tol=2.0)
    # without the watershed split the union is one circle
    assert len(find_circles_components(prob, split=False)) == 1


@pytest.mark.parametrize("method", ["hough", "template"])
def test_300px_crater_found_through_a_downsampled_scale(method):
    crater = (201.0, 195.0, 300.0)
    prob = blur(paint((400, 400), [crater], kind="ring")) * 0.8
    found = extract_craters(prob, target="ring", method=method)
    assert_found(found, *crater, pos_tol=8.0, d_tol=0.1)
    assert found.attrs["scales"][-1] >= 16
    # the full-resolution scale alone searches radii up to 11 px only
    alone = extract_craters(prob, target="ring", method=method, scales=[1])
    assert not ((alone["diameter_px"] > 200).any())


def test_300px_filled_crater_found():
    crater = (199.5, 203.0, 300.0)
    prob = blur(paint((400, 400), [crater])) * 0.8
    assert_found(extract_craters(prob), *crater, pos_tol=1.0, d_tol=0.02)


# the Hough transform does not resolve 5 px disks (its circles of radius 2-3 px get few votes)
@pytest.mark.parametrize("method", ["auto", "components", "template"])
def test_5px_crater_found(method):
    prob = blur(paint((40, 40), [(20.0, 18.0, 5.0)]), 0.5) * 0.9
    found = extract_craters(prob, method=method)
    assert len(found) == 1
    assert_found(found, 20.0, 18.0, 5.0, pos_tol=1.0, d_tol=0.25)


@pytest.mark.parametrize("method", METHODS)
def test_min_and_max_diameter(method):
    prob = blur(paint((200, 220), SEPARATED)) * 0.9
    found = extract_craters(prob, method=method, min_diameter_px=20, max_diameter_px=70)
    assert len(found) == 3 and found["diameter_px"].between(20, 70).all()
    for c in SEPARATED[1:]:
        assert_found(found, *c, pos_tol=POS_TOL[method])


def test_score_ranks_by_probability():
    prob = np.maximum(paint((80, 160), [(40.0, 40.0, 30.0)], value=0.9), paint((80, 160), [(120.0, 40.0, 30.0)], value=0.6))
    # score: the mean probability of the disk (no smoothing, so it is exact)
    found = extract_craters(prob, method="components", smooth_sigma=0)
    assert found["score"].is_monotonic_decreasing
    assert found.iloc[0].x == pytest.approx(40.0) and found.iloc[0].score == pytest.approx(0.9, abs=1e-6)
    assert found.iloc[1].score == pytest.approx(0.6, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_relative_threshold_keeps_diameters_honest_at_a_low_threshold(method):
    # a faint and a bright disk, blurred: a low threshold catches the faint one, and the local
    # half-maximum edge stops it from inflating the bright one's diameter
    craters = [(40.0, 40.0, 20.0), (110.0, 40.0, 20.0)]
    prob = blur(np.maximum(paint((80, 150), craters[:1], value=0.25), paint((80, 150), craters[1:], value=0.95)), 1.5)
    found = extract_craters(prob, method=method, threshold=0.08)
    for c in craters:
        # Hough's radii are whole pixels: 10 % steps at this size
        assert_found(found, *c, pos_tol=POS_TOL[method], d_tol=0.1 if method == "hough" else 0.08)
    loose = extract_craters(prob, method=method, threshold=0.08, relative_threshold=0)
    assert nearest(loose, 110.0, 40.0).diameter_px > 1.1 * 20


# --------------------------------------------------------------------------------------------
# duplicates


def test_nms_circles_deepmoon_rule():
    df = pd.DataFrame(
        {
            "x": [10.0, 11.0, 50.0, 50.0, 90.0],
            "y": [10.0, 10.0, 50.0, 50.0, 90.0],
            "diameter_px": [8.0, 9.0, 40.0, 8.0, 10.0],
            "score": [0.9, 0.95, 0.7, 0.8, 0.1],
            "extra": list("abcde"),
        }
    )
    kept = nms_circles(df)
    # (11, 10) beats its duplicate (10, 10); the small crater in the big one's centre is no
    # duplicate (|dr| / min r = 4 > 1); extra columns survive
    assert kept["extra"].tolist() == ["b", "d", "c", "e"]
    assert kept["score"].is_monotonic_decreasing


def test_nms_circles_iou_rule_and_empty():
    df = pd.DataFrame({"x": [0.0, 1.0, 30.0], "y": [0.0, 0.0, 0.0], "diameter_px": [10.0, 10.0, 10.0], "score": [1.0, 0.5, 0.2]})
    assert nms_circles(df, rule="iou").x.tolist() == [0.0, 30.0]
    assert nms_circles(df, rule="iou", threshold=0.9).x.tolist() == [0.0, 1.0, 30.0]
    assert len(nms_circles(df.iloc[:0])) == 0


def no_deepmoon_duplicates(found: pd.DataFrame) -> bool:
    x, y, r = (found[c].to_numpy() for c in ("x", "y", "diameter_px"))
    r = r / 2
    for i in range(len(found)):
        for j in range(i + 1, len(found)):
            rmin = min(r[i], r[j])
            if ((x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2) / rmin**2 < 1.8 and abs(r[i] - r[j]) / rmin < 1.0:
                return False
    return True


@pytest.mark.parametrize("method", METHODS)
def test_extracted_craters_have_no_duplicates(method):
    craters = [(60.0, 60.0, 30.0), (140.0, 70.0, 45.0), (90.0, 150.0, 60.0), (92.0, 152.0, 14.0)]
    prob = blur(paint((220, 220), craters, kind="ring"), 1.0) * 0.8
    # (Hough also sees a spurious 6 px circle inside the 14 px ring: a false positive, not a duplicate)
    found = extract_craters(prob, target="ring", method=method, threshold=0.3, min_diameter_px=8)
    assert len(found) == len(craters)
    for c in craters:
        assert_found(found, *c, pos_tol=2.0, d_tol=0.15)
    assert no_deepmoon_duplicates(found)
    if method == "template":
        # template matching alone reports each crater at several radii and positions
        raw = ex.find_circles_template(prob, target="ring", threshold=0.3, plan=scale_plan(5, 220))
        assert len(raw) > 2 * len(craters)
        assert not no_deepmoon_duplicates(raw)


def test_tiling_does_not_change_the_result(monkeypatch):
    craters = [(30.0, 30.0, 20.0), (64.0, 64.0, 16.0), (100.0, 40.0, 30.0), (70.0, 110.0, 12.0)]
    prob = blur(paint((140, 140), craters, kind="ring")) * 0.9
    whole = extract_craters(prob, target="ring", method="template")
    monkeypatch.setattr(ex, "_TILE", 48)  # crater (64, 64) straddles four tiles
    tiled = extract_craters(prob, target="ring", method="template")
    pd.testing.assert_frame_equal(whole, tiled)
    assert len(whole) == len(craters)


# --------------------------------------------------------------------------------------------
# inputs: empty, NaN, constant, array kinds


@pytest.mark.parametrize(
    "prob",
    [np.zeros((50, 60)), np.full((50, 60), np.nan), np.full((50, 60), 0.7), np.ones((50, 60)), np.zeros((0, 0))],
    ids=["zeros", "all-nan", "constant", "ones", "size-0"],
)
@pytest.mark.parametrize("method", METHODS)
def test_empty_nan_and_constant_maps_give_an_empty_table(prob, method):
    found = extract_craters(prob, method=method)
    assert len(found) == 0
    assert list(found.columns) == list(PIXEL_CRATER_COLUMNS)
    assert all(found.dtypes == float)


def test_nan_counts_as_zero():
    prob = paint((100, 100), [(30.0, 30.0, 20.0), (70.0, 70.0, 20.0)]) * 0.8
    holey = prob.copy()
    holey[:, 50:] = np.where(prob[:, 50:] > 0, prob[:, 50:], np.nan)  # no data around crater 2
    pd.testing.assert_frame_equal(extract_craters(prob), extract_craters(holey))
    with pytest.raises(InvalidArgumentError, match="NaN"):
        extract_craters(holey, nan_policy="raise")


def test_model_output_shapes_and_xarray_inputs():
    prob = paint((64, 64), [(30.0, 30.0, 20.0)]) * 0.8
    expected = extract_craters(prob)
    assert len(expected) == 1
    pd.testing.assert_frame_equal(extract_craters(prob[None, :, :, None]), expected)
    lazy = xr.DataArray(da.from_array(prob, chunks=16), dims=("y", "x"))
    pd.testing.assert_frame_equal(extract_craters(lazy), expected)
    # a boolean mask is a map of probabilities 0 and 1
    mask = extract_craters(prob > 0.5, method="components", smooth_sigma=0)
    pd.testing.assert_frame_equal(mask, extract_craters(prob, method="components", smooth_sigma=0).assign(score=1.0))


def test_attrs_record_the_run():
    found = extract_craters(paint((64, 64), [(30.0, 30.0, 20.0)]), target="filled", method="template")
    assert found.attrs["method"] == "template" and found.attrs["target"] == "filled"
    assert found.attrs["scales"][0] == 1


def test_scale_plan_covers_the_range():
    plan = scale_plan(5, 300)
    assert plan[0][1] == 2.5 and plan[-1][2] >= 150
    for (f0, _, hi0), (f1, lo1, _) in zip(plan, plan[1:]):
        assert f1 == 2 * f0 and lo1 <= hi0  # consecutive bands overlap: no radius is skipped
    assert [f for f, _, _ in scale_plan(5, 300, scales=[1, 4])] == [1, 4]


# --------------------------------------------------------------------------------------------
# bad arguments

GOOD = np.zeros((20, 20), np.float32)


@pytest.mark.parametrize(
    "prob, kwargs, match",
    [
        (GOOD, {"target": "hybrid"}, "target"),
        (GOOD, {"method": "ransac"}, "method"),
        (GOOD, {"threshold": 0.0}, "threshold"),
        (GOOD, {"threshold": 1.5}, "threshold"),
        (GOOD, {"threshold": "high"}, "threshold"),
        (GOOD, {"threshold": float("nan")}, "threshold"),
        (GOOD, {"min_diameter_px": -1}, "min_diameter_px"),
        (GOOD, {"max_diameter_px": 0}, "max_diameter_px"),
        (GOOD, {"min_diameter_px": 10, "max_diameter_px": 5}, "smaller"),
        (GOOD, {"scales": [0, 1]}, "scales"),
        (GOOD, {"scales": "many"}, "scales"),
        (GOOD, {"scales": [1.5]}, "scales"),
        (GOOD, {"nms": "soft"}, "nms"),
        (GOOD, {"nms_threshold": (0, 1)}, "duplicate"),
        (GOOD, {"nms": "iou", "nms_threshold": 2}, "IoU"),
        (GOOD, {"inner_ratio": 1.0}, "inner_ratio"),
        (GOOD, {"ring_width_px": 0}, "ring_width_px"),
        (GOOD, {"smooth_sigma": -1}, "smooth_sigma"),
        (GOOD, {"relative_threshold": 1.0}, "relative_threshold"),
        (GOOD, {"relative_threshold": -0.1}, "relative_threshold"),
        (GOOD, {"nan_policy": "omit"}, "nan_policy"),
        (np.zeros((3, 20, 20)), {}, "2-D"),
        (np.zeros(20), {}, "2-D"),
        (np.full((20, 20), 2.0), {}, r"\[0, 1\]"),
        (np.full((20, 20), -0.5), {}, r"\[0, 1\]"),
        (np.full((20, 20), np.inf), {}, "infinite"),
        (np.full((20, 20), "a"), {}, "numeric"),
    ],
)
def test_bad_arguments_raise(prob, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        extract_craters(prob, **kwargs)


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("template", {"template_threshold": 0}),
        ("template", {"radius_step": 1.0}),
        ("hough", {"hough_threshold": 1.5}),
        ("components", {"template_threshold": 0.5}),  # another method's option
        ("hough", {"plan": []}),  # set by extract_craters itself
    ],
)
def test_bad_method_options_raise(method, kwargs):
    prob = paint((40, 40), [(20.0, 20.0, 10.0)])
    with pytest.raises(InvalidArgumentError):
        extract_craters(prob, method=method, **kwargs)


def test_nms_bad_input():
    with pytest.raises(InvalidArgumentError, match="column"):
        nms_circles(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(InvalidArgumentError, match="rule"):
        nms_circles(pd.DataFrame(columns=list(PIXEL_CRATER_COLUMNS)), rule="nearest")
    with pytest.raises(InvalidArgumentError):
        nms_circles([1, 2, 3])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# georeferencing


def test_to_catalog_round_trips_rendered_targets():
    from marscraters.mosaic import mosaic_from_array
    from marscraters.targets import render_targets

    # 64 px/deg at 30-32 N: craters are ellipses 1.15-1.18 times wider than tall
    ds = mosaic_from_array(np.zeros((128, 256)), bounds=(100.0, 30.0, 104.0, 32.0))
    truth = pd.DataFrame({"lat": [31.5, 30.6], "lon": [101.0, 103.0], "diameter_km": [20.0, 35.0]})
    prob = render_targets(ds, truth, kind="filled", dtype="float32").values * 0.9
    found = extract_craters(prob)
    cat = ex.to_catalog(found, ds, attrs={"model": "test"})
    assert cat.crs.equals(ex_crs())
    assert cat.attrs["model"] == "test" and cat.attrs["method"] == ex.DEFAULT_METHODS["filled"]
    cat = cat.sort_values("lon").reset_index(drop=True)
    np.testing.assert_allclose(cat["lon"], truth["lon"], atol=0.02)
    np.testing.assert_allclose(cat["lat"], truth["lat"], atol=0.02)
    np.testing.assert_allclose(cat["diameter_km"], truth["diameter_km"], rtol=0.05)
    assert (cat["score"] > 0.85).all()


def ex_crs():
    from marscraters.crs import MARS_GEOGRAPHIC

    return MARS_GEOGRAPHIC


def test_to_catalog_empty_and_bad_input():
    from marscraters.mosaic import mosaic_from_array

    ds = mosaic_from_array(np.zeros((16, 16)), bounds=(0.0, 0.0, 1.0, 1.0))
    assert len(ex.to_catalog(extract_craters(np.zeros((16, 16))), ds)) == 0
    with pytest.raises(InvalidArgumentError, match="PixelCraters"):
        ex.to_catalog(pd.DataFrame({"lat": [1.0]}), ds)


def test_min_score_drops_low_scoring_circles():
    prob = np.zeros((80, 80), np.float32)
    yy, xx = np.mgrid[0:80, 0:80]
    prob[(xx - 20) ** 2 + (yy - 20) ** 2 <= 64] = 0.95
    prob[(xx - 55) ** 2 + (yy - 55) ** 2 <= 64] = 0.35
    all_found = extract_craters(prob, target="filled", method="components", threshold=0.2)
    assert len(all_found) == 2
    cut = float(all_found["score"].min()) + 1e-6
    kept = extract_craters(prob, target="filled", method="components", threshold=0.2, min_score=cut)
    assert len(kept) == 1 and kept["score"].min() >= cut and kept.attrs["min_score"] == cut
    with pytest.raises(InvalidArgumentError):
        extract_craters(prob, min_score=-1)


# --------------------------------------------------------------------------------------------
# the template finder's fast helpers against the skimage calls they replace (extract._reference_*)


def match_template_padded(img, tpl):
    """match_template(pad_input=True) for any template size: pad the image by the template's size."""
    from skimage.feature import match_template

    p = max(tpl.shape)
    return match_template(np.pad(img, p), tpl, pad_input=True)[p:-p, p:-p]


def finder_templates(f=1):
    """The templates the finder uses at one scale: every kind, radii of a band (odd sizes)."""
    return [ex._template(kind, r, 0.7, max(2.0 / f, 1.0)) for kind in ex.TARGETS for r in (1.0, 2.6, 5.0, 8.3, 11.0)]


RANDOM_TEMPLATES = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 8), (8, 5), (6, 6), (7, 7), (12, 9)]


@pytest.mark.parametrize("shape", [(40, 57), (64, 64), (9, 30)])
def test_ncc_bank_equals_match_template_on_random_images(shape):
    rng = np.random.default_rng(sum(shape))
    img = rng.random(shape)
    templates = [rng.random(s) for s in RANDOM_TEMPLATES] + [t.astype(np.float64) for t in finder_templates()]
    got = ex._ncc_bank(img, templates)
    for tpl, g in zip(templates, got):
        ref = match_template_padded(img, tpl)
        assert g.shape == img.shape and g.dtype == np.float64
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-9)
    # float32 in, float32 out, as skimage, and at least as close as skimage's to the exact
    # (float64) correlation: its float32 cumulative sums round, the summed-area tables do not
    img32 = img.astype(np.float32)
    got32 = ex._ncc_bank(img32, [t.astype(np.float32) for t in templates])
    for tpl, g in zip(templates, got32):
        exact = match_template_padded(img, tpl)
        skimage32 = match_template_padded(img32, tpl.astype(np.float32))
        assert g.dtype == np.float32
        err = np.abs(g - exact).max()
        assert err <= 1e-4 and err <= max(np.abs(skimage32 - exact).max(), 1e-5)
        if min(tpl.shape) > 2:  # tiny windows have tiny variances that amplify rounding
            assert err <= 1e-5


@pytest.mark.parametrize("f", [1, 2, 4])
def test_ncc_bank_equals_match_template_on_binary_maps(f):
    """The finder's own inputs: a binarised crater map, block-averaged at the scale's factor."""
    prob = blur(paint((160, 200), [(40.0, 50.0, 30.0), (120.0, 90.0, 60.0), (170.0, 30.0, 12.0)], kind="outline"))
    img = ex._downsample(ex._binarize(prob, 0.3, 0.5).astype(np.float32), f, "mean")
    rng = np.random.default_rng(f)
    templates = finder_templates(f) + [rng.random(s).astype(np.float32) for s in RANDOM_TEMPLATES]
    for tpl, g, ref in zip(templates, ex._ncc_bank(img, templates), ex._reference_ncc_bank(img, templates)):
        assert g.dtype == ref.dtype == np.float32
        # both are within 1e-5 of the exact correlation (they round differently in the FFT)
        np.testing.assert_allclose(g, ref, rtol=0, atol=2e-5)
        exact = match_template_padded(img.astype(np.float64), tpl.astype(np.float64))
        np.testing.assert_allclose(g, exact, rtol=0, atol=1e-5)
        # the same windows have zero variance: the response there is exactly 0 in both
        flat = ref == 0
        assert np.array_equal(g[flat], ref[flat])


def test_ncc_bank_templates_larger_than_the_image():
    rng = np.random.default_rng(5)
    img = (rng.random((12, 17)) > 0.6).astype(np.float32)
    templates = [ex._template("ring", r, 0.7, 2.0) for r in (6.0, 9.0, 14.0)]  # 17, 23 and 33 px
    assert all(t.shape[0] >= 12 for t in templates)
    for g, ref in zip(ex._ncc_bank(img, templates), ex._reference_ncc_bank(img, templates)):
        assert g.shape == img.shape
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("value", [0.0, 0.75, 1.0])
def test_ncc_bank_constant_images_give_zero(value):
    img = np.full((40, 41), value, np.float32)
    templates = finder_templates()
    for tpl, g, ref in zip(templates, ex._ncc_bank(img, templates), ex._reference_ncc_bank(img, templates)):
        # windows wholly inside the image are constant (the others hold zero padding)
        h = tpl.shape[0] // 2
        inner = (slice(h, 40 - h), slice(h, 41 - h))
        if value == 0:
            inner = (slice(None), slice(None))
        assert g[inner].size and np.array_equal(ref[inner], np.zeros_like(ref[inner]))
        assert np.array_equal(g[inner], np.zeros_like(g[inner]))
        np.testing.assert_allclose(g, ref, rtol=0, atol=2e-5)


def test_ncc_bank_constant_image_off_the_float_grid():
    # 0.7 is no short binary fraction: the float32 variance S2 - S**2 / V rounds to a tiny value
    # instead of 0, in skimage too; the response there stays rounding noise
    img = np.full((40, 41), 0.7, np.float32)
    templates = finder_templates()
    for tpl, g, ref in zip(templates, ex._ncc_bank(img, templates), ex._reference_ncc_bank(img, templates)):
        h = tpl.shape[0] // 2
        assert np.abs(g[h : 40 - h, h : 41 - h]).max() < 2e-3 and np.abs(ref[h : 40 - h, h : 41 - h]).max() < 2e-3


def test_ncc_bank_a_constant_region_gives_zero_there():
    img = np.zeros((60, 60), np.float32)
    img[:, 30:] = 1.0  # windows wholly on either side are constant
    tpl = ex._template("filled", 3.0, 0.7, 2.0)  # 11 px
    (g,) = ex._ncc_bank(img, [tpl])
    assert np.array_equal(g[:, :25], np.zeros((60, 25)))
    assert np.array_equal(g[5:55, 35:55], np.zeros((50, 20)))
    assert np.abs(g[5:55, 25:35]).min() > 0.01
    assert np.abs(g[:, 55:]).min() > 0.01  # the zero padding beyond the edge


def test_float32_sums_exact():
    assert ex._float32_sums_exact(np.zeros((4, 4)))
    assert ex._float32_sums_exact(np.eye(8, dtype=np.float32))
    assert ex._float32_sums_exact(np.full((64, 64), 3 / 16, np.float32))  # a block mean
    assert not ex._float32_sums_exact(np.full((8, 8), 0.1))
    assert not ex._float32_sums_exact(np.full((4096, 4096 + 1), 1.0, np.float32))  # sums beyond 2**24


def peak_test_images():
    rng = np.random.default_rng(11)
    quantised = np.round(rng.random((70, 90)) * 6) / 6  # plateaus and ties everywhere
    smooth = blur(rng.random((80, 64)).astype(np.float32), 2.0)
    ncc = ex._ncc_bank(ex._binarize(blur(paint((120, 120), SEPARATED[:3])), 0.3, 0.5).astype(np.float32),
                       [ex._template("filled", 6.0, 0.7, 2.0)])[0]
    return {
        "quantised": (quantised, 0.4),
        "quantised-all-candidates": (quantised + 1.0, 0.5),  # every pixel above: the maximum-filter path
        "smooth": (smooth, float(np.median(smooth))),
        "ncc": (ncc, 0.5),
        "constant-above": (np.full((20, 30), 0.8), 0.5),
        "constant-below": (np.full((20, 30), 0.3), 0.5),
        "one-pixel": (np.array([[0.9]]), 0.5),
        "one-row": (np.array([[0.1, 0.9, 0.9, 0.2, 0.7, 0.6]]), 0.5),
        "two-by-two": (np.array([[0.9, 0.9], [0.9, 0.9001]], np.float32), 0.5),
        "nothing-above": (quantised, 2.0),
    }


@pytest.mark.parametrize("name", list(peak_test_images()))
@pytest.mark.parametrize("min_distance", [1, 2, 3, 5])
def test_peak_local_max_equals_skimage(name, min_distance):
    img, thr = peak_test_images()[name]
    got = ex._peak_local_max(img, min_distance, thr)
    ref = ex._reference_peak_local_max(img, min_distance, thr)
    assert got.shape[1] == 2 and got.dtype == np.intp
    np.testing.assert_array_equal(got, ref)  # the same peaks in the same order


# a network-like map: outline targets of 40 craters of 5-120 px, each with its own peak
# probability, some with an arc missing, blurred, with multiplicative and additive smooth noise
# and false blobs


def network_like_map(seed, size=384, n=40, kind="outline"):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    d = np.exp(rng.uniform(np.log(5), np.log(120), n))
    craters = list(zip(rng.uniform(0, size - 1, n), rng.uniform(0, size - 1, n), d))
    prob = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for x, y, dd in sorted(craters, key=lambda c: -c[2]):
        one = paint((size, size), [(x, y, dd)], kind=kind, value=rng.uniform(0.4, 0.95))
        if rng.random() < 0.25:
            start = rng.uniform(-np.pi, np.pi)
            one[(np.arctan2(yy - y, xx - x) - start) % (2 * np.pi) < np.radians(rng.uniform(40, 120))] = 0
        inside = np.hypot(xx - x, yy - y) <= dd / 2 + 1
        prob[inside] = one[inside]
    for _ in range(n // 4):  # false blobs
        prob = np.maximum(prob, paint((size, size), [(*rng.uniform(0, size, 2), rng.uniform(3, 20))],
                                      value=rng.uniform(0.3, 0.7)))
    prob = blur(prob, 1.0)
    prob *= 1 + 0.15 * ndimage.gaussian_filter(rng.standard_normal(prob.shape), 4) * 4
    prob += 0.05 * ndimage.gaussian_filter(rng.standard_normal(prob.shape), 2) * 2
    return np.clip(prob, 0, 1).astype(np.float32), craters


def assert_same_craters(old, new, max_ties=0.05):
    """The same craters: twins within 1e-3 px, except ties, at most ``max_ties`` of them.

    Where the correlation has a plateau (two pixels with the same value, common on binary maps
    and symmetric templates) float rounding picks the peak pixel, differently in the two FFTs:
    such a crater has the same score and lies within the plateau (a pixel or two away).
    """
    assert len(old) == len(new) and list(old.columns) == list(new.columns)
    if len(old) == 0:
        return
    o, n = old.to_numpy(), new.to_numpy()
    dist = np.hypot(o[:, None, 0] - n[None, :, 0], o[:, None, 1] - n[None, :, 1])
    j = dist.argmin(axis=1)
    assert len(set(j)) == len(o), "two old craters have the same nearest new crater"
    dpos, ddia, dscore = dist[np.arange(len(o)), j], np.abs(o[:, 2] - n[j, 2]), np.abs(o[:, 3] - n[j, 3])
    assert dscore.max() < 1e-5
    twin = (dpos < 1e-3) & (ddia < 1e-3)
    tie = ~twin
    assert (dpos[tie] <= 2.0).all() and (ddia[tie] <= 0.1 * o[tie, 2]).all()
    assert tie.sum() <= max_ties * len(o), f"{tie.sum()} of {len(o)} craters moved"


def extract_old_and_new(monkeypatch, prob, **kwargs):
    new = extract_craters(prob, method="template", **kwargs)
    with monkeypatch.context() as m:
        m.setattr(ex, "_ncc_bank", ex._reference_ncc_bank)
        m.setattr(ex, "_peak_local_max", ex._reference_peak_local_max)
        old = extract_craters(prob, method="template", **kwargs)
    return old, new


@pytest.mark.parametrize("kind", ex.TARGETS)
def test_template_finder_gives_the_same_craters_as_before(monkeypatch, kind):
    prob, craters = network_like_map(seed=ex.TARGETS.index(kind), kind=kind)
    old, new = extract_old_and_new(monkeypatch, prob, target=kind)
    assert len(old) >= len(craters) // 2  # a real test: many craters found
    assert_same_craters(old, new)
    assert old.attrs == new.attrs


def test_template_finder_same_craters_exactly_without_ties(monkeypatch):
    # blurred disks of non-integer centres: no plateaus in the correlation, every crater a twin
    prob = blur(paint((200, 220), [(30.3, 40.6, 12.4), (100.2, 35.7, 24.3), (50.6, 120.1, 40.2), (150.4, 140.3, 64.7)]))
    old, new = extract_old_and_new(monkeypatch, prob * 0.9, target="filled")
    assert len(old) == 4
    assert_same_craters(old, new, max_ties=0)
    np.testing.assert_allclose(new.to_numpy(), old.to_numpy(), rtol=0, atol=1e-3)


@pytest.mark.realdata
def test_template_finder_same_craters_on_the_shipped_models_output(monkeypatch, shared_data):
    folder = shared_data / "themis-dayir-crops" / "images"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    from PIL import Image

    from marscraters.model import DEFAULT_WEIGHTS, load_model, read_model_metadata
    from marscraters.model import predict_image as predict

    if not DEFAULT_WEIGHTS.exists():
        pytest.skip("no shipped model")
    model = load_model()
    meta = read_model_metadata()
    options = {k: v for k, v in meta.get("extract", {}).items() if k not in ("method", "min_score")}
    kind = meta.get("training", {}).get("kind", "outline")
    total = 0
    for i in (0, 150, 300, 450):
        img = np.asarray(Image.open(folder / f"crater{i}.jpg"))[..., 0].astype(np.float32)
        old, new = extract_old_and_new(monkeypatch, predict(model, img), target=kind, **options)
        assert_same_craters(old, new, max_ties=0.1)
        total += len(old)
    assert total > 20


def test_no_diameters_pile_up_at_the_scales_boundary():
    # At a low threshold, circles of 15-19 px also peak at the smallest radius of the second
    # scale (10 px); with no smaller radius there to refine against, they kept exactly 20 px
    # (64 of 2,662 circles on these maps before the fix).  Now such a circle is left to the
    # first scale, and every circle's radius lies between two searched radii.
    found = []
    for seed in range(3):
        prob, _ = network_like_map(seed, n=60)
        found.append(extract_craters(prob, target="outline", method="template", threshold=0.2,
                                     template_threshold=0.3, relative_threshold=0.0))
    d = pd.concat(found)["diameter_px"].to_numpy()
    assert len(d) > 500
    edges = [2 * r for _, lo, hi in scale_plan(5, 300) for r in (lo, hi)]
    for e in edges:  # (an edge may also be a sample inside the next band: a few exact hits remain)
        assert np.sum(np.abs(d - e) < 1e-6) <= 0.005 * len(d), (e, np.sum(np.abs(d - e) < 1e-6), len(d))
    # and the diameters of 17-23 px are not thinned out around 20 px either
    near = np.histogram(d, bins=[17, 18.5, 20, 21.5, 23])[0]
    assert near.min() >= 0.3 * near.max(), near


def test_refine_leaves_a_circle_rising_to_the_band_end_to_the_next_scale():
    maps = [np.full((5, 5), v, np.float32) for v in (0.9, 0.8, 0.7, 0.75, 0.6)]
    coords = np.array([4.0, 4.4, 4.84, 5.32, 5.86])
    peak = np.array([[2, 2]])
    # at k = 2 the correlation rises all the way to the first radius: it takes that radius
    assert ex._refine(maps, coords, 2, peak, to_ends=True)[0, 2] == 4.0
    # without to_ends (Hough), and at a true maximum (k = 3), the radius is refined in between
    assert ex._refine(maps, coords, 2, peak)[0, 2] == pytest.approx(4.84)
    assert 4.84 < ex._refine(maps, coords, 3, peak, to_ends=True)[0, 2] < 5.86
    np.testing.assert_allclose(ex._widen(np.array([5.0, 5.5]), 1.1, below=True, above=True),
                               [5 / 1.1, 5.0, 5.5, 5.5 * 1.1])
    np.testing.assert_allclose(ex._widen(np.array([5.0, 5.5]), 1.1, below=False, above=True), [5.0, 5.5, 5.5 * 1.1])


def test_template_spectra_cache_gives_the_fresh_results_and_stays_bounded(monkeypatch):
    """A cached spectrum is the one a fresh computation gives (bit for bit), it is read-only, and
    the cache drops the least recently used spectra past its byte budget."""
    monkeypatch.setattr(ex, "_SPECTRA", type(ex._SPECTRA)())
    rng = np.random.default_rng(11)
    img = (rng.random((70, 90)) > 0.7).astype(np.float32)
    templates = finder_templates()
    fresh = ex._ncc_bank(img, templates)  # fills the cache
    assert len(ex._SPECTRA) == len({t.tobytes() for t in templates})
    again = ex._ncc_bank(img, templates)  # every spectrum from the cache
    for a, b in zip(fresh, again):
        assert np.array_equal(a, b)
    spec = next(iter(ex._SPECTRA.values()))
    assert not spec.flags.writeable
    key = next(iter(ex._SPECTRA))
    assert np.array_equal(spec, ex._correlation_spectrum(np.frombuffer(key[4], key[1]).reshape(key[0]), key[2], key[3]))
    # a budget of two spectra keeps the two used last
    monkeypatch.setattr(ex, "SPECTRUM_CACHE_BYTES", 2 * spec.nbytes)
    ex._ncc_bank(img, templates[:3])
    assert len(ex._SPECTRA) == 2 and sum(v.nbytes for v in ex._SPECTRA.values()) <= 2 * spec.nbytes
    assert [k[4] for k in ex._SPECTRA] == [t.tobytes() for t in templates[1:3]]


@pytest.mark.parametrize("n", [1, 416, 1024, 1025, 1376, 2049, 3000])
def test_tiles_cover_the_map_once_in_equal_cores(n):
    """A map is cut into cores of equal sizes (within a pixel), each read with its halo: a mosaic
    block of 1,376 px is two cores of 688 whose windows have one shape (one set of spectra), not
    1,024 and 352."""
    tiles = ex._tiles((n, n + 7), 1024, 21)
    seen = np.zeros((n, n + 7), int)
    for ry, rx, cy, cx in tiles:
        seen[cy, cx] += 1
        assert ry.start == max(cy.start - 21, 0) and ry.stop == min(cy.stop + 21, n)
        assert cy.stop - cy.start <= 1024 and cx.stop - cx.start <= 1024
    assert (seen == 1).all()
    assert max(c.stop - c.start for _, _, c, _ in tiles) - min(c.stop - c.start for _, _, c, _ in tiles) <= 1
    if n == 1376:
        assert {(ry.stop - ry.start, rx.stop - rx.start) for ry, rx, _, _ in ex._tiles((n, n), 1024, 21)} == {(709, 709)}


@pytest.mark.parametrize("shape", [(0, 64), (64, 0)])
def test_the_finders_take_an_empty_map(shape):
    """An empty map has no tiles (equal tiles divided by their count, zero for an empty side)."""
    assert ex._tiles(shape, 1024, 21) == []
    for finder in (ex.find_circles_template, ex.find_circles_hough):
        assert len(finder(np.zeros(shape, np.float32))) == 0


def test_a_large_maps_spectra_stay_cached_for_the_next_map(monkeypatch):
    """The next 1024² map (a tile of the finder, as a large image's or a mosaic block's) reuses every
    template spectrum of the one before: at a 64 MiB budget the finest scale's ~18 spectra of ~4.5 MB
    did not fit, and the LRU dropped each before its next use (a fifth of the finder's time went into
    recomputing them)."""
    monkeypatch.setattr(ex, "_SPECTRA", type(ex._SPECTRA)())
    rng = np.random.default_rng(5)
    prob = ndimage.gaussian_filter(rng.random((1024, 1024)), 3).astype(np.float32)
    opts = {"target": "outline", "method": "template", "threshold": 0.5, "template_threshold": 0.3,
            "relative_threshold": 0.0}
    ex.extract_craters(prob, **opts)
    made = []
    fresh = ex._correlation_spectrum
    monkeypatch.setattr(ex, "_correlation_spectrum", lambda *a: made.append(a[1:]) or fresh(*a))
    ex.extract_craters(prob[::-1].copy(), **opts)  # the next map of the same size
    assert made == []


def test_fft_threads_do_not_change_the_correlation(monkeypatch):
    """Small transforms run on one thread, large ones on every core: the same numbers either way."""
    assert ex._fft_workers(416, 416) == 1 and ex._fft_workers(4096, 4096) == -1
    rng = np.random.default_rng(3)
    img = (rng.random((90, 120)) > 0.7).astype(np.float32)
    templates = finder_templates()
    one = ex._ncc_bank(img, templates)
    monkeypatch.setattr(ex, "SMALL_FFT_PX", 0)  # every transform on all cores
    monkeypatch.setattr(ex, "_SPECTRA", type(ex._SPECTRA)())  # and the spectra computed afresh
    for a, b in zip(one, ex._ncc_bank(img, templates)):
        assert np.array_equal(a, b)
