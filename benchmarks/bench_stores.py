"""Many stores: the hourly incremental cycle of 10, 30 and 100 small stores, with the real
Dagster daemon, on this machine.

    uv run python benchmarks/bench_stores.py                  # 10, 30 and 100 stores
    uv run python benchmarks/bench_stores.py --stores 10      # one size
    uv run python benchmarks/bench_stores.py --max-concurrent-runs 2   # a tuned figure
    uv run python benchmarks/bench_stores.py --stores 100 --record-as 100  # results/stores_100.md

Per store count, in a fresh directory:
1. an emulator fleet in its own process (`emulator.fleet`: stores of 1,000-5,000 orders,
   different seeds, keys and timezones), and a stores file for it;
2. the first full sync of every store (`centra-pipeline sync`, stores one after another;
   setup, timed but not the target);
3. a tick on every store (1% new orders, as many updated, a few returns and customers);
4. `dagster-daemon run` on the project's workspace and instance settings (the run queue of
   dagster.yaml: 4 runs at once, one per store), with CENTRA_SYNC_CRON set to fire once, at
   the next minute. The cycle is timed from the schedule's tick until every store's snapshot
   has a materialization after it; the all_stores file's publish after it is reported too;
5. the peak RSS of the daemon's process tree (daemon, code server, run workers), summed over
   processes and sampled every 0.25 s; the emulator's own process is not in that tree.

Everything runs at the defaults a user gets (rate limit 10 requests/s per API per store,
4 connections), unless a flag says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from harness import ROOT, dagster_home, machine, write_result

CLI = [sys.executable, "-m", "centra_pipeline.cli"]
NOW = "2026-11-30 09:00:00"

FLEET = """
import json, sys, time
from pathlib import Path
from centra_pipeline.emulator.fleet import Fleet, fleet_configs, store_secret_env, stores_file_text
count, out, now = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
fleet = Fleet(fleet_configs(count, seed=101, now=now, orders=(1000, 5000))).start()
(out / "stores.toml").write_text(stores_file_text(fleet))
(out / "fleet.json").write_text(json.dumps({
    "env": store_secret_env(fleet),
    "admin": {name: emu.base_url + "/_emulator" for name, emu in fleet.stores.items()},
    "orders": {name: emu.config.orders for name, emu in fleet.stores.items()},
}))
while True:
    time.sleep(3600)
