"""Detect craters on any image: the model, the circle finder and the verifier, in the image's pixels.

:func:`detect` takes a grey (or RGB) image of any size and its pixel size in metres, or a
GeoTIFF (or a georeferenced xarray object) whose georeferencing gives that size, and returns
PixelCraters with ``diameter_m``.  The image is resampled to the model's native pixel scale when
it is far from it (the shipped model learnt from ~100 m/px THEMIS chips with zoom augmentation),
predicted in exact overlapping tiles (:func:`marscraters.model.predict_image`), turned into
candidate circles by :func:`marscraters.extract.extract_craters` and kept by the verifier
(:mod:`marscraters.verify`).  Given many images (a list, a stack or a mapping of names to
images), it predicts same-sized images in batches and verifies all their candidates together,
and returns one table with an ``image`` column.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .errors import (
    CorruptImageError,
    CRSError,
    ImageReadError,
    InvalidArgumentError,
    MarsCratersError,
    ModelError,
)
from .pyramid import Level, level_options, level_pixels, merge_levels, pyramid_levels

__all__ = [
    "IMAGE_SUFFIXES",
    "PIXEL_SIZE_RANGE_M",
    "detect",
    "georeferenced_pixel_size",
    "image_files",
    "model_info",
    "read_grey_image",
]

DEFAULT_NATIVE_PIXEL_SIZE_M = 100.0
#: Pixel sizes (metres) that :func:`detect` accepts: Mars orbital images from HiRISE resampled
#: to 1 m up to global maps at 1 km.  Anything else is almost always a wrong unit.
PIXEL_SIZE_RANGE_M: tuple[float, float] = (1.0, 1000.0)
# a pixel size given beside a georeferenced image's own may differ from it this much (relative) unsaid
_PIXEL_SIZE_AGREEMENT = 0.05
# a georeferenced image squeezed to square ground pixels at its centre latitude warns when craters'
# widths at its top and bottom differ more than this (relative): the squeeze fits them less well
_ASPECT_SPREAD = 0.05
# the two sides of a georeferenced pixel may differ this much (relative) and still count as square
_SQUARE_TOLERANCE = 0.01
# share of an image's pixels at its darkest or brightest level beyond which it is nearly all
# shadow or saturated (the THEMIS chips: at most 12 %, usually under 1 %)
_EXTREME_SHARE = 0.4
# share of an image's pixels in a constant region at its darkest level that reaches
# its edge, beyond which that region is most likely an undeclared no-data collar: a black collar
# over a third of a CTX frame already lost 5 of the 25 craters found well inside the valid pixels
_COLLAR_SHARE = 0.05
# such a region's parts smaller than this share of the pixels are specks (shadow, noise), not a collar
_COLLAR_PART = 0.005
# and a part is solid, as a fill is, when at least this share of it survives a 3x3 binary opening
# (a fill loses only its stair-stepped border's corners; the ragged, porous shadow of an under-exposed
# or hard-stretched CTX crop, clipped to black over 10-80 % of it, keeps 70-88 %)
_COLLAR_SOLID = 0.95
# EXIF orientations that swap an image's rows and columns (a viewer shows it turned by 90 degrees)
_EXIF_TRANSPOSED = (5, 6, 7, 8)
# images of a many-image call prepared, predicted and verified together: about this many pixels
# (64 MB per float32 copy), and at most this many images
_GROUP_PIXELS = 2**24
_GROUP_IMAGES = 64
#: Suffixes of the image files :func:`image_files` lists in a folder.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".pgm", ".tif", ".tiff")
# rasters that may carry georeferencing (read through GDAL, as marscraters.mosaic.read_geotiff does)
_GEO_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".cub", ".jp2")


def _check_image_file(path: Path) -> None:
    if path.is_dir():
        raise ImageReadError(f"image {path} is a folder; give the path of one image file (PNG, JPEG, PGM or TIFF) "
                             "in it, or the list of its images (marscraters.detect.image_files(folder))")
    if not path.is_file():
        raise ImageReadError(f"image {path} does not exist; check the path")


_PIL_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError)


def read_grey_image(path: str | os.PathLike, *, nodata: float | None = None) -> np.ndarray:
    """Read a PNG, JPEG, PGM or TIFF image as a 2-D float32 grey array (RGB -> luminance).

    The image is read as a viewer shows it: an EXIF orientation (a JPEG from a phone or a
    photo editor stored turned) is applied, so rows and columns are the displayed ones.
    Transparent pixels (alpha 0, or a PNG's transparent colour) are no data: NaN.

    Parameters
    ----------
    path
        The image file.
    nodata
        A grey level that marks no data (a black collar: ``nodata=0``); its pixels become NaN.
        In a colour image, a pixel is no data when its red, green and blue all equal it.

    Raises
    ------
    ImageReadError
        If the file does not exist; :class:`CorruptImageError` if it cannot be decoded.

    Examples
    --------
    >>> image = read_grey_image("ctx_export.png", nodata=0)  # doctest: +SKIP
    """
    from PIL import Image, UnidentifiedImageError

    from .mosaic import _as_viewed, _check_nodata

    path = Path(path)
    nodata = _check_nodata(nodata)
    _check_image_file(path)
    try:
        with Image.open(path) as im:
            im.load()
            im = _as_viewed(im)  # stored turned or mirrored: as a viewer shows it
            alpha = _alpha(im)
            raw = np.asarray(im) if nodata is not None and im.mode in ("RGB", "RGBA") else None
            if im.mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr"):
                im = im.convert("L")
            arr = np.asarray(im)
    except (UnidentifiedImageError, *_PIL_ERRORS) as exc:
        raise CorruptImageError(f"{path} is not a readable image ({exc}); re-download or re-export it") from exc
    if arr.ndim != 2:
        raise ImageReadError(f"{path} decoded to shape {arr.shape}; expected a single-band image")
    out = arr.astype(np.float32)
    if alpha is not None:
        out[alpha == 0] = np.nan
    if nodata is not None:
        out[_nodata_mask(out if raw is None else raw, nodata)] = np.nan
    return out


def _alpha(im: Any) -> np.ndarray | None:
    """A PIL image's alpha (its alpha band, or its transparent colour), None when it has none."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        return np.asarray(im.convert("RGBA").getchannel("A"))
    return None


def _nodata_mask(arr: np.ndarray, nodata: float) -> np.ndarray:
    """Where a grey ``(rows, cols)`` or colour ``(rows, cols, 3|4)`` image holds ``nodata`` (all of
    red, green and blue, for colour: luminance rounding must not decide it)."""
    if np.isnan(nodata):
        hit = np.isnan(arr)
    else:
        hit = arr == (arr.dtype.type(nodata) if arr.dtype.kind == "f" else nodata)
    return hit[..., :3].all(axis=-1) if arr.ndim == 3 else hit


def _without_nodata(arr: np.ndarray, nodata: float | None) -> np.ndarray:
    """A grey or colour array with the pixels holding ``nodata`` as NaN (float32 then; untouched
    when there are none)."""
    if nodata is None:
        return arr
    hit = _nodata_mask(arr, nodata)
    if not hit.any():
        return arr
    out = arr.astype(np.float32)
    out[hit] = np.nan  # every band of a colour pixel
    return out


def _image_size(path: Path) -> tuple[int, int]:
    """``(rows, cols)`` of an image file as a viewer shows it (EXIF orientation applied), from its
    header only."""
    from PIL import Image, UnidentifiedImageError

    from .mosaic import _orientation

    _check_image_file(path)
    try:
        with Image.open(path) as im:
            cols, rows = im.size
            if _orientation(im) in _EXIF_TRANSPOSED:
                rows, cols = cols, rows
    except (UnidentifiedImageError, *_PIL_ERRORS) as exc:
        raise CorruptImageError(f"{path} is not a readable image ({exc}); re-download or re-export it") from exc
    return int(rows), int(cols)


def _gdal_grey(path: Path, nodata: float | None) -> tuple[Callable[[], np.ndarray], tuple[int, int]] | None:
    """A raster without georeferencing (no CRS, or no geotransform) that marks no data itself (a nodata value, a mask or alpha band: GDAL's
    tags, which PIL does not read): how to read its grey levels with those pixels as NaN, and its
    shape.  None when the file marks no pixel (it is then read as any image, by PIL)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    from .mosaic import _has_gdal_mask

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if src.nodata is None and not _has_gdal_mask(src):
                    return None
                shape = (int(src.height), int(src.width))
    except RasterioError:
        return None  # not GDAL's: PIL says what is wrong with it

    def read() -> np.ndarray:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    bands = src.read(list(range(1, min(src.count, 3) + 1)))
                    valid = src.dataset_mask() != 0  # the mask of the bands together, as GDAL makes it
                    try:
                        palette = src.colormap(1) if src.count == 1 else None
                    except ValueError:
                        palette = None
        except RasterioError as exc:
            raise CorruptImageError(f"{path} could not be decoded ({exc}); re-download or re-export it") from exc
        if palette:  # a palette's colours, as grey levels (PIL's convert("L") does the same)
            lut = np.zeros(max(256, max(palette) + 1), np.float32)
            for index, rgba in palette.items():
                lut[index] = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
            grey = lut[bands[0]]
        else:  # RGB: its luma; grey, or grey and alpha (the alpha is the mask): the grey band
            grey = np.asarray(_as_grey(np.moveaxis(bands, 0, -1)), dtype=np.float32)
        grey[~valid] = np.nan
        if nodata is not None:
            grey[_nodata_mask(np.moveaxis(bands, 0, -1) if len(bands) == 3 else bands[0], nodata)] = np.nan
        return grey

    return read, shape


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder (``IMAGE_SUFFIXES``, not hidden, not in sub-folders), sorted by name.

    Raises
    ------
    ImageReadError
        If ``folder`` is not a folder, or holds no image file.

    Examples
    --------
    >>> craters = detect({p.name: p for p in image_files("chips")}, pixel_size_m=100)  # doctest: +SKIP
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder} is not a folder; check the path")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ImageReadError(f"folder {folder} holds no image file ({', '.join(IMAGE_SUFFIXES)}); check the path")
    return files


def _as_grey(image: Any) -> np.ndarray:
    arr = np.asarray(image.values if hasattr(image, "dims") else image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype.kind in "iuf":
        # ITU-R 601 luma of the RGB bands; alpha is ignored
        arr = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    elif arr.ndim == 3 and arr.shape[-1] in (1, 2):
        # one grey band (a trailing channel axis), or grey and alpha: the grey band
        arr = arr[..., 0]
    return arr


def model_info(model: Any = None) -> dict[str, Any]:
    """Target kind, native pixel size, name, finder settings, pyramid band and orientations of a
    model: a path, None (the shipped default) or a loaded Keras model (the metadata of the file
    :func:`marscraters.model.load_model` read it from; a model built in memory has none, and gets
    the bare defaults)."""
    from .model import _attached_metadata, default_weights_path, read_model_metadata

    info: dict[str, Any] = {"kind": "outline", "native_pixel_size_m": DEFAULT_NATIVE_PIXEL_SIZE_M, "name": "unknown",
                            "extract": {}, "pyramid_top_px": None, "tta": 1}
    path = default_weights_path() if model is None else model if isinstance(model, (str, os.PathLike)) else None
    attached = None if path is not None else _attached_metadata(model)
    if path is not None or attached is not None:
        meta = read_model_metadata(path) if attached is None else attached
        training = meta.get("training", {})
        info["kind"] = training.get("kind", info["kind"])
        info["native_pixel_size_m"] = float(meta.get("native_pixel_size_m", info["native_pixel_size_m"]))
        info["name"] = meta.get("name") or Path(path).stem
        # circle-finder settings chosen on the model's validation chips (benchmarks/tune_extraction.py)
        info["extract"] = dict(meta.get("extract", {}))
        info["version"] = meta.get("marscraters_version")
        # the model's own pyramid band, when it was chosen for it (benchmarks/splits/pyramid_rule.md)
        info["pyramid_top_px"] = meta.get("pyramid_top_px")
        # the orientations its maps are averaged over by default (its verifier learnt from such maps)
        info["tta"] = int(meta.get("tta", 1))
    return info


# the smallest crater the network finds, in pixels at its native pixel size
_MIN_CRATER_PX = 16.0


def _check_resampling(shape: tuple[int, ...], factor: float, pixel_size_m: float, native: float) -> None:
    """Refuse pixel sizes that enlarge the image to nothing useful or to more than memory holds
    (usually a pixel size in the wrong unit)."""
    new = tuple(max(int(round(n * factor)), 0) for n in shape[:2])
    hint = (f"pixel_size_m={pixel_size_m:g} m, and the model works at {native:g} m per pixel, so the image is "
            f"resampled by {factor:.3g} to {new[1]} x {new[0]} px")
    if min(new) < 32:
        raise InvalidArgumentError(f"{hint}: too small to hold a crater. Is the pixel size in metres (THEMIS "
                                   "Day IR: 100; the 256 px/deg ASU tiles: 231)?")
    if factor > 1 and new[0] * new[1] > max(4e8, float(np.prod(shape[:2]))):
        raise InvalidArgumentError(f"{hint}, more than memory holds. Is the pixel size in metres? For a large "
                                   "mosaic, ingest it and use segment() / ds.craters.catalog(), which work in chunks.")


# --------------------------------------------------------------------------------------------
# pixel sizes: given, or read from the image's georeferencing
# --------------------------------------------------------------------------------------------
_SIZE_HINT = "(THEMIS Day IR: 100; the 256 px/deg ASU tiles: 231; HRSC: 12.5; CTX: 6)"


def _given_pixel_size(value: Any) -> float | None:
    """A caller's ``pixel_size_m``: None, or a finite number of metres > 0."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"pixel_size_m must be a number of metres (e.g. 100), got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"pixel_size_m must be a number of metres, got {value!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"pixel_size_m must be a finite number of metres > 0 (e.g. 100), got {value}")
    return value


def _linear_unit(crs: Any) -> float | None:
    """Metres per unit of a projected CRS's axes, or None when they name no length unit."""
    axes = crs.axis_info[:2]
    names = {(a.unit_name or "").strip().lower() for a in axes}
    factors = {float(a.unit_conversion_factor or 0.0) for a in axes}
    if len(names) != 1 or len(factors) != 1 or names & {"", "unknown", "none"}:
        return None
    if any(word in next(iter(names)) for word in ("degree", "radian", "grad", "arc")):
        return None
    factor = next(iter(factors))
    return factor if np.isfinite(factor) and factor > 0 else None


def georeferenced_pixel_size(obj: Any, *, what: str = "the image", need_metres: bool = True) -> float | None:
    """Metres per pixel of a georeferenced image (a Mosaic, or a DataArray with a rioxarray CRS).

    A geographic grid (degrees) gives the metres along y (a meridian) at its centre, which on
    the Mars sphere are the same everywhere; a projected grid gives its pixel height in its
    linear unit, converted to metres.

    Parameters
    ----------
    obj
        A georeferenced xarray object (e.g. :func:`marscraters.mosaic.read_geotiff`'s Mosaic).
    what
        The image's name in messages.
    need_metres
        With False, a projected grid whose unit is unknown returns None instead of failing
        (the caller knows the pixel size).

    Raises
    ------
    InvalidArgumentError
        If the pixels are not square (their sides differ by more than 1 %): in the grid's units,
        nor, on a longitude/latitude grid, on the ground at its centre (columns 1/cos(lat) times
        wider in degrees than rows are square on the ground, and hold round craters).
    CRSError
        If a projected CRS names no linear unit (and ``need_metres``).
    """
    from .crs import Grid, pixel_scale_m

    grid = Grid.from_dataset(obj)
    side_x, side_y = abs(float(grid.transform.a)), abs(float(grid.transform.e))
    units = "degrees" if grid.is_geographic else "CRS units"
    if abs(side_x - side_y) > _SQUARE_TOLERANCE * max(side_x, side_y):
        # on a longitude/latitude lattice, pixels square in its units are squeezed to square ground
        # pixels (_squeezed); pixels already square on the ground (columns 1/cos(lat) times wider in
        # degrees) hold round craters and need no squeeze.  Any other shape is refused.
        ground = _ground_sides(grid) if grid.is_cylindrical else None
        if ground is None or abs(ground[0] - ground[1]) > _SQUARE_TOLERANCE * max(ground[:2]):
            on_ground = ("" if ground is None else
                         f"; {ground[0]:.4g} x {ground[1]:.4g} m on the ground at its centre, latitude {ground[2]:.3g}")
            raise InvalidArgumentError(
                f"{what} has non-square pixels ({side_x:.6g} x {side_y:.6g} {units}{on_ground}), so craters would look "
                "like ellipses to the model: resample it to square pixels first, e.g. `gdalwarp -tr RES RES in.tif "
                f"out.tif` with RES = {min(side_x, side_y):.6g}")
    if grid.is_geographic:
        return pixel_scale_m(grid.px_per_deg()[1])
    factor = _linear_unit(grid.crs)
    if factor is None:
        if not need_metres:
            return None
        unit = grid.crs.axis_info[0].unit_name if grid.crs.axis_info else "none"
        raise CRSError(
            f"{what} is in a projected CRS ({grid.crs.name!r}) whose axes name no length unit ({unit!r}), so its "
            "pixel size in metres is unknown. Give its CRS with units, e.g. `gdal_edit.py -a_srs "
            "'+proj=eqc +R=3396190 +units=m' FILE`, or pass pixel_size_m=<metres> (CLI: --pixel-size METRES)")
    if grid.is_cylindrical:
        return side_y * factor  # true to scale along meridians (x is squeezed where parallels stretch)
    # another projection (polar stereographic, sinusoidal...) is true to scale only somewhere: a
    # projected metre at the image's centre is 1 / scale metres of ground (1.07 at 60 N on a polar
    # stereographic grid true at the pole)
    return side_y * factor / _projection_scale(grid, what)


def _ground_sides(grid: Any) -> tuple[float, float, float]:
    """A longitude/latitude grid's pixel width and height on the ground (metres) at its centre, and
    that centre's latitude (as the squeeze measures them: :func:`marscraters.assemble.window_aspect`)."""
    ny, nx = grid.shape
    _, lat = grid.pixel_to_lonlat((nx - 1) / 2.0, (ny - 1) / 2.0)
    lat = float(np.clip(float(lat), -89.0, 89.0))
    px_x, px_y = grid.km_to_pixels(1.0, lat)
    return 1000.0 / abs(float(px_x)), 1000.0 / abs(float(px_y)), lat


def _projection_scale(grid: Any, what: str) -> float:
    """The local scale of a grid's projection at its centre (projected metres per ground metre),
    with a warning where craters come out as ellipses there (x and y scales over 5 % apart)."""
    import pyproj

    ny, nx = grid.shape
    lon, lat = (float(v) for v in grid.pixel_to_lonlat((nx - 1) / 2.0, (ny - 1) / 2.0))
    f = pyproj.Proj(grid.crs).get_factors(lon, lat)
    h, k = float(f.meridional_scale), float(f.parallel_scale)
    if not (np.isfinite(h) and np.isfinite(k) and h > 0 and k > 0):
        raise CRSError(f"{what}'s projection ({grid.crs.name!r}) has no finite scale at its centre (lon {lon:.3f}, "
                       f"lat {lat:.3f}); reproject it, e.g. `gdalwarp -t_srs IAU_2015:49910 in.tif out.tif`")
    if max(h, k) / min(h, k) > 1.05:
        warnings.warn(
            f"{what}'s projection ({grid.crs.name!r}) stretches the ground by {h:.3f} along meridians and {k:.3f} along "
            "parallels at its centre, so its craters are ellipses in its pixels and their diameters less accurate; "
            "reproject it to equirectangular first (`gdalwarp -t_srs IAU_2015:49910 in.tif out.tif`)",
            UserWarning, stacklevel=3)
    return math.sqrt(h * k)


def _check_georeferenced_size(georef: float, what: str,
                              override: str = "pass pixel_size_m=<metres> (CLI: --pixel-size METRES)") -> None:
    """Refuse a pixel size read from georeferencing outside :data:`PIXEL_SIZE_RANGE_M` (almost always
    a wrong unit: a transform in km under a metre CRS).  ``override``: how the caller can say the
    right size (the mosaic route has no pixel size to give: its georeferencing is fixed instead)."""
    lo, hi = PIXEL_SIZE_RANGE_M
    if not lo <= georef <= hi:
        raise InvalidArgumentError(
            f"{what}'s georeferencing gives {georef:.6g} m per pixel, outside the {lo:g}-{hi:g} m that detect "
            f"works at: resample it (e.g. `gdalwarp -tr 100 100 in.tif out.tif`), or, if its georeferencing is "
            f"wrong, {override}")


#: how a mosaic's wrong pixel size is put right (the mosaic route takes no pixel size of its own)
_MOSAIC_SIZE_FIX = ("correct it where the mosaic was made: the file's geotransform (`gdal_edit.py -a_ullr WEST NORTH "
                    "EAST SOUTH FILE`, in its CRS's units) before `marscraters ingest`, or the bounds given to "
                    "mosaic_from_array")


def _check_mosaic_pixel_size(ds: Any, what: str = "the mosaic") -> float | None:
    """A mosaic's pixel size in metres (None when its pixels are not square or its unit unknown:
    the mosaic route works on them as they are), refused outside :data:`PIXEL_SIZE_RANGE_M` as
    :func:`detect` refuses it, before any network runs."""
    try:
        size = georeferenced_pixel_size(ds, what=what, need_metres=False)
    except InvalidArgumentError:  # non-square pixels: segment and the catalog work on them as they are
        return None
    if size is not None:
        _check_georeferenced_size(size, what, _MOSAIC_SIZE_FIX)
    return size


def _pixel_size(given: float | None, georef: float | None, what: str, *, unplaced: bool = False) -> float:
    """The pixel size of one image: the caller's (checked against the georeferencing's), else its own.
    ``unplaced``: the file has a CRS but no geotransform (said in the message when no size is given)."""
    lo, hi = PIXEL_SIZE_RANGE_M
    if given is None:
        if georef is None and unplaced:
            raise InvalidArgumentError(
                f"{what} has a CRS but no geotransform (GDAL's default: 1 unit per pixel), so its pixel size is "
                f"unknown: pass pixel_size_m=<metres> (CLI: --pixel-size METRES), the ground size of one pixel "
                f"{_SIZE_HINT}, or give it the bounds of its outer pixel edges first, in its CRS's units: "
                f"`gdal_edit.py -a_ullr WEST NORTH EAST SOUTH {what}`")
        if georef is None:
            raise InvalidArgumentError(
                f"{what} carries no georeferencing, so its pixel size is unknown: pass pixel_size_m=<metres> "
                f"(CLI: --pixel-size METRES), the ground size of one pixel {_SIZE_HINT}, or give a GeoTIFF")
        _check_georeferenced_size(georef, what)
        return georef
    if not lo <= given <= hi:
        raise InvalidArgumentError(
            f"pixel_size_m={given:g} is outside {lo:g}-{hi:g} m per pixel: is it in metres? Pass the ground size of "
            f"one pixel in metres, pixel_size_m=<metres> (CLI: --pixel-size METRES) {_SIZE_HINT}; resample finer "
            "imagery to 1 m or coarser first")
    if georef is not None and abs(given - georef) > _PIXEL_SIZE_AGREEMENT * georef:
        warnings.warn(
            f"pixel_size_m={given:g} m differs by {abs(given - georef) / georef:.0%} from the {georef:.4g} m per pixel "
            f"of {what}'s georeferencing; using {given:g}. Leave out pixel_size_m=<metres> (CLI: --pixel-size "
            "METRES) to use the georeferencing's", UserWarning, stacklevel=2)
    return given


# --------------------------------------------------------------------------------------------
# the images of a call
# --------------------------------------------------------------------------------------------
class _Source(NamedTuple):
    key: Any  # the image column's value
    what: str  # the image's name in messages
    read: Callable[[], np.ndarray]  # its grey levels, 2-D
    shape: tuple[int, int]  # of what read() returns
    pixel_size_m: float
    # how many times wider than tall a crater is in the file's pixels (a geographic grid away from
    # the equator); read() has squeezed x by it, and the craters' x are stretched back
    aspect: float = 1.0


def _squeezed(ds: Any, what: str) -> tuple[Callable[[], np.ndarray], tuple[int, int], float]:
    """A georeferenced image's grey levels with x squeezed to square ground pixels where its grid
    stretches craters: (read, shape, aspect).  (The mosaic catalog squeezes each window's map
    and image after the network, not the network's input.)"""
    from .assemble import _squeeze_x, window_aspect
    from .crs import Grid

    band = ds["ir"] if hasattr(ds, "data_vars") else ds
    ny, nx = int(band.sizes["y"]), int(band.sizes["x"])
    grid = Grid.from_dataset(band)
    # the squeeze undoes parallels stretched on a longitude/latitude lattice; other projections are
    # measured by their local scale instead (georeferenced_pixel_size)
    aspect = window_aspect(grid, (ny - 1) / 2.0, (nx - 1) / 2.0) if grid.is_cylindrical else 1.0
    if aspect == 1.0:
        return (lambda: np.asarray(band.values)), (ny, nx), 1.0
    top, bottom = window_aspect(grid, 0.0, (nx - 1) / 2.0, 0.0), window_aspect(grid, ny - 1.0, (nx - 1) / 2.0, 0.0)
    if max(top, bottom) / min(top, bottom) > 1.0 + _ASPECT_SPREAD:
        warnings.warn(
            f"{what} spans latitudes where craters are {min(top, bottom):.2f} to {max(top, bottom):.2f} times wider "
            f"than tall in its pixels; detect squeezes the whole image by {aspect:.2f} (its centre's), so craters near "
            "its top and bottom edges get less accurate diameters. `marscraters ingest` then `segment` and `catalog "
            "--mosaic` correct it window by window", UserWarning, stacklevel=2)
    shape = (ny, int(np.arange(0.0, nx - 1 + 1e-9, aspect).size))

    def read() -> np.ndarray:
        values = np.asarray(band.values)
        out = _squeeze_x(values.astype(np.float32), aspect)
        if values.dtype.kind in "iu":  # integer grey levels stay integers, as read
            return np.rint(out).astype(values.dtype)
        finite = values[np.isfinite(values)]
        # interpolation's rounding must not take 255 past the 8-bit scale the levels are judged on
        return np.clip(out, finite.min(), finite.max()) if finite.size else out

    return read, shape, aspect


def _caller_options(options: Any, *, diameters: bool = True) -> dict | None:
    """A caller's ``extract_options``, checked where a mistake would otherwise show only after the
    network ran (or not at all): ``min_score`` a score in 0..1 (1 excluded, as the verifier's
    threshold and ``--min-score``; None: the default), and ``min_diameter_px <= max_diameter_px``
    (each level's band would miss them, and the table come back empty; ``diameters=False`` leaves
    them to a caller that checks them before its own work).  A copy; None stays None."""
    from .extract import _check_positive

    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise InvalidArgumentError(f"extract_options must be a dict of circle-finder options, e.g. "
                                   f'extract_options={{"min_score": 0.5}}, got {type(options).__name__}')
    out = dict(options)
    if "min_score" in out and out["min_score"] is None:
        del out["min_score"]  # None: the verifier's own threshold (or the model file's, without it)
    if "min_score" in out:
        score = out["min_score"]
        ok = not isinstance(score, (bool, np.bool_))
        try:
            ok = ok and 0.0 <= float(score) < 1.0  # NaN fails too
        except (TypeError, ValueError):
            ok = False
        if not ok:
            # a score of 1 or more keeps nothing: a percentage or a typo, which must not give an empty table
            raise InvalidArgumentError(
                f'extract_options={{"min_score": {score!r}}}: min_score must be a number from 0 up to (not including) '
                "1, the score a crater needs to be kept (the verifier's crater probability, or with verify=False the "
                "circle finder's score; 0 keeps every candidate); pass e.g. "
                'extract_options={"min_score": 0.5} (CLI: --min-score 0.5)')
    if not diameters:
        return out
    lo, hi = out.get("min_diameter_px"), out.get("max_diameter_px")
    lo = None if lo is None else _check_positive("min_diameter_px", lo, allow_zero=True)
    hi = None if hi is None else _check_positive("max_diameter_px", hi)
    if lo is not None and hi is not None and hi < lo:
        # extract_craters' own message: the pyramid's levels would each miss the empty range silently
        raise InvalidArgumentError(f"max_diameter_px={out['max_diameter_px']!r} is smaller than "
                                   f"min_diameter_px={out['min_diameter_px']!r}.")
    return out


def _is_many(image: Any) -> bool:
    if hasattr(image, "dims"):  # an xarray object (a Dataset is a Mapping of its variables): one image
        return False
    if isinstance(image, (Mapping, list, tuple)):
        return True
    if isinstance(image, np.ndarray):
        # (n, rows, cols) or (n, rows, cols, 3|4); (rows, cols, 3|4) is one RGB(A) image and
        # (rows, cols, 1|2) one grey image (with alpha): a stack of 1- or 2-px-wide images finds nothing
        return image.ndim == 4 or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4))
    return False


