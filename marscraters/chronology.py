"""Crater-count model ages: Mars chronology systems, crater size-frequency distributions and fits.

A *chronology system* pairs a **production function** (PF: the shape of the crater size-frequency
distribution, N(>=D) relative to N(>=1 km)) with a **chronology function** (CF: N(>=1 km) per km²
as a function of model age in Ga).  The coefficients are those of craterstats 3.2.1
(``craterstats/config/functions.txt``, Michael & Neukum 2010; Michael et al. 2016) and the
conventions (binning, error bars, Poisson likelihood, cumulative fit) follow craterstats so that
ages agree with it to well under 1 %.

Systems (keys of :data:`SYSTEMS`; craterstats' long names are accepted as aliases):

``"neukum-ivanov"`` (default)
    Hartmann & Neukum (2001) chronology with the Ivanov (2001) production function
    (craterstats' "Mars, Neukum-Ivanov (2001)").
``"ivanov"``
    Ivanov (2001) chronology and production function ("Mars, Ivanov (2001)").
``"hartmann"``
    Hartmann (2005) tabular incremental root-2 production function with the Michael (2013) form of
    the chronology function ("Mars, Hartmann 2004 iteration").
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from .crs import MARS_RADIUS_KM
from .errors import ChronologyError, InvalidArgumentError, MarsCratersError

__all__ = [
    "ChronologySystem",
    "SYSTEMS",
    "MARS_EPOCHS",
    "get_system",
    "cumulative_density",
    "differential_density",
    "n1_from_age",
    "age_from_n1",
    "production_range",
    "epoch_of",
    "epoch_boundaries",
    "sample_diameters",
    "count_area_km2",
    "MARS_SURFACE_KM2",
    "BINNINGS",
    "bin_edges",
    "csfd",
    "ModelAge",
    "format_age",
    "model_age",
    "DetectorResponse",
    "fit_response",
    "load_response",
    "DIAMETER_PROBS",
    "plot_csfd",
    "add_age_parser",
    "run_age_cli",
]


# --------------------------------------------------------------------------------------------
# Chronology systems (coefficients copied from craterstats 3.2.1 config/functions.txt)
# --------------------------------------------------------------------------------------------

# Ivanov (2001) Mars production function: log10 N(>=D) = sum a_i (log10 D)^i, D in km.
_IVANOV_PF = (
    -3.383677e00, -3.197453e00, 1.256814e00, 7.915374e-01, -4.860814e-01, -3.630098e-01,
    1.015683e-01, 6.755923e-02, -1.180639e-02, -4.753462e-03, 6.232845e-04, 5.805492e-05,
)
# Hartmann (2005) incremental root-2 densities per km² (bins start at 2^((i - 16)/2) km).
_HARTMANN_2005_H = (
    4.04e03, 2.33e03, 1.14e03, 4.58e02, 1.91e02, 6.66e01, 2.40e01, 9.44e00, 3.30e00, 1.22e00,
    4.37e-01, 1.47e-01, 4.70e-02, 1.38e-02, 4.02e-03, 1.15e-03, 3.08e-04, 1.28e-04, 6.85e-05,
    3.67e-05, 1.98e-05, 1.06e-05, 5.68e-06, 3.04e-06, 1.62e-06, 8.71e-07, 4.67e-07, 2.40e-07,
    1.12e-07, 5.21e-08, 2.43e-08, 1.13e-08, 5.28e-09, 2.47e-09, 1.15e-09, 5.37e-10,
)
_HARTMANN_2005_INDEX_1KM = 16


def _bin_bias_correction(beta: float, k: np.ndarray) -> np.ndarray:
    """Ratio of a log-binned density to the true differential density for log-log slope ``k``.

    Michael (2013), eq. 2; ``beta`` is the ratio of adjacent bin boundaries.
    """
    g = beta**0.5 - beta**-0.5
    k = np.asarray(k, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(k) < 1e-5, 1.0, (beta ** (k / 2.0) - beta ** (-k / 2.0)) / (g * k))


@dataclass(frozen=True)
class ChronologySystem:
    """One Mars chronology system: a production function and a chronology function.

    Attributes
    ----------
    key
        Short name used by marscraters (``"neukum-ivanov"``, ``"ivanov"``, ``"hartmann"``).
    name
        craterstats' name of the system (``"Mars, Neukum-Ivanov (2001)"``).
    cf_name, pf_name
        craterstats' names of the chronology and production functions.
    cf_coefficients
        ``(a, b, c, d)`` of ``N(1) = a (exp(b t) - 1) + d t`` (``c`` is unused, kept as in
        craterstats), N(1) per km², t in Ga.
    pf_type
        ``"polynomial"`` or ``"tabular incremental root-2"``.
    pf_coefficients
        Polynomial coefficients (ascending powers of log10 D) or the tabular H values.
    pf_index_1km
        Index of the 1 km bin of a tabular PF.
    reference
        Literature reference.
    """

    key: str
    name: str
    cf_name: str
    pf_name: str
    cf_coefficients: tuple[float, float, float, float]
    pf_type: str
    pf_coefficients: tuple[float, ...]
    pf_index_1km: int | None = None
    pf_range: tuple[float, float] | None = None
    reference: str = ""
    _table: dict = field(default_factory=dict, repr=False, compare=False)

    # ---- production function -------------------------------------------------------------
    def _tab(self) -> dict:
        """Normalised log cumulative table of a tabular PF (cached)."""
        if not self._table:
            h = np.asarray(self.pf_coefficients, dtype=float)
            i1 = int(self.pf_index_1km)  # type: ignore[arg-type]
            c10 = np.log10(np.cumsum(h[::-1])[::-1])
            c10 = c10 - c10[i1]
            d_min = 2.0 ** ((np.arange(h.size) - i1) / 2.0)
            self._table.update(c10=c10, d_min10=np.log10(d_min), d_mean10=np.log10(d_min * 2**0.25))
        return self._table

    def log_shape(self, log10_d: Any) -> np.ndarray:
        """log10 of N(>=D)/N(>=1 km) for the production function (``a0 = 0``)."""
        x = np.asarray(log10_d, dtype=float)
        if self.pf_type == "polynomial":
            a = np.asarray(self.pf_coefficients, dtype=float)
            # craterstats substitutes a0 for the constant term; the shape is everything but it
            return np.polyval(np.r_[a[:0:-1], 0.0], x)
        t = self._tab()
        # like craterstats: linear interpolation of log N in log D, clamped at the table ends
        return np.interp(x, t["d_min10"], t["c10"])

    def log_shape_differential(self, log10_d: Any) -> np.ndarray:
        """log10 of the differential PF -dN/dD (per km² per km) for ``a0 = 0``."""
        x = np.asarray(log10_d, dtype=float)
        if self.pf_type == "polynomial":
            a = np.asarray(self.pf_coefficients, dtype=float)
            p = np.polyval(np.r_[a[:0:-1], 0.0], x)
            dpdx = np.polyval((np.arange(1, a.size) * a[1:])[::-1], x)
            # F = -dC/dD = -ln10 10^p dp/dx / (D ln10)   (Michael & Neukum 2010, eq. 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                return p + np.log10(-dpdx) - x
        t = self._tab()
        c = 10 ** t["c10"]
        h = c - np.r_[c[1:], 0.0]
        beta = math.sqrt(2.0)
        f_bin = h / 10 ** t["d_mean10"] / (2**0.25 - 2**-0.25)
        k = (t["c10"] - np.roll(t["c10"], -1)) / np.log10(beta)
        k[-1] = k[-2]
        f = f_bin / _bin_bias_correction(beta, k)
        return np.interp(x, t["d_mean10"], np.log10(f))

    @property
    def production_range(self) -> tuple[float, float]:
        """Diameter range (km) where the production function is defined."""
        if self.pf_range is not None:
            return self.pf_range
        t = self._tab()
        return float(10 ** t["d_mean10"][0]), float(10 ** t["d_mean10"][-1])

    # ---- chronology function -------------------------------------------------------------
    def n1(self, age_ga: Any) -> np.ndarray:
        """N(>=1 km) per km² accumulated over ``age_ga`` Ga."""
        a, b, _, d = self.cf_coefficients
        t = np.asarray(age_ga, dtype=float)
        return a * np.expm1(b * t) + d * t

    def age(self, n1: Any) -> np.ndarray:
        """Model age (Ga) whose N(>=1 km) per km² is ``n1`` (inverse of :meth:`n1`)."""
        a, b, _, d = self.cf_coefficients
        n = np.asarray(n1, dtype=float)
        # start from the grid interpolation craterstats uses, then polish with Newton steps
        ts = np.linspace(0.0, 5.0, 1000)
        t = np.interp(n, self.n1(ts), ts)
        big = n > self.n1(5.0)
        if np.any(big):  # beyond 5 Ga: start from the exponential branch
            t = np.where(big, np.log(np.maximum(n, 1e-300) / a + 1.0) / b, t)
        for _ in range(6):
            t = t - (self.n1(t) - n) / (a * b * np.exp(b * t) + d)
        return np.where(n <= 0, 0.0, t)


_NEUKUM_IVANOV = ChronologySystem(
    key="neukum-ivanov",
    name="Mars, Neukum-Ivanov (2001)",
    cf_name="Mars, Hartmann & Neukum (2001)",
    pf_name="Mars, Ivanov (2001)",
    cf_coefficients=(3.22e-14, 6.93, 0.0, 4.875e-04),
    pf_type="polynomial",
    pf_coefficients=_IVANOV_PF,
    pf_range=(float(np.float32(0.015)), float(np.float32(362.0))),
    reference="Hartmann & Neukum (2001), Space Sci. Rev. 96; Ivanov (2001), Space Sci. Rev. 96",
)
_IVANOV = ChronologySystem(
    key="ivanov",
    name="Mars, Ivanov (2001)",
    cf_name="Mars, Ivanov (2001)",
    pf_name="Mars, Ivanov (2001)",
    cf_coefficients=(2.68e-14, 6.93, 0.0, 4.13e-4),
    pf_type="polynomial",
    pf_coefficients=_IVANOV_PF,
    pf_range=(float(np.float32(0.015)), float(np.float32(362.0))),
    reference="Ivanov (2001), Space Sci. Rev. 96, 87-104",
)
_HARTMANN = ChronologySystem(
    key="hartmann",
    name="Mars, Hartmann 2004 iteration",
    cf_name="Mars, Hartmann (2005) [Michael (2013)]",
    pf_name="Mars, Hartmann (2005)",
    cf_coefficients=(3.79e-14, 6.93, 0.0, 5.84e-04),
    pf_type="tabular incremental root-2",
    pf_coefficients=_HARTMANN_2005_H,
    pf_index_1km=_HARTMANN_2005_INDEX_1KM,
    reference="Hartmann (2005), Icarus 174, 294-320; Michael (2013), Icarus 226, 885-890",
)

#: The Mars chronology systems, by key.
SYSTEMS: Mapping[str, ChronologySystem] = {s.key: s for s in (_NEUKUM_IVANOV, _IVANOV, _HARTMANN)}

_ALIASES: dict[str, str] = {}
for _s in SYSTEMS.values():
    for _alias in (_s.key, _s.name, _s.name.removeprefix("Mars, "), _s.pf_name if _s.key != "neukum-ivanov" else _s.name):
        _ALIASES[_alias.lower()] = _s.key
_ALIASES.update({"neukum ivanov": "neukum-ivanov", "neukum-ivanov (2001)": "neukum-ivanov", "ni": "neukum-ivanov",
                 "hartmann (2005)": "hartmann", "hartmann 2004": "hartmann", "hartmann2005": "hartmann",
                 "ivanov (2001)": "ivanov"})


def get_system(system: str | ChronologySystem = "neukum-ivanov") -> ChronologySystem:
    """Look up a chronology system by key or by craterstats' long name.

    Parameters
    ----------
    system
        ``"neukum-ivanov"``, ``"ivanov"``, ``"hartmann"``, a craterstats name such as
        ``"Mars, Neukum-Ivanov (2001)"``, or a :class:`ChronologySystem`.

    Raises
    ------
    ChronologyError
        For an unknown name; the message lists the known ones.

    Examples
    --------
    >>> get_system("Mars, Neukum-Ivanov (2001)").key
    'neukum-ivanov'
    """
    if isinstance(system, ChronologySystem):
        return system
    key = _ALIASES.get(str(system).strip().lower())
    if key is None:
        known = ", ".join(f"{s.key!r} ({s.name})" for s in SYSTEMS.values())
        raise ChronologyError(f"unknown chronology system {system!r}: use one of {known}")
    return SYSTEMS[key]


def production_range(system: str | ChronologySystem = "neukum-ivanov") -> tuple[float, float]:
    """Diameter range (km) over which a system's production function is defined.

    Examples
    --------
    >>> production_range("neukum-ivanov")
    (0.014999999664723873, 362.0)
    """
    return get_system(system).production_range


def n1_from_age(age_ga: Any, system: str | ChronologySystem = "neukum-ivanov") -> Any:
    """N(>=1 km) per km² on a surface of model age ``age_ga`` (Ga).

    Examples
    --------
    >>> round(float(n1_from_age(1.0)), 6)
    0.000488
    """
    out = get_system(system).n1(age_ga)
    return float(out) if np.ndim(out) == 0 else out


def age_from_n1(n1: Any, system: str | ChronologySystem = "neukum-ivanov") -> Any:
    """Model age (Ga) of a surface with N(>=1 km) = ``n1`` per km².

    Examples
    --------
    >>> round(float(age_from_n1(n1_from_age(3.7))), 6)
    3.7
    """
    out = get_system(system).age(n1)
    return float(out) if np.ndim(out) == 0 else out


def cumulative_density(diameter_km: Any, age_ga: float, system: str | ChronologySystem = "neukum-ivanov") -> np.ndarray:
    """Cumulative crater density N(>=D) per km² on a surface of a given model age.

    Parameters
    ----------
    diameter_km
        Crater diameter(s), km.
    age_ga
        Model age, Ga.
    system
        Chronology system (see :data:`SYSTEMS`).

    Returns
    -------
    numpy.ndarray
        N(>=D) per km², same shape as ``diameter_km``.

    Examples
    --------
    >>> float(cumulative_density(1.0, 1.0)) == n1_from_age(1.0)
    True
    """
    s = get_system(system)
    d = np.asarray(diameter_km, dtype=float)
    return s.n1(age_ga) * 10.0 ** s.log_shape(np.log10(d))


def differential_density(diameter_km: Any, age_ga: float, system: str | ChronologySystem = "neukum-ivanov") -> np.ndarray:
    """Differential crater density -dN/dD (per km² per km) at a given model age."""
    s = get_system(system)
    d = np.asarray(diameter_km, dtype=float)
    return s.n1(age_ga) * 10.0 ** s.log_shape_differential(np.log10(d))


# Michael (2013) Mars epochs: cumulative densities per 10^6 km² at reference diameters (km)
_EPOCH_NAMES = ("Late Amazonian", "Middle Amazonian", "Early Amazonian", "Late Hesperian", "Early Hesperian",
                "Late Noachian", "Middle Noachian", "Early Noachian")
_EPOCH_REF_D = (1, 1, 1, 5, 5, 16, 16)
_EPOCH_DENSITY = (160, 600, 2100, 125, 200, 100, 200)
#: Mars epoch system of Michael (2013): names and defining crater densities.
MARS_EPOCHS = {"name": "Mars, Michael (2013)", "epochs": _EPOCH_NAMES,
               "ref_diameter_km": _EPOCH_REF_D, "density_per_1e6_km2": _EPOCH_DENSITY}


def epoch_boundaries(system: str | ChronologySystem = "neukum-ivanov") -> list[tuple[str, float, float]]:
    """The Michael (2013) Mars epochs as ``(name, young_ga, old_ga)`` in a chronology system.

    Epoch boundaries are defined by crater densities, so their ages depend on the system
    (craterstats does the same conversion).
    """
    s = get_system(system)
    n1 = [dens / 1e6 / 10 ** float(s.log_shape(np.log10(d))) for d, dens in zip(_EPOCH_REF_D, _EPOCH_DENSITY)]
    times = [0.0] + [float(t) for t in s.age(np.asarray(n1))]
    times.append(math.inf)
    return [(name, times[i], times[i + 1]) for i, name in enumerate(_EPOCH_NAMES)]


def epoch_of(age_ga: float, system: str | ChronologySystem = "neukum-ivanov") -> str:
    """Name of the Michael (2013) Mars epoch containing ``age_ga``.

    Examples
    --------
    >>> epoch_of(3.7)
    'Early Hesperian'
    """
    if math.isnan(age_ga):
        # (NaN lies in no epoch: the comparisons below would all fail and name the oldest)
        raise InvalidArgumentError(f"age_ga must be a number of Ga, got {age_ga!r}: a NaN age lies in no epoch")
    for name, young, old in epoch_boundaries(system):
        if young <= age_ga < old:
            return name
    return _EPOCH_NAMES[-1]


def sample_diameters(
    age_ga: float,
    area_km2: float,
    diameter_range: tuple[float, float],
    *,
    system: str | ChronologySystem = "neukum-ivanov",
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Draw crater diameters that a surface of a given model age would carry.

    The number of craters is Poisson with mean ``area_km2 * (N(>=dmin) - N(>=dmax))`` and each
    diameter is drawn from the production function by inverse-transform sampling.

    Parameters
    ----------
    age_ga
        Model age, Ga.
    area_km2
        Count area, km².
    diameter_range
        ``(dmin, dmax)`` in km.
    system
        Chronology system.
    rng
        A numpy Generator or a seed.

    Returns
    -------
    numpy.ndarray
        Diameters in km, in random order.

    Examples
    --------
    >>> d = sample_diameters(3.7, 1e5, (1.0, 10.0), rng=0)
    >>> 400 < d.size < 800
    True
    """
    s = get_system(system)
    dmin, dmax = _check_range(diameter_range, s)
    rng = np.random.default_rng(rng)
    log_d = np.linspace(np.log10(dmin), np.log10(dmax), 4001)
    c = cumulative_density(10**log_d, age_ga, s) * area_km2
    n = rng.poisson(c[0] - c[-1])
    # inverse CDF on a fine log-diameter grid (C decreases with D)
    u = rng.uniform(c[-1], c[0], n)
    return 10 ** np.interp(u, c[::-1], log_d[::-1])


