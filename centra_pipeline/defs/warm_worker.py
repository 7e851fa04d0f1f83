"""The warm run worker: a process that has imported the project once and forks a child per
run (defs/run_launcher.py starts it; docs/architecture.md, "Run workers").

A run started the usual way is a fresh interpreter that imports Dagster and the project,
builds the definitions and opens the instance before its first step: about three of the six
CPU seconds an incremental store sync costs. Here that work is done once, in this process,
and each run is `os.fork()` of it running exactly what `dagster api execute_run` runs. The
children are ordinary processes: their pid is on the run (a tag), SIGTERM cancels them the
way it cancels any Dagster run worker, and they outlive this process if it goes.

Protocol (a line of JSON each way): the launcher writes {"run": <serialized
ExecuteRunArgs>} on stdin; this process answers {"pid": N} on the file descriptor that was
its stdout (fd 1 itself becomes stderr, so nothing a run prints can garble the answers).
Its first line is {"ready": pid} once the project is loaded, or {"error": the exception}. It exits
when stdin closes; the children it forked carry on.

    python -m centra_pipeline.defs.warm_worker centra_pipeline.definitions
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import signal
import sys
import traceback
from typing import TextIO

# What a store run imports lazily, loaded here once instead of in every run.
WARM_MODULES = (
    "dagster._cli.api",
    "centra_pipeline.defs.assets",
    "centra_pipeline.sync.stream_step",
    "centra_pipeline.storage.merge",
    "centra_pipeline.storage.publish",
    "duckdb",
    "pyarrow.parquet",
    "requests",
    "pandas",
)


def preload(module: str) -> None:
    """Import `module` and build the definitions it holds, then the modules a run uses."""
    loaded = importlib.import_module(module)
    defs = getattr(loaded, "defs", None)
    if defs is not None:
        defs.get_repository_def().get_all_jobs()
    for name in WARM_MODULES:
        # A module this version lacks costs the run its own import, nothing more.
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _reap(_signum: int, _frame: object) -> None:
    """Collect exited children so none lingers as a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(payload: str, channel: TextIO) -> None:
    """In the forked child: run the run, as `dagster api execute_run` would, and exit."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the run's own subprocesses are its own
        channel.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        random.seed()  # never share the parent's random state between runs
        from dagster._cli.api import execute_run_command

        execute_run_command.callback(payload, None)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(module: str) -> int:
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    try:
        preload(module)
    except BaseException as exc:
        traceback.print_exc()  # the whole story on stderr, the daemon's log
        channel.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the daemon's to handle
    channel.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _child(request["run"], channel)
        channel.write(json.dumps({"pid": pid}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
