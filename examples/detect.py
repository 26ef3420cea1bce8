"""Find craters on a plain image (no georeferencing) and draw them.

Mirrors docs/guide/detect.md.  Usage::

    python examples/detect.py [--out DIR] [--fast]

Uses a real THEMIS chip from ../shared/data when present, else a synthetic THEMIS-like image.
Writes the image as PNG, the craters as CSV (``x``, ``y``, ``diameter_px``, ``diameter_m``,
``score``) and a figure of the image with the detected rims; then detects again on a darkened,
low-contrast copy (reflectance-like levels), which ``detect`` stretches on its own, with a
warning.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import marscraters as mc  # noqa: E402
from marscraters.detect import read_grey_image  # noqa: E402
from marscraters.synthetic import synthetic_surface  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO / ".." / "shared" / "data"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="a small image, for CI")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    chip = SHARED / "themis-dayir-crops" / "images" / "crater500.jpg"  # a held-out chip of the shipped model
    if chip.exists():
        source, pixel_size = chip, 100.0
    else:
        size = 0.4 if args.fast else 0.8
        surface = synthetic_surface((30.0, -size, 30.0 + size, 0.0), 592.747, seed=7, n_per_km2_above_1km=2e-2,
                                    dmax_km=20)
        levels = np.nan_to_num(surface.mosaic["ir"].values, nan=0.0)
        source, pixel_size = out / "image.png", 100.0
        Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8)).save(source)

    image = read_grey_image(source)  # PNG, JPEG, PGM, TIFF; RGB is made grey
    craters = mc.detect(image, pixel_size_m=pixel_size)  # the shipped model, circle finder and verifier
    craters.to_csv(out / "craters.csv", index=False, float_format="%.2f")
    print(f"{source.name}: {image.shape[1]} x {image.shape[0]} px at {pixel_size:g} m/px, {len(craters)} craters")
    print(craters.head().to_string(index=False))

    # the same scene as reflectance-like floats (0.05-0.25): far darker and flatter than the training
    # chips, so detect stretches it on its own and says so
    dark = 0.05 + 0.2 * (image.astype(np.float32) - image.min()) / max(float(np.ptp(image)), 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = mc.detect(dark, pixel_size_m=pixel_size)
    said = [str(w.message).split(";")[0][:100] for w in caught if "stretched" in str(w.message)]
    print(f"low-contrast copy: {len(again)} craters; warning: {said[0] if said else 'none'}")

    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(image, cmap="gray")
    for row in craters.itertuples():
        ax.add_patch(plt.Circle((row.x, row.y), row.diameter_px / 2, fill=False, color="orange", lw=1.2))
    ax.set_title(f"{len(craters)} craters found by marscraters.detect ({pixel_size:g} m/px)")
    ax.set_axis_off()
    fig.savefig(out / "detections.png", dpi=100, bbox_inches="tight")
    print("wrote", out / "craters.csv", "and", out / "detections.png")


if __name__ == "__main__":
    main()
