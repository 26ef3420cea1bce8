"""What `segment_to_zarr`'s resume check costs: the digest of every block's input pixels.

Run: ``python benchmarks/bench_resume_digest.py [--size 4096] [--rounds 3]``

Each done block's marker holds a digest of the pixels its network saw (its region grown by the
halo), so that a resumed run can refuse a mosaic whose pixels changed.  This segments one
synthetic THEMIS-like surface (``bench_catalog.synthetic_cube``) with ``segment_to_zarr`` (1024-px
blocks, threaded scheduler, the shipped model; the first run, which traces the network, is left
out) and, alternately, computes the digests alone (the added work: each block's input read again
from the cube and hashed), ``--rounds`` times, and prints the medians.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_catalog import synthetic_cube  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    import dask
    import xarray as xr

    from marscraters import segment as sg
    from marscraters.mosaic import open_mosaic

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp())
    cube, _, _ = synthetic_cube(args.size, tmp)
    ds = open_mosaic(cube)
    sg.segment_to_zarr(ds, tmp / "warm.zarr", chunks=1024, progress=False)
    depth = int(xr.open_zarr(tmp / "warm.zarr", consolidated=False)["crater_probability"].attrs["depth"])
    ir = ds["ir"].data
    ny, nx = ir.shape
    regions = [sg._with_halo((slice(y, min(ny, y + 1024)), slice(x, min(nx, x + 1024))), depth, (ny, nx))
               for y in range(0, ny, 1024) for x in range(0, nx, 1024)]
    seg, dig = [], []
    for k in range(args.rounds):
        t = time.perf_counter()
        sg.segment_to_zarr(ds, tmp / f"p{k}.zarr", chunks=1024, progress=False)
        seg.append(time.perf_counter() - t)
        t = time.perf_counter()
        dask.compute(*[dask.delayed(sg._input_digest)(ir[r]) for r in regions])
        dig.append(time.perf_counter() - t)
    out = {"segment_s": float(np.median(seg)), "digests_s": float(np.median(dig)), "blocks": len(regions),
           "depth": depth}
    print(f"segment_to_zarr {out['segment_s']:.2f} s; the digests of its {len(regions)} blocks alone "
          f"{out['digests_s']:.2f} s ({out['digests_s'] / out['segment_s']:.1%} of it, halo {depth} px)")
    return out


if __name__ == "__main__":
    main()
