"""The Symmetric UNet of DeLatte et al. (2019), padding helpers, tiled prediction and model files.

The network (paper section 2.2) is a UNet whose output has the size of its input:

* 7 levels **down**, each ``Conv2D`` (``same`` padding, ReLU) -> ``Dropout`` -> ``AveragePooling2D(2)``;
* the **bottom**: ``Conv2D`` -> ``Dropout``;
* 7 levels **up**, each ``UpSampling2D(2)`` -> ``Conv2D`` -> ``Dropout`` -> ``Add`` with the output
  of the down-path ``Conv2D`` of the same size;
* the **output**: a 1x1 ``Conv2D`` with a sigmoid, one channel (crater probability).

The filters are ``[16, 24, 32, 48, 64, 96, 128, 128, 128, 96, 64, 48, 32, 24, 16]`` (7 down, the
bottom, 7 up) times ``filter_multiple``; the default model has exactly 731,473 parameters.

Everything here is written against Keras 3 layers and ``keras.ops`` only, so the model runs under
any Keras backend (TensorFlow, JAX, PyTorch).  Keras itself is imported lazily: the padding
helpers, :func:`receptive_field` and :func:`normalise_image` work without importing any deep
learning framework.

Because of the 7 poolings, the spatial size of an input must be a multiple of :data:`MULTIPLE`
(128).  :func:`pad_to_multiple` and :func:`crop` are *the* padding helpers of the project, and
:func:`predict_image` uses them to predict an image of any size in aligned, overlapping tiles.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import threading
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_path
from .errors import InvalidArgumentError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "MULTIPLE",
    "DEPTH",
    "DEFAULT_FILTERS",
    "DEFAULT_KERNEL_SIZE",
    "DEFAULT_DROPOUT",
    "DEFAULT_WEIGHTS",
    "FINE_WEIGHTS",
    "FINE_PIXEL_SIZE_M",
    "default_model_for",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "SUPPORTED_BACKENDS",
    "check_backend",
    "scaled_filters",
    "dropout_schedule",
    "symmetric_unet",
    "widen_unet",
    "receptive_field",
    "receptive_margin",
    "pad_to_multiple",
    "crop",
    "normalise_image",
    "guess_value_range",
    "grey_sample",
    "read_grey_sample",
    "stretch_range",
    "mosaic_value_range",
    "predict_image",
    "predict_windows",
    "TTA_ORDERS",
    "staged_model",
    "staged_margin",
    "save_model",
    "load_model",
    "PRECISIONS",
    "resolve_precision",
    "with_precision",
    "read_model_metadata",
    "describe_model",
    "flops_per_pixel",
]

#: Number of poolings on the way down (and upsamplings on the way up).
DEPTH: int = 7
#: Input sizes must be multiples of this (2 ** DEPTH).
MULTIPLE: int = 2**DEPTH
#: Filters of the paper's default network: 7 down, the bottom, 7 up.
DEFAULT_FILTERS: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128, 128, 128, 96, 64, 48, 32, 24, 16)
#: The paper's default convolution kernel size.
DEFAULT_KERNEL_SIZE: int = 3
#: Dropout rate of the first level that has dropout (level 1) and of the bottom (level 7).
DEFAULT_DROPOUT: tuple[float, float] = (0.2, 0.5)
#: Where :func:`load_model` looks for the shipped weights when no path is given.
DEFAULT_WEIGHTS: Path = Path(__file__).resolve().parent / "weights" / "symmetric_unet.keras"
#: The shipped model for fine imagery (CTX, HRSC: trained on THEMIS and CTX), which
#: :func:`default_model_for` picks for pixels finer than :data:`FINE_PIXEL_SIZE_M`.
FINE_WEIGHTS: Path = DEFAULT_WEIGHTS.parent / "fine_unet.keras"
#: Pixel sizes (metres) under this go to :data:`FINE_WEIGHTS` when no model is named: between
#: CTX/HRSC (5-25 m) and THEMIS (100 m); chosen by ``benchmarks/splits/cameras_rule.md``.
FINE_PIXEL_SIZE_M = 50.0
# pixel sizes this close (relative) to FINE_PIXEL_SIZE_M count as on it (THEMIS side)
_FINE_TOLERANCE = 1e-6
# the attribute load_model sets on a model: its file's metadata
_METADATA_ATTR = "_marscraters_metadata"
#: Identifies a model file written by :func:`save_model`.
MODEL_FORMAT: str = "marscraters-symmetric-unet"
#: Version of the model-file metadata layout; files with a newer version are refused.
MODEL_FORMAT_VERSION: int = 1
#: Keras backends that can both train and run the model.
SUPPORTED_BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch")
# Backends Keras 3 knows; "numpy" and "openvino" can only run inference.
_KNOWN_BACKENDS: tuple[str, ...] = SUPPORTED_BACKENDS + ("numpy", "openvino")
_BACKEND_PACKAGE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy", "openvino": "openvino"}
# name of the metadata entry that save_model adds to the .keras zip archive
_METADATA_ENTRY = "marscraters.json"
_RESERVED_METADATA = (
    "format", "format_version", "marscraters_version", "keras_version", "backend", "saved_at", "architecture",
    "weights_dtype",
)
_WEIGHTS_ENTRY = "model.weights.h5"  # where a .keras archive keeps its variables


# --------------------------------------------------------------------------------------------
# backend
# --------------------------------------------------------------------------------------------
def check_backend() -> str:
    """Import Keras and return the name of its backend, or raise a :class:`ModelError` that says how to fix it.

    The backend comes from the ``KERAS_BACKEND`` environment variable, else from
    ``~/.keras/keras.json``, else it is TensorFlow.  Keras only reads it once per process.

    Returns
    -------
    str
        ``"tensorflow"``, ``"jax"``, ``"torch"`` (or ``"numpy"`` / ``"openvino"``, which can only
        run inference).

    Raises
    ------
    ModelError
        If ``KERAS_BACKEND`` names an unknown backend, or the backend's package is not installed.

    Examples
    --------
    >>> check_backend() in SUPPORTED_BACKENDS  # doctest: +SKIP
    True
    """
    import importlib.util
    import sys

    requested = os.environ.get("KERAS_BACKEND")
    if "keras" not in sys.modules and requested is not None:
        if requested not in _KNOWN_BACKENDS:
            raise ModelError(
                f"KERAS_BACKEND={requested!r} is not a Keras backend. Set it to one of "
                f"{', '.join(SUPPORTED_BACKENDS)} (for example `export KERAS_BACKEND=tensorflow`), "
                "or unset it to use TensorFlow."
            )
        if importlib.util.find_spec(_BACKEND_PACKAGE[requested]) is None:
            raise ModelError(
                f"KERAS_BACKEND={requested!r} but the {_BACKEND_PACKAGE[requested]!r} package is not "
                f"installed. Install it (pip install {_BACKEND_PACKAGE[requested]}), or unset "
                "KERAS_BACKEND to use TensorFlow."
            )
    try:
        keras = _import_keras_quietly()
    except (ImportError, ValueError) as exc:  # keras raises ValueError for a bad backend name
        raise ModelError(
            f"Keras cannot start its backend ({exc}). Check KERAS_BACKEND (now {requested!r}) and "
            "the 'backend' entry of ~/.keras/keras.json; one of "
            f"{', '.join(SUPPORTED_BACKENDS)} must be installed."
        ) from exc
    return str(keras.backend.backend())


# TensorFlow's C++ start-up writes these notices straight to file descriptor 2, before
# TF_CPP_MIN_LOG_LEVEL can act on them; they say nothing a user can act on
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
)


def _drop_startup_noise(text: str) -> str:
    """``text`` without the lines of TensorFlow's start-up notices (:data:`_STARTUP_NOISE`)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if line.strip() and not any(noise in line for noise in _STARTUP_NOISE))


def _import_keras_quietly() -> Any:
    """``import keras``, with TensorFlow's start-up notices on stderr dropped and anything else
    written there during the import passed on."""
    import sys
    import tempfile

    if "keras" in sys.modules:
        import keras

        return keras
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (some notebooks, services)
        import keras

        return keras
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import keras
        finally:
            sys.stderr.flush()  # Python-level warnings of the import are in the file too
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = _drop_startup_noise(caught.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
    return keras


def _keras() -> Any:
    check_backend()
    import keras

    return keras


# --------------------------------------------------------------------------------------------
# architecture
# --------------------------------------------------------------------------------------------
def _check_kernel_size(kernel_size: Any) -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1 or kernel_size % 2 == 0:
        raise InvalidArgumentError(
            f"kernel_size must be a positive odd integer (the paper uses 3, 7 and 11), got {kernel_size!r}"
        )
    return int(kernel_size)


def scaled_filters(filter_multiple: float = 1.0) -> tuple[int, ...]:
    """The 15 filter counts of the network for a given ``filter_multiple``.

    Each default count is multiplied by ``filter_multiple`` and rounded half up to an integer,
    with a minimum of 1.  The paper's multiples (1/2, 1 and 2) give exact integers.

    Examples
    --------
    >>> scaled_filters(0.5)
    (8, 12, 16, 24, 32, 48, 64, 64, 64, 48, 32, 24, 16, 12, 8)
    """
    if isinstance(filter_multiple, bool) or not isinstance(filter_multiple, (int, float, np.number)) or not (
        math.isfinite(filter_multiple) and filter_multiple > 0
    ):
        raise InvalidArgumentError(f"filter_multiple must be a positive number, got {filter_multiple!r}")
    return tuple(max(1, int(math.floor(f * float(filter_multiple) + 0.5))) for f in DEFAULT_FILTERS)


def dropout_schedule(dropout: tuple[float, float] | Sequence[float] | float = DEFAULT_DROPOUT) -> tuple[float, ...]:
    """Dropout rate of each level, from level 0 (full resolution) to level 7 (the bottom).

    The paper: "no dropout for the first of the down sections, but increasing from 0.2 to 0.5 at
    the bottom of the U".  With ``dropout=(first, bottom)`` level 0 has no dropout and levels
    1..7 rise linearly from ``first`` to ``bottom``: for the default (0.2, 0.5) that is
    ``0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5``.  The up path mirrors the down path: the up
    level that works at the resolution of down level ``l`` uses the same rate, so the last up
    level (full resolution) has no dropout either.

    Parameters
    ----------
    dropout
        ``(first, bottom)``; or 8 explicit rates for levels 0..7; or a single number (0 turns
        dropout off).

    Examples
    --------
    >>> dropout_schedule((0.2, 0.5))
    (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
    """
    if isinstance(dropout, (int, float, np.number)) and not isinstance(dropout, bool):
        rates = [0.0] + [float(dropout)] * DEPTH
    else:
        try:
            values = [float(v) for v in dropout]  # type: ignore[union-attr]
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"dropout must be (first, bottom), 8 rates or a number, got {dropout!r}") from exc
        if len(values) == 2:
            first, bottom = values
            rates = [0.0] + [round(first + (bottom - first) * i / (DEPTH - 1), 10) for i in range(DEPTH)]
        elif len(values) == DEPTH + 1:
            rates = values
        else:
            raise InvalidArgumentError(
                f"dropout must be (first, bottom) or {DEPTH + 1} rates (levels 0..{DEPTH}), got {len(values)} values"
            )
    if not all(0.0 <= r < 1.0 for r in rates):
        raise InvalidArgumentError(f"dropout rates must lie in [0, 1), got {rates}")
    return tuple(rates)


