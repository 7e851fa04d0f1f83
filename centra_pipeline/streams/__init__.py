"""What the pipeline reads: one module per stream, each holding its endpoint, read strategy,
cursor, tables and warehouse specifics; `STREAMS` is the registry every other layer iterates.

Adding a stream is one new module here plus one line below (and, if it needs one, an API
method in `centra_pipeline/centra/`). See docs/architecture.md for the per-stream table.
"""

from centra_pipeline.streams import catalogue, customers, orders, products, returns, stock
from centra_pipeline.streams.model import Stream, Table

STREAMS: dict[str, Stream] = {
    module.STREAM.name: module.STREAM
    for module in (orders, returns, customers, products, stock, catalogue)
}
TABLES: dict[str, Table] = {t.name: t for s in STREAMS.values() for t in s.tables}

__all__ = ["STREAMS", "TABLES", "Stream", "Table"]
