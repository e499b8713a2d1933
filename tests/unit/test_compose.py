"""docker-compose.yml read as compose reads it: services, order, health, secrets, and every
command checked against the real CLI (no Docker engine needed)."""

from __future__ import annotations

import subprocess

import click
import pytest
import yaml
from click.testing import CliRunner

from compose_support import (
    COMPOSE,
    ENV_EXAMPLE,
    ROOT,
    command,
    environment,
    load,
    raw,
    read_env_file,
    variables,
)
from mlcycle.cli import cli
from mlcycle.errors import ConfigError

SERVICES = {"postgres", "minio", "create-bucket", "mlflow", "model-server", "monitor", "prometheus"}
SECRET_NAMES = ("PASSWORD", "SECRET")


def _depends(service: dict) -> dict[str, str]:
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return {d: "service_started" for d in dep}
    return {k: (v or {}).get("condition", "service_started") for k, v in dep.items()}


def test_the_stack_has_every_service_and_keeps_state_in_named_volumes() -> None:
    doc = raw()
    assert set(doc["services"]) == SERVICES
    named = set(doc["volumes"])
    assert {"pgdata", "miniodata"} <= named
    for name, svc in doc["services"].items():
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            assert source.startswith("./") or source in named, f"{name}: {vol}"


def test_services_start_only_after_what_they_need_is_healthy() -> None:
    services = raw()["services"]
    assert _depends(services["create-bucket"]) == {"minio": "service_healthy"}
    assert _depends(services["mlflow"]) == {
        "postgres": "service_healthy",
        "create-bucket": "service_completed_successfully",
    }
    assert _depends(services["model-server"]) == {"mlflow": "service_healthy"}
    assert _depends(services["monitor"])["mlflow"] == "service_healthy"
    # A start order exists (no cycle) and puts the database before the server before clients.
    order: list[str] = []
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(_depends(s)) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order += sorted(ready)
        for n in ready:
            del pending[n]
    assert order.index("postgres") < order.index("mlflow") < order.index("model-server")


def test_every_long_running_service_has_a_healthcheck_that_a_dependant_waits_for() -> None:
    services = raw()["services"]
    for name in ("postgres", "minio", "mlflow", "model-server"):
        check = services[name].get("healthcheck")
        assert check and check.get("test"), name
    assert "/ready" in " ".join(services["model-server"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_no_secret_literal_is_in_the_compose_file() -> None:
    text = COMPOSE.read_text()
    example = read_env_file()
    for key, value in example.items():
        if any(s in key for s in SECRET_NAMES):
            assert value not in text, f"{key}'s example value is written into the compose file"
    for name, svc in raw()["services"].items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if any(s in key for s in SECRET_NAMES):
                assert isinstance(value, str) and "${" in value, f"{name}.{key} is a literal"
                # A secret must fail loudly when unset, never fall back to a default.
                for m in variables(value):
                    assert f"${{{m}:?" in value, f"{name}.{key}: ${{{m}}} needs :? (no default)"
    # The x-tracking-client anchor is merged into clients: its secrets are references too.
    anchor = yaml.safe_load(text)["x-tracking-client"]
    assert anchor["MLFLOW_TRACKING_PASSWORD"].startswith("${MLCYCLE_ADMIN_PASSWORD:?")


def test_env_example_names_every_variable_and_holds_only_placeholders_the_server_refuses() -> None:
    example = read_env_file()
    needed = {v for v in variables(COMPOSE.read_text())}
    assert needed <= set(example), f"missing in .env.example: {needed - set(example)}"
    for key, value in example.items():
        if any(s in key for s in SECRET_NAMES):
            assert "change-me" in value, f"{key} looks like a real secret"
    from mlcycle.stack import check_admin_password

    with pytest.raises(ConfigError, match="placeholder"):
        check_admin_password(example["MLCYCLE_ADMIN_PASSWORD"], example["MLCYCLE_ADMIN_USERNAME"])


def test_dotenv_is_ignored_by_git_and_the_example_is_not() -> None:
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored(".env")
    assert not ignored(ENV_EXAMPLE.name)


@pytest.mark.parametrize("service", ["mlflow", "model-server", "monitor"])
def test_each_mlcycle_service_command_parses_with_the_real_cli(service: str) -> None:
    argv = command(service)
    assert argv[0] == "mlcycle"
    name, args = argv[1], argv[2:]
    sub = cli.get_command(click.Context(cli), name)
    assert sub is not None, f"mlcycle has no command '{name}'"
    # Parses every option with its real type and required-ness; raises on an unknown one.
    with sub.make_context(name, list(args)) as ctx:
        assert ctx.params
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0


def test_the_model_server_follows_the_champion_and_logs_to_the_bucket() -> None:
    argv = command("model-server")
    env = read_env_file()
    assert argv[argv.index("--model") + 1] == f"models:/{env['MODEL_NAME']}@champion"
    assert argv[argv.index("--inference-log") + 1].startswith(f"s3://{env['MLCYCLE_BUCKET']}/")
    assert "--allow-pickle" not in argv


def test_the_tracking_server_uses_psycopg2_postgres_s3_and_admits_its_service_name() -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    from mlcycle.config import Settings
    from mlcycle.stack import expand_hosts, server_command, server_options

    env = environment("mlflow")
    assert env["MLCYCLE_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLCYCLE_ARTIFACTS_DESTINATION"].startswith("s3://")
    argv = command("mlflow")
    hosts = argv[argv.index("--allowed-hosts") + 1]
    settings = Settings(
        backend_store_uri=env["MLCYCLE_BACKEND_STORE_URI"],
        artifacts_destination=env["MLCYCLE_ARTIFACTS_DESTINATION"],
        admin_password="A-real-one-for-this-test-9",  # type: ignore[arg-type]
    )
    opts = server_options(settings, allowed_hosts=hosts, port=5000)
    allowed = list(expand_hosts(opts.allowed_hosts, 5000))
    client_uri = load()["x-tracking-client"]["MLFLOW_TRACKING_URI"]
    assert is_allowed_host_header(allowed, client_uri.split("://", 1)[1])  # mlflow:5000
    assert is_allowed_host_header(allowed, "localhost:5000")  # the UI from the host
    assert not is_allowed_host_header(allowed, "evil.example.com:5000")
    # The database password is in the environment of the server process, not in its argv.
    assert not any(env["MLCYCLE_BACKEND_STORE_URI"] in part for part in server_command(opts))


def test_ports_are_published_on_loopback_only() -> None:
    for name, svc in raw()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_prometheus_is_optional_and_scrapes_the_model_servers_metrics() -> None:
    prom = raw()["services"]["prometheus"]
    assert prom["profiles"] == ["observability"]
    # A fresh stack has no champion, so the model server is never healthy before the first
    # promotion: waiting for health would keep `--profile observability` from coming up.
    assert set(_depends(prom).values()) <= {"service_started"}, _depends(prom)
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    job = jobs["mlcycle-model-server"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["model-server:8080"]


def test_images_build_from_dockerfiles_in_the_repo_and_the_stack_one_is_the_rendered_recipe() -> (
    None
):
    from mlcycle.stack import STACK_IMAGE_EXTRAS, render_stack_dockerfile

    for name, svc in raw()["services"].items():
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
    assert raw()["services"]["model-server"]["build"]["dockerfile"] == "Dockerfile"
    stack = (ROOT / "docker" / "stack.Dockerfile").read_text()
    assert stack == render_stack_dockerfile()
    assert f"/tmp/deps/pyproject.toml {','.join(STACK_IMAGE_EXTRAS)} " in stack