def _check_input_shape(input_shape: Any) -> tuple[int | None, int | None, int]:
    try:
        h, w, c = input_shape
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"input_shape must be (height, width, channels), got {input_shape!r}") from exc
    for name, size in (("height", h), ("width", w)):
        if size is not None and (int(size) <= 0 or int(size) % MULTIPLE):
            raise InvalidArgumentError(
                f"input_shape {name} must be None or a multiple of {MULTIPLE} (the network pools {DEPTH} times), "
                f"got {size}; pad images with marscraters.model.pad_to_multiple"
            )
    if c is None or int(c) < 1:
        raise InvalidArgumentError(f"input_shape channels must be a positive integer, got {c!r}")
    return (None if h is None else int(h), None if w is None else int(w), int(c))


def symmetric_unet(
    kernel_size: int = DEFAULT_KERNEL_SIZE,
    filter_multiple: float = 1.0,
    dropout: tuple[float, float] | Sequence[float] | float = DEFAULT_DROPOUT,
    input_shape: tuple[int | None, int | None, int] = (None, None, 1),
    name: str | None = None,
) -> "keras.Model":
    """Build the Symmetric UNet of DeLatte et al. (2019), section 2.2.

    Parameters
    ----------
    kernel_size
        Side of the square convolution kernels (the paper tests 3, 7 and 11).  The 1x1 output
        convolution is not affected.
    filter_multiple
        Multiplies every filter count (the paper tests 0.5, 1 and 2); see :func:`scaled_filters`
        for the rounding.
    dropout
        See :func:`dropout_schedule`.  Dropout is active only in training.
    input_shape
        ``(height, width, channels)``; height and width may be None (any multiple of 128).
    name
        Model name; default ``symmetric_unet_k{kernel_size}_f{filter_multiple}``.

    Returns
    -------
    keras.Model
        Uncompiled; input ``(batch, H, W, C)`` float32, output ``(batch, H, W, 1)`` in 0..1.

    Examples
    --------
    >>> model = symmetric_unet()  # doctest: +SKIP
    >>> model.count_params()  # doctest: +SKIP
    731473
    """
    kernel_size = _check_kernel_size(kernel_size)
    filters = scaled_filters(filter_multiple)
    rates = dropout_schedule(dropout)
    input_shape = _check_input_shape(input_shape)
    keras = _keras()
    layers = keras.layers
    fmt = "channels_last"  # explicit, so a user's keras.json image_data_format cannot flip it

    def conv(x: Any, n: int, label: str) -> Any:
        return layers.Conv2D(n, kernel_size, padding="same", activation="relu", data_format=fmt, name=f"{label}_conv")(x)

    def drop(x: Any, rate: float, label: str) -> Any:
        # a zero-rate Dropout is a no-op; leaving it out keeps the graph and model summary honest
        return layers.Dropout(rate, name=f"{label}_dropout")(x) if rate > 0 else x

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    skips = []
    for level in range(DEPTH):
        c = conv(x, filters[level], f"down{level}")
        skips.append(c)  # the Add on the way up uses the Conv2D output, before dropout
        x = drop(c, rates[level], f"down{level}")
        x = layers.AveragePooling2D(pool_size=2, data_format=fmt, name=f"down{level}_pool")(x)
    x = conv(x, filters[DEPTH], "bottom")
    x = drop(x, rates[DEPTH], "bottom")
    for level in reversed(range(DEPTH)):
        x = layers.UpSampling2D(size=2, data_format=fmt, interpolation="nearest", name=f"up{level}_upsample")(x)
        x = conv(x, filters[2 * DEPTH - level], f"up{level}")
        x = drop(x, rates[level], f"up{level}")
        x = layers.Add(name=f"up{level}_add")([x, skips[level]])
    outputs = layers.Conv2D(1, 1, padding="same", activation="sigmoid", data_format=fmt, name="output_conv")(x)
    if name is None:
        name = f"symmetric_unet_k{kernel_size}_f{float(filter_multiple):g}"
    return keras.Model(inputs, outputs, name=name)


def _unet_rates(model: Any) -> tuple[float, ...]:
    """The 8 dropout rates (levels 0..7) of a :func:`symmetric_unet`, read from its layer names."""
    names = {layer.name: layer for layer in model.layers}
    labels = [f"down{level}" for level in range(DEPTH)] + ["bottom"]
    return tuple(float(getattr(names.get(f"{label}_dropout"), "rate", 0.0)) for label in labels)


def widen_unet(
    model: "keras.Model", filter_multiple: float, *, noise: float = 0.01, seed: int = 0
) -> "keras.Model":
    """A wider copy of a trained :func:`symmetric_unet` that computes the same map.

    The Net2WiderNet construction (Chen, Goodfellow & Shlens 2016): each new filter copies a
    randomly chosen old filter of its layer, and the next layer divides its weights on every
    copied channel by the number of copies, so the wider network starts where the trained one is
    and fine-tuning (:func:`marscraters.train` with ``model=``, ``marscraters train --init``) can
    use the extra filters.  A down level's convolution and the up level it is added to share one
    channel mapping, so the additive skips stay aligned.

    Parameters
    ----------
    model
        A :func:`symmetric_unet` (any kernel size and filter multiple), e.g. ``load_model()``.
    filter_multiple
        The new filter multiple (:func:`scaled_filters`); every level must get at least as many
        filters as ``model`` has.
    noise
        Standard deviation of Gaussian noise added to the copied kernels, relative to each
        layer's kernel standard deviation, so that the copies of a filter drift apart in training
        (dropout alone gives them different gradients only where it is active).  0 keeps the map
        exactly (up to float rounding).
    seed
        Seed for the choice of copied filters and the noise.

    Returns
    -------
    keras.Model
        Uncompiled, with ``model``'s kernel size and dropout rates.

    Examples
    --------
    >>> wide = widen_unet(load_model(), 1.5)  # doctest: +SKIP
    >>> describe_model(wide)["filters"][:3]  # doctest: +SKIP
    [24, 36, 48]
    """
    arch = describe_model(model)
    old = arch["filters"]
    layers = {layer.name: layer for layer in model.layers}
    body = [f"down{level}_conv" for level in range(DEPTH)] + ["bottom_conv"]
    body += [f"up{level}_conv" for level in reversed(range(DEPTH))]
    if len(old) != 2 * DEPTH + 1 or any(name not in layers for name in body + ["output_conv"]):
        raise ModelError(
            f"widen_unet needs a symmetric_unet (layers down0_conv ... output_conv); {model.name!r} is not one"
        )
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise InvalidArgumentError(f"noise must be a number >= 0, got {noise!r}")
    new = scaled_filters(filter_multiple)
    if any(n < o for n, o in zip(new, old)):
        raise InvalidArgumentError(
            f"filter_multiple={filter_multiple} gives fewer filters than the model has ({list(new)} < {old}); "
            f"pass a multiple of at least {arch['filter_multiple']:g}"
        )
    rng = np.random.default_rng(seed)
    # one channel mapping per level (shared by down{l} and up{l}, which are added) and the bottom
    maps: dict[str, np.ndarray] = {}
    for level in range(DEPTH):
        o, n = old[level], new[level]
        maps[f"down{level}"] = maps[f"up{level}"] = np.concatenate([np.arange(o), rng.integers(0, o, n - o)])
    maps["bottom"] = np.concatenate([np.arange(old[DEPTH]), rng.integers(0, old[DEPTH], new[DEPTH] - old[DEPTH])])
    # the mapping of each convolution's input: the layer before it in the U
    inputs: dict[str, np.ndarray | None] = {"down0": None, "bottom": maps[f"down{DEPTH - 1}"], "output": maps["up0"]}
    for level in range(1, DEPTH):
        inputs[f"down{level}"] = maps[f"down{level - 1}"]
    for level in range(DEPTH):
        inputs[f"up{level}"] = maps["bottom"] if level == DEPTH - 1 else maps[f"up{level + 1}"]

    wide = symmetric_unet(
        arch["kernel_size"], filter_multiple, _unet_rates(model), input_shape=tuple(model.inputs[0].shape[1:]),
        name=f"{model.name}_widened_f{float(filter_multiple):g}",
    )
    for label in [name[: -len("_conv")] for name in body] + ["output"]:
        kernel, bias = (np.asarray(w) for w in layers[f"{label}_conv"].get_weights())
        into = inputs[label]
        if into is not None:
            counts = np.bincount(into, minlength=kernel.shape[2])
            kernel = kernel[:, :, into, :] / counts[into][None, None, :, None]
        out = maps.get(label)
        if out is not None:
            copied = np.arange(out.size) >= kernel.shape[3]
            kernel, bias = kernel[..., out], bias[out]
            if noise > 0:
                jitter = rng.normal(0.0, noise * float(kernel.std()), kernel.shape)
                kernel = kernel + jitter * copied  # the original filters stay as trained
        wide.get_layer(f"{label}_conv").set_weights([kernel.astype("float32"), bias.astype("float32")])
    return wide


