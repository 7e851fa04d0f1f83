"""The project's run launcher: each run in a process forked from a warm worker that has
imported the project once, instead of a fresh interpreter per run (docs/architecture.md,
"Run workers").

Dagster's default launcher asks the code server to spawn a new Python for every run, which
then imports Dagster and the project, builds the definitions and opens the instance: about
three of the six CPU seconds of a store's incremental sync, paid 100 times an hour by a
100-store deployment. `WarmRunLauncher` starts one warm worker (defs/warm_worker.py) on its
first launch and forks every run from it, so a run costs what it does. dagster.yaml selects
it (`run_launcher:`); everything else about a run is Dagster's own: the queue and its limits
decide when `launch_run` is called, the run executes `dagster api execute_run`'s code, and
its events, logs and status are the same.

- **Fresh code.** The worker is keyed on the project's source files and the stores file
  (newest modification time, size): after an edit or a changed stores file the next launch
  starts a new worker, so a run never executes definitions older than the code location's.
- **Fallback.** A run of other code (another package or interpreter), or any failure to
  start or reach the worker, runs as `python -m dagster api execute_run` in a new process,
  the way container launchers start runs; an engine event says which way each run went.
- **Termination and monitoring** use the worker's pid and host, tagged on the run
  (`centra_pipeline/run_worker_pid`, `.../run_worker_host`): terminate marks the run
  canceling and sends SIGTERM, which Dagster's run worker turns into a cancellation (or, in
  a step with a retry policy, a retry), and SIGKILL TERMINATE_GRACE_SECONDS later if the run
  is still going, recording it canceled; run monitoring reports a run whose process is gone
  as failed. Both work from any process on
  that host (the webserver as well as the daemon).
- **Children outlive the worker.** When the daemon stops, the worker's stdin closes and it
  exits; runs in progress finish, as they do under Dagster's own launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.origin import JobPythonOrigin
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster_shared.serdes import serialize_value

from centra_pipeline.settings import ENV_STORES_FILE, project_root
from centra_pipeline.storage.lake import pid_alive

PID_TAG = "centra_pipeline/run_worker_pid"
HOST_TAG = "centra_pipeline/run_worker_host"
PACKAGE = "centra_pipeline"
READY_SECONDS = 120  # loading the project in the worker (about 2 s)
ANSWER_SECONDS = 30  # a fork
TERMINATE_GRACE_SECONDS = 5  # from SIGTERM to SIGKILL


class WarmWorkerError(RuntimeError):
    """The warm worker could not be started or did not answer."""


def code_fingerprint(working_directory: str | None) -> str:
    """What the worker's definitions were loaded from: the newest of the project's source
    files and the stores file's modification time and size."""
    package = Path(__file__).resolve().parent.parent
    newest = max((p.stat().st_mtime_ns for p in package.rglob("*.py")), default=0)
    parts = [str(newest)]
    stores_file = os.environ.get(ENV_STORES_FILE, "").strip()
    if stores_file:
        path = Path(stores_file).expanduser()
        if not path.is_absolute():
            path = project_root() / path
        try:
            stat = path.stat()
            parts.append(f"{path}:{stat.st_mtime_ns}:{stat.st_size}")
        except OSError:
            parts.append(f"{path}:missing")
    return "|".join([working_directory or "", *parts])


def _warm_module(origin: JobPythonOrigin) -> str | None:
    """The project module a warm worker can preload for this run, or None (other code)."""
    pointer = origin.repository_origin.code_pointer
    if not isinstance(pointer, ModuleCodePointer):
        return None
    if pointer.module.split(".")[0] != PACKAGE:
        return None
    if os.path.realpath(origin.executable_path) != os.path.realpath(sys.executable):
        return None
    return pointer.module


