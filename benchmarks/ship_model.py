"""Package a trained model as the shipped default (``marscraters/weights/symmetric_unet.keras``).

Usage::

    python benchmarks/ship_model.py runs/outline-k3/best.keras --tuning tune.json [--scores test.json] [--name NAME]

Copies the model with its metadata, adding: the native pixel size of its training data (the
THEMIS chips are ~100 m/px), the circle-finder settings with the best validation F1 (the top row
of ``benchmarks/tune_extraction.py --json``), and the held-out scores when given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from marscraters.model import DEFAULT_WEIGHTS, load_model, read_model_metadata, save_model


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--tuning", required=True, help="JSON from benchmarks/tune_extraction.py")
    p.add_argument("--scores", help="JSON from benchmarks/evaluate_model.py on the held-out chips")
    p.add_argument("--native-pixel-size", type=float, default=100.0)
    p.add_argument("--name", default="marscraters-themis-outline-v1")
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    args = p.parse_args(argv)

    meta = read_model_metadata(args.model)

    def best_of(path: str) -> tuple[dict, dict]:
        best = pd.read_json(path).sort_values("f1", ascending=False).iloc[0].dropna().to_dict()
        return ({k: v for k, v in best.items() if k not in ("precision", "recall", "f1", "seconds")},
                {k: best[k] for k in ("precision", "recall", "f1")})

    extract, tuned = best_of(args.tuning)
    extra = {
        "name": args.name,
        "native_pixel_size_m": args.native_pixel_size,
        "extract": extract,
        "validation_tuning": tuned,
        "data": meta.get("data"),
        "training": meta.get("training"),
        "epoch": meta.get("epoch"),
    }
    if args.scores:
        extra["test_scores"] = json.loads(Path(args.scores).read_text())
    out = save_model(load_model(args.model), args.out, metadata=extra, overwrite=True)
    print(f"shipped {args.model} -> {out} ({out.stat().st_size / 1e6:.1f} MB)\nextract settings: {extract}")
    return out


if __name__ == "__main__":
    main()
