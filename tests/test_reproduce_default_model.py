"""benchmarks/reproduce_default_model.sh: the shipped model's whole chain, each stage one epoch on 12 chips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reproduce_default_model.sh"


def test_refuses_a_folder_without_chips(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path), str(tmp_path / "work")], capture_output=True, text=True,
                       env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 2 and "images/ and labels/" in r.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
@pytest.mark.realdata
def test_smoke_run_chains_every_stage_into_a_shippable_model(shared_data, tmp_path):
    from marscraters.model import describe_model, load_model, read_model_metadata

    work = tmp_path / "work"
    r = subprocess.run(["bash", str(SCRIPT), str(shared_data / "themis-dayir-crops"), str(work)],
                       capture_output=True, text=True, env={**os.environ, "SMOKE": "1", "PYTHON": sys.executable},
                       cwd=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    # v2 resumed v1's run (one epoch more), v8 widened v7's network, v9 went on from v8's, v10 widened v9's
    assert len((work / "v2" / "history.csv").read_text().strip().splitlines()) == 3
    assert describe_model(load_model(work / "v7" / "last.keras"))["filter_multiple"] == 1.0
    assert describe_model(load_model(work / "v9" / "last.keras"))["filter_multiple"] == 1.5
    shipped = work / "shipped" / "symmetric_unet.keras"
    model = load_model(shipped)
    assert describe_model(model)["filter_multiple"] == 2.0 and model.count_params() == 2_923_681
    meta = read_model_metadata(shipped)
    assert meta["name"] == "marscraters-themis-outline-v10-reproduced" and meta["weights_dtype"] == "float16"
    assert meta["training"]["seed"] == 2 and meta["data"]["init"] == str(work / "v9" / "last.keras")
    assert (work / "shipped" / meta["verifier"]).exists() and meta["extract"]["method"] == "template"
