"""Crater catalogs: read and filter, find craters in a probability map, write GeoPackage/CSV/craterstats.

Mirrors docs/guide/catalogs.md.  Usage::

    python examples/catalogs.py [--catalog RobbinsCraters_20121016.tsv] [--out DIR] [--fast]

It segments a synthetic THEMIS-like cube (whose true catalog is known) with the shipped model,
turns the probability into one seamless georeferenced catalog chunk by chunk, and writes it in
every format.  The reference catalog is --catalog, else a Robbins & Hynek (2012) tile CSV from
../shared/data when present, else the synthetic truth.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pyogrio
import xarray as xr

import marscraters as mc
from marscraters.catalog import write_craterstats, write_csv
from marscraters.synthetic import synthetic_surface

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO / ".." / "shared" / "data"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--catalog", help="a reference catalog file (Robbins TSV/CSV, GeoPackage, .diam, ...)")
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="a small synthetic cube, for CI")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # --- reading and filtering a reference catalog
    robbins_tile = SHARED / "robbins2012-equatorial-tiles"
    tiles = sorted(robbins_tile.glob("CSV_Tile_*_px.csv")) if robbins_tile.is_dir() else []
    if args.catalog or tiles:
        reference = mc.read_catalog(args.catalog or tiles[0], errors="drop")
        print(f"{Path(reference.attrs['source']).name}: {len(reference)} craters ({reference.attrs['format']})")
        mid = mc.filter_catalog(reference, diameter_range=(2, 32))
        print(f"  {len(mid)} of 2-32 km, within lon/lat bounds {mid.total_bounds.round(2).tolist()}")

    # --- a mosaic with a known catalog, and its crater probability (see examples/segment.py)
    size = 0.5 if args.fast else 1.5
    surface = synthetic_surface((30.0, -size, 30.0 + size, 0.0), 592.747, seed=5, n_per_km2_above_1km=3e-2, dmax_km=16)
    cube = mc.ingest(surface.mosaic, out / "cube.zarr", overwrite=True, progress=False)
    ds = mc.open_mosaic(cube)
    mc.segment_to_zarr(ds, out / "pred.zarr", overwrite=True, progress=False)  # `marscraters segment`

    # --- probability -> one seamless catalog (`marscraters catalog pred.zarr --out craters.gpkg`)
    # the store's chunks are the units of work; craters found twice across borders are merged
    prob = xr.open_zarr(out / "pred.zarr", decode_coords="all", consolidated=False)
    prob = prob.chunk({"y": ds.sizes["y"] // 2, "x": ds.sizes["x"] // 2})  # 2 x 2 chunks, to show the seams vanish
    detected = mc.catalog_from_probability(prob, mosaic=ds, progress=False)
    print(f"detected {len(detected)} craters in {prob['crater_probability'].data.numblocks} chunks")
    print(detected[["crater_id", "lat", "lon", "diameter_km", "score"]].head())

    # --- GeoPackage: points, rim polygons and a metadata table
    gpkg = mc.write_catalog(detected, out / "craters.gpkg", overwrite=True,
                            metadata={"input_mosaic": str(cube), "note": "examples/catalogs.py"})
    print("layers:", [name for name, _ in pyogrio.list_layers(gpkg)])
    again = mc.read_catalog(gpkg)
    assert again.crs.equals(mc.MARS_GEOGRAPHIC) and len(again) == len(detected)
    print("metadata read back:", {k: again.attrs[k] for k in ("model", "input_mosaic", "n_craters") if k in again.attrs})

    # --- the truth, filtered to the cube, and the other formats
    truth = mc.filter_catalog(surface.catalog, footprint=ds, diameter_range=(1, None))
    mc.write_catalog(truth, out / "truth.gpkg", overwrite=True)
    write_csv(detected, out / "craters.csv", overwrite=True)
    area_km2 = float(surface.catalog.attrs.get("area_km2") or 0.0) or 1.0
    write_craterstats(detected, out / "craters.diam", area_km2=area_km2, overwrite=True)
    print("craterstats count:", (out / "craters.diam").read_text().splitlines()[:3])
    assert len(mc.read_catalog(out / "craters.diam")) == len(detected)


if __name__ == "__main__":
    main()
