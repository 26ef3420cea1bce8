"""Tests of marscraters.evaluate: matching rules, assignment, floors, bins, georeferenced catalogs."""

from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from marscraters.crs import KM_PER_DEGREE, MARS_GEOGRAPHIC
from marscraters.errors import CatalogError, CatalogValidationError, InvalidArgumentError, OutputExistsError
from marscraters.evaluate import (
    DEFAULT_THRESHOLDS,
    EvaluationResult,
    circle_iou,
    evaluate,
    match_craters,
    to_json,
)


def px(rows, index=None) -> pd.DataFrame:
    """PixelCraters from (x, y, diameter_px) rows."""
    arr = np.asarray(rows, dtype=float).reshape(-1, 3)
    return pd.DataFrame({"x": arr[:, 0], "y": arr[:, 1], "diameter_px": arr[:, 2]}, index=index)


def pairs(m: pd.DataFrame) -> list[tuple]:
    return list(zip(m["pred_index"].tolist(), m["truth_index"].tolist()))


# ------------------------------------------------------------------------------- circle IoU
@pytest.mark.parametrize(
    "sep, d1, d2, expected",
    [
        (0.0, 10.0, 10.0, 1.0),
        (10.0, 10.0, 10.0, 0.0),  # tangent circles
        (25.0, 10.0, 4.0, 0.0),
        (0.0, 10.0, 5.0, 0.25),  # concentric: area ratio
        (2.0, 10.0, 4.0, 0.16),  # small circle inside the large one
    ],
)
def test_circle_iou_closed_forms(sep, d1, d2, expected):
    assert float(circle_iou(sep, d1, d2)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("sep, d1, d2", [(3.0, 10.0, 10.0), (6.0, 10.0, 7.0), (1.5, 4.0, 9.0), (7.5, 10.0, 8.0)])
def test_circle_iou_matches_polygon_geometry(sep, d1, d2):
    a = shapely.Point(0, 0).buffer(d1 / 2, quad_segs=512)
    b = shapely.Point(sep, 0).buffer(d2 / 2, quad_segs=512)
    expected = a.intersection(b).area / a.union(b).area
    assert float(circle_iou(sep, d1, d2)) == pytest.approx(expected, rel=1e-4)
    assert float(circle_iou(sep, d2, d1)) == pytest.approx(float(circle_iou(sep, d1, d2)))


# ------------------------------------------------------------------------------- DeepMoon rule
def test_deepmoon_position_boundary_is_strict():
    truth = px([[0, 0, 10]])  # r = 5, min r = 5: match needs sep**2 / 25 < 1.8, i.e. sep**2 < 45
    exactly = px([[6, 3, 10]])  # 36 + 9 = 45 -> 1.8 exactly: not a match
    inside = px([[6, 2.99, 10]])
    outside = px([[6, 3.01, 10]])
    assert match_craters(exactly, truth, "deepmoon").empty
    assert pairs(match_craters(inside, truth, "deepmoon")) == [(0, 0)]
    assert match_craters(outside, truth, "deepmoon").empty


def test_deepmoon_radius_boundary_uses_min_radius():
    truth = px([[0, 0, 10]])  # r = 5
    # r_pred = 10 -> |dr| / min r = 5 / 5 = 1.0: not < 1.0
    assert match_craters(px([[0, 0, 20]]), truth, "deepmoon").empty
    assert pairs(match_craters(px([[0, 0, 19.9]]), truth, "deepmoon")) == [(0, 0)]
    # a smaller prediction: r_pred = 2.5 -> |dr| / 2.5 = 1.0, excluded; 2.6 -> 2.4 / 2.6 < 1
    assert match_craters(px([[0, 0, 5.0]]), truth, "deepmoon").empty
    assert pairs(match_craters(px([[0, 0, 5.2]]), truth, "deepmoon")) == [(0, 0)]


def test_deepmoon_position_normalised_by_smaller_crater():
    truth = px([[0, 0, 20]])  # r = 10
    # r_pred = 6 -> min r = 6: sep 8 gives 64/36 = 1.78 < 1.8 (match); sep 8.1 gives 1.8225 (no)
    assert pairs(match_craters(px([[8.0, 0, 12]]), truth, "deepmoon")) == [(0, 0)]
    assert match_craters(px([[8.1, 0, 12]]), truth, "deepmoon").empty


def test_custom_deepmoon_threshold():
    truth = px([[0, 0, 10]])
    pred = px([[4, 0, 10]])  # 16 / 25 = 0.64
    assert pairs(match_craters(pred, truth, "deepmoon")) == [(0, 0)]
    assert match_craters(pred, truth, "deepmoon", threshold=(0.5, 1.0)).empty
    with pytest.raises(InvalidArgumentError, match="longlat_thresh2"):
        match_craters(pred, truth, "deepmoon", threshold=0.5)


# ------------------------------------------------------------------------------- IoU rule
def test_iou_boundary_concentric():
    truth = px([[50, 50, 20]])  # IoU of concentric circles = (d_small / d_large) ** 2
    d_half = 20 * math.sqrt(0.5)
    assert pairs(match_craters(px([[50, 50, d_half + 0.01]]), truth, "iou")) == [(0, 0)]
    assert match_craters(px([[50, 50, d_half - 0.01]]), truth, "iou").empty
    m = match_craters(px([[50, 50, 16]]), truth, "iou")
    assert m["iou"].iloc[0] == pytest.approx(0.64)


def test_iou_boundary_offset_equal_circles():
    # two circles of radius 10 whose IoU is exactly 0.5 at a separation found by bisection
    lo, hi = 0.0, 20.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if circle_iou(mid, 20, 20) > 0.5 else (lo, mid)
    truth = px([[0, 0, 20]])
    assert pairs(match_craters(px([[lo - 1e-6, 0, 20]]), truth, "iou")) == [(0, 0)]
    assert match_craters(px([[hi + 1e-6, 0, 20]]), truth, "iou").empty


# ------------------------------------------------------------------------------- PyCDA rule
def test_pycda_boundary_is_inclusive():
    truth = px([[0, 0, 10]])  # distance in (x, y, d) / d_true <= 0.4  ->  <= 4 px here
    assert pairs(match_craters(px([[4, 0, 10]]), truth, "pycda")) == [(0, 0)]  # exactly 0.4
    assert match_craters(px([[4.01, 0, 10]]), truth, "pycda").empty
    # the diameter difference counts too: sqrt(3**2 + 3**2) = 4.24 > 4
    assert match_craters(px([[3, 0, 13]]), truth, "pycda").empty
    assert pairs(match_craters(px([[3, 0, 12.6]]), truth, "pycda")) == [(0, 0)]  # sqrt(9 + 6.76) = 3.97


def test_pycda_normalises_by_true_diameter_not_predicted():
    truth = px([[0, 0, 10]])
    # d_pred = 13.5: distance (0, 0, 3.5) -> 0.35 of d_true (match), but 0.26 of d_pred either way
    assert pairs(match_craters(px([[0, 0, 13.5]]), truth, "pycda")) == [(0, 0)]
    # d_pred = 5.9: |dd| = 4.1 -> 0.41 of d_true (no match) though only 0.69 of d_pred
    assert match_craters(px([[0, 0, 5.9]]), truth, "pycda").empty


# ------------------------------------------------------------------------------- assignment
def hungarian_case():
    # prediction 0 overlaps both truths; prediction 1 overlaps only truth 0.  The best single pair
    # is (0, 0), which greedy takes first, leaving prediction 1 unmatched; the optimal assignment
    # pairs (0, 1) and (1, 0).
    truth = px([[0, 0, 20], [6, 0, 20]])
    pred = px([[1, 0, 20], [-5, 0, 20]])
    return pred, truth


def test_greedy_and_hungarian_differ():
    pred, truth = hungarian_case()
    iou = circle_iou(np.array([1.0, 5.0, 5.0, 11.0]), 20, 20)
    assert iou[0] > iou[1] and iou[3] < 0.5 < iou[1]  # the premise of the case
    greedy = match_craters(pred, truth, "iou", assignment="greedy")
    hungarian = match_craters(pred, truth, "iou", assignment="hungarian")
    assert pairs(greedy) == [(0, 0)]
    assert sorted(pairs(hungarian)) == [(0, 1), (1, 0)]
    # the default for IoU is Hungarian, for DeepMoon greedy
    assert sorted(pairs(match_craters(pred, truth, "iou"))) == [(0, 1), (1, 0)]


def test_hungarian_prefers_lower_cost_at_equal_count():
    truth = px([[0, 0, 20], [100, 0, 20]])
    pred = px([[1, 0, 20], [3, 0, 20], [100, 0, 20]])  # two predictions compete for truth 0
    m = match_craters(pred, truth, "iou", assignment="hungarian")
    assert sorted(pairs(m)) == [(0, 0), (2, 1)]


def test_matching_is_one_to_one_and_uses_index_labels():
    truth = px([[0, 0, 10], [0.5, 0, 10]], index=["a", "b"])
    pred = px([[0, 0, 10], [0.2, 0, 10], [0.4, 0, 10]], index=[10, 11, 12])
    for rule in ("deepmoon", "iou", "pycda"):
        for assignment in ("greedy", "hungarian"):
            m = match_craters(pred, truth, rule, assignment=assignment)
            assert len(m) == 2
            assert m["pred_index"].is_unique and m["truth_index"].is_unique
            assert set(m["truth_index"]) == {"a", "b"}
            assert set(m["pred_index"]) <= {10, 11, 12}


def test_greedy_takes_lowest_cost_pair_first():
    truth = px([[0, 0, 10]])
    pred = px([[2, 0, 10], [0.5, 0, 10]])  # prediction 1 is closer, though listed second
    assert pairs(match_craters(pred, truth, "deepmoon")) == [(1, 0)]
    assert pairs(match_craters(pred, truth, "pycda")) == [(1, 0)]


def test_match_columns_and_errors():
    truth = px([[10, 10, 20]])
    pred = px([[13, 14, 22]])
    m = match_craters(pred, truth, "deepmoon")
    row = m.iloc[0]
    assert row["separation"] == pytest.approx(5.0)
    assert row["position_error"] == pytest.approx(0.5)  # 5 / r_true
    assert row["diameter_error"] == pytest.approx(0.1)
    assert 0 < row["iou"] < 1


def test_matching_agrees_with_brute_force_on_random_catalogs():
    rng = np.random.default_rng(1)
    truth = px(np.column_stack([rng.uniform(0, 300, 80), rng.uniform(0, 300, 80), rng.uniform(4, 40, 80)]))
    pred = truth.sample(60, random_state=2).reset_index(drop=True)
    pred[["x", "y"]] += rng.normal(0, 2, (60, 2))
    pred["diameter_px"] *= rng.uniform(0.8, 1.25, 60)
    pred = pd.concat([pred, px(np.column_stack([rng.uniform(0, 300, 30), rng.uniform(0, 300, 30), rng.uniform(4, 40, 30)]))], ignore_index=True)
    for rule in ("deepmoon", "iou", "pycda"):
        m = match_craters(pred, truth, rule, assignment="hungarian")
        # every matched pair satisfies the rule
        p = pred.loc[m["pred_index"]].to_numpy()
        t = truth.loc[m["truth_index"]].to_numpy()
        sep = np.hypot(p[:, 0] - t[:, 0], p[:, 1] - t[:, 1])
        if rule == "deepmoon":
            rmin = np.minimum(p[:, 2], t[:, 2]) / 2
            assert np.all(sep**2 / rmin**2 < 1.8) and np.all(np.abs(p[:, 2] - t[:, 2]) / 2 / rmin < 1.0)
        elif rule == "iou":
            assert np.all(circle_iou(sep, p[:, 2], t[:, 2]) >= 0.5)
        else:
            assert np.all(np.sqrt(sep**2 + (p[:, 2] - t[:, 2]) ** 2) / t[:, 2] <= 0.4)
        # maximum matching size by brute force over all qualifying pairs (scipy, dense)
        from scipy.optimize import linear_sum_assignment

        P, T = pred.to_numpy(), truth.to_numpy()
        S = np.hypot(P[:, None, 0] - T[None, :, 0], P[:, None, 1] - T[None, :, 1])
        dp, dt = P[:, None, 2], T[None, :, 2]
        if rule == "deepmoon":
            rmin = np.minimum(dp, dt) / 2
            ok = (S**2 / rmin**2 < 1.8) & (np.abs(dp - dt) / 2 / rmin < 1.0)
        elif rule == "iou":
            ok = circle_iou(S, dp, dt) >= 0.5
        else:
            ok = np.sqrt(S**2 + (dp - dt) ** 2) / dt <= 0.4
        r, c = linear_sum_assignment(ok.astype(float), maximize=True)
        assert len(m) == int(ok[r, c].sum())
        assert len(match_craters(pred, truth, rule, assignment="greedy")) <= len(m)


# ------------------------------------------------------------------------------- evaluate
def test_evaluate_counts_precision_recall_f1():
    truth = px([[20, 20, 10], [60, 60, 20], [200, 200, 30]])
    pred = px([[21, 20, 11], [60, 61, 19], [120, 120, 8], [300, 300, 12]])
    r = evaluate(pred, truth)
    assert isinstance(r, EvaluationResult)
    assert (r.n_pred, r.n_truth, r.n_pred_matched, r.n_truth_matched) == (4, 3, 2, 2)
    assert r.precision == pytest.approx(0.5)
    assert r.recall == pytest.approx(2 / 3)
    assert r.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert r.median_position_error == pytest.approx(np.median([1 / 5, 1 / 10]))
    assert r.median_diameter_error == pytest.approx(np.median([0.1, 0.05]))
    assert r.median_diameter_bias == pytest.approx(np.median([0.1, -0.05]))
    assert r.units == "px" and r.by_latitude is None
    assert len(r.matches) == 2


def test_floor_matches_against_all_then_counts():
    d_min = 16.0
    truth = px(
        [
            [0, 0, 20],  # counted, matched by a counted prediction
            [100, 0, 15],  # below the floor, matched by a counted prediction (13.5 >= 12.8)
            [200, 0, 17],  # counted, matched by a prediction below 0.8 * d_min (12 < 12.8)
            [300, 0, 30],  # counted, missed
            [400, 0, 6],  # below the floor, missed: never hurts
        ]
    )
    pred = px(
        [
            [0, 0, 20],
            [100, 0, 13.5],
            [200, 0, 12.0],
            [500, 0, 13.0],  # counted false positive
            [600, 0, 5.0],  # uncounted false positive (tiny, unlabelled craters)
        ]
    )
    r = evaluate(pred, truth, d_min=d_min)
    assert len(r.matches) == 3  # matching used everything
    assert (r.n_truth, r.n_truth_matched) == (3, 2)  # 20, 17 matched; 30 missed
    assert (r.n_pred, r.n_pred_matched) == (3, 2)  # 20, 13.5 matched; 13 false
    assert r.recall == pytest.approx(2 / 3) and r.precision == pytest.approx(2 / 3)
    # the errors use matches whose catalog crater is counted (D >= d_min): 20 and 17
    assert r.median_diameter_bias == pytest.approx(np.median([0.0, 12 / 17 - 1]))
    no_floor = evaluate(pred, truth)
    assert (no_floor.n_truth, no_floor.n_pred) == (5, 5)
    assert no_floor.precision == pytest.approx(3 / 5)


def test_floor_boundaries_are_inclusive():
    truth = px([[0, 0, 16.0], [100, 0, 15.999]])
    pred = px([[300, 0, 12.8], [400, 0, 12.79]])
    r = evaluate(pred, truth, d_min=16)
    assert r.n_truth == 1 and r.n_pred == 1


def test_by_diameter_bins():
    truth = px([[0, 0, 5], [100, 0, 12], [200, 0, 12], [300, 0, 40]])
    pred = px([[0, 0, 5], [100, 0, 12], [500, 0, 9], [600, 0, 9], [700, 0, 30]])
    r = evaluate(pred, truth, bins=[4, 8, 16, 32, 64])
    t = r.by_diameter.set_index("d_min")
    assert list(t.index) == [4, 8, 16, 32]
    assert t.loc[4, ["n_truth", "n_truth_matched", "n_pred", "n_pred_matched"]].tolist() == [1, 1, 1, 1]
    assert t.loc[8, ["n_truth", "n_truth_matched", "n_pred", "n_pred_matched"]].tolist() == [2, 1, 3, 1]
    assert t.loc[8, "recall"] == pytest.approx(0.5) and t.loc[8, "precision"] == pytest.approx(1 / 3)
    # 16..32: one false prediction (30 px) and no catalog crater
    assert t.loc[16, "n_truth"] == 0 and math.isnan(t.loc[16, "recall"])
    assert t.loc[16, ["n_pred", "n_pred_matched", "precision", "f1"]].tolist() == [1, 0, 0.0, 0.0]
    # 32..64: one missed catalog crater (40 px) and no prediction
    assert t.loc[32, ["n_truth", "n_truth_matched", "recall", "n_pred"]].tolist() == [1, 0, 0.0, 0]
    assert math.isnan(t.loc[32, "precision"]) and t.loc[32, "f1"] == 0.0
    # totals across bins equal the overall counts
    assert t["n_truth"].sum() == r.n_truth and t["n_pred"].sum() == r.n_pred


def test_default_bins_are_powers_of_two_covering_counted_craters():
    truth = px([[0, 0, 5], [100, 0, 40]])
    r = evaluate(truth, truth, d_min=5)
    edges = np.r_[r.by_diameter["d_min"].to_numpy(), r.by_diameter["d_max"].iloc[-1]]
    assert np.allclose(np.log2(edges), np.round(np.log2(edges)))
    assert edges[0] <= 0.8 * 5 and edges[-1] >= 40
    assert r.by_diameter["n_truth"].sum() == 2


def test_empty_truth_is_an_error():
    with pytest.raises(CatalogError, match="reference catalog is empty"):
        evaluate(px([[0, 0, 10]]), px([]))
    # an empty table without columns is empty too, not a table with the wrong columns
    with pytest.raises(CatalogError, match="reference catalog is empty"):
        evaluate(px([[0, 0, 10]]), pd.DataFrame())


@pytest.mark.parametrize("d_min", [True, 0, -3.0, "16"])
def test_d_min_must_be_a_positive_number(d_min):
    with pytest.raises(InvalidArgumentError, match="d_min must be a positive number"):
        evaluate(px([[0, 0, 10]]), px([[0, 0, 10]]), d_min=d_min)


@pytest.mark.parametrize("empty", [px([]), pd.DataFrame()])
def test_empty_predictions(empty):
    r = evaluate(empty, px([[0, 0, 10], [50, 0, 10]]))
    assert r.recall == 0.0 and math.isnan(r.precision) and r.f1 == 0.0
    assert r.n_pred == 0 and r.matches.empty
    assert math.isnan(r.median_position_error)
    assert json.loads(to_json(r))["precision"] is None


def test_recall_nan_when_floor_excludes_all_truth():
    r = evaluate(px([[0, 0, 40]]), px([[0, 0, 5]]), d_min=16)
    assert math.isnan(r.recall) and r.precision == 0.0 and r.f1 == 0.0


@pytest.mark.parametrize(
    "pred, truth, err, match",
    [
        (px([[0, 0, 10]]), pd.DataFrame({"x": [0.0], "y": [0.0]}), CatalogError, "diameter_px"),
        (px([[0, 0, -1]]), px([[0, 0, 10]]), CatalogValidationError, "impossible"),
        (px([[0, np.nan, 10]]), px([[0, 0, 10]]), CatalogValidationError, "missing"),
        ([[0, 0, 10]], px([[0, 0, 10]]), InvalidArgumentError, "DataFrame"),
        (
            pd.DataFrame({"lat": [0.0], "lon": [0.0], "diameter_km": [1.0]}),
            px([[0, 0, 10]]),
            CatalogError,
            "georeference",
        ),
    ],
)
def test_bad_inputs(pred, truth, err, match):
    with pytest.raises(err, match=match):
        evaluate(pred, truth)


def test_bad_arguments():
    t = px([[0, 0, 10]])
    with pytest.raises(InvalidArgumentError, match="rule"):
        evaluate(t, t, rule="nearest")
    with pytest.raises(InvalidArgumentError, match="assignment"):
        match_craters(t, t, assignment="random")
    with pytest.raises(InvalidArgumentError, match="d_min"):
        evaluate(t, t, d_min=-3)
    with pytest.raises(InvalidArgumentError, match="bins"):
        evaluate(t, t, bins=[10, 5])
    with pytest.raises(InvalidArgumentError, match="IoU threshold"):
        match_craters(t, t, "iou", threshold=1.5)


def test_rule_all_returns_every_rule():
    truth = px([[0, 0, 10], [50, 0, 10]])
    pred = px([[2.0, 0, 10], [50, 0, 10]])  # 0.2 d: PyCDA yes; IoU of the first pair ~0.60
    res = evaluate(pred, truth, rule="all")
    assert set(res) == set(DEFAULT_THRESHOLDS)
    assert all(r.recall == 1.0 for r in res.values())
    pred2 = px([[4.5, 0, 10], [50, 0, 10]])  # 0.45 d: PyCDA no, DeepMoon yes (20.25/25 < 1.8)
    res2 = evaluate(pred2, truth, rule="all")
    assert res2["pycda"].recall == 0.5 and res2["deepmoon"].recall == 1.0
    assert res2["iou"].recall == 0.5  # IoU of a 4.5 px offset between 10 px circles is ~0.37


# ------------------------------------------------------------------------------- geographic
def geo(rows) -> gpd.GeoDataFrame:
    arr = np.asarray(rows, dtype=float).reshape(-1, 3)
    return gpd.GeoDataFrame(
        {"crater_id": [f"c{i}" for i in range(len(arr))], "lat": arr[:, 0], "lon": arr[:, 1], "diameter_km": arr[:, 2]},
        geometry=gpd.points_from_xy(arr[:, 1], arr[:, 0]),
        crs=MARS_GEOGRAPHIC,
    )


def test_geographic_catalogs_use_great_circle_km():
    # 1 km north of a 5 km crater at 60 N: position error 1 / 2.5 = 0.4
    dlat = 1.0 / KM_PER_DEGREE
    truth = geo([[60.0, 10.0, 5.0], [-45.0, 179.9, 20.0]])
    # the second prediction sits across the antimeridian, 0.2 deg of longitude away at 45 S
    dlon_km = 0.2 * KM_PER_DEGREE * math.cos(math.radians(45))
    pred = geo([[60.0 + dlat, 10.0, 5.5], [-45.0, -179.9, 20.0]])
    r = evaluate(pred, truth)
    assert r.units == "km"
    m = r.matches.set_index("pred_index")
    assert m.loc[0, "separation"] == pytest.approx(1.0, rel=1e-6)
    assert m.loc[0, "position_error"] == pytest.approx(0.4, rel=1e-6)
    assert m.loc[1, "separation"] == pytest.approx(dlon_km, rel=1e-4)
    assert r.recall == 1.0
    assert r.by_latitude is not None
    band = r.by_latitude.set_index("lat_min")
    assert band.loc[60.0, "n_truth"] == 1 and band.loc[-60.0, "n_truth"] == 1
    assert band["n_truth"].sum() == 2 and band["n_pred"].sum() == 2


def test_geographic_rule_agrees_with_equivalent_pixels():
    # near the equator, a km is a km in any direction: the same layout in "pixels" of 1 km
    rng = np.random.default_rng(3)
    xy = rng.uniform(-20, 20, (40, 2))
    d = rng.uniform(1, 6, 40)
    noise = rng.normal(0, 0.6, (40, 2))
    dp = d * rng.uniform(0.7, 1.4, 40)
    truth_px = px(np.column_stack([xy, d]))
    pred_px = px(np.column_stack([xy + noise, dp]))
    to_deg = 1.0 / KM_PER_DEGREE
    truth_geo = geo(np.column_stack([xy[:, 1] * to_deg, xy[:, 0] * to_deg, d]))
    pred_geo = geo(np.column_stack([(xy + noise)[:, 1] * to_deg, (xy + noise)[:, 0] * to_deg, dp]))
    for rule in ("deepmoon", "iou", "pycda"):
        a = evaluate(pred_px, truth_px, rule=rule)
        b = evaluate(pred_geo, truth_geo, rule=rule, lat_bands=[-1, 0, 1])
        assert pairs(a.matches) == pairs(b.matches)
        assert a.f1 == pytest.approx(b.f1)
        assert b.by_latitude["n_truth"].sum() == 40


# ------------------------------------------------------------------------------- JSON
def test_to_json_round_trip_and_file(tmp_path):
    truth = px([[0, 0, 10], [50, 0, 10]])
    res = evaluate(px([[0, 0, 10]]), truth, rule="all", bins=[8, 16])
    text = to_json(res)
    data = json.loads(text)
    assert set(data) == {"deepmoon", "iou", "pycda"}
    assert data["deepmoon"]["recall"] == 0.5
    assert data["deepmoon"]["by_diameter"][0]["n_truth"] == 2
    assert "matches" not in data["deepmoon"]
    single = json.loads(to_json(res["iou"], include_matches=True))
    assert single["matches"][0]["pred_index"] == 0
    out = tmp_path / "scores.json"
    to_json(res["deepmoon"], out)
    assert json.loads(out.read_text())["f1"] == pytest.approx(2 / 3)
    with pytest.raises(OutputExistsError):
        to_json(res["deepmoon"], out)
    to_json(res["deepmoon"], out, overwrite=True)
    with pytest.raises(InvalidArgumentError):
        to_json({"a": 1})


def test_a_catalog_with_pixel_columns_is_compared_geographically():
    # catalog_from_probability keeps x, y, diameter_px beside lat, lon, diameter_km
    from marscraters.catalog import make_catalog

    truth = make_catalog([0.0, 1.0], [10.0, 11.0], [5.0, 8.0])
    det = make_catalog([0.001, 1.0, 2.0], [10.0, 11.001, 12.0], [5.1, 8.0, 3.0])
    det["x"], det["y"], det["diameter_px"] = [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [9.0, 9.0, 9.0]
    s = evaluate(det, truth, rule="deepmoon")
    assert s.units == "km" and (s.n_pred_matched, s.n_pred, s.n_truth_matched) == (2, 3, 2)


def _two_images(seed=0, n=40, miss=0.2, false=0.1):
    """Truth craters on 20 images, and a detector that misses ``miss`` of them and adds ``false``."""
    rng = np.random.default_rng(seed)
    truth = pd.DataFrame({"x": rng.uniform(0, 400, n * 20), "y": rng.uniform(0, 400, n * 20),
                          "diameter_px": rng.uniform(10, 60, n * 20), "image": np.repeat(np.arange(20), n)})
    truth = truth.assign(x=truth["x"] + truth["image"] * 10_000)
    keep = rng.random(len(truth)) > miss
    found = truth[keep].assign(x=lambda f: f["x"] + 0.5)
    extra = truth.sample(frac=false, random_state=seed).assign(x=lambda f: f["x"] + 5_000)  # far from any crater
    return (pd.concat([found, extra], ignore_index=True), truth.reset_index(drop=True))


def test_group_counts_add_up_to_the_result_and_the_bootstrap_brackets_it():
    from marscraters.evaluate import bootstrap_scores, group_counts

    pred, truth = _two_images()
    r = evaluate(pred, truth, d_min=16)
    counts = group_counts(r, pred, truth, "image")
    assert len(counts) == 20 and counts.index.name == "image"
    assert counts["n_pred"].sum() == r.n_pred and counts["n_pred_matched"].sum() == r.n_pred_matched
    assert counts["n_truth"].sum() == r.n_truth and counts["n_truth_matched"].sum() == r.n_truth_matched
    ci = bootstrap_scores(counts, n_boot=500)
    for name, value in (("precision", r.precision), ("recall", r.recall), ("f1", r.f1)):
        assert ci.loc[name, "estimate"] == pytest.approx(value)
        assert ci.loc[name, "low"] < value < ci.loc[name, "high"]
    # fewer groups, wider interval; the same seed, the same interval
    few = bootstrap_scores(counts.iloc[:4], n_boot=500)
    assert few.loc["f1", "high"] - few.loc["f1", "low"] > ci.loc["f1", "high"] - ci.loc["f1", "low"]
    assert bootstrap_scores(counts, n_boot=500).equals(ci)


def test_paired_difference_tells_a_better_detector_from_noise():
    from marscraters.evaluate import bootstrap_scores, group_counts

    pred, truth = _two_images()
    worse, _ = _two_images(miss=0.5)  # same truth (same seed), half the craters missed
    a = group_counts(evaluate(pred, truth), pred, truth, "image")
    b = group_counts(evaluate(worse, truth), worse, truth, "image")
    same = bootstrap_scores(a, reference=a, n_boot=300).loc["f1_difference"]
    assert same["low"] == same["estimate"] == same["high"] == 0.0
    diff = bootstrap_scores(a, reference=b, n_boot=300).loc["f1_difference"]
    assert diff["estimate"] > 0 and diff["low"] > 0  # clearly better: the interval excludes 0


def test_bootstrap_bad_input_names_the_fix():
    from marscraters.evaluate import bootstrap_scores, group_counts

    pred, truth = _two_images()
    r = evaluate(pred, truth)
    with pytest.raises(InvalidArgumentError, match="no column 'chip'"):
        group_counts(r, pred, truth, "chip")
    doubled = pd.concat([truth, truth])
    with pytest.raises(InvalidArgumentError, match="reset_index"):
        group_counts(r, pred, doubled, "image")
    counts = group_counts(r, pred, truth, "image")
    for kwargs, match in (({"n_boot": 3}, "n_boot"), ({"level": 1.5}, "level")):
        with pytest.raises(InvalidArgumentError, match=match):
            bootstrap_scores(counts, **kwargs)
    with pytest.raises(InvalidArgumentError, match="at least 2"):
        bootstrap_scores(counts.iloc[:1])
    with pytest.raises(InvalidArgumentError, match="group_counts"):
        bootstrap_scores(counts.drop(columns="n_pred"))
    with pytest.warns(UserWarning, match="too narrow"):
        bootstrap_scores(counts.iloc[:3], n_boot=50)
    # a crater without a group is refused, not merged into group 0
    unlabelled = pred.assign(image=pred["image"].astype(float))
    unlabelled.loc[0, "image"] = np.nan
    with pytest.raises(InvalidArgumentError, match="no 'image'"):
        group_counts(evaluate(unlabelled, truth), unlabelled, truth, "image")
    # the tables must be the evaluated ones; one rule's result, not rule="all"'s dict
    with pytest.raises(InvalidArgumentError, match="pass the tables that were evaluated"):
        group_counts(r, pred.iloc[1:], truth, "image")
    with pytest.raises(InvalidArgumentError, match="result\\['deepmoon'\\]"):
        group_counts(evaluate(pred, truth, rule="all"), pred, truth, "image")
    # a reference scored on other images (or with another floor) cannot be paired
    moved = counts.set_axis(counts.index + 100)
    with pytest.raises(InvalidArgumentError, match="not scored on the same images"):
        bootstrap_scores(counts, reference=moved)
    floor = group_counts(evaluate(pred, truth, d_min=30), pred, truth, "image")
    with pytest.raises(InvalidArgumentError, match="same d_min"):
        bootstrap_scores(counts, reference=floor)


def test_groups_without_craters_count_and_undefined_resamples_are_reported():
    from marscraters.evaluate import bootstrap_scores, group_counts

    pred, truth = _two_images()
    pred = pred[pred["image"] != 3].reset_index(drop=True)  # image 3: craters, no detections
    r = evaluate(pred, truth)
    counts = group_counts(r, pred, truth, "image", groups=range(25))  # images 20-24: nothing at all
    assert len(counts) == 25 and (counts.loc[20:24] == 0).all().all()
    assert counts.loc[3, "n_pred"] == 0 and counts.loc[3, "n_truth"] > 0
    with pytest.raises(InvalidArgumentError, match="not in groups="):
        group_counts(r, pred, truth, "image", groups=range(5))
    ci = bootstrap_scores(counts, n_boot=200)
    assert ci.loc["f1", "estimate"] == pytest.approx(r.f1) and (ci["undefined"] == 0).all()
    # two groups, one of them without detections: some resamples have no precision
    two = counts.loc[[3, 5]]
    with pytest.warns(UserWarning):
        ci2 = bootstrap_scores(two, n_boot=400)
    assert 0 < ci2.loc["precision", "undefined"] < 400 and ci2.loc["recall", "undefined"] == 0


def test_evaluate_command_prints_bootstrap_intervals(tmp_path, capsys):
    from marscraters import cli

    pred, truth = _two_images()
    pred.to_csv(tmp_path / "pred.csv", index=False)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    args = ["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "truth.csv"), "--rule", "deepmoon"]
    assert cli.main([*args, "--by", "image", "--bootstrap", "200"]) == 0
    text = capsys.readouterr().out
    assert "95 % intervals from 200 resamples of 20 image groups" in text
    line = next(row for row in text.splitlines() if row.strip().startswith("f1"))
    estimate, low, high = (float(v) for v in line.split()[1:4])
    assert low < estimate < high and estimate == pytest.approx(evaluate(pred, truth).f1, abs=1e-3)
    assert cli.main([*args, "--bootstrap", "200"]) == 2  # --by missing: refused with a message
    assert "--by COLUMN" in capsys.readouterr().err


def test_side_by_side_scores_many_images_as_the_sum_of_each():
    from marscraters.evaluate import group_counts, side_by_side

    rng = np.random.default_rng(3)
    truths, preds = [], []
    for _ in range(5):
        t = px(np.column_stack([rng.uniform(0, 400, 12), rng.uniform(0, 400, 12), rng.uniform(10, 60, 12)]))
        keep = rng.random(12) < 0.7
        p = t[keep].assign(x=lambda f: f["x"] + rng.normal(0, 2, len(f)))
        preds.append(pd.concat([p, px([[200, 200, 30]])], ignore_index=True))  # one false detection each
        truths.append(t)
    # the same craters on every image: only the shift keeps them from matching across images
    pred = side_by_side(preds, images=[10, 11, 12, 13, 14])
    truth = side_by_side(truths, images=range(10, 15))
    assert pred["image"].tolist()[:1] == [10] and truth["x"].max() > 4 * 10_000
    together = evaluate(pred, truth, d_min=16)
    each = [evaluate(p, t, d_min=16) for p, t in zip(preds, truths)]
    assert together.n_truth_matched == sum(r.n_truth_matched for r in each)
    assert together.n_pred_matched == sum(r.n_pred_matched for r in each)
    assert together.n_pred == sum(r.n_pred for r in each)
    counts = group_counts(together, pred, truth, "image")
    assert counts.index.tolist() == [10, 11, 12, 13, 14]
    assert counts["n_truth_matched"].tolist() == [r.n_truth_matched for r in each]
    # an image without detections still takes its place
    empty = side_by_side([preds[0], pd.DataFrame(), preds[2]])
    assert sorted(empty["image"].unique()) == [0, 2] and empty["x"].max() > 2 * 10_000
    with pytest.raises(InvalidArgumentError, match="stride"):
        side_by_side([px([[6_000, 10, 20]])])
    with pytest.raises(InvalidArgumentError, match="one per table"):
        side_by_side(preds, images=[1, 2])
    with pytest.raises(CatalogError, match="diameter_px"):
        side_by_side([pd.DataFrame({"x": [1.0], "y": [2.0]})])
