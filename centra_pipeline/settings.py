"""Configuration: environment variable names, defaults and the paths derived from them.

Everything the pipeline reads from the environment is named here, so the README's
configuration table, `centra-pipeline check` and the Dagster resources agree. A `.env` file
in the project root (or the current directory) is read too; real environment variables win.

Secrets are wrapped in `Secret`, whose `str()`/`repr()` never show the value: a secret that
reaches a log line, an exception or Dagster metadata by accident prints as `***`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from centra_pipeline.settings_values import (
    ConfigError,
    Secret,
    choice,
    count,
    cron,
    number,
    postgres_url,
    share,
    storage_url,
)

ENV_ORDER_API_URL = "CENTRA_ORDER_API_URL"
ENV_ORDER_API_KEY = "CENTRA_ORDER_API_KEY"
ENV_SHOP_API_URL = "CENTRA_SHOP_API_URL"
ENV_SHOP_API_KEY = "CENTRA_SHOP_API_KEY"
ENV_WEBHOOK_SECRET = "CENTRA_WEBHOOK_SECRET"
ENV_TIMEZONE = "CENTRA_TIMEZONE"
ENV_DATA_DIR = "CENTRA_DATA_DIR"
# Extensions of the README (documented in the README's configuration table).
ENV_MAX_RPS = "CENTRA_MAX_REQUESTS_PER_SECOND"
ENV_ORDERS_LOOKBACK_DAYS = "CENTRA_ORDERS_LOOKBACK_DAYS"
ENV_WEBHOOK_TOLERANCE = "CENTRA_WEBHOOK_TOLERANCE_SECONDS"
ENV_CATALOGUE_FULL_READ_HOURS = "CENTRA_CATALOGUE_FULL_READ_HOURS"
ENV_RECONCILE_CRON = "CENTRA_RECONCILE_CRON"
ENV_RECONCILE_FULL_DAYS = "CENTRA_RECONCILE_FULL_DAYS"
ENV_RECONCILE_WARN_SHARE = "CENTRA_RECONCILE_WARN_SHARE"
ENV_SYNC_CRON = "CENTRA_SYNC_CRON"
ENV_SYNC_EXECUTOR = "CENTRA_SYNC_EXECUTOR"
ENV_MAX_CONNECTIONS = "CENTRA_MAX_CONNECTIONS"
ENV_REFRESH_MIN_INTERVAL = "CENTRA_REFRESH_MIN_INTERVAL_SECONDS"
ENV_MAINTENANCE_CRON = "CENTRA_MAINTENANCE_CRON"
ENV_COMPACT_OLDER_THAN_DAYS = "CENTRA_COMPACT_OLDER_THAN_DAYS"
ENV_INBOX_RETENTION_DAYS = "CENTRA_INBOX_RETENTION_DAYS"
ENV_REFRESH_RUN_RETENTION_DAYS = "CENTRA_REFRESH_RUN_RETENTION_DAYS"
ENV_PII = "CENTRA_PII"
ENV_PII_KEY = "CENTRA_PII_KEY"
ENV_STORES_FILE = "CENTRA_STORES_FILE"  # several stores: centra_pipeline/stores.py
ENV_INBOX_URL = "CENTRA_INBOX_URL"  # a shared PostgreSQL inbox: webhooks/inbox_postgres.py
ENV_STORAGE_URL = "CENTRA_STORAGE_URL"  # s3://bucket/prefix: storage/objects.py
# The API connection, as `centra-pipeline check` and the emulator's printed exports name it.
CONNECTION_ENV = (ENV_ORDER_API_URL, ENV_ORDER_API_KEY, ENV_SHOP_API_URL, ENV_SHOP_API_KEY)

DEFAULT_TIMEZONE = "UTC"
DEFAULT_MAX_RPS = 10.0
DEFAULT_MAX_CONNECTIONS = 4
DEFAULT_REFRESH_MIN_INTERVAL_SECONDS = 30.0
DEFAULT_ORDERS_LOOKBACK_DAYS = 7.0
DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300
DEFAULT_CATALOGUE_FULL_READ_HOURS = 24.0
DEFAULT_RECONCILE_CRON = "30 3 * * *"  # daily, at a quiet hour
DEFAULT_RECONCILE_FULL_DAYS = 7.0
DEFAULT_RECONCILE_WARN_SHARE = 0.01
DEFAULT_SYNC_CRON = "0 * * * *"  # hourly, on the hour
DEFAULT_MAINTENANCE_CRON = "0 4 * * 0"  # weekly, Sunday at a quiet hour
DEFAULT_COMPACT_OLDER_THAN_DAYS = 1.0
DEFAULT_INBOX_RETENTION_DAYS = 30.0
DEFAULT_REFRESH_RUN_RETENTION_DAYS = 7.0
SYNC_EXECUTORS = ("in_process", "multiprocess")  # the first is the default
PII_MODES = ("keep", "hash", "drop")  # the first is the default

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout this package runs from, or the current directory for an installed copy."""
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").exists() and (candidate / "workspace.yaml").exists():
        return candidate
    return Path.cwd()


