"""Lazy target layers: a crater catalog drawn onto a mosaic's pixel grid.

:func:`render_targets` turns a :class:`Catalog <geopandas.GeoDataFrame>` into the binary mask a
segmentation network learns from, on exactly the grid of a Mosaic.  The result is a lazy,
dask-backed :class:`xarray.DataArray`; every chunk is drawn on demand from the few craters that
touch it.

Geometry
--------
Centres go through :meth:`marscraters.crs.Grid.lonlat_to_pixel` and semi-axes through
:meth:`marscraters.crs.Grid.km_to_pixels`, so on an equirectangular grid (geographic degrees or
IAU 49910/49915 metres) a crater of diameter D km at latitude φ is an ellipse with semi-axes

* ``a = D / 2 / (R cos φ)`` radians of longitude, in pixels along x, and
* ``b = D / 2 / R`` radians of latitude, in pixels along y,

which is what a circle on the sphere looks like on such a grid (twice as wide as tall at 60°).

**Inclusion rule.** A pixel belongs to an ellipse with centre ``(cx, cy)`` and semi-axes
``(a, b)`` when its *centre* ``(col, row)`` (pixel index coordinates, see
:class:`~marscraters.crs.Grid`) satisfies ``((col - cx) / a)² + ((row - cy) / b)² <= 1``.
In addition the pixel that contains a crater's centre always belongs to its disk, so a crater
smaller than a pixel still marks one pixel instead of vanishing (this adds nothing to a crater big
enough to cover a pixel centre, because that pixel is the nearest one in the ellipse metric).

Kinds
-----
``filled``
    Filled disks (DeLatte et al.'s first target).
``outline``
    A disk minus its inner disk of ``inner_ratio`` times the semi-axes.
``ring``
    A rim band of constant width ``ring_width_px`` pixels centred on the crater's rim: the ellipse
    with semi-axes ``(a + w/2, b + w/2)`` minus the one with ``(a - w/2, b - w/2)``.
``hybrid``
    ``outline`` for craters of at least ``hybrid_threshold_km`` and ``filled`` for smaller ones
    (the paper's future work: big craters as rims, small ones as blobs).

Craters with a hole (``outline``, ``ring``, the big ones of ``hybrid``) are painted one at a time
in one *global* order, largest diameter first (ties keep catalog order): 1 on the outer disk, then
0 on the hole.  A small crater inside a big crater's hole is therefore painted after it and stays
visible.  A hole whose semi-minor axis would be under one pixel is not cut: at that size a rim
cannot be told from a disk, and cutting it could erase the crater.

Wrapping
--------
Longitudes are periodic: a crater is drawn at every copy ``cx + k W`` (``W`` = pixels in 360° of
longitude) that touches the grid.  A regional mosaic therefore also gets the part of a crater whose
centre lies just west of its west edge in the other longitude convention, and a global mosaic
(``nx == W``) gets craters that cross its x edge drawn on both sides, seamlessly.  Latitude does not
wrap.

Chunking
--------
While the graph is built, every crater's pixel bounding box is bucketed into the output chunks
(``numpy.searchsorted`` on the chunk boundaries), so each task carries only the rows of the crater
table that touch its chunk.  Every pixel value is computed from global pixel indices in the global
painting order, so the result is bit-identical for any chunking.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .crs import Grid
from .errors import CatalogError, CatalogValidationError, InvalidArgumentError, MosaicError

__all__ = ["TARGET_KINDS", "DEFAULT_HYBRID_THRESHOLD_KM", "render_targets", "draw_targets", "crater_weights",
           "catalog_pixels"]

#: The target kinds :func:`render_targets` can draw.
TARGET_KINDS: tuple[str, ...] = ("filled", "outline", "ring", "hybrid")

#: Default ``hybrid_threshold_km``: 8 km is about 35 px at 256 px/deg and 80 px at 100 m/px, big
#: enough that a rim of 30 % of the radius is several pixels wide.
DEFAULT_HYBRID_THRESHOLD_KM: float = 8.0

_REQUIRED_COLUMNS = ("lat", "lon", "diameter_km")

# Columns of the per-segment table handed to each task (float64; integers are exact below 2**53).
_R0, _R1, _C0, _C1, _CX, _CY, _AO, _BO, _AI, _BI, _RC, _CC, _WRAP = range(13)
_NCOLS = 13

# Draw a big window in row strips of at most this many pixels, to bound the float64 scratch memory.
_STRIP_PIXELS = 1 << 20


def render_targets(
    mosaic: xr.Dataset | xr.DataArray,
    catalog: pd.DataFrame,
    kind: str = "filled",
    *,
    inner_ratio: float = 0.7,
    ring_width_px: float = 2.0,
    hybrid_threshold_km: float | None = None,
    diameter_range: tuple[float | None, float | None] | None = None,
    chunks: Any = None,
    dtype: Any = "uint8",
) -> xr.DataArray:
    """Draw a crater catalog as a lazy target layer on a mosaic's grid.

    Parameters
    ----------
    mosaic
        A Mosaic (``xr.Dataset`` with ``ir`` on ``(y, x)`` and a Mars CRS), or any georeferenced
        DataArray on ``(y, x)``.  Only its grid and chunks are used; its pixels are never read.
    catalog
        A Catalog, or any DataFrame with numeric ``lat``, ``lon`` (either longitude convention)
        and ``diameter_km`` columns.
    kind
        ``"filled"``, ``"outline"``, ``"ring"`` or ``"hybrid"``; see the module documentation.
    inner_ratio
        Size of the hole of ``outline`` (and big ``hybrid``) craters relative to the crater, in
        (0, 1).
    ring_width_px
        Width in pixels of the ``ring`` band, centred on the rim; > 0.
    hybrid_threshold_km
        Diameter from which ``hybrid`` draws outlines instead of disks.  Default
        :data:`DEFAULT_HYBRID_THRESHOLD_KM` (8 km).
    diameter_range
        ``(min_km, max_km)``: draws ``min_km <= diameter_km < max_km``, the same rule as
        :func:`marscraters.catalog.filter_catalog`; either end may be None.
    chunks
        Chunks of the result: anything :func:`dask.array.core.normalize_chunks` accepts, or a
        ``{"y": ..., "x": ...}`` mapping.  Default: the chunks of ``mosaic.ir`` (one chunk when it
        is a numpy array).
    dtype
        Data type of the result (bool, integer or float); craters are 1, background 0.

    Returns
    -------
    xarray.DataArray
        ``target``, dask-backed, on the mosaic's ``y``/``x`` coordinates with its CRS and
        transform; ``attrs`` record the kind, its parameters and ``n_craters`` (the craters
        whose bounding box touches the grid).

    Raises
    ------
    CatalogError
        If the catalog is not a DataFrame or lacks ``lat``, ``lon`` or ``diameter_km``.
    CatalogValidationError
        If a row has a missing value, a diameter <= 0 or |lat| > 90.
    InvalidArgumentError
        If ``kind``, ``inner_ratio``, ``ring_width_px``, ``hybrid_threshold_km``,
        ``diameter_range``, ``chunks`` or ``dtype`` is invalid.
    MosaicError
        If the mosaic has no ``(y, x)`` grid or is not on an equirectangular grid.

    Examples
    --------
    A 400 km crater on a tile at 8 px/deg is an ellipse of about 27 x 28 px semi-axes at 15 S:

    >>> import numpy as np, pandas as pd
    >>> from marscraters.mosaic import mosaic_from_array
    >>> ds = mosaic_from_array(np.zeros((240, 240)), bounds=(30, -30, 60, 0))
    >>> cat = pd.DataFrame({"lat": [-15.0], "lon": [45.0], "diameter_km": [400.0]})
    >>> target = render_targets(ds, cat, kind="filled")  # lazy: nothing is drawn yet
    >>> int(target.sum())
    2372
    """
    kind, inner_ratio, ring_width_px, threshold, dmin, dmax, out_dtype = _check_args(
        kind, inner_ratio, ring_width_px, hybrid_threshold_km, diameter_range, dtype
    )
    lat, lon, diam = _catalog_arrays(catalog)

    grid = _grid_of(mosaic)
    ny, nx = grid.shape
    out_chunks = _output_chunks(mosaic, chunks, (ny, nx), out_dtype)

    keep = (diam >= dmin) & (diam < dmax)
    lat, lon, diam = lat[keep], lon[keep], diam[keep]
    # Global painting order: largest first, ties in catalog order (a stable sort).
    order = np.argsort(-diam, kind="stable")
    lat, lon, diam = lat[order], lon[order], diam[order]

    ppd_x = grid.px_per_deg()[0]
    period = 360.0 * ppd_x
    if abs(period - nx) <= 0.5:
        # A global grid: wrap by exactly nx pixels so copies land on whole pixels.
        period = float(nx)

    if lat.size:
        cx, cy = grid.lonlat_to_pixel(lon, lat)
        a, b = grid.km_to_pixels(diam / 2.0, lat)
    else:
        cx = cy = a = b = np.empty(0)
    cx, cy, a, b = (np.asarray(v, dtype=float) for v in (cx, cy, a, b))

    a_out, b_out, a_in, b_in = _semi_axes(kind, a, b, diam, inner_ratio, ring_width_px, threshold)
    segments = _segments(cx, cy, a_out, b_out, a_in, b_in, ny, nx, period)
    n_drawn = int(np.unique(segments[1]).size)
    if lat.size and not n_drawn:
        _warn_uncovered(grid, lat.size, lon, lat)
    elif lat.size:
        _warn_partly_covered(grid, catalog, lon, lat)
    table = segments[0]

    darr = _build_dask_array(table, out_chunks, out_dtype, period)

    attrs: dict[str, Any] = {
        "long_name": f"crater target ({kind})",
        "kind": kind,
        "n_craters": n_drawn,
    }
    if kind == "outline" or kind == "hybrid":
        attrs["inner_ratio"] = inner_ratio
    if kind == "ring":
        attrs["ring_width_px"] = ring_width_px
    if kind == "hybrid":
        attrs["hybrid_threshold_km"] = threshold
    # only finite bounds, so the attrs stay JSON/netCDF-safe
    if diameter_range is not None and diameter_range[0] is not None:
        attrs["diameter_min_km"] = dmin
    if diameter_range is not None and diameter_range[1] is not None:
        attrs["diameter_max_km"] = dmax

    coords = {"y": mosaic["y"].values, "x": mosaic["x"].values}
    da_out = xr.DataArray(darr, dims=("y", "x"), coords=coords, name="target", attrs=attrs)
    for dim in ("y", "x"):
        da_out[dim].attrs.update(mosaic[dim].attrs)
    import rioxarray  # noqa: F401  (registers .rio)

    da_out = da_out.rio.write_crs(mosaic.rio.crs)
    # the mosaic's own transform (its stored GeoTransform when it has one), not a recomputed one
    return da_out.rio.write_transform(mosaic.rio.transform())


# --------------------------------------------------------------------------------------------
# validation


def _check_args(
    kind: Any,
    inner_ratio: Any,
    ring_width_px: Any,
    hybrid_threshold_km: Any,
    diameter_range: Any,
    dtype: Any,
) -> tuple[str, float, float, float, float, float, np.dtype]:
    if not isinstance(kind, str) or kind not in TARGET_KINDS:
        raise InvalidArgumentError(
            f"kind={kind!r} is not a target kind. Use one of {', '.join(map(repr, TARGET_KINDS))}."
        )
    try:
        inner_ratio = float(inner_ratio)
        ring_width_px = float(ring_width_px)
        threshold = DEFAULT_HYBRID_THRESHOLD_KM if hybrid_threshold_km is None else float(hybrid_threshold_km)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"inner_ratio, ring_width_px and hybrid_threshold_km must be numbers: {exc}"
        ) from exc
    if not 0.0 < inner_ratio < 1.0:
        raise InvalidArgumentError(
            f"inner_ratio={inner_ratio!r} must lie strictly between 0 and 1 (the hole's size relative "
            "to the crater); 0.7 is the default."
        )
    if not (ring_width_px > 0.0 and math.isfinite(ring_width_px)):
        raise InvalidArgumentError(f"ring_width_px={ring_width_px!r} must be a positive number of pixels, e.g. 2.")
    if not (threshold > 0.0 and math.isfinite(threshold)):
        raise InvalidArgumentError(
            f"hybrid_threshold_km={hybrid_threshold_km!r} must be a positive diameter in km "
            f"(default {DEFAULT_HYBRID_THRESHOLD_KM})."
        )
    dmin, dmax = 0.0, math.inf
    if diameter_range is not None:
        try:
            lo, hi = diameter_range
            dmin = 0.0 if lo is None else float(lo)
            dmax = math.inf if hi is None else float(hi)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"diameter_range={diameter_range!r} must be a pair (min_km, max_km); either may be None."
            ) from exc
        if math.isnan(dmin) or math.isnan(dmax) or dmin < 0 or dmin >= dmax:
            # the rule of filter_catalog and catalog_pixels: min_km == max_km would draw nothing
            raise InvalidArgumentError(
                f"diameter_range={diameter_range!r} must satisfy 0 <= min_km < max_km."
            )
    try:
        out_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidArgumentError(f"dtype={dtype!r} is not a numpy dtype; use e.g. 'uint8' or 'float32'.") from exc
    if out_dtype.kind not in "biuf":
        raise InvalidArgumentError(f"dtype={dtype!r} must be a bool, integer or float dtype, e.g. 'uint8'.")
    return kind, inner_ratio, ring_width_px, threshold, dmin, dmax, out_dtype


def _catalog_arrays(catalog: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(catalog, pd.DataFrame):
        raise CatalogError(
            f"the catalog must be a (Geo)DataFrame with lat, lon and diameter_km columns, got "
            f"{type(catalog).__name__}; build one with marscraters.make_catalog(lat, lon, diameter_km)."
        )
    missing = [c for c in _REQUIRED_COLUMNS if c not in catalog.columns]
    if missing:
        raise CatalogError(
            f"the catalog lacks the column(s) {missing} (it has {list(catalog.columns)[:12]}). "
            "Targets need lat, lon (degrees east) and diameter_km; read files with "
            "marscraters.read_catalog, which renames the Robbins columns, or rename them yourself."
        )
    out = []
    for col in _REQUIRED_COLUMNS:
        try:
            values = pd.to_numeric(catalog[col], errors="raise").to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise CatalogValidationError(f"the catalog's {col!r} column is not numeric: {exc}") from exc
        out.append(values)
    lat, lon, diam = out
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & np.isfinite(diam))
    if bad.any():
        raise CatalogValidationError(
            f"{int(bad.sum())} catalog row(s) have a missing or infinite lat, lon or diameter_km "
            f"(first at positions {np.flatnonzero(bad)[:5].tolist()}); drop them, e.g. catalog.dropna()."
        )
    if (diam <= 0).any():
        raise CatalogValidationError(
            f"{int((diam <= 0).sum())} catalog row(s) have diameter_km <= 0 (first at positions "
            f"{np.flatnonzero(diam <= 0)[:5].tolist()}); every crater needs a positive diameter."
        )
    if (np.abs(lat) > 90).any():
        raise CatalogValidationError(
            f"{int((np.abs(lat) > 90).sum())} catalog row(s) have |lat| > 90 degrees (first at positions "
            f"{np.flatnonzero(np.abs(lat) > 90)[:5].tolist()}); are lat and lon swapped?"
        )
    return lat, lon, diam


def _grid_of(mosaic: Any) -> Grid:
    if not isinstance(mosaic, xr.Dataset | xr.DataArray):
        raise MosaicError(
            f"the mosaic must be an xarray Dataset or DataArray on (y, x), got {type(mosaic).__name__}; "
            "wrap a numpy image with marscraters.mosaic_from_array(array, bounds=...)."
        )
    grid = Grid.from_dataset(mosaic)
    grid.check_cylindrical()
    if grid.shape[0] == 0 or grid.shape[1] == 0:
        raise MosaicError(f"the mosaic is empty (shape {grid.shape}).")
    return grid


def _output_chunks(
    mosaic: Any, chunks: Any, shape: tuple[int, int], dtype: np.dtype
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    import dask.array as da

    source = mosaic["ir"] if isinstance(mosaic, xr.Dataset) and "ir" in mosaic else mosaic
    current = source.chunks if isinstance(source, xr.DataArray) else None
    if current is not None:
        axes = dict(zip(source.dims, current, strict=True))
        current = (axes["y"], axes["x"])
    if chunks is None:
        chunks = current if current is not None else shape
    elif isinstance(chunks, Mapping):
        unknown = set(chunks) - {"y", "x"}
        if unknown:
            raise InvalidArgumentError(
                f"chunks={chunks!r} names unknown dimension(s) {sorted(map(str, unknown))}; use 'y' and 'x'."
            )
        base = current if current is not None else shape
        chunks = tuple(chunks.get(dim, base[i]) for i, dim in enumerate(("y", "x")))
    try:
        return da.core.normalize_chunks(chunks, shape=shape, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"chunks={chunks!r} does not fit a {shape} grid: {exc}. Use e.g. 1024, (512, 2048) or "
            "{'y': 512, 'x': 512}."
        ) from exc


# --------------------------------------------------------------------------------------------
# geometry


def _semi_axes(
    kind: str,
    a: np.ndarray,
    b: np.ndarray,
    diam: np.ndarray,
    inner_ratio: float,
    ring_width_px: float,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outer and hole semi-axes per crater; a hole of semi-axes (0, 0) means no hole."""
    if kind == "ring":
        half = ring_width_px / 2.0
        a_out, b_out = a + half, b + half
        a_in, b_in = a - half, b - half
    else:
        a_out, b_out = a, b
        a_in, b_in = a * inner_ratio, b * inner_ratio
        if kind == "filled":
            a_in, b_in = np.zeros_like(a), np.zeros_like(b)
        elif kind == "hybrid":
            small = diam < threshold
            a_in, b_in = np.where(small, 0.0, a_in), np.where(small, 0.0, b_in)
    # a hole under one pixel across its narrow axis is not cut (see the module docs)
    no_hole = np.minimum(a_in, b_in) < 1.0
    return a_out, b_out, np.where(no_hole, 0.0, a_in), np.where(no_hole, 0.0, b_in)


