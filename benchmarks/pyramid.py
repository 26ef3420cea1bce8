"""The image pyramid's settings side by side, on THEMIS and CTX validation images.

Run: ``python benchmarks/pyramid.py [--tops 48 64 96 128] [--json docs/results/pyramid_validation.json]``

For ``levels=1`` and for the pyramid at each ``LEVEL_TOP_PX`` in ``--tops``, :func:`marscraters.detect`
runs (the shipped model and verifier) on

* THEMIS Day IR chips ``--themis`` (default 440-499, validation) at 100 m/px;
* CTX MC11-E images ``--ctx`` (default G and H, validation) at 6 m/px, truth = the clustered boxes
  marked by at least ``--min-confidence`` of the six annotators (every box: reported beside);
* for the record, the CTX images as the single-scale detector saw them before the pyramid: shrunk
  to the network's 100 m/px.

Scores: DeepMoon rule, floor scoring at ``--d-min`` px (``evaluate(..., d_min=16)``), craters
pooled; time per setting (the model load excluded: a warm-up call runs first).  The rule that
chooses the default from these numbers is ``benchmarks/splits/pyramid_rule.md``; this script
only reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))


def _score(preds, truths, d_min):
    from marscraters.evaluate import evaluate, side_by_side

    r = evaluate(side_by_side(preds), side_by_side(truths), rule="deepmoon", d_min=d_min)
    return {"precision": r.precision, "recall": r.recall, "f1": r.f1, "tp": r.n_truth_matched, "n_truth": r.n_truth,
            "n_pred": r.n_pred}


def add_validation_args(p):
    """The flags of the validation images the detect benchmarks share."""
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--themis", default="440:500")
    p.add_argument("--ctx", nargs="+", default=["G", "H"])
    p.add_argument("--min-confidence", type=int, default=3)
    p.add_argument("--d-min", type=float, default=16.0)
    p.add_argument("--json")


def validation_sets(args):
    """THEMIS chips ``--themis`` and CTX images ``--ctx`` with their truths (CTX: boxes of at least
    ``--min-confidence`` of six), as ``(chips, chip truths, CTX images, CTX truths)``."""
    from marscraters.chips import chip_craters, read_chips, read_voc_labels
    from marscraters.detect import read_grey_image

    data = Path(args.data)
    lo, hi = (int(v) for v in args.themis.split(":"))
    chips = read_chips(data / "themis-dayir-crops", indices=range(lo, hi))
    ctx_dir = data / "ctx-mc11e"
    return (list(chips.images), [chip_craters(chips, i) for i in range(len(chips))],
            [read_grey_image(ctx_dir / "images" / f"MC11E-{k}.png") for k in args.ctx],
            [read_voc_labels(ctx_dir / "annotations" / "clustered" / f"MC11E-{k}.xml",
                             min_confidence=args.min_confidence) for k in args.ctx])


def write_report(path, report):
    """Write a benchmark's report as JSON (its folder made), when a path is given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=1, default=float))


def _per_image(det, n):
    cols = ["x", "y", "diameter_px", "score"]
    return [det[det["image"] == i][cols].reset_index(drop=True) for i in range(n)]


def main(argv: list[str] | None = None) -> dict:
    from marscraters import pyramid
    from marscraters.chips import chip_craters, read_chips, read_voc_labels
    from marscraters.detect import detect, read_grey_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--themis", default="440:500")
    p.add_argument("--ctx", nargs="+", default=["G", "H"])
    p.add_argument("--tops", type=float, nargs="*", default=[48, 64, 96, 128],
                   help="pyramid tops to compare (none: the shipped LEVEL_TOP_PX only)")
    p.add_argument("--model", default=None, help="segmentation model file (default: the shipped model)")
    p.add_argument("--verify", default=None, help="a verifier file, or 'none' (default: the one the model names)")
    p.add_argument("--no-single", action="store_true", help="leave out levels=1")
    p.add_argument("--no-before", action="store_true", help="leave out the CTX images shrunk to 100 m/px")
    p.add_argument("--min-confidence", type=int, default=3)
    p.add_argument("--d-min", type=float, default=16.0)
    p.add_argument("--json")
    p.add_argument("--mosaics", action="store_true",
                   help="the same images as mosaics through catalog_from_mosaic, its levels by plain means and "
                        "anti-aliased halvings (pyramid_rule.md, last addendum)")
    args = p.parse_args(argv)
    data = Path(args.data)
    if args.mosaics:
        return mosaics(args, data)

    lo, hi = (int(v) for v in args.themis.split(":"))
    chips = read_chips(data / "themis-dayir-crops", indices=range(lo, hi))
    themis_truth = [chip_craters(chips, i) for i in range(len(chips))]
    ctx_dir = data / "ctx-mc11e"
    ctx_images = [read_grey_image(ctx_dir / "images" / f"MC11E-{k}.png") for k in args.ctx]
    labels = [read_voc_labels(ctx_dir / "annotations" / "clustered" / f"MC11E-{k}.xml") for k in args.ctx]
    ctx_truth = [t[t["confidence"] >= args.min_confidence] for t in labels]

    from marscraters.detect import model_info

    own = model_info(args.model).get("pyramid_top_px")
    if own is not None:  # a model's own band wins over LEVEL_TOP_PX: a sweep would score it every time
        print(f"the model has its own pyramid band ({own:g} px): every pyramid setting below runs with it", flush=True)
    verify = False if args.verify == "none" else args.verify
    run = {"model": args.model, "verify": verify}
    detect(chips.images[:1], pixel_size_m=100, **run)  # warm-up: the model and verifier load, the functions compile
    tops = args.tops or [pyramid.LEVEL_TOP_PX]
    settings = ([] if args.no_single else [("levels=1", 1, pyramid.LEVEL_TOP_PX)]) + [
        (f"pyramid top {t:g}", "auto", t) for t in tops]
    default_top = pyramid.LEVEL_TOP_PX
    rows = []
    for name, levels, top in settings:
        pyramid.LEVEL_TOP_PX = top
        row = {"setting": name, "levels": levels, "top_px": top}
        t0 = time.perf_counter()
        det = detect(list(chips.images), pixel_size_m=100, levels=levels, **run)
        row["themis_seconds"] = round(time.perf_counter() - t0, 1)
        row["themis"] = _score(_per_image(det, len(chips)), themis_truth, args.d_min)
        t0 = time.perf_counter()
        det = detect(ctx_images, pixel_size_m=6.0, levels=levels, **run)
        row["ctx_seconds"] = round(time.perf_counter() - t0, 1)
        preds = _per_image(det, len(ctx_images))
        row["ctx"] = _score(preds, ctx_truth, args.d_min)
        row["ctx_every_box"] = _score(preds, labels, args.d_min)
        row["ctx_by_level"] = det.groupby("level").size().to_dict()
        row["mean_f1"] = (row["themis"]["f1"] + row["ctx"]["f1"]) / 2
        rows.append(row)
        print(f"{name:>16}: THEMIS F1 {row['themis']['f1']:.3f} ({row['themis_seconds']} s)  CTX F1 "
              f"{row['ctx']['f1']:.3f} P {row['ctx']['precision']:.3f} R {row['ctx']['recall']:.3f} "
              f"({row['ctx_seconds']} s)  mean {row['mean_f1']:.3f}", flush=True)
    pyramid.LEVEL_TOP_PX = default_top

    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU",
              "model": args.model or "shipped", "verify": args.verify or "the model's",
              "themis_chips": args.themis, "ctx_images": args.ctx, "min_confidence": args.min_confidence,
              "d_min": args.d_min, "settings": rows, "rule": "benchmarks/splits/pyramid_rule.md"}
    if not args.no_before:
        report["ctx_shrunk_to_native"] = _before(ctx_images, ctx_truth, run, args.d_min)
    write_report(args.json, report)
    return report


