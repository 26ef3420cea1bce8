"""Crater-count model ages: chronology systems, CSFDs, Poisson and cumulative fits, count areas.

The reference is craterstats 3.2.1 (Michael's own implementation): every number that both
compute — N(>=D), N(1), epoch boundaries, CSFD densities, Poisson and cumulative-fit ages — must
agree with it to well within 1 %, on its sample counts and on counts from our own catalogs.
"""

from __future__ import annotations

import argparse
import math
import re
import types
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import scipy.integrate
import shapely
from shapely.geometry import Polygon, box

from marscraters import chronology as chron
from marscraters.catalog import make_catalog, read_catalog, write_craterstats
from marscraters.chronology import (
    SYSTEMS,
    ModelAge,
    age_from_n1,
    count_area_km2,
    csfd,
    cumulative_density,
    model_age,
    n1_from_age,
    production_range,
    sample_diameters,
)
from marscraters.crs import MARS_EQUIRECTANGULAR, MARS_GEOGRAPHIC, MARS_RADIUS_KM
from marscraters.errors import ChronologyError, MissingCRSError, NotMarsCRSError, OutputExistsError

# craterstats 3.2.1 predates SciPy 1.14 / NumPy 2: give it the names it still imports
if not hasattr(scipy.integrate, "simps"):
    scipy.integrate.simps = scipy.integrate.simpson
np.math = math  # type: ignore[attr-defined]
np.Inf = np.inf  # type: ignore[attr-defined]
cst = pytest.importorskip("craterstats")

import importlib.resources as _res

FUNCTIONS = str(_res.files("craterstats.config") / "functions.txt")
SAMPLES = Path(str(_res.files("craterstats.sample")))
PICKERING = SAMPLES / "Pickering.scc"

CS_NAMES = {  # our key -> craterstats (chronology function, production function)
    "neukum-ivanov": ("Mars, Hartmann & Neukum (2001)", "Mars, Ivanov (2001)"),
    "ivanov": ("Mars, Ivanov (2001)", "Mars, Ivanov (2001)"),
    "hartmann": ("Mars, Hartmann (2005) [Michael (2013)]", "Mars, Hartmann (2005)"),
}
RTOL = 0.01  # the brief: agree with craterstats within 1 %


def _cs_functions(system: str):
    cf_name, pf_name = CS_NAMES[system]
    return cst.Chronologyfn(FUNCTIONS, cf_name), cst.Productionfn(FUNCTIONS, pf_name)


def craterstats_age(path, diameter_range, method="poisson", system="neukum-ivanov", binning="pseudo-log"):
    """Age the way `craterstats -p source=...,range=[a,b],type=poisson|c-fit` computes it."""
    cf, pf = _cs_functions(system)
    cps = types.SimpleNamespace(pf=pf, cf=cf, ref_diameter=1.0)
    cc = cst.Cratercount(str(path))
    kind = {"poisson": "poisson", "cumulative": "c-fit"}[method]
    cp = cst.Craterplot(cratercount=cc, range=[str(v) for v in diameter_range], type=kind, binning=binning)
    cp.calculate_age(cps)
    return {"age": cp.t[0], "lower": cp.t[1], "upper": cp.t[2], "n1": 10 ** cp.a0[0], "n": cp.n}


def assert_same_age(ours: ModelAge, theirs: dict, rtol: float = RTOL) -> None:
    for key in ("age", "lower", "upper", "n1"):
        assert getattr(ours, key) == pytest.approx(theirs[key], rel=rtol), key
    assert ours.n == pytest.approx(theirs["n"])


