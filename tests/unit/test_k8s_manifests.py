"""The Kubernetes manifests in deploy/k8s, checked against the real CLI and the real app."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import yaml

from mlcycle.cli import cli

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SECRET = "mlcycle-secrets"
CONFIGMAP = "mlcycle-config"


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _by(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def _workloads() -> list[dict[str, Any]]:
    return [d for d in _docs() if d["kind"] in ("Deployment", "CronJob", "Job")]


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod(doc)["containers"]
    return container


def _parse(command: list[str]) -> click.Context:
    """Parse a container command with the real click command (options, types, required)."""
    assert command[0] == "mlcycle"
    sub = cli.commands[command[1]]
    return sub.make_context(command[1], list(command[2:]))


def _option(ctx: click.Context, name: str) -> Any:
    return ctx.params[name]


def test_kustomization_lists_every_manifest_and_each_parses() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    kinds = sorted(d["kind"] for d in _docs())
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "Service", "Deployment", "Service", "CronJob", "Job"]
    )


def test_every_container_command_is_a_valid_mlcycle_invocation() -> None:
    for doc in _workloads():
        ctx = _parse(_container(doc)["command"])
        assert ctx.command.name in ("server", "serve", "loop", "search-worker")


def test_the_model_server_listens_where_its_ports_probes_and_service_point() -> None:
    dep = _by("Deployment", "mlcycle-serve")
    c = _container(dep)
    ctx = _parse(c["command"])
    assert ctx.command.name == "serve"
    port = _option(ctx, "port")
    assert _option(ctx, "host") == "0.0.0.0"  # reachable from the kubelet and the Service
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": port}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    svc = _by("Service", "mlcycle-serve")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert dep["spec"]["replicas"] >= 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_the_model_server_drains_before_the_kubelet_kills_it() -> None:
    dep = _by("Deployment", "mlcycle-serve")
    c = _container(dep)
    grace = _option(_parse(c["command"]), "grace")
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    budget = _pod(dep)["terminationGracePeriodSeconds"]
    assert budget > grace + float(pre_stop[1])


def test_the_probe_paths_are_served_by_the_real_app() -> None:
    from starlette.testclient import TestClient

    from mlcycle.serve.app import ModelSource, ServeOptions, create_app
    from mlcycle.serve.model import ModelRef
    from mlcycle.serve.protocol import Column, InputSchema

    class Model:
        name, version, backend, is_classifier = "m", "1", "fake", False
        schema = InputSchema((Column("x", "double"),))
        ref = ModelRef("models:/m@champion", "m", "1", "", "champion", "alias")

        def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
            return columns["x"]

    paths = set()
    for doc in _workloads():
        c = _container(doc)
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in c and doc["metadata"]["name"] == "mlcycle-serve":
                paths.add(c[probe]["httpGet"]["path"])
    assert paths == {"/ready", "/health"}
    with TestClient(create_app(ModelSource.fixed(Model()), ServeOptions())) as client:
        for path in sorted(paths):
            for _ in range(500):  # /ready turns 200 once the model is loaded
                if client.get(path).status_code == 200:
                    break
                time.sleep(0.01)
            assert client.get(path).status_code == 200, path
        assert client.get("/not-a-probe").status_code == 404


def test_the_tracking_server_runs_mlcycle_server_behind_its_service() -> None:
    dep = _by("Deployment", "mlflow")
    c = _container(dep)
    ctx = _parse(c["command"])
    assert ctx.command.name == "server"
    assert _option(ctx, "host") == "0.0.0.0"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": _option(ctx, "port")}
    assert c["readinessProbe"]["httpGet"]["port"] == "http"
    svc = _by("Service", "mlflow")
    assert svc["spec"]["ports"][0]["port"] == _option(ctx, "port")
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    # Clients in the cluster reach it by the Service name the ConfigMap gives them.
    config = _by("ConfigMap", CONFIGMAP)["data"]
    assert config["MLFLOW_TRACKING_URI"] == f"http://mlflow:{_option(ctx, 'port')}"
    allowed = config["MLCYCLE_ALLOWED_HOSTS"].split(",")
    assert "mlflow" in allowed


def test_monitoring_is_a_cronjob_of_one_window_per_run() -> None:
    job = _by("CronJob", "mlcycle-monitor")
    assert len(job["spec"]["schedule"].split()) == 5
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    ctx = _parse(_container(job)["command"])
    assert ctx.command.name == "loop"
    assert _option(ctx, "once") is True
    assert _option(ctx, "retrain") is True
    assert _pod(job)["restartPolicy"] in ("OnFailure", "Never")


def test_search_workers_join_a_study_by_name() -> None:
    job = _by("Job", "mlcycle-search-workers")
    ctx = _parse(_container(job)["command"])
    assert ctx.command.name == "search-worker"
    assert job["spec"]["parallelism"] > 1


def test_every_container_has_resource_requests_and_limits() -> None:
    for doc in _workloads():
        res = _container(doc)["resources"]
        assert set(res["requests"]) == {"cpu", "memory"}, doc["metadata"]["name"]
        assert set(res["limits"]) == {"cpu", "memory"}, doc["metadata"]["name"]


_SENSITIVE = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|BACKEND_STORE_URI|STORAGE", re.I)


@pytest.mark.parametrize(
    "name", ["mlflow", "mlcycle-serve", "mlcycle-monitor", "mlcycle-search-workers"]
)
def test_secrets_come_only_from_secret_refs_never_literals(name: str) -> None:
    assert not [d for d in _docs() if d["kind"] == "Secret"]
    config = _by("ConfigMap", CONFIGMAP)["data"]
    assert not [k for k in config if _SENSITIVE.search(k) and "USERNAME" not in k]
    assert not [v for v in config.values() if re.search(r"://[^/@]+:[^/@]+@", v)]
    doc = next(d for d in _workloads() if d["metadata"]["name"] == name)
    c = _container(doc)
    assert {ref["configMapRef"]["name"] for ref in c["envFrom"]} == {CONFIGMAP}
    for env in c["env"]:
        if _SENSITIVE.search(env["name"]):
            assert "value" not in env, env["name"]
            assert env["valueFrom"]["secretKeyRef"]["name"] == SECRET
    # $(VAR) in a command must name a variable the container defines.
    defined = {e["name"] for e in c["env"]} | set(config)
    for arg in c["command"]:
        for var in re.findall(r"\$\((\w+)\)", arg):
            assert var in defined, var
