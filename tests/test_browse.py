"""The map browser: lazy building, true-size craters, and the served app and static page in a real
headless Chromium (screenshots checked pixel by pixel).

The browser tests skip when Chromium, chromedriver or selenium is missing, unless
``MARSCRATERS_REQUIRE_BROWSER=1`` (CI sets it), in which case they fail.  Screenshots are kept in
the pytest tmp dir and copied to ``$MARSCRATERS_ARTEFACTS`` when that is set.
"""

from __future__ import annotations

import warnings

import os
import shutil
import socket
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

pytest.importorskip("holoviews")
pytest.importorskip("panel")
pytest.importorskip("datashader")

from marscraters.browse import (
    CSFD_NAME,
    LAYER_COLOURS,
    MAP_NAME,
    CraterBrowser,
    add_browse_parser,
    browse,
    lonlat_coords,
    save_html,
)
from marscraters.catalog import make_catalog
from marscraters.crs import MARS_EQUIRECTANGULAR, km_to_deg_lat, km_to_deg_lon
from marscraters.errors import InvalidArgumentError, MosaicError, OutputExistsError
from marscraters.mosaic import mosaic_from_array

from .conftest import raise_if_dask_computes

BOUNDS = (30.0, -2.0, 33.0, 0.0)  # 3 x 2 degrees
SHAPE = (200, 300)  # 100 px/deg
# a bright block in the north-west: checks the map is not flipped
BRIGHT = (30.2, 30.6, -0.6, -0.2)  # lon0, lon1, lat0, lat1


def _image() -> np.ndarray:
    ny, nx = SHAPE
    rng = np.random.default_rng(1)
    x = np.arange(nx) / nx
    img = 40.0 + 100.0 * x[None, :] + rng.normal(0, 3, SHAPE)  # dark west, brighter east
    lon = BOUNDS[0] + (np.arange(nx) + 0.5) / 100.0
    lat = BOUNDS[3] - (np.arange(ny) + 0.5) / 100.0
    block = (lon[None, :] >= BRIGHT[0]) & (lon[None, :] <= BRIGHT[1]) & (lat[:, None] >= BRIGHT[2]) & (lat[:, None] <= BRIGHT[3])
    img[block] = 255.0
    img[-10:, -10:] = np.nan  # a little no-data
    return img


@pytest.fixture
def mosaic() -> xr.Dataset:
    return mosaic_from_array(da.from_array(_image(), chunks=(100, 100)), BOUNDS, name="synthetic test mosaic")


@pytest.fixture
def catalogs():
    # detections: one matches a true crater, one is false; truth: one matched, one missed
    det = make_catalog([-1.0, -1.5], [31.4, 32.5], [24.0, 16.0], extra={"score": [0.93, 0.41]})
    truth = make_catalog([-1.0, -0.4], [31.4, 32.4], [24.5, 20.0])
    return det, truth


EXPECTED = {  # layer -> (lat, lon, diameter_km) of its crater
    "matched": (-1.0, 31.4, 24.0),
    "false": (-1.5, 32.5, 16.0),
    "missed": (-0.4, 32.4, 20.0),
}


# ---------------------------------------------------------------------------------------------
# without a browser
# ---------------------------------------------------------------------------------------------
def test_building_the_app_computes_nothing(mosaic, catalogs):
    det, truth = catalogs
    prob = (mosaic["ir"] / 255.0).rename("crater_probability")
    with raise_if_dask_computes():
        app = browse(mosaic, det, truth, prob=prob, title="lazy")
    assert isinstance(app, CraterBrowser)
    assert list(app.layers) == ["mosaic", "probability", "matched", "false", "missed"]
    assert {k: len(v) for k, v in app.craters.items()} == {"matched": 1, "false": 1, "missed": 1}
    assert app.craters["matched"]["lon"].iloc[0] == pytest.approx(31.4)
    assert app.craters["false"]["score"].iloc[0] == pytest.approx(0.41)
    assert set(app.widgets) == {"mosaic", "probability", "matched", "false", "missed", "probability_opacity"}
    assert isinstance(app.ds["ir"].data, da.Array)


def test_first_render_reads_only_the_chunks_in_view():
    touched: set[tuple[int, int]] = set()

    def block(block_info=None):
        touched.add(block_info[None]["chunk-location"])
        return np.full(block_info[None]["chunk-shape"], 100.0, dtype="f4")

    arr = da.map_blocks(block, chunks=((100,) * 4, (100,) * 6), dtype="f4")  # 400 x 600 px, 24 chunks
    ds = mosaic_from_array(arr, (30, -2, 33, 0))
    app = browse(ds, xlim=(30.1, 30.4), ylim=(-0.4, -0.1))
    assert not touched
    root = app.panel.get_root()  # renders the initial view, as a server session does
    assert root is not None
    assert touched == {(0, 0)}  # the view lies inside the north-west chunk


