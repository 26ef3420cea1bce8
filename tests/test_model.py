"""Tests of marscraters.model: architecture, receptive field, padding, tiled prediction, model files."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from marscraters import model as mm
from marscraters.errors import InvalidArgumentError, ModelError, OutputExistsError

keras = pytest.importorskip("keras")

MODEL_SOURCE = Path(mm.__file__)


# ------------------------------------------------------------------------------- helpers
def expected_params(kernel_size: int, multiple: float) -> int:
    """Parameter count from the paper's description, independent of the model code."""
    filters = [max(1, int(np.floor(f * multiple + 0.5))) for f in (16, 24, 32, 48, 64, 96, 128, 128, 128, 96, 64, 48, 32, 24, 16)]
    total, cin = 0, 1
    for cout in filters:  # 7 down, the bottom, 7 up: each conv reads the previous conv's channels
        total += kernel_size**2 * cin * cout + cout
        cin = cout
    return total + (1 * 1 * cin * 1 + 1)  # the 1x1 sigmoid output


def expected_flops(kernel_size: int, multiple: float) -> float:
    filters = [max(1, int(np.floor(f * multiple + 0.5))) for f in (16, 24, 32, 48, 64, 96, 128, 128, 128, 96, 64, 48, 32, 24, 16)]
    levels = list(range(8)) + list(range(6, -1, -1))  # resolution level of each conv
    total, cin = 0.0, 1
    for cout, level in zip(filters, levels):
        total += 2 * kernel_size**2 * cin * cout / 4**level
        cin = cout
    return total + 2 * cin


@pytest.fixture(scope="module")
def default_model():
    return mm.symmetric_unet()


@pytest.fixture(scope="module")
def fixed_model():
    """A default-architecture model with seeded random weights."""
    keras.utils.set_random_seed(1234)
    return mm.symmetric_unet(name="fixed")


# ------------------------------------------------------------------------------- architecture
def test_default_model_has_the_papers_parameter_count(default_model):
    assert default_model.count_params() == 731_473
    assert expected_params(3, 1.0) == 731_473


@pytest.mark.parametrize("kernel_size", [3, 7, 11])
@pytest.mark.parametrize("multiple", [0.5, 1.0, 2.0])
def test_variant_parameter_counts(kernel_size, multiple):
    model = mm.symmetric_unet(kernel_size=kernel_size, filter_multiple=multiple)
    assert model.count_params() == expected_params(kernel_size, multiple)


def test_layer_structure_follows_the_paper(default_model):
    layers = default_model.layers
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds.count("AveragePooling2D") == 7 and kinds.count("UpSampling2D") == 7
    assert kinds.count("Conv2D") == 16 and kinds.count("Add") == 7
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs[:-1]] == list(mm.DEFAULT_FILTERS)
    assert all(c.activation.__name__ == "relu" and c.padding == "same" for c in convs[:-1])
    assert convs[-1].kernel_size == (1, 1) and convs[-1].activation.__name__ == "sigmoid"
    # the first level has no dropout; rates rise to 0.5 at the bottom and mirror on the way up
    drops = {layer.name: layer.rate for layer in layers if isinstance(layer, keras.layers.Dropout)}
    assert "down0_dropout" not in drops and "up0_dropout" not in drops
    assert drops["down1_dropout"] == pytest.approx(0.2) and drops["bottom_dropout"] == pytest.approx(0.5)
    assert [drops[f"down{i}_dropout"] for i in range(1, 7)] == pytest.approx([0.2, 0.25, 0.3, 0.35, 0.4, 0.45])
    assert drops["up3_dropout"] == drops["down3_dropout"]
    # each Add joins the up conv's dropout output with the down conv output of the same level
    add = default_model.get_layer("up2_add")
    sources = {t._keras_history[0].name for t in add.input}
    assert sources == {"up2_dropout", "down2_conv"}


