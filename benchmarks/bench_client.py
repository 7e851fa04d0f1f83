"""Client benchmark: page every order of an emulated store with the Order API client alone.

    uv run python benchmarks/bench_client.py                       # 100k and 1M orders
    uv run python benchmarks/bench_client.py --orders 100000 300000

For each size the emulator runs in its own process and a fresh child process pages
`GET /orders` (limit 1000) with `OrderApi.iter_orders`, counting records and discarding them.
Reported: orders/s and the child's peak RSS (from wait4). Records stream page by page, so peak
memory must not grow with the number of orders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import emulator, machine, measured_rss, write_result

FETCH = [sys.executable, str(Path(__file__).with_name("fetch_streams.py")), "--stream", "orders"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    runs = []
    for orders in args.orders:
        with emulator(orders, max(1, orders // 5), 500, orders // 10) as emu:
            result = measured_rss(FETCH, emu.env)
        data = json.loads(result["stdout"])
        records = data["orders"]["records"]
        runs.append(
            {
                "orders_in_store": orders,
                "orders_paged": records,
                "seconds": round(result["seconds"], 2),
                "orders_per_second": round(records / data["orders"]["seconds"]),
                "peak_rss_mb": round(result["peak_rss_mb"]),
                "requests": data["requests"],
            }
        )
        print(runs[-1], flush=True)
    lines = [
        "# Client benchmark: paging orders with the Order API client",
        "",
        f"Machine: {machine()}. Emulator in its own process; `limit=1000`.",
        "",
        "| orders | seconds | orders/s | peak RSS |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['orders_paged']:,} | {r['seconds']} | {r['orders_per_second']:,} | "
        f"{r['peak_rss_mb']} MB |"
        for r in runs
    ]
    lines += ["", "Reproduce: `uv run python benchmarks/bench_client.py`."]
    path = write_result("client", "\n".join(lines), {"runs": runs})
    print("\n".join(lines))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
