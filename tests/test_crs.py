"""Mars CRS objects, km <-> degree conversions, longitude conventions and the Grid mapping,
checked against hand-computed values and pyproj."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
from affine import Affine

from marscraters import crs
from marscraters.errors import InvalidArgumentError, MissingCRSError, NotMarsCRSError

R = 3_396_190.0


def test_sphere_and_codes():
    assert crs.MARS_RADIUS_M == R
    assert crs.MARS_GEOGRAPHIC.is_geographic
    assert crs.MARS_GEOGRAPHIC.ellipsoid.semi_major_metre == R
    assert crs.MARS_GEOGRAPHIC.ellipsoid.inverse_flattening in (0.0, float("inf"))
    assert crs.MARS_EQUIRECTANGULAR.is_projected
    assert crs.MARS_EQUIRECTANGULAR_180.is_projected
    assert crs.MARS_GEOGRAPHIC.equals(pyproj.CRS("+proj=longlat +R=3396190 +no_defs"), ignore_axis_order=True)


def test_km_per_degree_hand_computed():
    # 2 pi R / 360 = 59.2747 km
    assert crs.KM_PER_DEGREE == pytest.approx(2 * math.pi * 3396.19 / 360)
    assert crs.KM_PER_DEGREE == pytest.approx(59.27470, abs=1e-5)


@pytest.mark.parametrize("lat", [0.0, 30.0, -45.0, 60.0, 89.0])
def test_km_deg_conversions_against_pyproj_geod(lat):
    geod = pyproj.Geod(a=R, b=R)
    # one degree of longitude along the parallel is a small-circle arc, not a geodesic: compare the
    # chord-free formula with a fine polyline on the sphere
    lons = np.linspace(0.0, 1.0, 2001)
    arc_km = geod.line_length(lons, np.full_like(lons, lat)) / 1000.0
    assert float(crs.deg_lon_to_km(1.0, lat)) == pytest.approx(arc_km, rel=1e-6)
    assert float(crs.km_to_deg_lon(arc_km, lat)) == pytest.approx(1.0, rel=1e-6)
    # one degree of latitude along a meridian is a geodesic
    _, _, dist = geod.inv(10.0, lat - 0.5 if lat < 89 else lat - 1, 10.0, lat + 0.5 if lat < 89 else lat)
    assert float(crs.deg_lat_to_km(1.0)) == pytest.approx(dist / 1000.0, rel=1e-9)
    assert float(crs.km_to_deg_lat(dist / 1000.0)) == pytest.approx(1.0, rel=1e-9)


def test_cos_lat_factor_hand_computed():
    assert float(crs.km_to_deg_lon(crs.KM_PER_DEGREE, 60.0)) == pytest.approx(2.0)
    assert float(crs.deg_lon_to_km(2.0, 60.0)) == pytest.approx(crs.KM_PER_DEGREE)
    with pytest.raises(InvalidArgumentError, match="latitude"):
        crs.km_to_deg_lon(1.0, 91.0)


def test_pixel_scale():
    assert crs.pixel_scale_m(256) == pytest.approx(231.5418, abs=1e-3)
    assert crs.pixel_scale_m(592.747) == pytest.approx(100.0, abs=0.01)
    assert crs.pixel_scale_m(256, lat=60) == pytest.approx(231.5418 / 2, abs=1e-3)
    assert crs.px_per_deg_for_scale(crs.pixel_scale_m(256)) == pytest.approx(256)
    for bad in (0, -1):
        with pytest.raises(InvalidArgumentError):
            crs.pixel_scale_m(bad)


def test_pixel_scale_matches_equirectangular_projection():
    # IAU_2015:49910 x metres per degree of longitude at the equator == pixel scale * px_per_deg
    t = pyproj.Transformer.from_crs(crs.MARS_GEOGRAPHIC, crs.MARS_EQUIRECTANGULAR, always_xy=True)
    x0, _ = t.transform(0.0, 0.0)
    x1, _ = t.transform(1.0, 0.0)
    assert (x1 - x0) / 256 == pytest.approx(crs.pixel_scale_m(256), rel=1e-9)


@pytest.mark.parametrize(
    "lon, lon180, lon360",
    [(0, 0, 0), (90, 90, 90), (-90, -90, 270), (270, -90, 270), (180, 180, 180), (-180, -180, 180),
     (360, 0, 360), (359.5, -0.5, 359.5), (-0.5, -0.5, 359.5), (540, -180, 180), (-370, -10, 350)],
)
def test_longitude_conventions(lon, lon180, lon360):
    assert float(crs.normalize_lon_180(lon)) == pytest.approx(lon180)
    assert float(crs.normalize_lon_360(lon)) == pytest.approx(lon360)
    # the two conventions describe the same meridian
    assert (float(crs.normalize_lon_180(lon)) - float(crs.normalize_lon_360(lon))) % 360 == pytest.approx(0, abs=1e-9)


def test_wrap_lon():
    assert float(crs.wrap_lon(-20, 330)) == 340
    assert float(crs.wrap_lon(10, 330)) == 370
    assert float(crs.wrap_lon(-175, 170)) == 185


def test_mars_crs_checks():
    assert crs.is_mars_crs("IAU_2015:49900")
    assert crs.is_mars_crs("+proj=eqc +R=3396190 +units=m")
    assert not crs.is_mars_crs("EPSG:4326")
    assert not crs.is_mars_crs("not a crs")
    with pytest.raises(MissingCRSError, match="write_crs"):
        crs.to_mars_crs(None)
    with pytest.raises(NotMarsCRSError, match="IAU_2015:49900"):
        crs.to_mars_crs("EPSG:4326", what="tile.tif")


def _geo_grid(west, north, ppd, n):
    return crs.Grid(Affine(1 / ppd, 0, west, 0, -1 / ppd, north), crs.MARS_GEOGRAPHIC, (n, n))


def test_grid_geographic_round_trip_and_pixel_centres():
    g = _geo_grid(30.0, 0.0, 256, 7680)
    lon, lat = g.pixel_to_lonlat(0, 0)
    assert float(lon) == pytest.approx(30 + 0.5 / 256) and float(lat) == pytest.approx(-0.5 / 256)
    col, row = g.lonlat_to_pixel(45.0, -15.0)
    assert float(col) == pytest.approx(3839.5) and float(row) == pytest.approx(3839.5)
    assert g.px_per_deg() == pytest.approx((256, 256))


def test_grid_wraps_longitudes():
    g = _geo_grid(330.0, 0.0, 8, 480)  # x runs 330..390 (crosses 0/360)
    col, _ = g.lonlat_to_pixel(-10.0, -1.0)  # = 350 E
    assert float(col) == pytest.approx(20 * 8 - 0.5)
    col, _ = g.lonlat_to_pixel(10.0, -1.0)  # = 370 on this grid
    assert float(col) == pytest.approx(40 * 8 - 0.5)
    lon, _ = g.pixel_to_lonlat(40 * 8 - 0.5, 0)
    assert float(lon) == pytest.approx(10.0)
    g = _geo_grid(170.0, 0.0, 8, 160)  # crosses +-180
    col, _ = g.lonlat_to_pixel(-179.0, -1.0)
    assert float(col) == pytest.approx(11 * 8 - 0.5)


def test_grid_projected_matches_pyproj():
    # an IAU_2015:49910 grid at 231.54 m/px
    m = crs.pixel_scale_m(256)
    x0, y0 = 30 * 256 * m, 0.0
    g = crs.Grid(Affine(m, 0, x0, 0, -m, y0), crs.MARS_EQUIRECTANGULAR, (7680, 7680))
    col, row = g.lonlat_to_pixel(45.0, -15.0)
    assert float(col) == pytest.approx(3839.5, abs=1e-6) and float(row) == pytest.approx(3839.5, abs=1e-6)
    t = pyproj.Transformer.from_crs(crs.MARS_EQUIRECTANGULAR, crs.MARS_GEOGRAPHIC, always_xy=True)
    x, y = g.pixel_to_xy(100, 200)
    lon_ref, lat_ref = t.transform(x, y)
    lon, lat = g.pixel_to_lonlat(100, 200)
    assert float(lon) == pytest.approx(lon_ref) and float(lat) == pytest.approx(lat_ref)
    assert g.px_per_deg() == pytest.approx((256, 256), rel=1e-9)


def test_km_to_pixels_is_an_ellipse_off_the_equator():
    g = _geo_grid(0.0, 90.0, 256, 100)
    dx, dy = g.km_to_pixels(10.0, 60.0)
    assert float(dy) == pytest.approx(10.0 / crs.KM_PER_DEGREE * 256)
    assert float(dx) == pytest.approx(2 * float(dy))


# --------------------------------------------------------------------------------------------
# planetographic images are refused: their rows cannot be planetocentric latitudes without resampling
# --------------------------------------------------------------------------------------------


def _geotiff(path, crs_code):
    import rasterio
    from rasterio.transform import from_bounds

    pixels = (np.random.default_rng(0).random((64, 64)) * 200 + 20).astype("uint8")
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs=crs_code,
                       transform=from_bounds(10, 44, 11, 45, 64, 64)) as f:
        f.write(pixels, 1)
    return path


def test_a_planetographic_geotiff_is_refused_before_it_is_read(tmp_path):
    from marscraters.errors import CRSError
    from marscraters.mosaic import mosaic_from_array, read_geotiff

    path = _geotiff(tmp_path / "ographic.tif", "IAU_2015:49901")
    # PROJ would keep its latitudes on the way to the sphere: 0.34 deg (20 km) too far north at 45 N
    with pytest.raises(CRSError, match="planetographic.*map2map LatitudeType=Planetocentric"):
        read_geotiff(path)
    with pytest.raises(CRSError, match="planetographic"):
        mosaic_from_array(np.ones((8, 8)), bounds=(10, 44, 11, 45), crs="IAU_2015:49901")


def test_an_ocentric_geotiff_on_the_ellipsoid_is_read_with_its_latitudes(tmp_path):
    from marscraters.mosaic import read_geotiff

    ds = read_geotiff(_geotiff(tmp_path / "ocentric.tif", "IAU_2015:49902"))
    assert float(ds.y.max()) == pytest.approx(45 - 0.5 / 64)
    assert not crs.is_planetographic(pyproj.CRS(ds.rio.crs.to_wkt()))


def test_detect_names_the_fix_for_a_planetographic_geotiff(tmp_path, capsys):
    from marscraters.cli import main

    path = _geotiff(tmp_path / "ographic.tif", "IAU_2015:49901")
    assert main(["detect", str(path), "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert "planetographic" in err and "gdal_edit.py -a_srs IAU_2015:49900" in err
    assert not (tmp_path / "c.csv").exists()


#: an ESRI export named after the ellipsoid alone: which latitudes it holds is not said
GCS_MARS_2000 = ('GEOGCS["GCS_Mars_2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190.0,169.894447223612]],'
                 'PRIMEM["Reference_Meridian",0.0],UNIT["Degree",0.0174532925199433]]')


def test_latitudes_on_the_ellipsoid_are_known_by_the_crs_name():
    assert crs.latitude_kind(pyproj.CRS("IAU_2015:49900")) == "planetocentric"
    assert crs.latitude_kind(pyproj.CRS("IAU_2015:49902")) == "planetocentric"
    assert crs.latitude_kind(pyproj.CRS("IAU_2015:49901")) == "planetographic"
    assert crs.latitude_kind(pyproj.CRS(GCS_MARS_2000)) == "unstated"


def test_a_catalog_or_image_whose_crs_does_not_say_its_latitudes_is_refused_not_moved(tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point

    from marscraters.catalog import read_catalog
    from marscraters.errors import CRSError

    # converting would move a planetocentric export 20 km; keeping would misplace a planetographic one
    path = tmp_path / "export.gpkg"
    gpd.GeoDataFrame({"diameter_km": [2.0]}, geometry=[Point(10.0, 45.0)], crs=GCS_MARS_2000).to_file(path,
                                                                                                       layer="craters")
    with pytest.raises(CRSError, match="does not say whether its latitudes.*assign IAU_2015:49901 instead"):
        read_catalog(path)
    with pytest.raises(CRSError, match="does not say whether its latitudes"):
        from marscraters.mosaic import read_geotiff

        read_geotiff(_geotiff(tmp_path / "export.tif", GCS_MARS_2000))
