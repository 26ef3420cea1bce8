"""Store size and read speed of a cube of 8-bit imagery: stored as uint8 (with 0 for no data, the
default since integer storage) against float32 (how every cube was stored before).

Builds a synthetic THEMIS-like surface (``marscraters.synthetic``), writes it as an 8-bit GeoTIFF
with nodata 0 and a 40-px gap of it (what THEMIS tiles give ``ingest``), ingests it twice -- once as
it is (uint8 on disk), once with the reader's integer encoding removed (float32 on disk) -- and
reads each cube back whole (``open_mosaic(cube)["ir"].values``, float32 with NaN either way).
Best of ``--repeat`` for the times.

Usage::

    python benchmarks/bench_storage.py [--size 4096] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="side of the square surface in pixels")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from marscraters.mosaic import ingest, open_mosaic, read_image
    from marscraters.synthetic import synthetic_surface

    ppd = 592.747  # THEMIS' ~100 m/px
    side = args.size / ppd
    t0 = time.perf_counter()
    surface = synthetic_surface((30.0, -side / 2, 30.0 + side, side / 2), ppd, age_ga=3.8, seed=1)
    made = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tif = tmp / "surface.tif"
        ir = surface.mosaic["ir"]
        levels = ir.fillna(1).round().clip(1, 255)  # 1..255 are data ...
        levels[:, args.size // 3: args.size // 3 + 40] = 0  # ... and a THEMIS-like gap of 0, no data
        levels.astype("uint8").rio.write_nodata(0).rio.to_raster(tif)
        rows = {}
        for name in ("float32", "uint8"):
            ingest_s, read_s = [], []
            for i in range(args.repeat):
                ds = read_image(tif)
                if name == "float32":
                    ds["ir"].encoding = {}
                cube = tmp / f"{name}-{i}.zarr"
                t = time.perf_counter()
                ingest(ds, cube, progress=False)
                ingest_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                values = open_mosaic(cube)["ir"].values
                read_s.append(time.perf_counter() - t)
            rows[name] = {"dtype_on_disk": name, "store_mb": round(_bytes(cube) / 1e6, 2),
                          "ingest_s": round(min(ingest_s), 3), "read_s": round(min(read_s), 3),
                          "read_mpx_per_s": round(values.size / 1e6 / min(read_s), 1),
                          "nan": int(np.isnan(values).sum())}
        same = np.array_equal(open_mosaic(tmp / "uint8-0.zarr")["ir"].values,
                              open_mosaic(tmp / "float32-0.zarr")["ir"].values, equal_nan=True)
    print(json.dumps({"size_px": [int(v) for v in ir.shape], "surface_s": round(made, 1),
                      "identical_values": bool(same), **rows}, indent=1))


if __name__ == "__main__":
    main()
