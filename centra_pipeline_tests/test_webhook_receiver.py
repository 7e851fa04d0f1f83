"""The webhook receiver over real HTTP on loopback, with a real inbox file in tmp_path.

Most tests run uvicorn in a thread; the crash and logging tests run the receiver's own
runner (`python -m centra_pipeline.webhooks.receiver`) as a subprocess.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import uvicorn

from centra_pipeline.centra.webhook import encode_payload, signature_header, verify_signature
from centra_pipeline.webhooks import receiver as webhook_receiver
from centra_pipeline.webhooks.inbox import Inbox
from centra_pipeline.webhooks.receiver import create_app

SECRET = "whsec-test-Q7mZ2p"
FORM = "application/x-www-form-urlencoded"
EXAMPLE_BODY = b"payload=%7B%22x%22%3A%22test%22%7D"
EXAMPLE_SIGNATURE = "0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549"
ORDER_EVENT = {
    "type": "order",
    "action": "update",
    "date": "2021-01-29 14:40:58.628033",
    "id": 2735,
}


def body_of(*events: dict, style: str = "php") -> bytes:
    return encode_payload({"events": list(events)}, style=style)  # type: ignore[arg-type]


def request(method: str, url: str, **kwargs) -> requests.Response:
    return requests.request(method, url, timeout=30, **kwargs)


def post(url: str, **kwargs) -> requests.Response:
    return request("POST", url, **kwargs)


def get(url: str, **kwargs) -> requests.Response:
    return request("GET", url, **kwargs)


def signed_headers(body: bytes, secret: str = SECRET, t: int | None = None) -> dict[str, str]:
    return {"Content-Type": FORM, "X-Centra-Signature": signature_header(secret, body, t)}


@contextmanager
def serve(app) -> Iterator[str]:
    """uvicorn on 127.0.0.1, a free port, in a thread; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Receiver:
    url: str
    inbox: Inbox

    @property
    def hook(self) -> str:
        return self.url + "/webhooks/centra"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        return post(
            self.hook, data=body, headers=signed_headers(body) if headers is None else headers
        )

    def assert_nothing_stored(self) -> None:
        counts = self.inbox.counts()
        assert (counts.deliveries, counts.events, counts.duplicate_deliveries) == (0, 0, 0)