# --------------------------------------------------------------------------------------------
# Count areas
# --------------------------------------------------------------------------------------------


def _is_zarr_store(path: Path) -> bool:
    return path.suffix.lower() == ".zarr" or (path / "zarr.json").exists() or (path / ".zgroup").exists()


def _area_geometry(area: Any, crs: Any = None) -> tuple[Any, Any]:
    """``(shapely geometry, CRS)`` of a count area given as a geometry, GeoSeries, GeoDataFrame,
    vector file, mosaic (Dataset, DataArray or Zarr cube) or catalog GeoPackage with a footprint."""
    import os

    import geopandas as gpd
    import shapely
    import xarray as xr

    from .crs import MARS_GEOGRAPHIC

    if isinstance(area, (str, os.PathLike)):
        path = Path(area)
        if not path.exists():
            raise ChronologyError(
                f"the count area {path} does not exist: give a polygon file (GeoPackage, GeoJSON, Shapefile), "
                "the mosaic cube (.zarr) the craters were found on, or the area in km² (area_km2= / --area-km2)."
            )
        if path.is_dir() and _is_zarr_store(path):
            from .mosaic import open_mosaic

            area = open_mosaic(path)  # its footprint, below
        else:
            from .catalog import FOOTPRINT_LAYER, _list_layers

            # a catalog GeoPackage: its recorded footprint, not its crater points
            layer = None
            if path.suffix.lower() == ".gpkg":
                try:
                    layer = FOOTPRINT_LAYER if FOOTPRINT_LAYER in [n for n, _ in _list_layers(path)] else None
                except MarsCratersError:
                    layer = None  # not a readable GeoPackage: read_file below says why
            try:
                area = gpd.read_file(path, layer=layer)
            except Exception as exc:  # pyogrio raises its own DataSourceError family
                raise ChronologyError(
                    f"cannot read the count area {path} ({type(exc).__name__}: {exc}). Give a polygon file "
                    "(GeoPackage, GeoJSON, Shapefile), the mosaic cube (.zarr) the craters were found on, or "
                    "the area in km² (area_km2= / --area-km2)."
                ) from exc
            if not isinstance(area, gpd.GeoDataFrame):
                # e.g. a CSV table: GDAL reads it, but it has no polygons to measure
                raise ChronologyError(
                    f"the count area {path} holds no polygons (it reads as a table of columns "
                    f"{list(area.columns)[:8]}). Give a polygon file (GeoPackage, GeoJSON, Shapefile), the "
                    "mosaic cube (.zarr) the craters were found on, or the area in km² (area_km2= / --area-km2)."
                )
            if area.crs is None and crs is None and len(area):
                from .errors import MissingCRSError

                # a file: the fix is a command on the file, for Python and command-line users alike
                raise MissingCRSError(
                    f"the count area {path} has no CRS, so its area cannot be computed. Assign its Mars CRS, "
                    f"e.g. `ogr2ogr -a_srs IAU_2015:49900 fixed.gpkg {path}` for longitude/latitude degrees "
                    "on Mars (IAU_2015:49910 for equirectangular metres), and give fixed.gpkg."
                )
    if isinstance(area, (xr.Dataset, xr.DataArray)):
        from .mosaic import mosaic_footprint

        area = mosaic_footprint(area)
    if isinstance(area, (gpd.GeoDataFrame, gpd.GeoSeries)):
        if len(area) == 0:
            raise ChronologyError("the count area has no polygons: give at least one polygon.")
        if area.crs is None and crs is None:
            from .errors import MissingCRSError

            raise MissingCRSError(
                "the count area has no CRS, so its area cannot be computed. Set it, e.g. "
                "area.set_crs('IAU_2015:49900') for longitude/latitude degrees on Mars."
            )
        return shapely.union_all(np.asarray(area.geometry.values)), area.crs if area.crs is not None else crs
    if isinstance(area, shapely.Geometry):
        if crs is None:
            minx, miny, maxx, maxy = area.bounds if not area.is_empty else (0, 0, 0, 0)
            # degrees in any 360-degree convention (a box may run west of -180 or east of 360)
            if not (-360 <= minx and maxx <= 720 and maxx - minx <= 360 and -90 <= miny and maxy <= 90):
                from .errors import MissingCRSError

                raise MissingCRSError(
                    f"the count area polygon has bounds {area.bounds}, which are not longitude/latitude degrees, "
                    "and no CRS was given: pass crs= (e.g. crs='IAU_2015:49910' for metres on the Mars "
                    "equirectangular projection), or use a GeoSeries with its CRS set."
                )
            crs = MARS_GEOGRAPHIC
        return area, crs
    raise ChronologyError(
        f"the count area must be a shapely polygon, a GeoSeries/GeoDataFrame or a vector file, "
        f"got {type(area).__name__}; or pass its size in km² as area_km2="
    )


def _checked_geographic(area: Any, crs: Any = None) -> Any:
    """The count area as one valid (Multi)Polygon in MARS_GEOGRAPHIC degrees, densified."""
    import shapely
    from pyproj import Transformer

    from .crs import (
        MARS_GEOGRAPHIC,
        ographic_to_ocentric,
        to_mars_crs,
        vector_crs_fix,
        vector_latitude_kind,
    )

    geom, crs = _area_geometry(area, crs)
    path = area if isinstance(area, (str, os.PathLike)) else None  # a vector file, named in the fixes
    crs = to_mars_crs(crs, what="the count area", fix=vector_crs_fix(path))
    if geom.is_empty:
        raise ChronologyError("the count area is empty: give a polygon that encloses the counted surface.")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ChronologyError(
            f"the count area must be a Polygon or MultiPolygon, got a {geom.geom_type}; "
            "draw the counted surface as a polygon."
        )
    # a bow-tie also has zero signed area; only a polygon that stays empty once repaired is degenerate
    if geom.area <= 0 and shapely.make_valid(geom).area <= 0:
        raise ChronologyError("the count area polygon has zero area: its vertices are collinear or repeated.")
    if not geom.is_valid:
        raise ChronologyError(
            f"the count area polygon is invalid ({shapely.is_valid_reason(geom)}), for example "
            "self-intersecting: fix its vertex order, or repair it with shapely.make_valid(polygon)."
        )
    ographic = vector_latitude_kind(crs, what="the count area", path=path) == "planetographic"
    if not crs.is_geographic:
        # straight edges in the projection; keep their shape after reprojection
        minx, miny, maxx, maxy = geom.bounds
        geom = shapely.segmentize(geom, max(math.hypot(maxx - minx, maxy - miny) / 2000.0, 1e-9))
        # PROJ has no step from planetographic to planetocentric latitudes (a "ballpark" no-op)
        to_lonlat = (_OcentricTransformer(crs) if ographic
                     else Transformer.from_crs(crs, MARS_GEOGRAPHIC, always_xy=True))
        geom = _projected_to_lonlat(geom, crs, to_lonlat)
    elif ographic:
        # edges along planetographic parallels: densified first, so that they stay on them
        geom = shapely.transform(shapely.segmentize(geom, 0.05),
                                 lambda xy: ographic_to_ocentric(xy, crs, what="the count area"))
    # edges in degrees follow parallels and meridians (not great circles), as the craters inside are tested
    return shapely.segmentize(geom, 0.05)


