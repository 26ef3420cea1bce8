"""Choose the circle finder's method and thresholds on a model's *validation* probability maps.

Usage::

    python benchmarks/evaluate_model.py --model M --test 440:500 --save-probabilities VALMAPS
    python benchmarks/tune_extraction.py VALMAPS --target outline [--d-min 16] [--json out.json]

Grid-searches method x thresholds by crater-level F1 (DeepMoon rule, recall on truths >= d_min,
precision on detections >= 0.8 d_min) and prints the ranking.  Only validation chips are used,
never the held-out test chips.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd

from marscraters.evaluate import evaluate, side_by_side
from marscraters.extract import extract_craters

GRID = {
    "components": {"threshold": [0.3, 0.4, 0.5, 0.6], "relative_threshold": [0.0]},
    "template": {"threshold": [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8], "template_threshold": [0.4, 0.45, 0.5],
                 "relative_threshold": [0.0]},
    "hough": {"threshold": [0.3], "hough_threshold": [0.4, 0.6], "relative_threshold": [0.0]},
}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("maps")
    p.add_argument("--target", default="outline")
    p.add_argument("--d-min", type=float, default=16.0)
    p.add_argument("--methods", default="components,template,hough")
    p.add_argument("--json")
    args = p.parse_args(argv)
    folder = Path(args.maps)
    probs = [np.load(f).astype(np.float32) for f in sorted(folder.glob("prob_*.npy"))]
    truths = [pd.read_csv(f) for f in sorted(folder.glob("truth_*.csv"))]
    truth = side_by_side(truths)
    rows = []
    for method in args.methods.split(","):
        grid = GRID[method]
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            t0 = time.perf_counter()
            pred = side_by_side([extract_craters(pr, target=args.target, method=method, **params) for pr in probs])
            seconds = time.perf_counter() - t0
            # the score ranks detections: sweep a minimum score too (a point of the P-R curve)
            for min_score in (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                kept = pred[pred["score"] >= min_score]
                if kept.empty:
                    continue
                r = evaluate(kept, truth, rule="deepmoon", d_min=args.d_min)
                rows.append({"method": method, **params, "min_score": min_score, "precision": r.precision,
                             "recall": r.recall, "f1": r.f1, "seconds": seconds})
            print(max((r for r in rows if r["method"] == method), key=lambda r: r["f1"]), flush=True)
    table = pd.DataFrame(rows).sort_values("f1", ascending=False)
    print(table.to_string(index=False))
    if args.json:
        Path(args.json).write_text(table.to_json(orient="records", indent=2))
    return table


if __name__ == "__main__":
    main()
