"""Download THEMIS Day IR tiles and the Robbins crater catalogs: cached, resumable, checksummed.

Two kinds of remote file are known:

* **THEMIS Day IR tiles** from Arizona State University's ``thm_dir`` global mosaic: 72 tiles of
  30 deg x 30 deg, 7680 x 7680 8-bit grey PNG at 256 px/deg.  A tile is named by its *south* edge
  latitude and *west* edge longitude (deg E, 0..360), e.g. ``thm_dir_N-30_030.png`` covers
  lat -30..0, lon 30..60.
* **Robbins crater catalogs** (Robbins & Hynek 2012 and later releases), distributed as zipped
  tab-separated tables from the author's site.

Every download goes through :mod:`pooch` with a custom downloader that

* writes to ``<file>.part`` next to the target and resumes an interrupted transfer with an HTTP
  ``Range`` request (falling back to a full download when the server ignores ``Range`` or the
  remote file changed in between),
* shows a :mod:`tqdm` progress bar,
* checks the SHA-256 (or any ``alg:hex`` hash) when one is known, and
* only ever renames a complete, verified file onto the final path.

Where files go, and where they come from, can be changed without code (for mirrors, offline
clusters and tests):

=========================== ================================================================
environment variable        meaning
=========================== ================================================================
``MARSCRATERS_CACHE``       cache folder (default ``pooch.os_cache("marscraters")``)
``MARSCRATERS_THEMIS_URL``  base URL that holds ``thm_dir_N{lat}_{lon}.png`` files
``MARSCRATERS_ROBBINS_URL`` base URL that holds the Robbins release files under their names
=========================== ================================================================
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pooch

from .errors import DownloadError, InvalidArgumentError, TileNameError
from .mosaic import TILE_SOUTH_EDGES, TILE_WEST_EDGES

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "THEMIS_BASE_URL",
    "THEMIS_TILE_LATS",
    "THEMIS_TILE_LONS",
    "ROBBINS_RELEASES",
    "RemoteFile",
    "cache_dir",
    "themis_tile_name",
    "themis_tile_url",
    "download_themis",
    "download_robbins",
    "registry",
]

log = logging.getLogger(__name__)

#: Where ASU serves the full-resolution THEMIS Day IR tiles.
THEMIS_BASE_URL = "https://www.mars.asu.edu/data/thm_dir/large/"
#: South-edge latitudes and west-edge longitudes (deg E, 0..360) of the THEMIS tiles: the
#: tile grid is defined once, in :mod:`marscraters.mosaic`.
THEMIS_TILE_LATS: tuple[int, ...] = TILE_SOUTH_EDGES
THEMIS_TILE_LONS: tuple[int, ...] = TILE_WEST_EDGES

ENV_CACHE = "MARSCRATERS_CACHE"
ENV_THEMIS_URL = "MARSCRATERS_THEMIS_URL"
ENV_ROBBINS_URL = "MARSCRATERS_ROBBINS_URL"

_CHUNK = 1 << 16
# (connect, read) timeouts in seconds: fail fast on a dead host, but let slow mirrors stream
_TIMEOUT = (20, 120)
#: The first bytes of every PNG file: a THEMIS tile that lacks them is an error page or another file.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class RemoteFile:
    """One entry of the download registry.

    Attributes
    ----------
    key : str
        Short name (``"2012"`` for a Robbins release, the tile id for a THEMIS tile).
    kind : str
        ``"robbins"`` or ``"themis"``.
    description : str
        What the file holds.
    url : str
        Where it is downloaded from by default.
    filename : str
        The remote (and cached) file name.
    known_hash : str or None
        ``"sha256:<hex>"`` (or another ``alg:hex``) when known, else None.  Never guessed.
    zipped : bool
        Whether the download is a zip archive that is unpacked after download.
    member : str or None
        For archives: the base name of the table inside it.
    citation : str
        What to cite when using it.
    landing_page : str
        A human-readable page about the data.
    """

    key: str
    kind: str
    description: str
    url: str
    filename: str
    known_hash: str | None
    zipped: bool
    member: str | None
    citation: str
    landing_page: str


_ROBBINS_SITE = "https://craters.sjrdesign.net/"
_ROBBINS_2012_CITATION = (
    "Robbins, S. J. & Hynek, B. M. (2012). A new global database of Mars impact craters >=1 km: "
    "1. Database creation, properties, and parameters. J. Geophys. Res. Planets 117, E05004. "
    "doi:10.1029/2011JE003966"
)

#: The known Robbins catalog releases.  Hashes are None until someone has verified them.
ROBBINS_RELEASES: dict[str, RemoteFile] = {
    "2012": RemoteFile(
        key="2012",
        kind="robbins",
        description=(
            "Robbins & Hynek (2012) global Mars crater database, 384,343 craters >= 1 km; "
            "tab-separated, longitudes -180..180 (LATITUDE_CIRCLE_IMAGE, LONGITUDE_CIRCLE_IMAGE, "
            "DIAM_CIRCLE_IMAGE, ...). Latin-1 encoded."
        ),
        url=_ROBBINS_SITE + "RobbinsCraterDatabase_20121016.tsv.zip",
        filename="RobbinsCraterDatabase_20121016.tsv.zip",
        known_hash=None,
        zipped=True,
        member="RobbinsCraters_20121016.tsv",
        citation=_ROBBINS_2012_CITATION,
        landing_page=_ROBBINS_SITE,
    ),
    "2014": RemoteFile(
        key="2014",
        kind="robbins",
        description="2014 revision of the Robbins & Hynek Mars crater database; tab-separated.",
        url=_ROBBINS_SITE + "RobbinsCraterDatabase_20140829.tsv.zip",
        filename="RobbinsCraterDatabase_20140829.tsv.zip",
        known_hash=None,
        zipped=True,
        member=None,
        citation=_ROBBINS_2012_CITATION,
        landing_page=_ROBBINS_SITE,
    ),
    "2020": RemoteFile(
        key="2020",
        kind="robbins",
        description=(
            "2020 release of the Robbins Mars crater database (craters >= 1 km with full "
            "morphology): CRATER_ID, LAT_CIRC_IMG, LON_CIRC_IMG (0..360), DIAM_CIRC_IMG, ellipse "
            "fits, CONF, DEG_RIM/DEG_EJC/DEG_FLR. Named .csv, but check the delimiter."
        ),
        url=_ROBBINS_SITE + "Catalog_Mars_Release_2020_1kmPlus_FullMorphData.csv.zip",
        filename="Catalog_Mars_Release_2020_1kmPlus_FullMorphData.csv.zip",
        known_hash=None,
        zipped=True,
        member="Catalog_Mars_Release_2020_1kmPlus_FullMorphData.csv",
        citation=_ROBBINS_2012_CITATION + "; 2020 release from " + _ROBBINS_SITE,
        landing_page=_ROBBINS_SITE,
    ),
}

_THEMIS_CITATION = (
    "Edwards, C. S. et al. (2011). Mosaicking of global planetary image datasets: 1. Techniques "
    "and data processing for Thermal Emission Imaging System (THEMIS) multi-spectral data. "
    "J. Geophys. Res. 116, E10008. THEMIS data: NASA/JPL/Arizona State University."
)
_THEMIS_LANDING = "https://www.mars.asu.edu/data/thm_dir/"


# --------------------------------------------------------------------------------------------
# locations
# --------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The folder downloads are cached in.

    ``$MARSCRATERS_CACHE`` when set, else the operating system's cache folder for
    ``marscraters`` (``pooch.os_cache``, e.g. ``~/.cache/marscraters`` on Linux).

    Returns
    -------
    pathlib.Path
        The cache folder (it may not exist yet).

    Examples
    --------
    >>> cache_dir()  # doctest: +SKIP
    PosixPath('/home/me/.cache/marscraters')
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path(pooch.os_cache("marscraters"))


def _dest(dest: str | os.PathLike | None, sub: str) -> Path:
    folder = Path(dest).expanduser() if dest is not None else cache_dir() / sub
    # the files go into this folder: an existing file of that name cannot be one
    for path in (folder, *folder.parents):
        if path.exists() and not path.is_dir():
            raise InvalidArgumentError(
                f"the download folder {folder} cannot be made: {path} is an existing file. Give dest=<folder> "
                "(CLI: --dest FOLDER), a folder path, or leave it out for the cache.")
    return folder


def _base(base_url: str | None, env: str, default: str) -> tuple[str, bool]:
    """Return the base URL (ending in "/") and whether it is the default one."""
    base = base_url or os.environ.get(env) or None
    if base is None:
        return default, True
    base = str(base)
    if re.match(r"^(ftp|file)://", base):
        # the downloader speaks HTTP (resumable ranges); requests has no adapter for these schemes
        raise InvalidArgumentError(
            f"the mirror {base!r}{'' if base_url else ' (from $' + env + ')'} is not an HTTP(S) mirror, which is "
            "all the downloader reads. For files already on this machine, give their paths to `marscraters ingest` "
            "directly (or copy them into the download folder); otherwise give an https:// mirror.")
    if not re.match(r"^https?://", base):
        raise InvalidArgumentError(
            f"base URL {base!r} (from {'base_url' if base_url else '$' + env}) is not a URL. "
            "Give the folder that holds the files, e.g. 'https://mirror.example.org/thm_dir/'."
        )
    return base.rstrip("/") + "/", False


# --------------------------------------------------------------------------------------------
# THEMIS tile ids
# --------------------------------------------------------------------------------------------
_SHORT_TILE_RE = re.compile(r"^N-?\d{2}_\d{3}(?:\.png)?$", re.I)
_VALID_TILES_HINT = (
    f"Valid south-edge latitudes are {', '.join(map(str, THEMIS_TILE_LATS))} and valid west-edge "
    "longitudes 0, 30, ..., 330 (deg E); a tile id looks like 'N-30_030', 'N00_330' or "
    "'thm_dir_N30_120.png', or pass (lat, lon)."
)


def _parse_tile(tile: Any) -> tuple[int, int]:
    """``tile`` (id, file name or (lat, lon)) -> (south lat, west lon 0..330).

    File names are parsed by :func:`marscraters.mosaic.parse_tile_name`, the one tile-name
    parser; this adds the short id (``"N-30_030"``) and the ``(lat, lon)`` forms.
    """
    # imported here: mosaic pulls in rasterio and dask, which listing the registry does not need
    from .mosaic import parse_tile_name, tile_name

    if isinstance(tile, (str, os.PathLike)):
        name = Path(tile).name
        if _SHORT_TILE_RE.match(name):
            name = "thm_dir_" + name
        return parse_tile_name(name)
    if isinstance(tile, Sequence) and len(tile) == 2:
        try:
            flat, flon = (float(v) for v in tile)
        except (TypeError, ValueError):
            raise TileNameError(f"THEMIS tile {tile!r} must be two numbers (lat, lon). {_VALID_TILES_HINT}") from None
        try:
            return parse_tile_name(tile_name(flat, flon))
        except TileNameError as exc:
            hint = ""
            if -90 <= flat < 90:
                hint = f" The point ({flat:g}, {flon:g}) lies in tile {_tile_containing(flat, flon)}."
            raise TileNameError(
                f"THEMIS tile {tile!r}: (lat, lon) must be a tile's south-west corner.{hint} {exc}"
            ) from exc
    raise TileNameError(
        f"THEMIS tile {tile!r} has type {type(tile).__name__}; pass a tile id string or a "
        f"(lat, lon) pair. {_VALID_TILES_HINT}"
    )


def _tile_containing(lat: float, lon: float) -> str:
    lat_s = min(int(lat // 30) * 30, 60)
    lon_w = int((lon % 360) // 30) * 30
    return _tile_id(lat_s, lon_w)


def _tile_id(lat: int, lon: int) -> str:
    lat_s = "00" if lat == 0 else str(lat)
    return f"N{lat_s}_{lon:03d}"


def themis_tile_name(tile: str | os.PathLike | tuple[float, float]) -> str:
    """The canonical ASU file name of a THEMIS Day IR tile.

    Parameters
    ----------
    tile : str, path or (lat, lon)
        A tile id (``"N-30_030"``), a file name (``"thm_dir_N-30_030.png"``) or the tile's
        south-west corner ``(lat, lon)`` in degrees (lon 0..360, or -180..0 which is wrapped).

    Returns
    -------
    str
        E.g. ``"thm_dir_N-30_030.png"``.

    Raises
    ------
    TileNameError
        When ``tile`` does not name one of the 72 tiles; the message lists the valid values.

    Examples
    --------
    >>> themis_tile_name((0, 330))
    'thm_dir_N00_330.png'
    >>> themis_tile_name("N-30_030")
    'thm_dir_N-30_030.png'
    """
    from .mosaic import tile_name

    return tile_name(*_parse_tile(tile))


def themis_tile_url(tile: str | os.PathLike | tuple[float, float], base_url: str | None = None) -> str:
    """The URL a THEMIS tile is downloaded from (``base_url``, ``$MARSCRATERS_THEMIS_URL`` or ASU).

    Examples
    --------
    >>> themis_tile_url("N-30_030")  # doctest: +SKIP
    'https://www.mars.asu.edu/data/thm_dir/large/thm_dir_N-30_030.png'
    """
    base, _ = _base(base_url, ENV_THEMIS_URL, THEMIS_BASE_URL)
    return base + themis_tile_name(tile)


# --------------------------------------------------------------------------------------------
# the resumable downloader
# --------------------------------------------------------------------------------------------
def _user_agent() -> str:
    from . import __version__

    return f"marscraters/{__version__} (+https://github.com/marscraters/marscraters)"


class _ResumableDownloader:
    """A pooch downloader that keeps partial data in ``<target>.part`` and resumes it.

    pooch hands us a fresh temporary ``output_file`` on every call, which cannot survive an
    interruption; the stable ``.part`` next to the final file can.  A ``.part.json`` sidecar keeps
    the server's ETag / Last-Modified so that a resumed request carries ``If-Range`` and a
    changed remote file is downloaded afresh instead of being spliced onto stale bytes.
    """

    def __init__(self, target: Path, *, progress: bool, known_hash: str | None, env_var: str,
                 signature: bytes | None = None):
        self.target = target
        self.part = target.with_name(target.name + ".part")
        self.meta = target.with_name(target.name + ".part.json")
        self.progress = progress
        self.known_hash = known_hash
        self.env_var = env_var
        self.signature = signature

    # -- helpers ------------------------------------------------------------------------------
    def _validator(self) -> str | None:
        try:
            meta = json.loads(self.meta.read_text())
        except (OSError, ValueError):
            return None
        return meta.get("etag") or meta.get("last_modified")

    def _save_validator(self, response: Any) -> None:
        etag = response.headers.get("ETag")
        # weak ETags may not be used with If-Range (RFC 9110 13.1.5)
        if etag and etag.startswith("W/"):
            etag = None
        meta = {"url": response.url, "etag": etag, "last_modified": response.headers.get("Last-Modified")}
        self.meta.write_text(json.dumps(meta))

    def _part_size(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def _discard_part(self) -> None:
        for p in (self.part, self.meta):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def _http_error(self, url: str, what: str) -> DownloadError:
        return DownloadError(
            f"Could not download {self.target.name} from {url}: {what}. If this host is down or "
            f"has moved, point marscraters at a mirror that holds {self.target.name}: set "
            f"${self.env_var} (or pass base_url=) to the mirror's folder URL."
        )

    # -- the pooch downloader protocol ---------------------------------------------------------
    def __call__(self, url: str, output_file: str, pooch_obj: Any, check_only: bool = False) -> bool | None:
        import requests

        if check_only:
            try:
                r = requests.head(url, allow_redirects=True, timeout=_TIMEOUT, headers={"User-Agent": _user_agent()})
            except requests.RequestException:
                return False
            return r.status_code == 200
        before = self._part_size()
        try:
            self._download(url)
        except requests.exceptions.HTTPError as exc:
            resp = exc.response
            code = f"HTTP {resp.status_code} {resp.reason}" if resp is not None else str(exc)
            raise self._http_error(url, code) from exc
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            have = self._part_size()
            if have > before:
                # a broken transfer: keep the bytes we have, the next call resumes from them
                raise DownloadError(
                    f"The transfer of {self.target.name} from {url} broke off after {have:,} bytes "
                    f"({type(exc).__name__}). The partial file is kept as {self.part}; run the "
                    "download again to resume it."
                ) from exc
            host = urlsplit(url).netloc
            raise self._http_error(url, f"cannot connect to {host} ({type(exc).__name__}: {exc})") from exc
        self._verify()
        self._check_signature(url)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s sha256:%s", self.target.name, pooch.file_hash(str(self.part)))
        # hand the complete file to pooch, which renames it onto the final path
        os.replace(self.part, output_file)
        with contextlib.suppress(FileNotFoundError):
            self.meta.unlink()
        return None

    def _download(self, url: str, *, _retry: bool = True) -> None:
        import requests
        from tqdm.auto import tqdm

        offset = self._part_size()
        headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = self._validator()
            if validator:
                headers["If-Range"] = validator
        with requests.get(url, headers=headers, stream=True, timeout=_TIMEOUT) as r:
            if r.status_code == 416 and offset:
                # nothing left to send: either .part is already complete, or it is stale
                total = _content_range_total(r.headers.get("Content-Range"))
                if total == offset:
                    log.info("%s: partial file is already complete", self.target.name)
                    return
                log.info("%s: partial file does not match the remote file; restarting", self.target.name)
                self._discard_part()
                if _retry:
                    return self._download(url, _retry=False)
            r.raise_for_status()
            if r.status_code == 206:
                start = _content_range_start(r.headers.get("Content-Range"))
                if start != offset:
                    raise DownloadError(
                        f"{url} answered a request for bytes {offset}- with Content-Range "
                        f"{r.headers.get('Content-Range')!r}. Delete {self.part} and try again."
                    )
                mode = "ab"
                log.info("%s: resuming at byte %d", self.target.name, offset)
            else:
                # 200: a fresh download, or the server ignored Range / the file changed (If-Range)
                if offset:
                    log.info("%s: server sent the whole file; restarting from byte 0", self.target.name)
                offset, mode = 0, "wb"
                self._save_validator(r)
            # urllib3 raises on a short body and drops the bytes it buffered; let it return them
            # so they land in .part, and check the length ourselves below
            if hasattr(r.raw, "enforce_content_length"):
                r.raw.enforce_content_length = False
            length = r.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            self.part.parent.mkdir(parents=True, exist_ok=True)
            with (
                open(self.part, mode) as f,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=self.target.name,
                    disable=not self.progress,
                    leave=False,
                ) as bar,
            ):
                for chunk in r.iter_content(chunk_size=_CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
            got = self.part.stat().st_size
            if total is not None and got != total:
                raise requests.exceptions.ConnectionError(f"received {got} of {total} bytes")

    def _verify(self) -> None:
        if self.known_hash is None:
            return
        alg = pooch.hashes.hash_algorithm(self.known_hash)
        expected = self.known_hash.split(":")[-1].lower()
        actual = pooch.file_hash(str(self.part), alg=alg).lower()
        if actual != expected:
            self._discard_part()
            raise _ChecksumError(
                f"Checksum mismatch for {self.target.name}: expected {alg}:{expected}, got "
                f"{alg}:{actual}. The downloaded file was deleted. The remote file may have changed "
                "or the mirror may hold another version; check the source, or pass the new hash "
                "(or known_hash=None to skip the check) if you trust it."
            )


    def _check_signature(self, url: str) -> None:
        # a server may answer 200 with an HTML page (a login, a moved notice): never keep that as the file
        if self.signature is None or _starts_with(self.part, self.signature):
            return
        with open(self.part, "rb") as f:
            head = f.read(16)
        self._discard_part()
        raise DownloadError(
            f"{self.target.name} downloaded from {url} is not a PNG image (it starts with {head!r}: an error page or "
            f"another file); it was deleted. Check that the URL serves {self.target.name}, or point "
            f"${self.env_var} (or pass base_url=) at a mirror that holds it."
        )


def _starts_with(path: Path, signature: bytes) -> bool:
    """Whether the file ``path`` begins with the bytes ``signature``."""
    try:
        with open(path, "rb") as f:
            return f.read(len(signature)) == signature
    except OSError:
        return False


class _ChecksumError(DownloadError):
    """A checksum mismatch (private: callers see DownloadError)."""


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    return int(m[1]) if m else None


def _content_range_total(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)", value or "")
    return int(m[1]) if m else None


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    # pooch logs at INFO and tells users to pass hashes to `pooch.retrieve`, which is not our API
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Serialise downloads of one file across processes (e.g. dask workers on one machine).

    ``flock`` is released by the OS when a process dies, so no stale lock survives a crash.  The
    lock file is removed when the download ends, whether it succeeded or not (no ``.lock`` files
    are left in the cache).  It is removed while still locked, so a process that was waiting on
    it finds it gone once it gets the lock, and locks the new file that the next one creates.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock, downloads are still atomic
        yield
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.with_name(f".{target.name}.lock")
    while True:
        fh = open(lock, "a")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            current = os.path.samestat(os.fstat(fh.fileno()), os.stat(lock))
        except FileNotFoundError:
            current = False
        if current:
            break
        fh.close()  # the holder removed this file as it finished: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        fh.close()  # releases the lock


def _retrieve(
    url: str,
    target: Path,
    *,
    known_hash: str | None,
    progress: bool,
    env_var: str,
    processor: Any = None,
    signature: bytes | None = None,
) -> Any:
    if known_hash is not None and not re.match(r"^(?:[a-z0-9]+:)?[0-9a-fA-F]+$", known_hash):
        raise InvalidArgumentError(
            f"known_hash={known_hash!r} is not a hash. Pass 'sha256:<hex digits>' (or md5:/sha1:...), or None."
        )
    downloader = _ResumableDownloader(target, progress=progress, known_hash=known_hash, env_var=env_var,
                                      signature=signature)
    with _locked(target), _quiet_pooch():
        if signature is not None and target.is_file() and not _starts_with(target, signature):
            # a bad file cached by an earlier version (or put there by hand) is not the file: fetch it again
            log.warning("%s in the cache is not the expected file type; downloading it again", target)
            target.unlink()
        try:
            result = pooch.retrieve(
                url,
                known_hash=known_hash,
                fname=target.name,
                path=target.parent,
                processor=processor,
                downloader=downloader,
                progressbar=False,
            )
        except _ChecksumError:
            # a cached file that failed the check (pooch re-downloads it) is bad too
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            raise
        except ValueError as exc:  # pooch's own hash check; ours runs first, so rarely reached
            raise DownloadError(f"Checksum check of {target.name} from {url} failed: {exc}") from exc
    return result


# --------------------------------------------------------------------------------------------
# public download functions
# --------------------------------------------------------------------------------------------
def download_themis(
    tile: str | os.PathLike | tuple[float, float],
    *,
    dest: str | os.PathLike | None = None,
    base_url: str | None = None,
    progress: bool = True,
    known_hash: str | None = None,
) -> Path:
    """Download one THEMIS Day IR global-mosaic tile (256 px/deg PNG) from ASU, or a mirror.

    The file is cached: a second call returns the cached path without any network request.
    An interrupted transfer leaves ``<file>.part``; the next call resumes it with an HTTP
    ``Range`` request.  The final path only ever holds a complete (and, with ``known_hash``,
    verified) file.

    Parameters
    ----------
    tile : str, path or (lat, lon)
        Tile id such as ``"N-30_030"`` (south edge -30, west edge 30 deg E), the file name
        ``"thm_dir_N-30_030.png"``, or the south-west corner ``(-30, 30)``.
    dest : path, optional
        Folder to put the tile in.  Default: ``<cache>/themis`` where ``<cache>`` is
        ``$MARSCRATERS_CACHE`` or the OS cache folder (see :func:`cache_dir`).
    base_url : str, optional
        Folder URL of a mirror that holds ``thm_dir_*.png`` files.  Default:
        ``$MARSCRATERS_THEMIS_URL``, else :data:`THEMIS_BASE_URL`.
    progress : bool, default True
        Show a tqdm progress bar.
    known_hash : str, optional
        ``"sha256:<hex>"`` (or ``md5:``/``sha1:``) to verify the file against.

    Returns
    -------
    pathlib.Path
        The local PNG.

    Raises
    ------
    TileNameError
        ``tile`` is not one of the 72 tiles.
    DownloadError
        HTTP error, unreachable host, broken transfer (partial data kept for resuming),
        checksum mismatch, or a file that is not a PNG, such as an error page (bad file
        deleted; a cached one that is not a PNG is downloaded again).

    Examples
    --------
    >>> path = download_themis("N-30_030")  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'thm_dir_N-30_030.png'
    """
    name = themis_tile_name(tile)
    base, _ = _base(base_url, ENV_THEMIS_URL, THEMIS_BASE_URL)
    target = _dest(dest, "themis") / name
    _retrieve(base + name, target, known_hash=known_hash, progress=progress, env_var=ENV_THEMIS_URL,
              signature=_PNG_SIGNATURE)
    return target


def download_robbins(
    release: str = "2012",
    *,
    dest: str | os.PathLike | None = None,
    base_url: str | None = None,
    progress: bool = True,
    known_hash: str | None = None,
) -> Path:
    """Download a Robbins Mars crater catalog release and return the path of its table.

    Zipped releases are unpacked next to the download (``<zip>.unzip/``) and the path of the
    table inside is returned.  Cached, resumable and checksummed like :func:`download_themis`.

    Parameters
    ----------
    release : str, default "2012"
        A key of :data:`ROBBINS_RELEASES`: ``"2012"`` (Robbins & Hynek 2012, the catalog the
        DeLatte et al. THEMIS labels come from), ``"2014"`` or ``"2020"``.
    dest : path, optional
        Folder to put the file in.  Default: ``<cache>/robbins`` (see :func:`cache_dir`).
    base_url : str, optional
        Folder URL of a mirror that holds the release under its registry file name (e.g.
        ``RobbinsCraterDatabase_20121016.tsv.zip``).  Default: ``$MARSCRATERS_ROBBINS_URL``,
        else the registry URL.
    progress : bool, default True
        Show a tqdm progress bar.
    known_hash : str, optional
        Hash of the downloaded file (the zip for zipped releases); defaults to the registry's.

    Returns
    -------
    pathlib.Path
        The ``.tsv``/``.csv`` table, ready for :func:`marscraters.read_catalog`.

    Raises
    ------
    InvalidArgumentError
        Unknown ``release``.
    DownloadError
        HTTP error, unreachable host, broken transfer, checksum mismatch, or an archive without
        a table in it.

    Examples
    --------
    >>> table = download_robbins("2012")  # doctest: +SKIP
    >>> table.name  # doctest: +SKIP
    'RobbinsCraters_20121016.tsv'
    """
    key = str(release)
    if key not in ROBBINS_RELEASES:
        raise InvalidArgumentError(
            f"release={release!r} is not a known Robbins catalog release. Choose one of "
            f"{', '.join(repr(k) for k in ROBBINS_RELEASES)}."
        )
    entry = ROBBINS_RELEASES[key]
    base, is_default = _base(base_url, ENV_ROBBINS_URL, "")
    url = entry.url if is_default else base + entry.filename
    target = _dest(dest, "robbins") / entry.filename
    hash_ = known_hash if known_hash is not None else entry.known_hash
    processor = _AtomicUnzip() if entry.zipped else None
    try:
        result = _retrieve(url, target, known_hash=hash_, progress=progress, env_var=ENV_ROBBINS_URL, processor=processor)
    except zipfile.BadZipFile as exc:
        # e.g. an HTML error page served with status 200: never keep it as the cached archive
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise DownloadError(
            f"{target.name} downloaded from {url} is not a valid zip archive ({exc}); it was deleted. "
            f"Try again, or point ${ENV_ROBBINS_URL} (or base_url=) at a mirror that holds {entry.filename}."
        ) from exc
    if not entry.zipped:
        return target
    return _pick_table([Path(p) for p in result], entry, target)


class _AtomicUnzip(pooch.Unzip):
    """``pooch.Unzip`` that never leaves a half-extracted member at its final path.

    Members are extracted into a temporary folder beside the destination and then renamed into
    place, so an interrupted extraction cannot pass for a complete table on the next call.
    """

    def _extract_file(self, fname: str, extract_dir: str) -> None:
        parent = Path(extract_dir).parent
        with zipfile.ZipFile(fname) as zf, tempfile.TemporaryDirectory(dir=parent, prefix=".unzip-") as tmp:
            members = self.members or zf.namelist()
            zf.extractall(path=tmp, members=members)
            for root, _, files in os.walk(tmp):
                for f in files:
                    src = Path(root) / f
                    dst = Path(extract_dir) / src.relative_to(tmp)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)


def _pick_table(files: list[Path], entry: RemoteFile, archive: Path) -> Path:
    # macOS archivers add __MACOSX/ and ._name resource forks that look like tables
    tables = [
        p
        for p in files
        if "__MACOSX" not in p.parts and not p.name.startswith("._") and p.suffix.lower() in (".tsv", ".csv", ".txt", ".tab")
    ]
    if entry.member:
        exact = [p for p in tables if p.name == entry.member]
        if exact:
            return exact[0]
    if tables:
        if entry.member:
            log.warning("%s has no %s; using %s", archive.name, entry.member, max(tables, key=lambda p: p.stat().st_size).name)
        return max(tables, key=lambda p: p.stat().st_size)
    raise DownloadError(
        f"The archive {archive} holds no .tsv/.csv table (members: {[p.name for p in files]}). "
        f"Delete {archive} and its .unzip folder and download again, or get the table from {entry.landing_page}."
    )


# --------------------------------------------------------------------------------------------
# registry listing
# --------------------------------------------------------------------------------------------
def registry(kind: str | None = None) -> pd.DataFrame:
    """List the known remote files as a table (for documentation and scripting).

    Parameters
    ----------
    kind : {"robbins", "themis"}, optional
        Only this kind of file.  Default: all (3 Robbins releases and 72 THEMIS tiles).

    Returns
    -------
    pandas.DataFrame
        One row per file, with columns ``key, kind, description, url, filename, known_hash,
        zipped, member, citation, landing_page`` and ``env_var`` (the mirror override).
        URLs are the defaults, not the environment overrides.

    Examples
    --------
    >>> registry("robbins")[["key", "url"]]  # doctest: +SKIP
    """
    import pandas as pd

    if kind not in (None, "robbins", "themis"):
        raise InvalidArgumentError(f"kind={kind!r}: choose 'robbins', 'themis' or None (both).")
    rows: list[dict[str, Any]] = []
    if kind in (None, "robbins"):
        rows += [{**asdict(e), "env_var": ENV_ROBBINS_URL} for e in ROBBINS_RELEASES.values()]
    if kind in (None, "themis"):
        for lat in THEMIS_TILE_LATS:
            for lon in THEMIS_TILE_LONS:
                name = f"thm_dir_{_tile_id(lat, lon)}.png"
                tile = RemoteFile(
                    key=_tile_id(lat, lon),
                    kind="themis",
                    description=(
                        f"THEMIS Day IR global mosaic tile, lat {lat}..{lat + 30}, lon {lon}..{lon + 30} "
                        "deg E; 7680x7680 8-bit PNG at 256 px/deg, 0 = no data"
                    ),
                    url=THEMIS_BASE_URL + name,
                    filename=name,
                    known_hash=None,
                    zipped=False,
                    member=None,
                    citation=_THEMIS_CITATION,
                    landing_page=_THEMIS_LANDING,
                )
                rows.append({**asdict(tile), "env_var": ENV_THEMIS_URL})
    return pd.DataFrame(rows)
