"""`detect` on GeoTIFFs: the pixel size comes from the georeferencing, in any Mars CRS."""

from __future__ import annotations

import math
import warnings
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from PIL import Image

from marscraters import cli
from marscraters.crs import KM_PER_DEGREE
from marscraters.detect import detect, georeferenced_pixel_size
from marscraters.errors import CRSError, InvalidArgumentError
from marscraters.mosaic import read_geotiff

from .test_detect import TRUTH, _check, _disks, _threshold_model

_EQC = ('PROJCS["Mars eqc",GEOGCS["Mars",DATUM["Mars",SPHEROID["Mars",3396190,0]],PRIMEM["Reference meridian",0],'
        'UNIT["degree",0.0174532925199433]],PROJECTION["Equirectangular"],PARAMETER["standard_parallel_1",0],'
        'PARAMETER["central_meridian",0],PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT[{unit}]]')
_POLAR = "+proj=stere +lat_0=90 +lon_0=0 +k=1 +x_0=0 +y_0=0 +R=3396190 +units=m +no_defs"
PPD_100M = KM_PER_DEGREE * 1000.0 / 100.0  # pixels per degree of 100 m pixels (592.747)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _threshold_model(tmp_path_factory.mktemp("m") / "threshold.keras")


def _geotiff(path, data, crs, side_x, side_y=None, x0=0.0, y0=0.0):
    """A north-up single-band GeoTIFF with pixels of ``side_x`` x ``side_y`` CRS units."""
    side_y = side_x if side_y is None else side_y
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1], count=1,
                       dtype=data.dtype, crs=crs, transform=Affine(side_x, 0, x0, 0, -side_y, y0)) as dst:
        dst.write(data, 1)
    return path


@pytest.mark.parametrize(
    "crs, side, origin, metres",
    [
        ("IAU_2015:49900", 1 / PPD_100M, (30.0, 10.0), 100.0),  # THEMIS Day IR mosaic grid, degrees
        ("IAU_2015:49900", 1 / 256.0, (30.0, 60.0), KM_PER_DEGREE * 1000 / 256),  # ASU tile grid at 60 N: along y
        ("IAU_2015:49910", 12.5, (1.0e6, 5.0e5), 12.5),  # HRSC-like equirectangular, metres
        (_POLAR, 6.0, (1.0e5, -2.0e5), 6.0),  # CTX-like polar stereographic map projection
        (_EQC.format(unit='"kilometre",1000'), 0.1, (100.0, 50.0), 100.0),  # a projected CRS in km
    ],
)
def test_pixel_size_from_any_mars_crs(tmp_path, crs, side, origin, metres):
    path = _geotiff(tmp_path / "a.tif", np.zeros((40, 50), np.uint8), crs, side, x0=origin[0], y0=origin[1])
    if crs == _POLAR:
        metres /= _polar_scale(origin[0] + 25 * side, origin[1] - 20 * side)
    assert georeferenced_pixel_size(read_geotiff(path)) == pytest.approx(metres, rel=1e-9)


def _polar_scale(x, y, radius=3396190.0):
    """A polar stereographic grid's scale (true at the pole) at projected (x, y): 2 / (1 + sin lat)."""
    lat = math.pi / 2 - 2 * math.atan(math.hypot(x, y) / (2 * radius))
    return 2.0 / (1.0 + math.sin(lat))


def test_pixel_size_on_a_polar_stereographic_grid_is_ground_metres(tmp_path):
    # at 60 N a projected metre of a grid true at the pole is 1 / 1.072 m of ground (diameters came out 7 % large)
    rho = 2 * 3396190.0 * math.tan(math.radians(15.0))
    path = _geotiff(tmp_path / "p.tif", np.zeros((40, 40), np.uint8), _POLAR, 6.0, x0=-120.0, y0=-rho + 120.0)
    assert georeferenced_pixel_size(read_geotiff(path)) == pytest.approx(6.0 * (1 + math.sin(math.radians(60))) / 2,
                                                                          rel=1e-6)
    # a sinusoidal grid far from its central meridian shears craters into ellipses: said
    sinu = "+proj=sinu +lon_0=0 +R=3396190 +units=m +no_defs"
    far = _geotiff(tmp_path / "s.tif", np.zeros((40, 40), np.uint8), sinu, 100.0, x0=2.0e6, y0=2.5e6)
    with pytest.warns(UserWarning, match="ellipses"):
        georeferenced_pixel_size(read_geotiff(far))


