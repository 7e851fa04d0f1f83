"""Emulator benchmark: store build time and memory, render throughput, HTTP paging throughput.

    uv run python benchmarks/bench_emulator.py [--orders 100000] [--big 1000000] [--output FILE]

Store builds run in child processes so each RSS figure starts from a clean interpreter.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NOW = "2026-01-15 12:00:00"


def _measure_build(orders: int) -> dict[str, Any]:
    """Runs in a child process: build a store, report seconds and RSS."""
    import psutil

    from centra_pipeline.emulator.config import EmulatorConfig
    from centra_pipeline.emulator.store import Store

    process = psutil.Process()
    baseline = process.memory_info().rss
    started = time.perf_counter()
    store = Store(EmulatorConfig(orders=orders, customers=max(100, orders // 10), now=NOW))
    build = time.perf_counter() - started
    started = time.perf_counter()
    store.order_numbers()  # first query: sort + visibility mask
    first_query = time.perf_counter() - started
    rss = process.memory_info().rss
    return {
        "orders": orders,
        "build_seconds": round(build, 3),
        "first_query_seconds": round(first_query, 3),
        "rss_mb": round(rss / 1e6, 1),
        "rss_store_mb": round((rss - baseline) / 1e6, 1),
    }


def build_in_child(orders: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure-build", str(orders)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def render_throughput(orders: int, page: int = 1000) -> dict[str, Any]:
    """Render + JSON-encode every visible order in pages, in process, one core."""
    from centra_pipeline.emulator.config import EmulatorConfig
    from centra_pipeline.emulator.jsonenc import dumps
    from centra_pipeline.emulator.store import OrderQuery, Store

    store = Store(EmulatorConfig(orders=orders, customers=max(100, orders // 10), now=NOW))
    indices = store.query_orders(OrderQuery())
    started = time.perf_counter()
    total_bytes = 0
    for start in range(0, indices.size, page):
        total_bytes += len(
            dumps({"status": "ok", "orders": store.render_orders(indices[start : start + page])})
        )
    seconds = time.perf_counter() - started
    return {
        "orders": int(indices.size),
        "seconds": round(seconds, 2),
        "orders_per_second": round(indices.size / seconds),
        "mb_per_second": round(total_bytes / seconds / 1e6, 1),
        "bytes_per_order": round(total_bytes / indices.size),
    }


def http_paging(orders: int, page: int = 1000) -> dict[str, Any]:
    """Page through GET /orders over loopback HTTP with keep-alive (client does not parse)."""
    import requests

    from centra_pipeline.emulator import Emulator, EmulatorConfig

    cfg = EmulatorConfig(orders=orders, customers=max(100, orders // 10), now=NOW)
    with Emulator(cfg) as emu, requests.Session() as session:
        session.trust_env = False
        headers = {"API-Authorization": emu.order_api_key}
        fetched = offset = 0
        started = time.perf_counter()
        while True:
            response = session.get(
                f"{emu.order_api_url}/orders",
                params={"limit": page, "offset": offset},
                headers=headers,
                timeout=60,
            )
            count = response.content.count(b'"orderId"')
            fetched += count
            offset += page
            if count < page:
                break
        seconds = time.perf_counter() - started
    return {
        "orders": fetched,
        "page": page,
        "seconds": round(seconds, 2),
        "orders_per_second": round(fetched / seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--measure-build", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_build is not None:
        print(json.dumps(_measure_build(args.measure_build)))
        return 0

    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "build": [build_in_child(n) for n in (args.orders, args.big)],
        "render": render_throughput(args.orders),
        "http": http_paging(args.orders),
    }
    for build in results["build"]:
        print(
            f"build {build['orders']:>9,} orders: {build['build_seconds']:.2f} s "
            f"(+{build['first_query_seconds']:.2f} s first query), RSS {build['rss_mb']:.0f} MB "
            f"({build['rss_store_mb']:.0f} MB for the store)"
        )
    render = results["render"]
    print(
        f"render+encode {render['orders']:,} orders: {render['orders_per_second']:,}/s "
        f"({render['mb_per_second']} MB/s, {render['bytes_per_order']} B/order)"
    )
    http = results["http"]
    print(
        f"HTTP paging {http['orders']:,} orders (limit {http['page']}): "
        f"{http['orders_per_second']:,}/s"
    )
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
