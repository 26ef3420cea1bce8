"""How many orientations the crater verifier needs: validation F1 and time for tta 1, 2, 4, 8.

Run: ``python benchmarks/verifier_orientations.py [--json docs/results/verifier_orientations.json]``

The shipped verifier scores the candidates ``quadrangles.py prepare`` cached for the shipped
network on the validation chips 440-499 (its threshold, DeepMoon rule, floor scoring at 16 px);
the crops are left out, since the shipped verifier learnt from them.  Nothing is chosen here: a
change ships only if it costs nothing on validation (issue: a cheaper catalog step).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quadrangles import REPO, Cache, detections, score_sets  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    from marscraters.detect import model_info
    from marscraters.verify import resolve_verifier

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default=None, help="prepare's folder (default: the shipped model's)")
    p.add_argument("--images", default="440:500")
    p.add_argument("--json")
    args = p.parse_args(argv)
    folder = Path(args.cache or REPO / "runs" / "quadrangles" / model_info(None)["name"])
    chips = Cache(folder, "chips")
    lo, hi = (int(v) for v in args.images.split(":"))
    images = np.arange(lo, hi)
    rows = chips.rows(images)
    verifier = resolve_verifier(None, None)
    patches, feats = chips.patches[rows].astype(np.float32), chips.features[rows]
    verifier.predict(patches[:64], feats[:64], tta=8)  # warm-up
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, CPU", "images": args.images,
           "candidates": len(rows), "threshold": verifier.threshold, "rows": []}
    for tta in (8, 4, 2, 1):
        t0 = time.perf_counter()
        s = verifier.predict(patches, feats, tta=tta)
        seconds = time.perf_counter() - t0
        scores = np.full(len(chips.labels), np.nan)
        scores[rows] = s
        preds = detections(chips, images, scores, verifier.threshold)
        r = score_sets(preds, [chips.truths[i] for i in images], [chips.names[i] for i in images],
                       rules=("deepmoon",))["deepmoon"]
        out["rows"].append({"tta": tta, "seconds": round(seconds, 2), "precision": r["precision"],
                            "recall": r["recall"], "f1": r["f1"]})
        print(f"tta {tta}: F1 {r['f1']:.3f} (P {r['precision']:.3f} R {r['recall']:.3f}), {seconds:.1f} s for "
              f"{len(rows)} candidates", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
