"""The production instance (deploy/dagster.yaml) on a real PostgreSQL server, with the real
`dagster-daemon run` in a subprocess and real runs against emulated stores.

Everything Dagster keeps is read back from PostgreSQL with psycopg2 directly, not through
Dagster: the run records and their events, the schedule's state and ticks, the webhook
sensor's cursor, and the queue's timings. No SQLite file appears under DAGSTER_HOME.

One daemon session (restarted once) covers, on a fleet of five small stores:
a. runs: every run succeeds and its record and events are rows in PostgreSQL;
b. the schedule (CENTRA_SYNC_CRON every minute): a tick starts one run per store; stopped,
   its state stays stopped across a daemon restart (no tick after it);
c. the webhook sensor: a signed webhook through the real receiver starts one refresh run,
   its cursor advances in PostgreSQL, and after the restart the daemon starts no second
   refresh for the same events;
d. the queue: two runs submitted together for one store never overlap, and at most
   max_concurrent_runs (4) runs are in progress at once, a limit the schedule's five runs
   reach.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"
WORKSPACE = ROOT / "workspace.yaml"
STORES = 5  # one more than max_concurrent_runs: the schedule's tick reaches the limit
MAX_CONCURRENT_RUNS = 4
PARTITION_TAG = "dagster/partition"
SCHEDULE = "centra_sync_schedule"
SENSOR = "centra_order_webhook_sensor"
NOW = "2026-01-15 12:00:00"
IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")

T = TypeVar("T")


def sqlalchemy_url(libpq_url: str) -> str:
    """DAGSTER_PG_URL names the driver: SQLAlchemy 2.1 reads a plain postgresql:// as
    psycopg 3, and dagster-postgres installs psycopg2 (deploy/dagster.yaml)."""
    return libpq_url.replace("postgresql://", "postgresql+psycopg2://", 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Pg:
    """Dagster's tables, read with psycopg2 (not through Dagster)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, *args: Any) -> list[tuple]:
        with closing(psycopg2.connect(self.url)) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def runs(self) -> list[dict[str, Any]]:
        """Every run: id, job, status, partition tag, tags, launch (RUN_STARTING event),
        start and end (the run record's), and how many events it has."""
        rows = self.rows(
            """
            SELECT r.run_id, r.pipeline_name, r.status, r.start_time, r.end_time,
                   (SELECT extract(epoch FROM min(e.timestamp)) FROM event_logs e
                     WHERE e.run_id = r.run_id AND e.dagster_event_type = 'PIPELINE_STARTING'),
                   (SELECT count(*) FROM event_logs e WHERE e.run_id = r.run_id),
                   (SELECT count(*) FROM event_logs e WHERE e.run_id = r.run_id
                     AND e.dagster_event_type = 'ASSET_MATERIALIZATION'),
                   (SELECT json_object_agg(t.key, t.value) FROM run_tags t
                     WHERE t.run_id = r.run_id)
              FROM runs r ORDER BY r.id
            """
        )
        out = []
        for run_id, job, status, start, end, launched, events, materialized, tags in rows:
            tags = tags or {}
            out.append(
                {
                    "run_id": run_id,
                    "job": job,
                    "status": status,
                    "start": start,
                    "end": end,
                    "launched": float(launched) if launched is not None else None,
                    "events": events,
                    "materializations": materialized,
                    "tags": tags,
                    "partition": tags.get(PARTITION_TAG),
                }
            )
        return out

    def instigator(self, name: str) -> Any:
        """The schedule's or sensor's stored state (InstigatorState), if any."""
        from dagster._serdes import deserialize_value

        for (body,) in self.rows("SELECT instigator_body FROM instigators"):
            state = deserialize_value(body)
            if state.instigator_name == name:
                return state
        return None

    def ticks(self, name: str) -> list[Any]:
        """The instigator's ticks (TickData), oldest first."""
        from dagster._serdes import deserialize_value

        ticks = [
            deserialize_value(body) for (body,) in self.rows("SELECT tick_body FROM job_ticks")
        ]
        return sorted((t for t in ticks if t.instigator_name == name), key=lambda t: t.timestamp)


