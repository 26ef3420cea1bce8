"""Browse a mosaic, its crater probability and its crater catalogs in a web browser.

The map is drawn with HoloViews on Bokeh and served with Panel.  The mosaic (and any
probability or target layer) is rasterized by Datashader for the current view and re-aggregated
on every zoom or pan, so a 7680 x 7680 THEMIS tile or a larger dask-backed Zarr cube is browsable
without loading it into memory: only the pixels of the visible window are read, at screen
resolution.

Axes are planetocentric longitude (degrees east) and latitude (degrees north), whatever the
mosaic's CRS (geographic ``IAU_2015:49900`` or equirectangular ``IAU_2015:49910/49915``);
pixels become degrees through :class:`marscraters.crs.Grid`.  Craters are drawn at their true
size: a circle of diameter D km spans ``D / KM_PER_DEGREE`` degrees of latitude and
``1 / cos(lat)`` times as many degrees of longitude, so it is an ellipse on the lon/lat axes.

Layers and colours
------------------
``mosaic``
    the ``ir`` band, grey.
``probability``
    a crater probability (or target) DataArray on the mosaic's grid, ``fire`` colours, values
    below ``prob_floor`` transparent; an opacity slider sets its alpha.
``craters`` (cyan)
    the catalog, when no truth catalog is given.
``matched`` (green), ``false`` (red), ``missed`` (yellow)
    with a truth catalog: detections matched one-to-one to a true crater, detections with no
    match, and true craters that were not found, exactly as :func:`marscraters.evaluate.evaluate`
    counts them (its matching, and its diameter floor ``d_min``: with it, the layers hold the
    detections of at least ``0.8 * d_min`` and the true craters of at least ``d_min``, so their
    counts are the scores' true positives, false positives and misses).  ``truth`` (orange)
    when only a truth catalog is given.

Every catalog layer carries a hover tool (lat, lon, diameter_km, score) on the crater centres.
A linked plot shows the cumulative size-frequency distribution of the craters inside the current
view, N(>=D) per km² of the view with Poisson error bars, binned by
:func:`marscraters.chronology.csfd` as the age plots are; it follows every zoom and pan (a
HoloViews ``RangeXY`` stream).  The mosaic's grey levels have a colour bar below the map, and the
probability's colours one on its right.

Static pages
------------
:func:`save_html` writes a single self-contained HTML file (Bokeh and Panel inlined, data
embedded).  A static page has no Python behind it, so Datashader cannot re-aggregate on zoom:
the mosaic is rasterized once, at a fixed ``resolution`` (pixels along the longer side), and
zooming in magnifies those pixels.  The layer toggles and the opacity slider still work (they are
linked in JavaScript), but the CSFD plot shows the initial view only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import logging
import mimetypes
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .crs import Grid, km_to_deg_lat, km_to_deg_lon, wrap_lon
from .errors import CatalogError, InvalidArgumentError, MarsCratersError, MosaicError

__all__ = [
    "LAYER_COLOURS",
    "CraterBrowser",
    "add_browse_parser",
    "browse",
    "lonlat_coords",
    "run_browse_cli",
    "save_html",
]

log = logging.getLogger("marscraters.browse")

#: Colours of the catalog layers (distinct from the grey mosaic and the ``fire`` probability).
LAYER_COLOURS: dict[str, str] = {
    "craters": "#00e5ff",
    "truth": "#ff8c00",
    "matched": "#00e000",
    "false": "#ff2020",
    "missed": "#ffe000",
}
_LAYER_HELP = {
    "craters": "craters",
    "truth": "truth craters",
    "matched": "matched (true positives)",
    "false": "false detections",
    "missed": "missed truth craters",
}
# name given to the map's Bokeh figure, so that tests and JS callbacks can find it
MAP_NAME = "marscraters-map"
CSFD_NAME = "marscraters-csfd"
_N_VERTICES = 48
# the CSFD plot's 1-2-5 ticks on its log diameter axis (its labels: chronology.CSFD_AXIS_LABELS)
_LOG_TICKS = [m * 10.0**k for k in range(-3, 5) for m in (1, 2, 5)]


def _csfd_labels() -> tuple[str, str]:
    """The CSFD panel's axis labels: those of the package's other CSFD plots (chronology.plot_csfd)."""
    from .chronology import CSFD_AXIS_LABELS

    return CSFD_AXIS_LABELS["diameter"], CSFD_AXIS_LABELS["cumulative"]


def _csfd_dims() -> tuple[Any, Any]:
    import holoviews as hv

    x, y = _csfd_labels()
    return hv.Dimension("diameter_km", label=x), hv.Dimension("density_km2", label=y)


def _name_renderer(name: str) -> Any:
    """A HoloViews hook naming a layer's Bokeh glyph renderer (for JS callbacks and tests)."""

    def hook(plot: Any, element: Any) -> None:
        renderer = plot.handles.get("glyph_renderer")
        if renderer is not None:
            renderer.name = name

    return hook


def _viz_imports() -> tuple[Any, Any]:
    """Import HoloViews (with the Bokeh backend) and Panel, or say which extra to install."""
    try:
        import holoviews as hv
        import panel as pn
        from holoviews.operation.datashader import regrid  # noqa: F401  (needs datashader)
    except ImportError as exc:
        raise ImportError(
            f"the map browser needs HoloViews, Panel, Datashader and Bokeh ({exc}); install them with "
            "pip install 'marscraters[viz]'"
        ) from exc
    if "bokeh" not in hv.Store.renderers:
        hv.extension("bokeh", logo=False)
    return hv, pn


