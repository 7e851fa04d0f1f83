"""Pipeline benchmark: full sync vs. merely paging the same endpoints, then an incremental run.

    uv run python benchmarks/bench_pipeline.py                 # 100k orders (issue #3 sizes)
    uv run python benchmarks/bench_pipeline.py --scale 1000000 # also a full sync at 1M orders

For each store size: the emulator runs in its own process; the bare fetch pages every endpoint
with the client alone (next page prefetched while parsing, the best the client can do), then
`centra-pipeline sync` runs the whole pipeline (fetch, flatten, land Parquet, merge into DuckDB,
publish the snapshot) in a fresh process whose peak RSS comes from wait4(). After a tick that
changes 1% of the store, an incremental `centra-pipeline sync` is timed.

Targets (issue #3): pipeline within 1.5x of the bare fetch; peak RSS under 1 GB and flat from
100k to 1M orders; incremental run under 10% of the full sync.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from harness import emulator, machine, measured_rss, write_result

SYNC = [sys.executable, "-m", "centra_pipeline.cli", "sync"]
FETCH = [sys.executable, str(Path(__file__).with_name("fetch_streams.py")), "--prefetch"]


def one_size(orders: int, customers: int, products: int, returns: int, incremental: bool) -> dict:
    out: dict = {"orders": orders, "customers": customers, "products": products, "returns": returns}
    with (
        emulator(orders, customers, products, returns) as emu,
        tempfile.TemporaryDirectory() as tmp,
    ):
        stats = emu.admin("GET", "/stats")
        out["store"] = {k: stats[k] for k in ("orders", "customers", "returns") if k in stats}
        env = {
            **emu.env,
            "CENTRA_DATA_DIR": str(Path(tmp) / "data"),
            "DAGSTER_HOME": str(Path(tmp) / "dagster"),
        }
        Path(env["DAGSTER_HOME"]).mkdir()
        Path(env["DAGSTER_HOME"], "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

        fetch = measured_rss(FETCH, env)
        fetched = json.loads(fetch["stdout"])
        out["bare_fetch"] = {
            "seconds": round(fetch["seconds"], 2),
            "peak_rss_mb": round(fetch["peak_rss_mb"]),
            "records": {k: v["records"] for k, v in fetched.items() if isinstance(v, dict)},
            "requests": fetched["requests"],
        }
        print(
            f"[{orders:,} orders] bare fetch: {fetch['seconds']:.1f} s, "
            f"{fetch['peak_rss_mb']:.0f} MB",
            flush=True,
        )

        full = measured_rss(SYNC, env)
        out["full_sync"] = {
            "seconds": round(full["seconds"], 2),
            "peak_rss_mb": round(full["peak_rss_mb"]),
            "orders_per_second": round(fetched["orders"]["records"] / full["seconds"]),
            "ratio_to_bare_fetch": round(full["seconds"] / fetch["seconds"], 2),
            "summary": full["stdout"].strip().splitlines()[-12:],
        }
        print(
            f"[{orders:,} orders] full sync: {full['seconds']:.1f} s "
            f"({out['full_sync']['ratio_to_bare_fetch']}x bare fetch), "
            f"{full['peak_rss_mb']:.0f} MB",
            flush=True,
        )

        if incremental:
            tick = {
                "new_orders": orders // 200,
                "updated_orders": orders // 200,
                "new_returns": max(1, returns // 200),
                "completed_returns": max(1, returns // 200),
                "updated_customers": max(1, customers // 100),
                "updated_products": max(1, products // 100),
                "advance_seconds": 3600,
            }
            emu.admin("POST", "/tick", tick)
            inc = measured_rss(SYNC, env)
            out["tick"] = tick
            out["incremental_sync"] = {
                "seconds": round(inc["seconds"], 2),
                "peak_rss_mb": round(inc["peak_rss_mb"]),
                "share_of_full_sync": round(inc["seconds"] / full["seconds"], 3),
                "summary": inc["stdout"].strip().splitlines()[-12:],
            }
            print(
                f"[{orders:,} orders] incremental after a 1% tick: {inc['seconds']:.1f} s "
                f"({100 * inc['seconds'] / full['seconds']:.1f}% of the full sync)",
                flush=True,
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--returns", type=int, default=10_000)
    parser.add_argument("--scale", type=int, help="also run a full sync at this many orders")
    args = parser.parse_args()
    runs = [one_size(args.orders, args.customers, args.products, args.returns, True)]
    if args.scale:
        runs.append(one_size(args.scale, args.customers, args.products, args.scale // 10, False))
    lines = [
        "# Pipeline benchmark",
        "",
        f"Machine: {machine()}.",
        "",
        "| orders | bare fetch | full sync | ratio | orders/s | peak RSS (sync) | "
        "incremental (1% tick) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        inc = run.get("incremental_sync")
        lines.append(
            f"| {run['orders']:,} | {run['bare_fetch']['seconds']} s | "
            f"{run['full_sync']['seconds']} s | {run['full_sync']['ratio_to_bare_fetch']}x | "
            f"{run['full_sync']['orders_per_second']:,} | {run['full_sync']['peak_rss_mb']} MB | "
            + (f"{inc['seconds']} s ({100 * inc['share_of_full_sync']:.1f}%) |" if inc else "- |")
        )
    lines += [
        "",
        "Store: customers, products, returns as given per run in the JSON below; the "
        "bare fetch pages the same six endpoints with the client alone (prefetching).",
        "Reproduce: `uv run python benchmarks/bench_pipeline.py --scale 1000000`.",
    ]
    path = write_result("pipeline", "\n".join(lines), {"runs": runs})
    print("\n".join(lines))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
