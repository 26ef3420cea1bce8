"""Score detected craters against a reference catalog: crater-level precision, recall and F1.

Mirrors docs/guide/evaluate.md.  Usage::

    python examples/evaluate.py [--out DIR] [--fast]

Two cases: georeferenced Catalogs (separations on the Mars sphere, in km) on a synthetic
THEMIS-like surface whose true catalog is known, and PixelCraters (in pixels) on a plain image:
a real THEMIS chip with its Robbins labels from ../shared/data when present, else the synthetic
image and its truth put on its pixels.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

import marscraters as mc
from marscraters.evaluate import to_json
from marscraters.synthetic import synthetic_surface

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO / ".." / "shared" / "data"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="a small synthetic surface, for CI")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # --- Catalogs: detections of the whole mosaic against its true catalog, in km
    size = 0.6 if args.fast else 1.5
    surface = synthetic_surface((30.0, -size, 30.0 + size, 0.0), 592.747, seed=2019, n_per_km2_above_1km=2e-2, dmax_km=32)
    ds = surface.mosaic
    detected = ds.craters.catalog(progress=False)  # segment (lazily) + circle finder, georeferenced
    truth = mc.filter_catalog(surface.catalog, footprint=ds)
    # scored as Catalogs, on the sphere (the detections' pixel columns are ignored)
    scores = mc.evaluate(detected, truth, rule="all", d_min=1.5)  # {"deepmoon": ..., "iou": ..., "pycda": ...}
    for result in scores.values():
        print(result.summary())
    print(scores["deepmoon"].by_diameter.to_string(index=False))
    to_json(scores, out / "scores.json", overwrite=True)
    print("wrote", out / "scores.json", "with", sorted(json.loads((out / "scores.json").read_text())))

    # --- PixelCraters: detection on a plain image against labels in pixels
    chips_dir = SHARED / "themis-dayir-crops"
    if chips_dir.is_dir():
        from marscraters.chips import chip_craters, read_chips

        chips = read_chips(chips_dir, indices=[500])  # chips 500-599: the shipped model's held-out test set
        image, labels = chips.images[0], chip_craters(chips, 0)
        where = f"real THEMIS chip {chips.names[0]}"
    else:
        image = np.nan_to_num(ds["ir"].values, nan=0.0)
        grid = ds.craters.grid
        col, row = grid.lonlat_to_pixel(truth["lon"].to_numpy(), truth["lat"].to_numpy())
        dx, dy = grid.km_to_pixels(truth["diameter_km"].to_numpy(), truth["lat"].to_numpy())
        labels = pd.DataFrame({"x": col, "y": row, "diameter_px": (np.asarray(dx) + np.asarray(dy)) / 2})
        where = "the synthetic image"
    found = mc.detect(image, pixel_size_m=100)  # x, y, diameter_px, diameter_m, score
    result = mc.evaluate(found, labels, d_min=16)  # Robbins labels are complete from ~16 px here
    print(f"{where}: {len(found)} detections, {len(labels)} labels")
    print(result.summary())
    if len(result.matches):
        print(result.matches.head())
    # the same pairs, without the counting
    pairs = mc.match_craters(found, labels, rule="iou")
    print(f"{len(pairs)} one-to-one pairs with circle IoU >= 0.5")


if __name__ == "__main__":
    main()