def _named(exc: MarsCratersError, what: str) -> MarsCratersError:
    """``exc`` with the image named first (many images, or a file)."""
    text = str(exc)
    return exc if text.startswith(what) else type(exc)(f"{what}: {text}")


def _relay(caught: list[warnings.WarningMessage], what: str | None) -> None:
    """Warnings recorded while an image was read and prepared, raised again from :func:`detect`
    (so they point at its caller), naming the image when there are many."""
    for w in caught:
        if issubclass(w.category, UserWarning):
            text = str(w.message)
            warnings.warn(text if what is None or text.startswith(what) else f"{what}: {text}", w.category,
                          stacklevel=3)
        else:  # library deprecations and the like: as they came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _read_georeferenced(path: Path, nodata: float | None = None) -> Any:
    """The Mosaic of a raster that may carry georeferencing (a GeoTIFF...), or None for a plain
    file without a CRS, or with one but no geotransform (read as any image, with the caller's
    pixel size)."""
    return _georeferenced_or_unplaced(path, nodata)[0]


def _georeferenced_or_unplaced(path: Path, nodata: float | None = None) -> tuple[Any, bool]:
    """:func:`_read_georeferenced`'s Mosaic (or None), and whether a file without one has a CRS
    but GDAL's default geotransform (``gdal_translate -a_srs`` without ``-a_ullr``): its pixels
    are placed nowhere, and read as 1 CRS unit each (flipped) they would be wrong."""
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    from .errors import MissingCRSError
    from .mosaic import _plain_header, read_geotiff

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return read_geotiff(path, nodata=nodata), False
    except MissingCRSError:
        try:
            return None, _plain_header(str(path))["crs"] is not None
        except RasterioError:
            return None, False


