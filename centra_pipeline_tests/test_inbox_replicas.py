"""Two webhook receivers, as replicas behind a load balancer, on one PostgreSQL inbox: a
burst of signed deliveries, each sent to both and some events repeated in other batches, is
stored exactly once, and the sensor's refresh applies every event (docs/architecture.md, "A
shared inbox on PostgreSQL"). Real parts: the receivers as subprocesses, a PostgreSQL server
on loopback, the emulator, and Dagster's execution."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from centra_pipeline.definitions import defs
from centra_pipeline.defs.jobs import SYNC_JOB_NAME
from centra_pipeline.defs.keys import SYNC_STEP
from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline.webhooks.inbox_postgres import PostgresInbox
from centra_pipeline_tests.conftest import TZ, WEBHOOK_SECRET
from centra_pipeline_tests.test_webhook_flow import run_sensor_refreshes
from centra_pipeline_tests.test_webhook_receiver import (
    body_of,
    post,
    receiver_process,
    signed_headers,
)
from centra_pipeline_tests.truth import table_differences, truth_tables


def test_two_receivers_store_a_burst_once_and_the_sensor_applies_it(
    centra_env, data_dir: Path, inbox_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = centra_env
    monkeypatch.setenv("CENTRA_INBOX_URL", inbox_url)
    with dg.instance_for_test() as instance:
        sync = defs.resolve_job_def(SYNC_JOB_NAME)
        assert sync.execute_in_process(instance=instance, partition_key="default").success

        changed = sorted(emu.tick(updated_orders=30, advance_seconds=3600)["updated_order_ids"])
        events = [
            {"type": "order", "action": "update", "id": n, "date": f"2026-01-15 13:00:{i:02d}"}
            for i, n in enumerate(changed)
        ]
        batches = [events[i : i + 3] for i in range(0, len(events), 3)]
        batches += [events[0:2] + events[-2:]]  # the same events again, in another batch
        bodies = [body_of(*batch) for batch in batches]

        with ExitStack() as stack:
            urls = [
                stack.enter_context(
                    receiver_process(
                        tmp_path / f"host-{n}" / "data",
                        tmp_path / f"receiver-{n}.log",
                        WEBHOOK_SECRET,
                        env={"CENTRA_INBOX_URL": inbox_url},
                    )
                )[1]
                for n in (1, 2)
            ]

            def deliver(job: tuple[str, bytes]) -> int:
                url, body = job
                hook = url + "/webhooks/centra"
                return post(
                    hook, data=body, headers=signed_headers(body, WEBHOOK_SECRET)
                ).status_code

            # Every body to both replicas at once: the load balancer's retry to the other.
            jobs = [(url, body) for body in bodies for url in urls]
            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(deliver, jobs)) == {200}

        for n in (1, 2):  # a replica keeps nothing of the inbox on its own disk
            assert not list((tmp_path / f"host-{n}").rglob("*.sqlite3*"))
        with PostgresInbox(inbox_url, store="default", readonly=True) as inbox:
            counts = inbox.counts()
            assert counts.events == len(changed)  # each event exactly once
            assert counts.deliveries == len(bodies)
            assert counts.duplicate_deliveries == len(bodies)  # every body came twice
            stored = inbox.events_after(0, limit=1000)
            assert sorted(int(e.object_id) for e in stored) == changed
            inbox_id, max_seq = inbox.inbox_id, inbox.max_seq()

        requests = run_sensor_refreshes(instance)
        keys = set(
            itertools.chain.from_iterable(
                r.run_config["ops"][SYNC_STEP]["config"]["streams"]["orders"]["keys"]
                for r in requests
            )
        )
        assert keys == set(changed)

    assert Warehouse(data_dir / "warehouse" / "warehouse.duckdb").inbox_applied(inbox_id) == max_seq
    con = duckdb.connect(str(data_dir / "centra.duckdb"), read_only=True)
    try:
        assert table_differences(con, truth_tables(emu, TZ, ["orders"])) == {}
    finally:
        con.close()
    # The inbox URL's password is in no file either replica or the runs wrote.
    password = inbox_url.split(":")[2].split("@")[0]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
