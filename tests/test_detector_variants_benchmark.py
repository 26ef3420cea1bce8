"""benchmarks/detector_variants.py: the half-resolution merge rules and the held-out guard."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.benchmark_scripts import load_benchmark


def _frame(rows):
    return pd.DataFrame(rows, columns=["x", "y", "diameter_px", "score"])


def test_merge_rules_split_and_union_at_the_switch_diameter():
    bench = load_benchmark("detector_variants")
    native = _frame([[50, 50, 20, 0.9], [200, 200, 300, 0.8]])
    # one big half-resolution crater duplicates the native one, one is new, one small is ignored
    half = _frame([[205, 198, 290, 0.7], [380, 60, 260, 0.6], [60, 60, 22, 0.9]])
    union = bench.merge(native, half, "union", 256)
    assert sorted(union["diameter_px"]) == [20, 260, 300]  # the duplicate of 300 px is dropped
    split = bench.merge(native, half, "split", 256)
    assert sorted(split["diameter_px"]) == [20, 260, 290]  # native below 256, half-resolution above
    assert len(bench.merge(native, half.iloc[:0], "union", 96)) == len(native)


def test_held_out_chips_need_the_explicit_flag():
    with pytest.raises(SystemExit):
        load_benchmark("detector_variants").main(["--range", "480:520"])


def test_variants_score_real_chips(shared_data, tmp_path):
    out = tmp_path / "v.json"
    report = load_benchmark("detector_variants").main(
        ["--chips", str(shared_data / "themis-dayir-crops"), "--range", "440:443", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["chips"] == "440..442" and set(saved["variants"]) == set(report["variants"])
    rows = saved["variants"]
    ceiling = rows["candidates before the verifier (its recall is the ceiling)"]
    # the verifier only removes candidates: recall cannot rise past theirs
    assert rows["shipped"]["recall"] <= ceiling["recall"]
    assert rows["half union 96"]["n_truth_matched"] >= rows["shipped"]["n_truth_matched"]
    assert all(0 <= r["f1"] <= 1 for r in rows.values())