def test_hover_tools_and_true_size_rims(catalogs, mosaic):
    from bokeh.models import HoverTool

    det, truth = catalogs
    app = browse(mosaic.compute(), det, truth)
    root = app.panel.get_root()
    tips = [dict(h.tooltips) for h in root.select({"type": HoverTool}) if isinstance(h.tooltips, list)]
    assert tips and all({"lat", "lon", "diameter_km", "score"} <= set(t) for t in tips)
    # rims: half-width 1/cos(lat) wider in longitude than in latitude, both from the crs functions
    path = app.layers["missed"][0][()]  # the DynamicMap's initial element
    xs, ys = path.dimension_values("lon"), path.dimension_values("lat")
    lat, lon, d = EXPECTED["missed"]
    assert np.nanmax(xs) - lon == pytest.approx(float(km_to_deg_lon(d / 2, lat)), rel=1e-3)
    assert np.nanmax(ys) - lat == pytest.approx(float(km_to_deg_lat(d / 2)), rel=1e-3)


def test_csfd_counts_craters_in_view(catalogs, mosaic):
    det, truth = catalogs
    app = browse(mosaic, det, truth)
    import holoviews as hv

    whole = app._csfd(hv)
    counts = {c.label: len(c) for c in whole if isinstance(c, hv.Curve)}
    assert counts == {"matched (1)": 1, "false (1)": 1, "missed (1)": 1}
    east = app._csfd(hv, (32.0, 33.0), (-2.0, 0.0))  # only the false and missed craters
    labels = sorted(c.label for c in east if isinstance(c, hv.Curve))
    assert labels == ["false (1)", "matched (0)", "missed (1)"]
    assert "km²" in east.opts.get().kwargs["title"]


def test_map_has_labelled_colour_bars(catalogs, mosaic):
    """The image's grey levels and the probability's colours each have a colour bar that says what
    they are (the image by name), one below the map and one on its right."""
    from bokeh.models import ColorBar

    det, truth = catalogs
    prob = (mosaic["ir"] / 255.0).rename("crater_probability")
    root = browse(mosaic, det, truth, prob=prob, prob_floor=0.2).panel.get_root()
    fig = root.select_one({"name": MAP_NAME})
    below = [o.title for o in fig.below if isinstance(o, ColorBar)]
    right = [o.title for o in fig.right if isinstance(o, ColorBar)]
    assert len(below) == 1 and "image brightness" in below[0] and "synthetic test mosaic" in below[0]
    assert right == ["crater probability (network output), 0 to 1; under 0.2 not drawn"]
    # without a probability layer, the image's colour bar alone
    root = browse(mosaic, det).panel.get_root()
    bars = list(root.select({"type": ColorBar}))
    assert len(bars) == 1 and "grey level" in bars[0].title


def test_csfd_is_the_packages_density_per_km2_with_its_labels(catalogs, mosaic):
    """The CSFD panel plots chronology.csfd's cumulative density per km² of the view (what every other
    CSFD of the package shows), with its axis labels and Poisson error bars, and its key below the axes."""
    import holoviews as hv
    from bokeh.models import Legend

    from marscraters.browse import _view_area_km2
    from marscraters.chronology import csfd

    det = make_catalog([-1.0, -1.5, -0.5, -1.2], [31.4, 32.5, 31.0, 30.6], [24.0, 16.0, 5.0, 3.0])
    app = browse(mosaic, det)
    panel = app._csfd(hv)
    area = _view_area_km2(app.xlim, app.ylim)
    expected = csfd(det["diameter_km"].to_numpy(), area_km2=area)
    curve = next(c for c in panel if isinstance(c, hv.Curve))
    assert curve.label == "craters (4)"
    np.testing.assert_allclose(curve.dimension_values(0), expected["diameter"])
    np.testing.assert_allclose(curve.dimension_values(1), expected["density"])
    bars = next(c for c in panel if isinstance(c, hv.ErrorBars))
    np.testing.assert_allclose(bars.dimension_values(2), expected["density"] - expected["lower"])
    fig = hv.render(panel)
    assert fig.xaxis[0].axis_label == "Crater diameter, D [km]"
    assert fig.yaxis[0].axis_label == "Cumulative crater density, N(≥D) [km⁻²]"
    assert fig.x_scale.__class__.__name__ == fig.y_scale.__class__.__name__ == "LogScale"
    assert any(isinstance(o, Legend) for o in fig.below)  # outside the axes: it covers no curve
    assert not any(isinstance(o, Legend) for o in fig.center)
    # 1-2-5 ticks on the log diameter axis
    lo, hi = fig.x_range.start, fig.x_range.end
    assert [t for t in fig.xaxis[0].ticker.ticks if lo <= t <= hi] == [5.0, 10.0, 20.0]  # craters of 3-24 km
    assert hi / lo >= 5 and fig.y_range.end / fig.y_range.start >= 100

    # served: the axes follow the view (a smaller view holds fewer craters on fewer km², at a higher density)
    plot = hv.renderer("bokeh").get_plot(app.csfd)
    before = plot.state.y_range.end
    app._map_range.event(x_range=(31.0, 31.8), y_range=(-1.3, -0.7))
    zoomed = csfd([24.0], area_km2=_view_area_km2((31.0, 31.8), (-1.3, -0.7)))
    assert plot.state.y_range.start < zoomed["density"][0] < plot.state.y_range.end
    assert plot.state.y_range.end > before


