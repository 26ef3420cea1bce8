"""Benchmark: reading the 24 Robbins (2012) equatorial tiles with read_catalog vs plain pandas.

``read_catalog`` does more than ``pandas.read_csv``: it detects the format, validates every row,
normalises longitudes, builds ids and point geometries.  This measures what that costs, side by
side in one run, and (with ``--write``) what writing the merged catalog to a GeoPackage costs
against geopandas writing the bare points.

Usage::

    python benchmarks/bench_read_catalog.py [--data ../shared/data] [--repeat 5] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd

from marscraters.catalog import read_catalog, write_catalog

REPO = Path(__file__).resolve().parents[1]


def _time(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))
    p.add_argument("--data", type=Path, default=default)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--write", action="store_true", help="also time writing the merged catalog to a GeoPackage")
    args = p.parse_args()

    files = sorted((args.data / "robbins2012-equatorial-tiles").glob("CSV_Tile_*_px.csv"))
    if not files:
        raise SystemExit(f"no Robbins tiles under {args.data}; pass --data")
    print(
        f"{len(files)} tile CSVs, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB; "
        f"{platform.machine()}, {os.cpu_count()} CPUs; best and median of {args.repeat}"
    )

    def plain() -> int:
        return sum(len(pd.read_csv(f)) for f in files)

    def plain_points() -> int:
        # the least a GeoDataFrame of the tiles costs: read_csv plus the point geometries
        n = 0
        for f in files:
            df = pd.read_csv(f)
            pts = gpd.points_from_xy(df["LONGITUDE_CIRCLE_IMAGE"], df["LATITUDE_CIRCLE_IMAGE"], crs="IAU_2015:49900")
            n += len(gpd.GeoDataFrame(df, geometry=pts))
        return n

    def ours() -> int:
        return sum(len(read_catalog(f)) for f in files)

    n_plain, n_ours = plain(), ours()  # warm the file cache and imports
    assert n_plain == n_ours, (n_plain, n_ours)
    tp = _time(plain, args.repeat)
    tg = _time(plain_points, args.repeat)
    to = _time(ours, args.repeat)
    print(f"craters: {n_ours:,}")
    print(f"pandas.read_csv                        best {tp[0]:.3f} s  median {tp[1]:.3f} s")
    print(f"read_csv + points_from_xy GeoDataFrame best {tg[0]:.3f} s  median {tg[1]:.3f} s")
    print(f"marscraters.read_catalog               best {to[0]:.3f} s  median {to[1]:.3f} s")
    print(f"ratio read_catalog / read_csv:         {to[0] / tp[0]:.2f} (best), {to[1] / tp[1]:.2f} (median)")
    print(f"ratio read_catalog / read_csv+points:  {to[0] / tg[0]:.2f} (best), {to[1] / tg[1]:.2f} (median)")

    if args.write:
        cat = pd.concat([read_catalog(f) for f in files], ignore_index=True)
        with tempfile.TemporaryDirectory() as tmp:

            def gpd_points() -> None:
                out = Path(tmp) / "points.gpkg"
                cat.to_file(out, layer="craters", driver="GPKG", engine="pyogrio")
                out.unlink()

            def full(rims: bool) -> None:
                out = Path(tmp) / "catalog.gpkg"
                write_catalog(cat, out, overwrite=True, rims=rims)

            w_repeat = max(1, min(args.repeat, 3))
            tw = _time(gpd_points, w_repeat)
            tn = _time(lambda: full(False), w_repeat)
            tr = _time(lambda: full(True), w_repeat)
        print(f"GeoDataFrame.to_file (points only)          best {tw[0]:.2f} s")
        print(f"write_catalog, rims=False (points+metadata) best {tn[0]:.2f} s  ratio {tn[0] / tw[0]:.2f}")
        print(f"write_catalog (points, 64-gon rims, meta)   best {tr[0]:.2f} s  ratio {tr[0] / tw[0]:.2f}")


if __name__ == "__main__":
    main()
