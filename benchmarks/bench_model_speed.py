"""Model forward throughput next to this machine's matrix-multiply-bound limit, in one run.

Run: ``python benchmarks/bench_model_speed.py [--batches 8]``

1. Measures float32 matrix-multiply speed (numpy SGEMM, 2048 x 2048, best of 5) in GFLOP/s.
2. Measures the default Symmetric UNet's forward pass on 512 x 512 tiles in batches of 4
   (``model.predict_on_batch``, best of ``--batches``) in Mpx/s, and turns it into GFLOP/s with the
   architecture's FLOP count per pixel (``marscraters.model.flops_per_pixel``, ~17.4 kFLOP/px).
3. Prints the compute-bound limit (SGEMM GFLOP/s / FLOP per pixel) and the model's fraction of it.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from marscraters.model import flops_per_pixel, symmetric_unet


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--tile", type=int, default=512)
    args = p.parse_args(argv)
    model = symmetric_unet()
    fpp = flops_per_pixel(model)
    x = np.random.default_rng(0).random((args.batch_size, args.tile, args.tile, 1), dtype=np.float32)
    model.predict_on_batch(x)  # warm-up (graph tracing)
    gflops_mm = sgemm_gflops()
    best = min(_timed(lambda: model.predict_on_batch(x)) for _ in range(args.batches))
    mpx = x.shape[0] * args.tile**2 / best / 1e6
    gflops_model = mpx * 1e6 * fpp / 1e9
    limit_mpx = gflops_mm * 1e9 / fpp / 1e6
    out = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "sgemm_gflops": gflops_mm,
           "flop_per_px": fpp, "model_mpx_s": mpx, "model_gflops": gflops_model, "limit_mpx_s": limit_mpx,
           "fraction_of_limit": mpx / limit_mpx}
    print(f"SGEMM: {gflops_mm:.0f} GFLOP/s -> compute-bound limit {limit_mpx:.1f} Mpx/s at {fpp / 1e3:.1f} kFLOP/px")
    print(f"model: {mpx:.2f} Mpx/s ({gflops_model:.0f} GFLOP/s) on {args.tile}^2 tiles x {args.batch_size}")
    print(f"ratio model / limit: {mpx / limit_mpx:.2f}")
    return out


if __name__ == "__main__":
    main()
