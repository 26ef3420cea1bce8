"""How much do synthetic surfaces look like real THEMIS Day IR?  Measured against the real crops.

Run::

    python benchmarks/synthetic_vs_real.py [--data ../shared/data/themis-dayir-crops]
                                           [--figures docs/figures] [--detector] [--no-figures]

Three measurements, real next to synthetic at the same scale (~100 m/px, 592.747 px/deg):

1. **Per-chip statistics** (median over 60 real 416² crops and 24 synthetic 416² windows of
   surfaces of 0.5-3.7 Ga): mean, standard deviation, 1st/99th percentiles, pixel-to-pixel noise,
   log-log slope of the radial power spectrum.
2. **Crater brightness profiles**: the mean brightness (DN, relative to the local plain, the
   median over 2-3 radii) against r/R, for craters of 1-3, 3-8 and 8-20 km, separately over the
   crater's west (x < cx) and east (x > cx) halves.  Real: every labelled crater of the 600 crops
   (Robbins boxes, diameter = mean of the box sides, 100 m/px).  Synthetic: the true catalog of
   six 1778² surfaces (3° square, 0.5-3.7 Ga).  Printed as a table at a few radii; plotted in
   ``synthetic_crater_profiles.png``.
3. **Background texture**: the band-pass amplitude (std of a difference of Gaussians, DN) at
   wavelengths of ~0.4-1.6 km, 1.6-6.4 km and 6.4-25 km, counted only on pixels at least 1.5 crater
   radii from every labelled/true crater (so it measures the terrain between craters).

``--detector`` also runs the shipped model (``ds.craters.catalog()``) on 2048² surfaces of 2.0
and 3.4 Ga (ages and seeds not used by ``age_recovery.py``) and scores it with
``marscraters.evaluate.evaluate(detected, truth, d_min=1.6)`` (km), to compare with the real
held-out scores in ``docs/model_card.md`` (F1 0.57, recall 0.57 at >= 16 px).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

PPD = 592.747
KM_PER_PX = 2 * np.pi * 3396.19 / 360 / PPD  # ~0.1 km
REPO = Path(__file__).resolve().parents[1]
D_BINS_KM = [(1.0, 3.0), (3.0, 8.0), (8.0, 20.0)]
R_EDGES = np.linspace(0.0, 3.0, 31)
R_MID = (R_EDGES[:-1] + R_EDGES[1:]) / 2
BANDS = {"0.4-1.6 km": (1.0, 4.0), "1.6-6.4 km": (4.0, 16.0), "6.4-25 km": (16.0, 64.0)}  # DoG sigmas, px
SYN_AGES = [0.5, 1.0, 2.0, 3.0, 3.5, 3.7]


# ------------------------------------------------------------------------------------------------
# measurements
# ------------------------------------------------------------------------------------------------


def psd_slope(a: np.ndarray) -> float:
    a = a - a.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(a))) ** 2
    ny, nx = a.shape
    yy, xx = np.indices(a.shape)
    r = np.hypot(yy - ny / 2, xx - nx / 2).astype(int)
    ps = np.bincount(r.ravel(), power.ravel()) / np.bincount(r.ravel())
    k = np.arange(ps.size)
    sel = (k > 4) & (k < 150)
    return float(np.polyfit(np.log(k[sel]), np.log(ps[sel]), 1)[0])


def chip_stats(chips: list[np.ndarray]) -> dict[str, float]:
    """Median per-chip brightness statistics (no-data pixels, value 0, left out)."""
    rows: dict[str, list[float]] = {k: [] for k in ("mean", "std", "p1", "p99", "noise", "psd_slope")}
    for c in chips:
        v = c[c > 0]
        rows["mean"].append(v.mean())
        rows["std"].append(v.std())
        rows["p1"].append(np.percentile(v, 1))
        rows["p99"].append(np.percentile(v, 99))
        dx = np.diff(c, axis=1)
        ok = (c[:, 1:] > 0) & (c[:, :-1] > 0)
        rows["noise"].append(np.std(dx[ok]) / np.sqrt(2))
        rows["psd_slope"].append(psd_slope(np.where(c > 0, c, v.mean())))
    return {k: round(float(np.median(v)), 2) for k, v in rows.items()}


def crater_profiles(images: list[np.ndarray], craters: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    km_per_px: float = KM_PER_PX) -> dict[tuple[float, float], dict[str, np.ndarray]]:
    """Mean brightness profiles (DN relative to the plain at 2-3 R) per diameter bin, west/east halves.

    ``craters[i]`` is ``(x, y, diameter_px)`` of image ``i``.  Craters whose centre is within 0.5 R
    of the edge, or with fewer than 30 % of the pixels out to 3 R inside the image, are skipped.
    """
    acc = {b: {"west": [], "east": [], "n": 0} for b in D_BINS_KM}
    for img, (xs, ys, ds) in zip(images, craters):
        ny, nx = img.shape
        for x, y, d in zip(xs, ys, ds):
            dkm = d * km_per_px
            b = next((b for b in D_BINS_KM if b[0] <= dkm < b[1]), None)
            if b is None:
                continue
            rad = d / 2
            if not (-0.5 * rad < x < nx - 1 + 0.5 * rad and -0.5 * rad < y < ny - 1 + 0.5 * rad):
                continue
            c0, c1 = max(int(x - 3 * rad), 0), min(int(x + 3 * rad) + 2, nx)
            r0, r1 = max(int(y - 3 * rad), 0), min(int(y + 3 * rad) + 2, ny)
            win = img[r0:r1, c0:c1]
            dx = np.arange(c0, c1)[None, :] - x
            dy = np.arange(r0, r1)[:, None] - y
            rr = np.hypot(dx, dy) / rad
            ok = (win > 0) & (rr < 3.0)
            if ok.sum() < 0.3 * np.pi * 9 * rad * rad:
                continue
            plain = win[ok & (rr >= 2.0)]
            if plain.size < 10:
                continue
            rel = win - np.median(plain)
            idx = np.digitize(rr, R_EDGES) - 1
            for side, sel in (("west", dx < 0), ("east", dx > 0)):
                m = ok & np.broadcast_to(sel, rr.shape)
                s = np.bincount(idx[m], rel[m], minlength=R_MID.size)[: R_MID.size]
                n = np.bincount(idx[m], minlength=R_MID.size)[: R_MID.size]
                with np.errstate(invalid="ignore", divide="ignore"):
                    acc[b][side].append(s / n)
            acc[b]["n"] += 1
    out = {}
    for b, a in acc.items():
        out[b] = {
            "n": a["n"],
            "west": np.nanmean(a["west"], axis=0) if a["west"] else np.full(R_MID.size, np.nan),
            "east": np.nanmean(a["east"], axis=0) if a["east"] else np.full(R_MID.size, np.nan),
        }
    return out


def background_texture(images: list[np.ndarray], craters: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Median per-chip band-pass amplitude (DN) on pixels at least 1.5 R from every crater."""
    out: dict[str, list[float]] = {k: [] for k in BANDS}
    for img, (xs, ys, ds) in zip(images, craters):
        valid = img > 0
        fill = np.where(valid, img, img[valid].mean())
        mask = valid.copy()
        yy, xx = np.indices(img.shape)
        for x, y, d in zip(xs, ys, ds):
            rad = 1.5 * d / 2
            r0, r1 = max(int(y - rad), 0), min(int(y + rad) + 2, img.shape[0])
            c0, c1 = max(int(x - rad), 0), min(int(x + rad) + 2, img.shape[1])
            if r0 < r1 and c0 < c1:
                mask[r0:r1, c0:c1] &= (yy[r0:r1, c0:c1] - y) ** 2 + (xx[r0:r1, c0:c1] - x) ** 2 > rad * rad
        mask = ndimage.binary_erosion(mask, iterations=2)
        if mask.mean() < 0.2:
            continue
        for k, (s1, s2) in BANDS.items():
            band = ndimage.gaussian_filter(fill, s1) - ndimage.gaussian_filter(fill, s2)
            out[k].append(float(band[mask].std()))
    return {k: round(float(np.median(v)), 2) for k, v in out.items()}


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


