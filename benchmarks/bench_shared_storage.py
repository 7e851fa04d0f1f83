"""A full sync with storage on object storage + PostgreSQL against the same sync on the local
disk, side by side in one run, at the settings a user gets.

    uv run python benchmarks/bench_shared_storage.py                # 100k orders, 3 rounds
    uv run python benchmarks/bench_shared_storage.py --orders 2000 --rounds 1 --name smoke

One emulator (in its own process, sized as bench_sync.py sizes it: 20,000 customers, 5,000
products, a return per ten orders, no added latency) serves every round. Rounds interleave
local, shared, local, shared...; each is a full sync from nothing (`centra-pipeline sync` in a
fresh process, wall clock, peak RSS from wait4()) with its own data directory and Dagster
instance (the project's dagster.yaml on SQLite for both, so only the store's storage differs):
- local: the defaults (lake, warehouse and inbox on the worker's disk);
- shared: CENTRA_STORAGE_URL=s3://<new bucket>/centra on a fresh moto S3 server on loopback,
  CENTRA_INBOX_URL on a new database of one local PostgreSQL (inbox, warehouse pointer and
  lease), CENTRA_PII_KEY; the data directory then only holds caches.
CENTRA_MAX_REQUESTS_PER_SECOND is the default (10) in both, as in bench_sync.py.

The sync runs through this file (`--sync-child`), which times the storage calls in the
process before running the CLI: every ObjectStore transfer (bytes too), landing a load on
object storage, fetching and handing over the warehouse, the lease, each merge_load (DuckDB
merging a load, reading its Parquet from the lake) and publishing; streams run concurrently,
so these sums can exceed the wall time. Per phase: bench_pipeline.run_breakdown. CPU of the
emulator, moto's server and PostgreSQL during each sync: /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_pipeline import run_breakdown, run_seconds
from bench_sync import STORE, summary_requests
from harness import ROOT, dagster_home, emulator, machine, measured_rss, write_result

from centra_pipeline.settings import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_RPS

CHILD = [sys.executable, str(Path(__file__).resolve()), "--sync-child"]
PHASES = {
    "reading Centra, flattening, landing Parquet": "extract/land",
    "merging into DuckDB, lake and table materializations": "merge",
    "publishing the analyst snapshot": "publish",
    "asset checks (queries and their events)": "checks",
    "run creation (planned-materialization and planned-check events)": "run creation",
    "other run and step events": "other events",
}


# --- in the sync's own process ------------------------------------------------------------
def sync_child() -> int:
    from centra_pipeline.sync.allocators import lean_allocators

    lean_allocators()  # before pyarrow is imported, as the CLI does
    from centra_pipeline.storage import lake, lake_objects, lease, objects, warehouse
    from centra_pipeline.storage import warehouse_shared as shared

    spent: dict[str, list] = {}  # label: [calls, seconds, bytes, [(start, end), ...]]
    lock = threading.Lock()

    def size(path) -> int:
        return Path(path).stat().st_size if Path(path).exists() else 0

    def kind(store, key: str) -> str:
        if store.url.endswith("/warehouse"):
            return "warehouse version"
        return "snapshot" if key == objects.SNAPSHOT_OBJECT else "lake/other"

    def wrap(owner, name: str, label, count=None) -> None:
        original = getattr(owner, name, None)
        if original is None:  # not in this revision of the code (it has the other name)
            return

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                what = label(*args) if callable(label) else label
                nbytes = count(*args) if count else 0
                with lock:
                    row = spent.setdefault(what, [0, 0.0, 0, []])
                    row[0], row[1], row[2] = row[0] + 1, row[1] + seconds, row[2] + nbytes
                    row[3].append((started, started + seconds))

        setattr(owner, name, timed)

    store = objects.ObjectStore
    wrap(store, "upload", lambda s, src, key: f"s3 upload: {kind(s, key)}", lambda s, p, k: size(p))
    wrap(store, "download", lambda s, key, t: f"s3 download: {kind(s, key)}", lambda *a: size(a[2]))
    wrap(store, "read_bytes", "s3 read small object")
    wrap(store, "write_bytes", "s3 write small object", lambda s, k, data: len(data))
    for name in ("list", "exists", "info", "delete", "directories"):
        wrap(store, name, f"s3 {name}")
    wrap(lake_objects.ObjectLake, "_days", "s3 list (lake days)")
    land = "land: place a load (on S3: upload it, manifest last)"
    for owner in (getattr(lake_objects, "ObjectLoadWriter", None), lake.LoadWriter):
        wrap(owner, "_place", land)
    for owner in (lake_objects.ObjectLake, lake.Lake):
        wrap(owner, "place", land)
    wrap(shared.SharedWarehouse, "_fetch", "warehouse: check/fetch working copy")
    wrap(shared.SharedWarehouse, "_hand_over", "warehouse: hand over (upload, pointer, prune)")
    wrap(lease.Lease, "acquire", "lease: acquire (PostgreSQL)")
    wrap(lease.Lease, "advance", "lease: move pointer (PostgreSQL)")
    wrap(warehouse, "merge_load", "merge_load (DuckDB, reading the lake)")
    wrap(warehouse.Warehouse, "publish", "publish (snapshot copy [+ upload])")
    from centra_pipeline.cli.main import main

    try:
        return main(["sync"])
    finally:
        cpu = sum(os.times()[:2])  # this process's user + system CPU
        spent["(end of the sync)"] = [0, round(cpu, 2), 0, [(time.perf_counter(),) * 2]]
        Path(os.environ["BENCH_TIMINGS"]).write_text(json.dumps(spent))


# --- the benchmark --------------------------------------------------------------------------
def cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU time of a process (user + system), with its reaped children's if `children`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(pg) -> float:
    """The PostgreSQL server's CPU so far: the postmaster, its exited backends (reaped by it)
    and the live ones."""
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == postmaster:
                    total += cpu_seconds(int(entry.name))
            except (OSError, IndexError):
                continue
    return total


def local_sizes(data_dir: Path) -> dict[str, int]:
    """Bytes in the data directory by its top-level entry (lake, warehouse, snapshot...)."""
    sizes: dict[str, int] = {}
    for path in data_dir.rglob("*"):
        if path.is_file():
            top = path.relative_to(data_dir).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    return sizes


def s3_sizes(s3, bucket: str) -> dict[str, int]:
    """Bytes on object storage under centra/ by its first key component."""
    sizes: dict[str, int] = {}
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="centra/")
    for page in pages:
        for item in page.get("Contents", []):
            top = item["Key"].split("/")[1]
            sizes[top] = sizes.get(top, 0) + item["Size"]
    return sizes


def union(intervals: list) -> float:
    """Wall time during which at least one of the intervals was open."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def timing_rows(spent: dict) -> dict:
    """Per label: calls, seconds summed over threads, wall seconds with one in flight, seconds
    after the last load landed (the end of reading: what is left is on the critical path),
    MB; and the wall time with any object storage call (or lease, working copy) in flight."""
    _, cpu, _, [(_, end)] = spent.pop("(end of the sync)")
    land = next((k for k in spent if k.startswith("land:")), None)
    landed = max(b for _, b in spent[land][3]) if land else end
    rows = {
        k: {
            "calls": c,
            "seconds": round(s, 2),
            "wall": round(union(iv), 2),
            "after_last_land": round(sum(max(0.0, b - max(a, landed)) for a, b in iv), 2),
            "mb": round(n / 1e6, 1),
            "timeline": [[round(a - end, 2), round(b - end, 2)] for a, b in iv][:30],
        }
        for k, (c, s, n, iv) in sorted(spent.items())
    }
    rows["(from the last load landed to the end)"] = {"seconds": None, "wall": end - landed}
    rows["(CPU of the sync's process)"] = {"seconds": cpu, "wall": cpu}
    for name, prefixes in (
        ("(any s3 call in flight)", ("s3 ",)),
        ("(any s3, lease or working-copy call in flight)", ("s3 ", "lease", "warehouse:")),
    ):
        iv = [i for k, v in spent.items() if k.startswith(prefixes) for i in v[3]]
        if iv:
            rows[name] = {"calls": len(iv), "seconds": None, "wall": round(union(iv), 2)}
    return rows


