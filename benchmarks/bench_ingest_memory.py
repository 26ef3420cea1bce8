"""Peak memory and time of ``marscraters.ingest`` on one full-size THEMIS tile.

Writes a synthetic 7680 x 7680 8-bit tile PNG (the size of a real ASU ``thm_dir`` tile, with
streaks of 0 = no data) to a temporary directory, then runs, each in a fresh subprocess:

* ``import``: ``import marscraters.mosaic`` only, the interpreter's own footprint;
* ``tiny``: ``ingest`` of a 240 x 240 tile -- the same imports, threads and code paths, so its
  peak is the fixed overhead that does not grow with the image;
* ``ingest``: ``marscraters.ingest(tile, cube.zarr)`` -- windowed, lazy reads;
* ``ingest16``: the same with ``GDAL_CACHEMAX=16`` (MB): GDAL's block cache otherwise keeps
  decoded PNG lines (up to 5 % of RAM by default);
* ``dask_order``: the same lazy strips written with one ``ds.to_zarr`` call, so dask picks the
  order in which strips are decoded (``ingest`` writes them top to bottom, one at a time; PNG
  restarts decoding from the top whenever a strip above the last one read is asked for);
* ``eager``: the naive way, reading the whole tile into memory as float32 and writing the same
  Zarr cube from it.

Peak RSS of each child comes from ``os.wait4`` (``ru_maxrss``).  The figure of merit is the
child's peak RSS above the ``tiny`` run, as a fraction of the whole image as float32
(7680^2 * 4 B = 225 MiB = 236 MB).

Usage::

    python benchmarks/bench_ingest_memory.py [--size 7680] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = {
    # the tile is made in a child too: ru_maxrss of a forked child starts at the parent's
    # high-water mark, so the parent must stay small
    "make_tile": textwrap.dedent(
        """
        import sys
        import numpy as np
        from PIL import Image
        n = int(sys.argv[2])
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        img = 128 + 60 * np.sin(xx / 300) * np.cos(yy / 200) + rng.normal(0, 10, (n, n)).astype(np.float32)
        img = img.clip(1, 255).astype(np.uint8)
        img[n // 7 : n // 7 + max(1, n // 77), :] = 0  # a missing orbit strip
        img[:, 2 * n // 3 : 2 * n // 3 + max(1, n // 150)] = 0
        Image.fromarray(img).save(sys.argv[1])
        """
    ),
    "import": "import marscraters.mosaic",
    "ingest": textwrap.dedent(
        """
        import sys
        from marscraters.mosaic import ingest
        ingest(sys.argv[1], sys.argv[2], progress=False)
        """
    ),
    "dask_order": textwrap.dedent(
        """
        import sys
        from marscraters.mosaic import read_themis_tile
        ds = read_themis_tile(sys.argv[1])  # the same lazy 512-row strips as ingest reads
        ds["ir"].encoding["chunks"] = (512, 512)
        ds.to_zarr(sys.argv[2], zarr_format=3, consolidated=False)  # strips in dask's order
        """
    ),
    "eager": textwrap.dedent(
        """
        import sys, warnings
        import numpy as np, rasterio, xarray as xr
        from affine import Affine
        from marscraters.mosaic import mosaic_from_array
        warnings.simplefilter("ignore")
        with rasterio.open(sys.argv[1]) as src:
            raw = src.read(1)
        ir = raw.astype(np.float32)
        ir[raw == 0] = np.nan
        del raw
        n = ir.shape[0]
        ds = mosaic_from_array(ir, (0, 0, 30, 30))
        ds["ir"].encoding["chunks"] = (512, 512)
        ds.to_zarr(sys.argv[2], zarr_format=3, consolidated=False)
        """
    ),
}


def run_child(
    kind: str, tile: Path, out: Path | str, extra_env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Run one child; return (peak RSS in MiB, wall time in s)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra_env or {})
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD[kind], str(tile), str(out)], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed with exit code {proc.returncode}")
    return usage.ru_maxrss / 1024.0, elapsed  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=7680, help="tile side in pixels (7680 = real tile)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each child; the best is kept")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "big").mkdir()
        (tmpdir / "tiny").mkdir()
        tile = tmpdir / "big" / "thm_dir_N00_000.png"
        tiny = tmpdir / "tiny" / "thm_dir_N00_000.png"
        t0 = time.perf_counter()
        run_child("make_tile", tile, str(args.size))
        run_child("make_tile", tiny, "240")
        print(f"synthetic tile: {args.size}^2 px, {tile.stat().st_size / 1e6:.1f} MB PNG "
              f"(written in {time.perf_counter() - t0:.1f} s)")
        image_mib = args.size**2 * 4 / 2**20
        plan = [
            ("import", "import", tile, {}),
            ("tiny", "ingest", tiny, {}),
            ("ingest", "ingest", tile, {}),
            ("ingest16", "ingest", tile, {"GDAL_CACHEMAX": "16"}),
            ("dask_order", "dask_order", tile, {}),
            ("eager", "eager", tile, {}),
        ]
        results: dict[str, tuple[float, float]] = {}
        for label, kind, src, env in plan:
            best = (float("inf"), float("inf"))
            for k in range(args.repeat):
                rss, wall = run_child(kind, src, tmpdir / f"{label}-{k}.zarr", env)
                best = (min(best[0], rss), min(best[1], wall))
            results[label] = best

        base = results["tiny"][0]
        print(f"\nwhole image as float32: {image_mib:.0f} MiB; fixed overhead (tiny ingest) {base:.0f} MiB, "
              f"import only {results['import'][0]:.0f} MiB\n")
        print(f"{'child':<10} {'peak RSS MiB':>13} {'above tiny':>11} {'/ image':>8} {'wall s':>7}")
        for label, (rss, wall) in results.items():
            above = rss - base
            print(f"{label:<10} {rss:>13.0f} {above:>11.0f} {above / image_mib:>8.2f} {wall:>7.2f}")
        ing, eag, dord = results["ingest"], results["eager"], results["dask_order"]
        print(
            f"\ningest: {(ing[0] - base) / image_mib:.2f}x the image's float32 size above the fixed "
            f"overhead ({(ing[0] - base) / max(eag[0] - base, 1e-9):.2f}x the eager read's), in "
            f"{ing[1] / eag[1]:.2f}x the eager read's time and {ing[1] / dord[1]:.2f}x the dask-ordered "
            "write's."
        )


if __name__ == "__main__":
    main()