def test_detect_takes_the_pixel_size_from_a_geotiff(model_path, tmp_path):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    at_100 = _geotiff(tmp_path / "eqc.tif", img, "IAU_2015:49910", 100.0, y0=1.28e4)  # on the equator: square on the ground
    expected = detect(img, pixel_size_m=100.0, model=model_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing to say: the pixel size is the file's
        found = detect(at_100, model=model_path)
    pd.testing.assert_frame_equal(found, expected)
    _check(found, TRUTH)
    assert found.attrs["pixel_size_m"] == 100.0
    # the same through the Mosaic reader and its DataArray
    ds = read_geotiff(at_100)
    pd.testing.assert_frame_equal(detect(ds, model=model_path), expected)
    pd.testing.assert_frame_equal(detect(ds["ir"], model=model_path), expected)
    # a geographic grid at the ASU tiles' 256 px/deg on the equator: resampled from its 231.5 m
    # pixels, as when told so
    tile = _geotiff(tmp_path / "geo.tif", img, "IAU_2015:49900", 1 / 256.0, x0=30.0, y0=0.5)
    size = KM_PER_DEGREE * 1000 / 256
    pd.testing.assert_frame_equal(detect(str(tile), model=model_path),
                                  detect(img, pixel_size_m=size, model=model_path))
    # a TIFF without georeferencing is a plain image: it needs the pixel size
    Image.fromarray(img).save(tmp_path / "plain.tif")
    with pytest.raises(InvalidArgumentError, match=r"plain\.tif carries no georeferencing.*pixel_size_m=<metres>"):
        detect(tmp_path / "plain.tif", model=model_path)
    pd.testing.assert_frame_equal(detect(tmp_path / "plain.tif", pixel_size_m=100.0, model=model_path), expected)


@pytest.mark.parametrize("lat", [45.0, -60.0])
def test_a_geographic_geotiff_away_from_the_equator_is_squeezed_to_square_ground_pixels(model_path, tmp_path, lat):
    # square degree pixels are 1/cos(lat) times narrower on the ground than tall: the image's
    # craters are ellipses, which detect makes round again (as the mosaic catalog does)
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    expected = detect(img, pixel_size_m=100.0, model=model_path)
    stretch = 1.0 / np.cos(np.radians(lat))
    wide = np.asarray(Image.fromarray(img).resize((int(round(400 * stretch)), 256), Image.BILINEAR))
    side = 1 / PPD_100M
    path = _geotiff(tmp_path / "geo.tif", wide, "IAU_2015:49900", side, x0=30.0, y0=lat + 128 * side)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = detect(path, model=model_path)
    assert not [w for w in caught if "spans latitudes" in str(w.message)]  # 25 km tall: one squeeze fits it
    assert len(found) == len(expected) == len(TRUTH)
    found, expected = found.sort_values("y").reset_index(drop=True), expected.sort_values("y").reset_index(drop=True)
    # x in the file's columns; diameters (N-S, in rows and metres) those of the round craters
    np.testing.assert_allclose(found["x"], expected["x"] * stretch, atol=1.5 * stretch)
    np.testing.assert_allclose(found["y"], expected["y"], atol=1.0)
    np.testing.assert_allclose(found["diameter_m"], expected["diameter_m"], rtol=0.06)
    assert found.attrs["pixel_size_m"] == pytest.approx(100.0, rel=1e-6)
    # the unsqueezed image finds them as ellipses: wrong sizes (what detect did before)
    told = detect(wide, pixel_size_m=100.0, model=model_path)
    assert len(told) != len(TRUTH) or not np.allclose(np.sort(told["diameter_m"]), np.sort(expected["diameter_m"]),
                                                      rtol=0.06)


def test_a_geotiff_spanning_many_latitudes_warns_that_one_squeeze_fits_it_less_well(model_path, tmp_path):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    side = 0.1  # 256 rows of 0.1 degree: 50 to 75.6 N, where craters' widths differ by a factor 1.6
    path = _geotiff(tmp_path / "tall.tif", img, "IAU_2015:49900", side, x0=30.0, y0=75.6)
    with pytest.warns(UserWarning, match="spans latitudes where craters are .* `marscraters ingest`"):
        detect(path, pixel_size_m=592.7, model=model_path)


def test_a_given_pixel_size_wins_and_a_disagreement_is_said(model_path, tmp_path):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    path = _geotiff(tmp_path / "eqc.tif", img, "IAU_2015:49910", 100.0)
    with pytest.warns(UserWarning, match=r"pixel_size_m=140 m differs by 40% from the 100 m per pixel.*using 140"):
        found = detect(path, pixel_size_m=140.0, model=model_path)
    pd.testing.assert_frame_equal(found, detect(img, pixel_size_m=140.0, model=model_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        detect(path, pixel_size_m=104.0, model=model_path)  # within 5 %: silent


def _unitless_vrt(tmp_path, data):
    """A raster in a projected Mars CRS whose axes name no length unit (a VRT keeps such a CRS as it is)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp_path / "pixels.tif", "w", driver="GTiff", height=data.shape[0], width=data.shape[1],
                           count=1, dtype="uint8") as dst:
            dst.write(data, 1)
    (tmp_path / "unitless.vrt").write_text(f"""<VRTDataset rasterXSize="{data.shape[1]}" rasterYSize="{data.shape[0]}">
  <SRS>{escape(_EQC.format(unit='"unknown",1'))}</SRS>
  <GeoTransform>0, 100, 0, 0, 0, -100</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1">
    <SimpleSource><SourceFilename relativeToVRT="1">pixels.tif</SourceFilename><SourceBand>1</SourceBand></SimpleSource>
  </VRTRasterBand>
</VRTDataset>""")
    return tmp_path / "unitless.vrt"


def test_bad_georeferencing_is_refused_naming_the_fix(model_path, tmp_path):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    for crs, sides in (("IAU_2015:49900", (1 / PPD_100M, 1 / 500.0)), ("IAU_2015:49910", (100.0, 103.0))):
        path = _geotiff(tmp_path / "stretched.tif", img, crs, *sides)
        with pytest.raises(InvalidArgumentError, match=r"non-square pixels.*gdalwarp -tr RES RES"):
            detect(path, model=model_path)
    # 1 % is still square (the pixel size is the height: along y)
    pd.testing.assert_frame_equal(detect(_geotiff(tmp_path / "ok.tif", img, "IAU_2015:49910", 100.0, 100.9),
                                         model=model_path), detect(img, pixel_size_m=100.9, model=model_path))
    unitless = _unitless_vrt(tmp_path, img)
    with pytest.raises(CRSError, match=r"no length unit \('unknown'\).*gdal_edit\.py -a_srs.*pixel_size_m=<metres>"):
        detect(unitless, model=model_path)
    _check(detect(unitless, pixel_size_m=100.0, model=model_path), TRUTH)  # told the size, it needs no unit
    hirise = _geotiff(tmp_path / "hirise.tif", img, "IAU_2015:49910", 0.25)
    with pytest.raises(InvalidArgumentError, match=r"gives 0.25 m per pixel, outside the 1-1000 m.*gdalwarp -tr"):
        detect(hirise, model=model_path)


def test_detect_command_reads_the_pixel_size_of_a_geotiff(model_path, tmp_path, capsys):
    img = _disks((256, 400), TRUTH).astype(np.uint8)
    path = _geotiff(tmp_path / "eqc.tif", img, "IAU_2015:49910", 100.0)
    out = tmp_path / "c.csv"
    base = ["detect", "--model", str(model_path)]
    assert cli.main([*base, str(path), "--out", str(out)]) == 0
    assert "100 m per pixel, from its georeferencing" in capsys.readouterr().out
    found = pd.read_csv(out)
    _check(found, TRUTH)
    np.testing.assert_allclose(found["diameter_m"], found["diameter_px"] * 100.0, atol=0.1)
    # a PNG still needs --pixel-size, and the message names the flag, not the Python keyword
    Image.fromarray(img).save(tmp_path / "plain.png")
    assert cli.main([*base, str(tmp_path / "plain.png"), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "carries no georeferencing" in err and "--pixel-size METRES" in err and "pixel_size_m" not in err
    assert cli.main([*base, str(_unitless_vrt(tmp_path, img)), "--out", str(tmp_path / "u.csv")]) == 2
    err = capsys.readouterr().err
    assert "gdal_edit.py" in err and "--pixel-size METRES" in err and "pixel_size_m" not in err
    hirise = _geotiff(tmp_path / "hirise.tif", img, "IAU_2015:49910", 0.25)
    assert cli.main([*base, str(hirise), "--out", str(tmp_path / "h.csv")]) == 2
    err = capsys.readouterr().err
    assert "outside the 1-1000 m" in err and "gdalwarp -tr" in err and "--pixel-size METRES" in err
    for bad in ("0.5", "1500"):  # outside 1-1000 m: refused by the parser, naming the flag
        with pytest.raises(SystemExit) as exit_:
            cli.main([*base, str(path), "--pixel-size", bad, "--out", str(tmp_path / "x.csv")])
        assert exit_.value.code == 2 and "--pixel-size must be a number of metres per pixel from 1 to 1000" in \
            capsys.readouterr().err
