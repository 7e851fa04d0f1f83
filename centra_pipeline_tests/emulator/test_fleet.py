"""Several stores from one process and one port (`emulator.fleet`), over real HTTP: each
under /stores/<name>, each with its own data, keys, clock, faults, counts and webhooks."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from centra_pipeline.centra.webhook import decode_payload, parse_events, verify_signature
from centra_pipeline.cli.main import main
from centra_pipeline.emulator import Emulator, EmulatorConfig, Fleet, cli, fleet_configs
from centra_pipeline.emulator.fleet import store_names, store_secret_env, stores_file_text

from .conftest import NOW, Client, make_config

AUTH_FAILED = {"status": "no", "msg": "Authorization failed"}


def _fleet() -> Fleet:
    return Fleet(fleet_configs(3, now=NOW, orders=(60, 300)))


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """Read-only: do not tick or change faults through it."""
    with _fleet() as running:
        yield running


@pytest.fixture
def fresh_fleet() -> Iterator[Fleet]:
    with _fleet() as running:
        yield running


def _orders(emu: Emulator, key: str | None = None) -> requests.Response:
    return requests.get(
        emu.order_api_url + "/orders",
        params={"limit": 5000},
        headers={"API-Authorization": key or emu.order_api_key},
        timeout=30,
    )


def _stats(emu: Emulator) -> dict[str, Any]:
    return requests.get(emu.base_url + "/_emulator/stats", timeout=30).json()


def test_three_different_stores_share_one_port_each_under_its_own_path(fleet: Fleet) -> None:
    assert fleet.names == ["store-01", "store-02", "store-03"]
    assert fleet.base_url == f"http://127.0.0.1:{fleet.port}"
    for name, emu in fleet.stores.items():
        assert emu.port == fleet.port
        assert emu.base_url == f"{fleet.base_url}/stores/{name}"
        assert emu.order_api_url == f"{fleet.base_url}/stores/{name}/api/order"
        assert emu.shop_api_url == f"{fleet.base_url}/stores/{name}/api/shop"
    configs = [emu.config for emu in fleet.stores.values()]
    assert [c.orders for c in configs] == [60, 180, 300]
    assert [c.seed for c in configs] == [7, 8, 9]
    assert [c.timezone for c in configs] == ["Europe/Stockholm", "America/New_York", "Asia/Tokyo"]
    keys = {k for emu in fleet.stores.values() for k in (emu.order_api_key, emu.shop_api_key)}
    assert len(keys) == 6


def test_each_store_answers_only_its_own_keys(fleet: Fleet) -> None:
    for emu in fleet.stores.values():
        for other in fleet.stores.values():
            response = _orders(emu, other.order_api_key)
            if other is emu:
                assert response.status_code == 200 and response.json()["status"] == "ok"
            else:
                assert (response.status_code, response.json()) == (401, AUTH_FAILED)
        shop = Client(emu)
        assert shop.shop("/products", key=emu.shop_api_key).status_code == 200
        wrong = next(o for o in fleet.stores.values() if o is not emu).shop_api_key
        assert shop.shop("/products", key=wrong).status_code == 401
        assert shop.shop("/products", key=emu.order_api_key).status_code == 401


def test_order_counts_differ_and_equal_each_stores_stats(fleet: Fleet) -> None:
    counts = {}
    for name, emu in fleet.stores.items():
        orders = _orders(emu).json()["orders"]
        stats = _stats(emu)
        assert len(orders) == stats["orders"]["visible"] == emu.store.counts()["orders_visible"]
        assert stats["orders"]["total"] == emu.config.orders
        assert stats["customers"] == emu.config.customers
        counts[name] = len(orders)
    assert len(set(counts.values())) == 3
    # Each store's Date header is its own clock: one local time, three timezones.
    dates = {_orders(emu).headers["Date"] for emu in fleet.stores.values()}
    assert len(dates) == 3


def test_a_tick_on_one_store_changes_only_that_store(fresh_fleet: Fleet) -> None:
    before = {name: _stats(emu) for name, emu in fresh_fleet.stores.items()}
    target = fresh_fleet.stores["store-02"]
    response = requests.post(
        target.base_url + "/_emulator/tick",
        json={"new_orders": 7, "updated_orders": 3, "advance_seconds": 120},
        timeout=30,
    )
    assert response.status_code == 200 and len(response.json()["new_order_ids"]) == 7
    after = {name: _stats(emu) for name, emu in fresh_fleet.stores.items()}
    assert after["store-02"]["orders"]["total"] == before["store-02"]["orders"]["total"] + 7
    assert (after["store-02"]["ticks"], after["store-02"]["now"]) == (1, "2026-01-15 12:02:00")
    for name in ("store-01", "store-03"):
        assert after[name]["ticks"] == 0 and after[name]["now"] == NOW
        assert after[name]["orders"] == before[name]["orders"]
        # Requests are counted per store: only the stats calls reached it.
        assert set(after[name]["requests"]) == {"admin GET /stats"}
    assert after["store-02"]["requests"]["admin POST /tick"] == 1


def test_faults_are_per_store(fresh_fleet: Fleet) -> None:
    first, second = fresh_fleet.stores["store-01"], fresh_fleet.stores["store-02"]
    first.faults.queue("503")
    assert _orders(second).status_code == 200
    assert _orders(first).status_code == 503
    assert _orders(first).status_code == 200
    assert _stats(first)["requests"]["order fault 503"] == 1
    assert "order fault 503" not in _stats(second)["requests"]


def test_unknown_stores_and_paths_get_the_single_emulators_html_404(fleet: Fleet) -> None:
    paths = ["/stores/nope/api/order/orders", "/stores", "/stores/", "/api/orders", "/", "/x?y"]
    with Emulator(make_config(orders=10, customers=5)) as single:
        for path in paths:
            got = requests.get(fleet.base_url + path, timeout=30)
            expected = requests.get(single.base_url + path, timeout=30)
            assert got.status_code == expected.status_code == 404
            assert got.headers["Content-Type"] == expected.headers["Content-Type"]
            assert got.headers["Content-Type"].startswith("text/html")
            assert got.text == expected.text and "<html>" in got.text
    # The single emulator's own paths are no store's under a fleet.
    for path in ("/api/order/orders", "/_emulator/stats"):
        got = requests.get(fleet.base_url + path, timeout=30)
        assert got.status_code == 404 and "<html>" in got.text
    # A wrong path inside a known store is that store's 404, counted by it.
    emu = fleet.stores["store-03"]
    inside = requests.get(emu.base_url + "/api/orders", timeout=30)
    assert inside.status_code == 404 and "<html>" in inside.text
    assert _stats(emu)["requests"]["other 404"] >= 1
    bare = requests.get(emu.base_url, timeout=30)
    assert bare.status_code == 404 and "<html>" in bare.text
    admin = requests.get(emu.base_url + "/_emulator/nope", timeout=30)
    assert admin.status_code == 404 and "error" in admin.json()


def test_a_single_emulator_keeps_its_urls_and_a_mounted_one_refuses_to_start(
    fleet: Fleet,
) -> None:
    with Emulator(make_config(orders=10, customers=5)) as emu:
        assert emu.base_url == f"http://127.0.0.1:{emu.port}"
        assert emu.order_api_url == emu.base_url + "/api/order"
        assert emu.shop_api_url == emu.base_url + "/api/shop"
        assert _orders(emu).status_code == 200
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url
    with pytest.raises(RuntimeError, match="fleet"):
        fleet.stores["store-01"].start()
    stopped = Fleet({"a": make_config(orders=5, customers=2)})
    with pytest.raises(RuntimeError, match="not running"):
        _ = stopped.stores["a"].order_api_url


@pytest.mark.parametrize("name", ["", "Store", "-x", "_x", "a/b", "a b", "x" * 64, "ä"])
def test_a_fleet_refuses_bad_store_names(name: str) -> None:
    with pytest.raises(ValueError, match="store name"):
        Fleet({name: make_config(orders=5, customers=2)})
    with pytest.raises(ValueError, match="at least one store"):
        Fleet({})


def test_fleet_configs_are_deterministic_and_spread() -> None:
    configs = fleet_configs(7)
    assert list(configs) == [f"store-0{i}" for i in range(1, 8)]
    assert configs == fleet_configs(7)  # keys are None: each Store draws its own
    sizes = [c.orders for c in configs.values()]
    assert sizes[0] == 1000 and sizes[-1] == 5000 and sizes == sorted(set(sizes))
    assert all(c.customers == c.orders // 5 for c in configs.values())
    assert [c.seed for c in configs.values()] == list(range(7, 14))
    zones = [c.timezone for c in configs.values()]
    assert len(set(zones[:5])) == 5 and zones[5:] == zones[:2]
    assert all(c.order_api_key is None and c.webhook_url is None for c in configs.values())
    assert store_names(1) == ["store-01"] and store_names(120)[-1] == "store-120"
    assert store_names(120)[0] == "store-001"
    one = fleet_configs(1, orders=(50, 80), products=12, timezone="UTC", max_limit=100)
    assert [(c.orders, c.products, c.timezone, c.max_limit) for c in one.values()] == [
        (50, 12, "UTC", 100)
    ]


def test_fleet_configs_webhooks_and_errors() -> None:
    configs = fleet_configs(
        3, webhook_base_url="http://127.0.0.1:9/hooks/", webhook_secrets={"store-02": "given"}
    )
    assert [c.webhook_url for c in configs.values()] == [
        f"http://127.0.0.1:9/hooks/store-0{i}" for i in (1, 2, 3)
    ]
    secrets = [c.webhook_secret for c in configs.values()]
    assert secrets[1] == "given" and len(set(secrets)) == 3 and all(secrets)
    for bad in (
        {"count": 0},
        {"count": 2, "orders": (10, 5)},
        {"count": 2, "webhook_url": "http://x/"},
        {"count": 2, "port": 1},
        {"count": 2, "nonsense": 1},
        {"count": 2, "webhook_secrets": {"store-01": "s"}},
        {"count": 2, "webhook_base_url": "http://x", "webhook_secrets": {"store-09": "s"}},
    ):
        with pytest.raises(ValueError):
            fleet_configs(**bad)


def test_the_stores_file_names_the_variables_store_secret_env_gives(fleet: Fleet) -> None:
    parsed = tomllib.loads(stores_file_text(fleet))
    env = store_secret_env(fleet)
    assert [s["name"] for s in parsed["stores"]] == fleet.names
    for entry in parsed["stores"]:
        emu = fleet.stores[entry["name"]]
        assert entry == {
            "name": entry["name"],
            "timezone": emu.config.timezone,
            "order_api_url": emu.order_api_url,
            "order_api_key_env": entry["order_api_key_env"],
            "shop_api_url": emu.shop_api_url,
            "shop_api_key_env": entry["shop_api_key_env"],
        }
        assert env[entry["order_api_key_env"]] == emu.order_api_key
        assert env[entry["shop_api_key_env"]] == emu.shop_api_key
    assert parsed["stores"][0]["order_api_key_env"] == "CENTRA_STORE_01_ORDER_API_KEY"
    assert len(env) == 6 and all(v not in stores_file_text(fleet) for v in env.values())


def test_a_stores_file_with_webhooks_and_clashing_variable_names() -> None:
    configs = {
        "eu-shop": make_config(orders=5, customers=2, webhook_url="http://x/", webhook_secret="s"),
        "us_shop": make_config(orders=5, customers=2, order_api_key="k2", shop_api_key="k3"),
    }
    with Fleet(configs) as fleet:
        entries = tomllib.loads(stores_file_text(fleet))["stores"]
        assert entries[0]["webhook_secret_env"] == "CENTRA_EU_SHOP_WEBHOOK_SECRET"
        assert "webhook_secret_env" not in entries[1]
        assert store_secret_env(fleet)["CENTRA_EU_SHOP_WEBHOOK_SECRET"] == "s"
    clash = {"a-b": make_config(orders=5, customers=2), "a_b": make_config(orders=5, customers=2)}
    with Fleet(clash) as fleet, pytest.raises(ValueError, match="share the variables"):
        store_secret_env(fleet)


class _Receiver:
    """Records (path, headers, body) of every webhook POST."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/centra"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()


