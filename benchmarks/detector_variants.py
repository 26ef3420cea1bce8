"""Two detector variants around the shipped network, scored on real THEMIS chips (2026-11-27, v10).

Usage::

    python benchmarks/detector_variants.py [--chips DIR] [--range 440:500] [--partner MODEL.keras]
                                           [--json OUT.json]

Neither variant retrains anything; both keep the shipped two-stage finder (its options, its
verifier and its threshold) and change only what the network is shown:

* **half** -- a half-resolution pass for the craters bigger than half a chip.  The normalised chip
  is downsampled by 2 (order 1, anti-aliased), the network predicts it, the two-stage finder runs
  on that map and image, and the detections go back to native pixels (x' = 2(x + 0.5) - 0.5,
  d' = 2d).  Merged with the native detections above a switch diameter S (native px) in two ways:
  *union* adds the half-resolution ones >= S that match no native detection (DeepMoon rule
  between detections); *split* takes native ones < S and half-resolution ones >= S.
* **ensemble** -- the mean of the shipped network's map and ``--partner``'s (for example an
  earlier shipped network taken from git history), at native scale.

Prints DeepMoon-rule precision, recall and F1 (truths >= 16 px, detections >= 12.8 px) for the
shipped detector alone and each variant, and the recall of the candidates that the verifier is
given (the most the second stage could keep).  Run it on the validation chips 440-499 (the default) or
the training chips; the held-out chips 500-599 are for a variant that has been chosen.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.transform import rescale

from marscraters.chips import read_chips
from marscraters.detect import model_info
from marscraters.evaluate import evaluate, match_craters, side_by_side
from marscraters.extract import extract_craters
from marscraters.model import load_model
from marscraters.training import chips_training_set, predict_stack
from marscraters.verify import find_craters, merge_options, resolve_verifier

REPO = Path(__file__).resolve().parents[1]
SWITCH_PX = (96, 128, 192, 256)
HELD_OUT = (500, 600)


def merge(native: pd.DataFrame, half: pd.DataFrame, rule: str, switch: float) -> pd.DataFrame:
    """One chip's native and half-resolution detections (both in native px) merged at ``switch``."""
    big = half[half["diameter_px"] >= switch]
    if rule == "split":
        return pd.concat([native[native["diameter_px"] < switch], big], ignore_index=True)
    if len(native) and len(big):  # union: only the big ones no native detection already has
        big = big.drop(index=match_craters(big, native, "deepmoon")["pred_index"].to_numpy())
    return pd.concat([native, big], ignore_index=True)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", default=str(REPO.parent / "shared" / "data" / "themis-dayir-crops"))
    p.add_argument("--range", default="440:500", help="chip numbers lo:hi (default: the validation chips)")
    p.add_argument("--partner", help="a second segmentation model for the ensemble variant (same target kind)")
    p.add_argument("--held-out", action="store_true",
                   help="allow chips 500-599: only for a variant already chosen on the other chips")
    p.add_argument("--json")
    args = p.parse_args(argv)
    lo, hi = (int(v) for v in args.range.split(":"))
    if lo < HELD_OUT[1] and hi > HELD_OUT[0] and not args.held_out:
        p.error(f"--range {lo}:{hi} includes the held-out chips {HELD_OUT[0]}-{HELD_OUT[1] - 1}; choose a variant on "
                "chips 0-499 and pass --held-out to score the chosen one there once")
    data = chips_training_set(read_chips(args.chips, indices=range(lo, hi), edge_boxes="circle"))
    info, model, verifier = model_info(None), load_model(None), resolve_verifier(None, None)
    options = merge_options(info["extract"], None, verifier)
    kind = info["kind"]

    def two_stage(probs: np.ndarray, images: np.ndarray) -> list[pd.DataFrame]:
        cols = ["x", "y", "diameter_px", "score"]
        return [find_craters(pr, im, target=kind, verifier=verifier, options=options)[cols]
                for pr, im in zip(probs, images)]

    t0 = time.perf_counter()
    probs = predict_stack(model, data.images)
    native = two_stage(probs, data.images)
    half_images = np.stack([rescale(im, 0.5, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
                            for im in data.images])
    half = [c.assign(x=(c["x"] + 0.5) * 2 - 0.5, y=(c["y"] + 0.5) * 2 - 0.5, diameter_px=c["diameter_px"] * 2)
            for c in two_stage(predict_stack(model, half_images), half_images)]
    # the verifier's input: how many of the craters the second stage could keep at most
    cand_options = {k: v for k, v in options.items() if k != "min_score"}
    variants = {"candidates before the verifier (its recall is the ceiling)":
                [extract_craters(pr, target=kind, **cand_options, min_score=0.0) for pr in probs],
                "shipped": native}
    for rule in ("union", "split"):
        for s in SWITCH_PX:
            variants[f"half {rule} {s}"] = [merge(a, b, rule, s) for a, b in zip(native, half)]
    if args.partner:
        partner = predict_stack(load_model(args.partner), data.images)
        variants[f"ensemble with {Path(args.partner).name}"] = two_stage((probs + partner) / 2, data.images)
    chips = list(range(lo, hi))
    truth = side_by_side([data.craters_of(i) for i in range(len(data))], images=chips)
    report = {"chips": f"{lo}..{hi - 1}", "d_min": 16.0, "seconds": None, "variants": {}}
    print("| detector | precision | recall | F1 | matched truths | truths >= 16 px | detections counted |")
    print("|---|---|---|---|---|---|---|")
    for name, found in variants.items():
        r = evaluate(side_by_side(found, images=chips), truth, rule="deepmoon", d_min=16.0)
        report["variants"][name] = {"precision": r.precision, "recall": r.recall, "f1": r.f1,
                                    "n_truth_matched": r.n_truth_matched, "n_truth": r.n_truth, "n_pred": r.n_pred}
        print(f"| {name} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.4f} | {r.n_truth_matched} | {r.n_truth} | {r.n_pred} |")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