@contextmanager
def running_receiver(tmp_path: Path, **options) -> Iterator[Receiver]:
    with (
        Inbox(tmp_path / "webhooks" / "inbox.sqlite3") as inbox,
        serve(create_app(SECRET, inbox, **options)) as url,
    ):
        yield Receiver(url, inbox)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with running_receiver(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def shared_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """One receiver for the many bad-input cases; each case checks that nothing changed."""
    with running_receiver(tmp_path_factory.mktemp("shared")) as running:
        yield running


def raw_http(port: int, head: str, body_chunks: Iterator[bytes]) -> tuple[int, str]:
    """Send a hand-made request (lying or absent Content-Length); return status and reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before we finished: expected for 413
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
                if b"\r\n\r\n" in reply and b'"}' in reply:
                    break
        except ConnectionResetError:
            pass
    text = reply.decode("latin-1")
    return int(text.split()[1]), text


# Signatures ---------------------------------------------------------------------------------


def test_centras_documented_example_verifies(tmp_path: Path) -> None:
    header = f"t=12345678,v1={EXAMPLE_SIGNATURE}"
    assert verify_signature("test123", EXAMPLE_BODY, header, tolerance_seconds=None) == 12345678
    with Inbox(tmp_path / "inbox.sqlite3") as inbox:
        with serve(create_app("test123", inbox, tolerance_seconds=None)) as url:
            ok = post(
                url + "/webhooks/centra",
                data=EXAMPLE_BODY,
                headers={"Content-Type": FORM, "X-Centra-Signature": header},
            )
            # Past the signature; the example payload is not an Integration-API event list.
            assert ok.status_code == 400, ok.text
            assert "events" in ok.json()["detail"]
            tampered = header[:-1] + ("0" if header[-1] != "0" else "1")
            bad = post(
                url + "/webhooks/centra",
                data=EXAMPLE_BODY,
                headers={"Content-Type": FORM, "X-Centra-Signature": tampered},
            )
            assert (bad.status_code, bad.json()["error"]) == (401, "signature_mismatch")
        assert inbox.counts().deliveries == 0


def test_a_valid_signed_delivery_is_stored(receiver: Receiver) -> None:
    shipment = {"type": "shipment", "action": "create", "date": "2021-01-29 14:41:00.1", "id": 1902}
    response = receiver.post(body_of(ORDER_EVENT, shipment))
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["status"] == "ok"
    assert (reply["events"], reply["stored"], reply["duplicates"]) == (2, 2, 0)
    assert reply["duplicate_delivery"] is False
    stored = receiver.inbox.events_after(0)
    assert [(e.type, e.action, e.object_id, e.event_date) for e in stored] == [
        ("order", "update", "2735", "2021-01-29 14:40:58.628033"),
        ("shipment", "create", "1902", "2021-01-29 14:41:00.1"),
    ]
    assert {e.delivery_id for e in stored} == {reply["delivery_id"]}


@pytest.mark.parametrize("style", ["php", "rfc3986"])
def test_php_and_rfc3986_form_encodings_both_verify(receiver: Receiver, style: str) -> None:
    event = {**ORDER_EVENT, "data": {"timezone": "Europe/Stockholm", "note": "a b"}}
    body = body_of(event, style=style)
    if style == "php":  # `+` for the spaces, `\/` for slashes: re-encoding would not match
        assert b"+" in body and b"%20" not in body and b"%5C%2F" in body
    else:
        assert b"%20" in body and b"+" not in body
    response = receiver.post(body)
    assert response.status_code == 200, response.text
    (stored,) = receiver.inbox.events_after(0)
    assert stored.event_date == "2021-01-29 14:40:58.628033"  # the space is back
    assert stored.data == {"timezone": "Europe/Stockholm", "note": "a b"}


# Bad input: a precise answer, nothing stored -------------------------------------------------

GOOD = body_of(ORDER_EVENT)


def _bad_requests() -> list[tuple[str, bytes, dict[str, str], int, str]]:
    now = int(time.time())
    other = body_of({**ORDER_EVENT, "id": 9999})
    cases = [
        ("missing signature", GOOD, {"Content-Type": FORM}, 401, "signature_missing"),
        (
            "malformed signature",
            GOOD,
            {"Content-Type": FORM, "X-Centra-Signature": "sha256=abc"},
            401,
            "signature_malformed",
        ),
        (
            "non-numeric t",
            GOOD,
            {"Content-Type": FORM, "X-Centra-Signature": "t=soon,v1=00"},
            401,
            "signature_malformed",
        ),
        (
            "non-ASCII v1",
            GOOD,
            {"Content-Type": FORM, "X-Centra-Signature": f"t={now},v1=\u00e9"},
            401,
            "signature_mismatch",
        ),
        ("wrong secret", GOOD, signed_headers(GOOD, "not-the-secret"), 401, "signature_mismatch"),
        ("body changed after signing", other, signed_headers(GOOD), 401, "signature_mismatch"),
        ("stale timestamp", GOOD, signed_headers(GOOD, t=now - 3600), 401, "signature_stale"),
        ("future timestamp", GOOD, signed_headers(GOOD, t=now + 3600), 401, "signature_stale"),
    ]
    for name, body in [
        ("JSON instead of a form", json.dumps({"events": [ORDER_EVENT]}).encode()),
        ("no payload field", b"events=1"),
        ("two payload fields", GOOD + b"&" + GOOD),
        ("payload not JSON", b"payload=%7Bnope"),
        ("payload not an object", b"payload=%5B%5D"),
        ("no events list", EXAMPLE_BODY),
        ("event without id", body_of({"type": "order", "action": "update", "date": "d"})),
        ("event without type", body_of({"action": "update", "id": 1})),
        ("not UTF-8", b"payload=%7B%22a%22%3A%22%FF%22%7D"),
        ("deeply nested", b"payload=" + b"%5B" * 50_000),
    ]:
        cases.append((name, body, signed_headers(body), 400, "bad_payload"))
    for name, content_type in [
        ("JSON content type", "application/json"),
        ("text content type", "text/plain"),
        ("multipart", "multipart/form-data; boundary=x"),
        ("latin-1 charset", f"{FORM}; charset=iso-8859-1"),
        ("extra parameter", f"{FORM}; boundary=x"),
    ]:
        headers = {**signed_headers(GOOD), "Content-Type": content_type}
        cases.append((name, GOOD, headers, 415, "unsupported_media_type"))
    no_type = {"X-Centra-Signature": signature_header(SECRET, GOOD)}
    cases.append(("no content type", GOOD, no_type, 415, "unsupported_media_type"))
    too_big = b"payload=" + b"x" * 1_048_576
    cases.append(("body over the limit", too_big, signed_headers(too_big), 413, "body_too_large"))
    return cases


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [case[1:] for case in _bad_requests()],
    ids=[case[0] for case in _bad_requests()],
)
def test_bad_input_gets_its_status_and_stores_nothing(
    shared_receiver: Receiver, body: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    receiver = shared_receiver
    if "X-Centra-Signature" in headers and not error.startswith("signature"):
        # Signed now, not at collection: a long suite must not turn these into stale ones.
        headers = {**headers, "X-Centra-Signature": signature_header(SECRET, body)}
    response = post(receiver.hook, data=body, headers=headers)
    assert response.status_code == status, response.text
    reply = response.json()
    assert (reply["status"], reply["error"]) == ("error", error)
    assert reply["detail"]
    receiver.assert_nothing_stored()


def test_wrong_method_is_405(receiver: Receiver) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = request(method, receiver.hook, data=GOOD, headers=signed_headers(GOOD))
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert response.json()["error"] == "method_not_allowed"
    assert post(receiver.url + "/healthz").status_code == 405
    assert post(receiver.url + "/webhook", data=GOOD).status_code == 404
    receiver.assert_nothing_stored()


def test_charset_parameter_is_allowed(receiver: Receiver) -> None:
    headers = {**signed_headers(GOOD), "Content-Type": f'{FORM.upper()}; Charset="UTF-8"'}
    assert receiver.post(GOOD, headers).status_code == 200


def test_declared_length_over_the_limit_is_refused_before_the_body(receiver: Receiver) -> None:
    # Content-Length claims 50 MB; the answer comes at once, without waiting for the body.
    head = (
        "POST /webhooks/centra HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: {FORM}\r\nX-Centra-Signature: {signature_header(SECRET, GOOD)}\r\n"
        "Content-Length: 50000000\r\n\r\n"
    )
    started = time.monotonic()
    status, reply = raw_http(receiver.port, head, iter([GOOD]))
    assert status == 413 and "body_too_large" in reply
    assert "connection: close" in reply.lower()
    assert time.monotonic() - started < 5
    receiver.assert_nothing_stored()


def test_chunked_body_is_counted_while_streaming(receiver: Receiver) -> None:
    # No Content-Length at all: the receiver must stop reading at the limit, not buffer 20 MB.
    head = (
        "POST /webhooks/centra HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: {FORM}\r\nX-Centra-Signature: {signature_header(SECRET, GOOD)}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    status, reply = raw_http(receiver.port, head, iter([framed] * 320))  # 20 MiB offered
    assert status == 413 and "body_too_large" in reply
    receiver.assert_nothing_stored()
    assert receiver.post(GOOD).status_code == 200


def test_checks_run_cheapest_first(receiver: Receiver) -> None:
    big = b"payload=" + b"x" * 1_048_576
    unsigned = {"Content-Type": FORM}
    cases = [
        # content type before size, size before signature, signature before parsing
        (big, {"Content-Type": "text/plain"}, 415),
        (big, unsigned, 413),
        (b"garbage", unsigned, 401),
        (b"garbage", signed_headers(b"garbage", "wrong-secret"), 401),
        (b"garbage", signed_headers(b"garbage"), 400),
    ]
    for body, headers, status in cases:
        assert post(receiver.hook, data=body, headers=headers).status_code == status
    receiver.assert_nothing_stored()


# Duplicates and replays ---------------------------------------------------------------------


def test_identical_redelivery_is_stored_once(receiver: Receiver) -> None:
    first = receiver.post(GOOD).json()
    # Centra's retry: the same body, signed again a little later.
    again = receiver.post(GOOD, signed_headers(GOOD, t=int(time.time()) + 2)).json()
    assert (first["stored"], first["duplicate_delivery"]) == (1, False)
    assert (again["stored"], again["duplicates"], again["duplicate_delivery"]) == (0, 1, True)
    assert again["delivery_id"] == first["delivery_id"]
    counts = receiver.inbox.counts()
    assert (counts.deliveries, counts.events, counts.duplicate_deliveries) == (1, 1, 1)


def test_the_same_event_in_another_batch_is_stored_once(receiver: Receiver) -> None:
    other = {"type": "order", "action": "update", "date": "2021-01-29 15:00:00.0", "id": 2736}
    assert receiver.post(body_of(ORDER_EVENT)).json()["stored"] == 1
    reply = receiver.post(body_of(other, ORDER_EVENT)).json()
    assert (reply["stored"], reply["duplicates"], reply["duplicate_delivery"]) == (1, 1, False)
    assert [e.object_id for e in receiver.inbox.events_after(0)] == ["2735", "2736"]
    assert receiver.inbox.counts().deliveries == 2


def test_a_replayed_request_is_refused_once_outside_the_window(tmp_path: Path) -> None:
    with running_receiver(tmp_path, tolerance_seconds=1) as receiver:
        headers = signed_headers(GOOD)
        assert receiver.post(GOOD, headers).status_code == 200
        time.sleep(2.2)
        replay = receiver.post(GOOD, headers)  # byte-for-byte the captured request
        assert (replay.status_code, replay.json()["error"]) == (401, "signature_stale")
        counts = receiver.inbox.counts()
        assert (counts.deliveries, counts.duplicate_deliveries) == (1, 0)


# Durability and the store path ----------------------------------------------------------------


def test_concurrent_deliveries_are_all_stored_and_answered_individually(
    receiver: Receiver,
) -> None:
    def deliver(n: int) -> dict:
        body = body_of({**ORDER_EVENT, "id": n}, {**ORDER_EVENT, "id": n, "action": "insert"})
        with requests.Session() as session:
            response = session.post(
                receiver.hook, data=body, headers=signed_headers(body), timeout=30
            )
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(deliver, range(200)))
    assert all(reply["stored"] == 2 for reply in replies)
    assert len({reply["delivery_id"] for reply in replies}) == 200
    counts = receiver.inbox.counts()
    assert (counts.deliveries, counts.events) == (200, 400)


def test_inbox_failure_is_503_so_centra_retries(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    with Inbox(path, readonly=True) as readonly, serve(create_app(SECRET, readonly)) as url:
        response = post(url + "/webhooks/centra", data=GOOD, headers=signed_headers(GOOD))
        assert response.status_code == 503
        assert response.json()["error"] == "inbox_unavailable"
    with Inbox(path) as inbox:
        assert inbox.counts().deliveries == 0


def test_healthz_reports_inbox_stats_without_secrets(receiver: Receiver) -> None:
    receiver.post(GOOD)
    receiver.post(GOOD)
    post(receiver.hook, data=GOOD, headers={"Content-Type": FORM})
    response = get(receiver.url + "/healthz")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["rejected"] == {"401": 1}
    inbox = health["inbox"]
    assert (inbox["deliveries"], inbox["events"], inbox["duplicate_deliveries"]) == (1, 1, 1)
    assert inbox["by_type"] == {"order": {"update": 1}}
    assert inbox["max_seq"] == 1
    assert SECRET not in response.text


def test_create_app_refuses_an_empty_secret(tmp_path: Path) -> None:
    with Inbox(tmp_path / "inbox.sqlite3") as inbox, pytest.raises(ValueError, match="SECRET"):
        create_app("", inbox)


# The runner, as a process ------------------------------------------------------------------


@contextmanager
def receiver_process(
    data_dir: Path, log: Path, secret: str = SECRET, env: dict[str, str] | None = None
) -> Iterator[tuple]:
    """The runner as a subprocess; `env` adds to (or overrides) its environment, e.g. a
    stores file. Without one it serves the single store `default`, whatever .env says."""
    env = {
        **os.environ,
        "CENTRA_DATA_DIR": str(data_dir),
        "CENTRA_WEBHOOK_SECRET": secret,
        "CENTRA_STORES_FILE": "",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    offset = log.stat().st_size if log.exists() else 0  # the log of an earlier run is kept
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "centra_pipeline.webhooks.receiver", "--port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            text = log.read_bytes()[offset:].decode()
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", text)
            if found and "Application startup complete" in text:
                port = int(found.group(1))
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_answered_delivery_survives_sigkill_right_after_200(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "receiver.log"
    body = body_of(ORDER_EVENT, {**ORDER_EVENT, "id": 2736})
    with receiver_process(data_dir, log) as (proc, url):
        response = post(url + "/webhooks/centra", data=body, headers=signed_headers(body))
        proc.kill()  # SIGKILL: no shutdown hook, no chance to flush anything
        assert response.status_code == 200
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL

    inbox_path = data_dir / "webhooks" / "inbox.sqlite3"
    with Inbox(inbox_path, readonly=True) as inbox:
        assert [e.object_id for e in inbox.events_after(0)] == ["2735", "2736"]
    with receiver_process(data_dir, log) as (proc, url):  # restarted on the same data dir
        assert get(url + "/healthz").json()["inbox"]["events"] == 2
        again = post(url + "/webhooks/centra", data=body, headers=signed_headers(body))
        assert again.json()["duplicate_delivery"] is True


def test_secret_and_payload_never_reach_the_logs(tmp_path: Path) -> None:
    secret = "CANARY-secret-9b1e4c"
    marker = "CANARY-payload-5d7f"
    event = {**ORDER_EVENT, "id": marker, "data": {"note": marker}}
    body = body_of(event)
    headers = signed_headers(body, secret)
    log = tmp_path / "receiver.log"
    replies: list[str] = []
    with receiver_process(tmp_path / "data", log, secret=secret) as (_, url):
        hook = url + "/webhooks/centra"
        for data, sent in [
            (body, headers),  # stored
            (body, headers),  # identical re-delivery
            (body, signed_headers(body, "wrong-" + secret)),  # 401
            (body, {"Content-Type": FORM}),  # 401 missing
            (body, {**headers, "Content-Type": "application/json"}),  # 415
            (
                b"payload=%7B" + marker.encode(),
                signed_headers(b"payload=%7B" + marker.encode(), secret),
            ),
            (b"payload=" + b"x" * 1_100_000, headers),  # 413
        ]:
            replies.append(post(hook, data=data, headers=sent).text)
        replies.append(get(url + "/healthz").text)
        replies.append(get(hook).text)
    output = log.read_text()
    assert output.count("stored: 1 events (order/update=1)") == 2
    assert output.count("webhook rejected:") == 5
    for text in [output, *replies]:
        assert secret not in text
        assert marker not in text
        assert headers["X-Centra-Signature"].split("v1=")[1] not in text
        assert body.decode() not in text


def test_in_process_logs_at_debug_hold_no_secret_or_payload(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "CANARY-payload-e21a"
    body = body_of({**ORDER_EVENT, "data": {"note": marker}})
    receiver.post(body)
    receiver.post(body, signed_headers(body, "nope"))
    receiver.post(b"payload=" + marker.encode(), signed_headers(b"payload=" + marker.encode()))
    assert "webhook delivery 1 stored" in caplog.text
    assert SECRET not in caplog.text
    assert marker not in caplog.text


def test_run_without_a_secret_exits_2_and_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CENTRA_WEBHOOK_SECRET", "")  # beats a .env file, too
    monkeypatch.setenv("CENTRA_STORES_FILE", "")
    monkeypatch.setenv("CENTRA_DATA_DIR", str(tmp_path))
    args = argparse.Namespace(host="127.0.0.1", port=0)
    assert webhook_receiver.run(args) == 2
    err = capsys.readouterr().err
    assert "CENTRA_WEBHOOK_SECRET" in err and "endpoint secret" in err
    assert not (tmp_path / "webhooks").exists()  # never started


def test_run_on_a_busy_port_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CENTRA_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("CENTRA_STORES_FILE", "")
    monkeypatch.setenv("CENTRA_DATA_DIR", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = argparse.Namespace(host="127.0.0.1", port=busy.getsockname()[1])
        assert webhook_receiver.run(args) == 1
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err
    assert SECRET not in err


def test_command_line_arguments() -> None:
    parser = argparse.ArgumentParser()
    webhook_receiver.add_arguments(parser)
    assert vars(parser.parse_args([])) == {"host": "127.0.0.1", "port": 8090}
    assert vars(parser.parse_args(["--host", "::1", "--port", "9000"])) == {
        "host": "::1",
        "port": 9000,
    }
