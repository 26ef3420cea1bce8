"""Mosaics: read THEMIS tiles and GeoTIFFs, assemble them, fill gaps, and store them as Zarr cubes.

A *Mosaic* is an :class:`xarray.Dataset` with a float32 ``ir`` variable on ``(y, x)``, NaN where
there is no data, and a rioxarray ``spatial_ref`` coordinate holding a Mars CRS and the affine
transform.  ``x``/``y`` are pixel-centre coordinates in CRS units.

Every reader here is lazy: pixels are read in windows, inside dask tasks, so a 7680 x 7680 THEMIS
tile (236 MB as float32) never has to sit in memory at once.  :func:`ingest` turns one or more
images into a Zarr v3 cube, and :func:`open_mosaic` reopens it with its CRS.

Integer imagery stays integer on disk.  The readers note the image's integer type and a free
value for no data in ``ir.encoding`` (``dtype``, ``_FillValue``: 8-bit THEMIS tiles are stored
as uint8 with 0 for no data, a quarter of float32's bytes); :func:`ingest` writes that, and
:func:`open_mosaic` decodes it back to float32 with NaN, so the Mosaic contract never changes.

The pipeline in one breath::

    ingest(["thm_dir_N-30_000.png", "thm_dir_N-30_030.png"], "cube.zarr")
    ds = fill_missing(open_mosaic("cube.zarr"))
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import pyproj
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window
from tqdm import tqdm

from ._io import _remove, atomic_path, check_output
from .crs import (
    MARS_GEOGRAPHIC,
    MOSAIC_CRS_FIX,
    Grid,
    _crs_label,
    check_planetocentric,
    pixel_scale_m,
    px_per_deg_for_scale,
    to_mars_crs,
)
from .errors import (
    CorruptImageError,
    CRSError,
    ImageReadError,
    InvalidArgumentError,
    MissingCRSError,
    MosaicError,
    TileNameError,
)

__all__ = [
    "TILE_SOUTH_EDGES",
    "TILE_WEST_EDGES",
    "TILE_SIZE_DEG",
    "TILE_SIZE_PX",
    "DEFAULT_CHUNK",
    "parse_tile_name",
    "tile_name",
    "read_themis_tile",
    "read_geotiff",
    "read_image",
    "read_plain_image",
    "mosaic_from_array",
    "validate_mosaic",
    "combine_tiles",
    "fill_missing",
    "coarsen_mosaic",
    "ingest",
    "open_mosaic",
    "mosaic_footprint",
]

#: South edges (degrees N) of the ASU THEMIS ``thm_dir`` tiles.
TILE_SOUTH_EDGES: tuple[int, ...] = (-90, -60, -30, 0, 30, 60)
#: West edges (degrees E, 0..360) of the ASU THEMIS ``thm_dir`` tiles.
TILE_WEST_EDGES: tuple[int, ...] = tuple(range(0, 360, 30))
#: Side of a THEMIS tile in degrees.
TILE_SIZE_DEG: int = 30
#: Side of a full ASU THEMIS tile in pixels (256 px/deg over 30 degrees).
TILE_SIZE_PX: int = 7680

_TILE_PATTERN = "thm_dir_N{lat}_{lon:03d}.png"
_TILE_RE = re.compile(r"^thm_dir_N(-?\d{2})_(\d{3})(?:\.png)?$", re.IGNORECASE)
_TILE_HELP = (
    f"THEMIS tile names follow {_TILE_PATTERN!r}, where lat is the south edge "
    f"({', '.join(f'{s:02d}' for s in TILE_SOUTH_EDGES)}) and lon the west edge in degrees east "
    "(000, 030, ..., 330), for example 'thm_dir_N-30_030.png' (lat -30..0, lon 30..60)"
)

log = logging.getLogger("marscraters.mosaic")

#: Default storage chunk (pixels) of Zarr cubes written by :func:`ingest`.
DEFAULT_CHUNK = 512
# PNG decodes row by row, so full-width strips are read in one pass; GeoTIFFs are tiled.
_DEFAULT_PNG_STRIP_ROWS = DEFAULT_CHUNK
_DEFAULT_GDAL_CHUNKS = (2048, 2048)
# Cap on one dask block of an ingest (float32 bytes): about 64 MB.
_MAX_DASK_BLOCK_BYTES = 64 * 2**20

_PNG_SUFFIXES = {".png"}
_GDAL_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".cub", ".jp2"}
_ZARR_SUFFIXES = {".zarr"}
# files that are images (never a Zarr store, which is a folder)
_IMAGE_FILE_SUFFIXES = _PNG_SUFFIXES | _GDAL_SUFFIXES | {".jpg", ".jpeg", ".pgm", ".bmp", ".gif"}

Chunks = int | tuple[int, int] | Mapping[str, int] | Literal["auto"] | None

# The encoding keys that store ``ir`` as integers (the rest of an encoding is the store's own),
# and all the keys that depend on the stored type (a float32 write cannot use them).
_STORAGE_KEYS = ("dtype", "_FillValue")
#: How far :func:`combine_tiles` lets tiles' pixel sizes differ (relative; more for tiles under
#: 1000 px, see ``_res_tolerance``) and their edges sit off one pixel lattice (pixels).  Bounds
#: stored to 1e-6 degrees (an index of crops, a world file) give pixel sizes a few 1e-6 apart and
#: edges ~1e-3 px off; a real mismatch (a 1 % different resolution, a half-pixel shift) is far
#: beyond both.
_RES_REL_TOL = 1e-5
_LATTICE_TOL_PX = 1e-2
_TYPED_KEYS = (*_STORAGE_KEYS, "fill_value", "serializer")


def _integer_storage(dtype: Any, nodata: float | None) -> dict[str, Any]:
    """How to store an image read from ``dtype`` pixels with ``nodata`` (already NaN in ``ir``).

    8- and 16-bit integers keep their type, with ``nodata`` (a value no valid pixel has) as the
    fill for NaN.  Without a nodata value every level may be valid, so 8-bit images go one type
    wider (uint16 with 65535, int16 with -32768: half of float32) and 16-bit ones stay float32.
    Wider or float images: ``{}`` (float32).
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize > 2:
        return {}
    info = np.iinfo(dtype)
    if nodata is not None and math.isfinite(nodata) and float(nodata).is_integer() and info.min <= nodata <= info.max:
        return {"dtype": dtype, "_FillValue": int(nodata)}
    if dtype.itemsize == 1:
        wide = np.dtype(np.uint16 if dtype.kind == "u" else np.int16)
        return {"dtype": wide, "_FillValue": int(np.iinfo(wide).max if dtype.kind == "u" else np.iinfo(wide).min)}
    return {}


def _with_storage(ds: xr.Dataset, storage: Mapping[str, Any]) -> xr.Dataset:
    """``ds`` with ``storage`` (:func:`_integer_storage`) in its ``ir`` encoding."""
    ds["ir"].encoding.update(storage)
    return ds


def _storage_fits(values: np.ndarray, storage: Mapping[str, Any]) -> bool:
    """Whether every finite value of ``values`` is stored exactly by ``storage``: whole numbers in
    the type's range, none equal to the fill (it would come back as NaN)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return True
    info = np.iinfo(storage["dtype"])
    return bool(info.min <= finite.min() and finite.max() <= info.max and np.array_equal(np.rint(finite), finite)
                and not (finite == storage["_FillValue"]).any())


# --------------------------------------------------------------------------------------------
# tile names
# --------------------------------------------------------------------------------------------


def parse_tile_name(name: str | os.PathLike[str]) -> tuple[int, int]:
    """Parse an ASU THEMIS Day IR tile name into its south and west edges.

    Parameters
    ----------
    name
        A file name or path such as ``"thm_dir_N-30_030.png"``; the ``.png`` suffix is optional.

    Returns
    -------
    tuple of int
        ``(south, west)``: the tile's south edge in degrees N (one of -90, -60, -30, 0, 30, 60)
        and its west edge in degrees E (0, 30, ..., 330).  The tile covers
        ``south..south + 30`` and ``west..west + 30``.

    Raises
    ------
    TileNameError
        If ``name`` does not follow the ``thm_dir_N{lat}_{lon:03d}.png`` pattern or names a tile
        that does not exist.

    Examples
    --------
    >>> parse_tile_name("thm_dir_N-30_030.png")
    (-30, 30)
    >>> parse_tile_name("/data/thm_dir_N00_330.png")
    (0, 330)
    """
    base = Path(os.fspath(name)).name
    match = _TILE_RE.match(base)
    if match is None:
        raise TileNameError(f"{base!r} is not a THEMIS tile name. {_TILE_HELP}.")
    south, west = int(match.group(1)), int(match.group(2))
    if south not in TILE_SOUTH_EDGES or west not in TILE_WEST_EDGES:
        raise TileNameError(
            f"{base!r} names no THEMIS tile (south edge {south}, west edge {west}). {_TILE_HELP}."
        )
    return south, west


def tile_name(south: float, west: float) -> str:
    """Return the ASU THEMIS tile file name whose south-west corner is ``(south, west)``.

    The inverse of :func:`parse_tile_name`.  ``west`` may be given in either longitude
    convention (-30 is the same tile as 330).

    Examples
    --------
    >>> tile_name(-30, 30)
    'thm_dir_N-30_030.png'
    >>> tile_name(0, -30)
    'thm_dir_N00_330.png'
    """
    if float(south) != int(south) or int(south) not in TILE_SOUTH_EDGES:
        raise TileNameError(f"south edge {south!r} is not a THEMIS tile edge. {_TILE_HELP}.")
    west360 = float(west) % 360.0
    if west360 != int(west360) or int(west360) not in TILE_WEST_EDGES:
        raise TileNameError(f"west edge {west!r} is not a THEMIS tile edge. {_TILE_HELP}.")
    return _TILE_PATTERN.format(lat=f"{int(south):02d}", lon=int(west360))


# --------------------------------------------------------------------------------------------
# building Mosaics
# --------------------------------------------------------------------------------------------


def _px_per_deg(transform: Affine, crs: pyproj.CRS) -> float | None:
    """Pixels per degree of a north-up grid, where that number means something."""
    if crs.is_geographic:
        return 1.0 / abs(transform.a)
    method = crs.coordinate_operation.method_name.lower() if crs.coordinate_operation else ""
    if "equidistant cylindrical" in method or "equirectangular" in method:
        # along meridians the scale is true whatever the standard parallel
        return px_per_deg_for_scale(abs(transform.e))
    return None


def _coord_attrs(crs: pyproj.CRS) -> tuple[dict[str, str], dict[str, str]]:
    if crs.is_geographic:
        return (
            {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"},
            {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"},
        )
    return (
        {"standard_name": "projection_x_coordinate", "long_name": "x", "units": "metre", "axis": "X"},
        {"standard_name": "projection_y_coordinate", "long_name": "y", "units": "metre", "axis": "Y"},
    )


def _build_mosaic(
    data: Any,
    transform: Affine,
    crs: pyproj.CRS,
    attrs: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Wrap a 2-D float32 array into a Mosaic with pixel-centre coordinates from ``transform``."""
    ny, nx = data.shape
    x = transform.c + (np.arange(nx) + 0.5) * transform.a
    y = transform.f + (np.arange(ny) + 0.5) * transform.e
    xattrs, yattrs = _coord_attrs(crs)
    all_attrs = dict(attrs or {})
    ppd = _px_per_deg(transform, crs)
    if ppd is not None:
        all_attrs.setdefault("px_per_deg", float(ppd))
    variables: dict[Hashable, Any] = {
        "ir": xr.Variable(("y", "x"), data, {"long_name": "THEMIS Day IR brightness"})
    }
    for key, value in (extra or {}).items():
        variables[key] = value
    ds = xr.Dataset(
        variables,
        coords={"x": xr.Variable("x", x, xattrs), "y": xr.Variable("y", y, yattrs)},
        attrs=all_attrs,
    )
    return _georeference(ds, crs, transform)


def _georeference(ds: xr.Dataset, crs: pyproj.CRS, transform: Affine) -> xr.Dataset:
    # write_crs marks every data variable with grid_mapping = spatial_ref, so the CRS survives Zarr
    ds = ds.rio.write_crs(crs)
    return ds.rio.write_transform(transform)


_BOUNDS_ORDER = "bounds=(west, south, east, north) (CLI: --bounds WEST SOUTH EAST NORTH)"
# the equirectangular Mars projection, in metres: what bounds too large for degrees most likely are
_METRE_CRS = "IAU_2015:49910"
_METRES_HINT = (f"If they are metres, pass crs='{_METRE_CRS}' (CLI: --crs {_METRE_CRS}), the Mars "
                "equirectangular projection, or the CRS they are in.")