# ------------------------------------------------------------------------------------------
# chronology and production functions
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_functions_match_craterstats(system):
    cf, pf = _cs_functions(system)
    d = np.geomspace(0.02, 300.0, 60)
    for t in (0.01, 0.5, 1.0, 3.0, 3.7, 4.1):
        n1 = n1_from_age(t, system)
        assert n1 == pytest.approx(cf.N1(t), rel=1e-12)
        np.testing.assert_allclose(cumulative_density(d, t, system), pf.C(d, np.log10(n1)), rtol=1e-10)
        np.testing.assert_allclose(chron.differential_density(d, t, system), pf.F(d, np.log10(n1)), rtol=1e-10)
        assert age_from_n1(n1, system) == pytest.approx(t, rel=1e-10)
        assert age_from_n1(n1, system) == pytest.approx(cf.t(n1=n1), rel=1e-4)  # craterstats interpolates
    np.testing.assert_allclose(production_range(system), pf.range, rtol=1e-7)


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_epoch_boundaries_match_craterstats(system):
    cf, pf = _cs_functions(system)
    theirs = cst.Epochs(FUNCTIONS, "Mars, Michael (2013)", pf, cf).time
    ours = [young for _, young, _ in chron.epoch_boundaries(system)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_known_values_and_aliases():
    # Hartmann & Neukum (2001): N(1) = 3.22e-14 (e^(6.93 t) - 1) + 4.875e-4 t
    assert n1_from_age(1.0) == pytest.approx(3.22e-14 * (math.exp(6.93) - 1) + 4.875e-4)
    assert cumulative_density(1.0, 2.0) == pytest.approx(n1_from_age(2.0))
    assert cumulative_density([1.0, 2.0], 1.0).shape == (2,)
    assert production_range("neukum-ivanov") == pytest.approx((0.015, 362.0))
    assert production_range("hartmann")[0] < 0.005
    for alias, key in [("Mars, Neukum-Ivanov (2001)", "neukum-ivanov"), ("Mars, Ivanov (2001)", "ivanov"),
                       ("Mars, Hartmann 2004 iteration", "hartmann"), ("HARTMANN", "hartmann")]:
        assert chron.get_system(alias).key == key
        assert n1_from_age(1.0, alias) == n1_from_age(1.0, key)
    assert chron.epoch_of(0.1) == "Late Amazonian"
    assert chron.epoch_of(3.8) == "Late Noachian"
    # steeper age-density curve when older: N(1) grows faster than linearly
    ages = np.array([0.5, 1.0, 2.0, 3.0, 4.0])
    assert np.all(np.diff(n1_from_age(ages) / ages) > 0)


# ------------------------------------------------------------------------------------------
# CSFD
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bins", ["pseudo-log", "root-2", "10/decade"])
@pytest.mark.parametrize("kind", ["cumulative", "differential", "R"])
def test_csfd_matches_craterstats(kind, bins):
    _, pf = _cs_functions("neukum-ivanov")
    cc = cst.Cratercount(str(PICKERING))
    theirs = cc.getplotdata({"R": "R-plot"}.get(kind, kind), bins, pf=pf)
    ours = csfd(PICKERING, bins=bins, kind=kind)
    np.testing.assert_allclose(ours["diameter"], theirs["d"], rtol=1e-12)
    np.testing.assert_allclose(ours["density"], theirs["y"], rtol=1e-10)
    if kind == "differential":
        # craterstats leaves its error bar uncorrected for the binning bias; ours keeps 1/sqrt(n) of the point
        np.testing.assert_allclose(ours["error"] / ours["density"], 1 / np.sqrt(ours["n_event"]), rtol=1e-12)
    else:
        np.testing.assert_allclose(ours["error"], theirs["err"], rtol=1e-10)
    assert ours["n"].sum() == 1707 and ours.attrs["area_km2"] == pytest.approx(3036.61128229)
    # exact Poisson intervals bracket the density and widen for few craters
    assert (ours["lower"] < ours["density"]).all() and (ours["upper"] > ours["density"]).all()
    rel = (ours["upper"] - ours["lower"]) / ours["density"]
    assert rel.iloc[-1] > rel.iloc[0]


def test_csfd_of_an_array_and_fractions():
    t = csfd([1.1, 1.3, 2.2, 5.0], area_km2=100.0)
    assert t["ncum"].tolist() == [4, 3, 2, 1]
    np.testing.assert_allclose(t["density"], [0.04, 0.03, 0.02, 0.01])
    frac = csfd(read_catalog(SAMPLES / "sample2.diam"))  # the 3.0 km crater counts 0.7
    assert frac["ncum"].iloc[0] == pytest.approx(3.7) and frac["ncum_event"].iloc[0] == 4


# ------------------------------------------------------------------------------------------
# ages against craterstats: its samples
# ------------------------------------------------------------------------------------------


def test_pickering_poisson_is_the_measured_age():
    result = model_age(PICKERING, diameter_range=(0.2, 0.7))
    # FINDINGS.md: craterstats gives 0.6304 Ga (0.5957-0.6670) for this count
    assert result.age == pytest.approx(0.6304, rel=RTOL)
    assert result.lower == pytest.approx(0.5957, rel=RTOL) and result.upper == pytest.approx(0.6670, rel=RTOL)
    assert result.n == 313 and result.area_km2 == pytest.approx(3036.61128229)
    assert result.epoch == "Middle Amazonian" and result.system == "neukum-ivanov"
    assert result.lower < result.age < result.upper


@pytest.mark.parametrize("method", ["poisson", "cumulative"])
@pytest.mark.parametrize(
    "sample, diameter_range, system",
    [
        ("Pickering.scc", (0.2, 0.7), "neukum-ivanov"),
        ("Pickering.scc", (2.0, 5.0), "neukum-ivanov"),
        ("Pickering.scc", (0.15, 1.0), "ivanov"),
        ("Pickering.scc", (0.2, 0.7), "hartmann"),
        ("sample.scc", (20.0, 50.0), "neukum-ivanov"),
        ("c7_Michael-et-al-2021.scc", (0.02, 0.1), "neukum-ivanov"),  # carries crater fractions
    ],
)
def test_ages_match_craterstats_on_its_samples(sample, diameter_range, system, method):
    theirs = craterstats_age(SAMPLES / sample, diameter_range, method, system)
    ours = model_age(SAMPLES / sample, diameter_range=diameter_range, system=system, method=method)
    assert_same_age(ours, theirs)


def test_cumulative_fit_with_other_binnings():
    for bins in ("root-2", "10/decade"):
        theirs = craterstats_age(PICKERING, (0.2, 0.7), "cumulative", binning=bins)
        ours = model_age(PICKERING, diameter_range=(0.2, 0.7), method="cumulative", bins=bins)
        assert_same_age(ours, theirs)


# ------------------------------------------------------------------------------------------
# ages against craterstats: our own catalogs, written with write_craterstats
# ------------------------------------------------------------------------------------------


def _synthetic_catalog(age, area_km2, diameter_range, seed, system="neukum-ivanov"):
    rng = np.random.default_rng(seed)
    d = sample_diameters(age, area_km2, diameter_range, system=system, rng=rng)
    lat, lon = rng.uniform(-10, 10, d.size), rng.uniform(20, 40, d.size)
    return make_catalog(lat, lon, d, attrs={"source": f"synthetic {age} Ga", "area_km2": area_km2})


@pytest.mark.parametrize("fmt", ["diam", "scc"])
@pytest.mark.parametrize("age, area, drange, fit_range, system", [
    (1.0, 4e5, (0.5, 20.0), (1.0, 8.0), "neukum-ivanov"),
    (3.6, 2e4, (0.2, 10.0), (0.5, 5.0), "hartmann"),
    (0.2, 2e5, (0.3, 5.0), (0.4, 3.0), "ivanov"),
])
def test_ages_match_craterstats_on_our_catalogs(tmp_path, fmt, age, area, drange, fit_range, system):
    cat = _synthetic_catalog(age, area, drange, seed=int(age * 10), system=system)
    path = write_craterstats(cat, tmp_path / f"count.{fmt}", area_km2=area)
    back = read_catalog(path)
    assert back.attrs["area_km2"] == pytest.approx(area) and len(back) == len(cat)
    for method in ("poisson", "cumulative"):
        theirs = craterstats_age(path, fit_range, method, system)
        # from the catalog in memory (area from attrs) and from the file
        assert_same_age(model_age(cat, diameter_range=fit_range, system=system, method=method), theirs)
        assert_same_age(model_age(path, diameter_range=fit_range, system=system, method=method), theirs)


# ------------------------------------------------------------------------------------------
# synthetic truth
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["poisson", "cumulative"])
@pytest.mark.parametrize("age", [0.5, 1.0, 3.0, 3.7])
def test_recovers_the_age_of_synthetic_surfaces(age, method):
    drange = (1.0, 10.0)
    # an area that holds about 5000 craters of 1-10 km at this age (>= 200 as required): the age's
    # scatter is then ~1.5 % (Poisson) / ~2 % (cumulative fit), so +-5 % is a 3-sigma check
    per_km2 = float(np.subtract(*cumulative_density(drange, age)))
    area = 5000 / per_km2
    d = sample_diameters(age, area, (0.8, 30.0), rng=int(age * 100))
    result = model_age(d, area_km2=area, diameter_range=drange, method=method)
    assert result.n >= 200
    assert result.age == pytest.approx(age, rel=0.05)
    assert result.lower < result.age < result.upper
    assert result.lower - 3 * (result.age - result.lower) < age < result.upper + 3 * (result.upper - result.age)


