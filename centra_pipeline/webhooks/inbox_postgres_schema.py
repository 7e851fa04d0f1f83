"""The shared inbox's tables in PostgreSQL (schema `centra_inbox`) and how they are created
on first open (webhooks/inbox_postgres.py uses them)."""

from __future__ import annotations

import uuid

SCHEMA = "centra_inbox"
SCHEMA_VERSION = 1
_SCHEMA_LOCK = 0x43454E54  # advisory lock key while the tables are created ("CENT")

_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""
    CREATE TABLE IF NOT EXISTS {SCHEMA}.meta (
        store  TEXT NOT NULL,  -- '' for the inbox as a whole (schema_version)
        key    TEXT NOT NULL,
        value  TEXT NOT NULL,
        PRIMARY KEY (store, key)
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {SCHEMA}.deliveries (
        id                BIGSERIAL PRIMARY KEY,
        store             TEXT    NOT NULL,
        body_sha256       TEXT    NOT NULL,
        signed_at         BIGINT  NOT NULL,
        received_at       TEXT    NOT NULL,
        event_count       INTEGER NOT NULL,
        new_events        INTEGER NOT NULL,
        duplicate_events  INTEGER NOT NULL,
        redeliveries      INTEGER NOT NULL DEFAULT 0,
        last_received_at  TEXT    NOT NULL,
        UNIQUE (store, body_sha256)
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {SCHEMA}.events (
        seq          BIGSERIAL PRIMARY KEY,
        store        TEXT   NOT NULL,
        delivery_id  BIGINT NOT NULL REFERENCES {SCHEMA}.deliveries (id),
        type         TEXT   NOT NULL,
        action       TEXT   NOT NULL,
        object_id    TEXT   NOT NULL,
        event_date   TEXT,
        data         TEXT,
        received_at  TEXT   NOT NULL,
        UNIQUE (store, type, action, object_id, event_date)
    )
    """,
    f"CREATE INDEX IF NOT EXISTS events_store_type_seq ON {SCHEMA}.events (store, type, seq)",
)


def create_schema(conn, location: str, store: str) -> None:
    """Create the tables if missing (under an advisory lock: receivers starting together
    would race on CREATE ... IF NOT EXISTS), refuse a newer schema, and give the store its
    inbox id."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.events",))
        exists = cur.fetchone()[0] is not None
    conn.commit()
    if not exists:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _DDL:
                cur.execute(statement)
            cur.execute(
                f"INSERT INTO {SCHEMA}.meta VALUES ('', 'schema_version', %s) "
                "ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        conn.commit()
    with conn.cursor() as cur:
        cur.execute(f"SELECT value FROM {SCHEMA}.meta WHERE store = '' AND key = 'schema_version'")
        version = int(cur.fetchone()[0])
        if version > SCHEMA_VERSION:
            conn.rollback()
            raise RuntimeError(
                f"inbox {location} has schema version {version}; this code knows "
                f"{SCHEMA_VERSION}. Upgrade centra-pipeline."
            )
        cur.execute(
            f"INSERT INTO {SCHEMA}.meta VALUES (%s, 'inbox_id', %s) ON CONFLICT DO NOTHING",
            (store, uuid.uuid4().hex),
        )
    conn.commit()
