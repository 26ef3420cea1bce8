"""Is the network's recall on new ground a matter of image compression? (a diagnostic)

Run: ``python benchmarks/quadrangle_compression.py [--json docs/results/quadrangle_compression.json]``

The network trained on the THEMIS chips of ``themis-dayir-crops``, which are JPEG files (quality 75,
by their quantisation tables); the quadrangle crops, its new ground, are lossless PNG.  This feeds
20 crops of every quadrangle (220, seed 0) to the shipped network as they are, after a JPEG round
trip at quality 75 and 50, and slightly blurred (Gaussian, sigma 0.7 px), and reports for each the
share of Robbins craters >= 16 px that get a candidate at the verifier's low thresholds
(``verify.CANDIDATE_OPTIONS``) and the one-stage finder's precision, recall and F1 (the model's own
settings; DeepMoon rule, floor scoring at 16 px).  Nothing is chosen from it.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quadrangles import load_crops  # noqa: E402


def jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    """An 8-bit grey image after a JPEG round trip (saved as RGB, as the chips are)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L")).astype(np.float32)


def main(argv: list[str] | None = None) -> dict:
    from scipy import ndimage

    from marscraters.detect import model_info
    from marscraters.evaluate import evaluate, side_by_side
    from marscraters.extract import extract_craters
    from marscraters.model import load_model, normalise_image
    from marscraters.training import predict_stack
    from marscraters.verify import CANDIDATE_OPTIONS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-quadrangle", type=int, default=20)
    p.add_argument("--json")
    args = p.parse_args(argv)
    images, truths, index = load_crops()
    rng = np.random.default_rng(0)
    quads = index["quadrangle"].to_numpy()
    pick = np.sort(np.concatenate([rng.permutation(np.flatnonzero(quads == q))[:args.per_quadrangle]
                                   for q in sorted(set(quads))]))
    truth = side_by_side([truths[i][["x", "y", "diameter_px"]] for i in pick])
    variants = {"as is (PNG)": lambda a: a, "JPEG q75": jpeg, "JPEG q50": lambda a: jpeg(a, 50),
                "blur sigma 0.7 px": lambda a: ndimage.gaussian_filter(a, 0.7)}
    model, info = load_model(None), model_info(None)
    report = {"date": time.strftime("%Y-%m-%d"), "crops": int(len(pick)),
              "craters_16px": int((truth["diameter_px"] >= 16).sum()), "rows": {}}
    for name, f in variants.items():
        norm = np.stack([normalise_image(f(images[i]), value_range=(0, 255)) for i in pick]).astype(np.float32)
        probs = predict_stack(model, norm)
        cands = side_by_side([extract_craters(m, target=info["kind"], **CANDIDATE_OPTIONS) for m in probs])
        one = evaluate(side_by_side([extract_craters(m, target=info["kind"], **info["extract"]) for m in probs]),
                       truth, d_min=16)
        report["rows"][name] = {"candidate_recall": round(evaluate(cands, truth, d_min=16).recall, 4),
                                "one_stage_precision": round(one.precision, 4), "one_stage_recall": round(one.recall, 4),
                                "one_stage_f1": round(one.f1, 4)}
        print(name, report["rows"][name], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