@pytest.mark.parametrize("method, bias", [("poisson", 0.015), ("cumulative", 0.03)])
def test_age_estimates_are_unbiased(method, bias):
    # 30 surfaces of 1 Ga with ~300 craters each: the mean age is close to the truth (craterstats'
    # cumulative fit, weighted by the noisy densities themselves, reads ~2 % young at this count)
    area = 300 / float(np.subtract(*cumulative_density((1.0, 10.0), 1.0)))
    ages = [model_age(sample_diameters(1.0, area, (0.8, 30.0), rng=seed), area_km2=area,
                      diameter_range=(1.0, 10.0), method=method).age for seed in range(30)]
    assert np.mean(ages) == pytest.approx(1.0, rel=bias)
    # and the 1-sigma bounds are honest: about 68 % of them hold the truth
    inside = [r.lower <= 1.0 <= r.upper for r in (
        model_age(sample_diameters(1.0, area, (0.8, 30.0), rng=seed), area_km2=area, diameter_range=(1.0, 10.0),
                  method=method) for seed in range(30))]
    assert 0.45 <= np.mean(inside) <= 0.9


def test_sample_diameters_follows_the_production_function():
    d = sample_diameters(3.5, 5e5, (1.0, 16.0), rng=7)
    expected = 5e5 * np.subtract(*cumulative_density([1.0, 16.0], 3.5))
    assert abs(d.size - expected) < 4 * math.sqrt(expected)
    assert d.min() >= 1.0 and d.max() < 16.0
    # the fraction above 2 km matches the production function
    frac = np.mean(d >= 2.0)
    want = np.subtract(*cumulative_density([2.0, 16.0], 3.5)) / np.subtract(*cumulative_density([1.0, 16.0], 3.5))
    assert frac == pytest.approx(want, abs=4 * math.sqrt(want * (1 - want) / d.size))


