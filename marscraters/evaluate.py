"""Crater-level scores: match detected craters to a reference catalog, then count.

Three matching rules are implemented, each as in the work that introduced it:

``"deepmoon"``
    Silburt et al. (2019), *Lunar crater identification via deep learning*, Icarus 317; code
    ``silburt/DeepMoon``, ``utils/template_match_target.py`` (``template_match_t2c``).  A
    detection and a catalog crater match when
    ``((x1 - x2)**2 + (y1 - y2)**2) / min(r1, r2)**2 < 1.8`` **and**
    ``abs(r1 - r2) / min(r1, r2) < 1.0`` (radii, strict inequalities).
``"iou"``
    The exact intersection over union of the two circles is ``>= 0.5``.
``"pycda"``
    PyCDA (``AlliedToasters/PyCDA``, ``pycda/error_stats.py``, ``ErrorAnalyzer``): the Euclidean
    distance between ``(x, y, d)`` triples, divided by the catalog crater's diameter, is
    ``<= 0.4``.

Every rule is a function of three numbers only: the separation of the two centres and the two
diameters.  So the same code scores pixel catalogs (PixelCraters: ``x``, ``y``, ``diameter_px``,
separation in pixels) and georeferenced catalogs (Catalog: ``lat``, ``lon``, ``diameter_km``,
separation = great-circle distance on the Mars sphere in km).

Matching is one-to-one.  ``assignment="greedy"`` takes candidate pairs in order of increasing
cost (ties: lower prediction row, then lower catalog row) and keeps a pair when neither member is
taken; the costs are ``(dx**2 + dy**2 + dr**2) / min(r)**2`` for DeepMoon (closest in
``(x, y, r)``, as DeepMoon's earlier release chose among duplicates), ``1 - IoU`` for IoU, and the
normalised ``(x, y, d)`` distance for PyCDA (which is how PyCDA walks its neighbours).
``assignment="hungarian"`` solves the assignment exactly
(:func:`scipy.optimize.linear_sum_assignment`, per connected group of candidates): first the
largest number of matches, then the smallest total cost.  Defaults: greedy for DeepMoon and
PyCDA (their own procedures are greedy), Hungarian for IoU.

DeepMoon's own counter differs in two details that we do not copy: it walks detections in
extraction order and takes the *first* catalog crater that qualifies, and it removes *every*
catalog crater that qualifies for one detection.  PyCDA only searches the 10 nearest proposals.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .errors import CatalogError, CatalogValidationError, InvalidArgumentError

__all__ = [
    "RULES",
    "DEFAULT_THRESHOLDS",
    "PRED_FLOOR_FACTOR",
    "pred_floor",
    "circle_iou",
    "match_craters",
    "registration_offset",
    "evaluate",
    "EvaluationResult",
    "group_counts",
    "bootstrap_scores",
    "side_by_side",
    "to_json",
    "validate_pixel_craters",
]

#: The matching rules, see the module docstring.
RULES: tuple[str, ...] = ("deepmoon", "iou", "pycda")
#: Default thresholds: DeepMoon (longlat_thresh2, rad_thresh); IoU minimum; PyCDA maximum.
DEFAULT_THRESHOLDS: dict[str, Any] = {"deepmoon": (1.8, 1.0), "iou": 0.5, "pycda": 0.4}
_DEFAULT_ASSIGNMENT = {"deepmoon": "greedy", "iou": "hungarian", "pycda": "greedy"}
#: Predictions count for precision down to this fraction of the diameter floor ``d_min``.
PRED_FLOOR_FACTOR: float = 0.8

_PIXEL_COLUMNS = ("x", "y", "diameter_px")
_GEO_COLUMNS = ("lat", "lon", "diameter_km")


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
def circle_iou(separation: Any, d1: Any, d2: Any) -> np.ndarray:
    """Exact intersection over union of two circles (vectorised).

    Parameters
    ----------
    separation
        Distance between the centres.
    d1, d2
        Diameters, in the same unit.

    Examples
    --------
    >>> float(circle_iou(0.0, 10.0, 10.0))
    1.0
    >>> round(float(circle_iou(0.0, 10.0, 2 * 50 ** 0.5)), 6)  # concentric, area ratio 1/2
    0.5
    """
    s, d1, d2 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (separation, d1, d2)))
    r1, r2 = d1 / 2.0, d2 / 2.0
    inter = np.zeros(s.shape)
    inside = s <= np.abs(r1 - r2)
    inter[inside] = np.pi * np.minimum(r1, r2)[inside] ** 2
    lens = ~inside & (s < r1 + r2)
    if lens.any():
        a, b, c = s[lens], r1[lens], r2[lens]
        cos1 = np.clip((a**2 + b**2 - c**2) / (2 * a * b), -1.0, 1.0)
        cos2 = np.clip((a**2 + c**2 - b**2) / (2 * a * c), -1.0, 1.0)
        k = (-a + b + c) * (a + b - c) * (a - b + c) * (a + b + c)
        inter[lens] = b**2 * np.arccos(cos1) + c**2 * np.arccos(cos2) - 0.5 * np.sqrt(np.maximum(k, 0.0))
    union = np.pi * (r1**2 + r2**2) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _great_circle_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    from .crs import MARS_RADIUS_KM

    p1, p2 = np.radians(lat1), np.radians(lat2)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2.0 * MARS_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
@dataclass
class _Craters:
    """Validated craters: positions for the neighbour search and diameters, in one unit."""

    kind: str  # "pixel" or "geographic"
    points: np.ndarray  # (n, 2) pixel x/y, or (n, 3) km on the sphere
    diameter: np.ndarray
    lat: np.ndarray | None
    lon: np.ndarray | None
    index: pd.Index
    # pixel craters of several images: each crater's image (a code shared by both tables), and
    # points with a third coordinate that keeps the images apart in the neighbour search
    image: np.ndarray | None = None

    def __len__(self) -> int:
        return self.diameter.size


_EMPTY_REFERENCE = ("the reference catalog is empty, so there is nothing to score against; check the area and "
                    "the filters used to select it (marscraters.filter_catalog)")


def _craters(frame: Any, what: str, empty_kind: str | None = None) -> _Craters:
    if isinstance(frame, pd.DataFrame) and len(frame) == 0 and empty_kind is not None:
        # an empty result without columns (e.g. pd.DataFrame()) is simply "no craters"
        if not (set(_PIXEL_COLUMNS) <= set(frame.columns) or set(_GEO_COLUMNS) <= set(frame.columns)):
            width = 2 if empty_kind == "pixel" else 3
            none = None if empty_kind == "pixel" else np.empty(0)
            return _Craters(empty_kind, np.empty((0, width)), np.empty(0), none, none, frame.index)
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgumentError(
            f"the {what} craters must be a pandas DataFrame (PixelCraters with x, y, diameter_px) or a "
            f"Catalog GeoDataFrame (lat, lon, diameter_km), got {type(frame).__name__}"
        )
    cols = set(frame.columns)
    # a georeferenced catalog may also carry its pixel position (catalog_from_probability adds
    # x, y, diameter_px): the geographic columns win, so it compares with any reference catalog
    if set(_GEO_COLUMNS) <= cols:
        kind, names = "geographic", _GEO_COLUMNS
    elif set(_PIXEL_COLUMNS) <= cols:
        kind, names = "pixel", _PIXEL_COLUMNS
    else:
        raise CatalogError(
            f"the {what} craters need columns {list(_PIXEL_COLUMNS)} (pixel coordinates) or "
            f"{list(_GEO_COLUMNS)} (a georeferenced catalog); got {list(frame.columns)}. Rename the "
            "columns, or read the file with marscraters.read_catalog."
        )
    try:
        values = [frame[c].to_numpy(dtype=float) for c in names]
    except (TypeError, ValueError) as exc:
        raise CatalogValidationError(f"the {what} columns {list(names)} must be numeric: {exc}") from exc
    a, b, d = values
    bad = ~(np.isfinite(a) & np.isfinite(b) & np.isfinite(d) & (d > 0))
    if kind == "geographic":
        bad |= np.abs(a) > 90
    if bad.any():
        rows = list(frame.index[bad][:5])
        raise CatalogValidationError(
            f"{int(bad.sum())} {what} crater(s) have missing or impossible values (diameter must be > 0"
            f"{', |lat| <= 90' if kind == 'geographic' else ''}), e.g. rows {rows}; drop or fix them."
        )
    if kind == "pixel":
        return _Craters(kind, np.column_stack([a, b]), d, None, None, frame.index)
    from .crs import MARS_RADIUS_KM

    return _Craters(kind, _unit_vectors(a, b) * MARS_RADIUS_KM, d, a, b, frame.index)


def validate_pixel_craters(
    table: pd.DataFrame, *, source: str | os.PathLike | None = None, errors: str = "raise",
    image: str | None = "image",
) -> pd.DataFrame:
    """Check a PixelCraters table (``x``, ``y``, ``diameter_px``) for impossible and repeated rows;
    raise, or drop them with a warning, as :func:`~marscraters.catalog.validate_catalog` does for
    catalogs.

    A row is invalid when ``x``, ``y`` or ``diameter_px`` is missing or not a finite number, or
    ``diameter_px <= 0``.  A row repeats an earlier one when it has the same ``x``, ``y`` and
    ``diameter_px`` (and the same ``image``, when the table has that column): a crater listed
    twice is counted twice in the scores.

    Parameters
    ----------
    table
        A PixelCraters DataFrame.
    source
        Name of the input used in messages (a file path); default ``"the pixel craters"``.
    errors
        ``"raise"``: raise :class:`CatalogValidationError` naming the invalid rows (numbered from
        1, header excluded), and warn about repeated rows.  ``"drop"``: drop both with a
        ``UserWarning`` giving their count.
    image
        The column naming each crater's image, whose pixels its ``x``, ``y`` are in (as for
        :func:`evaluate`): rows of different images are never repeats.  ``None``: one image.

    Returns
    -------
    pandas.DataFrame
        ``table`` itself when every row is valid (repeats included, unless dropped), else its
        kept rows on a fresh index.

    Raises
    ------
    CatalogError
        If a column is missing.
    CatalogValidationError
        With ``errors="raise"``, when a row is invalid.

    Warns
    -----
    UserWarning
        Naming the rows that repeat an earlier row (and, with ``errors="drop"``, the rows dropped).

    Examples
    --------
    >>> t = pd.DataFrame({"x": [10.0, 30.0], "y": [10.0, 30.0], "diameter_px": [20.0, -4.0]})
    >>> with warnings.catch_warnings(record=True):
    ...     len(validate_pixel_craters(t, errors="drop"))
    1
    """
    # the catalogs' own row checks end the same way (one message format, raise or drop)
    from .catalog import _apply_row_checks, _as_float, _check_errors

    _check_errors(errors)
    source = str(source) if source is not None else "the pixel craters"
    missing = [c for c in _PIXEL_COLUMNS if c not in table.columns]
    if missing:
        raise CatalogError(f"{source} lacks the column(s) {missing}; pixel craters need {list(_PIXEL_COLUMNS)}")
    values = {c: _as_float(table[c], c) for c in _PIXEL_COLUMNS}
    checks = [(c, ~np.isfinite(v), v, "missing or not a number") for c, v in values.items()]
    with np.errstate(invalid="ignore"):
        checks.append(("diameter_px", values["diameter_px"] <= 0, values["diameter_px"], "must be > 0"))
    bad = np.zeros(len(table), dtype=bool)
    for _, mask, _, _ in checks:
        bad |= mask
    kept = _apply_row_checks(table, checks, source=source, errors=errors, stacklevel=3)
    return _check_pixel_repeats(kept, table, ~bad, values, image=image, source=source, errors=errors)


def _check_pixel_repeats(
    kept: pd.DataFrame,
    table: pd.DataFrame,
    valid: np.ndarray,
    values: dict[str, np.ndarray],
    *,
    image: str | None,
    source: str,
    errors: str,
) -> pd.DataFrame:
    """Warn about, or drop with a warning, rows that list a pixel crater again, in the words of
    :func:`marscraters.catalog._check_repeats` (a catalog's repeated lat, lon and diameter_km).

    Parameters
    ----------
    kept
        The valid rows of ``table`` (what :func:`~marscraters.catalog._apply_row_checks` returned).
    table
        The table checked; rows are numbered in its order.
    valid
        Which rows of ``table`` are in ``kept``.
    values
        Its ``x``, ``y`` and ``diameter_px`` as numbers.
    image, source, errors
        As for :func:`validate_pixel_craters`.

    Returns
    -------
    pandas.DataFrame
        ``kept``, without the repeated rows when ``errors="drop"``.
    """
    n = len(table)
    if valid.sum() < 2:
        return kept
    key = pd.DataFrame({c: v[valid] for c, v in values.items()})
    names = "x, y and diameter_px"
    if image is not None and image in table.columns:
        # x, y are in each image's own pixels: the same place on two images is two craters
        key[image] = table[image].to_numpy()[valid]
        names = f"x, y, diameter_px and {image}"
    repeat = key.duplicated().to_numpy()
    if not repeat.any():
        return kept
    rows = np.flatnonzero(valid)  # position in `key` -> row of `table`
    group = key.groupby(list(key.columns), sort=False, dropna=False).ngroup().to_numpy()
    first = {g: k for k, g in reversed(list(enumerate(group)))}
    shown = "; ".join(f"row {rows[k] + 1} repeats row {rows[first[group[k]]] + 1}"
                      for k in np.flatnonzero(repeat)[:5])
    count = int(repeat.sum())
    shown += f"; ... and {count - 5} more" if count > 5 else ""
    what = f"{count} of {n} rows {'that ' if errors == 'drop' else ''}repeat an earlier row's {names} ({shown})"
    if errors == "drop":
        warnings.warn(f"{source}: dropped {what}: a crater listed twice would be counted twice in scores.",
                      UserWarning, stacklevel=3)
        attrs = dict(kept.attrs)
        # `kept` is on a fresh index when invalid rows were dropped, else `table` itself: by position
        kept = kept.iloc[np.flatnonzero(~repeat)].reset_index(drop=True)
        kept.attrs = attrs
        return kept
    warnings.warn(f"{source}: {what}: a crater listed twice (a file joined twice, overlapping tiles) is counted "
                  "twice in scores. Remove the repeated rows, or pass errors='drop' to drop them with a warning.",
                  UserWarning, stacklevel=3)
    return kept


def _names(values: Any, n: int = 3) -> str:
    """A few image names for a message: ``'a.jpg', 'b.jpg', ... (5 images)``."""
    names = list(pd.unique(values))
    text = ", ".join(repr(v) for v in names[:n])
    return text + (f", ... ({len(names)} images)" if len(names) > n else "")


def _by_image(p: _Craters, t: _Craters, pred: Any, truth: Any, image: str | None) -> None:
    """Keep matches within an image: pixel craters of several images, each in its own pixels.

    When both tables have the column ``image``, every crater gets its image's code (shared by the
    two tables) and a third coordinate, code x a distance wider than any image, so that the
    neighbour search stays in each crater's image, as :func:`side_by_side` does with a shift.
    A table without the column is taken as one image; next to a table of several images it is
    refused, since nothing says which image its craters are on.
    """
    if image is None or p.kind != "pixel":
        return  # catalogs: lat/lon are one frame for every image
    tables = ((pred, p, "predicted"), (truth, t, "reference"))
    have = [isinstance(frame, pd.DataFrame) and image in frame.columns for frame, _, _ in tables]
    if not any(have):
        return
    for (frame, craters, what), has in zip(tables, have):
        if has and frame[image].isna().any():
            raise InvalidArgumentError(
                f"{int(frame[image].isna().sum())} {what} craters have no {image!r}: the {image!r} column names "
                "each crater's image, whose pixels its x, y are in; fill it or drop those rows")
    if not all(have):
        (frame, craters, what), (_, other_craters, other) = tables if have[0] else tables[::-1]
        if len(other_craters) and frame[image].nunique() > 1:
            raise InvalidArgumentError(
                f"the {what} craters lie on {frame[image].nunique()} images (column {image!r}: "
                f"{_names(frame[image])}), but the {other} craters have no {image!r} column, so nothing says "
                f"which image each of them is on: add an {image!r} column to the {other} craters that names "
                f"their images as the {what} craters do, or score one image at a time (in Python, image=None "
                "matches on x, y alone, for tables already laid side by side)")
        return  # one image
    codes, _ = pd.factorize(pd.concat([pred[image], truth[image]], ignore_index=True))
    code_p, code_t = codes[: len(pred)], codes[len(pred):]
    if len(p) and len(t) and not np.isin(code_p, code_t).any():
        raise InvalidArgumentError(
            f"the predicted and the reference craters name different images in their {image!r} column "
            f"(predicted: {_names(pred[image])}; reference: {_names(truth[image])}), so no detection could "
            f"match: name each image the same way in both tables (`marscraters detect` writes each image's path "
            "as it was given)")
    if not (len(p) and len(t)):
        return  # nothing to match
    # wider than any image: the rows of different images never come near each other
    far = 4.0 * (float(np.abs(np.concatenate([p.points, t.points])).max())
                 + float(max(p.diameter.max(), t.diameter.max())))
    for craters, code in ((p, code_p), (t, code_t)):
        craters.image = code.astype(np.int64)
        craters.points = np.column_stack([craters.points, code * far])


def _check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InvalidArgumentError(f"rule must be one of {list(RULES)}, got {rule!r}")
    return rule


def _thresholds(rule: str, threshold: Any) -> Any:
    if threshold is None:
        return DEFAULT_THRESHOLDS[rule]
    if rule == "deepmoon":
        try:
            pos, rad = (float(v) for v in threshold)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"the deepmoon threshold is a pair (longlat_thresh2, rad_thresh), e.g. (1.8, 1.0); got {threshold!r}"
            ) from exc
        if not (pos > 0 and rad > 0):
            raise InvalidArgumentError(f"deepmoon thresholds must be > 0, got {threshold!r}")
        return (pos, rad)
    try:
        value = float(threshold)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"the {rule} threshold must be a number, got {threshold!r}") from exc
    if rule == "iou" and not 0 < value <= 1:
        raise InvalidArgumentError(f"the IoU threshold must lie in (0, 1], got {value}")
    if rule == "pycda" and not value > 0:
        raise InvalidArgumentError(f"the pycda threshold must be > 0, got {value}")
    return value


# --------------------------------------------------------------------------------------------
# matching
# --------------------------------------------------------------------------------------------
def _search_radius(rule: str, thr: Any, d_pred: np.ndarray) -> np.ndarray:
    """A radius around each prediction that surely contains every catalog crater it can match."""
    if rule == "deepmoon":
        pos2, rad = thr
        # separation < sqrt(pos2) * min(r) <= sqrt(pos2) * r_pred
        return math.sqrt(pos2) * d_pred / 2.0
    if rule == "iou":
        # IoU <= (r_min / r_max)**2, so r_true <= r_pred / sqrt(t); and IoU > 0 needs s < r1 + r2
        return d_pred / 2.0 * (1.0 + 1.0 / math.sqrt(thr))
    # pycda: |dd| <= t d_true -> d_true <= d_pred / (1 - t) (any d_true when t >= 1); s <= t d_true
    if thr >= 1:
        return np.full(d_pred.shape, np.inf)
    return thr * d_pred / (1.0 - thr)


def _candidates(pred: _Craters, truth: _Craters, rule: str, thr: Any) -> pd.DataFrame:
    """Every (prediction, catalog) pair that satisfies the rule, with separation, IoU and cost."""
    empty = pd.DataFrame({k: np.array([], dtype=t) for k, t in [("p", int), ("t", int), ("sep", float), ("iou", float), ("cost", float)]})
    if len(pred) == 0 or len(truth) == 0:
        return empty
    radius = _search_radius(rule, thr, pred.diameter)
    tree = cKDTree(truth.points)
    # chord <= arc on the sphere, so a chord search with the arc radius misses nothing
    lists = tree.query_ball_point(pred.points, r=radius * (1 + 1e-9) + 1e-12)
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    if counts.sum() == 0:
        return empty
    p = np.repeat(np.arange(len(pred)), counts)
    t = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists if len(x)])
    dp, dt = pred.diameter[p], truth.diameter[t]
    if pred.kind == "pixel":
        sep = np.hypot(*(pred.points[p, :2] - truth.points[t, :2]).T)
    else:
        sep = _great_circle_km(pred.lat[p], pred.lon[p], truth.lat[t], truth.lon[t])
    iou = circle_iou(sep, dp, dt)
    if rule == "deepmoon":
        pos2, rad = thr
        rmin = np.minimum(dp, dt) / 2.0
        d_long_lat = sep**2 / rmin**2
        d_rad = np.abs(dp - dt) / 2.0 / rmin
        ok = (d_long_lat < pos2) & (d_rad < rad)
        cost = d_long_lat + d_rad**2
    elif rule == "iou":
        ok = iou >= thr
        cost = 1.0 - iou
    else:
        cost = np.sqrt(sep**2 + (dp - dt) ** 2) / dt
        ok = cost <= thr
    if pred.image is not None:
        # the third coordinate keeps other images out of reach, except of an unbounded search radius
        ok &= pred.image[p] == truth.image[t]
    return pd.DataFrame({"p": p[ok], "t": t[ok], "sep": sep[ok], "iou": iou[ok], "cost": cost[ok]})


def _greedy(cand: pd.DataFrame) -> np.ndarray:
    order = np.lexsort((cand["t"].to_numpy(), cand["p"].to_numpy(), cand["cost"].to_numpy()))
    p, t = cand["p"].to_numpy()[order], cand["t"].to_numpy()[order]
    used_p: set[int] = set()
    used_t: set[int] = set()
    keep = []
    for k, (i, j) in enumerate(zip(p.tolist(), t.tolist())):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            keep.append(order[k])
    return np.asarray(keep, dtype=np.int64)


def _hungarian(cand: pd.DataFrame, n_pred: int) -> np.ndarray:
    p, t, cost = cand["p"].to_numpy(), cand["t"].to_numpy(), cand["cost"].to_numpy()
    n_truth = int(t.max()) + 1
    # connected groups of the bipartite candidate graph are solved independently
    graph = coo_matrix((np.ones(p.size), (p, n_pred + t)), shape=(n_pred + n_truth,) * 2)
    _, label = connected_components(graph, directed=False)
    group = label[p]
    keep = []
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    for rows in np.split(order, bounds):
        if rows.size == 1:
            keep.append(rows[0])
            continue
        up, inv_p = np.unique(p[rows], return_inverse=True)
        ut, inv_t = np.unique(t[rows], return_inverse=True)
        # count first, then cost: every allowed pair is worth `big` minus its cost
        big = (float(cost[rows].max()) + 1.0) * (min(up.size, ut.size) + 1)
        weight = np.zeros((up.size, ut.size))
        edge = np.full((up.size, ut.size), -1, dtype=np.int64)
        weight[inv_p, inv_t] = big - cost[rows]
        edge[inv_p, inv_t] = rows
        r, c = linear_sum_assignment(weight, maximize=True)
        chosen = edge[r, c]
        keep.extend(chosen[chosen >= 0].tolist())
    return np.sort(np.asarray(keep, dtype=np.int64))


def _match(pred: _Craters, truth: _Craters, rule: str, threshold: Any, assignment: str | None) -> pd.DataFrame:
    rule = _check_rule(rule)
    thr = _thresholds(rule, threshold)
    assignment = _DEFAULT_ASSIGNMENT[rule] if assignment is None else assignment
    if assignment not in ("greedy", "hungarian"):
        raise InvalidArgumentError(f"assignment must be 'greedy' or 'hungarian', got {assignment!r}")
    if pred.kind != truth.kind:
        raise CatalogError(
            f"cannot compare {pred.kind} predictions with a {truth.kind} catalog: georeference the "
            "pixel craters first (marscraters.extract), or put the catalog on the image's pixels "
            "with marscraters.targets.catalog_pixels(mosaic, catalog)"
        )
    cand = _candidates(pred, truth, rule, thr)
    if len(cand):
        keep = _greedy(cand) if assignment == "greedy" else _hungarian(cand, len(pred))
        cand = cand.iloc[keep]
    cand = cand.sort_values(["p", "t"]).reset_index(drop=True)
    dp, dt = pred.diameter[cand["p"].to_numpy()], truth.diameter[cand["t"].to_numpy()]
    return pd.DataFrame(
        {
            "pred_pos": cand["p"].to_numpy(dtype=np.int64),
            "truth_pos": cand["t"].to_numpy(dtype=np.int64),
            "separation": cand["sep"].to_numpy(),
            "position_error": cand["sep"].to_numpy() / (dt / 2.0),
            "diameter_error": (dp - dt) / dt,
            "iou": cand["iou"].to_numpy(),
        }
    )


def match_craters(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    rule: str = "deepmoon",
    *,
    threshold: Any = None,
    assignment: str | None = None,
    image: str | None = "image",
) -> pd.DataFrame:
    """Match predicted craters to catalog craters one-to-one.

    Parameters
    ----------
    pred, truth
        PixelCraters (``x``, ``y``, ``diameter_px``) or Catalogs (``lat``, ``lon``,
        ``diameter_km``); both of the same kind.  Other columns (``score``...) are ignored,
        except ``image``.
    rule
        ``"deepmoon"``, ``"iou"`` or ``"pycda"`` (see the module docstring).
    threshold
        Overrides the rule's threshold: ``(longlat_thresh2, rad_thresh)`` for DeepMoon (default
        ``(1.8, 1.0)``), the minimum IoU (0.5), or the maximum normalised distance for PyCDA (0.4).
    assignment
        ``"greedy"`` or ``"hungarian"``; default greedy for DeepMoon and PyCDA, Hungarian for IoU.
    image
        For PixelCraters of several images (the ``image`` column :func:`~marscraters.detect.detect`
        writes): the column naming each crater's image, whose pixels its ``x``, ``y`` are in.
        When both tables have it, a detection matches only reference craters of its own image;
        a table without it next to a table of several images is refused.  ``None`` matches on
        ``x``, ``y`` alone (tables laid in one frame, e.g. by :func:`side_by_side`).  Catalogs
        ignore it.

    Returns
    -------
    pandas.DataFrame
        One row per match, sorted by prediction: ``pred_index`` and ``truth_index`` (index
        labels of the inputs), ``separation`` (px or km), ``position_error`` (separation / true
        radius), ``diameter_error`` ((d_pred - d_true) / d_true) and ``iou``.

    Examples
    --------
    >>> pred = pd.DataFrame({"x": [10.0, 50.0], "y": [10.0, 50.0], "diameter_px": [8.0, 6.0]})
    >>> truth = pd.DataFrame({"x": [11.0], "y": [10.0], "diameter_px": [8.0]})
    >>> match_craters(pred, truth)[["pred_index", "truth_index"]].values.tolist()
    [[0, 0]]
    """
    t = _craters(truth, "reference")
    p = _craters(pred, "predicted", empty_kind=t.kind)
    _by_image(p, t, pred, truth, image)
    m = _match(p, t, rule, threshold, assignment)
    out = m.drop(columns=["pred_pos", "truth_pos"])
    out.insert(0, "truth_index", t.index[m["truth_pos"].to_numpy()])
    out.insert(0, "pred_index", p.index[m["pred_pos"].to_numpy()])
    return out


def registration_offset(pred: pd.DataFrame, truth: pd.DataFrame, *, rule: str = "deepmoon",
                        d_min: float | None = None) -> dict[str, float]:
    """How far detected craters sit from catalog craters on the same image: a georeferencing check.

    Detections and catalog craters are matched one-to-one (:func:`match_craters`); the medians
    of the matched pairs' signed offsets say whether the catalog is placed on the image right.
    Each pair is off by the detector's own noise, but the noise averages out of the median, so
    a grid shifted by half a pixel moves the median by half a pixel.

    Parameters
    ----------
    pred, truth
        PixelCraters on one image (or many, through :func:`side_by_side` or an ``image``
        column).  Their index labels need not be unique (per-chip tables joined by
        ``pd.concat``): rows are taken by position.
    rule
        The matching rule.
    d_min
        Use only catalog craters at least this wide (pixels): small ones are placed less surely.

    Returns
    -------
    dict
        ``dx`` and ``dy``: median of detection minus catalog position, in pixels (east and
        south positive); ``distance``: median separation; ``n``: matched pairs.

    Examples
    --------
    >>> pred = pd.DataFrame({"x": [10.5, 40.5], "y": [10.0, 40.0], "diameter_px": [20.0, 20.0]})
    >>> truth = pd.DataFrame({"x": [10.0, 40.0], "y": [10.0, 40.0], "diameter_px": [20.0, 20.0]})
    >>> registration_offset(pred, truth)["dx"]
    0.5
    """
    t = _craters(truth, "reference")
    if t.kind != "pixel":
        raise CatalogError("registration_offset compares positions on an image: give PixelCraters (x, y, "
                           "diameter_px); put a catalog on the image with marscraters.targets.catalog_pixels")
    p = _craters(pred, "predicted", empty_kind=t.kind)
    _by_image(p, t, pred, truth, "image")
    m = _match(p, t, rule, None, None)
    # rows by position, not by index label: tables stacked with pd.concat repeat their labels
    pp, tp = m["pred_pos"].to_numpy(), m["truth_pos"].to_numpy()
    if d_min is not None:
        keep = t.diameter[tp] >= float(d_min)
        pp, tp = pp[keep], tp[keep]
    if not pp.size:
        return {"dx": float("nan"), "dy": float("nan"), "distance": float("nan"), "n": 0}
    dx, dy = (p.points[pp, :2] - t.points[tp, :2]).T
    return {"dx": float(np.median(dx)), "dy": float(np.median(dy)), "distance": float(np.median(np.hypot(dx, dy))),
            "n": int(pp.size)}


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------
def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _f1(precision: float, recall: float) -> float:
    # harmonic mean; its limit is 0 when either side is 0, even if the other is undefined
    if precision == 0 or recall == 0:
        return 0.0
    if math.isnan(precision) or math.isnan(recall):
        return float("nan")
    return 2 * precision * recall / (precision + recall)


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def _group_table(
    edges: np.ndarray,
    pred_value: np.ndarray,
    pred_counted: np.ndarray,
    pred_matched: np.ndarray,
    truth_value: np.ndarray,
    truth_counted: np.ndarray,
    truth_matched: np.ndarray,
    names: tuple[str, str],
) -> pd.DataFrame:
    rows = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = k == len(edges) - 2
        in_p = pred_counted & (pred_value >= lo) & ((pred_value <= hi) if last else (pred_value < hi))
        in_t = truth_counted & (truth_value >= lo) & ((truth_value <= hi) if last else (truth_value < hi))
        n_p, n_t = int(in_p.sum()), int(in_t.sum())
        tp_p, tp_t = int((in_p & pred_matched).sum()), int((in_t & truth_matched).sum())
        precision, recall = _ratio(tp_p, n_p), _ratio(tp_t, n_t)
        rows.append(
            {
                names[0]: float(lo),
                names[1]: float(hi),
                "n_truth": n_t,
                "n_truth_matched": tp_t,
                "recall": recall,
                "n_pred": n_p,
                "n_pred_matched": tp_p,
                "precision": precision,
                "f1": _f1(precision, recall),
            }
        )
    return pd.DataFrame(rows)


def _default_bins(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    k0, k1 = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
    if k1 <= k0:
        k1 = k0 + 1
    return 2.0 ** np.arange(k0, k1 + 1)


@dataclass
class EvaluationResult:
    """Crater-level scores of one matching rule.  See :func:`evaluate`."""

    rule: str
    assignment: str
    threshold: Any
    units: str  # "px" or "km": the unit of diameters and separations
    d_min: float | None
    n_pred_total: int
    n_truth_total: int
    n_pred: int  # predictions counted for precision
    n_truth: int  # catalog craters counted for recall
    n_pred_matched: int
    n_truth_matched: int
    precision: float
    recall: float
    f1: float
    median_position_error: float
    median_diameter_error: float
    median_diameter_bias: float
    by_diameter: pd.DataFrame
    by_latitude: pd.DataFrame | None
    matches: pd.DataFrame = field(repr=False)

    def to_dict(self, *, include_matches: bool = False) -> dict[str, Any]:
        """A JSON-friendly dict (NaN becomes None); tables become lists of records."""
        from ._io import json_ready

        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "matches"}
        if include_matches:
            out["matches"] = self.matches
        return json_ready(out)

    def summary(self) -> str:
        """One line: rule, precision, recall, F1 and counts."""
        return (
            f"{self.rule}: P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} "
            f"({self.n_pred_matched}/{self.n_pred} predictions, {self.n_truth_matched}/{self.n_truth} "
            f"catalog craters{'' if self.d_min is None else f', D >= {self.d_min:g} {self.units}'})"
        )


_FLOOR_ABOVE_REFERENCE = "no reference crater is at least "


def _warn_if_elsewhere(p: _Craters, t: _Craters) -> None:
    """Warn when no prediction lies anywhere near a reference crater: a recall of 0 that says the
    two tables are of different places (or images), not that the detector missed everything."""
    gap = float(cKDTree(t.points).query(p.points, k=1)[0].min())
    scale = float(max(np.nanmax(p.diameter), np.nanmax(t.diameter)))
    if gap > 5.0 * scale:
        units = "px" if t.kind == "pixel" else "km"
        warnings.warn(
            f"no prediction lies near any reference crater: the closest pair is {gap:.4g} {units} apart, "
            f"{gap / scale:.0f} times the largest crater. Are the two tables of the same place "
            f"{'(and, for pixel tables, the same image)' if t.kind == 'pixel' else '(and longitude convention)'}?",
            UserWarning, stacklevel=3)


def _warn_floor_above_reference(t: _Craters, d_min: float) -> None:
    """Warn that the diameter floor leaves no reference crater: the recall is NaN, and the floor is
    most likely in the wrong unit (km given for a pixel table, or px for a catalog).

    Parameters
    ----------
    t
        The reference craters (not empty).
    d_min
        The diameter floor, in the tables' units.
    """
    units = "px" if t.kind == "pixel" else "km"
    warnings.warn(
        f"{_FLOOR_ABOVE_REFERENCE}d_min={d_min:g} (--d-min {d_min:g}) {units} across: the reference's {len(t)} "
        f"craters are {t.diameter.min():.3g}-{t.diameter.max():.3g} {units}, so the recall is NaN (undefined). "
        "The floor is in the tables' own units, km for catalogs (diameter_km) and px for pixel tables "
        "(diameter_px): give a smaller one.",
        UserWarning,
        stacklevel=3,
    )


def _counted(p: _Craters, t: _Craters, d_min: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Which predictions count for precision and which catalog craters for recall (the floor)."""
    if d_min is None:
        return np.ones(len(p), dtype=bool), np.ones(len(t), dtype=bool)
    return p.diameter >= pred_floor(d_min), t.diameter >= d_min


