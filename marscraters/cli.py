"""The ``marscraters`` command line: one subcommand per stage, argument parsing and progress only.

Every subcommand calls the public function of its stage; see ``marscraters <command> --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import logging
import math
import os
import sys
import warnings
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import (
    CatalogFormatError,
    InvalidArgumentError,
    MarsCratersError,
    cli_message,
)

log = logging.getLogger("marscraters")


def _cmd_ingest(args: argparse.Namespace) -> int:
    from ._io import check_not_input
    from .mosaic import ingest, open_mosaic, read_image

    check_not_input(args.out, args.tiles)  # --bounds reads the image first: refuse before that
    sources: Any = args.tiles
    if args.bounds is not None:
        if len(args.tiles) != 1:
            raise InvalidArgumentError(f"--bounds places one image, and {len(args.tiles)} were given: ingest each "
                                       "plain image on its own (with its own --bounds)")
        sources = read_image(args.tiles[0], bounds=args.bounds, crs=args.crs, nodata=args.nodata)
    elif args.crs is not None:
        raise InvalidArgumentError("--crs is the CRS of --bounds: give --bounds WEST SOUTH EAST NORTH too (georeferenced "
                                   "images, GeoTIFFs and THEMIS tiles, bring their own CRS)")
    out = ingest(sources, args.out, overwrite=args.overwrite, chunk=args.chunk, progress=not args.quiet,
                 nodata=None if args.bounds is not None else args.nodata)  # a placed image has it already
    ds = open_mosaic(out)
    print(f"wrote {out}: ir {dict(ds.sizes)} chunks {ds['ir'].encoding.get('chunks')} crs {ds.rio.crs}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from .download import download_robbins, download_themis

    if args.what == "themis":
        if not args.tile:
            raise MarsCratersError("download themis needs at least one --tile, e.g. --tile N-30_030")
        paths = [download_themis(t, dest=args.dest, base_url=args.base_url, progress=not args.quiet) for t in args.tile]
    else:
        paths = [download_robbins(args.release, dest=args.dest, base_url=args.base_url, progress=not args.quiet)]
    for p in paths:
        print(p)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from ._io import check_not_input
    from .catalog import (
        filter_catalog,
        read_catalog,
        write_catalog,
        write_craterstats,
        write_csv,
    )

    check_not_input(args.out, args.catalog, args.footprint)
    cat = read_catalog(args.catalog, errors=args.errors, layer=args.layer)
    footprint = None
    if args.footprint:
        from .mosaic import open_mosaic

        footprint = open_mosaic(args.footprint)
    cat = filter_catalog(cat, diameter_range=args.diameter_range, bbox=args.bbox, footprint=footprint)
    out = Path(args.out)
    suffix = out.suffix.lower()
    if args.area_km2 is not None:
        # the count area given replaces the one recorded (and the footprint it was measured on)
        cat.attrs.update({"area_km2": args.area_km2, "area_source": "--area-km2 given to convert"})
        cat.attrs.pop("footprint", None)
    if suffix == ".csv" and cat.attrs.get("area_km2") is not None:
        warnings.warn(f"a CSV keeps no count area: the {cat.attrs['area_km2']:.6g} km^2 of {args.catalog} is not in "
                      f"{out.name}; give --area-km2 to `marscraters age` with it, or write a .gpkg, .diam or .scc "
                      "file, which keep it", UserWarning, stacklevel=2)
    if suffix == ".gpkg":
        write_catalog(cat, out, overwrite=args.overwrite)
    elif suffix == ".csv":
        write_csv(cat, out, overwrite=args.overwrite)
    elif suffix in (".diam", ".scc"):
        area = args.area_km2 if args.area_km2 is not None else cat.attrs.get("area_km2")
        if area is None:
            raise MarsCratersError(f"{out.name}: craterstats files need a count area; pass --area-km2")
        write_craterstats(cat, out, area_km2=area, format=suffix[1:], overwrite=args.overwrite)
    else:
        raise MarsCratersError(f"unknown output format {suffix!r}: use .gpkg, .csv, .diam or .scc")
    print(f"wrote {len(cat)} craters to {out}")
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    from tqdm.dask import TqdmCallback

    from ._io import atomic_path, check_output
    from .catalog import read_catalog
    from .mosaic import open_mosaic
    from .targets import render_targets

    # before the work: a store, never over a file or another kind of folder
    check_output(args.out, args.overwrite, folder=True, inputs=(args.cube, args.catalog), kind="zarr")
    ds = open_mosaic(args.cube)
    cat = read_catalog(args.catalog, errors=args.errors)
    target = render_targets(ds, cat, kind=args.kind, diameter_range=args.diameter_range)
    # storage chunks of (at most) 512 x 512 like the cube's, whatever the dask strips are
    target.encoding["chunks"] = tuple(min(512, n) for n in target.shape)
    with atomic_path(args.out, overwrite=args.overwrite, kind="zarr") as tmp:
        with TqdmCallback(desc=f"render {args.kind} targets", disable=args.quiet):
            target.to_dataset(name="target").to_zarr(tmp, zarr_format=3, mode="w", consolidated=False)
    # the craters drawn: those reaching into the mosaic, not the whole catalog
    from .targets import catalog_pixels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # render_targets has said what it had to about the catalog's coverage
        drawn = len(catalog_pixels(ds, cat, diameter_range=args.diameter_range, inside="overlap"))
    print(f"wrote {args.kind} targets of {drawn} craters (of the catalog's {len(cat)}) to {args.out}")
    return 0


def _cmd_chips(args: argparse.Namespace) -> int:
    from .catalog import read_catalog
    from .chips import write_chips
    from .mosaic import open_mosaic

    cat = read_catalog(args.catalog, errors=args.errors)
    out = write_chips(open_mosaic(args.cube), cat, args.out, size=args.size, diameter_range=args.diameter_range,
                      overwrite=args.overwrite, progress=not args.quiet)
    n = sum(1 for _ in (Path(out) / "images").iterdir())
    # train's defaults (0:440, 440:500) are the THEMIS chips'; name spans that fit this folder
    print(f"wrote {n} labelled chips of {args.size} px to {out} (images/, labels/, index.csv); train on them with "
          f"`marscraters train --chips {out} {_chip_spans(Path(out) / 'index.csv', n)}`")
    left = _chips_left_out(Path(out) / "index.csv")
    if left:
        print(left)
    return 0


def _chips_left_out(index: Path) -> str:
    """A line counting the craters ``write_chips`` left unlabelled on its chips, and why; "" for none."""
    import pandas as pd

    table = pd.read_csv(index)
    why = {"n_craters_larger": "larger than a chip (cut larger chips with --size)",
           "n_craters_corner": "cut by a chip's corner (not restorable from their box)",
           "n_craters_nodata": "mostly over no data"}
    parts = [f"{int(table[c].sum())} {text}" for c, text in why.items() if c in table and table[c].sum()]
    if not parts:
        return ""
    return f"left unlabelled on the chips (once per chip; index.csv counts them chip by chip): {'; '.join(parts)}"


def _chip_spans(index: Path, n: int) -> str:
    """``--train 0:K --val V:N`` for a folder of ``n`` chips written in rows: about the first 80 % of
    the chips to train and the rest to validate, split where a row starts, with that row left out
    between (neighbours share the craters cut by their common edge); with fewer than three rows,
    at a row's start (or at 80 %) without a gap."""
    import numpy as np
    import pandas as pd

    if n < 2:
        return "--train 0:1 --val 0:1"
    rows = pd.read_csv(index)["row"].to_numpy()[:n] if index.is_file() else np.zeros(n)
    starts = [i for i in range(1, n) if rows[i] != rows[i - 1]]
    cut = 0.8 * n
    # (row k is left out: training ends where it starts, validation starts where the next does)
    gaps = [(abs(a - cut), a, b) for a, b in zip(starts, starts[1:])]
    if gaps:
        _, train_end, val_start = min(gaps)
    else:
        train_end = val_start = min(starts, key=lambda a: abs(a - cut)) if starts else min(max(round(cut), 1), n - 1)
    return f"--train 0:{train_end} --val {val_start}:{n}"


