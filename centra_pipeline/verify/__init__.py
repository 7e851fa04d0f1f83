"""`centra-pipeline verify`: compare what Centra serves with the analyst snapshot, per
store-local day, without writing anything.

For each stream it compares day by day:

| stream    | Centra (Order API)                 | snapshot  | numbers per day           |
|-----------|------------------------------------|-----------|---------------------------|
| orders    | `GET /orders`, day of `orderDate`  | orders    | count per status, and     |
|           |                                    |           | total per currency        |
| returns   | `GET /returns`, day of `date`      | returns   | count                     |
| customers | `GET /customers`, day of `created` | customers | count                     |

Both sides go through the same conversions: Centra's raw values are typed with the schema's
column definitions and the converters of `centra_pipeline.centra.quirks`, exactly as a load
would store them (money as DECIMAL(18,4), the status name, timestamps from the store's
timezone), and a day is the store-local date of the converted timestamp. The snapshot side
counts only rows the pipeline has not marked `_missing_since`.

Memory stays flat: the full read keeps per-day numbers only. The days that differ are then
re-read from Centra and compared id by id with the snapshot rows of those days, so the report
can name the records when there are few.

Nothing is written anywhere: the snapshot is opened read-only (and without a spill
directory), and Centra is only read.

- `specs`: what is compared per stream, and the checks of the caller's input
- `centra_side`, `snapshot_side`: each side's numbers per day, and the records of some days
- `compare`: `verify()`, the comparison itself
- `results`: what it finds, the verdict and the exit code
- `report`: the text and JSON report

The command (`add_arguments`/`run`) is `centra_pipeline.cli.verify`.
"""
