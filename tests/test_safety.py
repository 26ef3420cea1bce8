"""No command destroys its own input: an output that is an input, holds one (a folder above it) or
lies inside one (a Zarr store) is refused before anything is read or written, even with --overwrite."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from marscraters import cli
from marscraters._io import atomic_path, check_not_input, check_output
from marscraters.catalog import make_catalog, write_catalog, write_csv
from marscraters.errors import InvalidArgumentError
from marscraters.mosaic import ingest, mosaic_from_array, open_mosaic


def _digest(path: Path) -> str:
    """A hash of a file, or of every file (names and bytes) under a folder."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture
def inputs(tmp_path):
    """A small cube, a probability store, a GeoTIFF and catalogs, with their digests."""
    rng = np.random.default_rng(0)
    ds = mosaic_from_array((rng.random((64, 80)) * 255).astype("float32"), (10.0, 0.0, 10.3125, 0.25))
    data = tmp_path / "data"
    cube = ingest(ds, data / "cube.zarr", progress=False)
    pred = data / "pred.zarr"
    ds["ir"].rename("crater_probability").to_dataset().to_zarr(pred, zarr_format=3, consolidated=False)
    tif = data / "mosaic.tif"
    ds["ir"].fillna(0).astype("uint8").rio.write_nodata(0).rio.to_raster(tif)
    cat = make_catalog([0.1, 0.2], [10.1, 10.2], [2.0, 3.0])
    gpkg = write_catalog(cat, data / "craters.gpkg")
    csv = write_csv(cat, data / "craters.csv")
    paths = {"cube": cube, "pred": pred, "tif": tif, "gpkg": gpkg, "csv": csv, "data": data}
    return paths, {k: _digest(v) for k, v in paths.items() if k != "data"}


def _intact(paths, digests):
    assert {k: _digest(paths[k]) for k in digests} == digests


def test_the_check(tmp_path):
    cube = tmp_path / "cube.zarr"
    cube.mkdir()
    (cube / "zarr.json").write_text("{}")
    for out, what in ((cube, "is the input"), (tmp_path, "holds the input"), (cube / "pred.zarr", "is inside the input"),
                      (tmp_path / "." / "cube.zarr", "is the input")):
        with pytest.raises(InvalidArgumentError, match=f"{what} .*even with overwrite.*Choose"):
            check_not_input(out, cube)
        with pytest.raises(InvalidArgumentError, match=what):
            check_output(out, True, inputs=[None, "https://example.org/x.zarr", cube])
    link = tmp_path / "link.zarr"
    link.symlink_to(cube)
    with pytest.raises(InvalidArgumentError, match="is the input"):
        check_not_input(link, cube)
    # siblings, and names that only start alike, are fine
    for out in (tmp_path / "pred.zarr", tmp_path / "cube.zarr2", tmp_path / "cube"):
        assert check_not_input(out, cube) == out
    # the source of an opened store counts as an input
    ds = mosaic_from_array(np.ones((8, 8), "float32"), (0.0, 0.0, 1.0, 1.0))
    ds.encoding["source"] = str(cube)
    with pytest.raises(InvalidArgumentError, match="is the input"):
        with atomic_path(cube, overwrite=True, inputs=ds):
            pass
    assert (cube / "zarr.json").read_text() == "{}"


def test_segment_onto_its_cube_is_refused_and_the_cube_kept(inputs):
    """The reported case, as a user runs it: a real `marscraters` process."""
    paths, digests = inputs
    cube = paths["cube"]
    run = subprocess.run([sys.executable, "-m", "marscraters", "segment", str(cube), "--out", str(cube), "--overwrite"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert f"the output {cube} is the input {cube}" in run.stderr and "Choose another output path" in run.stderr
    _intact(paths, digests)
    assert open_mosaic(cube)["ir"].shape == (64, 80)


@pytest.mark.parametrize("command", [
    "segment {cube} --out {data} --overwrite",                     # a folder above the cube
    "segment {cube} --out {cube}/pred.zarr",                       # inside the cube's store
    "ingest {tif} --out {tif} --overwrite",
    "ingest {cube} --out {cube} --overwrite",
    "targets {cube} --catalog {gpkg} --out {cube} --overwrite",
    "targets {cube} --catalog {gpkg} --out {data} --overwrite",
    "catalog {pred} --out {pred} --overwrite",
    "catalog {pred} --mosaic {cube} --out {cube}/craters.gpkg",
    "convert {gpkg} --out {gpkg} --overwrite",
    "convert {csv} --out {csv} --overwrite",
    "evaluate {csv} {gpkg} --json {csv} --overwrite",
    "age {gpkg} --area-km2 100 --range 1 4 --plot {gpkg} --overwrite",
    "browse {cube} --catalog {gpkg} --html {gpkg} --overwrite",
    "detect {csv} --pixel-size 100 --out {csv} --overwrite",
    "demo --tile {tif} --out {data}",
])
def test_no_command_destroys_its_input(inputs, command, capsys):
    paths, digests = inputs
    argv = command.format(**{k: str(v) for k, v in paths.items()}).split()
    assert cli.main(["-q", *argv]) == 2
    err = capsys.readouterr().err
    assert "would destroy the input" in err and "Choose" in err
    _intact(paths, digests)


def test_python_functions_refuse_too(inputs):
    from marscraters.demo import run_demo
    from marscraters.segment import segment_to_zarr

    paths, digests = inputs
    ds = open_mosaic(paths["cube"])
    with pytest.raises(InvalidArgumentError, match="is the input"):
        segment_to_zarr(ds, paths["cube"], overwrite=True, progress=False)
    with pytest.raises(InvalidArgumentError, match="holds the input"):
        segment_to_zarr(ds, paths["data"], overwrite=True, progress=False)
    with pytest.raises(InvalidArgumentError, match="is the input"):
        ingest(ds, paths["cube"], overwrite=True, progress=False)
    with pytest.raises(InvalidArgumentError, match="is the input"):
        ingest([paths["tif"]], os.fspath(paths["tif"]), overwrite=True, progress=False)
    with pytest.raises(InvalidArgumentError, match="holds the input"):
        run_demo(paths["data"], tile=paths["tif"], progress=False)
    with pytest.raises(InvalidArgumentError, match="is inside the input"):  # the page over the cube's metadata
        ds.craters.save_html(paths["cube"] / "zarr.json", overwrite=True)
    _intact(paths, digests)
