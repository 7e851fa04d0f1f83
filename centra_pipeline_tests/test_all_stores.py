"""all_stores.duckdb (storage/all_stores.py): the union of every store's snapshot, with a
`store` column, swapped in atomically and readable by DuckDB 1.5."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from centra_pipeline.storage import all_stores
from centra_pipeline.storage.all_stores import publish_all_stores
from centra_pipeline.streams import TABLES

# Hand-made snapshots: a few real tables, with columns that differ between stores, and the
# pipeline's own schema, which all_stores leaves out.
SNAPSHOTS = {
    "alpha": [
        "CREATE TABLE orders (order_id BIGINT, order_status VARCHAR, grand_total_value DOUBLE)",
        "INSERT INTO orders VALUES (2, 'completed', 20.5), (1, 'pending', 10.0)",
        "CREATE TABLE customers (customer_id BIGINT, email VARCHAR)",
        "INSERT INTO customers VALUES (7, 'a@example.com')",
        "CREATE TABLE products (stock_item_id BIGINT, sku VARCHAR, store VARCHAR)",
        "INSERT INTO products VALUES (100, 'SKU-1', 'Retail')",
        "CREATE SCHEMA pipeline",
        "CREATE TABLE pipeline.sync_state (stream VARCHAR, cursor VARCHAR)",
        "INSERT INTO pipeline.sync_state VALUES ('orders', 'x')",
        "CREATE TABLE not_a_stream_table (x INTEGER)",
    ],
    "beta-2": [  # one more column in orders, more rows
        "CREATE TABLE orders (order_id BIGINT, order_status VARCHAR, grand_total_value DOUBLE,"
        " voucher_code VARCHAR)",
        "INSERT INTO orders VALUES (1, 'archived', 5.0, 'SUMMER'), (3, 'pending', 7.0, NULL),"
        " (4, 'cancelled', 0.0, 'X')",
        "CREATE TABLE customers (customer_id BIGINT, email VARCHAR, newsletter BOOLEAN)",
        "INSERT INTO customers VALUES (7, 'b@example.com', true), (8, NULL, false)",
    ],
    "c_3": [  # no customers table, orders lacks a column
        "CREATE TABLE orders (order_id BIGINT, grand_total_value DOUBLE)",
        "INSERT INTO orders VALUES (9, 99.0)",
        "CREATE TABLE products (stock_item_id BIGINT, sku VARCHAR, store VARCHAR)",
        "INSERT INTO products VALUES (100, 'SKU-1', 'Wholesale'), (101, 'SKU-2', NULL)",
    ],
}


def make_snapshot(path: Path, statements: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        for statement in statements:
            con.execute(statement)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


def make_snapshots(root: Path, specs: dict[str, list[str]] = SNAPSHOTS) -> dict[str, Path]:
    return {
        name: make_snapshot(root / "stores" / name / "snapshot.duckdb", statements)
        for name, statements in specs.items()
    }


def rows_of(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def input_rows(snapshots: dict[str, Path], table: str, columns: list[str]) -> set[tuple]:
    """The rows each snapshot holds of `table`, as (store, *columns), None where absent."""
    expected = set()
    for store, path in snapshots.items():
        con = duckdb.connect(str(path), read_only=True)
        try:
            have = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            select = ", ".join(c if c in have else "NULL" for c in columns)
            expected |= {
                (store, *r) for r in con.execute(f"SELECT {select} FROM {table}").fetchall()
            }
        except duckdb.CatalogException:
            continue
        finally:
            con.close()
    return expected


def temp_leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.glob(f".{target.name}.tmp-*"))


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_every_table_is_the_union_of_the_stores(tmp_path: Path) -> None:
    snapshots = make_snapshots(tmp_path)
    target = tmp_path / "all_stores.duckdb"
    info = publish_all_stores(snapshots, target)

    assert info["path"] == str(target) and info["bytes"] == target.stat().st_size > 0
    assert info["stores"] == 3 and info["seconds"] >= 0
    orders_columns = ["order_id", "order_status", "grand_total_value", "voucher_code"]
    described = rows_of(target, "DESCRIBE orders")
    assert [r[0] for r in described] == ["store", *orders_columns]
    assert described[0][1] == "VARCHAR"
    assert set(rows_of(target, "SELECT * FROM orders")) == input_rows(
        snapshots, "orders", orders_columns
    )
    customers_columns = ["customer_id", "email", "newsletter"]
    assert set(rows_of(target, "SELECT * FROM customers")) == input_rows(
        snapshots, "customers", customers_columns
    )
    # products' own `store` column (Centra's) is kept as centra_store
    assert [r[0] for r in rows_of(target, "DESCRIBE products")] == [
        "store",
        "stock_item_id",
        "sku",
        "centra_store",
    ]
    assert set(rows_of(target, "SELECT * FROM products")) == {
        ("alpha", 100, "SKU-1", "Retail"),
        ("c_3", 100, "SKU-1", "Wholesale"),
        ("c_3", 101, "SKU-2", None),
    }
    assert info["rows"]["orders"] == 6 and info["rows"]["customers"] == 3
    assert info["rows"]["products"] == 3 and set(info["rows"]) == set(TABLES)
    # a table no store has yet is there, empty, with the schema a snapshot would give it
    stock = rows_of(target, "DESCRIBE stock")
    assert stock[0][:2] == ("store", "VARCHAR")
    assert [r[0] for r in stock[1:]][: len(TABLES["stock"].columns)] == TABLES["stock"].column_names
    assert rows_of(target, "SELECT count(*) FROM stock") == [(0,)]
    # only analyst tables from TABLES, in main; no pipeline schema, no stray tables
    tables = rows_of(target, "SELECT schema_name, table_name FROM duckdb_tables()")
    assert sorted(tables) == sorted(("main", name) for name in TABLES)
    assert temp_leftovers(target) == []


def test_a_store_missing_a_table_or_snapshot_is_reported(tmp_path: Path) -> None:
    snapshots = make_snapshots(tmp_path)
    snapshots["delta"] = tmp_path / "stores" / "delta" / "snapshot.duckdb"  # not published yet
    info = publish_all_stores(snapshots, tmp_path / "all_stores.duckdb")

    missing = info["missing"]
    assert "customers" in missing["c_3"] and "orders" not in missing["c_3"]
    assert "products" in missing["beta-2"] and "customers" not in missing["beta-2"]
    assert missing["delta"] == list(TABLES)
    assert {"orders", "customers", "products"}.isdisjoint(missing["alpha"])
    assert info["stores"] == 3
    stores = rows_of(tmp_path / "all_stores.duckdb", "SELECT DISTINCT store FROM customers")
    assert sorted(stores) == [("alpha",), ("beta-2",)]


def test_same_inputs_give_the_same_tables(tmp_path: Path) -> None:
    snapshots = make_snapshots(tmp_path)
    first = publish_all_stores(snapshots, tmp_path / "one.duckdb")
    second = publish_all_stores(dict(reversed(snapshots.items())), tmp_path / "two.duckdb")
    assert first["rows"] == second["rows"]
    for table in ("orders", "customers", "products"):
        # Row order is not kept (stores are inserted one at a time, without a sort).
        query = f"SELECT * FROM {table} ORDER BY ALL"
        rows = rows_of(tmp_path / "one.duckdb", query)
        if table != "orders":  # orders' columns follow the first store that has the table
            assert rows == rows_of(tmp_path / "two.duckdb", query)


def test_an_open_analyst_keeps_the_old_file_and_a_reconnect_sees_the_new(
    tmp_path: Path,
) -> None:
    snapshots = make_snapshots(tmp_path)
    target = tmp_path / "all_stores.duckdb"
    publish_all_stores(snapshots, target)
    analyst = duckdb.connect(str(target), read_only=True)
    try:
        before = analyst.execute("SELECT count(*) FROM orders").fetchall()
        assert before == [(6,)]
        make_snapshot(
            snapshots["alpha"],
            [
                *SNAPSHOTS["alpha"][:2],
                "INSERT INTO orders VALUES (5, 'pending', 1.0), (6, 'pending', 2.0)",
            ],
        )
        publish_all_stores(snapshots, target)  # does not block on the open connection
        assert analyst.execute("SELECT count(*) FROM orders").fetchall() == before
        assert analyst.execute("SELECT count(*) FROM customers").fetchall() == [(3,)]
    finally:
        analyst.close()
    assert rows_of(target, "SELECT count(*) FROM orders") == [(8,)]
    assert rows_of(target, "SELECT count(*) FROM customers") == [(2,)]


def test_a_publish_killed_before_the_swap_leaves_the_old_file(tmp_path: Path) -> None:
    snapshots = make_snapshots(tmp_path)
    target = tmp_path / "all_stores.duckdb"
    publish_all_stores(snapshots, target)
    old = rows_of(target, "SELECT * FROM orders ORDER BY ALL")
    make_snapshot(
        snapshots["c_3"],
        [
            "CREATE TABLE orders (order_id BIGINT)",
            "INSERT INTO orders VALUES (11), (12)",
        ],
    )
    marker = tmp_path / "reached"
    # The temp file is written and about to be fsynced and swapped in when we kill it.
    code = (
        "import os, sys, time, pathlib, json\n"
        "from centra_pipeline.storage.all_stores import publish_all_stores\n"
        "def stop(fd):\n"
        "    pathlib.Path(sys.argv[1]).write_text('x')\n"
        "    time.sleep(3600)\n"
        "os.fsync = stop\n"
        "snapshots = {k: pathlib.Path(v) for k, v in json.loads(sys.argv[2]).items()}\n"
        "publish_all_stores(snapshots, pathlib.Path(sys.argv[3]))\n"
    )
    import json

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            str(marker),
            json.dumps({k: str(v) for k, v in snapshots.items()}),
            str(target),
        ]
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the publish ended before the kill point"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert temp_leftovers(target) == [f".{target.name}.tmp-{child.pid}"]
    assert rows_of(target, "SELECT * FROM orders ORDER BY ALL") == old

    # The next publish removes that abandoned copy (and those of other dead publishers,
    # with their WAL and spill directory) but not a live publisher's, and swaps in the new.
    gone = dead_pid()
    (tmp_path / f".{target.name}.tmp-{gone}").write_bytes(b"half a file")
    (tmp_path / f".{target.name}.tmp-{gone}.wal").write_bytes(b"wal")
    (tmp_path / f".{target.name}.tmp-{gone}.spill").mkdir()
    (tmp_path / f".{target.name}.tmp-{gone}.spill" / "duckdb_temp_block").write_bytes(b"x")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".{target.name}.tmp-{live.pid}").write_bytes(b"still writing")
        publish_all_stores(snapshots, target)
        assert temp_leftovers(target) == [f".{target.name}.tmp-{live.pid}"]
    finally:
        live.kill()
        live.wait()
    assert rows_of(target, "SELECT count(*) FROM orders WHERE store = 'c_3'") == [(2,)]


def test_an_error_never_replaces_the_target(tmp_path: Path, monkeypatch) -> None:
    snapshots = make_snapshots(tmp_path)
    target = tmp_path / "all_stores.duckdb"
    publish_all_stores(snapshots, target)
    published = target.read_bytes()

    snapshots["beta-2"].write_bytes(b"this is not a DuckDB file" * 100)
    with pytest.raises(RuntimeError, match="store beta-2: cannot read its snapshot"):
        publish_all_stores(snapshots, target)
    assert target.read_bytes() == published and temp_leftovers(target) == []

    make_snapshot(snapshots["beta-2"], SNAPSHOTS["beta-2"])
    build = all_stores._build_table
    calls = []

    def failing(con, table, have):
        calls.append(table.name)
        if len(calls) == 3:
            raise duckdb.OutOfMemoryException("simulated: out of memory")
        build(con, table, have)

    monkeypatch.setattr(all_stores, "_build_table", failing)
    with pytest.raises(duckdb.OutOfMemoryException):
        publish_all_stores(snapshots, target)
    assert target.read_bytes() == published and temp_leftovers(target) == []


@pytest.mark.parametrize(
    ("snapshots", "message"),
    [
        ({}, "at least one store"),
        ({"Alpha": "x.duckdb"}, "store names must match"),
        ({"-a": "x.duckdb"}, "store names must match"),
        ({"a b": "x.duckdb"}, "store names must match"),
        ({"a": "same.duckdb", "b": "same.duckdb"}, "name the same snapshot"),
        ({"a": "all_stores.duckdb"}, "is the all-stores target itself"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path, snapshots: dict, message: str
) -> None:
    target = tmp_path / "out" / "all_stores.duckdb"
    snapshots = {k: tmp_path / "out" / v for k, v in snapshots.items()}
    with pytest.raises(ValueError, match=message):
        publish_all_stores(snapshots, target)
    assert not (tmp_path / "out").exists()


def test_a_directory_target_is_refused(tmp_path: Path) -> None:
    snapshots = make_snapshots(tmp_path)
    (tmp_path / "all_stores.duckdb").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        publish_all_stores(snapshots, tmp_path / "all_stores.duckdb")


def test_a_target_inside_a_store_directory_is_fine(tmp_path: Path) -> None:
    snapshots = make_snapshots(tmp_path)
    target = snapshots["alpha"].parent / "all_stores.duckdb"
    assert publish_all_stores(snapshots, target)["rows"]["orders"] == 6


@pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv to fetch DuckDB 1.5")
def test_all_stores_opens_in_duckdb_1_5(tmp_path: Path) -> None:
    snapshots = make_snapshots(tmp_path)
    target = tmp_path / "all_stores.duckdb"
    publish_all_stores(snapshots, target)
    code = (
        "import duckdb, sys; assert duckdb.__version__.startswith('1.5'), duckdb.__version__;"
        "con = duckdb.connect(sys.argv[1], read_only=True);"
        "print(con.execute('SELECT count(*), count(DISTINCT store), sum(grand_total_value) "
        "FROM orders').fetchall()[0])"
    )
    done = subprocess.run(
        [
            "uv",
            "run",
            "--no-project",
            "--quiet",
            "--with",
            "duckdb~=1.5.0",
            "--with",
            "pytz",
            "python",
            "-c",
            code,
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(6, 3, 141.5)"


def test_many_stores_publish_within_the_memory_limit(tmp_path: Path) -> None:
    """A union of every store in one statement held them all at once: at 100 stores of a
    few thousand orders it ran out of its 192 MB. Stores are inserted one at a time."""
    one = make_snapshot(
        tmp_path / "one.duckdb",
        [
            "CREATE TABLE orders AS SELECT range AS order_id, repeat('x', 400) || range "
            "AS order_status, range * 1.5 AS grand_total_value FROM range(20000)",
        ],
    )
    snapshots = {}
    for i in range(40):
        path = tmp_path / "stores" / f"s{i:02d}.duckdb"
        path.parent.mkdir(exist_ok=True)
        shutil.copyfile(one, path)
        snapshots[f"s{i:02d}"] = path
    info = publish_all_stores(snapshots, tmp_path / "all.duckdb", memory_limit="64MB")
    assert info["rows"]["orders"] == 40 * 20000
    assert rows_of(tmp_path / "all.duckdb", "SELECT count(DISTINCT store) FROM orders") == [(40,)]
