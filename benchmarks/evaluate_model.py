"""Score a model on held-out real THEMIS chips: crater-level P/R/F1 under all three matching rules.

Usage::

    python benchmarks/evaluate_model.py [--model PATH] [--chips DIR] [--test 500:600] [--methods auto,template,...]
                                        [--json OUT.json] [--save-probabilities DIR]
                                        [--bootstrap 2000] [--reference EARLIER.json]

The held-out chips (default 500-599) were never used for training or model selection.  Scores
count truths >= 16 px for recall and detections >= 12.8 px for precision (the Robbins labels are
incomplete below ~10 px).  Prints a Markdown table per extraction method; with ``--bootstrap``,
95 % intervals from resampling whole chips, and with ``--reference`` the paired F1 difference
against another model scored on the same chips (is it more than the chips' noise?).
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
from marscraters.evaluate import bootstrap_scores, evaluate, group_counts, side_by_side
from marscraters.model import load_model
from marscraters.training import chips_training_set, predict_stack
from marscraters.verify import find_craters, merge_options, resolve_verifier

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model file (default: the shipped model)")
    p.add_argument("--chips", default=str(REPO.parent / "shared" / "data" / "themis-dayir-crops"))
    p.add_argument("--edge-boxes", choices=["circle", "box"], default="circle",
                   help="labels cut by the chip edge: restore their circles (default) or take the boxes as they are "
                   "(as scored up to v6)")
    p.add_argument("--test", default="500:600")
    p.add_argument("--methods", default="tuned", help="comma-separated: tuned (the settings stored in the model file, "
                   "and its verifier), unverified (the same without the verifier), auto, components, hough, template")
    p.add_argument("--d-min", type=float, default=16.0)
    p.add_argument("--json")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="95 %% intervals of P, R, F1 from N resamples of whole chips (DeepMoon rule)")
    p.add_argument("--reference", metavar="JSON",
                   help="an earlier --json of another model on the same chips: adds the paired F1 difference")
    p.add_argument("--save-probabilities", help="folder for prob_NNN.npy + truth_NNN.csv (for benchmarks/bench_extract.py)")
    p.add_argument("--tta", type=int, default=1, choices=[1, 2, 4, 8],
                   help="test-time augmentation: average this many orientations (flips, quarter turns)")
    args = p.parse_args(argv)
    if args.reference and not args.bootstrap:
        p.error("--reference pairs bootstrap resamples: give --bootstrap N too")

    lo, hi = (int(v) for v in args.test.split(":"))
    chips = read_chips(args.chips, indices=range(lo, hi), edge_boxes=args.edge_boxes)
    data = chips_training_set(chips)
    model = load_model(args.model)
    info = model_info(args.model)
    kind = info["kind"]
    t0 = time.perf_counter()
    probs = predict_stack(model, data.images, tta=args.tta)
    t_pred = time.perf_counter() - t0
    if args.save_probabilities:
        out = Path(args.save_probabilities)
        out.mkdir(parents=True, exist_ok=True)
        for i, prob in enumerate(probs):
            np.save(out / f"prob_{i:03d}.npy", prob.astype(np.float16))
            data.craters_of(i).to_csv(out / f"truth_{i:03d}.csv", index=False)
    # "image" is the chip number, so counts from another run of this script pair chip by chip
    truth = side_by_side([data.craters_of(i) for i in range(len(data))], images=range(lo, hi))
    reference = {}
    if args.reference:
        earlier = json.loads(Path(args.reference).read_text())
        if (earlier.get("chips"), earlier.get("d_min")) != (f"{lo}..{hi - 1}", args.d_min):
            raise SystemExit(f"{args.reference} scored chips {earlier.get('chips')} with --d-min {earlier.get('d_min')}, "
                             f"this run {lo}..{hi - 1} with {args.d_min}: pair only runs on the same chips and floor")
        # files written before --edge-boxes existed scored the boxes as labelled
        if earlier.get("edge_boxes", "box") != args.edge_boxes:
            raise SystemExit(f"{args.reference} scored truths with --edge-boxes {earlier.get('edge_boxes', 'box')}, this "
                             f"run with {args.edge_boxes}: pair only runs scored against the same truths")
        reference = earlier["methods"]
    report: dict = {"model": args.model or "shipped default", "kind": kind, "chips": f"{lo}..{hi - 1}", "tta": args.tta,
                    "edge_boxes": args.edge_boxes,
                    "reference": args.reference,  # what f1_difference is measured against
                    "d_min": args.d_min,
                    "n_truth_ge_dmin": int((truth["diameter_px"] >= args.d_min).sum()),
                    "predict_seconds": round(t_pred, 1), "methods": {}}
    verifier = resolve_verifier(None, args.model)
    for method in args.methods.split(","):
        t1 = time.perf_counter()
        v = verifier if method == "tuned" else None
        options = merge_options(info["extract"], None, v) if method in ("tuned", "unverified") else {"method": method}
        pred = side_by_side([find_craters(prob, data.images[i], target=kind, verifier=v, options=options)
                             for i, prob in enumerate(probs)], images=range(lo, hi))
        if v is not None:
            options = {**options, "verifier": v.metadata.get("name"), "verifier_threshold": v.threshold}
        t_ext = time.perf_counter() - t1
        results = evaluate(pred, truth, rule="all", d_min=args.d_min)
        report["methods"][method] = {"extract_seconds": round(t_ext, 1), "options": options,
                                     **{rule: r.to_dict() for rule, r in results.items()}}
        print(f"\n### extraction: {method} ({t_ext:.1f} s for {len(data)} chips)\n")
        print("| rule | precision | recall | F1 | matched truths | truths >= d_min | detections counted |")
        print("|---|---|---|---|---|---|---|")
        for rule, r in results.items():
            print(f"| {rule} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} | {r.n_truth_matched} | {r.n_truth} | {r.n_pred} |")
        r = results["deepmoon"]
        print("\nDeepMoon rule by diameter (px):\n")
        print(r.by_diameter.to_string(index=False))
        # chips, not craters, are the independent units: the bootstrap resamples whole chips
        counts = group_counts(r, pred, truth, "image", groups=range(lo, hi))
        report["methods"][method]["deepmoon_counts_by_chip"] = counts.reset_index().to_dict(orient="list")
        if args.bootstrap:
            ref = reference.get(method, {}).get("deepmoon_counts_by_chip")
            ref = pd.DataFrame(ref).set_index("image") if ref else None
            ci = bootstrap_scores(counts, reference=ref, n_boot=args.bootstrap)
            report["methods"][method]["deepmoon_bootstrap_95"] = ci.to_dict(orient="index")
            print(f"\nDeepMoon rule, 95 % intervals from {args.bootstrap} resamples of the {len(data)} chips"
                  + (f" (f1_difference: this model minus {args.reference})" if ref is not None else "") + ":\n")
            print(ci.round(3).to_string())
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
