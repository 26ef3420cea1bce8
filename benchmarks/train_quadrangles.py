"""Fine-tune the segmentation network on all real data, by the leave-quadrangles-out protocol.

Run ``k`` (A, B, C or D of ``benchmarks/splits/quadrangles.json``) trains on chips 0-439 plus the
quadrangle crops of the two folds that are neither ``k`` nor its validation fold, and scores the
validation fold every epoch (crater F1, DeepMoon rule, 16 px floor), keeping the best epoch.  Its
maps of folds ``k`` and ``validation_of[k]`` are then out of sample, for the verifier
(``quadrangles.py prepare --model RUN/model.keras --crops-only`` and ``cv --run-models``).  Run
``all`` trains on chips 0-439 and every crop, validated on chips 440-499: the candidate for shipping.

Usage::

    python benchmarks/train_quadrangles.py --run A --out runs/quadrangles/net_A [--epochs 20]
    KERAS_BACKEND=jax python benchmarks/train_quadrangles.py --run all --out runs/quadrangles/net_all

Resumable: run the same command again to continue from the last epoch.  Starts from the shipped
model (``--init``) at a low learning rate, with flips, turns, zoom and contrast augmentation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quadrangles import DATA, fold_of, read_robbins, read_split  # noqa: E402


def _join(a, b):
    from marscraters.training import TrainingSet

    shifted = b.craters.assign(image=b.craters["image"] + len(a))
    return TrainingSet(np.concatenate([a.images, b.images]), pd.concat([a.craters, shifted], ignore_index=True),
                       a.names + b.names)


REGISTRATION = Path(__file__).resolve().parents[1] / "docs" / "results" / "quadrangle_registration.json"


def registration(cache: Path, kept: str = "cv_retrain_1_12_0.pkl", out: Path = REGISTRATION) -> dict:
    """Per quadrangle, how far the Robbins craters sit from the shipped detector's craters (pixels).

    The detections are the leave-quadrangles-out runs' on their test folds (``quadrangles.py cv``,
    kept in ``cache``): each crop's from a verifier that never saw its quadrangle.  Written to
    ``out`` for the record.
    """
    from quadrangles import Cache, read_split

    from marscraters.evaluate import registration_offset, side_by_side

    crops = Cache(cache, "crops")
    index = pd.read_pickle(cache / "crops_index.pkl").set_index("file")
    runs = pd.read_pickle(cache / kept)
    split = read_split()
    quad = index.loc[crops.names, "quadrangle"].to_numpy()
    preds: dict[int, pd.DataFrame] = {}
    for r in runs:
        for i, p in zip(np.flatnonzero(np.isin(quad, split["folds"][r["run"]])), r["preds"]["test"]):
            preds[int(i)] = p
    table = {}
    for q in sorted(set(quad)):
        mine = [i for i in np.flatnonzero(quad == q)]
        off = registration_offset(side_by_side([preds[i][["x", "y", "diameter_px"]] for i in mine]),
                                  side_by_side([crops.truths[i][["x", "y", "diameter_px"]] for i in mine]), d_min=16)
        table[q] = {k: round(float(v), 3) for k, v in off.items()}
    out.write_text(json.dumps({"what": "median detection minus Robbins position, pixels (east, south positive), "
                                       "craters >= 16 px, v11's leave-quadrangles-out test-fold detections",
                               "quadrangles": table}, indent=1))
    return table


def crops_set(quadrangles: list[str], catalog, offsets: dict | None = None):
    """The crops of these quadrangles, labelled with ``catalog``; with ``offsets``
    (:func:`registration`) each quadrangle's craters are moved onto its image."""
    from marscraters.chips import crop_mosaic, read_crop_index
    from marscraters.training import mosaics_training_set

    folder = DATA / "themis-quadrangle-crops"
    index = read_crop_index(folder / "index.csv").sort_values("file")
    rows = index[index["quadrangle"].isin(quadrangles)]
    out = mosaics_training_set([crop_mosaic(folder / "images" / f, index) for f in rows["file"]], catalog)
    if offsets:
        q = rows["quadrangle"].to_numpy()[out.craters["image"].to_numpy()]
        dx = np.array([offsets[v]["dx"] for v in q])
        dy = np.array([offsets[v]["dy"] for v in q])
        out.craters = out.craters.assign(x=out.craters["x"] + np.nan_to_num(dx), y=out.craters["y"] + np.nan_to_num(dy))
    return out


