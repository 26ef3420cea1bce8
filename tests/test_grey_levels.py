"""One grey-level rule for plain images and mosaics: a 16-bit mosaic is stretched, with a warning,
instead of being read on the 8-bit scale (where it is all white and has no craters)."""

from __future__ import annotations

import numpy as np
import pytest

from marscraters import cli
from marscraters.catalog import read_catalog

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def geotiffs(tmp_path_factory):
    """One synthetic surface as an 8-bit and as a 16-bit GeoTIFF (levels x 200 + 3000), 0 = no data."""
    from marscraters.synthetic import synthetic_surface

    folder = tmp_path_factory.mktemp("grey")
    surface = synthetic_surface((30.0, -0.4, 30.4, 0.0), 592.747, seed=5, n_per_km2_above_1km=2e-2, dmax_km=8.0)
    ir = surface.mosaic["ir"].fillna(0).round().clip(0, 255)
    paths = {}
    for name, levels, dtype in (("8", ir, "uint8"), ("16", ir * 200 + 3000, "uint16")):
        paths[name] = folder / f"mosaic{name}.tif"
        levels.where(ir > 0, 0).astype(dtype).rio.write_nodata(0).rio.to_raster(paths[name])
    return paths


def _catalog(tif, folder, *extra):
    cube, pred, gpkg = folder / f"{tif.stem}.zarr", folder / f"{tif.stem}-pred.zarr", folder / f"{tif.stem}.gpkg"
    assert cli.main(["-q", "ingest", str(tif), "--out", str(cube)]) == 0
    assert cli.main(["-q", "segment", str(cube), "--out", str(pred), *extra]) == 0
    assert cli.main(["-q", "catalog", str(pred), "--mosaic", str(cube), "--out", str(gpkg)]) == 0
    return read_catalog(gpkg)


def test_a_16_bit_mosaic_is_stretched_with_a_warning_and_finds_the_8_bit_craters(geotiffs, tmp_path, capsys):
    eight = _catalog(geotiffs["8"], tmp_path)
    assert "grey levels" not in capsys.readouterr().err  # 8-bit levels: the fixed 0..255 scale, nothing to say
    assert len(eight) >= 5
    sixteen = _catalog(geotiffs["16"], tmp_path)
    err = capsys.readouterr().err
    assert "beyond the 8-bit 0..255 scale" in err and "stretched on its own" in err and "--value-range" in err
    # was 0: the 16-bit levels, read on 0..255, are all white
    assert abs(len(sixteen) - len(eight)) <= max(2, 0.3 * len(eight))
    # the linear scale of the 16-bit levels, given: the 8-bit numbers exactly, and nothing to warn about
    given = _catalog(geotiffs["16"], tmp_path / "given", "--value-range", "3000", "54000")
    assert "grey levels" not in capsys.readouterr().err
    assert len(given) == len(eight)
    np.testing.assert_allclose(given["diameter_km"], eight["diameter_km"], rtol=1e-4)


def test_segment_value_range_flag(tmp_path, capsys):
    base = ["segment", str(tmp_path / "cube.zarr"), "--out", str(tmp_path / "pred.zarr")]
    for bad in (["255", "0"], ["0"], ["low", "high"]):
        assert cli.main([*base, "--value-range", *bad]) == 2
        assert "--value-range" in capsys.readouterr().err
    assert "LOW HIGH|auto" in cli.build_parser()._subparsers._group_actions[0].choices["segment"].format_help()
