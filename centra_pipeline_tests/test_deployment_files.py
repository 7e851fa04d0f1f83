"""The deployment artefacts (Dockerfile, deploy/, docs/deployment.md) parse, have the
structure docs/deployment.md describes, name no setting that does not exist, and carry no
secret. Fast and offline: nothing is built, started or installed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from centra_pipeline import settings
from centra_pipeline.webhooks import receiver

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "deploy" / "compose.yaml"
WORKSPACE = ROOT / "deploy" / "workspace.yaml"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
RECEIVER_MANIFEST = ROOT / "deploy" / "helm" / "receiver.yaml"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
PROJECT_INSTANCE = ROOT / "dagster.yaml"

SCANNED = (DOCKERFILE, COMPOSE, WORKSPACE, HELM_VALUES, RECEIVER_MANIFEST, DEPLOYMENT_DOC)

# Every CENTRA_* variable the pipeline reads is the value of an ENV_* constant in settings.py.
SETTINGS_VARIABLES = {value for name, value in vars(settings).items() if name.startswith("ENV_")}
# Variables that are not the pipeline's own, allowed by name: anything else fails.
OTHER_VARIABLES = {
    # Object storage credentials and endpoint (storage/objects.py reads the standard ones).
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    # Dagster's: its instance directory, the instance database URL deploy/dagster.yaml reads,
    # and what the Helm chart sets in its pods.
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_CURRENT_IMAGE",
    # The postgres image's, the MinIO images' and the compose file's own.
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "MINIO_BUCKET",
    "PIPELINE_IMAGE",
    # The image's build and runtime environment.
    "PYTHON_IMAGE",
    "PATH",
    "VIRTUAL_ENV",
    "PYTHONUNBUFFERED",
    "UV_COMPILE_BYTECODE",
    "UV_LINK_MODE",
    "UV_PYTHON_DOWNLOADS",
    "UV_PROJECT_ENVIRONMENT",
    # A stores file's secret variables are named by the user; the docs' example names these
    # (deliberately not CENTRA_*, which is the pipeline's own namespace).
    "RETAIL_ORDER_API_KEY",
    "RETAIL_SHOP_API_KEY",
    "RETAIL_WEBHOOK_SECRET",
    "WHOLESALE_ORDER_API_KEY",
    "WHOLESALE_SHOP_API_KEY",
    "WHOLESALE_WEBHOOK_SECRET",
}

CENTRA_NAME = re.compile(r"\bCENTRA_[A-Z0-9_]*[A-Z0-9]\b")
# ${NAME}, ${NAME:-default}, ${NAME:?message}, $NAME (also Compose's escaped $${NAME}).
REFERENCE = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)")
# NAME=value at the start of a line (a .env example, `export NAME=...`, Dockerfile ENV).
ASSIGNMENT = re.compile(r"^\s*(?:export\s+|ENV\s+|ARG\s+)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)
# An upper-case name with an underscore in backticks, in prose (`CENTRA_PII_KEY`).
QUOTED_NAME = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`")
SECRET_WORDS = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^/\s:@]+:([^@\s]+)@")


def variables_named(text: str) -> set[str]:
    """The environment variables a deployment file or document names."""
    names = set(CENTRA_NAME.findall(text))
    names |= set(REFERENCE.findall(text))
    names |= set(ASSIGNMENT.findall(text))
    names |= set(QUOTED_NAME.findall(text))
    return names


def structured_variables(document: object) -> set[str]:
    """Variable names set in parsed YAML: Compose `environment:` maps and Kubernetes
    `env:` lists (`- name: X`), at any depth."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "environment" and isinstance(value, dict):
                found |= set(value)
            if key == "env" and isinstance(value, list):
                found |= {item["name"] for item in value if isinstance(item, dict)}
            found |= structured_variables(value)
    elif isinstance(document, list):
        for item in document:
            found |= structured_variables(item)
    return found


def unknown_variables(names: set[str]) -> set[str]:
    """Names that are neither a setting of the pipeline nor an allowed other variable."""
    return {
        name for name in names if name not in SETTINGS_VARIABLES and name not in OTHER_VARIABLES
    }


