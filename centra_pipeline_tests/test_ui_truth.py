"""What the Dagster UI states must be true: each test here pins one thing a data engineer
reads there (on the definitions, or on real materializations and check results)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from centra_pipeline.definitions import defs
from centra_pipeline.defs import metadata
from centra_pipeline.defs.freshness import (
    FRESHNESS_JOB_NAME,
    FRESHNESS_SENSOR_NAME,
    Windows,
    sensor_tick,
)
from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME, SYNC_JOB_NAME, sync_run_config
from centra_pipeline.defs.keys import ORDER_COUNT_TAG, SNAPSHOT_KEY, lake_key, source_key, table_key
from centra_pipeline.defs.schedules import SYNC_SCHEDULE_NAME, describe_cron, freshness_windows
from centra_pipeline.storage import quality
from centra_pipeline.streams import STREAMS, TABLES
from centra_pipeline_tests.conftest import TZ, Pipeline


def _load_definitions(tmp_path: Path, code: str, **env: str) -> str:
    """Load the definitions in a fresh process with exactly `env` as CENTRA_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CENTRA_")}
    done = subprocess.run(
        [sys.executable, "-c", "from centra_pipeline.definitions import defs; " + code],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# --- schedules and freshness follow the configured cron -------------------------------------
def test_the_schedule_description_is_written_from_its_cron(tmp_path: Path) -> None:
    out = _load_definitions(
        tmp_path,
        "s = defs.resolve_schedule_def('centra_sync_schedule'); "
        "print(s.cron_schedule + '|' + s.description)",
        CENTRA_SYNC_CRON="*/5 * * * *",
    )
    cron, description = out.split("|")
    assert cron == "*/5 * * * *"
    assert "every 5 minutes" in description and "every hour" not in description
    assert "UTC" in description
    default = defs.resolve_schedule_def(SYNC_SCHEDULE_NAME)
    assert default.cron_schedule == "0 * * * *"
    assert "every hour on the hour" in default.description
    assert not [s.name for s in defs.schedules if "hourly" in s.name]


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 * * * *", "every hour on the hour"),
        ("15 * * * *", "every hour at :15"),
        ("*/10 * * * *", "every 10 minutes"),
        ("0 */6 * * *", "every 6 hours at :00"),
        ("30 3 * * *", "every day at 03:30"),
        ("15 2 * * 1", "every Monday at 02:15"),
        ("5,35 * * * *", "on cron `5,35 * * * *`"),
    ],
)
def test_crons_are_described_in_words_or_shown_as_they_are(cron: str, words: str) -> None:
    assert describe_cron(cron).startswith(words)


def test_freshness_windows_follow_the_sync_cron(tmp_path: Path) -> None:
    assert freshness_windows("0 * * * *") == (timedelta(minutes=90), timedelta(hours=2))
    assert freshness_windows("*/5 * * * *") == (timedelta(minutes=7.5), timedelta(minutes=10))
    out = _load_definitions(
        tmp_path,
        "import dagster as dg; g = defs.resolve_asset_graph(); "
        "p = g.get(dg.AssetKey(['warehouse', 'orders'])).freshness_policy; "
        "print(int(p.fail_window.to_timedelta().total_seconds()), "
        "int(p.warn_window.to_timedelta().total_seconds()))",
        CENTRA_SYNC_CRON="*/5 * * * *",
    )
    assert out.split() == ["600", "450"]


# --- freshness is evaluated per store, truthfully, from the store's own merges ------------
def test_the_freshness_sensor_describes_its_windows_and_records_without_runs() -> None:
    sensor = defs.resolve_sensor_def(FRESHNESS_SENSOR_NAME)
    assert sensor.targets == []  # it records evaluations itself; the job is for "evaluate now"
    assert "2 h" in sensor.description and "90 min" in sensor.description
    assert FRESHNESS_JOB_NAME in {job.name for job in defs.resolve_all_job_defs()}
    for other in defs.sensors:
        assert other.description, other.name


