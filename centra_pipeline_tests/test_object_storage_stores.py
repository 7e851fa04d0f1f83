"""Many stores on one bucket (docs/architecture.md, "Many stores" and "Workers anywhere"):
each store's lake, warehouse versions, snapshot and erasure files live under its own
`stores/<name>/` prefix, with a warehouse pointer and lease of its own in PostgreSQL. One
store's failure, erasure or data never reaches another's objects (invariant 10), and
all_stores unions the published snapshots. Real parts: moto's S3 server, PostgreSQL, three
emulators, the CLI and Dagster's execution."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from centra_pipeline.definitions import build_definitions
from centra_pipeline.storage.objects import ALL_STORES_OBJECT, SNAPSHOT_OBJECT, ObjectStore
from centra_pipeline_tests.conftest import SharedStorage
from centra_pipeline_tests.test_dagster import stored_text
from centra_pipeline_tests.test_stores import (  # noqa: F401 - three_stores is a fixture
    STORES,
    _variable,
    cli,
    secrets_of,
    three_stores,
)
from centra_pipeline_tests.test_two_workers import pointer
from centra_pipeline_tests.truth import table_differences, truth_tables

pytestmark = pytest.mark.slow


def store_objects(shared: SharedStorage, name: str) -> dict[str, bytes]:
    return {
        k: v
        for k, v in shared.objects(f"centra/stores/{name}/").items()
        if not k.endswith("/")  # pyarrow's directory markers
    }


def snapshot_of(shared: SharedStorage, name: str, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    target = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.duckdb"
    ObjectStore.for_url(f"{shared.url}/stores/{name}").download(SNAPSHOT_OBJECT, target)
    return duckdb.connect(str(target), read_only=True)


def differences(shared: SharedStorage, name: str, emu, tmp_path: Path) -> dict:
    con = snapshot_of(shared, name, tmp_path)
    try:
        return table_differences(con, truth_tables(emu, emu.config.timezone))
    finally:
        con.close()


def test_stores_on_one_bucket_stay_apart(
    three_stores,  # noqa: F811 - the fixture, imported above
    shared_storage: SharedStorage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emus = three_stores
    shared = shared_storage
    # Store beta's Order API key is wrong: only beta's order streams fail.
    monkeypatch.setenv(_variable("beta", "ORDER_API_KEY"), "order-key-wrong-0000")
    done = cli("sync")  # a process of its own: the definitions read the stores file
    assert done.returncode == 1, done.stdout + done.stderr
    assert "== store alpha ==" in done.stdout and "== store gamma ==" in done.stdout
    for name in ("alpha", "gamma"):
        assert differences(shared, name, emus[name], tmp_path) == {}
        assert pointer(shared, name) >= 1
    keys = [k for k in shared.objects() if not k.endswith("/")]
    assert keys and all(k.startswith(tuple(f"centra/stores/{n}/" for n in STORES)) for k in keys)
    # beta's Shop API reads landed; its orders did not, and it published no snapshot.
    beta = [k for k in keys if k.startswith("centra/stores/beta/")]
    assert any("/lake/catalogue/" in k for k in beta)
    assert not any("/lake/orders/" in k for k in beta)
    assert f"centra/stores/beta/{SNAPSHOT_OBJECT}" not in beta

    # The key fixed, beta alone syncs; the others' objects do not change.
    others = {n: store_objects(shared, n) for n in ("alpha", "gamma")}
    monkeypatch.setenv(_variable("beta", "ORDER_API_KEY"), emus["beta"].order_api_key)
    done = cli("sync", "--store", "beta")
    assert done.returncode == 0, done.stdout + done.stderr
    assert differences(shared, "beta", emus["beta"], tmp_path) == {}
    assert pointer(shared, "beta") >= 1  # a pointer and lease of its own
    assert {n: store_objects(shared, n) for n in ("alpha", "gamma")} == others

    # forget acts on the store named only: gamma's objects change, the others' stay
    # byte for byte, and only gamma has erasure files.
    others = {n: store_objects(shared, n) for n in ("alpha", "beta")}
    customer = int(next(iter(emus["gamma"].store.iter_customers()))["customerId"])
    erased = cli("forget", "--store", "gamma", "--customer", str(customer), "--json")
    assert erased.returncode == 0, erased.stdout + erased.stderr
    assert json.loads(erased.stdout)["customer_ids"] == [customer]
    assert {n: store_objects(shared, n) for n in ("alpha", "beta")} == others
    assert any("erasure" in k for k in store_objects(shared, "gamma"))
    assert not any("erasure" in k for n in ("alpha", "beta") for k in store_objects(shared, n))

    # all_stores unions the published snapshots, into the deployment's prefix.
    with dg.DagsterInstance.get() as instance:
        job = build_definitions().resolve_job_def("centra_all_stores")
        assert job.execute_in_process(instance=instance).success
    union_path = tmp_path / "union.duckdb"
    ObjectStore.for_url(shared.url).download(ALL_STORES_OBJECT, union_path)
    union = duckdb.connect(str(union_path), read_only=True)
    try:
        for name in STORES:
            con = snapshot_of(shared, name, tmp_path)
            try:
                for table in ("orders", "order_lines", "customers", "returns"):
                    (own,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
                    (in_union,) = union.execute(
                        f"SELECT count(*) FROM {table} WHERE store = ?", [name]
                    ).fetchone()
                    assert in_union == own, (table, name)
            finally:
                con.close()
    finally:
        union.close()

    # No store's secret anywhere in the bucket (Parquet and DuckDB files decoded).
    secrets = [v for variables in secrets_of(emus).values() for v in variables.values()]
    for n, (key, body) in enumerate(shared.objects().items()):
        if key.endswith("/"):
            continue
        local = tmp_path / f"object-{n}{Path(key).suffix}"
        local.write_bytes(body)
        text = stored_text(local)
        for secret in secrets:
            assert secret.encode() not in text, (key, secret[:6])
