"""One webhook receiver for several Centra stores, over real HTTP on loopback: each store's
path is verified with that store's secret and stored in that store's inbox file.

The receiver runs as `centra-pipeline webhook-server` does (`python -m
centra_pipeline.webhooks.receiver`, a subprocess) with a stores file in tmp_path and the
secrets in its environment; a few cases run the ASGI app in a thread.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from centra_pipeline.stores import load_stores
from centra_pipeline.webhooks import receiver as webhook_receiver
from centra_pipeline.webhooks.inbox import Inbox
from centra_pipeline.webhooks.receiver import StoreEndpoint, create_stores_app
from centra_pipeline_tests.test_webhook_receiver import (
    ORDER_EVENT,
    body_of,
    get,
    post,
    receiver_process,
    serve,
    signed_headers,
)

SECRETS = {  # store: its webhook secret (each a canary to look for where it must not be)
    "retail": "whsec-retail-CANARY-4f1a2b",
    "outlet": "whsec-outlet-CANARY-9c2e7d",
    "wholesale": "whsec-wholesale-CANARY-07bd3e",
}


def _variable(store: str, what: str) -> str:
    return f"TEST_{store.upper()}_{what}"


def stores_env(
    tmp_path: Path, secrets: dict[str, str], without_secret: tuple[str, ...] = ()
) -> dict[str, str]:
    """A TOML stores file in tmp_path, and the environment that points at it and holds the
    secrets it names (the file itself names variables only)."""
    blocks, env = [], {}
    for name in [*secrets, *without_secret]:
        block = (
            f'[[stores]]\nname = "{name}"\n'
            f'order_api_url = "http://127.0.0.1:9/{name}/api/order"\n'
            f'order_api_key_env = "{_variable(name, "ORDER_API_KEY")}"\n'
        )
        env[_variable(name, "ORDER_API_KEY")] = f"order-key-{name}-CANARY"
        if name in secrets:
            block += f'webhook_secret_env = "{_variable(name, "WEBHOOK_SECRET")}"\n'
            env[_variable(name, "WEBHOOK_SECRET")] = secrets[name]
        blocks.append(block)
    path = tmp_path / "stores.toml"
    path.write_text("\n".join(blocks))
    data_dir = tmp_path / "data"
    return {
        **env,
        "CENTRA_STORES_FILE": str(path),
        "CENTRA_DATA_DIR": str(data_dir),
        "CENTRA_WEBHOOK_SECRET": "single-store-secret-CANARY-unused",
    }


def inbox_path(env: dict[str, str], store: str) -> Path:
    return load_stores(env).get(store).inbox_path


def event_for(store: str, number: int) -> dict:
    return {**ORDER_EVENT, "id": number, "data": {"note": f"{store}-payload"}}


def deliver(url: str, store: str | None, body: bytes, secret: str):
    path = "/webhooks/centra" + ("" if store is None else f"/{store}")
    return post(url + path, data=body, headers=signed_headers(body, secret))


def all_bytes(directory: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return stores_env(tmp_path, SECRETS)


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    data_dir = Path(env["CENTRA_DATA_DIR"])
    with receiver_process(data_dir, tmp_path / "receiver.log", env=env) as (_, url):
        yield url


def test_each_stores_path_stores_into_its_own_inbox(
    tmp_path: Path, env: dict[str, str], server: str
) -> None:
    for number, (store, secret) in enumerate(SECRETS.items(), start=100):
        response = deliver(server, store, body_of(event_for(store, number)), secret)
        assert response.status_code == 200, response.text
        assert (response.json()["store"], response.json()["stored"]) == (store, 1)
    health = get(server + "/healthz").json()
    assert set(health["stores"]) == set(SECRETS)
    assert "inbox" not in health  # no store named `default`, no single store
    paths = {store: inbox_path(env, store) for store in SECRETS}
    assert len(set(paths.values())) == 3
    for number, store in enumerate(SECRETS, start=100):
        assert paths[store] == Path(env["CENTRA_DATA_DIR"]) / "stores" / store / "webhooks" / (
            "inbox.sqlite3"
        )
        assert health["stores"][store]["inbox"]["events"] == 1
        with Inbox(paths[store], readonly=True) as inbox:
            assert inbox.store_name == store
            (event,) = inbox.events_after(0)
            assert (event.object_id, event.store) == (str(number), store)
            assert event.data == {"note": f"{store}-payload"}


def test_another_stores_secret_is_refused_like_a_bad_signature(
    env: dict[str, str], server: str
) -> None:
    body = body_of(event_for("retail", 1))
    bad = deliver(server, "outlet", body, "not-anyones-secret")
    crossed = deliver(server, "outlet", body, SECRETS["retail"])  # retail's, at outlet
    assert (bad.status_code, bad.json()["error"]) == (401, "signature_mismatch")
    assert (crossed.status_code, crossed.json()) == (bad.status_code, bad.json())
    for store in SECRETS:
        for other, secret in SECRETS.items():
            if other != store:
                response = deliver(server, store, body, secret)
                assert (response.status_code, response.json()) == (bad.status_code, bad.json())
    health = get(server + "/healthz").json()
    assert health["rejected"] == {"401": 8}
    assert health["stores"]["outlet"]["rejected"] == {"401": 4}
    for store in SECRETS:
        with Inbox(inbox_path(env, store), readonly=True) as inbox:
            counts = inbox.counts()
            assert (counts.deliveries, counts.events, counts.duplicate_deliveries) == (0, 0, 0)
    # The same request at its own store's path is stored there, and only there.
    assert deliver(server, "retail", body, SECRETS["retail"]).status_code == 200
    stored = {}
    for store in SECRETS:
        with Inbox(inbox_path(env, store), readonly=True) as inbox:
            stored[store] = inbox.counts().events
    assert stored == {"retail": 1, "outlet": 0, "wholesale": 0}


def test_unknown_store_and_the_path_without_a_store_are_404(
    env: dict[str, str], server: str
) -> None:
    body = body_of(event_for("retail", 2))
    for store in ("nosuchstore", None, "RETAIL", "retail%20"):
        response = deliver(server, store, body, SECRETS["retail"])
        assert response.status_code == 404, (store, response.text)
        reply = response.json()
        assert (reply["status"], reply["error"]) == ("error", "unknown_store")
        assert not any(name in response.text for name in SECRETS)
        assert not any(secret in response.text for secret in SECRETS.values())
    for path in ("/webhooks/centra/retail/extra", "/webhooks/centra/retail%2Foutlet"):
        assert post(server + path, data=body).status_code == 404  # no such route
    with Inbox(inbox_path(env, "retail"), readonly=True) as inbox:
        assert inbox.counts().deliveries == 0


def test_no_secret_reaches_another_stores_inbox_or_the_logs(tmp_path: Path) -> None:
    env = stores_env(tmp_path, SECRETS)
    data_dir, log = Path(env["CENTRA_DATA_DIR"]), tmp_path / "receiver.log"
    sent: list[str] = []
    with receiver_process(data_dir, log, env=env) as (_, url):
        for number, (store, secret) in enumerate(SECRETS.items(), start=10):
            body = body_of(event_for(store, number))
            for target in SECRETS:  # its own path, and every other store's
                headers = signed_headers(body, secret)
                sent.append(headers["X-Centra-Signature"].split("v1=")[1])
                post(url + f"/webhooks/centra/{target}", data=body, headers=headers)
        health = get(url + "/healthz").text
    files = all_bytes(data_dir)
    assert {inbox_path(env, store) for store in SECRETS} <= set(files)
    output = log.read_bytes()
    assert output.count(b"webhook delivery 1 stored") == 3  # each store's own, once each
    canaries = [*SECRETS.values(), *(v for k, v in env.items() if k.endswith("_API_KEY"))]
    canaries.append(env["CENTRA_WEBHOOK_SECRET"])
    for path, content in [*files.items(), (log, output)]:
        for canary in canaries:
            assert canary.encode() not in content, f"{canary} in {path}"
        for signature in sent:
            assert signature.encode() not in content, f"a signature in {path}"
    for store in SECRETS:  # the other stores' payloads are not in this store's inbox either
        mine = b"".join(
            c for p, c in files.items() if p.is_relative_to(data_dir / "stores" / store)
        )
        for other in SECRETS:
            assert (f"{other}-payload".encode() in mine) == (other == store)
    assert not any(secret in health for secret in canaries)


def test_the_path_without_a_store_is_the_default_store(tmp_path: Path) -> None:
    data_dir, log, secret = tmp_path / "data", tmp_path / "receiver.log", "whsec-single-CANARY"
    with receiver_process(data_dir, log, secret=secret) as (_, url):  # no stores file
        first = deliver(url, None, body_of(event_for("default", 1)), secret)
        second = deliver(url, "default", body_of(event_for("default", 2)), secret)
        other = deliver(url, "retail", body_of(event_for("default", 3)), secret)
        health = get(url + "/healthz").json()
    assert (first.status_code, first.json()["store"]) == (200, "default")
    assert (second.status_code, second.json()["store"]) == (200, "default")
    assert (other.status_code, other.json()["error"]) == (404, "unknown_store")
    assert health["inbox"]["events"] == 2  # the single store's inbox, as before stores
    with Inbox(data_dir / "webhooks" / "inbox.sqlite3", readonly=True) as inbox:
        assert inbox.store_name == "default"
        assert [(e.object_id, e.store) for e in inbox.events_after(0)] == [
            ("1", "default"),
            ("2", "default"),
        ]
    text = log.read_text()
    assert "listening on http://127.0.0.1:" in text and "/webhooks/centra/<store>" in text
    assert "store default: POST" in text and secret not in text


def test_a_store_named_default_in_a_stores_file_gets_the_path_without_a_store(
    tmp_path: Path,
) -> None:
    with ExitStack() as stack:
        endpoints = [
            StoreEndpoint(
                name,
                f"secret-{name}",
                stack.enter_context(Inbox(tmp_path / name / "inbox.sqlite3", store=name)),
            )
            for name in ("retail", "default")
        ]
        url = stack.enter_context(serve(create_stores_app(endpoints)))
        body = body_of(event_for("default", 4))
        assert deliver(url, None, body, "secret-retail").status_code == 401
        reply = deliver(url, None, body, "secret-default").json()
        assert (reply["store"], reply["stored"]) == ("default", 1)
        assert [e.store for e in endpoints[1].inbox.events_after(0)] == ["default"]
        assert endpoints[0].inbox.counts().deliveries == 0
        health = get(url + "/healthz").json()
        assert health["inbox"]["events"] == 1  # the top level shows `default`
        assert health["stores"]["retail"]["rejected"] == {}
        assert health["stores"]["default"]["rejected"] == {"401": 1}


def test_a_store_without_a_secret_is_503_and_named_at_startup(tmp_path: Path) -> None:
    env = stores_env(tmp_path, {"retail": SECRETS["retail"]}, without_secret=("archive",))
    data_dir, log = Path(env["CENTRA_DATA_DIR"]), tmp_path / "receiver.log"
    with receiver_process(data_dir, log, env=env) as (_, url):
        body = body_of(event_for("archive", 5))
        response = deliver(url, "archive", body, SECRETS["retail"])
        assert response.status_code == 503
        assert response.json()["error"] == "store_not_configured"
        assert "webhook secret" in response.json()["detail"]
        assert deliver(url, "retail", body, SECRETS["retail"]).status_code == 200
        health = get(url + "/healthz").json()
    assert health["stores"]["archive"] == {
        "configured": False,
        "tolerance_seconds": 300,
        "rejected": {"503": 1},
        "inbox": None,
    }
    assert not inbox_path(env, "archive").exists()  # never opened, nothing stored
    text = log.read_text()
    startup = text[: text.index("Application startup complete")]
    assert "stores without a webhook secret" in startup and "archive" in startup
    assert "store retail: POST" in startup
    assert SECRETS["retail"] not in text


def test_run_needs_a_store_with_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = stores_env(tmp_path, {}, without_secret=("retail", "outlet"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert webhook_receiver.run(argparse.Namespace(host="127.0.0.1", port=0)) == 2
    err = capsys.readouterr().err
    assert "no store in" in err and "webhook_secret_env" in err
    assert not Path(env["CENTRA_DATA_DIR"]).exists()  # never started


def test_run_refuses_an_inbox_of_another_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = stores_env(tmp_path, SECRETS)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # A misconfigured data dir: outlet's inbox file sits where retail's belongs.
    Inbox(inbox_path(env, "retail"), store="outlet").close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert webhook_receiver.run(argparse.Namespace(host="127.0.0.1", port=port)) == 2
    err = capsys.readouterr().err
    assert "belongs to store 'outlet', not 'retail'" in err
    assert not any(secret in err for secret in SECRETS.values())
    with Inbox(inbox_path(env, "retail"), readonly=True) as inbox:
        assert (inbox.store_name, inbox.counts().deliveries) == ("outlet", 0)


def test_the_receiver_needs_only_the_webhook_secrets(tmp_path: Path) -> None:
    """A receiver host without the stores' API keys serves their webhooks."""
    env = {
        k: v for k, v in stores_env(tmp_path, SECRETS).items() if not k.endswith("ORDER_API_KEY")
    }
    data_dir = Path(env["CENTRA_DATA_DIR"])
    with receiver_process(data_dir, tmp_path / "receiver.log", env=env) as (_, url):
        store = next(iter(SECRETS))
        body = body_of(event_for(store, 7))
        assert deliver(url, store, body, SECRETS[store]).status_code == 200
