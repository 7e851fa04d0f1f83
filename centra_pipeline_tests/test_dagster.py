"""The Dagster layer: definitions, the asset graph, materialization metadata, checks, and
what happens without configuration. Runs use Dagster's real execution (in process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.dependency import NodeHandle

from centra_pipeline.definitions import defs
from centra_pipeline.defs.jobs import SYNC_JOB_NAME, sync_run_config
from centra_pipeline.defs.keys import SNAPSHOT_KEY, SYNC_STEP, lake_key, source_key, table_key
from centra_pipeline.settings import project_root
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams import STREAMS, TABLES

LAKE_METADATA = {
    "records_fetched",
    "requests",
    "retries",
    "window",
    "cursor_before",
    "cursor_after",
    "duration_seconds",
    "dagster/row_count",
    "load_id",
}
TABLE_METADATA = {
    "rows_fetched",
    "rows_new",
    "rows_updated",
    "rows_unchanged",
    "cursor_before",
    "cursor_after",
    "duration_seconds",
    "dagster/row_count",
}


def run_sync_job(instance: dg.DagsterInstance, **config) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    ops = sync_run_config(**config)
    return job.execute_in_process(
        run_config={"ops": ops}, instance=instance, raise_on_error=False, partition_key="default"
    )


def test_definitions_load_without_any_centra_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRA_")}
    code = (
        "from centra_pipeline.definitions import defs; "
        "print(len(list(defs.resolve_asset_graph().get_all_asset_keys())), "
        "[s.default_status.value for s in defs.schedules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    count, statuses = done.stdout.strip().split(" ", 1)
    assert int(count) == len(STREAMS) * 2 + len(TABLES) + 1
    assert "STOPPED" in statuses  # nothing runs by itself until Centra is configured


def test_schedule_settings_are_read_from_the_env_file_too(tmp_path: Path) -> None:
    """Like every other setting, CENTRA_SYNC_CRON and CENTRA_SYNC_EXECUTOR may come from .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRA_")}
    (tmp_path / ".env").write_text(
        "CENTRA_SYNC_CRON=*/5 * * * *\nCENTRA_SYNC_EXECUTOR=in_process\n"
    )
    code = (
        "from centra_pipeline.definitions import defs; "
        "job = defs.resolve_job_def('centra_sync'); "
        "print(defs.resolve_schedule_def('centra_sync_schedule').cron_schedule, "
        "list(job.partitioned_config.get_run_config_for_partition_key('default')['execution']['config']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["*/5", "*", "*", "*", "*", "['in_process']"]


def test_a_run_without_configuration_says_what_to_set(data_dir: Path) -> None:
    with dg.instance_for_test() as instance:
        result = run_sync_job(instance)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures
    text = " ".join(str(e.event_specific_data.error) for e in failures)
    assert "CENTRA_ORDER_API_URL" in text and "centra-pipeline demo" in text


def test_asset_graph_shows_lineage_groups_kinds_and_schemas() -> None:
    graph = defs.resolve_asset_graph()
    for stream in STREAMS.values():
        lake = graph.get(lake_key(stream))
        assert source_key(stream) in lake.parent_keys
        assert lake.group_name == (
            "centra_order_api" if stream.api == "order_api" else "centra_shop_api"
        )
        assert "parquet" in lake.kinds
        for table in stream.tables:
            node = graph.get(table_key(table))
            assert lake_key(stream) in node.parent_keys
            assert SNAPSHOT_KEY in node.child_keys
            assert {"duckdb", "table"} <= set(node.kinds)
            assert node.description and table.source in node.description
            schema = node.metadata["dagster/column_schema"]
            names = [c.name for c in schema.columns]
            assert names[: len(table.columns)] == table.column_names
            assert "_load_id" in names and "_extracted_at" in names
            checks = {key.name for key in graph.get_check_keys_for_assets({table_key(table)})}
            assert {"primary_key_unique", "required_not_null", "schema_drift"} <= checks
            if table.parent:
                assert f"references_{table.parent}" in checks
            else:
                assert "freshness_check" in checks
                assert node.freshness_policy is not None
    spec = next(
        c for c in defs.resolve_asset_graph().asset_check_keys if c.name == "primary_key_unique"
    )
    assert graph.get_check_spec(spec).blocking


def test_sync_job_materializes_every_asset_with_metadata_and_checks(centra_env, data_dir):
    with dg.instance_for_test() as instance:
        result = run_sync_job(instance)
        assert result.success
        materialized = {
            m.asset_key: m
            for m in (
                e.event_specific_data.materialization
                for e in result.all_events
                if e.event_type_value == "ASSET_MATERIALIZATION"
            )
        }
        for stream in STREAMS.values():
            meta = materialized[lake_key(stream)].metadata
            assert set(meta) >= LAKE_METADATA, stream.name
            parent = materialized[table_key(stream.parent)].metadata
            assert set(parent) >= TABLE_METADATA, stream.name
            assert (
                parent["rows_new"].value == meta["records_fetched"].value or stream.name == "orders"
            )
        snapshot = materialized[SNAPSHOT_KEY].metadata
        assert snapshot["table_rows"].value["orders"] > 0
        checks = [
            e.event_specific_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        assert checks
        failing = {(c.asset_key.path[-1], c.check_name) for c in checks if not c.passed}
        # The emulator sends custom order attributes: a warning, and they are kept.
        assert failing == {("orders", "schema_drift")}
        drift = next(c for c in checks if c.check_name == "schema_drift" and not c.passed)
        assert drift.severity == dg.AssetCheckSeverity.WARN
        assert "order_attr_external_id" in drift.description

    con = duckdb.connect(str(data_dir / "centra.duckdb"), read_only=True)
    extras = con.execute(
        "SELECT count(*) FROM orders WHERE _extra->>'order_attr_external_id' IS NOT NULL"
    ).fetchall()[0][0]
    con.close()
    assert extras > 0


def test_duplicate_primary_keys_block_the_snapshot(centra_env, data_dir):
    with dg.instance_for_test() as instance:
        assert run_sync_job(instance).success
        published = (data_dir / "centra.duckdb").stat().st_mtime_ns
        # Something went wrong in the warehouse: a customer appears twice.
        with Warehouse(data_dir / "warehouse" / "warehouse.duckdb").writer() as con:
            con.execute("INSERT INTO customers SELECT * FROM customers LIMIT 1")
        job = defs.resolve_job_def(SYNC_JOB_NAME)
        result = job.execute_in_process(
            instance=instance,
            partition_key="default",
            raise_on_error=False,
            asset_selection=[table_key(TABLES["customers"]), SNAPSHOT_KEY],
        )
        checks = {
            c.check_name: c
            for c in (
                e.event_specific_data
                for e in result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
            )
        }
        assert not checks["primary_key_unique"].passed
        assert "1 duplicated" in checks["primary_key_unique"].description
        snapshot_steps = [
            e
            for e in result.all_events
            if e.step_key == "analyst__centra_duckdb" and e.event_type_value == "STEP_SUCCESS"
        ]
        assert not snapshot_steps, "the snapshot must not be published over a broken table"
    assert (data_dir / "centra.duckdb").stat().st_mtime_ns == published


def stored_text(path: Path) -> bytes:
    """What a file holds, decoded: Parquet (zstd) and DuckDB files compress their strings,
    so a secret inside them would not show in their raw bytes."""
    if path.suffix == ".parquet":
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()
        return repr(rows).encode()
    if path.suffix == ".duckdb":
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal"
            ).fetchall()
            rows = [con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall() for s, t in tables]
        return repr(rows).encode()
    return path.read_bytes()


def test_stored_text_finds_a_secret_in_compressed_files(tmp_path: Path) -> None:
    """The leak test below would pass vacuously if it could not see inside these files."""
    secret = "order-key-planted-3f9a"
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute(
        "CREATE TABLE t AS SELECT 'x' || range::VARCHAR || ? AS v FROM range(5000)", [secret]
    )
    con.execute(f"COPY t TO '{tmp_path / 't.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    for name in ("t.parquet", "t.duckdb"):
        assert secret.encode() in stored_text(tmp_path / name)


def test_no_secret_reaches_run_config_metadata_logs_or_files(centra_env, data_dir, capfd):
    """A full sync, an incremental one (targeted catalogue read) and a failing one."""
    secrets = [
        centra_env.order_api_key,
        centra_env.shop_api_key,
        os.environ["CENTRA_WEBHOOK_SECRET"],
    ]
    logged = ""
    with dg.instance_for_test() as instance:
        assert run_sync_job(instance).success
        centra_env.tick(new_orders=5, updated_products=3, advance_seconds=3600)
        assert run_sync_job(instance).success
        centra_env.set_plugin("shop", secret="a-key-the-pipeline-does-not-have")
        assert not run_sync_job(instance).success  # 401 from the Shop API
        for run in instance.get_runs():
            records = instance.get_records_for_run(run.run_id, limit=100_000).records
            logged += json.dumps([r.event_log_entry.user_message for r in records])
            logged += repr([r.event_log_entry.dagster_event for r in records])
            logged += json.dumps(run.run_config) + json.dumps(run.tags)
    assert "401" in logged or "key" in logged.lower()  # the failure was recorded
    out, err = capfd.readouterr()
    files = {path: stored_text(path) for path in data_dir.rglob("*") if path.is_file()}
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".duckdb" for p in files)
    for secret in secrets:
        assert secret not in logged
        assert secret not in out and secret not in err
        for path, text in files.items():
            assert secret.encode() not in text, path


def test_workspace_and_instance_config_are_what_dagster_dev_loads() -> None:
    root = project_root()
    assert "centra_pipeline.definitions" in (root / "workspace.yaml").read_text()
    import yaml

    instance = yaml.safe_load((root / "dagster.yaml").read_text())
    limits = instance["concurrency"]["runs"]["tag_concurrency_limits"]
    # One run per store at a time: every run of the store assets carries its partition.
    per_store = {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}}
    assert {**per_store, "limit": 1} in limits
    for job_name in (
        "centra_sync",
        "centra_order_refresh",
        "centra_reconciliation",
        "centra_maintenance",
    ):
        job = defs.resolve_job_def(job_name)
        assert job.tags.get("centra_pipeline/warehouse_writer") == "true"
        if job_name != "centra_maintenance":  # maintenance visits every store in turn
            assert job.partitions_def is not None
            assert list(job.partitions_def.get_partition_keys()) == ["default"]


