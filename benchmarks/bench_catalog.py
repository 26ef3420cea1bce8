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
catalog / segmentation, and the number of craters found.  Segmentation runs twice and the second
(warm) time is the ratio's denominator: the first includes tracing the network's predict on the
workers (before 2026-12-07 the ratio used that first time).  The warm verified time is the best of
the second and third runs (the first loads the verifier).  The workers' peak resident memory is
printed too.

``--compare-malloc`` runs everything twice, each on a fresh cluster: first with the workers' malloc
as dask's nanny leaves it (``MALLOC_TRIM_THRESHOLD_=65536``), then as ``cluster()`` starts them, with
``marscraters.cluster.WORKER_MALLOPT`` set in each worker (the ``MallocTuning`` plugin).

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


def worker_peak_mb() -> float:
    """On a worker: its peak resident memory so far, MB (Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(client, ds, tmp: Path, args, tag: str) -> dict:
    """Segment (twice: the first run traces the network's predict on the workers) and catalogue on ``client``."""
    from marscraters.assemble import catalog_from_probability
    from marscraters.segment import segment_to_zarr

    t_segs = []
    for k in range(2):
        t = time.perf_counter()
        segment_to_zarr(ds, tmp / f"pred_{tag}_{k}.zarr", chunks=args.chunk, client=client, progress=False)
        t_segs.append(time.perf_counter() - t)
    prob = xr.open_zarr(tmp / f"pred_{tag}_0.zarr", decode_coords="all", consolidated=False)
    out = {"segment_s": t_segs}
    t = time.perf_counter()
    cat = catalog_from_probability(prob, progress=False)
    out["catalog_s"], out["n_catalog"] = time.perf_counter() - t, len(cat)
    if args.verified:
        out["verified_s"] = []  # the first run loads the verifier on the workers; then warm
        for _ in range(3):
            t = time.perf_counter()
            verified = catalog_from_probability(prob, mosaic=ds, progress=False)
            out["verified_s"].append(time.perf_counter() - t)
        out["n_verified"] = len(verified)
    if args.compare_old:
        client.run(use_skimage_helpers, True)
        t = time.perf_counter()
        old = catalog_from_probability(prob, progress=False)
        out["old_s"] = time.perf_counter() - t
        client.run(use_skimage_helpers, False)
        t = time.perf_counter()
        cat = catalog_from_probability(prob, progress=False)
        out["catalog_again_s"] = time.perf_counter() - t
        import numpy as np

        d = np.hypot(*(old[c].to_numpy()[:, None] - cat[c].to_numpy()[None] for c in ("lon", "lat")))
        out["n_old"] = len(old)
        out["shared_old"] = int((d.min(axis=1) < 1e-6).sum()) if len(old) and len(cat) else 0  # < 0.4 m apart
    out["worker_peak_mb"] = max(client.run(worker_peak_mb).values())
    return out


def report(r: dict, n: int, args, label: str) -> None:
    seg = r["segment_s"][1]
    print(f"-- {label}")
    print(f"segment_to_zarr           {seg:7.2f} s  ({n / 1e6 / seg:.2f} Mpx/s; {r['segment_s'][0]:.2f} s the first "
          "time, with the predict's tracing)")
    cat = r["catalog_s"] if "catalog_again_s" not in r else (r["catalog_s"] + r["catalog_again_s"]) / 2
    print(f"catalog_from_probability  {cat:7.2f} s  ({r['n_catalog']} craters)")
    print(f"catalog / segmentation    {cat / seg:7.3f}")
    if args.verified:
        warm = min(r["verified_s"][1:])
        print(f"verified catalog          {warm:7.2f} s  ({r['n_verified']} craters; {r['verified_s'][0]:.2f} s the "
              "first time, with the verifier's load)")
        print(f"verified / segmentation   {warm / seg:7.3f}")
    if args.compare_old:
        print(f"catalog, skimage helpers  {r['old_s']:7.2f} s  ({r['n_old']} craters, {r['shared_old']} within 1e-6 "
              "deg of the new)")
        print(f"old catalog / segmentation {r['old_s'] / seg:6.3f}")
        print(f"speed-up of the catalog   {r['old_s'] / cat:7.2f}")
    print(f"worker peak memory        {r['worker_peak_mb']:7.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=3072, help="mosaic side in pixels")
    p.add_argument("--chunk", type=int, default=1024, help="Zarr/dask chunk of the probability map")
    p.add_argument("--verified", action="store_true",
                   help="also time the verified catalog (catalog_from_probability(..., mosaic=ds): the verifier's "
                        "low-threshold candidates, each checked on the image), what `marscraters catalog --mosaic` makes")
    p.add_argument("--compare-old", action="store_true",
                   help="also time the catalog with the template finder's previous (skimage) helpers")
    p.add_argument("--compare-malloc", action="store_true",
                   help="also run everything on a cluster whose workers keep dask's malloc settings only (without "
                        "marscraters.cluster.WORKER_MALLOPT), before the cluster with them")
    args = p.parse_args()

    from marscraters import cluster as mc_cluster
    from marscraters.model import DEFAULT_WEIGHTS

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, ds, n_true = synthetic_cube(args.size, tmp)
        n = ds.sizes["y"] * ds.sizes["x"]
        print(f"mosaic {ds.sizes['y']}x{ds.sizes['x']} ({n / 1e6:.1f} Mpx), {n_true} true craters, "
              f"{os.cpu_count()} CPUs")
        configs = [("dask's malloc settings only", False), ("marscraters' workers", True)] if args.compare_malloc \
            else [("marscraters' workers", True)]
        for k, (label, tuned) in enumerate(configs):
            if tuned:
                client = mc_cluster.cluster(gpus=0, model=str(DEFAULT_WEIGHTS))
            else:  # what cluster() starts, without its MallocTuning plugin
                from distributed import Client

                client = Client(mc_cluster._cpu_cluster(None, None))
                mc_cluster.preload_model(client, DEFAULT_WEIGHTS)
            try:
                result = run(client, ds, tmp, args, str(k))
            finally:
                cl = client.cluster
                client.close()
                cl.close()
            report(result, n, args, label)


if __name__ == "__main__":
    main()
