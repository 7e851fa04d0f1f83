"""Dagster's SQLite instance storage, with each database's engine kept instead of remade.

Dagster's own SQLite storage creates a SQLAlchemy engine for every write: each event of a run
makes an engine, opens a connection, compiles its statements afresh (the compiled-statement
cache lives on the engine), commits and closes; an asset event does it twice (the run's own
database and the index). That costs ~20 ms an asset event on a 2-core machine, and a sync run
writes ~270 events. Here each database file keeps one engine with a few open connections,
so an asset event costs ~6 ms (benchmarks/results/sync.md).

Nothing else changes: the files, their schema and layout, the locking and durability are
Dagster's. The project's dagster.yaml selects it (`storage: custom:`); `storage: sqlite:`
with the same `base_dir` reads the same history. Engines are kept per process for the
run databases it used last (`KEEP_RUN_ENGINES`), so a webserver that reads many runs holds
a bounded number of files open; `wipe` disposes them before Dagster deletes the files.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import (
    SqliteScheduleStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from sqlalchemy.engine import Connection, Engine

from centra_pipeline.settings import project_root

# Run databases whose engines a process keeps (besides the index's); a run writes one.
KEEP_RUN_ENGINES = 4


class _Engines:
    """Engines by connection string; beyond `keep`, the least recently used is disposed."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn_string: str, **connect_args: Any) -> Engine:
        with self._lock:
            engine = self._engines.pop(conn_string, None)
            if engine is None:
                # No cap on connections (beyond 5 kept open, a connection closes on return):
                # Dagster's own storage has none, and a webserver's many threads must never
                # wait for a pooled one.
                engine = create_engine(conn_string, connect_args=connect_args, max_overflow=-1)
            self._engines[conn_string] = engine
            while len(self._engines) > self.keep:
                _, old = self._engines.popitem(last=False)
                old.dispose()
            return engine

    def dispose(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


class KeptEngineEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose databases keep their engines (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        # Before Dagster's __init__, which already connects (to migrate the index).
        self._index_engines = _Engines(keep=1)
        self._run_engines = _Engines(keep=KEEP_RUN_ENGINES)
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> KeptEngineEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Dagster's own _connect, with the engine taken from the kept ones.
        with self._db_lock:
            conn_string = self.conn_string_for_shard(shard)
            engines = self._index_engines if shard == "index" else self._run_engines
            engine = engines.get(conn_string, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def wipe(self) -> None:
        with self._db_lock:
            self._index_engines.dispose()
            self._run_engines.dispose()
        super().wipe()

    def dispose(self) -> None:
        self._index_engines.dispose()
        self._run_engines.dispose()
        super().dispose()


class KeptEngineRunStorage(SqliteRunStorage):
    """SqliteRunStorage with its one database's engine kept."""

    def __init__(self, conn_string: str, inst_data: Any = None) -> None:
        self._engines = _Engines(keep=1)
        super().__init__(conn_string, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> KeptEngineRunStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        engine = self._engines.get(self._conn_string)
        with engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._engines.dispose()
        super().dispose()


class KeptEngineSqliteStorage(DagsterSqliteStorage):
    """Dagster's `storage: sqlite:` layout under `base_dir`, with kept engines for the run
    and event log databases (schedules and sensor state keep Dagster's own storage)."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self.base_dir = base_dir
        # Dagster's own layout functions, so the files stay where `storage: sqlite:` has them.
        self._run_storage = KeptEngineRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptEngineEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> KeptEngineSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


def project_instance_settings(home: Path) -> str:
    """The project's dagster.yaml with everything it stores under `home` instead of
    data/dagster: the instance a user gets, for a DAGSTER_HOME of its own (tests,
    benchmarks)."""
    config = yaml.safe_load((project_root() / "dagster.yaml").read_text())
    config["storage"]["custom"]["config"]["base_dir"] = str(home / "storage")
    for key in ("local_artifact_storage", "compute_logs"):
        config.pop(key, None)  # Dagster's defaults are under DAGSTER_HOME
    return yaml.safe_dump(config)
