"""Image pyramids: the scales at which the network looks at an image, and how their craters merge.

The network was trained on THEMIS at ~100 m per pixel, on craters of roughly 10 to 200 px.  An
image of any pixel size is searched at its own pixels (level 0) and at 1/2, 1/4, ... of them
until the biggest crater that fits in the image is within the coarsest level's reach.  Each
level keeps the diameters of its own band (in its own pixels); neighbouring bands overlap, and a
crater found at two levels is resolved by the finder's own duplicate rule
(:func:`marscraters.extract.nms_circles`).  The pixel size then only sets which levels run and
the craters' diameters in metres: the image's detail is never thrown away.

Images coarser than the network's native pixel size (beyond :data:`SCALE_TOLERANCE`) are first
enlarged to it, as a single-scale detector would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .errors import InvalidArgumentError

__all__ = ["LEVEL_TOP_PX", "SCALE_TOLERANCE", "Level", "level_options", "level_pixels", "merge_levels", "pyramid_levels"]

#: Within this factor of the network's native pixel size an image is used as it is (the model
#: saw zooms of 0.7-1.3 in training).
SCALE_TOLERANCE = 1.3
#: Every level but the coarsest keeps craters up to about this diameter in its own pixels (times
#: :data:`_OVERLAP`); every level but the finest keeps them from half of it (divided by
#: :data:`_OVERLAP`).  Chosen on validation data (``benchmarks/splits/pyramid_rule.md``).
LEVEL_TOP_PX = 128.0
# neighbouring levels' bands overlap by this factor on each side, so that a crater whose size
# one level misjudges by up to 25 % is still kept by one of them (duplicates are merged)
_OVERLAP = 1.25
# a coarser level is added while the image's smaller side, at the current level, exceeds this
# many times the level's top diameter: a crater must fit in the image with room for its rim
_ROOM = 2.0


class Level(NamedTuple):
    """One level of an image's pyramid.

    Attributes
    ----------
    factor
        Resampling factor from the input image to this level (< 1 shrinks, > 1 enlarges).
    min_diameter_px, max_diameter_px
        Diameters this level keeps, in its own pixels (``max_diameter_px`` is None for the
        coarsest level: up to the image's size).
    """

    factor: float
    min_diameter_px: float
    max_diameter_px: float | None

    @property
    def resampled(self) -> bool:
        """Whether the level differs from the input image's own pixels."""
        return self.factor != 1.0

    def shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """This level's image shape for an input of ``shape``."""
        return tuple(max(int(round(n * self.factor)), 1) for n in shape[:2])  # type: ignore[return-value]


def _check_levels(levels: Any) -> int | None:
    if isinstance(levels, str):
        if levels != "auto":
            raise InvalidArgumentError(f"levels={levels!r} must be 'auto' or a whole number of levels >= 1 "
                                       "(1: the image's own pixels only)")
        return None
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise InvalidArgumentError(f"levels={levels!r} must be 'auto' or a whole number of levels >= 1 "
                                   "(1: the image's own pixels only)")
    return int(levels)


def levels_arg(text: str) -> int | str:
    """A command line's ``--levels``: ``'auto'`` or a whole number >= 1 (an argparse ``type``)."""
    import argparse

    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--levels {text}: give 'auto' or a whole number of levels >= 1 "
                                         "(1: a single scale)")
    return value


def pyramid_levels(
    shape: tuple[int, int],
    pixel_size_m: float,
    native_pixel_size_m: float,
    *,
    levels: int | str = "auto",
    top_px: float | None = None,
) -> list[Level]:
    """The pyramid of an image: which scales the network runs at and the diameters each keeps.

    Parameters
    ----------
    shape
        The image's ``(rows, columns)``.
    pixel_size_m, native_pixel_size_m
        The image's pixel size and the network's, in metres.
    levels
        ``"auto"``: halve until the biggest crater the image can hold is within the coarsest
        level's band; or the number of levels to run at most (1: a single scale).
    top_px
        Top of every level's band but the coarsest, in its own pixels (before the overlap);
        default :data:`LEVEL_TOP_PX`, the THEMIS model's band.  A model file may store its own
        (the model for fine imagery: 48 px), which :func:`marscraters.detect.detect` uses: pass
        ``top_px=model_info(model)["pyramid_top_px"]`` (:func:`marscraters.detect.model_info`)
        to list the levels detect runs with that model.

    Returns
    -------
    list of Level
        Finest first.  Level 0 is the image's own pixels, or the native pixel size when the
        image is coarser than it; each further level halves the previous one.

    Examples
    --------
    >>> [round(lv.factor, 3) for lv in pyramid_levels((416, 416), 100, 100)]
    [1.0, 0.5]
    >>> [round(lv.factor, 4) for lv in pyramid_levels((2000, 2000), 6, 100)]
    [1.0, 0.5, 0.25, 0.125]
    >>> [round(lv.factor, 4) for lv in pyramid_levels((2000, 2000), 6, 100, top_px=48)]  # the fine model's band
    [1.0, 0.5, 0.25, 0.125, 0.0625, 0.0312]
    >>> pyramid_levels((416, 416), 100, 100, levels=1)
    [Level(factor=1.0, min_diameter_px=0.0, max_diameter_px=None)]
    """
    most = _check_levels(levels)
    if not (np.isfinite(pixel_size_m) and pixel_size_m > 0 and np.isfinite(native_pixel_size_m)
            and native_pixel_size_m > 0):
        raise InvalidArgumentError(f"pixel sizes must be finite and > 0 metres, got {pixel_size_m!r} and "
                                   f"{native_pixel_size_m!r}")
    top_px = LEVEL_TOP_PX if top_px is None else top_px
    if not top_px > 0:
        raise InvalidArgumentError(f"top_px must be > 0, got {top_px!r}")
    ratio = pixel_size_m / native_pixel_size_m
    # coarser than the network saw: enlarge to its scale first; finer: keep every pixel
    first = ratio if ratio > SCALE_TOLERANCE else 1.0
    side = min(shape[:2]) * first
    factors = [first]
    while (most is None or len(factors) < most) and side / 2 ** (len(factors) - 1) > _ROOM * top_px * _OVERLAP:
        factors.append(first / 2 ** len(factors))
    out = []
    for i, f in enumerate(factors):
        lo = 0.0 if i == 0 else top_px / 2 / _OVERLAP
        hi = None if i == len(factors) - 1 else top_px * _OVERLAP
        out.append(Level(float(f), lo, hi))
    return out


