"""Why detected-crater ages miss on young and on old synthetic surfaces: purity by score, recall by density.

Run::

    python benchmarks/age_detector_diagnosis.py [--out docs] [--ages 0.5 1.0 3.0 3.7] [--tiles 14 8 4 3]

On *validation* synthetic surfaces (seeds 9000 + 100 * age + k, disjoint from the 1000-4999 seeds
of ``benchmarks/age_recovery.py``), 2048² tiles at the shipped model's 592.747 px/deg, each tile
goes through ``ds.craters.catalog()`` with the shipped model; detections are matched to the true
catalog (DeepMoon rule).  For craters >= 1.6 km it prints, per age:

* truths, detections, recall, and the ratio detections / truths at several score floors
  (the count the dating sees: a ratio r moves a linear-regime age by about r - 1);
* the purity (matched fraction) of detections per score band;
* false detections per 10^6 km².

and plots purity by score band and recall by diameter, per age, to
``<out>/figures/age_detector_diagnosis.png``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from marscraters.experiments import markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # calibrate_response, a sibling script

D_MIN = 1.6
FLOORS = (0.45, 0.48, 0.5, 0.52)
BANDS = (0.45, 0.5, 0.55, 0.6, 1.01)


def run_age(age: float, tiles: int) -> dict:
    # the calibration script's tile loop (catalog, DeepMoon matching), on the validation seeds
    from calibrate_response import collect

    data = collect(age, tiles, 9000 + int(round(age * 100)))
    det = data[data["kind"] == "detection"].reset_index(drop=True)
    truth = data[data["kind"] == "truth"].rename(columns={"matched": "found"}).reset_index(drop=True)
    area = float(data.drop_duplicates("tile")["area_km2"].sum())
    return {"age": age, "det": det, "truth": truth, "area": area}


def summarise(res: dict) -> dict:
    det = res["det"][res["det"]["diameter_km"] >= D_MIN]
    truth = res["truth"][res["truth"]["diameter_km"] >= D_MIN]
    row = {"age_ga": res["age"], "area_km2": round(res["area"]), "truths": len(truth), "detections": len(det),
           "recall": round(float(truth["found"].mean()), 2) if len(truth) else float("nan"),
           "false_per_Mkm2": round(float((~det["matched"]).sum()) / res["area"] * 1e6)}
    for f in FLOORS:
        row[f"det/truth @{f}"] = round(float((det["score"] >= f).sum()) / max(len(truth), 1), 2)
    for lo, hi in zip(BANDS[:-1], BANDS[1:]):
        band = det[(det["score"] >= lo) & (det["score"] < hi)]
        row[f"purity {lo}-{min(hi, 1.0):g}"] = f"{int(band['matched'].sum())}/{len(band)}"
    return row


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    mids = [(lo + min(hi, 0.7)) / 2 for lo, hi in zip(BANDS[:-1], BANDS[1:])]
    edges = np.array([1.6, 2.3, 3.2, 4.5, 6.4, 16.0])
    for res in results:
        det = res["det"][res["det"]["diameter_km"] >= D_MIN]
        pur = [det[(det.score >= lo) & (det.score < hi)]["matched"].mean() for lo, hi in zip(BANDS[:-1], BANDS[1:])]
        a.plot(mids, pur, "o-", label=f"{res['age']:g} Ga")
        t = res["truth"]
        rec = [t[(t.diameter_km >= lo) & (t.diameter_km < hi)]["found"].mean() for lo, hi in zip(edges[:-1], edges[1:])]
        b.semilogx(np.sqrt(edges[:-1] * edges[1:]), rec, "o-", label=f"{res['age']:g} Ga")
    a.set(xlabel="detection score", ylabel="purity (matched fraction)", title="Purity by score, craters ≥ 1.6 km", ylim=(0, 1.05))
    b.set(xlabel="true diameter (km)", ylabel="recall", title="Recall by diameter", ylim=(0, 1.05))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ages", type=float, nargs="+", default=[0.5, 1.0, 3.0, 3.7])
    p.add_argument("--tiles", type=int, nargs="+", default=[14, 8, 4, 3])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    args = p.parse_args(argv)
    if len(args.tiles) != len(args.ages):
        p.error("give one --tiles count per age")
    results = [run_age(a, n) for a, n in zip(args.ages, args.tiles)]
    table = pd.DataFrame([summarise(r) for r in results])
    print(f"{datetime.date.today()}, {platform.machine()}, validation seeds 9000+\n")
    print(markdown_table(table, digits=2))
    plot(results, args.out / "figures" / "age_detector_diagnosis.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
