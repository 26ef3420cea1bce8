"""The network's arithmetic precision: float32, or bfloat16 where the CPU computes it natively."""

from __future__ import annotations

import numpy as np
import pytest

from marscraters import cli, model as mdl
from marscraters.errors import InvalidArgumentError


def test_resolve_precision_names_the_choices_and_auto_follows_the_machine(monkeypatch):
    assert mdl.resolve_precision("float32") == "float32"
    assert mdl.resolve_precision("bfloat16") == "bfloat16"
    with pytest.raises(InvalidArgumentError, match="auto, float32, bfloat16.*--precision"):
        mdl.resolve_precision("half")
    monkeypatch.setattr(mdl, "_on_accelerator", lambda: False)
    monkeypatch.setattr(mdl, "_cpu_has_bf16", lambda: True)
    assert mdl.resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(mdl, "_cpu_has_bf16", lambda: False)  # emulated bfloat16 is slower: float32
    assert mdl.resolve_precision("auto") == "float32"
    monkeypatch.setattr(mdl, "_cpu_has_bf16", lambda: True)
    monkeypatch.setattr(mdl, "_on_accelerator", lambda: True)  # not measured on accelerators: float32
    assert mdl.resolve_precision("auto") == "float32"


def test_cpu_flags_are_read_from_cpuinfo():
    # this machine's answer agrees with its own /proc/cpuinfo (False where there is none)
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        assert mdl._cpu_has_bf16() is False
        return
    assert mdl._cpu_has_bf16() == any(f in text.split() for f in ("avx512_bf16", "amx_bf16"))


def test_with_precision_makes_a_bfloat16_copy_with_a_float32_output():
    net = mdl.symmetric_unet(filter_multiple=0.5)
    x = np.random.default_rng(0).random((1, 128, 128, 1)).astype(np.float32)
    ref = np.asarray(net.predict_on_batch(x))
    assert mdl.with_precision(net, "float32") is net
    half = mdl.with_precision(net, "bfloat16")
    assert half is not net
    policies = [layer.dtype_policy.name for layer in half.layers if layer.weights]
    assert policies[-1] == "float32" and set(policies[:-1]) == {"mixed_bfloat16"}
    assert all(layer.dtype_policy.name == "float32" for layer in net.layers)  # the original is untouched
    got = np.asarray(half.predict_on_batch(x))
    assert got.dtype == np.float32
    # the same probabilities to bfloat16's ~3 significant digits, not the same bits
    assert np.abs(got - ref).max() < 0.05 and not np.array_equal(got, ref)
    np.testing.assert_array_equal(np.asarray(net.predict_on_batch(x)), ref)


def test_the_model_cache_keeps_one_copy_per_precision(tmp_path):
    from marscraters.segment import _cached_model

    path = mdl.save_model(mdl.symmetric_unet(filter_multiple=0.5), tmp_path / "m.keras")
    a, b = _cached_model(path, "float32"), _cached_model(path, "bfloat16")
    assert a is not b and _cached_model(path, "float32") is a and _cached_model(path, "bfloat16") is b
    assert b.layers[1].dtype_policy.name == "mixed_bfloat16"


def test_detect_in_bfloat16_finds_the_craters_float32_finds(shared_data, tmp_path, capsys):
    from marscraters.chips import read_chips
    from marscraters.detect import detect
    from marscraters.evaluate import evaluate

    chips = list(read_chips(shared_data / "themis-dayir-crops", indices=range(440, 446)).images)
    f32 = detect(chips, pixel_size_m=100, precision="float32")
    b16 = detect(chips, pixel_size_m=100, precision="bfloat16")
    assert len(f32) >= 20
    # the same craters, up to the few whose verifier score sits at the threshold
    cols = ["x", "y", "diameter_px"]
    matched = sum(evaluate(b16[b16["image"] == i][cols], f32[f32["image"] == i][cols], rule="deepmoon").n_truth_matched
                  for i in range(len(chips)))
    assert matched >= 0.9 * max(len(f32), len(b16))
    chip = chips[0]
    with pytest.raises(InvalidArgumentError, match="--precision"):
        detect(chip, pixel_size_m=100, precision="float16")
    # the command line: the flag runs, a bad value is refused by the parser naming it
    from PIL import Image

    Image.fromarray(np.asarray(chip).astype(np.uint8)).save(tmp_path / "chip.png")
    out = tmp_path / "c.csv"
    assert cli.main(["-q", "detect", str(tmp_path / "chip.png"), "--pixel-size", "100", "--precision", "bfloat16",
                     "--out", str(out)]) == 0
    assert out.exists()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["-q", "detect", str(tmp_path / "chip.png"), "--pixel-size", "100", "--precision", "half",
                  "--out", str(tmp_path / "d.csv")])
    assert exit_.value.code == 2 and "--precision" in capsys.readouterr().err


def test_a_model_that_cannot_be_cloned_names_the_float32_fix():
    import keras

    from marscraters.errors import ModelError

    class Custom(keras.Model):  # subclassed: no layer graph to clone
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(1, 1, activation="sigmoid")

        def call(self, x):
            return self.conv(x)

    net = Custom()
    net(np.zeros((1, 8, 8, 1), np.float32))
    assert mdl.with_precision(net, "float32") is net
    with pytest.raises(ModelError, match="precision='float32'.*--precision float32"):
        mdl.with_precision(net, "bfloat16")
