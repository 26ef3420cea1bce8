"""The mosaic route's edges: overlapping inputs, outputs over files, recorded settings and models,
paths and probability maps where a mosaic is expected, and the messages and docs that describe them.

No test runs the network: coarser pyramid levels are "segmented" by a stand-in that records the
model it is given, and probability maps are made in code.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import marscraters  # noqa: F401  (registers ds.craters)
from marscraters import cli
from marscraters.assemble import catalog_from_mosaic, catalog_from_probability
from marscraters.errors import InvalidArgumentError, MosaicError, OutputExistsError
from marscraters.model import mosaic_value_range, read_model_metadata
from marscraters.mosaic import (
    combine_tiles,
    ingest,
    mosaic_from_array,
    open_mosaic,
    validate_mosaic,
)
from marscraters.segment import segment_to_zarr

from .conftest import REPO, raise_if_dask_computes

PPD = 592.747  # THEMIS' 100 m pixels, in pixels per degree
WEIGHTS = REPO / "marscraters" / "weights"
THEMIS, FINE = WEIGHTS / "symmetric_unet.keras", WEIGHTS / "fine_unet.keras"


def _mosaic(n: int = 400, seed: int = 0):
    image = np.random.default_rng(seed).integers(1, 255, (n, n)).astype("float32")
    return mosaic_from_array(image, (0.0, 0.0, n / PPD, n / PPD), name="synthetic")


def _prob(ds, model=THEMIS, **attrs):
    """A probability map on ``ds``'s grid, recording ``model`` as segment() does (no craters)."""
    prob = xr.zeros_like(ds["ir"]).rename("crater_probability")
    meta = read_model_metadata(model) if Path(model).exists() else {}
    prob.attrs = {"model_name": "symmetric_unet", "model_file": str(model),
                  "model_saved_at": str(meta.get("saved_at", "")), **attrs}
    return prob


@pytest.fixture
def fake_segment(monkeypatch):
    """Stand in for segment(): record the model each level is segmented with, return an empty map."""
    calls: list = []

    def segment(level_ds, model=None, **options):
        calls.append((model, options))
        return _prob(level_ds)

    monkeypatch.setattr("marscraters.segment.segment", segment)
    return calls


# --------------------------------------------------------------------------------------------
# 1. overlaps: the first input with data wins
# --------------------------------------------------------------------------------------------
def _strips(folder: Path) -> tuple[Path, Path]:
    """Two 200-px GeoTIFF strips overlapping by 100 px, each with a 30-px black collar (0) on the
    side that lies over the other strip: A grey 100 (collar east), B grey 200 (collar west)."""
    import rasterio
    from rasterio.transform import from_origin

    a = np.full((200, 200), 100, np.uint8)
    a[:, -30:] = 0
    b = np.full((200, 200), 200, np.uint8)
    b[:, :30] = 0
    paths = []
    for name, arr, west in (("stripA.tif", a, 0.0), ("stripB.tif", b, 100 / PPD)):
        path = folder / name
        with rasterio.open(path, "w", driver="GTiff", height=200, width=200, count=1, dtype="uint8",
                           crs="IAU_2015:49900", transform=from_origin(west, 200 / PPD, 1 / PPD, 1 / PPD)) as f:
            f.write(arr, 1)
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize("a_first", [True, False])
def test_ingest_overlap_later_strip_fills_earlier_collar(tmp_path, a_first):
    a, b = _strips(tmp_path)
    cube = ingest([a, b] if a_first else [b, a], tmp_path / "strips.zarr", nodata=0, progress=False)
    ir = open_mosaic(cube).ir.values
    assert ir.shape == (200, 300) and not np.isnan(ir).any()  # no valid pixel lost to a collar
    assert (ir[:, :130] == 100).all() and (ir[:, 170:] == 200).all()
    # where both have data, the first input wins
    assert (ir[:, 130:170] == (100 if a_first else 200)).all()
    # still stored as the strips' 8-bit levels, 0 for no data
    assert zarr.open_group(str(cube), mode="r")["ir"].dtype == np.uint8


