"""Detect craters on any plain image: the model plus the circle finder, no georeferencing.

:func:`detect` takes a grey (or RGB) image of any size and its pixel size in metres and returns
PixelCraters with ``diameter_m``.  The image is resampled to the model's native pixel scale when
it is far from it (the shipped model learnt from ~100 m/px THEMIS chips with zoom augmentation),
predicted in exact overlapping tiles (:func:`marscraters.model.predict_image`), and turned into
circles by :func:`marscraters.extract.extract_craters`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import CorruptImageError, ImageReadError, InvalidArgumentError, ModelError

__all__ = ["read_grey_image", "detect", "model_info"]

# Within this factor of the native scale the image is used as it is (the model saw zooms of
# 0.7-1.3 in training); beyond it, the image is resampled to the native scale.
_SCALE_TOLERANCE = 1.3
DEFAULT_NATIVE_PIXEL_SIZE_M = 100.0
def read_grey_image(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG, JPEG, PGM or TIFF image as a 2-D float32 grey array (RGB -> luminance).

    Raises
    ------
    ImageReadError
        If the file does not exist; :class:`CorruptImageError` if it cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"image {path} is a folder; give the path of one image file (PNG, JPEG, PGM or TIFF) in it")
    if not path.is_file():
        raise ImageReadError(f"image {path} does not exist; check the path")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                im = im.convert("L")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"{path} is not a readable image ({exc}); re-download or re-export it") from exc
    if arr.ndim != 2:
        raise ImageReadError(f"{path} decoded to shape {arr.shape}; expected a single-band image")
    return arr.astype(np.float32)


def _as_grey(image: Any) -> np.ndarray:
    arr = np.asarray(image.values if hasattr(image, "dims") else image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype.kind in "iuf":
        # ITU-R 601 luma of the RGB bands; alpha is ignored
        arr = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    return arr


def model_info(model: Any = None) -> dict[str, Any]:
    """Target kind and native pixel size of a model (path, loaded model or None = shipped default)."""
    from .model import default_weights_path, read_model_metadata

    info: dict[str, Any] = {"kind": "outline", "native_pixel_size_m": DEFAULT_NATIVE_PIXEL_SIZE_M, "name": "unknown",
                            "extract": {}}
    path = default_weights_path() if model is None else model if isinstance(model, (str, os.PathLike)) else None
    if path is not None:
        meta = read_model_metadata(path)
        training = meta.get("training", {})
        info["kind"] = training.get("kind", info["kind"])
        info["native_pixel_size_m"] = float(meta.get("native_pixel_size_m", info["native_pixel_size_m"]))
        info["name"] = meta.get("name", Path(path).stem)
        # circle-finder settings chosen on the model's validation chips (benchmarks/tune_extraction.py)
        info["extract"] = dict(meta.get("extract", {}))
        info["version"] = meta.get("marscraters_version")
    return info


# the smallest crater the network finds, in pixels at its native pixel size
_MIN_CRATER_PX = 16.0


def _check_resampling(shape: tuple[int, ...], factor: float, pixel_size_m: float, native: float) -> None:
    """Refuse pixel sizes that resample the image to nothing or to more than memory holds, and
    warn when the resampling hides the small craters (usually a pixel size in the wrong unit)."""
    new = tuple(max(int(round(n * factor)), 0) for n in shape[:2])
    hint = (f"pixel_size_m={pixel_size_m:g} m, and the model works at {native:g} m per pixel, so the image is "
            f"resampled by {factor:.3g} to {new[1]} x {new[0]} px")
    if min(new) < 32:
        raise InvalidArgumentError(f"{hint}: too small to hold a crater. Is the pixel size in metres (THEMIS "
                                   "Day IR: 100; the 256 px/deg ASU tiles: 231)?")
    if factor > 1 and new[0] * new[1] > max(4e8, float(np.prod(shape[:2]))):
        raise InvalidArgumentError(f"{hint}, more than memory holds. Is the pixel size in metres? For a large "
                                   "mosaic, ingest it and use segment() / ds.craters.catalog(), which work in chunks.")
    if factor < 0.25:
        warnings.warn(f"{hint}: craters smaller than about {_MIN_CRATER_PX * native:g} m "
                      f"({_MIN_CRATER_PX / factor:.0f} px of this image) cannot be found. The model was trained on "
                      "THEMIS at ~100 m per pixel; finer imagery needs a model trained on it.", UserWarning, stacklevel=3)


def detect(
    image: Any,
    *,
    pixel_size_m: float | None,
    model: Any = None,
    kind: str | None = None,
    native_pixel_size_m: float | None = None,
    value_range: tuple[float, float] | str | None = None,
    batch_size: int = 4,
    extract_options: dict | None = None,
    progress: bool = False,
    tta: int = 1,
    verify: Any = None,
) -> pd.DataFrame:
    """Find craters on a plain image.

    Parameters
    ----------
    image
        2-D grey array (or an RGB ``(H, W, 3)`` array, converted to grey), any size; NaN = no data.
    pixel_size_m
        Size of one pixel on the ground, in metres (> 0).
    model
        Path of a model file, a loaded Keras model, or None for the shipped default.
    kind
        Target kind the model predicts (``filled``/``outline``/``ring``); read from the model file
        when None.
    native_pixel_size_m
        Pixel size the model was trained at; read from the model file when None (100 m for the
        shipped THEMIS model).
    value_range
        Grey-level range for :func:`marscraters.model.normalise_image`; default
        (:func:`marscraters.model.guess_value_range`, the rule ``segment`` applies to mosaics
        too) 0..1 for float images within 0..1 (an 8-bit image divided by 255), 0..255 for
        other images within 0..255, and a percentile stretch (``"auto"``), with a warning, for
        anything else (a 16-bit image) and for an image far darker, brighter or flatter than the
        training chips (levels spanning under 15 % of the guessed range, or a mean outside
        20-80 % of it; the chips span at least 22 % and average 40-60 %), such as reflectance
        of 0.05-0.25.
    batch_size, extract_options, progress
        Passed to prediction and to :func:`marscraters.extract.extract_craters`.  The options
        default to those stored in the model file (chosen on its validation chips); a
        ``min_score`` option drops detections scored below it.  With the verifier on, the
        finder's thresholds (``method``, ``threshold``, ``template_threshold``...) are the
        ones the verifier was trained on, and a warning names any of yours it replaced; sizes,
        NMS and scales stay yours, and ``min_score`` replaces the verifier's threshold.  Pass
        ``verify=False`` to run the finder with your own thresholds.
    tta
        Test-time augmentation: average the network's output over 1, 2, 4 or 8 orientations of
        the image (:func:`marscraters.model.predict_image`), for ``tta`` times the work.  For
        the shipped model it did not raise the validation F1 (``docs/model_card.md``).
    verify
        Second-stage verification (:mod:`marscraters.verify`): ``None`` uses the verifier the
        model file names (the shipped model names one), ``False`` turns it off, and a
        :class:`~marscraters.verify.Verifier` or a path uses that one.  With a verifier,
        ``score`` is its crater probability.

    Returns
    -------
    pandas.DataFrame
        ``x``, ``y`` (pixel column and row of the centre, origin at the centre of the top-left
        pixel), ``diameter_px``, ``diameter_m`` and ``score``, sorted by score.

    Warns
    -----
    UserWarning
        When the image is narrower than the smallest crater the model finds (16 px at its
        native scale): it is padded and searched, but cannot hold a crater.  When the grey
        levels are far from the training chips' and the image is stretched on its own.  Also when a fine
        pixel size shrinks the image so far that small craters cannot be found.

    Examples
    --------
    >>> craters = detect(read_grey_image("chip.png"), pixel_size_m=100)  # doctest: +SKIP
    """
    from skimage.transform import rescale

    from .model import (_as_image, _grey_levels, grey_sample, guess_value_range, load_model, normalise_image,
                        predict_image)
    from .verify import find_craters, merge_options, resolve_verifier

    if pixel_size_m is None:
        raise InvalidArgumentError("pixel_size_m is required: the ground size of one pixel in metres (e.g. 100)")
    if isinstance(pixel_size_m, (bool, np.bool_)):
        raise InvalidArgumentError(f"pixel_size_m must be a number of metres (e.g. 100), got {pixel_size_m!r}")
    try:
        pixel_size_m = float(pixel_size_m)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"pixel_size_m must be a number of metres, got {pixel_size_m!r}") from None
    if not (np.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise InvalidArgumentError(f"pixel_size_m must be a finite number of metres > 0 (e.g. 100), got {pixel_size_m}")
    arr = _as_image(_as_grey(image))
    loaded = hasattr(model, "predict")  # a Keras model object, not a file
    info = model_info(None if loaded else model)
    kind = kind or info["kind"]
    native = float(native_pixel_size_m or info["native_pixel_size_m"])
    factor = pixel_size_m / native  # > 1: coarser than native, so enlarge
    resampled = not (1 / _SCALE_TOLERANCE <= factor <= _SCALE_TOLERANCE)
    if resampled:  # before the model loads: a wrong unit fails fast
        _check_resampling(arr.shape, factor, pixel_size_m, native)
    elif min(arr.shape[:2]) < _MIN_CRATER_PX:
        # padded and searched all the same (the issue asks for small images to be padded), but say why it is empty
        warnings.warn(f"the image is {arr.shape[1]} x {arr.shape[0]} px, narrower than the smallest crater the "
                      f"model finds ({_MIN_CRATER_PX:g} px at {native:g} m per pixel), so no crater can be found in "
                      "it; detect on a larger image around it", UserWarning, stacklevel=2)
    _, lo, hi = _grey_levels(arr)  # an all-NaN or constant image fails here, before the model loads
    keras_model = model if loaded else load_model(model)
    if loaded:
        # a loaded Keras model names no verifier: only an explicit one is used with it
        if verify is True:
            raise ModelError("a loaded Keras model names no verifier; pass verify=<path of a verifier .keras> "
                             "or the model's file path instead of the loaded model")
        if verify is None:
            warnings.warn("a loaded Keras model names no verifier, so these are one-stage detections (more false "
                          "craters); pass the model's file path to use the verifier it names, verify=<verifier "
                          ".keras>, or verify=False to silence this", UserWarning, stacklevel=2)
        verifier = resolve_verifier(False if verify is None else verify, None)
    else:
        verifier = resolve_verifier(verify, model)
    if value_range is None:
        value_range = guess_value_range(grey_sample(arr), floating=arr.dtype.kind == "f", lo=lo, hi=hi)

    work = arr.astype(np.float32)
    if resampled:
        work = rescale(np.nan_to_num(work, nan=np.nanmean(work)), factor, order=1, anti_aliasing=factor < 1,
                       preserve_range=True).astype(np.float32)
    prob = predict_image(keras_model, work, batch_size=batch_size, value_range=value_range, progress=progress, tta=tta)
    # the verifier learned on the network's normalised input: give it the same image
    image = normalise_image(work, value_range=value_range) if verifier is not None else None
    craters = find_craters(prob, image, target=kind, verifier=verifier,
                           options=merge_options(info["extract"], extract_options, verifier))
    if resampled and len(craters):
        # back to the input's pixel index coordinates
        craters = craters.assign(
            x=(craters["x"] + 0.5) / factor - 0.5, y=(craters["y"] + 0.5) / factor - 0.5,
            diameter_px=craters["diameter_px"] / factor,
        )
    craters = craters.assign(diameter_m=craters["diameter_px"] * pixel_size_m)
    return craters[["x", "y", "diameter_px", "diameter_m", "score"]].sort_values("score", ascending=False).reset_index(drop=True)