def _segments(
    cx: np.ndarray,
    cy: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    a_in: np.ndarray,
    b_in: np.ndarray,
    ny: int,
    nx: int,
    period: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip every crater copy to the grid: a table of drawable segments, in painting order.

    Returns the ``(n, _NCOLS)`` float64 table and, per row, the index of its crater.  One crater
    gives one segment, or one per longitude copy that touches the grid (disjoint columns).
    """
    # rows: ellipse extent plus the centre pixel, clipped; latitude does not wrap
    rc = np.floor(cy + 0.5)
    r0 = np.maximum(np.minimum(np.ceil(cy - b), rc), 0.0)
    r1 = np.minimum(np.maximum(np.floor(cy + b), rc), ny - 1.0)
    on_rows = r0 <= r1

    # Columns.  Wider than one period (only near the poles): one full-width segment whose x
    # distance is taken modulo the period; otherwise one segment per copy cx + k*period.
    wide = on_rows & (2.0 * a + 1.0 >= period)
    narrow = np.flatnonzero(on_rows & ~wide)
    reach = np.maximum(a[narrow], 0.5) + 1.0
    kmin = np.ceil((-reach - cx[narrow]) / period).astype(np.int64)
    kmax = np.floor((nx - 1.0 + reach - cx[narrow]) / period).astype(np.int64)
    nk = np.maximum(kmax - kmin + 1, 0)
    idx = np.repeat(narrow, nk)
    k = np.repeat(kmin, nk) + (np.arange(idx.size) - np.repeat(np.cumsum(nk) - nk, nk))
    cxk = cx[idx] + k * period
    cc = np.floor(cxk + 0.5)
    c0 = np.maximum(np.minimum(np.ceil(cxk - a[idx]), cc), 0.0)
    c1 = np.minimum(np.maximum(np.floor(cxk + a[idx]), cc), nx - 1.0)
    hit = c0 <= c1
    idx, cxk, cc, c0, c1 = idx[hit], cxk[hit], cc[hit], c0[hit], c1[hit]

    widx = np.flatnonzero(wide)
    crater = np.concatenate([idx, widx])
    table = np.empty((crater.size, _NCOLS))
    table[:, _R0] = r0[crater]
    table[:, _R1] = r1[crater]
    table[:, _C0] = np.concatenate([c0, np.zeros(widx.size)])
    table[:, _C1] = np.concatenate([c1, np.full(widx.size, nx - 1.0)])
    table[:, _CX] = np.concatenate([cxk, cx[widx]])
    table[:, _CY] = cy[crater]
    table[:, _AO] = a[crater]
    table[:, _BO] = b[crater]
    table[:, _AI] = a_in[crater]
    table[:, _BI] = b_in[crater]
    table[:, _RC] = rc[crater]
    # the centre pixel of a wide crater: its column modulo the period
    table[:, _CC] = np.concatenate([cc, np.floor(cx[widx] + 0.5) % period])
    table[:, _WRAP] = np.concatenate([np.zeros(idx.size), np.ones(widx.size)])
    # painting order = crater order (already sorted), copies of one crater in column order
    sort = np.lexsort((table[:, _C0], crater))
    return table[sort], crater[sort]


# --------------------------------------------------------------------------------------------
# dask graph and the per-chunk renderer


def _build_dask_array(
    table: np.ndarray,
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
    dtype: np.dtype,
    period: float,
) -> Any:
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    ybounds = np.concatenate([[0], np.cumsum(chunks[0])])
    xbounds = np.concatenate([[0], np.cumsum(chunks[1])])
    nyc, nxc = len(chunks[0]), len(chunks[1])

    # Bucket each segment into every chunk its bounding box touches.
    iy0 = np.searchsorted(ybounds, table[:, _R0], side="right") - 1
    iy1 = np.searchsorted(ybounds, table[:, _R1], side="right") - 1
    ix0 = np.searchsorted(xbounds, table[:, _C0], side="right") - 1
    ix1 = np.searchsorted(xbounds, table[:, _C1], side="right") - 1
    span_x = ix1 - ix0 + 1
    count = (iy1 - iy0 + 1) * span_x
    seg = np.repeat(np.arange(table.shape[0]), count)
    local = np.arange(seg.size) - np.repeat(np.cumsum(count) - count, count)
    chunk_id = (iy0[seg] + local // span_x[seg]) * nxc + ix0[seg] + local % span_x[seg]
    # by chunk, then global painting order (= segment order)
    sort = np.lexsort((seg, chunk_id))
    seg, chunk_id = seg[sort], chunk_id[sort]
    starts = np.searchsorted(chunk_id, np.arange(nyc * nxc + 1))

    # the segment table, chunks, dtype and period determine every pixel
    name = "target-" + tokenize(table, chunks, str(dtype), period)
    dsk: dict[tuple[str, int, int], Any] = {}
    for iy in range(nyc):
        for ix in range(nxc):
            cid = iy * nxc + ix
            shape = (int(chunks[0][iy]), int(chunks[1][ix]))
            lo, hi = starts[cid], starts[cid + 1]
            if lo == hi:
                dsk[(name, iy, ix)] = (partial(np.zeros, shape, dtype),)
            else:
                # a copy, so that the task holds only its own craters
                rows = np.ascontiguousarray(table[seg[lo:hi]])
                render = partial(
                    _render_block, y0=int(ybounds[iy]), x0=int(xbounds[ix]), shape=shape, dtype=dtype, period=period
                )
                dsk[(name, iy, ix)] = (render, rows)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks, meta=np.empty((0, 0), dtype=dtype))


def _render_block(
    segments: np.ndarray, *, y0: int, x0: int, shape: tuple[int, int], dtype: np.dtype, period: float
) -> np.ndarray:
    """Paint ``segments`` (in order) onto a zero block whose top-left pixel is (row y0, col x0)."""
    out = np.zeros(shape, dtype=dtype)
    h, w = shape
    y1, x1 = y0 + h - 1, x0 + w - 1
    half = period / 2.0
    for r0, r1, c0, c1, cx, cy, ao, bo, ai, bi, rc, cc, wrap in segments.tolist():
        r0, r1 = max(int(r0), y0), min(int(r1), y1)
        c0, c1 = max(int(c0), x0), min(int(c1), x1)
        if r0 > r1 or c0 > c1:
            continue
        dx = np.arange(c0, c1 + 1, dtype=float) - cx
        if wrap:
            dx = (dx + half) % period - half
        dx2_out = (dx / ao) ** 2
        dx2_in = (dx / ai) ** 2 if ai > 0 else None
        step = max(1, _STRIP_PIXELS // (c1 - c0 + 1))
        for s0 in range(r0, r1 + 1, step):
            s1 = min(s0 + step - 1, r1)
            dy = np.arange(s0, s1 + 1, dtype=float) - cy
            view = out[s0 - y0 : s1 - y0 + 1, c0 - x0 : c1 - x0 + 1]
            view[((dy / bo) ** 2)[:, None] + dx2_out[None, :] <= 1.0] = 1
            if s0 <= rc <= s1 and c0 <= cc <= c1:
                out[int(rc) - y0, int(cc) - x0] = 1
            if dx2_in is not None:
                view[((dy / bi) ** 2)[:, None] + dx2_in[None, :] <= 1.0] = 0
    return out


def _pixel_circles(craters: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``y`` and ``diameter_px`` of pixel craters as float arrays (a clear error if missing)."""
    missing = [c for c in ("x", "y", "diameter_px") if c not in getattr(craters, "columns", ())]
    if missing:
        raise CatalogError(f"pixel craters need columns x, y, diameter_px; missing {missing}")
    return tuple(np.asarray(craters[c], dtype=float) for c in ("x", "y", "diameter_px"))


def draw_targets(
    shape: tuple[int, int],
    craters: Any,
    kind: str = "filled",
    *,
    inner_ratio: float = 0.7,
    ring_width_px: float = 2.0,
    hybrid_threshold_px: float = 32.0,
    dtype: Any = "uint8",
) -> np.ndarray:
    """Draw pixel-space craters (a PixelCraters frame) onto a ``shape`` array, eagerly.

    This is the image-chip counterpart of :func:`render_targets`: same kinds, same inclusion rule
    and painting order, same drawing code, but circles given directly in pixels (``x``, ``y``,
    ``diameter_px``) instead of a catalog on a georeferenced grid.  Used for training on
    labelled chips and for scoring on plain images.

    Parameters
    ----------
    shape
        ``(rows, cols)`` of the output.
    craters
        DataFrame with ``x``, ``y`` (pixel index coordinates) and ``diameter_px``.
    kind
        One of :data:`TARGET_KINDS`.
    inner_ratio, ring_width_px
        As in :func:`render_targets`.
    hybrid_threshold_px
        ``hybrid`` draws outlines for craters of at least this many pixels across.
    dtype
        Output dtype.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> t = draw_targets((64, 64), pd.DataFrame({"x": [32.0], "y": [32.0], "diameter_px": [20.0]}))
    >>> int(t[32, 32]), int(t[0, 0])
    (1, 0)
    """
    kind, inner_ratio, ring_width_px, threshold, _, _, out_dtype = _check_args(
        kind, inner_ratio, ring_width_px, hybrid_threshold_px, None, dtype
    )
    ny, nx = (int(v) for v in shape)
    x, y, d = _pixel_circles(craters)
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(d).all() and (d > 0).all()):
        raise CatalogValidationError("pixel craters must have finite x, y and diameter_px > 0")
    order = np.argsort(-d, kind="stable")
    x, y, d = x[order], y[order], d[order]
    a_out, b_out, a_in, b_in = _semi_axes(kind, d / 2, d / 2, d, inner_ratio, ring_width_px, threshold)
    # an image chip does not wrap: a period far beyond the image keeps one copy per crater
    period = float(10 * (nx + ny) + 10 * (d.max() if d.size else 0.0) + 1e6)
    table, _ = _segments(x, y, a_out, b_out, a_in, b_in, ny, nx, period)
    return _render_block(table, y0=0, x0=0, shape=(ny, nx), dtype=out_dtype, period=period)


