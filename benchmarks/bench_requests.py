"""Request benchmark: how many requests a full sync and a no-change incremental sync make.

    uv run python benchmarks/bench_requests.py      # 100k orders, 10k returns (issue #10 sizes)
    uv run python benchmarks/bench_requests.py --connections 1   # no requests made ahead

The emulator runs in its own process; `centra-pipeline sync` runs in a fresh process with
the user's defaults: CENTRA_MAX_REQUESTS_PER_SECOND 10 (the harness's 1000 is overridden)
and CENTRA_MAX_CONNECTIONS 4 (a long read asks for pages ahead on them). After the full
sync, nothing changes in the store, and an incremental `centra-pipeline sync` (the hourly
run) follows. Each sync's requests are counted twice: per stream from the sync's printed
summary (its `requests` column), and per endpoint from the emulator's own request counts
(GET /_emulator/stats) before and after. The returns read's window (how its open returns
older than the window were re-read) and what each read landed come from the lake's
manifests.

Target (issue #10): the no-change incremental makes at most 15 requests across all six
streams, and re-reads every open return.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from harness import RESULTS, dagster_home, emulator, machine, measured_rss, write_result

from centra_pipeline.settings import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_RPS
from centra_pipeline.storage.lake import Lake
from centra_pipeline.streams import STREAMS

SYNC = [sys.executable, "-m", "centra_pipeline.cli", "sync"]
TARGET_INCREMENTAL_REQUESTS = 15


def summary_table(stdout: str) -> dict[str, dict[str, str]]:
    """The sync's summary table (`stream fetched new updated unchanged requests retries
    seconds`), per stream."""
    lines = stdout.splitlines()
    header = next(
        (i for i, ln in enumerate(lines) if ln.split()[:2] == ["stream", "fetched"]), None
    )
    if header is None:
        raise RuntimeError(f"no summary table in the sync's output:\n{stdout[-2000:]}")
    columns = lines[header].split()
    out: dict[str, dict[str, str]] = {}
    for line in lines[header + 1 :]:
        cells = line.split()
        if not cells:
            break
        if cells[0] in STREAMS and len(cells) == len(columns):
            out[cells[0]] = dict(zip(columns[1:], cells[1:], strict=True))
    return out


def api_requests(before: dict, after: dict) -> dict[str, int]:
    """The emulator's API request counts ("order GET /returns": n) between two GET /stats;
    the admin API's own requests are left out."""
    counts = {
        label: after["requests"].get(label, 0) - before["requests"].get(label, 0)
        for label in after["requests"]
        if not label.startswith("admin")
    }
    return {label: n for label, n in sorted(counts.items()) if n}


def newest_loads(data_dir: Path) -> dict[str, dict]:
    """Per stream, what its newest lake load read and landed, and its window."""
    lake = Lake(data_dir / "lake")
    out = {}
    for name in STREAMS:
        loads = lake.loads(name)
        if loads:
            m = loads[-1]
            out[name] = {
                "mode": m.mode,
                "window": m.window,
                "records_read": m.records_read,
                "records_landed": m.records,
                "requests": m.requests,
            }
    return out


def one_sync(emu, env: dict, label: str) -> dict:
    before = emu.admin("GET", "/stats")
    run = measured_rss(SYNC, env)
    after = emu.admin("GET", "/stats")
    table = summary_table(run["stdout"])
    per_stream = {name: int(row["requests"]) for name, row in table.items()}
    per_endpoint = api_requests(before, after)
    result = {
        "seconds": round(run["seconds"], 2),
        "peak_rss_mb": round(run["peak_rss_mb"]),
        "requests_per_stream": per_stream,
        "requests_total": sum(per_stream.values()),
        "seconds_per_stream": {name: float(row["seconds"]) for name, row in table.items()},
        "emulator_requests_per_endpoint": per_endpoint,
        "emulator_requests_total": sum(per_endpoint.values()),
        "loads": newest_loads(Path(env["CENTRA_DATA_DIR"])),
        "summary": run["stdout"].strip().splitlines()[-12:],
    }
    print(
        f"{label}: {result['requests_total']} requests by the summary, "
        f"{result['emulator_requests_total']} by the emulator, {run['seconds']:.1f} s "
        f"{per_stream}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--returns", type=int, default=10_000)
    parser.add_argument("--rate", default=f"{DEFAULT_MAX_RPS:g}")
    parser.add_argument(
        "--connections",
        default=f"{DEFAULT_MAX_CONNECTIONS}",
        help="CENTRA_MAX_CONNECTIONS (default: the user's default)",
    )
    args = parser.parse_args()
    out: dict = {
        "orders": args.orders,
        "customers": args.customers,
        "products": args.products,
        "returns": args.returns,
        "rate_limit": args.rate,
        "connections": args.connections,
    }
    with (
        emulator(args.orders, args.customers, args.products, args.returns) as emu,
        tempfile.TemporaryDirectory() as tmp,
    ):
        stats = emu.admin("GET", "/stats")
        out["store"] = {k: stats[k] for k in ("orders", "customers", "returns")}
        env = {
            **emu.env,
            "CENTRA_MAX_REQUESTS_PER_SECOND": args.rate,  # the harness lifts it to 1000
            "CENTRA_MAX_CONNECTIONS": args.connections,
            "CENTRA_DATA_DIR": str(Path(tmp) / "data"),
            "DAGSTER_HOME": str(Path(tmp) / "dagster"),
        }
        dagster_home(Path(env["DAGSTER_HOME"]))
        out["full_sync"] = one_sync(emu, env, "full sync")
        out["incremental_sync"] = one_sync(emu, env, "no-change incremental sync")
    path = write_result("requests", markdown(out), out)
    RESULTS.joinpath("requests.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"\nwritten to {path} and requests.json")


def markdown(out: dict) -> str:
    full, inc = out["full_sync"], out["incremental_sync"]
    returns = inc["loads"].get("returns", {})
    window = returns.get("window", {})
    lines = [
        "# Request benchmark",
        "",
        f"Machine: {machine()}. Store: {out['orders']:,} orders, {out['customers']:,} "
        f"customers, {out['products']:,} products, {out['returns']:,} returns "
        f"({out['store']['returns']['open']:,} open); rate limit {out['rate_limit']} req/s, "
        f"{out['connections']} connections per API.",
        "",
        "| stream | full sync: requests | no-change incremental: requests | incremental: "
        "records read | incremental: records landed | incremental: seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in STREAMS:
        load = inc["loads"].get(name, {})
        lines.append(
            f"| {name} | {full['requests_per_stream'].get(name, '-')} | "
            f"{inc['requests_per_stream'].get(name, '-')} | {load.get('records_read', '-')} | "
            f"{load.get('records_landed', '-')} | {inc['seconds_per_stream'].get(name, '-')} |"
        )
    lines.append(
        f"| **total** | {full['requests_total']} | {inc['requests_total']} "
        f"(target ≤ {TARGET_INCREMENTAL_REQUESTS}) | | | |"
    )
    lines += [
        "",
        f"The emulator counted {full['emulator_requests_total']} API requests during the full "
        f"sync and {inc['emulator_requests_total']} during the incremental one "
        f"({', '.join(f'{k}: {v}' for k, v in inc['emulator_requests_per_endpoint'].items())}).",
        f"Full sync {full['seconds']} s (peak RSS {full['peak_rss_mb']} MB), incremental "
        f"{inc['seconds']} s ({inc['peak_rss_mb']} MB): wall time of the command.",
        "",
        f"The incremental returns read: {json.dumps(window, default=str)}.",
        "",
        "Reproduce: `uv run python benchmarks/bench_requests.py`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
