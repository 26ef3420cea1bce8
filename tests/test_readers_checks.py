"""Readers refuse what they cannot read right, and accept what is only spelled or rounded differently.

- craterstats files of another body (the Moon) are refused, not dated as Mars;
- buffered craterstats counts (a ``reference_area`` per crater) are refused, not dated as plain counts;
- craterstats header keys spelled with hyphens and spaces (``a-axis radius``) are read;
- image crops placed with bounds rounded to 1e-6 degrees combine into one mosaic, while a real
  resolution or lattice mismatch is still refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marscraters import cli
from marscraters.catalog import make_catalog, read_catalog, write_craterstats
from marscraters.errors import CatalogFormatError, MosaicError, NotMarsCRSError
from marscraters.mosaic import combine_tiles, ingest, open_mosaic, read_image

# a Python spelling in a message: keyword=value, marscraters.function( (as tests/test_cli_messages.py)
PYTHON_WORDS = re.compile(r"\b[a-z_]+=(?!=)|marscraters\.[a-z_.]+\(")

CRATERS = """\
crater = {diam, fraction, lon, lat
0.0636791172028\t1\t-64.3217563536\t44.0600779761
0.0339303817749\t1\t-64.3109075807\t44.0633977352
0.119729036331\t0.5\t-64.3522567521\t44.2570526508
}
"""


def _scc(tmp_path: Path, header: str, name: str = "count.scc") -> Path:
    path = tmp_path / name
    path.write_text(f"# Spatial crater count\n#\n{header}#\nTotal_area = 11.4655916167 <km^2>\n#\n{CRATERS}")
    return path


def _axes(radius: str, key: str = "{}_axis_radius", unit: str = " <km>") -> str:
    return "".join(f"{key.format(a)} = {radius}{unit}\n" for a in "abc")


# ---------------------------------------------------------------------------------------------
# 1. another body than Mars
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "shown"),
    [
        # craterstats' own lunar sample (c1.scc) with underscored keys
        (_axes("1737.4") + "coordinate_system_name = Equirectangular_Moon\n", "a_axis_radius = 1737.4 <km>"),
        # the radius alone
        (_axes("1737.4"), "1737.4"),
        # the body's name alone, or its IAU code (301: the Moon)
        ("coordinate_system_name = Equirectangular_Moon\n", "Equirectangular_Moon"),
        ("coordinate_system_name = IAU_2015:30100\n", "IAU_2015:30100"),
        # metres
        (_axes("2439700", unit=" <m>"), "2439700"),
    ],
    ids=["moon", "radius", "name", "iau-code", "metres"],
)
def test_count_of_another_body_is_refused(tmp_path: Path, header: str, shown: str) -> None:
    path = _scc(tmp_path, header)
    with pytest.raises(NotMarsCRSError, match="another body than Mars") as info:
        read_catalog(path)
    message = str(info.value)
    assert shown in message and "Mars counts only" in message and "craterstats itself" in message


@pytest.mark.parametrize(
    ("radius", "unit"),
    [("3396.19", " <km>"), ("3376.2", " <km>"), ("3389.5", " <km>"), ("3396190", " <m>"), ("3396190", "")],
)
def test_mars_radii_are_mars(tmp_path: Path, radius: str, unit: str) -> None:
    header = _axes(radius, unit=unit) + "coordinate_system_name = Equirectangular_Mars\n"
    cat = read_catalog(_scc(tmp_path, header))
    assert len(cat) == 3 and cat.attrs["area_km2"] == pytest.approx(11.4655916167)


def test_own_scc_reads_back(tmp_path: Path) -> None:
    # write_craterstats names Mars' radius and IAU_2015:49900: its files stay readable
    cat = make_catalog([44.06, 44.07], [-64.32, -64.31], [0.06, 0.03])
    path = write_craterstats(cat, tmp_path / "own.scc", area_km2=11.5)
    assert len(read_catalog(path)) == 2


def test_cli_age_refuses_another_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scc(tmp_path, _axes("1737.4") + "coordinate_system_name = Equirectangular_Moon\n")
    assert cli.main(["age", str(path), "--range", "0.03", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "another body than Mars" in err and not PYTHON_WORDS.search(err), err


# ---------------------------------------------------------------------------------------------
# 2. buffered counts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("area_line", ["area = 1000\n", ""], ids=["with-area", "without-area"])
def test_buffered_count_is_refused(tmp_path: Path, area_line: str) -> None:
    path = tmp_path / "buffered.diam"
    path.write_text(f"# buffered count\n{area_line}crater = {{diameter, reference_area\n1.2\t1100\n2.5\t1300\n}}\n")
    with pytest.raises(CatalogFormatError, match="buffered crater counts are not supported") as info:
        read_catalog(path)
    assert "craterstats" in str(info.value) and "remove the reference_area column" in str(info.value)


def test_cli_age_refuses_buffered_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "buffered.diam"
    path.write_text("area = 1000\ncrater = {diameter, reference_area\n1.2\t1100\n2.5\t1300\n}\n")
    assert cli.main(["age", str(path), "--range", "1", "4"]) == 2
    err = capsys.readouterr().err
    assert "buffered" in err and not PYTHON_WORDS.search(err), err


# ---------------------------------------------------------------------------------------------
# 3. header keys with hyphens and spaces
# ---------------------------------------------------------------------------------------------
def test_hyphen_and_space_keys_are_read(tmp_path: Path) -> None:
    header = _axes("3396.19", "{}-axis radius") + "coordinate system name = Equirectangular_Mars\n"
    path = tmp_path / "spaced.scc"
    path.write_text(f"# Spatial crater count\n{header}Total area = 42.5 <km^2>\nPerimeter = 30 <km>\n{CRATERS}")
    cat = read_catalog(path)
    assert len(cat) == 3
    assert cat.attrs["area_km2"] == 42.5 and cat.attrs["perimeter_km"] == 30.0


def test_lunar_sample_with_spaced_keys_is_refused_as_lunar(tmp_path: Path) -> None:
    # craterstats' c1.scc: refused for its body, with the clear message, not for its syntax
    header = _axes("1737.4", "{}-axis radius") + "coordinate_system_name = Equirectangular_Moon\n"
    with pytest.raises(NotMarsCRSError, match="another body than Mars.*1737.4"):
        read_catalog(_scc(tmp_path, header, "c1.scc"))


# ---------------------------------------------------------------------------------------------
# 4. crops placed with rounded bounds
# ---------------------------------------------------------------------------------------------
RES = 1 / 592.747  # THEMIS' ~100 m pixels, in degrees
WEST, NORTH = 187.018172, 28.596366


def _crops(tmp_path: Path, size: int = 58, n: int = 3, shift_px: float = 0.0, scale: float = 1.0) -> tuple:
    """An n x n grid of PNG crops cut from one image, placed by bounds rounded to 1e-6 degrees.

    58 px crops are 0.0978495 degrees wide, so the rounded widths alternate between 0.09785 and
    0.097849 degrees, as the real index's 416 px crops do (0.701817 / 0.701818).

    ``shift_px`` moves the last crop's bounds east by that many pixels; ``scale`` scales its pixel size.
    """
    image = np.random.default_rng(1).integers(1, 255, (n * size, n * size), dtype=np.uint8)
    placed = []
    for row in range(n):
        for col in range(n):
            path = tmp_path / f"crop_{col}_{row}.png"
            Image.fromarray(image[row * size : (row + 1) * size, col * size : (col + 1) * size]).save(path)
            west, north = WEST + col * size * RES, NORTH - row * size * RES
            res = RES
            if (row, col) == (n - 1, n - 1):
                west += shift_px * RES
                res *= scale
            # the index's rounding: 1e-6 degrees, ~6e-4 px
            bounds = tuple(round(v, 6) for v in (west, north - size * res, west + size * res, north))
            placed.append(read_image(path, bounds=bounds))
    return image, placed


def test_crops_with_rounded_bounds_combine(tmp_path: Path) -> None:
    image, crops = _crops(tmp_path)
    ds = combine_tiles(crops)
    assert ds.sizes == {"y": image.shape[0], "x": image.shape[1]}
    np.testing.assert_array_equal(ds["ir"].values, image.astype(np.float32))
    # on the crops' own grid, within the rounding
    x0 = float(ds.x[0])
    assert abs(x0 - (WEST + RES / 2)) < 0.01 * RES
    # every adjacent pair combines too, as ingest does
    for a, b in [(crops[0], crops[1]), (crops[0], crops[3]), (crops[4], crops[5])]:
        pair = combine_tiles([a, b])
        assert not np.isnan(pair["ir"].values).any()


def test_crops_with_rounded_bounds_ingest(tmp_path: Path) -> None:
    image, crops = _crops(tmp_path, n=2)
    cube = open_mosaic(ingest(crops, tmp_path / "cube.zarr", progress=False))
    np.testing.assert_array_equal(cube["ir"].values, image.astype(np.float32))


@pytest.mark.parametrize(
    ("shift_px", "scale", "match"),
    [
        (0.5, 1.0, "not on the same pixel grid"),
        (0.05, 1.0, "not on the same pixel grid"),
        (0.0, 1.01, "different resolutions"),
    ],
    ids=["half-pixel", "twentieth-pixel", "one-percent"],
)
def test_real_mismatches_are_still_refused(tmp_path: Path, shift_px: float, scale: float, match: str) -> None:
    _, crops = _crops(tmp_path, n=2, shift_px=shift_px, scale=scale)
    with pytest.raises(MosaicError, match=match):
        combine_tiles(crops)
    # the shifted crop alone against its neighbour, too (two tiles fit any lattice exactly)
    with pytest.raises(MosaicError, match=match):
        combine_tiles([crops[2], crops[3]])


def test_resolution_message_shows_the_difference(tmp_path: Path) -> None:
    # 3e-5 apart on 2000 px tiles: refused, and the two sizes printed differ
    from marscraters.mosaic import mosaic_from_array

    n = 2000
    a = mosaic_from_array(np.ones((4, n), np.float32), (0, 0, n * RES, 4 * RES))
    b = mosaic_from_array(np.ones((4, n), np.float32), (n * RES, 0, n * RES + n * RES * (1 + 3e-5), 4 * RES))
    with pytest.raises(MosaicError, match="different resolutions") as info:
        combine_tiles([a, b])
    sizes = re.findall(r"\d\.\d{6,}(?:e-\d+)?", str(info.value))
    assert len(sizes) >= 2 and sizes[0] != sizes[1], str(info.value)
    assert "relative difference 3e-05" in str(info.value)