def test_few_craters_give_wide_asymmetric_bounds():
    one = model_age([1.5], area_km2=1e4, diameter_range=(1.0, 2.0))
    many = model_age(sample_diameters(1.0, 3e5, (1.0, 2.0), rng=3), area_km2=3e5, diameter_range=(1.0, 2.0))
    assert one.n == 1 and (one.upper - one.lower) / one.age > 5 * (many.upper - many.lower) / many.age
    assert one.upper - one.age > one.age - one.lower  # Poisson likelihood is skewed to older ages
    like = one.likelihood
    assert np.trapezoid(like["pdf"], like["age_ga"]) == pytest.approx(1.0, rel=0.02)


# ------------------------------------------------------------------------------------------
# count areas
# ------------------------------------------------------------------------------------------


def _box_area(w, s, e, n):
    return MARS_RADIUS_KM**2 * math.radians(e - w) * (math.sin(math.radians(n)) - math.sin(math.radians(s)))


def test_count_area_of_a_lonlat_box_is_exact_on_the_sphere():
    for bounds in [(0, 0, 1, 1), (20, -10, 40, 10), (100, 40, 130, 70)]:
        assert count_area_km2(box(*bounds)) == pytest.approx(_box_area(*bounds), rel=1e-5)
    gdf = gpd.GeoDataFrame(geometry=[box(20, -10, 40, 10)], crs=MARS_GEOGRAPHIC)
    assert count_area_km2(gdf) == pytest.approx(_box_area(20, -10, 40, 10), rel=1e-5)
    # two overlapping boxes count the overlap once
    two = gpd.GeoSeries([box(0, 0, 2, 1), box(1, 0, 3, 1)], crs=MARS_GEOGRAPHIC)
    assert count_area_km2(two) == pytest.approx(_box_area(0, 0, 3, 1), rel=1e-5)


