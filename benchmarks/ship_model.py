"""Package a trained model as the shipped default (``marscraters/weights/symmetric_unet.keras``).

Usage::

    python benchmarks/ship_model.py runs/outline-k3/best.keras --tuning tune.json [--scores test.json] [--name NAME]
                                    [--verifier crater_classifier.keras]

Copies the model with its metadata, adding: the native pixel size of its training data (the
THEMIS chips are ~100 m/px), the circle-finder settings with the best validation F1 (the top row
of ``benchmarks/tune_extraction.py --json``; without ``--tuning`` the model's own are kept), the
held-out scores when given, the name of its crater verifier (``benchmarks/train_verifier.py``),
copied beside the output, and its own image-pyramid band (``--pyramid-top-px``) when one was chosen
for it.  ``--weights-dtype float16`` stores the weights rounded to half precision
(how a network wider than x1.5 stays under the 10 MB the package allows).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from marscraters.model import DEFAULT_WEIGHTS, load_model, read_model_metadata, save_model


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--tuning", help="JSON from benchmarks/tune_extraction.py (default: keep the model's settings)")
    p.add_argument("--extract-from", help="a model file whose circle-finder settings to keep (instead of --tuning)")
    p.add_argument("--scores", help="JSON from benchmarks/evaluate_model.py on the held-out chips")
    p.add_argument("--native-pixel-size", type=float, default=100.0)
    p.add_argument("--name", default="marscraters-themis-outline-v1")
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--verifier", help="crater verifier .keras (benchmarks/train_verifier.py), copied beside --out")
    p.add_argument("--verifier-name", default="crater_classifier.keras",
                   help="file name of the verifier's copy beside --out (each shipped model names its own)")
    p.add_argument("--verifier-threshold", type=float, default=None,
                   help="the copied verifier's decision threshold (default: the one it was saved with)")
    p.add_argument("--tta", type=int, choices=[1, 2, 4, 8], default=None,
                   help="the orientations detect/segment average the model's maps over by default, as its verifier "
                        "learnt them (default: keep the model's, if any)")
    p.add_argument("--pyramid-top-px", type=float, default=None,
                   help="the model's own pyramid band (LEVEL_TOP_PX for it; default: keep the model's, if any)")
    p.add_argument("--weights-dtype", choices=("float32", "float16"), default="float32",
                   help="store the weights in half precision (half the file; the model still computes in float32)")
    args = p.parse_args(argv)

    meta = read_model_metadata(args.model)

    def best_of(path: str) -> tuple[dict, dict]:
        best = pd.read_json(path).sort_values("f1", ascending=False).iloc[0].dropna().to_dict()
        # JSON round trips turn a grid's 0.3 into 0.30000000000000004: store the value as swept
        return ({k: round(v, 6) if isinstance(v, float) else v for k, v in best.items()
                 if k not in ("precision", "recall", "f1", "seconds")},
                {k: best[k] for k in ("precision", "recall", "f1")})

    if args.tuning:
        extract, tuned = best_of(args.tuning)
    elif args.extract_from:
        other = read_model_metadata(args.extract_from)
        extract, tuned = other.get("extract", {}), other.get("validation_tuning")
    else:
        extract, tuned = meta.get("extract", {}), meta.get("validation_tuning")
    extra = {
        "name": args.name,
        "native_pixel_size_m": args.native_pixel_size,
        "extract": extract,
        "validation_tuning": tuned,
        "data": meta.get("data"),
        "training": meta.get("training"),
        "epoch": meta.get("epoch"),
    }
    tta = args.tta if args.tta is not None else meta.get("tta")
    if tta is not None and int(tta) > 1:  # its verifier learnt from maps averaged over tta orientations
        extra["tta"] = int(tta)
    top = args.pyramid_top_px if args.pyramid_top_px is not None else meta.get("pyramid_top_px")
    if top is not None:  # chosen for this model on validation images (benchmarks/splits/pyramid_rule.md)
        extra["pyramid_top_px"] = float(top)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.verifier:
        target = Path(args.out).parent / args.verifier_name
        if Path(args.verifier).resolve() != target.resolve():
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(args.verifier, tmp)
            tmp.replace(target)  # never a half-copied verifier beside the model
        if args.verifier_threshold is not None:
            from marscraters.verify import load_verifier, save_verifier

            verifier = load_verifier(target)
            if verifier.threshold != args.verifier_threshold:
                verifier.metadata["threshold_before"] = verifier.threshold
                verifier.threshold = float(args.verifier_threshold)
                save_verifier(verifier, target, overwrite=True)
        extra["verifier"] = target.name
    if args.scores:
        extra["test_scores"] = json.loads(Path(args.scores).read_text())
    out = save_model(load_model(args.model), args.out, metadata=extra, overwrite=True,
                     weights_dtype=args.weights_dtype)
    print(f"shipped {args.model} -> {out} ({out.stat().st_size / 1e6:.1f} MB)\nextract settings: {extract}")
    return out


if __name__ == "__main__":
    main()
