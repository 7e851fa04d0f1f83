"""Pipeline benchmark: full sync vs. merely paging the same endpoints, then an incremental run.

    uv run python benchmarks/bench_pipeline.py                 # 100k orders (issue #3 sizes)
    uv run python benchmarks/bench_pipeline.py --scale 1000000 # also a full sync at 1M orders

For each store size: the emulator runs in its own process; the bare fetch pages every endpoint
with the client alone (next page prefetched while parsing, the best the client can do), then
`centra-pipeline sync` runs the whole pipeline (fetch, flatten, land Parquet, merge into DuckDB,
publish the snapshot) in a fresh process whose peak RSS comes from wait4(). After a tick that
changes 1% of the store, an incremental `centra-pipeline sync` is timed (the hourly run); after
another such tick, one with CENTRA_CATALOGUE_FULL_READ_HOURS=0 (the one run a day that also
reads the Shop API catalogue in full). Each sync is timed twice: the command's wall time, and
the Dagster run's own duration as the command reports it (without Python and Dagster start-up).

Targets (issue #3): pipeline within 1.5x of the bare fetch; peak RSS under 1 GB and flat from
100k to 1M orders; incremental run under 10% of the full sync.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from harness import dagster_home, emulator, machine, measured_rss, write_result

from centra_pipeline.settings import DEFAULT_MAX_RPS

SYNC = [sys.executable, "-m", "centra_pipeline.cli", "sync"]
FETCH = [sys.executable, str(Path(__file__).with_name("fetch_streams.py")), "--prefetch"]


def run_seconds(stdout: str) -> float:
    """The Dagster run's duration from the summary's last line ("run <id> succeeded in 6.5 s")."""
    match = re.search(r"succeeded in ([0-9.]+) s", stdout)
    if not match:
        raise RuntimeError(f"no run duration in the sync's output:\n{stdout[-2000:]}")
    return float(match.group(1))


def one_tick(emu, orders: int, customers: int, products: int, returns: int) -> dict:
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
    return tick


def run_breakdown(dagster_home: str) -> dict:
    """Where the newest run's time went, from the gaps between its events in Dagster's event
    log: each gap is charged to the event that ends it (streams read concurrently, so a gap
    ending in a merge's event may also hold reading)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        records = instance.all_logs(run.run_id)
    spent: dict[str, float] = {}
    kinds: dict[str, int] = {}
    started = False
    previous = records[0].timestamp
    for record in records:
        event = record.dagster_event
        kind = event.event_type_value if event else "LOG"
        kinds[kind] = kinds.get(kind, 0) + 1
        gap, previous = record.timestamp - previous, record.timestamp
        if not started:
            label = "run creation (planned-materialization and planned-check events)"
            started = kind in ("PIPELINE_START", "RUN_START")
        elif kind == "LOG" and any(w in record.user_message for w in (": reading,", ": done,")):
            label = "reading Centra, flattening, landing Parquet"
        elif kind in ("ASSET_CHECK_EVALUATION", "ASSET_CHECK_EVALUATION_PLANNED"):
            label = "asset checks (queries and their events)"
        elif kind in ("ASSET_MATERIALIZATION", "ASSET_OBSERVATION") and (
            record.step_key != "analyst__centra_duckdb"
        ):
            label = "merging into DuckDB, lake and table materializations"
        elif record.step_key == "analyst__centra_duckdb":
            label = "publishing the analyst snapshot"
        else:
            label = "other run and step events"
        spent[label] = spent.get(label, 0.0) + gap
    seconds = {k: round(v, 2) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}
    return {"events": len(records), "seconds": seconds, "event_kinds": kinds}


def timed_incremental(env: dict, full: dict, extra_env: dict | None = None) -> dict:
    inc = measured_rss(SYNC, {**env, **(extra_env or {})})
    seconds = run_seconds(inc["stdout"])
    return {
        "seconds": round(inc["seconds"], 2),
        "run_seconds": seconds,
        "outside_the_run_seconds": round(inc["seconds"] - seconds, 2),
        "run_breakdown": run_breakdown(env["DAGSTER_HOME"]),
        "peak_rss_mb": round(inc["peak_rss_mb"]),
        "share_of_full_sync": round(inc["seconds"] / full["seconds"], 3),
        "run_share_of_full_run": round(seconds / full["run_seconds"], 3),
        "summary": inc["stdout"].strip().splitlines()[-12:],
    }


def one_size(
    orders: int, customers: int, products: int, returns: int, incremental: bool, rate: str
) -> dict:
    out: dict = {
        "orders": orders,
        "customers": customers,
        "products": products,
        "returns": returns,
        "rate_limit": rate,
    }
    with (
        emulator(orders, customers, products, returns) as emu,
        tempfile.TemporaryDirectory() as tmp,
    ):
        stats = emu.admin("GET", "/stats")
        out["store"] = {k: stats[k] for k in ("orders", "customers", "returns") if k in stats}
        env = {
            **emu.env,
            "CENTRA_MAX_REQUESTS_PER_SECOND": rate,
            "CENTRA_DATA_DIR": str(Path(tmp) / "data"),
            "DAGSTER_HOME": str(Path(tmp) / "dagster"),
        }
        dagster_home(Path(env["DAGSTER_HOME"]))

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
            "run_seconds": run_seconds(full["stdout"]),
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
            out["tick"] = one_tick(emu, orders, customers, products, returns)
            inc = out["incremental_sync"] = timed_incremental(env, out["full_sync"])
            print(
                f"[{orders:,} orders] incremental after a 1% tick: {inc['seconds']:.1f} s "
                f"({100 * inc['share_of_full_sync']:.1f}% of the full sync); the Dagster run "
                f"{inc['run_seconds']:.1f} s ({100 * inc['run_share_of_full_run']:.1f}%)",
                flush=True,
            )
            one_tick(emu, orders, customers, products, returns)
            daily = out["incremental_sync_full_catalogue"] = timed_incremental(
                env, out["full_sync"], {"CENTRA_CATALOGUE_FULL_READ_HOURS": "0"}
            )
            print(
                f"[{orders:,} orders] the same with a full catalogue read: "
                f"{daily['seconds']:.1f} s ({100 * daily['share_of_full_sync']:.1f}%)",
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
    parser.add_argument(
        "--rates",
        default=f"{DEFAULT_MAX_RPS:g},1000",
        help="CENTRA_MAX_REQUESTS_PER_SECOND values to run at (default: the user's default, "
        "then the limit lifted); --scale runs at the last one",
    )
    args = parser.parse_args()
    rates = args.rates.split(",")
    sizes = (args.orders, args.customers, args.products, args.returns)
    runs = [one_size(*sizes, True, rate) for rate in rates]
    if args.scale:
        runs.append(
            one_size(args.scale, args.customers, args.products, args.scale // 10, True, rates[-1])
        )
    lines = [
        "# Pipeline benchmark",
        "",
        f"Machine: {machine()}.",
        "",
        "| orders | rate limit (req/s) | bare fetch | full sync | ratio | orders/s | "
        "peak RSS (sync) | incremental, hourly (1% tick) | "
        "incremental with the daily full catalogue read |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def share(inc: dict | None) -> str:
        if not inc:
            return "-"
        return (
            f"{inc['seconds']} s ({100 * inc['share_of_full_sync']:.1f}%); "
            f"run {inc['run_seconds']} s ({100 * inc['run_share_of_full_run']:.1f}%)"
        )

    for run in runs:
        full = run["full_sync"]
        lines.append(
            f"| {run['orders']:,} | {run['rate_limit']} | {run['bare_fetch']['seconds']} s | "
            f"{full['seconds']} s (run {full['run_seconds']} s) | "
            f"{full['ratio_to_bare_fetch']}x | {full['orders_per_second']:,} | "
            f"{full['peak_rss_mb']} MB | {share(run.get('incremental_sync'))} | "
            f"{share(run.get('incremental_sync_full_catalogue'))} |"
        )
    first = runs[0].get("incremental_sync")
    if first:
        breakdown = first["run_breakdown"]
        lines += [
            "",
            f"Where the hourly incremental's {first['seconds']} s went "
            f"({runs[0]['orders']:,} orders; the run wrote {breakdown['events']} events to "
            "Dagster's event log):",
            "",
            "| part | seconds |",
            "| --- | --- |",
            "| outside the Dagster run: starting Python, importing Dagster, opening the "
            f"instance, exiting | {first['outside_the_run_seconds']} |",
        ]
        lines += [f"| {part} | {sec} |" for part, sec in breakdown["seconds"].items()]
    lines += [
        "",
        f"{DEFAULT_MAX_RPS:g} req/s is the default CENTRA_MAX_REQUESTS_PER_SECOND (what a user "
        "gets); 1000 lifts the limit, and the emulator then bounds the time. The bare fetch "
        "pages at the same limit as the sync it is compared with.",
        "Store: customers, products, returns as given per run in the JSON below; the "
        "bare fetch pages the same six endpoints with the client alone (prefetching).",
        "Reproduce: `uv run python benchmarks/bench_pipeline.py --scale 1000000`.",
    ]
    path = write_result("pipeline", "\n".join(lines), {"runs": runs})
    print("\n".join(lines))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
