"""Segment whole mosaics: the UNet over a Mosaic through ``dask.array.map_overlap``, lazily and without seams.

:func:`segment` turns a Mosaic into a lazy ``crater_probability`` DataArray on the same grid and
CRS.  :func:`segment_to_zarr` writes it block by block into a Zarr v3 store and resumes an
interrupted run where it stopped.

How a block is predicted
------------------------
Each dask block is extended by ``depth`` pixels of its neighbours (``map_overlap`` with
``boundary="none"``: nothing is invented inside the mosaic).  ``depth`` defaults to the network's
:func:`~marscraters.model.receptive_margin` rounded up to 128 (509 -> 512 px for 3x3 kernels), so
every output pixel sees all the input it depends on.  Inside the block function the extended
block is:

1. normalised with the same fixed linear scale as :func:`~marscraters.model.normalise_image`
   (``value_range``, clipped): *one scale for the whole mosaic*, given, or found once from a
   sample of the whole mosaic by the grey-level rule :func:`~marscraters.model.guess_value_range`
   (0..255 for 8-bit levels like THEMIS'); no-data pixels are filled with *one constant for
   the whole mosaic* (``nodata_fill``), never a per-block mean, which would differ between
   blocks and leave seams near gaps;
2. padded by reflection so that it starts and ends on the 128-pixel pooling grid **of the whole
   mosaic** -- the grid :func:`~marscraters.model.pad_to_multiple` gives the whole image.  Average
   pooling is only shift-equivariant by multiples of 128, so this alignment is what makes a block
   give the same numbers as the whole image;
3. cut into windows: the block's core is covered by ``tile``-sized cores, each predicted inside a
   window with the same halo, all windows of a block have one shape, and up to ``batch_size`` of
   them go into one ``predict_on_batch`` call.  By default a block is one window (the halo work is
   paid once per block, not once per small tile: a 512-px tile with an exact 512-px halo does 9x
   the work of its pixels, a 3072-px block 1.8x), and automatic blocks are the fewest whose
   windows fit in memory (a mosaic up to 4096 px on a side is one block, with no halo at all).
   Only the encoder and the coarse decoder levels run on the whole window; the four finest
   decoder levels, three quarters of the network's work, run on the core plus a few pixels
   (:func:`~marscraters.model.staged_model`, exact), so the halo costs about a third of what a
   whole-window prediction pays for it;
4. cropped back to the core.  No-data pixels get probability 0; blocks without data skip the
   network entirely.

With the default ``depth`` the result is the same as one whole-image
``predict_image(model, image, tile=None)`` (to float round-off), at every pixel and for every
chunking, including along the outer edge (where both reflect the image in the same way).

The model travels as a path
---------------------------
Tasks carry the model file's path, never the model.  Each process loads it once, through a cache
keyed by ``(path, mtime, size)`` (:func:`_cached_model`); on a distributed cluster
:func:`marscraters.cluster.preload_model` loads it when a worker starts.  An in-memory Keras model
is first saved to a temporary ``.keras`` file (which only workers on this machine can read; use a
path on shared storage for multi-node clusters).
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import logging
import math
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ._io import _remove, check_output
from .cluster import active_client
from .crs import Grid
from .errors import InvalidArgumentError, ModelError, MosaicError, OutputExistsError
from .model import (MULTIPLE, _check_tta, add_precision_argument, mosaic_value_range, read_model_metadata,
                    receptive_margin, resolve_precision)

if TYPE_CHECKING:  # pragma: no cover
    import distributed
    import keras

__all__ = [
    "model_for_mosaic",
    "segment",
    "segment_to_zarr",
    "partial_store_path",
    "interrupted_message",
    "add_segment_parser",
    "run_segment_cli",
]

log = logging.getLogger("marscraters.segment")

#: Name of the output variable.
VARIABLE = "crater_probability"
# Side of the inference blocks that chunks=None aims at: a 3072-px core with a 512-px halo is a
# 4096-px window (~6 GB of activations for the default model), and does 1.8x the work of its core.
_AUTO_BLOCK = 3072
# Largest window (pixels) predicted in one piece, and largest batch (pixels) per predict call;
# one 4096-px window plus one 128-px row of pooling-grid alignment on each axis.
_MAX_WINDOW_PX = (4096 + MULTIPLE) ** 2
# Largest Zarr chunk side of the output store.
_MAX_STORE_CHUNK = 1024
# Smallest Zarr chunk side of the output store unless the caller's own blocks need less: smaller
# chunks mean thousands of files and a slow read for every later step.
_MIN_STORE_CHUNK = 256
# Files that segment_to_zarr keeps inside an unfinished store.
_RECORD = "_marscraters_segment.json"
_DONE_DIR = "_marscraters_done"
_RECORD_VERSION = 2  # 2: done markers hold their input's digest


# --------------------------------------------------------------------------------------------
# the model: a path, loaded once per process
# --------------------------------------------------------------------------------------------
_MODELS: OrderedDict[tuple[str, int, int, str], Any] = OrderedDict()  # path, mtime, size, precision
_MODEL_LOCK = threading.Lock()
# One predict at a time per process: Keras models are not documented as thread-safe, and the
# backend's own intra-op threads already use every core; the other dask threads meanwhile read,
# normalise and write blocks.
_PREDICT_LOCK = threading.Lock()
_MODEL_CACHE_SIZE = 4
# Counters, per process, so tests (and users, through client.run) can see what happened.
_STATS: Counter[str] = Counter()
_LOADS: Counter[str] = Counter()
_TEMP_DIRS: list[str] = []


def _validate_mosaic(ds: Any) -> Any:
    # imported here: mosaic pulls in rasterio (GDAL), which predicting on arrays and training do not need
    from .mosaic import validate_mosaic

    return validate_mosaic(ds)


def _model_key(path: str | os.PathLike) -> tuple[str, int, int]:
    p = Path(path).resolve()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ModelError(
            f"model file {p} does not exist in this process (pid {os.getpid()}); on a multi-machine cluster "
            "the model must be on storage every worker can read -- pass its path, not an in-memory model"
        ) from None
    return (str(p), st.st_mtime_ns, st.st_size)


def _cached_model(path: str | os.PathLike, precision: str = "float32") -> "keras.Model":
    """The model of ``path``, loaded at most once per process (per file version and precision).

    Keyed by ``(resolved path, mtime, size, precision)``, so a file replaced on disk is loaded
    again.  A lock makes concurrent threads of one worker share one load.  ``precision``: the
    arithmetic (:func:`marscraters.model.resolve_precision`); a bfloat16 copy is made from the
    float32 model when that is already held, else from the file.
    """
    from .model import load_model, resolve_precision, with_precision

    key = (*_model_key(path), resolve_precision(precision))
    with _MODEL_LOCK:
        model = _MODELS.get(key)
        if model is None:
            base = _MODELS.get((*key[:3], "float32"))
            if base is None:
                base = load_model(key[0])
                _LOADS[key[0]] += 1
            model = with_precision(base, key[3])
            _MODELS[key] = model
            while len(_MODELS) > _MODEL_CACHE_SIZE:
                _MODELS.popitem(last=False)
        else:
            _MODELS.move_to_end(key)
    return model


def _cache_info() -> dict[str, Any]:
    """What this process did: model loads per path, blocks, predict calls (for tests and diagnostics)."""
    return {
        "pid": os.getpid(),
        "loads": dict(_LOADS),
        "cached": [k[0] for k in _MODELS],
        "blocks": _STATS["blocks"],
        "predicted_blocks": _STATS["predicted_blocks"],
        "predict_calls": _STATS["predict_calls"],
        "windows": _STATS["windows"],
    }


def _cleanup_temp_models() -> None:
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_temp_models)


@dataclass(frozen=True)
class _ModelSpec:
    path: str
    kernel_size: int
    name: str
    metadata: dict[str, Any]

    def sha256(self) -> str:
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()


def _check_io_shapes(model: Any, what: str) -> None:
    try:
        in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    except (AttributeError, IndexError, TypeError) as exc:
        raise ModelError(f"{what} is not a Keras functional model with one input and one output ({exc})") from exc
    if len(in_shape) != 4 or in_shape[-1] != 1 or len(out_shape) != 4 or out_shape[-1] != 1:
        raise ModelError(
            f"{what} maps {in_shape} -> {out_shape}, but mosaics have one band: segment needs an "
            "(N, H, W, 1) -> (N, H, W, 1) model; build one with marscraters.symmetric_unet()"
        )


def model_for_mosaic(ds: Any, model: Any = None) -> Any:
    """``model``, or when it is None the shipped model for the mosaic's pixel size.

    Mosaics finer than :data:`marscraters.model.FINE_PIXEL_SIZE_M` (CTX, HRSC) get the model for
    fine imagery (:func:`marscraters.model.default_model_for`); the rest, and mosaics whose pixel
    size in metres is unknown, the THEMIS default (returned as None).

    Raises
    ------
    InvalidArgumentError
        When choosing, for a pixel size outside the 1-1000 m that
        :func:`marscraters.detect.detect` works at (:data:`marscraters.detect.PIXEL_SIZE_RANGE_M`):
        almost always georeferencing in a wrong unit, which no model choice fits.

    Examples
    --------
    >>> from marscraters.mosaic import mosaic_from_array
    >>> model_for_mosaic(mosaic_from_array(np.zeros((8, 8)), (0, 0, 8 / 592.747, 8 / 592.747))) is None
    True
    """
    if model is not None:
        return model
    from .detect import _check_mosaic_pixel_size
    from .model import DEFAULT_WEIGHTS, default_model_for

    # non-square pixels or an unknown unit: None (segment works on them as they are); a wrong unit is refused
    size = _check_mosaic_pixel_size(ds)
    chosen = None if size is None else default_model_for(size)
    return None if chosen is None or chosen == DEFAULT_WEIGHTS else chosen


def _resolve_model(model: Any) -> _ModelSpec:
    """A path, its kernel size and name, for ``model`` (None, a path or an in-memory Keras model)."""
    from .model import _model_kernel_size, save_model

    if model is None or isinstance(model, (str, os.PathLike)):
        meta = read_model_metadata(model)  # raises ModelError for a missing or corrupt file
        if model is None:
            from .model import default_weights_path

            model = default_weights_path()
        path = str(Path(model).resolve())
        arch = meta.get("architecture") or {}
        if arch:
            channels = arch.get("input_channels")
            if channels != 1:
                raise ModelError(
                    f"model file {path} expects {channels} input channel(s), but mosaics have one band "
                    "(ir); use a one-channel model (symmetric_unet(input_shape=(None, None, 1)))"
                )
            kernel = arch.get("kernel_size")
            name = str(arch.get("name") or Path(path).stem)
        else:  # a plain Keras file: load it (once per process) to learn its shape and kernel size
            keras_model = _cached_model(path)
            _check_io_shapes(keras_model, f"model file {path}")
            kernel = _model_kernel_size(keras_model)
            name = str(keras_model.name)
        if not isinstance(kernel, int) or kernel < 1:
            raise ModelError(f"model file {path} does not record a kernel size; pass depth= explicitly")
        return _ModelSpec(path, int(kernel), name, meta)
    if hasattr(model, "predict_on_batch") and hasattr(model, "inputs"):
        _check_io_shapes(model, f"model {getattr(model, 'name', '?')!r}")
        tmpdir = tempfile.mkdtemp(prefix="marscraters-model-")
        _TEMP_DIRS.append(tmpdir)
        path = save_model(model, Path(tmpdir) / "model.keras")
        key = _model_key(path)
        with _MODEL_LOCK:  # this process already has the model: no need to load it back
            _MODELS[(*key, "float32")] = model
        spec = _resolve_model(path)
        return spec
    raise InvalidArgumentError(
        f"model must be None (the shipped weights), a path to a .keras file or a Keras model, got "
        f"{type(model).__name__}"
    )


# --------------------------------------------------------------------------------------------
# the block function
# --------------------------------------------------------------------------------------------
def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def _axis_windows(n: int, lo: int, hi: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Cores covering ``[lo, hi)`` of a padded axis of length ``n`` and their windows.

    Returns ``(core_start, core_stop, window_start, window_stop)``.  ``n``, ``tile`` and ``halo``
    are multiples of 128 and position 0 is on the pooling grid, so every window starts on it.
    All windows have one length (those at the ends slide inwards), so they stack into batches.
    """
    a0 = lo // MULTIPLE * MULTIPLE
    a1 = min(n, _round_up(hi, MULTIPLE))
    length = min(tile + 2 * halo, n)
    out = []
    for start in range(a0, a1, tile):
        stop = min(start + tile, a1)
        wstart = min(max(start - halo, 0), n - length)
        out.append((start, stop, wstart, wstart + length))
    return out