def _as_mosaic(image, metres):
    from marscraters.mosaic import mosaic_from_array

    deg = metres / (2 * np.pi * 3396190.0 / 360)  # per pixel, on the Mars sphere; placed at 10 E, 0 N
    return mosaic_from_array(image, (10.0, -image.shape[0] * deg, 10.0 + image.shape[1] * deg, 0.0))


def mosaics(args, data: Path) -> dict:
    """THEMIS chips and CTX images as georeferenced mosaics, catalogued with each level resampling."""
    from marscraters.assemble import catalog_from_mosaic
    from marscraters.chips import chip_craters, read_chips, read_voc_labels
    from marscraters.detect import read_grey_image

    lo, hi = (int(v) for v in args.themis.split(":"))
    chips = read_chips(data / "themis-dayir-crops", indices=range(lo, hi))
    ctx_dir = data / "ctx-mc11e"
    sets = {
        "themis": ([_as_mosaic(im, 100.0) for im in chips.images], [chip_craters(chips, i) for i in range(len(chips))]),
        "ctx": ([_as_mosaic(read_grey_image(ctx_dir / "images" / f"MC11E-{k}.png"), 6.0) for k in args.ctx],
                [read_voc_labels(ctx_dir / "annotations" / "clustered" / f"MC11E-{k}.xml",
                                 min_confidence=args.min_confidence) for k in args.ctx]),
    }
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU",
              "what": "catalog_from_mosaic, default models, levels by plain means and by anti-aliased halvings",
              "themis_chips": args.themis, "ctx_images": args.ctx, "min_confidence": args.min_confidence,
              "d_min": args.d_min, "rule": "benchmarks/splits/pyramid_rule.md", "settings": []}
    cols = ["x", "y", "diameter_px", "score"]
    for resampling in ("mean", "antialias"):
        row = {"resampling": resampling}
        for name, (dss, truths) in sets.items():
            t0 = time.perf_counter()
            preds = [catalog_from_mosaic(ds, resampling=resampling, progress=False)[cols] for ds in dss]
            row[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
            row[name] = _score(preds, truths, args.d_min)
        report["settings"].append(row)
        print(f"{resampling:>9}: THEMIS F1 {row['themis']['f1']:.3f} ({row['themis_seconds']} s)  CTX F1 "
              f"{row['ctx']['f1']:.3f} P {row['ctx']['precision']:.3f} R {row['ctx']['recall']:.3f} "
              f"({row['ctx_seconds']} s)", flush=True)
    write_report(args.json, report)
    return report


def _before(ctx_images, ctx_truth, run, d_min):
    """The CTX images as the single-scale detector saw them before the pyramid: shrunk to 100 m/px."""
    from skimage.transform import rescale

    from marscraters.detect import detect

    s = 6.0 / 100.0
    t0 = time.perf_counter()
    small = [rescale(im, s, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32) for im in ctx_images]
    det = detect(small, pixel_size_m=100, levels=1, **run)
    det = det.assign(x=(det["x"] + 0.5) / s - 0.5, y=(det["y"] + 0.5) / s - 0.5, diameter_px=det["diameter_px"] / s)
    before = {"ctx_seconds": round(time.perf_counter() - t0, 1),
              "ctx": _score(_per_image(det, len(ctx_images)), ctx_truth, d_min)}
    print(f"shrunk to 100 m/px: CTX F1 {before['ctx']['f1']:.3f}", flush=True)
    return before


if __name__ == "__main__":
    main()
