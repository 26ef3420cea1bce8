"""Tiled prediction: throughput of ``predict_image`` for several tile/halo/batch settings, side by side.

Run: ``python benchmarks/bench_predict_image.py [size]`` (default 4096).

Prints seconds and Mpx/s of the *image* (not of the windows) for each setting, and the ratio to
predicting the whole image in one call.  All runs use the same random-weight default model and the
same image, in one process; each setting is warmed up, then timed in 2 interleaved rounds, and the best time is kept.
"Exact" settings use a halo of at least the receptive margin (509 px for 3x3 kernels, rounded up to
512) and reproduce the whole-image prediction; "approx." settings use a smaller halo.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np

from marscraters.model import flops_per_pixel, predict_image, receptive_margin, symmetric_unet


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    rounds = 2
    rng = np.random.default_rng(0)
    image = (rng.random((size, size)) * 255).astype(np.float32)
    model = symmetric_unet()
    fpp = flops_per_pixel(model)
    print(f"image {size}x{size}, default model, {fpp:.0f} FLOP/px, receptive margin {receptive_margin(3)} px")
    configs = [
        ("whole image (tile=None)", dict(tile=None)),
        ("tile 2048, halo 512 (exact; auto above 4096^2)", dict(tile=2048)),
        ("tile 1024, halo 512, batch 2 (exact)", dict(tile=1024, batch_size=2)),
        ("tile 512, halo 512, batch 4 (exact)", dict(tile=512, batch_size=4)),
        ("tile 512, halo 128, batch 4 (approx.)", dict(tile=512, halo=128, batch_size=4)),
    ]
    for _, kw in configs:  # warm-up: traces the predict function for each window shape
        predict_image(model, image, **kw)
    best = {label: float("inf") for label, _ in configs}
    for _ in range(rounds):  # interleaved, so drifts of a shared VM hit every setting alike
        for label, kw in configs:
            t0 = time.perf_counter()
            predict_image(model, image, **kw)
            best[label] = min(best[label], time.perf_counter() - t0)
    base = size * size / best[configs[0][0]] / 1e6
    for label, _ in configs:
        mpx = size * size / best[label] / 1e6
        print(f"{label:40s} {best[label]:7.2f} s  {mpx:5.2f} Mpx/s  x{mpx / base:4.2f} vs whole")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak RSS {rss:.1f} GB (the whole-image run dominates)")


if __name__ == "__main__":
    main()
