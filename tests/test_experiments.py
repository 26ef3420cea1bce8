"""The paper's architecture test campaigns: test selection, settings, tiny real runs, resume, the GPU pool."""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from marscraters.errors import CatalogNotFoundError, InvalidArgumentError, ModelError
from marscraters.experiments import (
    ARCHITECTURES,
    CAMPAIGNS,
    PAPER_TABLES,
    CampaignSettings,
    add_experiments_parser,
    campaign_data,
    chip_split,
    compare_with_paper,
    detect_gpus,
    experiment_config,
    gpu_slots,
    markdown_table,
    parse_tests,
    run_campaign,
    run_experiments_cli,
)
from marscraters.synthetic import synthetic_dots
from marscraters.targets import draw_targets

TINY = {"n_train": 8, "n_val": 4}  # 128 x 128 dots: one batch per epoch


# --------------------------------------------------------------------------------------------
# selection and the paper's tables
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [("1-8", list(range(1, 9))), ("1,4,6", [1, 4, 6]), ("2-3,7", [2, 3, 7]), (" 6, 1,6 ", [1, 6]), ("5", [5]),
     (7, [7]), ([8, 2, 2], [2, 8])],
)
def test_parse_tests(text, expected):
    assert parse_tests(text) == expected


@pytest.mark.parametrize("text", ["", "0", "9", "1-9", "3-1", "a", "1;2", "1--3", [1, 12]])
def test_parse_tests_rejects(text):
    with pytest.raises(InvalidArgumentError):
        parse_tests(text)


def test_architectures_are_the_papers():
    assert {n: tuple(a) for n, a in ARCHITECTURES.items()} == {
        1: (3, 1.0), 2: (3, 1.0), 3: (3, 1.0), 4: (7, 1.0), 5: (3, 0.5), 6: (3, 2.0), 7: (11, 1.0), 8: (7, 2.0)
    }
    assert {k: c.kind for k, c in CAMPAIGNS.items()} == {"S": "filled", "C": "filled", "O": "outline"}
    for letter, table in PAPER_TABLES.items():
        assert list(table["test"]) == [f"{letter}-{n}" for n in range(1, 9)]
        assert list(table["kernel"]) == ["3x3", "3x3", "3x3", "7x7", "3x3", "3x3", "11x11", "7x7"]
        assert list(table["filter_multiple"]) == [1, 1, 1, 1, 0.5, 2, 1, 2]
    assert PAPER_TABLES["C"].set_index("test").loc["C-7", "seconds_per_epoch"] == 137
    assert PAPER_TABLES["O"].set_index("test").loc["O-5", "loss_at_500"] == 0.0958


def test_experiment_config_is_faithful_and_seeds_repeats_differently():
    configs = {t: experiment_config("O", t, 50) for t in range(1, 9)}
    assert all(c.kind == "outline" and c.dice_weight == 0 and not c.augment and not c.cosine_decay for c in configs.values())
    assert (configs[8].kernel_size, configs[8].filter_multiple) == (7, 2.0)
    assert len({configs[t].seed for t in (1, 2, 3)}) == 3  # repeats, not copies
    assert configs[1].crop == 384 and configs[1].score_d_min == 16.0
    s = experiment_config("S", 7, 3, CampaignSettings(size=256))
    assert (s.kind, s.kernel_size, s.crop, s.score_every, s.extract_options) == ("filled", 11, 256, 1, {"method": "components"})
    with pytest.raises(InvalidArgumentError, match="campaign"):
        experiment_config("X", 1, 5)
    with pytest.raises(InvalidArgumentError, match="multiple of 128"):
        experiment_config("S", 1, 5, CampaignSettings(size=100))
    with pytest.raises(InvalidArgumentError, match="unknown campaign setting"):
        CampaignSettings.from_dict({"n_trian": 3})


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def test_synthetic_dots_circles_are_the_targets():
    images, targets = synthetic_dots(6, 128, seed=4)
    images2, targets2, circles = synthetic_dots(6, 128, seed=4, return_circles=True)
    np.testing.assert_array_equal(images, images2)  # asking for circles changes nothing
    np.testing.assert_array_equal(targets, targets2)
    assert len(circles) == 6
    for c, t in zip(circles, targets):
        assert list(c.columns) == ["x", "y", "diameter_px", "score"]
        assert ((c.diameter_px >= 6) & (c.diameter_px <= 32)).all()
        np.testing.assert_array_equal(draw_targets(t.shape, c, "filled"), t)