def test_dropout_schedule_and_filters():
    assert mm.dropout_schedule((0.2, 0.5)) == pytest.approx((0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5))
    assert mm.dropout_schedule(0) == (0.0,) * 8
    assert mm.dropout_schedule([0.1] * 8) == (0.1,) * 8
    assert mm.scaled_filters(2)[:3] == (32, 48, 64)
    assert mm.scaled_filters(0.3)[:3] == (5, 7, 10)  # 4.8, 7.2, 9.6 rounded half up
    no_dropout = mm.symmetric_unet(dropout=0)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in no_dropout.layers)
    assert no_dropout.count_params() == 731_473


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kernel_size": 4}, "odd"),
        ({"kernel_size": 0}, "odd"),
        ({"filter_multiple": 0}, "filter_multiple"),
        ({"dropout": (0.2, 1.0)}, r"\[0, 1\)"),
        ({"dropout": (0.1, 0.2, 0.3)}, "8 rates"),
        ({"input_shape": (100, 128, 1)}, "multiple of 128"),
        ({"input_shape": (128, 128)}, "height, width, channels"),
    ],
)
def test_bad_architecture_arguments(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        mm.symmetric_unet(**kwargs)


@pytest.mark.parametrize("shape", [(128, 128), (256, 384)])
def test_forward_pass_shape(default_model, shape):
    x = np.random.default_rng(0).random((2, *shape, 1), dtype=np.float32)
    y = np.asarray(default_model.predict_on_batch(x))
    assert y.shape == (2, *shape, 1)
    assert np.all((y >= 0) & (y <= 1))


def test_fixed_input_shape_model():
    model = mm.symmetric_unet(input_shape=(256, 128, 1))
    assert tuple(model.outputs[0].shape) == (None, 256, 128, 1)


def test_flops_per_pixel(default_model):
    assert mm.flops_per_pixel(default_model) == pytest.approx(17_420.0)
    assert expected_flops(3, 1.0) == pytest.approx(17_420.0)
    small = mm.symmetric_unet(kernel_size=7, filter_multiple=0.5)
    assert mm.flops_per_pixel(small) == pytest.approx(expected_flops(7, 0.5))


# ------------------------------------------------------------------------------- receptive field
def test_receptive_field_values():
    assert mm.receptive_margin(1) == 127  # pooling/upsampling alone: one 128-pixel cell
    assert mm.receptive_field(1) == 128
    # every conv at level l adds (k - 1) / 2 * 2**l on each side; 3 convs per level
    # except the bottom (1 conv) -> margins grow linearly with (k - 1)
    margins = [mm.receptive_margin(k) for k in (3, 5, 7)]
    assert margins[1] - margins[0] == margins[2] - margins[1] > 0
    assert mm.receptive_margin(3) == 509 and mm.receptive_field(3) == 894
    assert mm.receptive_field(3) <= 2 * mm.receptive_margin(3) + 1


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_receptive_field_empirically(kernel_size):
    """An impulse through a positive, linear copy of the network reaches exactly the predicted pixels."""
    height, width = 128, 1536
    model = mm.symmetric_unet(kernel_size=kernel_size, dropout=0, input_shape=(height, width, 1))
    # all-positive weights and zero biases: ReLU never clips and nothing cancels, so the support
    # of the response is exactly the set of pixels that depend on the impulse
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([np.full_like(kernel, 1.0 / kernel.shape[2]), np.zeros_like(bias)])
    linear = keras.Model(model.inputs, model.get_layer("up0_add").output)  # before the sigmoid
    lo, hi = mm._dependency_intervals(kernel_size, width)
    for col in (700, 767, 768, 831):
        x = np.zeros((1, height, width, 1), np.float32)
        x[0, 64, col, 0] = 1.0
        response = np.asarray(linear.predict_on_batch(x))[0, :, :, :].max(axis=(0, 2))
        reached = np.flatnonzero(response > 0)
        expected = np.flatnonzero((lo <= col) & (col <= hi))
        np.testing.assert_array_equal(reached, expected)
        assert np.abs(reached - col).max() <= mm.receptive_margin(kernel_size)


# ------------------------------------------------------------------------------- padding
@pytest.mark.parametrize(
    "shape", [(1, 1), (5, 300), (127, 129), (128, 256), (300, 200, 3), (2, 77, 131, 1)]
)
def test_pad_crop_round_trip(shape):
    rng = np.random.default_rng(0)
    a = rng.random(shape)
    padded, slices = mm.pad_to_multiple(a)
    axes = (1, 2) if a.ndim == 4 else (0, 1)
    for ax in axes:
        assert padded.shape[ax] % 128 == 0 and padded.shape[ax] >= a.shape[ax]
        assert padded.shape[ax] - a.shape[ax] < 128
    np.testing.assert_array_equal(mm.crop(padded, slices), a)


def test_pad_splits_evenly_and_reflects():
    a = np.arange(100.0)[None, :].repeat(128, axis=0)
    padded, (rows, cols) = mm.pad_to_multiple(a)
    assert (rows, cols) == (slice(0, 128), slice(14, 114))
    assert padded[0, 13] == a[0, 1] and padded[0, 114] == a[0, 98]  # mirror without the edge pixel
    const, _ = mm.pad_to_multiple(a, 64, mode="constant", constant_values=-1)
    assert const.shape == (128, 128) and const[0, 0] == -1


def test_crop_applies_image_slices_to_batches():
    img = np.zeros((300, 200))
    padded, slices = mm.pad_to_multiple(img)
    batch = np.zeros((1, *padded.shape, 1))
    assert mm.crop(batch, slices).shape == (1, 300, 200, 1)
    with pytest.raises(InvalidArgumentError):
        mm.crop(np.zeros((100, 100)), slices)


def test_pad_errors():
    with pytest.raises(InvalidArgumentError, match="dimension"):
        mm.pad_to_multiple(np.zeros(10))
    with pytest.raises(InvalidArgumentError, match="empty"):
        mm.pad_to_multiple(np.zeros((0, 5)))
    with pytest.raises(InvalidArgumentError, match="multiple"):
        mm.pad_to_multiple(np.zeros((5, 5)), multiple=0)


# ------------------------------------------------------------------------------- normalisation
def test_normalise_image_scaling_and_nan_fill():
    img = np.array([[0, 51], [np.nan, 255]], dtype=np.float64)
    out = mm.normalise_image(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.2], [0.4, 1.0]], atol=1e-7)  # NaN -> mean of valid
    u8 = np.array([[0, 255], [128, 64]], dtype=np.uint8)
    np.testing.assert_allclose(mm.normalise_image(u8), u8 / 255.0, atol=1e-7)
    custom = mm.normalise_image(np.array([[100.0, 200.0], [150.0, 300.0]]), value_range=(100, 200))
    np.testing.assert_allclose(custom, [[0.0, 1.0], [0.5, 1.0]])  # clipped
    auto = mm.normalise_image(np.linspace(-5, 5, 1000).reshape(20, 50), value_range="auto")
    assert auto.min() == 0.0 and auto.max() == 1.0


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((4, 4, 2)), "2-D"),
        (np.zeros((1, 4, 4)), "squeeze"),
        (np.zeros(5), "2-D"),
        (np.ones((4, 4), dtype=complex), "complex"),
        (np.array([[object(), 1]], dtype=object), "dtype"),
        (np.ones((4, 4), dtype=bool), "dtype"),
        (np.full((4, 4), np.nan), "no valid pixel"),
        (np.full((4, 4), 7.0), "constant"),
        (np.array([[0.0, 1000.0]]), "value_range"),
    ],
)
def test_normalise_image_errors(image, match):
    with pytest.raises(InvalidArgumentError, match=match):
        mm.normalise_image(image)


