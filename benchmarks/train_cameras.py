"""Fine-tune the segmentation network across cameras: THEMIS Day IR chips plus CTX MC11-E.

The network sees CTX at the pyramid's scales (6, 12 and 24 m per pixel: the image and its
anti-aliased halves), so that every level :func:`marscraters.detect` runs on a CTX image is one it
trained on, beside the THEMIS chips 0-439 it already knew (100 m).  The quadrangle crops stay out:
they remain new ground for the THEMIS scores.

* training: chips 0-439 and CTX images ``--train`` (default A-F), cut into 416 px tiles;
* validation (the best epoch by crater F1): chips 440-499 and CTX ``--validation`` (G, H).

With ``--ctx-only`` the THEMIS chips stay out of both: a network for fine imagery only, trained
and monitored on CTX alone (``benchmarks/splits/cameras_rule.md``, addendum 2).

CTX labels: the clustered boxes marked by at least ``--min-confidence`` of the six annotators.

Usage (resumable: the same command continues from the last epoch)::

    python benchmarks/train_cameras.py --out runs/cameras/net [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_quadrangles import _join, add_fine_tune_flags, fine_tune_start

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))
TILE = 416
LEVELS = (1.0, 0.5, 0.25)


def _starts(n: int, tile: int) -> list[int]:
    """Tile origins covering ``n`` pixels with the fewest overlapping tiles."""
    if n <= tile:
        return [0]
    k = int(np.ceil(n / tile))
    return [int(round(i * (n - tile) / (k - 1))) for i in range(k)]


def ctx_tiles(keys: list[str], data: Path, *, min_confidence: int, levels=LEVELS, tile: int = TILE):
    """CTX images as 416 px tiles at each pyramid level (grey levels 0..255), each with the craters
    whose rims reach into it, and the tiles' names."""
    from skimage.transform import rescale

    from marscraters.chips import read_voc_labels
    from marscraters.detect import read_grey_image

    images, truths, names = [], [], []
    for key in keys:
        img = read_grey_image(data / "ctx-mc11e" / "images" / f"MC11E-{key}.png").astype(np.float32)
        lab = read_voc_labels(data / "ctx-mc11e" / "annotations" / "clustered" / f"MC11E-{key}.xml",
                              min_confidence=min_confidence)
        for f in levels:
            lv = img if f == 1 else rescale(img, f, order=1, anti_aliasing=True, preserve_range=True)
            x, y, d = (lab["x"] + 0.5) * f - 0.5, (lab["y"] + 0.5) * f - 0.5, lab["diameter_px"] * f
            for r0 in _starts(lv.shape[0], tile):
                for c0 in _starts(lv.shape[1], tile):
                    inside = ((x + d / 2 >= c0) & (x - d / 2 < c0 + tile) & (y + d / 2 >= r0) & (y - d / 2 < r0 + tile))
                    truths.append(pd.DataFrame({"x": x[inside] - c0, "y": y[inside] - r0, "diameter_px": d[inside]})
                                  .reset_index(drop=True))
                    images.append(lv[r0:r0 + tile, c0:c0 + tile].astype(np.float32))
                    names.append(f"MC11E-{key} x{f:g} r{r0} c{c0}")
    return np.stack(images), truths, names


def ctx_set(keys: list[str], data: Path, *, min_confidence: int, levels=LEVELS, tile: int = TILE):
    """:func:`ctx_tiles` as a TrainingSet (network inputs in 0..1)."""
    from marscraters.model import normalise_image
    from marscraters.training import TrainingSet

    images, truths, names = ctx_tiles(keys, data, min_confidence=min_confidence, levels=levels, tile=tile)
    craters = pd.concat([t.assign(image=i) for i, t in enumerate(truths)], ignore_index=True)
    norm = np.stack([normalise_image(im, value_range=(0.0, 255.0)) for im in images]).astype(np.float32)
    return TrainingSet(norm, craters[["image", "x", "y", "diameter_px"]], names)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--train", nargs="+", default=list("ABCDEF"))
    p.add_argument("--validation", nargs="+", default=["G", "H"])
    p.add_argument("--min-confidence", type=int, default=2)
    p.add_argument("--ctx-only", action="store_true", help="train and validate on the CTX images alone")
    add_fine_tune_flags(p, epochs=4)
    args = p.parse_args(argv)
    data = Path(args.data)

    from marscraters.chips import read_chips
    from marscraters.training import chips_training_set, train

    train_set = ctx_set(args.train, data, min_confidence=args.min_confidence)
    val_set = ctx_set(args.validation, data, min_confidence=args.min_confidence)
    themis = {"themis": None, "validation": list(args.validation)}
    if not args.ctx_only:
        chips = read_chips(data / "themis-dayir-crops", indices=range(500))
        train_set = _join(chips_training_set(chips, range(440)), train_set)
        val_set = _join(chips_training_set(chips, range(440, 500)), val_set)
        themis = {"themis": "chips 0-439", "validation": ["chips 440-499", *args.validation]}
    model, config, info = fine_tune_start(args)
    print(f"{len(train_set)} training images ({len(train_set.craters)} craters), {len(val_set)} validation",
          flush=True)
    result = train(train_set, val_set, args.out, config, model=model, resume=True, verbose=2,
                   metadata={"data": {**themis, "ctx": args.train, "ctx_min_confidence": args.min_confidence,
                                      "ctx_levels": list(LEVELS), "init": str(args.init or info.get("name"))}})
    best = max(result["history"], key=lambda r: r.get("val_crater_f1") or -1)
    print(json.dumps({"out": args.out, "best_epoch": best}, default=str))
    return result


if __name__ == "__main__":
    main()
