"""Crater verification: a second-stage classifier that re-scores the circle finder's candidates.

The circle finder (:mod:`marscraters.extract`) sees only the network's probability map.  At a
low threshold it finds most labelled craters (recall ~0.87 on the validation chips) but among
many false circles; at the threshold that maximises F1 it keeps few false circles but misses a
third of the craters.  Verification takes the low-threshold candidates and asks a small
classifier, which sees the *image* as well as the map around each candidate, whether it is a
crater -- the two-stage design of PyCDA (Klear 2018) and of most crater detectors since.

Two views of each candidate feed the classifier:

* :func:`crater_patches` -- the image and the probability map resampled to a fixed
  ``32 x 32`` grid spanning 1.6 radii around the centre (so every crater looks the same size);
* :func:`crater_features` -- rotation-invariant radial profiles: at 11 radii from 0 to 2 r the
  mean, spread and first two angular harmonics of the image (relative to the local background)
  and of the map, plus log diameter, the finder's score, the share of the circle inside the
  image, the number of overlapping candidates and the rim coverage of the map.

The classifier (:func:`crater_classifier`: a small CNN on the patches joined with a dense layer
on the features) is trained by :func:`fit_classifier` on candidates from the *training* chips,
labelled by :func:`match_candidates` with the DeepMoon rule, and its threshold is chosen on the
validation chips (``benchmarks/train_verifier.py``).  :func:`verify_craters` applies it, averaging
over :data:`VERIFY_TTA` of the 8 flips and quarter turns of the patches for every candidate that can
reach the threshold (:data:`VERIFY_MARGIN`: the others are seen in one orientation and dropped).

A model file names its verifier in its metadata (``"verifier": "crater_classifier.keras"``,
relative to the model file), and :func:`marscraters.detect.detect` and
:func:`marscraters.assemble.catalog_from_probability` use it when the image is at hand.
"""

from __future__ import annotations

import itertools
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from .errors import InvalidArgumentError, ModelError

__all__ = [
    "CANDIDATE_OPTIONS",
    "PATCH_EXTENT",
    "PATCH_SIZE",
    "RADII",
    "Verifier",
    "average_classifiers",
    "candidate_sets",
    "crater_classifier",
    "crater_features",
    "crater_patches",
    "edge_cut_copies",
    "find_craters",
    "find_craters_many",
    "fit_classifier",
    "load_verifier",
    "match_candidates",
    "merge_options",
    "n_features",
    "resolve_verifier",
    "save_verifier",
    "verifier_of",
    "verify_craters",
]

#: Radii (in crater radii) of the radial profiles of :func:`crater_features`.
RADII = np.array([0.0, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0])
_N_ANGLES = 16
#: Side of the resampled patches, in pixels, and their half-width in crater radii.
PATCH_SIZE = 32
PATCH_EXTENT = 1.6
#: Circle-finder options that make the candidates: a low threshold, for recall (the verifier
#: then supplies the precision).  The verifier file records the options it was trained on.
CANDIDATE_OPTIONS: dict[str, Any] = {"method": "template", "threshold": 0.2, "template_threshold": 0.3,
                                     "relative_threshold": 0.0, "min_score": 0.0}
_VERIFIER_FORMAT = "marscraters-verifier"
_PREDICT_LOCK = threading.Lock()
#: Orientations the verifier averages in detection and catalogs: 4 decide as 8 do at half the
#: cost (``benchmarks/verifier_orientations.py``: the same F1 on validation chips 440-499, one
#: decision in 20,000 crop candidates changed; ``docs/results/verifier_orientations.json``).
VERIFY_TTA = 4
#: In detection and catalogs the verifier first looks at every candidate in one orientation and
#: averages the :data:`VERIFY_TTA` orientations for those scored at least its threshold minus this
#: margin (None: all of them, always).  Candidates lower than that never reached the threshold
#: with the average on validation data (``benchmarks/splits/verifier_cascade_rule.md``); they keep
#: their one-orientation probability and are dropped.  Every kept candidate so carries its
#: orientation average, the same whatever the threshold: a crater's ``score`` does not depend on
#: ``min_score``.
VERIFY_MARGIN: float | None = 0.3


def _circles(craters: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in ("x", "y", "diameter_px") if c not in craters]
    if missing:
        raise InvalidArgumentError(f"craters need columns x, y, diameter_px (missing {missing}); pass extract_craters' output")
    x, y, d = (craters[c].to_numpy(dtype=float) for c in ("x", "y", "diameter_px"))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(np.isfinite(d)) and np.all(d > 0)):
        raise InvalidArgumentError("craters must have finite x, y and diameter_px > 0; drop the bad rows first")
    return x, y, d / 2.0


