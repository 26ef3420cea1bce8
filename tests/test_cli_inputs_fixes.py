"""Inputs the command line (and the functions behind it) must refuse before any work: a backwards
``experiments --holdout``, ``--overwrite`` over a folder that is no earlier output, out-of-range
training numbers, and a ``browse --port`` out of range or in use."""

from __future__ import annotations

import argparse
import socket

import numpy as np
import pytest
from PIL import Image

from marscraters._io import atomic_path, check_output, output_kind
from marscraters.catalog import make_catalog
from marscraters.errors import InvalidArgumentError, MarsCratersError, OutputExistsError
from marscraters.mosaic import mosaic_from_array

PPD = 100.0  # pixels per degree of the small test mosaics


def _mosaic(n: int = 96, seed: int = 0):
    img = np.random.default_rng(seed).integers(20, 230, (n, n)).astype(np.float32)
    return mosaic_from_array(img, bounds=(10.0, 0.0, 10.0 + n / PPD, n / PPD), name="scene.png")


def _cube(path, seed: int = 0):
    _mosaic(seed=seed).to_zarr(path, zarr_format=3, consolidated=False)
    return path


def _user_folder(path):
    """A folder of the user's own files, which no overwrite may delete."""
    path.mkdir()
    (path / "notes.txt").write_text("my notes")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path / "crater0.jpg")
    return path