def level_options(level: Level, options: dict[str, Any]) -> dict[str, Any] | None:
    """The circle finder's options for one level: its band, within the caller's diameter limits.

    ``options`` may hold the caller's ``min_diameter_px`` and ``max_diameter_px``, in the input
    image's pixels; they are scaled to the level's.  Without them, the finest level keeps the
    finder's own lower limit.  None when the level's band misses the caller's limits.
    """
    out = dict(options)
    lo_in, hi_in = out.pop("min_diameter_px", None), out.pop("max_diameter_px", None)
    los = [v for v in (level.min_diameter_px or None, None if lo_in is None else lo_in * level.factor) if v]
    his = [v for v in (level.max_diameter_px, None if hi_in is None else hi_in * level.factor) if v is not None]
    lo, hi = (max(los) if los else None), (min(his) if his else None)
    if lo is not None and hi is not None and hi < lo:
        return None
    if lo is not None:
        out["min_diameter_px"] = lo
    if hi is not None:
        out["max_diameter_px"] = hi
    return out


def to_input_pixels(craters: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Craters found on an image resampled by ``factor``, in the input image's pixel coordinates
    (origin at the centre of the top-left pixel)."""
    if factor == 1.0 or not len(craters):
        return craters
    return craters.assign(x=(craters["x"] + 0.5) / factor - 0.5, y=(craters["y"] + 0.5) / factor - 0.5,
                          diameter_px=craters["diameter_px"] / factor)


def merge_levels(
    tables: Sequence[pd.DataFrame],
    levels: Sequence[Level],
    *,
    nms: str = "deepmoon",
    nms_threshold: Any = None,
    contained: bool = False,
    indices: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One image's craters from its levels' tables: in its own pixels, duplicates merged.

    Parameters
    ----------
    tables
        One PixelCraters table per level, in that level's pixels.
    levels
        The levels, as :func:`pyramid_levels` gives them.
    nms, nms_threshold, contained
        The finder's duplicate rule (:func:`marscraters.extract.nms_circles`): a crater found
        at two levels keeps the better-scored circle.
    indices
        Each level's index in the full pyramid, when ``levels`` leaves some out (those whose band
        the caller's diameter limits miss); default ``0, 1, 2, ...``.

    Returns
    -------
    pandas.DataFrame
        The craters in the input image's pixels, sorted by decreasing score, with a ``level``
        column: the index of the level it was found at in the full pyramid (0: the finest,
        1: a halving, ..., whether or not the finer levels were searched).
    """
    from .extract import nms_circles

    if len(tables) != len(levels):
        raise InvalidArgumentError(f"{len(tables)} tables for {len(levels)} levels: give one per level")
    indices = list(range(len(levels))) if indices is None else [int(i) for i in indices]
    if len(indices) != len(levels):
        raise InvalidArgumentError(f"{len(indices)} indices for {len(levels)} levels: give one per level")
    # numbered in the full pyramid: a level skipped (the caller's limits miss its band) renumbers nothing
    parts = [to_input_pixels(t, lv.factor).assign(level=i) for i, t, lv in zip(indices, tables, levels)]
    attrs = dict(tables[0].attrs) if len(tables) else {}
    nonempty = [p for p in parts if len(p)]
    if not nonempty:
        out = parts[0].iloc[:0] if parts else pd.DataFrame(columns=["x", "y", "diameter_px", "score", "level"])
    elif len(parts) == 1:
        out = parts[0].reset_index(drop=True)
    else:
        out = nms_circles(pd.concat(nonempty, ignore_index=True), rule=nms, threshold=nms_threshold,
                          contained=contained)
    out.attrs.update(attrs)
    out.attrs["levels"] = [round(lv.factor, 6) for lv in levels]
    return out


def level_pixels(shape: tuple[int, int], levels: Sequence[Level]) -> int:
    """Pixels the network sees over all levels (the pyramid's cost relative to the input)."""
    return int(sum(math.prod(lv.shape(shape)) for lv in levels))
