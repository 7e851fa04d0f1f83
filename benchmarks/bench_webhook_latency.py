"""Webhook-to-warehouse latency with the real Dagster daemon (`centra-pipeline dev`).

    uv run python benchmarks/bench_webhook_latency.py [--changes 5] [--rounds 5] [--pause 30]

Starts the live setup (emulator → receiver → inbox → daemon sensor → refresh run) in a temp
data directory, then repeatedly changes old orders in the emulator and measures the time until
the analyst snapshot shows Centra's new state of every changed order. Rounds start `--pause`
seconds after the previous one ended (default: CENTRA_REFRESH_MIN_INTERVAL_SECONDS), so each
measures a change after a quiet period; `bench_refresh_runs.py` measures a continuous stream.

`live_dev` (the live setup, with the project's Dagster instance settings in a throw-away
DAGSTER_HOME) is shared with bench_refresh_runs.py.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from harness import ROOT, dagster_home, machine, write_result

from centra_pipeline.settings import ENV_REFRESH_MIN_INTERVAL, Settings

NEVER = "0 0 1 1 *"  # a sync cron that does not fire during a benchmark


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


@dataclass
class Live:
    """A running `centra-pipeline dev`: where its data and Dagster instance live, and the
    emulator's URLs and Order API key."""

    tmp: Path
    emulator: str
    order_api: str
    key: str
    lines: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def dagster_home(self) -> Path:
        return self.tmp / "dagster"

    @property
    def snapshot(self) -> Path:
        return self.data_dir / "centra.duckdb"

    def tick(self, **counts: int) -> dict:
        return http_json(f"{self.emulator}/_emulator/tick", "POST", counts)


@contextmanager
def live_dev(orders: int, env: dict[str, str] | None = None) -> Iterator[Live]:
    """`centra-pipeline dev` in a temp directory, without emulator ticks or scheduled syncs
    (a sync would queue the refreshes behind it); stopped with SIGINT on the way out."""
    tmp = Path(tempfile.mkdtemp())
    dagster_home(tmp / "dagster")
    ports = {name: free_port() for name in ("ui", "webhook", "emulator")}
    env = {
        **os.environ,
        "CENTRA_DATA_DIR": str(tmp / "data"),
        "DAGSTER_HOME": str(tmp / "dagster"),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "centra_pipeline.cli",
            "dev",
            "--orders",
            str(orders),
            "--tick-every",
            "0",
            "--ui-port",
            str(ports["ui"]),
            "--webhook-port",
            str(ports["webhook"]),
            "--emulator-port",
            str(ports["emulator"]),
            "--sync-cron",
            NEVER,
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
    try:
        if not ready.wait(600):
            raise RuntimeError("dev did not start:\n" + "".join(lines[-40:]))
        text = "".join(lines)
        yield Live(
            tmp=tmp,
            emulator=f"http://127.0.0.1:{ports['emulator']}",
            order_api=re.search(r"CENTRA_ORDER_API_URL=(\S+)", text).group(1),
            key=re.search(r"CENTRA_ORDER_API_KEY=(\S+)", text).group(1),
            lines=lines,
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=5, help="orders changed per round")
    parser.add_argument("--rounds", type=int, default=5)
    interval = Settings.from_env().refresh_min_interval_seconds
    parser.add_argument(
        "--pause",
        type=float,
        default=interval,
        help=f"seconds between rounds (default {ENV_REFRESH_MIN_INTERVAL}, {interval:g})",
    )
    args = parser.parse_args()
    latencies = []
    with live_dev(args.orders) as live:
        for round_no in range(args.rounds):
            if round_no:
                time.sleep(args.pause)
            changed = live.tick(updated_orders=args.changes)["updated_order_ids"]
            started = time.monotonic()
            expected = {}
            for number in changed:
                body = http_json(
                    f"{live.order_api}/orders?order={number}",
                    headers={"API-Authorization": live.key},
                )
                if body["orders"]:
                    expected[number] = body["orders"][0]["orderStatus"]
            while time.monotonic() - started < 120:
                seen = statuses(live.snapshot, list(expected))
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
    result = {
        "orders_in_store": args.orders,
        "changes_per_round": args.changes,
        "pause_seconds": args.pause,
        "latencies_seconds": latencies,
        "p50": statistics.median(latencies),
        "max": max(latencies),
    }
    md = "\n".join(
        [
            "# Webhook-to-warehouse latency (real Dagster daemon)",
            "",
            f"Machine: {machine()}. `centra-pipeline dev` with {args.orders:,} orders and the "
            "project's Dagster instance settings; each round changes "
            f"{args.changes} old orders in the emulator and waits until centra.duckdb shows "
            f"their new state. Rounds start {args.pause:g} s after the previous one ended, so "
            "each measures a change after a quiet period (a refresh run starts at once); a "
            "continuous stream of changes is in refresh_runs.md.",
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
