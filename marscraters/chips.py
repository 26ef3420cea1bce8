"""Labelled image chips: small images with YOLO crater boxes (the real THEMIS Day IR crops).

A chip folder holds ``images/<name>.jpg`` and ``labels/<name>.txt`` (or both side by side in one
folder).  Each label line is ``class cx cy w h`` in YOLO style: the box centre and size as
fractions of the image width and height.  A crater's diameter is the mean of the box's width and
height, ``(w * W + h * H) / 2`` pixels.

A box that touches the image edge has been **cut by it**: the crops' labels clip each crater's box
to the image, so its centre moves inwards and the mean of its sides underestimates the diameter
(in the THEMIS crops, 564 of 3,867 boxes, and 47 % of the craters of 64-128 px, are cut).  By
default (``edge_boxes="circle"``) such a crater's circle is restored from the side the edge did not
cut: on a plain chip (square pixels on the ground) the uncut side is the diameter, and the centre
sits half a diameter from the uncut edge.  A box cut in both directions (at a corner, or by a
crater wider than the image) gives only a lower bound on the diameter.  ``edge_boxes="box"`` takes
every box as it is.

A **georeferenced** chip, one listed in its folder's ``index.csv`` (the index :func:`write_chips`
writes, or any crop index, :func:`read_crop_index`), lies on an equirectangular lon/lat grid,
where a crater at latitude φ is an ellipse ``1/cos φ`` times wider than tall
(:func:`marscraters.targets.catalog_pixels`).  Its cut boxes are restored to that ellipse: the
uncut side gives the other through the crater's latitude, the diameter is the mean of the two
sides, as for an uncut box, and the centre moves by half the missing part of the cut side.

The chip images carry no georeferencing (a georeferenced chip's bounds are in its index), so
their craters are **PixelCraters**: ``x``, ``y`` in pixel index coordinates, where ``(0, 0)`` is
the centre of the top-left pixel (the convention of :class:`marscraters.crs.Grid`).  A YOLO centre
``cx`` (a fraction of the width measured from the image's left *edge*) is therefore
``x = cx * W - 0.5``.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import (
    CatalogFormatError,
    CatalogNotFoundError,
    CorruptImageError,
    ImageReadError,
    InvalidArgumentError,
)

__all__ = [
    "Chips",
    "chip_craters",
    "crop_mosaic",
    "is_yolo_labels",
    "read_chips",
    "read_crop_index",
    "read_voc_labels",
    "read_yolo_labels",
    "stitch_crops",
    "write_chips",
]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


@dataclass
class Chips:
    """A stack of labelled chips.

    Attributes
    ----------
    images
        ``(N, H, W)`` float32 grey images on the original 0..255 scale (not rescaled, so a model's
        normalisation stays explicit; RGB files are averaged over their bands, which for the
        THEMIS crops are equal; palette images give the colours they show, and transparent
        pixels are NaN, no data, as ``detect`` reads them).
    names
        File stems (``"crater0"``, ...), in the order of ``images``: by the chip's number, the
        last whole number in its name (see :func:`read_chips`).
    craters
        PixelCraters of all chips: ``chip`` (index into ``images``), ``x``, ``y`` and
        ``diameter_px`` in pixel index coordinates, plus the box's ``width_px``, ``height_px``,
        YOLO ``class_id`` and ``edge_cut`` (the box touches the image edge).
    folder
        The folder the chips were read from.
    """

    images: np.ndarray
    names: list[str]
    craters: pd.DataFrame
    folder: Path | None = field(default=None)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.images.shape[1:]))
        return f"Chips({len(self)} chips of {shape} px, {len(self.craters)} craters, folder={str(self.folder)!r})"


def _number(stem: str) -> int | None:
    """The chip's number: the last integer in its file stem (``crater12`` -> 12)."""
    found = re.findall(r"\d+", stem)
    return int(found[-1]) if found else None


def _natural_key(stem: str) -> tuple[str | int, ...]:
    """The stem with its runs of digits as numbers (``q_2_0`` before ``q_10_0``)."""
    # re.split puts text at even and numbers at odd places, so two keys never compare str with int
    return tuple(int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", stem)))


def _sort_key(path: Path) -> tuple[bool, int, tuple[str | int, ...]]:
    n = _number(path.stem)
    return (n is None, n if n is not None else 0, _natural_key(path.stem))


def _select_by_number(paths: list[Path], wanted: list[int], image_dir: Path) -> list[Path]:
    """The chips numbered ``wanted``, in that order; an absent or shared number is refused."""
    by_number: dict[int, list[Path]] = {}
    for p in paths:
        n = _number(p.stem)
        if n is not None:
            by_number.setdefault(n, []).append(p)
    absent = [i for i in wanted if i not in by_number]
    if absent:
        raise CatalogNotFoundError(f"{image_dir} has no chip number(s) {absent[:10]} (it has {len(paths)} chips).")
    shared = next((i for i in wanted if len(by_number[i]) > 1), None)
    if shared is not None:
        # e.g. the <prefix>_<col>_<row> names earlier write_chips gave: one number for a whole row of chips
        names = ", ".join(p.name for p in by_number[shared][:4]) + (" ..." if len(by_number[shared]) > 4 else "")
        raise InvalidArgumentError(
            f"{len(by_number[shared])} chips of {image_dir} have the number {shared} ({names}): a chip's number is "
            "the last whole number in its name, so indices= cannot tell them apart. Give each chip a name ending in "
            "its own number (`marscraters chips` / write_chips now name chips <prefix>_0, <prefix>_1, ...: write "
            "the folder again), or select chips by position instead of number (read_chips(folder) without "
            "indices=, then chips_training_set(chips, positions); `marscraters train --train START:STOP` counts "
            "positions).")
    return [by_number[i][0] for i in wanted]


#: The values of a YOLO label line, by their count: a label, or a detection with its confidence.
_YOLO_FIELDS = {5: "class cx cy w h", 6: "class cx cy w h confidence"}


def _parse_yolo(path: Path, *, scores: bool = False) -> np.ndarray:
    """``(n, 5)`` array of ``cx, cy, w, h, class`` rows; an absent file has no rows.

    With ``scores``, detections may carry a confidence as a 6th value on every line (YOLO
    detectors' ``--save-conf``): the array is then ``(n, 6)``, the confidence last.  Training
    labels (``scores=False``) have five values.

    Boxes that cannot lie on the image (centre outside [0, 1], width or height > 1) are dropped
    with a UserWarning naming the file and lines: a label file is the user's data, so one bad
    line should not stop a run, but it must not pass silently either.
    """
    rows: list[tuple[float, ...]] = []
    outside: list[int] = []
    n_values = None  # values per line, set by the first line: 5, or 6 with a confidence
    if path.exists():
        with open(path, encoding="utf-8-sig") as fh:
            for line_no, line in enumerate(fh, start=1):
                fields = line.split()
                if not fields:
                    continue
                allowed = (5, 6) if scores and n_values is None else (n_values or 5,)
                if len(fields) not in allowed:
                    if not scores:
                        expected = "5 values 'class cx cy w h'"
                    elif n_values is None:
                        expected = "5 values 'class cx cy w h' (or 6, with a confidence last)"
                    else:  # one file, one layout: a confidence on some lines only is a broken file
                        expected = f"{n_values} values {_YOLO_FIELDS[n_values]!r}, as on the file's first line"
                    # detections given as training labels: say which value is the extra one
                    hint = (" (a detection's confidence? training labels have none: drop the 6th column)"
                            if len(fields) == 6 and not scores else "")
                    raise CatalogFormatError(
                        f"{path}, line {line_no}: expected {expected}, got {len(fields)}: {line.strip()!r}{hint}"
                    )
                n_values = len(fields)
                try:
                    numbers = [float(v) for v in fields]
                except ValueError:
                    raise CatalogFormatError(
                        f"{path}, line {line_no}: {_YOLO_FIELDS[n_values]!r} must be numbers, got {line.strip()!r}"
                    ) from None
                cls_f, cx, cy, w, h = numbers[:5]
                if not all(np.isfinite(numbers)) or w <= 0 or h <= 0 or cls_f != int(cls_f):
                    raise CatalogFormatError(
                        f"{path}, line {line_no}: need an integer class, finite values and w, h > 0; "
                        f"got {line.strip()!r}"
                    )
                if not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0 and w <= 1.0 and h <= 1.0):
                    outside.append(line_no)
                    continue
                rows.append((cx, cy, w, h, int(cls_f), *numbers[5:]))
    if outside:
        lines = ", ".join(map(str, outside[:10])) + (" ..." if len(outside) > 10 else "")
        warnings.warn(
            f"{path}: dropped {len(outside)} box(es) outside the image (line(s) {lines}): YOLO centres must be in "
            "[0, 1] and widths and heights in (0, 1], as fractions of the image size; fix or remove those lines",
            UserWarning, stacklevel=3)
    return np.asarray(rows, dtype=float).reshape(-1, n_values or 5)