# --------------------------------------------------------------------------------------------
# coordinates
# --------------------------------------------------------------------------------------------
def lonlat_coords(ds: xr.Dataset | xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees) of the pixel centres of a mosaic's columns and rows.

    Works for grids whose columns are meridians and rows are parallels (geographic and
    equirectangular Mars CRSs).  Longitudes are unwrapped so that they increase steadily across
    the grid (a mosaic crossing 180 degrees E runs on past 180 rather than jumping to -180).

    Parameters
    ----------
    ds
        A Mosaic (or a georeferenced DataArray on ``(y, x)``).

    Returns
    -------
    lon, lat : numpy.ndarray
        1-D arrays of length ``nx`` and ``ny``.

    Raises
    ------
    MosaicError
        If the grid is not a lon/lat-aligned (cylindrical) grid, e.g. a polar stereographic one.

    Examples
    --------
    >>> from marscraters.mosaic import mosaic_from_array
    >>> lon, lat = lonlat_coords(mosaic_from_array(np.zeros((2, 4)), (30, -1, 34, 1)))
    >>> lon.tolist(), lat.tolist()
    ([30.5, 31.5, 32.5, 33.5], [0.5, -0.5])
    """
    grid = Grid.from_dataset(ds)
    ny, nx = grid.shape
    cols, rows = np.arange(nx, dtype=float), np.arange(ny, dtype=float)
    lon, _ = grid.pixel_to_lonlat(cols, np.full(nx, (ny - 1) / 2.0))
    lon_b, lat_b = grid.pixel_to_lonlat(np.full(ny, 0.0), rows)
    lon_c, lat_c = grid.pixel_to_lonlat(np.full(ny, nx - 1.0), rows)
    lon = np.degrees(np.unwrap(np.radians(np.asarray(lon, dtype=float))))
    lat = np.asarray(lat_b, dtype=float)

    def linear(v: np.ndarray) -> bool:
        if v.size < 3:
            return True
        ref = np.linspace(v[0], v[-1], v.size)
        return bool(np.max(np.abs(v - ref)) <= 1e-6 * max(abs(v[-1] - v[0]), 1e-12))

    # meridians and parallels must be straight, evenly spaced pixel lines
    separable = np.allclose(lat_b, lat_c, atol=1e-9) and np.ptp(np.asarray(lon_b) - np.asarray(lon_c)) < 1e-6
    if not (separable and linear(lon) and linear(lat)):
        raise MosaicError(
            f"the mosaic's CRS ({grid.crs.name!r}) is not a cylindrical lon/lat grid, so it cannot be "
            "shown on longitude/latitude axes; reproject it first, e.g. "
            "ds.rio.reproject(marscraters.MARS_GEOGRAPHIC)."
        )
    return lon, lat


def _lonlat_array(data: xr.DataArray, lon: np.ndarray, lat: np.ndarray, name: str) -> xr.DataArray:
    """``data`` (lazy or not) on dims (lat, lon) in degrees; nothing is computed."""
    if data.dims != ("y", "x"):
        if set(data.dims) == {"y", "x"}:
            data = data.transpose("y", "x")
        else:
            raise MosaicError(f"the {name} layer must be on dims ('y', 'x'), got {data.dims}; select one band first.")
    out = xr.DataArray(data.variable.data, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name=name)
    return out


def _as_layer(layer: Any, ds: xr.Dataset, what: str) -> xr.DataArray:
    """A probability/target layer as a DataArray on the mosaic's grid."""
    if isinstance(layer, (str, os.PathLike)):
        layer = xr.open_zarr(str(layer), decode_coords="all", consolidated=False)
    if isinstance(layer, xr.Dataset):
        names = [v for v in layer.data_vars if layer[v].ndim == 2]
        if len(names) != 1:
            raise InvalidArgumentError(
                f"the {what} Dataset has 2-D variables {names}; pass the one to show as a DataArray, "
                f"e.g. {what}=pred['crater_probability']."
            )
        layer = layer[names[0]]
    if not isinstance(layer, xr.DataArray):
        raise InvalidArgumentError(f"{what} must be an xarray DataArray on the mosaic's grid, got {type(layer).__name__}")
    shape = (ds.sizes["y"], ds.sizes["x"])
    lshape = tuple(layer.sizes.get(d, -1) for d in ("y", "x"))
    if lshape != shape:
        raise MosaicError(
            f"the {what} layer has shape {dict(layer.sizes)} but the mosaic is {shape} (y, x); it must be on the "
            "same grid (e.g. the output of segment_to_zarr for this cube)."
        )
    if "x" in layer.coords and "x" in ds.coords and not np.allclose(layer["x"].values, ds["x"].values):
        raise MosaicError(f"the {what} layer's x coordinates differ from the mosaic's; it must be on the same grid.")
    return layer


# --------------------------------------------------------------------------------------------
# catalogs
# --------------------------------------------------------------------------------------------
def _warn_off_the_map(frame: pd.DataFrame, bounds: tuple[float, float, float, float], what: str) -> None:
    """Warn when none of a catalog's craters lies on the mosaic: the page would show none of them."""
    if not len(frame):
        return
    w, s, e, n = bounds
    lon, lat = frame["lon"].to_numpy(dtype=float), frame["lat"].to_numpy(dtype=float)
    if not ((lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)).any():
        import warnings

        warnings.warn(
            f"none of the {what} catalog's {len(frame)} craters lies on the mosaic (lon {w:.4g}..{e:.4g}, lat "
            f"{s:.4g}..{n:.4g}; the craters lie in lon {np.nanmin(lon):.4g}..{np.nanmax(lon):.4g}, lat "
            f"{np.nanmin(lat):.4g}..{np.nanmax(lat):.4g}): is it the catalog of another place?", UserWarning,
            stacklevel=4)


def _crater_frame(catalog: Any, west: float, what: str) -> pd.DataFrame:
    """lon (wrapped onto the mosaic's axis), lat, diameter_km, score, crater_id as plain columns."""
    if catalog is None:
        return pd.DataFrame(columns=["lon", "lat", "diameter_km", "score", "crater_id"])
    if isinstance(catalog, (str, os.PathLike)):
        from .catalog import read_catalog

        catalog = read_catalog(catalog)
    missing = [c for c in ("lat", "lon", "diameter_km") if c not in getattr(catalog, "columns", ())]
    if missing:
        raise CatalogError(
            f"the {what} catalog lacks the columns {missing}; build catalogs with marscraters.make_catalog "
            "or read them with marscraters.read_catalog."
        )
    lat = np.asarray(catalog["lat"], dtype=float)
    lon = np.asarray(catalog["lon"], dtype=float)
    frame = pd.DataFrame(
        {
            "lon": wrap_lon(lon, west),
            "lat": lat,
            "diameter_km": np.asarray(catalog["diameter_km"], dtype=float),
            "score": np.asarray(catalog["score"], dtype=float) if "score" in catalog.columns else np.nan,
            "crater_id": (catalog["crater_id"].astype(str).to_numpy() if "crater_id" in catalog.columns
                          else np.arange(1, len(catalog) + 1).astype(str)),
        },
        index=pd.RangeIndex(len(catalog)),
    )
    return frame[np.isfinite(frame["lon"]) & np.isfinite(frame["lat"]) & (frame["diameter_km"] > 0)]


