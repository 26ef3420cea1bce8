"""Crater size-frequency distributions on CTX: detections against the hand labels.

Run: ``python benchmarks/ctx_csfd.py [--images G H] [--json docs/results/ctx_csfd.json]
[--plot docs/figures/ctx_csfd.png]``

``detect()`` (no model named: the shipped model for 6 m/px imagery) runs on the CTX MC11-E
validation images; its craters and the clustered hand labels are counted per sqrt(2) diameter bin
from 100 m to 1.13 km, over the images' area (2000 x 2000 px at 6 m = 144 km^2 each).  Labels:
the boxes marked by at least ``--min-confidence`` of the six annotators (the scores' truth), and
every box beside it.  The cumulative CSFDs (``marscraters.chronology.csfd``) are plotted together.
Nothing is chosen here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO.parent / "shared" / "data"))
PIXEL_M = 6.0
EDGES_KM = 0.1 * np.sqrt(2.0) ** np.arange(8)  # 0.100 ... 1.131 km


def _counts(d_km: np.ndarray) -> list[int]:
    return np.histogram(d_km, bins=EDGES_KM)[0].astype(int).tolist()


def main(argv: list[str] | None = None) -> dict:
    from marscraters.chips import read_voc_labels
    from marscraters.chronology import csfd
    from marscraters.detect import detect, read_grey_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", nargs="+", default=["G", "H"])
    p.add_argument("--min-confidence", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--plot")
    args = p.parse_args(argv)
    folder = DATA / "ctx-mc11e"
    images = [read_grey_image(folder / "images" / f"MC11E-{k}.png") for k in args.images]
    labels = [read_voc_labels(folder / "annotations" / "clustered" / f"MC11E-{k}.xml") for k in args.images]
    area = sum(im.shape[0] * im.shape[1] for im in images) * (PIXEL_M / 1000) ** 2
    t0 = time.perf_counter()
    det = detect(images, pixel_size_m=PIXEL_M)
    seconds = time.perf_counter() - t0
    sets = {
        "detections": det["diameter_m"].to_numpy() / 1000,
        f"labels (>= {args.min_confidence} of 6)": np.concatenate(
            [t.loc[t["confidence"] >= args.min_confidence, "diameter_px"].to_numpy() for t in labels]) * PIXEL_M / 1000,
        "labels (every box)": np.concatenate([t["diameter_px"].to_numpy() for t in labels]) * PIXEL_M / 1000,
    }
    counts = {name: _counts(d) for name, d in sets.items()}
    truth = counts[f"labels (>= {args.min_confidence} of 6)"]
    rows = [{"d_min_km": round(float(a), 4), "d_max_km": round(float(b), 4),
             **{name: c[i] for name, c in counts.items()},
             "ratio": (counts["detections"][i] / truth[i]) if truth[i] else None}
            for i, (a, b) in enumerate(zip(EDGES_KM[:-1], EDGES_KM[1:]))]
    print(f"{'bin (km)':>13} " + " ".join(f"{n:>22}" for n in counts) + "  ratio")
    for r in rows:
        print(f"{r['d_min_km']:.3f}-{r['d_max_km']:.3f} " + " ".join(f"{r[n]:>22}" for n in counts)
              + f"  {'-' if r['ratio'] is None else format(r['ratio'], '.2f')}")
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPU",
              "images": args.images, "area_km2": area, "model": det.attrs["model"], "detect_seconds": round(seconds, 1),
              "bins": rows}
    if args.plot:
        _plot(sets, area, args.plot, sorted(set(det.attrs["model"].values())))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


def _plot(sets: dict, area: float, path: str, models: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from marscraters.chronology import csfd

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for (name, d), colour, marker in zip(sets.items(), ("tab:red", "tab:blue", "tab:grey"), ("o", "s", "^")):
        d = d[d >= EDGES_KM[0] / np.sqrt(2)]
        if not len(d):
            continue
        c = csfd(d, area, bins="root-2", kind="cumulative")
        ax.errorbar(c["diameter"], c["density"], yerr=[c["density"] - c["lower"], c["upper"] - c["density"]],
                    fmt=marker, color=colour, ms=4, capsize=2, label=f"{name} ({len(d)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axvspan(EDGES_KM[0], EDGES_KM[-1], color="0.93", zorder=0, label="compared, 0.1-1.1 km")
    ax.set_xlabel("crater diameter D (km)")
    ax.set_ylabel("cumulative crater density N(>= D) (km$^{-2}$)")
    ax.set_title(f"CTX MC11-E G, H ({area:.0f} km$^2$ at 6 m/px)\ndetections: {', '.join(models)}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
