"""A million-order store is cheap to build; the `centra-pipeline emulator` command works."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from centra_pipeline.cli.main import main
from centra_pipeline.emulator.store import OrderQuery, Store
from centra_pipeline.emulator.ticks import TICK_FIELDS

from .conftest import make_config


def test_a_million_order_store_builds_fast_in_little_memory() -> None:
    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    store = Store(make_config(orders=1_000_000, customers=100_000, products=200))
    build_seconds = time.perf_counter() - started
    rss_mb = (process.memory_info().rss - rss_before) / 1e6
    print(f"\n1M orders: built in {build_seconds:.2f} s, +{rss_mb:.0f} MB RSS")
    # Measured ~1 s and ~110 MB; the bounds only catch an order-of-magnitude regression.
    assert build_seconds < 20
    assert rss_mb < 1000
    counts = store.counts()
    assert counts["orders"] == 1_000_000 and counts["returns"] == 100_000
    numbers = store.order_numbers()
    assert (
        store.render_order(numbers[0]) is not None and store.render_order(numbers[-1]) is not None
    )
    recent = store.query_orders(OrderQuery(newer_than=store.clock.to_local(store.now) - 86400))
    assert 0 < recent.size < 10_000
    started = time.perf_counter()
    counts = dict.fromkeys(TICK_FIELDS, 50) | {"advance_seconds": 60}
    result, _ = store.tick(counts)
    assert time.perf_counter() - started < 5
    assert len(result["updated_order_ids"]) == 50


def test_cli_prints_exports_serves_ticks_and_stops_on_ctrl_c() -> None:
    command = [
        sys.executable, "-m", "centra_pipeline.cli", "emulator", "--port", "0",
        "--now", "2026-01-15 12:00:00", "--order-api-key", "cli-key", "--tick-every", "0.2",
        "--webhook-url", "http://127.0.0.1:9/hook", "--webhook-secret", "cli-secret",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"emulator exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.rstrip("\n"))
            if "tick:" in line:
                break
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        assert set(exports) == {
            "CENTRA_ORDER_API_URL", "CENTRA_ORDER_API_KEY", "CENTRA_SHOP_API_URL",
            "CENTRA_SHOP_API_KEY", "CENTRA_TIMEZONE", "CENTRA_WEBHOOK_SECRET",
        }  # fmt: skip
        assert exports["CENTRA_ORDER_API_KEY"] == "cli-key"
        assert exports["CENTRA_TIMEZONE"] == "Europe/Stockholm"
        response = requests.get(
            exports["CENTRA_ORDER_API_URL"] + "/orders",
            headers={"API-Authorization": "cli-key"},
            timeout=10,
        )
        assert response.status_code == 200 and response.json()["status"] == "ok"
        assert any(line.startswith("[2026-01-15 12:00:01]") and "tick:" in line for line in lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--webhook-url", "http://127.0.0.1:9/"], "--webhook-url and --webhook-secret"),
        (["--timezone", "Mars/Olympus"], "--timezone 'Mars/Olympus'"),
        (["--now", "15/01/2026"], "--now"),
        (["--deny-endpoint", "GET /shipments"], "--deny-endpoint 'GET /shipments'"),
        (["--rate-500", "0.7", "--rate-503", "0.7"], "add up to more than 1"),
    ],
)
def test_cli_rejects_bad_options_with_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulator", "--port", "0", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--orders", "-1"], ["--order-statuses", "1,7"], ["--rate-429", "2"], ["--port", "x"]],
)
def test_cli_argument_types_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["emulator", *argv])
    assert exc.value.code == 2
