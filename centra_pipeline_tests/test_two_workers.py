"""Two workers, one store (docs/architecture.md, "Workers anywhere"): two working
directories stand in for two machines and share only PostgreSQL (Dagster's instance, the
inbox, the store's lease and warehouse pointer) and object storage. They alternate syncs and
webhook refreshes and end where the API is; a worker SIGKILLed while it holds the lease
leaves nothing corrupt and the other takes over at once. Real parts: `centra-pipeline sync`
subprocesses, the receiver, moto's S3 server, PostgreSQL, the emulator, Dagster's execution.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from centra_pipeline.storage.lease import Lease
from centra_pipeline_tests.conftest import WEBHOOK_SECRET, SharedStorage, running_emulator
from centra_pipeline_tests.test_dagster import stored_text
from centra_pipeline_tests.test_dagster_postgres import DEPLOY_YAML, sqlalchemy_url
from centra_pipeline_tests.test_object_storage import CACHES, assert_snapshot_equals_api
from centra_pipeline_tests.test_webhook_flow import run_sensor_refreshes
from centra_pipeline_tests.test_webhook_receiver import (
    body_of,
    post,
    receiver_process,
    signed_headers,
)

pytestmark = pytest.mark.slow

# How long the other worker may wait for a dead worker's lease: PostgreSQL ends the session
# as soon as the kernel closes the dead process's socket.
TAKEOVER_SECONDS = 5.0


@pytest.fixture
def emu():
    """A small store: these tests are about where the data goes, not how much of it."""
    with running_emulator(orders=300, customers=80, products=12) as emulator:
        yield emulator


@dataclass
class Worker:
    name: str
    root: Path
    env: dict[str, str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def sync(self, *extra: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "centra_pipeline.cli", "sync", *extra],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"worker {self.name}: {done.stdout}\n{done.stderr}"

    def killed_at(self, point: str) -> float:
        """Start a sync, SIGKILL it once it reaches `point`; returns when it died."""
        marker = self.root / f"failpoint-{uuid.uuid4().hex[:6]}"
        env = {**self.env, "CENTRA_FAILPOINT": point, "CENTRA_FAILPOINT_FILE": str(marker)}
        log = marker.with_suffix(".log")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "centra_pipeline.cli", "sync"],
                env=env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, f"sync ended before {point}: {log.read_text()}"
            assert time.monotonic() < deadline, f"sync never reached {point}"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        return time.monotonic()

    def local_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.data)) for p in self.data.rglob("*") if p.is_file())


def workers(shared: SharedStorage, postgres, tmp_path: Path) -> tuple[Worker, Worker]:
    """Two workers with their own data directory and DAGSTER_HOME on one Dagster instance in
    PostgreSQL (deploy/dagster.yaml)."""
    dagster_url = sqlalchemy_url(postgres.create_database(f"dagster_{uuid.uuid4().hex[:10]}"))
    made = []
    for name in ("a", "b"):
        root = tmp_path / f"worker-{name}"
        home = root / "dagster_home"
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text(DEPLOY_YAML.read_text())
        env = {
            **os.environ,
            **shared.env(),
            "CENTRA_DATA_DIR": str(root / "data"),
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": dagster_url,
        }
        made.append(Worker(name, root, env))
    return made[0], made[1]


def send_webhooks(url: str, emu, count: int) -> list[int]:
    changed = sorted(emu.tick(updated_orders=count, advance_seconds=3600)["updated_order_ids"])
    body = body_of(
        *[
            {"type": "order", "action": "update", "id": n, "date": f"2026-01-15 14:00:{i:02d}"}
            for i, n in enumerate(changed)
        ]
    )
    answer = post(url + "/webhooks/centra", data=body, headers=signed_headers(body, WEBHOOK_SECRET))
    assert answer.status_code == 200
    return changed


def refresh_on(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook sensor's refresh runs, executed in this process as `worker`."""
    for name in ("CENTRA_DATA_DIR", "DAGSTER_HOME", "DAGSTER_PG_URL"):
        monkeypatch.setenv(name, worker.env[name])
    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME: the worker's home
        run_sensor_refreshes(instance)


def version_objects(shared: SharedStorage) -> list[str]:
    return [k for k in shared.objects("centra/warehouse/") if not k.endswith("/")]


def pointer(shared: SharedStorage, store: str = "default") -> int:
    """The number of the store's current warehouse version (0: none yet)."""
    lease = Lease(shared.inbox_url, store)
    lease.acquire(exclusive=False, timeout=TAKEOVER_SECONDS)
    try:
        current = lease.current()
    finally:
        lease.release()
    return current.version if current else 0


