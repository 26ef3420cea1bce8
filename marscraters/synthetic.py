"""Synthetic THEMIS-like cratered Mars surfaces of known age, and the paper's grey dots.

A surface of model age ``T`` is built the way crater chronology assumes real ones were:

1. **Population.** Crater diameters are drawn from the production function of a Mars chronology
   system (:func:`marscraters.chronology.cumulative_density`): the number of craters of
   ``dmin_km <= D < dmax_km`` centred in the bounds is Poisson with mean
   ``(N(dmin) - N(dmax)) * area`` (area on the IAU 2015 Mars sphere), and the diameters follow the
   cumulative curve (inverse-CDF sampling, interpolated in log-log).  Centres are uniform on the
   sphere.
2. **Time order.** Each crater forms at a time ``t`` before present drawn uniformly in N(1):
   ``N1(t) / N1(T)`` is uniform, so old surfaces get most of their craters early (the
   exponential branch of the chronology function).  Later craters overprint earlier ones: their
   interior replaces the older terrain and their ejecta drape it.
3. **Degradation.** Topography diffuses with a constant diffusivity ``kappa`` (km² per Ga), so a
   crater formed ``t`` ago has been smoothed by a Gaussian of width ``sigma = sqrt(2 kappa t)``.
   This is computed exactly for each crater's own radial profile (the 2-D diffusion of a radially
   symmetric shape, a Hankel-type kernel with a Bessel function), cached per shape.  Small old
   craters lose their relief first, as on Mars.
4. **Recognisability** (the rule that makes the true catalog, see :data:`VISIBILITY_RULE`).
5. **Rendering** (pixels only): fractal background terrain, craters emplaced oldest first (fresh
   ones with thermal-inertia halos), lit like THEMIS daytime IR (slopes facing the afternoon Sun
   in the west are warmer and look brighter), a fractal thermal-inertia/albedo field, image-strip
   seams, noise and no-data streaks (value 0, NaN in the mosaic).  Below ``dmin_km`` smaller
   craters are drawn as texture (as in real images, where catalogs are complete only above
   ~1 km); they are not in the catalogs.  Their visible density is raised to a small-crater
   equilibrium (``N(>=D) ~ 0.01 D**-2`` per km², capped by the production) with craters formed
   over the last 0.5 Ga, as real old surfaces show many crisp sub-km craters.  The brightness
   model's constants were measured against the real THEMIS crops (crater brightness profiles,
   background texture, chip statistics: ``benchmarks/synthetic_vs_real.py``).

Without ``age_ga`` the older behaviour remains: a power-law population of a given density
N(>=1 km), in random order, not degraded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import fft as sfft
from scipy import ndimage, special
from scipy.spatial import cKDTree

from .crs import KM_PER_DEGREE, MARS_GEOGRAPHIC, MARS_RADIUS_KM
from .errors import InvalidArgumentError

__all__ = [
    "DEFAULT_DIFFUSIVITY",
    "VISIBILITY_RULE",
    "SyntheticCatalog",
    "SyntheticSurface",
    "crater_population",
    "crater_profile",
    "formation_times",
    "relief_fraction",
    "render_surface",
    "surface_area_km2",
    "synthetic_catalog",
    "synthetic_dots",
    "synthetic_surface",
]

#: Topographic diffusivity, km² per Ga (10 m²/Myr): a 1 km crater formed 3.6 Ga ago keeps ~37 %
#: of its relief, a 2 km one ~75 %, a 0.5 km one formed 1 Ga ago ~30 %.
DEFAULT_DIFFUSIVITY: float = 0.01
#: Craters below this diameter (km) are simple bowls, above it complex craters.
SIMPLE_COMPLEX_KM: float = 7.0
#: Recognisable: relief after diffusion at least this fraction of the fresh relief ...
MIN_RELIEF_FRACTION: float = 0.25
#: ... and at most this fraction of the rim inside later craters ...
MAX_RIM_COVERED: float = 0.5
#: ... counting only later craters at least this fraction of the crater's diameter.
OVERPRINT_SIZE_RATIO: float = 0.5

VISIBILITY_RULE: str = (
    f"A crater is recognisable (catalogued) when (a) its rim-to-floor relief after topographic "
    f"diffusion is at least {MIN_RELIEF_FRACTION:.0%} of its fresh relief (column "
    f"'relief_fraction'), and (b) at most {MAX_RIM_COVERED:.0%} of its rim (72 points on the rim "
    f"circle) lies inside later craters at least {OVERPRINT_SIZE_RATIO:g} times its diameter "
    f"(column 'rim_covered').  Only craters of the drawn range [dmin_km, dmax_km) take part, "
    f"including those centred just outside the bounds; ejecta drape older craters without erasing "
    f"them."
)

# brightness model, measured against the real THEMIS crops and their Robbins craters (crater
# brightness profiles east/west of the centre, band-pass texture between craters, per-chip
# statistics; see benchmarks/synthetic_vs_real.py and docs/benchmarks.md)
_TERRAIN_BETA = 4.0
_REF_KM = 120.0  # the fractal fields' amplitudes are those of the wavelengths below this
_TERRAIN_RELIEF_KM = 0.25
_SCARP_RELIEF = 3.0  # in units of the terrain relief
_SCARP_SHARPNESS = 3.0
_SCARP_BETA = 4.5  # smooth unit boundaries: rougher ones give a knobby texture unlike real scarps
_RIDGE_RELIEF = 0.2
_TI_BETA = 3.0
_TI_SHARPNESS = 1.0
_BASE_DN = 125.0
# daytime IR is temperature: sun-facing slopes warm up strongly, slopes facing away are not dark
# shadows as in visible light (they still receive sky and terrain IR), hence two gains
_SHADE_GAIN = 230.0  # sun-facing slopes, DN per unit of relative insolation
_SHADE_GAIN_AWAY = 130.0  # slopes facing away
_TI_GAIN = 30.0
_HALO_GAIN = 0.6  # thermal-inertia contrast of fresh ejecta, in units of the TI field
_SIMPLE_BOWL_EXPONENT = 1.2  # simple bowls: h ~ r**p inside (2: parabolic; smaller: steeper lower walls)
# sub-km craters (texture): on Mars their visible density saturates (small primaries plus
# secondaries reach equilibrium), about N(>=D) = _EQ_N1 * D**-2 per km² (D in km) ...
_EQ_N1 = 0.01
# ... so surfaces whose production is above it carry that many small craters, of all freshness
# states: formed uniformly over the last _EQ_LIFETIME_GA
_EQ_LIFETIME_GA = 0.5
_REACH = 3.0  # ejecta extend to 3 crater radii
_RIM_POINTS = 72
# normalised radius grid of the profile tables: dense over the crater, coarser over the ejecta
_R = np.unique(np.r_[np.linspace(0.0, 2.0, 301), np.linspace(2.0, 10.0, 161)])
_W = np.gradient(_R)


@dataclass
class SyntheticSurface:
    """A synthetic mosaic with its truth.

    Attributes
    ----------
    mosaic
        Mosaic Dataset (``ir`` float32 on ``(y, x)``, NaN where no data, Mars CRS).
    catalog
        The craters that remain recognisable (GeoDataFrame, Catalog schema, plus the columns of
        ``formed``).
    formed
        Every crater of ``[dmin_km, dmax_km)`` formed with its centre in the bounds, oldest first,
        with ``formation_ga`` (Ga before present), ``sigma_km`` (diffusion length),
        ``relief_fraction``, ``rim_covered``, ``visible`` and pixel ``x``, ``y``.
    """

    mosaic: Any
    catalog: Any
    formed: Any = field(repr=False)

    def __iter__(self) -> Iterator[Any]:  # allows ``ds, cat = synthetic_surface(...)``
        return iter((self.mosaic, self.catalog))


@dataclass
class SyntheticCatalog:
    """The true craters of a synthetic surface, without pixels (see :func:`synthetic_catalog`).

    Attributes
    ----------
    catalog
        The recognisable craters (Catalog GeoDataFrame).
    formed
        Every crater formed (as :attr:`SyntheticSurface.formed`, without ``x``/``y``).
    """

    catalog: Any
    formed: Any = field(repr=False)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.catalog, self.formed))


# ---------------------------------------------------------------------------------------------
# population and time
# ---------------------------------------------------------------------------------------------


def surface_area_km2(bounds: tuple[float, float, float, float]) -> float:
    """Area (km²) of a longitude/latitude box on the IAU 2015 Mars sphere.

    ``R² (east - west) (sin north - sin south)``, exact on the sphere.

    Examples
    --------
    >>> round(surface_area_km2((0, -1, 1, 0)))
    3513
    """
    west, south, east, north = _check_bounds(bounds)
    return float(
        MARS_RADIUS_KM**2 * math.radians(east - west) * (math.sin(math.radians(north)) - math.sin(math.radians(south)))
    )


def _check_bounds(bounds: Any) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(b) for b in bounds)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"bounds must be (west, south, east, north) in degrees, got {bounds!r}") from exc
    if not (east > west and north > south and -90 <= south and north <= 90 and east - west <= 360):
        raise InvalidArgumentError(
            f"bounds must be (west, south, east, north) with east > west (at most 360 degrees apart), "
            f"north > south and latitudes within -90..90; got {bounds!r}"
        )
    return west, south, east, north


def _check_range(dmin_km: float, dmax_km: float) -> None:
    if not (0 < dmin_km < dmax_km):
        raise InvalidArgumentError(f"need 0 < dmin_km < dmax_km, got dmin_km={dmin_km}, dmax_km={dmax_km}")


def _density_mode(age_ga: float | None, n_per_km2_above_1km: float | None) -> tuple[float | None, float | None]:
    if age_ga is not None and n_per_km2_above_1km is not None:
        raise InvalidArgumentError(
            f"give either age_ga ({age_ga}) or n_per_km2_above_1km ({n_per_km2_above_1km}), not both: the "
            "age sets the crater density through the chronology system."
        )
    if age_ga is not None:
        if not (np.isfinite(age_ga) and 0 < age_ga <= 4.5):
            raise InvalidArgumentError(f"age_ga must be in (0, 4.5] Ga, got {age_ga}")
        return float(age_ga), None
    density = 2e-3 if n_per_km2_above_1km is None else float(n_per_km2_above_1km)
    if not density > 0:
        raise InvalidArgumentError(f"n_per_km2_above_1km must be > 0, got {n_per_km2_above_1km}")
    return None, density


def crater_population(
    area_km2: float,
    rng: np.random.Generator,
    *,
    age_ga: float | None = None,
    system: str = "neukum-ivanov",
    n_per_km2_above_1km: float | None = None,
    slope: float = 2.0,
    dmin_km: float = 1.0,
    dmax_km: float = 64.0,
) -> np.ndarray:
    """Draw crater diameters (km) in ``[dmin_km, dmax_km)`` for a surface of ``area_km2``.

    With ``age_ga`` the diameters follow the production function of ``system``: the count is
    Poisson with mean ``(N(dmin) - N(dmax)) * area_km2``, N from
    :func:`marscraters.chronology.cumulative_density`, and each diameter is drawn by inverting
    the cumulative curve (interpolated in log-log).  Without it, a cumulative power law
    ``N(>=D) = n_per_km2_above_1km * D**-slope`` (default density 2e-3 per km²).

    Parameters
    ----------
    area_km2
        Surface area.
    rng
        Random generator.
    age_ga
        Model age (Ga) of the surface.
    system
        Chronology system (see :data:`marscraters.chronology.SYSTEMS`).
    n_per_km2_above_1km, slope
        Density and slope of the power law used without ``age_ga``.
    dmin_km, dmax_km
        Diameter range.

    Returns
    -------
    numpy.ndarray
        Diameters in km, in the order drawn.

    Examples
    --------
    >>> d = crater_population(1e6, np.random.default_rng(0), age_ga=1.0)
    >>> bool(400 < d.size < 600 and d.min() >= 1.0)
    True
    """
    _check_range(dmin_km, dmax_km)
    age_ga, density = _density_mode(age_ga, n_per_km2_above_1km)
    if not area_km2 >= 0:
        raise InvalidArgumentError(f"area_km2 must be >= 0, got {area_km2}")
    if age_ga is None:
        a, b = dmin_km**-slope, dmax_km**-slope
        n = rng.poisson(density * area_km2 * (a - b))
        u = rng.random(n)
        return (a - u * (a - b)) ** (-1.0 / slope)
    from .chronology import sample_diameters

    return sample_diameters(age_ga, area_km2, (dmin_km, dmax_km), system=system, rng=rng)


def formation_times(
    n: int, age_ga: float, rng: np.random.Generator, *, system: str = "neukum-ivanov", d_ref_km: float = 1.0
) -> np.ndarray:
    """Formation times (Ga before present) of ``n`` craters on a surface of age ``age_ga``.

    Uniform in the accumulated density: ``N(d_ref, t) / N(d_ref, age_ga)`` is uniform on
    ``[0, 1)``, the chronology's time dependence (more craters early on old surfaces).

    Examples
    --------
    >>> t = formation_times(10_000, 3.7, np.random.default_rng(0))
    >>> bool(np.median(t) > 3.3)  # the exponential branch: most craters are very old
    True
    """
    from .chronology import cumulative_density

    ts = np.linspace(0.0, float(age_ga), 1201)
    acc = np.array([float(np.asarray(cumulative_density(d_ref_km, float(t), system))) for t in ts])
    u = rng.random(int(n)) * acc[-1]
    return np.interp(u, acc, ts)


# ---------------------------------------------------------------------------------------------
# crater shapes and their degradation
# ---------------------------------------------------------------------------------------------


def _shape_key(d_km: float) -> float:
    """Diameter at which a profile shape is tabulated: simple bowls share one shape (scaled by
    D), complex ones are tabulated every 1/4 octave."""
    if d_km < SIMPLE_COMPLEX_KM:
        return 1.0
    return float(2.0 ** (round(math.log2(d_km) * 4) / 4))


def _fresh_profile(d_km: float) -> np.ndarray:
    """Fresh elevation (km) on the normalised radius grid ``_R`` of a crater of diameter d_km.

    Simple bowls (d < 7 km): depth 0.2 D, rim 0.04 D, parabolic.  Complex craters: depth
    1.4 (D/7)^0.49 km (d/D 0.2 -> 0.065 at 64 km), rim 0.28 (D/7)^0.5 km, a flat floor of growing
    radius and a central peak.  Ejecta fall off as r^-3 and taper to 0 at 3 radii.
    """
    r = _R
    if d_km < SIMPLE_COMPLEX_KM:
        depth, rim = 0.2 * d_km, 0.04 * d_km
        inside = rim - depth + depth * np.minimum(r, 1.0) ** _SIMPLE_BOWL_EXPONENT
    else:
        depth = 1.4 * (d_km / SIMPLE_COMPLEX_KM) ** 0.49
        rim = 0.28 * (d_km / SIMPLE_COMPLEX_KM) ** 0.5
        floor_r = 0.3 + 0.25 * min((d_km - SIMPLE_COMPLEX_KM) / 50.0, 1.0)
        x = np.clip((r - floor_r) / (1.0 - floor_r), 0.0, 1.0)
        peak = 0.4 * depth * min((d_km - SIMPLE_COMPLEX_KM) / 5.0 + 0.2, 1.0) * np.exp(-((r / 0.12) ** 2))
        inside = rim - depth + depth * x**2 + peak
    taper = np.clip(1.0 - ((r - 1.0) / (_REACH - 1.0)) ** 2, 0.0, 1.0) ** 2
    return np.where(r < 1.0, inside, rim * np.maximum(r, 1.0) ** -3.0 * taper)


# quantised diffusion lengths (in crater radii) of the profile tables: steps of 0.01 up to 0.3,
# then 4 % steps up to ~3, beyond which less than 1 % of the relief is left
_S_GRID = np.r_[np.arange(0, 30) / 100.0, 0.3 * 1.04 ** np.arange(0, 60)]


def _s_index(s: Any) -> np.ndarray:
    """Index of the nearest tabulated diffusion length (s beyond the grid maps to the last)."""
    return np.rint(np.interp(np.asarray(s, dtype=float), _S_GRID, np.arange(_S_GRID.size))).astype(int)


@lru_cache(maxsize=1)
def _hankel() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discrete Hankel transform pair on the radius grid (wavenumbers up to 600 per radius)."""
    dk = 0.25
    k = np.arange(0.0, 600.0, dk) + dk / 2
    j = special.j0(np.outer(k, _R))
    forward = j * (_R * _W)[None, :]  # F(k) = int h(r) J0(kr) r dr
    inverse = np.ascontiguousarray(j.T * (k * dk)[None, :])  # h(r) = int F(k) J0(kr) k dk
    return k, forward, inverse


