"""The analysis process: feature extraction, projections and evaluation for the GUI, Qt-free.

It runs as a long-lived process (``multiprocessing`` spawn; :func:`serve` is its entry point) next to
the GUI and the training engine, and speaks the request/response protocol of :mod:`engine.rpc`. At
start it warms up umap-learn's numba compilation in a background thread (about 10 s on a first call),
so the first real UMAP costs only its own work; a ``Status`` reply says ``ready`` then ``warm``.

Requests run in two lanes (threads): ``fast`` (maps, retrieval, filters, exports) and ``slow``
(evaluation, run comparison, training a supervised baseline, label efficiency), so a minute-long evaluation never
holds a map back. The ops live by topic: :mod:`engine.analysis.map_ops`,
:mod:`engine.analysis.inspect_ops`, :mod:`engine.analysis.export_ops`,
:mod:`engine.analysis.downstream_ops` (label efficiency, invariance), :mod:`engine.analysis.encoder_ops`
(opening any encoder, attention maps); per-run state (config, data,
encoder) in :mod:`engine.analysis.context`. Every op's features come from the worker's one
:class:`engine.eval.features.FeatureStore` (``feature_store``): each image encoded once per encoder and precision.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.analysis.context import DEFAULT_SAMPLE, PREVIEW_SIZE, THUMB_SIZE, RunContext, list_snapshots
from engine.analysis.downstream_ops import DownstreamOps
from engine.analysis.encoder_ops import EncoderOps
from engine.analysis.export_ops import ExportOps
from engine.analysis.inspect_ops import InspectOps
from engine.analysis.map_ops import MapOps
from engine.rpc import Dispatcher, Handler, Job, Lane, Reply, Request, Status, serve_requests

FAST, SLOW = "fast", "slow"


class AnalysisWorker(MapOps, InspectOps, ExportOps, DownstreamOps, EncoderOps, Handler):
    """Serves analysis requests. ``handle(request)`` runs one synchronously (tests call it directly)."""

    LANES = {"evaluate": SLOW, "compare": SLOW, "train_supervised": SLOW, "downstream": SLOW}
    DEFAULT_LANE = FAST
    INLINE = ("ping",)

    def __init__(self, emit: Callable[[Reply], None], device: str = "cpu", runs_roots: tuple = ()):
        super().__init__(emit)
        self.device_name = device
        self._device = None
        self.runs_roots = tuple(runs_roots)
        self.contexts: dict[str, RunContext] = {}
        from engine.eval.features import FeatureStore

        self.feature_store = FeatureStore()  # every op's features, per encoder and dataset
        self.lock = threading.RLock()
        self.warm = threading.Event()

    @property
    def device(self):
        if self._device is None:
            from engine.session import resolve_device

            self._device = resolve_device(self.device_name)
        return self._device

    def cancelled_types(self) -> tuple:
        from engine.data.base import Cancelled as DataCancelled
        from engine.eval.projection import ProjectionCancelled
        from engine.eval.protocol import EvalCancelled

        return (ProjectionCancelled, EvalCancelled, DataCancelled)

    def warmup(self) -> None:
        from engine.eval.projection import warmup

        # at the process's own priority by default: a niced thread that holds the GIL while it compiles is
        # preempted by any busy program, and the requests wait for it (the first map took 10.9 s instead of
        # 0.8 s beside one busy program); SSLWB_WARMUP_NICE lowers it
        _yield_thread(int(os.environ.get("SSLWB_WARMUP_NICE", "0")))
        try:
            t0 = time.perf_counter()
            import torch  # off the critical path of the first request

            torch.set_num_threads(analysis_threads())
            seconds = warmup() + (time.perf_counter() - t0)
            self.emit(Status({"state": "warm", "seconds": round(seconds, 2)}))
        except Exception as exc:  # the map still works (PCA); UMAP will compile on first use
            self.emit(Status({"state": "warm", "error": str(exc)}))
        finally:
            self.warm.set()

    def context(self, run_dir, data: str | None = None) -> RunContext:
        """The run's state; ``data``: another dataset looked at with its encoder (a context of its own)."""
        key = str(Path(run_dir).resolve()) + (f"\n{data}" if data else "")
        with self.lock:
            ctx = self.contexts.get(key)
            if ctx is None:
                ctx = self.contexts[key] = RunContext(run_dir, self.device, data or "", self.feature_store)
            return ctx

    def op_ping(self, job: Job) -> dict:
        return {"pid": os.getpid(), "warm": self.warm.is_set()}


def _yield_thread(nice: int) -> None:
    """Lower this thread's priority only (Linux keeps a nice value per thread): the warm-up compiles for
    seconds at launch, when the service, the window and the standby training process need the 2 cores
    more; requests keep the process's own priority."""
    import multiprocessing

    if nice <= 0 or multiprocessing.parent_process() is None or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (OSError, AttributeError):
        pass


def serve(requests, replies, device: str = "cpu", warm: bool = True, runs_roots: tuple = ()) -> None:
    """Entry point of the analysis process: answer requests until ``None`` or a ``shutdown`` request."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:  # a process of its own (not a test's thread)
        limit_threads(analysis_threads())
        try:  # beside training, at the priority of other programs: a niced map starved beside one busy program
            from engine.priority import lower_priority

            lower_priority(int(os.environ.get("SSLWB_ANALYSIS_NICE", "0")))
        except ValueError:
            pass

    def make(emit):
        emit(Status({"state": "ready", "pid": os.getpid()}))
        worker = AnalysisWorker(emit, device, runs_roots)
        if warm:
            threading.Thread(target=worker.warmup, name="analysis-warmup", daemon=True).start()
        else:
            worker.warm.set()
        return worker

    serve_requests(requests, replies, make)


def analysis_threads() -> int:
    """Threads for the analysis process: ``SSLWB_ANALYSIS_THREADS``, else 1 on machines with 4 cores or
    fewer (the training engine and the GUI need them; thread pools that wait on each other on a busy
    2-core machine run 5-20x slower than one thread), else a quarter of the cores."""
    env = os.environ.get("SSLWB_ANALYSIS_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    cores = os.cpu_count() or 1
    return 1 if cores <= 4 else max(1, cores // 4)


def limit_threads(n: int) -> None:
    """BLAS/OpenMP pools of numpy and scikit-learn, torch and numba's UMAP path, all at ``n`` threads."""
    from engine.eval.projection import set_threads

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # runtimes loaded from now on (scikit-learn's OpenMP, torch) read these
    set_threads(n)
    try:  # and those already loaded (numpy's OpenBLAS)
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:  # pragma: no cover - threadpoolctl missing: the pools keep their defaults
        pass


__all__ = ["AnalysisWorker", "serve", "RunContext", "list_snapshots", "analysis_threads", "limit_threads",
           "Request", "Job", "Lane", "Dispatcher", "DEFAULT_SAMPLE", "PREVIEW_SIZE", "THUMB_SIZE"]
