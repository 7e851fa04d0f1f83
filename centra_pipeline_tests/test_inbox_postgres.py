"""The inbox on a real PostgreSQL server (`CENTRA_INBOX_URL`): the same contract as the
SQLite inbox, run against both, and what only a shared inbox needs: stores side by side in
one database, writers in several processes that a reader never overtakes, and no password
in any message."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from centra_pipeline.centra.webhook import WebhookEvent
from centra_pipeline.settings import ConfigError, Secret, Settings
from centra_pipeline.webhooks.inbox import Delivery
from centra_pipeline.webhooks.inboxes import InboxRef


def order(number: int, date: str = "2021-01-29 14:40:58.628033", action: str = "update"):
    return WebhookEvent("order", action, str(number), date)


@pytest.fixture(params=["sqlite", "postgres"])
def ref(request, tmp_path: Path) -> InboxRef:
    path = tmp_path / "webhooks" / "inbox.sqlite3"
    if request.param == "sqlite":
        return InboxRef("default", path)
    return InboxRef("default", path, Secret(request.getfixturevalue("inbox_url")))


@pytest.fixture
def inbox(ref: InboxRef):
    with ref.open(claim=True) as opened:
        yield opened


# --- the contract, on both --------------------------------------------------------------
def test_store_keeps_every_field_and_reads_back_in_seq_order(inbox) -> None:
    events = [
        order(2735),
        WebhookEvent("shipment", "good_to_go", "1902", "2021-01-29 14:41:00.000001"),
        WebhookEvent(
            "allocation_request", "create", "77", "2021-01-29 14:42", {"order": {"id": 5}}
        ),
    ]
    before = datetime.now(UTC)
    result = inbox.store("ab" * 32, 1_700_000_000, events)
    assert (result.new_events, result.duplicate_events, result.duplicate_delivery) == (3, 0, False)
    stored = inbox.events_after(0)
    assert [(e.type, e.action, e.object_id, e.event_date, e.data) for e in stored] == [
        ("order", "update", "2735", "2021-01-29 14:40:58.628033", None),
        ("shipment", "good_to_go", "1902", "2021-01-29 14:41:00.000001", None),
        ("allocation_request", "create", "77", "2021-01-29 14:42", {"order": {"id": 5}}),
    ]
    assert [e.seq for e in stored] == sorted(e.seq for e in stored)
    assert {e.delivery_id for e in stored} == {result.delivery_id}
    assert {e.store for e in stored} == {"default"}
    assert all(before - timedelta(seconds=1) <= e.received_at <= datetime.now(UTC) for e in stored)


def test_duplicates_are_stored_once_and_counted(inbox) -> None:
    first = inbox.store("cd" * 32, 100, [order(1), order(2)])
    again = inbox.store("cd" * 32, 160, [order(1), order(2)])  # Centra's retry
    assert again.duplicate_delivery and again.delivery_id == first.delivery_id
    other = inbox.store("02" * 32, 101, [order(2), order(3), order(3)])  # another batch
    assert (other.new_events, other.duplicate_events) == (1, 2)
    no_date = [WebhookEvent("order", "update", "9", None)]
    inbox.store("04" * 32, 1, no_date)
    assert inbox.store("05" * 32, 2, no_date).new_events == 1  # never a duplicate
    counts = inbox.counts()
    assert (counts.events, counts.deliveries, counts.duplicate_deliveries) == (5, 3 + 1, 1)
    assert counts.duplicate_events == 2 + 2
    assert counts.by_type == {"order": {"update": 5}}
    assert counts.max_seq == inbox.max_seq() == inbox.events_after(0)[-1].seq


def test_store_many_is_all_or_nothing(inbox) -> None:
    inbox.store("06" * 32, 1, [order(1)])
    good = Delivery("07" * 32, 2, [order(2)])
    bad = Delivery("08" * 32, 3, [WebhookEvent("order", "update", "3", "d", data=object())])
    with pytest.raises(TypeError):
        inbox.store_many([good, bad])
    assert (inbox.counts().events, inbox.counts().deliveries) == (1, 1)
    results = inbox.store_many([good, Delivery("07" * 32, 2, [order(2)])])
    assert [r.duplicate_delivery for r in results] == [False, True]


def test_cursor_reads_pending_counts_and_prune(inbox) -> None:
    assert (inbox.max_seq(), inbox.pending_count(0), inbox.oldest_pending(0)) == (0, 0, None)
    for n in range(10):
        kind = "order" if n % 2 == 0 else "shipment"
        inbox.store(f"{n:064x}", n, [WebhookEvent(kind, "update", str(n), f"d{n}")])
    cursor, seen = 0, []
    while batch := inbox.events_after(cursor, limit=2, types=["order"]):
        seen += [e.object_id for e in batch]
        cursor = batch[-1].seq
    assert seen == ["0", "2", "4", "6", "8"]
    assert inbox.events_after(0, types=[]) == []
    assert inbox.pending_count(0, types=["shipment"]) == 5
    assert inbox.oldest_pending(0).object_id == "0"
    with pytest.raises(ValueError, match="limit"):
        inbox.events_after(0, limit=0)
    newest = inbox.max_seq()
    # Applied through the 4th event, everything old: 4 go; the newest always stays.
    fourth = inbox.events_after(0)[3].seq
    assert inbox.prune(fourth, datetime.now(UTC) + timedelta(days=1)) == 4
    assert inbox.prune(newest, datetime.now(UTC) + timedelta(days=1)) == 5
    assert [e.seq for e in inbox.events_after(0)] == [newest]
    inbox.store("f" * 64, 9, [order(99)])
    assert inbox.max_seq() > newest  # a seq is never reused


def test_clear_payloads_forgets_data_and_keeps_the_event(inbox) -> None:
    inbox.store("0c" * 32, 1, [WebhookEvent("order", "update", "7", "d", {"email": "a@b.c"})])
    assert inbox.clear_payloads("order", ["7", "8"]) == 1
    (event,) = inbox.events_after(0)
    assert (event.object_id, event.data) == ("7", None)


def test_a_readonly_inbox_reads_and_refuses_writes(ref: InboxRef) -> None:
    with ref.open(readonly=True) as reader:  # before any receiver: empty, no error
        assert reader.max_seq() == 0
        with ref.open(claim=True) as writer:
            writer.store("0d" * 32, 1, [order(1)])
        assert [e.object_id for e in reader.events_after(0)] == ["1"]
        with pytest.raises(
            (sqlite3.OperationalError, PermissionError), match=r"readonly|read-only"
        ):
            reader.store("0e" * 32, 2, [order(2)])
    with ref.open() as check:
        assert check.counts().events == 1


def test_threads_writing_at_once_never_lose_or_reorder(inbox) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(40):
                inbox.store(f"{worker:032x}{n:032x}", n, [order(worker * 1000 + n)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = inbox.events_after(0, limit=1000)
    assert len({e.object_id for e in stored}) == 160
    # seq order is commit order: the delivery ids, allocated in the same transaction, agree
    assert [e.delivery_id for e in stored] == sorted(e.delivery_id for e in stored)


# --- only a shared inbox ------------------------------------------------------------------
def test_stores_share_one_database_without_seeing_each_other(tmp_path: Path, inbox_url) -> None:
    url = Secret(inbox_url)
    with (
        InboxRef("retail", tmp_path / "r", url).open() as retail,
        InboxRef("outlet", tmp_path / "o", url).open() as outlet,
    ):
        retail.store("aa" * 32, 1, [order(1)])
        outlet.store("aa" * 32, 1, [order(1)])  # the same body to another store: its own
        outlet.store("bb" * 32, 2, [order(2)])
        assert [e.object_id for e in retail.events_after(0)] == ["1"]
        assert [(e.object_id, e.store) for e in outlet.events_after(0)] == [
            ("1", "outlet"),
            ("2", "outlet"),
        ]
        assert retail.counts().deliveries == 1 and outlet.counts().deliveries == 2
        assert retail.inbox_id != outlet.inbox_id
        assert retail.store_name == "retail"


WRITER = textwrap.dedent(
    """
    import sys
    from centra_pipeline.centra.webhook import WebhookEvent
    from centra_pipeline.webhooks.inbox_postgres import PostgresInbox
    url, worker = sys.argv[1], int(sys.argv[2])
    with PostgresInbox(url, store="default") as inbox:
        for n in range(150):
            event = WebhookEvent("order", "update", str(worker * 10000 + n), f"d{n}")
            inbox.store(f"{worker:032x}{n:032x}", n, [event])
    """
)


def test_a_reader_never_passes_an_event_two_writer_processes_are_committing(inbox_url) -> None:
    """Sequences are handed out before commit; without the store's write lock a reader
    could see seq N+1 before N commits and move its cursor past N for good."""
    from centra_pipeline.webhooks.inbox_postgres import PostgresInbox

    writers = [subprocess.Popen([sys.executable, "-c", WRITER, inbox_url, str(w)]) for w in (1, 2)]
    seen: list[int] = []
    cursor = 0
    with PostgresInbox(inbox_url, store="default", readonly=True) as reader:
        while any(w.poll() is None for w in writers) or reader.max_seq() > cursor:
            for event in reader.events_after(cursor, limit=50):
                seen.append(int(event.object_id))
                cursor = event.seq
        assert [w.wait(timeout=60) for w in writers] == [0, 0]
        seen += [int(e.object_id) for e in reader.events_after(cursor)]
    assert sorted(seen) == sorted(w * 10000 + n for w in (1, 2) for n in range(150))


def test_no_password_in_messages_settings_or_logs(tmp_path: Path, postgres) -> None:
    wrong = postgres.url().replace(postgres.password, "not-the-password-CANARY")
    ref = InboxRef("default", tmp_path / "x", Secret(wrong))
    assert "CANARY" not in ref.location and "***" in ref.location
    with pytest.raises(ConnectionError) as refused:
        ref.open()
    assert "CANARY" not in str(refused.value) and "CENTRA_INBOX_URL" in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__context__ is not None
    settings = Settings.from_env({"CENTRA_INBOX_URL": postgres.url()})
    assert postgres.password not in repr(settings)
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL") as bad:
        Settings.from_env({"CENTRA_INBOX_URL": "mysql://u:secret-CANARY@h/db"})
    assert "CANARY" not in str(bad.value)
