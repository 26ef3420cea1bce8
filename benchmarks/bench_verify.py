"""What the crater verifier costs: catalog extraction with and without it, side by side.

Run from the repository root::

    python benchmarks/bench_verify.py [--size 2048] [--rounds 2]

On a synthetic surface (3.5 Ga, ``--size``² px at the shipped model's 592.747 px/deg) the shipped
model segments once; then ``catalog_from_probability`` runs on the same probability map with
``verify=False`` (the one-stage circle finder) and with the shipped verifier, alternately, best
of ``--rounds``, on 512-px chunks (the windows and their halos included).  Prints seconds, craters, the ratio of the two, and both against the
segmentation time (what a whole mosaic pays per pixel).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
import time
import warnings


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)

    import dask

    import marscraters.accessor  # noqa: F401  (registers ds.craters)
    from marscraters.assemble import catalog_from_probability
    from marscraters.synthetic import synthetic_surface

    deg = args.size / 592.747
    surface = synthetic_surface((0.0, 0.0, deg, deg), 592.747, age_ga=3.5, seed=77)
    ds = surface.mosaic
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        prob = ds.craters.segment().compute()
    t_seg = time.perf_counter() - t0
    # 512-px chunks, as a Zarr store from segment_to_zarr has: the windows and halos are timed too
    prob = prob.chunk({"y": 512, "x": 512})
    best = {"one stage": float("inf"), "verified": float("inf")}
    found = {}
    for _ in range(args.rounds):
        for name, verify in (("one stage", False), ("verified", None)):
            t1 = time.perf_counter()
            with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
                # a silent fall-back to an unverified run (a UserWarning) would be mistimed
                warnings.filterwarnings("error", message=".*unverified.*")
                cat = catalog_from_probability(prob, mosaic=ds, verify=verify, progress=False)
            assert ("verifier" in cat.attrs["parameters"]) == (verify is None), "the verifier did not run"
            best[name] = min(best[name], time.perf_counter() - t1)
            found[name] = len(cat)
    print(f"{_dt.date.today()}, {platform.machine()}, {args.size}² px, best of {args.rounds}")
    print(f"segmentation: {t_seg:.1f} s")
    print("| extraction | seconds | craters | x segmentation time |\n|---|---|---|---|")
    for name in best:
        print(f"| {name} | {best[name]:.1f} | {found[name]} | {best[name] / t_seg:.2f} |")
    ratio = best["verified"] / best["one stage"]
    print(f"verified / one stage: {ratio:.2f}")
    return {"segment_s": t_seg, **best, "ratio": ratio}


if __name__ == "__main__":
    main()
