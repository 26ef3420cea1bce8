"""Many chips in one `detect` call against one call per chip, end to end (image -> verified craters).

Run from the repository root::

    python benchmarks/bench_detect_batch.py [--chips ../shared/data/themis-dayir-crops] [--test 500:600]
        [--rounds 2] [--batch-size 4] [--json out.json]

The held-out 416² THEMIS chips (``--test``, read once beforehand) go through the shipped model,
circle finder and verifier twice per round, alternately: one ``detect(chip, pixel_size_m=100)``
call per chip, then one ``detect(chips, pixel_size_m=100)`` call for all of them (same-sized
chips ``--batch-size`` per network call, every candidate verified in full classifier batches).
The model load is excluded from both: one warm-up call of each kind first loads the model
(``detect`` keeps it per process) and traces its batch shapes.  Prints seconds per chip for both,
best of ``--rounds``, in wall-clock and in CPU seconds of the process (all its threads; the
steadier figure on a machine shared with other work), and how far the two tables differ: the
craters per chip, and the largest difference of any coordinate, diameter or score between
matching rows.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    from marscraters.detect import detect, read_grey_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", default=str(REPO.parent / "shared" / "data" / "themis-dayir-crops"))
    p.add_argument("--test", default="500:600", help="chip numbers lo:hi (crater{i}.jpg)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4, help="chips per network call in the one-call run")
    p.add_argument("--json")
    args = p.parse_args(argv)
    lo, hi = (int(v) for v in args.test.split(":"))
    chips = [read_grey_image(Path(args.chips) / "images" / f"crater{i}.jpg") for i in range(lo, hi)]

    def one_by_one() -> pd.DataFrame:
        return pd.concat([detect(c, pixel_size_m=100.0).assign(image=i) for i, c in enumerate(chips)],
                         ignore_index=True)

    def one_call() -> pd.DataFrame:
        return detect(chips, pixel_size_m=100.0, batch_size=args.batch_size)

    # warm-up: the model and verifier load, and each batch shape is traced, outside the timings
    detect(chips[0], pixel_size_m=100.0)
    detect(chips[: args.batch_size + 1], pixel_size_m=100.0, batch_size=args.batch_size)
    best = {"one by one": float("inf"), "one call": float("inf")}
    cpu = dict(best)
    tables: dict[str, pd.DataFrame] = {}
    for _ in range(args.rounds):
        for name, run in (("one by one", one_by_one), ("one call", one_call)):
            t0, c0 = time.perf_counter(), time.process_time()
            tables[name] = run()
            best[name] = min(best[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], time.process_time() - c0)

    a, b = tables["one by one"], tables["one call"][["x", "y", "diameter_px", "diameter_m", "score", "image"]]
    same_counts = bool((a.groupby("image").size().reindex(range(len(chips)), fill_value=0)
                        == b.groupby("image").size().reindex(range(len(chips)), fill_value=0)).all())
    cols = ["x", "y", "diameter_px", "score"]
    max_diff = {c: float(np.abs(a[c].to_numpy() - b[c].to_numpy()).max()) for c in cols} if same_counts else None
    n = len(chips)
    result = {
        "date": str(_dt.date.today()), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "chips": n,
        "batch_size": args.batch_size, "rounds": args.rounds,
        "s_per_chip": {k: v / n for k, v in best.items()}, "speedup": best["one by one"] / best["one call"],
        "cpu_s_per_chip": {k: v / n for k, v in cpu.items()}, "cpu_speedup": cpu["one by one"] / cpu["one call"],
        "load_average": os.getloadavg(),
        "craters": {k: len(v) for k, v in tables.items()}, "same_craters_per_chip": same_counts,
        "max_abs_difference": max_diff,
    }
    print(f"{result['date']}, {result['machine']}, {n} chips {lo}-{hi - 1}, best of {args.rounds}, "
          f"load average at the end {result['load_average'][0]:.1f}")
    print("| run | s per chip | CPU s per chip | craters |\n|---|---|---|---|")
    for name in best:
        print(f"| {name} | {best[name] / n:.3f} | {cpu[name] / n:.3f} | {len(tables[name])} |")
    print(f"one call: {result['speedup']:.2f}x faster ({result['cpu_speedup']:.2f}x less CPU); same craters per "
          f"chip: {same_counts}; largest difference: {max_diff}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
