"""Training data, augmentation, the training loop (tiny models, a few steps), resume and scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from marscraters.errors import InvalidArgumentError
from marscraters.targets import draw_targets
from marscraters.training import (
    PatchSequence,
    TrainConfig,
    TrainingSet,
    augment,
    chips_training_set,
    cube_training_set,
    dots_training_set,
    split_tiles,
    train,
)


def _scene(n=3, size=128, seed=0):
    """Bright disks on a dark noisy background, with their pixel craters."""
    rng = np.random.default_rng(seed)
    imgs, rows = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        img = rng.normal(0.2, 0.02, (size, size)).astype(np.float32)
        for _ in range(4):
            x, y, d = rng.uniform(20, size - 20), rng.uniform(20, size - 20), rng.uniform(8, 30)
            img[(xx - x) ** 2 + (yy - y) ** 2 <= (d / 2) ** 2] = 0.8
            rows.append({"image": i, "x": x, "y": y, "diameter_px": d})
        imgs.append(np.clip(img, 0, 1))
    return TrainingSet(np.stack(imgs), pd.DataFrame(rows), [f"s{i}" for i in range(n)])


@pytest.mark.parametrize("seed", range(6))
def test_augment_keeps_targets_on_the_image(seed):
    """After any flip/rotation/zoom, targets drawn from the moved craters cover the moved disks."""
    data = _scene(1, 128, seed)
    img, cr = data.images[0], data.craters_of(0)
    rng = np.random.default_rng(seed)
    out, moved, _ = augment(img, cr, rng, contrast=0.0, scale=(0.7, 1.4))
    target = draw_targets(out.shape, moved, "filled").astype(bool)
    # disk pixels are bright, background dark: the target must select the bright pixels
    assert out[target].mean() > 0.6 and out[~target].mean() < 0.35


def test_augment_rotation_geometry_exact():
    img = np.zeros((64, 96), np.float32)
    img[10, 20] = 1.0
    cr = pd.DataFrame({"x": [20.0], "y": [10.0], "diameter_px": [4.0]})
    for seed in range(8):
        out, moved, _ = augment(img, cr, np.random.default_rng(seed), contrast=0.0)
        r, c = np.unravel_index(np.argmax(out), out.shape)
        assert (c, r) == (moved.x[0], moved.y[0])


def test_patch_sequence_batches_and_targets():
    data = _scene(5, 128)
    seq = PatchSequence(data, kind="outline", batch_size=2, crop=128, augment_data=True)
    assert len(seq) == 3
    x, y = seq[0]
    assert x.shape == (2, 128, 128, 1) and y.shape == (2, 128, 128, 1)
    assert x.dtype == np.float32 and set(np.unique(y)) <= {0.0, 1.0} and y.max() == 1.0
    with pytest.raises(InvalidArgumentError):
        PatchSequence(data, crop=100)


def test_dots_training_set_has_fixed_targets():
    d = dots_training_set(4, 128, seed=3)
    assert d.images.shape == (4, 128, 128) and d.targets.shape == (4, 128, 128)
    assert np.all((d.images > 0) == (d.targets > 0))


def test_split_tiles_is_seedable_and_disjoint():
    tiles = [f"t{i}" for i in range(24)]
    a = split_tiles(tiles, 6, 3, seed=1)
    assert a == split_tiles(tiles, 6, 3, seed=1) and a != split_tiles(tiles, 6, 3, seed=2)
    assert len(a[0]) == 6 and len(a[1]) == 3 and not set(a[0]) & set(a[1])
    with pytest.raises(InvalidArgumentError):
        split_tiles(tiles, 20, 5)


def test_cube_training_set_cuts_sub_images_with_craters(tmp_path):
    from marscraters.catalog import make_catalog
    from marscraters.mosaic import mosaic_from_array

    img = np.random.default_rng(0).uniform(50, 150, (256, 384)).astype(np.float32)
    img[:, :5] = np.nan
    img[128:, 128:256] = 7.0  # a constant sub-image is skipped
    ds = mosaic_from_array(img, bounds=(0.0, -2.0, 3.0, 0.0))  # 128 px/deg
    cat = make_catalog([-0.5, -1.5, -1.0], [0.5, 2.5, 1.5], [5.0, 10.0, 50.0])  # the 50 km one is out of 2-32
    ts = cube_training_set([ds], cat, size=128)
    assert len(ts) == 5 and ts.images.shape == (5, 128, 128)
    assert len(ts.craters) == 2 and ts.images.max() <= 1.0 and np.isfinite(ts.images).all()


@pytest.mark.slow
def test_train_resume_and_history(tmp_path):
    """A tiny run trains, checkpoints, writes its history and plot, and resumes where it stopped."""
    data = _scene(6, 128)
    cfg = TrainConfig(kind="filled", filter_multiple=0.5, epochs=2, batch_size=3, crop=128, scale=(1, 1))
    r = train(data.subset([0, 1, 2, 3]), data.subset([4, 5]), tmp_path, cfg, verbose=0)
    assert len(r["history"]) == 2 and (tmp_path / "last.keras").exists() and (tmp_path / "history.png").exists()
    h = r["history"][-1]
    for key in ("loss", "accuracy", "val_loss", "val_crater_f1", "seconds_per_epoch"):
        assert key in h
    cfg.epochs = 3
    r2 = train(data.subset([0, 1, 2, 3]), data.subset([4, 5]), tmp_path, cfg, verbose=0)
    assert [row["epoch"] for row in r2["history"]] == [1, 2, 3]  # counted as the model files count them


def _legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_history_figure_says_what_each_curve_is(tmp_path):
    """Every panel has a y label (the loss says which loss), whole-number epochs, legends in words,
    and no empty crater-score panel for a run that computed no crater scores."""
    import json

    from marscraters.training import _history_figure, _run_dice_weight, plot_history

    pixel_only = [{"epoch": e, "loss": 1.6 - 0.1 * e, "val_loss": 1.5 - 0.1 * e, "accuracy": 0.8 + 0.05 * e,
                   "val_accuracy": 0.9} for e in range(3)]
    fig = _history_figure(pixel_only, title="3 epochs", dice_weight=1.0)
    assert len(fig.axes) == 2  # no crater-level panel: the run has no crater scores
    loss, acc = fig.axes
    assert loss.get_ylabel() == "BCE + 1 × soft-Dice loss" and "pixel" in acc.get_title()
    assert all(ax.get_ylabel() and ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert _legend_texts(loss) == _legend_texts(acc) == ["training", "validation"]
    ticks = [t for t in loss.get_xticks() if loss.get_xlim()[0] <= t <= loss.get_xlim()[1]]
    assert ticks == [1.0, 2.0, 3.0]  # whole epochs, no 1.25, 1.5 ...
    assert fig.get_suptitle() == "Training history: 3 epochs"

    scored = [{**pixel_only[0], "val_crater_f1": 0.5, "val_crater_precision": 0.6, "val_crater_recall": 0.4}]
    fig = _history_figure(scored, dice_weight=0.0)
    assert len(fig.axes) == 3
    assert fig.axes[0].get_ylabel() == "binary cross-entropy (BCE)"
    assert _legend_texts(fig.axes[2]) == ["F1", "precision", "recall"]
    assert "0 to 1" in fig.axes[2].get_ylabel()
    lo, hi = fig.axes[2].get_xlim()
    assert [t for t in fig.axes[2].get_xticks() if lo <= t <= hi] == [1.0] and hi - lo >= 1  # one epoch

    # from a run folder, the loss is named from its config.json
    pd.DataFrame(pixel_only).to_csv(tmp_path / "history.csv", index=False)
    (tmp_path / "config.json").write_text(json.dumps({"dice_weight": 0.5}))
    assert _run_dice_weight(tmp_path / "history.csv") == 0.5
    assert plot_history(tmp_path / "history.csv", tmp_path / "h.png").stat().st_size > 0
    assert _history_figure(pixel_only, dice_weight=None).axes[0].get_ylabel() == "training loss"


def test_resume_refuses_another_network_and_keeps_the_run(tmp_path):
    """Resuming with another architecture used to train the old network under the new settings."""
    import json

    from marscraters.model import describe_model, load_model

    data = _scene(4, 128)
    cfg = TrainConfig(kind="filled", filter_multiple=0.5, epochs=1, batch_size=2, crop=128, scale=(1, 1))
    train(data.subset([0, 1]), data.subset([2, 3]), tmp_path, cfg, verbose=0)
    before = (tmp_path / "config.json").read_text(), (tmp_path / "history.csv").read_text()
    for other in (dict(filter_multiple=2.0), dict(kernel_size=7)):
        with pytest.raises(InvalidArgumentError, match=r"another network.*filter_multiple=0\.5.*--restart"):
            train(data.subset([0, 1]), data.subset([2, 3]), tmp_path, replace(cfg, epochs=2, **other), verbose=0)
    # nothing of the run was touched
    assert ((tmp_path / "config.json").read_text(), (tmp_path / "history.csv").read_text()) == before
    assert describe_model(load_model(tmp_path / "last.keras"))["filter_multiple"] == 0.5
    # resume=False starts the new network over in the same folder
    train(data.subset([0, 1]), data.subset([2, 3]), tmp_path, replace(cfg, filter_multiple=0.25), resume=False,
          verbose=0)
    assert json.loads((tmp_path / "config.json").read_text())["filter_multiple"] == 0.25
    assert describe_model(load_model(tmp_path / "last.keras"))["filter_multiple"] == 0.25


def test_cli_resume_takes_the_runs_network_and_refuses_another(tmp_path, capsys):
    import json

    from marscraters.cli import main

    out = tmp_path / "run"
    base = ["-q", "train", "--dots", "4", "--crop", "128", "--batch-size", "2", "--kind", "filled", "--out", str(out)]
    assert main([*base, "--epochs", "1", "--filter-multiple", "0.5"]) == 0
    # the same command without the architecture flags continues the run's own network
    assert main([*base, "--epochs", "2"]) == 0
    assert json.loads((out / "config.json").read_text())["filter_multiple"] == 0.5
    assert len((out / "history.csv").read_text().strip().splitlines()) == 3
    assert main([*base, "--epochs", "3", "--filter-multiple", "2"]) != 0
    assert "--filter-multiple 0.5" in capsys.readouterr().err
    assert len((out / "history.csv").read_text().strip().splitlines()) == 3


def test_chips_training_set_on_real_chips(shared_data):
    from marscraters.chips import read_chips

    chips = read_chips(shared_data / "themis-dayir-crops", indices=range(10))
    ts = chips_training_set(chips, [2, 5])
    assert ts.images.shape == (2, 416, 416) and 0 <= ts.images.min() and ts.images.max() <= 1
    assert set(ts.craters["image"]) <= {0, 1} and len(ts.craters) == int(chips.craters["chip"].isin([2, 5]).sum())


def test_chip_positions_outside_the_folder_name_the_fix(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    rng = np.random.default_rng(0)
    for n in range(3):
        Image.fromarray(rng.integers(0, 255, (128, 128), dtype=np.uint8)).save(tmp_path / "images" / f"crater{n}.jpg")
        (tmp_path / "labels" / f"crater{n}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert chips_training_set(tmp_path, [0, 2]).images.shape == (2, 128, 128)
    with pytest.raises(InvalidArgumentError, match=r"\[3, 4\] are outside the 3 chips.*0\.\.2"):
        chips_training_set(tmp_path, range(2, 5))


def test_predict_stack_with_tta_averages_the_package_predictions():
    from marscraters.model import predict_image, symmetric_unet
    from marscraters.training import predict_stack

    model = symmetric_unet(filter_multiple=0.25)
    images = _scene(2, 200).images  # not a multiple of 128: padded and cropped back
    plain = predict_stack(model, images)
    turned = predict_stack(model, images, tta=4)
    assert plain.shape == turned.shape == (2, 200, 200) and turned.dtype == np.float32
    np.testing.assert_allclose(turned[1], predict_image(model, images[1], tile=None, normalise=False, tta=4), atol=1e-6)
    # tta=2 is the image and its transpose, averaged: checked against two plain predictions
    transposed = predict_stack(model, np.ascontiguousarray(images.transpose(0, 2, 1)))
    np.testing.assert_allclose(predict_stack(model, images, tta=2), (plain + transposed.transpose(0, 2, 1)) / 2,
                               atol=1e-5)
    assert not np.allclose(plain, turned, atol=1e-4)  # the turned views do change an untrained net's map
    with pytest.raises(InvalidArgumentError, match="tta"):
        predict_stack(model, images, tta=3)


def test_training_and_array_prediction_need_no_gdal():
    """Machines without rasterio (a GPU box with only the training wheels) can still train and predict."""
    import subprocess
    import sys

    code = """
