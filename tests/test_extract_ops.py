"""The template finder's search in Keras ops (``marscraters.extract_ops``) against the numpy search.

Both engines compute the same correlations up to the FFTs' rounding, so on maps without exact ties
they find the same peaks; on binary maps, whose correlations have plateaus, a tie may be broken at
another pixel of the plateau, so those tests compare what a user gets after duplicate removal.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from marscraters import extract as ex
from marscraters import extract_ops as eo
from marscraters.errors import InvalidArgumentError, cli_message

from .test_model import run_python


def _numpy_search(img: np.ndarray, templates: list[np.ndarray], radii: np.ndarray, threshold: float) -> np.ndarray:
    """find_circles_template's numpy search of one tile (its inner ``search``)."""
    maps = ex._ncc_bank(img, templates)
    out = []
    for k, (r, ncc) in enumerate(zip(radii, maps)):
        peaks = ex._peak_local_max(ncc, max(1, int(r // 2)), threshold)
        if len(peaks):
            xyr = ex._refine(maps, radii, k, peaks, to_ends=True)
            out.append(np.column_stack([xyr, ncc[peaks[:, 0], peaks[:, 1]]]))
    return np.concatenate(out) if out else np.empty((0, 4))


def _rings(shape: tuple[int, int], n: int, seed: int, levels: int = 64) -> np.ndarray:
    """Anti-aliased rings at random sub-pixel centres, on a grid of 1/levels (exact float32 sums,
    and correlations without the plateaus of a binary map)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape, np.float32)
    for _ in range(n):
        cx, cy, r = rng.uniform(0, shape[1]), rng.uniform(0, shape[0]), rng.uniform(4.0, 11.0)
        d = np.hypot(xx - cx, yy - cy)
        ring = np.clip(1.5 - np.abs(d - r) / 1.5, 0, 1)
        img = np.maximum(img, ring.astype(np.float32))
    return np.round(img * levels).astype(np.float32) / levels


RADII = 5.0 * 1.1 ** np.arange(8)
TEMPLATES = [ex._template("outline", float(r), 0.7, 2.0) for r in RADII]


@pytest.mark.parametrize("seed", [0, 1])
def test_template_search_finds_the_numpy_searchs_circles(seed):
    img = _rings((150, 190), 10, seed)
    ref = _numpy_search(img, TEMPLATES, RADII, 0.3)
    got = eo.template_search(img, TEMPLATES, RADII, 0.3)
    assert len(ref) > 5
    assert got.shape == ref.shape
    np.testing.assert_allclose(got[:, :3], ref[:, :3], atol=1e-3)  # x, y, radius (px)
    np.testing.assert_allclose(got[:, 3], ref[:, 3], atol=1e-5)  # the correlation


def test_more_peaks_than_the_first_pass_fetches_are_all_kept(monkeypatch):
    img = _rings((120, 140), 12, 3)
    full = eo.template_search(img, TEMPLATES, RADII, 0.2)
    monkeypatch.setattr(eo, "FIRST_PEAKS", 1)  # every radius with two peaks or more overflows
    np.testing.assert_array_equal(eo.template_search(img, TEMPLATES, RADII, 0.2), full)


def test_template_search_of_empty_constant_and_peakless_maps():
    assert eo.template_search(np.zeros((40, 50), np.float32), TEMPLATES, RADII, 0.5).shape == (0, 4)
    # a constant window correlates 0 everywhere: no peak (as match_template and the numpy search)
    assert eo.template_search(np.ones((40, 50), np.float32), TEMPLATES, RADII, 0.5).shape == (0, 4)
    img = _rings((60, 60), 3, 4)
    assert eo.template_search(img, TEMPLATES, RADII, 0.999).shape == (0, 4)
    with pytest.raises(InvalidArgumentError, match="exact"):
        eo.template_search(img + np.float32(1e-7), TEMPLATES, RADII, 0.5)
    # a one-pixel map is no constant image: its pixel is a peak, as in the numpy search
    one = np.ones((1, 1), np.float32)
    np.testing.assert_allclose(eo.template_search(one, TEMPLATES[:3], RADII[:3] / 5, 0.05),
                               _numpy_search(one, TEMPLATES[:3], RADII[:3] / 5, 0.05), atol=1e-5)


def test_coarse_block_means_whose_squares_would_round_stay_on_the_host():
    # block means of a binary map at 1/8: float32 sums of the map are exact, of its square not
    yy, xx = np.mgrid[:1600, :1600]
    rng = np.random.default_rng(7)
    binary = np.zeros((1600, 1600), np.float32)
    for cx, cy, r in zip(rng.uniform(0, 1600, 60), rng.uniform(0, 1600, 60), rng.uniform(20, 90, 60)):
        binary[np.hypot(xx - cx, yy - cy) <= r] = 1
    coarse = ex._downsample(binary, 8, "mean")
    assert ex._float32_sums_exact(coarse) and not eo.exact_sums(coarse)
    with pytest.raises(InvalidArgumentError, match="engine='numpy'"):
        eo.template_search(coarse, TEMPLATES, RADII, 0.5)
    plan = [(8, 40.0, 88.0)]
    found = {e: ex.find_circles_template(binary, target="filled", plan=plan, engine=e) for e in ("numpy", "keras")}
    assert len(found["numpy"]) > 5
    np.testing.assert_array_equal(found["keras"].to_numpy(), found["numpy"].to_numpy())  # the same path


def test_extract_craters_with_either_engine_gives_the_same_craters():
    # disks and rings of several sizes, on binary maps: three scales, plateaus and all
    yy, xx = np.mgrid[:300, :320]
    prob = np.zeros((300, 320))
    for cx, cy, r in [(40.3, 50.2, 6), (120.0, 80.7, 14.5), (220.6, 200.1, 31), (80.2, 220.9, 9.3), (260, 60, 20)]:
        d = np.hypot(xx - cx, yy - cy)
        prob = np.maximum(prob, ((d <= r) & (d >= 0.7 * r)) * 0.9)
    found = {e: ex.extract_craters(prob, target="outline", engine=e) for e in ("numpy", "keras")}
    a, b = found["numpy"], found["keras"]
    assert len(a) == 5 and len(b) == len(a)
    np.testing.assert_allclose(b[["x", "y", "diameter_px"]].to_numpy(), a[["x", "y", "diameter_px"]].to_numpy(),
                               atol=0.05)
    np.testing.assert_allclose(b["score"], a["score"], atol=1e-5)


def test_engine_choices_and_errors():
    assert eo.resolve_engine("numpy") == "numpy" and eo.resolve_engine("keras") == "keras"
    with pytest.raises(InvalidArgumentError, match="--finder-engine"):
        eo.resolve_engine("gpu")
    with pytest.raises(InvalidArgumentError, match="engine"):
        ex.extract_craters(np.eye(30), target="outline", engine="cuda")
    # Hough (ring targets) has no Keras engine: asking for it names the fix; the host's engine is fine
    with pytest.raises(InvalidArgumentError, match="template matching only.*--finder-engine numpy") as err:
        ex.extract_craters(np.eye(30), target="ring", engine="keras")
    cli = cli_message(str(err.value), {"--finder-engine"})  # the command line's spelling: its flags only
    assert cli.startswith("--finder-engine keras runs") and "engine=" not in cli
    ring = np.zeros((60, 60))
    yy, xx = np.mgrid[:60, :60]
    ring[np.abs(np.hypot(xx - 30, yy - 30) - 12) < 1.5] = 0.9
    np.testing.assert_array_equal(ex.extract_craters(ring, target="ring", engine="numpy").to_numpy(),
                                  ex.extract_craters(ring, target="ring").to_numpy())
    assert eo.engine_options("auto") == {} and eo.engine_options("keras") == {"engine": "keras"}


def test_auto_keeps_the_numpy_engine_on_a_cpu():
    from marscraters.cluster import detect_gpus

    if detect_gpus() > 0:  # pragma: no cover - a GPU machine
        pytest.skip("a GPU is visible here: 'auto' is meant to pick keras")
    assert eo.resolve_engine("auto") == "numpy"


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_template_search_under_jax(tmp_path):
    img = _rings((110, 130), 8, 5)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "ref.npy", _numpy_search(img, TEMPLATES, RADII, 0.3))
    result = run_python(
        f"""
        import numpy as np
        import keras
        from marscraters import extract as ex
        from marscraters.extract_ops import template_search
        assert keras.backend.backend() == "jax"
        # a user's channels-first setting must not turn the peaks' pooling windows
        keras.config.set_image_data_format("channels_first")
        radii = 5.0 * 1.1 ** np.arange(8)
        templates = [ex._template("outline", float(r), 0.7, 2.0) for r in radii]
        got = template_search(np.load({str(tmp_path / 'img.npy')!r}), templates, radii, 0.3)
        np.save({str(tmp_path / 'got.npy')!r}, got)
        """,
        KERAS_BACKEND="jax",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ref, got = np.load(tmp_path / "ref.npy"), np.load(tmp_path / "got.npy")
    assert len(ref) > 3 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-3)