_EDGE_BOXES = ("circle", "box")
# a box side within this many pixels of the image edge was cut by it (the crops' labels are rounded
# to 1e-5 of the width, and some overshoot the edge by 0.005 px)
_EDGE_TOLERANCE_PX = 0.5


def _check_edge_boxes(edge_boxes: str) -> None:
    if edge_boxes not in _EDGE_BOXES:
        raise InvalidArgumentError(
            f"edge_boxes must be one of {_EDGE_BOXES}, got {edge_boxes!r}: 'circle' restores the circle of a crater "
            "whose box the image edge cut, 'box' takes each box as it is."
        )


def _cut_sides(centre: np.ndarray, extent: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether each box (centre and extent along one axis, edge coordinates) reaches the low and the high edge."""
    return centre - extent / 2 <= _EDGE_TOLERANCE_PX, centre + extent / 2 >= size - _EDGE_TOLERANCE_PX


def _uncut_centre(centre: np.ndarray, extent: np.ndarray, full: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Centre along one axis of craters whose box the edge cut to ``extent`` of its ``full`` size:
    the uncut edge stays where it is."""
    # only a box cut on one side, and shorter than the crater, moves
    move = (lo != hi) & (extent < full)
    shift = (full - extent) / 2
    return np.where(move & lo, centre - shift, np.where(move & hi, centre + shift, centre))


#: ``aspect(y)``: width over height, in pixels, of a crater centred on row ``y`` (index coordinates)
_Aspect = Callable[[np.ndarray], np.ndarray]
# restoring a box cut at the top or bottom moves its centre, and so its latitude: a few passes settle it
_ASPECT_PASSES = 3


def _boxes_to_pixels(arr: np.ndarray, width: int, height: int, edge_boxes: str = "circle",
                     aspect: _Aspect | None = None) -> dict[str, np.ndarray]:
    cx, cy = arr[:, 0] * width, arr[:, 1] * height
    w_px = arr[:, 2] * width
    h_px = arr[:, 3] * height
    left, right = _cut_sides(cx, w_px, width)
    top, bottom = _cut_sides(cy, h_px, height)
    cut = left | right | top | bottom
    diameter = (w_px + h_px) / 2.0
    if edge_boxes == "circle":
        # the edge shortens one side only: the other still spans the whole crater, and the
        # crater's shape (a circle, or on a lon/lat chip an ellipse `aspect` times wider than
        # tall) gives the cut one.  Cut both ways, the larger of the two is a lower bound.
        ratio = np.ones_like(w_px)
        y = cy
        for _ in range(_ASPECT_PASSES if aspect is not None else 1):
            if aspect is not None:
                ratio = aspect(y - 0.5)
            full_h = np.where(cut, np.maximum(h_px, w_px / ratio), h_px)
            y = _uncut_centre(cy, h_px, full_h, top, bottom)
        full_w = np.where(cut, ratio * full_h, w_px)
        diameter = np.where(cut, (full_w + full_h) / 2.0, diameter)
        cx, cy = _uncut_centre(cx, w_px, full_w, left, right), y
    return {
        # YOLO measures from the image edge; index coordinates from the first pixel's centre
        "x": cx - 0.5,
        "y": cy - 0.5,
        "diameter_px": diameter,
        "width_px": w_px,
        "height_px": h_px,
        "class_id": arr[:, 4].astype(np.int64),
        "edge_cut": cut,
    }


def _chip_index(folder: Path) -> pd.DataFrame | None:
    """The crop index (``index.csv``, as :func:`write_chips` writes it) of a chip folder, or None."""
    path = folder / "index.csv"
    if not path.is_file():
        return None
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (ValueError, UnicodeDecodeError):
        return None
    if not set(CROP_INDEX_COLUMNS) <= set(header):
        return None  # some other table, without bounds: the chips are not georeferenced
    return read_crop_index(path)


def _chip_aspect(index: pd.DataFrame | None, stems: list[str], chip: np.ndarray,
                 width: int, height: int) -> _Aspect | None:
    """``aspect(y)`` of the boxes on chips ``stems[chip]``: a circle's width over its height in pixels.

    On a chip the index lists (an equirectangular lon/lat crop) that is ``1/cos(lat)`` at the
    box's row, times the ratio of the chip's pixels per degree across and down, as
    :meth:`marscraters.crs.Grid.km_to_pixels` sizes the catalog's craters; elsewhere it is 1.
    """
    from .crs import km_to_deg_lat, km_to_deg_lon

    if index is None:
        return None
    rows = {Path(str(f)).stem: r for f, r in zip(index["file"], index.itertuples(index=False))}
    found = [rows.get(stem) for stem in stems]
    missing = [stem for stem, r in zip(stems, found) if r is None]
    if missing:
        listed = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        warnings.warn(f"{index.attrs.get('path', 'the index')} has no row for {len(missing)} chip(s) ({listed}), so "
                      "their boxes cut by the chip edge are restored as circles on square pixels, not as the "
                      "ellipses of their latitude; add their rows (file, lon_min, lon_max, lat_min, lat_max) or "
                      "move them to a folder of their own", UserWarning, stacklevel=3)
    if len(missing) == len(stems):
        return None
    geo = np.array([r is not None for r in found])
    lat_top = np.array([r.lat_max if r is not None else 0.0 for r in found], dtype=float)[chip]
    ppd_x = np.array([width / (r.lon_max - r.lon_min) if r is not None else 1.0 for r in found], dtype=float)[chip]
    ppd_y = np.array([height / (r.lat_max - r.lat_min) if r is not None else 1.0 for r in found], dtype=float)[chip]
    geo = geo[chip]

    def aspect(y: np.ndarray) -> np.ndarray:
        # a restored centre may leave the chip; the poles themselves have no finite ellipse
        lat = np.clip(np.where(geo, lat_top - (y + 0.5) / ppd_y, 0.0), -89.99, 89.99)
        return np.where(geo, km_to_deg_lon(1.0, lat) * ppd_x / (km_to_deg_lat(1.0) * ppd_y), 1.0)

    return aspect


def read_yolo_labels(
    path: str | os.PathLike, width: int | None = None, height: int | None = None, *, edge_boxes: str = "circle"
) -> pd.DataFrame:
    """Read one YOLO label file into PixelCraters.

    Parameters
    ----------
    path
        The ``.txt`` file: one ``class cx cy w h`` line per crater, normalised to the image size,
        or ``class cx cy w h confidence`` on every line (detections, as YOLO detectors write them
        with ``--save-conf``).  Blank lines are ignored; a missing file means no craters.
    width, height
        Image size in pixels.  Left out, they are read from the chip's image: the file of the
        same name beside the labels, or in ``../images/`` (the layout of the THEMIS crops).
    edge_boxes
        ``"circle"`` (default): restore the circle of a crater whose box the image edge cut (see
        the module notes); ``"box"``: take each box as it is.  When an ``index.csv`` of crop
        bounds beside the labels or one folder up lists the chip (as :func:`write_chips` writes
        it), cut boxes are restored to the ellipses of their latitude.

    Returns
    -------
    pandas.DataFrame
        ``x``, ``y``, ``diameter_px`` (pixel index coordinates), ``width_px``, ``height_px`` (the
        box as labelled), ``class_id`` and ``edge_cut`` (whether the box touches the image edge);
        and ``score``, the confidence, when the lines have six values.

    Raises
    ------
    CatalogFormatError
        Naming the file and line, when a line does not hold five numbers (or six on every line), a
        value is not finite, the class is not an integer, or a box has a width or height <= 0.
    InvalidArgumentError
        If only one of ``width`` and ``height`` is given, or neither is and no image of the same
        name is found, or the size is not positive.

    Warns
    -----
    UserWarning
        Naming the file, lines and count of the boxes dropped because they lie outside the
        image (centre outside [0, 1], width or height > 1).

    Examples
    --------
    >>> read_yolo_labels("labels/crater0.txt").head(1)  # size from images/crater0.jpg  # doctest: +SKIP
            x       y  diameter_px  width_px  height_px  class_id
    0  257.25  353.31         25.0      26.0       24.0         0
    """
    _check_edge_boxes(edge_boxes)
    if (width is None) != (height is None):
        raise InvalidArgumentError(f"give both width and height of the image of {path}, or neither (to read them "
                                   "from the image of the same name)")
    if width is None:
        width, height = _label_image_size(Path(path))
    elif width <= 0 or height <= 0:
        raise InvalidArgumentError(f"the image of {path} must have width and height > 0 pixels, got {width} x "
                                   f"{height}; give its real size (CLI --image-size WIDTH HEIGHT), or leave both out to "
                                   "read them from the image of the same name")
    path = Path(path)
    arr = _parse_yolo(path, scores=True)
    # the chip's folder (labels/ and images/ inside it, or the labels beside the images) may
    # georeference it; an index that does not list this chip says nothing about it
    indices = (_chip_index(f) for f in (path.parent, path.parent.parent))
    index = next((i for i in indices if i is not None and path.stem in {Path(str(f)).stem for f in i["file"]}), None)
    aspect = _chip_aspect(index, [path.stem], np.zeros(len(arr), dtype=np.int64), width, height)
    out = pd.DataFrame(_boxes_to_pixels(arr[:, :5], width, height, edge_boxes, aspect))
    if arr.shape[1] == 6:
        out["score"] = arr[:, 5]  # detections' confidence, as `detect` names its own
    return out


def read_voc_labels(path: str | os.PathLike, *, min_confidence: int = 0) -> pd.DataFrame:
    """Read one Pascal VOC annotation file (``<object><bndbox>`` boxes) into PixelCraters.

    Parameters
    ----------
    path
        The ``.xml`` file, as the Mars Crater Catalogue's CTX labels (``ctx-mc11e``) ship.  Box
        corners are pixel indices, both inclusive: a box ``xmin..xmax`` spans
        ``xmax - xmin + 1`` pixels and is centred on ``(xmin + xmax) / 2``.
    min_confidence
        Keep the boxes whose ``<confidence>`` (how many annotators marked the crater) is at
        least this; a box without one counts as confidence 1.

    Returns
    -------
    pandas.DataFrame
        ``x``, ``y``, ``diameter_px`` (the mean of the box's sides), ``width_px``,
        ``height_px`` and ``confidence``; ``attrs["width"]``, ``attrs["height"]``: the image
        size the file states (0 when it states none).

    Raises
    ------
    CatalogNotFoundError
        If the file does not exist.
    CatalogFormatError
        Naming the file, when it is not XML, or an object's box lacks a corner, holds a value
        that is not a number, or has ``xmax < xmin`` or ``ymax < ymin``, or its
        ``<confidence>`` is not a number.

    Warns
    -----
    UserWarning
        Naming the file, objects and count, for boxes dropped because their centre lies outside
        the image size the file states, and for objects skipped because their ``<name>`` is not
        ``crater`` (objects without a name are kept).

    Examples
    --------
    >>> read_voc_labels("MC11E-A.xml").columns.tolist()[:3]  # doctest: +SKIP
    ['x', 'y', 'diameter_px']
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    fix = "give a Pascal VOC .xml annotation file (objects with bndbox xmin, ymin, xmax, ymax in pixels)"
    if not path.is_file():
        raise CatalogNotFoundError(f"label file {path} does not exist; check the path ({fix})")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CatalogFormatError(f"{path} cannot be read as XML ({exc}); {fix}") from None
    size = root.find("size")
    width = int(float(size.findtext("width") or 0)) if size is not None else 0
    height = int(float(size.findtext("height") or 0)) if size is not None else 0
    rows = []
    outside: list[int] = []
    others: dict[str, int] = {}
    for n, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        if name and name.lower() != "crater":
            # other classes (rocks, dunes...) are not craters: training on them would teach false craters
            others[name] = others.get(name, 0) + 1
            continue
        box = obj.find("bndbox")
        try:
            x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[union-attr, arg-type]
        except (AttributeError, TypeError, ValueError):
            raise CatalogFormatError(f"{path}: object {n + 1} has no complete numeric bndbox; {fix}") from None
        try:
            conf = int(float(obj.findtext("confidence") or 1))
        except ValueError:
            raise CatalogFormatError(
                f"{path}: object {n + 1} has the confidence {obj.findtext('confidence')!r}, not a number; "
                "<confidence> is how many annotators marked the crater (a whole number), fix it or remove the "
                "tag (counts as 1)") from None
        if not np.all(np.isfinite([x0, y0, x1, y1])) or x1 < x0 or y1 < y0:
            raise CatalogFormatError(f"{path}: object {n + 1} has the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}), with a "
                                     "corner that is not finite or xmax < xmin or ymax < ymin; fix or remove it")
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        # a box the edge cuts is a real crater; one centred off the stated image is not on it
        if width > 0 and height > 0 and not (-0.5 <= cx <= width - 0.5 and -0.5 <= cy <= height - 0.5):
            outside.append(n + 1)
            continue
        if conf >= min_confidence:
            w, h = x1 - x0 + 1, y1 - y0 + 1
            rows.append((cx, cy, (w + h) / 2, w, h, conf))
    if outside:
        listed = ", ".join(map(str, outside[:10])) + (" ..." if len(outside) > 10 else "")
        warnings.warn(f"{path}: dropped {len(outside)} box(es) centred outside the {width} x {height} px image its "
                      f"<size> states (object(s) {listed}); fix their corners or the <size>", UserWarning, stacklevel=2)
    if others:
        skipped = ", ".join(f"{k!r} ({v})" for k, v in sorted(others.items()))
        warnings.warn(f"{path}: skipped {sum(others.values())} object(s) that are not craters, named {skipped}; only "
                      "objects named 'crater' (or with no name) are read. Rename the objects that are craters",
                      UserWarning, stacklevel=2)
    out = pd.DataFrame(rows, columns=["x", "y", "diameter_px", "width_px", "height_px", "confidence"])
    out = out.astype({c: float for c in out.columns[:5]} | {"confidence": np.int64})
    out.attrs["width"] = width
    out.attrs["height"] = height
    return out


def is_yolo_labels(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a YOLO label file: a ``.txt`` whose first non-blank line is five numbers,
    or six (detections with a confidence last); a text catalog has a header or other columns."""
    path = Path(path)
    if path.suffix.lower() != ".txt" or not path.is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            if fields:
                try:
                    return len(fields) in (5, 6) and all(np.isfinite([float(v) for v in fields]))
                except ValueError:
                    return False
    return True  # an empty label file: a chip without craters


def _label_image_size(label: Path) -> tuple[int, int]:
    """Width and height of the image a YOLO label file belongs to (same stem, beside it or in ../images/)."""
    from PIL import Image, UnidentifiedImageError

    folders = (label.parent, label.parent.parent / "images")
    # the stem must match exactly (as read_chips pairs them): crater7.mask.png is not crater7's image
    found = [p for f in folders if f.is_dir() for p in sorted(f.glob(glob.escape(label.stem) + ".*"))
             if p.stem == label.stem and p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()]
    if not found:
        raise InvalidArgumentError(
            f"YOLO labels are fractions of the image size, and no image named {label.stem}"
            f"{{{','.join(_IMAGE_SUFFIXES)}}} is beside {label} or in {folders[1]}; give the size "
            "(read_yolo_labels(path, width, height); CLI --image-size WIDTH HEIGHT) or put the image there"
        )
    try:
        with Image.open(found[0]) as im:  # reads the header only
            return im.size
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise CorruptImageError(f"cannot read the size of {found[0]} ({exc}); give the size instead "
                                "(CLI --image-size WIDTH HEIGHT)") from exc


def _read_grey(path: Path) -> np.ndarray:
    """A chip or crop image as float32 grey, as :func:`marscraters.detect.read_grey_image` sees it.

    Palette, grey+alpha, CMYK and YCbCr images are converted to the colours they show first (a
    palette PNG's pixels are indices, not grey levels); colour is the mean of its bands (the
    THEMIS crops' three bands are equal), and transparent pixels (alpha 0) are no data, NaN.
    """
    from PIL import Image, UnidentifiedImageError

    from .detect import _alpha
    from .mosaic import _as_viewed

    try:
        with Image.open(path) as im:
            im.load()
            # as a viewer shows it (and detect reads it): its labels describe that picture
            im = _as_viewed(im)
            alpha = _alpha(im)
            if im.mode in ("P", "PA", "CMYK", "YCbCr"):
                im = im.convert("RGB")
            elif im.mode == "LA":
                im = im.convert("L")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"cannot read chip image {path}: {exc}. Replace or delete the file.") from exc
    if arr.ndim == 3:
        rgb = arr[..., :3]  # drop alpha
        band = rgb[..., 0]
        if rgb.shape[-1] == 1 or ((band == rgb[..., 1]).all() and (band == rgb[..., 2]).all()):
            arr = band  # the THEMIS crops: three equal bands (6x faster than averaging)
        else:
            arr = rgb.sum(axis=-1, dtype=np.float32) / np.float32(rgb.shape[-1])
    out = np.array(arr, dtype=np.float32)  # a copy: the NaN below must not reach PIL's buffer
    if alpha is not None:
        out[alpha == 0] = np.nan  # as detect and ingest read it: no data
    return out


