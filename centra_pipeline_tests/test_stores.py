"""Many stores in one deployment: the stores file, and three emulated stores of different
timezones and sizes synced through Dagster side by side, each isolated from the others
(docs/architecture.md, "Many stores")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from centra_pipeline.definitions import build_definitions
from centra_pipeline.defs.all_stores import ALL_STORES_MAX_WAIT
from centra_pipeline.defs.freshness import FRESHNESS_SENSOR_NAME
from centra_pipeline.defs.keys import SNAPSHOT_KEY
from centra_pipeline.emulator import Emulator
from centra_pipeline.settings import ConfigError
from centra_pipeline.stores import ALL_STORES_FILE, load_stores
from centra_pipeline_tests.conftest import NOW, emulator_config
from centra_pipeline_tests.truth import table_differences, truth_tables

ORDERS = dg.AssetKey(["warehouse", "orders"])
STORES = {  # name: (timezone, orders, seed)
    "alpha": ("Europe/Stockholm", 300, 21),
    "beta": ("America/New_York", 150, 22),
    "gamma": ("Asia/Tokyo", 80, 23),
}


def _variable(store: str, what: str) -> str:
    return f"CENTRA_{store.upper()}_{what}"


def stores_toml(emus: dict[str, Emulator]) -> str:
    blocks = []
    for name, emu in emus.items():
        blocks.append(
            "[[stores]]\n"
            f'name = "{name}"\n'
            f'timezone = "{emu.config.timezone}"\n'
            f'order_api_url = "{emu.order_api_url}"\n'
            f'order_api_key_env = "{_variable(name, "ORDER_API_KEY")}"\n'
            f'shop_api_url = "{emu.shop_api_url}"\n'
            f'shop_api_key_env = "{_variable(name, "SHOP_API_KEY")}"\n'
            f'webhook_secret_env = "{_variable(name, "WEBHOOK_SECRET")}"\n'
        )
    return "\n".join(blocks)


def secrets_of(emus: dict[str, Emulator]) -> dict[str, dict[str, str]]:
    return {
        name: {
            _variable(name, "ORDER_API_KEY"): emu.order_api_key,
            _variable(name, "SHOP_API_KEY"): emu.shop_api_key,
            _variable(name, "WEBHOOK_SECRET"): f"whsec-{name}-7d1f0c9a",
        }
        for name, emu in emus.items()
    }


@pytest.fixture
def three_stores(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    with ExitStack() as stack:
        emus = {
            name: stack.enter_context(
                Emulator(
                    emulator_config(
                        orders=orders,
                        customers=max(20, orders // 5),
                        products=12,
                        seed=seed,
                        timezone=tz,
                        now=NOW,
                        order_api_key=f"order-key-{name}-4b1e",
                        shop_api_key=f"shop-key-{name}-9c2a",
                    )
                )
            )
            for name, (tz, orders, seed) in STORES.items()
        }
        path = tmp_path / "stores.toml"
        path.write_text(stores_toml(emus))
        monkeypatch.setenv("CENTRA_STORES_FILE", str(path))
        monkeypatch.setenv("CENTRA_MAX_REQUESTS_PER_SECOND", "1000")
        for variables in secrets_of(emus).values():
            for variable, value in variables.items():
                monkeypatch.setenv(variable, value)
        yield emus


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "centra_pipeline.cli", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )


def snapshot_differences(emu: Emulator, path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return table_differences(con, truth_tables(emu, emu.config.timezone))
    finally:
        con.close()


def test_isolated_stores_sync_publish_and_union(three_stores, data_dir: Path) -> None:
    emus = three_stores
    # Store beta's Order API key is wrong: only its partition fails.
    os.environ[_variable("beta", "ORDER_API_KEY")] = "order-key-wrong-0000"
    done = cli("sync")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "== store alpha ==" in done.stdout and "== store gamma ==" in done.stdout
    stores = load_stores()
    for name in ("alpha", "gamma"):
        snapshot = stores.get(name).snapshot_path
        assert snapshot == data_dir / "stores" / name / "centra.duckdb"
        assert snapshot_differences(emus[name], snapshot) == {}
    assert not stores.get("beta").snapshot_path.exists()
    assert not (data_dir / "centra.duckdb").exists()  # no single-store file beside them

    with dg.DagsterInstance.get() as instance:
        by_store = {
            run.tags["dagster/partition"]: run.status
            for run in instance.get_runs(dg.RunsFilter(job_name="centra_sync"))
        }
        assert by_store == {
            "alpha": dg.DagsterRunStatus.SUCCESS,
            "beta": dg.DagsterRunStatus.FAILURE,
            "gamma": dg.DagsterRunStatus.SUCCESS,
        }
        published = instance.get_materialized_partitions(SNAPSHOT_KEY)
        assert published == {"alpha", "gamma"}
        # The UI shows checks per store: each evaluation names its store, and freshness is
        # judged on each store's own merges, so beta's failure is not hidden by the others.
        unique = dg.AssetCheckKey(ORDERS, "primary_key_unique")
        history = instance.event_log_storage.get_asset_check_execution_history(unique, 10)
        passed = AssetCheckExecutionRecordStatus.SUCCEEDED
        assert {r.partition for r in history if r.status == passed} == {"alpha", "gamma"}
        assert {r.status for r in history if r.partition == "beta"} == {
            AssetCheckExecutionRecordStatus.PLANNED  # its run failed before the check
        }
        defs = build_definitions()
        tick = defs.resolve_sensor_def(FRESHNESS_SENSOR_NAME).evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs)
        )
        fresh = {e.partition: e for e in tick.asset_events if e.asset_key == ORDERS}
        assert {p: e.passed for p, e in fresh.items()} == {
            "alpha": True,
            "beta": False,
            "gamma": True,
        }
        assert "never merged" in fresh["beta"].description

    # The key fixed, beta alone syncs; then every store equals its API.
    os.environ[_variable("beta", "ORDER_API_KEY")] = emus["beta"].order_api_key
    done = cli("sync", "--store", "beta")
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_differences(emus["beta"], stores.get("beta").snapshot_path) == {}

    # verify compares each store with its own API; forget acts on the store named only.
    verified = cli("verify", "--json")
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    import json

    assert set(json.loads(verified.stdout)["stores"]) == set(STORES)
    before = {n: stores.get(n).snapshot_path.read_bytes() for n in ("alpha", "beta")}
    customer = int(next(iter(emus["gamma"].store.iter_customers()))["customerId"])
    erased = cli("forget", "--store", "gamma", "--customer", str(customer), "--json")
    assert erased.returncode == 0, erased.stdout + erased.stderr
    assert json.loads(erased.stdout)["customer_ids"] == [customer]
    assert {n: stores.get(n).snapshot_path.read_bytes() for n in ("alpha", "beta")} == before
    assert not (stores.get("alpha").erasure_dir / "log.jsonl").exists()
    assert (stores.get("gamma").erasure_dir / "log.jsonl").exists()

    # all_stores unions them, with the store in a column.
    with dg.DagsterInstance.get() as instance:
        assert (
            defs.resolve_job_def("centra_all_stores").execute_in_process(instance=instance).success
        )
    union = duckdb.connect(str(data_dir / ALL_STORES_FILE), read_only=True)
    try:
        for table in ("orders", "order_lines", "customers", "returns"):
            for name in STORES:
                con = duckdb.connect(str(stores.get(name).snapshot_path), read_only=True)
                try:
                    own = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                finally:
                    con.close()
                in_union = union.execute(
                    f"SELECT count(*) FROM {table} WHERE store = ?", [name]
                ).fetchall()[0][0]
                assert in_union == own, (table, name)
        order_ids = union.execute(
            "SELECT store, count(DISTINCT order_id) FROM orders GROUP BY store ORDER BY store"
        ).fetchall()
        assert [n for n, _ in order_ids] == sorted(STORES)
    finally:
        union.close()

    # `query` runs on the union by default, on one store's snapshot with --store.
    counted = cli("query", "--csv", "SELECT store, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1")
    assert counted.returncode == 0, counted.stderr
    assert [line.split(",")[0] for line in counted.stdout.split()[1:]] == sorted(STORES)
    one = cli("query", "--csv", "--store", "gamma", "SELECT count(*) FROM orders")
    assert (
        one.returncode == 0
        and int(one.stdout.split()[1]) == emus["gamma"].stats()["orders"]["visible"]
    )

    # No store's secret in any file the deployment wrote, nor in what the commands printed.
    secrets = [v for variables in secrets_of(emus).values() for v in variables.values()]
    output = done.stdout + done.stderr + counted.stdout + one.stdout
    for path in data_dir.parent.rglob("*"):
        if path.is_file() and path.name != "stores.toml":
            blob = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in blob, (path, secret[:6])
    for secret in secrets:
        assert secret not in output


def test_state_and_check_report_per_store(three_stores) -> None:
    done = cli("check", "--store", "alpha", "--store", "gamma")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== store alpha ==" in done.stdout and "== store gamma ==" in done.stdout
    assert "== store beta ==" not in done.stdout
    unknown = cli("state", "show", "--store", "delta")
    assert unknown.returncode == 2 and "unknown store delta" in unknown.stderr
    shown = cli("state", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    import json

    assert set(json.loads(shown.stdout)["stores"]) == set(STORES)


def test_partitions_follow_the_stores_file(three_stores, tmp_path: Path) -> None:

    job = build_definitions().resolve_job_def("centra_sync")
    assert list(job.partitions_def.get_partition_keys()) == list(STORES)
    (tmp_path / "stores.toml").write_text(
        (tmp_path / "stores.toml").read_text().split("\n\n")[0] + "\n"
    )
    job = build_definitions().resolve_job_def("centra_sync")
    assert list(job.partitions_def.get_partition_keys()) == ["alpha"]


# --- the stores file ---------------------------------------------------------------------
GOOD = """
[[stores]]
name = "retail"
timezone = "Europe/Stockholm"
order_api_url = "https://retail.example.com/api/order"
order_api_key_env = "RETAIL_ORDER_KEY"
"""


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, suffix: str = ".toml"):
    path = tmp_path / f"stores{suffix}"
    path.write_text(text)
    monkeypatch.setenv("CENTRA_STORES_FILE", str(path))
    return load_stores()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + 'colour = "red"\n', "store 'retail': unknown key colour"),
        (GOOD + 'order_api_key = "abc"\n', "secrets are never in the file"),
        (GOOD + GOOD, "store name 'retail' is used twice"),
        (GOOD.replace("Europe/Stockholm", "Mars/Olympus"), "not an IANA timezone"),
        (GOOD.replace('"retail"', '"Retail Shop"'), "a store name is lower-case"),
        (GOOD.replace("RETAIL_ORDER_KEY", "s3cr3t value!"), "is the NAME of the environment"),
        ("stores = []\n", "`stores` is empty"),
        ("[store]\nname = 'x'\n", "expected one top-level list `stores`"),
        (GOOD.replace("https://retail.example.com", "retail.example.com"), "http(s) URL"),
    ],
)
def test_bad_stores_files_are_refused_with_the_reason(
    data_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.setenv("RETAIL_ORDER_KEY", "k")
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, monkeypatch, text)
    assert message in str(raised.value)


def test_a_missing_secret_variable_is_named_and_nothing_loads(
    data_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="names RETAIL_ORDER_KEY, which is not set"):
        _load(tmp_path, monkeypatch, GOOD)
    done = cli("sync")
    assert done.returncode == 2 and "RETAIL_ORDER_KEY" in done.stderr
    code = "from centra_pipeline.definitions import defs"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.returncode != 0 and "RETAIL_ORDER_KEY, which is not set" in loaded.stderr


def test_yaml_stores_file_and_the_default_store(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETAIL_ORDER_KEY", "k1")
    yaml_text = (
        "stores:\n  - name: retail\n    order_api_url: https://r.example.com/api/order\n"
        "    order_api_key_env: RETAIL_ORDER_KEY\n    timezone: Asia/Tokyo\n"
    )
    stores = _load(tmp_path, monkeypatch, yaml_text, ".yaml")
    retail = stores.get("retail")
    assert retail.timezone == "Asia/Tokyo" and retail.order_api_key.get() == "k1"
    assert retail.data_dir == data_dir / "stores" / "retail"
    assert stores.all_stores_path == data_dir / ALL_STORES_FILE
    monkeypatch.delenv("CENTRA_STORES_FILE")
    single = load_stores()
    assert single.names == ["default"] and not single.multi
    assert single.get("default").snapshot_path == data_dir / "centra.duckdb"


def test_demo_with_several_stores(data_dir: Path) -> None:
    done = cli("demo", "--stores", "3", "--orders", "600")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    union = duckdb.connect(str(data_dir / ALL_STORES_FILE), read_only=True)
    try:
        stores = union.execute("SELECT DISTINCT store FROM orders ORDER BY 1").fetchall()
    finally:
        union.close()
    assert [s for (s,) in stores] == ["store-01", "store-02", "store-03"]
    for name in ("store-01", "store-02", "store-03"):
        assert (data_dir / "stores" / name / "centra.duckdb").is_file()
    # A second demo starts from a clean slate; a data directory with a real store is refused.
    assert cli("demo", "--stores", "2", "--orders", "300").returncode == 0
    (data_dir / ".centra-demo").unlink()
    refused = cli("demo", "--stores", "2", "--orders", "300")
    assert refused.returncode == 2 and "did not create" in refused.stderr


def test_the_schedule_and_the_all_stores_sensor_ask_for_each_store(three_stores) -> None:
    from datetime import UTC, datetime

    defs = build_definitions()
    schedule = defs.resolve_schedule_def("centra_sync_schedule")
    tick = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with dg.DagsterInstance.get() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=defs.get_repository_def(),
        )
        requests = schedule.evaluate_tick(context).run_requests
        assert [r.partition_key for r in requests] == list(STORES)
        assert len({r.run_key for r in requests}) == len(STORES)  # one run per store and tick
        sensor = defs.resolve_sensor_def("centra_all_stores_sensor")
        skipped = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not skipped.run_requests and "no store snapshot" in skipped.skip_message
        assert cli("sync", "--store", "gamma", "--stream", "customers").returncode == 0
        # A store run still in progress (an hourly cycle under way): the publish waits ...
        running = dg.DagsterRun(
            job_name="centra_sync",
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": "beta"},
        )
        instance.add_run(running)
        waiting = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not waiting.run_requests
        assert "waiting for 1 unfinished store run(s) (beta)" in (waiting.skip_message or "")
        cursor = json.loads(waiting.cursor)
        later = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=waiting.cursor)
        )
        assert not later.run_requests
        assert json.loads(later.cursor)["pending_since"] == cursor["pending_since"]
        # ... but no longer than ALL_STORES_MAX_WAIT after the change was first seen,
        overdue = {**cursor, "pending_since": cursor["pending_since"] - ALL_STORES_MAX_WAIT}
        forced = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=json.dumps(overdue))
        )
        assert len(forced.run_requests) == 1
        # and once the store runs are done it publishes at once.
        instance.delete_run(running.run_id)
        asked = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=waiting.cursor)
        )
        assert len(asked.run_requests) == 1
        assert "pending_since" not in json.loads(asked.cursor)
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=asked.cursor)
        )
        assert not again.run_requests  # nothing published since
        webhook = defs.resolve_sensor_def("centra_order_webhook_sensor")
        result = webhook.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert not result.run_requests and "3 store(s) have no webhook inbox" in (
            result.skip_message or ""
        )
