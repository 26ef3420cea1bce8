"""The circle finder's two engines side by side: numpy on the host, Keras ops on the backend's device.

Run: ``python benchmarks/bench_finder_engine.py [--repeats 3] [--json docs/results/bench_finder_engine.json]``

On THEMIS Day IR chips ``--themis`` (default 440-499, validation) at 100 m/px, with the shipped model
and verifier:

* **finder**: the verifier's candidate search (``extract_craters`` at its ``candidates`` options) on
  the network's maps, per engine (``engine="numpy"`` / ``"keras"``, :mod:`marscraters.extract_ops`);
  the candidates each finds, and how many of them the other engine finds at the same place
  (centre and diameter within 0.5 px, score within 1e-4);
* **detect** end to end (``extract_options={"engine": ...}``) per engine: time and crater F1 (DeepMoon
  rule, floor scoring at ``--d-min`` px, pooled);
* **network**: the raw network alone (``predict_on_batch``, batches of 4, the chips padded to 512 px),
  for detect's throughput as a fraction of the network's.

The engines and the network alternate over ``--repeats`` rounds (median; model loads and compilation
excluded by a warm-up).  On a CPU the numpy engine is the faster one (``engine="auto"`` keeps it); the
Keras engine is for a GPU, where ``benchmarks/gpu/checks.sh`` runs this script.
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

ENGINES = ("numpy", "keras")


def _same(a: np.ndarray, b: np.ndarray) -> int:
    """How many circles of ``a`` have one in ``b`` at the same place, size and score."""
    if not len(a) or not len(b):
        return 0
    from scipy.spatial import cKDTree

    d, j = cKDTree(b[:, :3]).query(a[:, :3])
    return int(((d <= 0.5) & (np.abs(b[j, 3] - a[:, 3]) <= 1e-4)).sum())


def main(argv: list[str] | None = None) -> dict:
    import keras

    from marscraters.detect import detect
    from marscraters.extract import extract_craters
    from marscraters.model import DEFAULT_WEIGHTS, normalise_image, predict_image
    from marscraters.segment import _cached_model
    from marscraters.verify import resolve_verifier

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_validation_args(p)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    themis, themis_truth, _, _ = validation_sets(args)

    net = _cached_model(DEFAULT_WEIGHTS, "float32")
    x = np.stack([normalise_image(c, value_range=(0.0, 255.0)) for c in themis])[..., None].astype(np.float32)
    pad = (512 - x.shape[1]) // 2
    x = np.pad(x, ((0, 0), (pad, 512 - x.shape[1] - pad), (pad, 512 - x.shape[2] - pad), (0, 0)), mode="reflect")

    def network():
        return np.concatenate([np.asarray(net.predict_on_batch(x[i:i + 4]), np.float32) for i in range(0, len(x), 4)])

    network()
    maps = [predict_image(net, c, value_range=(0.0, 255.0)) for c in themis]
    options = {k: v for k, v in resolve_verifier(None, DEFAULT_WEIGHTS).candidates.items() if k != "min_score"}

    def finder(engine):
        return [extract_craters(m, target="outline", **options, engine=engine) for m in maps]

    found = {e: finder(e) for e in ENGINES}  # also the warm-up: the device's search compiles
    for e in ENGINES:
        detect(themis[:2], pixel_size_m=100.0, extract_options={"engine": e})
    rows = {e: {"engine": e, "finder_seconds": [], "detect_seconds": []} for e in ENGINES}
    network_seconds = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        network()
        network_seconds.append(round(time.perf_counter() - t0, 3))
        for e in ENGINES:
            t0 = time.perf_counter()
            finder(e)
            rows[e]["finder_seconds"].append(round(time.perf_counter() - t0, 3))
            t0 = time.perf_counter()
            det = detect(themis, pixel_size_m=100.0, extract_options={"engine": e})
            rows[e]["detect_seconds"].append(round(time.perf_counter() - t0, 3))
            if r == 0:
                rows[e]["themis"] = _score(_per_image(det, len(themis)), themis_truth, args.d_min)
    net_s = float(np.median(network_seconds))
    cols = ["x", "y", "diameter_px", "score"]
    for e, other in zip(ENGINES, ENGINES[::-1]):
        row = rows[e]
        row["finder_median_s"] = float(np.median(row["finder_seconds"]))
        row["detect_median_s"] = float(np.median(row["detect_seconds"]))
        row["detect_over_network_throughput"] = round(net_s / row["detect_median_s"], 3)
        row["candidates"] = int(sum(len(f) for f in found[e]))
        row["candidates_also_found_by_the_other"] = int(
            sum(_same(a[cols].to_numpy(), b[cols].to_numpy()) for a, b in zip(found[e], found[other])))
        print(f"{e}: finder {row['finder_median_s']:.2f} s ({row['candidates']} candidates, "
              f"{row['candidates_also_found_by_the_other']} also by {other}); detect {row['detect_median_s']:.2f} s "
              f"= {row['detect_over_network_throughput']}x the network's throughput; THEMIS F1 "
              f"{row['themis']['f1']:.3f} (P {row['themis']['precision']:.3f} R {row['themis']['recall']:.3f})",
              flush=True)
    devices = [str(d) for d in keras.distribution.list_devices()]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU; Keras {keras.backend.backend()} on {devices}",
        "themis_chips": args.themis, "d_min": args.d_min, "repeats": args.repeats,
        "network_seconds": network_seconds, "network_median_s": net_s,
        "engines": [rows[e] for e in ENGINES],
        "finder_speedup_keras": round(rows["numpy"]["finder_median_s"] / rows["keras"]["finder_median_s"], 3),
        "detect_speedup_keras": round(rows["numpy"]["detect_median_s"] / rows["keras"]["detect_median_s"], 3),
    }
    print(f"network {net_s:.2f} s; keras engine speed-up: finder {report['finder_speedup_keras']}x, "
          f"detect {report['detect_speedup_keras']}x")
    write_report(args.json, report)
    return report


if __name__ == "__main__":
    main()
