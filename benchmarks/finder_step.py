"""The verifier's candidates searched with radii spaced by different factors, side by side.

Run: ``python benchmarks/finder_step.py [--steps 1.1 1.15 1.2 1.25] [--json docs/results/finder_step.json]``

For each radius step (``detect(..., extract_options={"radius_step": s})``), :func:`marscraters.detect`
runs with the shipped models and verifiers on

* THEMIS Day IR chips ``--themis`` (default 440-499, validation) at 100 m/px;
* CTX MC11-E images ``--ctx`` (default G and H, validation) at 6 m/px, truth = the clustered boxes
  marked by at least ``--min-confidence`` of the six annotators.

Scores: DeepMoon rule, floor scoring at ``--d-min`` px, craters pooled.  Time: the THEMIS chips'
``detect``, the steps alternated over ``--repeats`` rounds (median; the model load excluded).  The
rule that decides from these numbers is ``benchmarks/splits/finder_step_rule.md``; this script only
reports.
"""

from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> dict:
    from marscraters.detect import detect

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_validation_args(p)
    p.add_argument("--steps", type=float, nargs="+", default=[1.1, 1.15, 1.2, 1.25])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fft-threads", action="store_true",
                   help="instead: detect on the chips with every FFT on all cores (as before 2026-12-07) and with "
                        "a chip's transforms on one thread (extract.SMALL_FFT_PX), alternated; the same craters")
    p.add_argument("--finder-threads", action="store_true",
                   help="instead: detect on the chips and the CTX images with the maps searched one after another "
                        "(extract.FINDER_THREADS = 1) and side by side on every core (the default), alternated; the "
                        "same craters")
    args = p.parse_args(argv)
    themis, themis_truth, ctx_images, ctx_truth = validation_sets(args)
    if args.fft_threads:
        return fft_threads(themis, args)
    if args.finder_threads:
        return finder_threads(themis, ctx_images, args)

    def run(images, metres, step):
        return detect(images, pixel_size_m=metres, extract_options={"radius_step": step})

    run(themis[:2], 100.0, args.steps[0])  # warm-up: the model and verifier load, the functions compile
    rows = {s: {"radius_step": s, "themis_seconds": []} for s in args.steps}
    for r in range(args.repeats):
        for s in args.steps:
            t0 = time.perf_counter()
            det = run(themis, 100.0, s)
            rows[s]["themis_seconds"].append(round(time.perf_counter() - t0, 2))
            if r == 0:
                rows[s]["themis"] = _score(_per_image(det, len(themis)), themis_truth, args.d_min)
    for s in args.steps:
        row = rows[s]
        row["themis_median_s"] = float(np.median(row["themis_seconds"]))
        t0 = time.perf_counter()
        det = run(ctx_images, 6.0, s)
        row["ctx_seconds"] = round(time.perf_counter() - t0, 1)
        row["ctx"] = _score(_per_image(det, len(ctx_images)), ctx_truth, args.d_min)
        print(f"step {s:g}: THEMIS F1 {row['themis']['f1']:.3f} (P {row['themis']['precision']:.3f} R "
              f"{row['themis']['recall']:.3f}; {row['themis_median_s']:.2f} s)  CTX F1 {row['ctx']['f1']:.3f} "
              f"(P {row['ctx']['precision']:.3f} R {row['ctx']['recall']:.3f}; {row['ctx_seconds']} s)", flush=True)
    base = rows[args.steps[0]]["themis_median_s"]
    for s in args.steps:
        rows[s]["speedup_vs_first"] = round(base / rows[s]["themis_median_s"], 3)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU, no GPU",
              "themis_chips": args.themis, "ctx_images": args.ctx, "min_confidence": args.min_confidence,
              "d_min": args.d_min, "repeats": args.repeats, "steps": list(rows.values()),
              "rule": "benchmarks/splits/finder_step_rule.md"}
    write_report(args.json, report)
    return report


def fft_threads(themis, args) -> dict:
    """``detect`` on the chips with the finder's FFTs on all cores and on one thread, alternated."""
    from marscraters import extract
    from marscraters.detect import detect

    settings = {"all cores": 0, "one thread per chip": extract.SMALL_FFT_PX}
    detect(themis[:2], pixel_size_m=100.0)  # warm-up
    seconds = {k: [] for k in settings}
    found = {}
    for _ in range(args.repeats):
        for name, small in settings.items():
            extract.SMALL_FFT_PX = small
            t0 = time.perf_counter()
            found[name] = detect(themis, pixel_size_m=100.0)
            seconds[name].append(round(time.perf_counter() - t0, 2))
    extract.SMALL_FFT_PX = settings["one thread per chip"]
    a, b = (found[k].reset_index(drop=True) for k in settings)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU, no GPU",
              "themis_chips": args.themis, "repeats": args.repeats,
              "seconds": seconds, "median_s": {k: float(np.median(v)) for k, v in seconds.items()},
              "same_craters": bool(a.equals(b))}
    report["speedup"] = round(report["median_s"]["all cores"] / report["median_s"]["one thread per chip"], 3)
    print(json.dumps(report))
    write_report(args.json, report)
    return report


def finder_threads(themis, ctx_images, args) -> dict:
    """``detect`` with the maps searched one after another and side by side, alternated."""
    from marscraters import extract
    from marscraters.detect import detect

    settings = {"one after another": 1, "side by side": None}
    sets = {"themis": (themis, 100.0), "ctx": (ctx_images, 6.0)}
    for images, metres in sets.values():
        detect(images[:2], pixel_size_m=metres)  # warm-up: both models and verifiers load
    seconds = {s: {k: [] for k in settings} for s in sets}
    found: dict = {s: {} for s in sets}
    for _ in range(args.repeats):
        for name, threads in settings.items():
            extract.FINDER_THREADS = threads
            for s, (images, metres) in sets.items():
                t0 = time.perf_counter()
                found[s][name] = detect(images, pixel_size_m=metres)
                seconds[s][name].append(round(time.perf_counter() - t0, 2))
    extract.FINDER_THREADS = None
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU, no GPU",
              "themis_chips": args.themis, "ctx_images": args.ctx, "repeats": args.repeats, "sets": {}}
    for s in sets:
        a, b = (found[s][k].reset_index(drop=True) for k in settings)
        med = {k: float(np.median(v)) for k, v in seconds[s].items()}
        report["sets"][s] = {"seconds": seconds[s], "median_s": med, "same_craters": bool(a.equals(b)),
                             "speedup": round(med["one after another"] / med["side by side"], 3)}
    print(json.dumps(report))
    write_report(args.json, report)
    return report


if __name__ == "__main__":
    main()