def test_dots_campaign_data():
    tr, va = campaign_data("S", CampaignSettings(n_train=5, n_val=3))
    assert tr.images.shape == (5, 128, 128) and va.images.shape == (3, 128, 128)
    assert tr.targets is not None and va.targets is None  # validation targets drawn from the circles
    assert set(va.craters["image"]) == {0, 1, 2}
    assert not np.array_equal(tr.images[:3], va.images)  # validation dots are other dots
    # the circles drawn as targets reproduce the generator's own targets
    np.testing.assert_array_equal(draw_targets((128, 128), tr.craters_of(2), "filled"), tr.targets[2])


def _write_chips(folder, numbers, size=128):
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    rng = np.random.default_rng(0)
    for n in numbers:
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / "images" / f"crater{n}.jpg")
        (folder / "labels" / f"crater{n}.txt").write_text(f"0 0.5 0.5 0.{1 + n % 5} 0.2\n")
    return folder


def test_chip_split_is_disjoint_seeded_and_keeps_the_holdout(tmp_path):
    folder = _write_chips(tmp_path / "chips", range(20))
    s = CampaignSettings(chips=str(folder), n_train=6, n_val=3, holdout=(10, 20)).resolved("C")
    train_ids, val_ids = chip_split(s)
    assert len(train_ids) == 6 and len(val_ids) == 3
    assert not set(train_ids) & set(val_ids)
    assert all(n < 10 for n in train_ids + val_ids)
    assert chip_split(s) == (train_ids, val_ids)
    assert chip_split(CampaignSettings(**{**s.__dict__, "data_seed": 1})) != (train_ids, val_ids)
    with pytest.raises(InvalidArgumentError, match="fewer than n_train"):
        chip_split(CampaignSettings(**{**s.__dict__, "n_train": 8}))
    with pytest.raises(CatalogNotFoundError, match="--chips"):
        chip_split(CampaignSettings(**{**s.__dict__, "chips": str(tmp_path / "absent")}))
    tr, va = campaign_data("O", CampaignSettings(chips=str(folder), n_train=3, n_val=2, holdout=(10, 20)))
    assert len(tr) == 3 and len(va) == 2 and tr.names[0].startswith("crater")
    assert set(tr.names).isdisjoint(va.names)


# --------------------------------------------------------------------------------------------
# GPU slots
# --------------------------------------------------------------------------------------------
def test_gpu_slots(monkeypatch, caplog):
    assert gpu_slots(0) == [] and gpu_slots(None) == []
    assert gpu_slots(["", ""]) == ["", ""]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert detect_gpus() == ["3", "5"]
    assert gpu_slots("auto") == ["3", "5"] and gpu_slots(1) == ["3"] and gpu_slots("2") == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with caplog.at_level(logging.INFO, logger="marscraters.experiments"):
        assert gpu_slots("auto") == []
        assert gpu_slots(4) == []
    assert "one after another on the CPU" in caplog.text  # the fallback is said, not silent
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert detect_gpus() == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", "")  # no nvidia-smi: no GPU, no crash
    assert detect_gpus() == []
    with pytest.raises(InvalidArgumentError):
        gpu_slots("many")


# --------------------------------------------------------------------------------------------
# a tiny real campaign
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_s(tmp_path_factory):
    out = tmp_path_factory.mktemp("campaign")
    table = run_campaign("S", "1,5", 1, out, gpus=0, report_epochs=(1, 50), progress=False, verbose=0, **TINY)
    return out, table


