"""`centra-pipeline check` against the emulator: OK lines when all is well, the exact fix for
each thing that is not, and a non-zero exit code whenever anything needs fixing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from centra_pipeline.cli.main import main
from centra_pipeline.emulator import Emulator
from centra_pipeline.emulator.config import SHOP_ENDPOINTS

from .conftest import ORDER_KEY, SECRETS, SHOP_KEY, WEBHOOK_SECRET

ORDER_LABELS = [
    "GET /orders",
    "GET /returns",
    "GET /customers",
    "GET /customers/{id}",
    "GET /products",
    "GET /stock",
]
ENV_NAMES = (
    "CENTRA_ORDER_API_URL",
    "CENTRA_ORDER_API_KEY",
    "CENTRA_SHOP_API_URL",
    "CENTRA_SHOP_API_KEY",
    "CENTRA_WEBHOOK_SECRET",
    "CENTRA_TIMEZONE",
    "CENTRA_DATA_DIR",
    "CENTRA_MAX_REQUESTS_PER_SECOND",
)


def _env(emu: Emulator, **overrides: str) -> dict[str, str]:
    env = {
        "CENTRA_ORDER_API_URL": emu.order_api_url,
        "CENTRA_ORDER_API_KEY": ORDER_KEY,
        "CENTRA_SHOP_API_URL": emu.shop_api_url,
        "CENTRA_SHOP_API_KEY": SHOP_KEY,
        "CENTRA_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CENTRA_TIMEZONE": "Europe/Stockholm",
    }
    env.update(overrides)
    return env


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> Callable:
    """Run `main(["check"])` with exactly these variables (empty = unset; a .env elsewhere
    cannot fill the gaps, because real variables win and the cwd is empty)."""
    monkeypatch.chdir(tmp_path)

    def _run(env: dict[str, str]) -> tuple[int, dict[str, str], str]:
        for name in ENV_NAMES:
            monkeypatch.setenv(name, env.get(name, ""))
        code = main(["check"])
        out, err = capsys.readouterr()
        for secret in SECRETS:
            assert secret not in out and secret not in err
        return code, _lines(out), out + err

    return _run


def _lines(out: str) -> dict[str, str]:
    """{"ok  Order API GET /orders": message, ...} keyed by status and label."""
    lines = {}
    for line in out.splitlines():
        if line.startswith(("ok ", "FIX ")):
            status, rest = line.split(" ", 1)
            label, _, message = rest.strip().partition("  ")
            lines[f"{status} {label.strip()}"] = message.strip()
    return lines


def test_all_ok(emu: Emulator, check) -> None:
    code, lines, out = check(_env(emu))
    assert code == 0
    expected = [f"ok Order API {e}" for e in ORDER_LABELS] + [
        "ok Shop API POST /products/filter",
        "ok Webhook CENTRA_WEBHOOK_SECRET",
    ]
    assert list(lines) == expected
    assert all(message.startswith("OK") for message in lines.values())
    assert lines["ok Order API GET /orders"].startswith("OK (1 record in a limit=1 read")
    assert lines["ok Order API GET /customers/{id}"].startswith("OK (found")
    assert "Everything the pipeline needs is reachable." in out


def test_order_api_url_pointing_at_a_web_page(emu: Emulator, check) -> None:
    wrong = emu.base_url + "/api/ordr"
    code, lines, out = check(_env(emu, CENTRA_ORDER_API_URL=wrong))
    assert code == 1
    message = lines["FIX Order API GET /orders"]
    assert wrong in message and "https://<store>.centra.com/api/<plugin uri>" in message
    # Nothing else is probed on an API whose URL is wrong; the other API is still checked.
    assert not any(label.startswith(("ok Order API", "FIX Order API GET /r")) for label in lines)
    assert "ok Shop API POST /products/filter" in lines
    assert "1 thing(s) to fix." in out


def test_shop_api_url_with_a_path_that_is_not_the_plugin(emu: Emulator, check) -> None:
    """The Shop API's JSON 404 for an unknown path must not read as an empty catalogue."""
    wrong = emu.shop_api_url + "/v1"
    code, lines, _ = check(_env(emu, CENTRA_SHOP_API_URL=wrong))
    assert code == 1
    message = lines["FIX Shop API POST /products/filter"]
    assert wrong in message and "does not point at a Centra plugin endpoint" in message


def test_url_without_a_scheme_is_a_fix_line_not_a_crash(emu: Emulator, check) -> None:
    missing_scheme = emu.shop_api_url.removeprefix("http://")
    code, lines, _ = check(_env(emu, CENTRA_SHOP_API_URL=missing_scheme))
    assert code == 1
    message = lines["FIX Shop API configuration"]
    assert "is not an http(s) URL" in message and "https://<store>.centra.com" in message
    assert len([label for label in lines if label.startswith("ok Order API")]) == 6


def test_nothing_listening_at_the_url(emu: Emulator, check) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/order"
    code, lines, _ = check(_env(emu, CENTRA_ORDER_API_URL=url))
    assert code == 1
    message = lines["FIX Order API GET /orders"]
    assert "connection was refused" in message and "check CENTRA_ORDER_API_URL" in message