# ------------------------------------------------------------------------------- prediction
def test_predict_image_any_shape(fixed_model):
    img = np.random.default_rng(0).random((300, 200)) * 255
    img[:10, :10] = np.nan
    prob = mm.predict_image(fixed_model, img)
    assert prob.shape == (300, 200) and prob.dtype == np.float32
    assert np.isnan(prob[:10, :10]).all()
    valid = prob[10:, 10:]
    assert np.isfinite(valid).all() and (valid >= 0).all() and (valid <= 1).all()


def test_predict_small_image_is_padded_not_an_error(fixed_model):
    img = np.random.default_rng(1).random((7, 19)) * 255
    assert mm.predict_image(fixed_model, img).shape == (7, 19)


def test_predict_image_equals_direct_model_call(fixed_model):
    img = np.random.default_rng(2).random((256, 384)).astype(np.float32) * 255
    prob = mm.predict_image(fixed_model, img, tile=None)
    direct = np.asarray(fixed_model.predict_on_batch((img / 255)[None, ..., None]))[0, ..., 0]
    np.testing.assert_allclose(prob, direct, atol=1e-5)


def test_tiled_prediction_equals_whole_image(fixed_model):
    """With the default halo (the receptive margin) tiles reproduce the whole-image prediction."""
    rng = np.random.default_rng(3)
    img = rng.random((200, 1500)) * 255
    whole = mm.predict_image(fixed_model, img, tile=None)
    tiled = mm.predict_image(fixed_model, img, tile=256, batch_size=4)  # 6 windows of 256 x 1280
    assert mm._windows(1536, 256, 512)[1] == (256, 512, 0, 1280)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    # a halo below the receptive margin is only approximate: it must differ somewhere
    rough = mm.predict_image(fixed_model, img, tile=256, halo=0)
    assert np.abs(rough - whole).max() > 1e-4


