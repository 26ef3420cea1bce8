"""Segmentation pipeline: throughput against raw ``model.predict``, and peak memory against mosaic size.

Run::

    python benchmarks/bench_segment.py [--size 4096] [--filter-multiple 1.0] [--memory-sizes 2048 4096]
                                       [--memory-chunk 1024] [--rounds 2] [--skip-layouts]

1. **Throughput**, one process, one random-weight model, one synthetic ``size``² image (also
   ingested as a Zarr cube, 512² storage chunks), each setting warmed up, best of ``--rounds``:

   * *raw*: ``model.predict_on_batch`` on the in-memory image cut into 512² tiles without any
     halo, in batches of 4 (the FINDINGS definition of raw throughput; its tile seams are wrong);
   * *exact in memory*: ``predict_image(model, image)`` -- the same exact result as the pipeline,
     from memory, in one process;
   * *pipeline*: ``segment()`` of the Zarr cube computed on a CPU ``LocalCluster`` from
     :func:`marscraters.cluster.cluster` (``client.compute(prob).result()``), and
     ``segment_to_zarr`` on it (reads the cube, writes the Zarr output); the same with
     ``depth=128`` (approximate at block borders) for scale;
   * the CPU layouts: 1 worker x 2 threads (default) against 2 workers x 1 thread.

   Ratios are Mpx/s of the image (not of the windows) over raw.

2. **Memory**: ``segment_to_zarr`` of two cubes whose areas differ 4x, each in a fresh child
   process (threaded scheduler, so all the work is in that process), with the same inference
   blocks (``--memory-chunk``).  Peak RSS is the child's ``VmHWM``; the ratio large/small should
   stay near 1 (memory does not grow with the mosaic).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

MEMORY_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from marscraters.mosaic import open_mosaic
    from marscraters.segment import segment_to_zarr
    cube, out, model, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t = time.perf_counter()
    segment_to_zarr(open_mosaic(cube), out, model=model, chunks=chunk, progress=False)
    wall = time.perf_counter() - t
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(json.dumps({"peak_mib": int(hwm) / 1024, "wall_s": wall}))
    """
)

MAKE_CUBE_CHILD = textwrap.dedent(
    """
    import sys
    import dask.array as da
    from marscraters.mosaic import ingest, mosaic_from_array
    n = int(sys.argv[2])
    img = da.random.default_rng(0).random((n, n), chunks=1024, dtype="float32") * 255
    ingest(mosaic_from_array(img, (0, 0, n / 256, n / 256)), sys.argv[1], chunk=512, progress=False)
    """
)


def _raw_tiles(model, image: np.ndarray, tile: int = 512, batch: int = 4) -> np.ndarray:
    """Raw throughput: 512² tiles without halo, batches of 4, straight into predict_on_batch."""
    from marscraters.model import crop, pad_to_multiple

    padded, slices = pad_to_multiple(image.astype(np.float32) / 255.0, tile)
    ny, nx = padded.shape
    tiles = [(r, c) for r in range(0, ny, tile) for c in range(0, nx, tile)]
    out = np.empty_like(padded)
    for i in range(0, len(tiles), batch):
        part = tiles[i : i + batch]
        stack = np.stack([padded[r : r + tile, c : c + tile] for r, c in part])[..., None]
        if len(part) < batch:
            stack = np.concatenate([stack, np.zeros((batch - len(part),) + stack.shape[1:], np.float32)])
        pred = np.asarray(model.predict_on_batch(stack))
        for k, (r, c) in enumerate(part):
            out[r : r + tile, c : c + tile] = pred[k, ..., 0]
    return crop(out, slices)


