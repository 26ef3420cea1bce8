"""Detection on plain images, with a real (tiny, hand-set) Keras model saved to and loaded from disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marscraters import cli
from marscraters.detect import detect, read_grey_image
from marscraters.errors import CorruptImageError, ImageReadError, InvalidArgumentError, ModelError


def _threshold_model(path):
    """A 1x1 convolution + sigmoid that maps bright pixels (> 0.5 after /255) to probability ~1:
    a stand-in network whose output is known exactly, so detection geometry can be checked."""
    import keras

    from marscraters.model import save_model

    inp = keras.Input((None, None, 1))
    out = keras.layers.Conv2D(1, 1, activation="sigmoid")(inp)
    model = keras.Model(inp, out)
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 40.0, np.float32), np.array([-20.0], np.float32)])
    save_model(model, path, metadata={"training": {"kind": "filled"}, "native_pixel_size_m": 100.0})
    return path


def _disks(shape, craters):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = np.full(shape, 60.0, np.float32)
    for x, y, d in craters:
        img[(xx - x) ** 2 + (yy - y) ** 2 <= (d / 2) ** 2] = 220.0
    return img


TRUTH = [(60.0, 70.0, 30.0), (200.0, 150.0, 50.0), (300.0, 60.0, 20.0)]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _threshold_model(tmp_path_factory.mktemp("m") / "threshold.keras")


def _check(found, truth, tol_px=2.0):
    for x, y, d in truth:
        dist = np.hypot(found["x"] - x, found["y"] - y)
        i = int(np.argmin(dist))
        assert dist[i] < tol_px and abs(found["diameter_px"][i] - d) / d < 0.15, (x, y, d, found)


def test_detect_finds_disks_and_reports_metres(model_path):
    img = _disks((256, 400), TRUTH)
    found = detect(img, pixel_size_m=100.0, model=model_path)
    assert list(found.columns) == ["x", "y", "diameter_px", "diameter_m", "score", "level"]
    _check(found, TRUTH)
    np.testing.assert_allclose(found["diameter_m"], found["diameter_px"] * 100.0)


def test_detect_resamples_coarse_images_to_the_native_scale(model_path):
    # at 231 m/px the image is enlarged 2.31x for the model, and results come back in input pixels
    img = _disks((256, 400), TRUTH)
    found = detect(img, pixel_size_m=231.0, model=model_path)
    _check(found, TRUTH, tol_px=2.5)
    assert found["diameter_m"].max() == pytest.approx(found["diameter_px"].max() * 231.0)


def test_detect_rgb_and_small_images(model_path):
    img = _disks((60, 50), [(25.0, 30.0, 20.0)])
    rgb = np.repeat(img[..., None], 3, axis=2)
    found = detect(rgb, pixel_size_m=100.0, model=model_path)  # smaller than 128: padded, not an error
    _check(found, [(25.0, 30.0, 20.0)])


def test_detect_reads_a_trailing_grey_band_and_grey_with_alpha_as_one_image(model_path):
    # (rows, cols, 1) and (rows, cols, 2) are one grey image (PIL's LA, a model-style channel axis),
    # not a stack of 1-px-wide images that would find nothing
    img = _disks((256, 400), TRUTH)
    alpha = np.full_like(img, 255)
    plain = detect(img, pixel_size_m=100.0, model=model_path)
    for arr in (img[..., None], np.stack([img, alpha], axis=-1)):
        found = detect(arr, pixel_size_m=100.0, model=model_path)
        _check(found, TRUTH)
        pd.testing.assert_frame_equal(found, plain)


def test_detect_warns_that_an_image_narrower_than_a_crater_holds_none(model_path):
    img = _disks((12, 40), [])
    img[3:8, 10:15] = 200  # not empty, just too small for the 16-px craters the model is scored on
    with pytest.warns(UserWarning, match="12 px, narrower than the smallest crater"):
        found = detect(img, pixel_size_m=100.0, model=model_path)  # padded, searched, not an error
    assert list(found.columns) == ["x", "y", "diameter_px", "diameter_m", "score", "level"]


def test_detect_reads_a_float_image_scaled_to_0_1_as_the_8_bit_image(model_path):
    img = _disks((256, 400), TRUTH)
    assert img.max() > 1  # grey levels of 0..255
    a = detect(img, pixel_size_m=100.0, model=model_path)
    b = detect(img.astype(np.float32) / 255.0, pixel_size_m=100.0, model=model_path)
    _check(b, TRUTH)
    np.testing.assert_allclose(b[["x", "y", "diameter_px"]], a[["x", "y", "diameter_px"]], atol=1e-3)


@pytest.mark.parametrize("background, rim", [(20.0, 60.0), (0.05, 0.25)])
def test_detect_stretches_an_image_far_darker_than_the_training_chips(model_path, background, rim):
    # a dark 8-bit image, and reflectance-like floats: read on the fixed scale the stand-in model
    # (bright = above half the range) sees nothing; stretched on their own, the disks appear
    img = np.where(_disks((256, 400), TRUTH) > 100, rim, background).astype(np.float32)
    with pytest.warns(UserWarning, match="stretched on its own"):
        found = detect(img, pixel_size_m=100.0, model=model_path)
    _check(found, TRUTH)
    fixed = (0.0, 255.0) if rim > 1 else (0.0, 1.0)
    assert len(detect(img, pixel_size_m=100.0, model=model_path, value_range=fixed)) == 0


def test_guess_value_range_fixed_scale_for_chip_like_levels_stretch_for_others(recwarn):
    import warnings

    from marscraters.model import grey_sample, guess_value_range

    rng = np.random.default_rng(0)
    chip = rng.normal(128, 30, (300, 300)).clip(0, 255)  # THEMIS-like: mean 50 %, wide spread

    def guess(a):
        return guess_value_range(grey_sample(a), floating=a.dtype.kind == "f", lo=float(np.nanmin(a)),
                                 hi=float(np.nanmax(a)))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert guess(chip.astype(np.uint8)) == (0.0, 255.0)
        assert guess((chip / 255).astype(np.float32)) == (0.0, 1.0)
        assert guess(np.where(rng.random((300, 300)) < 0.5, chip, np.nan)) == (0.0, 255.0)  # NaN = no data
    # beyond 0..255 (a 16-bit image): stretched on its own, and said, as segment says it for a mosaic
    with pytest.warns(UserWarning, match="beyond the 8-bit 0..255 scale.*stretched on its own"):
        assert guess((chip * 100 + 5000).astype(np.uint16)) == "auto"
    for dark in (chip.astype(np.uint8) // 5, (chip / 255 * 0.2 + 0.05).astype(np.float32),
                 (chip / 10 + 240).astype(np.uint8)):  # dark, reflectance-like, bright and flat
        with pytest.warns(UserWarning, match="stretched on its own") as caught:
            assert guess(dark) == "auto"
        assert len(caught) == 1
    # a 0..1 image with one outlier is guessed as 0..255; the warning names the way out
    spiky = (chip / 255).astype(np.float32)
    spiky[0, 0] = 1.5
    with pytest.warns(UserWarning, match=r"pass value_range=\(0, 1\)"):
        assert guess(spiky) == "auto"
    # a large striped image: every other column black, the sample must see both kinds
    striped = np.zeros((2000, 3000), np.uint8)
    striped[:, ::2] = 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert guess(striped) == (0.0, 255.0)


def test_detect_keeps_the_fixed_scale_for_chip_like_levels(model_path, recwarn):
    img = _disks((256, 400), TRUTH) * 0.5 + 60  # levels 90..170, mean ~100 of 255: within the chips' range
    detect(img, pixel_size_m=100.0, model=model_path)
    assert not [w for w in recwarn if "stretched" in str(w.message)]


def test_detect_says_when_the_verifier_replaces_the_callers_finder_thresholds(model_path):
    from marscraters.verify import resolve_verifier

    verifier = resolve_verifier(None, None)  # the shipped one
    img = _disks((256, 400), TRUTH)
    with pytest.warns(UserWarning, match=r"circle-finder options \{'threshold': 0.95\} are ignored"):
        detect(img, pixel_size_m=100.0, model=model_path, verify=verifier, extract_options={"threshold": 0.95})
    # without the verifier the caller's threshold is used, silently
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        strict = detect(img, pixel_size_m=100.0, model=model_path, verify=False,
                        extract_options={"threshold": 0.999999})
    assert len(strict) <= len(detect(img, pixel_size_m=100.0, model=model_path, verify=False))


def test_detect_refuses_an_all_nan_image_before_resampling_it(model_path, recwarn):
    with pytest.raises(InvalidArgumentError, match="no valid pixel"):
        detect(np.full((300, 300), np.nan), pixel_size_m=231.0, model=model_path)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # no "All-NaN slice" noise first


def test_detect_refuses_pixel_sizes_that_resample_to_nothing_or_too_much(model_path):
    img = _disks((256, 400), TRUTH)
    # kilometres typed for metres: below the range
    with pytest.raises(InvalidArgumentError, match="in metres"):
        detect(img, pixel_size_m=0.1, model=model_path)
    with pytest.raises(InvalidArgumentError, match="outside 1-1000 m per pixel: is it in metres"):
        detect(img, pixel_size_m=1e6, model=model_path)
    with pytest.raises(InvalidArgumentError, match="more than memory holds"):  # 1 km pixels, enlarged 10x
        detect(np.zeros((2100, 2000), np.float32), pixel_size_m=1000.0, model=model_path)


def test_detect_keeps_the_detail_of_finer_pixels(model_path):
    """A 5x finer pixel size no longer shrinks the image: the pyramid starts at its own pixels,
    so the same disks are found at the same pixels, their metres from the true pixel size."""
    img = _disks((256, 400), TRUTH)
    found = detect(img, pixel_size_m=20.0, model=model_path)
    _check(found, TRUTH)
    np.testing.assert_allclose(found["diameter_m"], found["diameter_px"] * 20.0)
    assert found.attrs["pixel_size_m"] == 20.0


@pytest.mark.parametrize(
    "image, pixel_size, err",
    [
        (np.zeros((64, 64)), None, InvalidArgumentError),
        (np.zeros((64, 64)), 0.0, InvalidArgumentError),
        (np.zeros((64, 64)), -5.0, InvalidArgumentError),
        (np.full((64, 64), np.nan), 100.0, InvalidArgumentError),
        (np.full((64, 64), 7.0), 100.0, InvalidArgumentError),
        (np.zeros((4, 64, 64)), 100.0, InvalidArgumentError),
        (np.zeros((64, 64), dtype=complex), 100.0, InvalidArgumentError),
    ],
)
def test_detect_bad_input(model_path, image, pixel_size, err):
    with pytest.raises(err):
        detect(image, pixel_size_m=pixel_size, model=model_path)


@pytest.mark.parametrize("pixel_size", [float("inf"), float("nan"), 0.0, -5.0])
def test_detect_pixel_size_error_says_finite_and_positive(model_path, pixel_size):
    with pytest.raises(InvalidArgumentError, match=r"finite number of metres > 0 \(e\.g\. 100\)"):
        detect(np.zeros((64, 64)), pixel_size_m=pixel_size, model=model_path)


def test_detect_bad_model_file(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        detect(np.random.default_rng(0).uniform(0, 255, (64, 64)), pixel_size_m=100.0, model=bad)


def test_read_grey_image_formats_and_errors(tmp_path):
    img = _disks((40, 50), [(20.0, 20.0, 10.0)]).astype(np.uint8)
    for suffix in (".png", ".jpg", ".pgm", ".tif"):
        Image.fromarray(img).save(tmp_path / f"a{suffix}")
        got = read_grey_image(tmp_path / f"a{suffix}")
        assert got.shape == (40, 50) and abs(float(got.mean()) - float(img.mean())) < 3
    Image.fromarray(np.stack([img] * 3, axis=2)).save(tmp_path / "rgb.png")
    assert read_grey_image(tmp_path / "rgb.png").shape == (40, 50)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(CorruptImageError):
        read_grey_image(tmp_path / "junk.png")
    with pytest.raises(ImageReadError):
        read_grey_image(tmp_path / "missing.png")


def test_detect_and_evaluate_commands(model_path, tmp_path, capsys):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "scene.png")
    out = tmp_path / "craters.csv"
    args = ["-q", "detect", str(tmp_path / "scene.png"), "--pixel-size", "100", "--model", str(model_path), "--out", str(out)]
    assert cli.main(args) == 0
    found = pd.read_csv(out)
    _check(found, TRUTH)
    pd.DataFrame(TRUTH, columns=["x", "y", "diameter_px"]).to_csv(tmp_path / "truth.csv", index=False)
    assert cli.main(["evaluate", str(out), str(tmp_path / "truth.csv"), "--json", str(tmp_path / "s.json")]) == 0
    text = capsys.readouterr().out
    assert "deepmoon" in text and "F1=1.000" in text
    assert (tmp_path / "s.json").exists()
    for bad in (["--pixel-size", "-1"], ["--pixel-size", "abc"], ["--pixel-size", "100", "--min-score", "2"],
                ["--pixel-size", "100", "--min-score", "1"],  # the verifier's threshold is below 1
                ["--pixel-size", "100", "--levels", "0"], ["--pixel-size", "100", "--levels", "many"]):
        with pytest.raises(SystemExit) as exit_:  # refused by the parser, naming the flag
            cli.main(["-q", "detect", str(tmp_path / "scene.png"), "--out", str(tmp_path / "x.csv"), "--model",
                      str(model_path), *bad])
        assert exit_.value.code == 2 and bad[-2] in capsys.readouterr().err
    assert cli.main(["-q", "detect", str(tmp_path / "scene.png"), "--pixel-size", "100", "--model", str(model_path),
                     "--out", str(tmp_path / "x.gpkg")]) == 2
    assert "name it *.csv" in capsys.readouterr().err and not (tmp_path / "x.gpkg").exists()
    # an existing --json is kept unless --overwrite; a folder is never replaced by a file
    before = (tmp_path / "s.json").read_text()
    (tmp_path / "s.json").write_text("keep me")
    assert cli.main(["evaluate", str(out), str(tmp_path / "truth.csv"), "--json", str(tmp_path / "s.json")]) == 2
    assert (tmp_path / "s.json").read_text() == "keep me"
    assert cli.main(["evaluate", str(out), str(tmp_path / "truth.csv"), "--json", str(tmp_path / "s.json"),
                     "--overwrite"]) == 0
    assert (tmp_path / "s.json").read_text() == before
    folder = tmp_path / "results.csv"  # a folder named like the output file
    folder.mkdir()
    (folder / "precious.txt").write_text("data")
    capsys.readouterr()
    for cmd in (["evaluate", str(out), str(tmp_path / "truth.csv"), "--json", str(folder), "--overwrite"],
                ["-q", "detect", str(tmp_path / "scene.png"), "--pixel-size", "100", "--model", str(model_path),
                 "--out", str(folder), "--overwrite"]):
        assert cli.main(cmd) == 2
        assert "is an existing folder" in capsys.readouterr().err
        assert (folder / "precious.txt").read_text() == "data"
    # an existing output is refused before the model runs (a missing model is not even noticed)
    assert cli.main(["-q", "detect", str(tmp_path / "scene.png"), "--pixel-size", "100", "--model",
                     str(tmp_path / "no-such-model.keras"), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_detect_command_value_range_and_quiet_after_the_command(model_path, tmp_path, capsys):
    dark = np.where(_disks((256, 400), TRUTH) > 100, 60, 20).astype(np.uint8)
    Image.fromarray(dark).save(tmp_path / "dark.png")
    out = tmp_path / "c.csv"
    base = ["detect", str(tmp_path / "dark.png"), "--pixel-size", "100", "--model", str(model_path), "--out", str(out)]
    # the fixed 8-bit scale, given on the command line: the dark disks stay below the stand-in's threshold
    assert cli.main([*base, "--value-range", "0", "255", "-q"]) == 0
    assert len(pd.read_csv(out)) == 0
    assert cli.main([*base, "--value-range", "auto", "--overwrite", "--quiet"]) == 0
    _check(pd.read_csv(out), TRUTH)
    for bad in (["255", "0"], ["0"], ["low", "high"], ["0", "1", "2"]):
        assert cli.main([*base, "--overwrite", "--value-range", *bad]) == 2
        assert "--value-range" in capsys.readouterr().err
    # -q / -v work before and after the command, and default to off
    parse = cli.build_parser().parse_args
    assert parse(["-q", *base]).quiet and parse([*base, "-q"]).quiet and not parse(base).quiet
    assert parse([*base, "-v"]).verbose and not parse(["-q", *base]).verbose
    # `catalog` has its own --quiet: -q before it is no longer reset by that option's default
    cat = ["catalog", "pred.zarr", "--out", "c.gpkg"]
    assert parse(["-q", *cat]).quiet and parse([*cat, "-q"]).quiet and not parse(cat).quiet


def test_detect_command_min_score_replaces_the_verifiers_threshold(shared_data, tmp_path):
    chip = shared_data / "themis-dayir-crops" / "images" / "crater441.jpg"
    counts = {}
    for flag in ("0.1", "0.55", "0.9"):
        out = tmp_path / f"c{flag}.csv"
        assert cli.main(["-q", "detect", str(chip), "--pixel-size", "100", "--out", str(out), "--min-score", flag]) == 0
        found = pd.read_csv(out)
        assert (found["score"] >= float(flag) - 1e-3).all()  # written with 3 decimals
        counts[flag] = len(found)
    default = tmp_path / "default.csv"
    assert cli.main(["-q", "detect", str(chip), "--pixel-size", "100", "--out", str(default)]) == 0
    # the shipped verifier's threshold is 0.55: a lower one keeps more, not merely the same craters
    assert counts["0.1"] > counts["0.55"] == len(pd.read_csv(default)) >= counts["0.9"]
    # 0 keeps every candidate the verifier scored (not its own 0.55, as 0 once meant "not given")
    assert cli.main(["-q", "detect", str(chip), "--pixel-size", "100", "--out", str(tmp_path / "z.csv"),
                     "--min-score", "0"]) == 0
    everything = pd.read_csv(tmp_path / "z.csv")
    assert len(everything) > counts["0.1"] and everything["score"].min() < 0.1
    assert cli.main(["-q", "detect", str(chip), "--pixel-size", "100", "--out", str(tmp_path / "z.csv"),
                     "--min-score", "0", "--no-verify", "--overwrite"]) == 0  # the unverified finder: 0 keeps everything


@pytest.mark.parametrize("size", [0.5, 1500.0])
def test_detect_refuses_a_pixel_size_outside_1_to_1000_m(model_path, size):
    with pytest.raises(InvalidArgumentError, match=r"outside 1-1000 m per pixel: is it in metres\?.*pixel_size_m="):
        detect(_disks((256, 400), TRUTH), pixel_size_m=size, model=model_path)


def test_detect_warns_on_an_image_nearly_all_shadow_or_saturated(model_path, recwarn):
    rng = np.random.default_rng(0)
    chip = rng.normal(128, 30, (256, 400)).clip(1, 254)  # THEMIS-like levels: nothing to say
    detect(chip, pixel_size_m=100.0, model=model_path)
    assert not [w for w in recwarn if "shadow" in str(w.message)]
    # a visible-light image with half of it in black shadow, and one blown out to white
    for level, fill in ((0.0, 0.5), (255.0, 0.45)):
        harsh = np.where(rng.random(chip.shape) < fill, level, chip)
        with pytest.warns(UserWarning, match=r"% of the image's pixels are at its darkest .* nearly all shadow or "
                                             r"saturated.*NaN \(no data\)"):
            detect(harsh, pixel_size_m=100.0, model=model_path)


def test_detect_command_finder_engines_find_the_same_craters(model_path, tmp_path, capsys):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "scene.png")
    found = {}
    for engine in ("numpy", "keras"):
        out = tmp_path / f"{engine}.csv"
        assert cli.main(["-q", "detect", str(tmp_path / "scene.png"), "--pixel-size", "100", "--model",
                         str(model_path), "--out", str(out), "--finder-engine", engine]) == 0
        found[engine] = pd.read_csv(out)
    _check(found["keras"], TRUTH)
    cols = ["x", "y", "diameter_px"]
    np.testing.assert_allclose(found["keras"][cols].to_numpy(), found["numpy"][cols].to_numpy(), atol=0.01)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["-q", "detect", str(tmp_path / "scene.png"), "--pixel-size", "100", "--out", str(tmp_path / "x.csv"),
                  "--finder-engine", "cuda"])
    assert exit_.value.code == 2 and "--finder-engine" in capsys.readouterr().err
    args = cli.build_parser().parse_args(["catalog", "pred.zarr", "--out", "c.gpkg", "--finder-engine", "keras"])
    assert args.finder_engine == "keras"