def crater_weights(
    shape: tuple[int, int],
    craters: Any,
    *,
    reference_diameter_px: float,
    min_diameter_px: float = 10.0,
    extent: float = 1.25,
) -> np.ndarray:
    """Per-pixel loss weights that give small craters a voice in a pixel loss.

    A crater's pixels in a pixel loss grow with its area, so one 300-pixel crater outweighs
    hundreds of 18-pixel ones, while a crater catalog counts each once.  Every pixel within
    ``extent`` radii of a crater of diameter ``d`` (``min_diameter_px <= d <
    reference_diameter_px``) gets the weight ``reference_diameter_px / d`` (the largest where
    craters overlap); all other pixels get 1.  Craters below ``min_diameter_px`` keep weight 1:
    catalogs are incomplete there, and the unlabelled ones look the same.

    Parameters
    ----------
    shape
        ``(rows, cols)`` of the output.
    craters
        DataFrame with ``x``, ``y`` (pixel index coordinates) and ``diameter_px``.
    reference_diameter_px
        Craters this size or larger keep weight 1 (> 0).
    min_diameter_px
        Smallest crater weighted.
    extent
        Radius of the weighted disk, in crater radii: the rim and a little outside it (> 0).

    Returns
    -------
    numpy.ndarray
        float32 weights, at least 1.

    Examples
    --------
    >>> w = crater_weights((64, 64), pd.DataFrame({"x": [32.0], "y": [32.0], "diameter_px": [16.0]}),
    ...                    reference_diameter_px=64)
    >>> float(w[32, 32]), float(w[0, 0])
    (4.0, 1.0)
    """
    for name, value in (("reference_diameter_px", reference_diameter_px), ("extent", extent)):
        if not (np.isfinite(value) and value > 0):
            raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}")
    x, y, d = _pixel_circles(craters)
    ny, nx = (int(v) for v in shape)
    out = np.ones((ny, nx), dtype=np.float32)
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(d) & (d >= min_diameter_px) & (d < reference_diameter_px)
    for cx, cy, dd in zip(x[keep], y[keep], d[keep]):
        r = extent * dd / 2
        r0, r1 = max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)) + 1, ny)
        c0, c1 = max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)) + 1, nx)
        if r0 >= r1 or c0 >= c1:
            continue
        yy, xx = np.ogrid[r0:r1, c0:c1]
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        block = out[r0:r1, c0:c1]
        np.maximum(block, np.where(inside, np.float32(reference_diameter_px / dd), np.float32(1.0)), out=block)
    return out


