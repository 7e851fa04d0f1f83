"""Stores: which Centra stores one deployment serves, and each store's settings.

Without `CENTRA_STORES_FILE` the deployment serves one store, `default`, configured by the
single-store variables (CENTRA_ORDER_API_URL, ...) and writing straight into
CENTRA_DATA_DIR, as before. With it, the file (TOML or YAML) lists the stores:

    [[stores]]
    name = "retail"
    timezone = "Europe/Stockholm"
    order_api_url = "https://retail.centra.com/api/order"
    order_api_key_env = "RETAIL_ORDER_API_KEY"
    shop_api_url = "https://retail.centra.com/api/shop"
    shop_api_key_env = "RETAIL_SHOP_API_KEY"
    webhook_secret_env = "RETAIL_WEBHOOK_SECRET"

The file names the environment variables that hold a store's secrets, never a secret
itself. Each store then writes under CENTRA_DATA_DIR/stores/<name>/ (its own lake,
warehouse, snapshot, inbox and erasure files; docs/architecture.md, "Many stores"). Every
other setting (rate limit, crons, retention) is the deployment's and applies to each store.

A bad file is refused as a whole with a message naming the store and key: nothing runs on
half a configuration.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from centra_pipeline.settings import (
    DEFAULT_TIMEZONE,
    ENV_STORES_FILE,
    ConfigError,
    Secret,
    Settings,
    environment,
    project_root,
)

DEFAULT_STORE = "default"
STORES_DIR = "stores"
ALL_STORES_FILE = "all_stores.duckdb"
# A store name is a directory, a Dagster partition key, a URL path segment and a run tag.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

REQUIRED_KEYS = ("name", "order_api_url", "order_api_key_env")
OPTIONAL_KEYS = ("timezone", "shop_api_url", "shop_api_key_env", "webhook_secret_env")
SECRET_KEYS = ("order_api_key_env", "shop_api_key_env", "webhook_secret_env")


@dataclass(frozen=True)
class StoreEntry:
    """One store as the file describes it (secrets by variable name)."""

    name: str
    order_api_url: str
    order_api_key_env: str
    timezone: str = DEFAULT_TIMEZONE
    shop_api_url: str | None = None
    shop_api_key_env: str | None = None
    webhook_secret_env: str | None = None


@dataclass(frozen=True)
class Stores:
    """The deployment's stores, in the file's order; `settings[name]` is what a run of that
    store reads."""

    settings: dict[str, Settings]
    from_file: Path | None = None
    data_dir: Path | None = None  # CENTRA_DATA_DIR (each store's own is under stores/)
    storage_url: str | None = None  # CENTRA_STORAGE_URL (each store's own is under stores/)

    @property
    def all_stores_path(self) -> Path:
        """The analyst file that unions every store's snapshot, with a `store` column."""
        base = self.data_dir or next(iter(self.settings.values())).data_dir
        return base / ALL_STORES_FILE

    @property
    def names(self) -> list[str]:
        return list(self.settings)

    @property
    def multi(self) -> bool:
        """Whether a stores file is in use (each store under data_dir/stores/<name>)."""
        return self.from_file is not None

    def select(self, names: list[str] | None) -> list[Settings]:
        """The named stores (all when `names` is empty), or a ConfigError naming the
        unknown ones."""
        if not names:
            return list(self.settings.values())
        unknown = [n for n in names if n not in self.settings]
        if unknown:
            raise ConfigError(
                f"unknown store {', '.join(unknown)}; stores are {', '.join(self.settings)}"
            )
        return [self.settings[n] for n in dict.fromkeys(names)]

    def get(self, name: str) -> Settings:
        return self.select([name])[0]


def store_dir(data_dir: Path, name: str) -> Path:
    return data_dir / STORES_DIR / name


def load_stores(extra_env: dict[str, str] | None = None, *, secrets: bool = True) -> Stores:
    """The stores this deployment serves (ConfigError for a bad file or settings). With
    `secrets=False` (commands that read only local files: query, state) a secret variable
    that is not set leaves that secret empty instead of refusing the file."""
    env = environment(extra_env)
    base = Settings.from_env(extra_env)
    raw_path = env.get(ENV_STORES_FILE, "").strip()
    if not raw_path:
        return Stores({DEFAULT_STORE: base}, data_dir=base.data_dir, storage_url=base.storage_url)
    path = Path(raw_path).expanduser()
    if not path.is_absolute():
        path = (project_root() / path).resolve()
    entries = parse_stores_file(path)
    settings = {
        entry.name: entry_settings(base, entry, env, path, secrets=secrets) for entry in entries
    }
    return Stores(settings, from_file=path, data_dir=base.data_dir, storage_url=base.storage_url)


