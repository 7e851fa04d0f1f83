"""Run the sync job from the command line, through Dagster, with progress a person can follow.

`centra-pipeline sync` and `demo` execute the same Dagster job the hourly schedule runs
(same steps, checks and metadata), in this process; the streams read concurrently inside the
sync step. Runs land in the same Dagster
instance as `dagster dev` (configured by the project's dagster.yaml, state under data/dagster),
so they show up in the UI's run history.

While the run executes in a worker thread, the main thread reads the run's event log and
shows per-stream progress: a live table on a terminal, one log line per update otherwise.
At the end it prints a summary from the materialization metadata.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import PARTITION_NAME_TAG

from centra_pipeline.defs.keys import STREAM_OF_ASSET, SYNC_STEP
from centra_pipeline.settings import project_root
from centra_pipeline.stores import DEFAULT_STORE
from centra_pipeline.streams import STREAMS
from centra_pipeline.sync.reconcile import Drift

CLI_RUN_TAG = "centra_pipeline/cli_run"


def get_sync_job() -> dg.JobDefinition:
    """Module-level factory so Dagster can rebuild the job in step processes."""
    from centra_pipeline.definitions import defs
    from centra_pipeline.defs.jobs import SYNC_JOB_NAME

    return defs.resolve_job_def(SYNC_JOB_NAME)


def get_reconcile_job() -> dg.JobDefinition:
    from centra_pipeline.definitions import defs
    from centra_pipeline.defs.jobs import RECONCILE_JOB_NAME

    return defs.resolve_job_def(RECONCILE_JOB_NAME)


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """The instance `dagster dev` uses: $DAGSTER_HOME if set, else the project's dagster.yaml
    (whose storage paths are relative to the project root)."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        base = Path(home)
        open_instance = dg.DagsterInstance.get
    else:
        root = project_root()
        os.chdir(root)
        base = root / "data" / "dagster"
        base.mkdir(parents=True, exist_ok=True)

        def open_instance() -> dg.DagsterInstance:
            return dg.DagsterInstance.from_ref(
                InstanceRef.from_dir(str(base), config_dir=str(root))
            )

    # The first instance on fresh storage creates its SQLite schema; two syncs started at
    # once would race to create the same tables. Creating the instance is serialized.
    with open(base / ".centra-instance.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = open_instance()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    with instance:
        yield instance


@dataclass
class StreamStatus:
    state: str = "waiting"
    line: str = ""
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset path -> metadata
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    run_id: str
    success: bool
    seconds: float
    streams: dict[str, StreamStatus]
    snapshot: dict[str, Any]
    errors: list[str]


def _value(meta_value: Any) -> Any:
    return getattr(meta_value, "value", meta_value)


class _Progress:
    def __init__(self, streams: list[str], out: TextIO) -> None:
        self.status = {s: StreamStatus() for s in streams}
        self.snapshot: dict[str, Any] = {}
        self.errors: list[str] = []
        self.out = out
        self.tty = out.isatty()
        self._drawn = 0
        self.started = time.monotonic()

    def handle(self, entry: Any) -> None:
        """One event of the run: the sync step's events are told apart by their asset key
        (each stream's lake load and tables) or by the stream its log line names."""
        step = entry.step_key or ""
        event = entry.dagster_event
        kind = event.event_type_value if event else None
        if step == SYNC_STEP:
            self._sync_event(entry, event, kind)
        elif step == "analyst__centra_duckdb" or step.endswith("centra_duckdb"):
            if kind == "ASSET_MATERIALIZATION":
                mat = entry.asset_materialization
                self.snapshot = {k: _value(v) for k, v in mat.metadata.items()}
            elif kind == "STEP_FAILURE":
                self.errors.append(f"publish: {_failure_message(event)}")
            elif kind == "STEP_START":
                self._line("publishing the analyst snapshot")

    def _sync_event(self, entry: Any, event: Any, kind: str | None) -> None:
        if kind == "STEP_START":
            for status in self.status.values():
                status.state = "reading"
            self._line(f"reading {', '.join(self.status)}")
        elif kind == "STEP_FAILURE":
            if not any(s.state == "FAILED" for s in self.status.values()):
                self.errors.append(f"sync: {_failure_message(event)}")
        elif kind == "ASSET_MATERIALIZATION":
            mat = entry.asset_materialization
            stream = STREAM_OF_ASSET.get(tuple(mat.asset_key.path))
            if stream in self.status:
                status = self.status[stream]
                path = "/".join(mat.asset_key.path)
                status.metadata[path] = {k: _value(v) for k, v in mat.metadata.items()}
                tables = [p for p in status.metadata if not p.startswith("lake/")]
                if len(tables) == len(STREAMS[stream].tables):
                    status.state = "done"
                    self._line(f"{stream}: done")
                elif path.startswith("lake/"):
                    status.state = "merging"
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            stream = STREAM_OF_ASSET.get(tuple(data.asset_key.path))
            if stream in self.status and not data.passed:
                label = f"{'/'.join(data.asset_key.path)} {data.check_name}"
                description = (data.description or "").split(". ")[0]
                if description:
                    label += f": {description}"
                if data.severity == dg.AssetCheckSeverity.WARN:
                    self.status[stream].checks_warned.append(label)
                else:
                    self.status[stream].checks_failed.append(label)
        elif event is None and entry.user_message:
            stream, _, rest = entry.user_message.partition(": ")
            if stream in self.status:
                status = self.status[stream]
                if rest.startswith("FAILED: "):
                    status.state = "FAILED"
                    self.errors.append(f"{stream}: {rest.removeprefix('FAILED: ')}")
                else:
                    status.line = entry.user_message
                self._line(entry.user_message)

    def _line(self, text: str) -> None:
        if not self.tty:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} {text}", file=self.out, flush=True)

    def draw(self) -> None:
        if not self.tty:
            return
        lines = [f"centra-pipeline sync  {time.monotonic() - self.started:5.1f} s"]
        for name, status in self.status.items():
            detail = status.line.split(": ", 1)[-1] if status.line else ""
            lines.append(f"  {name:<10} {status.state:<8} {detail}")
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")
        for line in lines:
            self.out.write("\x1b[2K" + line[:150] + "\n")
        self.out.flush()
        self._drawn = len(lines)


