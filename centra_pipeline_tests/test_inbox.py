"""The durable inbox: a real SQLite file in tmp_path, readers in other threads and processes,
and the store each inbox file belongs to."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from centra_pipeline.centra.webhook import WebhookEvent
from centra_pipeline.webhooks import inbox_schema
from centra_pipeline.webhooks.inbox import (
    DOCUMENTED_ACTIONS,
    Inbox,
    InboxStoreMismatch,
)


def order(number: int, date: str = "2021-01-29 14:40:58.628033", action: str = "update"):
    return WebhookEvent("order", action, str(number), date)


@pytest.fixture
def inbox(tmp_path: Path):
    with Inbox(tmp_path / "webhooks" / "inbox.sqlite3") as inbox:
        yield inbox


def test_schema_is_created_once_and_durable_settings_are_on(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "inbox.sqlite3"
    with Inbox(path) as first:
        first.store("a" * 64, 1, [order(1)])
    with Inbox(path) as second:  # reopening keeps the data and does not recreate anything
        assert second.max_seq() == 1
        conn = second._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    tables = {
        row[0]
        for row in sqlite3.connect(path).execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
        )
    }
    assert {"deliveries", "events"} <= tables


def test_a_newer_schema_is_refused_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    Inbox(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        Inbox(path)


def test_a_delivery_row_records_its_signature_time_and_counts(inbox: Inbox) -> None:
    # The contract shared with the PostgreSQL inbox is in test_inbox_postgres.py.
    inbox.store("ab" * 32, 1_700_000_000, [order(1), order(2), order(2)])
    row = inbox._connection().execute(
        "SELECT signed_at, event_count, new_events, duplicate_events FROM deliveries"
    )
    assert row.fetchall() == [(1_700_000_000, 3, 2, 1)]


def test_identical_redelivery_stores_nothing_and_says_so(inbox: Inbox) -> None:
    events = [order(1), order(2)]
    first = inbox.store("cd" * 32, 100, events)
    again = inbox.store("cd" * 32, 160, events)  # Centra's retry: same body, new signature
    assert again.duplicate_delivery
    assert (again.delivery_id, again.new_events, again.duplicate_events) == (
        first.delivery_id,
        0,
        2,
    )
    counts = inbox.counts()
    assert (counts.events, counts.deliveries) == (2, 1)
    assert (counts.duplicate_deliveries, counts.duplicate_events) == (1, 2)
    assert inbox._connection().execute("SELECT redeliveries FROM deliveries").fetchone() == (1,)


def test_the_same_event_in_another_batch_is_stored_once(inbox: Inbox) -> None:
    first = inbox.store("01" * 32, 100, [order(1), order(2)])
    second = inbox.store("02" * 32, 101, [order(2), order(3), order(3)])
    assert (second.new_events, second.duplicate_events, second.duplicate_delivery) == (1, 2, False)
    stored = inbox.events_after(0)
    assert [e.object_id for e in stored] == ["1", "2", "3"]
    assert stored[1].delivery_id == first.delivery_id  # the first delivery keeps it
    # A new change of the same order (another date or action) is a new event.
    third = inbox.store(
        "03" * 32, 102, [order(2, date="2021-01-30 00:00:00.0"), order(2, action="delete")]
    )
    assert third.new_events == 2
    assert inbox.counts().duplicate_events == 2


def test_events_without_a_date_are_never_treated_as_duplicates(inbox: Inbox) -> None:
    # Without a date a re-send cannot be told from a new change; losing a change is worse.
    inbox.store("04" * 32, 1, [WebhookEvent("order", "update", "9", None)])
    result = inbox.store("05" * 32, 2, [WebhookEvent("order", "update", "9", None)])
    assert result.new_events == 1
    assert [e.event_date for e in inbox.events_after(0)] == [None, None]


def test_cursor_reading_with_limit_and_types(inbox: Inbox) -> None:
    for n in range(10):
        kind = "order" if n % 2 == 0 else "shipment"
        inbox.store(f"{n:064x}", n, [WebhookEvent(kind, "update", str(n), f"d{n}")])
    assert inbox.events_after(0, limit=3)[-1].object_id == "2"

    cursor, seen = 0, []
    while batch := inbox.events_after(cursor, limit=2, types=["order"]):
        seen += [e.object_id for e in batch]
        cursor = batch[-1].seq
    assert seen == ["0", "2", "4", "6", "8"]
    assert inbox.events_after(cursor, types=["order"]) == []
    assert inbox.events_after(0, types=[]) == []
    assert [e.type for e in inbox.events_after(0, types=["shipment", "shipment"])] == [
        "shipment"
    ] * 5
    with pytest.raises(ValueError, match="limit"):
        inbox.events_after(0, limit=0)


def test_max_seq_and_lag_helpers(inbox: Inbox) -> None:
    assert inbox.max_seq() == 0
    assert inbox.oldest_pending(0) is None
    assert inbox.pending_count(0) == 0
    inbox.store("09" * 32, 1, [order(1), WebhookEvent("customer", "update", "5", "d")])
    inbox.store("0a" * 32, 2, [order(2)])
    first = inbox.events_after(0)[0]
    assert inbox.oldest_pending(0) == first
    assert inbox.pending_count(0) == 3
    assert inbox.pending_count(first.seq, types=["order"]) == 1
    assert inbox.oldest_pending(inbox.max_seq()) is None
    assert inbox.max_seq() == inbox.events_after(0)[-1].seq


def test_every_type_and_action_is_stored_and_counted(inbox: Inbox) -> None:
    events = [
        WebhookEvent(kind, action, f"{kind}-{action}", "2021-01-29 14:40:58.0")
        for kind, actions in DOCUMENTED_ACTIONS.items()
        for action in sorted(actions) or ["update"]
    ]
    events.append(WebhookEvent("brand_new_type", "whatever", "1", "d"))
    events.append(WebhookEvent("order", "archive", "1", "d"))  # an order action Centra may add
    inbox.store("0b" * 32, 1, events)
    counts = inbox.counts()
    assert counts.events == len(events)
    assert counts.by_type["order"] == {"insert": 1, "update": 1, "delete": 1, "archive": 1}
    assert counts.by_type["shipment"] == {"create": 1, "good_to_go": 1}
    assert counts.by_type["check_first"] == dict.fromkeys(
        ["accepted", "create", "rejected", "timeout"], 1
    )
    assert counts.by_type["allocation_request"] == {"create": 1, "outdated": 1, "update": 1}
    for kind in ("customer", "return", "account", "brand_new_type"):
        assert sum(counts.by_type[kind].values()) == 1
    # customer/return/account actions are undocumented, plus the two made-up ones
    assert counts.unrecognised_events == 5
    assert counts.max_seq == inbox.max_seq()
    assert counts.to_dict()["by_type"]["order"]["archive"] == 1
    assert [e.recognised for e in inbox.events_after(0, types=["order"])] == [
        True,
        True,
        True,
        False,
    ]


def test_readonly_inbox_reads_but_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with Inbox(path, readonly=True) as reader:  # before the receiver ever ran: empty, no error
        assert reader.max_seq() == 0
        with Inbox(path) as writer:
            writer.store("0c" * 32, 1, [order(1)])
        assert [e.object_id for e in reader.events_after(0)] == ["1"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.store("0d" * 32, 1, [order(2)])
    with Inbox(path) as check:
        assert check.counts().deliveries == 1


def test_open_write_transaction_does_not_block_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with Inbox(path) as writer, Inbox(path, readonly=True) as reader:
        writer.store("0e" * 32, 1, [order(1)])
        raw = writer._connection()
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(
            "INSERT INTO deliveries (body_sha256, signed_at, received_at, event_count, "
            "new_events, duplicate_events, last_received_at) VALUES ('x', 1, 'r', 0, 0, 0, 'r')"
        )
        started = time.monotonic()
        assert [e.object_id for e in reader.events_after(0)] == ["1"]  # the committed state
        assert reader.counts().deliveries == 1
        with Inbox(path, readonly=True) as late:  # opening takes no lock either
            assert late.max_seq() == 1
        assert time.monotonic() - started < 1  # no wait for the busy timeout (10 s)
        raw.execute("ROLLBACK")


def test_writer_keeps_working_while_another_process_reads(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    Inbox(path).close()
    reader_code = textwrap.dedent(
        f"""
        import sys, time
        from centra_pipeline.webhooks.inbox import Inbox
        inbox = Inbox({str(path)!r}, readonly=True)
        print("ready", flush=True)
        reads, cursor, deadline = 0, 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            inbox.counts()
            for event in inbox.events_after(cursor, limit=50):
                assert event.seq > cursor
                cursor = event.seq
            reads += 1
            if cursor >= 600:
                break
        print(reads, cursor, flush=True)
        """
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", reader_code], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    slowest = 0.0
    with Inbox(path) as writer:
        for n in range(300):
            started = time.perf_counter()
            writer.store(
                f"{n:064x}", n, [order(n), WebhookEvent("shipment", "create", str(n), "d")]
            )
            slowest = max(slowest, time.perf_counter() - started)
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0, out
    reads, cursor = map(int, out.split())
    assert reads > 10  # the reader really ran alongside
    assert cursor == 600  # and saw every event, in order
    assert slowest < 2, f"a store waited {slowest:.2f} s behind the reader"


def test_prune_deletes_only_applied_events_past_retention(inbox: Inbox) -> None:
    for number in range(1, 6):
        inbox.store(f"{number:064x}", number, [order(number)])
    conn = inbox._connection()
    conn.execute("UPDATE events SET received_at = ?", ("2026-01-01T00:00:00.000000+00:00",))
    conn.execute("UPDATE deliveries SET last_received_at = ?", ("2026-01-01T00:00:00+00:00",))
    conn.execute(
        "UPDATE events SET received_at = ? WHERE seq = 2", (datetime.now(UTC).isoformat(),)
    )
    # Applied through 4; event 2 arrived recently; 5 is not applied (and is the newest).
    deleted = inbox.prune(4, datetime(2026, 6, 1, tzinfo=UTC))
    assert deleted == 3
    assert [e.seq for e in inbox.events_after(0)] == [2, 5]
    assert inbox.max_seq() == 5
    (deliveries,) = conn.execute("SELECT count(*) FROM deliveries").fetchone()
    assert deliveries == 2
    # Everything applied and old: the newest event still stays, so max_seq holds.
    assert inbox.prune(5, datetime.now(UTC) + timedelta(days=1)) == 1
    assert [e.seq for e in inbox.events_after(0)] == [5]
    # A seq is never reused after a prune.
    inbox.store("f" * 64, 9, [order(99)])
    assert inbox.max_seq() == 6


# The store an inbox belongs to ----------------------------------------------------------------


def _old_inbox(path: Path) -> None:
    """An inbox file as written before stores existed: no `store` column, no store in `meta`."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in inbox_schema._SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('inbox_id', 'old-inbox-id')")
    conn.execute(
        "INSERT INTO deliveries (body_sha256, signed_at, received_at, event_count, new_events, "
        "duplicate_events, last_received_at) VALUES ('aa', 1, 'r', 2, 2, 0, 'r')"
    )
    for number in (1, 2):
        conn.execute(
            "INSERT INTO events (delivery_id, type, action, object_id, event_date, data, "
            "received_at) VALUES (1, 'order', 'update', ?, 'd', NULL, ?)",
            (str(number), "2026-01-01T00:00:00.000000+00:00"),
        )
    conn.execute("PRAGMA user_version = 2")
    conn.close()