"""


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def tree_rss(root: psutil.Process) -> tuple[int, int]:
    """(sum, largest) RSS in bytes over `root` and its descendants."""
    total = largest = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for proc in procs:
        try:
            rss = proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest


def published_after(instance, names: list[str], after: float) -> dict[str, float]:
    """Per store, the time of its first snapshot materialization after `after`."""
    import dagster as dg

    from centra_pipeline.defs.keys import SNAPSHOT_KEY

    out: dict[str, float] = {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SNAPSHOT_KEY, after_timestamp=after), limit=10_000
    ).records
    for record in records:
        partition = record.partition_key
        if partition in names and record.timestamp > after:
            out[partition] = min(out.get(partition, float("inf")), record.timestamp)
    return out


def all_stores_after(instance, after: float) -> list:
    """The all_stores materialization published after `after`, if any (a list of 0 or 1)."""
    import dagster as dg

    from centra_pipeline.defs.all_stores import ALL_STORES_KEY

    records_filter = dg.AssetRecordsFilter(asset_key=ALL_STORES_KEY, after_timestamp=after)
    return instance.fetch_materializations(records_filter, limit=1).records


def one_size(count: int, max_runs: int | None, keep: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-stores-{count}-"))
    data = work / "data"
    home = dagster_home(work / "dagster_home")
    if max_runs is not None:
        text = (home / "dagster.yaml").read_text()
        (home / "dagster.yaml").write_text(
            text.replace("max_concurrent_runs: 4", f"max_concurrent_runs: {max_runs}")
        )
    fleet = subprocess.Popen([sys.executable, "-c", FLEET, str(count), str(work), NOW], cwd=ROOT)
    started = time.monotonic()
    while not (work / "fleet.json").exists():
        if fleet.poll() is not None:
            raise SystemExit("the emulator fleet did not start")
        time.sleep(0.2)
    fleet_seconds = time.monotonic() - started
    info = json.loads((work / "fleet.json").read_text())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CENTRA_")},
        **info["env"],
        "CENTRA_STORES_FILE": str(work / "stores.toml"),
        "CENTRA_DATA_DIR": str(data),
        "DAGSTER_HOME": str(home),
    }
    result: dict = {"stores": count, "orders": sum(info["orders"].values())}
    daemon = None
    try:
        # Setup: the first full sync, two CLI processes (one per core) taking half the stores.
        started = time.monotonic()
        names = list(info["orders"])
        halves = [names[0::2], names[1::2]]
        firsts = [
            subprocess.Popen(
                [*CLI, "sync", *(arg for n in half for arg in ("--store", n))],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for half in halves
            if half
        ]
        for first in firsts:
            output, _ = first.communicate()
            if first.returncode != 0:
                raise SystemExit(f"first sync failed:\n{output[-3000:]}")
        result["first_sync_seconds"] = round(time.monotonic() - started, 1)
        for name, orders in info["orders"].items():
            post(
                info["admin"][name] + "/tick",
                {
                    "new_orders": max(1, orders // 100),
                    "updated_orders": max(1, orders // 100),
                    "new_returns": 2,
                    "updated_customers": 3,
                },
            )
        # Fire once: at the next minute with at least 25 s for the daemon to start.
        fire = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        if (fire - datetime.now(UTC)).total_seconds() < 25:
            fire += timedelta(minutes=1)
        env["CENTRA_SYNC_CRON"] = f"{fire.minute} * * * *"
        daemon_log = open(work / "daemon.log", "w")  # noqa: SIM115 - open while the daemon runs
        daemon = subprocess.Popen(
            ["dagster-daemon", "run", "-w", str(ROOT / "workspace.yaml")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=daemon_log,
            start_new_session=True,
        )
        root = psutil.Process(daemon.pid)
        peak_sum = peak_one = 0
        tick = fire.timestamp()
        os.environ["DAGSTER_HOME"] = str(home)
        import dagster as dg

        names = list(info["orders"])
        done: dict[str, float] = {}
        deadline = tick + 1800
        last_check = 0.0
        with dg.DagsterInstance.from_config(str(home)) as instance:
            while time.time() < deadline:
                total, largest = tree_rss(root)
                peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
                if time.time() - last_check > 2 and time.time() > tick:
                    done = published_after(instance, names, tick)
                    last_check = time.time()
                    if len(done) == len(names):
                        break
                time.sleep(0.25)
            runs = instance.get_runs(dg.RunsFilter(job_name="centra_sync", created_after=fire))
            failed = [r.tags.get("dagster/partition") for r in runs if r.status.value == "FAILURE"]
            last_store = max(done.values(), default=tick)
            all_stores = all_stores_after(instance, last_store)
            # Wait (up to 90 s) for the all_stores publish that follows the last store.
            wait_until = time.time() + 90
            while not all_stores and time.time() < wait_until:
                total, largest = tree_rss(root)
                peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
                time.sleep(1)
                all_stores = all_stores_after(instance, last_store)
            durations = sorted(
                (r.end_time or 0) - (r.start_time or 0)
                for r in (instance.get_run_record_by_id(run.run_id) for run in runs)
                if r and r.start_time and r.end_time
            )
        result.update(
            fleet_start_seconds=round(fleet_seconds, 1),
            cycle_seconds=round(max(done.values()) - tick, 1) if len(done) == count else None,
            stores_published=len(done),
            runs=len(runs),
            failed_runs=failed,
            run_seconds_median=round(durations[len(durations) // 2], 1) if durations else None,
            run_seconds_max=round(durations[-1], 1) if durations else None,
            all_stores_after_last_store_seconds=round(
                all_stores[0].timestamp - max(done.values()), 1
            )
            if all_stores and done
            else None,
            peak_rss_mb_tree=round(peak_sum / 2**20),
            peak_rss_mb_one_process=round(peak_one / 2**20),
            max_concurrent_runs=max_runs or 4,
        )
    finally:
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
        fleet.kill()
        fleet.wait()
        if not keep:
            subprocess.run(["rm", "-rf", str(work)])
    print(json.dumps(result), flush=True)
    return result


def _after(seconds: float | None) -> str:
    return "not within 90 s" if seconds is None else f"{seconds} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, action="append")
    parser.add_argument("--max-concurrent-runs", type=int)
    parser.add_argument("--keep", action="store_true", help="keep the working directories")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument(
        "--record-as", metavar="SUFFIX", help="write results/stores_SUFFIX.md instead"
    )
    args = parser.parse_args()
    results = [
        one_size(n, args.max_concurrent_runs, args.keep) for n in args.stores or (10, 30, 100)
    ]
    lines = [
        "# Many stores: the hourly cycle (real Dagster daemon)",
        "",
        f"Machine: {machine()}. `benchmarks/bench_stores.py`; stores of 1,000-5,000 orders;",
        "rate limit 10 requests/s per API per store (the default). Cycle: from the schedule's",
        "tick until every store's snapshot is published after it. RSS: the daemon's process",
        "tree (daemon, code server, run workers) summed, peak of 0.25 s samples.",
        "",
        "| stores | orders | cycle | per store | runs at once | run median / max | "
        "all_stores after | peak RSS (tree / one process) | failed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        cycle = r["cycle_seconds"]
        lines.append(
            f"| {r['stores']} | {r['orders']:,} | {cycle} s | "
            f"{cycle / r['stores']:.2f} s | {r['max_concurrent_runs']} | "
            f"{r['run_seconds_median']} / {r['run_seconds_max']} s | "
            f"{_after(r['all_stores_after_last_store_seconds'])} | "
            f"{r['peak_rss_mb_tree']} / {r['peak_rss_mb_one_process']} MB | "
            f"{len(r['failed_runs'])} |"
            if cycle is not None
            else f"| {r['stores']} | {r['orders']:,} | not finished ({r['stores_published']} "
            "published) | | | | | | |"
        )
    if not args.no_record:
        suffix = "" if args.max_concurrent_runs is None else f"_runs{args.max_concurrent_runs}"
        if args.record_as:
            suffix = f"_{args.record_as}"
        print(write_result(f"stores{suffix}", "\n".join(lines), {"results": results}))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