def _num(value: float) -> str:
    """A bound as the user would type it (no float noise such as 360.40000000000003)."""
    return f"{value:.10g}"


def _bounds_fix(west: float, south: float, east: float, north: float) -> str:
    """A corrected ``bounds=`` in the Python and the command-line spelling (errors.cli_message keeps one)."""
    nums = [_num(v) for v in (west, south, east, north)]
    return f"bounds=({', '.join(nums)}) (CLI: --bounds {' '.join(nums)})"


def _check_bounds(bounds: Any, crs: pyproj.CRS) -> tuple[float, float, float, float]:
    """``bounds`` as four floats ``(west, south, east, north)``, or an error that says how to fix them.

    In any CRS the box must be finite and not empty or inverted.  In degrees (a geographic CRS)
    the latitudes must lie in -90..90, the box may span at most 360 degrees of longitude, and its
    west edge must lie in -360..360: either longitude convention (-180..180 or 0..360), also
    running past 180 or 360 across a meridian, or past -180 westwards (``wrap_lon`` places
    catalogs on any of these), but not a longitude a full turn or more away from both.

    Parameters
    ----------
    bounds
        ``(west, south, east, north)`` as the user gave them.
    crs
        Their (parsed) CRS.

    Returns
    -------
    tuple of float

    Raises
    ------
    InvalidArgumentError
        If the bounds are not four finite numbers or are impossible in ``crs``; the message
        suggests the likely intended bounds (lat/lon order swapped, metres given as degrees, a
        box across 0 or 180 degrees given in two conventions).
    """
    try:
        west, south, east, north = (float(b) for b in bounds)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"bounds must be four numbers, {_BOUNDS_ORDER}; got {bounds!r}") from exc
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise InvalidArgumentError(f"bounds must be finite numbers, {_BOUNDS_ORDER}; got {bounds!r}")
    given = ", ".join(_num(v) for v in (west, south, east, north))
    degrees = bool(crs.is_geographic)
    if degrees and not (-90.0 <= south <= 90.0 and -90.0 <= north <= 90.0):
        hint = ""
        if max(abs(west), abs(south), abs(east), abs(north)) > 720.0:
            # no longitude or latitude in degrees is this large
            hint = f" Numbers this large are not degrees. {_METRES_HINT}"
        elif -90.0 <= west <= 90.0 and -90.0 <= east <= 90.0:
            # the first and third numbers would be valid latitudes: the pairs are in lat/lon order
            hint = (f" They look like latitude/longitude order (south, west, north, east); the order is west, "
                    f"south, east, north: {_bounds_fix(south, west, north, east)}.")
        raise InvalidArgumentError(
            f"bounds ({given}) put the latitudes at {_num(south)}..{_num(north)} degrees, outside -90..90.{hint} "
            f"Give {_BOUNDS_ORDER}, in degrees on the Mars sphere unless crs= (CLI: --crs) says otherwise."
        )
    if not north > south:
        raise InvalidArgumentError(
            f"bounds ({given}) are empty or inverted: north ({_num(north)}) must be greater than south "
            f"({_num(south)}). Give {_BOUNDS_ORDER}"
            + (f": {_bounds_fix(west, north, east, south)}." if north < south else ".")
        )
    if not east > west:
        if degrees and 0.0 < east + 360.0 - west <= 180.0:
            # a small box across 0 or 180 degrees with its edges in two conventions (a wider one is
            # more likely west and east swapped)
            raise InvalidArgumentError(
                f"bounds ({given}) are empty or inverted: east ({_num(east)}) is not greater than west "
                f"({_num(west)}). If the image crosses the {_num((east // 180.0) * 180.0 % 360.0)} degree "
                f"meridian, give both edges in one convention, with east > west: east = {_num(east + 360.0)}, "
                f"{_bounds_fix(west, south, east + 360.0, north)}, or west = {_num(west - 360.0)}, "
                f"{_bounds_fix(west - 360.0, south, east, north)}."
            )
        raise InvalidArgumentError(
            f"bounds ({given}) are empty or inverted: east ({_num(east)}) must be greater than west "
            f"({_num(west)}). Give {_BOUNDS_ORDER}"
            + (f": {_bounds_fix(east, south, west, north)}." if east < west else ".")
        )
    if degrees and east - west > 360.0:
        hint = f" {_METRES_HINT}" if east - west > 720.0 else ""
        raise InvalidArgumentError(
            f"bounds ({given}) span {_num(east - west)} degrees of longitude, more than the planet's 360; "
            f"give the image's own west and east edges.{hint}"
        )
    if degrees and not -360.0 <= west < 360.0:
        # the same place in the -180..180 convention
        turns = math.floor((west + 180.0) / 360.0)
        hint = f" {_METRES_HINT}" if max(abs(west), abs(east)) > 720.0 else ""
        raise InvalidArgumentError(
            f"bounds ({given}) start at longitude {_num(west)}, a full turn or more away from both longitude "
            "conventions (-180..180 and 0..360): the west edge must lie in -360..360 degrees east. Did you mean "
            f"{_bounds_fix(west - 360.0 * turns, south, east - 360.0 * turns, north)}?{hint}"
        )
    return west, south, east, north


def _check_pixel_size(ds: xr.Dataset, bounds: Sequence[float], crs: Any, what: str) -> None:
    """Refuse bounds that make pixels outside the 1-1000 m :func:`marscraters.detect.detect` works at.

    Such a size almost always means the bounds are in another unit than their CRS: degrees given
    with a metre CRS (millimetre pixels), or km given as metres.  A geographic grid is measured
    along a meridian, where a degree is the same length everywhere on the Mars sphere (along a
    parallel it shrinks to nothing at the poles).

    Parameters
    ----------
    ds
        The Mosaic just built from ``bounds``.
    bounds
        The bounds as the user gave them (already checked by :func:`_check_bounds`).
    crs
        Their CRS as the user gave it (named in the message as given: the Mosaic's own has lost
        its authority code on the way through WKT).
    what
        The image's name in the message.

    Raises
    ------
    InvalidArgumentError
        If a pixel side is outside :data:`marscraters.detect.PIXEL_SIZE_RANGE_M`.
    """
    # imported here: detect imports this module's readers lazily, and this keeps it that way round
    from .detect import PIXEL_SIZE_RANGE_M, _linear_unit

    grid = Grid.from_dataset(ds)
    lo, hi = PIXEL_SIZE_RANGE_M
    factor: float | None = 1.0  # metres per CRS unit
    if grid.is_geographic:
        sizes = [pixel_scale_m(1.0 / abs(grid.transform.e))]
    else:
        factor = _linear_unit(grid.crs)
        if factor is None:
            return  # a unit we cannot convert: nothing to compare with
        sizes = [abs(grid.transform.a) * factor, abs(grid.transform.e) * factor]
    bad = [s for s in sizes if not lo <= s <= hi]
    if not bad:
        return
    size = bad[0]
    given = ", ".join(_num(float(v)) for v in bounds)
    ny, nx = grid.shape
    text = f"{size * 1000:.3g} mm" if size < 1.0 else f"{size / 1000:.4g} km" if size > hi else f"{size:.4g} m"
    degree_like = max(abs(float(v)) for v in bounds) <= 360.0
    km_like = lo <= size * 1000.0 <= hi
    if not grid.is_geographic and (degree_like or km_like):
        label = _crs_label(crs)
        guesses = []
        if degree_like:
            guesses.append("degrees (for degrees on the Mars sphere, leave out crs= (CLI: --crs))")
        if km_like:
            guesses.append("km (multiply them by 1000)")
        hint = f"They look like {' or '.join(guesses)}, not the {'metres' if factor == 1.0 else 'units'} of {label}."
    else:
        units = ("degrees on the Mars sphere unless crs= (CLI: --crs) says otherwise" if grid.is_geographic
                 else f"the units of {_crs_label(crs)}")
        hint = (f"Check that they are the outer edges of this image's pixels, in {units}; resample the image if "
                "its pixels really are this size.")
    raise InvalidArgumentError(
        f"bounds ({given}) make {what}'s {nx} x {ny} px pixels {text} on the ground, outside the {lo:g}-{hi:g} m "
        f"per pixel that marscraters finds craters at. {hint}"
    )


def mosaic_from_array(
    array: Any,
    bounds: tuple[float, float, float, float],
    crs: Any = MARS_GEOGRAPHIC,
    name: str | None = None,
    *,
    nodata: float | None = None,
) -> xr.Dataset:
    """Build a Mosaic from a 2-D numpy or dask array and its bounds.

    This is the canonical constructor for synthetic data and tests.  The array is not copied into
    memory if it is a dask array: the result stays lazy.

    Parameters
    ----------
    array
        2-D array of shape ``(ny, nx)``, row 0 at the north edge.  Converted to float32.
    bounds
        ``(west, south, east, north)`` of the outer pixel edges, in CRS units (degrees for a
        geographic CRS; longitudes may use either convention, or run past 360).
    crs
        A Mars CRS (default ``IAU_2015:49900``, longitude/latitude on the IAU 2015 sphere).
    name
        Recorded as the mosaic's ``source`` attribute.
    nodata
        Pixels equal to this value become NaN.

    Returns
    -------
    xarray.Dataset
        A Mosaic: float32 ``ir`` on ``(y, x)`` with CRS and transform.

    Raises
    ------
    InvalidArgumentError
        If the array is not 2-D, or the bounds are empty, inverted or impossible in ``crs``: in
        degrees, latitudes outside -90..90, more than 360 degrees of longitude, or a west edge
        outside -360..360.  The message suggests the likely intended bounds.
    MissingCRSError, NotMarsCRSError
        If ``crs`` is None or not a Mars CRS.

    Examples
    --------
    >>> ds = mosaic_from_array(np.ones((240, 240)), bounds=(30, -30, 60, 0))
    >>> ds.attrs["px_per_deg"]
    8.0
    """
    crs = to_mars_crs(crs, what="mosaic_from_array's crs")
    check_planetocentric(crs, what="mosaic_from_array's crs",
                         fix="crs='IAU_2015:49900' (CLI: --crs IAU_2015:49900)")
    if not isinstance(array, da.Array):
        array = np.asarray(array)
    if array.ndim != 2:
        raise InvalidArgumentError(
            f"mosaic_from_array needs a 2-D (y, x) array, got shape {array.shape}; "
            "select one band first (for example array[0])."
        )
    west, south, east, north = _check_bounds(bounds, crs)
    ny, nx = array.shape
    if ny == 0 or nx == 0:
        raise InvalidArgumentError(f"mosaic_from_array got an empty array of shape {array.shape}")
    data = array.astype(np.float32)
    if nodata is not None:
        if isinstance(data, da.Array):
            data = da.where(data == np.float32(nodata), np.float32(np.nan), data)
        else:
            data = np.where(data == np.float32(nodata), np.float32(np.nan), data)
    transform = Affine((east - west) / nx, 0.0, west, 0.0, -(north - south) / ny, north)
    attrs = {"source": name} if name is not None else {}
    return _with_storage(_build_mosaic(data, transform, crs, attrs), _integer_storage(array.dtype, nodata))


# the variable a probability map (segment's output) holds instead of the mosaic's ir
_PROBABILITY = "crater_probability"


def _probability_not_mosaic(what: str, store: str = "pred.zarr") -> str:
    """The message for a crater probability map given where a mosaic is expected."""
    return (
        f"{what} is a crater probability map ('{_PROBABILITY}', what segment writes), not a mosaic (the 'ir' "
        "grey levels the network reads). Give it as the probability map with the mosaic it was segmented from: "
        f"mosaic.craters.catalog(prob) or marscraters.catalog_from_probability(prob, mosaic=mosaic) (command "
        f"line: `marscraters catalog {store} --mosaic cube.zarr`)."
    )


