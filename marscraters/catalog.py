"""Crater catalogs: read, validate, filter and write them.

A **catalog** is a :class:`geopandas.GeoDataFrame` of points in
:data:`marscraters.crs.MARS_GEOGRAPHIC` (``IAU_2015:49900``, the Mars sphere) with the columns

``crater_id`` (str), ``lat`` (degrees north), ``lon`` (degrees east, -180..180), ``diameter_km``

plus, for detections, ``score``, and any other columns of the source.  Provenance lives in
``catalog.attrs`` (``source``, ``format``, ``area_km2`` and ``footprint`` for count areas, ...).  The schema and the
on-disk formats are described in ``catalogs/README.md``.

Readers: the Robbins & Hynek (2012) TSV/CSV, the Robbins (2020) release, plain CSV with
lat/lon/diameter columns, craterstats ``.diam`` and ``.scc`` count files, and the GeoPackages that
:func:`write_catalog` writes.  Writers: GeoPackage (points, rim polygons and a metadata table),
CSV and craterstats files.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ._io import atomic_path
from .crs import _MARS_SEMI_MAJOR_RANGE_M, MARS_EQUIRECTANGULAR, MARS_GEOGRAPHIC, MARS_RADIUS_M, Grid, normalize_lon_180
from .errors import (
    CatalogError,
    CatalogFormatError,
    CatalogNotFoundError,
    CatalogValidationError,
    CRSError,
    InvalidArgumentError,
    MissingCRSError,
    NotMarsCRSError,
)

__all__ = [
    "CATALOG_COLUMNS",
    "FORMATS",
    "PAPER_DIAMETER_RANGE_KM",
    "MAX_CRATER_DIAMETER_KM",
    "make_catalog",
    "empty_catalog",
    "read_catalog",
    "validate_catalog",
    "filter_catalog",
    "crater_rims",
    "write_catalog",
    "write_csv",
    "write_craterstats",
]

#: The columns every catalog has, in this order (then any extra columns, then ``geometry``).
CATALOG_COLUMNS: tuple[str, ...] = ("crater_id", "lat", "lon", "diameter_km")

#: The diameter range DeLatte et al. train and score on: 2 <= D < 32 km.
PAPER_DIAMETER_RANGE_KM: tuple[float, float] = (2.0, 32.0)

#: The largest crater diameter a catalog accepts, km.  Utopia, the largest recognised impact basin
#: on Mars, is ~3,300 km across (Hellas ~2,300 km); a diameter above this is almost always a
#: column in metres read as km (8600 m would otherwise be an 8600 km crater).
MAX_CRATER_DIAMETER_KM: float = 4000.0

#: The formats :func:`read_catalog` reads, with a one-line description of each.
FORMATS: dict[str, str] = {
    "robbins2012": "Robbins & Hynek (2012) TSV/CSV: LATITUDE_CIRCLE_IMAGE, LONGITUDE_CIRCLE_IMAGE "
    "(-180..180), DIAM_CIRCLE_IMAGE [, CRATER_ID]",
    "robbins2020": "Robbins (2020) release CSV/TSV: CRATER_ID, LAT_CIRC_IMG, LON_CIRC_IMG (0..360), DIAM_CIRC_IMG",
    "csv": "plain CSV/TSV with latitude, longitude and diameter columns (lat|latitude, lon|long|longitude, "
    "diameter_km|diameter|diam|d_km [, crater_id|id])",
    "diam": "craterstats .diam count file (area = ..., crater = {diameter[, fraction, lon, lat]})",
    "scc": "craterstats .scc spatial crater count (Total_area = ..., crater = {diam, ...})",
    "gpkg": "GeoPackage written by marscraters.write_catalog (layer 'craters')",
}

# Geographic extent where a longitude is accepted, per format (before normalising to -180..180).
_LON_ANY = (-180.0, 360.0)
_LON_RANGES: dict[str, tuple[float, float]] = {
    "robbins2012": (-180.0, 180.0),
    "robbins2020": (0.0, 360.0),
}

# Column names of the two Robbins releases -> catalog columns.
_ROBBINS_COLUMNS: dict[str, dict[str, str]] = {
    "robbins2012": {
        "CRATER_ID": "crater_id",
        "LATITUDE_CIRCLE_IMAGE": "lat",
        "LONGITUDE_CIRCLE_IMAGE": "lon",
        "DIAM_CIRCLE_IMAGE": "diameter_km",
    },
    "robbins2020": {
        "CRATER_ID": "crater_id",
        "LAT_CIRC_IMG": "lat",
        "LON_CIRC_IMG": "lon",
        "DIAM_CIRC_IMG": "diameter_km",
    },
}

# Accepted names (lower case, in order of preference) of the columns of a plain table.
_ALIASES: dict[str, tuple[str, ...]] = {
    "crater_id": ("crater_id", "craterid", "id"),
    "lat": ("lat", "latitude", "lat_deg"),
    "lon": ("lon", "long", "longitude", "lon_deg"),
    "diameter_km": ("diameter_km", "diameter", "diam", "d_km", "diam_km"),
}

# A GeoPackage's columns: the same names, then the Robbins releases' (a tile saved as a GeoPackage
# in a GIS keeps them), so that it reads as the text file it came from did.
_GPKG_ALIASES: dict[str, tuple[str, ...]] = {
    target: names + tuple(dict.fromkeys(k for m in _ROBBINS_COLUMNS.values() for k, v in m.items()
                                        if v == target and k.lower() not in names))
    for target, names in _ALIASES.items()
}

#: The catalog columns in words, for messages.
_COLUMN_WORDS = {"lat": "latitude", "lon": "longitude", "diameter_km": "diameter (km)"}

_TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ".tab"}
_SQLITE_MAGIC = b"SQLite format 3\x00"

#: GeoPackage layer names.
CRATERS_LAYER = "craters"
RIMS_LAYER = "crater_rims"
METADATA_LAYER = "metadata"
FOOTPRINT_LAYER = "footprint"

Errors = Literal["raise", "drop"]


# ---------------------------------------------------------------------------------------------
# constructing and validating
# ---------------------------------------------------------------------------------------------


def _check_errors(errors: str) -> None:
    if errors not in ("raise", "drop"):
        raise InvalidArgumentError(f"errors must be 'raise' or 'drop', got {errors!r}")


def _as_float(values: Any, name: str) -> np.ndarray:
    """1-D float64 array; values that are not numbers become NaN (validation reports them).

    True and False are not numbers here: ``pd.to_numeric`` would read them as 1 and 0, so a
    column of flags given as latitudes would put every crater at 1°N.
    """
    if isinstance(values, (pd.Series, pd.Index)):
        if pd.api.types.is_bool_dtype(values.dtype):
            return np.full(len(values), np.nan)
        if not pd.api.types.is_numeric_dtype(values.dtype):
            values = pd.to_numeric(values.map(_no_bool), errors="coerce")
        arr = values.to_numpy(dtype=float, na_value=np.nan)
    else:
        arr = np.asarray(values)
        if arr.dtype.kind == "b":
            arr = np.full(arr.shape, np.nan)
        elif arr.dtype.kind not in "fiu":
            cells = pd.Series(arr.ravel()).map(_no_bool)
            arr = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float, na_value=np.nan).reshape(arr.shape)
        arr = arr.astype(float, copy=False)
    if arr.ndim != 1:
        raise InvalidArgumentError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _no_bool(value: Any) -> Any:
    """``value``, or None for True/False (cells of a mixed column that are flags, not numbers)."""
    return None if isinstance(value, (bool, np.bool_)) else value


def validate_catalog(
    catalog: pd.DataFrame,
    *,
    source: str | os.PathLike | None = None,
    errors: Errors = "raise",
    lon_range: tuple[float, float] = _LON_ANY,
    require_position: bool = True,
) -> pd.DataFrame:
    """Check a catalog for impossible rows; raise, or drop them with a warning.

    A row is invalid when ``lat``, ``lon`` or ``diameter_km`` is missing or not a finite number,
    ``crater_id`` is missing, ``diameter_km <= 0``, ``diameter_km`` exceeds
    :data:`MAX_CRATER_DIAMETER_KM` (larger than any Mars crater: a column in metres, most likely),
    ``|lat| > 90`` or ``lon`` lies outside ``lon_range``.

    A crater listed twice is counted twice in scores and ages, so a row that repeats an earlier
    row's ``lat``, ``lon`` and ``diameter_km`` (a file joined twice, overlapping tiles) gives a
    ``UserWarning`` (``errors="raise"``) or is dropped with one (``errors="drop"``); rows that
    repeat a ``crater_id`` with other values give a ``UserWarning`` and are kept (except plain
    numbers, the row numbers that :func:`make_catalog` gives, which repeat in appended catalogs).

    Parameters
    ----------
    catalog
        A DataFrame or GeoDataFrame with the columns ``lat``, ``lon`` and ``diameter_km``
        (``crater_id`` is checked when present).
    source
        Name of the input used in messages (a file path); defaults to ``catalog.attrs["source"]``.
    errors
        ``"raise"``: raise :class:`CatalogValidationError` naming the source and the invalid rows
        (and warn about repeated rows).  ``"drop"``: drop the invalid and the repeated rows and
        emit a ``UserWarning`` with their count (never silently).
    lon_range
        Accepted longitudes (inclusive), by default -180..360 so that both conventions pass.
    require_position
        When False (a craterstats count without positions), missing ``lat``/``lon`` are allowed.

    Returns
    -------
    DataFrame or GeoDataFrame
        ``catalog`` itself when every row is valid, otherwise the valid rows with a fresh
        ``RangeIndex`` (same type, same ``attrs``).

    Raises
    ------
    CatalogValidationError
        With ``errors="raise"``, when a row is invalid.  Rows are numbered from 1 in the order of
        the catalog, which for a freshly read file is the order of its data rows (header excluded).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"lat": [0.0, 95.0], "lon": [10.0, 20.0], "diameter_km": [3.0, 4.0]})
    >>> validate_catalog(df)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    marscraters.errors.CatalogValidationError: the catalog: 1 of 2 rows are invalid ...
    """
    return _validate(catalog, source=source, errors=errors, lon_range=lon_range, require_position=require_position)


def _validate(
    catalog: pd.DataFrame,
    *,
    source: str | os.PathLike | None,
    errors: Errors,
    lon_range: tuple[float, float],
    require_position: bool,
    cells: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """:func:`validate_catalog`, given the cells the columns were read from (for messages).

    ``cells`` maps ``lat``, ``lon`` and ``diameter_km`` to the values before their conversion
    to numbers (:func:`make_catalog` converts first), so that a message can quote the text of a
    cell that is no number ('3,2', '3 km'); by default the catalog's own columns.
    """
    _check_errors(errors)
    missing_cols = [c for c in ("lat", "lon", "diameter_km") if c not in catalog.columns]
    if missing_cols:
        raise CatalogError(
            f"{source or catalog.attrs.get('source') or 'the catalog'} lacks the column(s) {missing_cols}; "
            f"a catalog needs {list(CATALOG_COLUMNS)}. Build one with marscraters.catalog.make_catalog."
        )
    source = str(source) if source is not None else str(catalog.attrs.get("source") or "the catalog")
    cells = cells if cells is not None else {c: catalog[c] for c in ("lat", "lon", "diameter_km")}
    lat = _as_float(catalog["lat"], "lat")
    lon = _as_float(catalog["lon"], "lon")
    diam = _as_float(catalog["diameter_km"], "diameter_km")
    lo, hi = lon_range

    checks: list[tuple[str, np.ndarray, np.ndarray | None, str]] = []
    texts: dict[str, np.ndarray] = {}
    if "crater_id" in catalog.columns:
        checks.append(("crater_id", catalog["crater_id"].isna().to_numpy(), None, "missing"))
    bad_d = ~np.isfinite(diam)
    checks.append(("diameter_km", bad_d, diam, "missing or not a number"))
    texts["diameter_km"] = _cell_texts(cells["diameter_km"], bad_d)
    with np.errstate(invalid="ignore"):
        checks.append(("diameter_km", ~bad_d & (diam <= 0), diam, "must be > 0"))
        too_big = ~bad_d & (diam > MAX_CRATER_DIAMETER_KM)
        checks.append(("diameter_km", too_big, diam, f"must be <= {MAX_CRATER_DIAMETER_KM:g} km"))
        for name, values, cond, why in (
            ("lat", lat, np.abs(lat) > 90.0, "must lie in -90..90"),
            ("lon", lon, (lon < lo) | (lon > hi), f"must lie in {lo:g}..{hi:g}"),
        ):
            nonfinite = ~np.isfinite(values)
            if require_position:
                checks.append((name, nonfinite, values, "missing or not a number"))
            else:
                # +-inf is still wrong even where positions are optional
                checks.append((name, np.isinf(values), values, "not a finite number"))
            texts[name] = _cell_texts(cells[name], checks[-1][1])
            checks.append((name, ~nonfinite & cond, values, why))
    bad = np.zeros(len(catalog), dtype=bool)
    for _, mask, _, _ in checks:
        bad |= mask

    note, fix = "", None
    if any(t[bad].any() for t in texts.values() if t is not None):
        note = (". A cell must hold a plain number: a decimal point, no thousands separator, no unit "
                "(write 3.2 and 1200, not 3,2, 1,200 or 3 km)")
    if too_big.any():
        # the usual cause: a plain CSV's diameter column in metres (the readers have no unit option)
        note += (f". No Mars crater is larger than {MAX_CRATER_DIAMETER_KM:g} km (Utopia, the largest basin, "
                 "is ~3,300 km), so the diameter column is most likely in metres: divide it by 1000 (catalogs "
                 "are in km) and read the file again")
        # dropping the rows over the limit would keep the rest of a column in metres, 1000x too large
        fix = "Dropping these rows is no fix: the column's other diameters would stay in metres, 1000 times too large."
        if (bad & ~too_big).any():
            fix += (" Once the diameters are in km, fix or remove the other invalid rows, or pass errors='drop' "
                    "to drop them with a warning.")
    valid = _apply_row_checks(catalog, checks, source=source, errors=errors, note=note, fix=fix, texts=texts,
                              stacklevel=4)
    return _check_repeats(valid, catalog, ~bad, lat, lon, diam, source=source, errors=errors)


def _cell_texts(cells: Any, mask: np.ndarray) -> np.ndarray | None:
    """The cells under ``mask`` that hold something other than a number (text, True), else None.

    Parameters
    ----------
    cells
        The values a column was converted from (a Series, an array or a list).
    mask
        The rows whose converted value is not a finite number.

    Returns
    -------
    numpy.ndarray or None
        An object array, None where a cell is missing or a number (NaN, inf); None when no cell is text.
    """
    if not mask.any():
        return None
    raw = cells.to_numpy(dtype=object) if isinstance(cells, (pd.Series, pd.Index)) else np.asarray(cells, dtype=object)
    raw = raw.ravel()
    out = np.full(raw.shape, None, dtype=object)
    for i in np.flatnonzero(mask & ~pd.isna(raw)):
        v = raw[i]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            out[i] = v
    return out if any(v is not None for v in out[mask]) else None


#: The start of :func:`_check_repeats`' warnings, after the source (a ``warnings`` filter).
_REPEATS_WARNING = r".*: \d+ of \d+ rows repeat (an earlier row's|the crater_id)"


def _check_repeats(
    table: pd.DataFrame,
    catalog: pd.DataFrame,
    valid: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    diam: np.ndarray,
    *,
    source: str,
    errors: Errors,
) -> pd.DataFrame:
    """Warn about, or drop with a warning, rows that list a crater again (see :func:`validate_catalog`).

    Parameters
    ----------
    table
        The valid rows of ``catalog`` (what :func:`_apply_row_checks` returned).
    catalog
        The catalog checked; rows are numbered in its order.
    valid
        Which rows of ``catalog`` are in ``table``.
    lat, lon, diam
        Its columns as numbers.
    source, errors
        As for :func:`validate_catalog`.

    Returns
    -------
    DataFrame
        ``table``, without the repeated rows when ``errors="drop"``.
    """
    n = len(catalog)
    # a count without positions lists equal diameters of different craters: only positioned rows compare
    positioned = valid & np.isfinite(lat) & np.isfinite(lon)
    lon_n = normalize_lon_180(lon)  # 350 and -10 are one longitude
    same = np.zeros(n, dtype=bool)
    if positioned.sum() > 1:
        key = pd.DataFrame({"lat": lat[positioned], "lon": lon_n[positioned], "d": diam[positioned]})
        same[positioned] = key.duplicated().to_numpy()
    repeated_id = np.zeros(n, dtype=bool)
    if "crater_id" in catalog.columns and valid.sum() > 1:
        ids = catalog["crater_id"].to_numpy(dtype=object)
        repeated_id[valid] = pd.Series(ids[valid]).duplicated().to_numpy()
        repeated_id &= ~same  # a full repeat is reported (and dropped) as such
        for r in np.flatnonzero(repeated_id):
            # "1", "2", ...: row numbers (make_catalog's, the detectors'), which name no crater and
            # repeat in every appended or joined catalog; an identifier like "01-000123" names one
            repeated_id[r] = not str(ids[r]).strip().isdigit()
    if same.any():
        rows = np.flatnonzero(same)
        firsts = [np.flatnonzero(positioned & (lat == lat[r]) & (lon_n == lon_n[r]) & (diam == diam[r]))[0]
                  for r in rows[:5]]
        shown = "; ".join(f"row {r + 1} repeats row {f + 1}" for r, f in zip(rows, firsts))
        shown += f"; ... and {rows.size - 5} more" if rows.size > 5 else ""
        what = (f"{rows.size} of {n} rows {'that ' if errors == 'drop' else ''}repeat an earlier row's lat, lon "
                f"and diameter_km ({shown})")
        if errors == "drop":
            warnings.warn(f"{source}: dropped {what}: a crater listed twice would be counted twice in scores and "
                          "ages.", UserWarning, stacklevel=3)
            keep = ~same[valid]
            attrs = dict(table.attrs)
            table = table.loc[keep].reset_index(drop=True)
            table.attrs = attrs
        else:
            warnings.warn(f"{source}: {what}: a crater listed twice (a file joined twice, overlapping tiles) is "
                          "counted twice in scores and ages. Remove the repeated rows, or pass errors='drop' to "
                          "drop them with a warning.", UserWarning, stacklevel=3)
    if repeated_id.any():
        rows = np.flatnonzero(repeated_id)
        firsts = [np.flatnonzero(valid & (ids == ids[r]))[0] for r in rows[:5]]
        shown = "; ".join(f"row {r + 1} repeats the crater_id {ids[r]!r} of row {f + 1}" for r, f in zip(rows, firsts))
        shown += f"; ... and {rows.size - 5} more" if rows.size > 5 else ""
        warnings.warn(f"{source}: {rows.size} of {n} rows repeat the crater_id of an earlier row with another lat, "
                      f"lon or diameter_km ({shown}). A crater listed twice is counted twice in scores and ages: "
                      "if these rows are one crater, remove the repeats; if they are different craters, give each "
                      "its own crater_id.", UserWarning, stacklevel=3)
    return table


def _apply_row_checks(
    table: pd.DataFrame,
    checks: Sequence[tuple[str, np.ndarray, np.ndarray | None, str]],
    *,
    source: str,
    errors: Errors,
    note: str = "",
    fix: str | None = None,
    texts: Mapping[str, np.ndarray | None] | None = None,
    stacklevel: int = 3,
) -> pd.DataFrame:
    """The end of a table's row validation: raise naming the invalid rows, or drop them with a warning.

    Parameters
    ----------
    table
        The table checked.
    checks
        ``(column, invalid mask, values or None, why)`` per check; a row is invalid when any mask is.
    source
        Name of the input in messages.
    errors
        ``"raise"`` or ``"drop"`` (checked by the caller).
    note
        Text appended to the list of rows (the likely cause, e.g. a column in metres).
    fix
        The message's last sentence, when dropping the rows is no fix for their cause; by default
        "Fix or remove these rows, or pass errors='drop' ...".
    texts
        Per column, the text of cells that are no number (see :func:`_cell_texts`), quoted
        beside their value.
    stacklevel
        Of the warning, counted from this function.

    Returns
    -------
    DataFrame
        ``table`` itself when every row is valid, otherwise its valid rows with a fresh
        ``RangeIndex`` (same type, same ``attrs``).
    """
    bad = np.zeros(len(table), dtype=bool)
    for _, mask, _, _ in checks:
        bad |= mask
    if not bad.any():
        return table

    rows = np.flatnonzero(bad)
    shown = []
    for r in rows[:10]:
        reasons = []
        for name, mask, values, why in checks:
            if mask[r]:
                reason = f"{name}={values[r]:g} ({why})" if values is not None else f"{name} {why}"
                text = (texts or {}).get(name)
                if text is not None and text[r] is not None and not np.isfinite(values[r]):
                    reason += f" from the cell {text[r]!r}"
                reasons.append(reason)
        shown.append(f"row {r + 1}: " + ", ".join(reasons))
    counts: dict[str, int] = {}
    for name, mask, _, why in checks:
        n = int(mask.sum())
        if n:
            counts[f"{name} {why}"] = counts.get(f"{name} {why}", 0) + n
    summary = "; ".join(f"{k}: {v}" for k, v in counts.items())
    detail = "; ".join(shown) + (f"; ... and {rows.size - 10} more" if rows.size > 10 else "") + note
    if errors == "raise":
        raise CatalogValidationError(
            f"{source}: {rows.size} of {len(table)} rows are invalid ({summary}). {detail}. "
            "Rows are numbered from 1, header excluded. "
            + (fix or "Fix or remove these rows, or pass errors='drop' to drop them with a warning.")
        )
    warnings.warn(
        f"{source}: dropped {rows.size} of {len(table)} invalid rows ({summary}). {detail}.",
        UserWarning,
        stacklevel=stacklevel,
    )
    out = table.loc[~bad].reset_index(drop=True)
    out.attrs = dict(table.attrs)
    return out


def empty_catalog(attrs: Mapping[str, Any] | None = None) -> gpd.GeoDataFrame:
    """A catalog with the schema and no rows.

    Examples
    --------
    >>> list(empty_catalog().columns)
    ['crater_id', 'lat', 'lon', 'diameter_km', 'geometry']
    """
    return make_catalog([], [], [], attrs=attrs)


def make_catalog(
    lat: Any,
    lon: Any,
    diameter_km: Any,
    *,
    crater_id: Any = None,
    extra: Mapping[str, Any] | pd.DataFrame | None = None,
    attrs: Mapping[str, Any] | None = None,
    errors: Errors = "raise",
    lon_range: tuple[float, float] = _LON_ANY,
    require_position: bool = True,
) -> gpd.GeoDataFrame:
    """Build a catalog: the canonical constructor every reader and detector goes through.

    Parameters
    ----------
    lat, lon
        Crater centres in degrees (planetocentric, east-positive).  Longitudes may use either
        convention (-180..180 or 0..360); they are stored normalised to -180..180.
    diameter_km
        Crater diameters in km.
    crater_id
        Identifiers (stored as strings); by default ``"1"``, ``"2"``, ... in row order.
    extra
        Further columns (a mapping of name to values, or a DataFrame of the same length), kept
        after the catalog columns in their order.
    attrs
        Provenance stored in ``.attrs`` (``source``, ``format``, ``area_km2``, ...).
    errors
        What to do with impossible rows, see :func:`validate_catalog`.
    lon_range
        Longitudes accepted before normalisation (default -180..360).
    require_position
        Allow missing positions (craterstats counts without lon/lat); such rows get an empty
        geometry.

    Returns
    -------
    geopandas.GeoDataFrame
        Points ``Point(lon, lat)`` in :data:`~marscraters.crs.MARS_GEOGRAPHIC` with the columns
        ``crater_id, lat, lon, diameter_km``, the extras, and ``geometry``.

    Raises
    ------
    InvalidArgumentError
        If the inputs differ in length or an extra column clashes with a catalog column.
    CatalogValidationError
        If a row is impossible and ``errors="raise"``.

    Examples
    --------
    >>> cat = make_catalog([-4.5, 18.4], [137.4, 350.0], [154.0, 3.2], extra={"score": [0.9, 0.7]})
    >>> cat[["crater_id", "lat", "lon", "diameter_km", "score"]].values.tolist()
    [['1', -4.5, 137.4, 154.0, 0.9], ['2', 18.4, -10.0, 3.2, 0.7]]
    >>> cat.crs.to_string()
    'IAU_2015:49900'
    """
    lat_a = _as_float(lat, "lat")
    lon_a = _as_float(lon, "lon")
    d_a = _as_float(diameter_km, "diameter_km")
    n = lat_a.size
    if lon_a.size != n or d_a.size != n:
        raise InvalidArgumentError(
            f"lat, lon and diameter_km must have the same length, got {lat_a.size}, {lon_a.size}, {d_a.size}"
        )
    if crater_id is None:
        ids = pd.Series(np.arange(1, n + 1).astype(str), dtype="str")
    else:
        ids = pd.Series(np.asarray(crater_id, dtype=object) if not isinstance(crater_id, pd.Series) else crater_id)
        ids = ids.reset_index(drop=True).astype("str")
        if len(ids) != n:
            raise InvalidArgumentError(f"crater_id has {len(ids)} values but there are {n} craters")
    frame = pd.DataFrame({"crater_id": ids, "lat": lat_a, "lon": lon_a, "diameter_km": d_a})
    if extra is not None:
        extra_df = extra.reset_index(drop=True) if isinstance(extra, pd.DataFrame) else pd.DataFrame(dict(extra))
        if isinstance(extra_df, gpd.GeoDataFrame) or "geometry" in extra_df.columns:
            extra_df = pd.DataFrame(extra_df.drop(columns="geometry", errors="ignore"))
        clash = [c for c in extra_df.columns if c in CATALOG_COLUMNS]
        if clash:
            raise InvalidArgumentError(f"extra columns {clash} clash with the catalog columns {list(CATALOG_COLUMNS)}")
        if len(extra_df) != n and len(extra_df.columns):
            raise InvalidArgumentError(f"extra has {len(extra_df)} rows but there are {n} craters")
        if len(extra_df.columns):
            extra_df.columns = [str(c) for c in extra_df.columns]
            frame = pd.concat([frame, extra_df], axis=1)
    attrs = dict(attrs or {})
    frame.attrs = attrs
    frame = _validate(
        frame, source=attrs.get("source"), errors=errors, lon_range=lon_range, require_position=require_position,
        cells={"lat": lat, "lon": lon, "diameter_km": diameter_km},
    )
    lon_n = normalize_lon_180(frame["lon"].to_numpy(dtype=float))
    frame["lon"] = lon_n
    lat_n = frame["lat"].to_numpy(dtype=float)
    geometry = gpd.points_from_xy(lon_n, lat_n, crs=MARS_GEOGRAPHIC)
    if not require_position:
        unknown = ~(np.isfinite(lon_n) & np.isfinite(lat_n))
        if unknown.any():
            geometry = np.asarray(geometry, dtype=object)
            geometry[unknown] = None
            geometry = gpd.array.from_shapely(geometry, crs=MARS_GEOGRAPHIC)
    gdf = gpd.GeoDataFrame(frame, geometry=geometry, crs=MARS_GEOGRAPHIC)
    gdf.attrs = attrs
    return gdf


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def _formats_help() -> str:
    return "Supported formats: " + "; ".join(f"{k!r} ({v})" for k, v in FORMATS.items())


def _sniff_header(path: Path) -> tuple[str, list[str]]:
    """The delimiter and the column names of a delimited text file."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = ""
        for line in fh:
            if line.strip():
                header = line.rstrip("\r\n")
                break
    if not header:
        raise CatalogFormatError(f"{path} is empty: a catalog needs at least a header line. {_formats_help()}")
    counts = {sep: header.count(sep) for sep in ("\t", ",", ";")}
    sep = max(counts, key=lambda k: counts[k])
    if counts[sep] == 0:
        sep = ","
    return sep, [c.strip().strip('"') for c in header.split(sep)]