def entry_settings(
    base: Settings, entry: StoreEntry, env: dict[str, str], path: Path, *, secrets: bool = True
) -> Settings:
    def secret(variable: str | None, key: str) -> Secret | None:
        if variable is None:
            return None
        value = env.get(variable, "").strip()
        if not value and not secrets:
            return None
        if not value:
            raise ConfigError(
                f"{path.name}: store {entry.name!r}: {key} names {variable}, which is not set "
                "in the environment (or .env)"
            )
        return Secret(value)

    return replace(
        base,
        store=entry.name,
        order_api_url=entry.order_api_url,
        order_api_key=secret(entry.order_api_key_env, "order_api_key_env"),
        shop_api_url=entry.shop_api_url,
        shop_api_key=secret(entry.shop_api_key_env, "shop_api_key_env"),
        webhook_secret=secret(entry.webhook_secret_env, "webhook_secret_env"),
        timezone=entry.timezone,
        data_dir=store_dir(base.data_dir, entry.name),
        storage_url=base.storage_url and f"{base.storage_url}/{STORES_DIR}/{entry.name}",
    )


def parse_stores_file(path: Path) -> list[StoreEntry]:
    """The file's stores, checked: known keys only, names unique and well formed, URLs
    http(s), timezones IANA names, secret variables named (not given)."""
    if not path.is_file():
        raise ConfigError(f"{ENV_STORES_FILE}={path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path.name}: a stores file ends in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path.name} is not valid {path.suffix[1:].upper()}: {exc}") from None
    if (
        not isinstance(data, dict)
        or set(data) != {"stores"}
        or not isinstance(data["stores"], list)
    ):
        raise ConfigError(
            f"{path.name}: expected one top-level list `stores` (TOML `[[stores]]` tables, "
            "YAML `stores:` items)"
        )
    if not data["stores"]:
        raise ConfigError(f"{path.name}: `stores` is empty; list at least one store")
    entries: list[StoreEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(data["stores"], start=1):
        entry = _entry(path.name, index, item)
        if entry.name in seen:
            raise ConfigError(f"{path.name}: store name {entry.name!r} is used twice")
        seen.add(entry.name)
        entries.append(entry)
    return entries


def _entry(file: str, index: int, item: object) -> StoreEntry:
    where = f"{file}: store #{index}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} is not a table of keys")
    name = item.get("name")
    if isinstance(name, str):
        where = f"{file}: store {name!r}"
    unknown = sorted(set(item) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        hint = ""
        if any(k in ("order_api_key", "shop_api_key", "webhook_secret") for k in unknown):
            hint = " (secrets are never in the file: name their variables with *_env keys)"
        raise ConfigError(
            f"{where}: unknown key {', '.join(unknown)}{hint}; keys are "
            f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in item]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    for key, value in item.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{where}: a store name is lower-case letters, digits, '-' and '_' (at most 63, "
            "starting with a letter or digit)"
        )
    for key in ("order_api_url", "shop_api_url"):
        if key in item and not re.match(r"https?://[^/\s]+", item[key]):
            raise ConfigError(f"{where}: {key} must be an http(s) URL")
    for key in SECRET_KEYS:
        if key in item and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item[key]):
            raise ConfigError(
                f"{where}: {key} is the NAME of the environment variable holding the secret "
                "(letters, digits and '_'), not the secret"
            )
    if ("shop_api_url" in item) != ("shop_api_key_env" in item):
        raise ConfigError(f"{where}: shop_api_url and shop_api_key_env go together")
    timezone = item.get("timezone", DEFAULT_TIMEZONE)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: timezone {timezone!r} is not an IANA timezone name") from None
    return StoreEntry(**{k: v.strip() for k, v in item.items()})


def settings_for(store: str | None, extra_env: dict[str, str] | None = None) -> Settings:
    """One store's settings: the named one, or the only one when `store` is None (a
    single-store deployment, or a caller outside any partitioned run)."""
    stores = load_stores(extra_env)
    if store is None:
        if len(stores.settings) == 1:
            return next(iter(stores.settings.values()))
        raise ConfigError(
            f"this deployment serves {len(stores.settings)} stores "
            f"({', '.join(stores.names[:5])}{', ...' if len(stores.names) > 5 else ''}); "
            "say which (a run's partition, --store NAME)"
        )
    return stores.get(store)
