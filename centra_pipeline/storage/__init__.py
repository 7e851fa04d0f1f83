"""Where data is kept: the lake (immutable Parquet loads), the warehouse (the pipeline's
private DuckDB: merged tables, cursors, load log) and the analyst snapshot published from it."""
