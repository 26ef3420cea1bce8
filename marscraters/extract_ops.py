"""The template finder's search in Keras ops, to run beside the network on its accelerator.

:func:`marscraters.extract.find_circles_template` searches each scale of a binarised map with a
bank of templates: one normalised cross-correlation per radius, local maxima above a threshold,
and a sub-pixel refinement.  On a CPU that is :func:`marscraters.extract._ncc_bank` and friends in
numpy and scipy.  On a GPU worker the network's maps are computed on the device and the finder
would keep the host's cores busy while the device idles, so :func:`template_search` computes the
same search with ``keras.ops`` (whichever backend Keras runs: JAX, TensorFlow or PyTorch), in one
compiled call per map and scale, and only the peaks and the few values the refinement reads
around them come back to the host.

The engine is chosen per call (``engine=`` of :func:`~marscraters.extract.find_circles_template`,
:data:`ENGINES`): ``"numpy"`` is the CPU path with its exact numbers; ``"keras"`` this module;
``"auto"`` (the default) this module where Keras computes on an accelerator, numpy elsewhere.

The two engines compute the same quantities with the same float32 formulas (an accelerator's
compiler may fuse some of them), except the Fourier transforms, which round differently (~1e-6): so
correlations differ by rounding only, and peaks by the ties such rounding breaks differently.  The
window sums are exact on both: the device takes a map only when float32 sums of it and of its square
are exact (:func:`exact_sums`: binary maps and their block means at fine scales); any other map of
a search, such as a coarse scale's block means, is searched by numpy even with ``engine="keras"``.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["ENGINES", "add_finder_engine_argument", "engine_options", "exact_sums", "resolve_engine",
           "template_search"]

#: The finder's engines: the host's numpy, Keras ops on the backend's device, or the one that fits.
ENGINES: tuple[str, ...] = ("auto", "numpy", "keras")
#: Peaks per radius fetched from the device in the first pass; a map with more is searched again
#: with room for all of them (the next power of two).
FIRST_PEAKS: int = 128


def resolve_engine(engine: str = "auto") -> str:
    """The finder's engine for ``engine``: ``"numpy"`` or ``"keras"``.

    ``"auto"`` is ``"keras"`` where an NVIDIA GPU is visible and Keras' backend computes on it, so
    that the search runs beside the network, and ``"numpy"`` elsewhere (on a CPU numpy's path is the
    faster one, and keeps its exact numbers).  The answer is found once per process, so every map
    of a run takes the same engine.
    """
    if engine not in ENGINES:
        raise InvalidArgumentError(f"engine={engine!r} is not a circle-finder engine; use one of "
                                   f"{', '.join(map(repr, ENGINES))} (CLI: --finder-engine).")
    if engine != "auto":
        return engine
    return "keras" if _accelerated() else "numpy"


def add_finder_engine_argument(parser: Any) -> None:
    """Add the ``--finder-engine`` flag of the commands that find craters (``detect``, ``catalog``)."""
    parser.add_argument("--finder-engine", choices=list(ENGINES), default="auto",
                        help="where the circle finder's template search runs: 'keras' on the Keras backend's device "
                             "(beside the network on a GPU), 'numpy' on the CPU, 'auto' (default) 'keras' where Keras "
                             "computes on a visible GPU, else 'numpy'; template-matching models only")


def engine_options(engine: str) -> dict[str, str]:
    """The circle-finder options that ask for ``engine`` (none for ``"auto"``, the finder's default,
    so that a model whose finder has no engine -- Hough, for ring targets -- still runs)."""
    return {} if engine == "auto" else {"engine": engine}


@functools.lru_cache(maxsize=1)
def _accelerated() -> bool:
    # A process's devices do not change: ask once, so that every map of a run takes the same engine.
    # Keras is asked only where a GPU is visible: a CPU-only process (a catalog worker that runs no
    # network) does not pay Keras' import in time and memory for the answer.
    from .cluster import detect_gpus

    if detect_gpus() == 0:
        return False
    from .model import _on_accelerator

    return _on_accelerator()


def template_search(img: np.ndarray, templates: Sequence[np.ndarray], radii: np.ndarray,
                    threshold: float) -> np.ndarray:
    """Circles ``(n, 4)`` ``[x, y, radius, score]`` of one map: the numpy search, in Keras ops.

    What :func:`marscraters.extract.find_circles_template` does for one tile of one scale: the
    correlation of ``img`` with each template (as :func:`marscraters.extract._ncc_bank`), its
    local maxima above ``threshold`` at least ``radius // 2`` apart (as
    :func:`marscraters.extract._peak_local_max`), and their sub-pixel position and radius (as
    :func:`marscraters.extract._refine` with ``to_ends``).  Rows come radius by radius, each
    radius's peaks by decreasing score, as from the numpy search.

    Parameters
    ----------
    img
        2-D float32 map whose sums are exact in float32 (a binary map or its block means).
    templates
        One square template of odd side per radius (:func:`marscraters.extract._template`).
    radii
        The radii of the templates, increasing.
    threshold
        Minimum correlation of a peak.

    Returns
    -------
    numpy.ndarray
        ``(n, 4)`` float64 rows ``[x, y, radius, score]`` in the map's pixel index coordinates.
    """
    img = np.ascontiguousarray(img, dtype=np.float32)
    if img.ndim != 2 or len(templates) != len(radii) or not len(radii):
        raise InvalidArgumentError("template_search needs a 2-D map and one template per radius")
    if not exact_sums(img):
        raise InvalidArgumentError("template_search needs a map whose float32 window sums, and those of its "
                                   "square, are exact (a binary map or its block means at fine scales); use "
                                   "engine='numpy' for others")
    return _search_map(img, templates, radii, threshold)


def _search_map(img: np.ndarray, templates: Sequence[np.ndarray], radii: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`template_search` of a 2-D float32 map already known to pass :func:`exact_sums`."""
    from .extract import _neighbour_indices, _refine_samples, _thin_peaks

    radii = np.asarray(radii, dtype=float)
    ny, nx = img.shape
    ops = _keras().ops
    bank = _bank(tuple(np.asarray(t, dtype=np.float32) for t in templates), ny, nx)
    mds = tuple(max(1, int(r // 2)) for r in radii)
    k_peaks = min(FIRST_PEAKS, ny * nx)
    img_t, threshold_t = ops.convert_to_tensor(img), ops.convert_to_tensor(np.float32(threshold))
    while True:
        counts, values, index, xv, yv, prof = (ops.convert_to_numpy(a) for a in _core()(
            img_t, bank.spec_re, bank.spec_im, bank.tmean, bank.ssd, bank.volume, bank.rows_lo, bank.rows_hi,
            bank.cols_lo, bank.cols_hi, threshold_t, mds=mds, k_peaks=k_peaks))
        most = int(counts.max())
        if most <= k_peaks:
            break
        k_peaks = min(1 << (most - 1).bit_length(), ny * nx)  # room for every peak of the fullest radius
    available = np.ones(len(radii), dtype=bool)
    out = []
    for k, r in enumerate(radii):
        n = int(counts[k])
        if n == 0:
            continue
        # the peaks in raster order, as numpy finds them, then sorted and thinned as there
        order = np.argsort(index[k, :n], kind="stable")
        flat, vals = index[k, :n][order], values[k, :n][order]
        rows, cols = np.divmod(flat, nx)
        peaks = _thin_peaks(rows, cols, vals, mds[k])
        at = order[np.searchsorted(flat, peaks[:, 0] * nx + peaks[:, 1])]
        cs, rs = _neighbour_indices(peaks[:, 0], peaks[:, 1], ny, nx)
        xyr = _refine_samples(radii, k, cs, xv[k, at], rs, yv[k, at], prof[k, at], available, to_ends=True)
        out.append(np.column_stack([xyr, values[k, at]]))
    return np.concatenate(out) if out else np.empty((0, 4))


def exact_sums(img: np.ndarray) -> bool:
    """Whether float32 sums of ``img`` and of its square are exact, so that the device's float32
    summed-area tables give the numpy engine's window sums (which turn to float64 where they are
    not: block means at coarse scales, whose squares lie on a finer grid)."""
    from .extract import _float32_sums_exact

    return _float32_sums_exact(img) and _float32_sums_exact(img * img)


class _Bank:
    """A template bank laid out for one map size: spectra and window indices, on the device."""

    def __init__(self, templates: tuple[np.ndarray, ...], ny: int, nx: int) -> None:
        from scipy import fft as sfft

        keras = _keras()
        my = max(t.shape[0] for t in templates)
        mx = max(t.shape[1] for t in templates)
        # the numpy engine's transform size: room for the largest template, so that the circular
        # correlation wraps onto zeros only
        ly = sfft.next_fast_len(ny + my - 1, real=True)
        lx = sfft.next_fast_len(nx + mx - 1, real=True)
        wrapped = np.zeros((len(templates), ly, lx), np.float32)
        for k, tpl in enumerate(templates):
            m, n = tpl.shape
            # the template's centre (m // 2, n // 2) at the origin, wrapped around
            wrapped[k, :m, :n] = tpl
            wrapped[k] = np.roll(wrapped[k], (-(m // 2), -(n // 2)), axis=(0, 1))
        zeros = keras.ops.zeros_like(keras.ops.convert_to_tensor(wrapped))
        re, im = keras.ops.fft2((keras.ops.convert_to_tensor(wrapped), zeros))
        # the conjugate: the product with the map's spectrum is then a correlation
        self.spec_re, self.spec_im = re, keras.ops.negative(im)
        # each template's mean and sum of squared deviations, with numpy's float32 operations (as
        # skimage's match_template and the numpy engine)
        tmean = np.array([t.mean() for t in templates], np.float32)
        ssd = np.array([np.sum((t - t.mean()) ** 2) for t in templates], np.float32)
        volume = np.array([t.size for t in templates], np.float32)
        # window sums read off the summed-area table I (ny + 1, nx + 1) at clipped rows and columns:
        # the window of a template of side m at y spans y - m // 2 .. y - m // 2 + m
        ys, xs = np.arange(ny), np.arange(nx)
        sides_y = np.array([t.shape[0] for t in templates])[:, None]
        sides_x = np.array([t.shape[1] for t in templates])[:, None]
        rows_lo = np.clip(ys - sides_y // 2, 0, ny).astype(np.int32)
        rows_hi = np.clip(ys - sides_y // 2 + sides_y, 0, ny).astype(np.int32)
        cols_lo = np.clip(xs - sides_x // 2, 0, nx).astype(np.int32)
        cols_hi = np.clip(xs - sides_x // 2 + sides_x, 0, nx).astype(np.int32)
        # on the device once, with the spectra: every map of this size reuses them
        (self.tmean, self.ssd, self.volume, self.rows_lo, self.rows_hi, self.cols_lo,
         self.cols_hi) = (keras.ops.convert_to_tensor(a) for a in (tmean, ssd, volume, rows_lo, rows_hi, cols_lo,
                                                                  cols_hi))
        self.nbytes = 2 * wrapped.nbytes


# Template banks reused between calls, as the numpy engine's spectra: a detect run or a mosaic's
# blocks search the same radii on maps of the same few sizes.
_BANKS: OrderedDict[tuple, _Bank] = OrderedDict()
_BANKS_LOCK = threading.Lock()
#: Bytes of template spectra kept on the device between calls (least recently used dropped first).
BANK_CACHE_BYTES = 256 * 2**20


def _bank(templates: tuple[np.ndarray, ...], ny: int, nx: int) -> _Bank:
    from .extract import _lru_get, _lru_put

    key = (ny, nx, tuple((t.shape, t.tobytes()) for t in templates))
    bank = _lru_get(_BANKS, _BANKS_LOCK, key)
    if bank is None:
        bank = _Bank(templates, ny, nx)
        _lru_put(_BANKS, _BANKS_LOCK, key, bank, BANK_CACHE_BYTES)
    return bank


def _keras() -> Any:
    from .model import _keras as keras

    return keras()


def _search(img: Any, spec_re: Any, spec_im: Any, tmean: Any, ssd: Any, volume: Any, rows_lo: Any, rows_hi: Any,
            cols_lo: Any, cols_hi: Any, threshold: Any, *, mds: tuple[int, ...], k_peaks: int) -> tuple:
    """The device's part of :func:`template_search`: correlations, peaks and the values around them.

    Returns the number of peaks per radius ``(R,)``, the ``k_peaks`` highest peaks' values and flat
    indices ``(R, K)``, the values at their clipped column and row neighbours ``(R, K, 3)`` each,
    and every radius's correlation at them ``(R, K, R)``.
    """
    ops = _keras().ops
    ny, nx = img.shape
    n_r, ly, lx = spec_re.shape
    # the correlation of the zero-padded map with every template: one transform of the map
    padded = ops.pad(img, [[0, ly - ny], [0, lx - nx]])
    f_re, f_im = ops.fft2((padded, ops.zeros_like(padded)))
    p_re = f_re[None] * spec_re - f_im[None] * spec_im
    p_im = f_re[None] * spec_im + f_im[None] * spec_re
    xcorr = ops.ifft2((p_re, p_im))[0][:, :ny, :nx]

    def window_sums(values: Any) -> Any:
        # the summed-area table, then the four corners of every template's window at every pixel
        table = ops.cumsum(ops.cumsum(ops.pad(values, [[1, 0], [1, 0]]), axis=0), axis=1)

        def corner(rows: Any, cols: Any) -> Any:
            picked = ops.take(table, rows, axis=0)  # (R, ny, nx + 1)
            return ops.take_along_axis(picked, ops.broadcast_to(cols[:, None, :], (n_r, ny, nx)), axis=2)

        s = corner(rows_hi, cols_hi) - corner(rows_lo, cols_hi)
        s = s - corner(rows_hi, cols_lo)
        return s + corner(rows_lo, cols_lo)

    s1 = window_sums(img)
    s2 = window_sums(img * img)
    # numerator and denominator with the numpy engine's float operations, in its order
    response = xcorr - s1 * tmean[:, None, None]
    denominator = s2 - (s1 * s1) / volume[:, None, None]
    denominator = ops.sqrt(ops.maximum(denominator * ssd[:, None, None], 0.0))
    eps = float(np.finfo(np.float32).eps)
    # where the window is (nearly) constant the response is 0
    ncc = response / ops.where(denominator <= eps, float("inf"), denominator)

    # local maxima: a pixel above the threshold that equals the maximum of its window (clipped to
    # the map); none in a constant map.  Radii of one spacing share one pooling call.
    above = ncc > threshold
    window_max = [None] * n_r
    for md in sorted(set(mds)):
        ks = [k for k, m in enumerate(mds) if m == md]
        stack = ops.stack([ncc[k] for k in ks])[..., None]
        pooled = ops.max_pool(stack, pool_size=2 * md + 1, strides=1, padding="same",
                                data_format="channels_last")[..., 0]
        for j, k in enumerate(ks):
            window_max[k] = pooled[j]
    keep = ops.logical_and(above, ncc == ops.stack(window_max))
    constant = ops.max(ncc, axis=(1, 2)) == ops.min(ncc, axis=(1, 2))
    # (a one-pixel map is no constant image to skimage: its pixel is a peak)
    trivial = ops.logical_and(constant, ops.all(above, axis=(1, 2))) if ny * nx > 1 else ops.zeros_like(constant)
    keep = ops.logical_and(keep, ops.logical_not(trivial)[:, None, None])
    counts = ops.sum(ops.cast(keep, "int32"), axis=(1, 2))

    flat = ops.reshape(ncc, (n_r, ny * nx))
    scored = ops.where(ops.reshape(keep, (n_r, ny * nx)), flat, float("-inf"))
    values, index = ops.top_k(scored, k_peaks, sorted=True)
    index = ops.cast(index, "int32")
    r, c = index // nx, index % nx
    left, right = ops.maximum(c - 1, 0), ops.minimum(c + 1, nx - 1)
    up, down = ops.maximum(r - 1, 0), ops.minimum(r + 1, ny - 1)

    def at(rows: Any, cols: Any) -> Any:
        return ops.take_along_axis(flat, rows * nx + cols, axis=1)

    centre = at(r, c)
    xv = ops.stack([at(r, left), centre, at(r, right)], axis=-1)
    yv = ops.stack([at(up, c), centre, at(down, c)], axis=-1)
    prof = ops.transpose(ops.reshape(ops.take(flat, ops.reshape(index, (-1,)), axis=1), (n_r, n_r, k_peaks)),
                         (1, 2, 0))
    return counts, values, index, xv, yv, prof


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    """:func:`_search` compiled for Keras' backend (one compilation per map size and radius set)."""
    backend = _keras().backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(_search, static_argnames=("mds", "k_peaks"))
    if backend == "tensorflow":
        import tensorflow as tf

        # Python arguments (mds, k_peaks) are part of the trace's signature, as jax's static ones
        return tf.function(_search, jit_compile=False)
    return _search