def pred_floor(d_min: float) -> float:
    """The smallest detection that counts for precision under floor scoring at ``d_min``:
    :data:`PRED_FLOOR_FACTOR` × ``d_min``, a hair lower so that a detection of exactly that size
    counts (0.8 × 3 is 2.4000000000000004 in floats)."""
    return PRED_FLOOR_FACTOR * float(d_min) * (1 - 1e-9)


def evaluate(
    pred: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    rule: str = "deepmoon",
    threshold: Any = None,
    assignment: str | None = None,
    d_min: float | None = None,
    bins: Any = None,
    lat_bands: Any = None,
    image: str | None = "image",
) -> EvaluationResult | dict[str, EvaluationResult]:
    """Score predicted craters against a reference catalog.

    **Diameter floor.**  Reference catalogs are incomplete below some size (Robbins: ~1 km), so
    small detections of real but unlabelled craters must not count as false positives.  With
    ``d_min``:

    1. matching uses *all* predictions and *all* catalog craters (so a detection of 0.9 D_min
       can still pair with a catalog crater of 1.05 D_min, and vice versa);
    2. recall counts the catalog craters with ``d >= d_min``: matched ones / all of them;
    3. precision counts the predictions with ``d >= 0.8 * d_min`` (:data:`PRED_FLOOR_FACTOR`,
       leaving room for underestimated diameters): matched ones (to any catalog crater, even
       one below the floor) / all of them.

    F1 is the harmonic mean of these precision and recall.  With no counted predictions the
    precision is NaN (undefined) and F1 is 0 when recall is 0; with no counted catalog craters
    (all below ``d_min``) the recall is NaN, and a ``UserWarning`` says so (a floor in the wrong
    unit, km for a pixel table or px for a catalog, is the usual cause).

    Parameters
    ----------
    pred, truth
        PixelCraters or Catalogs (see :func:`match_craters`); ``truth`` must not be empty.
    rule
        ``"deepmoon"`` (default), ``"iou"``, ``"pycda"``, or ``"all"`` for a dict of all three.
    threshold, assignment
        See :func:`match_craters` (not allowed with ``rule="all"``... except ``assignment``).
    d_min
        Diameter floor, in px for PixelCraters and km for Catalogs.
    bins
        Diameter bin edges for ``by_diameter``; default powers of two spanning the counted
        craters.  A catalog crater falls in a bin by its own diameter (for recall), a
        prediction by its own (for precision); the last bin includes its right edge.
    lat_bands
        Latitude band edges for ``by_latitude`` (Catalogs only); default every 30 degrees.
    image
        PixelCraters of several images: the column naming each crater's image (default
        ``"image"``, as :func:`~marscraters.detect.detect` writes it).  When both tables have
        it, detections match only reference craters of their own image; see
        :func:`match_craters`.

    Returns
    -------
    EvaluationResult
        ``precision``, ``recall``, ``f1``; counts; ``median_position_error`` (separation over
        the true radius), ``median_diameter_error`` (|d_pred - d_true| / d_true) and
        ``median_diameter_bias`` (signed), over matches whose catalog crater is counted;
        ``by_diameter`` and ``by_latitude`` tables; ``matches``.  For ``rule="all"``, a dict
        ``{rule: EvaluationResult}``.

    Raises
    ------
    CatalogError
        If the reference catalog is empty, or the inputs lack the needed columns.
    InvalidArgumentError
        If the pixel tables' images cannot be told apart: one table has several images and the
        other no ``image`` column, or the two name no image alike.

    Examples
    --------
    >>> truth = pd.DataFrame({"x": [20.0, 60.0], "y": [20.0, 60.0], "diameter_px": [10.0, 20.0]})
    >>> pred = pd.DataFrame({"x": [21.0, 100.0], "y": [20.0, 100.0], "diameter_px": [11.0, 8.0]})
    >>> r = evaluate(pred, truth)
    >>> r.precision, r.recall
    (0.5, 0.5)
    """
    if rule == "all":
        if threshold is not None:
            raise InvalidArgumentError("threshold cannot be given with rule='all'; score one rule at a time")
        results: dict[str, Any] = {}
        for name in RULES:
            with warnings.catch_warnings():
                if results:  # the floor's warning once, not once per rule
                    warnings.filterwarnings("ignore", message=_FLOOR_ABOVE_REFERENCE)
                results[name] = evaluate(pred, truth, rule=name, assignment=assignment, d_min=d_min, bins=bins,
                                         lat_bands=lat_bands, image=image)
        return results
    _check_rule(rule)
    # before the columns are checked: an empty table, with or without columns, is "empty"
    if isinstance(truth, pd.DataFrame) and len(truth) == 0:
        raise CatalogError(_EMPTY_REFERENCE)
    t = _craters(truth, "reference")
    p = _craters(pred, "predicted", empty_kind=t.kind)
    if len(t) == 0:
        raise CatalogError(_EMPTY_REFERENCE)
    _by_image(p, t, pred, truth, image)
    if d_min is not None and (isinstance(d_min, (bool, np.bool_))
                              or not (isinstance(d_min, (int, float, np.number)) and d_min > 0)):
        raise InvalidArgumentError(f"d_min must be a positive number or None, got {d_min!r}")
    m = _match(p, t, rule, threshold, assignment)
    assignment = _DEFAULT_ASSIGNMENT[rule] if assignment is None else assignment

    pred_matched = np.zeros(len(p), dtype=bool)
    pred_matched[m["pred_pos"].to_numpy()] = True
    truth_matched = np.zeros(len(t), dtype=bool)
    truth_matched[m["truth_pos"].to_numpy()] = True
    pred_counted, truth_counted = _counted(p, t, d_min)
    n_p, n_t = int(pred_counted.sum()), int(truth_counted.sum())
    if d_min is not None and n_t == 0:
        _warn_floor_above_reference(t, float(d_min))
    if not len(m) and len(p) and len(t):
        _warn_if_elsewhere(p, t)
    tp_p = int((pred_counted & pred_matched).sum())
    tp_t = int((truth_counted & truth_matched).sum())
    precision, recall = _ratio(tp_p, n_p), _ratio(tp_t, n_t)

    scored = m[truth_counted[m["truth_pos"].to_numpy()]]
    counted_d = np.concatenate([p.diameter[pred_counted], t.diameter[truth_counted]])
    if bins is None:
        edges = _default_bins(counted_d) if counted_d.size else np.array([])
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise InvalidArgumentError(f"bins must be at least two increasing edges, got {bins!r}")
    cols = ("d_min", "d_max")
    by_d = (
        _group_table(edges, p.diameter, pred_counted, pred_matched, t.diameter, truth_counted, truth_matched, cols)
        if edges.size
        else pd.DataFrame(columns=[*cols, "n_truth", "n_truth_matched", "recall", "n_pred", "n_pred_matched", "precision", "f1"])
    )
    by_lat = None
    if p.kind == "geographic":
        bands = np.arange(-90.0, 90.1, 30.0) if lat_bands is None else np.asarray(lat_bands, dtype=float)
        if bands.ndim != 1 or bands.size < 2 or np.any(np.diff(bands) <= 0):
            raise InvalidArgumentError(f"lat_bands must be at least two increasing edges, got {lat_bands!r}")
        by_lat = _group_table(bands, p.lat, pred_counted, pred_matched, t.lat, truth_counted, truth_matched, ("lat_min", "lat_max"))

    matches = m.drop(columns=["pred_pos", "truth_pos"])
    matches.insert(0, "truth_index", t.index[m["truth_pos"].to_numpy()])
    matches.insert(0, "pred_index", p.index[m["pred_pos"].to_numpy()])
    return EvaluationResult(
        rule=rule,
        assignment=assignment,
        threshold=_thresholds(rule, threshold),
        units="px" if p.kind == "pixel" else "km",
        d_min=None if d_min is None else float(d_min),
        n_pred_total=len(p),
        n_truth_total=len(t),
        n_pred=n_p,
        n_truth=n_t,
        n_pred_matched=tp_p,
        n_truth_matched=tp_t,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        median_position_error=_median(scored["position_error"].to_numpy()),
        median_diameter_error=_median(np.abs(scored["diameter_error"].to_numpy())),
        median_diameter_bias=_median(scored["diameter_error"].to_numpy()),
        by_diameter=by_d,
        by_latitude=by_lat,
        matches=matches,
    )


