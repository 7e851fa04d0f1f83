"""The lake on object storage (CENTRA_STORAGE_URL; docs/architecture.md, "The lake over years"
and "Erasure"): compaction uploads a segment with its `_segment.json` last and then deletes
the loads it took in; a compaction killed before or after that PUT leaves the lake reading as
before or as after, and the next one cleans up; `forget` leaves no object in the bucket
holding the person, one warehouse version, and later syncs keep them erased. Real parts:
moto's S3 server, PostgreSQL (the warehouse's lease and the inbox), the emulator."""

from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from centra_pipeline.cli.main import main
from centra_pipeline.emulator import Emulator
from centra_pipeline.settings import Settings
from centra_pipeline.storage.backends import lake_for, warehouse_for
from centra_pipeline.storage.compact import parquet_files
from centra_pipeline.storage.lake import SEGMENT
from centra_pipeline.storage.suppression import load_suppression
from centra_pipeline.streams import STREAMS, TABLES
from centra_pipeline.sync.extract import Extractor
from centra_pipeline_tests.conftest import Pipeline, SharedStorage
from centra_pipeline_tests.test_compaction import (
    TICK,
    compact,
    compact_command,
    frozen_at,
    kill,
    lake_records,
    many_loads,
    rebuilt_rows,
    table_rows,
)
from centra_pipeline_tests.test_forget import person_of, places_holding


class ObjectPipeline(Pipeline):
    """`Pipeline` on the store's storage as configured (`CENTRA_STORAGE_URL`), reading with the
    suppression list as a sync does."""

    def __init__(self, emu: Emulator, data: Path) -> None:
        super().__init__(emu, data)
        self.settings = Settings.from_env()
        self.lake = lake_for(self.settings)
        self.warehouse = warehouse_for(self.settings)

    def extractor(self) -> Extractor:
        extractor = super().extractor()
        extractor.suppression = load_suppression(self.settings)
        return extractor


@pytest.fixture
def on_s3(centra_env, shared_storage: SharedStorage, data_dir: Path) -> ObjectPipeline:
    return ObjectPipeline(centra_env, data_dir)


def lake_keys(shared: SharedStorage) -> list[str]:
    """The lake's objects (not pyarrow's empty directory markers, keys ending in "/")."""
    return sorted(k for k in shared.objects("centra/lake/") if not k.endswith("/"))


def segment_dirs(keys: list[str]) -> dict[str, set[str]]:
    """Segment directory (stream/segment=...) → the names of the files in it."""
    found: dict[str, set[str]] = {}
    for key in keys:
        parts = key.split("/")
        if parts[3].startswith("segment="):
            found.setdefault("/".join(parts[2:4]), set()).add(parts[-1])
    return found


def test_compaction_on_object_storage_keeps_every_table_and_deletes_the_loads(
    on_s3: ObjectPipeline, shared_storage: SharedStorage, tmp_path: Path
) -> None:
    many_loads(on_s3)
    live = table_rows(on_s3.warehouse)
    records = lake_records(on_s3.lake)
    before = rebuilt_rows(on_s3.lake, tmp_path / "before")
    assert before == live
    loads = [k for k in lake_keys(shared_storage) if "/day=" in k]
    assert len(loads) > 20
    files_before = sum(parquet_files(on_s3.lake, s) for s in STREAMS)

    results = {r.stream: r for r in compact(on_s3)}

    assert results["orders"].loads == len(records["orders"]) > 5
    keys = lake_keys(shared_storage)
    assert not [k for k in keys if "/day=" in k], "compacted loads left on object storage"
    segments = segment_dirs(keys)
    assert {name.split("/")[0] for name in segments} == set(STREAMS)
    assert all({SEGMENT, "_loads.json"} <= names for names in segments.values())
    files_after = sum(parquet_files(on_s3.lake, s) for s in STREAMS)
    assert files_after <= len(TABLES) < files_before
    assert lake_records(on_s3.lake) == records
    assert rebuilt_rows(on_s3.lake, tmp_path / "after") == before
    assert not list((on_s3.data / "staging").rglob("*.parquet")), "staged files left"

    # Syncing on top of the compacted lake, then compacting the month again: a new segment
    # replaces the first, whose objects are deleted.
    changes = on_s3.emu.tick(**TICK)
    on_s3.sync()
    on_s3.refresh_orders(changes["updated_order_ids"])
    assert on_s3.differences() == {}
    live = table_rows(on_s3.warehouse)
    records = lake_records(on_s3.lake)
    (segment,) = on_s3.lake.segments("orders")
    compact(on_s3)
    (again,) = on_s3.lake.segments("orders")
    assert again.path.name != segment.path.name and again.replaces == [segment.path.name]
    keys = lake_keys(shared_storage)
    assert not [k for k in keys if segment.path.name in k or "/day=" in k]
    assert len(segment_dirs(keys)) == len(STREAMS)
    assert lake_records(on_s3.lake) == records
    assert rebuilt_rows(on_s3.lake, tmp_path / "again") == live


