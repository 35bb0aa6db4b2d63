"""What can be checked of the container image and the manifests without a container engine or a cluster: hadolint
on the Dockerfile, the Kubernetes manifests against the Kubernetes API schemas, and that ports, probes, environment
variables and sizes agree with the service's settings and the measured figures."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from detecteur.api.main import create_app
from detecteur.api.routes import flat_routes
from detecteur.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES_VERSION = "1.30.0"  # the oldest release still supported by the main cloud providers
HADOLINT = Path(sys.executable).parent / "hadolint"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in logical]


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [index for index, (name, _) in enumerate(instructions) if name == "FROM"]
    return instructions[starts[-1] :]


def env_assignments(instructions: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, arguments in instructions:
        if name == "ENV":
            values |= dict(token.split("=", 1) for token in shlex.split(arguments))
    return values


def settings_variable(name: str) -> str:
    """The `Settings` field a DETECTEUR_* variable sets; fails the test for a variable the service would ignore."""
    assert name.startswith("DETECTEUR_"), name
    field = name.removeprefix("DETECTEUR_").lower()
    assert field in Settings.model_fields, f"{name} is not a setting: the service ignores it"
    return field


def manifests() -> dict[str, dict[str, Any]]:
    documents = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents[path.stem] = yaml.safe_load(path.read_text())
    return documents


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def memory() -> dict[str, Any]:
    measured: dict[str, Any] = json.loads((ROOT / "benchmarks/results/serve_memory.json").read_text())
    return measured


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_catch_mistakes(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([str(HADOLINT), "--no-color", str(careless)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout  # "latest" tag


def test_the_image_runs_the_service_as_a_non_root_user_on_its_port(instructions: list[tuple[str, str]]) -> None:
    stage = final_stage(instructions)
    names = [name for name, _ in stage]
    user = [arguments for name, arguments in stage if name == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root")
    assert names.index("USER") < names.index("CMD")
    environment = env_assignments(stage)
    for variable in (name for name in environment if name.startswith("DETECTEUR_")):
        settings_variable(variable)
    assert environment["DETECTEUR_HOST"] == "0.0.0.0"
    assert [arguments for name, arguments in stage if name == "EXPOSE"] == [environment["DETECTEUR_PORT"]]
    assert json.loads(dict(stage)["CMD"]) == ["detecteur", "serve"]
    healthcheck = dict(stage)["HEALTHCHECK"]
    assert "/health" in healthcheck and "DETECTEUR_PORT" in healthcheck


def test_the_image_holds_the_default_model_and_the_dashboard(instructions: list[tuple[str, str]]) -> None:
    stage = final_stage(instructions)
    workdir = Path([arguments for name, arguments in stage if name == "WORKDIR"][-1])
    copied = {Path(arguments.split()[-1]) for name, arguments in stage if name == "COPY"}
    model_path = Settings().model_path
    assert (ROOT / model_path).is_file()
    assert any(model_path.is_relative_to(destination) for destination in copied), "the default model is not copied"
    assert workdir.is_absolute()
    if "dashboard_dir" in Settings.model_fields:  # the dashboard's setting, once the dashboard is in
        assert Path(Settings().dashboard_dir) in copied  # type: ignore[attr-defined]
    assert Path("frontend/out") in copied


def test_nothing_the_build_copies_is_excluded_from_the_build_context(instructions: list[tuple[str, str]]) -> None:
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    sources = []
    for name, arguments in instructions:
        if name == "COPY" and not arguments.startswith("--from"):
            sources += [source.rstrip("/") for source in arguments.split()[:-1]]
    assert {"pyproject.toml", "README.md", "src", "models"} <= set(sources)
    for source in sources:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is in .dockerignore"
        if not source.startswith("frontend"):  # the dashboard's sources come with the dashboard issue
            assert (ROOT / source).exists(), source


def test_every_file_of_the_package_is_in_its_wheel() -> None:
    """A container (or any non-editable install) only gets the package data pyproject.toml declares: the face
    detector's weights were missing once."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["detecteur"]
    package = ROOT / "src" / "detecteur"
    for path in package.rglob("*"):
        if path.is_file() and path.suffix not in (".py", ".pyc"):
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch.fnmatch(relative, pattern) for pattern in declared), f"{relative} would not be installed"


