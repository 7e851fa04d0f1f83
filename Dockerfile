# syntax=docker/dockerfile:1
# One image for every piece of a deployment (docs/deployment.md):
#   code server  dagster code-server start -h 0.0.0.0 -p 4000 -m centra_pipeline.definitions
#                (or: dagster api grpc ...; the default command below)
#   webserver    dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/workspace.yaml
#   daemon       dagster-daemon run -w /opt/dagster/workspace.yaml
#   run worker   started by the run launcher (dagster api execute_run ...)
#   receiver     centra-pipeline webhook-server --host 0.0.0.0 --port 8090
#
# No ENTRYPOINT on purpose: Dagster's Helm chart sets the container's `args`, which would be
# appended to an entrypoint. Secrets are never baked in: they come from the environment
# (compose's .env, Kubernetes Secrets) when a container starts.
#
# Build from the project root:  docker build -t centra-pipeline:local .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the locked dependencies, then the project, into /app/.venv ---------------------
FROM ${PYTHON_IMAGE} AS build
# uv as its own image recommends: the static binaries, pinned to the version the lock is made with.
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first (a layer that changes only with uv.lock), without the project itself.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-install-project
# Then the project (.dockerignore keeps data/, .venv, .git, .env and caches out).
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev \
 && python -m compileall -q /app/centra_pipeline

# --- runtime: the same Python, the environment, a user that is not root --------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 centra \
 && useradd --system --uid 10001 --gid centra --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin centra \
 && mkdir -p /opt/dagster/dagster_home/storage /var/lib/centra-pipeline \
 && chown -R centra:centra /opt/dagster /var/lib/centra-pipeline
# Volumes mounted on these directories take their owner from the image (the user above).
# The code stays root-owned (read-only to the process); bytecode was compiled at build time.
COPY --from=build /app /app
WORKDIR /app
ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    CENTRA_DATA_DIR=/var/lib/centra-pipeline
USER 10001:10001
# 3000 webserver, 4000 code server (gRPC), 8090 webhook receiver.
EXPOSE 3000 4000 8090
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "centra_pipeline.definitions", "--location-name", "centra_pipeline"]
