"""A throwaway S3 API server on loopback, for tests and benchmarks: moto's standalone server
(`moto_server`, from the `moto[server]` package the tests install) in a process of its own,
on a free port, with a bucket made for the caller and stopped on exit. It speaks the S3 API
over HTTP like any S3-compatible store, so the pipeline reaches it exactly as it would reach
one in production: through `AWS_ENDPOINT_URL` and the standard AWS credentials."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from centra_pipeline.testing.postgres import free_port


class S3Server:
    def __init__(self) -> None:
        found = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        if not Path(found).exists():
            raise RuntimeError("moto's S3 server is not installed: `uv sync` installs moto[server]")
        self.command = found
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_hex(20)
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> S3Server:
        self._process = subprocess.Popen(
            [self.command, "-H", "127.0.0.1", "-p", str(self.port)],
            # moto logs every request: a pipe nobody reads would fill and stop the server.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()  # noqa: S310
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"centra-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix`, with its bytes (for scans)."""
        client = self.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])[
                    "Body"
                ].read()
        return found