def read_chips(
    folder: str | os.PathLike,
    *,
    limit: int | None = None,
    indices: Iterable[int] | None = None,
    edge_boxes: str = "circle",
) -> Chips:
    """Read a folder of labelled chips (images plus YOLO label files).

    Parameters
    ----------
    folder
        A folder with ``images/`` and ``labels/`` sub-folders (as the THEMIS crops in
        ``shared/data/themis-dayir-crops``), or with the images and ``.txt`` labels side by side.
    limit
        Read at most this many chips (after sorting and ``indices``).
    indices
        Read only the chips with these numbers (a chip's number is the last whole number in its
        file name: ``crater17.jpg`` is chip number 17, ``mars_0017.png`` too), in the order given.
    edge_boxes
        ``"circle"`` (default): restore the circle of a crater whose box the image edge cut (the
        THEMIS crops' labels clip boxes to the image; see the module notes); ``"box"``: take each
        box as it is (how labels were read up to and including the shipped model v6).  Chips
        listed in the folder's ``index.csv`` (as :func:`write_chips` writes it) are restored to
        the ellipses of their latitude.

    Returns
    -------
    Chips
        Images sorted by their number (``crater2`` before ``crater10``; names with the same
        number by their other numbers, then text), as float32 grey on the 0..255 scale, and
        their craters as PixelCraters.  A chip's position in this order is what
        :func:`marscraters.training.chips_training_set` and ``marscraters train --train
        START:STOP`` count: for the chips :func:`write_chips` names ``<prefix>_<n>``, position
        and number agree, in rows from the mosaic's north-west corner.

    Raises
    ------
    CatalogNotFoundError
        If the folder does not exist or holds no images, or an asked-for chip number is absent.
    InvalidArgumentError
        If an asked-for number is shared by several chips (names like ``q_<col>_<row>``, which
        end in their row), naming them and how to select chips by position instead.
    CatalogFormatError
        If a label line is malformed (the message names the file and line).
    CorruptImageError, ImageReadError
        If an image cannot be decoded, or the images differ in size.

    Warns
    -----
    UserWarning
        If the folder's ``index.csv`` lists bounds but not every chip read (those chips' cut
        boxes are restored as on square pixels).

    Examples
    --------
    >>> chips = read_chips("../shared/data/themis-dayir-crops", limit=10)  # doctest: +SKIP
    >>> chips.images.shape, chip_craters(chips, 0).columns.tolist()[:3]  # doctest: +SKIP
    ((10, 416, 416), ['x', 'y', 'diameter_px'])
    """
    _check_edge_boxes(edge_boxes)
    folder = Path(folder)
    if not folder.is_dir():
        raise CatalogNotFoundError(f"chip folder {folder} does not exist (expected images/ and labels/ inside).")
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    label_dir = folder / "labels" if (folder / "labels").is_dir() else image_dir
    paths = sorted(
        (p for p in image_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".")),
        key=_sort_key,
    )
    if not paths:
        raise CatalogNotFoundError(
            f"no chip images ({', '.join(_IMAGE_SUFFIXES)}) in {image_dir}. Point read_chips at the folder holding "
            "images/ and labels/."
        )
    if indices is not None:
        paths = _select_by_number(paths, [int(i) for i in indices], image_dir)
    if limit is not None:
        if limit < 0:
            raise InvalidArgumentError(f"limit must be >= 0, got {limit}")
        paths = paths[:limit]

    stack: np.ndarray = np.zeros((0, 0, 0), dtype=np.float32)
    boxes: list[np.ndarray] = []
    for i, p in enumerate(paths):
        img = _read_grey(p)
        if i == 0:
            # filled in place: np.stack of 600 chips would copy 400 MB once more
            stack = np.empty((len(paths), *img.shape), dtype=np.float32)
        elif img.shape != stack.shape[1:]:
            raise ImageReadError(
                f"chip {p} is {img.shape[1]}x{img.shape[0]} px but {paths[0].name} is "
                f"{stack.shape[2]}x{stack.shape[1]}: all chips of a folder must have one size."
            )
        stack[i] = img
        arr = _parse_yolo(label_dir / f"{p.stem}.txt")
        boxes.append(np.column_stack([np.full(len(arr), i), arr]))
    all_boxes = np.concatenate(boxes) if boxes else np.zeros((0, 6))
    height, width = stack.shape[1:] if stack.ndim == 3 and len(paths) else (0, 0)
    chip = all_boxes[:, 0].astype(np.int64)
    aspect = _chip_aspect(_chip_index(folder), [p.stem for p in paths], chip, width, height) if len(paths) else None
    craters = pd.DataFrame(
        {"chip": chip, **_boxes_to_pixels(all_boxes[:, 1:], width, height, edge_boxes, aspect)}
    )
    return Chips(images=stack, names=[p.stem for p in paths], craters=craters, folder=folder)