def _detect_text_format(path: Path, columns: Sequence[str]) -> str:
    upper = {c.upper() for c in columns}
    if {"LATITUDE_CIRCLE_IMAGE", "LONGITUDE_CIRCLE_IMAGE", "DIAM_CIRCLE_IMAGE"} <= upper:
        return "robbins2012"
    if {"LAT_CIRC_IMG", "LON_CIRC_IMG", "DIAM_CIRC_IMG"} <= upper:
        return "robbins2020"
    if _alias_columns(columns) is not None:
        return "csv"
    if {"x", "y", "diameter_px"} <= {str(c).strip().lower() for c in columns}:
        # detect's table: craters in an image's pixels, which no renaming puts on Mars
        raise CatalogFormatError(
            f"{path} holds craters in an image's pixels (x, y, diameter_px: what `marscraters detect` writes), with "
            "no latitude and longitude, so it is no catalog. To date them as a count without positions, give their "
            "diameters in km with the image's area: a craterstats .diam file (a line `area = KM2`, a line "
            "`crater = {diameter`, one diameter in km per line (diameter_m / 1000), and a line `}`), or in Python "
            "mc.model_age(table['diameter_m'] / 1000, area_km2=KM2, ...). For a catalog on the Mars grid, ingest the "
            "georeferenced image and run `marscraters segment` and `marscraters catalog --mosaic`."
        )
    shown = ", ".join(list(columns)[:15]) + (", ..." if len(columns) > 15 else "")
    raise CatalogFormatError(
        f"cannot tell the catalog format of {path}: its columns are [{shown}]. {_formats_help()}. "
        "Rename the columns to lat, lon, diameter_km (degrees N, degrees E, km)."
    )


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".gpkg":
        return "gpkg"
    if suffix in (".diam", ".scc"):
        return suffix[1:]
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(_SQLITE_MAGIC):
        return "gpkg"
    if suffix in _TEXT_SUFFIXES or (head and b"\x00" not in head):
        if suffix not in _TEXT_SUFFIXES and re.search(rb"^\s*crater\s*=\s*\{", head, re.M):
            return "scc" if re.search(rb"Total[-_ ]area", head) else "diam"
        _, columns = _sniff_header(path)
        return _detect_text_format(path, columns)
    raise CatalogFormatError(f"cannot read {path}: it is neither a text table nor a GeoPackage. {_formats_help()}.")


