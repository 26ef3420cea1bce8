"""Synthetic THEMIS-like cratered surfaces with a known crater catalog, and the paper's grey dots.

A surface is rendered as elevation (fractal background terrain plus craters emplaced in time
order, each overprinting what was there), then lit like THEMIS daytime IR, where slopes facing
the afternoon Sun are warmer and look brighter.  Noise, no-data streaks (value 0) and seams
between image strips follow.  The result is a Mosaic Dataset of the same shape as ingested real
data, so every pipeline stage runs on it unchanged, together with its true catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from .crs import KM_PER_DEGREE, MARS_GEOGRAPHIC
from .errors import InvalidArgumentError

__all__ = ["SyntheticSurface", "synthetic_surface", "crater_population", "render_surface", "synthetic_dots"]


@dataclass
class SyntheticSurface:
    """A synthetic mosaic with its truth.

    Attributes
    ----------
    mosaic
        Mosaic Dataset (``ir`` float32 on ``(y, x)``, NaN where no data, Mars CRS).
    catalog
        The craters that remain recognisable (GeoDataFrame, Catalog schema).
    formed
        Every crater formed, in formation order, with a ``visible`` column.
    """

    mosaic: Any
    catalog: Any
    formed: Any = field(repr=False)

    def __iter__(self):  # allows ``ds, cat = synthetic_surface(...)``
        return iter((self.mosaic, self.catalog))


def crater_population(
    area_km2: float,
    rng: np.random.Generator,
    *,
    n_per_km2_above_1km: float = 2e-3,
    slope: float = 2.0,
    dmin_km: float = 1.0,
    dmax_km: float = 64.0,
) -> np.ndarray:
    """Draw crater diameters (km) from a cumulative power law N(>D) = n1 * D**-slope.

    ``n1 * area`` craters of at least 1 km are expected; the count is Poisson distributed.
    """
    if not (0 < dmin_km < dmax_km):
        raise InvalidArgumentError(f"need 0 < dmin_km < dmax_km, got {dmin_km}, {dmax_km}")
    expected = n_per_km2_above_1km * area_km2 * (dmin_km**-slope - dmax_km**-slope)
    n = rng.poisson(expected)
    # inverse-CDF sampling of a truncated Pareto distribution
    u = rng.random(n)
    a, b = dmin_km**-slope, dmax_km**-slope
    return (a - u * (a - b)) ** (-1.0 / slope)


def _fractal_noise(shape: tuple[int, int], rng: np.random.Generator, beta: float = 3.2) -> np.ndarray:
    """Gaussian random field with a 1/f**beta power spectrum, unit standard deviation."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) * f ** (-beta / 2.0)
    spectrum[0, 0] = 0.0
    field_ = np.fft.irfft2(spectrum, s=shape)
    return (field_ / field_.std()).astype(np.float32)


def _crater_profile(r: np.ndarray, d_km: float) -> np.ndarray:
    """Elevation (km) of a fresh crater at normalised radius r = dist / radius.

    Simple bowls below 7 km (depth/D = 0.2); complex craters above, with a flat floor and a
    central peak and shallower depth.  Raised rim (height 0.04 D) and ejecta falling off as r**-3.
    """
    rim = 0.04 * d_km if d_km < 7 else 0.036 * d_km**0.9
    out = np.zeros_like(r)
    inside = r < 1.0
    if d_km < 7:
        depth = 0.2 * d_km
        out[inside] = rim - depth + depth * r[inside] ** 2
    else:
        depth = 0.2 * 7.0 * (d_km / 7.0) ** 0.4
        floor_r = 0.45
        ri = r[inside]
        wall = rim - depth + depth * np.clip((ri - floor_r) / (1 - floor_r), 0, 1) ** 2
        peak = 0.35 * depth * np.exp(-((ri / 0.12) ** 2))
        out[inside] = wall + peak
    outside = ~inside
    out[outside] = rim * r[outside] ** -3.0
    return out


