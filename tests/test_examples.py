"""Every script in examples/ runs in its fast mode, and the guide's examples make what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

# what the examples that mirror the user guide (docs/guide/) must leave in --out
OUTPUTS = {
    "download.py": ["cache/themis/thm_dir_N-30_030.png"],
    "ingest.py": ["cube.zarr/zarr.json", "small.zarr/zarr.json"],
    "ingest_and_targets.py": ["cube.zarr/zarr.json", "craters.gpkg"],
    "train.py": ["run/best.keras", "run/history.csv", "run/config.json"],
    "segment.py": ["pred.zarr/zarr.json", "pred.zarr/crater_probability/zarr.json"],
    "catalogs.py": ["craters.gpkg", "craters.csv", "craters.diam", "truth.gpkg"],
    "evaluate.py": ["scores.json"],
    "detect.py": ["craters.csv", "detections.png"],
    "browse.py": ["map.html"],
}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_fast(script, tmp_path):
    out = subprocess.run(
        [sys.executable, str(script), "--fast", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    missing = [f for f in OUTPUTS.get(script.name, []) if not (tmp_path / f).exists()]
    assert not missing, f"{script.name} --fast did not write {missing}"
    # a partial segmentation store is renamed onto its output when complete, never left behind
    assert not list(tmp_path.glob(".*.partial"))


def test_examples_named_in_the_docs_exist():
    docs = [ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
    named = {m for page in docs for m in re.findall(r"examples/([\w-]+\.py)", page.read_text(encoding="utf-8"))}
    assert named, "the guide names no example script"
    assert {p.name for p in EXAMPLES} >= named, f"missing examples: {sorted(named - {p.name for p in EXAMPLES})}"
    # each example mirrors a page and says so, and takes --fast and --out
    for name in OUTPUTS:
        text = (ROOT / "examples" / name).read_text(encoding="utf-8")
        assert '"--fast"' in text and '"--out"' in text, name
