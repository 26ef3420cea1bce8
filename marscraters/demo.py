"""The built-in end-to-end demo, made only of public functions.

It runs the most complete path the package has today:

1. generate a synthetic THEMIS-like surface with a known crater catalog (``synthetic_surface``);
2. write it as a Mars GeoTIFF, the form real controlled mosaics come in;
3. ingest that into a chunked Zarr v3 cube (``ingest``) and reopen it (``open_mosaic``);
4. fill missing data the paper's way (``fill_missing``);
5. write the true catalog to a GeoPackage and read it back through GDAL (``write_catalog`` / ``read_catalog``);
6. render lazy filled and outline target layers on the cube's grid (``render_targets``);
7. segment the cube with the shipped model on a local Dask cluster (``cluster``, ``segment_to_zarr``);
8. find the craters (``extract_craters``), georeference them (``to_catalog``) and write them to a
   GeoPackage;
9. score them against the truth (``evaluate``), and write PNG figures and a summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["run_demo"]

DEMO_BOUNDS = (30.0, -1.5, 31.5, 0.0)  # 1.5 x 1.5 degrees at the N-30_030 tile's north-west corner
DEMO_PX_PER_DEG = 592.747  # the USGS controlled mosaics' ~100 m/px, the shipped model's native scale
DEMO_SEED = 2019


def run_demo(out: str | Path = "demo-out", *, progress: bool = True, overwrite: bool = True) -> dict:
    """Run the demo and write its outputs under ``out``.

    Parameters
    ----------
    out
        Output folder (created if needed).
    progress
        Show progress bars.
    overwrite
        Replace outputs of an earlier demo run in ``out``.

    Returns
    -------
    dict
        The summary that is also printed and written to ``out/summary.json``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from ._io import atomic_path
    from .catalog import filter_catalog, read_catalog, write_catalog
    from .mosaic import fill_missing, ingest, open_mosaic
    from .synthetic import synthetic_surface
    from .targets import render_targets

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    steps = tqdm(total=8, desc="demo", disable=not progress, unit="step")

    steps.set_postfix_str("synthetic surface")
    surface = synthetic_surface(DEMO_BOUNDS, DEMO_PX_PER_DEG, seed=DEMO_SEED, n_per_km2_above_1km=8e-3, dmax_km=32.0)
    tif = out / "synthetic_surface.tif"
    with atomic_path(tif, overwrite=overwrite) as tmp:
        surface.mosaic["ir"].fillna(0).astype("uint8").rio.write_nodata(0).rio.to_raster(tmp, driver="GTiff")
    steps.update()

    steps.set_postfix_str("ingest to Zarr")
    cube = ingest([tif], out / "cube.zarr", overwrite=overwrite, progress=progress)
    ds = open_mosaic(cube)
    filled = fill_missing(ds)
    steps.update()

    steps.set_postfix_str("catalog to GeoPackage")
    truth_path = write_catalog(
        surface.catalog, out / "truth.gpkg", overwrite=overwrite,
        metadata={"source": "marscraters.synthetic_surface", "seed": DEMO_SEED, "bounds": list(DEMO_BOUNDS)},
    )
    truth = read_catalog(truth_path)
    in_view = filter_catalog(truth, footprint=ds)
    steps.update()

    steps.set_postfix_str("target layers")
    targets = {kind: render_targets(ds, in_view, kind=kind) for kind in ("filled", "outline")}
    rendered = {kind: t.compute() for kind, t in targets.items()}
    steps.update()

    steps.set_postfix_str("segment on a local Dask cluster")
    from .cluster import cluster
    from .detect import model_info
    from .evaluate import evaluate
    from .extract import extract_craters, to_catalog
    from .segment import segment_to_zarr

    info = model_info(None)
    with cluster(gpus="auto") as client:
        pred_path = segment_to_zarr(ds, out / "pred.zarr", client=client, overwrite=overwrite, progress=progress)
    import xarray as xr

    prob = xr.open_zarr(pred_path, decode_coords="all", consolidated=False)["crater_probability"].load()
    steps.update()

    steps.set_postfix_str("extract, catalog, score")
    pixel = extract_craters(prob.values, target=info["kind"], progress=progress, **info["extract"])
    detected = to_catalog(pixel, ds, attrs={"source": str(cube), "model": info["name"]})
    detected_path = write_catalog(detected, out / "craters.gpkg", overwrite=overwrite,
                                  metadata={"model": info["name"], "model_version": info.get("version"), "input_mosaic": str(cube)})
    scores = evaluate(detected, in_view, rule="all", d_min=2.0)
    steps.update()

    steps.set_postfix_str("figures")
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    ext = [ds.x.values[0], ds.x.values[-1], ds.y.values[-1], ds.y.values[0]]
    fig, axes = plt.subplots(1, 4, figsize=(20, 5.4), constrained_layout=True)
    axes[0].imshow(filled["ir"].values, cmap="gray", extent=ext)
    axes[0].set_title("synthetic THEMIS-like Day IR (filled)")
    for _, c in in_view.iterrows():
        axes[0].add_patch(
            matplotlib.patches.Ellipse(
                (c.lon % 360, c.lat), c.diameter_km / 59.2747 / np.cos(np.radians(c.lat)), c.diameter_km / 59.2747,
                fill=False, ec="tab:orange", lw=0.6,
            )
        )
    axes[1].imshow(rendered["filled"].values, cmap="magma", extent=ext)
    axes[1].set_title("filled target")
    axes[2].imshow(rendered["outline"].values, cmap="magma", extent=ext)
    axes[2].set_title("outline target (inner radius 0.7 r)")
    axes[3].imshow(prob.values, cmap="viridis", vmin=0, vmax=1, extent=ext)
    for _, c in detected.iterrows():
        axes[3].add_patch(
            matplotlib.patches.Ellipse(
                (c.lon % 360, c.lat), c.diameter_km / 59.2747 / np.cos(np.radians(c.lat)), c.diameter_km / 59.2747,
                fill=False, ec="cyan", lw=0.8,
            )
        )
    axes[3].set_title("model probability + detected craters")
    for ax in axes:
        ax.set_xlabel("longitude (°E)")
    axes[0].set_ylabel("latitude (°N)")
    with atomic_path(figures / "demo_targets.png", overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    steps.update()

    steps.set_postfix_str("summary")
    summary = {
        "craters_formed": int(len(surface.formed)),
        "craters_recognisable": int(len(surface.catalog)),
        "craters_in_cube_footprint": int(len(in_view)),
        "cube": str(cube),
        "cube_shape": [int(ds.sizes["y"]), int(ds.sizes["x"])],
        "missing_fraction": float(filled["missing"].mean()),
        "filled_target_fraction": float(rendered["filled"].mean()),
        "outline_target_fraction": float(rendered["outline"].mean()),
        "truth_catalog": str(truth_path),
        "craters_detected": int(len(detected)),
        "detected_catalog": str(detected_path),
        "precision_deepmoon": round(float(scores["deepmoon"].precision), 3),
        "recall_deepmoon": round(float(scores["deepmoon"].recall), 3),
        "f1_deepmoon": round(float(scores["deepmoon"].f1), 3),
        "f1_iou": round(float(scores["iou"].f1), 3),
        "f1_pycda": round(float(scores["pycda"].f1), 3),
        "figure": str(figures / "demo_targets.png"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    with atomic_path(out / "summary.json", overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    steps.update()
    steps.close()
    if progress:
        print("\nmarscraters demo finished")
        for k, v in summary.items():
            print(f"  {k:28s} {v}")
    return summary
