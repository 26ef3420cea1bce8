"""End-to-end ``detect`` time of two model files on the same chips, alternating.

Run: ``python benchmarks/bench_models.py A.keras B.keras [--images 440:500] [--repeats 3] [--json out.json]``

Each model (with the verifier and settings its file names) runs ``detect`` on THEMIS chips
``--images`` (100 m/px, one call for all of them), alternately, after a warm-up call of each (the
model loads excluded); the median seconds of each and their ratio are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))


def main(argv: list[str] | None = None) -> dict:
    from marscraters.chips import read_chips
    from marscraters.detect import detect, model_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs=2)
    p.add_argument("--images", default="440:500")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args(argv)
    lo, hi = (int(v) for v in args.images.split(":"))
    chips = list(read_chips(DATA / "themis-dayir-crops", indices=range(lo, hi)).images)
    for m in args.models:  # warm-up: loads and first traces
        detect(chips[:2], pixel_size_m=100.0, model=m, progress=False)
    times: dict[str, list[float]] = {m: [] for m in args.models}
    found = {}
    for _ in range(args.repeats):
        for m in args.models:
            t0 = time.perf_counter()
            found[m] = len(detect(chips, pixel_size_m=100.0, model=m, progress=False))
            times[m].append(time.perf_counter() - t0)
    med = {m: float(np.median(t)) for m, t in times.items()}
    a, b = args.models
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU, no GPU",
              "images": args.images, "repeats": args.repeats,
              "models": {m: {"name": model_info(m)["name"], "tta": model_info(m)["tta"], "median_s": round(med[m], 2),
                             "all_s": times[m], "craters": found[m]} for m in args.models},
              "ratio_b_over_a": round(med[b] / med[a], 3)}
    for m in args.models:
        print(f"{report['models'][m]['name']} (tta {report['models'][m]['tta']}): {med[m]:.2f} s, {found[m]} craters")
    print(f"ratio {report['ratio_b_over_a']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