def _column_and_meta(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    conn = sqlite3.connect(path)
    try:
        stores = [row[0] for row in conn.execute("SELECT store FROM events ORDER BY seq")]
        meta = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    finally:
        conn.close()
    return stores, meta


def test_an_old_inbox_gets_the_store_column_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    _old_inbox(path)
    with Inbox(path, readonly=True) as reader:  # the sensor, naming no store
        assert [(e.object_id, e.store) for e in reader.events_after(0)] == [
            ("1", "default"),
            ("2", "default"),
        ]
        assert reader.store_name == "default"
        assert reader.inbox_id == "old-inbox-id"
    stores, meta = _column_and_meta(path)
    assert stores == ["default", "default"]
    assert meta == [("inbox_id", "old-inbox-id")]  # an open naming no store records none
    with Inbox(path, store="default") as receiver:  # the single-store receiver claims it
        receiver.store("bb" * 32, 2, [order(3)])
        assert [e.store for e in receiver.events_after(0)] == ["default"] * 3
        assert receiver.max_seq() == 3
    assert _column_and_meta(path)[1] == [("inbox_id", "old-inbox-id"), ("store", "default")]
    with Inbox(path, store="default") as again, Inbox(path) as plain:
        assert again.store_name == plain.store_name == "default"


def test_the_first_open_naming_a_store_records_it_and_labels_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "stores" / "retail" / "webhooks" / "inbox.sqlite3"
    path.parent.mkdir(parents=True)
    _old_inbox(path)
    with Inbox(path, store="retail") as inbox:
        assert inbox.store_name == "retail"
        inbox.store("cc" * 32, 3, [order(7)])
        assert [(e.object_id, e.store) for e in inbox.events_after(0)] == [
            ("1", "retail"),
            ("2", "retail"),
            ("7", "retail"),
        ]
    with Inbox(path) as writer:  # a writer naming no store still writes the file's store
        writer.store("dd" * 32, 4, [order(8)])
        assert writer.store_name == "retail"
    stores, meta = _column_and_meta(path)
    assert stores == ["retail"] * 4
    assert ("store", "retail") in meta


def test_opening_an_inbox_of_another_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with Inbox(path, store="retail") as retail:
        retail.store("ee" * 32, 1, [order(1)])
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(InboxStoreMismatch, match="belongs to store 'retail', not 'outlet'"):
            Inbox(path, store="outlet", readonly=readonly)
    assert path.read_bytes() == before
    with pytest.raises(InboxStoreMismatch, match="CENTRA_DATA_DIR"):
        Inbox(path, store="default")  # the single store is a store like any other
    with Inbox(path, readonly=True) as reader:  # naming none: no check, and nothing changed
        assert reader.store_name == "retail"
        assert [(e.object_id, e.store) for e in reader.events_after(0)] == [("1", "retail")]
    with pytest.raises(ValueError, match="non-empty"):
        Inbox(tmp_path / "other.sqlite3", store="")


def test_a_new_inbox_opened_without_a_store_is_claimed_later(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with Inbox(path, readonly=True) as sensor:  # the sensor starts before the receiver
        assert sensor.store_name == "default"
        with Inbox(path, store="outlet") as receiver:
            receiver.store("ff" * 32, 1, [order(5)])
        assert sensor.store_name == "outlet"
        (event,) = sensor.events_after(0)
        assert event.store == "outlet"


def test_opening_a_claimed_inbox_with_its_store_takes_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with Inbox(path, store="retail") as writer:
        writer.store("0f" * 32, 1, [order(1)])
        raw = writer._connection()
        raw.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with Inbox(path, store="retail", busy_timeout_seconds=5) as again:
            assert again.max_seq() == 1
        assert time.monotonic() - started < 1
        raw.execute("ROLLBACK")
