"""Tests of marscraters.cluster on a real local Dask cluster (worker processes, no mocks)."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from marscraters import model as mm
from marscraters import segment as sg
from marscraters.cluster import ModelPreload, _gpu_cluster, cluster, compute_slots, cpu_count, detect_gpus, tune_malloc
from marscraters.errors import ClusterError, InvalidArgumentError
from marscraters.mosaic import ingest, mosaic_from_array, open_mosaic

keras = pytest.importorskip("keras")
distributed = pytest.importorskip("distributed")

SHAPE = (1024, 1280)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    keras.utils.set_random_seed(11)
    model = mm.symmetric_unet(filter_multiple=0.25, name="tiny")
    return str(mm.save_model(model, tmp_path_factory.mktemp("model") / "tiny.keras"))


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    rng = np.random.default_rng(5)
    img = (rng.random(SHAPE) * 255).astype(np.float32)
    path = tmp_path_factory.mktemp("cube") / "cube.zarr"
    ingest(mosaic_from_array(img, (0, 0, 5, 4)), path, chunk=256, progress=False)
    return path


@pytest.fixture(scope="module")
def client_and_log():
    """Two single-threaded worker processes, asked for GPUs this machine does not have."""
    handler = _Records()
    logger = logging.getLogger("marscraters.cluster")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        client = cluster(gpus=2, n_workers=2, threads_per_worker=1, memory_limit="4GiB")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    yield client, handler.records
    local = client.cluster
    client.close()
    local.close()


@pytest.fixture(scope="module")
def threaded_result(cube, tiny_model_path):
    return sg.segment(open_mosaic(cube), tiny_model_path, chunks=512).compute(scheduler="threads").values


# ------------------------------------------------------------------------------- choice of cluster
def test_no_gpu_falls_back_to_a_logged_cpu_cluster(client_and_log):
    client, records = client_and_log
    if detect_gpus() > 0:  # pragma: no cover - a GPU machine
        pytest.skip("this machine has GPUs")
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any("no GPU found" in m and "CPU LocalCluster" in m for m in warnings)
    info = client.scheduler_info()["workers"]
    assert len(info) == 2 and all(w["nthreads"] == 1 for w in info.values())
    # each worker's backend gets its share of the 2+ cores, not all of them
    shares = client.run(lambda: os.environ.get("TF_NUM_INTRAOP_THREADS"))
    assert set(shares.values()) == {str(max(1, (len(os.sched_getaffinity(0))) // 2))}
    # glibc's malloc thresholds, which dask's own setting would make return and re-fault every large
    # temporary array, are set in every worker (by the MallocTuning plugin)
    assert set(client.run(lambda dask_worker: dask_worker.plugins["marscraters-malloc"].tuned).values()) == {True}


def test_compute_slots_counts_the_workers_threads_not_the_clients_cores():
    # a cluster whose workers have more threads than this machine has cores (as a remote one may):
    # the catalog's windows decide whether to search their tiles side by side from these
    threads = cpu_count() + 3
    with distributed.LocalCluster(n_workers=1, threads_per_worker=threads, processes=False,
                                  dashboard_address=None) as local, distributed.Client(local) as client:
        assert compute_slots() == threads
        assert sum(client.nthreads().values()) == threads


def test_tune_malloc_sets_known_parameters_and_refuses_nothing_here():
    assert tune_malloc() is True  # glibc (Linux CI); the values are glibc's own ceilings
    assert tune_malloc({}) is True
    with pytest.raises(KeyError):
        tune_malloc({"M_NO_SUCH_PARAMETER": 1})


def test_missing_dask_cuda_is_logged_not_raised():
    try:
        import dask_cuda  # noqa: F401
    except Exception:  # noqa: BLE001 - what this test is about
        pass
    else:  # pragma: no cover
        pytest.skip("dask-cuda is installed here")
    handler = _Records()
    logger = logging.getLogger("marscraters.cluster")
    logger.addHandler(handler)
    try:
        assert _gpu_cluster(1, None) is None
    finally:
        logger.removeHandler(handler)
    text = " ".join(r.getMessage() for r in handler.records if r.levelno == logging.WARNING)
    assert "dask-cuda" in text and "CPU LocalCluster" in text


def test_unreachable_scheduler_names_the_address():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(ClusterError, match=f"{address}.*within 1 s"):
        cluster(scheduler=address, timeout=1)


def test_marscraters_cluster_is_callable_even_as_the_imported_submodule():
    import marscraters
    import marscraters.cluster as module

    assert marscraters.cluster is module or marscraters.cluster is cluster
    with pytest.raises(InvalidArgumentError, match="gpus"):
        marscraters.cluster(gpus="many")


@pytest.mark.parametrize(
    "kwargs",
    [{"gpus": "many"}, {"gpus": -1}, {"n_workers": 0}, {"threads_per_worker": 1.5}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(InvalidArgumentError):
        cluster(**kwargs)


# ------------------------------------------------------------------------------- running on it
def test_distributed_run_equals_the_threaded_result(client_and_log, cube, tiny_model_path, threaded_result, tmp_path):
    client, _ = client_and_log
    out = sg.segment_to_zarr(open_mosaic(cube), tmp_path / "pred.zarr", model=tiny_model_path, chunks=512, client=client, progress=False)
    got = xr.open_zarr(out, consolidated=False)
    assert got.attrs["segment_summary"]["scheduler"] == "distributed"
    np.testing.assert_allclose(got["crater_probability"].values, threaded_result, atol=1e-6, rtol=0)


def test_model_is_loaded_once_per_worker(client_and_log, cube, tiny_model_path, tmp_path):
    client, _ = client_and_log
    for name in ("a.zarr", "b.zarr"):
        sg.segment_to_zarr(open_mosaic(cube), tmp_path / name, model=tiny_model_path, chunks=512, client=client, progress=False)
    path = str(Path(tiny_model_path).resolve())
    info = client.run(sg._cache_info)
    assert len(info) == 2
    # preloaded by the worker plugin on both workers, then reused by every block of both runs
    assert all(w["loads"].get(path) == 1 for w in info.values())
    assert sum(w["blocks"] for w in info.values()) >= 2 * 4
    plugins = client.run(lambda dask_worker: list(dask_worker.plugins))
    assert all(f"marscraters-model-{path}" in names for names in plugins.values())
    assert isinstance(ModelPreload(path), distributed.WorkerPlugin)


@pytest.mark.slow
def test_a_worker_that_dies_mid_run_is_replaced_and_the_result_is_complete(
    client_and_log, cube, tiny_model_path, threaded_result, tmp_path
):
    """The first read of one block kills its worker process (os._exit); the run still completes."""
    client, _ = client_and_log
    marker = tmp_path / "died"

    def die_once(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 0) and not marker.exists():
            marker.touch()
            os._exit(1)
        return block

    ds = open_mosaic(cube)
    ir = ds["ir"].data.map_blocks(die_once, dtype=np.float32, meta=np.empty((0, 0), np.float32))
    fragile = ds.copy()
    fragile["ir"] = ds["ir"].copy(data=ir)
    pids_before = set(client.run(os.getpid).values())
    out = sg.segment_to_zarr(fragile, tmp_path / "pred.zarr", model=tiny_model_path, chunks=512, client=client, progress=False)
    assert marker.exists()  # a worker really died
    assert set(client.run(os.getpid).values()) != pids_before  # and the nanny replaced it
    got = xr.open_zarr(out, consolidated=False)["crater_probability"].values
    np.testing.assert_allclose(got, threaded_result, atol=1e-6, rtol=0)
    assert isinstance(ir, da.Array)