def _normalise_block(block: np.ndarray, lo: float, hi: float, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-scale mapping of :func:`marscraters.model.normalise_image`, with a global fill.

    Unlike ``normalise_image`` it never raises: constant and all-NaN blocks are legitimate parts
    of a mosaic, and no-data pixels get ``fill`` (already in 0..1) instead of the block's mean.
    """
    # float32 in place: a block is tens of Mpx, and float64 temporaries cost ~5 % of a block's time
    out = np.array(block, dtype=np.float32)
    valid = np.isfinite(out)
    out -= np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)  # NaN stays NaN here ...
    out[~valid] = fill  # ... and is replaced by the one mosaic-wide constant
    return out, valid


def _predict_block(
    block: np.ndarray,
    fill: Any = 0.5,
    *,
    model_path: str,
    depth: tuple[int, int],
    halo: int,
    tile: int | None,
    batch_size: int,
    lo: float,
    hi: float,
    anchor: tuple[int, int],
    shape: tuple[int, int],
    tta: int = 1,
    precision: str = "float32",
    block_info: dict | None = None,
) -> np.ndarray:
    """Predict the core of one overlapped block (see the module docstring)."""
    _STATS["blocks"] += 1
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    ny, nx = shape
    # where the extended block starts: boundary="none" adds `depth` only towards neighbours
    dy, dx = depth
    ey0, ex0 = max(y0 - dy, 0), max(x0 - dx, 0)
    expected = (min(y1 + dy, ny) - ey0, min(x1 + dx, nx) - ex0)
    if block.shape != expected:  # pragma: no cover - a dask change in map_overlap's layout
        raise RuntimeError(f"map_overlap gave a {block.shape} block for core {block_info[None]['array-location']}, expected {expected}")
    core = (slice(y0 - ey0, y1 - ey0), slice(x0 - ex0, x1 - ex0))
    out = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    x, valid = _normalise_block(block, lo, hi, float(fill))
    if not valid[core].any():
        return out  # no data here: probability 0, and no need to run the network
    _STATS["predicted_blocks"] += 1
    # pad onto the whole mosaic's 128-pixel pooling grid (the grid pad_to_multiple gives it)
    by, bx = (ey0 + anchor[0]) % MULTIPLE, (ex0 + anchor[1]) % MULTIPLE
    ay, ax = -(by + x.shape[0]) % MULTIPLE, -(bx + x.shape[1]) % MULTIPLE
    if by or bx or ay or ax:
        x = np.pad(x, ((by, ay), (bx, ax)), mode="reflect")
    ly0, ly1 = by + core[0].start, by + core[0].stop
    lx0, lx1 = bx + core[1].start, bx + core[1].stop
    if tile is None:
        # one window per block, unless it would not fit in memory (windows slide inwards at the
        # mosaic's edge, so an edge block's window is its core plus a one-sided halo)
        span = max(_round_up(ly1, MULTIPLE) - ly0 // MULTIPLE * MULTIPLE, _round_up(lx1, MULTIPLE) - lx0 // MULTIPLE * MULTIPLE)
        window = min(span + 2 * halo, x.shape[0]) * min(span + 2 * halo, x.shape[1])
        tile_px = span if window <= _MAX_WINDOW_PX else _AUTO_BLOCK
    else:
        tile_px = _round_up(tile, MULTIPLE)
    # along an axis where one tile's window would already span the whole block (a deep halo),
    # one window covers every core: more tiles would only repeat the same window
    tile_y = tile_px if tile_px + 2 * halo < x.shape[0] else x.shape[0]
    tile_x = tile_px if tile_px + 2 * halo < x.shape[1] else x.shape[1]
    rows = _axis_windows(x.shape[0], ly0, ly1, tile_y, halo)
    cols = _axis_windows(x.shape[1], lx0, lx1, tile_x, halo)
    # "auto" is resolved here, on the worker: its CPU decides, not the client's
    pred = _predict_windows(_cached_model(model_path, precision), x, rows, cols, batch_size, tta)
    out[...] = pred[ly0:ly1, lx0:lx1]
    out[~valid[core]] = 0.0
    return out


def _predict_windows(
    model: Any, x: np.ndarray, rows: list[tuple[int, int, int, int]], cols: list[tuple[int, int, int, int]], batch_size: int,
    tta: int = 1,
) -> np.ndarray:
    """Predict the cores of ``rows x cols`` windows of ``x`` in batches; returns an array like ``x``."""
    from .model import predict_windows

    jobs = [(r, c) for r in rows for c in cols]
    wy, wx = rows[0][3] - rows[0][2], cols[0][3] - cols[0][2]
    batch = max(1, min(int(batch_size), _MAX_WINDOW_PX // (wy * wx), len(jobs)))

    def count(n: int) -> None:
        _STATS["predict_calls"] += 1
        _STATS["windows"] += n

    return predict_windows(model, x, jobs, batch, lock=_PREDICT_LOCK, on_batch=count, tta=tta)


# --------------------------------------------------------------------------------------------
# segment
# --------------------------------------------------------------------------------------------
def _check_value_range(value_range: Any) -> tuple[float, float] | str | None:
    """``value_range`` checked: None (the grey-level rule), ``"auto"`` or a fixed ``(low, high)``."""
    if value_range is None or (isinstance(value_range, str) and value_range == "auto"):
        return value_range
    if isinstance(value_range, str):
        raise InvalidArgumentError(
            f"value_range must be (low, high), 'auto' (one stretch for the whole mosaic, from its levels) or "
            f"None (the grey-level rule), got {value_range!r}"
        )
    from .model import fixed_value_range

    return fixed_value_range(value_range, hint=", 'auto' or None")


def _levels(sample: np.ndarray, value_range: str | None) -> np.ndarray:
    from .model import _sample_value_range

    return np.array(_sample_value_range(sample, value_range, stacklevel=3), dtype=np.float64)


def _lazy_value_range(data: da.Array, value_range: str | None) -> tuple[da.Array, da.Array]:
    """:func:`~marscraters.model.mosaic_value_range` as two lazy scalars of one task: computed once
    per compute and passed to every block (so :func:`segment` stays lazy)."""
    from .model import grey_sample

    task = dask.delayed(_levels, pure=True)(grey_sample(data), value_range)
    levels = da.from_delayed(task, shape=(2,), dtype=np.float64)
    return levels[0], levels[1]


def _positive_int(value: Any, what: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if allow_zero else 1):
        kind = "non-negative" if allow_zero else "positive"
        raise InvalidArgumentError(f"{what} must be a {kind} integer, got {value!r}")
    return int(value)


def _storage_chunks(ir: xr.DataArray) -> tuple[int, int] | None:
    enc = ir.encoding
    pref = enc.get("preferred_chunks")
    if isinstance(pref, Mapping) and "y" in pref and "x" in pref:
        return int(pref["y"]), int(pref["x"])
    chunks = enc.get("chunks")
    if chunks is not None and len(chunks) == 2:
        return int(chunks[0]), int(chunks[1])
    return None


def _split_axis(n: int, k: int, depth: int, step: int) -> tuple[int, ...]:
    """``k`` blocks over ``n`` pixels with borders on multiples of ``step``; edge blocks, which
    have a halo on one side only, get ``depth`` more pixels than interior ones (equal windows)."""
    inner = (n - 2 * depth) / k if k > 1 else n
    sizes = [inner + depth] + [inner] * (k - 2) + [inner + depth] if k > 1 else [n]
    borders = sorted({min(n, max(step, int(round(b / step)) * step)) for b in np.cumsum(sizes)[:-1]} - {n})
    edges = [0, *borders, n]
    return tuple(int(b - a) for a, b in zip(edges[:-1], edges[1:]) if b > a)


def _auto_axis(n: int, step: int, depth: int, min_blocks: int = 1) -> tuple[int, ...]:
    """Automatic block sizes along one axis: the fewest blocks whose windows stay within the
    window of an interior ``_AUTO_BLOCK`` block (``_AUTO_BLOCK + 2 depth``), and at least
    ``min_blocks``.  Every border costs ``2 depth`` pixels of halo, so fewer blocks do less work:
    an axis that fits in one window is one block and has no halo at all."""
    core = max(_AUTO_BLOCK, step)
    edge = core + depth  # an edge block's core: its window is as wide as an interior block's
    if n <= core + 2 * depth:
        k = 1
    elif n <= 2 * edge:
        k = 2
    else:
        k = 2 + math.ceil((n - 2 * edge) / core)
    k = max(k, min(int(min_blocks), max(1, n // max(step, depth, 1))))
    for kk in range(k, max(k, math.ceil(n / step)) + 1):
        sizes = _split_axis(n, kk, depth, step)
        # rounding borders to the storage grid may push a block past its window: one more block
        if len(sizes) == 1 or (max(sizes[0], sizes[-1]) <= edge and max(sizes[1:-1], default=0) <= core):
            return sizes
    # storage chunks too coarse to balance: the storage grid itself (its last, short chunk
    # merged into its neighbour when thinner than the halo)
    sizes = [step] * (n // step) + ([n % step] if n % step else [])
    if len(sizes) > 1 and sizes[-1] < depth:
        sizes[-2:] = [sizes[-2] + sizes[-1]]
    return tuple(sizes)


def _cluster_workers(client: Any = None) -> int:
    """Workers of ``client`` or the default distributed client (1 without one): automatic blocks give each a block."""
    client = client if client is not None else active_client()
    if client is None:
        return 1
    try:
        return max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:  # noqa: BLE001 - a closed or unreachable client is not this call's problem
        return 1


def _block_chunks(ir: xr.DataArray, chunks: Any, depth: int, workers: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Dask chunks of the inference blocks: ``chunks`` (or automatic), merged so that each is >= depth.

    Automatic blocks (``chunks=None``) are the fewest, storage-aligned blocks whose windows fit
    the memory of one interior ``_AUTO_BLOCK`` block (:func:`_auto_axis`); when that gives fewer
    blocks than ``workers``, the longer axis is split further so that every worker has one.
    """
    ny, nx = ir.shape
    if chunks is None:
        # block borders on the mosaic's storage grid, coarsened to at least _MIN_STORE_CHUNK: the
        # output store's chunks divide the blocks, so small steps would make small output chunks
        storage = tuple(s * -(-_MIN_STORE_CHUNK // s) for s in (_storage_chunks(ir) or (512, 512)))
        ky, kx = len(_auto_axis(ny, storage[0], depth)), len(_auto_axis(nx, storage[1], depth))
        most_y, most_x = (max(1, n // max(s, depth, 1)) for n, s in zip((ny, nx), storage))
        while ky * kx < workers and (ky < most_y or kx < most_x):
            if kx >= most_x or (ky < most_y and ny / ky >= nx / kx):
                ky += 1
            else:
                kx += 1
        target = (_auto_axis(ny, storage[0], depth, ky), _auto_axis(nx, storage[1], depth, kx))
    elif isinstance(chunks, Mapping):
        unknown = set(chunks) - {"y", "x"}
        if unknown:
            raise InvalidArgumentError(f"chunks may only name 'y' and 'x', got {sorted(unknown)}")
        target = (chunks.get("y", ir.chunks[0] if ir.chunks else -1), chunks.get("x", ir.chunks[1] if ir.chunks else -1))
    elif isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        target = (int(chunks), int(chunks))
    else:
        target = tuple(chunks)
    # a block side must be a positive number of pixels (-1: the whole axis, dask's spelling)
    sides = [v for v in target if isinstance(v, (int, np.integer)) and not isinstance(v, bool)]
    if any(v == 0 or v < -1 for v in sides):
        raise InvalidArgumentError(
            f"chunks={chunks!r} (CLI: --chunk PIXELS) is no block size: a block side must be a positive number of "
            "pixels, e.g. 2048, or left out for the automatic blocks")
    try:
        normal = da.core.normalize_chunks(target, (ny, nx), dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"chunks must be an int, (rows, cols), {{'y': .., 'x': ..}} or None, got {chunks!r}") from exc
    out = []
    for c, n in zip(normal, (ny, nx)):
        if depth == 0 or len(c) == 1:
            out.append(tuple(int(v) for v in c))
        elif n <= depth:
            out.append((n,))
        else:
            from .mosaic import _merge_thin

            out.append(_merge_thin(tuple(int(v) for v in c), depth))
    if chunks is not None and (len(out[0]), len(out[1])) != (len(normal[0]), len(normal[1])):
        # asked-for blocks thinner than the network's overlap would mostly compute halo: say what runs
        log.info("the %d x %d px mosaic runs as %d x %d blocks, not the %d x %d of %s px asked for: a block thinner "
                 "than the network's %d-px overlap is merged with its neighbour", ny, nx, len(out[0]), len(out[1]),
                 len(normal[0]), len(normal[1]), " x ".join(str(max(a)) for a in normal), depth)
    return out[0], out[1]


def _scaled_nanmean(data: Any, lo: float, hi: float) -> Any:
    """Mean of the valid pixels on the network's 0..1 scale (what normalise_image fills with)."""
    xp = da if isinstance(data, da.Array) else np
    scaled = xp.clip((data.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return xp.nanmean(scaled)


def _fill_value(nodata_fill: Any, data: Any, lo: Any, hi: Any) -> Any:
    """The one no-data fill of the whole mosaic, in 0..1 (a float, or a lazy 0-d dask array when it
    is the mean or when ``lo`` and ``hi`` are lazy)."""
    if nodata_fill is None:
        return 0.5
    if isinstance(nodata_fill, str):
        if nodata_fill != "mean":
            raise InvalidArgumentError(f"nodata_fill must be None, 'mean' or a number, got {nodata_fill!r}")
        mean = _scaled_nanmean(data, lo, hi)
        if isinstance(mean, da.Array):
            # an all-NaN mosaic has no mean; it predicts nothing anyway, so any finite value will do
            return da.where(da.isfinite(mean), mean, 0.5)
        return float(mean) if np.isfinite(mean) else 0.5
    try:
        value = float(nodata_fill)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"nodata_fill must be None, 'mean' or a number, got {nodata_fill!r}") from exc
    if not math.isfinite(value):
        raise InvalidArgumentError(f"nodata_fill must be finite, got {nodata_fill!r}")
    if isinstance(lo, da.Array):
        return da.clip((value - lo) / (hi - lo), 0.0, 1.0)
    return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))


def segment(
    ds: xr.Dataset,
    model: Any = None,
    *,
    depth: int | None = None,
    batch_size: int = 4,
    chunks: Any = None,
    tile: int | None = None,
    value_range: tuple[float, float] | str | None = None,
    nodata_fill: float | Literal["mean"] | None = None,
    tta: int | None = None,
    precision: str = "float32",
) -> xr.DataArray:
    """Crater probability of a whole mosaic, lazily, through ``dask.array.map_overlap``.

    Nothing is computed: the result is a dask-backed DataArray; ``.compute()``, ``.to_zarr()`` or
    :func:`segment_to_zarr` run it.  With the default ``depth`` the values do not depend on the
    chunking, and equal one whole-image ``predict_image(model, ds.ir.values, tile=None)``
    (where the mosaic has data; near its gaps too with ``nodata_fill="mean"``).

    Parameters
    ----------
    ds
        A Mosaic (``ir`` on ``(y, x)`` with a Mars CRS), numpy- or dask-backed.
    model
        Path of a ``.keras`` model file, an in-memory Keras model (saved to a temporary file
        first), or None for the shipped model for the mosaic's pixel size
        (:func:`model_for_mosaic`: the THEMIS model, or the model for fine imagery below 50 m per
        pixel).  Tasks carry only the path.
    depth
        Overlap between blocks in pixels.  Default: the network's receptive margin rounded up to
        128 (512 for 3x3 kernels), which makes the result exact; smaller is faster but differs
        near block borders.
    batch_size
        Most windows per ``predict_on_batch`` call, when a block is cut into several windows
        (see ``tile``).  Batches never exceed about 19 Mpx.
    chunks
        Inference blocks: an int, ``(rows, cols)``, ``{"y": rows, "x": cols}``, or None for
        automatic blocks: the fewest, aligned to the input's storage chunks, whose windows
        (block plus halo) are no larger than an interior 3072-px block's (4096 px with the
        default depth).  A mosaic up to 4096 px on a side is one block and pays no halo; larger
        ones get ~3072-px interior and ~3584-px edge blocks.  With a distributed client as the
        default, blocks are split further until every worker has one.  Blocks thinner than
        ``depth`` are merged with a neighbour.  Larger blocks waste less work on halos (a block
        of side B does ``((B + 2 depth) / B)**2`` the work of its pixels) but need more memory.
    tile
        Core size (a multiple of 128) of the windows a block is cut into.  None: the whole block
        is one window unless that exceeds about 4224 x 4224 px, then 3072-px cores.
    value_range
        The mosaic's grey scale ``(low, high)``, mapped linearly to the network's 0..1 and
        clipped (as :func:`~marscraters.model.normalise_image` does); one scale for every block.
        None (default): the grey-level rule of :func:`marscraters.detect.detect`
        (:func:`~marscraters.model.guess_value_range`), judged on about a million pixels of the
        whole mosaic (:func:`~marscraters.model.grey_sample`, the same pixels for every
        chunking): 0..255 for 8-bit levels like THEMIS', else, with a warning, a stretch from
        the sample's 0.5th to 99.5th percentile (a 16-bit mosaic).  ``"auto"``: that stretch,
        always.  The sample is a task of the graph, read once when the result is computed;
        :func:`segment_to_zarr` reads it first and records the scale.
    nodata_fill
        What no-data (NaN) pixels look like to the network, in the mosaic's units: None
        (default) for the middle of ``value_range``; ``"mean"`` for the mean of the mosaic's
        valid pixels (what ``predict_image`` uses for one image; lazily, it costs an extra
        pass over the mosaic and, in one ``.compute()`` of a huge mosaic, can keep its blocks
        in memory -- :func:`segment_to_zarr` computes it first instead); or a number.  No-data
        pixels always get probability 0.
    tta
        Test-time augmentation: average 1, 2, 4 or 8 orientations of every block (flips and
        quarter turns, :func:`~marscraters.model.predict_windows`); exact and seamless as
        without it, for ``tta`` times the work.  None (default): the model's own setting (its
        file's ``tta``, 1 when it has none), which its verifier learnt from.
    precision
        The network's arithmetic (:func:`marscraters.model.resolve_precision`), decided on each
        worker: ``"auto"`` computes in bfloat16 on CPUs with native bfloat16 and in float32
        elsewhere; ``"float32"`` gives the same numbers on every machine.

    Returns
    -------
    xarray.DataArray
        ``crater_probability``: float32 on ``(y, x)`` in 0..1, with the mosaic's coordinates,
        CRS and transform, chunked like the inference blocks; attrs record the model and
        settings.

    Raises
    ------
    MosaicError, MissingCRSError, NotMarsCRSError
        If ``ds`` is not a Mosaic (no ``ir``, no CRS, ...).
    ModelError
        If the model file is missing or corrupt, or the model does not take one-band images.
    InvalidArgumentError
        For bad ``depth``, ``batch_size``, ``chunks``, ``tile``, ``value_range`` or
        ``nodata_fill``.

    Warns
    -----
    UserWarning
        When ``value_range`` is None and the mosaic's levels are not 8-bit-like (beyond
        0..255, or far darker, brighter or flatter than the training chips): it is stretched.

    Examples
    --------
    >>> prob = segment(open_mosaic("cube.zarr"), "unet.keras")  # doctest: +SKIP
    >>> prob.sel(x=slice(30, 31), y=slice(-10, -11)).compute()  # doctest: +SKIP
    """
    return _segment(
        _validate_mosaic(ds), _resolve_model(model_for_mosaic(ds, model)), depth=depth, batch_size=batch_size, chunks=chunks,
        tile=tile, value_range=value_range, nodata_fill=nodata_fill, tta=tta, precision=precision,
    )


def _segment(
    ds: xr.Dataset,
    spec: _ModelSpec,
    *,
    depth: int | None,
    batch_size: int,
    chunks: Any,
    tile: int | None,
    value_range: tuple[float, float] | str | None,
    nodata_fill: Any,
    fill_scaled: float | None = None,
    tta: int | None = None,
    workers: int | None = None,
    precision: str = "float32",
) -> xr.DataArray:
    """:func:`segment` of a validated mosaic with a resolved model; ``fill_scaled`` (0..1) overrides ``nodata_fill``."""
    if depth is None:
        depth = _round_up(receptive_margin(spec.kernel_size), MULTIPLE)
    depth = _positive_int(depth, "depth", allow_zero=True)
    batch_size = _positive_int(batch_size, "batch_size")
    if tile is not None:
        tile = _round_up(_positive_int(tile, "tile"), MULTIPLE)
    value_range = _check_value_range(value_range)
    # None: the model's own orientations (its file's tta), which its verifier learnt from
    tta = _check_tta(int((spec.metadata or {}).get("tta", 1)) if tta is None else tta)
    resolve_precision(precision)  # a bad value fails here, not in a task
    ir = ds["ir"]
    ny, nx = ir.shape
    if ny == 0 or nx == 0:
        raise MosaicError(f"the mosaic is empty (ir has shape {ir.shape})")
    grid = Grid.from_dataset(ds)
    if chunks is None and workers is None:
        workers = _cluster_workers()
    block_chunks = _block_chunks(ir, chunks, depth, workers or 1)
    data = ir.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=block_chunks)
    elif data.chunks != block_chunks:
        data = data.rechunk(block_chunks)
    # the grey scale of the whole mosaic, never of a block: chunk-invariant and seamless
    lo, hi = value_range if isinstance(value_range, tuple) else _lazy_value_range(data, value_range)
    fill = fill_scaled if fill_scaled is not None else _fill_value(nodata_fill, data, lo, hi)
    # no overlap along an axis that is one block (map_overlap refuses a depth beyond the array)
    axis_depth = tuple(depth if len(c) > 1 else 0 for c in block_chunks)
    # the whole mosaic's pooling grid: pad_to_multiple puts half the padding before the image
    anchor = ((-ny % MULTIPLE) // 2, (-nx % MULTIPLE) // 2)
    func = partial(
        _predict_block,
        model_path=spec.path,
        depth=axis_depth,
        halo=_round_up(depth, MULTIPLE),
        tile=tile,
        batch_size=batch_size,
        anchor=anchor,
        shape=(int(ny), int(nx)),
        tta=tta,
        precision=precision,
    )
    prob = da.map_overlap(
        func,
        data,
        depth={0: axis_depth[0], 1: axis_depth[1]},
        boundary="none",
        trim=False,  # the function returns just the core, so no halo pixels are predicted for nothing
        chunks=block_chunks,
        dtype=np.float32,
        meta=np.empty((0, 0), dtype=np.float32),  # never call the network on an empty array
        fill=fill,
        lo=lo,  # keywords of map_overlap, not of the partial: they may be lazy scalars
        hi=hi,
        name=f"crater-probability-{dask.base.tokenize(data, spec.path, _model_key(spec.path), depth, tile, batch_size, lo, hi, fill, tta, precision)}",
    )
    from . import __version__

    attrs = {
        "long_name": "crater probability",
        "units": "1",
        "model_name": spec.name,
        "model_file": spec.path,
        "model_saved_at": str(spec.metadata.get("saved_at", "")),
        "depth": depth,
        "tta": tta,
        "precision": precision,
        "nodata_fill": "mean" if isinstance(fill, da.Array) else float(fill),
        "nodata": "probability 0 where ir has no data",
        "marscraters_version": __version__,
    }
    if isinstance(value_range, tuple):
        attrs["value_range"] = [lo, hi]
    elif value_range == "auto":  # lazy: the catalog's verifier finds the same scale from the mosaic
        attrs["value_range"] = "auto"
    coords = {name: c for name, c in ir.coords.items() if set(c.dims) <= {"y", "x"}}
    out = xr.DataArray(prob, dims=("y", "x"), coords=coords, name=VARIABLE, attrs=attrs)
    import rioxarray  # noqa: F401  (registers .rio; imported here, not at start-up: it loads GDAL)

    out = out.rio.write_crs(grid.crs)
    return out.rio.write_transform(grid.transform)


# --------------------------------------------------------------------------------------------
# segment_to_zarr: block-by-block region writes that resume
# --------------------------------------------------------------------------------------------
def partial_store_path(out: str | os.PathLike) -> Path:
    """Where :func:`segment_to_zarr` builds ``out`` until it is complete (``.NAME.partial`` beside it)."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def unfinished_run(store: str | os.PathLike) -> str | None:
    """Why ``store`` is not a finished probability map, if it is the unfinished run of
    :func:`segment_to_zarr` (``.NAME.partial``), else None.

    Such a store reads like a finished one, with zeros where no block has been written yet, so
    a catalog made from it would silently miss the craters there.
    """
    store = Path(store)
    record = _read_record(store) if store.is_dir() else None
    if record is None or record.get("complete", True):
        return None
    blocks = (record.get("fingerprint") or {}).get("blocks") or []
    total = math.prod(len(c) for c in blocks) if len(blocks) == 2 else None
    done = len(_done_blocks(store))
    kept = f"{done} of {total} blocks" if total else f"{done} blocks"
    final = store.with_name(store.name[1:-len(".partial")]) if store.name.startswith(".") and \
        store.name.endswith(".partial") else None
    where = f" into {final}" if final is not None else ""
    return (f"{store} is an unfinished segment run{where} ({kept} written; the rest reads as 0): run the same "
            "`marscraters segment` command again to finish it (it resumes), then use the finished store")


def interrupted_message(out: str | os.PathLike, command: Sequence[str] | None = None) -> str:
    """What an interrupted :func:`segment_to_zarr` run into ``out`` kept, and how to resume it.

    ``command``: the command line that ran it (e.g. ``["marscraters", "segment", ...]``), to
    show the command that resumes (the same, without ``--overwrite`` and ``--no-resume``, which
    start over); without it, the message is for a Python caller.
    """
    out = Path(out)
    partial = partial_store_path(out)
    if not partial.is_dir():
        return "interrupted; no partial output was kept"
    blocks = ((_read_record(partial) or {}).get("fingerprint") or {}).get("blocks") or []
    total = math.prod(len(c) for c in blocks) if len(blocks) == 2 else None
    done = len(_done_blocks(partial))
    kept = f"{done} of {total} blocks" if total else f"{done} finished blocks"
    if out.exists():  # overwrite=True onto an existing store: resuming would need it to start over
        start_over = "--overwrite" if command else "overwrite=True"
        return (f"interrupted; {out} is unchanged, and the unfinished run ({kept}) is kept in {partial}. It cannot "
                f"be resumed onto an existing output: run it again with {start_over} to start over, or move {out} "
                "away and run it again without it to resume.")
    if command:
        again = [a for a in command if a not in ("--overwrite", "--no-resume")]
        how = (f"run this to resume where it stopped (the same mosaic, model and settings):\n  {shlex.join(again)}\n"
               "(--no-resume or --overwrite starts over)")
    else:
        how = ("call segment_to_zarr again with the same mosaic, model and settings (resume=True, overwrite=False) to "
               "resume where it stopped (resume=False starts over)")
    return f"interrupted; {kept} are done and kept in {partial}: {how}"


def _store_chunk(block_chunks: tuple[int, ...]) -> int:
    """A Zarr chunk side that every block boundary is a multiple of, at most 1024 when possible."""
    sizes = block_chunks[:-1] if len(block_chunks) > 1 else block_chunks
    g = 0
    for s in sizes:
        g = math.gcd(g, int(s))
    while g > _MAX_STORE_CHUNK and g % 2 == 0:
        g //= 2
    return g


def _input_digest(pixels: np.ndarray) -> str:
    """A digest of the grey levels a block was computed from (its core and halo): a resumed run
    reuses the block only if the mosaic still holds the same pixels there."""
    arr = np.ascontiguousarray(pixels)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def _write_block(block: np.ndarray, store: str, region: tuple[slice, slice], marker: str, digest: str = "") -> int:
    """Write one block into the store, then mark it done with the digest of its input (in that
    order, so a kill never skips one)."""
    import zarr

    array = zarr.open_array(store=store, path=VARIABLE, mode="r+")
    array[region] = block
    Path(marker).write_text(digest)
    return int(block.size)


def _with_halo(region: tuple[slice, slice], depth: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The pixels a block's network saw: its region of the mosaic grown by ``depth`` (clipped)."""
    return tuple(slice(max(0, r.start - depth), min(n, r.stop + depth)) for r, n in zip(region, shape))  # type: ignore[return-value]


def _changed_blocks(partial: Path, ir: Any, regions: dict[tuple[int, int], tuple[slice, slice]],
                    client: Any) -> list[tuple[int, int]]:
    """The done blocks of an unfinished run whose input pixels are no longer what they were computed from."""
    import dask

    keys = sorted(regions)
    digests = [dask.delayed(_input_digest)(ir[regions[k]]) for k in keys]
    now = client.compute(digests, sync=True) if client is not None else dask.compute(*digests)
    return [k for k, d in zip(keys, now) if (partial / _DONE_DIR / f"{k[0]}_{k[1]}").read_text().strip() != d]


def _fingerprint(ds: xr.Dataset, prob: xr.DataArray, spec: _ModelSpec, settings: dict[str, Any]) -> dict[str, Any]:
    grid = Grid.from_dataset(ds)
    return {
        "shape": [int(s) for s in prob.shape],
        "blocks": [list(map(int, c)) for c in prob.chunks],
        "transform": list(grid.transform)[:6],
        "crs": grid.crs.to_wkt(),
        "source": str(ds.attrs.get("source", "")),
        "model_sha256": spec.sha256(),
        **settings,
    }


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / _RECORD).read_text())
    except (OSError, ValueError):
        return None


def _write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path / f".{_RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path / _RECORD)


def _done_blocks(path: Path) -> set[tuple[int, int]]:
    done = set()
    folder = path / _DONE_DIR
    if folder.is_dir():
        for f in folder.iterdir():
            try:
                i, j = f.name.split("_")
                done.add((int(i), int(j)))
            except ValueError:
                continue
    return done


def segment_to_zarr(
    ds: xr.Dataset,
    out: str | os.PathLike,
    *,
    model: Any = None,
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
    client: "distributed.Client | None" = None,
    retries: int = 2,
    depth: int | None = None,
    batch_size: int = 4,
    chunks: Any = None,
    tile: int | None = None,
    value_range: tuple[float, float] | str | None = None,
    nodata_fill: float | Literal["mean"] | None = None,
    tta: int | None = None,
    precision: str = "float32",
) -> Path:
    """Segment a mosaic into a Zarr v3 store, block by block, resuming an interrupted run.

    The store is built at :func:`partial_store_path` (``.NAME.partial`` next to ``out``) and
    renamed onto ``out`` only when every block is written, so ``out`` is never half-written.
    The metadata and coordinates are written first (``to_zarr(compute=False)``); then each
    inference block is a task that writes its region straight into the store and leaves a
    marker file.  Run again after a crash or kill, it finds the unfinished store, checks that the
    mosaic, model and settings are the same, and computes only the blocks without a marker; the
    result is identical to an uninterrupted run.

    The store's Zarr chunks divide the blocks (each block writes whole chunks of its own): 256 to
    1024 px on a side, or a whole axis shorter than 256 px.  Only blocks given in ``chunks`` whose
    borders no 256-px grid divides (e.g. ``chunks=200, depth=0``) get smaller chunks, with a
    warning.

    Parameters
    ----------
    ds
        A Mosaic, typically from :func:`marscraters.mosaic.open_mosaic`.
    out
        The Zarr store to create (``*.zarr``).
    model, depth, batch_size, chunks, tile, value_range, nodata_fill, tta, precision
        As in :func:`segment`.  The grey scale (``value_range`` None or ``"auto"``) is found
        before the blocks, with its warning, and recorded; ``nodata_fill="mean"`` is computed
        once before the blocks (and recorded, so a resumed run uses the same value).
    overwrite
        Replace an existing ``out``, and start an unfinished run over.
    resume
        Continue an unfinished run of the same inputs (default).  False starts over.
    progress
        Show a progress bar over blocks and print the summary.
    client
        A ``distributed.Client`` (for example from :func:`marscraters.cluster.cluster`).  The
        model is preloaded on its workers (:func:`marscraters.cluster.preload_model`), blocks
        stream back as they finish, and failed tasks are retried ``retries`` times; a worker
        that dies is replaced and its blocks rerun.  Default: the active client if there is
        one, else dask's local threaded scheduler.
    retries
        Retries of a failed block on a distributed cluster.

    Returns
    -------
    pathlib.Path
        ``out``.  Its group attributes hold ``segment_summary`` (pixels, seconds, Mpx/s,
        blocks computed and resumed) and the model and settings; the summary is also logged.

    Raises
    ------
    OutputExistsError
        If ``out`` exists and ``overwrite`` is False, or is a file (a store never replaces a
        file, even with ``overwrite``); before any work.
    InvalidArgumentError
        If an unfinished run with *other* inputs or settings is found and neither
        ``overwrite`` nor ``resume=False`` was given; if ``out`` is the mosaic's store (or the
        model file), holds it or lies inside it, even with ``overwrite``.

    Examples
    --------
    >>> segment_to_zarr(open_mosaic("cube.zarr"), "pred.zarr", model="unet.keras")  # doctest: +SKIP
    PosixPath('pred.zarr')
    """
    import zarr
    from tqdm.auto import tqdm

    # the mosaic's own store (or the model file) as the output would be replaced by the result;
    # the result is a folder, which never replaces a file (a catalog given as --out by mistake)
    out = check_output(out, overwrite, folder=True, kind="zarr",
                       inputs=(ds, model if isinstance(model, (str, os.PathLike)) else None))
    ds = _validate_mosaic(ds)
    spec = _resolve_model(model_for_mosaic(ds, model))
    if client is None:
        client = active_client()
    # the grey scale, found (with its warning) before any block runs, and recorded
    lo, hi = mosaic_value_range(ds["ir"].data, _check_value_range(value_range), client=client, stacklevel=3)
    partial_path = partial_store_path(out)
    record = _read_record(partial_path) if partial_path.exists() else None
    start_over = overwrite or not resume

    # the no-data fill: a resumed "mean" run reuses the recorded value, so blocks stay identical
    fill_scaled = None
    if isinstance(nodata_fill, str) and nodata_fill == "mean":
        recorded = (record or {}).get("fingerprint", {}).get("nodata_fill_value")
        if recorded is not None and not start_over:
            fill_scaled = float(recorded)
        else:
            mean = _scaled_nanmean(ds["ir"].data, lo, hi)
            if isinstance(mean, da.Array):
                mean = client.compute(mean).result() if client is not None else mean.compute()
            fill_scaled = float(mean)
            if not math.isfinite(fill_scaled):
                fill_scaled = 0.5
    recorded_blocks = (record or {}).get("fingerprint", {}).get("blocks")
    if (chunks is None and not start_over and recorded_blocks and len(recorded_blocks) == 2
            and [sum(c) for c in recorded_blocks] == [int(v) for v in ds["ir"].shape]):
        # resume on the recorded automatic blocks, even if the cluster now has other workers
        chunks = tuple(tuple(int(v) for v in c) for c in recorded_blocks)
    prob = _segment(
        ds, spec, depth=depth, batch_size=batch_size, chunks=chunks, tile=tile,
        value_range=(lo, hi), nodata_fill=nodata_fill, fill_scaled=fill_scaled, tta=tta,
        workers=_cluster_workers(client) if chunks is None else None, precision=precision,
    )
    settings = {
        "depth": int(prob.attrs["depth"]),
        "tile": tile,
        "batch_size": int(batch_size),
        "tta": int(prob.attrs["tta"]),
        "precision": precision,
        "value_range": [lo, hi],
        "nodata_fill": nodata_fill if isinstance(nodata_fill, str) else (None if nodata_fill is None else float(nodata_fill)),
        "nodata_fill_value": float(prob.attrs["nodata_fill"]),
    }
    fingerprint = _fingerprint(ds, prob, spec, settings)

    if partial_path.exists():
        if start_over:
            _remove(partial_path)
        elif record is None or record.get("version") != _RECORD_VERSION:
            raise OutputExistsError(
                f"{partial_path} exists but is not an unfinished marscraters segment run; remove it, or pass "
                "overwrite=True (--overwrite) to replace it"
            )
        elif record.get("fingerprint") != fingerprint:
            changed = sorted(k for k in set(fingerprint) | set(record["fingerprint"]) if fingerprint.get(k) != record["fingerprint"].get(k))
            raise InvalidArgumentError(
                f"{partial_path} is an unfinished run of other inputs or settings (differs in {changed}); pass "
                "resume=False (--no-resume) or overwrite=True (--overwrite) to start over, or rerun with the "
                "same mosaic, model and settings to resume it"
            )
    ychunks, xchunks = prob.chunks
    if not partial_path.exists():
        zy, zx = _store_chunk(ychunks), _store_chunk(xchunks)
        small = [z for z, n in zip((zy, zx), prob.shape) if z < min(_MIN_STORE_CHUNK, n)]
        if small:
            # region writes must not share a Zarr chunk, so the chunks divide the blocks asked for
            # (an axis shorter than _MIN_STORE_CHUNK is one chunk: nothing to warn about)
            import warnings

            warnings.warn(
                f"writing {out.name} in {min(small)}-px Zarr chunks, because the blocks chunks=({ychunks[0]}, "
                f"{xchunks[0]}) (--chunk {ychunks[0]}) put block borders every {min(small)} px and each block is "
                "written into whole chunks of its own; small chunks make every later read of the store slow (many "
                f"files): give blocks that are a multiple of {_MIN_STORE_CHUNK} px, or the automatic ones (chunks=None; "
                "no --chunk on the command line)",
                stacklevel=2,
            )
        template = xr.Dataset(
            {VARIABLE: (("y", "x"), da.zeros(prob.shape, chunks=(zy, zx), dtype=np.float32), dict(prob.attrs))},
            coords={k: v for k, v in prob.coords.items()},
            attrs={"title": "crater probability", "source": str(ds.attrs.get("source", ""))},
        )
        template = template.rio.write_crs(prob.rio.crs).rio.write_transform(prob.rio.transform())
        for var in template.variables.values():
            var.encoding = {}
        template[VARIABLE].encoding["chunks"] = (zy, zx)
        partial_path.parent.mkdir(parents=True, exist_ok=True)
        template.to_zarr(partial_path, mode="w-", zarr_format=3, consolidated=False, compute=False)
        (partial_path / _DONE_DIR).mkdir()
        _write_record(partial_path, {"version": _RECORD_VERSION, "complete": False, "fingerprint": fingerprint})

    done = _done_blocks(partial_path)
    ystarts = np.cumsum((0,) + ychunks)
    xstarts = np.cumsum((0,) + xchunks)
    depth = settings["depth"]

    def core(i: int, j: int) -> tuple[slice, slice]:
        return slice(int(ystarts[i]), int(ystarts[i + 1])), slice(int(xstarts[j]), int(xstarts[j + 1]))

    ir = ds["ir"].data if isinstance(ds["ir"].data, da.Array) else da.from_array(np.asarray(ds["ir"].data))
    if done:
        # the fingerprint holds the grid, model and settings; the pixels are checked block by block
        changed = _changed_blocks(partial_path, ir, {k: _with_halo(core(*k), depth, prob.shape) for k in done},
                                  client)
        if changed:
            raise InvalidArgumentError(
                f"the mosaic's pixels under {len(changed)} of the {len(done)} blocks that {partial_path} already holds "
                f"(first: block {changed[0]}) are not those they were computed from: the mosaic changed since the "
                "unfinished run began. Pass resume=False (--no-resume) or overwrite=True (--overwrite) to start over")
    blocks = prob.data.to_delayed(optimize_graph=True)
    todo = [(i, j) for i in range(len(ychunks)) for j in range(len(xchunks)) if (i, j) not in done]
    store = str(partial_path)
    tasks = []
    for i, j in todo:
        region = core(i, j)
        marker = str(partial_path / _DONE_DIR / f"{i}_{j}")
        digest = dask.delayed(_input_digest)(ir[_with_halo(region, depth, prob.shape)])
        tasks.append(
            dask.delayed(_write_block, pure=False)(blocks[i, j], store, region, marker, digest,
                                                   dask_key_name=f"marscraters-write-{i}-{j}")
        )
    n_total = len(ychunks) * len(xchunks)
    if tasks:
        # load the model before the clock starts, so the summary measures segmentation
        if client is not None:
            from .cluster import preload_model

            preload_model(client, spec.path)
        else:
            _cached_model(spec.path)
    t0 = time.perf_counter()
    pixels = 0
    bar = tqdm(total=n_total, initial=n_total - len(todo), desc=f"segment {out.name}", unit="block", disable=not progress)
    try:
        if tasks and client is not None:
            from distributed import as_completed

            futures = client.compute(tasks, retries=retries)
            try:
                for fut in as_completed(futures):
                    pixels += fut.result()
                    bar.update(1)
            except BaseException:
                client.cancel(futures)
                raise
        elif tasks:
            from dask.callbacks import Callback

            def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
                if isinstance(key, str) and key.startswith("marscraters-write-"):
                    bar.update(1)

            with Callback(posttask=posttask):
                pixels = int(sum(dask.compute(*tasks)))
    except KeyboardInterrupt as exc:
        exc.add_note(interrupted_message(out))  # what was kept, and how to resume (the CLI says it its way)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0

    missing = {(i, j) for i in range(len(ychunks)) for j in range(len(xchunks))} - _done_blocks(partial_path)
    if missing:  # pragma: no cover - a write task that returned without its marker
        raise RuntimeError(f"blocks {sorted(missing)[:5]} of {partial_path} were not written; run again to resume")
    summary = {
        "pixels": int(pixels),
        "seconds": round(seconds, 3),
        "mpx_per_s": round(pixels / seconds / 1e6, 3) if seconds > 0 and pixels else 0.0,
        "blocks": n_total,
        "blocks_computed": len(todo),
        "blocks_resumed": n_total - len(todo),
        "scheduler": "distributed" if client is not None else str(dask.config.get("scheduler", "threads")),
    }
    group = zarr.open_group(store, mode="r+")
    group.attrs.update({"segment_summary": summary, "complete": True})
    # the store is complete: drop the bookkeeping (zarr warns about foreign files when listing)
    shutil.rmtree(partial_path / _DONE_DIR, ignore_errors=True)
    (partial_path / _RECORD).unlink(missing_ok=True)
    if out.exists():  # overwrite=True (checked above): swap, then remove the old store
        backup = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, backup)
        os.replace(partial_path, out)
        _remove(backup)
    else:
        os.replace(partial_path, out)
    message = _summary_text(out, summary, prob.shape)
    log.info(message)
    if progress:
        tqdm.write(message)
    return out


def _summary_text(out: Path, summary: Mapping[str, Any], shape: tuple[int, ...]) -> str:
    resumed = f", {summary['blocks_resumed']} resumed" if summary.get("blocks_resumed") else ""
    return (
        f"segmented {shape[0]} x {shape[1]} px into {out}: {summary['blocks_computed']} of {summary['blocks']} blocks "
        f"computed{resumed}, {summary['pixels'] / 1e6:.2f} Mpx in {summary['seconds']:.1f} s "
        f"({summary['mpx_per_s']:.2f} Mpx/s)"
    )


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def add_segment_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``segment`` subcommand to the ``marscraters`` command's subparsers."""
    s = subparsers.add_parser(
        "segment",
        help="crater probability of a whole mosaic cube, written block by block to Zarr (resumable)",
        description="Run the UNet over a mosaic cube with dask map_overlap and write crater_probability "
        "to a Zarr v3 store. An interrupted run resumes where it stopped.",
    )
    s.add_argument("cube", help="mosaic cube.zarr (from `marscraters ingest`)")
    s.add_argument("--out", required=True, help="output pred.zarr")
    s.add_argument("--model", help="model .keras file (default: the shipped model for the mosaic's pixel size: the "
                   "THEMIS model, or the model for fine imagery below 50 m)")
    s.add_argument("--gpus", help="start a local cluster: 'auto' (GPUs if any, else CPU) or a number of GPUs (0 = CPU)")
    s.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://head:8786")
    s.add_argument("--batch-size", type=int, default=4, help="windows per predict call (default 4)")
    s.add_argument("--chunk", type=int, help="inference block side in pixels (default: the fewest storage-aligned blocks whose 4096-px windows fit); "
                   "the output's Zarr chunks divide the blocks, so give a multiple of 256")
    s.add_argument("--tile", type=int, help="window core side when blocks are cut into windows")
    s.add_argument("--depth", type=int, help="overlap in pixels (default: the receptive field, 512 for 3x3)")
    s.add_argument("--tta", type=int, default=None, choices=[1, 2, 4, 8],
                   help="test-time augmentation: average this many orientations (flips, quarter turns); N times the "
                        "work (default: the model's own setting)")
    s.add_argument("--value-range", nargs="+", metavar="LOW HIGH|auto",
                   help="the grey levels that map to black and white, one scale for the whole mosaic, e.g. 0 255 or "
                        "0 65535, or 'auto' for a stretch from the mosaic's own levels (default: 0..255 for 8-bit "
                        "levels like THEMIS', else auto, with a warning; the same rule as `detect`)")
    s.add_argument("--nodata-fill", default=None, help="'mean' or a grey value for no-data pixels (default: mid-grey)")
    add_precision_argument(s)
    s.add_argument("--overwrite", action="store_true", help="replace an existing output")
    s.add_argument("--no-resume", dest="resume", action="store_false", help="start an unfinished run over")
    s.set_defaults(func=run_segment_cli)
    return s


def run_segment_cli(args: argparse.Namespace) -> int:
    """Run ``marscraters segment`` from parsed arguments; prints the summary."""
    from .mosaic import open_mosaic

    if args.gpus is not None and args.scheduler is not None:
        raise InvalidArgumentError("give --gpus (start a local cluster) or --scheduler (use an existing one), not both")
    fill: Any = args.nodata_fill
    if fill is not None and fill != "mean":
        try:
            fill = float(fill)
        except ValueError:
            raise InvalidArgumentError(f"--nodata-fill must be 'mean' or a number, got {fill!r}") from None
    from .cli import _value_range

    value_range = _value_range(args.value_range)
    check_output(args.out, args.overwrite, folder=True, kind="zarr", inputs=(args.cube, args.model))  # before a cluster starts
    ds = open_mosaic(args.cube)
    client = None
    if args.gpus is not None or args.scheduler is not None:
        from .cluster import cluster

        gpus: Any = "auto" if args.gpus in (None, "auto") else args.gpus
        if gpus != "auto":
            try:
                gpus = int(gpus)
            except ValueError:
                raise InvalidArgumentError(f"--gpus must be 'auto' or a number of GPUs, got {args.gpus!r}") from None
        # a cluster of its own logs errors only (-v: everything): the cancelled tasks and stopped
        # workers of a Ctrl-C are no news
        quiet = {} if args.scheduler is not None or getattr(args, "verbose", False) else {"silence_logs": logging.ERROR}
        client = cluster(gpus=gpus, scheduler=args.scheduler, model=args.model, **quiet)
    try:
        out = segment_to_zarr(
            ds, args.out, model=args.model, overwrite=args.overwrite, resume=args.resume,
            progress=not getattr(args, "quiet", False), client=client, batch_size=args.batch_size,
            chunks=args.chunk, tile=args.tile, depth=args.depth, value_range=value_range, tta=args.tta,
            nodata_fill=fill, precision=args.precision,
        )
    except KeyboardInterrupt:
        if client is not None:  # Ctrl-C: stop the cluster without distributed's tracebacks
            from .cluster import close_quietly

            close_quietly(client)
            client = None
        raise
    finally:
        if client is not None:
            cluster_obj = getattr(client, "cluster", None)
            client.close()
            if cluster_obj is not None:
                cluster_obj.close()
    import zarr

    summary = zarr.open_group(str(out), mode="r").attrs.get("segment_summary", {})
    print(json.dumps({"out": str(out), **summary}))
    return 0


def _main(argv: list[str] | None = None) -> int:
    """``python -m marscraters.segment CUBE --out OUT ...``: the subcommand on its own."""
    from .errors import MarsCratersError

    argv = list(sys.argv[1:] if argv is None else argv)
    quiet = any(a in ("-q", "--quiet") for a in argv)
    parser = argparse.ArgumentParser(prog="python -m marscraters.segment")
    sub = parser.add_subparsers(dest="command")
    add_segment_parser(sub)
    args = parser.parse_args(["segment", *(a for a in argv if a not in ("-q", "--quiet"))])
    args.quiet = quiet
    # like `marscraters`: our messages at INFO, third-party chatter (distributed) only at WARNING
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("marscraters").setLevel(logging.INFO)
    try:
        return run_segment_cli(args)
    except MarsCratersError as exc:
        print(f"marscraters segment: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted_message(args.out, [Path(sys.executable).name, "-m", "marscraters.segment", *argv]),
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    from marscraters.segment import _main as _package_main  # run the package's copy, not __main__'s

    sys.exit(_package_main())
