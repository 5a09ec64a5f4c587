"""Cohort runs on Dask: a LocalCluster, and a real ``dask scheduler`` with two ``dask
worker`` processes on 127.0.0.1 driven through ``expresso-xai cohort run --scheduler``,
give the same store, bit for bit, as a plain sequential run; and killing the client or a
worker with SIGKILL mid-run loses nothing that a second run does not finish, with every
participant exactly once.

Every process started here listens on 127.0.0.1 only, is bounded in time and is killed in
a ``finally``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import expresso_xai as ex
from expresso_xai.cohort import CohortStore

pytestmark = pytest.mark.slow

METHODS = ["gradcam", "integrated_gradients"]
BATCH = 4  # fixed: "auto" is timed once per store, and two stores are compared bit for bit
N_PARTICIPANTS = 4
DASK = str(Path(sys.executable).parent / "dask")
LIMIT_S = 240  # no process of these tests may live longer


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    """Four participants of 2 s (50 frames, 6 clips): a task takes long enough to be killed in."""
    folder = tmp_path_factory.mktemp("cohort")
    ex.samples.make_cohort(folder, n_participants=N_PARTICIPANTS, seconds=2, seed=9, progress=False)
    return folder


@pytest.fixture(scope="module")
def reference(cohort_dir, tmp_path_factory):
    store = tmp_path_factory.mktemp("ref") / "cohort.zarr"
    done = ex.cohort.run(cohort_dir / "manifest.csv", "demo", methods=METHODS, store=store, client="sequential",
                         progress=False, batch_size=BATCH)
    assert done.counts()["done"] == N_PARTICIPANTS
    return store


def cli(cohort_dir, store, *extra) -> list[str]:
    return [sys.executable, "-m", "expresso_xai.cli", "cohort", "run", str(cohort_dir / "manifest.csv"),
            "--model", "demo", "--methods", ",".join(METHODS), "--store", str(store), "--batch-size", str(BATCH),
            "--quiet", *extra]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGKILL a process and everything in its session (a LocalCluster's workers)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})


@contextmanager
def cluster(folder: Path, n_workers: int = 2):
    """A ``dask scheduler`` and ``n_workers`` ``dask worker`` processes (no nanny: the
    process killed is the one running the task), all on 127.0.0.1."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = []
    try:
        processes.append(start([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                                "--idle-timeout", f"{LIMIT_S}s"], folder / "scheduler.log"))
        wait_for(lambda: _listening(port), 60, "the scheduler to listen", folder / "scheduler.log")
        for i in range(n_workers):
            processes.append(start([DASK, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                                    "--no-dashboard", "--name", f"w{i}", "--death-timeout", "60"],
                                   folder / f"worker{i}.log"))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(n_workers, timeout=90)
        yield address, processes
    finally:
        for process in processes:
            stop(process)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition, seconds: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.1)


def finished(store: Path) -> int:
    return len(CohortStore(store).finished()) if (store / ".zattrs").exists() else 0


def assert_complete_and_equal(store: Path, reference: Path) -> None:
    assert CohortStore(store).differences(reference) == []
    names = sorted(p.name for p in store.iterdir() if not p.name.startswith("."))
    assert names == sorted([f"p{i:03d}" for i in range(N_PARTICIPANTS)] + ["failures.json"])


def test_a_local_cluster_run_in_slices_equals_the_sequential_run(cohort_dir, reference, tmp_path):
    store = tmp_path / "cohort.zarr"
    # each 50-frame video in two slices (clips 0-2 and 3-5), on both workers
    done = ex.cohort.run(cohort_dir / "manifest.csv", "demo", methods=METHODS, store=store, workers=2,
                         progress=False, batch_size=BATCH, slice_frames=24)
    assert done.counts()["done"] == N_PARTICIPANTS
    # both workers took part: the slices go wherever is free, each video's row lists its processes
    assert len({worker for row in done.table.worker for worker in row.split(",")}) == 2
    assert done.dashboard and done.dashboard.startswith("http://")  # the LocalCluster's dashboard (bokeh)
    assert_complete_and_equal(store, reference)


def test_a_run_submitted_to_a_real_scheduler_equals_the_sequential_run(cohort_dir, reference, tmp_path):
    store = tmp_path / "cohort.zarr"
    with cluster(tmp_path) as (address, _):
        result = subprocess.run(cli(cohort_dir, store, "--scheduler", address), capture_output=True, text=True,
                                timeout=LIMIT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{N_PARTICIPANTS} explained now" in result.stdout
    assert_complete_and_equal(store, reference)


def test_killing_a_worker_mid_task_loses_nothing(cohort_dir, reference, tmp_path):
    store = tmp_path / "cohort.zarr"
    with cluster(tmp_path) as (address, processes):
        run = start(cli(cohort_dir, store, "--scheduler", address), tmp_path / "client.log")
        try:
            wait_for(lambda: finished(store) >= 1, LIMIT_S, "a first participant", tmp_path / "client.log")
            processes[1].send_signal(signal.SIGKILL)  # a worker, busy with a task
            run.wait(timeout=LIMIT_S)
        finally:
            stop(run)
        log = (tmp_path / "client.log").read_text()
        # the scheduler gave the lost task to the other worker, or the next run does it
        if finished(store) < N_PARTICIPANTS:
            again = subprocess.run(cli(cohort_dir, store, "--scheduler", address), capture_output=True, text=True,
                                   timeout=LIMIT_S)
            assert again.returncode == 0, again.stderr[-3000:]
    assert_complete_and_equal(store, reference), log


def test_killing_the_client_mid_run_loses_nothing(cohort_dir, reference, tmp_path):
    store = tmp_path / "cohort.zarr"
    run = start(cli(cohort_dir, store, "--workers", "2"), tmp_path / "client.log")
    try:
        wait_for(lambda: finished(store) >= 1, LIMIT_S, "a first participant", tmp_path / "client.log")
        assert finished(store) < N_PARTICIPANTS, "the run ended before it could be killed"
    finally:
        stop(run)  # SIGKILL: the client, its scheduler and its workers
    kept = finished(store)
    again = subprocess.run(cli(cohort_dir, store, "--workers", "2"), capture_output=True, text=True, timeout=LIMIT_S)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{N_PARTICIPANTS - kept} explained now, {kept} already there" in again.stdout
    assert_complete_and_equal(store, reference)


def test_killing_the_scheduler_mid_run_is_a_clear_error_and_a_new_cluster_finishes(cohort_dir, reference, tmp_path):
    store = tmp_path / "cohort.zarr"
    with cluster(tmp_path) as (address, processes):
        run = start(cli(cohort_dir, store, "--scheduler", address), tmp_path / "client.log")
        try:
            wait_for(lambda: finished(store) >= 1, LIMIT_S, "a first participant", tmp_path / "client.log")
            processes[0].send_signal(signal.SIGKILL)  # the scheduler
            assert run.wait(timeout=LIMIT_S) == 2
        finally:
            stop(run)
    log = (tmp_path / "client.log").read_text()
    assert "expresso-xai: error: lost the Dask scheduler" in log and "run the same command again" in log
    assert "Traceback" not in log
    with cluster(tmp_path / "again" if (tmp_path / "again").mkdir() is None else tmp_path) as (address, _):
        again = subprocess.run(cli(cohort_dir, store, "--scheduler", address), capture_output=True, text=True,
                               timeout=LIMIT_S)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete_and_equal(store, reference)
