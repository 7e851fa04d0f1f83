"""The warm run launcher (defs/run_launcher.py): runs forked from one warm worker, with the
instance a user gets (the project's dagster.yaml selects the launcher), against the emulator.
The daemon's own use of it is covered by test_e2e_daemon.py and benchmarks/bench_stores.py."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.launcher.base import LaunchRunContext, WorkerStatus
from dagster._core.storage.tags import PARTITION_NAME_TAG

from centra_pipeline.defs import run_launcher
from centra_pipeline.defs.jobs import IN_PROCESS_RUN_CONFIG, SYNC_JOB_NAME
from centra_pipeline.defs.run_launcher import PID_TAG, WarmRunLauncher, code_fingerprint
from centra_pipeline.emulator import Emulator
from centra_pipeline.settings import project_root
from centra_pipeline_tests.conftest import TZ, running_emulator
from centra_pipeline_tests.truth import table_differences, truth_tables

STARTED = re.compile(r"Run worker started \(pid (\d+), (.*)\)\.")


def launch(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """Create a sync run of the default store as the daemon would, and launch it."""
    from centra_pipeline.definitions import build_definitions

    repo = ReconstructableRepository.for_module(
        "centra_pipeline.definitions", "defs", working_directory=str(project_root())
    )
    origin = repo.get_reconstructable_job(SYNC_JOB_NAME).get_python_origin()
    run = instance.create_run_for_job(
        job_def=build_definitions().resolve_job_def(SYNC_JOB_NAME),
        job_code_origin=origin,
        run_config=IN_PROCESS_RUN_CONFIG,
        tags={PARTITION_NAME_TAG: "default"},
        status=dg.DagsterRunStatus.STARTING,
    )
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def wait(instance: dg.DagsterInstance, run_id: str, until, seconds: float = 180) -> dg.DagsterRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if until(run):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} is {run.status} after {seconds} s")


def started_how(instance: dg.DagsterInstance, run_id: str) -> tuple[int, str]:
    for record in instance.all_logs(run_id):
        found = STARTED.match(record.message or "")
        if found:
            return int(found.group(1)), found.group(2)
    raise AssertionError(f"run {run_id} has no 'Run worker started' engine event")


def snapshot_matches(emu: Emulator, data_dir: Path) -> dict:
    con = duckdb.connect(str(data_dir / "centra.duckdb"), read_only=True)
    try:
        return table_differences(con, truth_tables(emu, TZ))
    finally:
        con.close()


def finished(run: dg.DagsterRun) -> bool:
    return run.is_finished


def test_runs_fork_from_one_warm_worker_and_equal_the_api(centra_env, data_dir: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, WarmRunLauncher)  # what the project's dagster.yaml selects
        first = wait(instance, launch(instance).run_id, finished)
        assert first.status == dg.DagsterRunStatus.SUCCESS
        centra_env.tick(new_orders=20, new_returns=2, updated_customers=3, advance_seconds=3600)
        second = wait(instance, launch(instance).run_id, finished)
        assert second.status == dg.DagsterRunStatus.SUCCESS
        pids, hows = zip(*(started_how(instance, r.run_id) for r in (first, second)), strict=True)
        worker = launcher._worker.pid
        assert hows == (f"forked from the warm worker {worker}",) * 2  # one worker, reused
        assert len({*pids, worker}) == 3  # each run a process of its own
        assert [int(r.tags[PID_TAG]) for r in (first, second)] == list(pids)
        assert launcher.check_run_worker_health(second).status == WorkerStatus.SUCCESS
        assert snapshot_matches(centra_env, data_dir) == {}
    assert launcher._worker is None  # the instance's dispose let the worker go


def test_terminate_cancels_and_a_killed_run_worker_is_reported(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from centra_pipeline_tests.conftest import point_env_at

    with running_emulator(latency_ms=400) as emu, dg.DagsterInstance.get() as instance:
        point_env_at(emu, monkeypatch)
        launcher = instance.run_launcher

        def working(run: dg.DagsterRun) -> bool:
            return run.status == dg.DagsterRunStatus.STARTED and PID_TAG in run.tags

        cancelled = wait(instance, launch(instance).run_id, working)
        assert launcher.terminate(cancelled.run_id)
        assert wait(instance, cancelled.run_id, finished).status == dg.DagsterRunStatus.CANCELED
        assert not launcher.terminate(cancelled.run_id)  # already over

        killed = wait(instance, launch(instance).run_id, working)
        assert launcher.check_run_worker_health(killed).status == WorkerStatus.RUNNING
        os.kill(int(killed.tags[PID_TAG]), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while launcher.check_run_worker_health(killed).status == WorkerStatus.RUNNING:
            assert time.monotonic() < deadline, "the killed run worker still looks alive"
            time.sleep(0.1)
        health = launcher.check_run_worker_health(killed)
        assert health.status == WorkerStatus.FAILED and "exited" in health.msg


def test_a_worker_that_cannot_load_falls_back_to_a_new_process(
    centra_env, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_launcher, "_warm_module", lambda origin: "centra_pipeline.nowhere")
    with dg.DagsterInstance.get() as instance:
        run = wait(instance, launch(instance).run_id, finished)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        _, how = started_how(instance, run.run_id)
        assert how.startswith("in a new process: the warm worker did not load the project")
        assert how.endswith("ModuleNotFoundError: No module named 'centra_pipeline.nowhere'")
        assert snapshot_matches(centra_env, data_dir) == {}


def test_the_worker_follows_the_stores_file_and_only_this_projects_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = tmp_path / "stores.toml"
    stores.write_text("# no stores yet\n")
    monkeypatch.setenv("CENTRA_STORES_FILE", str(stores))
    before = code_fingerprint(str(project_root()))
    assert code_fingerprint(str(project_root())) == before
    later = time.time() + 5
    os.utime(stores, (later, later))
    assert code_fingerprint(str(project_root())) != before  # a new worker at the next launch
    repo = ReconstructableRepository.for_module(
        "centra_pipeline.definitions", "defs", working_directory=str(project_root())
    )
    origin = repo.get_reconstructable_job(SYNC_JOB_NAME).get_python_origin()
    assert run_launcher._warm_module(origin) == "centra_pipeline.definitions"
    other = ReconstructableRepository.for_module("dagster_test.toys.repo", "toys_repository")
    assert run_launcher._warm_module(other.get_reconstructable_job("x").get_python_origin()) is None
