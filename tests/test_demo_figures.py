"""The demo's figures explain themselves: axis labels with units, a key to every colour and circle,
colour bars, named epochs, and a detector-response fit drawn through the points it dates."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from marscraters.catalog import make_catalog, read_catalog  # noqa: E402
from marscraters.chronology import _EPOCH_NAMES, load_response, model_age, plot_csfd  # noqa: E402
from marscraters.mosaic import mosaic_from_array  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "catalogs" / "demo"


def _texts(legend) -> list[str]:
    return [t.get_text() for t in legend.get_texts()]


def test_csfd_names_the_epochs_and_draws_the_response_fit_through_its_points():
    detected = read_catalog(DEMO / "craters.gpkg")
    area, rng = 41917.6, (1.6, 16.0)
    plain = model_age(detected, area_km2=area, diameter_range=rng, snap=False)
    corrected = model_age(detected, area_km2=area, diameter_range=rng, snap=False, response=load_response("shipped"))
    fig = plot_csfd(detected, area, fits=[plain, corrected], response="shipped")
    ax = fig.axes[0]
    assert "[km]" in ax.get_xlabel() and "km⁻²" in ax.get_ylabel()
    legends = [ax.get_legend(), *[a for a in ax.artists if isinstance(a, matplotlib.legend.Legend)]]
    epochs = next(lg for lg in legends if "epochs" in lg.get_title().get_text())
    assert _texts(epochs) == list(_EPOCH_NAMES)  # every shaded band is named
    fits = "\n".join(_texts(ax.get_legend()))
    assert "isochrons" in fits and "detections expected" in fits and "misses" in fits
    # the response fit is the detections expected at its age, not its isochron: it runs through
    # the points (below the population it implies), and the isochron of that age is drawn too
    lines = {line.get_label(): line for line in ax.get_lines()}
    expected = next(v for k, v in lines.items() if "detections expected" in k)
    population = next(v for k, v in lines.items() if "surface carries" in k)
    d, n = expected.get_data()
    n_iso = np.interp(np.log(d), np.log(population.get_xdata()), population.get_ydata())
    assert np.all(n < n_iso)
    counts = np.array([(detected["diameter_km"] >= v).sum() for v in d]) / area
    assert np.median(np.abs(np.log10(n / counts))) < 0.1  # within 26 % of the counted density
    plt.close(fig)


def test_overview_has_colour_bars_and_a_key_to_the_circles():
    from marscraters.demo import _overview_figure

    ir = np.random.default_rng(0).uniform(20, 230, (100, 150)).astype("float32")
    ir[:, 40] = np.nan
    ds = mosaic_from_array(ir, (30.0, -1.0, 31.5, 0.0))
    prob = np.zeros(ir.shape, "float32")
    truth = make_catalog([-0.5, -0.2], [30.5, 31.0], [5.0, 3.0])
    found = make_catalog([-0.5], [30.5], [5.2])
    fig = _overview_figure(ds, prob, found, truth, plt, title="demo")
    maps = [ax for ax in fig.axes if ax.get_images()]
    bars = [ax for ax in fig.axes if not ax.get_images()]
    assert len(maps) == 2 and len(bars) == 2
    labels = " ".join(ax.get_xlabel() for ax in bars)
    assert "crater probability" in labels and "brightness" in labels
    keys = [" ".join(_texts(ax.get_legend())) for ax in maps]
    assert "reference" in keys[0] and "(2)" in keys[0] and "no data" in keys[0]
    assert "found" in keys[1] and "(1)" in keys[1]
    assert all("°" in ax.get_xlabel() and "°" in ax.get_ylabel() for ax in maps)
    assert fig._suptitle.get_text() == "demo"
    assert maps[0].get_title() == "the image, with the reference craters"
    plt.close(fig)


def test_overview_names_its_image_and_shows_no_data_as_no_data():
    """A real tile without a reference catalog: no claim of reference craters, the colour bar names
    the image (not always THEMIS), and no-data pixels are no data on the probability panel too."""
    from marscraters.demo import _overview_figure

    ir = np.random.default_rng(0).uniform(20, 230, (100, 150)).astype("float32")
    ir[:, 40] = np.nan
    ds = mosaic_from_array(ir, (30.0, -1.0, 31.5, 0.0), name="/data/hrsc_h1234_nd3.tif")
    prob = np.full(ir.shape, 0.05, "float32")  # the network's output where the image has no data
    found = make_catalog([-0.5], [30.5], [5.2])
    fig = _overview_figure(ds, prob, found, None, plt)
    maps = [ax for ax in fig.axes if ax.get_images()]
    bars = [ax for ax in fig.axes if not ax.get_images()]
    assert maps[0].get_title() == "the image"
    assert maps[0].get_legend() is not None and "reference" not in " ".join(_texts(maps[0].get_legend()))
    image_bar = next(ax.get_xlabel() for ax in bars if "brightness" in ax.get_xlabel())
    assert "hrsc_h1234_nd3.tif" in image_bar and "THEMIS" not in image_bar
    shown = maps[1].get_images()[0].get_array()
    assert np.ma.getmaskarray(shown)[:, 40].all() and not np.ma.getmaskarray(shown)[:, 41].any()
    assert "no data" in _texts(maps[1].get_legend())
    plt.close(fig)
    fig = _overview_figure(ds, prob, found, None, plt, image_name="a CTX mosaic")
    assert any("grey level of a CTX mosaic" in ax.get_xlabel() for ax in fig.axes)
    plt.close(fig)


@pytest.mark.parametrize("png", ["demo_overview.png", "demo_csfd.png"])
def test_kept_figures_exist(png):
    assert (Path(__file__).resolve().parents[1] / "docs" / "figures" / png).stat().st_size > 50_000
