"""Object storage: a store's durable files under `CENTRA_STORAGE_URL` (s3://bucket/prefix),
through pyarrow's filesystem layer (docs/architecture.md, "Workers anywhere").

Object storage has no rename and no append, but a single PUT is atomic: readers see the
whole old object or the whole new one. So everything written here is either a new key that
nothing reads until a marker names it (a load's files before its manifest), or one object
replaced whole (the suppression list, a snapshot). Credentials and the endpoint come from
the standard AWS variables; `AWS_ENDPOINT_URL` points at an S3-compatible store.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow.fs as pafs

ENV_ENDPOINT = "AWS_ENDPOINT_URL"
SNAPSHOT_OBJECT = "centra.duckdb"  # a store's analyst snapshot, under the store's prefix
ALL_STORES_OBJECT = "all_stores.duckdb"  # the union, under the deployment's prefix
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
COPY_CHUNK = 8 * 1024 * 1024


class StorageError(OSError):
    """Object storage refused or could not be reached; the message names the URL, never a
    credential."""


def s3_filesystem(env: dict[str, str] | None = None) -> pafs.S3FileSystem:
    env = dict(os.environ) if env is None else env
    options: dict[str, Any] = {
        "region": next((env[v] for v in REGION_VARIABLES if env.get(v)), "us-east-1"),
        "connect_timeout": 10,
        "request_timeout": 60,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=5),
    }
    endpoint = env.get(f"{ENV_ENDPOINT}_S3") or env.get(ENV_ENDPOINT)
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        options["endpoint_override"] = rest.rstrip("/") if rest else scheme
        options["scheme"] = scheme if rest else "https"
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        options["access_key"] = env["AWS_ACCESS_KEY_ID"]
        options["secret_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            options["session_token"] = env["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**options)


@dataclass(frozen=True)
class ObjectStore:
    """Keys under one prefix of one filesystem. `url` is what messages show."""

    fs: pafs.FileSystem
    base: str  # the prefix in the filesystem's terms: "bucket/prefix"
    url: str  # s3://bucket/prefix

    @classmethod
    def for_url(cls, url: str) -> ObjectStore:
        scheme, _, rest = url.partition("://")
        if scheme != "s3":
            raise ValueError(f"not an object storage URL: {url}")
        return cls(s3_filesystem(), rest.rstrip("/"), url.rstrip("/"))

    def child(self, prefix: str) -> ObjectStore:
        return ObjectStore(self.fs, self.path(prefix), f"{self.url}/{prefix.strip('/')}")

    def path(self, key: str = "") -> str:
        key = key.strip("/")
        return f"{self.base}/{key}" if key else self.base

    def uri(self, key: str = "") -> str:
        key = key.strip("/")
        return f"{self.url}/{key}" if key else self.url

    def relative(self, path: str) -> str:
        """The key of a filesystem path under this store."""
        return path[len(self.base) :].lstrip("/")

    # --- reading ---------------------------------------------------------------------------
    def list(self, prefix: str = "", *, recursive: bool = True) -> list[pafs.FileInfo]:
        """Files under `prefix` (none if it does not exist), in key order."""
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True, recursive=recursive)
        with self._errors(f"list {self.uri(prefix)}"):
            infos = self.fs.get_file_info(selector)
        return sorted(
            (i for i in infos if i.type == pafs.FileType.File), key=lambda info: info.path
        )

    def directories(self, prefix: str = "") -> list[str]:
        """The names of the "directories" (common prefixes) right under `prefix`, sorted."""
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True)
        with self._errors(f"list {self.uri(prefix)}"):
            infos = self.fs.get_file_info(selector)
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def exists(self, key: str) -> bool:
        with self._errors(f"look up {self.uri(key)}"):
            return self.fs.get_file_info(self.path(key)).type == pafs.FileType.File

    def info(self, key: str) -> pafs.FileInfo:
        with self._errors(f"look up {self.uri(key)}"):
            return self.fs.get_file_info(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        with (
            self._errors(f"read {self.uri(key)}"),
            self.fs.open_input_stream(self.path(key)) as stream,
        ):
            return stream.read()

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode()

    def open_input(self, key: str) -> pafs.NativeFile:
        with self._errors(f"open {self.uri(key)}"):
            return self.fs.open_input_file(self.path(key))

    def download(self, key: str, target: Path) -> None:
        """Copy an object to a local file, written beside it and renamed into place."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.download-{os.getpid()}")
        try:
            with (
                self._errors(f"download {self.uri(key)}"),
                self.fs.open_input_stream(self.path(key)) as source,
                open(tmp, "wb") as sink,
            ):
                _copy(source, sink)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    # --- writing ---------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes) -> None:
        """One PUT: readers see the old object or this one, never a part."""
        with (
            self._errors(f"write {self.uri(key)}"),
            self.fs.open_output_stream(self.path(key)) as stream,
        ):
            stream.write(data)

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode())

    def upload(self, source: Path, key: str) -> None:
        with (
            self._errors(f"upload to {self.uri(key)}"),
            open(source, "rb") as handle,
            self.fs.open_output_stream(self.path(key)) as sink,
        ):
            _copy(handle, sink)

    @contextmanager
    def open_output(self, key: str) -> Iterator[pafs.NativeFile]:
        with (
            self._errors(f"write {self.uri(key)}"),
            self.fs.open_output_stream(self.path(key)) as stream,
        ):
            yield stream

    def delete(self, key: str) -> None:
        with self._errors(f"delete {self.uri(key)}"), suppress(FileNotFoundError):
            self.fs.delete_file(self.path(key))

    def delete_prefix(self, prefix: str) -> None:
        for info in self.list(prefix):
            self.delete(self.relative(info.path))

    def delete_dir(self, prefix: str) -> None:
        """Every object under `prefix` and its directory marker, in batched requests (pyarrow
        then leaves an empty marker object for the parent directory)."""
        with self._errors(f"delete {self.uri(prefix)}"), suppress(FileNotFoundError):
            self.fs.delete_dir(self.path(prefix))

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as error:
            # pyarrow's messages name the bucket and the AWS error, not the credentials.
            raise StorageError(f"object storage: could not {what}: {error}") from None


def _copy(source: IO[bytes] | Any, sink: IO[bytes] | Any) -> None:
    while True:
        chunk = source.read(COPY_CHUNK)
        if not chunk:
            return
        sink.write(chunk)


def remove_local(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