class _WarmWorker:
    """One warm worker process and the conversation with it (under the launcher's lock)."""

    def __init__(self, module: str, working_directory: str | None, key: str) -> None:
        self.key = key
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "centra_pipeline.defs.warm_worker", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=working_directory or None,
            text=True,
            bufsize=1,
        )
        self.pid = self.proc.pid
        ready = self._answer(READY_SECONDS)
        if "ready" not in ready:
            self.retire()
            raise WarmWorkerError(
                f"the warm worker did not load the project: {ready.get('error', ready)}"
            )

    def _answer(self, seconds: float) -> dict[str, Any]:
        stdout = self.proc.stdout
        assert stdout is not None
        readable, _, _ = select.select([stdout], [], [], seconds)
        line = stdout.readline() if readable else ""
        if not line:
            raise WarmWorkerError(
                f"no answer from the warm worker (pid {self.pid}) within {seconds:.0f} s"
                if not readable
                else f"the warm worker (pid {self.pid}) exited ({self.proc.poll()})"
            )
        return json.loads(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self, payload: str) -> int:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps({"run": payload}) + "\n")
            stdin.flush()
        except OSError as exc:
            raise WarmWorkerError(f"the warm worker (pid {self.pid}) is gone: {exc}") from exc
        return int(self._answer(ANSWER_SECONDS)["pid"])

    def retire(self) -> None:
        """Let it exit (its runs carry on) and collect it once it has."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a process forked from a warm worker (see the module docstring)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self._lock = threading.Lock()
        self._worker: _WarmWorker | None = None
        self._retired: list[_WarmWorker] = []
        self._fresh: list[subprocess.Popen] = []
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> WarmRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise WarmWorkerError(f"run {run.run_id} has no code origin to execute")
        payload = serialize_value(
            ExecuteRunArgs(
                job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref()
            )
        )
        pid, how = self._start(origin, payload)
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(pid), HOST_TAG: _host()})
        self._instance.report_engine_event(f"Run worker started (pid {pid}, {how}).", run)

    def _start(self, origin: JobPythonOrigin, payload: str) -> tuple[int, str]:
        module = _warm_module(origin)
        with self._lock:
            self._collect()
            if module is not None:
                directory = origin.repository_origin.code_pointer.working_directory
                try:
                    worker = self._warm(module, directory)
                    return worker.fork(payload), f"forked from the warm worker {worker.pid}"
                except WarmWorkerError as exc:
                    if self._worker is not None:
                        self._retired.append(self._worker)
                        self._worker = None
                    reason = f"in a new process: {exc}"
            else:
                reason = "in a new process: not this project's code"
            fresh = subprocess.Popen(
                [origin.executable_path, "-m", "dagster", "api", "execute_run", payload],
                cwd=origin.repository_origin.code_pointer.working_directory or None,
            )
            self._fresh.append(fresh)
            return fresh.pid, reason

    def _warm(self, module: str, directory: str | None) -> _WarmWorker:
        key = f"{module}|{code_fingerprint(directory)}"
        worker = self._worker
        if worker is not None and worker.key == key and worker.alive():
            return worker
        if worker is not None:
            worker.retire()
            self._retired.append(worker)
        self._worker = None
        self._worker = _WarmWorker(module, directory, key)
        return self._worker

    def _collect(self) -> None:
        """Wait for retired workers and fresh run processes that have exited."""
        self._retired = [w for w in self._retired if w.proc.poll() is None]
        self._fresh = [p for p in self._fresh if p.poll() is None]

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = _local_pid(run.tags)
        self._instance.report_run_canceling(run)
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        threading.Thread(
            target=self._stop, args=(run_id, pid), name=f"stop-{run_id[:8]}", daemon=True
        ).start()
        return True

    def _stop(self, run_id: str, pid: int) -> None:
        """After SIGTERM: a run whose step retries on the interrupt (as Dagster does for a
        step with a retry policy) is still going after the grace period; kill it and record
        the cancellation. A killed run leaves nothing half-written (docs/architecture.md,
        invariant 1)."""
        deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
        while time.monotonic() < deadline:
            run = self._instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                return
            time.sleep(0.25)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        run = self._instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self._instance.report_run_canceled(
                run,
                message=f"Run worker (pid {pid}) killed: it was still running "
                f"{TERMINATE_GRACE_SECONDS} s after SIGTERM.",
            )

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: Any) -> CheckRunHealthResult:
        pid = _local_pid(run.tags)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no run worker on this host")
        if pid_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        latest = self._instance.get_run_by_id(run.run_id)
        if latest is not None and latest.is_finished:
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"the run worker (pid {pid}) exited without finishing the run"
        )

    def dispose(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.retire()
                self._worker = None


def _host() -> str:
    return socket.gethostname()


def _local_pid(tags: Mapping[str, str]) -> int | None:
    if tags.get(HOST_TAG) != _host() or not tags.get(PID_TAG, "").isdigit():
        return None
    return int(tags[PID_TAG])
