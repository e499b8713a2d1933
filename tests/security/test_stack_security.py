"""Security of the team stack, against a real ``mlcycle server`` (basic auth, PostgreSQL with
a password in its URI, S3): who may do what, which hosts and paths are refused, which models
are refused, and where secrets never appear."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from stack_support import (
    Tracking,
    compose_argv,
    fresh_bucket,
    fresh_database,
    group_cmdlines,
    running_tracking,
    s3_keys,
)

from mlcycle.cli import cli
from mlcycle.data import SCENARIO_TARGET, make_scenario
from testkit import PG_ADMIN_URL, free_port, need, stop_group

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.xdist_group("stack"),
]

VIEWER = ("viewer", "Viewer-pass-" + uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def stack(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracking]:
    """One server for the module; its store URI carries a real database password."""
    with fresh_database() as url:
        dbname = url.rsplit("/", 1)[1]
        role, role_pw = f"mlc_{uuid.uuid4().hex[:8]}", "Db-" + uuid.uuid4().hex
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{role_pw}'"))
            conn.execute(sa.text(f'ALTER DATABASE "{dbname}" OWNER TO {role}'))
        backend = f"postgresql+psycopg2://{role}:{role_pw}@127.0.0.1:5432/{dbname}"
        try:
            bucket = fresh_bucket(s3_endpoint)
            workdir = tmp_path_factory.mktemp("secure-stack")
            with running_tracking(backend, s3_endpoint, bucket, workdir) as t:
                yield t
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
                conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
            admin.dispose()


@pytest.fixture(scope="module")
def churn(stack: Tracking, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Registered model ``churn`` v1 (Staging, @challenger), trained by the admin."""
    with pytest.MonkeyPatch.context() as mp:
        stack.use(mp)
        path = tmp_path_factory.mktemp("churn-data") / "ref.csv"
        make_scenario(1500, period="reference", seed=5).to_csv(path, index=False)
        res = CliRunner().invoke(
            cli,
            ["train", "--data", str(path), "--target", SCENARIO_TARGET, "--model", "linear",
             "--no-onnx", "--register-as", "churn", "--json"],
            catch_exceptions=False,
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        return str(json.loads(res.stdout)["run_id"])


def _api(t: Tracking, path: str) -> str:
    return f"{t.url}/api/2.0/mlflow/{path}"


def test_requests_without_credentials_or_with_a_wrong_password_get_401(stack: Tracking) -> None:
    urls = [
        _api(stack, "experiments/search?max_results=1"),
        _api(stack, "registered-models/search"),
        f"{stack.url}/ajax-api/2.0/mlflow/experiments/search?max_results=1",
        f"{stack.url}/api/2.0/mlflow-artifacts/artifacts/0/x.txt",
    ]
    for url in urls:
        assert httpx.get(url, timeout=60).status_code == 401, url
        bad = httpx.get(url, auth=("admin", "not-the-password-1"), timeout=60)
        assert bad.status_code == 401, url
        assert (
            httpx.get(url, auth=("nobody-here", "whatever-pass-1"), timeout=60).status_code == 401
        )
    assert httpx.get(urls[0], auth=stack.auth(), timeout=60).status_code == 200


def test_the_cli_with_a_wrong_password_exits_1_saying_authentication_failed(
    stack: Tracking, churn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.use(monkeypatch, "admin", "not-the-password-1")
    res = CliRunner().invoke(cli, ["history", "churn"])
    assert res.exit_code == 1, res.output
    assert "not authenticated" in res.output.lower() or "401" in res.output
    assert "Traceback" not in res.output
    assert "not-the-password-1" not in res.output


def test_a_read_only_user_sees_the_model_but_cannot_promote_it(
    stack: Tracking, churn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    stack.create_user(*VIEWER)
    stack.grant(VIEWER[0], "registered_model", "churn", "READ")
    stack.use(monkeypatch, *VIEWER)
    viewer = MlflowClient()
    assert viewer.get_registered_model("churn").name == "churn"
    # NO_PERMISSIONS by default: the training experiment stays invisible to the viewer.
    assert [e.name for e in viewer.search_experiments()] == []

    for args in (["promote", "churn", "--version", "1"],
                 ["promote", "churn", "--version", "1", "--force", "--reason", "try"]):  # fmt: skip
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 1, res.output
        assert "permission denied" in res.output.lower(), res.output
        assert "Traceback" not in res.output
        assert VIEWER[1] not in res.output

    stack.use(monkeypatch)
    admin = MlflowClient()
    assert admin.get_registered_model("churn").aliases == {"challenger": "1"}
    assert admin.get_model_version("churn", "1").current_stage == "Staging"


def test_a_foreign_host_header_gets_403_even_with_valid_credentials(stack: Tracking) -> None:
    url = _api(stack, "experiments/search?max_results=1")
    for host in ("evil.example.com", f"evil.example.com:{stack.port}", "10.0.0.7:5000"):
        r = httpx.get(url, auth=stack.auth(), headers={"Host": host}, timeout=60)
        assert r.status_code == 403, (host, r.status_code)
    # The compose service name with its port, and the UI on localhost, are admitted.
    for host in (f"mlflow:{stack.port}", f"localhost:{stack.port}"):
        r = httpx.get(url, auth=stack.auth(), headers={"Host": host}, timeout=60)
        assert r.status_code == 200, host


def test_the_artifact_proxy_refuses_path_traversal_and_writes_nothing_outside_its_root(
    stack: Tracking, churn: str
) -> None:
    auth = stack.auth()
    base = f"{stack.url}/api/2.0/mlflow-artifacts/artifacts"
    with httpx.Client(auth=auth, timeout=60) as http:
        assert http.get(f"{base}/0/%2e%2e/%2e%2e/etc/passwd").status_code == 400
        assert http.put(f"{base}/0/..%2F..%2Fescape.txt", content=b"x").status_code == 400
        assert http.put(f"{base}/0/%2e%2e/%2e%2e/escape.txt", content=b"x").status_code == 400
        for path in ("../../../../etc/passwd", "model/../../.."):
            r = http.get(f"{stack.url}/get-artifact", params={"run_id": churn, "path": path})
            assert r.status_code == 400, path
            r = http.get(_api(stack, "artifacts/list"), params={"run_id": churn, "path": path})
            assert r.status_code == 400, path
    keys = s3_keys(stack.s3_endpoint, stack.bucket)
    assert keys and all(k.startswith("artifacts/") for k in keys)
    assert not any("escape" in k for k in keys)


def test_model_version_sources_that_climb_or_name_local_files_are_refused(
    stack: Tracking, churn: str
) -> None:
    from mlflow import MlflowClient

    bad = [
        "file:///etc",
        "/etc/passwd",
        "mlflow-artifacts:/1/../../etc",
        f"runs:/{churn}/../../secrets",
    ]
    with httpx.Client(auth=stack.auth(), timeout=60) as http:
        for source in bad:
            r = http.post(
                _api(stack, "model-versions/create"),
                json={"name": "churn", "source": source, "run_id": churn},
            )
            assert r.status_code == 400, (source, r.text)
    client = MlflowClient(tracking_uri=stack.url)
    with pytest.MonkeyPatch.context() as mp:
        stack.use(mp)
        assert [v.version for v in client.search_model_versions("name='churn'")] == ["1"]


def test_mlcycle_refuses_model_uris_that_climb_out_of_their_run(
    stack: Tracking, churn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.use(monkeypatch)
    for uri in (f"runs:/{churn}/../../etc", f"runs:/{churn}/model/%2e%2e/%2e%2e/x"):
        res = CliRunner().invoke(cli, ["serve", "--model", uri, "--port", "0"])
        assert res.exit_code == 1, res.output
        assert "'..'" in res.output


def _serve(
    t: Tracking, model_uri: str, workdir: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = workdir / f"serve-{port}.log"
    cmd = compose_argv(
        "model-server", "--model", model_uri, "--host", "127.0.0.1", "--port", str(port),
        "--no-inference-log", "--reload-interval", "0", *extra,
    )  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=t.client_env(), cwd=workdir, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    return proc, port, log


def test_a_pickled_model_is_served_only_with_allow_pickle(
    stack: Tracking, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    stack.use(monkeypatch)
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    mlflow.set_experiment("pickled")
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(X, model.predict(X)),
            serialization_format="cloudpickle", registered_model_name="pickled",
        )  # fmt: skip

    proc, _, log = _serve(stack, "models:/pickled/1", tmp_path)
    try:
        assert proc.wait(120) == 1, log.read_text()[-2000:]
    finally:
        stop_group(proc)
    assert "--allow-pickle" in log.read_text()

    proc, port, log = _serve(stack, "models:/pickled/1", tmp_path, "--allow-pickle")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        body = {"dataframe_split": {"columns": ["a", "b"], "data": [[0.0, 1.0], [3.0, 0.0]]}}
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert r.status_code == 200, log.read_text()[-2000:]
        assert r.json()["predictions"] == [0, 1]
    finally:
        stop_group(proc)


def test_no_secret_reaches_the_logs_the_process_list_or_help(
    stack: Tracking, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(Path("/proc/self/cmdline").exists(), "needs Linux /proc")
    role_pw = stack.backend.split(":", 2)[2].split("@", 1)[0]
    secrets = [stack.admin_password, VIEWER[1], role_pw]
    argv = group_cmdlines(stack.proc.pid)
    assert len(argv) >= 3, argv  # mlcycle server → mlflow server → uvicorn (+ worker)
    log = stack.log_text()
    assert "NO_PERMISSIONS" in log  # the log is real and says how it runs
    for secret in secrets:
        assert secret and not any(secret in a for a in argv), "a secret is in a process's argv"
        assert secret not in log, "a secret is in the server log"
    # With every secret in the environment, no help page shows one.
    monkeypatch.setenv("MLCYCLE_ADMIN_PASSWORD", stack.admin_password)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", VIEWER[1])
    monkeypatch.setenv("MLCYCLE_BACKEND_STORE_URI", stack.backend)
    for args in (["--help"], ["server", "--help"], ["serve", "--help"], ["train", "--help"]):
        out = CliRunner().invoke(cli, args).output
        assert not any(s in out for s in secrets), args


def test_an_edit_user_promoting_a_crafted_version_runs_nothing_on_the_model_server(
    stack: Tracking, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: EDIT on one registered model must not mean code execution on serving hosts."""
    import re

    import mlflow
    from mlflow import MlflowClient

    from mlcycle.register.types import AUDIT_EXPERIMENT
    from security.crafted_models import craft, legit_model

    stack.use(monkeypatch)
    admin = MlflowClient()
    name = f"fraud-{uuid.uuid4().hex[:6]}"
    mlflow.set_experiment(f"{name}-training")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(legit_model(tmp_path)), "model")
    admin.create_registered_model(name)
    good = admin.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
    admin.set_registered_model_alias(name, "champion", good.version)
    audit = admin.get_experiment_by_name(AUDIT_EXPERIMENT)
    audit_id = audit.experiment_id if audit else admin.create_experiment(AUDIT_EXPERIMENT)

    editor = ("editor-" + uuid.uuid4().hex[:6], "Editor-pass-" + uuid.uuid4().hex[:8])
    stack.create_user(*editor)
    stack.grant(editor[0], "registered_model", name, "EDIT")
    stack.grant(editor[0], "experiment", audit_id, "EDIT")  # so the promotion itself succeeds

    proc, port, log = _serve(
        stack, f"models:/{name}@champion", tmp_path, "--reload-interval", "0.5"
    )
    marker = tmp_path / "MARKER"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

        # The attacker: their own experiment, a crafted model, a version of the victim model.
        stack.use(monkeypatch, *editor)
        mlflow.set_experiment(f"{editor[0]}-scratch")
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(craft("code_loader", tmp_path, marker).path), "model")
        bad = MlflowClient().create_model_version(
            name, f"{run.info.artifact_uri}/model", run.info.run_id
        )
        res = CliRunner().invoke(
            cli, ["promote", name, "--version", bad.version, "--force", "--reason", "trust me"]
        )
        assert res.exit_code == 0, res.output

        stack.use(monkeypatch)
        assert admin.get_registered_model(name).aliases["champion"] == bad.version
        history = CliRunner().invoke(cli, ["history", name])
        assert "trust me" in history.output, history.output  # the attempt is on record

        def refused() -> float:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            m = re.search(r"^mlcycle_model_refused_total\{[^}]*\} (\S+)$", text, re.M)
            return float(m.group(1)) if m else 0.0

        deadline = time.monotonic() + 60
        while refused() < 1:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        body = {"dataframe_records": [{"x": 1.0}]}
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["x-model-version"] == str(good.version)
        assert not marker.exists()
    finally:
        stop_group(proc)
    assert not marker.exists()
    assert "refused" in log.read_text()


EDITOR = ("editor", "Editor-pass-" + uuid.uuid4().hex[:8])
READER = ("reader", "Reader-pass-" + uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def audited_model(stack: Tracking, churn: str) -> str:
    """A model of its own (``churn-audit`` v1) so these tests leave ``churn`` alone."""
    from mlflow import MlflowClient

    from mlcycle.register.audit import audit_experiment_id

    with pytest.MonkeyPatch.context() as mp:
        stack.use(mp)
        client = MlflowClient()
        client.create_registered_model("churn-audit")
        client.create_model_version("churn-audit", f"runs:/{churn}/model", run_id=churn)
        audit_experiment_id(client)  # exists, owned by the admin, as on a running team stack
    return "churn-audit"


def test_an_editor_without_audit_access_changes_nothing_and_with_it_is_audited(
    stack: Tracking, audited_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from mlcycle.register import history
    from mlcycle.register.types import AUDIT_EXPERIMENT

    stack.create_user(*EDITOR)
    stack.grant(EDITOR[0], "registered_model", audited_model, "EDIT")
    stack.use(monkeypatch, *EDITOR)
    args = ["promote", audited_model, "--version", "1", "--force", "--reason", "hotfix"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert "permission denied" in res.output.lower(), res.output

    stack.use(monkeypatch)
    admin = MlflowClient()
    # Audit first: the 403 on the audit experiment came before any registry write.
    assert admin.get_registered_model(audited_model).aliases == {}
    assert admin.get_model_version(audited_model, "1").current_stage == "None"
    assert history(admin, audited_model) == []

    audit_exp = admin.get_experiment_by_name(AUDIT_EXPERIMENT).experiment_id
    stack.grant(EDITOR[0], "experiment", audit_exp, "EDIT")
    stack.use(monkeypatch, *EDITOR)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output

    stack.use(monkeypatch)
    assert admin.get_registered_model(audited_model).aliases == {"champion": "1"}
    [entry] = history(admin, audited_model)
    assert (entry.who, entry.action, entry.to_version, entry.outcome) == (
        "editor", "promote", "1", "done",
    )  # fmt: skip


def test_serving_a_model_needs_read_on_its_training_experiment_too(
    stack: Tracking, audited_model: str, churn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What docs/operations.md's permissions table says, as the server answers it."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    stack.use(monkeypatch)
    experiment_id = MlflowClient().get_run(churn).info.experiment_id
    stack.create_user(*READER)
    stack.grant(READER[0], "registered_model", audited_model, "READ")
    stack.use(monkeypatch, *READER)
    uri = f"models:/{audited_model}/1"
    with pytest.raises(MlflowException, match=r"403|PERMISSION_DENIED|Permission denied"):
        mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "a"))

    stack.use(monkeypatch)
    stack.grant(READER[0], "experiment", experiment_id, "READ")
    stack.use(monkeypatch, *READER)
    local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "b"))
    assert list(Path(local).rglob("MLmodel")), local
