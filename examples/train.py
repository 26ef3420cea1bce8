"""Train a Symmetric UNet, then rerun a (tiny) piece of the paper's S campaign.

Mirrors docs/guide/train.md.  Usage::

    python examples/train.py [--chips DIR] [--epochs N] [--out DIR] [--fast]

Training data: with --chips (or the real THEMIS crops in ../shared/data/themis-dayir-crops, when
present and not --fast) labelled chips; otherwise a synthetic THEMIS-like cube cut into patches
with its true catalog, the way the paper cut THEMIS tiles with the Robbins catalog.  Then it reruns
test 1 of the paper's campaign S (synthetic dots).  --fast only trains one epoch on a few 128 x 128
patches (add --campaign for one epoch of campaign S test 1 on four dot images too).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

import marscraters as mc
from marscraters.experiments import run_campaign
from marscraters.synthetic import synthetic_surface
from marscraters.training import TrainConfig, chips_training_set, cube_training_set, train

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO / ".." / "shared" / "data"))


def synthetic_sets(out: Path, fast: bool):
    """Training and validation sets cut from two synthetic cubes (a tile-level split)."""
    cubes, catalogs = [], []
    for i, west in enumerate((30.0, 31.0)):
        size = 0.45 if fast else 1.0  # degrees (0.45: 2 x 2 patches of 128 px); 592.747 px/deg is THEMIS' ~100 m/px
        surface = synthetic_surface((west, -size, west + size, 0.0), 592.747, seed=i, n_per_km2_above_1km=8e-3, dmax_km=16)
        cubes.append(mc.ingest(surface.mosaic, out / f"cube{i}.zarr", overwrite=True, progress=False))
        catalogs.append(surface.catalog)
    truth = pd.concat(catalogs, ignore_index=True)  # one catalog for both cubes, like Robbins for all tiles
    craters = mc.make_catalog(truth["lat"], truth["lon"], truth["diameter_km"])
    train_set = cube_training_set([cubes[0]], craters, size=128, diameter_range=(1, 32))
    val_set = cube_training_set([cubes[1]], craters, size=128, diameter_range=(1, 32))
    if fast:
        train_set, val_set = train_set.subset(range(min(4, len(train_set)))), val_set.subset(range(min(2, len(val_set))))
    return train_set, val_set


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", help="folder of labelled chips (images/ + labels/)")
    p.add_argument("--epochs", type=int, default=None, help="default 1 with --fast, else 5")
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="one epoch on a few 128 x 128 patches, for CI")
    p.add_argument("--campaign", action="store_true", help="with --fast: also one epoch of campaign S test 1")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = args.epochs or (1 if args.fast else 5)

    chips = Path(args.chips) if args.chips else SHARED / "themis-dayir-crops"
    if args.chips or (not args.fast and chips.is_dir()):
        from marscraters.chips import read_chips

        labelled = read_chips(chips)
        train_set, val_set = chips_training_set(labelled, range(0, 40)), chips_training_set(labelled, range(440, 450))
        crop = 256
    else:
        train_set, val_set = synthetic_sets(out, args.fast)
        crop = 128
    print(f"training on {len(train_set)} images, validating on {len(val_set)}")

    config = TrainConfig(kind="outline", epochs=epochs, crop=crop, batch_size=4, score_every=1, augment=True)
    result = train(train_set, val_set, out / "run", config, verbose=2)
    last = result["history"][-1]
    print(f"epoch {len(result['history'])}: loss {last['loss']:.3f}, val crater F1 {last.get('val_crater_f1', float('nan')):.3f}")
    print("best model:", result["best"])  # a path: segment_to_zarr(ds, out, model=result["best"])

    if args.fast and not args.campaign:
        return
    # The paper's campaigns: S = dots/filled, C = chips/filled, O = chips/outline; tests 1-8 are the architectures.
    table = run_campaign(
        "S", tests="1", epochs=epochs, out_dir=out / "experiments", gpus=0, progress=False, verbose=0,
        n_train=4 if args.fast else 32, n_val=2 if args.fast else 8,
    )
    print(table[["test", "kernel", "filter_multiple", "epochs_done", "loss_last", "f1_last", "seconds_per_epoch"]].to_string(index=False))
    print("campaign outputs:", sorted(p.name for p in (out / "experiments").glob("campaign_S*")))


if __name__ == "__main__":
    main()