def test_count_area_in_a_projected_mars_crs():
    # the same 20 x 20 degree box in equirectangular metres: parallels and meridians stay straight
    geo = gpd.GeoSeries([box(20, -10, 40, 10)], crs=MARS_GEOGRAPHIC)
    for crs in (MARS_EQUIRECTANGULAR, "IAU_2015:49915"):
        proj = geo.to_crs(crs)
        assert count_area_km2(proj) == pytest.approx(_box_area(20, -10, 40, 10), rel=1e-4)
        assert count_area_km2(proj.iloc[0], crs=crs) == pytest.approx(_box_area(20, -10, 40, 10), rel=1e-4)


def test_count_areas_larger_than_half_of_mars_and_the_whole_planet():
    # pyproj's signed polygon area wraps past half the sphere (a -60..90 band measured its complement)
    for bounds in [(-180, -60, 180, 90), (-180, -89, 180, 89), (0, -90, 360, 90), (-10, -80, 300, 85)]:
        assert count_area_km2(box(*bounds)) == pytest.approx(_box_area(*bounds), rel=1e-9)
    assert count_area_km2(box(-180, -90, 180, 90)) == pytest.approx(chron.MARS_SURFACE_KM2, rel=1e-12)


def test_count_area_of_projected_polygons_across_180_and_round_a_pole():
    km_per_deg = math.radians(MARS_RADIUS_KM)
    m = 1000.0 * km_per_deg
    # 175..185 E in the equirectangular CRS centred on 180, and in the one centred on 0
    for crs, west in (("IAU_2015:49915", -5), (MARS_EQUIRECTANGULAR, 175)):
        unit = gpd.GeoSeries([box(west * m, -5 * m, (west + 10) * m, 5 * m)], crs=crs)
        assert count_area_km2(unit) == pytest.approx(_box_area(175, -5, 185, 5), rel=1e-6)
    # a disk, a box and an annulus round each pole in polar stereographic metres, against the same
    # shapes' planar areas in the Lambert azimuthal equal-area projection (exact areas)
    disk, hole = shapely.Point(0, 0).buffer(200e3, 256), shapely.Point(0, 0).buffer(100e3, 256)
    for lat0 in (90, -90):
        stere = f"+proj=stere +lat_0={lat0} +lon_0=0 +k=1 +R={MARS_RADIUS_KM * 1000} +units=m +no_defs"
        laea = f"+proj=laea +lat_0={lat0} +lon_0=0 +R={MARS_RADIUS_KM * 1000} +units=m +no_defs"
        for shape in (disk, box(-300e3, -300e3, 300e3, 300e3), disk.difference(hole), box(200e3, 200e3, 300e3, 300e3)):
            exact = gpd.GeoSeries([shapely.segmentize(shape, 500.0)], crs=stere).to_crs(laea).area.iloc[0] / 1e6
            assert count_area_km2(gpd.GeoSeries([shape], crs=stere)) == pytest.approx(exact, rel=1e-4)
    # craters inside a polar unit are counted (the unit once read as a sliver along a parallel)
    stere = f"+proj=stere +lat_0=90 +lon_0=0 +k=1 +R={MARS_RADIUS_KM * 1000} +units=m +no_defs"
    cat = make_catalog([89.5, 88.8, 85.0], [10.0, -170.0, 0.0], [3.0, 3.0, 3.0])  # 85 N lies 296 km off the pole
    assert model_age(cat, area=gpd.GeoSeries([disk], crs=stere), diameter_range=(2, 8)).n == 2


def test_the_same_unit_in_degrees_and_across_180_in_metres_gives_the_same_count():
    lon = np.array([176.0, 179.5, -179.5, -176.0, 170.0, -170.0])
    cat = make_catalog(np.zeros(lon.size), lon, np.full(lon.size, 3.0))
    deg = model_age(cat, area=box(175, -5, 185, 5), diameter_range=(2, 8))
    m = 1000.0 * math.radians(MARS_RADIUS_KM)
    proj = model_age(cat, area=gpd.GeoSeries([box(-5 * m, -5 * m, 5 * m, 5 * m)], crs="IAU_2015:49915"),
                     diameter_range=(2, 8))
    assert deg.n == proj.n == 4
    assert proj.area_km2 == pytest.approx(deg.area_km2, rel=1e-6)


