"""Craters cut by the image's edge: how many get a candidate, and would a masked correlation help? (a diagnostic)

Run: ``python benchmarks/edge_craters.py [--json docs/results/edge_craters.json]``

On the 724 quadrangle crops (416 px, new ground for the shipped network), a Robbins crater >= 16 px
whose circle crosses the crop's edge is *cut* (its centre stays inside: the crops' truths are the
craters centred in them).  For cut and whole craters apart, this reports the share that get a
candidate at the verifier's low thresholds (``verify.CANDIDATE_OPTIONS``; DeepMoon rule), by
diameter, with the circle finder as shipped and with one change: a *masked* normalised
correlation, which near the edge compares the template with the map over the part of its window
inside the image only, instead of reading the outside as background (zero).  Away from the edge
the two are the same correlation.  Nothing is chosen from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quadrangles import load_crops  # noqa: E402

BINS = (16, 32, 64, 128, np.inf)


def masked_ncc_bank(img: np.ndarray, templates: list[np.ndarray]) -> list[np.ndarray]:
    """``extract._ncc_bank``'s correlations, over the part of each window inside the image.

    With ``V`` the template's pixels that fall inside the image at a position and ``N = |V|``:
    ``(sum_V I T - sum_V I sum_V T / N) / sqrt((sum_V I^2 - (sum_V I)^2 / N) (sum_V T^2 - (sum_V T)^2 / N))``.
    The image's sums are the zero-padded ones; the template's over ``V`` come from its own
    summed-area tables, since ``V`` is a rectangle of it.
    """
    from scipy import signal

    img = np.asarray(img, np.float64)
    ny, nx = img.shape
    y, x = np.arange(ny), np.arange(nx)
    sums: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    out = []
    for tpl in templates:
        tpl = np.asarray(tpl, np.float64)
        m, n = tpl.shape
        xcorr = signal.correlate(img, tpl, mode="same", method="fft")
        if (m, n) not in sums:
            box = np.ones((m, n))
            sums[m, n] = (signal.correlate(img, box, mode="same", method="fft"),
                          signal.correlate(img * img, box, mode="same", method="fft"))
        s1, s2 = sums[m, n]
        # the rows i0..i1 and columns j0..j1 of the template that fall inside the image
        i0, i1 = np.clip(m // 2 - y, 0, m), np.clip(ny - y + m // 2, 0, m)
        j0, j1 = np.clip(n // 2 - x, 0, n), np.clip(nx - x + n // 2, 0, n)

        count = np.outer(i1 - i0, j1 - j0).astype(float)
        st, st2 = (_rect_sums(v, (i0, i1), (j0, j1)) for v in (tpl, tpl * tpl))
        den = np.sqrt(np.maximum(s2 - s1 * s1 / count, 0) * np.maximum(st2 - st * st / count, 0))
        ok = den > 1e-6
        out.append(np.where(ok, (xcorr - s1 * st / count) / np.where(ok, den, 1.0), 0.0).astype(np.float32))
    return out


def _rect_sums(values: np.ndarray, rows: tuple[np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``values[rows[0][y]:rows[1][y], cols[0][x]:cols[1][x]].sum()`` at every (y, x), by a summed-area table."""
    (i0, i1), (j0, j1) = rows, cols
    sat = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    sat[1:, 1:] = values.cumsum(0).cumsum(1)
    return sat[np.ix_(i1, j1)] - sat[np.ix_(i0, j1)] - sat[np.ix_(i1, j0)] + sat[np.ix_(i0, j0)]


def recall_table(cands: list[pd.DataFrame], truths: list[pd.DataFrame], size: int) -> dict:
    """Share of the craters >= 16 px with a candidate, for cut and whole craters, by diameter."""
    from marscraters.evaluate import match_craters

    rows = []
    for c, t in zip(cands, truths):
        t = t[t["diameter_px"] >= 16].reset_index(drop=True)
        if not len(t):
            continue
        hit = set(match_craters(c[["x", "y", "diameter_px"]], t[["x", "y", "diameter_px"]])["truth_index"].astype(int))
        r = t["diameter_px"] / 2
        cut = (t["x"] - r < 0) | (t["y"] - r < 0) | (t["x"] + r > size) | (t["y"] + r > size)
        rows += [(d, i in hit, bool(k)) for i, (d, k) in enumerate(zip(t["diameter_px"], cut))]
    df = pd.DataFrame(rows, columns=["d", "hit", "cut"])
    df["bin"] = pd.cut(df["d"], BINS, right=False)
    table: dict = {"candidates_per_crop": round(sum(len(c) for c in cands) / len(cands), 2)}
    for name, part in (("cut", df[df["cut"]]), ("whole", df[~df["cut"]])):
        table[name] = {"craters": int(len(part)), "with_candidate": round(float(part["hit"].mean()), 4),
                       "by_diameter_px": {f"{b.left:g}-{b.right:g}": [int(len(g)), round(float(g["hit"].mean()), 4)]
                                          for b, g in part.groupby("bin", observed=True)}}
    return table


def main(argv: list[str] | None = None) -> dict:
    import marscraters.extract as ex
    from marscraters.detect import model_info
    from marscraters.extract import extract_craters
    from marscraters.model import load_model, normalise_image
    from marscraters.training import predict_stack
    from marscraters.verify import CANDIDATE_OPTIONS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, default=1, help="use every k-th crop (default: all 724)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    images, truths, _ = load_crops()
    pick = np.arange(0, len(images), args.every)
    model, info = load_model(None), model_info(None)
    norm = np.stack([normalise_image(images[i], value_range=(0, 255)) for i in pick]).astype(np.float32)
    probs = np.concatenate([predict_stack(model, norm[k:k + 32]) for k in range(0, len(norm), 32)])
    report = {"date": time.strftime("%Y-%m-%d"), "model": info.get("name"), "crops": int(len(pick)),
              "candidates": CANDIDATE_OPTIONS, "finders": {}}
    shipped = ex._ncc_bank
    for name, bank in (("zero-padded (shipped)", shipped), ("masked at the edge", masked_ncc_bank)):
        ex._ncc_bank = bank
        try:
            t0 = time.perf_counter()
            cands = [extract_craters(m, target=info["kind"], **CANDIDATE_OPTIONS) for m in probs]
            seconds = time.perf_counter() - t0
        finally:
            ex._ncc_bank = shipped
        report["finders"][name] = {**recall_table(cands, [truths[i] for i in pick], images.shape[-1]),
                                   "seconds": round(seconds, 1)}
        print(name, json.dumps(report["finders"][name]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
