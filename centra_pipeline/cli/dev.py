"""`centra-pipeline dev` (also `centra-pipeline demo --ui`): the whole product, live, locally.

1. the Centra emulator on loopback, with the demo's store (`emulated_store.store_config`: the
   same default size as `centra-pipeline demo`), sending signed order webhooks to
2. the webhook receiver (`centra-pipeline webhook-server`, a subprocess), which stores them in
   the inbox under CENTRA_DATA_DIR;
3. an initial full sync, so the UI has data and lineage to show;
4. `dagster dev` (webserver + daemon) with the sync schedule and the webhook sensor on;
5. the emulator ticking every few seconds: new orders, status moves of old orders, returns,
   customer and product changes. Each order change becomes a webhook, then a refresh run.

Ctrl-C, SIGTERM or a closed terminal stops everything, within seconds. The data directory is
prepared like the demo's (never mixed with a real store's data).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from centra_pipeline.cli.emulated_store import (
    add_store_arguments,
    emulator_env,
    prepare_data_dir,
    store_config,
)
from centra_pipeline.cli.supervisor import Children, Stopped, StopSignals, say
from centra_pipeline.settings import (
    CONNECTION_ENV,
    ENV_SYNC_CRON,
    ENV_SYNC_EXECUTOR,
    Settings,
)

if TYPE_CHECKING:
    from centra_pipeline.emulator import Emulator

DEFAULT_TICK_SECONDS = 5.0
DEFAULT_SYNC_CRON = "*/5 * * * *"
TICK = {
    "new_orders": 3,
    "updated_orders": 2,
    "new_returns": 1,
    "completed_returns": 1,
    "updated_customers": 1,
    "updated_products": 1,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_arguments(parser)
    add_live_arguments(parser)


def add_live_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the live setup (`demo` adds them for --ui)."""
    parser.add_argument(
        "--tick-every",
        type=float,
        default=DEFAULT_TICK_SECONDS,
        help=f"seconds between emulator ticks; 0 = never tick (default {DEFAULT_TICK_SECONDS:g})",
    )
    for option, default, what in (
        ("--ui-port", 3000, "Dagster UI"),
        ("--webhook-port", 8090, "webhook receiver"),
        ("--emulator-port", 8081, "emulator"),
    ):
        parser.add_argument(option, type=int, default=default, help=f"{what} port ({default})")
    parser.add_argument(
        "--sync-cron",
        default=DEFAULT_SYNC_CRON,
        help=f"schedule of the sync in the live demo (default '{DEFAULT_SYNC_CRON}')",
    )


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, stop: StopSignals) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL
                return
        except OSError:
            stop.pause(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _live_env(emu: Emulator, settings: Settings, secret: str, sync_cron: str) -> dict[str, str]:
    env = {
        **os.environ,
        **emulator_env(emu, settings, webhook_secret=secret),
        ENV_SYNC_CRON: sync_cron,
        # The emulator shares this machine's cores: one process per sync run is faster
        # here than a process per stream (see defs/jobs.py).
        ENV_SYNC_EXECUTOR: "in_process",
    }
    os.environ.update(env)  # for the initial sync, which runs in this process
    print(f"emulator: {emu.base_url} ({emu.config.orders:,} orders); its throw-away keys:")
    for name in CONNECTION_ENV:
        print(f"  {name}={env[name]}")
    return env


def _start_receiver(children: Children, port: int, env: dict[str, str], stop: StopSignals) -> None:
    receiver = children.start(
        "webhook receiver",
        ["centra_pipeline.cli", "webhook-server", "--host", "127.0.0.1", "--port", str(port)],
        env,
    )
    _wait_http(f"http://127.0.0.1:{port}/healthz", 30, receiver, stop)
    print(f"webhook receiver: http://127.0.0.1:{port}/webhooks/centra")


def _initial_sync(stop: StopSignals) -> None:
    """A full sync, so the UI has data and lineage to show. It runs in a thread so that the
    main thread notices a stop signal; a run cut short is as safe as a crashed one."""
    from centra_pipeline.cli.runs import print_summary, run_sync

    print("initial full sync ...")
    outcome: dict[str, Any] = {}

    def sync() -> None:
        try:
            outcome["summary"] = run_sync()
        except BaseException as exc:  # re-raised in the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=sync, name="initial-sync", daemon=True)
    worker.start()
    while worker.is_alive():
        stop.pause(0.25)
    if "error" in outcome:
        raise outcome["error"]
    print_summary(outcome["summary"])


class InFlightRuns:
    """The runs that our `dagster dev` still hosts when it stops (forked from the warm worker
    its daemon started, or, under Dagster's own launcher, children of its code server). They
    run on until they end, and a killed run stays STARTED in the instance, holding the
    warehouse writers' concurrency slot so that no later sync or refresh starts. So they are
    cancelled first (an interrupted step may wait out its retry delay), and those whose
    worker had to be killed are then recorded as cancelled."""

    def __init__(self, since: float) -> None:
        self.since = datetime.fromtimestamp(since, UTC)
        self.cancelled: list[str] = []

    def cancel(self) -> None:
        import dagster as dg
        from dagster._core.storage.tags import GRPC_INFO_TAG

        from centra_pipeline.cli.runs import dagster_instance
        from centra_pipeline.defs.run_launcher import PID_TAG

        in_flight = dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
            created_after=self.since,
        )
        with dagster_instance() as instance:
            for run in instance.get_runs(filters=in_flight):
                # Launched by our daemon (a warm worker's fork, or the code server's child
                # under Dagster's own launcher); a CLI sync runs in a process of its own.
                if GRPC_INFO_TAG not in run.tags and PID_TAG not in run.tags:
                    continue
                self.cancelled.append(run.run_id)
                try:
                    instance.run_launcher.terminate(run.run_id)
                except Exception as exc:
                    say(f"could not cancel run {run.run_id}: {exc}")

    def record_killed(self) -> None:
        if not self.cancelled:
            return
        from centra_pipeline.cli.runs import dagster_instance

        try:
            with dagster_instance() as instance:
                for run_id in self.cancelled:
                    run = instance.get_run_by_id(run_id)
                    if run is not None and not run.is_finished:
                        instance.report_run_canceled(
                            run, "its worker was killed when centra-pipeline dev stopped"
                        )
        except Exception as exc:  # everything has stopped: report, and exit all the same
            say(f"could not record the cancelled runs {', '.join(self.cancelled)}: {exc}")