def _floors(d_min: float | None) -> tuple[float, float]:
    """The smallest detection and true crater that :func:`marscraters.evaluate.evaluate` counts."""
    from .evaluate import pred_floor

    return (0.0, 0.0) if d_min is None else (pred_floor(d_min), d_min)


def _classify(catalog: pd.DataFrame, truth: pd.DataFrame, rule: str,
              d_min: float | None) -> tuple[dict[str, pd.DataFrame], Any]:
    """Split detections and truths into matched / false / missed as ``evaluate`` counts them.

    Returns the layers and the :class:`~marscraters.evaluate.EvaluationResult` (None for an
    empty truth): the layers' sizes are its ``n_pred_matched``, ``n_pred - n_pred_matched`` and
    ``n_truth - n_truth_matched``.
    """
    from .evaluate import evaluate

    pred_floor, truth_floor = _floors(d_min)
    pred_counted = catalog["diameter_km"].to_numpy() >= pred_floor
    truth_counted = truth["diameter_km"].to_numpy() >= truth_floor
    if len(truth) == 0:
        return {"matched": catalog.iloc[:0], "false": catalog[pred_counted], "missed": truth}, None
    # matched on all craters, counted above the floors: the scores' own rule, by the one matcher
    # (in the catalog's own lon convention: it works on great circles)
    scores = evaluate(catalog[["lat", "lon", "diameter_km"]], truth[["lat", "lon", "diameter_km"]], rule=rule,
                      d_min=d_min)
    pred_hit = catalog.index.isin(scores.matches["pred_index"])
    truth_hit = truth.index.isin(scores.matches["truth_index"])
    layers = {"matched": catalog[pred_counted & pred_hit], "false": catalog[pred_counted & ~pred_hit],
              "missed": truth[truth_counted & ~truth_hit]}
    return layers, scores


def _scores_html(scores: Any) -> str:
    """The legend's line of scores, in evaluate's own terms."""
    floor = "" if scores.d_min is None else f", craters ≥ {scores.d_min:g} km"
    return (f"{scores.rule} rule{floor}, on the map: precision {scores.precision:.2f} "
            f"({scores.n_pred_matched}/{scores.n_pred} detections), recall {scores.recall:.2f} "
            f"({scores.n_truth_matched}/{scores.n_truth} reference craters), F1 {scores.f1:.2f}")


