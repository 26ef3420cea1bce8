"""Extraction and catalog assembly time, as a fraction of segmentation time (issue 4, benchmark 3).

Run::

    python benchmarks/bench_catalog.py [--size 3072] [--chunk 1024]

One synthetic THEMIS-like surface (``synthetic_surface``, ~100 m/px, craters 1-32 km) of
``size``² pixels is ingested into a Zarr cube, segmented with the shipped model on a CPU
``LocalCluster`` (``segment_to_zarr``) and turned into a catalog from the stored probabilities
(``catalog_from_probability``: the circle finder per chunk with its halo, then cross-border
duplicate removal), on the same cluster, in the same run.  ``--verified`` also times the verified
catalog (``mosaic=ds``: the verifier's candidates checked on the image, as ``marscraters catalog
--mosaic`` makes it).  It prints both times and the ratio
catalog / segmentation, and the number of craters found.

``--compare-old`` also times ``catalog_from_probability`` with the template finder's previous
helpers (``skimage.feature.match_template`` and ``peak_local_max`` per template, swapped back in
on the workers), alternating new, old, new, and prints the speed-up of the new finder and how many
craters the two catalogs share.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import xarray as xr

PX_PER_DEG = 592.747


def use_skimage_helpers(on: bool = True) -> None:
    """On a worker: run the template finder with its pre-speed-up skimage calls (or restore)."""
    from marscraters import extract as ex

    if not hasattr(ex, "_fast_helpers"):
        ex._fast_helpers = (ex._ncc_bank, ex._peak_local_max)
    if not on:
        ex._ncc_bank, ex._peak_local_max = ex._fast_helpers
        return
    ex._ncc_bank, ex._peak_local_max = ex._reference_ncc_bank, ex._reference_peak_local_max


def synthetic_cube(size: int, folder: Path) -> tuple[Path, xr.Dataset, int]:
    """The benchmark's surface of ``size``² px ingested into ``folder/cube.zarr``: (path, filled mosaic, true craters)."""
    from marscraters.mosaic import fill_missing, ingest, open_mosaic
    from marscraters.synthetic import synthetic_surface

    side_deg = size / PX_PER_DEG
    surface = synthetic_surface((30.0, -side_deg, 30.0 + side_deg, 0.0), PX_PER_DEG, seed=11,
                                n_per_km2_above_1km=8e-3, dmax_km=32.0)
    cube = folder / "cube.zarr"
    ingest(surface.mosaic, cube, progress=False)
    return cube, fill_missing(open_mosaic(cube)), len(surface.catalog)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=3072, help="mosaic side in pixels")
    p.add_argument("--chunk", type=int, default=1024, help="Zarr/dask chunk of the probability map")
    p.add_argument("--verified", action="store_true",
                   help="also time the verified catalog (catalog_from_probability(..., mosaic=ds): the verifier's "
                        "low-threshold candidates, each checked on the image), what `marscraters catalog --mosaic` makes")
    p.add_argument("--compare-old", action="store_true",
                   help="also time the catalog with the template finder's previous (skimage) helpers")
    args = p.parse_args()

    from marscraters.assemble import catalog_from_probability
    from marscraters.cluster import cluster
    from marscraters.model import DEFAULT_WEIGHTS
    from marscraters.segment import segment_to_zarr

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, ds, n_true = synthetic_cube(args.size, tmp)
        n = ds.sizes["y"] * ds.sizes["x"]
        print(f"mosaic {ds.sizes['y']}x{ds.sizes['x']} ({n / 1e6:.1f} Mpx), {n_true} true craters, "
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
            if args.verified:
                t_ver = []  # the first run loads the verifier on the workers; the second is warm
                for _ in range(2):
                    t = time.perf_counter()
                    verified = catalog_from_probability(prob, mosaic=ds, progress=False)
                    t_ver.append(time.perf_counter() - t)
            if args.compare_old:
                client.run(use_skimage_helpers, True)
                t = time.perf_counter()
                old = catalog_from_probability(prob, progress=False)
                t_old = time.perf_counter() - t
                client.run(use_skimage_helpers, False)
                t = time.perf_counter()
                cat = catalog_from_probability(prob, progress=False)
                t_again = time.perf_counter() - t
                print(f"catalog_from_probability: {t_cat:.2f} s, then {t_again:.2f} s (the mean is reported)")
                t_cat = (t_cat + t_again) / 2
        finally:
            client.close()
    print(f"segment_to_zarr           {t_seg:7.2f} s  ({n / 1e6 / t_seg:.2f} Mpx/s)")
    print(f"catalog_from_probability  {t_cat:7.2f} s  ({len(cat)} craters)")
    print(f"catalog / segmentation    {t_cat / t_seg:7.3f}")
    if args.verified:
        print(f"verified catalog          {t_ver[1]:7.2f} s  ({len(verified)} craters; {t_ver[0]:.2f} s the first "
              "time, with the verifier's load)")
        print(f"verified / segmentation   {t_ver[1] / t_seg:7.3f}")
    if args.compare_old:
        import numpy as np

        d = np.hypot(*(old[c].to_numpy()[:, None] - cat[c].to_numpy()[None] for c in ("lon", "lat")))
        shared = int((d.min(axis=1) < 1e-6).sum()) if len(old) and len(cat) else 0  # < 0.4 m apart
        print(f"catalog, skimage helpers  {t_old:7.2f} s  ({len(old)} craters, {shared} within 1e-6 deg of the new)")
        print(f"old catalog / segmentation {t_old / t_seg:6.3f}")
        print(f"speed-up of the catalog   {t_old / t_cat:7.2f}")


if __name__ == "__main__":
    main()