@lru_cache(maxsize=64)
def _tables(shape_key: float) -> np.ndarray:
    """Profiles per km of diameter (elevation / D) of one shape for every diffusion length of
    ``_S_GRID``, shape ``(len(_S_GRID), len(_R))``.

    2-D diffusion of a radially symmetric shape multiplies its Hankel transform by
    ``exp(-k² s² / 2)`` (s: the Gaussian width in radii), so all the lengths cost one product.
    """
    h = _fresh_profile(shape_key) / shape_key
    k, forward, inverse = _hankel()
    spectrum = forward @ h
    gains = np.exp(-np.outer(k**2, _S_GRID**2) / 2.0)
    out = (inverse @ (spectrum[:, None] * gains)).T
    out[0] = h  # s = 0 is the fresh shape itself
    return out


def _relief(h: np.ndarray) -> np.ndarray:
    """Rim crest (max over 0.8..1.6 radii) minus floor (min inside 0.95 radii), per row."""
    return h[..., (_R >= 0.8) & (_R <= 1.6)].max(axis=-1) - h[..., _R < 0.95].min(axis=-1)


@lru_cache(maxsize=64)
def _relief_curve(shape_key: float) -> np.ndarray:
    rel = _relief(_tables(shape_key))
    return np.clip(rel / rel[0], 0.0, 1.0)