def _rims(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Crater rims as one NaN-separated polyline in lon/lat degrees (true size, cos(lat) in lon)."""
    if len(frame) == 0:
        return np.array([np.nan]), np.array([np.nan])
    lat = frame["lat"].to_numpy()
    r = frame["diameter_km"].to_numpy() / 2.0
    rx = km_to_deg_lon(r, np.clip(lat, -89.9, 89.9))
    ry = km_to_deg_lat(r)
    ang = np.linspace(0.0, 2.0 * np.pi, _N_VERTICES + 1)
    xs = frame["lon"].to_numpy()[:, None] + rx[:, None] * np.cos(ang)
    ys = lat[:, None] + ry[:, None] * np.sin(ang)
    nan = np.full((len(frame), 1), np.nan)
    return np.hstack([xs, nan]).ravel(), np.hstack([ys, nan]).ravel()


def _image_label(ds: xr.Dataset, *, static: bool = False, fixed: bool = False) -> str:
    """The mosaic's colour-bar title: what its values are, and of which image."""
    units = ds["ir"].attrs.get("units")
    sources = [v.strip() for v in str(ds.attrs.get("source") or "").split(",") if v.strip()]
    name = Path(sources[0]).name + (f" and {len(sources) - 1} more" if len(sources) > 1 else "") if sources else ""
    what = f"image brightness, grey level{f' [{units}]' if units else ''}" + (f" of {name}" if name else "")
    if not fixed:
        what += " (stretched to the view)" if not static else " (stretched to the map)"
    return what


def _probability_label(name: str, floor: float) -> str:
    """The probability layer's colour-bar title."""
    what = "crater target (training label)" if "target" in name.lower() else "crater probability (network output)"
    return f"{what}, 0 to 1; under {floor:g} not drawn"


def _in_view(frame: pd.DataFrame, x_range: Any, y_range: Any) -> pd.DataFrame:
    if x_range is None or y_range is None or len(frame) == 0:
        return frame
    x0, x1 = sorted(x_range)
    y0, y1 = sorted(y_range)
    lon, lat = frame["lon"].to_numpy(), frame["lat"].to_numpy()
    return frame[(lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)]


def _log_span(lo: float, hi: float, ratio: float) -> tuple[float, float]:
    """``(lo, hi)`` widened about its geometric centre to span at least ``ratio`` (log axes)."""
    if hi / lo >= ratio:
        return float(lo), float(hi)
    centre = np.sqrt(lo * hi)
    return float(centre / np.sqrt(ratio)), float(centre * np.sqrt(ratio))


def _view_area_km2(x_range: Sequence[float], y_range: Sequence[float]) -> float:
    from .crs import MARS_RADIUS_KM

    x0, x1 = sorted(x_range)
    y0, y1 = (np.clip(v, -90, 90) for v in sorted(y_range))
    return float(MARS_RADIUS_KM**2 * np.radians(x1 - x0) * abs(np.sin(np.radians(y1)) - np.sin(np.radians(y0))))


# --------------------------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------------------------
class CraterBrowser:
    """The map browser: a Panel app with the map, layer toggles and a linked CSFD plot.

    Build it with :func:`browse`.  It behaves as a Panel object: ``pn.panel(browser)``,
    ``browser.servable()``, ``browser.show()``, ``pn.serve(browser)``; and it writes static pages
    with :meth:`save_html`.

    Attributes
    ----------
    layers : dict
        Name -> HoloViews element or DynamicMap of each map layer.
    widgets : dict
        Name -> Panel widget (layer toggles and the probability opacity).
    """

    def __init__(
        self,
        ds: xr.Dataset,
        catalog: Any = None,
        truth: Any = None,
        prob: Any = None,
        *,
        title: str | None = None,
        rule: str = "deepmoon",
        d_min: float | None = None,
        frame_width: int = 700,
        frame_height: int | None = None,
        xlim: tuple[float, float] | None = None,
        ylim: tuple[float, float] | None = None,
        cmap: str = "gray",
        clim: tuple[float, float] | None = None,
        prob_cmap: str = "fire",
        prob_floor: float = 0.1,
        prob_alpha: float = 0.5,
        max_craters: int = 5000,
        static: bool = False,
        resolution: int = 1200,
    ) -> None:
        from .mosaic import validate_mosaic

        hv, pn = _viz_imports()
        self.ds = validate_mosaic(ds)
        self.options = {
            "catalog": catalog, "truth": truth, "prob": prob, "title": title, "rule": rule, "d_min": d_min,
            "frame_width": frame_width,
            "frame_height": frame_height, "xlim": xlim, "ylim": ylim, "cmap": cmap, "clim": clim, "prob_cmap": prob_cmap,
            "prob_floor": prob_floor, "prob_alpha": prob_alpha, "max_craters": max_craters,
        }
        if max_craters < 1:
            raise InvalidArgumentError(f"max_craters must be >= 1, got {max_craters}")
        if d_min is not None and (isinstance(d_min, bool) or not (isinstance(d_min, (int, float, np.number))
                                                                   and 0 < d_min < np.inf)):
            raise InvalidArgumentError(f"d_min must be a diameter in km > 0, or None for no floor; got {d_min!r}")
        self.d_min = None if d_min is None else float(d_min)
        if resolution < 16:
            raise InvalidArgumentError(f"resolution must be at least 16 pixels, got {resolution}")
        self.static = static
        self.resolution = int(resolution)
        self.max_craters = int(max_craters)
        self.title = title or str(self.ds.attrs.get("source") or "marscraters map")

        lon, lat = lonlat_coords(self.ds)
        dlon, dlat = abs(lon[1] - lon[0]) if lon.size > 1 else 1.0, abs(lat[1] - lat[0]) if lat.size > 1 else 1.0
        # outer pixel edges: the full extent of the mosaic
        self.bounds = (lon.min() - dlon / 2, lat.min() - dlat / 2, lon.max() + dlon / 2, lat.max() + dlat / 2)
        self.xlim = tuple(map(float, xlim)) if xlim is not None else (self.bounds[0], self.bounds[2])
        self.ylim = tuple(map(float, ylim)) if ylim is not None else (self.bounds[1], self.bounds[3])
        if not (self.xlim[1] > self.xlim[0] and self.ylim[1] > self.ylim[0]):
            raise InvalidArgumentError(f"xlim {xlim} and ylim {ylim} must be increasing (low, high) pairs")
        west = float(self.bounds[0])
        if frame_height is None:
            # plate carree: one degree of longitude as wide as one of latitude on screen
            aspect = (self.ylim[1] - self.ylim[0]) / (self.xlim[1] - self.xlim[0])
            frame_height = int(np.clip(round(frame_width * aspect), 150, 1200))
        self.frame_width, self.frame_height = int(frame_width), int(frame_height)

        ir = _lonlat_array(self.ds["ir"], lon, lat, "ir")
        prob_da = None
        self._prob_name = ""
        if prob is not None:
            layer = _as_layer(prob, self.ds, "prob")
            self._prob_name = str(layer.name or "")
            prob_da = _lonlat_array(layer, lon, lat, "probability")

        cat = _crater_frame(catalog, west, "detected")
        tru = _crater_frame(truth, west, "truth")
        for frame, what in ((cat, "detected"), (tru, "truth")):
            _warn_off_the_map(frame, self.bounds, what)
        # what the page shows, and scores: a whole reference catalog (Robbins) would count every
        # crater off the map as missed
        w, so, e, n = self.bounds  # (its outer pixel edges; lon on the mosaic's axis)
        cat, tru = _in_view(cat, (w, e), (so, n)), _in_view(tru, (w, e), (so, n))
        #: the scores the layers show (an EvaluationResult), with both catalogs
        self.scores: Any = None
        pred_floor, truth_floor = _floors(self.d_min)
        if catalog is not None and truth is not None:
            self.craters, self.scores = _classify(cat, tru, rule, self.d_min)
        elif catalog is not None:
            self.craters = {"craters": cat[cat["diameter_km"] >= pred_floor]}
        elif truth is not None:
            self.craters = {"truth": tru[tru["diameter_km"] >= truth_floor]}
        else:
            self.craters = {}

        self.layers: dict[str, Any] = {}
        self.widgets: dict[str, Any] = {}
        self._build(hv, pn, ir, prob_da)

    # ---------------------------------------------------------------------------------------
    def _raster(self, hv: Any, img: Any, **kw: Any) -> Any:
        from holoviews.operation.datashader import regrid

        if self.static:
            # no server to re-aggregate: one fixed-resolution raster of the whole mosaic
            w, s, e, n = self.bounds
            scale = self.resolution / max(e - w, n - s)
            width = max(2, min(round((e - w) * scale), img.data.sizes["lon"]))
            height = max(2, min(round((n - s) * scale), img.data.sizes["lat"]))
            return regrid(img, dynamic=False, width=width, height=height, x_range=(w, e), y_range=(s, n), **kw)
        # the initial view's range, so the first render reads only the chunks it shows (the
        # RangeXY stream is empty until the browser reports its ranges)
        return regrid(img, dynamic=True, x_range=self.xlim, y_range=self.ylim, **kw)

    def _crater_layer(self, hv: Any, name: str, frame: pd.DataFrame, stream: Any) -> tuple[Any, Any]:
        colour = LAYER_COLOURS[name]
        vdims = ["diameter_km", "score", "crater_id"]

        def subset(x_range: Any = None, y_range: Any = None) -> pd.DataFrame:
            view = _in_view(frame, x_range, y_range)
            if len(view) > self.max_craters:
                # too many to draw legibly (and fast): keep the largest
                view = view.nlargest(self.max_craters, "diameter_km")
            return view

        def rims(x_range: Any = None, y_range: Any = None) -> Any:
            xs, ys = _rims(subset(x_range, y_range))
            return hv.Path([{"lon": xs, "lat": ys}], kdims=["lon", "lat"], label=name)

        def centres(x_range: Any = None, y_range: Any = None) -> Any:
            return hv.Points(subset(x_range, y_range), kdims=["lon", "lat"], vdims=vdims, label=name)

        tooltips = [
            ("layer", name), ("lat", "@lat{0.000}°"), ("lon", "@lon{0.000}°"),
            ("diameter_km", "@diameter_km{0.00}"), ("score", "@score{0.000}"), ("crater_id", "@crater_id"),
        ]
        path_opts = {"color": colour, "line_width": 2, "hooks": [_name_renderer(f"{name}-rims")]}
        point_opts = {"color": colour, "size": 5, "tools": ["hover"], "hover_tooltips": tooltips, "marker": "circle",
                          "hooks": [_name_renderer(f"{name}-centres")]}
        if self.static:
            view = (self.xlim, self.ylim) if self.xlim != (self.bounds[0], self.bounds[2]) else (None, None)
            path = rims(*view).opts(**path_opts)
            points = centres(*view).opts(**point_opts)
        else:
            path = hv.DynamicMap(rims, streams=[stream]).opts(**path_opts)
            points = hv.DynamicMap(centres, streams=[stream]).opts(**point_opts)
        return path, points

    def _csfd(self, hv: Any, x_range: Any = None, y_range: Any = None) -> Any:
        """The cumulative size-frequency distribution of each layer's craters in the view, per km²
        of the view, binned and normalised by :func:`marscraters.chronology.csfd` (as the age plots)."""
        from bokeh.models import TeeHead

        from .chronology import csfd

        x_range = x_range or self.xlim
        y_range = y_range or self.ylim
        area = _view_area_km2(x_range, y_range)
        x_dim, y_dim = _csfd_dims()
        kdims, vdims = [x_dim], [y_dim]
        layers = []
        xs, lows, highs = [np.empty(0)], [np.empty(0)], [np.empty(0)]
        for name, frame in self.craters.items():
            d = _in_view(frame, x_range, y_range)["diameter_km"].to_numpy(dtype=float)
            if d.size and area > 0:
                table = csfd(d, area_km2=area)
                x, y = table["diameter"].to_numpy(), table["density"].to_numpy()
                lo, hi = y - table["lower"].to_numpy(), table["upper"].to_numpy() - y
            else:
                x = y = lo = hi = np.empty(0)
            xs.append(x)
            lows.append(y - lo)
            highs.append(y + hi)
            colour = LAYER_COLOURS[name]
            label = f"{name} ({d.size})"
            layers.append(hv.Curve((x, y), kdims, vdims, label=label).opts(color=colour, line_width=1.5))
            # markers too: a single crater is a point, not a line
            layers.append(hv.Scatter((x, y), kdims, vdims, label=label).opts(color=colour, size=5))
            # Poisson 1-sigma intervals, as the age plots draw them
            layers.append(hv.ErrorBars((x, y, lo, hi), kdims, [*vdims, "lower", "upper"]).opts(
                color=colour, upper_head=TeeHead(line_color=colour, size=6),
                lower_head=TeeHead(line_color=colour, size=6)))
        if not layers:
            layers = [hv.Curve(([1.0], [1.0 / max(area, 1e-9)]), kdims, vdims).opts(alpha=0)]
        # at least a factor 5 in D and 100 in density: the log axes then get whole ticks (1, 2, 5 km and
        # 10^k km⁻²), not a crowd of 4.000e-3-style labels inside one decade
        x_all, lo_all, hi_all = np.concatenate(xs), np.concatenate(lows), np.concatenate(highs)
        xlim = _log_span(x_all.min() / 1.3, x_all.max() * 1.3, 5.0) if x_all.size else (1.0, 10.0)
        floor = 1.0 / max(area, 1e-9)  # one crater in the view
        ylim = (_log_span(lo_all[lo_all > 0].min() / 1.5, hi_all.max() * 1.5, 100.0) if (lo_all > 0).any()
                else _log_span(floor / 3, floor * 3, 100.0))
        # framewise: the served plot takes each view's ranges (densities change with the view's area)
        return hv.Overlay(layers).opts(
            hv.opts.Curve(logx=True, logy=True, framewise=True),
            hv.opts.Scatter(logx=True, logy=True, framewise=True),
            hv.opts.ErrorBars(logx=True, logy=True, framewise=True),
            hv.opts.Overlay(
                title=f"crater sizes in view ({area:,.0f} km²)", logx=True, logy=True, framewise=True,
                # below the axes: inside, a legend covers part of the curves whatever the corner
                legend_position="bottom", legend_cols=3,
                xlabel=x_dim.label, ylabel=y_dim.label, xticks=_LOG_TICKS, xlim=xlim, ylim=ylim,
            ),
        )

    def _build(self, hv: Any, pn: Any, ir: xr.DataArray, prob_da: xr.DataArray | None) -> None:
        opts = self.options

        def name_figure(name: str) -> Any:
            def hook(plot: Any, element: Any) -> None:
                plot.state.name = name

            return hook

        base = hv.Image(ir, kdims=["lon", "lat"], vdims=["ir"], label="mosaic")
        # colour bars: the image's grey levels below the map, the probability's colours on its right
        # (HoloViews draws only one of two colour bars at the same side)
        mosaic = self._raster(hv, base).opts(
            cmap=opts["cmap"], clipping_colors={"NaN": "transparent"}, hooks=[_name_renderer("mosaic")],
            colorbar=True, colorbar_position="bottom", clabel=_image_label(self.ds, static=self.static,
                                                                           fixed=opts["clim"] is not None),
            **({"clim": tuple(opts["clim"])} if opts["clim"] is not None else {}),
        )
        self.layers["mosaic"] = mosaic
        layers = [mosaic]
        if prob_da is not None:
            pimg = hv.Image(prob_da, kdims=["lon", "lat"], vdims=["probability"], label="probability")
            prob_layer = self._raster(hv, pimg).opts(
                cmap=opts["prob_cmap"], clim=(float(opts["prob_floor"]), 1.0), alpha=float(opts["prob_alpha"]),
                clipping_colors={"min": "transparent", "NaN": "transparent"}, colorbar=True,
                colorbar_position="right", clabel=_probability_label(self._prob_name, float(opts["prob_floor"])),
                hooks=[_name_renderer("probability")],
            )
            self.layers["probability"] = prob_layer
            layers.append(prob_layer)

        stream = None if self.static else hv.streams.RangeXY(source=mosaic)
        for name, frame in self.craters.items():
            path, points = self._crater_layer(hv, name, frame, stream)
            self.layers[name] = (path, points)
            layers.extend([path, points])

        overlay = layers[0]
        for layer in layers[1:]:
            # `*` (not hv.Overlay) so that DynamicMaps combine into one DynamicMap of overlays
            overlay = overlay * layer
        self.map = overlay.opts(
            hv.opts.Image(
                frame_width=self.frame_width, frame_height=self.frame_height, xlim=self.xlim, ylim=self.ylim,
                xlabel="longitude (°E)", ylabel="latitude (°N)", tools=[], active_tools=["wheel_zoom"],
            ),
        )
        if len(layers) > 1:
            self.map = self.map.opts(
                hv.opts.Overlay(
                    frame_width=self.frame_width, frame_height=self.frame_height, xlim=self.xlim, ylim=self.ylim,
                    xlabel="longitude (°E)", ylabel="latitude (°N)", title=self.title, show_legend=False,
                    hooks=[name_figure(MAP_NAME)], active_tools=["wheel_zoom"],
                )
            )
        else:
            self.map = self.map.opts(hv.opts.Image(title=self.title, hooks=[_name_renderer("mosaic"), name_figure(MAP_NAME)]))

        if self.static:
            csfd = self._csfd(hv)
        else:
            # the map's view, passed on through a plain stream: HoloViews leaves the axes of a plot
            # driven by a RangeXY stream as they are, and the CSFD's must follow its densities
            view = hv.streams.Stream.define("MapView", x_range=None, y_range=None)()
            self._map_range = hv.streams.RangeXY(source=mosaic)
            self._map_range.add_subscriber(lambda **kw: view.event(x_range=kw.get("x_range"), y_range=kw.get("y_range")))
            csfd = hv.DynamicMap(lambda x_range, y_range: self._csfd(hv, x_range, y_range), streams=[view])
        self.csfd = csfd.opts(hv.opts.Overlay(frame_width=300, frame_height=min(self.frame_height, 300),
                                              hooks=[name_figure(CSFD_NAME)]))

        # layer toggles, linked in JavaScript so that they also work on a static page
        for name, layer in self.layers.items():
            cb = pn.widgets.Checkbox(label=_LAYER_HELP.get(name, name), value=True)
            targets = layer if isinstance(layer, tuple) else (layer,)
            for target in targets:
                cb.jslink(target, value="glyph_renderer.visible")
            self.widgets[name] = cb
        if prob_da is not None:
            slider = pn.widgets.FloatSlider(label="probability opacity", start=0.0, end=1.0, step=0.05,
                                            value=float(opts["prob_alpha"]))
            slider.jslink(self.layers["probability"], value="glyph.global_alpha")
            self.widgets["probability_opacity"] = slider

        legend = "".join(
            f'<span style="color:{LAYER_COLOURS[n]};font-weight:bold">&#9711;</span> {_LAYER_HELP[n]} '
            f"({len(f)})<br>"
            for n, f in self.craters.items()
        )
        if self.craters and self.d_min is not None:
            pred_floor, truth_floor = _floors(self.d_min)
            shown = {"craters": f"craters ≥ {pred_floor:g} km", "truth": f"truth craters ≥ {truth_floor:g} km"}
            both = f"detections ≥ {pred_floor:g} km, reference craters ≥ {truth_floor:g} km"
            legend += f"<small>shown: {shown.get(next(iter(self.craters)), both)}</small><br>"
        if self.scores is not None:
            legend += f"<small>{_scores_html(self.scores)}</small><br>"
        note = ("Static page: the mosaic was rasterized once at "
                f"{self.resolution} px; zooming magnifies it." if self.static else
                "Zoom and pan: the mosaic is re-aggregated for every view.")
        side = pn.Column(
            pn.pane.Markdown(f"### {self.title}"),
            *self.widgets.values(),
            pn.pane.HTML(legend) if legend else pn.Spacer(height=0),
            pn.pane.Markdown(note, styles={"font-size": "smaller"}),
            width=240,
        )
        panes = [side, pn.pane.HoloViews(self.map, linked_axes=False)]
        if self.craters:  # no catalog, no size-frequency plot
            panes.append(pn.pane.HoloViews(self.csfd, linked_axes=False))
        self.panel = pn.Row(*panes)

    # ---------------------------------------------------------------------------------------
    def __panel__(self) -> Any:
        return self.panel

    def servable(self, title: str | None = None) -> Any:
        """Mark the app servable for ``panel serve script.py``."""
        return self.panel.servable(title=title or self.title)

    def show(self, **kwargs: Any) -> Any:
        """Serve the app and open it in a browser tab (see :func:`panel.serve`)."""
        return self.panel.show(title=self.title, **kwargs)

    def save_html(self, path: str | os.PathLike, *, overwrite: bool = False, resolution: int | None = None) -> Path:
        """Write a static, self-contained HTML page of this map; see :func:`save_html`."""
        return save_html(self, path, overwrite=overwrite, resolution=resolution)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return self.panel._repr_mimebundle_(include, exclude)

    def __repr__(self) -> str:
        layers = ", ".join(
            f"{k} ({len(self.craters[k])})" if k in self.craters else k for k in self.layers
        )
        kind = "static" if self.static else "dynamic"
        return f"<CraterBrowser {self.title!r} {kind}, {dict(self.ds.sizes)} px, layers: {layers}>"


def browse(
    ds: xr.Dataset,
    catalog: Any = None,
    truth: Any = None,
    prob: Any = None,
    *,
    title: str | None = None,
    rule: str = "deepmoon",
    d_min: float | None = None,
    frame_width: int = 700,
    frame_height: int | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    cmap: str = "gray",
    clim: tuple[float, float] | None = None,
    prob_cmap: str = "fire",
    prob_floor: float = 0.1,
    prob_alpha: float = 0.5,
    max_craters: int = 5000,
) -> CraterBrowser:
    """An interactive map of a mosaic with its crater probability and crater catalogs.

    Nothing is computed when the app is built: the mosaic stays lazy, and each view is
    rasterized (Datashader) from just the pixels it shows when the app is displayed.

    Parameters
    ----------
    ds
        A Mosaic (``ir`` on ``(y, x)`` with a geographic or equirectangular Mars CRS), numpy- or
        dask-backed (e.g. :func:`marscraters.open_mosaic` of a Zarr cube).
    catalog
        Detected craters (a Catalog or a path :func:`marscraters.read_catalog` reads).
    truth
        Reference craters.  With both ``catalog`` and ``truth``, circles are coloured matched /
        false / missed as :func:`marscraters.evaluate.evaluate` counts them with ``rule`` and
        ``d_min``, and the legend gives its precision, recall and F1 (``.scores``).
    prob
        A crater probability or target layer on the mosaic's grid: a DataArray, a Dataset with
        one 2-D variable, or the path of a ``pred.zarr`` store.
    title
        Map title (default: the mosaic's ``source`` attribute).
    rule
        Matching rule for ``truth``: ``"deepmoon"``, ``"iou"`` or ``"pycda"``.
    d_min
        Diameter floor in km, as in :func:`marscraters.evaluate.evaluate`: only detections of at
        least ``0.8 * d_min`` and reference craters of at least ``d_min`` are drawn and counted
        (matching still uses all craters).  Default: no floor.
    frame_width, frame_height
        Size of the map's plot area in screen pixels; the height defaults to equal degrees on
        both axes.
    xlim, ylim
        Initial longitude and latitude ranges (default: the whole mosaic).
    cmap, clim
        Colour map and (optional) fixed value range of the mosaic; by default each view is
        stretched to its own range.
    prob_cmap, prob_floor, prob_alpha
        Colour map of the probability layer, the value below which it is transparent, and its
        initial opacity.
    max_craters
        Most craters drawn per layer and view; the largest are kept when a view holds more.

    Returns
    -------
    CraterBrowser
        A Panel app object: display it in a notebook, ``.servable()`` it for ``panel serve``,
        ``.show()`` it, ``pn.serve`` it, or ``.save_html(path)`` a static page.

    Raises
    ------
    MosaicError
        If ``ds`` is not a Mosaic on a cylindrical lon/lat grid, or ``prob`` is not on its grid.
    CatalogError
        If a catalog lacks ``lat``, ``lon`` or ``diameter_km``.
    ImportError
        If the ``viz`` extra (HoloViews, Panel, Datashader, Bokeh) is not installed.

    Examples
    --------
    >>> ds = marscraters.open_mosaic("cube.zarr")  # doctest: +SKIP
    >>> app = browse(ds, catalog="craters.gpkg", truth="robbins.tsv", prob="pred.zarr")  # doctest: +SKIP
    >>> app.servable()  # in a script run by `panel serve`  # doctest: +SKIP
    """
    return CraterBrowser(
        ds, catalog, truth, prob, title=title, rule=rule, d_min=d_min, frame_width=frame_width,
        frame_height=frame_height,
        xlim=xlim, ylim=ylim, cmap=cmap, clim=clim, prob_cmap=prob_cmap, prob_floor=prob_floor,
        prob_alpha=prob_alpha, max_craters=max_craters,
    )


def save_html(
    app_or_ds: CraterBrowser | xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    resolution: int | None = None,
    **kwargs: Any,
) -> Path:
    """Write the map as one static, self-contained HTML page (no server needed).

    A static page cannot re-aggregate on zoom, so the mosaic (and probability layer) is
    rasterized once at a fixed ``resolution`` (pixels along its longer side, never more than the
    mosaic has) and embedded with the craters and all JavaScript (works offline, from
    ``file://``).  Layer toggles and the opacity slider work; the CSFD plot shows the initial
    view.  Best for small mosaics or crops: the page grows with ``resolution`` squared.

    Parameters
    ----------
    app_or_ds
        A :class:`CraterBrowser` (its layers and options are reused) or a Mosaic.
    path
        Output ``.html`` file.
    overwrite
        Replace an existing file.
    resolution
        Raster size in pixels along the longer side of the mosaic (default 1200).
    **kwargs
        Passed to :func:`browse` when ``app_or_ds`` is a Mosaic (``catalog``, ``truth``, ``prob``,
        ``title``...).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> save_html(ds, "map.html", catalog=craters, truth=truth)  # doctest: +SKIP
    """
    from ._io import atomic_path, check_not_input

    if isinstance(app_or_ds, CraterBrowser):
        if kwargs:
            raise InvalidArgumentError(f"pass browse() options only with a Mosaic, not with a CraterBrowser: {sorted(kwargs)}")
        ds, options = app_or_ds.ds, dict(app_or_ds.options)
        if resolution is None and app_or_ds.static:
            resolution = app_or_ds.resolution
    elif isinstance(app_or_ds, xr.Dataset):
        ds, options = app_or_ds, kwargs
    else:
        raise InvalidArgumentError(
            f"save_html needs a CraterBrowser (from browse()) or a Mosaic Dataset, got {type(app_or_ds).__name__}"
        )
    # the page never replaces what it shows (a path inside the cube's store would corrupt it)
    path = check_not_input(path, ds, options.get("catalog"), options.get("truth"))
    static = CraterBrowser(ds, static=True, resolution=resolution or 1200, **options)
    with atomic_path(path, overwrite=overwrite) as tmp:
        # bokeh picks the template by suffix: keep .html on the temporary name
        target = tmp if tmp.suffix == ".html" else tmp.with_suffix(".html")
        _save_offline(static.panel, target, static.title)
        if target != tmp:
            os.replace(target, tmp)
    return path


def _save_offline(panel_obj: Any, path: Path, title: str) -> None:
    """Save a Panel object as one HTML file that needs no network: scripts *and* stylesheets inline.

    ``panel.save(resources=INLINE)`` inlines the JavaScript but leaves Panel's component
    stylesheets as links to cdn.holoviz.org, which fail offline (and from ``file://`` without a
    network); they are replaced by their text, read from Panel's own installed ``dist`` folder.
    """
    from bokeh.document import Document
    from bokeh.models import InlineStyleSheet
    from bokeh.resources import INLINE
    from panel.io.model import add_to_doc
    from panel.io.resources import CDN_DIST, DIST_DIR
    from panel.io.save import save

    cache: dict[str, Any] = {}

    def inline(sheet: Any) -> Any:
        url = sheet if isinstance(sheet, str) else getattr(sheet, "url", None)
        if not (isinstance(url, str) and url.startswith(CDN_DIST)):
            return sheet
        local = Path(DIST_DIR) / url[len(CDN_DIST):].split("?")[0]
        if not local.is_file():
            return sheet
        if url not in cache:
            cache[url] = InlineStyleSheet(css=local.read_text(encoding="utf-8"))
        return cache[url]

    doc = Document()
    with _panel_config(inline=True):
        root = panel_obj.get_root(doc)
        add_to_doc(root, doc, True)
        for model in list(doc.models):
            sheets = getattr(model, "stylesheets", None)
            if sheets:
                new = [inline(s) for s in sheets]
                if any(a is not b for a, b in zip(new, sheets)):
                    model.stylesheets = new
        save(doc, str(path), resources=INLINE, title=title)
    # the page template's icons (favicon, apple-touch-icon) also point at the CDN: embed them
    html = path.read_text(encoding="utf-8")

    def data_uri(match: Any) -> str:
        local = Path(DIST_DIR) / match.group(1)
        if not local.is_file():
            return match.group(0)
        mime = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
        return f"data:{mime};base64," + base64.b64encode(local.read_bytes()).decode("ascii")

    html = re.sub(re.escape(CDN_DIST) + r"(images/[\w.-]+)", data_uri, html)
    path.write_text(html, encoding="utf-8")


@contextlib.contextmanager
def _panel_config(**settings: Any) -> Iterator[None]:
    import panel as pn

    old = {k: getattr(pn.config, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(pn.config, k, v)
        yield
    finally:
        for k, v in old.items():
            setattr(pn.config, k, v)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def add_browse_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``browse`` subcommand to the ``marscraters`` command's subparsers."""
    from .cli import _number

    b = subparsers.add_parser(
        "browse",
        help="browse a mosaic cube with its craters in a web browser (HoloViews/Panel)",
        description="Serve an interactive map of a mosaic cube (rasterized per view with Datashader), with "
        "optional crater probability and crater catalogs, or write it as a static HTML page.",
    )
    b.add_argument("cube", help="mosaic cube.zarr (from `marscraters ingest`)")
    b.add_argument("--catalog", help="detected craters (GeoPackage, CSV, Robbins TSV, craterstats...)")
    b.add_argument("--truth", help="reference craters; colours detections matched / false / missed")
    b.add_argument("--prob", help="crater probability pred.zarr (from `marscraters segment`)")
    b.add_argument("--title", help="map title (default: the cube's source)")
    b.add_argument("--rule", default="deepmoon", choices=["deepmoon", "iou", "pycda"], help="matching rule for --truth")
    b.add_argument("--d-min", type=_number("--d-min", "a diameter in km > 0", lambda v: 0 < v < float("inf")),
                   metavar="KM",
                   help="diameter floor, as `marscraters evaluate --d-min` uses it: draw and count reference craters "
                        "of at least KM and detections of at least 0.8 KM (default: all)")
    b.add_argument("--html", help="write a static HTML page to this file instead of serving")
    b.add_argument("--resolution", type=int, default=1200, help="raster size of the static page, px (default 1200)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --html file")
    b.add_argument("--show", action="store_true", help="open the served app in a web browser")
    b.add_argument("--port", type=_port, default=0, help="port to serve on, 0..65535 (default 0: a free one)")
    b.add_argument("--address", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    b.set_defaults(func=run_browse_cli)
    return b


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0..65535 (0: a free one), refused by the parser otherwise."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be a whole number 0..65535 (0 or left out: a free port), "
                                         f"got {text!r}")
    return port


def _serve_error(exc: OSError, port: int, address: str) -> MarsCratersError:
    """The server's socket error as a message naming the fix, not a tornado traceback."""
    if exc.errno == errno.EADDRINUSE:
        return InvalidArgumentError(f"port {port} on {address} is in use (an earlier `marscraters browse` may still "
                                    f"serve there); give another --port, or leave --port out for a free one")
    return InvalidArgumentError(f"cannot serve on {address}:{port}: {exc.strerror or exc}; give another --port (or "
                                f"leave it out for a free one) or another --address (e.g. 127.0.0.1)")


def run_browse_cli(args: argparse.Namespace) -> int:
    """Run ``marscraters browse`` from parsed arguments: serve (blocking) or write ``--html``."""
    from ._io import check_output
    from .mosaic import open_mosaic

    if args.html:  # before the map is drawn; the page may not replace the cube or a catalog it shows
        check_output(args.html, args.overwrite, folder=False,
                     inputs=(args.cube, args.catalog, args.truth, args.prob))
    ds = open_mosaic(args.cube)
    kwargs: dict[str, Any] = {"catalog": args.catalog, "truth": args.truth, "prob": args.prob,
                                  "title": args.title, "rule": args.rule, "d_min": args.d_min}
    if args.html:
        out = save_html(ds, args.html, overwrite=args.overwrite, resolution=args.resolution, **kwargs)
        print(f"wrote {out}")
        return 0
    _, pn = _viz_imports()
    app = browse(ds, **kwargs)
    print(f"serving {args.cube} on http://{args.address}:{args.port or '<free port>'} (Ctrl-C stops)")
    try:
        # the socket is bound before the server blocks: a taken port fails here, at once
        pn.serve(app.panel, port=args.port, address=args.address, show=args.show, title=app.title,
                 websocket_origin=["*"] if args.address not in ("127.0.0.1", "localhost") else None)
    except OSError as exc:
        raise _serve_error(exc, args.port, args.address) from exc
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m marscraters.browse cube.zarr ...`` (the same options as ``marscraters browse``)."""
    parser = argparse.ArgumentParser(prog="python -m marscraters.browse")
    sub = parser.add_subparsers(dest="command")
    add_browse_parser(sub)
    args = parser.parse_args(["browse", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
