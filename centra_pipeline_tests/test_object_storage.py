"""A store on object storage (CENTRA_STORAGE_URL) with its warehouse handed over through
PostgreSQL (docs/architecture.md, "Workers anywhere"): a full sync, an emulator tick, an
incremental sync and a webhook refresh, with Dagster's instance on PostgreSQL too. The
snapshot on object storage equals the API, and the worker's data directory holds nothing
but caches: deleted, the next run rebuilds them from object storage. Real parts: moto's S3
server and PostgreSQL on loopback, the emulator, the receiver and Dagster's execution."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from centra_pipeline.cli.main import main
from centra_pipeline.definitions import defs
from centra_pipeline.defs.jobs import SYNC_JOB_NAME
from centra_pipeline.storage.objects import ObjectStore
from centra_pipeline_tests.conftest import TZ, WEBHOOK_SECRET, SharedStorage, running_emulator
from centra_pipeline_tests.test_dagster_postgres import sqlalchemy_url
from centra_pipeline_tests.test_webhook_flow import run_sensor_refreshes
from centra_pipeline_tests.test_webhook_receiver import (
    body_of,
    post,
    receiver_process,
    signed_headers,
)
from centra_pipeline_tests.truth import table_differences, truth_tables

# What a worker's data directory may hold with object storage: caches, each rebuilt from
# object storage or PostgreSQL when it is lost.
CACHES = ("warehouse/", "centra.duckdb", "staging/")


def postgres_instance(postgres) -> dg.DagsterInstance:
    url = sqlalchemy_url(postgres.create_database(f"dagster_{uuid.uuid4().hex[:10]}"))
    return dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}})


def published(shared: SharedStorage, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """The snapshot as an analyst gets it from object storage."""
    target = tmp_path / f"analyst-{uuid.uuid4().hex[:6]}.duckdb"
    ObjectStore.for_url(shared.url).download("centra.duckdb", target)
    return duckdb.connect(str(target), read_only=True)


def assert_snapshot_equals_api(shared, tmp_path, emu, streams=None) -> None:
    con = published(shared, tmp_path)
    try:
        assert table_differences(con, truth_tables(emu, TZ, streams)) == {}
    finally:
        con.close()


def local_files(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file())


def run(job_name: str, instance: dg.DagsterInstance, **options) -> None:
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, partition_key="default", **options
    )
    assert result.success


@pytest.fixture
def emu():
    """A small store: these tests are about where the data goes, not how much of it."""
    with running_emulator(orders=300, customers=80, products=12) as emulator:
        yield emulator


@pytest.mark.slow
def test_a_store_on_object_storage_syncs_refreshes_and_keeps_only_caches_locally(
    centra_env,
    shared_storage: SharedStorage,
    postgres,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    emu = centra_env
    with postgres_instance(postgres) as instance:
        run(SYNC_JOB_NAME, instance)
        assert_snapshot_equals_api(shared_storage, tmp_path, emu)

        # (no updated orders: a change to an old order arrives by webhook, below)
        emu.tick(new_orders=20, new_returns=3, updated_customers=4, advance_seconds=3600)
        run(SYNC_JOB_NAME, instance)
        assert_snapshot_equals_api(shared_storage, tmp_path, emu)

        # A webhook through a receiver on another host, then the sensor's refresh.
        changed = sorted(emu.tick(updated_orders=8, advance_seconds=3600)["updated_order_ids"])
        body = body_of(
            *[
                {"type": "order", "action": "update", "id": n, "date": f"2026-01-15 13:00:{i:02d}"}
                for i, n in enumerate(changed)
            ]
        )
        with receiver_process(
            tmp_path / "receiver-host" / "data",
            tmp_path / "receiver.log",
            WEBHOOK_SECRET,
            env=shared_storage.env(),
        ) as (_, url):
            answer = post(
                url + "/webhooks/centra", data=body, headers=signed_headers(body, WEBHOOK_SECRET)
            )
            assert answer.status_code == 200
        run_sensor_refreshes(instance)
        assert_snapshot_equals_api(shared_storage, tmp_path, emu, ["orders"])

        # The worker's disk held only caches: lose them all, and the next sync is exact.
        files = local_files(data_dir)
        assert files and all(f.startswith(CACHES) for f in files), files
        assert not list((tmp_path / "receiver-host").rglob("*.*")), "the receiver wrote files"
        keys = [k for k in shared_storage.objects() if not k.endswith("/")]  # not dir markers
        assert any("/lake/orders/day=" in k for k in keys)
        versions = [k for k in keys if k.startswith("centra/warehouse/")]
        assert len(versions) == 1 and versions[0].startswith("centra/warehouse/v")  # one kept
        for path in sorted(data_dir.iterdir()):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        # An analyst's query on a worker without the snapshot reads the published one.
        con = published(shared_storage, tmp_path)
        (orders,) = con.execute("SELECT count(*) FROM orders").fetchone()
        con.close()
        capsys.readouterr()
        assert main(["query", "SELECT count(*) AS n FROM orders"]) == 0
        assert str(orders) in capsys.readouterr().out
        assert (data_dir / "centra.duckdb").exists()
        emu.tick(new_orders=10, updated_customers=3, advance_seconds=3600)
        run(SYNC_JOB_NAME, instance)
        assert_snapshot_equals_api(shared_storage, tmp_path, emu)
