"""The suppression list and the erasure log (docs/architecture.md, "Erasure").

`erasure/suppression.json` under CENTRA_DATA_DIR holds the people `forget` erased: customer
ids, and e-mails as keyed hashes (HMAC-SHA256) with the id of the key that made them.
`erasure/log.jsonl` holds one line per erasure, without personal data. The key comes from
CENTRA_PII_KEY; without it, a random key is made on first use and kept in `erasure/pii.key`
(mode 0600): keep it with the data, or erased people's e-mails no longer match.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from centra_pipeline.settings import ConfigError, Settings
from centra_pipeline.storage.lake import fsync_dir
from centra_pipeline.streams.personal import Suppression, email_hmac

SUPPRESSION = "suppression.json"
ERASURE_LOG = "log.jsonl"
KEY_FILE = "pii.key"


def pii_key(settings: Settings, *, create: bool = False) -> bytes | None:
    """The key of the keyed hashes: CENTRA_PII_KEY, else a random key kept (mode 0600) in
    the erasure directory, made on first use."""
    if settings.pii_key:
        return settings.pii_key.get().encode("utf-8")
    path = settings.erasure_dir / KEY_FILE
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    if not create:
        return None
    settings.erasure_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(f".{KEY_FILE}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return key


def _key_id(key: bytes) -> str:
    return email_hmac(key, "centra-pipeline key id")[:16]


def load_suppression(settings: Settings) -> Suppression:
    """The suppression list (empty when nobody was ever erased)."""
    key = pii_key(settings)
    path = settings.erasure_dir / SUPPRESSION
    if key is None or not path.exists():
        return Suppression(key or b"")
    data = json.loads(path.read_text())
    if data["key_id"] != _key_id(key):
        raise ConfigError(
            f"{path} was written with another CENTRA_PII_KEY; set the key it was made with "
            "(erased people would otherwise come back with the next sync)"
        )
    return Suppression(key, set(data["customer_ids"]), set(data["email_hashes"]))


def save_suppression(settings: Settings, suppression: Suppression) -> None:
    path = settings.erasure_dir / SUPPRESSION
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SUPPRESSION}.tmp-{os.getpid()}")
    data = {
        "key_id": _key_id(suppression.key),
        "customer_ids": sorted(suppression.customer_ids),
        "email_hashes": sorted(suppression.email_hashes),
    }
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def erasure_log(settings: Settings) -> list[dict[str, Any]]:
    path = settings.erasure_dir / ERASURE_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def snapshot_pii(settings: Settings) -> tuple[str, bytes | None]:
    """How the snapshot holds personal data (CENTRA_PII), and the key `hash` needs."""
    key = pii_key(settings, create=True) if settings.pii == "hash" else None
    return settings.pii, key
