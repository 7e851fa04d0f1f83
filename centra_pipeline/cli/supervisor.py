"""What `centra-pipeline dev` starts, and how it stops all of it within seconds: stop signals
that are noted rather than raised, and child processes stopped as whole process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TextIO

from centra_pipeline.settings import project_root

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# How long the receiver and `dagster dev` get to stop by themselves (they take 1 to 3 s);
# then what they left running (in-flight runs: cancelled, given this long), before it is killed.
STOP_GRACE_SECONDS = 10.0
LEFTOVERS_SECONDS = 4.0
REAP_SECONDS = 2.0


class Stopped(Exception):
    """A stop signal arrived while the live setup was starting or running."""


class StopSignals:
    """Ctrl-C, SIGTERM (service managers, `kill`) and SIGHUP (a closed terminal) ask `dev` to
    stop. The handler only takes note, and `dev` looks between its steps: an exception raised
    from a signal handler lands wherever the main thread is, and there it can be swallowed (in
    a garbage-collector callback, which ignores exceptions) or cut a library's clean-up short.
    """

    def __init__(self) -> None:
        self.received: int | None = None

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        # Installed even where the shell that started us made this process ignore SIGINT.
        previous = {sig: signal.signal(sig, self._note) for sig in STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                if handler is not None:
                    signal.signal(sig, handler)

    def _note(self, signum: int, frame: object) -> None:
        self.received = signum

    def check(self) -> None:
        if self.received is not None:
            raise Stopped

    def pause(self, seconds: float) -> None:
        """Sleep, but raise Stopped within a tenth of a second of a stop signal."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.check()
            time.sleep(min(left, 0.1))
        self.check()


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs. A zombie does not count: it has exited,
    and a container's init may never reap the orphans it adopts."""
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:  # no /proc (macOS): ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


class Children:
    """The receiver and `dagster dev`, each started in a process group of its own.

    Own groups, because `dagster dev` does not stop all it starts: it stops its webserver and
    daemon, but the code server that hosts in-flight runs keeps running, orphaned, until those
    runs end (a scheduled sync: a minute and more). The group is what still finds the code
    server and its run workers then, to wait for and, as a last resort, to kill. Own groups
    also keep a terminal's Ctrl-C to `dev` alone: a second SIGINT, from the terminal and from
    `dev`, would cut `dagster dev`'s own shut-down short and orphan its webserver and daemon.
    """

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, module_args: list[str], env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            env=env,
            cwd=project_root(),
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        self.procs[name] = proc
        return proc

    def any_exited(self) -> bool:
        return any(proc.poll() is not None for proc in self.procs.values())

    def stop(self, leftovers: Callable[[], None] | None = None) -> None:
        """Each child's own clean stop (SIGINT) first. Once the children are gone, what they
        left running in their groups gets `leftovers` (a way to end it cleanly, given at most
        LEFTOVERS_SECONDS) and the time to end; SIGKILL for whatever runs on after that.
        Every wait is bounded, so `dev` exits within seconds."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        self._wait(STOP_GRACE_SECONDS, lambda proc: proc.poll() is None)
        if leftovers is not None and any(self._running(proc) for proc in self.procs.values()):
            deadline = time.monotonic() + LEFTOVERS_SECONDS
            helper = threading.Thread(target=leftovers, name="stop-leftovers", daemon=True)
            helper.start()
            helper.join(LEFTOVERS_SECONDS)
            self._wait(deadline - time.monotonic(), self._running)
        for name in self._signal_groups(signal.SIGKILL):
            say(f"{name} left processes that did not stop in time; killed them")
        self._wait(REAP_SECONDS, self._running)

    def _wait(self, seconds: float, running: Callable[[subprocess.Popen], bool]) -> None:
        deadline = time.monotonic() + seconds
        while any(running(proc) for proc in self.procs.values()):
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)

    @staticmethod
    def _running(proc: subprocess.Popen) -> bool:
        # poll() reaps the group's leader, our own child, so that it stops counting.
        return proc.poll() is None or group_alive(proc.pid)

    def _signal_groups(self, sig: int) -> list[str]:
        signalled = []
        for name, proc in self.procs.items():
            if self._running(proc):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    continue
                signalled.append(name)
        return signalled


def say(message: str, out: TextIO | None = None) -> None:
    """A terminal that has gone (SIGHUP) must not keep the stop from finishing."""
    with suppress(OSError):
        print(message, file=out or sys.stderr, flush=True)