def test_turned_jobs_address_the_same_pixels():
    x = np.arange(256 * 384, dtype=np.float32).reshape(256, 384)
    jobs = [((0, 128, 0, 256), (128, 256, 0, 384)), ((128, 256, 0, 256), (0, 128, 0, 256))]
    for turns, transpose in mm._DIHEDRAL:
        xt = np.rot90(x, turns)
        xt = xt.T if transpose else xt
        for (r, c), (rt, ct) in zip(jobs, mm._turn_jobs(jobs, x.shape, turns, transpose)):
            # the same pixels (as a set) under the core and under the window
            assert sorted(x[r[0]:r[1], c[0]:c[1]].ravel()) == sorted(xt[rt[0]:rt[1], ct[0]:ct[1]].ravel())
            assert sorted(x[r[2]:r[3], c[2]:c[3]].ravel()) == sorted(xt[rt[2]:rt[3], ct[2]:ct[3]].ravel())


def test_tta_averages_the_orientations_and_stays_exact_when_tiled(fixed_model):
    img = np.random.default_rng(5).random((256, 384)).astype(np.float32) * 255
    x = img / 255
    # by hand: the 4 orientations of the first half of the square's symmetries, each mapped back
    manual = []
    for turns, transpose in mm._DIHEDRAL[:4]:
        xt = np.rot90(x, turns)
        xt = xt.T if transpose else xt
        p = np.asarray(fixed_model.predict_on_batch(np.ascontiguousarray(xt)[None, ..., None]))[0, ..., 0]
        p = p.T if transpose else p
        manual.append(np.rot90(p, -turns))
    manual = np.mean(manual, axis=0)
    whole = mm.predict_image(fixed_model, img, tile=None, tta=4)
    np.testing.assert_allclose(whole, manual, atol=1e-5)
    assert np.abs(whole - mm.predict_image(fixed_model, img, tile=None)).max() > 1e-3  # it does change the map
    # every orientation is exact under tiling, so the average is too
    tiled = mm.predict_image(fixed_model, img, tile=128, tta=4)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    for bad in (3, 0, True, "8"):
        with pytest.raises(InvalidArgumentError, match="tta must be one of"):
            mm.predict_image(fixed_model, img, tta=bad)


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_staged_model_equals_the_whole_window_on_its_core(kernel_size):
    """The fine decoder levels run on the core plus staged_margin only, with the same numbers."""
    keras.utils.set_random_seed(kernel_size)
    model = mm.symmetric_unet(kernel_size=kernel_size, filter_multiple=0.5)
    x = np.random.default_rng(kernel_size).random((2, 640, 768, 1), dtype=np.float32)
    whole = np.asarray(model.predict_on_batch(x))
    margin = mm.staged_margin(kernel_size)
    assert margin == (kernel_size // 2) * 2**mm.STAGED_LEVELS
    # an interior core [256, 384) x [128, 640) and the crop that keeps it plus the margin
    top, bottom, left, right = 256 - margin, 640 - 384 - margin, 128 - margin, 0
    staged = mm.staged_model(model, (top, bottom, left, right))
    assert staged is mm.staged_model(model, (top, bottom, left, right))  # cached per geometry
    part = np.asarray(staged.predict_on_batch(x))
    assert part.shape == (2, 640 - top - bottom, 768 - left - right, 1)
    core = part[:, margin:-margin, margin:]
    np.testing.assert_allclose(core, whole[:, 256:384, 128:], atol=1e-6)
    # the margin is needed: one level less of context and the fine levels see the crop's zero padding
    tight = mm.staged_model(model, (256, 640 - 384, 128, 0))
    assert np.abs(np.asarray(tight.predict_on_batch(x)) - whole[:, 256:384, 128:]).max() > 1e-4


def test_staged_prediction_is_the_default_and_exact(fixed_model, monkeypatch):
    img = np.random.default_rng(8).random((200, 1500)) * 255
    whole = mm.predict_image(fixed_model, img, tile=None)
    calls = []
    real = mm.staged_model
    monkeypatch.setattr(mm, "staged_model", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    tiled = mm.predict_image(fixed_model, img, tile=256, batch_size=2)
    assert calls, "tiled prediction did not use the staged model"
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    padded = mm.pad_to_multiple(mm.normalise_image(img), 128, mode="reflect")[0]
    jobs = [(r, c) for r in mm._windows(padded.shape[0], 256, 512) for c in mm._windows(padded.shape[1], 256, 512)]
    plain = mm.predict_windows(fixed_model, padded, jobs, 2, staged=False)
    np.testing.assert_allclose(mm.predict_windows(fixed_model, padded, jobs, 2), plain, atol=1e-5)


def test_staged_models_silence_only_the_retracing_warning(fixed_model):
    import logging

    mm.staged_model(fixed_model, (128, 128, 0, 0))
    logger = logging.getLogger("tensorflow")
    noise = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, "5 out of the last 5 calls to <f> triggered tf.function retracing.", None, None)
    other = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, "something else went wrong", None, None)
    assert not logger.filter(noise)
    assert logger.filter(other)


