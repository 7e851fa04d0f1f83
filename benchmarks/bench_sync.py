"""Sync performance at the settings a user gets: latency-bound full syncs, the ratio to a bare
fetch, the cost of incremental and no-change runs, memory, and the rate limit as Centra sees it.

    uv run python benchmarks/bench_sync.py                      # every scenario
    uv run python benchmarks/bench_sync.py --baseline 4308f40   # and a commit side by side
    uv run python benchmarks/bench_sync.py --scenarios latency,incremental --sizes 100000

Scenarios (each against a fresh emulator in its own process; every sync is
`centra-pipeline sync` in a fresh process, timed by wall clock, peak RSS from wait4()):
- latency: the emulator answers every request 150 ms late (`--latency-ms`), as a real Centra
  does; a sequential bare fetch of every endpoint (the client alone, one request at a time,
  the next page prefetched while parsing) against a full sync at the defaults;
- ratio: no added latency; the bare fetch against a full sync at each of `--sizes`, with peak
  RSS;
- incremental: after the full sync, a tick that changes 1% of the store, then the hourly
  incremental; then an incremental with nothing changed; each as a share of the full sync,
  with the requests it made and where the run's time went (Dagster's event log);
- the emulator's own request log during each full sync: the most requests that arrived in
  any one second, per API, against CENTRA_MAX_REQUESTS_PER_SECOND.

With `--baseline REV` the syncs of the incremental scenario also run from a git worktree of
REV (same emulator, same ticks, its own data directory), so before and after are measured in
one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench_pipeline import FETCH, SYNC, one_tick, run_breakdown, run_seconds
from harness import ROOT, dagster_home, emulator, machine, measured_rss, write_result

from centra_pipeline.emulator.request_log import busiest_window
from centra_pipeline.settings import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_RPS

STORE = {"customers": 20_000, "products": 5_000}


@contextmanager
def worktree(rev: str | None):
    """A checkout of `rev` to run the baseline's code from (None: no baseline)."""
    if rev is None:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT, check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=True)


class Variant:
    """One version of the code with its own data directory and Dagster instance."""

    def __init__(self, name: str, tmp: Path, emu_env: dict, code: Path | None) -> None:
        self.name = name
        self.code = code
        home = tmp / f"dagster-{name}"
        if code is None:
            dagster_home(home)
        else:  # an older revision: Dagster's default instance, as its own dagster.yaml had
            home.mkdir()
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.env = {
            **emu_env,
            "CENTRA_MAX_REQUESTS_PER_SECOND": f"{DEFAULT_MAX_RPS:g}",
            "CENTRA_DATA_DIR": str(tmp / f"data-{name}"),
            "DAGSTER_HOME": str(home),
        }
        if code is not None:
            self.env["PYTHONPATH"] = str(code)

    def sync(self, extra: dict | None = None) -> dict:
        result = measured_rss(SYNC, {**self.env, **(extra or {})}, cwd=self.code or ROOT)
        result["run_seconds"] = run_seconds(result["stdout"])
        result["requests"] = summary_requests(result["stdout"])
        return result


def summary_requests(stdout: str) -> dict[str, int]:
    """Requests per stream from the sync's summary table."""
    requests: dict[str, int] = {}
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("stream ") and "requests" in line:
            column = line.split().index("requests")
            for row in lines[i + 1 :]:
                cells = row.split()
                if not cells or row.startswith(" "):
                    if not cells:
                        break
                    continue
                requests[cells[0]] = int(cells[column])
    return requests


def busiest(emu, since: float) -> dict:
    """Per API: the requests the emulator logged since `since`, and the most in one second."""
    seen = emu.admin("GET", "/requests")
    out = {}
    for api, log in seen.items():
        times = [t for t in log["arrivals"] if t >= since]
        out[api] = {"requests": len(times), "busiest_second": busiest_window(times)}
    return out


