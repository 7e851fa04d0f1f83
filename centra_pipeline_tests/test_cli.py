"""The console script, as a user runs it: real subprocesses, the emulator on loopback, real
files. These are the commands the README shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from centra_pipeline.storage.warehouse import Warehouse
from centra_pipeline_tests.conftest import point_env_at


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "centra_pipeline.cli", *args],
        env=env or dict(os.environ),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def configured(centra_env, monkeypatch) -> dict[str, str]:
    return dict(os.environ)


def test_sync_state_and_query(configured, data_dir: Path) -> None:
    done = cli("sync", env=configured)
    assert done.returncode == 0, done.stderr
    for stream in ("orders", "returns", "customers", "products", "stock", "catalogue"):
        assert stream in done.stdout
    assert "succeeded" in done.stdout and "analyst snapshot" in done.stdout

    shown = cli("state", "show", "--json", env=configured)
    assert shown.returncode == 0, shown.stderr
    import json

    states = {s["stream"]: s for s in json.loads(shown.stdout)["streams"]}
    assert states["orders"]["cursor"] and states["customers"]["cursor"]
    catalogue = json.loads(shown.stdout)["catalogue"]
    assert catalogue["last_full_read"] and catalogue["full_read_every_hours"] == 24
    text = cli("state", "show", env=configured).stdout
    assert "catalogue: last read in full" in text and "CENTRA_CATALOGUE_FULL_READ_HOURS=24" in text

    reset = cli("state", "reset", "orders", env=configured)
    assert reset.returncode == 0 and "forgotten" in reset.stdout
    assert (
        json.loads(cli("state", "show", "--json", env=configured).stdout)["streams"][0]["cursor"]
        is None
    )
    bad = cli("state", "reset", "invoices", env=configured)
    assert bad.returncode == 2 and "unknown stream" in bad.stderr

    query = cli("query", "SELECT count(*) AS n FROM orders", "--csv", env=configured)
    assert query.returncode == 0, query.stderr
    with Warehouse(data_dir / "warehouse" / "warehouse.duckdb").reader() as con:
        assert query.stdout.splitlines() == [
            "n",
            str(con.execute("SELECT count(*) FROM orders").fetchall()[0][0]),
        ]
    broken = cli("query", "SELECT * FROM no_such_table", env=configured)
    assert broken.returncode == 1 and "no_such_table" in broken.stderr

    # Analysts read the published snapshot, never the pipeline's private warehouse: a change
    # to the warehouse is invisible to `query` until the next publish.
    published = query.stdout.splitlines()[1]
    with Warehouse(data_dir / "warehouse" / "warehouse.duckdb").writer() as con:
        con.execute("DELETE FROM orders")
    again = cli("query", "SELECT count(*) AS n FROM orders", "--csv", env=configured)
    assert again.stdout.splitlines() == ["n", published] and published != "0"


def test_sync_options_backfill_and_full_refresh(configured, data_dir: Path) -> None:
    assert cli("sync", "--stream", "orders", env=configured).returncode == 0
    warehouse = Warehouse(data_dir / "warehouse" / "warehouse.duckdb")
    cursor = warehouse.state("orders").cursor
    done = cli(
        "sync", "--stream", "orders", "--backfill", "2025-06-01", "2025-07-01", env=configured
    )
    assert done.returncode == 0, done.stderr
    assert warehouse.state("orders").cursor == cursor
    window = warehouse.query(
        "SELECT window_read FROM pipeline.load_log ORDER BY merged_at DESC LIMIT 1"
    )[0][0]
    assert "2025-06-01 00:00:00" in window
    full = cli("sync", "--stream", "customers", "--full-refresh", env=configured)
    assert full.returncode == 0, full.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sync", "--stream", "invoices"), "unknown stream invoices"),
        (
            ("sync", "--stream", "orders", "--backfill", "2025-07-01", "2025-06-01"),
            "backfill window is empty",
        ),
        (("sync", "--stream", "orders", "--backfill", "last week", "now"), "is not a date"),
        (
            ("sync", "--stream", "catalogue", "--backfill", "2025-06-01", "2025-07-01"),
            "no date filter",
        ),
    ],
)
def test_bad_options_get_a_specific_error_and_change_nothing(
    configured, data_dir, args, message
) -> None:
    done = cli(*args, env=configured)
    assert done.returncode == 2, done.stdout
    assert message in done.stderr
    assert not (data_dir / "warehouse").exists() and not (data_dir / "lake").exists()


def test_sync_without_configuration_points_to_the_demo(data_dir: Path) -> None:
    done = cli("sync", env=dict(os.environ))
    assert done.returncode == 2
    assert "CENTRA_ORDER_API_URL" in done.stderr and "centra-pipeline demo" in done.stderr


def test_env_file_in_the_project_root_is_read(centra_env, data_dir: Path, tmp_path: Path) -> None:
    """A .env in the working directory configures the CLI like real variables do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRA_")}
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("CENTRA_")) + "\n"
    )
    done = cli("check", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Everything the pipeline needs is reachable" in done.stdout


def test_two_syncs_at_once_both_succeed_one_writer_at_a_time(configured, data_dir) -> None:
    results: list[subprocess.CompletedProcess] = []

    def one() -> None:
        results.append(cli("sync", "--stream", "orders", "--stream", "customers", env=configured))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0, 0], [
        (r.stdout[-3000:], r.stderr[-3000:]) for r in results
    ]
    for r in results:
        assert "lock" not in r.stderr.lower() or "waiting" in r.stderr.lower()
    with Warehouse(data_dir / "warehouse" / "warehouse.duckdb").reader() as con:
        assert (
            con.execute("SELECT count(*) - count(DISTINCT order_id) FROM orders").fetchall()[0][0]
            == 0
        )


