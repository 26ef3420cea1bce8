"""Synthetic cratered surfaces of known age: population, time order, degradation, truth, pixels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyproj
import pytest
from scipy import ndimage, stats

from marscraters.chronology import cumulative_density, model_age, n1_from_age
from marscraters.crs import MARS_GEOGRAPHIC, MARS_RADIUS_M
from marscraters.errors import InvalidArgumentError
from marscraters.mosaic import validate_mosaic
from marscraters.synthetic import (
    MAX_RIM_COVERED,
    MIN_RELIEF_FRACTION,
    _rim_covered,
    crater_profile,
    formation_times,
    relief_fraction,
    render_surface,
    surface_area_km2,
    synthetic_catalog,
    synthetic_dots,
    synthetic_surface,
)

SMALL = (30.0, -0.3, 30.3, 0.0)  # 178 x 178 px at 592.747 px/deg
PPD = 592.747


@pytest.fixture(scope="module")
def small_surface():
    return synthetic_surface(SMALL, PPD, age_ga=3.5, seed=3)


def geod_area_km2(bounds):
    west, south, east, north = bounds
    geod = pyproj.Geod(a=MARS_RADIUS_M, b=MARS_RADIUS_M)
    lons = np.r_[np.linspace(west, east, 50), np.full(50, east), np.linspace(east, west, 50), np.full(50, west)]
    lats = np.r_[np.full(50, south), np.linspace(south, north, 50), np.full(50, north), np.linspace(north, south, 50)]
    return abs(geod.polygon_area_perimeter(lons, lats)[0]) / 1e6


# --------------------------------------------------------------------------------------------
# the mosaic
# --------------------------------------------------------------------------------------------


def test_surface_is_a_valid_mars_mosaic(small_surface):
    ds = validate_mosaic(small_surface.mosaic)
    assert ds["ir"].dtype == np.float32 and ds["ir"].shape == (178, 178)
    assert pyproj.CRS.from_wkt(ds.rio.crs.to_wkt()).equals(MARS_GEOGRAPHIC)
    left, bottom, right, top = ds.rio.bounds()
    np.testing.assert_allclose([left, bottom, right, top], SMALL, atol=1e-9)
    ir = ds["ir"].values
    data = ir[np.isfinite(ir)]
    assert np.isnan(ir).any(), "the no-data streaks become NaN"
    assert 1.0 <= data.min() and data.max() <= 255.0
    assert ds.attrs["synthetic_age_ga"] == 3.5
    # the truth is georeferenced on that grid: catalogued centres lie inside the bounds
    cat = small_surface.catalog
    assert cat.crs.equals(MARS_GEOGRAPHIC)
    assert ((cat.lon >= 30.0) & (cat.lon < 30.3) & (cat.lat >= -0.3) & (cat.lat < 0.0)).all()
    assert ((cat.x > -0.5) & (cat.x < 177.5)).all()


def test_surface_is_reproducible_per_seed():
    a = synthetic_surface(SMALL, PPD, age_ga=1.0, seed=11)
    b = synthetic_surface(SMALL, PPD, age_ga=1.0, seed=11)
    c = synthetic_surface(SMALL, PPD, age_ga=1.0, seed=12)
    np.testing.assert_array_equal(a.mosaic["ir"].values, b.mosaic["ir"].values)
    pd.testing.assert_frame_equal(pd.DataFrame(a.formed.drop(columns="geometry")),
                                  pd.DataFrame(b.formed.drop(columns="geometry")))
    assert not np.array_equal(np.nan_to_num(a.mosaic["ir"].values), np.nan_to_num(c.mosaic["ir"].values))


def test_catalog_only_matches_the_rendered_truth(small_surface):
    """synthetic_catalog is the same truth as synthetic_surface, without the pixels."""
    only = synthetic_catalog(SMALL, 3.5, 3)
    for col in ("lat", "lon", "diameter_km", "formation_ga", "relief_fraction", "rim_covered", "visible"):
        np.testing.assert_array_equal(only.formed[col].to_numpy(), small_surface.formed[col].to_numpy())
    assert len(only.catalog) == len(small_surface.catalog)


def test_legacy_density_keywords_still_work():
    s = synthetic_surface((30.0, -0.2, 30.2, 0.0), PPD, seed=5, n_per_km2_above_1km=2e-2, dmax_km=8.0)
    validate_mosaic(s.mosaic)
    assert s.formed["formation_ga"].isna().all()
    assert (s.formed["relief_fraction"] == 1.0).all()  # no age, no degradation
    assert s.formed["diameter_km"].between(1.0, 8.0).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bounds": (31, 0, 30, 1)},
        {"bounds": (30, 10, 31, 5)},
        {"age_ga": 0.0},
        {"age_ga": 5.0},
        {"dmin_km": 8.0, "dmax_km": 4.0},
        {"age_ga": 1.0, "n_per_km2_above_1km": 1e-3},
        {"diffusivity": -1.0},
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs):
    args = {"bounds": (0, 0, 1, 1), "age_ga": 1.0, **kwargs}
    with pytest.raises(InvalidArgumentError):
        synthetic_catalog(**args)


def test_bad_pixel_size_raises():
    with pytest.raises(InvalidArgumentError, match="px_per_deg"):
        synthetic_surface(SMALL, 0.0, age_ga=1.0)


# --------------------------------------------------------------------------------------------
# population and time order
# --------------------------------------------------------------------------------------------


def test_area_on_the_mars_sphere_matches_pyproj():
    for bounds in [(0, -1, 1, 0), (30, -30, 60, 0), (-20, 40, 50, 70)]:
        assert surface_area_km2(bounds) == pytest.approx(geod_area_km2(bounds), rel=1e-3)


@pytest.mark.parametrize("age", [0.5, 3.7])
def test_counts_and_diameters_follow_the_production_function(age):
    bounds = (0.0, -10.0, 20.0, 10.0)
    dmin, dmax = 1.0, 64.0
    truth = synthetic_catalog(bounds, age, seed=7, dmin_km=dmin, dmax_km=dmax)
    d = truth.formed["diameter_km"].to_numpy()
    expected = float(cumulative_density(dmin, age) - cumulative_density(dmax, age)) * surface_area_km2(bounds)
    assert abs(d.size - expected) < 4 * math.sqrt(expected)
    assert d.min() >= dmin and d.max() < dmax

    def cdf(x):
        n0, n1 = cumulative_density(dmin, age), cumulative_density(dmax, age)
        return (n0 - cumulative_density(np.asarray(x), age)) / (n0 - n1)

    assert stats.kstest(d, cdf).pvalue > 1e-3


def test_formation_times_follow_the_chronology():
    age = 3.7
    t = formation_times(20_000, age, np.random.default_rng(2))
    assert t.min() >= 0 and t.max() <= age
    # uniform in N1: N1(t) / N1(age) is uniform on [0, 1)
    u = np.asarray(n1_from_age(t)) / n1_from_age(age)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # the exponential branch: most craters of an old surface formed in its first few 100 Myr
    assert np.median(t) > 3.3


def test_formed_is_in_formation_order_and_later_craters_are_younger():
    truth = synthetic_catalog((0, -3, 3, 0), 3.0, seed=4)
    t = truth.formed["formation_ga"].to_numpy()
    assert np.all(np.diff(t) <= 0)
    np.testing.assert_array_equal(truth.formed["formation_order"], np.arange(len(t)))


# --------------------------------------------------------------------------------------------
# morphology and degradation
# --------------------------------------------------------------------------------------------


def test_simple_and_complex_crater_shapes():
    # simple bowl: depth/D = 0.2 from rim to floor, a raised rim, the floor below the plain
    d = 3.0
    floor, rim, far = crater_profile([0.0, 1.0, 5.0], d)
    assert (rim - floor) / d == pytest.approx(0.2, abs=0.01)
    assert rim > 0.03 * d and floor < 0 and far == pytest.approx(0.0, abs=1e-9)
    # complex: shallower, flat floor and a central peak
    d = 40.0
    r = np.linspace(0, 1, 201)
    h = crater_profile(r, d)
    assert (h[-1] - h.min()) / d < 0.12
    assert h[0] > h[40] + 0.1  # central peak above the floor at r = 0.2
    floor = h[(r > 0.2) & (r < 0.35)]
    assert np.ptp(floor) < 0.05 * (h[-1] - h.min())  # flat floor
    # ejecta: positive, falling off outside the rim
    out = crater_profile([1.2, 1.6, 2.5], d)
    assert np.all(out > 0) and np.all(np.diff(out) < 0)


def test_degradation_is_a_2d_diffusion_of_the_profile():
    """crater_profile(sigma) equals the fresh crater blurred by a 2-D Gaussian of width sigma."""
    d, sigma, km_px = 4.0, 0.4, 0.02
    n = 801
    yy, xx = (np.indices((n, n)) - n // 2) * km_px
    r = np.hypot(xx, yy) / (d / 2)
    fresh = crater_profile(r.ravel(), d).reshape(n, n)
    blurred = ndimage.gaussian_filter(fresh, sigma / km_px, mode="constant")
    radii = np.array([0.0, 0.5, 0.9, 1.0, 1.2, 2.0])
    cols = (n // 2 + radii * (d / 2) / km_px).astype(int)
    expected = blurred[n // 2, cols]
    np.testing.assert_allclose(crater_profile(radii, d, sigma), expected, atol=0.01 * d * 0.24)


def test_relief_falls_with_diffusion_and_small_craters_go_first():
    sig = np.linspace(0, 1.5, 16)
    rho = relief_fraction(np.full(sig.size, 2.0), sig)
    assert rho[0] == 1.0 and np.all(np.diff(rho) < 0) and rho[-1] < 0.1
    small, large = relief_fraction([1.0, 10.0], [0.3, 0.3])
    assert small < large


def test_rim_coverage_rule_geometry():
    km_per_deg = 2 * math.pi * MARS_RADIUS_M / 1000 / 360
    r_deg = 5.0 / km_per_deg  # 10 km craters
    # old crater at the origin; a same-size later crater centred on its rim covers 1/3 of the rim
    cov = _rim_covered(np.array([0.0, r_deg]), np.array([0.0, 0.0]), np.array([10.0, 10.0]))
    assert cov[0] == pytest.approx(1 / 3, abs=2 / 72) and cov[1] == 0.0
    # a later crater far away covers nothing; a later, much smaller one does not count
    cov = _rim_covered(np.array([0.0, 5 * r_deg, 0.0]), np.array([0.0, 0.0, 0.0]), np.array([10.0, 10.0, 2.0]))
    assert cov[0] == 0.0
    # a later, larger crater at the same place covers everything
    cov = _rim_covered(np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([10.0, 20.0]))
    assert cov[0] == 1.0


def test_true_catalog_is_the_recognisable_subset_of_formed():
    # a strong diffusivity, so that the relief rule removes craters too
    truth = synthetic_catalog((0, -5, 5, 0), 3.7, seed=8, diffusivity=0.05)
    f, cat = truth.formed, truth.catalog
    rule = (f["relief_fraction"] >= MIN_RELIEF_FRACTION) & (f["rim_covered"] <= MAX_RIM_COVERED)
    np.testing.assert_array_equal(f["visible"].to_numpy(), rule.to_numpy())
    assert 0 < (~rule).sum() < len(f)
    assert (f["relief_fraction"] < MIN_RELIEF_FRACTION).any() and (f["rim_covered"] > MAX_RIM_COVERED).any()
    # catalog is formed[visible], same craters in the same order
    np.testing.assert_array_equal(cat["diameter_km"].to_numpy(), f.loc[rule, "diameter_km"].to_numpy())
    np.testing.assert_array_equal(cat["formation_order"].to_numpy(), f.loc[rule, "formation_order"].to_numpy())
    assert set(cat["crater_id"]) <= set(f["crater_id"])
    assert "recognisable" in cat.attrs["visibility_rule"]


def test_older_surfaces_have_more_and_more_degraded_craters():
    bounds = (0, -6, 6, 0)
    young = synthetic_catalog(bounds, 1.0, seed=9).formed
    old = synthetic_catalog(bounds, 3.7, seed=9).formed
    assert len(old) > 3 * len(young)
    assert old["relief_fraction"].mean() < young["relief_fraction"].mean() - 0.05
    assert old["formation_ga"].median() > young["formation_ga"].median()
    assert (~old["visible"]).mean() > (~young["visible"]).mean()


# --------------------------------------------------------------------------------------------
# age recovery from the true catalog
# --------------------------------------------------------------------------------------------

# (age, diameter range, bounds): ~4000-6000 craters in range, so that Poisson noise (1.3-1.6 %)
# is well inside the 5 % tolerance; old surfaces are dated above 2 km, where degradation leaves
# every crater recognisable.
AGE_CASES = [
    (0.5, (1.0, 16.0), (0.0, -30.0, 90.0, 30.0)),
    (1.0, (1.0, 16.0), (0.0, -25.0, 60.0, 25.0)),
    (3.0, (2.0, 32.0), (0.0, -25.0, 80.0, 25.0)),
    (3.7, (2.0, 32.0), (0.0, -20.0, 40.0, 20.0)),
]


@pytest.mark.parametrize("age, drange, bounds", AGE_CASES)
def test_model_age_of_the_true_catalog_recovers_the_age(age, drange, bounds):
    truth = synthetic_catalog(bounds, age, seed=1)
    cat = truth.catalog
    n = int(cat["diameter_km"].between(*drange, inclusive="left").sum())
    assert n >= 200
    area = geod_area_km2(bounds)
    assert cat.attrs["area_km2"] == pytest.approx(area, rel=1e-3)
    result = model_age(cat, area_km2=area, diameter_range=drange, snap=False)
    assert result.age == pytest.approx(age, rel=0.05)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def test_illumination_sun_facing_walls_are_brighter():
    """Afternoon Sun in the west: a bowl's east inner wall faces it and is warmer than the west."""
    craters = pd.DataFrame({"x": [100.0], "y": [100.0], "diameter_km": [6.0], "sigma_km": [0.0], "freshness": [0.0]})
    img = render_surface((200, 200), (0.1, 0.1), craters, np.random.default_rng(0), noise=0.0, streaks=0,
                         seams=False, background_relief_km=0.0, ti_scale=0.0)
    east_wall, west_wall, plain = img[100, 100 + 22], img[100, 100 - 22], img[20, 20]
    assert east_wall > plain + 20 and west_wall < plain - 20
    # a degraded crater of the same size has less contrast
    old = craters.assign(sigma_km=1.0)
    img_old = render_surface((200, 200), (0.1, 0.1), old, np.random.default_rng(0), noise=0.0, streaks=0,
                             seams=False, background_relief_km=0.0, ti_scale=0.0)
    assert np.ptp(img_old) < 0.7 * np.ptp(img)