def _warn_uncovered(grid: Grid, n: int, lon: np.ndarray, lat: np.ndarray) -> None:
    """Empty labels from a non-empty catalog are almost always the wrong catalog (tile, convention)."""
    import warnings

    ny, nx = grid.shape
    (w, e), (n_, s) = (np.asarray(v, dtype=float) for v in grid.pixel_to_lonlat([-0.5, nx - 0.5], [-0.5, ny - 0.5]))
    warnings.warn(
        f"none of the catalog's {n} craters lies on the mosaic (lon {float(w):.3f}..{float(e):.3f}, lat "
        f"{float(s):.3f}..{float(n_):.3f}); the catalog spans lon {np.nanmin(lon):.3f}..{np.nanmax(lon):.3f}, lat "
        f"{np.nanmin(lat):.3f}..{np.nanmax(lat):.3f}. Give a catalog that covers the mosaic (the right tile of a "
        "tiled catalog), or check its longitude convention; the targets are empty.", UserWarning, stacklevel=3)


#: A mosaic may reach this many pixels past its catalog's area before it is said to (the index's
#: rounded degrees, and the last crater's distance from a tiled catalog's edge).
_COVER_MARGIN_PX = 4.0
#: Without a declared area, a catalog's craters "clearly stop short" of a side of the mosaic when
#: the strip past them is this many times their mean spacing along that axis (for evenly spread
#: craters, a gap that wide happens by chance with odds of about e**-10)...
_COVER_SPACINGS = 10.0
#: ...and the catalog spans at least this many times the mosaic along that axis (a tile of a
#: larger map, not a catalog counted on this mosaic, whose craters may well stop short of its edge).
_COVER_SPAN_FACTOR = 3.0


