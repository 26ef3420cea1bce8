"""From a crater probability map to one seamless, georeferenced catalog.

:func:`catalog_from_probability` cuts a (possibly lazy, possibly huge) ``crater_probability``
DataArray into blocks of about :data:`WORK_BLOCK_PX` pixels (:func:`work_blocks`), runs the circle
finder (:func:`marscraters.extract.extract_craters`) on every block read with a *halo* of
neighbouring pixels, keeps the craters whose centre lies in the block's own *core*, removes the
duplicates found by two neighbouring blocks with :func:`~marscraters.extract.nms_circles`, and
georeferences the result with :func:`~marscraters.extract.to_catalog`.

The blocks depend on the map's shape and grid only, never on its dask or Zarr chunks: a store
written in 64-px chunks is read as one in 1024-px chunks is, in the same few windows, and gives
the same catalog (each window has a halo of ~176 px, so taking 64-px storage chunks as the units
of work did ~30 times the work).

Why the result does not depend on the blocks either:

* the halo is wider than half the largest crater searched plus the finder's own reach, so a
  crater centred in a core is seen whole, with the same surroundings, whatever the chunking;
* ``max_diameter_px`` is fixed (:data:`DEFAULT_MAX_DIAMETER_PX` unless given), instead of the
  finder's default of "the map's smaller side", which would change with the chunk size;
* every window starts on a multiple of the coarsest downsampling factor of the finder's scale
  plan, so the downsampled copies of the map are on the same pixel lattice in every window;
* a crater is kept by a chunk when its centre lies within :data:`CORE_MARGIN_PX` of the core, so
  one found a hair across the border is never lost; the copies are removed by the same
  duplicate rule as the finder's.

``marscraters catalog pred.zarr --out craters.gpkg`` is the command-line form
(:func:`add_catalog_parser`, :func:`run_catalog_cli`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import math
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InvalidArgumentError, MosaicError

__all__ = [
    "DEFAULT_MAX_DIAMETER_PX",
    "CORE_MARGIN_PX",
    "WORK_BLOCK_PX",
    "catalog_from_probability",
    "catalog_from_mosaic",
    "default_halo",
    "window_aspect",
    "work_blocks",
    "add_catalog_parser",
    "run_catalog_cli",
]

#: Largest crater searched when neither the call nor the model says (256 px: 59 km at the
#: 256 px/deg global mosaic, 26 km at THEMIS' native 100 m/px -- the paper's 2-32 km range).
DEFAULT_MAX_DIAMETER_PX: float = 256.0
#: A chunk keeps craters centred up to this many pixels outside its core (then deduplicated).
CORE_MARGIN_PX: float = 2.0
#: Craters less than this much wider than tall (in pixels) are left to the circle finder as
#: they are (1.02: within about 11 deg of a geographic grid's equator).
ASPECT_TOLERANCE: float = 0.02
#: Side of the blocks the circle finder works on (pixels, before the halo): a 2048-px core with
#: the default 176-px halo is a 2400-px window, ~6 Mpx, for which the finder needs a few hundred
#: MB (one window per dask thread), and the halo adds 37 % to the work (1024 px: 80 %).
WORK_BLOCK_PX: int = 2048
#: A catalog whose mosaic holds no image data over more than this share of its grid warns that its
#: count area (the whole footprint) is too large for its craters.
NODATA_WARN_SHARE: float = 0.05
# Block borders fall on multiples of this many pixels.
_WORK_STEP = 16
# What the finder reads beyond a crater's rim: smoothing, the 4-px relative-threshold window,
# template padding.
_FINDER_REACH_PX: int = 16
_VARIABLE = "crater_probability"


def _as_probability(prob: Any) -> xr.DataArray:
    if isinstance(prob, (str, os.PathLike)):
        # paths are opened by the caller (as mosaic= paths are), so the store's options stay theirs
        raise InvalidArgumentError(
            f"prob must be the probability map, not the path {os.fspath(prob)!r}: open the store first, "
            f"xr.open_zarr({os.fspath(prob)!r}, decode_coords='all'), and pass that.")
    if (isinstance(prob, xr.Dataset) and _VARIABLE not in prob.data_vars and "ir" in prob.data_vars) or (
            isinstance(prob, xr.DataArray) and prob.name == "ir"):
        # the mosaic's grey levels, not the network's map of them
        raise InvalidArgumentError(
            "this is a mosaic (its 'ir' grey levels), not a crater probability map: segment it first, "
            "marscraters.segment_to_zarr(ds, 'pred.zarr') (command line: `marscraters segment cube.zarr --out "
            "pred.zarr`), then make the catalog from pred.zarr with the mosaic for its verifier "
            "(`marscraters catalog pred.zarr --mosaic cube.zarr`); or make it in one go with ds.craters.catalog()")
    if isinstance(prob, xr.Dataset):
        if _VARIABLE in prob.data_vars:
            prob = prob[_VARIABLE]
        elif len(prob.data_vars) == 1:
            prob = prob[next(iter(prob.data_vars))]
        else:
            raise InvalidArgumentError(
                f"the Dataset has no {_VARIABLE!r} variable (it has {list(prob.data_vars)}); pass the "
                "probability DataArray itself, e.g. ds['crater_probability']."
            )
    if not isinstance(prob, xr.DataArray):
        raise InvalidArgumentError(
            f"prob must be a georeferenced xarray DataArray on (y, x) (what marscraters.segment returns), "
            f"got {type(prob).__name__}; for a plain array use marscraters.extract.extract_craters."
        )
    extra = [d for d in prob.dims if d not in ("y", "x")]
    for d in extra:
        if prob.sizes[d] != 1:
            raise MosaicError(f"prob has dims {tuple(prob.dims)}; it must be 2-D on (y, x) (select one {d!r}).")
    if extra:
        prob = prob.squeeze(extra, drop=True)
    if set(prob.dims) != {"y", "x"}:
        raise MosaicError(f"prob must have dims ('y', 'x'), got {tuple(prob.dims)}; rename them first.")
    return prob.transpose("y", "x")


def _check_mosaic_arg(mosaic: Any) -> None:
    """Refuse a path as ``mosaic=``: it is opened by the caller, as a ``prob=`` path is."""
    if isinstance(mosaic, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"mosaic must be the mosaic Dataset, not the path {os.fspath(mosaic)!r}: open the cube first, "
            f"mosaic=marscraters.open_mosaic({os.fspath(mosaic)!r}).")


def _check_same_place(prob: xr.DataArray, mosaic: Any, grid: Any) -> None:
    """Refuse a mosaic of the probability map's shape that lies elsewhere (or in another CRS).

    The craters are placed on the mosaic's grid and verified on its image, so another mosaic of
    the same size would silently move every crater there.  A map without coordinates (a bare
    array) has only its shape to check.
    """
    from .crs import Grid

    if getattr(prob, "rio", None) is not None and prob.rio.crs is not None:
        own = Grid.from_dataset(prob)
        if not own.crs.equals(grid.crs, ignore_axis_order=True):
            raise MosaicError(
                f"the probability map is in another CRS ({own.crs.name!r}) than the mosaic ({grid.crs.name!r}): "
                "pass the mosaic the probability was computed on (the cube `marscraters segment` read).")
    coords = getattr(mosaic, "coords", {})
    for axis, step in (("x", grid.transform.a), ("y", grid.transform.e)):
        if axis not in prob.coords or axis not in coords:
            continue
        mine, theirs = np.asarray(prob[axis].values, float), np.asarray(mosaic[axis].values, float)
        # a hundredth of a pixel: the same grid written and read back, not a neighbouring one
        if mine.shape == theirs.shape and not np.allclose(mine, theirs, rtol=0.0, atol=0.01 * abs(step)):
            raise MosaicError(
                f"the probability map lies elsewhere than the mosaic: its {axis} runs {mine[0]:.6g}..{mine[-1]:.6g}, "
                f"the mosaic's {theirs[0]:.6g}..{theirs[-1]:.6g} ({'degrees' if grid.is_geographic else 'metres'}); "
                "pass the mosaic the probability was computed on (the cube `marscraters segment` read).")


def _resolve_model(model: Any, prob: xr.DataArray) -> Any:
    # the store records the model file that made it; use it when it is still there, and still that model
    if model is None:
        path = prob.attrs.get("model_file")
        if isinstance(path, str) and path and Path(path).is_file() and Path(path).suffix == ".keras":
            from .model import read_model_metadata

            made, now = str(prob.attrs.get("model_saved_at") or ""), str(read_model_metadata(path).get("saved_at") or "")
            if made and now and made != now:
                # a run that went on training in the same folder: its kind and finder settings are not the map's
                raise InvalidArgumentError(
                    f"{path} was saved again ({now}) after it made this probability map ({made}), so its kind and "
                    "circle-finder settings may not be the map's. Give the model that made the map (CLI: --model "
                    "FILE; Python: model=), or segment the mosaic again with the model as it is now.")
            return path
    return model


class _OtherModel(NamedTuple):
    """The model that made a probability map, when the caller gave another one (file or version)."""

    made: str  # the map's model, as a label (name, file, when saved)
    given: str  # the caller's
    usable: str | None  # the map's model file, when it is still there and still that model


def _model_label(path: Any, name: Any = None, saved_at: Any = None) -> str:
    when = f", saved {saved_at}" if saved_at else ""
    return f"{name or Path(path).stem} ({os.fspath(path)}{when})"


def _same_file(a: Any, b: Any) -> bool:
    import filecmp

    pa, pb = Path(a), Path(b)
    return pa.resolve() == pb.resolve() or (pa.is_file() and pb.is_file() and filecmp.cmp(pa, pb, shallow=False))


def _other_model(model: Any, prob: xr.DataArray) -> _OtherModel | None:
    """What ``prob`` records of its model, when ``model`` (the caller's file) is another file or
    version of one; None when they are the same, or nothing can be compared (no model given, an
    in-memory model, a map that records no model file)."""
    from .model import read_model_metadata

    made = prob.attrs.get("model_file")
    if not isinstance(model, (str, os.PathLike)) or not isinstance(made, str) or not made:
        return None
    given_meta = read_model_metadata(model)
    made_at, given_at = str(prob.attrs.get("model_saved_at") or ""), str(given_meta.get("saved_at") or "")
    # a copy of the model file (another path, the same save) is the same model
    same = made_at == given_at if made_at and given_at else _same_file(made, model)
    if same:
        return None
    usable = None
    made_meta: dict[str, Any] = {}
    if Path(made).is_file() and Path(made).suffix == ".keras":
        made_meta = read_model_metadata(made)
        now = str(made_meta.get("saved_at") or "")
        usable = made if not (made_at and now and made_at != now) else None
    made_name = made_meta.get("name") if usable else None
    return _OtherModel(_model_label(made, made_name or prob.attrs.get("model_name"), made_at),
                       _model_label(model, given_meta.get("name"), given_at), usable)


def _warn_other_model(other: _OtherModel, coarser: str | None = None) -> None:
    """Say which model did what when the caller's model is not the map's; ``coarser``: the model
    that segments the pyramid's coarser levels (None: no coarser level is segmented)."""
    if coarser is None:
        levels = ""
    elif coarser == other.usable:
        levels = "; the coarser pyramid levels are segmented with the map's model, as the map was"
    else:
        levels = (f"; the map's model file is gone or was saved again since, so the coarser pyramid levels are "
                  f"segmented with {other.given}")
    warnings.warn(
        f"the probability map was made by {other.made}, but the model given is {other.given}: the given model's "
        f"circle-finder settings and crater verifier read the map, and the catalog names it as its model{levels}. "
        "Leave out model= (CLI: --model) to use the map's own model throughout, or segment the mosaic again with the "
        "given model.", UserWarning, stacklevel=3)


def _verification(verify: Any, model_file: Any, mosaic: Any, grid: Any,
                  value_range: Any = None) -> tuple[Any, Any, Any, Any]:
    """(what the workers load, the Verifier, the image as a dask array, its no-data fill) -- or Nones."""
    import dask.array as da

    from .model import mosaic_value_range, read_model_metadata
    from .verify import Verifier, resolve_verifier, verifier_of

    if verify is False:
        return None, None, None, None
    path = model_file if isinstance(model_file, (str, os.PathLike)) else None
    ir = mosaic["ir"] if isinstance(mosaic, xr.Dataset) and "ir" in mosaic.data_vars else None
    if ir is not None:
        ir = ir.squeeze(drop=True)
        ir = ir.transpose("y", "x") if set(ir.dims) == {"y", "x"} else None
    if ir is None or tuple(ir.shape) != grid.shape:
        if verify is None:
            # look before loading anything: a model naming no verifier needs no image
            if read_model_metadata(path).get("verifier"):
                import warnings

                warnings.warn("the model's crater verifier needs the image: pass mosaic=<the mosaic Dataset with "
                              "'ir'> to verify the craters; this catalog is unverified (more false craters).",
                              stacklevel=4)
            return None, None, None, None
        raise InvalidArgumentError("verify needs the image: pass mosaic=<the mosaic Dataset with 'ir' on the "
                                   "probability's grid>, or verify=False")
    if isinstance(verify, Verifier):
        vref: Any = verify
    elif isinstance(verify, (str, os.PathLike)):
        vref = os.fspath(verify)
    else:
        found = verifier_of(path)
        if found is None:
            if verify is True:
                resolve_verifier(True, path)  # raises, naming the fix
            return None, None, None, None
        vref = os.fspath(found)
    verifier = resolve_verifier(vref, None)
    data = ir.data if isinstance(ir.data, da.Array) else da.from_array(np.asarray(ir.data), chunks=-1)
    data = data.astype(np.float32)
    # the grey scale segmentation gave the network, which the verifier learned on: the one the
    # store records, else (a store of a lazy segment()) the same rule on the same mosaic
    lo, hi = mosaic_value_range(data, value_range, stacklevel=5)
    data = da.clip((data - lo) / (hi - lo), 0.0, 1.0)
    # one no-data fill for the whole mosaic (a lazy scalar, computed once), so windows agree
    return vref, verifier, data, da.nanmean(data)


def _coarsest_factor(min_d: float, max_d: float, method: str, target: str, scales: Any) -> int:
    from .extract import DEFAULT_METHODS, scale_plan

    method = DEFAULT_METHODS.get(target, "template") if method == "auto" else method
    if method == "components":
        return 1
    plan = scale_plan(min_d, max_d, scales)
    return max((f for f, _, _ in plan), default=1)


def default_halo(max_diameter_px: float, factor: int = 1) -> int:
    """The halo (pixels) that makes extraction independent of the chunking.

    Half the largest crater, plus the finder's reach and two coarsest-scale pixels, rounded up
    to a multiple of the coarsest downsampling ``factor``.

    Examples
    --------
    >>> default_halo(256, 16)
    176
    """
    need = 0.5 * float(max_diameter_px) + _FINDER_REACH_PX + 2 * factor
    return int(math.ceil(need / factor) * factor)


def _squeeze_x(block: np.ndarray, aspect: float) -> np.ndarray:
    """Resample ``block`` along x by 1/``aspect`` (linear), so stretched craters become round.

    Output column ``j`` samples input column ``j * aspect``; NaN stays NaN's neighbours' mean.
    """
    nx = block.shape[1]
    xs = np.arange(0.0, nx - 1 + 1e-9, aspect)
    i0 = np.floor(xs).astype(int)
    i1 = np.minimum(i0 + 1, nx - 1)
    w = (xs - i0).astype(np.float32)
    return block[:, i0] * (1 - w) + block[:, i1] * w


def _cut(parts: list[list[np.ndarray]], cut: tuple[slice, slice]) -> np.ndarray:
    """The window ``cut`` of the blocks ``parts`` (rows of neighbouring blocks) put together."""
    return np.block(parts)[cut] if len(parts) > 1 or len(parts[0]) > 1 else parts[0][0][cut]


def _extract_window(
    block: np.ndarray,
    y0: int,
    x0: int,
    core: tuple[int, int, int, int],
    options: dict[str, Any],
    aspect: float = 1.0,
    image: np.ndarray | None = None,
    verifier: Any = None,
    fill: float | None = None,
    alone: bool = False,
) -> tuple[pd.DataFrame, int]:
    """The craters of one window whose centres lie in its core (window pixel coordinates + offset),
    and how many of the core's image pixels hold no data (-1 without the image).

    ``alone``: the window is one of fewer than the threads that compute them, so the finder may search its
    tiles side by side; otherwise the windows themselves fill the cores and each searches its tiles
    one after another (nested pools only cost memory: +0.9 GB for no gain on a 4096² mosaic).
    """
    from .extract import one_thread

    nodata = -1
    if image is not None:
        cy0, cy1, cx0, cx1 = core
        nodata = int((~np.isfinite(np.asarray(image)[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0])).sum())
    with contextlib.nullcontext() if alone else one_thread():
        return _window_craters(block, y0, x0, core, options, aspect, image, verifier, fill), nodata


def _window_craters(block: np.ndarray, y0: int, x0: int, core: tuple[int, int, int, int], options: dict[str, Any],
                    aspect: float, image: np.ndarray | None, verifier: Any, fill: float | None) -> pd.DataFrame:
    from .verify import find_craters, resolve_verifier

    block = np.asarray(block, dtype=np.float32)
    options = dict(options)
    target = options.pop("target")
    if verifier is not None:
        # a path travels to the worker better than a Keras model; loaded once per process
        verifier = resolve_verifier(verifier, None)
        image = np.asarray(image, dtype=np.float32)

    if aspect > 1.0:
        # On an equirectangular grid far from its true-scale latitude a crater is an ellipse
        # ``aspect`` times wider than tall; the circle finder wants circles.  Squeeze x at the
        # window's latitude, find circles, and map them back: their diameter in squeezed pixels
        # is the N-S diameter, and sqrt(aspect) times that is the geometric-mean pixel diameter
        # that ``to_catalog`` converts to km.
        img = None if image is None else _squeeze_x(image, aspect)
        craters = find_craters(_squeeze_x(block, aspect), img, target=target, verifier=verifier, options=options,
                               fill=fill)
        craters["x"] = craters["x"] * aspect
        craters["diameter_px"] = craters["diameter_px"] * math.sqrt(aspect)
    else:
        craters = find_craters(block, image, target=target, verifier=verifier, options=options, fill=fill)
    x = craters["x"].to_numpy(dtype=float) + x0
    y = craters["y"].to_numpy(dtype=float) + y0
    cy0, cy1, cx0, cx1 = core
    m = CORE_MARGIN_PX
    # pixel i spans i - 0.5 .. i + 0.5; the core is [c0 - 0.5, c1 - 0.5)
    keep = (x >= cx0 - 0.5 - m) & (x < cx1 - 0.5 + m) & (y >= cy0 - 0.5 - m) & (y < cy1 - 0.5 + m)
    out = pd.DataFrame({"x": x[keep], "y": y[keep],
                        "diameter_px": craters["diameter_px"].to_numpy(dtype=float)[keep],
                        "score": craters["score"].to_numpy(dtype=float)[keep]})
    return out


def _aspects(grid: Any, y: Any, x: Any) -> np.ndarray:
    """How many times wider than tall a crater is, in pixels, at pixels ``(y, x)`` (arrays)."""
    _, lat = grid.pixel_to_lonlat(np.atleast_1d(np.asarray(x, dtype=float)), np.atleast_1d(np.asarray(y, dtype=float)))
    px_x, px_y = grid.km_to_pixels(np.ones(np.shape(lat)), np.clip(np.asarray(lat, dtype=float), -89.0, 89.0))
    return np.abs(np.asarray(px_x, dtype=float) / np.asarray(px_y, dtype=float))


def _even_split(n: int, size: int) -> tuple[int, ...]:
    """The fewest near-equal parts of ``n`` pixels no longer than ``size`` (borders on ``_WORK_STEP``)."""
    k = max(1, math.ceil(n / max(int(size), 1)))
    borders = sorted({int(round(j * n / k / _WORK_STEP)) * _WORK_STEP for j in range(1, k)} - {0, n})
    edges = [0, *(b for b in borders if 0 < b < n), n]
    return tuple(int(b - a) for a, b in zip(edges[:-1], edges[1:]))


def work_blocks(shape: tuple[int, int], grid: Any = None, block_px: int = WORK_BLOCK_PX,
                correct_aspect: bool = True) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The blocks (row heights, column widths) :func:`catalog_from_probability` cuts a map into.

    The fewest near-equal blocks no larger than ``block_px`` along each axis.  With
    ``correct_aspect`` on a ``grid`` where craters are wider than tall (an equirectangular grid
    away from its true-scale latitude), rows of blocks are cut further until the aspect varies
    by at most ``2 * ASPECT_TOLERANCE`` within a row: every block is resampled by the aspect at
    its centre, and this keeps the rest of the block as round as :data:`ASPECT_TOLERANCE` allows.

    The blocks depend on the shape and grid only, never on how the map is chunked or stored.

    Examples
    --------
    >>> work_blocks((4160, 4160))
    ((1392, 1376, 1392), (1392, 1376, 1392))
    """
    ny, nx = (int(v) for v in shape)
    if isinstance(block_px, bool) or not isinstance(block_px, (int, np.integer)) or block_px < 1:
        raise InvalidArgumentError(f"block_px must be a positive whole number of pixels, got {block_px!r}")
    rows, cols = _even_split(ny, block_px), _even_split(nx, block_px)
    if not correct_aspect or grid is None:
        return rows, cols
    def spread(start: int, h: int) -> float:
        ys = np.linspace(start, start + h - 1, 9)
        log_a = np.log(_aspects(grid, ys, np.full(ys.shape, 0.5 * (nx - 1))))
        return float(log_a.max() - log_a.min())

    out: list[int] = []
    start = 0
    for h in rows:
        parts: tuple[int, ...] = (h,)
        k = max(1, math.ceil(spread(start, h) / (2 * ASPECT_TOLERANCE)))
        while k > 1:  # the fewest near-equal rows within which the aspect varies little enough
            parts = _even_split(h, math.ceil(h / k))
            edges = np.cumsum((start, *parts))
            if max(parts) <= _WORK_STEP or all(spread(int(a), int(b - a)) <= 2 * ASPECT_TOLERANCE
                                               for a, b in zip(edges[:-1], edges[1:])):
                break
            k += 1
        out.extend(parts)
        start += h
    return tuple(out), cols


def window_aspect(grid: Any, y_centre: float, x_centre: float, tolerance: float = ASPECT_TOLERANCE) -> float:
    """How many times wider than tall a crater is, in pixels, at a window's centre.

    1.0 when the grid is true to scale there within ``tolerance`` (e.g. at the equator of a
    geographic grid, or at an equirectangular grid's standard parallel); then no resampling
    is needed.

    Examples
    --------
    >>> from marscraters.mosaic import mosaic_from_array
    >>> from marscraters.crs import Grid
    >>> grid = Grid.from_dataset(mosaic_from_array(np.zeros((256, 256)), bounds=(0, 59.5, 1, 60.5)))
    >>> round(window_aspect(grid, 127.5, 127.5), 3)
    2.0
    """
    aspect = float(_aspects(grid, y_centre, x_centre)[0])
    return aspect if abs(aspect - 1.0) > tolerance else 1.0


def catalog_from_probability(
    prob: Any,
    *,
    mosaic: Any = None,
    kind: str | None = None,
    model: Any = None,
    halo: int | None = None,
    extract_options: Mapping[str, Any] | None = None,
    source: str | None = None,
    correct_aspect: bool = True,
    progress: bool = True,
    verify: Any = None,
    block_px: int = WORK_BLOCK_PX,
) -> Any:
    """Find the craters of a whole probability map, block by block, as one seamless Catalog.

    Parameters
    ----------
    prob
        The crater probability on a mosaic's grid: a georeferenced DataArray on ``(y, x)`` (as
        :func:`marscraters.segment.segment` returns, lazy or not), or a Dataset holding
        ``crater_probability`` (e.g. ``xr.open_zarr("pred.zarr", decode_coords="all")``).  Its
        chunks do not matter: the work is cut into :func:`work_blocks` of ``block_px``.  A store
        opened without dask (``chunks=None``) is read one block at a time, which is fastest
        for a store in small chunks.
    mosaic
        The Mosaic (or any georeferenced object on the same grid) whose CRS and transform
        georeference the craters; default: ``prob``'s own.
    kind
        The target kind of the map (``filled``/``outline``/``ring``); default: the model's.
    model
        Model file whose stored circle-finder settings (including ``min_score``), crater
        verifier and name are used; default: the model file recorded in
        ``prob.attrs["model_file"]`` when it still exists, else the shipped model.  Another model
        file or version than the one the map records is used as given, with a warning, and the
        catalog's ``attrs["segmentation_model"]`` names the map's own.
    halo
        Pixels read around each block; default :func:`default_halo` of ``max_diameter_px``.  A
        smaller halo is faster but can miss or split big craters at block borders.
    extract_options
        Options of :func:`~marscraters.extract.extract_craters` overriding the model's (e.g.
        ``{"max_diameter_px": 128, "min_score": 0.5}``).  ``max_diameter_px`` defaults to
        :data:`DEFAULT_MAX_DIAMETER_PX`.
    source
        The source mosaic recorded in the ``source_mosaic`` column; default ``prob.attrs`` /
        ``mosaic.attrs`` ``source``, else ``""``.
    correct_aspect
        On an equirectangular grid away from its true-scale latitude craters are ellipses,
        wider than tall by 1/cos(lat) on a geographic grid (2x at 60 deg).  With ``True`` each
        block whose :func:`window_aspect` exceeds 1 is resampled along x to round craters
        before the circle finder runs, and the circles are mapped back (blocks are lower there,
        see :func:`work_blocks`).
    progress
        Show a tqdm progress bar over the blocks.
    verify
        Second-stage verification of the candidates against the image
        (:mod:`marscraters.verify`): ``None`` uses the verifier the model file names when
        ``mosaic`` holds the image (``ir``; without it a warning says the catalog is
        unverified), ``False`` turns it off, and a :class:`~marscraters.verify.Verifier` or a
        path uses that one.  Verification looks further around each crater (its neighbours
        too), so the default halo grows from half the largest crater to one and a half.
    block_px
        Largest side of the blocks the finder works on, before the halo (default
        :data:`WORK_BLOCK_PX`).  The result does not depend on it (beyond float round-off and
        the aspect resampling above); the memory does: each dask thread holds one block and
        its halo, with the finder's work arrays (~35-100 bytes per pixel).

    Returns
    -------
    geopandas.GeoDataFrame
        A Catalog: ``crater_id`` (``"1"``, ``"2"``, ... from north to south, then west to east),
        ``lat``, ``lon`` (-180..180), ``diameter_km``, ``score``, ``x``, ``y``, ``diameter_px``
        (pixel index coordinates on the grid), ``source_mosaic``, ``model_name``,
        ``model_version``; ``attrs`` record the model, the extraction parameters and the halo,
        and the count area: the grid's ``footprint`` (a lon/lat polygon, see
        :func:`~marscraters.mosaic.mosaic_footprint`), its ``area_km2`` on the Mars sphere and
        ``area_source``.  :func:`~marscraters.catalog.write_catalog` stores them and
        :func:`~marscraters.chronology.model_age` dates the catalog on that area by default.

    Raises
    ------
    InvalidArgumentError
        If ``prob`` is not a DataArray/Dataset of probabilities (a path: open it first), ``mosaic``
        is a path (open it with :func:`~marscraters.mosaic.open_mosaic`), or an option is invalid.
    MosaicError, MissingCRSError
        If ``prob`` (or ``mosaic``) is not on a georeferenced ``(y, x)`` grid.

    Warns
    -----
    UserWarning
        When ``model`` is another model file or version than the one ``prob`` records.

    Examples
    --------
    >>> prob = xr.open_zarr("pred.zarr", decode_coords="all", chunks=None)  # doctest: +SKIP
    >>> cat = catalog_from_probability(prob)  # doctest: +SKIP
    >>> write_catalog(cat, "craters.gpkg")  # doctest: +SKIP
    """
    from .detect import _caller_options

    prob = _as_probability(prob)
    # min_score in 0..1 before the finder runs, as detect checks it (the diameters: _find_craters, first)
    extract_options = _caller_options(extract_options, diameters=False)
    other = _other_model(model, prob)
    if other is not None:
        _warn_other_model(other)
    pixels, found = _find_craters(prob, mosaic=mosaic, kind=kind, model=model, halo=halo,
                                  extract_options=extract_options, correct_aspect=correct_aspect,
                                  progress=progress, verify=verify, block_px=block_px)
    cat = _catalog_of(pixels, found, source)
    if other is not None:  # the catalog's model read the map; this one made it
        cat.attrs["segmentation_model"] = other.made
    return cat


def catalog_from_mosaic(
    ds: xr.Dataset,
    prob: Any = None,
    *,
    model: Any = None,
    levels: int | str = "auto",
    resampling: str = "antialias",
    segment_options: Mapping[str, Any] | None = None,
    extract_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> Any:
    """Seamless crater catalog of a mosaic on an image pyramid: its own pixels, then 1/2, 1/4, ...

    The mosaic is segmented (:func:`marscraters.segment.segment`) and searched
    (:func:`catalog_from_probability`) at its own pixels and at coarser levels
    (:func:`marscraters.mosaic.coarsen_mosaic`: anti-aliased halvings, as ``detect`` makes an
    image's levels inside the image) until
    the largest crater it can hold is within reach, as :func:`marscraters.detect.detect` does for
    images (:func:`marscraters.pyramid.pyramid_levels`).  Each level keeps the diameters of its own
    band, and a crater found at two levels is kept once, by the finder's duplicate rule
    (:func:`marscraters.pyramid.merge_levels`).  Every level is as chunk-invariant as one map, so
    the catalog is too.  A mosaic coarser than the model's pixel size is searched at its own
    pixels (no level is enlarged).

    Parameters
    ----------
    ds
        The Mosaic (with its image ``ir``, which the verifier also reads at every level).
    prob
        Its crater probability at its own pixels, when already computed (e.g. a store from
        ``marscraters segment``, opened with ``xr.open_zarr``); the coarser levels are segmented
        with the model that made it (the file ``prob.attrs["model_file"]`` records, while it is
        still there and still that version).  None: level 0 is segmented too.
    model
        Model file: it segments the levels when no ``prob`` is given, and its circle-finder
        settings, crater verifier and name read every level; default: the one recorded in
        ``prob``, else the shipped model for the mosaic's pixel size
        (:func:`marscraters.segment.model_for_mosaic`).  With a ``prob`` made by another model
        file or version, a warning says which model did what: the given one reads the maps,
        and the coarser levels are still segmented with the map's own model (with the given one
        only when the map's model file is gone or was saved again); the catalog's
        ``attrs["segmentation_model"]`` names the model(s) that made the maps.
    levels
        ``"auto"`` (default) or the most levels to run (1: the mosaic's own pixels only, which is
        :func:`catalog_from_probability`).
    resampling
        How the coarser levels are made: ``"antialias"`` (default; a Gaussian of sigma 0.5 px and
        2x2 means per halving) or ``"mean"`` (plain means of 2x2, 4x4, ... cells).  On CTX
        validation images the plain means cost recall (``benchmarks/splits/pyramid_rule.md``).
    segment_options
        Options of :func:`marscraters.segment.segment` for every level it segments (``depth``,
        ``batch_size``, ``chunks``, ``tile``, ``value_range``, ``nodata_fill``, ``tta``,
        ``precision``).  The grey scale of level 0 (``value_range``) is used at every level: the
        levels are the same ground; a given ``prob`` also lends them its ``precision``.
    extract_options
        As for :func:`catalog_from_probability`; ``min_diameter_px`` and ``max_diameter_px`` are
        in the mosaic's own pixels and bound every level's band.
    progress
        Progress bars.
    **kwargs
        Further options of :func:`catalog_from_probability` (``kind``, ``halo``, ``verify``,
        ``source``, ``correct_aspect``, ``block_px``).

    Returns
    -------
    geopandas.GeoDataFrame
        A Catalog as :func:`catalog_from_probability` returns, on the mosaic's own grid (``x``,
        ``y``, ``diameter_px`` in its pixels), with a ``level`` column (0: the mosaic's own
        pixels, 1: half of them, ...: numbered in the full pyramid, also when
        ``extract_options``' diameter limits skip the finer levels); ``attrs["levels"]`` lists
        the scale factor of each level searched and ``attrs["parameters"]`` are the finest one's.

    Raises
    ------
    InvalidArgumentError
        For a bad ``levels`` or option (``extract_options`` as :func:`marscraters.detect.detect`
        checks them: ``min_score`` in 0..1, 1 excluded), before any level is segmented; for a
        mosaic whose georeferencing gives pixels outside the 1-1000 m ``detect`` works at
        (almost always a wrong unit).

    Warns
    -----
    UserWarning
        When ``model`` is another model file or version than the one ``prob`` records.

    Examples
    --------
    >>> ds = open_mosaic("ctx_cube.zarr")  # doctest: +SKIP
    >>> craters = catalog_from_mosaic(ds)  # doctest: +SKIP
    >>> craters.groupby("level").size()  # doctest: +SKIP
    """
    from .detect import (
        _caller_options,
        _check_mosaic_pixel_size,
        _warn_extremes,
        model_info,
    )
    from .model import mosaic_value_range, read_grey_sample
    from .mosaic import coarsen_mosaic, validate_mosaic
    from .pyramid import level_options, merge_levels, pyramid_levels
    from .segment import model_for_mosaic, segment

    validate_mosaic(ds)
    # checked before any level is segmented (hours on a large mosaic), as detect checks them
    extract_options = _caller_options(extract_options)
    if resampling not in ("antialias", "mean"):
        raise InvalidArgumentError(f"resampling={resampling!r} must be 'antialias' or 'mean'")
    unknown = sorted(set(kwargs) - {"kind", "halo", "verify", "source", "correct_aspect", "block_px"})
    if unknown:
        raise InvalidArgumentError(f"unknown option(s) {unknown} of catalog_from_mosaic: it takes "
                                   "kind, halo, verify, source, correct_aspect and block_px besides its own")
    seg = dict(segment_options or {})
    other = None
    if prob is not None:
        prob = _as_probability(prob)
        other = _other_model(model, prob)
        model = _resolve_model(model, prob)
        recorded = prob.attrs.get("value_range")
        if seg.get("value_range") is None and recorded is not None:
            # (low, high), or "auto" (a lazy segment()'s stretch, found again from the mosaic below)
            seg["value_range"] = recorded if isinstance(recorded, str) else tuple(float(v) for v in recorded)
        # the coarser levels in the arithmetic of the map given for level 0
        if seg.get("precision") is None and prob.attrs.get("precision") is not None:
            seg["precision"] = str(prob.attrs["precision"])
    model = model_for_mosaic(ds, model)
    # the coarser levels are segmented by the network that made the map given for level 0, while
    # the model given reads every level (its finder settings and verifier, as for level 0)
    seg_model = (other.usable or model) if other is not None else model
    info = model_info(model)
    native = float(info["native_pixel_size_m"])
    # a wrong unit (outside 1-1000 m) is refused as detect refuses it; non-square pixels: None
    size = _check_mosaic_pixel_size(ds)
    # a mosaic coarser than the network's pixels is searched as it is (a global 256 px/deg
    # mosaic keeps its size), so its levels are planned as if it were at the native size
    size = native if size is None else min(size, native)
    plan = pyramid_levels((ds.sizes["y"], ds.sizes["x"]), size, native, levels=levels, top_px=info["pyramid_top_px"])
    if other is not None:
        _warn_other_model(other, seg_model if len(plan) > 1 else None)
    fill = None
    if len(plan) > 1 or prob is None:
        # one read of the mosaic's grey sample: its grey scale (level 0's, for every level: they are
        # the same ground), its exposure, and the no-data fill of the coarser levels
        sample = read_grey_sample(ds["ir"].data)
        seg["value_range"] = mosaic_value_range(ds["ir"].data, seg.get("value_range"), sample=sample, stacklevel=3)
        finite = sample[np.isfinite(sample)]
        if finite.size:
            _warn_extremes(finite, float(finite.min()), float(finite.max()), what="mosaic", stacklevel=4)
            fill = float(finite.mean())
    base = dict(extract_options or {})
    tables, kept, indices, found0 = [], [], [], None
    reach = []  # each level's (smallest, largest) diameter searched, in the mosaic's pixels
    prev, prev_cell = ds, 1  # each level is made from the one before: a halving of a halving
    for i, level in enumerate(plan):
        opts = level_options(level, base)
        if opts is None:
            continue
        cell = int(round(1 / level.factor))
        level_ds = coarsen_mosaic(prev, cell // prev_cell, antialias=resampling == "antialias", fill=fill)
        prev, prev_cell = level_ds, cell
        level_prob = prob if (i == 0 and prob is not None) else segment(level_ds, seg_model, **seg)
        pixels, found = _find_craters(
            level_prob, mosaic=level_ds, kind=kwargs.get("kind"), model=model, halo=kwargs.get("halo"),
            extract_options=opts, correct_aspect=kwargs.get("correct_aspect", True), progress=progress,
            verify=kwargs.get("verify"), block_px=kwargs.get("block_px", WORK_BLOCK_PX))
        if found0 is None:  # the catalog's attrs: the finest level's settings, on the mosaic's grid
            found0 = found._replace(ref=ds)
        reach.append((found.params["min_diameter_px"] / level.factor, found.params["max_diameter_px"] / level.factor))
        tables.append(pixels)
        kept.append(level)
        indices.append(i)  # the level column numbers levels in the full pyramid, skipped ones too
    if found0 is None:
        raise InvalidArgumentError(
            f"no level of the pyramid searches diameters within extract_options {base}: widen min_diameter_px / "
            "max_diameter_px (in the mosaic's pixels)")
    merged = merge_levels(tables, kept, nms=found0.params.get("nms", "deepmoon"),
                          nms_threshold=found0.params.get("nms_threshold"), contained=found0.params["kind"] == "filled",
                          indices=indices)
    cat = _catalog_of(_inside(merged, (ds.sizes["y"], ds.sizes["x"])).reset_index(drop=True), found0,
                      kwargs.get("source"))
    cat.attrs["levels"] = [round(lv.factor, 6) for lv in kept]
    # the diameters all the levels searched, in the mosaic's pixels (not the finest level's alone)
    params = dict(cat.attrs.get("parameters") or {})
    params["min_diameter_px"] = float(min(lo for lo, _ in reach))
    params["max_diameter_px"] = float(max(hi for _, hi in reach))
    cat.attrs["parameters"] = params
    if other is not None:  # the catalog's model read the maps; these made them
        coarser = "" if len(kept) < 2 or seg_model == other.usable else f"; coarser levels: {other.given}"
        cat.attrs["segmentation_model"] = other.made + (" (level 0)" + coarser if coarser else "")
    return cat


def _inside(pixels: pd.DataFrame, shape: tuple[int, int]) -> pd.DataFrame:
    """The craters centred inside a map of ``shape`` (pixel index coordinates), as one whole-map
    extraction reports them."""
    ny, nx = shape
    return pixels[(pixels.x >= -0.5) & (pixels.x < nx - 0.5) & (pixels.y >= -0.5) & (pixels.y < ny - 0.5)]


class _Found(NamedTuple):
    """What :func:`_find_craters` learnt besides the craters: for their catalog's attrs."""

    prob: xr.DataArray
    ref: Any  # the georeferenced object of the craters' grid
    info: dict[str, Any]  # the model's
    params: dict[str, Any]  # the finder's and verifier's settings
    nodata: float | None = None  # the share of the grid without image data (None: no image was read)


def _find_craters(prob: Any, *, mosaic: Any, kind: str | None, model: Any, halo: int | None,
                  extract_options: Mapping[str, Any] | None, correct_aspect: bool, progress: bool, verify: Any,
                  block_px: int) -> tuple[pd.DataFrame, _Found]:
    """The craters of a probability map in its pixels (:func:`catalog_from_probability`'s work)."""
    import dask
    import dask.array as da

    from .cluster import compute_slots
    from .crs import Grid
    from .detect import model_info
    from .extract import _check_choice, TARGETS, nms_circles
    from .verify import merge_options

    prob = _as_probability(prob)
    _check_mosaic_arg(mosaic)
    ref = prob if mosaic is None else mosaic
    grid = Grid.from_dataset(ref)
    # before the finder runs: its craters' lat, lon and km need a longitude/latitude lattice
    grid.check_cylindrical("the probability map" if mosaic is None else "the mosaic")
    if grid.shape != tuple(prob.shape):
        raise MosaicError(
            f"prob has shape {tuple(prob.shape)} but the mosaic's grid is {grid.shape}; pass the mosaic the "
            "probability was computed on."
        )
    if mosaic is not None:
        _check_same_place(prob, mosaic, grid)
    model_file = _resolve_model(model, prob)
    info = model_info(model_file)
    target = _check_choice("kind", kind or info["kind"], TARGETS)
    if kind is not None and info.get("kind") and kind != info["kind"]:
        # the finder reads the map as the kind it is told: another model's kind finds little or nothing
        warnings.warn(f"the map is read as {kind} targets, but the model that made it ({info.get('name') or model_file}) "
                      f"draws {info['kind']} targets, so the circle finder will find little: leave the kind out to "
                      "use the model's own", UserWarning, stacklevel=4)
    value_range = prob.attrs.get("value_range")
    vref, verifier, image, fill = _verification(verify, model_file, mosaic, grid, value_range)
    # with a verifier the finder's thresholds are its candidates'; sizes and NMS stay
    options: dict[str, Any] = merge_options(info.get("extract", {}), extract_options, verifier)
    if verifier is None:
        options.setdefault("min_score", 0.0)
    # with a verifier, a min_score given replaces its threshold (0 keeps every candidate); none given: its own
    min_score = options.get("min_score")
    options.pop("target", None)
    options.pop("progress", None)
    max_d = float(options.setdefault("max_diameter_px", DEFAULT_MAX_DIAMETER_PX))
    min_d = float(options.setdefault("min_diameter_px", 5.0))
    if not (0 < min_d <= max_d and math.isfinite(max_d)):
        if min_d <= 0 or "min_diameter_px" in (extract_options or {}):
            raise InvalidArgumentError(
                f"min_diameter_px={min_d} and max_diameter_px={max_d} must satisfy 0 < min <= max < inf."
            )
        # the smallest diameter is the model's (or the finder's default), which the command line
        # cannot set: name only the largest, the one the caller gave
        raise InvalidArgumentError(
            f"max_diameter_px=<pixels> (CLI: --max-diameter-px PIXELS) must be a finite number of pixels of at "
            f"least {min_d:g}, the smallest crater diameter searched, got {max_d:g}."
        )
    factor = _coarsest_factor(min_d, max_d, options.get("method", "auto"), target, options.get("scales", "auto"))
    if halo is None:
        # verification samples the map and image out to two radii from a crater's centre, and
        # counts the candidates overlapping it, centred up to max_d away: those must be found as
        # whole-map extraction finds them, so the window reaches 1.5 max_d past the core
        halo = default_halo(3 * max_d if verifier is not None else max_d, factor)
    if not isinstance(halo, (int, np.integer)) or halo < 0:
        raise InvalidArgumentError(f"halo must be a whole number of pixels >= 0, got {halo!r}")
    halo = int(halo)

    ny, nx = prob.shape
    # units of work chosen for the work, not the storage: a store's 64-px chunks as windows with
    # a 176-px halo each would read and search every pixel ~30 times
    rows, cols = work_blocks((ny, nx), grid, block_px, correct_aspect)
    data = prob.data
    if not isinstance(data, da.Array):
        # numpy, or a store opened lazily without dask (chunks=None): one read per block
        data = prob.chunk({"y": rows, "x": cols}).data
    # each stored chunk is read once, into its block; a window is cut from the few blocks it
    # overlaps.  One graph for all windows (slicing the array once per window would build and
    # optimise the whole read graph once per window, and read the chunks again for each)
    blocks = data.rechunk((rows, cols)).to_delayed(optimize_graph=True)
    img_blocks = None if image is None else image.rechunk((rows, cols)).to_delayed(optimize_graph=True)
    if isinstance(fill, da.Array):
        fill = fill.to_delayed(optimize_graph=True).item()
    ystarts = np.concatenate([[0], np.cumsum(rows)])
    xstarts = np.concatenate([[0], np.cumsum(cols)])
    cores = [(int(cy0), int(cy1), int(cx0), int(cx1))
             for cy0, cy1 in zip(ystarts[:-1], ystarts[1:]) for cx0, cx1 in zip(xstarts[:-1], xstarts[1:])]
    aspects = [window_aspect(grid, 0.5 * (c[0] + c[1] - 1), 0.5 * (c[2] + c[3] - 1)) if correct_aspect else 1.0
               for c in cores]
    # craters are up to max(aspect) times wider than tall: widen the halo along x to match
    halo_x = int(math.ceil(halo * max(aspects, default=1.0) / factor) * factor)
    tasks = []
    opts = {**options, "target": target}
    # fewer windows than the cluster's (or this machine's) threads: each window's finder searches
    # its tiles side by side; the workers' threads count, not the client's cores
    alone = len(cores) < compute_slots()
    for (cy0, cy1, cx0, cx1), aspect in zip(cores, aspects):
        # window starts on the coarsest scale's lattice, so its downsampled pixels are shared
        wy0 = max(0, (cy0 - halo) // factor * factor)
        wx0 = max(0, (cx0 - halo_x) // factor * factor)
        wy1, wx1 = min(ny, cy1 + halo), min(nx, cx1 + halo_x)
        # the blocks under the window, and where the first of them starts
        i0, i1 = np.searchsorted(ystarts, wy0, "right") - 1, np.searchsorted(ystarts, wy1, "left")
        j0, j1 = np.searchsorted(xstarts, wx0, "right") - 1, np.searchsorted(xstarts, wx1, "left")
        cut = (slice(wy0 - int(ystarts[i0]), wy1 - int(ystarts[i0])), slice(wx0 - int(xstarts[j0]), wx1 - int(xstarts[j0])))
        block = dask.delayed(_cut)(blocks[i0:i1, j0:j1].tolist(), cut)
        img = None if img_blocks is None else dask.delayed(_cut)(img_blocks[i0:i1, j0:j1].tolist(), cut)
        tasks.append(dask.delayed(_extract_window)(block, wy0, wx0, (cy0, cy1, cx0, cx1), opts, aspect, img, vref,
                                                   fill, alone))
    if progress:
        from tqdm.dask import TqdmCallback

        with TqdmCallback(desc="extracting craters"):
            results = dask.compute(*tasks)
    else:
        results = dask.compute(*tasks)
    counts = [n for _, n in results]
    # the share of the grid without image data, which the count area (the whole footprint) includes
    nodata = sum(counts) / float(ny * nx) if counts and min(counts) >= 0 and ny * nx else None
    parts = [p for p, _ in results if len(p)]
    pixels = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {c: np.array([], dtype=float) for c in ("x", "y", "diameter_px", "score")})
    if len(pixels):
        # a crater near a border is found by both blocks: keep one, by the finder's own rule
        pixels = nms_circles(pixels, rule=options.get("nms", "deepmoon"), threshold=options.get("nms_threshold"),
                             contained=target == "filled")
        # inside the map, as one whole-map extraction would report them
        pixels = _inside(pixels, (ny, nx))

    params = {"kind": target, "halo": halo, "block_px": int(block_px), **options}
    if verifier is not None:
        params["verifier"] = str(verifier.metadata.get("name") or "verifier")
        params["verifier_threshold"] = float(min_score) if min_score is not None else verifier.threshold
    return pixels, _Found(prob, ref, info, params, nodata)


def _catalog_of(pixels: pd.DataFrame, found: _Found, source: str | None) -> Any:
    """The georeferenced Catalog of craters found on ``found.ref``'s grid (pixel index coordinates)."""
    from .extract import to_catalog

    prob, ref, info = found.prob, found.ref, found.info
    model_name = str(info.get("name") or prob.attrs.get("model_name") or "unknown")
    model_version = str(info.get("version") or prob.attrs.get("marscraters_version") or "")
    if source is None:
        source = str(prob.attrs.get("source") or getattr(ref, "attrs", {}).get("source") or "")
    from . import __version__

    attrs = {"source": "marscraters.assemble", "model": model_name, "model_version": model_version,
             "input_mosaic": source, "parameters": found.params, "software": f"marscraters {__version__}",
             **_count_area(ref, source)}
    if found.nodata is not None:
        attrs["nodata_share"] = round(found.nodata, 6)
        if found.nodata > NODATA_WARN_SHARE:
            warnings.warn(
                f"{found.nodata:.0%} of {source or 'the mosaic'} holds no image data, but the count area recorded is "
                f"its whole footprint ({attrs['area_km2']:,.0f} km²), so densities from it are {1 / max(1 - found.nodata, 1e-9):.2f} "
                "times too low and ages too young: date these craters on a polygon of the imaged ground "
                "(`marscraters age CATALOG --area unit.gpkg`; in Python model_age(catalog, area=polygon))",
                UserWarning, stacklevel=3)
    cat = to_catalog(pixels.reset_index(drop=True), ref, attrs=attrs)
    cat["x"] = pixels["x"].to_numpy(dtype=float)
    cat["y"] = pixels["y"].to_numpy(dtype=float)
    cat["diameter_px"] = pixels["diameter_px"].to_numpy(dtype=float)
    if "level" in pixels.columns:  # the pyramid level that found it
        cat["level"] = pixels["level"].to_numpy(dtype=int)
    # stable ids: north to south, then west to east (rounded so sub-pixel noise cannot reorder)
    order = np.lexsort((np.round(cat["x"].to_numpy(), 1), np.round(cat["y"].to_numpy(), 1)))
    cat = cat.iloc[order].reset_index(drop=True)
    cat["crater_id"] = pd.Series(np.arange(1, len(cat) + 1).astype(str), dtype="str")
    cat["source_mosaic"] = pd.Series([source] * len(cat), dtype="str")
    cat["model_name"] = pd.Series([model_name] * len(cat), dtype="str")
    cat["model_version"] = pd.Series([model_version] * len(cat), dtype="str")
    cat.attrs = attrs
    return cat


def _count_area(ref: Any, source: str) -> dict[str, Any]:
    """The count area of a catalog found on ``ref``'s grid: its footprint, km² and where from.

    The whole grid, no-data pixels included (a mosaic with gaps is dated on a count polygon).
    """
    from .chronology import _checked_geographic, count_area_km2
    from .mosaic import mosaic_footprint

    footprint = _checked_geographic(mosaic_footprint(ref))
    return {"area_km2": count_area_km2(footprint), "footprint": footprint,
            "area_source": f"the footprint of {source or 'the probability map'}"}


# --------------------------------------------------------------------------------------------
# command line


def add_catalog_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``marscraters catalog pred.zarr --out craters.gpkg`` to a CLI's subparsers."""
    from .extract_ops import add_finder_engine_argument
    from .pyramid import levels_arg

    p = subparsers.add_parser(
        "catalog",
        help="crater probability store (pred.zarr) -> seamless georeferenced crater catalog (GeoPackage)",
        description="Run the circle finder chunk by chunk (with a halo) over a crater_probability Zarr "
        "store written by 'marscraters segment', remove duplicates across chunk borders, and write a "
        "GeoPackage with the craters, their rims and a metadata table.",
    )
    p.add_argument("store", help="Zarr store with crater_probability (from 'marscraters segment')")
    p.add_argument("--out", required=True, help="output GeoPackage (.gpkg)")
    p.add_argument("--model", default=None, help="model file whose circle-finder settings, crater verifier and name "
                   "to use (default: the one recorded in the store, else the shipped model). Another model than the "
                   "store's warns: the store's own model still segments the coarser --levels while its file is there, "
                   "and the catalog records it as segmentation_model")
    p.add_argument("--kind", default=None, choices=["filled", "outline", "ring"], help="target kind (default: the model's)")
    p.add_argument("--min-score", type=float, default=None,
                   help="drop craters scored below this, 0..1; with --mosaic it replaces the verifier's threshold "
                        "(default: the verifier's own, 0.55 for the shipped THEMIS model, 0.60 for finer images; "
                        "without --mosaic, the model's one-stage finder's)")
    p.add_argument("--max-diameter-px", type=float, default=None,
                   help=f"largest crater searched, in pixels (default {DEFAULT_MAX_DIAMETER_PX:g})")
    p.add_argument("--mosaic", default=None, help="the mosaic cube (Zarr) the store was segmented from: its image "
                   "lets the model's crater verifier check every candidate (without it the catalog is unverified)")
    p.add_argument("--no-verify", action="store_true", help="skip the crater verifier even with --mosaic")
    p.add_argument("--levels", type=levels_arg, default="auto",
                   help="image pyramid, with --mosaic: 'auto' (default) also searches the mosaic at 1/2, 1/4, ... of "
                        "its pixels (segmented on the fly) until its largest craters are in reach; a number: the most "
                        "levels, 1 for the store's own pixels only. Without --mosaic: one level")
    add_finder_engine_argument(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_catalog_cli)
    return p


def run_catalog_cli(args: argparse.Namespace) -> int:
    """Run the ``catalog`` subcommand; returns the exit status."""
    from ._io import check_output
    from .catalog import write_catalog
    from .extract_ops import engine_options

    store = Path(args.store)
    out = Path(args.out)
    # the arguments are checked before the work, not after it (an output over an input first)
    check_output(out, args.overwrite, inputs=(store, args.mosaic, args.model))
    if out.suffix.lower() != ".gpkg":
        gpkg = out.with_suffix(".gpkg")
        # `convert` makes the catalog formats; anything else (a .zarr, a .txt) is no catalog
        then = (f", then `marscraters convert {gpkg} --out {out}` makes the {out.suffix} file"
                if out.suffix.lower() in (".csv", ".diam", ".scc") else " (`marscraters convert` makes .csv, .diam "
                "and .scc files from it)")
        raise InvalidArgumentError(f"`marscraters catalog` writes a GeoPackage: pass --out {gpkg}{then}")
    if args.min_score is not None and not 0.0 <= args.min_score < 1.0:
        raise InvalidArgumentError(f"--min-score {args.min_score:g} must lie in [0, 1): it is the crater score "
                                   "(the verifier's probability, or the circle finder's score with --no-verify)")
    if not store.exists():
        raise InvalidArgumentError(f"{store} does not exist; write it first with 'marscraters segment'.")
    from .segment import unfinished_run

    unfinished = unfinished_run(store)
    if unfinished:
        raise InvalidArgumentError(unfinished)
    try:
        # segment_to_zarr does not consolidate; no dask chunks: catalog_from_probability reads the
        # store in its own blocks, one read of many storage chunks each, whatever the storage
        ds = xr.open_zarr(store, decode_coords="all", consolidated=False, chunks=None)
    except Exception as exc:  # noqa: BLE001 -- zarr raises many kinds
        raise MosaicError(f"{store} is not a readable Zarr store ({exc}); rerun 'marscraters segment'.") from exc
    options: dict[str, Any] = {}
    if args.min_score is not None:
        options["min_score"] = args.min_score
    if args.max_diameter_px is not None:
        options["max_diameter_px"] = args.max_diameter_px
    options.update(engine_options(getattr(args, "finder_engine", "auto")))
    levels = getattr(args, "levels", "auto")
    if args.mosaic is None and levels not in ("auto", 1):
        raise InvalidArgumentError(f"--levels {levels} segments the coarser levels from the image: give the mosaic "
                                   "the store was segmented from with --mosaic cube.zarr, or leave --levels out")
    mosaic = None
    if args.mosaic is not None and (not args.no_verify or levels != 1):
        from .mosaic import open_mosaic

        mosaic = open_mosaic(args.mosaic)
    common = {"kind": args.kind, "model": args.model, "extract_options": options, "progress": not args.quiet,
              "source": str(ds.attrs.get("source") or store), "verify": False if args.no_verify else None}
    if mosaic is not None and levels != 1:
        cat = catalog_from_mosaic(mosaic, ds, levels=levels, **common)
    else:
        cat = catalog_from_probability(ds, mosaic=mosaic, **common)
    from . import __version__

    metadata = {
        "model": cat.attrs.get("model"),
        "model_version": cat.attrs.get("model_version"),
        "parameters": cat.attrs.get("parameters"),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "software_version": __version__,
        "input": os.fspath(store),
        "input_mosaic": cat.attrs.get("input_mosaic"),
    }
    write_catalog(cat, out, overwrite=args.overwrite, metadata=metadata)
    print(f"wrote {len(cat)} craters to {out}")
    return 0
