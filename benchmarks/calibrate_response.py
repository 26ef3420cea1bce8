"""Calibrate the shipped detector's response (completeness and false craters) for crater-count dating.

Run::

    python benchmarks/calibrate_response.py [--data runs/response] [--write]

On *calibration* synthetic surfaces -- seeds 20000 + 100 * k + tile, at ages that are none of the
benchmark's (0.5, 1.0, 3.0, 3.7 Ga) and with seeds disjoint from both the benchmark
(``benchmarks/age_recovery.py``, 1000-4999) and the diagnosis (9000+) -- each 2048² tile at the
shipped model's 592.747 px/deg goes through ``ds.craters.catalog()``; detections are matched to the
true catalog (DeepMoon rule).  The matched tables are cached under ``--data/<model name>-<key>``
(one CSV per age), so refitting the same detector does not segment again; the key hashes the
weights, the verifier and the circle finder's and verifier's code, so a changed detector under the
same model name is measured afresh.

:func:`marscraters.chronology.fit_response` then fits, by maximum likelihood, how many of the true
craters the detector finds (by diameter, falling as the surface crowds) and how many false
craters it adds per km² (by diameter), and the script prints the fit, the per-age check of
observed against predicted counts, and plots them to ``docs/figures/detector_response.png``.
With ``--write`` the response is saved next to the shipped weights
(``marscraters/weights/symmetric_unet.response.json``), where ``model_age(..., response="shipped")``
finds it.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

PPD = 592.747
ROOT = Path(__file__).resolve().parents[1]
# ages and tiles: >= ~80 true craters >= 1.6 km per age, 184 tiles (~8 min on 2 cores) in all
AGES = (0.25, 0.7, 1.5, 2.2, 2.7, 3.3, 3.5, 3.85, 4.0)
TILES = (60, 48, 24, 16, 12, 10, 8, 4, 2)
SEED0 = 20000
# the smallest calibrated diameter: 16 px at ~100 m/px, the floor of the model's crater-level scores
D_MIN = 1.6


def detector_key() -> str:
    """A short hash of what makes the shipped detector's output: its weights, its verifier, and
    the code of the circle finder and the verifier."""
    import hashlib

    import marscraters
    from marscraters.model import default_weights_path

    pkg = Path(marscraters.__file__).parent
    h = hashlib.sha1()
    weights = default_weights_path()
    for path in (weights, weights.parent / "crater_classifier.keras", pkg / "extract.py", pkg / "verify.py"):
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()[:10]


def collect(age: float, tiles: int, seed: int) -> pd.DataFrame:
    """Detections and truths of ``tiles`` calibration tiles, one table with a ``kind`` column."""
    import marscraters.accessor  # noqa: F401  (registers ds.craters)
    from marscraters.evaluate import match_craters
    from marscraters.synthetic import surface_area_km2, synthetic_surface

    side = 2048 / PPD
    rows = []
    for k in range(tiles):
        west = k * side - 180.0
        bounds = (west, -side / 2, west + side, side / 2)
        s = synthetic_surface(bounds, PPD, age_ga=age, seed=seed + k)
        det = pd.DataFrame(s.mosaic.craters.catalog(progress=False, levels=1).drop(columns="geometry", errors="ignore"))
        truth = pd.DataFrame(s.catalog.drop(columns="geometry", errors="ignore"))
        m = match_craters(det, truth)
        det["matched"] = False
        det.loc[m.pred_index.values, "matched"] = True
        # each matched detection's true diameter (the detector's diameter error)
        det["truth_diameter_km"] = np.nan
        det.loc[m.pred_index.values, "truth_diameter_km"] = truth.loc[m.truth_index.values, "diameter_km"].to_numpy()
        truth["matched"] = False
        truth.loc[m.truth_index.values, "matched"] = True
        area = surface_area_km2(bounds)
        for kind, t in (("detection", det), ("truth", truth)):
            rows.append(pd.DataFrame({"kind": kind, "tile": k, "area_km2": area, "diameter_km": t["diameter_km"].to_numpy(),
                                      "score": t["score"].to_numpy() if "score" in t else np.nan,
                                      "matched": t["matched"].to_numpy(),
                                      "truth_diameter_km": t["truth_diameter_km"].to_numpy() if kind == "detection" else np.nan}))
    out = pd.concat(rows, ignore_index=True)
    out["age_ga"] = age
    return out


def main(argv: list[str] | None = None) -> int:
    from marscraters.chronology import fit_response
    from marscraters.detect import model_info
    from marscraters.experiments import markdown_table
    from marscraters.model import default_weights_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "runs" / "response")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    p.add_argument("--write", action="store_true", help="save the response next to the shipped weights")
    args = p.parse_args(argv)
    info = model_info()
    # the cached tables describe one detector: keep them per detector, never reuse another's
    data_dir = args.data / f"{info['name']}-{detector_key()}"
    data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tables = []
    for i, (age, tiles) in enumerate(zip(AGES, TILES)):
        path = data_dir / f"age_{age:g}.csv"
        if not path.exists():
            t = time.perf_counter()
            collect(age, tiles, SEED0 + 100 * i).to_csv(path, index=False)
            print(f"{age:g} Ga: {tiles} tiles in {time.perf_counter() - t:.0f} s", flush=True)
        tables.append(pd.read_csv(path))
    data = pd.concat(tables, ignore_index=True)
    response = fit_response(data, name=info["name"], d_min=D_MIN, provenance={
        "script": "benchmarks/calibrate_response.py", "date": str(datetime.date.today()), "seeds": f"{SEED0} + 100 * i + tile",
        "tiles": dict(zip(map(str, AGES), TILES)), "tile_px": 2048, "px_per_deg": PPD, "matching": "DeepMoon",
        "model_version": info.get("version")})
    print(f"\n{datetime.date.today()}, {platform.machine()}, calibration seeds {SEED0}+, {time.perf_counter() - t0:.0f} s\n")
    print(response)
    for rng in ((1.6, 16.0), (2.5, 32.0)):
        check = response.check(data, rng)
        print(f"\ncraters of {rng[0]:g}-{rng[1]:g} km (in-sample: the surfaces the response was fitted on)\n")
        print(markdown_table(check.astype(object), digits=1, formats={"age_ga": "g"}))
    response.plot(data, out=args.out / "figures" / "detector_response.png", overwrite=True)
    if args.write:
        path = response.save(default_weights_path().with_suffix(".response.json"), overwrite=True)
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
