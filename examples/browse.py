"""Browse a mosaic with its craters: the interactive Panel app and a static HTML page.

Mirrors docs/guide/browse.md.  Usage::

    python examples/browse.py [--out DIR] [--fast] [--serve]

It makes a synthetic THEMIS-like surface of known age, finds its craters with the shipped model,
and writes ``map.html``: the mosaic, the crater probability (toggle and opacity), the detected
craters coloured matched / false / missed against the true catalog, hover tooltips, and a CSFD.
With ``--serve`` it also serves the live app (re-aggregated on zoom) until Ctrl-C.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import marscraters as mc
from marscraters.browse import browse, save_html
from marscraters.synthetic import synthetic_surface


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="a small surface, for CI")
    p.add_argument("--serve", action="store_true", help="also serve the live app (blocks until Ctrl-C)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    size = 0.6 if args.fast else 2.0  # degrees at ~100 m/px
    surface = synthetic_surface((30.0, -size, 30.0 + size, 0.0), 592.747, age_ga=3.7, seed=5)
    ds = surface.mosaic
    prob = ds.craters.segment()                       # lazy; computed once for the catalog below
    detected = ds.craters.catalog(prob.compute(), progress=False)
    truth = mc.filter_catalog(surface.catalog, footprint=ds)
    print(f"{len(detected)} craters detected, {len(truth)} in the truth")

    app = browse(ds, catalog=detected, truth=truth, prob=prob, title="synthetic surface, 3.7 Ga")
    print(app)
    page = save_html(app, out / "map.html", overwrite=True, resolution=600 if args.fast else 1200)
    print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB, opens offline)")
    if args.serve:
        app.show()  # a Bokeh server on 127.0.0.1; the mosaic is re-aggregated on every zoom


if __name__ == "__main__":
    main()
