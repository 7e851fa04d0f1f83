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
import yaml
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


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_pss(procs: list[psutil.Process]) -> int:
    """Summed PSS in bytes over `procs`: each shared page counted once across them (a forked
    run shares its parent's pages, which summed RSS would count once per process)."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            continue
    return total


def tree_rss(procs: list[psutil.Process]) -> tuple[int, int]:
    """(sum, largest) RSS in bytes over `procs`."""
    total = largest = 0
    for proc in procs:
        try:
            rss = proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest


def process_kind(proc: psutil.Process) -> str:
    """Which part of the deployment a process of the daemon's tree is."""
    try:
        line = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "execute_run" in line or "multiprocessing.spawn" in line or "warm_worker" in line:
        return "run workers"  # spawned by the code server, or the warm worker and its forks
    if line.startswith("tail "):
        return "compute log capture"
    if "grpc" in line or "code-server" in line:
        return "code server"
    if "dagster-daemon" in line or "dagster_daemon" in line:
        return "daemon"
    return "other"


class CpuLedger:
    """CPU seconds (user + system) per kind of process from `since` on: a process already
    running then counts from its first sample, and a process that exits between samples
    loses at most its last 0.25 s."""

    def __init__(self, since: float) -> None:
        self.since = since
        self.seen: dict[tuple[int, float], tuple[str, float, float]] = {}

    def sample(self, procs: list[psutil.Process], kind: str | None = None) -> None:
        for proc in procs:
            try:
                used = sum(proc.cpu_times()[:2])
                key = (proc.pid, proc.create_time())
                label, first, _ = self.seen.get(key) or (
                    kind or process_kind(proc),
                    used if key[1] < self.since else 0.0,
                    0.0,
                )
            except psutil.Error:
                continue
            self.seen[key] = (label, first, used)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for label, first, last in self.seen.values():
            out[label] = round(out.get(label, 0.0) + last - first, 1)
        return out


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


def one_size(count: int, max_runs: int | None, keep: bool, launcher: str = "warm") -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-stores-{count}-"))
    data = work / "data"
    home = dagster_home(work / "dagster_home")
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    if max_runs is not None:
        config["concurrency"]["runs"]["max_concurrent_runs"] = max_runs
    if launcher == "default":
        config.pop("run_launcher")  # Dagster's: the code server spawns a Python per run
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
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
    result: dict = {
        "stores": count,
        "orders": sum(info["orders"].values()),
        "launcher": launcher,
    }
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
        fleet_proc = psutil.Process(fleet.pid)
        peak_sum = peak_one = peak_pss = 0
        last_pss = 0.0
        tick = fire.timestamp()
        cpu = CpuLedger(since=tick)
        os.environ["DAGSTER_HOME"] = str(home)
        import dagster as dg

        names = list(info["orders"])
        done: dict[str, float] = {}
        deadline = tick + 1800
        last_check = 0.0
        with dg.DagsterInstance.from_config(str(home)) as instance:
            while time.time() < deadline:
                procs = tree(root)
                total, largest = tree_rss(procs)
                peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
                if time.time() - last_pss >= 1:
                    peak_pss, last_pss = max(peak_pss, tree_pss(procs)), time.time()
                if time.time() > tick - 1:  # from a baseline of what runs at the tick
                    cpu.sample(procs)
                    cpu.sample([fleet_proc], "emulator")
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
                procs = tree(root)
                total, largest = tree_rss(procs)
                peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
                peak_pss = max(peak_pss, tree_pss(procs))
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
            peak_pss_mb_tree=round(peak_pss / 2**20),
            max_concurrent_runs=max_runs or 4,
            cpu_seconds_in_cycle=cpu.totals(),
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
    parser.add_argument(
        "--launcher",
        choices=["warm", "default", "both"],
        default="warm",
        help="the project's warm run launcher (dagster.yaml, the default a user gets), "
        "Dagster's default launcher, or both side by side",
    )
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument(
        "--record-as", metavar="SUFFIX", help="write results/stores_SUFFIX.md instead"
    )
    args = parser.parse_args()
    launchers = ["warm", "default"] if args.launcher == "both" else [args.launcher]
    results = [
        one_size(n, args.max_concurrent_runs, args.keep, launcher)
        for n in args.stores or (10, 30, 100)
        for launcher in launchers
    ]
    lines = [
        "# Many stores: the hourly cycle (real Dagster daemon)",
        "",
        f"Machine: {machine()}. `benchmarks/bench_stores.py`; stores of 1,000-5,000 orders;",
        "rate limit 10 requests/s per API per store (the default). Cycle: from the schedule's",
        "tick until every store's snapshot is published after it. RSS: the daemon's process",
        "tree (daemon, code server, run workers) summed, peak of 0.25 s samples; PSS: the",
        "same tree's proportional set size (shared pages counted once), 1 s samples. CPU: seconds",
        "used from the tick to the last store's publish, by the daemon's tree and the emulator.",
        "Launcher `warm` is the project's (dagster.yaml); `default` is Dagster's own.",
        "",
        "| stores | launcher | cycle | per store | runs at once | run median / max | "
        "all_stores after | peak RSS (tree / one process) | peak PSS (tree) | "
        "CPU s per store (runs / rest) | failed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        cycle = r["cycle_seconds"]
        cpu = r["cpu_seconds_in_cycle"]
        runs_cpu = cpu.get("run workers", 0.0) + cpu.get("other", 0.0)
        rest_cpu = sum(cpu.values()) - runs_cpu
        lines.append(
            f"| {r['stores']} | {r['launcher']} | {cycle} s | "
            f"{cycle / r['stores']:.2f} s | {r['max_concurrent_runs']} | "
            f"{r['run_seconds_median']} / {r['run_seconds_max']} s | "
            f"{_after(r['all_stores_after_last_store_seconds'])} | "
            f"{r['peak_rss_mb_tree']} / {r['peak_rss_mb_one_process']} MB | "
            f"{r['peak_pss_mb_tree']} MB | "
            f"{runs_cpu / r['stores']:.2f} / {rest_cpu / r['stores']:.2f} | "
            f"{len(r['failed_runs'])} |"
            if cycle is not None
            else f"| {r['stores']} | {r['launcher']} | not finished "
            f"({r['stores_published']} published) | | | | | | | | |"
        )
    by = {(r["stores"], r["launcher"]): r["cycle_seconds"] for r in results}
    ratios = [
        f"- {n} stores: the warm launcher's cycle is {by[n, 'warm'] / by[n, 'default']:.2f}x "
        "the default launcher's"
        for n in sorted({r["stores"] for r in results})
        if by.get((n, "warm")) and by.get((n, "default"))
    ]
    if ratios:
        lines += ["", *ratios]
    if not args.no_record:
        suffix = "" if args.max_concurrent_runs is None else f"_runs{args.max_concurrent_runs}"
        if args.record_as:
            suffix = f"_{args.record_as}"
        print(write_result(f"stores{suffix}", "\n".join(lines), {"results": results}))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