class Daemon:
    """`dagster-daemon run -w workspace.yaml` in the project root, in a session of its own;
    its stderr (and its code server's and runs') in a log file."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str]) -> None:
        assert env.get("DAGSTER_PG_URL") and env.get("DAGSTER_HOME")
        with open(self.log, "a") as log:
            log.write(f"\n===== daemon started at {time.time():.3f} =====\n")
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text() if self.log.exists() else ""
        return "\n--- daemon stderr (last lines) ---\n" + "\n".join(text.splitlines()[-lines:])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, daemon: Daemon) -> T:
    """probe() until it returns something truthy, or fail after `timeout` seconds with the
    daemon's stderr in the message."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"the daemon exited while waiting for {what}" + daemon.tail())
        time.sleep(0.5)
    raise AssertionError(f"no {what} within {timeout:.0f} s (last: {last!r})" + daemon.tail())


def max_in_progress(runs: list[dict[str, Any]]) -> int:
    """The most runs in progress at one moment, a run being in progress from its launch
    (RUN_STARTING, when the queue let it go) to its end."""
    edges = sorted(
        [(r["launched"], 1) for r in runs] + [(r["end"], -1) for r in runs],
        key=lambda edge: (edge[0], edge[1]),  # an end before a launch at the same instant
    )
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def submit_sync_runs(instance: Any, workspace: Any, partition: str, count: int) -> list[str]:
    """Queue `count` sync runs of one store, as `dagster job launch` does."""
    from dagster._cli.job import _create_run
    from dagster._cli.workspace.cli_target import (
        get_code_location_from_workspace,
        get_remote_job_from_remote_repo,
        get_remote_repository_from_code_location,
    )

    from centra_pipeline.defs.jobs import SYNC_JOB_NAME

    location = get_code_location_from_workspace(workspace, None)
    repo = get_remote_repository_from_code_location(location, None)
    job = get_remote_job_from_remote_repo(repo, SYNC_JOB_NAME)
    ids = []
    for _ in range(count):
        run = _create_run(
            instance=instance,
            code_location=location,
            remote_repo=repo,
            remote_job=job,
            run_config={},
            tags={PARTITION_TAG: partition},
            op_selection=None,
            run_id=None,
        )
        ids.append(instance.submit_run(run.run_id, workspace).run_id)
    return ids


def stop_schedule(instance: Any, workspace: Any, name: str) -> None:
    """What `dagster schedule stop` does."""
    from dagster._cli.workspace.cli_target import (
        get_code_location_from_workspace,
        get_remote_repository_from_code_location,
    )

    location = get_code_location_from_workspace(workspace, None)
    schedule = get_remote_repository_from_code_location(location, None).get_schedule(name)
    instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)


def store_cursor(sensor_state: Any, store: str) -> dict[str, Any]:
    """One store's part of the webhook sensor's cursor (defs/sensors.py)."""
    cursor = sensor_state.instigator_data.cursor if sensor_state else None
    if not cursor:
        return {}
    inner = json.loads(cursor).get("stores", {}).get(store)
    return json.loads(inner) if inner else {}


