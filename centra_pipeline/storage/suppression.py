"""The suppression list and the erasure log (docs/architecture.md, "Erasure").

`erasure/suppression.json` under CENTRA_DATA_DIR holds the people `forget` erased: customer
ids, and e-mails as keyed hashes (HMAC-SHA256) with the id of the key that made them.
`erasure/log.jsonl` holds one line per erasure, without personal data. The key comes from
CENTRA_PII_KEY; without it, a random key is made on first use and kept in `erasure/pii.key`
(mode 0600): keep it with the data, or erased people's e-mails no longer match. With
CENTRA_STORAGE_URL both files are objects under `<storage url>/erasure/`, read by every
worker, and the key must be CENTRA_PII_KEY.
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


def _objects(settings: Settings) -> Any:
    if settings.storage_url is None:
        return None
    from centra_pipeline.storage.objects import ObjectStore

    return ObjectStore.for_url(settings.storage_url).child("erasure")


def _read(settings: Settings, name: str) -> tuple[str, str | None]:
    """Where the erasure file `name` is, and its text (None if there is none yet)."""
    objects = _objects(settings)
    if objects is not None:
        return objects.uri(name), objects.read_text(name) if objects.exists(name) else None
    path = settings.erasure_dir / name
    return str(path), path.read_text() if path.exists() else None


def load_suppression(settings: Settings) -> Suppression:
    """The suppression list (empty when nobody was ever erased)."""
    key = pii_key(settings)
    where, text = _read(settings, SUPPRESSION)
    if key is None or text is None:
        return Suppression(key or b"")
    data = json.loads(text)
    if data["key_id"] != _key_id(key):
        raise ConfigError(
            f"{where} was written with another CENTRA_PII_KEY; set the key it was made with "
            "(erased people would otherwise come back with the next sync)"
        )
    return Suppression(key, set(data["customer_ids"]), set(data["email_hashes"]))


def save_suppression(settings: Settings, suppression: Suppression) -> None:
    data = {
        "key_id": _key_id(suppression.key),
        "customer_ids": sorted(suppression.customer_ids),
        "email_hashes": sorted(suppression.email_hashes),
    }
    _write(settings, SUPPRESSION, json.dumps(data, indent=1))


def _write(settings: Settings, name: str, text: str) -> None:
    """Replace the erasure file `name` whole: a rename on the disk, one PUT on object
    storage."""
    objects = _objects(settings)
    if objects is not None:
        objects.write_text(name, text)
        return
    path = settings.erasure_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def erasure_log(settings: Settings) -> list[dict[str, Any]]:
    _, text = _read(settings, ERASURE_LOG)
    return [json.loads(line) for line in (text or "").splitlines() if line.strip()]


def append_erasure_log(settings: Settings, entry: dict[str, Any]) -> None:
    """Add one erasure's line (object storage has no append: the log is rewritten whole)."""
    _, text = _read(settings, ERASURE_LOG)
    _write(settings, ERASURE_LOG, (text or "") + json.dumps(entry, sort_keys=True) + "\n")


def snapshot_pii(settings: Settings) -> tuple[str, bytes | None]:
    """How the snapshot holds personal data (CENTRA_PII), and the key `hash` needs."""
    key = pii_key(settings, create=True) if settings.pii == "hash" else None
    return settings.pii, key