def one_sync(variant: str, tmp: Path, env: dict, emu, pg, s3=None) -> dict:
    timings = tmp / "timings.json"
    env = {
        **env,
        "CENTRA_MAX_REQUESTS_PER_SECOND": f"{DEFAULT_MAX_RPS:g}",
        "CENTRA_DATA_DIR": str(tmp / "data"),
        "DAGSTER_HOME": str(dagster_home(tmp / "dagster")),
        "BENCH_TIMINGS": str(timings),
    }
    moto_pid = s3._process.pid if s3 else None
    before = (emu.cpu_seconds(), postgres_cpu(pg), cpu_seconds(moto_pid) if s3 else 0.0)
    result = measured_rss(CHILD, env)
    after = (emu.cpu_seconds(), postgres_cpu(pg), cpu_seconds(moto_pid) if s3 else 0.0)
    breakdown = run_breakdown(env["DAGSTER_HOME"])
    return {
        "variant": variant,
        "seconds": round(result["seconds"], 2),
        "run_seconds": run_seconds(result["stdout"]),
        "peak_rss_mb": round(result["peak_rss_mb"]),
        "requests": summary_requests(result["stdout"]),
        "phases": {PHASES.get(k, k): v for k, v in breakdown["seconds"].items()},
        "cpu_seconds": {
            name: round(b - a, 1)
            for name, a, b in zip(("emulator", "postgres", "moto"), before, after, strict=True)
        },
        "timings": timing_rows(json.loads(timings.read_text())),
        "local_mb": {k: round(v / 1e6, 1) for k, v in local_sizes(tmp / "data").items()},
    }


