"""`centra-pipeline verify`: compare what Centra serves with the analyst snapshot, per day,
without writing anything."""
