"""The built-in end-to-end demo, made only of public functions: from pixels to a surface age.

The default run uses an embedded, reproducible input, a synthetic THEMIS-like surface of known
age, so that every number it prints can be checked against the truth:

1. generate the surface and its true crater catalog (``synthetic_surface``) and write it as a
   Mars GeoTIFF, the form real controlled mosaics come in;
2. ingest that into a chunked Zarr v3 cube (``ingest``) and reopen it (``open_mosaic``);
3. segment the cube with the shipped model on a local Dask cluster (``cluster``,
   ``segment_to_zarr``);
4. turn the probabilities into one seamless crater catalog (``catalog_from_probability``) and
   write it to a GeoPackage (``write_catalog``);
5. score it against the truth (``evaluate``: precision, recall, F1);
6. date the surface from the detected craters (as a complete count, and through the shipped
   model's detector response: ``model_age(..., response="shipped")``) and from the true craters,
   against the true age;
7. write an HTML map (``save_html``), PNG figures and ``summary.json``.

With ``tile=`` the same pipeline runs on a real THEMIS tile (or any Mars GeoTIFF / Zarr cube):
a window of it is cut, resampled to the model's native pixel scale, and the true catalog is
replaced by an optional reference catalog (e.g. Robbins 2012).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["run_demo", "DEMO_AGE_GA", "DEMO_BOUNDS", "DEMO_PX_PER_DEG", "DEMO_RANGE_KM"]

DEMO_PX_PER_DEG = 592.747  # the USGS controlled mosaics' ~100 m/px, the shipped model's native scale
DEMO_SIDE_PX = 2048
# 3.46 x 3.46 degrees (42,000 km²) just south of the equator, east of 30 E
DEMO_BOUNDS = (30.0, -DEMO_SIDE_PX / DEMO_PX_PER_DEG, 30.0 + DEMO_SIDE_PX / DEMO_PX_PER_DEG, 0.0)
DEMO_AGE_GA = 3.7  # Early Hesperian: ~255 recognisable craters of 1-16 km, ~65 of 1.6-16 km on this area
#: Craters are scored and dated from 16 px up: the size from which the shipped model's scores are
#: measured (docs/model_card.md), i.e. where its count is complete enough to fit; 1.6 km at 100 m/px.
DEMO_MIN_DIAMETER_PX = 16
DEMO_RANGE_KM = (DEMO_MIN_DIAMETER_PX * 0.1, 16.0)  # at the model's native 100 m/px
DEMO_SEED = 2019
STEPS = 8


def _real_window(ds: Any, tile: str | Path, window: tuple[float, float, float, float] | None, native_m: float) -> Any:
    """A window of a real image (``ds``, read from ``tile``), resampled to the model's native
    pixel size when far from it."""
    from rasterio.enums import Resampling

    from .crs import Grid, pixel_scale_m

    if window is not None:
        x0, y0, x1, y1 = window
        if not (x0 < x1 and y0 < y1):
            raise InvalidArgumentError(f"window {window} must be (west, south, east, north) with west < east, south < north")
        ds = ds.sel(x=slice(x0, x1), y=slice(y1, y0))
        if ds.sizes["x"] < 64 or ds.sizes["y"] < 64:
            raise InvalidArgumentError(
                f"window {window} holds {ds.sizes['x']} x {ds.sizes['y']} px of {tile}; give a window inside the "
                "image, in its own x/y coordinates (degrees east/north for THEMIS tiles), at least 64 px wide"
            )
    px_m = pixel_scale_m(abs(float(Grid.from_dataset(ds).px_per_deg()[1])))  # N-S: true to scale
    ds = ds.load()
    if abs(px_m / native_m - 1.0) > 0.3:
        # the network learned craters at ~100 m/px: resample (bilinear) like detect() does
        factor = px_m / native_m
        ds = ds.rio.reproject(ds.rio.crs, shape=(int(round(ds.sizes["y"] * factor)), int(round(ds.sizes["x"] * factor))),
                              resampling=Resampling.bilinear, nodata=np.nan)
        ds["ir"] = ds["ir"].astype("float32")
    return ds


#: What the demo writes into its folder (figures/ holds its two figures).
_OUTPUTS = ("cube.zarr", "pred.zarr", "craters.gpkg", "figures/demo_overview.png", "figures/demo_csfd.png",
            "map.html", "summary.json")


def _check_outputs(out: Path, *, synthetic: bool, truth: bool) -> None:
    """Refuse an ``out`` that already holds a file or store of a name the demo writes."""
    from .errors import OutputExistsError

    names = [*(["synthetic_surface.tif"] if synthetic else []), *(["truth.gpkg"] if truth else []), *_OUTPUTS]
    there = [name for name in names if (out / name).exists() or (out / name).is_symlink()]
    if there:
        shown = ", ".join(there[:4]) + (f" and {len(there) - 4} more" if len(there) > 4 else "")
        raise OutputExistsError(
            f"{out} already holds {shown}, which the demo would replace (an earlier demo's, or files of your own). "
            "Choose another output folder, or pass overwrite=True (--overwrite on the command line) to replace "
            "them.")


def run_demo(
    out: str | Path = "demo-out",
    *,
    tile: str | Path | None = None,
    truth: str | Path | None = None,
    window: tuple[float, float, float, float] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Run the demo and write its outputs under ``out``.

    Parameters
    ----------
    out
        Output folder (created if needed).
    tile
        Run on this real image instead of the synthetic surface: an ASU THEMIS tile
        (``thm_dir_N-30_030.png``), a Mars GeoTIFF or a Zarr cube.
    truth
        With ``tile``: a reference catalog to score against and to date (e.g. the Robbins 2012
        TSV); restricted to the window's footprint.
    window
        With ``tile``: ``(west, south, east, north)`` in the image's x/y coordinates to cut out;
        default: a 2 x 2 degree window at the image's centre (the whole image if smaller).
    progress
        Show progress bars.
    overwrite
        Replace the files and stores of the names the demo writes (``cube.zarr``,
        ``craters.gpkg``, ``summary.json``...) that ``out`` already holds, from an earlier run or
        of your own.  By default an ``out`` holding any of them is refused before anything runs.

    Returns
    -------
    dict
        The summary that is also printed and written to ``out/summary.json``.

    Raises
    ------
    OutputExistsError
        If ``out`` already holds one of the demo's outputs and ``overwrite`` is False.
    InvalidArgumentError
        If ``truth`` or ``window`` is given without ``tile``, or ``out`` is, holds or lies inside
        ``tile`` or ``truth``.

    Examples
    --------
    >>> summary = run_demo("demo-out")  # doctest: +SKIP
    >>> summary["model_age_detected_ga"], summary["true_age_ga"]  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr
    from tqdm.auto import tqdm

    from ._io import atomic_path, check_not_input
    from .assemble import catalog_from_probability
    from .catalog import filter_catalog, read_catalog, write_catalog
    from .chronology import count_area_km2, load_response, model_age, plot_csfd
    from .cluster import cluster
    from .detect import model_info
    from .errors import ChronologyError
    from .evaluate import evaluate
    from .mosaic import ingest, mosaic_footprint, open_mosaic
    from .segment import segment_to_zarr

    if truth is not None and tile is None:
        raise InvalidArgumentError("truth= is for a real tile (tile=...); the synthetic demo brings its own truth")
    if window is not None and tile is None:
        raise InvalidArgumentError("window= cuts a part of a real tile (tile=...); the synthetic demo runs on its "
                                   "whole surface, so leave it out or give a tile")
    # the demo writes cube.zarr, pred.zarr... into out: a folder holding the tile or truth could lose them
    out = check_not_input(out, tile, truth)
    if not overwrite:
        # before the minutes of work, not at the first write after them
        _check_outputs(out, synthetic=tile is None, truth=tile is None or truth is not None)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = model_info(None)
    native_m = float(info["native_pixel_size_m"])  # model_info fills in the default when a file has none
    # the range in km follows the model's native pixel size (the cube is at that scale)
    range_km = (DEMO_MIN_DIAMETER_PX * native_m / 1000.0, DEMO_RANGE_KM[1])
    steps = tqdm(total=STEPS, desc="demo", disable=not progress, unit="step")

    # 1. the input image and its truth
    true_age = None
    if tile is None:
        from .synthetic import synthetic_surface

        steps.set_postfix_str("synthetic surface")
        surface = synthetic_surface(DEMO_BOUNDS, DEMO_PX_PER_DEG, age_ga=DEMO_AGE_GA, seed=DEMO_SEED)
        true_age = DEMO_AGE_GA
        image = out / "synthetic_surface.tif"
        with atomic_path(image, overwrite=overwrite) as tmp:
            surface.mosaic["ir"].fillna(0).round().clip(0, 255).astype("uint8").rio.write_nodata(0).rio.to_raster(
                tmp, driver="GTiff")
        source: Any = [image]
        reference = surface.catalog
        truth_meta = {"source": "marscraters.synthetic_surface", "age_ga": DEMO_AGE_GA, "seed": DEMO_SEED,
                      "bounds": list(DEMO_BOUNDS)}
        formed = int(len(surface.formed))
    else:
        steps.set_postfix_str("read the tile")
        from .mosaic import read_image

        whole = read_image(tile)
        if window is None:
            # at most 2 x 2 degrees around the centre: the whole tile when smaller (its outer pixel
            # edges, not its first and last pixel centres, which would drop a row and a column)
            left, bottom, right, top = (float(v) for v in whole.rio.bounds())
            xc, yc = (left + right) / 2, (bottom + top) / 2
            half_x, half_y = min(1.0, (right - left) / 2), min(1.0, (top - bottom) / 2)
            window = (xc - half_x, yc - half_y, xc + half_x, yc + half_y)
        source = _real_window(whole, tile, window, native_m)
        source.attrs["source"] = str(tile)
        reference = read_catalog(truth) if truth is not None else None
        truth_meta = {"source": str(truth), "window": list(window)}
        formed = None
    steps.update()

    # 2. ingest into a Zarr cube
    steps.set_postfix_str("ingest to Zarr")
    cube = ingest(source, out / "cube.zarr", overwrite=overwrite, progress=progress)
    ds = open_mosaic(cube)
    area_km2 = count_area_km2(mosaic_footprint(ds))
    truth_path = None
    in_view = None
    if reference is not None:
        in_view = filter_catalog(reference, footprint=ds)
        truth_path = write_catalog(in_view, out / "truth.gpkg", overwrite=overwrite, metadata=truth_meta)
    steps.update()

    # 3. segment on a local Dask cluster
    steps.set_postfix_str("segment on a local Dask cluster")
    with cluster(gpus="auto") as client:
        pred_path = segment_to_zarr(ds, out / "pred.zarr", client=client, overwrite=overwrite, progress=progress)
        prob = xr.open_zarr(pred_path, decode_coords="all", consolidated=False)["crater_probability"]
        steps.update()

        # 4. one seamless catalog, to GeoPackage
        steps.set_postfix_str("extract the catalog")
        detected = catalog_from_probability(prob, mosaic=ds, source=str(cube), progress=progress)
    detected_path = write_catalog(
        detected, out / "craters.gpkg", overwrite=overwrite,
        metadata={"model": info["name"], "model_version": info.get("version"), "input_mosaic": str(cube)},
    )
    steps.update()

    # 5. score
    steps.set_postfix_str("evaluate")
    scores = evaluate(detected, in_view, rule="all", d_min=range_km[0]) if in_view is not None else None
    steps.update()

    # 6. date the surface
    steps.set_postfix_str("model ages")
    ages: dict[str, Any] = {}
    # the detections once more through the shipped model's detector response (its recall, false
    # craters and diameter errors, calibrated on synthetic surfaces of known age)
    try:
        response = load_response("shipped")
    except ChronologyError:
        response = None
    jobs = [("detected", detected, None), ("corrected", detected, response), ("truth", in_view, None)]
    for name, cat, resp in jobs:
        if cat is None or (name == "corrected" and (resp is None or range_km[0] < resp.d_range[0])):
            continue
        try:
            # the exact range (no widening to bin boundaries), as the scores use it
            ages[name] = model_age(cat, area_km2=area_km2, diameter_range=range_km, response=resp, snap=False)
        except ChronologyError as exc:  # e.g. no craters in range on a small real window
            ages[name] = exc
    steps.update()

    # 7. map and figures
    steps.set_postfix_str("map and figures")
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    what = (f"a synthetic THEMIS-like surface of known age ({true_age:g} Ga)" if tile is None
            else f"{Path(tile).name}")
    fig = _overview_figure(ds, prob, detected, in_view, plt,
                           title=f"marscraters demo: {what}, {area_km2:,.0f} km² at ~{native_m:g} m per pixel",
                           image_name="the synthetic THEMIS-like Day IR image" if tile is None else Path(tile).name)
    fig_path = figures / "demo_overview.png"
    with atomic_path(fig_path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    csfd_path = None
    fitted = {k: v for k, v in ages.items() if not isinstance(v, Exception)}
    corrected = fitted.pop("corrected", None)  # drawn on the detected panel, beside the plain fit
    if fitted:
        fig, axes = plt.subplots(1, len(fitted), figsize=(6.5 * len(fitted), 7.2), constrained_layout=True,
                                 squeeze=False)
        titles = {"detected": "the craters the model found", "truth": "the reference (true) craters"}
        for ax, (name, age) in zip(axes[0], fitted.items()):
            if name == "detected" and corrected is not None:
                plot_csfd(age.diameters, age.area_km2, fits=[age, corrected], ax=ax, title=titles[name],
                          response=response)
            else:
                age.plot(ax=ax, title=titles[name])
        fig.suptitle("Crater size-frequency distributions and model ages" + (
            f" (the surface's true age: {true_age:g} Ga)" if true_age is not None else ""))
        csfd_path = figures / "demo_csfd.png"
        with atomic_path(csfd_path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
    map_path = None
    try:
        from .browse import save_html

        # the map counts craters as the scores do: matched / false / missed above the same floor
        map_path = save_html(ds, out / "map.html", catalog=detected, truth=in_view, prob=prob,
                             overwrite=overwrite, resolution=1000, d_min=range_km[0],
                             title="marscraters demo: detected craters" + (" vs truth" if in_view is not None else ""))
    except ImportError as exc:  # the [viz] extra is optional
        print(f"skipping the HTML map: {exc}")
    steps.update()
    steps.close()

    summary: dict[str, Any] = {
        "input": str(tile) if tile is not None else "synthetic_surface",
        "cube": str(cube),
        "cube_shape": [int(ds.sizes["y"]), int(ds.sizes["x"])],
        "area_km2": round(area_km2, 1),
        "model": info["name"],
        "craters_detected": int(len(detected)),
        "detected_catalog": str(detected_path),
    }
    if formed is not None:
        summary["craters_formed"] = formed
    if in_view is not None:
        summary["craters_in_truth"] = int(len(in_view))
        summary["truth_catalog"] = str(truth_path)
    if scores is not None:
        d = scores["deepmoon"]
        summary.update({
            "precision_deepmoon": round(float(d.precision), 3),
            "recall_deepmoon": round(float(d.recall), 3),
            "f1_deepmoon": round(float(d.f1), 3),
            "f1_iou": round(float(scores["iou"].f1), 3),
            "f1_pycda": round(float(scores["pycda"].f1), 3),
            "scored_above_km": range_km[0],
        })
    if true_age is not None:
        summary["true_age_ga"] = true_age
    summary["age_range_km"] = list(range_km)
    if "corrected" in ages:
        summary["detector_response"] = response.name
    for name, age in ages.items():
        if isinstance(age, Exception):
            summary[f"model_age_{name}"] = f"not dated: {age}"
            continue
        summary[f"model_age_{name}_ga"] = round(float(age.age), 3)
        summary[f"model_age_{name}_1sigma_ga"] = [round(float(age.lower), 3), round(float(age.upper), 3)]
        summary[f"model_age_{name}_n"] = int(round(age.n))
        summary[f"model_age_{name}_epoch"] = age.epoch
        if true_age is not None:
            summary[f"model_age_{name}_error_pct"] = round(100 * (age.age / true_age - 1), 1)
    summary.update({
        "map": str(map_path) if map_path else None,
        "figures": [str(p) for p in (fig_path, csfd_path) if p],
        "seconds": round(time.perf_counter() - t0, 1),
    })
    with atomic_path(out / "summary.json", overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    if progress:
        _print_summary(summary, ages)
    return summary


def _overview_figure(ds: Any, prob: Any, detected: Any, truth: Any, plt: Any, title: str = "",
                     image_name: str | None = None) -> Any:
    """Image with the truth, and probability with the detections, side by side (lon/lat axes),
    each with its colour bar and a key to its circles.

    ``image_name`` says what the image is in its colour bar (default: the mosaic's ``source``);
    pixels with no data in the image are no data on the probability panel too."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse, Patch

    from .browse import lonlat_coords
    from .crs import km_to_deg_lat, km_to_deg_lon, wrap_lon

    lon, lat = lonlat_coords(ds)
    ext = [lon[0], lon[-1], lat[-1], lat[0]]
    west = float(min(lon[0], lon[-1])) - 0.5 * abs(float(lon[1] - lon[0]))
    no_data = "#e0457b"  # no-data pixels: a colour neither map uses
    grey = plt.get_cmap("gray").with_extremes(bad=no_data)
    fig, axes = plt.subplots(1, 2, figsize=(14, 8.2), constrained_layout=True)
    ir = ds["ir"].values
    missing = ~np.isfinite(ir)
    if image_name is None:
        source = str(ds.attrs.get("source") or "").split(",")[0].strip()
        image_name = Path(source).name if source else "the input image"
    image = axes[0].imshow(ir, cmap=grey, extent=ext)
    fig.colorbar(image, ax=axes[0], location="bottom", shrink=0.7, pad=0.02,
                 label=f"image brightness: grey level of {image_name}" + (" (pixels in pink: no data)"
                                                                          if missing.any() else ""))
    # where the image has no data, the network's output means nothing: show no data there too, not a probability
    p = np.where(missing, np.nan, np.asarray(prob, dtype="float32"))
    pmap = axes[1].imshow(p, cmap=plt.get_cmap("viridis").with_extremes(bad=no_data), vmin=0, vmax=1, extent=ext)
    fig.colorbar(pmap, ax=axes[1], location="bottom", shrink=0.7, pad=0.02,
                 label="crater probability: the network's output per pixel (0 = no crater rim, 1 = rim)"
                 + ("\n(pixels in pink: no data in the image)" if missing.any() else ""))
    panels = ((axes[0], truth, "tab:orange",
               "the image" if truth is None else "the image, with the reference craters",
               "reference (true) craters, drawn at their size"),
              (axes[1], detected, "cyan", "the network's crater probability, with the craters found",
               "craters the model found (the catalog), drawn at their measured size"))
    for ax, cat, colour, panel_title, what in panels:
        key = []
        if cat is not None:
            # catalog longitudes onto the mosaic's own contiguous axis (as the browser does)
            for x, c in zip(wrap_lon(cat["lon"].to_numpy(), west), cat.itertuples()):
                ax.add_patch(Ellipse((x, c.lat), km_to_deg_lon(c.diameter_km, c.lat), km_to_deg_lat(c.diameter_km),
                                     fill=False, ec=colour, lw=0.7))
            key.append(Line2D([], [], ls="none", marker="o", ms=9, mfc="none", mec=colour, label=f"{what} ({len(cat)})"))
        if missing.any():
            key.append(Patch(facecolor=no_data, label="no data"))
        if key:
            ax.legend(handles=key, loc="upper right", fontsize=9, framealpha=0.85)
        ax.set_title(panel_title)
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
    if title:
        fig.suptitle(title)
    return fig


def _print_summary(summary: dict, ages: dict) -> None:
    print("\nmarscraters demo finished")
    print(f"  craters found      {summary['craters_detected']} on {summary['cube_shape'][1]} x "
          f"{summary['cube_shape'][0]} px ({summary['area_km2']:,.0f} km²)")
    if "f1_deepmoon" in summary:
        print(f"  against the truth  P {summary['precision_deepmoon']:.2f}  R {summary['recall_deepmoon']:.2f}  "
              f"F1 {summary['f1_deepmoon']:.2f} (DeepMoon rule, craters >= {summary['scored_above_km']:g} km)")
    for name, age in ages.items():
        text = f"not dated ({age})" if isinstance(age, Exception) else f"{age.age_text()}, {age.epoch}, n = {age.n:g}"
        print(f"  age from {name:9s} {text}")
    if "true_age_ga" in summary:
        print(f"  true age           {summary['true_age_ga']:g} Ga")
    print(f"  catalog            {summary['detected_catalog']}")
    if summary.get("map"):
        print(f"  map                {summary['map']}")
    print(f"  figures            {', '.join(summary['figures'])}")
    print(f"  time               {summary['seconds']} s")
