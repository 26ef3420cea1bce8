"""How the shipped detector does at other pixel scales: held-out THEMIS chips, made coarser.

Run: ``python benchmarks/evaluate_scales.py [--test 500:600] [--scales 1 0.75 0.5 0.432] [--json out.json]``

Each chip (~100 m/px) is resampled by ``s`` (anti-aliased, so 0.432 mimics the 231 m/px ASU
``thm_dir`` tiles of the same camera) and given to :func:`marscraters.detect` twice:

* with its true pixel size (``pixel_size_m = 100 / s``): detect resamples it to the model's
  native ~100 m/px first (the package's path for coarser imagery);
* as if it were at 100 m/px (no resampling): what a user gets by passing the wrong pixel size.

Detections are mapped back to the original pixels (÷ s) and scored against the chips' Robbins
craters with the DeepMoon rule, recall on craters >= ``--d-min`` original px (precision on
detections >= 0.8 d_min), all chips pooled.  Nothing is chosen here: it only reports.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> list[dict]:
    from skimage.transform import rescale

    from marscraters.chips import chip_craters, read_chips
    from marscraters.detect import detect
    from marscraters.evaluate import evaluate, side_by_side

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", default=str(REPO.parent / "shared" / "data" / "themis-dayir-crops"))
    p.add_argument("--edge-boxes", choices=["circle", "box"], default="circle",
                   help="labels cut by the chip edge: restore their circles (default) or take the boxes as they are "
                   "(as scored up to v6)")
    p.add_argument("--test", default="500:600")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.432])
    p.add_argument("--d-min", type=float, default=16.0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    lo, hi = (int(v) for v in args.test.split(":"))
    chips = read_chips(args.chips, indices=range(lo, hi), edge_boxes=args.edge_boxes)
    truth = side_by_side([chip_craters(chips, i) for i in range(len(chips))])
    rows = []
    for s in args.scales:
        modes = [("resampled to native", 100.0 / s)] + ([("as if 100 m/px", 100.0)] if s != 1.0 else [])
        for mode, pixel_size in modes:
            t0 = time.perf_counter()
            found = []
            for img in chips.images:
                small = img if s == 1.0 else rescale(img, s, order=1, anti_aliasing=True, preserve_range=True)
                det = detect(small.astype(np.float32), pixel_size_m=pixel_size)
                # pixel centres: (i + 0.5) / s - 0.5 in the original chip
                found.append(det.assign(x=(det["x"] + 0.5) / s - 0.5, y=(det["y"] + 0.5) / s - 0.5,
                                        diameter_px=det["diameter_px"] / s))
            pred = side_by_side(found)
            r = evaluate(pred, truth, rule="deepmoon", d_min=args.d_min)
            row = {"scale": s, "pixel_size_m": round(100.0 / s, 1), "mode": mode, "precision": r.precision,
                   "recall": r.recall, "f1": r.f1, "seconds": time.perf_counter() - t0}
            rows.append(row)
            print(f"| {s:g} | {100 / s:.0f} m/px | {mode} | {r.precision:.3f} | {r.recall:.3f} | **{r.f1:.3f}** |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
