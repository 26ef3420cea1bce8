"""Compare the circle finders of marscraters.extract by crater-level F1 (DeepMoon rule) and speed.

Two sources of probability maps:

**Simulated** (default).  Known crater sets (diameters 5-300 px, log-uniform; about 20 % of them
nested inside a bigger crater and 20 % overlapping a neighbour) are drawn as truth targets with
:func:`marscraters.targets.render_targets` on a small geographic mosaic at the equator
(256 px/deg, so circles stay circles), for each target kind (filled, outline, ring), and then
degraded the way a network output is: every crater gets its own peak probability in 0.3-0.9,
8 % of the craters are dropped entirely and 20 % lose an arc of 40-120 degrees, the map is
blurred (Gaussian, sigma 1 px), multiplied by smooth noise (Gaussian-filtered white noise,
sigma 4 px, scaled to a standard deviation of 15 %), given false blobs (a quarter as many as
craters, 3-30 px, probability 0.3-0.8) and smooth additive noise (sigma 2 px, standard deviation
0.05), and clipped to [0, 1].  ``--noise`` scales both noise amplitudes.  Maps with seeds ``--tune-seeds`` choose each method's parameters (the
probability threshold and the method's own score cut) by F1; maps with the other seeds
(``--test-seeds``) report precision, recall and F1 with those parameters.

**Saved maps** (``--maps DIR --target KIND``).  Later, rerun the comparison on real network
outputs.  ``DIR`` holds pairs ``NAME.npy`` + ``NAME.csv``:

* ``NAME.npy``: a 2-D float array (``numpy.save``), the probability map of one image, values in
  [0, 1], NaN allowed (no data); ``(1, y, x, 1)`` model outputs are accepted too;
* ``NAME.csv``: the truth craters of that image, with header ``x,y,diameter_px`` (further
  columns are ignored) in pixel index coordinates: ``(0, 0)`` is the centre of the top-left
  pixel, ``x`` the column, ``y`` the row.

The same parameter grid is searched on the maps of the first half (sorted by name) and scored on
the second half; ``--d-min`` sets the evaluation's diameter floor (16 for the THEMIS chips, whose
labels are incomplete below ~1 km).

Run from the repository root::

    python benchmarks/bench_extract.py [--size 1024] [--tune-seeds 0 1] [--test-seeds 10 11 12]
    python benchmarks/bench_extract.py --maps path/to/maps --target filled --d-min 16

Prints one table per target kind: for each method, the chosen parameters, precision, recall,
F1, the best F1 reachable by cutting on ``score`` (is the score useful for a precision-recall
curve?), the median position error (over the true radius) and signed diameter error (over the
true diameter) of the matches, the same F1 and diameter error with ``relative_threshold=0``
(no local half-maximum edges), and seconds per megapixel; then which method wins per kind.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from marscraters.crs import KM_PER_DEGREE, Grid  # noqa: E402
from marscraters.evaluate import evaluate  # noqa: E402
from marscraters.extract import extract_craters  # noqa: E402
from marscraters.mosaic import mosaic_from_array  # noqa: E402
from marscraters.targets import render_targets  # noqa: E402

KINDS = ("filled", "outline", "ring")
METHODS = ("components", "hough", "template")
PPD = 256.0  # px/deg of the simulated mosaic

# The parameter grid searched per method: the probability threshold and the method's own cut.
GRID: dict[str, dict[str, list]] = {
    "components": {"threshold": [0.1, 0.15, 0.2, 0.3, 0.5], "smooth_sigma": [0.0, 1.0, 2.0], "min_rim_coverage": [0.25, 0.5]},
    "hough": {"threshold": [0.1, 0.15, 0.2, 0.3, 0.5], "smooth_sigma": [0.0, 1.0], "hough_threshold": [0.4, 0.5, 0.6, 0.7, 0.8]},
    "template": {
        "threshold": [0.1, 0.15, 0.2, 0.3, 0.5],
        "smooth_sigma": [0.0, 1.0],
        "template_threshold": [0.4, 0.5, 0.6, 0.7],
    },
}


# --------------------------------------------------------------------------------------------
# simulation


def simulate_craters(rng: np.random.Generator, size: int, n: int) -> pd.DataFrame:
    """Random craters in pixel space: log-uniform 5-300 px, some nested, some overlapping."""
    rows: list[tuple[float, float, float]] = []

    def logd(lo: float, hi: float) -> float:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    while len(rows) < n:
        u = rng.random()
        big = [c for c in rows if c[2] >= 40]
        if u < 0.2 and big:
            # nested: inside the hole of a bigger crater
            px, py, pd_ = big[rng.integers(len(big))]
            d = logd(5, 0.45 * pd_)
            room = max(0.7 * pd_ / 2 - d / 2 - 1, 0)
            a, s = rng.uniform(0, 2 * math.pi), room * math.sqrt(rng.random())
            rows.append((px + s * math.cos(a), py + s * math.sin(a), d))
        elif u < 0.4 and rows:
            # overlapping a neighbour
            px, py, pd_ = rows[rng.integers(len(rows))]
            d = logd(5, 300)
            a, s = rng.uniform(0, 2 * math.pi), (pd_ + d) / 2 * rng.uniform(0.5, 0.9)
            rows.append((px + s * math.cos(a), py + s * math.sin(a), d))
        else:
            rows.append((rng.uniform(0, size - 1), rng.uniform(0, size - 1), logd(5, 300)))
    df = pd.DataFrame(rows, columns=["x", "y", "diameter_px"])
    inside = (df.x >= 0) & (df.x <= size - 1) & (df.y >= 0) & (df.y <= size - 1)
    return df[inside].reset_index(drop=True)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    z = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return z / max(float(z.std()), 1e-6)


def simulate_map(kind: str, seed: int, size: int = 1024, n: int = 80, noise: float = 1.0) -> tuple[np.ndarray, pd.DataFrame]:
    """A degraded probability map of one target kind, and its truth craters (pixel coords)."""
    rng = np.random.default_rng(seed)
    truth = simulate_craters(rng, size, n)
    # a small equatorial mosaic; pixel -> lon/lat through the package's one mapping (Grid)
    half = size / PPD / 2
    mosaic = mosaic_from_array(np.zeros((size, size), np.float32), bounds=(-half, -half, half, half))
    grid = Grid.from_dataset(mosaic)
    lon, lat = grid.pixel_to_lonlat(truth.x.to_numpy(), truth.y.to_numpy())
    catalog = pd.DataFrame({"lat": lat, "lon": lon, "diameter_km": truth.diameter_px * KM_PER_DEGREE / PPD})
    shape = render_targets(mosaic, catalog, kind=kind, dtype="float32").values

    # each crater's own peak probability, painted largest first like the targets (smaller wins)
    amp = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[:size, :size]
    order = np.argsort(-truth.diameter_px.to_numpy(), kind="stable")
    for i in order:
        x0, y0, d = truth.loc[i, ["x", "y", "diameter_px"]]
        r = d / 2 + 2.0
        sl = (slice(max(int(y0 - r), 0), int(y0 + r) + 2), slice(max(int(x0 - r), 0), int(x0 + r) + 2))
        dx, dy = xx[sl] - x0, yy[sl] - y0
        disk = dx * dx + dy * dy <= r * r
        u = rng.random()
        a = 0.0 if u < 0.08 else rng.uniform(0.3, 0.9)
        val = np.full(disk.shape, a, np.float32)
        if 0.08 <= u < 0.28:
            # a missing arc of the rim (and of the disk)
            start, width = rng.uniform(-math.pi, math.pi), math.radians(rng.uniform(40, 120))
            ang = (np.arctan2(dy, dx) - start) % (2 * math.pi)
            val[ang < width] = 0.0
        amp[sl][disk] = val[disk]
    prob = shape * amp

    # false blobs
    for _ in range(n // 4):
        cx, cy = rng.uniform(0, size, 2)
        ax, ay = rng.uniform(1.5, 15, 2)
        th = rng.uniform(0, math.pi)
        r = max(ax, ay) + 1
        sl = (slice(max(int(cy - r), 0), int(cy + r) + 2), slice(max(int(cx - r), 0), int(cx + r) + 2))
        dx, dy = xx[sl] - cx, yy[sl] - cy
        u_ = dx * math.cos(th) + dy * math.sin(th)
        v_ = -dx * math.sin(th) + dy * math.cos(th)
        blob = (u_ / ax) ** 2 + (v_ / ay) ** 2 <= 1
        prob[sl] = np.maximum(prob[sl], blob * rng.uniform(0.3, 0.8))

    prob = ndimage.gaussian_filter(prob, 1.0)
    prob *= np.clip(1 + 0.15 * noise * _smooth_noise(rng, prob.shape, 4.0), 0, 2)
    prob += 0.05 * noise * _smooth_noise(rng, prob.shape, 2.0)
    return np.clip(prob, 0, 1).astype(np.float32), truth


# --------------------------------------------------------------------------------------------
# scoring


def score(pred: pd.DataFrame, truth: pd.DataFrame, d_min: float | None) -> tuple[int, int, int, int]:
    """(matched predictions, counted predictions, matched truth, counted truth)."""
    r = evaluate(pred, truth, rule="deepmoon", d_min=d_min)
    return r.n_pred_matched, r.n_pred, r.n_truth_matched, r.n_truth


def errors(preds: list[pd.DataFrame], truths: list[pd.DataFrame], d_min: float | None) -> tuple[float, float]:
    """Median position error (/ true radius) and median signed diameter error (/ true d), all maps."""
    pos, dd = [], []
    for p, t in zip(preds, truths):
        m = evaluate(p, t, rule="deepmoon", d_min=d_min).matches
        pos.append(m["position_error"].to_numpy())
        dd.append(m["diameter_error"].to_numpy())
    pos_all, dd_all = np.concatenate(pos), np.concatenate(dd)
    return (float(np.median(pos_all)) if pos_all.size else float("nan"),
            float(np.median(dd_all)) if dd_all.size else float("nan"))


def prf(counts: list[tuple[int, int, int, int]]) -> tuple[float, float, float]:
    mp, np_, mt, nt = (sum(c[i] for c in counts) for i in range(4))
    p = mp / np_ if np_ else float("nan")
    r = mt / nt if nt else float("nan")
    f = 2 * p * r / (p + r) if np_ and nt and p + r > 0 else 0.0
    return p, r, f


def best_score_cut_f1(preds: list[pd.DataFrame], truths: list[pd.DataFrame], d_min: float | None) -> float:
    """The best F1 over cuts on ``score`` (the same cut on every map)."""
    allscores = np.concatenate([p["score"].to_numpy() for p in preds]) if preds else np.array([])
    if allscores.size == 0:
        return 0.0
    best = 0.0
    for q in np.unique(np.quantile(allscores, np.linspace(0, 0.9, 19))):
        f = prf([score(p[p.score >= q], t, d_min) for p, t in zip(preds, truths)])[2]
        best = max(best, f)
    return best


def run(maps: list[np.ndarray], truths: list[pd.DataFrame], kind: str, method: str, params: dict, d_min):
    preds, counts, seconds = [], [], 0.0
    for prob, truth in zip(maps, truths):
        t0 = time.perf_counter()
        pred = extract_craters(prob, target=kind, method=method, **params)
        seconds += time.perf_counter() - t0
        preds.append(pred)
        counts.append(score(pred, truth, d_min))
    mpx = sum(m.size for m in maps) / 1e6
    return preds, prf(counts), seconds / mpx


def compare(
    tune: tuple[list, list], test: tuple[list, list], kind: str, d_min: float | None, methods=METHODS
) -> pd.DataFrame:
    rows = []
    for method in methods:
        grid = GRID[method]
        keys = list(grid)
        best = None
        for values in itertools.product(*(grid[k] for k in keys)):
            params = dict(zip(keys, values))
            _, (p, r, f), _ = run(*tune, kind, method, params, d_min)
            if best is None or f > best[0]:
                best = (f, params)
        params = best[1]
        preds, (p, r, f), spm = run(*test, kind, method, params, d_min)
        fcut = best_score_cut_f1(preds, test[1], d_min)
        pos_err, d_bias = errors(preds, test[1], d_min)
        # the same, without the local half-maximum edge (relative_threshold=0)
        preds0, (_, _, f0), _ = run(*test, kind, method, {**params, "relative_threshold": 0.0}, d_min)
        d_bias0 = errors(preds0, test[1], d_min)[1]
        rows.append(
            {
                "target": kind,
                "method": method,
                "params": ", ".join(f"{k}={v}" for k, v in params.items()),
                "tune_F1": round(best[0], 3),
                "P": round(p, 3),
                "R": round(r, 3),
                "F1": round(f, 3),
                "F1_best_score_cut": round(fcut, 3),
                "pos_err": round(pos_err, 3),
                "d_bias": round(d_bias, 3),
                "F1_rel0": round(f0, 3),
                "d_bias_rel0": round(d_bias0, 3),
                "s_per_Mpx": round(spm, 2),
            }
        )
        print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    return pd.DataFrame(rows)


def load_maps(folder: Path) -> tuple[list[np.ndarray], list[pd.DataFrame], list[str]]:
    maps, truths, names = [], [], []
    for npy in sorted(folder.glob("*.npy")):
        csv = npy.with_suffix(".csv")
        if not csv.exists():
            raise SystemExit(f"{npy} has no truth file {csv.name} (columns x,y,diameter_px)")
        truth = pd.read_csv(csv)
        missing = {"x", "y", "diameter_px"} - set(truth.columns)
        if missing:
            raise SystemExit(f"{csv} lacks the column(s) {sorted(missing)}; it needs x,y,diameter_px")
        maps.append(np.load(npy))
        truths.append(truth[["x", "y", "diameter_px"]].astype(float))
        names.append(npy.stem)
    if len(maps) < 2:
        raise SystemExit(f"{folder} needs at least two NAME.npy + NAME.csv pairs (one to tune, one to test)")
    return maps, truths, names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="simulated map side, px")
    ap.add_argument("--craters", type=int, default=80, help="craters per simulated map")
    ap.add_argument("--noise", type=float, default=1.0, help="scale of the simulated noise amplitudes")
    ap.add_argument("--tune-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--test-seeds", type=int, nargs="+", default=[10, 11, 12])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--maps", type=Path, help="folder of NAME.npy + NAME.csv pairs (real network outputs)")
    ap.add_argument("--target", choices=KINDS, help="target kind of the saved maps")
    ap.add_argument("--d-min", type=float, default=None, help="evaluation diameter floor, px")
    ap.add_argument("--timing", action="store_true",
                    help="only time each method with its tuned defaults, side by side (best of --repeats)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.timing:
        timing(args)
        return

    print(f"# {_dt.date.today()}  {platform.machine()}  {platform.python_version()}  numpy {np.__version__}")
    tables = []
    if args.maps is not None:
        if args.target is None:
            raise SystemExit("--maps needs --target filled|outline|ring")
        maps, truths, names = load_maps(args.maps)
        h = len(maps) // 2
        print(f"{len(maps)} saved maps; tuning on {names[:h]}, testing on {names[h:]}")
        tables.append(compare((maps[:h], truths[:h]), (maps[h:], truths[h:]), args.target, args.d_min, args.methods))
    else:
        for kind in args.kinds:
            t0 = time.perf_counter()
            tune = [simulate_map(kind, s, args.size, args.craters, args.noise) for s in args.tune_seeds]
            test = [simulate_map(kind, s, args.size, args.craters, args.noise) for s in args.test_seeds]
            n_truth = sum(len(t) for _, t in test)
            print(f"\n## {kind}: {len(tune)} tuning + {len(test)} test maps of {args.size}^2 px, "
                  f"{n_truth} test craters (simulated in {time.perf_counter() - t0:.1f} s)")
            tables.append(
                compare(([m for m, _ in tune], [t for _, t in tune]), ([m for m, _ in test], [t for _, t in test]),
                        kind, args.d_min, args.methods)
            )
    table = pd.concat(tables, ignore_index=True)
    print("\n" + table.to_markdown(index=False) if _has_tabulate() else "\n" + table.to_string(index=False))
    for kind, g in table.groupby("target", sort=False):
        w = g.loc[g["F1"].idxmax()]
        print(f"best for {kind}: {w['method']} (F1 {w['F1']}, {w['params']})")


def timing(args: argparse.Namespace) -> None:
    """Seconds per Mpx of each method with its tuned defaults, measured side by side."""
    print(f"# {_dt.date.today()}  {platform.machine()}  timing, best of {args.repeats}, one {args.size}^2 map per kind")
    for kind in args.kinds:
        prob, _ = simulate_map(kind, args.test_seeds[0], args.size, args.craters, args.noise)
        times = {}
        for method in args.methods:
            best = math.inf
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                extract_craters(prob, target=kind, method=method)
                best = min(best, time.perf_counter() - t0)
            times[method] = best / (prob.size / 1e6)
        fastest = min(times.values())
        print(kind, "  ".join(f"{m}: {t:.2f} s/Mpx (x{t / fastest:.1f})" for m, t in times.items()))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