def test_demo_runs_end_to_end_and_refuses_someone_elses_data(data_dir: Path) -> None:
    done = cli("demo", "--orders", "1500", env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Rows per table in the analyst snapshot" in out
    assert out.count("-- ") >= 3  # three example queries, each with its result
    assert "centra-pipeline query" in out
    con = duckdb.connect(str(data_dir / "centra.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM orders").fetchall()[0][0] > 1000
    con.close()
    # Running it again starts from a clean slate.
    assert cli("demo", "--orders", "500", env=dict(os.environ)).returncode == 0
    # A data directory with a real store's warehouse is never touched by the demo.
    (data_dir / ".centra-demo").unlink()
    refused = cli("demo", "--orders", "500", env=dict(os.environ))
    assert refused.returncode == 2 and "did not create" in refused.stderr


@pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv to fetch DuckDB 1.5")
def test_snapshot_opens_in_duckdb_1_5(centra_env, data_dir: Path, tmp_path: Path) -> None:
    from centra_pipeline_tests.conftest import Pipeline

    pipeline = Pipeline(centra_env, data_dir)
    pipeline.sync(["orders", "customers"])
    pipeline.publish()
    code = (
        "import duckdb, sys; assert duckdb.__version__.startswith('1.5'), duckdb.__version__;"
        "con = duckdb.connect(sys.argv[1], read_only=True);"
        "print(con.execute('SELECT count(*), sum(grand_total_value), max(order_date) "
        "FROM orders').fetchall()[0][0])"
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
            str(data_dir / "centra.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    assert done.returncode == 0, done.stderr
    with Warehouse(data_dir / "warehouse" / "warehouse.duckdb").reader() as con:
        assert (
            int(done.stdout.strip()) == con.execute("SELECT count(*) FROM orders").fetchall()[0][0]
        )


def test_emulator_command_prints_what_to_export(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "centra_pipeline.cli",
            "emulator",
            "--port",
            "0",
            "--orders",
            "50",
            "--order-api-key",
            "k1",
            "--shop-api-key",
            "k2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Serving") or len(lines) > 40:
                break
        text = "".join(lines)
        assert "export CENTRA_ORDER_API_URL=http://127.0.0.1:" in text
        assert "export CENTRA_ORDER_API_KEY=k1" in text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_point_env_helper_sets_everything(emu, monkeypatch) -> None:
    point_env_at(emu, monkeypatch)
    assert os.environ["CENTRA_ORDER_API_URL"].endswith("/api/order")