def _uncovered_strips(grid: Grid, catalog: pd.DataFrame, lon: np.ndarray, lat: np.ndarray) -> tuple[list[str], str]:
    """The parts of the mosaic beyond its catalog's area (``"lon a..b"``, ``"lat c..d"``), and
    what that area is.

    The area is the catalog's declared footprint (``attrs["footprint"]``, a lon/lat polygon, as
    the catalogs made from a mosaic record) when it has one; otherwise the lon/lat span of its
    craters (wrap-aware in longitude), where a side counts only when the craters clearly stop
    short of it (:data:`_COVER_SPACINGS`, :data:`_COVER_SPAN_FACTOR`).
    """
    from .catalog import _footprint

    ny, nx = grid.shape
    (w, _), (n_, s) = (np.asarray(v, dtype=float) for v in grid.pixel_to_lonlat([-0.5, nx - 0.5], [-0.5, ny - 0.5]))
    w, n_, s = float(w), float(n_), float(s)
    ppd_x, ppd_y = grid.px_per_deg()
    width, height = nx / ppd_x, ny / ppd_y  # degrees
    footprint = _footprint(catalog.attrs)
    strips: list[str] = []
    if footprint is not None:
        import shapely

        if nx <= 2 * _COVER_MARGIN_PX or ny <= 2 * _COVER_MARGIN_PX:
            return [], ""
        # a lattice of the mosaic's points at least the margin inside its edges
        cols = np.linspace(_COVER_MARGIN_PX - 0.5, nx - 0.5 - _COVER_MARGIN_PX, min(nx, 65))
        rows = np.linspace(_COVER_MARGIN_PX - 0.5, ny - 0.5 - _COVER_MARGIN_PX, min(ny, 65))
        cc, rr = np.meshgrid(cols, rows)
        plon, plat = (np.asarray(v, dtype=float) for v in grid.pixel_to_lonlat(cc.ravel(), rr.ravel()))
        inside = np.zeros(plon.shape, dtype=bool)
        for turn in (-360.0, 0.0, 360.0):  # the footprint may be in the other longitude convention
            inside |= shapely.intersects_xy(footprint, plon + turn, plat)  # its edge counts as inside
        if inside.all():
            return [], ""
        out_c, out_r = cc.ravel()[~inside], rr.ravel()[~inside]
        west, east = w + (out_c.min() + 0.5) / ppd_x, w + (out_c.max() + 0.5) / ppd_x
        north, south = n_ - (out_r.min() + 0.5) / ppd_y, n_ - (out_r.max() + 0.5) / ppd_y
        strips.append(f"lon {west:.3f}..{east:.3f}, lat {south:.3f}..{north:.3f}")
        minx, miny, maxx, maxy = footprint.bounds
        return strips, f"the catalog's footprint (lon {minx:.3f}..{maxx:.3f}, lat {miny:.3f}..{maxy:.3f})"
    n = lon.size
    # longitude: the shortest arc holding every crater, from the end of the largest gap between them
    lons = np.sort(np.mod(lon, 360.0))
    gaps = np.diff(np.append(lons, lons[0] + 360.0))
    j = int(np.argmax(gaps))
    start, arc = float(lons[(j + 1) % n]), 360.0 - float(gaps[j])
    if arc >= _COVER_SPAN_FACTOR * width:
        rel = (w + width / 2 - start) % 360.0
        rel = rel - 360.0 if rel > arc / 2 + 180.0 else rel  # the mosaic's centre, nearest the arc
        limit = max(_COVER_MARGIN_PX / ppd_x, _COVER_SPACINGS * arc / (n + 1))
        west_strip = min(max(0.0, width / 2 - rel), width)
        east_strip = min(max(0.0, rel + width / 2 - arc), width)
        if west_strip > limit:
            strips.append(f"lon {w:.3f}..{w + west_strip:.3f} (its west {west_strip * ppd_x:.0f} px)")
        if east_strip > limit:
            strips.append(f"lon {w + width - east_strip:.3f}..{w + width:.3f} (its east {east_strip * ppd_x:.0f} px)")
    span = float(lat.max() - lat.min())
    if span >= _COVER_SPAN_FACTOR * height:
        # gaps in sin(latitude): craters spread over the area thin out in degrees of latitude towards
        # the poles, where a tile would otherwise seem to reach past a global catalog
        sl = np.sin(np.radians(lat))
        spacing = _COVER_SPACINGS * float(sl.max() - sl.min()) / (n + 1)
        north_strip = min(max(0.0, n_ - float(lat.max())), height)
        south_strip = min(max(0.0, float(lat.min()) - s), height)
        if north_strip > _COVER_MARGIN_PX / ppd_y and math.sin(math.radians(n_)) - float(sl.max()) > spacing:
            strips.append(f"lat {n_ - north_strip:.3f}..{n_:.3f} (its north {north_strip * ppd_y:.0f} px)")
        if south_strip > _COVER_MARGIN_PX / ppd_y and float(sl.min()) - math.sin(math.radians(s)) > spacing:
            strips.append(f"lat {s:.3f}..{s + south_strip:.3f} (its south {south_strip * ppd_y:.0f} px)")
    # in the -180..180 convention, as the mosaic's longitudes above
    west_end, east_end = ((v + 180.0) % 360.0 - 180.0 for v in (start, start + arc))
    return strips, (f"the catalog's craters (lon {west_end:.3f}..{east_end:.3f}, lat {float(lat.min()):.3f}.."
                    f"{float(lat.max()):.3f})")


