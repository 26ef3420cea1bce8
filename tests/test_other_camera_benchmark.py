"""benchmarks/evaluate_other_camera.py: its pip download through a local package index, and its scoring.

The real sdist is 21 MB on PyPI; here a small sdist of the same layout is served by a real HTTP
server on 127.0.0.1 as a PEP 503 "simple" index, and fetched through it over real HTTP.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from tests.benchmark_scripts import load_benchmark
from tests.httpserver import FileServer


def _bench():
    return load_benchmark("evaluate_other_camera")


def _sdist() -> bytes:
    """A pycda-0.1.16.tar.gz with a 256-px tile of two dark bowls and their labels."""
    yy, xx = np.mgrid[0:256, 0:256]
    img = np.full((256, 256), 150.0)
    for cx, cy, r in ((80, 90, 20), (180, 170, 30)):
        d = np.hypot(xx - cx, yy - cy)
        img[d < r] = 150 - 80 * (1 - (d[d < r] / r) ** 2)  # a shaded bowl
        img[(d >= r) & (d < r + 3)] = 220  # a bright rim
    pgm = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(pgm, format="PPM")  # PIL writes grey PPM as PGM (P5)
    labels = b"long,lat,diameter\n80,90,40\n180,170,60\n30,30,6\n"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in (("holdout_tile.pgm", pgm.getvalue()), ("holdout_tile_labels.csv", labels)):
            info = tarfile.TarInfo(f"pycda-0.1.16/pycda/sample_imgs/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        setup = b"from setuptools import setup\nsetup(name='pycda', version='0.1.16')\n"
        info = tarfile.TarInfo("pycda-0.1.16/setup.py")
        info.size = len(setup)
        tar.addfile(info, io.BytesIO(setup))
    return out.getvalue()


def test_fetch_through_a_local_index_checks_the_hash_and_reads_the_tile(tmp_path):
    bench = _bench()
    sdist = _sdist()
    digest = hashlib.sha256(sdist).hexdigest()
    index = b'<html><body><a href="../../files/pycda-0.1.16.tar.gz#sha256=' + digest.encode() + b'">pycda-0.1.16.tar.gz</a></body></html>'
    with FileServer({"simple/pycda/": index, "files/pycda-0.1.16.tar.gz": sdist}) as server:
        path = bench.fetch_sdist(tmp_path / "cache", index_url=server.url + "simple/", sha256=digest)
        assert server.gets("files/pycda-0.1.16.tar.gz")
    assert path.read_bytes() == sdist
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["pycda-0.1.16.tar.gz"]  # no temporary left
    image, truth = bench.read_tile(path)
    assert image.shape == (256, 256) and image.dtype == np.uint8
    assert list(truth.columns) == ["x", "y", "diameter_px"] and truth["diameter_px"].tolist() == [40, 60, 6]
    # cached: a second call does not download; a file that is not the published one is refused
    assert bench.fetch_sdist(tmp_path / "cache", sha256=digest) == path
    with pytest.raises(SystemExit, match="SHA-256"):
        bench.fetch_sdist(tmp_path / "cache")
    # a download that is not the published file is refused and leaves nothing behind
    with FileServer({"simple/pycda/": index, "files/pycda-0.1.16.tar.gz": sdist[:-10] + b"0" * 10}) as server:
        with pytest.raises(SystemExit, match="not the published"):
            bench.fetch_sdist(tmp_path / "other", index_url=server.url + "simple/", sha256=digest)
    assert list((tmp_path / "other").iterdir()) == []
    # so does a failed one (the index links a file the server does not have)
    with FileServer({"simple/pycda/": index}) as server:
        with pytest.raises(OSError):  # urllib's HTTPError for the 404
            bench.fetch_sdist(tmp_path / "gone", index_url=server.url + "simple", sha256=digest)
    assert list((tmp_path / "gone").iterdir()) == []


def test_scores_every_rule_for_each_pixel_size(tmp_path):
    bench = _bench()
    sdist = tmp_path / "pycda-0.1.16.tar.gz"
    sdist.write_bytes(_sdist())
    rows = bench.main(["--pycda", str(sdist), "--pixel-sizes", "100", "--json", str(tmp_path / "r.json"),
                       "--figure", str(tmp_path / "f.png")])
    assert len(rows) == 1 and rows[0]["pixel_size_m"] == 100.0
    for rule in ("deepmoon", "iou", "pycda"):
        assert 0.0 <= rows[0][rule]["f1"] <= 1.0
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["n_truth_counted"] == 2 and saved["d_min"] == 16.0  # the 6-px label is below the floor
    assert (tmp_path / "f.png").stat().st_size > 1000