# --------------------------------------------------------------------------------------------
# uncertainty: bootstrap over images (or tiles, or any grouping)
# --------------------------------------------------------------------------------------------
def side_by_side(
    frames: Sequence[pd.DataFrame], *, images: Sequence[Any] | None = None, stride: float = 10_000.0
) -> pd.DataFrame:
    """The PixelCraters of several images in one pixel frame, so one :func:`evaluate` scores them all.

    Image ``i``'s craters move ``i * stride`` pixels to the right, far enough apart that no
    detection on one image can match a crater of another.  Scoring many chips this way counts
    every crater once, as pooling per-image counts would, with one matching call instead of one
    per image.

    Parameters
    ----------
    frames
        One PixelCraters table (``x``, ``y``, ``diameter_px``, ...) per image, in a fixed order;
        the detections and the truths of the same images must be given in the same order.
    images
        A label per image for the added ``image`` column (chip numbers, file names); default the
        position in ``frames``.  With it, :func:`group_counts` can count per image.
    stride
        Pixels between images; must exceed any image's width plus its largest crater.

    Returns
    -------
    pandas.DataFrame
        All rows, with ``x`` shifted and an ``image`` column, on a fresh index.

    Raises
    ------
    InvalidArgumentError
        If ``images`` is not one label per frame, or a crater reaches outside its image's stride.

    Examples
    --------
    >>> pred = side_by_side([find_craters(p, im) for p, im in zip(probs, images)])  # doctest: +SKIP
    >>> truth = side_by_side([chip_craters(chips, i) for i in range(len(chips))])  # doctest: +SKIP
    >>> evaluate(pred, truth, d_min=16).f1  # doctest: +SKIP
    """
    frames = list(frames)
    labels = list(range(len(frames))) if images is None else list(images)
    if len(labels) != len(frames):
        raise InvalidArgumentError(f"images has {len(labels)} labels for {len(frames)} tables: give one per table")
    out = []
    for i, (frame, label) in enumerate(zip(frames, labels)):
        if not isinstance(frame, pd.DataFrame) or (len(frame) and not set(_PIXEL_COLUMNS) <= set(frame.columns)):
            got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
            raise CatalogError(f"table {i} must be PixelCraters with columns {list(_PIXEL_COLUMNS)}, got {got}")
        if not len(frame):
            out.append(frame.assign(image=label))
            continue
        # NaN rows are left for evaluate(), whose message names them
        reach = float((frame["x"].abs() + frame["diameter_px"]).max())
        if reach >= stride / 2:
            raise InvalidArgumentError(
                f"table {i} has a crater {reach:.0f} px from its origin, too near the next image at stride {stride:g}: "
                f"pass stride > {2 * reach:.0f}")
        out.append(frame.assign(x=frame["x"] + i * stride, image=label))
    if not out:
        return pd.DataFrame({"x": [], "y": [], "diameter_px": [], "image": []})
    return pd.concat(out, ignore_index=True)


