"""The ``MarsCratersError`` exception hierarchy.

Every message names the input, what was wrong with it, and how to fix it.
Subclasses also derive from the matching built-in exception (``ValueError``,
``FileNotFoundError``, ...) so that generic ``except`` clauses keep working.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

__all__ = [
    "cli_message",
    "MarsCratersError",
    "InvalidArgumentError",
    "CRSError",
    "MissingCRSError",
    "NotMarsCRSError",
    "ImageReadError",
    "TileNameError",
    "CorruptImageError",
    "MosaicError",
    "OutputExistsError",
    "CatalogError",
    "CatalogFormatError",
    "CatalogValidationError",
    "DownloadError",
    "ModelError",
    "CatalogNotFoundError",
    "ClusterError",
    "ChronologyError",
    "OutputWriteError",
]


class MarsCratersError(Exception):
    """Base class of every error raised on purpose by marscraters."""


class InvalidArgumentError(MarsCratersError, ValueError):
    """An argument is out of range or of the wrong kind."""


class CRSError(MarsCratersError, ValueError):
    """A coordinate reference system problem."""


class MissingCRSError(CRSError):
    """A raster or vector has no CRS at all."""


class NotMarsCRSError(CRSError):
    """A CRS is valid but not a Mars CRS (for example an Earth CRS)."""


class ImageReadError(MarsCratersError, OSError):
    """An image file cannot be read."""


class TileNameError(ImageReadError, ValueError):
    """A file name does not follow the THEMIS ``thm_dir_N{lat}_{lon:03d}`` pattern."""


class CorruptImageError(ImageReadError):
    """An image file is truncated or corrupt."""


class MosaicError(MarsCratersError, ValueError):
    """A mosaic Dataset does not have the expected shape (``ir`` on ``(y, x)`` with a CRS)."""


class OutputExistsError(MarsCratersError, FileExistsError):
    """An output already exists and overwriting was not asked for."""


class CatalogError(MarsCratersError, ValueError):
    """A crater catalog problem."""


class CatalogFormatError(CatalogError):
    """A catalog file is in a format that marscraters does not recognise."""


class CatalogValidationError(CatalogError):
    """A catalog has impossible rows (missing values, diameter <= 0, |lat| > 90, ...)."""


class DownloadError(MarsCratersError, OSError):
    """A download failed or its checksum did not match."""


class ModelError(MarsCratersError, ValueError):
    """A model or weights file is missing, corrupt or incompatible."""


class CatalogNotFoundError(CatalogError, FileNotFoundError):
    """A catalog file or folder (or a chip folder) does not exist."""


class ClusterError(MarsCratersError, ConnectionError):
    """A Dask cluster cannot be started or its scheduler cannot be reached."""


class ChronologyError(MarsCratersError, ValueError):
    """A crater count cannot be dated: no craters in range, a bad count area or diameter range."""


class OutputWriteError(MarsCratersError, OSError):
    """An output cannot be written: its folder cannot be made, no permission, or no space."""


# --------------------------------------------------------------------------------------------
# the same messages, for command-line users
# --------------------------------------------------------------------------------------------
#: ``(pattern, CLI text, flag, CLI text without that flag)``: the Python spelling of a fix in a
#: message, and how the command line spells it.  The first text is used when the command has
#: ``flag`` (or ``flag`` is None), else the second.
_CLI_SPELLINGS: list[tuple[str, str, str | None, str]] = [
    # placing a plain image: `ingest` has --bounds; other commands take the cube it writes
    (r"bounds=\(west, south, east, north\) \(CLI: (--bounds WEST SOUTH EAST NORTH)\)", r"\1", "--bounds",
     "`marscraters ingest FILE --bounds WEST SOUTH EAST NORTH --out cube.zarr`, then use cube.zarr"),
    # "pass overwrite=True (--overwrite on the command line)", "resume=False (--no-resume)",
    # "value_range=(low, high) (CLI: --value-range LOW HIGH)": a message that names both keeps the flag
    (r"\b[a-z_]+=[^\s()]*(?:\([^()]*\))? \((?:CLI: )?(--[a-z][\w-]*(?: [A-Z0-9_.]+)*)(?: on the command line)?\)",
     r"\1", None, ""),
    (r"pass errors='drop' to drop them with a warning", "pass --errors drop to drop them with a warning", "--errors",
     "drop them with `marscraters convert CATALOG --errors drop --out clean.gpkg` and use clean.gpkg"),
    (r"\(or pass base_url=\)", "(or pass --base-url URL)", None, ""),
    # a GeoPackage layer: `convert --layer`, through which the other commands read one
    (r"\bPass layer=NAME to choose one", "Pass --layer NAME to choose one", "--layer",
     "Keep one with `marscraters convert FILE --layer NAME --out craters.gpkg` and use craters.gpkg"),
    # a fix only Python has ("(in Python, image=None matches on x, y alone)"), or its Python spelling
    # beside the CLI's ("(--area unit.gpkg; Python area=polygon)", "(... --model FILE; Python: model=)")
    (r" \(in Python, [^()]*\)", "", None, ""),
    (r"; (?:in )?Python:? [^()]*(?:\([^()]*\)[^()]*)*(?=\))", "", None, ""),
    (r", or pass the new hash \(or known_hash=None to skip the check\) if you trust it", "", None, ""),
    (r"marscraters\.ingest\(images, (['\"])(.*?)\1\)", r"`marscraters ingest IMAGES --out \2`", None, ""),
    (r"marscraters\.ingest\b", "`marscraters ingest`", None, ""),
    (r"marscraters\.download_themis\b", "`marscraters download themis --tile ID`", None, ""),
    (r"marscraters\.download_robbins\b", "`marscraters download robbins`", None, ""),
    (r"read the pixels yourself and call mosaic_from_array\(array, bounds, crs=[^)]*\)",
     "give its bounds: `marscraters ingest FILE --bounds WEST SOUTH EAST NORTH --out cube.zarr` (--crs for another "
     "Mars CRS than IAU_2015:49900)", None, ""),
    (r"georeference the pixel craters first \(marscraters\.extract\), or put the catalog on the image's pixels "
     r"with marscraters\.[\w.]+(?:\([^()]*\))?(?: and \w+)?",
     "compare pixel craters (a CSV of x, y, diameter_px, or YOLO labels) with pixel craters, or catalogs with "
     "catalogs; for craters in lon/lat, ingest the georeferenced image and run `marscraters segment` and "
     "`marscraters catalog`", None, ""),
    (r"mosaic=<[^>]*>", "--mosaic CUBE.zarr", None, ""),
    (r"\bverify=False\b", "--no-verify", None, ""),
    (r'extract_options=\{"min_score": ([^{}]*)\}(?: \(CLI: --min-score [^()]*\))?', r"--min-score \1", None, ""),
    (r"\bengine='(\w+)' \((?:CLI: )?--finder-engine \1\)", r"--finder-engine \1", None, ""),
    (r"\bvalue_range=\(([^,()]+), ([^,()]+)\)", r"--value-range \1 \2", None, ""),
    (r"\bvalue_range='auto'", "--value-range auto", None, ""),
    # a corrected placement: "bounds=(-0.3, 0, 0.4, 0.7) (CLI: --bounds -0.3 0 0.4 0.7)",
    # "crs='IAU_2015:49910' (CLI: --crs IAU_2015:49910)" (signs and colons, which the rule above leaves)
    (r"\b(?:bounds=\([-+\d.e, ]+\)|crs='[^'\s]+') \(CLI: (--(?:bounds|crs) [-+\w.: ]+)\)", r"\1", None, ""),
    # count areas: `age --area-km2` (and `convert --area-km2` for craterstats files)
    (r"\(area_km2= / (--area-km2)\)", r"(\1 KM2)", None, ""),
    (r"\barea_km2=[^\s()]* \((--area-km2 [^\s()]+)\)", r"\1", None, ""),
    (r"\barea_km2=(?=[\s.,;)]|$)", "--area-km2 KM2", "--area-km2", "`marscraters age --area-km2 KM2`"),
    # diameter ranges: `age --range`; `convert`, `targets`, `chips --diameter-range`
    (r"\bdiameter_range=(?=[(\[])", "diameter_range ", None, ""),
    (r"\bdiameter_range\b", "--range", "--range", r"\g<0>"),
    (r"\bdiameter_range\b", "--diameter-range", "--diameter-range", "the diameter range"),
    # the crater verifier's threshold is what `catalog --min-score` sets
    (r"\bthreshold must be in \[0, 1\)", "--min-score must be in [0, 1)", "--min-score", r"\g<0>"),
    # `catalog` writes GeoPackages (its own flag: --max-diameter-px); `convert` makes the other formats
    (r"write_catalog writes GeoPackages: give a path ending in \.gpkg, got (\S+)\.(csv|diam|scc)\b",
     r"`marscraters catalog` writes a GeoPackage: pass --out \1.gpkg, then `marscraters convert \1.gpkg --out "
     r"\1.\2` makes the .\2 file", "--max-diameter-px",
     r"this command writes a GeoPackage: pass --out \1.gpkg, then `marscraters convert \1.gpkg --out \1.\2` "
     r"makes the .\2 file"),
    (r"write_catalog writes GeoPackages: give a path", "this command writes GeoPackages: give --out a path", None, ""),
    # no CRS: a command-line user fixes the file (a cube is written again by `ingest`), not the Dataset
    (r"Attach one with ds\.rio\.write_crs\('[^']*'\), or reopen a Zarr cube with marscraters\.open_mosaic\(path\), "
     r"which keeps the CRS \(decode_coords='all'\)\.",
     "Write it again with `marscraters ingest` from georeferenced images (a GeoTIFF without a CRS gets one with "
     "`gdal_edit.py -a_srs IAU_2015:49900 FILE.tif`; a plain image is placed with --bounds).", None, ""),
    (r"ds\.rio\.write_crs\('([^']*)'\)",
     r"`gdal_edit.py -a_srs \1 FILE.tif` on the GeoTIFF (then `marscraters ingest` it again)", None, ""),
]


#: a keyword's value in a message: 'text', (a, b), [a, b], or a bare word (None, 3, 0.5, ...)
_KEYWORD_VALUE = r"""(?P<value>'[^'\s]*'|"[^"\s]*"|\([^()]*\)|\[[^\[\]]*\]|[^\s,;()\[\]'"`]*)"""
#: where a parameter's name starts a clause ("tile must be...", "...: depth must be...")
_CLAUSE_START = r"(?:^|(?<=[:;.!?]\s)|(?<=\())"