def _alias_columns(
    columns: Sequence[str], aliases: Mapping[str, Sequence[str]] = _ALIASES, *, partial: bool = False
) -> dict[str, str] | None:
    """Map source column names to catalog columns by the accepted aliases (case-insensitive).

    Returns None when ``lat``, ``lon`` or ``diameter_km`` has no column, unless ``partial``.
    """
    by_lower: dict[str, str] = {}
    for c in columns:
        by_lower.setdefault(str(c).strip().lower(), c)
    mapping: dict[str, str] = {}
    for target, names in aliases.items():
        for name in names:
            if name.lower() in by_lower:
                mapping[by_lower[name.lower()]] = target
                break
    return mapping if partial or {"lat", "lon", "diameter_km"} <= set(mapping.values()) else None


def _frame_to_catalog(
    df: pd.DataFrame,
    mapping: Mapping[str, str],
    *,
    path: Path,
    fmt: str,
    errors: Errors,
    attrs: Mapping[str, Any] | None = None,
    require_position: bool = True,
) -> gpd.GeoDataFrame:
    """Rename the mapped source columns to the catalog's and build it (extras kept)."""
    inverse = {target: src for src, target in mapping.items()}
    cols = {t: df[s] for t, s in inverse.items()}
    extra = df.drop(columns=list(inverse.values()))
    if "crater_id" in cols:
        crater_id: Any = cols["crater_id"]
    else:
        # unique across files, and it still names the source row after rows are dropped
        crater_id = np.char.add(f"{path.stem}:", np.arange(1, len(df) + 1).astype(str))
    all_attrs = {"source": str(path), "format": fmt, **dict(attrs or {})}
    return make_catalog(
        cols["lat"] if "lat" in cols else np.full(len(df), np.nan),
        cols["lon"] if "lon" in cols else np.full(len(df), np.nan),
        cols["diameter_km"],
        crater_id=crater_id,
        extra=extra,
        attrs=all_attrs,
        errors=errors,
        lon_range=_LON_RANGES.get(fmt, _LON_ANY),
        require_position=require_position,
    )


def _read_table(path: Path, sep: str, encoding: str, fmt: str) -> pd.DataFrame:
    """A delimited text file as a DataFrame, one column per header name.

    ``index_col=False``: pandas would otherwise make the first column the index of rows with one
    field more than the header (a delimiter at the end of each row, a common export artifact),
    shifting every value one column to the left.  Fields past the header's are dropped only
    when they are empty; a row with more values is refused (:func:`_refuse_long_rows`).
    """
    # low_memory=False: one dtype per column (the full Robbins TSV has mixed text columns)
    kwargs: dict[str, Any] = {"sep": sep, "encoding": encoding, "skip_blank_lines": True, "low_memory": False,
                              "index_col": False}
    try:
        with warnings.catch_warnings():
            # pandas drops the fields past the header's with a ParserWarning, empty or not
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, **kwargs)
    except pd.errors.ParserWarning:
        _refuse_long_rows(path, sep, encoding)
    except pd.errors.ParserError as exc:
        n_columns = _refuse_long_rows(path, sep, encoding)
        if n_columns and re.search(r"Expected \d+ fields in line \d+, saw \d+", str(exc)):
            # the C parser takes the first data row's length as the table's and fails on a longer
            # row below, even when its extra fields are empty ones (checked above): cut them off
            kwargs.update(engine="python", on_bad_lines=lambda fields: fields[:n_columns])
            del kwargs["low_memory"]
            try:
                return pd.read_csv(path, **kwargs)
            except pd.errors.ParserError:
                pass
        raise CatalogFormatError(f"cannot parse {path} as a {fmt} table: {exc}") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.ParserWarning)  # the fields dropped are all empty
        return pd.read_csv(path, **kwargs)


