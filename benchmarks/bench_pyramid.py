"""What the image pyramid costs: detect() with one scale and with the pyramid, side by side.

Run: ``python benchmarks/bench_pyramid.py [--repeats 3] [--json docs/results/bench_pyramid.json]``

On the same images, alternating, after a warm-up of both (the model load and each batch shape's
compilation excluded): THEMIS chips 440-499 at 100 m/px (levels 1 and 1/2) and two CTX MC11-E
images at 6 m/px (levels 1 ... 1/8).  Reports the median seconds of each and their ratio; the
issue's target is at most 1.4x (the extra levels hold 1/4 + 1/16 + ... of the pixels).

``--mosaics`` does the same for mosaic catalogs, ``ds.craters.catalog(levels=1)`` against
``levels="auto"`` (segmentation, circle finder and verifier of every level, on the local threads):
a synthetic THEMIS-like surface of 4096 px (100 m/px) and CTX G and H as 6 m mosaics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_pycda, a sibling script
DATA = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))


def main(argv: list[str] | None = None) -> dict:
    from marscraters.chips import read_chips
    from marscraters.detect import detect, read_grey_image
    from marscraters.pyramid import level_pixels, pyramid_levels

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--mosaics", action="store_true", help="mosaic catalogs instead of detect() on images")
    args = p.parse_args(argv)
    if args.mosaics:
        return mosaics(args)
    sets = {
        "THEMIS chips 440-499, 100 m/px": (list(read_chips(DATA / "themis-dayir-crops", indices=range(440, 500)).images),
                                           100.0),
        "CTX MC11-E G, H, 6 m/px": ([read_grey_image(DATA / "ctx-mc11e" / "images" / f"MC11E-{k}.png") for k in "GH"],
                                    6.0),
    }
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU, no GPU",
              "repeats": args.repeats, "sets": []}
    for name, (images, pixel) in sets.items():
        for levels in (1, "auto"):  # warm-up: every batch shape compiled once
            detect(images[:2], pixel_size_m=pixel, levels=levels)
        times: dict[str, list[float]] = {"1": [], "auto": []}
        for _ in range(args.repeats):
            for levels in (1, "auto"):
                t0 = time.perf_counter()
                detect(images, pixel_size_m=pixel, levels=levels)
                times[str(levels)].append(time.perf_counter() - t0)
        one, pyr = float(np.median(times["1"])), float(np.median(times["auto"]))
        shape = images[0].shape
        extra = level_pixels(shape, pyramid_levels(shape, pixel, 100.0)) / (shape[0] * shape[1])
        row = {"set": name, "images": len(images), "single_s": round(one, 2), "pyramid_s": round(pyr, 2),
               "ratio": round(pyr / one, 3), "pixels_ratio": round(extra, 3), "all_s": times}
        report["sets"].append(row)
        print(f"{name}: one scale {one:.2f} s, pyramid {pyr:.2f} s, {pyr / one:.2f}x "
              f"(pixels {extra:.2f}x)", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


def _ctx_mosaic(key: str) -> object:
    from marscraters.detect import read_grey_image
    from marscraters.mosaic import mosaic_from_array

    image = read_grey_image(DATA / "ctx-mc11e" / "images" / f"MC11E-{key}.png")
    deg = 6.0 / (2 * np.pi * 3396190.0 / 360)  # 6 m per pixel on the Mars sphere, placed at 10 E, 0 N
    return mosaic_from_array(image, (10.0, -image.shape[0] * deg, 10.0 + image.shape[1] * deg, 0.0), name=f"CTX {key}")


def mosaics(args: argparse.Namespace) -> dict:
    """Mosaic catalogs with one scale and with the pyramid, side by side."""
    from bench_pycda import _mosaic as synthetic_mosaic

    # the stitched quadrangle crops are mostly no data around their runs: a synthetic THEMIS-like
    # surface of 4096 px (the one bench_pycda.py times) stands for a whole-mosaic job
    _, themis = synthetic_mosaic(4096, REPO / "runs" / "pycda")
    sets = {"synthetic THEMIS-like surface 4096x4096 px, 100 m/px": [themis],
            "CTX MC11-E G, H as 6 m mosaics": [_ctx_mosaic("G"), _ctx_mosaic("H")]}
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU, no GPU",
              "repeats": args.repeats, "what": "ds.craters.catalog(levels=1) vs levels='auto'", "sets": []}
    for name, dss in sets.items():
        for levels in (1, "auto"):  # warm-up: the models loaded and compiled
            dss[0].craters.catalog(levels=levels, progress=False)
        times: dict[str, list[float]] = {"1": [], "auto": []}
        counts = {}
        for _ in range(args.repeats):
            for levels in (1, "auto"):
                t0 = time.perf_counter()
                counts[str(levels)] = sum(len(ds.craters.catalog(levels=levels, progress=False)) for ds in dss)
                times[str(levels)].append(time.perf_counter() - t0)
        one, pyr = float(np.median(times["1"])), float(np.median(times["auto"]))
        row = {"set": name, "mosaics": len(dss), "single_s": round(one, 2), "pyramid_s": round(pyr, 2),
               "ratio": round(pyr / one, 3), "craters": counts, "all_s": times}
        report["sets"].append(row)
        print(f"{name}: one scale {one:.2f} s, pyramid {pyr:.2f} s, {pyr / one:.2f}x; craters {counts}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