def test_two_workers_alternate_syncs_and_refreshes_and_end_at_the_api(
    centra_env, shared_storage, postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = centra_env
    a, b = workers(shared_storage, postgres, tmp_path)
    with receiver_process(
        tmp_path / "receiver" / "data",
        tmp_path / "receiver.log",
        WEBHOOK_SECRET,
        env=shared_storage.env(),
    ) as (_, receiver):
        a.sync()
        emu.tick(new_orders=15, new_returns=2, updated_customers=3, advance_seconds=3600)
        before = pointer(shared_storage)
        b.sync()
        # A sync hands the warehouse over once for its streams' step and at most once for
        # the snapshot's, not once per stream merged.
        assert 1 <= pointer(shared_storage) - before <= 2
        send_webhooks(receiver, emu, 5)
        refresh_on(a, monkeypatch)
        emu.tick(new_orders=10, updated_products=2, advance_seconds=3600)
        send_webhooks(receiver, emu, 4)
        b.sync()  # applies the waiting webhook events too
        send_webhooks(receiver, emu, 3)
        refresh_on(b, monkeypatch)
        a.sync()
    assert_snapshot_equals_api(shared_storage, tmp_path, emu)
    assert len(version_objects(shared_storage)) == 1
    for worker in (a, b):
        files = worker.local_files()
        assert all(f.startswith(CACHES) for f in files), (worker.name, files)
    assert_nothing_secret_in_s3_or_postgres(shared_storage, postgres, a, emu, tmp_path)


def assert_nothing_secret_in_s3_or_postgres(shared, postgres, worker, emu, tmp_path) -> None:
    """The local secret test's scan, on every object in the bucket (Parquet and DuckDB
    decoded) and on a plain dump of every database on the server (inbox, lease, Dagster)."""
    password = shared.inbox_url.split(":")[2].split("@")[0]
    secrets = {
        "order API key": emu.order_api_key,
        "shop API key": emu.shop_api_key,
        "webhook secret": WEBHOOK_SECRET,
        "PII key": shared.pii_key,
        "AWS secret key": shared.s3.secret_key,
        "PostgreSQL password": password,
    }
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    objects = {k: v for k, v in shared.s3.objects(shared.bucket).items() if not k.endswith("/")}
    assert any(k.endswith(".parquet") for k in objects) and any(
        k.endswith(".duckdb") for k in objects
    )
    for n, (key, body) in enumerate(objects.items()):
        local = scanned / f"{n}{Path(key).suffix}"
        local.write_bytes(body)
        text = stored_text(local)
        for what, value in secrets.items():
            assert value.encode() not in text, (what, key)
    dumps = b""
    for database in list_databases(postgres):
        done = subprocess.run(
            [str(postgres.bin / "pg_dump"), "--no-owner", postgres.url(database)],
            capture_output=True,
            timeout=120,
            check=True,
        )
        dumps += done.stdout
    assert b"centra_inbox" in dumps and b"warehouse_versions" in dumps and b"event_logs" in dumps
    for what, value in secrets.items():
        assert value.encode() not in dumps, what


def list_databases(postgres) -> list[str]:
    import psycopg2

    with psycopg2.connect(postgres.url()) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")
        return [name for (name,) in cur.fetchall()]


def test_a_worker_killed_holding_the_lease_is_taken_over_and_leaves_nothing_corrupt(
    centra_env, shared_storage, postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = centra_env
    a, b = workers(shared_storage, postgres, tmp_path)
    a.sync()
    lease = Lease(shared_storage.inbox_url, "default")

    # Killed inside a merge transaction, holding the lease: the pointer stays at the last
    # version handed over; B takes the lease at once and ends exact.
    emu.tick(new_orders=12, new_returns=2, updated_customers=2, advance_seconds=3600)
    died = a.killed_at("warehouse.before_commit")
    lease.acquire(exclusive=True, timeout=TAKEOVER_SECONDS)
    took = time.monotonic() - died
    before = lease.current()
    lease.release()
    assert not (a.data / "warehouse" / "warehouse.duckdb.version").exists()  # never trusted
    b.sync()
    assert_snapshot_equals_api(shared_storage, tmp_path, emu)
    assert took < TAKEOVER_SECONDS

    # Killed after uploading a version, before moving the pointer to it: the orphan is not
    # current, and the next writer deletes it.
    emu.tick(new_orders=8, advance_seconds=3600)
    b.killed_at("warehouse.before_handover")
    assert len(version_objects(shared_storage)) == 2
    # Its step merged every stream, but reports them only once handed over: the UI shows
    # no materialization and no check of the killed run.
    for name in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
        monkeypatch.setenv(name, b.env[name])
    with dg.DagsterInstance.get() as instance:
        (killed, *_) = instance.get_runs(dg.RunsFilter(job_name="centra_sync"), limit=1)
        reported = [
            entry.dagster_event.event_type_value
            for entry in instance.all_logs(killed.run_id)
            if entry.dagster_event is not None
        ]
        assert "STEP_START" in reported
        assert not {"ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"} & set(reported), reported
    a.sync()  # A's own copy is stale: it fetches the current version
    assert_snapshot_equals_api(shared_storage, tmp_path, emu)
    lease.acquire(exclusive=False, timeout=TAKEOVER_SECONDS)
    after = lease.current()
    lease.release()
    assert after is not None and before is not None and after.version > before.version
    assert version_objects(shared_storage) == [f"centra/warehouse/{after.object}"]
    assert (a.data / "warehouse" / "warehouse.duckdb.version").read_text() == after.object
