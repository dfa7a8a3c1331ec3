"""Rendering a dataset's images on a Dask cluster (``--workers K`` or ``--scheduler ADDRESS``).

The images are split into chunks; each chunk is one task that renders its
images with :func:`nanobragg.dataset.render.render_one` (every file written
atomically) and returns their manifest records, which only the client
appends to the manifest. A worker that dies loses its unfinished chunk,
which the scheduler gives to another worker; files the lost worker had
renamed into place are rewritten with the same bytes, and a record already
listed is not listed again. Each worker process reads the input files once
per dataset (a per-process cache keyed by the dataset's identity) and runs
torch on as many threads as the worker has.
"""
from __future__ import annotations

import logging
import math
import uuid
from typing import Callable, Optional

from .spec import DatasetError, DatasetSpec

_LOADED: dict = {}


def require_dask(option: str) -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise DatasetError(f"{option} needs Dask: pip install 'nanobragg[dataset]' "
                           "(or pip install 'dask[distributed]')") from None


def render_chunk(spec: DatasetSpec, indices: list) -> list:
    """A Dask task: render and write images ``indices``; returns their manifest records."""
    import torch

    from .render import load, render_group
    try:
        from distributed import get_worker
        threads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        threads = None
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    loaded = _LOADED.get(spec.token)
    if loaded is None:
        _LOADED.clear()
        loaded = _LOADED[spec.token] = load(spec)
    return render_group(spec, indices, loaded)


def default_chunk(todo: int, workers: int) -> int:
    """Images per task: about four tasks per worker (losing one loses little), at most 16 images."""
    return max(1, min(16, math.ceil(todo / max(1, 4 * workers))))


def render_on_dask(spec: DatasetSpec, todo: list, finished: Callable[[dict], None], *, workers: Optional[int] = None,
                   scheduler: Optional[str] = None, client=None, chunk: Optional[int] = None,
                   groups: Optional[list] = None) -> str:
    """Render ``todo`` on a cluster, calling ``finished(record)`` in the client for each image done;
    returns a description of the cluster. ``groups``: the tasks' images (--format nxmx: one data file
    each) instead of ``todo`` cut in chunks."""
    from distributed import Client, LocalCluster, as_completed
    from distributed.scheduler import KilledWorker

    cluster = own_client = None
    try:
        if client is None:
            if scheduler is not None:
                try:
                    own_client = Client(scheduler, timeout=30)
                except (OSError, TimeoutError) as exc:
                    raise DatasetError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
            else:
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR)
                own_client = Client(cluster)
            client = own_client
        count = len(client.nthreads()) or (workers or 1)  # every worker (scheduler_info lists only a few)
        size = chunk or default_chunk(len(todo), count)
        run = uuid.uuid4().hex[:8]
        if groups is None:
            groups = [todo[k:k + size] for k in range(0, len(todo), size)]
        futures = [client.submit(render_chunk, spec, group, key=f"nb-dataset-{spec.token}-{run}-{group[0]}",
                                 pure=False)
                   for group in groups]
        try:
            for future in as_completed(futures):
                try:
                    records = future.result()
                except KilledWorker as exc:
                    raise DatasetError(f"Dask workers died rendering one chunk of images again and again ({exc}); "
                                       "every finished image is listed: rerun with --resume") from None
                for record in records:
                    finished(record)
        except BaseException:
            for future in futures:
                if future.status != "finished":
                    future.cancel()
            for future in futures:  # chunks already back but not yet listed: list them before stopping
                if future.status == "finished":
                    try:
                        records = future.result(timeout=10)
                    except Exception:  # noqa: BLE001 (stopping anyway; the chunk is rerendered on --resume)
                        continue
                    for record in records:
                        finished(record)
            raise
        return f"{count} Dask worker{'s' if count != 1 else ''}"
    finally:
        if own_client is not None:
            own_client.close()
        if cluster is not None:
            cluster.close()