def bare_fetch(env: dict) -> dict:
    fetch = measured_rss(FETCH, env)
    fetched = json.loads(fetch["stdout"])
    return {
        "seconds": round(fetch["seconds"], 2),
        "peak_rss_mb": round(fetch["peak_rss_mb"]),
        "requests": fetched["requests"],
        "records": {k: v["records"] for k, v in fetched.items() if isinstance(v, dict)},
    }


def full_vs_bare(orders: int, latency_ms: int) -> dict:
    returns = max(1, orders // 10)
    with (
        emulator(
            orders, STORE["customers"], STORE["products"], returns, latency_ms=latency_ms
        ) as emu,
        tempfile.TemporaryDirectory() as tmp,
    ):
        variant = Variant("current", Path(tmp), emu.env, None)
        env = {**variant.env}
        cpu = emu.cpu_seconds()
        fetch = bare_fetch(env)
        fetch["emulator_cpu_seconds"] = round(emu.cpu_seconds() - cpu, 1)
        print(f"[{orders:,}, +{latency_ms} ms] bare fetch {fetch['seconds']} s", flush=True)
        since, cpu = time.time(), emu.cpu_seconds()
        full = variant.sync()
        emulator_cpu = round(emu.cpu_seconds() - cpu, 1)
        seen = busiest(emu, since)
        row = {
            "orders": orders,
            "latency_ms": latency_ms,
            "bare_fetch": fetch,
            "full_sync": {
                "seconds": round(full["seconds"], 2),
                "run_seconds": full["run_seconds"],
                "peak_rss_mb": round(full["peak_rss_mb"]),
                "requests": full["requests"],
                "emulator_cpu_seconds": emulator_cpu,
            },
            "ratio": round(full["seconds"] / fetch["seconds"], 2),
            "emulator_saw": seen,
        }
        print(
            f"[{orders:,}, +{latency_ms} ms] full sync {row['full_sync']['seconds']} s = "
            f"{row['ratio']}x, {row['full_sync']['peak_rss_mb']} MB; busiest second "
            f"{ {k: v['busiest_second'] for k, v in seen.items()} }",
            flush=True,
        )
        return row


def incremental(orders: int, baseline: Path | None) -> dict:
    returns = orders // 10
    sizes = (orders, STORE["customers"], STORE["products"], returns)
    with emulator(*sizes) as emu, tempfile.TemporaryDirectory() as tmp:
        variants = [Variant("current", Path(tmp), emu.env, None)]
        if baseline is not None:
            variants.append(Variant("baseline", Path(tmp), emu.env, baseline))
        out: dict = {v.name: {} for v in variants}
        for v in variants:
            since = time.time()
            full = v.sync()
            out[v.name]["full_sync"] = {
                "seconds": round(full["seconds"], 2),
                "peak_rss_mb": round(full["peak_rss_mb"]),
                "emulator_saw": busiest(emu, since),
            }
            print(f"[{v.name}] full sync {full['seconds']:.1f} s", flush=True)
        for label, tick in (("hourly_after_1pct_tick", True), ("no_change", False)):
            if tick:
                one_tick(emu, *sizes)
            for v in variants:
                before = emu.admin("GET", "/stats")["requests"]
                inc = v.sync()
                after = emu.admin("GET", "/stats")["requests"]
                api_requests = sum(
                    n - before.get(k, 0)
                    for k, n in after.items()
                    if k.startswith(("order ", "shop "))
                )
                full_seconds = out[v.name]["full_sync"]["seconds"]
                out[v.name][label] = {
                    "seconds": round(inc["seconds"], 2),
                    "run_seconds": inc["run_seconds"],
                    "outside_the_run_seconds": round(inc["seconds"] - inc["run_seconds"], 2),
                    "share_of_full_sync": round(inc["seconds"] / full_seconds, 3),
                    "requests_seen_by_emulator": api_requests,
                    "requests": inc["requests"],
                    "peak_rss_mb": round(inc["peak_rss_mb"]),
                    "run_breakdown": run_breakdown(v.env["DAGSTER_HOME"]),
                }
                print(
                    f"[{v.name}] {label}: {inc['seconds']:.1f} s "
                    f"({100 * inc['seconds'] / full_seconds:.1f}% of the full sync), "
                    f"{api_requests} requests",
                    flush=True,
                )
        return {"orders": orders, **out}


def markdown(results: dict) -> str:
    lines = [
        "# Sync benchmark (issue 10)",
        "",
        f"Machine: {machine()}. Defaults: CENTRA_MAX_REQUESTS_PER_SECOND={DEFAULT_MAX_RPS:g}, "
        f"CENTRA_MAX_CONNECTIONS={DEFAULT_MAX_CONNECTIONS}.",
        "",
    ]
    rows = results.get("latency", []) + results.get("ratio", [])
    if rows:
        lines += [
            "| orders | added latency | bare fetch (sequential) | full sync | ratio | peak RSS "
            "| busiest second seen by the emulator (order / shop API) "
            "| emulator CPU (bare fetch / sync) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            seen = r["emulator_saw"]
            lines.append(
                f"| {r['orders']:,} | {r['latency_ms']} ms | {r['bare_fetch']['seconds']} s | "
                f"{r['full_sync']['seconds']} s | {r['ratio']}x | "
                f"{r['full_sync']['peak_rss_mb']} MB | "
                f"{seen['order']['busiest_second']} / {seen['shop']['busiest_second']} | "
                f"{r['bare_fetch'].get('emulator_cpu_seconds', '-')} / "
                f"{r['full_sync'].get('emulator_cpu_seconds', '-')} s |"
            )
        lines.append("")
    inc = results.get("incremental")
    if inc:
        names = [n for n in ("current", "baseline") if n in inc]
        lines += [
            f"Incremental runs, {inc['orders']:,} orders"
            + (f" (baseline: {results['baseline']})" if "baseline" in inc else "")
            + ":",
            "",
            "| run | " + " | ".join(names) + " |",
            "| --- | " + " | ".join("---" for _ in names) + " |",
            "| full sync | "
            + " | ".join(f"{inc[n]['full_sync']['seconds']} s" for n in names)
            + " |",
        ]
        for label in ("hourly_after_1pct_tick", "no_change"):
            cells = [
                f"{inc[n][label]['seconds']} s ({100 * inc[n][label]['share_of_full_sync']:.1f}%), "
                f"{inc[n][label]['requests_seen_by_emulator']} requests"
                for n in names
            ]
            lines.append(f"| {label.replace('_', ' ')} | " + " | ".join(cells) + " |")
        for n in names:
            b = inc[n]["no_change"]
            lines += [
                "",
                f"Where the no-change run's {b['seconds']} s went ({n}; "
                f"{b['run_breakdown']['events']} events):",
                "",
                "| part | seconds |",
                "| --- | --- |",
                f"| outside the Dagster run (Python, imports, instance, exit) | "
                f"{b['outside_the_run_seconds']} |",
            ]
            lines += [f"| {k} | {v} |" for k, v in b["run_breakdown"]["seconds"].items()]
    lines += ["", "Reproduce: `uv run python benchmarks/bench_sync.py --baseline <rev>`."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="latency,ratio,incremental")
    parser.add_argument("--sizes", default="20000,100000,1000000", help="ratio scenario")
    parser.add_argument("--orders", type=int, default=100_000, help="latency, incremental")
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--baseline", help="a git revision to run the incremental syncs from")
    parser.add_argument("--name", default="sync", help="result file name")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    results: dict = {"baseline": args.baseline}
    if "latency" in scenarios:
        results["latency"] = [full_vs_bare(args.orders, args.latency_ms)]
    if "ratio" in scenarios:
        results["ratio"] = [full_vs_bare(int(n), 0) for n in args.sizes.split(",")]
    if "incremental" in scenarios:
        with worktree(args.baseline) as code:
            results["incremental"] = incremental(args.orders, code)
    text = markdown(results)
    path = write_result(args.name, text, results)
    print(text)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
