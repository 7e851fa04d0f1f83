"""Reconciliation benchmark: the daily open pass, the weekly full pass and `verify`, as shares
of the full sync, at the default rate limit and with the limit lifted.

    uv run python benchmarks/bench_reconcile.py            # 100k orders

The emulator runs in its own process. A full `centra-pipeline sync` fills the warehouse; a
tick changes 1% of the store and the hourly incremental sync runs; then, each in a fresh process:
the daily pass (`sync` of the
reconciliation job with mode reconcile_open for every stream, as the schedule runs it
on a day with no full pass due), the
weekly full pass (`sync --reconcile`), a second full pass over the now unchanged store (rows
landed: the target is 0), and `verify` (reads Centra and the snapshot, writes nothing).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from harness import dagster_home, emulator, machine, measured_rss, write_result

CLI = [sys.executable, "-m", "centra_pipeline.cli"]
OPEN_PASS = [
    sys.executable,
    "-c",
    "import sys; from centra_pipeline.cli.runs import run_sync, print_summary; "
    "from centra_pipeline.streams import STREAMS; "
    "s = run_sync(stream_config={n: {'mode': 'reconcile_open'} for n in STREAMS}, "
    "reconcile=True); print_summary(s); sys.exit(0 if s.success else 1)",
]


def run_seconds(stdout: str) -> float:
    match = re.search(r"succeeded in ([0-9.]+) s", stdout)
    if not match:
        raise RuntimeError(f"no run duration in the output:\n{stdout[-2000:]}")
    return float(match.group(1))


def rows_landed(data_dir: Path, since: float) -> int:
    """Rows of the lake loads that started after `since` (epoch seconds), every table."""
    from datetime import UTC, datetime

    from centra_pipeline.storage.lake import Lake
    from centra_pipeline.streams import STREAMS

    lake = Lake(data_dir / "lake")
    start = datetime.fromtimestamp(since, UTC)
    return sum(
        sum(manifest.rows.values())
        for stream in STREAMS
        for manifest in lake.loads(stream)
        if datetime.fromisoformat(manifest.started_at) >= start
    )


def one_store(orders: int, customers: int, products: int, returns: int, rate: str) -> dict:
    out: dict = {"orders": orders, "rate_limit": rate}
    with (
        emulator(orders, customers, products, returns) as emu,
        tempfile.TemporaryDirectory() as tmp,
    ):
        data = Path(tmp) / "data"
        env = {
            **emu.env,
            "CENTRA_MAX_REQUESTS_PER_SECOND": rate,
            "CENTRA_DATA_DIR": str(data),
            "DAGSTER_HOME": str(Path(tmp) / "dagster"),
        }
        dagster_home(Path(env["DAGSTER_HOME"]))

        def step(name: str, command: list[str]) -> dict:
            started = time.time()
            result = measured_rss(command, env)  # raises unless it exits 0
            seconds = result["seconds"]
            entry = {
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(result["peak_rss_mb"]),
                "rows_landed": rows_landed(data, started),
                "summary": result["stdout"].strip().splitlines()[-16:],
            }
            if "succeeded in" in result["stdout"]:
                entry["run_seconds"] = run_seconds(result["stdout"])
            out[name] = entry
            print(f"[{orders:,} orders, {rate} req/s] {name}: {seconds:.1f} s", flush=True)
            return entry

        full = step("full_sync", [*CLI, "sync"])
        emu.admin(
            "POST",
            "/tick",
            {
                "new_orders": orders // 200,
                "updated_orders": orders // 100,
                "new_returns": max(1, returns // 200),
                "completed_returns": max(1, returns // 100),
                "updated_customers": max(1, customers // 100),
                "updated_products": max(1, products // 100),
                "advance_seconds": 3 * 86400,
            },
        )
        step("hourly_incremental", [*CLI, "sync"])  # what the hourly run repairs itself
        step("daily_open_pass", OPEN_PASS)
        step("weekly_full_pass", [*CLI, "sync", "--reconcile"])
        step("full_pass_unchanged_store", [*CLI, "sync", "--reconcile"])
        step("verify", [*CLI, "verify"])
        for name in ("daily_open_pass", "weekly_full_pass", "full_pass_unchanged_store", "verify"):
            out[name]["share_of_full_sync"] = round(out[name]["seconds"] / full["seconds"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--returns", type=int, default=10_000)
    parser.add_argument("--rates", default="10,1000", help="rate limits to run at")
    args = parser.parse_args()
    runs = [
        one_store(args.orders, args.customers, args.products, args.returns, rate)
        for rate in args.rates.split(",")
    ]
    lines = [
        "# Reconciliation benchmark",
        "",
        f"Machine: {machine()}. Store: {args.orders:,} orders, {args.customers:,} customers, "
        f"{args.products:,} products, {args.returns:,} returns; a tick changes 1% of orders "
        "(3 simulated days) after the full sync, an hourly incremental sync follows, then "
        "the passes (so they repair what that read and no webhook saw).",
        "",
        "| rate limit (req/s) | full sync | daily open pass | weekly full pass | full pass, "
        "unchanged store (rows landed) | verify |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:

        def cell(name: str, run: dict = run) -> str:
            entry = run[name]
            share = entry.get("share_of_full_sync")
            text = f"{entry['seconds']} s"
            return text + (f" ({100 * share:.1f}%)" if share is not None else "")

        lines.append(
            f"| {run['rate_limit']} | {cell('full_sync')} | {cell('daily_open_pass')} | "
            f"{cell('weekly_full_pass')} | {cell('full_pass_unchanged_store')} "
            f"({run['full_pass_unchanged_store']['rows_landed']} rows) | {cell('verify')} |"
        )
    lines += [
        "",
        "10 req/s is the default CENTRA_MAX_REQUESTS_PER_SECOND; 1000 lifts the limit "
        "(the emulator then bounds the time).",
        "Reproduce: `uv run python benchmarks/bench_reconcile.py`.",
    ]
    path = write_result("reconcile", "\n".join(lines), {"runs": runs})
    print("\n".join(lines))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