import sys
class NoGDAL:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("rasterio", "rioxarray"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, NoGDAL())
import numpy as np
import marscraters.cli, marscraters.detect, marscraters.segment, marscraters.training, marscraters.verify
from marscraters.model import symmetric_unet
from marscraters.training import predict_stack
out = predict_stack(symmetric_unet(filter_multiple=0.25), np.zeros((1, 64, 64), np.float32))
assert out.shape == (1, 64, 64)
assert "rasterio" not in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_patch_sequence_batches_do_not_depend_on_threads_or_order():
    """Samples are prepared by threads in any order: each is fixed by (seed, epoch, batch, position)."""
    data = _scene(6, 128)
    one = PatchSequence(data, kind="outline", batch_size=3, crop=128, scale=(0.8, 1.2), seed=5)
    many = PatchSequence(data, kind="outline", batch_size=3, crop=128, scale=(0.8, 1.2), seed=5, workers=3)
    assert many.workers == 3
    backwards = [many[i] for i in (1, 0)][::-1]
    for (x1, y1), (x2, y2) in zip([one[i] for i in range(2)], backwards):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    first = one[0][0]
    one.on_epoch_end()
    assert not np.array_equal(one[0][0], first)  # a new epoch draws new augmentations
    with pytest.raises(InvalidArgumentError, match="workers"):
        PatchSequence(data, crop=128, workers=0)


