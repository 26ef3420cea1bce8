"""Model ages at the edges: counts denser than the 5 Ga isochron, count polygons and crater
positions, and craters exactly on a range's bounds.

Each test is tiny and builds its data in code.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from marscraters import chronology as chron
from marscraters.chronology import bin_edges, csfd, model_age, sample_diameters
from marscraters.errors import (
    ChronologyError,
    InvalidArgumentError,
    MissingCRSError,
    cli_message,
)

#: the western half of a 20 x 10 degree field at the equator
HALF = box(0, -5, 10, 5)


def _field(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Longitudes, latitudes and diameters (km) of craters spread over 0..20 E, 5 S..5 N."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 20, n), rng.uniform(-5, 5, n), rng.uniform(1, 5, n)


# --------------------------------------------------------------------------------------------
# 1. counts denser than the 5 Ga isochron, and ages older than Mars
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("area_km2", [1e-4, 1e-6])
def test_a_count_denser_than_the_5_ga_isochron_is_refused_not_stuck_at_5_ga(area_km2):
    # 300 craters of 0.2-0.7 km: their real area (some 3,000 km²) typed in the wrong unit
    d = np.geomspace(0.2, 0.69, 300)
    with pytest.raises(ChronologyError, match=r"denser than a 5 Ga surface.*area_km2=.*saturated"):
        model_age(d, area_km2=area_km2, diameter_range=(0.2, 0.7))


def test_a_count_whose_likelihood_underflows_is_refused_not_nan():
    d = np.geomspace(1, 9.9, 3000)  # 3000 craters of 1-10 km on 1 km²
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning before the error either
        with pytest.raises(ChronologyError, match="no model age fits them"):
            model_age(d, area_km2=1.0, diameter_range=(1, 10))


def test_the_dense_count_error_names_the_command_line_flags():
    d = np.geomspace(1, 9.9, 3000)
    with pytest.raises(ChronologyError) as info:
        model_age(d, area_km2=1.0, diameter_range=(1, 10))
    text = cli_message(str(info.value), {"--area-km2", "--range"})
    assert "--area-km2 KM2" in text and "--range" in text and "area_km2=" not in text


@pytest.mark.parametrize("method", ["poisson", "cumulative"])
def test_an_age_older_than_mars_warns_of_a_unit_slip(method):
    d = sample_diameters(4.7, 50.0, (1.0, 10.0), rng=3)
    with pytest.warns(UserWarning, match=r"older than Mars.*unit slip"):
        result = model_age(d, area_km2=50.0, diameter_range=(1.0, 10.0), method=method)
    assert 4.5 < result.age < 5.0


def test_an_age_younger_than_mars_does_not_warn():
    d = sample_diameters(3.5, 2e5, (1.0, 16.0), rng=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = model_age(d, area_km2=2e5, diameter_range=(1.0, 16.0))
    assert abs(result.age - 3.5) < 0.05


def test_a_nan_age_reads_as_no_epoch_and_no_ka():
    with pytest.raises(InvalidArgumentError, match="NaN"):
        chron.epoch_of(float("nan"))
    assert "ka" not in chron.format_age(float("nan"), float("nan"), float("nan"))


# --------------------------------------------------------------------------------------------
# 2. count polygons and crater positions
# --------------------------------------------------------------------------------------------


def test_a_polygon_counts_the_points_of_a_geodataframe_without_lon_lat_columns():
    lon, lat, d = _field()
    g = gpd.GeoDataFrame({"diameter_km": d}, geometry=gpd.points_from_xy(lon, lat), crs="IAU_2015:49900")
    inside = int(g.intersects(HALF).sum())
    assert 0 < inside < len(g)
    assert model_age(g, area=HALF, diameter_range=(1, 5), snap=False).n == inside


def test_points_in_a_projected_mars_crs_are_placed_in_lonlat():
    lon, lat, d = _field()
    g = gpd.GeoDataFrame({"diameter_km": d}, geometry=gpd.points_from_xy(lon, lat), crs="IAU_2015:49900")
    inside = int(g.intersects(HALF).sum())
    metres = g.to_crs("IAU_2015:49910")
    assert model_age(metres, area=HALF, diameter_range=(1, 5), snap=False).n == inside


def test_points_without_a_crs_are_refused_beside_a_polygon():
    lon, lat, d = _field(20)
    g = gpd.GeoDataFrame({"diameter_km": d}, geometry=gpd.points_from_xy(lon, lat))
    with pytest.raises(MissingCRSError, match=r"set_crs\('IAU_2015:49900'\)"):
        model_age(g, area=HALF, diameter_range=(1, 5))


@pytest.mark.parametrize("column", ["lon", "lat"])
def test_a_crater_without_a_position_is_refused_beside_a_polygon(column):
    lon, lat, d = _field()
    df = pd.DataFrame({"lon": lon, "lat": lat, "diameter_km": d})
    df.loc[[0, 7], column] = np.nan
    with pytest.raises(ChronologyError, match=r"2 of 200 craters have no position.*rows 1, 8.*dropna"):
        model_age(df, area=HALF, diameter_range=(1, 5))


def test_a_missing_point_is_refused_beside_a_polygon():
    lon, lat, d = _field(20)
    g = gpd.GeoDataFrame({"diameter_km": d}, geometry=gpd.points_from_xy(lon, lat), crs="IAU_2015:49900")
    g.loc[3, "geometry"] = None
    with pytest.raises(ChronologyError, match=r"row 4,.*is_empty"):
        model_age(g, area=HALF, diameter_range=(1, 5))


def test_a_count_without_positions_uses_the_polygon_for_its_area_only_and_says_so():
    _, _, d = _field()
    counts = pd.DataFrame({"diameter_km": d, "lon": np.nan, "lat": np.nan})
    with pytest.warns(UserWarning, match="count area .* only: every crater is counted") as record:
        result = model_age(counts, area=HALF, diameter_range=(1, 5), snap=False)
    assert result.n == len(d)
    area = chron.count_area_km2(HALF)
    assert result.area_km2 == pytest.approx(area)
    assert f"--area-km2 {area:.6g} instead of the polygon" in cli_message(str(record[0].message), {"--area-km2"})


def test_positions_are_not_needed_without_a_polygon():
    lon, lat, d = _field(20)
    g = gpd.GeoDataFrame({"diameter_km": d}, geometry=gpd.points_from_xy(lon, lat))  # no CRS: not looked at
    assert model_age(g, area_km2=1e4, diameter_range=(1, 5)).n == 20


# --------------------------------------------------------------------------------------------
# 3. bin boundaries are exact decimals: dmin <= D < dmax, snapped or not
# --------------------------------------------------------------------------------------------


def test_pseudo_log_edges_are_exact_decimals():
    edges = bin_edges([0.011, 300.0]).tolist()
    for v in (0.011, 0.15, 0.3, 0.35, 0.6, 0.7, 110.0):
        assert v in edges


@pytest.mark.parametrize("bins, values", [("x2", (0.125, 8.0, 32.0)), ("root-2", (0.125, 8.0, 64.0)),
                                          ("10/decade", (0.1, 10.0, 100.0))])
def test_whole_powers_of_geometric_edges_are_exact(bins, values):
    edges = bin_edges([0.011, 300.0], bins).tolist()
    assert all(v in edges for v in values)


@pytest.mark.parametrize("snap", [True, False])
def test_a_crater_on_dmin_is_counted_and_one_on_dmax_is_not(snap):
    d = np.r_[[0.3] * 10, np.linspace(0.35, 0.65, 10), [0.7] * 5]
    result = model_age(d, area_km2=100.0, diameter_range=(0.3, 0.7), snap=snap)
    assert result.diameter_range == (0.3, 0.7)
    assert result.n == 20


def test_csfd_bins_a_crater_on_a_boundary_above_it():
    table = csfd([0.3, 0.3, 0.32, 0.7], area_km2=1.0)
    assert table[["d_min", "n"]].values.tolist() == [[0.3, 3.0], [0.7, 1.0]]


# --------------------------------------------------------------------------------------------
# 4. a count polygon in a planetographic CRS is converted to planetocentric latitudes
# --------------------------------------------------------------------------------------------


def test_a_planetographic_count_polygon_is_dated_on_its_planetocentric_ground():
    import pyproj

    ell = pyproj.CRS("IAU_2015:49901").ellipsoid
    b_over_a = ell.semi_minor_metre / ell.semi_major_metre
    ocentric = [float(np.degrees(np.arctan(b_over_a**2 * np.tan(np.radians(v))))) for v in (40.0, 50.0)]
    # IAU_2015:49901 counts longitude westward: 10..20 W is -20..-10 E
    ographic = gpd.GeoSeries([box(10.0, 40.0, 20.0, 50.0)], crs="IAU_2015:49901")
    same_ground = gpd.GeoSeries([box(-20.0, ocentric[0], -10.0, ocentric[1])], crs="IAU_2015:49900")
    assert chron.count_area_km2(ographic) == pytest.approx(chron.count_area_km2(same_ground), rel=1e-6)
    # a crater just inside the planetographic box's southern edge lies 0.33 deg south of 40 N planetocentric:
    # it is outside the ground when latitudes are read as they are (the old "ballpark" no-op)
    cat = pd.DataFrame({"lon": [-15.0, -15.0], "lat": [ocentric[0] + 0.01, 49.9], "diameter_km": [2.0, 2.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counted = model_age(cat, area=ographic, diameter_range=(1.0, 4.0), snap=False).n
    assert counted == 1  # 49.9 N planetocentric lies north of the box's 49.67 N


def test_planetographic_crater_points_are_placed_at_their_planetocentric_latitude():
    from shapely.geometry import Point

    # 20 km north of the box's 45 N edge when read as they are; 45 N planetographic is 44.662 N planetocentric (-15 W is 15 E)
    pts = gpd.GeoDataFrame({"diameter_km": [2.0]}, geometry=[Point(-15.0, 45.0)], crs="IAU_2015:49901")
    lon, lat = chron._geometry_lonlat(pts, "points")
    assert lon[0] == pytest.approx(15.0) and lat[0] == pytest.approx(44.6618, abs=1e-3)
