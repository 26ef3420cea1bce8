"""Training data, augmentation, losses, crater-level validation scores and the training loop.

Three sources of training data, each a :class:`TrainingSet` of images plus pixel-space craters:

* :func:`chips_training_set`: labelled image chips, such as the real THEMIS crops with Robbins
  labels (``../shared/data/themis-dayir-crops``);
* :func:`cube_training_set`: Zarr mosaic cubes plus a catalog, cut into 512x512 sub-images as in
  the paper, with a seedable *tile-level* train/validation split (:func:`split_tiles`);
* :func:`dots_training_set`: the paper's synthetic grey dots on black with solid-circle targets.

Targets are drawn from the crater lists *after* augmentation (:func:`augment`), so flips,
rotations and rescaling keep them exact.  :func:`train` runs Keras ``fit`` with binary
cross-entropy (optionally plus soft Dice), pixel accuracy, and, at the end of every epoch,
crater-level precision, recall and F1 on the validation images (:class:`CraterScores`), the
yardstick the paper says pixel accuracy is not.  It writes checkpoints, a CSV history, seconds
per epoch and PNG plots, and resumes from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from .errors import InvalidArgumentError, ModelError
from .model import MULTIPLE, _check_tta, normalise_image, pad_to_multiple, predict_image

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "TrainingSet",
    "chips_training_set",
    "cube_training_set",
    "dots_training_set",
    "split_tiles",
    "augment",
    "PatchSequence",
    "bce_dice_loss",
    "crater_scores",
    "CraterScores",
    "TrainConfig",
    "can_resume",
    "train",
    "plot_history",
]

log = logging.getLogger(__name__)

# Craters smaller than this (px) are drawn in targets but the labels below ~10 px are incomplete.
DEFAULT_SCORE_DMIN_PX = 16.0


# --------------------------------------------------------------------------------------------
# data sources
# --------------------------------------------------------------------------------------------
@dataclass
class TrainingSet:
    """Images and their craters, ready for training or validation.

    Attributes
    ----------
    images
        ``(N, H, W)`` float32 network inputs in 0..1 (already normalised, NaN filled).
    craters
        PixelCraters with an ``image`` column (index into ``images``), ``x``, ``y``, ``diameter_px``.
    names
        One name per image (provenance).
    targets
        Optional ``(N, H, W)`` uint8 fixed targets (the synthetic dots); when None, targets are
        drawn from ``craters`` after augmentation.
    """

    images: np.ndarray
    craters: pd.DataFrame
    names: list[str] = field(default_factory=list)
    targets: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def craters_of(self, i: int) -> pd.DataFrame:
        """The craters of image ``i``."""
        return self.craters[self.craters["image"] == i][["x", "y", "diameter_px"]].reset_index(drop=True)

    def subset(self, indices: Sequence[int]) -> "TrainingSet":
        """A new set with the images at ``indices`` (renumbered from 0)."""
        indices = [int(i) for i in indices]
        remap = {old: new for new, old in enumerate(indices)}
        cr = self.craters[self.craters["image"].isin(remap)].copy()
        cr["image"] = cr["image"].map(remap)
        return TrainingSet(
            self.images[indices],
            cr.reset_index(drop=True),
            [self.names[i] for i in indices] if self.names else [],
            None if self.targets is None else self.targets[indices],
        )


def _normalise_stack(images: np.ndarray, value_range: tuple[float, float] | str = (0.0, 255.0)) -> np.ndarray:
    return np.stack([normalise_image(img, value_range=value_range) for img in images]).astype(np.float32)


def _chips_value_range(images: np.ndarray) -> tuple[float, float]:
    """The grey scale of a whole stack of chips, by :func:`marscraters.model.guess_value_range`'s
    rule: 0..1 for float levels within 0..1, 0..255 for levels within 0..255 (8-bit chips, as
    before); levels beyond are refused, naming the fix."""
    from .model import guess_value_range

    lo, hi, floating = math.inf, -math.inf, False
    for image in images:  # chip by chip: a copy of a 600-chip stack would take 400 MB
        finite = image[np.isfinite(image)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
            # 8-bit chips hold whole levels; a float chip set within 0..1 does not (both decode to float32)
            floating = floating or not np.array_equal(finite, np.round(finite))
    if lo > hi:
        return (0.0, 255.0)  # nothing to judge; normalise_image names the empty chip
    if lo < 0 or hi > 255:
        raise InvalidArgumentError(
            f"the chips' grey levels span {lo:g}..{hi:g}, beyond the 8-bit 0..255 scale (16-bit or calibrated "
            "chips?); pass their scale in their own units, value_range=(low, high) (CLI: --value-range LOW HIGH), "
            "or value_range='auto' to stretch each chip on its own levels")
    # the scale only (an empty sample: no contrast judgement, which would make it 'auto')
    scale = guess_value_range(np.empty(0), floating=floating, lo=lo, hi=hi)
    return (0.0, 255.0) if isinstance(scale, str) else scale


def chips_training_set(
    chips: Any, indices: Sequence[int] | None = None, *, role: str = "training",
    value_range: tuple[float, float] | str | None = None,
) -> TrainingSet:
    """A training set from labelled chips (:func:`marscraters.chips.read_chips`).

    Parameters
    ----------
    chips
        A :class:`marscraters.chips.Chips` (or a folder path to read).
    indices
        Positions of the chips to use (default all).
    role
        ``"training"`` or ``"validation"``: named in the messages; chips that hold no crater at
        all are refused (a model trained on them would learn to find nothing, and a validation
        would have nothing to score against).
    value_range
        The grey levels mapped to 0..1: ``(low, high)`` in the chips' units, or ``"auto"`` to
        stretch each chip on its own levels (:func:`marscraters.model.normalise_image`).  None
        (default) judges all of ``chips`` at once (so a training and a validation set of one
        folder share it) by :func:`marscraters.model.guess_value_range`'s rule: 0..255 for
        8-bit chips, 0..1 for float chips within 0..1; chips beyond 0..255 are refused.

    Raises
    ------
    InvalidArgumentError
        If no chip is selected, a position is outside the chips, the chips hold no crater, or
        (``value_range=None``) their grey levels go beyond 0..255.

    Examples
    --------
    >>> tr = chips_training_set("chips", range(0, 6))  # doctest: +SKIP
    >>> va = chips_training_set("chips", range(6, 8), role="validation")  # doctest: +SKIP
    """
    from .chips import Chips, read_chips

    if not isinstance(chips, Chips):
        chips = read_chips(chips)
    idx = list(range(len(chips.names))) if indices is None else [int(i) for i in indices]
    flag = "--val" if role == "validation" else "--train"
    if not idx:
        raise InvalidArgumentError(
            f"no chips selected for the {role} set; choose at least one position in 0..{len(chips.names) - 1} "
            f"(on the command line, a non-empty {flag} START:STOP within 0:{len(chips.names)})")
    bad = [i for i in idx if not 0 <= i < len(chips.names)]
    if bad:
        raise InvalidArgumentError(
            f"chip positions {bad[:5]}{' ...' if len(bad) > 5 else ''} are outside the {len(chips.names)} chips "
            f"read; choose positions in 0..{len(chips.names) - 1} (on the command line, --train/--val spans "
            f"within 0:{len(chips.names)})")
    cr = chips.craters[chips.craters["chip"].isin(idx)].copy()
    if not len(cr):
        # without labels every target is empty: the model would learn to find nothing, and the
        # first validation (after a whole epoch) would fail with a message about the reference
        # craters instead
        folder = Path(chips.folder) if chips.folder is not None else None
        where = (f"{folder / 'labels'} (one <chip name>.txt of YOLO boxes per image)" if folder is not None
                 else "a labels/ folder beside images/")
        raise InvalidArgumentError(
            f"the {len(idx)} {role} chips (positions {idx[0]}..{idx[-1]}) hold no crater at all: no label file gave "
            f"a box. Put the labels in {where}, or choose chips that have craters (CLI {flag} START:STOP).")
    if value_range is None:
        value_range = _chips_value_range(chips.images)
    remap = {old: new for new, old in enumerate(idx)}
    cr["image"] = cr["chip"].map(remap)
    return TrainingSet(
        _normalise_stack(chips.images[idx], value_range),
        cr[["image", "x", "y", "diameter_px"]].reset_index(drop=True),
        [chips.names[i] for i in idx],
    )


def dots_training_set(n: int, size: int = 128, *, seed: int = 0) -> TrainingSet:
    """The paper's synthetic dataset (grey dots on black, solid-circle targets) as a training set.

    Raises
    ------
    InvalidArgumentError
        If ``n`` is not a whole number >= 1: an empty set would fail only in the first epoch.
    """
    from .synthetic import synthetic_dots

    if not _is_whole(n, 1):
        raise InvalidArgumentError(f"n, the number of synthetic dot images, must be a whole number >= 1, got {n!r}; "
                                   "e.g. n=128")

    images, targets = synthetic_dots(n, size, seed=seed)
    empty = pd.DataFrame({"image": pd.Series(dtype=int), "x": [], "y": [], "diameter_px": []})
    return TrainingSet((images / 255.0).astype(np.float32), empty, [f"dots{i}" for i in range(n)], targets)


def split_tiles(items: Sequence[Any], n_train: int, n_val: int, *, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """Random, seedable train/validation split of whole tiles (no tile in both).

    The paper drew 6 training and 3 validation tiles at random from the 24 equatorial tiles.
    """
    items = list(items)
    if n_train < 1 or n_val < 0 or n_train + n_val > len(items):
        raise InvalidArgumentError(
            f"cannot split {len(items)} tiles into {n_train} training and {n_val} validation tiles"
        )
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order[:n_train]], [items[i] for i in order[n_train : n_train + n_val]]


def cube_training_set(
    mosaics: Sequence[Any],
    catalog: Any,
    *,
    size: int = 512,
    diameter_range: tuple[float, float] | None = (2.0, 32.0),
    fill: bool = True,
    min_valid_fraction: float = 0.5,
    value_range: tuple[float, float] | str = (0.0, 255.0),
) -> TrainingSet:
    """Cut mosaic cubes into ``size`` x ``size`` sub-images with their craters (paper section 2.1).

    Parameters
    ----------
    mosaics
        Mosaic Datasets or paths of Zarr cubes (one per tile; split them with :func:`split_tiles`).
    catalog
        A Catalog (GeoDataFrame) covering the mosaics.
    size
        Sub-image size; a multiple of 128 (the paper used 512).
    diameter_range
        Craters kept, in km (the paper used 2-32 km).
    fill
        Fill missing data with the tile mean first (the paper's preprocessing).
    min_valid_fraction
        Sub-images with less valid data than this are skipped.
    value_range
        Grey levels mapped to 0..1 (default the 8-bit scale of THEMIS), or ``"auto"`` to stretch
        each sub-image on its own levels (:func:`marscraters.model.normalise_image`).
    """
    from .catalog import filter_catalog
    from .crs import Grid
    from .mosaic import fill_missing, open_mosaic

    if size % MULTIPLE:
        raise InvalidArgumentError(f"size={size} must be a multiple of {MULTIPLE}")
    images, rows, names = [], [], []
    for m in mosaics:
        ds = open_mosaic(m) if not hasattr(m, "data_vars") else m
        name = str(ds.attrs.get("source", m if isinstance(m, (str, Path)) else "mosaic"))
        grid = Grid.from_dataset(ds)
        cat = filter_catalog(catalog, diameter_range=diameter_range, footprint=ds)
        if len(cat):
            cx, cy = grid.lonlat_to_pixel(cat["lon"].to_numpy(), cat["lat"].to_numpy())
            dx, dy = grid.km_to_pixels(cat["diameter_km"].to_numpy(), cat["lat"].to_numpy())
            d = (np.asarray(dx) + np.asarray(dy)) / 2.0
        else:
            cx = cy = d = np.empty(0)
        src = fill_missing(ds) if fill else ds
        ny, nx = grid.shape
        for r0 in range(0, ny - size + 1, size):
            for c0 in range(0, nx - size + 1, size):
                window = src["ir"].isel(y=slice(r0, r0 + size), x=slice(c0, c0 + size)).values
                valid = ds["ir"].isel(y=slice(r0, r0 + size), x=slice(c0, c0 + size)).notnull().values.mean()
                if valid < min_valid_fraction:
                    continue
                try:
                    image = normalise_image(window, value_range=value_range)
                except InvalidArgumentError:  # a constant window has nothing to learn from
                    continue
                i = len(images)
                images.append(image)
                inside = (cx >= c0 - d / 2) & (cx < c0 + size + d / 2) & (cy >= r0 - d / 2) & (cy < r0 + size + d / 2)
                rows.append(pd.DataFrame({"image": i, "x": cx[inside] - c0, "y": cy[inside] - r0, "diameter_px": d[inside]}))
                names.append(f"{name}[{r0}:{r0 + size},{c0}:{c0 + size}]")
    if not images:
        raise InvalidArgumentError("the mosaics gave no sub-image with enough valid data")
    return TrainingSet(np.stack(images), pd.concat(rows, ignore_index=True), names)


def mosaics_training_set(
    mosaics: Sequence[Any],
    catalog: Any,
    *,
    diameter_range: tuple[float | None, float | None] | None = None,
    value_range: tuple[float, float] | None = (0.0, 255.0),
) -> TrainingSet:
    """Whole georeferenced images (crops) as training images, labelled from a catalog.

    Each Mosaic (for example from :func:`marscraters.chips.crop_mosaic`) is one image; its
    craters are the catalog's on its grid (:func:`marscraters.targets.catalog_pixels`, the target
    layers' mapping), including craters centred off the image whose rims reach into it, which
    the targets then draw cut by the edge, as the chips' restored circles are.  As on the chips
    of :func:`marscraters.chips.write_chips`, a crater is labelled only where the image shows
    it: when at least half (:data:`marscraters.chips.MIN_VALID_DISK`) of its disk's pixels on
    the image hold data (no data is shown to the network as a flat grey, and a label there would
    teach it to see a crater in one); a warning counts the others.

    Parameters
    ----------
    mosaics
        Mosaics of one size (or Zarr cube paths).
    catalog
        A Catalog covering them.
    diameter_range
        ``(min_km, max_km)`` of the craters labelled.
    value_range
        Grey levels mapped to 0..1 (default the 8-bit scale of the THEMIS crops); None judges
        each image by :func:`marscraters.model.guess_value_range`'s rule.
    """
    from .chips import MIN_VALID_DISK, _valid_disk_share
    from .mosaic import open_mosaic
    from .targets import catalog_pixels

    if not len(mosaics):
        raise InvalidArgumentError("mosaics_training_set needs at least one mosaic")
    images, rows, names = [], [], []
    dropped: dict[str, int] = {}
    for i, m in enumerate(mosaics):
        ds = open_mosaic(m) if not hasattr(m, "data_vars") else m
        values = np.asarray(ds["ir"].values, dtype=np.float32)
        if images and values.shape != images[0].shape:
            raise InvalidArgumentError(f"the mosaics must share one size: {ds.attrs.get('source', i)} is "
                                       f"{values.shape[1]} x {values.shape[0]} px, the first {images[0].shape[1]} x "
                                       f"{images[0].shape[0]}; cut them to one size first (marscraters.chips.write_chips)")
        if value_range is None:
            from .model import guess_value_range

            scale = guess_value_range(values, floating=False)
        else:
            scale = value_range
        images.append(normalise_image(values, value_range=scale))  # no data becomes the mean
        px = catalog_pixels(ds, catalog, diameter_range=diameter_range, inside="overlap")
        names.append(str(ds.attrs.get("source", f"mosaic{i}")))
        valid = np.isfinite(values)
        if len(px) and not valid.all():
            # write_chips's rule: the filled grey shows no crater
            shown = _valid_disk_share(valid, px["x"].to_numpy(), px["y"].to_numpy(), px["width_px"].to_numpy(),
                                      px["height_px"].to_numpy()) >= MIN_VALID_DISK
            if not shown.all():
                dropped[names[-1]] = int((~shown).sum())
            px = px[shown]
        rows.append(pd.DataFrame({"image": i, "x": px["x"], "y": px["y"], "diameter_px": px["diameter_px"]}))
    if dropped:
        where = ", ".join(f"{k} ({v})" for k, v in list(dropped.items())[:5]) + (" ..." if len(dropped) > 5 else "")
        warnings.warn(
            f"left {sum(dropped.values())} catalog crater(s) unlabelled because less than {MIN_VALID_DISK:.0%} of "
            f"their disk on the image holds data (the network sees no data as a flat grey): {where}",
            UserWarning, stacklevel=2)
    return TrainingSet(np.stack(images).astype(np.float32), pd.concat(rows, ignore_index=True), names)


# --------------------------------------------------------------------------------------------
# augmentation
# --------------------------------------------------------------------------------------------
def augment(
    image: np.ndarray,
    craters: pd.DataFrame,
    rng: np.random.Generator,
    *,
    flips: bool = True,
    rotations: bool = True,
    contrast: float = 0.2,
    scale: tuple[float, float] = (1.0, 1.0),
    target: np.ndarray | None = None,
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray | None]:
    """Randomly flip, rotate (by 90° steps), rescale and change the contrast of one image.

    Craters (``x``, ``y``, ``diameter_px``) are transformed with the image, so targets drawn
    from them afterwards stay exact.  A fixed ``target`` image, when given, is transformed too.
    ``scale`` draws a zoom factor log-uniformly, so one model learns several pixel scales (the
    100 m/px controlled mosaics and the 231 m/px ASU tiles).
    """
    from skimage.transform import rescale

    img = image
    x = craters["x"].to_numpy(float).copy()
    y = craters["y"].to_numpy(float).copy()
    d = craters["diameter_px"].to_numpy(float).copy()
    lo, hi = scale
    if hi > lo or lo != 1.0:
        s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        if abs(s - 1.0) > 1e-3:
            img = rescale(img, s, order=1, anti_aliasing=s < 1, preserve_range=True).astype(np.float32)
            if target is not None:
                target = (rescale(target.astype(np.float32), s, order=0, preserve_range=True) > 0.5).astype(np.uint8)
            # pixel centres: (i + 0.5) * s - 0.5
            x, y, d = (x + 0.5) * s - 0.5, (y + 0.5) * s - 0.5, d * s
    h, w = img.shape
    if flips and rng.random() < 0.5:
        img = img[:, ::-1]
        target = None if target is None else target[:, ::-1]
        x = (w - 1) - x
    if flips and rng.random() < 0.5:
        img = img[::-1, :]
        target = None if target is None else target[::-1, :]
        y = (h - 1) - y
    if rotations:
        k = int(rng.integers(0, 4))
        for _ in range(k):  # rot90 counter-clockwise: (row, col) -> (W-1-col, row)
            h, w = img.shape
            img = np.rot90(img)
            target = None if target is None else np.rot90(target)
            x, y = y.copy(), (w - 1) - x
    if contrast > 0:
        gain = float(np.exp(rng.uniform(-contrast, contrast)))
        bias = float(rng.uniform(-contrast, contrast)) * 0.25
        mean = float(img.mean())
        img = np.clip((img - mean) * gain + mean + bias, 0.0, 1.0)
    out = pd.DataFrame({"x": x, "y": y, "diameter_px": d})
    return np.ascontiguousarray(img, dtype=np.float32), out, (None if target is None else np.ascontiguousarray(target))


def _random_crop(
    image: np.ndarray, craters: pd.DataFrame, size: int, rng: np.random.Generator, target: np.ndarray | None
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray | None]:
    h, w = image.shape
    if h < size or w < size:  # pad by reflection up to the crop size
        ph, pw = max(size - h, 0), max(size - w, 0)
        image = np.pad(image, ((0, ph), (0, pw)), mode="reflect")
        if target is not None:
            target = np.pad(target, ((0, ph), (0, pw)), mode="reflect")
        # the reflected strip shows mirrored craters: label them too, or they teach "no crater"
        if ph:
            craters = _reflected_craters(craters, "y", h, h + ph)
        if pw:
            craters = _reflected_craters(craters, "x", w, w + pw)
        h, w = image.shape
    r0 = int(rng.integers(0, h - size + 1))
    c0 = int(rng.integers(0, w - size + 1))
    cr = craters.assign(x=craters["x"] - c0, y=craters["y"] - r0)
    r = cr["diameter_px"] / 2
    keep = (cr["x"] + r >= -0.5) & (cr["x"] - r <= size - 0.5) & (cr["y"] + r >= -0.5) & (cr["y"] - r <= size - 0.5)
    tgt = None if target is None else target[r0 : r0 + size, c0 : c0 + size]
    return image[r0 : r0 + size, c0 : c0 + size], cr[keep].reset_index(drop=True), tgt


def _reflected_craters(craters: pd.DataFrame, axis: str, n: int, extent: int) -> pd.DataFrame:
    """Craters plus their copies in ``np.pad(mode="reflect")`` of an axis of ``n`` pixels to ``extent``.

    "reflect" mirrors about the end pixels' centres, so the padded image repeats with period
    ``2 (n - 1)``: a crater at ``v`` reappears at ``2 m (n - 1) - v`` and ``2 m (n - 1) + v``.
    """
    period = 2 * (n - 1)
    if period <= 0:
        return craters
    v = craters[axis]
    copies = [craters]
    for m in range(1, extent // period + 2):
        copies += [craters.assign(**{axis: m * period - v}), craters.assign(**{axis: m * period + v})]
    return pd.concat(copies, ignore_index=True)


def _kept_for_targets(craters: pd.DataFrame, min_diameter_px: float) -> pd.DataFrame:
    return craters[craters["diameter_px"] >= min_diameter_px]


# --------------------------------------------------------------------------------------------
# Keras data pipeline
# --------------------------------------------------------------------------------------------
def _keras() -> Any:
    from .model import _keras as load

    return load()


class PatchSequence:
    """Batches of augmented ``crop`` x ``crop`` patches and their targets, for ``model.fit``.

    Built as a :class:`keras.utils.PyDataset` subclass on first use (so importing this module
    does not import Keras).  Each epoch visits every image once, in a new random order, with a
    new random augmentation and crop, all drawn from ``(seed, epoch, batch, position)``.
    ``epoch`` numbers the first epoch (0-based): a resumed run starts at its own, so it draws the
    patches an uninterrupted run would.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        keras = _keras()

        class _PatchSequence(keras.utils.PyDataset):
            def __init__(
                self,
                data: TrainingSet,
                *,
                kind: str = "filled",
                batch_size: int = 8,
                crop: int = 256,
                augment_data: bool = True,
                scale: tuple[float, float] = (1.0, 1.0),
                contrast: float = 0.2,
                min_diameter_px: float = 0.0,
                target_options: dict | None = None,
                seed: int = 0,
                workers: int = 1,
                weight_small_craters_px: float = 0.0,
                epoch: int = 0,
            ) -> None:
                if int(workers) < 1:
                    raise InvalidArgumentError(f"workers={workers} must be at least 1 (threads preparing batches)")
                # Keras gets one worker: with several, its queue carries batches over from one
                # epoch into the next (JAX's build step starts it early).  The threads work inside
                # a batch instead, on its samples: numpy and scipy release the GIL, and threads,
                # unlike forked processes, mix with a GPU backend already initialised.
                super().__init__(workers=1, use_multiprocessing=False)
                if crop % MULTIPLE:
                    raise InvalidArgumentError(f"crop={crop} must be a multiple of {MULTIPLE}")
                self.data, self.kind, self.batch_size, self.crop = data, kind, int(batch_size), int(crop)
                self.augment_data, self.scale, self.contrast = augment_data, scale, contrast
                self.min_diameter_px = float(min_diameter_px)
                self.target_options = dict(target_options or {})
                self.weight_small_craters_px = _check_weighting(weight_small_craters_px)
                self.workers = int(workers)
                self._pool: Any = None
                self.seed = int(seed)
                self._state = (int(epoch), self._permutation(int(epoch)))

            def _permutation(self, epoch: int) -> np.ndarray:
                # stream tags 1 (orders) and 2 (samples) keep the seed lists apart: numpy pads
                # short ones with zeros, so [seed, epoch] and [seed, epoch, 0] would collide
                return np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.data))

            def __len__(self) -> int:
                return math.ceil(len(self.data) / self.batch_size)

            def on_epoch_end(self) -> None:
                epoch = self._state[0] + 1
                self._state = (epoch, self._permutation(epoch))  # one assignment: never half-updated

            def _sample(self, epoch: int, idx: int, j: int, i: int) -> tuple[np.ndarray, np.ndarray]:
                from .targets import crater_weights, draw_targets

                # one generator per sample, fixed by (seed, epoch, batch, position): the same
                # batches whatever the number of threads or the order they run in
                rng = np.random.default_rng([self.seed, epoch, 2, idx, j])
                img, cr = self.data.images[i], self.data.craters_of(int(i))
                tgt = None if self.data.targets is None else self.data.targets[i]
                if self.augment_data:
                    img, cr, tgt = augment(img, cr, rng, scale=self.scale, contrast=self.contrast, target=tgt)
                img, cr, tgt = _random_crop(img, cr, self.crop, rng, tgt)
                if tgt is None:
                    tgt = draw_targets(img.shape, _kept_for_targets(cr, self.min_diameter_px), self.kind, **self.target_options)
                y = tgt[..., None].astype(np.float32)
                if self.weight_small_craters_px:
                    # the loss's weights travel as a second target channel (bce_dice_loss reads them)
                    w = crater_weights(img.shape, cr, reference_diameter_px=self.weight_small_craters_px)
                    y = np.concatenate([y, w[..., None]], axis=-1)
                return img[..., None], y

            def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
                epoch, order = self._state
                sel = order[idx * self.batch_size : (idx + 1) * self.batch_size]
                jobs = [(epoch, int(idx), j, int(i)) for j, i in enumerate(sel)]
                if self.workers > 1 and len(jobs) > 1:
                    if self._pool is None:
                        from concurrent.futures import ThreadPoolExecutor

                        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="marscraters-batch")
                    samples = list(self._pool.map(lambda job: self._sample(*job), jobs))
                else:
                    samples = [self._sample(*job) for job in jobs]
                return np.stack([x for x, _ in samples]), np.stack([y for _, y in samples])

        return _PatchSequence(*args, **kwargs)


