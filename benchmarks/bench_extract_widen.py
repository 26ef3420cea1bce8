"""The template circle finder with and without its widened scale bands, side by side in one process.

Run from the repository root::

    python benchmarks/bench_extract_widen.py [--chips 30] [--repeat 3] [--seeds 3 4 5]

Since 2026-11-26 (v7) each scale's band of radii is searched one radius further where the next scale
continues it (``extract._widen``), so that a circle at a band's edge gets a refined radius
instead of the edge radius itself (craters of 15-19 px used to come out as exactly 20 px).  This
script runs ``extract_craters(method="template")`` as it is and as it was before (``widen`` and
``to_ends`` switched off by patching), alternating ``--repeat`` times, on the
shipped model's maps of ``--chips`` real THEMIS crops (when ``../shared/data`` is present) and
on simulated 1024² outline maps, both at the verifier's low candidate thresholds.  It prints
the median seconds per map, the cost ratio, and how many circles sit exactly on a boundary
diameter between two scales with each.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import simulate_map  # noqa: E402
from bench_extract_template import real_maps  # noqa: E402

from marscraters import extract as ex  # noqa: E402
from marscraters.verify import CANDIDATE_OPTIONS  # noqa: E402


@contextlib.contextmanager
def unwidened() -> Iterator[None]:
    """The finder as before 2026-11-26: bands searched over their own radii only, end circles
    dropped only at the range's two ends, and radii refined without the rising-to-the-end rule."""
    saved = ex._multiscale, ex._refine
    ex._multiscale = lambda *args, **kwargs: saved[0](*args, **{**kwargs, "widen": False})
    ex._refine = lambda *args, **kwargs: saved[1](*args, **{**kwargs, "to_ends": False})
    try:
        yield
    finally:
        ex._multiscale, ex._refine = saved


def on_boundary(found: list, boundaries: list[float]) -> int:
    d = np.concatenate([f["diameter_px"].to_numpy() for f in found]) if found else np.zeros(0)
    return int(sum(np.sum(np.abs(d - b) < 1e-6) for b in boundaries))


def run(name: str, maps: list[np.ndarray], options: dict, repeat: int) -> None:
    times: dict[str, list[float]] = {"widened": [], "not widened": []}  # now / before the widening
    found: dict[str, list] = {}
    for _ in range(repeat):
        for mode in times:
            with unwidened() if mode == "not widened" else contextlib.nullcontext():
                t0 = time.perf_counter()
                found[mode] = [ex.extract_craters(m, **options) for m in maps]
                times[mode].append((time.perf_counter() - t0) / len(maps))
    # 2 x the smallest radius of every scale but the finest: where the pile-up was
    edges = [2 * lo for f, lo, _ in ex.scale_plan(5, 300)[1:]]
    t_new, t_old = (float(np.median(times[m])) for m in ("widened", "not widened"))
    n_new, n_old = (sum(len(f) for f in found[m]) for m in ("widened", "not widened"))
    print(f"| {name} | {t_old:.3f} | {t_new:.3f} | {t_new / t_old:.2f}× | {n_old} / {n_new} | "
          f"{on_boundary(found['not widened'], edges)} / {on_boundary(found['widened'], edges)} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", type=int, default=30, help="real THEMIS crops (0 to skip)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="*", default=[3, 4, 5], help="simulated 1024² outline maps")
    args = p.parse_args()
    low = {k: v for k, v in CANDIDATE_OPTIONS.items() if k != "min_score"}
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, Python {platform.python_version()}; "
          f"template finder at the candidates' thresholds, median of {args.repeat}\n")
    print("| maps | s/map, before | s/map, now | cost | circles (before / now) | "
          "at exactly a scale-boundary diameter (before / now) |")
    print("|---|---|---|---|---|---|")
    real = real_maps(args.chips)
    if real is not None:
        maps, opts = real
        run(f"shipped model on {len(maps)} THEMIS crops (416²)", maps, {"target": opts["target"], **low}, args.repeat)
    else:
        print("(../shared/data absent: no real crops)")
    if args.seeds:
        sims = [simulate_map("outline", s)[0] for s in args.seeds]
        run(f"simulated outline, {len(sims)} × 1024²", sims, {"target": "outline", **low}, args.repeat)


if __name__ == "__main__":
    main()