@pytest.mark.parametrize("job_name", ["centra_sync", "centra_order_refresh"])
def test_jobs_select_the_snapshot(job_name: str) -> None:
    job = defs.resolve_job_def(job_name)
    keys = job.asset_layer.selected_asset_keys
    assert SNAPSHOT_KEY in keys


@pytest.mark.parametrize("job_name", ["centra_sync", "centra_order_refresh"])
def test_jobs_run_the_stream_checks_and_leave_freshness_to_its_sensor(job_name: str) -> None:
    job = defs.resolve_job_def(job_name)
    nodes = {node.name for node in job.nodes}
    assert SYNC_STEP in nodes
    assert not [name for name in nodes if "freshness" in name]
    checks = set()
    for node in job.nodes:
        for key in job.asset_layer.get_selected_entity_keys_for_node(NodeHandle(node.name, None)):
            if isinstance(key, dg.AssetCheckKey):
                checks.add(key.name)
    assert {
        "primary_key_unique",
        "required_not_null",
        "schema_drift",
        "references_orders",
    } <= checks
    # Freshness is evaluated by its sensor, between runs, where it can fail.
    sensor = defs.resolve_sensor_def("centra_freshness_checks_sensor")
    assert sensor is not None


def _selected_checks(job: dg.JobDefinition) -> set[str]:
    checks = set()
    for node in job.nodes:
        for key in job.asset_layer.get_selected_entity_keys_for_node(NodeHandle(node.name, None)):
            if isinstance(key, dg.AssetCheckKey):
                checks.add(key.name)
    return checks


