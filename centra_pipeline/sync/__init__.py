"""The engine, free of Dagster: plan a read of one stream, page through Centra, land the load
in the lake; reconciliation and the webhook inbox feed the same reads."""