def test_craters_on_the_edge_of_a_count_polygon_count_as_filter_catalog_keeps_them():
    from marscraters.catalog import filter_catalog

    cat = make_catalog([10.0, 10.0, 12.0], [-62.0, -63.0, -61.0], [3.0, 3.0, 3.0])
    west = (-72, 8, -62, 20)
    assert model_age(cat, area=box(*west), diameter_range=(2, 8)).n == len(filter_catalog(cat, bbox=west)) == 2


def test_a_polygon_given_with_its_area_still_chooses_the_craters():
    cat = make_catalog([1, 1, 50], [1, 1.5, 100], [3.0, 3.0, 3.0])
    result = model_age(cat, area=box(0, 0, 2, 2), area_km2=14053.0, diameter_range=(2, 8))
    assert result.n == 2 and result.area_km2 == 14053.0


@pytest.mark.parametrize("area, err, match", [
    (gpd.GeoSeries([box(0, 0, 1, 1)], crs="EPSG:4326"), NotMarsCRSError, "non-Mars CRS"),
    (gpd.GeoSeries([box(0, 0, 1, 1)]), MissingCRSError, "set_crs"),
    (box(0, 0, 1e5, 1e5), MissingCRSError, "crs="),
    (Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), ChronologyError, "Self-intersection"),
    (Polygon([(0, 0), (1, 1), (2, 2)]), ChronologyError, "zero area"),
    (Polygon(), ChronologyError, "empty"),
    (box(0, 0, 1, 1).exterior, ChronologyError, "Polygon or MultiPolygon"),
    (42, ChronologyError, "shapely polygon"),
])
def test_bad_count_areas(area, err, match):
    with pytest.raises(err, match=match):
        count_area_km2(area)


def test_model_age_counts_only_craters_inside_the_area():
    cat = _synthetic_catalog(1.0, 4e5, (1.0, 20.0), seed=5)  # craters at lon 20..40, lat -10..10
    west = box(20, -10, 30, 10)
    result = model_age(cat, area=west, diameter_range=(1.0, 8.0))
    inside = (cat["lon"] < 30) & (cat["diameter_km"] >= 1.0) & (cat["diameter_km"] < 8.0)
    assert result.n == inside.sum()
    assert result.area_km2 == pytest.approx(_box_area(20, -10, 30, 10), rel=1e-5)
    # the same box given in 0..360 longitudes, or in a projected CRS, selects the same craters
    assert model_age(cat, area=box(380 - 360, -10, 30, 10), diameter_range=(1.0, 8.0)).n == result.n
    proj = gpd.GeoSeries([west], crs=MARS_GEOGRAPHIC).to_crs(MARS_EQUIRECTANGULAR)
    assert model_age(cat, area=proj, diameter_range=(1.0, 8.0)).n == result.n
    with pytest.raises(ChronologyError, match="inside the count area"):
        model_age(cat, area=box(100, 0, 110, 10), diameter_range=(1.0, 8.0))


# ------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"catalog": []}, "empty"),
    ({"catalog": [0.1, 0.12]}, "no crater .* lies in 1-2 km"),
    ({"diameter_range": (0.001, 0.7)}, "outside the Mars, Ivanov \\(2001\\) production function"),
    ({"diameter_range": (100.0, 1000.0)}, "choose a range inside it"),
    ({"diameter_range": (2.0, 1.0)}, "0 < dmin < dmax"),
    ({"diameter_range": "big"}, "\\(dmin, dmax\\)"),
    ({"system": "moon"}, "unknown chronology system 'moon'.*neukum-ivanov"),
    ({"method": "differential"}, "'poisson' or 'cumulative'"),
    ({"area_km2": 0.0}, "must be > 0"),
    ({"area_km2": None, "catalog": [1.5]}, "no count area: pass area_km2="),
    ({"area_km2": None, "area": gpd.GeoSeries([box(0, 0, 1, 1)], crs="EPSG:4326")}, "non-Mars"),
    ({"area_km2": None, "area": Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])}, "make_valid"),
])
def test_bad_inputs_name_the_fix(kwargs, match):
    args = {"catalog": [1.2, 1.5, 3.0], "area_km2": 100.0, "diameter_range": (1.0, 2.0)} | kwargs
    catalog = args.pop("catalog")
    with pytest.raises((ChronologyError, NotMarsCRSError), match=match):
        model_age(catalog, **args)