@pytest.mark.parametrize("d_min", [None, 10.0])
def test_layer_counts_are_the_scores(mosaic, d_min):
    """The map's matched / false / missed counts (layers and legend) are evaluate()'s TP, FP and FN
    for the same d_min: craters below the floor are neither drawn nor counted."""
    import holoviews as hv

    from marscraters.evaluate import evaluate

    # above a 10 km floor: one match, one false detection, one miss; below it: a match of 5 km, a
    # missed 4 km crater, a false 3 km detection, and a 9 km detection (counted: >= 0.8 d_min)
    # matched to a 9.5 km crater (not counted: < d_min)
    det = make_catalog([-1.0, -1.5, -0.5, -1.7, -1.3], [31.4, 32.5, 31.0, 32.8, 30.6], [24.0, 16.0, 5.0, 3.0, 9.0])
    truth = make_catalog([-1.0, -0.4, -0.5, -1.6, -1.3], [31.4, 32.4, 31.0, 30.3, 30.6], [24.5, 20.0, 5.0, 4.0, 9.5])
    scores = evaluate(det, truth, d_min=d_min)
    app = browse(mosaic, det, truth, d_min=d_min)
    counts = {k: len(v) for k, v in app.craters.items()}
    assert counts == {"matched": scores.n_pred_matched, "false": scores.n_pred - scores.n_pred_matched,
                      "missed": scores.n_truth - scores.n_truth_matched}
    assert counts == ({"matched": 2, "false": 1, "missed": 1} if d_min else {"matched": 3, "false": 2, "missed": 2})
    assert app.scores.recall == scores.recall and app.scores.precision == scores.precision
    legend = "".join(str(o.object) for o in app.panel[0] if hasattr(o, "object") and isinstance(o.object, str))
    for name, n in counts.items():
        assert f"({n})" in legend
    assert f"({scores.n_truth_matched}/{scores.n_truth} reference craters)" in legend
    if d_min:
        assert "≥ 10 km" in legend and "≥ 8 km" in legend
    curves = {c.label for c in app._csfd(hv) if isinstance(c, hv.Curve)}  # the CSFD plot counts the same
    assert curves == {f"{k} ({n})" for k, n in counts.items()}


def test_a_whole_reference_catalog_is_scored_on_the_map_only(mosaic):
    # a perfect detector against the Robbins catalog of the whole planet scored recall ~0: every
    # crater off the map was "missed"
    det = make_catalog([-1.0, -1.5], [31.4, 32.5], [24.0, 16.0])
    far = make_catalog(np.linspace(-60, 60, 50), np.linspace(-170, 170, 50), np.full(50, 10.0))
    truth = pd.concat([det, far], ignore_index=True)
    app = browse(mosaic, det, truth)
    assert app.scores.recall == 1.0 and app.scores.n_truth == 2 and len(app.craters["missed"]) == 0
    legend = "".join(str(o.object) for o in app.panel[0] if hasattr(o, "object") and isinstance(o.object, str))
    assert "on the map" in legend and "(2/2 reference craters)" in legend