def chip_craters(chips: Chips, i: int) -> pd.DataFrame:
    """The PixelCraters of chip ``i`` (its position in ``chips.images``), with a fresh index.

    Examples
    --------
    >>> chip_craters(chips, 0)[["x", "y", "diameter_px"]]  # doctest: +SKIP
    """
    n = len(chips)
    if not -n <= i < n:
        raise InvalidArgumentError(f"chip index {i} is out of range for {n} chips")
    i = i % n
    sel = chips.craters[chips.craters["chip"] == i]
    return sel.drop(columns="chip").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# georeferenced crops: images placed on the Mars grid by an index of their bounds
# --------------------------------------------------------------------------------------------
#: Columns an index of georeferenced crops must have (degrees; east longitude in either convention).
CROP_INDEX_COLUMNS = ("file", "lon_min", "lon_max", "lat_min", "lat_max")
# how far (in pixels) a crop's bounds may stray from its size, or from its neighbours' pixel lattice
_CROP_TOLERANCE_PX = 0.05


def read_crop_index(path: str | os.PathLike) -> pd.DataFrame:
    """Read the index of a folder of georeferenced crops.

    The index is a CSV with one row per image: ``file`` (the image's file name) and its outer
    bounds ``lon_min``, ``lon_max``, ``lat_min``, ``lat_max`` in degrees on the Mars sphere
    (equirectangular, so pixel ``(row i, column j)`` has its centre at
    ``lon = lon_min + (j + 0.5) * (lon_max - lon_min) / width`` and
    ``lat = lat_max - (i + 0.5) * (lat_max - lat_min) / height``).  Other columns (a
    ``quadrangle`` to group crops by, ``col``/``row``...) are kept.

    Raises
    ------
    CatalogNotFoundError
        If the file does not exist.
    CatalogFormatError
        If a column is missing, a bound is not a number, a box is empty, or a file is listed twice.

    Examples
    --------
    >>> index = read_crop_index("../shared/data/themis-quadrangle-crops/index.csv")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogNotFoundError(f"crop index {path} does not exist; it is a CSV with columns "
                                   f"{', '.join(CROP_INDEX_COLUMNS)}, one row per image.")
    index = pd.read_csv(path)
    missing = [c for c in CROP_INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise CatalogFormatError(f"crop index {path} lacks the column(s) {missing} (it has {list(index.columns)}); "
                                 f"it needs {', '.join(CROP_INDEX_COLUMNS)}, bounds in degrees.")
    bounds = index[list(CROP_INDEX_COLUMNS[1:])].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(bounds.to_numpy(dtype=float)).all(axis=1)
    bad |= ~((bounds["lon_max"] > bounds["lon_min"]) & (bounds["lat_max"] > bounds["lat_min"])).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise CatalogFormatError(f"crop index {path}: {int(bad.sum())} row(s) have missing, non-numeric or empty "
                                 f"bounds (first: line {first + 2}, {index['file'].iloc[first]}); give each "
                                 "lon_min < lon_max and lat_min < lat_max in degrees.")
    dup = index["file"].duplicated()
    if dup.any():
        raise CatalogFormatError(f"crop index {path} lists {index['file'][dup].iloc[0]} twice; keep one row per image.")
    index[list(CROP_INDEX_COLUMNS[1:])] = bounds
    index.attrs["path"] = str(path)
    return index


def _index_row(index: pd.DataFrame, name: str) -> pd.Series:
    rows = index[index["file"] == name]
    if rows.empty:
        where = index.attrs.get("path", "the crop index")
        raise CatalogFormatError(f"{name} has no row in {where}; add one ({', '.join(CROP_INDEX_COLUMNS)}) "
                                 "or leave the image out.")
    return rows.iloc[0]


def _crop_resolution(row: pd.Series, width: int, height: int) -> float:
    """Pixels per degree of a crop, checked to be the same along both axes."""
    ppd_x = width / (row["lon_max"] - row["lon_min"])
    ppd_y = height / (row["lat_max"] - row["lat_min"])
    if abs(ppd_x - ppd_y) * max(width, height) / ppd_x > _CROP_TOLERANCE_PX:
        raise CatalogFormatError(
            f"{row['file']}: its bounds give {ppd_x:.4f} px/deg across and {ppd_y:.4f} px/deg down for its "
            f"{width} x {height} px, but an equirectangular crop has square pixels in degrees; correct its "
            "row in the index (lon_max - lon_min = width / px_per_deg, the same for latitude) or the image.")
    return float((ppd_x + ppd_y) / 2)


def crop_mosaic(path: str | os.PathLike, index: pd.DataFrame | str | os.PathLike, *, crs: object = None) -> Any:
    """One georeferenced crop as a Mosaic, placed on the Mars grid by its row in ``index``.

    Parameters
    ----------
    path
        The image (PNG, JPEG or TIFF, grey or RGB; read on its 0..255 scale).
    index
        The crops' index (:func:`read_crop_index`), or its path.
    crs
        The index's CRS (default ``IAU_2015:49900``, degrees on the Mars sphere).

    Returns
    -------
    xarray.Dataset
        A Mosaic (:func:`marscraters.mosaic.mosaic_from_array`) whose ``source`` is the file name.

    Raises
    ------
    CatalogFormatError
        If the image has no row in the index, or its bounds disagree with its size.
    CorruptImageError
        If the image cannot be read.
    """
    from .crs import MARS_GEOGRAPHIC
    from .mosaic import mosaic_from_array

    index = index if isinstance(index, pd.DataFrame) else read_crop_index(index)
    path = Path(path)
    row = _index_row(index, path.name)
    if not path.is_file():
        raise ImageReadError(f"crop image {path} does not exist (the index lists it); check the folder.")
    img = _read_grey(path)
    _crop_resolution(row, img.shape[1], img.shape[0])
    bounds = (row["lon_min"], row["lat_min"], row["lon_max"], row["lat_max"])
    return mosaic_from_array(img, bounds, crs if crs is not None else MARS_GEOGRAPHIC, name=path.name)


def _touching_groups(cols: np.ndarray, rows: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> list[list[int]]:
    """Groups of rectangles (pixel offsets and sizes) that share an edge or overlap, transitively."""
    n = len(cols)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            gap_x = max(cols[i], cols[j]) - min(cols[i] + widths[i], cols[j] + widths[j])
            gap_y = max(rows[i], rows[j]) - min(rows[i] + heights[i], rows[j] + heights[j])
            # touching along an edge (one gap 0, the other negative) or overlapping; corners don't join
            if gap_x <= 0 and gap_y <= 0 and (gap_x < 0 or gap_y < 0):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def stitch_crops(
    folder: str | os.PathLike,
    index: pd.DataFrame | str | os.PathLike | None = None,
    *,
    by: str | None = "quadrangle",
    files: Iterable[str] | None = None,
    crs: object = None,
) -> list[Any]:
    """Stitch every run of adjacent georeferenced crops into one Mosaic each.

    Crops are grouped by the index column ``by`` (the mosaic they were cut from; None: one group),
    placed on their group's common pixel lattice, and joined where they share an edge; the rest of
    each mosaic's bounding box is NaN (no data).  A lone crop is a mosaic of its own.

    Parameters
    ----------
    folder
        The folder of images (or its ``images/`` sub-folder is used when present).
    index
        The crops' index or its path (default ``index.csv`` in ``folder``).
    by
        Index column naming each crop's source mosaic, when it has one.
    files
        Only these file names (default every row of the index).
    crs
        The index's CRS (default ``IAU_2015:49900``).

    Returns
    -------
    list of xarray.Dataset
        Lazy Mosaics, largest first (then by file name); ``attrs["crops"]`` lists each one's file names.

    Raises
    ------
    CatalogFormatError
        If a crop's bounds disagree with its size, or with its group's pixel lattice or
        resolution (pixels per degree), naming the file.

    Examples
    --------
    >>> mosaics = stitch_crops("../shared/data/themis-quadrangle-crops")  # doctest: +SKIP
    """
    from .crs import MARS_GEOGRAPHIC
    from .mosaic import combine_tiles, mosaic_from_array

    folder = Path(folder)
    index = index if index is not None else folder / "index.csv"
    index = index if isinstance(index, pd.DataFrame) else read_crop_index(index)
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    if files is not None:
        wanted = [str(f) for f in files]
        for name in wanted:
            _index_row(index, name)
        index = index[index["file"].isin(wanted)]
    crs = crs if crs is not None else MARS_GEOGRAPHIC
    keys = index[by] if by is not None and by in index.columns else pd.Series("", index=index.index)
    out = []
    for _, group in index.groupby(keys, sort=True):
        images = [_read_grey(image_dir / name) if (image_dir / name).is_file() else None for name in group["file"]]
        for name, img in zip(group["file"], images):
            if img is None:
                raise ImageReadError(f"crop image {image_dir / name} does not exist (the index lists it); check the folder.")
        ppds = np.array([_crop_resolution(r, im.shape[1], im.shape[0]) for (_, r), im in zip(group.iterrows(), images)])
        ppd = float(np.median(ppds))
        # a crop of another resolution would be placed at the group's: its picture squeezed into
        # part of its slot, and every crater on it misplaced
        stray = np.abs(ppds - ppd) * np.array([max(im.shape) for im in images]) / ppds
        if (stray > _CROP_TOLERANCE_PX).any():
            k = int(np.argmax(stray))
            apart = (f"give it its own group (another value in the index's {by!r} column)" if by in index.columns
                     else "leave it out (files=) and read it alone with crop_mosaic")
            raise CatalogFormatError(
                f"{group['file'].iloc[k]} has {ppds[k]:.4f} px/deg, but the crops of its group have {ppd:.4f} "
                f"(its far edge would be {stray[k]:.2f} px off): resample it to {ppd:.4f} px/deg (its bounds stay), "
                f"correct its row in the index, or {apart}.")
        west, north = group["lon_min"].min(), group["lat_max"].max()
        cols = (group["lon_min"].to_numpy() - west) * ppd
        rows = (north - group["lat_max"].to_numpy()) * ppd
        off = np.maximum(np.abs(cols - np.round(cols)), np.abs(rows - np.round(rows)))
        if (off > _CROP_TOLERANCE_PX).any():
            bad = group["file"].iloc[int(np.argmax(off))]
            raise CatalogFormatError(f"{bad} is {off.max():.2f} px off its group's pixel lattice ({ppd:.4f} px/deg); "
                                     "correct its bounds in the index, or give it its own group.")
        cols, rows = np.round(cols).astype(int), np.round(rows).astype(int)
        widths = np.array([im.shape[1] for im in images])
        heights = np.array([im.shape[0] for im in images])
        for members in _touching_groups(cols, rows, widths, heights):
            # snapped onto the lattice, so that the crops combine exactly (the index rounds its degrees)
            pieces = [mosaic_from_array(images[k], (west + cols[k] / ppd, north - (rows[k] + heights[k]) / ppd,
                                                    west + (cols[k] + widths[k]) / ppd, north - rows[k] / ppd),
                                        crs, name=group["file"].iloc[k]) for k in members]
            ds = pieces[0] if len(pieces) == 1 else combine_tiles(pieces)
            ds.attrs["crops"] = [group["file"].iloc[k] for k in members]
            out.append(ds)
    return sorted(out, key=lambda d: (-len(d.attrs["crops"]), min(d.attrs["crops"])))


#: a crater is labelled on a chip only where the chip shows it: at least this share of its disk's
#: pixels on the chip must hold data (write_chips fills no-data pixels with a flat grey)
MIN_VALID_DISK = 0.5


def _valid_disk_share(valid: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Share of each crater's pixels on a window that hold data.

    A crater's pixels are the window's pixels whose centre lies in its ellipse (centre ``x``,
    ``y`` in the window's index coordinates, ``w`` x ``h`` px); a crater too small, or reaching
    too little into the window, to hold a pixel centre is judged by the window pixel nearest its
    centre.
    """
    ny, nx = valid.shape
    share = np.empty(len(x))
    for k, (xc, yc, a, b) in enumerate(zip(x, y, np.asarray(w) / 2, np.asarray(h) / 2)):
        c0, c1 = max(int(np.ceil(xc - a)), 0), min(int(np.floor(xc + a)), nx - 1)
        r0, r1 = max(int(np.ceil(yc - b)), 0), min(int(np.floor(yc + b)), ny - 1)
        inside = np.zeros((0, 0), dtype=bool)
        if c0 <= c1 and r0 <= r1:
            cols, rows = np.arange(c0, c1 + 1), np.arange(r0, r1 + 1)
            inside = ((cols[None, :] - xc) / a) ** 2 + ((rows[:, None] - yc) / b) ** 2 <= 1.0
        if inside.any():
            share[k] = valid[r0 : r1 + 1, c0 : c1 + 1][inside].mean()
        else:
            share[k] = float(valid[int(np.clip(np.rint(yc), 0, ny - 1)), int(np.clip(np.rint(xc), 0, nx - 1))])
    return share