def test_bad_catalogs():
    import pandas as pd

    with pytest.raises(ChronologyError, match="no 'diameter_km' column"):
        model_age(pd.DataFrame({"d": [1.0]}), area_km2=1.0, diameter_range=(1, 2))
    with pytest.raises(ChronologyError, match="missing or <= 0"):
        model_age([1.0, -2.0], area_km2=1.0, diameter_range=(1, 2))
    with pytest.raises(ChronologyError, match="no pseudo-log bin centre"):
        model_age([1.01], area_km2=1.0, diameter_range=(1.0, 1.04), method="cumulative", snap=False)


# ------------------------------------------------------------------------------------------
# results, plots and the command line
# ------------------------------------------------------------------------------------------


def test_model_age_result_reads_well():
    result = model_age(PICKERING, diameter_range=(0.2, 0.7))
    text = str(result)
    assert "631 +36/-35 Ma" in text and "Middle Amazonian" in text and "313 craters of 0.2-0.7 km" in text
    assert "Neukum-Ivanov" in text and "Poisson" in text
    assert result.to_dict()["age_ga"] == result.age
    assert result.error[0] > 0 and result.error[1] > 0
    assert chron.format_age(3.61, 2.62, 3.72) == "3.61 +0.11/-0.99 Ga"


def test_a_large_count_prints_its_interval():
    # ~30,000 craters: a 1σ interval of about a Myr, which two decimals of Ga print as +0.00/-0.00
    area = 3e6
    d = chron.sample_diameters(3.8, area, (1.0, 16.0), rng=np.random.default_rng(0))
    result = model_age(d, area_km2=area, diameter_range=(1, 16))
    assert 0 < result.error[0] < 0.005 and 0 < result.error[1] < 0.005
    text = str(result)
    assert "+0.00/" not in text and "/-0.00 " not in text
    age, plus, minus, lo, hi = (float(v) for v in re.search(
        r"Model age ([\d.]+) \+([\d.]+)/-([\d.]+) Ga \(1σ ([\d.]+)-([\d.]+) Ga\)", text).groups())
    # two significant digits of each error, and 1σ bounds that differ
    assert plus == pytest.approx(result.error[1], rel=0.05) and minus == pytest.approx(result.error[0], rel=0.05)
    assert age == pytest.approx(result.age, abs=1e-4) and lo < age < hi
    assert chron.format_age(3.8012, 3.7985, 3.8041) == "3.8012 +0.0029/-0.0027 Ga"
    assert chron.format_age(3.6, 3.55, 3.65) == "3.60 +0.05/-0.05 Ga"  # the usual digits when they show it


def test_plots(tmp_path):
    result = model_age(PICKERING, diameter_range=(0.2, 0.7))
    fig = result.plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert any(result.age_text() in t.get_text() for t in ax.get_legend().get_texts())
    out = result.plot(kind="differential", out=tmp_path / "p.png").savefig  # writes and returns the figure
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and callable(out)
    with pytest.raises(OutputExistsError):
        chron.plot_csfd(PICKERING, fits=[result], out=tmp_path / "p.png")
    chron.plot_csfd(PICKERING, fits=[result], kind="R", out=tmp_path / "p.png", overwrite=True)


