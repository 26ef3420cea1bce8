"""Crater verification: features, patches, labels, a real (small) classifier trained and saved."""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from marscraters.errors import InvalidArgumentError, ModelError
from marscraters.extract import extract_craters
from marscraters.verify import (
    CANDIDATE_OPTIONS,
    Verifier,
    crater_features,
    crater_patches,
    find_craters,
    fit_classifier,
    load_verifier,
    match_candidates,
    merge_options,
    n_features,
    resolve_verifier,
    save_verifier,
    verifier_of,
    verify_craters,
)


def _scene(rng, n_true=6, n_false=6, size=192):
    """A shaded-bowl image with true craters, and a map with rings at true *and* false places.

    The map alone cannot tell them apart; the image can (only true places have a bowl)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    img = rng.normal(120, 6, (size, size)).astype(np.float32)
    prob = np.zeros((size, size), np.float32)
    rows = []
    for k in range(n_true + n_false):
        r = rng.uniform(8, 18)
        x, y = rng.uniform(r + 4, size - r - 4, 2)
        d = np.hypot(xx - x, yy - y)
        ring = (d <= r) & (d >= 0.7 * r)
        prob[ring] = np.maximum(prob[ring], rng.uniform(0.6, 0.95))
        if k < n_true:  # a bowl: dark on the sun-facing wall, bright on the far wall
            inside = d <= r
            img[inside] += 40 * ((xx[inside] - x) / r)
        rows.append({"x": x, "y": y, "diameter_px": 2 * r, "score": 0.5, "true": k < n_true})
    return img, prob, pd.DataFrame(rows)


def test_features_shape_and_invariance_to_grey_scale_and_quarter_turns():
    rng = np.random.default_rng(0)
    img, prob, c = _scene(rng)
    f = crater_features(img, prob, c)
    assert f.shape == (len(c), n_features()) and f.dtype == np.float32 and np.isfinite(f).all()
    # a linear change of grey levels leaves every column unchanged
    np.testing.assert_allclose(crater_features(3.0 * img + 50.0, prob, c), f, rtol=1e-3, atol=1e-3)
    # a quarter turn of the scene (and of the centres) leaves them unchanged too: the 16 angles
    # include the quarter turns, and the profiles keep only amplitudes of the harmonics
    n = img.shape[0]
    turned = c.assign(x=c["y"], y=n - 1 - c["x"])
    f2 = crater_features(np.rot90(img), np.rot90(prob), turned)
    np.testing.assert_allclose(f2, f, rtol=1e-3, atol=1e-3)
    # no craters: an empty table of the right width
    assert crater_features(img, prob, c.iloc[:0]).shape == (0, n_features())


def test_patches_are_scaled_to_the_crater_and_standardised():
    rng = np.random.default_rng(1)
    img, prob, c = _scene(rng)
    p = crater_patches(img, prob, c)
    assert p.shape == (len(c), 32, 32, 2)
    np.testing.assert_allclose(p[..., 0].mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(p[..., 0].std(axis=(1, 2)), 1.0, atol=0.01)
    # the ring (0.7..1 r) sits at the same place in every patch: 0.85 r of 1.6 r from the centre
    ring_col = int(round(16 + 0.85 / 1.6 * 16 - 0.5))
    alone = []
    for x, y, r in ((40.0, 50.0, 9.0), (120.0, 110.0, 25.0)):
        yy, xx = np.mgrid[:192, :192]
        d = np.hypot(xx - x, yy - y)
        one = ((d <= r) & (d >= 0.7 * r)).astype(np.float32)
        alone.append(crater_patches(img, one, pd.DataFrame({"x": [x], "y": [y], "diameter_px": [2 * r]}))[0])
    alone = np.stack(alone)
    assert np.all(alone[:, 16, ring_col, 1] > 0.5) and np.all(alone[:, 16, 16, 1] < 0.5)
    assert np.abs(alone[0, ..., 1] - alone[1, ..., 1]).mean() < 0.1  # the same picture at both sizes
    with pytest.raises(InvalidArgumentError, match="same grid"):
        crater_patches(img, prob[:10], c)
    with pytest.raises(InvalidArgumentError, match="diameter_px > 0"):
        crater_patches(img, prob, c.assign(diameter_px=0.0))
    with pytest.raises(InvalidArgumentError, match="missing"):
        crater_features(img, prob, c.drop(columns="diameter_px"))


def test_mask_channel_marks_what_lies_beyond_the_edge_and_on_no_data():
    rng = np.random.default_rng(4)
    img, prob, _ = _scene(rng)
    n = img.shape[0]
    # one crater clear of the edge, one whose centre sits 5 px from the left edge (r = 20)
    c = pd.DataFrame({"x": [96.0, 5.0], "y": [96.0, 96.0], "diameter_px": [40.0, 40.0]})
    two, three = crater_patches(img, prob, c), crater_patches(img, prob, c, mask=True)
    assert three.shape == (2, 32, 32, 3) and np.isfinite(three).all()
    # clear of the edge: the mask is all ones and the other channels are as without it
    np.testing.assert_allclose(three[0, ..., 2], 1.0)
    np.testing.assert_allclose(three[0, ..., :2], two[0], atol=1e-4)
    # cut by the edge: the columns left of x = -0.5 are outside (patch spans 1.6 r = 32 px each side)
    col_x = 5.0 + ((np.arange(32) + 0.5) / 32 * 2 - 1) * 32.0
    outside, inside = col_x < -1.5, col_x > 0.5
    assert np.all(three[1][:, outside, 2] == 0) and np.all(three[1][:, inside, 2] == 1)
    assert np.all(three[1][:, outside, :2] == 0)  # no smeared edge pixels: zero image and map
    # the image channel is standardised over the inside pixels alone
    vals = three[1][:, inside, 0]
    assert abs(vals.mean()) < 0.05 and abs(vals.std() - 1.0) < 0.05
    # no-data pixels count as outside too
    holed = img.copy()
    holed[80:112, 80:112] = np.nan
    m = crater_patches(holed, prob, c.iloc[:1], mask=True)[0, ..., 2]
    assert m[16, 16] == 0 and m[0, 0] == 1
    # a quarter turn of the scene turns the patches with it (the verifier's 8 orientations rely on it)
    turned = c.assign(x=c["y"], y=n - 1 - c["x"])
    np.testing.assert_allclose(crater_patches(np.rot90(img), np.rot90(prob), turned, mask=True),
                               np.rot90(three, 1, axes=(1, 2)), atol=1e-4)


def test_a_mask_channel_verifier_is_trained_saved_and_used(tmp_path):
    from marscraters.verify import candidate_sets, crater_classifier

    rng = np.random.default_rng(8)
    scenes = [_scene(rng) for _ in range(6)]
    _, patches, feats, _ = candidate_sets([s[0] for s in scenes], [s[1] for s in scenes], progress=False, mask=True)
    assert patches.shape[-1] == 3 and len(patches) == len(feats) > 0
    labels = np.arange(len(patches)) % 2 == 0
    model = fit_classifier(patches, feats, labels, epochs=1, batch_size=32, progress=False)
    assert model.inputs[0].shape[-1] == 3
    v = load_verifier(save_verifier(Verifier(model, 0.3), tmp_path / "mask.keras"))
    assert v.mask and v.patches(*scenes[0][:2], scenes[0][2]).shape[-1] == 3
    img, prob, c = scenes[0]
    kept = verify_craters(c, img, prob, v, threshold=0.0)  # picks the 3-channel patches by itself
    assert len(kept) == len(c) and kept["score"].between(0, 1).all()
    # older, two-channel verifiers are still read as such
    assert not Verifier(crater_classifier(n_features()), 0.5).mask
    with pytest.raises(InvalidArgumentError, match="channels"):
        crater_classifier(n_features(), channels=1)
    # more channels (e.g. a wider context stacked by the caller) build, but crater_patches cannot make them
    wide = Verifier(crater_classifier(n_features(), channels=4), 0.5)
    with pytest.raises(InvalidArgumentError, match="4 patch channels"):
        wide.patches(*scenes[0][:2], scenes[0][2])
    with pytest.raises(InvalidArgumentError, match="channels"):
        fit_classifier(patches[..., 0], feats, labels, epochs=1, progress=False)


def test_a_verifier_with_one_convolution_per_block_is_trained_saved_and_used(tmp_path):
    """The cheaper classifier shape: one 3x3 convolution per block, fewer weights, trained, saved and
    read back as any verifier (the file holds its architecture)."""
    from marscraters.verify import candidate_sets, crater_classifier

    def conv(model) -> list:
        return [w for w in model.layers if type(w).__name__ == "Conv2D"]

    assert len(conv(crater_classifier(n_features()))) == 6 and len(conv(crater_classifier(convs_per_block=1))) == 3
    assert crater_classifier(convs_per_block=1).count_params() < crater_classifier().count_params() / 2
    with pytest.raises(InvalidArgumentError, match="convs_per_block"):
        crater_classifier(convs_per_block=3)
    rng = np.random.default_rng(9)
    scenes = [_scene(rng) for _ in range(4)]
    _, patches, feats, _ = candidate_sets([s[0] for s in scenes], [s[1] for s in scenes], progress=False)
    labels = np.arange(len(patches)) % 2 == 0
    model = fit_classifier(patches, feats, labels, epochs=1, batch_size=32, progress=False, convs_per_block=1)
    v = load_verifier(save_verifier(Verifier(model, 0.4), tmp_path / "small.keras"))
    assert len(conv(v.model)) == 3
    np.testing.assert_allclose(v.predict(patches, feats, tta=1), Verifier(model, 0.4).predict(patches, feats, tta=1),
                               atol=1e-6)


def test_edge_cut_copies_cut_one_side_and_shift_the_truths():
    from marscraters.verify import edge_cut_copies

    rng = np.random.default_rng(6)
    images = rng.normal(size=(8, 64, 96)).astype(np.float32)
    truths = [pd.DataFrame({"x": [10.0, 80.0], "y": [30.0, 30.0], "diameter_px": [12.0, 12.0]}) for _ in range(8)]
    cut, shifted = edge_cut_copies(images, truths, cut=32, seed=1)
    assert cut.shape == (8, 64, 64)
    sides = set()
    for im, c, t, s in zip(images, cut, truths, shifted):
        if np.array_equal(c, im[:, 32:]):  # the left side cut: truths move 32 px left
            sides.add("left")
            np.testing.assert_allclose(s["x"], t["x"] - 32)
        else:
            sides.add("right")
            np.testing.assert_array_equal(c, im[:, :64])
            np.testing.assert_allclose(s["x"], t["x"])
        np.testing.assert_allclose(s[["y", "diameter_px"]], t[["y", "diameter_px"]])
    assert sides == {"left", "right"}  # both sides occur (8 copies)
    assert np.array_equal(edge_cut_copies(images, truths, cut=32, seed=1)[0], cut)  # seeded
    for bad in (0, 48, 2.5):
        with pytest.raises(InvalidArgumentError, match="cut"):
            edge_cut_copies(images, truths, cut=bad)
    with pytest.raises(InvalidArgumentError, match="one truth table each"):
        edge_cut_copies(images, truths[:3])


def test_nan_in_the_image_is_filled_not_propagated():
    rng = np.random.default_rng(2)
    img, prob, c = _scene(rng)
    img[:40, :40] = np.nan
    assert np.isfinite(crater_features(img, prob, c)).all()
    assert np.isfinite(crater_patches(img, prob, c)).all()


def test_match_candidates_uses_the_deepmoon_rule():
    truth = pd.DataFrame({"x": [50.0], "y": [50.0], "diameter_px": [20.0]})
    cands = pd.DataFrame({"x": [52.0, 50.0, 50.0, 70.0], "y": [50.0, 50.0, 50.0, 50.0],
                          "diameter_px": [22.0, 44.0, 38.0, 20.0]})
    # near and same size; twice the size (|dr|/min r = 1.2); 1.9x the size; 20 px away
    np.testing.assert_array_equal(match_candidates(cands, truth), [True, False, True, False])
    assert not match_candidates(cands, truth.iloc[:0]).any()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A verifier trained for a few epochs on synthetic scenes, saved and loaded back."""
    rng = np.random.default_rng(3)
    patches, feats, labels = [], [], []
    for _ in range(30):
        img, prob, c = _scene(rng)
        patches.append(crater_patches(img, prob, c))
        feats.append(crater_features(img, prob, c))
        labels.append(c["true"].to_numpy())
    model = fit_classifier(np.concatenate(patches), np.concatenate(feats), np.concatenate(labels), epochs=6,
                           batch_size=32, learning_rate=3e-3, progress=False)
    path = save_verifier(Verifier(model, 0.5, CANDIDATE_OPTIONS, {"name": "test-verifier"}),
                         tmp_path_factory.mktemp("v") / "verifier.keras")
    return path


