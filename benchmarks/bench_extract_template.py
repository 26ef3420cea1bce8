"""The template circle finder before and after its speed-up, side by side in one process.

Run from the repository root::

    python benchmarks/bench_extract_template.py [--size 1024] [--repeat 3] [--chips 20]

``extract_craters(prob, method="template")`` correlates the binarised map with ~10 templates per
scale and looks for local maxima per template.  It used to call
:func:`skimage.feature.match_template` per template (an FFT of the padded image and four
cumulative sums per template) and :func:`skimage.feature.peak_local_max` per template (a maximum
filter over the whole map).  Now :func:`marscraters.extract._ncc_bank` transforms the image and
builds its summed-area tables once per scale, and :func:`marscraters.extract._peak_local_max`
takes the window maximum only at the pixels above the threshold.

For simulated network outputs (``bench_extract.simulate_map``: filled, outline and ring
targets, ``size``² pixels, 80 craters, blurred, noisy, with false blobs) and, when
``../shared/data`` is present, the shipped model's outputs on ``--chips`` real THEMIS crops,
this script runs ``extract_craters`` with the old helpers (the skimage calls, swapped back in)
and with the new ones, alternating ``--repeat`` times, and prints the median times, the speed-up
and how far apart the two results are: the number of craters of either result without a twin in
the other (same centre and diameter within 0.01 px, score within 1e-4), and the largest
centre, diameter and score differences between twins.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from marscraters import extract as ex


@contextlib.contextmanager
def old_helpers() -> Iterator[None]:
    """Run the template finder with the skimage calls it made before the speed-up."""
    saved = ex._ncc_bank, ex._peak_local_max
    ex._ncc_bank, ex._peak_local_max = ex._reference_ncc_bank, ex._reference_peak_local_max
    try:
        yield
    finally:
        ex._ncc_bank, ex._peak_local_max = saved


def compare(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, float, float, float]:
    """Craters without a twin (either way), and the largest centre/diameter/score differences."""
    if len(a) == 0 or len(b) == 0:
        return len(a) + len(b), 0.0, 0.0, 0.0
    d = np.hypot(a.x.to_numpy()[:, None] - b.x.to_numpy()[None], a.y.to_numpy()[:, None] - b.y.to_numpy()[None])
    d += np.abs(a.diameter_px.to_numpy()[:, None] - b.diameter_px.to_numpy()[None])
    ia = np.arange(len(a))
    j = d.argmin(axis=1)
    i = d.argmin(axis=0)
    twin_a = (d[ia, j] < 0.01) & (np.abs(a.score.to_numpy() - b.score.to_numpy()[j]) < 1e-4)
    twin_b = (d[i, np.arange(len(b))] < 0.01) & (np.abs(b.score.to_numpy() - a.score.to_numpy()[i]) < 1e-4)
    lone = int((~twin_a).sum() + (~twin_b).sum())
    ok = twin_a
    dpos = np.hypot(a.x.to_numpy()[ok] - b.x.to_numpy()[j[ok]], a.y.to_numpy()[ok] - b.y.to_numpy()[j[ok]])
    ddia = np.abs(a.diameter_px.to_numpy()[ok] - b.diameter_px.to_numpy()[j[ok]])
    dsc = np.abs(a.score.to_numpy()[ok] - b.score.to_numpy()[j[ok]])
    mx = lambda v: float(v.max()) if v.size else 0.0
    return lone, mx(dpos), mx(ddia), mx(dsc)


def timed(maps: list[np.ndarray], kwargs: dict, repeat: int) -> tuple[float, float, list, list]:
    """Median seconds per map, old and new (alternating), and both results of the last round."""
    t_old, t_new = [], []
    for _ in range(repeat):
        with old_helpers():
            t = time.perf_counter()
            old = [ex.extract_craters(m, **kwargs) for m in maps]
            t_old.append((time.perf_counter() - t) / len(maps))
        t = time.perf_counter()
        new = [ex.extract_craters(m, **kwargs) for m in maps]
        t_new.append((time.perf_counter() - t) / len(maps))
    return float(np.median(t_old)), float(np.median(t_new)), old, new


def report(name: str, maps: list[np.ndarray], kwargs: dict, repeat: int) -> None:
    t_old, t_new, old, new = timed(maps, kwargs, repeat)
    lone, dpos, ddia, dsc = 0, 0.0, 0.0, 0.0
    for a, b in zip(old, new):
        c = compare(a, b)
        lone += c[0]
        dpos, ddia, dsc = max(dpos, c[1]), max(ddia, c[2]), max(dsc, c[3])
    n = sum(len(a) for a in old)
    print(f"| {name} | {n} | {lone} | {dpos:.1e} | {ddia:.1e} | {dsc:.1e} | {t_old:.3f} | {t_new:.3f} | "
          f"{t_old / t_new:.2f}× |")


def real_maps(n: int) -> tuple[list[np.ndarray], dict] | None:
    env = os.environ.get("MARSCRATERS_SHARED_DATA")
    data = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    folder = data / "themis-dayir-crops" / "images"
    if not folder.is_dir() or n <= 0:
        return None
    from PIL import Image

    from marscraters.model import load_model, predict_image, read_model_metadata

    model = load_model()
    options = dict(read_model_metadata().get("extract", {}))
    options.pop("min_score", None)
    kind = read_model_metadata().get("training", {}).get("kind", "outline")
    step = max(1, 600 // n)
    maps = []
    for i in range(0, step * n, step):
        img = np.asarray(Image.open(folder / f"crater{i}.jpg"))
        img = (img[..., 0] if img.ndim == 3 else img).astype(np.float32)
        maps.append(predict_image(model, img))
    return maps, {"target": kind, **options}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="side of the simulated maps")
    p.add_argument("--repeat", type=int, default=3, help="timing rounds (old and new alternate)")
    p.add_argument("--seeds", type=int, nargs="+", default=[3], help="simulated maps per target")
    p.add_argument("--chips", type=int, default=20, help="real THEMIS crops through the shipped model (0 = none)")
    args = p.parse_args()
    from bench_extract import simulate_map

    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs")
    print("| maps | craters (old) | without twin | max Δcentre px | max Δdiameter px | max Δscore | old s/map | "
          "new s/map | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("filled", "outline", "ring"):
        maps = [simulate_map(kind, seed, size=args.size, n=80)[0] for seed in args.seeds]
        report(f"simulated {kind}, {len(maps)} × {args.size}²", maps, {"target": kind, "method": "template"},
               args.repeat)
    real = real_maps(args.chips)
    if real is not None:
        maps, options = real
        report(f"shipped model on {len(maps)} THEMIS crops (416²)", maps, {**options, "method": "template"},
               args.repeat)


if __name__ == "__main__":
    main()