def _best(fn, rounds: int) -> float:
    fn()  # warm-up: traces the predict functions
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def throughput(args: argparse.Namespace, tmp: Path) -> None:
    import keras

    from marscraters.cluster import cluster
    from marscraters.model import flops_per_pixel, predict_image, save_model, symmetric_unet
    from marscraters.mosaic import ingest, mosaic_from_array, open_mosaic
    from marscraters.segment import segment, segment_to_zarr

    n = args.size
    keras.utils.set_random_seed(0)
    model = symmetric_unet(filter_multiple=args.filter_multiple)
    path = str(save_model(model, tmp / "model.keras"))
    rng = np.random.default_rng(0)
    image = (rng.random((n, n)) * 255).astype(np.float32)
    cube = tmp / "cube.zarr"
    ingest(mosaic_from_array(image, (0, 0, n / 256, n / 256)), cube, chunk=512, progress=False)
    mpx = n * n / 1e6
    print(f"image {n}x{n} ({mpx:.1f} Mpx), filter_multiple {args.filter_multiple}, {flops_per_pixel(model):.0f} FLOP/px, "
          f"{os.cpu_count()} CPUs")
    rows: list[tuple[str, float]] = []

    rows.append(("raw predict_on_batch, 512² tiles, no halo, batch 4", _best(lambda: _raw_tiles(model, image), args.rounds)))
    rows.append(("predict_image(model, image) in memory (exact)", _best(lambda: predict_image(model, image), args.rounds)))
    if not args.skip_whole:
        # the literal reading of "raw model.predict on the in-memory image": one call on the whole
        # image (exact, no seams, but its activations must fit in memory: ~1 GB per level-0 map at 4096²)
        whole = (image / 255.0)[None, ..., None]
        rows.append(("raw model.predict on the whole image, one call", _best(
            lambda: model.predict(whole, batch_size=1, verbose=0), args.rounds)))

    layouts = [("1 worker x 2 threads (default)", dict(gpus=0, n_workers=1, threads_per_worker=2))]
    if args.gpus:
        # one worker per GPU (the paper's layout); the default's label and extras go with it
        layouts = [(f"{args.gpus} GPU worker(s) x 2 threads (default)", dict(gpus=args.gpus, threads_per_worker=2))]
    elif not args.skip_layouts:
        layouts.append(("2 workers x 1 thread", dict(gpus=0, n_workers=2, threads_per_worker=1)))
    exact = predict_image(model, image)
    for label, kw in layouts:
        client = cluster(model=path, **kw)
        kind = type(client.cluster).__name__
        print(f"{label}: {kind} with {len(client.scheduler_info()['workers'])} worker(s)")
        try:
            ds = open_mosaic(cube)
            prob = segment(ds, path)
            # the pipeline must give the in-memory result (same device, so only float round-off)
            diff = float(np.nanmax(np.abs(client.compute(prob.data).result() - exact)))
            print(f"  max |segment() - predict_image()| = {diff:.2e}")
            rows.append((f"segment() on {kind} {label}, computed", _best(lambda: client.compute(prob.data).result(), args.rounds)))
            if label.endswith("(default)"):
                k = iter(range(100))

                def to_zarr() -> None:
                    segment_to_zarr(ds, tmp / f"pred{next(k)}.zarr", model=path, client=client, progress=False)

                rows.append((f"segment_to_zarr on {kind} {label}", _best(to_zarr, args.rounds)))
                approx = segment(ds, path, depth=128)
                rows.append((f"segment(depth=128) on {kind}, computed (approx. at borders)",
                             _best(lambda: client.compute(approx.data).result(), args.rounds)))
        finally:
            local = client.cluster
            client.close()
            local.close()

    raw = rows[0][1]
    whole = dict(rows).get("raw model.predict on the whole image, one call")
    extra = " vs whole-image predict |" if whole else ""
    print(f"\n| setting | time | Mpx/s | vs raw tiles |{extra}\n|---|---|---|---|{'---|' if whole else ''}")
    for label, secs in rows:
        tail = f" {whole / secs:.2f} |" if whole else ""
        print(f"| {label} | {secs:.2f} s | {mpx / secs:.2f} | {raw / secs:.2f} |{tail}")


def memory(args: argparse.Namespace, tmp: Path) -> None:
    import keras

    from marscraters.model import save_model, symmetric_unet

    keras.utils.set_random_seed(0)
    path = str(save_model(symmetric_unet(filter_multiple=args.filter_multiple), tmp / "model_mem.keras"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results = []
    for n in args.memory_sizes:
        cube = tmp / f"cube{n}.zarr"
        subprocess.run([sys.executable, "-c", MAKE_CUBE_CHILD, str(cube), str(n)], check=True, env=env)
        res = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(cube), str(tmp / f"mem{n}.zarr"), path, str(args.memory_chunk)],
            check=True, env=env, capture_output=True, text=True,
        )
        info = json.loads(res.stdout.strip().splitlines()[-1])
        results.append((n, info))
        shutil.rmtree(cube, ignore_errors=True)
        shutil.rmtree(tmp / f"mem{n}.zarr", ignore_errors=True)
    print(f"\nsegment_to_zarr peak memory, blocks of {args.memory_chunk} px, filter_multiple {args.filter_multiple}:")
    print("| mosaic | Mpx | peak RSS | wall |\n|---|---|---|---|")
    for n, info in results:
        print(f"| {n}x{n} | {n * n / 1e6:.1f} | {info['peak_mib']:.0f} MiB | {info['wall_s']:.1f} s |")
    (n0, a), (n1, b) = results[0], results[-1]
    print(f"area ratio {(n1 / n0) ** 2:.1f}x -> peak RSS ratio {b['peak_mib'] / a['peak_mib']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096, help="side of the throughput image (default 4096)")
    p.add_argument("--filter-multiple", type=float, default=1.0, help="model width (default 1.0, the paper's)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--memory-sizes", type=int, nargs=2, default=[2048, 4096], help="two mosaic sides, areas 4x apart")
    p.add_argument("--memory-chunk", type=int, default=512, help="inference block side for the memory runs (small enough that both mosaics have interior blocks)")
    p.add_argument("--skip-layouts", action="store_true", help="only the default CPU layout")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--gpus", type=int, default=0,
                   help="run the pipeline on a LocalCUDACluster of this many GPUs (one worker each) instead of CPUs")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-whole", action="store_true", help="skip the one-call whole-image predict baseline")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-segment-") as d:
        tmp = Path(d)
        if not args.skip_memory:  # first, while this process is small
            memory(args, tmp)
        if not args.skip_throughput:
            throughput(args, tmp)


if __name__ == "__main__":
    main()
