"""Model forward throughput next to this machine's matrix-multiply-bound limit, in one run.

Run: ``python benchmarks/bench_model_speed.py [--batches 8] [--batch-size 4 16] [--accelerator] [--shipped]``

1. Measures float32 matrix-multiply speed in GFLOP/s: numpy SGEMM (2048 x 2048, best of 5) on the
   CPU, or with ``--accelerator`` the Keras backend's own ``keras.ops.matmul`` on its default
   device (8192 x 8192, float32 and bfloat16; e.g. ``KERAS_BACKEND=jax`` on a GPU).
2. Measures the default Symmetric UNet's forward pass on 512 x 512 tiles for each batch size
   (``model.predict_on_batch``, numpy in and out, best of ``--batches``) in Mpx/s, and turns it
   into GFLOP/s with the architecture's FLOP count per pixel
   (``marscraters.model.flops_per_pixel``, ~17.4 kFLOP/px).  ``--mixed`` adds the same model
   under Keras' ``mixed_bfloat16`` policy (same weights); ``--shipped`` adds the shipped default
   model (``marscraters.load_model()``, whatever its filter multiple), with its own FLOP count.
3. Prints the compute-bound limit (matmul GFLOP/s / FLOP per pixel) and the model's fraction of it.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from marscraters.model import describe_model, flops_per_pixel, load_model, symmetric_unet


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n**3 / best / 1e9


def backend_matmul_gflops(n: int = 8192, dtype: str = "float32", chain: int = 10, repeats: int = 3) -> float:
    """Matrix-multiply rate of the Keras backend on its default device (GPU if it has one).

    ``chain`` products are queued and then forced by one small reduction copied to the host,
    so asynchronous devices are timed to completion in a backend-neutral way.
    """
    import keras

    ops = keras.ops
    a = ops.cast(keras.random.uniform((n, n), seed=0), dtype)
    b = ops.cast(keras.random.uniform((n, n), seed=1), dtype) / n

    def run() -> None:
        c = a
        for _ in range(chain):
            c = ops.matmul(c, b)
        ops.convert_to_numpy(ops.sum(ops.cast(c[:1, :1], "float32")))

    run()  # warm-up (compilation)
    best = min(_timed(run) for _ in range(repeats))
    return 2.0 * n**3 * chain / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _device() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    if keras.backend.backend() == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{platform.machine()} {platform.processor() or ''}".strip()


def main(argv: list[str] | None = None) -> dict:
    import keras

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, nargs="+", default=[4])
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--accelerator", action="store_true",
                   help="limit from the Keras backend's matmul on its device instead of numpy SGEMM")
    p.add_argument("--mixed", action="store_true", help="also time the model under mixed_bfloat16")
    p.add_argument("--matmul-size", type=int, default=8192, help="side of the --accelerator matmul (default 8192)")
    p.add_argument("--shipped", action="store_true", help="also time the shipped default model")
    args = p.parse_args(argv)
    model = symmetric_unet()
    fpp = flops_per_pixel(model)
    n = args.matmul_size
    limits = {"float32": backend_matmul_gflops(n)} if args.accelerator else {"float32": sgemm_gflops()}
    if args.accelerator:
        limits["bfloat16"] = backend_matmul_gflops(n, dtype="bfloat16")
    models = [("float32", model, fpp)]
    if args.mixed:
        keras.config.set_dtype_policy("mixed_bfloat16")
        mixed = symmetric_unet()
        keras.config.set_dtype_policy("float32")
        mixed.set_weights(model.get_weights())
        models.append(("mixed_bfloat16", mixed, fpp))
    if args.shipped:
        shipped = load_model()
        multiple = describe_model(shipped)["filter_multiple"]
        models.append((f"shipped (x{multiple:g} filters, {flops_per_pixel(shipped) / 1e3:.1f} kFLOP/px)", shipped,
                       flops_per_pixel(shipped)))
    device = _device()
    print(f"backend {keras.backend.backend()} on {device}; {fpp / 1e3:.1f} kFLOP/px")
    for dt, g in limits.items():
        print(f"matmul {dt}: {g:.0f} GFLOP/s -> compute-bound limit {g * 1e9 / fpp / 1e6:.1f} Mpx/s")
    rows = []
    print("\n| model | batch | Mpx/s | GFLOP/s | fraction of the matmul limit |  (bfloat16 rows: of the bfloat16 limit"
          " with --accelerator, else of the float32 one)")
    print("|---|---|---|---|---|")
    for label, m, fpp_m in models:
        limit_mpx = limits["bfloat16" if label == "mixed_bfloat16" and "bfloat16" in limits else "float32"] * 1e9 / fpp_m / 1e6
        for bs in args.batch_size:
            x = np.random.default_rng(0).random((bs, args.tile, args.tile, 1), dtype=np.float32)
            m.predict_on_batch(x)  # warm-up (graph tracing / compilation)
            best = min(_timed(lambda: m.predict_on_batch(x)) for _ in range(args.batches))
            mpx = bs * args.tile**2 / best / 1e6
            rows.append({"model": label, "batch": bs, "mpx_s": mpx, "gflops": mpx * fpp_m / 1e3,
                         "flop_per_px": fpp_m, "fraction_of_limit": mpx / limit_mpx})
            print(f"| {label} | {bs} | {mpx:.2f} | {mpx * fpp_m / 1e3:.0f} | {mpx / limit_mpx:.3f} |")
    first = rows[0]
    limit_mpx = limits["float32"] * 1e9 / fpp / 1e6
    print(f"ratio model / limit (float32, batch {first['batch']}): {first['mpx_s'] / limit_mpx:.3f}")
    return {"device": device, "backend": keras.backend.backend(), "flop_per_px": fpp,
            "matmul_gflops": limits, "limit_mpx_s": limit_mpx, "rows": rows,
            # the keys of the CPU-only version, kept for scripts that read them
            "sgemm_gflops": limits["float32"], "model_mpx_s": first["mpx_s"],
            "model_gflops": first["gflops"], "fraction_of_limit": first["mpx_s"] / limit_mpx}


if __name__ == "__main__":
    main()