def run_rounds(orders: int, rounds: int, latency_ms: int) -> list[dict]:
    from centra_pipeline.testing.postgres import PostgresServer
    from centra_pipeline.testing.s3 import S3Server

    sizes = (orders, STORE["customers"], STORE["products"], max(1, orders // 10))
    rows = []
    with (
        emulator(*sizes, latency_ms=latency_ms) as emu,
        PostgresServer() as pg,
        tempfile.TemporaryDirectory() as scratch,
    ):
        for n in range(1, rounds + 1):
            for variant in ("local", "shared"):
                tmp = Path(scratch) / f"{variant}-{n}"
                tmp.mkdir()
                if variant == "local":
                    row = one_sync(variant, tmp, emu.env, emu, pg)
                else:
                    with S3Server() as s3:  # a fresh server: moto keeps objects in memory
                        bucket = s3.create_bucket()
                        env = {
                            **emu.env,
                            **s3.env(),
                            "CENTRA_STORAGE_URL": f"s3://{bucket}/centra",
                            "CENTRA_INBOX_URL": pg.create_database(f"bench_{n}_{os.getpid()}"),
                            "CENTRA_PII_KEY": secrets.token_hex(16),
                        }
                        row = one_sync(variant, tmp, env, emu, pg, s3)
                        row["s3_mb"] = {
                            k: round(v / 1e6, 1) for k, v in s3_sizes(s3, bucket).items()
                        }
                row["round"] = n
                rows.append(row)
                print(
                    f"[round {n} {variant}] {row['seconds']} s (run {row['run_seconds']} s), "
                    f"{row['peak_rss_mb']} MB; phases {row['phases']}; cpu {row['cpu_seconds']}",
                    flush=True,
                )
    return rows


def summarize(rows: list[dict]) -> dict:
    by = {v: [r for r in rows if r["variant"] == v] for v in ("local", "shared")}
    med = {v: statistics.median(r["seconds"] for r in rs) for v, rs in by.items()}
    pairs = zip(by["local"], by["shared"], strict=False)
    out = {
        "median_seconds": med,
        "ratio_of_medians": round(med["shared"] / med["local"], 3),
        "ratio_per_round": [round(s["seconds"] / lo["seconds"], 3) for lo, s in pairs],
        "mean_timings": {},
        "mean_phases": {},
    }
    for v, rs in by.items():
        labels = sorted({k for r in rs for k in r["timings"]})
        out["mean_timings"][v] = {
            k: {
                f: round(statistics.mean(r["timings"].get(k, {}).get(f) or 0 for r in rs), 2)
                for f in ("seconds", "wall", "after_last_land")
            }
            for k in labels
        }
        phases = sorted({k for r in rs for k in r["phases"]})
        out["mean_phases"][v] = {
            k: round(statistics.mean(r["phases"].get(k, 0) for r in rs), 2) for k in phases
        }
    return out


def markdown(args, rows: list[dict], summary: dict, commit: str) -> str:
    phases = list(dict.fromkeys(PHASES.values()))
    lines = [
        "# Shared storage benchmark: object storage + PostgreSQL vs the local disk",
        "",
        f"Machine: {machine()}; commit {commit}. Defaults: CENTRA_MAX_REQUESTS_PER_SECOND="
        f"{DEFAULT_MAX_RPS:g}, CENTRA_MAX_CONNECTIONS={DEFAULT_MAX_CONNECTIONS}. Emulator: "
        f"{args.orders:,} orders, {STORE['customers']:,} customers, {STORE['products']:,} "
        f"products, {max(1, args.orders // 10):,} returns, +{args.latency_ms} ms latency.",
        "",
        "moto's S3 server is a Python process on this same machine and PostgreSQL is local: "
        "their CPU (columns below) competes with the sync, which real S3 would not.",
        "",
        "| round | storage | full sync | Dagster run | "
        + " | ".join(phases)
        + " | peak RSS | CPU emulator / PostgreSQL / moto |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in phases) + " | --- | --- |",
    ]
    for r in rows:
        cpu = r["cpu_seconds"]
        lines.append(
            f"| {r['round']} | {r['variant']} | {r['seconds']} s | {r['run_seconds']} s | "
            + " | ".join(f"{r['phases'].get(p, 0)}" for p in phases)
            + f" | {r['peak_rss_mb']} MB | {cpu['emulator']} / {cpu['postgres']} / "
            f"{cpu['moto']} s |"
        )
    lines += [
        "",
        f"Ratio shared/local: {summary['ratio_of_medians']}x of the medians "
        f"({summary['median_seconds']['shared']} / {summary['median_seconds']['local']} s); "
        f"per round {', '.join(f'{x}x' for x in summary['ratio_per_round'])}.",
        "",
        "Time in storage calls, mean seconds per sync: summed over threads / wall time with "
        "at least one in flight / after the last load landed, i.e. once reading is over (calls "
        "and MB: the last shared round; nested calls are counted in their own rows too):",
        "",
        "| call | local | shared | shared calls | shared MB |",
        "| --- | --- | --- | --- | --- |",
    ]
    timings = summary["mean_timings"]
    last = [r for r in rows if r["variant"] == "shared"][-1]["timings"]

    def cell(t: dict | None) -> str:
        return "-" if t is None else f"{t['seconds'] or '-'} / {t['wall']} / {t['after_last_land']}"

    for label in sorted(set(timings["local"]) | set(timings["shared"])):
        got = last.get(label, {})
        lines.append(
            f"| {label} | {cell(timings['local'].get(label))} | "
            f"{cell(timings['shared'].get(label))} | {got.get('calls', '-')} | "
            f"{got.get('mb') or '-'} |"
        )
    shared_last = [r for r in rows if r["variant"] == "shared"][-1]
    local_last = [r for r in rows if r["variant"] == "local"][-1]
    lines += [
        "",
        f"Sizes (MB, last round): local data directory {local_last['local_mb']}; "
        f"shared on S3 {shared_last['s3_mb']}, shared data directory (caches) "
        f"{shared_last['local_mb']}.",
        "",
        f"Reproduce: `uv run python benchmarks/bench_shared_storage.py --orders {args.orders} "
        f"--rounds {args.rounds}`.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="of each, interleaved")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--name", default="shared_storage", help="result file name")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    rows = run_rounds(args.orders, args.rounds, args.latency_ms)
    summary = summarize(rows)
    text = markdown(args, rows, summary, commit)
    data = {"orders": args.orders, "commit": commit, "summary": summary, "rounds": rows}
    path = write_result(args.name, text, data)
    print(text)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if sys.argv[1:2] == ["--sync-child"]:
        sys.exit(sync_child())
    sys.exit(main())