def _open(item: Any, key: Any, what: str, given: float | None, nodata: float | None = None) -> _Source:
    """An image's source: how to read it, its shape and its pixel size, without reading its pixels
    when it is a file.  Pixels equal to ``nodata`` read as NaN."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        unplaced = False
        if path.suffix.lower() in _GEO_SUFFIXES and path.is_file():
            ds, unplaced = _georeferenced_or_unplaced(path, nodata)
            if ds is not None:
                georef = georeferenced_pixel_size(ds, what=what, need_metres=given is None)
                read, shape, aspect = _squeezed(ds, what)
                return _Source(key, what, read, shape, _pixel_size(given, georef, what), aspect)
            # no CRS (or no geotransform): GDAL still knows the file's nodata value, mask and alpha, which PIL does not
            gdal = _gdal_grey(path, nodata)
            if gdal is not None:
                return _Source(key, what, gdal[0], gdal[1], _pixel_size(given, None, what, unplaced=unplaced))
        shape = _image_size(path)
        return _Source(key, what, lambda: read_grey_image(path, nodata=nodata), shape,
                       _pixel_size(given, None, what, unplaced=unplaced))
    from .model import _as_image, _unmasked

    georef = None
    if hasattr(item, "data_vars"):  # an xarray Dataset: a Mosaic's grey levels are its "ir"
        if "ir" not in item.data_vars:
            raise InvalidArgumentError(f"{what} is a Dataset without an 'ir' variable; pass the DataArray of its "
                                       "grey levels, e.g. ds['band_name']")
        item = item["ir"]
    if hasattr(item, "dims"):  # a DataArray: georeferenced when it carries a CRS (rioxarray)
        try:
            import rioxarray  # noqa: F401  (registers .rio)

            crs = item.rio.crs
        except Exception:  # noqa: BLE001 - no spatial dims or coordinates: a plain array
            crs = None
        if item.ndim == 2 and set(item.dims) == {"y", "x"}:
            # rows are y: once, for the squeezed image and the plain one alike (its values are read below)
            item = item.transpose("y", "x")
        if crs is not None:
            georef = georeferenced_pixel_size(item, what=what, need_metres=given is None)
            if item.ndim == 2 and set(item.dims) == {"y", "x"}:
                if nodata is not None and not np.isnan(nodata):  # before the squeeze blends it into its neighbours
                    item = item.where(item != nodata)
                read, shape, aspect = _squeezed(item, what)
                if aspect != 1.0:
                    arr = _as_image(read(), what)
                    return _Source(key, what, lambda: arr, shape, _pixel_size(given, georef, what), aspect)
    values = item.values if hasattr(item, "dims") else item
    # a numpy masked array (rasterio's read(masked=True), a unit masked out): its masked pixels
    # are no data, as NaN is; np.asarray would read what lies under the mask as ground
    values = _unmasked(values)
    if nodata is not None:  # before colour becomes grey, whose rounding must not decide it
        with contextlib.suppress(Exception):  # anything numpy cannot read: _as_image says so
            values = np.asarray(values)
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            values = _without_nodata(values, nodata)
    arr = _as_image(_as_grey(values), what)
    return _Source(key, what, lambda: arr, (int(arr.shape[0]), int(arr.shape[1])), _pixel_size(given, georef, what))


def _collar(arr: np.ndarray, lo: float, hi: float, *, what: str = "image") -> np.ndarray | None:
    """Where an image holds a likely undeclared no-data collar, with a warning that names the fix.

    A collar is a solid, constant region exactly at the image's darkest level that reaches its
    edge (or its no-data) and covers at least :data:`_COLLAR_SHARE` of its valid pixels: the
    fill around a map-projected strip, or a GIS export's.  The network reads it as black ground,
    and that changes its map far inside the valid pixels.  Solid: nearly all of it
    (:data:`_COLLAR_SOLID`) survives a 3x3 binary opening; clipped shadow is ragged and porous,
    and is left to the shadow-or-saturated warning (declared no data, it would blank the image).
    (A bright region at the edge is as often saturated ground, which that warning speaks of too.)
    Images whose other pixels hold no third level (a drawing, a mask, disks on a flat ground)
    are not photographs, and have none.  None when there is none.
    """
    from scipy import ndimage

    finite = np.isfinite(arr)
    n = int(np.count_nonzero(finite))
    # the darkest level only: a fill is black (0) almost always, while a bright region at the edge
    # is as often saturated ground (a THEMIS crop of bright terrain), which no data would hide
    same = arr == lo
    if np.count_nonzero(same) < _COLLAR_SHARE * n:  # most images stop here, cheaply
        return None
    labels, count = ndimage.label(same)
    edge = np.zeros(arr.shape, bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    if not finite.all():  # no data inside the image is an edge too
        edge |= ndimage.binary_dilation(~finite)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    part = np.zeros(count + 1, bool)
    part[np.unique(labels[edge & same])] = True
    part &= sizes >= _COLLAR_PART * n
    part[0] = False
    if part.any():
        # a fill is solid; shadow clipped to black is fragments, ragged edges and pores.  Beyond the
        # image counts as fill (border_value=1): a thin band along the edge, or the tips of a slightly
        # rotated frame's fill, are a collar's, not ragged shadow
        mask, square = part[labels], np.ones((3, 3), bool)
        opened = ndimage.binary_dilation(ndimage.binary_erosion(mask, square, border_value=1), square) & mask
        part &= np.bincount(labels[opened], minlength=count + 1) >= _COLLAR_SOLID * sizes
        part[0] = False
    share = sizes[part].sum() / n
    if share < _COLLAR_SHARE:
        return None
    region = part[labels]
    rest = arr[finite & ~region]
    if not ((rest != lo) & (rest != hi)).any():  # two levels only: not a photograph
        return None
    inside = int(np.count_nonzero(rest == lo))
    # a declared value blanks that level everywhere: say so when valid pixels hold it too (deep shadow)
    also = (f" (it also makes the {inside} pixels of that level inside the {what} no data; to keep them, set "
            "only the collar to NaN)" if inside else "")
    warnings.warn(
        f"{share:.0%} of the {what}'s pixels are exactly {lo:g}, its darkest grey level, in a region that "
        f"reaches its edge: most likely a no-data collar (the fill around a map-projected strip or a GIS export), "
        f"not ground. The network sees it as black ground, which hides craters well inside the valid pixels. "
        f"Declare it as no data: nodata={lo:g} (CLI: --nodata {lo:g}){also}, or set those pixels to NaN",
        UserWarning, stacklevel=3)
    return region


def _warn_extremes(finite: np.ndarray, lo: float, hi: float, *, what: str = "image", stacklevel: int = 2) -> None:
    share = (np.count_nonzero(finite == lo) + np.count_nonzero(finite == hi)) / finite.size
    # a two-level image (a mask, a drawing, a test pattern) has nothing between: not a photograph
    if _EXTREME_SHARE < share < 1.0:
        warnings.warn(
            f"{share:.0%} of the {what}'s pixels are at its darkest ({lo:g}) or brightest ({hi:g}) grey level: it is "
            f"nearly all shadow or saturated, and craters there cannot be seen. Use a better-exposed {what}, or set "
            "those pixels to NaN (no data) so that they count as featureless ground; a fill around a map-projected "
            "strip is no data: declare it where the image is read, nodata=0 (CLI: `ingest`/`detect` --nodata 0)",
            UserWarning, stacklevel=stacklevel)


def _prepare(arr: np.ndarray, levels: Sequence[Level], value_range: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The network's input of one image at each level of its pyramid (normalised, resampled),
    and where each has no data."""
    from skimage.transform import rescale

    from .model import _grey_levels, grey_sample, guess_value_range, normalise_image
    from .mosaic import _halve_antialiased

    finite, lo, hi = _grey_levels(arr)  # an all-NaN or constant image fails here, before the model loads
    collar = _collar(arr, lo, hi)
    # a collar is said to be likely no data (above), not shadow or saturation: judge exposure without it
    _warn_extremes(finite if collar is None else arr[np.isfinite(arr) & ~collar], lo, hi)
    if value_range is None:
        # one grey-level rule for the whole pyramid: the levels are the same ground
        value_range = guess_value_range(grey_sample(arr), floating=arr.dtype.kind == "f", lo=lo, hi=hi)
    work = arr.astype(np.float32)
    missing = ~np.isfinite(work)
    gaps = bool(missing.any())
    fill = float(np.nanmean(work)) if gaps else 0.0  # what no-data pixels look like to the resampling
    out = []
    filled = None  # the image with its no-data filled, for rescale (made once, when needed)
    halved, cell = work, 1  # the last halving made, and its cell in input pixels
    for level in levels:
        if not level.resampled:
            out.append((normalise_image(work, value_range=value_range), missing))
            continue
        f = level.factor
        k = int(round(1 / f))
        if f < 1 and k * f == 1.0 and k & (k - 1) == 0:
            # halvings of halvings, anti-aliased, as a mosaic's levels (coarsen_mosaic): the first
            # equals rescale(0.5) exactly, and each costs a quarter of the one before
            while cell < k:
                halved, cell = _halve_antialiased(halved, fill), cell * 2
            gone = ~np.isfinite(halved)
            x = np.where(gone, np.float32(fill), halved) if gone.any() else halved
            out.append((normalise_image(x, value_range=value_range), gone))
            continue
        if filled is None:
            filled = np.nan_to_num(work, nan=fill) if gaps else work
        x = rescale(filled, f, order=1, anti_aliasing=f < 1, preserve_range=True).astype(np.float32)
        # a level pixel is no data when most of the ground it covers is
        gone = (rescale(missing.astype(np.float32), f, order=1, anti_aliasing=f < 1) > 0.5 if gaps
                else np.zeros(x.shape, bool))
        out.append((normalise_image(x, value_range=value_range), gone))
    return out