def validate_mosaic(ds: Any) -> xr.Dataset:
    """Check that ``ds`` is a Mosaic and return it unchanged.

    A Mosaic is an :class:`xarray.Dataset` with a floating-point ``ir`` variable on ``(y, x)``,
    ``x``/``y`` coordinates and a Mars CRS.  Nothing is computed.

    Raises
    ------
    MosaicError
        If ``ds`` is not a Dataset, has no ``ir`` or has the wrong dims or dtype.
    MissingCRSError
        If it has no CRS.
    NotMarsCRSError
        If its CRS is not a Mars CRS.

    Examples
    --------
    >>> validate_mosaic(mosaic_from_array(np.ones((4, 4)), (0, 0, 1, 1)))  # doctest: +ELLIPSIS
    <xarray.Dataset> ...
    """
    if isinstance(ds, xr.DataArray):
        raise MosaicError(
            "expected a mosaic Dataset, got a DataArray; wrap it with da.to_dataset(name='ir')."
        )
    if isinstance(ds, (str, os.PathLike)):
        # a path is not opened here: open_mosaic is the one place a cube is read (CRS kept)
        raise MosaicError(
            f"expected a mosaic xarray.Dataset, got the {type(ds).__name__} {os.fspath(ds)!r}: if it is a cube's "
            f"path, open it first, marscraters.open_mosaic({os.fspath(ds)!r}), and pass that Dataset."
        )
    if not isinstance(ds, xr.Dataset):
        raise MosaicError(f"expected a mosaic xarray.Dataset, got {type(ds).__name__}")
    if "ir" not in ds.data_vars and _PROBABILITY in ds.data_vars:
        # following the rename advice below would run the network on a probability map
        raise MosaicError(_probability_not_mosaic("this Dataset"))
    if "ir" not in ds.data_vars:
        raise MosaicError(
            f"the mosaic has no 'ir' variable (variables: {list(ds.data_vars)}); rename the image "
            "variable, e.g. ds.rename({'band_data': 'ir'}), or build it with mosaic_from_array."
        )
    ir = ds["ir"]
    if ir.dims != ("y", "x"):
        hint = (
            "squeeze the band dimension (ds.squeeze('band', drop=True))"
            if "band" in ir.dims
            else "rename the spatial dims to ('y', 'x') and transpose"
        )
        raise MosaicError(f"the mosaic's 'ir' must have dims ('y', 'x'), got {ir.dims}; {hint}.")
    if not np.issubdtype(ir.dtype, np.floating):
        raise MosaicError(
            f"the mosaic's 'ir' has dtype {ir.dtype}; it must be floating point with NaN for no "
            "data: ds['ir'] = ds['ir'].where(ds['ir'] != 0).astype('float32')."
        )
    for dim in ("x", "y"):
        if dim not in ds.coords:
            raise MosaicError(
                f"the mosaic has no {dim!r} coordinate; build it with mosaic_from_array(array, bounds) "
                "so that pixel-centre coordinates are attached."
            )
    crs = ds.rio.crs
    if crs is None:
        raise MissingCRSError(
            "the mosaic has no CRS. Attach one with ds.rio.write_crs('IAU_2015:49900'), or reopen a "
            "Zarr cube with marscraters.open_mosaic(path), which keeps the CRS (decode_coords='all')."
        )
    check_planetocentric(to_mars_crs(crs.to_wkt(), what="the mosaic"), what="the mosaic", fix=MOSAIC_CRS_FIX)
    return ds


# --------------------------------------------------------------------------------------------
# THEMIS PNG tiles: windowed, lazy reads
# --------------------------------------------------------------------------------------------

# One open rasterio handle per file and process, shared by the dask tasks that read it.  PNG is
# decoded sequentially: a handle that stays open continues where the last strip ended, whereas a
# fresh handle per strip re-decodes the file from the top every time (quadratic: 7x slower on a
# 7680^2 tile).  A per-file lock serialises reads, because a GDAL dataset must not be used by two
# threads at once.  Handles are keyed by (path, mtime, size), so a replaced file is reopened.
_HANDLE_LIMIT = 8
_handles: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
_locks: dict[tuple[str, int, int], threading.Lock] = {}
_registry_lock = threading.Lock()

# GDAL >= 3.10 decodes whole PNG images through a fast path that silently zero-fills a truncated
# file (and 0 means "no data" here), so that path is switched off for every read.
_PNG_READ_ENV = {"GDAL_PNG_WHOLE_IMAGE_OPTIM": "NO"}


def _file_key(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return (path, st.st_mtime_ns, st.st_size)


def _lock_for(key: tuple[str, int, int]) -> threading.Lock:
    with _registry_lock:
        return _locks.setdefault(key, threading.Lock())


def _cached_handle(key: tuple[str, int, int]) -> Any:
    """Open (or reuse) the rasterio dataset for ``key``; the caller holds the file's lock."""
    with _registry_lock:
        handle = _handles.get(key)
        if handle is not None and not handle.closed:
            _handles.move_to_end(key)
            return handle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        handle = rasterio.open(key[0])
    evicted = []
    with _registry_lock:
        _handles[key] = handle
        while len(_handles) > _HANDLE_LIMIT:
            old_key, old = _handles.popitem(last=False)
            # never close a handle another thread may be reading: only evict idle files
            if _locks.get(old_key, threading.Lock()).locked():
                _handles[old_key] = old
                break
            evicted.append(old)
    for old in evicted:
        old.close()
    return handle


def _drop_handle(key: tuple[str, int, int]) -> None:
    """Close the cached handle of ``key`` (after a failed read; the caller holds its lock)."""
    with _registry_lock:
        handle = _handles.pop(key, None)
    if handle is not None:
        handle.close()


def _close_handles(paths: Sequence[str]) -> None:
    """Close the cached handles of ``paths`` (frees GDAL's cached lines of those files)."""
    wanted = set(paths)
    with _registry_lock:
        keys = [k for k in _handles if k[0] in wanted]
        for key in keys:
            lock = _locks.get(key)
            if lock is not None and lock.locked():
                continue
            _handles.pop(key).close()


def _read_window(
    path: str,
    key: tuple[str, int, int],
    band: int,
    lut: np.ndarray | None,
    window: tuple[int, int, int, int],
    nodata: float | tuple[float, ...] | None = 0.0,
    masked: bool = False,
) -> np.ndarray:
    """Read rows ``r0:r1`` and columns ``c0:c1`` of a raster as float32, no data -> NaN (a dask task).

    No data is every pixel equal to ``nodata`` (one value or several: the file's and the caller's)
    and, with ``masked``, every pixel GDAL's mask of the band marks invalid (a mask band, an
    alpha band of 0: :func:`_has_gdal_mask`), read window by window like the pixels.

    Decoding errors (a truncated PNG or GeoTIFF) become :class:`CorruptImageError` naming the file,
    wherever the scheduler runs the task.
    """
    r0, r1, c0, c1 = window
    try:
        current = _file_key(path)
    except OSError as exc:
        raise ImageReadError(f"{path} disappeared after it was opened ({exc}); check the path.") from exc
    if current != key:
        raise ImageReadError(
            f"{path} changed on disk after it was opened; open it again (read_themis_tile) so that "
            "old and new pixels are not mixed."
        )
    with _lock_for(key):
        try:
            with rasterio.Env(**_PNG_READ_ENV):
                handle = _cached_handle(key)
                raw = handle.read(band, window=Window(c0, r0, c1 - c0, r1 - r0))
                valid = handle.read_masks(band, window=Window(c0, r0, c1 - c0, r1 - r0)) if masked else None
        except (RasterioError, OSError) as exc:
            _drop_handle(key)
            raise CorruptImageError(
                f"{path} could not be decoded (rows {r0}..{r1}): {_gdal_reason(exc)}. The file is "
                "truncated or corrupt; delete it and download (marscraters.download_themis) or export it again."
            ) from exc
    out = lut[raw] if lut is not None else raw.astype(np.float32)
    for value in (() if nodata is None else nodata if isinstance(nodata, tuple) else (nodata,)):
        out[(out == value) | (np.isnan(out) if np.isnan(value) else False)] = np.nan
    if valid is not None:
        out[valid == 0] = np.nan
    return out


def _has_gdal_mask(src: Any, band: int = 1) -> bool:
    """Whether GDAL marks pixels of ``band`` invalid beyond its nodata value: an internal or external
    mask band (``GDAL_TIFF_INTERNAL_MASK``, ``.msk``, JPEG-compressed GeoTIFFs) or an alpha band
    (``gdalwarp -dstalpha``, RGBA and grey+alpha images).  A nodata value alone is compared
    directly (cheaper than reading GDAL's mask of it)."""
    from rasterio.enums import MaskFlags

    return not ({MaskFlags.all_valid, MaskFlags.nodata} & set(src.mask_flag_enums[band - 1]))


def _check_nodata(nodata: Any) -> float | None:
    """A caller's declared no-data value: None, or a number (a grey level of the image)."""
    if nodata is None:
        return None
    if isinstance(nodata, (bool, np.bool_)):
        raise InvalidArgumentError(f"nodata must be a grey level, e.g. nodata=0 (CLI: --nodata 0), got {nodata!r}")
    try:
        return float(nodata)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"nodata must be a grey level, e.g. nodata=0 (CLI: --nodata 0), got {nodata!r}") from None


def _nodata_values(*values: float | None) -> tuple[float, ...] | None:
    """The distinct no-data values of a read (the file's, the caller's), None when there are none."""
    kept: list[float] = []
    for v in values:
        if v is not None and not any(v == k or (np.isnan(v) and np.isnan(k)) for k in kept):
            kept.append(float(v))
    return tuple(kept) or None


def _storage_for(dtype: Any, *nodata: float | None) -> dict[str, Any]:
    """:func:`_integer_storage` with the first of ``nodata`` that keeps the image's own integer type."""
    for value in nodata:
        storage = _integer_storage(dtype, value)
        if value is not None and storage and np.dtype(storage["dtype"]) == np.dtype(dtype):
            return storage
    return _integer_storage(dtype, None)


def _without_value(ds: xr.Dataset, nodata: float | None) -> xr.Dataset:
    """``ds`` with the ``ir`` pixels equal to ``nodata`` as NaN, lazily (its storage kept)."""
    if nodata is None:
        return ds
    ir = ds["ir"]
    out = ir.where(ir != np.float32(nodata)) if not np.isnan(nodata) else ir
    out.attrs, out.encoding = dict(ir.attrs), dict(ir.encoding)
    return ds.assign(ir=out)


def _gdal_reason(exc: BaseException) -> str:
    """The innermost GDAL message behind a rasterio error ('Read failed' alone says nothing)."""
    reason = str(exc)
    seen = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        reason = str(cause.args[-1]) if cause.args else str(cause)
        cause = cause.__cause__ or cause.__context__
    return reason.rstrip(".")


def _raster_dask_array(
    path: str,
    band: int,
    lut: np.ndarray | None,
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
    nodata: float | tuple[float, ...] | None = 0.0,
    masked: bool = False,
) -> da.Array:
    """A dask array whose tasks each read one window of a raster (a THEMIS PNG or a GeoTIFF).

    The tasks are independent, so any scheduler may run them in any order.  PNG decodes row by
    row, though, and a window above the last one read restarts decoding from the top of the
    file: dask's own order (9, 8, ..., 2, 14, ..., 10, 1, 0 for a tile's 15 strips) made a
    whole-tile compute 7x the work of one decode.  :func:`ingest` therefore writes one row strip
    at a time, top to bottom.  (Chaining the tasks to force file order was tried and dropped:
    the scheduler then ran the reads ahead of their consumers and held the whole tile.)
    """
    key = _file_key(path)
    name = f"read-raster-{dask.base.tokenize(key, band, chunks, lut, nodata, masked)}"
    row_edges = np.cumsum((0, *chunks[0]))
    col_edges = np.cumsum((0, *chunks[1]))
    graph: dict[Any, Any] = {}
    for i in range(len(chunks[0])):
        for j in range(len(chunks[1])):
            window = (int(row_edges[i]), int(row_edges[i + 1]), int(col_edges[j]), int(col_edges[j + 1]))
            graph[(name, i, j)] = (_read_window, path, key, band, lut, window, nodata, masked)
    return da.Array(graph, name, chunks=chunks, dtype=np.float32, meta=np.empty((0, 0), dtype=np.float32))


def _plain_header(path: str) -> dict[str, Any]:
    """Shape, band count, dtype, nodata, CRS and palette of a PNG/JPEG (one read of its header).

    Raises :class:`rasterio.errors.RasterioError` for the caller to word for its own input.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            try:
                colormap = src.colormap(1)
            except ValueError:
                colormap = None
            return {"shape": (src.height, src.width), "count": src.count, "dtype": np.dtype(src.dtypes[0]),
                    "nodata": None if src.nodata is None else float(src.nodata), "crs": src.crs,
                    "colormap": colormap, "masked": _has_gdal_mask(src),
                    # a CRS with GDAL's default geotransform places no pixel: not georeferenced
                    "placed": src.crs is not None and (not src.transform.is_identity or bool(src.gcps[0]))}


def _palette_lut(colormap: Mapping[int, Any] | None) -> np.ndarray | None:
    """A palette image's grey levels: its palette's red channel per index (None without a palette)."""
    if not colormap:
        return None
    lut = np.zeros(max(256, max(colormap) + 1), dtype=np.float32)
    for index, rgba in colormap.items():
        lut[index] = rgba[0]
    return lut


def _png_is_complete(path: Path) -> bool:
    """True when the file ends with a PNG IEND chunk (a cut-off download does not)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 32))
        return b"IEND" in fh.read()