def test_a_verifier_with_nan_validation_scores_saves(trained, tmp_path):
    # a run on a network that finds nothing has NaN precision; saving it used to fail after training
    v = load_verifier(trained)
    v.metadata["validation"] = {"precision": float("nan"), "sweep": [{"f1": np.float32("nan")}, {"f1": 0.5}]}
    again = load_verifier(save_verifier(v, tmp_path / "nan.keras"))
    assert again.metadata["validation"] == {"precision": None, "sweep": [{"f1": None}, {"f1": 0.5}]}


def test_trained_verifier_tells_bowls_from_bare_rings(trained, tmp_path):
    v = load_verifier(trained)
    # a loaded verifier saves again, unchanged
    again = load_verifier(save_verifier(v, tmp_path / "again.keras"))
    assert again.threshold == v.threshold and again.metadata["name"] == "test-verifier"
    assert v.threshold == 0.5 and v.candidates == CANDIDATE_OPTIONS and v.metadata["name"] == "test-verifier"
    rng = np.random.default_rng(99)  # scenes it never saw
    img, prob, c = _scene(rng, 10, 10)
    p = v.predict(crater_patches(img, prob, c), crater_features(img, prob, c))
    truth = c["true"].to_numpy()
    # ranks: most true craters above most false ones (the map alone scores them all alike)
    auc = (p[truth][:, None] > p[~truth][None]).mean()
    assert auc > 0.85, (auc, p, truth)
    kept = verify_craters(c, img, prob, v)
    assert set(kept.columns) >= {"x", "y", "diameter_px", "score", "finder_score"}
    assert (kept["score"] >= 0.5).all() and kept["score"].is_monotonic_decreasing
    kept_true = match_candidates(kept, c[c["true"]])
    assert kept_true.sum() > (~kept_true).sum()  # mostly the bowls survive
    assert len(verify_craters(c, img, prob, v, threshold=0.0)) == len(c)
    assert len(verify_craters(c.iloc[:0], img, prob, v)) == 0
    with pytest.raises(InvalidArgumentError, match="threshold"):
        verify_craters(c, img, prob, v, threshold=1.5)
    with pytest.raises(InvalidArgumentError, match="tta"):
        v.predict(crater_patches(img, prob, c), crater_features(img, prob, c), tta=3)