def group_counts(
    result: EvaluationResult, pred: pd.DataFrame, truth: pd.DataFrame, by: str, *, groups: Any = None
) -> pd.DataFrame:
    """The counts behind ``result``'s precision and recall, per group (image, tile...).

    Parameters
    ----------
    result
        What :func:`evaluate` returned for ``pred`` and ``truth`` (one rule's result).
    pred, truth
        The tables given to :func:`evaluate`, each with a column ``by`` naming the group of each
        crater, and unique index labels (``result.matches`` refers to them).
    by
        The grouping column.
    groups
        Every group that was scored, including any without craters or detections (they are
        rows of zeros, and are resampled like the others); default: the groups seen in the tables.

    Returns
    -------
    pandas.DataFrame
        One row per group (the index), with ``n_pred``, ``n_pred_matched``, ``n_truth`` and
        ``n_truth_matched`` as :func:`evaluate` counts them (diameter floor included); their sums
        are the result's.
    """
    if not isinstance(result, EvaluationResult):
        raise InvalidArgumentError(f"result must be one rule's EvaluationResult, got {type(result).__name__}; "
                                   "with rule='all', pass one entry, e.g. result['deepmoon']")
    for frame, what in ((pred, "predicted"), (truth, "reference")):
        if by not in frame.columns:
            raise InvalidArgumentError(f"the {what} craters have no column {by!r} to group by; add it (e.g. the "
                                       "image each crater is on) before evaluating")
        if frame[by].isna().any():
            raise InvalidArgumentError(f"{int(frame[by].isna().sum())} {what} craters have no {by!r}; fill it or "
                                       "drop those rows, and evaluate again")
        if not frame.index.is_unique:
            raise InvalidArgumentError(f"the {what} craters' index has repeated labels; reset_index(drop=True) "
                                       "before evaluating")
    t = _craters(truth, "reference")
    p = _craters(pred, "predicted", empty_kind=t.kind)
    if (len(p), len(t)) != (result.n_pred_total, result.n_truth_total):
        raise InvalidArgumentError(f"these tables hold {len(p)} predictions and {len(t)} reference craters, but the "
                                   f"result scored {result.n_pred_total} and {result.n_truth_total}; pass the tables "
                                   "that were evaluated")
    pred_counted, truth_counted = _counted(p, t, result.d_min)
    pred_matched = pred.index.isin(result.matches["pred_index"])
    truth_matched = truth.index.isin(result.matches["truth_index"])
    zeros_p, zeros_t = np.zeros(len(p), int), np.zeros(len(t), int)
    parts = [
        pd.DataFrame({"group": pred[by].to_numpy(), "n_pred": pred_counted.astype(int),
                      "n_pred_matched": (pred_counted & pred_matched).astype(int),
                      "n_truth": zeros_p, "n_truth_matched": zeros_p}),
        pd.DataFrame({"group": truth[by].to_numpy(), "n_pred": zeros_t, "n_pred_matched": zeros_t,
                      "n_truth": truth_counted.astype(int),
                      "n_truth_matched": (truth_counted & truth_matched).astype(int)}),
    ]
    counts = pd.concat([q for q in parts if len(q)], ignore_index=True).groupby("group").sum()
    if groups is not None:
        extra = counts.index.difference(pd.Index(groups))
        if len(extra):
            raise InvalidArgumentError(f"craters lie in groups {list(extra[:5])} that are not in groups=; list "
                                       "every group that was scored")
        counts = counts.reindex(pd.Index(groups), fill_value=0)
    counts.index.name = by
    return counts[list(_COUNT_COLUMNS)].astype(int)


