"""marscraters: find impact craters on Mars and turn them into crater catalogs and surface ages.

The public API is re-exported here lazily, so ``import marscraters`` stays fast and does not
import TensorFlow until a model is needed.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# TensorFlow's C++ start-up chatter drowns the progress bars; users can still set it themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from .errors import *  # noqa: F401,F403  (the exception hierarchy is cheap and always available)

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # crs
    "MARS_GEOGRAPHIC": "crs",
    "MARS_EQUIRECTANGULAR": "crs",
    "MARS_EQUIRECTANGULAR_180": "crs",
    "MARS_RADIUS_M": "crs",
    "Grid": "crs",
    # mosaic
    "read_themis_tile": "mosaic",
    "read_geotiff": "mosaic",
    "read_image": "mosaic",
    "mosaic_from_array": "mosaic",
    "combine_tiles": "mosaic",
    "fill_missing": "mosaic",
    "ingest": "mosaic",
    "open_mosaic": "mosaic",
    "mosaic_footprint": "mosaic",
    # catalogs
    "read_catalog": "catalog",
    "make_catalog": "catalog",
    "filter_catalog": "catalog",
    "write_catalog": "catalog",
    "read_chips": "chips",
    "read_yolo_labels": "chips",
    "read_voc_labels": "chips",
    "pyramid_levels": "pyramid",
    # targets
    "render_targets": "targets",
    "draw_targets": "targets",
    # model, training, extraction, scores, detection
    "symmetric_unet": "model",
    "widen_unet": "model",
    "load_model": "model",
    "save_model": "model",
    "predict_image": "model",
    "train": "training",
    "TrainConfig": "training",
    "extract_craters": "extract",
    "verify_craters": "verify",
    "load_verifier": "verify",
    # whole mosaics on Dask
    "segment_to_zarr": "segment",
    "catalog_from_probability": "assemble",
    "catalog_from_mosaic": "assemble",
    # crater-count model ages
    "model_age": "chronology",
    "csfd": "chronology",
    "ModelAge": "chronology",
    "DetectorResponse": "chronology",
    "fit_response": "chronology",
    "count_area_km2": "chronology",
    # synthetic data
    "synthetic_surface": "synthetic",
    "synthetic_dots": "synthetic",
    # downloads
    "download_themis": "download",
    "download_robbins": "download",
}

# Functions named like their own module are bound eagerly (both modules are light): a lazy
# binding would be shadowed by the submodule once anything imports it.
from .detect import detect  # noqa: E402
from .evaluate import evaluate, match_craters  # noqa: E402

__all__ = sorted(_LAZY) + ["__version__", "cluster", "detect", "evaluate", "match_craters"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    if name == "cluster":
        # the module itself is callable as marscraters.cluster(gpus=..., scheduler=...)
        return importlib.import_module(".cluster", __name__)
    if name == "accessor":
        return importlib.import_module(".accessor", __name__)
    raise AttributeError(f"module 'marscraters' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# Register the ``ds.craters`` accessor whenever xarray is importable (it is a core dependency).
from . import accessor as _accessor  # noqa: E402,F401
