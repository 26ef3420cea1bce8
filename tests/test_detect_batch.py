"""Many images in one `detect` call: the same craters per image as one call each, in one table."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marscraters import cli
from marscraters.detect import detect, image_files, read_grey_image
from marscraters.errors import ImageReadError, InvalidArgumentError

from .conftest import shared_data_dir
from .test_detect import TRUTH, _check, _disks, _threshold_model

COLUMNS = ["x", "y", "diameter_px", "diameter_m", "score", "level"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _threshold_model(tmp_path_factory.mktemp("m") / "threshold.keras")


@pytest.fixture(scope="module")
def chips():
    """Four real 416² THEMIS chips when the shared data is there, else synthetic surfaces of the
    same size and scale; one cut smaller, so that two image sizes go through the network."""
    folder = shared_data_dir() / "themis-dayir-crops" / "images"
    if folder.is_dir():
        images = [read_grey_image(folder / f"crater{i}.jpg") for i in range(500, 504)]
    else:
        from marscraters.synthetic import synthetic_surface

        images = [synthetic_surface((0.0, 0.0, 0.7, 0.7), 592.747, age_ga=3.5, seed=s).mosaic["ir"].values
                  for s in range(4)]
    images[3] = images[3][:300, 40:390]
    return images


@pytest.fixture(scope="module")
def one_by_one(chips):
    # the shipped model and verifier, one call per image
    return [detect(c, pixel_size_m=100.0) for c in chips]


def _part(table, key):
    return table[table["image"] == key].drop(columns="image").reset_index(drop=True)


def test_many_images_give_each_image_the_craters_of_its_own_call_bit_for_bit(chips, one_by_one, monkeypatch):
    import marscraters.verify

    # verifier calls of a few candidates: the batches cut across images
    monkeypatch.setattr(marscraters.verify, "_VERIFY_CHUNK", 40)
    many = detect(chips, pixel_size_m=100.0, batch_size=1)
    assert list(many.columns) == ["image", *COLUMNS] and sum(len(t) for t in one_by_one) == len(many) > 10
    for i, alone in enumerate(one_by_one):
        pd.testing.assert_frame_equal(_part(many, i), alone, check_exact=True)


def test_many_images_batched_through_the_network_find_the_same_craters(chips, one_by_one):
    # 3 same-sized chips in one network call: the CPU's batched arithmetic may move a probability by
    # ~1e-6, never a crater
    many = detect(np.stack(chips[:3]), pixel_size_m=100.0)
    for i in range(3):
        part, alone = _part(many, i), one_by_one[i]
        assert len(part) == len(alone)
        np.testing.assert_allclose(part.to_numpy(), alone.to_numpy(), rtol=0, atol=1e-4)


def test_list_stack_and_mapping_name_their_images(model_path):
    plain = np.random.default_rng(0).uniform(80, 120, (256, 400)).astype(np.float32)  # all below the threshold
    imgs = [_disks((256, 400), TRUTH), plain, _disks((128, 200), TRUTH[:1])]
    many = detect(imgs, pixel_size_m=100.0, model=model_path)
    assert list(many.columns) == ["image", *COLUMNS] and many["image"].dtype.kind == "i"
    assert set(many["image"]) == {0, 2}  # image 1 holds no crater: no rows
    for i in (0, 2):
        pd.testing.assert_frame_equal(_part(many, i), detect(imgs[i], pixel_size_m=100.0, model=model_path))
    stacked = detect(np.stack(imgs[:2]), pixel_size_m=100.0, model=model_path)
    pd.testing.assert_frame_equal(stacked, many[many["image"] == 0].reset_index(drop=True))
    named = detect({"a.png": imgs[0], "c.png": imgs[2]}, pixel_size_m=[100.0, 231.0], model=model_path)
    assert list(named["image"].unique()) == ["a.png", "c.png"]
    pd.testing.assert_frame_equal(_part(named, "c.png"), detect(imgs[2], pixel_size_m=231.0, model=model_path))
    assert named.attrs["pixel_size_m"] == {"a.png": 100.0, "c.png": 231.0}
    _check(_part(named, "a.png"), TRUTH)
    # no crater anywhere: an empty table with the same columns
    empty = detect([imgs[1]], pixel_size_m=100.0, model=model_path)
    assert list(empty.columns) == ["image", *COLUMNS] and len(empty) == 0


def test_many_images_errors_and_warnings_name_the_image(model_path, tmp_path):
    good = _disks((256, 400), TRUTH)
    with pytest.raises(InvalidArgumentError, match=r"^image 1: the image is constant"):
        detect([good, np.full((64, 64), 7.0)], pixel_size_m=100.0, model=model_path)
    with pytest.raises(InvalidArgumentError, match=r"^image 'b' must be 2-D"):
        detect({"a": good, "b": np.zeros((2, 3, 5, 7))}, pixel_size_m=100.0, model=model_path)
    with pytest.raises(InvalidArgumentError, match="3 values for 2 images"):
        detect([good, good], pixel_size_m=[100.0, 100.0, 100.0], model=model_path)
    with pytest.raises(InvalidArgumentError, match="no image given"):
        detect([], pixel_size_m=100.0, model=model_path)
    # a plain image file without a pixel size: named before any work
    Image.fromarray(good.astype(np.uint8)).save(tmp_path / "plain.png")
    with pytest.raises(InvalidArgumentError, match=r"plain\.png carries no georeferencing.*pixel_size_m="):
        detect([tmp_path / "plain.png", good], model=model_path)
    dark = np.where(good > 100, 60, 20).astype(np.float32)
    with pytest.warns(UserWarning, match=r"^image 1: the image's grey levels .* stretched on its own"):
        detect([good, dark], pixel_size_m=100.0, model=model_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        detect([good, good], pixel_size_m=100.0, model=model_path)  # nothing to say


def test_detect_command_on_a_folder_and_on_several_files(model_path, tmp_path):
    folder = tmp_path / "chips"
    folder.mkdir()
    for name, craters in (("b.png", TRUTH), ("a.jpg", TRUTH[1:]), ("c.tif", TRUTH[:1])):
        Image.fromarray(_disks((256, 400), craters).astype(np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    assert [p.name for p in image_files(folder)] == ["a.jpg", "b.png", "c.tif"]
    out = folder / "craters.csv"  # beside the images: they are the inputs, not the folder
    base = ["-q", "detect", "--pixel-size", "100", "--model", str(model_path)]
    assert cli.main([*base, str(folder), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["image", *COLUMNS]
    assert list(table["image"].unique()) == [str(folder / n) for n in ("a.jpg", "b.png", "c.tif")]
    for name in ("a.jpg", "c.tif"):
        assert cli.main([*base, str(folder / name), "--out", str(tmp_path / f"{name}.csv")]) == 0
        alone = pd.read_csv(tmp_path / f"{name}.csv")
        assert list(alone.columns) == COLUMNS  # one image: no image column
        pd.testing.assert_frame_equal(_part(table, str(folder / name)), alone)
    # several files, and a folder beside a file, into one table
    two = tmp_path / "two.csv"
    assert cli.main([*base, str(folder / "c.tif"), str(folder / "a.jpg"), "--out", str(two)]) == 0
    assert list(pd.read_csv(two)["image"].unique()) == [str(folder / "c.tif"), str(folder / "a.jpg")]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageReadError, match="holds no image file"):
        image_files(empty)
    assert cli.main([*base, str(empty), "--out", str(tmp_path / "e.csv")]) == 2