@pytest.mark.parametrize("point", ["compact.before_switch", "compact.after_switch"])
def test_a_compaction_killed_on_object_storage_leaves_the_lake_as_before_and_is_cleaned_up(
    on_s3: ObjectPipeline, shared_storage: SharedStorage, tmp_path: Path, point: str
) -> None:
    many_loads(on_s3)
    records = lake_records(on_s3.lake)
    before = rebuilt_rows(on_s3.lake, tmp_path / "before")

    kill(frozen_at(point, compact_command(), tmp_path / "marker"))

    (written,) = segment_dirs(lake_keys(shared_storage)).values()  # the first stream's
    if point == "compact.before_switch":
        assert SEGMENT not in written and "_loads.json" in written and len(written) > 1
    else:
        assert SEGMENT in written
    assert lake_records(on_s3.lake) == records, "a load lost or doubled"
    assert rebuilt_rows(on_s3.lake, tmp_path / "killed") == before

    compact(on_s3)

    keys = lake_keys(shared_storage)
    segments = segment_dirs(keys)
    assert all(SEGMENT in names for names in segments.values()), "a partial segment left"
    assert sorted(name.split("/")[0] for name in segments) == sorted(STREAMS)  # one each
    assert not [k for k in keys if "/day=" in k], "compacted loads left on object storage"
    assert not list((on_s3.data / "staging").rglob("*.tmp-*")), "the killed staging left"
    assert lake_records(on_s3.lake) == records
    assert rebuilt_rows(on_s3.lake, tmp_path / "after") == before


def objects_holding(shared: SharedStorage, tmp_path: Path, values: set[str]) -> dict[str, set]:
    """For each value, the objects in the bucket that hold it (case-insensitive): Parquet
    decoded, DuckDB files downloaded and every table read, anything else as its bytes."""
    wanted = {v.lower() for v in values if len(v) >= 4}
    found: dict[str, set[str]] = {}
    for key, data in shared.objects().items():
        text = data.decode("utf-8", "replace")
        if key.endswith(".parquet"):
            rows = pq.read_table(io.BytesIO(data)).to_pylist()
            text = json.dumps(rows, default=str, ensure_ascii=False)
        elif key.endswith(".duckdb"):
            path = tmp_path / "scanned.duckdb"
            path.write_bytes(data)
            with duckdb.connect(str(path), read_only=True) as con:
                tables = con.execute(
                    "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
                    "current_database()"
                ).fetchall()
                for schema, table in tables:
                    rows = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                    text += json.dumps(rows, default=str, ensure_ascii=False)
            path.unlink()
        text = text.lower()
        for value in wanted:
            if value in text:
                found.setdefault(value, set()).add(key)
    return found


def test_forget_on_object_storage_leaves_no_object_holding_the_person(
    on_s3: ObjectPipeline,
    shared_storage: SharedStorage,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tick = {"new_orders": 4, "updated_orders": 4, "updated_customers": 3}
    on_s3.sync()
    on_s3.emu.tick(**tick)
    on_s3.sync()
    compact(on_s3)  # part of the lake in a segment, part in loose loads
    on_s3.emu.tick(**tick)
    on_s3.sync()
    customer, _record, values = person_of(on_s3)
    assert len(values) >= 3, values
    orders = on_s3.warehouse.query("SELECT order_id FROM orders WHERE customer_id = ?", [customer])
    on_s3.refresh_orders([number for (number,) in orders])  # their orders in a loose load too
    on_s3.publish()
    seen = {
        key for keys in objects_holding(shared_storage, tmp_path, values).values() for key in keys
    }
    assert any("/segment=" in k for k in seen) and any("/day=" in k for k in seen), seen
    assert any(k.endswith(".duckdb") for k in seen), seen
    capsys.readouterr()

    assert main(["forget", "--customer", str(customer), "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["customer_ids"] == [customer] and report["lake_files_rewritten"] >= 2
    assert objects_holding(shared_storage, tmp_path, values) == {}
    assert places_holding(data_dir, values) == {}  # the worker's caches
    versions = [k for k in shared_storage.objects("centra/warehouse/") if not k.endswith("/")]
    assert len(versions) == 1 and versions[0].startswith("centra/warehouse/v"), versions

    # Centra still serves the person: a full re-read and a compaction keep them erased.
    on_s3.sync(mode="full_refresh")
    on_s3.publish()
    compact(on_s3)
    assert objects_holding(shared_storage, tmp_path, values) == {}
    assert on_s3.warehouse.query(
        "SELECT email, first_name, last_name FROM customers WHERE customer_id = ?", [customer]
    ) == [(None, None, None)]