def _normalize_chunks(chunks: Chunks, shape: tuple[int, int], default: tuple[int, int]) -> tuple[Any, Any]:
    """Turn a user ``chunks`` argument into dask's ((rows, ...), (cols, ...))."""
    if chunks is None:
        chunks = default
    if isinstance(chunks, Mapping):
        unknown = set(chunks) - {"y", "x"}
        if unknown:
            raise InvalidArgumentError(f"chunks may only name 'y' and 'x', got {sorted(unknown)}")
        chunks = (chunks.get("y", -1), chunks.get("x", -1))
    try:
        return da.core.normalize_chunks(chunks, shape, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(
            f"invalid chunks {chunks!r} for an image of shape {shape}: {exc}. "
            "Use an int, a (rows, cols) tuple or {'y': rows, 'x': cols} (-1 means the full extent)."
        ) from exc


def read_themis_tile(
    path: str | os.PathLike[str], chunks: Chunks = None, *, nodata: float | None = None
) -> xr.Dataset:
    """Open an ASU THEMIS Day IR tile (``thm_dir_N{lat}_{lon:03d}.png``) lazily as a Mosaic.

    Georeferencing comes from the file name (the PNG carries none): the tile covers
    ``south..south+30`` degrees N and ``west..west+30`` degrees E, with ``x`` in the tile's
    0..360 convention.  Any square size is accepted; ``px_per_deg = size / 30`` (256 for the real
    7680 x 7680 tiles), with a warning for any other size, which may be a crop rather than a
    downsampled tile.  Pixels are read in windows inside dask tasks.

    Parameters
    ----------
    path
        The tile file.  Its name must follow the THEMIS pattern.
    chunks
        Dask chunks: ``None`` (default) for full-width strips of 512 rows, which PNG decodes
        fastest (it is a row-by-row format); an int for square blocks; ``(rows, cols)`` or
        ``{"y": rows, "x": cols}``; ``-1`` for the full extent.
    nodata
        Another grey level that marks no data (0 always does).

    Returns
    -------
    xarray.Dataset
        A Mosaic with float32 ``ir`` (value 0 becomes NaN), CRS ``IAU_2015:49900``, and attrs
        ``source`` (the file) and ``px_per_deg``.  Colour or grey+alpha PNGs contribute their
        first band, and their transparent pixels (alpha 0) are no data; palette PNGs are mapped
        through their palette's red channel.

    Raises
    ------
    TileNameError
        If the file name is not a THEMIS tile name.
    ImageReadError
        If the file does not exist or is not square.
    CorruptImageError
        If the file is not a readable PNG or is truncated -- at open time when it can be seen
        then, otherwise when the bad pixels are computed.

    Warns
    -----
    UserWarning
        If the tile is not :data:`TILE_SIZE_PX` pixels square: it is still spread over the
        whole 30 x 30 degrees, which is wrong for a crop.

    Notes
    -----
    PNG decodes sequentially: a block above the last one read restarts decoding from the top of
    the file.  Computing a whole tile in dask's order therefore costs a few decodes (2.7x the
    time of :func:`ingest`, which writes strips top to bottom).  For repeated or random access,
    ingest the tile into a Zarr cube first.  Memory stays bounded either way.

    Examples
    --------
    >>> ds = read_themis_tile("thm_dir_N-30_030.png")  # doctest: +SKIP
    >>> ds.rio.bounds()  # doctest: +SKIP
    (30.0, -30.0, 60.0, 0.0)
    """
    path = Path(path)
    south, west = parse_tile_name(path.name)
    if not path.is_file():
        raise ImageReadError(
            f"THEMIS tile {path} does not exist; download it with "
            f"marscraters.download_themis or check the path."
        )
    spath = str(path.resolve())
    if not _png_is_complete(path):
        raise CorruptImageError(
            f"{path} is truncated (no PNG end marker); delete it and download it again "
            "(marscraters.download_themis)."
        )
    try:
        header = _plain_header(spath)
        height, width = header["shape"]
        count, dtype, colormap = header["count"], header["dtype"], header["colormap"]
    except RasterioError as exc:
        raise CorruptImageError(
            f"{path} is not a readable PNG image ({exc}); delete it and download it again."
        ) from exc
    if count < 1 or not np.issubdtype(dtype, np.integer):
        raise CorruptImageError(f"{path} has no integer image band (bands={count}, dtype={dtype}).")
    if height != width:
        raise ImageReadError(
            f"{path} is {width} x {height} px, but a THEMIS tile is square (30 x 30 degrees); "
            "crop or resample it to a square, or use mosaic_from_array with explicit bounds."
        )
    lut = _palette_lut(colormap)
    row_chunks, col_chunks = _normalize_chunks(chunks, (height, width), (_DEFAULT_PNG_STRIP_ROWS, -1))
    data = _raster_dask_array(spath, 1, lut, (row_chunks, col_chunks),
                              nodata=_nodata_values(0.0, _check_nodata(nodata)), masked=header["masked"])
    ppd = width / TILE_SIZE_DEG
    if width != TILE_SIZE_PX:
        # a crop or a downsampled copy under a tile's name would be spread over the whole tile unsaid
        warnings.warn(
            f"{path.name} is {width} x {height} px, not the {TILE_SIZE_PX} x {TILE_SIZE_PX} px of a full THEMIS "
            f"tile: it is taken to cover the whole tile, lon {west}..{west + TILE_SIZE_DEG}, "
            f"lat {south}..{south + TILE_SIZE_DEG}, "
            f"at {ppd:.4g} px/deg ({pixel_scale_m(ppd):.4g} m per pixel). If it covers less (a crop), give its own "
            "bounds=(west, south, east, north) (CLI: --bounds WEST SOUTH EAST NORTH).",
            UserWarning, stacklevel=2,
        )
    transform = Affine(1.0 / ppd, 0.0, float(west), 0.0, -1.0 / ppd, float(south + TILE_SIZE_DEG))
    ds = _build_mosaic(data, transform, MARS_GEOGRAPHIC, {"source": spath, "px_per_deg": float(ppd)})
    # a palette maps indices to its 8-bit red channel
    return _with_storage(ds, _integer_storage(np.uint8 if lut is not None else dtype, 0))


# --------------------------------------------------------------------------------------------
# GeoTIFF (and any GDAL raster with a Mars CRS)
# --------------------------------------------------------------------------------------------


def read_geotiff(path: str | os.PathLike[str], chunks: Chunks = None, *, nodata: float | None = None) -> xr.Dataset:
    """Open a GeoTIFF (or any GDAL raster) with a Mars CRS lazily as a Mosaic.

    For the USGS THEMIS Day IR 100 m global mosaic, the controlled mosaics, or any georeferenced
    crop of them, in a geographic or equirectangular Mars CRS.  The first band becomes ``ir``,
    read in windows inside dask tasks.  No data is what GDAL's mask of that band says: the
    file's nodata value, and the pixels a mask band (internal, as ``GDAL_TIFF_INTERNAL_MASK``
    and JPEG-compressed GeoTIFFs write, or an external ``.msk``) or an alpha band
    (``gdalwarp -dstalpha``) marks invalid, read window by window with the pixels.

    Parameters
    ----------
    path
        The raster file.
    chunks
        Dask chunks: ``None`` (default) for 2048 x 2048 blocks; an int; ``(rows, cols)``;
        ``{"y": rows, "x": cols}``; or ``"auto"``.
    nodata
        A grey level that marks no data in a file that does not declare it (a black collar
        around a map-projected strip): pixels equal to it become NaN too.

    Returns
    -------
    xarray.Dataset
        A Mosaic: float32 ``ir`` with no data (above) as NaN, the file's CRS and
        transform (flipped to north-up if stored south-up), attrs ``source`` and, for geographic
        and equirectangular grids, ``px_per_deg``.

    Raises
    ------
    ImageReadError
        If the file does not exist or GDAL cannot read it.
    MissingCRSError
        If the file has no CRS, or a CRS but no geotransform (GDAL's default, which
        ``gdal_translate -a_srs`` without ``-a_ullr`` writes): it is then not georeferenced,
        and is placed with ``bounds=`` (:func:`read_image`).
    NotMarsCRSError
        If its CRS is not a Mars CRS (for example EPSG:4326).

    Examples
    --------
    >>> ds = read_geotiff("Mars_MO_THEMIS-IR-Day_mosaic_global_100m_v12.tif")  # doctest: +SKIP
    >>> ds = read_geotiff("ctx_strip.tif", nodata=0)  # its black collar is no data  # doctest: +SKIP
    """
    path = Path(path)
    declared = _check_nodata(nodata)
    if not path.exists():
        raise ImageReadError(f"raster {path} does not exist; check the path.")
    spath = str(path.resolve())
    try:
        with warnings.catch_warnings():
            # GDAL's default geotransform is refused below, with a message that says why
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(spath) as src:
                shape = (src.height, src.width)
                file_crs = src.crs
                transform = src.transform
                nodata = None if src.nodata is None else float(src.nodata)
                dtype = np.dtype(src.dtypes[0])
                masked = _has_gdal_mask(src)
                gcps = bool(src.gcps[0])
    except RasterioError as exc:
        raise CorruptImageError(f"{path} is not a raster GDAL can read ({exc}).") from exc
    if file_crs is None:
        # without a geotransform either, -a_srs alone would leave it at GDAL's default (1 unit per pixel)
        place = (" and the bounds of its outer pixel edges (it has no geotransform either), for example "
                 f"`gdal_edit.py -a_srs '+proj=longlat +R=3396190 +no_defs' -a_ullr WEST NORTH EAST SOUTH {path.name}`"
                 if transform.is_identity and not gcps else
                 f", for example `gdal_edit.py -a_srs '+proj=longlat +R=3396190 +no_defs' {path.name}`")
        raise MissingCRSError(
            f"{path} has no coordinate reference system. Assign its Mars CRS{place}, or read the "
            "pixels yourself and call mosaic_from_array(array, bounds, crs='IAU_2015:49900')."
        )
    if transform.is_identity:
        raise MissingCRSError(_no_geotransform_message(path, gcps))
    crs = to_mars_crs(file_crs.to_wkt(), what=str(path))
    check_planetocentric(crs, what=str(path))
    if transform.b != 0 or transform.d != 0:
        raise ImageReadError(
            f"{path} has a rotated geotransform {tuple(transform)[:6]}; warp it to a north-up "
            "grid first (gdalwarp)."
        )
    row_chunks, col_chunks = _normalize_chunks(chunks, shape, _DEFAULT_GDAL_CHUNKS)
    # our own windowed reader (not rioxarray's), so a truncated file fails as CorruptImageError
    data = _raster_dask_array(
        spath, 1, None, da.core.normalize_chunks((row_chunks, col_chunks), shape, dtype=np.float32),
        nodata=_nodata_values(nodata, declared), masked=masked,
    )
    if transform.e > 0:
        # stored south-up: flip lazily to the north-up convention every Mosaic uses
        data = data[::-1]
        top = transform.f + transform.e * shape[0]
        transform = Affine(transform.a, 0.0, transform.c, 0.0, -transform.e, top)
    return _with_storage(_build_mosaic(data, transform, crs, {"source": spath}), _storage_for(dtype, nodata, declared))


def _no_geotransform_message(path: Path, gcps: bool = False) -> str:
    """Why a raster with a CRS but GDAL's default (identity) geotransform is not georeferenced, and the fix."""
    if gcps:
        return (f"{path} has a CRS but is placed by ground control points, not a geotransform, so its pixels are not "
                "on a map grid yet: warp it first, e.g. `gdalwarp -t_srs IAU_2015:49910 in.tif out.tif`.")
    # gdal_translate -a_srs without -a_ullr, or gdal_edit.py -a_srs on a plain TIFF, makes such a file;
    # read as it is, it would be 1 CRS unit per pixel and south-up (flipped)
    return (f"{path} has a CRS but no geotransform (GDAL's default: 1 unit per pixel from 0, 0), so where its "
            "pixels lie and their size are unknown. Give it the bounds of its outer pixel edges, in its CRS's "
            f"units: `gdal_edit.py -a_ullr WEST NORTH EAST SOUTH {path.name}` (or `gdal_translate -a_ullr WEST NORTH "
            "EAST SOUTH in.tif out.tif`), or read it as a plain image with "
            "bounds=(west, south, east, north) (CLI: --bounds WEST SOUTH EAST NORTH), in degrees on the Mars sphere "
            "unless crs=<CRS> (CLI: --crs CRS) names another.")


def read_image(
    path: str | os.PathLike[str],
    chunks: Chunks = None,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    crs: Any = None,
    nodata: float | None = None,
) -> xr.Dataset:
    """Open any supported image as a lazy Mosaic, choosing the reader from the file name.

    * ``thm_dir_N{lat}_{lon:03d}.png`` -> :func:`read_themis_tile`
    * ``.tif``, ``.tiff``, ``.vrt``, ``.img``, ``.cub``, ``.jp2`` -> :func:`read_geotiff`
    * ``.zarr`` -> :func:`open_mosaic`
    * with ``bounds``: any image without georeferencing (PNG, JPEG, plain TIFF...) ->
      :func:`read_plain_image`

    Parameters
    ----------
    path
        The image file (or Zarr cube).
    chunks
        Dask chunks, as the reader takes them.
    bounds
        ``(west, south, east, north)`` of an image that carries no georeferencing (a plain PNG or
        JPEG crop): the outer edges of its pixels, in ``crs`` units.
    crs
        With ``bounds``: their CRS (default ``IAU_2015:49900``, degrees on the Mars sphere).
    nodata
        A grey level that marks no data where the file does not say so (a black collar): its
        pixels become NaN, besides those of the file's own nodata value, mask or alpha band.

    Raises
    ------
    ImageReadError
        If the file does not exist, or its suffix names no reader.
    TileNameError
        For a PNG whose name is not a THEMIS tile name, without ``bounds``.
    InvalidArgumentError
        If ``crs`` is given without ``bounds``, ``bounds`` for a georeferenced file, or
        ``bounds`` that cannot be right (see :func:`read_plain_image`).

    Examples
    --------
    >>> ds = read_image("thm_dir_N-30_030.png")  # doctest: +SKIP
    >>> crop = read_image("crop.jpg", bounds=(30.0, -0.7, 30.7, 0.0))  # doctest: +SKIP
    """
    p = Path(path)
    suffix = p.suffix.lower()
    nodata = _check_nodata(nodata)
    if not p.exists():
        raise ImageReadError(f"{p} does not exist; check the path.")
    if bounds is not None:
        return read_plain_image(p, bounds, MARS_GEOGRAPHIC if crs is None else crs, chunks=chunks, nodata=nodata)
    if crs is not None:
        raise InvalidArgumentError(
            f"crs= is the CRS of bounds= (CLI: --crs goes with --bounds); {p.name} gets its georeferencing "
            "from its own file, so leave crs out, or give bounds=(west, south, east, north) too "
            "(CLI: --bounds WEST SOUTH EAST NORTH)."
        )
    place = ("give its bounds, in degrees on the Mars sphere unless crs=... (CLI: --crs CRS) says otherwise: "
             "bounds=(west, south, east, north) (CLI: --bounds WEST SOUTH EAST NORTH)")
    if suffix in _PNG_SUFFIXES:
        if not _TILE_RE.match(p.name):
            raise TileNameError(
                f"{p.name!r} is not a THEMIS tile name, and a plain PNG carries no georeferencing: {place}. "
                f"{_TILE_HELP}."
            )
        return read_themis_tile(p, chunks=chunks, nodata=nodata)
    if suffix in _GDAL_SUFFIXES:
        return read_geotiff(p, chunks=chunks, nodata=nodata)
    if suffix in _ZARR_SUFFIXES:
        return _without_value(open_mosaic(p, chunks=chunks), nodata)
    raise ImageReadError(
        f"cannot tell how to read {p} from its suffix {suffix!r}. Supported: THEMIS tiles "
        f"({_TILE_PATTERN}), rasters with a Mars CRS ({', '.join(sorted(_GDAL_SUFFIXES))}) and "
        f"Zarr cubes (.zarr). For an image without georeferencing (PNG, JPEG...), {place}."
    )


def _orientation(im: Any) -> int:
    """An open PIL image's EXIF orientation: 1 when it is stored as a viewer shows it."""
    return int(im.getexif().get(0x0112, 1) or 1)


def _as_viewed(im: Any) -> Any:
    """An open PIL image as a viewer shows it, its EXIF orientation applied (copied only when it has one)."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(im) if _orientation(im) != 1 else im


def _refuse_turned(path: Path) -> None:
    """Refuse an image stored turned or mirrored (an EXIF orientation other than 1).

    ``detect`` reads it as a viewer shows it, but the windowed reader here reads the pixels as
    stored, so bounds given for the picture a viewer shows would place its pixels wrongly.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            orientation = _orientation(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return  # not PIL's (a GDAL-only raster): no EXIF to read
    if orientation != 1:
        raise ImageReadError(
            f"{path} is stored turned or mirrored (EXIF orientation {orientation}): its pixels are not the picture a "
            "viewer shows, which its bounds describe. Save it with the orientation applied first, e.g. "
            "`exiftran -ai FILE` or PIL's ImageOps.exif_transpose(Image.open(FILE)).save(NEW), and ingest that.")


def read_plain_image(
    path: str | os.PathLike[str],
    bounds: tuple[float, float, float, float],
    crs: Any = MARS_GEOGRAPHIC,
    chunks: Chunks = None,
    *,
    nodata: float | None = None,
) -> xr.Dataset:
    """Open an image that carries no georeferencing (PNG, JPEG, PGM, plain TIFF...) as a lazy Mosaic.

    The pixels are read in windows inside dask tasks, as the other readers do, and placed on
    ``bounds`` by :func:`mosaic_from_array`.  Colour images contribute their first band (palette
    images their palette's red channel); a nodata value the file declares, its mask band and its
    transparent pixels (alpha 0) become NaN.

    Parameters
    ----------
    path
        The image file (anything GDAL reads).
    bounds
        ``(west, south, east, north)`` of the image's outer pixel edges, in ``crs`` units; row 0
        is the north edge.
    crs
        A Mars CRS (default ``IAU_2015:49900``, longitude/latitude on the Mars sphere).
    chunks
        Dask chunks; default full-width strips of 512 rows (PNG and JPEG decode row by row).
    nodata
        A grey level that marks no data where the file does not say so: its pixels become NaN.

    Returns
    -------
    xarray.Dataset
        A Mosaic with float32 ``ir`` and attrs ``source`` (the file) and, for geographic and
        equirectangular grids, ``px_per_deg``.

    Raises
    ------
    ImageReadError
        If the file does not exist.
    CorruptImageError
        If GDAL cannot read it.
    InvalidArgumentError
        If the file is georeferenced (it then has its own bounds: use :func:`read_image` without
        ``bounds``; a CRS with GDAL's default geotransform places no pixel, and does not count),
        ``bounds`` are impossible (see :func:`mosaic_from_array`), or they make
        pixels outside the 1-1000 m that :func:`marscraters.detect.detect` works at (degrees given
        with a metre CRS, km given as metres...).
    MissingCRSError, NotMarsCRSError
        If ``crs`` is None or not a Mars CRS.

    Examples
    --------
    >>> ds = read_plain_image("crop.jpg", (30.0, -0.7018, 30.7018, 0.0))  # doctest: +SKIP
    >>> ds.attrs["px_per_deg"]  # 416 px over 0.7018 degrees  # doctest: +SKIP
    592.75...
    """
    path = Path(path)
    declared = _check_nodata(nodata)
    if not path.is_file():
        raise ImageReadError(f"{path} does not exist; check the path.")
    spath = str(path.resolve())
    try:
        header = _plain_header(spath)
        shape, file_crs, count = header["shape"], header["crs"], header["count"]
        nodata, dtype, colormap = header["nodata"], header["dtype"], header["colormap"]
    except RasterioError as exc:
        raise CorruptImageError(f"{path} is not an image GDAL can read ({exc}).") from exc
    if header["placed"]:
        raise InvalidArgumentError(
            f"{path} is georeferenced (CRS {file_crs.to_string()!r}), so it has its own bounds: leave out "
            "bounds= (CLI: --bounds) and read it as it is."
        )
    if count < 1:
        raise CorruptImageError(f"{path} has no image band.")
    _refuse_turned(path)
    row_chunks, col_chunks = _normalize_chunks(chunks, shape, (_DEFAULT_PNG_STRIP_ROWS, -1))
    lut = _palette_lut(colormap)
    data = _raster_dask_array(spath, 1, lut, (row_chunks, col_chunks), nodata=_nodata_values(nodata, declared),
                              masked=header["masked"])
    ds = mosaic_from_array(data, bounds, crs, name=spath)
    _check_pixel_size(ds, bounds, crs, path.name)
    return _with_storage(ds, _storage_for(np.uint8 if lut is not None else dtype, nodata, declared))


# --------------------------------------------------------------------------------------------
# combining tiles
# --------------------------------------------------------------------------------------------


def _circular_start(wests: list[float], widths: list[float], tol: float) -> list[float]:
    """West edges (0..360) where a contiguous run of the tiles may start.

    That is the east end of the largest uncovered gap on the circle of longitudes; when the tiles
    cover all 360 degrees, every tile's west edge is a candidate.  Gaps narrower than ``tol``
    (half a pixel) are rounding, not gaps.
    """
    eps = tol
    order = sorted(range(len(wests)), key=lambda i: wests[i])
    merged: list[list[float]] = []
    for i in order:
        lo, hi = wests[i], wests[i] + widths[i]
        if merged and lo <= merged[-1][1] + eps:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    gaps = []
    for k, (lo, hi) in enumerate(merged):
        nxt = merged[(k + 1) % len(merged)][0] + (360.0 if k + 1 == len(merged) else 0.0)
        gaps.append((nxt - hi, nxt % 360.0))
    width, start = max(gaps)
    if width <= eps:
        return sorted({w for w in wests})
    return [start]


def _choose_west(candidates: list[float], span: float, native_180: bool, tol: float) -> float:
    """The combined mosaic's west edge, by the rule documented in :func:`combine_tiles`."""
    eps = tol
    ranges = [(-180.0, 180.0), (0.0, 360.0)] if native_180 else [(0.0, 360.0), (-180.0, 180.0)]
    for lo, hi in ranges:
        for start in candidates:
            for west in (start, start - 360.0):
                if west >= lo - eps and west + span <= hi + eps:
                    return west
    return candidates[0]


def _res_tolerance(n: int) -> float:
    """The relative pixel-size difference :func:`combine_tiles` takes as rounding, for ``n`` pixels.

    A tile's bounds rounded by a fixed amount give its pixel size an error that shrinks with its
    width, so a small tile is allowed more: up to :data:`_LATTICE_TOL_PX` pixels across its width,
    and never less than :data:`_RES_REL_TOL`.
    """
    return max(_RES_REL_TOL, _LATTICE_TOL_PX / max(n, 1))


def _snap_to_lattice(
    offsets: np.ndarray, res: float, rel_tol: float = _RES_REL_TOL
) -> tuple[list[int], float, float, int | None]:
    """Put tile edges on one pixel lattice, allowing for rounded bounds.

    Parameters
    ----------
    offsets
        Each tile's edge (west or north) relative to the combined mosaic's, in CRS units.
    res
        The tiles' mean pixel size along that axis (signed, as in the transform).
    rel_tol
        How far (relative) the pixel size the edges imply may lie from ``res``.

    Returns
    -------
    tuple
        The tiles' whole-pixel offsets, the shift of the lattice's origin and its pixel size
        (CRS units; the pixel size fitted to where the tiles sit), and the index of a tile off the
        lattice (None when every tile is on it).
    """
    cells = np.round(offsets / res)
    off = np.abs(offsets / res - cells)
    if off.max() <= 1e-6:
        # exact tiles keep their exact grid (no fitting noise in the coordinates)
        return [int(c) for c in cells], 0.0, res, None
    fit_res, shift = res, float(np.mean(offsets - cells * res))
    if np.unique(cells).size > 1:
        # the pixel size the edges imply: a mean of rounded sizes, times 10,000 pixels, can be
        # off by more than the rounding of any one edge
        fit_res, shift = (float(v) for v in np.polyfit(cells, offsets, 1))
    residual = np.abs(offsets - shift - cells * fit_res) / abs(fit_res)
    bad: int | None = None
    if residual.max() > _LATTICE_TOL_PX or not math.isclose(fit_res, res, rel_tol=rel_tol):
        # a real shift: blame the tile furthest off the mean pixel size's lattice
        bad = int(np.argmax(np.maximum(residual, off)))
    return [int(c) for c in cells], shift, fit_res, bad


def combine_tiles(datasets: Sequence[xr.Dataset | str | os.PathLike[str]]) -> xr.Dataset:
    """Mosaic adjacent tiles of the same resolution into one lazy Mosaic.

    Tiles are placed on one pixel grid by their transforms; uncovered areas are NaN.  Where tiles
    overlap, each pixel comes from the first tile in ``datasets`` that has data there (not NaN),
    as ``gdal_merge.py`` and ``gdalbuildvrt`` do with nodata: a later tile fills an earlier one's
    no-data collar, and never replaces its valid pixels.  Only ``ir`` is combined (combine before
    :func:`fill_missing`).  Bounds rounded in a file (e.g. to 1e-6 degrees) are taken as
    rounding: pixel sizes a relative 1e-5 apart (up to 0.01 px across a smaller tile) and edges
    up to 0.01 px off the common lattice are snapped onto one grid, whose pixel size is fitted to
    where the tiles sit.

    Longitude convention of a geographic result: it keeps the inputs' convention (0..360 if the
    first input's west edge is >= 0, else -180..180) when the combined area fits in it, and
    otherwise switches to the other one, so ``x`` always runs contiguously.  Tiles with west edges
    330 and 0 therefore give ``x`` from -30 to 30, and tiles 150 and 180 give 150 to 210.  An area
    that crosses both 0 and 180 degrees starts at its west edge in 0..360 and runs past 360.
    :meth:`marscraters.crs.Grid.lonlat_to_pixel` accepts either convention on any of these grids.

    Parameters
    ----------
    datasets
        Mosaics (for example from :func:`read_themis_tile`) or paths that :func:`read_image` can
        open, all in the same CRS and at the same resolution, on a common pixel lattice.

    Returns
    -------
    xarray.Dataset
        The combined Mosaic, lazy (dask-backed).

    Raises
    ------
    InvalidArgumentError
        If ``datasets`` is empty.
    MosaicError
        If the inputs differ in CRS or resolution, are not on a common pixel grid, or wrap more
        than 360 degrees.

    Examples
    --------
    >>> ds = combine_tiles(["thm_dir_N00_330.png", "thm_dir_N00_000.png"])  # doctest: +SKIP
    >>> float(ds.x[0]), float(ds.x[-1])  # doctest: +SKIP
    (-29.998046875, 29.998046875)
    """
    dss = [read_image(d) if isinstance(d, (str, os.PathLike)) else d for d in datasets]
    if not dss:
        raise InvalidArgumentError("combine_tiles needs at least one mosaic")
    for ds in dss:
        validate_mosaic(ds)
    grids = [Grid.from_dataset(ds) for ds in dss]
    crs = grids[0].crs
    ref = grids[0].transform
    for ds, g in zip(dss, grids):
        t = g.transform
        where = ds.attrs.get("source", "a mosaic")
        if t.b != 0 or t.d != 0 or t.e >= 0 or t.a <= 0:
            raise MosaicError(
                f"{where} is not a north-up, east-right grid; warp it to one before combining."
            )
        if not g.crs.equals(crs):
            # names alone do not tell CRSs apart: every PROJ-string CRS is named 'unknown'
            first = dss[0].attrs.get("source", "the first mosaic")
            target, other = _crs_label(crs), _crs_label(g.crs)
            src = str(ds.attrs.get("source", "OTHER.tif"))
            raise MosaicError(
                f"cannot combine mosaics in different CRSs: {first} is in {target!r} and {where} in {other!r}. "
                f"Put them in one CRS first: warp one onto the other's CRS and pixel size, e.g. `gdalwarp -t_srs "
                f"'{target}' -tr {_num(abs(ref.a))} {_num(abs(ref.e))} -tap {src} {Path(src).stem}_warped.tif`, "
                f"and combine that file; or in Python, ds.rio.reproject('{target}')."
            )
        for axis, r0, r1, n in (("x", ref.a, t.a, min(g.shape[1], grids[0].shape[1])),
                                ("y", ref.e, t.e, min(g.shape[0], grids[0].shape[0]))):  # fmt: skip
            # bounds rounded in a file leave pixel sizes a few 1e-6 apart (more on a small tile)
            tol = _res_tolerance(n)
            if not math.isclose(r1, r0, rel_tol=tol):
                first = dss[0].attrs.get("source", "the first mosaic")
                raise MosaicError(
                    f"cannot combine mosaics of different resolutions: {first} has {abs(r0):.10g} and {where} "
                    f"{abs(r1):.10g} CRS units per pixel in {axis} (relative difference {abs(r1 / r0 - 1):.2g}, "
                    f"more than the {tol:.2g} allowed for rounding); resample them to one resolution first."
                )
    # one common pixel size: the tiles' own when they agree exactly, else their mean (refined
    # below from where the tiles sit)
    sizes_x, sizes_y = [g.transform.a for g in grids], [g.transform.e for g in grids]
    res_x = ref.a if len(set(sizes_x)) == 1 else float(np.mean(sizes_x))
    res_y = ref.e if len(set(sizes_y)) == 1 else float(np.mean(sizes_y))
    wests = [g.transform.c for g in grids]
    widths = [g.shape[1] * res_x for g in grids]
    if crs.is_geographic:
        far_east = 0.0
        tol = 0.5 * abs(res_x)
        starts = _circular_start([w % 360.0 for w in wests], widths, tol)
        # span of the contiguous run, from its start eastwards
        for w, width in zip(wests, widths):
            d = (w - starts[0]) % 360.0
            if d > 360.0 - 1e-9:
                d -= 360.0
            far_east = max(far_east, d + width)
        west = _choose_west(starts, far_east, native_180=wests[0] < 0, tol=tol)
    else:
        west = min(wests)
    north = max(g.transform.f for g in grids)

    dxs, dys = [], []
    for g in grids:
        d = g.transform.c - west
        if crs.is_geographic:
            d %= 360.0
            if d > 360.0 - 1e-6 * abs(res_x):
                d -= 360.0
        dxs.append(d)
        dys.append(g.transform.f - north)
    tol_x = _res_tolerance(min(g.shape[1] for g in grids))
    tol_y = _res_tolerance(min(g.shape[0] for g in grids))
    col_offs, shift_x, fit_x, bad_x = _snap_to_lattice(np.array(dxs), res_x, tol_x)
    row_offs, shift_y, fit_y, bad_y = _snap_to_lattice(np.array(dys), res_y, tol_y)
    if bad_x is not None or bad_y is not None:
        i = bad_x if bad_x is not None else bad_y
        col, row = dxs[i] / res_x, dys[i] / res_y
        raise MosaicError(
            f"{dss[i].attrs.get('source', 'a mosaic')} is not on the same pixel grid as the others "
            f"(offset {col:.4f}, {row:.4f} px; up to {_LATTICE_TOL_PX:g} px is taken as rounding); "
            "resample it onto a common grid first."
        )
    # the common grid: the fitted pixel size, its origin snapped onto the tiles' lattice
    res_x, res_y = fit_x, fit_y
    west, north = west + shift_x, north + shift_y
    ny = max(r + g.shape[0] for r, g in zip(row_offs, grids))
    nx = max(c + g.shape[1] for c, g in zip(col_offs, grids))
    if crs.is_geographic and nx * abs(res_x) > 360.0 + 1e-6:
        raise MosaicError(
            f"the mosaics span {nx * abs(res_x):.6g} degrees of longitude, more than the planet's 360; "
            "drop the duplicates."
        )

    def as_dask(ds: xr.Dataset) -> da.Array:
        data = ds["ir"].data
        return data if isinstance(data, da.Array) else da.from_array(data, chunks=_DEFAULT_GDAL_CHUNKS)

    arrays = [as_dask(ds) for ds in dss]
    fill_chunks = (max(arrays[0].chunks[0]), max(arrays[0].chunks[1]))
    row_breaks = sorted({0, ny, *row_offs, *(r + g.shape[0] for r, g in zip(row_offs, grids))})
    col_breaks = sorted({0, nx, *col_offs, *(c + g.shape[1] for c, g in zip(col_offs, grids))})
    blocks = []
    for r0, r1 in zip(row_breaks[:-1], row_breaks[1:]):
        row = []
        for c0, c1 in zip(col_breaks[:-1], col_breaks[1:]):
            piece = None
            for arr, ro, co, g in zip(arrays, row_offs, col_offs, grids):
                if ro <= r0 and r1 <= ro + g.shape[0] and co <= c0 and c1 <= co + g.shape[1]:
                    part = arr[r0 - ro : r1 - ro, c0 - co : c1 - co]
                    # the first tile with data wins: a later one only fills an earlier one's NaN
                    # (a black collar declared as nodata must not hide its neighbour's pixels)
                    piece = part if piece is None else da.where(da.isnan(piece), part, piece)
            if piece is None:
                piece = da.full(
                    (r1 - r0, c1 - c0),
                    np.nan,
                    dtype=np.float32,
                    chunks=(min(fill_chunks[0], r1 - r0), min(fill_chunks[1], c1 - c0)),
                )
            row.append(piece)
        blocks.append(row)
    data = da.block(blocks).astype(np.float32)
    transform = Affine(res_x, 0.0, west, 0.0, res_y, north)
    sources = [str(ds.attrs["source"]) for ds in dss if "source" in ds.attrs]
    out = _build_mosaic(data, transform, crs, {"source": ", ".join(sources)} if sources else {})
    # tiles stored alike are combined alike (the gaps between them are NaN, the fill's job)
    storages = [{k: ds["ir"].encoding[k] for k in _STORAGE_KEYS if k in ds["ir"].encoding} for ds in dss]
    same = all(s == storages[0] for s in storages) and len(storages[0]) == len(_STORAGE_KEYS)
    return _with_storage(out, storages[0] if same else {})


# --------------------------------------------------------------------------------------------
# missing data
# --------------------------------------------------------------------------------------------


def _require_finite(mean: np.ndarray, source: str = "") -> np.ndarray:
    if not np.all(np.isfinite(mean)):
        raise MosaicError(
            f"the mosaic{source} has no valid pixels (all NaN), so there is no mean to fill with; "
            "check that the right tile was read, or pass fill_missing(ds, value=<number>)."
        )
    return mean


def fill_missing(ds: xr.Dataset, value: Literal["mean"] | float = "mean") -> xr.Dataset:
    """Replace no-data (NaN) pixels, keeping a mask of where they were.

    This is the paper's preprocessing (DeLatte et al. fill the gaps of each tile with the tile's
    mean) as an explicit, separate step.  The result stays lazy.  The mean is that of ``ds`` as
    given: to fill each tile with its own mean as the paper did, fill the tiles
    (:func:`read_themis_tile`) before :func:`combine_tiles`, since a combined cube has one mean.

    Parameters
    ----------
    ds
        A Mosaic.
    value
        ``"mean"`` (default) to fill with the mean of the valid pixels, or a number.

    Returns
    -------
    xarray.Dataset
        A new Mosaic whose ``ir`` has no NaN, plus a boolean ``missing`` variable (True where
        a pixel was filled).  If ``ds`` already has ``missing``, the masks are combined.
        ``attrs["filled_with"]`` records ``value``.

    Raises
    ------
    MosaicError
        If every pixel is NaN and ``value="mean"`` (raised when computed, for a lazy mosaic).
    InvalidArgumentError
        If ``value`` is neither ``"mean"`` nor a finite number.

    Examples
    --------
    >>> ds = mosaic_from_array(np.array([[1.0, np.nan], [3.0, 5.0]]), (0, 0, 2, 2))
    >>> filled = fill_missing(ds)
    >>> float(filled.ir[0, 1]), bool(filled.missing[0, 1])
    (3.0, True)
    """
    validate_mosaic(ds)
    ir = ds["ir"]
    source = f" {ds.attrs['source']}" if "source" in ds.attrs else ""
    data = ir.data
    lazy = isinstance(data, da.Array)
    xp = da if lazy else np
    if value == "mean":
        if lazy:
            fill = da.nanmean(data.astype(np.float64)).astype(np.float32)
            fill = fill.map_blocks(_require_finite, source, dtype=np.float32, meta=np.empty((), np.float32))
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN is reported below
                fill = np.float32(np.nanmean(data, dtype=np.float64))
            _require_finite(np.asarray(fill), source)
    else:
        try:
            fill = np.float32(value)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"fill_missing value must be 'mean' or a number, got {value!r}"
            ) from exc
        if not np.isfinite(fill):
            raise InvalidArgumentError(f"fill_missing value must be finite, got {value!r}")
    missing = xp.isnan(data)
    filled = xp.where(missing, fill, data).astype(np.float32)
    if "missing" in ds.data_vars:
        missing = missing | ds["missing"].data.astype(bool)
    out = ds.copy()
    out["ir"] = ir.copy(data=filled)
    for key in _TYPED_KEYS:  # the filled levels are no longer the reader's integers, nor is NaN left
        out["ir"].encoding.pop(key, None)
    out["missing"] = xr.Variable(
        ("y", "x"), missing, {"long_name": "pixel had no data and was filled by fill_missing"}
    )
    out.attrs["filled_with"] = value if isinstance(value, str) else float(value)
    grid = Grid.from_dataset(ds)
    return _georeference(out, grid.crs, grid.transform)


def _block_nanmean(block: np.ndarray, factor: int) -> np.ndarray:
    """Mean of every ``factor`` x ``factor`` cell, ignoring NaN (NaN where a cell is mostly no data)."""
    ny, nx = block.shape[0] // factor, block.shape[1] // factor
    cells = block[: ny * factor, : nx * factor].reshape(ny, factor, nx, factor)
    valid = np.isfinite(cells)
    total = np.where(valid, cells, 0).sum(axis=(1, 3), dtype=np.float64)
    count = valid.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / count).astype(np.float32)
    # a coarse pixel is no data when most of the ground it covers is
    out[count * 2 <= factor * factor] = np.nan
    return out


