"""The fine model's verifier threshold swept on CTX validation images (``cameras_rule.md``, addenda 1 and 3).

Run: ``python benchmarks/fine_threshold.py [--images G H] [--model M] [--verify V]
[--json docs/results/fine_threshold_validation.json]``

``detect`` with the model for fine imagery (and ``--verify``, else the verifier the model names)
runs at each threshold from 0.30 to 0.90 (``extract_options={"min_score": t}``), as a user would
set it: the verifier's cascade averages its orientations for the candidates near that threshold.
Scores: DeepMoon rule, floor scoring at 16 px, truth = the clustered boxes of at least
``--min-confidence`` of the six annotators, craters pooled over the images.  This script only
reports; the rule chooses.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))


def main(argv: list[str] | None = None) -> dict:
    from marscraters.chips import read_voc_labels
    from marscraters.detect import detect, model_info, read_grey_image
    from marscraters.evaluate import evaluate, side_by_side
    from marscraters.model import FINE_WEIGHTS
    from marscraters.verify import resolve_verifier

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", nargs="+", default=["G", "H"])
    p.add_argument("--min-confidence", type=int, default=3)
    p.add_argument("--model", default=str(FINE_WEIGHTS))
    p.add_argument("--verify", default=None, help="a verifier file (default: the one the model names)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    folder = DATA / "ctx-mc11e"
    images = [read_grey_image(folder / "images" / f"MC11E-{k}.png") for k in args.images]
    truths = [read_voc_labels(folder / "annotations" / "clustered" / f"MC11E-{k}.xml",
                              min_confidence=args.min_confidence)[["x", "y", "diameter_px"]] for k in args.images]
    cols = ["x", "y", "diameter_px", "score"]
    truth = side_by_side(truths)
    rows = []
    for thr in np.round(np.arange(0.30, 0.901, 0.05), 2):
        # detect at each threshold: the verifier's cascade averages orientations near the threshold
        # in force, so keeping the scores >= thr of one low-threshold run is not what a user gets
        kept = detect(images, pixel_size_m=6.0, model=args.model, verify=args.verify,
                      extract_options={"min_score": float(thr)}, progress=False)
        r = evaluate(side_by_side([kept[kept["image"] == i][cols] for i in range(len(images))]), truth,
                     rule="deepmoon", d_min=16)
        rows.append({"threshold": float(thr), "precision": r.precision, "recall": r.recall, "f1": r.f1,
                     "tp": int(r.n_truth_matched), "n_truth": int(r.n_truth), "n_pred": int(r.n_pred)})
        print(f"threshold {thr:.2f}: P {r.precision:.3f} R {r.recall:.3f} F1 {r.f1:.3f}", flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "model": model_info(args.model)["name"],
              "verifier": args.verify or "the model's", "shipped_threshold": resolve_verifier(args.verify, args.model).threshold,
              "images": args.images,
              "min_confidence": args.min_confidence, "rule": "benchmarks/splits/cameras_rule.md (addenda 1 and 3)",
              "thresholds": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
