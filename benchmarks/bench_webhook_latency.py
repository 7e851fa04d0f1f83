"""Webhook-to-warehouse latency with the real Dagster daemon (`centra-pipeline dev`).

    uv run python benchmarks/bench_webhook_latency.py [--changes 5] [--rounds 5]

Starts the live setup (emulator → receiver → inbox → daemon sensor → refresh run) in a temp
data directory, then repeatedly changes old orders in the emulator and measures the time until
the analyst snapshot shows Centra's new state of every changed order.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import duckdb
from harness import ROOT, machine, write_result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(
    url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None
) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def statuses(snapshot: Path, numbers: list[int]) -> dict[int, str]:
    try:
        con = duckdb.connect(str(snapshot), read_only=True)
    except duckdb.Error:
        return {}
    try:
        return dict(
            con.execute(
                "SELECT order_id, order_status FROM orders WHERE order_id IN "
                f"({','.join(map(str, numbers))})"
            ).fetchall()
        )
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=5, help="orders changed per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "dagster").mkdir()
    (tmp / "dagster" / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n  config:\n    dequeue_interval_seconds: 1\n"
    )
    ports = {name: free_port() for name in ("ui", "webhook", "emulator")}
    env = {**os.environ, "CENTRA_DATA_DIR": str(tmp / "data"), "DAGSTER_HOME": str(tmp / "dagster")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "centra_pipeline.cli",
            "dev",
            "--orders",
            str(args.orders),
            "--tick-every",
            "0",
            "--ui-port",
            str(ports["ui"]),
            "--webhook-port",
            str(ports["webhook"]),
            "--emulator-port",
            str(ports["emulator"]),
            # No scheduled sync during the measurement: it would queue the refreshes behind it.
            "--sync-cron",
            "0 0 1 1 *",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Dagster UI:"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    latencies = []
    try:
        if not ready.wait(300):
            raise RuntimeError("dev did not start:\n" + "".join(lines[-40:]))
        text = "".join(lines)
        key = re.search(r"CENTRA_ORDER_API_KEY=(\S+)", text).group(1)
        order_api = re.search(r"CENTRA_ORDER_API_URL=(\S+)", text).group(1)
        base = f"http://127.0.0.1:{ports['emulator']}"
        snapshot = tmp / "data" / "centra.duckdb"
        for round_no in range(args.rounds):
            changed = http_json(f"{base}/_emulator/tick", "POST", {"updated_orders": args.changes})[
                "updated_order_ids"
            ]
            started = time.monotonic()
            expected = {}
            for number in changed:
                body = http_json(
                    f"{order_api}/orders?order={number}", headers={"API-Authorization": key}
                )
                if body["orders"]:
                    expected[number] = body["orders"][0]["orderStatus"]
            while time.monotonic() - started < 120:
                seen = statuses(snapshot, list(expected))
                if all(seen.get(n) == s for n, s in expected.items()):
                    break
                time.sleep(0.25)
            else:
                raise RuntimeError(f"round {round_no}: not refreshed after 120 s")
            latencies.append(round(time.monotonic() - started, 1))
            print(
                f"round {round_no + 1}: {len(expected)} orders refreshed in {latencies[-1]} s",
                flush=True,
            )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    result = {
        "orders_in_store": args.orders,
        "changes_per_round": args.changes,
        "latencies_seconds": latencies,
        "p50": statistics.median(latencies),
        "max": max(latencies),
    }
    md = "\n".join(
        [
            "# Webhook-to-warehouse latency (real Dagster daemon)",
            "",
            f"Machine: {machine()}. `centra-pipeline dev` with {args.orders:,} orders; each round "
            f"changes {args.changes} old orders in the emulator and waits until centra.duckdb "
            "shows their new state.",
            "",
            f"p50 {result['p50']} s, max {result['max']} s over {len(latencies)} rounds: "
            f"{latencies}.",
            "",
            "Reproduce: `uv run python benchmarks/bench_webhook_latency.py`.",
        ]
    )
    print(md)
    print(f"written to {write_result('webhook_latency', md, result)}")


if __name__ == "__main__":
    main()