def _parse_range(text: str, what: str) -> range:
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise MarsCratersError(f"{what} must look like START:STOP (e.g. 0:440), got {text!r}") from None
    return range(lo, hi)


def _cmd_train(args: argparse.Namespace) -> int:
    import json

    from .training import (
        TrainConfig,
        can_resume,
        chips_training_set,
        cube_training_set,
        dots_training_set,
        split_tiles,
        train,
    )

    arch = {"kernel_size": 3, "filter_multiple": 1.0}
    saved_config = Path(args.out) / "config.json"
    if not args.restart and can_resume(args.out) and saved_config.exists():
        # resuming: the run's own network unless another is asked for (train() refuses a mismatch)
        saved = json.loads(saved_config.read_text())
        arch.update({k: saved[k] for k in arch if saved.get(k) is not None})
    config = TrainConfig(
        kind=args.kind,
        kernel_size=args.kernel_size if args.kernel_size is not None else arch["kernel_size"],
        filter_multiple=args.filter_multiple if args.filter_multiple is not None else arch["filter_multiple"],
        epochs=args.epochs,
        batch_size=args.batch_size, crop=args.crop, learning_rate=args.learning_rate, dice_weight=args.dice_weight,
        scale=tuple(args.scale), contrast=args.contrast, score_every=args.score_every, seed=args.seed,
        workers=args.workers, weight_small_craters_px=args.weight_small_craters,
    )
    model = None
    if args.init and (args.restart or not can_resume(args.out)):
        from .model import load_model

        # fine-tuning: the file's architecture and weights (train() records that architecture)
        model = load_model(args.init)
        if args.widen:
            from .model import widen_unet

            model = widen_unet(model, args.widen, seed=args.seed)
    elif args.widen and not args.init:
        from .model import default_weights_path

        raise MarsCratersError(
            f"--widen widens the --init model: pass --init MODEL, e.g. the shipped --init {default_weights_path()}"
        )
    value_range = _value_range(args.value_range)
    if args.dots and value_range is not None:
        raise InvalidArgumentError("--value-range sets the grey scale of --chips or --cubes; the synthetic --dots "
                                   "have their own, so leave it out")
    if args.chips:
        from .chips import read_chips

        chips = read_chips(args.chips)
        train_idx = _parse_range(args.train, "--train")
        val_idx = _parse_range(args.val, "--val") if args.val else None
        tr = chips_training_set(chips, train_idx, value_range=value_range)
        va = (chips_training_set(chips, val_idx, role="validation", value_range=value_range)
              if val_idx is not None else None)
        shared = sorted(set(train_idx or []) & set(val_idx or []))
        if shared:
            # in-sample validation flatters the scores and picks best.keras by them
            warnings.warn(f"the validation chips overlap the training chips ({len(shared)} chips, positions "
                          f"{shared[0]}..{shared[-1]}), so the validation scores are in-sample; give --train and "
                          f"--val disjoint spans (e.g. --train 0:N --val N:M)", UserWarning, stacklevel=2)
        source = {"source": "chips", "folder": str(args.chips), "train": args.train, "val": args.val}
    elif args.cubes:
        from .catalog import read_catalog

        if not args.catalog:
            raise MarsCratersError("training on cubes needs --catalog (e.g. the Robbins 2012 TSV)")
        cat = read_catalog(args.catalog, errors="drop")
        train_cubes, val_cubes = split_tiles(args.cubes, args.n_train or len(args.cubes) - 1, args.n_val, seed=args.seed)
        scale = value_range if value_range is not None else (0.0, 255.0)
        tr = cube_training_set(train_cubes, cat, size=args.crop, value_range=scale)
        va = cube_training_set(val_cubes, cat, size=args.crop, value_range=scale) if val_cubes else None
        source = {"source": "cubes", "train": [str(c) for c in train_cubes], "val": [str(c) for c in val_cubes]}
    else:
        n = args.dots
        tr, va = dots_training_set(n, args.crop, seed=args.seed), dots_training_set(max(n // 5, 1), args.crop, seed=args.seed + 1)
        source = {"source": "synthetic dots", "n": n}
    if model is not None:
        source["init"] = str(args.init)
    elif args.init:
        log.info("resuming %s: --init %s is not used", args.out, args.init)
    result = train(tr, va, args.out, config, model=model, resume=not args.restart, metadata={"data": source},
                   verbose=0 if args.quiet else "auto")
    last = result["history"][-1] if result["history"] else {}
    # NaN (no validation score) is not JSON: print null
    last = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in last.items()}
    print(json.dumps({"out": str(args.out), "epochs": len(result["history"]), "last": last}, indent=2, default=str))
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from ._io import atomic_path, check_output
    from .detect import detect, image_files
    from .extract_ops import engine_options

    # before the model runs, not after: a large image takes minutes
    if Path(args.out).suffix.lower() != ".csv":
        raise InvalidArgumentError(f"--out {args.out}: detect writes a CSV of craters in the image's pixels; name it "
                                   "*.csv. For a GeoPackage catalog in lon/lat, ingest georeferenced tiles and run "
                                   "`marscraters segment` and `marscraters catalog`.")
    # a folder is every image in it; with more than one image the CSV gets an `image` column (the file)
    files = [f for name in args.image for f in (image_files(name) if Path(name).is_dir() else [Path(name)])]
    many = len(files) > 1 or any(Path(name).is_dir() for name in args.image)
    # the images are the inputs, not their folder: craters.csv may go beside them
    check_output(args.out, args.overwrite, folder=False, inputs=(*files, args.model))
    value_range = _value_range(args.value_range)
    # --min-score replaces the verifier's threshold (as min_score does in Python): lower keeps more, 0 keeps all
    craters = detect({str(f): f for f in files} if many else files[0], pixel_size_m=args.pixel_size,
                     model=args.model, progress=not args.quiet, tta=args.tta,
                     verify=False if args.no_verify else None, value_range=value_range,
                     extract_options={**({"min_score": args.min_score} if args.min_score is not None else {}),
                                      **engine_options(args.finder_engine)} or None,
                     levels=args.levels, precision=args.precision, nodata=args.nodata)
    with atomic_path(args.out, overwrite=args.overwrite) as tmp:
        craters.to_csv(tmp, index=False, float_format="%.3f")
    sizes = craters.attrs["pixel_size_m"]
    if many:
        print(f"{len(craters)} craters found in {len(files)} images -> {args.out}")
    else:
        source = "" if args.pixel_size else ", from its georeferencing"
        print(f"{len(craters)} craters found in {files[0]} ({sizes:.4g} m per pixel{source}) -> {args.out}")
    return 0


def _join_value_range(argv: Sequence[str]) -> list[str]:
    """``--value-range LOW HIGH`` as one word, ``--value-range=LOW HIGH``.

    The option takes one word (``auto``) or two (``LOW HIGH``), which argparse cannot say:
    with ``nargs="+"`` it would also take the image files after it (``detect --value-range 0
    255 chip.png``); in the ``=`` form a negative LOW is not read as an option either.
    """
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        if word == "--":  # the rest are positional arguments
            return out + list(argv[i:])
        if word == "--value-range" and i + 1 < len(argv):
            # 'auto'; else the numbers that follow (LOW HIGH, or a wrong count that _value_range
            # names), or up to two words that are neither options nor existing files ("low high");
            # an image file after them is left to the arguments
            rest = argv[i + 1:]
            if rest[0].lower() == "auto":
                taken = rest[:1]
            elif _is_number(rest[:1]):
                taken = list(itertools.takewhile(lambda w: _is_number([w]), rest))
            else:
                taken = list(itertools.takewhile(lambda w: not w.startswith("-") and not Path(w).exists(), rest[:2]))
            if taken:
                out.append("--value-range=" + " ".join(taken))
                i += 1 + len(taken)
                continue
        out.append(word)
        i += 1
    return out


def _is_number(words: Sequence[str]) -> bool:
    """Whether ``words`` is one word that reads as a number."""
    if len(words) != 1:
        return False
    try:
        float(words[0])
    except ValueError:
        return False
    return True


def _value_range(words: Sequence[str] | None) -> tuple[float, float] | str | None:
    """``--value-range``: None, ``auto``, or two numbers LOW < HIGH (given as one word or two)."""
    if words is None:
        return None
    words = [w for word in words for w in word.replace(",", " ").split()]
    if len(words) == 1 and words[0].lower() == "auto":
        return "auto"
    try:
        low, high = (float(w) for w in words)
    except ValueError:
        low = high = float("nan")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InvalidArgumentError(f"--value-range {' '.join(words)}: give two numbers LOW HIGH with LOW < HIGH "
                                   "(e.g. 0 255 for 8-bit images, 0 1 for reflectance), or 'auto'")
    return low, high


def _read_scored(path: str, image_size: Sequence[int] | None = None, errors: str = "drop") -> Any:
    """A PixelCraters CSV (x, y, diameter_px), a chip's YOLO ``.txt`` labels (the image's size
    given or read from its image) or any catalog read_catalog understands (``errors``: its
    impossible rows raise or are dropped with a warning)."""
    import pandas as pd

    from .catalog import read_catalog
    from .chips import is_yolo_labels, read_yolo_labels

    if is_yolo_labels(path):
        width, height = (int(v) for v in image_size) if image_size else (None, None)
        return read_yolo_labels(path, width, height)

    # a missing, empty or folder path falls through to read_catalog, whose errors name the fix
    if Path(path).suffix.lower() in (".csv", ".tsv", ".txt") and Path(path).is_file() and Path(path).stat().st_size:
        # any delimiter, any case of the column names (a .tsv of X, Y, Diameter_px)
        try:
            head = pd.read_csv(path, nrows=0, sep=None, engine="python").columns
        except (pd.errors.ParserError, UnicodeDecodeError, csv.Error):
            head = pd.Index([])
        names = {str(c).strip().lower(): c for c in head}
        if {"x", "y", "diameter_px"} <= set(names):
            table = pd.read_csv(path, sep=None, engine="python")
            return table.rename(columns={names[k]: k for k in ("x", "y", "diameter_px", "image") if k in names})
    try:
        return read_catalog(path, errors=errors)
    except CatalogFormatError as exc:
        # evaluate also takes pixel craters, which read_catalog's list of formats does not name
        raise CatalogFormatError(f"{exc} Or, for craters in pixels, a CSV with columns x, y, diameter_px "
                                 "(what `marscraters detect` writes).") from exc


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ._io import check_output
    from .chips import is_yolo_labels
    from .errors import CatalogError
    from .evaluate import (
        bootstrap_scores,
        evaluate,
        group_counts,
        to_json,
        validate_pixel_craters,
    )

    if args.json:
        check_output(args.json, args.overwrite, folder=False, inputs=(args.pred, args.truth, args.footprint))
    if bool(args.by) != bool(args.bootstrap):
        raise InvalidArgumentError("--bootstrap N and --by COLUMN go together: name the column that groups the "
                                   "craters (image, tile...) and the number of resamples")
    if args.image_size and not any(map(is_yolo_labels, (args.pred, args.truth))):
        raise InvalidArgumentError("--image-size is the image size of YOLO .txt labels (class cx cy w h); neither "
                                   f"{args.pred} nor {args.truth} is one, so leave it out")
    tables = [_read_scored(path, args.image_size, errors=args.errors) for path in (args.pred, args.truth)]
    by = args.by
    if by and any(by not in t.columns for t in tables) and all(by.lower() in t.columns for t in tables):
        by = by.lower()  # the reader lower-cases a pixel CSV's X, Y, Diameter_px, Image: `--by Image` is that column
    # pixel tables of several images are matched image by image: by the `image` column detect
    # writes, else by the --by column (which names each crater's image or tile)
    image = by if by and not any("image" in table.columns for table in tables) else "image"
    for i, path in enumerate((args.pred, args.truth)):
        if not {"lat", "lon", "diameter_km"} <= set(tables[i].columns):
            # pixel tables: the same refusal (or --errors drop) as catalogs, naming the file's rows; and
            # the same warning for a crater listed twice (in its image: the same x, y on two is two craters)
            tables[i] = validate_pixel_craters(tables[i], source=path, errors=args.errors, image=image)
    pred, truth = tables
    if args.footprint:
        from .catalog import filter_catalog
        from .mosaic import open_mosaic

        if not {"lat", "lon", "diameter_km"} <= set(truth.columns):
            raise InvalidArgumentError(
                f"--footprint {args.footprint} keeps the reference craters that lie on a mosaic cube's imaged ground, "
                f"so it needs a georeferenced reference catalog (lat, lon, diameter_km); {args.truth} holds craters in "
                "pixels (x, y, diameter_px), which have no place on a cube. Leave --footprint out (pixel tables are "
                "scored on their own image), or give a catalog as the reference")
        cube = open_mosaic(args.footprint)
        listed = len(truth)
        truth = filter_catalog(truth, footprint=cube)
        if len(truth) and {"lat", "lon"} <= set(truth.columns):
            from .catalog import _centred_on_data

            # the imaged ground only: a reference crater centred on no data could not be found
            imaged = _centred_on_data(truth, cube)
            if not imaged.all():
                print(f"left out {int((~imaged).sum())} reference craters centred on {args.footprint}'s no-data pixels")
                truth = truth[imaged].reset_index(drop=True)
        if listed and not len(truth):
            raise InvalidArgumentError(
                f"none of the {listed} reference craters of {args.truth} lies on {args.footprint}'s imaged ground, so "
                "there is nothing to score against: check that the catalog and the cube cover the same place")
    if not len(truth):
        # the message of evaluate() names Python's filter_catalog: here the cause is the file
        what = (f"{args.truth} is an empty YOLO label file (a chip without labelled craters)"
                if is_yolo_labels(args.truth) else f"{args.truth} holds no craters")
        raise CatalogError(
            f"{what}, so there is nothing to score against: give a reference with craters (for chips, score "
            "those with labelled craters, or several chips at once: pixel tables with an `image` column)")
    if by:
        # before the scores are printed, not after
        for table, path in ((pred, args.pred), (truth, args.truth)):
            if by not in table.columns:
                raise InvalidArgumentError(
                    f"--by {args.by}: {path} has no column {args.by!r} (its columns: {list(table.columns)[:12]}). "
                    "Name a column of both tables that says each crater's image or tile, e.g. the `image` column "
                    "`marscraters detect` writes for several images")
            if table[by].isna().any():
                raise InvalidArgumentError(f"--by {args.by}: {int(table[by].isna().sum())} craters of {path} "
                                           f"have no {args.by!r}; fill it or drop those rows")
    results = evaluate(pred, truth, rule=args.rule, d_min=args.d_min, image=image)
    results = results if isinstance(results, dict) else {args.rule: results}
    intervals = {}
    for rule, res in results.items():
        print(res.summary())
        print(f"  median position error {res.median_position_error:.3f}, diameter error {res.median_diameter_error:.3f} (fractions of the true radius/diameter)")
        print("  by diameter:\n    " + res.by_diameter.to_string(index=False).replace("\n", "\n    "))
        if res.by_latitude is not None:
            print("  by latitude:\n    " + res.by_latitude.to_string(index=False).replace("\n", "\n    "))
        if args.bootstrap:
            counts = group_counts(res, pred, truth, by)
            ci = intervals[rule] = bootstrap_scores(counts, n_boot=args.bootstrap)
            print(f"  95 % intervals from {args.bootstrap} resamples of {len(counts)} {args.by} groups:\n    "
                  + ci.round(3).to_string().replace("\n", "\n    "))
    if args.json:
        # the intervals too, under "bootstrap": a scripted run needs them as much as the scores
        if len(results) > 1:
            to_json(results, args.json, overwrite=args.overwrite, bootstrap=intervals or None)
        else:
            to_json(next(iter(results.values())), args.json, overwrite=args.overwrite,
                    bootstrap=next(iter(intervals.values()), None))
        print(f"wrote {args.json}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .detect import _GEO_SUFFIXES, IMAGE_SUFFIXES

    path = Path(args.path)
    if path.suffix == ".zarr" or (path / "zarr.json").exists():
        from .crs import Grid
        from .errors import MosaicError
        from .mosaic import open_mosaic

        try:
            ds, kind = open_mosaic(path), "mosaic cube"
        except MosaicError:
            # the package's other stores: segment's probability map, targets' target layer
            import xarray as xr

            ds = xr.open_zarr(path, decode_coords="all", consolidated=False)
            kinds = {"crater_probability": "crater probability store (from `marscraters segment`)",
                     "target": "target layer (from `marscraters targets`)"}
            kind = next((kinds[v] for v in ds.data_vars if v in kinds), "Zarr store (not a mosaic cube)")
        from .segment import unfinished_run

        unfinished = unfinished_run(path)
        print(f"{path}: {kind}" + (f" -- UNFINISHED: {unfinished}" if unfinished else ""))
        print(ds)
        try:
            print("grid:", Grid.from_dataset(ds))
        except MarsCratersError as exc:
            print(f"grid: none ({exc})")
    elif path.suffix.lower() == ".keras":
        from .detect import model_info

        info = model_info(str(path))
        print(f"{path}: model {info['name']!r}: {info['kind']} targets, native pixel size "
              f"{info['native_pixel_size_m']:g} m; its one-stage circle finder's settings {info['extract'] or 'the defaults'}"
              + (f"; pyramid band {info['pyramid_top_px']:g} px" if info.get("pyramid_top_px") else ""))
    elif path.suffix.lower() in (*IMAGE_SUFFIXES, *_GEO_SUFFIXES):
        _describe_image(path)
    else:
        # a catalog, or the pixel craters `detect` writes (read by the same helper as `evaluate`)
        cat = _read_scored(str(path))
        print(cat.describe().to_string())
        if not cat.attrs:
            print(f"{len(cat)} craters (pixel coordinates)")
            return 0
        # the footprint polygon is hundreds of vertices: its bounds say where it is
        attrs = {k: v for k, v in cat.attrs.items() if k != "footprint"}
        print(f"{len(cat)} craters; attrs: {attrs}")
        print(_count_area_text(cat.attrs))
    return 0


def _describe_image(path: Path) -> None:
    """`info` on an image: its size, and its georeferencing (CRS, bounds, pixel size) or the lack of it."""
    from .detect import (
        _GEO_SUFFIXES,
        _image_size,
        _read_georeferenced,
        georeferenced_pixel_size,
    )

    if path.suffix.lower() in _GEO_SUFFIXES:
        ds = _read_georeferenced(path)
        if ds is not None:
            west, south, east, north = (float(v) for v in ds.rio.bounds())
            size = georeferenced_pixel_size(ds, what=str(path), need_metres=False)
            from .crs import Grid, _crs_label

            print(f"{path}: georeferenced image, {ds.sizes['x']} x {ds.sizes['y']} px in "
                  f"{_crs_label(Grid.from_dataset(ds).crs)!r}, bounds "
                  f"{west:.6g} {south:.6g} {east:.6g} {north:.6g}"
                  + (f", {size:.4g} m per pixel (detect takes it from the file)" if size else ""))
            return
    rows, cols = _image_size(path)
    print(f"{path}: plain image, {cols} x {rows} px, no georeferencing: `detect` needs --pixel-size, `ingest` "
          "needs --bounds")


def _count_area_text(attrs: Any) -> str:
    """One line saying the count area a catalog records, and where from, or that it has none."""
    area = attrs.get("area_km2")
    if area is None:
        return "count area: none recorded (`marscraters age` needs --area-km2 or --area)"
    text = f"count area: {float(area):,.1f} km²"
    if attrs.get("area_source"):
        text += f", {attrs['area_source']}"
    footprint = attrs.get("footprint")
    if footprint is not None:
        w, s, e, n = footprint.bounds
        text += f" (lon {w:g}..{e:g}, lat {s:g}..{n:g})"
    return text


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, tile=args.tile, truth=args.truth, window=tuple(args.window) if args.window else None,
             progress=not args.quiet, overwrite=args.overwrite)
    return 0


def _number(flag: str, rule: str, ok: Any) -> Any:
    """An argparse type: a number for which ``ok(value)`` holds; messages name the flag and ``rule``
    (not a Python argument)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {rule}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{flag} must be {rule}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``marscraters`` command."""
    from .pyramid import levels_arg

    p = argparse.ArgumentParser(
        prog="marscraters",
        description="Find impact craters on Mars in THEMIS Day IR imagery, make crater catalogs, score them "
                    "against a reference and date surfaces from crater counts. `marscraters demo` runs it all on "
                    "built-in data; `marscraters <command> --help` describes each command.")
    p.add_argument("--version", action="version", version=f"marscraters {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("ingest", help="THEMIS tiles / GeoTIFFs -> chunked Zarr v3 mosaic cube",
                       description="Read georeferenced images (ASU THEMIS Day IR tiles thm_dir_N{lat}_{lon}.png, "
                                   "Mars GeoTIFFs and other GDAL rasters with a Mars CRS) and write them as one "
                                   "chunked Zarr v3 mosaic cube (float32 'ir', NaN for no data, with its CRS), the "
                                   "input of `segment`, `targets` and `browse`. Adjacent images are combined "
                                   "into one mosaic. A plain image without georeferencing (PNG, JPEG...) is "
                                   "placed with --bounds (and --crs).")
    s.add_argument("tiles", nargs="+", help="thm_dir_N{lat}_{lon}.png tiles or Mars GeoTIFFs (or, with --bounds, "
                                             "one plain image: PNG, JPEG...)")
    s.add_argument("--bounds", nargs=4, type=float, metavar=("WEST", "SOUTH", "EAST", "NORTH"),
                   help="place an image that has no georeferencing (a plain PNG or JPEG): the outer edges of its "
                        "pixels, in degrees east/north on the Mars sphere (or in --crs units)")
    s.add_argument("--crs", help="with --bounds: their Mars CRS (default IAU_2015:49900, lon/lat degrees on the Mars "
                                 "sphere; e.g. IAU_2015:49910 for equirectangular metres)")
    s.add_argument("--nodata", type=float, metavar="VALUE",
                   help="a grey level that marks no data in images that do not declare it, e.g. 0 for the black "
                        "collar around a map-projected strip: those pixels become NaN, as a file's own nodata value, "
                        "mask band and alpha band do (the exact value; write a negative one with =, as --nodata=-3.4028235e+38, float32's lowest)")
    s.add_argument("--out", required=True, help="output cube.zarr")
    s.add_argument("--chunk", type=int, default=512, help="storage chunk size in pixels (default 512)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output")
    s.set_defaults(func=_cmd_ingest)

    s = sub.add_parser("download", help="download THEMIS tiles or the Robbins catalogs (cached, resumable)")
    s.add_argument("what", choices=["themis", "robbins"])
    s.add_argument("--tile", action="append", default=[], help="THEMIS tile id such as N-30_030 (repeatable)")
    s.add_argument("--release", default="2012", choices=["2012", "2020"], help="Robbins release")
    s.add_argument("--dest", default=None, help="cache folder (default: $MARSCRATERS_CACHE or the OS cache)")
    s.add_argument("--base-url", default=None, help="mirror base URL")
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("convert", help="read, validate, filter and convert a crater catalog")
    s.add_argument("catalog", help="Robbins 2012/2020 TSV/CSV, plain CSV, craterstats .diam/.scc, or GeoPackage")
    s.add_argument("--out", required=True, help="output .gpkg, .csv, .diam or .scc")
    s.add_argument("--diameter-range", nargs=2, type=float, metavar=("DMIN", "DMAX"), help="km, e.g. 2 32")
    s.add_argument("--bbox", nargs=4, metavar=("WEST", "SOUTH", "EAST", "NORTH"),
                   type=_number("--bbox", "four finite numbers, degrees east and north", math.isfinite),
                   help="keep craters centred in this box, degrees east (either convention) and north")
    s.add_argument("--footprint", help="keep craters inside this mosaic cube.zarr")
    s.add_argument("--errors", choices=["raise", "drop"], default="raise",
                   help="impossible rows (a missing value, |lat| > 90, a diameter <= 0 or over 4000 km: a column in "
                        "metres) and rows repeated exactly: fail (default; repeats only warn) or drop them")
    s.add_argument("--layer", default=None,
                   help="the GeoPackage layer to read (default: 'craters', or the file's only point layer); the "
                        "other commands read the layer this writes")
    s.add_argument("--area-km2", type=_number("--area-km2", "a count area in km² > 0",
                                               lambda v: math.isfinite(v) and v > 0),
                   help="count area in km², replacing the one the catalog records: kept in a .gpkg, written into "
                        ".diam/.scc (which need one), not kept in a .csv")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    s.set_defaults(func=_cmd_convert)

    s = sub.add_parser("targets", help="render a catalog into a target layer on a mosaic's grid")
    s.add_argument("cube", help="mosaic cube.zarr")
    s.add_argument("--catalog", required=True, help="crater catalog to draw (any format `marscraters convert` reads)")
    s.add_argument("--kind", default="filled", choices=["filled", "outline", "ring", "hybrid"],
                   help="target drawn for each crater (default filled; outline = the rim from 0.7 r to r)")
    s.add_argument("--diameter-range", nargs=2, type=float, metavar=("DMIN", "DMAX"), help="km, e.g. 2 32")
    s.add_argument("--errors", choices=["raise", "drop"], default="raise",
                   help="impossible catalog rows (see `convert --help`) and rows repeated exactly: fail (default; "
                        "repeats only warn) or drop them")
    s.add_argument("--out", required=True, help="output targets.zarr")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out store")
    s.set_defaults(func=_cmd_targets)

    s = sub.add_parser("chips", help="cut a mosaic into labelled training chips (PNG + YOLO boxes from a catalog)",
                       description="Cut a georeferenced mosaic cube into square chips with their catalog craters as "
                                   "YOLO boxes (images/, labels/, and index.csv of each chip's bounds): the folder "
                                   "`marscraters train --chips` reads. The mosaic must hold 8-bit grey levels.")
    s.add_argument("cube", help="mosaic cube.zarr (from `marscraters ingest`)")
    s.add_argument("--catalog", required=True, help="crater catalog to label with (any format `marscraters convert` reads)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--size", type=int, default=416, help="chip side in pixels (default 416, the THEMIS crops')")
    s.add_argument("--diameter-range", nargs=2, type=float, metavar=("DMIN", "DMAX"), help="km, e.g. 1 100")
    s.add_argument("--errors", choices=["raise", "drop"], default="raise",
                   help="impossible catalog rows (see `convert --help`) and rows repeated exactly: fail (default; "
                        "repeats only warn) or drop them")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    s.set_defaults(func=_cmd_chips)

    s = sub.add_parser("train", help="train a Symmetric UNet (chips, cubes + catalog, or the synthetic dots)")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--chips", help="folder of labelled chips (images/ + labels/, YOLO boxes)")
    src.add_argument("--cubes", nargs="+", help="Zarr mosaic cubes, one per tile (split at tile level)")
    src.add_argument("--dots", type=int, help="train on N synthetic dot images (the paper's S campaign data)")
    s.add_argument("--catalog", help="catalog for --cubes")
    s.add_argument("--train", default="0:440", help="chip positions for training, START:STOP (default 0:440)")
    s.add_argument("--val", default="440:500", help="chip positions for validation, START:STOP (default 440:500)")
    s.add_argument("--n-train", type=int, help="training tiles for --cubes (default all but --n-val)")
    s.add_argument("--n-val", type=int, default=1, help="validation tiles for --cubes (default 1)")
    s.add_argument("--kind", default="outline", choices=["filled", "outline", "ring", "hybrid"],
                   help="target drawn for each crater (default outline, the shipped models')")
    s.add_argument("--kernel-size", type=int, default=None,
                   help="convolution kernel size (default 3; when resuming, the run's)")
    s.add_argument("--filter-multiple", type=float, default=None,
                   help="multiple of the paper's filter counts (default 1; when resuming, the run's)")
    s.add_argument("--epochs", type=int, default=60, help="passes over the training chips (default 60)")
    s.add_argument("--batch-size", type=int, default=8, help="patches per step (default 8)")
    s.add_argument("--crop", type=int, default=256, help="patch size, a multiple of 128")
    s.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate (default 0.001)")
    s.add_argument("--dice-weight", type=float, default=1.0,
                   help="loss = binary cross-entropy + this times the soft Dice loss (default 1); "
                        "0 = plain binary cross-entropy, the paper's loss")
    s.add_argument("--weight-small-craters", type=float, default=0.0, metavar="PX",
                   help="weight the loss near each crater of d < PX pixels by PX/d (craters of 10 px and more; "
                        "0 = off, the default): small craters count for more than their pixels")
    s.add_argument("--scale", nargs=2, type=float, default=[0.7, 1.3], metavar=("MIN", "MAX"), help="zoom augmentation range (default 0.7 1.3)")
    s.add_argument("--contrast", type=float, default=0.2, help="contrast augmentation, +- this fraction (default 0.2)")
    s.add_argument("--score-every", type=int, default=1,
                   help="crater-level precision, recall and F1 on the validation set every N epochs "
                        "(default 1: every epoch; the others are empty in history.csv)")
    s.add_argument("--seed", type=int, default=0, help="random seed of weights, patches and augmentation (default 0)")
    s.add_argument("--init", metavar="MODEL",
                   help="start from this .keras model's architecture and weights (fine-tuning); a run "
                        "resumed from --out ignores it")
    s.add_argument("--widen", metavar="MULTIPLE", type=_number("--widen", "a number > 0", lambda v: v > 0),
                   help="widen the --init model to this filter multiple first, keeping what it computes "
                        "(Net2WiderNet: new filters copy trained ones), e.g. 1.5")
    s.add_argument("--workers", type=int, default=1,
                   help="threads preparing augmented batches (more keep a GPU busy; default 1)")
    s.add_argument("--value-range", nargs="+", metavar="LOW HIGH|auto",
                   help="the grey levels of --chips or --cubes that map to black and white, e.g. 0 65535 for 16-bit "
                        "chips, or 'auto' to stretch each image on its own levels (default: for chips 0..255 for "
                        "8-bit ones, 0..1 for floats within 0..1, judged over the whole folder; for cubes 0..255)")
    s.add_argument("--restart", action="store_true", help="ignore an earlier run in --out instead of resuming")
    s.add_argument("--out", required=True, help="run folder (checkpoints, history.csv, plots)")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("detect", help="find craters on images (GeoTIFF, PNG, JPEG, PGM, TIFF) or folders of them",
                       description="Find craters on grey images (a GeoTIFF, whose georeferencing gives the pixel "
                                   "size, or PNG, JPEG, PGM or TIFF with --pixel-size; RGB is made grey) of any size "
                                   "with the shipped model (or --model), and write them as a CSV in the images' "
                                   "pixels. Images finer than 50 m per pixel (CTX, HRSC) get the shipped model for fine "
                                   "imagery, the others the THEMIS model, unless --model names one. The network runs "
                                   "on an image pyramid: the image's own pixels, then halves of them until its "
                                   "biggest crater is in reach (images coarser than ~100 m are enlarged to it "
                                   "first). Several images, or a folder of them, are detected in one "
                                   "run into one CSV with an `image` column. For georeferenced mosaics in lon/lat "
                                   "use ingest + segment + catalog instead.")
    s.add_argument("image", nargs="+", help="image files, or folders: every image file in them")
    s.add_argument("--pixel-size", type=_number("--pixel-size", "a number of metres per pixel from 1 to 1000",
                                                   lambda v: 1 <= v <= 1000),
                   help="metres per pixel (THEMIS Day IR: 100; the 256 px/deg ASU tiles: 231; HRSC: 12.5; CTX: 6); "
                        "default: a GeoTIFF's own, required for images without georeferencing")
    s.add_argument("--model", help="model file (default: the shipped model for the image's pixel size)")
    # below 1: the verifier keeps scores >= its threshold, and refuses a threshold of 1
    s.add_argument("--min-score", type=_number("--min-score", "a number from 0 up to (not including) 1",
                                                 lambda v: 0 <= v < 1),
                   default=None, help="keep craters scored at least this, 0..1; with the verifier it replaces the "
                        "verifier's threshold, so a lower one keeps more and 0 keeps every candidate it scored (default: the verifier's own threshold, 0.55 "
                        "for the shipped THEMIS model and 0.60 for finer images; all craters with --no-verify)")
    s.add_argument("--out", required=True,
                   help="output CSV: x, y, diameter_px, diameter_m, score, level (and image first, for several "
                        "images)")
    s.add_argument("--levels", type=levels_arg, default="auto",
                   help="image pyramid: 'auto' (as deep as the image's size needs; default) or the most levels to "
                        "run, 1 for a single scale")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    s.add_argument("--no-verify", action="store_true",
                   help="skip the second-stage crater verifier the model names (more craters, more false ones)")
    s.add_argument("--tta", type=int, default=None, choices=[1, 2, 4, 8],
                   help="test-time augmentation: average this many orientations of the image (N times the work; "
                        "default: the model's own setting)")
    from .extract_ops import add_finder_engine_argument
    from .model import add_precision_argument

    add_precision_argument(s)
    add_finder_engine_argument(s)
    s.add_argument("--value-range", nargs="+", metavar="LOW HIGH|auto",
                   help="the grey levels that map to black and white, e.g. 0 255 or 0 1, or 'auto' for a per-image "
                        "stretch (default: 0..255 for 8-bit images, 0..1 for floats within 0..1, else auto; also "
                        "auto, with a warning, for images of very low contrast)")
    s.add_argument("--nodata", type=float, metavar="VALUE",
                   help="a grey level that marks no data in images that do not declare it, e.g. 0 for the black "
                        "collar around a map-projected strip (detect warns when it sees one): those pixels become "
                        "NaN, featureless ground to the network, as a file's own nodata value, mask band and alpha "
                        "band do (the exact value; write a negative one with =, as --nodata=-3.4028235e+38, float32's lowest)")
    s.set_defaults(func=_cmd_detect)

    s = sub.add_parser("evaluate", help="crater-level precision, recall and F1 of detections against a reference")
    s.add_argument("pred", help="detections: PixelCraters CSV, YOLO .txt labels or a catalog (GeoPackage, CSV...); "
                                "pixel tables that both have an `image` column (as detect writes for several "
                                "images) match craters only within the same image")
    s.add_argument("truth", help="reference: same kinds, e.g. the Robbins TSV, or a chip's YOLO labels (.txt)")
    s.add_argument("--image-size", nargs=2, metavar=("WIDTH", "HEIGHT"),
                   type=_number("--image-size", "a whole number of pixels > 0", lambda v: v > 0 and v.is_integer()),
                   help="the image size of YOLO .txt labels (default: read from the image of the same name beside "
                        "them or in ../images/)")
    s.add_argument("--rule", default="all", choices=["all", "deepmoon", "iou", "pycda"],
                   help="matching rule (default all three, side by side; evaluate() in Python defaults to deepmoon)")
    s.add_argument("--d-min", type=_number("--d-min", "a diameter > 0 (leave it out for no floor)", lambda v: v > 0),
                   help="diameter floor for incomplete labels, in the tables' units: km for catalogs, px for "
                        "pixel tables (default: none)")
    s.add_argument("--footprint", help="restrict the truth to this mosaic cube.zarr: the craters centred on its "
                                       "imaged pixels (not on its no data)")
    s.add_argument("--json", help="also write the scores as JSON")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    s.add_argument("--by", metavar="COLUMN",
                   help="a column of both tables naming each crater's image or tile: with --bootstrap, resample those "
                        "(pixel tables without an `image` column are also matched image by image by it)")
    s.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="95%% intervals of P, R and F1 from N resamples of the --by groups")
    s.add_argument("--errors", choices=["raise", "drop"], default="raise",
                   help="impossible rows in either table (a missing value, |lat| > 90, a diameter <= 0 or, in a "
                        "catalog, over 4000 km: a column in metres) and rows repeated exactly: fail (default; "
                        "repeats only warn) or drop them with a warning")
    s.set_defaults(func=_cmd_evaluate)

    from .assemble import add_catalog_parser
    from .browse import add_browse_parser
    from .chronology import add_age_parser
    from .experiments import add_experiments_parser
    from .segment import add_segment_parser

    add_experiments_parser(sub)
    add_segment_parser(sub)
    add_catalog_parser(sub)
    add_age_parser(sub)
    add_browse_parser(sub)

    s = sub.add_parser("info", help="describe a mosaic cube, a probability or target store, or a catalog",
                       description="Describe a file that marscraters reads or writes: a mosaic cube "
                                   "(from `ingest`), a crater probability store (from `segment`) or a target "
                                   "layer (from `targets`): its variables, size, chunks and grid; or a crater "
                                   "catalog (GeoPackage, CSV, Robbins TSV, craterstats .diam/.scc) or the pixel "
                                   "craters `detect` writes: summary statistics of its columns and its metadata.")
    s.add_argument("path", help="a .zarr store or a catalog file")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser(
        "demo", help="run the whole pipeline on a built-in synthetic surface of known age (or a real tile)",
        description="Synthetic THEMIS-like surface of known age -> Zarr cube -> segmentation on a local Dask "
        "cluster -> GeoPackage catalog -> precision/recall/F1 -> model age -> HTML map and figures.",
    )
    s.add_argument("--out", default="demo-out", help="output folder (default ./demo-out)")
    s.add_argument("--tile", help="run on a real THEMIS tile / Mars GeoTIFF / Zarr cube instead")
    s.add_argument("--truth", help="with --tile: reference catalog to score against (e.g. the Robbins 2012 TSV)")
    s.add_argument("--window", type=float, nargs=4, metavar=("WEST", "SOUTH", "EAST", "NORTH"),
                   help="with --tile: the part to run on, in the image's x/y coordinates (default: 2x2 deg at its centre)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace the outputs (cube.zarr, craters.gpkg, summary.json...) that --out already holds")
    s.set_defaults(func=_cmd_demo)
    # -q/-v after the command too (`marscraters detect img.png ... -q`); SUPPRESS keeps a flag given
    # before the command from being reset by the command's own default
    for command in sub.choices.values():
        for dest, flags, text in (("quiet", ("-q", "--quiet"), "no progress bars"),
                                  ("verbose", ("-v", "--verbose"), "log debug messages")):
            own = command._option_string_actions  # `catalog` has its own --quiet (for its standalone parser)
            mine = [own[f] for f in flags if f in own]
            if mine:
                # the command's own flag also answers to the other spelling (`catalog -q`), shown in its help
                action = mine[0]
                action.default = argparse.SUPPRESS
                action.option_strings[:] = [f for f in flags if f in action.option_strings or f not in own]
                own.update({f: action for f in action.option_strings})
            else:
                command.add_argument(*flags, dest=dest, action="store_true", default=argparse.SUPPRESS, help=text)
    return p


