"""Benchmark plumbing: an emulator in its own process, measured child processes (wall time and
peak RSS from the kernel's own accounting), and result files.

The emulator runs in a separate process so that it does not share a GIL with what is being
measured; each measured workload runs in a fresh child process so `ru_maxrss` is its own peak.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ORDER_KEY = "bench-order-key"
SHOP_KEY = "bench-shop-key"
TIMEZONE = "Europe/Stockholm"


@dataclass
class Emulator:
    base_url: str
    proc: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        return {
            "CENTRA_ORDER_API_URL": f"{self.base_url}/api/order",
            "CENTRA_ORDER_API_KEY": ORDER_KEY,
            "CENTRA_SHOP_API_URL": f"{self.base_url}/api/shop",
            "CENTRA_SHOP_API_KEY": SHOP_KEY,
            "CENTRA_TIMEZONE": TIMEZONE,
            "CENTRA_MAX_REQUESTS_PER_SECOND": "1000",
        }

    def cpu_seconds(self) -> float:
        """CPU time the emulator process has used so far (user + system): on a small machine
        it shares the cores with the pipeline it serves, which a real Centra does not."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/_emulator{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())


@contextmanager
def emulator(
    orders: int, customers: int, products: int, returns: int, seed: int = 7, latency_ms: int = 0
):
    command = [
        sys.executable,
        "-m",
        "centra_pipeline.cli",
        "emulator",
        "--port",
        "0",
        "--orders",
        str(orders),
        "--customers",
        str(customers),
        "--products",
        str(products),
        "--returns",
        str(returns),
        "--seed",
        str(seed),
        "--now",
        "2026-11-01 12:00:00",
        "--timezone",
        TIMEZONE,
        "--order-api-key",
        ORDER_KEY,
        "--shop-api-key",
        SHOP_KEY,
        "--latency-ms",
        str(latency_ms),
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    base = None
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"CENTRA_ORDER_API_URL=(http://[^/]+)/api/order", line)
        if match:
            base = match.group(1)
        if line.startswith("Serving"):
            break
    if base is None:
        proc.kill()
        raise RuntimeError("the emulator did not start")
    try:
        yield Emulator(base, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measured_rss(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> dict:
    """Like `measured`, with the child's own peak RSS from wait4()."""
    started = time.perf_counter()
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}-{time.time_ns()}"
    with open(out_path, "w+") as out, open(str(out_path) + ".err", "w+") as err:
        proc = subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    os.unlink(out_path)
    os.unlink(str(out_path) + ".err")
    if proc.returncode != 0:
        raise RuntimeError(f"{command} failed ({proc.returncode}):\n{stderr[-4000:]}")
    return {
        "seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "stdout": stdout,
        "stderr": stderr,
    }


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}"
    )


def dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME at `path` with the instance a user gets (the project's dagster.yaml:
    its storage, run queue and retries), storing everything under `path`."""
    from centra_pipeline.defs.instance_storage import project_instance_settings

    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(project_instance_settings(path))
    return path


def write_result(name: str, markdown: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(
        markdown + "\n\n```json\n" + json.dumps(data, indent=1, default=str) + "\n```\n"
    )
    return path