def _probabilities(model: Any, xs: list[np.ndarray], *, batch_size: int, tta: int, progress: bool) -> list[np.ndarray]:
    """The network's map of each normalised image: same-sized images in batches of ``batch_size``
    (as :func:`marscraters.training.predict_stack` does), the others -- larger than one batch, or
    with test-time augmentation -- in exact tiles by :func:`marscraters.model.predict_image`."""
    from .model import _MAX_BATCH_PIXELS, MULTIPLE, pad_to_multiple, predict_image

    out: list[Any] = [None] * len(xs)
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray, tuple[slice, slice]]]] = {}
    for i, x in enumerate(xs):
        padded, slices = pad_to_multiple(x, MULTIPLE, mode="reflect")
        if tta > 1 or padded.size > _MAX_BATCH_PIXELS:
            out[i] = predict_image(model, x, normalise=False, batch_size=batch_size, progress=progress, tta=tta)
        else:
            groups.setdefault(padded.shape, []).append((i, padded, slices))
    for (ny, nx), members in groups.items():
        per = max(1, min(batch_size, _MAX_BATCH_PIXELS // (ny * nx)))
        for a in range(0, len(members), per):
            chunk = members[a:a + per]
            stack = np.stack([padded for _, padded, _ in chunk])[..., None]
            if len(chunk) < per < len(members):
                # one batch shape per image size: the compiled predict function is reused, not retraced
                stack = np.concatenate([stack, np.zeros((per - len(chunk),) + stack.shape[1:], stack.dtype)])
            pred = np.asarray(model.predict_on_batch(stack), dtype=np.float32)
            if pred.shape[:3] != stack.shape[:3]:
                raise ModelError(f"model {getattr(model, 'name', '?')!r} returned shape {pred.shape} for input "
                                 f"{stack.shape}; the model must map (N, H, W, 1) to (N, H, W, 1)")
            for k, (i, _, (rows, cols)) in enumerate(chunk):
                out[i] = pred[k, rows, cols, 0].copy()
    return out


def _load_model(model: Any, precision: str = "float32") -> Any:
    """The Keras model of a path (None: the shipped one), loaded once per process, file version
    and precision."""
    from .model import default_weights_path, load_model
    from .segment import _cached_model

    path = Path(default_weights_path() if model is None else model)
    # a missing file: load_model's own message says how to get the weights
    return _cached_model(path, precision) if path.is_file() else load_model(model)


class _Plan(NamedTuple):
    levels: list[Level]  # the image's pyramid, finest first
    label: str | None  # the image's name in messages, when they need one (many images, or a file)


def _plan(src: _Source, native: float, label: str | None, levels: Any, top_px: float | None = None) -> _Plan:
    pyramid = pyramid_levels(src.shape, src.pixel_size_m, native, levels=levels, top_px=top_px)
    if pyramid[0].resampled:  # coarser than native, so enlarged: before the model loads, a wrong unit fails fast
        _check_resampling(src.shape, pyramid[0].factor, src.pixel_size_m, native)
    elif min(src.shape) < _MIN_CRATER_PX:
        # padded and searched all the same (the issue asks for small images to be padded), but say why it is empty
        warnings.warn(f"the image is {src.shape[1]} x {src.shape[0]} px, narrower than the smallest crater the "
                      f"model finds ({_MIN_CRATER_PX:g} px at {native:g} m per pixel), so no crater can be found in "
                      "it; detect on a larger image around it", UserWarning, stacklevel=2)
    return _Plan(pyramid, label)


def _groups(work: list[tuple[_Source, _Plan]]) -> list[list[tuple[_Source, _Plan]]]:
    """Consecutive images taken together: about :data:`_GROUP_PIXELS` pixels, at most
    :data:`_GROUP_IMAGES` images (memory stays bounded however many images a call holds)."""
    groups: list[list[tuple[_Source, _Plan]]] = []
    size = 0
    for src, plan in work:
        if not groups or size >= _GROUP_PIXELS or len(groups[-1]) >= _GROUP_IMAGES:
            groups.append([])
            size = 0
        groups[-1].append((src, plan))
        size += level_pixels(src.shape, plan.levels)
    return groups


def _in_image_pixels(tables: list[pd.DataFrame], plan: _Plan, pixel_size_m: float, options: dict,
                     target: str, indices: Sequence[int] | None = None) -> pd.DataFrame:
    """Craters of the image's pyramid levels, merged by the finder's duplicate rule, in the input
    image's pixels and metres.  ``indices``: each of ``plan.levels``' index in the image's full
    pyramid (the ``level`` column's), when some levels were skipped."""
    craters = merge_levels(tables, plan.levels, nms=options.get("nms", "deepmoon"),
                           nms_threshold=options.get("nms_threshold"), contained=target == "filled", indices=indices)
    craters = craters.assign(diameter_m=craters["diameter_px"] * pixel_size_m)
    craters = craters.assign(level=craters["level"].astype(np.int64))
    cols = ["x", "y", "diameter_px", "diameter_m", "score", "level"]
    return craters[cols].sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _reraise(exc: MarsCratersError, label: str | None) -> None:
    named = exc if label is None else _named(exc, label)
    if named is exc:  # already names the image (or needs no name)
        raise exc
    raise named from exc


class _Run(NamedTuple):
    """One model's share of a detect() call: its settings and its images' plans."""

    kind: str
    native: float
    name: str  # the model's name (its metadata), for the result's attrs
    verifier: Any
    options: dict[str, Any]
    work: list[tuple[_Source, _Plan]]
    top_px: float | None = None  # the model's pyramid band (None: LEVEL_TOP_PX)
    tta: int = 1  # the model's default orientations


def _setup(model: Any, loaded: bool, *, kind: str | None, native: float | None, verify: Any,
           extract_options: dict | None) -> _Run:
    """A model's target kind, native pixel size, verifier and finder options (files: read from
    its metadata; nothing is loaded but the verifier)."""
    from .model import _attached_metadata
    from .pyramid import LEVEL_TOP_PX
    from .verify import merge_options, resolve_verifier

    # a loaded model carries its file's metadata when load_model read it; one built in memory
    # (or loaded by Keras itself) gets the shipped THEMIS model's settings, and is told so unless
    # the caller named its kind (then knowing it for a bare network)
    known = loaded and _attached_metadata(model) is not None
    info = model_info(model if known or not loaded else None)
    if loaded and not known and kind is None:
        warnings.warn(
            f"the Keras model {getattr(model, 'name', '?')!r} carries no marscraters metadata (it was not read by "
            "marscraters.model.load_model), so the shipped THEMIS model's settings are assumed for it: its pyramid "
            f"band ({info.get('pyramid_top_px') or LEVEL_TOP_PX:g} px), its native pixel size "
            f"({info['native_pixel_size_m']:g} m; native_pixel_size_m= to change it), its target kind "
            f"({info['kind']!r}; kind=) and its circle-finder settings. Pass the model's file path (model=<path of "
            "its .keras file>) to use its own", UserWarning, stacklevel=4)
    if loaded:
        # a loaded Keras model names no verifier: only an explicit one is used with it
        if verify is True:
            raise ModelError("a loaded Keras model names no verifier; pass verify=<path of a verifier .keras> "
                             "or the model's file path instead of the loaded model")
        if verify is None:
            warnings.warn("a loaded Keras model names no verifier, so these are one-stage detections (more false "
                          "craters); pass the model's file path to use the verifier it names, verify=<verifier "
                          ".keras>, or verify=False to silence this", UserWarning, stacklevel=4)
        verifier = resolve_verifier(False if verify is None else verify, None)
    else:
        verifier = resolve_verifier(verify, model)
    name = (str(info["name"]) if known else getattr(model, "name", "keras model")) if loaded else \
        str(info.get("name") or Path(model).stem)
    return _Run(kind or info["kind"], float(native or info["native_pixel_size_m"]), name, verifier,
                merge_options(info["extract"], extract_options, verifier), [], info.get("pyramid_top_px"),
                int(info.get("tta", 1)))


def _detect_run(model: Any, loaded: bool, run: _Run, *, value_range: Any, batch_size: int, tta: int,
                precision: str, progress: bool, bar: Any) -> list[pd.DataFrame]:
    """One model's images through the pyramid, the network, the finder and the verifier."""
    from .verify import find_craters_many

    keras_model = model if loaded else None
    tables: list[pd.DataFrame] = []
    for group in _groups(run.work):
        xs, nodata, level_opts, owners = [], [], [], []
        # each image's levels whose band the caller's limits meet, with their index in its full pyramid
        kept: list[list[tuple[int, Level]]] = [[] for _ in group]
        for n, (src, plan) in enumerate(group):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    prepared = _prepare(src.read(), plan.levels, value_range)
                except MarsCratersError as exc:
                    _reraise(exc, plan.label)
            _relay(caught, plan.label)
            for index, (level, (x, missing)) in enumerate(zip(plan.levels, prepared)):
                opts = level_options(level, run.options)
                if opts is None:  # the caller's diameter limits miss this level's band
                    continue
                xs.append(x)
                nodata.append(missing)
                level_opts.append(opts)
                owners.append(n)
                kept[n].append((index, level))
        if keras_model is None:  # after the first images are read: a bad one fails before the model loads
            keras_model = _load_model(model, precision)
        probs = _probabilities(keras_model, xs, batch_size=batch_size, tta=tta, progress=progress)
        for prob, missing in zip(probs, nodata):
            prob[missing] = np.nan
        # the verifier learned on the network's normalised input: it sees the same images
        found = find_craters_many(probs, xs if run.verifier is not None else None, target=run.kind,
                                  verifier=run.verifier, options=level_opts)
        for n, (src, plan) in enumerate(group):
            mine = [i for i, o in enumerate(owners) if o == n]
            tables.append(_in_image_pixels([found[i] for i in mine], plan._replace(levels=[lv for _, lv in kept[n]]),
                                           src.pixel_size_m, run.options, run.kind, [i for i, _ in kept[n]]))
        bar.update(len(group))
    return tables


def detect(
    image: Any,
    *,
    pixel_size_m: float | Any | None = None,
    model: Any = None,
    kind: str | None = None,
    native_pixel_size_m: float | None = None,
    value_range: tuple[float, float] | str | None = None,
    batch_size: int = 4,
    extract_options: dict | None = None,
    progress: bool = False,
    tta: int | None = None,
    verify: Any = None,
    levels: int | str = "auto",
    precision: str = "float32",
    nodata: float | None = None,
) -> pd.DataFrame:
    """Find craters on an image, or on many, at any pixel size.

    The network runs on an image pyramid (:mod:`marscraters.pyramid`): the image's own pixels,
    then 1/2, 1/4, ... of them until the biggest crater the image can hold is within reach, each
    level keeping its own band of diameters and duplicates across levels merged by the finder's
    rule.  An image coarser than the network's native pixel size is enlarged to it first.  So
    the pixel size sets the diameters in metres and which levels run; the image's detail is
    never thrown away.

    Parameters
    ----------
    image
        One image: a 2-D grey array (or an RGB ``(H, W, 3)`` array, converted to grey) of any
        size, NaN = no data (as are a numpy masked array's masked pixels); an xarray DataArray
        or Mosaic Dataset (its ``ir``); or the path of an image file -- a GeoTIFF (any raster
        with a Mars CRS, read by :func:`marscraters.mosaic.read_geotiff`: its first band, with
        GDAL's no data -- its nodata value, mask band or alpha band -- as NaN) or a PNG, JPEG,
        PGM or plain TIFF (:func:`read_grey_image`: as a viewer shows it, EXIF orientation
        applied, and transparent pixels as NaN; a TIFF without a CRS keeps GDAL's no data too).

        Many images: a list or tuple of them, a stack ``(n, H, W)`` (or ``(n, H, W, 3)``), or a
        mapping of names to images.  The result is then one table with an ``image`` column:
        the image's position in the list or stack, or its name in the mapping.  Same-sized
        images go through the network together (``batch_size`` per call) and the verifier scores
        all their candidates in full batches; each image's rows are those :func:`detect` gives
        for it alone (on CPU the network's batched arithmetic may move the probabilities by
        ~1e-6, which left every crater of the 100 benchmark chips unchanged; ``batch_size=1``
        makes them bit-identical).
    pixel_size_m
        Size of one pixel on the ground, in metres (1-1000).  Default: read from the image's
        georeferencing (a GeoTIFF, or an xarray object with a rioxarray CRS): for a geographic
        grid the metres along y (a meridian), for a projected grid its pixel height in metres.
        Given beside georeferencing, it wins, with a warning when the two differ by more than
        5 %.  Required for images without georeferencing.  With many images: one number for
        all, or a list with one per image.
    model
        Path of a model file, a loaded Keras model, or None: the shipped model for each
        image's pixel size (:func:`marscraters.model.default_model_for`: the THEMIS default,
        or below 50 m per pixel the model for fine imagery, trained on THEMIS and CTX).  A
        model file is loaded once per process (and again when the file changes).  A loaded
        model's settings (pyramid band, native pixel size, kind, finder options) are those of
        the file :func:`marscraters.model.load_model` read it from; a model built in memory
        (or loaded by Keras itself) gets the shipped THEMIS model's (a 128 px band, 100 m,
        ``outline``), with a warning unless ``kind`` is given: pass its file's path instead.
    kind
        Target kind the model predicts (``filled``/``outline``/``ring``); read from the model file
        when None (for a loaded model, see ``model``).
    native_pixel_size_m
        Pixel size the model was trained at; read from the model file when None (100 m for the
        shipped THEMIS model; for a loaded model, see ``model``).
    value_range
        Grey-level range for :func:`marscraters.model.normalise_image`; default
        (:func:`marscraters.model.guess_value_range`, the rule ``segment`` applies to mosaics
        too) 0..1 for float images within 0..1 (an 8-bit image divided by 255), 0..255 for
        other images within 0..255, and a percentile stretch (``"auto"``), with a warning, for
        anything else (a 16-bit image) and for an image far darker, brighter or flatter than the
        training chips (levels spanning under 15 % of the guessed range, or a mean outside
        20-80 % of it; the chips span at least 22 % and average 40-60 %), such as reflectance
        of 0.05-0.25.  Judged per image.
    batch_size, extract_options, progress
        Images (or windows of a large image) per network call; options of
        :func:`marscraters.extract.extract_craters`; a progress bar (over images when there
        are many).  The options
        default to those stored in the model file (chosen on its validation chips); a
        ``min_score`` option drops detections scored below it.  With the verifier on, the
        finder's thresholds (``method``, ``threshold``, ``template_threshold``...) are the
        ones the verifier was trained on, and a warning names any of yours it replaced; sizes,
        NMS and scales stay yours, and ``min_score`` replaces the verifier's threshold (0 keeps
        every candidate, scored; left out or None, the verifier's own applies).  ``min_score``
        is a number from 0 up to (not including) 1, with the verifier or without it; a kept
        crater's ``score`` does not depend on it (:data:`marscraters.verify.VERIFY_MARGIN`).
        Pass ``verify=False`` to run the finder with your own thresholds.
    tta
        Test-time augmentation: average the network's output over 1, 2, 4 or 8 orientations of
        the image (:func:`marscraters.model.predict_image`), for ``tta`` times the work.  None
        (default): the model's own setting (its file's ``tta``; 1 when it has none), which its
        verifier learnt from.
    verify
        Second-stage verification (:mod:`marscraters.verify`): ``None`` uses the verifier the
        model file names (the shipped model names one), ``False`` turns it off, and a
        :class:`~marscraters.verify.Verifier` or a path uses that one.  With a verifier,
        ``score`` is its crater probability.
    levels
        The image pyramid: ``"auto"`` (as deep as the image's size needs) or the most levels
        to run; ``1`` runs the network once, at the image's own pixels (or the native pixel
        size, for coarser images).  :func:`marscraters.pyramid.pyramid_levels` lists them,
        given the model's band (``top_px=model_info(model)["pyramid_top_px"]``).
    precision
        The network's arithmetic (:func:`marscraters.model.resolve_precision`): ``"auto"``
        computes in bfloat16 on CPUs with native bfloat16 (about twice as fast there) and in
        float32 elsewhere; ``"float32"`` gives the same numbers on every machine.  A model
        passed as a Keras object runs in its own precision.
    nodata
        A grey level that marks no data in images that do not declare it, such as the black
        collar around a map-projected strip (``nodata=0``): its pixels become NaN, as a file's
        own nodata value, mask and alpha do (a colour pixel when red, green and blue all equal
        it).  No-data pixels look like featureless ground to the network and hold no crater;
        a black collar read as ground changes its map far inside the valid pixels.  Applies to
        every image of the call.

    Returns
    -------
    pandas.DataFrame
        ``x``, ``y`` (pixel column and row of the centre, origin at the centre of the top-left
        pixel), ``diameter_px``, ``diameter_m``, ``score`` and ``level`` (the pyramid level it
        was found at, 0 the finest), sorted by score; with many
        images, ``image`` first and the rows in the images' order.  ``attrs["pixel_size_m"]``
        is the pixel size used and ``attrs["model"]`` the model's name (per image, with many).

    Raises
    ------
    InvalidArgumentError
        No pixel size for an image without georeferencing; a pixel size outside 1-1000 m;
        georeferenced pixels that are not square (beyond 1 %), in the grid's units nor, on a
        longitude/latitude grid, on the ground; ``extract_options`` with ``min_score`` outside
        0..1 (1 excluded) or ``max_diameter_px`` below ``min_diameter_px``, before any work; a
        bad array.  With many images (or a file), the message names the image.
    CRSError
        A GeoTIFF in a projected CRS with no length unit, when no pixel size is given.

    Warns
    -----
    UserWarning
        When the image is narrower than the smallest crater the model finds (16 px): it is
        padded and searched, but cannot hold a crater.  When the grey
        levels are far from the training chips' and the image is stretched on its own.  When
        a solid, constant region exactly at its darkest level reaches its edge and covers
        at least 5 % of it: most likely an undeclared no-data collar (pass ``nodata=``).  When
        over 40 % of its other pixels sit at its darkest or brightest level (nearly all shadow
        or saturated).  When a given pixel size disagrees with the georeferencing's.

    Examples
    --------
    >>> craters = detect(read_grey_image("chip.png"), pixel_size_m=100)  # doctest: +SKIP
    >>> craters = detect("hrsc_tile.tif")  # the pixel size from the GeoTIFF  # doctest: +SKIP
    >>> craters = detect("ctx_strip.png", pixel_size_m=6, nodata=0)  # a black collar  # doctest: +SKIP
    >>> craters = detect({p.name: p for p in image_files("chips")}, pixel_size_m=100)  # doctest: +SKIP
    >>> craters.groupby("image").size()  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from .model import _check_tta, default_model_for, resolve_precision
    from .mosaic import _check_nodata

    nodata = _check_nodata(nodata)
    many = _is_many(image)
    if many and isinstance(image, Mapping):
        keys, items = list(image.keys()), list(image.values())
    elif many:
        items = list(image)
        keys = list(range(len(items)))
    else:
        keys, items = [None], [image]
    if not items:
        raise InvalidArgumentError("no image given: pass an image, a list or stack of images, or a mapping of names "
                                   "to images")
    if many and isinstance(pixel_size_m, (list, tuple, np.ndarray)) and np.ndim(pixel_size_m) == 1:
        if len(pixel_size_m) != len(items):
            raise InvalidArgumentError(f"pixel_size_m has {len(pixel_size_m)} values for {len(items)} images; give "
                                       "one number for all of them or one per image")
        givens = [_given_pixel_size(v) for v in pixel_size_m]
    else:
        givens = [_given_pixel_size(pixel_size_m)] * len(items)
    tta = None if tta is None else _check_tta(tta)
    resolve_precision(precision)  # a bad value fails before any work
    extract_options = _caller_options(extract_options)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    loaded = hasattr(model, "predict")  # a Keras model object, not a file

    # every image's pixel size and shape first (files: their headers only), so that a missing
    # pixel size or a wrong unit fails before any work
    sources: list[tuple[_Source, str | None]] = []
    for key, item, given in zip(keys, items, givens):
        is_file = isinstance(item, (str, os.PathLike))
        what = str(item) if is_file else f"image {key!r}" if many else "the image"
        label = what if many or is_file else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                sources.append((_open(item, key, what, given, nodata), label))
            except MarsCratersError as exc:
                _reraise(exc, label)
        _relay(caught, label)
    # no model named: each image gets the shipped model for its pixel size (THEMIS, or fine imagery)
    chosen = [model if model is not None else default_model_for(src.pixel_size_m) for src, _ in sources]
    runs: list[tuple[Any, list[int], _Run]] = []
    for m in dict.fromkeys(id(c) if loaded else c for c in chosen):
        which = [i for i, c in enumerate(chosen) if (id(c) if loaded else c) == m]
        run = _setup(chosen[which[0]], loaded, kind=kind, native=native_pixel_size_m, verify=verify,
                     extract_options=extract_options)
        plans = []
        for i in which:
            src, label = sources[i]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    plans.append((src, _plan(src, run.native, label, levels, run.top_px)))
                except MarsCratersError as exc:
                    _reraise(exc, label)
            _relay(caught, label)
        runs.append((chosen[which[0]], which, run._replace(work=plans)))
    work, names = [None] * len(sources), [None] * len(sources)  # per image, in the call's order
    for _, which, run in runs:
        for i, item in zip(which, run.work):
            work[i], names[i] = item, run.name
    tables: list[Any] = [None] * len(sources)
    with tqdm(total=len(sources), unit="image", desc="detect", disable=not (progress and many)) as bar:
        for m, which, run in runs:
            found = _detect_run(m, loaded, run, value_range=value_range, batch_size=int(batch_size),
                                tta=run.tta if tta is None else tta, precision=precision,
                                progress=progress and not many, bar=bar)
            for i, table in zip(which, found):
                aspect = sources[i][0].aspect
                if aspect != 1.0 and len(table):
                    # back to the file's columns; diameter_px stays the N-S diameter in its rows,
                    # the pixel size's direction (a crater spans aspect times that in columns)
                    table["x"] = table["x"] * aspect
                tables[i] = table
    if not many:
        out = tables[0]
        out.attrs["pixel_size_m"] = work[0][0].pixel_size_m
        out.attrs["model"] = names[0]
        return out
    parts = [t.assign(image=[src.key] * len(t)) for t, (src, _) in zip(tables, work) if len(t)]
    # (empty tables left out of the concatenation: they would make an integer column object)
    out = pd.concat(parts, ignore_index=True) if parts else tables[0].assign(image=np.asarray(keys)[:0])
    out = out[["image", "x", "y", "diameter_px", "diameter_m", "score", "level"]]
    out.attrs["pixel_size_m"] = {src.key: src.pixel_size_m for src, _ in work}
    out.attrs["model"] = {src.key: name for (src, _), name in zip(work, names)}
    return out