def _failure_message(event: Any) -> str:
    data = getattr(event, "event_specific_data", None)
    error = getattr(data, "error", None)
    if error is None:
        return "failed"
    # The cause of a step failure is the user-facing exception (e.g. ConfigError).
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = error.message.strip().splitlines()[-1] if error.message else "failed"
    # "centra_pipeline.centra.errors.CentraAuthError: the Order API refused ..." → the sentence.
    head, sep, rest = message.partition(": ")
    if sep and "." in head and " " not in head:
        message = rest
    return message


def run_sync(
    *,
    streams: list[str] | None = None,
    stream_config: dict[str, dict[str, Any]] | None = None,
    out: TextIO = sys.stdout,
    reconcile: bool = False,
    store: str = DEFAULT_STORE,
) -> RunSummary:
    """Run the sync job (or with `reconcile`, the reconciliation job) of one store (its
    partition) for `streams` (default all) and report progress to `out`."""
    from centra_pipeline.defs.jobs import IN_PROCESS_RUN_CONFIG, sync_keys, sync_run_config

    names = streams or list(STREAMS)
    unknown = [s for s in names if s not in STREAMS]
    if unknown:
        raise ValueError(
            f"unknown stream(s) {', '.join(unknown)}; streams are {', '.join(STREAMS)}"
        )
    assets, checks = sync_keys(names, reconcile=reconcile)
    job_factory = get_reconcile_job if reconcile else get_sync_job
    run_config: dict[str, Any] = {
        **IN_PROCESS_RUN_CONFIG,
        "ops": sync_run_config({name: (stream_config or {}).get(name, {}) for name in names}),
        # Dagster's own console logging would drown the progress; the event log has it all.
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    token = f"{os.getpid()}-{time.time_ns()}"
    progress = _Progress(names, out)
    outcome: dict[str, Any] = {}

    with dagster_instance() as instance:

        def execute() -> None:
            try:
                # A subset job rather than `asset_selection=`: that would add the selected
                # assets' freshness checks back (see jobs.sync_keys). Every stream is the job
                # itself, and resolving a subset costs a run over half a second.
                job = dg.reconstructable(job_factory)
                if set(names) != set(STREAMS):
                    job = job.get_subset(asset_selection=assets, asset_check_selection=checks)
                result = dg.execute_job(
                    job,
                    instance=instance,
                    run_config=run_config,
                    tags={CLI_RUN_TAG: token, PARTITION_NAME_TAG: store},
                )
                outcome["success"] = result.success
                outcome["run_id"] = result.run_id
            except BaseException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=execute, name="dagster-run", daemon=True)
        started = time.monotonic()
        worker.start()
        run_id = None
        cursor = None
        while True:
            alive = worker.is_alive()
            if run_id is None:
                runs = instance.get_runs(filters=dg.RunsFilter(tags={CLI_RUN_TAG: token}), limit=1)
                run_id = runs[0].run_id if runs else None
            if run_id is not None:
                while True:
                    conn = instance.event_log_storage.get_records_for_run(
                        run_id, cursor=cursor, limit=500
                    )
                    for record in conn.records:
                        progress.handle(record.event_log_entry)
                    cursor = conn.cursor
                    if not conn.has_more:
                        break
            progress.draw()
            if not alive:
                break
            time.sleep(0.25)
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return RunSummary(
        run_id=outcome.get("run_id", run_id or ""),
        success=bool(outcome.get("success")),
        seconds=time.monotonic() - started,
        streams=progress.status,
        snapshot=progress.snapshot,
        errors=progress.errors,
    )


