"""Resuming a training run and fine-tuning from a model file: a resumed run is the uninterrupted
run (schedule, optimizer, patches, dropout), settings that change what is learnt are refused,
and a fine-tuned model keeps its starting model's usage settings."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marscraters.errors import InvalidArgumentError
from marscraters.training import PatchSequence, TrainConfig, train

from .test_training import _scene
from .test_training_checks import _chips

# a tiny network, 4 training images of 128 px in batches of 2: two steps per epoch
_CFG = TrainConfig(kind="filled", filter_multiple=0.25, epochs=2, batch_size=2, crop=128, scale=(0.8, 1.2))


def _spy_rates(monkeypatch) -> list[float]:
    """The learning rate at the start of every ``Model.fit`` call from now on (in the list returned)."""
    import keras

    rates: list[float] = []
    fit = keras.Model.fit

    def spy(self, *args, **kwargs):
        rates.append(float(keras.ops.convert_to_numpy(self.optimizer.learning_rate)))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    return rates


def _history(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "history.csv")


def _weights(path: Path) -> list[np.ndarray]:
    from marscraters.model import load_model

    return load_model(path).get_weights()


# --------------------------------------------------------------------------------------------
# 1. a resumed run continues the uninterrupted one
# --------------------------------------------------------------------------------------------
def test_patch_sequence_started_at_an_epoch_draws_that_epochs_patches():
    """A resumed run's sequence starts at its own epoch: the same batches as a sequence that went
    through the epochs before it (seed + epoch used to shift the seed instead)."""
    data = _scene(4)
    walked = PatchSequence(data, kind="outline", batch_size=2, crop=128, scale=(0.8, 1.2), seed=3)
    walked.on_epoch_end()
    walked.on_epoch_end()
    started = PatchSequence(data, kind="outline", batch_size=2, crop=128, scale=(0.8, 1.2), seed=3, epoch=2)
    for b in range(len(walked)):
        for a, c in zip(walked[b], started[b]):
            np.testing.assert_array_equal(a, c)


@pytest.mark.slow
def test_resumed_run_is_the_uninterrupted_run(tmp_path, monkeypatch):
    """A run stopped after its first epoch and resumed continues the cosine schedule at the step
    it stopped, with Adam's state, the patches and the dropout masks of the uninterrupted run: the
    same learning rate at the first resumed step, the same history and the same weights."""
    from marscraters import training

    data = _scene(6)
    tr, va = data.subset([0, 1, 2, 3]), data.subset([4, 5])
    whole = train(tr, va, tmp_path / "whole", _CFG, verbose=0)

    # a run stopped at the start of its second epoch (Ctrl-C), then the same call again
    timer = training._timing_callback_class

    class Stop(Exception):
        pass

    def stopping_timer():
        base = timer()

        class Stopping(base):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == 1:
                    raise Stop
                super().on_epoch_begin(epoch, logs)

        return Stopping

    monkeypatch.setattr(training, "_timing_callback_class", stopping_timer)
    with pytest.raises(Stop):
        train(tr, va, tmp_path / "stopped", _CFG, verbose=0)
    monkeypatch.undo()
    assert len(_history(tmp_path / "stopped")) == 1

    rates = _spy_rates(monkeypatch)
    resumed = train(tr, va, tmp_path / "stopped", _CFG, verbose=0)
    # the uninterrupted run's rate at step 2 of 4: 1e-3 (0.01 + 0.99 (1 + cos(pi / 2)) / 2), not 1e-3 again
    assert rates[0] == pytest.approx(1e-3 * (0.01 + 0.99 * (1 + math.cos(math.pi * 2 / 4)) / 2), rel=1e-5)
    a, b = whole["model"].optimizer, resumed["model"].optimizer
    assert int(b.iterations.numpy()) == int(a.iterations.numpy()) == 4
    pd.testing.assert_frame_equal(_history(tmp_path / "stopped").drop(columns="seconds_per_epoch"),
                                  _history(tmp_path / "whole").drop(columns="seconds_per_epoch"), rtol=1e-6)
    for x, y in zip(_weights(tmp_path / "stopped" / "last.keras"), _weights(tmp_path / "whole" / "last.keras")):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# 2. settings that must match on resume, and those that may change
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory) -> Path:
    """A run folder of one epoch of ``_CFG`` (tests copy it before resuming)."""
    out = tmp_path_factory.mktemp("one_epoch") / "run"
    data = _scene(4)
    train(data.subset([0, 1]), data.subset([2, 3]), out, replace(_CFG, epochs=1), verbose=0)
    return out


@pytest.mark.parametrize("change, named", [
    ({"kind": "outline"}, r"kind='filled'.*--kind filled"),
    ({"dice_weight": 0.0}, r"dice_weight=1\.0.*--dice-weight 1"),
    ({"crop": 256}, r"crop=128.*--crop 128"),
    ({"scale": (1.0, 1.0)}, r"scale=\[0\.8, 1\.2\].*--scale 0\.8 1\.2"),
    ({"batch_size": 4}, r"batch_size=2.*--batch-size 2"),
    ({"seed": 7}, r"seed=0.*--seed 0"),
    ({"weight_small_craters_px": 32.0}, r"weight_small_craters_px=0\.0.*--weight-small-craters 0"),
    ({"min_target_diameter_px": 4.0}, r"min_target_diameter_px=0\.0.*TrainConfig\(min_target_diameter_px=0\.0\)"),
    ({"augment": False}, r"augment=True.*TrainConfig\(augment=True\)"),
])
def test_resume_refuses_settings_that_change_what_is_learnt(one_epoch_run, tmp_path, change, named):
    """A resume with another target kind, loss, crop, augmentation... used to train the run's
    network on the new settings and rewrite config.json as if the whole run had used them."""
    run = shutil.copytree(one_epoch_run, tmp_path / "run")
    data = _scene(4)
    before = {f: (run / f).read_bytes() for f in ("config.json", "history.csv", "last.keras", "best.keras")}
    with pytest.raises(InvalidArgumentError, match=named + r".*--out NEW.*--restart"):
        train(data.subset([0, 1]), data.subset([2, 3]), run, replace(_CFG, epochs=2, **change), verbose=0)
    assert {f: (run / f).read_bytes() for f in before} == before  # nothing of the run was touched


@pytest.mark.slow
def test_resume_may_train_longer_score_otherwise_and_warm_restart(tmp_path, caplog, monkeypatch):
    """More epochs, another scoring interval or loader threads continue the run; another learning
    rate is a warm restart (a new cosine cycle, fresh Adam), with a warning that says so, and a
    later resume goes on in that cycle; a history row written after the last checkpoint is
    trained again, not skipped."""
    data = _scene(4)
    tr, va = data.subset([0, 1]), data.subset([2, 3])
    cfg = replace(_CFG, epochs=1)
    train(tr, va, tmp_path, cfg, verbose=0)
    r = train(tr, va, tmp_path, replace(cfg, epochs=2, score_every=2, workers=2), verbose=0)
    assert len(r["history"]) == 2 and int(r["model"].optimizer.iterations.numpy()) == 2
    assert json.loads((tmp_path / "config.json").read_text())["score_every"] == 2
    # the run died between writing epoch 3's history row and its checkpoint: epoch 3 is trained again
    with open(tmp_path / "history.csv", "a") as fh:
        fh.write((tmp_path / "history.csv").read_text().splitlines()[-1].replace("1,", "2,", 1) + "\n")
    with pytest.warns(UserWarning, match=r"learning_rate=0\.0005, the run's was 0\.001: a warm restart.*"
                                         r"epochs 3-3.*--learning-rate 0\.001"):
        r = train(tr, va, tmp_path, replace(cfg, epochs=3, learning_rate=5e-4), verbose=0)
    assert "trained again" in caplog.text
    assert [row["epoch"] for row in r["history"]] == [1, 2, 3]
    # the new cycle: one epoch of steps from 5e-4, down to 1 % of it
    assert int(r["model"].optimizer.iterations.numpy()) == 1
    assert float(r["model"].optimizer.learning_rate) == pytest.approx(5e-6, rel=1e-4)
    # resumed again at that rate, the run goes on in its new cycle (from epoch 3), not the first one
    rates = _spy_rates(monkeypatch)
    r = train(tr, va, tmp_path, replace(cfg, epochs=4, learning_rate=5e-4), verbose=0)
    assert rates == [pytest.approx(5e-4 * (0.01 + 0.99 * (1 + math.cos(math.pi / 2)) / 2), rel=1e-5)]
    assert int(r["model"].optimizer.iterations.numpy()) == 2


def test_cli_resume_with_another_kind_is_refused_and_the_summary_counts_epochs_from_one(tmp_path, capsys):
    """``--kind outline`` on a run of filled targets used to be accepted (config.json rewritten,
    best.keras and last.keras of two kinds); the summary printed Keras' 0-based epoch as a float."""
    from marscraters.cli import main

    out = tmp_path / "run"
    base = ["-q", "train", "--dots", "4", "--crop", "128", "--batch-size", "2", "--filter-multiple", "0.25",
            "--out", str(out)]
    assert main([*base, "--epochs", "1", "--kind", "filled"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1 and summary["last"]["epoch"] == 1 and isinstance(summary["last"]["epoch"], int)
    config = (out / "config.json").read_text()
    assert main([*base, "--epochs", "2", "--kind", "outline"]) != 0
    err = capsys.readouterr().err
    # in the command line's terms: its flags, without the Python spelling beside them
    assert "--kind filled" in err and "--restart" in err and "TrainConfig(" not in err
    assert (out / "config.json").read_text() == config and len(_history(out)) == 1


# --------------------------------------------------------------------------------------------
# 3. fine-tuning keeps what the starting model's file says about using it
# --------------------------------------------------------------------------------------------
_FINDER = {"method": "template", "threshold": 0.7, "template_threshold": 0.5, "relative_threshold": 0, "min_score": 0.3}
_USAGE = {"native_pixel_size_m": 6.0, "pyramid_top_px": 48.0, "extract": _FINDER}


def _start_model(path: Path) -> Path:
    from marscraters.model import save_model, symmetric_unet

    return save_model(symmetric_unet(filter_multiple=0.25), path, metadata={
        **_USAGE, "name": "start-v1", "verifier": "start_classifier.keras", "tta": 4,
        "validation_tuning": {"f1": 0.9}})


def test_cli_init_carries_the_starting_models_usage_settings(tmp_path, monkeypatch, capsys):
    """``--init`` used to keep only the weights: a fine-tuned fine-imagery model was read as a
    100 m/px model with the default circle finder and band.  Its verifier (and the orientations
    the verifier learnt from) is not carried over, with a warning."""
    from marscraters import training
    from marscraters.cli import main
    from marscraters.detect import model_info
    from marscraters.model import read_model_metadata

    start, chips, out = _start_model(tmp_path / "start.keras"), _chips(tmp_path / "chips"), tmp_path / "run"
    finders = []
    scores = training.crater_scores

    def spy(model, data, **kwargs):
        finders.append(kwargs.get("extract_options"))
        return scores(model, data, **kwargs)

    monkeypatch.setattr(training, "crater_scores", spy)
    cmd = ["-q", "train", "--chips", str(chips), "--train", "0:4", "--val", "4:6", "--crop", "128", "--batch-size",
           "2", "--kind", "filled", "--scale", "1", "1", "--init", str(start), "--out", str(out)]
    assert main([*cmd, "--epochs", "1"]) == 0
    assert re.search(r"warning: .*start\.keras names the verifier 'start_classifier\.keras'.*name no verifier",
                     capsys.readouterr().err)
    assert finders == [_FINDER]  # the validation scores use the finder the model will be used with
    for name in ("best.keras", "last.keras"):
        meta = read_model_metadata(out / name)
        assert {k: meta.get(k) for k in _USAGE} == _USAGE
        assert not {"verifier", "tta", "validation_tuning", "name"} & set(meta)
    info = model_info(str(out / "best.keras"))
    assert (info["native_pixel_size_m"], info["pyramid_top_px"], info["extract"]) == (6.0, 48.0, _FINDER)
    # a resume (which ignores --init) keeps them
    start.unlink()
    assert main([*cmd, "--epochs", "2"]) == 0
    assert {k: read_model_metadata(out / "last.keras").get(k) for k in _USAGE} == _USAGE


def test_train_from_a_model_path_carries_its_usage_settings_unless_the_run_sets_the_finder(tmp_path):
    """``train(model=path)``: the file's settings come along; ``extract_options`` of the run's own
    replace the starting model's finder settings in the saved model."""
    from marscraters.model import read_model_metadata

    start = _start_model(tmp_path / "start.keras")
    data = _scene(4)
    own = {"method": "components"}
    with pytest.warns(UserWarning, match="name no verifier"):
        train(data.subset([0, 1]), data.subset([2, 3]), tmp_path / "run",
              replace(_CFG, epochs=1, extract_options=own), model=start, verbose=0)
    meta = read_model_metadata(tmp_path / "run" / "last.keras")
    assert (meta["native_pixel_size_m"], meta["pyramid_top_px"], meta["extract"]) == (6.0, 48.0, own)
    assert meta["training"]["filter_multiple"] == 0.25 and "verifier" not in meta
