"""Date three Mars surfaces from the Robbins & Hynek (2012) crater catalog with crater-count model ages.

Usage::

    python examples/model_ages.py [--data ../shared/data] [--out docs] [--fast]

Three longitude/latitude rectangles of the equatorial Robbins 2012 catalog (the 30x30 degree
tiles in ``robbins2012-equatorial-tiles/``) are dated with the Poisson likelihood method (Michael
et al. 2016) and with a cumulative fit, in the Neukum-Ivanov (2001) chronology system:

* Amazonis Planitia (young northern plains), craters of 1-4 km;
* Lunae Planum (Hesperian ridged plains), 2-8 km;
* Noachis Terra / Terra Sabaea (Noachian highlands), 8-60 km.

It writes one CSFD plot per area to ``OUT/figures/ages_robbins_<area>.png`` and a Markdown table
to ``OUT/results/ages_robbins.md``.  When the shared data is absent it says so and exits cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import pandas as pd
from shapely.geometry import box

from marscraters.catalog import read_catalog
from marscraters.chronology import SYSTEMS, epoch_boundaries, model_age, plot_csfd

REPO = Path(__file__).resolve().parents[1]

#: name -> (west, south, east, north) in degrees (longitudes -180..180), diameter range in km
AREAS = {
    "amazonis": ("Amazonis Planitia", (-165.0, 5.0, -150.0, 20.0), (1.0, 4.0)),
    "lunae": ("Lunae Planum", (-72.0, 8.0, -62.0, 20.0), (2.0, 8.0)),
    "noachis": ("Noachis Terra / Terra Sabaea", (15.0, -30.0, 35.0, -15.0), (8.0, 60.0)),
}


def tiles_for(folder: Path, bounds: tuple[float, float, float, float]) -> list[Path]:
    """The catalog tiles (``CSV_Tile_NN_<minlat>_<maxlat>_<minlon>_<maxlon>_px.csv``) a box touches."""
    west, south, east, north = bounds
    found = []
    for path in sorted(folder.glob("CSV_Tile_*_px.csv")):
        lat0, lat1, lon0, lon1 = (float(v) for v in path.stem.split("_")[3:7])
        if lat0 < north and lat1 > south and lon0 < east and lon1 > west:
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("MARSCRATERS_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    p.add_argument("--data", default=default_data, help="the shared data folder (default ../shared/data)")
    p.add_argument("--out", default=str(REPO / "docs"), help="output folder: figures/ and results/ go inside")
    p.add_argument("--fast", action="store_true", help="low-resolution figures (for CI)")
    args = p.parse_args(argv)

    folder = Path(args.data) / "robbins2012-equatorial-tiles"
    if not folder.is_dir():
        print(f"skipping: the Robbins 2012 tiles are not at {folder} (set --data or MARSCRATERS_SHARED_DATA)")
        return 0
    out = Path(args.out)
    system = "neukum-ivanov"
    rows = []
    for key, (name, bounds, drange) in AREAS.items():
        with warnings.catch_warnings():  # a handful of impossible rows in the source are dropped
            warnings.simplefilter("ignore", UserWarning)
            parts = [read_catalog(t, errors="drop") for t in tiles_for(folder, bounds)]
        catalog = pd.concat(parts, ignore_index=True)
        catalog.attrs = {"source": f"Robbins & Hynek (2012), {name}"}
        area = box(*bounds)  # degrees on IAU_2015:49900; craters are selected inside it
        poisson = model_age(catalog, area=area, diameter_range=drange, system=system)
        cumulative = model_age(catalog, area=area, diameter_range=drange, system=system, method="cumulative")
        print(f"{name} {bounds}:\n{poisson}\n  cumulative fit: {cumulative.age_text()}\n")
        png = out / "figures" / f"ages_robbins_{key}.png"
        # every crater of the area (not only the fitted range), with both fits
        plot_csfd(catalog, area=area, fits=[poisson, cumulative], system=system, out=png, overwrite=True,
                  dpi=60 if args.fast else 130,
                  title=f"{name}: Robbins & Hynek (2012), {bounds[0]:g}..{bounds[2]:g}°E, {bounds[1]:g}..{bounds[3]:g}°N")
        print(f"wrote {png}")
        rows.append((name, bounds, poisson, cumulative))

    eps = epoch_boundaries(system)
    lines = [
        "# Model ages of three equatorial areas from the Robbins & Hynek (2012) catalog",
        "",
        (
            f"Made by `examples/model_ages.py` with marscraters' `model_age`, {SYSTEMS[system].name} chronology "
            "system, craters whose centre lies in each longitude/latitude rectangle (area on the Mars sphere). "
            "Poisson: median and 1σ of the likelihood (Michael et al. 2016); cumulative: craterstats-style fit "
            "on pseudo-log bins.  Epochs: Michael (2013) boundaries in this system.  The cumulative fit counts "
            "every larger crater too, so where large craters of an older substrate survive (Amazonis) it reads "
            "older than the Poisson age, which uses only the craters in the range."
        ),
        "",
        "| Area | W, S, E, N (°) | Area (km²) | D range (km) | N | Poisson age | Cumulative-fit age | N(1) (km⁻²) | Epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, bounds, po, cu in rows:
        lines.append(
            f"| {name} | {', '.join(f'{v:g}' for v in bounds)} | {po.area_km2:,.0f} | "
            f"{po.diameter_range[0]:g}–{po.diameter_range[1]:g} | {po.n:g} | {po.age_text()} | {cu.age_text()} | "
            f"{po.n1:.3g} | {po.epoch} |"
        )
    lines += ["", "Epoch boundaries (Ga) in this system: " + "; ".join(
        f"{n} {young:.2f}–{old:.2f}" if old != float("inf") else f"{n} > {young:.2f}" for n, young, old in eps), ""]
    table = out / "results" / "ages_robbins.md"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
