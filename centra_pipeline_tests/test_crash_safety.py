"""Crash safety (docs/architecture.md): `centra-pipeline sync` killed with SIGKILL during
extraction, during landing, during the merge and before the snapshot swap; the next run
ends exactly where a clean run would, with no duplicate keys and no cursor past committed
data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from centra_pipeline.storage.lake import Lake
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams import STREAMS, TABLES
from centra_pipeline_tests.conftest import TZ, Pipeline, running_emulator

STREAMS_UNDER_TEST = ["orders", "returns", "catalogue"]


def sync_command(*extra: str) -> list[str]:
    command = [sys.executable, "-m", "centra_pipeline.cli", "sync"]
    for stream in STREAMS_UNDER_TEST:
        command += ["--stream", stream]
    return command + list(extra)


def run_sync(env: dict[str, str], cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        sync_command(*extra), env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def kill_at(point: str, env: dict[str, str], cwd: Path, marker: Path, *extra: str) -> None:
    env = {**env, "CENTRA_FAILPOINT": point, "CENTRA_FAILPOINT_FILE": str(marker)}
    proc = subprocess.Popen(
        sync_command(*extra),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"sync ended before reaching {point}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"sync never reached {point}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def business_rows(warehouse: Warehouse) -> dict[str, list[tuple]]:
    out = {}
    with warehouse.reader() as con:
        assert con is not None
        for stream in STREAMS_UNDER_TEST:
            for table in STREAMS[stream].tables:
                cols = ", ".join(f'"{c}"' for c in table.column_names)
                out[table.name] = sorted(
                    con.execute(
                        # whether a row is marked missing; the moment differs per run
                        f"SELECT {cols}, _missing_since IS NULL FROM main.{table.name}"
                        if table.parent is None
                        else f"SELECT {cols} FROM main.{table.name}"
                    ).fetchall(),
                    key=repr,
                )
        out["cursors"] = con.execute(
            "SELECT stream, cursor FROM pipeline.sync_state ORDER BY stream"
        ).fetchall()
    return out


def check_consistent(data: Path, clean: Warehouse, *, finished: bool = True) -> None:
    warehouse = Warehouse(data / "warehouse" / "warehouse.duckdb")
    assert business_rows(warehouse) == business_rows(clean)
    with warehouse.reader() as con:
        assert con is not None
        for stream in STREAMS_UNDER_TEST:
            for table in STREAMS[stream].tables:
                keys = ", ".join(table.primary_key)
                dupes = con.execute(
                    f"SELECT count(*) FROM (SELECT {keys} FROM {table.name} "
                    "GROUP BY ALL HAVING count(*) > 1)"
                ).fetchall()[0][0]
                assert dupes == 0, table.name
        # The cursor is never ahead of the data it stands for.
        for stream, column in (("orders", "order_date"), ("returns", "date")):
            cursor, newest = con.execute(
                f"""SELECT (SELECT cursor FROM pipeline.sync_state WHERE stream = ?),
                    strftime(max({column}) AT TIME ZONE '{TZ}', '%Y-%m-%d %H:%M:%S')
                    FROM {TABLES[STREAMS[stream].parent.name].name}""",
                [stream],
            ).fetchall()[0]
            assert cursor is not None and cursor <= newest, (stream, cursor, newest)
    if not finished:
        return
    lake = Lake(data / "lake")
    for stream in STREAMS_UNDER_TEST:
        assert not list(lake.stream_dir(stream).glob("day=*/load=*.tmp-*")), "partial load left"
    assert not list(data.glob(".centra.duckdb.tmp-*")), "partial snapshot left"


def env_for(emu, base: dict[str, str]) -> dict[str, str]:
    return {
        **base,
        "CENTRA_ORDER_API_URL": emu.order_api_url,
        "CENTRA_ORDER_API_KEY": emu.order_api_key,
        "CENTRA_SHOP_API_URL": emu.shop_api_url,
        "CENTRA_SHOP_API_KEY": emu.shop_api_key,
        "CENTRA_MAX_REQUESTS_PER_SECOND": "1000",
    }


@pytest.fixture
def cli_env(data_dir: Path) -> dict[str, str]:
    return dict(os.environ)


@pytest.mark.parametrize(
    "point",
    [
        "extract.after_first_page",
        "lake.before_commit",
        "warehouse.before_commit",
        "warehouse.before_publish",
    ],
)
def test_sync_killed_then_rerun_equals_a_clean_run(
    point: str, cli_env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    with running_emulator(orders=1200, customers=200, products=10) as emu:
        clean = Pipeline(emu, tmp_path / "clean")  # the same runs, never killed
        env = env_for(emu, cli_env)
        # A first clean sync, then a change, so the killed run is an incremental one with
        # real work to lose.
        Pipeline(emu, data_dir).sync(STREAMS_UNDER_TEST)
        clean.sync(STREAMS_UNDER_TEST)
        emu.tick(
            new_orders=30,
            updated_orders=20,
            new_returns=10,
            completed_returns=5,
            updated_products=3,
            advance_seconds=3600,
        )
        clean.sync(STREAMS_UNDER_TEST)
        warehouse = Warehouse(data_dir / "warehouse" / "warehouse.duckdb")
        before = business_rows(warehouse)
        loads_before = warehouse.query("SELECT count(*) FROM pipeline.load_log")
        kill_at(point, env, tmp_path, tmp_path / "reached")
        if point != "warehouse.before_publish":
            # Killed before a commit: rows, cursors and load log exactly as before the run
            # (the cursor and the data commit in the same transaction, or neither does).
            assert business_rows(warehouse) == before
            assert warehouse.query("SELECT count(*) FROM pipeline.load_log") == loads_before
        else:
            # Merged and committed: the warehouse already holds the change.
            check_consistent(data_dir, clean.warehouse, finished=False)
        rerun = run_sync(env, tmp_path)
        assert rerun.returncode == 0, rerun.stderr + rerun.stdout
        check_consistent(data_dir, clean.warehouse)
        # The snapshot analysts read is complete and current.
        import duckdb

        con = duckdb.connect(str(data_dir / "centra.duckdb"), read_only=True)
        published = con.execute("SELECT count(*) FROM orders").fetchall()[0][0]
        con.close()
        with Warehouse(data_dir / "warehouse" / "warehouse.duckdb").reader() as wh:
            assert published == wh.execute("SELECT count(*) FROM orders").fetchall()[0][0]


@pytest.mark.parametrize(
    "point", ["extract.after_first_page", "lake.before_commit", "warehouse.before_commit"]
)
def test_a_reconciliation_killed_then_rerun_equals_a_clean_one(
    point: str, cli_env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    with running_emulator(orders=1200, customers=200, products=10) as emu:
        clean = Pipeline(emu, tmp_path / "clean")
        env = env_for(emu, cli_env)
        Pipeline(emu, data_dir).sync(STREAMS_UNDER_TEST)
        clean.sync(STREAMS_UNDER_TEST)
        # Drift for the reconciliation to repair: old orders change, cancelled ones vanish.
        emu.tick(updated_orders=60, completed_returns=20, advance_seconds=30 * 86400)
        emu.store.set_plugin("order", statuses=(1, 2, 3, 4, 5))
        clean.sync(STREAMS_UNDER_TEST, mode="reconcile")
        warehouse = Warehouse(data_dir / "warehouse" / "warehouse.duckdb")
        before = business_rows(warehouse)
        kill_at(point, env, tmp_path, tmp_path / "reached", "--reconcile")
        assert business_rows(warehouse) == before  # killed before any commit
        rerun = run_sync(env, tmp_path, "--reconcile")
        assert rerun.returncode == 0, rerun.stderr + rerun.stdout
        check_consistent(data_dir, clean.warehouse)
        assert business_rows(warehouse) != before  # the drift was repaired
