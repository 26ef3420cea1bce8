"""The network in float32 and in bfloat16, side by side: craters found and time.

Run: ``python benchmarks/bench_precision.py [--repeats 3] [--json docs/results/bench_precision.json]``

For each precision (``detect(..., precision=p)``), :func:`marscraters.detect` runs with the shipped
models and verifiers on

* THEMIS Day IR chips ``--themis`` (default 440-499, validation) at 100 m/px;
* CTX MC11-E images ``--ctx`` (default G and H, validation) at 6 m/px, truth = the clustered boxes
  marked by at least ``--min-confidence`` of the six annotators.

Scores: DeepMoon rule, floor scoring at ``--d-min`` px, craters pooled.  Time, the precisions
alternated over ``--repeats`` rounds (median; the model loads excluded): ``detect`` on the THEMIS
chips, and the raw network (``predict_on_batch``, batches of 4) on the same chips padded to 512 px.
The largest difference between the two precisions' probability maps is reported too.  The rule that
decides from these numbers is ``benchmarks/splits/precision_rule.md``; this script only reports.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from pyramid import (
    _per_image,
    _score,
    add_validation_args,
    validation_sets,
    write_report,
)

PRECISIONS = ("float32", "bfloat16")


def main(argv: list[str] | None = None) -> dict:
    from marscraters.detect import detect
    from marscraters.model import DEFAULT_WEIGHTS, _cpu_has_bf16, normalise_image
    from marscraters.segment import _cached_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_validation_args(p)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-ctx", action="store_true", help="time and score the THEMIS chips only")
    args = p.parse_args(argv)
    themis, themis_truth, ctx_images, ctx_truth = validation_sets(args)

    # the raw network's input: the chips normalised and padded to 512 px, in batches of 4
    x = np.stack([normalise_image(c, value_range=(0.0, 255.0)) for c in themis])[..., None].astype(np.float32)
    pad = (512 - x.shape[1]) // 2
    x = np.pad(x, ((0, 0), (pad, 512 - x.shape[1] - pad), (pad, 512 - x.shape[2] - pad), (0, 0)), mode="reflect")
    nets = {pr: _cached_model(DEFAULT_WEIGHTS, pr) for pr in PRECISIONS}

    def network(pr):
        return np.concatenate([np.asarray(nets[pr].predict_on_batch(x[i:i + 4]), np.float32)
                               for i in range(0, len(x), 4)])

    maps = {pr: network(pr) for pr in PRECISIONS}  # also the warm-up
    diff = np.abs(maps["float32"] - maps["bfloat16"])
    for pr in PRECISIONS:
        detect(themis[:2], pixel_size_m=100.0, precision=pr)  # warm-up: verifier loads, functions trace
    rows = {pr: {"precision": pr, "detect_seconds": [], "network_seconds": []} for pr in PRECISIONS}
    for r in range(args.repeats):
        for pr in PRECISIONS:
            t0 = time.perf_counter()
            network(pr)
            rows[pr]["network_seconds"].append(round(time.perf_counter() - t0, 3))
            t0 = time.perf_counter()
            det = detect(themis, pixel_size_m=100.0, precision=pr)
            rows[pr]["detect_seconds"].append(round(time.perf_counter() - t0, 2))
            if r == 0:
                rows[pr]["themis"] = _score(_per_image(det, len(themis)), themis_truth, args.d_min)
    if not args.no_ctx:
        for pr in PRECISIONS:
            det = detect(ctx_images, pixel_size_m=6.0, precision=pr)
            rows[pr]["ctx"] = _score(_per_image(det, len(ctx_images)), ctx_truth, args.d_min)
    for pr in PRECISIONS:
        row = rows[pr]
        row["detect_median_s"] = float(np.median(row["detect_seconds"]))
        row["network_median_s"] = float(np.median(row["network_seconds"]))
        row["network_mpx_per_s"] = round(x.shape[0] * x.shape[1] * x.shape[2] / 1e6 / row["network_median_s"], 2)
        ctx = f"  CTX F1 {row['ctx']['f1']:.3f} (P {row['ctx']['precision']:.3f} R {row['ctx']['recall']:.3f})" \
            if "ctx" in row else ""
        print(f"{pr}: THEMIS F1 {row['themis']['f1']:.3f} (P {row['themis']['precision']:.3f} R "
              f"{row['themis']['recall']:.3f}); detect {row['detect_median_s']:.2f} s, network "
              f"{row['network_median_s']:.2f} s ({row['network_mpx_per_s']} Mpx/s){ctx}", flush=True)
    a, b = rows["float32"], rows["bfloat16"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, no GPU, native bfloat16: {_cpu_has_bf16()}",
        "themis_chips": args.themis, "ctx_images": [] if args.no_ctx else args.ctx,
        "min_confidence": args.min_confidence, "d_min": args.d_min, "repeats": args.repeats,
        "map_difference": {"max": float(diff.max()), "p99_9": float(np.percentile(diff, 99.9)),
                           "median_of_chip_max": float(np.median(diff.reshape(len(diff), -1).max(axis=1))),
                           "flips_at_0.2": float(((maps["float32"] >= 0.2) != (maps["bfloat16"] >= 0.2)).mean())},
        "precisions": [a, b],
        "detect_speedup": round(a["detect_median_s"] / b["detect_median_s"], 3),
        "network_speedup": round(a["network_median_s"] / b["network_median_s"], 3),
        "rule": "benchmarks/splits/precision_rule.md",
    }
    print(f"bfloat16 speed-up: detect {report['detect_speedup']}x, network {report['network_speedup']}x")
    write_report(args.json, report)
    return report


if __name__ == "__main__":
    main()
