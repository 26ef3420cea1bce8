"""Extraction and catalog assembly time, as a fraction of segmentation time (issue 4, benchmark 3).

Run::

    python benchmarks/bench_catalog.py [--size 3072] [--chunk 1024]

One synthetic THEMIS-like surface (``synthetic_surface``, ~100 m/px, craters 1-32 km) of
``size``² pixels is ingested into a Zarr cube, segmented with the shipped model on a CPU
``LocalCluster`` (``segment_to_zarr``) and turned into a catalog from the stored probabilities
(``catalog_from_probability``: the circle finder per chunk with its halo, then cross-border
duplicate removal), on the same cluster, in the same run.  It prints both times and the ratio
catalog / segmentation, and the number of craters found.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import xarray as xr

PX_PER_DEG = 592.747


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=3072, help="mosaic side in pixels")
    p.add_argument("--chunk", type=int, default=1024, help="Zarr/dask chunk of the probability map")
    args = p.parse_args()

    from marscraters.assemble import catalog_from_probability
    from marscraters.cluster import cluster
    from marscraters.model import DEFAULT_WEIGHTS
    from marscraters.mosaic import fill_missing, ingest, open_mosaic
    from marscraters.segment import segment_to_zarr
    from marscraters.synthetic import synthetic_surface

    side_deg = args.size / PX_PER_DEG
    surface = synthetic_surface((30.0, -side_deg, 30.0 + side_deg, 0.0), PX_PER_DEG, seed=11,
                                n_per_km2_above_1km=8e-3, dmax_km=32.0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ingest(surface.mosaic, tmp / "cube.zarr", progress=False)
        ds = fill_missing(open_mosaic(tmp / "cube.zarr"))
        n = ds.sizes["y"] * ds.sizes["x"]
        print(f"mosaic {ds.sizes['y']}x{ds.sizes['x']} ({n / 1e6:.1f} Mpx), {len(surface.catalog)} true craters, "
              f"{os.cpu_count()} CPUs")
        client = cluster(gpus=0, model=str(DEFAULT_WEIGHTS))
        try:
            t = time.perf_counter()
            segment_to_zarr(ds, tmp / "pred.zarr", chunks=args.chunk, client=client, progress=False)
            t_seg = time.perf_counter() - t
            prob = xr.open_zarr(tmp / "pred.zarr", decode_coords="all", consolidated=False)
            t = time.perf_counter()
            cat = catalog_from_probability(prob, progress=False)
            t_cat = time.perf_counter() - t
        finally:
            client.close()
    print(f"segment_to_zarr           {t_seg:7.2f} s  ({n / 1e6 / t_seg:.2f} Mpx/s)")
    print(f"catalog_from_probability  {t_cat:7.2f} s  ({len(cat)} craters)")
    print(f"catalog / segmentation    {t_cat / t_seg:7.3f}")


if __name__ == "__main__":
    main()
