"""A whole sync through Dagster's real execution: six streams read at once, several
connections each, and Centra never sees more than CENTRA_MAX_REQUESTS_PER_SECOND of either
API in any second (judged from the emulator's own log of when requests arrived)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from centra_pipeline.definitions import defs
from centra_pipeline.defs.jobs import SYNC_JOB_NAME, sync_run_config
from centra_pipeline.emulator.request_log import busiest_window

from .conftest import NOW, ORDER_KEY, SHOP_KEY, TZ, emulator_process, requests_seen

RATE = 15


@pytest.fixture
def remote_env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    options = ("--orders", "3000", "--customers", "800", "--products", "40", "--seed", "5")
    with emulator_process(*options, "--now", NOW, "--timezone", TZ) as base:
        monkeypatch.setenv("CENTRA_ORDER_API_URL", f"{base}/api/order")
        monkeypatch.setenv("CENTRA_ORDER_API_KEY", ORDER_KEY)
        monkeypatch.setenv("CENTRA_SHOP_API_URL", f"{base}/api/shop")
        monkeypatch.setenv("CENTRA_SHOP_API_KEY", SHOP_KEY)
        monkeypatch.setenv("CENTRA_MAX_REQUESTS_PER_SECOND", str(RATE))
        yield base


def test_a_sync_of_six_streams_never_exceeds_the_limit_centra_sees(remote_env: str) -> None:
    since = time.time()
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def(SYNC_JOB_NAME)
        result = job.execute_in_process(
            run_config={"ops": sync_run_config(page_size=40)},
            instance=instance,
            partition_key="default",
        )
        assert result.success
    seen = requests_seen(remote_env, since)
    assert len(seen["order"]) > 4 * RATE  # long enough for the limit to bind
    assert busiest_window(seen["order"]) <= RATE
    assert busiest_window(seen["shop"]) <= RATE
    # Both APIs were read at once, each at its own limit.
    first_shop, last_order = min(seen["shop"]), max(seen["order"])
    assert first_shop < last_order
