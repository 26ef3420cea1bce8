"""A crater verifier for the model for fine imagery, learnt from its candidates on CTX alone.

Run: ``python benchmarks/fine_verifier.py --model runs/cameras/net_ctx2/best.keras --out runs/fine_v5/verifier.keras``

The network (``--model``) predicts the CTX MC11-E training images ``--train`` (default A-F) as the
416 px tiles it trained on, at 6, 12 and 24 m per pixel (``train_cameras.ctx_tiles``; boxes marked
by at least ``--min-confidence`` of the six annotators).  The circle finder makes candidates at the
verifier's low thresholds (``marscraters.verify.CANDIDATE_OPTIONS``); each is labelled crater / not
crater by the DeepMoon rule against the boxes, and :func:`marscraters.verify.fit_classifier` learns
from all of them.  The verifier is saved with threshold 0.5: the threshold is chosen afterwards on
the validation images G-H, through ``detect`` (``benchmarks/fine_threshold.py --verify``), by
``benchmarks/splits/cameras_rule.md`` (addendum 3).  No validation image is seen here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_cameras import DATA, ctx_tiles


def main(argv: list[str] | None = None) -> dict:
    from marscraters.detect import model_info
    from marscraters.model import load_model, normalise_image
    from marscraters.training import predict_stack
    from marscraters.verify import (
        CANDIDATE_OPTIONS,
        Verifier,
        candidate_sets,
        fit_classifier,
        save_verifier,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="the segmentation network whose candidates the verifier learns")
    p.add_argument("--out", required=True, help="the verifier file to write")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--train", nargs="+", default=list("ABCDEF"))
    p.add_argument("--min-confidence", type=int, default=2)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    images, truths, _ = ctx_tiles(args.train, Path(args.data), min_confidence=args.min_confidence)
    norm = np.stack([normalise_image(im, value_range=(0.0, 255.0)) for im in images]).astype(np.float32)
    model, kind = load_model(args.model), model_info(args.model)["kind"]
    probs = np.concatenate([predict_stack(model, norm[i:i + 16]) for i in range(0, len(norm), 16)])
    options = dict(CANDIDATE_OPTIONS)
    _, patches, feats, labels = candidate_sets(norm, probs, target=kind, candidates=options, truths=truths,
                                                   progress=False)
    t1 = time.perf_counter()
    print(f"{len(images)} tiles: {len(labels)} candidates, {int(labels.sum())} match a crater "
          f"({t1 - t0:.0f} s)", flush=True)
    classifier = fit_classifier(patches.astype(np.float32), feats, labels.astype(np.float32), epochs=args.epochs,
                                seed=args.seed, progress=False)
    report = {"what": "verifier for fine imagery, learnt from CTX candidates alone (cameras_rule.md, addendum 3)",
              "network": str(args.model), "ctx_images": args.train, "ctx_levels_m": [6, 12, 24],
              "min_confidence": args.min_confidence, "candidates": options, "n_train_candidates": len(labels),
              "n_craters": int(labels.sum()), "epochs": args.epochs, "seed": args.seed,
              "fit_seconds": round(time.perf_counter() - t1, 1), "date": time.strftime("%Y-%m-%d")}
    verifier = Verifier(classifier, 0.5, options, {"name": "marscraters-fine-verifier", "training": report})
    out = save_verifier(verifier, args.out, overwrite=True)
    print(json.dumps(report, default=str))
    print(f"saved {out} (threshold 0.5, to be chosen on validation images)")
    return report


if __name__ == "__main__":
    main()