def test_tiny_campaign_writes_the_table(tiny_s):
    out, table = tiny_s
    for name in ("campaign_S.csv", "campaign_S.md", "campaign_S.png", "campaign_S_vs_paper.md"):
        assert (out / name).stat().st_size > 0
    assert (out / "campaign_S.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = pd.read_csv(out / "campaign_S.csv")
    expected = {"test", "kernel", "filter_multiple", "seed", "epochs_done", "loss_at_1", "accuracy_at_1",
                "val_loss_at_1", "val_accuracy_at_1", "loss_last", "val_accuracy_last", "seconds_per_epoch",
                "f1_best", "f1_last", "precision_last", "recall_last", "status", "started", "finished"}
    assert expected <= set(csv.columns)
    assert "loss_at_50" not in csv.columns  # beyond the epochs run
    assert list(csv["test"]) == ["S-1", "S-5"]
    assert list(csv["filter_multiple"]) == [1.0, 0.5] and list(csv["kernel"]) == ["3x3", "3x3"]
    assert list(csv["status"]) == ["done", "done"] and list(csv["epochs_done"]) == [1, 1]
    assert csv["seed"].nunique() == 2
    assert ((csv["loss_at_1"] > 0) & (csv["loss_at_1"] < 5)).all()
    assert ((csv["val_accuracy_last"] >= 0) & (csv["val_accuracy_last"] <= 1)).all()
    assert (csv["seconds_per_epoch"] > 0).all()
    assert ((csv["f1_best"] >= 0) & (csv["f1_best"] <= 1)).all()
    np.testing.assert_allclose(csv["loss_at_1"], csv["loss_last"])
    md = (out / "campaign_S.md").read_text()
    assert "| S-5 | 3x3 | 0.5 |" in md
    assert "Loss is binary cross-entropy (BCE)," in md  # the campaign's default dice_weight=0
    for t in (1, 5):
        assert (out / f"S-{t}" / "last.keras").exists() and (out / f"S-{t}" / "run.json").exists()


def _fake_campaign(out, dice_weights: dict[int, float], epochs: int, f1_epochs=(1,)):
    """Test folders with a history.csv and config.json, as training leaves them (no training)."""
    from marscraters.experiments import summarize_campaign

    for t, w in dice_weights.items():
        d = out / f"S-{t}"
        d.mkdir(parents=True)
        loss = 0.3 * np.exp(-np.arange(epochs) / 3) + 0.01 * t
        f1 = [0.5 + 0.05 * t if e + 1 in f1_epochs else np.nan for e in range(epochs)]
        pd.DataFrame({"epoch": range(epochs), "loss": loss, "val_loss": loss * 1.1, "accuracy": 0.9,
                      "val_accuracy": 0.89, "val_crater_f1": f1}).to_csv(d / "history.csv", index=False)
        (d / "config.json").write_text(json.dumps({"seed": t, "dice_weight": w}))
    return summarize_campaign("S", out, ",".join(map(str, dice_weights)))


def _key(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_campaign_plot_names_the_loss_the_tests_and_whole_epochs(tmp_path):
    from marscraters.experiments import _campaign_figure, plot_campaign

    # one scored epoch: the F1 panel shares the loss panel's whole-epoch axis (not 0.945-1.05)
    table = _fake_campaign(tmp_path / "bce", {1: 0.0, 2: 0.0, 5: 0.0}, epochs=4)
    fig = _campaign_figure(table, title="Campaign S")
    loss, _, f1 = fig.axes
    assert loss.get_title() == "loss: binary cross-entropy (BCE)"
    assert all(ax.get_ylabel() and ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert f1.get_xlim() == loss.get_xlim()
    lo, hi = f1.get_xlim()
    assert [t for t in f1.get_xticks() if lo <= t <= hi] == [1.0, 2.0, 3.0, 4.0]
    # one key, below the panels; the repeats S-1 and S-2 are told apart, the network is in words
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    key = _key(fig)
    assert key[:3] == ["S-1: 3×3 kernels, 1× the default filters, repeat 1 (seed 1)",
                       "S-2: 3×3 kernels, 1× the default filters, repeat 2 (seed 2)",
                       "S-5: 3×3 kernels, 0.5× the default filters"]
    assert key[3:] == ["training images", "validation images"]

    # the loss follows the dice weight the tests were trained with (BCE + w x soft Dice)
    fig = _campaign_figure(_fake_campaign(tmp_path / "dice", {1: 1.0}, epochs=1))
    assert fig.axes[0].get_title() == "loss: BCE + 1 × soft-Dice loss"
    lo, hi = fig.axes[2].get_xlim()
    assert [t for t in fig.axes[2].get_xticks() if lo <= t <= hi] == [1.0] and hi - lo >= 1
    fig = _campaign_figure(_fake_campaign(tmp_path / "mixed", {1: 0.0, 2: 0.5}, epochs=2))
    assert "dice weight" in fig.axes[0].get_title()
    assert [k.rsplit(", ", 1)[-1] for k in _key(fig)[:2]] == ["dice weight 0", "dice weight 0.5"]
    assert plot_campaign(table, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_finished_tests_are_skipped_and_partial_ones_resume(tiny_s):
    out, _ = tiny_s
    stamp = (out / "S-1" / "last.keras").stat().st_mtime_ns
    hist5 = pd.read_csv(out / "S-5" / "history.csv")
    # S-1 is finished at 1 epoch; S-5 asked for 2 epochs continues from its checkpoint
    table = run_campaign("S", "1", 1, out, gpus=0, report_epochs=(1,), progress=False, verbose=0, **TINY)
    assert table["status"].tolist() == ["skipped (finished)"]
    assert (out / "S-1" / "last.keras").stat().st_mtime_ns == stamp
    table = run_campaign("S", "5", 2, out, gpus=0, report_epochs=(1,), progress=False, verbose=0, **TINY)
    assert table["epochs_done"].tolist() == [2] and table["status"].tolist() == ["done"]
    resumed = pd.read_csv(out / "S-5" / "history.csv")
    pd.testing.assert_frame_equal(resumed.iloc[:1], hist5)  # epoch 1 kept, not retrained
    # a folder that holds another experiment is refused before anything trains
    with pytest.raises(InvalidArgumentError, match="other settings"):
        run_campaign("S", "1", 2, out, gpus=0, progress=False, dice_weight=1.0, **TINY)


def test_compare_with_paper(tiny_s):
    _, table = tiny_s
    text = compare_with_paper(table, "S")
    assert "0.0502" in text and "0.8627" in text  # S-1 and S-5 as published
    assert "**paper**" in text and "Table 1" in text
    s1 = next(line for line in text.splitlines() if line.startswith("| S-1 |"))
    assert f"{table.loc[0, 'val_loss_last']:.4f}" in s1  # our S-1 beside the paper's
    c = compare_with_paper(pd.DataFrame(), "C")
    assert "0.271" in c and "137" in c and "GTX 1080" in c


def test_markdown_table():
    text = markdown_table(pd.DataFrame({"a": ["x", "y"], "b": [0.5, np.nan]}))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x | 0.5000 |", "| y | – |"]


def test_cli_runs_a_finished_campaign(tiny_s, capsys):
    out, _ = tiny_s
    parser = argparse.ArgumentParser()
    add_experiments_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["experiments", "--campaign", "s", "--tests", "1", "--epochs", "1", "--out", str(out),
                              "--gpus", "0", "--n-train", "8", "--n-val", "4", "--report-epochs", "1"])
    assert args.func is run_experiments_cli and args.campaign == "S" and args.dice_weight == 0 and not args.augment
    args.quiet = True
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "| S-1 | 3x3 |" in printed and "skipped (finished)" in printed


# --------------------------------------------------------------------------------------------
# the GPU pool, on CPU workers
# --------------------------------------------------------------------------------------------
def test_failed_worker_is_reported_after_the_tables(tmp_path):
    folder = _write_chips(tmp_path / "chips", range(6))
    (folder / "images" / "crater2.jpg").write_bytes(b"not a jpeg")  # breaks read_chips in the worker
    with pytest.raises(ModelError, match="worker.log"):
        run_campaign("C", "1", 1, tmp_path / "out", gpus=[""], chips=str(folder), n_train=4, n_val=2,
                     holdout=(100, 101), progress=False)
    csv = pd.read_csv(tmp_path / "out" / "campaign_C.csv")
    assert csv["status"].tolist() == ["failed"]
    assert "CorruptImageError" in (tmp_path / "out" / "C-1" / "worker.log").read_text()


@pytest.mark.slow
def test_pool_runs_two_workers_concurrently(tmp_path):
    table = run_campaign("S", "1,5", 1, tmp_path, gpus=["", ""], report_epochs=(1,), progress=False, **TINY)
    assert table["status"].tolist() == ["done", "done"]
    start = pd.to_datetime(table["started"])
    end = pd.to_datetime(table["finished"])
    assert start.max() < end.min()  # the two runs overlapped in time
    pids = set(table["pid"])
    assert len(pids) == 2 and not pids & {__import__("os").getpid()}
    for t in (1, 5):
        run = json.loads((tmp_path / f"S-{t}" / "run.json").read_text())
        assert run["cuda_visible_devices"] == "" and run["slot"] == "" and run["returncode"] == 0
        assert pd.read_csv(tmp_path / f"S-{t}" / "history.csv").shape[0] == 1
