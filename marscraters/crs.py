"""Mars coordinate reference systems, km <-> degree conversions and the pixel <-> lat/lon mapping.

Mars is treated as the IAU 2015 sphere of radius 3,396,190 m, as the THEMIS mosaics and the
Robbins catalogs are.  Longitudes are planetocentric and east-positive.  Two conventions are in
use and both are supported: -180..180 (Robbins 2012, our catalogs) and 0..360 (Robbins 2020, the
ASU THEMIS tile names).

The :class:`Grid` class is the *one* place where pixels become longitudes and latitudes and back;
every other module goes through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj
from affine import Affine

from .errors import (
    CRSError,
    InvalidArgumentError,
    MissingCRSError,
    MosaicError,
    NotMarsCRSError,
)

__all__ = [
    "MARS_RADIUS_M",
    "MARS_RADIUS_KM",
    "KM_PER_DEGREE",
    "MARS_GEOGRAPHIC",
    "MARS_EQUIRECTANGULAR",
    "MARS_EQUIRECTANGULAR_180",
    "to_mars_crs",
    "vector_crs_fix",
    "is_mars_crs",
    "is_planetographic",
    "latitude_kind",
    "vector_latitude_kind",
    "check_planetocentric",
    "ographic_to_ocentric",
    "km_to_deg_lat",
    "km_to_deg_lon",
    "deg_lat_to_km",
    "deg_lon_to_km",
    "pixel_scale_m",
    "px_per_deg_for_scale",
    "normalize_lon_180",
    "normalize_lon_360",
    "wrap_lon",
    "Grid",
]

#: Radius of the IAU 2015 Mars sphere, in metres.
MARS_RADIUS_M: float = 3_396_190.0
#: Radius of the IAU 2015 Mars sphere, in kilometres.
MARS_RADIUS_KM: float = MARS_RADIUS_M / 1000.0
#: Kilometres along one degree of a great circle (one degree of latitude), about 59.274 km.
KM_PER_DEGREE: float = 2.0 * math.pi * MARS_RADIUS_KM / 360.0

#: Geographic Mars CRS (IAU_2015:49900): longitude/latitude in degrees on the sphere.
MARS_GEOGRAPHIC: pyproj.CRS = pyproj.CRS.from_user_input("IAU_2015:49900")
#: Equirectangular Mars projection, central longitude 0 (IAU_2015:49910), metres.
MARS_EQUIRECTANGULAR: pyproj.CRS = pyproj.CRS.from_user_input("IAU_2015:49910")
#: Equirectangular Mars projection, central longitude 180 (IAU_2015:49915), metres.
MARS_EQUIRECTANGULAR_180: pyproj.CRS = pyproj.CRS.from_user_input("IAU_2015:49915")

# Any body whose sphere/ellipsoid lies in this band is Mars (IAU 2000/2015 spheres, MOLA 3396 km,
# and the 3396.19/3376.2 km ellipsoid).  Earth is 6378 km, the Moon 1737 km.
_MARS_SEMI_MAJOR_RANGE_M = (3_370_000.0, 3_400_000.0)


def vector_crs_fix(path: Any = None) -> str:
    """How to assign IAU_2015:49900 to a vector layer (a catalog, a count polygon) whose CRS is wrong.

    Examples
    --------
    >>> vector_crs_fix("craters.gpkg").startswith("assign (do not reproject)")
    True
    """
    gdal = "" if path is None else f"with GDAL, `ogr2ogr -a_srs IAU_2015:49900 fixed.gpkg {path}`; "
    return ("assign (do not reproject) IAU_2015:49900 to the layer: in QGIS, Layer > Set CRS of Layer(s); "
            f"{gdal}in Python, gdf.set_crs('IAU_2015:49900', allow_override=True).")


def to_mars_crs(crs: Any, *, what: str = "the input", fix: str | None = None) -> pyproj.CRS:
    """Parse ``crs`` and check that it describes Mars.

    Parameters
    ----------
    crs
        Anything :func:`pyproj.CRS.from_user_input` accepts: a ``pyproj.CRS``, an
        ``"IAU_2015:49900"`` style code, WKT or a PROJ string.
    what
        Name of the object the CRS belongs to, used in error messages.
    fix
        How to correct a CRS that is simply wrong, for a non-Mars CRS's message (default: the
        raster's, ``ds.rio.write_crs``; vector layers pass :func:`vector_crs_fix`).

    Returns
    -------
    pyproj.CRS

    Raises
    ------
    MissingCRSError
        If ``crs`` is None.
    NotMarsCRSError
        If the CRS's body is not Mars (for example an Earth CRS such as EPSG:4326).

    Examples
    --------
    >>> to_mars_crs("IAU_2015:49900").name
    'Mars (2015) - Sphere / Ocentric'
    """
    if crs is None:
        raise MissingCRSError(
            f"{what} has no coordinate reference system. Attach a Mars CRS, for example "
            "ds.rio.write_crs('IAU_2015:49900') for a longitude/latitude grid."
        )
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise CRSError(f"{what} has a CRS that cannot be parsed ({crs!r}): {exc}") from exc
    if not is_mars_crs(parsed):
        raise NotMarsCRSError(
            f"{what} has a non-Mars CRS ({parsed.name!r}, semi-major axis "
            f"{parsed.ellipsoid.semi_major_metre if parsed.ellipsoid else 'unknown'} m). "
            "THEMIS data must be on the Mars sphere: use IAU_2015:49900 (geographic) or "
            "IAU_2015:49910 / IAU_2015:49915 (equirectangular); if the file's CRS is simply "
            "wrong (a GIS's default EPSG:4326 on Mars longitudes and latitudes), "
            + (fix or "overwrite it with ds.rio.write_crs('IAU_2015:49900').")
        )
    return parsed


def is_mars_crs(crs: Any) -> bool:
    """Return True when ``crs`` is defined on a Mars sphere or ellipsoid."""
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        return False
    ellipsoid = parsed.ellipsoid
    if ellipsoid is None:
        return False
    lo, hi = _MARS_SEMI_MAJOR_RANGE_M
    return lo <= ellipsoid.semi_major_metre <= hi


def _crs_label(crs: Any, width: int = 80) -> str:
    """A short text that tells two CRSs apart in a message, and that GDAL and PROJ accept back.

    An authority code (``IAU_2015:49910``) when the CRS is exactly one, else its PROJ string
    (``+proj=eqc +R=3396190 ...``): files with a PROJ-string CRS are all named ``'unknown'``.

    Parameters
    ----------
    crs
        Anything :func:`pyproj.CRS.from_user_input` accepts.
    width
        PROJ strings longer than this are cut to it, with ``...``.

    Returns
    -------
    str

    Examples
    --------
    >>> _crs_label("IAU_2015:49910")
    'IAU_2015:49910'
    >>> _crs_label("+proj=longlat +R=3396190 +no_defs")
    '+proj=longlat +R=3396190'
    """
    import warnings

    parsed = pyproj.CRS.from_user_input(crs)
    code = parsed.to_authority(min_confidence=100)
    if code is not None:
        return ":".join(code)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "you will likely lose projection information": a label is enough
        proj = parsed.to_proj4()
    if not proj:
        return parsed.name
    # the defaults (+x_0=0 ...) and +no_defs +type=crs say nothing that tells two CRSs apart
    words = [w for w in proj.split() if w not in ("+no_defs", "+type=crs") and not w.endswith("=0")]
    text = " ".join(words)
    return text if len(text) <= width else text[: width - 3] + "..."


def latitude_kind(crs: Any) -> str:
    """What a Mars CRS's latitudes are: ``"planetocentric"``, ``"planetographic"`` or ``"unstated"``.

    On a sphere the two latitudes are one.  On the flattened Mars ellipsoid PROJ reads every
    latitude as geodetic, i.e. planetographic, but GIS exports named after the ellipsoid alone
    (``GCS_Mars_2000``) often hold planetocentric ones: only the IAU's names ("Ocentric",
    "Ographic", which GDAL keeps in its WKT1) say which.

    Parameters
    ----------
    crs
        A Mars CRS (:class:`pyproj.CRS`).

    Returns
    -------
    str

    Examples
    --------
    >>> [latitude_kind(pyproj.CRS(f"IAU_2015:{c}")) for c in (49900, 49901, 49902)]
    ['planetocentric', 'planetographic', 'planetocentric']
    """
    geod = crs.geodetic_crs
    ellipsoid = None if geod is None else geod.ellipsoid
    if ellipsoid is None or math.isclose(ellipsoid.semi_minor_metre, ellipsoid.semi_major_metre, rel_tol=1e-12):
        return "planetocentric"
    names = " ".join(n.lower() for n in (crs.name, geod.name))
    if "ocentric" in names:
        return "planetocentric"
    return "planetographic" if "ographic" in names else "unstated"


def is_planetographic(crs: Any) -> bool:
    """Whether a Mars CRS says its latitudes are planetographic (:func:`latitude_kind`).

    Examples
    --------
    >>> is_planetographic(pyproj.CRS("IAU_2015:49901")), is_planetographic(pyproj.CRS("IAU_2015:49900"))
    (True, False)
    """
    return latitude_kind(crs) == "planetographic"


def unstated_latitudes(what: str, crs: Any, fix: str) -> CRSError:
    """The error for a CRS on the Mars ellipsoid that does not say which latitudes it holds."""
    return CRSError(
        f"{what} has the CRS {_crs_label(crs)} on the Mars ellipsoid, which does not say whether its latitudes "
        "are planetocentric or planetographic (they differ by up to 0.34 deg, 20 km, at 45 deg; GIS exports named "
        f"GCS_Mars_2000 often hold planetocentric ones): {fix}"
    )


def ographic_to_ocentric(xy: np.ndarray, crs: Any, *, what: str) -> np.ndarray:
    """Planetocentric east longitudes and latitudes (degrees) of ``(x, y)`` in a planetographic CRS.

    ``tan(lat_c) = (b / a)² tan(lat_g)`` on the CRS's own ellipsoid; a longitude axis that points
    west is negated.  Coordinates are in GIS order (x = longitude or easting).

    Parameters
    ----------
    xy
        ``(n, 2)`` coordinates in ``crs``.
    crs
        A planetographic Mars CRS (see :func:`is_planetographic`).
    what
        The input, for messages.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` east longitudes and planetocentric latitudes, degrees.

    Raises
    ------
    CRSError
        If the CRS is projected with axes other than east and north: PROJ mixes up the order of
        such axes (the IAU's own 49911 counts x westward), so the result could not be trusted.
    """
    from pyproj import Transformer

    geod = crs.geodetic_crs
    axes = {a.direction.lower(): a for a in crs.axis_info}
    if crs.is_geographic:
        reliable = ("east" in axes or "west" in axes) and "north" in axes
    else:
        reliable = {a.direction.lower() for a in (*crs.axis_info, *geod.axis_info)} == {"east", "north"}
    if not reliable:
        raise CRSError(
            f"{what} has the planetographic CRS {_crs_label(crs)}, whose axes "
            f"({', '.join(a.direction for a in crs.axis_info)}) cannot be converted reliably to planetocentric "
            "longitudes and latitudes. Convert the coordinates to planetocentric latitude (tan lat_c = (b/a)² "
            "tan lat_g) and east longitude, then assign (do not reproject) IAU_2015:49900 to the layer."
        )
    if crs.is_geographic:
        lon_axis = axes.get("east") or axes["west"]
        lon = xy[:, 0] * _per_degree(lon_axis)
        lat = xy[:, 1] * _per_degree(axes["north"])
        if lon_axis is axes.get("west"):
            lon = -lon
            if lon.size and lon.min() < -180.0:
                lon = lon + 360.0  # 0..360 W is 0..-360 E: shift all (a polygon across 0 stays whole) into range
    else:
        # the inverse projection onto its own ellipsoid: exact, no change of datum
        lon, lat = Transformer.from_crs(crs, geod, always_xy=True).transform(xy[:, 0], xy[:, 1])
    b_over_a = geod.ellipsoid.semi_minor_metre / geod.ellipsoid.semi_major_metre
    lat_c = np.degrees(np.arctan(b_over_a**2 * np.tan(np.radians(lat))))
    return np.column_stack([np.asarray(lon, dtype=float), lat_c])


def _per_degree(axis: Any) -> float:
    """Degrees per unit of an angular axis: exactly 1 for degrees (PROJ's factor would give 170.00000000000003)."""
    return 1.0 if axis.unit_name.lower() in ("degree", "degrees") else math.degrees(axis.unit_conversion_factor)


def vector_latitude_kind(crs: pyproj.CRS, *, what: str, path: Any = None) -> str:
    """:func:`latitude_kind` of a vector layer's CRS (a catalog, a count polygon), refusing "unstated".

    A layer's points can be converted (:func:`ographic_to_ocentric`), but only once the CRS says
    which latitudes they are: converting a GCS_Mars_2000 export of planetocentric latitudes would
    move it by 20 km, and keeping a planetographic one would misplace it as much.

    Parameters
    ----------
    crs
        The layer's Mars CRS.
    what, path
        The layer and its file (None: in memory), for the message.

    Returns
    -------
    str
        ``"planetocentric"`` or ``"planetographic"``.

    Raises
    ------
    CRSError
        If the CRS lies on the Mars ellipsoid without saying which latitudes it holds.

    Examples
    --------
    >>> vector_latitude_kind(pyproj.CRS("IAU_2015:49901"), what="the layer")
    'planetographic'
    """
    kind = latitude_kind(crs)
    if kind == "unstated":
        raise unstated_latitudes(what, crs, "if they are planetocentric, " + vector_crs_fix(path)
                                 + " If planetographic, assign IAU_2015:49901 instead (converted when read).")
    return kind


#: How a mosaic (a Dataset, or a cube read back) declares planetocentric latitudes: the ``fix`` of
#: :func:`check_planetocentric` for grids that are not a file
MOSAIC_CRS_FIX = ("ds.rio.write_crs('IAU_2015:49900') on the mosaic, or ingest its source again with a planetocentric "
                  "CRS")


def check_planetocentric(crs: pyproj.CRS, *, what: str, fix: str | None = None) -> None:
    """Refuse an image grid whose rows are, or may be, planetographic latitudes.

    Mosaics, catalogs and count areas are planetocentric.  An image cannot be converted without
    resampling its rows, and PROJ keeps planetographic latitudes unchanged on the way to the
    IAU sphere ("ballpark"), so its craters would be placed up to ~20 km off at mid-latitudes.

    Parameters
    ----------
    crs
        The image's Mars CRS.
    what
        The image, for the message.
    fix
        How the caller's user declares planetocentric latitudes (default: a GeoTIFF's
        ``gdal_edit.py``).

    Raises
    ------
    CRSError
        If ``crs`` is planetographic, or on the ellipsoid without saying (:func:`latitude_kind`).

    Examples
    --------
    >>> check_planetocentric(MARS_GEOGRAPHIC, what="the tile")
    """
    kind = latitude_kind(crs)
    if kind == "planetocentric":
        return
    declare = fix or "`gdal_edit.py -a_srs IAU_2015:49900 FILE.tif`"
    if kind == "unstated":
        raise unstated_latitudes(what, crs, f"if they are planetocentric, assign IAU_2015:49900 ({declare}); if "
                                            "planetographic, reproject the image to planetocentric latitudes first.")
    raise CRSError(
        f"{what} is in the planetographic CRS {_crs_label(crs)} (latitudes on the Mars ellipsoid), and marscraters "
        "grids are planetocentric: its craters would be placed up to 20 km off at mid-latitudes. Reproject the "
        "image to planetocentric latitudes first (IAU_2015:49900, or IAU_2015:49910 in metres), e.g. with ISIS "
        "map2map LatitudeType=Planetocentric, and check a known crater's latitude after; if its latitudes are "
        f"planetocentric already (a CRS mislabelled), assign a planetocentric CRS: {declare}."
    )


def _check_lat(lat: Any) -> np.ndarray:
    lat = np.asarray(lat, dtype=float)
    if np.any(np.abs(lat) > 90.0):
        raise InvalidArgumentError(f"latitude must lie in -90..90 degrees, got {lat[np.abs(lat) > 90.0][:5]}")
    return lat


def km_to_deg_lat(km: Any) -> Any:
    """Convert a north-south distance in km to degrees of latitude.

    Parameters
    ----------
    km
        Distance(s) along a meridian, in km (scalar or array).

    Returns
    -------
    numpy.ndarray
        Degrees of latitude (``km / KM_PER_DEGREE``).

    Examples
    --------
    >>> round(float(km_to_deg_lat(59.27)), 3)
    1.0
    """
    return np.asarray(km, dtype=float) / KM_PER_DEGREE


def deg_lat_to_km(deg: Any) -> Any:
    """Convert degrees of latitude to a north-south distance in km.

    Parameters
    ----------
    deg
        Degrees of latitude (scalar or array).

    Returns
    -------
    numpy.ndarray
        Kilometres along a meridian (``deg * KM_PER_DEGREE``).
    """
    return np.asarray(deg, dtype=float) * KM_PER_DEGREE


def km_to_deg_lon(km: Any, lat: Any) -> Any:
    """Convert an east-west distance in km at latitude ``lat`` to degrees of longitude.

    A parallel at latitude φ has radius R cos φ, so one degree of longitude spans
    ``KM_PER_DEGREE * cos(φ)`` km.  At the poles the result is infinite.

    Parameters
    ----------
    km
        East-west distance(s) in km.
    lat
        Latitude(s) in degrees, -90..90 (broadcast against ``km``).

    Returns
    -------
    numpy.ndarray
        Degrees of longitude.

    Raises
    ------
    InvalidArgumentError
        If a latitude lies outside -90..90.

    Examples
    --------
    >>> round(float(km_to_deg_lon(59.274, 60.0)), 3)
    2.0
    """
    lat = _check_lat(lat)
    with np.errstate(divide="ignore"):
        return np.asarray(km, dtype=float) / (KM_PER_DEGREE * np.cos(np.radians(lat)))


def deg_lon_to_km(deg: Any, lat: Any) -> Any:
    """Convert degrees of longitude at latitude ``lat`` to an east-west distance in km.

    Parameters
    ----------
    deg
        Degrees of longitude.
    lat
        Latitude(s) in degrees, -90..90.

    Returns
    -------
    numpy.ndarray
        Kilometres along the parallel (``deg * KM_PER_DEGREE * cos(lat)``).
    """
    lat = _check_lat(lat)
    return np.asarray(deg, dtype=float) * KM_PER_DEGREE * np.cos(np.radians(lat))


def pixel_scale_m(px_per_deg: float, lat: float = 0.0) -> float:
    """Metres per pixel of a simple-cylindrical grid with ``px_per_deg`` pixels per degree.

    Along latitude (and along longitude at the equator) the scale is
    ``2 pi R / 360 / px_per_deg``; along longitude at latitude ``lat`` multiply by cos(lat).
    256 px/deg gives about 231.5 m/px; 592.747 px/deg gives about 100 m/px.

    Examples
    --------
    >>> round(pixel_scale_m(256), 1)
    231.5
    """
    if not px_per_deg > 0:
        raise InvalidArgumentError(f"px_per_deg must be > 0, got {px_per_deg!r}")
    return KM_PER_DEGREE * 1000.0 / px_per_deg * math.cos(math.radians(float(_check_lat(lat))))


def px_per_deg_for_scale(metres_per_px: float) -> float:
    """Inverse of :func:`pixel_scale_m` at the equator: pixels per degree for a given m/px."""
    if not metres_per_px > 0:
        raise InvalidArgumentError(f"metres_per_px must be > 0, got {metres_per_px!r}")
    return KM_PER_DEGREE * 1000.0 / metres_per_px


def normalize_lon_180(lon: Any) -> Any:
    """Map longitudes to the -180..180 convention.

    Values already in [-180, 180] are returned unchanged, so 180 stays 180.

    Examples
    --------
    >>> float(normalize_lon_180(350.0))
    -10.0
    """
    lon = np.asarray(lon, dtype=float)
    out = (lon + 180.0) % 360.0 - 180.0
    # keep +180 as given rather than folding it to -180
    return np.where((lon >= -180.0) & (lon <= 180.0), lon, out)


def normalize_lon_360(lon: Any) -> Any:
    """Map longitudes to the 0..360 convention (values in [0, 360] are unchanged).

    Examples
    --------
    >>> float(normalize_lon_360(-10.0))
    350.0
    """
    lon = np.asarray(lon, dtype=float)
    return np.where((lon >= 0.0) & (lon <= 360.0), lon, lon % 360.0)


def wrap_lon(lon: Any, west: float) -> Any:
    """Wrap longitudes into ``[west, west + 360)``.

    This is how a catalog longitude (any convention) is put onto a mosaic whose x axis starts at
    ``west`` and may run past 180 or 360 (a mosaic crossing a meridian stays contiguous).
    """
    lon = np.asarray(lon, dtype=float)
    return west + (lon - west) % 360.0


@dataclass(frozen=True)
class Grid:
    """A raster grid: its affine transform, CRS and shape.

    Pixel coordinates are *index* coordinates: ``(col, row) = (0, 0)`` is the centre of the
    top-left pixel, ``col`` grows east and ``row`` grows south (down the image).

    Parameters
    ----------
    transform
        Affine transform from pixel *corner* coordinates to CRS coordinates (the rasterio / GDAL
        convention).
    crs
        A Mars CRS, geographic (degrees) or projected (metres).
    shape
        ``(ny, nx)``.
    """

    transform: Affine
    crs: pyproj.CRS
    shape: tuple[int, int]

    @classmethod
    def from_dataset(cls, obj: Any) -> "Grid":
        """Build the grid of a rioxarray-georeferenced Dataset or DataArray."""
        import rioxarray  # noqa: F401  (registers .rio; a store opened with plain xarray has not imported it)

        from .errors import MosaicError

        crs = obj.rio.crs
        if crs is None:
            raise MissingCRSError(
                "the mosaic has no CRS. Attach one with ds.rio.write_crs('IAU_2015:49900'), or reopen "
                "a Zarr cube with marscraters.open_mosaic(path), which keeps the CRS (decode_coords='all')."
            )
        crs = to_mars_crs(crs.to_wkt(), what="the mosaic")
        check_planetocentric(crs, what="the mosaic", fix=MOSAIC_CRS_FIX)
        if "x" not in obj.dims or "y" not in obj.dims:
            raise MosaicError(f"the mosaic must have dims ('y', 'x'), got {tuple(obj.dims)}; rename them first.")
        return cls(obj.rio.transform(recalc=True), crs, (int(obj.sizes["y"]), int(obj.sizes["x"])))

    @property
    def is_geographic(self) -> bool:
        """True when the grid's axes are longitude/latitude degrees."""
        return bool(self.crs.is_geographic)

    @property
    def is_cylindrical(self) -> bool:
        """True on a longitude/latitude lattice: a geographic or an equirectangular grid.

        Crater sizes in km and pixels (:meth:`km_to_pixels`), and crater ellipses, assume one; a
        polar stereographic or sinusoidal grid has another scale at every pixel.
        """
        if self.is_geographic:
            return True
        op = self.crs.coordinate_operation
        method = (op.method_name if op else "").lower()
        return "equidistant cylindrical" in method or "equirectangular" in method

    def check_cylindrical(self, what: str = "the mosaic") -> None:
        """Refuse a grid that is not :attr:`is_cylindrical`, naming how to reproject it.

        Raises
        ------
        MosaicError
            If the grid's projection is not geographic or equirectangular.
        """
        if self.is_cylindrical:
            return
        op = self.crs.coordinate_operation
        raise MosaicError(
            f"{what}'s projection ({(op.method_name if op else '') or self.crs.name!r}) is not equirectangular: "
            "crater sizes and positions are measured on geographic (IAU_2015:49900) or equirectangular "
            "(IAU_2015:49910, or 49915 across 180 degrees) grids only. Reproject the image first, e.g. "
            "`gdalwarp -t_srs IAU_2015:49910 in.tif out.tif` before `marscraters ingest` (in Python: "
            "ds.rio.reproject('IAU_2015:49910'))."
        )

    @property
    def west(self) -> float:
        """x coordinate of the grid's west edge, in CRS units."""
        return float(self.transform.c)

    def xy_to_pixel(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """CRS coordinates to fractional pixel indices (col, row)."""
        a, b, c, d, e, f = (~self.transform)[:6]
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        return a * x + b * y + c - 0.5, d * x + e * y + f - 0.5

    def pixel_to_xy(self, col: Any, row: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fractional pixel indices (col, row) to CRS coordinates."""
        a, b, c, d, e, f = self.transform[:6]
        col, row = np.asarray(col, dtype=float) + 0.5, np.asarray(row, dtype=float) + 0.5
        return a * col + b * row + c, d * col + e * row + f

    def _transformer(self, inverse: bool = False) -> pyproj.Transformer:
        src, dst = (MARS_GEOGRAPHIC, self.crs) if inverse else (self.crs, MARS_GEOGRAPHIC)
        return pyproj.Transformer.from_crs(src, dst, always_xy=True)

    def lonlat_to_pixel(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Longitude/latitude (any longitude convention) to fractional pixel indices (col, row).

        On a longitude/latitude lattice (a geographic or equirectangular grid) a longitude goes to
        its copy within half a turn of the grid's centre: a grid that runs from 330 to 390 degrees
        east, or from 170 to 190 (in degrees, or in metres on IAU_2015:49910), maps -20 or -175
        onto itself, and a point just west of the grid lands just west of it (negative columns),
        not a whole turn east.
        """
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        ny, nx = self.shape
        centre, _ = self.pixel_to_xy((nx - 1) / 2.0, (ny - 1) / 2.0)
        if self.is_geographic:
            return self.xy_to_pixel(wrap_lon(lon, float(centre) - 180.0), lat)
        x, y = self._transformer(inverse=True).transform(normalize_lon_180(lon), lat)
        if self.is_cylindrical:
            # x is linear in longitude, with a period of one turn: the copy nearest the centre
            lon_c, _ = self._transformer().transform(float(centre), 0.0)
            to_x = self._transformer(inverse=True)
            x0 = float(to_x.transform(float(lon_c), 0.0)[0])
            # a degree either side: one of them may fold across the projection's own antimeridian
            turn = 360.0 * min(abs(float(to_x.transform(float(lon_c) + d, 0.0)[0]) - x0) for d in (1.0, -1.0))
            if turn > 0 and np.isfinite(turn):
                x = float(centre) - turn / 2.0 + (np.asarray(x, dtype=float) - float(centre) + turn / 2.0) % turn
        return self.xy_to_pixel(x, y)

    def pixel_to_lonlat(self, col: Any, row: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fractional pixel indices to (lon in -180..180, lat)."""
        x, y = self.pixel_to_xy(col, row)
        if not self.is_geographic:
            x, y = self._transformer().transform(x, y)
        return normalize_lon_180(x), np.asarray(y, dtype=float)

    def px_per_deg(self) -> tuple[float, float]:
        """Pixels per degree along longitude (x) and latitude (y) at the grid's centre."""
        ny, nx = self.shape
        c, r = (nx - 1) / 2.0, (ny - 1) / 2.0
        lon0, lat0 = self.pixel_to_lonlat(c, r)
        lon1, _ = self.pixel_to_lonlat(c + 1, r)
        _, lat1 = self.pixel_to_lonlat(c, r + 1)
        dlon = (float(lon1) - float(lon0) + 180.0) % 360.0 - 180.0
        return 1.0 / abs(dlon), 1.0 / abs(float(lat1) - float(lat0))

    def km_to_pixels(self, km: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Lengths in km at latitude ``lat`` to pixel lengths (along x, along y).

        On an equirectangular grid (geographic or IAU 49910/49915) a length along longitude
        stretches by 1/cos(lat): a circular crater is an ellipse in pixels.
        """
        ppd_x, ppd_y = self.px_per_deg()
        km = np.asarray(km, dtype=float)
        return km_to_deg_lon(km, lat) * ppd_x, km_to_deg_lat(km) * ppd_y
