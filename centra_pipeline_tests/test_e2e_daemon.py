"""End to end with the real Dagster daemon and webserver in subprocesses (`centra-pipeline dev`):
the emulator changes an old order, its signed webhook reaches the receiver, the daemon's
sensor starts a refresh run, and the refreshed order is in centra.duckdb within 60 s."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(
    url: str, *, method: str = "GET", body: dict | None = None, headers: dict | None = None
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


def snapshot_statuses(path: Path, numbers: list[int]) -> dict[int, str]:
    if not path.exists():
        return {}
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return {}
    try:
        rows = con.execute(
            f"SELECT order_id, order_status FROM orders WHERE order_id IN "
            f"({','.join(map(str, numbers))})"
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def test_webhook_reaches_the_snapshot_through_the_daemon_within_60_seconds(data_dir: Path):
    ports = {name: free_port() for name in ("ui", "webhook", "emulator")}
    command = [
        sys.executable,
        "-m",
        "centra_pipeline.cli",
        "dev",
        "--orders",
        "1500",
        "--tick-every",
        "0",
        "--ui-port",
        str(ports["ui"]),
        "--webhook-port",
        str(ports["webhook"]),
        "--emulator-port",
        str(ports["emulator"]),
    ]
    proc = subprocess.Popen(
        command,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("Dagster UI:"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(240), "dev did not come up:\n" + "".join(output[-60:])
        text = "".join(output)
        key = re.search(r"CENTRA_ORDER_API_KEY=(\S+)", text).group(1)
        order_api = re.search(r"CENTRA_ORDER_API_URL=(\S+)", text).group(1)
        base = f"http://127.0.0.1:{ports['emulator']}"

        changes = http_json(
            f"{base}/_emulator/tick",
            method="POST",
            body={"updated_orders": 4, "advance_seconds": 60},
        )
        changed = changes["updated_order_ids"]
        assert changed
        expected = {}
        for number in changed:
            body = http_json(
                f"{order_api}/orders?order={number}", headers={"API-Authorization": key}
            )
            expected[number] = body["orders"][0]["orderStatus"] if body["orders"] else None
        ticked = time.monotonic()
        snapshot = data_dir / "centra.duckdb"
        seen: dict[int, str] = {}
        while time.monotonic() - ticked < DEADLINE_SECONDS:
            seen = snapshot_statuses(snapshot, changed)
            if all(seen.get(n) == s for n, s in expected.items() if s is not None):
                break
            time.sleep(1)
        latency = time.monotonic() - ticked
        assert all(seen.get(n) == s for n, s in expected.items() if s is not None), (
            f"after {latency:.0f} s the snapshot has {seen}, Centra has {expected}\n"
            + "".join(output[-40:])
        )
        print(f"webhook-to-snapshot latency: {latency:.1f} s")
        # The receiver stored the webhook; the sensor's run shows in Dagster's run history.
        health = http_json(f"http://127.0.0.1:{ports['webhook']}/healthz")
        assert health["inbox"]["by_type"]["order"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