def test_combine_tiles_fills_nan_in_input_order_lazily():
    import dask.array as da

    bounds = (0.0, 0.0, 40 / PPD, 40 / PPD)
    first = np.full((40, 40), 1.0, np.float32)
    first[:20] = np.nan  # no data in the north half
    second = np.full((40, 40), 2.0, np.float32)
    second[:10] = np.nan  # ... and in the north quarter
    third = np.full((40, 40), 3.0, np.float32)
    tiles = [mosaic_from_array(da.from_array(a, chunks=16), bounds) for a in (first, second, third)]
    with raise_if_dask_computes():
        out = combine_tiles(tiles)
    assert isinstance(out.ir.data, da.Array)
    ir = out.ir.values
    assert (ir[:10] == 3).all() and (ir[10:20] == 2).all() and (ir[20:] == 1).all()


# --------------------------------------------------------------------------------------------
# 2. a store never replaces a file, and says so before any work
# --------------------------------------------------------------------------------------------
def test_segment_to_zarr_refuses_to_replace_a_file(tmp_path):
    target = tmp_path / "craters.gpkg"
    target.write_text("my hand-checked catalog")
    # a missing model: the refusal must come before the model is even looked at
    with pytest.raises(OutputExistsError, match="existing file"):
        segment_to_zarr(_mosaic(64), target, overwrite=True, model=tmp_path / "missing.keras", progress=False)
    assert target.read_text() == "my hand-checked catalog"


def test_segment_cli_refuses_to_replace_a_file(tmp_path, capsys):
    cube = ingest(_mosaic(64), tmp_path / "cube.zarr", progress=False)
    target = tmp_path / "craters.gpkg"
    target.write_text("my hand-checked catalog")
    argv = ["-q", "segment", str(cube), "--out", str(target), "--overwrite", "--model", str(tmp_path / "no.keras")]
    assert cli.main(argv) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert target.read_text() == "my hand-checked catalog"