def _refuse_long_rows(path: Path, sep: str, encoding: str) -> int:
    """Raise naming the first row that holds more values than the header names columns.

    Empty fields past the header's (delimiters at the ends of rows) are no values and pass.

    Returns
    -------
    int
        The number of fields of the header.

    Raises
    ------
    CatalogFormatError
        Naming the line, its values and the fix.
    """
    import csv

    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header: list[str] | None = None
        for fields in _csv_rows(reader):
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if header is None:
                header = fields
                continue
            while fields and not fields[-1].strip():
                fields.pop()
            if len(fields) > len(header):
                fix = "Remove the extra values, or name their columns in the header."
                if sep == ",":
                    fix = ("A number written with a decimal comma (3,2) or a thousands separator (1,200) is split in "
                           "two by the commas between the columns: write 3.2 and 1200, or quote the value (\"3,2\"). "
                           "Otherwise remove the extra values, or name their columns in the header.")
                name = {"\t": "tab", ",": "comma", ";": "semicolon"}.get(sep, repr(sep))
                raise CatalogFormatError(
                    f"{path}, line {reader.line_num}: {len(fields)} values, but the header names {len(header)} "
                    f"columns ({', '.join(h.strip() for h in header)}); the {name}-separated row is "
                    f"{sep.join(fields)!r}. {fix}"
                )
    return len(header or [])


def _csv_rows(reader: Any) -> Any:
    """The rows of a ``csv.reader``, up to where its quoting breaks (pandas then says what broke)."""
    import csv

    try:
        yield from reader
    except csv.Error:
        return


