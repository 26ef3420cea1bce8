"""Get THEMIS Day IR tiles and the Robbins crater catalog: cached, resumable downloads.

Mirrors docs/guide/data.md.  Usage::

    python examples/download.py [--tile N-30_030] [--release 2012] [--out DIR] [--fast]

Without --fast it downloads from the real servers (ASU for the tiles, the Robbins catalog's own
site) into ``--out``.  With --fast nothing leaves the machine: it writes a tiny tile and a tiny
zipped Robbins table, serves them from a local HTTP "mirror" on 127.0.0.1, and downloads them
from there through the same code path (``base_url=``, like ``$MARSCRATERS_THEMIS_URL``).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import threading
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

import marscraters as mc
from marscraters.download import (
    ROBBINS_RELEASES,
    download_robbins,
    download_themis,
    registry,
    themis_tile_name,
    themis_tile_url,
)


def make_mirror(folder: Path, tile: str, release: str) -> None:
    """A folder laid out like the real servers: a (small) tile PNG and a zipped Robbins table."""
    folder.mkdir(parents=True, exist_ok=True)
    grey = np.random.default_rng(0).integers(1, 255, (240, 240), dtype=np.uint8)  # real tiles: 7680 x 7680
    Image.fromarray(grey).save(folder / themis_tile_name(tile))
    entry = ROBBINS_RELEASES[release]
    table = (
        "CRATER_ID\tLATITUDE_CIRCLE_IMAGE\tLONGITUDE_CIRCLE_IMAGE\tDIAM_CIRCLE_IMAGE\n"
        "01-000001\t-15.20\t35.10\t12.4\n"
        "01-000002\t-14.05\t41.72\t3.1\n"
        "01-000003\t-29.90\t59.50\t1.6\n"
    )
    with zipfile.ZipFile(folder / entry.filename, "w") as zf:
        zf.writestr(entry.member or "RobbinsCraters_20121016.tsv", table)


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``folder`` on 127.0.0.1 at a free port, from a background thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the example's output readable
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tile", default="N-30_030", help="THEMIS tile id (south edge, west edge)")
    p.add_argument("--release", default="2012", choices=sorted(ROBBINS_RELEASES))
    p.add_argument("--out", default="example-out")
    p.add_argument("--fast", action="store_true", help="a local mirror with tiny files, no internet")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print("tile file:", themis_tile_name(args.tile), "from", themis_tile_url(args.tile))
    print(registry("robbins")[["key", "filename", "zipped"]].to_string(index=False))

    server = None
    themis_url = robbins_url = None  # None: the real servers (or $MARSCRATERS_*_URL)
    if args.fast:
        make_mirror(out / "mirror", args.tile, args.release)
        server, themis_url = serve(out / "mirror")
        robbins_url = themis_url
    try:
        cache = out / "cache"
        tile = download_themis(args.tile, dest=cache / "themis", base_url=themis_url)
        again = download_themis(args.tile, dest=cache / "themis", base_url=themis_url)  # cached: no request
        assert again == tile
        table = download_robbins(args.release, dest=cache / "robbins", base_url=robbins_url)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()

    ds = mc.read_themis_tile(tile)  # georeferenced from the tile's name
    print(f"{tile.name}: {ds.sizes['y']} x {ds.sizes['x']} px, bounds {ds.rio.bounds()}")
    robbins = mc.read_catalog(table)
    print(f"{table.name}: {len(robbins)} craters, format {robbins.attrs['format']}")
    print(robbins[["crater_id", "lat", "lon", "diameter_km"]].head())


if __name__ == "__main__":
    main()