def real_chips(folder: Path) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    from marscraters.chips import read_chips

    chips = read_chips(folder)
    cr = chips.craters
    lab = []
    for i in range(len(chips)):
        c = cr[cr["chip"] == i]
        lab.append((c["x"].to_numpy(), c["y"].to_numpy(), c["diameter_px"].to_numpy()))
    return list(chips.images), lab


def synthetic_surfaces(ages: list[float], seed0: int, side_deg: float = 1.5) -> list:
    from marscraters.synthetic import synthetic_surface

    return [synthetic_surface((30.0, -side_deg, 30.0 + side_deg, 0.0), PPD, age_ga=a, seed=seed0 + i)
            for i, a in enumerate(ages)]


def surface_arrays(surfaces: list) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    imgs, labs = [], []
    for s in surfaces:
        imgs.append(np.nan_to_num(s.mosaic["ir"].values, nan=0.0))
        c = s.catalog
        labs.append((c["x"].to_numpy(float), c["y"].to_numpy(float), c["diameter_km"].to_numpy(float) / KM_PER_PX))
    return imgs, labs


def windows(imgs: list[np.ndarray], per: int = 4, size: int = 416) -> list[np.ndarray]:
    out = []
    for a in imgs:
        ny, nx = a.shape
        for j in range(per):
            y0 = (j // 2) * (ny - size)
            x0 = (j % 2) * (nx - size)
            out.append(a[y0 : y0 + size, x0 : x0 + size])
    return out


def detector_check(ages=(2.0, 3.4), seeds=(77, 78), tile: int = 2048) -> list[dict]:
    import marscraters.accessor  # noqa: F401
    from marscraters.evaluate import evaluate
    from marscraters.synthetic import synthetic_surface

    side = tile / PPD
    rows = []
    for age in ages:
        for seed in seeds:
            west = 60.0 + 5 * seed % 90
            s = synthetic_surface((west, -side / 2, west + side, side / 2), PPD, age_ga=age, seed=seed)
            t0 = time.perf_counter()
            det = s.mosaic.craters.catalog(progress=False)
            res = evaluate(det, s.catalog, d_min=1.6)
            rows.append({"age": age, "seed": seed, "n_truth>=1.6km": res.n_truth, "n_det>=1.28km": res.n_pred,
                         "precision": round(res.precision, 3), "recall": round(res.recall, 3),
                         "F1": round(res.f1, 3), "detect_s": round(time.perf_counter() - t0, 1)})
            print(rows[-1], flush=True)
    return rows


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------


def plot_profiles(real: dict, syn: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from marscraters._io import atomic_path

    fig, axes = plt.subplots(1, len(D_BINS_KM), figsize=(14, 4.2), constrained_layout=True, sharey=True)
    for ax, b in zip(axes, D_BINS_KM):
        for prof, style, name in ((real, "-", "real"), (syn, "--", "synthetic")):
            p = prof[b]
            ax.plot(R_MID, p["west"], style, color="tab:blue", label=f"{name} west half (n={p['n']})")
            ax.plot(R_MID, p["east"], style, color="tab:red", label=f"{name} east half")
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(1, color="0.6", lw=0.8, ls=":")
        ax.set_title(f"craters {b[0]:g}-{b[1]:g} km")
        ax.set_xlabel("r / R")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("brightness - plain at 2-3 R (DN)")
    fig.suptitle("Mean crater brightness profiles: real THEMIS Day IR (Robbins labels) vs synthetic (true catalog)")
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def plot_side_by_side(folder: Path, shown: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from marscraters._io import atomic_path

    ages = [1.0, 3.0, 3.7]
    syn = [np.nan_to_num(s.mosaic["ir"].values, nan=0.0)[20:436, 20:436] for s in synthetic_surfaces(ages, 7, 0.75)]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4), constrained_layout=True)
    for ax, i in zip(axes[0], shown):
        im = np.asarray(Image.open(folder / "images" / f"crater{i}.jpg").convert("L"), dtype=np.float32)
        ax.imshow(im, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"real THEMIS Day IR, crop {i}")
    for ax, chip, age in zip(axes[1], syn, ages):
        ax.imshow(chip, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"synthetic, {age} Ga")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("416 x 416 px at ~100 m/px (41.6 km across); Sun from the west (left)")
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("MARSCRATERS_SHARED_DATA", REPO / ".." / "shared" / "data")) / "themis-dayir-crops"
    p.add_argument("--data", type=Path, default=default_data)
    p.add_argument("--figures", type=Path, default=REPO / "docs" / "figures")
    p.add_argument("--real", type=int, nargs=3, default=[57, 250, 480], help="crop numbers shown")
    p.add_argument("--detector", action="store_true", help="also score the shipped model on 2.0/3.4 Ga surfaces")
    p.add_argument("--no-figures", action="store_true")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    r_imgs, r_lab = real_chips(args.data)
    surfaces = synthetic_surfaces(SYN_AGES, seed0=100, side_deg=3.0)
    s_imgs, s_lab = surface_arrays(surfaces)
    t_gen = time.perf_counter() - t0

    real_stats = chip_stats(r_imgs[::10])
    syn_stats = chip_stats(windows(s_imgs))
    print("1. median per-chip statistics (DN)")
    print(f"{'':10s}" + "".join(f"{k:>11s}" for k in real_stats))
    print(f"{'real':10s}" + "".join(f"{v:11.2f}" for v in real_stats.values()))
    print(f"{'synthetic':10s}" + "".join(f"{v:11.2f}" for v in syn_stats.values()))

    rp = crater_profiles(r_imgs, r_lab)
    sp = crater_profiles(s_imgs, s_lab)
    print("\n2. crater profiles: brightness - plain (DN) at r/R, west half | east half")
    at = [0.15, 0.45, 0.75, 0.95, 1.15, 1.45, 1.95]
    ii = [int(np.argmin(abs(R_MID - a))) for a in at]
    print(f"{'':22s}" + "".join(f"{a:>6.2f}" for a in at) + "  |" + "".join(f"{a:>6.2f}" for a in at))
    for b in D_BINS_KM:
        for name, prof in (("real", rp), ("synthetic", sp)):
            q = prof[b]
            print(f"{b[0]:g}-{b[1]:g} km {name:9s} n={q['n']:<4d}" + "".join(f"{q['west'][i]:6.1f}" for i in ii)
                  + "  |" + "".join(f"{q['east'][i]:6.1f}" for i in ii))
    # per-image crater counts: labelled craters >= 1.6 km per 1000 km²
    area_real = 416 * 416 * KM_PER_PX**2
    n_real = np.mean([np.sum(d * KM_PER_PX >= 1.6) for _, _, d in r_lab]) / area_real * 1000
    n_syn = np.mean([np.sum(d * KM_PER_PX >= 1.6) / (im.size * KM_PER_PX**2) for im, (_, _, d) in zip(s_imgs, s_lab)]) * 1000
    print(f"   craters >= 1.6 km per 1000 km²: real {n_real:.2f}, synthetic (0.5-3.7 Ga mix) {n_syn:.2f}")

    rt = background_texture(r_imgs[::5], r_lab[::5])
    st = background_texture(windows(s_imgs), _window_labels(s_lab, s_imgs))
    print("\n3. background texture: band-pass std (DN) away from craters, by wavelength")
    print(f"{'':10s}" + "".join(f"{k:>13s}" for k in rt))
    print(f"{'real':10s}" + "".join(f"{v:13.2f}" for v in rt.values()))
    print(f"{'synthetic':10s}" + "".join(f"{v:13.2f}" for v in st.values()))
    print(f"(synthetic surfaces generated in {t_gen:.1f} s incl. reading the real chips)")

    if not args.no_figures:
        plot_profiles(rp, sp, args.figures / "synthetic_crater_profiles.png")
        plot_side_by_side(args.data, args.real, args.figures / "synthetic_vs_real.png")
        print(f"wrote {args.figures / 'synthetic_crater_profiles.png'}, {args.figures / 'synthetic_vs_real.png'}")
    if args.detector:
        print("\n4. shipped model on synthetic surfaces (evaluate(detected, truth, d_min=1.6 km))")
        detector_check()
    return 0


def _window_labels(labs: list, imgs: list[np.ndarray], per: int = 4, size: int = 416) -> list:
    """Crater labels shifted into the windows of :func:`windows`."""
    out = []
    for (x, y, d), a in zip(labs, imgs):
        ny, nx = a.shape
        for j in range(per):
            y0 = (j // 2) * (ny - size)
            x0 = (j % 2) * (nx - size)
            out.append((x - x0, y - y0, d))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
