"""The detector on ground it has never seen: leave-quadrangles-out scores on real THEMIS Day IR crops.

The 724 crops of ``shared/data/themis-quadrangle-crops`` come from 11 Mars Chart quadrangles that
hold none of the 600 training chips.  Each crop becomes a georeferenced Mosaic through the
package (:func:`marscraters.chips.crop_mosaic`, its bounds from ``index.csv``), and its labels are
the Robbins & Hynek (2012) craters placed on its grid by :func:`marscraters.targets.catalog_pixels`,
the mapping the lazy target layers draw with.

The folds and the roles of each run are data: ``benchmarks/splits/quadrangles.json``.  Run ``k``
tests fold ``k``, chooses everything (variant, threshold) on fold ``validation_of[k]``, and trains
on the other two folds.  Scores: DeepMoon rule with floor scoring at 16 px first (as
``evaluate(..., d_min=16)``), the IoU and PyCDA rules beside it; per quadrangle, fold and diameter
bin, with 95 % intervals from resampling crops.

Stages (each caches under ``--runs``, default ``runs/quadrangles``)::

    python benchmarks/quadrangles.py prepare [--model PATH]   # maps, candidates and their labels
    python benchmarks/quadrangles.py score [--verifier PATH|none] [--threshold T] --json out.json
    python benchmarks/quadrangles.py cv --variants shipped rethreshold retrain ...   # validation only
    python benchmarks/quadrangles.py cv --variants retrain --test   # the test folds, once per version
    python benchmarks/quadrangles.py ship --variant retrain --out PATH

``cv`` refuses to print test-fold scores unless ``--test`` is given: choose on validation first.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# the real data (shared/data beside the clone); a GPU machine may hold it elsewhere
DATA = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))
SPLIT = REPO / "benchmarks" / "splits" / "quadrangles.json"
RULES = ("deepmoon", "iou", "pycda")
D_MIN = 16.0
BINS = (16, 24, 32, 48, 64, 128, 1e9)
#: Candidate sets: the shipped verifier's low thresholds, and lower ones that hold more of the craters
#: (on validation chips 440-499: 0.948 of those >= 16 px at 268 candidates per chip, against 0.887 at 78)
CANDIDATES = {"default": None, "wide": {"threshold": 0.1, "template_threshold": 0.2}}


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def read_split(path: Path = SPLIT) -> dict[str, Any]:
    """The folds (quadrangle lists), each run's validation fold and the chips' spans."""
    split = json.loads(Path(path).read_text())
    folds = split["folds"]
    seen = [q for qs in folds.values() for q in qs]
    if len(seen) != len(set(seen)):
        raise SystemExit(f"{path}: a quadrangle is in two folds")
    for k, v in split["validation_of"].items():
        if k not in folds or v not in folds or k == v:
            raise SystemExit(f"{path}: run {k} must validate on another fold, got {v}")
    return split


def fold_of(split: dict[str, Any]) -> dict[str, str]:
    return {q: f for f, qs in split["folds"].items() for q in qs}


def read_robbins(folder: Path = DATA / "robbins2012-equatorial-tiles") -> Any:
    """The Robbins & Hynek (2012) catalog of latitudes -30..30, from its 24 tiles."""
    from marscraters.catalog import read_catalog

    tiles = sorted(glob.glob(str(folder / "CSV_Tile_*.csv")))
    if not tiles:
        raise SystemExit(f"no Robbins tiles in {folder}")
    return pd.concat([read_catalog(t, errors="drop") for t in tiles], ignore_index=True)


def load_crops(folder: Path = DATA / "themis-quadrangle-crops") -> tuple[np.ndarray, list[pd.DataFrame], pd.DataFrame]:
    """Every crop (0..255 grey), its Robbins craters in its pixels, and the index rows, in index order."""
    from marscraters.chips import crop_mosaic, read_crop_index
    from marscraters.targets import catalog_pixels

    index = read_crop_index(folder / "index.csv").sort_values("file").reset_index(drop=True)
    catalog = read_robbins()
    images, truths = [], []
    for name in index["file"]:
        ds = crop_mosaic(folder / "images" / name, index)
        images.append(ds["ir"].values)
        truths.append(catalog_pixels(ds, catalog)[["x", "y", "diameter_px", "width_px", "height_px", "diameter_km"]])
    return np.stack(images).astype(np.float32), truths, index


def load_chips(spec: str) -> tuple[np.ndarray, list[pd.DataFrame], list[str]]:
    from marscraters.chips import chip_craters, read_chips

    lo, hi = (int(v) for v in spec.split(":"))
    chips = read_chips(DATA / "themis-dayir-crops", indices=range(lo, hi))
    return chips.images, [chip_craters(chips, i)[["x", "y", "diameter_px"]] for i in range(len(chips))], chips.names


# --------------------------------------------------------------------------------------------
# stage 1: maps and candidates, cached
# --------------------------------------------------------------------------------------------
def _tag(model: str | None) -> str:
    from marscraters.detect import model_info

    if model is None:
        return str(model_info(None).get("name") or "shipped")
    # a run's folder names it (train() writes best.keras in every run's own folder)
    return f"{Path(model).parent.name}-{Path(model).stem}"


def _folder(args: argparse.Namespace, model: str | None = None) -> Path:
    """The cache of a model (default ``--model``) and ``--candidates`` set."""
    tag = _tag(args.model if model is None else model)
    if getattr(args, "tta", 1) > 1:  # maps averaged over orientations (addendum 3)
        tag = f"{tag}-tta{args.tta}"
    return Path(args.runs) / (tag if args.candidates == "default" else f"{tag}-{args.candidates}")


def prepare(args: argparse.Namespace) -> None:
    """Network maps, candidates (at the verifier's low thresholds), their patches, features and labels."""
    from marscraters.detect import model_info
    from marscraters.model import load_model, normalise_image
    from marscraters.training import predict_stack
    from marscraters.verify import CANDIDATE_OPTIONS, candidate_sets

    out = _folder(args)
    out.mkdir(parents=True, exist_ok=True)
    options = {**CANDIDATE_OPTIONS, **(CANDIDATES[args.candidates] or {})}
    (out / "candidates.json").write_text(json.dumps(options))
    model, kind = load_model(args.model), model_info(args.model)["kind"]
    sets = {"crops": None, "chips": None}
    t0 = time.perf_counter()
    images, truths, index = load_crops()
    sets["crops"] = (images, truths, list(index["file"]))
    split = read_split()
    if args.crops_only:
        del sets["chips"]
    else:
        sets["chips"] = load_chips(f"0:{split['chips']['test'].split(':')[1]}")
    if args.ctx:
        # CTX tiles at the pyramid's levels (benchmarks/train_cameras.py), for verifiers across cameras
        from train_cameras import ctx_tiles

        sets["ctx"] = ctx_tiles(args.ctx, DATA, min_confidence=2)
    print(f"read {len(images)} crops and {len(sets['chips'][0]) if 'chips' in sets else 0} chips in {time.perf_counter() - t0:.0f} s", flush=True)
    for name, (imgs, trs, names) in sets.items():
        t0 = time.perf_counter()
        # the fixed 8-bit scale detect() uses for chip-like images (checked against detect below)
        norm = np.stack([normalise_image(im, value_range=(0, 255)) for im in imgs]).astype(np.float32)
        probs = np.concatenate([predict_stack(model, norm[i:i + 32], tta=args.tta) for i in range(0, len(norm), 32)])
        t1 = time.perf_counter()
        cands, patches, feats, labels = candidate_sets(norm, probs, target=kind, candidates=options,
                                                       truths=trs, progress=False)
        n = np.array([len(c) for c in cands])
        cand = pd.concat([c.assign(image=i) for i, c in enumerate(cands)], ignore_index=True)
        np.savez(out / f"{name}.npz", probs=probs.astype(np.float16), patches=patches.astype(np.float16),
                 features=feats.astype(np.float32), labels=labels.astype(np.int8), n_candidates=n)
        cand.to_pickle(out / f"{name}_candidates.pkl")
        pd.concat([t.assign(image=i) for i, t in enumerate(trs)], ignore_index=True).to_pickle(out / f"{name}_truth.pkl")
        pd.Series(names, name="name").to_frame().to_pickle(out / f"{name}_names.pkl")
        print(f"{name}: maps {t1 - t0:.0f} s, candidates {time.perf_counter() - t1:.0f} s; {len(cand)} candidates, "
              f"{int(labels.sum())} match a crater", flush=True)
    index.to_pickle(out / "crops_index.pkl")


class Cache:
    """What ``prepare`` wrote for one image set."""

    def __init__(self, folder: Path, name: str):
        z = np.load(folder / f"{name}.npz")
        self.probs, self.patches, self.features = z["probs"], z["patches"], z["features"]
        self.labels, self.n = z["labels"].astype(np.float32), z["n_candidates"]
        self.candidates = pd.read_pickle(folder / f"{name}_candidates.pkl")
        truth = pd.read_pickle(folder / f"{name}_truth.pkl")
        self.names = pd.read_pickle(folder / f"{name}_names.pkl")["name"].tolist()
        self.truths = [truth[truth["image"] == i].drop(columns="image").reset_index(drop=True)
                       for i in range(len(self.names))]
        self.starts = np.concatenate([[0], np.cumsum(self.n)])
        self.options = json.loads((folder / "candidates.json").read_text()) if (folder / "candidates.json").exists() \
            else None

    def rows(self, images: np.ndarray) -> np.ndarray:
        """Candidate rows of these images."""
        return np.concatenate([np.arange(self.starts[i], self.starts[i + 1]) for i in images]) if len(images) else \
            np.zeros(0, int)


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def detections(cache: Cache, images: np.ndarray, scores: np.ndarray | None, threshold: float,
               finder: dict | None = None) -> list[pd.DataFrame]:
    """Per image, the candidates kept at ``threshold`` (verifier ``scores`` over all candidates), or
    the one-stage finder's craters (``finder`` options) when ``scores`` is None."""
    from marscraters.extract import extract_craters

    out = []
    for i in images:
        if scores is None:
            out.append(extract_craters(cache.probs[i].astype(np.float32), target="outline", **finder)[
                ["x", "y", "diameter_px", "score"]])
            continue
        rows = np.arange(cache.starts[i], cache.starts[i + 1])
        c = cache.candidates.iloc[rows][["x", "y", "diameter_px"]].assign(score=scores[rows])
        out.append(c[c["score"] >= threshold].reset_index(drop=True))
    return out


def score_sets(preds: list[pd.DataFrame], truths: list[pd.DataFrame], labels: list[str], *, rules=RULES,
               n_boot: int = 0) -> dict[str, Any]:
    """Pooled P, R, F1 (floor scoring at 16 px) per rule, by diameter bin, with bootstrap intervals over images."""
    from marscraters.evaluate import bootstrap_scores, evaluate, group_counts, side_by_side

    pred = side_by_side(preds, images=labels)
    truth = side_by_side([t[["x", "y", "diameter_px"]] for t in truths], images=labels)
    out = {}
    for rule in rules:
        r = evaluate(pred, truth, rule=rule, d_min=D_MIN, bins=list(BINS))
        row = {"precision": r.precision, "recall": r.recall, "f1": r.f1, "n_pred": int(r.n_pred),
               "n_truth": int(r.n_truth), "tp": int(r.n_truth_matched)}
        if n_boot:
            ci = bootstrap_scores(group_counts(r, pred, truth, "image", groups=labels), n_boot=n_boot, seed=0)
            row["ci95"] = {k: [float(ci.loc[k, "low"]), float(ci.loc[k, "high"])] for k in ("precision", "recall", "f1")}
        if rule == "deepmoon":
            row["by_diameter"] = r.by_diameter.replace({np.nan: None}).to_dict(orient="records")
        out[rule] = row
    return out


def _best_threshold(cache: Cache, images: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    from marscraters.evaluate import evaluate, side_by_side

    truth = side_by_side([cache.truths[i][["x", "y", "diameter_px"]] for i in images])
    best = (0.5, -1.0)
    for thr in np.round(np.arange(0.05, 0.91, 0.05), 2):
        pred = side_by_side(detections(cache, images, scores, thr))
        f1 = evaluate(pred, truth, rule="deepmoon", d_min=D_MIN).f1
        if f1 > best[1] + 1e-12:
            best = (float(thr), float(f1))
    return best


def _verifier_scores(verifier: Any, cache: Cache, rows: np.ndarray | None = None) -> np.ndarray:
    rows = np.arange(len(cache.labels)) if rows is None else rows
    scores = np.full(len(cache.labels), np.nan)
    if len(rows):
        scores[rows] = verifier.predict(cache.patches[rows].astype(np.float32), cache.features[rows], tta=8)
    return scores


def _groups(cache: Cache, index: pd.DataFrame, split: dict[str, Any]) -> dict[str, np.ndarray]:
    """Crop positions per fold and per quadrangle."""
    folds = fold_of(split)
    quad = index.set_index("file").loc[cache.names, "quadrangle"].to_numpy()
    out = {f"fold {f}": np.flatnonzero(np.isin(quad, qs)) for f, qs in split["folds"].items()}
    out.update({q: np.flatnonzero(quad == q) for q in sorted(folds)})
    return out


def score(args: argparse.Namespace) -> dict[str, Any]:
    """One detector (the model's maps, a verifier or none) on every crop and on chips 500-599."""
    from marscraters.detect import model_info
    from marscraters.verify import load_verifier, merge_options, resolve_verifier

    folder = _folder(args)
    crops, index = Cache(folder, "crops"), pd.read_pickle(folder / "crops_index.pkl")
    split = read_split()
    if args.verifier == "none":
        verifier, finder = None, merge_options(model_info(args.model)["extract"], None, None)
    else:
        verifier = load_verifier(args.verifier) if args.verifier else resolve_verifier(None, args.model)
        finder = None
    thr = args.threshold if args.threshold is not None else (verifier.threshold if verifier else None)
    report: dict[str, Any] = {"model": _tag(args.model), "verifier": args.verifier or "the model's own",
                              "threshold": thr, "d_min": D_MIN, "date": time.strftime("%Y-%m-%d"), "sets": {}}
    scores = _verifier_scores(verifier, crops) if verifier and not args.no_crops else None
    groups = {} if args.no_crops else {"all crops": np.arange(len(crops.names)), **_groups(crops, index, split)}
    for name, imgs in groups.items():
        preds = detections(crops, imgs, scores, thr, finder)
        report["sets"][name] = score_sets(preds, [crops.truths[i] for i in imgs], [crops.names[i] for i in imgs],
                                          n_boot=args.bootstrap if name == "all crops" or name.startswith("fold") else 0)
        r = report["sets"][name]["deepmoon"]
        print(f"{name:>20}: P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f} ({r['tp']}/{r['n_truth']})",
              flush=True)
    for role in ("validation", "test") if args.chips_test else ():
        if role not in args.chips_sets:
            continue
        chips = Cache(folder, "chips")
        lo, hi = (int(v) for v in split["chips"][role].split(":"))
        imgs = np.arange(lo, hi)
        cs = _verifier_scores(verifier, chips, chips.rows(imgs)) if verifier else None
        preds = detections(chips, imgs, cs, thr, finder)
        name = f"chips {lo}-{hi - 1}"
        report["sets"][name] = score_sets(preds, [chips.truths[i] for i in imgs], [chips.names[i] for i in imgs],
                                          n_boot=args.bootstrap)
        r = report["sets"][name]["deepmoon"]
        print(f"{name:>20}: P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return report


# --------------------------------------------------------------------------------------------
# cross-validated variants of the second stage
# --------------------------------------------------------------------------------------------
VARIANTS = {
    "shipped": "the model's own verifier at its own threshold",
    "rethreshold": "the model's own verifier, threshold chosen on the validation fold",
    "one-stage": "no verifier: the model's one-stage finder, its probability threshold chosen on the validation fold",
    "retrain": "a verifier trained on the training folds' candidates (maps the network never trained on) plus "
               "chips 0-439's, threshold chosen on the validation fold",
    "retrain-crops": "as retrain, without the chips",
    "retrain-context": "retrain with two more patch channels: the image and the map over 4 radii (addendum 4)",
    "retrain-ens3": "retrain with three verifiers per run (seeds 0, 1, 2), their outputs averaged (addendum 5)",
    "retrain-small": "retrain with one convolution per block of the verifier's network (small_verifier_rule.md)",
}
#: Verifiers averaged per run by retrain-ens3 (addendum 5), seeds seed .. seed + ENSEMBLE - 1.
ENSEMBLE = 3
#: Half-width, in crater radii, of retrain-context's extra patches (addendum 4).
CONTEXT_EXTENT = 4.0


def _fit_variant(variant: str, parts: list[tuple[Cache, np.ndarray]], args: argparse.Namespace) -> Any:
    """The classifier of a retrained variant: one (seed ``args.seed``), or retrain-ens3's average of
    :data:`ENSEMBLE` seeds."""
    from marscraters.verify import average_classifiers

    if variant == "retrain-small":
        return _fit(parts, args.epochs, args.seed, args.negatives, convs_per_block=1)
    if variant != "retrain-ens3":
        return _fit(parts, args.epochs, args.seed, args.negatives)
    return average_classifiers([_fit(parts, args.epochs, args.seed + k, args.negatives) for k in range(ENSEMBLE)])


def _fit(cache_parts: list[tuple[Cache, np.ndarray]], epochs: int, seed: int, negatives: float = 1.0,
         convs_per_block: int = 2) -> Any:
    from marscraters.verify import fit_classifier

    if negatives < 1:
        # all craters, a random share of the false circles (the threshold is chosen on validation anyway)
        rng = np.random.default_rng(seed)
        cache_parts = [(c, r[(c.labels[r] > 0) | (rng.random(len(r)) < negatives)]) for c, r in cache_parts]
    patches = np.concatenate([c.patches[r] for c, r in cache_parts]).astype(np.float32)
    feats = np.concatenate([c.features[r] for c, r in cache_parts])
    labels = np.concatenate([c.labels[r] for c, r in cache_parts])
    return fit_classifier(patches, feats, labels, epochs=epochs, seed=seed, progress=False,
                          convs_per_block=convs_per_block)


def _one_stage_best(cache: Cache, images: np.ndarray, base: dict) -> tuple[dict, float]:
    from marscraters.evaluate import evaluate, side_by_side

    truth = side_by_side([cache.truths[i][["x", "y", "diameter_px"]] for i in images])
    best = (base, -1.0)
    for thr in (0.3, 0.4, 0.5, 0.6, 0.7):
        opts = {**base, "threshold": thr}
        f1 = evaluate(side_by_side(detections(cache, images, None, 0, opts)), truth, rule="deepmoon", d_min=D_MIN).f1
        if f1 > best[1]:
            best = (opts, f1)
    return best


def run_variant(variant: str, k: str, crops: Cache, chips: Cache, groups: dict, split: dict, args,
                evaluated: Cache | None = None) -> dict:
    """Run ``k`` of one variant: its detections on the validation fold and on the test fold.

    ``evaluated``: the maps and candidates of run ``k``'s own network (fine-tuned without folds
    ``k`` and ``validation_of[k]``) on those folds; a retrained verifier still learns from the
    shipped network's maps of the training folds, which it never trained on.
    """
    ev = crops if evaluated is None else evaluated
    from marscraters.detect import model_info
    from marscraters.verify import Verifier, merge_options, resolve_verifier

    v = split["validation_of"][k]
    train_folds = [f for f in split["folds"] if f not in (k, v)]
    train = np.concatenate([groups[f"fold {f}"] for f in train_folds])
    val, test = groups[f"fold {v}"], groups[f"fold {k}"]
    out: dict[str, Any] = {"run": k, "validation_fold": v, "train_folds": train_folds}
    if variant == "one-stage":
        opts, f1 = _one_stage_best(ev, val, merge_options(model_info(args.model)["extract"], None, None))
        out.update(finder=opts, validation_f1=f1)
        out["preds"] = {"validation": detections(ev, val, None, 0, opts), "test": detections(ev, test, None, 0, opts)}
        return out
    shipped = resolve_verifier(None, args.model)
    if variant in ("shipped", "rethreshold"):
        verifier = shipped
    else:
        parts = [(crops, crops.rows(train))]
        if variant in ("retrain", "retrain-ens3", "retrain-small"):
            lo, hi = (int(x) for x in split["chips"]["train"].split(":"))
            parts.append((chips, chips.rows(np.arange(lo, hi))))
        parts += _ctx_parts(args)
        t0 = time.perf_counter()
        verifier = Verifier(_fit_variant(variant, parts, args), 0.5, crops.options or shipped.candidates)
        out["fit_seconds"] = round(time.perf_counter() - t0, 1)
    scores = _verifier_scores(verifier, ev, ev.rows(np.concatenate([val, test])))
    thr, f1 = (verifier.threshold, float("nan")) if variant == "shipped" else _best_threshold(ev, val, scores)
    out.update(threshold=thr, validation_f1=f1)
    out["preds"] = {"validation": detections(ev, val, scores, thr), "test": detections(ev, test, scores, thr)}
    return out


def with_context(cache: Cache, folder: Path, name: str, images: Callable[[], np.ndarray]) -> Cache:
    """``cache`` whose patches carry two more channels, the image and the map over
    :data:`CONTEXT_EXTENT` radii (computed once, kept beside the cache; ``images`` reads the
    images only then)."""
    import copy

    from marscraters.model import normalise_image
    from marscraters.verify import crater_patches

    path = folder / f"{name}_context.npy"
    if path.exists():
        extra = np.load(path)
    else:
        parts = []
        for i, image in enumerate(images()):
            rows = slice(cache.starts[i], cache.starts[i + 1])
            cand = cache.candidates.iloc[rows]
            norm = normalise_image(image, value_range=(0, 255)).astype(np.float32)
            parts.append(crater_patches(norm, cache.probs[i].astype(np.float32), cand, extent=CONTEXT_EXTENT)
                         .astype(np.float16))
        extra = np.concatenate(parts)
        np.save(path, extra)
    out = copy.copy(cache)
    out.patches = np.concatenate([cache.patches, extra], axis=-1)
    return out


def _ctx_parts(args: argparse.Namespace) -> list[tuple[Cache, np.ndarray]]:
    """``--with-ctx``: every candidate of the CTX tiles ``prepare --ctx`` cached, for the verifier."""
    if not args.with_ctx:
        return []
    ctx = Cache(_folder(args), "ctx")
    return [(ctx, np.arange(len(ctx.labels)))]


def cv(args: argparse.Namespace) -> dict[str, Any]:
    folder = _folder(args)
    crops, chips = Cache(folder, "crops"), Cache(folder, "chips")
    index = pd.read_pickle(folder / "crops_index.pkl")
    split = read_split()
    groups = _groups(crops, index, split)
    own = {}
    for item in args.run_models or []:
        run, _, path = item.partition("=")
        own[run] = Cache(_folder(args, path), "crops")
        if own[run].names != crops.names:
            raise SystemExit(f"--run-models {item}: its cache holds other crops; run prepare --crops-only for it")
    report: dict[str, Any] = {"model": _tag(args.model), "run_models": args.run_models or [],
                              "candidates": crops.options, "negatives": args.negatives, "with_ctx": args.with_ctx,
                              "date": time.strftime("%Y-%m-%d"), "split": str(SPLIT.name),
                              "epochs": args.epochs, "seed": args.seed, "variants": {}}
    if "retrain-context" in args.variants:
        crops_c = with_context(crops, folder, "crops", lambda: load_crops()[0])
        chips_c = with_context(chips, folder, "chips", lambda: load_chips(f"0:{len(chips.names)}")[0])
    for variant in args.variants:
        # each run's detections are kept (unprinted), so the test folds are scored from the very runs
        # that were chosen on validation, without training them again
        kept = folder / (f"cv_{variant}_{args.negatives:g}_{args.epochs}_{args.seed}{'_own' if own else ''}"
                         f"{'_ctx' if args.with_ctx else ''}.pkl")
        if kept.exists():
            runs = pd.read_pickle(kept)
            print(f"{variant}: the runs kept in {kept}", flush=True)
        else:
            runs = []
            for k in split["folds"]:
                t0 = time.perf_counter()
                if variant == "retrain-context":  # retrain, on the patches with context
                    runs.append(run_variant("retrain", k, crops_c, chips_c, groups, split, args, None))
                else:
                    runs.append(run_variant(variant, k, crops, chips, groups, split, args, own.get(k)))
                print(f"{variant} run {k}: threshold {runs[-1].get('threshold', runs[-1].get('finder'))}, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
            pd.to_pickle(runs, kept)
        entry: dict[str, Any] = {"description": VARIANTS[variant],
                                 "runs": [{k: v for k, v in r.items() if k != "preds"} for r in runs]}
        for role in ("validation", "test") if args.test else ("validation",):
            imgs = np.concatenate([groups[f"fold {r['validation_fold' if role == 'validation' else 'run']}"]
                                   for r in runs])
            preds = [p for r in runs for p in r["preds"][role]]
            entry[role] = score_sets(preds, [crops.truths[i] for i in imgs], [crops.names[i] for i in imgs],
                                     n_boot=args.bootstrap)
            if role == "test":
                # per quadrangle, from the run that held it out
                per_q = {}
                for q in sorted(fold_of(split)):
                    sel = [(i, p) for r in runs for i, p in zip(groups[f"fold {r['run']}"], r["preds"]["test"])
                           if i in set(groups[q])]
                    per_q[q] = score_sets([p for _, p in sel], [crops.truths[i] for i, _ in sel],
                                          [crops.names[i] for i, _ in sel], rules=("deepmoon",))["deepmoon"]
                entry["test_by_quadrangle"] = per_q
            r = entry[role]["deepmoon"]
            print(f"{variant:>14} {role:>10}: P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f} "
                  f"({r['tp']}/{r['n_truth']})", flush=True)
        report["variants"][variant] = entry
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return report


def ship(args: argparse.Namespace) -> Any:
    """Rule 5: the chosen variant's verifier trained on every fold, at the median of the runs' thresholds."""
    from marscraters.verify import Verifier, resolve_verifier, save_verifier

    folder = _folder(args)
    crops, chips = Cache(folder, "crops"), Cache(folder, "chips")
    split = read_split()
    if args.cv_json:
        runs = json.loads(Path(args.cv_json).read_text())["variants"][args.variant]["runs"]
        threshold = float(np.median([r["threshold"] for r in runs]))
    elif args.threshold is not None:  # chosen elsewhere (the fine model's, on CTX: fine_threshold.py)
        runs, threshold = [], float(args.threshold)
    else:
        raise SystemExit("ship needs --cv-json (the runs' median threshold) or --threshold")
    parts = [(crops, np.arange(len(crops.labels)))]
    if args.variant.startswith("retrain") and args.variant != "retrain-crops":
        lo, hi = (int(x) for x in split["chips"]["train"].split(":"))
        parts.append((chips, chips.rows(np.arange(lo, hi))))
    parts += _ctx_parts(args)
    t0 = time.perf_counter()
    model = _fit_variant(args.variant, parts, args)
    report = {"variant": args.variant, "description": VARIANTS.get(args.variant, args.variant),
              "threshold": threshold, "run_thresholds": [r["threshold"] for r in runs],
              "candidates": crops.options or resolve_verifier(None, args.model).candidates,
              "n_train_candidates": int(sum(len(r) for _, r in parts)), "epochs": args.epochs, "seed": args.seed,
              "negatives": args.negatives, "with_ctx": args.with_ctx, "fit_seconds": round(time.perf_counter() - t0, 1),
              "network": _tag(args.model), "date": time.strftime("%Y-%m-%d"), "split": SPLIT.name}
    verifier = Verifier(model, threshold, report["candidates"], {"name": "marscraters-themis-verifier",
                                                                 "training": report})
    out = save_verifier(verifier, args.out, overwrite=True)
    print(f"saved {out} (threshold {threshold:.2f})")
    return report


# --------------------------------------------------------------------------------------------
# dating on real ground
# --------------------------------------------------------------------------------------------
AGE_RANGE_KM = (1.6, 20.0)  # from the 16 px scoring floor to half a crop: the widest range both counts allow


def ages(args: argparse.Namespace) -> dict[str, Any]:
    """Model ages of each fold's crops from one detector's craters and from the Robbins catalog."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from marscraters.catalog import filter_catalog
    from marscraters.chips import crop_mosaic, read_crop_index
    from marscraters.chronology import count_area_km2, csfd, format_age, model_age
    from marscraters.detect import model_info
    from marscraters.extract import to_catalog
    from marscraters.verify import load_verifier, merge_options, resolve_verifier

    folder = _folder(args)
    crops = Cache(folder, "crops")
    index = read_crop_index(DATA / "themis-quadrangle-crops" / "index.csv")
    split = read_split()
    groups = _groups(crops, pd.read_pickle(folder / "crops_index.pkl"), split)
    held_out: dict[str, list] = {}
    if args.from_cv:
        # each fold's detections from the cross-validated run that held it out
        for run in pd.read_pickle(args.from_cv):
            held_out[run["run"]] = run["preds"]["test"]
        verifier = finder = thr = scores = None
        label = f"cross-validated runs ({Path(args.from_cv).name})"
    elif args.verifier == "none":
        verifier, finder, label = None, merge_options(model_info(args.model)["extract"], None, None), "one-stage"
    else:
        verifier, finder = (load_verifier(args.verifier) if args.verifier else resolve_verifier(None, args.model)), None
        label = args.verifier or "the model's own"
    if not args.from_cv:
        thr = args.threshold if args.threshold is not None else (verifier.threshold if verifier else None)
        scores = _verifier_scores(verifier, crops) if verifier else None
    robbins = read_robbins()
    report: dict[str, Any] = {"model": _tag(args.model), "verifier": label,
                              "threshold": thr, "diameter_range_km": AGE_RANGE_KM, "folds": {}}
    fig = Figure(figsize=(13, 11.5), layout="constrained")
    for ax, fold in zip(fig.subplots(2, 2).ravel(), split["folds"]):
        imgs = groups[f"fold {fold}"]
        preds = held_out[fold] if args.from_cv else detections(crops, imgs, scores, thr, finder)
        det, ref, area = [], [], 0.0
        for i, p in zip(imgs, preds):
            ds = crop_mosaic(DATA / "themis-quadrangle-crops" / "images" / crops.names[i], index)
            det.append(to_catalog(p.assign(score=p["score"]), ds))
            ref.append(filter_catalog(robbins, footprint=ds))
            area += count_area_km2(ds)
        det_cat, ref_cat = pd.concat(det, ignore_index=True), pd.concat(ref, ignore_index=True)
        det_cat.attrs, ref_cat.attrs = {"source": "detections"}, {"source": "Robbins & Hynek 2012"}
        fits = {"robbins": model_age(ref_cat, area_km2=area, diameter_range=AGE_RANGE_KM),
                "detections": model_age(det_cat, area_km2=area, diameter_range=AGE_RANGE_KM),
                "detections_response": model_age(det_cat, area_km2=area, diameter_range=AGE_RANGE_KM,
                                                 response="shipped")}
        row = {"quadrangles": split["folds"][fold], "crops": int(len(imgs)), "area_km2": area}
        for name, fit in fits.items():
            # the range each fit dated: the default snap widens 1.6 km to the pseudo-log boundary 1.5 km,
            # except through the response, whose calibration starts at 1.6 km
            row[name] = {"age_ga": fit.age, "lower_ga": fit.lower, "upper_ga": fit.upper, "n": float(fit.n),
                         "n1_per_km2": float(fit.n1), "diameter_range_km": [float(v) for v in fit.diameter_range]}
        row["ratio"] = fits["detections"].age / fits["robbins"].age
        row["ratio_response"] = fits["detections_response"].age / fits["robbins"].age
        row["n1_ratio"] = fits["detections"].n1 / fits["robbins"].n1
        report["folds"][fold] = row
        print(f"fold {fold}: Robbins {fits['robbins']}; detections {fits['detections']} (ratio {row['ratio']:.2f}); "
              f"through the response {fits['detections_response'].age:.2f} Ga (ratio {row['ratio_response']:.2f})",
              flush=True)
        for cat, fit, colour, label in ((ref_cat, fits["robbins"], "black", "Robbins & Hynek (2012)"),
                                        (det_cat, fits["detections"], "tab:red", "detections")):
            t = csfd(cat, area, kind="cumulative")
            ax.errorbar(t["diameter"], t["density"], yerr=[t["density"] - t["lower"], t["upper"] - t["density"]],
                        fmt="o", ms=3, color=colour, elinewidth=0.8,
                        label=f"{label}: {fit.n:.0f} craters, {format_age(fit.age, fit.lower, fit.upper)}")
        dated = fits["detections"].diameter_range
        ax.axvspan(*dated, color="0.92", zorder=0, label=f"diameters dated, {dated[0]:g}-{dated[1]:g} km")
        ax.set(xscale="log", yscale="log", xlabel="crater diameter D (km)", ylabel="cumulative density N(≥D) (km⁻²)",
               title=f"fold {fold}: {', '.join(split['folds'][fold])}\n{len(imgs)} crops, {area:,.0f} km²; "
                     f"age ratio {row['ratio']:.2f}, N(1) ratio {row['n1_ratio']:.2f}")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Crater counts on the held-out quadrangle crops: Robbins catalog vs detections of {_tag(args.model)}"
                 "\n(Poisson model ages, Neukum-Ivanov 2001; error bars 1σ)", fontsize=11)
    if args.plot:
        fig.savefig(args.plot, dpi=110, bbox_inches="tight")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return report


def main(argv: list[str] | None = None) -> Any:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=["prepare", "score", "cv", "ages", "ship"])
    p.add_argument("--model", default=None, help="segmentation model file (default: the shipped model)")
    p.add_argument("--runs", default=str(REPO / "runs" / "quadrangles"), help="cache folder")
    p.add_argument("--verifier", default=None, help="score: a verifier file, or 'none' for the one-stage finder")
    p.add_argument("--threshold", type=float, default=None, help="score: the verifier's threshold; ship: the threshold, without --cv-json")
    p.add_argument("--chips-test", action="store_true", help="score: also the chips (--chips-sets)")
    p.add_argument("--chips-sets", nargs="+", default=["test"], choices=["validation", "test"],
                   help="score: which chips with --chips-test (test = 500-599, the old held-out set)")
    p.add_argument("--no-crops", action="store_true", help="score: the chips only")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--test", action="store_true", help="cv: also score the test folds (once per shipped version)")
    p.add_argument("--candidates", choices=list(CANDIDATES), default="default",
                   help="the candidate set (prepare makes it; the other stages read its cache)")
    p.add_argument("--negatives", type=float, default=1.0,
                   help="cv: share of the false candidates a retrained verifier learns from (default all)")
    p.add_argument("--tta", type=int, default=1, choices=[1, 2, 4, 8],
                   help="prepare/cv: maps averaged over this many orientations (a cache of their own)")
    p.add_argument("--crops-only", action="store_true", help="prepare: the crops only (a run's own network)")
    p.add_argument("--ctx", nargs="*", default=[], help="prepare: also these CTX MC11-E images (e.g. A B C D E F)")
    p.add_argument("--with-ctx", action="store_true",
                   help="cv, ship: the verifier also learns from the CTX candidates prepare --ctx cached")
    p.add_argument("--run-models", nargs="*", metavar="RUN=MODEL",
                   help="cv: each run's own fine-tuned network (train_quadrangles.py), prepared with --crops-only")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--json", help="write the report here")
    p.add_argument("--plot", help="ages: write the CSFD figure here")
    p.add_argument("--from-cv", help="ages: the kept runs of a cv variant (cv_*.pkl): each fold as held out")
    p.add_argument("--variant", default="retrain", help="ship: the chosen variant")
    p.add_argument("--cv-json", help="ship: the cv report whose runs' thresholds it takes")
    p.add_argument("--out", help="ship: where to save the verifier")
    args = p.parse_args(argv)
    if not (DATA / "themis-quadrangle-crops").is_dir():
        raise SystemExit(f"needs {DATA / 'themis-quadrangle-crops'}")
    warnings.filterwarnings("ignore", message=".*intervals are too narrow.*")
    return {"prepare": prepare, "score": score, "cv": cv, "ages": ages, "ship": ship}[args.stage](args)


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 0)
