"""`centra-pipeline verify`, run in-process through the CLI against the emulator on loopback
and a snapshot published by the real pipeline code (extract, merge, publish).

The expected answers come from the emulator's own store and from plain SQL on the snapshot,
never from the verify module's code.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from centra_pipeline.centra.quirks import shift_local
from centra_pipeline.cli import main as cli
from centra_pipeline.emulator import Emulator
from centra_pipeline.settings import Settings
from centra_pipeline.streams.orders import ORDER_STATUS_NAMES
from centra_pipeline.verify.compare import DETAIL_DAYS_LIMIT, ID_LIST_LIMIT, verify
from centra_pipeline_tests.conftest import ORDER_KEY, TZ, Pipeline

VERIFIED = ["orders", "returns", "customers"]


@pytest.fixture
def published(centra_env: Emulator, pipeline: Pipeline) -> Pipeline:
    """A first sync of the three verified streams, published as the analyst snapshot."""
    pipeline.sync(VERIFIED)
    pipeline.publish()
    return pipeline


def run_verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what earlier steps printed
    code = cli.main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_verify_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run_verify(capsys, "--json", *args)
    return code, json.loads(out)


def snapshot_orders(pipeline: Pipeline) -> dict[int, tuple[str, str, Decimal]]:
    """order_id → (status name, currency, total) of the orders the snapshot shows as present."""
    con = duckdb.connect(str(pipeline.settings.snapshot_path), read_only=True)
    try:
        rows = con.execute(
            "SELECT order_id, order_status_name, order_currency, grand_total_value "
            "FROM orders WHERE _missing_since IS NULL"
        ).fetchall()
    finally:
        con.close()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def centra_order(emu: Emulator, number: int) -> tuple[str, str, Decimal] | None:
    """What Centra serves for an order now (None if the plugin does not serve it)."""
    order = emu.store.render_order(number)
    if order is None:
        return None
    status = ORDER_STATUS_NAMES.get(str(order["orderStatus"]), str(order["orderStatus"]))
    return status, str(order["orderCurrency"]), Decimal(str(order["grandTotalValue"]))


def order_days(emu: Emulator) -> dict[int, str]:
    """Every order's store-local day, served or not, from the emulator's records."""
    return {int(o["orderId"]): str(o["orderDate"])[:10] for o in emu.store.iter_orders(False)}


def listed_ids(doc: dict[str, Any], stream: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (diff["day"], item["id"]): item
        for diff in doc["streams"][stream]["differences"]
        for item in diff["ids"] or []
    }


def as_state(values: dict[str, Any] | None) -> tuple[str, str, Decimal] | None:
    if values is None:
        return None
    return values["status"], values["currency"], Decimal(values["total"])


def request_count(emu: Emulator) -> int:
    return sum(n for name, n in emu.app.request_counts().items() if name.startswith("order "))


def hide_cancelled_orders(emu: Emulator) -> dict[int, str]:
    """The merchant's plugin stops serving cancelled orders; returns their numbers → days."""
    cancelled = {
        int(o["orderId"]): str(o["orderDate"])[:10]
        for o in emu.store.iter_orders()
        if ORDER_STATUS_NAMES.get(str(o["orderStatus"])) == "cancelled"
    }
    emu.set_plugin("order", statuses=(1, 2, 3, 4, 5))
    return cancelled


