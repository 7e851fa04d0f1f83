"""Erasure (docs/architecture.md, "Erasure"; invariant 9): after `centra-pipeline forget`, none
of the person's values is in any file the pipeline wrote (decoded Parquet, DuckDB files,
Dagster's storage, the inbox, logs); non-personal facts and revenue stay; later syncs, a
rebuild from the lake and a compaction keep the person erased.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from centra_pipeline.centra.webhook import WebhookEvent
from centra_pipeline.storage.compact import compact_lake
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.streams import STREAMS
from centra_pipeline.webhooks.inbox import Inbox
from centra_pipeline_tests.conftest import Pipeline, point_env_at

TICK = {"new_orders": 4, "updated_orders": 4, "updated_customers": 3}


def file_text(path: Path) -> str:
    """What a file holds, decoded: Parquet as its rows, anything else as its bytes."""
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
    return path.read_bytes().decode("utf-8", "replace")


def places_holding(root: Path, values: set[str]) -> dict[str, set[str]]:
    """For each value, the files under `root` that hold it (case-insensitive)."""
    found: dict[str, set[str]] = {}
    wanted = {v.lower() for v in values if len(v) >= 4}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        text = file_text(path).lower()
        for value in wanted:
            if value in text:
                found.setdefault(value, set()).add(str(path.relative_to(root)))
    return found


def test_the_scan_finds_a_value_planted_in_compressed_files(tmp_path: Path) -> None:
    import pyarrow as pa

    pq.write_table(
        pa.table({"x": ["a", "planted.value@example.com"] * 500}),
        tmp_path / "a.parquet",
        compression="zstd",
    )
    con = duckdb.connect(str(tmp_path / "b.duckdb"))
    con.execute("CREATE TABLE t AS SELECT 'Planted Person ' || range AS v FROM range(5000)")
    con.close()
    found = places_holding(tmp_path, {"planted.value@example.com", "Planted Person 4242"})
    assert found == {
        "planted.value@example.com": {"a.parquet"},
        "planted person 4242": {"b.duckdb"},
    }


def person_of(pipeline: Pipeline) -> tuple[int, dict, set[str]]:
    """A customer with orders, their customer row, and the values of their personal fields
    (customer and orders) that no one else's rows hold (a city is not theirs alone)."""
    rows: dict[str, list[dict]] = {}
    with pipeline.warehouse.reader() as con:
        (customer,) = con.execute(
            """SELECT c.customer_id FROM customers c JOIN orders o USING (customer_id)
            GROUP BY ALL ORDER BY count(*) DESC, c.customer_id LIMIT 1"""
        ).fetchall()[0]
        for name in ("customers", "orders"):
            result = con.execute(f"SELECT * FROM {name}")
            columns = [d[0] for d in result.description]
            rows[name] = [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
    theirs: set[str] = set()
    others: set[str] = set()
    for name, table_rows in rows.items():
        personal = [col.name for col in STREAMS[name].parent.personal_columns]
        for row in table_rows:
            values = {str(row[k]).lower() for k in personal if row.get(k)}
            (theirs if row["customer_id"] == customer else others).update(values)
    record = next(r for r in rows["customers"] if r["customer_id"] == customer)
    # A short number (a postcode) is also a substring of ids and prices anywhere.
    return customer, record, {v for v in theirs - others if not (v.isdigit() and len(v) < 8)}


def revenue(warehouse: Warehouse) -> list[tuple]:
    return warehouse.query(
        "SELECT order_currency, sum(grand_total_value), count(*) FROM orders GROUP BY 1 ORDER BY 1"
    )


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "centra_pipeline.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_forget_erases_a_person_everywhere_and_later_syncs_keep_them_erased(
    pipeline: Pipeline, data_dir: Path, monkeypatch, tmp_path: Path
) -> None:
    point_env_at(pipeline.emu, monkeypatch)
    first = cli("sync")
    assert first.returncode == 0, first.stdout + first.stderr
    customer, record, values = person_of(pipeline)
    assert len(values) >= 3, values  # e-mail, phone, address line at least
    # Webhook payloads may hold the order; one of the person's orders arrives with data.
    (order,) = pipeline.warehouse.query(
        "SELECT min(order_id) FROM orders WHERE customer_id = ?", [customer]
    )[0]
    with Inbox(pipeline.settings.inbox_path) as inbox:
        inbox.store(
            "e" * 64,
            1,
            [WebhookEvent("order", "update", str(order), "d", {"email": record["email"]})],
        )
    compact_lake(  # part of the lake in a segment, part in loose loads
        pipeline.warehouse, pipeline.lake, list(STREAMS.values()), older_than=timedelta(0)
    )
    pipeline.emu.tick(**TICK)
    assert cli("sync").returncode == 0
    before = revenue(pipeline.warehouse)
    assert places_holding(data_dir, values), "the scan should see the person before"

    done = cli("forget", "--customer", str(customer), "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["customer_ids"] == [customer]
    assert report["warehouse_rows_erased"]["customers"] == 1
    assert report["warehouse_rows_erased"]["orders"] >= 1
    assert places_holding(tmp_path, values) == {}  # data, Dagster's storage and logs
    for value in values:
        assert value.lower() not in (done.stdout + done.stderr).lower()
    assert revenue(pipeline.warehouse) == before
    snapshot = duckdb.connect(str(pipeline.settings.snapshot_path), read_only=True)
    try:
        assert snapshot.execute(
            "SELECT email, first_name, last_name FROM customers WHERE customer_id = ?", [customer]
        ).fetchall() == [(None, None, None)]
        assert (
            snapshot.execute(
                "SELECT count(*), count(billing_email) FROM orders WHERE customer_id = ?",
                [customer],
            ).fetchall()[0][1]
            == 0
        )
    finally:
        snapshot.close()
    (entry,) = [
        json.loads(line) for line in (data_dir / "erasure" / "log.jsonl").read_text().splitlines()
    ]
    assert entry["customer_ids"] == [customer]

    # Centra still serves the person: a full re-read, a compaction and a rebuild keep them
    # erased; forgetting again changes nothing.
    again = cli("sync", "--full-refresh")
    assert again.returncode == 0, again.stdout + again.stderr
    compact_lake(pipeline.warehouse, pipeline.lake, list(STREAMS.values()), older_than=timedelta(0))
    rebuilt = Warehouse(tmp_path / "rebuilt.duckdb")
    for stream in STREAMS:
        rebuilt.merge_loads(pipeline.lake.loads(stream))
    assert places_holding(tmp_path, values) == {}
    assert revenue(pipeline.warehouse) == revenue(rebuilt) != []
    twice = cli("forget", "--customer", str(customer), "--json")
    assert twice.returncode == 0
    assert json.loads(twice.stdout)["lake_files_rewritten"] == 0


def test_forget_by_email_covers_guest_orders(pipeline: Pipeline, data_dir: Path) -> None:
    pipeline.sync()
    (email, customer) = pipeline.warehouse.query(
        "SELECT email, customer_id FROM customers WHERE email IS NOT NULL "
        "ORDER BY customer_id LIMIT 1"
    )[0]
    with pipeline.warehouse.writer() as con:  # a guest order placed with the same address
        con.execute(
            "UPDATE orders SET customer_id = NULL, billing_email = ? WHERE order_id = "
            "(SELECT max(order_id) FROM orders)",
            [email.upper()],
        )
    from centra_pipeline.storage.erasure import forget

    erasure = forget(pipeline.settings, pipeline.warehouse, pipeline.lake, set(), {email})
    assert customer in erasure.customer_ids
    assert pipeline.warehouse.query(
        "SELECT count(*) FROM orders "
        "WHERE lower(billing_email) = lower(?) OR lower(delivery_email) = lower(?)",
        [email, email],
    ) == [(0,)]


@pytest.mark.parametrize("bad", [["--email", "not-an-address"], ["--customer", "x"], []])
def test_forget_refuses_bad_input_and_changes_nothing(data_dir: Path, bad: list[str]) -> None:
    result = cli("forget", *bad)
    assert result.returncode != 0
    assert not (data_dir / "erasure").exists()


@pytest.mark.parametrize("point", ["forget.after_lake", "forget.before_swap", "forget.before_log"])
def test_a_forget_killed_anywhere_is_completed_by_running_it_again(
    pipeline: Pipeline, data_dir: Path, tmp_path: Path, point: str
) -> None:
    from centra_pipeline_tests.test_compaction import frozen_at, kill

    pipeline.sync()
    pipeline.publish()
    customer, _record, values = person_of(pipeline)
    before = revenue(pipeline.warehouse)
    command = [sys.executable, "-m", "centra_pipeline.cli", "forget", "--customer", str(customer)]

    kill(frozen_at(point, command, tmp_path / "marker"))

    assert revenue(pipeline.warehouse) == before  # a consistent warehouse, whatever happened
    again = cli("forget", "--customer", str(customer))
    assert again.returncode == 0, again.stdout + again.stderr
    assert places_holding(tmp_path, values) == {}
    assert revenue(pipeline.warehouse) == before
    assert not list(data_dir.rglob(".*.erasing-*")) and not list(data_dir.rglob(".*.rewrite-*"))


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_the_snapshot_hashes_or_leaves_out_personal_data(
    pipeline: Pipeline, tmp_path: Path, monkeypatch, mode: str
) -> None:
    import hashlib
    import hmac

    from centra_pipeline.settings import Settings
    from centra_pipeline.storage.suppression import snapshot_pii

    pipeline.sync(["customers", "orders"])
    customer, record, values = person_of(pipeline)
    monkeypatch.setenv("CENTRA_PII", mode)
    monkeypatch.setenv("CENTRA_PII_KEY", "a-key-for-this-test")
    settings = Settings.from_env()
    info = pipeline.warehouse.publish(settings.snapshot_path, *snapshot_pii(settings))
    assert info["personal_data"] == mode
    only = tmp_path / "snapshot_only"
    only.mkdir()
    shutil.copy(settings.snapshot_path, only)
    assert places_holding(only, values) == {}
    snapshot = duckdb.connect(str(settings.snapshot_path), read_only=True)
    try:
        columns = {r[0] for r in snapshot.execute("DESCRIBE customers").fetchall()}
        orders = snapshot.execute("SELECT count(*), sum(grand_total_value) FROM orders").fetchall()
        if mode == "drop":
            assert not columns & {"email", "first_name", "phone_number", "address1"}
            assert "customer_id" in columns and "country" in columns
        else:
            (email,) = snapshot.execute(
                "SELECT email FROM customers WHERE customer_id = ?", [customer]
            ).fetchall()[0]
            normalised = record["email"].strip().lower()
            expected = hmac.new(b"a-key-for-this-test", normalised.encode(), hashlib.sha256)
            assert email == expected.hexdigest()
            # Joins and distinct counts still work on the hashed e-mail.
            (joined,) = snapshot.execute(
                "SELECT count(*) FROM orders o JOIN customers c ON o.billing_email = c.email "
                "WHERE c.customer_id = ?",
                [customer],
            ).fetchall()[0]
            assert joined >= 1
    finally:
        snapshot.close()
    assert orders == pipeline.warehouse.query("SELECT count(*), sum(grand_total_value) FROM orders")


def test_a_customer_anonymised_in_centra_is_erased_from_the_older_copies(
    pipeline: Pipeline, data_dir: Path, monkeypatch, tmp_path: Path
) -> None:
    import requests

    point_env_at(pipeline.emu, monkeypatch)
    assert cli("sync").returncode == 0
    customer, _record, values = person_of(pipeline)
    url = f"{pipeline.emu.order_api_url}/anonymize-customer/{customer}"
    headers = {"API-Authorization": pipeline.emu.order_api_key}
    assert requests.put(url, headers=headers, timeout=10).json()["status"] == "ok"
    again = requests.put(url, headers=headers, timeout=10).json()
    assert again == {"status": "no", "msg": "The personal data was already anonymized."}
    assert places_holding(tmp_path, values)  # the lake and warehouse still hold the old copies

    synced = cli("sync")

    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert places_holding(tmp_path, values) == {}
    (entry,) = [
        json.loads(line) for line in (data_dir / "erasure" / "log.jsonl").read_text().splitlines()
    ]
    assert entry["reason"] == "anonymised in Centra" and entry["customer_ids"] == [customer]
    assert cli("sync").returncode == 0  # nothing more to erase: no second entry
    assert len((data_dir / "erasure" / "log.jsonl").read_text().splitlines()) == 1
