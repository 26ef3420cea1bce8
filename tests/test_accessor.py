"""The ``ds.craters`` accessor is a thin shell: each method equals the plain function it wraps."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import marscraters  # noqa: F401  (registers the accessor)
from marscraters.catalog import filter_catalog, make_catalog
from marscraters.crs import Grid
from marscraters.errors import MissingCRSError
from marscraters.mosaic import fill_missing, mosaic_from_array
from marscraters.targets import render_targets


@pytest.fixture
def ds():
    rng = np.random.default_rng(1)
    img = rng.uniform(1, 255, (64, 96)).astype(np.float32)
    img[10:20, 30:40] = np.nan
    return mosaic_from_array(img, bounds=(350.0, -2.0, 362.0, 6.0)).chunk({"y": 32, "x": 48})


@pytest.fixture
def cat():
    return make_catalog([0.0, 2.0, 40.0], [-5.0, 1.0, -5.0], [30.0, 60.0, 10.0])


def test_accessor_matches_functions(ds, cat, no_compute):
    with no_compute():
        t = ds.craters.targets(cat, kind="outline")
        filled = ds.craters.fill_missing()
    xr.testing.assert_identical(t, render_targets(ds, cat, kind="outline"))
    xr.testing.assert_identical(filled, fill_missing(ds))
    assert ds.craters.grid == Grid.from_dataset(ds)
    inside = ds.craters.footprint_catalog(cat)
    assert list(inside["crater_id"]) == list(filter_catalog(cat, footprint=ds)["crater_id"])
    assert len(inside) == 2  # the lat 40 crater is off this mosaic, the two others wrap across 0/360


def test_accessor_errors_are_lazy_and_clear():
    bare = xr.Dataset({"ir": (("y", "x"), np.zeros((4, 4), np.float32))}, coords={"y": np.arange(4.0), "x": np.arange(4.0)})
    acc = bare.craters  # constructing the accessor never fails
    with pytest.raises(MissingCRSError, match="write_crs"):
        acc.grid


def test_accessor_catalog_segments_then_assembles():
    """ds.craters.catalog() with no probability segments with the shipped model first, and equals
    the two plain functions called by hand."""
    from marscraters.assemble import catalog_from_probability
    from marscraters.segment import segment
    from marscraters.synthetic import synthetic_surface

    surface = synthetic_surface((30.0, -0.4, 30.4, 0.0), 592.747, seed=5, n_per_km2_above_1km=2e-2, dmax_km=8.0)
    ds = surface.mosaic
    via_accessor = ds.craters.catalog(progress=False)
    by_hand = catalog_from_probability(segment(ds), mosaic=ds, progress=False)
    assert list(via_accessor["crater_id"]) == list(by_hand["crater_id"])
    np.testing.assert_allclose(via_accessor["lat"], by_hand["lat"])
    assert {"lat", "lon", "diameter_km", "score", "model_name"} <= set(via_accessor.columns)


def test_browse_and_save_html_through_the_accessor(tmp_path):
    pytest.importorskip("holoviews")
    from marscraters.browse import CraterBrowser
    from marscraters.catalog import make_catalog
    from marscraters.mosaic import mosaic_from_array

    ds = mosaic_from_array(np.random.default_rng(0).random((64, 96)).astype("float32"), bounds=(10.0, 0.0, 10.75, 0.5))
    cat = make_catalog([0.25], [10.3], [5.0])
    app = ds.craters.browse(catalog=cat)
    assert isinstance(app, CraterBrowser)
    page = ds.craters.save_html(tmp_path / "map.html", catalog=cat, resolution=200)
    assert page.stat().st_size > 10_000 and "bokeh" in page.read_text().lower()


def test_footprint_is_the_count_area():
    from marscraters.chronology import count_area_km2
    from marscraters.crs import MARS_RADIUS_KM

    ds = mosaic_from_array(np.zeros((128, 256)), bounds=(10.0, 20.0, 12.0, 21.0))
    fp = ds.craters.footprint()
    assert fp.total_bounds.tolist() == [10.0, 20.0, 12.0, 21.0] and fp.crs == ds.rio.crs
    # a lon/lat box on the sphere: R² Δλ (sin φ2 - sin φ1)
    expected = MARS_RADIUS_KM**2 * np.radians(2.0) * (np.sin(np.radians(21.0)) - np.sin(np.radians(20.0)))
    assert count_area_km2(fp) == pytest.approx(expected, rel=1e-6)