def _held(path) -> dict[str, bytes]:
    """Every file under ``path``, by its relative path, with its bytes."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------
# 3. experiments --holdout START STOP
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("holdout", "fix"), [((600, 500), "write it as 500 600"), ((500, 500), "e.g. 500 600"),
                                              ((-5, 10), "e.g. 0 10")])
def test_a_backwards_or_negative_holdout_is_refused_naming_the_fix(holdout, fix):
    from marscraters.experiments import CampaignSettings

    with pytest.raises(InvalidArgumentError, match=rf"holdout must be START STOP with 0 <= START < STOP.*{fix}"):
        CampaignSettings(holdout=holdout)
    # the workers' settings (JSON) go through the same check
    with pytest.raises(InvalidArgumentError, match="holdout"):
        CampaignSettings.from_dict({"holdout": list(holdout)})


def test_a_forward_holdout_still_keeps_its_chips_out(tmp_path):
    from marscraters.experiments import CampaignSettings, chip_split

    folder = tmp_path / "chips"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for n in range(20):
        Image.fromarray(np.zeros((128, 128), np.uint8)).save(folder / "images" / f"crater{n}.png")
        (folder / "labels" / f"crater{n}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    settings = CampaignSettings(chips=str(folder), n_train=6, n_val=3, holdout=[10.0, 20])
    assert settings.holdout == (10, 20)
    train_ids, val_ids = chip_split(settings.resolved("O"))
    assert not {n for n in train_ids + val_ids if 10 <= n < 20}


def test_cli_experiments_refuses_a_backwards_holdout_before_training(tmp_path, capsys):
    from marscraters.cli import main

    out = tmp_path / "ex"
    rc = main(["-q", "experiments", "--campaign", "O", "--tests", "1", "--epochs", "1", "--holdout", "600", "500",
               "--chips", str(tmp_path / "absent"), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "holdout" in err and "START < STOP" in err and "500 600" in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# 4. overwrite replaces an earlier output only
# --------------------------------------------------------------------------------------------
def test_overwrite_refuses_a_folder_of_the_users_files(tmp_path):
    folder = _user_folder(tmp_path / "results")
    before = _held(folder)
    for kw in ({}, {"folder": True}):
        with pytest.raises(OutputExistsError, match=r"results is an existing folder but no earlier output.*notes\.txt"
                                                    r".*new output path.*remove the folder yourself"):
            check_output(folder, True, **kw)
    # without overwrite too, rather than suggesting an overwrite that would be refused
    with pytest.raises(OutputExistsError, match="no earlier output"):
        check_output(folder, False, folder=True)
    with pytest.raises(OutputExistsError, match="no earlier output"), atomic_path(folder, overwrite=True) as tmp:
        _mosaic().to_zarr(tmp, zarr_format=3, consolidated=False)
    assert _held(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temporary left


def test_overwrite_replaces_zarr_stores_v3_and_v2_and_empty_folders(tmp_path):
    import xarray as xr

    v3 = _cube(tmp_path / "v3.zarr")
    v2 = tmp_path / "v2.zarr"
    _mosaic().to_zarr(v2, zarr_format=2, consolidated=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (output_kind(v3), output_kind(v2), output_kind(empty)) == ("zarr", "zarr", None)
    for target in (v3, v2, empty):
        with atomic_path(target, overwrite=True) as tmp:
            _mosaic(seed=1).to_zarr(tmp, zarr_format=3, consolidated=False)
        np.testing.assert_array_equal(xr.open_zarr(target, consolidated=False)["ir"].values, _mosaic(seed=1)["ir"].values)


def test_write_chips_overwrites_its_own_chips_but_not_other_folders(tmp_path):
    from marscraters.chips import write_chips

    ds = _mosaic()
    cat = make_catalog([0.2], [10.2], [1.5])
    out = write_chips(ds, cat, tmp_path / "chips", size=48)
    assert output_kind(out) == "chips"
    assert write_chips(ds, cat, out, size=32, overwrite=True) == out
    assert len(list((out / "images").iterdir())) == 9  # the 32-px chips replaced the 48-px ones
    # a folder of images and labels without index.csv (e.g. a downloaded dataset) is not write_chips' own
    theirs = tmp_path / "dataset"
    (theirs / "images").mkdir(parents=True)
    (theirs / "labels").mkdir()
    (theirs / "images" / "crater0.jpg").write_bytes(b"jpg")
    with pytest.raises(OutputExistsError, match="no earlier output"):
        write_chips(ds, cat, theirs, size=48, overwrite=True)
    assert (theirs / "images" / "crater0.jpg").read_bytes() == b"jpg"


def test_an_output_of_another_kind_is_never_replaced(tmp_path):
    store = _cube(tmp_path / "cube.zarr")
    before = _held(store)
    # chips written over a Zarr store: refused when the writer says what it writes...
    with pytest.raises(OutputExistsError, match="cube.zarr is a Zarr store.*but this writes a chips folder"):
        check_output(store, True, folder=True, kind="chips")
    # ...and otherwise once the output is written, before the rename
    with (pytest.raises(OutputExistsError, match="Zarr store.*chips folder.*same kind"),
          atomic_path(store, overwrite=True) as tmp):
        for sub in ("images", "labels"):
            (tmp / sub).mkdir(parents=True)
        (tmp / "index.csv").write_text("file\n")
    assert _held(store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr"]


@pytest.mark.parametrize("given", [".", "..", "cwd"])
def test_the_current_folder_or_one_above_it_is_never_an_output(tmp_path, monkeypatch, given):
    here = _user_folder(tmp_path / "work")
    monkeypatch.chdir(here)
    path = str(here) if given == "cwd" else given
    what = "holds the current folder" if given == ".." else "is the current folder"
    for overwrite in (False, True):
        with (pytest.raises(OutputExistsError, match=f"{what}.*even with overwrite.*new path"),
              atomic_path(path, overwrite=overwrite) as tmp):
            _mosaic().to_zarr(tmp, zarr_format=3, consolidated=False)
    assert sorted(p.name for p in here.iterdir()) == ["crater0.jpg", "notes.txt"]


@pytest.mark.parametrize("given", [".", "cwd", "results"])
def test_cli_overwrite_refuses_the_current_folder_and_the_users_folder(tmp_path, monkeypatch, capsys, given):
    from marscraters.cli import main

    cube = _cube(tmp_path / "cube.zarr")
    here = _user_folder(tmp_path / "work")
    results = _user_folder(here / "results")
    monkeypatch.chdir(here)
    out = {"cwd": str(here)}.get(given, given)
    assert main(["-q", "ingest", str(cube), "--out", out, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("current folder" if given != "results" else "no earlier output") in err
    assert sorted(p.name for p in here.iterdir()) == ["crater0.jpg", "notes.txt", "results"]
    assert sorted(p.name for p in results.iterdir()) == ["crater0.jpg", "notes.txt"]


def test_a_folder_path_ending_in_dotdot_is_written_where_it_points(tmp_path, monkeypatch):
    store = _cube(tmp_path / "a")
    (store / "b").mkdir()  # "a/b/.." is the store a
    monkeypatch.chdir(tmp_path)
    with atomic_path("a/b/..", overwrite=True) as tmp:
        _mosaic(seed=2).to_zarr(tmp, zarr_format=3, consolidated=False)
    assert output_kind(tmp_path / "a") == "zarr" and sorted(p.name for p in tmp_path.iterdir()) == ["a"]


# --------------------------------------------------------------------------------------------
# 5. training numbers
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("setting", "value"), [
    ("batch_size", 0), ("batch_size", -2), ("batch_size", 2.5),
    ("learning_rate", -0.01), ("learning_rate", 0.0), ("learning_rate", float("nan")), ("learning_rate", float("inf")),
    ("scale", (1.3, 0.7)), ("scale", (float("nan"), 1.0)), ("scale", (0.0, 1.0)), ("scale", (1.0,)),
    ("contrast", -1.0), ("contrast", float("nan")),
    ("dice_weight", -0.5), ("dice_weight", float("nan")),
    ("crop", 100), ("crop", 0),
    ("workers", 0), ("score_every", 0), ("weight_small_craters_px", -3.0),
])
def test_train_config_refuses_out_of_range_numbers(setting, value):
    from marscraters.training import TrainConfig

    with pytest.raises(InvalidArgumentError, match=setting):
        TrainConfig(**{setting: value})


def test_train_config_messages_name_the_fix():
    from marscraters.training import TrainConfig

    with pytest.raises(InvalidArgumentError, match=r"scale must be MIN MAX with MIN <= MAX.*write it as 0\.7 1\.3"):
        TrainConfig(scale=(1.3, 0.7))
    with pytest.raises(InvalidArgumentError, match="learning_rate must be a finite number > 0.*climbs the loss"):
        TrainConfig(learning_rate=-0.01)
    TrainConfig(batch_size=1, learning_rate=1e-4, scale=[0.8, 1.2], contrast=0.0, dice_weight=0.0)  # the edges pass


def test_synthetic_dots_need_at_least_one_image():
    from marscraters.training import dots_training_set

    with pytest.raises(InvalidArgumentError, match="number of synthetic dot images.*>= 1"):
        dots_training_set(0)


@pytest.mark.parametrize("flags", [
    ["--batch-size", "0"], ["--scale", "1.3", "0.7"], ["--scale", "nan", "1"], ["--dots", "0"],
    ["--learning-rate", "nan"], ["--learning-rate", "-0.01"], ["--contrast", "-1"], ["--contrast", "nan"],
    ["--dice-weight", "nan"],
])
def test_cli_train_refuses_bad_numbers_before_writing_anything(tmp_path, capsys, flags):
    from marscraters.cli import main

    out = tmp_path / "run"
    assert main(["-q", "train", "--dots", "8", "--crop", "128", "--epochs", "1", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "must be" in err
    assert not out.exists()  # no run/config.json left behind


# --------------------------------------------------------------------------------------------
# 7. browse --port
# --------------------------------------------------------------------------------------------
def _browse_parser() -> argparse.ArgumentParser:
    pytest.importorskip("panel")
    from marscraters.browse import add_browse_parser

    parser = argparse.ArgumentParser()
    add_browse_parser(parser.add_subparsers())
    return parser


@pytest.mark.parametrize("port", ["99999", "-1", "65536", "http"])
def test_browse_port_out_of_range_is_refused_by_the_parser(tmp_path, capsys, port):
    with pytest.raises(SystemExit) as exit_info:
        _browse_parser().parse_args(["browse", str(tmp_path / "cube.zarr"), "--port", port])
    assert exit_info.value.code == 2
    assert "--port must be a whole number 0..65535" in capsys.readouterr().err


@pytest.mark.timeout(120)  # should the port not be taken after all, the server would block
def test_browse_port_in_use_names_the_fix(tmp_path):
    parser = _browse_parser()
    cube = _cube(tmp_path / "cube.zarr")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        args = parser.parse_args(["browse", str(cube), "--port", str(port)])
        assert args.port == port
        with pytest.raises(MarsCratersError, match=rf"port {port} on 127\.0\.0\.1 is in use.*another --port.*leave "
                                                   r"--port out for a free one"):
            args.func(args)