_COUNT_COLUMNS = ("n_pred", "n_pred_matched", "n_truth", "n_truth_matched")


def _scores_of(totals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # the vectorised twin of _ratio and _f1 (same edge cases), for thousands of resamples at once
    n_p, tp_p, n_t, tp_t = (totals[..., k].astype(float) for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision, recall = tp_p / n_p, tp_t / n_t
        f1 = np.where((precision == 0) | (recall == 0), 0.0, 2 * precision * recall / (precision + recall))
    return precision, recall, f1


def bootstrap_scores(
    counts: pd.DataFrame,
    *,
    reference: pd.DataFrame | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Confidence intervals of precision, recall and F1 by resampling whole groups.

    Craters on one image are not independent (one image is hard, another easy), so the groups
    (:func:`group_counts`: images, tiles...) are drawn with replacement, ``n_boot`` times, and
    the scores recomputed from the summed counts; the interval is the central ``level`` of
    them (percentile bootstrap).  A resample whose score is undefined (no detections for
    precision, no reference craters for recall) is left out of that score's interval; the
    column ``undefined`` says how many were.  With fewer than ~10 groups the intervals are
    too narrow to trust (a warning says so).

    Parameters
    ----------
    counts
        :func:`group_counts` of one detector (at least 2 groups).
    reference
        :func:`group_counts` of another detector on the same groups and reference craters: adds
        the row ``f1_difference`` (``counts`` minus ``reference``), paired (the same draws for
        both), which says whether the two differ by more than the sample's noise.
    n_boot, level, seed
        Number of resamples, coverage of the interval, random seed.

    Returns
    -------
    pandas.DataFrame
        Index ``precision``, ``recall``, ``f1`` (and ``f1_difference``); columns ``estimate``
        (on all groups, as :func:`evaluate` computes it), ``low``, ``high`` and ``undefined``.
        ``attrs`` holds ``by`` (the name of ``counts``' index), ``n_groups``, ``n_boot``,
        ``level`` and ``seed``, which :func:`to_json` writes beside the intervals.

    Examples
    --------
    >>> counts = pd.DataFrame({"n_pred": [10, 12, 8] * 4, "n_pred_matched": [9, 10, 6] * 4,
    ...                        "n_truth": [11, 12, 9] * 4, "n_truth_matched": [8, 10, 6] * 4})
    >>> ci = bootstrap_scores(counts, n_boot=200)
    >>> round(float(ci.loc["f1", "estimate"]), 3), bool(ci.loc["f1", "low"] < 0.789 < ci.loc["f1", "high"])
    (0.789, True)
    """
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 10):
        raise InvalidArgumentError(f"n_boot must be a whole number >= 10, got {n_boot!r}")
    if not (0 < float(level) < 1):
        raise InvalidArgumentError(f"level must be between 0 and 1, got {level!r}")
    columns = list(_COUNT_COLUMNS)
    if not set(columns) <= set(counts.columns):
        raise InvalidArgumentError(f"counts must be a table with columns {columns} (see group_counts)")
    if len(counts) < 2:
        raise InvalidArgumentError(f"counts has {len(counts)} group(s): resampling needs at least 2 (images, "
                                   "tiles...); score more of them")
    if len(counts) < 10:
        warnings.warn(f"only {len(counts)} groups: bootstrap intervals from so few are too narrow to trust",
                      UserWarning, stacklevel=2)
    tables = [counts]
    if reference is not None:
        if not set(columns) <= set(reference.columns):
            raise InvalidArgumentError(f"reference must have columns {columns} (see group_counts)")
        groups = counts.index.union(reference.index)
        tables = [counts.reindex(groups, fill_value=0), reference.reindex(groups, fill_value=0)]
        # the same chips with the same floor have the same reference craters, group by group
        if not np.array_equal(tables[0]["n_truth"].to_numpy(), tables[1]["n_truth"].to_numpy()):
            raise InvalidArgumentError("counts and reference differ in their reference craters per group: they "
                                       "were not scored on the same images with the same d_min; score both alike")
    arrays = [t[columns].to_numpy(dtype=np.int64) for t in tables]
    rng = np.random.default_rng(seed)
    n_groups = len(arrays[0])
    # resample in blocks: draws x groups x 4 at once would need gigabytes for global catalogs
    block = max(1, 2_000_000 // n_groups)
    sums = [np.empty((int(n_boot), 4)) for _ in arrays]
    for a in range(0, int(n_boot), block):
        b = min(int(n_boot), a + block)
        draws = rng.integers(0, n_groups, size=(b - a, n_groups))
        weights = np.stack([np.bincount(row, minlength=n_groups) for row in draws])
        for total, values in zip(sums, arrays):
            total[a:b] = weights @ values
    boot = [_scores_of(total) for total in sums]
    tail = (1 - float(level)) / 2 * 100
    def scores(totals: np.ndarray) -> dict[str, float]:  # as evaluate() computes them
        precision, recall = _ratio(int(totals[1]), int(totals[0])), _ratio(int(totals[3]), int(totals[2]))
        return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}

    estimates = scores(arrays[0].sum(axis=0))

    def interval(values: np.ndarray) -> tuple[float, float, int]:
        finite = values[np.isfinite(values)]
        if not finite.size:
            return float("nan"), float("nan"), len(values)
        low, high = np.percentile(finite, [tail, 100 - tail])
        return float(low), float(high), int(len(values) - finite.size)

    rows = {name: (estimates[name], *interval(boot[0][k])) for k, name in enumerate(("precision", "recall", "f1"))}
    if reference is not None:
        rows["f1_difference"] = (estimates["f1"] - scores(arrays[1].sum(axis=0))["f1"],
                                 *interval(boot[0][2] - boot[1][2]))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["estimate", "low", "high", "undefined"])
    out.attrs = {"by": counts.index.name, "n_groups": int(n_groups), "n_boot": int(n_boot), "level": float(level),
                 "seed": seed}
    return out


def to_json(
    result: EvaluationResult | dict[str, EvaluationResult],
    path: str | os.PathLike | None = None,
    *,
    include_matches: bool = False,
    overwrite: bool = False,
    indent: int = 2,
    bootstrap: pd.DataFrame | dict[str, pd.DataFrame] | None = None,
) -> str:
    """Serialise an :func:`evaluate` result (or a dict of them) to JSON; NaN becomes ``null``.

    Parameters
    ----------
    result
        What :func:`evaluate` returned.
    path
        Also write the text to this file (atomically; see ``overwrite``).
    include_matches
        Include the table of matches (large for big catalogs).
    bootstrap
        :func:`bootstrap_scores` of the result (a dict of them, by rule, for a dict of results):
        added under the key ``"bootstrap"``, as ``{"precision": {"estimate", "low", "high",
        "undefined"}, "recall": ..., "f1": ...}`` with the resampling's ``by``, ``n_groups``,
        ``n_boot``, ``level`` and ``seed``.

    Returns
    -------
    str

    Examples
    --------
    >>> truth = pd.DataFrame({"x": [20.0], "y": [20.0], "diameter_px": [10.0]})
    >>> json.loads(to_json(evaluate(truth, truth)))["f1"]
    1.0
    """
    from ._io import json_ready

    def intervals(ci: Any) -> dict[str, Any]:
        if not isinstance(ci, pd.DataFrame) or not {"estimate", "low", "high"} <= set(ci.columns):
            raise InvalidArgumentError(f"bootstrap must be what bootstrap_scores returned, got {type(ci).__name__}")
        return json_ready({**ci.attrs, **ci.to_dict(orient="index")})

    if isinstance(result, EvaluationResult):
        data: Any = result.to_dict(include_matches=include_matches)
        if bootstrap is not None:
            data["bootstrap"] = intervals(bootstrap)
    elif isinstance(result, dict) and all(isinstance(v, EvaluationResult) for v in result.values()):
        data = {k: v.to_dict(include_matches=include_matches) for k, v in result.items()}
        if bootstrap is not None:
            if not (isinstance(bootstrap, dict) and set(bootstrap) <= set(result)):
                raise InvalidArgumentError(f"with a dict of results, bootstrap is a dict of bootstrap_scores by rule "
                                           f"(keys among {list(result)})")
            for k, ci in bootstrap.items():
                data[k]["bootstrap"] = intervals(ci)
    else:
        raise InvalidArgumentError(f"to_json needs an EvaluationResult or a dict of them, got {type(result).__name__}")
    text = json.dumps(data, indent=indent, allow_nan=False, default=str)
    if path is not None:
        from ._io import atomic_path

        with atomic_path(path, overwrite) as tmp:
            tmp.write_text(text + "\n")
    return text
