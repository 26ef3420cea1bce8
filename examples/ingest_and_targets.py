"""Ingest a THEMIS tile into a Zarr cube, read a Robbins catalog and render lazy target layers.

Usage::

    python examples/ingest_and_targets.py [--tile thm_dir_N-30_030.png] [--catalog robbins.csv] [--out DIR] [--fast]

Without --tile it makes a reduced-resolution synthetic tile (so the example runs anywhere);
without --catalog it uses the synthetic surface's true catalog.  With the real data:
``marscraters download themis --tile N-30_030`` and ``marscraters download robbins``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import marscraters as mc
from marscraters.synthetic import synthetic_surface


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tile")
    p.add_argument("--catalog")
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="small sizes, for CI")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.tile is None:
        # a whole 30x30 degree tile at reduced resolution, named like a real ASU tile
        ppd = 8 if args.fast else 32
        surface = synthetic_surface((30, -30, 60, 0), ppd, seed=7, n_per_km2_above_1km=2e-4, dmin_km=8)
        img = np.nan_to_num(surface.mosaic["ir"].values, nan=0).astype(np.uint8)
        tile = out / "thm_dir_N-30_030.png"
        Image.fromarray(img).save(tile)
        catalog = surface.catalog
    else:
        tile = Path(args.tile)
        catalog = None

    cube = mc.ingest([tile], out / "cube.zarr", overwrite=True)
    ds = mc.open_mosaic(cube)
    print(ds)

    if args.catalog:
        catalog = mc.read_catalog(args.catalog, errors="drop")
    craters = mc.filter_catalog(catalog, diameter_range=(2, 32), footprint=ds)
    print(f"{len(craters)} craters of 2-32 km inside the tile")

    outline = ds.craters.targets(craters, kind="outline")  # lazy: nothing computed yet
    print(outline)
    fraction = float(outline.mean().compute())
    print(f"outline target covers {fraction:.2%} of the tile")
    mc.write_catalog(craters, out / "craters.gpkg", overwrite=True)


if __name__ == "__main__":
    main()
