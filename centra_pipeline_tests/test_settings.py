"""Numeric settings: a bad value is a specific error naming the variable, never a guess."""

from __future__ import annotations

import pytest

from centra_pipeline.settings import ConfigError, Settings


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_catalogue_full_read_interval_defaults_to_a_day_and_accepts_zero() -> None:
    assert settings().catalogue_full_read_hours == 24
    assert settings(CENTRA_CATALOGUE_FULL_READ_HOURS="0").catalogue_full_read_hours == 0
    assert settings(CENTRA_CATALOGUE_FULL_READ_HOURS=" 6.5 ").catalogue_full_read_hours == 6.5


@pytest.mark.parametrize("raw", ["-1", "soon", "nan", "inf"])
def test_a_bad_catalogue_full_read_interval_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="CENTRA_CATALOGUE_FULL_READ_HOURS"):
        settings(CENTRA_CATALOGUE_FULL_READ_HOURS=raw)


@pytest.mark.parametrize("raw", ["0", "-3", "fast"])
def test_rate_limit_and_lookback_must_be_positive_numbers(raw: str) -> None:
    with pytest.raises(ConfigError, match="CENTRA_MAX_REQUESTS_PER_SECOND"):
        settings(CENTRA_MAX_REQUESTS_PER_SECOND=raw)
    with pytest.raises(ConfigError, match="CENTRA_ORDERS_LOOKBACK_DAYS"):
        settings(CENTRA_ORDERS_LOOKBACK_DAYS=raw)


@pytest.mark.parametrize("raw", ["0", "-1", "2.5", "many"])
def test_connections_must_be_a_whole_number_of_one_or_more(raw: str) -> None:
    with pytest.raises(ConfigError, match="CENTRA_MAX_CONNECTIONS"):
        settings(CENTRA_MAX_CONNECTIONS=raw)


def test_connections_and_the_refresh_interval_have_defaults_and_can_be_set() -> None:
    assert (settings().max_connections, settings().refresh_min_interval_seconds) == (4, 30.0)
    tuned = settings(CENTRA_MAX_CONNECTIONS="8", CENTRA_REFRESH_MIN_INTERVAL_SECONDS="0")
    assert (tuned.max_connections, tuned.refresh_min_interval_seconds) == (8, 0.0)
    with pytest.raises(ConfigError, match="CENTRA_REFRESH_MIN_INTERVAL_SECONDS"):
        settings(CENTRA_REFRESH_MIN_INTERVAL_SECONDS="-5")


SHARED = {"CENTRA_INBOX_URL": "postgresql://u:pw@db:5432/centra", "CENTRA_PII_KEY": "k" * 32}


def test_object_storage_is_off_by_default_and_normalised_when_set() -> None:
    assert settings().storage_url is None
    assert settings(CENTRA_STORAGE_URL="s3://lake-bucket", **SHARED).storage_url == (
        "s3://lake-bucket"
    )
    assert settings(CENTRA_STORAGE_URL="s3://lake-bucket/prod//centra/", **SHARED).storage_url == (
        "s3://lake-bucket/prod/centra"
    )


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("gs://bucket/x", "must be an S3 URL"),
        ("/var/lake", "no scheme"),
        ("s3://key:secret@bucket/x", "without credentials"),
        ("s3://bucket/x?versionId=1", "without credentials"),
        ("s3://Bad_Bucket/x", "not an S3 bucket name"),
        ("s3://bucket/../x", "'.' or '..'"),
    ],
)
def test_a_bad_storage_url_is_refused_with_what_to_set(raw: str, says: str) -> None:
    with pytest.raises(ConfigError, match="CENTRA_STORAGE_URL") as error:
        settings(CENTRA_STORAGE_URL=raw, **SHARED)
    assert says in str(error.value)
    assert "secret" not in str(error.value)


def test_object_storage_needs_the_shared_inbox_and_one_pii_key() -> None:
    with pytest.raises(ConfigError, match="needs CENTRA_INBOX_URL"):
        settings(CENTRA_STORAGE_URL="s3://bucket/x", CENTRA_PII_KEY="k" * 32)
    with pytest.raises(ConfigError, match="needs CENTRA_PII_KEY"):
        settings(CENTRA_STORAGE_URL="s3://bucket/x", CENTRA_INBOX_URL=SHARED["CENTRA_INBOX_URL"])