def load_yaml_documents(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments out."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        result.append((instruction.upper(), arguments.strip()))
    return result


# --- the checks can fail ------------------------------------------------------------------
def test_the_collectors_find_what_they_should_reject():
    sample = (
        "CENTRA_ORDER_API_KEY=...\n"
        "image: ${PIPELINE_IMAGE:-x}  url: ${CENTRA_NOT_A_SETTING:?set it}\n"
        "Set `SOME_OTHER_VAR` and $$POSTGRES_USER.\n"
    )
    names = variables_named(sample)
    assert {"CENTRA_ORDER_API_KEY", "CENTRA_NOT_A_SETTING", "SOME_OTHER_VAR"} <= names
    assert "POSTGRES_USER" in names and "PIPELINE_IMAGE" in names
    assert unknown_variables(names) == {"CENTRA_NOT_A_SETTING", "SOME_OTHER_VAR"}
    parsed = {"services": {"a": {"environment": {"CENTRA_NOPE": "1"}}}, "env": [{"name": "X_Y"}]}
    assert structured_variables(parsed) == {"CENTRA_NOPE", "X_Y"}
    assert URL_PASSWORD.search("postgresql://u:hunter2@db:5432/x").group(1) == "hunter2"


# --- every variable named exists ----------------------------------------------------------
@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_variable_named_is_a_setting_or_allowed(path: Path):
    text = path.read_text(encoding="utf-8")
    names = variables_named(text)
    if path.suffix == ".yaml":
        for document in load_yaml_documents(path):
            names |= structured_variables(document)
    unknown = unknown_variables(names)
    assert not unknown, (
        f"{path.relative_to(ROOT)} names {sorted(unknown)}: not an ENV_* value in "
        "centra_pipeline/settings.py nor in this test's OTHER_VARIABLES"
    )


def test_the_settings_the_deployment_relies_on_exist():
    for name in ("CENTRA_STORAGE_URL", "CENTRA_INBOX_URL", "CENTRA_PII_KEY", "CENTRA_DATA_DIR"):
        assert name in SETTINGS_VARIABLES


# --- Dockerfile ---------------------------------------------------------------------------
def test_dockerfile_builds_from_the_lock_as_a_user_that_is_not_root():
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    kinds = [kind for kind, _ in instructions]
    assert "FROM" in kinds
    assert "ENTRYPOINT" not in kinds  # the Helm chart sets args, which would be appended
    runs = " ".join(args for kind, args in instructions if kind == "RUN")
    assert "uv sync --locked --no-dev" in runs
    users = [args for kind, args in instructions if kind == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The last stage (the image) switches user after its last FROM.
    last_from = max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM")
    assert any(kind == "USER" for kind, _ in instructions[last_from:])
    for kind, args in instructions:
        if kind in ("ARG", "ENV"):
            for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S*)", args):
                assert not SECRET_WORDS.search(name), f"{kind} {name}=... looks like a secret"
                assert not URL_PASSWORD.search(value), f"{kind} {name} holds a password"
        if kind in ("COPY", "ADD"):
            assert ".env" not in args.split()


def test_dockerignore_keeps_data_environments_and_secrets_out():
    entries = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"data", ".venv", ".git", ".env"} <= entries