def test_staged_model_refuses_bad_crops_and_skips_other_architectures(fixed_model):
    with pytest.raises(InvalidArgumentError, match="multiples of 16"):
        mm.staged_model(fixed_model, (8, 0, 0, 0))
    with pytest.raises(InvalidArgumentError, match="levels"):
        mm.staged_model(fixed_model, (0, 0, 0, 0), levels=0)
    inputs = keras.Input((None, None, 1))
    other = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    assert mm.staged_model(other, (16, 16, 16, 16)) is None
    img = np.random.default_rng(9).random((300, 300)) * 255
    prob = mm.predict_image(other, img, tile=128, halo=0)  # whole windows, no staging
    assert prob.shape == (300, 300) and np.isfinite(prob).all()


def test_windows_cover_every_pixel_once_with_enough_context():
    for size in (128, 640, 1536, 4096):
        for tile, halo in ((128, 0), (256, 512), (512, 128), (1024, 512)):
            wins = mm._windows(size, tile, halo)
            covered = np.zeros(size, int)
            lengths = {w[3] - w[2] for w in wins}
            assert len(lengths) == 1  # one window shape, so windows stack into batches
            for cs, ce, ws, we in wins:
                covered[cs:ce] += 1
                assert ws % 128 == 0 and 0 <= ws <= cs < ce <= we <= size
                assert cs - ws >= min(halo, cs) and we - ce >= min(halo, size - ce)
            assert (covered == 1).all()


def test_predict_image_errors(fixed_model):
    with pytest.raises(InvalidArgumentError, match="2-D"):
        mm.predict_image(fixed_model, np.zeros((2, 128, 128)))
    with pytest.raises(InvalidArgumentError, match="constant"):
        mm.predict_image(fixed_model, np.zeros((128, 128)))
    with pytest.raises(InvalidArgumentError, match="no valid pixel"):
        mm.predict_image(fixed_model, np.full((64, 64), np.nan))
    with pytest.raises(InvalidArgumentError, match="normalise=False"):
        mm.predict_image(fixed_model, np.full((64, 64), np.nan), normalise=False)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        mm.predict_image(fixed_model, np.eye(64), batch_size=0)


