"""Crater matching at catalog scale: time of each rule and assignment, side by side.

Run: ``python benchmarks/bench_evaluate.py [n]`` (default 200,000 craters).

The reference is n random craters with a Robbins-like size distribution (cumulative slope -2,
4..400 px) on a square whose density matches the equatorial Robbins tiles; the "predictions" are
80 % of them, jittered (5 % of the radius in position, 10 % in diameter), plus 20 % random false
craters.  Prints seconds, matches per second and the scores, and the ratio of each time to the
fastest run.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from marscraters.evaluate import evaluate


def catalog(rng: np.random.Generator, n: int, side: float) -> pd.DataFrame:
    d = 4.0 * (1 - rng.random(n)) ** (-1 / 2)  # cumulative power law, slope -2, from 4 px
    d = np.minimum(d, 400.0)
    return pd.DataFrame({"x": rng.uniform(0, side, n), "y": rng.uniform(0, side, n), "diameter_px": d})


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rng = np.random.default_rng(0)
    side = 7680.0 * np.sqrt(n / 9400)  # ~9,400 Robbins craters per 7680 px tile
    truth = catalog(rng, n, side)
    found = truth.sample(frac=0.8, random_state=1).reset_index(drop=True)
    r = found["diameter_px"].to_numpy() / 2
    found["x"] += rng.normal(0, 0.05 * r)
    found["y"] += rng.normal(0, 0.05 * r)
    found["diameter_px"] *= rng.normal(1, 0.1, len(found)).clip(0.6, 1.4)
    pred = pd.concat([found, catalog(rng, n // 5, side)], ignore_index=True)
    print(f"{n} reference craters, {len(pred)} predictions")
    rows = []
    for rule in ("deepmoon", "iou", "pycda"):
        for assignment in ("greedy", "hungarian"):
            t0 = time.perf_counter()
            res = evaluate(pred, truth, rule=rule, assignment=assignment, d_min=8)
            dt = time.perf_counter() - t0
            rows.append((rule, assignment, dt, res))
    fastest = min(r[2] for r in rows)
    for rule, assignment, dt, res in rows:
        print(f"{rule:9s} {assignment:10s} {dt:6.2f} s  x{dt / fastest:4.1f}  "
              f"{len(res.matches) / dt / 1e3:6.0f} k matches/s  P={res.precision:.4f} R={res.recall:.4f} F1={res.f1:.4f}")


if __name__ == "__main__":
    main()