def environment(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ over the project's .env file (real variables win over the file)."""
    merged: dict[str, str] = {}
    for env_file in {project_root() / ".env", Path.cwd() / ".env"}:
        if env_file.is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    if extra_env:
        merged.update(extra_env)
    return merged


def connection_env(
    order_api_url: str,
    order_api_key: str,
    shop_api_url: str,
    shop_api_key: str,
    timezone: str,
    webhook_secret: str | None = None,
) -> dict[str, str]:
    """The variables that point the pipeline at one Centra store (or an emulated one)."""
    env = dict(
        zip(
            CONNECTION_ENV,
            (order_api_url, order_api_key, shop_api_url, shop_api_key),
            strict=True,
        )
    )
    env[ENV_TIMEZONE] = timezone
    if webhook_secret:
        env[ENV_WEBHOOK_SECRET] = webhook_secret
    return env


@dataclass(frozen=True)
class Settings:
    # The store these settings belong to (centra_pipeline/stores.py); `default` without a
    # stores file.
    store: str = "default"
    order_api_url: str | None = None
    order_api_key: Secret | None = field(default=None, repr=False)
    shop_api_url: str | None = None
    shop_api_key: Secret | None = field(default=None, repr=False)
    webhook_secret: Secret | None = field(default=None, repr=False)
    timezone: str = DEFAULT_TIMEZONE
    data_dir: Path = field(default_factory=lambda: project_root() / "data")
    # One limit per API, shared by every stream and thread of a run (centra/ratelimit.py).
    max_requests_per_second: float = DEFAULT_MAX_RPS
    # Connections per API that long reads (full syncs, reconciliation, backfills) page with
    # at once, within the rate limit.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Webhook refresh runs start at most this often; events arriving in between are
    # coalesced into the next run.
    refresh_min_interval_seconds: float = DEFAULT_REFRESH_MIN_INTERVAL_SECONDS
    orders_lookback_days: float = DEFAULT_ORDERS_LOOKBACK_DAYS
    webhook_tolerance_seconds: int = DEFAULT_WEBHOOK_TOLERANCE_SECONDS
    # How often the Shop API catalogue is read in full; in between, only the products the
    # Order API reports changed are re-read (0 = a full read every run).
    catalogue_full_read_hours: float = DEFAULT_CATALOGUE_FULL_READ_HOURS
    # The centra_reconcile schedule: when it runs, how often a stream gets the full pass
    # (the other days: the pass over open orders and returns), and the share of what a
    # pass read that it may repair before its check warns.
    reconcile_cron: str = DEFAULT_RECONCILE_CRON
    reconcile_full_days: float = DEFAULT_RECONCILE_FULL_DAYS
    reconcile_warn_share: float = DEFAULT_RECONCILE_WARN_SHARE
    # The scheduled sync: when it runs, and whether its two steps (the streams, read
    # concurrently, then the snapshot) run in the run's own process (`in_process`) or each
    # in a child process (`multiprocess`: isolates a step's memory, costs start-up).
    sync_cron: str = DEFAULT_SYNC_CRON
    sync_executor: str = SYNC_EXECUTORS[0]
    # The centra_maintenance schedule: when it runs; it compacts lake loads older than
    # compact_older_than_days, deletes applied webhook events older than
    # inbox_retention_days and webhook refresh runs older than refresh_run_retention_days.
    maintenance_cron: str = DEFAULT_MAINTENANCE_CRON
    compact_older_than_days: float = DEFAULT_COMPACT_OLDER_THAN_DAYS
    inbox_retention_days: float = DEFAULT_INBOX_RETENTION_DAYS
    refresh_run_retention_days: float = DEFAULT_REFRESH_RUN_RETENTION_DAYS
    # Personal data in the analyst snapshot: kept, replaced by a keyed hash, or left out;
    # the key of every keyed hash (else one made and kept in the erasure directory).
    pii: str = PII_MODES[0]
    pii_key: Secret | None = field(default=None, repr=False)
    # The webhook inbox in PostgreSQL, shared by several receivers (a secret: it may hold a
    # password); None keeps each store's SQLite inbox under the data directory.
    inbox_url: Secret | None = field(default=None, repr=False)
    # Object storage (s3://bucket/prefix) holding this store's lake, warehouse versions,
    # snapshot and erasure files; None keeps them under data_dir, which then holds only
    # caches (docs/deployment.md).
    storage_url: str | None = None

    @classmethod
    def from_env(cls, extra_env: dict[str, str] | None = None) -> Settings:
        env = environment(extra_env)

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def secret(name: str) -> Secret | None:
            value = text(name)
            return Secret(value) if value else None

        timezone = text(ENV_TIMEZONE) or DEFAULT_TIMEZONE
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{ENV_TIMEZONE}={timezone!r} is not an IANA timezone name "
                "(for example Europe/Stockholm); set it to the timezone of the Centra store"
            ) from None
        data_dir = Path(text(ENV_DATA_DIR) or project_root() / "data").expanduser()
        if not data_dir.is_absolute():
            data_dir = (project_root() / data_dir).resolve()
        tolerance = number(env, ENV_WEBHOOK_TOLERANCE, DEFAULT_WEBHOOK_TOLERANCE_SECONDS)
        if text(ENV_STORAGE_URL):
            _require_for_object_storage(text(ENV_INBOX_URL), text(ENV_PII_KEY))
        return cls(
            order_api_url=text(ENV_ORDER_API_URL),
            order_api_key=secret(ENV_ORDER_API_KEY),
            shop_api_url=text(ENV_SHOP_API_URL),
            shop_api_key=secret(ENV_SHOP_API_KEY),
            webhook_secret=secret(ENV_WEBHOOK_SECRET),
            timezone=timezone,
            data_dir=data_dir,
            max_requests_per_second=number(env, ENV_MAX_RPS, DEFAULT_MAX_RPS),
            max_connections=count(env, ENV_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS),
            refresh_min_interval_seconds=number(
                env,
                ENV_REFRESH_MIN_INTERVAL,
                DEFAULT_REFRESH_MIN_INTERVAL_SECONDS,
                zero_ok=True,
            ),
            orders_lookback_days=number(
                env, ENV_ORDERS_LOOKBACK_DAYS, DEFAULT_ORDERS_LOOKBACK_DAYS
            ),
            webhook_tolerance_seconds=int(tolerance),
            catalogue_full_read_hours=number(
                env,
                ENV_CATALOGUE_FULL_READ_HOURS,
                DEFAULT_CATALOGUE_FULL_READ_HOURS,
                zero_ok=True,
            ),
            reconcile_cron=cron(env, ENV_RECONCILE_CRON, DEFAULT_RECONCILE_CRON),
            reconcile_full_days=number(
                env, ENV_RECONCILE_FULL_DAYS, DEFAULT_RECONCILE_FULL_DAYS, zero_ok=True
            ),
            reconcile_warn_share=share(env, ENV_RECONCILE_WARN_SHARE, DEFAULT_RECONCILE_WARN_SHARE),
            sync_cron=cron(env, ENV_SYNC_CRON, DEFAULT_SYNC_CRON),
            sync_executor=choice(env, ENV_SYNC_EXECUTOR, SYNC_EXECUTORS),
            maintenance_cron=cron(env, ENV_MAINTENANCE_CRON, DEFAULT_MAINTENANCE_CRON),
            compact_older_than_days=number(
                env, ENV_COMPACT_OLDER_THAN_DAYS, DEFAULT_COMPACT_OLDER_THAN_DAYS, zero_ok=True
            ),
            inbox_retention_days=number(
                env, ENV_INBOX_RETENTION_DAYS, DEFAULT_INBOX_RETENTION_DAYS, zero_ok=True
            ),
            refresh_run_retention_days=number(
                env,
                ENV_REFRESH_RUN_RETENTION_DAYS,
                DEFAULT_REFRESH_RUN_RETENTION_DAYS,
                zero_ok=True,
            ),
            pii=choice(env, ENV_PII, PII_MODES),
            pii_key=secret(ENV_PII_KEY),
            inbox_url=postgres_url(ENV_INBOX_URL, secret(ENV_INBOX_URL)),
            storage_url=storage_url(ENV_STORAGE_URL, text(ENV_STORAGE_URL)),
        )

    # Paths derived from CENTRA_DATA_DIR -------------------------------------------------
    @property
    def erasure_dir(self) -> Path:
        """The suppression list, the erasure log and the generated hash key."""
        return self.data_dir / "erasure"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def warehouse_path(self) -> Path:
        """The pipeline's private DuckDB file. Analysts never open it (docs/architecture.md)."""
        return self.data_dir / "warehouse" / "warehouse.duckdb"

    @property
    def snapshot_path(self) -> Path:
        """The analyst snapshot, replaced atomically after each successful run."""
        return self.data_dir / "centra.duckdb"

    @property
    def inbox_path(self) -> Path:
        """The durable webhook inbox (SQLite, WAL mode)."""
        return self.data_dir / "webhooks" / "inbox.sqlite3"

    # Checks -------------------------------------------------------------------------------
    def missing_order_api(self) -> list[str]:
        return [
            name
            for name, value in (
                (ENV_ORDER_API_URL, self.order_api_url),
                (ENV_ORDER_API_KEY, self.order_api_key),
            )
            if not value
        ]

    def missing_shop_api(self) -> list[str]:
        return [
            name
            for name, value in (
                (ENV_SHOP_API_URL, self.shop_api_url),
                (ENV_SHOP_API_KEY, self.shop_api_key),
            )
            if not value
        ]

    def require_order_api(self) -> tuple[str, Secret]:
        missing = self.missing_order_api()
        if missing:
            raise ConfigError(_missing_message(missing))
        assert self.order_api_url and self.order_api_key
        return self.order_api_url, self.order_api_key

    def require_shop_api(self) -> tuple[str, Secret]:
        missing = self.missing_shop_api()
        if missing:
            raise ConfigError(_missing_message(missing))
        assert self.shop_api_url and self.shop_api_key
        return self.shop_api_url, self.shop_api_key


def _require_for_object_storage(inbox_url: str | None, pii_key: str | None) -> None:
    """Workers anywhere share everything a store needs: what a worker would otherwise keep
    on its own disk must be configured to be shared."""
    if not inbox_url:
        raise ConfigError(
            f"{ENV_STORAGE_URL} needs {ENV_INBOX_URL}=postgresql://...: the webhook inbox and "
            "each store's writer lease live there, and a worker's own inbox file is not shared"
        )
    if not pii_key:
        raise ConfigError(
            f"{ENV_STORAGE_URL} needs {ENV_PII_KEY}: every worker must hash with one key, and "
            "a key generated on one machine is not shared with the others"
        )


def _missing_message(missing: list[str]) -> str:
    return (
        f"Centra is not configured: set {', '.join(missing)} (in the environment or in .env "
        "in the project root). To try the pipeline without a Centra store, run "
        "`centra-pipeline demo`, which starts the bundled emulator."
    )
