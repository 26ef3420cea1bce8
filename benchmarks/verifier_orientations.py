"""How many orientations the crater verifier needs: validation F1 and time for tta 1, 2, 4, 8.

Run: ``python benchmarks/verifier_orientations.py [--json docs/results/verifier_orientations.json]``
     ``python benchmarks/verifier_orientations.py --cascade [--json docs/results/verifier_cascade.json]``

The shipped verifier scores the candidates ``quadrangles.py prepare`` cached for the shipped
network on the validation chips 440-499 (its threshold, DeepMoon rule, floor scoring at 16 px);
the crops are left out, since the shipped verifier learnt from them.  Nothing is chosen here: a
change ships only if it costs nothing on validation (issue: a cheaper catalog step).

``--cascade`` compares, through ``detect`` (pyramid, default models), the verifier averaging 4
orientations for every candidate (``VERIFY_MARGIN = None``) with the cascade (``VERIFY_MARGIN``,
``benchmarks/splits/verifier_cascade_rule.md``), alternately, best of ``--repeats``: THEMIS chips
440-499 (v11) and CTX G-H at 6 m/px (the model for fine imagery; boxes of >= 3 of 6 annotators).
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
    p.add_argument("--cascade", action="store_true", help="the cascade against 4 orientations, through detect")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    if args.cascade:
        return cascade(args)
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


def cascade(args: argparse.Namespace) -> dict:
    """F1 and time of ``detect`` with and without the verifier's cascade."""
    import os

    from marscraters import verify
    from marscraters.chips import chip_craters, read_chips, read_voc_labels
    from marscraters.detect import detect, read_grey_image
    from marscraters.evaluate import evaluate, side_by_side

    data = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))
    lo, hi = (int(v) for v in args.images.split(":"))
    chips = read_chips(data / "themis-dayir-crops", indices=range(lo, hi))
    ctx = data / "ctx-mc11e"
    sets = {
        f"THEMIS chips {lo}-{hi - 1}": (list(chips.images), 100.0, [chip_craters(chips, i) for i in range(len(chips))]),
        "CTX G-H, 6 m/px": ([read_grey_image(ctx / "images" / f"MC11E-{k}.png") for k in "GH"], 6.0,
                            [read_voc_labels(ctx / "annotations" / "clustered" / f"MC11E-{k}.xml", min_confidence=3)
                             for k in "GH"]),
    }
    margin = verify.VERIFY_MARGIN
    out = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, CPU", "margin": margin,
           "rule": "benchmarks/splits/verifier_cascade_rule.md", "sets": []}
    cols = ["x", "y", "diameter_px", "score"]
    for name, (images, pixel, truths) in sets.items():
        detect(images[:1], pixel_size_m=pixel, progress=False)  # warm-up: models loaded and traced
        row: dict = {"set": name}
        for _ in range(args.repeats):
            for label, m in (("all 4", None), ("cascade", margin)):
                verify.VERIFY_MARGIN = m
                t0 = time.perf_counter()
                det = detect(images, pixel_size_m=pixel, progress=False)
                seconds = time.perf_counter() - t0
                preds = [det[det["image"] == i][cols] for i in range(len(images))]
                r = evaluate(side_by_side(preds), side_by_side([t[["x", "y", "diameter_px"]] for t in truths]),
                             rule="deepmoon", d_min=16)
                best = min(seconds, row.get(label, {}).get("seconds", np.inf))
                row[label] = {"seconds": round(best, 2), "precision": r.precision, "recall": r.recall, "f1": r.f1,
                              "detections": len(det)}
        verify.VERIFY_MARGIN = margin
        row["f1_change"] = row["cascade"]["f1"] - row["all 4"]["f1"]
        out["sets"].append(row)
        print(f"{name}: all 4 F1 {row['all 4']['f1']:.4f} in {row['all 4']['seconds']} s; cascade F1 "
              f"{row['cascade']['f1']:.4f} in {row['cascade']['seconds']} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