def _is_whole(value: Any, least: int) -> bool:
    """Whether ``value`` is a whole number (not a bool) of at least ``least``."""
    if isinstance(value, bool):
        return False
    try:
        return float(value).is_integer() and value >= least
    except (TypeError, ValueError, OverflowError):
        return False


def _is_finite(value: Any, *, above: float | None = None, at_least: float | None = None) -> bool:
    """Whether ``value`` is a finite real number (not a bool) ``> above`` / ``>= at_least``."""
    if isinstance(value, bool):
        return False
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return (math.isfinite(value) and (above is None or value > above)
            and (at_least is None or value >= at_least))


def _check_weighting(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"weight_small_craters_px must be a number of pixels (0 = off), got {value!r}") from None
    if not (np.isfinite(value) and value >= 0):
        raise InvalidArgumentError(f"weight_small_craters_px must be >= 0 pixels (0 = off), got {value}")
    return value


def _split_target(y_true: Any) -> tuple[Any, Any]:
    """The target and its per-pixel weights (None) from a 1- or 2-channel ``y_true``."""
    if y_true.shape[-1] == 2:
        return y_true[..., :1], y_true[..., 1:]
    return y_true, None


def bce_dice_loss(dice_weight: float = 1.0) -> Any:
    """Binary cross-entropy plus ``dice_weight`` times the soft Dice loss, backend-neutral.

    Crater pixels are a few percent of an image; Dice keeps the network from settling on
    "no crater anywhere", which plain cross-entropy rewards.  When ``y_true`` has a second
    channel, it holds per-pixel weights (:func:`marscraters.targets.crater_weights`) and both
    terms are weighted by it: the cross-entropy is a weighted mean and the Dice sums are
    weighted sums.
    """
    keras = _keras()
    ops = keras.ops

    def loss(y_true: Any, y_pred: Any) -> Any:
        y_true, w = _split_target(y_true)
        bce_px = keras.losses.binary_crossentropy(y_true, y_pred)  # (N, H, W)
        if w is None:
            bce = ops.mean(bce_px)
            tw, pw, both = y_true, y_pred, y_true * y_pred
        else:
            bce = ops.sum(bce_px * w[..., 0]) / ops.sum(w)
            tw, pw, both = y_true * w, y_pred * w, y_true * y_pred * w
        if dice_weight == 0:
            return bce
        inter = ops.sum(both, axis=(1, 2, 3))
        denom = ops.sum(tw, axis=(1, 2, 3)) + ops.sum(pw, axis=(1, 2, 3))
        dice = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)
        return bce + dice_weight * ops.mean(dice)

    loss.__name__ = f"bce_dice_{dice_weight:g}"
    return loss