def crater_profile(r: Any, diameter_km: float, sigma_km: float = 0.0) -> np.ndarray:
    """Elevation (km) of a crater at normalised radius ``r`` (distance / crater radius).

    Parameters
    ----------
    r
        Normalised radius (0 at the centre, 1 on the rim).
    diameter_km
        Crater diameter.  Below 7 km a simple bowl (depth/D 0.2), above a complex crater (flat
        floor, central peak, depth/D falling to 0.065 at 64 km); raised rim and ejecta blanket.
    sigma_km
        Diffusion length ``sqrt(2 kappa t)`` of the degradation (0: fresh).

    Examples
    --------
    >>> round(float(crater_profile(0.0, 2.0)), 3)  # a fresh 2 km bowl: rim 0.08 km, depth 0.4 km
    -0.32
    """
    d = float(diameter_km)
    i = int(_s_index(2.0 * float(sigma_km) / d))
    return np.interp(np.asarray(r, dtype=float), _R, _tables(_shape_key(d))[i]) * d


def relief_fraction(diameter_km: Any, sigma_km: Any) -> np.ndarray:
    """Rim-to-floor relief after diffusion by ``sigma_km``, as a fraction of the fresh relief.

    Examples
    --------
    >>> relief_fraction([2.0, 2.0], [0.0, 0.5]).round(2).tolist()
    [1.0, 0.29]
    """
    d = np.atleast_1d(np.asarray(diameter_km, dtype=float))
    s = 2.0 * np.broadcast_to(np.asarray(sigma_km, dtype=float), d.shape) / d
    out = np.ones(d.shape)
    keys = np.array([_shape_key(x) for x in d])
    for key in np.unique(keys):
        sel = keys == key
        out[sel] = np.interp(s[sel], _S_GRID, _relief_curve(float(key)), right=0.0)
    return out


