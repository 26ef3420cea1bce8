"""Ingest THEMIS tiles (and a Mars GeoTIFF) into a chunked Zarr v3 mosaic cube.

Mirrors docs/guide/ingest.md.  Usage::

    python examples/ingest.py [--tiles thm_dir_N-30_000.png thm_dir_N-30_030.png ...] [--out DIR] [--fast]

Without --tiles it makes two adjacent synthetic tiles named like the real ASU tiles
(``marscraters download themis --tile N-30_000 --tile N-30_030`` gets the real ones), at a reduced
resolution so the example runs anywhere; --fast makes them smaller still.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import marscraters as mc
from marscraters.synthetic import synthetic_surface


def synthetic_tiles(out: Path, px_per_deg: float) -> list[Path]:
    """Two adjacent 30 x 30 degree tiles, 8-bit PNG with 0 = no data, like ``thm_dir_*.png``."""
    paths = []
    for west in (0, 30):
        surface = synthetic_surface((west, -30, west + 30, 0), px_per_deg, seed=west, n_per_km2_above_1km=2e-4, dmin_km=8)
        grey = np.nan_to_num(surface.mosaic["ir"].values, nan=0).astype(np.uint8)
        path = out / f"thm_dir_N-30_{west:03d}.png"
        Image.fromarray(grey).save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", nargs="+", help="thm_dir_N{lat}_{lon}.png tiles or Mars GeoTIFFs")
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="tiny tiles, for CI")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tiles = [Path(t) for t in args.tiles] if args.tiles else synthetic_tiles(out, 8 if args.fast else 32)

    # one tile, lazily, without writing anything
    first = mc.read_image(tiles[0])
    print(f"{tiles[0].name}: {dict(first.sizes)}, CRS {first.rio.crs.to_string()}")

    # the tiles combined on one grid and written to Zarr (same as `marscraters ingest ... --out cube.zarr`)
    cube = mc.ingest(tiles, out / "cube.zarr", chunk=128 if args.fast else 512, overwrite=True)
    ds = mc.open_mosaic(cube)  # lazy: dask-backed
    print(ds)
    grid = ds.craters.grid
    print("grid:", grid.shape, "px,", grid.px_per_deg(), "px/deg (x, y)")
    col, row = grid.lonlat_to_pixel(np.array([45.0]), np.array([-15.0]))
    print(f"lon 45, lat -15 is at pixel column {col[0]:.1f}, row {row[0]:.1f}")

    # missing data: explicit, lazy, with a mask
    filled = mc.fill_missing(ds)
    print(f"no-data fraction: {float(filled['missing'].mean().compute()):.2%}")

    # any array with bounds is a Mosaic; a Mars GeoTIFF is ingested like a tile
    image = np.random.default_rng(0).integers(1, 255, (256, 256)).astype("float32")
    small = mc.mosaic_from_array(image, bounds=(30.0, -2.0, 32.0, 0.0))
    tif = out / "small.tif"
    small["ir"].rio.to_raster(tif)
    cube2 = mc.ingest(tif, out / "small.zarr", overwrite=True)
    back = mc.open_mosaic(cube2)
    assert np.allclose(back["ir"].values, image)
    print(f"{tif.name} -> {cube2.name}: {dict(back.sizes)}, identical pixels")


if __name__ == "__main__":
    main()