def pixel_accuracy(y_true: Any, y_pred: Any) -> Any:
    """The paper's pixel accuracy (threshold 0.5), ignoring a weights channel in ``y_true``."""
    keras = _keras()
    ops = keras.ops
    y_true, _ = _split_target(y_true)
    return ops.mean(ops.cast(ops.equal(y_true > 0.5, y_pred > 0.5), "float32"), axis=(1, 2, 3))


# --------------------------------------------------------------------------------------------
# crater-level validation
# --------------------------------------------------------------------------------------------
def crater_scores(
    model: Any,
    data: TrainingSet,
    *,
    kind: str = "filled",
    d_min: float = DEFAULT_SCORE_DMIN_PX,
    rule: str = "deepmoon",
    batch_size: int = 4,
    extract_options: dict | None = None,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Crater-level precision, recall and F1 of ``model`` on ``data`` (all images pooled).

    Each image is predicted whole (padded to a multiple of 128), craters are extracted with
    :func:`marscraters.extract.extract_craters`, and matched to the truth with
    :func:`marscraters.evaluate.evaluate` using a diameter floor ``d_min`` (recall counts truths
    >= d_min, precision counts predictions >= 0.8 d_min), because the labels are incomplete for
    small craters.
    """
    from .evaluate import evaluate
    from .extract import extract_craters

    probs = predict_stack(model, data.images, batch_size=batch_size)
    preds, truths = [], []
    for i, prob in enumerate(probs):
        p = extract_craters(prob, target=kind, **(extract_options or {}))
        preds.append(p.assign(image=i))
        truths.append(data.craters_of(i).assign(image=i))
    pred = pd.concat(preds, ignore_index=True)
    truth = pd.concat(truths, ignore_index=True)
    # pool all images: shift each image far apart so that no match crosses images
    stride = 10.0 * max(data.images.shape[1:])
    pred = pred.assign(x=pred["x"] + pred["image"] * stride)
    truth = truth.assign(x=truth["x"] + truth["image"] * stride)
    result = evaluate(pred, truth, rule=rule, d_min=d_min)
    out = {"precision": result.precision, "recall": result.recall, "f1": result.f1, "result": result}
    if return_predictions:
        out["probabilities"] = probs
        out["craters"] = pred.assign(x=pred["x"] - pred["image"] * stride)
    return out


def predict_stack(model: Any, images: np.ndarray, *, batch_size: int = 4, tta: int = 1) -> np.ndarray:
    """Predict a stack of same-sized, already-normalised images in batches (padded to 128).

    With ``tta`` > 1 each image goes through :func:`marscraters.model.predict_image` instead,
    which averages the maps of ``tta`` flips and quarter turns.
    """
    if _check_tta(tta) > 1:
        return np.stack([predict_image(model, img, tile=None, normalise=False, tta=tta, batch_size=batch_size)
                         for img in images]).astype(np.float32)
    padded, crop_slices = pad_to_multiple(images[..., None], MULTIPLE)
    out = model.predict(padded, batch_size=batch_size, verbose=0)
    return np.asarray(out[:, crop_slices[0], crop_slices[1], 0], dtype=np.float32)


def _crater_callback_class() -> Any:
    keras = _keras()

    class _CraterScores(keras.callbacks.Callback):
        def __init__(self, data: TrainingSet, every: int = 1, **kwargs: Any) -> None:
            super().__init__()
            self.data, self.every, self.kwargs = data, max(int(every), 1), kwargs

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is None:
                return
            if (epoch + 1) % self.every and epoch != 0:
                # NaN on unscored epochs: CSVLogger fixes its columns at the first epoch
                logs.update({k: float("nan") for k in ("val_crater_precision", "val_crater_recall", "val_crater_f1")})
                return
            s = crater_scores(self.model, self.data, **self.kwargs)
            logs.update({"val_crater_precision": s["precision"], "val_crater_recall": s["recall"], "val_crater_f1": s["f1"]})

    return _CraterScores


def CraterScores(data: TrainingSet, every: int = 1, **kwargs: Any) -> Any:  # noqa: N802 (a class factory)
    """Keras callback: crater-level precision, recall and F1 on ``data`` at the end of each epoch.

    Adds ``val_crater_precision``, ``val_crater_recall`` and ``val_crater_f1`` to the epoch logs
    (so they land in the CSV history and can drive checkpoint selection).
    """
    return _crater_callback_class()(data, every, **kwargs)


def _timing_callback_class() -> Any:
    keras = _keras()

    class _EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is not None:
                logs["seconds_per_epoch"] = time.perf_counter() - self._t0

    return _EpochTimer


# --------------------------------------------------------------------------------------------
# the training loop
# --------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Everything that defines a training run (saved next to its outputs as ``config.json``)."""

    kind: str = "filled"
    kernel_size: int = 3
    filter_multiple: float = 1.0
    dropout: tuple[float, float] = (0.2, 0.5)
    epochs: int = 10
    batch_size: int = 8
    crop: int = 256
    learning_rate: float = 1e-3
    cosine_decay: bool = True
    dice_weight: float = 1.0
    augment: bool = True
    scale: tuple[float, float] = (1.0, 1.0)
    contrast: float = 0.2
    min_target_diameter_px: float = 0.0
    score_every: int = 1
    score_d_min: float = DEFAULT_SCORE_DMIN_PX
    target_options: dict = field(default_factory=dict)
    extract_options: dict = field(default_factory=dict)
    seed: int = 0
    monitor: str = "val_crater_f1"
    workers: int = 1
    weight_small_craters_px: float = 0.0

    def __post_init__(self) -> None:
        # every number is checked here, before train() writes config.json or spends an epoch:
        # epochs < 1 would "train" nothing, and batch_size 0 or a MIN > MAX scale would crash in
        # the first batch, while a negative rate (gradient ascent), NaN or a negative contrast
        # would train silently wrong
        if not _is_whole(self.epochs, 1):
            raise InvalidArgumentError(
                f"epochs must be a whole number >= 1 (passes over the training chips), got {self.epochs!r}; "
                f"pass epochs=1 (CLI: --epochs 1) or more")
        if not _is_whole(self.batch_size, 1):
            raise InvalidArgumentError(f"batch_size must be a whole number >= 1 (patches per training step), "
                                       f"got {self.batch_size!r}; e.g. batch_size=8")
        if not _is_whole(self.crop, MULTIPLE) or int(self.crop) % MULTIPLE:
            raise InvalidArgumentError(f"crop={self.crop!r} must be a multiple of {MULTIPLE} (the UNet pools 7 times), "
                                       f"e.g. crop=256")
        if not _is_finite(self.learning_rate, above=0.0):
            ascent = _is_finite(self.learning_rate, above=None) and float(self.learning_rate) < 0
            raise InvalidArgumentError(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}"
                                       + (" (a negative rate climbs the loss instead of descending it)" if ascent else "")
                                       + "; e.g. learning_rate=0.001")
        try:
            lo, hi = self.scale
        except (TypeError, ValueError):
            lo = hi = None
        if not (_is_finite(lo, above=0.0) and _is_finite(hi, above=0.0)):
            raise InvalidArgumentError(f"scale must be two finite zoom factors MIN MAX, both > 0, got {self.scale!r}; "
                                       f"e.g. scale=(1, 1) for no zoom, or (0.7, 1.3)")
        if float(lo) > float(hi):
            raise InvalidArgumentError(f"scale must be MIN MAX with MIN <= MAX, got {lo!r} {hi!r}; write it as "
                                       f"{hi!r} {lo!r}")
        if not _is_finite(self.contrast, at_least=0.0):
            raise InvalidArgumentError(f"contrast must be a finite number >= 0 (0: no contrast change), "
                                       f"got {self.contrast!r}; e.g. contrast=0.2")
        if not _is_finite(self.dice_weight, at_least=0.0):
            raise InvalidArgumentError(f"dice_weight must be a finite number >= 0 (0: plain cross-entropy), "
                                       f"got {self.dice_weight!r}; e.g. dice_weight=1")
        if not _is_whole(self.workers, 1):
            raise InvalidArgumentError(f"workers={self.workers!r} must be at least 1 (threads preparing batches)")
        if not _is_whole(self.score_every, 1):
            raise InvalidArgumentError(f"score_every must be a whole number >= 1 (epochs between crater scores), "
                                       f"got {self.score_every!r}")
        _check_weighting(self.weight_small_craters_px)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _history_value(value: str) -> float:
    """One ``history.csv`` cell: Keras' CSVLogger writes ``NA`` for a metric it has no value of
    (the validation columns of a run without a validation set)."""
    return float("nan") if value.strip().upper() in ("NA", "NAN") else float(value)


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: _history_value(v) for k, v in row.items() if k is not None and v not in ("", None)}
                for row in csv.DictReader(fh)]


