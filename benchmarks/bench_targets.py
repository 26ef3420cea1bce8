"""Benchmark: render a full THEMIS tile's targets versus reading the tile itself.

Renders the ``filled`` and ``outline`` targets of one 7680 x 7680 geographic tile (256 px/deg,
lat -30..0, lon 30..60, the grid of ``thm_dir_N-30_030.png``) with ALL of that tile's Robbins
(2012) craters, and, in the same run, times decoding a 7680 x 7680 8-bit PNG of that name fully
into a float32 array.  No real tile is on the benchmark machine, so a synthetic one is written to a
temporary directory (smooth terrain plus noise, so it compresses about like real imagery).

Run from the repository root::

    python benchmarks/bench_targets.py [--repeats 3] [--chunk 2048]

Each figure is the best of ``--repeats`` runs; the ratio render / read is printed per kind.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from marscraters.crs import MARS_GEOGRAPHIC  # noqa: E402
from marscraters.targets import render_targets  # noqa: E402

TILE_CSV = "robbins2012-equatorial-tiles/CSV_Tile_01_-30_0_30_60_px.csv"
WEST, SOUTH, EAST, NORTH = 30.0, -30.0, 60.0, 0.0
PX_PER_DEG = 256
N = 7680


def shared_data() -> Path:
    env = os.environ.get("MARSCRATERS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def tile_mosaic(chunk: int | None) -> xr.Dataset:
    """A lazy Mosaic on the tile's grid (its pixels are never read by render_targets)."""
    res = 1.0 / PX_PER_DEG
    x = WEST + (np.arange(N) + 0.5) * res
    y = NORTH - (np.arange(N) + 0.5) * res
    ir = da.zeros((N, N), dtype=np.float32, chunks=chunk or -1)
    ds = xr.Dataset({"ir": (("y", "x"), ir)}, coords={"x": x, "y": y})
    return ds.rio.write_crs(MARS_GEOGRAPHIC).rio.write_transform(Affine(res, 0, WEST, 0, -res, NORTH))


def write_synthetic_tile(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    coarse = rng.normal(128, 30, (N // 64, N // 64))
    terrain = np.kron(coarse, np.ones((64, 64)))  # blocky large-scale albedo
    image = np.clip(terrain + rng.normal(0, 6, (N, N)), 1, 255).astype(np.uint8)
    path = folder / "thm_dir_N-30_030.png"
    Image.fromarray(image).save(path)
    return path


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.float32)


def best(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=2048, help="mosaic chunk size (default 2048)")
    args = parser.parse_args()

    csv = shared_data() / TILE_CSV
    if not csv.exists():
        sys.exit(f"shared data not found: {csv}")
    raw = pd.read_csv(csv)
    catalog = pd.DataFrame({
        "lat": raw["LATITUDE_CIRCLE_IMAGE"],
        "lon": raw["LONGITUDE_CIRCLE_IMAGE"],
        "diameter_km": raw["DIAM_CIRCLE_IMAGE"],
    })
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; dask scheduler: threads")
    print(f"tile: {N}x{N} px at {PX_PER_DEG} px/deg, {len(catalog)} Robbins craters "
          f"({catalog.diameter_km.min():.2f}-{catalog.diameter_km.max():.1f} km)")

    with tempfile.TemporaryDirectory() as tmp:
        png = write_synthetic_tile(Path(tmp))
        t_read, image = best(lambda: read_png(png), args.repeats)
        size_mb = png.stat().st_size / 1e6
    assert image.shape == (N, N) and image.dtype == np.float32
    print(f"read PNG ({size_mb:.0f} MB) -> float32: {t_read:.3f} s")

    with dask.config.set(scheduler="threads"):
        for chunk in (args.chunk, None):
            mosaic = tile_mosaic(chunk)
            label = f"chunks {chunk}^2" if chunk else "one chunk"
            for kind in ("filled", "outline"):
                t_graph, target = best(lambda m=mosaic, k=kind: render_targets(m, catalog, k), args.repeats)
                t_render, values = best(target.data.compute, args.repeats)
                frac = float(values.mean())
                total = t_graph + t_render
                print(f"{kind:8s} {label:14s}: graph {t_graph:.3f} s + compute {t_render:.3f} s "
                      f"= {total:.3f} s; {frac:.1%} of pixels set; render/read = {total / t_read:.2f}")


if __name__ == "__main__":
    main()
