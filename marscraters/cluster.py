"""Dask clusters for segmentation: local GPUs, local CPUs, or an existing scheduler.

:func:`cluster` returns a ``distributed.Client``:

* with a scheduler address, it connects to that cluster (how several nodes are used: start the
  scheduler and workers with dask-jobqueue, Kubernetes or ``dask scheduler`` / ``dask worker``);
* with dask-cuda installed (the ``[gpu]`` extra) and GPUs present, a ``LocalCUDACluster`` with one
  worker per GPU, each pinned to its GPU through ``CUDA_VISIBLE_DEVICES``;
* otherwise a CPU ``LocalCluster``.  The fallback is logged (at WARNING when GPUs were asked for),
  never an error.

CPU layout.  One predict runs at a time per worker process (see :mod:`marscraters.segment`), and
the backend's intra-op thread pool spreads each predict over all the cores it is given.  The
default is therefore **one worker process with two threads**, whose predicts use every core while
the second thread reads and writes blocks; ``n_workers`` > 1 splits the cores between processes
(each worker's TensorFlow is then limited to its share, so the machine is not oversubscribed).
``benchmarks/bench_segment.py`` measures both layouts (see ``docs/benchmarks.md``).

The model is loaded once per worker: :func:`preload_model` registers a
:class:`ModelPreload` worker plugin that loads the model file into the per-process cache of
:mod:`marscraters.segment` as each worker starts (and on workers that join or restart later).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ClusterError, InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    import distributed

__all__ = ["cluster", "close_quietly", "detect_gpus", "preload_model", "ModelPreload", "MallocTuning", "cpu_count",
           "compute_slots", "active_client", "tune_malloc", "WORKER_MALLOPT"]

log = logging.getLogger("marscraters.cluster")


def cpu_count() -> int:
    """Cores this process may use (its CPU affinity where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def active_client() -> Any:
    """The distributed client this process computes with by default, or None (never raises)."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def compute_slots() -> int:
    """How many tasks run at once where dask computes now: the threads of the default client's
    workers, or this process's cores when there is no client (dask's threaded scheduler)."""
    client = active_client()
    if client is not None:
        try:
            threads = sum(int(n) for n in client.nthreads().values())
        except Exception:  # noqa: BLE001 - a closed or unreachable scheduler: dask fails later with its own error
            threads = 0
        if threads > 0:
            return threads
    return cpu_count()


def detect_gpus() -> int:
    """Number of NVIDIA GPUs visible to this process, 0 if none (never raises).

    Tries NVML (``pynvml``, which dask-cuda installs) and then ``nvidia-smi -L``; honours
    ``CUDA_VISIBLE_DEVICES``.
    """
    count = 0
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no pynvml, no driver (NVMLError_LibraryNotFound), no GPU
        exe = shutil.which("nvidia-smi")
        if exe is not None:
            try:
                res = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
                count = sum(1 for line in res.stdout.splitlines() if line.startswith("GPU "))
            except (OSError, subprocess.SubprocessError):
                count = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        count = min(count, len(ids))
    return count


def _dashboard() -> str | None:
    import importlib.util

    # the dashboard needs bokeh (the [viz] extra); without it distributed only warns
    return ":0" if importlib.util.find_spec("bokeh") is not None else None


def _connect(scheduler: str, timeout: float) -> "distributed.Client":
    from distributed import Client

    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s ({type(exc).__name__}: {exc}). "
            "Check the address (e.g. tcp://head-node:8786), that the scheduler is running and that its port "
            "is open from here; or leave out the scheduler (--scheduler) to start a local cluster."
        ) from exc


def close_quietly(client: Any) -> None:
    """Close ``client`` and the local cluster it started, after Ctrl-C: without distributed's
    log messages and tracebacks about the tasks and workers it stops (it stops them on purpose)."""
    local = getattr(client, "cluster", None)
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    if local is not None:
        # the workers too: one whose heartbeat meets the closing scheduler logs a traceback at
        # ERROR (which silence_logs lets through), from its own process
        with contextlib.suppress(BaseException):
            client.run(logging.disable, logging.CRITICAL, on_error="ignore")
    try:
        for thing in (client, local):
            if thing is None:
                continue
            try:
                thing.close(timeout=5) if thing is local else thing.close()
            except BaseException:  # noqa: BLE001 - a half-started or already dying cluster: nothing to add
                pass
    finally:
        logging.disable(previous)


def _start_local(factory: Any) -> Any:
    """``factory()``, a local cluster whose worker processes never see Ctrl-C.

    A terminal's Ctrl-C reaches every process of the command, and a worker process interrupted
    while it starts or computes prints its own traceback (and its cluster an AssertionError when
    closed).  So SIGINT is ignored while the cluster starts: the worker processes started then
    inherit that (an ignored signal stays ignored across ``exec``), and only this process answers
    Ctrl-C, by closing the cluster (:func:`close_quietly`).  A Ctrl-C during the start itself (a
    few seconds) is not seen; a worker restarted later by its nanny answers Ctrl-C again.
    """
    import signal
    import threading

    if not hasattr(signal, "SIGINT") or threading.current_thread() is not threading.main_thread():
        return factory()  # signal handlers can only be set from the main thread
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return factory()
    finally:
        signal.signal(signal.SIGINT, old)


#: glibc malloc parameters (``mallopt``) set in every worker process of the clusters :func:`cluster`
#: starts.  Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` for its workers: every free of a large
#: array at the top of the heap then hands its pages back, and the next array of that size faults them in
#: again; and any explicit malloc setting freezes glibc's mmap threshold at 128 KiB, so larger arrays are
#: fresh mappings each time.  The circle finder and the verifier make many 1-20 MB temporaries:
#: elementwise arithmetic on a 1 Mpx map ran 6x slower in a worker than in a plain process
#: (``benchmarks/bench_catalog.py --compare-malloc``).  These are glibc's own dynamic values at their
#: ceiling (an mmap threshold of 32 MiB, trimming beyond twice that), fixed: freed memory beyond 64 MiB
#: still goes back to the system.  Set in the worker by :class:`MallocTuning` (``mallopt``) rather than
#: through the environment: ``env=`` reaches the worker after it has started (too late for glibc), and
#: dask's ``pre-spawn-environ`` yields to any value the parent process's environment holds -- dask's own
#: 65536, once any nanny has started in it.
WORKER_MALLOPT: dict[str, int] = {"M_MMAP_THRESHOLD": 32 * 2**20, "M_TRIM_THRESHOLD": 64 * 2**20}
# glibc's mallopt parameter numbers (malloc.h)
_MALLOPT_PARAMS = {"M_TRIM_THRESHOLD": -1, "M_MMAP_THRESHOLD": -3}


def tune_malloc(params: dict[str, int] | None = None) -> bool:
    """Set glibc's malloc ``params`` (default :data:`WORKER_MALLOPT`) in this process; False where the C
    library has no ``mallopt`` (not glibc) or refuses a value."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # every parameter is tried, even after one is refused
    done = [mallopt(_MALLOPT_PARAMS[name], int(value)) == 1
            for name, value in (WORKER_MALLOPT if params is None else params).items()]
    return all(done)