def test_the_deploy_instance_is_postgres_with_the_projects_queue_and_policies(
    postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/dagster.yaml loads on Dagster 1.13 as a PostgreSQL instance, with the same run
    queue, monitoring, retries, retention and telemetry as the root dagster.yaml."""
    import dagster as dg
    from dagster._core.launcher import DefaultRunLauncher
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
    from dagster_postgres import DagsterPostgresStorage

    deploy = yaml.safe_load(DEPLOY_YAML.read_text())
    root = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    for key in ("concurrency", "run_coordinator", "run_monitoring", "run_retries", "retention"):
        assert deploy[key] == root[key], key
    assert deploy["telemetry"] == root["telemetry"] == {"enabled": False}
    assert deploy["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}

    url = postgres.create_database(f"dagster_{uuid.uuid4().hex[:12]}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DEPLOY_YAML.read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", sqlalchemy_url(url))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.get_ref().storage, DagsterPostgresStorage)
        assert isinstance(instance.run_launcher, DefaultRunLauncher)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert isinstance(instance.compute_log_manager, LocalComputeLogManager)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == MAX_CONCURRENT_RUNS
        assert queue.tag_concurrency_limits == [
            {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        assert not instance.telemetry_enabled
    tables = {t for (t,) in Pg(url).rows("SELECT tablename FROM pg_tables")}
    assert {"runs", "event_logs", "instigators", "job_ticks"} <= tables
    assert not list(home.rglob("*.db"))


@pytest.mark.slow
def test_the_daemon_keeps_runs_schedule_state_sensor_cursors_and_the_queue_in_postgres(
    postgres, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg
    from dagster._cli.workspace.cli_target import get_workspace_from_cli_opts
    from dagster._core.scheduler.instigation import InstigatorStatus, TickStatus
    from dagster_shared.cli import WorkspaceOpts

    from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME, SYNC_JOB_NAME
    from centra_pipeline.emulator.fleet import (
        Fleet,
        fleet_configs,
        store_secret_env,
        stores_file_text,
    )

    url = postgres.create_database(f"dagster_{uuid.uuid4().hex[:12]}")
    pg = Pg(url)
    home = tmp_path / "dagster_pg_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DEPLOY_YAML.read_text())
    receiver_port = free_port()
    configs = fleet_configs(
        STORES,
        now=NOW,
        orders=(100, 200),
        webhook_base_url=f"http://127.0.0.1:{receiver_port}/webhooks/centra",
    )
    daemon = Daemon(tmp_path / "daemon.log")
    receiver: subprocess.Popen | None = None
    with Fleet(configs) as fleet:
        names = fleet.names
        webhook_store, twice_store = names[0], names[1]
        stores_file = tmp_path / "stores.toml"
        stores_file.write_text(stores_file_text(fleet))
        for name, value in {
            **store_secret_env(fleet),
            "CENTRA_STORES_FILE": str(stores_file),
            "CENTRA_MAX_REQUESTS_PER_SECOND": "1000",
            "CENTRA_SYNC_CRON": "* * * * *",
            "CENTRA_SYNC_EXECUTOR": "in_process",  # one process per run on a 2-core machine
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": sqlalchemy_url(url),
        }.items():
            monkeypatch.setenv(name, value)
        env = dict(os.environ)  # every subprocess's (and the test's code server's)
        try:
            receiver = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "centra_pipeline.cli",
                    "webhook-server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(receiver_port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            daemon.start(env)

            def receiver_up() -> bool:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{receiver_port}/healthz", timeout=2
                    ):
                        return True
                except OSError:
                    return False

            wait_for("webhook receiver", receiver_up, 60, daemon)
            opts = WorkspaceOpts(workspace=(str(WORKSPACE),))
            with (
                dg.DagsterInstance.get() as instance,
                get_workspace_from_cli_opts(
                    instance, version=dg.__version__, workspace_opts=opts
                ) as workspace,
            ):
                # b. The schedule's first tick: one run per store, in PostgreSQL.
                def scheduled_tick():
                    done = [t for t in pg.ticks(SCHEDULE) if t.status == TickStatus.SUCCESS]
                    return done[0] if done else None

                tick = wait_for("schedule tick", scheduled_tick, 150, daemon)
                stop_schedule(instance, workspace, SCHEDULE)
                state = pg.instigator(SCHEDULE)
                assert state is not None and state.status == InstigatorStatus.STOPPED
                assert len(tick.run_ids) == STORES, tick
                scheduled = set(tick.run_ids)
                # d. Two more runs of one store, queued together behind its scheduled run.
                twice = set(submit_sync_runs(instance, workspace, twice_store, 2))

                def finished(ids: set[str]) -> list[dict] | None:
                    runs = [r for r in pg.runs() if r["run_id"] in ids]
                    if len(runs) == len(ids) and all(r["status"] not in IN_PROGRESS for r in runs):
                        return runs
                    return None

                (webhook_store_run,) = [
                    r["run_id"]
                    for r in pg.runs()
                    if r["run_id"] in scheduled and r["partition"] == webhook_store
                ]
                wait_for(
                    f"the end of {webhook_store}'s scheduled run",
                    lambda: finished({webhook_store_run}),
                    180,
                    daemon,
                )

                # c. A signed webhook through the real receiver (the other stores' runs go on):
                # one refresh run.
                emu = fleet.stores[webhook_store]
                changed = emu.tick(updated_orders=3, advance_seconds=60)
                assert changed["webhook_events"] > 0
                assert emu.wait_webhooks(30)

                def refresh_runs() -> list[dict]:
                    return [r for r in pg.runs() if r["job"] == ORDER_REFRESH_JOB_NAME]

                (refresh,) = wait_for("a refresh run", refresh_runs, 60, daemon)
                everything = scheduled | twice | {refresh["run_id"]}
                runs = wait_for("the end of every run", lambda: finished(everything), 240, daemon)
                assert {r["status"] for r in runs} == {"SUCCESS"}, runs
                assert sorted(r["partition"] for r in runs if r["run_id"] in scheduled) == names
                assert len(refresh_runs()) == 1, refresh_runs()
                (refresh,) = [r for r in runs if r["run_id"] == refresh["run_id"]]
                assert refresh["partition"] == webhook_store
                _first, last_seq = map(int, refresh["tags"]["centra_pipeline/inbox_seq"].split("-"))
                cursor = store_cursor(pg.instigator(SENSOR), webhook_store)
                assert (
                    cursor.get("seq") == last_seq
                    and cursor.get("run") == refresh["tags"]["dagster/run_key"]
                ), (cursor, refresh["tags"])

                # Everything launched so far (all_stores publishes too) ends before the restart.
                wait_for(
                    "no run in progress",
                    lambda: all(r["status"] not in IN_PROGRESS for r in pg.runs()),
                    120,
                    daemon,
                )
            schedule_ticks = len(pg.ticks(SCHEDULE))
            sensor_ticks = len(pg.ticks(SENSOR))
            runs_before = {r["run_id"] for r in pg.runs()}

            # Restart: the state the new daemon reads is the one in PostgreSQL.
            daemon.stop()
            restarted = time.time()
            daemon.start(env)

            def ticks_after_restart() -> list[Any] | None:
                # Finished ticks only: the one being evaluated is a row already, still STARTED.
                after = [
                    t
                    for t in pg.ticks(SENSOR)
                    if t.timestamp > restarted and t.status != TickStatus.STARTED
                ]
                return after if len(after) >= 2 else None

            after = wait_for("two sensor ticks after the restart", ticks_after_restart, 90, daemon)
            assert len(pg.ticks(SENSOR)) >= sensor_ticks + 2
            assert all(t.status == TickStatus.SKIPPED and not t.run_ids for t in after), after
            assert any(
                f"{webhook_store}: no order events after inbox seq {last_seq}"
                in (t.skip_reason or "")
                for t in after
            ), [t.skip_reason for t in after]
            assert store_cursor(pg.instigator(SENSOR), webhook_store)["seq"] == last_seq
            assert len(refresh_runs()) == 1  # no second refresh for the same events
            assert pg.instigator(SCHEDULE).status == InstigatorStatus.STOPPED
            assert len(pg.ticks(SCHEDULE)) == schedule_ticks  # stopped stays stopped
            # The only runs since: the all_stores sensor publishing the refresh's snapshot, if
            # it had not ticked since (its own cursor, in PostgreSQL too).
            wait_for(
                "no run in progress",
                lambda: all(r["status"] not in IN_PROGRESS for r in pg.runs()),
                120,
                daemon,
            )
            new = [r for r in pg.runs() if r["run_id"] not in runs_before]
            assert {r["job"] for r in new} <= {"centra_all_stores"}, new
        finally:
            daemon.stop()
            if receiver is not None:
                receiver.terminate()
                receiver.wait(timeout=30)

    # a. Every run's record and events are rows in PostgreSQL; nothing went to SQLite.
    runs = pg.runs()
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    for run in runs:
        assert run["events"] >= 5 and run["start"] and run["end"], run
    syncs = [r for r in runs if r["job"] == SYNC_JOB_NAME]
    assert len(syncs) == STORES + 2, syncs
    assert all(r["materializations"] > 0 for r in [*syncs, refresh])
    assert not list(home.rglob("*.db")), list(home.rglob("*.db"))

    # d. One store's runs one at a time, from launch to end (the tag limit); at most 4 in
    # progress, and the schedule's five runs reached that.
    by_store: dict[str, list[dict]] = {}
    for run in runs:
        if run["partition"]:
            by_store.setdefault(run["partition"], []).append(run)
    two = sorted(
        (r for r in by_store[twice_store] if r["run_id"] in twice), key=lambda r: r["launched"]
    )
    assert two[0]["end"] <= two[1]["launched"], two
    assert two[0]["end"] <= two[1]["start"], two
    for store, store_runs in by_store.items():
        store_runs.sort(key=lambda r: r["launched"])
        for earlier, later in itertools.pairwise(store_runs):
            assert earlier["end"] <= later["launched"], (store, earlier, later)
    assert max_in_progress(runs) == MAX_CONCURRENT_RUNS, runs
    fifth = max((r for r in runs if r["run_id"] in scheduled), key=lambda r: r["launched"])
    assert any(
        r["end"] <= fifth["launched"] for r in runs if r["run_id"] in scheduled - {fifth["run_id"]}
    ), "the fifth scheduled run was launched before any other had ended"