@pytest.mark.parametrize("name", sorted(manifests()))
def test_each_manifest_is_valid_against_the_kubernetes_schemas(name: str) -> None:
    kubernetes_validate.validate(manifests()[name], KUBERNETES_VERSION, strict=True)


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    deployment = manifests()["deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(f"{name}.yaml" for name in manifests())


def test_probes_ports_and_environment_agree_with_the_service(instructions: list[tuple[str, str]]) -> None:
    deployment = manifests()["deployment"]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    environment = {variable["name"]: variable.get("value") for variable in container["env"]}
    for variable in environment:
        settings_variable(variable)
    [port] = container["ports"]
    assert port["containerPort"] == int(environment["DETECTEUR_PORT"])
    routes = {getattr(route, "path", None) for route in flat_routes(create_app(Settings()).routes)}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": port["name"]}
        assert "/health" in routes
    startup = container["startupProbe"]
    # The model loads in ~6 s on 2 cores; the startup probe must allow many times that before giving up.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    uid = [arguments for name, arguments in final_stage(instructions) if name == "USER"][-1].split(":")[0]
    assert pod["spec"]["securityContext"]["runAsUser"] == int(uid)


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * (1024 if unit == "Gi" else 1)


def test_shutdown_drains_within_the_grace_period() -> None:
    """preStop + the drain's longest wait fit in the grace period, and the drain waits out the request timeout."""
    pod = manifests()["deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    environment = {variable["name"]: variable.get("value") for variable in container["env"]}
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain_timeout = float(environment["DETECTEUR_DRAIN_TIMEOUT_SECONDS"])
    assert drain_timeout >= Settings().request_timeout_seconds
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain_timeout
    assert environment["DETECTEUR_CASES_DIR"] in {mount["mountPath"] for mount in container["volumeMounts"]}


def test_resources_are_sized_from_the_measured_figures(memory: dict[str, Any]) -> None:
    [container] = manifests()["deployment"]["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    threads = int({v["name"]: v.get("value") for v in container["env"]}["DETECTEUR_INFERENCE_THREADS"])
    assert float(resources["requests"]["cpu"]) == threads  # one core per inference thread
    assert mebibytes(resources["requests"]["memory"]) >= memory["after_typical_requests"]["rss_mib"]
    assert mebibytes(resources["limits"]["memory"]) >= 1.1 * memory["after_large_images"]["peak_rss_mib"]


def test_the_service_hpa_and_disruption_budget_select_the_deployments_pods() -> None:
    documents = manifests()
    deployment = documents["deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert documents["service"]["spec"]["selector"].items() <= labels.items()
    assert documents["pdb"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert documents["service"]["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    target = documents["hpa"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert documents["hpa"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_compose_runs_the_service_and_prometheus_scrapes_its_metrics(memory: dict[str, Any]) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["detecteur"]
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE
    for variable in service["environment"]:
        settings_variable(variable)
    port = service["environment"]["DETECTEUR_PORT"]
    assert service["ports"] == [f"{port}:{port}"]
    assert int(service["mem_limit"].removesuffix("m")) >= memory["after_large_images"]["peak_rss_mib"]
    prometheus = compose["services"]["prometheus"]
    config_file = prometheus["volumes"][0].split(":")[0]
    scrape = yaml.safe_load((DEPLOY / config_file).read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == [f"detecteur:{port}"]
    assert prometheus["depends_on"]["detecteur"]["condition"] == "service_healthy"


def test_the_image_healthcheck_fails_while_health_answers_503(instructions: list[tuple[str, str]]) -> None:
    """Runs the HEALTHCHECK command itself against a stand-in for the service: 503 (model loading), then 200."""
    import http.server
    import os
    import threading

    statuses = iter([503, 200])

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(next(statuses) if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    healthcheck = dict(final_stage(instructions))["HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    environment = os.environ | {"DETECTEUR_PORT": str(server.server_address[1])}
    try:
        outcomes = [
            subprocess.run([sys.executable, *command[1:]], env=environment, capture_output=True).returncode
            for _ in range(2)
        ]
    finally:
        server.shutdown()
    assert outcomes[0] != 0 and outcomes[1] == 0