def _chip_gain(data: Any) -> float:
    """What ``write_chips`` multiplies a mosaic's grey levels by to write 8-bit chips.

    The package's one grey-level rule (:func:`marscraters.model.guess_value_range`), judged
    once on the whole mosaic's grey sample: float levels within 0..1 are an 8-bit image divided
    by 255 (255); other levels are taken as they are (1), and levels beyond 0..255 are refused
    window by window.
    """
    from .model import guess_value_range, read_grey_sample

    sample = read_grey_sample(data)
    sample = sample[np.isfinite(sample)]
    if not sample.size or sample.min() < 0 or sample.max() > 255:
        return 1.0
    # the scale only (an empty sample: no contrast judgement, which would stretch; chips keep their levels)
    low, high = guess_value_range(sample[:0], floating=True, lo=float(sample.min()), hi=float(sample.max()))
    return 255.0 / (high - low)


def write_chips(
    mosaic: Any,
    catalog: pd.DataFrame,
    out: str | os.PathLike,
    *,
    size: int = 416,
    diameter_range: tuple[float | None, float | None] | None = None,
    min_valid_fraction: float = 0.5,
    prefix: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Cut a georeferenced mosaic into labelled training chips: the folder ``read_chips`` reads.

    Each ``size`` x ``size`` window becomes ``images/<prefix>_<n>.png`` (8-bit grey) with its
    catalog craters as YOLO boxes in ``labels/<prefix>_<n>.txt``
    (:func:`marscraters.targets.catalog_pixels`, the target layers' mapping: on the lon/lat grid
    a crater is a box ``1/cos(lat)`` times wider than tall; boxes clipped to the chip, as the
    THEMIS crops' labels are), and ``index.csv`` gives each chip's bounds, so the chips are
    georeferenced crops again (:func:`crop_mosaic`).  A box that one side of the chip cuts keeps
    its other dimension whole, from which :func:`read_chips` restores the crater's ellipse.

    **Numbering.**  ``n`` runs 0, 1, 2, ... over the chips written, in rows from the mosaic's
    north-west corner (west to east, then north to south), zero-padded to one width so that
    file listings sort too.  It is the chip's number for ``read_chips(indices=)`` and its
    position in :func:`read_chips`, which ``marscraters train --train START:STOP --val
    START:STOP`` counts: ``--train 0:N --val N:M`` trains on the first ``N`` chips (the northern
    rows) and validates on the next ones.  ``index.csv`` gives each chip's ``col`` and ``row``
    among the windows.

    **No data.**  A window is written when at least ``min_valid_fraction`` of its pixels hold
    data; its no-data (NaN) pixels are written as the window's mean grey.  A crater is labelled
    only where the chip shows it: when at least half (``MIN_VALID_DISK``) of the pixels of its
    disk (its ellipse) on the chip hold data; the others get no box, and ``index.csv`` counts
    them in ``n_craters_nodata``.  Nor does a crater wider or taller than the chip (its box
    would be the chip's side, read back as a chip-sized circle even on a chip inside its
    floor): ``n_craters_larger`` counts those; nor a crater the chip's corner cuts (a side
    across and a side down, by more than half a pixel: neither dimension of its box is whole,
    so it could not be restored, and would be read back smaller and off centre):
    ``n_craters_corner`` counts those.  Either way the chip shows part of a crater without a
    label.

    Parameters
    ----------
    mosaic
        A Mosaic (or a Zarr cube path) on a geographic grid, grey levels within 0..255 (8-bit
        imagery), or within 0..1 (an 8-bit image divided by 255, reflectance), which are written
        times 255: the grey-level rule of ``detect`` (:func:`marscraters.model.guess_value_range`),
        judged once on the whole mosaic; NaN is no data.
    catalog
        The craters (a Catalog, e.g. the Robbins catalog).
    out
        The folder to create.
    size
        Chip side in pixels.
    diameter_range
        ``(min_km, max_km)`` of the craters labelled.
    min_valid_fraction
        Windows with less valid data than this are skipped (skipped windows take no number).
    prefix
        File-name prefix (default the mosaic's ``source`` stem, else ``chip``).
    overwrite
        Replace ``out``.
    progress
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        ``out``, holding ``images/``, ``labels/`` and ``index.csv`` (``file``, ``col``, ``row``,
        the bounds, ``n_craters`` labelled, and ``n_craters_larger``, ``n_craters_corner`` and
        ``n_craters_nodata`` left unlabelled).

    Raises
    ------
    InvalidArgumentError
        If ``size`` is not a whole number of at least 32 pixels, or the grey levels go beyond
        0..255 (or, for a 0..1 mosaic, beyond 0..1 in a window).
    OutputExistsError
        If ``out`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> write_chips(open_mosaic("cube.zarr"), read_catalog("robbins.gpkg"), "chips")  # doctest: +SKIP
    >>> chips = read_chips("chips")  # doctest: +SKIP
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from ._io import atomic_path, check_output
    from .crs import Grid
    from .mosaic import open_mosaic
    from .targets import catalog_pixels

    if not (isinstance(size, (int, np.integer)) and size >= 32):
        raise InvalidArgumentError(f"size must be a whole number of pixels >= 32, got {size!r}")
    out = Path(out)
    check_output(out, overwrite, folder=True, inputs=(mosaic,), kind="chips")  # never over its own mosaic
    ds = mosaic if hasattr(mosaic, "data_vars") else open_mosaic(mosaic)
    grid = Grid.from_dataset(ds)
    if not grid.is_geographic:
        raise InvalidArgumentError(
            "write_chips needs a mosaic on a geographic grid (degrees), so that its chips' bounds are lon/lat: "
            "ingest the image again on one, e.g. `gdalwarp -t_srs IAU_2015:49900 image.tif image_deg.tif` then "
            "`marscraters ingest image_deg.tif --out cube.zarr`, or for a plain image `marscraters ingest image.png "
            "--bounds WEST SOUTH EAST NORTH --out cube.zarr` with the bounds in degrees (ds.rio.reproject("
            "'IAU_2015:49900') in Python)")
    name = prefix or Path(str(ds.attrs.get("source", "chip")).split(",")[0]).stem or "chip"
    ny, nx = grid.shape
    windows = [(r0, c0) for r0 in range(0, ny - size + 1, size) for c0 in range(0, nx - size + 1, size)]
    digits = len(str(max(len(windows) - 1, 0)))
    # once for the whole mosaic (it warns if the catalog misses it), then shifted into each window
    every = catalog_pixels(ds, catalog, diameter_range=diameter_range, inside="overlap")
    gain = _chip_gain(ds["ir"].data)
    rows = []
    with atomic_path(out, overwrite, inputs=(mosaic,), kind="chips") as tmp:
        (tmp / "images").mkdir(parents=True)
        (tmp / "labels").mkdir()
        for r0, c0 in tqdm(windows, desc=f"chips of {name}", disable=not progress):
            window = ds["ir"].isel(y=slice(r0, r0 + size), x=slice(c0, c0 + size))
            values = np.asarray(window.values, dtype=np.float32)
            valid = np.isfinite(values)
            if valid.mean() < min_valid_fraction:
                continue
            lo, hi = float(values[valid].min()), float(values[valid].max())
            if lo < 0 or hi * gain > 255 * (1 + 1e-6):  # (a 0..1 mosaic's 1.0 may come back as 255.00002)
                scale = "0..1 (the scale its sampled levels show)" if gain != 1 else "0..255"
                raise InvalidArgumentError(f"write_chips writes 8-bit chips, but the mosaic's grey levels reach "
                                           f"{lo:g}..{hi:g}, beyond {scale}; rescale its ir to 0..255 first")
            values = np.where(valid, values * gain, values[valid].mean() * gain)
            # a running number as the name's last integer: read_chips's number and position agree
            stem = f"{name}_{len(rows):0{digits}d}"
            Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8)).save(tmp / "images" / f"{stem}.png")
            px, wd, ht = every["x"].to_numpy() - c0, every["width_px"].to_numpy(), every["height_px"].to_numpy()
            py = every["y"].to_numpy() - r0
            x0, x1 = np.clip(px + 0.5 - wd / 2, 0, size), np.clip(px + 0.5 + wd / 2, 0, size)
            y0, y1 = np.clip(py + 0.5 - ht / 2, 0, size), np.clip(py + 0.5 + ht / 2, 0, size)
            on_chip = (x1 > x0) & (y1 > y0)
            # a crater wider or taller than the chip is cut on both sides: its box is the chip's
            # side, which read_chips can only read as a chip-sized circle (on a chip inside its
            # floor, with no rim at all): no label
            larger = on_chip & (((px + 0.5 - wd / 2 < 0) & (px + 0.5 + wd / 2 > size))
                                | ((py + 0.5 - ht / 2 < 0) & (py + 0.5 + ht / 2 > size)))
            # a crater the chip's corner cuts, on an x side and a y side: neither side of its box
            # spans the crater, so read_chips could not restore it (it would read a crater up to
            # half as large, off centre): no label (cut by up to _EDGE_TOLERANCE_PX, a side
            # still gives the crater to that tolerance)
            cut_x = (px + 0.5 - wd / 2 < -_EDGE_TOLERANCE_PX) | (px + 0.5 + wd / 2 > size + _EDGE_TOLERANCE_PX)
            cut_y = (py + 0.5 - ht / 2 < -_EDGE_TOLERANCE_PX) | (py + 0.5 + ht / 2 > size + _EDGE_TOLERANCE_PX)
            corner = on_chip & ~larger & cut_x & cut_y
            keep = on_chip & ~larger & ~corner
            if not valid.all():
                # the filled grey shows no crater: a label there would teach the model to see one
                keep[keep] = _valid_disk_share(valid, px[keep], py[keep], wd[keep], ht[keep]) >= MIN_VALID_DISK
            lines = [f"0 {(a + b) / 2 / size:.6f} {(c + d) / 2 / size:.6f} {(b - a) / size:.6f} {(d - c) / size:.6f}"
                     for a, b, c, d in zip(x0[keep], x1[keep], y0[keep], y1[keep])]
            (tmp / "labels" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
            (w, e), (n, s) = grid.pixel_to_xy(np.array([c0 - 0.5, c0 + size - 0.5]), np.array([r0 - 0.5, r0 + size - 0.5]))
            rows.append({"file": f"{stem}.png", "col": c0 // size, "row": r0 // size, "lon_min": float(w),
                         "lon_max": float(e), "lat_min": float(s), "lat_max": float(n), "n_craters": int(keep.sum()),
                         "n_craters_larger": int(larger.sum()), "n_craters_corner": int(corner.sum()),
                         "n_craters_nodata": int(on_chip.sum() - larger.sum() - corner.sum() - keep.sum())})
        if not rows:
            raise InvalidArgumentError(f"the mosaic ({nx} x {ny} px) holds no {size} x {size} window with at least "
                                       f"{min_valid_fraction:.0%} valid data; use a smaller size")
        pd.DataFrame(rows).to_csv(tmp / "index.csv", index=False, float_format="%.9f")
    return out