def test_later_craters_overprint_earlier_ones():
    """A large young crater erases the small old one inside it (its floor replaces the terrain)."""
    old_small = {"x": 100.0, "y": 100.0, "diameter_km": 2.0, "sigma_km": 0.0, "freshness": 0.0}
    young_big = {"x": 100.0, "y": 100.0, "diameter_km": 12.0, "sigma_km": 0.0, "freshness": 0.0}
    kw = {"noise": 0.0, "streaks": 0, "seams": False, "background_relief_km": 0.0, "ti_scale": 0.0}
    both = render_surface((200, 200), (0.1, 0.1), pd.DataFrame([old_small, young_big]), np.random.default_rng(0), **kw)
    big_only = render_surface((200, 200), (0.1, 0.1), pd.DataFrame([young_big]), np.random.default_rng(0), **kw)
    reverse = render_surface((200, 200), (0.1, 0.1), pd.DataFrame([young_big, old_small]), np.random.default_rng(0), **kw)
    # only the mean level the big crater's floor inherits differs (a fraction of a DN at its edge)
    np.testing.assert_allclose(both, big_only, atol=0.5)
    assert np.abs(reverse - big_only).max() > 20  # the small crater on top stays visible


@pytest.mark.parametrize("age, seed", [(1.0, 3), (3.5, 3)])
def test_synthetic_surface_looks_like_themis_daytime_ir(age, seed):
    """Brightness statistics of a 416² px chip in the range of the real THEMIS crops (per crop: mean
    126 DN median; std 30 median, 13-59 from the 1st to the 99th percentile; pixel-to-pixel noise
    7.8 DN median)."""
    side = 416 / PPD
    ir = synthetic_surface((30.0, -side, 30.0 + side, 0.0), PPD, age_ga=age, seed=seed).mosaic["ir"].values
    data = ir[np.isfinite(ir)]
    assert 100 < data.mean() < 150
    assert 13 < data.std() < 59
    dx = np.diff(ir, axis=1)
    assert 4 < np.nanstd(dx) / math.sqrt(2) < 16
    assert 0 < np.isnan(ir).mean() < 0.05  # no-data streaks


def test_synthetic_dots_still_work():
    images, targets, circles = synthetic_dots(3, 64, seed=1, return_circles=True)
    assert images.shape == targets.shape == (3, 64, 64) and len(circles) == 3
    assert set(np.unique(targets)) <= {0, 1} and (images[targets == 1] >= 40).all()
