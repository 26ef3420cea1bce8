"""Real THEMIS Day IR crops next to synthetic ones at the same scale, with their brightness statistics.

Run::

    python benchmarks/synthetic_vs_real.py [--data ../shared/data/themis-dayir-crops] [--out docs/figures/synthetic_vs_real.png]

Top row: three real 416 x 416 px crops (~100 m/px, USGS THEMIS Day IR controlled mosaic).  Bottom
row: three 416 x 416 px windows of synthetic surfaces at the same scale (592.747 px/deg) and ages
1.0, 3.0 and 3.7 Ga.  Prints the median per-chip statistics of 60 real crops and of 24 synthetic
windows (mean, standard deviation, 1st/99th percentiles, pixel-to-pixel noise, log-log slope of the
radial power spectrum), which is what the synthetic brightness model was tuned on.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

PPD = 592.747
REPO = Path(__file__).resolve().parents[1]


def chip_stats(chips: list[np.ndarray]) -> dict[str, float]:
    def psd_slope(a: np.ndarray) -> float:
        a = a - a.mean()
        power = np.abs(np.fft.fftshift(np.fft.fft2(a))) ** 2
        ny, nx = a.shape
        yy, xx = np.indices(a.shape)
        r = np.hypot(yy - ny / 2, xx - nx / 2).astype(int)
        ps = np.bincount(r.ravel(), power.ravel()) / np.bincount(r.ravel())
        k = np.arange(ps.size)
        sel = (k > 4) & (k < 150)
        return float(np.polyfit(np.log(k[sel]), np.log(ps[sel]), 1)[0])

    rows = {
        "mean": [c.mean() for c in chips],
        "std": [c.std() for c in chips],
        "p1": [np.percentile(c, 1) for c in chips],
        "p99": [np.percentile(c, 99) for c in chips],
        "noise": [np.std(np.diff(c, axis=1)) / np.sqrt(2) for c in chips],
        "psd_slope": [psd_slope(c) for c in chips],
    }
    return {k: round(float(np.median(v)), 2) for k, v in rows.items()}


def synthetic_chips(ages: list[float], per_age: int = 2, seed0: int = 0) -> list[np.ndarray]:
    from marscraters.synthetic import synthetic_surface

    chips = []
    for i, age in enumerate(ages):
        s = synthetic_surface((30.0, -1.5, 31.5, 0.0), PPD, age_ga=age, seed=seed0 + i)
        a = np.nan_to_num(s.mosaic["ir"].values, nan=0.0)
        for j in range(per_age):
            y0 = x0 = 20 + 430 * (j % 2)
            chips.append(a[y0 : y0 + 416, x0 : x0 + 416])
    return chips


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO / ".." / "shared" / "data")) / "themis-dayir-crops"
    p.add_argument("--data", type=Path, default=default_data)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "synthetic_vs_real.png")
    p.add_argument("--real", type=int, nargs=3, default=[57, 250, 480], help="crop numbers shown")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from marscraters._io import atomic_path

    def real(i: int) -> np.ndarray:
        return np.asarray(Image.open(args.data / "images" / f"crater{i}.jpg").convert("L"), dtype=np.float32)

    real_stats = chip_stats([real(i) for i in range(0, 600, 10)])
    syn = synthetic_chips([0.5, 1.0, 2.0, 3.0, 3.5, 3.7], per_age=4 // 2 * 2, seed0=100)
    syn_stats = chip_stats(syn)
    print("median per-chip statistics (DN)")
    print(f"{'':10s}" + "".join(f"{k:>11s}" for k in real_stats))
    print(f"{'real':10s}" + "".join(f"{v:11.2f}" for v in real_stats.values()))
    print(f"{'synthetic':10s}" + "".join(f"{v:11.2f}" for v in syn_stats.values()))

    shown_syn = synthetic_chips([1.0, 3.0, 3.7], per_age=1, seed0=7)
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4), constrained_layout=True)
    for ax, i in zip(axes[0], args.real):
        ax.imshow(real(i), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"real THEMIS Day IR, crop {i}")
    for ax, chip, age in zip(axes[1], shown_syn, [1.0, 3.0, 3.7]):
        ax.imshow(chip, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"synthetic, {age} Ga")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("416 x 416 px at ~100 m/px (41.6 km across); Sun from the west (left)")
    with atomic_path(args.out, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