def _start_dagster(children: Children, port: int, env: dict[str, str], stop: StopSignals) -> None:
    dagster = children.start(
        "dagster dev",
        ["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        env,
    )
    _wait_http(f"http://127.0.0.1:{port}/server_info", 120, dagster, stop)


@contextmanager
def _ticking(emu: Emulator, every: float) -> Iterator[None]:
    """The emulator's store changing every `every` seconds (0: never), until the block ends."""
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            try:
                result = emu.tick(**TICK)
            except Exception as exc:
                print(f"tick failed: {exc}", file=sys.stderr)
                continue
            changed = len(result.get("new_order_ids", [])) + len(
                result.get("updated_order_ids", [])
            )
            print(f"tick at {result.get('now')}: {changed} orders changed → webhooks", flush=True)

    ticker = threading.Thread(target=tick, name="emulator-ticker", daemon=True)
    if every > 0:
        ticker.start()
    try:
        yield
    finally:
        done.set()
        if ticker.is_alive():
            ticker.join(5)


def _print_welcome(args: argparse.Namespace, settings: Settings) -> None:
    print(
        f"\nDagster UI: http://127.0.0.1:{args.ui_port}  (Ctrl-C stops everything)",
        flush=True,
    )
    print(
        f"  sync schedule: centra_sync_schedule ({args.sync_cron} in this demo); "
        "webhook sensor: centra_order_webhook_sensor"
    )
    print(f"  analyst snapshot: {settings.snapshot_path}\n")


def _serve(
    args: argparse.Namespace, emu: Emulator, settings: Settings, secret: str, stop: StopSignals
) -> int:
    """Start the receiver, sync, start Dagster, tick; return 1 when a child exits, or raise
    Stopped. What it started is stopped on the way out, however it leaves."""
    children = Children()
    dagster_started: float | None = None
    try:
        stop.check()
        env = _live_env(emu, settings, secret, args.sync_cron)
        _start_receiver(children, args.webhook_port, env, stop)
        _initial_sync(stop)
        dagster_started = time.time()
        _start_dagster(children, args.ui_port, env, stop)
        with _ticking(emu, args.tick_every):
            _print_welcome(args, settings)
            while not children.any_exited():
                stop.pause(0.5)
        say("a child process exited; stopping")
        return 1
    finally:
        if stop.received is not None:
            say("\nstopping ...", sys.stdout)
        runs = InFlightRuns(dagster_started) if dagster_started is not None else None
        children.stop(leftovers=runs.cancel if runs else None)
        if runs is not None:
            runs.record_killed()


def run(args: argparse.Namespace) -> int:
    from centra_pipeline.emulator import Emulator

    settings = Settings.from_env()
    problem = prepare_data_dir(settings)
    if problem:
        print(f"centra-pipeline: {problem}", file=sys.stderr)
        return 2
    secret = secrets.token_hex(16)
    webhook_url = f"http://127.0.0.1:{args.webhook_port}/webhooks/centra"
    config = store_config(
        args, port=args.emulator_port, webhook_url=webhook_url, webhook_secret=secret
    )
    stop = StopSignals()
    with stop.installed(), Emulator(config) as emu:
        try:
            return _serve(args, emu, settings, secret, stop)
        except Stopped:
            return 0
