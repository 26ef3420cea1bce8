"""Cross-fitted crater-level F1 over the 500 non-test chips: a bigger yardstick than validation.

Usage::

    python benchmarks/crossfit_verifier.py [--model PATH] [--chips DIR] [--chips-range 0:500]
                                           [--folds 2] [--zoom-max 1] [--epochs 12] [--json OUT.json]

The 60 validation chips (211 craters >= 16 px) cannot tell apart changes of +-0.01 in F1 (their
95 % interval is +-0.045).  This script scores a segmentation network with the two-stage
detector on *every* chip of ``--chips-range`` (default 0-499: training and validation, never the
held-out 500-599) without scoring any chip with a verifier that saw it:

1. The network predicts every chip; the circle finder makes candidates at the verifier's low
   thresholds (:data:`marscraters.verify.CANDIDATE_OPTIONS`), labelled by the DeepMoon rule.
2. The chips are split into ``--folds`` folds by chip number (chip ``i`` in fold ``i % folds``);
   for each fold a verifier is trained on the other folds' candidates and scores this fold's.
3. Precision, recall and F1 (DeepMoon rule, truths >= 16 px) for a sweep of verifier thresholds,
   over all chips and separately over 0-439 and 440-499.

The network itself was trained on chips 0-439, so the absolute figures there are in-sample for
the first stage (they are *lower* than on validation all the same: those chips are harder).  Use
it to compare networks trained on the same chips, or first-stage options such as
``--zoom-max 2`` (the maxima of the maps of the image at x1 and x2, back on the chip grid).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from marscraters.chips import read_chips
from marscraters.detect import model_info
from marscraters.evaluate import evaluate, side_by_side
from marscraters.model import load_model
from marscraters.training import chips_training_set, predict_stack
from marscraters.verify import CANDIDATE_OPTIONS, Verifier, candidate_sets, edge_cut_copies, fit_classifier

REPO = Path(__file__).resolve().parents[1]


def zoomed_maximum(model, images: np.ndarray, probs: np.ndarray, zoom_max: int) -> np.ndarray:
    """The maxima of ``probs`` and of the maps of the images enlarged 2, 3 ... ``zoom_max`` times."""
    from scipy.ndimage import zoom

    out = probs.copy()
    for k in range(2, zoom_max + 1):
        for a in range(0, len(images), 16):
            big = np.stack([zoom(im, k, order=1) for im in images[a:a + 16]])
            p = predict_stack(model, big)
            back = np.stack([zoom(q, images.shape[1] / q.shape[0], order=1) for q in p])
            np.maximum(out[a:a + 16], back, out=out[a:a + 16])
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="segmentation model file (default: the shipped model)")
    p.add_argument("--chips", default=str(REPO.parent / "shared" / "data" / "themis-dayir-crops"))
    p.add_argument("--edge-boxes", choices=["circle", "box"], default="circle",
                   help="labels cut by the chip edge: restore their circles (default) or take the boxes as they are "
                   "(as scored up to v6)")
    p.add_argument("--chips-range", default="0:500")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--zoom-max", type=int, default=1, help="also predict the chips enlarged up to this factor")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d-min", type=float, default=16.0)
    p.add_argument("--edge-copies", action="store_true",
                   help="also train each fold's verifier on copies of its training chips with 128 columns cut off "
                        "one side, re-predicted (more craters cut by the image edge); never scored")
    p.add_argument("--mask-channel", action="store_true",
                   help="give the verifier a third patch channel marking the pixels inside the image (edge-cut craters)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.folds < 2:
        p.error("--folds must be at least 2")
    if args.zoom_max < 1:
        p.error("--zoom-max must be at least 1")
    lo, hi = (int(v) for v in args.chips_range.split(":"))
    if hi > 500:
        p.error("--chips-range must stay below 500: chips 500-599 are the held-out test set")

    t0 = time.perf_counter()
    data = chips_training_set(read_chips(args.chips, indices=range(lo, hi), edge_boxes=args.edge_boxes))
    model = load_model(args.model)
    kind = model_info(args.model)["kind"]
    probs = predict_stack(model, data.images)
    if args.zoom_max > 1:
        probs = zoomed_maximum(model, data.images, probs, args.zoom_max)
    truths = [data.craters_of(i) for i in range(len(data))]
    cands, patches, feats, labels = [], [], [], []
    for i in range(len(data)):  # one chip at a time, to know each candidate's chip
        c, pa, fe, la = candidate_sets(data.images[i:i + 1], probs[i:i + 1], target=kind, truths=truths[i:i + 1],
                                       progress=False, mask=args.mask_channel)
        cands += c
        patches.append(pa)
        feats.append(fe)
        labels.append(la)
    chip = np.repeat(np.arange(lo, hi), [len(v) for v in labels])
    patches, feats, labels = np.concatenate(patches), np.concatenate(feats), np.concatenate(labels)
    extra_chip, extra = np.zeros(0, int), None
    if args.edge_copies:
        cut_images, cut_truths = edge_cut_copies(data.images, truths, seed=args.seed)
        cut_probs = predict_stack(model, cut_images)
        if args.zoom_max > 1:
            cut_probs = zoomed_maximum(model, cut_images, cut_probs, args.zoom_max)
        extra_sets = [candidate_sets(cut_images[i:i + 1], cut_probs[i:i + 1], target=kind,
                                     truths=cut_truths[i:i + 1], progress=False, mask=args.mask_channel)
                      for i in range(len(data))]
        extra_chip = np.repeat(np.arange(lo, hi), [len(s[3]) for s in extra_sets])
        extra = [np.concatenate([s[k] for s in extra_sets]) for k in (1, 2, 3)]
        print(f"{len(extra_chip)} more training candidates on the edge-cut copies")
    t_cand = time.perf_counter() - t0
    print(f"{len(labels)} candidates on {hi - lo} chips ({int(labels.sum())} match a labelled crater), {t_cand:.0f} s")

    score = np.zeros(len(labels))
    for f in range(args.folds):
        test = chip % args.folds == f
        train = [patches[~test], feats[~test], labels[~test]]
        if extra is not None:  # copies of the training folds' chips only
            keep = extra_chip % args.folds != f
            train = [np.concatenate([a, b[keep]]) for a, b in zip(train, extra)]
        clf = fit_classifier(*train, epochs=args.epochs, seed=args.seed)
        score[test] = Verifier(clf, 0.5, dict(CANDIDATE_OPTIONS)).predict(patches[test], feats[test])

    numbers = np.arange(lo, hi)
    parts = {"all": numbers >= 0, "0-439": numbers < 440, "440-499": numbers >= 440}
    cand = side_by_side(cands).assign(score=score)
    n_truth = np.array([len(t) for t in truths])
    truth = side_by_side(truths)
    rows = []
    for thr in np.round(np.arange(0.20, 0.76, 0.05), 2):
        for part, sel in parts.items():
            if not sel.any():
                continue
            r = evaluate(cand[sel[chip - lo] & (score >= thr)], truth[np.repeat(sel, n_truth)], rule="deepmoon",
                         d_min=args.d_min)
            rows.append({"threshold": float(thr), "part": part, "precision": r.precision, "recall": r.recall,
                         "f1": r.f1})
    table = pd.DataFrame(rows)
    print(table.pivot(index="threshold", columns="part", values="f1").round(3).to_string())
    best = table[table["part"] == "all"].sort_values("f1").iloc[-1].to_dict()
    print(f"\nbest over all chips: F1 {best['f1']:.3f} at threshold {best['threshold']:.2f} "
          f"({time.perf_counter() - t0:.0f} s)")
    report = {"model": args.model or "shipped", "chips_range": args.chips_range, "folds": args.folds,
              "zoom_max": args.zoom_max, "epochs": args.epochs, "d_min": args.d_min, "edge_boxes": args.edge_boxes,
              "mask_channel": args.mask_channel,
              "edge_copies": args.edge_copies, "n_candidates": int(len(labels)),
              "sweep": rows, "best_all": best}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
