"""The fine model's verifier threshold swept on CTX validation images (``cameras_rule.md``, addendum).

Run: ``python benchmarks/fine_threshold.py [--images G H] [--json docs/results/fine_threshold_validation.json]``

``detect`` with the model for fine imagery keeps every candidate its verifier scores at >= 0.05
(``extract_options={"min_score": 0.05}``); each threshold then keeps the craters scored at or
above it.  Scores: DeepMoon rule, floor scoring at 16 px, truth = the clustered boxes of at least
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
    p.add_argument("--json")
    args = p.parse_args(argv)
    folder = DATA / "ctx-mc11e"
    images = [read_grey_image(folder / "images" / f"MC11E-{k}.png") for k in args.images]
    truths = [read_voc_labels(folder / "annotations" / "clustered" / f"MC11E-{k}.xml",
                              min_confidence=args.min_confidence)[["x", "y", "diameter_px"]] for k in args.images]
    det = detect(images, pixel_size_m=6.0, model=args.model, extract_options={"min_score": 0.05}, progress=False)
    cols = ["x", "y", "diameter_px", "score"]
    truth = side_by_side(truths)
    rows = []
    for thr in np.round(np.arange(0.30, 0.901, 0.05), 2):
        kept = det[det["score"] >= thr]
        r = evaluate(side_by_side([kept[kept["image"] == i][cols] for i in range(len(images))]), truth,
                     rule="deepmoon", d_min=16)
        rows.append({"threshold": float(thr), "precision": r.precision, "recall": r.recall, "f1": r.f1,
                     "tp": int(r.n_truth_matched), "n_truth": int(r.n_truth), "n_pred": int(r.n_pred)})
        print(f"threshold {thr:.2f}: P {r.precision:.3f} R {r.recall:.3f} F1 {r.f1:.3f}", flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "model": model_info(args.model)["name"],
              "shipped_threshold": resolve_verifier(None, args.model).threshold, "images": args.images,
              "min_confidence": args.min_confidence, "rule": "benchmarks/splits/cameras_rule.md (addendum)",
              "thresholds": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