def test_the_reconcile_schedule_runs_the_reconciliation_job_with_its_drift_check() -> None:
    schedule = defs.resolve_schedule_def("centra_reconcile")
    assert schedule.job_name == "centra_reconciliation"
    assert schedule.cron_schedule == "30 3 * * *"
    job = defs.resolve_job_def("centra_reconciliation")
    assert SNAPSHOT_KEY in job.asset_layer.selected_asset_keys
    assert "reconcile_drift" in _selected_checks(job)
    # Hourly syncs and webhook refreshes do not evaluate it: it could only pass there.
    for name in ("centra_sync", "centra_order_refresh"):
        assert "reconcile_drift" not in _selected_checks(defs.resolve_job_def(name))


def test_the_reconcile_schedule_reads_its_cron_and_bad_values_are_refused(tmp_path: Path) -> None:
    code = (
        "from centra_pipeline.definitions import defs; "
        "print(defs.resolve_schedule_def('centra_reconcile').cron_schedule)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRA_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "CENTRA_RECONCILE_CRON": "15 2 * * 1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "15 2 * * 1"
    from centra_pipeline.settings import ConfigError, Settings

    for name, value in (
        ("CENTRA_RECONCILE_CRON", "every day"),
        ("CENTRA_RECONCILE_FULL_DAYS", "-1"),
        ("CENTRA_RECONCILE_WARN_SHARE", "2"),
        ("CENTRA_RECONCILE_WARN_SHARE", "abc"),
    ):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})