def test_fit_with_loader_threads_trains_each_epoch_on_its_own_batches(tmp_path):
    """Through ``model.fit``, every batch an epoch trains on comes from that epoch's draw (Keras'
    own multi-worker queue would carry batches over from the previous epoch)."""
    import keras

    from marscraters.model import symmetric_unet

    data = _scene(6, 128)
    seq = PatchSequence(data, kind="filled", batch_size=2, crop=128, scale=(1, 1), seed=1, workers=3)
    seen: list[tuple[int, int]] = []
    original = seq._sample

    def spy(epoch, idx, j, i):
        seen.append((epoch, idx))
        return original(epoch, idx, j, i)

    seq._sample = spy

    class Mark(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(("begin", epoch))

    model = symmetric_unet(filter_multiple=0.25)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(seq, epochs=2, verbose=0, callbacks=[Mark()])
    epochs = {}
    current = None
    for item in seen:
        if item[0] == "begin":
            current = item[1]
            epochs[current] = set()
        elif current is not None:
            epochs[current].add(item[0])
    # one sequence epoch per Keras epoch, never a mixture
    assert all(len(e) == 1 for e in epochs.values()) and len(epochs) == 2
    assert epochs[0] != epochs[1]


def test_crop_larger_than_the_image_labels_the_mirrored_craters():
    """Patches bigger than a (zoomed-out) image are padded by reflection; the craters seen in the
    reflected strip are labelled too, so the target still covers every bright disk."""
    data = _scene(3, 128, seed=2)
    seq = PatchSequence(data, kind="filled", batch_size=3, crop=256, augment_data=False)
    x, y = seq[0]
    x, y = x[..., 0], y[..., 0].astype(bool)
    assert x.shape == (3, 256, 256)
    # the padded half holds mirrored disks: without their labels they would be bright non-targets
    assert x[:, 128:, :][y[:, 128:, :]].mean() > 0.6
    assert x[~y].mean() < 0.35 and x[y].mean() > 0.6


def test_crop_much_larger_than_the_image_labels_every_reflection():
    """Padding wider than the image repeats it more than once; every copy of a crater is labelled."""
    data = _scene(1, 48, seed=4)
    seq = PatchSequence(data, kind="filled", batch_size=1, crop=128, augment_data=False)
    x, y = seq[0]
    x, y = x[0, ..., 0], y[0, ..., 0].astype(bool)
    bright = x > 0.6
    assert (bright & y).sum() / bright.sum() > 0.98


def test_cli_train_init_fine_tunes_the_given_model(tmp_path):
    """``--init`` starts from a model file's architecture and weights, and records it."""
    from marscraters.cli import main
    from marscraters.model import load_model, read_model_metadata, save_model, symmetric_unet

    start = save_model(symmetric_unet(filter_multiple=0.25), tmp_path / "start.keras")
    out = tmp_path / "run"
    assert main(["-q", "train", "--dots", "4", "--crop", "128", "--batch-size", "2", "--epochs", "1",
                 "--kind", "filled", "--init", str(start), "--workers", "2", "--out", str(out)]) == 0
    trained = load_model(out / "last.keras")
    assert trained.count_params() == load_model(start).count_params() < symmetric_unet().count_params()
    meta = read_model_metadata(out / "last.keras")
    assert meta["data"]["init"] == str(start) and meta["training"]["workers"] == 2
    assert meta["training"]["filter_multiple"] == 0.25  # the architecture trained, not the CLI default
    # resuming the run ignores --init, even when its file is gone
    start.unlink()
    assert main(["-q", "train", "--dots", "4", "--crop", "128", "--batch-size", "2", "--epochs", "2",
                 "--kind", "filled", "--init", str(start), "--out", str(out)]) == 0
    assert len(open(out / "history.csv").read().strip().splitlines()) == 3  # header + 2 epochs
    # ... and still records the network it trains (it used to write the CLI defaults, k3 x1)
    import json

    assert json.loads((out / "config.json").read_text())["filter_multiple"] == 0.25
    assert read_model_metadata(out / "last.keras")["training"]["filter_multiple"] == 0.25


# ---------------------------------------------------------------------------------------------
# small craters weighted in the loss (--weight-small-craters)
# ---------------------------------------------------------------------------------------------
def test_patch_sequence_weights_travel_as_a_second_channel():
    data = _scene(4, 128)
    plain = PatchSequence(data, kind="outline", batch_size=2, crop=128, scale=(0.8, 1.2), seed=3)
    weighted = PatchSequence(data, kind="outline", batch_size=2, crop=128, scale=(0.8, 1.2), seed=3,
                             weight_small_craters_px=64)
    (x0, y0), (x1, y1) = plain[1], weighted[1]
    assert y1.shape == (2, 128, 128, 2)
    # the same draw: same patches, same targets, plus weights >= 1 that mark the small craters
    np.testing.assert_array_equal(x0, x1)
    np.testing.assert_array_equal(y0[..., 0], y1[..., 0])
    w = y1[..., 1]
    assert w.min() == 1.0 and w.max() > 2.0
    assert np.all(w[y1[..., 0] > 0.5] >= 1.0)
    with pytest.raises(InvalidArgumentError, match="weight_small_craters_px"):
        PatchSequence(data, crop=128, weight_small_craters_px=-1)


def _numpy_bce_dice(t, p, w):
    eps = 1e-7
    pc = np.clip(p, eps, 1 - eps)
    bce_px = -(t * np.log(pc) + (1 - t) * np.log(1 - pc))[..., 0]
    bce = (bce_px * w[..., 0]).sum() / w.sum()
    inter = (t * p * w).sum(axis=(1, 2, 3))
    denom = (t * w).sum(axis=(1, 2, 3)) + (p * w).sum(axis=(1, 2, 3))
    return bce + np.mean(1 - (2 * inter + 1) / (denom + 1))


def test_weighted_loss_matches_numpy_and_reduces_to_the_plain_loss():
    from marscraters.training import bce_dice_loss, pixel_accuracy

    rng = np.random.default_rng(0)
    t = (rng.random((2, 16, 16, 1)) > 0.7).astype(np.float32)
    p = rng.uniform(0.05, 0.95, (2, 16, 16, 1)).astype(np.float32)
    w = rng.uniform(1, 6, (2, 16, 16, 1)).astype(np.float32)
    loss = bce_dice_loss(1.0)
    plain = float(loss(t, p))
    ones = float(loss(np.concatenate([t, np.ones_like(t)], -1), p))
    weighted = float(loss(np.concatenate([t, w], -1), p))
    assert ones == pytest.approx(plain, rel=1e-5)
    assert weighted == pytest.approx(_numpy_bce_dice(t, p, w), rel=1e-4)
    assert abs(weighted - plain) > 1e-3
    # the accuracy metric ignores the weights channel
    acc = np.asarray(pixel_accuracy(np.concatenate([t, w], -1), p))
    np.testing.assert_allclose(acc, ((t > 0.5) == (p > 0.5)).mean(axis=(1, 2, 3)), rtol=1e-6)


def test_training_with_small_crater_weights_runs_and_records_it(tmp_path):
    data = _scene(4, 128)
    cfg = TrainConfig(kind="outline", epochs=1, batch_size=2, crop=128, filter_multiple=0.5,
                      weight_small_craters_px=48, score_every=1)
    result = train(data, data, tmp_path, cfg, verbose=0)
    assert np.isfinite(result["history"][-1]["loss"]) and 0 <= result["history"][-1]["accuracy"] <= 1
    import json

    assert json.loads((tmp_path / "config.json").read_text())["weight_small_craters_px"] == 48


def test_cli_train_widen_starts_from_a_wider_copy_of_init(tmp_path, capsys):
    """``--widen`` widens the --init model before training; without --init it is refused."""
    from marscraters.cli import main
    from marscraters.model import load_model, read_model_metadata, save_model, scaled_filters, symmetric_unet

    start = save_model(symmetric_unet(filter_multiple=0.25), tmp_path / "start.keras")
    out = tmp_path / "run"
    assert main(["-q", "train", "--dots", "4", "--crop", "128", "--batch-size", "2", "--epochs", "1",
                 "--kind", "filled", "--init", str(start), "--widen", "0.5", "--out", str(out)]) == 0
    assert load_model(out / "last.keras").count_params() == symmetric_unet(filter_multiple=0.5).count_params()
    meta = read_model_metadata(out / "last.keras")
    assert meta["training"]["filter_multiple"] == 0.5 and meta["architecture"]["filters"] == list(scaled_filters(0.5))
    capsys.readouterr()
    assert main(["-q", "train", "--dots", "4", "--crop", "128", "--epochs", "1", "--widen", "0.5",
                 "--out", str(tmp_path / "other")]) == 2
    assert "pass --init MODEL" in capsys.readouterr().err and not (tmp_path / "other" / "last.keras").exists()