def render_surface(
    shape: tuple[int, int],
    km_per_px: tuple[float, float],
    craters: list[tuple[float, float, float]],
    rng: np.random.Generator,
    *,
    sun_azimuth_deg: float = 270.0,
    sun_elevation_deg: float = 35.0,
    noise: float = 0.02,
    streaks: int = 3,
    background_relief_km: float = 0.12,
) -> tuple[np.ndarray, np.ndarray]:
    """Render craters ``(col, row, diameter_km)`` in formation order into an 8-bit-like image.

    Returns ``(image, visible)``: image float32 in 1..255 with 0 where there is no data, and a
    boolean per crater saying whether it remains recognisable: at most 50 % of its rim disk
    overprinted by the bowls of later craters that are at least half its size.
    """
    ny, nx = shape
    kx, ky = km_per_px
    # gentle background relief (km): with steeper terrain the craters drown in texture
    elev = background_relief_km * _fractal_noise(shape, rng)
    owner = np.full(shape, -1, dtype=np.int32)  # which crater last excavated each pixel
    diam = np.array([c[2] for c in craters])
    for i, (cx, cy, d) in enumerate(craters):
        reach = 3.0  # ejecta out to 3 radii
        rx, ry = reach * d / 2 / kx, reach * d / 2 / ky
        c0, c1 = max(int(cx - rx), 0), min(int(cx + rx) + 2, nx)
        r0, r1 = max(int(cy - ry), 0), min(int(cy + ry) + 2, ny)
        if c0 >= c1 or r0 >= r1:
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1]
        r = np.hypot((xx - cx) * kx, (yy - cy) * ky) / (d / 2)
        prof = _crater_profile(r, d)
        # inheritance: the interior replaces the older terrain, ejecta add to it
        w = np.clip((1.1 - r) / 0.2, 0, 1)
        window = elev[r0:r1, c0:c1]
        elev[r0:r1, c0:c1] = (1 - w) * window + w * float(np.median(window)) + prof
        owner[r0:r1, c0:c1][r < 0.95] = i
    # visibility rule: a crater is recognisable when more than half of its disk was not later
    # excavated by a crater at least half its size
    visible = np.ones(len(craters), dtype=bool)
    for i, (cx, cy, d) in enumerate(craters):
        rx, ry = d / 2 / kx, d / 2 / ky
        c0, c1 = max(int(cx - rx), 0), min(int(cx + rx) + 2, nx)
        r0, r1 = max(int(cy - ry), 0), min(int(cy + ry) + 2, ny)
        if c0 >= c1 or r0 >= r1:
            visible[i] = False
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1]
        disk = np.hypot((xx - cx) * kx, (yy - cy) * ky) <= d / 2
        own = owner[r0:r1, c0:c1][disk]
        later = own[(own > i)]
        big_later = later[diam[later] >= 0.5 * d] if later.size else later
        visible[i] = big_later.size <= 0.5 * max(disk.sum(), 1)
    # lighting: Lambert-like shading of slopes (km/km), warmer where facing the Sun
    gy, gx = np.gradient(elev, ky, kx)
    az, el = np.radians(sun_azimuth_deg), np.radians(sun_elevation_deg)
    sx, sy, sz = np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)
    # image rows grow southwards, so north is -y
    shade = (-gx * sx + gy * sy + sz) / np.sqrt(gx**2 + gy**2 + 1.0)
    albedo = 0.04 * _fractal_noise(shape, rng, beta=2.5)
    img = 0.55 + 1.5 * (shade - sz) + albedo + noise * rng.normal(size=shape)
    img = ndimage.gaussian_filter(img, 0.6)
    # seams between image strips: small brightness offsets in vertical strips
    edges = np.sort(rng.integers(0, nx, size=max(nx // 300, 1)))
    for e in edges:
        img[:, e:] += rng.normal(0, 0.02)
    img = np.clip(img * 200.0 + 20.0, 1.0, 255.0).astype(np.float32)
    # no-data streaks (value 0), slightly slanted like THEMIS gaps
    for _ in range(streaks):
        width = int(rng.integers(2, max(nx // 100, 3) + 1))
        x0 = rng.uniform(0, nx)
        slope_ = rng.uniform(-0.05, 0.05)
        rows = np.arange(ny)
        start = (x0 + slope_ * rows).astype(int)
        y_from, y_to = sorted(rng.integers(0, ny, size=2))
        for row in range(y_from, y_to):
            img[row, max(start[row], 0) : max(start[row] + width, 0)] = 0.0
    return img, visible


def synthetic_surface(
    bounds: tuple[float, float, float, float] = (30.0, -2.0, 32.0, 0.0),
    px_per_deg: float = 256.0,
    *,
    seed: int = 0,
    n_per_km2_above_1km: float = 2e-3,
    dmin_km: float = 1.0,
    dmax_km: float = 64.0,
    streaks: int = 3,
) -> SyntheticSurface:
    """A synthetic THEMIS-like georeferenced mosaic and its true crater catalog.

    Parameters
    ----------
    bounds
        ``(west, south, east, north)`` in degrees (any longitude convention).
    px_per_deg
        Grid resolution (256 is the ASU THEMIS tile grid, about 231.5 m/px).
    seed
        Random seed; the same seed gives the same surface.
    n_per_km2_above_1km
        Crater density N(>=1 km) per km^2 (a cumulative power law of slope -2).
    dmin_km, dmax_km
        Diameter range of the craters drawn.
    streaks
        Number of no-data streaks.

    Returns
    -------
    SyntheticSurface
        ``mosaic`` (Dataset), ``catalog`` (recognisable craters) and ``formed`` (all craters).

    Examples
    --------
    >>> ds, truth = synthetic_surface((30, -1, 31, 0), 64, seed=1)  # doctest: +SKIP
    """
    from .catalog import make_catalog
    from .crs import Grid
    from .mosaic import mosaic_from_array

    west, south, east, north = map(float, bounds)
    if not (east > west and north > south and -90 <= south and north <= 90):
        raise InvalidArgumentError(f"bounds must be (west, south, east, north) with east > west, north > south; got {bounds}")
    if not px_per_deg > 0:
        raise InvalidArgumentError(f"px_per_deg must be > 0, got {px_per_deg}")
    rng = np.random.default_rng(seed)
    nx, ny = int(round((east - west) * px_per_deg)), int(round((north - south) * px_per_deg))
    lat_c = (north + south) / 2
    km_x = KM_PER_DEGREE * np.cos(np.radians(lat_c)) / px_per_deg
    km_y = KM_PER_DEGREE / px_per_deg
    area_km2 = nx * km_x * ny * km_y
    d = crater_population(area_km2, rng, n_per_km2_above_1km=n_per_km2_above_1km, dmin_km=dmin_km, dmax_km=dmax_km)
    cols, rows = rng.uniform(-0.5, nx - 0.5, d.size), rng.uniform(-0.5, ny - 0.5, d.size)
    img, visible = render_surface((ny, nx), (km_x, km_y), list(zip(cols, rows, d)), rng, streaks=streaks)
    data = np.where(img == 0, np.nan, img).astype(np.float32)
    ds = mosaic_from_array(data, bounds=(west, south, east, north), crs=MARS_GEOGRAPHIC, name="synthetic")
    ds.attrs.update({"synthetic_seed": seed, "px_per_deg": px_per_deg})
    lon, lat = Grid.from_dataset(ds).pixel_to_lonlat(cols, rows)
    formed = make_catalog(lat, lon, d, extra={"formation_order": np.arange(d.size), "visible": visible, "x": cols, "y": rows})
    catalog = formed[formed["visible"]].reset_index(drop=True)
    for frame in (formed, catalog):
        frame.attrs.update({"source": f"synthetic_surface(seed={seed})", "area_km2": float(area_km2)})
    return SyntheticSurface(ds, catalog, formed)


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
