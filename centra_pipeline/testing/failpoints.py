"""Named points where a test can freeze the pipeline, to kill it there with SIGKILL.

Crash-safety tests (docs/architecture.md) need the process to die at a known moment: while pages
are being extracted, with Parquet written but the load not committed, inside the merge
transaction, before the snapshot swap. With `CENTRA_FAILPOINT=<name>` set, the process
writes `CENTRA_FAILPOINT_FILE` when it reaches that point and then waits forever; the test
kills it. Unset (always, outside tests), a failpoint is one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_NAME = "CENTRA_FAILPOINT"
ENV_FILE = "CENTRA_FAILPOINT_FILE"

POINTS = (
    "extract.after_first_page",  # one page fetched and written to the open load
    "lake.before_commit",  # every Parquet file written, manifest not yet moved into place
    "warehouse.before_commit",  # merge statements done, transaction not committed
    "warehouse.before_publish",  # merged and committed, snapshot not yet swapped
    "warehouse.before_handover",  # a new version uploaded, the pointer not yet moved to it
    "compact.before_switch",  # a segment written and fsynced, not yet renamed into place
    "compact.after_switch",  # the segment in place, the loads it took in not yet removed
    "forget.after_lake",  # lake files erased, the warehouse not yet
    "forget.before_swap",  # warehouse erased, its rewritten copy not yet swapped in
    "forget.before_log",  # everything erased but the snapshot, no log entry yet
)


def failpoint(name: str) -> None:
    if os.environ.get(ENV_NAME) != name:
        return
    marker = os.environ.get(ENV_FILE)
    if marker:
        Path(marker).write_text(f"{name} {os.getpid()}\n")
    while True:  # the test kills us here
        time.sleep(3600)
