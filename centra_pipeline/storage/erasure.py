"""Erasure (GDPR Art. 17): a person's personal data out of the lake, the warehouse, the
webhook inbox and the analyst snapshot, and kept out of later syncs.

`forget` adds the person to the suppression list (customer ids, and e-mails as keyed hashes),
then enforces the whole list everywhere (docs/architecture.md, "Erasure"):
1. the lake: every Parquet file of `orders` and `customers` (loose loads and segments) with a
   matching record is rewritten with the personal fields null, in the columns and in the
   raw JSON, and `_hash` recomputed; each file is replaced atomically;
2. the warehouse: the same fields null and `_hash` moved to the erased record's hash, in one
   transaction; then the file is rewritten into a fresh one, so no freed block keeps an old
   value; the webhook inbox forgets the payloads of the person's orders;
3. the analyst snapshot is republished (by the caller);
4. an entry in the erasure log: when, which customer ids, how many addresses, rows and files
   (never an address or a name).
Each step is idempotent, and the list is saved first: a run killed anywhere is completed by
running `forget` again, and a sync in between already keeps the person erased.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from centra_pipeline.settings import Settings
from centra_pipeline.storage.lake import Lake, fsync_dir
from centra_pipeline.storage.publish import copy_database
from centra_pipeline.storage.sql import main_table, parquet_scan, quote_ident
from centra_pipeline.storage.suppression import (
    append_erasure_log,
    load_suppression,
    pii_key,
    save_suppression,
)
from centra_pipeline.storage.warehouse_schema import ensure_schema
from centra_pipeline.streams import TABLES, Table
from centra_pipeline.streams.personal import (
    PERSON_FIELDS,
    Person,
    Suppression,
    customer_id,
    email_hmac,
    erase_raw,
    normalize_email,
)
from centra_pipeline.streams.rows import record_hash
from centra_pipeline.testing.failpoints import failpoint

if TYPE_CHECKING:
    from centra_pipeline.storage.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class Erasure:
    """What one `forget` did (the erasure log entry; no personal data)."""

    erased_at: str
    customer_ids: list[int]
    reason: str  # `forget`, or `anonymised in Centra`
    emails: int  # how many addresses were given or found (never the addresses)
    lake_files_rewritten: int = 0
    lake_records_erased: int = 0
    warehouse_rows_erased: dict[str, int] = field(default_factory=dict)
    inbox_payloads_cleared: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve(warehouse: Warehouse, customer_ids: set[int], emails: set[str]) -> Person:
    """The person: the ids and addresses given, the addresses the warehouse holds for those
    ids, and the ids that hold those addresses."""
    person = Person(set(customer_ids), {e for e in map(normalize_email, emails) if e})
    if not warehouse.has_table("orders"):
        return person
    ids, mails = sorted(person.customer_ids), sorted(person.emails)
    rows = warehouse.query(
        """SELECT customer_id, lower(trim(email)) FROM main.customers
           WHERE customer_id IN (SELECT unnest(?::BIGINT[]))
              OR lower(trim(email)) IN (SELECT unnest(?::VARCHAR[]))
        UNION ALL
        SELECT customer_id, lower(trim(e)) FROM main.orders,
               unnest([billing_email, delivery_email]) AS u(e)
           WHERE customer_id IN (SELECT unnest(?::BIGINT[]))
              OR lower(trim(e)) IN (SELECT unnest(?::VARCHAR[]))""",
        [ids, mails, ids, mails],
    )
    for found_id, email in rows:
        if customer_id(found_id) is not None:
            person.customer_ids.add(int(found_id))
        if email:
            person.emails.add(email)
    return person


def forget(
    settings: Settings,
    warehouse: Warehouse,
    lake: Lake,
    customer_ids: set[int],
    emails: set[str],
    reason: str = "forget",
) -> Erasure:
    """Erase the person everywhere but the snapshot (the caller republishes it)."""
    bad = [e for e in emails if "@" not in e or normalize_email(e) is None]
    if bad:
        raise ValueError(f"{len(bad)} of the e-mail addresses given are not addresses")
    if not customer_ids and not emails:
        raise ValueError("name a person: --customer ID or --email ADDRESS")
    remove_leftovers(lake.root)
    remove_leftovers(warehouse.path.parent)
    key = pii_key(settings, create=True)
    assert key is not None
    person = resolve(warehouse, customer_ids, emails)
    suppression = load_suppression(settings)
    suppression.key = key
    suppression.add(person)
    save_suppression(settings, suppression)  # first: later syncs keep the person erased
    erasure = Erasure(
        erased_at=datetime.now(UTC).isoformat(),
        customer_ids=sorted(person.customer_ids),
        reason=reason,
        emails=len(person.emails),
    )
    with warehouse.locked(exclusive=True):
        new_hashes = _erase_lake(lake, suppression, erasure)
        failpoint("forget.after_lake")
        orders = _erase_warehouse(warehouse, suppression, new_hashes, erasure)
        _rewrite_database(warehouse.path)
    erasure.inbox_payloads_cleared = _erase_inbox(settings, orders)
    failpoint("forget.before_log")
    append_erasure_log(settings, erasure.as_dict())
    return erasure


def anonymised_in(settings: Settings, manifests: list[Any]) -> set[int]:
    """Customers these customer loads show anonymised by Centra (`PUT /anonymize-customer`):
    every personal field empty. Those not erased yet; their older copies still hold it."""
    table = TABLES["customers"]
    personal = [col.name for col in table.personal_columns]
    files = [p for m in manifests for p in m.file_paths(table.name) if not m.segment]
    if not files:
        return set()
    empty = " AND ".join(f"coalesce(trim({quote_ident(c)}), '') = ''" for c in personal)
    with duckdb.connect() as con:
        scan = parquet_scan(con, "customer_files", files, manifests[0].filesystem)
        rows = con.execute(f"SELECT DISTINCT customer_id FROM {scan} WHERE {empty}").fetchall()
    erased = load_suppression(settings).customer_ids
    return {int(r[0]) for r in rows} - erased


# --- lake -------------------------------------------------------------------------------
def _person_tables() -> list[Table]:
    return [TABLES[name] for name in PERSON_FIELDS]


def _column_of(table: Table, source: str) -> str:
    return next(col.name for col in table.columns if col.source == source)


def _matching_mask(table: Table, data: pa.Table, suppression: Suppression, cache: dict) -> Any:
    """Which rows of `data` belong to a suppressed person."""
    id_source, email_sources = PERSON_FIELDS[table.name]
    ids = pa.array(sorted(suppression.customer_ids), pa.int64())
    mask = pc.is_in(data.column(_column_of(table, id_source)), value_set=ids)
    for source in email_sources:
        values = data.column(_column_of(table, source)).to_pylist()
        hits = []
        for value in values:
            email = normalize_email(value)
            if email is None:
                hits.append(False)
                continue
            if email not in cache:
                cache[email] = email_hmac(suppression.key, email) in suppression.email_hashes
            hits.append(cache[email])
        mask = pc.or_(pc.fill_null(mask, False), pa.array(hits, pa.bool_()))
    return pc.fill_null(mask, False)


def _lake_files(lake: Lake, table: Table) -> list[str]:
    stream = table.stream
    return sorted({p for m in lake.loads(stream) for p in m.file_paths(table.name)})


def _erase_lake(lake: Lake, suppression: Suppression, erasure: Erasure) -> dict[str, str]:
    """Rewrite the lake files holding suppressed people; returns old → new record hashes.
    A file is rewritten row group by row group, so memory follows a row group, not a file
    (a segment holds a month of a stream)."""
    new_hashes: dict[str, str] = {}
    cache: dict[str, bool] = {}
    for table in _person_tables():
        personal = [col.name for col in table.personal_columns]
        wanted = [_column_of(table, PERSON_FIELDS[table.name][0])] + [
            _column_of(table, s) for s in PERSON_FIELDS[table.name][1]
        ]
        probe_columns = list(dict.fromkeys(wanted + personal))
        for path in _lake_files(lake, table):
            parquet = pq.ParquetFile(lake.open_file(path))
            masks = []
            for i in range(parquet.metadata.num_row_groups):
                probe = parquet.read_row_group(i, columns=probe_columns)
                mask = _matching_mask(table, probe, suppression, cache)
                holds = functools.reduce(pc.or_, [pc.is_valid(probe.column(n)) for n in personal])
                # rows erased before have nothing left to erase
                both = pc.and_(mask, pc.fill_null(holds, False))
                masks.append(both.combine_chunks() if isinstance(both, pa.ChunkedArray) else both)
            if not any(pc.any(mask).as_py() for mask in masks):
                continue
            tmp = lake.scratch_for(path, "erasing")
            with pq.ParquetWriter(
                tmp, parquet.schema_arrow, compression="zstd", compression_level=1
            ) as writer:
                for i, mask in enumerate(masks):
                    group = parquet.read_row_group(i)
                    if pc.any(mask).as_py():
                        group = _erase_rows(table, group, mask, personal, new_hashes, erasure)
                    writer.write_table(group, row_group_size=max(group.num_rows, 1))
            lake.replace_file(path, tmp)
            erasure.lake_files_rewritten += 1
    return new_hashes


def _erase_rows(
    table: Table,
    data: pa.Table,
    mask: Any,
    personal: list[str],
    new_hashes: dict[str, str],
    erasure: Erasure,
) -> pa.Table:
    """`data` with the masked rows erased: personal columns null, raw JSON and hash redone."""
    raws = [erase_raw(table, raw) for raw in data.column("_raw").filter(mask).to_pylist()]
    hashes = [record_hash(raw) for raw in raws]
    for old, new in zip(data.column("_hash").filter(mask).to_pylist(), hashes, strict=True):
        if old != new:
            new_hashes[old] = new
    erasure.lake_records_erased += len(raws)
    replaced = {
        "_raw": pc.replace_with_mask(
            data.column("_raw").combine_chunks(), mask, pa.array(raws, pa.string())
        ),
        "_hash": pc.replace_with_mask(
            data.column("_hash").combine_chunks(), mask, pa.array(hashes, pa.string())
        ),
    }
    for name in personal:
        column = data.column(name)
        replaced[name] = pc.if_else(mask, pa.nulls(len(data), column.type), column)
    for name, column in replaced.items():
        data = data.set_column(data.schema.get_field_index(name), name, column)
    return data


# --- warehouse --------------------------------------------------------------------------
def _erase_warehouse(
    warehouse: Warehouse, suppression: Suppression, new_hashes: dict[str, str], erasure: Erasure
) -> list[int]:
    """Null the personal fields of the suppressed people's rows in one transaction; returns
    the numbers of their orders."""
    if not warehouse.path.exists():
        return []
    con = warehouse.connect(read_only=False)
    try:
        ensure_schema(con)
        emails = [
            e
            for (e,) in con.execute(
                """SELECT DISTINCT lower(trim(e)) FROM (
                    SELECT email AS e FROM main.customers UNION ALL
                    SELECT unnest([billing_email, delivery_email]) FROM main.orders)
                WHERE e IS NOT NULL"""
            ).fetchall()
            if e and email_hmac(suppression.key, e) in suppression.email_hashes
        ]
        ids = sorted(suppression.customer_ids)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE erased_hashes (old VARCHAR, new VARCHAR)")
            if new_hashes:
                con.executemany(
                    "INSERT INTO erased_hashes VALUES (?, ?)", list(map(list, new_hashes.items()))
                )
            order_ids: list[int] = []
            for table in _person_tables():
                id_col = _column_of(table, PERSON_FIELDS[table.name][0])
                email_cols = [_column_of(table, s) for s in PERSON_FIELDS[table.name][1]]
                match = " OR ".join(
                    [f"{quote_ident(id_col)} IN (SELECT unnest(?::BIGINT[]))"]
                    + [
                        f"lower(trim({quote_ident(c)})) IN (SELECT unnest(?::VARCHAR[]))"
                        for c in email_cols
                    ]
                )
                params = [ids] + [emails] * len(email_cols)
                target = main_table(table.name)
                if table.name == "orders":
                    order_ids = [
                        r[0]
                        for r in con.execute(
                            f"SELECT order_id FROM {target} WHERE {match}", params
                        ).fetchall()
                    ]
                sets = ", ".join(f"{quote_ident(c.name)} = NULL" for c in table.personal_columns)
                (count,) = con.execute(
                    f"""UPDATE {target} SET {sets},
                        _hash = coalesce((SELECT new FROM erased_hashes WHERE old = _hash), _hash)
                    WHERE {match}""",
                    params,
                ).fetchall()[0]
                erasure.warehouse_rows_erased[table.name] = count
            con.execute("DROP TABLE temp.erased_hashes")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return order_ids


def _rewrite_database(path: Path) -> None:
    """Copy the database into a fresh file and swap it in: an UPDATE leaves the old values
    in blocks the file no longer uses, and a copy has none of those."""
    if not path.exists():
        return
    tmp = path.with_name(f".{path.name}.rewrite-{os.getpid()}")
    copy_database(path, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    failpoint("forget.before_swap")
    os.replace(tmp, path)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.unlink()
    fsync_dir(path.parent)


def _erase_inbox(settings: Settings, order_ids: list[int]) -> int:
    """Forget the payloads (`data`) of webhook events of these orders."""
    from centra_pipeline.webhooks.inboxes import InboxRef

    ref = InboxRef.of(settings)
    if not order_ids or not ref.exists():
        return 0
    with ref.open() as inbox:
        return inbox.clear_payloads("order", [str(n) for n in order_ids])


def remove_leftovers(directory: Path) -> None:
    """Temporary files of an erasure that was killed."""
    for pattern in (".*.erasing-*", ".*.rewrite-*"):
        for path in directory.rglob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