# ------------------------------------------------------------------------------- model files
def test_save_load_round_trip(tmp_path, fixed_model):
    path = tmp_path / "unet.keras"
    mm.save_model(fixed_model, path, metadata={"epochs": 3, "data": "chips 0-499"})
    meta = mm.read_model_metadata(path)
    assert meta["format"] == mm.MODEL_FORMAT and meta["format_version"] == mm.MODEL_FORMAT_VERSION
    assert meta["epochs"] == 3 and meta["architecture"]["params"] == 731_473
    assert meta["architecture"]["kernel_size"] == 3 and meta["architecture"]["filter_multiple"] == 1.0
    assert meta["backend"] == keras.backend.backend()
    loaded = mm.load_model(path)
    x = np.random.default_rng(4).random((1, 128, 128, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict_on_batch(x), fixed_model.predict_on_batch(x), atol=1e-6)
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away
    with pytest.raises(OutputExistsError):
        mm.save_model(fixed_model, path)
    mm.save_model(fixed_model, path, overwrite=True)


def test_half_precision_weights_halve_the_file_and_load_as_float32(tmp_path, fixed_model):
    import h5py

    full = mm.save_model(fixed_model, tmp_path / "full.keras")
    half = mm.save_model(fixed_model, tmp_path / "half.keras", weights_dtype="float16", metadata={"epochs": 1})
    assert mm.read_model_metadata(full)["weights_dtype"] == "float32"
    meta = mm.read_model_metadata(half)
    assert meta["weights_dtype"] == "float16" and meta["epochs"] == 1
    # 731,473 parameters: 2.9 MB of float32 against 1.5 MB of float16, plus the same config
    assert full.stat().st_size - half.stat().st_size > 731_473 * 2 * 0.95
    with zipfile.ZipFile(half) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as h5:
        kinds = set()
        h5.visititems(lambda _, obj: kinds.add(obj.dtype) if isinstance(obj, h5py.Dataset) else None)
    assert kinds == {np.dtype("float16")}
    loaded = mm.load_model(half)
    assert {w.dtype for w in loaded.weights} == {"float32"}  # computes in float32 as before
    for a, b in zip(loaded.get_weights(), fixed_model.get_weights()):
        np.testing.assert_array_equal(a, b.astype(np.float16).astype(np.float32))
    x = np.random.default_rng(4).random((1, 128, 128, 1), dtype=np.float32)
    diff = np.abs(loaded.predict_on_batch(x) - fixed_model.predict_on_batch(x))
    assert 0 < diff.max() < 1e-3  # rounded weights move the map, a little
    with pytest.raises(InvalidArgumentError, match="'float32' or 'float16'"):
        mm.save_model(fixed_model, tmp_path / "c.keras", weights_dtype="bfloat16")
    assert not (tmp_path / "c.keras").exists()


def test_half_precision_refuses_weights_beyond_its_range_and_keeps_optimizer_state(tmp_path):
    import h5py

    keras.utils.set_random_seed(3)
    model = mm.symmetric_unet(filter_multiple=0.5)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = np.random.default_rng(0).random((2, 128, 128, 1), dtype=np.float32)
    model.train_on_batch(x, (x > 0.5).astype(np.float32))  # Adam's moments now exist, some tiny
    path = mm.save_model(model, tmp_path / "half.keras", weights_dtype="float16")
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as h5:
        kinds: dict[str, set] = {}
        h5.visititems(lambda name, obj: kinds.setdefault(name.split("/")[0], set()).add(obj.dtype)
                      if isinstance(obj, h5py.Dataset) else None)
    assert kinds["layers"] == {np.dtype("float16")} and np.dtype("float32") in kinds["optimizer"]
    assert np.dtype("float16") not in set().union(*(v for k, v in kinds.items() if k != "layers"))
    weights = model.get_weights()
    weights[0] = weights[0] * 0 + 1e5  # beyond float16's 65504
    model.set_weights(weights)
    with pytest.raises(InvalidArgumentError, match="float16's range.*weights_dtype='float32'"):
        mm.save_model(model, tmp_path / "big.keras", weights_dtype="float16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.keras"]  # nothing half-written


def test_save_model_argument_errors(tmp_path, fixed_model):
    with pytest.raises(InvalidArgumentError, match=".keras"):
        mm.save_model(fixed_model, tmp_path / "unet.h5")
    with pytest.raises(InvalidArgumentError, match="reserved"):
        mm.save_model(fixed_model, tmp_path / "a.keras", metadata={"architecture": 1})
    with pytest.raises(InvalidArgumentError, match="JSON"):
        mm.save_model(fixed_model, tmp_path / "b.keras", metadata={"bad": object()})
    assert not list(tmp_path.iterdir())


def test_corrupt_and_missing_files(tmp_path, fixed_model):
    missing = tmp_path / "nope.keras"
    with pytest.raises(ModelError, match="does not exist"):
        mm.load_model(missing)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(ModelError, match=str(garbage.name)) as info:
        mm.load_model(garbage)
    assert "marscraters train" in str(info.value)
    # a truncated copy of a real file
    good = mm.save_model(fixed_model, tmp_path / "good.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated"):
        mm.load_model(truncated)


def test_newer_format_and_wrong_shapes_are_refused(tmp_path, fixed_model):
    path = mm.save_model(fixed_model, tmp_path / "m.keras")
    newer = tmp_path / "newer.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "marscraters.json":
                meta = json.loads(data)
                meta["format_version"] = mm.MODEL_FORMAT_VERSION + 1
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    with pytest.raises(ModelError, match="upgrade marscraters"):
        mm.load_model(newer)
    rgb = mm.symmetric_unet(input_shape=(None, None, 3))
    rgb_path = mm.save_model(rgb, tmp_path / "rgb.keras")
    with pytest.raises(ModelError, match="one-band"):
        mm.load_model(rgb_path)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_plain_keras_file_loads_without_metadata(tmp_path, fixed_model):
    path = tmp_path / "plain.keras"
    fixed_model.save(path)
    assert mm.read_model_metadata(path) == {}
    assert mm.load_model(path).count_params() == 731_473


def test_default_weights_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(mm, "DEFAULT_WEIGHTS", tmp_path / "weights" / "symmetric_unet.keras")
    with pytest.raises(ModelError, match="marscraters train") as info:
        mm.load_model()
    assert "symmetric_unet.keras" in str(info.value)


def test_default_weights_present(monkeypatch, tmp_path, fixed_model):
    target = tmp_path / "weights" / "symmetric_unet.keras"
    mm.save_model(fixed_model, target)
    monkeypatch.setattr(mm, "DEFAULT_WEIGHTS", target)
    assert mm.load_model().count_params() == 731_473
    assert mm.read_model_metadata()["architecture"]["params"] == 731_473


# ------------------------------------------------------------------------------- backends
def test_model_source_has_no_tensorflow_calls():
    source = MODEL_SOURCE.read_text()
    assert not re.search(r"\btf\.", source), "model.py must use keras / keras.ops only"
    assert not re.search(r"^\s*(import|from)\s+tensorflow", source, re.MULTILINE)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=Path(__file__).parents[1],
        timeout=300,
    )