def _warn_partly_covered(grid: Grid, catalog: pd.DataFrame, lon: np.ndarray, lat: np.ndarray) -> None:
    """Warn when the mosaic reaches beyond the catalog's area: a tiled catalog's neighbouring tile
    is missing, and the craters there would be trained as crater-free ground."""
    import warnings

    strips, area = _uncovered_strips(grid, catalog, lon, lat)
    if strips:
        warnings.warn(
            f"the mosaic reaches beyond {area}: {'; '.join(strips)} of it lie(s) outside, so its craters there get "
            "no labels or targets, and a model trained on it learns them as crater-free ground. Add the "
            "neighbouring tile of a tiled catalog (for the Robbins CSV tiles, one CSV with both tiles' rows), or "
            "use only the part of the mosaic the catalog covers.", UserWarning, stacklevel=3)


def catalog_pixels(
    mosaic: xr.Dataset | xr.DataArray,
    catalog: pd.DataFrame,
    *,
    diameter_range: tuple[float | None, float | None] | None = None,
    inside: str = "centre",
) -> pd.DataFrame:
    """A catalog's craters on a mosaic's grid, as PixelCraters (the labels of a georeferenced image).

    Centres go through :meth:`marscraters.crs.Grid.lonlat_to_pixel` and sizes through
    :meth:`~marscraters.crs.Grid.km_to_pixels`, the same mapping :func:`render_targets` draws with,
    so these craters are the target layer's craters.  On an equirectangular grid a crater is an
    ellipse ``width_px`` wide and ``height_px`` tall; ``diameter_px`` is the mean of the two, the
    convention of the chips' YOLO boxes (:mod:`marscraters.chips`).

    Parameters
    ----------
    mosaic
        A Mosaic, or any georeferenced DataArray on ``(y, x)``; only its grid is used.
    catalog
        A Catalog, or a DataFrame with ``lat``, ``lon`` and ``diameter_km``.
    diameter_range
        ``(min_km, max_km)``, the rule of :func:`marscraters.catalog.filter_catalog`.
    inside
        ``"centre"`` (default): craters whose centre lies on the grid, as scores count them;
        ``"overlap"``: also craters centred off the grid whose rim reaches into it (what the
        targets of an image's edge show).

    Returns
    -------
    pandas.DataFrame
        ``x``, ``y``, ``diameter_px``, ``width_px``, ``height_px`` and the catalog's
        ``diameter_km`` (and ``crater_id`` when it has one), in the catalog's order.  Without
        ``lat``/``lon`` it is plain PixelCraters, so :func:`marscraters.evaluate` compares it with
        detections on the image.

    Examples
    --------
    >>> from marscraters import make_catalog, mosaic_from_array
    >>> ds = mosaic_from_array(np.zeros((100, 100)), bounds=(0, 0, 1, 1))
    >>> catalog_pixels(ds, make_catalog([0.5], [0.5], [10.0]))[["x", "y"]].round(2).values.tolist()
    [[49.5, 49.5]]
    """
    if inside not in ("centre", "overlap"):
        raise InvalidArgumentError(f"inside must be 'centre' or 'overlap', got {inside!r}")
    grid = _grid_of(mosaic)
    lat, lon, diam = _catalog_arrays(catalog)
    keep = np.ones(lat.size, dtype=bool)
    if diameter_range is not None:
        lo, hi = diameter_range
        if lo is not None and hi is not None and not float(lo) < float(hi):
            # filter_catalog's rule and message (an inverted range would keep nothing, silently)
            raise InvalidArgumentError(f"diameter_range must have min < max, got {diameter_range!r}")
        if lo is not None:
            keep &= diam >= float(lo)
        if hi is not None:
            keep &= diam < float(hi)
    cx, cy = (np.asarray(v, dtype=float) for v in grid.lonlat_to_pixel(lon, lat))
    w, h = (np.asarray(v, dtype=float) for v in grid.km_to_pixels(diam, lat))
    ny, nx = grid.shape
    reach_x, reach_y = (w / 2, h / 2) if inside == "overlap" else (0.0, 0.0)
    with np.errstate(invalid="ignore"):
        near = (cx >= -0.5 - w / 2) & (cx < nx - 0.5 + w / 2) & (cy >= -0.5 - h / 2) & (cy < ny - 0.5 + h / 2)
        keep &= (cx >= -0.5 - reach_x) & (cx < nx - 0.5 + reach_x) & (cy >= -0.5 - reach_y) & (cy < ny - 0.5 + reach_y)
    if lat.size and not near.any():
        _warn_uncovered(grid, lat.size, lon, lat)
    elif lat.size:
        _warn_partly_covered(grid, catalog, lon, lat)
    out = pd.DataFrame({"x": cx, "y": cy, "diameter_px": (w + h) / 2.0, "width_px": w, "height_px": h,
                        "diameter_km": diam})
    if "crater_id" in catalog.columns:
        out["crater_id"] = catalog["crater_id"].to_numpy()
    return out[keep].reset_index(drop=True)
