"""`centra-pipeline dev` stops everything it started on SIGTERM and on Ctrl-C.

A service manager or `kill PID` signals only the command itself, not its process tree; a
terminal's Ctrl-C signals its whole process group. The moment that matters is a Dagster run
in flight: its process (a fork of the warm worker) outlives `dagster dev` until it ends. So the
emulator is made slow (every Centra request of a run then outlasts the bound) and the signal
is sent while a run waits on it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow  # a real `dagster dev`: start-up alone takes 15 to 60 s

STARTUP_SECONDS = 240
RUN_IN_FLIGHT_SECONDS = 120
# What "within a few seconds" may stretch to on a busy machine.
STOP_SECONDS = 20
# Within the pipeline's read timeout, and well over STOP_SECONDS.
LATENCY_MS = 40_000
# Longer than a run that never calls Centra (the freshness checks) lasts.
RUN_AGE_SECONDS = 8


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _alive(process: psutil.Process) -> bool:
    # A zombie has exited: it only waits to be reaped, which a container's init may never do.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(processes: list[psutil.Process]) -> str:
    lines = []
    for process in processes:
        try:
            lines.append(f"{process.pid}: {' '.join(process.cmdline())[:160]}")
        except psutil.Error:
            lines.append(f"{process.pid}: (gone)")
    return "\n".join(lines)


class _Descendants:
    """Every process below `root` seen while it runs. Sampled continuously: once a parent has
    exited, its children belong to init and no longer show up below `root`."""

    def __init__(self, root: int) -> None:
        self._root = psutil.Process(root)
        self._seen: dict[int, psutil.Process] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            try:
                for child in self._root.children(recursive=True):
                    self._seen.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                return
            self._done.wait(0.1)

    def close(self) -> None:
        self._done.set()
        self._thread.join()

    def all(self) -> list[psutil.Process]:
        return list(self._seen.values())

    def oldest_run_age(self) -> float:
        """Seconds the oldest Dagster run in flight has been running (0: none). A run is a
        fork of the warm worker (the project's launcher: a warm worker process whose parent
        is the warm worker), or under Dagster's own launcher a spawned multiprocessing child
        of the code server."""
        ages = [0.0]
        warm: set[int] = set()
        alive = []
        for process in self.all():
            try:
                if _alive(process):
                    line = " ".join(process.cmdline())
                    alive.append((process, line))
                    if "centra_pipeline.defs.warm_worker" in line:
                        warm.add(process.pid)
            except psutil.Error:
                continue
        for process, line in alive:
            try:
                if "spawn_main" in line or (process.pid in warm and process.ppid() in warm):
                    ages.append(time.time() - process.create_time())
            except psutil.Error:
                continue
        return max(ages)


def _slow_down(emulator_port: int) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{emulator_port}/_emulator/faults",
        data=f'{{"latency_ms": {LATENCY_MS}}}'.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _wait_for(condition, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s; dev's output:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def _start_dev(log: Path) -> tuple[subprocess.Popen, int]:
    """`dev` with a small store, webhooks every second (so the sensor starts refresh runs) and
    free ports; returns it and its emulator's port."""
    ui, webhook, emulator = _free_ports(3)
    options = {
        "--orders": 300,
        "--tick-every": 1,
        "--ui-port": ui,
        "--webhook-port": webhook,
        "--emulator-port": emulator,
    }
    argv = [sys.executable, "-m", "centra_pipeline.cli", "dev"]
    for option, value in options.items():
        argv += [option, str(value)]
    with log.open("w") as out:
        dev = subprocess.Popen(
            argv,
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a group of its own, for the Ctrl-C case
        )
    return dev, emulator


def _active_runs() -> list[str]:
    """Runs the instance (DAGSTER_HOME) still counts as running, e.g. for concurrency limits."""
    import dagster as dg
    from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES))
        return [f"{run.job_name} {run.run_id}: {run.status.value}" for run in runs]


def _kill_what_is_left(dev: subprocess.Popen, tree: _Descendants) -> None:
    tree.close()
    for process in tree.all():
        if _alive(process):
            process.kill()
    if dev.poll() is None:
        dev.kill()
    dev.wait()


@pytest.mark.parametrize(
    ("sig", "to_group"),
    [
        pytest.param(signal.SIGTERM, False, id="SIGTERM-to-dev"),  # a service manager, `kill`
        pytest.param(signal.SIGINT, True, id="Ctrl-C"),  # a terminal signals the whole group
    ],
)
def test_a_stop_signal_stops_dev_and_everything_it_started(
    sig: signal.Signals, to_group: bool, data_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "dev.log"
    dev, emulator = _start_dev(log)
    tree = _Descendants(dev.pid)
    try:
        _wait_for(lambda: "Dagster UI:" in log.read_text(), STARTUP_SECONDS, "dev up", log)
        _slow_down(emulator)
        _wait_for(
            lambda: tree.oldest_run_age() > RUN_AGE_SECONDS,
            RUN_IN_FLIGHT_SECONDS,
            "a Dagster run waiting on the emulator",
            log,
        )

        signalled = time.monotonic()
        if to_group:
            os.killpg(dev.pid, sig)
        else:
            dev.send_signal(sig)
        try:
            code = dev.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dev still runs {STOP_SECONDS} s after {sig.name}:\n{log.read_text()}")
        survivors = [p for p in tree.all() if _alive(p)]
        while survivors and time.monotonic() < signalled + STOP_SECONDS:
            time.sleep(0.2)
            survivors = [p for p in survivors if _alive(p)]
        print(
            f"{sig.name}: dev and its {len(tree.all())} descendants gone after "
            f"{time.monotonic() - signalled:.1f} s"
        )

        assert not survivors, (
            f"{STOP_SECONDS} s after {sig.name} these processes dev started still run:\n"
            f"{_describe(survivors)}\ndev's output:\n{log.read_text()[-4000:]}"
        )
        assert code == 0, log.read_text()[-4000:]
        assert "stopping" in log.read_text()
        active = _active_runs()
        assert not active, f"runs left active hold the warehouse writers' slot: {active}"
    finally:
        _kill_what_is_left(dev, tree)
