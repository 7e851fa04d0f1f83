"""Lake compaction (docs/architecture.md, "The lake over years"): a table rebuilt from the lake
is the same before and after; a compaction killed at any point leaves the lake as before or
as after, and a re-run finishes it; a sync that waits for a compaction ends correct.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from centra_pipeline.storage.compact import compact_lake, parquet_files
from centra_pipeline.storage.lake import Lake
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams import STREAMS, TABLES
from centra_pipeline_tests.conftest import Pipeline, point_env_at

TICK = {"new_orders": 6, "updated_orders": 5, "new_returns": 2, "updated_customers": 3}


def rebuilt_rows(lake: Lake, directory: Path) -> dict[str, list[tuple]]:
    """Every table, rebuilt from the lake alone into a fresh warehouse."""
    warehouse = Warehouse(directory / "warehouse.duckdb")
    for stream in STREAMS:
        warehouse.merge_loads(lake.loads(stream))
    return table_rows(warehouse)


def table_rows(warehouse: Warehouse) -> dict[str, list[tuple]]:
    with warehouse.reader() as con:
        assert con is not None
        return {
            name: sorted(con.execute(f'SELECT * FROM main."{name}"').fetchall(), key=repr)
            for name in TABLES
        }


def lake_records(lake: Lake) -> dict[str, list[tuple[str, int]]]:
    """Per stream, the (load, rows per table) the lake holds: no load lost or doubled."""
    return {
        stream: sorted((m.load_id, sum(m.rows.values())) for m in lake.loads(stream))
        for stream in STREAMS
    }


def many_loads(pipeline: Pipeline) -> None:
    pipeline.sync()
    for _ in range(2):
        changes = pipeline.emu.tick(**TICK)
        pipeline.sync()
        for number in changes["updated_order_ids"][:3]:
            pipeline.refresh_orders([number])


def compact(pipeline: Pipeline, **kwargs):
    return compact_lake(
        pipeline.warehouse,
        pipeline.lake,
        list(STREAMS.values()),
        older_than=timedelta(0),
        **kwargs,
    )


def test_compaction_changes_nothing_a_table_rebuilt_from_the_lake_shows(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    many_loads(pipeline)
    live = table_rows(pipeline.warehouse)
    records = lake_records(pipeline.lake)
    before = rebuilt_rows(pipeline.lake, tmp_path / "before")
    assert before == live
    files_before = sum(parquet_files(pipeline.lake, s) for s in STREAMS)

    results = {r.stream: r for r in compact(pipeline)}

    assert results["orders"].loads == len(records["orders"]) > 5
    files_after = sum(parquet_files(pipeline.lake, s) for s in STREAMS)
    assert files_after <= len(TABLES) < files_before  # one file per table
    assert not list(pipeline.lake.root.glob("*/day=*")), "compacted loads left behind"
    assert lake_records(pipeline.lake) == records
    assert rebuilt_rows(pipeline.lake, tmp_path / "after") == before

    # Syncing on top of a compacted lake, and compacting the month again, which takes the
    # month's segment into a new one.
    changes = pipeline.emu.tick(**TICK)
    pipeline.sync()
    pipeline.refresh_orders(changes["updated_order_ids"])
    assert pipeline.differences() == {}
    live = table_rows(pipeline.warehouse)
    records = lake_records(pipeline.lake)
    (segment,) = pipeline.lake.segments("orders")
    compact(pipeline)
    (again,) = pipeline.lake.segments("orders")
    assert again.path.name != segment.path.name and not segment.path.exists()
    assert lake_records(pipeline.lake) == records
    assert rebuilt_rows(pipeline.lake, tmp_path / "again") == live


def test_only_merged_loads_old_enough_are_compacted(pipeline: Pipeline) -> None:
    many_loads(pipeline)
    unmerged = pipeline.extract("orders", mode="full_refresh")  # landed, not merged
    (recent,) = compact_lake(
        pipeline.warehouse, pipeline.lake, [STREAMS["orders"]], older_than=timedelta(days=1)
    )
    assert recent.loads == 0 and not pipeline.lake.segments("orders")
    (result,) = compact_lake(
        pipeline.warehouse, pipeline.lake, [STREAMS["orders"]], older_than=timedelta(0)
    )
    assert result.left_unmerged == 1
    assert Path(unmerged.path).exists()
    (merged,) = pipeline.warehouse.merge_loads([unmerged])
    assert merged.staged == unmerged.records


def compact_command(*extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "centra_pipeline.cli", "lake", "compact", "--older-than", "0"),
        *extra,
    ]


def frozen_at(point: str, command: list[str], marker: Path) -> subprocess.Popen:
    env = {**os.environ, "CENTRA_FAILPOINT": point, "CENTRA_FAILPOINT_FILE": str(marker)}
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"ended before reaching {point}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"never reached {point}")
        time.sleep(0.05)
    return proc


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("point", ["compact.before_switch", "compact.after_switch"])
def test_a_compaction_killed_leaves_the_lake_as_before_or_after_and_a_rerun_finishes(
    pipeline: Pipeline, tmp_path: Path, point: str
) -> None:
    many_loads(pipeline)
    records = lake_records(pipeline.lake)
    before = rebuilt_rows(pipeline.lake, tmp_path / "before")

    kill(frozen_at(point, compact_command(), tmp_path / "marker"))

    assert lake_records(pipeline.lake) == records, "a load lost or doubled"
    assert rebuilt_rows(pipeline.lake, tmp_path / "killed") == before
    rerun = subprocess.run(compact_command("--json"), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert {r["stream"] for r in json.loads(rerun.stdout)} == set(STREAMS)
    assert not list(pipeline.lake.root.glob("*/segment=*.tmp-*")), "partial segment left"
    assert not list(pipeline.lake.root.glob("*/day=*")), "compacted loads left behind"
    for stream in STREAMS:
        assert len(list(pipeline.lake.stream_dir(stream).glob("segment=*"))) <= 1
    assert lake_records(pipeline.lake) == records
    assert rebuilt_rows(pipeline.lake, tmp_path / "after") == before


def test_a_sync_that_waits_for_a_compaction_ends_correct(
    pipeline: Pipeline, tmp_path: Path, monkeypatch
) -> None:
    many_loads(pipeline)
    point_env_at(pipeline.emu, monkeypatch)
    compaction = frozen_at("compact.before_switch", compact_command(), tmp_path / "marker")
    pipeline.emu.tick(new_orders=6)  # what an incremental read of orders sees
    sync = subprocess.Popen(
        [sys.executable, "-m", "centra_pipeline.cli", "sync", "--stream", "orders"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(8)
        assert sync.poll() is None, "the sync did not wait for the compaction's writer lock"
    finally:
        kill(compaction)
    output, _ = sync.communicate(timeout=300)
    assert sync.returncode == 0, output
    assert pipeline.differences(["orders"]) == {}
    live = table_rows(pipeline.warehouse)
    compact(pipeline)
    assert rebuilt_rows(pipeline.lake, tmp_path / "rebuilt") == live


def test_the_maintenance_job_compacts_prunes_the_inbox_and_old_refresh_runs(
    centra_env, data_dir: Path, tmp_path: Path
) -> None:
    import dagster as dg

    from centra_pipeline.centra.webhook import WebhookEvent
    from centra_pipeline.definitions import defs
    from centra_pipeline.defs.jobs import ORDER_REFRESH_JOB_NAME, SYNC_JOB_NAME, refresh_run_config
    from centra_pipeline.defs.keys import lake_key
    from centra_pipeline.defs.maintenance import MAINTENANCE_JOB_NAME
    from centra_pipeline.webhooks.inbox import Inbox

    pipeline = Pipeline(centra_env, data_dir)
    with dg.instance_for_test() as instance, Inbox(pipeline.settings.inbox_path) as inbox:
        assert (
            defs.resolve_job_def(SYNC_JOB_NAME)
            .execute_in_process(instance=instance, partition_key="default")
            .success
        )
        numbers = [int(o["orderId"]) for o in list(centra_env.store.iter_orders())[:3]]
        for i, number in enumerate(numbers):
            inbox.store(f"{i:064x}", i, [WebhookEvent("order", "update", str(number), f"d{i}")])
            run = defs.resolve_job_def(ORDER_REFRESH_JOB_NAME).execute_in_process(
                run_config={"ops": refresh_run_config([number], inbox.max_seq())},
                instance=instance,
                partition_key="default",
            )
            assert run.success
        live = table_rows(pipeline.warehouse)
        files = {s: parquet_files(pipeline.lake, s) for s in STREAMS}

        result = defs.resolve_job_def(MAINTENANCE_JOB_NAME).execute_in_process(
            run_config={
                "ops": {
                    "lake_maintenance": {
                        "config": {
                            "compact_older_than_days": 0,
                            "inbox_retention_days": 0,
                            "refresh_run_retention_days": 0,
                        }
                    }
                }
            },
            instance=instance,
        )

        assert result.success
        observed = {
            e.asset_key: e.asset_observation_data.asset_observation.metadata
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        }
        orders = observed[lake_key(STREAMS["orders"])]
        assert orders["files_before"].value == files["orders"] > orders["files_after"].value
        assert orders["loads_compacted"].value == 4
        assert [e.seq for e in inbox.events_after(0)] == [inbox.max_seq()]  # the newest stays
        refresh_runs = instance.get_runs(dg.RunsFilter(job_name=ORDER_REFRESH_JOB_NAME))
        assert len(refresh_runs) == 1, "the newest refresh run is kept, the others deleted"
        assert instance.get_runs(dg.RunsFilter(job_name=SYNC_JOB_NAME)), "sync runs stay"
        assert rebuilt_rows(pipeline.lake, tmp_path / "rebuilt") == live