# --- agreement -----------------------------------------------------------------------------
def test_verify_exits_0_right_after_a_sync_and_publish(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_verify(capsys)
    assert code == 0, out + err
    lines = out.splitlines()
    served = list(published.emu.store.iter_orders())
    days = {str(o["orderDate"])[:10] for o in served}
    assert (
        f"orders: {len(days):,} days compared, all agree "
        f"(Centra {len(served):,} orders, snapshot {len(served):,})"
    ) in lines
    customers = published.emu.store.customers.n
    assert any(
        line.startswith("customers: ") and f"(Centra {customers:,} customers" in line
        for line in lines
    )
    assert lines[-1].startswith("Centra and the snapshot agree: ")
    assert lines[-1].endswith("compared, no differences.")
    # Progress of the reads goes to stderr, not into the report.
    assert "orders: read, " in err and "customers: read, " in err


def test_orders_the_pipeline_marked_missing_are_not_counted(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    cancelled = hide_cancelled_orders(published.emu)
    assert cancelled
    # Refreshing them by number finds them gone: the pipeline marks them `_missing_since`.
    published.refresh_orders(sorted(cancelled))
    published.publish()
    code, out, err = run_verify(capsys, "--stream", "orders")
    assert code == 0, out + err


# --- drift ---------------------------------------------------------------------------------
def test_changed_orders_older_than_the_lookback_are_named_by_day_and_id(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = published.emu
    cursor = published.warehouse.state("orders").cursor
    assert cursor is not None
    updated = emu.tick(updated_orders=40, advance_seconds=60)["updated_order_ids"]
    # The hourly sync re-reads the last 7 days only, so older changes stay behind.
    published.sync(["orders"])
    published.publish()
    snapshot = snapshot_orders(published)
    days = order_days(emu)
    expected = {
        (days[n], n) for n in updated if snapshot.get(n) != centra_order(emu, n)
    }  # a changed status, a total, or an order that became visible (released from hold)
    window_start = shift_local(cursor, timedelta(days=-7))[:10]
    assert expected, "the tick changed no order outside the lookback"
    assert all(day <= window_start for day, _ in expected)

    code, doc = run_verify_json(capsys)
    assert code == 1
    assert doc["status"] == "drift"
    orders = doc["streams"]["orders"]
    assert {d["day"] for d in orders["differences"]} == {day for day, _ in expected}
    listed = listed_ids(doc, "orders")
    assert set(listed) == expected
    for (_, number), item in listed.items():
        assert as_state(item["centra"]) == centra_order(emu, number)
        assert as_state(item["snapshot"]) == snapshot.get(number)
    assert doc["streams"]["returns"]["days_differing"] == 0
    assert doc["streams"]["customers"]["days_differing"] == 0

    code, out, _ = run_verify(capsys)
    assert code == 1
    lines = out.splitlines()
    for day, number in expected:
        assert any(line.startswith(f"  {day}: ") for line in lines)
        assert any(line.startswith(f"    order {number}: ") for line in lines)
    assert lines[-1] == doc["verdict"]
    assert lines[-1].startswith(f"Drift: {len(orders['differences'])} of ")


def test_hidden_cancelled_orders_are_drift_with_both_sides_numbers(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    cancelled = hide_cancelled_orders(published.emu)
    per_day: dict[str, int] = {}
    for day in cancelled.values():
        per_day[day] = per_day.get(day, 0) + 1
    assert 0 < len(per_day) <= DETAIL_DAYS_LIMIT and max(per_day.values()) <= ID_LIST_LIMIT

    code, doc = run_verify_json(capsys, "--stream", "orders")
    assert code == 1
    assert list(doc["streams"]) == ["orders"]
    differences = {d["day"]: d for d in doc["streams"]["orders"]["differences"]}
    assert set(differences) == set(per_day)
    for day, diff in differences.items():
        assert diff["snapshot"]["count"] - diff["centra"]["count"] == per_day[day]
        assert diff["snapshot"]["statuses"]["cancelled"] == per_day[day]
        assert "cancelled" not in diff["centra"]["statuses"]
        assert diff["differing_ids"] == per_day[day]
    listed = listed_ids(doc, "orders")
    assert set(listed) == {(day, number) for number, day in cancelled.items()}
    assert all(
        i["centra"] is None and i["snapshot"]["status"] == "cancelled" for i in listed.values()
    )
    assert doc["totals"]["days_differing"] == len(per_day)
    assert doc["totals"]["streams_differing"] == ["orders"]

    code, out, _ = run_verify(capsys, "--stream", "orders")
    assert code == 1
    assert out.splitlines()[-1] == doc["verdict"]
    number, day = next(iter(cancelled.items()))
    assert f"    order {number}: only in the snapshot (cancelled " in out


def test_records_missing_from_the_snapshot_are_named_for_returns_and_customers(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Drift planted in the snapshot itself: a return deleted, a customer marked missing."""
    con = duckdb.connect(str(published.settings.snapshot_path))
    return_id, return_day = con.execute(
        "SELECT return_id, CAST(timezone(?, date) AS DATE) FROM returns ORDER BY return_id LIMIT 1",
        [TZ],
    ).fetchall()[0]
    customer_id, customer_day = con.execute(
        "SELECT customer_id, CAST(timezone(?, created) AS DATE) FROM customers "
        "ORDER BY customer_id DESC LIMIT 1",
        [TZ],
    ).fetchall()[0]
    con.execute("DELETE FROM returns WHERE return_id = ?", [return_id])
    con.execute("UPDATE customers SET _missing_since = now() WHERE customer_id = ?", [customer_id])
    con.close()

    code, doc = run_verify_json(capsys, "--stream", "returns", "--stream", "customers")
    assert code == 1
    assert listed_ids(doc, "returns") == {
        (return_day.isoformat(), return_id): {"id": return_id, "centra": {}, "snapshot": None}
    }
    assert listed_ids(doc, "customers") == {
        (customer_day.isoformat(), customer_id): {"id": customer_id, "centra": {}, "snapshot": None}
    }
    (diff,) = doc["streams"]["customers"]["differences"]
    assert diff["centra"]["count"] == diff["snapshot"]["count"] + 1
    code, out, _ = run_verify(capsys, "--stream", "customers", "--stream", "returns")
    assert code == 1
    assert f"    return {return_id}: only in Centra" in out
    assert f"    customer {customer_id}: only in Centra" in out


def test_since_leaves_out_differences_before_that_day(
    published: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    cancelled_days = sorted(set(hide_cancelled_orders(published.emu).values()))
    assert len(cancelled_days) >= 3
    since = cancelled_days[len(cancelled_days) // 2]

    code, doc = run_verify_json(capsys, "--stream", "orders", "--since", since)
    assert code == 1
    assert doc["since"] == since
    reported = [d["day"] for d in doc["streams"]["orders"]["differences"]]
    assert reported == [d for d in cancelled_days if d >= since]
    assert cancelled_days[0] not in reported
    served_days = {d for d in order_days(published.emu).values() if d >= since}
    assert doc["streams"]["orders"]["days_compared"] == len(served_days)

    after_last = (date.fromisoformat(cancelled_days[-1]) + timedelta(days=1)).isoformat()
    code, out, err = run_verify(capsys, "--stream", "orders", "--since", after_last)
    assert code == 0, out + err
    assert f"days since {after_last}" in out


# --- could not verify ----------------------------------------------------------------------
def test_no_snapshot_yet_exits_2_and_reads_nothing_from_centra(
    centra_env: Emulator, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = request_count(centra_env)
    code, out, err = run_verify(capsys)
    assert code == 2
    assert f"no analyst snapshot at {data_dir / 'centra.duckdb'} yet" in err
    assert "centra-pipeline sync" in err
    assert out.splitlines()[-1].startswith("Could not verify: no analyst snapshot")
    assert request_count(centra_env) == before


def test_a_wrong_api_key_exits_2_with_the_fix_and_never_prints_a_key(
    published: Pipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-the-key-4711"
    monkeypatch.setenv("CENTRA_ORDER_API_KEY", wrong)
    code, out, err = run_verify(capsys)
    assert code == 2
    assert "refused the key (HTTP 401)" in err and "CENTRA_ORDER_API_KEY" in err
    code, doc = run_verify_json(capsys)
    assert code == 2
    assert doc["status"] == "could_not_verify" and "refused the key" in doc["error"]
    for text in (out, err, json.dumps(doc)):
        assert wrong not in text and ORDER_KEY not in text


def test_missing_configuration_exits_2_naming_the_variables(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_verify(capsys)
    assert code == 2
    assert "Centra is not configured: set CENTRA_ORDER_API_URL, CENTRA_ORDER_API_KEY" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2025-13-01"], "--since must be a store-local date YYYY-MM-DD"),
        (["--since", "01/06/2025"], "--since must be a store-local date YYYY-MM-DD"),
        (["--stream", "invoices"], "cannot verify stream 'invoices': verify compares orders"),
        (["--stream", "orders", "--stream", "stock"], "cannot verify stream 'stock'"),
    ],
)
def test_bad_input_exits_2_with_a_specific_message_before_reading_anything(
    published: Pipeline, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = request_count(published.emu)
    code, out, err = run_verify(capsys, *args)
    assert code == 2
    assert message in err
    assert out.splitlines()[-1].startswith("Could not verify: ")
    assert request_count(published.emu) == before


# --- side effects, progress ----------------------------------------------------------------
def test_verify_writes_nothing(
    published: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    published.emu.tick(updated_orders=20, new_returns=3, advance_seconds=60)  # drift: re-reads

    def files() -> dict[str, tuple[int, int]]:
        out = {}
        for root, dirs, names in os.walk(tmp_path):
            for name in dirs + names:
                path = Path(root, name)
                stat = path.stat()
                out[str(path.relative_to(tmp_path))] = (stat.st_size, stat.st_mtime_ns)
        return out

    before = files()
    assert "data/centra.duckdb" in before
    assert run_verify(capsys)[0] == 1
    assert run_verify(capsys, "--json", "--since", "2025-01-01")[0] == 1
    assert files() == before


def test_the_verify_function_reports_progress_and_returns_the_result(
    published: Pipeline,
) -> None:
    lines: list[str] = []
    result = verify(
        Settings.from_env(), ["customers"], None, lines.append, progress_interval=0, page_size=100
    )
    customers = published.emu.store.customers.n
    assert result.agree and result.exit_code == 0
    assert result.streams["customers"].centra_records == customers
    assert result.streams["customers"].snapshot_records == customers
    reading = [line for line in lines if line.startswith("customers: reading Centra, ")]
    counts = [
        int(re.search(r", ([\d,]+) records in", line)[1].replace(",", "")) for line in reading
    ]
    assert counts == [100, 200, 300, 300]  # three pages, then the empty page that ends paging
    assert lines[-1].startswith(f"customers: read, {customers:,} records in 4 pages (")
