"""The Dagster UI as a user sees it, after one `centra-pipeline sync`: a real
`dagster-webserver` subprocess on loopback, asked through its GraphQL API (POST /graphql, the
API the UI's browser code calls) with the same fields the UI's own queries read (asset graph,
live asset status, asset checks, overview metadata, schedules and sensors).

One emulator, one sync and one webserver serve every test in this module."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from centra_pipeline_tests.conftest import (
    TZ,
    WEBHOOK_SECRET,
    isolated_dagster_home,
    running_emulator,
)

pytestmark = pytest.mark.slow

SYNC_CRON = "*/5 * * * *"
WEBSERVER_TIMEOUT = 120
ENDPOINTS = [
    "centra/order_api/orders",
    "centra/order_api/returns",
    "centra/order_api/customers",
    "centra/order_api/products",
    "centra/order_api/stock",
    "centra/shop_api/catalogue",
]


# --- GraphQL ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def key(path: str) -> dict[str, list[str]]:
    return {"path": path.split("/")}


def path_of(asset_key: dict[str, Any]) -> str:
    return "/".join(asset_key["path"])


def show(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)[:20000]


@dataclass
class Ui:
    url: str
    run_id: str
    log: Path

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of a GraphQL answer; fails with the whole answer on any error."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"GraphQL HTTP {exc.code}: {exc.read()[:5000]!r}") from exc
        assert not body.get("errors"), f"GraphQL errors:\n{show(body)}"
        return body["data"]


def metadata(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Metadata entries by label, with the value the UI renders."""
    values: dict[str, Any] = {}
    for entry in entries:
        kind = entry["__typename"]
        if kind == "IntMetadataEntry":
            values[entry["label"]] = entry["intValue"]
        elif kind == "FloatMetadataEntry":
            values[entry["label"]] = entry["floatValue"]
        elif kind == "TextMetadataEntry":
            values[entry["label"]] = entry["text"]
        elif kind == "JsonMetadataEntry":
            values[entry["label"]] = json.loads(entry["jsonString"])
        elif kind == "PathMetadataEntry":
            values[entry["label"]] = entry["path"]
        else:
            values[entry["label"]] = entry
    return values


METADATA_FRAGMENT = """
fragment MetadataEntryFragment on MetadataEntry {
  __typename
  label
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on TextMetadataEntry { text }
  ... on JsonMetadataEntry { jsonString }
  ... on PathMetadataEntry { path }
}
"""

# What the asset overview page asks for (the UI's AssetOverviewMetadataEventsQuery).
OVERVIEW_EVENTS = (
    METADATA_FRAGMENT
    + """
query AssetOverviewMetadataEventsQuery($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) {
        timestamp runId metadataEntries { ...MetadataEntryFragment }
      }
      assetObservations(limit: 1) {
        timestamp runId metadataEntries { ...MetadataEntryFragment }
      }
    }
  }
}
"""
)

# The live status of asset nodes (the UI's AssetGraphLiveQuery / AssetNodeLiveFragment), with
# the definition fields the status components read and the checks' blocking flag.
LIVE = (
    METADATA_FRAGMENT
    + """
query AssetGraphLiveQuery($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys, loadMaterializations: true) {
    assetKey { path }
    isObservable
    isMaterializable
    owners {
      __typename
      ... on TeamAssetOwner { team }
      ... on UserAssetOwner { email }
    }
    assetMaterializations(limit: 1) { timestamp runId stepKey }
    assetObservations(limit: 1) {
      timestamp runId stepKey metadataEntries { ...MetadataEntryFragment }
    }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          blocking
          executionForLatestMaterialization {
            runId
            status
            evaluation { severity success description }
          }
        }
      }
    }
  }
  assetsLatestInfo(assetKeys: $assetKeys) {
    assetKey { path }
    latestMaterialization { timestamp runId }
    inProgressRunIds
    unstartedRunIds
  }
}
"""
)


def overview_status(node: dict[str, Any], latest: dict[str, Any]) -> str:
    """The "Latest materialization/observation" status on the asset's overview page, by the
    rules of the UI's SimpleStakeholderAssetStatus."""
    if latest.get("inProgressRunIds"):
        return "Materializing"
    materialization = (node["assetMaterializations"] or [None])[0]
    observation = (node["assetObservations"] or [None])[0]
    if materialization:
        return f"Materialized {materialization['timestamp']}"
    if observation and node["isObservable"]:
        return f"Observed {observation['timestamp']}"
    return "Never observed" if node["isObservable"] else "Never materialized"


