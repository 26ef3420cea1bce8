"""The image pyramid: which levels run, their bands, the merge, and detect() across pixel sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marscraters.detect import detect
from marscraters.errors import InvalidArgumentError
from marscraters.pyramid import (
    Level,
    level_options,
    level_pixels,
    merge_levels,
    pyramid_levels,
)

from .test_detect import _check, _disks, _threshold_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _threshold_model(tmp_path_factory.mktemp("m") / "threshold.keras")


def test_levels_follow_the_pixel_size_and_the_image_size():
    # THEMIS chip at the native scale: its own pixels, then 1/2 for the biggest craters
    assert [lv.factor for lv in pyramid_levels((416, 416), 100, 100)] == [1.0, 0.5]
    # CTX at 6 m: never shrunk to 100 m first; halved until a crater of the image's size is in reach
    ctx = pyramid_levels((2000, 2000), 6, 100)
    assert [lv.factor for lv in ctx] == [1.0, 0.5, 0.25, 0.125]
    # coarser than the network's scale (the 231 m ASU tiles): enlarged to it first
    assert pyramid_levels((300, 300), 231, 100)[0].factor == pytest.approx(2.31)
    # a small image needs one level, and levels= caps the depth
    assert len(pyramid_levels((100, 120), 6, 100)) == 1
    assert len(pyramid_levels((2000, 2000), 6, 100, levels=2)) == 2
    assert pyramid_levels((2000, 2000), 6, 100, levels=1) == [Level(1.0, 0.0, None)]


def test_bands_overlap_without_gaps_and_the_coarsest_is_open():
    levels = pyramid_levels((4000, 3000), 6, 100)
    assert levels[0].min_diameter_px == 0 and levels[-1].max_diameter_px is None
    for fine, coarse in zip(levels, levels[1:]):
        # in input pixels, the finer level's top reaches above the coarser level's bottom
        assert fine.max_diameter_px / fine.factor > coarse.min_diameter_px / coarse.factor
    # the extra levels cost a third more pixels at most (1/4 + 1/16 + ...)
    assert level_pixels((4000, 3000), levels) <= 4000 * 3000 * 4 / 3


@pytest.mark.parametrize("levels", ["all", 0, -1, 1.5, True])
def test_bad_levels_name_the_fix(levels):
    with pytest.raises(InvalidArgumentError, match="'auto' or a whole number"):
        pyramid_levels((416, 416), 100, 100, levels=levels)


def test_level_options_scale_the_callers_limits():
    lv = Level(0.25, 25.6, 80.0)
    assert level_options(lv, {"nms": "iou"}) == {"nms": "iou", "min_diameter_px": 25.6, "max_diameter_px": 80.0}
    # 200-240 input px are 50-60 px at 1/4
    assert level_options(lv, {"min_diameter_px": 200, "max_diameter_px": 240}) == {"min_diameter_px": 50.0,
                                                                                   "max_diameter_px": 60.0}
    assert level_options(lv, {"max_diameter_px": 40}) is None  # 10 px at 1/4: below this level's band
    # the finest level keeps the finder's own lower limit when the caller sets none
    assert level_options(Level(1.0, 0.0, 80.0), {}) == {"max_diameter_px": 80.0}


def test_merge_maps_to_input_pixels_and_keeps_one_circle_per_crater():
    levels = [Level(1.0, 0.0, 80.0), Level(0.5, 25.6, None)]
    fine = pd.DataFrame({"x": [100.0, 10.0], "y": [50.0, 10.0], "diameter_px": [70.0, 12.0], "score": [0.8, 0.9]})
    # the same 70 px crater at 1/2 (index coordinates: (x + 0.5) / f - 0.5), scored higher there
    coarse = pd.DataFrame({"x": [49.75], "y": [24.75], "diameter_px": [36.0], "score": [0.95]})
    out = merge_levels([fine, coarse], levels)
    assert len(out) == 2
    top = out.iloc[0]
    assert (top["x"], top["y"], top["diameter_px"], top["level"]) == (100.0, 50.0, 72.0, 1)
    assert out["level"].tolist() == [1, 0]
    with pytest.raises(InvalidArgumentError, match="one per level"):
        merge_levels([fine], levels)


def test_detect_finds_small_and_big_craters_on_a_fine_image(model_path):
    """A 6 m image with craters of 20 px to 460 px: each found once, at the right size, the big one
    on a coarse level (it spans more than the finest level's band)."""
    truth = [(150.0, 150.0, 20.0), (300.0, 120.0, 70.0), (700.0, 650.0, 460.0)]
    img = _disks((1100, 1200), truth)
    found = detect(img, pixel_size_m=6.0, model=model_path)
    assert len(found) == 3
    _check(found, truth, tol_px=6.0)
    by_size = found.sort_values("diameter_px")
    assert by_size["level"].iloc[0] == 0 and by_size["level"].iloc[-1] >= 2
    np.testing.assert_allclose(found["diameter_m"], found["diameter_px"] * 6.0)
    # one scale only: the same small craters; the finder still reaches the big one on the full map
    single = detect(img, pixel_size_m=6.0, model=model_path, levels=1)
    assert set(single["level"]) == {0}
    _check(single, truth[:2])


def test_detect_command_runs_one_scale_when_asked(model_path, tmp_path):
    from PIL import Image

    from marscraters import cli

    truth = [(150.0, 150.0, 20.0), (700.0, 650.0, 460.0)]
    Image.fromarray(_disks((1100, 1200), truth).astype(np.uint8)).save(tmp_path / "ctx.png")
    for levels, expected in (("auto", 2), ("1", 1)):
        out = tmp_path / f"{levels}.csv"
        assert cli.main(["-q", "detect", str(tmp_path / "ctx.png"), "--pixel-size", "6", "--levels", levels,
                         "--model", str(model_path), "--out", str(out)]) == 0
        found = pd.read_csv(out)
        assert found["level"].nunique() == expected


def test_the_shipped_model_follows_the_pixel_size():
    from marscraters.model import DEFAULT_WEIGHTS, FINE_PIXEL_SIZE_M, FINE_WEIGHTS, default_model_for

    if not FINE_WEIGHTS.is_file():
        pytest.skip("the model for fine imagery is not installed")
    assert default_model_for(6.0) == FINE_WEIGHTS and default_model_for(12.5) == FINE_WEIGHTS
    assert default_model_for(FINE_PIXEL_SIZE_M) == DEFAULT_WEIGHTS and default_model_for(100.0) == DEFAULT_WEIGHTS


def test_detect_names_the_model_each_image_got(model_path):
    """No model named: a 6 m image and a 100 m image go to different shipped models, in one call;
    a named model is used for every image."""
    from marscraters.model import FINE_WEIGHTS

    if not FINE_WEIGHTS.is_file():
        pytest.skip("the model for fine imagery is not installed")
    img = _disks((256, 300), [(100.0, 100.0, 40.0)])
    found = detect([img, img], pixel_size_m=[6.0, 100.0])
    assert found.attrs["model"] == {0: "marscraters-fine-outline-v4", 1: "marscraters-themis-outline-v11"}
    assert detect(img, pixel_size_m=6.0, model=model_path).attrs["model"] == "threshold"


@pytest.mark.slow
def test_ctx_craters_are_found_at_their_own_pixels(shared_data):
    """A real CTX image at 6 m/px, with no model named: the fine-imagery model runs on the pyramid
    and finds labelled craters (the single-scale detector shrank the image to 100 m/px and found
    none).  Image H is validation data, never trained on."""
    from marscraters.chips import read_voc_labels
    from marscraters.evaluate import evaluate
    from marscraters.model import FINE_WEIGHTS

    if not FINE_WEIGHTS.is_file():
        pytest.skip("the model for fine imagery is not installed")
    folder = shared_data / "ctx-mc11e"
    found = detect(folder / "images" / "MC11E-H.png", pixel_size_m=6.0)
    assert found.attrs["model"] == "marscraters-fine-outline-v4" and found["level"].max() >= 1
    truth = read_voc_labels(folder / "annotations" / "clustered" / "MC11E-H.xml", min_confidence=3)
    r = evaluate(found[["x", "y", "diameter_px", "score"]], truth[["x", "y", "diameter_px"]], rule="deepmoon", d_min=16)
    assert r.n_truth_matched >= 3 and r.precision >= 0.7
