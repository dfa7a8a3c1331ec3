"""nb-dataset on Dask: an embedded LocalCluster (--workers), a killed worker, an external scheduler
(--scheduler) started on 127.0.0.1 by the test. Every dataset equals the one-process dataset, byte for byte."""
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from nanobragg.cli import dataset as cli  # noqa: E402
from nanobragg.dataset import read_manifest, run_dataset  # noqa: E402
from test_dataset import SERIES, SHOTS, files_of  # noqa: E402


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference datasets, rendered in this process."""
    root = tmp_path_factory.mktemp("reference")
    run_dataset(str(root / "series"), [*SERIES, "-seed", "21"], 6)
    run_dataset(str(root / "shots"), SHOTS, 8, random_orientations=True, seed=77)
    return root


def test_workers_2_series_equals_one_process(one_process, tmp_path, capsys):
    out = tmp_path / "w2"
    assert cli.main([str(out), "--images", "6", "--workers", "2", "--chunk", "2", "--", *SERIES, "-seed", "21"]) == 0
    assert "2 Dask workers" in capsys.readouterr().out
    assert files_of(out) == files_of(one_process / "series")


def test_random_shots_same_for_any_worker_count_and_a_killed_worker(one_process, tmp_path):
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        # two workers, chunks of 3 shots: the same 8 shots as one process
        out1 = tmp_path / "two-workers"
        run_dataset(str(out1), SHOTS, 8, random_orientations=True, seed=77, client=client, chunk=3)
        assert files_of(out1) == files_of(one_process / "shots")
        # two workers, one of them killed (SIGKILL) once the first chunk is back: the rest is rerun elsewhere
        pids = client.run(os.getpid)
        assert len(pids) == 2
        killed = []

        def kill_one(record):
            if not killed:
                victim = sorted(pids.values())[0]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        out2 = tmp_path / "killed-worker"
        run_dataset(str(out2), SHOTS, 8, random_orientations=True, seed=77, client=client, chunk=1,
                    on_record=kill_one)
        assert killed
        assert sorted(read_manifest(str(out2))) == list(range(8))
        assert files_of(out2) == files_of(one_process / "shots")
    finally:
        client.close()
        cluster.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_command() -> list:
    script = Path(sys.executable).with_name("dask")
    return [str(script)] if script.exists() else [shutil.which("dask") or "dask"]


def test_scheduler_with_two_workers_on_localhost(one_process, tmp_path, capsys):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = open(tmp_path / "dask.log", "wb")
    scheduler = subprocess.Popen([*_dask_command(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], stdout=logs, stderr=logs)
    workers = subprocess.Popen([*_dask_command(), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                "--no-dashboard", "--host", "127.0.0.1"], stdout=logs, stderr=logs)
    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        out = tmp_path / "sched"
        assert cli.main([str(out), "--images", "6", "--scheduler", address, "--", *SERIES, "-seed", "21"]) == 0
        assert "2 Dask workers" in capsys.readouterr().out
        assert files_of(out) == files_of(one_process / "series")
    finally:
        for proc in (workers, scheduler):
            proc.send_signal(signal.SIGTERM)
        for proc in (workers, scheduler):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs.close()
