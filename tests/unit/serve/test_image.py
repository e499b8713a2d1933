"""The server image: rendered Dockerfile text, the stock build command, missing-Docker errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlcycle.cli import cli
from mlcycle.errors import ServingError
from mlcycle.serve import image

REPO = Path(__file__).resolve().parents[3]


def test_the_repository_dockerfile_is_the_rendered_default() -> None:
    assert (REPO / "Dockerfile").read_text() == image.render_dockerfile()


def test_the_image_runs_as_a_non_root_user_on_a_slim_base() -> None:
    text = image.render_dockerfile()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")


def test_the_image_refuses_pickled_models_and_checks_readiness() -> None:
    text = image.render_dockerfile()
    # mlcycle serve refuses pickle unless told otherwise, and MLflow's own switch is off too
    # (mlcycle loads skops files with its reviewed allow-list, so that switch costs nothing).
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None and "--allow-pickle" not in cmd.group(1)
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false" in text
    health = re.search(r"^HEALTHCHECK [^\n]*\n\s+CMD (\[[^\n]*\])$", text, re.M)
    assert health is not None
    assert "/ready" in " ".join(json.loads(health.group(1)))


def test_the_image_execs_mlcycle_serve_on_the_model_uri_and_port() -> None:
    text = image.render_dockerfile(model_uri="models:/churn/Production", port=9000)
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert cmd[:2] == ["sh", "-c"]
    # exec: the server, not the shell, receives SIGTERM and drains.
    assert cmd[2].startswith("exec mlcycle serve --model ")
    assert '"${MODEL_URI}"' in cmd[2] and "--host 0.0.0.0" in cmd[2]
    assert "MODEL_URI=models:/churn/Production" in text and "PORT=9000" in text
    assert "EXPOSE 9000" in text


def test_the_image_installs_the_requested_extras_before_the_wheel_without_deps() -> None:
    text = image.render_dockerfile()
    final = text[text.rindex("FROM ") :]
    assert "requirements.py /tmp/deps/pyproject.toml serve,postgres,s3 " in final
    assert "pyproject.toml serve \\\n" in image.render_dockerfile(extras=("serve",))
    assert "pyproject.toml \\\n" in image.render_dockerfile(extras=())
    # The dependency layer reads pyproject.toml and the script only, never src/, and comes
    # before the wheel, which adds mlcycle alone.
    deps = final.index("COPY pyproject.toml docker/requirements.py /tmp/deps/")
    wheel = final.index("pip install --no-cache-dir --no-deps /tmp/dist/mlcycle-*.whl")
    assert deps < final.index("COPY --from=build") < wheel
    assert re.findall(r"^COPY (.*)$", final[:wheel], re.M) == [
        "pyproject.toml docker/requirements.py /tmp/deps/",
        "--from=build /dist /tmp/dist",
    ]
    # Image variants differ only after the installs: they share those layers.
    other = image.render_dockerfile(model_uri="models:/churn/Production", port=9000)
    assert other[: other.index("ENV MODEL_URI=")] == text[: text.index("ENV MODEL_URI=")]


def _key(req: Requirement) -> tuple[str, tuple[str, ...], str]:
    return canonicalize_name(req.name), tuple(sorted(req.extras)), str(req.specifier)


def _metadata_closure(extras: tuple[str, ...]) -> set[tuple[str, tuple[str, ...], str]]:
    """What the installed mlcycle's metadata requires with ``extras``, its own extras expanded
    (``mlcycle[onnx]`` inside ``serve``)."""
    reqs = [Requirement(line) for line in requires("mlcycle") or []]
    active: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in active:
            continue
        active.add(extra)
        for req in reqs:
            if req.name == "mlcycle" and req.marker and req.marker.evaluate({"extra": extra}):
                todo += sorted(req.extras)
    return {
        _key(req)
        for req in reqs
        if req.name != "mlcycle"
        and (req.marker is None or any(req.marker.evaluate({"extra": e}) for e in active))
    }


@pytest.mark.parametrize(
    "extras", [(), image.DEFAULT_EXTRAS, ("serve", "monitoring", "postgres", "server")]
)
def test_the_requirements_script_lists_what_the_wheel_requires_with_those_extras(
    extras: tuple[str, ...],
) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / image.REQUIREMENTS_SCRIPT), str(REPO / "pyproject.toml"),
         ",".join(extras)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    listed = [Requirement(line) for line in done.stdout.splitlines()]
    assert {_key(req) for req in listed} == _metadata_closure(extras)
    assert "mlcycle" not in {req.name for req in listed}


def test_the_stock_build_command_wraps_mlflow_models_build_docker() -> None:
    assert image.stock_build_command("models:/m@champion", "img:1") == [
        "mlflow", "models", "build-docker", "-m", "models:/m@champion", "-n", "img:1",
        "--env-manager", "local",
    ]  # fmt: skip
    assert image.stock_build_command("runs:/r/model", "i", "uv")[-1] == "uv"


def test_building_without_a_docker_cli_says_so() -> None:
    with pytest.raises(ServingError, match="not found on PATH"):
        image.build_image("img", docker="no-such-docker-cli")
    with pytest.raises(ServingError, match="not found on PATH"):
        image.build_stock_image("models:/m@champion", "img", docker="no-such-docker-cli")


def test_building_without_a_docker_daemon_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    # A daemon address where nothing listens: the probe fails the way a stopped daemon does.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ServingError, match="Docker daemon is not reachable"):
        image.build_image("img")


def test_cli_writes_the_dockerfile_without_docker(tmp_path: Path) -> None:
    out = tmp_path / "Dockerfile"
    result = CliRunner().invoke(
        cli,
        ["build-docker", "--model", "models:/churn@champion", "--dockerfile-only", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == image.render_dockerfile(model_uri="models:/churn@champion")


def test_cli_names_a_dockerfile_path_it_cannot_write(tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "Dockerfile"
    result = CliRunner().invoke(cli, ["build-docker", "--dockerfile-only", str(out)])
    assert result.exit_code == 1
    assert f"cannot write the Dockerfile to {out}" in result.output
    assert "Traceback" not in result.output and not out.parent.exists()


def test_cli_build_needs_an_image_name_and_stock_needs_a_model() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["build-docker"]).exit_code == 2
    assert runner.invoke(cli, ["build-docker", "--image", "i", "--stock"]).exit_code == 2


@pytest.mark.skipif(shutil.which("docker") is None, reason="no Docker CLI here")
def test_cli_reports_a_missing_daemon_as_an_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A socket nobody listens on: the daemon is missing whatever else runs on this machine.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    result = CliRunner().invoke(cli, ["build-docker", "--image", "mlcycle-test:never"])
    assert result.exit_code == 1
    assert "Docker daemon is not reachable" in result.output
    assert "Traceback" not in result.output
