"""`centra-pipeline dev` (also `centra-pipeline demo --ui`): the whole product, live, locally.

1. the Centra emulator on loopback, with the demo's store (`demo.store_config`: the same
   default size as `centra-pipeline demo`), sending signed order webhooks to
2. the webhook receiver (`centra-pipeline webhook-server`, a subprocess), which stores them in
   the inbox under CENTRA_DATA_DIR;
3. an initial full sync, so the UI has data and lineage to show;
4. `dagster dev` (webserver + daemon) with the sync schedule and the webhook sensor on;
5. the emulator ticking every few seconds: new orders, status moves of old orders, returns,
   customer and product changes. Each order change becomes a webhook, then a refresh run.

Ctrl-C stops everything. The data directory is prepared like the demo's (never mixed with a
real store's data).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from centra_pipeline.settings import Settings, project_root

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
    if not any(a.dest == "orders" for a in parser._actions):  # `demo` has added them already
        from centra_pipeline.cli.demo import add_store_arguments

        add_store_arguments(parser)
    parser.add_argument(
        "--tick-every",
        type=float,
        default=DEFAULT_TICK_SECONDS,
        help=f"seconds between emulator ticks; 0 = never tick (default {DEFAULT_TICK_SECONDS:g})",
    )
    parser.add_argument("--ui-port", type=int, default=3000, help="Dagster UI port (3000)")
    parser.add_argument(
        "--webhook-port", type=int, default=8090, help="webhook receiver port (8090)"
    )
    parser.add_argument("--emulator-port", type=int, default=8081, help="emulator port (8081)")
    parser.add_argument(
        "--sync-cron",
        default=DEFAULT_SYNC_CRON,
        help=f"schedule of the sync in the live demo (default '{DEFAULT_SYNC_CRON}')",
    )


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in 20 s; killing it", file=sys.stderr)
        proc.kill()
        proc.wait()


def run(args: argparse.Namespace) -> int:
    from centra_pipeline.cli.demo import _prepare_data_dir, emulator_env, store_config
    from centra_pipeline.cli.runs import print_summary, run_sync
    from centra_pipeline.emulator import Emulator

    settings = Settings.from_env()
    problem = _prepare_data_dir(settings)
    if problem:
        print(f"centra-pipeline: {problem}", file=sys.stderr)
        return 2
    # Stop cleanly on Ctrl-C and on SIGTERM (service managers, `kill`), even when started
    # from a shell that made this process ignore SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    secret = secrets.token_hex(16)
    webhook_url = f"http://127.0.0.1:{args.webhook_port}/webhooks/centra"
    config = store_config(
        args, port=args.emulator_port, webhook_url=webhook_url, webhook_secret=secret
    )
    receiver = dagster = None
    stop = threading.Event()
    with Emulator(config) as emu:
        env = {
            **os.environ,
            **emulator_env(emu, settings),
            "CENTRA_WEBHOOK_SECRET": secret,
            "CENTRA_SYNC_CRON": args.sync_cron,
            # The emulator shares this machine's cores: one process per sync run is faster
            # here than a process per stream (see defs/jobs.py).
            "CENTRA_SYNC_EXECUTOR": "in_process",
        }
        os.environ.update(env)
        try:
            print(f"emulator: {emu.base_url} ({config.orders:,} orders); its throw-away keys:")
            for name in (
                "CENTRA_ORDER_API_URL",
                "CENTRA_ORDER_API_KEY",
                "CENTRA_SHOP_API_URL",
                "CENTRA_SHOP_API_KEY",
            ):
                print(f"  {name}={env[name]}")
            receiver = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "centra_pipeline.cli",
                    "webhook-server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(args.webhook_port),
                ],
                env=env,
                cwd=project_root(),
            )
            _wait_http(f"http://127.0.0.1:{args.webhook_port}/healthz", 30, receiver)
            print(f"webhook receiver: {webhook_url}")
            print("initial full sync ...")
            summary = run_sync()
            print_summary(summary)
            dagster = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dagster",
                    "dev",
                    "-w",
                    "workspace.yaml",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(args.ui_port),
                ],
                env=env,
                cwd=project_root(),
            )
            _wait_http(f"http://127.0.0.1:{args.ui_port}/server_info", 120, dagster)

            def ticker() -> None:
                while not stop.wait(args.tick_every):
                    try:
                        result = emu.tick(**TICK)
                    except Exception as exc:
                        print(f"tick failed: {exc}", file=sys.stderr)
                        continue
                    changed = len(result.get("new_order_ids", [])) + len(
                        result.get("updated_order_ids", [])
                    )
                    print(
                        f"tick at {result.get('now')}: {changed} orders changed → webhooks",
                        flush=True,
                    )

            if args.tick_every > 0:
                threading.Thread(target=ticker, name="emulator-ticker", daemon=True).start()
            print(
                f"\nDagster UI: http://127.0.0.1:{args.ui_port}  (Ctrl-C stops everything)",
                flush=True,
            )
            print(
                f"  sync schedule: centra_hourly_sync ({args.sync_cron} in this demo); "
                "webhook sensor: centra_order_webhook_sensor"
            )
            print(f"  analyst snapshot: {settings.snapshot_path}\n")
            while dagster.poll() is None and receiver.poll() is None:
                time.sleep(0.5)
            print("a child process exited; stopping", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopping ...")
            return 0
        finally:
            stop.set()
            _stop(dagster, "dagster dev")
            _stop(receiver, "webhook receiver")
