"""How the shipped detector does on Mars imagery from another camera: an HRSC tile with hand labels.

Run: ``python benchmarks/evaluate_other_camera.py [--pycda pycda-0.1.16.tar.gz] [--json out.json]``

The image is PyCDA's hold-out tile (``pycda/sample_imgs/holdout_tile.pgm`` in the ``pycda``
0.1.16 source distribution on PyPI, MIT licence): 1700 x 1700 px of Nanedi Valles from the Mars
Express High Resolution Stereo Camera (HRSC, visible light) at 12.5 m/px, with 409 hand-labelled
craters of 4-79 px (50 m - 1 km; ``holdout_tile_labels.csv``: ``long`` = column, ``lat`` = row,
``diameter``, all in pixels).  The shipped model was trained on THEMIS *thermal infrared* at
100 m/px, on craters of ~1-40 km: a different camera, wavelength, resolution and crater size.

Without ``--pycda`` the sdist is fetched from PyPI's simple index (checked against its published
SHA-256) into ``--cache``.  The tile is given to :func:`marscraters.detect` with
several pixel sizes (``--pixel-sizes``):

* 12.5 (the truth): ``detect`` shrinks the image 8x to the model's 100 m/px, where these craters
  are 0.5-10 px, below what the model sees;
* 100: the image is used at its own pixels, so the craters are 4-79 px, in the range the model
  was trained on (crater shapes are nearly scale-free at these sizes);
* 200: the image is enlarged 2x first (craters 8-158 px).

Detections are mapped back to the tile's pixels and scored against the labels (DeepMoon, IoU and
PyCDA rules, recall on craters >= ``--d-min`` px = 200 m, precision on detections >= 0.8 d_min).
Nothing is tuned here: it only reports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SDIST = "pycda-0.1.16.tar.gz"
SDIST_SHA256 = "11cc0532db8b7eddcd88db8ee95ef6f7473a9f0136aa75d7c77ba63771fb8c5d"
TILE_PIXEL_M = 12.5
PYPI_SIMPLE = "https://pypi.org/simple/"


def fetch_sdist(cache: Path, *, index_url: str = PYPI_SIMPLE, sha256: str = SDIST_SHA256) -> Path:
    """The pycda 0.1.16 sdist, downloaded from a PEP 503 package index (PyPI's by default) when not
    cached, and checked against ``sha256`` (PyPI's published hash)."""
    import re
    import urllib.request
    from urllib.parse import urljoin

    path = cache / SDIST
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        page_url = urljoin(index_url.rstrip("/") + "/", "pycda/")
        with urllib.request.urlopen(page_url, timeout=60) as response:
            page = response.read().decode("utf-8", "replace")
        links = [h for h in re.findall(r'href="([^"]+)"', page) if h.split("#")[0].endswith("/" + SDIST)
                 or h.split("#")[0] == SDIST]
        if not links:
            raise SystemExit(f"{page_url} lists no {SDIST}; pass --pycda with a copy of it")
        # written to a temporary file in the cache, renamed only once whole and checked; removed
        # on any failure (HTTP error, timeout, interruption, wrong hash)
        with tempfile.NamedTemporaryFile(dir=cache, suffix=".part", delete=False) as tmp:
            pass
        try:
            with open(tmp.name, "wb") as out, \
                    urllib.request.urlopen(urljoin(page_url, links[0].split("#")[0]), timeout=300) as response:
                shutil.copyfileobj(response, out)
            digest = hashlib.sha256(Path(tmp.name).read_bytes()).hexdigest()
            if digest != sha256:
                raise SystemExit(f"the downloaded {SDIST} has SHA-256 {digest}, not the published {sha256}")
            os.chmod(tmp.name, 0o644)  # a temporary file is private; the cached copy need not be
            os.replace(tmp.name, path)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{path} has SHA-256 {digest}, not the published {sha256}; delete it and run again")
    return path


def read_tile(sdist: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """The hold-out tile (uint8, 1700 x 1700) and its labels as x, y, diameter_px."""
    from io import BytesIO

    from PIL import Image

    with tarfile.open(sdist) as tar:
        base = "pycda-0.1.16/pycda/sample_imgs/"
        image = np.asarray(Image.open(BytesIO(tar.extractfile(base + "holdout_tile.pgm").read())))
        labels = pd.read_csv(tar.extractfile(base + "holdout_tile_labels.csv"))
    truth = pd.DataFrame({"x": labels["long"], "y": labels["lat"], "diameter_px": labels["diameter"]})
    return image, truth


def _figure(image: np.ndarray, truth: pd.DataFrame, found: dict, d_min: float, path: Path,
            names: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    fig, axes = plt.subplots(1, len(found), figsize=(6 * len(found), 6.4), squeeze=False)
    for ax, (pixel_size, det) in zip(axes[0], found.items()):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        for t in truth[truth["diameter_px"] >= d_min].itertuples():
            ax.add_patch(Circle((t.x, t.y), t.diameter_px / 2, fill=False, ec="cyan", lw=0.6))
        for t in det.itertuples():
            ax.add_patch(Circle((t.x, t.y), t.diameter_px / 2, fill=False, ec="red", lw=1.0))
        model = f"{names[pixel_size]}, " if names else ""
        ax.set_title(f"{model}told {pixel_size:g} m/px:\n{len(det)} detections (red), labels >= {d_min:g} px (cyan)",
                     fontsize=10)
        ax.set_axis_off()
    fig.suptitle("marscraters detect on PyCDA's HRSC hold-out tile (12.5 m/px)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    from marscraters.detect import detect
    from marscraters.evaluate import evaluate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pycda", help=f"path of {SDIST} (default: download it from PyPI)")
    p.add_argument("--cache", default=str(REPO / "runs" / "other-camera"))
    p.add_argument("--pixel-sizes", type=float, nargs="+", default=[12.5, 100.0, 200.0],
                   help="pixel sizes (m) to tell detect(); 12.5 is the truth")
    p.add_argument("--d-min", type=float, default=16.0)
    p.add_argument("--model", help="segmentation model file (default: the one detect chooses)")
    p.add_argument("--no-verify", action="store_true",
                   help="one-stage detections (the shipped verifier off)")
    p.add_argument("--stretch", action="store_true",
                   help="percentile grey stretch (value_range='auto') instead of reading the tile as 8-bit")
    p.add_argument("--json")
    p.add_argument("--save-dir", help="write each run's detections here as CSV")
    p.add_argument("--figure", help="PNG: the tile with the labels and each run's detections")
    args = p.parse_args(argv)
    image, truth = read_tile(Path(args.pycda) if args.pycda else fetch_sdist(Path(args.cache)))
    n_counted = int((truth["diameter_px"] >= args.d_min).sum())
    print(f"HRSC tile {image.shape}, {len(truth)} labelled craters, {n_counted} >= {args.d_min:g} px")
    rows, found = [], {}
    for pixel_size in args.pixel_sizes:
        t0 = time.perf_counter()
        det = detect(image, pixel_size_m=pixel_size, verify=False if args.no_verify else None,
                     value_range="auto" if args.stretch else None, model=args.model)
        seconds = time.perf_counter() - t0
        # detect() reports pixels of the image it was given, whatever it resampled internally
        row = {"pixel_size_m": pixel_size, "verify": not args.no_verify, "stretch": args.stretch,
               "seconds": round(seconds, 1), "detections": len(det)}
        for rule in ("deepmoon", "iou", "pycda"):
            r = evaluate(det, truth, rule=rule, d_min=args.d_min)
            row[rule] = {"precision": r.precision, "recall": r.recall, "f1": r.f1}
            if rule == "deepmoon":
                row["by_diameter"] = r.by_diameter[["d_min", "d_max", "n_truth", "recall", "n_pred", "precision"]] \
                    .to_dict(orient="records")
        rows.append(row)
        found[pixel_size] = det
        if args.save_dir:
            Path(args.save_dir).mkdir(parents=True, exist_ok=True)
            det.to_csv(Path(args.save_dir) / f"detections_{pixel_size:g}m.csv", index=False)
        print(f"told {pixel_size:g} m/px (truth {TILE_PIXEL_M:g}): {len(det)} detections, {seconds:.1f} s")
    print("\n| pixel size given | DeepMoon P | R | **F1** | IoU F1 | PyCDA F1 |\n|---|---|---|---|---|---|")
    for row in rows:
        d = row["deepmoon"]
        print(f"| {row['pixel_size_m']:g} m | {d['precision']:.3f} | {d['recall']:.3f} | **{d['f1']:.3f}** | "
              f"{row['iou']['f1']:.3f} | {row['pycda']['f1']:.3f} |")
    if args.figure:
        from marscraters.detect import model_info
        from marscraters.model import default_model_for

        names = {ps: model_info(args.model or default_model_for(ps))["name"] for ps in found}
        _figure(image, truth, found, args.d_min, Path(args.figure), names)
    if args.json:
        Path(args.json).write_text(json.dumps({"tile": "pycda 0.1.16 holdout_tile.pgm (HRSC, 12.5 m/px)",
                                               "d_min": args.d_min, "n_truth_counted": n_counted,
                                               "results": rows}, indent=2, default=float))
    return rows


if __name__ == "__main__":
    main()