def test_unknown_backend_is_a_clear_model_error():
    result = run_python(
        """
        from marscraters.errors import ModelError
        from marscraters.model import check_backend, pad_to_multiple
        import numpy as np
        pad_to_multiple(np.zeros((3, 3)))  # the helpers work without any backend
        try:
            check_backend()
        except ModelError as exc:
            print("MODELERROR", exc)
        """,
        KERAS_BACKEND="theano",
    )
    assert "MODELERROR" in result.stdout, result.stderr[-2000:]
    assert "theano" in result.stdout and "tensorflow" in result.stdout


def second_backend() -> str | None:
    for name in ("jax", "torch"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


@pytest.mark.skipif(second_backend() is None, reason="neither jax nor torch is installed")
def test_forward_pass_under_a_second_backend(tmp_path, fixed_model):
    backend = second_backend()
    path = mm.save_model(fixed_model, tmp_path / "tf.keras")
    x = np.random.default_rng(5).random((1, 128, 256, 1), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = np.asarray(fixed_model.predict_on_batch(x))
    result = run_python(
        f"""
        import numpy as np
        from marscraters.model import check_backend, load_model, predict_image, symmetric_unet
        assert check_backend() == {backend!r}, check_backend()
        assert symmetric_unet().count_params() == 731473
        model = load_model({str(path)!r})
        x = np.load({str(tmp_path / 'x.npy')!r})
        np.save({str(tmp_path / 'y.npy')!r}, np.asarray(model.predict_on_batch(x)))
        print(predict_image(model, x[0, :, :, 0] * 255, tile=None).shape)
        whole = predict_image(model, x[0, :, :, 0] * 255, tile=None)
        staged = predict_image(model, x[0, :, :, 0] * 255, tile=128)  # staged windows
        print("staged diff", float(np.abs(staged - whole).max()))
        """,
        KERAS_BACKEND=backend,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(128, 256)" in result.stdout
    assert float(result.stdout.split("staged diff")[1].split()[0]) < 1e-5
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-4)


def test_auto_tile_predicts_small_images_whole_and_large_ones_exactly(fixed_model, monkeypatch):
    img = np.random.default_rng(6).random((200, 1500)) * 255
    whole = mm.predict_image(fixed_model, img, tile=None)
    np.testing.assert_array_equal(mm.predict_image(fixed_model, img), whole)  # fits one batch
    # shrink the one-batch limit so that "auto" has to tile this image
    monkeypatch.setattr(mm, "_MAX_BATCH_PIXELS", 256 * 1280)
    monkeypatch.setattr(mm, "_AUTO_TILE", 256)
    np.testing.assert_allclose(mm.predict_image(fixed_model, img), whole, atol=1e-4)
    with pytest.raises(InvalidArgumentError, match="auto"):
        mm.predict_image(fixed_model, img, tile="big")


# ------------------------------------------------------------------------------- widening (Net2WiderNet)
def _trained_like(multiple: float = 0.25, kernel_size: int = 3, seed: int = 1) -> "keras.Model":
    """A small UNet with its initial kernels and random biases (fresh biases are all 0)."""
    model = mm.symmetric_unet(kernel_size, multiple, dropout=(0.1, 0.3))
    rng = np.random.default_rng(seed)
    model.set_weights([w if w.ndim > 1 else rng.normal(0, 0.1, w.shape).astype("float32") for w in model.get_weights()])
    return model


def test_widen_unet_computes_the_same_map_with_more_filters():
    small = _trained_like(0.25, kernel_size=5)
    x = np.random.default_rng(0).random((2, 128, 128, 1)).astype("float32")
    wide = mm.widen_unet(small, 0.5, noise=0.0)
    arch = mm.describe_model(wide)
    assert arch["filters"] == list(mm.scaled_filters(0.5)) and arch["kernel_size"] == 5
    assert arch["dropout"] == mm.describe_model(small)["dropout"]  # the schedule is kept, not the default
    assert wide.count_params() == expected_params(5, 0.5)
    before, after = np.asarray(small(x)), np.asarray(wide(x))
    assert before.std() > 0.01  # a map with structure, so agreement means something
    np.testing.assert_allclose(after, before, atol=2e-5)


def test_widen_unet_noise_moves_only_the_copies():
    small = _trained_like(0.25)
    x = np.random.default_rng(0).random((1, 128, 128, 1)).astype("float32")
    exact, noisy = mm.widen_unet(small, 0.5, noise=0.0, seed=3), mm.widen_unet(small, 0.5, noise=0.05, seed=3)
    for name in ("down0_conv", "bottom_conv", "up3_conv"):
        k0, k1 = exact.get_layer(name).get_weights()[0], noisy.get_layer(name).get_weights()[0]
        n_old = small.get_layer(name).filters
        np.testing.assert_array_equal(k1[..., :n_old], k0[..., :n_old])  # the trained filters stay
        assert not np.allclose(k1[..., n_old:], k0[..., n_old:])  # the copies drift apart
    difference = np.abs(np.asarray(noisy(x)) - np.asarray(small(x))).max()
    assert 0 < difference < 0.1
    # the same seed gives the same network
    again = mm.widen_unet(small, 0.5, noise=0.05, seed=3)
    np.testing.assert_array_equal(again.get_layer("up0_conv").get_weights()[0], noisy.get_layer("up0_conv").get_weights()[0])


def test_widen_unet_refuses_narrowing_bad_noise_and_other_models():
    small = _trained_like(0.5)
    with pytest.raises(InvalidArgumentError, match="at least 0.5"):
        mm.widen_unet(small, 0.25)
    with pytest.raises(InvalidArgumentError, match="noise"):
        mm.widen_unet(small, 1.0, noise=-1)
    inputs = keras.Input((None, None, 1))
    other = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    with pytest.raises(ModelError, match="symmetric_unet"):
        mm.widen_unet(other, 1.0)


def test_tensorflow_start_up_notices_are_dropped_and_other_stderr_kept():
    import subprocess
    import sys

    from marscraters.model import _drop_startup_noise

    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see ...\n"
            "I0000 00:00:1.0 1 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...\n"
            "To enable the following instructions: AVX2 AVX512F, in other operations, rebuild ...\n"
            "UserWarning: something a user should read\n")
    assert _drop_startup_noise(text) == "UserWarning: something a user should read\n"
    # a fresh interpreter: the first import of keras (through check_backend) leaves stderr clean
    code = "import sys; from marscraters.model import check_backend; check_backend(); print('ok', file=sys.stderr)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "ok"
    assert not [line for line in run.stderr.splitlines() if "oneDNN" in line or "InitializeLog" in line], run.stderr
