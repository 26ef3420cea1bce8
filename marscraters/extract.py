"""The circle finder: a crater probability map becomes PixelCraters.

A segmentation network outputs, for every pixel, the probability that it belongs to a crater
*target*: a filled disk (``"filled"``), a disk minus its inner ``inner_ratio`` disk
(``"outline"``), or a thin band on the rim (``"ring"``); see :mod:`marscraters.targets`.
:func:`extract_craters` turns such a map into a table of circles, **PixelCraters**: a
:class:`pandas.DataFrame` with ``x``, ``y``, ``diameter_px`` and ``score``, in pixel index
coordinates ((0, 0) is the centre of the top-left pixel, ``x`` = column, ``y`` = row), sorted by
decreasing score.

Every finder first binarises the map: a pixel is crater when it reaches ``threshold`` and half
the maximum within 4 pixels (``relative_threshold``), so that blurred edges sit at their half
maximum and low thresholds do not inflate diameters.  Three circle finders are implemented, each
a plain function that returns candidate circles:

:func:`find_circles_components`
    Label connected components label connected components, and fit a circle to each.  A rim component
    (``outline``/``ring``) is fitted directly (an algebraic least-squares circle through its
    pixels, which also works for a broken rim); a disk-like region is measured by its area and
    centroid, and a region too big for its inscribed circle (touching or overlapping disks) is
    split by a watershed on its distance transform, each piece fitted on its share of the
    region's outer boundary.  Single scale: it has no size limit.
:func:`find_circles_hough`
    The circle Hough transform (:func:`skimage.transform.hough_circle`) on the boundary of the
    binary map (``filled``) or on the skeleton of its rims (``outline``/``ring``).
:func:`find_circles_template`
    Template matching as in DeepMoon (Silburt et al. 2019, ``utils/template_match_target.py``):
    the binarised map is correlated (normalised cross-correlation, as
    :func:`skimage.feature.match_template`, but with one FFT and one set of summed-area tables
    per scale for all the radii) with templates of the target's own shape over a range of radii;
    local maxima above ``template_threshold`` are candidates.

Hough and template matching search radii only in a band of about 5-10 pixels: larger craters are
searched on downsampled copies of the map (factors 1, 2, 4, ... -- the *scales*), and their
circles mapped back to full-resolution coordinates.  A downsampled pixel ``i`` at factor ``f``
covers full-resolution pixels ``f i .. f i + f - 1``, so its centre is at ``f i + (f - 1) / 2``.

Every finder's candidates then go through the same steps: the diameter range is applied, and
duplicates (the same crater found at two radii, two scales, or as two watershed pieces) are
removed by :func:`nms_circles` -- greedy non-maximum suppression by score with DeepMoon's
duplicate rule (or circle IoU).  :func:`to_catalog` georeferences the result.

Which finder is the default for each target (``method="auto"``) was chosen by the crater-level F1
measured on simulated network outputs; the numbers are in ``docs/extraction.md``
(``benchmarks/bench_extract.py``).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from .errors import InvalidArgumentError

__all__ = [
    "PIXEL_CRATER_COLUMNS",
    "TARGETS",
    "METHODS",
    "DEFAULT_METHODS",
    "DEFAULT_THRESHOLD",
    "TUNED_PARAMETERS",
    "NMS_RULES",
    "extract_craters",
    "find_circles_components",
    "find_circles_hough",
    "find_circles_template",
    "nms_circles",
    "empty_pixel_craters",
    "scale_plan",
    "to_catalog",
]

#: The columns of a PixelCraters table, in order.
PIXEL_CRATER_COLUMNS: tuple[str, ...] = ("x", "y", "diameter_px", "score")
#: Target kinds a probability map can be of (the hole-less kinds of :mod:`marscraters.targets`).
TARGETS: tuple[str, ...] = ("filled", "outline", "ring")
#: The circle finders :func:`extract_craters` dispatches to.
METHODS: tuple[str, ...] = ("components", "hough", "template")
#: ``method="auto"``: the finder with the best F1 for each target in ``docs/extraction.md``.
DEFAULT_METHODS: dict[str, str] = {"filled": "template", "outline": "template", "ring": "hough"}
#: The parameters each finder uses for each target when they are not given: those with the best
#: F1 on simulated network outputs (``benchmarks/bench_extract.py``, ``docs/extraction.md``).
TUNED_PARAMETERS: dict[tuple[str, str], dict[str, float]] = {
    ("components", "filled"): {"threshold": 0.15, "smooth_sigma": 2.0},
    ("components", "outline"): {"threshold": 0.15, "smooth_sigma": 0.0, "min_rim_coverage": 0.25},
    ("components", "ring"): {"threshold": 0.15, "smooth_sigma": 0.0, "min_rim_coverage": 0.25},
    ("hough", "filled"): {"threshold": 0.15, "smooth_sigma": 1.0, "hough_threshold": 0.6},
    ("hough", "outline"): {"threshold": 0.15, "smooth_sigma": 1.0, "hough_threshold": 0.8},
    ("hough", "ring"): {"threshold": 0.15, "smooth_sigma": 0.0, "hough_threshold": 0.8},
    ("template", "filled"): {"threshold": 0.2, "smooth_sigma": 0.0, "template_threshold": 0.6},
    ("template", "outline"): {"threshold": 0.2, "smooth_sigma": 0.0, "template_threshold": 0.5},
    ("template", "ring"): {"threshold": 0.15, "smooth_sigma": 0.0, "template_threshold": 0.5},
}
#: The probability threshold of a finder called directly (``extract_craters`` uses
#: :data:`TUNED_PARAMETERS`).
DEFAULT_THRESHOLD: float = 0.5
#: Duplicate rules of :func:`nms_circles`.
NMS_RULES: tuple[str, ...] = ("deepmoon", "iou")

# arguments of the finders that extract_craters sets itself
_COMMON_ARGS = ("prob", "target", "threshold", "relative_threshold", "inner_ratio", "ring_width_px", "plan",
                "min_diameter_px", "progress")

# Hough and template matching search this band of radii (in pixels of the downsampled map) at
# every scale; the finest scale extends it down to the smallest radius asked for.
_BAND_LO: float = 5.0
_BAND_HI: float = 10.0
# the band's top reaches a little into the next scale, so no radius falls between two scales
_BAND_OVERLAP: float = 1.1
# Hough and template matching work on tiles of at most this many pixels a side (plus a halo).
_TILE: int = 1024


# --------------------------------------------------------------------------------------------
# public helpers


def empty_pixel_craters() -> pd.DataFrame:
    """An empty PixelCraters table (the four float columns, no rows).

    Examples
    --------
    >>> list(empty_pixel_craters().columns)
    ['x', 'y', 'diameter_px', 'score']
    """
    return pd.DataFrame({c: np.array([], dtype=float) for c in PIXEL_CRATER_COLUMNS})


def _frame(x: Any, y: Any, d: Any, s: Any) -> pd.DataFrame:
    cols = [np.asarray(v, dtype=float).ravel() for v in (x, y, d, s)]
    return pd.DataFrame(dict(zip(PIXEL_CRATER_COLUMNS, cols, strict=True)))


def scale_plan(
    min_diameter_px: float,
    max_diameter_px: float,
    scales: str | Iterable[int] = "auto",
) -> list[tuple[int, float, float]]:
    """The downsampling factors searched by Hough and template matching, with their radius bands.

    Parameters
    ----------
    min_diameter_px, max_diameter_px
        The range of crater diameters to search, in full-resolution pixels.
    scales
        ``"auto"`` (factors 1, 2, 4, ... until the band covers ``max_diameter_px``) or explicit
        integer factors.  Each factor ``f`` searches full-resolution radii ``f * 5`` to
        ``f * 11``; the finest one also everything below, down to ``min_diameter_px / 2``.
        Radii above the coarsest band are not searched.

    Returns
    -------
    list of (factor, min_radius, max_radius)
        Radii in full-resolution pixels; bands that miss the requested range are dropped.

    Examples
    --------
    >>> [f for f, _, _ in scale_plan(5, 300)]
    [1, 2, 4, 8, 16]
    """
    rmin, rmax = min_diameter_px / 2.0, max_diameter_px / 2.0
    if isinstance(scales, str):
        if scales != "auto":
            raise InvalidArgumentError(f"scales={scales!r} must be 'auto' or a list of integer factors, e.g. [1, 2, 4].")
        factors = [1]
        while factors[-1] * _BAND_HI * _BAND_OVERLAP < rmax:
            factors.append(factors[-1] * 2)
    else:
        try:
            factors = sorted({int(f) for f in scales})
            bad = [f for f in scales if int(f) != f or int(f) < 1]
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"scales={scales!r} must be 'auto' or a list of integer downsampling factors >= 1, e.g. [1, 2, 4]."
            ) from exc
        if bad or not factors:
            raise InvalidArgumentError(
                f"scales={scales!r} must be 'auto' or a non-empty list of integer factors >= 1, e.g. [1, 2, 4]."
            )
    plan = []
    for i, f in enumerate(factors):
        lo = f * _BAND_LO if i else min(rmin, f * _BAND_LO)
        hi = f * _BAND_HI * _BAND_OVERLAP
        lo, hi = max(lo, rmin), min(hi, rmax)
        if lo <= hi:
            plan.append((f, lo, hi))
    return plan


def nms_circles(
    craters: pd.DataFrame,
    *,
    rule: str = "deepmoon",
    threshold: Any = None,
    contained: bool = False,
) -> pd.DataFrame:
    """Remove duplicate circles: greedy non-maximum suppression by decreasing ``score``.

    The best-scoring circle is kept and every circle that duplicates it is dropped, then the
    next best remaining circle, and so on (ties keep table order).

    Parameters
    ----------
    craters
        PixelCraters (``x``, ``y``, ``diameter_px``, ``score``); extra columns are kept.
    rule
        ``"deepmoon"``: circles 1 and 2 are duplicates when
        ``((x1 - x2)**2 + (y1 - y2)**2) / min(r)**2 < t_pos`` and ``|r1 - r2| / min(r) < t_rad``
        (Silburt et al. 2019; default ``threshold=(1.8, 1.0)``, the rule the scores use, so that
        no two kept circles can match the same crater).  ``"iou"``: their intersection over
        union is at least ``threshold`` (default 0.5).
    threshold
        See ``rule``.
    contained
        Also drop a circle that lies entirely inside a better-scoring, bigger kept circle.  Right
        for ``filled`` targets, where a crater inside another cannot be seen, so such a circle
        is a partial match of the bigger disk's edge.

    Returns
    -------
    pandas.DataFrame
        The kept rows, sorted by decreasing score, with a fresh index.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [10.0, 11.0, 50.0], "y": [10.0, 10.0, 50.0],
    ...                    "diameter_px": [8.0, 9.0, 8.0], "score": [0.9, 0.8, 0.7]})
    >>> nms_circles(df)[["x", "score"]].values.tolist()
    [[10.0, 0.9], [50.0, 0.7]]
    """
    if not isinstance(craters, pd.DataFrame):
        raise InvalidArgumentError(
            f"nms_circles needs a PixelCraters DataFrame (x, y, diameter_px, score), got {type(craters).__name__}."
        )
    missing = [c for c in PIXEL_CRATER_COLUMNS if c not in craters.columns]
    if missing:
        raise InvalidArgumentError(
            f"the craters lack the column(s) {missing} (they have {list(craters.columns)}); "
            "PixelCraters need x, y, diameter_px and score."
        )
    if rule not in NMS_RULES:
        raise InvalidArgumentError(f"rule={rule!r} is not a duplicate rule; use one of {list(NMS_RULES)}.")
    thr = _nms_threshold(rule, threshold)
    if len(craters) == 0:
        return craters.reset_index(drop=True)
    values = {c: craters[c].to_numpy(dtype=float) for c in PIXEL_CRATER_COLUMNS}
    if not all(np.isfinite(v).all() for v in values.values()) or (values["diameter_px"] <= 0).any():
        raise InvalidArgumentError("the craters have non-finite values or diameters <= 0; drop those rows first.")
    order = np.argsort(-values["score"], kind="stable")
    x, y = values["x"][order], values["y"][order]
    r = values["diameter_px"][order] / 2.0
    pts = np.column_stack([x, y])
    if rule == "deepmoon":
        pos2, rad = thr
        reach = math.sqrt(pos2) * r  # separation < sqrt(pos2) * min(r) <= sqrt(pos2) * r_i
    else:
        # IoU >= t needs min(r)/max(r) >= sqrt(t) and a separation below r1 + r2
        reach = r * (1.0 + 1.0 / math.sqrt(thr))
    if contained:
        reach = np.maximum(reach, r)
    tree = cKDTree(pts)
    neighbours = tree.query_ball_point(pts, reach * (1 + 1e-9) + 1e-9)
    alive = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if not alive[i]:
            continue
        j = np.asarray(neighbours[i], dtype=np.int64)
        j = j[(j > i) & alive[j]]
        if j.size == 0:
            continue
        sep = np.hypot(x[j] - x[i], y[j] - y[i])
        if rule == "deepmoon":
            rmin = np.minimum(r[j], r[i])
            dup = (sep**2 / rmin**2 < pos2) & (np.abs(r[j] - r[i]) / rmin < rad)
        else:
            from .evaluate import circle_iou

            dup = circle_iou(sep, 2 * r[j], 2 * r[i]) >= thr
        if contained:
            dup |= (r[j] < r[i]) & (sep + r[j] <= r[i])
        alive[j[dup]] = False
    return craters.iloc[order[alive]].reset_index(drop=True)


def _nms_threshold(rule: str, threshold: Any) -> Any:
    # duplicates are judged with the same rules (and the same checks) as matches
    from .evaluate import _thresholds

    try:
        return _thresholds(rule, threshold)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"nms_threshold (the duplicate rule's threshold): {exc}") from exc


# --------------------------------------------------------------------------------------------
# the entry point


def extract_craters(
    prob: Any,
    *,
    target: str = "filled",
    method: str = "auto",
    threshold: float | None = None,
    relative_threshold: float = 0.5,
    min_diameter_px: float = 5.0,
    max_diameter_px: float | None = None,
    scales: str | Sequence[int] = "auto",
    nms: str = "deepmoon",
    nms_threshold: Any = None,
    inner_ratio: float = 0.7,
    ring_width_px: float = 2.0,
    smooth_sigma: float | None = None,
    nan_policy: str = "zero",
    min_score: float = 0.0,
    progress: bool = False,
    **method_options: Any,
) -> pd.DataFrame:
    """Find the craters in a probability map: circles in pixel coordinates (PixelCraters).

    Parameters
    ----------
    prob
        The network's crater probability, 2-D (``(y, x)``; a trailing or leading axis of length
        1 is dropped), values in [0, 1]: a numpy array, or an :class:`xarray.DataArray` (a
        dask-backed one is computed; extraction works in memory).
    target
        The kind of target the network was trained on: ``"filled"``, ``"outline"`` or
        ``"ring"`` (a ``hybrid`` model's map works with ``"outline"``).
    method
        ``"components"``, ``"hough"``, ``"template"``, or ``"auto"``
        (:data:`DEFAULT_METHODS`, the best measured F1 for the target).
    threshold
        Probability at which a pixel counts as crater (every finder binarises the map first).
        Default: the measured best for the method and target (:data:`TUNED_PARAMETERS`).
    relative_threshold
        A pixel must also reach this fraction of the maximum within 4 pixels of it (0 = off).
        The default, 0.5, puts every blurred edge at its half maximum whatever the crater's own
        peak probability, so that a low ``threshold`` keeps faint craters without inflating
        the diameters of bright ones.
    min_score
        Drop the circles scored below this, after duplicate removal (a point of the
        precision-recall curve; model files store the value chosen on validation data).
    min_diameter_px, max_diameter_px
        Diameter range of the result, in pixels.  ``max_diameter_px`` defaults to the map's
        smaller side; it also decides how many scales ``scales="auto"`` searches.
    scales
        Downsampling factors for Hough and template matching: ``"auto"`` or integers, see
        :func:`scale_plan`.  Connected components need no scales (their size is unlimited);
        the argument is checked but not used.
    nms, nms_threshold
        Duplicate removal, see :func:`nms_circles`; for ``filled`` targets, circles inside a
        better-scoring bigger circle are dropped too (``contained=True``).
    inner_ratio
        The size of an ``outline`` target's hole relative to the crater (as in
        :func:`marscraters.targets.render_targets`).
    ring_width_px
        The width of a ``ring`` target's band, in pixels.
    smooth_sigma
        Smooth the map with a Gaussian of this sigma (pixels) before anything else; 0 = off.
        Default: from :data:`TUNED_PARAMETERS`.
    nan_policy
        ``"zero"`` (NaN -- no data -- counts as probability 0) or ``"raise"``.
    progress
        Show a tqdm progress bar.
    **method_options
        Passed to the finder, e.g. ``template_threshold=0.5`` (template) or
        ``hough_threshold=0.4`` (hough); see each ``find_circles_*`` function.  Those not given
        come from :data:`TUNED_PARAMETERS`.

    Returns
    -------
    pandas.DataFrame
        PixelCraters: ``x``, ``y`` (pixel index coordinates), ``diameter_px`` and ``score``
        (the finder's confidence: mean probability on the component for ``components``, the
        fraction of the circle's edge that voted for ``hough``, the correlation for
        ``template``; threshold it to draw a precision-recall curve), sorted by decreasing
        score.  ``attrs`` record the target, method and parameters.  An empty or constant map
        gives an empty table with these columns.

    Raises
    ------
    InvalidArgumentError
        If the map is not 2-D numeric in [0, 1] (or has NaN with ``nan_policy="raise"``), or an
        argument is out of range.

    Examples
    --------
    Two disks of 20 and 40 pixels:

    >>> yy, xx = np.mgrid[:128, :128]
    >>> prob = ((xx - 30) ** 2 + (yy - 40) ** 2 <= 10 ** 2) * 0.9
    >>> prob = np.maximum(prob, ((xx - 80) ** 2 + (yy - 80) ** 2 <= 20 ** 2) * 0.8)
    >>> extract_craters(prob, target="filled").round(0).values.tolist()
    [[80.0, 80.0, 40.0, 1.0], [30.0, 40.0, 20.0, 1.0]]
    >>> extract_craters(prob, method="components", smooth_sigma=0).round(1).values.tolist()
    [[30.0, 40.0, 20.1, 0.9], [80.0, 80.0, 40.0, 0.8]]
    """
    target = _check_choice("target", target, TARGETS)
    method = _check_choice("method", method, ("auto", *METHODS))
    method = DEFAULT_METHODS[target] if method == "auto" else method
    nan_policy = _check_choice("nan_policy", nan_policy, ("zero", "raise"))
    nms = _check_choice("nms", nms, NMS_RULES)
    nms_thr = _nms_threshold(nms, nms_threshold)
    finders = {"components": find_circles_components, "hough": find_circles_hough, "template": find_circles_template}
    finder = finders[method]
    tuned = dict(TUNED_PARAMETERS[(method, target)])
    tuned_threshold, tuned_smooth = tuned.pop("threshold"), tuned.pop("smooth_sigma")
    threshold = tuned_threshold if threshold is None else threshold
    smooth_sigma = tuned_smooth if smooth_sigma is None else smooth_sigma
    if method != "template" and "engine" in method_options:
        # only template matching has a Keras engine; the others always search on the host
        from .extract_ops import resolve_engine

        engine = method_options.pop("engine")
        if resolve_engine(engine) != "numpy":
            raise InvalidArgumentError(
                f"engine={engine!r} (CLI: --finder-engine {engine}) runs template matching only, and this "
                f"finder is method={method!r} (a {target!r} model's): leave the engine out, or give "
                "engine='numpy' (--finder-engine numpy); its search runs on the host either way.")
    # the finder's own options; the rest of its arguments are set here
    own = set(inspect.signature(finder).parameters) - set(_COMMON_ARGS)
    unknown = sorted(set(method_options) - own)
    if unknown:
        raise InvalidArgumentError(
            f"{', '.join(unknown)} {'is not an option' if len(unknown) == 1 else 'are not options'} of "
            f"method={method!r}; its own options are {sorted(own)} (see {finder.__name__})."
        )
    method_options = {**tuned, **method_options}
    threshold = _check_fraction("threshold", threshold, open_left=True)
    relative_threshold = _check_fraction("relative_threshold", relative_threshold, open_right=True)
    inner_ratio = _check_fraction("inner_ratio", inner_ratio, open_left=True, open_right=True)
    ring_width_px = _check_positive("ring_width_px", ring_width_px)
    min_d = _check_positive("min_diameter_px", min_diameter_px, allow_zero=True)
    smooth_sigma = _check_positive("smooth_sigma", smooth_sigma, allow_zero=True)
    min_score = _check_positive("min_score", min_score, allow_zero=True)
    if not isinstance(scales, str):
        scales = list(scales) if isinstance(scales, Iterable) else scales
    arr = _as_probability(prob, nan_policy)
    if max_diameter_px is None:
        max_d = max(float(min(arr.shape)), min_d)
    else:
        max_d = _check_positive("max_diameter_px", max_diameter_px)
    if max_d < min_d:
        raise InvalidArgumentError(
            f"max_diameter_px={max_diameter_px!r} is smaller than min_diameter_px={min_diameter_px!r}."
        )
    # search 20 % beyond the diameter range, so that a crater just outside it is found at its
    # own size (and then dropped) rather than at the nearest size searched
    plan = scale_plan(max(min_d / 1.2, 1.0), max(max_d * 1.2, 1.0), scales)  # validates scales
    if smooth_sigma > 0 and arr.size:
        arr = ndimage.gaussian_filter(arr, smooth_sigma)

    attrs = {
        "target": target,
        "method": method,
        "threshold": threshold,
        "relative_threshold": relative_threshold,
        "smooth_sigma": smooth_sigma,
        **method_options,
        "min_diameter_px": min_d,
        "max_diameter_px": max_d,
        "nms": nms,
        "min_score": min_score,
        "shape": list(arr.shape),
    }
    if method != "components":
        attrs["scales"] = [f for f, _, _ in plan]
    if arr.size == 0 or not np.any(arr >= threshold) or float(arr.max()) - float(arr.min()) <= 1e-6:
        # nothing above threshold, or a constant map: no circle can be told from the background
        out = empty_pixel_craters()
        out.attrs.update(attrs)
        return out

    common: dict[str, Any] = dict(
        target=target,
        threshold=threshold,
        relative_threshold=relative_threshold,
        inner_ratio=inner_ratio,
        ring_width_px=ring_width_px,
    )
    if method == "components":
        common["min_diameter_px"] = min_d
    else:
        common["plan"] = plan
    cand = finder(arr, **common, progress=progress, **method_options)
    keep = (cand["diameter_px"] >= min_d) & (cand["diameter_px"] <= max_d)
    out = nms_circles(cand[keep], rule=nms, threshold=nms_thr, contained=target == "filled")
    out = out[out["score"] >= min_score].reset_index(drop=True)
    out.attrs.update(attrs)
    return out


# --------------------------------------------------------------------------------------------
# validation


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidArgumentError(f"{name}={value!r} is not valid; use one of {', '.join(map(repr, choices))}.")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name}={value!r} must be a number, not a bool.")
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name}={value!r} must be a number.") from exc
    if not math.isfinite(out):
        raise InvalidArgumentError(f"{name}={value!r} must be finite.")
    return out


def _check_fraction(name: str, value: Any, *, open_left: bool = False, open_right: bool = False) -> float:
    v = _number(name, value)
    if (v <= 0 if open_left else v < 0) or (v >= 1 if open_right else v > 1):
        interval = f"{'(' if open_left else '['}0, 1{')' if open_right else ']'}"
        raise InvalidArgumentError(f"{name}={value!r} must lie in {interval}.")
    return v


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    v = _number(name, value)
    if v < 0 or (v == 0 and not allow_zero):
        raise InvalidArgumentError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'} pixels.")
    return v


def _as_probability(prob: Any, nan_policy: str = "zero") -> np.ndarray:
    """A float32 2-D copy of ``prob`` with NaN handled and the range checked."""
    if hasattr(prob, "dims") and hasattr(prob, "values"):  # xarray (computes a dask-backed one)
        prob = prob.values
    try:
        arr = np.asarray(prob)
    except Exception as exc:  # noqa: BLE001 (anything that cannot become an array)
        raise InvalidArgumentError(f"the probability map cannot be read as an array: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise InvalidArgumentError(
            f"the probability map must be numeric, got dtype {arr.dtype}; pass the network's float output."
        )
    if arr.ndim > 2 and arr.squeeze().ndim == 2:
        arr = arr.squeeze()  # e.g. a model's (1, y, x, 1) output
    if arr.ndim != 2:
        raise InvalidArgumentError(
            f"the probability map must be 2-D (y, x), got shape {np.shape(prob)}; take one image and one "
            "channel, e.g. model_output[0, ..., 0]."
        )
    arr = arr.astype(np.float32, copy=True)
    nan = np.isnan(arr)
    if nan.any():
        if nan_policy == "raise":
            raise InvalidArgumentError(
                f"the probability map has {int(nan.sum())} NaN pixel(s); use nan_policy='zero' to treat "
                "them as 'no crater', or fill them first."
            )
        arr[nan] = 0.0
    if np.isinf(arr).any():
        raise InvalidArgumentError("the probability map has infinite values; it must hold probabilities in [0, 1].")
    if arr.size and (arr.min() < -1e-3 or arr.max() > 1 + 1e-3):
        raise InvalidArgumentError(
            f"the probability map has values in [{arr.min():g}, {arr.max():g}], outside [0, 1]: pass "
            "probabilities (a sigmoid of logits; an 8-bit image divided by 255)."
        )
    np.clip(arr, 0.0, 1.0, out=arr)
    return arr


# --------------------------------------------------------------------------------------------
# circle geometry


def _fit_circle(cx: np.ndarray, cy: np.ndarray) -> tuple[float, float, float, float]:
    """Algebraic (Kasa) least-squares circle through points: centre, radius, rms residual."""
    xm, ym = cx.mean(), cy.mean()
    u, v = cx - xm, cy - ym
    a = np.column_stack([u, v, np.ones_like(u)])
    try:
        p, *_ = np.linalg.lstsq(a, u * u + v * v, rcond=None)
    except np.linalg.LinAlgError:
        return math.nan, math.nan, math.nan, math.inf
    a0, b0 = p[0] / 2.0, p[1] / 2.0
    r2 = p[2] + a0 * a0 + b0 * b0
    if not r2 > 0:
        return math.nan, math.nan, math.nan, math.inf
    r = math.sqrt(r2)
    rms = float(np.sqrt(np.mean((np.hypot(u - a0, v - b0) - r) ** 2)))
    return xm + a0, ym + b0, r, rms


def _coverage(cx: np.ndarray, cy: np.ndarray, x0: float, y0: float, bins: int = 16) -> float:
    """Fraction of the angular sectors around (x0, y0) that hold at least one point."""
    ang = np.arctan2(cy - y0, cx - x0)
    idx = np.floor((ang + math.pi) / (2 * math.pi) * bins).astype(int) % bins
    return np.unique(idx).size / bins


_EIGHT = np.ones((3, 3), dtype=bool)
# half-width of the window of the local maximum that relative_threshold refers to: a blurred
# edge reaches its plateau within about 3 sigma, and network outputs blur over 1-2 pixels
_LOCAL_MAX_HALF: int = 4


def _binarize(prob: np.ndarray, threshold: float, relative_threshold: float) -> np.ndarray:
    """Crater pixels: at least ``threshold``, and at least ``relative_threshold`` times the local maximum.

    The relative part puts a blurred edge at its half maximum whatever the crater's own peak
    probability, so a low ``threshold`` (to keep faint craters) does not inflate diameters.
    """
    mask = prob >= threshold
    if relative_threshold > 0:
        local = ndimage.maximum_filter(prob, size=2 * _LOCAL_MAX_HALF + 1, mode="constant")
        mask &= prob >= relative_threshold * local
    return mask


def _disks(region: np.ndarray, split: bool) -> list[tuple[float, float, float, np.ndarray]]:
    """Circles ``(x, y, r, piece)`` in ``region``'s own coordinates: one, or one per watershed piece.

    ``region`` is a boolean array with a false border of at least one pixel.
    """
    area = int(region.sum())
    edt = ndimage.distance_transform_edt(region)
    rin = float(edt.max())
    ys, xs = np.nonzero(region)
    # A disk of radius r has an inscribed distance of about r + 0.5 and an area of pi r**2;
    # a region much bigger than its inscribed circle is several touching or overlapping disks.
    if not split or area <= 1.3 * math.pi * rin**2 or rin < 2.0:
        return [(float(xs.mean()), float(ys.mean()), math.sqrt(area / math.pi), region)]
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    peaks = peak_local_max(
        edt,
        min_distance=max(1, int(0.35 * rin)),
        threshold_abs=max(1.5, 0.3 * rin),
        labels=region.astype(np.int32),
        exclude_border=False,
    )
    if len(peaks) < 2:
        return [(float(xs.mean()), float(ys.mean()), math.sqrt(area / math.pi), region)]
    markers = np.zeros(region.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    pieces = watershed(-edt, markers, mask=region)
    outside = ndimage.binary_dilation(~region, structure=_EIGHT)
    out = []
    for k in range(1, len(peaks) + 1):
        piece = pieces == k
        n = int(piece.sum())
        if n == 0:
            continue
        # the piece's share of the region's outer boundary is an arc of its own disk
        by, bx = np.nonzero(piece & outside)
        ok = False
        if bx.size >= 6:
            x0, y0, r, rms = _fit_circle(bx.astype(float), by.astype(float))
            r += 0.5  # boundary pixel centres lie half a pixel inside the edge
            py, px = peaks[k - 1]
            ok = (
                math.isfinite(r)
                and rms < 0.15 * r + 0.5
                and r <= 1.5 * rin
                and math.hypot(x0 - px, y0 - py) <= 0.5 * r + 1.0
                and _coverage(bx.astype(float), by.astype(float), x0, y0) >= 0.25
            )
        if not ok:
            # the inscribed circle of the piece
            d = np.where(piece, edt, 0.0)
            y0, x0 = np.unravel_index(int(np.argmax(d)), d.shape)
            r = float(d[y0, x0]) - 0.5
            x0, y0 = float(x0), float(y0)
        out.append((x0, y0, max(r, 0.5), piece))
    return out


# --------------------------------------------------------------------------------------------
# method 1: connected components


def find_circles_components(
    prob: np.ndarray,
    *,
    target: str = "filled",
    threshold: float = DEFAULT_THRESHOLD,
    relative_threshold: float = 0.5,
    inner_ratio: float = 0.7,
    ring_width_px: float = 2.0,
    min_diameter_px: float = 5.0,
    split: bool = True,
    max_rim_rms: float = 0.2,
    min_rim_coverage: float = 0.5,
    progress: bool = False,
) -> pd.DataFrame:
    """Candidate circles from the connected components of the thresholded map.

    The map is binarised at ``threshold`` and ``relative_threshold`` (see :func:`extract_craters`).

    * ``filled``: each component is a disk (centroid, equivalent diameter), or, when its area
      exceeds 1.3 times its inscribed circle's, several touching disks, split by a watershed on
      the distance transform; each piece gets the circle fitted to its share of the component's
      outer boundary (or its inscribed circle when that arc is too short).
    * ``outline`` / ``ring``: a component whose pixels lie close to one circle (rms distance
      below ``max_rim_rms`` times its radius, spread over at least ``min_rim_coverage`` of the
      angles) is a rim, open or closed, and gives that circle (scaled from the rim's middle to
      its outer edge).  Any other component (a small crater whose hole the network filled, or
      rims merged with a neighbour) has its holes filled and is treated as ``filled``.  A crater
      inside another's hole is a component of its own, so both are found.

    ``score`` is the mean probability over the component (or watershed piece).

    Parameters
    ----------
    prob
        2-D probability map with NaN already replaced (see :func:`extract_craters`).
    target, threshold, relative_threshold, inner_ratio, ring_width_px
        See :func:`extract_craters`.
    min_diameter_px
        Components smaller than a quarter of this disk's area are skipped as noise.
    split
        Split touching disks with the watershed.
    max_rim_rms, min_rim_coverage
        When a rim component counts as one circle (see above).
    progress
        Show a tqdm progress bar over the components.

    Returns
    -------
    pandas.DataFrame
        Candidate PixelCraters (duplicates not yet removed).
    """
    from tqdm.auto import tqdm

    prob = np.asarray(prob, dtype=np.float32)
    mask = _binarize(prob, threshold, relative_threshold)
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n == 0:
        return empty_pixel_craters()
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    min_area = max(3.0, 0.25 * math.pi * (min_diameter_px / 2.0) ** 2)
    holed = target != "filled"
    # the rim's middle relative to the crater's radius
    mid = (1.0 + inner_ratio) / 2.0 if target == "outline" else 1.0
    rows: list[tuple[float, float, float, float]] = []
    slices = ndimage.find_objects(labels)
    for i in tqdm(range(n), desc="components", disable=not progress, unit="comp"):
        if areas[i + 1] < min_area or slices[i] is None:
            continue
        sl = slices[i]
        y0, x0 = sl[0].start - 1, sl[1].start - 1
        comp = np.pad(labels[sl] == i + 1, 1)
        p = np.pad(prob[sl], 1)
        if holed:
            ys, xs = np.nonzero(comp)
            fx, fy, r, rms = _fit_circle(xs.astype(float), ys.astype(float))
            if (
                math.isfinite(r)
                and r >= 1.5
                and rms <= max_rim_rms * r
                and _coverage(xs.astype(float), ys.astype(float), fx, fy) >= min_rim_coverage
            ):
                if target == "ring":
                    radius = r
                else:
                    # thresholded rim pixels reach half a pixel short of the outer edge
                    radius = r / mid
                rows.append((fx + x0, fy + y0, 2.0 * radius, float(p[comp].mean())))
                continue
        # a hole in a filled disk is noise; a rim's hole is the crater's inside
        region = ndimage.binary_fill_holes(comp)
        for cx, cy, r, piece in _disks(region, split):
            # score on the probability of the pixels that made the circle (the rim, for rims)
            support = piece & comp
            score = float(p[support].mean()) if support.any() else float(p[piece].mean())
            rows.append((cx + x0, cy + y0, 2.0 * r, score))
    if not rows:
        return empty_pixel_craters()
    return _frame(*np.asarray(rows).T)


# --------------------------------------------------------------------------------------------
# multi-scale machinery shared by Hough and template matching


def _downsample(img: np.ndarray, f: int, how: str) -> np.ndarray:
    """Block mean or max over f x f blocks (the edge blocks padded with zeros)."""
    if f == 1:
        return img
    ny, nx = img.shape
    py, px = (-ny) % f, (-nx) % f
    if py or px:
        img = np.pad(img, ((0, py), (0, px)))
    blocks = img.reshape(img.shape[0] // f, f, img.shape[1] // f, f)
    return blocks.max(axis=(1, 3)) if how == "max" else blocks.mean(axis=(1, 3), dtype=np.float32)


def _vertex(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Abscissa of the vertex of the parabola through three points per row, clamped to them.

    ``x`` and ``y`` are ``(n, 3)``; rows whose middle point is not a maximum keep ``x[:, 1]``.
    """
    x0, x1, x2 = x.T
    y0, y1, y2 = y.T
    num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
    den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    peak = (y1 >= y0) & (y1 >= y2) & (den != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(peak, x1 - 0.5 * num / np.where(den == 0, 1, den), x1)
    lo = (x0 + x1) / 2
    hi = (x1 + x2) / 2
    return np.clip(v, lo, hi)


def _refine(maps: Sequence[np.ndarray | None], coords: np.ndarray, k: int, peaks: np.ndarray, *,
            to_ends: bool = False) -> np.ndarray:
    """Sub-pixel ``(x, y, coord)`` of ``peaks`` (rows, cols) found in ``maps[k]``.

    Parabolas through the peak and its neighbours along x, y and the map axis (``coords``, e.g.
    radii) locate each maximum between the samples.  With ``to_ends``, a peak whose value keeps
    rising along the map axis all the way to its first or last sample takes that sample's coord.
    The maps are read here; :func:`_refine_samples` computes from what is read.
    """
    m = maps[k]
    ny, nx = m.shape
    r, c = peaks[:, 0], peaks[:, 1]
    cs, rs = _neighbour_indices(r, c, ny, nx)
    available = np.array([mp is not None for mp in maps])
    # the values along the map axis at each peak: all maps for to_ends, else k - 1 .. k + 1
    wanted = range(len(maps)) if to_ends else range(max(k - 1, 0), min(k + 2, len(maps)))
    # the maps' own float type, as the values stacked from them before
    prof = np.full((len(peaks), len(maps)), np.nan, dtype=np.result_type(np.float16, *(mp.dtype for mp in maps
                                                                                    if mp is not None)))
    for j in wanted:
        if available[j]:
            prof[:, j] = maps[j][r, c]
    return _refine_samples(coords, k, cs, m[r[:, None], cs], rs, m[rs, c[:, None]], prof, available,
                           to_ends=to_ends)


def _neighbour_indices(r: np.ndarray, c: np.ndarray, ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """The columns ``c - 1, c, c + 1`` and rows ``r - 1, r, r + 1`` of peaks, clipped to the map."""
    cs = np.column_stack([np.maximum(c - 1, 0), c, np.minimum(c + 1, nx - 1)])
    rs = np.column_stack([np.maximum(r - 1, 0), r, np.minimum(r + 1, ny - 1)])
    return cs, rs


def _refine_samples(coords: np.ndarray, k: int, cs: np.ndarray, xv: np.ndarray, rs: np.ndarray, yv: np.ndarray,
                    prof: np.ndarray, available: np.ndarray, *, to_ends: bool = False) -> np.ndarray:
    """:func:`_refine` from the values read around each peak (shared with the accelerator's search).

    ``cs``/``xv`` and ``rs``/``yv``: the ``(n, 3)`` columns and rows of :func:`_neighbour_indices`
    and the map's values there; ``prof``: ``(n, len(coords))`` values at the peaks along the map
    axis (at least ``k - 1 .. k + 1``, all of them for ``to_ends``); ``available``: which maps exist.
    """
    n = len(cs)
    x = _vertex(cs.astype(float), xv)
    y = _vertex(rs.astype(float), yv)
    rad = np.full(n, float(coords[k]))
    last = len(coords) - 1
    if 0 < k < last and available[k - 1] and available[k + 1]:
        v = prof[:, k - 1 : k + 2]
        logs = np.log(np.asarray(coords[k - 1 : k + 2], dtype=float))
        rad = np.exp(_vertex(np.broadcast_to(logs, v.shape), v))
    if to_ends and n and available.all():
        # a circle whose correlation keeps rising, radius after radius, to the first or last
        # radius searched takes that radius, so that the caller leaves it to the neighbouring
        # scale (or drops it at the range's ends) instead of keeping a size that is only the
        # sample's (such circles piled up at the scales' boundary, 20 px)
        rising = np.diff(prof, axis=1)  # rising[:, j] = prof[j + 1] - prof[j]
        to_first = (rising[:, :k] < 0).all(axis=1) if k > 0 else np.zeros(n, bool)
        to_last = (rising[:, k:] > 0).all(axis=1) if k < last else np.zeros(n, bool)
        rad = np.where(to_first, float(coords[0]), np.where(to_last, float(coords[-1]), rad))
    return np.column_stack([x, y, rad])


def _widen(radii: np.ndarray, step: float, *, below: bool, above: bool) -> np.ndarray:
    """``radii`` with one more radius, a factor ``step`` away, on each side asked for."""
    lo = [radii[0] / step] if below else []
    hi = [radii[-1] * step] if above else []
    return np.concatenate([lo, radii, hi])


def _tiles(shape: tuple[int, int], tile: int, halo: int) -> list[tuple[slice, slice, slice, slice]]:
    """Overlapping windows ``(read_y, read_x, core_y, core_x)`` that cover ``shape``: cores of at most
    ``tile`` pixels, of equal sizes along each axis (a mosaic block of 1,376 px is two of 688, not
    1,024 and 352), so that the windows share their transforms' sizes, and with them the cached
    template spectra (:func:`_cached_spectrum`)."""
    def cores(n: int) -> list[tuple[int, int]]:
        if n <= 0:
            return []
        step = -(-n // -(-n // tile))  # ceil(n / number of tiles)
        return [(a, min(a + step, n)) for a in range(0, n, step)]

    out = []
    for y0, y1 in cores(shape[0]):
        for x0, x1 in cores(shape[1]):
            read = (slice(max(y0 - halo, 0), min(y1 + halo, shape[0])), slice(max(x0 - halo, 0), min(x1 + halo, shape[1])))
            out.append((*read, slice(y0, y1), slice(x0, x1)))
    return out


def _multiscale(
    prob: np.ndarray,
    plan: Sequence[tuple[int, float, float]],
    prepare: Callable[[np.ndarray, int], np.ndarray],
    search: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    radius_step: float,
    integer_radii: bool,
    progress: bool,
    desc: str,
    radius_of: Callable[[np.ndarray], np.ndarray] = lambda r: r,
    widen: bool = False,
) -> pd.DataFrame:
    """Run ``search(image, radii, f) -> (n, 4) [x, y, r, score]`` per scale and tile; map back.

    ``r`` is the searched radius (pixels of the scale) at which the circle peaked, and
    ``radius_of`` turns it into the crater's radius.  Circles at the smallest radius of the
    finest scale or the largest of the coarsest one are dropped: the crater may lie beyond the
    range searched, so its size is unknown.  With ``widen``, each band is searched one radius
    further where a neighbouring scale continues it, so that a circle at the band's old edge has
    a neighbour to refine its radius with; circles at those added radii are left to the
    neighbouring scale.
    """
    from tqdm.auto import tqdm

    if not radius_step > 1.0:
        raise InvalidArgumentError(f"radius_step={radius_step!r} must be > 1 (a ratio between radii, e.g. 1.1).")
    # every scale's map and radii first, then all the tiles of all the scales searched side by side
    jobs = []
    for i, (f, lo, hi) in enumerate(plan):
        img = prepare(prob, f)
        rlo, rhi = lo / f, hi / f
        n = max(1, int(math.ceil(math.log(rhi / rlo) / math.log(radius_step)))) if rhi > rlo else 0
        radii = rlo * radius_step ** np.arange(n + 1)
        radii = radii[radii <= rhi * (1 + 1e-9)]
        if integer_radii:
            radii = np.unique(np.clip(np.round(radii), 1, None)).astype(int)
        if radii.size == 0:
            continue
        # Where a neighbouring scale covers the radii beyond this band, search one more radius
        # on that side: a peak at the band's old edge radius then has a neighbour to refine its
        # radius with, instead of keeping the edge radius itself (template matching piled craters
        # of 15-19 px up at exactly 20 px), and the added radius's own peaks are dropped below.
        if widen:  # (real radii only: Hough's integer radii do not widen)
            radii = _widen(radii, radius_step, below=i > 0, above=i < len(plan) - 1)
        halo = int(math.ceil(float(np.max(radii)) * 1.5)) + 3
        jobs += [(i, f, radii, img, tile) for tile in _tiles(img.shape, _TILE, halo)]
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, unit="tile")

    def run(i: int, f: int, radii: np.ndarray, img: np.ndarray, tile: tuple) -> np.ndarray:
        ry, rx = tile[:2]
        res = search(img[ry, rx], radii, f)
        bar.update()
        return res

    results = side_by_side(run, *zip(*jobs)) if jobs else []
    bar.close()
    found = []
    for (i, f, radii, _, (ry, rx, cy, cx)), res in zip(jobs, results):
        if len(res) == 0:
            continue
        res = np.asarray(res, dtype=float)
        res[:, 0] += rx.start
        res[:, 1] += ry.start
        # keep a circle in the one tile whose core holds its centre
        core = (res[:, 0] >= cx.start) & (res[:, 0] < cx.stop) & (res[:, 1] >= cy.start) & (res[:, 1] < cy.stop)
        res = res[core]
        # circles at the searched radii's ends: the crater may lie beyond them (at the finest
        # scale's smallest and the coarsest one's largest radius its size is unknown; at a
        # widened band's added radii the neighbouring scale measures it)
        if widen or i == 0:
            res = res[res[:, 2] > radii[0] * (1 + 1e-9)]
        if widen or i == len(plan) - 1:
            res = res[res[:, 2] < radii[-1] * (1 - 1e-9)]
        res[:, 2] = radius_of(res[:, 2])
        # back to full-resolution pixel index coordinates
        res[:, 0] = f * res[:, 0] + (f - 1) / 2.0
        res[:, 1] = f * res[:, 1] + (f - 1) / 2.0
        res[:, 2] = 2.0 * f * res[:, 2]
        found.append(res)
    if not found:
        return empty_pixel_craters()
    allc = np.concatenate(found)
    return _frame(allc[:, 0], allc[:, 1], allc[:, 2], allc[:, 3])


# --------------------------------------------------------------------------------------------
# method 2: Hough transform


def find_circles_hough(
    prob: np.ndarray,
    *,
    target: str = "filled",
    threshold: float = DEFAULT_THRESHOLD,
    relative_threshold: float = 0.5,
    inner_ratio: float = 0.7,
    ring_width_px: float = 2.0,
    plan: Sequence[tuple[int, float, float]] | None = None,
    hough_threshold: float = 0.4,
    progress: bool = False,
) -> pd.DataFrame:
    """Candidate circles from the circle Hough transform, searched at several scales.

    The map is binarised (``threshold``, ``relative_threshold``); at each scale it is downsampled
    (a block is set when most of it is set for ``filled``, when any of it is for rims, so a thin
    rim survives) and reduced to edges: the inner boundary of the mask for
    ``filled``, its skeleton (the rims' middles) for ``outline``/``ring``.
    :func:`skimage.transform.hough_circle` (normalised: the fraction of a circle's perimeter
    that lies on edges) is computed for integer radii of the scale's band, and peaks at least
    ``hough_threshold`` (:func:`skimage.transform.hough_circle_peaks`) are candidates with that
    fraction as ``score``.

    Parameters
    ----------
    prob
        2-D probability map with NaN already replaced.
    target, threshold, relative_threshold, inner_ratio, ring_width_px
        See :func:`extract_craters`.
    plan
        Scales and radius bands, from :func:`scale_plan` (default: 5 to 300 px).
    hough_threshold
        Minimum fraction of the perimeter on edges, in (0, 1].

    Returns
    -------
    pandas.DataFrame
        Candidate PixelCraters (duplicates not yet removed).
    """
    from skimage.morphology import skeletonize
    from skimage.transform import hough_circle, hough_circle_peaks

    hough_threshold = _check_fraction("hough_threshold", hough_threshold, open_left=True)
    plan = scale_plan(5, 300) if plan is None else plan
    holed = target != "filled"
    mid = (1.0 + inner_ratio) / 2.0 if target == "outline" else 1.0

    binary = _binarize(np.asarray(prob, dtype=np.float32), threshold, relative_threshold).astype(np.float32)

    def prepare(img: np.ndarray, f: int) -> np.ndarray:
        # any rim pixel keeps a block (a thin rim survives); a disk keeps blocks it mostly covers
        return _downsample(binary, f, "max" if holed else "mean") >= 0.5

    def search(mask: np.ndarray, radii: np.ndarray, f: int) -> np.ndarray:
        if holed:
            edges = skeletonize(mask)
        else:
            edges = mask & ~ndimage.binary_erosion(mask, border_value=0)
        # Thicken the edges by a pixel: a digital circle of integer radius crosses a one-pixel
        # edge of a slightly different radius only in places, and would get half its votes.
        edges = ndimage.binary_dilation(edges, structure=_EIGHT)
        if not edges.any():
            return np.empty((0, 4))
        acc = hough_circle(edges, radii, normalize=True).astype(np.float32)
        # The thick edges give flat-topped peaks; smoothing puts each maximum in the middle of
        # its plateau (peak finding would take the plateau's first pixel, a bias to the top left).
        acc = ndimage.gaussian_filter(acc, sigma=(0.0, 1.0, 1.0))
        md = max(2, int(radii.min() // 2))
        score, cx, cy, rr = hough_circle_peaks(
            acc, radii, min_xdistance=md, min_ydistance=md, threshold=hough_threshold
        )
        if len(score) == 0:
            return np.empty((0, 4))
        k = np.searchsorted(radii, rr)
        xyr = np.empty((len(score), 3))
        for kk in np.unique(k):
            sel = k == kk
            xyr[sel] = _refine(acc, radii, int(kk), np.column_stack([cy[sel], cx[sel]]))
        return np.column_stack([xyr, score])

    def radius_of(r: np.ndarray) -> np.ndarray:
        # skeleton pixels lie on the rim's middle; the thickened boundary is centred on the
        # outermost pixel centres, half a pixel inside the edge
        return r / mid if holed else r + 0.5

    # integer radii in pixels of each scale: hough_circle draws integer circles
    return _multiscale(prob, plan, prepare, search, 1.15, True, progress, "hough", radius_of)


# --------------------------------------------------------------------------------------------
# method 3: template matching


def _template(kind: str, r: float, inner_ratio: float, width: float) -> np.ndarray:
    """An anti-aliased template of one target of radius ``r`` with a margin of background."""
    half = int(math.ceil(r + max(2.0, 0.3 * r) + (width / 2 if kind == "ring" else 0)))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    d = np.hypot(xx, yy)
    if kind == "ring":
        t = np.clip(width / 2.0 + 0.5 - np.abs(d - r), 0.0, 1.0)
    else:
        t = np.clip(r + 0.5 - d, 0.0, 1.0)
        if kind == "outline" and inner_ratio * r >= 1.0:
            t = t - np.clip(inner_ratio * r + 0.5 - d, 0.0, 1.0)
    return t.astype(np.float32)


def _float_type(dtype: np.dtype) -> type:
    """The float type :func:`skimage.feature.match_template` computes in for an image dtype."""
    return np.float32 if dtype in (np.float16, np.float32) else np.float64


def _float32_sums_exact(values: np.ndarray) -> bool:
    """Whether float32 sums of any of ``values``, in any order, are exact.

    They are when the values lie on a grid of ``2**-e`` and their absolute sum is below
    ``2**24`` steps of it: binary maps up to 16 Mpx, and their block means.
    """
    total = float(np.abs(values).sum(dtype=np.float64))
    if total == 0.0:
        return True
    scale = 1.0
    while total * scale < 2.0**24:
        scaled = values * scale  # a power of two: exact
        if np.array_equal(scaled, np.rint(scaled)):
            return True
        scale *= 2.0
    return False


def _integral(img: np.ndarray, pad: int) -> np.ndarray:
    """Summed-area table ``I[i, j] = img[:i, :j].sum()``, edge-padded by ``pad``.

    With the edge padding, the sum over a window clipped to the image is four plain slices.
    The table is float32 where that is exact (:func:`_float32_sums_exact`: half the memory
    traffic of float64, the same window sums), else float64.
    """
    ny, nx = img.shape
    table = np.zeros((ny + 1, nx + 1), np.float32 if _float32_sums_exact(img) else np.float64)
    np.cumsum(img, axis=0, dtype=table.dtype, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return np.pad(table, pad, mode="edge")


def _correlation_spectrum(tpl: np.ndarray, ly: int, lx: int) -> np.ndarray:
    """The factor that turns an image's ``rfft2`` (shape ``(ly, lx)``) into its correlation with ``tpl``.

    That is the complex conjugate of the ``rfft2`` of the template placed with its centre
    ``(m // 2, n // 2)`` at the origin (wrapped around), so that the inverse transform of the
    product is the correlation centred like ``match_template(..., pad_input=True)``.  Only the
    template's ``m`` rows are transformed along x (the other rows are zeros; the result is the
    same as ``rfft2``'s, bit for bit, in half the time).
    """
    from scipy import fft as sfft

    m, n = tpl.shape
    hy, hx = m // 2, n // 2
    rows = np.zeros((m, lx), tpl.dtype)
    rows[:, : n - hx] = tpl[:, hx:]
    rows[:, lx - hx :] = tpl[:, :hx]
    rows = sfft.rfft(rows, axis=1, workers=_fft_workers(ly, lx))
    spec = np.zeros((ly, rows.shape[1]), rows.dtype)
    spec[: m - hy] = rows[hy:]
    spec[ly - hy :] = rows[:hy]
    spec = sfft.fft(spec, axis=0, overwrite_x=True, workers=_fft_workers(ly, lx))
    return np.conjugate(spec, out=spec)


# Template spectra reused between calls: a detect run or a mosaic's blocks search the same radii on
# maps of the same few sizes, and a spectrum costs as much as the inverse transform it feeds.
_SPECTRA: OrderedDict[tuple, np.ndarray] = OrderedDict()
_SPECTRA_LOCK = threading.Lock()
#: Bytes of template spectra kept between calls (least recently used dropped first).  The finest
#: scale of a map of 1,024² or more (a tile of :data:`_TILE` px) searches ~18 radii, ~80 MB of
#: spectra (~100 MB with the coarser scales'): at 64 MiB every spectrum was dropped before its next
#: use, and computing them took a fifth of the finder's time.  (160 MiB only held more memory on a
#: cluster's workers, whose blocks' tiles are smaller.)
SPECTRUM_CACHE_BYTES = 112 * 2**20


#: Transforms up to this many pixels run on one thread: for a chip's map, spreading each transform
#: over the cores cost more than it gained (the finder 15 % slower on 2 cores), and many images or
#: mosaic blocks already run side by side.  Larger ones use every core.  The numbers are the same.
SMALL_FFT_PX = 2**20


def _fft_workers(ly: int, lx: int) -> int:
    """The ``workers`` of scipy's FFTs for a transform of ``ly`` x ``lx``."""
    return 1 if ly * lx <= SMALL_FFT_PX or getattr(_ONE_THREAD, "on", False) else -1


_ONE_THREAD = threading.local()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Within the block, this thread's finder work stays on this thread: its FFTs run on one thread
    whatever their size, and :func:`side_by_side` runs its items one after another (for callers
    that already run maps or windows side by side on every core).  The numbers are the same."""
    before = getattr(_ONE_THREAD, "on", False)
    _ONE_THREAD.on = True
    try:
        yield
    finally:
        _ONE_THREAD.on = before


#: Maps (``detect``'s images and levels), or tiles of one map's scales, searched side by side by the
#: circle finder (None: one per core this process may use; 1: one after another).  Most of a search
#: (FFTs, array arithmetic) releases the GIL, so the other cores would idle otherwise.  The craters
#: are the same either way.
FINDER_THREADS: int | None = None


def side_by_side(fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
    """``[fn(*args) for args in zip(*iterables)]``, on :data:`FINDER_THREADS` threads.

    Each call's FFTs keep to one thread (the calls already fill the cores), and a call made from
    inside another ``side_by_side`` runs its items one after another (no pool within a pool).
    After an error or Ctrl-C, the items not yet started are dropped, not waited for.
    """
    from .cluster import cpu_count

    items = list(zip(*iterables))
    threads = min(len(items), FINDER_THREADS or cpu_count())
    if threads <= 1 or getattr(_ONE_THREAD, "on", False):
        return [fn(*args) for args in items]
    from concurrent.futures import ThreadPoolExecutor

    def one(args: tuple) -> Any:
        with one_thread():
            return fn(*args)

    pool = ThreadPoolExecutor(threads, thread_name_prefix="marscraters-finder")
    try:
        return list(pool.map(one, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _cached_spectrum(tpl: np.ndarray, ly: int, lx: int) -> np.ndarray:
    """:func:`_correlation_spectrum`, kept for the next map of the same transform size.

    The key is the template's exact bytes, so a hit returns the very array a fresh computation
    would; the arrays are read-only, since threads of one process share them.
    """
    key = (tpl.shape, tpl.dtype.str, ly, lx, tpl.tobytes())
    spec = _lru_get(_SPECTRA, _SPECTRA_LOCK, key)
    if spec is None:
        spec = _correlation_spectrum(tpl, ly, lx)
        spec.flags.writeable = False
        _lru_put(_SPECTRA, _SPECTRA_LOCK, key, spec, SPECTRUM_CACHE_BYTES)
    return spec


def _lru_get(cache: OrderedDict, lock: threading.Lock, key: Any) -> Any:
    """``cache[key]`` (marked as just used), or None."""
    with lock:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def _lru_put(cache: OrderedDict, lock: threading.Lock, key: Any, value: Any, limit: int) -> None:
    """Keep ``value`` (anything with ``nbytes``) under ``key``, the least recently used entries
    dropped beyond ``limit`` bytes in all; a value larger than ``limit`` is not kept."""
    if value.nbytes > limit:
        return
    with lock:
        cache[key] = value
        total = sum(v.nbytes for v in cache.values())
        while total > limit:
            total -= cache.popitem(last=False)[1].nbytes


def _reference_ncc_bank(img: np.ndarray, templates: Sequence[np.ndarray]) -> list[np.ndarray]:
    """What :func:`_ncc_bank` computes, the slow way: ``match_template`` per template.

    The template finder's correlation before its speed-up, kept as the oracle that the tests and
    ``benchmarks/`` compare :func:`_ncc_bank` against.  A template larger than the image is matched
    on the zero-padded image and the result cropped back.
    """
    from skimage.feature import match_template

    maps = []
    for tpl in templates:
        n = tpl.shape[0]
        if n < min(img.shape):
            maps.append(match_template(img, tpl, pad_input=True))
        else:
            ncc = match_template(np.pad(img, n), tpl, pad_input=True)
            maps.append(np.ascontiguousarray(ncc[n:-n, n:-n]))
    return maps


def _reference_peak_local_max(img: np.ndarray, min_distance: int, threshold: float) -> np.ndarray:
    """What :func:`_peak_local_max` computes, through skimage (the oracle, as above)."""
    from skimage.feature import peak_local_max

    return peak_local_max(img, min_distance=min_distance, threshold_abs=threshold, exclude_border=False)


def _ncc_bank(img: np.ndarray, templates: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Normalised cross-correlation of one image with each of several templates.

    The result for each template equals ``skimage.feature.match_template(img, template,
    pad_input=True)`` (zero padding, output centred on the template's centre ``(m // 2, n //
    2)``, 0 where the denominator is at most the float type's eps), except that a template
    may be larger than the image: the image is then zero-padded, as if by ``np.pad(img, n)``
    and a crop of the result.  Templates are cast to the float type skimage would use for the
    image (float32 for float32 input).

    skimage pads the image and transforms it, and recomputes the window sums of the image and
    of its square with cumulative sums, for every template.  Here the image's spectrum (one
    real FFT, padded to a fast length that leaves room for the largest template, so that the
    circular correlation wraps onto zeros only) and its summed-area tables are computed once;
    each template then costs its own (half-pruned) FFT, a product of spectra, one inverse FFT
    and window sums read off the shared tables (four slices each).

    The window sums are exact for the template finder's binary and block-averaged maps (as are
    skimage's), and the numerator and denominator use the same float operations in the same
    order as skimage, so the result differs from skimage's by FFT rounding only (~1e-6 in
    float32): the same where the window is constant, and the same ties unless rounding broke them
    differently.  For other images skimage's float32 cumulative sums round (errors up to ~1e-4
    on a random 200² image) where these sums do not.
    """
    from scipy import fft as sfft

    ftype = _float_type(np.asarray(img).dtype)
    img = np.asarray(img, dtype=ftype)
    tpls = [np.asarray(t, dtype=ftype) for t in templates]
    if img.ndim != 2 or any(t.ndim != 2 or t.size == 0 for t in tpls):
        raise ValueError("_ncc_bank needs a 2-D image and non-empty 2-D templates")
    ny, nx = img.shape
    if not tpls or img.size == 0:
        return [np.zeros((ny, nx), ftype) for _ in tpls]
    my = max(t.shape[0] for t in tpls)
    mx = max(t.shape[1] for t in tpls)
    ly = sfft.next_fast_len(ny + my - 1, real=True)
    lx = sfft.next_fast_len(nx + mx - 1, real=True)
    workers = _fft_workers(ly, lx)
    spectrum = sfft.rfft2(img, s=(ly, lx), workers=workers)
    pad = max(my, mx)
    table = _integral(img, pad)
    squared = img * img
    # binary maps (the finest scale) are their own square: one table serves both sums
    table2 = table if np.array_equal(squared, img) else _integral(squared, pad)
    del squared
    eps = np.finfo(ftype).eps

    # work arrays, reused for every template
    raw = [np.empty((ny, nx), t.dtype) for t in ((table,) if table2 is table else (table, table2))]
    sums = [r if r.dtype == ftype else np.empty((ny, nx), ftype) for r in raw]
    work = np.empty((ny, nx), ftype)
    flat = np.empty((ny, nx), bool)

    def window_sum(k: int, m: int, n: int) -> np.ndarray:
        # sum of img[y - m // 2 : y - m // 2 + m, x - n // 2 : x - n // 2 + n] (clipped) at every (y, x)
        tab, s = (table, table2)[k], raw[k]
        a, b = pad - m // 2, pad - n // 2
        np.subtract(tab[a + m : a + m + ny, b + n : b + n + nx], tab[a : a + ny, b + n : b + n + nx], out=s)
        s -= tab[a + m : a + m + ny, b : b + nx]
        s += tab[a : a + ny, b : b + nx]
        if sums[k] is not s:
            np.copyto(sums[k], s, casting="same_kind")
        return sums[k]

    out = []
    for tpl in tpls:
        m, n = tpl.shape
        kspec = spectrum * _cached_spectrum(tpl, ly, lx)
        # irfft2, with the transform along x only for the rows kept
        kspec = sfft.ifft(kspec, axis=0, overwrite_x=True, workers=workers)
        xcorr = sfft.irfft(kspec[:ny], n=lx, axis=1, workers=workers)[:, :nx]
        del kspec

        s1 = window_sum(0, m, n)
        s2 = s1 if table2 is table else window_sum(1, m, n)
        # numerator and denominator with the same float operations as skimage
        tmean = tpl.mean()
        volume = m * n
        ssd = np.sum((tpl - tmean) ** 2)
        response = np.subtract(xcorr, np.multiply(s1, tmean, out=work))
        del xcorr
        denominator = np.multiply(s1, s1, out=work)
        np.divide(denominator, volume, out=denominator)
        np.subtract(s2, denominator, out=denominator)
        denominator *= ssd
        np.maximum(denominator, 0, out=denominator)
        np.sqrt(denominator, out=denominator)
        # where the window is (nearly) constant the response is 0: divide by infinity there
        np.less_equal(denominator, eps, out=flat)
        denominator[flat] = np.inf
        np.divide(response, denominator, out=response)
        out.append(response)
    return out


def _peak_local_max(img: np.ndarray, min_distance: int, threshold: float) -> np.ndarray:
    """``skimage.feature.peak_local_max(img, min_distance, threshold_abs=threshold, exclude_border=False)``.

    The same peaks in the same order (rows, cols; by decreasing value, ties in raster order), for
    a 2-D image and ``min_distance >= 1``: pixels above ``threshold`` that equal the maximum of
    their ``(2 min_distance + 1)``-square window (clipped to the image, which is what
    ``mode="nearest"`` amounts to), none in a constant image, then greedily thinned so that no
    two are closer than ``min_distance`` (Chebyshev distance), the highest first.  Only the
    pixels above the threshold -- few, in a correlation map -- have their window maximum
    computed, unless so many are that a maximum filter over the whole image is cheaper.
    """
    img = np.asarray(img)
    md = int(min_distance)
    if md < 1 or img.ndim != 2:
        raise ValueError("_peak_local_max needs a 2-D image and min_distance >= 1")
    ny, nx = img.shape
    flat = np.flatnonzero(img > threshold)
    if flat.size == 0:
        return np.empty((0, 2), dtype=np.intp)
    if flat.size == img.size > 1 and img.min() == img.max():
        # every pixel equals its window's maximum: skimage finds no peak in a trivial image (an
        # image with pixels on both sides of the threshold is not constant)
        return np.empty((0, 2), dtype=np.intp)
    rows, cols = np.divmod(flat, nx)
    values = img.ravel()[flat]
    side = 2 * md + 1
    if img.size == 1:
        keep = np.ones(1, dtype=bool)
    elif flat.size * side * side < img.size // 2:
        # the window maximum at the candidates only, one window row at a time
        cc = np.clip(cols[:, None] + np.arange(-md, md + 1), 0, nx - 1)
        wmax = values.copy()
        for dy in range(-md, md + 1):
            rr = np.clip(rows + dy, 0, ny - 1)
            np.maximum(wmax, img[rr[:, None], cc].max(axis=1), out=wmax)
        keep = values == wmax
    else:
        keep = values == ndimage.maximum_filter(img, size=side, mode="nearest").ravel()[flat]
    return _thin_peaks(rows[keep], cols[keep], values[keep], md)


def _thin_peaks(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, min_distance: int) -> np.ndarray:
    """Local maxima (given in raster order) sorted by decreasing value, ties in raster order, then
    greedily thinned so that no two are closer than ``min_distance`` (the highest first): the last
    step of :func:`_peak_local_max`, shared with the accelerator's search."""
    order = np.argsort(-values, kind="stable")
    coords = np.column_stack([rows[order], cols[order]]).astype(np.intp, copy=False)
    if min_distance > 1 and len(coords) > 1:
        # closer than min_distance: Chebyshev distance <= min_distance - 1 between integer coordinates
        neighbours = cKDTree(coords).query_ball_point(coords, r=min_distance - 0.5, p=np.inf)
        alive = np.ones(len(coords), dtype=bool)
        for i, near in enumerate(neighbours):
            if alive[i]:
                alive[near] = False
                alive[i] = True
        coords = coords[alive]
    return coords


def find_circles_template(
    prob: np.ndarray,
    *,
    target: str = "filled",
    threshold: float = DEFAULT_THRESHOLD,
    relative_threshold: float = 0.5,
    inner_ratio: float = 0.7,
    ring_width_px: float = 2.0,
    plan: Sequence[tuple[int, float, float]] | None = None,
    template_threshold: float = 0.5,
    radius_step: float = 1.1,
    engine: str = "auto",
    progress: bool = False,
) -> pd.DataFrame:
    """Candidate circles by template matching (DeepMoon's circle finder), at several scales.

    As in DeepMoon, the map is first binarised (at ``threshold``; and ``relative_threshold``);
    each scale block-averages it.
    For radii spaced by a factor ``radius_step`` over the scale's band, the image is
    cross-correlated (normalised, zero-padded: :func:`skimage.feature.match_template` with
    ``pad_input=True``) with an anti-aliased template of the target's own shape -- a disk, an
    annulus from ``inner_ratio`` to 1, or a ring of ``ring_width_px`` (DeepMoon's only template,
    for its ring targets) -- with a margin of background.  Local maxima of the correlation above
    ``template_threshold`` (DeepMoon: 0.5; :func:`skimage.feature.peak_local_max` with
    ``min_distance = r // 2``) are candidates, with the correlation as ``score``.  Both steps
    are computed by private equivalents of the skimage functions that share the work between
    the radii of a scale (:func:`_ncc_bank`, :func:`_peak_local_max`; 3-4x faster, the same
    craters).

    Parameters
    ----------
    prob
        2-D probability map with NaN already replaced.
    target, threshold, relative_threshold, inner_ratio, ring_width_px
        See :func:`extract_craters`.
    plan
        Scales and radius bands, from :func:`scale_plan` (default: 5 to 300 px).
    template_threshold
        Minimum correlation, in (0, 1].
    radius_step
        Ratio between successive radii (> 1).
    engine
        Where each scale is searched: ``"numpy"`` (on the host), ``"keras"`` (Keras ops on the
        backend's device, :mod:`marscraters.extract_ops`: beside the network on a GPU), or
        ``"auto"`` (``"keras"`` where Keras computes on a visible GPU).  The two find the same
        circles up to the FFTs' rounding (~1e-6 in the scores).  Maps whose float32 sums would
        round (coarse scales) are searched on the host whatever the engine.

    Returns
    -------
    pandas.DataFrame
        Candidate PixelCraters (duplicates not yet removed).
    """
    from .extract_ops import _search_map, exact_sums, resolve_engine

    template_threshold = _check_fraction("template_threshold", template_threshold, open_left=True)
    on_device = resolve_engine(engine) == "keras"
    plan = scale_plan(5, 300) if plan is None else plan
    binary = _binarize(np.asarray(prob, dtype=np.float32), threshold, relative_threshold).astype(np.float32)

    def prepare(img: np.ndarray, f: int) -> np.ndarray:
        return _downsample(binary, f, "mean")

    def search(img: np.ndarray, radii: np.ndarray, f: int) -> np.ndarray:
        if not img.any():
            return np.empty((0, 4))
        width = max(ring_width_px / f, 1.0)
        templates = [_template(target, float(r), inner_ratio, width) for r in radii]
        # (the device's float32 window sums must be exact, as the host's are: maps whose sums, or
        # whose squares' sums, are not -- coarse scales' block means -- stay on the host, where
        # float64 sums take over)
        if on_device and exact_sums(img):
            return _search_map(img, templates, radii, template_threshold)
        # one FFT of the image and one pair of summed-area tables serve all the radii
        maps = _ncc_bank(img, templates)
        out = []
        for k, (r, ncc) in enumerate(zip(radii, maps)):
            peaks = _peak_local_max(ncc, max(1, int(r // 2)), template_threshold)
            if len(peaks):
                xyr = _refine(maps, radii, k, peaks, to_ends=True)
                out.append(np.column_stack([xyr, ncc[peaks[:, 0], peaks[:, 1]]]))
        return np.concatenate(out) if out else np.empty((0, 4))

    # a ring's correlation peaks at its radius, so a circle still rising at the end of a band
    # belongs to the next scale (Hough's thick-edge votes have no such peak: it keeps the old rule)
    return _multiscale(prob, plan, prepare, search, radius_step, False, progress, "template", widen=True)


# --------------------------------------------------------------------------------------------
# georeferencing


def to_catalog(craters: pd.DataFrame, mosaic: Any, *, attrs: dict[str, Any] | None = None) -> Any:
    """Georeference PixelCraters found on a mosaic's grid: a Catalog.

    Centres go through :meth:`marscraters.crs.Grid.pixel_to_lonlat`.  On an equirectangular grid
    a crater of diameter D is an ellipse ``D * px_x`` wide and ``D * px_y`` tall (pixels per km
    from :meth:`~marscraters.crs.Grid.km_to_pixels`; ``px_x`` grows as 1/cos(lat)); a fitted
    circle's diameter is close to the geometric mean of the two, so
    ``diameter_km = diameter_px / sqrt(px_x * px_y)`` (exact at the equator).

    Parameters
    ----------
    craters
        PixelCraters from :func:`extract_craters` run on (a probability map on the grid of)
        ``mosaic``.
    mosaic
        The Mosaic, or any georeferenced DataArray/Dataset on the same ``(y, x)`` grid.
    attrs
        Provenance for the catalog's ``.attrs`` (the extraction's ``attrs`` are included).

    Returns
    -------
    geopandas.GeoDataFrame
        A Catalog with ``crater_id``, ``lat``, ``lon``, ``diameter_km`` and ``score``.

    Examples
    --------
    >>> from marscraters.mosaic import mosaic_from_array
    >>> ds = mosaic_from_array(np.zeros((256, 256)), bounds=(10, -0.5, 11, 0.5))  # 256 px/deg
    >>> px = pd.DataFrame({"x": [127.5], "y": [127.5], "diameter_px": [25.6], "score": [0.9]})
    >>> cat = to_catalog(px, ds)
    >>> round(float(cat.lon[0]), 3), round(float(cat.lat[0]), 3), round(float(cat.diameter_km[0]), 2)
    (10.5, 0.0, 5.93)
    """
    from .catalog import make_catalog
    from .crs import Grid

    if not isinstance(craters, pd.DataFrame) or any(c not in craters.columns for c in PIXEL_CRATER_COLUMNS):
        raise InvalidArgumentError(
            "to_catalog needs PixelCraters: a DataFrame with x, y, diameter_px and score (what "
            "extract_craters returns)."
        )
    grid = Grid.from_dataset(mosaic)
    grid.check_cylindrical()  # km per pixel below is a longitude/latitude lattice's
    x = craters["x"].to_numpy(dtype=float)
    y = craters["y"].to_numpy(dtype=float)
    lon, lat = grid.pixel_to_lonlat(x, y)
    lat = np.asarray(lat, dtype=float)
    if x.size:
        px_x, px_y = grid.km_to_pixels(np.ones_like(lat), np.clip(lat, -89.999, 89.999))
        diameter_km = craters["diameter_px"].to_numpy(dtype=float) / np.sqrt(np.abs(px_x * px_y))
    else:
        diameter_km = np.empty(0)
    meta = {"source": "marscraters.extract", **dict(craters.attrs), **(attrs or {})}
    return make_catalog(lat, lon, diameter_km, extra={"score": craters["score"].to_numpy(dtype=float)}, attrs=meta)