def test_freshness_passes_after_a_sync_then_warns_then_fails(centra_env, data_dir) -> None:
    """The sensor records a passing evaluation per table after a sync, nothing while nothing
    changes, and a WARN, then an ERROR failure, as the merge ages past each window."""
    windows = Windows(*freshness_windows("0 * * * *"))
    parents = {table_key(s.parent) for s in STREAMS.values()}
    with dg.instance_for_test() as instance:
        sensor = defs.resolve_sensor_def(FRESHNESS_SENSOR_NAME)
        never = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert {e.asset_key for e in never.asset_events} == parents
        assert not any(e.passed for e in never.asset_events)
        job = defs.resolve_job_def(SYNC_JOB_NAME)
        assert job.execute_in_process(instance=instance, partition_key="default").success
        merged = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, cursor=never.cursor)
        )
        assert {e.asset_key for e in merged.asset_events} == parents
        assert all(e.passed and e.partition == "default" for e in merged.asset_events)
        assert all(e.target_materialization_data for e in merged.asset_events)
        quiet = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, cursor=merged.cursor)
        )
        assert not quiet.asset_events and quiet.skip_message

        now = time.time()
        late, cursor = sensor_tick(instance, ["default"], windows, merged.cursor, now + 95 * 60)
        assert {e.severity for e in late} == {dg.AssetCheckSeverity.WARN}
        assert not any(e.passed for e in late) and len(late) == len(parents)
        overdue, _ = sensor_tick(instance, ["default"], windows, cursor, now + 3 * 3600)
        assert {e.severity for e in overdue} == {dg.AssetCheckSeverity.ERROR}
        assert "fails after 2 h" in overdue[0].description

        # "Evaluate now" for one store runs the same evaluation in a run of the job.
        checks = defs.resolve_job_def(FRESHNESS_JOB_NAME)
        done = checks.execute_in_process(instance=instance, tags={"dagster/partition": "default"})
        evaluations = [
            e.event_specific_data
            for e in done.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        assert {e.asset_key for e in evaluations} == parents
        assert all(e.passed and e.partition == "default" for e in evaluations)
        unsaid = checks.execute_in_process(instance=instance, raise_on_error=False)
        assert not unsaid.success and "tag dagster/partition=<store>" in str(
            unsaid.get_step_failure_events()[0].event_specific_data.error
        )


# --- materialization metadata --------------------------------------------------------------
def test_cursors_and_windows_show_the_store_timezone_and_utc() -> None:
    assert metadata.local_time("2026-01-15 12:00:00", TZ) == (
        "2026-01-15 12:00:00 Europe/Stockholm = 2026-01-15 11:00:00 UTC"
    )
    assert metadata.local_time(None, TZ) == ""
    window = metadata.window_metadata({"newer_than": "2026-07-01 00:00:00", "days": 3}, TZ)
    assert window.value == {
        "newer_than": "2026-07-01 00:00:00 Europe/Stockholm = 2026-06-30 22:00:00 UTC",
        "days": 3,
        "timezone": TZ,
    }


def test_a_sync_reports_endpoints_tables_and_snapshot_truthfully(centra_env, data_dir) -> None:
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(SYNC_JOB_NAME).execute_in_process(
            instance=instance, partition_key="default"
        )
        assert result.success
        events = result.all_events
        observed = {
            e.event_specific_data.asset_observation.asset_key
            for e in events
            if e.event_type_value == "ASSET_OBSERVATION"
        }
        materialized = {
            m.asset_key: m.metadata
            for m in (
                e.event_specific_data.materialization
                for e in events
                if e.event_type_value == "ASSET_MATERIALIZATION"
            )
        }
    # The six endpoint assets are observed by every read (not "never materialized").
    assert observed == {source_key(s) for s in STREAMS.values()}
    graph = defs.resolve_asset_graph()
    assert all(graph.get(source_key(s)).owners for s in STREAMS.values())
    # Cursors carry their timezone.
    cursor = materialized[table_key(STREAMS["orders"].parent)]["cursor_after"].value
    assert TZ in cursor and cursor.endswith(" UTC")
    assert "timezone" in materialized[lake_key(STREAMS["orders"])]["window"].value
    # The snapshot: every table's rows, and their sum as the file's row count.
    snapshot = materialized[SNAPSHOT_KEY]
    per_table = {name: snapshot[f"rows/{name}"].value for name in TABLES}
    assert per_table["orders"] > 0 and per_table["order_lines"] > per_table["orders"]
    assert snapshot["dagster/row_count"].value == sum(per_table.values())


def test_a_webhook_order_centra_does_not_return_is_named(centra_env, data_dir) -> None:
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def(ORDER_REFRESH_JOB_NAME)
        config = {"ops": sync_run_config({"orders": {"mode": "refresh", "keys": [987654321]}})}
        result = job.execute_in_process(
            run_config=config, instance=instance, partition_key="default"
        )
        assert result.success
        lake = next(
            e.event_specific_data.materialization.metadata
            for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
            and e.event_specific_data.materialization.asset_key == lake_key(STREAMS["orders"])
        )
        assert lake["not_returned"].value == [987654321]
        logs = [
            record.dagster_event
            for record in instance.all_logs(result.run_id)
            if record.user_message and "987654321" in record.user_message
        ]
        assert logs, "no log line names the order Centra did not return"


def test_refresh_runs_are_tagged_with_what_the_tag_holds(data_dir: Path) -> None:
    from centra_pipeline_tests.test_webhook_flow import evaluate, store_events

    inbox = data_dir / "webhooks" / "inbox.sqlite3"
    store_events(inbox, ("order", "update", "1005"), ("order", "update", "1006"))
    with dg.instance_for_test() as instance:
        (request,) = evaluate(instance).run_requests
    assert request.tags[ORDER_COUNT_TAG] == "2"
    assert "centra_pipeline/orders" not in request.tags


# --- schema drift is judged per table and can be acknowledged -------------------------------
def test_schema_drift_does_not_flip_on_a_batch_without_the_fields(pipeline: Pipeline) -> None:
    pipeline.sync(["orders"])
    orders = TABLES["orders"]
    fields = pipeline.warehouse.unmapped_fields("orders")
    assert not quality.schema_drift(fields, orders).passed
    # A webhook refresh of one order that carries no custom attributes: nothing changes.
    (number,) = pipeline.warehouse.query("SELECT min(order_id) FROM main.orders")[0]
    pipeline.refresh_orders([number, 987654321])
    after = quality.schema_drift(pipeline.warehouse.unmapped_fields("orders"), orders)
    assert not after.passed
    assert (
        after.metadata["unmapped_fields"]
        == quality.schema_drift(fields, orders).metadata["unmapped_fields"]
    )


def test_acknowledged_fields_stop_warning_and_a_new_one_warns_again(pipeline: Pipeline) -> None:
    pipeline.sync(["orders"])
    orders = TABLES["orders"]
    names = [f.field for f in pipeline.warehouse.unmapped_fields("orders")]
    assert names
    with pytest.raises(ValueError, match=r"no unmapped field orders\.nope"):
        pipeline.warehouse.acknowledge_fields(["orders.nope", names[0]])
    assert all(f.acknowledged_at is None for f in pipeline.warehouse.unmapped_fields("orders"))
    pipeline.warehouse.acknowledge_fields(names)
    outcome = quality.schema_drift(pipeline.warehouse.unmapped_fields("orders"), orders)
    assert outcome.passed and "acknowledged" in outcome.description
    with pipeline.warehouse.writer() as con:  # Centra starts sending one more field
        con.execute(
            "INSERT INTO pipeline.schema_drift VALUES "
            "('orders', 'orders.brand_new', 'str', 1, 'l', 'l', now(), now(), NULL)"
        )
    outcome = quality.schema_drift(pipeline.warehouse.unmapped_fields("orders"), orders)
    assert not outcome.passed and outcome.metadata["unmapped_fields"] == ["brand_new"]


def test_the_schema_drift_command_lists_and_acknowledges(pipeline: Pipeline, data_dir) -> None:
    pipeline.sync(["orders"])
    env = {**os.environ, "CENTRA_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "centra_pipeline.cli", "schema-drift"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=120
        )

    listed = json.loads(run("--json").stdout)
    field = listed[0]["field"]
    assert listed[0]["acknowledged_at"] is None
    bad = run("--acknowledge", "orders.nope")
    assert bad.returncode == 2 and "no unmapped field orders.nope" in bad.stdout
    assert run("--acknowledge", field).returncode == 0
    after = {f["field"]: f for f in json.loads(run("--json").stdout)}
    assert after[field]["acknowledged_at"] is not None


def test_observing_an_endpoint_asks_centra_for_one_record(centra_env, data_dir) -> None:
    """The endpoints are observable sources: "Observe" in the UI probes them."""
    graph = defs.resolve_asset_graph()
    assert all(graph.get(source_key(s)).is_observable for s in STREAMS.values())
    keys = [source_key(s) for s in STREAMS.values()]
    observe = dg.define_asset_job("observe_endpoints", selection=dg.AssetSelection.assets(*keys))
    local = dg.Definitions(assets=defs.assets, jobs=[observe], resources=defs.resources)
    with dg.instance_for_test() as instance:
        result = local.resolve_job_def("observe_endpoints").execute_in_process(
            instance=instance, partition_key="default"
        )
        assert result.success
        observed = {
            e.event_specific_data.asset_observation.asset_key: (
                e.event_specific_data.asset_observation.metadata
            )
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        }
    assert set(observed) == {source_key(s) for s in STREAMS.values()}
    assert all(meta["records_on_first_page"].value == 1 for meta in observed.values())
