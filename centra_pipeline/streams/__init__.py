"""What the pipeline reads: one definition per stream (endpoint, read strategy, cursor,
tables), and the registry `STREAMS` that every other layer iterates over."""

from centra_pipeline.streams.model import STREAMS, TABLES, Stream, Table

__all__ = ["STREAMS", "TABLES", "Stream", "Table"]