def test_the_cascade_averages_orientations_for_every_candidate_that_can_reach_the_threshold(trained, monkeypatch):
    from marscraters import verify

    v = load_verifier(trained)
    img, prob, c = _scene(np.random.default_rng(7), 10, 10)
    patches, feats = crater_patches(img, prob, c), crater_features(img, prob, c)
    one, four = v.predict(patches, feats, tta=1), v.predict(patches, feats, tta=4)
    assert not np.allclose(one, four)  # the orientations do disagree on these scenes
    # a margin and threshold that split the candidates: those that can reach it averaged (however far
    # above), those far below it as seen once
    thr = float(np.median(one))
    margin = float(np.sort(np.abs(one - thr))[len(one) // 2])
    got = v.predict(patches, feats, tta=4, margin=margin, threshold=thr)
    reach = one >= thr - margin
    assert 0 < reach.sum() < len(one)
    np.testing.assert_allclose(got[reach], four[reach], rtol=1e-6)
    np.testing.assert_allclose(got[~reach], one[~reach], rtol=1e-6)
    assert np.array_equal(v.predict(patches, feats, tta=4, margin=1.0), four)  # everything near: the full average
    with pytest.raises(InvalidArgumentError, match="margin"):
        v.predict(patches, feats, tta=4, margin=-0.1)
    # verify_craters takes the module's margin; None turns the cascade off
    monkeypatch.setattr(verify, "VERIFY_MARGIN", None)
    full = verify_craters(c, img, prob, v, threshold=0.0)
    np.testing.assert_allclose(np.sort(full["score"]), np.sort(four), rtol=1e-5)
    # every candidate can reach a threshold of 0, however small the margin: the same average
    monkeypatch.setattr(verify, "VERIFY_MARGIN", 1e-9)
    np.testing.assert_allclose(np.sort(verify_craters(c, img, prob, v, threshold=0.0)["score"]), np.sort(four),
                               rtol=1e-5)


def test_averaged_classifiers_predict_the_mean_and_save_as_one_verifier(trained, tmp_path):
    from marscraters.verify import average_classifiers, crater_classifier

    one = load_verifier(trained).model
    other = crater_classifier(one.inputs[1].shape[-1], seed=7)  # untrained: a different opinion
    mean = average_classifiers([one, other])
    rng = np.random.default_rng(5)
    img, prob, c = _scene(rng, 6, 6)
    patches, feats = crater_patches(img, prob, c), crater_features(img, prob, c)
    scores = [Verifier(m, 0.5).predict(patches, feats) for m in (one, other, mean)]
    assert not np.allclose(scores[0], scores[1], atol=1e-3)
    np.testing.assert_allclose(scores[2], (scores[0] + scores[1]) / 2, atol=1e-5)
    back = load_verifier(save_verifier(Verifier(mean, 0.4, CANDIDATE_OPTIONS), tmp_path / "mean.keras"))
    np.testing.assert_allclose(back.predict(patches, feats), scores[2], atol=1e-5)
    assert average_classifiers([one]) is one
    with pytest.raises(InvalidArgumentError, match="at least one"):
        average_classifiers([])
    with pytest.raises(InvalidArgumentError, match="different inputs"):
        average_classifiers([one, crater_classifier(5, seed=1)])
    for repeated in ([one, one], [mean, other]):
        with pytest.raises(InvalidArgumentError, match="share weights"):
            average_classifiers(repeated)


def test_find_craters_without_and_with_a_verifier(trained):
    rng = np.random.default_rng(5)
    img, prob, _ = _scene(rng)
    plain = find_craters(prob, None, target="outline", options={"method": "template"})
    pd.testing.assert_frame_equal(plain, extract_craters(prob, target="outline", method="template"))
    v = load_verifier(trained)
    with pytest.warns(UserWarning, match=r"options \{'threshold': 0.9\} are ignored"):
        checked = find_craters(prob, img, target="outline", verifier=v, options={"threshold": 0.9})
    # the verifier's own candidate thresholds win over the model's; every kept crater passed it
    cands = extract_craters(prob, target="outline", **CANDIDATE_OPTIONS)
    assert len(checked) <= len(cands) and (checked["score"] >= v.threshold).all()
    assert "finder_score" in checked
    # min_score replaces the verifier's threshold: a lower one keeps more
    more = find_craters(prob, img, target="outline", verifier=v, options={"min_score": 1e-6})
    assert len(checked) <= len(more) <= len(cands) and more["score"].min() >= 1e-6
    strict = find_craters(prob, img, target="outline", verifier=v, options={"min_score": 0.999})
    assert (strict["score"] >= 0.999).all() and len(strict) <= len(checked)
    # 0 keeps every candidate, scored (None: the verifier's own threshold, as when left out)
    every = find_craters(prob, img, target="outline", verifier=v, options={"min_score": 0})
    assert len(every) == len(cands) > len(checked) and every["score"].min() < v.threshold
    same = find_craters(prob, img, target="outline", verifier=v, options={"min_score": None})
    pd.testing.assert_frame_equal(same, checked)
    with pytest.raises(InvalidArgumentError, match="image"):
        find_craters(prob, None, target="outline", verifier=v)


def test_bad_verifier_files(tmp_path, trained):
    from marscraters.model import save_model, symmetric_unet

    unet = save_model(symmetric_unet(filter_multiple=0.5), tmp_path / "unet.keras")
    with pytest.raises(ModelError, match="not a crater verifier"):
        load_verifier(unet)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(trained.read_bytes()[:2000])
    with pytest.raises(ModelError, match="corrupt"):
        load_verifier(broken)
    with pytest.raises(ModelError, match="does not exist"):
        load_verifier(tmp_path / "missing.keras")
    # a model naming a verifier that is not beside it
    named = save_model(symmetric_unet(filter_multiple=0.5), tmp_path / "named.keras",
                       metadata={"verifier": "gone.keras"})
    with pytest.raises(ModelError, match="missing"):
        verifier_of(named)
    assert verifier_of(unet) is None and resolve_verifier(None, unet) is None
    assert resolve_verifier(False, named) is None
    with pytest.raises(ModelError, match="names no verifier"):
        resolve_verifier(True, unet)
    with pytest.raises(InvalidArgumentError, match="threshold"):
        Verifier(None, threshold=1.0)
    with pytest.raises(InvalidArgumentError, match="both"):
        fit_classifier(np.zeros((4, 32, 32, 2)), np.zeros((4, n_features())), np.ones(4), progress=False)
    assert zipfile.is_zipfile(trained)


@pytest.mark.realdata
def test_shipped_verifier_raises_f1_on_the_validation_chips(shared_data):
    """The shipped model with its verifier beats it without, on real chips it chose its threshold on
    (440-499; never trained on).  The held-out scores are in docs/model_card.md."""
    from marscraters.chips import read_chips
    from marscraters.detect import model_info
    from marscraters.evaluate import evaluate
    from marscraters.model import DEFAULT_WEIGHTS, load_model
    from marscraters.training import chips_training_set, predict_stack

    folder = shared_data / "themis-dayir-crops"
    if not folder.is_dir() or verifier_of(DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.exists() else None) is None:
        pytest.skip("no chips or no shipped verifier")
    data = chips_training_set(read_chips(folder, indices=range(440, 500, 2)))
    probs = predict_stack(load_model(), data.images)
    info, v = model_info(None), resolve_verifier(None, None)
    scores = {}
    for name, verifier in (("plain", None), ("verified", v)):
        pred = pd.concat([find_craters(p, data.images[i], target=info["kind"], verifier=verifier,
                                       options=merge_options(info["extract"], None, verifier)).assign(x=lambda f, i=i: f["x"] + 1e4 * i)
                          for i, p in enumerate(probs)], ignore_index=True)
        truth = pd.concat([data.craters_of(i).assign(x=lambda f, i=i: f["x"] + 1e4 * i) for i in range(len(data))])
        scores[name] = evaluate(pred, truth, rule="deepmoon", d_min=16)
    assert scores["verified"].f1 > scores["plain"].f1 + 0.02, scores
    # the gain is recall: the first stage searches at a low threshold and the verifier keeps the
    # precision of the tuned one-stage finder (v8: 0.917 against 0.918 on these chips)
    assert scores["verified"].recall > scores["plain"].recall + 0.02
    assert scores["verified"].precision > scores["plain"].precision - 0.02


def _mosaic_scene():
    """A 256 px/deg mosaic with shaded bowls at half the rings of an outline probability map."""
    from marscraters.catalog import make_catalog
    from marscraters.crs import Grid
    from marscraters.mosaic import mosaic_from_array
    from marscraters.targets import render_targets

    rng = np.random.default_rng(11)
    ny, nx = 300, 360
    xs = np.array([50.0, 128.0, 200.0, 300.0, 80.0, 180.0, 250.0, 320.0])
    ys = np.array([60.0, 127.5, 60.0, 90.0, 220.0, 200.0, 250.0, 230.0])
    dpx = np.array([24.0, 36.0, 20.0, 30.0, 28.0, 22.0, 34.0, 26.0])
    yy, xx = np.mgrid[:ny, :nx].astype(np.float32)
    img = rng.normal(120, 6, (ny, nx)).astype(np.float32)
    for x, y, d in zip(xs[::2], ys[::2], dpx[::2]):  # every other ring is a real bowl
        inside = np.hypot(xx - x, yy - y) <= d / 2
        img[inside] += 40 * (xx[inside] - x) / (d / 2)
    img[120:140, 40:70] = np.nan  # a no-data gap across a chunk border, beside a crater
    ds = mosaic_from_array(img, bounds=(10, -1, 10 + nx / 256, -1 + ny / 256), name="scene")
    lon, lat = Grid.from_dataset(ds).pixel_to_lonlat(xs, ys)
    truth = make_catalog(lat, lon, dpx * 3396.19 * np.pi / 180 / 256)
    prob = (render_targets(ds, truth, kind="outline", dtype="float32") * 0.9).compute()
    return ds, prob, xs, ys


def test_verified_catalog_is_seamless_and_needs_the_image(trained):
    from marscraters.assemble import catalog_from_probability

    ds, prob, xs, ys = _mosaic_scene()
    # every candidate kept (threshold 0), so the scores themselves are compared (an untrained
    # network: its outputs vary smoothly with every input, unlike the saturated trained one);
    # >= 8 px, because the finder's 5-px rim fragments of these perfectly symmetric rings tie,
    # and ties are broken by table order, which depends on the window
    from marscraters.verify import crater_classifier

    opts = {"max_diameter_px": 40, "min_diameter_px": 8}
    keep_all = Verifier(crater_classifier(seed=1), 0.0, CANDIDATE_OPTIONS, {"name": "test-verifier"})
    plain = catalog_from_probability(prob, mosaic=ds, extract_options=opts, progress=False, verify=False)
    ref = catalog_from_probability(prob, mosaic=ds, extract_options=opts, progress=False, verify=keep_all)
    assert ref.attrs["parameters"]["verifier"] == "test-verifier" and len(ref) >= len(xs) and len(plain) > 0
    assert not np.allclose(ref["score"].to_numpy(), ref["score"].iloc[0])  # the verifier's own scores
    assert len(catalog_from_probability(prob, mosaic=ds, extract_options=opts, progress=False,
                                        verify=trained)) <= len(ref)  # its threshold drops some
    # the same verified catalog whatever the chunking and the finder's blocks: the halo covers the
    # verifier's reach
    for chunks, block_px in (({"y": 128, "x": 128}, 128), ({"y": 100, "x": 180}, 180)):
        cat = catalog_from_probability(prob.chunk(chunks), mosaic=ds.chunk(chunks), extract_options=opts,
                                       progress=False, verify=keep_all, block_px=block_px)
        assert len(cat) == len(ref), chunks
        np.testing.assert_allclose(cat.sort_values(["y", "x"])[["x", "y", "diameter_px", "score"]].to_numpy(),
                                   ref.sort_values(["y", "x"])[["x", "y", "diameter_px", "score"]].to_numpy(),
                                   atol=1e-3)
    # the control: a halo too narrow for the verifier's reach changes the scores at the borders
    narrow = catalog_from_probability(prob.chunk({"y": 128, "x": 128}), mosaic=ds.chunk({"y": 128, "x": 128}),
                                      extract_options=opts, progress=False, verify=keep_all, halo=10, block_px=128)
    assert len(narrow) != len(ref) or not np.allclose(narrow.sort_values(["y", "x"])["score"],
                                                      ref.sort_values(["y", "x"])["score"], atol=1e-3)
    with pytest.raises(InvalidArgumentError, match="mosaic"):
        catalog_from_probability(prob, extract_options=opts, progress=False, verify=trained)


def test_a_catalog_of_a_mosaic_mostly_without_data_says_its_count_area_is_too_large(trained):
    from marscraters.assemble import catalog_from_probability

    ds, prob, _, _ = _mosaic_scene()  # 600 of its 108,000 pixels hold no data
    opts = {"max_diameter_px": 40, "min_diameter_px": 8}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cat = catalog_from_probability(prob, mosaic=ds, extract_options=opts, progress=False, verify=trained)
    assert cat.attrs["nodata_share"] == pytest.approx(600 / (300 * 360), abs=1e-6)
    # the east half without data: the footprint, twice the imaged ground, would date it too young
    gappy = ds.copy()
    gappy["ir"] = ds["ir"].where(ds["x"] < ds["x"].values[180])
    with pytest.warns(UserWarning, match=r"5[0-9]% of .* holds no image data.*2\.0[0-9] times too low.*--area"):
        cat = catalog_from_probability(prob, mosaic=gappy, extract_options=opts, progress=False, verify=trained)
    assert cat.attrs["nodata_share"] == pytest.approx(0.5, abs=0.01)
    # and dating it on that area says so again (age, not only catalog, is where it matters)
    from marscraters.catalog import make_catalog
    from marscraters.chronology import model_age

    counted = make_catalog([-0.5, -0.4], [10.3, 10.5], [2.0, 3.0], attrs=dict(cat.attrs))  # (its craters, if any)
    with pytest.warns(UserWarning, match=r"5[0-9]% holds no image data.*--area unit.gpkg"):
        model_age(counted, diameter_range=(1.5, 4.0))


def test_model_named_verifier_is_used_and_missing_image_warns(tmp_path, trained):
    import shutil

    from marscraters.assemble import catalog_from_probability
    from marscraters.model import read_model_metadata, save_model, symmetric_unet

    shutil.copyfile(trained, tmp_path / "crater_classifier.keras")
    model = save_model(symmetric_unet(filter_multiple=0.5), tmp_path / "m.keras",
                       metadata={"training": {"kind": "outline"}, "verifier": "crater_classifier.keras"})
    assert read_model_metadata(model)["verifier"] == "crater_classifier.keras"
    ds, prob, _, _ = _mosaic_scene()
    opts = {"max_diameter_px": 60}
    cat = catalog_from_probability(prob, mosaic=ds, model=model, extract_options=opts, progress=False)
    assert cat.attrs["parameters"]["verifier"] == "test-verifier"
    with pytest.warns(UserWarning, match="unverified"):
        bare = catalog_from_probability(prob, model=model, extract_options=opts, progress=False)
    assert "verifier" not in bare.attrs["parameters"]


def test_detect_with_a_loaded_model_uses_no_verifier_unless_given(trained):
    from marscraters.detect import detect
    from marscraters.model import symmetric_unet

    rng = np.random.default_rng(7)
    img, _, _ = _scene(rng)
    net = symmetric_unet(filter_multiple=0.5)
    with pytest.raises(ModelError, match="loaded Keras model names no verifier"):
        detect(img, pixel_size_m=100.0, model=net, kind="outline", verify=True)
    # an explicit verifier works with any network; its scores are probabilities above its threshold
    found = detect(img, pixel_size_m=100.0, model=net, kind="outline", verify=trained)
    assert list(found.columns) == ["x", "y", "diameter_px", "diameter_m", "score", "level"]
    assert (found["score"] >= 0.5).all()
    # none given: one-stage detections, said so (silent with verify=False)
    with pytest.warns(UserWarning, match="one-stage detections"):
        detect(img, pixel_size_m=100.0, model=net, kind="outline")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detect(img, pixel_size_m=100.0, model=net, kind="outline", verify=False)


def test_catalog_cli_verifies_with_the_mosaic(tmp_path):
    """``marscraters catalog pred.zarr --mosaic cube.zarr`` verifies with the model's verifier
    (the shipped one), records it, and ``--no-verify`` does not."""
    import argparse
    import json as _json

    import pyogrio

    from marscraters.assemble import add_catalog_parser
    from marscraters.model import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.exists() or verifier_of(DEFAULT_WEIGHTS) is None:
        pytest.skip("no shipped model with a verifier")
    ds, prob, _, _ = _mosaic_scene()
    store, cube = tmp_path / "pred.zarr", tmp_path / "cube.zarr"
    prob.chunk({"y": 150, "x": 180}).to_dataset(name="crater_probability").to_zarr(store, zarr_format=3,
                                                                                  consolidated=False)
    ds.to_zarr(cube, zarr_format=3, consolidated=False)
    parser = argparse.ArgumentParser()
    add_catalog_parser(parser.add_subparsers(dest="command"))
    params = {}
    for name, extra in (("verified", ["--mosaic", str(cube)]), ("plain", ["--mosaic", str(cube), "--no-verify"])):
        out = tmp_path / f"{name}.gpkg"
        args = parser.parse_args(["catalog", str(store), "--out", str(out), "--max-diameter-px", "60", "--quiet", *extra])
        assert args.func(args) == 0
        meta = pyogrio.read_dataframe(out, layer="metadata").set_index("key")["value"]
        params[name] = _json.loads(meta["parameters"])
    assert params["verified"]["verifier"] == "marscraters-themis-verifier"
    assert params["verified"]["threshold"] == CANDIDATE_OPTIONS["threshold"]  # the verifier's candidates
    assert "verifier" not in params["plain"]


@pytest.mark.parametrize("n", [5, 32, 33, 400])
def test_crowding_counts_equal_the_all_pairs_count(n):
    """Fewer circles than the largest tested against all, as many, one more, and many; with a
    circle far larger than the others (real candidate sets hold one, which made every pair near)."""
    from marscraters.verify import _BIG_CIRCLES, _overlapping

    assert _BIG_CIRCLES == 32  # the sizes above straddle it
    rng = np.random.default_rng(3)
    x, y, r = rng.uniform(0, 300, n), rng.uniform(0, 300, n), rng.uniform(1, 40, n)
    # a duplicate, a concentric pair and two circles that exactly touch (not overlapping)
    x[:4], y[:4], r[:4] = [10.0, 10.0, 50.0, 56.0], [10.0, 10.0, 200.0, 200.0], [3.0, 5.0, 2.0, 4.0]
    if n > 33:
        x[-1], y[-1], r[-1] = 900.0, 900.0, 1000.0
    every = (np.hypot(x[:, None] - x[None], y[:, None] - y[None]) < r[:, None] + r[None]).sum(1) - 1
    np.testing.assert_array_equal(_overlapping(x, y, r), every)
    assert _overlapping(x, y, r).dtype == np.int64
    assert _overlapping(x[:0], y[:0], r[:0]).shape == (0,)