def test_ingest_refuses_a_file_before_reading(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("notes")
    # the input does not exist: refusing the output first means nothing was read
    with pytest.raises(OutputExistsError, match="existing file"):
        ingest([tmp_path / "missing.tif"], target, overwrite=True, progress=False)
    assert target.read_text() == "notes"


# --------------------------------------------------------------------------------------------
# 3. value_range="auto" recorded on a map
# --------------------------------------------------------------------------------------------
def test_catalog_of_a_map_made_with_auto_value_range(fake_segment):
    ds = _mosaic()
    prob = _prob(ds, value_range="auto")
    cat = ds.craters.catalog(prob, levels=1, verify=False, progress=False)
    assert len(cat) == 0 and not fake_segment
    # on a pyramid, the coarser levels get level 0's stretch of the mosaic
    catalog_from_mosaic(ds, prob, verify=False, progress=False)
    assert fake_segment and fake_segment[0][1]["value_range"] == mosaic_value_range(ds["ir"].data, "auto")


# --------------------------------------------------------------------------------------------
# 4. another model than the map's
# --------------------------------------------------------------------------------------------
def test_other_model_warns_and_coarser_levels_use_the_maps_model(fake_segment):
    ds = _mosaic()
    with pytest.warns(UserWarning, match=r"made by marscraters-themis-outline-v11 .*the model given is "
                      r"marscraters-fine-outline-v4 .*segmented with the map's model"):
        cat = catalog_from_mosaic(ds, _prob(ds), model=FINE, verify=False, progress=False)
    # the coarser levels, by the network that made level 0
    assert fake_segment and {Path(m) for m, _ in fake_segment} == {THEMIS}
    assert cat.attrs["model"] == "marscraters-fine-outline-v4"
    assert "marscraters-themis-outline-v11" in cat.attrs["segmentation_model"]


def test_other_model_when_the_maps_model_is_gone(fake_segment, tmp_path):
    ds = _mosaic()
    prob = _prob(ds, model=tmp_path / "gone.keras", model_saved_at="2020-01-01T00:00:00+00:00")
    with pytest.warns(UserWarning, match="gone or was saved again.*segmented with marscraters-fine-outline-v4"):
        cat = catalog_from_mosaic(ds, prob, model=FINE, verify=False, progress=False)
    assert fake_segment and {Path(m) for m, _ in fake_segment} == {FINE}
    assert "gone.keras" in cat.attrs["segmentation_model"] and "coarser levels" in cat.attrs["segmentation_model"]


def test_same_model_at_another_path_is_no_other_model(fake_segment, tmp_path):
    ds = _mosaic()
    copy = tmp_path / "copy.keras"
    shutil.copyfile(THEMIS, copy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cat = catalog_from_mosaic(ds, _prob(ds), model=copy, verify=False, progress=False)
    assert not [w for w in seen if "made by" in str(w.message)]
    assert "segmentation_model" not in cat.attrs


def test_other_model_one_level_and_on_the_command_line(tmp_path, capsys):
    ds = _mosaic(128)
    prob = _prob(ds)
    with pytest.warns(UserWarning, match="made by marscraters-themis-outline-v11") as seen:
        cat = catalog_from_probability(prob, model=FINE, verify=False, progress=False)
    assert not [w for w in seen if "pyramid" in str(w.message)]  # no level was segmented
    assert "marscraters-themis-outline-v11" in cat.attrs["segmentation_model"]
    store = tmp_path / "pred.zarr"
    prob.to_dataset().to_zarr(store, consolidated=False)
    argv = ["catalog", str(store), "--model", str(FINE), "--no-verify", "--quiet", "--out", str(tmp_path / "c.gpkg")]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "Leave out --model" in err and "model=" not in err


# --------------------------------------------------------------------------------------------
# 5. paths where xarray objects are expected
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_path", [str, Path])
def test_mosaic_and_prob_paths_say_how_to_open_them(tmp_path, as_path):
    ds = _mosaic(64)
    cube = as_path(ingest(ds, tmp_path / "cube.zarr", progress=False))
    with pytest.raises(InvalidArgumentError, match=r"mosaic=marscraters\.open_mosaic\("):
        catalog_from_probability(_prob(ds), mosaic=cube, progress=False)
    with pytest.raises(InvalidArgumentError, match=r"xr\.open_zarr\("):
        catalog_from_probability(as_path(tmp_path / "pred.zarr"), progress=False)
    with pytest.raises(MosaicError, match=r"marscraters\.open_mosaic\("):
        catalog_from_mosaic(cube, progress=False)


# --------------------------------------------------------------------------------------------
# 6. a probability map where a mosaic is expected
# --------------------------------------------------------------------------------------------
def test_probability_map_as_a_mosaic_says_what_it_is(tmp_path):
    ds = _mosaic(64)
    pred = _prob(ds).to_dataset()
    for call in (lambda: validate_mosaic(pred), lambda: pred.craters.segment(), lambda: pred.craters.catalog()):
        with pytest.raises(MosaicError, match=r"crater probability map .*catalog_from_probability\(prob, mosaic="):
            call()
    store = tmp_path / "pred.zarr"
    pred.to_zarr(store, consolidated=False)
    with pytest.raises(MosaicError, match=r"probability map .*marscraters catalog .*pred\.zarr --mosaic"):
        open_mosaic(store)


# --------------------------------------------------------------------------------------------
# 7. the guide's claim and the diameter message
# --------------------------------------------------------------------------------------------
def test_segment_guide_qualifies_the_whole_image_claim():
    text = (REPO / "docs" / "guide" / "segment.md").read_text()
    intro = text.split("\n\n")[1]
    assert "at every pixel, for every chunking" not in intro
    assert 'nodata_fill="mean"' in intro and "gap" in intro


def test_max_diameter_message_for_python_and_the_command_line(tmp_path, capsys):
    ds = _mosaic(64)
    prob = _prob(ds)
    with pytest.raises(InvalidArgumentError, match=r"max_diameter_px=.* at least 5\b.*got 3"):
        catalog_from_probability(prob, extract_options={"max_diameter_px": 3}, verify=False, progress=False)
    # a Python caller who set both hears about both
    with pytest.raises(InvalidArgumentError, match="min_diameter_px=8.0 and max_diameter_px=6.0"):
        catalog_from_probability(prob, extract_options={"min_diameter_px": 8, "max_diameter_px": 6},
                                 verify=False, progress=False)
    store = tmp_path / "pred.zarr"
    prob.to_dataset().to_zarr(store, consolidated=False)
    argv = ["catalog", str(store), "--max-diameter-px", "3", "--quiet", "--out", str(tmp_path / "x.gpkg")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--max-diameter-px" in err and "at least 5" in err
    assert "min_diameter_px" not in err and "max_diameter_px" not in err