# ---------------------------------------------------------------------------------------------
# the crater population of a surface, with its visibility
# ---------------------------------------------------------------------------------------------


def _expand(bounds: tuple[float, float, float, float], margin_km: float) -> tuple[float, float, float, float]:
    west, south, east, north = bounds
    dlat = margin_km / KM_PER_DEGREE
    s2, n2 = max(south - dlat, -90.0), min(north + dlat, 90.0)
    coslat = max(math.cos(math.radians(max(abs(s2), abs(n2)))), 0.05)
    dlon = min(margin_km / (KM_PER_DEGREE * coslat), (360.0 - (east - west)) / 2.0)
    return west - dlon, s2, east + dlon, n2


def _uniform_on_sphere(bounds: tuple[float, float, float, float], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    west, south, east, north = bounds
    lon = rng.uniform(west, east, n)
    lat = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(south)), math.sin(math.radians(north)), n)))
    return lon, lat


def _inside(lon: np.ndarray, lat: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    west, south, east, north = bounds
    return (lon >= west) & (lon < east) & (lat >= south) & (lat < north)


def _draw(
    bounds: tuple[float, float, float, float],
    age_ga: float | None,
    density: float | None,
    rng: np.random.Generator,
    *,
    system: str,
    dmin_km: float,
    dmax_km: float,
    margin_km: float,
) -> pd.DataFrame:
    """Craters of [dmin, dmax) centred in bounds expanded by margin_km, oldest first."""
    big = _expand(bounds, margin_km)
    d = crater_population(surface_area_km2(big), rng, age_ga=age_ga, system=system,
                          n_per_km2_above_1km=density, dmin_km=dmin_km, dmax_km=dmax_km)
    lon, lat = _uniform_on_sphere(big, d.size, rng)
    if age_ga is not None:
        t = formation_times(d.size, age_ga, rng, system=system, d_ref_km=dmin_km)
        key = t
    else:
        t = np.full(d.size, np.nan)
        key = rng.random(d.size)  # random order; no times without an age
    order = np.argsort(-key, kind="stable")  # oldest first
    frame = pd.DataFrame({"lon": lon[order], "lat": lat[order], "diameter_km": d[order], "formation_ga": t[order]})
    frame["inside"] = _inside(frame["lon"].to_numpy(), frame["lat"].to_numpy(), bounds)
    return frame


def _rim_covered(lon: np.ndarray, lat: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Fraction of each crater's rim inside later craters of at least OVERPRINT_SIZE_RATIO its size.

    Rows are in formation order (later rows are younger).  Distances in the local tangent plane.
    """
    n = d.size
    out = np.zeros(n)
    if n < 2:
        return out
    latr, lonr = np.radians(lat), np.radians(lon)
    xyz = MARS_RADIUS_KM * np.c_[np.cos(latr) * np.cos(lonr), np.cos(latr) * np.sin(lonr), np.sin(latr)]
    tree = cKDTree(xyz)
    radius = d / 2.0
    hits = tree.query_ball_point(xyz, r=radius + radius.max() * 1.0001)
    counts = np.fromiter((len(h) for h in hits), dtype=np.int64, count=n)
    i = np.repeat(np.arange(n), counts)
    j = np.fromiter((k for h in hits for k in h), dtype=np.int64, count=int(counts.sum()))
    keep = (j > i) & (d[j] >= OVERPRINT_SIZE_RATIO * d[i])
    i, j = i[keep], j[keep]
    dx = MARS_RADIUS_KM * np.cos(latr[i]) * ((lonr[j] - lonr[i] + np.pi) % (2 * np.pi) - np.pi)
    dy = MARS_RADIUS_KM * (latr[j] - latr[i])
    close = np.hypot(dx, dy) < radius[i] + radius[j]
    i, j, dx, dy = i[close], j[close], dx[close], dy[close]
    if i.size == 0:
        return out
    theta = np.linspace(0.0, 2 * np.pi, _RIM_POINTS, endpoint=False)
    covered = np.zeros((n, _RIM_POINTS), dtype=bool)
    for start in range(0, i.size, 20000):  # bounded memory: pairs x rim points
        sl = slice(start, start + 20000)
        px = radius[i[sl], None] * np.cos(theta) - dx[sl, None]
        py = radius[i[sl], None] * np.sin(theta) - dy[sl, None]
        inside = px**2 + py**2 < radius[j[sl], None] ** 2
        np.logical_or.at(covered, i[sl], inside)
    return covered.mean(axis=1)


def _population(
    bounds: tuple[float, float, float, float],
    age_ga: float | None,
    seed: int,
    *,
    system: str,
    dmin_km: float,
    dmax_km: float,
    n_per_km2_above_1km: float | None,
    diffusivity: float,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All craters of [dmin, dmax) near the bounds with their degradation and visibility."""
    bounds = _check_bounds(bounds)
    _check_range(dmin_km, dmax_km)
    age_ga, density = _density_mode(age_ga, n_per_km2_above_1km)
    if not diffusivity >= 0:
        raise InvalidArgumentError(f"diffusivity must be >= 0 km²/Ga, got {diffusivity}")
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    # craters centred up to one dmax outside can overprint rims inside; ejecta reach 1.5 dmax
    frame = _draw(bounds, age_ga, density, rng, system=system, dmin_km=dmin_km, dmax_km=dmax_km,
                  margin_km=1.5 * dmax_km)
    t = frame["formation_ga"].to_numpy()
    sigma = np.sqrt(2.0 * diffusivity * np.nan_to_num(t, nan=0.0))
    frame["sigma_km"] = sigma
    frame["relief_fraction"] = relief_fraction(frame["diameter_km"].to_numpy(), sigma) if len(frame) else []
    frame["rim_covered"] = _rim_covered(frame["lon"].to_numpy(), frame["lat"].to_numpy(), frame["diameter_km"].to_numpy())
    frame["visible"] = (frame["relief_fraction"] >= MIN_RELIEF_FRACTION) & (frame["rim_covered"] <= MAX_RIM_COVERED)
    attrs = {
        "age_ga": age_ga,
        "chronology_system": system if age_ga is not None else None,
        "n_per_km2_above_1km": density,
        "diameter_range_km": [float(dmin_km), float(dmax_km)],
        "area_km2": surface_area_km2(bounds),
        "bounds": list(bounds),
        "seed": seed,
        "diffusivity_km2_per_ga": float(diffusivity),
        "visibility_rule": VISIBILITY_RULE,
    }
    return frame, attrs


def _catalogs(frame: pd.DataFrame, attrs: dict[str, Any], extra_cols: tuple[str, ...] = ()) -> tuple[Any, Any]:
    from .catalog import make_catalog

    inside = frame[frame["inside"]].reset_index(drop=True)
    cols = ["formation_ga", "sigma_km", "relief_fraction", "rim_covered", "visible", *extra_cols]
    extra = {c: inside[c].to_numpy() for c in cols}
    extra["formation_order"] = np.arange(len(inside))
    formed = make_catalog(inside["lat"].to_numpy(), inside["lon"].to_numpy(), inside["diameter_km"].to_numpy(),
                          extra=extra, attrs=attrs)
    catalog = formed[formed["visible"].to_numpy(bool)].reset_index(drop=True)
    for frame_ in (formed, catalog):
        frame_.attrs = dict(attrs)
    return catalog, formed


def _source(age_ga: float | None, seed: int) -> str:
    return f"synthetic_surface(age_ga={age_ga}, seed={seed})" if age_ga is not None else f"synthetic_surface(seed={seed})"


def synthetic_catalog(
    bounds: tuple[float, float, float, float],
    age_ga: float | None = None,
    seed: int = 0,
    *,
    system: str = "neukum-ivanov",
    dmin_km: float = 1.0,
    dmax_km: float = 64.0,
    n_per_km2_above_1km: float | None = None,
    diffusivity: float = DEFAULT_DIFFUSIVITY,
) -> SyntheticCatalog:
    """The true craters of a synthetic surface of known age, without rendering any pixels.

    It is exactly the ``catalog`` and ``formed`` of :func:`synthetic_surface` with the same
    arguments (less the pixel columns), at a tiny fraction of the cost, so it can cover large
    areas: use it to test crater-count dating.

    Parameters
    ----------
    bounds
        ``(west, south, east, north)`` in degrees (any longitude convention).
    age_ga
        Model age of the surface (Ga).  Without it, a power-law population of density
        ``n_per_km2_above_1km`` (default 2e-3 per km², slope -2) in random order, not degraded.
    seed
        Random seed; the same seed gives the same craters.
    system
        Chronology system (production and chronology functions), see
        :data:`marscraters.chronology.SYSTEMS`.
    dmin_km, dmax_km
        Diameter range of the catalogued craters.
    n_per_km2_above_1km
        Crater density of the power-law population (only without ``age_ga``).
    diffusivity
        Topographic diffusivity (km² per Ga) that degrades older craters.

    Returns
    -------
    SyntheticCatalog
        ``catalog`` (recognisable craters, see :data:`VISIBILITY_RULE`) and ``formed`` (all,
        oldest first).  ``.attrs`` hold the age, system, diameter range, ``area_km2`` and rule.

    Examples
    --------
    >>> truth = synthetic_catalog((0, -10, 20, 10), age_ga=3.0, seed=1)
    >>> bool(truth.formed["visible"].mean() < 1.0)  # some old small craters are gone
    True
    """
    frame, attrs = _population(bounds, age_ga, seed, system=system, dmin_km=dmin_km, dmax_km=dmax_km,
                               n_per_km2_above_1km=n_per_km2_above_1km, diffusivity=diffusivity)
    attrs["source"] = _source(age_ga, seed)
    catalog, formed = _catalogs(frame, attrs)
    return SyntheticCatalog(catalog, formed)


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def _fractal_noise(shape: tuple[int, int], rng: np.random.Generator, beta: float = 3.2,
                   ref_px: float | None = None) -> np.ndarray:
    """Gaussian random field with a 1/f**beta power spectrum (float32).

    Unit standard deviation over the whole image, or, with ``ref_px``, unit (expected) standard
    deviation of the wavelengths shorter than ``ref_px`` pixels: then the amplitude at a given
    scale does not depend on the image size (a small window looks like part of a large one).
    """
    ny, nx = shape
    fy = np.fft.fftfreq(ny).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(nx).astype(np.float32)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f ** np.float32(-beta / 2.0)
    amp[0, 0] = 0.0
    spec = np.empty(f.shape, np.complex64)
    spec.real = rng.standard_normal(f.shape, dtype=np.float32)
    spec.imag = rng.standard_normal(f.shape, dtype=np.float32)
    spec *= amp
    if ref_px is not None:
        # expected variance of the wavelengths below ref_px on an unbounded image (Parseval with
        # the bins' density in the frequency plane): 2 / N * 2 pi * int_{1/ref}^{1/2} f**(1-beta) df,
        # which does not depend on which of those wavelengths fit in this image
        f0, f1, e = 1.0 / float(ref_px), 0.5, 2.0 - float(beta)
        integral = math.log(f1 / f0) if abs(e) < 1e-9 else (f1**e - f0**e) / e
        var = 4.0 * math.pi * integral / float(ny * nx)
    del amp, f
    out = sfft.irfft2(spec, s=shape, workers=-1)
    if ref_px is None:
        out /= out.std()
    else:
        out /= np.sqrt(var)
        # an image smaller than ref_px is a window of a larger field: it gets the level of one
        # (the variance of the wavelengths that do not fit, as a constant)
        out += rng.normal(0.0, math.sqrt(max(1.0 - float(out.var()), 0.0)))
    return out.astype(np.float32, copy=False)


def render_surface(
    shape: tuple[int, int],
    km_per_px: tuple[Any, float],
    craters: pd.DataFrame,
    rng: np.random.Generator,
    *,
    sun_azimuth_deg: float = 270.0,
    sun_elevation_deg: float = 35.0,
    noise: float = 2.5,
    streaks: int | None = None,
    seams: bool = True,
    background_relief_km: float | None = None,
    ti_scale: float = 1.0,
    progress: bool = False,
) -> np.ndarray:
    """Render craters into a THEMIS daytime-IR-like 8-bit-range image.

    Parameters
    ----------
    shape
        ``(ny, nx)``.
    km_per_px
        ``(kx, ky)``: km per pixel along x (a scalar, or one value per row, since a degree of
        longitude shrinks with latitude) and along y.
    craters
        One row per crater in formation order (oldest first) with ``x``, ``y`` (pixel index
        coordinates), ``diameter_km``, ``sigma_km`` (diffusion length, 0 for fresh) and
        ``freshness`` (0..1, the strength of the thermal-inertia halo of young craters).
    rng
        Random generator (terrain, halos, noise, artefacts).
    sun_azimuth_deg, sun_elevation_deg
        Sun direction (azimuth clockwise from north; THEMIS daytime images are taken in the
        afternoon, with the Sun in the west).
    noise
        Standard deviation of the detector noise, in DN.
    streaks
        Number of no-data streaks (value 0); default about 2 per megapixel, at least 1.
    seams
        Brightness offsets between the N-S image strips a mosaic is made of.
    background_relief_km
        Standard deviation of the fractal background topography (default 0.25 km).
    progress
        Show a progress bar over the craters.

    Returns
    -------
    numpy.ndarray
        float32 image, 1..255 where there is data, 0 in the no-data streaks.
    """
    from tqdm.auto import tqdm

    ny, nx = (int(v) for v in shape)
    kx_in, ky = km_per_px
    kx_row = np.broadcast_to(np.asarray(kx_in, dtype=np.float64), (ny,)).astype(np.float64)
    ky = float(ky)
    if background_relief_km is None:
        background_relief_km = _TERRAIN_RELIEF_KM
    # background terrain: rolling fractal topography, units bounded by scarps (a smooth field
    # pushed through tanh gives plateaus and lowlands) and ridged small-scale roughness
    # amplitudes refer to wavelengths below _REF_KM, so that the texture at a given scale does
    # not depend on the size of the image
    ref = _REF_KM / float(np.median(kx_row))
    elev = _fractal_noise((ny, nx), rng, beta=_TERRAIN_BETA, ref_px=ref)
    units = np.tanh(_SCARP_SHARPNESS * _fractal_noise((ny, nx), rng, beta=_SCARP_BETA, ref_px=ref))
    elev += _SCARP_RELIEF * units
    del units
    ridges = np.abs(_fractal_noise((ny, nx), rng, beta=3.0, ref_px=ref))
    elev -= _RIDGE_RELIEF * ridges
    del ridges
    elev *= np.float32(background_relief_km)
    # thermal inertia / albedo units (dust mantles, rocky or indurated ground) with soft edges,
    # plus halos of fresh craters
    ti = np.tanh(_TI_SHARPNESS * _fractal_noise((ny, nx), rng, beta=_TI_BETA, ref_px=ref)) * np.float32(ti_scale)
    x = craters["x"].to_numpy(float)
    y = craters["y"].to_numpy(float)
    dkm = craters["diameter_km"].to_numpy(float)
    sig = craters["sigma_km"].to_numpy(float) if "sigma_km" in craters else np.zeros(len(craters))
    fresh = craters["freshness"].to_numpy(float) if "freshness" in craters else np.zeros(len(craters))
    s_idx = _s_index(2.0 * sig / np.maximum(dkm, 1e-9))
    halo_sign = np.where(rng.random(len(craters)) < 0.6, -1.0, 1.0)  # more fresh ejecta look cool than warm
    for k in tqdm(range(len(craters)), desc="craters", disable=not progress, unit="crater"):
        d = dkm[k]
        i_s = int(s_idx[k])
        s = float(_S_GRID[i_s])
        table = _tables(_shape_key(d))[i_s] * d
        # support of the degraded profile: the ejecta reach plus 3 diffusion lengths
        r_ext = min(_REACH + 3.0 * s, float(_R[-1]))
        kx = kx_row[int(np.clip(round(y[k]), 0, ny - 1))]
        rx, ry = r_ext * d / 2 / kx, r_ext * d / 2 / ky
        c0, c1 = max(int(x[k] - rx), 0), min(int(x[k] + rx) + 2, nx)
        r0, r1 = max(int(y[k] - ry), 0), min(int(y[k] + ry) + 2, ny)
        if c0 >= c1 or r0 >= r1:
            continue
        dx = ((np.arange(c0, c1, dtype=np.float32) - np.float32(x[k])) * np.float32(kx / (d / 2)))[None, :]
        dy = ((np.arange(r0, r1, dtype=np.float32) - np.float32(y[k])) * np.float32(ky / (d / 2)))[:, None]
        r = np.sqrt(dx * dx + dy * dy)
        prof = np.interp(r, _R, table).astype(np.float32)
        window = elev[r0:r1, c0:c1]
        # overprinting: the interior replaces the older terrain (its mean level), ejecta drape it
        w = np.clip((1.1 - r) / 0.2, 0.0, 1.0)
        level = float(window[r < 1.0].mean()) if (r < 1.0).any() else float(window.mean())
        window += w * (level - window) + prof
        if fresh[k] > 0.02:
            halo = np.exp(-(((r - 1.5) / 0.6) ** 2)) * (r > 0.9)
            ti[r0:r1, c0:c1] += np.float32(halo_sign[k] * _HALO_GAIN * fresh[k]) * halo.astype(np.float32)
    # illumination: insolation on each slope relative to flat ground (km/km slopes)
    gy, gx = np.gradient(elev)
    gx /= kx_row[:, None].astype(np.float32)
    gy /= np.float32(ky)
    az, el = math.radians(sun_azimuth_deg), math.radians(sun_elevation_deg)
    sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
    # image rows grow southwards, so north is -y
    shade = (-gx * sx + gy * sy + sz) / np.sqrt(gx * gx + gy * gy + 1.0) / sz - 1.0
    del gx, gy
    np.clip(shade, -1.0, 1.2, out=shade)
    shade *= np.where(shade > 0, np.float32(_SHADE_GAIN), np.float32(_SHADE_GAIN_AWAY))
    img = _BASE_DN + shade + _TI_GAIN * ti
    del shade, ti
    img = ndimage.gaussian_filter(img, 0.5)  # the instrument's point spread
    img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    if seams:
        # N-S image strips about 32 km wide, slightly tilted, each with its own gain and offset
        strip_px = 32.0 / float(np.median(kx_row))
        tilt = rng.uniform(-0.06, 0.06)
        x0 = rng.uniform(0, strip_px)
        cols = np.arange(nx, dtype=np.float32)[None, :]
        rows = np.arange(ny, dtype=np.float32)[:, None]
        idx = np.floor((cols - tilt * rows - x0) / strip_px).astype(np.int32)
        idx -= idx.min()
        n_strips = int(idx.max()) + 1
        gain = rng.normal(1.0, 0.03, n_strips).astype(np.float32)
        offset = rng.normal(0.0, 3.0, n_strips).astype(np.float32)
        img = (img - 120.0) * gain[idx] + 120.0 + offset[idx]
        del idx
    np.clip(img, 1.0, 255.0, out=img)
    img = img.astype(np.float32, copy=False)
    # no-data streaks (value 0): thin gaps between strips, slightly slanted
    if streaks is None:
        streaks = max(1, int(round(2.0 * ny * nx / 1e6)))
    for _ in range(int(streaks)):
        width = int(rng.integers(2, max(nx // 150, 3) + 1))
        x0 = rng.uniform(0, nx)
        slope_ = rng.uniform(-0.05, 0.05)
        y_from, y_to = sorted(int(v) for v in rng.integers(0, ny, size=2))
        rr = np.arange(y_from, y_to)[:, None]
        cc = (x0 + slope_ * rr).astype(np.int64) + np.arange(width)[None, :]
        ok = (cc >= 0) & (cc < nx)
        img[np.broadcast_to(rr, cc.shape)[ok], cc[ok]] = 0.0
    return img


def _equilibrium_craters(
    bounds: tuple[float, float, float, float],
    age_ga: float,
    rng: np.random.Generator,
    *,
    system: str,
    dmin_km: float,
    dmax_km: float,
    margin_km: float,
) -> pd.DataFrame:
    """Sub-km texture craters that bring the visible small-crater density up to equilibrium.

    The production-law texture craters formed over the last ``_EQ_LIFETIME_GA`` are all that stays
    visible of them on an old surface (the older ones have diffused away), far fewer than the
    small craters of real old surfaces, whose sub-km population is in equilibrium (small primaries
    and secondaries).  These extra craters, ``N(>=D) = _EQ_N1 D**-2`` per km² in all (capped by the
    surface's production) less what the production gave over that time, form uniformly over it.
    """
    from .chronology import cumulative_density

    cols = {"lon": [], "lat": [], "diameter_km": [], "formation_ga": []}
    if _EQ_N1 <= 0:
        return pd.DataFrame(cols).assign(inside=np.zeros(0, bool))
    big = _expand(bounds, margin_km)
    t_eq = min(float(age_ga), _EQ_LIFETIME_GA)

    def n(t: float) -> float:
        return float(cumulative_density(dmin_km, t, system) - cumulative_density(dmax_km, t, system))

    target = min(_EQ_N1 * (dmin_km**-2 - dmax_km**-2), n(float(age_ga)))
    count = rng.poisson(max(target - n(t_eq), 0.0) * surface_area_km2(big))
    a, b = dmin_km**-2, dmax_km**-2
    d = (a - rng.random(count) * (a - b)) ** -0.5
    lon, lat = _uniform_on_sphere(big, count, rng)
    frame = pd.DataFrame({"lon": lon, "lat": lat, "diameter_km": d, "formation_ga": rng.uniform(0.0, t_eq, count)})
    frame["inside"] = _inside(frame["lon"].to_numpy(), frame["lat"].to_numpy(), bounds)
    return frame


def synthetic_surface(
    bounds: tuple[float, float, float, float] = (30.0, -2.0, 32.0, 0.0),
    px_per_deg: float = 256.0,
    age_ga: float | None = None,
    seed: int = 0,
    *,
    system: str = "neukum-ivanov",
    dmin_km: float = 1.0,
    dmax_km: float = 64.0,
    n_per_km2_above_1km: float | None = None,
    diffusivity: float = DEFAULT_DIFFUSIVITY,
    texture_craters: bool = True,
    streaks: int | None = None,
    noise: float = 2.5,
    sun_azimuth_deg: float = 270.0,
    sun_elevation_deg: float = 35.0,
    progress: bool = False,
) -> SyntheticSurface:
    """A synthetic THEMIS-like cratered surface of known age: a Mosaic and its true catalog.

    See the module docstring for the model (production function, time order, diffusion,
    overprinting, illumination, THEMIS artefacts) and :data:`VISIBILITY_RULE` for what is
    catalogued.

    Parameters
    ----------
    bounds
        ``(west, south, east, north)`` in degrees (any longitude convention).
    px_per_deg
        Grid resolution (592.747 is the USGS THEMIS mosaics' ~100 m/px, the shipped model's scale;
        256 is the ASU tile grid, ~231.5 m/px).
    age_ga
        Model age of the surface (Ga): crater diameters and formation times follow the chronology
        ``system``.  Without it, the legacy power-law population of density
        ``n_per_km2_above_1km`` (default 2e-3 per km²), in random order, not degraded.
    seed
        Random seed; the same seed gives the same surface, and the same craters as
        :func:`synthetic_catalog` with the same arguments.
    system
        Chronology system, see :data:`marscraters.chronology.SYSTEMS`.
    dmin_km, dmax_km
        Diameter range of the catalogued craters.  Smaller craters, down to ~4 px, are drawn as
        texture when ``texture_craters`` is true (not catalogued).
    n_per_km2_above_1km
        Density of the legacy power-law population (only without ``age_ga``).
    diffusivity
        Topographic diffusivity (km² per Ga) that degrades older craters.
    texture_craters
        Also draw craters below ``dmin_km`` (from the same population law), as real images have.
    streaks
        Number of no-data streaks (default about 2 per megapixel).
    noise
        Detector noise (DN).
    sun_azimuth_deg, sun_elevation_deg
        Sun direction.
    progress
        Show a progress bar while craters are emplaced.

    Returns
    -------
    SyntheticSurface
        ``mosaic`` (Dataset), ``catalog`` (recognisable craters) and ``formed`` (all craters, with
        pixel ``x``/``y``).  Unpacks as ``ds, truth = synthetic_surface(...)``.

    Examples
    --------
    >>> ds, truth = synthetic_surface((30, -1, 31, 0), 128, age_ga=3.5, seed=1)  # doctest: +SKIP
    """
    from .mosaic import mosaic_from_array

    west, south, east, north = _check_bounds(bounds)
    if not (np.isfinite(px_per_deg) and px_per_deg > 0):
        raise InvalidArgumentError(f"px_per_deg must be > 0, got {px_per_deg}")
    nx, ny = int(round((east - west) * px_per_deg)), int(round((north - south) * px_per_deg))
    if nx < 1 or ny < 1:
        raise InvalidArgumentError(
            f"bounds {bounds} at {px_per_deg} px/deg give an empty image ({ny} x {nx} px); enlarge the "
            "bounds or raise px_per_deg."
        )
    frame, attrs = _population((west, south, east, north), age_ga, seed, system=system, dmin_km=dmin_km,
                               dmax_km=dmax_km, n_per_km2_above_1km=n_per_km2_above_1km, diffusivity=diffusivity)
    age_ga = attrs["age_ga"]
    streams = np.random.SeedSequence(seed).spawn(3)
    import dask.array as da

    from .crs import Grid

    grid = Grid.from_dataset(mosaic_from_array(da.zeros((ny, nx), chunks=(ny, nx)), bounds=(west, south, east, north)))
    km_y = 1.0 / float(grid.km_to_pixels(1.0, 0.0)[1])
    row_lat = grid.pixel_to_lonlat(np.zeros(ny), np.arange(ny, dtype=float))[1]
    km_x_row = 1.0 / grid.km_to_pixels(1.0, row_lat)[0]
    draw = frame.copy()
    if texture_craters:
        # smaller craters down to ~4 px, as texture: same law, same time order, never catalogued
        d_tex = 4.0 * max(km_y, float(np.min(km_x_row)))
        if d_tex < dmin_km:
            tex = _draw((west, south, east, north), age_ga, attrs["n_per_km2_above_1km"],
                        np.random.default_rng(streams[1]), system=system, dmin_km=d_tex, dmax_km=dmin_km,
                        margin_km=1.5 * dmin_km)
            if age_ga is not None:
                tex = pd.concat([tex, _equilibrium_craters((west, south, east, north), age_ga, np.random.default_rng(
                    streams[1].spawn(1)[0]), system=system, dmin_km=d_tex, dmax_km=dmin_km, margin_km=1.5 * dmin_km)],
                    ignore_index=True)
            tex["sigma_km"] = np.sqrt(2.0 * diffusivity * np.nan_to_num(tex["formation_ga"].to_numpy(), nan=0.0))
            draw = pd.concat([draw.assign(catalogued=True), tex.assign(catalogued=False)], ignore_index=True)
    # one time order for everything drawn (random keys without an age)
    rng_render = np.random.default_rng(streams[2])
    if age_ga is not None:
        draw = draw.sort_values("formation_ga", ascending=False, kind="stable")
        draw["freshness"] = np.exp(-draw["formation_ga"].to_numpy() / 0.3)
    else:
        key = np.where(draw.get("catalogued", pd.Series(True, index=draw.index)).to_numpy(bool),
                       np.linspace(0, 1, len(draw)), rng_render.random(len(draw)))
        draw = draw.iloc[np.argsort(key, kind="stable")]
        draw["freshness"] = rng_render.random(len(draw)) ** 4
    draw = draw.reset_index(drop=True)
    cols, rows = grid.lonlat_to_pixel(draw["lon"].to_numpy(), draw["lat"].to_numpy())
    draw["x"], draw["y"] = cols, rows
    # fully diffused craters leave nothing to draw; skipping them saves time on old surfaces
    visible_enough = relief_fraction(draw["diameter_km"].to_numpy(), draw["sigma_km"].to_numpy()) > 0.02 if len(draw) else []
    img = render_surface((ny, nx), (km_x_row, km_y), draw[np.asarray(visible_enough, bool)] if len(draw) else draw,
                         rng_render, sun_azimuth_deg=sun_azimuth_deg, sun_elevation_deg=sun_elevation_deg,
                         noise=noise, streaks=streaks, progress=progress)
    data = np.where(img == 0, np.float32(np.nan), img).astype(np.float32, copy=False)
    del img
    ds = mosaic_from_array(data, bounds=(west, south, east, north), crs=MARS_GEOGRAPHIC, name="synthetic")
    ds.attrs.update({"synthetic_seed": seed, "px_per_deg": float(px_per_deg)})
    if age_ga is not None:
        ds.attrs.update({"synthetic_age_ga": age_ga, "chronology_system": system})
    attrs["source"] = _source(age_ga, seed)
    attrs["px_per_deg"] = float(px_per_deg)
    fc, fr = grid.lonlat_to_pixel(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    frame = frame.assign(x=fc, y=fr)
    catalog, formed = _catalogs(frame, attrs, extra_cols=("x", "y"))
    return SyntheticSurface(ds, catalog, formed)


# ---------------------------------------------------------------------------------------------
# the paper's grey dots
# ---------------------------------------------------------------------------------------------


def synthetic_dots(
    n: int,
    size: int = 128,
    *,
    seed: int = 0,
    max_dots: int = 12,
    radius_range: tuple[float, float] = (3.0, 16.0),
    return_circles: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list[pd.DataFrame]]:
    """The paper's synthetic dataset: grey dots of various shades on black, with solid-circle targets.

    Returns ``(images, targets)`` of shape ``(n, size, size)``, images float32 in 0..255 and
    targets uint8 in {0, 1}.  With ``return_circles=True`` also a list of one PixelCraters frame
    per image (``x``, ``y``, ``diameter_px``, ``score`` = 1), the dots' true circles: a dot
    covers the pixels whose centre lies within its radius, exactly what
    :func:`marscraters.targets.draw_targets` draws for them.  Asking for the circles does not
    change the images (the random draws are the same).
    """
    if n < 0 or size < 8:
        raise InvalidArgumentError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), np.float32)
    targets = np.zeros((n, size, size), np.uint8)
    circles: list[pd.DataFrame] = []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        rows = []
        for _ in range(int(rng.integers(1, max_dots + 1))):
            r = rng.uniform(*radius_range)
            cx, cy = rng.uniform(0, size, 2)
            disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            images[i][disk] = rng.uniform(40, 255)
            targets[i][disk] = 1
            rows.append((cx, cy, 2.0 * r))
        if return_circles:
            x, y, d = (np.array(v, dtype=float) for v in zip(*rows))
            circles.append(pd.DataFrame({"x": x, "y": y, "diameter_px": d, "score": np.ones(len(rows))}))
    if return_circles:
        return images, targets, circles
    return images, targets