def _plane(name: str, arr: Any, fill: float | None = None) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim != 2 or min(a.shape) < 2:
        raise InvalidArgumentError(f"{name} must be a 2-D array of at least 2 x 2 pixels, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        # no-data pixels: ``fill`` (one value for a whole mosaic, so that windows agree), else
        # the array's own mean, as the network's normalisation fills them
        if fill is None or not np.isfinite(fill):
            finite = a[np.isfinite(a)]
            fill = float(finite.mean()) if finite.size else 0.0
        a = np.where(np.isfinite(a), a, fill).astype(np.float32)
    return a


#: How many of the largest candidates :func:`_overlapping` tests against every other one.
_BIG_CIRCLES = 32
#: Samples per candidate patch beyond which :func:`_sample` splits the work between the cores.
_PARALLEL_SAMPLES = 2**16


def _sample(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``img`` at ``(ys, xs)``, bilinear (the edge pixels extended); many points on the cores side by
    side (``map_coordinates`` releases the GIL; each point's value is its own, so they are the same)."""
    from .extract import side_by_side

    def sample(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(img, [y.ravel(), x.ravel()], order=1, mode="nearest").reshape(x.shape)

    if xs.size < _PARALLEL_SAMPLES or len(xs) < 2:
        return sample(xs, ys)
    parts = min(len(xs), 8)
    return np.concatenate(side_by_side(sample, np.array_split(xs, parts), np.array_split(ys, parts)))


def crater_features(image: Any, prob: Any, craters: pd.DataFrame, *, fill: float | None = None) -> np.ndarray:
    """Rotation-invariant radial-profile features of candidate craters.

    Parameters
    ----------
    image
        The normalised image (:func:`marscraters.model.normalise_image`), 2-D; NaN is filled.
    prob
        The network's probability map on the same grid.
    craters
        Candidates (``x``, ``y``, ``diameter_px``, ``score``) in that grid's pixel coordinates.
    fill
        Value for no-data (NaN) image pixels; default the image's mean.

    Returns
    -------
    numpy.ndarray
        float32, ``(n_craters, n_features)``; the columns are described in the module docstring.
        The image columns do not change under a linear change of grey levels.
    """
    image, prob = _plane("image", image, fill), _plane("prob", prob, 0.0)
    if image.shape != prob.shape:
        raise InvalidArgumentError(f"image {image.shape} and prob {prob.shape} must be on the same grid")
    x, y, r = _circles(craters)
    score = craters["score"].to_numpy(dtype=float) if "score" in craters else np.ones(len(x))
    ang = np.arange(_N_ANGLES) * 2 * np.pi / _N_ANGLES
    rr = r[:, None, None] * RADII[None, :, None]
    xs = x[:, None, None] + rr * np.cos(ang)
    ys = y[:, None, None] + rr * np.sin(ang)
    inside = (xs >= -0.5) & (xs <= image.shape[1] - 0.5) & (ys >= -0.5) & (ys <= image.shape[0] - 0.5)
    vi, vp = _sample(image, xs, ys), _sample(prob, xs, ys)
    # the image relative to the local background (the outer three rings), in units of its spread
    bg = vi[:, -3:].mean(axis=(1, 2), keepdims=True)
    vi = (vi - bg) / (vi.std(axis=(1, 2), keepdims=True) + 1e-3)
    harmonics = [np.exp(-1j * k * ang) for k in (1, 2)]
    cols: list[Any] = [np.log2(2 * r), score, inside.mean(axis=(1, 2))]
    for v in (vi, vp):
        cols += [*v.mean(-1).T, *v.std(-1).T]
        cols += [c for h in harmonics for c in np.abs((v * h).mean(-1)).T]
    # crowding: candidates whose circles overlap this one
    cols.append(_overlapping(x, y, r))
    cols.append((vp[:, 4:6].max(axis=1) > 0.5).mean(-1))  # rim coverage of the map
    return np.column_stack(cols).astype(np.float32) if len(x) else np.zeros((0, n_features()), np.float32)


def _overlapping(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    """How many other circles overlap each one (centres closer than the sum of the radii).

    All pairs cost n² distances, and a block of a mosaic has thousands of candidates.  The
    :data:`_BIG_CIRCLES` largest circles are tested against every circle; for the others a k-d
    tree finds the pairs near enough (within each radius plus the largest of theirs: one huge
    candidate no longer makes every pair "near").  Each pair is tested with the same arithmetic
    as the all-pairs count, so the counts are exactly those.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    xy = np.column_stack([x, y])
    big = np.zeros(n, dtype=bool)
    big[np.argpartition(r, n - min(n, _BIG_CIRCLES))[n - min(n, _BIG_CIRCLES):]] = True
    small = np.flatnonzero(~big)
    counts = np.zeros(n, dtype=np.int64)
    if small.size:
        reach = float(r[small].max())
        # a radius a hair beyond r_i + reach: every pair the exact test below can keep is among these
        near = cKDTree(xy[small]).query_ball_point(xy, r=(r + reach) * (1 + 1e-9) + 1e-9, return_sorted=False)
        i = np.repeat(np.arange(n), [len(js) for js in near])
        j = small[np.fromiter(itertools.chain.from_iterable(near), dtype=np.intp, count=len(i))]
        hit = np.hypot(x[i] - x[j], y[i] - y[j]) < r[i] + r[j]
        counts += np.bincount(i[hit], minlength=n)
    for j in np.flatnonzero(big):
        counts += np.hypot(x - x[j], y - y[j]) < r + r[j]
    return counts - 1  # each circle overlaps itself


def n_features() -> int:
    """Number of columns of :func:`crater_features`."""
    return 3 + 2 * 4 * len(RADII) + 2


def crater_patches(image: Any, prob: Any, craters: pd.DataFrame, *, size: int = PATCH_SIZE,
                   extent: float = PATCH_EXTENT, fill: float | None = None, mask: bool = False) -> np.ndarray:
    """The image and the map around each candidate, resampled to ``size x size`` pixels.

    Each patch spans ``extent`` crater radii on either side of the centre, so every crater
    fills the same share of its patch.  The image channel is standardised per patch (zero mean,
    unit spread), the map channel is left in 0..1.  No-data image pixels take ``fill`` (default
    the image's mean).

    Parameters
    ----------
    mask
        Add a third channel: the share of each patch pixel that lies inside the image and holds
        data (1 inside, 0 beyond the edge or on no-data, fractions at the border).  The image
        channel is then standardised over the inside pixels only, and both channels are 0
        outside, so a crater cut by the image edge shows as a cut crater instead of as edge
        pixels smeared outwards.

    Returns
    -------
    numpy.ndarray
        float32, ``(n_craters, size, size, 2)``, or ``(..., 3)`` with ``mask``.
    """
    valid = np.isfinite(np.asarray(image, dtype=np.float32)) if mask else None
    image, prob = _plane("image", image, fill), _plane("prob", prob, 0.0)
    if image.shape != prob.shape:
        raise InvalidArgumentError(f"image {image.shape} and prob {prob.shape} must be on the same grid")
    if int(size) < 4 or not extent > 0:
        raise InvalidArgumentError(f"size must be >= 4 pixels and extent > 0, got {size!r}, {extent!r}")
    x, y, r = _circles(craters)
    g = ((np.arange(size) + 0.5) / size * 2 - 1) * extent
    gy, gx = np.meshgrid(g, g, indexing="ij")
    xs = x[:, None, None] + gx * r[:, None, None]
    ys = y[:, None, None] + gy * r[:, None, None]
    pi, pp = _sample(image, xs, ys), _sample(prob, xs, ys)
    if valid is None:
        pi = (pi - pi.mean(axis=(1, 2), keepdims=True)) / (pi.std(axis=(1, 2), keepdims=True) + 1e-3)
        return np.stack([pi, pp], axis=-1).astype(np.float32)
    # beyond the edge counts as no data: zero outside the array, interpolated across its border
    m = ndimage.map_coordinates(valid.astype(np.float32), [ys.ravel(), xs.ravel()], order=1, mode="constant",
                                cval=0.0).reshape(xs.shape)
    w = m.sum(axis=(1, 2), keepdims=True) + 1e-6
    mu = (m * pi).sum(axis=(1, 2), keepdims=True) / w
    sd = np.sqrt((m * (pi - mu) ** 2).sum(axis=(1, 2), keepdims=True) / w)
    pi = (pi - mu) / (sd + 1e-3) * m
    return np.stack([pi, pp * m, m], axis=-1).astype(np.float32)


def match_candidates(craters: pd.DataFrame, truth: pd.DataFrame, threshold: tuple[float, float] = (1.8, 1.0)) -> np.ndarray:
    """Which candidates match some true crater under the DeepMoon rule (the training labels).

    A candidate is a crater when ``((x - xt)**2 + (y - yt)**2) / min(r, rt)**2 < 1.8`` and
    ``|r - rt| / min(r, rt) < 1.0`` for some truth; truths of every size count, so that real
    small craters are not taught as false.

    Returns
    -------
    numpy.ndarray
        bool, one per candidate.
    """
    x, y, r = _circles(craters)
    if not len(truth) or not len(x):
        return np.zeros(len(x), bool)
    tx, ty, tr = _circles(truth)
    mr = np.minimum(r[:, None], tr[None])
    pos = ((x[:, None] - tx) ** 2 + (y[:, None] - ty) ** 2) / mr**2 < threshold[0]
    return (pos & (np.abs(r[:, None] - tr[None]) / mr < threshold[1])).any(axis=1)


def crater_classifier(n_feature: int | None = None, *, size: int = PATCH_SIZE, channels: int = 2,
                      seed: int | None = 0, convs_per_block: int = 2) -> "Any":
    """The verifier network: a small CNN on the patches joined with a dense layer on the features.

    ~86,000 parameters: three blocks of two 3x3 convolutions and max pooling (16, 32, 64
    filters; ``convs_per_block=1``: one, ~38,000 parameters and ~3.7x fewer operations per
    patch) and global average pooling on the patches; the features are standardised (a
    ``Normalization`` layer adapted by :func:`fit_classifier`) and pass one dense layer; the
    two meet in a dense layer of 64 with dropout 0.3 and a sigmoid output.  ``channels`` is 2
    (image, map), 3 (with the inside mask of ``crater_patches(..., mask=True)``), or more for
    further patch channels stacked by the caller (e.g. the image and map over a wider extent).
    """
    from .model import _keras

    keras = _keras()
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    n_feature = n_features() if n_feature is None else int(n_feature)
    if int(channels) < 2:
        raise InvalidArgumentError(f"channels must be 2 (image, map), 3 (image, map, mask) or more, got {channels!r}")
    if convs_per_block not in (1, 2):
        raise InvalidArgumentError(f"convs_per_block must be 1 or 2, got {convs_per_block!r}")
    patch = keras.Input((size, size, int(channels)), name="patch")
    feats = keras.Input((n_feature,), name="features")
    h = patch
    for f in (16, 32, 64):
        for _ in range(convs_per_block):
            h = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    g = keras.layers.Normalization(name="feature_scaling")(feats)
    g = keras.layers.Dense(64, activation="relu")(g)
    h = keras.layers.Concatenate()([h, g])
    h = keras.layers.Dense(64, activation="relu")(h)
    h = keras.layers.Dropout(0.3)(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="crater")(h)
    return keras.Model([patch, feats], out, name="crater_verifier")


def _dihedral(p: np.ndarray, k: int) -> np.ndarray:
    p = np.rot90(p, k % 4, axes=(1, 2))
    return np.ascontiguousarray(p[:, :, ::-1] if k >= 4 else p)


def fit_classifier(
    patches: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int = 12,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    convs_per_block: int = 2,
) -> Any:
    """Train :func:`crater_classifier` on labelled candidates.

    Every sample is shown in a random one of its 8 flips and quarter turns each epoch; Adam
    with a cosine-decaying learning rate.

    Parameters
    ----------
    patches, features, labels
        From :func:`crater_patches`, :func:`crater_features` and :func:`match_candidates` of
        the training candidates (concatenated over images).
    epochs, batch_size, learning_rate, seed
        Training schedule.
    progress
        Show a progress bar over epochs.
    convs_per_block
        The classifier's convolutions per block (:func:`crater_classifier`).

    Returns
    -------
    keras.Model
    """
    from tqdm.auto import tqdm

    from .model import _keras

    keras = _keras()
    patches, features = np.asarray(patches, np.float32), np.asarray(features, np.float32)
    labels = np.asarray(labels, dtype=np.float32).ravel()
    if not (len(patches) == len(features) == len(labels)) or not len(labels):
        raise InvalidArgumentError(f"patches, features and labels must have the same non-zero length, "
                                   f"got {len(patches)}, {len(features)}, {len(labels)}")
    if labels.min() == labels.max():
        raise InvalidArgumentError("the labels are all one class: the verifier needs both craters and false circles")
    if not (isinstance(epochs, (int, np.integer)) and epochs >= 1):
        raise InvalidArgumentError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if patches.ndim != 4:
        raise InvalidArgumentError(f"patches must be (n, size, size, channels), got shape {patches.shape}")
    model = crater_classifier(features.shape[1], size=patches.shape[1], channels=patches.shape[-1], seed=seed,
                              convs_per_block=convs_per_block)
    model.get_layer("feature_scaling").adapt(features)
    steps = int(np.ceil(len(labels) / batch_size)) * int(epochs)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(keras.optimizers.Adam(schedule), "binary_crossentropy")
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(int(epochs)), desc="training verifier", disable=not progress):
        turn = rng.integers(0, 8, len(labels))
        shown = np.empty_like(patches)
        for k in range(8):
            shown[turn == k] = _dihedral(patches[turn == k], k)
        model.fit({"patch": shown, "features": features}, labels, batch_size=batch_size, epochs=1,
                  verbose=0, shuffle=True)
    return model


def average_classifiers(models: Sequence[Any]) -> Any:
    """One classifier whose output is the mean of several :func:`crater_classifier` outputs.

    Classifiers trained with different seeds disagree most on the doubtful candidates, and
    averaging them removes that seed-to-seed noise; for the shipped model's verifier the gain was
    within the noise of the validation chips (``docs/extraction.md``).  The result takes the same
    inputs, so a :class:`Verifier` uses it like a single classifier, and it saves as one
    ``.keras`` file.
    """
    from .model import _keras

    keras = _keras()
    models = list(models)
    if not models:
        raise InvalidArgumentError("average_classifiers needs at least one classifier")
    if len(models) == 1:
        return models[0]
    seen: set[int] = set()
    for m in models:
        # a member given twice (or inside an earlier average) shares its weights: such a model
        # saves, but cannot be loaded back
        ids = {id(v) for v in m.weights}
        if ids & seen:
            raise InvalidArgumentError("the classifiers share weights (one is given twice, or is part of "
                                       "another): average distinct classifiers, each trained on its own")
        seen |= ids
    shapes = {(tuple(m.inputs[0].shape[1:]), tuple(m.inputs[1].shape[1:])) for m in models}
    if len(shapes) > 1:
        raise InvalidArgumentError(f"the classifiers take different inputs {sorted(shapes)}; average only "
                                   "classifiers trained on the same patches and features")
    (patch_shape, feature_shape), = shapes
    patch = keras.Input(patch_shape, name="patch")
    feats = keras.Input(feature_shape, name="features")
    # each member re-wrapped under its own name: a saved model needs unique sub-model names
    members = [keras.Model(m.inputs, m.outputs[0], name=f"member_{i}") for i, m in enumerate(models)]
    out = keras.layers.Average(name="crater")([m([patch, feats]) for m in members])
    return keras.Model([patch, feats], out, name="crater_verifier_mean")


class Verifier:
    """A trained verifier: the classifier, its decision threshold and its candidate options.

    Attributes
    ----------
    model
        The Keras classifier (:func:`crater_classifier`).
    threshold
        Verified craters score at least this (chosen on validation data).
    candidates
        The :func:`marscraters.extract.extract_craters` options that make its candidates.
    metadata
        Everything else the file records (training data, validation scores...).
    """

    def __init__(self, model: Any, threshold: float = 0.5, candidates: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        if not (0.0 <= float(threshold) < 1.0):
            raise InvalidArgumentError(f"threshold must be in [0, 1), got {threshold!r}")
        self.model, self.threshold = model, float(threshold)
        self.candidates = dict(CANDIDATE_OPTIONS if candidates is None else candidates)
        self.metadata = dict(metadata or {})

    @property
    def mask(self) -> bool:
        """Whether the classifier takes the inside-mask channel (``crater_patches(..., mask=True)``).

        Read from the classifier's input, so verifiers saved before the channel existed (two
        channels) keep working.
        """
        return int(self.model.inputs[0].shape[-1]) == 3

    def patches(self, image: Any, prob: Any, craters: pd.DataFrame, *, fill: float | None = None) -> np.ndarray:
        """:func:`crater_patches` in the form this verifier's classifier takes."""
        channels = int(self.model.inputs[0].shape[-1])
        if channels not in (2, 3):
            raise InvalidArgumentError(
                f"this verifier's classifier takes {channels} patch channels, but crater_patches makes 2 (image, "
                "map) or 3 (with mask=True); stack its other channels yourself and call predict(patches, features)")
        return crater_patches(image, prob, craters, size=int(self.model.inputs[0].shape[1]), fill=fill,
                              mask=self.mask)

    def predict(self, patches: np.ndarray, features: np.ndarray, *, tta: int = 8, batch_size: int = 512,
                margin: float | None = None, threshold: float | None = None) -> np.ndarray:
        """Crater probability of each candidate, averaged over ``tta`` (1, 2, 4 or 8) orientations.

        With ``margin``, a cascade: every candidate is scored in one orientation first, and those
        scored at least ``threshold`` (default: the verifier's) minus ``margin`` get the ``tta``
        average; the others keep their one-orientation probability (below the threshold by more
        than ``margin``: they are dropped).  So every candidate that can reach the threshold is
        scored by the average, whatever the threshold: a kept candidate's score does not depend
        on it.
        """
        if tta not in (1, 2, 4, 8):
            raise InvalidArgumentError(f"tta must be 1, 2, 4 or 8 orientations, got {tta!r}")
        if not len(patches):
            return np.zeros(0, np.float32)
        if margin is not None and tta > 1:
            if not (isinstance(margin, (int, float)) and 0 <= margin <= 1):
                raise InvalidArgumentError(f"margin must be a probability difference in [0, 1], got {margin!r}")
            first = self.predict(patches, features, tta=1, batch_size=batch_size)
            thr = self.threshold if threshold is None else float(threshold)
            # every candidate that might be kept, not only those near the threshold: a kept one's
            # score is then its average whatever the threshold (a curve drawn from threshold 0 keeps
            # what each threshold keeps)
            reach = np.flatnonzero(first >= thr - margin)
            if len(reach):
                first[reach] = self.predict(patches[reach], np.asarray(features)[reach], tta=tta,
                                            batch_size=batch_size)
            return first
        turns = {1: [0], 2: [0, 4], 4: [0, 1, 2, 3], 8: list(range(8))}[tta]
        # every orientation in one stack: one call per batch, not per orientation (small tables
        # of candidates are dominated by the per-call cost)
        shown = np.concatenate([_dihedral(patches, k) for k in turns])
        feats = np.tile(np.asarray(features, np.float32), (len(turns), 1))
        out = np.zeros(len(shown), np.float64)
        for a in range(0, len(shown), batch_size):
            n = min(batch_size, len(shown) - a)
            # padded to a fixed batch so the compiled graph is traced once, not once per size
            pad = ((0, batch_size - n),) if n < batch_size and len(shown) > batch_size else ((0, 0),)
            batch = {"patch": np.pad(shown[a:a + n], pad + ((0, 0),) * 3),
                     "features": np.pad(feats[a:a + n], pad + ((0, 0),))}
            with _PREDICT_LOCK:  # one call at a time per process, as for the segmentation model
                out[a:a + n] = np.asarray(self.model.predict_on_batch(batch), np.float64).ravel()[:n]
        out = out.reshape(len(turns), len(patches)).sum(axis=0)
        return (out / len(turns)).astype(np.float32)

    def __repr__(self) -> str:
        return f"Verifier(threshold={self.threshold:.2f}, candidates={self.candidates})"


def save_verifier(verifier: Verifier, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save a :class:`Verifier` as a ``.keras`` file with its threshold and candidate options."""
    from ._io import json_ready
    from .model import save_model

    meta = {**verifier.metadata, "verifier_format": _VERIFIER_FORMAT, "threshold": verifier.threshold,
            "candidates": verifier.candidates}
    # a validation score is NaN when nothing was detected (an early or tiny run); JSON has no NaN
    return save_model(verifier.model, path, metadata=json_ready(meta), overwrite=overwrite)


def load_verifier(path: str | os.PathLike) -> Verifier:
    """Load a verifier written by :func:`save_verifier`.

    Raises
    ------
    ModelError
        If the file is missing, corrupt, or not a verifier (e.g. a segmentation model).
    """
    from .model import _keras, read_model_metadata

    path = Path(path)
    meta = read_model_metadata(path)
    if meta.get("verifier_format") != _VERIFIER_FORMAT:
        raise ModelError(f"{path} is not a crater verifier (no '{_VERIFIER_FORMAT}' metadata); "
                         "train one with benchmarks/train_verifier.py")
    try:
        model = _keras().saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds of errors for bad files
        raise ModelError(f"cannot load verifier {path}: {type(exc).__name__}: {exc}; re-train it with "
                         "benchmarks/train_verifier.py") from exc
    from .model import _RESERVED_METADATA

    # what save_model writes itself is not handed back, so a loaded verifier saves again
    rest = {k: v for k, v in meta.items() if k not in ("threshold", "candidates", *_RESERVED_METADATA)}
    return Verifier(model, meta.get("threshold", 0.5), meta.get("candidates"), rest)


def verifier_of(model_file: str | os.PathLike | None) -> Path | None:
    """The verifier file a model file names in its metadata (``None`` when it names none)."""
    from .model import default_weights_path, read_model_metadata

    path = Path(default_weights_path() if model_file is None else model_file)
    if not path.exists():
        return None
    name = read_model_metadata(path).get("verifier")
    if not name:
        return None
    vpath = path.parent / name
    if not vpath.exists():
        raise ModelError(f"model file {path} names the verifier {name}, but {vpath} is missing; copy it beside "
                         "the model, or pass verify=False")
    return vpath


def _as_verifier(verifier: Any) -> Verifier:
    if isinstance(verifier, Verifier):
        return verifier
    if isinstance(verifier, (str, os.PathLike)):
        return load_verifier(verifier)
    raise InvalidArgumentError(f"verifier must be a Verifier or a .keras path, got {type(verifier).__name__}")


def verify_craters(
    craters: pd.DataFrame,
    image: Any,
    prob: Any,
    verifier: Verifier | str | os.PathLike,
    *,
    threshold: float | None = None,
    tta: int = VERIFY_TTA,
    fill: float | None = None,
) -> pd.DataFrame:
    """Re-score candidate craters with a verifier and keep those it believes.

    Parameters
    ----------
    craters
        Candidates from :func:`marscraters.extract.extract_craters` run with the verifier's
        ``candidates`` options, in the pixel coordinates of ``image``.
    image
        The normalised image the network saw (:func:`marscraters.model.normalise_image`).
    prob
        The network's probability map on the same grid.
    verifier
        A :class:`Verifier` or the path of one.
    threshold
        Keep candidates scored at least this; default the verifier's own (0 keeps them all).
    tta
        Orientations averaged by the classifier (1, 2, 4 or 8; default :data:`VERIFY_TTA`).
    fill
        Value for no-data image pixels (default the image's mean; pass one value for a whole
        mosaic so that its windows agree).

    Returns
    -------
    pandas.DataFrame
        The kept rows, ``score`` replaced by the verifier's crater probability and the finder's
        score kept as ``finder_score``, sorted by decreasing score.
    """
    return _verify_many([craters], [image], [prob], verifier, threshold=threshold, tta=tta, fill=fill)[0]


#: Candidates scored per classifier call in :func:`_verify_many`: 8192 patches with the 8
#: orientations, 16 full batches of 512 (about 100 MB of patches).
_VERIFY_CHUNK = 1024


def _verify_many(
    craters: Sequence[pd.DataFrame], images: Sequence[Any], probs: Sequence[Any], verifier: Verifier | str | os.PathLike,
    *, threshold: float | None = None, tta: int = VERIFY_TTA, fill: float | None = None, margin: Any = "default",
) -> list[pd.DataFrame]:
    """:func:`verify_craters` of many maps, their candidates scored together in full classifier
    batches.  Each table is the one :func:`verify_craters` gives for its map alone (the
    classifier's score of a patch does not depend on the other patches of its batch).
    ``margin``: the cascade's (default :data:`VERIFY_MARGIN`, read at call time)."""
    from .extract import side_by_side

    margin = VERIFY_MARGIN if margin == "default" else margin
    v = _as_verifier(verifier)
    thr = v.threshold if threshold is None else float(threshold)
    if not (0.0 <= thr < 1.0):
        raise InvalidArgumentError(f"threshold must be in [0, 1), got {threshold!r}")
    todo = [i for i, c in enumerate(craters) if len(c)]
    scores: dict[int, np.ndarray] = {}
    k = 0
    while k < len(todo):
        group, n = [], 0
        while k < len(todo) and (not group or n + len(craters[todo[k]]) <= _VERIFY_CHUNK):
            group.append(todo[k])
            n, k = n + len(craters[todo[k]]), k + 1
        # each map's patches and features, the maps side by side on the cores
        parts = side_by_side(lambda i: (v.patches(images[i], probs[i], craters[i], fill=fill),
                                        crater_features(images[i], probs[i], craters[i], fill=fill)), group)
        patches = np.concatenate([p for p, _ in parts])
        feats = np.concatenate([f for _, f in parts])
        p = v.predict(patches, feats, tta=tta, margin=margin, threshold=thr)
        for i, part in zip(group, np.split(p, np.cumsum([len(craters[i]) for i in group])[:-1])):
            scores[i] = part
    out = []
    for i, c in enumerate(craters):
        if i in scores:
            kept = c.assign(finder_score=c["score"].to_numpy(dtype=float), score=scores[i].astype(float))
            kept = kept[kept["score"] >= thr].sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
        else:
            kept = c.assign(finder_score=pd.Series(dtype=float)).reset_index(drop=True)
        kept.attrs.update({**c.attrs, "verifier_threshold": thr})
        out.append(kept)
    return out


def candidate_sets(
    images: Sequence[np.ndarray], probs: Sequence[np.ndarray], *, target: str = "outline",
    candidates: dict[str, Any] | None = None, truths: Sequence[pd.DataFrame] | None = None, progress: bool = True,
    mask: bool = False,
) -> tuple[list[pd.DataFrame], np.ndarray, np.ndarray, np.ndarray | None]:
    """Candidates, patches, features (and labels with ``truths``) of a stack of images.

    Returns ``(candidates per image, patches, features, labels or None)``, the arrays
    concatenated over images in order.  ``mask`` adds the inside-mask patch channel
    (:func:`crater_patches`).
    """
    from tqdm.auto import tqdm

    from .extract import extract_craters

    opts = dict(CANDIDATE_OPTIONS if candidates is None else candidates)
    cands, patches, feats, labels = [], [], [], []
    for i in tqdm(range(len(images)), desc="candidates", disable=not progress):
        c = extract_craters(probs[i], target=target, **opts)
        cands.append(c)
        patches.append(crater_patches(images[i], probs[i], c, mask=mask))
        feats.append(crater_features(images[i], probs[i], c))
        if truths is not None:
            labels.append(match_candidates(c, truths[i]))
    return (cands, np.concatenate(patches), np.concatenate(feats),
            np.concatenate(labels) if truths is not None else None)


def edge_cut_copies(images: np.ndarray, truths: Sequence[pd.DataFrame], *, cut: int = 128,
                    seed: int = 0) -> tuple[np.ndarray, list[pd.DataFrame]]:
    """Copies of training images with ``cut`` columns cut off one side (left or right at random).

    More examples of craters cut by the image edge for the verifier to learn from: the copies'
    craters near the new edge are cut as they would be in a smaller image.  Run the network on
    the copies (the map at an edge differs from the map inside an image) and make their
    candidates as for any image; the verifier's 8 orientations turn the cut to the other sides.

    Returns
    -------
    (numpy.ndarray, list of pandas.DataFrame)
        The copies, ``(n, height, width - cut)``, and each copy's truths (``x`` shifted; the
        craters now beyond the edge are kept, since candidates may still match them).
    """
    images = np.asarray(images)
    if images.ndim != 3 or len(images) != len(truths):
        raise InvalidArgumentError(f"images must be a stack (n, height, width) with one truth table each, got "
                                   f"{images.shape} and {len(truths)} tables")
    if not (isinstance(cut, (int, np.integer)) and 0 < cut < images.shape[2] // 2):
        raise InvalidArgumentError(f"cut must be a whole number of columns in 1..{images.shape[2] // 2 - 1}, got {cut!r}")
    left = np.random.default_rng(seed).integers(0, 2, len(images)).astype(bool)
    width = images.shape[2] - cut
    out = np.stack([im[:, cut:] if lf else im[:, :width] for im, lf in zip(images, left)])
    shifted = [t.assign(x=t["x"] - cut) if lf else t.copy() for t, lf in zip(truths, left)]
    return out, shifted


def resolve_verifier(verify: Any, model_file: str | os.PathLike | None) -> Verifier | None:
    """The verifier to use: ``verify`` itself (a :class:`Verifier` or a path), none (``False``),
    or the one ``model_file`` names (``None``/``True``; ``None`` = the shipped model).

    Raises
    ------
    ModelError
        If ``verify=True`` but the model names no verifier.
    """
    if verify is False:
        return None
    if verify is None or verify is True:
        path = verifier_of(model_file)
        if path is None:
            if verify is True:
                raise ModelError(f"model file {model_file or 'shipped default'} names no verifier; pass verify=<path "
                                 "of a verifier .keras> or verify=False")
            return None
        return _load_cached(str(path))
    if isinstance(verify, (str, os.PathLike)):
        return _load_cached(os.fspath(verify))
    return _as_verifier(verify)


_CACHE: dict[tuple[str, float], Verifier] = {}
_LOAD_LOCK = threading.Lock()


def _load_cached(path: str) -> Verifier:
    # one load per process and file version: windows of a mosaic reuse it; the lock makes the
    # threads of one dask worker share that load (Keras' loading is not thread-safe)
    key = (os.path.abspath(path), os.path.getmtime(path) if os.path.exists(path) else 0.0)
    with _LOAD_LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_verifier(path)
        return _CACHE[key]


def find_craters(
    prob: Any,
    image: Any = None,
    *,
    target: str,
    verifier: Verifier | None = None,
    options: dict[str, Any] | None = None,
    tta: int = VERIFY_TTA,
    fill: float | None = None,
) -> pd.DataFrame:
    """The circle finder, followed by verification when a verifier (and the image) is given.

    Without a verifier this is :func:`marscraters.extract.extract_craters` with ``options``.
    With one, the candidates come from the verifier's own ``candidates`` options (``options``
    may still set sizes, NMS and scales, but not the thresholds the verifier was trained on)
    and :func:`verify_craters` keeps those scored at least the verifier's threshold
    (``options["min_score"]``, when given, replaces that threshold: 0 keeps every candidate).
    """
    if verifier is not None and image is None:
        raise InvalidArgumentError("verification needs the image as well as the probability map; pass image=")
    return find_craters_many([prob], [image], target=target, verifier=verifier, options=options, tta=tta,
                             fill=fill)[0]


def find_craters_many(
    probs: Sequence[Any],
    images: Sequence[Any] | None = None,
    *,
    target: str,
    verifier: Verifier | None = None,
    options: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    tta: int = VERIFY_TTA,
    fill: float | None = None,
) -> list[pd.DataFrame]:
    """:func:`find_craters` on many maps (and their images), the verifier scoring all their
    candidates in full batches: one table per map, each the one :func:`find_craters` gives for
    that map alone (:func:`marscraters.detect.detect` on many images).  ``options``: one set for
    every map, or a list with one set per map (the levels of an image pyramid)."""
    from .extract import extract_craters, side_by_side

    if isinstance(options, Sequence):
        # one set per map (the levels of an image pyramid search different diameters)
        if len(options) != len(probs):
            raise InvalidArgumentError(f"{len(options)} sets of options for {len(probs)} maps: give one per map")
        per_map = [dict(o or {}) for o in options]
    else:
        per_map = [dict(options or {})] * len(probs)
    if verifier is None:
        # the maps side by side on the cores (the same tables)
        return side_by_side(lambda prob, opts: extract_craters(prob, target=target, **opts), probs, per_map)
    if images is None or len(images) != len(probs) or any(image is None for image in images):
        raise InvalidArgumentError("verification needs the image as well as the probability map; pass one image "
                                   "per map")
    per_map = [merge_options(None, opts, verifier) for opts in per_map]
    # a caller's min_score replaces the verifier's threshold; absent (or None), the verifier's own applies
    given = [opts.pop("min_score", None) for opts in per_map]
    scores = {None if s is None else float(s) for s in given}
    if len(scores) > 1:
        raise InvalidArgumentError(f"min_score differs between the maps' options ({sorted(scores, key=str)}); give one")
    min_score = scores.pop() if scores else None
    cands = side_by_side(lambda prob, opts: extract_craters(prob, target=target, **opts, min_score=0.0), probs,
                         per_map)
    return _verify_many(cands, images, probs, verifier, threshold=min_score, tta=tta, fill=fill)

def merge_options(model_options: dict[str, Any] | None, user_options: dict[str, Any] | None = None,
                  verifier: Verifier | None = None) -> dict[str, Any]:
    """The circle-finder options of one call: the model file's, overridden by the caller's.

    With a verifier the finder's thresholds are the verifier's ``candidates`` (those it was
    trained on), whoever set others; sizes, NMS and scales stay.  The model file's own
    ``min_score`` is dropped too: it is in the one-stage finder's score units, while only a
    caller's ``min_score`` may replace the verifier's threshold (:func:`find_craters`).
    """
    base = dict(model_options or {})
    if verifier is None:
        return {**base, **dict(user_options or {})}
    base.pop("min_score", None)
    user = dict(user_options or {})
    # the caller's own thresholds would be silently replaced: say so (an already-merged set of
    # options passed back in holds the verifier's values and says nothing)
    ignored = {k: v for k, v in user.items() if k in _FINDER_THRESHOLDS and v != verifier.candidates.get(k)}
    if ignored:
        warnings.warn(
            f"circle-finder options {ignored} are ignored: with the verifier on, the candidates come from the "
            f"thresholds it was trained on ({ {k: verifier.candidates.get(k) for k in ignored} }). Pass "
            "min_score=... to change the verifier's threshold, or verify=False (CLI: --no-verify) to run the "
            "finder with your own", UserWarning, stacklevel=3)
    merged = {k: v for k, v in {**base, **user}.items() if k not in _FINDER_THRESHOLDS}
    return {**merged, **{k: v for k, v in verifier.candidates.items() if k != "min_score"}}


# the circle finder's own thresholds, which a verifier's candidates set
_FINDER_THRESHOLDS = ("method", "threshold", "template_threshold", "relative_threshold", "hough_threshold")