def _in_call(text: str, pos: int) -> bool:
    """Whether ``text[pos]`` lies inside the parentheses of a call, ``name(...)``."""
    depth = 0
    for i in range(pos - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            if not depth:
                return i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_.]")
            depth -= 1
    return False


def _flag_spellings(message: str, names: Mapping[str, str]) -> str:
    """``name=value``, ``name must ...`` and ``a and b must ...`` in a message, with each
    parameter ``name`` of ``names`` spelled as its option string (``--name VALUE``).

    Only these forms are rewritten: the same word in prose ("the tile", "a size of") is left alone.
    """
    if not names:
        return message
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))

    def keyword(m: re.Match) -> str:
        if _in_call(m.string, m.start("name")):
            return m[0]  # "filter_catalog(catalog, bbox=...)": a Python call, shown as one
        lead, flag, value = m["lead"] or "", names[m["name"]], m["value"]
        switch_off = "False" if not flag.startswith("--no-") else "True"  # --no-resume is resume=False
        if value == "None" or value == switch_off:
            # "pass response=None" -> "leave out --response"; "with response=None" -> "with no --response"
            return f"leave out {flag}" if lead else f"{'without' if flag.startswith('--no-') else 'no'} {flag}"
        if value in ("True", "False"):
            return f"{lead}{flag}"
        if value == "...":  # "(tile=...)": what to give
            return f"{lead}{flag} {flag.lstrip('-').replace('-', '_').upper()}"
        if value[:1] == "<" and value[-1:] == ">":  # "pixel_size_m=<metres>"
            return f"{lead}{flag} {value[1:-1].upper()}"
        end = "." if value.endswith(".") and not value.endswith("..") else ""
        value = value[: len(value) - len(end)]
        if value[:1] in ("(", "[") and value[-1:] in (")", "]"):  # (16, 2) -> 16 2, as the flag takes them
            value = " ".join(v.strip(" '\"") for v in value[1:-1].split(","))
        value = value.strip("'\"")
        return f"{lead}{flag}{' ' + value if value else ''}{end}"

    # keyword=value is never prose; not inside paths, URLs or flags (--nodata=-3, ?tile=)
    message = re.sub(rf"(?P<lead>\bpass )?(?<![\w.\-/?&'\"`])(?P<name>{alt})=(?!=){_KEYWORD_VALUE}", keyword,
                     message)
    # "n_train and n_val must be >= 1", "chunk must be a positive int"
    message = re.sub(rf"{_CLAUSE_START}(?P<names>(?:{alt})(?:(?:, | and | or )(?:{alt}))*)(?= must\b)",
                     lambda m: re.sub(rf"\b(?:{alt})\b", lambda n: names[n[0]], m["names"]), message)
    # "n, the number of dot images, must be ..."
    message = re.sub(rf"{_CLAUSE_START}(?P<name>{alt})(?=, [^,;:]{{1,80}}, must\b)", lambda m: names[m["name"]],
                     message)
    # "--precision float32 (CLI: --precision float32)": the Python half rewritten, its CLI aside is a copy
    return re.sub(r"(?P<flag>--[a-z][\w-]*)(?P<value>[^()]{0,40}?) \((?:CLI: )?[^()]*?(?P=flag)\b[^()]*\)",
                  r"\g<flag>\g<value>", message)


