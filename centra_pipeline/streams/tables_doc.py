"""Generate docs/tables.md (the table reference) from the schema definitions.

    uv run python -m centra_pipeline.streams.tables_doc > docs/tables.md

A test fails when the committed file differs from what this prints, so the reference can
never drift from the code.
"""

from __future__ import annotations

from centra_pipeline.streams import STREAMS, TABLES
from centra_pipeline.streams.model import META_DESCRIPTIONS, META_TYPES, warehouse_meta


def render() -> str:
    out = [
        "# Table reference",
        "",
        "Generated from `centra_pipeline/streams/` by",
        "`python -m centra_pipeline.streams.tables_doc`;",
        "a test keeps it current. Every table lives in the analyst snapshot",
        "`$CENTRA_DATA_DIR/centra.duckdb` (schema `main`), next to the pipeline's own tables in",
        "schema `pipeline` (`sync_state`, `load_log`, `schema_drift`).",
        "",
        "Conventions: column names are Centra's JSON field names in snake_case (a nested field",
        "joins its path); money is `DECIMAL(18,4)` in the record's currency; timestamps are",
        "`TIMESTAMPTZ`, converted from the store's timezone (`CENTRA_TIMEZONE`); Centra's",
        "`0000-00-00 00:00:00` is NULL; every id is `BIGINT` in every table that holds it.",
        "Fields that no column maps are kept per row in `_extra` (JSON) and in the lake's raw",
        "JSON. Child tables are replaced together with their parent row.",
        "",
        "Columns marked **Personal data** hold a person's e-mail, phone, name or address:",
        "`centra-pipeline forget` erases them (in the lake too), and `CENTRA_PII=hash` or",
        "`drop` hashes them in the analyst snapshot or leaves them out.",
        "",
        "| stream | tables |",
        "| --- | --- |",
    ]
    for stream in STREAMS.values():
        links = ", ".join(f"[`{t.name}`](#{t.name})" for t in stream.tables)
        out.append(f"| {stream.name} ({stream.api.replace('_', ' ')}) | {links} |")
    for table in TABLES.values():
        out += [
            "",
            f"## {table.name}",
            "",
            table.description,
            "",
            f"- Source: {table.source}",
            f"- Primary key: `{', '.join(table.primary_key)}`",
        ]
        if table.parent:
            out.append(
                f"- Parent: [`{table.parent}`](#{table.parent}) via `{', '.join(table.parent_key)}`"
            )
        out += [
            "",
            "| column | type | key | Centra field | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for col in table.columns:
            key = "PK" if col.name in table.primary_key else ("required" if col.required else "")
            source = col.source or ""
            if source.startswith("@"):
                source = "(derived)" if "position" in source else "(parent's key)"
            elif col.transform is not None:
                source = f"{source} (normalised)"
            else:
                source = f"`{source}`"
            personal = " **Personal data.**" if col.personal else ""
            out.append(
                f"| `{col.name}` | {col.type} | {key} | {source} | "
                f"{col.description.replace('|', '/')}{personal} |"
            )
        for meta in warehouse_meta(table):
            out.append(
                f"| `{meta}` | {META_TYPES[meta]} |  | (load metadata) | "
                f"{META_DESCRIPTIONS.get(meta, '')} |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