def add_fine_tune_flags(p: argparse.ArgumentParser, *, epochs: int) -> None:
    """The flags of a fine-tuning run from the shipped network (shared with train_cameras.py)."""
    p.add_argument("--init", default=None, help="model to start from (default: the shipped model)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--contrast", type=float, default=0.3)
    p.add_argument("--scale", nargs=2, type=float, default=[0.7, 1.4])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)


def fine_tune_start(args: argparse.Namespace) -> tuple[Any, Any, dict]:
    """The network to start from (None when ``args.out`` holds a run to resume: train() goes on
    with its own), the run's TrainConfig, and the starting model's info."""
    from marscraters.detect import model_info
    from marscraters.model import describe_model, load_model
    from marscraters.training import TrainConfig, can_resume

    info = model_info(args.init)
    if can_resume(args.out):
        model, arch = None, json.loads((Path(args.out) / "config.json").read_text())
    else:
        model = load_model(args.init)
        arch = describe_model(model)
    config = TrainConfig(
        kind=info["kind"], kernel_size=int(arch["kernel_size"]), filter_multiple=float(arch["filter_multiple"]),
        epochs=args.epochs, batch_size=args.batch_size, crop=args.crop, learning_rate=args.learning_rate,
        scale=tuple(args.scale), contrast=args.contrast, seed=args.seed, workers=args.workers,
        extract_options=dict(info["extract"]),
    )
    return model, config, info


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, choices=["A", "B", "C", "D", "all"])
    p.add_argument("--out", required=True)
    add_fine_tune_flags(p, epochs=20)
    p.add_argument("--register", action="store_true",
                   help="move each training quadrangle's Robbins craters onto its image first (docs/results/"
                        "quadrangle_registration.json, measured if missing); the validation labels stay as they are")
    args = p.parse_args(argv)

    from marscraters.chips import read_chips
    from marscraters.detect import model_info
    from marscraters.training import chips_training_set, train

    split = read_split()
    catalog = read_robbins()
    offsets = None
    if args.register:
        offsets = (json.loads(REGISTRATION.read_text())["quadrangles"] if REGISTRATION.exists() else
                   registration(Path(__file__).resolve().parents[1] / "runs" / "quadrangles" / model_info(None)["name"]))
    chips = read_chips(DATA / "themis-dayir-crops", indices=range(0, 500))
    train_set = chips_training_set(chips, range(0, 440))
    if args.run == "all":
        train_set = _join(train_set, crops_set(sorted(fold_of(split)), catalog, offsets))
        val_set, val_name = chips_training_set(chips, range(440, 500)), "chips 440-499"
    else:
        v = split["validation_of"][args.run]
        train_folds = [f for f in split["folds"] if f not in (args.run, v)]
        train_set = _join(train_set, crops_set([q for f in train_folds for q in split["folds"][f]], catalog, offsets))
        val_set, val_name = crops_set(split["folds"][v], catalog), f"fold {v}"
    model, config, info = fine_tune_start(args)
    print(f"run {args.run}: {len(train_set)} training images ({len(train_set.craters)} craters), validation "
          f"{val_name} ({len(val_set)} images)", flush=True)
    result = train(train_set, val_set, args.out, config, model=model, resume=True,
                   metadata={"data": {"run": args.run, "validation": val_name, "split": "quadrangles.json",
                                      "init": str(args.init or info.get("name"))}})
    best = max(result["history"], key=lambda r: r.get("val_crater_f1") or -1)
    print(json.dumps({"out": args.out, "best_epoch": best}, default=str))
    return result


if __name__ == "__main__":
    main()