def _read_text(path: Path, fmt: str | None, errors: Errors) -> gpd.GeoDataFrame:
    sep, columns = _sniff_header(path)
    fmt = fmt or _detect_text_format(path, columns)
    df = None
    # UTF-8 (with or without a BOM) first; the 2012 Robbins TSV is Latin-1 in its text columns
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            df = _read_table(path, sep, encoding, fmt)
            break
        except UnicodeDecodeError:
            continue
        except CatalogFormatError:
            raise
        except ValueError as exc:
            raise CatalogFormatError(f"cannot parse {path} as a {fmt} table: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    if fmt in _ROBBINS_COLUMNS:
        upper = {c.upper(): c for c in df.columns}
        mapping = {upper[k]: v for k, v in _ROBBINS_COLUMNS[fmt].items() if k in upper}
        lacking = [k for k, v in _ROBBINS_COLUMNS[fmt].items() if k not in upper and v != "crater_id"]
        if lacking:
            raise CatalogFormatError(f"{path} is read as {fmt} but lacks the column(s) {lacking}. {_formats_help()}.")
    elif fmt == "csv":
        found = _alias_columns(df.columns)
        if found is None:
            raise CatalogFormatError(
                f"{path} has no latitude, longitude and diameter columns (found {list(df.columns)[:15]}). "
                f"{_formats_help()}. Rename the columns to lat, lon, diameter_km."
            )
        mapping = found
    else:
        raise CatalogFormatError(f"{path}: format {fmt!r} is not a text table format. {_formats_help()}.")
    return _frame_to_catalog(df, mapping, path=path, fmt=fmt, errors=errors)


_FLOAT_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")

#: The radii (km) a craterstats header may give for Mars: polar 3376.2, mean 3389.5, equatorial
#: 3396.19, with a few km to spare for other Mars spheroids (the band a CRS's sphere must lie in
#: to be Mars, :func:`marscraters.crs.is_mars_crs`); anything else is another body.
_MARS_RADIUS_RANGE_KM = (_MARS_SEMI_MAJOR_RANGE_M[0] / 1000.0, _MARS_SEMI_MAJOR_RANGE_M[1] / 1000.0)
#: Bodies whose names in a ``coordinate_system_name`` (e.g. ``Equirectangular_Moon``) mark a
#: count made on another body than Mars.
_OTHER_BODIES = frozenset({
    "moon", "lunar", "luna", "mercury", "venus", "earth", "wgs", "ceres", "vesta", "phobos", "deimos", "io",
    "europa", "ganymede", "callisto", "titan", "enceladus", "mimas", "rhea", "dione", "tethys", "iapetus",
    "pluto", "charon", "triton",
})  # fmt: skip


def _check_mars_header(path: Path, scalars: Mapping[str, str]) -> None:
    """Refuse a craterstats file whose header places the count on another body than Mars.

    Parameters
    ----------
    path
        The file (for the message).
    scalars
        Its ``key = value`` entries, keys with underscores (as :func:`_parse_craterstats` gives them).

    Raises
    ------
    NotMarsCRSError
        If an ellipsoid radius (``a_axis_radius``, ...) is not Mars' or ``coordinate_system_name``
        names another body (or an IAU code of another body, e.g. ``IAU_2015:30100``, the Moon).
    """
    lower = {k.lower(): v for k, v in scalars.items()}
    found = ""
    for key in ("a_axis_radius", "b_axis_radius", "c_axis_radius"):
        value = lower.get(key, "")
        m = _FLOAT_RE.match(value.strip())
        if not m:
            continue
        radius = float(m.group(0))
        # '<m>', or a radius too large for km (no body we date is 100,000 km across): metres
        if re.search(r"<\s*m\s*>", value) or radius >= 1e5:
            radius /= 1000.0
        if not _MARS_RADIUS_RANGE_KM[0] <= radius <= _MARS_RADIUS_RANGE_KM[1]:
            found = f"{key} = {value.strip()}"
            break
    name = lower.get("coordinate_system_name", "")
    if not found and name:
        words = set(re.split(r"[^a-z]+", name.lower()))
        iau = re.search(r"IAU_?\d*:(\d+)", name, re.IGNORECASE)
        # IAU body codes: 499xx is Mars, 301xx the Moon, ...
        if "mars" not in words and (words & _OTHER_BODIES or (iau and int(iau.group(1)) // 100 != 499)):
            found = f"coordinate_system_name = {name}"
    if found:
        raise NotMarsCRSError(
            f"{path} is a crater count on another body than Mars: its header gives {found} (Mars' radius is "
            f"{MARS_RADIUS_M / 1000:g} km). marscraters dates Mars counts only, with Mars' production and "
            "chronology functions; date this count with craterstats itself, which has the other bodies' "
            f"chronology systems. If it is a Mars count with a wrong header, set a_axis_radius = "
            f"{MARS_RADIUS_M / 1000:g} <km> (and b_, c_axis_radius, coordinate_system_name) in the file."
        )


def _parse_craterstats(path: Path) -> tuple[dict[str, str], dict[str, tuple[list[str], list[tuple[int, list[str]]]]]]:
    """Parse craterstats' ``key = value`` / ``key = {tag, tag`` ... ``}`` text structure.

    This follows ``craterstats.gm.read_textstructure``: ``#`` lines are comments, ``;`` starts a
    trailing comment, and a table's rows are whitespace-separated until a line starting with ``}``.
    Returns the scalar values and the tables (tags and ``(line number, fields)`` rows).
    """
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        lines = fh.read().splitlines()
    scalars: dict[str, str] = {}
    tables: dict[str, tuple[list[str], list[tuple[int, list[str]]]]] = {}
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        # keys may be spelled with hyphens and spaces, as in craterstats' own c1.scc
        # ('a-axis radius = 1737.4 <km>'): they mean the underscored key ('a_axis_radius')
        m = re.match(r"([\w.](?:[\w. -]*[\w.])?\^?)\s*=\s*(.*)$", line)
        if not m:
            raise CatalogFormatError(
                f"{path}, line {i}: expected 'key = value' or a table, got {raw!r}. "
                "Is this a craterstats .diam/.scc file?"
            )
        key, value = re.sub(r"[- ]+", "_", m.group(1)), m.group(2).strip()
        if value.startswith("{") and value != "{":
            tags = [t.strip("{ \t") for t in value.split(",")]
            rows: list[tuple[int, list[str]]] = []
            closed = False
            while i < len(lines):
                row = lines[i].split(";", 1)[0].strip()
                i += 1
                if not row or row.startswith("#"):
                    continue
                if row.startswith("}"):
                    closed = True
                    break
                rows.append((i, row.split()))
            if not closed:
                raise CatalogFormatError(
                    f"{path}: the table '{key}' is not closed with '}}'. Add a line '}}' after its rows."
                )
            tables[key] = (tags, rows)
        elif value == "{":
            # a nested structure: craterstats catalogs never need it, skip to its closing brace
            depth = 1
            while i < len(lines) and depth:
                row = lines[i].split(";", 1)[0].strip()
                i += 1
                depth += row.endswith("{") - row.startswith("}")
        else:
            scalars[key] = value
    return scalars, tables


#: A craterstats count area: a number, then optionally its unit, ``<km^2>`` (craterstats' own) or ``<m^2>``.
_AREA_RE = re.compile(rf"({_FLOAT_RE.pattern})\s*(?:<\s*(k?m)\s*\^?\s*2\s*>)?")


def _parse_area(path: Path, key: str, text: str) -> float:
    """The count area in km² of a craterstats ``area``/``Total_area`` value (``<m^2>`` converted).

    The whole value must be read: a leading number alone would take ``1,234.5`` for 1 km².

    Raises
    ------
    CatalogFormatError
        If the value is not a number with an optional ``<km^2>`` or ``<m^2>`` unit.
    """
    m = _AREA_RE.fullmatch(text.strip())
    if not m:
        raise CatalogFormatError(
            f"{path}: cannot read the count area from '{key} = {text.strip()}': write it as a plain number of km², "
            f"with a decimal point and no thousands separator, e.g. '{key} = 1234.5' or '{key} = 1234.5 <km^2>' "
            f"(or in m², '{key} = 1234500000 <m^2>')."
        )
    return float(m.group(1)) / (1e6 if m.group(2) == "m" else 1.0)


def _read_craterstats(path: Path, fmt: str, errors: Errors) -> gpd.GeoDataFrame:
    scalars, tables = _parse_craterstats(path)
    _check_mars_header(path, scalars)
    if "crater" not in tables:
        raise CatalogFormatError(
            f"{path} has no crater table: a craterstats {fmt} file needs a 'crater = {{diam...' table ending with '}}'."
        )
    tags, rows = tables["crater"]
    for line_no, fields in rows:
        if len(fields) != len(tags):
            raise CatalogFormatError(
                f"{path}, line {line_no}: expected {len(tags)} values ({', '.join(tags)}), got {len(fields)}: "
                f"{' '.join(fields)!r}"
            )
    data = pd.DataFrame([f for _, f in rows], columns=tags) if rows else pd.DataFrame(columns=tags)
    dcol = next((c for c in ("diameter", "diam") if c in data.columns), None)
    if dcol is None:
        raise CatalogFormatError(f"{path}: the crater table has no 'diam' or 'diameter' column (tags: {tags}).")
    for c in data.columns:
        if c in (dcol, "lon", "lat"):
            continue  # make_catalog reads them, and quotes a cell that is no number
        converted = pd.to_numeric(data[c], errors="coerce")
        # keep text columns (tags, names) as text; numeric ones become numbers (bad cells -> NaN)
        if c == "fraction" or converted.notna().sum() == data[c].notna().sum():
            data[c] = converted
    if ("lat" in data.columns) != ("lon" in data.columns):
        has, lacks = ("lat", "lon") if "lat" in data.columns else ("lon", "lat")
        raise CatalogFormatError(
            f"{path}: the crater table has a '{has}' column but no '{lacks}' (tags: {', '.join(tags)}), so the "
            f"craters have no positions. Give both lon and lat (e.g. 'crater = {{{dcol}, fraction, lon, lat'), or "
            "neither for a count without positions."
        )
    if "reference_area" in data.columns:
        # craterstats reads a buffered count as area 1 with fraction 1/reference_area per crater
        # and dates it with its buffered Poisson calculation; model_age's Poisson likelihood counts
        # whole craters on one area, so it would date such a file wrongly: refuse rather than guess
        raise CatalogFormatError(
            f"{path} is a buffered crater count (a reference_area per crater), and buffered crater counts are "
            "not supported: date it with craterstats (its buffered Poisson calculation), or remove the "
            "reference_area column to date the craters as a plain count on the file's area "
            f"('{'Total_area' if fmt == 'scc' else 'area'} = <km^2>')."
        )
    mapping = {dcol: "diameter_km"}
    has_pos = "lat" in data.columns and "lon" in data.columns
    if has_pos:
        mapping.update({"lat": "lat", "lon": "lon"})
    area_key = "Total_area" if fmt == "scc" else "area"
    area_txt = scalars.get(area_key, scalars.get("area", scalars.get("Total_area")))
    if area_txt is None:
        raise CatalogFormatError(f"{path} has no count area: add a line '{area_key} = <km^2>'.")
    attrs: dict[str, Any] = {"area_km2": _parse_area(path, area_key, area_txt)}
    perimeter = _FLOAT_RE.match(scalars.get("Perimeter", "").strip())
    if perimeter:
        attrs["perimeter_km"] = float(perimeter.group(0))
    return _frame_to_catalog(data, mapping, path=path, fmt=fmt, errors=errors, attrs=attrs, require_position=has_pos)


def _list_layers(path: Path) -> list[tuple[str, str | None]]:
    import pyogrio

    try:
        return [(str(n), (None if g is None else str(g))) for n, g in pyogrio.list_layers(path)]
    except (pyogrio.errors.DataSourceError, OSError) as exc:
        raise CatalogFormatError(f"cannot open {path} as a GeoPackage: {exc}") from exc


def _read_metadata(path: Path, layers: Sequence[str]) -> dict[str, Any]:
    import pyogrio

    if METADATA_LAYER not in layers:
        return {}
    table = pyogrio.read_dataframe(path, layer=METADATA_LAYER, read_geometry=False)
    out: dict[str, Any] = {}
    for row in table.itertuples(index=False):
        value = row.value
        if getattr(row, "type", "str") == "json":
            try:
                value = json.loads(value)
            except (TypeError, ValueError):
                pass
        out[str(row.key)] = value
    return out


def _read_footprint(path: Path, layers: Sequence[str]) -> Any:
    """The count area's polygon stored in the ``footprint`` layer, in MARS_GEOGRAPHIC, or None."""
    import pyogrio

    if FOOTPRINT_LAYER not in layers:
        return None
    gdf = pyogrio.read_dataframe(path, layer=FOOTPRINT_LAYER)
    geom = gdf.geometry.values[~(shapely.is_missing(gdf.geometry.values) | shapely.is_empty(gdf.geometry.values))]
    if len(geom) == 0:
        return None
    if gdf.crs is not None:
        geom = _to_mars_geographic(geom, gdf.crs, what=f"layer {FOOTPRINT_LAYER!r} of {path}", path=path)
    return shapely.union_all(np.asarray(geom))


def _to_mars_geographic(geom: np.ndarray, crs: Any, *, what: str, path: Path | None = None) -> np.ndarray:
    """A layer's geometries, in any Mars CRS, in :data:`MARS_GEOGRAPHIC` (planetocentric, east).

    Planetographic latitudes are converted here: PROJ has no step from the Mars ellipsoid's
    to the IAU sphere's latitudes, and its "Ballpark geographic offset" would keep them as they
    are (0.34° too far north at 45°, 20 km).

    Parameters
    ----------
    geom
        Shapely geometries (an array), x = easting or longitude, as GDAL gives them.
    crs
        The layer's CRS.
    what, path
        The layer and its file (None: in memory), for messages.

    Returns
    -------
    numpy.ndarray
        The geometries in degrees.

    Raises
    ------
    NotMarsCRSError
        If the CRS is not a Mars CRS.
    CRSError
        If the CRS is projected but every coordinate is within ±360, ±90 (degrees under a CRS in
        metres), or is planetographic with axes that cannot be converted reliably.
    """
    from .crs import (
        _crs_label,
        ographic_to_ocentric,
        to_mars_crs,
        vector_crs_fix,
        vector_latitude_kind,
    )

    crs = to_mars_crs(crs, what=what, fix=vector_crs_fix(path))
    # GDAL stores IAU_2015:49900 as authority 'IAU' with lat/lon axis order: the same coordinates
    if crs.equals(MARS_GEOGRAPHIC, ignore_axis_order=True):
        return geom
    if not crs.is_geographic:
        xy = shapely.get_coordinates(geom)
        if len(xy) and (np.abs(xy[:, 0]) <= 360.0).all() and (np.abs(xy[:, 1]) <= 90.0).all():
            # e.g. a layer of lon/lat given the Mars equirectangular CRS in a GIS: PROJ would put
            # every crater within ~0.4 km of 0N 0E, a few metres apart
            raise CRSError(
                f"{what} has the projected CRS {_crs_label(crs)}, in metres, but all its coordinates lie within "
                f"±360 and ±90 (x {xy[:, 0].min():g}..{xy[:, 0].max():g}, y {xy[:, 1].min():g}..{xy[:, 1].max():g}): "
                "they look like longitudes and latitudes in degrees, under a CRS assigned by mistake: "
                + vector_crs_fix(path)
            )
    if vector_latitude_kind(crs, what=what, path=path) == "planetographic":
        return shapely.transform(geom, lambda xy: ographic_to_ocentric(xy, crs, what=what))
    return gpd.GeoSeries(geom, crs=crs).to_crs(MARS_GEOGRAPHIC).values


def _footprint(attrs: Mapping[str, Any]) -> Any:
    """``attrs["footprint"]`` when it is a non-empty shapely polygon, else None."""
    fp = attrs.get("footprint")
    return fp if isinstance(fp, shapely.Geometry) and not fp.is_empty else None


_AREA_KEYS = ("area_km2", "area_source", "footprint")


def _centred_on_data(catalog: pd.DataFrame, mosaic: Any) -> np.ndarray:
    """Whether each crater's centre lies on a pixel of ``mosaic`` that holds image data.

    Parameters
    ----------
    catalog
        A Catalog (``lat``, ``lon``), e.g. after ``filter_catalog(catalog, footprint=mosaic)``.
    mosaic
        A Mosaic (its ``ir``; NaN is no data).

    Returns
    -------
    numpy.ndarray
        One bool per crater: False for a centre on no data (a gap of a stitched mosaic), where
        no detection could find it; centres off the grid are judged by its nearest pixel.

    Examples
    --------
    >>> from marscraters.mosaic import mosaic_from_array
    >>> img = np.ones((10, 10)); img[:, 5:] = np.nan
    >>> ds = mosaic_from_array(img, bounds=(0, 0, 1, 1))
    >>> _centred_on_data(make_catalog([0.5, 0.5], [0.2, 0.8], [1.0, 1.0]), ds).tolist()
    [True, False]
    """
    import xarray as xr

    col, row = Grid.from_dataset(mosaic).lonlat_to_pixel(catalog["lon"].to_numpy(), catalog["lat"].to_numpy())
    ny, nx = mosaic["ir"].shape[-2:]
    at = mosaic["ir"].isel(y=xr.DataArray(np.clip(np.rint(row).astype(int), 0, ny - 1)),
                           x=xr.DataArray(np.clip(np.rint(col).astype(int), 0, nx - 1)))
    return np.isfinite(np.asarray(at.values, dtype=float))


def _clip_count_area(attrs: Mapping[str, Any], region: Any) -> dict[str, Any]:
    """``attrs`` for the craters of a catalog kept inside ``region`` (lon/lat polygon).

    A recorded footprint is cut to the region and its area measured again.  An area recorded
    without its footprint cannot be cut, so it is dropped (a stale area would date the subset
    wrong); a catalog without a count area gets none.
    """
    from .chronology import _overlap, count_area_km2

    out = dict(attrs)
    old = _footprint(out)
    if old is None:
        for k in _AREA_KEYS:
            out.pop(k, None)
        return out
    # the region may use the other longitude convention than the footprint
    cut = _overlap(old, region)
    if cut.is_empty or cut.area <= 0:
        for k in _AREA_KEYS:
            out.pop(k, None)
        return out
    out["footprint"] = cut
    out["area_km2"] = count_area_km2(cut)
    w, so, e, n = region.bounds
    out["area_source"] = (f"{out.get('area_source') or 'the recorded footprint'}, cut to lon {w:.6g}..{e:.6g}, "
                          f"lat {so:.6g}..{n:.6g}")
    return out


def _read_gpkg(path: Path, errors: Errors, layer: str | None) -> gpd.GeoDataFrame:
    import pyogrio

    layers = _list_layers(path)
    names = [n for n, _ in layers]
    if layer is None:
        points = [n for n, g in layers if g is not None and "point" in g.lower()]
        if CRATERS_LAYER in names:
            layer = CRATERS_LAYER
        elif len(points) == 1:
            layer = points[0]
        elif points:
            raise CatalogFormatError(
                f"{path} has no '{CRATERS_LAYER}' layer and {len(points)} point layers ({points}); "
                f"layers: {names}. Pass layer=NAME to choose one."
            )
        else:
            raise CatalogFormatError(
                f"{path} has no '{CRATERS_LAYER}' layer and no point layer (layers: {names}): craters are read as "
                "points, their centres. Save the crater centres as a point layer (in QGIS, Vector > Geometry Tools > "
                "Centroids of the rims, with a diameter_km column, 2 * sqrt(area / pi) of a rim's area in km²)."
            )
    elif layer not in names:
        raise CatalogFormatError(f"{path} has no layer {layer!r}; its layers are {names}.")
    meta = _read_metadata(path, names)
    gdf = pyogrio.read_dataframe(path, layer=layer)
    code = meta.get("crs")
    if isinstance(gdf, gpd.GeoDataFrame) and gdf.geometry.name in gdf.columns:
        file_crs = gdf.crs
        if file_crs is None:
            if not code:
                raise MissingCRSError(
                    f"layer {layer!r} of {path} has no CRS. Assign the Mars CRS in your GIS "
                    "(IAU_2015:49900) and save again."
                )
            # our own file, whose metadata names the CRS its points are in (IAU_2015:49900)
            geom = gdf.geometry.values
        else:
            geom = _to_mars_geographic(gdf.geometry.values, file_crs, what=f"layer {layer!r} of {path}", path=path)
        ok = ~(shapely.is_missing(geom) | shapely.is_empty(geom))
        if ok.any():
            if not (shapely.get_type_id(geom[ok]) == 0).all():
                raise CatalogFormatError(
                    f"layer {layer!r} of {path} must hold points (crater centres), not polygons or lines: save the "
                    "crater centres as a point layer (in QGIS, Vector > Geometry Tools > Centroids of the rims, with "
                    "a diameter_km column, 2 * sqrt(area / pi) of a rim's area in km²).")
            # the geometry is the truth (a point moved in a GIS); lat/lon columns fill the gaps
            for col, coord in (("lat", shapely.get_y), ("lon", shapely.get_x)):
                fallback = gdf[col].to_numpy(dtype=float) if col in gdf else np.full(len(gdf), np.nan)
                gdf[col] = np.where(ok, coord(geom), fallback)
        df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    else:
        df = pd.DataFrame(gdf)
    mapping = _alias_columns(df.columns, _GPKG_ALIASES, partial=True)
    lacking = [t for t in ("lat", "lon", "diameter_km") if t not in mapping.values()]
    if lacking:
        accepted = "; ".join(f"for the {_COLUMN_WORDS[t]}, {', '.join(_GPKG_ALIASES[t])}" for t in lacking)
        raise CatalogFormatError(
            f"layer {layer!r} of {path} has no {' and no '.join(_COLUMN_WORDS[t] for t in lacking)} column (its "
            f"columns: {', '.join(map(str, df.columns[:20]))}{', ...' if len(df.columns) > 20 else ''}). Give the "
            f"layer a column with one of the accepted names (any case): {accepted}."
        )
    attrs = {k: v for k, v in meta.items() if k not in ("source", "format")}
    if layer != CRATERS_LAYER:
        attrs["layer"] = layer
    footprint = _read_footprint(path, names) if "area_km2" in attrs else None
    if footprint is not None:
        attrs["footprint"] = footprint
    return _frame_to_catalog(df, mapping, path=path, fmt="gpkg", errors=errors, attrs=attrs)


def read_catalog(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    errors: Errors = "raise",
    layer: str | None = None,
) -> gpd.GeoDataFrame:
    """Read a crater catalog file into a catalog GeoDataFrame.

    The format is recognised from the suffix (``.gpkg``, ``.diam``, ``.scc``) and, for text
    tables, from the column names (see :data:`FORMATS`).  Columns of the source that are not
    mapped to ``crater_id``/``lat``/``lon``/``diameter_km`` are kept unchanged; note that other
    longitude columns (for example the 2020 release's ``LON_ELLI_IMG``) keep their source convention.

    A text table's rows may end with a delimiter; a row with more values than the header has
    columns is refused.  A craterstats count area is read in km² (``<km^2>``), or in m² when
    tagged ``<m^2>``.  A GeoPackage layer in another Mars CRS is converted to ``IAU_2015:49900``;
    planetographic latitudes (``IAU_2015:49901``, ``49911``, ...) become planetocentric, and its
    columns may carry the Robbins releases' names.

    Parameters
    ----------
    path
        The catalog file.
    format
        Force a format: one of ``"robbins2012"``, ``"robbins2020"``, ``"csv"``, ``"diam"``,
        ``"scc"``, ``"gpkg"``.  By default it is detected.
    errors
        ``"raise"`` (default): an impossible row (missing value, diameter <= 0 or larger than
        :data:`MAX_CRATER_DIAMETER_KM`, i.e. in metres, |lat| > 90, a longitude outside the format's
        convention) raises :class:`CatalogValidationError` naming
        the file and the rows (numbered from 1, header excluded).  ``"drop"``: such rows are
        dropped with a ``UserWarning`` giving their count.  Rows that repeat an earlier row's
        position and diameter are warned about, or, with ``"drop"``, dropped with a warning
        (see :func:`validate_catalog`).
    layer
        GeoPackage layer to read (default ``"craters"``, or the file's only point layer).

    Returns
    -------
    geopandas.GeoDataFrame
        The catalog; ``attrs`` holds ``source`` (the path) and ``format``, ``area_km2`` for
        craterstats counts, and a GeoPackage's metadata table (``area_km2`` for catalogs made
        from a mosaic) with its ``footprint`` layer as ``attrs["footprint"]`` (a lon/lat polygon).  Files without a crater id get
        ``crater_id = "<file stem>:<row>"``.  A file with a header but no rows gives an empty
        catalog.

    Raises
    ------
    CatalogNotFoundError
        If ``path`` does not exist.
    CatalogFormatError
        If the format cannot be recognised or the file cannot be parsed, or a craterstats file is
        a buffered count (a ``reference_area`` column), which marscraters cannot date.
    NotMarsCRSError
        If a GeoPackage's CRS, or a craterstats file's header (ellipsoid radius,
        ``coordinate_system_name``), is of another body than Mars.
    CRSError
        If a GeoPackage layer's CRS is projected (metres) but its coordinates all look like
        degrees (a CRS assigned by mistake).
    CatalogValidationError
        If a row is impossible and ``errors="raise"``.

    Examples
    --------
    >>> cat = read_catalog("RobbinsCraters_20121016.tsv")  # doctest: +SKIP
    >>> cat = read_catalog("count.scc"); cat.attrs["area_km2"]  # doctest: +SKIP
    3036.61128229
    """
    _check_errors(errors)
    path = Path(path)
    if not path.exists():
        raise CatalogNotFoundError(
            f"catalog file {path} does not exist. Check the path (download with "
            "marscraters.download_robbins for the Robbins catalogs)."
        )
    if path.is_dir():
        raise CatalogFormatError(f"{path} is a folder, not a catalog file. {_formats_help()}.")
    if format is not None and format not in FORMATS:
        raise CatalogFormatError(f"unknown catalog format {format!r} for {path}. {_formats_help()}.")
    fmt = format or _detect_format(path)
    if fmt == "gpkg":
        return _read_gpkg(path, errors, layer)
    if fmt in ("diam", "scc"):
        return _read_craterstats(path, fmt, errors)
    return _read_text(path, fmt, errors)


# ---------------------------------------------------------------------------------------------
# filtering
# ---------------------------------------------------------------------------------------------


def _check_catalog(catalog: Any, what: str = "catalog") -> None:
    if not isinstance(catalog, pd.DataFrame):
        raise InvalidArgumentError(f"{what} must be a catalog GeoDataFrame, got {type(catalog).__name__}")
    missing = [c for c in CATALOG_COLUMNS if c not in catalog.columns]
    if missing:
        raise CatalogError(
            f"{what} lacks the column(s) {missing}; a catalog has {list(CATALOG_COLUMNS)}. "
            "Build one with marscraters.catalog.make_catalog or read one with read_catalog."
        )


def filter_catalog(
    catalog: gpd.GeoDataFrame,
    *,
    diameter_range: tuple[float | None, float | None] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    footprint: Any = None,
) -> gpd.GeoDataFrame:
    """Keep the craters in a diameter range, a lon/lat box and/or a mosaic's footprint.

    Parameters
    ----------
    catalog
        A catalog (see :func:`make_catalog`).
    diameter_range
        ``(min_km, max_km)``: keeps ``min_km <= diameter_km < max_km`` (inclusive lower bound,
        exclusive upper bound, so adjacent ranges never share a crater).  Either bound may be None.
        The paper's range is :data:`PAPER_DIAMETER_RANGE_KM` = (2, 32).  None: no diameter filter.
    bbox
        ``(west, south, east, north)`` in degrees, edges inclusive.  Longitudes may use either
        convention, and a box may cross the ±180 meridian: ``(170, -10, -170, 10)`` or
        ``(170, -10, 190, 10)`` both keep 170°E..190°E.  A box with ``east - west >= 360`` keeps all
        longitudes.
    footprint
        A mosaic Dataset/DataArray (or a :class:`~marscraters.crs.Grid`): keeps craters whose
        centre lies inside the grid, through :meth:`Grid.lonlat_to_pixel` (so a mosaic that
        crosses a meridian works).

    Returns
    -------
    geopandas.GeoDataFrame
        The kept craters with a fresh ``RangeIndex`` and the same ``attrs``, except the count
        area: with ``bbox`` or ``footprint``, a recorded ``attrs["footprint"]`` is cut to the box
        or grid and ``area_km2`` measured again; an ``area_km2`` recorded without a footprint is
        dropped, since the subset's area is unknown.

    Examples
    --------
    >>> cat = make_catalog([0, 1, 2], [179.5, -179.5, 10], [1.0, 5.0, 40.0])
    >>> filter_catalog(cat, diameter_range=PAPER_DIAMETER_RANGE_KM)["diameter_km"].tolist()
    [5.0]
    >>> filter_catalog(cat, bbox=(179, -5, -179, 5))["lon"].tolist()
    [179.5, -179.5]
    """
    _check_catalog(catalog)
    keep = np.ones(len(catalog), dtype=bool)
    lat = catalog["lat"].to_numpy(dtype=float)
    lon = catalog["lon"].to_numpy(dtype=float)
    if diameter_range is not None:
        try:
            lo, hi = diameter_range
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"diameter_range must be (min_km, max_km), got {diameter_range!r}") from None
        d = catalog["diameter_km"].to_numpy(dtype=float)
        if lo is not None and hi is not None and not float(lo) < float(hi):
            raise InvalidArgumentError(f"diameter_range must have min < max, got {diameter_range!r}")
        if lo is not None:
            keep &= d >= float(lo)
        if hi is not None:
            keep &= d < float(hi)
    if bbox is not None:
        try:
            west, south, east, north = map(float, bbox)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"bbox must be (west, south, east, north) in degrees, got {bbox!r}") from None
        if not all(math.isfinite(v) for v in (west, south, east, north)):
            # a NaN edge fails every comparison below: the longitude test would be skipped
            raise InvalidArgumentError(f"bbox must be four finite numbers of degrees (west, south, east, north), "
                                       f"got {bbox!r}")
        if not (-90.0 <= south <= north <= 90.0):
            raise InvalidArgumentError(f"bbox must have -90 <= south <= north <= 90, got south={south}, north={north}")
        span = east - west
        keep &= (lat >= south) & (lat <= north)
        if span < 360.0:
            if span < 0:  # e.g. (170, ..., -170): the box crosses the antimeridian
                span += 360.0
            with np.errstate(invalid="ignore"):
                keep &= ((lon - west) % 360.0) <= span
    if footprint is not None:
        grid = footprint if isinstance(footprint, Grid) else Grid.from_dataset(footprint)
        ny, nx = grid.shape
        col, row = grid.lonlat_to_pixel(lon, lat)
        with np.errstate(invalid="ignore"):
            keep &= (col >= -0.5) & (col < nx - 0.5) & (row >= -0.5) & (row < ny - 0.5)
    out = catalog.loc[keep].reset_index(drop=True)
    out.attrs = dict(catalog.attrs)
    if bbox is not None:
        east = west + span if span < 360.0 else west + 360.0
        out.attrs = _clip_count_area(out.attrs, shapely.box(west, south, east, north))
    if footprint is not None:
        from .chronology import _checked_geographic

        (x0, y0), (x1, y1) = grid.transform * (0, 0), grid.transform * (nx, ny)
        edges = shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        out.attrs = _clip_count_area(out.attrs, _checked_geographic(edges, grid.crs))
    if len(out) == 0 and len(catalog) > 0:
        _warn_nothing_kept(catalog, diameter_range=diameter_range, bbox=bbox, footprint=footprint is not None)
    return out


def _warn_nothing_kept(
    catalog: pd.DataFrame,
    *,
    diameter_range: tuple[float | None, float | None] | None,
    bbox: tuple[float, float, float, float] | None,
    footprint: bool,
) -> None:
    """Warn that the filters of :func:`filter_catalog` kept no crater, saying what the catalog holds.

    An empty result is legitimate, but most often it is a unit mix-up (a diameter range in metres,
    a box in the other longitude convention): the catalog's own ranges show which.

    Parameters
    ----------
    catalog
        The catalog before filtering (not empty).
    diameter_range, bbox
        The filters as given to :func:`filter_catalog` (None: not used).
    footprint
        Whether a footprint filter was used.
    """
    used = []
    if diameter_range is not None:
        lo, hi = diameter_range
        used.append(f"diameters {'0' if lo is None else f'{float(lo):g}'}-{'∞' if hi is None else f'{float(hi):g}'} km")
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        used.append(f"the box lon {w:g}..{e:g}, lat {s:g}..{n:g}")
    if footprint:
        used.append("the mosaic's footprint")
    d = catalog["diameter_km"].to_numpy(dtype=float)
    lon, lat = catalog["lon"].to_numpy(dtype=float), catalog["lat"].to_numpy(dtype=float)
    holds = f"the catalog's {len(catalog)} craters are {np.nanmin(d):.3g}-{np.nanmax(d):.3g} km across"
    if np.isfinite(lon).any() and np.isfinite(lat).any():
        holds += (f" and lie in lon {np.nanmin(lon):.3g}..{np.nanmax(lon):.3g}, "
                  f"lat {np.nanmin(lat):.3g}..{np.nanmax(lat):.3g}")
    hints = []
    if diameter_range is not None:
        hints.append("diameter ranges are in km (a range in metres, e.g. 2000 16000 for 2-16 km, keeps nothing)")
    if bbox is not None:
        hints.append("boxes are in degrees east and north (either longitude convention)")
    hint = f" Note: {'; '.join(hints)}." if hints else ""
    source = catalog.attrs.get("source") or "the catalog"
    warnings.warn(f"{source}: no crater is left after keeping {' and '.join(used)}: {holds}.{hint}",
                  UserWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def _package_version() -> str:
    from . import __version__

    return __version__


def crater_rims(catalog: gpd.GeoDataFrame, *, n_vertices: int = 64) -> gpd.GeoDataFrame:
    """Each crater's rim as a polygon in the equirectangular Mars CRS ``IAU_2015:49910``.

    The rim is the circle of (great-circle) radius ``diameter_km / 2`` around the centre on the
    Mars sphere, so a crater at 60°N is an ellipse twice as wide as tall in the
    projection, as on the mosaics.  Rims crossing the ±180° meridian extend past the projection's
    edge instead of wrapping around the planet, and a rim that encloses a pole is closed along the
    pole line.

    Parameters
    ----------
    catalog
        A catalog.
    n_vertices
        Vertices per rim (a 64-gon's area is 0.16 % below the circle's).

    Returns
    -------
    geopandas.GeoDataFrame
        ``crater_id``, ``lat``, ``lon``, ``diameter_km`` (and ``score`` when present) with polygon
        geometries in :data:`~marscraters.crs.MARS_EQUIRECTANGULAR`.  Craters without a position
        get an empty geometry.

    Examples
    --------
    >>> rims = crater_rims(make_catalog([0.0], [0.0], [10.0]))
    >>> round(float(rims.area.iloc[0]) / 1e6, 1)  # km^2, ~ pi * 5^2
    78.4
    """
    _check_catalog(catalog)
    if n_vertices < 8:
        raise InvalidArgumentError(f"n_vertices must be >= 8, got {n_vertices}")
    keep_cols = [c for c in (*CATALOG_COLUMNS, "score") if c in catalog.columns]
    attrs_df = pd.DataFrame(catalog[keep_cols]).reset_index(drop=True)
    n = len(catalog)
    lat = catalog["lat"].to_numpy(dtype=float)
    lon = normalize_lon_180(catalog["lon"].to_numpy(dtype=float))
    radius_m = catalog["diameter_km"].to_numpy(dtype=float) * 500.0
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(radius_m) & (radius_m > 0)
    geoms = np.full(n, None, dtype=object)
    theta = np.linspace(0.0, 2.0 * math.pi, n_vertices + 1)[None, :]  # azimuths; first vertex due north
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    two_pi_r = 2.0 * math.pi * MARS_RADIUS_M
    valid = np.flatnonzero(ok)
    for start in range(0, valid.size, 65536):  # blocks bound the memory of (n, vertices) arrays
        idx = valid[start : start + 65536]
        phi1 = np.radians(lat[idx])[:, None]
        lam1 = np.radians(lon[idx])[:, None]
        delta = (radius_m[idx] / MARS_RADIUS_M)[:, None]  # angular radius
        # destination point at distance delta and azimuth theta on the sphere (closed form, exact
        # for the IAU 2015 sphere; the same as pyproj.Geod.fwd with f = 0, and 5x faster)
        sin_phi2 = np.clip(np.sin(phi1) * np.cos(delta) + np.cos(phi1) * np.sin(delta) * cos_t, -1.0, 1.0)
        phi2 = np.arcsin(sin_phi2)
        dlam = np.arctan2(sin_t * np.sin(delta) * np.cos(phi1), np.cos(delta) - np.sin(phi1) * sin_phi2)
        # a rim that encloses a pole winds once around it: follow its longitude continuously
        pole = delta[:, 0] >= math.pi / 2 - np.abs(phi1[:, 0])
        if pole.any():
            dlam[pole] = np.unwrap(dlam[pole], axis=1)
        # IAU_2015:49910 is x = R * lon, y = R * lat (radians).  Written out here because PROJ would
        # fold longitudes beyond +-180 back into range and tear rims crossing the antimeridian apart.
        x = MARS_RADIUS_M * (lam1 + dlam)
        y = MARS_RADIUS_M * phi2
        plain = ~pole
        if plain.any():
            xp, yp = x[plain], y[plain]
            xp[:, -1], yp[:, -1] = xp[:, 0], yp[:, 0]  # close the ring exactly
            geoms[idx[plain]] = shapely.polygons(np.stack([xp, yp], axis=-1))
        for k in np.flatnonzero(pole):
            xk = x[k] - two_pi_r * math.floor((x[k].min() + two_pi_r / 2) / two_pi_r)  # onto -180..180
            y_pole = math.copysign(MARS_RADIUS_M * math.pi / 2, lat[idx[k]])
            ring = list(zip(xk, y[k])) + [(xk[-1], y_pole), (xk[0], y_pole)]
            poly = shapely.Polygon(ring)
            if not poly.is_valid:
                fixed = shapely.make_valid(poly)
                parts = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type == "Polygon"]
                poly = max(parts, key=lambda g: g.area) if parts else shapely.Polygon()
            geoms[idx[k]] = poly
    geoms[~ok] = shapely.Polygon()
    return gpd.GeoDataFrame(attrs_df, geometry=gpd.array.from_shapely(geoms, crs=MARS_EQUIRECTANGULAR))


def _canonical(catalog: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    """The catalog with its geometry rebuilt from lat/lon in MARS_GEOGRAPHIC, validated."""
    _check_catalog(catalog, what)
    frame = pd.DataFrame(
        catalog.drop(columns=catalog.geometry.name) if isinstance(catalog, gpd.GeoDataFrame) else catalog
    )
    extra = frame.drop(columns=list(CATALOG_COLUMNS))
    lat = frame["lat"].to_numpy(dtype=float)
    lon = frame["lon"].to_numpy(dtype=float)
    # a craterstats count may have no positions at all; a partly positioned catalog is an error
    no_positions = len(frame) > 0 and not (np.isfinite(lat).any() or np.isfinite(lon).any())
    with warnings.catch_warnings():
        # repeated rows were warned about where they were read; they are counted twice where the file
        # is read again (and warned about there), not by writing them, so say it once, not twice
        warnings.filterwarnings("ignore", message=_REPEATS_WARNING, category=UserWarning)
        return make_catalog(
            lat,
            lon,
            frame["diameter_km"],
            crater_id=frame["crater_id"],
            extra=extra,
            attrs=dict(catalog.attrs),
            require_position=not no_positions,
        )


def _metadata_table(entries: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for key, value in entries.items():
        if value is None:
            continue
        if isinstance(value, str):
            rows.append((str(key), value, "str"))
        else:
            rows.append((str(key), json.dumps(value, default=str), "json"))
    return pd.DataFrame(rows, columns=["key", "value", "type"])


def _provenance(entries: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-storable entries, with ``source``/``format`` renamed ``catalog_source``/``catalog_format``.

    On reading, ``source`` and ``format`` describe the GeoPackage itself; the renamed keys keep
    where the catalog came from.
    """
    out: dict[str, Any] = {}
    # renamed keys first, so that a catalog_source read from an earlier file (the origin) wins
    for k, v in sorted(entries.items(), key=lambda kv: kv[0] not in ("source", "format")):
        v = v.item() if isinstance(v, np.generic) else v
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue  # e.g. a DataFrame in attrs: not provenance we can store
        out["catalog_" + k if k in ("source", "format") else str(k)] = v
    return out


def _prepare_for_gdal(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns GDAL can store: object columns of mixed content become strings."""
    out = gdf.copy()
    for c in out.columns:
        if c == out.geometry.name:
            continue
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out


def _check_no_double_count(path: Path, cat: pd.DataFrame, old_footprint: Any, footprint: Any) -> None:
    """Refuse an append that would count craters twice: footprints that overlap, or craters the file holds.

    The union of two footprints counts their overlap once, while the craters found in it twice
    (once per catalog) stay: every density, and age, of the file would be too high.  Without
    footprints, the same craters appended again (a rerun script) are caught by their positions.
    """
    import pyogrio

    from .chronology import _overlap, count_area_km2

    if old_footprint is not None and footprint is not None:
        # in either longitude convention, and only the ground (a shared edge is a line beside it)
        overlap = _overlap(old_footprint, footprint)
        shared = count_area_km2(overlap) if overlap.area > 0 else 0.0
        if shared > 1e-6 * min(count_area_km2(old_footprint), count_area_km2(footprint)):
            raise CatalogError(
                f"cannot append to {path}: the catalog's footprint overlaps the one already there by {shared:.4g} km², "
                "so the craters found in the overlap would be counted twice. Keep one catalog's craters there first "
                "(filter_catalog(catalog, bbox=...) or `marscraters convert --bbox`), or write a new file.")
    old = pyogrio.read_dataframe(path, layer=CRATERS_LAYER, columns=["lat", "lon", "diameter_km"], read_geometry=False)
    key = ["lat", "lon", "diameter_km"]
    again = pd.DataFrame(cat[key]).merge(old[key].drop_duplicates(), on=key, how="inner")
    if len(again):
        raise CatalogError(
            f"cannot append to {path}: {len(again)} of the {len(cat)} craters are already in it (same lat, lon and "
            "diameter_km), so they would be counted twice; was this catalog appended before? Append only the new "
            "craters, or write the catalog to a new file.")


def write_catalog(
    catalog: gpd.GeoDataFrame,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    append: bool = False,
    metadata: Mapping[str, Any] | None = None,
    rims: bool = True,
    rim_vertices: int = 64,
) -> Path:
    """Write a catalog to a GeoPackage: points, rim polygons and a metadata table.

    Layers:

    ``craters``
        The catalog's points in ``IAU_2015:49900`` with all its columns.
    ``crater_rims``
        Each crater's rim as a polygon in ``IAU_2015:49910`` (see :func:`crater_rims`).
    ``footprint``
        When the catalog records where it was counted (``attrs["footprint"]``, a lon/lat
        polygon, as :func:`~marscraters.assemble.catalog_from_probability` records its mosaic's):
        that polygon in ``IAU_2015:49900``, with ``area_km2``.  Its area in km² is also stored
        in the metadata as ``area_km2``, which ``marscraters age`` uses by default.
    ``metadata``
        A non-spatial ``key``/``value``/``type`` table: ``crs`` (``IAU_2015:49900``),
        ``rims_crs``, ``software``, ``date`` (UTC, ISO 8601), ``n_craters``, the catalog's
        JSON-storable ``attrs`` and ``metadata`` (for example ``model``, ``parameters``,
        ``input_mosaic``); a ``source``/``format`` key is stored as ``catalog_source``/``catalog_format``.  ``type`` is
        ``str`` or ``json`` (the value is JSON text).

    The file is written to a temporary path and renamed, so an interrupted write never leaves a
    half-written file.  Read it back with :func:`read_catalog`, which restores the exact CRS
    (GDAL reports ``IAU_2015:49900`` as authority ``IAU`` with latitude-first axes).

    Parameters
    ----------
    catalog
        The catalog.
    path
        Output ``.gpkg`` file.
    overwrite
        Replace an existing file.
    append
        Add the craters to an existing file's layers (its columns must match) and merge the
        metadata; the file is created when missing.  Appending never happens unless asked for.
        The count area becomes the union of both footprints; if either has none, the file
        keeps no count area (a partial one would date the count wrong).  Footprints that
        overlap, and craters already in the file, are refused: they would be counted twice.
        Craters cut by the seam between two adjacent mosaics are not caught: each catalog
        holds its own part of them, so ingest adjacent images into one cube before cataloguing.
    metadata
        Extra provenance to record; values that are not strings are stored as JSON.
    rims
        Write the ``crater_rims`` layer.
    rim_vertices
        Vertices per rim polygon.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and neither ``overwrite`` nor ``append`` is set.
    CatalogError
        If appending craters whose columns differ from the file's, whose footprint overlaps the
        file's, or that the file already holds.

    Examples
    --------
    >>> cat = make_catalog([-4.5], [137.4], [154.0])
    >>> write_catalog(cat, "gale.gpkg", metadata={"model": "unet.keras"})  # doctest: +SKIP
    PosixPath('gale.gpkg')
    """
    import pyogrio

    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise InvalidArgumentError(f"write_catalog writes GeoPackages: give a path ending in .gpkg, got {path}")
    if append and overwrite:
        raise InvalidArgumentError("pass either append=True or overwrite=True, not both")
    cat = _canonical(catalog, "the catalog to write")
    appending = append and path.exists()
    old_meta: dict[str, Any] = {}
    n_before = 0
    layers: list[str] = []
    footprint = _footprint(cat.attrs)
    if appending:
        layers = [n for n, _ in _list_layers(path)]
        if CRATERS_LAYER not in layers:
            raise CatalogError(f"cannot append to {path}: it has no '{CRATERS_LAYER}' layer (layers: {layers}).")
        info = pyogrio.read_info(path, layer=CRATERS_LAYER)
        have, new = set(map(str, info["fields"])), set(map(str, cat.columns)) - {cat.geometry.name}
        if have != new:
            raise CatalogError(
                f"cannot append to {path}: its '{CRATERS_LAYER}' columns {sorted(have)} differ from the "
                f"catalog's {sorted(new)}. Write to a new file, or select the same columns first."
            )
        old_meta = _read_metadata(path, layers)
        n_before = int(info["features"])
        rims = rims and RIMS_LAYER in layers
        old_footprint = _read_footprint(path, layers) if "area_km2" in old_meta else None
        _check_no_double_count(path, cat, old_footprint, footprint)
        # the union of two counted areas, or none: an area that covers one part only is wrong
        footprint = None if footprint is None or old_footprint is None else old_footprint.union(footprint)
        for k in _AREA_KEYS:
            old_meta.pop(k, None)
    area: dict[str, Any] = {}
    if footprint is not None:
        from .chronology import count_area_km2

        area["area_km2"] = count_area_km2(footprint)

    meta: dict[str, Any] = {
        **old_meta,
        **_provenance({k: v for k, v in cat.attrs.items() if not (appending and k in _AREA_KEYS)}),
        **_provenance(metadata or {}),
        **area,
        "crs": "IAU_2015:49900",
        "rims_crs": "IAU_2015:49910",
        "software": f"marscraters {_package_version()}",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "n_craters": n_before + len(cat),
    }
    out = _prepare_for_gdal(cat)
    with atomic_path(path, overwrite=overwrite or appending) as tmp:
        if appending:
            shutil.copy2(path, tmp)
        try:
            pyogrio.write_dataframe(
                out, tmp, layer=CRATERS_LAYER, driver="GPKG", append=appending, geometry_type="Point"
            )
            if rims:
                rim_gdf = _prepare_for_gdal(crater_rims(cat, n_vertices=rim_vertices))
                pyogrio.write_dataframe(
                    rim_gdf, tmp, layer=RIMS_LAYER, driver="GPKG", append=appending, geometry_type="Polygon"
                )
            if footprint is not None or FOOTPRINT_LAYER in layers:
                # an empty layer replaces an appended file's footprint when the union is unknown
                shapes = [] if footprint is None else [footprint]
                fp = gpd.GeoDataFrame({"area_km2": [area["area_km2"]] if shapes else []},
                                      geometry=gpd.array.from_shapely(shapes, crs=MARS_GEOGRAPHIC))
                pyogrio.write_dataframe(fp, tmp, layer=FOOTPRINT_LAYER, driver="GPKG", promote_to_multi=True,
                                        geometry_type="MultiPolygon")
            # a layer of the same name is replaced, so the merged metadata is written whole
            pyogrio.write_dataframe(_metadata_table(meta), tmp, layer=METADATA_LAYER, driver="GPKG")
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError) as exc:
            raise CatalogError(f"cannot write {path}: {exc}") from exc
    return path


def write_csv(catalog: gpd.GeoDataFrame, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a catalog as a plain CSV (``crater_id, lat, lon, diameter_km`` and the extra columns).

    The geometry is not written (``lat``/``lon`` carry it) and neither is ``attrs``;
    :func:`read_catalog` reads the file back as format ``"csv"``.

    Examples
    --------
    >>> write_csv(make_catalog([1.0], [2.0], [3.0]), "craters.csv")  # doctest: +SKIP
    PosixPath('craters.csv')
    """
    _check_catalog(catalog)
    path = Path(path)
    frame = pd.DataFrame(
        catalog.drop(columns=catalog.geometry.name) if isinstance(catalog, gpd.GeoDataFrame) else catalog
    )
    with atomic_path(path, overwrite=overwrite) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")
    return path


def _num(v: float) -> str:
    return format(float(v), ".10g")


def _plain(v: float) -> str:
    # full precision and never an exponent: craterstats reads Total_area as digits and dots only
    return np.format_float_positional(float(v), trim="-")


def write_craterstats(
    catalog: gpd.GeoDataFrame,
    path: str | os.PathLike,
    area_km2: float,
    *,
    format: Literal["diam", "scc"] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a crater count for craterstats: a ``.diam`` list or an ``.scc`` spatial count.

    Both files carry the count area, and one crater per row with its diameter (km), its
    ``fraction`` (the catalog's ``fraction`` column, else 1), and its ``lon``/``lat``.  They follow
    the layout of craterstats' own samples (``sample.diam``, ``Pickering.scc``) and its parser
    (``Cratercount.ReadDiamFile`` / ``ReadSCCfile``): the area is written as a plain decimal
    number, because craterstats reads ``Total_area`` with a digits-and-dots pattern.  The ``.scc``
    file has no ``unit_boundary`` polygon.

    Parameters
    ----------
    catalog
        The catalog.
    path
        Output file (``.diam`` or ``.scc``).
    area_km2
        The count area in km^2 (> 0).
    format
        ``"diam"`` or ``"scc"``; by default taken from the suffix of ``path`` (``.diam`` when it
        is neither).
    overwrite
        Replace an existing file.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> write_craterstats(cat, "unit.diam", area_km2=3036.6)  # doctest: +SKIP
    PosixPath('unit.diam')
    """
    _check_catalog(catalog)
    path = Path(path)
    if format is None:
        format = "scc" if path.suffix.lower() == ".scc" else "diam"  # type: ignore[assignment]
    if format not in ("diam", "scc"):
        raise InvalidArgumentError(f"format must be 'diam' or 'scc', got {format!r}")
    try:
        area = float(area_km2)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"area_km2 must be a number of km^2, got {area_km2!r}") from None
    if not (math.isfinite(area) and area > 0):
        raise InvalidArgumentError(f"area_km2 must be > 0, got {area_km2!r}")
    d = catalog["diameter_km"].to_numpy(dtype=float)
    frac = catalog["fraction"].to_numpy(dtype=float) if "fraction" in catalog.columns else np.ones(len(d))
    lon = catalog["lon"].to_numpy(dtype=float)
    lat = catalog["lat"].to_numpy(dtype=float)
    if not np.isfinite(d).all() or (d <= 0).any():
        raise CatalogValidationError(f"cannot write {path}: every diameter must be a number > 0.")
    if not np.isfinite(frac).all() or (frac < 0).any() or (frac > 1).any():
        raise CatalogValidationError(f"cannot write {path}: every 'fraction' must lie in 0..1.")
    with_pos = bool(np.isfinite(lon).all() and np.isfinite(lat).all())
    source = catalog.attrs.get("source", "")
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    dname = "diameter" if format == "diam" else "diam"
    tags = f"{dname}, fraction" + (", lon, lat" if with_pos else "")
    rows = []
    for i in range(len(d)):
        fields = [_num(d[i]), _num(frac[i])] + ([_num(lon[i]), _num(lat[i])] if with_pos else [])
        rows.append("\t".join(fields))
    header = [
        f"# Crater count written by marscraters {_package_version()} on {date}",
        f"# source: {source}".replace(";", ","),
        "#",
    ]
    if format == "diam":
        body = header + [
            "# area, km^2",
            f"area = {_plain(area)}",
            "#",
            f"crater = {{{tags}",
            *rows,
            "}",
        ]
    else:
        r_km = f"{MARS_RADIUS_M / 1000:g}"
        body = ["# Spatial crater count", *header, "# Ellipsoid axes:",
                f"a_axis_radius = {r_km} <km>", f"b_axis_radius = {r_km} <km>", f"c_axis_radius = {r_km} <km>",
                "coordinate_system_name = IAU_2015:49900",
                "#", f"Total_area = {_plain(area)} <km^2>", "#", "# crater_diameters:",
                f"crater = {{{tags}", *rows, "}"]  # fmt: skip
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path