def test_d_min_alone_floors_one_catalog(mosaic):
    det = make_catalog([-1.0, -1.5], [31.4, 32.5], [24.0, 5.0])
    assert len(browse(mosaic, det, d_min=10).craters["craters"]) == 1  # detections: >= 0.8 d_min
    assert len(browse(mosaic, truth=det, d_min=20).craters["truth"]) == 1
    with pytest.raises(InvalidArgumentError, match="d_min"):
        browse(mosaic, det, d_min=0)


def test_a_catalog_wholly_off_the_mosaic_is_said(mosaic):
    elsewhere = make_catalog([40.0, 41.0], [150.0, 151.0], [24.0, 16.0])
    with pytest.warns(UserWarning, match=r"none of the truth catalog's 2 craters lies on the mosaic .* another place"):
        browse(mosaic, truth=elsewhere)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # one crater on the map: nothing to say
        browse(mosaic, truth=make_catalog([40.0, -1.0], [150.0, 31.4], [24.0, 16.0]))


def test_equirectangular_metres_become_degrees():
    # the same 3 x 2 degree area in IAU_2015:49910 metres
    m_per_deg = np.pi / 180 * 3_396_190.0
    ds = mosaic_from_array(np.zeros((20, 30)), (30 * m_per_deg, -2 * m_per_deg, 33 * m_per_deg, 0), crs=MARS_EQUIRECTANGULAR)
    lon, lat = lonlat_coords(ds)
    np.testing.assert_allclose(lon, 30.05 + 0.1 * np.arange(30), atol=1e-9)
    np.testing.assert_allclose(lat, -0.05 - 0.1 * np.arange(20), atol=1e-9)
    app = browse(ds, make_catalog([-1.0], [31.4], [10.0]))
    assert app.craters["craters"]["lon"].iloc[0] == pytest.approx(31.4)
    assert app.bounds == pytest.approx((30.0, -2.0, 33.0, 0.0))


def test_longitudes_stay_contiguous_across_180():
    ds = mosaic_from_array(np.zeros((10, 40)), (178.0, -1.0, 182.0, 0.0))
    lon, _ = lonlat_coords(ds)
    assert np.all(np.diff(lon) > 0) and lon[-1] == pytest.approx(181.95)
    app = browse(ds, make_catalog([-0.5], [-179.0], [5.0]))
    assert app.craters["craters"]["lon"].iloc[0] == pytest.approx(181.0)


@pytest.mark.parametrize(
    "make, err",
    [
        (lambda ds: browse(mosaic_from_array(np.zeros((10, 10)), (-1e5, -1e5, 1e5, 1e5), crs="+proj=stere +lat_0=90 +R=3396190")), MosaicError),
        (lambda ds: browse(ds, prob=ds["ir"][:-1]), MosaicError),
    ],
    ids=["polar-stereographic", "prob-off-grid"],
)
def test_bad_inputs_raise(mosaic, make, err):
    with pytest.raises(err, match="reproject|same grid"):
        make(mosaic)


