"""How settings.py reads a value: the error it raises, the secret wrapper, and the parsers
that turn one environment variable into a checked value or a ConfigError naming it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and ending
# with a letter or digit.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


class ConfigError(ValueError):
    """Configuration is missing or invalid; the message says which variable and what to set."""


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def number(env: dict[str, str], name: str, default: float, *, zero_ok: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0 or (value == 0 and not zero_ok) or value != value or value == float("inf"):
        bound = "0 or more" if zero_ok else "greater than 0"
        raise ConfigError(f"{name} must be a number {bound}, got {raw!r}")
    return value


def count(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
        raise ConfigError(f"{name} must be a whole number of 1 or more, got {raw!r}")
    return int(raw)


def share(env: dict[str, str], name: str, default: float) -> float:
    value = number(env, name, default, zero_ok=True)
    if value > 1:
        raise ConfigError(f"{name} is a share between 0 and 1 (0.01 = 1%), got {value:g}")
    return value


def cron(env: dict[str, str], name: str, default: str) -> str:
    """Five cron fields (Dagster checks the rest when it builds the schedule)."""
    value = env.get(name, "").strip() or default
    fields = value.split()
    if len(fields) != 5 or not all(re.fullmatch(r"[0-9A-Za-z*/,\-]+", f) for f in fields):
        raise ConfigError(f"{name}={value!r} is not a cron expression (e.g. {default!r})")
    return value


def choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def postgres_url(name: str, url: Secret | None) -> Secret | None:
    if url is not None and not url.get().startswith(("postgresql://", "postgres://")):
        scheme = url.get().split("://")[0] if "://" in url.get() else "no scheme"
        raise ConfigError(
            f"{name} must be a PostgreSQL URL (postgresql://user:password@host:5432/"
            f"db), got one with {scheme!r}; unset it to keep the SQLite inbox"
        )
    return url


def storage_url(name: str, url: str | None) -> str | None:
    """`s3://bucket` or `s3://bucket/prefix`, normalised without a trailing slash. The URL
    names a place, never a credential: those come from the standard AWS variables."""
    if url is None:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "s3":
        raise ConfigError(
            f"{name} must be an S3 URL (s3://bucket/prefix), got one with "
            f"{scheme if sep else 'no scheme'!r}; unset it to keep storage under CENTRA_DATA_DIR"
        )
    if any(c in rest for c in "@?#") or "\\" in rest:
        raise ConfigError(
            f"{name} must be s3://bucket/prefix without credentials or query; the keys go in "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the endpoint in AWS_ENDPOINT_URL"
        )
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ConfigError(f"{name}: {bucket!r} is not an S3 bucket name")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ConfigError(f"{name}: the prefix may not contain '.' or '..'")
    return "/".join(["s3://" + bucket, *parts])


def redact_url(url: str) -> str:
    """A URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname or ''}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))