def _command_flags(parser: argparse.ArgumentParser, command: str) -> set[str]:
    """The option strings of one subcommand (``--errors``, ``-q``...)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices[command]._option_string_actions)


#: Python parameters that a subcommand's flag sets under another name than its own (argparse's
#: dest): ``train --dots N --crop SIZE`` -> ``dots_training_set(n, size)``, ...
_PYTHON_NAMES: dict[str, dict[str, str]] = {
    "train": {"n": "--dots", "size": "--crop", "weight_small_craters_px": "--weight-small-craters"},
    "detect": {"pixel_size_m": "--pixel-size"},
    "evaluate": {"n_boot": "--bootstrap"},
}


def _command_names(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """The Python names of one subcommand's flags and their option strings (``{"batch_size":
    "--batch-size", "resume": "--no-resume", ...}``): its argparse dests, and :data:`_PYTHON_NAMES`."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = {}
    for action in sub.choices[command]._actions:
        long = [f for f in action.option_strings if f.startswith("--")]
        if long and action.dest not in ("help", argparse.SUPPRESS):
            names[action.dest] = long[0]
    return {**names, **_PYTHON_NAMES.get(command, {})}


@contextlib.contextmanager
def _cli_warnings(flags: Collection[str], names: dict[str, str] | None = None) -> Iterator[None]:
    """Warnings printed as ``warning: message`` (no Python file and source line), in the CLI's terms."""

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"warning: {cli_message(str(message), flags, names=names)}", file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``marscraters`` command."""
    argv = _join_value_range(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = _command_flags(parser, args.command)
    # messages name Python's parameters (batch_size=0); the command line names its own flags
    names = _command_names(parser, args.command)
    # our own messages at INFO; third-party chatter (pyogrio, distributed) only at WARNING
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # distributed installs its own INFO handlers; its cluster start/stop chatter hides our output.
    # Its import sets the levels below from dask's config, so say it there too (the worker
    # processes of a local cluster get that config); dask came with the parser (segment)
    import dask.config

    dask.config.set({"logging.distributed": "debug" if args.verbose else "warning"})
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        with _cli_warnings(flags, names):
            return int(args.func(args) or 0)
    except MarsCratersError as exc:
        # messages name Python's fixes (errors='drop'); the command line names its own flags
        print(f"marscraters {args.command}: error: {cli_message(str(exc), flags, names=names)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(args, argv), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`marscraters info cube.zarr | head`): no traceback, and none again
        # when the interpreter flushes stdout on exit (Python's documented recipe)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file descriptor (captured): nothing to flush
            pass
        return 1


def _interrupted(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """What Ctrl-C left behind: nothing (every output is written atomically), except the blocks of
    an unfinished `segment`, kept to resume (the message shows the command that resumes)."""
    if args.command == "segment":
        from .segment import interrupted_message

        return interrupted_message(args.out, ["marscraters", *argv])
    return "interrupted; no partial output was kept"


if __name__ == "__main__":
    sys.exit(main())