def test_wrong_keys(emu: Emulator, check) -> None:
    code, lines, _ = check(
        _env(emu, CENTRA_ORDER_API_KEY="not-the-order-key", CENTRA_SHOP_API_KEY=ORDER_KEY)
    )
    assert code == 1
    assert lines["FIX Order API GET /orders"] == (
        "the Order API refused the key (HTTP 401) for GET /orders: copy the secret of the "
        "Order API plugin in Centra into CENTRA_ORDER_API_KEY"
    )
    assert lines["FIX Shop API POST /products/filter"] == (
        "the Shop API refused the key (HTTP 401) for POST /products/filter: copy the secret of "
        "the Shop API plugin in Centra into CENTRA_SHOP_API_KEY"
    )
    assert "ok Webhook CENTRA_WEBHOOK_SECRET" in lines


@pytest.mark.parametrize("denied", ORDER_LABELS)
def test_order_endpoint_not_allowed(fresh: Emulator, check, denied: str) -> None:
    fresh.set_plugin("order", allowed_endpoints=[e for e in ORDER_LABELS if e != denied])
    code, lines, out = check(_env(fresh))
    assert code == 1
    assert lines[f"FIX Order API {denied}"] == (
        f"the Order API plugin does not allow {denied}: in Centra, open the Order API plugin's "
        f"settings and enable {denied} under 'Allow access to the following endpoints'"
    )
    fixes = [label for label in lines if label.startswith("FIX")]
    assert fixes == [f"FIX Order API {denied}"]  # every other endpoint is still checked, OK
    assert len(lines) == 8
    if denied == "GET /customers":  # no customer id to look up: said so, not failed
        assert lines["ok Order API GET /customers/{id}"] == "skipped (no customer to look up)"
    assert "1 thing(s) to fix." in out


def test_shop_endpoint_not_allowed(fresh: Emulator, check) -> None:
    endpoint = "POST /products/filter"
    fresh.set_plugin("shop", allowed_endpoints=[e for e in SHOP_ENDPOINTS if e != endpoint])
    code, lines, _ = check(_env(fresh))
    assert code == 1
    assert lines[f"FIX Shop API {endpoint}"] == (
        f"the Shop API plugin does not allow {endpoint}: in Centra, open the Shop API plugin's "
        f"settings and enable {endpoint} under 'Allow access to the following endpoints'"
    )


def test_webhook_secret_missing(emu: Emulator, check) -> None:
    code, lines, out = check(_env(emu, CENTRA_WEBHOOK_SECRET=""))
    assert code == 1
    message = lines["FIX Webhook CENTRA_WEBHOOK_SECRET"]
    assert message.startswith(
        "set CENTRA_WEBHOOK_SECRET to the endpoint secret of the Centra Webhook plugin "
        "(version 'Integration API', Order trigger on)"
    )
    assert len([label for label in lines if label.startswith("ok ")]) == 7
    assert "1 thing(s) to fix." in out


def test_nothing_configured(emu: Emulator, check) -> None:
    code, lines, out = check({})
    assert code == 1
    assert lines["FIX Order API configuration"].startswith(
        "set CENTRA_ORDER_API_URL and CENTRA_ORDER_API_KEY"
    )
    assert lines["FIX Shop API configuration"].startswith(
        "set CENTRA_SHOP_API_URL and CENTRA_SHOP_API_KEY"
    )
    assert "FIX Webhook CENTRA_WEBHOOK_SECRET" in lines
    assert "3 thing(s) to fix." in out
    code, lines, _ = check(_env(emu, CENTRA_ORDER_API_KEY=""))
    assert code == 1
    assert lines["FIX Order API configuration"].startswith("set CENTRA_ORDER_API_KEY (")


def test_bad_timezone(emu: Emulator, check) -> None:
    code, lines, out = check(_env(emu, CENTRA_TIMEZONE="Stockholm"))
    assert code == 1
    assert lines == {}
    assert "CENTRA_TIMEZONE='Stockholm' is not an IANA timezone name" in out


def _subprocess_env(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CENTRA_")}
    clean.update(env)
    return clean


def test_check_as_a_real_process(emu: Emulator, fresh: Emulator, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "centra_pipeline.cli", "check"]
    ok = subprocess.run(
        command,
        env=_subprocess_env(_env(emu)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert len([line for line in ok.stdout.splitlines() if line.startswith("ok ")]) == 8
    assert "FIX" not in ok.stdout

    fresh.set_plugin("order", allowed_endpoints=[e for e in ORDER_LABELS if e != "GET /stock"])
    bad = subprocess.run(
        command,
        env=_subprocess_env(_env(fresh, CENTRA_WEBHOOK_SECRET="")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    lines = _lines(bad.stdout)
    assert "enable GET /stock under 'Allow access" in lines["FIX Order API GET /stock"]
    assert "FIX Webhook CENTRA_WEBHOOK_SECRET" in lines
    assert "2 thing(s) to fix." in bad.stdout
    for secret in SECRETS:
        assert secret not in ok.stdout + ok.stderr + bad.stdout + bad.stderr
