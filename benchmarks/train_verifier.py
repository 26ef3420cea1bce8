"""Train the crater verifier (the second stage) for a segmentation model, on real THEMIS chips.

Usage::

    python benchmarks/train_verifier.py [--model PATH] [--chips DIR] [--train 0:440] [--val 440:500]
                                        [--extra-models PATH ...] [--members 1] [--tta 1]
                                        [--epochs 12] [--out marscraters/weights/crater_classifier.keras]
                                        [--json report.json]

1. The segmentation model predicts every training and validation chip.
2. The circle finder runs at a low threshold (``marscraters.verify.CANDIDATE_OPTIONS``) to make
   candidates; each is labelled crater / not crater by the DeepMoon rule against the Robbins labels.
3. :func:`marscraters.verify.fit_classifier` trains on the *training* chips' candidates.
4. The decision threshold is the one with the best crater-level F1 (DeepMoon rule, truths >= 16 px)
   on the *validation* chips.  The held-out chips (500-599) play no part.

The verifier is saved with its threshold, candidate options and validation scores; name it in
the model file with ``benchmarks/ship_model.py --verifier``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from marscraters.chips import read_chips
from marscraters.detect import model_info
from marscraters.evaluate import evaluate, side_by_side
from marscraters.extract import extract_craters
from marscraters.model import DEFAULT_WEIGHTS, load_model
from marscraters.training import chips_training_set, predict_stack
from marscraters.verify import (
    CANDIDATE_OPTIONS,
    Verifier,
    average_classifiers,
    candidate_sets,
    edge_cut_copies,
    fit_classifier,
    save_verifier,
)

REPO = Path(__file__).resolve().parents[1]


def _span(text: str) -> range:
    lo, hi = (int(v) for v in text.split(":"))
    return range(lo, hi)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="segmentation model file (default: the shipped model)")
    p.add_argument("--chips", default=str(REPO.parent / "shared" / "data" / "themis-dayir-crops"))
    p.add_argument("--edge-boxes", choices=["circle", "box"], default="circle",
                   help="labels cut by the chip edge: restore their circles (default) or take the boxes as they are "
                   "(as scored up to v6)")
    p.add_argument("--train", default="0:440")
    p.add_argument("--val", default="440:500")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d-min", type=float, default=16.0)
    p.add_argument("--edge-copies", action="store_true",
                   help="also train on copies of the training chips with 128 columns cut off one side, re-predicted "
                        "(more craters cut by the image edge)")
    p.add_argument("--mask-channel", action="store_true",
                   help="give the verifier a third patch channel marking the pixels inside the image (edge-cut craters)")
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS.parent / "crater_classifier.keras"))
    p.add_argument("--json", help="write the validation sweep and scores here")
    p.add_argument("--members", type=int, default=1,
                   help="train this many classifiers (seeds --seed, --seed+1, ...) and average them")
    p.add_argument("--tta", type=int, default=1, choices=[1, 2, 4, 8],
                   help="average the maps of this many flips/turns (the verifier then expects such maps)")
    p.add_argument("--extra-models", nargs="*", default=[], metavar="PATH",
                   help="more segmentation models whose candidates on the *training* chips are added to the "
                        "verifier's training set (more, and more varied, examples); validation uses --model only")
    p.add_argument("--threshold", type=float, default=CANDIDATE_OPTIONS["threshold"],
                   help="the candidates' probability threshold (default %(default)s)")
    p.add_argument("--template-threshold", type=float, default=CANDIDATE_OPTIONS["template_threshold"],
                   help="the candidates' ring-template correlation threshold (default %(default)s)")
    args = p.parse_args(argv)
    if args.members < 1:
        p.error("--members must be at least 1")
    if args.tta > 1 and args.out == p.get_default("out"):
        print(f"warning: --tta {args.tta} trains the verifier on averaged maps, but detect() and segment() give it "
              "single maps unless called with the same tta; pass --out elsewhere to keep the shipped verifier")
    # the verifier file records these, and catalogs made with it find their candidates the same way
    candidates = {**CANDIDATE_OPTIONS, "threshold": args.threshold, "template_threshold": args.template_threshold}

    model = load_model(args.model)
    info = model_info(args.model)
    kind = info["kind"]
    sets = {}
    t0 = time.perf_counter()
    for name, span in (("train", _span(args.train)), ("val", _span(args.val))):
        data = chips_training_set(read_chips(args.chips, indices=span, edge_boxes=args.edge_boxes))
        probs = predict_stack(model, data.images, tta=args.tta)
        truths = [data.craters_of(i) for i in range(len(data))]
        cands, patches, feats, labels = candidate_sets(data.images, probs, target=kind, candidates=candidates,
                                                      truths=truths, mask=args.mask_channel)
        if name == "train" and args.edge_copies:
            cut_images, cut_truths = edge_cut_copies(data.images, truths, seed=args.seed)
            _, p2, f2, l2 = candidate_sets(cut_images, predict_stack(model, cut_images, tta=args.tta), target=kind,
                                           candidates=candidates, truths=cut_truths, mask=args.mask_channel)
            patches, feats, labels = (np.concatenate(v) for v in ((patches, p2), (feats, f2), (labels, l2)))
        if name == "train":
            for extra in args.extra_models:
                extra_kind = model_info(extra)["kind"]
                if extra_kind != kind:
                    raise SystemExit(f"--extra-models {extra} predicts {extra_kind!r} targets, --model {kind!r}")
                extra_probs = predict_stack(load_model(extra), data.images, tta=args.tta)
                _, p2, f2, l2 = candidate_sets(data.images, extra_probs, target=kind, candidates=candidates,
                                               truths=truths, mask=args.mask_channel)
                patches, feats, labels = (np.concatenate(v) for v in ((patches, p2), (feats, f2), (labels, l2)))
        sets[name] = (cands, patches, feats, labels, truths, probs)
        print(f"{name}: {len(data)} chips, {len(labels)} candidates, {int(labels.sum())} match a labelled crater")
    t_cand = time.perf_counter() - t0

    t1 = time.perf_counter()
    _, patches, feats, labels, _, _ = sets["train"]
    members = [fit_classifier(patches, feats, labels, epochs=args.epochs, seed=args.seed + k)
               for k in range(args.members)]
    t_fit = time.perf_counter() - t1

    cands, patches, feats, _, truths, probs = sets["val"]
    truth = side_by_side(truths)

    def sweep_of(classifier):
        cand = side_by_side(cands).assign(score=Verifier(classifier, 0.5, candidates).predict(patches, feats))
        rows = []
        for thr in np.round(np.arange(0.10, 0.81, 0.05), 2):
            r = evaluate(cand[cand["score"] >= thr], truth, rule="deepmoon", d_min=args.d_min)
            rows.append({"threshold": float(thr), "precision": r.precision, "recall": r.recall, "f1": r.f1})
        return rows, max(rows, key=lambda row: row["f1"])

    member_best = [sweep_of(m)[1] for m in members] if len(members) > 1 else []
    for k, row in enumerate(member_best):
        print(f"member {k} (seed {args.seed + k}): validation F1 {row['f1']:.3f} at threshold {row['threshold']:.2f}")
    classifier = average_classifiers(members)
    sweep, best = sweep_of(classifier)
    # the first stage alone, with the model's own tuned circle finder, for comparison
    plain = side_by_side([extract_craters(pr, target=kind, **info["extract"]) for pr in probs])
    r0 = evaluate(plain, truth, rule="deepmoon", d_min=args.d_min)
    print("\n| threshold | precision | recall | F1 |\n|---|---|---|---|")
    for row in sweep:
        print(f"| {row['threshold']:.2f} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} |")
    print(f"\nvalidation F1: {best['f1']:.3f} with the verifier (threshold {best['threshold']:.2f}), "
          f"{r0.f1:.3f} without it; candidates {t_cand:.0f} s, training {t_fit:.0f} s")

    report = {
        "segmentation_model": info.get("name"), "chips": args.chips, "train": args.train, "val": args.val,
        "extra_models": [str(m) for m in args.extra_models], "tta": args.tta, "members": args.members,
        "member_validation_best": member_best, "epochs": args.epochs, "seed": args.seed, "d_min": args.d_min,
        "edge_boxes": args.edge_boxes, "mask_channel": args.mask_channel,
        "edge_copies": args.edge_copies, "candidates": candidates,
        "n_train_candidates": int(len(labels)), "n_train_craters": int(labels.sum()),
        "validation_sweep": sweep, "validation_best": best,
        "validation_without_verifier": {"precision": r0.precision, "recall": r0.recall, "f1": r0.f1},
        "seconds": {"candidates": round(t_cand, 1), "training": round(t_fit, 1)},
    }
    verifier = Verifier(classifier, best["threshold"], candidates,
                        {"name": "marscraters-themis-verifier", "training": report})
    out = save_verifier(verifier, args.out, overwrite=True)
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
