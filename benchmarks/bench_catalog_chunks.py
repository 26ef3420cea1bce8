"""Catalog time and peak memory whatever the probability store's storage chunks (issue 26, item 1).

Run::

    python benchmarks/bench_catalog_chunks.py [--size 2048] [--small 64] [--rounds 2] [--verify]
                                              [--storage-blocks]

One synthetic THEMIS-like surface (``bench_catalog.synthetic_cube``: ``synthetic_surface``, ~100
m/px, craters 1-32 km) of ``size``² pixels is ingested into a Zarr cube and segmented once with the
shipped model (``segment_to_zarr``, default chunks).  The probability map is then copied into a
second store with ``--small``-px storage chunks (what ``segment --chunk 1024`` wrote on a 4160-px
cube before the fix), and ``catalog_from_probability`` runs on each store, alternately, each time in
a fresh Python process so that each run's peak memory is its own.  Each store is opened both
ways: with dask chunks equal to its storage chunks (xarray's default, ``dask``) and without dask
(``chunks=None``, ``lazy``: how ``marscraters catalog`` opens it, so that each block is one read).  Reported per store: the best
time of ``--rounds`` runs, the peak resident memory during the call (sampled every 10 ms from
``/proc/self/statm``; Linux) and what the process held before it (imports, the opened store), the
number of finder windows, and whether the two catalogs are identical.

``--verify`` also gives the catalog the mosaic's image, so the shipped verifier checks every
candidate.  ``--storage-blocks`` adds a run on the small-chunk store with ``block_px`` equal to its
storage chunk: the windows the catalog used before work units were decoupled from storage (slow:
minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# one catalog run in a fresh interpreter; prints one JSON line
_CHILD = r"""
import json, os, sys, threading, time
import xarray as xr
from dask.callbacks import Callback

from marscraters.assemble import catalog_from_probability
from marscraters.mosaic import open_mosaic

store, cube, block_px, out, opening = sys.argv[1:6]
# "dask": dask chunks = the storage chunks (xarray's default); "lazy": no dask, as `catalog` opens it
prob = xr.open_zarr(store, decode_coords="all", consolidated=False, **({"chunks": None} if opening == "lazy" else {}))
mosaic = open_mosaic(cube) if cube != "-" else None
kwargs = {} if block_px == "-" else {"block_px": int(block_px)}
windows = []
def pretask(key, dsk, state):
    if isinstance(key, str) and key.startswith("_extract_window"):
        windows.append(key)
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
# the imports' own peak hides the call's in ru_maxrss: sample the resident memory instead
peak, done = [rss()], threading.Event()
def sample():
    while not done.wait(0.01):
        peak[0] = max(peak[0], rss())
before = peak[0]
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
t = time.perf_counter()
with Callback(pretask=pretask):
    cat = catalog_from_probability(prob, mosaic=mosaic, verify=None if mosaic is not None else False,
                                   progress=False, **kwargs)
seconds = time.perf_counter() - t
done.set()
sampler.join()
peak = max(peak[0], rss())
cat[["x", "y", "diameter_px", "score"]].to_csv(out, index=False)
print(json.dumps({"seconds": seconds, "peak_mb": peak / 2**20, "before_mb": before / 2**20,
                  "windows": len(windows), "craters": len(cat),
                  "chunks": list(prob["crater_probability"].encoding.get("chunks", ())), "open": opening}))
"""


def run_catalog(store: Path, cube: Path | None, out: Path, block_px: int | None = None, opening: str = "dask") -> dict:
    """``catalog_from_probability`` on ``store`` in a fresh process; its time, memory and windows."""
    cmd = [sys.executable, "-c", _CHILD, str(store), str(cube) if cube else "-",
           str(block_px) if block_px else "-", str(out), opening]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"catalog run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048, help="mosaic side in pixels")
    p.add_argument("--small", type=int, default=64, help="storage chunk of the second store (pixels)")
    p.add_argument("--rounds", type=int, default=2, help="catalog runs per case (alternating); the best is kept")
    p.add_argument("--verify", action="store_true", help="verify the candidates with the shipped verifier")
    p.add_argument("--block-px", type=int, default=None,
                   help="block_px of catalog_from_probability on both stores (default: its own)")
    p.add_argument("--storage-blocks", action="store_true",
                   help="also run with block_px = the small storage chunk (the old units of work)")
    args = p.parse_args()

    import xarray as xr
    from bench_catalog import synthetic_cube

    from marscraters.segment import segment_to_zarr

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cube, ds, n_true = synthetic_cube(args.size, tmp)
        print(f"mosaic {ds.sizes['y']}x{ds.sizes['x']} ({ds.sizes['y'] * ds.sizes['x'] / 1e6:.1f} Mpx), "
              f"{n_true} true craters; {os.cpu_count()} CPUs, {platform.machine()}, "
              f"python {platform.python_version()}")
        t = time.perf_counter()
        default = segment_to_zarr(ds, tmp / "pred.zarr", progress=False)
        print(f"segment_to_zarr: {time.perf_counter() - t:.1f} s")
        prob = xr.open_zarr(default, decode_coords="all", consolidated=False)
        small = tmp / f"pred{args.small}.zarr"
        copy = prob.chunk(args.small)
        for var in copy.variables.values():
            var.encoding = {}
        copy.to_zarr(small, zarr_format=3, consolidated=False)
        n_files = sum(1 for _ in (small / "crater_probability").rglob("*") if _.is_file())
        print(f"copied to {small.name}: {n_files} files")

        mosaic = cube if args.verify else None
        stores = {"default": default, "small": small}
        cases = [(name, opening) for opening in ("dask", "lazy") for name in stores]
        runs: dict[tuple[str, str], list[dict]] = {case: [] for case in cases}
        for r in range(args.rounds):
            for name, opening in cases:
                res = run_catalog(stores[name], mosaic, tmp / f"{name}-{opening}.csv", args.block_px, opening)
                runs[name, opening].append(res)
                print(f"  round {r + 1} {name:8s} {opening:5s} {res['seconds']:7.1f} s  peak {res['peak_mb']:6.0f} MB "
                      f"({res['peak_mb'] - res['before_mb']:+.0f} MB in the call)", flush=True)
        if args.storage_blocks:
            runs["old units", "dask"] = [run_catalog(small, mosaic, tmp / "old.csv", args.small, "dask")]
        texts = {(tmp / f"{name}-{opening}.csv").read_text() for name, opening in cases}

    def best(case: tuple[str, str]) -> dict:
        return min(runs[case], key=lambda r: r["seconds"])

    print(f"\n{'store':18s} {'opened':>6s} {'storage chunks':>14s} {'windows':>8s} {'time':>8s} {'peak RSS':>9s} "
          f"{'in the call':>11s} {'craters':>8s} {'time, peak vs default':>22s}")
    for name, opening in runs:
        r, ref = best((name, opening)), best(("default", opening))
        label = {"default": "default (segment)", "small": f"{args.small}-px chunks",
                 "old units": f"{args.small}-px, old units"}[name]
        print(f"{label:18s} {opening:>6s} {'x'.join(map(str, r['chunks'])):>14s} {r['windows']:8d} {r['seconds']:7.1f}s "
              f"{r['peak_mb']:7.0f}MB {r['peak_mb'] - r['before_mb']:9.0f}MB {r['craters']:8d} "
              f"{r['seconds'] / ref['seconds']:10.2f}x {r['peak_mb'] / ref['peak_mb']:6.2f}x")
    print(f"all {len(cases)} catalogs identical: {len(texts) == 1}")


if __name__ == "__main__":
    main()