def test_each_store_sends_its_webhooks_to_its_own_url_with_its_own_secret() -> None:
    receiver = _Receiver()
    try:
        configs = fleet_configs(2, now=NOW, orders=(50, 80), webhook_base_url=receiver.url)
        with Fleet(configs) as fleet:
            ticked = {name: emu.tick(new_orders=i + 2) for i, (name, emu) in
                      enumerate(fleet.stores.items())}  # fmt: skip
            assert all(emu.wait_webhooks(10) for emu in fleet.stores.values())
        by_path: dict[str, set[int]] = {}
        for path, headers, body in receiver.requests:
            name = path.rsplit("/", 1)[1]
            verify_signature(
                configs[name].webhook_secret, body, headers["X-Centra-Signature"]
            )  # raises for another store's secret
            by_path.setdefault(name, set()).update(
                int(e.id) for e in parse_events(decode_payload(body))
            )
        assert by_path == {name: set(r["new_order_ids"]) for name, r in ticked.items()}
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_cli_stores_serves_each_store_and_writes_the_stores_file(tmp_path: Path) -> None:
    stores_file = tmp_path / "fleet" / "stores.toml"
    command = [
        sys.executable, "-m", "centra_pipeline.cli", "emulator", "--port", "0", "--stores", "2",
        "--store-orders", "50,120", "--now", NOW, "--stores-file", str(stores_file),
        "--webhook-url", "http://127.0.0.1:9/hooks",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"emulator exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving until Ctrl-C"):
                break
        exports = dict(x[7:].split("=", 1) for x in lines if x.startswith("export "))
        assert exports.pop("CENTRA_STORES_FILE") == str(stores_file)
        stores = tomllib.loads(stores_file.read_text())["stores"]
        assert [s["name"] for s in stores] == ["store-01", "store-02"]
        assert set(exports) == {s[k] for s in stores for k in s if k.endswith("_env")}
        counts = []
        for store, other in zip(stores, reversed(stores), strict=True):
            assert f"/stores/{store['name']}/api/order" in store["order_api_url"]
            key = exports[store["order_api_key_env"]]
            response = requests.get(
                store["order_api_url"] + "/orders",
                params={"limit": 500},
                headers={"API-Authorization": key},
                timeout=10,
            )
            assert response.status_code == 200 and response.json()["status"] == "ok"
            counts.append(len(response.json()["orders"]))
            wrong = exports[other["order_api_key_env"]]
            headers = {"API-Authorization": wrong}
            denied = requests.get(store["order_api_url"] + "/orders", headers=headers, timeout=10)
            assert (denied.status_code, denied.json()) == (401, AUTH_FAILED)
        assert counts[0] < counts[1]
        assert any("-> http://127.0.0.1:9/hooks/store-02" in line for line in lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stores-file", "x.toml"], "--stores-file needs --stores N"),
        (["--store-orders", "1,2"], "--store-orders needs --stores N"),
        (["--stores", "2", "--orders", "10"], "--store-orders MIN,MAX"),
        (["--stores", "2", "--order-api-key", "k"], "--order-api-key cannot be given"),
        (["--stores", "2", "--webhook-secret", "s"], "--webhook-secret needs --webhook-url"),
        (["--stores", "2", "--stores-file", "x.yaml"], "TOML"),
        (["--stores", "2", "--timezone", "Mars/Olympus"], "--timezone 'Mars/Olympus'"),
    ],
)
def test_cli_stores_rejects_bad_combinations_with_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulator", "--port", "0", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--stores", "0"], ["--store-orders", "5"], ["--stores", "x"]])
def test_cli_stores_argument_types_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["emulator", *argv])
    assert exc.value.code == 2


def test_the_cli_applies_shared_options_to_every_store() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        ["--stores", "3", "--store-orders", "20,40", "--customers", "7", "--max-limit", "99",
         "--seed", "11", "--rate-500", "0.1", "--port", "0"]
    )  # fmt: skip
    fleet = cli.build_fleet(args)
    configs: list[EmulatorConfig] = [emu.config for emu in fleet.stores.values()]
    assert [c.orders for c in configs] == [20, 30, 40]
    assert [c.seed for c in configs] == [11, 12, 13]
    assert {(c.customers, c.max_limit, c.rate_500) for c in configs} == {(7, 99, 0.1)}
    assert len({c.timezone for c in configs}) == 3
