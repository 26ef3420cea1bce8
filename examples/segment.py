"""Segment a mosaic cube on a Dask cluster (local GPUs/CPUs, or an existing scheduler), resumably.

Mirrors docs/guide/segment.md.  Usage::

    python examples/segment.py [--cube cube.zarr] [--model best.keras] [--gpus auto|N] [--scheduler tcp://head:8786] [--out DIR] [--fast]

Without --cube it segments a synthetic THEMIS-like cube (--fast: a small one).  ``--gpus 4`` starts
a LocalCUDACluster with one worker per GPU (needs the [gpu] extra; without GPUs it falls back to a
CPU LocalCluster); ``--scheduler ADDRESS`` uses an existing multi-node cluster instead, whose
workers must see the cube, the model and --out on shared storage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

import marscraters as mc
from marscraters.cluster import cluster
from marscraters.errors import OutputExistsError
from marscraters.segment import partial_store_path
from marscraters.synthetic import synthetic_surface


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cube", help="mosaic cube.zarr (from `marscraters ingest`)")
    p.add_argument("--model", help="model .keras file (default: the shipped weights)")
    p.add_argument("--gpus", default="auto", help="'auto' or a number of GPUs (0: CPU)")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler")
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="a small synthetic cube, for CI")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.cube:
        cube = Path(args.cube)
    else:
        size = 0.5 if args.fast else 2.0  # degrees at THEMIS' ~100 m/px
        surface = synthetic_surface((30.0, -size, 30.0 + size, 0.0), 592.747, seed=3, n_per_km2_above_1km=8e-3, dmax_km=16)
        cube = mc.ingest(surface.mosaic, out / "cube.zarr", overwrite=True, progress=False)
    ds = mc.open_mosaic(cube)

    # lazy: a dask graph over map_overlap blocks, nothing computed yet
    lazy = ds.craters.segment(args.model)
    print(f"lazy crater_probability: {lazy.shape}, blocks {lazy.chunks}, halo {lazy.attrs['depth']} px")

    pred = out / "pred.zarr"
    gpus = args.gpus if args.gpus == "auto" else int(args.gpus)
    # a local cluster (GPUs if any, else CPUs) or an existing one; the model is preloaded on each worker
    with cluster(gpus=gpus, scheduler=args.scheduler, model=args.model) as client:
        print("cluster:", client)
        mc.segment_to_zarr(ds, pred, model=args.model, client=client, overwrite=True)

    # the store is built at .pred.zarr.partial and renamed when complete; running the same call
    # again after a crash resumes there.  A finished store is never overwritten by accident:
    print("unfinished runs are built at", partial_store_path(pred))
    try:
        mc.segment_to_zarr(ds, pred, model=args.model)
    except OutputExistsError as exc:
        print("second run:", type(exc).__name__, "-", str(exc).splitlines()[0])

    prob = xr.open_zarr(pred, decode_coords="all", consolidated=False)["crater_probability"]
    print(prob)
    print("summary:", zarr.open_group(str(pred), mode="r").attrs["segment_summary"])
    if not args.fast:  # the cluster's blocks equal the lazy result computed here, on the threaded scheduler
        assert np.allclose(prob.values, lazy.values, atol=1e-4)
        print("cluster result == threaded result")


if __name__ == "__main__":  # local clusters start worker processes that re-import this file
    main()