# --- Compose ------------------------------------------------------------------------------
def test_compose_runs_every_piece_from_one_image():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    for name in ("postgres", "code-server", "webserver", "daemon", "receiver"):
        assert name in services, f"compose has no {name} service"
    assert services["postgres"]["image"].startswith("postgres:")
    assert "healthcheck" in services["postgres"]
    app = ("code-server", "webserver", "daemon", "receiver")
    assert len({services[name]["image"] for name in app}) == 1
    commands = {name: " ".join(map(str, services[name]["command"])) for name in app}
    assert "code-server start" in commands["code-server"]
    assert "-m centra_pipeline.definitions" in commands["code-server"]
    assert commands["webserver"].startswith("dagster-webserver")
    assert commands["daemon"].startswith("dagster-daemon run")
    assert "webhook-server --host 0.0.0.0" in commands["receiver"]
    assert services["receiver"]["deploy"]["replicas"] >= 2
    for name in ("code-server", "webserver", "daemon"):
        mounts = services[name]["volumes"]
        assert "./dagster.yaml:/opt/dagster/dagster_home/dagster.yaml:ro" in mounts
        assert services[name]["environment"]["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    for name in ("webserver", "daemon"):
        assert "./workspace.yaml:/opt/dagster/workspace.yaml:ro" in services[name]["volumes"]
        assert "-w /opt/dagster/workspace.yaml" in commands[name]


def test_compose_takes_every_secret_from_the_environment():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            value = str(value)
            if SECRET_WORDS.search(variable) and value:
                assert value.startswith("${"), f"{name}: {variable} is written into the file"
            for password in URL_PASSWORD.findall(value):
                assert password.startswith("${"), f"{name}: {variable} has a password in it"
    text = COMPOSE.read_text(encoding="utf-8")
    assert "${POSTGRES_PASSWORD:?" in text and "${CENTRA_PII_KEY:?" in text


def test_workspace_points_at_the_code_server():
    workspace = yaml.safe_load(WORKSPACE.read_text(encoding="utf-8"))
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    command = [str(part) for part in compose["services"]["code-server"]["command"]]
    assert server["host"] == "code-server"
    assert str(server["port"]) == command[command.index("-p") + 1]
    assert server["location_name"] == command[command.index("--location-name") + 1]
    assert server["location_name"] == "centra_pipeline"  # pyproject's code_location_name


# --- Helm ---------------------------------------------------------------------------------
def test_helm_values_launch_each_run_as_a_pod_under_the_projects_run_queue():
    values = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True
    assert coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    # The same limits as the project's own instance (dagster.yaml, concurrency.runs).
    project_runs = yaml.safe_load(PROJECT_INSTANCE.read_text(encoding="utf-8"))["concurrency"][
        "runs"
    ]
    assert queued["maxConcurrentRuns"] == project_runs["max_concurrent_runs"] == 4
    assert queued["tagConcurrencyLimits"] == project_runs["tag_concurrency_limits"]
    assert {
        "key": "dagster/partition",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in queued["tagConcurrencyLimits"]


def test_helm_values_use_an_external_postgresql_and_secrets():
    values = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlHost"]
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    user_code = values["dagster-user-deployments"]
    assert user_code["enabled"] is True
    (deployment,) = user_code["deployments"]
    assert deployment["image"]["repository"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "centra_pipeline.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert deployment["envSecrets"] and all(s["name"] for s in deployment["envSecrets"])
    for item in deployment["env"]:
        assert not SECRET_WORDS.search(item["name"]), f"{item['name']} belongs in a Secret"


def test_receiver_manifest_runs_two_replicas_that_are_ready_when_healthz_is():
    documents = load_yaml_documents(RECEIVER_MANIFEST)
    kinds = {doc["kind"]: doc for doc in documents}
    assert {"Deployment", "Service"} <= set(kinds)
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    args = container["args"]
    assert args[:2] == ["centra-pipeline", "webhook-server"]
    port = int(args[args.index("--port") + 1])
    assert args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (a pod listens on its IP)
    (container_port,) = container["ports"]
    assert container_port["containerPort"] == port
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == receiver.HEALTH_PATH
    assert probe["port"] == container_port["name"]
    assert all(
        "value" not in item or not SECRET_WORDS.search(item["name"]) for item in container["env"]
    )
    assert container["envFrom"][0]["secretRef"]["name"]
    service = kinds["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == container_port["name"]


def test_no_deployment_file_writes_a_password_into_a_url():
    for path in (COMPOSE, WORKSPACE, HELM_VALUES, RECEIVER_MANIFEST, DOCKERFILE):
        for password in URL_PASSWORD.findall(path.read_text(encoding="utf-8")):
            assert password.startswith("${"), f"{path.relative_to(ROOT)}: a URL holds a password"


# --- the document -------------------------------------------------------------------------
def test_deployment_doc_states_the_takeover_time_and_what_was_run():
    text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    assert "TODO" not in text
    assert "## What was run here and what was only written" in text


def test_the_image_can_launch_run_pods():
    """Run pods load an instance naming the K8sRunLauncher: the code location's image (the
    project's dependencies) must have it, at the release that matches Dagster's."""
    import dagster
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.version import __version__ as k8s_version

    assert K8sRunLauncher.__name__ == "K8sRunLauncher"
    assert k8s_version.split(".")[2] == dagster.__version__.split(".")[2]