# --------------------------------------------------------------------------------------------
# receptive field
# --------------------------------------------------------------------------------------------
def _dependency_intervals(kernel_size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``n`` output positions along one axis, the first and last input position it depends on.

    Follows the layer sequence of :func:`symmetric_unet` exactly, with the zero padding of
    ``same`` convolutions clipping at the borders.  The 2-D dependency region of a pixel is the
    product of the row and column intervals.
    """
    if n % MULTIPLE:
        raise InvalidArgumentError(f"n must be a multiple of {MULTIPLE}, got {n}")
    h = (kernel_size - 1) // 2

    def conv(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # lo and hi are non-decreasing, so the window's extremes sit at its ends
        j = np.arange(lo.size)
        return lo[np.maximum(j - h, 0)], hi[np.minimum(j + h, lo.size - 1)]

    lo = hi = np.arange(n)
    skips = []
    for _ in range(DEPTH):
        lo, hi = conv(lo, hi)
        skips.append((lo, hi))
        lo, hi = lo[0::2], hi[1::2]  # AveragePooling2D(2): output j covers inputs 2j and 2j+1
    lo, hi = conv(lo, hi)
    for level in reversed(range(DEPTH)):
        lo, hi = np.repeat(lo, 2), np.repeat(hi, 2)  # UpSampling2D(2): output i reads input i // 2
        lo, hi = conv(lo, hi)
        slo, shi = skips[level]
        lo, hi = np.minimum(lo, slo), np.maximum(hi, shi)
    return lo, hi  # the 1x1 output convolution adds nothing


def _central_intervals(kernel_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kernel_size = _check_kernel_size(kernel_size)
    h = (kernel_size - 1) // 2
    # generous bound on the one-sided reach, so the central period never sees a border
    bound = (3 * h + 4) * 2 * MULTIPLE
    periods = 2 * (bound // MULTIPLE + 1) + 1
    n = periods * MULTIPLE
    lo, hi = _dependency_intervals(kernel_size, n)
    j = np.arange(n)
    start = (periods // 2) * MULTIPLE
    sl = slice(start, start + MULTIPLE)  # the pattern repeats with period MULTIPLE
    return j[sl], lo[sl], hi[sl]


def receptive_field(kernel_size: int = DEFAULT_KERNEL_SIZE) -> int:
    """Width in pixels of the largest input window that one output pixel depends on.

    Pooling and upsampling make the window depend on the pixel's position modulo 128; this is
    the maximum over positions, away from the image borders (the 2-D field is this square).
    For the halo that tiles need, use :func:`receptive_margin`.

    Examples
    --------
    >>> receptive_field(3)
    894
    """
    _, lo, hi = _central_intervals(kernel_size)
    return int((hi - lo + 1).max())


def receptive_margin(kernel_size: int = DEFAULT_KERNEL_SIZE) -> int:
    """Largest distance, in pixels, from an output pixel to an input pixel it depends on.

    A tile predicted with at least this many pixels of real context on every side gives the
    same values as predicting the whole image at once (when the tile is aligned to the
    128-pixel pooling grid).  This is the ``depth`` to use with ``dask.array.map_overlap``.

    Examples
    --------
    >>> receptive_margin(3)
    509
    """
    j, lo, hi = _central_intervals(kernel_size)
    return int(max((j - lo).max(), (hi - j).max()))


# --------------------------------------------------------------------------------------------
# padding
# --------------------------------------------------------------------------------------------
def _spatial_axes(ndim: int) -> tuple[int, int]:
    if ndim in (2, 3):
        return (0, 1)
    if ndim == 4:
        return (1, 2)
    raise InvalidArgumentError(
        f"expected an (H, W), (H, W, C) or (N, H, W, C) array, got {ndim} dimension(s)"
    )


def pad_to_multiple(
    array: Any, multiple: int = MULTIPLE, mode: str = "reflect", **pad_kwargs: Any
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Pad the two spatial axes of an array up to the next multiple of ``multiple``.

    The padding is split evenly between the two sides of each axis (the extra pixel, if any,
    goes after), so both edges of the image see the same kind of border.  An axis that is
    already a multiple is left alone.

    Parameters
    ----------
    array
        ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``.
    multiple
        Target multiple (default 128, the network's).
    mode
        :func:`numpy.pad` mode; ``"reflect"`` mirrors the image without repeating the edge
        pixel, and works even when the padding is wider than the image.
    **pad_kwargs
        Passed to :func:`numpy.pad` (for example ``constant_values``).

    Returns
    -------
    padded : numpy.ndarray
    crop_slices : tuple of slice
        ``(rows, cols)`` slices that :func:`crop` uses to undo the padding, on any array with
        the same spatial size in any of the three layouts.

    Examples
    --------
    >>> padded, slices = pad_to_multiple(np.zeros((300, 200)))
    >>> padded.shape, crop(padded, slices).shape
    ((384, 256), (300, 200))
    """
    array = np.asarray(array)
    if isinstance(multiple, bool) or not isinstance(multiple, (int, np.integer)) or multiple < 1:
        raise InvalidArgumentError(f"multiple must be a positive integer, got {multiple!r}")
    axes = _spatial_axes(array.ndim)
    widths = [(0, 0)] * array.ndim
    slices = []
    for ax in axes:
        size = array.shape[ax]
        if size == 0:
            raise InvalidArgumentError(f"cannot pad an empty array (shape {array.shape})")
        total = -size % multiple
        before = total // 2
        widths[ax] = (before, total - before)
        slices.append(slice(before, before + size))
    if any(w != (0, 0) for w in widths):
        array = np.pad(array, widths, mode=mode, **pad_kwargs)
    return array, (slices[0], slices[1])


def crop(array: Any, crop_slices: tuple[slice, slice]) -> np.ndarray:
    """Undo :func:`pad_to_multiple`: cut the spatial axes of ``array`` with ``crop_slices``.

    ``array`` may have a different layout from the padded input, as long as its spatial size is
    the padded size: a padded ``(H, W)`` image's slices crop the ``(1, H, W, 1)`` prediction.
    """
    array = np.asarray(array)
    axes = _spatial_axes(array.ndim)
    index: list[slice] = [slice(None)] * array.ndim
    for ax, sl in zip(axes, crop_slices):
        if sl.stop is not None and sl.stop > array.shape[ax]:
            raise InvalidArgumentError(
                f"crop slices {crop_slices} do not fit an array of shape {array.shape}; crop the array "
                "that has the padded size"
            )
        index[ax] = sl
    return array[tuple(index)]


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------
def _unmasked(values: Any) -> Any:
    """``values`` with a numpy masked array's masked pixels as NaN (no data, float then); anything
    else untouched.  ``np.asarray`` would drop the mask and read what lies under it as ground (a
    rasterio ``read(masked=True)`` holds its nodata value there, often -3.4e38)."""
    if not np.ma.isMaskedArray(values):
        return values
    mask = np.ma.getmaskarray(values)
    data = np.ma.getdata(values)
    if not mask.any() or data.dtype.kind not in "iuf":  # nothing masked (or not numbers: the caller says so)
        return data
    out = data.astype(np.result_type(data.dtype, np.float32))  # float64 stays float64; integers become float32
    out[mask] = np.nan
    return out


def _as_image(image: Any, what: str = "image") -> np.ndarray:
    if hasattr(image, "values") and hasattr(image, "dims"):  # an xarray DataArray
        image = image.values
    image = _unmasked(image)  # masked pixels are no data, as NaN is
    try:
        arr = np.asarray(image)
    except Exception as exc:  # noqa: BLE001 - anything numpy cannot turn into an array
        raise InvalidArgumentError(f"{what} cannot be read as an array ({exc}); pass a 2-D numpy array") from exc
    if arr.dtype.kind not in "iuf":
        raise InvalidArgumentError(
            f"{what} has dtype {arr.dtype}, but a grey-level image must be real numbers (integer or "
            "float); convert it, e.g. np.asarray(img, dtype='float32'), and for complex data take np.abs"
        )
    if arr.ndim != 2:
        hint = ""
        if arr.ndim == 3 and 1 in arr.shape:  # the single band where it lies: (1, H, W) from rasterio or rioxarray
            first = "arr[0]" if arr.shape[0] == 1 else "arr[..., 0]" if arr.shape[-1] == 1 else "arr[:, 0]"
            hint = f" (take the single band with {first}, or arr.squeeze())"
        elif 1 in arr.shape:
            hint = " (drop its size-1 axes with arr.squeeze())"
        raise InvalidArgumentError(f"{what} must be 2-D (rows, cols), got shape {arr.shape}{hint}")
    if arr.size == 0:
        raise InvalidArgumentError(f"{what} is empty (shape {arr.shape})")
    return arr


def fixed_value_range(value_range: Any, *, hint: str = "") -> tuple[float, float]:
    """Parse a fixed grey-level scale ``(low, high)``: finite numbers with high > low.

    The one check of a fixed ``value_range`` (:func:`normalise_image`, :mod:`marscraters.segment`).
    """
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"value_range must be (low, high){hint}, got {value_range!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise InvalidArgumentError(f"value_range must be finite with high > low, got {value_range!r}")
    return lo, hi


# The THEMIS chips' grey levels (0.5-99.5th percentile) span at least 22 % of the 8-bit range
# (the training chips 0-439: 31 %) and average 40-60 % of it (training varied gain by e^+-0.2 and
# level by +-0.05).  An image far outside that -- span below 15 % of the range guessed for it, or
# mean outside 20-80 % -- would look flat or black to the network, so it is stretched on its own.
_MIN_CONTRAST = 0.15
_MEAN_LEVEL = (0.2, 0.8)
#: Pixels in the grey-level sample of an image or a mosaic (:func:`grey_sample`).
GREY_SAMPLE_PX = 1_000_000
# Arrays larger than this many samples are sampled in windows (a strided read of a chunked mosaic
# would read every chunk); windows per axis, and their side
_STRIDED_MAX = 16
_SAMPLE_WINDOWS = 16
_SAMPLE_WINDOW_PX = 64


def grey_sample(data: Any) -> Any:
    """About :data:`GREY_SAMPLE_PX` pixels of a 2-D numpy or dask array, flattened, to judge its
    grey levels by.

    The positions depend on the array's shape only, never on its chunks, so a mosaic gets the
    same sample (and the same grey scale) however it is chunked.  Up to 16 Mpx: a 2-D strided
    lattice (a 1-D stride could fall on every n-th column of a striped image).  Larger: 16 x 16
    windows of 64 x 64 px spread evenly, so a lazy mosaic reads a few hundred storage chunks, not
    all of them.  A dask array stays lazy.
    """
    ny, nx = (int(n) for n in data.shape)
    if ny * nx <= _STRIDED_MAX * GREY_SAMPLE_PX:
        step = max(int(math.ceil(math.sqrt(ny * nx / GREY_SAMPLE_PX))), 1)
        return data[::step, ::step].ravel()
    w = _SAMPLE_WINDOW_PX
    ys = [min(max(int((i + 0.5) * ny / _SAMPLE_WINDOWS) - w // 2, 0), max(ny - w, 0)) for i in range(_SAMPLE_WINDOWS)]
    xs = [min(max(int((j + 0.5) * nx / _SAMPLE_WINDOWS) - w // 2, 0), max(nx - w, 0)) for j in range(_SAMPLE_WINDOWS)]
    pieces = [data[y:y + w, x:x + w].ravel() for y in ys for x in xs]
    if type(data).__module__.startswith("dask"):
        import dask.array as da

        return da.concatenate(pieces)
    return np.concatenate(pieces)


def read_grey_sample(data: Any, client: Any = None) -> np.ndarray:
    """:func:`grey_sample` of a 2-D numpy or dask array, read (through ``client`` when given), as float64."""
    sample = grey_sample(data)
    if hasattr(sample, "dask"):
        sample = client.compute(sample).result() if client is not None else sample.compute()
    return np.asarray(sample, dtype=np.float64)


def stretch_range(values: Any) -> tuple[float, float]:
    """The per-image stretch (``value_range="auto"``): the 0.5th to 99.5th percentile of the finite
    ``values``, or their minimum and maximum when those two coincide; (0, 255) when none is finite."""
    finite = np.asarray(values, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return 0.0, 255.0
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    if hi <= lo:  # almost constant with a few outliers: fall back to the full range
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:  # constant: any scale shows it as flat
        hi = lo + 1.0
    return lo, hi


def guess_value_range(
    sample: Any, *, floating: bool = True, lo: float | None = None, hi: float | None = None,
    what: str = "image", stacklevel: int = 3,
) -> tuple[float, float] | str:
    """The grey scale of an image or mosaic whose scale the caller did not give: the one rule of
    :func:`marscraters.detect.detect` and :func:`marscraters.segment.segment`.

    0..1 for float levels within 0..1 (an 8-bit image divided by 255), 0..255 for other levels
    within 0..255 (the THEMIS chips' fixed 8-bit scale), and a stretch on the image's own levels
    (``"auto"``), with a warning, otherwise: levels beyond 0..255 (a 16-bit or calibrated image),
    or levels so far from the training chips' (:data:`_MIN_CONTRAST`, :data:`_MEAN_LEVEL`) that
    the network would see a flat or black image (for example reflectance of 0.05-0.25).

    Parameters
    ----------
    sample
        Grey levels to judge, e.g. :func:`grey_sample` of the image (computed); NaN is ignored.
    floating
        Whether the levels are floats (only then can 0..1 be their scale).
    lo, hi
        The smallest and largest finite level of the whole image, when known (default: the sample's).
    what
        ``"image"`` or ``"mosaic"``, for the warning.
    """
    values = np.asarray(sample, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if lo is None or hi is None:
        if not values.size:
            return (0.0, 255.0)  # nothing to judge: the training scale
        lo, hi = float(values.min()), float(values.max())
    how = ("stretched on its own (value_range='auto'). Pass value_range=(low, high) (CLI: --value-range LOW "
           "HIGH) to set the scale yourself.")
    if floating and lo >= 0 and hi <= 1:
        guess = (0.0, 1.0)
    elif lo >= 0 and hi <= 255:
        guess = (0.0, 255.0)
    else:
        warnings.warn(
            f"the {what}'s grey levels ({lo:.6g}..{hi:.6g}) go beyond the 8-bit 0..255 scale of the THEMIS chips "
            f"the model learnt from (a 16-bit or calibrated {what}?), so the {what} is {how}", UserWarning,
            stacklevel=stacklevel)
        return "auto"
    if not values.size:
        return guess
    p_lo, p_hi = np.percentile(values, [0.5, 99.5])
    width = guess[1] - guess[0]
    mean = (float(values.mean()) - guess[0]) / width
    if p_hi - p_lo < _MIN_CONTRAST * width or not _MEAN_LEVEL[0] <= mean <= _MEAN_LEVEL[1]:
        hint = ""
        if guess == (0.0, 255.0) and floating and float(np.mean(values <= 1.0)) > 0.99:
            hint = (f" Most of its pixels are within 0..1: if it is a 0..1 {what} with a few outliers, pass "
                    "value_range=(0, 1).")
        warnings.warn(
            f"the {what}'s grey levels ({p_lo:.4g}..{p_hi:.4g}, mean {mean:.0%} of the {guess[0]:g}..{guess[1]:g} "
            "range assumed for it) are far darker, brighter or flatter than the THEMIS chips the model learnt from "
            f"(mean 40-60 %, spread at least 22 % of the range), so the {what} is {how}{hint}", UserWarning,
            stacklevel=stacklevel)
        return "auto"
    return guess


def mosaic_value_range(data: Any, value_range: Any = None, *, client: Any = None, sample: Any = None,
                       stacklevel: int = 2) -> tuple[float, float]:
    """The one fixed grey scale ``(low, high)`` of a whole mosaic (a 2-D numpy or dask array).

    ``value_range`` given as ``(low, high)`` is checked and returned, with nothing read.
    Otherwise the mosaic's :func:`grey_sample` is read (through ``client`` when given): ``"auto"``
    is its stretch (:func:`stretch_range`); None applies :func:`guess_value_range` (a mosaic's
    ``ir`` is float32 whatever it was stored as), whose ``"auto"`` is the same stretch.  One scale
    for every block, so even a stretched mosaic has no seams, whatever its chunking.  ``sample``:
    that grey sample, when the caller has already read it (nothing is read then).

    Examples
    --------
    >>> levels = np.random.default_rng(0).uniform(0, 255, (64, 64))
    >>> mosaic_value_range(levels)  # 8-bit-like: the training chips' fixed scale
    (0.0, 255.0)
    >>> mosaic_value_range(levels, (0, 1023))
    (0.0, 1023.0)
    """
    if not (value_range is None or isinstance(value_range, str)):
        return fixed_value_range(value_range, hint=", 'auto' or None")
    if sample is None:
        sample = read_grey_sample(data, client)
    return _sample_value_range(np.asarray(sample), value_range, stacklevel=stacklevel + 1)


def _sample_value_range(sample: np.ndarray, value_range: str | None, stacklevel: int = 2) -> tuple[float, float]:
    """:func:`mosaic_value_range` of an already-read sample (also a task of ``segment``'s lazy graph)."""
    if value_range is None:
        value_range = guess_value_range(sample, floating=True, what="mosaic", stacklevel=stacklevel + 1)
    if value_range != "auto":
        if isinstance(value_range, str):
            raise InvalidArgumentError(f"value_range must be (low, high), 'auto' or None, got {value_range!r}")
        return fixed_value_range(value_range)
    return stretch_range(sample)


def _grey_levels(image: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """The finite grey levels of a 2-D image and their minimum and maximum, refusing an image with
    none or with one value only.

    Raises
    ------
    InvalidArgumentError
        If no pixel is finite (all NaN or infinite) or every finite pixel has the same value.
    """
    valid = np.isfinite(image) if valid is None else valid
    if not valid.any():
        raise InvalidArgumentError(
            "the image has no valid pixel (all NaN or infinite): there is nothing to predict. "
            "Crop it to an area with data, or check that the right file/band was read."
        )
    finite = image[valid]
    vmin, vmax = float(finite.min()), float(finite.max())
    if vmin == vmax:
        raise InvalidArgumentError(
            f"the image is constant (every valid pixel is {vmin:g}): there are no features to detect. "
            "Check that the right file/band was read and that no-data was not filled with a constant; "
            "skip such tiles instead of predicting them."
        )
    return finite, vmin, vmax


def normalise_image(
    image: Any, *, value_range: tuple[float, float] | str = (0.0, 255.0)
) -> np.ndarray:
    """Turn a grey-level image into the network's input: float32 in 0..1, no NaN.

    This is the *one* normalisation of the project, used for training and for inference.

    1. Non-finite pixels (NaN = no data, and +-inf) are set aside.
    2. Values are scaled linearly from ``value_range`` to 0..1 and clipped.  The default,
       0..255, is the 8-bit scale of the THEMIS Day IR mosaics and of the training chips; a fixed
       scale (rather than a per-image stretch) gives every tile of a large mosaic the same
       mapping, so tiles and dask blocks join without seams.
    3. The no-data pixels are filled with the mean of the valid ones, so they look like
       featureless ground rather than a dark hole.

    Parameters
    ----------
    image
        2-D array (or xarray DataArray) of integers or floats.
    value_range
        ``(low, high)`` in the image's units, or ``"auto"`` for a robust per-image stretch from
        the 0.5th to the 99.5th percentile (only for single images of unknown scale).

    Returns
    -------
    numpy.ndarray
        float32, same shape, values in 0..1.

    Raises
    ------
    InvalidArgumentError
        If the image is not a 2-D real array; has no valid pixel; is constant; or, with the
        default range, has values outside 0..255 (pass its own ``value_range``).

    Examples
    --------
    >>> normalise_image(np.array([[0, 51], [np.nan, 255]]))
    array([[0. , 0.2],
           [0.4, 1. ]], dtype=float32)
    """
    arr = _as_image(image)
    values = arr.astype(np.float64, copy=False)
    valid = np.isfinite(values)
    finite, vmin, vmax = _grey_levels(values, valid)
    if isinstance(value_range, str):
        if value_range != "auto":
            raise InvalidArgumentError(f"value_range must be (low, high) or 'auto', got {value_range!r}")
        lo, hi = stretch_range(finite)
    else:
        lo, hi = fixed_value_range(value_range, hint=" or 'auto'")
        if (lo, hi) == (0.0, 255.0) and (vmin < 0.0 or vmax > 255.0):
            raise InvalidArgumentError(
                f"the image spans {vmin:g}..{vmax:g}, outside the 8-bit range 0..255 that the network was "
                "trained on. Pass value_range=(low, high) in the image's own units, or value_range='auto' "
                "for a per-image percentile stretch."
            )
    out = np.empty(arr.shape, dtype=np.float32)
    scaled = np.clip((finite - lo) / (hi - lo), 0.0, 1.0)
    out[valid] = scaled
    out[~valid] = scaled.mean()
    return out


# --------------------------------------------------------------------------------------------
# prediction
# --------------------------------------------------------------------------------------------
# largest batch (pixels) sent to the model at once; ~6 GB of activations for the default model
_MAX_BATCH_PIXELS = 2**24
# core size of tile="auto" for images larger than one batch
_AUTO_TILE = 2048


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def _model_kernel_size(model: Any) -> int:
    keras = _keras()
    sizes = [max(layer.kernel_size) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not sizes:
        raise ModelError(f"model {model.name!r} has no Conv2D layer; pass halo= explicitly")
    return int(max(sizes))


def _windows(size: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Cores and windows along one axis: (core_start, core_stop, window_start, window_stop).

    Everything is a multiple of 128, so every window starts on the pooling grid of the whole
    padded image, and all windows have the same length (edge windows slide inwards instead of
    shrinking), so they stack into batches.
    """
    length = min(tile + 2 * halo, size)
    if length == size:
        return [(0, size, 0, size)]
    out = []
    for start in range(0, size, tile):
        stop = min(start + tile, size)
        wstart = min(max(start - halo, 0), size - length)
        out.append((start, stop, wstart, wstart + length))
    return out


# --------------------------------------------------------------------------------------------
# staged window prediction: the finest decoder levels on the core only
# --------------------------------------------------------------------------------------------
#: Decoder levels (from the finest) that :func:`staged_model` computes on a window's core only.
#: Levels 0-3 of the way up cost 75 % of the default network's work; the rest (the whole
#: encoder and the coarse decoder) must see the window's full halo.  4 measured fastest
#: (0.85 of an unhaloed core vs 0.65 for the whole window, docs/benchmarks.md).
STAGED_LEVELS: int = 4
# (id(model), crop + (levels,)) -> (model, staged model); the model is kept to detect a reused id
_STAGED: dict[tuple[int, tuple[int, ...]], tuple[Any, Any]] = {}
_STAGED_MAX = 32
_STAGED_LOCK = threading.Lock()


def staged_margin(kernel_size: int, levels: int = STAGED_LEVELS) -> int:
    """Context (px) that the ``levels`` finest decoder levels need around a core.

    Each level ``l`` adds ``kernel_size // 2`` pixels at resolution ``2**l``; the sum,
    rounded up to the level grid, is ``(kernel_size // 2) * 2**levels``.
    """
    return (int(kernel_size) // 2) * 2**int(levels)


def _unet_layers(model: Any, levels: int) -> dict[str, Any] | None:
    """The named layers of a :func:`symmetric_unet` that staging needs, or None for other models."""
    names = [f"down{lv}_conv" for lv in range(levels)] + ["output_conv"]
    names += [f"up{lv}_{part}" for lv in range(levels) for part in ("upsample", "conv", "add")]
    names.append(f"up{levels}_add" if levels < DEPTH else "bottom_conv")
    found = {layer.name: layer for layer in model.layers}
    if not all(name in found for name in names):
        return None
    return found


def staged_model(model: "keras.Model", crop: tuple[int, int, int, int], levels: int = STAGED_LEVELS) -> "keras.Model | None":
    """``model`` with its ``levels`` finest decoder levels computed only inside ``crop``.

    A window's halo exists for the deep levels, whose receptive field is hundreds of pixels;
    the fine decoder levels, which cost most of the work, need only a few pixels around the
    core (:func:`staged_margin`).  The returned model shares ``model``'s layers and weights:
    it runs the encoder and the coarse decoder on the whole window, crops those activations
    and the skip connections to ``crop``, and runs the fine decoder levels there.  Its output
    equals ``model``'s on the cropped region wherever that is at least
    :func:`staged_margin` from a crop edge inside the window (bit for bit in tests: the same
    layers see the same values).

    Parameters
    ----------
    model
        A :func:`symmetric_unet` (matched by its layer names).
    crop
        ``(top, bottom, left, right)`` pixels removed from the window, multiples of
        ``2**levels``.
    levels
        How many decoder levels run on the crop only (1-7).

    Returns
    -------
    keras.Model or None
        None when ``model`` is not of this architecture (callers then predict whole windows).
    """
    levels = int(levels)
    if not 1 <= levels <= DEPTH:
        raise InvalidArgumentError(f"levels must be 1..{DEPTH}, got {levels}")
    crop = tuple(int(v) for v in crop)
    if any(v < 0 or v % 2**levels for v in crop):
        raise InvalidArgumentError(f"crop {crop} must be non-negative multiples of {2**levels}")
    key = (id(model), crop + (levels,))
    with _STAGED_LOCK:
        hit = _STAGED.get(key)
        if hit is not None and hit[0] is model:
            return hit[1]
        found = _unet_layers(model, levels)
        if found is None:
            return None
        keras = _keras()
        top, bottom, left, right = crop

        def cut(tensor: Any, level: int) -> Any:
            f = 2**level
            if not any(crop):
                return tensor
            return keras.layers.Cropping2D(((top // f, bottom // f), (left // f, right // f)))(tensor)

        coarse = found[f"up{levels}_add" if levels < DEPTH else "bottom_conv"].output
        x = cut(coarse, levels)
        for level in reversed(range(levels)):
            x = found[f"up{level}_upsample"](x)
            x = found[f"up{level}_conv"](x)
            if f"up{level}_dropout" in found:
                x = found[f"up{level}_dropout"](x)
            x = found[f"up{level}_add"]([x, cut(found[f"down{level}_conv"].output, level)])
        staged = keras.Model(model.inputs, found["output_conv"](x), name=f"{model.name}_staged")
        _quiet_retracing_warning()
        if len(_STAGED) >= _STAGED_MAX:
            _STAGED.pop(next(iter(_STAGED)))
        _STAGED[key] = (model, staged)
        return staged


class _NoRetracingNoise:
    """Drops TensorFlow's "... triggered function retracing" warning, and only that one.

    Each staged geometry is its own Keras model whose predict function is traced once; TF's
    heuristic counts those first traces as retracing and warns about a problem that is not there.
    """

    def filter(self, record: Any) -> bool:
        message = record.getMessage()
        return not ("triggered" in message and "function retracing" in message)


_RETRACE_FILTER = _NoRetracingNoise()


def _quiet_retracing_warning() -> None:
    import logging

    logger = logging.getLogger("tensorflow")
    if _RETRACE_FILTER not in logger.filters:
        logger.addFilter(_RETRACE_FILTER)


def _job_crop(job: tuple[tuple[int, int, int, int], tuple[int, int, int, int]], margin: int, step: int) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` that keeps a job's core plus ``margin`` inside its window."""
    out = []
    for c0, c1, w0, w1 in job:
        length = w1 - w0
        s0 = max(c0 - w0 - margin, 0) // step * step
        s1 = min(-(-(c1 - w0 + margin) // step) * step, length)
        out += [s0, length - s1]
    return tuple(out)


def _predict_windows_once(
    model: "keras.Model",
    x: np.ndarray,
    jobs: Sequence[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]],
    batch_size: int,
    *,
    out: np.ndarray | None = None,
    progress: bool = False,
    lock: Any = None,
    on_batch: Any = None,
    staged: bool = True,
) -> np.ndarray:
    """:func:`predict_windows` in one orientation (the image as given)."""
    out = np.zeros(x.shape, dtype=np.float32) if out is None else out
    step = 2**STAGED_LEVELS
    margin = staged_margin(_model_kernel_size(model)) if staged and _unet_layers(model, STAGED_LEVELS) is not None else None
    groups: dict[tuple[int, int, int, int], list] = {}
    for job in jobs:
        key = (0, 0, 0, 0) if margin is None else _job_crop(job, margin, step)
        groups.setdefault(key, []).append(job)
    batches = [(crop_, group[i : i + batch_size]) for crop_, group in groups.items() for i in range(0, len(group), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="predict", unit="batch")
    for crop_, chunk in batches:
        net = model if not any(crop_) else staged_model(model, crop_)
        top, _, left, _ = crop_
        stack = np.stack([x[r[2] : r[3], c[2] : c[3]] for r, c in chunk])[..., None]
        if len(chunk) < batch_size and len(groups[crop_]) > batch_size:
            fill = np.zeros((batch_size - len(chunk),) + stack.shape[1:], dtype=stack.dtype)
            stack = np.concatenate([stack, fill])
        if lock is not None:
            with lock:
                pred = np.asarray(net.predict_on_batch(stack), dtype=np.float32)
        else:
            pred = np.asarray(net.predict_on_batch(stack), dtype=np.float32)
        expected = (stack.shape[0], stack.shape[1] - crop_[0] - crop_[1], stack.shape[2] - crop_[2] - crop_[3])
        if pred.shape[:3] != expected:
            raise ModelError(
                f"model {model.name!r} returned shape {pred.shape} for input {stack.shape}; the model must "
                "map (N, H, W, 1) to (N, H, W, 1)"
            )
        if on_batch is not None:
            on_batch(len(chunk))
        for k, (r, c) in enumerate(chunk):
            oy, ox = r[2] + top, c[2] + left
            out[r[0] : r[1], c[0] : c[1]] = pred[k, r[0] - oy : r[1] - oy, c[0] - ox : c[1] - ox, 0]
    return out


#: Orders of test-time augmentation: the identity, then the transpose, then the half turn (and its
#: transpose), then the quarter turns (and theirs) -- the 8 symmetries of the square.
TTA_ORDERS: tuple[int, ...] = (1, 2, 4, 8)
_DIHEDRAL: tuple[tuple[int, bool], ...] = ((0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True))


def _check_tta(tta: Any) -> int:
    if isinstance(tta, bool) or not isinstance(tta, (int, np.integer)) or int(tta) not in TTA_ORDERS:
        raise InvalidArgumentError(f"tta must be one of {TTA_ORDERS} (orientations averaged), got {tta!r}")
    return int(tta)


def _turn_jobs(jobs: Sequence[Any], shape: tuple[int, int], turns: int, transpose: bool) -> list:
    """Jobs of an array, re-expressed on ``np.rot90(array, turns)`` (then ``.T`` if ``transpose``)."""
    out = []
    for job in jobs:
        (r0, r1, w0, w1), (c0, c1, v0, v1) = job
        h, w = shape
        for _ in range(turns % 4):
            # np.rot90 (one quarter turn counter-clockwise): old (row, col) -> new (w - 1 - col, row)
            (r0, r1, w0, w1), (c0, c1, v0, v1) = (w - c1, w - c0, w - v1, w - v0), (r0, r1, w0, w1)
            h, w = w, h
        if transpose:
            (r0, r1, w0, w1), (c0, c1, v0, v1) = (c0, c1, v0, v1), (r0, r1, w0, w1)
        out.append(((r0, r1, w0, w1), (c0, c1, v0, v1)))
    return out


def predict_windows(
    model: "keras.Model",
    x: np.ndarray,
    jobs: Sequence[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]],
    batch_size: int,
    *,
    out: np.ndarray | None = None,
    progress: bool = False,
    lock: Any = None,
    on_batch: Any = None,
    staged: bool = True,
    tta: int = 1,
) -> np.ndarray:
    """Predict windows of a padded 2-D array in batches and paste their cores into ``out``.

    Each job is ``((r0, r1, w0, w1), (c0, c1, v0, v1))``: the window ``x[w0:w1, v0:v1]`` goes
    through the network and its core ``[r0:r1, c0:c1]`` (in ``x``'s coordinates) is kept.  All
    windows must have one shape; a short last batch is padded with zeros so the compiled predict
    function is reused rather than retraced.  This is the one batched-window loop of the project
    (:func:`predict_image` and :mod:`marscraters.segment` both use it).

    With ``staged`` (the default) a :func:`symmetric_unet` runs its finest decoder levels on
    each core plus :func:`staged_margin` only (:func:`staged_model`): the same numbers as the
    whole window, for about three quarters of its time with a 2048-px core and the 512-px halo
    (0.61 s against 0.80 s on the benchmark machine, ``docs/benchmarks.md``).
    Jobs are grouped by where their core sits in the window, one batch shape per group.

    Parameters
    ----------
    progress
        Show a tqdm progress bar over batches.
    lock
        Optional context manager held around each ``predict_on_batch`` (dask worker threads).
    on_batch
        Optional callback ``on_batch(n_windows)`` after each batch (statistics).
    staged
        Compute the fine decoder levels on the cores only (exact); False predicts whole windows.
    tta
        Test-time augmentation: average the predictions of the image in ``tta`` orientations
        (1, 2, 4 or 8 of the square's symmetries, see :data:`TTA_ORDERS`), each mapped back.
        Costs ``tta`` times the work.  When ``x``'s sides are multiples of 128 and the windows
        start on multiples of 128 (as everywhere in this package), every orientation is itself
        exact, so the average does not depend on the tiling either.
    """
    tta = _check_tta(tta)
    out = np.zeros(x.shape, dtype=np.float32) if out is None else out
    kwargs = dict(progress=progress, lock=lock, on_batch=on_batch, staged=staged)
    if tta == 1:
        return _predict_windows_once(model, x, jobs, batch_size, out=out, **kwargs)
    total = np.zeros(x.shape, dtype=np.float64)
    for turns, transpose in _DIHEDRAL[:tta]:
        xt = np.rot90(x, turns)
        xt = xt.T if transpose else xt
        pred = _predict_windows_once(model, xt, _turn_jobs(jobs, x.shape, turns, transpose), batch_size, **kwargs)
        pred = pred.T if transpose else pred
        total += np.rot90(pred, -turns)
    for (r0, r1, _, _), (c0, c1, _, _) in jobs:
        out[r0:r1, c0:c1] = total[r0:r1, c0:c1] / tta
    return out


def predict_image(
    model: "keras.Model",
    image: Any,
    *,
    batch_size: int = 4,
    tile: int | str | None = "auto",
    halo: int | None = None,
    normalise: bool = True,
    value_range: tuple[float, float] | str = (0.0, 255.0),
    progress: bool = False,
    tta: int = 1,
) -> np.ndarray:
    """Predict the crater probability of a 2-D image of any size.

    The image is normalised (:func:`normalise_image`), padded by reflection to a multiple of
    128 (:func:`pad_to_multiple`), cut into ``tile``-sized cores, and each core is predicted
    inside a window that adds ``halo`` pixels of context on every side (less at the image
    border).  Windows are aligned to the network's 128-pixel pooling grid, so when ``halo`` is
    at least the receptive margin the result equals one prediction of the whole padded image,
    while memory stays bounded for images of any size.

    Parameters
    ----------
    model
        A Keras model of this module's architecture (or any model mapping
        ``(N, H, W, 1)`` -> ``(N, H, W, 1)`` with sizes multiples of 128, with ``halo`` given).
    image
        2-D array (or DataArray) of grey levels; NaN marks no data.
    batch_size
        Most windows per ``predict_on_batch`` call.  Fewer are sent when windows are large: a
        batch never holds more than 2**24 pixels (about 6 GB of activations for the default
        model), so big tiles do not exhaust memory.
    tile
        Side of the core that each window contributes, rounded up to a multiple of 128.
        ``None`` predicts the whole (padded) image in one call.  ``"auto"`` (the default) does
        that for images up to 2**24 padded pixels (4096 x 4096) and uses 2048-pixel cores
        (3072-pixel windows with the default halo) for larger ones.  With an exact halo, small
        tiles spend most of their work on context (512-pixel cores do 9x the work of the image),
        so the largest tiles that fit in memory are the fastest (see ``docs/benchmarks.md``).
        The memory of a window grows with ``(tile + 2 * halo) ** 2``.
    halo
        Context on each side of a core, rounded up to a multiple of 128.  Default: the model's
        :func:`receptive_margin` (509 -> 512 for 3x3 kernels), which makes tiling exact;
        smaller halos are faster but only approximate near tile seams.
    normalise
        Apply :func:`normalise_image` (with ``value_range``).  With False the image must
        already be finite float data in the network's 0..1 scale.
    value_range
        Passed to :func:`normalise_image`.
    progress
        Show a tqdm progress bar over batches.
    tta
        Test-time augmentation: average 1, 2, 4 or 8 orientations of the image (flips and
        quarter turns, :func:`predict_windows`), for ``tta`` times the work.

    Returns
    -------
    numpy.ndarray
        float32 probabilities, the image's shape; NaN where the image had no data.

    Examples
    --------
    >>> model = symmetric_unet()  # doctest: +SKIP
    >>> prob = predict_image(model, np.random.rand(300, 200) * 255)  # doctest: +SKIP
    >>> prob.shape  # doctest: +SKIP
    (300, 200)
    """
    tta = _check_tta(tta)
    arr = _as_image(image)
    nodata = ~np.isfinite(arr)
    if normalise:
        x = normalise_image(arr, value_range=value_range)
    else:
        if nodata.any():
            raise InvalidArgumentError(
                "the image has NaN or infinite pixels and normalise=False; use normalise=True "
                "(which fills them) or fill them first"
            )
        x = arr.astype(np.float32, copy=False)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")

    padded, slices = pad_to_multiple(x, MULTIPLE, mode="reflect")
    ny, nx = padded.shape
    if isinstance(tile, str):
        if tile != "auto":
            raise InvalidArgumentError(f"tile must be a positive integer, 'auto' or None, got {tile!r}")
        tile = None if ny * nx <= _MAX_BATCH_PIXELS else _AUTO_TILE
    if tile is None:
        tile_y, tile_x, halo_px = ny, nx, 0
    else:
        if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
            raise InvalidArgumentError(f"tile must be a positive integer, 'auto' or None, got {tile!r}")
        if halo is None:
            halo = receptive_margin(_model_kernel_size(model))
        if isinstance(halo, bool) or not isinstance(halo, (int, np.integer)) or halo < 0:
            raise InvalidArgumentError(f"halo must be a non-negative integer or None, got {halo!r}")
        tile_y = tile_x = _round_up(max(int(tile), 1), MULTIPLE)
        halo_px = _round_up(int(halo), MULTIPLE)
    rows = _windows(ny, tile_y, halo_px)
    cols = _windows(nx, tile_x, halo_px)
    jobs = [(r, c) for r in rows for c in cols]

    window_px = (rows[0][3] - rows[0][2]) * (cols[0][3] - cols[0][2])
    batch_size = max(1, min(int(batch_size), _MAX_BATCH_PIXELS // window_px))
    out = np.zeros((ny, nx), dtype=np.float32)
    predict_windows(model, padded, jobs, batch_size, out=out, progress=progress, tta=tta)
    result = crop(out, slices)
    result[nodata] = np.nan
    return result


# --------------------------------------------------------------------------------------------
# model description and cost
# --------------------------------------------------------------------------------------------
def describe_model(model: "keras.Model") -> dict[str, Any]:
    """Architecture parameters of a model, as stored in a model file's metadata.

    Returns a JSON-serialisable dict: ``name``, ``kernel_size``, ``filters`` (of the 3x3/7x7/...
    convolutions, in order), ``filter_multiple`` (filters[0] / 16), ``dropout`` (the rates of the
    model's Dropout layers, in order), ``params`` and ``input_channels``.
    """
    keras = _keras()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    body = [layer for layer in convs if layer.name != "output_conv"]
    if len(body) == len(convs):  # a foreign model: its last convolution is the output head
        body = body[:-1]
    filters = [int(layer.filters) for layer in body]
    return {
        "name": str(model.name),
        "kernel_size": int(max(max(layer.kernel_size) for layer in body)) if body else None,
        "filters": filters,
        "filter_multiple": (filters[0] / DEFAULT_FILTERS[0]) if filters else None,
        "dropout": [float(layer.rate) for layer in model.layers if isinstance(layer, keras.layers.Dropout)],
        "params": int(model.count_params()),
        "input_channels": int(model.inputs[0].shape[-1]),
    }


def flops_per_pixel(model: "keras.Model") -> float:
    """Floating-point operations per input pixel of one forward pass (convolutions only).

    Each ``Conv2D`` costs ``2 * k_h * k_w * c_in * c_out`` FLOPs per output pixel at its own
    resolution; the sum is divided by the number of full-resolution pixels.  Pooling,
    upsampling, additions and activations are ignored (well under 1 %).  The default Symmetric
    UNet costs 17,420 FLOP/px.

    Examples
    --------
    >>> flops_per_pixel(symmetric_unet())  # doctest: +SKIP
    17420.0
    """
    keras = _keras()
    side = 2 * MULTIPLE
    config = model.get_config()
    # rebuild the same graph on a concrete input size, so every layer's output size is known
    for layer in config.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            shape = layer["config"].get("batch_shape") or layer["config"].get("batch_input_shape")
            layer["config"]["batch_shape"] = [1, side, side, shape[-1]]
            layer["config"].pop("batch_input_shape", None)
    try:
        concrete = model.__class__.from_config(config)
    except Exception as exc:  # noqa: BLE001 - any model that cannot be rebuilt
        raise ModelError(f"cannot rebuild model {model.name!r} on a {side}x{side} input to count FLOPs: {exc}") from exc
    total = 0.0
    for layer in concrete.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += 2.0 * kh * kw * cin * cout * h * w
    return total / (side * side)


# --------------------------------------------------------------------------------------------
# model files
# --------------------------------------------------------------------------------------------
def default_weights_path() -> Path:
    """Path of the shipped default weights (may not exist)."""
    return DEFAULT_WEIGHTS


def default_model_for(pixel_size_m: float) -> Path:
    """The shipped model for imagery of this pixel size (metres).

    Pixels finer than :data:`FINE_PIXEL_SIZE_M` get the model for fine imagery (trained on
    THEMIS and CTX) when it is installed; everything else the THEMIS default.  Exactly 50 m goes
    to the THEMIS default, within a relative 1e-6 (a 50 m grid in degrees, 1185.494 px/deg, gives
    49.999998 m: the same product chooses the same model on any grid).  Name a model
    (``model=``, CLI ``--model``) to override.

    Examples
    --------
    >>> default_model_for(100.0).name
    'symmetric_unet.keras'
    >>> default_model_for(6.0).name  # doctest: +SKIP
    'fine_unet.keras'
    """
    # georeferencing's float noise (px/deg to metres) must not decide the model at the threshold
    if pixel_size_m < FINE_PIXEL_SIZE_M * (1.0 - _FINE_TOLERANCE) and FINE_WEIGHTS.is_file():
        return FINE_WEIGHTS
    return DEFAULT_WEIGHTS


def _no_default_weights(path: Path) -> ModelError:
    return ModelError(
        f"no default model weights are installed at {path}. Train a model with `marscraters train ...` "
        "(or marscraters.training) and load it with load_model('model.keras'), or copy a trained "
        f".keras file to {path}."
    )


def _resolve(path: str | os.PathLike | None) -> Path:
    if path is None:
        path = default_weights_path()
        if not Path(path).exists():
            raise _no_default_weights(Path(path))
    return Path(path)


def save_model(
    model: "keras.Model",
    path: str | os.PathLike,
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
    weights_dtype: str = "float32",
) -> Path:
    """Save a model to a Keras ``.keras`` file, with marscraters metadata inside it.

    The file is a normal Keras archive (``keras.saving.load_model`` reads it) with one extra
    entry, ``marscraters.json``: the format name and version, the marscraters, Keras and backend
    versions, the save time, the architecture (:func:`describe_model`) and ``metadata``.  The
    file is written to a temporary name and renamed, so a failed save leaves nothing behind.

    Parameters
    ----------
    model
        The Keras model.
    path
        Output path; must end in ``.keras``.
    metadata
        Extra JSON-serialisable information (training data, epochs, scores...).  Its keys must
        not clash with the reserved ones (``format``, ``architecture``, ...).
    overwrite
        Replace an existing file.
    weights_dtype
        ``"float32"`` (default) or ``"float16"``: store the weights rounded to half precision,
        for half the file size (how the shipped default stays small).  Keras loads them back
        into float32 variables, so the model still computes in float32; only the rounding of
        the weights (relative error <= 2**-11 for |w| >= 6e-5; smaller ones keep an absolute
        error <= 3e-8) changes its map.  Weights beyond float16's range (|w| > 65504) are
        refused.  Optimizer state is kept in float32.  Recorded as ``weights_dtype``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> save_model(symmetric_unet(), "unet.keras", metadata={"epochs": 0})  # doctest: +SKIP
    >>> save_model(model, "small.keras", weights_dtype="float16")  # doctest: +SKIP
    """
    keras = _keras()
    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidArgumentError(f"model files must end in .keras, got {path}; use e.g. {path.with_suffix('.keras')}")
    metadata = dict(metadata or {})
    clash = sorted(set(metadata) & set(_RESERVED_METADATA))
    if clash:
        raise InvalidArgumentError(f"metadata keys {clash} are reserved by marscraters; rename them")
    if weights_dtype not in ("float32", "float16"):
        raise InvalidArgumentError(f"weights_dtype must be 'float32' or 'float16', got {weights_dtype!r}")
    from . import __version__

    info = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "marscraters_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": describe_model(model),
        "weights_dtype": weights_dtype,
        **metadata,
    }
    try:
        text = json.dumps(info, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"metadata must be JSON-serialisable (no NaN): {exc}") from exc
    with atomic_path(path, overwrite) as tmp:
        with warnings.catch_warnings():
            # Keras' TensorFlow backend trips a NumPy 2 deprecation while saving variables
            warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
            model.save(tmp)
        if weights_dtype == "float16":
            _halve_weights(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(_METADATA_ENTRY, text)
    return path


def _halve_weights(path: Path) -> None:
    """Rewrite the float32 layer variables of a freshly saved ``.keras`` archive as float16, in place.

    Keras' loader assigns each stored array to its (float32) variable, casting it, so the
    archive stays a normal Keras file.  Only the layers' weights are halved: optimizer state
    (Adam's small moment estimates would flush to zero), other groups, attributes and
    non-float32 arrays are copied unchanged.
    """
    import io

    import h5py

    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info.filename)) for info in archive.infolist()]
    weights = dict((info.filename, data) for info, data in entries).get(_WEIGHTS_ENTRY)
    if weights is None:
        raise ModelError(f"{path} holds no {_WEIGHTS_ENTRY} to store in float16; save with weights_dtype='float32'")
    buf = io.BytesIO()
    with h5py.File(io.BytesIO(weights), "r") as src, h5py.File(buf, "w") as dst:
        dst.attrs.update(src.attrs)

        def copy(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group):
                dst.require_group(name).attrs.update(obj.attrs)
            elif obj.dtype != np.float32 or not name.startswith("layers/"):
                src.copy(obj, dst, name=name)  # as it was, chunking and attributes included
            else:
                data = obj[()]
                with np.errstate(over="ignore"):
                    half = data.astype(np.float16)
                if not np.isfinite(half[np.isfinite(data)]).all():
                    raise InvalidArgumentError(
                        f"weights in {name} exceed float16's range (|w| up to {np.abs(data).max():.3g} > 65504); "
                        "save this model with weights_dtype='float32'")
                dst.create_dataset(name, data=half).attrs.update(obj.attrs)

        src.visititems(copy)
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            archive.writestr(info, buf.getvalue() if info.filename == _WEIGHTS_ENTRY else data)


def read_model_metadata(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The marscraters metadata of a model file (``{}`` for a plain Keras file without it).

    ``path=None`` reads the shipped default weights.

    Raises
    ------
    ModelError
        If the file is missing or is not a readable ``.keras`` archive.
    """
    path = _resolve(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist; check the path, or train one with `marscraters train ...`")
    if path.suffix != ".keras":
        return {}
    try:
        with zipfile.ZipFile(path) as archive:
            if _METADATA_ENTRY not in archive.namelist():
                return {}
            return json.loads(archive.read(_METADATA_ENTRY))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(
            f"model file {path} is truncated, corrupt or not a .keras archive ({exc}); re-download or re-save it "
            "(`marscraters train ...` writes a new one)"
        ) from exc


def load_model(path: str | os.PathLike | None = None, *, compile: bool = False) -> "keras.Model":
    """Load a model file written by :func:`save_model` (or any Keras ``.keras`` / legacy ``.h5`` file).

    Parameters
    ----------
    path
        The file; ``None`` loads the default weights shipped in ``marscraters/weights/``.
    compile
        Restore the optimizer and loss too (not needed for prediction).

    Returns
    -------
    keras.Model
        With its file's metadata attached (``_attached_metadata``), which
        :func:`marscraters.detect.detect` reads when given the loaded model.

    Raises
    ------
    ModelError
        If the file is missing, corrupt, written by a newer marscraters, or not a one-band
        image-to-probability model; or no default weights are installed (the message says how
        to train them).

    Examples
    --------
    >>> model = load_model("unet.keras")  # doctest: +SKIP
    """
    path = _resolve(path)
    if not path.exists():
        raise ModelError(
            f"model file {path} does not exist; check the path, or train a model with `marscraters train ...`"
        )
    if path.suffix not in (".keras", ".h5"):
        raise ModelError(f"model file {path} must be a Keras .keras (or legacy .h5) file")
    meta = read_model_metadata(path)
    if meta:
        version = meta.get("format_version")
        if meta.get("format") != MODEL_FORMAT or not isinstance(version, int):
            raise ModelError(f"model file {path} has unrecognised marscraters metadata; re-save it with save_model")
        if version > MODEL_FORMAT_VERSION:
            raise ModelError(
                f"model file {path} uses model-format version {version}, newer than this marscraters "
                f"supports ({MODEL_FORMAT_VERSION}); upgrade marscraters (pip install -U marscraters)"
            )
    keras = _keras()
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds of errors for bad files
        raise ModelError(
            f"cannot load model file {path}: {type(exc).__name__}: {exc}. The file may be truncated or "
            "written by an incompatible Keras; re-download it or re-train with `marscraters train ...`"
        ) from exc
    in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(in_shape) != 4 or len(out_shape) != 4 or out_shape[-1] != 1 or in_shape[-1] != 1:
        raise ModelError(
            f"model file {path} maps {in_shape} -> {out_shape}, but marscraters needs a one-band image to "
            "one-band probability model (N, H, W, 1) -> (N, H, W, 1); build one with symmetric_unet()"
        )
    # every new image size traces the predict function once; TF calls that "retracing" and warns
    # when a loop over images of several sizes (detect on a folder) does it, which is not a fault
    _quiet_retracing_warning()
    # the file's metadata travels with the model, so that detect(model=<this>) uses its pyramid band,
    # native pixel size, kind and finder settings (object.__setattr__: Keras would track a dict)
    object.__setattr__(model, _METADATA_ATTR, {**meta, "name": meta.get("name", path.stem)})
    return model


def _attached_metadata(model: Any) -> dict[str, Any] | None:
    """The metadata of the file a loaded Keras model was read from by :func:`load_model` (``{}``
    plus its ``name`` for a file without marscraters metadata); None for a model built or loaded
    otherwise (its settings are then unknown)."""
    meta = getattr(model, _METADATA_ATTR, None)
    return dict(meta) if isinstance(meta, dict) else None


# --------------------------------------------------------------------------------------------
# arithmetic precision of inference
# --------------------------------------------------------------------------------------------
#: What ``precision=`` accepts in :func:`marscraters.detect.detect` and :func:`marscraters.segment.segment`.
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")
# CPU flags of native bfloat16 dot products (x86: AVX-512 BF16, AMX); without them TensorFlow
# emulates bfloat16, which is slower than float32
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def add_precision_argument(parser: Any) -> None:
    """Add the ``--precision`` flag of the commands that run the network (``detect``, ``segment``)."""
    parser.add_argument("--precision", choices=list(PRECISIONS), default="float32",
                        help="the network's arithmetic: 'auto' is bfloat16 on CPUs that compute it natively (about "
                             "twice as fast there) and float32 elsewhere; float32 gives the same numbers on every "
                             "machine (default: float32)")


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    """Whether this machine's CPU computes bfloat16 dot products natively (Linux flags; False elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return any(f in flags for f in _BF16_FLAGS)


def _on_accelerator() -> bool:
    """Whether Keras' backend computes on a GPU (or another accelerator) rather than the CPU."""
    keras = _keras()
    try:
        # the backend's own devices: a GPU or TPU when it has one, else the CPU
        devices = keras.distribution.list_devices()
    except Exception:  # noqa: BLE001 - a backend without the call, or a broken device stack: the CPU computes
        return False
    return any(not str(d).lower().startswith("cpu") for d in devices)


def resolve_precision(precision: str = "auto") -> str:
    """The arithmetic the network will run in: ``"float32"`` or ``"bfloat16"``.

    ``"auto"`` is bfloat16 where it is both native and measured faster: the TensorFlow backend on a
    CPU with bfloat16 dot products (``avx512_bf16`` or ``amx_bf16``), which halves the network's
    time there (``benchmarks/bench_precision.py``, rule ``benchmarks/splits/precision_rule.md``);
    float32 everywhere else, accelerators included.

    Parameters
    ----------
    precision
        ``"auto"``, ``"float32"`` or ``"bfloat16"``.

    Returns
    -------
    str
        ``"float32"`` or ``"bfloat16"``.

    Raises
    ------
    InvalidArgumentError
        If ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise InvalidArgumentError(
            f"precision={precision!r} must be one of {', '.join(PRECISIONS)} (CLI: --precision "
            f"{'|'.join(PRECISIONS)}); 'float32' gives the same numbers on every machine"
        )
    if precision != "auto":
        return precision
    keras = _keras()
    native = keras.backend.backend() == "tensorflow" and _cpu_has_bf16() and not _on_accelerator()
    return "bfloat16" if native else "float32"


def with_precision(model: "keras.Model", precision: str) -> "keras.Model":
    """``model`` computing in ``precision`` (``"float32"`` or ``"bfloat16"``), for inference.

    bfloat16: a copy whose layers compute in bfloat16 (Keras' ``mixed_bfloat16`` policy: the
    weights stay float32 and are cast on use), except the output layer, which stays float32 so
    that the probabilities keep float32's resolution near the finder's thresholds.  float32: the
    model itself.  Not for training: the copy shares no variables with ``model``.

    Parameters
    ----------
    model
        A Keras model with a layer graph (functional or sequential), e.g. :func:`load_model`'s.
    precision
        As for :func:`resolve_precision` (``"auto"`` is resolved here).

    Returns
    -------
    keras.Model

    Raises
    ------
    ModelError
        If the model cannot be copied layer by layer (a subclassed model); float32 still runs it.
    """
    precision = resolve_precision(precision)
    if precision == "float32":
        return model
    keras = _keras()
    # the layers that make the outputs stay float32 (a model without a layer graph has none)
    try:
        outputs = {id(t._keras_history[0]) for t in model.outputs}
    except AttributeError:
        outputs = set()

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if id(layer) not in outputs:
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except Exception as exc:  # noqa: BLE001 - subclassed models cannot be cloned layer by layer
        raise ModelError(
            f"cannot run model {getattr(model, 'name', '?')!r} in bfloat16 ({type(exc).__name__}: {exc}); "
            "pass precision='float32' (CLI: --precision float32)"
        ) from exc
    return copy