def graph_status(node: dict[str, Any]) -> str:
    """The status line of a source asset's node in the asset graph (AssetNodeStatusContent)."""
    observation = (node["assetObservations"] or [None])[0]
    if observation:
        return f"Observed {observation['timestamp']}"
    return "Never observed" if node["isObservable"] else "–"


def live(ui: Ui, paths: list[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    data = ui.query(LIVE, {"assetKeys": [key(p) for p in paths]})
    nodes = {path_of(n["assetKey"]): n for n in data["assetNodes"]}
    latest = {path_of(i["assetKey"]): i for i in data["assetsLatestInfo"]}
    assert set(nodes) == set(paths), f"asked for {paths}, the UI has:\n{show(data)}"
    return {p: (nodes[p], latest.get(p, {})) for p in paths}


def checks_of(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = node["assetChecksOrError"]
    assert found["__typename"] == "AssetChecks", show(found)
    return {c["name"]: c for c in found["checks"]}


# --- the running UI --------------------------------------------------------------------------
def pipeline_env(emu: Any, data: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRA_")}
    env.update(
        {
            "CENTRA_ORDER_API_URL": emu.order_api_url,
            "CENTRA_ORDER_API_KEY": emu.order_api_key,
            "CENTRA_SHOP_API_URL": emu.shop_api_url,
            "CENTRA_SHOP_API_KEY": emu.shop_api_key,
            "CENTRA_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CENTRA_MAX_REQUESTS_PER_SECOND": "1000",
            "CENTRA_TIMEZONE": TZ,
            "CENTRA_DATA_DIR": str(data),
            "CENTRA_SYNC_CRON": SYNC_CRON,
            "DAGSTER_HOME": str(home),
        }
    )
    return env


def wait_until_loaded(ui: Ui, proc: subprocess.Popen) -> None:
    """Until the webserver answers GraphQL and its code location has loaded."""
    deadline = time.monotonic() + WEBSERVER_TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, (
            f"dagster-webserver exited with {proc.returncode}:\n{ui.log.read_text()[-5000:]}"
        )
        try:
            data = ui.query(
                """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                     name loadStatus
                     locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
            )
        except (OSError, AssertionError) as exc:  # not listening yet
            last = exc
            time.sleep(1)
            continue
        last = data
        entries = data["workspaceOrError"].get("locationEntries") or []
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            errors = [
                e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"
            ]
            assert not errors, f"code location failed to load:\n{show(errors)}"
            return
        time.sleep(1)
    raise AssertionError(
        f"dagster-webserver not ready in {WEBSERVER_TIMEOUT} s; last answer: {last}\n"
        + ui.log.read_text()[-5000:]
    )


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    tmp = tmp_path_factory.mktemp("ui")
    data = tmp / "data"
    data.mkdir()
    home = isolated_dagster_home(tmp / "dagster_home")
    with running_emulator() as emu:
        env = pipeline_env(emu, data, home)
        started = time.monotonic()
        sync = subprocess.run(
            [sys.executable, "-m", "centra_pipeline.cli", "sync"],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sync.returncode == 0, f"sync failed:\n{sync.stdout[-5000:]}\n{sync.stderr[-5000:]}"
        print(f"sync: {time.monotonic() - started:.1f} s")

        port = free_port()
        log = tmp / "webserver.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dagster_webserver",
                    "-m",
                    "centra_pipeline.definitions",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                env=env,
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            ui = Ui(url=f"http://127.0.0.1:{port}", run_id="", log=log)
            started = time.monotonic()
            wait_until_loaded(ui, proc)
            print(f"webserver: ready in {time.monotonic() - started:.1f} s")
            runs = ui.query(
                "{ runsOrError { __typename ... on Runs { results { runId jobName status } } } }"
            )["runsOrError"]
            assert runs["__typename"] == "Runs", show(runs)
            assert [(r["jobName"], r["status"]) for r in runs["results"]] == [
                ("centra_sync", "SUCCESS")
            ], f"the UI's run list after one sync:\n{show(runs)}"
            ui.run_id = runs["results"][0]["runId"]
            yield ui
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ProcessLookupError):  # its code server, if still there
                os.killpg(proc.pid, signal.SIGKILL)


def the_repository(ui: Ui) -> tuple[dict[str, Any], dict[str, str]]:
    """The one repository the workspace holds, and its selector."""
    found = ui.query(
        """{ repositoriesOrError { __typename ... on RepositoryConnection {
             nodes { name location { name } jobs { name } } } } }"""
    )["repositoriesOrError"]
    assert found["__typename"] == "RepositoryConnection" and len(found["nodes"]) == 1, show(found)
    (repository,) = found["nodes"]
    selector = {
        "repositoryName": repository["name"],
        "repositoryLocationName": repository["location"]["name"],
    }
    return repository, selector


# --- what the UI shows -----------------------------------------------------------------------
def test_asset_graph_lineage_and_groups(ui: Ui) -> None:
    data = ui.query(
        """query AssetGraphQuery {
             assetNodes { assetKey { path } groupName dependencyKeys { path }
                          dependedByKeys { path } }
             repositoriesOrError { __typename ... on RepositoryConnection {
               nodes { name assetGroups { groupName } } } }
           }"""
    )
    nodes = {path_of(n["assetKey"]): n for n in data["assetNodes"]}
    deps = {p: {path_of(k) for k in n["dependencyKeys"]} for p, n in nodes.items()}
    groups = {p: n["groupName"] for p, n in nodes.items()}
    context = show({p: {"group": groups[p], "deps": sorted(d)} for p, d in deps.items()})

    assert "lake/orders" in deps["warehouse/orders"], context
    assert "centra/order_api/orders" in deps["lake/orders"], context
    assert "warehouse/orders" in {path_of(k) for k in nodes["lake/orders"]["dependedByKeys"]}
    warehouse = {p for p in nodes if p.startswith("warehouse/")}
    assert len(warehouse) >= 6, context
    assert warehouse <= deps["analyst/centra_duckdb"], (
        f"not upstream of the snapshot: {sorted(warehouse - deps['analyst/centra_duckdb'])}\n"
        + context
    )

    assert set(groups.values()) == {"centra_order_api", "centra_shop_api", "analyst"}, context
    (repository,) = data["repositoriesOrError"]["nodes"]
    assert {g["groupName"] for g in repository["assetGroups"]} == {
        "centra_order_api",
        "centra_shop_api",
        "analyst",
    }, show(repository)
    for endpoint in ENDPOINTS:
        api = endpoint.split("/")[1]
        assert groups[endpoint] == f"centra_{api}", context
    assert groups["warehouse/orders"] == groups["lake/orders"] == "centra_order_api", context
    assert groups["warehouse/shop_products"] == "centra_shop_api", context
    assert groups["analyst/centra_duckdb"] == "analyst", context


def test_check_statuses_of_orders_and_order_lines(ui: Ui) -> None:
    found = live(ui, ["warehouse/orders", "warehouse/order_lines"])
    orders = checks_of(found["warehouse/orders"][0])
    lines = checks_of(found["warehouse/order_lines"][0])
    context = show({"warehouse/orders": orders, "warehouse/order_lines": lines})

    unique = orders["primary_key_unique"]
    assert unique["blocking"] is True, context
    execution = unique["executionForLatestMaterialization"]
    assert execution and execution["status"] == "SUCCEEDED", context
    assert execution["runId"] == ui.run_id, context
    assert execution["evaluation"]["success"] is True, context

    drift = orders["schema_drift"]["executionForLatestMaterialization"]
    assert drift and drift["status"] == "FAILED", context
    assert drift["evaluation"]["severity"] == "WARN", context
    assert drift["evaluation"]["success"] is False, context
    assert "order_attr_external_id" in (drift["evaluation"]["description"] or ""), context
    assert orders["schema_drift"]["blocking"] is False, context

    references = lines["references_orders"]["executionForLatestMaterialization"]
    assert references and references["status"] == "SUCCEEDED", context
    assert references["runId"] == ui.run_id, context
    assert references["evaluation"]["success"] is True, context


def test_schedules(ui: Ui) -> None:
    _, selector = the_repository(ui)
    data = ui.query(
        """query($repo: RepositorySelector!, $sync: ScheduleSelector!) {
             schedulesOrError(repositorySelector: $repo) { __typename
               ... on Schedules { results { name cronSchedule pipelineName } } }
             scheduleOrError(scheduleSelector: $sync) { __typename
               ... on Schedule { name cronSchedule executionTimezone description pipelineName }
               ... on PythonError { message } }
           }""",
        {"repo": selector, "sync": {**selector, "scheduleName": "centra_sync_schedule"}},
    )
    schedules = {s["name"]: s for s in data["schedulesOrError"]["results"]}
    assert {"centra_sync_schedule", "centra_reconcile"} <= set(schedules), show(data)
    sync = data["scheduleOrError"]
    assert sync["__typename"] == "Schedule", show(data)
    assert sync["cronSchedule"] == SYNC_CRON, show(sync)
    assert "every 5 minutes" in (sync["description"] or ""), show(sync)
    assert sync["pipelineName"] == "centra_sync", show(sync)


def test_endpoints_were_observed_and_have_owners(ui: Ui) -> None:
    found = live(ui, ENDPOINTS)
    shown = {
        p: {
            "overview": overview_status(node, latest),
            "graph": graph_status(node),
            "isObservable": node["isObservable"],
            "isMaterializable": node["isMaterializable"],
            "owners": node["owners"],
            "latest_observation": [
                {**o, "metadataEntries": metadata(o["metadataEntries"])}
                for o in node["assetObservations"]
            ],
        }
        for p, (node, latest) in found.items()
    }
    context = show(shown)
    for path, (node, _) in found.items():
        observation = (node["assetObservations"] or [None])[0]
        assert observation, f"{path} has no observation after the sync\n{context}"
        assert observation["runId"] == ui.run_id, context
        assert metadata(observation["metadataEntries"])["records_read"] > 0, context
        assert node["owners"], f"{path} has no owners\n{context}"
        assert all(o.get("team") or o.get("email") for o in node["owners"]), context
        assert shown[path]["graph"].startswith("Observed"), context
    never = {
        p: s["overview"]
        for p, s in shown.items()
        if s["overview"] in ("Never materialized", "Never observed")
    }
    assert not never, (
        f"the asset overview pages say {never} although each endpoint was observed (the UI "
        "shows an observation there only for isObservable assets; otherwise, without a "
        f"materialization, 'Never materialized')\n{context}"
    )


def test_snapshot_row_counts(ui: Ui) -> None:
    snapshot = ui.query(OVERVIEW_EVENTS, {"assetKey": key("analyst/centra_duckdb")})
    events = snapshot["assetOrError"]["assetMaterializations"]
    assert events, show(snapshot)
    assert events[0]["runId"] == ui.run_id, show(snapshot)
    meta = metadata(events[0]["metadataEntries"])
    rows = {label: value for label, value in meta.items() if label.startswith("rows/")}
    assert {"rows/orders", "rows/customers"} <= set(rows), show(meta)
    assert all(isinstance(v, int) for v in rows.values()), show(meta)
    assert rows["rows/orders"] > 0 and rows["rows/customers"] > 0, show(meta)
    assert meta["dagster/row_count"] == sum(rows.values()), show(meta)

    orders = ui.query(OVERVIEW_EVENTS, {"assetKey": key("warehouse/orders")})
    (materialization,) = orders["assetOrError"]["assetMaterializations"]
    table_rows = metadata(materialization["metadataEntries"])["dagster/row_count"]
    assert rows["rows/orders"] == table_rows, show({"snapshot": meta, "orders": orders})


def test_orders_cursor_after_names_store_timezone_and_utc(ui: Ui) -> None:
    data = ui.query(OVERVIEW_EVENTS, {"assetKey": key("warehouse/orders")})
    events = data["assetOrError"]["assetMaterializations"]
    assert events and events[0]["runId"] == ui.run_id, show(data)
    meta = metadata(events[0]["metadataEntries"])
    cursor = meta.get("cursor_after")
    assert isinstance(cursor, str), show(meta)
    assert TZ in cursor and "UTC" in cursor, f"cursor_after = {cursor!r}\n{show(meta)}"


def test_sensors(ui: Ui) -> None:
    repository, selector = the_repository(ui)
    query = """query($sensor: SensorSelector!) {
                 sensorOrError(sensorSelector: $sensor) { __typename
                   ... on Sensor { name description targets { pipelineName } }
                   ... on PythonError { message } } }"""
    sensors = {}
    for name in ("centra_order_webhook_sensor", "centra_freshness_checks_sensor"):
        sensor = ui.query(query, {"sensor": {**selector, "sensorName": name}})["sensorOrError"]
        assert sensor["__typename"] == "Sensor", show(sensor)
        assert (sensor["description"] or "").strip(), show(sensor)
        sensors[name] = sensor
    # The freshness sensor records its evaluations itself; its job is for "evaluate now".
    assert not sensors["centra_freshness_checks_sensor"]["targets"], show(sensors)
    assert "centra_freshness_checks" in {j["name"] for j in repository["jobs"]}, show(repository)
    webhook_targets = [t["pipelineName"] for t in sensors["centra_order_webhook_sensor"]["targets"]]
    assert webhook_targets == ["centra_order_refresh"], show(sensors)
