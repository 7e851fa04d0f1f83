"""Memory allocators for a process that extracts: the settings that keep its peak flat.

Measured on a 100k-order full sync (six streams read at once, each page parsed and flattened
while others are fetched; benchmarks/bench_sync.py), peak RSS with the defaults was 817 MB;
most of it memory freed but kept by allocators, not live data (Arrow held at most 131 MB,
live Python objects about 150 MB). Two process-wide settings bring it down:

- Arrow allocates from the system allocator instead of its bundled mimalloc, which keeps
  freed pages for reuse per thread: 817 → 715 MB, no slower.
- glibc gives each thread that allocates its own heap ("arena", up to 8 per core); the
  threads reading pages fragment every one of them. Two arenas: 715 → 670 MB, no slower.

Both apply only to what is allocated after the call, and glibc fixes its number of arenas
when a second thread first allocates: so the CLI and the code location call this first,
before any thread starts, and the extraction again (for other entry points; a second call
does nothing). A user's own ARROW_DEFAULT_MEMORY_POOL or MALLOC_ARENA_MAX wins. Elsewhere
than on glibc, the arenas are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
import threading

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2

_lock = threading.Lock()
_done = False


def lean_allocators() -> None:
    global _done
    with _lock:
        if _done:
            return
        _done = True
        if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
            if "pyarrow" in sys.modules:
                import pyarrow as pa

                pa.set_memory_pool(pa.system_memory_pool())
            else:  # read by Arrow when it first allocates; importing it here costs ~0.2 s
                os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
        glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
        if glibc and "MALLOC_ARENA_MAX" not in os.environ:
            try:
                ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, ARENAS)
            except (OSError, AttributeError) as exc:  # an unusual libc: keep its defaults
                log.debug("mallopt unavailable: %s", exc)