def _gaussian_half(block: np.ndarray) -> np.ndarray:
    """The anti-aliasing blur of a halving (sigma 0.5 px, skimage's for a factor of 1/2)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(block, 0.5, mode="mirror").astype(np.float32)


def _mean2(block: np.ndarray) -> np.ndarray:
    """Means of the 2x2 cells of an array of even sides."""
    ny, nx = block.shape
    return block.reshape(ny // 2, 2, nx // 2, 2).mean(axis=(1, 3), dtype=np.float32)


def _halve_antialiased(data: Any, fill: float) -> Any:
    """One anti-aliased halving of a 2-D array (numpy, or dask, lazily): no-data filled with
    ``fill``, a Gaussian of sigma 0.5 px, then 2x2 means (``skimage.transform.rescale(x, 0.5,
    anti_aliasing=True)``, edges included); a pixel is no data where most of its blurred cell was.
    A dask array gives the same values for every chunking: each chunk is blurred with a halo wider
    than the kernel."""
    ny, nx = (data.shape[0] // 2) * 2, (data.shape[1] // 2) * 2
    data = data[:ny, :nx]
    if not isinstance(data, da.Array):
        data = np.asarray(data, dtype=np.float32)
        missing = np.isnan(data)
        gaps = bool(missing.any())
        values = _mean2(_gaussian_half(np.where(missing, np.float32(fill), data) if gaps else data))
        if gaps:
            values[_mean2(_gaussian_half(missing.astype(np.float32))) > 0.5] = np.nan
        return values
    # whole cells per chunk, and no chunk thinner than the blur's halo (map_overlap needs that)
    data = data.rechunk(tuple(_merge_thin(_cell_chunks(c, 2), 8) for c in data.chunks))
    halves = tuple(tuple(c // 2 for c in cs) for cs in data.chunks)
    missing = da.isnan(data)
    out = []
    for part in (da.where(missing, np.float32(fill), data).astype(np.float32), missing.astype(np.float32)):
        blurred = part.map_overlap(_gaussian_half, depth=3, boundary="none", dtype=np.float32)
        out.append(blurred.map_blocks(_mean2, dtype=np.float32, chunks=halves))
    values, gone = out
    return da.where(gone > 0.5, np.float32(np.nan), values)


def coarsen_mosaic(ds: xr.Dataset, factor: int, *, antialias: bool = False, fill: float | None = None) -> xr.Dataset:
    """The Mosaic at ``factor`` times coarser pixels: each pixel the mean of a ``factor`` x ``factor`` cell.

    One level of an image pyramid (:mod:`marscraters.pyramid`) for a mosaic.  The result stays
    lazy for a dask-backed mosaic and does not depend on its chunks.  Rows and columns beyond the
    last whole cell are dropped (at most ``factor - 1`` on the south and east edges); the grid's
    north-west corner is kept, so pixel ``(i, j)`` covers input pixels ``factor*i ...
    factor*i + factor - 1`` (and likewise for ``j``).  A coarse pixel is no data (NaN) when most
    of its cell is.

    Parameters
    ----------
    ds
        A Mosaic.
    factor
        Whole number of input pixels per output pixel along each axis (>= 1; 1 returns ``ds``).
    antialias
        Instead of plain means, halve the mosaic ``log2(factor)`` times, each time through a
        Gaussian of sigma 0.5 px and then 2x2 means (as ``skimage.transform.rescale(..., 0.5,
        anti_aliasing=True)`` does inside an image; ``factor`` must then be a power of 2).  No-data
        pixels are filled with the mean of the mosaic's grey sample first, and a coarse pixel is no
        data where most of its blurred cell was.  The image pyramid of mosaic catalogs uses it: the
        networks saw such levels in training.
    fill
        With ``antialias``, the value no-data pixels take before the blur (default: the mean of
        the mosaic's grey sample, which costs a read of it).

    Returns
    -------
    xarray.Dataset
        A Mosaic with ``ir`` only, on the coarser grid, with the same CRS and attributes
        (``px_per_deg`` updated) and ``attrs["coarsened_by"] = factor``.

    Raises
    ------
    InvalidArgumentError
        If ``factor`` is not a whole number >= 1, or leaves less than one pixel.

    Examples
    --------
    >>> ds = mosaic_from_array(np.arange(16.0).reshape(4, 4), (0, 0, 4, 4))
    >>> coarse = coarsen_mosaic(ds, 2)
    >>> coarse.ir.values.tolist(), coarse.attrs["px_per_deg"]
    ([[2.5, 4.5], [10.5, 12.5]], 0.5)
    """
    validate_mosaic(ds)
    if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise InvalidArgumentError(f"factor must be a whole number of pixels >= 1, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return ds
    ny, nx = ds.sizes["y"] // factor, ds.sizes["x"] // factor
    if ny == 0 or nx == 0:
        raise InvalidArgumentError(
            f"factor={factor} leaves no pixel of a {ds.sizes['y']} x {ds.sizes['x']} mosaic; use a factor <= "
            f"{min(ds.sizes['y'], ds.sizes['x'])}")
    data = ds["ir"].transpose("y", "x").data
    if antialias:
        if factor & (factor - 1):
            raise InvalidArgumentError(f"antialias=True halves the mosaic: factor must be a power of 2, got {factor}")
        if fill is None:
            from .model import read_grey_sample

            sample = read_grey_sample(data)
            fill = float(np.nanmean(sample)) if np.isfinite(sample).any() else 0.0
        coarse = data.astype(np.float32) if isinstance(data, da.Array) else np.asarray(data, dtype=np.float32)
        for _ in range(int(factor).bit_length() - 1):
            coarse = _halve_antialiased(coarse, fill)
        ny, nx = coarse.shape
    elif isinstance(data, da.Array):
        # blocks on whole cells (a multiple of factor rows and columns), so every cell is one task's
        data = data[: ny * factor, : nx * factor]
        data = data.rechunk((_cell_chunks(data.chunks[0], factor), _cell_chunks(data.chunks[1], factor)))
        coarse = data.map_blocks(_block_nanmean, factor, dtype=np.float32,
                                 chunks=tuple(tuple(c // factor for c in cs) for cs in data.chunks))
    else:
        coarse = _block_nanmean(np.asarray(data, dtype=np.float32), factor)
    grid = Grid.from_dataset(ds)
    attrs = {k: v for k, v in ds.attrs.items() if k != "px_per_deg"}
    attrs["coarsened_by"] = factor * int(ds.attrs.get("coarsened_by", 1))
    return _build_mosaic(coarse, grid.transform * Affine.scale(factor), grid.crs, attrs)


def _merge_thin(sizes: tuple[int, ...], depth: int) -> tuple[int, ...]:
    """Blocks thinner than ``depth`` (which ``map_overlap`` refuses) merged into their neighbours.

    Unlike dask's ``ensure_minimum_chunksize``, which moves borders ((1024, 1024, 64) becomes
    (1024, 576, 512)), every border kept is one of ``sizes``' own, so the output store's chunks,
    which must divide every block, stay as large as the blocks asked for.
    """
    out: list[int] = []
    run = 0
    for s in sizes:
        run += s
        if run >= depth:
            out.append(run)
            run = 0
    if run:
        if out:
            out[-1] += run
        else:
            out.append(run)
    return tuple(out)


def _cell_chunks(chunks: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """Chunk sizes of an axis of whole cells (its length a multiple of ``factor``): the input's
    chunk borders, moved to the nearest cell border."""
    n = sum(chunks)
    edges = sorted({0, n} | {int(round(e / factor)) * factor for e in np.cumsum(chunks)[:-1]})
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:]) if b > a)


# --------------------------------------------------------------------------------------------
# Zarr cubes
# --------------------------------------------------------------------------------------------


def _strip_cols(rows: int, chunk: int) -> int:
    """Widest multiple of ``chunk`` columns keeping a ``rows``-tall float32 block under the cap."""
    return max(chunk, _MAX_DASK_BLOCK_BYTES // (4 * max(rows, 1)) // chunk * chunk)


def _ingest_dask_chunks(
    dask_chunk: int | tuple[int, int] | None, chunk: int, shape: tuple[int, int]
) -> tuple[int, int]:
    """Validate ``dask_chunk`` against the storage ``chunk`` and resolve it to (rows, cols)."""
    ny, nx = shape
    if dask_chunk is None:
        # full-width strips of one storage row: the order PNG decodes in, and little memory
        return chunk, min(nx, _strip_cols(chunk, chunk))
    rows, cols = (dask_chunk, dask_chunk) if isinstance(dask_chunk, int) else tuple(dask_chunk)
    rows = ny if rows == -1 else rows
    cols = nx if cols == -1 else cols
    for n, size, dim in ((rows, ny, "rows"), (cols, nx, "columns")):
        # a block may be any size when it covers the whole axis (it is then the only, last one)
        if n <= 0 or (n % chunk and n < size):
            raise InvalidArgumentError(
                f"dask_chunk {dask_chunk!r}: {dim} ({n}) must be a positive multiple of the storage "
                f"chunk ({chunk}) or cover the whole axis ({size}), so that no two dask tasks write "
                "to the same Zarr chunk."
            )
    return rows, cols


def ingest(
    paths: str | os.PathLike[str] | xr.Dataset | Sequence[str | os.PathLike[str] | xr.Dataset],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunk: int = DEFAULT_CHUNK,
    dask_chunk: int | tuple[int, int] | None = None,
    progress: bool = True,
    nodata: float | None = None,
) -> Path:
    """Read images, combine them and write a Zarr v3 mosaic cube.

    The read is windowed and lazy (a 7680^2 tile is never in memory at once); the write goes to a
    temporary store that is renamed onto ``out`` only when complete, so a failure leaves nothing
    behind.

    Parameters
    ----------
    paths
        One image or several adjacent ones: paths :func:`read_image` opens, or Mosaic Datasets
        (for example from :func:`mosaic_from_array`).
    out
        The Zarr store to create (a directory, conventionally ``*.zarr``).
    overwrite
        Replace ``out`` if it exists.
    chunk
        Storage chunk size (pixels) of the square Zarr chunks.
    dask_chunk
        Dask block size used while writing (and recorded for :func:`open_mosaic`), an int or
        ``(rows, cols)`` whose entries are multiples of ``chunk`` (or ``-1``, the whole axis).
        Default: full-width strips of ``chunk`` rows (capped at 64 MB).
    progress
        Show a progress bar.
    nodata
        A grey level that marks no data in images that do not declare it (a black collar
        around a map-projected strip or a GIS export): its pixels become NaN in every input,
        as the files' own nodata values, mask bands and alpha bands do.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    OutputExistsError
        If ``out`` exists and ``overwrite`` is False, or is a file (a cube never replaces a file,
        even with ``overwrite``).
    InvalidArgumentError
        If ``out`` is one of the inputs, holds one or lies inside one (even with ``overwrite``).
    ImageReadError, CorruptImageError, TileNameError, MissingCRSError, NotMarsCRSError
        From the readers.

    Examples
    --------
    >>> ingest(["thm_dir_N-30_000.png", "thm_dir_N-30_030.png"], "cube.zarr")  # doctest: +SKIP
    PosixPath('cube.zarr')
    """
    items = [paths] if isinstance(paths, (str, os.PathLike, xr.Dataset)) else list(paths)
    # an input that is the output, inside it or holding it (a cube re-ingested onto itself) is
    # refused before anything is read or written, even with overwrite
    # folder=True: a cube is a folder, so an existing file at out is refused here, before the work
    out = check_output(out, overwrite, folder=True, inputs=items, kind="zarr")
    if not isinstance(chunk, (int, np.integer)) or chunk <= 0:
        raise InvalidArgumentError(f"chunk must be a positive int, got {chunk!r}")
    if not items:
        raise InvalidArgumentError("ingest needs at least one input image")
    nodata = _check_nodata(nodata)
    sources = [p if isinstance(p, xr.Dataset) else Path(p) for p in items]
    # read in strips as tall as the dask blocks written (one Zarr chunk row by default), so that
    # no source block is read twice; PNG strips span the full width (it decodes whole rows)
    if dask_chunk is None:
        strip = int(chunk)
    else:
        strip = int(dask_chunk if isinstance(dask_chunk, (int, np.integer)) else dask_chunk[0])
    read_cols = _strip_cols(strip, int(chunk))
    dss = [
        _without_value(p, nodata)
        if isinstance(p, xr.Dataset)
        else read_image(p, chunks=(strip, -1 if p.suffix.lower() in _PNG_SUFFIXES else read_cols), nodata=nodata)
        for p in sources
    ]
    ds = dss[0] if len(dss) == 1 else combine_tiles(dss)
    ds = validate_mosaic(ds)
    rows, cols = _ingest_dask_chunks(dask_chunk, int(chunk), (ds.sizes["y"], ds.sizes["x"]))
    keep = [name for name, var in ds.data_vars.items() if var.dims == ("y", "x")]
    grid = Grid.from_dataset(ds)
    _warn_pixel_size(ds, str(sources[0]) if len(sources) == 1 and isinstance(sources[0], Path) else "the mosaic")
    if not grid.is_cylindrical:
        # segment and detect work on any grid, but a catalog needs lat/lon and km: say so before the work
        warnings.warn(
            f"{out}: the image is not on a geographic or equirectangular grid ({grid.crs.name!r}), so "
            "`marscraters segment` will run on it but `marscraters catalog` will refuse it. Reproject it first "
            "(`gdalwarp -t_srs IAU_2015:49910 in.tif out.tif`) to catalog its craters.", UserWarning, stacklevel=2)
    ds = ds[keep].chunk({"y": rows, "x": cols}).copy()
    # integer imagery is stored as integers (the readers' dtype and fill); float32 otherwise
    enc = ds["ir"].encoding
    storage = {k: enc[k] for k in _STORAGE_KEYS} if all(k in enc for k in _STORAGE_KEYS) else {}
    if storage and np.dtype(storage["dtype"]).kind not in "iu":
        storage = {}
    # encodings inherited from a source cube (its chunks, codecs) must not leak into the new one;
    # a _FillValue attribute (rioxarray's reproject sets one) would clash with xarray's encoder
    for var in ds.variables.values():
        var.encoding = {}
        var.attrs.pop("_FillValue", None)
    ds = _georeference(ds, grid.crs, grid.transform)
    from . import __version__

    ds.attrs.update({"dask_chunks": [int(rows), int(cols)], "created_by": f"marscraters {__version__}"})
    for name in keep:
        # set on the variable, not via to_zarr(encoding=...), which would replace (and so drop)
        # the grid_mapping entry that carries the CRS link
        ds[name].encoding["chunks"] = (int(chunk), int(chunk))
    png_paths = [
        str(p.resolve()) for p in sources if isinstance(p, Path) and p.suffix.lower() in _PNG_SUFFIXES
    ]
    row_edges = np.cumsum((0, *ds.chunks["y"]))
    strips = list(zip(row_edges[:-1].tolist(), row_edges[1:].tolist()))
    pixels = ds[keep].drop_vars(list(ds.coords)).copy()
    for var in pixels.variables.values():
        var.encoding = {}
    try:
        with atomic_path(out, overwrite, kind="zarr") as tmp:
            if not _write_cube(ds, pixels, tmp, strips, storage, f"ingest {out.name}", progress):
                # a value the integer type cannot hold (the pixels were changed after reading,
                # keeping the reader's encoding): store float32 instead, never a wrong value
                log.info("%s: the pixels are not all %s levels; storing float32", out, np.dtype(storage["dtype"]))
                _remove(tmp)
                _write_cube(ds, pixels, tmp, strips, {}, f"ingest {out.name}", progress)
    finally:
        _close_handles(png_paths)
    return out


def _warn_pixel_size(ds: xr.Dataset, what: str) -> None:
    """Warn when a mosaic's georeferencing gives pixels outside the 1-1000 m that ``detect`` works at
    (almost always a wrong unit: a transform in km under a metre CRS).  Not refused: a cube also
    feeds target layers and training, at any pixel size; the catalog refuses it with the same words."""
    from .detect import _check_mosaic_pixel_size

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the projection's own warnings are segment's and detect's to give
            _check_mosaic_pixel_size(ds, what)
    except InvalidArgumentError as exc:
        warnings.warn(f"{exc}. `ingest` writes it all the same, but `marscraters catalog` (and `segment` choosing "
                      "its model) will refuse it", UserWarning, stacklevel=3)
    except CRSError:
        pass  # no finite scale at its centre: detect and segment say so where it matters


def _write_cube(ds: xr.Dataset, pixels: xr.Dataset, tmp: Path, strips: list[tuple[int, int]],
                storage: Mapping[str, Any], desc: str, progress: bool) -> bool:
    """Write ``ds``'s metadata and then ``pixels`` strip by strip into ``tmp``, ``ir`` stored as
    ``storage`` says; False (and stop) at the first strip it would not store exactly."""
    ds = ds.copy()
    if storage:  # Zarr's own fill (of chunks never written) too, so that it also reads as NaN
        ds["ir"].encoding.update({**storage, "fill_value": storage["_FillValue"]})
    # metadata and coordinates first, then the pixels one row strip at a time, top to bottom: the
    # order PNG decodes in, with one strip in memory (dask's own order would restart decoding
    # again and again, and could hold many strips at once)
    ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False, compute=False)
    for r0, r1 in tqdm(strips, desc=desc, unit="strip", disable=not progress):
        region = {"y": slice(r0, r1), "x": slice(0, ds.sizes["x"])}
        strip = pixels.isel(y=slice(r0, r1))
        if storage:
            strip = strip.compute()
            if not _storage_fits(strip["ir"].values, storage):
                return False
        strip.to_zarr(tmp, region=region, zarr_format=3, consolidated=False)
    return True


def open_mosaic(path: str | os.PathLike[str], chunks: Chunks = None) -> xr.Dataset:
    """Open a Zarr mosaic cube written by :func:`ingest` (or ``ds.to_zarr``) lazily.

    Uses ``decode_coords="all"`` so that ``spatial_ref`` stays a coordinate and the CRS survives
    (plain ``xr.open_zarr`` turns it into a data variable and the CRS is lost).

    Parameters
    ----------
    path
        The Zarr store.
    chunks
        Dask chunks; ``None`` (default) uses the blocks the cube was written with (recorded by
        :func:`ingest`), or its storage chunks.  An int, ``(rows, cols)``,
        ``{"y": rows, "x": cols}`` or ``"auto"`` otherwise.

    Returns
    -------
    xarray.Dataset
        A validated Mosaic.

    Raises
    ------
    ImageReadError
        If ``path`` does not exist or is not a readable Zarr store.
    MosaicError
        If the store is Zarr but not a mosaic cube (no ``ir`` on ``(y, x)``).
    MissingCRSError, NotMarsCRSError
        If the cube has no Mars CRS.

    Examples
    --------
    >>> ds = open_mosaic("cube.zarr")  # doctest: +SKIP
    >>> ds.rio.crs  # doctest: +SKIP
    CRS.from_wkt('GEOGCRS["Mars (2015) - Sphere / Ocentric", ...')
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise ImageReadError(
            f"mosaic cube {path} does not exist; create it with marscraters.ingest(images, {str(path)!r})."
        )
    if path.is_file() and path.suffix.lower() in _IMAGE_FILE_SUFFIXES:
        # the likeliest first mistake (`segment image.tif`): nothing is corrupt, the image needs ingesting
        if path.suffix.lower() in _GDAL_SUFFIXES or _TILE_RE.match(path.name):
            command, python = f"{path} --out cube.zarr", f"mc.ingest({str(path)!r}, 'cube.zarr')"
        else:  # a plain image is placed by its bounds
            command = f"{path} --bounds WEST SOUTH EAST NORTH --out cube.zarr"
            python = f"mc.ingest(mc.read_image({str(path)!r}, bounds=(west, south, east, north)), 'cube.zarr')"
        raise ImageReadError(
            f"{path} is an image, not a mosaic cube (a Zarr store): ingest it into a cube first, "
            f"`marscraters ingest {command}` (in Python {python}), then give cube.zarr."
        )
    try:
        group = zarr.open_group(str(path), mode="r")
        stored = group.attrs.get("dask_chunks")
    except Exception as exc:  # zarr raises many kinds (FileNotFoundError, JSON, metadata errors)
        raise ImageReadError(
            f"{path} is not a readable Zarr store ({type(exc).__name__}: {exc}); it may be corrupt or "
            "incomplete -- ingest the source images again."
        ) from exc
    if chunks is None:
        zchunks: Any = {"y": stored[0], "x": stored[1]} if stored else {}
    elif isinstance(chunks, Mapping) or chunks == "auto":
        zchunks = chunks
    elif isinstance(chunks, int):
        zchunks = {"y": chunks, "x": chunks}
    else:
        zchunks = {"y": chunks[0], "x": chunks[1]}
    if "ir" not in group and _PROBABILITY in group:
        raise MosaicError(_probability_not_mosaic(str(path), str(path)))
    if "ir" not in group:
        raise MosaicError(
            f"{path} is a Zarr store but not a marscraters mosaic cube: it has no 'ir' array "
            f"(it has {sorted(group.keys())}). Create cubes with marscraters.ingest."
        )
    try:
        ds = xr.open_zarr(str(path), chunks=zchunks, decode_coords="all", consolidated=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageReadError(
            f"{path} could not be opened as a mosaic cube ({type(exc).__name__}: {exc}); it may be "
            "corrupt -- ingest the source images again."
        ) from exc
    if ds["ir"].dtype != np.float32:
        # uint8 and 16-bit integers with a fill value decode to float32 already; keep the
        # encoding, so that a cube ingested again is stored as this one is
        encoding = ds["ir"].encoding
        ds["ir"] = ds["ir"].astype(np.float32)
        ds["ir"].encoding = encoding
    return validate_mosaic(ds)


def mosaic_footprint(ds: xr.Dataset | xr.DataArray) -> Any:
    """The area a mosaic covers: its outer pixel edges as a one-row GeoDataFrame in its own CRS.

    Use it as a count area (:func:`marscraters.chronology.count_area_km2` measures it on the
    Mars sphere) or to clip other data.  No-data pixels inside the box are not cut out.

    A geographic mosaic may run past -180 or 360 degrees (``x`` from -180.35 to -179.65, or
    from 359.7 to 360.4); its footprint is the same ground moved by a whole turn into longitudes
    -180..360, where lon/lat tools (and a count area without a CRS) expect degrees.

    Examples
    --------
    >>> ds = mosaic_from_array(np.zeros((256, 512)), bounds=(10, 0, 12, 1))
    >>> mosaic_footprint(ds).total_bounds.tolist()
    [10.0, 0.0, 12.0, 1.0]
    >>> mosaic_footprint(mosaic_from_array(np.zeros((256, 256)), (-181, 0, -180, 1))).total_bounds.tolist()
    [179.0, 0.0, 180.0, 1.0]
    """
    import geopandas as gpd
    from shapely.geometry import Polygon

    grid = Grid.from_dataset(ds)
    ny, nx = grid.shape
    corners = [grid.transform * (c, r) for c, r in ((0, 0), (nx, 0), (nx, ny), (0, ny))]
    if grid.is_geographic:
        xs = [x for x, _ in corners]
        if min(xs) < -180.0 or max(xs) > 360.0:
            # whole turns only: the same ground, with its west edge in -180..180
            shift = -360.0 * math.floor((min(xs) + 180.0) / 360.0)
            corners = [(x + shift, y) for x, y in corners]
    return gpd.GeoDataFrame({"name": ["footprint"]}, geometry=[Polygon(corners)], crs=grid.crs)
