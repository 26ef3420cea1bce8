"""benchmarks/crossfit_verifier.py: cross-fitted scores never use a verifier on the chips it saw."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.benchmark_scripts import load_benchmark


def _bench():
    return load_benchmark("crossfit_verifier")


def test_crossfit_refuses_the_held_out_chips():
    with pytest.raises(SystemExit):
        _bench().main(["--chips-range", "400:600"])
    with pytest.raises(SystemExit):
        _bench().main(["--folds", "1"])


def test_crossfit_scores_real_chips(shared_data, tmp_path, monkeypatch):
    bench = _bench()
    seen = []
    real_fit = bench.fit_classifier

    def fit(patches, feats, labels, **kw):
        seen.append(len(labels))
        return real_fit(patches, feats, labels, **kw)

    monkeypatch.setattr(bench, "fit_classifier", fit)
    out = tmp_path / "cf.json"
    report = bench.main(["--chips", str(shared_data / "themis-dayir-crops"), "--chips-range", "436:444",
                         "--epochs", "1", "--json", str(out)])
    # one verifier per fold, each trained on the other fold's candidates only
    assert len(seen) == 2 and sum(seen) == report["n_candidates"]
    saved = json.loads(out.read_text())
    parts = {row["part"] for row in saved["sweep"]}
    assert parts == {"all", "0-439", "440-499"}
    f1 = [row["f1"] for row in saved["sweep"] if row["part"] == "all"]
    assert np.all(np.isfinite(f1)) and 0 < max(f1) <= 1
    assert saved["best_all"]["f1"] == pytest.approx(max(f1))