def _truncate_history(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` rows of a ``history.csv`` (replaced whole, never half-written)."""
    lines = path.read_text().splitlines(keepends=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines[: rows + 1]))
    tmp.replace(path)


def can_resume(out_dir: str | Path) -> bool:
    """Whether :func:`train` with ``resume=True`` continues the run in ``out_dir``.

    It does when the folder holds ``last.keras`` and a non-empty ``history.csv``; otherwise it
    starts a new run (from ``model`` when one is given).
    """
    out = Path(out_dir)
    return (out / "last.keras").exists() and bool(_read_history(out / "history.csv"))


def _check_resumed_architecture(model: Any, config: TrainConfig, out: Path) -> None:
    """Refuse to resume a run whose checkpoint is another network than ``config`` asks for.

    Without this, the run would go on training the old network while ``config.json`` and the
    saved metadata record the new settings.
    """
    from .model import describe_model

    arch = describe_model(model)
    asked = {"kernel_size": config.kernel_size, "filter_multiple": config.filter_multiple}
    # filter counts are rounded to whole filters, so multiples match to within one filter of 16
    differ = [k for k, v in asked.items()
              if arch.get(k) is not None and abs(float(arch[k]) - float(v)) > (0 if k == "kernel_size" else 1 / 16)]
    if differ:
        have = ", ".join(f"{k}={arch[k]:g}" for k in asked)
        want = ", ".join(f"{k}={v:g}" for k, v in asked.items())
        raise InvalidArgumentError(
            f"{out} holds a run of another network ({have}, last.keras) than these settings ask for ({want}). "
            f"To continue that run, give its settings (CLI: --kernel-size {arch['kernel_size']} --filter-multiple "
            f"{arch['filter_multiple']:g}, or leave both out); to train the new network, use another output folder "
            f"or start over in this one (CLI --restart, Python resume=False)."
        )


# settings a resumed run may change: how long it trains, how often it scores, its loader threads,
# and the learning rate (a new one starts a new cosine cycle from it: a warm restart, see train)
_MAY_CHANGE_ON_RESUME = ("epochs", "score_every", "workers", "learning_rate")
# the command line's flag of each setting it sets (the others are TrainConfig's alone)
_CLI_FLAGS = {
    "kind": "--kind", "batch_size": "--batch-size", "crop": "--crop", "dice_weight": "--dice-weight",
    "scale": "--scale", "contrast": "--contrast", "seed": "--seed", "weight_small_craters_px": "--weight-small-craters",
}
# what a model file says about how to use it (marscraters.detect.model_info reads them): a
# fine-tuned model keeps its starting model's (its "verifier" and "tta" excepted, see train)
_USAGE_METADATA = ("native_pixel_size_m", "pyramid_top_px", "extract")


def _run_settings(out: Path) -> dict[str, Any]:
    """The settings of the run in ``out``, from its ``config.json`` ({} when missing or unreadable)."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _cli_value(value: Any) -> str:
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in (value if isinstance(value, list) else [value]))


def _check_resumed_settings(config: TrainConfig, out: Path) -> dict[str, Any]:
    """Refuse to resume the run in ``out`` with settings that change what it learns; return the run's settings.

    Every setting of ``config.json`` must match but those of :data:`_MAY_CHANGE_ON_RESUME` and the
    architecture's (:func:`_check_resumed_architecture` checks the network itself).  Without this,
    the run would go on training its network on other targets (``kind``), with another loss or
    other patches, and rewrite ``config.json`` as if the whole run had used them.
    """
    saved = _run_settings(out)
    asked = config.to_dict()
    skip = (*_MAY_CHANGE_ON_RESUME, "kernel_size", "filter_multiple")
    differ = [k for k in asked if k in saved and k not in skip and saved[k] != asked[k]]
    if differ:
        have = ", ".join(f"{k}={saved[k]!r}" for k in differ)
        want = ", ".join(f"{k}={asked[k]!r}" for k in differ)
        cli = " ".join(f"{_CLI_FLAGS[k]} {_cli_value(saved[k])}" for k in differ if k in _CLI_FLAGS)
        python = ", ".join(f"{k}={saved[k]!r}" for k in differ)
        raise InvalidArgumentError(
            f"{out} holds a run trained with {have} (its config.json), but these settings ask for {want}; resuming "
            f"would train that run's network on other settings and mix two runs in one folder. To continue the run, "
            f"give its settings ({f'CLI: {cli}; ' if cli else ''}Python: TrainConfig({python})); to train with the "
            f"new ones, use another output folder (--out NEW) or start over in this one (CLI --restart, Python "
            f"resume=False).")
    return saved


def _starting_model_usage(source: Any) -> dict[str, Any]:
    """How to use the model file ``source`` a fine-tuning run starts from (:data:`_USAGE_METADATA`).

    Warns when it names a verifier: the verifier learnt from the starting network's maps, so the
    fine-tuned model does not name it.
    """
    from .model import read_model_metadata

    if source is None:
        return {}
    try:
        meta = read_model_metadata(source)
    except ModelError as exc:  # a name rather than a path (some scripts record one), or the file is gone
        log.info("the starting model %s is not a readable model file (%s): none of its settings is carried over",
                 source, exc)
        return {}
    if meta.get("verifier"):
        warnings.warn(
            f"{source} names the verifier {meta['verifier']!r}, which learnt from that network's probability maps, "
            f"not the fine-tuned network's: the models this run saves name no verifier, so detect, segment and "
            f"catalog run them one-stage (more false craters). Train a verifier for the new model (docs/guide/"
            f"train.md, 'A crater verifier for your model'), or pass one with verify=<verifier .keras>.",
            UserWarning, stacklevel=3)
    return {k: meta[k] for k in _USAGE_METADATA if meta.get(k) is not None}


def _restore_optimizer(model: Any, path: Path, step: int) -> None:
    """Put the Adam state saved in the checkpoint ``path`` into ``model``'s compiled optimizer, at ``step``.

    Keras saves the optimizer's variables (its step count and Adam's moment estimates) in the
    checkpoint's weights; ``load_model`` cannot restore them here (the loss is a closure it cannot
    rebuild), so they are read back in the order Keras wrote them.  A checkpoint without them
    (or of another optimizer) keeps fresh moments, with a warning; the step, which places the
    learning-rate schedule, is set either way.
    """
    import io
    import zipfile

    import h5py

    from .model import _WEIGHTS_ENTRY

    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    variables = list(optimizer.variables)
    saved: list[np.ndarray] = []
    try:
        with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read(_WEIGHTS_ENTRY)), "r") as h5:
            group = h5.get("optimizer/vars")
            saved = [np.asarray(group[str(i)]) for i in range(len(group))] if group is not None else []
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        saved = []
    if len(saved) == len(variables) and all(tuple(a.shape) == tuple(v.shape) for a, v in zip(saved, variables)):
        for value, variable in zip(saved, variables):
            variable.assign(value)
    else:
        warnings.warn(f"{path} holds no optimizer state that fits this run's Adam optimizer ({len(saved)} saved "
                      f"variables for {len(variables)}): the resumed run continues the learning-rate schedule at "
                      f"step {step}, but Adam's moment estimates start afresh", UserWarning, stacklevel=3)
    optimizer.iterations.assign(step)


def _seed_states(model: Any) -> dict[str, list[int]]:
    """The state (seed, draws so far) of each layer's random-number generator: the dropout
    masks', which Keras does not save in a model file."""
    ops = _keras().ops
    with warnings.catch_warnings():
        # Keras' variables trip a NumPy 2 deprecation when read as arrays (as in save_model)
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        return {f"{layer.name}/{k}": [int(v) for v in np.asarray(ops.convert_to_numpy(sg.state)).ravel()]
                for layer in model.layers for k, sg in enumerate(getattr(layer, "_seed_generators", []))}


def _restore_seed_states(model: Any, states: Any) -> None:
    """Set the generators :func:`_seed_states` recorded, so a resumed run draws the dropout masks
    an uninterrupted run would."""
    if not isinstance(states, dict):
        return
    for layer in model.layers:
        for k, sg in enumerate(getattr(layer, "_seed_generators", [])):
            value = states.get(f"{layer.name}/{k}")
            if value is not None and len(value) == int(np.prod(sg.state.shape)):
                sg.state.assign(np.asarray(value, dtype=np.dtype(sg.state.dtype)).reshape(sg.state.shape))


def _counted_from_one(history: list[dict[str, float]]) -> list[dict[str, Any]]:
    """``history.csv``'s rows with ``epoch`` as the model files count it: epochs done, 1, 2, ...
    (the file keeps Keras' 0-based float)."""
    return [{**row, "epoch": int(row["epoch"]) + 1} if "epoch" in row else dict(row) for row in history]


def train(
    train_data: TrainingSet,
    val_data: TrainingSet | None,
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    model: Any = None,
    resume: bool = True,
    verbose: int | str = "auto",
    metadata: dict | None = None,
) -> dict[str, Any]:
    """Train a Symmetric UNet and keep checkpoints, a CSV history and plots in ``out_dir``.

    Parameters
    ----------
    train_data, val_data
        Training and validation sets; ``val_data`` may be None (no validation scores).
    out_dir
        Output folder: ``last.keras`` (checkpoint of the latest epoch, with its optimizer state,
        for resuming), ``best.keras`` (best ``config.monitor`` so far), ``history.csv``,
        ``config.json``, ``history.png``.
    config
        The run's :class:`TrainConfig`.
    model
        A model to train (fine-tuning), or the path of a ``.keras`` model file; the saved config
        records its kernel size and filter multiple.  Default builds
        :func:`marscraters.model.symmetric_unet` from the config.  Ignored when the run resumes
        (:func:`can_resume`).
    resume
        Continue from ``out_dir/last.keras`` and its history when they exist.
    verbose
        Keras progress display (``"auto"``: a progress bar per epoch).
    metadata
        Extra metadata saved inside the model files (training data description...).  For a
        loaded ``model``, ``metadata["data"]["init"]`` names the file it was loaded from (the
        command line's ``--init`` records it there), whose usage settings are carried over.

    Returns
    -------
    dict
        ``history`` (one dict per epoch, the rows of ``history.csv``, but with ``epoch``
        counted from 1 as the model files' metadata counts it), ``best`` and ``last`` model
        paths, and the trained ``model``.

    Raises
    ------
    InvalidArgumentError
        When resuming with another network or with settings that change what the run learns
        (all of ``config`` but ``epochs``, ``learning_rate``, ``score_every`` and ``workers``),
        before anything in ``out_dir`` changes.

    Notes
    -----
    **Resuming** continues the run: the cosine schedule spans all ``config.epochs`` and goes on
    at the step where ``last.keras`` stopped, with Adam's state from ``last.keras``, and epoch
    ``e`` draws the patches of ``(config.seed, e)``, as an uninterrupted run would.  More
    ``epochs`` stretch the schedule to the new length (the rate is that of a run of that length
    at this step).  Another ``learning_rate`` is a warm restart: a new cosine cycle from it over
    the remaining epochs, with Adam's state started afresh, as earlier versions did on every
    resume; a later resume at that rate goes on in the new cycle.

    **Fine-tuning** (a given ``model``) carries over what its file says about how to use the
    model: ``native_pixel_size_m``, ``pyramid_top_px`` and the circle finder's ``extract``
    settings, which the validation scores then use too (unless ``config.extract_options`` sets
    the finder: that is recorded instead).  Its verifier (and ``tta``, the orientations the
    verifier learnt from) is not: it learnt from another network's maps; a warning says so.
    """
    from .model import (
        describe_model,
        load_model,
        read_model_metadata,
        save_model,
        symmetric_unet,
    )

    keras = _keras()
    config = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    history_path = out / "history.csv"
    last_path, best_path = out / "last.keras", out / "best.keras"
    keras.utils.set_random_seed(config.seed)

    history = _read_history(history_path) if resume else []
    initial_epoch = 0
    usage: dict[str, Any] = {}
    warm_restart = False
    cycle_start = 0  # the epoch the learning-rate schedule started at (a warm restart's)
    if resume and can_resume(out):
        # before anything is loaded or written: a refused resume leaves the run as it was
        run = _check_resumed_settings(config, out)
        model = load_model(last_path)
        _check_resumed_architecture(model, config, out)
        saved_meta = read_model_metadata(last_path)
        done = saved_meta.get("epoch")
        initial_epoch = done if isinstance(done, int) and 0 < done <= len(history) else len(history)
        if len(history) > initial_epoch:
            # the run stopped after writing an epoch's history row but before its checkpoint
            log.warning("%s holds %d epochs of history but %s was saved after epoch %d: epochs %d-%d are trained "
                        "again", history_path, len(history), last_path, initial_epoch, initial_epoch + 1, len(history))
            _truncate_history(history_path, initial_epoch)
            history = history[:initial_epoch]
        usage = {k: v for k, v in saved_meta.items() if k in _USAGE_METADATA and v is not None}
        _restore_seed_states(model, saved_meta.get("seed_states"))
        warm_restart = "learning_rate" in run and float(run["learning_rate"]) != float(config.learning_rate)
        start = saved_meta.get("schedule_start_epoch", 0)
        if warm_restart:
            cycle_start = initial_epoch
        elif isinstance(start, int) and 0 <= start <= initial_epoch:
            cycle_start = start  # a run that was warm-restarted goes on in its new cycle
        log.info("resuming from %s at epoch %d", last_path, initial_epoch)
        if warm_restart and initial_epoch < config.epochs:
            warnings.warn(
                f"resuming {out} at epoch {initial_epoch + 1} with learning_rate={config.learning_rate:g}, the run's "
                f"was {float(run['learning_rate']):g}: a warm restart ("
                + ("a new cosine cycle from it over epochs "
                   f"{initial_epoch + 1}-{config.epochs}, " if config.cosine_decay else "")
                + f"Adam's state afresh). To continue the run's schedule instead, resume with its learning rate "
                f"(CLI --learning-rate {float(run['learning_rate']):g}).", UserWarning, stacklevel=2)
    elif model is None:
        model = symmetric_unet(config.kernel_size, config.filter_multiple, tuple(config.dropout))
    else:
        if isinstance(model, (str, os.PathLike)):
            source: Any = model
            model = load_model(model)
        else:
            data = (metadata or {}).get("data")
            source = data.get("init") if isinstance(data, dict) else None
        usage = _starting_model_usage(source)
        # a given model (fine-tuning) has its own architecture: record that one, not the defaults
        arch = describe_model(model)
        config = replace(config, **{k: arch[k] for k in ("kernel_size", "filter_multiple") if arch.get(k) is not None})
    # the circle finder the validation scores use, and the model files record: the run's own, or
    # the starting model's
    finder = dict(config.extract_options) or dict(usage.get("extract") or {})
    usage = {**usage, "extract": finder} if finder else {k: v for k, v in usage.items() if k != "extract"}
    if initial_epoch >= config.epochs:  # a finished run: nothing to train, nothing to rewrite
        return {"history": _counted_from_one(history), "best": best_path, "last": last_path, "model": model}
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    if not resume and history_path.exists():
        history_path.unlink()
        history = []

    steps = math.ceil(len(train_data) / config.batch_size)
    # a resume goes on where the run stopped; a warm restart starts a new schedule and optimizer
    first_step = (initial_epoch - cycle_start) * steps
    lr: Any = config.learning_rate
    if config.cosine_decay:
        # decays to 1 % over the whole run (after a warm restart: over the epochs from it)
        span = (config.epochs - cycle_start) * steps
        lr = keras.optimizers.schedules.CosineDecay(config.learning_rate, max(span, 1), alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=bce_dice_loss(config.dice_weight),
        metrics=[keras.metrics.MeanMetricWrapper(pixel_accuracy, name="accuracy")],
    )
    if first_step:
        _restore_optimizer(model, last_path, first_step)
    seq = PatchSequence(
        train_data, kind=config.kind, batch_size=config.batch_size, crop=config.crop,
        augment_data=config.augment, scale=tuple(config.scale), contrast=config.contrast,
        min_diameter_px=config.min_target_diameter_px, target_options=config.target_options,
        seed=config.seed, workers=config.workers, weight_small_craters_px=config.weight_small_craters_px,
        epoch=initial_epoch,
    )
    val_seq = None
    callbacks: list[Any] = [_timing_callback_class()()]
    if val_data is not None and len(val_data):
        val_seq = PatchSequence(
            val_data, kind=config.kind, batch_size=config.batch_size, crop=config.crop, augment_data=False,
            min_diameter_px=config.min_target_diameter_px, target_options=config.target_options, seed=12345,
            weight_small_craters_px=config.weight_small_craters_px, epoch=initial_epoch,
        )
        if val_data.targets is None:
            callbacks.append(
                CraterScores(val_data, every=config.score_every, kind=config.kind, d_min=config.score_d_min,
                             extract_options=finder)
            )
    # NaN (an unscored epoch, or NA in the history) never counts as the best
    best_value = max((v for h in history if np.isfinite(v := h.get(config.monitor, -np.inf))), default=-np.inf)
    validated = val_seq is not None
    if not validated:
        warnings.warn(f"training without a validation set: there is no score to choose the best epoch by, so "
                      f"{best_path} is the last epoch's model (give validation data to keep the best one)",
                      UserWarning, stacklevel=2)
    meta = {"training": config.to_dict(), **usage, **(metadata or {})}

    class _Checkpoints(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            nonlocal best_value
            # JSON has no NaN (precision is NaN while a model predicts no crater)
            logs = {k: (float(v) if np.isfinite(float(v)) else None) for k, v in (logs or {}).items()}
            # the resume point also keeps the dropout masks' generators, which a model file does not,
            # and where the schedule started (a warm restart's epoch)
            save_model(self.model, last_path, overwrite=True,
                       metadata={**meta, "epoch": epoch + 1, "logs": logs, "seed_states": _seed_states(self.model),
                                 "schedule_start_epoch": cycle_start})
            value = logs.get(config.monitor)
            if value is None and logs.get("val_loss") is not None:
                value = -logs["val_loss"]
            # without validation the last epoch is the best there is
            if not validated or (value is not None and value > best_value):
                best_value = value if value is not None else best_value
                save_model(self.model, best_path, overwrite=True, metadata={**meta, "epoch": epoch + 1, "logs": logs})

    # order matters: scores and timing first, so CSVLogger and the checkpoints see them
    callbacks += [keras.callbacks.CSVLogger(str(history_path), append=initial_epoch > 0), _Checkpoints()]
    # shuffle=False: the sequence orders each epoch itself, from (seed, epoch); Keras' shuffle of
    # its batches would follow Python's global random state, which a resumed run does not share
    model.fit(seq, validation_data=val_seq, epochs=config.epochs, initial_epoch=initial_epoch,
              callbacks=callbacks, verbose=verbose, shuffle=False)
    history = _read_history(history_path)
    try:
        plot_history(history, out / "history.png", dice_weight=config.dice_weight,
                     title=f"{config.kernel_size}×{config.kernel_size} kernels, {config.filter_multiple:g}× filters, "
                           f"{config.kind} targets (run {out.name})")
    except Exception as exc:  # noqa: BLE001 - a plot must never lose a finished training run
        log.warning("could not plot the history: %s", exc)
    return {"history": _counted_from_one(history), "best": best_path, "last": last_path, "model": model}


def _loss_name(dice_weight: float | None) -> str:
    """What the training loss of :func:`bce_dice_loss` with ``dice_weight`` is, in words (for plots).

    Examples
    --------
    >>> _loss_name(0.0), _loss_name(1.0), _loss_name(None)
    ('binary cross-entropy (BCE)', 'BCE + 1 × soft-Dice loss', 'training loss')
    """
    if dice_weight is None or not np.isfinite(float(dice_weight)):
        return "training loss"
    if float(dice_weight) == 0.0:
        return "binary cross-entropy (BCE)"
    return f"BCE + {float(dice_weight):g} × soft-Dice loss"


def _run_dice_weight(history_path: Path) -> float | None:
    """The ``dice_weight`` in the ``config.json`` beside a run's ``history.csv`` (None if unknown)."""
    value = _run_settings(history_path.parent).get("dice_weight")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# the history's columns, as a reader names them
_HISTORY_LABELS = {
    "loss": "training", "val_loss": "validation", "accuracy": "training", "val_accuracy": "validation",
    "val_crater_f1": "F1", "val_crater_precision": "precision", "val_crater_recall": "recall",
}


def _history_figure(history: list[dict[str, float]], *, title: str = "", dice_weight: float | None = None) -> Any:
    """The figure of :func:`plot_history` (a matplotlib Figure, no pyplot)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    frame = pd.DataFrame(history)
    epochs = np.asarray(frame["epoch"] + 1 if "epoch" in frame else np.arange(1, len(frame) + 1), dtype=float)
    panels = [
        ("loss (lower is better)", _loss_name(dice_weight), ["loss", "val_loss"]),
        ("pixel accuracy (higher is better)", "fraction of pixels right (threshold 0.5)",
         ["accuracy", "val_accuracy"]),
        ("crater-level scores on the validation images", "score (0 to 1)",
         ["val_crater_f1", "val_crater_precision", "val_crater_recall"]),
    ]
    # a panel only for what the run recorded: no crater scores without a truth catalog (targets
    # given directly, or no validation set)
    panels = [p for p in panels if any(c in frame and frame[c].notna().any() for c in p[2])]
    fig = Figure(figsize=(5.0 * max(len(panels), 1), 4.2), layout="constrained")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False, sharex=True)[0]
    for ax, (panel_title, ylabel, cols) in zip(axes, panels):
        for c in cols:
            if c in frame and frame[c].notna().any():
                ok = frame[c].notna().to_numpy()
                # markers where a line alone would hide points (one epoch, or scores not every epoch)
                marker = "o" if (not ok.all() or ok.sum() < 20) else None
                ls = "--" if c in ("val_loss", "val_accuracy") else "-"
                ax.plot(epochs[ok], frame[c][ok], marker=marker, ms=4, ls=ls, label=_HISTORY_LABELS.get(c, c))
        ax.set_title(panel_title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        # below the axes: inside, a legend covers some curve whatever the corner
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, fontsize=9, frameon=False)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    # whole epochs, and room around a single one (matplotlib would widen it to 0.945-1.055)
    lo, hi = float(np.nanmin(epochs)), float(np.nanmax(epochs))
    pad = max(0.5, 0.02 * (hi - lo))
    axes[0].set_xlim(lo - pad, hi + pad)
    fig.suptitle(f"Training history: {title}" if title else "Training history")
    return fig


def plot_history(history: list[dict[str, float]] | str | Path, path: str | Path, *, title: str = "",
                 dice_weight: float | None = None) -> Path:
    """Plot loss, pixel accuracy and crater-level scores per epoch to a PNG.

    Training curves are solid and validation curves dashed; the crater-level panel (F1,
    precision, recall on the validation images) is left out when the run computed none.

    Parameters
    ----------
    history
        The rows of a run's ``history.csv``, or its path.
    path
        The PNG to write.
    title
        What the run is (the figure is titled "Training history: <title>").
    dice_weight
        The run's ``TrainConfig.dice_weight``, to say what the loss is; by default read from the
        ``config.json`` beside a ``history`` path.
    """
    if isinstance(history, (str, Path)):
        if dice_weight is None:
            dice_weight = _run_dice_weight(Path(history))
        history = _read_history(Path(history))
    if not history:
        raise ModelError("the training history is empty: nothing to plot")
    fig = _history_figure(history, title=title, dice_weight=dice_weight)
    fig.savefig(path, dpi=100)
    return Path(path)