class _OcentricTransformer:
    """``transform(x, y) -> (lon, lat)`` from a projected planetographic CRS to planetocentric degrees."""

    def __init__(self, crs: Any) -> None:
        self.crs = crs

    def transform(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        from .crs import ographic_to_ocentric

        lonlat = ographic_to_ocentric(np.column_stack([np.ravel(x), np.ravel(y)]), self.crs, what="the count area")
        return lonlat[:, 0], lonlat[:, 1]


def _projected_to_lonlat(geom: Any, crs: Any, to_lonlat: Any) -> Any:
    """A densified (Multi)Polygon in a projected Mars CRS as the same ground in longitude/latitude.

    PROJ folds longitudes into -180..180, so moving the vertices alone would turn a polygon across
    the 180th meridian into a band the long way round the planet, and one around a pole into a
    sliver along a parallel.  Each ring's longitudes are unwrapped instead (a polygon across 180
    runs on past it, as mosaics west of -180 do); a ring that winds once round a pole is closed
    along that pole's parallel (the region between the ring and the pole).
    """
    import shapely
    from pyproj import Transformer
    from shapely.affinity import translate

    from .crs import MARS_GEOGRAPHIC

    to_crs = Transformer.from_crs(MARS_GEOGRAPHIC, crs, always_xy=True)
    # where each pole lies in the projection (None where the projection cannot show it)
    poles = {}
    for lat in (90.0, -90.0):
        with np.errstate(all="ignore"):
            x, y = to_crs.transform(0.0, lat)
        poles[lat] = shapely.Point(x, y) if np.isfinite(x) and np.isfinite(y) else None

    def ring(coords: np.ndarray) -> np.ndarray:
        lon, lat = to_lonlat.transform(coords[:, 0], coords[:, 1])
        lon = np.unwrap(np.asarray(lon, dtype=float), period=360.0)
        lat = np.asarray(lat, dtype=float)
        if round((lon[-1] - lon[0]) / 360.0):
            # round a pole: the one this ring encloses in the projection
            inside = [p for p, pt in poles.items() if pt is not None and shapely.Polygon(coords).contains(pt)]
            pole = inside[0] if inside else math.copysign(90.0, float(np.mean(lat)))
            lon = np.concatenate([lon, [lon[-1], lon[0]]])
            lat = np.concatenate([lat, [pole, pole]])
        return np.column_stack([lon, lat])

    parts = []
    for poly in getattr(geom, "geoms", [geom]):
        outer = ring(np.asarray(poly.exterior.coords))
        # the west edge in -180..180, as mosaic footprints have it
        outer = outer + [-360.0 * math.floor((float(outer[:, 0].min()) + 180.0) / 360.0), 0.0]
        part = shapely.make_valid(shapely.Polygon(outer))
        middle = float(np.mean(outer[:, 0]))
        for h in poly.interiors:
            # a hole moved beside its exterior by whole turns, and cut out a turn either side as well
            # (one round a pole starts at its own longitude)
            xy = ring(np.asarray(h.coords))
            hole = shapely.make_valid(shapely.Polygon(xy))
            dx = 360.0 * round((middle - float(np.mean(xy[:, 0]))) / 360.0)
            part = part.difference(shapely.union_all([translate(hole, xoff=dx + k) for k in (-360.0, 0.0, 360.0)]))
        parts.append(part)
    # make_valid may leave a seam's spike as a line beside the polygon
    return _ground(shapely.union_all(parts))


def _ground(geom: Any) -> Any:
    """The polygons of a geometry: the area it covers, without the lines and points that a union,
    an intersection or ``make_valid`` leaves where shapes touch along an edge or at a corner."""
    import shapely

    return shapely.union_all([g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")])


def _overlap(a: Any, b: Any) -> Any:
    """The ground two lon/lat polygons share, in either longitude convention (``b`` moved by a turn
    either way too: one may run 170..190 and the other -180..-170)."""
    import shapely
    from shapely.affinity import translate

    return _ground(shapely.union_all([shapely.intersection(a, translate(b, xoff=dx)) for dx in (0.0, 360.0, -360.0)]))


def _lonlat_area_km2(geom: Any) -> float:
    """The area on the Mars sphere of a (Multi)Polygon whose edges are straight in longitude/latitude.

    Exact for that reading of the edges (the one craters are tested inside), for any size up to the
    whole sphere and across the poles: by Green's theorem, area = -R^2 * (closed integral of sin(lat)
    d lon) round counter-clockwise exteriors and clockwise holes, and along a straight edge that
    integral is ``d_lon * sin(mean lat) * sinc(d_lat / 2)``.
    """
    from shapely.geometry.polygon import orient

    from .crs import MARS_RADIUS_KM

    total = 0.0
    for poly in getattr(geom, "geoms", [geom]):
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        poly = orient(poly, 1.0)
        for coords in (poly.exterior.coords, *(h.coords for h in poly.interiors)):
            xy = np.radians(np.asarray(coords, dtype=float))
            dlon, lat0, lat1 = np.diff(xy[:, 0]), xy[:-1, 1], xy[1:, 1]
            total -= float(np.sum(dlon * np.sin((lat0 + lat1) / 2.0) * np.sinc((lat1 - lat0) / (2.0 * math.pi))))
    return total * MARS_RADIUS_KM**2


def count_area_km2(area: Any, *, crs: Any = None) -> float:
    """Area of a count polygon on the Mars sphere, in km².

    The polygon may be in any Mars CRS (geographic degrees or a projection in metres).  It is
    reprojected to longitude/latitude (densified first, so that edges straight in a projection keep
    their shape; across the 180th meridian and round a pole too) and measured exactly on the sphere
    of radius :data:`~marscraters.crs.MARS_RADIUS_M`, with edges in degrees along straight lines of
    longitude and latitude (as craters are tested inside it), up to the whole planet.  Several
    polygons are merged first, so overlaps are counted once.

    Parameters
    ----------
    area
        A shapely (Multi)Polygon, a GeoSeries or GeoDataFrame of polygons, a vector file
        (GeoPackage, GeoJSON, Shapefile; a catalog GeoPackage's ``footprint`` layer when it has
        one), or a mosaic (Dataset, DataArray or Zarr cube path), whose footprint
        (:func:`~marscraters.mosaic.mosaic_footprint`) is measured.
    crs
        CRS of a bare shapely geometry; default ``IAU_2015:49900`` (degrees).  GeoSeries and
        GeoDataFrames use their own CRS.

    Returns
    -------
    float
        km².

    Raises
    ------
    MissingCRSError
        A GeoSeries/GeoDataFrame without a CRS, or a bare polygon whose coordinates are not degrees.
    NotMarsCRSError
        An Earth (or other non-Mars) CRS.
    ChronologyError
        An empty, zero-area, self-intersecting or non-polygon geometry.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> round(count_area_km2(box(0, 0, 1, 1)))  # one square degree at the equator
    3513
    """
    return _lonlat_area_km2(_checked_geographic(area, crs))


# --------------------------------------------------------------------------------------------
# Crater counts and CSFDs
# --------------------------------------------------------------------------------------------

#: The whole surface of the Mars sphere, km² (4π R², about 1.449e8): no count area is larger, so a
#: larger ``area_km2`` is a unit mix-up (most often m² given as km²).
MARS_SURFACE_KM2: float = 4.0 * math.pi * MARS_RADIUS_KM**2

#: Binnings of :func:`csfd` (as in craterstats).
BINNINGS = ("pseudo-log", "root-2", "10/decade", "20/decade", "x2", "4th root-2")
_PSEUDO_LOG = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.7, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0)
#: The geometric binnings as ``(base, steps)``: boundaries ``base ** (k / steps)`` km, so that the
#: whole powers (1, 2, 4 km; 0.1, 1, 10 km) are exact.
_GEOMETRIC_BINS = {"x2": (2.0, 1), "root-2": (2.0, 2), "4th root-2": (2.0, 4), "10/decade": (10.0, 10),
                   "20/decade": (10.0, 20)}


def bin_edges(diameter_km: Any, bins: str = "pseudo-log") -> np.ndarray:
    """Bin boundaries (km) covering ``diameter_km``, as craterstats' ``generate_bins`` makes them.

    ``"pseudo-log"`` uses the boundaries 1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.7, 2, 2.5, 3, 3.5, 4, 4.5, 5,
    6, 7, 8, 9 × 10^k km, each the float nearest that decimal (craterstats' products carry float
    noise: 0.30000000000000004); the others are geometric (``"root-2"``: factor √2 anchored at
    1 km, ``"10/decade"``, ``"20/decade"``, ``"x2"``, ``"4th root-2"``), with whole powers exact.
    A bin holds ``d_min <= D < d_max``.

    Examples
    --------
    >>> bin_edges([0.21, 0.68]).tolist()
    [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7]
    """
    if bins not in BINNINGS:
        raise InvalidArgumentError(f"unknown binning {bins!r}: use one of {', '.join(BINNINGS)}")
    d = np.asarray(diameter_km, dtype=float)
    r10 = np.log10([d.min(), d.max()])
    r10[1] += 0.001  # one boundary beyond the largest crater
    if bins == "pseudo-log":
        # parsed from decimal text, so that 0.3 is 0.3 (3 * 0.1 is 0.30000000000000004, which would
        # move a crater of exactly 0.3 km into the bin below and a snapped range off its boundary)
        decades = range(int(np.floor(r10[0])), int(np.ceil(r10[1] + 0.1)))
        edges = np.array([float(f"{m:g}e{e}") for e in decades for m in _PSEUDO_LOG])
    else:
        base, steps = _GEOMETRIC_BINS[bins]
        bpd = steps / math.log10(base)  # boundaries per decade
        lo, hi = np.floor(r10[0] * bpd), np.ceil(r10[1] * bpd)
        # whole powers of the base are exact (10 ** log10(8) is 8.000000000000002)
        edges = base ** (np.arange(lo, hi + 1) / steps)
    q = np.searchsorted(edges, 10**r10)
    return edges[max(q[0] - 1, 0): q[1] + 1]


def _bin_count(d: np.ndarray, w: np.ndarray, bins: str) -> dict[str, np.ndarray]:
    edges = bin_edges(d, bins)
    n_event, _ = np.histogram(d, bins=edges)
    n, _ = np.histogram(d, bins=edges, weights=w)
    return {
        "d_min": edges[:-1], "d_max": edges[1:], "d_mean": np.sqrt(edges[1:] * edges[:-1]),
        "width": edges[1:] - edges[:-1], "n": n.astype(float), "n_event": n_event.astype(float),
        "ncum": np.cumsum(n[::-1])[::-1].astype(float), "ncum_event": np.cumsum(n_event[::-1])[::-1].astype(float),
    }


@dataclass
class _Count:
    """Diameters (km), their fractions and the count area (km²) of a crater count."""

    diameters: np.ndarray
    fractions: np.ndarray
    area_km2: float | None
    source: str


def _geometry_lonlat(catalog: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Crater centres ``(lon, lat)`` in degrees from a GeoDataFrame's point geometry, or None.

    Points in another Mars CRS are reprojected to :data:`~marscraters.crs.MARS_GEOGRAPHIC`, as
    ``read_catalog`` does for a GeoPackage layer; a missing or empty point gives NaN.

    Parameters
    ----------
    catalog
        The catalog; a plain DataFrame (no geometry) gives None.
    source
        Its name in messages.

    Returns
    -------
    tuple of numpy.ndarray or None
        Longitudes and latitudes, one per row.

    Raises
    ------
    MissingCRSError
        Points without a CRS (their coordinates' unit is unknown).
    NotMarsCRSError
        Points in an Earth (or other non-Mars) CRS.
    ChronologyError
        A geometry that is not points (crater centres).
    """
    import geopandas as gpd
    import shapely

    from .catalog import _to_mars_geographic
    from .errors import MissingCRSError

    if not isinstance(catalog, gpd.GeoDataFrame) or catalog.geometry.name not in catalog.columns:
        return None
    geom = catalog.geometry
    ok = ~(shapely.is_missing(geom.values) | shapely.is_empty(geom.values))
    if not ok.any():
        return None
    if not (shapely.get_type_id(geom.values[ok]) == 0).all():
        raise ChronologyError(
            f"{source} has no lon/lat columns and its geometry is not points, so its craters cannot be placed in "
            "the count polygon: give crater centres as points, or add lon and lat columns (degrees)."
        )
    if geom.crs is None:
        raise MissingCRSError(
            f"{source}'s crater points have no CRS, so they cannot be placed in the count polygon: set it, e.g. "
            "catalog.set_crs('IAU_2015:49900') for longitude/latitude degrees on Mars, or add lon and lat columns."
        )
    # as read_catalog places a layer's points (planetographic latitudes converted, degrees under a
    # metre CRS refused)
    points = _to_mars_geographic(geom.values, geom.crs, what=f"the crater points of {source}")
    # shapely points keep (x, y) = (lon, lat) whatever the CRS's axis order; no point gives NaN
    with np.errstate(invalid="ignore"):
        return (np.where(ok, shapely.get_x(points), np.nan).astype(float),
                np.where(ok, shapely.get_y(points), np.nan).astype(float))


def _count(catalog: Any, area_km2: float | None = None, area: Any = None, *, need_area: bool = True) -> _Count:
    """Normalise the inputs of csfd/model_age into a :class:`_Count`."""
    import os

    import pandas as pd

    source = "crater count"
    if isinstance(catalog, (str, os.PathLike)):
        from .catalog import read_catalog

        source = str(catalog)
        catalog = read_catalog(catalog)
    fractions = None
    lonlat = None
    keep_known = ""  # how to keep the rows with a position, in the message that refuses the others
    attrs_area = None
    if isinstance(catalog, pd.DataFrame):
        source = str(catalog.attrs.get("source", "catalog"))
        if "diameter_km" not in catalog.columns:
            raise ChronologyError(
                f"{source} has no 'diameter_km' column (columns: {list(catalog.columns)[:8]}): "
                "give a marscraters catalog (see marscraters.catalog.read_catalog) or an array of diameters in km."
            )
        d = catalog["diameter_km"].to_numpy(dtype=float)
        if "fraction" in catalog.columns:
            fractions = catalog["fraction"].to_numpy(dtype=float)
        if "lon" in catalog.columns and "lat" in catalog.columns:
            lonlat = (catalog["lon"].to_numpy(dtype=float), catalog["lat"].to_numpy(dtype=float))
            keep_known = "catalog.dropna(subset=['lon', 'lat'])"
        elif area is not None:
            # a GeoDataFrame of points has positions without the columns (they only matter for a polygon)
            lonlat = _geometry_lonlat(catalog, source)
            keep_known = "catalog[~(catalog.geometry.isna() | catalog.geometry.is_empty)]"
        attrs_area = catalog.attrs.get("area_km2")
        nodata_share = catalog.attrs.get("nodata_share")
    else:
        d = np.asarray(catalog, dtype=float).ravel()
    if d.size == 0:
        raise ChronologyError(f"{source} is empty: there are no craters to count.")
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ChronologyError(f"{source} has diameters that are missing or <= 0: drop those rows first.")
    w = np.ones_like(d) if fractions is None else fractions
    if area is not None:
        geom = _checked_geographic(area)
        polygon_km2 = count_area_km2(geom)
        known = np.zeros(d.size, bool) if lonlat is None else np.isfinite(lonlat[0]) & np.isfinite(lonlat[1])
        if not known.any():
            import warnings

            # a count without positions (a craterstats file, bare diameters): nothing to test inside the polygon
            if area_km2 is None:
                role = f"gives the count area ({_fmt_area(polygon_km2)} km²) only"
                fix = f"pass area_km2={polygon_km2:.6g} (--area-km2 {polygon_km2:.6g}) instead of the polygon"
            else:
                role, fix = "is not used (the area_km2 given is the count area)", "leave the polygon out"
            warnings.warn(
                f"{source} has no crater positions, so the count polygon {role}: every crater is counted, none "
                f"is tested inside it. Give a catalog with positions (lon/lat columns or point geometry) to "
                f"count only the craters inside the polygon, or {fix}.", UserWarning, stacklevel=3)
        elif not known.all():
            rows = np.flatnonzero(~known) + 1
            shown = ", ".join(str(r) for r in rows[:10]) + (f" and {rows.size - 10} more" if rows.size > 10 else "")
            raise ChronologyError(
                f"{source}: {rows.size} of {d.size} craters have no position (missing or not a number: "
                f"{'row' if rows.size == 1 else 'rows'} {shown}, numbered from 1), so the count polygon cannot "
                f"tell whether they lie inside it. Give their positions, or drop those rows ({keep_known}) if "
                "they lie outside the counted surface."
            )
        else:
            import shapely

            lon, lat = lonlat
            # craters whose centre is inside the count area or on its edge, as filter_catalog keeps
            # them (either longitude convention)
            inside = np.zeros(d.size, bool)
            for shift in (0.0, 360.0, -360.0):
                inside |= shapely.intersects_xy(geom, lon + shift, lat)
            d, w = d[inside], w[inside]
            if d.size == 0:
                raise ChronologyError(
                    f"no crater of {source} lies inside the count area (bounds {geom.bounds}): check that the "
                    "polygon and the catalog cover the same place (longitudes -180..180 or 0..360)."
                )
        # an area_km2 given beside the polygon is the area to divide by (the craters are still the polygon's)
        area_km2 = polygon_km2 if area_km2 is None else area_km2
    recorded = area_km2 is None and attrs_area is not None
    if area_km2 is None:
        area_km2 = attrs_area
    if recorded and nodata_share is not None:
        _warn_nodata_area(source, nodata_share)
    if area_km2 is not None:
        try:
            area_km2 = float(area_km2)
        except (TypeError, ValueError):
            raise ChronologyError(f"area_km2 must be a number of km², got {area_km2!r}") from None
        if not (math.isfinite(area_km2) and area_km2 > 0):
            raise ChronologyError(f"the count area must be > 0 km², got {area_km2!r}")
        if area_km2 > MARS_SURFACE_KM2:
            # an area in m² passed as km² dates the surface 10^6 times too young, without a sign
            km2 = area_km2 / 1e6
            raise ChronologyError(
                f"the count area {area_km2:.4g} km²{f' recorded in {source}' if recorded else ''} is larger than "
                f"Mars' whole surface ({MARS_SURFACE_KM2:.4g} km²): it is most likely in m². Give it in km² "
                f"(1 km² = 1e6 m²): area_km2={km2:.4g} (--area-km2 {km2:.4g})."
            )
    elif need_area:
        raise ChronologyError(
            f"{source} has no count area: pass area_km2= (km²) or area= (the count polygon, any Mars CRS); "
            "on the command line --area-km2 or --area."
        )
    return _Count(d, w, area_km2, source)


def csfd(
    catalog: Any,
    area_km2: float | None = None,
    *,
    area: Any = None,
    bins: str = "pseudo-log",
    kind: str = "cumulative",
    system: str | ChronologySystem = "neukum-ivanov",
) -> pd.DataFrame:
    """Crater size-frequency distribution of a count, binned and normalised like craterstats.

    Parameters
    ----------
    catalog
        A catalog (GeoDataFrame with ``diameter_km``; an optional ``fraction`` column weights
        craters partly inside the area), an array of diameters in km, or a catalog file
        (craterstats ``.diam``/``.scc`` files carry their area).
    area_km2
        Count area in km².  Default: from ``area`` or the catalog's ``attrs["area_km2"]``.  Given
        with ``area``, it replaces the polygon's measured area, and the polygon still chooses the
        craters.
    area
        Count polygon (any Mars CRS, see :func:`count_area_km2`); craters outside it are dropped
        (positions as for :func:`model_age`).
    bins
        One of :data:`BINNINGS`; default ``"pseudo-log"`` (craterstats' default).
    kind
        ``"cumulative"`` (N(>=D) per km² at the bin's lower edge), ``"differential"`` (per km² per
        km at the geometric bin centre, corrected for the binning bias with the system's production
        function, Michael 2013) or ``"R"`` (relative: D³ times the differential density).
    system
        Chronology system, for the differential binning-bias correction.

    Returns
    -------
    pandas.DataFrame
        One row per bin that holds craters, ordered by diameter: ``d_min``, ``d_max``, ``d_mean``
        (km), ``n`` (craters, weighted by ``fraction``), ``n_event`` (craters), ``ncum``,
        ``ncum_event``, then ``diameter`` and ``density`` (what to plot), ``error`` (craterstats'
        ``density / sqrt(n)``) and ``lower``/``upper`` (exact Poisson 1σ interval of the density,
        Gehrels 1986).  ``attrs`` holds ``kind``, ``bins`` and ``area_km2``.

    Examples
    --------
    >>> t = csfd([1.1, 1.3, 2.2, 5.0], area_km2=100.0)
    >>> t[["d_min", "ncum", "density"]].values.round(3).tolist()[:2]
    [[1.1, 4.0, 0.04], [1.3, 3.0, 0.03]]
    """
    import pandas as pd
    from scipy.stats import chi2

    if kind not in ("cumulative", "differential", "R"):
        raise InvalidArgumentError(f"kind must be 'cumulative', 'differential' or 'R', got {kind!r}")
    c = _count(catalog, area_km2, area)
    b = _bin_count(c.diameters, c.fractions, bins)
    keep = b["n"] > 0
    t = pd.DataFrame({k: v[keep] for k, v in b.items() if k != "width"})
    width = b["width"][keep]
    a = c.area_km2
    if kind == "cumulative":
        x, y, events = t["d_min"].to_numpy(), t["ncum"].to_numpy() / a, t["ncum_event"].to_numpy()
    else:
        x, events = t["d_mean"].to_numpy(), t["n_event"].to_numpy()
        y = t["n"].to_numpy() / width / a
        # Michael (2013) section 5: a log-binned density underestimates a steep differential one
        s = get_system(system)
        beta = (t["d_mean"].to_numpy() / t["d_min"].to_numpy()) ** 2
        k = (s.log_shape(np.log10(x * np.sqrt(beta))) - s.log_shape(np.log10(x / np.sqrt(beta)))) / np.log10(beta)
        if kind == "differential":
            y = y / _bin_bias_correction(beta, k)
        else:
            y = y * x**3
    scale = y / events
    t["diameter"] = x
    t["density"] = y
    t["error"] = y / np.sqrt(events)
    t["lower"] = scale * chi2.ppf(0.158655, 2 * events) / 2
    t["upper"] = scale * chi2.ppf(0.841345, 2 * events + 2) / 2
    t.attrs.update(kind=kind, bins=bins, area_km2=a, source=c.source)
    return t.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Model ages
# --------------------------------------------------------------------------------------------


def _check_range(diameter_range: Any, s: ChronologySystem) -> tuple[float, float]:
    try:
        dmin, dmax = (float(v) for v in diameter_range)
    except (TypeError, ValueError):
        raise ChronologyError(f"diameter_range must be (dmin, dmax) in km, got {diameter_range!r}") from None
    if not (0 < dmin < dmax and math.isfinite(dmax)):
        raise ChronologyError(f"diameter_range must satisfy 0 < dmin < dmax (km), got {diameter_range!r}")
    lo, hi = s.production_range
    if dmin < lo * (1 - 1e-6) or dmax > hi * (1 + 1e-6):
        raise ChronologyError(
            f"diameter range {dmin:g}-{dmax:g} km lies outside the {s.pf_name} production function's validity "
            f"({lo:.4g}-{hi:.4g} km): choose a range inside it, or another chronology system."
        )
    return dmin, dmax


def _snap(rng: tuple[float, float], d: np.ndarray, bins: str) -> tuple[float, float]:
    """Snap a diameter range outwards to bin boundaries, as craterstats does by default."""
    edges = bin_edges(np.r_[d, rng], bins)
    lo = edges[max(np.searchsorted(edges, rng[0] * 1.0000001) - 1, 0)]
    hi = edges[min(np.searchsorted(edges, rng[1] * 0.999999), edges.size - 1)]
    return float(lo), float(hi)


_G1 = (1.0 - math.erf(1.0 / math.sqrt(2.0))) / 2.0  # the 1-sigma percentile, 0.1587
#: The oldest age (Ga) of the Poisson likelihood's grid (craterstats tabulates the chronology on 0..5 Ga).
_GRID_END_GA = 5.0
#: About the age of Mars (Ga): a model age above it dates no surface of Mars.
_MARS_AGE_GA = 4.5


def _poisson_pdf(k: int, s: ChronologySystem, expected: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Log-N(1) grid, age grid, normalised likelihood and its cumulative of ``k`` craters (Michael et al. 2016).

    ``expected(x)`` is the expected number of craters on the count area at ``N(1) = N(1 Ga) *
    10**x``; the likelihood is tabulated on craterstats' grid of -10..+5 decades of N(1) around
    1 Ga, refined for large counts, and normalised over age (a uniform prior in age).
    """
    from scipy.special import gammaln

    # resolve the peak: at least ~10 samples per standard deviation of log10(lambda)
    sigma_x = 1.0 / (math.sqrt(max(k, 1)) * math.log(10.0))
    n_samples = int(min(max(5000, 15.0 / (sigma_x / 10.0)), 2_000_000))
    x = np.linspace(-10.0, 5.0, n_samples)
    n1 = s.n1(1.0) * 10**x
    ts = np.clip(s.age(n1), 0.0, _GRID_END_GA)  # craterstats tabulates the chronology on 0..5 Ga
    dt = ts - np.roll(ts, 1)
    dt[0] = dt[1]
    lam = expected(x)
    logp = k * np.log(lam) - lam - gammaln(k + 1.0)  # exact Poisson, in logs (no overflow)
    pdf = np.exp(logp - logp.max())
    # a count far beyond the 5 Ga isochron has all its likelihood where dt = 0, and a zero sum:
    # the NaNs that leaves are refused by the caller (_beyond_grid), without numpy's warnings
    with np.errstate(divide="ignore", invalid="ignore"):
        pdf /= np.sum(pdf * dt)
        cdf = np.cumsum(pdf * dt)
    return x, ts, pdf, cdf


def _beyond_grid(ts: np.ndarray, pdf: np.ndarray) -> bool:
    """Whether a count's likelihood lies beyond the 5 Ga end of the age grid.

    Its peak at the grid's end means a count denser than the 5 Ga isochron: the likelihood then
    rises all the way to 5 Ga, and its median and bounds stick there whatever the area.  A
    normalisation that is not finite means all of it lay beyond.

    Parameters
    ----------
    ts, pdf
        The age grid (Ga) and the normalised likelihood of :func:`_poisson_pdf`.

    Returns
    -------
    bool
    """
    return not np.all(np.isfinite(pdf)) or bool(ts[int(np.argmax(pdf))] >= _GRID_END_GA)


def _too_dense(source: str, n: float, rng: tuple[float, float], area_km2: float, s: ChronologySystem) -> ChronologyError:
    """The error for a count denser than a 5 Ga surface, with its likely causes and their fixes."""
    return ChronologyError(
        f"{source}: {_n_craters(n)} of {_fmt_d(rng[0])}-{_fmt_d(rng[1])} km on {_fmt_area(area_km2)} km² are "
        f"denser than a {_GRID_END_GA:g} Ga surface would be (the oldest age the {s.name} chronology covers; "
        f"Mars is about {_MARS_AGE_GA:g} Ga old), so no model age fits them. The usual cause is a unit slip: a "
        "count area that is not in km² (3.036 typed for 3,036 km², or an area in thousands of km²), or "
        "diameters in metres read as km (which puts small craters into the range); else a saturated count, "
        "whose density no longer grows with age. Check the count area (area_km2=) and the diameters; date a "
        "saturated surface on larger craters (raise the lower bound of diameter_range)."
    )


def _warn_older_than_mars(age: float, source: str, area_km2: float) -> None:
    """Warn that a model age is older than Mars: most often a unit slip in the area or diameters."""
    import warnings

    warnings.warn(
        f"{source}: the model age {format_age(age)} is older than Mars (about {_MARS_AGE_GA:g} Ga), which usually "
        f"means a unit slip: a count area that is too small for its craters (it is {_fmt_area(area_km2)} km²; "
        "area_km2= takes km²), or diameters in metres read as km; else a saturated count. Check the count area "
        "and the diameters before using this age.", UserWarning, stacklevel=3)


@dataclass
class ModelAge:
    """A crater-count model age.

    Attributes
    ----------
    age
        Model age in Ga (the median of the Poisson likelihood, or the cumulative fit).
    lower, upper
        1σ bounds in Ga (16th/84th percentiles for the Poisson method).
    n
        Craters in the diameter range (weighted by ``fraction`` for the cumulative fit).
    n1
        N(>=1 km) per km² of the fitted isochron.
    epoch
        Michael (2013) Mars epoch of ``age`` in this chronology system.
    system
        Chronology system key.
    method
        ``"poisson"`` or ``"cumulative"``.
    diameter_range
        Diameter range used, km (snapped outwards to bin boundaries unless ``snap=False``).
    area_km2
        Count area, km².
    response
        Name of the detector response the count was corrected for ("" for none).
    expected_false
        With a response: the false detections it expects at ``age`` in the range.
    """

    age: float
    lower: float
    upper: float
    n: float
    n1: float
    epoch: str
    system: str
    method: str
    diameter_range: tuple[float, float]
    area_km2: float
    n1_lower: float = math.nan
    n1_upper: float = math.nan
    source: str = ""
    response: str = ""
    expected_false: float = math.nan
    likelihood: pd.DataFrame | None = field(default=None, repr=False)
    diameters: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    fractions: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def error(self) -> tuple[float, float]:
        """``(age - lower, upper - age)`` in Ga."""
        return self.age - self.lower, self.upper - self.age

    def age_text(self) -> str:
        """The age with its 1σ errors, e.g. ``'630 +37/-35 Ma'`` or ``'3.61 +0.11/-0.99 Ga'``."""
        return format_age(self.age, self.lower, self.upper)

    def __str__(self) -> str:
        s = get_system(self.system)
        d0, d1 = self.diameter_range
        n = f"{self.n:g}" if abs(self.n - round(self.n)) < 1e-9 else f"{self.n:.1f}"
        how = "Poisson likelihood (Michael et al. 2016)" if self.method == "poisson" else "cumulative fit"
        # the 1σ bounds in Ga with the age's digits (as many as the interval needs)
        sigma = _age_digits(self.age, self.lower, self.upper) + round(math.log10(_age_unit(self.age)[1]))
        if self.response:
            how += f", corrected for the detector response of {self.response} ({self.expected_false:.1f} false expected)"
        return (
            f"Model age {self.age_text()} (1σ {self.lower:.{sigma}f}-{self.upper:.{sigma}f} Ga), {self.epoch}\n"
            f"  {_n_craters(self.n, n)} of {_fmt_d(d0)}-{_fmt_d(d1)} km on {_fmt_area(self.area_km2)} km², "
            f"N(1) = {self.n1:.3g} per km²\n"
            f"  {s.name} chronology system, {how}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The scalar results as a plain dict (for tables and JSON)."""
        return {"age_ga": self.age, "lower_ga": self.lower, "upper_ga": self.upper, "n": self.n, "n1": self.n1,
                "n1_lower": self.n1_lower, "n1_upper": self.n1_upper, "epoch": self.epoch, "system": self.system,
                "method": self.method, "dmin_km": self.diameter_range[0], "dmax_km": self.diameter_range[1],
                "area_km2": self.area_km2, "source": self.source, "response": self.response,
                "expected_false": self.expected_false}

    def plot(self, ax: Any = None, *, kind: str = "cumulative", bins: str = "pseudo-log", out: Any = None,
             overwrite: bool = False, **kwargs: Any) -> Any:
        """CSFD of the count with isochrons and this fit; see :func:`plot_csfd`.

        Returns the matplotlib Figure.
        """
        import pandas as pd

        counts = pd.DataFrame({"diameter_km": self.diameters, "fraction": self.fractions})
        counts.attrs["source"] = self.source
        return plot_csfd(counts, self.area_km2, fits=[self], kind=kind, bins=bins, system=self.system, ax=ax,
                         out=out, overwrite=overwrite, **kwargs)


def _warn_nodata_area(source: str, share: Any) -> None:
    """Warn that a catalog's recorded count area (its mosaic's footprint) holds much no data."""
    import warnings

    from .assemble import NODATA_WARN_SHARE

    try:
        share = float(share)
    except (TypeError, ValueError):
        return
    if share > NODATA_WARN_SHARE:
        warnings.warn(
            f"{source}'s count area is its mosaic's whole footprint, of which {share:.0%} holds no image data, so "
            f"this age comes from densities {1 / max(1 - share, 1e-9):.2f} times too low (too young): date it on a "
            "polygon of the imaged ground (--area unit.gpkg; Python area=polygon)", UserWarning, stacklevel=4)


def _n_craters(n: float, text: str | None = None) -> str:
    """``'1 crater'``, ``'84 craters'``; ``text`` writes the number when ``:g`` would not (a
    weighted count's one decimal)."""
    return f"{f'{n:g}' if text is None else text} crater{'' if n == 1 else 's'}"


def _fmt_area(a: float) -> str:
    return f"{a:,.0f}" if a >= 100 else f"{a:.3g}"


def _fmt_d(d: float) -> str:
    return f"{d:.3g}" if d < 100 else f"{d:.0f}"


def format_age(age: float, lower: float | None = None, upper: float | None = None) -> str:
    """Format an age in Ga with its 1σ errors, in Ma below 1 Ga (as craterstats does).

    Examples
    --------
    >>> format_age(0.6304, 0.5957, 0.6670)
    '630 +37/-35 Ma'
    >>> format_age(3.61, 2.62, 3.72)
    '3.61 +0.11/-0.99 Ga'

    Errors that would round to zero (a large count) get two significant digits:

    >>> format_age(3.8012, 3.7985, 3.8041)
    '3.8012 +0.0029/-0.0027 Ga'
    """
    unit, f = _age_unit(age)
    digits = _age_digits(age, lower, upper)
    text = f"{age * f:.{digits}f}"
    if lower is None or upper is None:
        return f"{text} {unit}"
    return f"{text} +{(upper - age) * f:.{digits}f}/-{(age - lower) * f:.{digits}f} {unit}"


def _age_unit(age: float) -> tuple[str, float]:
    """The unit of an age in Ga (Ga, Ma below 1 Ga, ka below 1 Ma) and its factor from Ga."""
    # (a NaN age is no smaller than 1 Ga: "nan Ga", never "nan ka")
    return ("Ga", 1.0) if not age < 1.0 else (("Ma", 1e3) if age >= 1e-3 else ("ka", 1e6))


def _age_digits(age: float, lower: float | None = None, upper: float | None = None) -> int:
    """Decimals for an age in its unit: about three significant digits, or, when the smaller of its
    errors would round to zero with those (a large count), enough to give it two significant digits,
    so that ``+0.00/-0.00`` never hides an interval."""
    f = _age_unit(age)[1]
    v = age * f
    digits = 2 if v < 10 else (1 if v < 100 else 0)
    errors = [e * f for e in ((upper - age) if upper is not None else math.nan,
                              (age - lower) if lower is not None else math.nan) if math.isfinite(e) and e > 0]
    if errors and round(min(errors), digits) == 0:
        # at most 6 decimals: a narrower interval is a degenerate fit, not a measurement
        digits = min(6, 1 - math.floor(math.log10(min(errors))))
    return digits


# --------------------------------------------------------------------------------------------
# Detector response: completeness, false craters and diameter error of an automatic catalog
# --------------------------------------------------------------------------------------------
RESPONSE_VERSION = 1
# crowding scale: N(1) of 1e-3 per km² (about a 3.6 Ga surface in Neukum-Ivanov)
_CROWDING_N1 = 1e-3


def _crowding(n1: Any) -> np.ndarray:
    """log10(1 + N1 / 1e-3): ~linear in N(1) on young surfaces, logarithmic on saturated ones."""
    return np.log10(1.0 + np.asarray(n1, dtype=float) / _CROWDING_N1)


def _logistic(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free 1 / (1 + exp(-z))


def _tuples(rows: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in rows)


def _bracket(value: Any, nodes: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the nodes on either side of ``value`` and the weight of the upper one (clamped)."""
    f = np.interp(value, nodes, np.arange(len(nodes), dtype=float))  # np.interp clamps at the ends
    i0 = np.minimum(np.floor(f).astype(int), len(nodes) - 1)
    return i0, np.minimum(i0 + 1, len(nodes) - 1), f - i0


def _bilinear(nodes: tuple[Sequence[float], Sequence[float]], table: Any, x: Any, y: Any) -> np.ndarray:
    """Bilinear interpolation of ``table[i, j, ...]`` at ``(x, y)``, clamped to the nodes' span.

    Trailing dimensions of the table (quantiles) are kept: the result has shape
    ``broadcast(x, y).shape + table.shape[2:]``.
    """
    t = np.asarray(table, dtype=float)
    i0, i1, wx = _bracket(x, nodes[0])
    j0, j1, wy = _bracket(y, nodes[1])
    if t.ndim > 2:
        wx, wy = (np.expand_dims(w, tuple(range(np.ndim(w), np.ndim(w) + t.ndim - 2))) for w in (wx, wy))
    return (t[i0, j0] * (1 - wx) * (1 - wy) + t[i1, j0] * wx * (1 - wy)
            + t[i0, j1] * (1 - wx) * wy + t[i1, j1] * wx * wy)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    order = np.argsort(values)
    c = np.cumsum(weights[order])
    return np.interp(probs * c[-1], c - 0.5 * weights[order], values[order])


# the diameter error is kept as 16 quantiles of log10(detected D / true D), each smoothed by a
# narrow normal: the errors are skewed (the circle finder often picks an inner ring), which a
# normal with a robust width misses, and the misses move craters out of a dating range
DIAMETER_PROBS = (np.arange(16) + 0.5) / 16
_DIAMETER_SMOOTH = 0.006


@dataclass(frozen=True)
class DetectorResponse:
    """How an automatic crater detector sees a surface, for dating its catalogs.

    An automatic catalog is not a complete count: it misses craters (more of them, and more of
    the small ones, as a surface crowds), adds false ones, and measures diameters with an error.
    Dated as if it were complete, a sparsely cratered surface reads too old (the false craters)
    and a crowded one too young (the misses).  With a response, :func:`model_age` dates a
    detected count against the number of detections *expected* at each age::

        E[k](t) = A [ integral r(D, t) n(D, t) P(d0 <= D s < d1) dD  +  integral_d0^d1 f(D, t) dD ]

    with ``n(D, t)`` the production function at age t, ``r`` the recall (a plateau times a
    logistic in log10 D, measured on each calibration surface and interpolated in the crowding
    ``g = log10(1 + N(1)/1e-3)`` of the trial age: crowded surfaces lose more craters, and their
    small ones first), ``s`` the detected/true diameter ratio (a mixture of 16 measured
    quantiles) and ``f`` the false craters per km² per unit log10 D (``log10 f`` linear in
    log10 D and g).  Fit one with :func:`fit_response` on synthetic
    surfaces of known age (``benchmarks/calibrate_response.py``).

    Attributes
    ----------
    recall_nodes
        Crowding g of the calibration surfaces, increasing.
    recall_params
        ``(q, a, b)`` per node: ``r = logistic(q) * logistic(a + b L)``, L = log10(D / km); the
        recall is interpolated linearly in g between the nodes' curves (and held beyond them).
    false_coef
        ``(a0, a1, a2)``: ``log10 f = a0 + a1 L + a2 g``, f per km² per unit log10 D.
    diameter_nodes
        ``(L nodes, g nodes)`` of the diameter-error tables (log10 of the true diameter in km,
        crowding).
    diameter_quantiles
        Table (L nodes x g nodes x 16) of the quantiles of log10(detected D / true D) at the
        probabilities :data:`DIAMETER_PROBS`, interpolated bilinearly (clamped at the edges);
        the error distribution is their equal mixture, each smoothed by a 0.006-dex normal.  It
        depends on both axes and is skewed: the circle finder measures some sizes short, and
        degraded craters on crowded surfaces are measured smaller and less precisely.
    d_range
        Diameters (km) the calibration covered; ranges starting below ``d_range[0]`` are refused
        (above ``d_range[1]`` the response is extrapolated).
    n1_range
        N(1) per km² of the calibration surfaces (beyond it the response is extrapolated).
    name
        The detector (model) it describes.
    system
        Chronology system whose ages defined the calibration surfaces.
    provenance
        Free-form record of how it was calibrated (seeds, ages, areas, date).
    """

    recall_nodes: tuple[float, ...]
    recall_params: tuple[tuple[float, float, float], ...]
    false_coef: tuple[float, float, float]
    diameter_nodes: tuple[tuple[float, ...], tuple[float, ...]]
    diameter_quantiles: tuple[tuple[tuple[float, ...], ...], ...]
    d_range: tuple[float, float]
    n1_range: tuple[float, float]
    name: str = ""
    system: str = "neukum-ivanov"
    provenance: Mapping[str, Any] = field(default_factory=dict, compare=False)
    false_table: tuple[tuple[float, ...], tuple[tuple[float, ...], ...]] = ()

    def __post_init__(self) -> None:
        shape = tuple(len(n) for n in self.diameter_nodes)
        q = self.diameter_quantiles
        ok = len(shape) == 2 and min(shape) >= 1 and len(q) == shape[0] and all(
            len(r) == shape[1] and all(len(c) == DIAMETER_PROBS.size for c in r) for r in q)
        ok = ok and len(self.recall_nodes) >= 1 and len(self.recall_params) == len(self.recall_nodes) and all(
            len(p) == 3 for p in self.recall_params) and all(np.diff(self.recall_nodes) > 0)
        numbers = [*self.recall_nodes, *[v for p in self.recall_params for v in p], *self.false_coef, *self.d_range, *self.n1_range,
                   *[v for r in q for c in r for v in c], *[v for n in self.diameter_nodes for v in n]]
        if (not ok or len(self.false_coef) != 3
                or not all(math.isfinite(float(v)) for v in numbers)):
            raise ChronologyError(
                "a detector response needs finite recall parameters (3 per increasing crowding node), 3 false-crater "
                "coefficients, diameter-error tables matching their nodes, and finite "
                "ranges; refit it with fit_response()"
            )
        if not (0 < self.d_range[0] < self.d_range[1]):
            raise ChronologyError(f"detector response {self.name!r} has an invalid diameter range {self.d_range}; refit it")
        if self.false_table:
            edges, rows = self.false_table
            fine = (len(edges) >= 2 and bool(np.all(np.diff(edges) > 0)) and len(rows) == len(self.recall_nodes)
                    and all(len(r) == len(edges) - 1 for r in rows)
                    and bool(np.all(np.isfinite(np.asarray(rows, dtype=float)))))
            if not fine:
                raise ChronologyError(f"detector response {self.name!r} has a malformed false-crater table (one row per "
                                      "crowding node, one value per diameter bin); refit it with fit_response()")
        if np.any(np.diff(np.asarray(q, dtype=float), axis=-1) < 0) or any(np.any(np.diff(n) <= 0) for n in self.diameter_nodes):
            raise ChronologyError(f"detector response {self.name!r} has decreasing diameter-error quantiles or nodes; refit it")

    # ---- the three parts -------------------------------------------------------------------
    def recall(self, diameter_km: Any, n1: Any) -> np.ndarray:
        """Fraction of true craters of ``diameter_km`` detected on a surface with ``N(1) = n1``."""
        L = np.log10(np.asarray(diameter_km, dtype=float))
        g = _crowding(n1)
        L, g = np.broadcast_arrays(L, g)
        p = np.asarray(self.recall_params, dtype=float)
        # each calibration surface's curve at L, then linear in g between them (interpolating
        # the curves, not their parameters, which trade off against each other)
        curves = _logistic(p[:, 0]) * _logistic(p[:, 1] + p[:, 2] * L[..., None])
        j0, j1, w = _bracket(g, self.recall_nodes)
        r0 = np.take_along_axis(curves, j0[..., None], axis=-1)[..., 0]
        r1 = np.take_along_axis(curves, j1[..., None], axis=-1)[..., 0]
        return r0 * (1.0 - w) + r1 * w

    def false_density(self, diameter_km: Any, n1: Any) -> np.ndarray:
        """False craters per km² per unit log10 D at ``diameter_km`` on a surface with ``N(1) = n1``.

        From the measured table (density per diameter bin on each calibration surface, linear in
        crowding between them, in log) when the response has one, else the log-linear law.
        """
        L = np.log10(np.asarray(diameter_km, dtype=float))
        if not self.false_table:
            a0, a1, a2 = self.false_coef
            return 10 ** (a0 + a1 * L + a2 * _crowding(n1))
        edges, rows = (np.asarray(v, dtype=float) for v in self.false_table)
        L, g = np.broadcast_arrays(L, _crowding(n1))
        k = np.clip(np.searchsorted(edges, L, side="right") - 1, 0, rows.shape[1] - 1)
        j0, j1, w = _bracket(g, self.recall_nodes)
        return 10 ** (rows[j0, k] * (1.0 - w) + rows[j1, k] * w)

    def diameter_quantile(self, diameter_km: Any, n1: Any) -> np.ndarray:
        """The 16 quantiles of log10(detected D / true D) (last axis) for true ``diameter_km`` at ``N(1) = n1``."""
        return _bilinear(self.diameter_nodes, self.diameter_quantiles, np.log10(np.asarray(diameter_km, dtype=float)), _crowding(n1))

    def diameter_error(self, diameter_km: Any, n1: Any) -> tuple[np.ndarray, np.ndarray]:
        """Median and half the 16-84 % range of log10(detected D / true D) (for display)."""
        q = self.diameter_quantile(diameter_km, n1)
        at = lambda p: np.apply_along_axis(lambda row: np.interp(p, DIAMETER_PROBS, row), -1, q)  # noqa: E731
        return at(0.5), (at(0.8413) - at(0.1587)) / 2

    def sample_diameters(self, diameter_km: Any, n1: Any, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Detected diameters of true craters of ``diameter_km`` (km) on a surface with ``N(1) = n1``.

        Draws from the response's diameter-error distribution (simulation of a detector's catalog).
        """
        rng = np.random.default_rng(rng)
        q = self.diameter_quantile(diameter_km, n1)
        d = np.broadcast_to(np.asarray(diameter_km, dtype=float), q.shape[:-1])
        k = rng.integers(0, DIAMETER_PROBS.size, size=d.shape)
        offset = np.take_along_axis(q, k[..., None], axis=-1)[..., 0] + _DIAMETER_SMOOTH * rng.standard_normal(d.shape)
        return d * 10**offset

    def expected(
        self, diameter_range: tuple[float, float], n1: Any, area_km2: float, system: str | ChronologySystem | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected detections with ``d0 <= D < d1``: ``(real, false)`` for each ``n1``.

        ``real`` counts detected true craters (by their *detected* diameter, so diameter errors
        move craters across the range's ends as they do in a catalog), ``false`` the false ones.
        """
        s = get_system(system or self.system)
        d0, d1 = (float(v) for v in diameter_range)
        n1 = np.atleast_1d(np.asarray(n1, dtype=float))
        lo, hi = (math.log10(v) for v in s.production_range)
        pad = float(np.max(np.abs(self.diameter_quantiles))) + 5.0 * _DIAMETER_SMOOTH
        L = np.linspace(max(math.log10(d0) - pad, lo), min(math.log10(d1) + pad, hi), 1200)
        dens = 10 ** s.log_shape_differential(L) * 10**L * math.log(10.0)  # per km² per log10 D at N(1) = 1
        from scipy.special import ndtr

        real = np.empty(n1.size)
        for i in range(0, n1.size, 64):  # in slices: the quantile arrays are (n1, L, 16)
            part = n1[i : i + 64]
            shifted = L[None, :, None] + self.diameter_quantile(10 ** L[None, :], part[:, None])
            # the fraction of true craters at L whose detected diameter lands in the range
            inside = (ndtr((math.log10(d1) - shifted) / _DIAMETER_SMOOTH) - ndtr((math.log10(d0) - shifted) / _DIAMETER_SMOOTH)).mean(axis=-1)
            r = self.recall(10 ** L[None, :], part[:, None])
            real[i : i + 64] = area_km2 * part * np.trapezoid(r * dens[None, :] * inside, L, axis=1)
        Lf = np.linspace(math.log10(d0), math.log10(d1), 200)
        false = area_km2 * np.trapezoid(self.false_density(10 ** Lf[None, :], n1[:, None]), Lf, axis=1)
        return real, false

    def __str__(self) -> str:
        a = self.false_coef
        mid = math.sqrt(self.d_range[0] * min(self.d_range[1], 16.0))
        young, old = self.n1_range
        return (
            f"Detector response of {self.name or 'a detector'} ({self.system}), calibrated on "
            f"{_fmt_d(self.d_range[0])}-{_fmt_d(self.d_range[1])} km, N(1) {young:.3g}-{old:.3g} per km²\n"
            f"  recall at {mid:.2g} km: {float(self.recall(mid, young)):.2f} (sparse) to {float(self.recall(mid, old)):.2f} (crowded)"
            f", measured at {len(self.recall_nodes)} crowdings\n"
            f"  false craters >= {_fmt_d(self.d_range[0])} km: "
            f"{float(self.expected((self.d_range[0], self.d_range[1]), young, 1e6)[1][0]):.0f} per 10^6 km² (sparse)"
            + (f", measured per 0.2-dex bin at {len(self.false_table[1])} crowdings (law: " if self.false_table else "; ")
            + f"log10 f = {a[0]:.3f} + {a[1]:.3f} L + {a[2]:.3f} g" + (")" if self.false_table else "") + "\n"
            f"  diameters at {mid:.2g} km: detected/true = {10**float(self.diameter_error(mid, young)[0]):.3f} "
            f"x 10^(±{float(self.diameter_error(mid, young)[1]):.3f}) (sparse) to {10**float(self.diameter_error(mid, old)[0]):.3f} "
            f"x 10^(±{float(self.diameter_error(mid, old)[1]):.3f}) (crowded)"
        )

    # ---- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what :meth:`save` writes)."""
        return {"marscraters_response": RESPONSE_VERSION, "name": self.name, "system": self.system,
                "recall_nodes": [float(v) for v in self.recall_nodes],
                "recall_params": [[float(v) for v in p] for p in self.recall_params],
                "false_coef": [float(v) for v in self.false_coef],
                "diameter_nodes": [[float(v) for v in n] for n in self.diameter_nodes],
                "diameter_quantiles": np.asarray(self.diameter_quantiles, dtype=float).tolist(),
                "d_range": [float(v) for v in self.d_range], "n1_range": [float(v) for v in self.n1_range],
                "provenance": dict(self.provenance),
                **({"false_table": {"log10_d_edges": [float(v) for v in self.false_table[0]],
                                    "log10_density": [[float(v) for v in r] for r in self.false_table[1]]}}
                   if self.false_table else {})}

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the response as JSON, atomically (a temporary file, then a rename)."""
        import json

        from ._io import atomic_path

        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DetectorResponse":
        """Read a response written by :meth:`save`; errors name the file and the fix."""
        import json

        path = Path(path)
        if not path.is_file():
            raise ChronologyError(
                f"no detector response at {path}: calibrate one with benchmarks/calibrate_response.py "
                "(marscraters.chronology.fit_response) or pass response=None to date the catalog as a complete count"
            )
        try:
            d = json.loads(path.read_text())
            if int(d.get("marscraters_response", 0)) > RESPONSE_VERSION:
                raise ChronologyError(f"{path} was written by a newer marscraters (response version "
                                      f"{d['marscraters_response']}); upgrade marscraters to read it")
            return cls(recall_nodes=tuple(float(v) for v in d["recall_nodes"]), recall_params=_tuples(d["recall_params"]),
                       false_coef=tuple(d["false_coef"]),
                       diameter_nodes=_tuples(d["diameter_nodes"]),
                       diameter_quantiles=tuple(_tuples(r) for r in d["diameter_quantiles"]),
                       d_range=tuple(d["d_range"]), n1_range=tuple(d["n1_range"]), name=str(d.get("name", "")),
                       system=str(d.get("system", "neukum-ivanov")), provenance=dict(d.get("provenance", {})),
                       false_table=((tuple(float(v) for v in d["false_table"]["log10_d_edges"]),
                                     _tuples(d["false_table"]["log10_density"])) if "false_table" in d else ()))
        except ChronologyError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ChronologyError(f"{path} is not a valid detector response ({exc}); recalibrate it with fit_response()") from exc

    # ---- calibration checks ----------------------------------------------------------------------
    def check(self, data: "pd.DataFrame", diameter_range: tuple[float, float] | None = None) -> "pd.DataFrame":
        """Observed against expected counts on calibration data (the table :func:`fit_response` takes).

        One row per age: the area, the true and detected craters in ``diameter_range`` (default
        the calibrated range up to 16 km), how many detections matched a true crater and how many
        were false, each beside the response's expectation for that age.
        """
        import pandas as pd

        s = get_system(self.system)
        rng = diameter_range or (self.d_range[0], min(self.d_range[1], 16.0))
        rows = []
        for age, g in _calibration_groups(data):
            area = _calibration_area(g)
            n1 = float(s.n1(age))
            det = g[(g["kind"] == "detection") & (g["diameter_km"] >= rng[0]) & (g["diameter_km"] < rng[1])]
            truth = g[(g["kind"] == "truth") & (g["diameter_km"] >= rng[0]) & (g["diameter_km"] < rng[1])]
            real, false = self.expected(rng, n1, area)
            rows.append({"age_ga": age, "area_km2": round(area), "truths": len(truth), "detections": len(det),
                         "expected": round(float(real[0] + false[0]), 1), "matched": int(det["matched"].sum()),
                         "expected matched": round(float(real[0]), 1), "false": int((~det["matched"].astype(bool)).sum()),
                         "expected false": round(float(false[0]), 1)})
        return pd.DataFrame(rows)

    def plot(self, data: "pd.DataFrame", *, out: Any = None, overwrite: bool = False) -> Any:
        """Recall by diameter, false craters by diameter and detections by age: data against the response."""
        import matplotlib

        if out is not None:
            fmt = _figure_format(out)  # before the plot, not after
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        s = get_system(self.system)
        fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.3))
        edges = np.geomspace(self.d_range[0], min(self.d_range[1], 32.0), 9)
        mids = np.sqrt(edges[:-1] * edges[1:])
        cmap = plt.get_cmap("viridis")
        groups = list(_calibration_groups(data))
        dd = np.geomspace(edges[0], edges[-1], 100)
        false_obs, area_all, n1s = np.zeros(mids.size), 0.0, []
        for i, (age, g) in enumerate(groups):
            color = cmap(i / max(len(groups) - 1, 1))
            n1 = float(s.n1(age))
            t = g[g["kind"] == "truth"]
            idx = np.digitize(t["diameter_km"], edges) - 1
            ok = [(idx == j).sum() >= 5 for j in range(mids.size)]
            rec = [t["matched"][idx == j].astype(bool).mean() if ok[j] else np.nan for j in range(mids.size)]
            a.semilogx(mids, rec, "o", color=color, label=f"{age:g} Ga")
            a.semilogx(dd, self.recall(dd, n1), "-", color=color)
            det = g[(g["kind"] == "detection") & ~g["matched"].astype(bool)]
            false_obs += np.histogram(det["diameter_km"], edges)[0]
            area_all += _calibration_area(g)
            n1s.append(n1)
        dens = false_obs / area_all / np.diff(np.log10(edges))
        b.loglog(mids[dens > 0], dens[dens > 0], "ko", label="all calibration surfaces")
        for n1, ls in ((min(n1s), "--"), (max(n1s), ":")):
            b.loglog(dd, self.false_density(dd, n1), ls, color="C3", label=f"response, N(1) = {n1:.2g}")
        check = self.check(data)
        c.plot(check["age_ga"], check["detections"] / check["truths"].clip(lower=1), "ko", label="detections / truths")
        c.plot(check["age_ga"], check["expected"] / check["truths"].clip(lower=1), "C3s", mfc="none", label="expected / truths")
        c.axhline(1.0, color="0.6", lw=0.8)
        a.set(xlabel="true diameter (km)", ylabel="recall", ylim=(0, 1.05), title="Recall (points: data, lines: response)")
        b.set(xlabel="detected diameter (km)", ylabel="false craters per km² per log10 D", title="False craters")
        c.set(xlabel="surface age (Ga)", ylabel="count / true count",
              title=f"Detections {_fmt_d(self.d_range[0])}-{_fmt_d(min(self.d_range[1], 16.0))} km")
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ticks = [v for v in (1, 2, 4, 8, 16, 32, 64) if edges[0] * 0.9 <= v <= edges[-1] * 1.1]
        for ax in (a, b):
            ax.set_xticks(ticks)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        for ax in (a, b, c):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"Detector response: {self.name}")
        fig.tight_layout()
        if out is not None:
            from ._io import atomic_path

            with atomic_path(out, overwrite=overwrite) as tmp:
                fig.savefig(tmp, dpi=110, format=fmt)
            plt.close(fig)
        return fig


def _calibration_groups(data: "pd.DataFrame") -> Any:
    need = {"kind", "age_ga", "diameter_km", "matched", "area_km2", "tile"}
    missing = need - set(data.columns)
    if missing:
        raise ChronologyError(f"calibration data lacks columns {sorted(missing)}; build it as benchmarks/calibrate_response.py does")
    return data.groupby("age_ga", sort=True)


def _calibration_area(g: "pd.DataFrame") -> float:
    return float(g.drop_duplicates("tile")["area_km2"].sum())


def fit_response(
    data: "pd.DataFrame", *, name: str = "", d_min: float = 1.0, system: str | ChronologySystem = "neukum-ivanov",
    provenance: Mapping[str, Any] | None = None,
) -> DetectorResponse:
    """Fit a :class:`DetectorResponse` to detections and true craters on surfaces of known age.

    Parameters
    ----------
    data
        One row per crater with columns ``kind`` (``"truth"`` or ``"detection"``), ``age_ga``
        (the surface's true age), ``tile`` and ``area_km2`` (each tile's area, repeated on its
        rows), ``diameter_km``, ``matched`` (a truth was found / a detection matches a truth) and,
        for detections, ``truth_diameter_km`` (the matched true diameter, NaN if false).
    name
        Detector name to record.
    d_min
        Smallest diameter (km) to calibrate; ages are then refused below it.
    system
        Chronology system of the surfaces' ages.
    provenance
        Extra record (seeds, model, date) stored with the response.

    Returns
    -------
    DetectorResponse
        Recall fitted by maximum binomial likelihood over the true craters >= 0.8 ``d_min``,
        false craters by maximum Poisson-process likelihood over the unmatched detections >=
        ``d_min``, and the diameter error as kernel-weighted quantiles of the matched pairs on
        a grid of true diameter and crowding.
    """
    from scipy.optimize import minimize

    s = get_system(system)
    groups = list(_calibration_groups(data))
    if len(groups) < 2:
        raise ChronologyError("a detector response needs calibration surfaces of at least two ages (crowding is fitted)")
    truths, falses, areas, n1_all = [], [], [], []
    for age, g in groups:
        n1 = float(s.n1(age))
        t = g[(g["kind"] == "truth") & (g["diameter_km"] >= 0.8 * d_min)]
        truths.append((np.log10(t["diameter_km"].to_numpy(float)), t["matched"].to_numpy(bool)))
        f = g[(g["kind"] == "detection") & (g["diameter_km"] >= d_min) & ~g["matched"].astype(bool)]
        falses.append((np.log10(f["diameter_km"].to_numpy(float)), float(_crowding(n1)), _calibration_area(g)))
        areas.append(_calibration_area(g))
        n1_all.append(n1)
    L = np.concatenate([t[0] for t in truths])
    y = np.concatenate([t[1] for t in truths]).astype(float)
    if L.size < 20 or y.sum() < 5 or (1 - y).sum() < 5:
        raise ChronologyError(f"too few true craters >= {0.8 * d_min:g} km (found {L.size}) to fit a recall: calibrate on larger areas")

    # the recall of each calibration surface: a plateau times a logistic in log10 D, by maximum
    # binomial likelihood over its true craters
    def nll_recall(p: np.ndarray, L: np.ndarray, y: np.ndarray) -> float:
        r = np.clip(_logistic(p[0]) * _logistic(p[1] + p[2] * L), 1e-12, 1.0 - 1e-12)
        return -float(np.sum(y * np.log(r) + (1.0 - y) * np.log1p(-r)))

    recall_nodes, recall_params = [], []
    for (Lt, yt), n1 in zip(truths, n1_all):
        if Lt.size < 10:
            raise ChronologyError(f"only {Lt.size} true craters >= {0.8 * d_min:g} km on the {s.age(n1):.2g} Ga surface: "
                                  "calibrate on larger areas")
        starts = (np.array([2.0, -5.0, 20.0]), np.array([1.0, 0.0, 5.0]), np.array([3.0, -2.0, 2.0]))
        fits = [minimize(nll_recall, x0, args=(Lt, yt.astype(float)), method="Nelder-Mead",
                         options={"maxiter": 20000, "xatol": 1e-7, "fatol": 1e-7}) for x0 in starts]
        recall_nodes.append(float(_crowding(n1)))
        # bounded slope: a surface whose small craters are all found still has a finite one
        q, a, b = min(fits, key=lambda r: r.fun).x
        recall_params.append((float(np.clip(q, -10, 10)), float(np.clip(a, -200, 200)), float(np.clip(b, -200, 200))))
    d_max = float(10 ** L.max())
    lmin, lmax = math.log10(d_min), math.log10(max(d_max, d_min * 2))
    grid = np.linspace(lmin, lmax, 200)

    def nll_false(a: np.ndarray) -> float:
        total = 0.0
        for Lf, g, area in falses:
            log10f = a[0] + a[1] * Lf + a[2] * g
            # Poisson process in log10 D: - sum log f + area * integral f
            integral = np.trapezoid(10 ** (a[0] + a[1] * grid + a[2] * g), grid)
            total += area * integral - float(np.sum(log10f)) * math.log(10.0)
        return total

    n_false = sum(len(f[0]) for f in falses)
    if n_false < 5:
        raise ChronologyError(f"only {n_false} false detections >= {d_min:g} km: calibrate on larger areas")
    start = np.array([math.log10(n_false / sum(areas) / (lmax - lmin)), -2.0, 0.0])
    a_fit = minimize(nll_false, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 4000}).x
    # select pairs on the *true* diameter: selecting on the detected one favours overestimates
    det = data[(data["kind"] == "detection") & data["matched"].astype(bool) & (data["truth_diameter_km"] >= 0.8 * d_min)]
    ratio = np.log10(det["diameter_km"].to_numpy(float) / det["truth_diameter_km"].to_numpy(float))
    g_pair = _crowding(s.n1(det["age_ga"].to_numpy(float)))
    ok = np.isfinite(ratio)
    ratio, g_pair = ratio[ok], g_pair[ok]
    if ratio.size < 10:
        raise ChronologyError(f"only {ratio.size} matched detections carry a true diameter: calibrate on larger areas")
    # kernel-weighted quantiles on a grid of true diameter and crowding: free to follow the
    # circle finder's skewed, size-dependent errors (no functional form fits them)
    L_pair = np.log10(det["truth_diameter_km"].to_numpy(float))[ok]
    # one g node per calibration age, each (nearly) from its own pairs; L nodes every ~0.1 dex
    L_top = min(float(L_pair.max()), math.log10(64.0))
    nodes_L = np.linspace(math.log10(0.8 * d_min), L_top, max(2, int(math.ceil((L_top - math.log10(0.8 * d_min)) / 0.1)) + 1))
    nodes_g = np.unique(np.round(_crowding(np.asarray(n1_all)), 6))
    h_L = 0.08
    h_g = 0.3 * float(np.diff(nodes_g).min()) if nodes_g.size > 1 else 1.0
    quantiles = np.zeros((nodes_L.size, nodes_g.size, DIAMETER_PROBS.size))
    for i, Li in enumerate(nodes_L):
        for j, gj in enumerate(nodes_g):
            w = np.exp(-0.5 * (((L_pair - Li) / h_L) ** 2 + ((g_pair - gj) / h_g) ** 2))
            quantiles[i, j] = _weighted_quantiles(ratio, w, DIAMETER_PROBS)
    # the false craters measured on each surface, per 0.2-dex bin: their sizes follow no simple
    # law (a verifier keeps a bump of big false circles on sparse surfaces), so the response
    # keeps the table, shrunk towards the fitted law by two pseudo-craters per bin (a bin with
    # few craters says little, and an empty one would have no logarithm)
    n_bins = max(1, int(math.ceil((lmax - lmin) / 0.2)))
    edges = np.linspace(lmin, lmin + 0.2 * n_bins, n_bins + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    table = []
    for Lf, g, area in falses:
        law = 10 ** (a_fit[0] + a_fit[1] * centres + a_fit[2] * g)
        expected_law = law * area * 0.2
        table.append(np.log10(law * (np.histogram(Lf, edges)[0] + 2.0) / (expected_law + 2.0)))
    record = {"ages_ga": [float(a) for a, _ in groups], "area_km2": [round(a) for a in areas],
              "truths": int(L.size), "false_detections": int(n_false), "matched_pairs": int(ratio.size), **dict(provenance or {})}
    return DetectorResponse(
        recall_nodes=tuple(recall_nodes), recall_params=tuple(recall_params), false_coef=tuple(float(v) for v in a_fit),
        diameter_nodes=(tuple(float(v) for v in nodes_L), tuple(float(v) for v in nodes_g)),
        diameter_quantiles=tuple(_tuples(r) for r in quantiles.round(6)), d_range=(float(d_min), d_max), n1_range=(min(n1_all), max(n1_all)), name=name,
        system=s.key, provenance=record,
        false_table=(tuple(float(v) for v in edges.round(6)), tuple(tuple(float(v) for v in r.round(6)) for r in table)),
    )


def load_response(response: Any) -> DetectorResponse:
    """A :class:`DetectorResponse` from itself, a JSON path, or ``"shipped"`` (the shipped model's)."""
    if isinstance(response, DetectorResponse):
        return response
    if isinstance(response, str) and response == "shipped":
        from .model import default_weights_path

        return DetectorResponse.load(default_weights_path().with_suffix(".response.json"))
    if isinstance(response, (str, os.PathLike)):
        return DetectorResponse.load(response)
    raise ChronologyError(f"response must be a DetectorResponse, a response JSON path or 'shipped', got {type(response).__name__}")


def model_age(
    catalog: Any,
    *,
    diameter_range: tuple[float, float],
    area_km2: float | None = None,
    area: Any = None,
    system: str | ChronologySystem = "neukum-ivanov",
    method: str = "poisson",
    bins: str = "pseudo-log",
    snap: bool = True,
    response: Any = None,
) -> ModelAge:
    """Model age of a counted surface from its craters in a diameter range.

    Two methods, both as in craterstats 3.2.1:

    ``"poisson"`` (default; Michael, Kneissl & Neesemann 2016)
        The number k of craters with ``dmin <= D < dmax`` is Poisson with mean
        ``area * N1 * [P(dmin) - P(dmax)]`` (P: the production function normalised to N(1)).  The
        likelihood of k is tabulated over N(1), turned into a distribution over age through the
        chronology function and normalised; the age is its median and the bounds its 15.9/84.1 %
        percentiles.  This handles small counts without binning.
    ``"cumulative"``
        The production function is fitted to the cumulative densities of the bins (lower edges)
        whose centre lies in the range, in log space with weights ``N(>=D)`` as craterstats does,
        and the 1σ bounds come from the ``1/sqrt(N)`` error of the smallest bin.

    Parameters
    ----------
    catalog
        A catalog GeoDataFrame (``diameter_km``, optional ``fraction``), an array of diameters (km)
        or a catalog file (craterstats ``.diam``/``.scc`` files carry their count area).
    diameter_range
        ``(dmin, dmax)`` in km: the range where the count is complete and unaffected by resurfacing.
    area_km2
        Count area, km².  Default: from ``area``, else the catalog's ``attrs["area_km2"]`` (what
        :func:`~marscraters.assemble.catalog_from_probability` records: its mosaic's footprint;
        a GeoPackage from ``marscraters catalog`` carries it).  Given with ``area``, it replaces
        the polygon's measured area (e.g. the polygon less ground excluded from the count), and
        the polygon still chooses the craters.
    area
        Count polygon(s) in any Mars CRS (shapely geometry, GeoSeries/GeoDataFrame, vector file,
        or a mosaic or Zarr cube, meaning its footprint; see :func:`count_area_km2`).  Its area
        is measured on the Mars sphere and, if the catalog has positions (``lon``/``lat``
        columns, else point geometry in any Mars CRS), only craters whose centre lies inside it
        or on its edge are counted.  Craters without a position are then refused; a count with
        no positions at all (a bare array, most craterstats files) uses the polygon for its area
        only, with a warning.
    system
        Chronology system: ``"neukum-ivanov"`` (default), ``"ivanov"``, ``"hartmann"`` or a
        craterstats name (see :data:`SYSTEMS`).
    method
        ``"poisson"`` or ``"cumulative"``.
    bins
        Binning for the cumulative fit and for snapping (see :data:`BINNINGS`).
    snap
        Widen the range to bin boundaries as craterstats does by default (a range given on
        boundaries, such as 0.2-0.7 km, is unchanged).
    response
        For an *automatic* catalog: the detector's :class:`DetectorResponse` (an object, its
        JSON file, or ``"shipped"`` for the shipped model's).  The Poisson likelihood then
        compares the count with the detections expected at each age -- true craters times the
        detector's recall (which falls as the surface crowds), shifted by its diameter error,
        plus its false craters -- instead of treating the catalog as complete.  Poisson method
        only; the range must start at or above the smallest calibrated diameter (``snap`` does
        not widen it below that).  None (default) dates the catalog as a complete count, as
        craterstats does.  The shipped response is calibrated on synthetic terrain only and is not
        yet shown to help on real imagery (on real THEMIS crops it moved the detections' age from
        the reference's 3.80 Ga to 3.93 Ga): use it as an experiment, not by default.

    Returns
    -------
    ModelAge

    Raises
    ------
    ChronologyError
        Empty catalog, no craters in the range, a range outside the production function, a
        missing, zero or invalid count area, an unknown system, craters without a position
        beside a count polygon, or (Poisson method) a count denser than the chronology's 5 Ga
        isochron, which no age on its 0-5 Ga grid fits (most often an area or diameters in the
        wrong unit, or a saturated count).
    NotMarsCRSError, MissingCRSError
        A count polygon, or crater points, in an Earth CRS or without one.

    Warns
    -----
    UserWarning
        An age older than Mars (4.5 Ga; usually a unit slip in the area or the diameters), or a
        count polygon given with a catalog that has no positions.

    Examples
    --------
    >>> d = sample_diameters(3.5, 2e5, (1.0, 16.0), rng=1)
    >>> result = model_age(d, area_km2=2e5, diameter_range=(1.0, 16.0))
    >>> abs(result.age - 3.5) < 0.05, result.epoch
    (True, 'Late Hesperian')
    """
    s = get_system(system)
    if method not in ("poisson", "cumulative"):
        raise ChronologyError(f"method must be 'poisson' or 'cumulative', got {method!r}")
    if bins not in BINNINGS:
        raise ChronologyError(f"unknown binning {bins!r}: use one of {', '.join(BINNINGS)}")
    rng = _check_range(diameter_range, s)
    if response is not None:
        response = load_response(response)
        if method != "poisson":
            raise ChronologyError("a detector response corrects the Poisson likelihood only: use method='poisson'")
        if get_system(response.system).key != s.key:
            raise ChronologyError(
                f"the detector response of {response.name or 'this detector'} was calibrated in the {response.system} "
                f"system (its crowding is measured in that system's N(1)): use system={response.system!r}"
            )
    c = _count(catalog, area_km2, area)
    if snap:
        asked = rng
        rng = _snap(rng, c.diameters, bins)
        if response is not None and asked[0] >= response.d_range[0] * 0.999:
            # never widen a range below the diameters the response was calibrated on
            rng = (max(rng[0], response.d_range[0]), rng[1])
    lo, hi = s.production_range
    rng = (max(rng[0], lo), min(rng[1], hi))
    if response is not None and rng[0] < response.d_range[0] * 0.999:
        raise ChronologyError(
            f"the detector response of {response.name or 'this detector'} is calibrated from "
            f"{_fmt_d(response.d_range[0])} km, but the range starts at {_fmt_d(rng[0])} km: raise dmin to "
            f"{_fmt_d(response.d_range[0])} km or more (snap=False keeps a range as given)"
        )
    d, w = c.diameters, c.fractions
    in_range = (d >= rng[0]) & (d < rng[1])
    if not in_range.any():
        raise ChronologyError(
            f"no crater of {c.source} lies in {_fmt_d(rng[0])}-{_fmt_d(rng[1])} km (its craters span "
            f"{d.min():.3g}-{d.max():.3g} km): choose a diameter range that holds craters."
        )
    likelihood = None
    expected_false = math.nan
    if method == "poisson":
        k = int(in_range.sum())
        if response is None:
            # the expected count is proportional to N(1)
            shape = 10 ** s.log_shape(np.log10(np.asarray(rng)))
            lam_1ga = s.n1(1.0) * (shape[0] - shape[1]) * c.area_km2
            x, ts, pdf, cdf = _poisson_pdf(k, s, lambda x: lam_1ga * 10**x)
        else:
            # the detections the response expects (see DetectorResponse): smooth in log N(1), so
            # computed on a coarse grid and interpolated
            xc = np.linspace(-10.0, 5.0, 601)
            real, false = response.expected(rng, s.n1(1.0) * 10**xc, c.area_km2, s)
            x, ts, pdf, cdf = _poisson_pdf(k, s, lambda x: np.exp(np.interp(x, xc, np.log(real + false))))
        if _beyond_grid(ts, pdf):
            raise _too_dense(c.source, k, rng, c.area_km2, s)
        t_med, t_lo, t_hi = (float(v) for v in np.interp([0.5, _G1, 1.0 - _G1], cdf, ts))
        if response is not None:
            expected_false = float(np.interp(t_med, ts, np.interp(x, xc, false)))
            n1_lo, n1_hi = response.n1_range
            if not (0.5 * n1_lo <= float(s.n1(t_med)) <= 2.0 * n1_hi):
                import warnings

                # beyond the calibrated crowdings the response is held at its last surface, and
                # the expected count need not grow with age: the likelihood can have two peaks
                warnings.warn(
                    f"the age {t_med:.3g} Ga lies outside the crowdings the detector response was calibrated on "
                    f"(N(1) {n1_lo:.2g}-{n1_hi:.2g} per km²): the corrected age is an extrapolation; check "
                    "ModelAge.likelihood for a second peak", UserWarning, stacklevel=2)
        n = float(k)
        n1s = s.n1(np.array([t_med, t_lo, t_hi]))
        import pandas as pd

        keep = np.r_[True, np.diff(ts) > 0]
        likelihood = pd.DataFrame({"age_ga": ts[keep], "pdf": pdf[keep], "cdf": cdf[keep]})
    else:
        b = _bin_count(d, w, bins)
        sel = (b["n"] > 0) & (rng[0] < b["d_mean"]) & (b["d_mean"] < rng[1])
        if not sel.any():
            raise ChronologyError(
                f"no {bins} bin centre of {c.source} lies inside {_fmt_d(rng[0])}-{_fmt_d(rng[1])} km: "
                "widen the diameter range or use method='poisson'."
            )
        x, y = b["d_min"][sel], b["ncum"][sel] / c.area_km2
        err = y / np.sqrt(b["ncum_event"][sel])
        # weighted least squares of log y = a0 + shape(log D) with weights y, craterstats' sigma = 1/sqrt(y)
        a0 = float(np.sum(y * (np.log10(y) - s.log_shape(np.log10(x)))) / np.sum(y))
        with np.errstate(divide="ignore", invalid="ignore"):
            da_lo = np.log10(y[0]) - np.log10(y[0] - 0.98 * err[0])
            da_hi = np.log10(y[0] + 0.98 * err[0]) - np.log10(y[0])
        n1s = 10 ** np.array([a0, a0 - da_lo, a0 + da_hi])
        t_med, t_lo, t_hi = (float(v) for v in s.age(n1s))
        n = float(b["n"][sel].sum())
    if not math.isfinite(t_med):
        # never an age text of "nan": no age fits such a count
        raise _too_dense(c.source, n, rng, c.area_km2, s)
    if t_med > _MARS_AGE_GA:
        _warn_older_than_mars(t_med, c.source, c.area_km2)
    return ModelAge(
        age=t_med, lower=t_lo, upper=t_hi, n=n, n1=float(n1s[0]), n1_lower=float(n1s[1]), n1_upper=float(n1s[2]),
        epoch=epoch_of(t_med, s), system=s.key, method=method, diameter_range=(float(rng[0]), float(rng[1])),
        area_km2=float(c.area_km2), source=c.source, likelihood=likelihood, diameters=d.copy(), fractions=w.copy(),
        response="" if response is None else (response.name or "unnamed detector"), expected_false=expected_false,
    )


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

_DEFAULT_ISOCHRONS = (0.01, 0.1, 1.0, 3.0, 4.0)
#: Pale fills of the Michael (2013) epochs, youngest first: one hue per period (Amazonian orange,
#: Hesperian green, Noachian blue), darker with age within it, so neighbours differ in hue or in
#: clearly different lightness.
_EPOCH_COLOURS = ("#fff8ea", "#fde7c2", "#f9d49d", "#eef8ea", "#d3ecc9", "#eef4fc", "#d7e5f6", "#bdd3ef")


def _figure_format(path: str | os.PathLike) -> str:
    """The matplotlib format a figure file is written in: its extension's (PNG without one).

    Parameters
    ----------
    path
        The figure file.

    Returns
    -------
    str
        A format ``Figure.savefig`` writes (``"png"``, ``"pdf"``, ``"svg"``, ...).

    Raises
    ------
    InvalidArgumentError
        If the extension is not an image format matplotlib writes (``.txt``, ``.gpkg``...).

    Examples
    --------
    >>> _figure_format("csfd.PDF"), _figure_format("csfd")
    ('pdf', 'png')
    """
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    supported = FigureCanvasBase.get_supported_filetypes()
    if suffix not in supported:
        raise InvalidArgumentError(
            f"cannot write the figure {Path(path).name}: .{suffix} is not an image format. Name it .png, .pdf "
            f"or .svg (also {', '.join('.' + k for k in sorted(supported) if k not in ('png', 'pdf', 'svg'))})."
        )
    return suffix


def _isochron(kind: str, d: np.ndarray, n1: float, s: ChronologySystem) -> np.ndarray:
    if kind == "cumulative":
        return n1 * 10 ** s.log_shape(np.log10(d))
    f = n1 * 10 ** s.log_shape_differential(np.log10(d))
    return f if kind == "differential" else f * d**3


def _plot_response(fit: ModelAge, response: Any) -> DetectorResponse | None:
    """The detector response ``fit`` was dated through, to draw it (None for a plain fit, or when
    it cannot be found: the fit is then drawn as an isochron)."""
    if not fit.response:
        return None
    if response is not None:
        return load_response(response)
    try:
        shipped = load_response("shipped")
    except (MarsCratersError, OSError):
        return None
    return shipped if shipped.name == fit.response else None


#: Axis labels of CSFD plots: the diameter, and the density of each ``kind`` of :func:`csfd`
#: (the map browser's CSFD panel uses them too).
CSFD_AXIS_LABELS: dict[str, str] = {
    "diameter": "Crater diameter, D [km]",
    "cumulative": "Cumulative crater density, N(≥D) [km⁻²]",
    "differential": "Differential crater density [km⁻³]",
    "R": "Relative crater density, R",
}


def _label_isochrons(ax: Any, dd: np.ndarray, iso_lines: Sequence[tuple[float, np.ndarray]],
                     ylim: tuple[float, float]) -> None:
    """Name each reference isochron (``"100 Ma"``, ``"3 Ga"``) where it enters the plot.

    An isochron that crosses the top of the axes is named just below that crossing; one that
    stays below it (a young surface) at the left edge, where it is highest.  Names that would
    overlap on the top row are moved down a row, so each stays readable and beside its line.
    """
    top = math.log10(ylim[1])
    rows: list[list[tuple[float, float]]] = []  # per row, the spans (axes fraction) taken
    lx0, lx1 = math.log10(dd[0]), math.log10(dd[-1])
    near_top = 10 ** (top - 0.1 * (top - math.log10(ylim[0])))
    for t, iso in sorted(iso_lines, key=lambda p: -p[0]):
        label = f"{t:g} Ga" if t >= 1 else f"{t * 1e3:g} Ma"
        above = np.flatnonzero(iso >= ylim[1])
        if (above.size and above[-1] < dd.size - 1) or (not above.size and iso[0] >= near_top):
            # where it leaves the top (isochrons fall with diameter), or its left end when that is
            # just below the top: on the top rows
            x = float(dd[above[-1] + 1]) if above.size else float(dd[0])
            frac = (math.log10(x) - lx0) / (lx1 - lx0)
            width = 0.013 * len(label) + 0.01  # about 7-pt characters on a 6-inch figure
            row = next((k for k, spans in enumerate(rows) if all(frac > b or frac + width < a for a, b in spans)),
                       len(rows))
            if row == len(rows):
                rows.append([])
            rows[row].append((frac, frac + width))
            ax.annotate(label, (x, 10 ** (top - 0.035 * (row + 1) * (top - math.log10(ylim[0])))),
                        xytext=(2, 0), textcoords="offset points", fontsize=7, color="0.3", ha="left",
                        va="center", zorder=5)
        else:
            # where it first shows from the left (the left edge, unless it rises into view later, as
            # young isochrons do on an R plot)
            shown = np.flatnonzero((iso > ylim[0]) & (iso < ylim[1]))
            if shown.size:
                j = int(shown[0])
                ax.annotate(label, (dd[j], float(iso[j])), xytext=(3, 4), textcoords="offset points", fontsize=7,
                            color="0.3", ha="left" if j < 0.8 * dd.size else "right", va="bottom", zorder=5)


def plot_csfd(
    catalog: Any,
    area_km2: float | None = None,
    *,
    area: Any = None,
    fits: Sequence[ModelAge] = (),
    kind: str = "cumulative",
    bins: str = "pseudo-log",
    system: str | ChronologySystem = "neukum-ivanov",
    isochrons: Sequence[float] = _DEFAULT_ISOCHRONS,
    epochs: bool = True,
    title: str | None = None,
    ax: Any = None,
    out: Any = None,
    overwrite: bool = False,
    dpi: int = 150,
    response: Any = None,
) -> Any:
    """Plot a crater size-frequency distribution with isochrons and model-age fits.

    Log-log axes of diameter (km) against density, Poisson error bars, thin grey isochrons with
    their ages, the Michael (2013) Mars epochs as pale bands (one hue per period, named in a key;
    craterstats draws them grey), and, for each fit, its isochron over the fitted range with the
    age.  The counts and fits are keyed below the axes.

    A fit made through a detector response (``model_age(..., response=...)``) dates the
    detections against the detections *expected* at each age, which are fewer than the craters
    the surface carries (the detector misses some).  On a cumulative plot it is drawn as that
    expected curve, which runs through the points it was fitted to, with the isochron of the
    same age (the surface's full crater population) as a thin line above it.

    Parameters
    ----------
    catalog, area_km2, area, bins, kind, system
        As for :func:`csfd`.
    fits
        Model ages to draw (their system should be ``system``).
    isochrons
        Ages (Ga) of the reference isochrons.
    epochs
        Shade the Mars epochs.
    title
        Axes title (default: the count's source).
    ax
        A matplotlib Axes to draw on; by default a new figure (no pyplot, so it works headless).
    out
        Write the figure to this file (atomically; see ``overwrite``), in the format of its extension:
        ``.png`` (also without an extension), ``.pdf``, ``.svg`` or another that matplotlib writes.
    overwrite
        Replace an existing ``out``.
    dpi
        Resolution of ``out``.
    response
        The :class:`DetectorResponse` (or ``"shipped"``, or a JSON path) of the fits made through
        one; by default the shipped model's when a fit names it.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> result = model_age("Pickering.scc", diameter_range=(0.2, 0.7))  # doctest: +SKIP
    >>> plot_csfd("Pickering.scc", fits=[result], out="pickering.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    from ._io import atomic_path

    fmt = _figure_format(out) if out is not None else None  # before the plot, not after
    s = get_system(system)
    table = csfd(catalog, area_km2, area=area, bins=bins, kind=kind, system=s)
    if ax is None:
        fig = Figure(figsize=(6.0, 6.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    x, y = table["diameter"].to_numpy(), table["density"].to_numpy()
    lo_d, hi_d = s.production_range
    dx = (max(x.min() / 3.0, lo_d), min(x.max() * 3.0, hi_d))
    dd = np.geomspace(dx[0], dx[1], 300)
    epoch_patches = []
    if epochs:
        from matplotlib.patches import Patch

        # each epoch between its two bounding isochrons, one pale hue per period (the first and
        # last epochs are open-ended: to the bottom and the top of the plot)
        for (name, young, old), colour in zip(epoch_boundaries(s), _EPOCH_COLOURS):
            lo = _isochron(kind, dd, s.n1(young), s) if young > 0 else np.full(dd.shape, 1e-30)
            hi = _isochron(kind, dd, s.n1(old), s) if math.isfinite(old) else np.full(dd.shape, 1e30)
            ax.fill_between(dd, lo, hi, color=colour, lw=0, zorder=0)
            epoch_patches.append(Patch(facecolor=colour, edgecolor="0.8", lw=0.3, label=name))
    iso_lines = [(t, _isochron(kind, dd, float(s.n1(t)), s)) for t in isochrons]
    for k, (_, iso) in enumerate(iso_lines):
        ax.plot(dd, iso, color="0.55", lw=0.6, zorder=1,
                label=None if k else f"isochrons ({s.name.removeprefix('Mars, ')}): the crater density of a "
                "surface of the labelled age")
    ax.errorbar(x, y, yerr=[y - table["lower"].to_numpy(), table["upper"].to_numpy() - y], fmt="s", ms=3.5,
                mfc="none", mec="k", ecolor="0.3", elinewidth=0.7, lw=0, zorder=3,
                label=f"{_n_craters(int(table['n_event'].sum()))}, {_fmt_area(table.attrs['area_km2'])} km²")
    colours = ("#a00000", "#0050c8", "#008200", "#8748bd")
    for i, fit in enumerate(fits):
        fs = get_system(fit.system)
        r = np.geomspace(fit.diameter_range[0] * 0.99, fit.diameter_range[1] * 1.01, 100)
        col = colours[i % len(colours)]
        # (on a second line: the key below the axes is as wide as the figure)
        what = (f"\n{_n_craters(fit.n)} of {_fmt_d(fit.diameter_range[0])}-"
                f"{_fmt_d(fit.diameter_range[1])} km, {fit.method}")
        resp = _plot_response(fit, response) if kind == "cumulative" else None
        if resp is None:
            ax.plot(dd, _isochron(kind, dd, fit.n1, fs), color=col, lw=0.6, ls="--", zorder=2)
            ax.plot(r, _isochron(kind, r, fit.n1, fs), color=col, lw=2.0, zorder=4,
                    label=f"{fit.age_text()}, {fit.epoch}: isochron fitted to the count{what}")
            continue
        # dated against the detections expected at each age: that curve goes through the points;
        # the surface's full crater population at that age (its isochron) lies above it
        ax.plot(dd, _isochron(kind, dd, fit.n1, fs), color=col, lw=0.8, ls=":", zorder=2,
                label=f"all the craters a {format_age(fit.age)} surface carries (its isochron)")
        # expected detections in [D, d1) (what the fit compares), plus the isochron's craters >= d1,
        # as the points' cumulative counts hold every crater above D
        d0, d1 = fit.diameter_range
        rr = np.geomspace(d0, d1, 24)[:-1]
        above = float(_isochron(kind, np.array([d1]), fit.n1, fs)[0])
        found = [sum(resp.expected((d, d1), fit.n1, 1.0, system=fs)).item() + above for d in rr]
        ax.plot(rr, found, color=col, lw=2.0, zorder=4,
                label=f"{fit.age_text()}, {fit.epoch}, through the detector response:\nthe detections expected "
                f"at that age (the detector misses some craters){what}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(dd[0], dd[-1])
    # diameters as plain numbers (0.5, 1, 10 km), and the minor ticks named too when the axis spans
    # less than about a decade (else it would show one or no number)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    few = math.log10(dd[-1] / dd[0]) < 1.3
    # (by the first significant digit: 0.2 and 0.5 km as well as 2 and 5)
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if few and f"{v:.0e}"[0] in "1235" else ""))
    # (a list: one crater's count has one point and no other lower bound)
    ymin = max(min([y.min(), *(t - e for t, e in zip(y, table["error"]) if t - e > 0)]) / 10, 1e-12)
    ax.set_ylim(ymin, y.max() * 10)
    _label_isochrons(ax, dd, iso_lines, (ymin, y.max() * 10))
    ax.set_xlabel(CSFD_AXIS_LABELS["diameter"])
    ax.set_ylabel(CSFD_AXIS_LABELS[kind])
    if title is None:
        # a file's name, not its whole path
        source = str(table.attrs.get("source", ""))
        title = Path(source).name if os.sep in source or "/" in source else source
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", lw=0.3, color="0.8")
    if epoch_patches:
        # the epochs' key in the bottom left corner: below the young isochrons, where counts
        # (dense at small diameters) have no points
        epochs_key = ax.legend(handles=epoch_patches, loc="lower left", ncols=2, fontsize=6,
                               title=f"Mars epochs ({MARS_EPOCHS['name'].removeprefix('Mars, ')})",
                               title_fontsize=6.5, frameon=True, framealpha=0.85, edgecolor="0.8",
                               handlelength=1.2, columnspacing=0.8, labelspacing=0.25)
        ax.add_artist(epochs_key)
    # the counts and fits below the axes: inside, they would cover the smallest craters' points
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.09), frameon=False)
    if out is not None:
        with atomic_path(out, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
    return fig


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_age_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``age`` subcommand to the ``marscraters`` command's subparsers.

    ``marscraters age CATALOG [--area AREA.gpkg|cube.zarr | --area-km2 X] --range DMIN DMAX
    [--system SYSTEM] [--method poisson|cumulative] [--response shipped|R.json] [--plot out.png]
    [--overwrite]``
    """
    s = subparsers.add_parser(
        "age",
        help="crater-count model age of a surface (Poisson or cumulative fit, Mars chronology systems)",
        description="Date a counted surface from its craters in a diameter range: the Poisson likelihood "
        "method of Michael et al. (2016) or a cumulative fit, as in craterstats. The count area is the one "
        "the catalog records (a GeoPackage from `marscraters catalog`: its mosaic's footprint; a "
        "craterstats .diam/.scc file: its area), unless --area or --area-km2 gives another.",
    )
    s.add_argument("catalog", help="crater catalog: a GeoPackage from `marscraters catalog` or a craterstats "
                   ".diam/.scc (these carry their count area), or any catalog with --area/--area-km2")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--area", help="count polygon(s): GeoPackage/GeoJSON/Shapefile in a Mars CRS, or a mosaic "
                   "cube.zarr (its footprint); only craters inside it are counted")
    g.add_argument("--area-km2", type=float, help="count area in km² (default: the one the catalog records)")
    s.add_argument("--range", nargs=2, type=float, required=True, metavar=("DMIN", "DMAX"), dest="diameter_range",
                   help="diameter range in km, e.g. 0.2 0.7")
    s.add_argument("--system", default="neukum-ivanov",
                   help=f"chronology system: {', '.join(SYSTEMS)} (default neukum-ivanov) or a craterstats name")
    s.add_argument("--method", default="poisson", choices=["poisson", "cumulative"])
    s.add_argument("--bins", default="pseudo-log", choices=list(BINNINGS), help="binning of the fit and plot")
    s.add_argument("--no-snap", dest="snap", action="store_false",
                   help="use the range as given (default: widen it to bin boundaries, like craterstats)")
    s.add_argument("--errors", choices=["raise", "drop"], default="raise",
                   help="impossible catalog rows (a missing value, |lat| > 90, a diameter <= 0 or over 4000 km "
                        "(a column in metres)): fail (default) or drop them with a warning")
    s.add_argument("--response", help="date an automatic catalog through its detector's response (recall, false "
                   "craters, diameter error): a response JSON, or 'shipped' for the shipped model's (calibrated on "
                   "synthetic terrain only; on real ground measured on old, Hesperian THEMIS surfaces only: treat "
                   "a corrected age as a check; default: none)")
    s.add_argument("--plot", help="write the CSFD with isochrons and the fit to this figure, in its extension's "
                   "format: .png, .pdf, .svg...")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    s.set_defaults(func=run_age_cli)
    return s


def run_age_cli(args: argparse.Namespace) -> int:
    """Run ``marscraters age`` from parsed arguments; prints the model age."""
    from ._io import check_output
    from .catalog import read_catalog

    if args.plot:
        check_output(args.plot, args.overwrite, inputs=(args.catalog, args.area))  # before the work, not after
        _figure_format(args.plot)  # a .txt or .gpkg --plot is refused before the work too
    cat = read_catalog(args.catalog, errors=args.errors)
    if args.area_km2 is not None:
        where = "given by --area-km2"
    elif args.area is not None:
        where = f"measured on --area {args.area}"
    elif cat.attrs.get("area_km2") is not None:
        origin = cat.attrs.get("area_source")
        where = f"recorded in {args.catalog}" + (f" ({origin})" if origin else "")
    else:
        raise ChronologyError(
            f"{args.catalog} records no count area: pass --area-km2 KM2, or --area with the count polygon "
            "(GeoPackage/GeoJSON/Shapefile) or the mosaic cube.zarr the craters were found on. Catalogs "
            "written by `marscraters catalog` record their mosaic's area."
        )
    result = model_age(cat, diameter_range=tuple(args.diameter_range), area_km2=args.area_km2, area=args.area,
                       system=args.system, method=args.method, bins=args.bins, snap=args.snap,
                       response=args.response)
    print(f"{args.catalog}: count area {_fmt_area(result.area_km2)} km², {where}")
    print(result)
    if args.plot:
        result.plot(out=args.plot, overwrite=args.overwrite, bins=args.bins, title=Path(args.catalog).name)
        print(f"wrote {args.plot}")
    return 0