def test_cli_writes_a_static_page(tmp_path, mosaic, catalogs):
    import argparse

    from marscraters.catalog import write_catalog

    cube = tmp_path / "cube.zarr"
    mosaic.to_zarr(cube, zarr_format=3, consolidated=False)
    det, truth = catalogs
    write_catalog(det, tmp_path / "craters.gpkg")
    write_catalog(truth, tmp_path / "truth.gpkg")
    parser = argparse.ArgumentParser()
    add_browse_parser(parser.add_subparsers())
    out = tmp_path / "map.html"
    argv = ["browse", str(cube), "--catalog", str(tmp_path / "craters.gpkg"), "--truth", str(tmp_path / "truth.gpkg"),
            "--html", str(out), "--resolution", "150"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    html = out.read_text()
    assert "cdn.holoviz.org/panel" not in html.split("<body")[0]  # offline: nothing linked from the CDN
    assert "marscraters-map" in html and "matched" in html
    with pytest.raises(OutputExistsError):
        args.func(args)
    assert not list(tmp_path.glob(".map.html*"))  # no temporary leftovers
    # --d-min: the 16 km false detection (< 0.8 x 25 km) and the 20 km miss are left out
    args = parser.parse_args([*argv, "--d-min", "25", "--overwrite"])
    assert args.func(args) == 0
    html = out.read_text()
    assert "false detections (0)" in html and "missed truth craters (0)" in html and "reference craters \\u2265 25 km" in html


# ---------------------------------------------------------------------------------------------
# in a real headless Chromium
# ---------------------------------------------------------------------------------------------
_FIND_FIGURES = """
const [mapName, csfdName, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const t0 = Date.now();
function look() {
  if (Date.now() - t0 > 40000) return done({error: 'no Bokeh map rendered after 40 s'});
  if (!window.Bokeh || !Bokeh.documents || !Bokeh.documents.length) return setTimeout(look, 100);
  for (const doc of Bokeh.documents) {
    const m = doc.get_model_by_name(mapName);
    const v = m ? Bokeh.index.find_one(m) : null;
    if (v && v.frame && v.frame.bbox.width > 0) {
      const img = m.renderers.find((r) => r.name === 'mosaic');
      if (!img || !img.data_source.data.image || !img.data_source.data.image.length) return setTimeout(look, 100);
      const r = v.el.getBoundingClientRect(), b = v.frame.bbox;
      const csfd = doc.get_model_by_name(csfdName);
      return done({left: r.left + b.left, top: r.top + b.top, width: b.width, height: b.height,
                   x0: m.x_range.start, x1: m.x_range.end, y0: m.y_range.start, y1: m.y_range.end,
                   dpr: window.devicePixelRatio, dw: img.data_source.data.dw[0],
                   csfd_title: csfd ? csfd.title.text : null});
    }
  }
  setTimeout(look, 100);
}
look();
"""


def _require_browser() -> bool:
    return os.environ.get("MARSCRATERS_REQUIRE_BROWSER", "") not in ("", "0")


def _chromium_paths() -> tuple[str | None, str | None]:
    binary = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return binary, driver


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium driven by selenium (skips, or fails under MARSCRATERS_REQUIRE_BROWSER=1)."""
    binary, driver_path = _chromium_paths()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        missing = f"selenium is not installed ({exc})"
    else:
        missing = None if binary and driver_path else "chromium / chromedriver not found (apt-get install chromium chromium-driver)"
    if missing:
        if _require_browser():
            pytest.fail(f"MARSCRATERS_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(missing)
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900",
                "--force-device-scale-factor=1", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_script_timeout(60)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _load(driver, url: str) -> dict:
    driver.get_log("browser")  # drop entries of an earlier page
    driver.get(url)
    info = driver.execute_async_script(_FIND_FIGURES, MAP_NAME, CSFD_NAME)
    assert "error" not in info, info["error"]
    time.sleep(0.5)  # let the last canvas paint land
    return info


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _screenshot(driver, tmp_path: Path, name: str) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    png = driver.get_screenshot_as_png()
    path = tmp_path / name
    path.write_bytes(png)
    artefacts = os.environ.get("MARSCRATERS_ARTEFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artefacts) / name)
    return np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)


def _to_screen(info: dict, lon: float, lat: float) -> tuple[int, int]:
    s = info["dpr"]
    col = info["left"] + (lon - info["x0"]) / (info["x1"] - info["x0"]) * info["width"]
    row = info["top"] + (info["y1"] - lat) / (info["y1"] - info["y0"]) * info["height"]
    return round(col * s), round(row * s)


def _has_colour(img: np.ndarray, col: int, row: int, colour: str, radius: int = 4, tol: int = 70) -> bool:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    win = img[max(row - radius, 0):row + radius + 1, max(col - radius, 0):col + radius + 1]
    return bool((np.abs(win - rgb).sum(axis=-1) < tol).any())


def _rim_points(lat: float, lon: float, d_km: float) -> list[tuple[float, float]]:
    rx, ry = float(km_to_deg_lon(d_km / 2, lat)), float(km_to_deg_lat(d_km / 2))
    return [(lon + rx, lat), (lon - rx, lat), (lon, lat + ry), (lon, lat - ry)]


def _check_map(img: np.ndarray, info: dict, layers=("matched", "false", "missed")) -> None:
    s = info["dpr"]
    l, t = int(info["left"] * s), int(info["top"] * s)
    w, h = int(info["width"] * s), int(info["height"] * s)
    frame = img[t + 3:t + h - 3, l + 3:l + w - 3]
    assert frame.size and frame.std() > 10, "the map's plot area is blank"
    grey = frame.mean(axis=-1)
    assert (np.abs(grey - 255) > 8).mean() > 0.9, "most of the map is background white"
    # the mosaic is drawn the right way round: dark west, bright east, bright block in the north-west
    assert grey[:, : w // 10].mean() + 40 < grey[:, -w // 10 - 20: -20].mean()
    c, r = _to_screen(info, (BRIGHT[0] + BRIGHT[1]) / 2, (BRIGHT[2] + BRIGHT[3]) / 2)
    assert img[r - 2:r + 3, c - 2:c + 3].mean() > 230
    for name in layers:
        lat, lon, d = EXPECTED[name]
        for plon, plat in _rim_points(lat, lon, d):
            assert _has_colour(img, *_to_screen(info, plon, plat), LAYER_COLOURS[name]), (name, plon, plat)
        # halfway between centre and rim there is no rim colour: the circle has the catalog's size
        mid = _to_screen(info, lon + float(km_to_deg_lon(d / 4, lat)), lat + float(km_to_deg_lat(d / 4)) * 0.3)
        assert not _has_colour(img, *mid, LAYER_COLOURS[name], radius=2), name


def _set_checkbox(driver, label: str, active: bool) -> None:
    ok = driver.execute_script(
        """for (const doc of Bokeh.documents) for (const m of doc.all_models)
             if (m.label === arguments[0] && 'active' in m) { m.active = arguments[1]; return true; }
           return false;""",
        label, active,
    )
    assert ok, f"no checkbox labelled {label!r}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_app_in_chromium(chromium, mosaic, catalogs, tmp_path):
    import panel as pn

    det, truth = catalogs
    app = browse(mosaic, det, truth, title="served", frame_width=600)
    port = _free_port()
    server = pn.serve(app.panel, port=port, address="127.0.0.1", show=False, threaded=True, start=True)
    try:
        info = _load(chromium, f"http://127.0.0.1:{port}/")
        assert _severe(chromium) == []
        assert info["x0"] == pytest.approx(30.0, abs=1e-6) and info["y1"] == pytest.approx(0.0, abs=1e-6)
        assert info["width"] == 600 and info["height"] == 400  # 3 x 2 degrees at equal scale
        img = _screenshot(chromium, tmp_path, "browse_served.png")
        _check_map(img, info)

        # a layer toggle (linked in JS) hides the false detections and nothing else
        _set_checkbox(chromium, "false detections", False)
        time.sleep(0.5)
        img = _screenshot(chromium, tmp_path, "browse_served_toggled.png")
        lat, lon, d = EXPECTED["false"]
        assert not any(_has_colour(img, *_to_screen(info, *p), LAYER_COLOURS["false"]) for p in _rim_points(lat, lon, d))
        _check_map(img, info, layers=("matched", "missed"))

        # zoom with the mouse wheel over the matched crater: the server re-aggregates the mosaic for
        # the new view (a raster spanning just the view), and the CSFD follows the view
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

        c, r = _to_screen(info, EXPECTED["matched"][1], EXPECTED["matched"][0])
        ActionChains(chromium).scroll_from_origin(ScrollOrigin.from_viewport(c, r), 0, -400).perform()
        deadline = time.time() + 30
        while True:
            zoomed = chromium.execute_async_script(_FIND_FIGURES, MAP_NAME, CSFD_NAME)
            span = zoomed["x1"] - zoomed["x0"]
            if span < 2.5 and abs(zoomed["dw"] - span) < 0.02 * span and zoomed["csfd_title"] != info["csfd_title"]:
                break
            assert time.time() < deadline, f"the view was not re-aggregated after zooming: {zoomed}"
            time.sleep(0.2)
        time.sleep(0.5)
        img = _screenshot(chromium, tmp_path, "browse_served_zoomed.png")
        lat, lon, d = EXPECTED["matched"]
        for p in _rim_points(lat, lon, d):
            assert _has_colour(img, *_to_screen(zoomed, *p), LAYER_COLOURS["matched"])
        assert _severe(chromium) == []
    finally:
        server.stop()


def test_static_page_in_chromium(chromium, mosaic, catalogs, tmp_path):
    det, truth = catalogs
    app = browse(mosaic, det, truth, title="static", frame_width=600)
    out = save_html(app, tmp_path / "map.html", resolution=300)
    info = _load(chromium, out.resolve().as_uri())
    assert _severe(chromium) == []  # includes failed network loads: the page must be self-contained
    img = _screenshot(chromium, tmp_path, "browse_static.png")
    _check_map(img, info)
    _set_checkbox(chromium, "missed truth craters", False)
    time.sleep(0.3)
    img = _screenshot(chromium, tmp_path, "browse_static_toggled.png")
    lat, lon, d = EXPECTED["missed"]
    assert not any(_has_colour(img, *_to_screen(info, *p), LAYER_COLOURS["missed"]) for p in _rim_points(lat, lon, d))
    _check_map(img, info, layers=("matched", "false"))