def cli_message(message: str, flags: Collection[str] = (), *, names: Mapping[str, str] | None = None) -> str:
    """A message rewritten for command-line users: the fixes it names become flags and commands.

    Messages are written for Python users (``errors='drop'``, ``marscraters.ingest(...)``);
    the command line prints them through this function, so that they name its own flags.

    Parameters
    ----------
    message
        An error or warning message.
    flags
        The option strings of the command being run (``--errors``, ...): a fix whose flag the
        command lacks is spelled another way (e.g. through ``marscraters convert``).
    names
        The command's Python parameter names and their option strings (``{"batch_size":
        "--batch-size"}``): after the fixed spellings above, ``batch_size=0`` becomes
        ``--batch-size 0``, ``batch_size must`` ``--batch-size must``, ``response=None``
        ``leave out --response``, and ``tile=...`` ``--tile TILE``.

    Examples
    --------
    >>> cli_message("x.zarr already exists; pass overwrite=True (--overwrite on the command line).")
    'x.zarr already exists; pass --overwrite.'
    >>> cli_message("bad rows; pass errors='drop' to drop them with a warning", {"--errors"})
    'bad rows; pass --errors drop to drop them with a warning'
    >>> cli_message("diameter_range must have min < max, got [16.0, 2.0]", {"--diameter-range"})
    '--diameter-range must have min < max, got [16.0, 2.0]'
    >>> cli_message("diameter_range must satisfy 0 < dmin < dmax (km), got (16.0, 2.0)", {"--range"})
    '--range must satisfy 0 < dmin < dmax (km), got (16.0, 2.0)'
    >>> cli_message("crop=100 must be a multiple of 128; the tile is cut", names={"crop": "--crop", "tile": "--tile"})
    '--crop 100 must be a multiple of 128; the tile is cut'
    >>> cli_message("n_train and n_val must be >= 1", names={"n_train": "--n-train", "n_val": "--n-val"})
    '--n-train and --n-val must be >= 1'
    >>> cli_message("or pass response=None to date it", names={"response": "--response"})
    'or leave out --response to date it'
    >>> cli_message("pass precision='float32' (CLI: --precision float32)", names={"precision": "--precision"})
    'pass --precision float32'
    """
    for pattern, text, flag, fallback in _CLI_SPELLINGS:
        message = re.sub(pattern, text if flag is None or flag in flags else fallback, message)
    return _flag_spellings(message, names or {})
