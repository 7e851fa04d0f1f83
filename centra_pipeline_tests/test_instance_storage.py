"""The project's Dagster instance storage: Dagster's SQLite files and layout, with each
database's engine kept (defs/instance_storage.py)."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import InstanceRef

from centra_pipeline.defs import instance_storage
from centra_pipeline.defs.instance_storage import (
    KEEP_RUN_ENGINES,
    KeptEngineEventLogStorage,
    KeptEngineRunStorage,
)


@dg.asset
def a_table() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _engine_event(run_id: str) -> EventLogEntry:
    event = DagsterEvent(
        DagsterEventType.ENGINE_EVENT.value,
        job_name="a_job",
        message="step worker started",
        event_specific_data=EngineEventData(),
    )
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        dagster_event=event,
    )


def test_the_project_instance_uses_kept_engines_and_plain_dagster_reads_its_history(
    data_dir: Path,
) -> None:
    home = data_dir.parent / "dagster_home"
    with _instance(home) as instance:
        assert isinstance(instance.event_log_storage, KeptEngineEventLogStorage)
        assert isinstance(instance.run_storage, KeptEngineRunStorage)
        result = dg.materialize([a_table], instance=instance)
        assert result.success
    # The same base_dir under Dagster's own `storage: sqlite:` sees the same run and event.
    plain = data_dir.parent / "plain_home"
    plain.mkdir()
    (plain / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {home / 'storage'}\ntelemetry:\n  enabled: false\n"
    )
    with _instance(plain) as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert [r.run_id for r in instance.get_runs()] == [result.run_id]
        event = instance.get_latest_materialization_event(dg.AssetKey("a_table"))
        assert event is not None and event.run_id == result.run_id
        assert event.asset_materialization.metadata["rows"].value == 3


def test_events_reuse_one_engine_per_database_and_few_are_kept(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real = instance_storage.create_engine

    def counting(conn_string: str, **kwargs):
        made.append(conn_string)
        return real(conn_string, **kwargs)

    monkeypatch.setattr(instance_storage, "create_engine", counting)
    with _instance(data_dir.parent / "dagster_home") as instance:
        storage = instance.event_log_storage
        made.clear()
        for _ in range(20):
            storage.store_event(_engine_event("run-a"))
        assert len(made) == 1  # Dagster's own storage makes 20
        for n in range(KEEP_RUN_ENGINES + 3):
            storage.store_event(_engine_event(f"run-{n}"))
        assert len(storage._run_engines._engines) == KEEP_RUN_ENGINES
        # A run whose engine was let go is written and read as before.
        storage.store_event(_engine_event("run-a"))
        assert len(storage.get_records_for_run("run-a").records) == 21


def test_wipe_lets_go_of_the_files_and_storage_works_after(data_dir: Path) -> None:
    with _instance(data_dir.parent / "dagster_home") as instance:
        storage = instance.event_log_storage
        storage.store_event(_engine_event("run-a"))
        storage.wipe()
        assert storage.get_records_for_run("run-a").records == []
        storage.store_event(_engine_event("run-a"))
        assert len(storage.get_records_for_run("run-a").records) == 1


def test_many_threads_at_once_never_wait_for_a_pooled_connection(data_dir: Path) -> None:
    """A webserver reads runs from many threads at once; Dagster's own storage has no cap on
    connections, so the kept engines must not have one either (SQLAlchemy's default pool
    would make the 16th thread wait 30 s and fail)."""
    import threading

    with _instance(data_dir.parent / "dagster_home") as instance:
        storage = instance.run_storage
        inside = threading.Barrier(20, timeout=10)
        errors: list[BaseException] = []

        def hold() -> None:
            try:
                with storage.connect():
                    inside.wait()  # all 20 hold a connection at the same time
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=hold) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