def _gpu_cluster(n: int, threads_per_worker: int | None, **kwargs: Any) -> Any:
    """A LocalCUDACluster on the first ``n`` GPUs, or None (with the reason logged) if impossible."""
    try:
        from dask_cuda import LocalCUDACluster
    except Exception as exc:  # noqa: BLE001 - ImportError, or dask-cuda without its [cu12] extra
        log.warning(
            "GPUs requested but dask-cuda cannot be imported (%s: %s); install the GPU extra "
            "(pip install 'marscraters[gpu]'). Falling back to a CPU LocalCluster.",
            type(exc).__name__, exc,
        )
        return None
    try:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(n)]
        return _start_local(lambda: LocalCUDACluster(
            n_workers=n,
            CUDA_VISIBLE_DEVICES=",".join(ids[:n]),
            threads_per_worker=threads_per_worker or 2,
            dashboard_address=kwargs.pop("dashboard_address", _dashboard()),
            **kwargs,
        ))
    except Exception as exc:  # noqa: BLE001 - e.g. pynvml.NVMLError_LibraryNotFound without a driver
        log.warning(
            "LocalCUDACluster could not start (%s: %s). Falling back to a CPU LocalCluster.", type(exc).__name__, exc
        )
        return None


def _cpu_cluster(n_workers: int | None, threads_per_worker: int | None, **kwargs: Any) -> Any:
    from distributed import LocalCluster

    cores = cpu_count()
    n_workers = n_workers or 1
    threads_per_worker = threads_per_worker or 2
    # each worker's backend gets its share of the cores for intra-op parallelism
    share = str(max(1, cores // n_workers))
    env = {
        "TF_NUM_INTRAOP_THREADS": share,
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": share,  # the Nanny's default of 1 would starve other backends
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        **kwargs.pop("env", {}),
    }
    dashboard = kwargs.pop("dashboard_address", _dashboard())
    return _start_local(lambda: LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                                             dashboard_address=dashboard, env=env, **kwargs))


def cluster(
    gpus: int | str = "auto",
    scheduler: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    model: str | os.PathLike | None = None,
    timeout: float = 10.0,
    **cluster_kwargs: Any,
) -> "distributed.Client":
    """Start (or connect to) a Dask cluster for segmentation and return its client.

    Parameters
    ----------
    gpus
        ``"auto"``: one worker per visible GPU if dask-cuda is installed and GPUs are present,
        else CPUs.  An int N > 0: N GPUs (fewer if fewer are present).  0: CPUs only.
        Whenever GPUs cannot be used, a CPU cluster is started and the reason logged.
    scheduler
        Address of an existing scheduler (``tcp://host:8786``); ``gpus`` and the worker options
        are then ignored, the cluster is whatever that scheduler has.
    n_workers
        CPU worker processes (default 1; each gets ``cores // n_workers`` intra-op threads).
        For GPUs, one worker per GPU always.
    threads_per_worker
        Dask threads per worker (default 2: one predicts while the other reads and writes).
    model
        A model file to preload on every worker (see :func:`preload_model`).
    timeout
        Seconds to wait for an existing scheduler.
    **cluster_kwargs
        Passed to ``LocalCluster`` / ``LocalCUDACluster`` (e.g. ``memory_limit``).

    Returns
    -------
    distributed.Client
        Close it (and ``client.cluster``) when done, or use it as a context manager.

    Raises
    ------
    ClusterError
        If ``scheduler`` cannot be reached within ``timeout``.
    InvalidArgumentError
        For a bad ``gpus``, ``n_workers`` or ``threads_per_worker``.

    Examples
    --------
    >>> client = cluster(gpus="auto")  # doctest: +SKIP
    >>> segment_to_zarr(open_mosaic("cube.zarr"), "pred.zarr", model="unet.keras", client=client)  # doctest: +SKIP
    """
    from distributed import Client

    for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidArgumentError(f"{name} must be a positive integer or None, got {value!r}")
    if isinstance(gpus, str):
        if gpus != "auto":
            raise InvalidArgumentError(f"gpus must be 'auto' or a number of GPUs, got {gpus!r}")
    elif isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise InvalidArgumentError(f"gpus must be 'auto' or a non-negative integer, got {gpus!r}")

    if scheduler is not None:
        client = _connect(str(scheduler), timeout)
        log.info("connected to the Dask scheduler at %s (%d workers)", scheduler, len(client.scheduler_info().get("workers", {})))
    else:
        local = None
        if gpus != 0:
            found = detect_gpus()
            wanted = found if gpus == "auto" else min(int(gpus), found)
            if found == 0:
                level = logging.INFO if gpus == "auto" else logging.WARNING
                log.log(level, "no GPU found (nvidia-smi/NVML); using a CPU LocalCluster")
            else:
                if gpus != "auto" and int(gpus) > found:
                    log.warning("%d GPUs requested but %d found; using %d", gpus, found, found)
                local = _gpu_cluster(wanted, threads_per_worker, **cluster_kwargs)
                if local is not None:
                    log.info("LocalCUDACluster: %d workers, one per GPU", wanted)
        if local is None:
            local = _cpu_cluster(n_workers, threads_per_worker, **cluster_kwargs)
            workers = len(local.workers)
            log.info(
                "CPU LocalCluster: %d worker process(es) x %s thread(s), %d cores",
                workers, threads_per_worker or 2, cpu_count(),
            )
        client = Client(local)
        # the workers' malloc as a plain process's (WORKER_MALLOPT); on workers that restart too
        client.register_plugin(MallocTuning(), name="marscraters-malloc")
    if model is not None:
        preload_model(client, model)
    return client


try:  # the plugin base class lives in distributed, a core dependency; keep import errors readable
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover
    _WorkerPlugin = object  # type: ignore[assignment,misc]


class MallocTuning(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """Worker plugin that sets :data:`WORKER_MALLOPT` in each worker process (:func:`tune_malloc`)."""

    #: whether :func:`tune_malloc` succeeded in this worker (None: not set up here)
    tuned: bool | None = None

    def setup(self, worker: Any) -> None:
        self.tuned = tune_malloc()


class ModelPreload(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """Worker plugin that loads a model file into the worker's model cache when the worker starts.

    The plugin carries only the path; each worker process loads the file once, through
    :func:`marscraters.segment._cached_model`, which the segmentation tasks use too.
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def setup(self, worker: Any) -> None:  # noqa: D401 - distributed's hook
        from .segment import _cached_model

        _cached_model(self.path)


def preload_model(client: "distributed.Client", model: str | os.PathLike) -> str:
    """Load ``model`` (a file path) on every worker of ``client``, once per worker process.

    Registers a :class:`ModelPreload` plugin (``client.register_plugin``), which also runs on
    workers that join or restart later.  Registering the same file again does not reload it.

    Returns
    -------
    str
        The resolved path.
    """
    path = str(Path(model).resolve())
    client.register_plugin(ModelPreload(path), name=f"marscraters-model-{path}")
    return path


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`cluster`.

    ``marscraters.cluster(gpus="auto")`` is the documented spelling, but importing this submodule
    makes the package attribute ``marscraters.cluster`` the module itself; calling the module
    calls the function, so both readings work.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> "distributed.Client":
        return cluster(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