def print_summary(summary: RunSummary, out: TextIO = sys.stdout) -> None:
    header = (
        f"{'stream':<10} {'fetched':>9} {'new':>8} {'updated':>8} {'unchanged':>9} "
        f"{'requests':>8} {'retries':>7} {'seconds':>7}"
    )
    print("", file=out)
    print(header, file=out)
    for name, status in summary.streams.items():
        lake = status.metadata.get(f"lake/{name}", {})
        parent = STREAMS[name].parent.name
        table = status.metadata.get(f"warehouse/{parent}", {})
        seconds = (lake.get("duration_seconds") or 0) + (table.get("duration_seconds") or 0)
        print(
            f"{name:<10} {lake.get('records_fetched', '-'):>9} {table.get('rows_new', '-'):>8} "
            f"{table.get('rows_updated', '-'):>8} {table.get('rows_unchanged', '-'):>9} "
            f"{lake.get('requests', '-'):>8} {lake.get('retries', '-'):>7} "
            f"{seconds:>7.1f}",
            file=out,
        )
        for failed in status.checks_failed:
            print(f"  check failed: {failed}", file=out)
        for warned in status.checks_warned:
            print(f"  warning: {warned}", file=out)
    drift_lines = []
    for name, status in summary.streams.items():
        table = status.metadata.get(f"warehouse/{STREAMS[name].parent.name}", {})
        if "reconcile_read" in table:
            found = Drift(
                read=table["reconcile_read"],
                new=table["reconcile_new"],
                changed=table["reconcile_changed"],
                missing=table["reconcile_missing"],
            )
            drift_lines.append(f"  {found.line(name)} [{table.get('reconcile_pass')}]")
    if drift_lines:
        print("\nreconciliation (what incremental reads and webhooks had missed):", file=out)
        for line in drift_lines:
            print(line, file=out)
    if summary.snapshot:
        print(
            f"\nanalyst snapshot: {summary.snapshot.get('path')} "
            f"({summary.snapshot.get('bytes', 0) / 1e6:.1f} MB)",
            file=out,
        )
    for error in summary.errors:
        print(f"error: {error}", file=out)
    state = "succeeded" if summary.success else "FAILED"
    print(f"run {summary.run_id} {state} in {summary.seconds:.1f} s", file=out)