@pytest.mark.parametrize("kind", ["cumulative", "R"])
def test_csfd_plots_name_every_isochron_and_the_fits_epoch_in_a_readable_figure(kind):
    cat = _synthetic_catalog(3.6, 4e5, (1.0, 20.0), seed=3)
    result = model_age(cat, diameter_range=(1.6, 16))
    fig = result.plot(kind=kind)
    ax = fig.axes[0]
    fig.canvas.draw()  # (text extents need a renderer)
    names = [t for t in ax.texts if t.get_text().endswith(("Ma", "Ga"))]
    # each reference isochron that shows is named, none of the names overlapping another
    lo, hi = ax.get_ylim()
    shown = [line for line in ax.get_lines() if line.get_color() == "0.55"
             and ((line.get_ydata() > lo) & (line.get_ydata() < hi)).any()]
    assert len(shown) >= 4 and len(names) == len(shown)
    assert {t.get_text() for t in names} <= {"10 Ma", "100 Ma", "1 Ga", "3 Ga", "4 Ga"}
    if kind == "cumulative":
        assert len(names) == 5
    boxes = [t.get_window_extent() for t in names]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(ax.get_window_extent().contains(b.x0, b.y0) and ax.get_window_extent().contains(b.x1, b.y1)
               for b in boxes)
    # the fit's key names its epoch; the x axis ends where the isochrons do (no empty strip)
    assert any(f"{result.age_text()}, {result.epoch}" in t.get_text() for t in ax.get_legend().get_texts())
    ends = [line.get_xdata()[-1] for line in ax.get_lines() if len(line.get_xdata()) > 100]
    assert ax.get_xlim()[1] == pytest.approx(max(ends))


def test_a_count_of_one_crater_plots(tmp_path):
    # the age printed, then a TypeError from the y limits (one point, no other lower bound)
    result = model_age([3.1], area_km2=1000.0, diameter_range=(2, 8))
    fig = result.plot(out=tmp_path / "one.png")
    assert (tmp_path / "one.png").exists()
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("1 crater,") for t in texts) and "1 crater of 2-8 km" in str(result)
    # a narrow diameter axis still names its diameters
    assert [t.get_text() for t in fig.axes[0].get_xticklabels(minor=True) if t.get_text()]


def _age_cli(argv):
    parser = argparse.ArgumentParser(prog="marscraters")
    chron.add_age_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["age", *map(str, argv)])
    return args.func(args)


def test_cli_age_of_a_craterstats_count(tmp_path, capsys):
    png = tmp_path / "csfd.png"
    assert _age_cli([PICKERING, "--range", 0.2, 0.7, "--plot", png]) == 0
    text = capsys.readouterr().out
    assert "631 +36/-35 Ma" in text and f"wrote {png}" in text
    assert png.stat().st_size > 10_000
    with pytest.raises(OutputExistsError):  # refuses before computing anything
        _age_cli([PICKERING, "--range", 0.2, 0.7, "--plot", png])
    assert _age_cli([PICKERING, "--range", 0.2, 0.7, "--method", "cumulative", "--system", "Mars, Ivanov (2001)",
                     "--plot", png, "--overwrite"]) == 0
    assert "cumulative fit" in capsys.readouterr().out


def test_cli_age_with_a_count_polygon(tmp_path, capsys):
    cat = _synthetic_catalog(3.0, 3e5, (1.0, 20.0), seed=11)
    del cat.attrs["area_km2"]  # the count area comes from the polygon only
    gpkg = tmp_path / "cat.gpkg"
    from marscraters.catalog import write_catalog

    write_catalog(cat, gpkg)
    area = tmp_path / "area.gpkg"
    gpd.GeoDataFrame(geometry=[box(20, -10, 30, 10)], crs=MARS_GEOGRAPHIC).to_crs(MARS_EQUIRECTANGULAR).to_file(area)
    assert _age_cli([gpkg, "--area", area, "--range", 1, 8]) == 0
    expected = model_age(cat, area=box(20, -10, 30, 10), diameter_range=(1, 8))
    assert expected.age_text() in capsys.readouterr().out
    # errors reach the caller as MarsCratersError (cli.main turns them into exit code 2)
    with pytest.raises(ChronologyError, match="no count area"):
        _age_cli([gpkg, "--range", 1, 8])
    with pytest.raises(SystemExit):  # --area and --area-km2 exclude each other
        _age_cli([gpkg, "--area", area, "--area-km2", 5, "--range", 1, 8])


def test_docstring_examples():
    import doctest

    failures, tried = doctest.testmod(chron, optionflags=doctest.ELLIPSIS)
    assert tried > 10 and failures == 0
