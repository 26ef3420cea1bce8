"""End to end against PyCDA 0.1.16, side by side: image in, verified crater catalog out.

Run: ``python benchmarks/bench_pycda.py [--chips 100] [--mosaic 4096] [--repeats 2] [--json out.json]``

PyCDA (PyPI ``pycda`` 0.1.16, a UNet detector, a circle extractor and a crater classifier) is
installed from PyPI into an environment of its own (``--env``, default ``runs/pycda/env``) the first
time: a virtual environment with ``pycda==0.1.16`` and what it imports (TensorFlow CPU, Keras,
scikit-image, pandas, matplotlib; ``setuptools<81`` for its ``pkg_resources``).  It runs there in a
worker process that loads its models once and then times each request; four shims let the 2019 code
run on today's libraries (``skimage.morphology.watershed`` moved to ``skimage.segmentation``,
``skimage.measure.label``'s ``neighbors=4`` is now ``connectivity=1``, Keras 3 loads its Keras 2
``.h5`` models with ``compile=False``, and ``np.float``-style aliases were removed).

The two alternate on the same inputs, the model loads and first compilations excluded for both
(one warm-up call each), on this machine's CPU.  PyCDA's ``CDA`` object stores every prediction and
returns the stored one when it is given an identical image again; the worker clears that store
before each image, so every round detects:

* **chips**: THEMIS Day IR chips 500-599 (416 px, 100 m/px): ``marscraters.detect`` on the list
  (the shipped model, pyramid and verifier, as a user runs it) against ``CDA().predict`` per chip
  (PyCDA's default pipeline: its ``tiny`` detector, ``fast_circle`` extractor and ``convolution``
  classifier; ``--pycda-detector unet`` for its larger UNet);
* **mosaic**: one synthetic THEMIS-like surface of ``--mosaic`` px at 100 m/px
  (``marscraters.synthetic_surface``): ``ds.craters.catalog()`` (segmentation, circle finder and
  verifier over the whole mosaic, seamless) against ``CDA().predict`` on the whole image (PyCDA tiles
  it itself).

A third arm, **network**, is the ceiling of any pipeline built on the shipped network: its forward
pass alone on the same pixels at their own scale, with nothing before or after it (the chips as one
stack, batches of 4, padded to 512 px; the mosaic cut into 512 px tiles, batches of 4), alternated
with the other two.  ``detect`` and ``catalog`` add the pyramid's coarser levels, the circle finder
and the verifier on top of it.

Reported: median seconds per round for each, throughput (Mpx/s) and the ratios.  The issue's target
is marscraters >= 10x PyCDA's throughput on both.  Crater counts are printed as a sanity check,
not as a quality comparison (PyCDA's quality on these chips is in ``docs/model_card.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))
PYCDA = "pycda==0.1.16"
PYCDA_DEPS = ["tensorflow-cpu>=2.16", "keras>=3", "h5py", "scikit-image", "pandas", "matplotlib", "pillow",
              "setuptools<81"]

# The worker run inside PyCDA's environment: shims, the models loaded once, then one request per line
# on stdin ({"path": npz, "key": name}); it answers with one JSON line of seconds and crater counts.
WORKER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
for name, alias in (("float", float), ("int", int), ("bool", bool), ("object", object)):
    if not hasattr(np, name):
        setattr(np, name, alias)
import skimage.measure, skimage.morphology, skimage.segmentation
skimage.morphology.watershed = skimage.segmentation.watershed
_label = skimage.measure.label
def _label_neighbors(image, *a, neighbors=None, **k):
    if neighbors is not None:
        k["connectivity"] = {4: 1, 8: 2}[neighbors]
    return _label(image, *a, **k)
skimage.measure.label = _label_neighbors
import keras.models
_load = keras.models.load_model
keras.models.load_model = lambda path, *a, **k: _load(path, *a, **{**k, "compile": False})
from pycda import CDA
cda = CDA(detector=sys.argv[1])
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    images = list(np.load(req["path"])[req["key"]])
    t0 = time.perf_counter()
    counts = []
    for im in images:
        # CDA keeps every past prediction and returns a stored one for an identical image: cleared,
        # so each image is detected (not looked up), and earlier images cost nothing later
        cda.predictions = []
        counts.append(len(cda.predict(im, verbose=False)))
    print(json.dumps({"seconds": time.perf_counter() - t0, "craters": int(sum(counts))}), flush=True)
'''


def pycda_env(env: Path) -> Path:
    """The Python of PyCDA's own virtual environment, created and filled from PyPI when missing."""
    python = env / "bin" / "python"
    done = env / ".pycda-installed"
    if done.exists():
        return python
    print(f"installing {PYCDA} into {env} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *PYCDA_DEPS], check=True)
    # its declared requirement on the 'tensorflow' and 'Keras' of 2019 would pull other wheels
    subprocess.run([*pip, "--no-deps", PYCDA], check=True)
    done.write_text(PYCDA + "\n")
    return python


class PyCDAWorker:
    """PyCDA in a process of its own environment: models loaded once, then timed requests."""

    def __init__(self, python: Path, detector: str) -> None:
        self.proc = subprocess.Popen([str(python), "-c", WORKER, detector], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        self._read()  # {"ready": true}: the models are loaded

    def _read(self) -> dict:
        for line in self.proc.stdout:  # skip anything PyCDA prints on its own
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"the PyCDA worker stopped (exit {self.proc.wait()})")

    def run(self, path: Path, key: str) -> dict:
        self.proc.stdin.write(json.dumps({"path": str(path), "key": key}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _mosaic(size: int, cache: Path):
    """A synthetic THEMIS-like surface of ``size`` px at 100 m/px, cached as .npy."""
    from marscraters.mosaic import mosaic_from_array

    deg = size / 592.747
    path = cache / f"synthetic_{size}.npy"
    if not path.exists():
        from marscraters.synthetic import synthetic_surface

        surface = synthetic_surface((30.0, -deg, 30.0 + deg, 0.0), 592.747, seed=0, n_per_km2_above_1km=2e-2,
                                    dmax_km=40.0, progress=True)
        np.save(path, surface.mosaic.ir.values.astype(np.float32))
    image = np.load(path)
    image = np.nan_to_num(image, nan=float(np.nanmean(image)))
    return image, mosaic_from_array(image, (30.0, -deg, 30.0 + deg, 0.0), name=f"synthetic {size} px")


def _as_tiles(images: np.ndarray, tile: int) -> list[np.ndarray]:
    """Images as they are when no side exceeds ``tile``; larger ones cut into ``tile``-px tiles
    (the last row and column of tiles shorter), as the network's batches see a mosaic."""
    out = []
    for im in images:
        if max(im.shape) <= tile:
            out.append(im)
            continue
        out += [im[y:y + tile, x:x + tile] for y in range(0, im.shape[0], tile) for x in range(0, im.shape[1], tile)]
    shapes = {o.shape for o in out}
    if len(shapes) > 1:  # a stack needs one shape: pad the short edge tiles with their mean
        out = [np.pad(o, ((0, tile - o.shape[0]), (0, tile - o.shape[1])), constant_values=float(o.mean()))
               for o in out]
    return out


def main(argv: list[str] | None = None) -> dict:
    import marscraters as mc
    from marscraters.chips import read_chips

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", type=int, default=100, help="THEMIS chips 500.. (default 100)")
    p.add_argument("--mosaic", type=int, default=4096, help="side of the synthetic mosaic, px (0: none)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--env", default=str(REPO / "runs" / "pycda" / "env"))
    p.add_argument("--pycda-detector", default="tiny", choices=["tiny", "unet"])
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "auto"],
                   help="marscraters' network arithmetic (detect's and segment's precision=)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    cache = Path(args.env).parent
    cache.mkdir(parents=True, exist_ok=True)
    worker = PyCDAWorker(pycda_env(Path(args.env)), args.pycda_detector)

    chips = np.stack(read_chips(DATA / "themis-dayir-crops", indices=range(500, 500 + args.chips)).images)
    # PyCDA scales 8-bit images itself (uint8 / 255); float input would reach its network unscaled
    inputs = {"chips": np.clip(np.rint(chips), 0, 255).astype(np.uint8)}
    mosaic = None
    if args.mosaic:
        image, mosaic = _mosaic(args.mosaic, cache)
        inputs["mosaic"] = np.clip(np.rint(image), 0, 255).astype(np.uint8)[None]
    npz = cache / "inputs.npz"
    np.savez(npz, **inputs)

    from marscraters.model import load_model, normalise_image, resolve_precision, with_precision
    from marscraters.training import predict_stack

    network = with_precision(load_model(None), resolve_precision(args.precision))
    # what the network sees, normalised once outside the timing (detect's fixed 8-bit scale)
    raw_inputs = {key: np.stack([normalise_image(im, value_range=(0, 255)) for im in _as_tiles(arr, 512)])
                  for key, arr in inputs.items()}

    def network_alone(key: str) -> float:
        t0 = time.perf_counter()
        predict_stack(network, raw_inputs[key], batch_size=4)
        return time.perf_counter() - t0

    def ours(key: str, n: int | None = None) -> tuple[float, int]:
        t0 = time.perf_counter()
        if key == "chips":
            found = len(mc.detect(list(chips[:n] if n else chips), pixel_size_m=100.0, progress=False,
                                  precision=args.precision))
        else:
            found = len(mosaic.craters.catalog(progress=False, precision=args.precision))
        return time.perf_counter() - t0, found

    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU, no GPU",
              "pycda": f"{PYCDA}, CDA(detector={args.pycda_detector!r}) defaults otherwise", "repeats": args.repeats,
              "precision": args.precision, "sets": []}
    try:
        for key in inputs:
            # warm-up of both: the first batch shapes compiled
            np.savez(cache / "warm.npz", **{key: inputs[key][:2]})
            worker.run(cache / "warm.npz", key)
            ours(key, 2) if key == "chips" else ours(key)
            network_alone(key)
            times: dict[str, list[float]] = {"marscraters": [], "pycda": [], "network": []}
            counts = {}
            for _ in range(args.repeats):
                got = worker.run(npz, key)
                times["pycda"].append(got["seconds"])
                counts["pycda"] = got["craters"]
                seconds, counts["marscraters"] = ours(key)
                times["marscraters"].append(seconds)
                times["network"].append(network_alone(key))
            mpx = float(np.prod(inputs[key].shape)) / 1e6
            row = {"set": key, "images": int(inputs[key].shape[0]), "megapixels": round(mpx, 2), "craters": counts}
            for who, ts in times.items():
                row[f"{who}_s"] = round(float(np.median(ts)), 2)
                row[f"{who}_mpx_per_s"] = round(mpx / float(np.median(ts)), 3)
            row["speedup"] = round(row["pycda_s"] / row["marscraters_s"], 2)
            # the most any pipeline on this network could gain over PyCDA here: the network alone
            row["network_vs_pycda"] = round(row["pycda_s"] / row["network_s"], 2)
            row["all_s"] = times
            report["sets"].append(row)
            print(f"{key}: marscraters {row['marscraters_s']} s, PyCDA {row['pycda_s']} s: {row['speedup']}x; "
                  f"the network alone {row['network_s']} s ({row['network_vs_pycda']}x PyCDA) ({counts})", flush=True)
    finally:
        worker.close()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
