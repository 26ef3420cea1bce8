"""The ``MarsCratersError`` exception hierarchy.

Every message names the input, what was wrong with it, and how to fix it.
Subclasses also derive from the matching built-in exception (``ValueError``,
``FileNotFoundError``, ...) so that generic ``except`` clauses keep working.
"""

from __future__ import annotations

__all__ = [
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
